"""What a run shows while it trains: a progress bar on a terminal, else a line now and then.

A person at a terminal gets SB3's bar. Output that no one watches live (``--no-progress``, a
log file, a cluster job) gets instead a compact line every ``LINE_EVERY_S`` seconds (the
first after one rollout and its update, the last when training ends): steps, speed, time
left, the recent training episodes and the last periodic evaluation, as SB3's verbose table
would, in one line.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Sequence
from typing import TextIO

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback, ProgressBarCallback

LINE_EVERY_S = 30.0


def progress_callback(show_bar: bool, others: Sequence[BaseCallback] = ()) -> BaseCallback:
    """The bar where ``show_bar`` and stdout is a terminal, else periodic lines, which report
    the periodic evaluation among ``others`` (if there is one)."""
    if show_bar and sys.stdout.isatty():
        return ProgressBar()
    evaluation = next((c for c in others if isinstance(c, EvalCallback)), None)
    return ProgressLines(evaluation=evaluation)


def steps_to_run(model: BaseAlgorithm, total_timesteps: int) -> int:
    """The env steps ``learn(total_timesteps)`` will take from here: on-policy algorithms
    collect whole rollouts of ``n_steps * n_envs`` until they reach the total, so they stop
    at the next multiple past it (25,600 steps for 25,000 with rollouts of 1,024)."""
    rollout = model.n_steps * model.n_envs
    remaining = max(total_timesteps - model.num_timesteps, 0)
    return -(-remaining // rollout) * rollout


class ProgressBar(ProgressBarCallback):
    """SB3's bar, with the total it will reach instead of one it overshoots."""

    def _on_training_start(self) -> None:
        from tqdm import TqdmExperimentalWarning
        from tqdm.rich import tqdm  # SB3's bar; imported where it is used, as SB3 does

        with warnings.catch_warnings():  # "rich is experimental": tqdm's business, not the user's
            warnings.simplefilter("ignore", TqdmExperimentalWarning)
            self.pbar = tqdm(total=steps_to_run(self.model, self.locals["total_timesteps"]))


class ProgressLines(BaseCallback):
    """A line after the first rollout and its update, then after an update once ``every_s``
    seconds have passed since the last line, and one when training ends."""

    def __init__(
        self,
        every_s: float = LINE_EVERY_S,
        evaluation: EvalCallback | None = None,
        stream: TextIO | None = None,
    ) -> None:
        super().__init__()
        self.every_s = every_s
        self.evaluation = evaluation
        self.stream = stream

    def _on_training_start(self) -> None:
        self.start_time = time.monotonic()
        self.start_steps = self.model.num_timesteps
        self.total = self.start_steps + steps_to_run(self.model, self.locals["total_timesteps"])
        self.last_time: float | None = None
        self.last_steps = -1

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        # the previous rollout and its update are done: the speed counts both
        if self.model.num_timesteps == self.start_steps:
            return
        if self.last_time is None or time.monotonic() - self.last_time >= self.every_s:
            self._print_line()

    def _on_training_end(self) -> None:
        if self.model.num_timesteps != self.last_steps:
            self._print_line()

    def _print_line(self) -> None:
        now, steps = time.monotonic(), self.model.num_timesteps
        self.last_time, self.last_steps = now, steps
        speed = (steps - self.start_steps) / max(now - self.start_time, 1e-9)
        left = (self.total - steps) / speed if speed > 0 else 0.0
        parts = [
            f"{steps:>{len(f'{self.total:,}')},}/{self.total:,} steps "
            f"{100 * steps / self.total:3.0f}%",
            f"{speed:,.0f} steps/s",
            f"{_clock(left)} left",
            self._recent_episodes(),
        ]
        if self.evaluation is not None and self.evaluation.evaluations_timesteps:
            parts.append(self._last_evaluation())
        print("  ".join(parts), file=self.stream or sys.stdout, flush=True)

    def _recent_episodes(self) -> str:
        episodes = self.model.ep_info_buffer or []
        if not episodes:
            return "no episode finished yet"
        text = f"last {len(episodes)} episodes: return {np.mean([e['r'] for e in episodes]):.2f}"
        if self.model.ep_success_buffer:
            text += f", success {np.mean(self.model.ep_success_buffer):.2f}"
        return text

    def _last_evaluation(self) -> str:
        evaluation = self.evaluation
        text = (
            f"eval at {evaluation.evaluations_timesteps[-1]:,}: "
            f"return {np.mean(evaluation.evaluations_results[-1]):.2f}"
        )
        if evaluation.evaluations_successes:
            text += f", success {np.mean(evaluation.evaluations_successes[-1]):.2f}"
        return text


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"
