"""A grid of training runs that outlives its processes and its sessions.

Each cell is a normal run folder (``agents.train``) described by a :class:`RunSpec`. Runs go to
worker processes (one torch thread each); a run whose folder holds ``benchmark.json`` is
finished and skipped, a run killed mid-way goes on from its newest checkpoint (one every 100k
steps, ``train.py --resume``), and two commands may share a grid (each run is claimed by the
process training it). A worker whose grid process is killed stops too, saving its run as on
SIGTERM, rather than train on unseen. A finished run counts only while its settings are the
ones its spec gives today: after a preset changes, its folder is moved to
``<name>.stale-<time>`` and trained again, and a record of it no longer counts. Used by
benchmarks/learning.py (suites) and benchmarks/sweep.py (variants).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agents import atomic

REPO = Path(__file__).resolve().parents[1]
DONE_FILE = "benchmark.json"  # written last: its presence marks a finished run
TRANSFER_EPISODES = 100
TRANSFER_SEED = 2_000_000  # transfer episodes differ from training and final-eval episodes
CHECKPOINT_EVERY = 100_000  # env steps; a run killed mid-way resumes from its newest one


@dataclass
class RunSpec:
    env: str
    algo: str
    seed: int
    n_timesteps: int | None  # None: the preset's budget
    overrides: dict[str, Any]
    transfer: list[str]
    run_dir: Path
    env_preset: bool = True  # False: the default block alone (benchmarks/sweep.py)


def is_done(run_dir: Path) -> bool:
    return (run_dir / DONE_FILE).is_file()


# config keys that change how a run is watched or saved, not what it learns
NOT_LEARNING = {"progress", "checkpoint_freq", "device", "torch_threads", "vec_env"}


def planned_config(spec: RunSpec) -> dict[str, Any]:
    """The resolved config the spec trains with today (presets as they are now)."""
    from agents.config import make_config

    budget = {} if spec.n_timesteps is None else {"n_timesteps": int(spec.n_timesteps)}
    config = make_config(
        env=spec.env,
        overrides={**budget, **spec.overrides},  # a sweep variant may set its own budget,
        env_preset=spec.env_preset,
        algo=spec.algo,
        seed=spec.seed,
        progress=False,
        torch_threads=1,
        checkpoint_freq=CHECKPOINT_EVERY,
    )
    return config.to_dict()


def learning_settings(config: dict[str, Any]) -> dict[str, Any]:
    """What decides a run's result, in the form config.yaml stores it; keys added to the
    config after a run was made take their defaults, as they did then."""
    from agents.config import from_dict

    stored = yaml.safe_load(yaml.safe_dump(from_dict(config).to_dict(), sort_keys=False))
    return {key: value for key, value in stored.items() if key not in NOT_LEARNING}


def is_current(spec: RunSpec, run: dict[str, Any] | None) -> bool:
    """A finished run counts only if it trained with the settings the spec gives today: a
    preset changed since makes it stale. Keys its algorithm ignores do not count (a preset
    that gives recurrent_ppo a privileged critic leaves its ppo baseline current)."""
    if run is None or run.get("config") is None:
        return False
    return settings_key(run["config"]) == settings_key(planned_config(spec))


def set_aside_if_stale(spec: RunSpec) -> None:
    """Move a finished run of outdated settings to ``<name>.stale-<time>`` so it is rerun."""
    if is_done(spec.run_dir) and not is_current(spec, read_run(spec.run_dir)):
        stale = spec.run_dir.with_name(
            f"{spec.run_dir.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        spec.run_dir.rename(stale)
        print(f"{spec.run_dir.name}: its preset changed since it ran; moved to {stale.name}")


def run_one(spec: RunSpec) -> dict[str, Any]:
    """Train one cell (in a worker process), evaluate its transfers, mark it finished.

    A claim file beside the run folder lets two benchmark commands share a grid: a run that
    another live process has claimed is skipped, a claim whose process is gone is taken over.
    """
    claim = spec.run_dir.with_name(spec.run_dir.name + ".claim")
    if not take_claim(claim):
        return {"run_dir": str(spec.run_dir), "skipped": "running in another process"}
    try:
        return train_and_mark(spec)
    finally:
        claim.unlink(missing_ok=True)


def take_claim(claim: Path) -> bool:
    claim.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            os.kill(int(claim.read_text() or 0), 0)
            return False  # its process is alive
        except (ProcessLookupError, ValueError, FileNotFoundError):
            claim.write_text(str(os.getpid()))
            return True
    with os.fdopen(descriptor, "w") as file:
        file.write(str(os.getpid()))
    return True


def train_or_resume(config: Any, run_dir: Path) -> Path:
    """Train into ``run_dir``; a folder left by a killed worker (a session's end outlives no
    1M-step run) goes on from its newest checkpoint, unless it saved nothing or trained with
    other settings: then it starts again."""
    import agents

    if run_dir.exists():
        if not _trained_with(run_dir, config.to_dict()):
            print(f"starting {run_dir.name} again: its settings changed", flush=True)
            shutil.rmtree(run_dir)
        elif (run_dir / "metrics.json").is_file():
            return run_dir  # trained and evaluated; what is missing comes after training
        else:
            try:
                return agents.resume(run_dir, progress=False)
            except agents.UserError as error:
                print(f"starting {run_dir.name} again: {error}", flush=True)
                shutil.rmtree(run_dir)
    return agents.train(config, run_dir=run_dir)


def _trained_with(run_dir: Path, config: dict[str, Any]) -> bool:
    try:
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
        return learning_settings(saved) == learning_settings(config)
    except Exception:  # no config.yaml, or one this version cannot read: not these settings
        return False


def cpu_model() -> str:
    """The processor's name: a run reproduces on the same model, code and torch, but not
    across models (different floating-point kernels), so each record says which it ran on."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def train_and_mark(spec: RunSpec) -> dict[str, Any]:
    import torch

    import agents
    from agents.config import from_dict
    from agents.runs import load

    torch.set_num_threads(1)
    config = from_dict(planned_config(spec)).validate()
    start = time.perf_counter()
    run_dir = train_or_resume(config, spec.run_dir)
    wall = time.perf_counter() - start
    transfer = {}
    for env in spec.transfer:
        run = load(run_dir, env=env)
        transfer[env] = agents.evaluate(
            run, n_episodes=TRANSFER_EPISODES, seed=spec.seed + TRANSFER_SEED, n_envs=8
        )
    record = {"wall_time_s": wall, "cpu": cpu_model(), "transfer": transfer}
    atomic.write_json(run_dir / DONE_FILE, record)
    return {"run_dir": str(run_dir), **record}


def execute(
    specs: list[RunSpec],
    workers: int,
    after_each: Callable[[], None] | None = None,
    recorded: Recorded | None = None,
) -> None:
    """Train every spec not yet finished, in its folder or in ``recorded`` (a fresh clone does
    not train again what results.json holds); ``after_each`` runs after each finished run (the
    results files are rewritten then, so that a grid cut short loses nothing)."""
    for spec in specs:
        set_aside_if_stale(spec)
    recorded = recorded or Recorded()
    todo = [s for s in specs if not is_done(s.run_dir) and recorded.find(s) is None]
    print(f"{len(specs) - len(todo)} of {len(specs)} runs already finished; {len(todo)} to go")
    if not todo:
        return
    context = get_context("spawn")  # fresh interpreters: no torch state shared through fork
    with ProcessPoolExecutor(
        workers,
        mp_context=context,
        max_tasks_per_child=1,
        initializer=stop_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        futures = {pool.submit(run_one, spec): spec for spec in todo}
        for future in as_completed(futures):
            spec = futures[future]
            try:
                record = future.result()
            except Exception as error:  # one failed run must not stop the grid
                print(f"FAILED {spec.run_dir.name}: {type(error).__name__}: {error}")
                continue
            if "skipped" in record:
                print(f"skipped {spec.run_dir.name}: {record['skipped']}", flush=True)
                continue
            metrics = json.loads((spec.run_dir / "metrics.json").read_text())
            print(
                f"done {spec.run_dir.name}: success {metrics['success_rate']} "
                f"return {metrics['mean_return']:.3f} in {record['wall_time_s']:.0f} s",
                flush=True,
            )
            if after_each is not None:
                after_each()


def stop_with_parent(parent_pid: int, poll_seconds: float = 5.0) -> None:
    """Worker initializer: once the grid process that started this worker is gone (killed,
    its session ended), SIGTERM this worker, which saves its run for a resume
    (agents/interruption.py). Without it a killed grid leaves its runs training unseen,
    holding cores and claims, and their results never reach results.json."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()


# --------------------------------------------------------------------------- reading back


def read_run(run_dir: Path) -> dict[str, Any] | None:
    if not is_done(run_dir):
        return None
    metrics = json.loads((run_dir / "metrics.json").read_text())
    record = json.loads((run_dir / DONE_FILE).read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    curve = None
    if (run_dir / "evaluations.npz").is_file():
        data = np.load(run_dir / "evaluations.npz")
        successes = data["successes"] if "successes" in data.files else np.empty(0)
        values = successes if successes.size else data["results"]
        curve = {
            "timesteps": data["timesteps"].tolist(),
            "value": values.mean(axis=1).tolist(),
            "metric": "success_rate" if successes.size else "mean_return",
        }
    return {
        "run_dir": str(shown(run_dir)),
        "seed": config["seed"],
        "n_timesteps": metrics.get("n_timesteps", config["n_timesteps"]),
        "success_rate": metrics["success_rate"],
        "mean_return": metrics["mean_return"],
        "episodes": metrics["episodes"],
        "memoryless_ceiling": metrics["memoryless_ceiling"],
        "wall_time_s": record["wall_time_s"],
        **({"cpu": record["cpu"]} if "cpu" in record else {}),  # absent from older records
        "transfer": {
            env: {"success_rate": m["success_rate"], "mean_return": m["mean_return"]}
            for env, m in record["transfer"].items()
        },
        "curve": curve,
        "config": learning_settings(config),
    }


def shown(path: Path) -> Path:
    """A path relative to the repository when it lies inside it."""
    path = path.resolve()
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def recorded_runs(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The runs a results file recorded, by run folder: what a clone without the run folders
    (they stay out of git) rebuilds its tables from."""
    rows = results.get("envs") or results.get("rows") or []
    cells = [cell for row in rows for cell in (row.get("algos") or row.get("envs") or {}).values()]
    return {
        run["run_dir"]: run
        for cell in cells
        for run in (cell.get("runs", []) if isinstance(cell, dict) else cell)
    }


def settings_key(config: dict[str, Any]) -> str:
    """What a run trained with, as a lookup key: env, algorithm, seed, budget and every setting
    its algorithm reads (values coerced to their fields' types, so 1 and 1.0 are one key; a
    results file may predate a key, which then takes its old value)."""
    from agents.config import read_by_algo

    return json.dumps(read_by_algo(learning_settings(config)), sort_keys=True, default=str)


class Recorded:
    """Finished runs as results files recorded them, found by what they trained with. A run is
    its settings, not its folder: a run whose folder is gone counts, and so does another
    suite's run of the same settings (an ablation whose change a preset then adopted is not
    trained again). Of two records of the same settings, the one given later is kept."""

    def __init__(self, *results: dict[str, Any]) -> None:
        self.runs = {
            settings_key(run["config"]): run
            for result in results
            for run in recorded_runs(result).values()
            if run.get("config") is not None
        }

    def find(self, spec: RunSpec) -> dict[str, Any] | None:
        return self.runs.get(settings_key(planned_config(spec)))


def read_current(spec: RunSpec, recorded: Recorded) -> dict[str, Any] | None:
    """The spec's finished run from its folder, or as a results file recorded a run of its
    settings; None if neither trained with today's settings."""
    run = read_run(spec.run_dir)
    return run if is_current(spec, run) else recorded.find(spec)
