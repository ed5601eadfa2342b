"""A damaged run folder, one from another version, or an env that does not fit the model:
evaluate.py says so in one line and exits with code 2, and train.py --resume as well."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from agents.cli import evaluate_main, train_main


def _truncate(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _flip_bytes(path: Path, seed: int) -> None:
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for index in rng.integers(0, len(data), size=3):
        data[index] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE: dict[str, tuple[Callable[[Path], object], str]] = {
    "model-empty": (lambda run: (run / "model.zip").write_bytes(b""), "corrupt or truncated"),
    "model-cut-at-10%": (lambda run: _truncate(run / "model.zip", 0.1), "corrupt or truncated"),
    "model-cut-at-60%": (lambda run: _truncate(run / "model.zip", 0.6), "corrupt or truncated"),
    "model-cut-at-99%": (lambda run: _truncate(run / "model.zip", 0.99), "corrupt or truncated"),
    "model-bytes-flipped": (lambda run: _flip_bytes(run / "model.zip", 0), "corrupt"),
    "vecnormalize-cut": (
        lambda run: _truncate(run / "vecnormalize.pkl", 0.5),
        "vecnormalize.pkl (UnpicklingError); the file is corrupt or truncated",
    ),
    "vecnormalize-other-pickle": (
        lambda run: (run / "vecnormalize.pkl").write_bytes(b"\x80\x04K\x07."),  # pickled 7
        "vecnormalize.pkl (TypeError); the file is corrupt or truncated",
    ),
    "vecnormalize-missing": (
        lambda run: (run / "vecnormalize.pkl").unlink(),
        "the run was trained with normalize=true but",
    ),
    "config-not-yaml": (
        lambda run: (run / "config.yaml").write_text("env: [unclosed"),
        "config.yaml is corrupt",
    ),
    "run-json-corrupt": (lambda run: (run / "run.json").write_text("{"), "run.json is corrupt"),
    "newer-run-format": (
        lambda run: (run / "run.json").write_text('{"version": "3.0.0", "format": 7}'),
        "written by recurrent-control 3.0.0 (run format 7)",
    ),
    "older-version-config": (
        lambda run: (
            (run / "run.json").write_text('{"version": "0.0.9", "format": 1}'),
            (run / "config.yaml").write_text(
                (run / "config.yaml").read_text() + "lstm_dropout: 0.1\n"
            ),
        ),
        "written by recurrent-control 0.0.9 and this is",
    ),
}


def _one_line_exit_2(code: int, capsys) -> str:
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_run_folder_is_one_line_and_exit_2(damage, small_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(small_run, run_dir)
    change, fragment = DAMAGE[damage]
    change(run_dir)
    line = _one_line_exit_2(evaluate_main([str(run_dir), "--episodes", "2"]), capsys)
    assert fragment in line


@pytest.mark.parametrize("damage", ["vecnormalize-cut", "newer-run-format", "config-not-yaml"])
def test_resuming_a_damaged_run_folder_is_one_line_and_exit_2(damage, small_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(small_run, run_dir)
    change, fragment = DAMAGE[damage]
    change(run_dir)
    resumed = train_main(["--resume", str(run_dir), "--timesteps", "512"])
    assert fragment in _one_line_exit_2(resumed, capsys)


def test_a_normalised_model_on_an_env_of_other_spaces_names_the_mismatch(small_run, capsys):
    """Issue 16, item 1: not "vecnormalize.pkl is corrupt", but the spaces that differ."""
    line = _one_line_exit_2(evaluate_main([str(small_run), "--env", "CartPole-v1"]), capsys)
    assert "model and env do not match" in line
    assert "(2,)" in line and "(4,)" in line


def test_resume_refuses_flags_that_would_change_the_run(small_run, capsys):
    line = _one_line_exit_2(train_main(["--resume", str(small_run), "--seed", "3"]), capsys)
    assert "leave out --seed" in line
