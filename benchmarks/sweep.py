"""Sweeps: which settings make recurrent PPO learn memory, across many tasks at once.

A sweep file (benchmarks/sweeps/*.yaml) names tasks, seeds and *variants*, each a set of
config overrides. Every task x variant x seed is one normal run folder under
``runs/sweeps/<name>/``, trained from the ``default`` block of agents/presets.yaml (not the
task's own preset) plus the sweep's ``base`` and the variant: the defaults are judged as a
user's own env would meet them. Runs are resumable and shared by parallel commands exactly as
in benchmarks/learning.py (benchmarks/grid.py).

    python -m benchmarks.sweep benchmarks/sweeps/defaults.yaml --workers 2
    python -m benchmarks.sweep benchmarks/sweeps/defaults.yaml --only-variants B C --seeds 0
    python -m benchmarks.sweep benchmarks/sweeps/defaults.yaml --only TMaze-v0
    python -m benchmarks.sweep benchmarks/sweeps/defaults.yaml --aggregate-only

Writes ``docs/sweeps/<name>.json`` (every run) and ``docs/sweeps/<name>.md``: per variant and
task the final success rate (mean over seeds, and the worst seed), how many tasks every seed
solved (success >= 0.95) and the mean over tasks.

A sweep file: ``name``, ``seeds``, ``algo`` (default recurrent_ppo), ``base`` (overrides for
every run), ``envs`` (id -> ``{n_timesteps: N}`` and other overrides), ``variants`` (name ->
overrides; a variant's ``tasks: [ids]`` limits it to those envs), optional ``notes`` and
``ablations`` (feature -> ``[variant, baseline]``: the variant adds the feature to the
baseline, a variant of this sweep or ``<sweep>/<variant>`` of another). docs/results.md shows
every sweep's ablations in one table: which feature helps on which task.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agents import atomic
from benchmarks.grid import REPO, Recorded, RunSpec, execute, read_current, shown
from benchmarks.learning import load_suite
from benchmarks.tables import DOCS, results_lock, rewrite_results_md


@functools.cache
def solved_at() -> float:
    """The success rate at which a sweep counts a task solved: the memory suite's target, the
    suite whose defaults the sweeps choose."""
    return load_suite(REPO / "benchmarks/suites/memory.yaml").success_target


def load_sweep(path: Path) -> dict[str, Any]:
    sweep = yaml.safe_load(path.read_text())
    sweep.setdefault("algo", "recurrent_ppo")
    sweep.setdefault("base", {})
    sweep.setdefault("notes", "")
    sweep["path"] = path
    sweep["runs_root"] = REPO / "runs" / "sweeps" / sweep["name"]
    return sweep


def run_dir(sweep: dict[str, Any], env: str, variant: str, seed: int) -> Path:
    safe_env = re.sub(r"[^A-Za-z0-9_.-]+", "-", env)
    return sweep["runs_root"] / f"{safe_env}__{variant}__{seed}"


def plan(
    sweep: dict[str, Any],
    variants: list[str] | None = None,
    seeds: list[int] | None = None,
    tasks: list[str] | None = None,
) -> list[RunSpec]:
    """Seed-major, then variant: a sweep cut short has every variant on its first seeds."""
    return [
        spec
        for seed in seeds or sweep["seeds"]
        for variant in sweep["variants"]
        if not variants or variant in variants
        for env, spec in variant_specs(sweep, variant, seed).items()
        if not tasks or env in tasks
    ]


def variant_specs(sweep: dict[str, Any], variant: str, seed: int) -> dict[str, RunSpec]:
    """The variant's run on each of its tasks, by env id."""
    overrides = dict(sweep["variants"][variant] or {})
    tasks = overrides.pop("tasks", None)
    specs = {}
    for env, block in sweep["envs"].items():
        if tasks and env not in tasks:
            continue
        block = dict(block or {})
        budget = block.pop("n_timesteps", None)
        specs[env] = RunSpec(
            env=env,
            algo=sweep["algo"],
            seed=seed,
            n_timesteps=budget,
            overrides={**sweep["base"], **block, **overrides},
            transfer=[],
            run_dir=run_dir(sweep, env, variant, seed),
            env_preset=False,
        )
    return specs


def collect(
    sweep: dict[str, Any], recorded: Recorded | None = None, docs: Path = DOCS
) -> dict[str, Any]:
    """Every finished run, from its folder or, where the folder is gone, from ``recorded``."""
    recorded = recorded or Recorded()
    rows = []
    for variant, overrides in sweep["variants"].items():
        cells: dict[str, list[dict[str, Any]]] = {}
        for seed in seeds_run(sweep, recorded):
            for env, spec in variant_specs(sweep, variant, seed).items():
                run = read_current(spec, recorded)
                if run is not None:
                    cells.setdefault(env, []).append(run)
        rows.append({"variant": variant, "overrides": overrides or {}, "envs": cells})
    return {
        "sweep": sweep["name"],
        "sweep_file": str(shown(sweep["path"])),
        "algo": sweep["algo"],
        "base": sweep["base"],
        "budgets": {env: (block or {}).get("n_timesteps") for env, block in sweep["envs"].items()},
        "notes": str(sweep["notes"]).strip(),
        "aggregated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": rows,
        "ablations": ablations(sweep, rows, docs),
    }


def seeds_run(sweep: dict[str, Any], recorded: Recorded) -> list[int]:
    """The sweep's seeds and any more that runs were made for (``--seeds 3 4``)."""
    names = [path.name for path in sweep["runs_root"].glob("*__*")] + [
        Path(run["run_dir"]).name for run in recorded.runs.values()
    ]
    extra = {int(found[1]) for name in names if (found := re.fullmatch(r".+__(\d+)", name))}
    return sorted(set(sweep["seeds"]) | extra)


def ablations(sweep: dict[str, Any], rows: list[dict[str, Any]], docs: Path) -> list[dict]:
    """Each feature's effect: the mean score of variant and baseline on each task both ran."""
    found = []
    for feature, (variant, baseline) in (sweep.get("ablations") or {}).items():
        with_it, without = _cells(rows, variant, docs), _cells(rows, baseline, docs)
        # runs of other budgets are compared only where the budget is the feature
        budget_is_feature = "n_timesteps" in (sweep["variants"].get(variant) or {})
        tasks = {
            env: compared(without[env], with_it[env])
            for env in with_it
            if env in without and (budget_is_feature or same_budget([*with_it[env], *without[env]]))
        }
        found.append({"feature": feature, "variant": variant, "baseline": baseline, "tasks": tasks})
    return found


def same_budget(runs: list[dict[str, Any]]) -> bool:
    """Whether ``runs`` trained for one budget. A run's budget is the requested one rounded up
    to whole rollouts, so a change of rollout size (n_steps, n_envs) moves it by a rollout:
    within 1% it is the same budget."""
    budgets = [run["n_timesteps"] for run in runs]
    return max(budgets) <= 1.01 * min(budgets)


def _cells(rows: list[dict[str, Any]], variant: str, docs: Path) -> dict[str, list[dict]]:
    if "/" in variant:  # another sweep's variant, as its results file recorded it
        name, variant = variant.split("/")
        path = docs / "sweeps" / f"{name}.json"
        rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    return next((row["envs"] for row in rows if row["variant"] == variant), {})


def compared(without: list[dict], with_it: list[dict]) -> dict[str, Any]:
    """Mean success without and with a feature; the mean returns where neither reaches 0.1
    (they still show progress, e.g. the timer's error)."""
    # on the seeds both ran: extra seeds of one side (--seeds) would tilt the comparison
    common = {run["seed"] for run in without} & {run["seed"] for run in with_it}
    without, with_it = (
        [run for run in runs if run["seed"] in common] for runs in (without, with_it)
    )
    success = [_mean(runs, "success_rate") for runs in (without, with_it)]
    if None in success or max(success) < 0.1:  # near zero: the return says more
        return {
            "metric": "return",
            "values": [_mean(runs, "mean_return") for runs in (without, with_it)],
        }
    return {"metric": "success", "values": success}


def _mean(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs]
    return None if None in values else float(np.mean(values))


def ablation_table(results: list[dict[str, Any]]) -> list[str]:
    """One table of every sweep's ablations: baseline -> with the feature, per task."""
    rows = [
        (result, ablation)
        for result in results
        for ablation in result.get("ablations", [])
        if ablation["tasks"]
    ]
    if not rows:
        return []
    mentions = Counter(env for _, ablation in rows for env in ablation["tasks"])
    envs = [env for env, _ in mentions.most_common()]
    lines = [
        "| feature | sweep: variant vs baseline | "
        + " | ".join(_short(env) for env in envs)
        + " |",
        "|---|---|" + "---|" * len(envs),
    ]
    for result, ablation in rows:
        cells = []
        for env in envs:
            compared = ablation["tasks"].get(env)
            cells.append("-" if compared is None else _change(compared))
        lines.append(
            f"| {ablation['feature']} | {result['sweep']}: {ablation['variant']} vs "
            f"{ablation['baseline']} | " + " | ".join(cells) + " |"
        )
    return lines


def _change(compared: dict[str, Any]) -> str:
    """``0.44→0.87`` (success), ``ret -7.3→-2.7`` (return); bold where success moved by 0.1 or
    more, or the return by 10% or more."""
    before, after = compared["values"]
    if compared["metric"] == "success":
        text, large = f"{before:.2f}→{after:.2f}", abs(after - before) >= 0.1
    else:
        text = f"ret {_fmt(before)}→{_fmt(after)}"
        large = abs(after - before) >= 0.1 * max(abs(before), abs(after), 1e-9)
    return f"**{text}**" if large else text


def _fmt(value: float) -> str:
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _short(env: str) -> str:
    return env.split(":")[-1].removesuffix("-v0").removesuffix("-v1")


def score(run: dict[str, Any]) -> float:
    """Success rate where the task reports one, else the mean return."""
    return run["success_rate"] if run["success_rate"] is not None else run["mean_return"]


def render(result: dict[str, Any]) -> str:
    lines = [
        f"# Sweep `{result['sweep']}`",
        "",
        f"Written by `python -m benchmarks.sweep {result['sweep_file']}` "
        f"(aggregated {result['aggregated']}); do not edit by hand.",
        "",
    ]
    return "\n".join(lines + table(result))


def table(result: dict[str, Any]) -> list[str]:
    """The sweep's table with what it measured and how; also shown in docs/results.md."""
    envs = list(result["budgets"])
    short = [_short(env) for env in envs]
    lines = [
        "Every run starts from the `default` block of agents/presets.yaml, not the task's own "
        f"preset, plus `{json.dumps(result['base'])}` and the variant's overrides; algo "
        f"{result['algo']}.",
        "",
    ]
    if result["notes"]:
        lines += [result["notes"], ""]
    lines += [
        "Final evaluation (100 fresh episodes, deterministic): success rate, mean over seeds "
        "and, in brackets, the worst seed (mean return where a task reports no success). "
        f"*solved*: tasks where every seed reached {solved_at()}; *mean*: over the tasks "
        "run (success rates only).",
        "",
        *_rows(result, envs, short, score, with_summary=True),
        "",
        "The same runs' mean return (it shows progress where success is still 0, e.g. the "
        "timer's error), mean over seeds:",
        "",
        *_rows(result, envs, short, lambda run: run["mean_return"], with_summary=False),
    ]
    budgets = ", ".join(
        f"{name} {result['budgets'][env]:,}" for name, env in zip(short, envs, strict=True)
    )
    return [*lines, "", f"Budgets (env steps): {budgets}.", ""]


def _rows(result, envs, short, value, with_summary: bool) -> list[str]:
    summary_header = " solved | mean |" if with_summary else ""
    lines = [
        "| variant | overrides | " + " | ".join(short) + " |" + summary_header,
        "|---|---|" + "---|" * len(envs) + ("---|---|" if with_summary else ""),
    ]
    for row in result["rows"]:
        cells, solved, means = [], 0, []
        for env in envs:
            runs = row["envs"].get(env)
            if not runs:
                cells.append("-")
                continue
            values = [value(run) for run in runs]
            success = runs[0]["success_rate"] is not None and with_summary
            digits = 2 if success else 1
            worst = f" ({min(values):.{digits}f})" if with_summary else ""
            cells.append(f"{np.mean(values):.{digits}f}{worst} ×{len(runs)}")
            if success:
                means.append(float(np.mean(values)))
                solved += min(values) >= solved_at()
        overrides = ", ".join(f"{k}={v}" for k, v in row["overrides"].items()) or "(base)"
        summary = ""
        if with_summary:
            summary = f" {solved} | {np.mean(means):.2f} |" if means else f" {solved} | - |"
        lines.append(f"| {row['variant']} | {overrides} | " + " | ".join(cells) + " |" + summary)
    return lines


def recorded(sweep: dict[str, Any], docs: Path = DOCS) -> Recorded:
    """The runs the sweep's results file holds (docs/sweeps/<name>.json)."""
    previous = docs / "sweeps" / f"{sweep['name']}.json"
    return Recorded(json.loads(previous.read_text())) if previous.is_file() else Recorded()


def aggregate(sweep: dict[str, Any], docs: Path = DOCS) -> None:
    folder = docs / "sweeps"
    with results_lock(docs):
        result = collect(sweep, recorded(sweep, docs), docs)
        folder.mkdir(parents=True, exist_ok=True)
        atomic.write_json(folder / f"{sweep['name']}.json", result, indent=1)
        atomic.write_text(folder / f"{sweep['name']}.md", render(result))
        results_md = rewrite_results_md(docs)
    print(f"wrote {folder / sweep['name']}.md and .json, and {results_md}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "sweep", type=Path, help="a sweep file, e.g. benchmarks/sweeps/defaults.yaml"
    )
    parser.add_argument("--workers", type=int, default=2, help="parallel training processes")
    parser.add_argument("--only-variants", nargs="+", metavar="NAME")
    parser.add_argument("--seeds", nargs="+", type=int)
    parser.add_argument("--only", nargs="+", metavar="ENV", help="run only these tasks")
    parser.add_argument("--aggregate-only", action="store_true")
    parser.add_argument("--docs", type=Path, default=DOCS)
    args = parser.parse_args(argv)
    sweep = load_sweep(args.sweep)
    if not args.aggregate_only:
        specs = plan(sweep, args.only_variants, args.seeds, args.only)
        after_each = lambda: aggregate(sweep, args.docs)  # noqa: E731
        execute(specs, args.workers, after_each, recorded(sweep, args.docs))
    aggregate(sweep, args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
