"""How close trained agents end their episodes: the distribution of a number that the env
reports in ``info`` on each episode's last step, for run folders side by side.

A success threshold hides how near the misses were: on Reacher-Cue (success: the fingertip
within 0.02 m of the remembered target at the end) an agent that ends 3 cm off every time
and one that waves at random both score 0. The final ``info["distance"]`` tells them apart.

    python -m benchmarks.final_info RUN [RUN ...] --key distance --thresholds 0.02 0.05 \\
        --out docs/reacher_cue_distance       # writes docs/reacher_cue_distance.{json,md}

Deterministic actions, episodes seeded apart from training's and evaluation's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from agents.rollout import episodes
from agents.runs import load

SEED = 3_000_000  # training seeds from 0, evaluation from 500k and 1M: none of their episodes


def final_values(run_dir: Path, key: str, n_episodes: int, n_envs: int = 8) -> list[float]:
    """``info[key]`` on the last step of ``n_episodes`` episodes of the run's model."""
    run = load(run_dir)
    env = run.make_env(n_envs=n_envs, seed=SEED)
    try:
        finished = episodes(run.model, env, n_episodes)
    finally:
        env.close()
    if any(key not in episode.final_info for episode in finished):
        raise SystemExit(f"{run_dir}: the env reports no info[{key!r}]")
    return [float(episode.final_info[key]) for episode in finished]


def summary(values: list[float], thresholds: list[float]) -> dict[str, Any]:
    array = np.asarray(values)
    return {
        "episodes": len(values),
        "median": float(np.median(array)),
        "quartiles": [float(np.quantile(array, 0.25)), float(np.quantile(array, 0.75))],
        "below": {str(t): float(np.mean(array < t)) for t in thresholds},
    }


def write(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    key, thresholds = report["key"], report["thresholds"]
    lines = [
        f"# Final `{key}` of trained runs",
        "",
        "Written by `benchmarks/final_info.py`; do not edit by hand. Command:",
        "",
        f"    {report['command']}",
        "",
        f"`info[{key!r}]` on the last step of each of {report['episodes']} episodes "
        "(deterministic actions).",
        "",
        "| run | median | quartiles | " + " | ".join(f"< {t:g}" for t in thresholds) + " |",
        "|---|---:|---:|" + "---:|" * len(thresholds),
    ]
    for run, row in report["runs"].items():
        low, high = row["quartiles"]
        shares = " | ".join(f"{row['below'][str(t)]:.2f}" for t in thresholds)
        lines.append(f"| {run} | {row['median']:.3f} | {low:.3f}-{high:.3f} | {shares} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    parser.add_argument("--key", default="distance", help="the info key to read")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--thresholds", nargs="*", type=float, default=[])
    parser.add_argument("--out", type=Path, required=True, help="path without suffix")
    args = parser.parse_args(argv)
    th.set_num_threads(1)
    report = {
        "command": "python -m benchmarks.final_info "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "key": args.key,
        "episodes": args.episodes,
        "thresholds": args.thresholds,
        "runs": {
            run.name: summary(final_values(run, args.key, args.episodes), args.thresholds)
            for run in args.runs
        },
    }
    write(report, args.out)
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
