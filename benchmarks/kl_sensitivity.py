"""How far one Adam-sized step of each part of a trained actor moves the policy (KL).

Adam moves every weight by about the learning rate per step, whatever its gradient's size (its
first step is exactly ``lr * sign(gradient)``). This script takes trained run folders, collects
one rollout of each run's own size with its policy, takes the PPO surrogate's gradient on it
(advantages normalised) and, for each part of the actor in turn, steps that part alone by
``lr * sign(gradient)``; the table gives the mean approximate KL to the rollout's policy over
the rollout, as SB3 computes ``train/approx_kl``. A part whose step moves the policy far spends
a KL-limited update (``desired_kl``, ``target_kl``, the clip range) on itself.

Parts: ``lstm`` (the actor's recurrent layer), ``head`` (the actor's MLP), ``action_net`` (the
last layer), ``log_std``, ``actor`` (all of them at once) and ``all but lstm``; with
``--memory-scale S`` also ``actor, lstm at S`` (the LSTM's step scaled by S, as
``memory_lr_scale``).

    python -m benchmarks.kl_sensitivity            # the mujoco suites' -P runs found in runs/
    python -m benchmarks.kl_sensitivity RUN_DIR [RUN_DIR ...] --out /tmp/kl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch as th

from agents.runs import load
from benchmarks.rollouts import evaluate_batch, training_rollout

PARTS = {  # part: prefixes of the actor's parameter names
    "lstm": ("lstm_actor.",),
    "head": ("mlp_extractor.policy_net.",),
    "action_net": ("action_net.",),
    "log_std": ("log_std",),
}
DEFAULT_RUNS = "runs/benchmark/mujoco*/*-P-v5__*ppo__*"


def _log_probs(policy: Any, batch: Any) -> tuple[th.Tensor, th.Tensor]:
    """Log-probabilities of the rollout's actions and their advantages (padding dropped)."""
    log_prob, _, real = evaluate_batch(policy, batch)
    return log_prob[real], batch.advantages[real]


def sensitivity(run_dir: Path, lr: float, memory_scale: float | None, seed: int) -> dict[str, Any]:
    run = load(run_dir)
    policy = run.model.policy
    env = run.make_env(n_envs=run.model.n_envs, seed=seed)
    batches = training_rollout(run.model, env)
    env.close()
    policy.zero_grad()
    with th.no_grad():
        before = th.cat([_log_probs(policy, batch)[0] for batch in batches])
    for batch in batches:
        log_prob, advantages = _log_probs(policy, batch)
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        (-(advantages * log_prob).mean() / len(batches)).backward()
    parameters = dict(policy.named_parameters())

    def part_of(name: str) -> str | None:
        return next((part for part, prefixes in PARTS.items() if name.startswith(prefixes)), None)

    def kl_after_step(scale_of: dict[str, float]) -> float:
        saved = {name: p.detach().clone() for name, p in parameters.items()}
        with th.no_grad():
            for name, p in parameters.items():
                scale = scale_of.get(part_of(name) or "", 0.0)
                if scale and p.grad is not None:
                    p -= scale * lr * th.sign(p.grad)
            after = th.cat([_log_probs(policy, batch)[0] for batch in batches])
            for name, p in parameters.items():
                p.copy_(saved[name])
        log_ratio = after - before
        return float(((th.exp(log_ratio) - 1) - log_ratio).mean())

    present = [part for part in PARTS if any(part_of(name) == part for name in parameters)]
    kl = {part: kl_after_step({part: 1.0}) for part in present}
    kl["actor"] = kl_after_step({part: 1.0 for part in present})
    if "lstm" in present:
        kl["all but lstm"] = kl_after_step({part: 1.0 for part in present if part != "lstm"})
    if memory_scale is not None and "lstm" in present:
        scales = {part: 1.0 for part in present} | {"lstm": memory_scale}
        kl[f"actor, lstm at {memory_scale:g}"] = kl_after_step(scales)
    sizes = {
        part: sum(p.numel() for name, p in parameters.items() if part_of(name) == part)
        for part in present
    }
    return {
        "run": str(run_dir),
        "algo": run.config.algo,
        "env": run.config.env,
        "lr": lr,
        "memory_lr_scale": run.config.memory_lr_scale,
        "steps": int(before.numel()),
        "parameters": sizes,
        "kl": kl,
    }


def write_markdown(rows: list[dict[str, Any]], path: Path) -> None:
    seen = dict.fromkeys(key for row in rows for key in row["kl"])
    columns = [key for key in [*PARTS, "all but lstm", "actor", *seen] if key in seen]
    columns = list(dict.fromkeys(columns))
    lines = [
        "# KL of one Adam-sized step, part by part",
        "",
        "Written by `python -m benchmarks.kl_sensitivity` (see its docstring for the method): "
        f"trained run folders, one rollout each, a step of {rows[0]['lr']:g} x sign(gradient) "
        "on one part of the actor at a time; mean approximate KL to the rollout's policy.",
        "",
        "| run | algo | trained at memory_lr_scale | "
        + " | ".join(columns)
        + " | lstm / all but lstm |",
        "|---|---|---|" + "---|" * len(columns) + "---|",
    ]
    for row in rows:
        kl = row["kl"]
        cells = [f"{kl[c]:.2e}" if c in kl else "-" for c in columns]
        ratio = f"{kl['lstm'] / kl['all but lstm']:.2g}x" if "lstm" in kl else "-"
        run = Path(row["run"])
        scale = f"{row['memory_lr_scale']:g}" if "lstm" in kl else "-"
        lines.append(
            f"| {run.parent.name}/{run.name} | {row['algo']} | {scale} | "
            + " | ".join(cells)
            + f" | {ratio} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, help=f"run folders (default: {DEFAULT_RUNS})")
    parser.add_argument("--lr", type=float, default=1e-4, help="the step's size (default 1e-4)")
    parser.add_argument("--memory-scale", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=123, help="seed of the rollout's envs")
    parser.add_argument("--out", type=Path, default=Path("docs/kl_sensitivity"))
    args = parser.parse_args(argv)
    th.set_num_threads(1)
    run_dirs = args.runs or sorted(
        path for path in Path().glob(DEFAULT_RUNS) if (path / "model.zip").exists()
    )
    if not run_dirs:
        parser.error(f"no run folders given and none match {DEFAULT_RUNS}")
    rows = []
    for run_dir in run_dirs:
        rows.append(sensitivity(run_dir, args.lr, args.memory_scale, args.seed))
        print(run_dir.name, {part: f"{kl:.2e}" for part, kl in rows[-1]["kl"].items()}, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    write_markdown(rows, args.out.with_suffix(".md"))
    print(f"wrote {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
