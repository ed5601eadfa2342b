"""The fast tier's CartPole-P learning test, trained under several seeds (issue 15).

tests/test_pomdp_learning.py trains recurrent_ppo and ppo on CartPole-P-v1 with its small
budget under one seed and compares their returns with thresholds. This script runs the same
trainings and evaluations under more seeds, so that the thresholds can keep a margin from
what every seed reached. Each finished run is stored in ``docs/learning_tests.json`` at once
(the script resumes where it stopped); ``docs/learning_tests.md`` is rebuilt from it.

    nohup nice python -m benchmarks.learning_tests --seeds 0 1 2 3 4 > /tmp/lt.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import agents
from agents import atomic
from tests.test_pomdp_learning import BUDGET, ENV, EVALUATION

OUT = Path(__file__).resolve().parents[1] / "docs" / "learning_tests"
ALGOS = ("recurrent_ppo", "ppo")


def run(algo: str, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        run_dir = agents.train(
            env=ENV, algo=algo, seed=seed, run_dir=Path(folder) / "run", **BUDGET
        )
        metrics = agents.evaluate(run_dir, **EVALUATION)
    return {"mean_return": metrics["mean_return"], "wall_s": time.perf_counter() - start}


def render(runs: dict[str, dict[str, float]]) -> str:
    lines = [
        "# CartPole-P learning test over seeds",
        "",
        f"`tests/test_pomdp_learning.py`'s trainings ({ENV}, {BUDGET['n_timesteps']:,} steps, "
        f"each algorithm's preset) and evaluation ({EVALUATION['n_episodes']} episodes, "
        f"seed {EVALUATION['seed']}) under several training seeds; written by "
        "`python -m benchmarks.learning_tests`.",
        "",
        "| algo | seeds | mean return per seed | min | max |",
        "|---|---:|---|---:|---:|",
    ]
    for algo in ALGOS:
        returns = {int(key.split(":")[1]): r["mean_return"] for key, r in runs.items()
                   if key.startswith(f"{algo}:")}  # fmt: skip
        if not returns:
            continue
        per_seed = ", ".join(f"{seed}: {value:.1f}" for seed, value in sorted(returns.items()))
        values = list(returns.values())
        lines.append(
            f"| {algo} | {len(values)} | {per_seed} | {min(values):.1f} | {max(values):.1f} |"
        )
    recurrent = [r["mean_return"] for k, r in runs.items() if k.startswith("recurrent_ppo:")]
    memoryless = [r["mean_return"] for k, r in runs.items() if k.startswith("ppo:")]
    if recurrent and memoryless:
        lines += [
            "",
            f"Median recurrent / memoryless return: {statistics.median(recurrent):.1f} / "
            f"{statistics.median(memoryless):.1f}.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    json_path = OUT.with_suffix(".json")
    runs = json.loads(json_path.read_text()) if json_path.is_file() else {}
    for seed in args.seeds:
        for algo in ALGOS:
            key = f"{algo}:{seed}"
            if key in runs:
                continue
            runs[key] = run(algo, seed)
            print(key, runs[key], flush=True)
            atomic.write_json(json_path, runs)
            atomic.write_text(OUT.with_suffix(".md"), render(runs))
    print(render(runs))


if __name__ == "__main__":
    main()
