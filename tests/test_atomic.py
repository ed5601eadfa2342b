"""Atomic writes: a writer that fails leaves the old file whole and no temporary behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agents import atomic


def test_a_writer_that_fails_halfway_leaves_the_old_file(tmp_path):
    path = tmp_path / "metrics.json"
    atomic.write_text(path, "old\n")
    with pytest.raises(OSError, match="disk full"):
        with atomic.replacing(path) as temporary:
            temporary.write_text("half of the ne")
            raise OSError("disk full")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_the_temporary_keeps_the_suffix_and_lands_in_the_same_folder(tmp_path):
    path = tmp_path / "sub" / "model.zip"
    with atomic.replacing(path) as temporary:
        assert temporary.parent == path.parent and temporary.suffix == ".zip"
        assert temporary.name.startswith(".model") and atomic.TEMPORARY_MARK in temporary.name
        temporary.write_bytes(b"new")
    assert path.read_bytes() == b"new"


def test_append_keeps_what_was_there(tmp_path):
    path = tmp_path / "command.txt"
    atomic.append_text(path, "python train.py\n")
    atomic.append_text(path, "python train.py --resume run\n")
    assert path.read_text().splitlines() == ["python train.py", "python train.py --resume run"]


def test_leftovers_of_dead_processes_go_and_those_of_live_ones_stay(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    dead = tmp_path / f".model{atomic.TEMPORARY_MARK}{finished.stdout.strip()}-abcdef.zip"
    alive = tmp_path / "checkpoints" / f".x{atomic.TEMPORARY_MARK}{os.getpid()}-abcdef.pkl"
    alive.parent.mkdir()
    for path in (dead, alive):
        path.write_bytes(b"torn")
    assert atomic.remove_leftovers(tmp_path) == [dead]
    assert alive.exists() and not dead.exists()
