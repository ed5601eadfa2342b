"""Each seed's final return on some envs of one suite, as a markdown table (the README's
table of the harder MuJoCo variants), read from docs/results.json.

A cell is the mean over the seeds run so far with each seed's return in brackets, so that a
reader sees whether one seed carries the mean; the seeds column lists the seeds of the row.

    python -m benchmarks.seed_table mujoco Hopper-V-v5 Walker2d-V-v5 HalfCheetah-V-v5
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.tables import ALGO_ORDER, DOCS


def seed_cell(runs: list[dict[str, Any]]) -> str:
    """``mean (seed 0 / seed 1 / ...)`` of the runs' final returns, in seed order."""
    if not runs:
        return "not run"
    returns = [run["mean_return"] for run in sorted(runs, key=lambda run: run["seed"])]
    mean = f"{sum(returns) / len(returns):.0f}"
    if len(returns) == 1:
        return mean
    return f"{mean} ({' / '.join(f'{value:.0f}' for value in returns)})"


def seed_range(seeds: set[int]) -> str:
    """``0-2`` for consecutive seeds, else ``0, 2``."""
    ordered = sorted(seeds)
    if len(ordered) > 1 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ", ".join(map(str, ordered))


def seed_table(result: dict[str, Any], env_ids: list[str]) -> list[str]:
    rows = {row["env"]: row for row in result["envs"]}
    missing = [env_id for env_id in env_ids if env_id not in rows]
    if missing:
        raise KeyError(f"suite {result['suite']!r} has no env {missing[0]!r}")
    lines = [
        "| robot | " + " | ".join(ALGO_ORDER) + " | seeds |",
        "|---|" + "---:|" * len(ALGO_ORDER) + "---|",
    ]
    for env_id in env_ids:
        algos = rows[env_id]["algos"]
        runs = {algo: algos.get(algo, {}).get("runs", []) for algo in ALGO_ORDER}
        seeds = {run["seed"] for algo_runs in runs.values() for run in algo_runs}
        cells = [seed_cell(runs[algo]) for algo in ALGO_ORDER]
        lines.append(f"| {env_id} | " + " | ".join(cells) + f" | {seed_range(seeds)} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", help="a suite of docs/results.json, e.g. mujoco")
    parser.add_argument("envs", nargs="+", metavar="ENV_ID", help="its rows, in table order")
    parser.add_argument("--results", type=Path, default=DOCS / "results.json")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    if args.suite not in results:
        print(f"error: {args.results} has no suite {args.suite!r}", file=sys.stderr)
        return 2
    try:
        print("\n".join(seed_table(results[args.suite], args.envs)))
    except KeyError as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
