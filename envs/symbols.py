"""Shared pieces of the symbolic memory tasks: one-hot codes, a rendered symbol tape, a base.

A symbolic task shows one input symbol a step and the agent answers with one output symbol.
:class:`SymbolTape` records both streams and draws them as two rows of cells, the input row
above the output row, so a video shows what the agent saw and what it wrote, step by step.
Text is rasterised with matplotlib's FreeType bindings into numpy arrays (no figure per
frame), which keeps rendering fast enough for long videos.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np
from matplotlib import font_manager
from matplotlib.ft2font import FT2Font

# Frame size in pixels: readable as is in a video, and small enough to encode quickly.
FRAME_WIDTH = 480
FRAME_HEIGHT = 160
FONT_PX = 15  # glyph height; DejaVu Sans Mono at 15 px stays legible at 480 px wide
MARGIN = 8

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
GRID = (190, 190, 190)
CURRENT = (255, 236, 160)  # the cell of the current step
RIGHT = (40, 150, 60)  # outputs that were rewarded
WRONG = (200, 40, 40)  # outputs that were penalised
MUTED = (150, 150, 150)  # outputs that were ignored (no reward either way)


def one_hot(index: int, size: int) -> np.ndarray:
    """A float32 vector of ``size`` zeros with a one at ``index``."""
    vector = np.zeros(size, dtype=np.float32)
    vector[index] = 1.0
    return vector


@lru_cache(maxsize=512)
def text_mask(text: str, px: int = FONT_PX) -> np.ndarray:
    """Coverage (0..1, height x width) of ``text`` in a monospace font, on a common baseline.

    FreeType crops the bitmap to the inked glyphs, so "saw", "Spot" and "." would come out
    at different heights; padding each to the font's full ascent and descent puts every
    string's baseline on the same row, and texts drawn at one y line up.
    """
    font = FT2Font(font_manager.findfont("DejaVu Sans Mono"))
    font.set_size(px, 72)  # at 72 dpi one point is one pixel
    font.set_text(text, 0.0)
    font.draw_glyphs_to_bitmap()
    ink = np.asarray(font.get_image(), dtype=np.float32) / 255.0
    ascent = int(np.ceil(font.ascender / font.units_per_EM * px))
    descent = int(np.ceil(-font.descender / font.units_per_EM * px))
    below = int(round(font.get_descent() / 64))  # ink rows under the baseline
    top = max(0, ascent - (ink.shape[0] - below))
    mask = np.zeros((max(ascent + descent, top + ink.shape[0]), ink.shape[1]), np.float32)
    mask[top : top + ink.shape[0]] = ink
    return mask


def draw_text(canvas: np.ndarray, text: str, x: int, y: int, color=INK, px: int = FONT_PX) -> None:
    """Blend ``text`` onto ``canvas`` with its top-left corner at (x, y), clipped."""
    if not text:
        return
    mask = text_mask(text, px)
    height = min(mask.shape[0], canvas.shape[0] - y)
    width = min(mask.shape[1], canvas.shape[1] - x)
    if height <= 0 or width <= 0:
        return
    alpha = mask[:height, :width, None]
    region = canvas[y : y + height, x : x + width].astype(np.float32)
    blended = region * (1.0 - alpha) + np.asarray(color, dtype=np.float32) * alpha
    canvas[y : y + height, x : x + width] = blended.astype(np.uint8)


def draw_box(canvas: np.ndarray, x0: int, y0: int, x1: int, y1: int, fill=None) -> None:
    """A rectangle outline in GRID colour, optionally filled."""
    if fill is not None:
        canvas[y0:y1, x0:x1] = fill
    canvas[y0:y1, [x0, x1 - 1]] = GRID
    canvas[[y0, y1 - 1], x0:x1] = GRID


class SymbolTape:
    """The inputs shown and outputs written so far in one episode, renderable.

    ``inputs[t]`` is the symbol observed at step t; ``outputs[t]`` the agent's answer to it
    and ``marks[t]`` its judgement: +1 rewarded, -1 penalised, 0 ignored.
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.marks: list[int] = []
        self.status = ""

    def reset(self, first_input: str) -> None:
        self.inputs = [first_input]
        self.outputs = []
        self.marks = []
        self.status = ""

    def write(self, output: str, mark: int, next_input: str | None = None) -> None:
        """Record the answer to the current input, then the next input if the episode goes on."""
        self.outputs.append(output)
        self.marks.append(mark)
        if next_input is not None:
            self.inputs.append(next_input)

    def ansi(self) -> str:
        signs = {1: "+", -1: "-", 0: ""}
        # inputs may be one longer than outputs: the current input, not yet answered
        answered = zip(self.inputs, self.outputs, self.marks, strict=False)
        cells = [f"{seen}>{written}{signs[mark]}" for seen, written, mark in answered]
        if len(self.inputs) > len(self.outputs):
            cells.append(f"{self.inputs[-1]}>?")
        return f"{self.title}: " + " ".join(cells) + (f"  [{self.status}]" if self.status else "")

    def rgb(self, width: int = FRAME_WIDTH, height: int = FRAME_HEIGHT) -> np.ndarray:
        canvas = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
        draw_text(canvas, self.title, MARGIN, MARGIN)
        status_width = text_mask(self.status).shape[1] if self.status else 0
        draw_text(canvas, self.status, width - MARGIN - status_width, MARGIN)

        label_width = text_mask("out").shape[1] + MARGIN
        longest = max((len(s) for s in self.inputs + self.outputs), default=1)
        cell = max(28, text_mask("M" * longest).shape[1] + 10)
        fits = max(1, (width - 2 * MARGIN - label_width) // cell)
        first = max(0, len(self.inputs) - fits)  # scroll: the newest cells stay in view
        row_height = FONT_PX + 16
        rows_top = (height - 2 * row_height) // 2 + MARGIN
        for row, (label, symbols) in enumerate((("in", self.inputs), ("out", self.outputs))):
            top = rows_top + row * (row_height + 6)
            draw_text(canvas, label, MARGIN, top + 6, color=MUTED)
            for t in range(first, len(self.inputs)):
                x0 = MARGIN + label_width + (t - first) * cell
                fill = CURRENT if t == len(self.inputs) - 1 else None
                draw_box(canvas, x0, top, x0 + cell, top + row_height, fill)
                if t < len(symbols):
                    color = INK
                    if row == 1:
                        color = {1: RIGHT, -1: WRONG, 0: MUTED}[self.marks[t]]
                    text = symbols[t]
                    offset = (cell - text_mask(text).shape[1]) // 2
                    draw_text(canvas, text, x0 + max(offset, 2), top + 6, color=color)
        return canvas


class SymbolTaskEnv(gym.Env):
    """Base of the symbolic tasks: render modes, the tape, and the policy hooks of the contract.

    Subclasses fill ``self._tape`` as they step and implement :meth:`oracle_action` (may read
    hidden state) and :meth:`memoryless_action` (a function of the observation and
    ``self.np_random`` only), the two reference policies the tests run over every task.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    memoryless_ceiling: float

    def __init__(self, title: str, render_mode: str | None = None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self._tape = SymbolTape(title)

    def oracle_action(self) -> Any:
        raise NotImplementedError

    def memoryless_action(self, obs: np.ndarray) -> Any:
        raise NotImplementedError

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "ansi":
            return self._tape.ansi()
        if self.render_mode == "rgb_array":
            return self._tape.rgb()
        return None
