"""How well the critic fits the returns, and how much of each update the gradient clip lets
through: train, then read the run's ``train/`` log.

PPO's advantages are only as good as its critic. A critic that regresses returns in the env's
own units (Pendulum's reach -100 and below) must move its output far from where it starts,
while Adam moves each weight by about the learning rate per step whatever the error's size;
its large errors also fill the gradient's norm, which PPO clips for the whole loss at once
(``max_grad_norm``), the actor's part with the critic's. Normalised rewards (``normalize``
with ``normalize_reward``) keep the targets near unit size; these measures show what that
changes in a run.

This script trains each row's agent at the env's preset plus the row's overrides and reports,
from the run's ``progress.csv`` (one line per update), over the first and the last half of the
updates and then over seeds: the explained variance of the returns by the rollout's values
(1: a perfect critic), the critic's value loss, the gradient's norm before clipping and the
share of the step the clip let through (``min(1, max_grad_norm / norm)``); and the final
evaluation's mean return.

    python -m benchmarks.critic_fit               # Pendulum-P-v1: docs/critic_fit.*
    python -m benchmarks.critic_fit --env MyEnv-v0 --out /tmp/fit \
        --row "recurrent_ppo normalize=false" --row "recurrent_ppo"
"""

from __future__ import annotations

import csv
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from agents import atomic
from agents.callbacks import PROGRESS_FILE
from agents.config import make_config
from agents.runs import METRICS_FILE
from agents.training import train
from benchmarks import agent_rows

DEFAULT_ROWS = (  # Pendulum-P's preset normalises rewards; the rows without it came before
    "recurrent_ppo normalize_reward=false",
    "recurrent_ppo normalize_reward=false max_grad_norm=5.0",
    "recurrent_ppo",
)
COLUMNS = ("train/explained_variance", "train/value_loss", "train/grad_norm")
# report key, format, label
MEASURES = (
    ("explained_variance", ".2f", "explained variance"),
    ("value_loss", ".3g", "value loss"),
    ("grad_norm", ".3g", "gradient norm"),
    ("passed", ".2f", "let through"),
)


def updates(progress_csv: Path) -> dict[str, np.ndarray]:
    """The logged values of ``COLUMNS``, one per update (lines without them skipped)."""
    with open(progress_csv) as file:
        lines = [row for row in csv.DictReader(file) if row.get(COLUMNS[-1])]
    return {column: np.array([float(row[column]) for row in lines]) for column in COLUMNS}


def halves(values: np.ndarray) -> tuple[float, float]:
    middle = len(values) // 2
    return float(values[:middle].mean()), float(values[middle:].mean())


def measure_run(env_id: str, algo: str, overrides: dict[str, Any], seed: int) -> dict[str, Any]:
    config = make_config(env_id, algo=algo, seed=seed, overrides=overrides, progress=False)
    with tempfile.TemporaryDirectory() as folder:
        run_dir = train(config, run_dir=Path(folder) / "run")
        logged = updates(run_dir / PROGRESS_FILE)
        metrics = json.loads((run_dir / METRICS_FILE).read_text())
    norms = logged["train/grad_norm"]
    return {
        "seed": seed,
        "max_grad_norm": config.max_grad_norm,
        "explained_variance": halves(logged["train/explained_variance"]),
        "value_loss": halves(logged["train/value_loss"]),
        "grad_norm": halves(norms),
        "passed": halves(np.minimum(1.0, config.max_grad_norm / norms)),
        "mean_return": metrics["mean_return"],
    }


def measure(env_id: str, rows: list[str], seeds: list[int]) -> dict[str, Any]:
    results = []
    for row in rows:
        algo, overrides = agent_rows.parse_row(row)
        runs = [measure_run(env_id, algo, overrides, seed) for seed in seeds]
        results.append({"row": row, "algo": algo, "overrides": overrides, "runs": runs})
        fit = _mean(runs, "explained_variance", 0)
        returns = statistics.mean(run["mean_return"] for run in runs)
        print(f"{row:45s} explained variance (early) {fit:.2f}  return {returns:.0f}")
    return {"env": env_id, "seeds": seeds, "rows": results}


def _mean(runs: list[dict], key: str, half: int) -> float:
    return statistics.mean(run[key][half] for run in runs)


def write_markdown(report: dict[str, Any], path: Path, command: str) -> None:
    labels = " | ".join(label for _, _, label in MEASURES)
    lines = [
        "# How well the critic fits, and what the gradient clip lets through",
        "",
        f"Written by `benchmarks/critic_fit.py`; do not edit by hand. Command: `{command}`",
        "",
        f"{report['env']} at its preset plus each row's overrides, seeds {report['seeds']}, "
        "trained to the preset's budget. Per update (progress.csv): the explained variance of "
        "the returns by the rollout's values, the critic's value loss, the gradient's norm "
        "before clipping and the share of the step the clip let through (min(1, max_grad_norm "
        "/ norm)); each cell: mean over the first / the last half of the updates, then over "
        "seeds. Return: the final evaluation's mean. The module's docstring says why.",
        "",
        f"| agent | overrides | {labels} | return |",
        "|---|---|" + "---:|" * (len(MEASURES) + 1),
    ]
    for row in report["rows"]:
        runs = row["runs"]
        overrides = ", ".join(f"{k}={v}" for k, v in row["overrides"].items()) or "-"
        cells = [
            " / ".join(f"{_mean(runs, key, half):{spec}}" for half in (0, 1))
            for key, spec, _ in MEASURES
        ]
        returns = statistics.mean(run["mean_return"] for run in runs)
        lines.append(f"| {row['algo']} | {overrides} | {' | '.join(cells)} | {returns:.0f} |")
    atomic.write_text(path, "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    agent_rows.main(
        argv,
        name="critic_fit",
        description=__doc__.splitlines()[0],
        default_rows=DEFAULT_ROWS,
        example_row="recurrent_ppo normalize=false",
        measure=measure,
        write_markdown=write_markdown,
    )


if __name__ == "__main__":
    main()
