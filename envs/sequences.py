"""Sequence tasks from Edwin Chen's "Exploring LSTMs": memory states and copy."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from envs.symbols import SymbolTaskEnv, one_hot


class MemoryStatesEnv(SymbolTaskEnv):
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
        super().__init__("memory states", render_mode)
        self.max_distractors = max_distractors
        self.min_distractors = min_distractors
        self.observation_space = spaces.Box(0.0, 1.0, (len(self.INPUTS),), np.float32)
        self.action_space = spaces.Discrete(len(self.OUTPUTS))
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

    def _observation(self) -> np.ndarray:
        return one_hot(self._symbol, len(self.INPUTS))

    def _info(self, success: bool | None = None) -> dict[str, Any]:
        info: dict[str, Any] = {"latent": {"cue": self._cue}}
        if success is not None:
            info["is_success"] = bool(success)
        return info


class CopyEnv(SymbolTaskEnv):
    """Read a random string over {a, b, c}, then write it back symbol by symbol.

    ## Description

    The environment shows a string of ``min_length`` to ``max_length`` symbols drawn uniformly
    from {a, b, c}, one a step, then the separator "X". From "X" on it shows a blank "_" and
    the agent writes the string back, one symbol a step, as many steps as the string is long.
    The whole string has to be held in memory and replayed in order. After Edwin Chen,
    "Exploring LSTMs" (2017).

    ## Action Space

    ``Discrete(3)``: 0 writes "a", 1 "b", 2 "c". Only what is written from "X" on counts.

    ## Observation Space

    ``Box(0, 1, (5,), float32)``, a one-hot code of the current input symbol:

    | index | meaning                               |
    |-------|---------------------------------------|
    | 0-2   | "a", "b", "c": the string being read  |
    | 3     | "X": the string ended, start writing  |
    | 4     | "_": blank, keep writing              |

    ## Rewards

    +1 for each symbol written right (position by position), 0 otherwise.

    ## Starting State

    The length is uniform in ``[min_length, max_length]``, each symbol uniform over {a, b, c}.

    ## Episode End

    Terminates after the last symbol is written, at step ``2 n`` for a string of length n.
    ``info["is_success"]`` is true iff every symbol was written right. ``info["latent"]``:
    ``length``, ``written`` (symbols written so far) and ``target`` (the symbol due next,
    0-2, or -1 while reading).

    ## Arguments

    - ``max_length: int = 5``: the longest string (Chen's L).
    - ``min_length: int = 1``: the shortest string.
    - ``render_mode``: "ansi" or "rgb_array".

    ## Memoryless ceiling

    While writing, a memoryless policy sees "X" and then blanks, which do not depend on the
    string, so each symbol it writes is independent of the symbol due and right with
    probability 1/3. A string of length n is copied with probability 3^-n, whatever the policy:
    ``mean over n of 3^-n`` = (1 - 3^-L) / (2 L) for lengths 1..L, **0.0996** for L = 5 and
    **0.05** for L = 10 (computed exactly from the arguments).

    ## Version History

    - v0: initial version (``Copy-v0``: L = 5, ``Copy-Long-v0``: L = 10).
    """

    INPUTS = ("a", "b", "c", "X", "_")
    OUTPUTS = ("a", "b", "c")
    SEPARATOR = 3
    BLANK = 4
    memoryless_ceiling: float = (1 - 3.0**-5) / 10

    def __init__(
        self, max_length: int = 5, min_length: int = 1, render_mode: str | None = None
    ) -> None:
        if not 1 <= min_length <= max_length:
            raise ValueError(
                f"need 1 <= min_length <= max_length, got {min_length} and {max_length}"
            )
        super().__init__("copy", render_mode)
        self.max_length = max_length
        self.min_length = min_length
        lengths = np.arange(min_length, max_length + 1)
        self.memoryless_ceiling = float(np.mean(3.0**-lengths))
        self.observation_space = spaces.Box(0.0, 1.0, (len(self.INPUTS),), np.float32)
        self.action_space = spaces.Discrete(len(self.OUTPUTS))
        self._string: list[int] = []
        self._read = 0  # symbols shown so far
        self._written = 0
        self._mistakes = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        length = int(self.np_random.integers(self.min_length, self.max_length + 1))
        self._string = [int(s) for s in self.np_random.integers(len(self.OUTPUTS), size=length)]
        self._read, self._written, self._mistakes = 1, 0, 0
        self._tape.reset(self.INPUTS[self._string[0]])
        return self._observation(), self._info()

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = int(action)
        if not self._writing():
            self._read += 1
            self._tape.write(self.OUTPUTS[action], 0, self.INPUTS[self._symbol()])
            return self._observation(), 0.0, False, False, self._info()
        right = action == self._string[self._written]
        self._written += 1
        self._mistakes += not right
        done = self._written == len(self._string)
        self._tape.write(self.OUTPUTS[action], 1 if right else -1, None if done else "_")
        if done:
            self._tape.status = "copied" if self._mistakes == 0 else f"{self._mistakes} wrong"
            return self._observation(), float(right), True, False, self._info(self._mistakes == 0)
        return self._observation(), float(right), False, False, self._info()

    def oracle_action(self) -> int:
        """Write the remembered symbol due next (anything while reading)."""
        return self._string[self._written] if self._writing() else 0

    def memoryless_action(self, obs: np.ndarray) -> int:
        """Any memoryless policy is equally good; this one writes uniformly at random."""
        return int(self.np_random.integers(len(self.OUTPUTS)))

    def _writing(self) -> bool:
        return self._read > len(self._string)

    def _symbol(self) -> int:
        if self._read <= len(self._string):
            return self._string[self._read - 1]
        return self.SEPARATOR if self._written == 0 else self.BLANK

    def _observation(self) -> np.ndarray:
        return one_hot(self._symbol(), len(self.INPUTS))

    def _info(self, success: bool | None = None) -> dict[str, Any]:
        done = self._written == len(self._string)
        target = self._string[self._written] if self._writing() and not done else -1
        latent = {"length": len(self._string), "written": self._written, "target": target}
        info: dict[str, Any] = {"latent": latent}
        if success is not None:
            info["is_success"] = bool(success)
        return info
