"""Hyperparameter search with Optuna, as rl-baselines3-zoo's ``--optimize``, from one laptop
to a cluster.

A study samples hyperparameters from a search space (agents/tuning/search_spaces.py) with TPE or at
random. Each trial trains one normal run folder per env with :func:`agents.training.train`,
inside the study folder ``runs/<env>__<algo>__optimize__<time>/``. A trial's value is its final
evaluation's success rate where the env reports success, else its mean return; with several
envs (the multi-task objective), the mean over them. Every periodic evaluation is reported to
the trial, so that the pruner can stop a poor one early; a trial that diverges (NaN) is pruned,
never fatal to the study.

The study lives in an Optuna storage: a SQLite file in the study folder by default, or any
database URL, so that many workers (processes, machines) share one study by the same
``--storage`` and ``--study-name``. Workers send heartbeats; the next worker to start a trial
marks the trial of a worker that died (killed, machine lost) as failed.
"""

from __future__ import annotations

import re
import time
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from agents.config import TrainConfig, from_dict
from agents.environments import make_single_env, with_agent_inputs
from agents.errors import UserError
from agents.runs import RUNS_ROOT, safe_name
from agents.training import TrainingInterrupted
from agents.tuning import search_spaces
from agents.tuning.report import write_results
from agents.tuning.storage import claim, open_study
from agents.tuning.trials import Objective, trial_config

if TYPE_CHECKING:
    import optuna

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "halving", "none")
STUDY_DB = "study.db"
PROBE_STEPS = 10_000  # random steps to see whether an env reports success
# how a run is carried out, not what it learns with: fixed by the user but not in best.yaml
RUN_KEYS = (
    "env", "env_kwargs", "n_timesteps", "seed", "device", "progress", "vec_env", "torch_threads",
    "eval_freq", "eval_episodes", "final_eval_episodes", "checkpoint_freq",
)  # fmt: skip


@dataclass
class StudyOptions:
    """How to search; the names are the flags of ``train.py --optimize`` (the zoo's)."""

    n_trials: int = 100  # trials this worker runs
    max_total_trials: int | None = None  # trials of the whole study, over all workers
    n_jobs: int = 1  # trials at once in this process (threads)
    storage: str | None = None  # Optuna storage URL; None: SQLite in the study folder
    study_name: str | None = None  # None: <env>__<algo>, so workers of one task meet
    sampler: str = "tpe"
    pruner: str = "median"
    n_startup_trials: int = 10  # random trials before TPE and the pruner start judging
    n_evaluations: int = 5  # periodic evaluations per run, each reported to the pruner
    trial_seeds: int = 1  # runs per env in a trial, seeds --seed and up; the score is their mean
    search_space: str | Path | None = None  # YAML file; None: agents/tuning/search_spaces.yaml
    heartbeat_interval: int = 60  # seconds; a trial silent for twice this is failed
    seed: int | None = None  # sampler seed; None: each worker samples differently
    plots: bool = True
    progress: bool = True

    def validate(self) -> StudyOptions:
        if self.sampler not in SAMPLERS:
            raise UserError(f"unknown sampler {self.sampler!r}; choose one of: tpe, random")
        if self.pruner not in PRUNERS:
            raise UserError(f"unknown pruner {self.pruner!r}; choose one of: {', '.join(PRUNERS)}")
        for name in ("n_trials", "n_jobs", "n_evaluations", "trial_seeds", "heartbeat_interval"):
            if getattr(self, name) < 1:
                flag = "--" + name.replace("_", "-")
                raise UserError(f"{flag} must be >= 1, got {getattr(self, name)}")
        if self.max_total_trials is not None and self.max_total_trials < 1:
            raise UserError(f"--max-total-trials must be >= 1, got {self.max_total_trials}")
        if self.n_startup_trials < 0:
            raise UserError(f"--n-startup-trials must be >= 0, got {self.n_startup_trials}")
        return self


@dataclass
class StudyResult:
    study_name: str
    storage: str  # the URL without its password
    folder: Path
    best_value: float | None
    best_trial: int | None
    states: dict[str, int]  # trials of the whole study by state
    files: list[Path] = field(default_factory=list)


class StudyInterrupted(TrainingInterrupted):
    """Ctrl-C during a study; the results so far were written into the study folder."""

    def __init__(self, folder: Path) -> None:
        Exception.__init__(self, f"study interrupted; the results so far are in {folder}")
        self.run_dir = folder


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UserError(
            'hyperparameter search needs Optuna: pip install -e ".[optimize]"'
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our progress bar says what matters
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def optimize(
    configs: list[TrainConfig],
    options: StudyOptions | None = None,
    *,
    study_dir: str | Path | None = None,
    fixed_keys: Iterable[str] = (),
    command: str | None = None,
) -> StudyResult:
    """Run (or join) a study over ``configs``, one base config per env, all of one algo.

    The sampled values replace the configs' own, except ``fixed_keys`` (what the user set),
    which are not searched. Writes best.yaml, trials.csv, trials.md and plots into the
    study folder, from every trial of the study, also those of other workers.
    """
    optuna = import_optuna()
    options = (options or StudyOptions()).validate()
    fixed = set(fixed_keys)
    space = _search_space(configs, options, fixed)
    algo = configs[0].algo
    label = "+".join(safe_name(config.env) for config in configs)
    folder = _study_folder(label, algo, options.storage, study_dir)
    url = options.storage or f"sqlite:///{(folder / STUDY_DB).resolve()}"
    study = open_study(optuna, folder, url, options.study_name or f"{label}__{algo}", options)
    claim(study, configs)
    optuna.storages.fail_stale_trials(study)
    objective = Objective(
        configs=configs,
        space=space,
        folder=folder,
        n_evaluations=options.n_evaluations,
        fixed={key: configs[0].to_dict()[key] for key in sorted(fixed) if key not in RUN_KEYS},
        command=command,
        seeds=options.trial_seeds,
    )
    interrupted = _run_trials(optuna, study, objective, options)
    optuna.storages.fail_stale_trials(study)
    files = write_results(study, folder, plots=options.plots)
    if interrupted:
        raise StudyInterrupted(folder)
    return _result(optuna, study, url, folder, files)


def _search_space(
    configs: list[TrainConfig], options: StudyOptions, fixed: set[str]
) -> search_spaces.Space:
    """The algo's space less what the user fixed, fit to the envs; checks the configs."""
    if len({config.algo for config in configs}) != 1:
        raise UserError("all envs of a study are tuned with one algo")
    for config in configs:  # a bad value of the user's stops the study before it starts
        trial_config(config, {}, options.n_evaluations)
    space = search_spaces.load_space(configs[0].algo, options.search_space)
    return fit_space_to_envs(search_spaces.without(space, fixed), configs)


def _run_trials(
    optuna: Any, study: optuna.Study, objective: Objective, options: StudyOptions
) -> bool:
    """Run this worker's trials; True when Ctrl-C stopped them."""
    n_trials = _trials_left(optuna, study, options)
    progress = TrialProgress(n_trials, enabled=options.progress)
    callbacks: list[Any] = [progress]
    if options.max_total_trials is not None:
        callbacks.append(
            optuna.study.MaxTrialsCallback(options.max_total_trials, _counted_states(optuna))
        )
    try:
        if n_trials > 0:
            study.optimize(
                objective,
                n_trials=n_trials,
                n_jobs=options.n_jobs,
                callbacks=callbacks,
                gc_after_trial=True,
            )
    except (KeyboardInterrupt, TrainingInterrupted):
        return True
    finally:
        progress.close()
    return False


def _trials_left(optuna: Any, study: optuna.Study, options: StudyOptions) -> int:
    """This worker's trials, fewer where the study's --max-total-trials is nearly reached.

    Running trials of other workers count (as in rl-baselines3-zoo), so that N workers do not
    overshoot the total by N; two workers that check at the same moment may still each start
    one more.
    """
    if options.max_total_trials is None:
        return options.n_trials
    counted = len(study.get_trials(deepcopy=False, states=_counted_states(optuna)))
    return max(0, min(options.n_trials, options.max_total_trials - counted))


def _counted_states(optuna: Any) -> tuple[Any, ...]:
    """The trials that count towards --max-total-trials."""
    state = optuna.trial.TrialState
    return (state.COMPLETE, state.PRUNED, state.RUNNING)


class TrialProgress:
    """A progress bar over this worker's trials, and one line per finished trial."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.bar = tqdm(total=total, unit="trial", disable=not enabled, dynamic_ncols=True)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        value = f" {trial.value:.4g}" if trial.value is not None else ""
        note = trial.user_attrs.get("note", "")
        note = f": {note}" if note else ""
        self.bar.write(f"trial {trial.number} {trial.state.name.lower()}{value}{note}")
        try:
            self.bar.set_postfix(best=f"{study.best_value:.4g}", trial=study.best_trial.number)
        except ValueError:  # no trial complete yet
            pass
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def fit_space_to_envs(
    space: search_spaces.Space, configs: list[TrainConfig]
) -> search_spaces.Space:
    """Drop the privileged critic where an env offers no privileged state; refuse a
    multi-task study over an env that reports no success (a mean of success rates and
    returns means nothing)."""
    if space.get("privileged_critic") and not all(_offers_privileged(c) for c in configs):
        space = {key: spec for key, spec in space.items() if key != "privileged_critic"}
    if len(configs) > 1:
        for config in configs:
            if _reports_success(config) is False:
                raise UserError(
                    f"the multi-task objective is the mean success rate, but env {config.env} "
                    "reports no info['is_success']; tune it on its own"
                )
    return space


def _offers_privileged(config: TrainConfig) -> bool:
    probe = from_dict({**config.to_dict(), "algo": "recurrent_ppo", "privileged_critic": True})
    try:
        with_agent_inputs(make_single_env(config.env, config.env_kwargs), probe).close()
    except UserError:
        return False
    return True


def _reports_success(config: TrainConfig) -> bool | None:
    """Whether the first episode of random actions ends with ``info["is_success"]``; None
    when no episode ended within PROBE_STEPS."""
    env = make_single_env(config.env, config.env_kwargs)
    try:
        env.reset(seed=config.seed)
        env.action_space.seed(config.seed)
        for _ in range(PROBE_STEPS):
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
            if terminated or truncated:
                return "is_success" in info
        return None
    finally:
        env.close()


def _study_folder(label: str, algo: str, storage: str | None, study_dir: str | Path | None) -> Path:
    """The given folder; else the folder of a SQLite file the user named (so that workers
    on one machine join by --storage alone); else a new runs/<env>__<algo>__optimize__<time>."""
    if study_dir is not None:
        return Path(study_dir)
    match = re.fullmatch(r"sqlite:///(.+)", storage or "")
    if match and match[1] != ":memory:":
        return Path(match[1]).parent
    return RUNS_ROOT / f"{label}__{algo}__optimize__{time.strftime('%Y%m%d-%H%M%S')}"


def _result(
    optuna: Any, study: optuna.Study, url: str, folder: Path, files: list[Path]
) -> StudyResult:
    from sqlalchemy.engine import make_url

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    states = Counter(trial.state.name.lower() for trial in trials)
    return StudyResult(
        study_name=study.study_name,
        storage=make_url(url).render_as_string(hide_password=True),
        folder=folder,
        best_value=best.value if best else None,
        best_trial=best.number if best else None,
        states=dict(states),
        files=files,
    )
