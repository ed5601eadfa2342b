"""The command line of the benchmarks that compare rows of agents on one env.

A row is an algo and config overrides, as one string: ``"recurrent_ppo log_std_init=1"``.
benchmarks/exploration_noise.py and benchmarks/critic_fit.py measure each row over seeds at
the env's preset plus the row's overrides, and write ``docs/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch as th

from agents import atomic
from agents.config import parse_assignments

Report = dict[str, Any]


def parse_row(row: str) -> tuple[str, dict[str, Any]]:
    """``"recurrent_ppo log_std_init=1"`` -> ``("recurrent_ppo", {"log_std_init": 1.0})``."""
    algo, *assignments = row.split()
    return algo, parse_assignments(assignments)


def main(
    argv: list[str] | None,
    *,
    name: str,
    description: str,
    default_rows: Sequence[str],
    example_row: str,
    measure: Callable[[str, list[str], list[int]], Report],
    write_markdown: Callable[[Report, Path, str], None],
) -> None:
    """Parse ``--env``, ``--row`` (repeatable), ``--seeds`` and ``--out``; measure; write."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--env", default="Pendulum-P-v1")
    parser.add_argument(
        "--row",
        action="append",
        help=f'an algo and overrides, e.g. "{example_row}" (repeatable; default: the rows of '
        "DEFAULT_ROWS)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("docs") / name)
    args = parser.parse_args(argv)
    th.set_num_threads(1)
    report = measure(args.env, args.row or list(default_rows), args.seeds)
    command = f"python -m benchmarks.{name} " + " ".join(argv or [])
    atomic.write_json(args.out.with_suffix(".json"), report)
    write_markdown(report, args.out.with_suffix(".md"), command.strip())
    print(f"wrote {args.out}.md and .json")
