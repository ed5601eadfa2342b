"""Where a study lives: an Optuna storage (a SQLite file, or a database server that many
workers share), with its sampler and pruner (agents/tuning/study.py runs the study)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.config import TrainConfig
from agents.errors import UserError

if TYPE_CHECKING:
    import optuna

    from agents.tuning.study import StudyOptions

STORAGE_ATTEMPTS = 4  # workers that create one new database at once race for its tables


def open_study(
    optuna: Any, folder: Path, url: str, name: str, options: StudyOptions
) -> optuna.Study:
    """Create or join the study ``name`` in the storage at ``url``, making the study folder;
    a bad storage leaves no new folder behind."""
    new_folder = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return _create_or_load(optuna, url, name, options)
    except UserError:
        if new_folder and not any(folder.iterdir()):
            folder.rmdir()
        raise


def _create_or_load(optuna: Any, url: str, name: str, options: StudyOptions) -> optuna.Study:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    # SQLite: wait for another worker's write instead of failing at once
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:  # an unreachable server or a bad URL fails here, at once
        create_engine(url, **engine).connect().close()
    except (SQLAlchemyError, ImportError, ValueError) as error:
        raise _storage_error(url, error) from None
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=options.heartbeat_interval,
                grace_period=2 * options.heartbeat_interval,
            )
            return optuna.create_study(
                storage=storage,
                study_name=name,
                sampler=_sampler(optuna, options),
                pruner=_pruner(optuna, options),
                direction="maximize",
                load_if_exists=True,
            )
        except DBAPIError as error:  # workers that race to create the tables of a new database
            failure = error
            time.sleep(0.5 * (attempt + 1))
    raise _storage_error(url, failure)


def _storage_error(url: str, error: Exception) -> UserError:
    """One line naming the storage (without its password) and the reason."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        shown = url.split("@")[-1]
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return UserError(
        f"cannot open the Optuna storage {shown} ({reason}); check the URL, that the database "
        "server is reachable and that its driver is installed"
    )


def _sampler(optuna: Any, options: StudyOptions) -> Any:
    if options.sampler == "tpe":  # the zoo's
        return optuna.samplers.TPESampler(
            n_startup_trials=options.n_startup_trials, seed=options.seed, multivariate=True
        )
    return optuna.samplers.RandomSampler(seed=options.seed)


def _pruner(optuna: Any, options: StudyOptions) -> Any:
    if options.pruner == "median":  # the zoo's: no pruning in the first third of a run
        return optuna.pruners.MedianPruner(
            n_startup_trials=options.n_startup_trials, n_warmup_steps=options.n_evaluations // 3
        )
    if options.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=1, reduction_factor=4, min_early_stopping_rate=0
        )
    return optuna.pruners.NopPruner()


def claim(study: optuna.Study, configs: list[TrainConfig]) -> None:
    """Refuse to join a study that tunes other envs or another algo."""
    task = {"envs": [config.env for config in configs], "algo": configs[0].algo}
    if "task" not in study.user_attrs:
        study.set_user_attr("task", task)
    elif study.user_attrs["task"] != task:
        raise UserError(
            f"study {study.study_name!r} tunes {study.user_attrs['task']}, not {task}; "
            "pass another --study-name"
        )
