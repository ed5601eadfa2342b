"""What ``pip install`` gives besides the package: console commands beside the scripts."""

import importlib

import pytest

from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

SCRIPTS = {"rc-train": "train.py", "rc-evaluate": "evaluate.py"}


@pytest.mark.parametrize(("command", "script"), SCRIPTS.items())
def test_console_command_runs_what_its_script_runs(command, script, capsys):
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts[command].partition(":")
    assert f"from {module} import {function}\n" in (REPO / script).read_text()
    with pytest.raises(SystemExit) as exited:
        getattr(importlib.import_module(module), function)(["--help"])
    assert exited.value.code == 0 and "usage:" in capsys.readouterr().out
