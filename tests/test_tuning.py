"""Hyperparameter search (train.py --optimize): trials as run folders, pruning, results a user
can act on, and workers sharing one study (a SQLite file; a PostgreSQL server in the slow tier).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna")

from agents.cli import train_main  # noqa: E402
from agents.config import make_config  # noqa: E402
from agents.errors import UserError  # noqa: E402
from agents.training import train  # noqa: E402
from agents.tuning import search_spaces  # noqa: E402
from agents.tuning.study import StudyOptions, fit_space_to_envs, optimize  # noqa: E402
from agents.tuning.trials import TrialPruning  # noqa: E402
from tests.conftest import REPO, TINY_RUN  # noqa: E402

STUDY = "shared"
# a trial as small as a run can be: a few hundred steps, two evaluations for the pruner
TINY_TRIAL = [
    "--timesteps", "256", "--n-envs", "2", "--eval-episodes", "2", "--no-progress",
    "--n-evaluations", "2", "--set", "n_steps=32", "batch_size=32", "n_epochs=1",
    "final_eval_episodes=4",
]  # fmt: skip

TINY = dict(n_timesteps=256, n_envs=2, n_steps=32, batch_size=32, n_epochs=1, eval_episodes=2)


def tiny_config(env: str = "MemoryStates-v0", **fields):
    return make_config(env=env, progress=False, final_eval_episodes=4, **{**TINY, **fields})


def start_worker(storage: str, folder: Path, *args: str) -> subprocess.Popen:
    """A worker as a user starts one on a machine of the cluster: train.py --optimize."""
    command = [sys.executable, str(REPO / "train.py"), "--env", "MemoryStates-v0", "--optimize"]
    command += ["--storage", storage, "--study-name", STUDY, "--run-dir", str(folder)]
    command += ["--heartbeat-interval", "1", "--no-optim-plots", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(worker: subprocess.Popen) -> str:
    out, err = worker.communicate(timeout=600)
    assert worker.returncode == 0, err
    return out


def trials_by_number(storage: str) -> dict[int, optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=STUDY, storage=storage)
    return {trial.number: trial for trial in study.trials}


def assert_workers_share_the_study(storage: str, folders: tuple[Path, Path]) -> None:
    """Two workers started together, two trials each: four trials, each run once."""
    workers = [start_worker(storage, folder, "--n-trials", "2", *TINY_TRIAL) for folder in folders]
    outputs = [finish(worker) for worker in workers]
    trials = trials_by_number(storage)
    assert sorted(trials) == [0, 1, 2, 3]
    assert all(trial.state.name == "COMPLETE" for trial in trials.values())
    # each worker reports the trials it ran: together all four, none twice
    ran = [{n for n in trials if f"trial {n} complete" in out} for out in outputs]
    assert len(ran[0]) == len(ran[1]) == 2 and ran[0] | ran[1] == set(trials)
    for number, trial in trials.items():
        (run,) = trial.user_attrs["runs"]
        homes = [folder for folder in set(folders) if (folder / run / "metrics.json").is_file()]
        assert len(homes) == 1 and run == f"trial_{number}__MemoryStates-v0"
    # each worker writes the results of the whole study as it stands when it ends: the one
    # that ends last sees all four trials, the other at least its own two
    for folder in set(folders):
        assert (folder / "best.yaml").is_file()
        assert 1 + 2 <= len((folder / "trials.csv").read_text().splitlines()) <= 1 + 4
    assert any(re.search(r"Study shared in .*: 4 complete$", out, re.M) for out in outputs)


def assert_killed_worker_fails_only_its_trial(storage: str, folder: Path) -> None:
    """SIGKILL a worker mid-trial; the next worker marks that trial failed and goes on."""
    doomed = start_worker(storage, folder, "--n-trials", "1", "--timesteps", "10000000")
    deadline = time.monotonic() + 300
    while not (folder / "trial_0__MemoryStates-v0" / "config.yaml").is_file():  # trial running
        assert doomed.poll() is None, doomed.communicate()[1]
        assert time.monotonic() < deadline, "the worker never started its trial"
        time.sleep(0.5)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    survivor = finish(start_worker(storage, folder, "--n-trials", "1", *TINY_TRIAL))
    trials = trials_by_number(storage)
    assert trials[0].state.name == "FAIL" and trials[1].state.name == "COMPLETE"
    assert "1 fail, 1 complete" in survivor and (folder / "best.yaml").is_file()
    assert "its worker stopped" in (folder / "trials.md").read_text()


def test_two_workers_on_one_sqlite_file_share_the_trials(tmp_path):
    folder = tmp_path / "study"
    assert_workers_share_the_study(f"sqlite:///{folder / 'study.db'}", (folder, folder))


def test_killed_worker_leaves_its_trial_failed_and_the_study_whole(tmp_path):
    assert_killed_worker_fails_only_its_trial(f"sqlite:///{tmp_path / 'study.db'}", tmp_path)


@pytest.mark.slow
def test_workers_share_a_postgresql_study(postgres_url, tmp_path):
    """The cluster recipe: one database server, a worker per machine (each its own folder)."""
    assert_workers_share_the_study(postgres_url("shared"), (tmp_path / "a", tmp_path / "b"))
    assert_killed_worker_fails_only_its_trial(postgres_url("killed"), tmp_path / "c")


@pytest.fixture
def postgres_url():
    """A PostgreSQL server of our own on localhost (initdb, pg_ctl in a temporary folder)."""
    binaries = [shutil.which(name) for name in ("initdb", "pg_ctl")]
    if not all(binaries):
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install -y postgresql)")
    pytest.importorskip("psycopg", reason='no PostgreSQL driver: pip install -e ".[optimize]"')
    initdb, pg_ctl = binaries
    as_server = []
    folder = Path(tempfile.mkdtemp(prefix="optuna-postgres-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no user 'postgres' to run the server")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_server = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = lambda *args: subprocess.run([*as_server, *args], check=True, capture_output=True)  # noqa: E731
    run(initdb, "-D", str(folder / "data"), "-U", "tuner", "--auth=trust")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    run(pg_ctl, "-D", str(folder / "data"), "-o", options, "-l", str(folder / "log"), "-w", "start")
    import psycopg

    def create(name: str) -> str:
        with psycopg.connect(f"host=127.0.0.1 port={port} user=tuner dbname=postgres") as db:
            db.autocommit = True
            db.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://tuner@127.0.0.1:{port}/{name}"

    try:
        yield create
    finally:
        run(pg_ctl, "-D", str(folder / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_best_yaml_trains_with_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = train_main(["--optimize", "--n-trials", "2", *TINY_TRIAL, "--no-optim-plots"])
    assert code == 0
    (study,) = (tmp_path / "runs").glob("MemoryStates-v0__recurrent_ppo__optimize__*")
    assert sorted(path.name for path in study.glob("trial_*")) == [
        "trial_0__MemoryStates-v0",
        "trial_1__MemoryStates-v0",
    ]
    best = yaml.safe_load((study / "best.yaml").read_text())
    assert best["algo"] == "recurrent_ppo" and "learning_rate" in best and "gamma" in best
    # keys the user fixed are kept, how the runs were carried out is not
    assert best["n_steps"] == 32 and "n_timesteps" not in best and "seed" not in best
    run_dir = tmp_path / "again"
    assert (
        train_main(["--config", str(study / "best.yaml"), "--run-dir", str(run_dir), *TINY_RUN])
        == 0
    )
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    for key in ("learning_rate", "gamma", "ent_coef", "lstm_hidden_size", "recurrent_cell"):
        assert saved[key] == best[key], key
    rows = (study / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("number,state,value,duration_s") and len(rows) == 3


def test_max_total_trials_counts_the_trials_of_every_worker(tmp_path):
    study = tmp_path / "study"
    common = ["--env", "MemoryStates-v0", "--optimize", *TINY_TRIAL]
    assert (
        train_main([*common, "--run-dir", str(study), "--n-trials", "2", "--no-optim-plots"]) == 0
    )
    # a second worker joins by the SQLite file alone: its folder is the study folder
    storage = f"sqlite:///{study / 'study.db'}"
    assert (
        train_main([*common, "--storage", storage, "--n-trials", "5", "--max-total-trials", "3"])
        == 0
    )
    trials = optuna.load_study(study_name=None, storage=storage).trials
    assert [trial.number for trial in trials] == [0, 1, 2]
    assert (study / "trial_2__MemoryStates-v0" / "metrics.json").is_file()
    assert (study / "history.png").stat().st_size > 1000


def test_multi_task_objective_is_the_mean_over_envs(tmp_path):
    envs = ["MemoryStates-v0", "DinnerCycle-v0"]
    result = optimize(
        [tiny_config(env) for env in envs],
        StudyOptions(n_trials=1, progress=False, plots=False, n_evaluations=2),
        study_dir=tmp_path,
        fixed_keys=TINY,
    )
    trial = optuna.load_study(study_name=result.study_name, storage=result.storage).trials[0]
    scores = trial.user_attrs["scores"]
    assert list(scores) == envs
    assert trial.value == pytest.approx(sum(scores.values()) / 2)
    for env in envs:  # one normal run folder per env, each evaluated twice during training
        run_dir = tmp_path / f"trial_0__{env}"
        assert (run_dir / "model.zip").is_file() and (run_dir / "metrics.json").is_file()
    assert sorted(trial.intermediate_values) == [1, 2, 3, 4]  # each env at its own steps


def test_trial_seeds_score_a_trial_by_the_mean_over_seeds(tmp_path):
    result = optimize(
        [tiny_config("DinnerCycle-v0", seed=3)],
        StudyOptions(n_trials=1, progress=False, plots=False, n_evaluations=2, trial_seeds=2),
        study_dir=tmp_path,
        fixed_keys=TINY,
    )
    trial = optuna.load_study(study_name=result.study_name, storage=result.storage).trials[0]
    runs = trial.user_attrs["runs"]
    assert runs == ["trial_0__DinnerCycle-v0__seed3", "trial_0__DinnerCycle-v0__seed4"]
    metrics = [json.loads((tmp_path / run / "metrics.json").read_text()) for run in runs]
    configs = [yaml.safe_load((tmp_path / run / "config.yaml").read_text()) for run in runs]
    assert [config["seed"] for config in configs] == [3, 4]
    assert trial.value == pytest.approx(sum(m["success_rate"] for m in metrics) / 2)
    assert sorted(trial.intermediate_values) == [1, 2, 3, 4]  # each seed at its own steps


def test_diverged_trial_is_pruned_not_fatal(tmp_path):
    # a learning rate of 1e30 makes the weights NaN within the first update
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: [1.0e+30]\n")
    result = optimize(
        [tiny_config()],
        StudyOptions(n_trials=2, progress=False, search_space=space),
        study_dir=tmp_path / "study",
    )
    assert result.states == {"pruned": 2} and result.best_trial is None
    table = (tmp_path / "study" / "trials.md").read_text()
    assert "diverged: ValueError" in table
    assert not (tmp_path / "study" / "best.yaml").exists()


def test_pruner_stops_a_run_at_a_periodic_evaluation(tmp_path):
    # the threshold pruner prunes every value below 2: a success rate always is
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(2.0))
    trial = study.ask()
    run_dir = tmp_path / "run"
    with pytest.raises(optuna.TrialPruned):
        train(tiny_config(eval_freq=128), run_dir=run_dir, after_eval=TrialPruning(trial))
    assert list(trial.storage.get_trial(trial._trial_id).intermediate_values) == [1]
    assert (run_dir / "evaluations.npz").is_file()  # a run folder, stopped before its end
    assert not (run_dir / "metrics.json").exists()


def test_privileged_critic_is_searched_only_where_the_env_offers_it():
    space = search_spaces.load_space("recurrent_ppo")
    assert "privileged_critic" in fit_space_to_envs(space, [tiny_config("MemoryStates-v0")])
    assert "privileged_critic" not in fit_space_to_envs(space, [tiny_config("CartPole-v1")])


def test_forget_bias_is_searched_only_in_lstm_trials():
    space = search_spaces.load_space("recurrent_ppo")
    subset = {key: space[key] for key in ("forget_bias", "recurrent_cell")}  # bias listed first
    lstm = optuna.trial.FixedTrial({"recurrent_cell": "lstm", "forget_bias": 1.0})
    assert search_spaces.sample(lstm, subset) == {"recurrent_cell": "lstm", "forget_bias": 1.0}
    gru = optuna.trial.FixedTrial({"recurrent_cell": "gru", "forget_bias": 1.0})
    assert search_spaces.sample(gru, subset) == {"recurrent_cell": "gru"}
    only_bias = {"forget_bias": space["forget_bias"]}  # the user fixed the cell
    assert search_spaces.sample(optuna.trial.FixedTrial({}), only_bias, cell="gru") == {}
    assert search_spaces.sample(lstm, only_bias, cell="lstm") == {"forget_bias": 1.0}
    for sampled in (search_spaces.sample(t, subset) for t in (lstm, gru)):
        tiny_config("MemoryStates-v0", **sampled).validate()  # never a refused combination


def test_search_space_sampling_folds_schedules_and_skips_fixed_keys(tmp_path):
    space = search_spaces.load_space("recurrent_ppo")
    assert set(space) >= {"learning_rate", "ent_coef", "n_steps", "bptt_length", "recurrent_cell"}
    fixed = search_spaces.without(space, ["learning_rate", "n_steps"])
    assert "learning_rate_schedule" not in fixed and "n_steps" not in fixed
    trial = optuna.trial.FixedTrial(
        {"learning_rate": 1e-3, "learning_rate_schedule": "linear", "ent_coef": 0.01}
    )
    subset = {key: space[key] for key in ("learning_rate", "learning_rate_schedule", "ent_coef")}
    assert search_spaces.sample(trial, subset) == {"learning_rate": "lin_0.001", "ent_coef": 0.01}
    own = tmp_path / "mine.yaml"  # a user's file: one flat space, ints as a range
    own.write_text("lstm_hidden_size: {low: 16, high: 64, step: 16}\n")
    mine = search_spaces.load_space("ppo", own)
    assert mine == {"lstm_hidden_size": {"low": 16, "high": 64, "step": 16}}
    trial = optuna.trial.FixedTrial({"lstm_hidden_size": 48})
    assert search_spaces.sample(trial, mine) == {"lstm_hidden_size": 48}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--sampler", "grid"], "unknown sampler 'grid'; choose one of: tpe, random"),
        (["--pruner", "hyperband"], "unknown pruner 'hyperband'"),
        (["--n-trials", "0"], "--n-trials must be >= 1, got 0"),
        (["--trial-seeds", "0"], "--trial-seeds must be >= 1, got 0"),
        (["--storage", "postgresql+psycopg://tuner@127.0.0.1:1/optuna"], "cannot open the Optuna"),
        (["--storage", "sqlite:////no/such/folder/study.db"], "cannot open the Optuna storage"),
        (["--storage", "nosuchdb://x"], "cannot open the Optuna storage"),
        (["--search-space", "missing.yaml"], "search space file missing.yaml does not exist"),
        (["--envs", "MemoryStates-v0", "CartPole-v1"], "reports no info['is_success']"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, fragment, tmp_path, monkeypatch, capsys):
    args = ["--optimize", *args]
    monkeypatch.chdir(tmp_path)
    code = train_main([*args, "--run-dir", str(tmp_path / "study")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and fragment in lines[0], lines
    assert not (tmp_path / "study").exists() and not (tmp_path / "runs").exists()


def test_envs_without_optimize_is_refused(capsys):
    assert train_main(["--envs", "MemoryStates-v0", "DinnerCycle-v0"]) == 2
    assert "add --optimize" in capsys.readouterr().err


def test_missing_optuna_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    code = train_main(["--optimize", "--run-dir", str(tmp_path / "study")])
    assert code == 2
    assert 'pip install -e ".[optimize]"' in capsys.readouterr().err


def test_bad_search_space_entry_names_the_key(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("recurrent_ppo:\n  lerning_rate: [0.1]\n")
    with pytest.raises(UserError, match="'lerning_rate' is not a config key"):
        search_spaces.load_space("recurrent_ppo", space)
    space.write_text("ppo:\n  gamma: {low: 0.99, high: 0.9}\n")
    with pytest.raises(UserError, match="needs numbers low < high"):
        search_spaces.load_space("ppo", space)


def test_a_study_of_another_task_is_not_joined(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name=STUDY, direction="maximize")
    study.set_user_attr("task", {"envs": ["TMaze-v0"], "algo": "recurrent_ppo"})
    options = StudyOptions(storage=storage, study_name=STUDY, progress=False)
    with pytest.raises(UserError, match="study 'shared' tunes .*TMaze-v0.*pass another"):
        optimize([tiny_config()], options, study_dir=tmp_path)
    assert study.trials == []
