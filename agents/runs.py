"""The run folder: its layout, saving, and loading a trained model with the env it needs.

``runs/<env>__<algo>__<seed>__<timestamp>/`` holds config.yaml (resolved), command.txt,
model.zip, vecnormalize.pkl (when normalising), monitor/ CSVs, evaluations.npz, TensorBoard
events, progress.csv, checkpoints/, metrics.json and run.json (the package version that wrote
it): everything needed to reload, evaluate, reproduce and resume the run. Every file is written
through agents/atomic.py, so a crash leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import json
import re
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from agents import atomic
from agents.algos import algo_class
from agents.config import TrainConfig, from_dict, make_config
from agents.devices import check_device
from agents.environments import make_vec, spaces_mismatch
from agents.errors import UserError

RUNS_ROOT = Path("runs")
CONFIG_FILE = "config.yaml"
COMMAND_FILE = "command.txt"
MODEL_FILE = "model.zip"
VECNORMALIZE_FILE = "vecnormalize.pkl"
METRICS_FILE = "metrics.json"
RUN_INFO_FILE = "run.json"
CHECKPOINTS_DIR = "checkpoints"
MONITOR_DIR = "monitor"

PACKAGE = "recurrent-control"
# The layout of a run folder. 1 added run.json; folders without it (0.1.0) are format 0 and
# load unchanged. Raise it when a folder written by this version cannot be read by older ones.
RUN_FORMAT = 1


def safe_name(text: str) -> str:
    """``text`` fit for a folder name (an env may be ``module:Class``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def run_name(config: TrainConfig) -> str:
    env = safe_name(config.env)
    return f"{env}__{config.algo}__{config.seed}__{time.strftime('%Y%m%d-%H%M%S')}"


def create_run_dir(
    config: TrainConfig, run_dir: str | Path | None = None, root: str | Path = RUNS_ROOT
) -> Path:
    """A new, empty run folder; never reuses one that holds anything."""
    path = Path(run_dir) if run_dir else Path(root) / run_name(config)
    if path.is_file():
        raise UserError(f"run folder {path} is a file; pass another --run-dir")
    if path.exists() and any(path.iterdir()):
        raise UserError(
            f"run folder {path} already exists and is not empty; pass another --run-dir "
            "(nothing was overwritten)"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file where a folder must go, no permission, a full disk
        raise UserError(
            f"cannot create run folder {path}: {error.strerror}; pass another --run-dir"
        ) from None
    return path


def save_config(run_dir: Path, config: TrainConfig, command: str | None = None) -> None:
    """config.yaml and run.json; ``command`` is appended to command.txt (one line a call)."""
    atomic.write_text(run_dir / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))
    atomic.write_json(
        run_dir / RUN_INFO_FILE,
        {"package": PACKAGE, "version": package_version(), "format": RUN_FORMAT},
    )
    if command is not None:
        atomic.append_text(run_dir / COMMAND_FILE, command + "\n")


# SB3 saves a model's attributes in model.zip: under this one the model carries its run's
# config, so that a model file copied out of its run folder still knows its env and wrappers.
MODEL_CONFIG_ATTRIBUTE = "run_config"


def attach_config(model: BaseAlgorithm, config: TrainConfig) -> None:
    """Give ``model`` its run's config, saved with it from then on (JSON types only, which SB3
    stores as they are and :func:`load` reads back without unpickling anything)."""
    setattr(model, MODEL_CONFIG_ATTRIBUTE, json.loads(json.dumps(config.to_dict(), default=str)))


def trained_env(model: BaseAlgorithm) -> str | None:
    """The env id ``model`` was trained on, if it carries its config (models trained since
    the config was attached)."""
    saved = getattr(model, MODEL_CONFIG_ATTRIBUTE, None)
    return saved.get("env") if isinstance(saved, dict) else None


def package_version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def read_config(path: Path) -> TrainConfig:
    """The config.yaml at ``path``, after checking that this version can read its folder."""
    written_by = _check_run_format(path.parent)
    try:
        values = yaml.safe_load(path.read_text())
        if not isinstance(values, dict):
            raise ValueError("not a mapping")
    except (yaml.YAMLError, ValueError, UnicodeDecodeError):
        raise UserError(
            f"{path} is corrupt (not a YAML mapping); restore it from the run"
        ) from None
    try:
        return from_dict(values)
    except UserError as error:
        if written_by == package_version():
            raise
        raise UserError(
            f"{path} was written by {PACKAGE} {written_by or '0.1.0'} and this is "
            f"{package_version()}: {error}"
        ) from None


def _check_run_format(run_dir: Path) -> str | None:
    """The version that wrote ``run_dir`` (None before run.json existed); UserError if its
    format is newer than this version reads."""
    path = run_dir / RUN_INFO_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
        written_by, run_format = str(info["version"]), int(info["format"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise UserError(f"{path} is corrupt; restore it from the run (or delete it)") from None
    if run_format > RUN_FORMAT:
        raise UserError(
            f"{run_dir} was written by {PACKAGE} {written_by} (run format {run_format}); this "
            f"is {package_version()}, which reads formats up to {RUN_FORMAT}: upgrade with "
            f"pip install -U {PACKAGE}"
        )
    return written_by


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    atomic.write_json(run_dir / METRICS_FILE, metrics)


@dataclass
class Run:
    """A trained model with the config that made it; ``make_env`` builds envs it can act in."""

    model: BaseAlgorithm
    config: TrainConfig
    model_path: Path
    vecnormalize_path: Path | None

    def make_env(
        self,
        n_envs: int = 1,
        seed: int = 0,
        render_mode: str | None = None,
        wrapper_class: type[gym.Wrapper] | None = None,
    ) -> VecEnv:
        """Envs the model can act in; UserError if their spaces are not the model's."""
        model_spaces = (self.model.observation_space, self.model.action_space)
        trained_on = trained_env(self.model)
        vec = make_vec(
            self.config,
            n_envs,
            seed,
            render_mode=render_mode,
            vecnormalize_path=self.vecnormalize_path,
            training=False,
            wrapper_class=wrapper_class,
            expected_spaces=model_spaces,
            trained_on=trained_on,
        )
        if (vec.observation_space, vec.action_space) != model_spaces:
            vec.close()
            raise spaces_mismatch(self.config.env, model_spaces, vec, trained_on)
        return vec


# Run folders saved before the package was split into subpackages pickled the policy class
# under its old module path; model.zip finds it there.
_MOVED_MODULES = {"agents.policies": "agents.recurrent.policies"}


def load(
    path: str | Path,
    env: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
) -> Run:
    """Load a run folder or a model .zip (a final model or a checkpoint).

    ``env`` / ``env_kwargs`` evaluate the model on another env than it was trained on (for
    example a longer variant); its spaces must match the model's, which ``Run.make_env``
    checks.
    """
    check_device(device)
    model_path = _find_model(Path(path))
    config = _find_config(model_path, env)
    changes: dict[str, Any] = {}
    if env is not None:
        changes["env"] = env
    if env_kwargs is not None:
        changes["env_kwargs"] = env_kwargs
    config = dataclasses.replace(config, **changes)
    model = load_model(model_path, config.algo, device)
    return Run(
        model, config, model_path, vecnormalize_path(model_path) if config.normalize else None
    )


def load_model(model_path: Path, algo: str, device: str = "cpu") -> BaseAlgorithm:
    """The model saved at ``model_path`` (final or checkpoint); UserError if it is corrupt."""
    for old, new in _MOVED_MODULES.items():
        sys.modules.setdefault(old, importlib.import_module(new))
    try:
        return algo_class(algo).load(str(model_path), device=device)
    except (zipfile.BadZipFile, zlib.error, ValueError, KeyError, EOFError, RuntimeError,
            AssertionError) as error:  # fmt: skip  # SB3 asserts that the zip holds its data
        raise UserError(
            f"cannot load {model_path} ({type(error).__name__}); the file is corrupt or "
            "truncated, or not a model of this package"
        ) from None


def _find_model(path: Path) -> Path:
    if path.is_dir():
        model = path / MODEL_FILE
        if not model.is_file():
            checkpoints = sorted((path / CHECKPOINTS_DIR).glob("*.zip"))
            hint = f"; checkpoints/ holds {checkpoints[-1].name}" if checkpoints else ""
            raise UserError(f"no {MODEL_FILE} in {path}: not a finished run folder{hint}")
        return model
    if path.is_file():
        if path.suffix != ".zip":
            raise UserError(f"{path} is not a model; pass a run folder or a model .zip")
        return path
    raise UserError(f"{path} does not exist; pass a run folder (runs/...) or a model .zip")


def _find_config(model_path: Path, env: str | None) -> TrainConfig:
    # a final model sits in the run folder, a checkpoint one level below it
    for folder in (model_path.parent, model_path.parent.parent):
        if (folder / CONFIG_FILE).is_file():
            return read_config(folder / CONFIG_FILE)
    data = _data_in_zip(model_path)
    saved = _config_in_zip(data)
    if saved is not None:
        return saved
    if env is None:
        raise UserError(
            f"no {CONFIG_FILE} beside {model_path}; pass --env to say which env it acts in"
        )
    return make_config(env=env, algo=_algo_in_zip(data))


def _data_in_zip(model_path: Path) -> dict[str, Any]:
    """The attributes SB3 saved in the model file (its JSON part; nothing is unpickled)."""
    try:
        with zipfile.ZipFile(model_path) as archive:
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{model_path} is corrupt or not a stable-baselines3 model") from None
    return data if isinstance(data, dict) else {}


def _config_in_zip(data: dict[str, Any]) -> TrainConfig | None:
    """The run's config the model carries (``attach_config``); None for a model saved without
    one (before this version, or by SB3 itself) or with one this version cannot read."""
    saved = data.get(MODEL_CONFIG_ATTRIBUTE)
    if not isinstance(saved, dict):
        return None
    try:
        return from_dict(saved)
    except UserError:
        return None


def _algo_in_zip(data: dict[str, Any]) -> str:
    """Recurrent or not, read from the saved policy class (frame stacking cannot be told)."""
    policy_module = data.get("policy_class", {}).get("__module__", "")
    return "recurrent_ppo" if "recurrent" in policy_module else "ppo"


def vecnormalize_path(model_path: Path) -> Path:
    """The normalisation statistics saved with a final model or a checkpoint."""
    # CheckpointCallback saves rl_model_1000_steps.zip beside rl_model_vecnormalize_1000_steps.pkl
    match = re.fullmatch(r"(.*)_(\d+)_steps", model_path.stem)
    if match and model_path.parent.name == CHECKPOINTS_DIR:
        return model_path.parent / f"{match[1]}_vecnormalize_{match[2]}_steps.pkl"
    return model_path.parent / VECNORMALIZE_FILE
