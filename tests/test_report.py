"""evaluate.py --trace/--probe/--report, report.html in a real headless browser, learning curves."""

from __future__ import annotations

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
from agents.insight.plots import LEARNING_CURVE_FILE, plot_learning_curve, save_png
from agents.insight.traces import load_trace
from tests.conftest import TINY

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
    assert (run_dir / "report_video.mp4").stat().st_size > 0
    assert "memoryless baseline: baseline" in page  # the sibling ppo run's metrics
    assert "Memoryless ceiling of the task: <b>0.500</b>" in page
    for section in ("Evaluation", "Learning curve", "Rollout", "Memory", "Probes", "Config"):
        assert f"<h2>{section}</h2>" in page or f"<h3>{section}</h3>" in page
    sources = re.findall(r"src='([^']*)'", page)
    assert sources.count("report_video.mp4") == 1
    images = [s for s in sources if s != "report_video.mp4"]
    assert len(images) >= 3 and all(s.startswith("data:image/png;base64,") for s in images)


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
    """Pendulum-P-v1: normalised observations, continuous actions, no info["latent"], and a
    video only where pygame is installed; the report says what it cannot show."""
    run_dir = agents.train(env="Pendulum-P-v1", run_dir=tmp_path / "pendulum", **TINY)
    result = evaluate_in_process(str(run_dir), "--episodes", "2", "--report", "--probe")
    assert result.returncode == 0, result.stderr
    assert "no latent variable to probe" in result.stdout
    page = (run_dir / "report.html").read_text()
    assert "No probes" in page and "actor/layer0" in page
    assert "<video" in page or "No video" in page
