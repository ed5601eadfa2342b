"""One trial of a hyperparameter search: sample, train a run folder per env, score it, and
prune it early from its periodic evaluations (agents/tuning/study.py runs the study)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback

from agents.config import TrainConfig, from_dict
from agents.errors import UserError
from agents.runs import METRICS_FILE, safe_name
from agents.training import train
from agents.tuning import search_spaces

if TYPE_CHECKING:
    import optuna


@dataclass
class Objective:
    """One trial: sample, train a run folder per env and seed, return the mean score."""

    configs: list[TrainConfig]
    space: search_spaces.Space
    folder: Path
    n_evaluations: int
    fixed: dict[str, Any]
    command: str | None = None
    seeds: int = 1  # runs per env, seeds seed .. seed + seeds - 1: one seed's luck is no score

    def __call__(self, trial: optuna.Trial) -> float:
        tuned = search_spaces.sample(trial, self.space, self.configs[0].recurrent_cell)
        trial.set_user_attr("fixed", {"algo": self.configs[0].algo, **self.fixed})
        scores: dict[str, float] = {}
        for index, base in enumerate(self.configs):
            runs = []
            for offset in range(self.seeds):
                seeded = replace(base, seed=base.seed + offset)
                first_step = (index * self.seeds + offset) * self.n_evaluations
                runs.append(self._run(trial, seeded, tuned, first_step))
            scores[base.env] = float(np.mean(runs))
            trial.set_user_attr("scores", scores)
            if not math.isfinite(scores[base.env]):
                raise prune(trial, "diverged: the final evaluation is not finite")
        return float(np.mean(list(scores.values())))

    def _run(
        self, trial: optuna.Trial, base: TrainConfig, tuned: dict[str, Any], first_step: int
    ) -> float:
        """Train one run folder of the trial; its score."""
        try:
            config = trial_config(base, tuned, self.n_evaluations)
        except UserError as error:  # a combination the config refuses
            raise prune(trial, f"invalid combination: {error}") from None
        trial.set_user_attr("tuned", {key: config.to_dict()[key] for key in tuned})
        seed_suffix = f"__seed{config.seed}" if self.seeds > 1 else ""
        run_dir = self.folder / f"trial_{trial.number}__{safe_name(config.env)}{seed_suffix}"
        trial.set_user_attr("runs", [*trial.user_attrs.get("runs", []), run_dir.name])
        pruning = TrialPruning(trial, first_step, self.n_evaluations)
        try:
            train(config, run_dir=run_dir, command=self.command, after_eval=pruning)
        except (ValueError, AssertionError, FloatingPointError) as error:
            # random hyperparameters can make the weights NaN; torch refuses them so
            reason = str(error).strip().splitlines()[0][:200]
            raise prune(trial, f"diverged: {type(error).__name__}: {reason}") from None
        metrics = json.loads((run_dir / METRICS_FILE).read_text())
        return score(metrics)


def trial_config(base: TrainConfig, tuned: dict[str, Any], n_evaluations: int) -> TrainConfig:
    """The base config with the sampled values; UserError for a combination it refuses."""
    values = {**base.to_dict(), **tuned, "progress": False}
    values["eval_freq"] = max(base.n_timesteps // n_evaluations, 1)
    # the zoo caps batch_size the same way; a larger one is no different from one rollout
    values["batch_size"] = min(values["batch_size"], values["n_steps"] * values["n_envs"])
    return from_dict(values).validate()


def score(metrics: dict[str, Any]) -> float:
    """The success rate where the env reports success, else the mean return."""
    success = metrics.get("success_rate")
    return float(success if success is not None else metrics["mean_return"])


def prune(trial: optuna.Trial, reason: str) -> Exception:
    """optuna.TrialPruned, with the reason kept in the trial (the trials table shows it)."""
    import optuna

    trial.set_user_attr("note", reason)
    return optuna.TrialPruned(reason)


class TrialPruning(BaseCallback):
    """Reports every periodic evaluation to an Optuna trial and prunes a poor or diverged one.

    rl-baselines3-zoo's ``TrialEvalCallback``, as the callback that SB3's ``EvalCallback``
    calls after each evaluation (``training.train(after_eval=...)``). It raises
    ``optuna.TrialPruned``, which ends training without a final evaluation. Reports are
    steps ``first_step + 1`` to ``first_step + max_reports``, so that a multi-task trial
    reports each env at steps of its own and the pruner compares like with like.
    """

    def __init__(
        self, trial: optuna.Trial, first_step: int = 0, max_reports: int | None = None
    ) -> None:
        super().__init__()
        self.trial = trial
        self.first_step = first_step
        self.max_reports = max_reports
        self.reports = 0

    def _on_step(self) -> bool:
        value = last_evaluation(self.parent)
        if not math.isfinite(value):
            raise prune(self.trial, f"diverged: evaluation {value} at {self.num_timesteps} steps")
        if self.max_reports is not None and self.reports >= self.max_reports:
            return True  # past the budget, while SB3 finishes its last rollout
        self.reports += 1
        self.trial.report(value, self.first_step + self.reports)
        if self.trial.should_prune():
            reason = f"pruned at {self.num_timesteps} steps (evaluation {value:.3g})"
            raise prune(self.trial, reason)
        return True


def last_evaluation(evaluation: EvalCallback) -> float:
    """The success rate of the last evaluation where every episode reported one, else its
    mean return: the same measure as the trial's value."""
    successes, results = evaluation.evaluations_successes, evaluation.evaluations_results
    if successes and len(successes) == len(results):
        return float(np.mean(successes[-1]))
    return float(evaluation.last_mean_reward)
