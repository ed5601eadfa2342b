"""Training: config -> vectorised env -> model -> callbacks -> a complete run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.logger import configure

from agents.algos import build_model
from agents.config import TrainConfig, from_dict, make_config
from agents.devices import check_device
from agents.environments import make_single_env, make_vec, with_agent_inputs
from agents.errors import UserError
from agents.evaluation import evaluate
from agents.insight.plots import LEARNING_CURVE_FILE, plot_learning_curve, save_png
from agents.progress import progress_callback
from agents.runs import (
    CHECKPOINTS_DIR,
    MODEL_FILE,
    MONITOR_DIR,
    RUNS_ROOT,
    VECNORMALIZE_FILE,
    create_run_dir,
    load,
    save_config,
    write_metrics,
)
from agents.schedules import EntropySchedule

FINAL_EVAL_SEED_OFFSET = 1_000_000  # final evaluation episodes are not the training episodes


class TrainingInterrupted(Exception):
    """Ctrl-C during training; the model so far was saved in ``run_dir``."""

    def __init__(self, run_dir: Path, timesteps: int) -> None:
        super().__init__(f"training interrupted after {timesteps} steps; model saved in {run_dir}")
        self.run_dir = run_dir


def train(
    config: TrainConfig | None = None,
    *,
    run_dir: str | Path | None = None,
    runs_root: str | Path = RUNS_ROOT,
    command: str | None = None,
    after_eval: BaseCallback | None = None,
    **fields: Any,
) -> Path:
    """Train one agent and return its run folder (which also holds metrics.json).

    Either pass a ``TrainConfig``, or its fields as keywords (``env="MemoryStates-v0",
    algo="ppo", n_timesteps=20_000``); keywords also override a given config. ``env`` may be a
    registered id, ``"module:Class"``, or an env class itself. ``after_eval`` is called after
    every periodic evaluation, with the ``EvalCallback`` as its ``parent`` (tuning prunes there).
    """
    if isinstance(fields.get("env"), type):
        cls = fields["env"]
        fields["env"] = f"{cls.__module__}:{cls.__qualname__}"
    if config is None:
        config = make_config(**fields)
    elif fields:
        config = from_dict({**config.to_dict(), **fields}).validate()
    _check_runnable(config)
    torch.set_num_threads(config.torch_threads)
    run_dir = create_run_dir(config, run_dir, runs_root)
    save_config(run_dir, config, command)

    env = make_vec(config, config.n_envs, config.seed, monitor_dir=run_dir / MONITOR_DIR)
    model = build_model(config, env)
    model.set_logger(configure(str(run_dir), ["tensorboard", "csv"]))
    callbacks = _callbacks(config, run_dir, after_eval)
    try:
        model.learn(config.n_timesteps, callback=callbacks)
    except KeyboardInterrupt:
        _save(model, run_dir)
        raise TrainingInterrupted(run_dir, model.num_timesteps) from None
    finally:  # also when a trial is pruned or diverges, so that no env process is left
        env.close()
        for callback in callbacks:
            if isinstance(callback, EvalCallback):
                callback.eval_env.close()
    _save(model, run_dir)

    metrics = evaluate(
        load(run_dir, device=config.device),
        n_episodes=config.final_eval_episodes,
        seed=config.seed + FINAL_EVAL_SEED_OFFSET,
        n_envs=min(config.n_envs, config.final_eval_episodes),
    )
    write_metrics(run_dir, {**metrics, "n_timesteps": model.num_timesteps})
    save_png(plot_learning_curve(run_dir), run_dir / LEARNING_CURVE_FILE)
    return run_dir


def _check_runnable(config: TrainConfig) -> None:
    """Fail on a bad env, env argument, input wrapper or device before a run folder exists."""
    check_device(config.device)
    env = with_agent_inputs(make_single_env(config.env, config.env_kwargs), config)
    env.close()
    if config.use_sde and not isinstance(env.action_space, gym.spaces.Box):
        raise UserError(
            f"use_sde explores in continuous actions, but {config.env} acts in "
            f"{env.action_space}; set use_sde=false"
        )


def _callbacks(
    config: TrainConfig, run_dir: Path, after_eval: BaseCallback | None = None
) -> list[BaseCallback]:
    callbacks: list[BaseCallback] = []
    if isinstance(config.ent_coef, str):
        callbacks.append(EntropySchedule(config.ent_coef))
    if config.eval_freq > 0:
        # SB3's evaluate_policy carries the recurrent state and resets it at episode starts;
        # statistics of normalised envs are synced into the frozen eval env before each use.
        n_eval_envs = min(config.n_envs, config.eval_episodes)
        eval_env = make_vec(
            config, n_eval_envs, config.seed + FINAL_EVAL_SEED_OFFSET // 2, training=False
        )
        callbacks.append(
            EvalCallback(
                eval_env,
                n_eval_episodes=config.eval_episodes,
                eval_freq=max(config.eval_freq // config.n_envs, 1),
                log_path=str(run_dir),
                deterministic=True,
                callback_after_eval=after_eval,
                verbose=0,
            )
        )
    if config.checkpoint_freq > 0:
        callbacks.append(
            CheckpointCallback(
                save_freq=max(config.checkpoint_freq // config.n_envs, 1),
                save_path=str(run_dir / CHECKPOINTS_DIR),
                save_vecnormalize=config.normalize,
            )
        )
    callbacks.append(progress_callback(config.progress, callbacks))
    return callbacks


def _save(model: BaseAlgorithm, run_dir: Path) -> None:
    model.save(run_dir / MODEL_FILE)
    normalization = model.get_vec_normalize_env()
    if normalization is not None:
        normalization.save(str(run_dir / VECNORMALIZE_FILE))
