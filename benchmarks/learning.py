"""Learning benchmark: a grid of env x algo x seed from a suite file, then tables and plots.

Each cell of the grid is a normal run folder under the suite's ``runs_root``, named
``<env>__<algo>__<seed>``, trained by benchmarks/grid.py: in worker processes, resumable
across sessions, shared by parallel commands, and rerun when its preset changed. After every
finished run, all current runs of the suite are aggregated into ``docs/results.json`` (the
suite's entry), ``docs/results.md`` (all suites in results.json, and the sweeps, by
benchmarks/tables.py) and ``docs/learning_curves_<suite>.png`` (the periodic evaluations: mean
and min-max over seeds). Run folders stay out of git: a run whose folder is gone is taken as
results.json recorded it, so a fresh clone rebuilds the same tables and does not train it again.
A run is found by its settings: one another suite trained with the settings this suite gives
(an ablation whose change a preset adopted since) counts here too, shown as trained there.

    python -m benchmarks.learning benchmarks/suites/memory.yaml             # run + aggregate
    python -m benchmarks.learning benchmarks/suites/memory.yaml --only TMaze-v0 --seeds 0
    python -m benchmarks.learning benchmarks/suites/memory.yaml --algos recurrent_ppo
    python -m benchmarks.learning benchmarks/suites/memory.yaml --aggregate-only
    python -m benchmarks.learning benchmarks/suites/memory.yaml --dry-run   # list the grid

A suite file (see benchmarks/suites/): ``name``, ``seeds``, ``algos``, optional
``runs_root`` (default ``runs/benchmark/<name>``), ``notes`` (markdown shown under the
suite's table), ``success_target`` (a success rate every recurrent_ppo seed is to reach: the
table then checks it; suites of tasks without one, reported as measured, leave it out) and
``envs``, a mapping from env id to a block whose keys may be

- ``n_timesteps``: the budget; by default the env's preset budget (agents/presets.yaml);
- ``seeds``, ``algos``: this env's own grid, instead of the suite's;
- ``transfer``: ids to evaluate the trained agents on besides their own (same spaces),
  such as ``Counting-Long-v0`` for agents trained on ``Counting-v0``;
- ``reference``: the id of a full-observation env in the same suite, whose ppo return the
  recurrent agent is compared with (``recurrent_ppo / reference``);
- ``skip``: a reason; the env is listed as not run;
- any other key: a config override (``--set``) for this env's runs, e.g. ``eval_freq``.

A suite that changes one thing in another suite's runs says so with ``ablation: {feature:
TEXT, baseline: SUITE}``: its recurrent_ppo rows then join the ablation table of results.md,
against the baseline suite's on the same envs and seeds. Its runs start from the baseline's
(``SUITE.yaml`` beside it): an env's overrides there apply beneath its own, so the suite writes
only the one thing it changes. With ``repeat: true`` as well it changes nothing and trains its
runs again (other suites' runs of the same settings do not count as its own): how far a run
of the same settings and seed lands from the baseline's, on today's code and machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agents import atomic
from benchmarks.grid import (
    REPO,
    Recorded,
    RunSpec,
    execute,
    is_done,
    read_current,
    shown,
)
from benchmarks.tables import DOCS, plot, read_results, results_lock, rewrite_results_md

ENTRY_KEYS = {"n_timesteps", "seeds", "algos", "transfer", "reference", "skip"}
ABLATION_KEYS = {"feature", "baseline"}


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
    ablation: dict[str, str] | None = None  # {feature, baseline}: see the module's docstring
    repeat: bool = False  # only its own runs count: see the module's docstring
    success_target: float | None = None  # see the module's docstring


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
    ablation = data.get("ablation")
    if ablation is not None and (not isinstance(ablation, dict) or set(ablation) != ABLATION_KEYS):
        raise ValueError(
            f"{path}: ablation must be a mapping with the keys {sorted(ABLATION_KEYS)}, "
            f"got {ablation!r}"
        )
    if ablation is not None:
        _start_from_baseline(entries, path.parent / f"{ablation['baseline']}.yaml", path)
    repeat = data.get("repeat", False)
    if not isinstance(repeat, bool):
        raise ValueError(f"{path}: repeat must be true or false, got {repeat!r}")
    target = data.get("success_target")
    if target is not None and (
        isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target <= 1
    ):
        raise ValueError(f"{path}: success_target must be a number in (0, 1], got {target!r}")
    notes = str(data.get("notes", "")).strip()
    return Suite(name, path, runs_root, entries, notes, ablation, repeat, target)


def _start_from_baseline(entries: list[EnvEntry], baseline_path: Path, path: Path) -> None:
    """Puts the baseline suite's overrides of each env beneath the entry's own."""
    if not baseline_path.is_file():
        raise ValueError(
            f"{path}: its ablation baseline {baseline_path.stem!r} has no suite file "
            f"{baseline_path}; name a suite in {path.parent}"
        )
    baseline = {entry.env: entry.overrides for entry in load_suite(baseline_path).entries}
    for entry in entries:
        entry.overrides = {**baseline.get(entry.env, {}), **entry.overrides}


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


# ---------------------------------------------------------------------------- aggregation


def spread(values: list[float]) -> dict[str, Any] | None:
    """Mean and sample std (ddof=1) over seeds; None when there is nothing."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std, "n": len(values)}


def collect(suite: Suite, recorded: Recorded | None = None) -> dict[str, Any]:
    recorded = recorded or Recorded()
    envs = []
    for entry in suite.entries:
        row: dict[str, Any] = {"env": entry.env, "skip": entry.skip, "algos": {}}
        row["reference"] = entry.reference
        row["planned"] = list(entry.algos)
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
        "runs_root": str(shown(suite.runs_root)),
        "notes": suite.notes,
        "machine": machine(),
        "aggregated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        **({"ablation": suite.ablation} if suite.ablation else {}),
        **({"repeat": True} if suite.repeat else {}),  # its runs train others' again
        **({"success_target": suite.success_target} if suite.success_target else {}),
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


def recorded(suite: Suite, docs: Path = DOCS, results: dict[str, Any] | None = None) -> Recorded:
    """The runs docs/results.json (or ``results``, read from it) holds, this suite's own
    before another's of the same settings (a ``repeat`` suite's own only)."""
    results = read_results(docs) if results is None else results
    others = [] if suite.repeat else [e for name, e in results.items() if name != suite.name]
    return Recorded(*others, results.get(suite.name, {}))


def aggregate(suite: Suite, docs: Path = DOCS) -> None:
    """Put the suite's entry into docs/results.json, rebuild results.md and its plot."""
    with results_lock(docs):
        results = read_results(docs)
        result = collect(suite, recorded(suite, docs, results))
        results[suite.name] = result
        atomic.write_json(docs / "results.json", results, indent=1)
        rewrite_results_md(docs)
    curves = docs / f"learning_curves_{suite.name}.png"
    plot(result, curves)
    written = f" and {curves}" if curves.is_file() else ""
    print(f"wrote {docs / 'results.md'}, {docs / 'results.json'}{written}")


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
        found = recorded(suite, args.docs)
        for spec in specs:
            state = "finished" if is_done(spec.run_dir) or found.find(spec) else "to run"
            print(f"{spec.run_dir.name:50s} {spec.n_timesteps or 'preset'}  {state}")
        return 0
    if not args.aggregate_only:
        after_each = lambda: aggregate(suite, args.docs)  # noqa: E731
        execute(specs, args.workers, after_each, recorded(suite, args.docs))
    aggregate(suite, args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
