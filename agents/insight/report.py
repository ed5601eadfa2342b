"""report.html: one page that shows a run whole, written into its run folder.

Plain HTML with the figures inlined as base64 PNGs and the rollout video as a base64 MP4, so
the page is one self-contained file that opens anywhere and can be mailed as it is. Sections:
evaluation beside the memoryless baseline, learning curve, video, memory heatmaps, probes,
config.
"""

from __future__ import annotations

import base64
import html
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from gymnasium.error import DependencyNotInstalled

from agents import atomic
from agents.errors import UserError
from agents.evaluation import record_video
from agents.insight.plots import (
    drawn_episodes,
    plot_learning_curve,
    plot_memory,
    plot_units,
    png_bytes,
)
from agents.insight.probes import NOISE_STD, Probe, describe
from agents.insight.traces import Trace
from agents.runs import CONFIG_FILE, METRICS_FILE, Run

REPORT_FILE = "report.html"
BASELINE_ALGO = "ppo"
# Budgets further apart than this ratio make the baseline a comparison to be marked.
BUDGET_RATIO = 1.1

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1250px; margin: 2em auto; color: #222;
       padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img, video { max-width: 100%; border: 1px solid #eee; }
.note { color: #666; font-size: 0.9em; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def run_folder(run: Run) -> Path:
    """The folder holding the run's config.yaml (a checkpoint sits one level below it)."""
    for folder in (run.model_path.parent, run.model_path.parent.parent):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return run.model_path.parent


def write_report(
    run: Run,
    metrics: dict[str, Any],
    trace: Trace | None = None,
    probes: list[Probe] | None = None,
    folder: str | Path | None = None,
    video: bool = True,
    seed: int = 0,
) -> Path:
    """Write ``report.html`` into the run folder."""
    folder = Path(folder) if folder else run_folder(run)
    folder.mkdir(parents=True, exist_ok=True)
    # the steps of the model evaluated: a checkpoint's, not the whole run's
    metrics = {**metrics, "n_timesteps": run.model.num_timesteps}
    sections = [
        _evaluation_section(metrics, folder),
        _figure_section("Learning curve", plot_learning_curve(folder), "learning curve"),
    ]
    if video:
        sections.append(_video_section(run, metrics.get("deterministic", True), seed))
    if trace is not None:
        sections.append(_memory_section(trace, probes))
    sections.append(_config_section(run))
    title = f"{metrics['env_id']} — {metrics['algo']}"
    page = (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{_e(title)}</h1>\n"
        f"<p class='note'>Run folder <code>{_e(folder)}</code>, model "
        f"<code>{_e(run.model_path.name)}</code>; report written "
        f"{time.strftime('%Y-%m-%d %H:%M')} by <code>evaluate.py --report</code>.</p>\n"
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )
    path = folder / REPORT_FILE
    atomic.write_text(path, page)
    return path


def _e(value: Any) -> str:
    return html.escape(str(value))


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{data}'>"


def _figure_section(title: str, figure, alt: str) -> str:
    return f"<h2>{_e(title)}</h2>\n{_img(png_bytes(figure), alt)}"


def find_baseline(folder: Path, env_id: str) -> tuple[Path, dict[str, Any]] | None:
    """The newest sibling run folder of the memoryless baseline (algo ppo) on the same env
    that finished (has metrics.json), with its metrics and training steps."""
    candidates = []
    for sibling in folder.parent.iterdir() if folder.parent.is_dir() else []:
        metrics_path = sibling / METRICS_FILE
        if sibling == folder or not metrics_path.is_file():
            continue
        try:
            config = yaml.safe_load((sibling / CONFIG_FILE).read_text())
            metrics = json.loads(metrics_path.read_text())
        except (OSError, yaml.YAMLError, json.JSONDecodeError):
            continue  # not a run folder, or a broken one: not a baseline to show
        if isinstance(config, dict) and config.get("env") == env_id:
            if config.get("algo") == BASELINE_ALGO:
                metrics.setdefault("n_timesteps", config.get("n_timesteps"))  # 0.1.0's runs
                candidates.append((metrics_path.stat().st_mtime, sibling, metrics))
    if not candidates:
        return None
    _, sibling, metrics = max(candidates, key=lambda c: c[0])
    return sibling, metrics


def _evaluation_section(metrics: dict[str, Any], folder: Path) -> str:
    columns = [("this run", metrics)]
    baseline = find_baseline(folder, metrics["env_id"])
    if baseline is not None:
        columns.append((f"memoryless baseline: {baseline[0].name}", baseline[1]))
    rows = [
        ("success rate", lambda m: _number(m.get("success_rate"))),
        ("mean return", lambda m: f"{m['mean_return']:.3f} ± {m['std_return']:.3f}"),
        ("95% CI of the mean", lambda m: f"{m['ci95'][0]:.3f} .. {m['ci95'][1]:.3f}"),
        ("mean length", lambda m: f"{m['mean_length']:.1f}"),
        ("episodes", lambda m: f"{m['episodes']}"),
        ("actions", lambda m: "greedy" if m.get("deterministic", True) else "sampled"),
        ("training steps", lambda m: _steps(m.get("n_timesteps"))),
    ]
    header = "".join(f"<th>{_e(name)}</th>" for name, _ in columns)
    body = "".join(
        f"<tr><th>{_e(label)}</th>"
        + "".join(f"<td class='num'>{_e(cell(m))}</td>" for _, m in columns)
        + "</tr>"
        for label, cell in rows
    )
    ceiling = metrics.get("memoryless_ceiling")
    notes = []
    if ceiling is not None:
        notes.append(
            f"Memoryless ceiling of the task: <b>{ceiling:.3f}</b>, the best success rate any "
            "policy without memory can reach (derived in the task's docstring)."
        )
    if baseline is None:
        notes.append(
            f"No finished memoryless run of {_e(metrics['env_id'])} beside this one; train "
            f"one into the same parent folder with <code>python train.py --env "
            f"{_e(metrics['env_id'])} --algo ppo</code> to compare."
        )
    elif _unequal(metrics.get("n_timesteps"), baseline[1].get("n_timesteps")):
        steps = metrics["n_timesteps"]
        notes.append(
            f"<b>Unequal budgets: the memoryless baseline trained for "
            f"{_steps(baseline[1]['n_timesteps'])} steps, this run for {_steps(steps)}</b>; "
            f"for a like-for-like comparison train it with <code>python train.py --env "
            f"{_e(metrics['env_id'])} --algo ppo --timesteps {steps}</code>."
        )
    note = "".join(f"<p class='note'>{n}</p>" for n in notes)
    return f"<h2>Evaluation</h2>\n<table><tr><th></th>{header}</tr>{body}</table>\n{note}"


def _steps(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _unequal(steps: int | None, baseline_steps: int | None) -> bool:
    if not steps or not baseline_steps:
        return False
    return max(steps, baseline_steps) / min(steps, baseline_steps) > BUDGET_RATIO


def _number(value: float | None) -> str:
    return (
        "—"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.3f}")
    )


def _video_section(run: Run, deterministic: bool, seed: int) -> str:
    with tempfile.TemporaryDirectory() as scratch:
        try:
            path = record_video(run, Path(scratch) / "rollout.mp4", 1, deterministic, seed)
        except (UserError, DependencyNotInstalled) as error:  # cannot render rgb_array frames
            return f"<h2>Rollout</h2>\n<p class='note'>No video: {_e(error)}</p>"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        "<h2>Rollout</h2>\n"
        f"<video src='data:video/mp4;base64,{data}' controls autoplay muted loop playsinline>"
        "</video>\n<p class='note'>The first evaluation episode (<code>evaluate.py "
        "--video</code> records more).</p>"
    )


def _memory_section(trace: Trace, probes: list[Probe] | None) -> str:
    parts = ["<h2>Memory</h2>"]
    if not trace.layers:
        parts.append("<p class='note'>This model has no recurrent state.</p>")
        return "\n".join(parts)
    parts.append(
        f"<p>{trace.meta.get('episodes')} episodes, {len(trace)} steps traced "
        f"(<code>evaluate.py --trace</code> saves them); the probes read them all. The "
        f"heatmaps draw {drawn_episodes(trace)}: units (rows) against time (columns) for the "
        "hidden state h, the cell state c and each gate; gates run from 0 (closed, blue) to 1 "
        "(open, red), h and the candidate from -1 to 1. Dashed lines start episodes. See "
        "docs/memory.md for how to read them, and how to draw another episode.</p>"
    )
    if probes:
        parts.append(_probe_table(probes))
    elif probes is not None:
        parts.append(
            "<p class='note'>No probes: the env gives no varying <code>info[\"latent\"]</code>"
            " to probe the memory against.</p>"
        )
    for layer in trace.layers:
        if layer.startswith("actor/"):
            parts.append(
                f"<h3>{_e(layer)}</h3>\n{_img(png_bytes(plot_memory(trace, layer)), layer)}"
            )
    heading = "Units that track the task" if probes else "Most active units"
    parts.append(f"<h3>{heading}</h3>\n{_img(png_bytes(plot_units(trace, probes)), 'units')}")
    return "\n".join(parts)


def _probe_table(probes: list[Probe]) -> str:
    header = (
        "<tr><th>latent</th><th>probe</th><th>untrained network</th><th>observation alone</th>"
        "<th>chance</th><th>probe by state</th><th>units that track it</th></tr>"
    )
    rows = []
    for probe in probes:
        units = "<br>".join(
            f"{_e(describe(u.quantity))} unit {u.unit}: {_e(probe.measure)} = {u.r:+.2f}"
            for u in probe.units
        )
        by_state = "<br>".join(
            f"{_e(describe(quantity))}: {score:.2f}" for quantity, score in probe.scores.items()
        )
        rows.append(
            f"<tr><th>{_e(probe.latent)}</th>"
            f"<td class='num'>{_e(probe.metric)} = {probe.score:.2f}</td>"
            f"<td class='num'>{_number(probe.control_score)}</td>"
            f"<td class='num'>{probe.observation_score:.2f}</td>"
            f"<td class='num'>{probe.chance:.2f}</td>"
            f"<td>{by_state}</td><td>{units}</td></tr>"
        )
    fit, test = probes[0].fit_episodes, probes[0].test_episodes
    method = (
        f"<p class='note'>Linear probes fitted on {fit} episodes and scored on {test} others "
        f"(R² for numbers, accuracy for categories); ridge read-outs that count only what "
        f"survives noise of {NOISE_STD} per unit. <i>Untrained network</i>: the same probe on "
        "a freshly initialised network of this config, which already keeps a fading echo of "
        "its inputs; <i>observation alone</i>: the same probe on the current observation, "
        "what no memory is needed for; <i>chance</i>: the best constant guess.</p>"
    )
    return f"<h3>Probes</h3>\n<table>{header}{''.join(rows)}</table>\n{method}"


def _config_section(run: Run) -> str:
    rows = "".join(
        f"<tr><th>{_e(key)}</th><td>{_e(value)}</td></tr>"
        for key, value in run.config.read_by_algo().items()
    )
    return f"<h2>Config</h2>\n<table>{rows}</table>"
