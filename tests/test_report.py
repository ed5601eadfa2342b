"""evaluate.py --trace/--probe/--report, report.html in a real headless browser, learning curves."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from matplotlib.image import imread

import agents
from agents.cli import evaluate_main
from agents.insight.plots import (
    LEARNING_CURVE_FILE,
    MAX_STEPS,
    plot_learning_curve,
    plot_units,
    save_png,
)
from agents.insight.probes import Probe, UnitScore
from agents.insight.traces import load_trace
from tests.conftest import TINY_TRAIN as TINY

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def is_drawn(path: Path) -> bool:
    """A PNG that holds more than one colour (not a blank canvas)."""
    pixels = imread(path)
    return pixels.shape[0] > 100 and float(pixels[..., :3].std()) > 0.01


@pytest.fixture(scope="module")
def reported(memory_run, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A copy of the trained MemoryStates run beside a memoryless (ppo) run of the same env,
    and the output of evaluate.py --report --probe --trace on it."""
    runs = tmp_path_factory.mktemp("reported")
    run_dir = runs / "memory"
    shutil.copytree(memory_run, run_dir)
    agents.train(env="MemoryStates-v0", algo="ppo", run_dir=runs / "baseline", **TINY)
    result = evaluate_in_process(
        str(run_dir),
        "--episodes",
        "10",
        "--trace",
        str(runs / "trace.npz"),
        "--trace-episodes",
        "12",
        "--probe",
        "--report",
    )
    assert result.returncode == 0, result.stderr
    return run_dir, result


def evaluate_in_process(*args: str) -> subprocess.CompletedProcess:
    """evaluate.py's main, run here (the script itself is tested in test_cli.py)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = evaluate_main(list(args))
    return subprocess.CompletedProcess(args, code, stdout.getvalue(), stderr.getvalue())


def test_training_saves_a_learning_curve_also_without_evaluations(tmp_path, memory_run):
    run_dir = agents.train(env="MemoryStates-v0", run_dir=tmp_path / "run", **TINY)
    assert not (run_dir / "evaluations.npz").exists()  # eval_freq=0: monitor CSVs only
    assert is_drawn(run_dir / LEARNING_CURVE_FILE)
    assert is_drawn(memory_run / LEARNING_CURVE_FILE)  # with periodic evaluations


def test_learning_curve_of_a_folder_with_nothing_to_draw(tmp_path):
    assert is_drawn(save_png(plot_learning_curve(tmp_path), tmp_path / "curve.png"))


def test_evaluate_traces_probes_and_reports(reported):
    run_dir, result = reported
    assert re.search(r"cue +accuracy = +1\.00", result.stdout), result.stdout
    assert "tracks cue" in result.stdout
    trace = load_trace(run_dir.parent / "trace.npz")
    assert trace.meta["episodes"] == 12 and "actor/layer0/gate_forget" in trace.arrays

    page = (run_dir / "report.html").read_text()
    assert f"Report: {run_dir / 'report.html'}" in result.stdout
    assert "memoryless baseline: baseline" in page  # the sibling ppo run's metrics
    assert "Memoryless ceiling of the task: <b>0.500</b>" in page
    for section in ("Evaluation", "Learning curve", "Rollout", "Memory", "Probes", "Config"):
        assert f"<h2>{section}</h2>" in page or f"<h3>{section}</h3>" in page
    assert "<h3>Units that track the task</h3>" in page
    # one file: the figures and the video are in the page, nothing beside it
    sources = re.findall(r"src='([^']*)'", page)
    videos = [s for s in sources if s.startswith("data:video/mp4;base64,")]
    assert len(videos) == 1 and len(base64.b64decode(videos[0].split(",", 1)[1])) > 1000
    images = [s for s in sources if s not in videos]
    assert len(images) >= 3 and all(s.startswith("data:image/png;base64,") for s in images)
    assert not list(run_dir.glob("*.mp4"))


def test_report_says_what_its_heatmaps_draw(reported):
    run_dir, _ = reported
    trace = load_trace(run_dir.parent / "trace.npz")
    assert len(trace) <= MAX_STEPS  # 12 MemoryStates episodes of at most 12 steps
    page = (run_dir / "report.html").read_text()
    assert f"The heatmaps draw all 12 traced episodes ({len(trace)} steps)" in page


def test_report_states_each_budget_and_marks_a_baseline_trained_for_less(reported, memory_run):
    run_dir, _ = reported
    page = (run_dir / "report.html").read_text()
    steps = json.loads((memory_run / "metrics.json").read_text())["n_timesteps"]
    row = f"<th>training steps</th><td class='num'>{steps:,}</td><td class='num'>256</td>"
    assert row in page
    assert "Unequal budgets: the memoryless baseline trained for 256 steps, this run for " in page
    assert f"--algo ppo --timesteps {steps}" in page


def test_report_config_lists_the_keys_of_its_algo_only(reported):
    page = (reported[0] / "report.html").read_text()
    config = page[page.index("<h2>Config</h2>") :]
    assert "<th>lstm_hidden_size</th>" in config and "<th>bptt_length</th>" in config
    assert "<th>frame_stack</th>" not in config  # ppo_framestack's, not recurrent_ppo's
    assert "<th>learning_rate</th>" in config


def _overlap(first, second) -> float:
    """Area shared by two display boxes, in square pixels."""
    width = min(first.x1, second.x1) - max(first.x0, second.x0)
    height = min(first.y1, second.y1) - max(first.y0, second.y0)
    return max(width, 0) * max(height, 0)


@pytest.mark.parametrize("with_probes", [True, False])
def test_units_plot_legends_leave_the_data_free(reported, with_probes):
    trace = load_trace(reported[0].parent / "trace.npz")
    units = [UnitScore("actor/layer0/h", unit, 0.9 - 0.1 * unit) for unit in range(3)]
    probe = Probe(
        "cue", "classification", "accuracy", 1.0, 0.5, 0.5, "actor/layer0/h", {}, units, "r", 8, 4
    )
    figure = plot_units(trace, [probe] if with_probes else None)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    data_axes = [axes for axes in figure.axes if axes.lines]
    legends = [axes.get_legend() for axes in figure.axes if axes.get_legend() is not None]
    assert legends
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for axes in data_axes:
            assert _overlap(box, axes.get_window_extent(renderer)) < 1.0


def test_memory_options_fail_early_with_a_clear_line(tmp_path, memory_run):
    wrong_suffix = evaluate_in_process(str(memory_run), "--trace", str(tmp_path / "t.csv"))
    assert wrong_suffix.returncode == 2 and "must end in .npz" in wrong_suffix.stderr
    no_episodes = evaluate_in_process(str(memory_run), "--probe", "--trace-episodes", "0")
    assert no_episodes.returncode == 2 and "positive integer" in no_episodes.stderr
    memoryless = agents.train(env="MemoryStates-v0", algo="ppo", run_dir=tmp_path / "ppo", **TINY)
    probe = evaluate_in_process(str(memoryless), "--probe")
    assert probe.returncode == 2 and "has none" in probe.stderr


# Injected into a copy of the page: records load errors (scripts, images, the video) and,
# once the video has its first frame or failed, what rendered.
CHECK_SCRIPT = """<script>
window.__errors = [];
window.addEventListener("error", e => __errors.push(String(
  e.message || (e.target && (e.target.currentSrc || e.target.src)) || e.type).slice(0, 80)), true);
window.addEventListener("load", () => {
  const video = document.querySelector("video");
  const report = () => {
    const out = document.createElement("pre");
    out.id = "__check";
    out.textContent = JSON.stringify({
      errors: __errors,
      images: [...document.images].map(i => i.complete ? i.naturalWidth : -1),
      video: video ? {width: video.videoWidth, error: video.error && video.error.code} : null,
    });
    document.body.appendChild(out);
  };
  if (!video || video.readyState >= 2) { report(); return; }
  video.addEventListener("loadeddata", report, {once: true});
  video.addEventListener("error", report, {once: true});
  setTimeout(report, 8000);
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (apt install chromium)")
def test_report_renders_in_a_headless_browser(reported, tmp_path):
    run_dir, _ = reported
    page = (run_dir / "report.html").read_text()
    check = run_dir / "report_check.html"  # beside the report, so the video path resolves
    check.write_text(page.replace("<head>", "<head>\n" + CHECK_SCRIPT, 1))
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--allow-file-access-from-files",
        "--virtual-time-budget=15000",
        "--dump-dom",
        check.as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="__check">(.*?)</pre>', dom, re.S)
    assert found, f"the page did not finish loading: {dom[-500:]!r}"
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["errors"] == []
    assert len(result["images"]) >= 3 and all(width > 100 for width in result["images"])
    assert result["video"]["error"] is None and result["video"]["width"] > 0


def test_report_of_a_robot_without_latents(tmp_path):
    """Pendulum-v1 (nothing hidden): normalised observations, continuous actions, no
    info["latent"], and a video only where pygame is installed; the report says what it
    cannot show."""
    run_dir = agents.train(env="Pendulum-v1", normalize=True, run_dir=tmp_path / "pendulum", **TINY)
    result = evaluate_in_process(str(run_dir), "--episodes", "2", "--report", "--probe")
    assert result.returncode == 0, result.stderr
    assert "no latent variable to probe" in result.stdout
    page = (run_dir / "report.html").read_text()
    assert "No probes" in page and "actor/layer0" in page
    assert "<video" in page or "No video" in page
    assert "<h3>Most active units</h3>" in page and "Units that track" not in page
    # Pendulum's episodes last 200 steps: the heatmaps draw the first of them
    assert re.search(r"The heatmaps draw the first of the \d+ traced episodes \(200 of", page)
