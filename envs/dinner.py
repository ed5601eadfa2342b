"""The dinner cycle from Brandon Rohrer's "How recurrent neural networks and LSTM work"."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from envs.symbols import SymbolTaskEnv, one_hot

DINNERS = ("pizza", "sushi", "waffles")  # cooked in this order, forever
AWAY = len(DINNERS)  # index of the "away" flag in the observation


class DinnerCycleEnv(SymbolTaskEnv):
    """Predict tonight's dinner from a cycle, also after days out of town.

    ## Description

    A flatmate cooks pizza, sushi, waffles, pizza, ... one dish a night, never breaking the
    cycle. Each day the agent is told what was cooked last night and predicts tonight's dish.
    After a few nights at home it leaves town for a trip of up to two weeks; nights away are
    not seen, and the agent keeps predicting. On those days the answer is the last dish seen,
    played forward by the number of nights since: memory must carry the dish and count the
    nights modulo 3. After Brandon Rohrer's introduction to LSTMs (2017).

    ## Action Space

    ``Discrete(3)``: the dish predicted for tonight, 0 pizza, 1 sushi, 2 waffles.

    ## Observation Space

    ``Box(0, 1, (4,), float32)``:

    | index | meaning                                          |
    |-------|--------------------------------------------------|
    | 0-2   | last night's dish, one-hot (all 0 when away)     |
    | 3     | 1 if the agent was away last night, else 0       |

    ## Rewards

    +1 for each night predicted right, 0 otherwise.

    ## Starting State

    The first night's dish is uniform over the three. The agent is home for H nights (H
    uniform in ``[1, max_home_nights]``), then away for A nights (A uniform in
    ``[min_away_nights, max_away_nights]``), and predicts one night more: the night it is back.

    ## Episode End

    Terminates after ``H + A + 1`` predictions (H + 1 with last night seen, A blind).
    ``info["is_success"]``: every prediction right. ``info["latent"]``: ``tonight`` (the
    dish due) and ``nights_unseen`` (nights since the last dish seen).

    ## Arguments

    - ``max_home_nights: int = 3``
    - ``min_away_nights: int = 1``, ``max_away_nights: int = 14``: the length of the trip.
    - ``render_mode``: "ansi" or "rgb_array".

    ## Memoryless ceiling

    With last night seen, tonight is its successor: always right. Away, a memoryless policy
    sees the same flag every night and draws each prediction independently from a fixed
    distribution q, while the dishes due on the A blind nights run through the cycle from a
    uniformly random start. The chance of all A right is (q0 q1 q2)^m times 1, 1/3 or
    (q0 q1 + q1 q2 + q2 q0) / 3 for A = 3m, 3m + 1 or 3m + 2; each factor is largest at q
    uniform, so it is at most 3^-A. Averaged over A uniform in
    [lo, hi]: ``mean of 3^-A`` = (1 - 3^-14) / 28 = **0.0357** for trips of 1 to 14 nights.
    (Accuracy alone would hide this: the same policy gets most nights right.)

    ## Version History

    - v0: initial version (``DinnerCycle-v0``).
    """

    memoryless_ceiling: float = (1 - 3.0**-14) / 28

    def __init__(
        self,
        max_home_nights: int = 3,
        min_away_nights: int = 1,
        max_away_nights: int = 14,
        render_mode: str | None = None,
    ) -> None:
        if max_home_nights < 1:
            raise ValueError(f"max_home_nights must be >= 1, got {max_home_nights}")
        if not 1 <= min_away_nights <= max_away_nights:
            raise ValueError(
                "need 1 <= min_away_nights <= max_away_nights, "
                f"got {min_away_nights} and {max_away_nights}"
            )
        super().__init__("dinner cycle", render_mode)
        self.max_home_nights = max_home_nights
        self.min_away_nights = min_away_nights
        self.max_away_nights = max_away_nights
        trips = np.arange(min_away_nights, max_away_nights + 1)
        self.memoryless_ceiling = float(np.mean(3.0**-trips))
        self.observation_space = spaces.Box(0.0, 1.0, (len(DINNERS) + 1,), np.float32)
        self.action_space = spaces.Discrete(len(DINNERS))
        self._first_dish = 0
        self._night = 0  # tonight, counted from the first night predicted
        self._home_nights = 1  # nights 0..H-1 are seen the next day
        self._away_nights = 1
        self._mistakes = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._first_dish = int(self.np_random.integers(len(DINNERS)))
        self._home_nights = int(self.np_random.integers(1, self.max_home_nights + 1))
        self._away_nights = int(
            self.np_random.integers(self.min_away_nights, self.max_away_nights + 1)
        )
        self._night, self._mistakes = 0, 0
        self._tape.reset(self._seen_label())
        return self._observation(), self._info()

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        right = int(action) == self._dish(self._night)
        self._mistakes += not right
        self._night += 1
        done = self._night == self._home_nights + self._away_nights + 1
        self._tape.write(
            DINNERS[int(action)], 1 if right else -1, None if done else self._seen_label()
        )
        if done:
            self._tape.status = "all right" if self._mistakes == 0 else f"{self._mistakes} wrong"
            return self._observation(), float(right), True, False, self._info(self._mistakes == 0)
        return self._observation(), float(right), False, False, self._info()

    def oracle_action(self) -> int:
        """Tonight's dish (reads the hidden cycle position)."""
        return self._dish(self._night)

    def memoryless_action(self, obs: np.ndarray) -> int:
        """The successor of last night's dish when seen; a uniform guess when away."""
        if obs[AWAY] > 0.5:
            return int(self.np_random.integers(len(DINNERS)))
        return (int(np.argmax(obs[:AWAY])) + 1) % len(DINNERS)

    def _dish(self, night: int) -> int:
        return (self._first_dish + night) % len(DINNERS)

    def _last_night_seen(self) -> bool:
        # night -1 and the H home nights 0..H-1 are seen the next day
        return self._night <= self._home_nights

    def _seen_label(self) -> str:
        return DINNERS[self._dish(self._night - 1)] if self._last_night_seen() else "away"

    def _observation(self) -> np.ndarray:
        if self._last_night_seen():
            return one_hot(self._dish(self._night - 1), len(DINNERS) + 1)
        return one_hot(AWAY, len(DINNERS) + 1)

    def _info(self, success: bool | None = None) -> dict[str, Any]:
        unseen = max(0, self._night - self._home_nights)
        info: dict[str, Any] = {
            "latent": {"tonight": self._dish(self._night), "nights_unseen": unseen}
        }
        if success is not None:
            info["is_success"] = bool(success)
        return info
