"""Counting tasks from Edwin Chen's "Exploring LSTMs": a^N X b^N, and with distractors."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from envs.symbols import SymbolTaskEnv, one_hot

B, STOP = 0, 1  # actions


def best_memoryless_stop(min_count: int, max_count: int) -> tuple[float, float]:
    """The stop probability of the best memoryless policy and the success rate it reaches.

    Writing, a memoryless policy sees the separator once and then only its own b's, so it
    writes b on the separator and then stops with a fixed probability s on every "b". It
    succeeds for count N with probability s (1 - s)^(N - 1); averaged over N uniform in
    [lo, hi] (n values, u = 1 - s) that is u^(lo - 1) (1 - u^n) / n, largest at
    u^n = (lo - 1) / (lo - 1 + n).
    """
    n = max_count - min_count + 1
    u = ((min_count - 1) / (min_count - 1 + n)) ** (1 / n)
    return 1.0 - u, u ** (min_count - 1) * (1 - u**n) / n


class CountingEnv(SymbolTaskEnv):
    """Count N a's, then write exactly N b's and stop.

    ## Description

    The environment shows N a's, one a step, then the separator "X". From "X" on the agent
    writes "b" or "stop"; it must write exactly N b's and then stop. What it sees while
    writing is its own last "b", so the count must be kept in memory, counted up while reading
    and down while writing. After Edwin Chen, "Exploring LSTMs" (2017): the a^N X b^N task.

    ## Action Space

    ``Discrete(2)``: 0 writes "b", 1 writes "stop". Actions before "X" are ignored.

    ## Observation Space

    ``Box(0, 1, (3,), float32)``, a one-hot code of the current input symbol:

    | index | meaning                             |
    |-------|-------------------------------------|
    | 0     | "a": count one more                 |
    | 1     | "X": the a's ended, start writing   |
    | 2     | "b": the agent's last b, echoed     |

    ## Rewards

    +1 for each right output (a "b" while b's are owed, "stop" when none are), 0 otherwise.

    ## Starting State

    N is uniform in ``[min_count, max_count]``.

    ## Episode End

    Terminates on "stop" or on the first wrong output (a "b" too many), at most at step
    ``2 N + 1``. ``info["is_success"]``: exactly N b's, then "stop". ``info["latent"]``:
    ``owed`` (a's read minus b's written: the count memory must hold) and ``writing`` (0/1).

    ## Arguments

    - ``max_count: int = 10``, ``min_count: int = 1``: the range of N.
    - ``render_mode``: "ansi" or "rgb_array".

    ## Memoryless ceiling

    While writing, a memoryless policy sees "X" once and then "b" every step, so it can only
    write "b" on "X" and stop on "b" with a fixed probability s: it succeeds for N with
    probability s (1 - s)^(N - 1). Averaged over N uniform in [lo, hi] this is at most
    u^(lo - 1) (1 - u^n) / n with u = 1 - s and n = hi - lo + 1, maximal at
    u^n = (lo - 1) / (lo - 1 + n) (see :func:`best_memoryless_stop`). For N in 1..10 the best
    is to stop right after the first b: **0.1**. For N in 11..20 (``Counting-Long-v0``) it is
    u^10 = 1/2: **0.025**.

    ## Version History

    - v0: initial version (``Counting-v0``: N in 1..10; ``Counting-Long-v0``: N in 11..20,
      for testing generalisation beyond the training counts).
    """

    INPUTS: tuple[str, ...] = ("a", "X", "b")
    OUTPUTS = ("b", "stop")
    SEPARATOR = "X"
    TITLE = "counting"
    memoryless_ceiling: float = 0.1

    def __init__(
        self, max_count: int = 10, min_count: int = 1, render_mode: str | None = None
    ) -> None:
        if not 1 <= min_count <= max_count:
            raise ValueError(f"need 1 <= min_count <= max_count, got {min_count} and {max_count}")
        super().__init__(self.TITLE, render_mode)
        self.max_count = max_count
        self.min_count = min_count
        self._stop_probability, self.memoryless_ceiling = best_memoryless_stop(min_count, max_count)
        self.observation_space = spaces.Box(0.0, 1.0, (len(self.INPUTS),), np.float32)
        self.action_space = spaces.Discrete(len(self.OUTPUTS))
        self._sequence: list[str] = []  # what is shown before writing starts
        self._position = 0
        self._owed = 0
        self._symbol = "a"

    def _reading_sequence(self, count: int) -> list[str]:
        return ["a"] * count + [self.SEPARATOR]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        count = int(self.np_random.integers(self.min_count, self.max_count + 1))
        self._sequence = self._reading_sequence(count)
        self._position = 0
        self._symbol = self._sequence[0]
        self._owed = int(self._symbol == "a")
        self._tape.reset(self._symbol)
        return self._observation(), self._info()

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = int(action)
        if not self._writing():
            self._position += 1
            self._symbol = self._sequence[self._position]
            self._owed += self._symbol == "a"
            self._tape.write(self.OUTPUTS[action], 0, self._symbol)
            return self._observation(), 0.0, False, False, self._info()
        right = (action == B) == (self._owed > 0)
        if right and action == B:
            self._owed -= 1
            self._symbol = "b"
            self._tape.write("b", 1, "b")
            return self._observation(), 1.0, False, False, self._info()
        self._tape.write(self.OUTPUTS[action], 1 if right else -1)
        self._tape.status = "counted" if right else "miscounted"
        return self._observation(), float(right), True, False, self._info(right)

    def oracle_action(self) -> int:
        """Write b while b's are owed, then stop (reads the hidden count)."""
        return B if not self._writing() or self._owed > 0 else STOP

    def memoryless_action(self, obs: np.ndarray) -> int:
        """b on the separator, then stop on each echoed b with the best fixed probability."""
        if self.INPUTS[int(np.argmax(obs))] != "b":
            return B
        return STOP if self.np_random.random() < self._stop_probability else B

    def _writing(self) -> bool:
        return self._position == len(self._sequence) - 1

    def _observation(self) -> np.ndarray:
        return one_hot(self.INPUTS.index(self._symbol), len(self.INPUTS))

    def _info(self, success: bool | None = None) -> dict[str, Any]:
        info: dict[str, Any] = {"latent": {"owed": self._owed, "writing": int(self._writing())}}
        if success is not None:
            info["is_success"] = bool(success)
        return info


class SelectiveCountingEnv(CountingEnv):
    """Count the a's among distractor x's, then write as many b's and stop.

    ## Description

    As :class:`CountingEnv`, but between and around the N a's the environment inserts K
    distractors "x" at random positions, and the separator is "Y". Memory must count the a's
    and ignore the x's. After Edwin Chen, "Exploring LSTMs" (2017): selective counting.

    ## Action Space

    ``Discrete(2)``: 0 writes "b", 1 writes "stop". Actions before "Y" are ignored.

    ## Observation Space

    ``Box(0, 1, (4,), float32)``, a one-hot code of the current input symbol:

    | index | meaning                             |
    |-------|-------------------------------------|
    | 0     | "a": count one more                 |
    | 1     | "x": distractor, do not count       |
    | 2     | "Y": the input ended, start writing |
    | 3     | "b": the agent's last b, echoed     |

    ## Rewards

    +1 for each right output, 0 otherwise, as in :class:`CountingEnv`.

    ## Starting State

    N is uniform in ``[min_count, max_count]``, K uniform in ``[0, max_distractors]``; the
    order of the N a's and K x's is a uniformly random arrangement.

    ## Episode End

    As in :class:`CountingEnv`, at most at step ``N + K + N + 1``.

    ## Arguments

    - ``max_count: int = 10``, ``min_count: int = 1``: the range of N.
    - ``max_distractors: int = 10``: the most x's.
    - ``render_mode``: "ansi" or "rgb_array".

    ## Memoryless ceiling

    While writing, a memoryless policy sees exactly what it sees in :class:`CountingEnv` ("Y"
    once, then its own b's), and the distractors change nothing after "Y", so the ceiling is
    the same: **0.1** for N in 1..10.

    ## Version History

    - v0: initial version (``SelectiveCounting-v0``).
    """

    INPUTS = ("a", "x", "Y", "b")
    SEPARATOR = "Y"
    TITLE = "selective counting"

    def __init__(
        self,
        max_count: int = 10,
        min_count: int = 1,
        max_distractors: int = 10,
        render_mode: str | None = None,
    ) -> None:
        if max_distractors < 0:
            raise ValueError(f"max_distractors must be >= 0, got {max_distractors}")
        super().__init__(max_count, min_count, render_mode)
        self.max_distractors = max_distractors

    def _reading_sequence(self, count: int) -> list[str]:
        distractors = int(self.np_random.integers(self.max_distractors + 1))
        symbols = np.array(["a"] * count + ["x"] * distractors)
        return [str(s) for s in self.np_random.permutation(symbols)] + [self.SEPARATOR]
