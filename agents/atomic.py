"""Writing files so that a crash at any moment leaves either the old file or the new one.

Every file the package writes (model.zip, vecnormalize.pkl, config.yaml, metrics.json,
evaluations.npz, plots, videos, traces, benchmark results) is first written to a temporary
file in the same folder and then renamed over the target: ``os.replace`` is atomic on POSIX
and Windows within one file system, so a reader never sees a half-written file, even after
SIGKILL or a full disk. The temporary name keeps the suffix, so writers that pick their
format from it (SB3's zip, ``np.savez``, imageio, matplotlib) behave as for the real name.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_text(folder / "metrics.json", "{}\\n")
>>> with replacing(folder / "data.bin") as temporary:
...     _ = temporary.write_bytes(b"...")
>>> sorted(path.name for path in folder.iterdir())
['data.bin', 'metrics.json']
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMPORARY_MARK = ".tmp-"


def temporary_path(path: Path) -> Path:
    """A fresh name beside ``path``: hidden, marked as temporary, with the same suffix."""
    token = f"{os.getpid()}-{secrets.token_hex(3)}"
    return path.with_name(f".{path.stem}{TEMPORARY_MARK}{token}{path.suffix}")


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it goes.

    The writer may create the file however it likes (``model.save``, ``np.savez``, ...).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        yield temporary
        commit(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def commit(temporary: Path, path: Path) -> None:
    """Flush ``temporary`` to disk and rename it over ``path`` (the atomic step)."""
    with open(temporary, "rb+") as file:
        os.fsync(file.fileno())  # the data is on disk before the name points at it
    os.replace(temporary, path)
    with contextlib.suppress(OSError):  # directories cannot be opened on Windows
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any, indent: int = 2) -> None:
    write_text(path, json.dumps(data, indent=indent) + "\n")


def append_text(path: str | Path, text: str) -> None:
    """Append by rewriting the whole file: small files only (command.txt)."""
    path = Path(path)
    before = path.read_text(encoding="utf-8") if path.is_file() else ""
    write_text(path, before + text)


def remove_leftovers(folder: str | Path) -> list[Path]:
    """Delete temporary files that killed processes left in ``folder`` (and below); files of
    a process still running are its writes in progress and stay."""
    leftovers = []
    for path in Path(folder).rglob(f".*{TEMPORARY_MARK}*"):
        pid = path.name.partition(TEMPORARY_MARK)[2].partition("-")[0]
        if path.is_file() and not (pid.isdigit() and _running(int(pid))):
            path.unlink(missing_ok=True)
            leftovers.append(path)
    return leftovers


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
