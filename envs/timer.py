"""Herbert Jaeger's timer: hold an output on for a duration set when the timer is triggered."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.symbols import FRAME_HEIGHT, FRAME_WIDTH, INK, MARGIN, draw_text, text_mask

LEVEL = 0.5  # the output while the timer runs, as in Jaeger's specification
SETTINGS = np.arange(1, 11) / 10  # u2 takes the values 0.1, 0.2, ..., 1.0
SUCCESS_MAE = 0.01  # default success threshold on the episode's mean absolute error

PLOT_TOP = 32  # rgb frame: the strip chart below the title line
STEP_PX = 3  # pixels per time step in the strip chart
TARGET_FILL = (200, 235, 200)
TRIGGER = (220, 60, 60)
OUTPUT = (40, 90, 200)


class TimerEnv(gym.Env):
    """Output 0.5 for a duration set at each trigger, then 0, with no clock to look at.

    ## Description

    Two inputs arrive every step: ``u1``, a spike that is 1 on the step the timer is
    triggered and 0 otherwise, and ``u2`` in {0.1, ..., 1.0}, drawn anew at each trigger and
    held until the next. From a trigger on, the output must be 0.5 for
    ``D = round(duration_scale * u2)`` steps and 0 afterwards, until the next trigger, which
    comes after an idle gap. The agent sees how long the pulse should be but not how long ago
    it began: memory must run the clock. After Herbert Jaeger's timer task (2002), whose
    original specification is ``duration_scale = 1000``.

    ## Action Space

    ``Box(-1, 1, (1,), float32)``: the output is ``y = clip(a, 0, 1)``, so any negative action
    means "off" (the symmetric range is what stable-baselines3 expects of a continuous action).

    ## Observation Space

    ``Box(0, 1, (2,), float32)``:

    | index | meaning                                                   |
    |-------|-----------------------------------------------------------|
    | 0     | u1: 1 on the step of a trigger, else 0                    |
    | 1     | u2: the duration setting of the last trigger, 0.1 to 1.0  |

    ## Rewards

    ``-|y - target|`` each step, target 0.5 during a pulse and 0 otherwise.

    ## Starting State

    The first trigger is on the first step. Each u2 is uniform over its ten values; after
    each pulse comes an idle gap uniform in ``[min_gap, max_gap]`` steps.

    ## Episode End

    Terminates after ``triggers`` pulses and their gaps (about 205 steps for ``Timer-v0``,
    1 000 for ``Timer-Long-v0``, 10 000 for ``Timer-Jaeger-v0``). ``info["is_success"]``: the
    mean absolute error over the episode is below ``success_mae`` (0.01: a few steps off at
    the pulse edges, nothing more); ``info["mae"]`` gives it. ``info["latent"]``:
    ``steps_left`` (steps of the pulse still due, this one included), ``elapsed`` (steps since
    the trigger) and ``duration`` (D).

    ## Arguments

    - ``duration_scale: int = 20``: D = round(duration_scale * u2); at least 15, so that
      every pulse lasts at least 2 steps and only its first step is visible.
    - ``triggers: int = 5``: pulses in an episode.
    - ``min_gap: int | None = None``, ``max_gap: int | None = None``: idle steps after each
      pulse, by default ``duration_scale`` and ``2 * duration_scale``. ``min_gap`` may not be
      shorter than the longest pulse (see the ceiling).
    - ``success_mae: float = 0.01``
    - ``render_mode``: "ansi" or "rgb_array".

    ## Memoryless ceiling

    A memoryless policy sees (0, u2) on the D - 1 pulse steps after a trigger and on the g
    idle steps that follow, and must answer all of them alike: its error there is at least
    (D - 1)|y - 0.5| + g|y| >= 0.5 min(D - 1, g) = 0.5 (D - 1), as g >= min_gap >= D. Its best
    is 0.5 on the trigger step and 0 otherwise, with an episode MAE of at least
    0.5 (D_min - 1) / (D_min + max_gap): 0.0119 for ``Timer-v0``, 0.021 for
    ``Timer-Long-v0``, 0.024 for ``Timer-Jaeger-v0``, all above ``success_mae``, which the
    constructor checks. So no deterministic memoryless policy ever succeeds. A coin-flipping
    one has the same expected error and could only get below the threshold by its coins
    falling right on nearly every ambiguous step of an episode of mostly shortest pulses,
    a chance that is vanishingly small: **0.0**.

    ## Version History

    - v0: initial version (``Timer-v0``: scale 20, ``Timer-Long-v0``: 100,
      ``Timer-Jaeger-v0``: 1000).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 20}
    memoryless_ceiling: float = 0.0

    def __init__(
        self,
        duration_scale: int = 20,
        triggers: int = 5,
        min_gap: int | None = None,
        max_gap: int | None = None,
        success_mae: float = SUCCESS_MAE,
        render_mode: str | None = None,
    ) -> None:
        min_gap = duration_scale if min_gap is None else min_gap
        max_gap = 2 * duration_scale if max_gap is None else max_gap
        if triggers < 1:
            raise ValueError(f"triggers must be >= 1, got {triggers}")
        if not duration_scale <= min_gap <= max_gap:
            raise ValueError(
                "need duration_scale <= min_gap <= max_gap (gaps at least as long as the "
                f"longest pulse), got {duration_scale}, {min_gap}, {max_gap}"
            )
        shortest = self._duration(duration_scale, SETTINGS[0])
        memoryless_mae = LEVEL * (shortest - 1) / (shortest + max_gap)
        if not 0 < success_mae < memoryless_mae:
            raise ValueError(
                f"success_mae must lie in (0, {memoryless_mae:.4f}), below the error of the "
                f"best memoryless policy for these settings; got {success_mae}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.duration_scale = duration_scale
        self.triggers = triggers
        self.min_gap = min_gap
        self.max_gap = max_gap
        self.success_mae = success_mae
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        # The whole episode is laid out at reset: inputs, target and pulse bookkeeping a step.
        self._u1 = np.zeros(0, np.float32)
        self._u2 = np.zeros(0, np.float32)
        self._target = np.zeros(0, np.float32)
        self._trigger_step = np.zeros(0, np.int64)
        self._duration_at = np.zeros(0, np.int64)
        self._outputs: list[float] = []
        self._t = 0
        self._error = 0.0

    @staticmethod
    def _duration(scale: int, setting: float) -> int:
        return int(round(scale * setting))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        u1, u2, target, trigger_step, duration_at = [], [], [], [], []
        for _ in range(self.triggers):
            setting = float(self.np_random.choice(SETTINGS))
            duration = self._duration(self.duration_scale, setting)
            gap = int(self.np_random.integers(self.min_gap, self.max_gap + 1))
            start = len(u1)
            u1 += [1.0] + [0.0] * (duration + gap - 1)
            u2 += [setting] * (duration + gap)
            target += [LEVEL] * duration + [0.0] * gap
            trigger_step += [start] * (duration + gap)
            duration_at += [duration] * (duration + gap)
        self._u1 = np.asarray(u1, np.float32)
        self._u2 = np.asarray(u2, np.float32)
        self._target = np.asarray(target, np.float32)
        self._trigger_step = np.asarray(trigger_step)
        self._duration_at = np.asarray(duration_at)
        self._t, self._error, self._outputs = 0, 0.0, []
        return self._observation(), self._info()

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        output = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], 0.0, 1.0))
        error = abs(output - float(self._target[self._t]))
        self._error += error
        self._outputs.append(output)
        self._t += 1
        if self._t < len(self._target):
            return self._observation(), -error, False, False, self._info()
        mae = self._error / len(self._target)
        info = self._info()  # the final observation and latent repeat the last step's
        info.update(is_success=bool(mae < self.success_mae), mae=mae)
        return self._observation(), -error, True, False, info

    def oracle_action(self) -> np.ndarray:
        """The target itself (reads the hidden clock)."""
        return np.array([self._target[self._t]], np.float32)

    def memoryless_action(self, obs: np.ndarray) -> np.ndarray:
        """On at the trigger step, which is visible, off otherwise (gaps outlast pulses)."""
        return np.array([LEVEL if obs[0] > 0.5 else 0.0], np.float32)

    def _now(self) -> int:
        return min(self._t, len(self._target) - 1)

    def _observation(self) -> np.ndarray:
        now = self._now()
        return np.array([self._u1[now], self._u2[now]], np.float32)

    def _info(self) -> dict[str, Any]:
        now = self._now()
        elapsed = now - int(self._trigger_step[now])
        duration = int(self._duration_at[now])
        latent = {
            "steps_left": max(0, duration - elapsed),
            "elapsed": elapsed,
            "duration": duration,
        }
        return {"latent": latent}

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "ansi":
            return self._status(verbose=True)
        if self.render_mode == "rgb_array":
            return self._strip_chart()
        return None

    def _status(self, verbose: bool = False) -> str:
        now = self._now()
        mae = self._error / max(1, len(self._outputs))
        text = f"u2 {self._u2[now]:.1f}  MAE {mae:.3f}"
        if verbose:
            last = self._outputs[-1] if self._outputs else float("nan")
            text = f"timer t={len(self._outputs)} u1={self._u1[now]:.0f} y={last:.2f} " + text
        return text

    def _strip_chart(self) -> np.ndarray:
        """The last steps: target pulses shaded, triggers in red, the output as a blue line."""
        canvas = np.full((FRAME_HEIGHT, FRAME_WIDTH, 3), 255, dtype=np.uint8)
        draw_text(canvas, f"timer (scale {self.duration_scale})", MARGIN, MARGIN)
        status = self._status()
        draw_text(canvas, status, FRAME_WIDTH - MARGIN - text_mask(status).shape[1], MARGIN)
        bottom, top = FRAME_HEIGHT - MARGIN, PLOT_TOP
        canvas[bottom, MARGIN : FRAME_WIDTH - MARGIN] = INK  # the zero line

        def row(value: float) -> int:  # output range [0, 1] over the plot height
            return int(round(bottom - value * (bottom - top)))

        shown = (FRAME_WIDTH - 2 * MARGIN) // STEP_PX
        first = max(0, len(self._outputs) - shown)
        previous = None
        for column, t in enumerate(range(first, len(self._outputs))):
            x = MARGIN + column * STEP_PX
            if self._target[t] > 0:
                canvas[row(LEVEL) : bottom, x : x + STEP_PX] = TARGET_FILL
            if self._u1[t] > 0:
                canvas[top:bottom, x : x + 1] = TRIGGER
            y = row(self._outputs[t])
            low, high = (y, y) if previous is None else (min(y, previous), max(y, previous))
            canvas[low - 1 : high + 1, x : x + STEP_PX] = OUTPUT
            previous = y
        return canvas
