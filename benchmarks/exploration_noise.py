"""How much action noise each agent starts with: the initial policy's std over one rollout.

gSDE (``use_sde``) draws its noise as a function of the policy's last hidden layer, so the
same ``log_std_init`` gives different noise to policies whose layers read different inputs:
behind an LSTM, whose outputs are bounded and small at the start, the noise is smaller than
behind an MLP reading the observation. This script builds each agent at the env's preset
(plus a row's overrides) with its initial weights, collects one rollout of the preset's size
as training does (noise redrawn every ``sde_sample_freq`` steps), and reports the action
distribution's std over it: the geometric mean over steps and action dims, read from the
distribution's entropy (a Gaussian's per dim is ``log(std) + log(2 pi e) / 2``), before any
clipping to the action bounds. Mean and range over seeds (each seed its own initial weights).

    python -m benchmarks.exploration_noise       # Pendulum-P-v1: docs/exploration_noise.*
    python -m benchmarks.exploration_noise --env MyEnv-v0 --out /tmp/noise \
        --row "recurrent_ppo log_std_init=1" --row ppo
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from agents import atomic
from agents.algos import build_model
from agents.config import make_config
from agents.environments import make_vec
from benchmarks import agent_rows
from benchmarks.rollouts import evaluate_batch, training_rollout

# log_std_init given in every row but the preset's own, so that the rows keep their meaning
# when a preset's value changes (Pendulum-P's search chose 1.411)
DEFAULT_ROWS = (
    "recurrent_ppo log_std_init=0.0",
    "recurrent_ppo recurrent_cell=gru log_std_init=0.0",
    "recurrent_ppo log_std_init=1.0",
    "recurrent_ppo",
    "recurrent_ppo log_std_init=2.0",
    "ppo log_std_init=0.0",
    "ppo_framestack log_std_init=0.0",
)
HALF_LOG_2_PI_E = 0.5 * math.log(2 * math.pi * math.e)


def initial_noise_std(env_id: str, algo: str, overrides: dict[str, Any], seed: int) -> float:
    """The action std of ``algo``'s initial policy over one rollout (see the module)."""
    config = make_config(env_id, algo=algo, seed=seed, overrides=overrides)
    env = make_vec(config, config.n_envs, seed)
    model = build_model(config, env)
    batches = training_rollout(model, env)
    env.close()
    action_dims = int(np.prod(env.action_space.shape))
    with th.no_grad():
        evaluated = [evaluate_batch(model.policy, batch) for batch in batches]
    total = sum(float(entropy[real].sum()) for _, entropy, real in evaluated)
    steps = sum(int(real.sum()) for _, _, real in evaluated)
    return math.exp(total / steps / action_dims - HALF_LOG_2_PI_E)


def measure(env_id: str, rows: list[str], seeds: list[int]) -> dict[str, Any]:
    results = []
    for row in rows:
        algo, overrides = agent_rows.parse_row(row)
        stds = [initial_noise_std(env_id, algo, overrides, seed) for seed in seeds]
        results.append({"row": row, "algo": algo, "overrides": overrides, "std": stds})
        print(f"{row:40s} std {statistics.mean(stds):.2f} ({min(stds):.2f}-{max(stds):.2f})")
    return {"env": env_id, "seeds": seeds, "rows": results}


def write_markdown(report: dict[str, Any], path: Path, command: str) -> None:
    lines = [
        "# How much action noise each agent starts with",
        "",
        f"Written by `benchmarks/exploration_noise.py`; do not edit by hand. Command: `{command}`",
        "",
        f"{report['env']} at its preset plus each row's overrides, initial weights, one rollout"
        " of the preset's size collected as in training; the action distribution's std (geometric"
        " mean over steps and action dims, from its entropy, before clipping to the action"
        f" bounds), mean and range over seeds {report['seeds']}. The module's docstring says why.",
        "",
        "| agent | overrides | action noise std | range |",
        "|---|---|---:|---:|",
    ]
    for row in report["rows"]:
        overrides = ", ".join(f"{k}={v}" for k, v in row["overrides"].items()) or "-"
        stds = row["std"]
        lines.append(
            f"| {row['algo']} | {overrides} | {statistics.mean(stds):.2f} "
            f"| {min(stds):.2f}-{max(stds):.2f} |"
        )
    atomic.write_text(path, "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    agent_rows.main(
        argv,
        name="exploration_noise",
        description=__doc__.splitlines()[0],
        default_rows=DEFAULT_ROWS,
        example_row="recurrent_ppo log_std_init=1",
        measure=measure,
        write_markdown=write_markdown,
    )


if __name__ == "__main__":
    main()
