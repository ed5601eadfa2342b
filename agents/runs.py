"""The run folder: its layout, saving, and loading a trained model with the env it needs.

``runs/<env>__<algo>__<seed>__<timestamp>/`` holds config.yaml (resolved), command.txt,
model.zip, vecnormalize.pkl (when normalising), monitor/ CSVs, evaluations.npz, TensorBoard
events, progress.csv, checkpoints/ and metrics.json: everything needed to reload, evaluate
and reproduce the run.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

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
CHECKPOINTS_DIR = "checkpoints"
MONITOR_DIR = "monitor"


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
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(
            f"run folder {path} already exists and is not empty; pass another --run-dir "
            "(nothing was overwritten)"
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_config(run_dir: Path, config: TrainConfig, command: str | None = None) -> None:
    with open(run_dir / CONFIG_FILE, "w") as file:
        yaml.safe_dump(config.to_dict(), file, sort_keys=False)
    if command is not None:
        (run_dir / COMMAND_FILE).write_text(command + "\n")


def read_config(path: Path) -> TrainConfig:
    try:
        values = yaml.safe_load(path.read_text())
        if not isinstance(values, dict):
            raise ValueError("not a mapping")
    except (yaml.YAMLError, ValueError):
        raise UserError(
            f"{path} is corrupt (not a YAML mapping); restore it from the run"
        ) from None
    return from_dict(values)


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")


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
        vec = make_vec(
            self.config,
            n_envs,
            seed,
            render_mode=render_mode,
            vecnormalize_path=self.vecnormalize_path,
            training=False,
            wrapper_class=wrapper_class,
            expected_spaces=model_spaces,
        )
        if (vec.observation_space, vec.action_space) != model_spaces:
            vec.close()
            raise spaces_mismatch(self.config.env, model_spaces, vec)
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
    for old, new in _MOVED_MODULES.items():
        sys.modules.setdefault(old, importlib.import_module(new))
    try:
        model = algo_class(config.algo).load(str(model_path), device=device)
    except (zipfile.BadZipFile, ValueError, KeyError, EOFError, RuntimeError) as error:
        raise UserError(
            f"cannot load {model_path} ({type(error).__name__}); the file is corrupt "
            "or not a model of this package"
        ) from None
    return Run(
        model, config, model_path, _vecnormalize_path(model_path) if config.normalize else None
    )


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
    if env is None:
        raise UserError(
            f"no {CONFIG_FILE} beside {model_path}; pass --env to say which env it acts in"
        )
    return make_config(env=env, algo=_algo_in_zip(model_path))


def _algo_in_zip(model_path: Path) -> str:
    """Recurrent or not, read from the saved policy class (frame stacking cannot be told)."""
    try:
        with zipfile.ZipFile(model_path) as archive:
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError):
        raise UserError(f"{model_path} is corrupt or not a stable-baselines3 model") from None
    policy_module = data.get("policy_class", {}).get("__module__", "")
    return "recurrent_ppo" if "recurrent" in policy_module else "ppo"


def _vecnormalize_path(model_path: Path) -> Path:
    # CheckpointCallback saves rl_model_1000_steps.zip beside rl_model_vecnormalize_1000_steps.pkl
    match = re.fullmatch(r"(.*)_(\d+)_steps", model_path.stem)
    if match and model_path.parent.name == CHECKPOINTS_DIR:
        return model_path.parent / f"{match[1]}_vecnormalize_{match[2]}_steps.pkl"
    return model_path.parent / VECNORMALIZE_FILE
