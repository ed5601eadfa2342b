"""Hyperparameters that change over training, spelled as in rl-baselines3-zoo.

A scheduled value is a number (constant) or ``"lin_<start>"``: linear from ``start`` at the
first update to 0 at the last (the zoo's ``lin_`` prefix). SB3 calls a schedule with the
progress remaining, ``1 - steps / total``: 1 at the start of training and 0 at its end. A
resumed run goes on counting its steps towards its total, so its schedules continue where
they stopped; resumed with a new ``--timesteps`` total, they follow the new total from there,
as if it had been the total from the start.

>>> for_sb3("lin_1e-3")(0.25)
0.00025
>>> for_sb3(0.2)
0.2
"""

from __future__ import annotations

from collections.abc import Callable

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import FloatSchedule, LinearSchedule

LINEAR = "lin_"
SCHEDULED_KEYS = ("learning_rate", "clip_range", "ent_coef")


def parse(key: str, raw: object) -> float | str:
    """A number, or ``"lin_<number>"`` in canonical spelling; ValueError naming the fix."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, str):
        text = raw.strip()
        number = text[len(LINEAR) :] if text.startswith(LINEAR) else text
        try:
            start = float(number)
        except ValueError:
            pass
        else:
            return f"{LINEAR}{start:g}" if text.startswith(LINEAR) else start
    raise ValueError(
        f"config key {key!r} expects a number or lin_<number> (linear to 0), got {raw!r}"
    )


def start(scheduled: float | str) -> float:
    """The value at the start of training."""
    return float(scheduled[len(LINEAR) :]) if isinstance(scheduled, str) else float(scheduled)


def for_sb3(scheduled: float | str) -> float | Callable[[float], float]:
    """What SB3 takes: the number, or a picklable function of the progress remaining."""
    if isinstance(scheduled, str):
        return LinearSchedule(start(scheduled), 0.0, 1.0)
    return float(scheduled)


class EntropySchedule(BaseCallback):
    """Sets the model's ``ent_coef`` before every update (SB3 takes only a constant).

    PPO's ``train()`` reads ``self.ent_coef`` when it computes the loss; setting it at the end
    of each rollout, from the progress that ``learn()`` computes next, anneals the entropy
    bonus exactly as SB3 anneals the learning rate.
    """

    def __init__(self, scheduled: float | str) -> None:
        super().__init__()
        self.schedule = FloatSchedule(for_sb3(scheduled))

    def _on_rollout_end(self) -> None:
        progress_remaining = 1.0 - self.model.num_timesteps / self.model._total_timesteps
        self.model.ent_coef = self.schedule(progress_remaining)
        self.logger.record("train/ent_coef", self.model.ent_coef)

    def _on_step(self) -> bool:
        return True
