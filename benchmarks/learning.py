"""Learning benchmark: a grid of env x algo x seed from a suite file, then tables and plots.

Each cell of the grid is a normal run folder (``agents.train``) under the suite's
``runs_root``, named ``<env>__<algo>__<seed>``. Runs go to ``--workers`` processes (one torch
thread each); a run whose folder holds ``benchmark.json`` is finished and skipped, so an
interrupted benchmark resumes where it stopped: an unfinished run goes on from its newest
checkpoint (one every 100k steps, ``train.py --resume``), and two commands may work on one
grid at once (each run is claimed by the process training it). After every finished run, all
finished runs of the suite are aggregated into ``docs/results.json`` (the suite's entry),
``docs/results.md`` (all suites in results.json) and ``docs/learning_curves_<suite>.png`` (the
periodic evaluations: mean and min-max over seeds). Run folders stay out of git: a run whose
folder is gone is taken as results.json recorded it, so a fresh clone rebuilds the same tables.
A run counts only while its settings are the ones its preset gives today: after a preset
changes, its recorded runs drop out of the tables and its finished folders are moved to
``<name>.stale-<time>`` and trained again.

    python -m benchmarks.learning benchmarks/suites/memory.yaml             # run + aggregate
    python -m benchmarks.learning benchmarks/suites/memory.yaml --only TMaze-v0 --seeds 0
    python -m benchmarks.learning benchmarks/suites/memory.yaml --algos recurrent_ppo
    python -m benchmarks.learning benchmarks/suites/memory.yaml --aggregate-only
    python -m benchmarks.learning benchmarks/suites/memory.yaml --dry-run   # list the grid

A suite file (see benchmarks/suites/): ``name``, ``seeds``, ``algos``, optional
``runs_root`` (default ``runs/benchmark/<name>``), ``notes`` (markdown shown under the
suite's table) and ``envs``, a mapping from env id to a block whose keys may be

- ``n_timesteps``: the budget; by default the env's preset budget (agents/presets.yaml);
- ``seeds``, ``algos``: this env's own grid, instead of the suite's;
- ``transfer``: ids to evaluate the trained agents on besides their own (same spaces),
  such as ``Counting-Long-v0`` for agents trained on ``Counting-v0``;
- ``reference``: the id of a full-observation env in the same suite, whose ppo return the
  recurrent agent is compared with (``recurrent_ppo / reference``);
- ``skip``: a reason; the env is listed as not run;
- any other key: a config override (``--set``) for this env's runs, e.g. ``eval_freq``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agents import atomic

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
DONE_FILE = "benchmark.json"  # written last: its presence marks a finished run
TRANSFER_EPISODES = 100
TRANSFER_SEED = 2_000_000  # transfer episodes differ from training and final-eval episodes
CHECKPOINT_EVERY = 100_000  # env steps; a run killed mid-way resumes from its newest one
ENTRY_KEYS = {"n_timesteps", "seeds", "algos", "transfer", "reference", "skip"}
TARGET_SUCCESS = 0.95  # issue 7: recurrent_ppo success on every default-difficulty task


@dataclass
class RunSpec:
    env: str
    algo: str
    seed: int
    n_timesteps: int | None  # None: the preset's budget
    overrides: dict[str, Any]
    transfer: list[str]
    run_dir: Path
    env_preset: bool = True  # False: the default block alone (benchmarks/sweep.py)


@dataclass
class EnvEntry:
    env: str
    seeds: list[int]
    algos: list[str]
    n_timesteps: int | None = None
    transfer: list[str] = field(default_factory=list)
    reference: str | None = None
    skip: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class Suite:
    name: str
    path: Path
    runs_root: Path
    entries: list[EnvEntry]
    notes: str = ""


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    data = yaml.safe_load(path.read_text())
    name = data["name"]
    entries = []
    for env, block in (data.get("envs") or {}).items():
        block = dict(block or {})
        overrides = {key: value for key, value in block.items() if key not in ENTRY_KEYS}
        entries.append(
            EnvEntry(
                env=env,
                seeds=list(block.get("seeds", data.get("seeds", [0]))),
                algos=list(block.get("algos", data.get("algos", ["recurrent_ppo"]))),
                n_timesteps=block.get("n_timesteps"),
                transfer=list(block.get("transfer", [])),
                reference=block.get("reference"),
                skip=block.get("skip"),
                overrides=overrides,
            )
        )
    runs_root = Path(data.get("runs_root", f"runs/benchmark/{name}"))
    if not runs_root.is_absolute():
        runs_root = REPO / runs_root
    return Suite(name, path, runs_root, entries, str(data.get("notes", "")).strip())


def plan(
    suite: Suite,
    only: list[str] | None = None,
    seeds: list[int] | None = None,
    algos: list[str] | None = None,
):
    """The grid, seed-major, so that a benchmark cut short has every env at its first seeds."""
    specs = []
    for seed in sorted({s for entry in suite.entries for s in entry.seeds}):
        for entry in suite.entries:
            if entry.skip or seed not in entry.seeds or (only and entry.env not in only):
                continue
            if seeds is not None and seed not in seeds:
                continue
            specs += [
                spec_for(suite, entry, algo, seed)
                for algo in entry.algos
                if algos is None or algo in algos
            ]
    return specs


def spec_for(suite: Suite, entry: EnvEntry, algo: str, seed: int) -> RunSpec:
    return RunSpec(
        entry.env,
        algo,
        seed,
        entry.n_timesteps,
        entry.overrides,
        entry.transfer,
        suite.runs_root / f"{entry.env}__{algo}__{seed}",
    )


def is_done(run_dir: Path) -> bool:
    return (run_dir / DONE_FILE).is_file()


# config keys that change how a run is watched or saved, not what it learns
NOT_LEARNING = {"progress", "checkpoint_freq", "device", "torch_threads", "vec_env"}


def planned_config(spec: RunSpec) -> dict[str, Any]:
    """The resolved config the spec trains with today (presets as they are now)."""
    from agents.config import make_config

    budget = {} if spec.n_timesteps is None else {"n_timesteps": int(spec.n_timesteps)}
    config = make_config(
        env=spec.env,
        overrides={**budget, **spec.overrides},  # a sweep variant may set its own budget,
        env_preset=spec.env_preset,
        algo=spec.algo,
        seed=spec.seed,
        progress=False,
        torch_threads=1,
        checkpoint_freq=CHECKPOINT_EVERY,
    )
    return config.to_dict()


def learning_settings(config: dict[str, Any]) -> dict[str, Any]:
    """What decides a run's result, in the form config.yaml stores it; keys added to the
    config after a run was made take their defaults, as they did then."""
    from agents.config import from_dict

    stored = yaml.safe_load(yaml.safe_dump(from_dict(config).to_dict(), sort_keys=False))
    return {key: value for key, value in stored.items() if key not in NOT_LEARNING}


def is_current(spec: RunSpec, run: dict[str, Any] | None) -> bool:
    """A finished run counts only if it trained with the settings the spec gives today: a
    preset changed since makes it stale."""
    return run is not None and run.get("config") == learning_settings(planned_config(spec))


def set_aside_if_stale(spec: RunSpec) -> None:
    """Move a finished run of outdated settings to ``<name>.stale-<time>`` so it is rerun."""
    if is_done(spec.run_dir) and not is_current(spec, read_run(spec.run_dir)):
        stale = spec.run_dir.with_name(
            f"{spec.run_dir.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        spec.run_dir.rename(stale)
        print(f"{spec.run_dir.name}: its preset changed since it ran; moved to {stale.name}")


def run_one(spec: RunSpec) -> dict[str, Any]:
    """Train one cell (in a worker process), evaluate its transfers, mark it finished.

    A claim file beside the run folder lets two benchmark commands share a grid: a run that
    another live process has claimed is skipped, a claim whose process is gone is taken over.
    """
    claim = spec.run_dir.with_name(spec.run_dir.name + ".claim")
    if not take_claim(claim):
        return {"run_dir": str(spec.run_dir), "skipped": "running in another process"}
    try:
        return train_and_mark(spec)
    finally:
        claim.unlink(missing_ok=True)


def take_claim(claim: Path) -> bool:
    claim.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            os.kill(int(claim.read_text() or 0), 0)
            return False  # its process is alive
        except (ProcessLookupError, ValueError, FileNotFoundError):
            claim.write_text(str(os.getpid()))
            return True
    with os.fdopen(descriptor, "w") as file:
        file.write(str(os.getpid()))
    return True


def train_or_resume(config: Any, run_dir: Path) -> Path:
    """Train into ``run_dir``; a folder left by a killed worker (a session's end outlives no
    1M-step run) goes on from its newest checkpoint, one that saved nothing starts again."""
    import agents

    if run_dir.exists():
        if (run_dir / "metrics.json").is_file():
            return run_dir  # trained and evaluated; what is missing comes after training
        try:
            return agents.resume(run_dir, progress=False)
        except agents.UserError as error:
            print(f"starting {run_dir.name} again: {error}", flush=True)
            shutil.rmtree(run_dir)
    return agents.train(config, run_dir=run_dir)


def train_and_mark(spec: RunSpec) -> dict[str, Any]:
    import torch

    import agents
    from agents.config import from_dict
    from agents.runs import load

    torch.set_num_threads(1)
    config = from_dict(planned_config(spec)).validate()
    start = time.perf_counter()
    run_dir = train_or_resume(config, spec.run_dir)
    wall = time.perf_counter() - start
    transfer = {}
    for env in spec.transfer:
        run = load(run_dir, env=env)
        transfer[env] = agents.evaluate(
            run, n_episodes=TRANSFER_EPISODES, seed=spec.seed + TRANSFER_SEED, n_envs=8
        )
    record = {"wall_time_s": wall, "transfer": transfer}
    atomic.write_json(run_dir / DONE_FILE, record)
    return {"run_dir": str(run_dir), **record}


def execute(
    specs: list[RunSpec], workers: int, after_each: Callable[[], None] | None = None
) -> None:
    """Train every spec not yet finished; ``after_each`` runs after each finished run (the
    results files are rewritten then, so that a grid cut short loses nothing)."""
    for spec in specs:
        set_aside_if_stale(spec)
    todo = [spec for spec in specs if not is_done(spec.run_dir)]
    print(f"{len(specs) - len(todo)} of {len(specs)} runs already finished; {len(todo)} to go")
    if not todo:
        return
    context = get_context("spawn")  # fresh interpreters: no torch state shared through fork
    with ProcessPoolExecutor(workers, mp_context=context, max_tasks_per_child=1) as pool:
        futures = {pool.submit(run_one, spec): spec for spec in todo}
        for future in as_completed(futures):
            spec = futures[future]
            try:
                record = future.result()
            except Exception as error:  # one failed run must not stop the grid
                print(f"FAILED {spec.run_dir.name}: {type(error).__name__}: {error}")
                continue
            if "skipped" in record:
                print(f"skipped {spec.run_dir.name}: {record['skipped']}", flush=True)
                continue
            metrics = json.loads((spec.run_dir / "metrics.json").read_text())
            print(
                f"done {spec.run_dir.name}: success {metrics['success_rate']} "
                f"return {metrics['mean_return']:.3f} in {record['wall_time_s']:.0f} s",
                flush=True,
            )
            if after_each is not None:
                after_each()


# ---------------------------------------------------------------------------- aggregation


def read_run(run_dir: Path) -> dict[str, Any] | None:
    if not is_done(run_dir):
        return None
    metrics = json.loads((run_dir / "metrics.json").read_text())
    record = json.loads((run_dir / DONE_FILE).read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    curve = None
    if (run_dir / "evaluations.npz").is_file():
        data = np.load(run_dir / "evaluations.npz")
        successes = data["successes"] if "successes" in data.files else np.empty(0)
        values = successes if successes.size else data["results"]
        curve = {
            "timesteps": data["timesteps"].tolist(),
            "value": values.mean(axis=1).tolist(),
            "metric": "success_rate" if successes.size else "mean_return",
        }
    return {
        "run_dir": str(shown(run_dir)),
        "seed": config["seed"],
        "n_timesteps": metrics.get("n_timesteps", config["n_timesteps"]),
        "success_rate": metrics["success_rate"],
        "mean_return": metrics["mean_return"],
        "episodes": metrics["episodes"],
        "memoryless_ceiling": metrics["memoryless_ceiling"],
        "wall_time_s": record["wall_time_s"],
        "transfer": {
            env: {"success_rate": m["success_rate"], "mean_return": m["mean_return"]}
            for env, m in record["transfer"].items()
        },
        "curve": curve,
        "config": learning_settings(config),
    }


def shown(path: Path) -> Path:
    """A path relative to the repository when it lies inside it."""
    path = path.resolve()
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def spread(values: list[float]) -> dict[str, Any] | None:
    """Mean and sample std (ddof=1) over seeds; None when there is nothing."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std, "n": len(values)}


def recorded_runs(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The runs a results file recorded, by run folder: what a clone without the run folders
    (they stay out of git) rebuilds its tables from."""
    rows = results.get("envs") or results.get("rows") or []
    cells = [cell for row in rows for cell in (row.get("algos") or row.get("envs") or {}).values()]
    return {
        run["run_dir"]: run
        for cell in cells
        for run in (cell.get("runs", []) if isinstance(cell, dict) else cell)
    }


def read_current(spec: RunSpec, recorded: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The spec's finished run from its folder, or as the results file recorded it when the
    folder is gone; None if neither trained with today's settings."""
    for run in (read_run(spec.run_dir), recorded.get(str(shown(spec.run_dir)))):
        if is_current(spec, run):
            return run
    return None


def collect(suite: Suite, recorded: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    recorded = recorded or {}
    envs = []
    for entry in suite.entries:
        row: dict[str, Any] = {"env": entry.env, "skip": entry.skip, "algos": {}}
        row["reference"] = entry.reference
        for algo in entry.algos:
            specs = [spec_for(suite, entry, algo, seed) for seed in entry.seeds]
            found = [r for r in (read_current(spec, recorded) for spec in specs) if r is not None]
            if not found:
                continue
            row["memoryless_ceiling"] = found[0]["memoryless_ceiling"]
            row["n_timesteps"] = found[0]["n_timesteps"]
            row["algos"][algo] = {
                "success_rate": spread([r["success_rate"] for r in found]),
                "mean_return": spread([r["mean_return"] for r in found]),
                "wall_time_s": spread([r["wall_time_s"] for r in found]),
                "episodes": found[0]["episodes"],
                "transfer": {
                    env: {
                        "success_rate": spread([r["transfer"][env]["success_rate"] for r in found]),
                        "mean_return": spread([r["transfer"][env]["mean_return"] for r in found]),
                    }
                    for env in entry.transfer
                },
                "runs": found,
            }
        envs.append(row)
    return {
        "suite": suite.name,
        "suite_file": str(shown(suite.path)),
        "command": f"python -m benchmarks.learning {shown(suite.path)}",
        "notes": suite.notes,
        "machine": machine(),
        "aggregated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "envs": envs,
    }


def machine() -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads_per_run": 1,
    }


# ------------------------------------------------------------------------------ rendering

ALGO_ORDER = ("recurrent_ppo", "ppo", "ppo_framestack")


def fmt(stat: dict[str, Any] | None, digits: int) -> str:
    if stat is None:
        return "not run"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f} ({stat['n']})"


def binomial_limit(ceiling: float, episodes: int) -> float:
    """Ceiling + 4 binomial sigma of one run's success rate over ``episodes`` episodes."""
    return ceiling + 4 * math.sqrt(max(ceiling * (1 - ceiling), 0.25 / episodes) / episodes)


def checks(row: dict[str, Any]) -> tuple[str, str]:
    """Did recurrent_ppo reach the target on every seed; is ppo at or below the ceiling?"""
    ceiling, algos = row.get("memoryless_ceiling"), row["algos"]
    recurrent, ppo = algos.get("recurrent_ppo"), algos.get("ppo")
    if ceiling is None:
        return "", ""
    reached = "not run"
    if recurrent and recurrent["success_rate"]:
        worst = min(r["success_rate"] for r in recurrent["runs"])
        reached = "yes" if worst >= TARGET_SUCCESS else f"no (worst seed {worst:.2f})"
    capped = "not run"
    if ppo and ppo["success_rate"]:
        best = max(r["success_rate"] for r in ppo["runs"])
        capped = "yes" if best <= binomial_limit(ceiling, ppo["episodes"]) else f"no ({best:.2f})"
    return reached, capped


def render_suite(result: dict[str, Any]) -> list[str]:
    rows = [row for row in result["envs"]]
    lines = [
        f"## Suite `{result['suite']}`",
        "",
        f"Command: `{result['command']}` (aggregated {result['aggregated']}; "
        f"{result['machine']['cpu_count']} CPU cores, one torch thread a run, "
        f"torch {result['machine']['torch']}).",
        "",
    ]
    if result["notes"]:
        lines += [result["notes"], ""]
    success_rows = [r for r in rows if any(a["success_rate"] for a in r["algos"].values())]
    if success_rows:
        lines += [
            "Success rate of the final evaluation (fresh episodes, deterministic actions), "
            "mean ± std over seeds (number of seeds). *rppo >= 0.95*: every seed of "
            "recurrent_ppo reached 0.95. *ppo <= ceiling*: every seed of ppo stayed within "
            "4 binomial sigma of the memoryless ceiling.",
            "",
            "| env | memoryless ceiling | budget (steps) | recurrent_ppo | ppo | ppo_framestack "
            "| rppo >= 0.95 | ppo <= ceiling | wall time per run (s): rppo / ppo / fs |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in success_rows:
            cells = [fmt(row["algos"].get(a, {}).get("success_rate"), 2) for a in ALGO_ORDER]
            lines.append(
                f"| {row['env']} | {row['memoryless_ceiling']:.3g} | {row['n_timesteps']:,} | "
                + " | ".join(cells)
                + " | "
                + " | ".join(checks(row))
                + f" | {wall_times(row)} |"
            )
        lines.append("")
    lines += [
        "Mean return of the final evaluation (deterministic actions), mean ± std over seeds "
        "(number of seeds).",
        "",
        "| env | budget (steps) | episodes | recurrent_ppo | ppo | ppo_framestack "
        "| wall time per run (s): rppo / ppo / fs |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["skip"]:
            lines.append(f"| {row['env']} | not run: {row['skip']} | | | | | |")
            continue
        if not row["algos"]:
            lines.append(f"| {row['env']} | not run yet | | | | | |")
            continue
        cells = [fmt(row["algos"].get(a, {}).get("mean_return"), 2) for a in ALGO_ORDER]
        episodes = next(iter(row["algos"].values()))["episodes"]
        lines.append(
            f"| {row['env']} | {row['n_timesteps']:,} | {episodes} | "
            + " | ".join(cells)
            + f" | {wall_times(row)} |"
        )
    lines.append("")
    lines += render_transfer(rows) + render_reference(rows)
    if not any(row["algos"] for row in rows):
        return lines
    lines += [
        f"Learning curves (periodic evaluations during training; line: mean over seeds, band: "
        f"min to max): [learning_curves_{result['suite']}.png]"
        f"(learning_curves_{result['suite']}.png)",
        "",
        f"![learning curves, suite {result['suite']}](learning_curves_{result['suite']}.png)",
        "",
    ]
    return lines


def wall_times(row: dict[str, Any]) -> str:
    times = []
    for algo in ALGO_ORDER:
        stat = row["algos"].get(algo, {}).get("wall_time_s")
        times.append(f"{stat['mean']:.0f}" if stat else "-")
    return " / ".join(times)


def render_transfer(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        for algo in ALGO_ORDER:
            stats = row["algos"].get(algo, {}).get("transfer", {})
            for env, stat in stats.items():
                if not lines:
                    lines = [
                        "Generalisation: agents trained on one env, evaluated on another "
                        f"({TRANSFER_EPISODES} episodes), success rate mean ± std over seeds.",
                        "",
                        "| trained on | evaluated on | algo | success rate | mean return |",
                        "|---|---|---|---|---|",
                    ]
                lines.append(
                    f"| {row['env']} | {env} | {algo} | {fmt(stat['success_rate'], 2)} | "
                    f"{fmt(stat['mean_return'], 2)} |"
                )
    return lines + [""] if lines else []


def render_reference(rows: list[dict[str, Any]]) -> list[str]:
    by_env = {row["env"]: row for row in rows}
    lines = []
    for row in rows:
        reference = by_env.get(row["reference"]) if row["reference"] else None
        if reference is None:
            continue
        full = reference["algos"].get("ppo", {}).get("mean_return")
        recurrent = row["algos"].get("recurrent_ppo", {}).get("mean_return")
        if not lines:
            lines = [
                "Recurrent PPO against PPO with full observations at the same budget "
                "(ratio of mean returns; the issue's target is >= 0.80).",
                "",
                "| env | full-observation env | ppo on it | recurrent_ppo | ratio |",
                "|---|---|---|---|---|",
            ]
        ratio = f"{recurrent['mean'] / full['mean']:.2f}" if full and recurrent else "not run"
        lines.append(
            f"| {row['env']} | {row['reference']} | {fmt(full, 1)} | {fmt(recurrent, 1)} "
            f"| {ratio} |"
        )
    return lines + [""] if lines else []


def render(results: dict[str, Any]) -> str:
    lines = [
        "# Learning results",
        "",
        "Generated by `benchmarks/learning.py` from the run folders of each suite; do not edit "
        "by hand (rerun the command of a suite: finished runs are skipped, then the tables "
        "and plots are rebuilt). The numbers for every run, with its run folder, are in "
        "[results.json](results.json). Budgets are the `n_timesteps` of "
        "[agents/presets.yaml](../agents/presets.yaml) unless a suite says otherwise, so "
        "`python train.py --env ID --algo ALGO --seed S` reproduces a run.",
        "",
    ]
    for name in sorted(results):
        lines += render_suite(results[name])
    lines += render_sweeps()
    return "\n".join(lines).rstrip() + "\n"


def render_sweeps(docs: Path = DOCS) -> list[str]:
    """The sweeps of docs/sweeps (benchmarks/sweep.py): which setting helps on which task."""
    from benchmarks.sweep import ablation_table, table

    results = [json.loads(path.read_text()) for path in sorted((docs / "sweeps").glob("*.json"))]
    lines = []
    if ablation_table(results):
        lines += [
            "## Ablation: which feature helps on which task",
            "",
            "Each row adds one feature (a config key, agents/config.py) to a baseline of the same "
            "sweep and budget: the final success rate without → with it (mean return where the "
            "task reports no success, e.g. the timer's error), mean over the seeds run (so far "
            "one: a change below 0.1 is within one seed's noise; bold: 0.1 or more). The "
            "sweeps' own sections below give every variant, seed and budget.",
            "",
            *ablation_table(results),
            "",
        ]
    for result in results:
        path = docs / "sweeps" / f"{result['sweep']}.json"
        lines += [
            f"## Sweep `{result['sweep']}`: what helps on which task",
            "",
            f"Command: `python -m benchmarks.sweep {result['sweep_file']}` (aggregated "
            f"{result['aggregated']}); also in [sweeps/{path.stem}.md](sweeps/{path.stem}.md).",
            "",
            *table(result),
        ]
    return lines


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in result["envs"] if row["algos"]]
    if not rows:
        return
    cols = min(4, len(rows))
    nrows = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3 * nrows), squeeze=False)
    colors = {"recurrent_ppo": "tab:blue", "ppo": "tab:red", "ppo_framestack": "tab:green"}
    for ax, row in zip(axes.flat, rows, strict=False):
        metric = "mean_return"
        for algo, stats in row["algos"].items():
            curves = [run["curve"] for run in stats["runs"] if run["curve"]]
            if not curves:
                continue
            metric = curves[0]["metric"]
            length = min(len(c["value"]) for c in curves)
            steps = np.array(curves[0]["timesteps"][:length])
            values = np.array([c["value"][:length] for c in curves])
            ax.plot(steps, values.mean(0), color=colors.get(algo), label=algo)
            ax.fill_between(steps, values.min(0), values.max(0), color=colors.get(algo), alpha=0.2)
        if metric == "success_rate" and row.get("memoryless_ceiling") is not None:
            ax.axhline(row["memoryless_ceiling"], color="k", ls="--", lw=1, label="ceiling")
        ax.set_title(row["env"], fontsize=10)
        ax.set_xlabel("env steps")
        ax.set_ylabel(metric.replace("_", " "))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(rows) :]:
        ax.axis("off")
    if axes.flat[0].get_legend_handles_labels()[0]:
        axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic.replacing(path) as temporary:
        fig.savefig(temporary, dpi=80)
    plt.close(fig)


def aggregate(suite: Suite, docs: Path = DOCS) -> None:
    """Put the suite's entry into docs/results.json, rebuild results.md and its plot."""
    results_json = docs / "results.json"
    results = json.loads(results_json.read_text()) if results_json.is_file() else {}
    result = collect(suite, recorded_runs(results.get(suite.name, {})))
    results[suite.name] = result
    docs.mkdir(parents=True, exist_ok=True)
    atomic.write_json(results_json, results, indent=1)
    atomic.write_text(docs / "results.md", render(results))
    curves = docs / f"learning_curves_{suite.name}.png"
    plot(result, curves)
    written = f" and {curves}" if curves.is_file() else ""
    print(f"wrote {docs / 'results.md'}, {results_json}{written}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", help="a suite file, e.g. benchmarks/suites/memory.yaml")
    parser.add_argument("--workers", type=int, default=2, help="parallel training processes")
    parser.add_argument("--only", nargs="+", metavar="ENV", help="run only these env ids")
    parser.add_argument("--seeds", nargs="+", type=int, help="run only these seeds")
    parser.add_argument("--algos", nargs="+", metavar="ALGO", help="run only these algos")
    parser.add_argument("--aggregate-only", action="store_true", help="rebuild docs only")
    parser.add_argument("--dry-run", action="store_true", help="list the grid and stop")
    parser.add_argument("--docs", type=Path, default=DOCS, help="where results go (docs/)")
    args = parser.parse_args(argv)
    suite = load_suite(args.suite)
    specs = plan(suite, args.only, args.seeds, args.algos)
    if args.dry_run:
        for spec in specs:
            state = "finished" if is_done(spec.run_dir) else "to run"
            print(f"{spec.run_dir.name:50s} {spec.n_timesteps or 'preset'}  {state}")
        return 0
    if not args.aggregate_only:
        execute(specs, args.workers, after_each=lambda: aggregate(suite, args.docs))
    aggregate(suite, args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
