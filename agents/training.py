"""Training: config -> vectorised env -> model -> callbacks -> a complete run folder."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback

from agents.algos import build_model
from agents.callbacks import Checkpoints, Evaluations, run_logger, save_model
from agents.config import TrainConfig, from_dict, make_config
from agents.devices import check_device
from agents.environments import (
    check_first_observation,
    make_single_env,
    make_vec,
    with_agent_inputs,
)
from agents.errors import UserError
from agents.evaluation import evaluate
from agents.insight.plots import LEARNING_CURVE_FILE, plot_learning_curve, save_png
from agents.interruption import SIGNAL_NAMES, Interrupted, StopOnSignal
from agents.progress import progress_callback
from agents.runs import (
    CHECKPOINTS_DIR,
    MODEL_FILE,
    MONITOR_DIR,
    RUNS_ROOT,
    VECNORMALIZE_FILE,
    attach_config,
    create_run_dir,
    load,
    save_config,
    write_metrics,
)
from agents.schedules import EntropySchedule, KLAdaptation

FINAL_EVAL_SEED_OFFSET = 1_000_000  # final evaluation episodes are not the training episodes
INTERRUPTED_EVAL_EPISODES = 20  # after Ctrl-C: a brief look at the model so far


class TrainingInterrupted(Exception):
    """SIGINT (Ctrl-C) or SIGTERM during training; the model so far was saved in ``run_dir``."""

    def __init__(self, run_dir: Path, timesteps: int, signum: int = signal.SIGINT) -> None:
        super().__init__(
            f"training interrupted ({SIGNAL_NAMES.get(signum, signum)}) after {timesteps} "
            f"steps; model saved in {run_dir}; continue with: "
            f"python train.py --resume {run_dir}"
        )
        self.run_dir = run_dir
        self.signum = signum


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
    return learn(build_model(config, env), config, run_dir, after_eval)


def learn(
    model: BaseAlgorithm,
    config: TrainConfig,
    run_dir: Path,
    after_eval: BaseCallback | None = None,
) -> Path:
    """Train ``model`` in its env until it has taken ``config.n_timesteps`` steps in all (a
    resumed model continues its count), save it and evaluate it into metrics.json.

    SIGINT and SIGTERM stop training cleanly (agents/interruption.py): the model so far is
    saved and ``TrainingInterrupted`` raised. After Ctrl-C the saved model is first evaluated
    briefly, so that the folder is as complete as a finished run's (a second Ctrl-C skips
    that); after SIGTERM, which a scheduler follows with SIGKILL, it is not.
    """
    model.set_logger(run_logger(run_dir))
    attach_config(model, config)  # saved in every model.zip and checkpoint of the run
    callbacks = _callbacks(config, run_dir, after_eval)
    with StopOnSignal().installed() as stop:
        try:
            if model.num_timesteps < config.n_timesteps:
                model.learn(
                    config.n_timesteps - model.num_timesteps,
                    callback=[stop, *callbacks],
                    reset_num_timesteps=False,  # a resumed model goes on counting
                )
        except Interrupted:  # a second signal; stop.signum says which came first
            pass
        except BaseException:  # a pruned or diverged trial: leave no env process behind
            model.get_env().close()
            raise
        finally:
            with stop.phase("defer"):
                for callback in callbacks:
                    if isinstance(callback, EvalCallback):
                        callback.eval_env.close()
                model.logger.close()
        with stop.phase("defer"):
            if stop.signum is not None:
                # the steps of an unfinished rollout were never trained on
                model.num_timesteps = min(model.num_timesteps, stop.steps_trained)
            _save(model, run_dir)
            model.get_env().close()
        if stop.signum is None:
            episodes = config.final_eval_episodes
        elif stop.signum == signal.SIGINT and len(stop.signals) == 1:
            episodes = min(config.final_eval_episodes, INTERRUPTED_EVAL_EPISODES)
            print(f"Saved in {run_dir}. Evaluating it briefly (Ctrl-C to skip) ...", flush=True)
        else:
            raise TrainingInterrupted(run_dir, model.num_timesteps, stop.signum)
        try:
            with stop.phase("skip"):
                _finish(run_dir, config, model.num_timesteps, episodes, stop.signum is not None)
        except Interrupted:
            print("Evaluation skipped.", flush=True)
    if stop.signals:
        raise TrainingInterrupted(run_dir, model.num_timesteps, stop.signum)
    return run_dir


def _finish(
    run_dir: Path, config: TrainConfig, timesteps: int, episodes: int, interrupted: bool = False
) -> None:
    """metrics.json (the saved model evaluated on fresh episodes) and the learning curve."""
    metrics = evaluate(
        load(run_dir, device=config.device),
        n_episodes=episodes,
        seed=config.seed + FINAL_EVAL_SEED_OFFSET,
        n_envs=min(config.n_envs, episodes),
    )
    metrics["n_timesteps"] = timesteps
    if interrupted:
        metrics["interrupted"] = True
    write_metrics(run_dir, metrics)
    save_png(plot_learning_curve(run_dir), run_dir / LEARNING_CURVE_FILE)


def _check_runnable(config: TrainConfig) -> None:
    """Fail on a bad env, env argument, input wrapper or device before a run folder exists."""
    check_device(config.device)
    single = make_single_env(config.env, config.env_kwargs)
    check_first_observation(config.env, single, config.seed)
    env = with_agent_inputs(single, config)
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
    if config.desired_kl is not None:
        callbacks.append(KLAdaptation())
    if config.eval_freq > 0:
        # SB3's evaluate_policy carries the recurrent state and resets it at episode starts;
        # statistics of normalised envs are synced into the frozen eval env before each use.
        n_eval_envs = min(config.n_envs, config.eval_episodes)
        eval_env = make_vec(
            config, n_eval_envs, config.seed + FINAL_EVAL_SEED_OFFSET // 2, training=False
        )
        callbacks.append(
            Evaluations(
                eval_env,
                run_dir,
                n_eval_episodes=config.eval_episodes,
                eval_freq=max(config.eval_freq // config.n_envs, 1),
                deterministic=True,
                callback_after_eval=after_eval,
                verbose=0,
            )
        )
    if config.checkpoint_freq > 0:
        callbacks.append(Checkpoints(run_dir / CHECKPOINTS_DIR, config.checkpoint_freq))
    callbacks.append(progress_callback(config.progress, callbacks))
    return callbacks


def _save(model: BaseAlgorithm, run_dir: Path) -> None:
    save_model(model, run_dir / MODEL_FILE, run_dir / VECNORMALIZE_FILE)
