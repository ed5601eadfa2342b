"""Memory tasks that the defaults were *not* chosen on: the check that they transfer.

A user's own memory task is unlike any of the suite's, and usually offers no hidden state to a
privileged critic. These two are written the way such a user would write them (plain
Gymnasium, no ``info["latent"]``), plugged in by ``module:Class`` like any user's env, and
judged beside their memoryless ceilings.

- ``CueRecall``: one of 4 cues on the first step, then 12 steps of noise, then the agent must
  name the cue. Memoryless ceiling 1/4.
- ``RunningParity``: 8 random bits, one a step; at the end the agent says whether it saw an
  odd number of ones. Every bit matters, so memory must update a running sum modulo 2, not
  just hold one value. Memoryless ceiling 1/2.
- ``ScoredCueRecall``: ``CueRecall`` in a user's own units: 100 points for the right cue and
  one point off every step, the way a game score or a time penalty would count. The same memory,
  rewards a hundred times the suite's. Memoryless ceiling 1/4.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class CueRecall(gym.Env):
    """See a cue once, wait ``delay`` noisy steps, then name it: reward 1 if right."""

    memoryless_ceiling = 0.25

    def __init__(self, n_cues: int = 4, delay: int = 12, noise: float = 0.5) -> None:
        self.n_cues, self.delay, self.noise = n_cues, delay, noise
        # one-hot cue, then a "now answer" flag; noise on the cue channels while waiting
        self.observation_space = spaces.Box(-np.inf, np.inf, (n_cues + 1,), np.float32)
        self.action_space = spaces.Discrete(n_cues)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._cue = int(self.np_random.integers(self.n_cues))
        self._t = 0
        observation = np.zeros(self.n_cues + 1, np.float32)
        observation[self._cue] = 1.0
        return observation, {}

    def step(self, action):
        self._t += 1
        if self._t <= self.delay:
            observation = np.zeros(self.n_cues + 1, np.float32)
            observation[: self.n_cues] = self.noise * self.np_random.standard_normal(self.n_cues)
            observation[-1] = float(self._t == self.delay)
            return observation, 0.0, False, False, {}
        right = int(action) == self._cue
        observation = np.zeros(self.n_cues + 1, np.float32)
        return observation, float(right), True, False, {"is_success": right}


class RunningParity(gym.Env):
    """Read ``length`` random bits; on the last step say whether the number of ones is odd."""

    memoryless_ceiling = 0.5

    def __init__(self, length: int = 8) -> None:
        self.length = length
        # the bit, and a flag on the last bit (answer now)
        self.observation_space = spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._bits = self.np_random.integers(2, size=self.length)
        self._t = 0
        return self._observation(), {}

    def step(self, action):
        self._t += 1
        if self._t < self.length:
            return self._observation(), 0.0, False, False, {}
        right = int(action) == int(self._bits.sum() % 2)
        return np.zeros(2, np.float32), float(right), True, False, {"is_success": right}

    def _observation(self) -> np.ndarray:
        last = self._t == self.length - 1
        return np.array([self._bits[self._t], float(last)], np.float32)


class ScoredCueRecall(CueRecall):
    """``CueRecall`` scored in points: ``scale`` for the right cue, ``step_cost`` off each step."""

    def __init__(self, scale: float = 100.0, step_cost: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale, self.step_cost = scale, step_cost

    def step(self, action):
        observation, reward, terminated, truncated, info = super().step(action)
        return observation, self.scale * reward - self.step_cost, terminated, truncated, info
