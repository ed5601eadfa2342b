"""A real train.py process stopped by SIGINT, SIGTERM or SIGKILL at a random moment: what it
leaves loads (old files or new ones, never torn ones) and --resume carries on from it."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecNormalize

from agents.atomic import TEMPORARY_MARK
from agents.cli import train_main
from agents.resume import newest_state
from agents.runs import load_model, read_config
from tests.conftest import REPO, TINY_RUN

# TINY_RUN made endless and normalised (extending its --set), with checkpoints after every
# update, so files are being written all the time and a kill often lands in a write.
ENDLESS_RUN = [
    "--env",
    "CartPole-P-v1",
    *TINY_RUN,
    "normalize=true",
    "--timesteps",
    "1000000",
    "--checkpoint-freq",
    "64",
]


def _start_training(run_dir: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), "--run-dir", str(run_dir), *ENDLESS_RUN],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not list((run_dir / "checkpoints").glob("*.zip")):  # training is under way
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.05)
    return process


def _stop(run_dir: Path, signum: int, seed: int) -> subprocess.CompletedProcess:
    process = _start_training(run_dir)
    time.sleep(np.random.default_rng(seed).uniform(0.0, 1.5))
    process.send_signal(signum)
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _assert_everything_left_loads(run_dir: Path) -> None:
    """Every file of the folder is whole; only hidden temporary files may be torn."""
    files = [path for path in run_dir.rglob("*") if path.is_file()]
    assert all(not path.name.startswith(".") or TEMPORARY_MARK in path.name for path in files)
    kept = [path for path in files if not path.name.startswith(".")]
    read_config(run_dir / "config.yaml")
    json.loads((run_dir / "run.json").read_text())
    for path in kept:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                assert archive.testzip() is None, path  # every member's CRC checks out
        elif path.suffix == ".pkl":
            with open(path, "rb") as file:
                assert isinstance(pickle.load(file), VecNormalize), path
        elif path.suffix == ".npz":
            with np.load(path) as evaluations:
                assert len(evaluations["timesteps"]) == len(evaluations["results"])
        elif path.suffix == ".json":
            json.loads(path.read_text())
    newest = newest_state(run_dir)
    assert load_model(newest.model_path, "recurrent_ppo").num_timesteps == newest.steps


def _resume_a_little(run_dir: Path, capsys) -> None:
    """train.py --resume, in this process (a new one costs seconds of imports)."""
    steps = newest_state(run_dir).steps
    assert train_main(["--resume", str(run_dir), "--timesteps", str(steps + 128)]) == 0
    assert f"at {steps} steps" in capsys.readouterr().out
    assert json.loads((run_dir / "metrics.json").read_text())["n_timesteps"] == steps + 128


def test_sigterm_saves_names_the_resume_command_and_resume_finishes(tmp_path, capsys):
    run_dir = tmp_path / "run"
    stopped = _stop(run_dir, signal.SIGTERM, seed=0)
    assert stopped.returncode == 143, stopped.stderr
    assert (
        stopped.stderr.strip()
        .splitlines()[-1]
        .endswith(f"continue with: python train.py --resume {run_dir}")
    )
    assert "Traceback" not in stopped.stderr
    assert newest_state(run_dir).model_path.name == "model.zip"
    assert not (run_dir / "metrics.json").exists()  # a scheduler's SIGKILL may follow
    _assert_everything_left_loads(run_dir)
    _resume_a_little(run_dir, capsys)
    assert len((run_dir / "command.txt").read_text().splitlines()) == 2


@pytest.mark.slow  # tests/test_resume.py stops a training with SIGINT in-process
def test_ctrl_c_saves_and_leaves_a_briefly_evaluated_folder(tmp_path):
    run_dir = tmp_path / "run"
    stopped = _stop(run_dir, signal.SIGINT, seed=1)
    assert stopped.returncode == 130, stopped.stderr
    assert "Evaluating it briefly (Ctrl-C to skip)" in stopped.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["interrupted"] is True
    assert metrics["n_timesteps"] == newest_state(run_dir).steps
    assert (run_dir / "learning_curve.png").is_file()
    _assert_everything_left_loads(run_dir)


def test_sigkill_at_a_random_moment_leaves_whole_files_and_resume_goes_on(tmp_path, capsys):
    run_dir = tmp_path / "run"
    killed = _stop(run_dir, signal.SIGKILL, seed=2)
    assert killed.returncode == -signal.SIGKILL
    _assert_everything_left_loads(run_dir)
    _resume_a_little(run_dir, capsys)
    assert not [path for path in run_dir.rglob(f".*{TEMPORARY_MARK}*")]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 20))
def test_sigkill_at_more_random_moments(tmp_path, seed):
    run_dir = tmp_path / "run"
    assert _stop(run_dir, signal.SIGKILL, seed).returncode == -signal.SIGKILL
    _assert_everything_left_loads(run_dir)
