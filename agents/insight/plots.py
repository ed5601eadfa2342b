"""Figures of a run: memory heatmaps, the units that track the task, the learning curve.

Every function returns a matplotlib ``Figure`` drawn on the Agg canvas without pyplot: no
global backend switched, no display needed, nothing changed for a caller who plots
interactively. :func:`save_png` writes a figure and :func:`png_bytes` gives it for embedding.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from agents import atomic
from agents.insight.probes import Probe, describe
from agents.insight.traces import Trace

LEARNING_CURVE_FILE = "learning_curve.png"  # saved in the run folder at the end of training
HEATMAP_CMAP = "RdBu_r"  # diverging: blue low, white middle, red high
MAX_STEPS = 200  # steps drawn from the start of a trace; longer stretches blur into stripes
MAX_UNITS = 64  # units drawn per heatmap; the most variable ones when a layer is larger
ROLLING_EPISODES = 20  # training returns are smoothed over this many episodes


def new_figure(**kwargs) -> Figure:
    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic.replacing(path) as temporary:
        figure.savefig(temporary, dpi=100, bbox_inches="tight")
    return path


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def color_range(quantity: str, values: np.ndarray) -> tuple[float, float]:
    """Fixed colour ranges, so that one colour means one value in every figure: gates are
    sigmoids in [0, 1] (white = half open), h and the candidate tanh outputs in [-1, 1];
    the cell state is unbounded and gets a symmetric range of at least [-1, 1]."""
    if quantity.startswith("gate_") and quantity != "gate_candidate":
        return 0.0, 1.0
    if quantity == "c":
        bound = float(np.ceil(max(1.0, np.abs(values).max(initial=0.0))))
        return -bound, bound
    return -1.0, 1.0


def _window(trace: Trace, max_steps: int) -> slice:
    """The first whole episodes that fit in ``max_steps`` (at least part of the first)."""
    ends = np.flatnonzero(trace["done"]) + 1
    whole = ends[ends <= max_steps]
    return slice(0, int(whole[-1]) if len(whole) else min(max_steps, len(trace)))


def drawn_episodes(trace: Trace, max_steps: int = MAX_STEPS) -> str:
    """What the heatmaps and unit plots draw of ``trace``, in words: "all 12 traced episodes
    (96 steps)", "the first 3 of the 10 traced episodes (183 of 1078 steps)"."""
    window = _window(trace, max_steps)
    traced = int((trace["t"] == 0).sum())
    if window.stop == len(trace):
        episodes = "the one traced episode" if traced == 1 else f"all {traced} traced episodes"
        return f"{episodes} ({len(trace)} steps)"
    whole = int(trace["done"][window].sum())
    first = {0: "part of the first", 1: "the first"}.get(whole, f"the first {whole}")
    return f"{first} of the {traced} traced episodes ({window.stop} of {len(trace)} steps)"


def _episode_starts(trace: Trace, window: slice) -> np.ndarray:
    t = trace["t"][window]
    return np.flatnonzero(t == 0)


def _mark_episodes(axes, starts: np.ndarray) -> None:
    for start in starts:
        axes.axvline(start - 0.5, color="black", linewidth=0.8, linestyle="--", alpha=0.6)


def _shown_units(values: np.ndarray) -> np.ndarray:
    if values.shape[1] <= MAX_UNITS:
        return np.arange(values.shape[1])
    return np.sort(np.argsort(values.var(axis=0))[-MAX_UNITS:])


def plot_memory(trace: Trace, layer: str = "actor/layer0", max_steps: int = MAX_STEPS) -> Figure:
    """Heatmaps of units x time for h, c and each gate of ``layer``, under tracks of the
    observations, actions, rewards and latent variables; dashed lines start episodes."""
    if f"{layer}/h" not in trace.arrays:
        raise ValueError(f"the trace has no layer {layer!r}; it has {trace.layers}")
    window = _window(trace, max_steps)
    starts = _episode_starts(trace, window)
    quantities = [q for q in ("h", "c") if f"{layer}/{q}" in trace.arrays] + trace.gates(layer)
    shown = _shown_units(trace[f"{layer}/h"][window])
    track_heights = [1.2, 0.8, 0.8] + ([0.9] if trace.latent_names else [])
    heights = track_heights + [max(1.2, len(shown) / 16)] * len(quantities)
    figure = new_figure(figsize=(12, 0.9 * sum(heights) + 1), layout="constrained")
    grid = figure.add_gridspec(len(heights), 2, height_ratios=heights, width_ratios=[60, 1])
    axes = [figure.add_subplot(grid[0, 0])]
    axes += [figure.add_subplot(grid[i, 0], sharex=axes[0]) for i in range(1, len(heights))]

    steps = np.arange(window.stop)
    observation = trace["obs"][window].reshape(window.stop, -1)
    image = axes[0].imshow(
        observation.T, aspect="auto", interpolation="nearest", cmap="viridis", origin="lower"
    )
    figure.colorbar(image, cax=figure.add_subplot(grid[0, 1]))
    axes[0].set_ylabel("observation\nindex")
    action = trace["action"][window].reshape(window.stop, -1)
    for dim in range(action.shape[1]):
        axes[1].step(steps, action[:, dim], where="mid", linewidth=1)
    axes[1].set_ylabel("action")
    axes[2].step(steps, trace["reward"][window], where="mid", color="tab:green", linewidth=1)
    axes[2].set_ylabel("reward")
    if trace.latent_names:
        _plot_latents(axes[3], trace, window)
    for row, quantity in enumerate(quantities, start=len(track_heights)):
        values = trace[f"{layer}/{quantity}"][window][:, shown]
        low, high = color_range(quantity, values)
        image = axes[row].imshow(
            values.T,
            aspect="auto",
            interpolation="nearest",
            cmap=HEATMAP_CMAP,
            vmin=low,
            vmax=high,
            origin="lower",
        )
        figure.colorbar(image, cax=figure.add_subplot(grid[row, 1]))
        axes[row].set_ylabel(f"{quantity}\nunit")
        ticks = np.linspace(0, len(shown) - 1, min(len(shown), 5)).astype(int)
        axes[row].set_yticks(ticks, [str(shown[i]) for i in ticks])
    for axis in axes:
        _mark_episodes(axis, starts)
        axis.tick_params(labelsize=8)
    for axis in axes[:-1]:
        axis.tick_params(labelbottom=False)
    axes[-1].set_xlabel("step (dashed lines: episode starts)")
    figure.suptitle(f"{trace.meta.get('env_id', '')}  {layer}")
    return figure


def _plot_latents(axes, trace: Trace, window: slice) -> None:
    """Every latent scaled to [0, 1] over the window; the legend gives its real range."""
    steps = np.arange(window.stop)
    for name in trace.latent_names:
        values = trace[f"latent/{name}"][window]
        low, high = np.nanmin(values), np.nanmax(values)
        scaled = (values - low) / (high - low) if high > low else values * 0
        axes.step(steps, scaled, where="mid", linewidth=1, label=f"{name} [{low:g}, {high:g}]")
    axes.set_ylabel("latent\n(scaled)")
    axes.legend(fontsize=7, loc="upper right", framealpha=0.7)


def plot_units(
    trace: Trace, probes: list[Probe] | None = None, max_steps: int = MAX_STEPS, per_latent: int = 3
) -> Figure:
    """Line plots of the units that track each latent best (beside the latent itself), or,
    with no probes, of the most active units of the actor's first layer."""
    window = _window(trace, max_steps)
    steps = np.arange(window.stop)
    starts = _episode_starts(trace, window)
    panels: list[tuple[str, list[tuple[str, int, str]]]] = []
    for probe in probes or []:
        units = [(u.quantity, u.unit, f"{probe.measure} = {u.r:+.2f}") for u in probe.units]
        panels.append((probe.latent, units[:per_latent]))
    if not panels:
        layer = trace.layers[0]
        values = trace[f"{layer}/h"][window]
        active = np.argsort(values.var(axis=0))[::-1][:per_latent]
        panels.append(("", [(f"{layer}/h", int(u), "most variable") for u in active]))
    figure = new_figure(figsize=(12, 2.4 * len(panels) + 0.5), layout="constrained")
    axes_list = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for axes, (latent, units) in zip(axes_list, panels, strict=True):
        for quantity, unit, label in units:
            axes.plot(
                steps,
                trace[quantity][window][:, unit],
                linewidth=1.2,
                label=f"{describe(quantity)} unit {unit} ({label})",
            )
        axes.set_ylabel("activation")
        handles, labels = axes.get_legend_handles_labels()
        if latent:
            twin = axes.twinx()
            twin.step(
                steps,
                trace[f"latent/{latent}"][window],
                where="mid",
                color="black",
                linewidth=1.5,
                alpha=0.5,
            )
            twin.set_ylabel(latent)
            handles.append(twin.lines[0])
            labels.append(f"{latent} (right axis)")
        # above the axes, one legend for both: inside, it would cover the lines it names
        axes.legend(
            handles,
            labels,
            loc="lower left",
            bbox_to_anchor=(0, 1),
            ncol=2,
            fontsize=7,
            frameon=False,
        )
        _mark_episodes(axes, starts)
    axes_list[-1].set_xlabel("step (dashed lines: episode starts)")
    return figure


def plot_learning_curve(run_dir: str | Path) -> Figure:
    """Return (and success rate) against env steps: the periodic evaluations from
    evaluations.npz, and the training episodes from the monitor CSVs (smoothed over
    ``ROLLING_EPISODES``). Draws what exists; says so when nothing does."""
    run_dir = Path(run_dir)
    evaluations = _read_evaluations(run_dir / "evaluations.npz")
    training = _read_monitors(run_dir / "monitor")
    has_success = evaluations is not None and "successes" in evaluations
    figure = new_figure(figsize=(10 if has_success else 6, 3.6))
    axes = figure.subplots(1, 2 if has_success else 1, squeeze=False)[0]
    returns = axes[0]
    if training is not None:
        steps, episode_returns = training
        window = min(ROLLING_EPISODES, len(episode_returns))
        smooth = np.convolve(episode_returns, np.ones(window) / window, mode="valid")
        returns.plot(
            steps[window - 1 :],
            smooth,
            color="tab:gray",
            label=f"training episodes (sampled actions, mean of {window})",
        )
    if evaluations is not None:
        mean, std = evaluations["results"].mean(axis=1), evaluations["results"].std(axis=1)
        steps = evaluations["timesteps"]
        returns.plot(steps, mean, marker="o", markersize=3, color="tab:blue", label="evaluation")
        returns.fill_between(steps, mean - std, mean + std, color="tab:blue", alpha=0.2)
    if training is None and evaluations is None:
        returns.text(
            0.5,
            0.5,
            "no finished episode recorded",
            ha="center",
            va="center",
            transform=returns.transAxes,
        )
    else:
        returns.legend(fontsize=8)
    returns.set_xlabel("env steps")
    returns.set_ylabel("episode return")
    if has_success:
        success = axes[1]
        success.plot(
            evaluations["timesteps"],
            evaluations["successes"].mean(axis=1),
            marker="o",
            markersize=3,
            color="tab:blue",
            label="evaluation",
        )
        ceiling = _memoryless_ceiling(run_dir)
        if ceiling is not None:
            success.axhline(
                ceiling, color="tab:red", linestyle="--", label=f"memoryless ceiling {ceiling:.2f}"
            )
        success.set_ylim(-0.05, 1.05)
        success.set_xlabel("env steps")
        success.set_ylabel("success rate")
        success.legend(fontsize=8)
    figure.suptitle(run_dir.name, fontsize=9)
    figure.tight_layout()
    return figure


def _read_evaluations(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    if len(arrays.get("timesteps", [])) == 0:
        return None
    if "successes" in arrays and arrays["successes"].size != arrays["results"].size:
        del arrays["successes"]  # an env that reported success only sometimes
    return arrays


def _read_monitors(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """Episodes of every env in the order they ended, with the env steps summed over envs."""
    rows = []
    for path in sorted(folder.glob("*.monitor.csv")):
        lines = path.read_text().splitlines()[2:]  # a JSON comment, then the header r,l,t
        rows += [tuple(float(v) for v in line.split(",")[:3]) for line in lines if line]
    if not rows:
        return None
    returns, lengths, times = np.array(rows).T
    order = np.argsort(times, kind="stable")
    return np.cumsum(lengths[order]), returns[order]


def _memoryless_ceiling(run_dir: Path) -> float | None:
    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        return None
    return json.loads(metrics.read_text()).get("memoryless_ceiling")
