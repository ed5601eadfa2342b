"""Search spaces for hyperparameter tuning: read from YAML, checked, sampled by an Optuna trial.

A space maps config keys to a list of choices or a range ``{low, high, log, step}``;
``<key>_schedule`` (``constant`` or ``linear``) turns a scheduled key into ``lin_<value>``.
The spaces we ship are in agents/tuning/search_spaces.yaml, which explains the format.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agents import schedules
from agents.config import ALGOS, FIELDS, LSTM_ONLY_KEYS, read_config_file
from agents.errors import UserError

SEARCH_SPACES_FILE = Path(__file__).with_name("search_spaces.yaml")
SCHEDULE_SUFFIX = "_schedule"
SCHEDULE_CHOICES = ("constant", "linear")
RANGE_KEYS = {"low", "high", "log", "step"}

Space = dict[str, Any]


def load_space(algo: str, path: str | Path | None = None) -> Space:
    """The space for ``algo`` from ``path`` (ours when None); UserError naming a bad entry.

    A file may hold a block per algo, as ours does, or a single space for the algo tuned.
    """
    path = Path(path) if path is not None else SEARCH_SPACES_FILE
    blocks = read_config_file(path) if path.is_file() else None
    if blocks is None:
        raise UserError(f"search space file {path} does not exist; pass a YAML file")
    if all(key in ALGOS for key in blocks):
        if algo not in blocks:
            raise UserError(
                f"search space file {path} has no block for algo {algo!r} (it has "
                f"{', '.join(blocks)}); add one"
            )
        space = blocks[algo]
    else:
        space = blocks
    if not isinstance(space, dict) or not space:
        raise UserError(f"search space for {algo} in {path} must be a mapping of key: choices")
    for key, spec in space.items():
        _check_entry(key, spec, path)
    return space


def _check_entry(key: str, spec: Any, path: Path) -> None:
    where = f"search space {path}, key {key!r}"
    if key.endswith(SCHEDULE_SUFFIX):
        scheduled = key.removesuffix(SCHEDULE_SUFFIX)
        if scheduled not in schedules.SCHEDULED_KEYS:
            raise UserError(f"{where}: only {', '.join(schedules.SCHEDULED_KEYS)} have a schedule")
        if not isinstance(spec, list) or not set(spec) <= set(SCHEDULE_CHOICES):
            raise UserError(f"{where}: choose from {list(SCHEDULE_CHOICES)}, got {spec!r}")
    elif key not in FIELDS:
        raise UserError(f"{where} is not a config key; see agents/config.py TrainConfig")
    if isinstance(spec, list):
        if not spec:
            raise UserError(f"{where}: the list of choices is empty")
        return
    if not isinstance(spec, dict) or not {"low", "high"} <= set(spec) <= RANGE_KEYS:
        raise UserError(
            f"{where}: expected a list of choices or {{low: A, high: B}} (optional log, "
            f"step), got {spec!r}"
        )
    low, high = spec["low"], spec["high"]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    if not numbers or low >= high or (spec.get("log") and low <= 0):
        raise UserError(f"{where}: needs numbers low < high (and low > 0 with log), got {spec}")


def without(space: Space, keys: Iterable[str]) -> Space:
    """The space less ``keys`` (and their schedules): what the user fixed is not searched."""
    fixed = set(keys)
    return {
        key: spec
        for key, spec in space.items()
        if key not in fixed and key.removesuffix(SCHEDULE_SUFFIX) not in fixed
    }


def sample(trial: Any, space: Space, cell: str = "lstm") -> dict[str, Any]:
    """Config values suggested by an Optuna trial, schedules folded into their keys.

    ``cell`` is the recurrent cell of the base config, used where the space does not search
    ``recurrent_cell`` itself; keys that only an LSTM takes are left out for any other cell,
    so that TPE learns them where they apply instead of pruning every GRU trial that drew them.
    """
    values: dict[str, Any] = {}
    ordered = sorted(space, key=lambda key: key in LSTM_ONLY_KEYS)  # the cell comes first
    for key in ordered:
        if key in LSTM_ONLY_KEYS and values.get("recurrent_cell", cell) != "lstm":
            continue
        values[key] = _suggest(trial, key, space[key])
    for key in schedules.SCHEDULED_KEYS:
        schedule = values.pop(key + SCHEDULE_SUFFIX, "constant")
        if schedule == "linear" and key in values:
            values[key] = f"{schedules.LINEAR}{values[key]}"
    return values


def _suggest(trial: Any, key: str, spec: Any) -> Any:
    if isinstance(spec, list):
        return trial.suggest_categorical(key, spec)
    low, high = spec["low"], spec["high"]
    log, step = bool(spec.get("log", False)), spec.get("step")
    if isinstance(low, int) and isinstance(high, int) and not isinstance(step, float):
        return trial.suggest_int(key, low, high, step=step or 1, log=log)
    return trial.suggest_float(key, float(low), float(high), step=step, log=log)
