"""A guard against actions that would corrupt a simulation instead of failing.

A NaN action does not stop MuJoCo: it warns "Nan, Inf or huge value in CTRL", resets the
state and the step returns a NaN reward, which then spreads through the returns, the
advantages and the weights; classic control keeps the NaN in its state for good. An index
outside a ``Discrete`` space may be read from the end of a table (``-1``) or raise an
``IndexError`` deep inside a task. ``ValidActions`` refuses both at the env's door with a
message that shows the action. Box actions outside the bounds are let through: MuJoCo clamps
controls to their ranges and the tasks clip, as SB3's policies expect.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class ValidActions(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Raises ``ValueError`` on a non-finite Box action or an action outside a discrete space.

    >>> env = ValidActions(gym.make("Pendulum-v1"))
    >>> _ = env.reset(seed=0)
    >>> env.step(np.array([np.nan]))
    Traceback (most recent call last):
    ...
    ValueError: action [nan] is not finite (NaN or inf) ...
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        _check(self.env.action_space, action)
        return self.env.step(action)


def _check(space: gym.Space, action: Any) -> None:
    if isinstance(space, spaces.Box):
        values = np.asarray(action)
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            raise ValueError(
                f"action {values.tolist()} is not finite (NaN or inf) and would corrupt the "
                "simulation; a policy that outputs NaN has diverged (lower learning_rate or "
                "max_grad_norm, or normalize observations)"
            )
    elif isinstance(space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        if not space.contains(np.asarray(action).astype(space.dtype, copy=False)):
            raise ValueError(f"action {np.asarray(action).tolist()} is outside {space}")
