"""Stopping a training cleanly on Ctrl-C (SIGINT) or a scheduler's SIGTERM.

The first signal asks training to stop at the next env step: the model is then as the last
update left it, so it is saved with the step count of the data it was trained on (the steps
of an unfinished rollout are dropped) and ``train.py --resume`` continues from there. A
second signal stops at once, wherever training is (it is saved all the same). While files
are being saved signals wait, so that a save is never cut short by one.

Subprocess envs ignore both signals: a Ctrl-C reaches the whole process group, and a worker
killed by it would take the env away before the model is saved. They exit when the main
process closes them (or dies: their pipe closes).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

SIGNALS = (signal.SIGINT, signal.SIGTERM)
SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class Interrupted(Exception):
    """A signal arrived where work stops at once."""

    def __init__(self, signum: int) -> None:
        super().__init__(SIGNAL_NAMES.get(signum, f"signal {signum}"))
        self.signum = signum


class StopOnSignal(BaseCallback):
    """Handles SIGINT and SIGTERM through a whole training, by phase:

    - ``"stop"`` (training): the first signal makes ``learn()`` return at the next env step,
      a second one raises ``Interrupted`` at once;
    - ``"defer"`` (saving): signals are only recorded;
    - ``"skip"`` (work that may be skipped, an evaluation): a signal raises ``Interrupted``.

    ``signals`` lists what arrived; ``steps_trained`` is the step count at the start of the
    current rollout: the steps that the weights have been updated on.
    """

    def __init__(self) -> None:
        super().__init__()
        self.signals: list[int] = []
        self.mode = "stop"
        self.steps_trained = 0

    @property
    def signum(self) -> int | None:
        """The first signal received, if any."""
        return self.signals[0] if self.signals else None

    def handle(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)
        if self.mode == "skip" or (self.mode == "stop" and len(self.signals) > 1):
            raise Interrupted(signum)
        if self.mode == "stop":
            print(
                f"\n{SIGNAL_NAMES.get(signum, signum)}: stopping after this step and saving "
                "(again to stop at once)",
                file=sys.stderr,
                flush=True,
            )

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopOnSignal]:
        """Route SIGINT and SIGTERM here inside the block (main thread only: Python delivers
        signals there; elsewhere the process's own handlers stay)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {signum: signal.signal(signum, self.handle) for signum in SIGNALS}
        try:
            yield self
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)

    @contextlib.contextmanager
    def phase(self, mode: str) -> Iterator[None]:
        before, self.mode = self.mode, mode
        try:
            yield
        finally:
            self.mode = before

    def _on_training_start(self) -> None:
        self.steps_trained = self.model.num_timesteps

    def _on_rollout_start(self) -> None:
        self.steps_trained = self.model.num_timesteps

    def _on_step(self) -> bool:
        return not self.signals


def ignore_in_worker(make_env: Callable[[], Any]) -> Callable[[], Any]:
    """``make_env`` for a subprocess env: the worker ignores SIGINT and SIGTERM first."""

    def make_ignoring_signals() -> Any:
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        return make_env()

    return make_ignoring_signals
