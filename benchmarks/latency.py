"""Inference latency per step at batch 1: SB3 ``predict`` vs the exported TorchScript and ONNX
files of the same LSTM policy, side by side in one run.

Two policy sizes: the MuJoCo preset's (Hopper-P-v5: LSTM of 128 units, heads [64, 64],
observations normalised) and the memory tasks' (MemoryStates-v0: 64 units). The models are
untrained (latency does not depend on the weights), saved as a run folder and exported with
``agents.export``. Each runtime steps one robot with its state fed back: ``predict`` on
numpy observations, TorchScript on tensors made from numpy (``torch.no_grad``), onnxruntime
on numpy. Every repetition times a block of steps of each runtime, the order rotating, so that
load from other processes hits all of them alike; median and p99 are over all timed steps.
One thread each: torch.set_num_threads(1), onnxruntime intra- and inter-op threads 1.

The files also normalise the observation, which ``predict`` leaves to VecNormalize: the
comparison favours ``predict`` by that much.

    python -m benchmarks.latency                  # writes docs/latency.{json,md}
    python -m benchmarks.latency --repetitions 3 --out /tmp/latency   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import stable_baselines3
import torch as th

import agents
from agents.algos import build_model
from agents.config import make_config
from agents.environments import make_vec
from agents.runs import MODEL_FILE, VECNORMALIZE_FILE, Run, load, save_config
from benchmarks.grid import cpu_model

POLICIES = {  # name: (env id, what it stands for)
    "mujoco": ("Hopper-P-v5", "MuJoCo preset: LSTM 128, heads [64, 64]"),
    "memory": ("MemoryStates-v0", "Memory tasks: LSTM 64, heads [64, 64]"),
}
RUNTIMES = ("predict", "torchscript", "onnxruntime")
Step = Callable[[], None]


def make_run(env_id: str, folder: Path) -> Run:
    """An untrained model of the env's preset, saved as a run folder and loaded back."""
    config = make_config(env=env_id, n_envs=1, n_steps=256, batch_size=256)
    env = make_vec(config, 1, seed=0)
    build_model(config, env).save(folder / MODEL_FILE)
    if config.normalize:
        env.save(str(folder / VECNORMALIZE_FILE))
    save_config(folder, config)
    env.close()
    return load(folder)


def stepper(runtime: str, run: Run, files: dict[str, Path], observations: np.ndarray) -> Step:
    """One call = one control step of one robot, the state carried to the next call."""
    count = {"t": 0}

    def next_observation() -> np.ndarray:
        count["t"] += 1
        return observations[count["t"] % len(observations)][None]

    if runtime == "predict":
        carried: dict[str, Any] = {"state": None, "start": np.ones(1, dtype=bool)}

        def step() -> None:
            _, carried["state"] = run.model.predict(
                next_observation(), carried["state"], carried["start"], deterministic=True
            )
            carried["start"] = np.zeros(1, dtype=bool)

        return step
    sidecar = json.loads(Path(f"{files['onnx']}.json").read_text())
    outputs = [tensor["name"] for tensor in sidecar["outputs"]]
    state = {  # zeros at the episode start; then each step's outputs fed back
        tensor["name"]: np.zeros([1 if d == "batch" else d for d in tensor["shape"]], np.float32)
        for tensor in sidecar["inputs"]
        if tensor["name"] != "obs"
    }
    feedback = [(pair["input"], outputs.index(pair["output"])) for pair in sidecar["state"]]
    if runtime == "torchscript":
        module = th.jit.load(str(files["torchscript"]))
        tensors = {name: th.from_numpy(value) for name, value in state.items()}

        def step() -> None:
            with th.no_grad():
                result = module(th.from_numpy(next_observation()), *tensors.values())
            result[0].numpy()  # the action, as a robot would read it
            tensors.update((name, result[index]) for name, index in feedback)

        return step
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(files["onnx"]), options, providers=["CPUExecutionProvider"]
    )

    def step() -> None:
        result = session.run(None, {"obs": next_observation(), **state})
        state.update((name, result[index]) for name, index in feedback)

    return step


def measure(steps: dict[str, Step], repetitions: int, block: int) -> dict[str, list[int]]:
    """Nanoseconds per call of each runtime, blocks interleaved in rotating order."""
    for step in steps.values():  # warm-up: first calls allocate and optimise
        for _ in range(100):
            step()
    times: dict[str, list[int]] = {name: [] for name in steps}
    names = list(steps)
    for repetition in range(repetitions):
        shift = repetition % len(names)
        for name in names[shift:] + names[:shift]:
            step = steps[name]
            for _ in range(block):
                start = time.perf_counter_ns()
                step()
                times[name].append(time.perf_counter_ns() - start)
    return times


def benchmark_policy(name: str, args: argparse.Namespace) -> dict[str, Any]:
    env_id, description = POLICIES[name]
    with tempfile.TemporaryDirectory() as folder:
        run = make_run(env_id, Path(folder))
        files = {
            "onnx": agents.export(run, Path(folder) / "policy.onnx"),
            "torchscript": agents.export(run, Path(folder) / "policy.pt"),
        }
        rng = np.random.default_rng(args.seed)
        shape = run.model.observation_space.shape
        observations = rng.normal(size=(1000, *shape)).astype(np.float32)
        steps = {runtime: stepper(runtime, run, files, observations) for runtime in RUNTIMES}
        times = measure(steps, args.repetitions, args.block)
    rows = {}
    for runtime, samples in times.items():
        microseconds = np.array(samples) / 1000
        rows[runtime] = {
            "median_us": round(float(np.median(microseconds)), 1),
            "p99_us": round(float(np.percentile(microseconds, 99)), 1),
            "steps": len(samples),
        }
    for row in rows.values():
        row["x_faster_than_predict"] = round(rows["predict"]["median_us"] / row["median_us"], 1)
    return {"policy": name, "env_id": env_id, "description": description, "runtimes": rows}


def write_markdown(report: dict[str, Any], path: Path) -> None:
    lines = [
        "# Inference latency of exported policies",
        "",
        "Written by `benchmarks/latency.py`; do not edit by hand. Command:",
        "",
        f"    {report['command']}",
        "",
        f"Machine: {report['machine']}. Load average before / after: {report['load_before']} / "
        f"{report['load_after']}, niceness {report['niceness']} (other processes shared the "
        "CPU; the runtimes are interleaved so that load hits all alike, and p99 shows it most).",
        "",
        "Per control step of one robot (batch 1, state fed back), "
        f"{report['repetitions']} interleaved repetitions of {report['block']} steps per runtime;"
        " one thread each. `predict` is SB3's on the loaded model (without VecNormalize); the "
        "exported files also normalise the observation. Made with `agents.export` "
        "([docs/export.md](export.md)).",
        "",
    ]
    for result in report["policies"]:
        lines += [
            f"## {result['description']} ({result['env_id']})",
            "",
            "| runtime | median (µs) | p99 (µs) | x faster than predict (median) |",
            "|---|---:|---:|---:|",
        ]
        for runtime, row in result["runtimes"].items():
            lines.append(
                f"| {runtime} | {row['median_us']} | {row['p99_us']} | "
                f"{row['x_faster_than_predict']} |"
            )
        lines.append("")
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    parser.add_argument("--repetitions", type=int, default=30)
    parser.add_argument("--block", type=int, default=200, help="steps per runtime and repetition")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/latency"))
    args = parser.parse_args(argv)
    th.set_num_threads(1)
    report: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.latency", *sys.argv[1:]]).strip(),
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs, "
        f"torch {th.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"sb3 {stable_baselines3.__version__}",
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "niceness": os.nice(0),
        "repetitions": args.repetitions,
        "block": args.block,
        "policies": [benchmark_policy(name, args) for name in args.policies],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, args.out.with_suffix(".md"))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
