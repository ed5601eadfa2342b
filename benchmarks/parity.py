"""Learning parity: our RecurrentPPO (default bptt_length) vs stock sb3-contrib, several seeds.

Each run trains one implementation on one task for the task's budget, then evaluates the final
policy (deterministic, recurrent state carried by SB3's ``evaluate_policy``). Runs are
appended one by one to ``<out>.json`` and skipped when already there, so the script can be
stopped and restarted (``nohup``); ``<out>.md`` is rewritten from all stored runs.

    nohup python -m benchmarks.parity > /tmp/parity.log 2>&1 &      # docs/parity.{json,md}
    python -m benchmarks.parity --tasks cartpole --impls ours --seeds 0 --out /tmp/p   # one run

Implementations: ``sb3-contrib``, ``ours`` (defaults), with options ``ours:bptt=N``,
``ours:bptt=none`` (other truncation lengths), ``ours:gru``, combined as ``ours:bptt=16,gru``.
Runs are stored under the spelled-out name (``ours`` -> ``ours:bptt=32``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sb3_contrib
import scipy.stats
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

import envs  # noqa: F401  (registers the ids)
from agents import atomic
from agents.recurrent.ppo import DEFAULT_BPTT_LENGTH, RecurrentPPO


@dataclass(frozen=True)
class Task:
    """A task, its training budget and hyperparameters (shared by both implementations)."""

    env_id: str
    n_timesteps: int
    n_eval_episodes: int
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    n_envs: int = 8
    normalize_observations: bool = False  # VecNormalize, observations only (as the zoo's)


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
    # rl-baselines3-zoo's PendulumNoVel-v1 as its trained agent records it (its benchmark: -218
    # at 100k steps), with both critics LSTMs, as in sb3-contrib (Pendulum-P-v1's preset has
    # since given its critic the full state). Ours runs with bptt=none here, as the preset does.
    "pendulum": Task(
        "Pendulum-P-v1",
        n_timesteps=100_000,
        n_eval_episodes=20,
        n_envs=4,
        normalize_observations=True,
        hyperparameters=dict(
            n_steps=1024,
            batch_size=128,
            gae_lambda=0.95,
            gamma=0.9,
            n_epochs=10,
            ent_coef=0.0,
            learning_rate=1e-3,
            clip_range=0.2,
            use_sde=True,
            sde_sample_freq=4,
        ),
        policy_kwargs=dict(
            lstm_hidden_size=64, net_arch=[64], activation_fn=th.nn.ReLU, ortho_init=False
        ),
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


def canonical(impl: str) -> str:
    """``ours`` with its options spelled out (``ours:bptt=32``), so stored runs stay labelled
    correctly when the default changes."""
    name, _, options = impl.partition(":")
    if name == "sb3-contrib" and not options:
        return impl
    if name != "ours":
        raise ValueError(f"unknown implementation {impl!r}")
    settings = dict(bptt=str(DEFAULT_BPTT_LENGTH).lower())
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        if key == "bptt":
            settings["bptt"] = value
        elif key == "gru" and not value:
            settings["gru"] = ""
        else:
            raise ValueError(f"unknown option {option!r} in {impl!r}")
    return "ours:" + ",".join(f"{k}={v}" if v else k for k, v in settings.items())


def make_env(task: Task, seed: int, training_env: VecNormalize | None = None) -> VecEnv:
    """The task's envs; normalised when the task says so, with ``training_env``'s statistics
    frozen for an evaluation env."""
    env = make_vec_env(task.env_id, n_envs=task.n_envs, seed=seed)
    if not task.normalize_observations:
        return env
    if training_env is None:
        return VecNormalize(env, norm_reward=False)
    frozen = VecNormalize(env, training=False, norm_reward=False)
    frozen.obs_rms = copy.deepcopy(training_env.obs_rms)
    return frozen


def build(impl: str, task: Task, seed: int):
    env = make_env(task, seed)
    kwargs = dict(task.hyperparameters, seed=seed, device="cpu")
    policy_kwargs = dict(task.policy_kwargs)
    if impl == "sb3-contrib":
        return sb3_contrib.RecurrentPPO("MlpLstmPolicy", env, policy_kwargs=policy_kwargs, **kwargs)
    settings = dict(option.partition("=")[::2] for option in impl.partition(":")[2].split(","))
    bptt_length = None if settings["bptt"] == "none" else int(settings["bptt"])
    if "gru" in settings:
        policy_kwargs["recurrent_cell"] = "gru"
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
    eval_env = make_env(task, 10_000 + seed, training_env=model.get_vec_normalize_env())
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


def late_training_return(run: dict[str, Any], fraction: float = 0.2) -> float:
    """Mean training return over the last ``fraction`` of rollouts: smoother than one final
    evaluation when PPO's return collapses and recovers late in training."""
    values = [point[1] for point in run["curve"]]
    tail = values[int(len(values) * (1 - fraction)) :] or values[-1:]
    return float(np.mean(tail))


def mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):.3f} +- {std:.3f}"


def comparison(task_runs: list[dict[str, Any]]) -> list[str]:
    """Ours (default) minus sb3-contrib, with Welch's t-test over seeds: is it seed noise?"""
    ours = [r for r in task_runs if r["impl"] == canonical("ours")]
    stock = [r for r in task_runs if r["impl"] == "sb3-contrib"]
    if len(ours) < 2 or len(stock) < 2:
        return []
    parts = []
    for name, metric in (("final return", "final_return"), ("late training return", None)):
        a = [r[metric] if metric else late_training_return(r) for r in ours]
        b = [r[metric] if metric else late_training_return(r) for r in stock]
        p_value = scipy.stats.ttest_ind(a, b, equal_var=False).pvalue
        parts.append(f"{name} {np.mean(a) - np.mean(b):+.3f} (Welch p = {p_value:.2f})")
    return [f"Ours (default) minus sb3-contrib: {'; '.join(parts)}."]


def write_markdown(runs: list[dict[str, Any]], path: Path) -> None:
    lines = [
        "# Learning parity: ours vs stock sb3-contrib RecurrentPPO",
        "",
        "Written by `benchmarks/parity.py` from docs/parity.json; do not edit by hand. The "
        "commands under each task reproduce its table (runs already stored are skipped; "
        "the runs were made in the background with `nohup`, one at a time, torch threads 1).",
        "",
        "- final return: mean over the evaluation episodes of the final policy (deterministic, "
        "recurrent state carried across steps and reset at episode starts);",
        "- late training return: mean return of the last 100 training episodes (stochastic "
        "policy), averaged over the rollouts of the last 20 % of training;",
        "- mean +- sample std over seeds; train s: median wall-clock seconds on the shared "
        "2-core machine, indicative only (docs/throughput.md has controlled timings).",
        "",
    ]
    for task_name, task in TASKS.items():
        task_runs = [run for run in runs if run["task"] == task_name]
        if not task_runs:
            continue
        impls = list(dict.fromkeys(run["impl"] for run in task_runs))
        # One command per set of seeds, so that each reproduces exactly the stored runs.
        by_seeds: dict[str, list[str]] = {}
        for impl in impls:
            seeds = sorted(run["seed"] for run in task_runs if run["impl"] == impl)
            by_seeds.setdefault(" ".join(map(str, seeds)), []).append(impl)
        policy = {k: getattr(v, "__name__", v) for k, v in task.policy_kwargs.items()}
        lines += [f"## {task.env_id}, {task.n_timesteps} steps", ""]
        lines += [
            f"    python -m benchmarks.parity --tasks {task_name} --impls {' '.join(group)} "
            f"--seeds {seeds}"
            for seeds, group in by_seeds.items()
        ]
        lines += [
            "",
            f"Both implementations: {task.hyperparameters}, policy {policy}, {task.n_envs} envs"
            f"{', observations normalised' if task.normalize_observations else ''}; "
            f"{task.n_eval_episodes} evaluation episodes per run.",
            "",
            "| implementation | seeds | final return | late training return | final return "
            "per seed | train s |",
            "|---|---:|---:|---:|---|---:|",
        ]
        for impl in impls:
            group = sorted((r for r in task_runs if r["impl"] == impl), key=lambda r: r["seed"])
            per_seed = ", ".join(f"{r['final_return']:.3f}" for r in group)
            seconds = statistics.median(r["train_seconds"] for r in group)
            default = " (default)" if impl == canonical("ours") else ""
            lines.append(
                f"| {impl}{default} | {len(group)} | "
                f"{mean_std([r['final_return'] for r in group])} | "
                f"{mean_std([late_training_return(r) for r in group])} | {per_seed} | "
                f"{seconds:.0f} |"
            )
        lines += ["", *comparison(task_runs), ""]
    atomic.write_text(path, "\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--impls", nargs="+", default=["sb3-contrib", "ours"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("docs/parity"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--markdown-only", action="store_true", help="rewrite <out>.md from <out>.json"
    )
    args = parser.parse_args(argv)
    if args.markdown_only:
        write_markdown(load_runs(args.out.with_suffix(".json")), args.out.with_suffix(".md"))
        return
    th.set_num_threads(args.threads)

    json_path = args.out.with_suffix(".json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    impls = [canonical(impl) for impl in args.impls]
    for task_name in args.tasks:
        for seed in args.seeds:  # seeds outer: a stopped run still has pairs to compare
            for impl in impls:
                runs = load_runs(json_path)
                if any((r["task"], r["impl"], r["seed"]) == (task_name, impl, seed) for r in runs):
                    continue
                print(f"{task_name} {impl} seed {seed} ...", flush=True)
                result = train_and_evaluate(task_name, impl, seed)
                result["load_average"] = [round(x, 2) for x in os.getloadavg()]
                print(f"  final return {result['final_return']:.3f}", flush=True)
                runs = load_runs(json_path) + [result]
                atomic.write_json(json_path, {"runs": runs}, indent=1)
                write_markdown(runs, args.out.with_suffix(".md"))


if __name__ == "__main__":
    main()
