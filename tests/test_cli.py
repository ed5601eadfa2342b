"""train.py and evaluate.py as a user runs them: a run folder, statistics, video, clear errors."""

import json
import subprocess

import numpy as np
import pytest
import scipy.stats
import torch

from agents.cli import train_main
from tests.conftest import TINY_RUN, run_script


@pytest.mark.parametrize(
    ("algo", "extra"),
    [
        ("recurrent_ppo", []),
        ("recurrent_ppo", ["recurrent_cell=gru"]),  # extends TINY_RUN's --set
        ("ppo", []),
        ("ppo_framestack", []),
    ],
)
def test_train_then_evaluate(algo, extra, tmp_path):
    run_dir = tmp_path / "run"
    trained = run_script(
        "train.py",
        "--env",
        "MemoryStates-v0",
        "--algo",
        algo,
        "--run-dir",
        str(run_dir),
        *TINY_RUN,
        *extra,
    )
    assert trained.returncode == 0, trained.stderr
    assert "success rate" in trained.stdout and "memoryless ceiling: 0.50" in trained.stdout
    for name in (
        "config.yaml",
        "command.txt",
        "model.zip",
        "evaluations.npz",
        "metrics.json",
        "progress.csv",
        "run.json",
    ):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "monitor").glob("*.monitor.csv"))
    assert list((run_dir / "checkpoints").glob("*.zip"))
    assert list(run_dir.glob("events.out.tfevents.*"))
    assert f"--algo {algo}" in (run_dir / "command.txt").read_text()
    if extra:
        assert "recurrent_cell: gru" in (run_dir / "config.yaml").read_text()

    stats_file, video = tmp_path / "stats.json", tmp_path / "v.gif"
    evaluated = run_script(
        "evaluate.py",
        str(run_dir),
        "--episodes",
        "6",
        "--n-envs",
        "2",
        "--json",
        str(stats_file),
        "--video",
        str(video),
    )
    assert evaluated.returncode == 0, evaluated.stderr
    stats = json.loads(stats_file.read_text())
    assert stats["env_id"] == "MemoryStates-v0" and stats["algo"] == algo
    assert stats["episodes"] == 6
    # MemoryStates-v0 returns 1 exactly on success: info["is_success"] and the rewards agree
    assert stats["success_rate"] == pytest.approx(stats["mean_return"])
    assert (stats["success_rate"] * 6) == pytest.approx(round(stats["success_rate"] * 6))
    low, high = stats["ci95"]  # Student-t interval of the mean of 6 returns, as documented
    half_width = scipy.stats.t.ppf(0.975, 5) * stats["std_return"] / np.sqrt(6)
    assert (low, high) == pytest.approx(
        (stats["mean_return"] - half_width, stats["mean_return"] + half_width)
    )
    assert video.stat().st_size > 1000


def test_checkpoint_evaluates_like_a_run(tmp_path):
    run_dir = tmp_path / "run"
    assert run_script("train.py", "--run-dir", str(run_dir), *TINY_RUN).returncode == 0
    checkpoint = sorted((run_dir / "checkpoints").glob("*.zip"))[0]
    evaluated = run_script("evaluate.py", str(checkpoint), "--episodes", "2")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "MemoryStates-v0" in evaluated.stdout


def _assert_user_error(result, *fragments):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--env", "MemoryState-v0"], ["unknown env id 'MemoryState-v0'", "MemoryStates-v0"]),
        (["--env", "no_such_module:Env"], ["cannot import module 'no_such_module'"]),
        (["--set", "lerning_rate=0.1"], ["unknown config key 'lerning_rate'", "learning_rate"]),
        (["--timesteps", "0"], ["n_timesteps must be a positive integer, got 0"]),
        (["--set", "batch_size=100000"], ["batch_size 100000 is larger than one rollout"]),
        (["--set", "gamma"], ["--set expects key=value"]),
        (["--config", "missing.yaml"], ["config file missing.yaml does not exist"]),
        (["--env-kwargs", "colour=red"], ["rejected its arguments", "colour"]),
        (["--env-kwargs", "max_distractors=-1"], ["rejected its arguments", "got 1 and -1"]),
    ],
)
def test_train_user_errors(args, fragments, tmp_path, monkeypatch, capsys):
    # in-process (the same code train.py runs) to keep the suite fast; the subprocess path
    # is covered by the tests around this one
    monkeypatch.chdir(tmp_path)
    code = train_main([*args, "--run-dir", str(tmp_path / "run")])
    captured = capsys.readouterr()
    _assert_user_error(
        subprocess.CompletedProcess([], code, captured.out, captured.err), *fragments
    )
    assert not (tmp_path / "run").exists()


def test_user_error_from_the_script_itself(tmp_path):
    result = run_script("train.py", "--env", "MemoryState-v0", cwd=tmp_path)
    _assert_user_error(result, "unknown env id 'MemoryState-v0'")
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_a_user_error(tmp_path):
    result = run_script("train.py", "--device", "cuda", "--run-dir", str(tmp_path / "run"))
    _assert_user_error(result, "torch sees no CUDA GPU")
    assert not (tmp_path / "run").exists()


def test_unknown_algo_is_refused_by_the_parser():
    result = run_script("train.py", "--algo", "dqn")
    assert result.returncode == 2 and "invalid choice: 'dqn'" in result.stderr


def test_existing_run_folder_is_never_overwritten(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.zip").write_text("precious")
    result = run_script("train.py", "--run-dir", str(run_dir), *TINY_RUN)
    _assert_user_error(result, "already exists and is not empty")
    assert (run_dir / "model.zip").read_text() == "precious"
    assert sorted(p.name for p in run_dir.iterdir()) == ["model.zip"]


def test_evaluate_user_errors(tmp_path, memory_run):
    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_user_error(run_script("evaluate.py", str(empty)), "no model.zip in")
    _assert_user_error(run_script("evaluate.py", str(tmp_path / "gone")), "does not exist")
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"not a zip")
    _assert_user_error(
        run_script("evaluate.py", str(corrupt), "--env", "MemoryStates-v0"), "corrupt"
    )
    mismatch = run_script("evaluate.py", str(memory_run), "--env", "CartPole-v1")
    _assert_user_error(
        mismatch, "model and env do not match", "Box(0.0, 1.0, (4,), float32)", "Discrete(2)"
    )
    _assert_user_error(
        run_script("evaluate.py", str(memory_run), "--video", "v.avi"), "must end in .mp4 or .gif"
    )


def test_mujoco_robot_video(tmp_path):
    run_dir = tmp_path / "hopper"
    trained = run_script("train.py", "--env", "Hopper-P-v5", "--run-dir", str(run_dir), *TINY_RUN)
    assert trained.returncode == 0, trained.stderr
    assert (run_dir / "vecnormalize.pkl").is_file()  # the MuJoCo preset normalises
    video = tmp_path / "hopper.mp4"
    evaluated = run_script("evaluate.py", str(run_dir), "--episodes", "2", "--video", str(video))
    assert evaluated.returncode == 0, evaluated.stderr

    import imageio.v2 as imageio

    frames = imageio.mimread(video, memtest=False)
    assert len(frames) > 5
    assert frames[0].ndim == 3 and frames[0].shape[2] == 3
    assert np.std(frames[0]) > 5  # a rendered scene, not a blank frame
    assert not np.array_equal(frames[0], frames[-1])  # the robot moved
