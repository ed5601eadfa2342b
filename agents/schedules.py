"""Hyperparameters that change over training, spelled as in rl-baselines3-zoo.

A scheduled value is a number (constant) or ``"lin_<start>"``: linear from ``start`` at the
first update to 0 at the last (the zoo's ``lin_`` prefix). SB3 calls a schedule with the
progress remaining, ``1 - steps / total``: 1 at the start of training and 0 at its end. A
resumed run goes on counting its steps towards its total, so its schedules continue where
they stopped; resumed with a new ``--timesteps`` total, they follow the new total from there,
as if it had been the total from the start.

With ``desired_kl`` set, the learning rate is not scheduled in advance but follows the size of
the updates (:class:`KLAdaptiveRate`, rsl_rl's and Isaac Lab's "adaptive" schedule).

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


class KLAdaptiveRate:
    """A learning rate that follows the updates' size: divided by ``FACTOR`` after an update
    whose mean approximate KL to the rollout's policy exceeded twice ``desired_kl``, multiplied
    by it after one below half, kept within ``BOUNDS``.

    rsl_rl (Rudin et al. 2022) and Isaac Lab train their legged robots, recurrent policies
    included, with this rule at ``desired_kl`` 0.01. A fixed rate that suits a feed-forward
    policy can move a recurrent one several times as far per update (docs/sweeps/mujoco_p.md);
    this rate finds the step size instead of being tuned for it. rsl_rl adapts after every
    minibatch; here the mean over an update (SB3's ``train/approx_kl``) sets the next update's
    rate. It is the model's ``learning_rate``, so it is saved with the model and a resumed run
    goes on from the rate it had reached.

    >>> rate = KLAdaptiveRate(1e-3, desired_kl=0.01)
    >>> rate.adapt(0.05); round(rate(1.0), 6)
    0.000667
    >>> rate.adapt(0.001); round(rate(0.5), 6)
    0.001
    """

    FACTOR = 1.5
    BOUNDS = (1e-5, 1e-2)

    def __init__(self, start: float, desired_kl: float) -> None:
        self.value = float(start)
        self.desired_kl = float(desired_kl)

    def __call__(self, progress_remaining: float) -> float:
        return self.value

    def adapt(self, approx_kl: float) -> None:
        if approx_kl > 2.0 * self.desired_kl:
            self.value = max(self.value / self.FACTOR, self.BOUNDS[0])
        elif approx_kl < 0.5 * self.desired_kl:
            self.value = min(self.value * self.FACTOR, self.BOUNDS[1])

    def __repr__(self) -> str:
        return f"KLAdaptiveRate(value={self.value:g}, desired_kl={self.desired_kl:g})"


class KLAdaptation(BaseCallback):
    """Adapts the model's :class:`KLAdaptiveRate` to each update's KL, once per update: when
    the next rollout starts (SB3's ``train()`` has logged ``train/approx_kl`` and ``learn()``
    writes the logs out only after the rollout) and when training ends, so that a checkpoint,
    an interrupted run's save and the final model all hold the rate the next update takes."""

    def _on_training_start(self) -> None:
        self.adapted_at = self.model._n_updates  # a resumed run's updates were adapted on

    def _adapt(self) -> None:
        rate = self.model.learning_rate
        approx_kl = self.logger.name_to_value.get("train/approx_kl")
        if not isinstance(rate, KLAdaptiveRate) or approx_kl is None:
            return
        if self.model._n_updates > self.adapted_at:
            rate.adapt(float(approx_kl))
            self.adapted_at = self.model._n_updates

    def _on_rollout_start(self) -> None:
        self._adapt()

    def _on_training_end(self) -> None:
        self._adapt()

    def _on_step(self) -> bool:
        return True
