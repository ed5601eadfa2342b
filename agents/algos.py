"""How each algorithm's model is built and loaded.

- ``recurrent_ppo``: PPO with an LSTM (or GRU) between the features and the heads; the memory.
  Our subclass of sb3-contrib's RecurrentPPO, which trains on many short sequences at once
  (agents/recurrent/ppo.py).
- ``ppo``: feed-forward PPO on the current observation only; the memoryless baseline.
- ``ppo_framestack``: feed-forward PPO on the last ``frame_stack`` observations; the baseline
  that remembers a fixed window and nothing older.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from agents import schedules
from agents.config import ACTIVATIONS, TrainConfig
from agents.recurrent import RecurrentPPO


def algo_class(algo: str) -> type[BaseAlgorithm]:
    return RecurrentPPO if algo == "recurrent_ppo" else PPO


def is_recurrent(algo: str) -> bool:
    return algo == "recurrent_ppo"


def build_model(config: TrainConfig, env: VecEnv) -> BaseAlgorithm:
    policy_kwargs: dict[str, Any] = {
        "net_arch": dict(pi=list(config.net_arch), vf=list(config.net_arch)),
        "activation_fn": ACTIVATIONS[config.activation_fn],
        "ortho_init": config.ortho_init,
        "log_std_init": config.log_std_init,  # read by Gaussian policies only
    }
    extra: dict[str, Any] = {}
    if is_recurrent(config.algo):
        policy_kwargs.update(
            lstm_hidden_size=config.lstm_hidden_size,
            n_lstm_layers=config.n_lstm_layers,
            enable_critic_lstm=config.enable_critic_lstm and not config.shared_lstm,
            shared_lstm=config.shared_lstm,
            recurrent_cell=config.recurrent_cell,
            forget_bias=config.forget_bias,
            skip_connection=config.skip_connection,
            memory_lr_scale=config.memory_lr_scale,
            project_critic_input=False,  # a feed-forward critic reads its features, as PPO's
        )
        extra.update(
            bptt_length=config.bptt_length,
            recompute_states=config.recompute_states,
            state_loss_coef=config.state_loss_coef,
        )
        if config.critic_is_privileged:
            policy_kwargs["predict_state"] = config.state_loss_coef > 0
    return algo_class(config.algo)(
        _policy_name(config, env),
        env,
        n_steps=config.n_steps,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        learning_rate=_learning_rate(config),
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        clip_range=schedules.for_sb3(config.clip_range),
        ent_coef=schedules.start(config.ent_coef),  # annealed by schedules.EntropySchedule
        target_kl=config.target_kl,
        normalize_advantage=config.normalize_advantage,
        use_sde=config.use_sde,
        sde_sample_freq=config.sde_sample_freq,
        vf_coef=config.vf_coef,
        max_grad_norm=config.max_grad_norm,
        policy_kwargs=policy_kwargs,
        seed=config.seed,
        device=config.device,
        verbose=0,
        **extra,
    )


def _learning_rate(config: TrainConfig) -> float | Callable[[float], float]:
    if config.desired_kl is not None:  # adapted by schedules.KLAdaptation
        return schedules.KLAdaptiveRate(schedules.start(config.learning_rate), config.desired_kl)
    return schedules.for_sb3(config.learning_rate)


def _policy_name(config: TrainConfig, env: VecEnv) -> str:
    dict_observations = isinstance(env.observation_space, spaces.Dict)
    if not is_recurrent(config.algo):
        return "MultiInputPolicy" if dict_observations else "MlpPolicy"
    if config.critic_is_privileged:
        return "PrivilegedCriticLstmPolicy"
    return "MultiInputLstmPolicy" if dict_observations else "MlpLstmPolicy"
