"""Learning parity: our RecurrentPPO (default bptt_length) vs stock sb3-contrib, several seeds.

Each run trains one implementation on one task for the task's budget, then evaluates the final
policy (deterministic, recurrent state carried by SB3's ``evaluate_policy``). Runs are
appended one by one to ``<out>.json`` and skipped when already there, so the script can be
stopped and restarted (``nohup``); ``<out>.md`` is rewritten from all stored runs.

    nohup python -m benchmarks.parity > /tmp/parity.log 2>&1 &      # docs/parity.{json,md}
    python -m benchmarks.parity --tasks cartpole --impls ours --seeds 0 --out /tmp/p   # one run

Implementations: ``sb3-contrib``, ``ours`` (defaults), ``ours:bptt=N`` / ``ours:bptt=none``
(other truncation lengths), ``ours:gru``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sb3_contrib
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import envs  # noqa: F401  (registers the ids)
from agents.recurrent_ppo import DEFAULT_BPTT_LENGTH, RecurrentPPO


@dataclass(frozen=True)
class Task:
    """A task, its training budget and hyperparameters (shared by both implementations)."""

    env_id: str
    n_timesteps: int
    n_eval_episodes: int
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    policy_kwargs: dict[str, Any] = field(default_factory=dict)


TASKS = {
    # agents/presets.yaml's CartPole-P-v1 (after rl-baselines3-zoo's CartPoleNoVel-v1), but
    # n_steps 128 instead of 32 so that bptt truncation (default 32) takes effect. Without
    # velocities a memoryless policy cannot balance for long: the return measures memory.
    "cartpole": Task(
        "CartPole-P-v1",
        n_timesteps=100_000,
        n_eval_episodes=20,
        hyperparameters=dict(
            n_steps=128,
            batch_size=256,
            gae_lambda=0.8,
            gamma=0.98,
            n_epochs=20,
            learning_rate=1e-3,
        ),
        policy_kwargs=dict(
            lstm_hidden_size=64, net_arch=[64], activation_fn=th.nn.ReLU, ortho_init=False
        ),
    ),
    # The cue must be held over 1-100 distractors (mean 50.5); the memoryless ceiling is 0.5
    # and the return of an episode is 1 exactly when it succeeds.
    "memory-long": Task(
        "MemoryStates-Long-v0",
        n_timesteps=300_000,
        n_eval_episodes=200,
        hyperparameters=dict(n_steps=128, batch_size=256, n_epochs=10, learning_rate=1e-3),
        policy_kwargs=dict(lstm_hidden_size=64, net_arch=[64, 64]),
    ),
}


class LearningCurve(BaseCallback):
    """Records the mean return of the last 100 training episodes after every rollout."""

    def __init__(self) -> None:
        super().__init__()
        self.points: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        episodes = self.model.ep_info_buffer
        if episodes:
            mean = float(np.mean([info["r"] for info in episodes]))
            self.points.append((self.num_timesteps, round(mean, 4)))


def build(impl: str, task: Task, seed: int):
    env = make_vec_env(task.env_id, n_envs=8, seed=seed)
    kwargs = dict(task.hyperparameters, seed=seed, device="cpu")
    policy_kwargs = dict(task.policy_kwargs)
    if impl == "sb3-contrib":
        return sb3_contrib.RecurrentPPO("MlpLstmPolicy", env, policy_kwargs=policy_kwargs, **kwargs)
    name, _, option = impl.partition(":")
    if name != "ours":
        raise ValueError(f"unknown implementation {impl!r}")
    bptt_length = DEFAULT_BPTT_LENGTH
    if option.startswith("bptt="):
        value = option.removeprefix("bptt=")
        bptt_length = None if value == "none" else int(value)
    elif option == "gru":
        policy_kwargs["recurrent_cell"] = "gru"
    elif option:
        raise ValueError(f"unknown option {option!r} in {impl!r}")
    return RecurrentPPO(
        "MlpLstmPolicy", env, policy_kwargs=policy_kwargs, bptt_length=bptt_length, **kwargs
    )


def train_and_evaluate(task_name: str, impl: str, seed: int) -> dict[str, Any]:
    task = TASKS[task_name]
    th.manual_seed(seed)
    model = build(impl, task, seed)
    curve = LearningCurve()
    start = time.perf_counter()
    model.learn(task.n_timesteps, callback=curve)
    seconds = time.perf_counter() - start
    eval_env = make_vec_env(task.env_id, n_envs=8, seed=10_000 + seed)
    returns, _ = evaluate_policy(
        model, eval_env, n_eval_episodes=task.n_eval_episodes, return_episode_rewards=True
    )
    return {
        "task": task_name,
        "env_id": task.env_id,
        "impl": impl,
        "bptt_length": getattr(model, "bptt_length", "n/a (stock)"),
        "seed": seed,
        "n_timesteps": task.n_timesteps,
        "final_return": float(np.mean(returns)),
        "train_return_last_100": curve.points[-1][1] if curve.points else None,
        "train_seconds": round(seconds, 1),
        "curve": curve.points,
    }


def load_runs(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["runs"] if path.exists() else []


def write_markdown(runs: list[dict[str, Any]], command: str, path: Path) -> None:
    lines = [
        "# Learning parity: ours vs stock sb3-contrib RecurrentPPO",
        "",
        "Written by `benchmarks/parity.py`; do not edit by hand. Runs accumulate across "
        "invocations of:",
        "",
        f"    {command}",
        "",
        "Final return: mean over the evaluation episodes of the final policy (deterministic, "
        "recurrent state carried across steps and reset at episode starts). Mean +- std over "
        "seeds (sample std). Train time: wall-clock seconds on a shared 2-core machine "
        "(indicative only; see docs/throughput.md for controlled timings).",
        "",
    ]
    for task_name, task in TASKS.items():
        task_runs = [run for run in runs if run["task"] == task_name]
        if not task_runs:
            continue
        lines += [
            f"## {task.env_id}, {task.n_timesteps} steps",
            "",
            f"Hyperparameters (both implementations): {task.hyperparameters}, policy "
            f"{ {k: getattr(v, '__name__', v) for k, v in task.policy_kwargs.items()} }, "
            f"8 envs; {task.n_eval_episodes} evaluation episodes per run.",
            "",
            "| implementation | bptt_length | seeds | final return (mean +- std) | per seed "
            "| train s (median) |",
            "|---|---|---:|---:|---|---:|",
        ]
        for impl in dict.fromkeys(run["impl"] for run in task_runs):
            group = sorted((r for r in task_runs if r["impl"] == impl), key=lambda r: r["seed"])
            finals = [r["final_return"] for r in group]
            std = statistics.stdev(finals) if len(finals) > 1 else float("nan")
            per_seed = ", ".join(f"{r['seed']}: {r['final_return']:.3f}" for r in group)
            seconds = statistics.median(r["train_seconds"] for r in group)
            lines.append(
                f"| {impl} | {group[0]['bptt_length']} | {len(group)} | "
                f"{statistics.mean(finals):.3f} +- {std:.3f} | {per_seed} | {seconds:.0f} |"
            )
        lines.append("")
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--impls", nargs="+", default=["sb3-contrib", "ours"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("docs/parity"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    th.set_num_threads(args.threads)

    json_path = args.out.with_suffix(".json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.parity " + " ".join(
        f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items()
    )
    for task_name in args.tasks:
        for seed in args.seeds:  # seeds outer: a stopped run still has pairs to compare
            for impl in args.impls:
                runs = load_runs(json_path)
                if any((r["task"], r["impl"], r["seed"]) == (task_name, impl, seed) for r in runs):
                    continue
                print(f"{task_name} {impl} seed {seed} ...", flush=True)
                result = train_and_evaluate(task_name, impl, seed)
                result["load_average"] = [round(x, 2) for x in os.getloadavg()]
                print(f"  final return {result['final_return']:.3f}", flush=True)
                runs = load_runs(json_path) + [result]
                json_path.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
                write_markdown(runs, command, args.out.with_suffix(".md"))


if __name__ == "__main__":
    main()
