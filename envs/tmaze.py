"""Bakker's T-maze: a cue at the start of a long corridor says which way to turn at its end."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.symbols import FRAME_HEIGHT, FRAME_WIDTH, MARGIN, draw_box, draw_text, text_mask

NORTH, EAST, SOUTH, WEST = 0, 1, 2, 3  # actions
# Bakker (2002)'s three observation bits: the road sign at the start, the corridor, the junction.
SIGN_GOAL_NORTH = (0.0, 1.0, 1.0)
SIGN_GOAL_SOUTH = (1.0, 1.0, 0.0)
CORRIDOR = (1.0, 0.0, 1.0)
JUNCTION = (0.0, 1.0, 0.0)
GOAL_REWARD = 4.0
PENALTY = -0.1  # bumping into a wall (standing still) or entering the wrong arm

FLOOR = (225, 225, 225)
GOAL_FILL = (170, 225, 170)
SIGN_FILL = (250, 205, 120)
AGENT = (40, 40, 40)


class TMazeEnv(gym.Env):
    """Walk a corridor, then turn towards the arm that the sign at its start pointed to.

    ## Description

    The agent starts at the west end of a corridor, on a road sign that tells whether the
    goal lies in the north or the south arm of the T-junction ``length`` steps east. The
    corridor looks the same everywhere and the junction looks the same whatever the sign said,
    so the sign must be remembered for the whole walk. After Bram Bakker, "Reinforcement
    Learning with Long Short-Term Memory" (NIPS 2001 / 2002), with his observation code and
    reward scheme.

    ## Action Space

    ``Discrete(4)``: 0 north, 1 east, 2 south, 3 west. A move into a wall leaves the agent
    where it is.

    ## Observation Space

    ``Box(0, 1, (3,), float32)``, Bakker's three bits:

    | observation | meaning                              |
    |-------------|--------------------------------------|
    | 0 1 1       | start, the sign says the goal is north |
    | 1 1 0       | start, the sign says the goal is south |
    | 1 0 1       | corridor                             |
    | 0 1 0       | T-junction                           |

    ## Rewards

    +4 for entering the goal arm, -0.1 for entering the other arm, -0.1 for every move into a
    wall (standing still), 0 otherwise. The shortest episode returns 4. (+4 and -0.1 for
    standing still are Bakker's; -0.1 for the wrong arm is our reading of his scheme.)

    ## Starting State

    At the start, the goal north or south with probability 1/2 each.

    ## Episode End

    Terminates when the agent enters either arm (the decision at the junction). Truncated by
    ``max_episode_steps`` at registration (100 for ``TMaze-v0``, 500 for ``TMaze-Long-v0``).
    ``info["is_success"]`` is given every step, true once the goal arm is entered, so that it
    is also there when the time limit cuts an episode. ``info["latent"]``: ``cue`` (0 north,
    1 south) and ``position`` (steps east of the start).

    ## Arguments

    - ``length: int = 10``: steps from the start to the junction (Bakker's corridor length).
    - ``render_mode``: "ansi" or "rgb_array".

    ## Memoryless ceiling

    At the junction the observation is 0 1 0 whatever the sign said, so a memoryless policy
    enters the north arm first with some probability p that does not depend on the cue, and
    succeeds with probability p/2 + (1 - p)/2 = 1/2 at most; walking east until the junction
    and turning at random reaches it: **0.5**.

    ## Version History

    - v0: initial version (``TMaze-v0``: length 10, ``TMaze-Long-v0``: length 50).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 8}
    memoryless_ceiling: float = 0.5

    def __init__(self, length: int = 10, render_mode: str | None = None) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.length = length
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0.0, 1.0, (3,), np.float32)
        self.action_space = spaces.Discrete(4)
        self._cue = NORTH
        self._position = 0
        self._arm: int | None = None  # NORTH or SOUTH once an arm is entered

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._cue = NORTH if self.np_random.random() < 0.5 else SOUTH
        self._position = 0
        self._arm = None
        return self._observation(), self._info()

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = int(action)
        at_junction = self._position == self.length
        if at_junction and action in (NORTH, SOUTH):
            self._arm = action
            reward = GOAL_REWARD if action == self._cue else PENALTY
            return self._observation(), reward, True, False, self._info()
        if action == EAST and not at_junction:
            self._position += 1
        elif action == WEST and self._position > 0:
            self._position -= 1
        else:
            return self._observation(), PENALTY, False, False, self._info()
        return self._observation(), 0.0, False, False, self._info()

    def oracle_action(self) -> int:
        """East to the junction, then towards the remembered sign."""
        return self._cue if self._position == self.length else EAST

    def memoryless_action(self, obs: np.ndarray) -> int:
        """East until the junction, then a coin flip between the arms."""
        if tuple(obs) == JUNCTION:
            return NORTH if self.np_random.random() < 0.5 else SOUTH
        return EAST

    def _observation(self) -> np.ndarray:
        if self._position == 0:
            bits = SIGN_GOAL_NORTH if self._cue == NORTH else SIGN_GOAL_SOUTH
        else:
            bits = JUNCTION if self._position == self.length else CORRIDOR
        return np.array(bits, np.float32)

    def _info(self) -> dict[str, Any]:
        return {
            "latent": {"cue": int(self._cue == SOUTH), "position": self._position},
            "is_success": self._arm is not None and self._arm == self._cue,
        }

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "ansi":
            return self._ansi()
        if self.render_mode == "rgb_array":
            return self._rgb()
        return None

    def _arm_marks(self) -> tuple[str, str]:
        north = "G" if self._cue == NORTH else "#"
        south = "G" if self._cue == SOUTH else "#"
        if self._arm is not None:
            north, south = ("@", south) if self._arm == NORTH else (north, "@")
        return north, south

    def _ansi(self) -> str:
        """Three lines: the arms above and below the junction, the corridor between them."""
        north, south = self._arm_marks()
        corridor = ["S"] + ["."] * (self.length - 1) + ["T"]
        if self._arm is None:
            corridor[self._position] = "@"
        pad = " " * self.length
        return f"{pad}{north}\n{''.join(corridor)}\n{pad}{south}"

    def _status(self) -> str:
        if self._arm is None:
            return "goal " + ("north" if self._cue == NORTH else "south")
        return "goal reached" if self._arm == self._cue else "wrong arm"

    def _rgb(self) -> np.ndarray:
        canvas = np.full((FRAME_HEIGHT, FRAME_WIDTH, 3), 255, dtype=np.uint8)
        draw_text(canvas, f"T-maze (length {self.length})", MARGIN, MARGIN)
        status = self._status()
        draw_text(canvas, status, FRAME_WIDTH - MARGIN - text_mask(status).shape[1], MARGIN)
        title_height = 30
        cell = min(
            36,
            (FRAME_WIDTH - 2 * MARGIN) // (self.length + 1),
            (FRAME_HEIGHT - title_height) // 3,
        )
        top = title_height + (FRAME_HEIGHT - title_height - 3 * cell) // 2
        left = (FRAME_WIDTH - cell * (self.length + 1)) // 2

        def box(column: int, row: int, fill) -> tuple[int, int]:
            x0, y0 = left + column * cell, top + row * cell
            draw_box(canvas, x0, y0, x0 + cell, y0 + cell, fill)
            return x0, y0

        for column in range(self.length + 1):
            box(column, 1, SIGN_FILL if column == 0 else FLOOR)
        for arm, row in ((NORTH, 0), (SOUTH, 2)):
            box(self.length, row, GOAL_FILL if arm == self._cue else FLOOR)
        # The sign: an arrow-like bar on the north or south edge of the start cell.
        x0, y0 = left, top + cell
        bar = max(2, cell // 5)
        edge = (
            slice(y0 + 1, y0 + 1 + bar)
            if self._cue == NORTH
            else slice(y0 + cell - 1 - bar, y0 + cell - 1)
        )
        canvas[edge, x0 + 1 : x0 + cell - 1] = (200, 90, 20)
        row = 1 if self._arm is None else (0 if self._arm == NORTH else 2)
        column = self.length if self._arm is not None else self._position
        ax, ay = left + column * cell, top + row * cell
        inset = max(1, cell // 4)
        canvas[ay + inset : ay + cell - inset, ax + inset : ax + cell - inset] = AGENT
        return canvas
