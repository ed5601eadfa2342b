"""The learning benchmark's harness: results written after every finished run, a run killed
mid-way resumed from its checkpoint, and tables rebuilt without the run folders (which stay
out of git)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from agents.config import make_config
from benchmarks import learning
from benchmarks.grid import (
    REPO,
    Recorded,
    cpu_model,
    execute,
    is_current,
    learning_settings,
    planned_config,
    train_or_resume,
)
from benchmarks.learning import aggregate, load_suite, plan, recorded
from benchmarks.sweep import ablation_table, ablations, load_sweep, seeds_run
from benchmarks.sweep import plan as sweep_plan
from tests.conftest import TINY_TRAIN

# a suite block of tiny runs; the harness sets progress itself
TINY_BLOCK = {key: value for key, value in TINY_TRAIN.items() if key != "progress"}


def _suite(tmp_path: Path, seeds=(0, 1), **changes) -> Path:
    path = tmp_path / "tiny.yaml"
    suite = {
        "name": "tiny",
        "seeds": list(seeds),
        "algos": ["recurrent_ppo"],
        "runs_root": str(tmp_path / "runs"),
        "envs": {"MemoryStates-v0": {**TINY_BLOCK, **changes}},
    }
    path.write_text(yaml.safe_dump(suite))
    return path


def test_results_are_written_after_every_run_and_outlive_the_run_folders(tmp_path):
    suite = load_suite(_suite(tmp_path))
    docs = tmp_path / "docs"
    runs_seen = []

    def after_each() -> None:
        aggregate(suite, docs)
        entry = json.loads((docs / "results.json").read_text())["tiny"]
        runs_seen.append(len(entry["envs"][0]["algos"]["recurrent_ppo"]["runs"]))

    execute(plan(suite), workers=1, after_each=after_each)
    assert runs_seen == [1, 2]  # a grid cut short after its first run keeps that run

    before = json.loads((docs / "results.json").read_text())["tiny"]["envs"]
    # runs reproduce on one processor model only: each record names the one it trained on
    trained_on = {run["cpu"] for run in before[0]["algos"]["recurrent_ppo"]["runs"]}
    assert trained_on == {cpu_model()} and cpu_model()
    shutil.copytree(tmp_path / "runs", tmp_path / "kept")
    shutil.rmtree(tmp_path / "runs")  # a fresh clone: results.json, no run folders
    aggregate(suite, docs)
    after = json.loads((docs / "results.json").read_text())["tiny"]["envs"]
    assert after == before
    markdown = (docs / "results.md").read_text()
    assert "MemoryStates-v0" in markdown
    # the return table's columns are the algorithms the suite plans
    assert "| episodes | recurrent_ppo | wall time per run (s): rppo |" in markdown
    # a suite without a success_target reports as measured: no target column
    assert "| ppo_framestack | ppo <= ceiling |" in markdown and "rppo >=" not in markdown

    # the preset changes: recorded runs no longer count, finished folders are set aside and
    # trained again
    shutil.move(tmp_path / "kept", tmp_path / "runs")
    changed = load_suite(_suite(tmp_path, seeds=[0], n_epochs=2))
    execute(plan(changed), workers=1)
    aggregate(changed, docs)
    runs = json.loads((docs / "results.json").read_text())["tiny"]["envs"][0]["algos"]
    assert [run["config"]["n_epochs"] for run in runs["recurrent_ppo"]["runs"]] == [2]
    assert len(list((tmp_path / "runs").glob("MemoryStates-v0__recurrent_ppo__0.stale-*"))) == 1


def test_benchmarks_aggregating_at_once_keep_each_others_results(tmp_path, monkeypatch):
    # Two suites run side by side finish a run each at the same moment: each reads
    # results.json, collects its runs from their folders (slow) and writes results.json back.
    def slow_collect(suite, recorded):
        time.sleep(0.3)
        return {"suite": suite.name, "envs": []}

    monkeypatch.setattr(learning, "collect", slow_collect)
    monkeypatch.setattr(learning, "plot", lambda result, path: None)
    monkeypatch.setattr(learning, "rewrite_results_md", lambda docs: docs / "results.md")
    tiny = load_suite(_suite(tmp_path))
    suites = [tiny, dataclasses.replace(tiny, name="other")]
    docs = tmp_path / "docs"
    threads = [threading.Thread(target=aggregate, args=(suite, docs)) for suite in suites]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(json.loads((docs / "results.json").read_text())) == ["other", "tiny"]


GRID_KILLED_MID_RUN = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from benchmarks.grid import stop_with_parent


def run(pid_file):
    open(pid_file, "w").write(str(os.getpid()))
    time.sleep(120)


if __name__ == "__main__":
    pool = ProcessPoolExecutor(
        1, get_context("spawn"), initializer=stop_with_parent, initargs=(os.getpid(), 0.1)
    )
    pool.submit(run, sys.argv[1])
    time.sleep(120)
"""


def test_a_grid_killed_mid_run_leaves_no_worker_training(tmp_path):
    script, pid_file = tmp_path / "grid.py", tmp_path / "worker.pid"
    script.write_text(GRID_KILLED_MID_RUN)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    grid = subprocess.Popen([sys.executable, str(script), str(pid_file)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not pid_file.is_file() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.1)
        worker = int(pid_file.read_text())
        grid.kill()  # as a session's end or a kill -9 of the command
        grid.wait()
        deadline = time.monotonic() + 20
        while _alive(worker):
            assert time.monotonic() < deadline, "the worker went on without its grid"
            time.sleep(0.1)
    finally:
        grid.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # reparented to init until reaped: a zombie is no longer running
    status = Path(f"/proc/{pid}/status")
    return not (status.is_file() and "zombie" in status.read_text())


def test_recorded_runs_are_not_trained_again_and_count_for_any_suite_of_their_settings(
    tmp_path, capsys
):
    """A fresh clone (results.json, no run folders) trains nothing again; a second suite that
    gives a run the settings another suite trained it with (an ablation adopted by a preset)
    takes that run, and results.md says where it was trained."""
    suite = load_suite(_suite(tmp_path, seeds=[0]))
    docs = tmp_path / "docs"
    execute(plan(suite), workers=1, after_each=lambda: aggregate(suite, docs))
    shutil.rmtree(tmp_path / "runs")
    capsys.readouterr()
    execute(plan(suite), workers=1, recorded=recorded(suite, docs))
    assert "1 of 1 runs already finished; 0 to go" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()

    adopted = _suite(tmp_path, seeds=[0, 1])
    data = yaml.safe_load(adopted.read_text())
    data.update(name="adopted", runs_root=str(tmp_path / "adopted_runs"))
    adopted.write_text(yaml.safe_dump(data))
    adopted = load_suite(adopted)
    (shared,) = [spec for spec in plan(adopted) if spec.seed == 0]
    trained_there = recorded(adopted, docs).find(shared)["run_dir"]
    assert trained_there.endswith("runs/MemoryStates-v0__recurrent_ppo__0")
    aggregate(adopted, docs)
    entry = json.loads((docs / "results.json").read_text())["adopted"]
    assert [run["seed"] for run in entry["envs"][0]["algos"]["recurrent_ppo"]["runs"]] == [0]
    assert "runs trained in" in (docs / "results.md").read_text()
    other_seed = [spec for spec in plan(adopted) if spec.seed == 1]
    assert recorded(adopted, docs).find(other_seed[0]) is None  # another seed is another run

    data.update(name="repeated", repeat=True)  # the same settings, trained again
    repeated = tmp_path / "repeated.yaml"
    repeated.write_text(yaml.safe_dump(data))
    repeated = load_suite(repeated)
    (again,) = [spec for spec in plan(repeated) if spec.seed == 0]
    assert recorded(repeated, docs).find(again) is None
    # its record says so, for tables that pool seeds across suites (late_returns)
    assert learning.collect(repeated)["repeat"] is True
    assert "repeat" not in learning.collect(adopted)


def _ppo_spec(tmp_path, **changes):
    """The one run of a one-seed ppo suite whose block has ``changes``."""
    (spec,) = plan(load_suite(_suite(tmp_path, seeds=[0], algos=["ppo"], **changes)))
    return spec


def test_a_key_the_algorithm_ignores_leaves_its_runs_current(tmp_path):
    run = {"config": learning_settings(planned_config(_ppo_spec(tmp_path)))}
    assert is_current(_ppo_spec(tmp_path), run)
    lstm_only = _ppo_spec(tmp_path, privileged_critic=True, forget_bias=1.0)
    assert is_current(lstm_only, run)
    assert not is_current(_ppo_spec(tmp_path, n_epochs=2), run)


def test_runs_recorded_before_a_key_existed_stay_current_with_its_old_value(tmp_path):
    """A key added later (desired_kl) is absent from older records, and a config.yaml written
    before normalize_advantage existed trained with SB3's True: both still describe a run of
    today's settings where those settings are the old ones, and only there."""
    normalized = _ppo_spec(tmp_path, normalize_advantage=True)
    config = learning_settings(planned_config(normalized))
    older = {key: value for key, value in config.items() if key != "desired_kl"}
    assert is_current(normalized, {"config": older})
    adaptive = _ppo_spec(tmp_path, normalize_advantage=True, desired_kl=0.01)
    assert not is_current(adaptive, {"config": older})
    oldest = {key: value for key, value in older.items() if key != "normalize_advantage"}
    assert is_current(normalized, {"config": oldest})
    assert not is_current(_ppo_spec(tmp_path, normalize_advantage=False), {"config": oldest})


def test_a_run_killed_mid_way_goes_on_from_its_checkpoint(tmp_path, capsys):
    config = make_config(
        env="MemoryStates-v0", overrides={**TINY_BLOCK, "checkpoint_freq": 128}, progress=False
    )
    run_dir = train_or_resume(config, tmp_path / "run")
    # what a worker killed after 128 steps leaves: its checkpoint, no model or metrics
    for name in ("model.zip", "metrics.json"):
        (run_dir / name).unlink()
    for checkpoint in (run_dir / "checkpoints").glob("*_256_steps.zip"):
        checkpoint.unlink()
    (kept,) = (run_dir / "checkpoints").glob("*_128_steps.zip")
    kept_time = kept.stat().st_mtime_ns

    assert train_or_resume(config, run_dir) == run_dir
    assert "starting" not in capsys.readouterr().out
    assert kept.stat().st_mtime_ns == kept_time  # resumed from it, not trained again
    assert (run_dir / "model.zip").is_file()
    assert json.loads((run_dir / "metrics.json").read_text())["n_timesteps"] == 256

    # a leftover folder of other settings (its preset changed since) is trained again
    changed = make_config(
        env="MemoryStates-v0",
        overrides={**TINY_BLOCK, "checkpoint_freq": 128, "n_epochs": 2},
        progress=False,
    )
    (run_dir / "metrics.json").unlink()
    train_or_resume(changed, run_dir)
    assert "its settings changed" in capsys.readouterr().out
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["n_epochs"] == 2


def test_sweep_plan_is_seed_major_and_filters_variants_seeds_and_tasks(tmp_path):
    path = _write(
        tmp_path,
        "name: s\nseeds: [0, 1]\nenvs: {A: {n_timesteps: 10}, B: {}}\n"
        "variants: {v: {}, w: {tasks: [B], gamma: 0.9}}\n",
    )
    sweep = load_sweep(path)
    names = [spec.run_dir.name for spec in sweep_plan(sweep)]
    assert names == ["A__v__0", "B__v__0", "B__w__0", "A__v__1", "B__v__1", "B__w__1"]
    chosen = sweep_plan(sweep, variants=["v", "w"], seeds=[1], tasks=["B"])
    assert [spec.run_dir.name for spec in chosen] == ["B__v__1", "B__w__1"]
    assert chosen[1].overrides["gamma"] == 0.9 and chosen[0].n_timesteps is None


def test_sweep_tables_hold_seeds_run_beyond_the_file(tmp_path):
    sweep = load_sweep(
        _write(tmp_path, "name: s\nseeds: [0, 1]\nenvs: {A: {}}\nvariants: {v: {}}\n")
    )
    sweep["runs_root"] = tmp_path / "runs"
    for name in ("A__v__0", "A__v__3", "A__v__4.claim", "A__v__5.stale-20261201-120000"):
        (sweep["runs_root"] / name).mkdir(parents=True)
    kept = {"run_dir": "runs/sweeps/s/A__v__7", "config": {"env": "MemoryStates-v0", "seed": 7}}
    recorded_only = Recorded({"rows": [{"envs": {"A": [kept]}}]})  # a folder gone, its json kept
    assert seeds_run(sweep, recorded_only) == [0, 1, 3, 7]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def _runs(success, mean_return=0.0, steps=1000, seeds=(0,)):
    return [
        {"success_rate": success, "mean_return": mean_return, "n_timesteps": steps, "seed": seed}
        for seed in seeds
    ]


def test_ablation_table_compares_one_budget_and_shows_returns_near_zero_success(tmp_path):
    base = {"A": _runs(0.4), "B": _runs(0.0, -7.0), "C": _runs(0.5), "D": _runs(0.5)}
    feature = {
        "A": _runs(0.9),
        "B": _runs(0.02, -2.5),
        "C": _runs(1.0, steps=5000),
        "D": _runs(0.6, steps=1008),  # longer rollouts: the budget rounded up further
    }
    rows = [{"variant": "base", "envs": base}, {"variant": "feature", "envs": feature}]
    sweep = {"variants": {"base": {}, "feature": {}}, "ablations": {"f": ["feature", "base"]}}
    result = {"sweep": "s", "ablations": ablations(sweep, rows, tmp_path)}
    header, _, line = ablation_table([result])
    assert header == "| feature | sweep: variant vs baseline | A | B | D |"  # C: other budget
    assert "**0.40→0.90**" in line  # success, moved by 0.1 or more
    assert "**ret -7.00→-2.50**" in line  # success below 0.1 on both sides: the return


def test_ablations_compare_the_seeds_both_sides_ran(tmp_path):
    rows = [
        {"variant": "base", "envs": {"A": _runs(0.4, seeds=(0, 1))}},
        {"variant": "feature", "envs": {"A": _runs(0.9, seeds=(0,)) + _runs(0.0, seeds=(1, 2))}},
    ]
    sweep = {"variants": {"base": {}, "feature": {}}, "ablations": {"f": ["feature", "base"]}}
    (found,) = ablations(sweep, rows, tmp_path)
    assert found["tasks"]["A"]["values"] == [0.4, 0.45]  # seed 2 of the feature left out


def test_final_info_reports_how_far_episodes_end_from_the_target(tmp_path):
    """Reacher-Cue's final fingertip distance: every episode counted, and within the reach of
    a two-link arm of 0.21 m from a target on a disc of 0.2 m."""
    import agents
    from benchmarks import final_info

    run_dir = agents.train(
        env="Reacher-Cue-v5", algo="ppo", n_timesteps=128, n_envs=2, n_steps=64,
        batch_size=64, eval_freq=0, final_eval_episodes=2, progress=False,
        run_dir=tmp_path / "reacher",
    )  # fmt: skip
    out = tmp_path / "distance"
    final_info.main(
        [str(run_dir), "--episodes", "6", "--thresholds", "0.02", "0.5", "--out", str(out)]
    )
    (row,) = json.loads(out.with_suffix(".json").read_text())["runs"].values()
    assert row["episodes"] == 6 and 0 < row["median"] < 0.41
    assert row["below"]["0.5"] == 1.0 and row["below"]["0.02"] <= row["below"]["0.5"]
    assert "| reacher |" in out.with_suffix(".md").read_text()


def test_kl_sensitivity_measures_each_part_of_the_actor(tmp_path):
    """A step of one part moves the policy less than a step of the whole actor, and shrinking
    the LSTM's step (memory_lr_scale) shrinks the whole step's KL; a memoryless run has no LSTM
    column."""
    import agents
    from benchmarks import kl_sensitivity

    settings = dict(
        env="Pendulum-P-v1", n_timesteps=512, n_envs=2, n_steps=128, batch_size=64,
        eval_freq=0, final_eval_episodes=1, progress=False, normalize=True,
    )  # fmt: skip
    recurrent = agents.train(algo="recurrent_ppo", run_dir=tmp_path / "rppo", **settings)
    memoryless = agents.train(algo="ppo", run_dir=tmp_path / "ppo", **settings)
    out = tmp_path / "kl"
    kl_sensitivity.main([str(recurrent), str(memoryless), "--lr", "1e-2", "--out", str(out)])
    lstm_row, ppo_row = json.loads(out.with_suffix(".json").read_text())
    kl = lstm_row["kl"]
    assert all(value >= 0 for value in kl.values())
    assert max(kl["lstm"], kl["all but lstm"]) < kl["actor"]
    assert kl["actor, lstm at 0.25"] < kl["actor"]
    assert "lstm" not in ppo_row["kl"] and ppo_row["kl"]["head"] > 0
    assert f"| {tmp_path.name}/rppo | recurrent_ppo | 1 |" in out.with_suffix(".md").read_text()


def test_every_shipped_suite_and_sweep_resolves_to_valid_configs():
    """A typo in a suite or sweep file (an unknown key, a bad value, an unregistered id)
    fails here, not hours into a grid when its run starts."""
    import envs  # noqa: F401  (registers the ids)
    from agents.environments import resolve_env

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    specs = []
    for path in sorted((root / "suites").glob("*.yaml")):
        suite = load_suite(path)
        specs += plan(suite)
        for entry in suite.entries:
            for env in [*entry.transfer, *([entry.reference] if entry.reference else [])]:
                resolve_env(env)
    for path in sorted((root / "sweeps").glob("*.yaml")):
        specs += sweep_plan(load_sweep(path))
    assert len(specs) > 100  # every file was read
    for spec in specs:
        resolve_env(spec.env)
        assert planned_config(spec)["algo"] == spec.algo


def test_late_returns_average_the_evaluations_of_the_last_part_of_training(tmp_path):
    from benchmarks import late_returns

    def run(seed, values, success=None):
        curve = {"timesteps": [250, 500, 750, 1000], "value": values, "metric": "mean_return"}
        # trained 1024 steps (a whole last rollout) for a budget of 1000
        return {
            "seed": seed,
            "n_timesteps": 1024,
            "config": {"n_timesteps": 1000},
            "mean_return": values[-1],
            "success_rate": success,
            "curve": curve,
        }

    results = {
        "robots": {
            "envs": [
                {
                    "env": "Walker",
                    "algos": {
                        "recurrent_ppo": {
                            "runs": [
                                run(1, [0.0, 10.0, 20.0, 40.0]),
                                run(0, [0.0, 0.0, 100.0, 0.0]),
                            ]
                        }
                    },
                },
                {
                    "env": "Maze",
                    "algos": {
                        "recurrent_ppo": {"runs": [run(0, [0.0, 0.5, 1.0, 1.0], success=1.0)]}
                    },
                },  # judged by success: left out
            ]
        }
    }
    (table,) = late_returns.rows(results, fraction=0.25)
    # the last quarter of a budget of 1000 starts at 750, whose evaluation counts
    assert [(r["seed"], r["late"], r["final"]) for r in table["runs"]] == [
        (0, 50.0, 0.0),
        (1, 30.0, 40.0),
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    out = tmp_path / "late"
    assert late_returns.main(["--results", str(path), "--out", str(out), "--fraction", "0.25"]) == 0
    assert "| robots | Walker | recurrent_ppo | 2 | 20 ± 28 | 40 ± 14 | 50 / 30 |" in (
        out.with_suffix(".md").read_text()
    )
    assert late_returns.main(["--results", str(path), "--fraction", "0"]) == 2


def test_late_returns_pool_the_seeds_of_one_setting_across_suites():
    from benchmarks import late_returns

    preset = make_config(env="MemoryStates-v0", n_timesteps=1000).to_dict()
    ablation = {**preset, "n_epochs": 2}

    def run(config, seed, final):
        curve = {"timesteps": [500, 1000], "value": [0.0, final], "metric": "mean_return"}
        config = {**config, "seed": seed}
        return {
            "seed": seed,
            "n_timesteps": 1000,
            "config": config,
            "mean_return": final,
            "success_rate": None,
            "curve": curve,
        }

    def suite(runs, repeat=False):
        algos = {"recurrent_ppo": {"runs": runs}}
        return {"repeat": repeat, "envs": [{"env": "MemoryStates-v0", "algos": algos}]}

    results = {
        "again": suite([run(preset, 0, 99.0)], repeat=True),  # seed 0 retrained
        "first": suite([run(preset, s, 10.0 * (s + 1)) for s in (0, 1, 2)]),
        "more": suite([run(preset, s, 10.0 * (s + 1)) for s in (3, 4)]),
        "other": suite([run(ablation, s, 5.0) for s in range(5)]),
        "short": suite([run({**preset, "n_epochs": 3}, s, 1.0) for s in range(3)]),
    }
    table = late_returns.pooled(results, fraction=0.5)
    assert [(row["suites"], [r["final"] for r in row["runs"]]) for row in table] == [
        (["first", "more"], [10.0, 20.0, 30.0, 40.0, 50.0]),  # the repeat's seed 0 left out
        (["other"], [5.0] * 5),
    ]  # three seeds of one setting ("short") are no more than its suite's row


def _suite_result(name: str, runs: dict[str, list[dict]], ablation: dict | None = None) -> dict:
    envs = [
        {"env": env, "algos": {"recurrent_ppo": {"runs": found}}} for env, found in runs.items()
    ]
    return {"suite": name, **({"ablation": ablation} if ablation else {}), "envs": envs}


def test_an_ablation_suite_joins_the_ablation_table_against_its_baseline_suite():
    from benchmarks.tables import suite_ablations

    results = {
        "base": _suite_result("base", {"A": _runs(None, 100.0), "B": _runs(None, 50.0)}),
        "tried": _suite_result(
            "tried",
            {"A": _runs(None, 300.0, seeds=(0,)), "B": _runs(None, 60.0, steps=5000)},
            ablation={"feature": "f", "baseline": "base"},
        ),
        "lone": _suite_result("lone", {"A": _runs(None, 1.0)}),  # declares no ablation
    }
    header, _, line = ablation_table(suite_ablations(results))
    assert header == "| feature | sweep: variant vs baseline | A |"  # B: another budget
    assert line == "| f | suite: tried vs base | **ret 100.0→300.0** |"


def test_a_malformed_ablation_in_a_suite_file_names_the_keys(tmp_path):
    path = _suite(tmp_path)
    suite = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**suite, "ablation": {"feature": "f"}}))
    with pytest.raises(ValueError, match=r"ablation must be a mapping with the keys"):
        load_suite(path)


def test_an_ablation_suite_starts_from_its_baselines_overrides(tmp_path):
    """Each env of an ablation trains with its baseline suite's overrides (and theirs, down the
    chain) beneath its own, so the suite names only the one thing it changes."""

    def write(name: str, envs: dict, baseline: str | None = None) -> Path:
        data = {"name": name, "seeds": [0], "algos": ["recurrent_ppo"], "envs": envs}
        if baseline:
            data["ablation"] = {"feature": "f", "baseline": baseline}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    write("base", {"A-v0": {"n_epochs": 2, "gamma": 0.9}, "B-v0": {"n_epochs": 3}})
    write("middle", {"A-v0": {"gamma": 0.5}}, baseline="base")
    top = load_suite(write("top", {"A-v0": {"ent_coef": 0.1}, "C-v0": {}}, baseline="middle"))
    overrides = {entry.env: entry.overrides for entry in top.entries}
    assert overrides == {"A-v0": {"n_epochs": 2, "gamma": 0.5, "ent_coef": 0.1}, "C-v0": {}}
    with pytest.raises(ValueError, match=r"ablation baseline 'gone' has no suite file"):
        load_suite(write("orphan", {"A-v0": {}}, baseline="gone"))


def test_the_throughput_bound_adds_the_lstm_kernels_time_to_ppo_mlps():
    import torch

    from benchmarks.throughput import Config, LstmKernels, with_kernels

    mlp = [{"steps_per_s": 1000.0, "train_fraction": 0.5}]
    kernels = [{"steps_per_s": 1000.0, "train_fraction": 1.0}]
    assert with_kernels(mlp, kernels) == [{"steps_per_s": 500.0, "train_fraction": 0.75}]
    config = Config("tiny", "CartPole-v1", iterations=1, n_envs=2, n_steps=8, batch_size=8)
    lstm = torch.nn.LSTM(3, 4)
    timed = LstmKernels(lstm, config, bptt_length=4).measure()
    assert timed["steps_per_s"] > 0 and 0 < timed["train_fraction"] < 1
    assert lstm.weight_hh_l0.grad is None  # timed on a copy: the policy's LSTM is untouched


def test_ppo_mlp_wide_heads_read_as_many_inputs_as_the_recurrent_heads():
    import torch

    from benchmarks.throughput import Config, build

    config = Config("tiny", "CartPole-v1", iterations=1, n_envs=2, n_steps=8, batch_size=8)
    wide, recurrent = (build(impl, config, 16, 8, seed=0) for impl in ("ppo-mlp-wide", "ours"))
    for model in (wide, recurrent):
        assert model.policy.mlp_extractor.policy_net[0].in_features == 16
        assert model.policy.mlp_extractor.value_net[0].in_features == 16
    observation = torch.ones(3, 4)
    features = wide.policy.extract_features(observation, wide.policy.features_extractor)
    assert torch.equal(features, torch.cat([observation, torch.zeros(3, 12)], dim=1))


def test_an_isolated_timer_measures_in_its_own_process_and_reports_its_errors():
    from benchmarks.isolation import Isolated
    from benchmarks.throughput import Config, timed_model

    config = Config("tiny", "CartPole-v1", iterations=1, n_envs=2, n_steps=8, batch_size=8)
    with Isolated(timed_model, "ppo-mlp", config, 8, None, 0) as timer:
        worker = timer._process
        assert worker.pid != os.getpid()
        first, second = timer.measure(), timer.measure(threads=2)
        assert first["steps_per_s"] > 0 and second["steps_per_s"] > 0
    assert not worker.is_alive()  # closed with the block
    with pytest.raises(RuntimeError, match="unknown implementation 'nope'"):
        Isolated(timed_model, "nope", config, 8, None, 0).measure()


def test_the_time_split_times_every_phase_and_leaves_torch_as_it_was():
    import torch

    from benchmarks.throughput import Config, build
    from benchmarks.time_split import PHASES, PhaseClock

    config = Config("tiny", "CartPole-P-v1", iterations=1, n_envs=2, n_steps=16, batch_size=16)
    backward, clip = torch.Tensor.backward, torch.nn.utils.clip_grad_norm_
    for impl in ("ppo-mlp", "ours-privileged"):
        split = PhaseClock(build(impl, config, 8, 8, seed=0), config).measure()
        assert all(split[phase] > 0 for phase in PHASES), split
        # the phases tile the two totals they are cut from
        assert sum(split[phase] for phase in PHASES) == pytest.approx(
            split["rollout"] + split["train"]
        )
    assert torch.Tensor.backward is backward and torch.nn.utils.clip_grad_norm_ is clip


def test_the_success_target_is_checked_only_where_a_suite_sets_one(tmp_path):
    from benchmarks.tables import checks

    def seeds(*rates):
        return {"success_rate": {"mean": 0}, "runs": [{"success_rate": r} for r in rates]}

    row = {
        "memoryless_ceiling": 0.5,
        "algos": {"recurrent_ppo": seeds(0.99, 0.9), "ppo": {**seeds(0.5), "episodes": 100}},
    }
    assert checks(row, 0.95) == ["no (worst seed 0.90)", "yes"]
    assert checks(row, 0.9) == ["yes", "yes"]
    assert checks(row, None) == ["yes"]  # reported as measured: only the ceiling's check
    assert load_suite(_suite(tmp_path)).success_target is None
    assert load_suite(REPO / "benchmarks/suites/memory.yaml").success_target == 0.95
    path = _suite(tmp_path)
    path.write_text(path.read_text() + "success_target: 95\n")
    with pytest.raises(ValueError, match="success_target must be a number in"):
        load_suite(path)


def test_seed_table_shows_each_seed_beside_the_mean(tmp_path, capsys):
    from benchmarks import seed_table

    def runs(*returns):
        return {"runs": [{"seed": s, "mean_return": r} for s, r in enumerate(returns)]}

    suite = {
        "suite": "robots",
        "envs": [
            {"env": "A-v0", "algos": {"recurrent_ppo": runs(10, 20, 33), "ppo": runs(5)}},
            {"env": "B-v0", "algos": {"ppo": runs(7, 9)}},
        ],
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"robots": suite}))
    assert seed_table.main(["robots", "B-v0", "A-v0", "--results", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| B-v0 | not run | 8 (7 / 9) | not run | 0-1 |"
    assert lines[3] == "| A-v0 | 21 (10 / 20 / 33) | 5 | not run | 0-2 |"
    assert seed_table.main(["robots", "C-v0", "--results", str(path)]) == 2
    assert seed_table.main(["other", "A-v0", "--results", str(path)]) == 2
    assert "no env 'C-v0'" in capsys.readouterr().err


def test_exploration_noise_reads_the_initial_policys_action_std(tmp_path):
    """Without gSDE the std is the policy's exp(log_std_init) exactly, recurrent or not; with
    gSDE it depends on the last hidden layer, and rises with log_std_init."""
    from benchmarks import exploration_noise

    small = "n_envs=2 n_steps=64 batch_size=64"
    rows = [
        f"recurrent_ppo {small} use_sde=false log_std_init=-0.5",
        f"ppo {small} use_sde=false log_std_init=0.3",
        f"recurrent_ppo {small} log_std_init=0.0",
        f"recurrent_ppo {small} log_std_init=1.0",
    ]
    out = tmp_path / "noise"
    args = ["--env", "Pendulum-P-v1", "--seeds", "0", "--out", str(out)]
    exploration_noise.main([*args, *(arg for row in rows for arg in ("--row", row))])
    stds = [row["std"][0] for row in json.loads(out.with_suffix(".json").read_text())["rows"]]
    assert stds[0] == pytest.approx(math.exp(-0.5), rel=1e-4)
    assert stds[1] == pytest.approx(math.exp(0.3), rel=1e-4)
    assert stds[2] < stds[3]
    assert "| recurrent_ppo | n_envs=2, n_steps=64, batch_size=64, log_std_init=1.0 |" in (
        out.with_suffix(".md").read_text()
    )


def test_critic_fit_reports_the_fit_and_what_the_clip_lets_through(tmp_path):
    """A clip far below the gradient's norm lets a sliver of each step through, one far
    above it all of it; the norm itself is the unclipped one either way."""
    from benchmarks import critic_fit

    small = "n_timesteps=512 n_envs=2 n_steps=64 batch_size=64 n_epochs=2 eval_freq=0"
    small += " final_eval_episodes=1"
    rows = [f"recurrent_ppo {small} max_grad_norm=1e-6", f"recurrent_ppo {small} max_grad_norm=1e6"]
    out = tmp_path / "fit"
    args = ["--env", "Pendulum-P-v1", "--seeds", "0", "--out", str(out)]
    critic_fit.main([*args, *(arg for row in rows for arg in ("--row", row))])
    report = json.loads(out.with_suffix(".json").read_text())
    tight, loose = (row["runs"][0] for row in report["rows"])
    assert all(0 < share < 1e-3 for share in tight["passed"])
    assert loose["passed"] == [1.0, 1.0]
    assert all(norm > 1e-3 for norm in tight["grad_norm"] + loose["grad_norm"])
    assert all(fit <= 1.0 for fit in tight["explained_variance"] + loose["explained_variance"])
    assert "| recurrent_ppo | n_timesteps=512," in out.with_suffix(".md").read_text()
