"""Continuing a run: ``python train.py --resume RUN_DIR [--timesteps N]``.

A run stopped by Ctrl-C or SIGTERM, killed outright, or finished goes on from its newest
saved state (model.zip or the newest checkpoint, whichever has more steps) to its
``n_timesteps``, or to a new total: the weights, the optimizer's state, the normalisation
statistics, the step count and the schedules' progress (agents/schedules.py) continue;
progress.csv, the TensorBoard events, the monitor CSVs and evaluations.npz are appended to;
command.txt gets the new command line.

A resumed run is not bit for bit the run that was never interrupted: neither SB3 nor
Gymnasium save the envs' states (the episodes in progress, their random generators, MuJoCo's
simulation state) or torch's random generator, so the resumed run starts fresh episodes and
samples other actions. It is reproducible: the seed of the resumed part is the config's seed
plus the step count it starts from, so resuming the same state twice gives the same run.
"""

from __future__ import annotations

import dataclasses
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from agents import atomic
from agents.callbacks import PROGRESS_FILE, drop_rows_after, drop_torn_line
from agents.config import TrainConfig
from agents.environments import make_vec, spaces_mismatch
from agents.errors import UserError
from agents.runs import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    MONITOR_DIR,
    load_model,
    read_config,
    save_config,
    vecnormalize_path,
)
from agents.training import _check_runnable, learn


@dataclass
class SavedState:
    """A model file and the number of env steps it was trained on."""

    model_path: Path
    steps: int


def resume(
    run_dir: str | Path,
    n_timesteps: int | None = None,
    command: str | None = None,
    progress: bool | None = None,
    device: str | None = None,
) -> Path:
    """Continue the run in ``run_dir`` to ``n_timesteps`` steps in all (default: its own
    ``n_timesteps``) and return the folder, which then holds the final model and metrics.

    ``progress`` turns the progress bar on or off and ``device`` moves the training (a run
    from a GPU machine resumed on a CPU, say); every other setting is the run's own.
    """
    run_dir = Path(run_dir)
    config = _run_config(run_dir)
    state = newest_state(run_dir)
    config = _continued_config(run_dir, config, state, n_timesteps, progress, device)
    _check_runnable(config)
    model = load_model(state.model_path, config.algo, config.device)
    # the logs are trimmed before the env opens the monitor CSVs to append to them
    atomic.remove_leftovers(run_dir)
    _trim_logs(run_dir, state.steps)
    torch.set_num_threads(config.torch_threads)

    seed = config.seed + state.steps  # not the first part's episodes again; reproducible
    env = make_vec(
        config,
        config.n_envs,
        seed,
        monitor_dir=run_dir / MONITOR_DIR,
        vecnormalize_path=vecnormalize_path(state.model_path) if config.normalize else None,
        append_monitor=True,
    )
    if (model.observation_space, model.action_space) != (env.observation_space, env.action_space):
        env.close()
        raise spaces_mismatch(config.env, (model.observation_space, model.action_space), env)
    model.set_env(env)  # and forget the last observation saved with the model: envs restart
    model.set_random_seed(seed)
    save_config(run_dir, config, command)
    print(f"Resuming {run_dir} at {state.steps} steps ({state.model_path.name})", flush=True)
    return learn(model, config, run_dir)


def newest_state(run_dir: Path) -> SavedState:
    """model.zip or the newest checkpoint, whichever was trained on more steps."""
    states = [
        SavedState(path, int(match[1]))
        for path in (run_dir / CHECKPOINTS_DIR).glob("*.zip")
        if (match := re.fullmatch(r".*_(\d+)_steps", path.stem))
    ]
    final = run_dir / MODEL_FILE
    if final.is_file():
        states.append(SavedState(final, _steps_in(final)))
    if not states:
        raise UserError(
            f"nothing to resume in {run_dir}: no {MODEL_FILE} and no checkpoint (the run "
            "stopped before its first save); start it again with train.py"
        )
    # model.zip wins a tie: it is written last
    return max(states, key=lambda state: (state.steps, state.model_path == final))


def _steps_in(model_path: Path) -> int:
    try:
        with zipfile.ZipFile(model_path) as archive:
            return int(json.loads(archive.read("data"))["num_timesteps"])
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError):
        raise UserError(
            f"cannot read {model_path}: the file is corrupt or truncated; move it away to "
            f"resume from the newest checkpoint in {model_path.parent / CHECKPOINTS_DIR}"
        ) from None


def _run_config(run_dir: Path) -> TrainConfig:
    if not (run_dir / CONFIG_FILE).is_file():
        raise UserError(
            f"{run_dir} is not a run folder (no {CONFIG_FILE}); pass a folder made by train.py"
        )
    return read_config(run_dir / CONFIG_FILE)


def _continued_config(
    run_dir: Path,
    config: TrainConfig,
    state: SavedState,
    n_timesteps: int | None,
    progress: bool | None,
    device: str | None,
) -> TrainConfig:
    total = config.n_timesteps if n_timesteps is None else n_timesteps
    if total < state.steps:
        raise UserError(
            f"--timesteps {total} is below the {state.steps} steps {run_dir} has trained; "
            "pass a larger total"
        )
    if total == state.steps and (run_dir / METRICS_FILE).is_file():
        raise UserError(
            f"{run_dir} has finished its {state.steps} steps; pass --timesteps with a larger "
            "total to train it further"
        )
    changes: dict[str, object] = {"n_timesteps": total}
    if progress is not None:
        changes["progress"] = progress
    if device is not None:
        changes["device"] = device
    return dataclasses.replace(config, **changes).validate()


def _trim_logs(run_dir: Path, steps: int) -> None:
    """Logs end where the resumed model starts: no rows of training that was lost with a
    killed process, no line torn by it."""
    drop_rows_after(run_dir / PROGRESS_FILE, steps)
    for monitor in (run_dir / MONITOR_DIR).glob("*.monitor.csv"):
        drop_torn_line(monitor)
