"""What a training writes into its run folder as it goes: checkpoints, evaluations, logs.

All three continue a resumed run instead of starting over:

- ``Checkpoints`` saves after an update (at the start of the next rollout), so a checkpoint's
  weights, optimizer and step count agree and ``--resume`` can continue from it;
- ``Evaluations`` appends to the evaluations.npz already in the folder and evaluates at the
  same step counts as an uninterrupted run would, and keeps the best-evaluated policy in
  ``best/``, judged against the evaluations kept;
- ``run_logger`` appends to progress.csv (SB3's CSV writer truncates it) and adds a
  TensorBoard event file beside the earlier ones (TensorBoard reads them together).

Every file is replaced atomically (agents/atomic.py).
"""

from __future__ import annotations

import csv
import os
import zipfile
from pathlib import Path

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.logger import CSVOutputFormat, Logger, make_output_format

from agents import atomic
from agents.errors import UserError
from agents.runs import MODEL_FILE, VECNORMALIZE_FILE

PROGRESS_FILE = "progress.csv"
EVALUATIONS_FILE = "evaluations.npz"
# The policy of the best periodic evaluation, loadable like a run folder (evaluate.py RUN/best):
# its model.zip and vecnormalize.pkl, and evaluation.json saying when and how well.
BEST_DIR = "best"
BEST_EVALUATION_FILE = "evaluation.json"
STEPS_COLUMN = "time/total_timesteps"


def checkpoint_paths(folder: Path, steps: int) -> tuple[Path, Path]:
    """Model and normalisation files of a checkpoint, named as SB3's CheckpointCallback does."""
    return (
        folder / f"rl_model_{steps}_steps.zip",
        folder / f"rl_model_vecnormalize_{steps}_steps.pkl",
    )


def save_model(model: BaseAlgorithm, model_path: Path, vecnormalize_path: Path) -> None:
    """The model (weights, optimizer, counters) and its normalisation statistics, if any.

    The statistics go first: a crash between the two leaves the older model beside newer
    statistics, which a resume from the older model reads as slightly more data seen.
    """
    normalization = model.get_vec_normalize_env()
    if normalization is not None:
        with atomic.replacing(vecnormalize_path) as temporary:
            normalization.save(str(temporary))
    with atomic.replacing(model_path) as temporary:
        model.save(temporary)


class Checkpoints(BaseCallback):
    """Saves ``checkpoints/rl_model_<steps>_steps.zip`` every ``every`` env steps, after the
    update that follows them (the first rollout start at or past each multiple)."""

    def __init__(self, folder: Path, every: int) -> None:
        super().__init__()
        self.folder, self.every = folder, every
        self._saved_block = 0

    def _on_training_start(self) -> None:
        self._saved_block = self.num_timesteps // self.every

    def _on_rollout_start(self) -> None:
        block = self.model.num_timesteps // self.every
        if block > self._saved_block:
            save_model(self.model, *checkpoint_paths(self.folder, self.model.num_timesteps))
            self._saved_block = block

    def _on_step(self) -> bool:
        return True


class Evaluations(EvalCallback):
    """SB3's EvalCallback writing ``run_dir/evaluations.npz`` atomically, continuing the
    evaluations already there (those past the model's step count belong to training that
    was lost and go), at the step counts an uninterrupted run evaluates at.

    After an evaluation whose mean return beats every earlier one, the policy goes to
    ``run_dir/best/`` (as SB3's ``best_model_save_path``, with the normalisation statistics
    too): a policy can get worse late in training, and a user deploys its best."""

    def __init__(self, eval_env, run_dir: Path, eval_freq: int, **kwargs) -> None:
        super().__init__(eval_env, eval_freq=eval_freq, log_path=str(run_dir), **kwargs)
        self.path = run_dir / EVALUATIONS_FILE
        self.best_dir = run_dir / BEST_DIR
        # SB3 writes log_path + ".npz" in place; we let it write a temporary name and rename
        self.log_path = str(atomic.temporary_path(self.path).with_suffix(""))

    def _init_callback(self) -> None:
        super()._init_callback()
        # n_calls counts env steps of all envs together: start it where the step count is,
        # so that evaluations fall on the same multiples of eval_freq as without a resume
        self.n_calls = self.model.num_timesteps // self.training_env.num_envs
        if self.path.is_file():
            self._continue(self.model.num_timesteps)

    def _continue(self, steps: int) -> None:
        try:
            with np.load(self.path) as saved:
                keep = saved["timesteps"] <= steps
                self.evaluations_timesteps = saved["timesteps"][keep].tolist()
                self.evaluations_results = saved["results"][keep].tolist()
                self.evaluations_length = saved["ep_lengths"][keep].tolist()
                if "successes" in saved:
                    successes = saved["successes"]
                    self.evaluations_successes = successes[keep[: len(successes)]].tolist()
            if self.evaluations_results:  # the best to beat: the evaluations kept
                self.best_mean_reward = max(map(np.mean, self.evaluations_results))
        except (OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile):
            raise UserError(
                f"{self.path} is corrupt; move it away to resume (its evaluations are lost)"
            ) from None

    def _on_step(self) -> bool:
        evaluations, best = len(self.evaluations_timesteps), self.best_mean_reward
        try:
            return super()._on_step()
        finally:  # also when the callback after an evaluation stops the run (a pruned trial)
            if len(self.evaluations_timesteps) > evaluations:
                atomic.commit(Path(self.log_path + ".npz"), self.path)
                if self.best_mean_reward > best:
                    self._save_best()

    def _save_best(self) -> None:
        save_model(self.model, self.best_dir / MODEL_FILE, self.best_dir / VECNORMALIZE_FILE)
        evaluation = {
            "timesteps": int(self.model.num_timesteps),
            "mean_return": float(self.best_mean_reward),
            "episodes": int(self.n_eval_episodes),
        }
        atomic.write_json(self.best_dir / BEST_EVALUATION_FILE, evaluation)


def run_logger(run_dir: Path) -> Logger:
    """TensorBoard events and progress.csv in ``run_dir``, appending to an existing CSV."""
    formats = [
        make_output_format("tensorboard", str(run_dir)),
        AppendingCSV(run_dir / PROGRESS_FILE),
    ]
    return Logger(folder=str(run_dir), output_formats=formats)


class AppendingCSV(CSVOutputFormat):
    """SB3's CSV writer, continuing the rows and columns of an existing file."""

    def __init__(self, path: Path) -> None:
        path.touch(exist_ok=True)
        self.file = open(path, "r+")  # noqa: SIM115  (closed by Logger.close)
        header = self.file.readline()
        self.keys = next(csv.reader([header])) if header.strip() else []
        self.separator, self.quotechar = ",", '"'
        self.file.seek(0, os.SEEK_END)


def drop_torn_line(path: Path) -> list[str]:
    """Remove a last line without its newline (a killed writer's); return the lines kept."""
    lines = path.read_text().splitlines(keepends=True) if path.is_file() else []
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
        atomic.write_text(path, "".join(lines))
    return lines


def drop_rows_after(path: Path, steps: int) -> None:
    """Keep the rows of progress.csv up to ``steps`` (what a resumed model was trained on)
    and no torn last line."""
    lines = drop_torn_line(path)
    if not lines:
        return
    header = next(csv.reader([lines[0]]))
    column = header.index(STEPS_COLUMN) if STEPS_COLUMN in header else None
    kept = [lines[0]]
    for line in lines[1:]:
        row = next(csv.reader([line]), [])
        if len(row) != len(header):
            continue
        value = row[column] if column is not None else ""
        if not value or float(value) <= steps:
            kept.append(line)
    atomic.write_text(path, "".join(kept))
