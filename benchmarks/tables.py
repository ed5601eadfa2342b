"""docs/results.md: the suites' tables (against the memoryless ceiling and the baselines),
transfer and reference columns, the ablation table of the sweeps and ablation suites, and the
learning-curve plots."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from agents import atomic
from benchmarks.grid import REPO, TRANSFER_EPISODES

DOCS = REPO / "docs"


ALGO_ORDER = ("recurrent_ppo", "ppo", "ppo_framestack")
ALGO_SHORT = {"recurrent_ppo": "rppo", "ppo": "ppo", "ppo_framestack": "fs"}


def planned(row: dict[str, Any]) -> list[str]:
    """The algorithms the suite plans on this row (all, for results written before rows
    recorded it)."""
    return row.get("planned", list(ALGO_ORDER))


def return_cell(row: dict[str, Any], algo: str) -> str:
    """A dash for an algorithm the suite never plans on this row; "not run" for one still to
    run."""
    if algo not in planned(row):
        return "-"
    return fmt(row["algos"].get(algo, {}).get("mean_return"), 2)


def fmt(stat: dict[str, Any] | None, digits: int) -> str:
    if stat is None:
        return "not run"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f} ({stat['n']})"


def binomial_limit(ceiling: float, episodes: int) -> float:
    """Ceiling + 4 binomial sigma of one run's success rate over ``episodes`` episodes."""
    return ceiling + 4 * math.sqrt(max(ceiling * (1 - ceiling), 0.25 / episodes) / episodes)


def checks(row: dict[str, Any], target: float | None) -> list[str]:
    """Did every seed of recurrent_ppo reach ``target`` (no cell if the suite sets none); did
    every seed of ppo stay at or below the memoryless ceiling?"""
    ceiling, algos = row.get("memoryless_ceiling"), row["algos"]
    recurrent, ppo = algos.get("recurrent_ppo"), algos.get("ppo")
    if ceiling is None:
        return [""] * (2 if target else 1)
    cells = []
    if target:
        reached = "not run"
        if recurrent and recurrent["success_rate"]:
            worst = min(r["success_rate"] for r in recurrent["runs"])
            reached = "yes" if worst >= target else f"no (worst seed {worst:.2f})"
        cells.append(reached)
    capped = "not run"
    if ppo and ppo["success_rate"]:
        best = max(r["success_rate"] for r in ppo["runs"])
        capped = "yes" if best <= binomial_limit(ceiling, ppo["episodes"]) else f"no ({best:.2f})"
    return [*cells, capped]


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
        target = result.get("success_target")
        reached = ""
        if target:
            reached = f"*rppo >= {target:g}*: every seed of recurrent_ppo reached it. "
        lines += [
            "Success rate of the final evaluation (fresh episodes, deterministic actions), "
            f"mean ± std over seeds (number of seeds). {reached}*ppo <= ceiling*: every seed of "
            "ppo stayed within 4 binomial sigma of the memoryless ceiling.",
            "",
            "| env | memoryless ceiling | budget (steps) | recurrent_ppo | ppo | ppo_framestack | "
            + (f"rppo >= {target:g} | " if target else "")
            + "ppo <= ceiling | wall time per run (s): rppo / ppo / fs |",
            "|---|---|---|---|---|---|" + ("---|" if target else "") + "---|---|",
        ]
        for row in success_rows:
            cells = [fmt(row["algos"].get(a, {}).get("success_rate"), 2) for a in ALGO_ORDER]
            lines.append(
                f"| {row['env']} | {row['memoryless_ceiling']:.3g} | {row['n_timesteps']:,} | "
                + " | ".join([*cells, *checks(row, target)])
                + f" | {wall_times(row)} |"
            )
        lines.append("")
    algos = [a for a in ALGO_ORDER if any(a in planned(row) for row in rows)]
    blank = " |" * len(algos)
    lines += [
        "Mean return of the final evaluation (deterministic actions), mean ± std over seeds "
        "(number of seeds).",
        "",
        "| env | budget (steps) | episodes | " + " | ".join(algos)
        + " | wall time per run (s): " + " / ".join(ALGO_SHORT[a] for a in algos) + " |",
        "|---|---|---|" + "---|" * len(algos) + "---|",
    ]  # fmt: skip
    for row in rows:
        if row["skip"]:
            lines.append(f"| {row['env']} | not run: {row['skip']} | |{blank} |")
            continue
        if not row["algos"]:
            lines.append(f"| {row['env']} | not run yet | |{blank} |")
            continue
        cells = [return_cell(row, a) for a in algos]
        episodes = next(iter(row["algos"].values()))["episodes"]
        lines.append(
            f"| {row['env']} | {row['n_timesteps']:,} | {episodes} | "
            + " | ".join(cells)
            + f" | {wall_times(row, algos)} |"
        )
    lines.append("")
    lines += render_shared(result) + render_transfer(rows) + render_reference(rows)
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


def wall_times(row: dict[str, Any], algos: tuple[str, ...] | list[str] = ALGO_ORDER) -> str:
    times = []
    for algo in algos:
        stat = row["algos"].get(algo, {}).get("wall_time_s")
        times.append(f"{stat['mean']:.0f}" if stat else "-")
    return " / ".join(times)


def render_shared(result: dict[str, Any]) -> list[str]:
    """Where another suite trained a cell's runs, with the settings this suite gives them."""
    own = result.get("runs_root")
    lines = []
    for row in result["envs"]:
        for algo, cell in row["algos"].items():
            roots = sorted({str(Path(run["run_dir"]).parent) for run in cell["runs"]} - {own})
            if own and roots:
                lines.append(
                    f"- {row['env']} {algo}: runs trained in `{'`, `'.join(roots)}`, with the "
                    "settings this suite gives them."
                )
    return lines + [""] if lines else []


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


@contextlib.contextmanager
def results_lock(docs: Path = DOCS) -> Iterator[None]:
    """Hold while reading and rewriting docs' shared results. Benchmarks run side by side (two
    suites, a suite and a sweep) and each aggregates after every finished run: without the lock
    one's read-modify-write of results.json could drop the entry another wrote meanwhile."""
    docs.mkdir(parents=True, exist_ok=True)
    with FileLock(docs / ".results.lock"):
        yield


def read_results(docs: Path = DOCS) -> dict[str, Any]:
    """docs/results.json: each suite's entry by name; empty before the first suite ran."""
    results_json = docs / "results.json"
    return json.loads(results_json.read_text()) if results_json.is_file() else {}


def rewrite_results_md(docs: Path = DOCS) -> Path:
    """docs/results.md anew from results.json (the suites) and docs/sweeps (the sweeps)."""
    atomic.write_text(docs / "results.md", render(read_results(docs), docs))
    return docs / "results.md"


def render(results: dict[str, Any], docs: Path = DOCS) -> str:
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
    lines += render_sweeps(docs, suite_ablations(results))
    return "\n".join(lines).rstrip() + "\n"


def suite_ablations(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The suites that declare an ``ablation``, shaped as a sweep's results for the ablation
    table: their recurrent_ppo runs against the baseline suite's, per env, on common seeds."""
    from benchmarks.sweep import compared, same_budget

    found = []
    for name, result in sorted(results.items()):
        ablation = result.get("ablation")
        baseline = results.get(ablation["baseline"]) if ablation else None
        if baseline is None:
            continue
        without = {row["env"]: _recurrent_runs(row) for row in baseline["envs"]}
        tasks = {}
        for row in result["envs"]:
            with_it, base = _recurrent_runs(row), without.get(row["env"], [])
            seeds_in_both = {run["seed"] for run in with_it} & {run["seed"] for run in base}
            if seeds_in_both and same_budget(with_it + base):  # as the sweeps
                tasks[row["env"]] = compared(base, with_it)
        entry = {"feature": ablation["feature"], "variant": name, "baseline": ablation["baseline"]}
        found.append({"sweep": "suite", "ablations": [{**entry, "tasks": tasks}]})
    return found


def _recurrent_runs(row: dict[str, Any]) -> list[dict[str, Any]]:
    return (row.get("algos") or {}).get("recurrent_ppo", {}).get("runs", [])


def render_sweeps(docs: Path = DOCS, extra_ablations: list[dict] | None = None) -> list[str]:
    """The sweeps of docs/sweeps (benchmarks/sweep.py): which setting helps on which task;
    ``extra_ablations`` (:func:`suite_ablations`) join their ablation table."""
    from benchmarks.sweep import ablation_table, table

    results = [json.loads(path.read_text()) for path in sorted((docs / "sweeps").glob("*.json"))]
    lines = []
    ablation_rows = ablation_table(results + (extra_ablations or []))
    if ablation_rows:
        lines += [
            "## Ablation: which feature helps on which task",
            "",
            "Each row adds one feature (a config key, agents/config.py) to a baseline of the same "
            "sweep and budget, or of the suite the ablation suite names (sweep column 'suite'): "
            "the final success rate without → with it (mean return where the "
            "task reports no success, e.g. the timer's error), mean over the seeds both ran "
            "(a row whose baseline says 'seed 0' compares one seed, and a change below 0.1 is "
            "within one seed's noise; bold: 0.1 or more). The "
            "sweeps' own sections below give every variant, seed and budget.",
            "",
            *ablation_rows,
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
    # one legend for the figure: an algorithm may be missing from the first panel
    legend = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    fig.tight_layout()
    if legend:
        fig.legend(legend.values(), legend.keys(), loc="lower right", fontsize=8)
    with atomic.replacing(path) as temporary:
        fig.savefig(temporary, dpi=80)
    plt.close(fig)
