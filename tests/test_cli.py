"""train.py and evaluate.py as a user runs them: a run folder, statistics, video, clear errors."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

import agents
import envs
from agents.cli import evaluate_main, train_main
from agents.evaluation import gif_timing
from tests.conftest import REPO, TINY_RUN, TINY_TRAIN, run_script


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
        (["--seed", "-1"], ["seed must be >= 0", "got -1"]),
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


def test_env_module_with_a_missing_dependency_names_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "robot_with_a_missing_dependency.py").write_text("import not_installed_xyz\n")
    monkeypatch.chdir(tmp_path)
    env = "robot_with_a_missing_dependency:Robot"
    result = _in_process(train_main, ["--env", env, "--run-dir", "run"], capsys)
    _assert_user_error(result, f"(env {env!r}) imports 'not_installed_xyz', which is not installed")
    assert not (tmp_path / "run").exists()


def test_user_error_from_the_script_itself(tmp_path):
    result = run_script("train.py", "--env", "MemoryState-v0", cwd=tmp_path)
    _assert_user_error(result, "unknown env id 'MemoryState-v0'")
    assert not (tmp_path / "runs").exists()


def _in_process(main, argv: list[str], capsys) -> subprocess.CompletedProcess:
    """train.py's or evaluate.py's main, run here (the scripts are tested around this)."""
    code = main(argv)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, captured.out, captured.err)


# torch knows no "tpu"; no machine has a hundredth GPU; "cuda" or "mps" where there is none
MISSING_DEVICES = ["tpu", "cuda:99"] + ([] if torch.cuda.is_available() else ["cuda"])
MISSING_DEVICES += [] if torch.backends.mps.is_available() else ["mps"]


@pytest.mark.parametrize("device", MISSING_DEVICES)
def test_a_device_this_machine_lacks_is_the_same_one_line_in_both_commands(
    device, memory_run, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    trained = _in_process(train_main, ["--device", device, "--run-dir", "run"], capsys)
    _assert_user_error(trained, repr(device))
    assert not (tmp_path / "run").exists()
    evaluated = _in_process(evaluate_main, [str(memory_run), "--device", device], capsys)
    _assert_user_error(evaluated, repr(device))
    assert evaluated.stderr == trained.stderr


def test_list_envs_gives_each_id_what_is_hidden_or_carried_and_its_ceiling(capsys):
    listed = _in_process(train_main, ["--list-envs"], capsys)
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines() if line.startswith("  ")}
    every_id = [env_id for ids in envs.SUITES.values() for env_id in ids]
    assert sorted(lines) == sorted(every_id)  # one line per id, nothing else indented
    assert all(" carries: " in line or " hides: " in line for line in lines.values())
    memory_states = lines["MemoryStates-v0"]
    assert re.search(r"MemoryStates-v0 +0\.500 +carries: the first symbol", memory_states)
    assert re.search(r"Counting-Long-v0 +0\.025 ", lines["Counting-Long-v0"])  # from its kwargs
    assert re.search(r"Hopper-P-v5 +- +hides: velocities", lines["Hopper-P-v5"])
    assert "hides: positions" in lines["Walker2d-V-v5"] and "contact forces" in lines["Ant-V-v5"]
    assert re.search(r"Reacher-Cue-v5 +0\.010 +hides: the target", lines["Reacher-Cue-v5"])


def test_output_into_a_closed_pipe_ends_quietly():
    """`train.py --list-envs | head -3`: a reader that stops early is no error of the user's."""
    process = subprocess.Popen(
        [sys.executable, "train.py", "--list-envs"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # the reader has gone before the first line
    stderr = process.stderr.read()
    assert process.wait(timeout=300) != 0
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_an_env_id_needs_no_import_with_gymnasiums_module_prefix(tmp_path):
    """Gymnasium (>= 1.0) has no plugin entry point for env packages; "envs:Hopper-P-v5"
    imports envs, which registers the id, inside gymnasium.make itself."""
    script = "import gymnasium as gym; print(gym.make('envs:Hopper-P-v5').observation_space)"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "(5,)" in result.stdout  # Hopper's 5 positions, its 6 velocities hidden


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


def test_run_folder_that_cannot_be_a_folder_is_a_user_error(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    for run_dir, fragment in [
        (notes, f"run folder {notes} is a file"),
        (notes / "run", f"cannot create run folder {notes / 'run'}: "),
    ]:
        result = _in_process(train_main, ["--run-dir", str(run_dir), *TINY_RUN], capsys)
        _assert_user_error(result, fragment)
    assert notes.read_text() == "precious"


def test_evaluate_user_errors(tmp_path, memory_run, capsys):
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
    corrupt_under = corrupt / "out" / "metrics.json"  # corrupt.zip would have to be a folder
    for args, fragment in [
        (["--episodes", "-1"], "n_episodes (--episodes) must be a positive integer, got -1"),
        (["--seed", "-3"], "seed (--seed) must be >= 0"),
        (["--json", str(tmp_path)], f"--json {tmp_path} is a folder"),
        (["--trace", str(corrupt_under)], f"{corrupt} is a file, not a folder"),
    ]:
        _assert_user_error(_in_process(evaluate_main, [str(memory_run), *args], capsys), fragment)


def test_normalised_run_on_an_env_of_other_spaces_is_a_mismatch_not_a_corrupt_file(
    tmp_path, capsys
):
    run_dir = agents.train(
        env="Pendulum-P-v1", run_dir=tmp_path / "run", **{**TINY_TRAIN, "normalize": True}
    )
    assert (run_dir / "vecnormalize.pkl").is_file()
    result = _in_process(evaluate_main, [str(run_dir), "--env", "Pendulum-v1"], capsys)
    _assert_user_error(result, "model and env do not match", "(2,)", "env 'Pendulum-v1' gives")
    assert "corrupt" not in result.stderr


def test_final_evaluation_prints_its_seed_and_the_command_that_repeats_it(
    tmp_path, monkeypatch, capsys
):
    """train.py's final evaluation and evaluate.py's default use other seeds (other
    episodes); both print theirs, and train.py's command repeats its numbers exactly."""
    monkeypatch.chdir(tmp_path)
    trained = _in_process(train_main, ["--run-dir", "run", *TINY_RUN], capsys)
    assert trained.returncode == 0, trained.stderr
    assert "4 episodes (deterministic, seed 1000000, 2 envs)" in trained.stdout
    best = re.search(r"^Best periodic evaluation: .*; its policy: python evaluate.py (.*)$",
                     trained.stdout, re.M)  # fmt: skip
    assert best and best[1] == str(Path("run") / "best"), trained.stdout
    repeat = re.search(r"^Repeat this evaluation: python evaluate.py (.*)$", trained.stdout, re.M)
    assert repeat, trained.stdout
    evaluated = _in_process(evaluate_main, [*shlex.split(repeat[1]), "--json", "s.json"], capsys)
    assert "4 episodes (deterministic, seed 1000000, 2 envs)" in evaluated.stdout
    final, again = (json.loads(Path(name).read_text()) for name in ("run/metrics.json", "s.json"))
    assert again["mean_return"] == final["mean_return"]
    assert again["mean_length"] == final["mean_length"]
    assert again["returns"] == final["returns"] and len(again["lengths"]) == 4
    assert again["mean_return"] == pytest.approx(sum(again["returns"]) / 4)
    default = _in_process(evaluate_main, ["run", "--episodes", "3"], capsys)
    assert "3 episodes (deterministic, seed 0, 1 env)" in default.stdout


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


@pytest.mark.parametrize("fps", [4, 8, 20, 30, 50, 125])
def test_gif_plays_in_real_time_at_any_render_fps(fps):
    every, delay_ms = gif_timing(fps)
    assert delay_ms >= 20 and delay_ms % 10 == 0  # what browsers play as written
    assert abs(every * 1000 / fps - delay_ms) / delay_ms < 0.25  # about real time


def test_classic_control_video_on_a_machine_without_display_prints_no_error(tmp_path):
    """pygame's SDL looks for a display and prints an "error:" line that is none."""
    run_dir = agents.train(env="CartPole-P-v1", run_dir=tmp_path / "run", **TINY_TRAIN)
    headless = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "SDL_VIDEODRIVER")}
    result = subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), str(run_dir), "--episodes", "1",
         "--video", str(tmp_path / "cartpole.gif")],
        env={**headless, "PYTHONPATH": str(REPO), "XDG_RUNTIME_DIR": ""},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert (tmp_path / "cartpole.gif").stat().st_size > 1000
