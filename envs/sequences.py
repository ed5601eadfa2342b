"""Sequence tasks from Edwin Chen's "Exploring LSTMs": memory states and copy."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.symbols import SymbolTape, one_hot


class MemoryStatesEnv(gym.Env):
    """Remember whether the sequence began with "A" or "B" across a run of "x" distractors.

    ## Description

    The environment shows a cue, "A" or "B", then between ``min_distractors`` and
    ``max_distractors`` x's, then the query "Y". On "Y" the agent answers "a" after "A" and
    "b" after "B". The number of x's is random, so the answer step cannot be foreseen and the
    cue has to be held over a variable delay. After Edwin Chen, "Exploring LSTMs" (2017).

    ## Action Space

    ``Discrete(2)``: 0 writes "a", 1 writes "b". Only the answer on "Y" counts; what the agent
    writes before is ignored.

    ## Observation Space

    ``Box(0, 1, (4,), float32)``, a one-hot code of the current input symbol:

    | index | meaning             |
    |-------|---------------------|
    | 0     | "A" (cue, answer a) |
    | 1     | "B" (cue, answer b) |
    | 2     | "x" (distractor)    |
    | 3     | "Y" (answer now)    |

    ## Rewards

    +1 for the right answer on "Y", 0 for the wrong one and for every step before, so the
    return of an episode is 1 exactly when it succeeds.

    ## Starting State

    The cue is "A" or "B" with probability 1/2 each; the number of x's is uniform in
    ``[min_distractors, max_distractors]``.

    ## Episode End

    Terminates after the answer on "Y", at step ``n + 2`` for ``n`` distractors. No truncation.
    ``info["is_success"]`` is set on that step; ``info["latent"] = {"cue": 0 or 1}`` every step.

    ## Arguments

    - ``max_distractors: int = 10``: the longest run of x's (Chen's L).
    - ``min_distractors: int = 1``: the shortest run of x's.
    - ``render_mode``: "ansi" or "rgb_array".

    ## Memoryless ceiling

    On "Y" the observation is the same whatever the cue was, and each cue has probability 1/2,
    so any function of the current observation answers right with probability exactly 1/2:
    **0.5**.

    ## Version History

    - v0: initial version (``MemoryStates-v0``: L = 10, ``MemoryStates-Long-v0``: L = 100).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    memoryless_ceiling: float = 0.5

    INPUTS = ("A", "B", "x", "Y")
    OUTPUTS = ("a", "b")
    DISTRACTOR = 2
    QUERY = 3

    def __init__(
        self,
        max_distractors: int = 10,
        min_distractors: int = 1,
        render_mode: str | None = None,
    ) -> None:
        if not 0 <= min_distractors <= max_distractors:
            raise ValueError(
                f"need 0 <= min_distractors <= max_distractors, "
                f"got {min_distractors} and {max_distractors}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.max_distractors = max_distractors
        self.min_distractors = min_distractors
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0.0, 1.0, (len(self.INPUTS),), np.float32)
        self.action_space = spaces.Discrete(len(self.OUTPUTS))
        self._tape = SymbolTape("memory states")
        self._cue = 0
        self._distractors_left = 0
        self._symbol = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._cue = int(self.np_random.integers(2))
        self._distractors_left = int(
            self.np_random.integers(self.min_distractors, self.max_distractors + 1)
        )
        self._symbol = self._cue
        self._tape.reset(self.INPUTS[self._symbol])
        return self._observation(), self._info()

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = int(action)
        if self._symbol == self.QUERY:
            success = action == self._cue
            self._tape.write(self.OUTPUTS[action], 1 if success else -1)
            self._tape.status = "right" if success else "wrong"
            return self._observation(), float(success), True, False, self._info(success)
        if self._distractors_left > 0:
            self._distractors_left -= 1
            self._symbol = self.DISTRACTOR
        else:
            self._symbol = self.QUERY
        self._tape.write(self.OUTPUTS[action], 0, self.INPUTS[self._symbol])
        return self._observation(), 0.0, False, False, self._info()

    def oracle_action(self) -> int:
        """Answer the remembered cue (reads the hidden state)."""
        return self._cue

    def memoryless_action(self, obs: np.ndarray) -> int:
        """The best policy without memory: echo a visible cue, otherwise guess."""
        symbol = int(np.argmax(obs))
        if symbol in (0, 1):
            return symbol
        return int(self.np_random.integers(2))

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "ansi":
            return self._tape.ansi()
        if self.render_mode == "rgb_array":
            return self._tape.rgb()
        return None

    def _observation(self) -> np.ndarray:
        return one_hot(self._symbol, len(self.INPUTS))

    def _info(self, success: bool | None = None) -> dict[str, Any]:
        info: dict[str, Any] = {"latent": {"cue": self._cue}}
        if success is not None:
            info["is_success"] = bool(success)
        return info
