"""Training throughput: stock sb3-contrib RecurrentPPO vs ours (per bptt_length) vs PPO-MLP.

Every implementation trains on the same env with the same n_envs, n_steps, batch_size,
n_epochs and heads (net_arch [64, 64]); the recurrent ones put an LSTM of ``--hidden`` units
(with a separate critic LSTM, sb3-contrib's default) before the heads. Each model is built and
warmed up once in a process of its own (benchmarks/isolation.py: as in a real run, no other
model shares its heap), then timed for ``--iterations`` rollout+train iterations per
repetition, the implementations interleaved (rotating order) so that load from other processes
on the machine hits all of them alike. Ratios are taken within a repetition, then the median
is reported. Beside them the actor LSTM's kernels alone are timed (``LstmKernels``): added to
PPO-MLP's time they bound what any implementation with that LSTM can reach.

A thread study times our default and PPO-MLP at each of ``--thread-study`` torch thread
counts, interleaved the same way, on the first configuration.

    python -m benchmarks.throughput                     # writes docs/throughput.{json,md}
    python -m benchmarks.throughput --configs cartpole --repetitions 1 --out /tmp/tp  # quick
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import sb3_contrib
import stable_baselines3
import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

import envs  # noqa: F401  (registers the ids)
from agents import atomic
from agents.inputs import PrivilegedObservation
from agents.recurrent.cells import step_cells
from agents.recurrent.ppo import DEFAULT_BPTT_LENGTH, RecurrentPPO
from benchmarks.grid import cpu_model
from benchmarks.isolation import Isolated


@dataclass(frozen=True)
class Config:
    """One benchmark setting; ``iterations`` is chosen so each timed window sees episode ends."""

    name: str
    env_id: str
    iterations: int
    n_envs: int = 8
    n_steps: int = 256
    batch_size: int = 256
    n_epochs: int = 10


CONFIGS = {
    # Episodes of 1000 steps, all 8 envs in step: 4 iterations of 256 steps hold one reset.
    "halfcheetah": Config("halfcheetah", "HalfCheetah-P-v5", iterations=4),
    # Episodes of 3-12 steps: an episode start every few steps in every env.
    "memory": Config("memory", "MemoryStates-v0", iterations=2),
    "cartpole": Config("cartpole", "CartPole-P-v1", iterations=2),
}


def parse_bptt(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


# Ours with a feed-forward critic: without privileged input (the critic reads the observation),
# and with it (the critic reads the observation and the env's hidden state, Dict observations).
FEED_FORWARD_CRITIC = ("ours-ff-critic", "ours-privileged")


def build(impl: str, config: Config, hidden: int, bptt_length: int | None, seed: int):
    """A model for implementation ``impl``: sb3-contrib, ours, ours-gru, ours-ff-critic,
    ours-privileged, ppo-mlp or ppo-mlp-wide."""
    privileged = impl == "ours-privileged"
    env = make_vec_env(
        config.env_id,
        n_envs=config.n_envs,
        seed=seed,
        wrapper_class=PrivilegedObservation if privileged else None,
    )
    common: dict[str, Any] = dict(
        n_steps=config.n_steps,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        seed=seed,
        device="cpu",
    )
    recurrent = dict(lstm_hidden_size=hidden, enable_critic_lstm=True, net_arch=[64, 64])
    if impl == "sb3-contrib":
        return sb3_contrib.RecurrentPPO("MlpLstmPolicy", env, policy_kwargs=recurrent, **common)
    if impl in ("ours", "ours-gru"):
        cell = "gru" if impl == "ours-gru" else "lstm"
        kwargs = dict(recurrent, recurrent_cell=cell)
        return RecurrentPPO(
            "MlpLstmPolicy", env, policy_kwargs=kwargs, bptt_length=bptt_length, **common
        )
    if impl in FEED_FORWARD_CRITIC:
        return RecurrentPPO(
            "PrivilegedCriticLstmPolicy" if privileged else "MlpLstmPolicy",
            env,
            # the feed-forward critic as our trainer builds it (agents/algos.py)
            policy_kwargs=dict(recurrent, enable_critic_lstm=False, project_critic_input=False),
            bptt_length=bptt_length,
            **common,
        )
    if impl == "ppo-mlp":
        return PPO("MlpPolicy", env, policy_kwargs=dict(net_arch=[64, 64]), **common)
    if impl == "ppo-mlp-wide":  # heads as wide as the recurrent ones (PaddedObservation)
        wide = dict(
            net_arch=[64, 64],
            features_extractor_class=PaddedObservation,
            features_extractor_kwargs=dict(width=hidden),
        )
        return PPO("MlpPolicy", env, policy_kwargs=wide, **common)
    raise ValueError(f"unknown implementation {impl!r}")


class PaddedObservation(BaseFeaturesExtractor):
    """The observation flattened and padded with zeros to ``width`` features: PPO-MLP's heads
    then read as many inputs as the recurrent policies' heads read from an LSTM of ``width``
    units, and do as much arithmetic."""

    def __init__(self, observation_space: spaces.Space, width: int) -> None:
        super().__init__(observation_space, width)
        self.padding = width - get_flattened_obs_dim(observation_space)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return F.pad(th.flatten(observations, start_dim=1), (0, self.padding))


def label(impl: str, bptt_length: int | None) -> str:
    if impl.startswith("ours"):
        return f"{impl} bptt={bptt_length}"
    return impl


def shown(name: str) -> str:
    """Row name in the markdown, marking the current default (labels in the JSON are plain)."""
    name = name.replace(" (default)", "")
    return name + (" (default)" if name == label("ours", DEFAULT_BPTT_LENGTH) else "")


class TimedModel:
    """A warmed-up model whose ``measure()`` times rollout+train iterations."""

    def __init__(self, model: BaseAlgorithm, config: Config) -> None:
        self.model, self.config = model, config
        self.train_seconds = 0.0
        original_train: Callable[[], None] = model.train

        def timed_train() -> None:
            start = time.perf_counter()
            original_train()
            self.train_seconds += time.perf_counter() - start

        model.train = timed_train  # type: ignore[method-assign]
        model.learn(self.steps_per_iteration)  # warm-up: first allocations, caches

    @property
    def steps_per_iteration(self) -> int:
        return self.config.n_envs * self.config.n_steps

    def measure(self) -> dict[str, float]:
        steps = self.steps_per_iteration * self.config.iterations
        self.train_seconds = 0.0
        start = time.perf_counter()
        self.model.learn(steps, reset_num_timesteps=False)
        seconds = time.perf_counter() - start
        return {"steps_per_s": steps / seconds, "train_fraction": self.train_seconds / seconds}


class LstmKernels:
    """Times only the actor LSTM's kernels of one rollout+train iteration, with ``measure()``
    as :class:`TimedModel`'s: one cell step for every rollout step, then a forward and backward
    over every minibatch of every epoch. Added to PPO-MLP's time this bounds (:data:`BOUND`)
    every implementation: none with this LSTM on this CPU trains faster than PPO-MLP plus these
    kernels, whatever else it saves."""

    def __init__(self, lstm: th.nn.LSTM, config: Config, bptt_length: int) -> None:
        self.lstm = copy.deepcopy(lstm)
        self.config = config
        self.sequences = config.batch_size // bptt_length
        self.bptt_length = bptt_length
        self.measure()  # warm-up

    @property
    def steps_per_iteration(self) -> int:
        return self.config.n_envs * self.config.n_steps

    def measure(self) -> dict[str, float]:
        config, lstm = self.config, self.lstm
        zeros = th.zeros(lstm.num_layers, config.n_envs, lstm.hidden_size)
        step_input = th.randn(config.n_envs, lstm.input_size)
        sequence_input = th.randn(self.bptt_length, self.sequences, lstm.input_size)
        minibatches = self.steps_per_iteration // config.batch_size * config.n_epochs
        rollout_seconds = train_seconds = 0.0
        for _ in range(config.iterations):
            start = time.perf_counter()
            with th.no_grad():
                for _ in range(config.n_steps):
                    step_cells(step_input, (zeros, zeros), lstm)  # as collecting rollouts
            rollout_end = time.perf_counter()
            for _ in range(minibatches):
                output, _ = lstm(sequence_input)
                output.sum().backward()
            rollout_seconds += rollout_end - start
            train_seconds += time.perf_counter() - rollout_end
        seconds = rollout_seconds + train_seconds
        steps = self.steps_per_iteration * config.iterations
        return {"steps_per_s": steps / seconds, "train_fraction": train_seconds / seconds}


# PPO-MLP with the actor LSTM's kernels added: the most any implementation could reach.
BOUND = "bound: ppo-mlp + LSTM kernels"
# The same with PPO-MLP's heads as wide as the recurrent policies' (ppo-mlp-wide): what a
# recurrent policy pays beyond it is the LSTM's kernels and the code around them.
WIDE_BOUND = "bound: ppo-mlp-wide + LSTM kernels"


def with_kernels(mlp: list[dict[str, float]], kernels: list[dict[str, float]]) -> list[dict]:
    """Per repetition, PPO-MLP's time per step plus the kernels' (speeds add as resistances)."""
    runs = []
    for a, b in zip(mlp, kernels, strict=True):
        seconds = 1 / a["steps_per_s"] + 1 / b["steps_per_s"]
        train = a["train_fraction"] / a["steps_per_s"] + b["train_fraction"] / b["steps_per_s"]
        runs.append({"steps_per_s": 1 / seconds, "train_fraction": train / seconds})
    return runs


def interleaved(
    timers: dict[str, Isolated], repetitions: int, threads: dict[str, int] | None = None
) -> dict[str, list[dict[str, float]]]:
    """Time every timer once per repetition, rotating the order between repetitions; each runs
    in its own process (benchmarks/isolation.py), with ``threads[name]`` torch threads (1)."""
    names = list(timers)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for rep in range(repetitions):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            results[name].append(timers[name].measure(threads[name] if threads else 1))
            print(f"  rep {rep} {name:28s} {results[name][-1]['steps_per_s']:8.0f} steps/s")
    return results


def timed_model(
    impl: str, config: Config, hidden: int, bptt_length: int | None, seed: int, threads: int = 1
) -> TimedModel:
    """A warmed-up ``TimedModel`` of ``build``'s arguments (an ``Isolated`` worker's factory)."""
    th.set_num_threads(threads)
    return TimedModel(build(impl, config, hidden, bptt_length, seed), config)


def lstm_kernels(config: Config, hidden: int, bptt_length: int, seed: int) -> LstmKernels:
    """``LstmKernels`` of ours-privileged's actor LSTM (an ``Isolated`` worker's factory)."""
    model = build("ours-privileged", config, hidden, bptt_length, seed)
    return LstmKernels(model.policy.lstm_actor, config, bptt_length)


def summarise(runs: list[dict[str, float]], reference: list[dict[str, float]] | None) -> dict:
    speeds = [run["steps_per_s"] for run in runs]
    summary = {
        "steps_per_s_median": statistics.median(speeds),
        "steps_per_s": speeds,
        "train_fraction_median": statistics.median(run["train_fraction"] for run in runs),
    }
    if reference is not None:
        ratios = [a["steps_per_s"] / b["steps_per_s"] for a, b in zip(runs, reference, strict=True)]
        summary["ratio_median"] = statistics.median(ratios)
    return summary


def run_config(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    print(f"{config.name}: {config.env_id} {asdict(config)}", flush=True)
    implementations = [("sb3-contrib", None)]
    implementations += [("ours", bptt) for bptt in args.bptt]
    implementations += [("ours-gru", bptt) for bptt in args.gru_bptt]
    implementations += [(impl, DEFAULT_BPTT_LENGTH) for impl in FEED_FORWARD_CRITIC]
    implementations += [("ppo-mlp", None), ("ppo-mlp-wide", None)]
    implementations = list(dict.fromkeys(implementations))
    with contextlib.ExitStack() as stack:
        timers = {
            label(impl, bptt): stack.enter_context(
                Isolated(timed_model, impl, config, args.hidden, bptt, args.seed)
            )
            for impl, bptt in implementations
        }
        timers["LSTM kernels"] = stack.enter_context(
            Isolated(lstm_kernels, config, args.hidden, DEFAULT_BPTT_LENGTH, args.seed)
        )
        results = interleaved(timers, args.repetitions)
    kernels = results.pop("LSTM kernels")
    results[BOUND] = with_kernels(results["ppo-mlp"], kernels)
    results[WIDE_BOUND] = with_kernels(results["ppo-mlp-wide"], kernels)
    rows = {}
    for name, runs in results.items():
        rows[name] = summarise(runs, None)
        rows[name]["vs_sb3_contrib"] = summarise(runs, results["sb3-contrib"])["ratio_median"]
        rows[name]["vs_ppo_mlp"] = summarise(runs, results["ppo-mlp"])["ratio_median"]
    return {"config": asdict(config), "rows": rows}


def thread_study(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    print(f"thread study on {config.env_id}: threads {args.thread_study}", flush=True)
    # One iteration per repetition: with more threads than free cores a run can be 30x slower.
    config = replace(config, iterations=1)
    with contextlib.ExitStack() as stack:
        timers, threads = {}, {}
        for impl in ("ours", "ppo-mlp"):
            bptt = DEFAULT_BPTT_LENGTH if impl == "ours" else None
            for n in args.thread_study:
                name = f"{label(impl, bptt)} threads={n}"
                timers[name] = stack.enter_context(
                    Isolated(timed_model, impl, config, args.hidden, bptt, args.seed, n)
                )
                threads[name] = n
        results = interleaved(timers, args.repetitions, threads)
    rows = {}
    for name, runs in results.items():
        one_thread = name.rsplit(" threads=", 1)[0] + " threads=1"
        rows[name] = summarise(runs, results.get(one_thread))
    return {"config": asdict(config), "rows": rows}


def speed_range(row: dict[str, Any]) -> str:
    return f"{min(row['steps_per_s']):.0f}-{max(row['steps_per_s']):.0f}"


def write_markdown(report: dict[str, Any], path: Path) -> None:
    lines = [
        "# Training throughput",
        "",
        "Written by `benchmarks/throughput.py`; do not edit by hand. Command:",
        "",
        f"    {report['command']}",
        "",
        f"Machine: {report['machine']}. Load average before / after: "
        f"{report['load_before']} / {report['load_after']} (other processes shared the CPU; "
        "implementations are interleaved so that load hits all alike).",
        "",
        f"Env steps/s over rollout + train, median of {report['repetitions']} interleaved "
        "repetitions, each implementation built once in a process of its own "
        "(benchmarks/isolation.py), torch threads 1; ratios are medians of per-repetition "
        f"ratios. All recurrent rows use an LSTM of {report['hidden']} units (GRU for "
        "ours-gru) before [64, 64] heads, with a separate critic LSTM except ours-ff-critic "
        "(a feed-forward critic on the observation) and ours-privileged (a feed-forward critic "
        "on the observation and the env's hidden state, agents/inputs.py), whose [64, 64] MLP "
        "reads its input straight, as our trainer builds it; PPO-MLP has the "
        f"same heads without any LSTM. {BOUND}: PPO-MLP's time per step plus that of the "
        "actor LSTM's kernels alone (one oneDNN cell step per rollout step, forward and "
        "backward over every minibatch, timed in the same repetitions): the most any "
        "implementation with this LSTM could reach on this machine. ppo-mlp-wide: PPO-MLP "
        f"whose observation is padded with zeros to {report['hidden']} features, so that its "
        "heads read as many inputs as the recurrent ones read from the LSTM and do as much "
        f"arithmetic; {WIDE_BOUND}: the same bound on it, the tighter one for a recurrent "
        "policy with these heads. docs/time_split.md splits "
        "one iteration of ours-privileged and PPO-MLP into phases (benchmarks/time_split.py).",
        "",
    ]
    for result in report["configs"]:
        config = result["config"]
        lines += [
            f"## {config['env_id']}",
            "",
            f"n_envs {config['n_envs']}, n_steps {config['n_steps']}, batch_size "
            f"{config['batch_size']}, n_epochs {config['n_epochs']}, "
            f"{config['iterations']} iterations timed per repetition.",
            "",
            "| implementation | env steps/s | range | share in train() | x sb3-contrib "
            "| x PPO-MLP |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, row in result["rows"].items():
            lines.append(
                f"| {shown(name)} | {row['steps_per_s_median']:.0f} | {speed_range(row)} | "
                f"{row['train_fraction_median']:.0%}"
                f" | {row['vs_sb3_contrib']:.2f} | {row['vs_ppo_mlp']:.2f} |"
            )
        lines.append("")
    if report.get("threads"):
        study = report["threads"]
        lines += [
            f"## Torch threads ({study['config']['env_id']}, same settings, "
            f"{study['config']['iterations']} iteration timed per repetition)",
            "",
            "| implementation | env steps/s | range | x same with 1 thread |",
            "|---|---:|---:|---:|",
        ]
        for name, row in study["rows"].items():
            lines.append(
                f"| {shown(name)} | {row['steps_per_s_median']:.0f} | {speed_range(row)} | "
                f"{row.get('ratio_median', 1.0):.2f} |"
            )
        lines.append("")
    lines += summary(report)
    atomic.write_text(path, "\n".join(lines))


def summary(report: dict[str, Any]) -> list[str]:
    """The headline ratios, restated from the tables above."""
    lines = ["## Summary", ""]
    default = label("ours", DEFAULT_BPTT_LENGTH)
    for result in report["configs"]:
        rows = {shown(name).replace(" (default)", ""): row for name, row in result["rows"].items()}
        if default in rows:
            row = rows[default]
            lines.append(
                f"- {result['config']['env_id']}: ours (default bptt_length "
                f"{DEFAULT_BPTT_LENGTH}) trains at {row['vs_sb3_contrib']:.1f}x stock "
                f"sb3-contrib and {row['vs_ppo_mlp']:.2f}x PPO-MLP."
            )
        privileged = rows.get(label("ours-privileged", DEFAULT_BPTT_LENGTH))
        if privileged:
            lines.append(
                f"- {result['config']['env_id']}: with a feed-forward privileged critic, "
                f"{privileged['vs_ppo_mlp']:.2f}x PPO-MLP."
            )
        bound = rows.get(BOUND)
        if bound:
            lines.append(
                f"- {result['config']['env_id']}: PPO-MLP plus the actor LSTM's kernels alone, "
                f"{bound['vs_ppo_mlp']:.2f}x PPO-MLP: no implementation with this LSTM is faster."
            )
        wide_bound = rows.get(WIDE_BOUND)
        if wide_bound:
            lines.append(
                f"- {result['config']['env_id']}: PPO-MLP with heads as wide as the LSTM's "
                f"output plus its kernels, {wide_bound['vs_ppo_mlp']:.2f}x PPO-MLP: no "
                "implementation with this LSTM before these heads is faster."
            )
    for name, row in report.get("threads", {}).get("rows", {}).items():
        if not name.endswith("threads=1"):
            lines.append(f"- {name}: {row['ratio_median']:.2f}x the speed with 1 thread.")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--bptt", nargs="+", type=parse_bptt, default=[8, 16, 32, 64, None])
    parser.add_argument("--gru-bptt", nargs="*", type=parse_bptt, default=[8, DEFAULT_BPTT_LENGTH])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--thread-study", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/throughput"))
    parser.add_argument(
        "--markdown-only", action="store_true", help="rewrite <out>.md from <out>.json"
    )
    args = parser.parse_args(argv)
    if args.markdown_only:
        report = json.loads(args.out.with_suffix(".json").read_text())
        write_markdown(report, args.out.with_suffix(".md"))
        return

    th.set_num_threads(1)
    report = report_header("benchmarks.throughput", args)
    report |= {"default_bptt_length": DEFAULT_BPTT_LENGTH, "configs": []}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.configs:
        report["configs"].append(run_config(CONFIGS[name], args))
        save(report, args.out)  # partial results survive an interrupted run
    if args.thread_study:
        report["threads"] = thread_study(CONFIGS[args.configs[0]], args)
    save(report, args.out)
    print(args.out.with_suffix(".md").read_text())


def report_header(module: str, args: argparse.Namespace) -> dict[str, Any]:
    """What a timing report says first: its command, the machine, the load before it ran."""
    return {
        "command": f"python -m {module} " + " ".join(sys.argv[1:]),
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs, "
        f"torch {th.__version__}, sb3 {stable_baselines3.__version__}, "
        f"sb3-contrib {sb3_contrib.__version__}",
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "repetitions": args.repetitions,
        "hidden": args.hidden,
    }


def save(report: dict[str, Any], out: Path) -> None:
    report["load_after"] = [round(x, 2) for x in os.getloadavg()]
    atomic.write_json(out.with_suffix(".json"), report)
    write_markdown(report, out.with_suffix(".md"))


if __name__ == "__main__":
    main()
