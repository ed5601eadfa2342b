"""Where a training iteration's time goes: ours with a privileged critic against PPO-MLP.

benchmarks/throughput.py measures how fast each implementation trains; this splits one
rollout+train iteration of two of them into phases, to show what separates the recurrent
agent from PPO-MLP beyond the LSTM's own kernels. The phases are timed by wrapping the
methods that SB3 and sb3-contrib call (the policy's forward and evaluate_actions, the env's
step, the buffer's add and minibatches, backward, gradient clipping, the optimizer's step);
what is left of collecting or training is "rest". Same settings as throughput.py's
HalfCheetah-P-v5 configuration, the two models interleaved, each in a process of its own
(benchmarks/isolation.py), medians over repetitions.

    python -m benchmarks.time_split                      # writes docs/time_split.{json,md}
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm

from agents import atomic
from agents.recurrent.ppo import DEFAULT_BPTT_LENGTH
from benchmarks.isolation import Isolated
from benchmarks.throughput import (
    CONFIGS,
    Config,
    build,
    interleaved,
    lstm_kernels,
    report_header,
)

IMPLEMENTATIONS = ("ppo-mlp", "ours-privileged")
ROLLOUT_PHASES = ("policy forward", "env step", "buffer add", "rollout: rest")
TRAIN_PHASES = (
    "minibatch sampling",
    "evaluate_actions",
    "backward",
    "gradient clipping",
    "optimizer step",
    "train: loss and rest",
)
PHASES = (*ROLLOUT_PHASES, *TRAIN_PHASES)
TOTALS = ("rollout", "train")  # collect_rollouts and train, whole
PARTS = (*PHASES, *TOTALS)


class PhaseClock:
    """Seconds spent in each phase of ``model``'s iterations, by wrapping what it calls."""

    def __init__(self, model: BaseAlgorithm, config: Config) -> None:
        self.model, self.config = model, config
        self.seconds: dict[str, float] = defaultdict(float)
        policy = model.policy
        self._wrap(model, "collect_rollouts", "rollout")
        self._wrap(model, "train", "train")
        self._wrap(policy, "forward", "policy forward")
        self._wrap(policy, "evaluate_actions", "evaluate_actions")
        self._wrap(policy.optimizer, "step", "optimizer step")
        self._wrap(model.env, "step", "env step")
        self._wrap(model.rollout_buffer, "add", "buffer add")
        sample = model.rollout_buffer.get

        def timed_get(*args: Any, **kwargs: Any) -> Iterator[Any]:
            # the time spent producing each minibatch, not the caller's time between them
            minibatches = sample(*args, **kwargs)
            while True:
                start = time.perf_counter()
                try:
                    minibatch = next(minibatches)
                except StopIteration:
                    return
                finally:
                    self.seconds["minibatch sampling"] += time.perf_counter() - start
                yield minibatch

        model.rollout_buffer.get = timed_get  # type: ignore[method-assign]
        model.learn(self.steps_per_iteration)  # warm-up

    @property
    def steps_per_iteration(self) -> int:
        return self.config.n_envs * self.config.n_steps

    def _wrap(self, owner: Any, name: str, phase: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)
        setattr(owner, name, self._timed(original, phase))

    def _timed(self, function: Callable[..., Any], phase: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start

        return timed

    def measure(self) -> dict[str, float]:
        """Milliseconds per iteration in each phase, over ``config.iterations`` iterations."""
        self.seconds.clear()
        iterations = self.config.iterations
        # backward and clipping are called through torch's namespaces: wrapped while timing
        backward, clip = th.Tensor.backward, th.nn.utils.clip_grad_norm_
        with contextlib.ExitStack() as stack:
            stack.callback(setattr, th.Tensor, "backward", backward)
            stack.callback(setattr, th.nn.utils, "clip_grad_norm_", clip)
            th.Tensor.backward = self._timed(backward, "backward")  # type: ignore[method-assign]
            th.nn.utils.clip_grad_norm_ = self._timed(clip, "gradient clipping")
            self.model.learn(self.steps_per_iteration * iterations, reset_num_timesteps=False)
        s = dict(self.seconds)
        rollout_parts = sum(s.get(phase, 0.0) for phase in ROLLOUT_PHASES[:-1])
        train_parts = sum(s.get(phase, 0.0) for phase in TRAIN_PHASES[:-1])
        s["rollout: rest"] = s["rollout"] - rollout_parts
        s["train: loss and rest"] = s["train"] - train_parts
        split = {phase: 1000 * s.get(phase, 0.0) / iterations for phase in PARTS}
        # as throughput.TimedModel reports, for its interleaving
        split["steps_per_s"] = self.steps_per_iteration * iterations / (s["rollout"] + s["train"])
        return split


def phase_clock(impl: str, config: Config, hidden: int, seed: int) -> PhaseClock:
    """A ``PhaseClock`` on a fresh model (an ``Isolated`` worker's factory)."""
    return PhaseClock(build(impl, config, hidden, DEFAULT_BPTT_LENGTH, seed), config)


def measure(config: Config, repetitions: int, hidden: int, seed: int) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        timers = {
            impl: stack.enter_context(Isolated(phase_clock, impl, config, hidden, seed))
            for impl in IMPLEMENTATIONS
        }
        timers["LSTM kernels"] = stack.enter_context(
            Isolated(lstm_kernels, config, hidden, DEFAULT_BPTT_LENGTH, seed)
        )
        runs = interleaved(timers, repetitions)
    kernel_runs = runs.pop("LSTM kernels")
    medians = {
        impl: {phase: statistics.median(run[phase] for run in impl_runs) for phase in PARTS}
        for impl, impl_runs in runs.items()
    }
    steps = config.n_envs * config.n_steps * config.iterations
    kernel_ms = statistics.median(steps / run["steps_per_s"] * 1000 for run in kernel_runs)
    kernel_train = statistics.median(run["train_fraction"] for run in kernel_runs)
    return {
        "config": asdict(config),
        "ms_per_iteration": medians,
        "lstm_kernels_ms_per_iteration": {
            "rollout": kernel_ms * (1 - kernel_train) / config.iterations,
            "train": kernel_ms * kernel_train / config.iterations,
        },
    }


def write_markdown(report: dict[str, Any], path: Path) -> None:
    config, ms = report["config"], report["ms_per_iteration"]
    kernels = report["lstm_kernels_ms_per_iteration"]
    mlp, ours = (ms[impl] for impl in IMPLEMENTATIONS)
    lines = [
        "# Where a training iteration's time goes",
        "",
        "Written by `benchmarks/time_split.py`; do not edit by hand. Command:",
        "",
        f"    {report['command']}",
        "",
        f"Machine: {report['machine']}. Load average before / after: {report['load_before']} / "
        f"{report['load_after']}.",
        "",
        f"{config['env_id']}, n_envs {config['n_envs']}, n_steps {config['n_steps']} (one "
        f"iteration: {config['n_envs'] * config['n_steps']} env steps, then "
        f"{config['n_epochs']} epochs of minibatches of {config['batch_size']} steps), the "
        f"settings of docs/throughput.md; ours-privileged: an LSTM of {report['hidden']} units, "
        f"bptt_length {DEFAULT_BPTT_LENGTH}, a feed-forward critic reading the hidden state. "
        f"Milliseconds per iteration, median of {report['repetitions']} interleaved "
        "repetitions; a phase is the time spent inside the methods SB3 and sb3-contrib call "
        "for it (the module's docstring lists them), rest is what is left of collecting or "
        "training. LSTM kernels: the actor LSTM's oneDNN kernels alone on inputs of the same "
        "shapes (throughput.py's `LstmKernels`), the part of the difference no implementation "
        "with this LSTM avoids.",
        "",
        "| phase | ppo-mlp | ours-privileged | difference |",
        "|---|---:|---:|---:|",
    ]
    for phase in PARTS:
        name = f"**{phase} (total)**" if phase in TOTALS else phase
        lines.append(
            f"| {name} | {mlp[phase]:.1f} | {ours[phase]:.1f} | {ours[phase] - mlp[phase]:+.1f} |"
        )
    total_mlp, total_ours = (sum(m[t] for t in TOTALS) for m in (mlp, ours))
    kernel_total = kernels["rollout"] + kernels["train"]
    lines += [
        f"| **iteration** | {total_mlp:.1f} | {total_ours:.1f} | {total_ours - total_mlp:+.1f} |",
        "",
        f"LSTM kernels: {kernels['rollout']:.1f} ms in collecting (one cell step per env "
        f"step) and {kernels['train']:.1f} ms in training (forward and backward over every "
        f"minibatch), {kernel_total:.1f} ms of the {total_ours - total_mlp:.1f} ms difference; "
        f"the other {total_ours - total_mlp - kernel_total:.1f} ms are the recurrent agent's "
        "work around them. At these times ours-privileged trains at "
        f"{total_mlp / total_ours:.2f}x PPO-MLP's speed; without that other work it would train "
        f"at {total_mlp / (total_mlp + kernel_total):.2f}x.",
        "",
    ]
    atomic.write_text(path, "\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/time_split"))
    args = parser.parse_args(argv)
    th.set_num_threads(1)
    report = report_header("benchmarks.time_split", args)
    report |= measure(CONFIGS["halfcheetah"], args.repetitions, args.hidden, args.seed)
    report["load_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(args.out.with_suffix(".json"), report)
    write_markdown(report, args.out.with_suffix(".md"))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
