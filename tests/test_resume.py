"""Resuming a run: counters, schedules, normalisation and logs continue where they stopped."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

import agents
import agents.training
from agents.errors import UserError
from agents.runs import load
from agents.training import TrainingInterrupted
from tests.conftest import SMALL_RUN

INTERRUPT_AT = 160  # in the third rollout: the model has been updated on 128 steps


class SignalAt(BaseCallback):
    """Sends the process a signal once training reaches ``steps``, as a user or a scheduler
    would: the handler of agents/interruption.py takes it from there."""

    def __init__(self, steps: int, signum: int = signal.SIGINT) -> None:
        super().__init__()
        self.steps, self.signum = steps, signum

    def _on_step(self) -> bool:
        if self.num_timesteps == self.steps:
            os.kill(os.getpid(), self.signum)
        return True


def _interrupted_run(run_dir: Path, monkeypatch, signum: int = signal.SIGINT) -> Path:
    make_callbacks = agents.training._callbacks
    monkeypatch.setattr(
        agents.training,
        "_callbacks",
        lambda *args: [*make_callbacks(*args), SignalAt(INTERRUPT_AT, signum)],
    )
    with pytest.raises(TrainingInterrupted) as stopped:
        agents.train(run_dir=run_dir, command="python train.py first", **SMALL_RUN)
    monkeypatch.setattr(agents.training, "_callbacks", make_callbacks)
    assert stopped.value.signum == signum
    assert f"python train.py --resume {run_dir}" in str(stopped.value)
    return run_dir


def _progress(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv") as file:
        return list(csv.DictReader(file))


def _logged(run_dir: Path, column: str) -> dict[int, float]:
    """A train/ value of each update, keyed by the step count of the row that logged it (the
    update made after the rollout before it)."""
    return {
        int(row["time/total_timesteps"]): float(row[column])
        for row in _progress(run_dir)
        if row.get(column)
    }


def _parameters(run_dir: Path) -> list[th.Tensor]:
    return [p.detach().clone() for p in load(run_dir).model.policy.parameters()]


def test_ctrl_c_saves_evaluates_briefly_and_resume_continues_every_counter(
    small_run, tmp_path, monkeypatch
):
    """Interrupted after the update at 128 steps and resumed, the run makes the same updates
    at the same step counts with the same learning rates, evaluates at the same steps and
    logs into the same files as the run that was never interrupted.

    The weights are not those of the uninterrupted run, and cannot be with SB3: the envs'
    states (episodes in progress, their random generators) and torch's random generator are
    not saved with a model, so the resumed run plays fresh episodes (agents/resume.py). The
    test after this one checks that a resume is reproducible instead.
    """
    run_dir = _interrupted_run(tmp_path / "run", monkeypatch)
    interrupted = load(run_dir)
    assert interrupted.model.num_timesteps == 128  # the steps of the unfinished rollout go
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["n_timesteps"] == 128
    assert (run_dir / "learning_curve.png").is_file()
    count_at_stop = interrupted.make_env().obs_rms.count

    agents.resume(run_dir, command="python train.py --resume run")
    resumed, whole = load(run_dir).model, load(small_run).model
    assert resumed.num_timesteps == whole.num_timesteps == 384
    assert resumed._n_updates == whole._n_updates == 6 * SMALL_RUN["n_epochs"]
    assert "interrupted" not in json.loads((run_dir / "metrics.json").read_text())
    # the normalisation statistics went on from where they were, not from scratch
    assert load(run_dir).make_env().obs_rms.count > count_at_stop + 256 - 1
    # lin_ schedules continue: every update used the values of the small_run run's (the
    # update at 128, logged in the row of 192, went with the interrupted process's log)
    for column in ("train/learning_rate", "train/clip_range", "train/ent_coef"):
        logged, whole_logged = _logged(run_dir, column), _logged(small_run, column)
        assert {128, 256, 320, 384} <= set(logged) <= set(whole_logged), column
        for steps, value in logged.items():
            assert value == pytest.approx(whole_logged[steps], rel=1e-12), (column, steps)
    with np.load(run_dir / "evaluations.npz") as resumed_evals:
        with np.load(small_run / "evaluations.npz") as whole_evals:
            assert resumed_evals["timesteps"].tolist() == whole_evals["timesteps"].tolist()
            assert resumed_evals["results"].shape == whole_evals["results"].shape
    steps_logged = [int(row["time/total_timesteps"]) for row in _progress(run_dir)]
    assert steps_logged == sorted(steps_logged) and steps_logged[-1] == 384
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2  # TensorBoard reads both
    monitor = (run_dir / "monitor" / "0.monitor.csv").read_text().splitlines()
    assert monitor[0].startswith("#") and sum(line.startswith("#") for line in monitor) == 1
    commands = (run_dir / "command.txt").read_text().splitlines()
    assert commands == ["python train.py first", "python train.py --resume run"]


def test_resuming_the_same_state_twice_gives_the_same_weights(tmp_path, monkeypatch):
    first = _interrupted_run(tmp_path / "first", monkeypatch, signal.SIGTERM)
    assert not (first / "metrics.json").exists()  # no evaluation after SIGTERM
    second = tmp_path / "second"
    shutil.copytree(first, second)
    agents.resume(first)
    agents.resume(second)
    for a, b in zip(_parameters(first), _parameters(second), strict=True):
        th.testing.assert_close(a, b, rtol=0, atol=0)


def test_resume_after_a_kill_starts_from_the_newest_checkpoint(small_run, tmp_path):
    """A SIGKILL leaves no model.zip of the last steps: the newest checkpoint (256) is the
    state to go on from, and the logs of the steps after it, lost with the model, go."""
    run_dir = tmp_path / "killed"
    shutil.copytree(small_run, run_dir)
    for name in ("model.zip", "vecnormalize.pkl", "metrics.json"):
        (run_dir / name).unlink()
    (run_dir / ".model.tmp-999999999-abc.zip").write_bytes(b"half a mod")  # a torn write
    with open(run_dir / "progress.csv", "a") as file:
        file.write("12,3")  # a line torn by the kill
    agents.resume(run_dir)
    assert not list(run_dir.glob(".*tmp-*"))
    assert load(run_dir).model.num_timesteps == 384
    with np.load(run_dir / "evaluations.npz") as evaluations:
        assert evaluations["timesteps"].tolist() == [128, 256, 384]  # 384 once, not twice
    steps_logged = [int(row["time/total_timesteps"]) for row in _progress(run_dir)]
    assert steps_logged == sorted(steps_logged)
    assert steps_logged.count(320) == 1  # the row after 256 was dropped and logged again


def test_resume_to_a_new_total_follows_the_new_total(small_run, tmp_path):
    """A finished lin_ run ended at rate 0; trained on to 512 steps, its rate is that of a
    run of 512 steps from the resume on (agents/schedules.py), not 0."""
    run_dir = tmp_path / "longer"
    shutil.copytree(small_run, run_dir)
    agents.resume(run_dir, n_timesteps=512)
    assert load(run_dir).model.num_timesteps == 512
    assert load(run_dir).config.n_timesteps == 512
    rates = _logged(run_dir, "train/learning_rate")
    assert rates[384] == pytest.approx(1e-3 * (1 - 320 / 384), rel=1e-9)  # the first part's
    # the update after the rollout that ended at 448, logged in the row of 512
    assert rates[512] == pytest.approx(1e-3 * (1 - 448 / 512), rel=1e-9)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda run: None, "has finished its 384 steps; pass --timesteps"),
        (lambda run: (run / "config.yaml").unlink(), "is not a run folder"),
        (
            lambda run: [path.unlink() for path in run.rglob("*.zip")],
            "nothing to resume",
        ),
        (
            lambda run: (run / "model.zip").write_bytes(b"PK\x03\x04 torn"),
            "move it away to resume from the newest checkpoint",
        ),
        (
            lambda run: (run / "run.json").write_text('{"version": "9.0", "format": 99}'),
            "upgrade with pip install -U recurrent-control",
        ),
    ],
    ids=["finished", "not-a-run", "no-model", "corrupt-model", "newer-format"],
)
def test_what_cannot_be_resumed_says_why(small_run, tmp_path, change, fragment):
    run_dir = tmp_path / "run"
    shutil.copytree(small_run, run_dir)
    change(run_dir)
    before = {path: path.stat().st_mtime_ns for path in run_dir.rglob("*") if path.is_file()}
    with pytest.raises(UserError, match=fragment.replace("(", r"\(")):
        agents.resume(run_dir)
    after = {path: path.stat().st_mtime_ns for path in run_dir.rglob("*") if path.is_file()}
    assert after == before, "a refused resume changes nothing in the folder"


def test_a_total_below_the_steps_trained_is_refused(small_run):
    with pytest.raises(UserError, match="--timesteps 200 is below the 384 steps"):
        agents.resume(small_run, n_timesteps=200)


def test_kl_adaptive_rate_follows_every_update_across_a_resume(tmp_path):
    """With desired_kl each update's rate is the one before it, divided by 1.5 after a KL over
    twice the target and multiplied by 1.5 after one under half (agents/schedules.py), and a
    resumed run goes on from the rate that the saved model holds, not from learning_rate."""
    settings = {**SMALL_RUN, "n_timesteps": 256, "learning_rate": 1e-3, "desired_kl": 0.004}
    run_dir = agents.train(run_dir=tmp_path / "adaptive", **settings)
    saved_rate = load(run_dir).model.learning_rate.value
    agents.resume(run_dir, n_timesteps=448)
    rates = _logged(run_dir, "train/learning_rate")
    kls = _logged(run_dir, "train/approx_kl")
    rollout = settings["n_envs"] * settings["n_steps"]
    # learn() writes an update's values after the next rollout: the last update of each part
    # is not in progress.csv, so the rule is checked between updates logged one after another
    assert min(rates) == 2 * rollout and rates[min(rates)] == pytest.approx(1e-3)
    for steps in sorted(rates):
        if steps + rollout in rates:
            factor = 1 / 1.5 if kls[steps] > 0.008 else 1.5 if kls[steps] < 0.002 else 1.0
            assert rates[steps + rollout] == pytest.approx(rates[steps] * factor, rel=1e-9)
    first_resumed = min(steps for steps in rates if steps > settings["n_timesteps"])
    assert saved_rate != pytest.approx(1e-3)
    assert rates[first_resumed] == pytest.approx(saved_rate, rel=1e-9)
    assert len({round(rate, 12) for rate in rates.values()}) > 2


def test_the_best_evaluated_policy_is_kept_and_loads_like_a_run_folder(small_run):
    with np.load(small_run / "evaluations.npz") as evaluations:
        means = evaluations["results"].mean(axis=1)
        steps = evaluations["timesteps"]
    best = json.loads((small_run / "best" / "evaluation.json").read_text())
    first_best = int(np.argmax(means))  # a later tie does not replace it
    assert best == {"timesteps": int(steps[first_best]), "mean_return": float(means[first_best]),
                    "episodes": SMALL_RUN["eval_episodes"]}  # fmt: skip
    run = load(small_run / "best")  # its config from the run folder, its own statistics
    assert run.model.num_timesteps == best["timesteps"]
    assert run.vecnormalize_path == small_run / "best" / "vecnormalize.pkl"
    assert agents.evaluate(small_run / "best", n_episodes=2)["episodes"] == 2


def test_a_resumed_run_keeps_its_best_unless_a_new_evaluation_beats_the_ones_kept(
    small_run, tmp_path
):
    """Resumed from the checkpoint at 256 steps, the run evaluates at 384 again; the best to
    beat is the best of the evaluations kept (here one made unbeatable at 128)."""
    run_dir = tmp_path / "killed"
    shutil.copytree(small_run, run_dir)
    for name in ("model.zip", "vecnormalize.pkl", "metrics.json"):
        (run_dir / name).unlink()
    shutil.rmtree(run_dir / "best")
    with np.load(run_dir / "evaluations.npz") as saved:
        evaluations = dict(saved)
    evaluations["results"][0] = 1e9
    np.savez(run_dir / "evaluations.npz", **evaluations)
    agents.resume(run_dir)
    with np.load(run_dir / "evaluations.npz") as resumed:
        assert resumed["timesteps"].tolist() == [128, 256, 384]
    assert not (run_dir / "best").exists()
