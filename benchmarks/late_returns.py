"""Late-training returns: each run's periodic evaluations over the last part of its training.

A run's final evaluation is one snapshot of a policy that may still swing from one evaluation
to the next (the recurrent MuJoCo agents' do by thousands), so three seeds of it compare two
settings coarsely. The mean of the evaluations over the last ``--fraction`` of training (by
default the last fifth: at 1M steps, the five evaluations from 800k on, 10 episodes each)
averages over those swings: a steadier measure of what a setting reaches, and of how well it
keeps it. It is read from docs/results.json (the learning curves every suite records), so
runs whose folders are gone count too. The issues' targets stay on the final evaluation.

Runs of the same settings recorded by several suites (an ablation that a preset adopted, a
suite of more seeds) are also pooled: one row per setting with every seed any suite ran, a
seed that a ``repeat`` suite trained again counted once, as first trained.

    python -m benchmarks.late_returns             # writes docs/late_returns.{md,json}
    python -m benchmarks.late_returns --suites mujoco mujoco_skip --out /tmp/late
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from agents import atomic
from benchmarks.grid import settings_key
from benchmarks.learning import spread
from benchmarks.tables import DOCS

DEFAULT_FRACTION = 0.2


def late_mean(curve: dict[str, list[float]], n_timesteps: int, fraction: float) -> float | None:
    """Mean of the curve's values at or after ``(1 - fraction) * n_timesteps``; None if the
    curve has none there (a run without periodic evaluations)."""
    start = (1.0 - fraction) * n_timesteps
    late = [v for t, v in zip(curve["timesteps"], curve["value"], strict=True) if t >= start]
    return float(np.mean(late)) if late else None


def rows(results: dict[str, Any], fraction: float) -> list[dict]:
    """One row per suite, env and algorithm whose runs are judged by their return."""
    table: dict[tuple[str, str, str], list[dict]] = {}
    for suite, _, env, algo, _, late in _judged(results, fraction):
        table.setdefault((suite, env, algo), []).append(late)
    return [
        {"suite": suite, "env": env, "algo": algo, "runs": sorted(runs, key=lambda r: r["seed"])}
        for (suite, env, algo), runs in table.items()
    ]


def pooled(results: dict[str, Any], fraction: float, min_seeds: int = 4) -> list[dict]:
    """One row per setting that the suites together ran on at least ``min_seeds`` seeds."""
    # settings (seed aside) -> env, algorithm and, per seed, (late row, suite, repeat suite?)
    groups: dict[str, tuple[str, str, dict[int, tuple[dict, str, bool]]]] = {}
    for suite, result, env, algo, run, late in _judged(results, fraction):
        repeat = result.get("repeat", False)
        key = settings_key({**run["config"], "seed": 0})
        _, _, by_seed = groups.setdefault(key, (env, algo, {}))
        kept = by_seed.get(late["seed"])
        if kept is None or (kept[2] and not repeat):
            by_seed[late["seed"]] = (late, suite, repeat)
    table = []
    for env, algo, by_seed in groups.values():
        if len(by_seed) >= min_seeds:
            runs = [by_seed[seed][0] for seed in sorted(by_seed)]
            suites = sorted({suite for _, suite, _ in by_seed.values()})
            table.append({"env": env, "algo": algo, "suites": suites, "runs": runs})
    return sorted(table, key=lambda row: (row["env"], row["algo"], row["suites"]))


def _judged(results: dict[str, Any], fraction: float):
    """Every run judged by its return: suite name, suite result, env, algorithm, the run's
    record and its late row (:func:`_late`)."""
    for suite, result in results.items():
        for entry in result["envs"]:
            for algo, stats in (entry.get("algos") or {}).items():
                for run in stats.get("runs", []):
                    late = _late(run, fraction)
                    if late is not None:
                        yield suite, result, entry["env"], algo, run, late


def _late(run: dict[str, Any], fraction: float) -> dict[str, Any] | None:
    """The run's seed, final and late return; None for a run judged by success or without
    periodic evaluations."""
    if run.get("success_rate") is not None or not run.get("curve"):
        return None
    # the budget asked for: a run trains up to a whole rollout beyond it
    budget = (run.get("config") or {}).get("n_timesteps") or run["n_timesteps"]
    late = late_mean(run["curve"], budget, fraction)
    if late is None:
        return None
    return {"seed": run["seed"], "final": run["mean_return"], "late": late}


def _mean_std(values: list[float]) -> str:
    stat = spread(values)  # as the suites' tables: sample std over seeds
    return f"{stat['mean']:.0f} ± {stat['std']:.0f}"


def _stats(row: dict[str, Any], per_seed: str) -> str:
    """A row's last cells: seeds, final and late mean ± std, and ``per_seed`` of each seed."""
    final = [run["final"] for run in row["runs"]]
    late = [run["late"] for run in row["runs"]]
    seeds = " / ".join(f"{run[per_seed]:.0f}" for run in row["runs"])
    return f"{len(final)} | {_mean_std(final)} | {_mean_std(late)} | {seeds} |"


def render(table: list[dict], fraction: float, pooled_table: list[dict] | None = None) -> str:
    lines = [
        "# Late-training returns",
        "",
        "Written by `benchmarks/late_returns.py` from docs/results.json; do not edit by hand. "
        "Command:",
        "",
        "    python -m benchmarks.late_returns",
        "",
        f"Per run: the final evaluation (as in docs/results.md) and the mean of the periodic "
        f"evaluations over the last {fraction:.0%} of training (deterministic actions; each "
        "evaluation the suite's eval_episodes). Mean ± std over seeds, and the late mean of "
        "each seed in seed order. A run's evaluations can swing by thousands from one to the "
        "next, so the late mean compares settings more steadily than one final snapshot; the "
        "issues' targets stay on the final evaluation.",
        "",
        "| suite | env | algo | seeds | final | late | late per seed |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for row in table:
        lines.append(f"| {row['suite']} | {row['env']} | {row['algo']} | {_stats(row, 'late')}")
    if pooled_table:
        lines += [
            "",
            "## Seeds pooled across suites",
            "",
            "Runs of one setting recorded by several suites, every seed once (a seed trained "
            "again by a repeat suite counts as first trained). Final return per seed in seed "
            "order.",
            "",
            "| env | algo | suites | seeds | final | late | final per seed |",
            "|---|---|---|---:|---:|---:|---|",
        ]
        for row in pooled_table:
            suites = ", ".join(row["suites"])
            lines.append(f"| {row['env']} | {row['algo']} | {suites} | {_stats(row, 'final')}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=DEFAULT_FRACTION)
    parser.add_argument("--suites", nargs="+", metavar="NAME", help="only these suites")
    parser.add_argument("--results", type=Path, default=DOCS / "results.json")
    parser.add_argument("--out", type=Path, default=DOCS / "late_returns")
    args = parser.parse_args(argv)
    if not 0 < args.fraction <= 1:
        print(f"--fraction must be in (0, 1], got {args.fraction}", file=sys.stderr)
        return 2
    try:
        results = json.loads(args.results.read_text())
    except (OSError, json.JSONDecodeError) as error:
        message = f"cannot read {args.results}: {error}; run benchmarks.learning first"
        print(message, file=sys.stderr)
        return 2
    chosen = {name: result for name, result in results.items() if name in (args.suites or results)}
    table = rows(chosen, args.fraction)
    pooled_table = pooled(chosen, args.fraction)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"fraction": args.fraction, "rows": table, "pooled": pooled_table}
    atomic.write_json(args.out.with_suffix(".json"), report)
    atomic.write_text(args.out.with_suffix(".md"), render(table, args.fraction, pooled_table))
    print(f"wrote {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
