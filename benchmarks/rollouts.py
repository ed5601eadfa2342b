"""One training rollout of a model, and what its policy says of it, for the scripts that study
a policy on the data it trains on (kl_sensitivity.py, exploration_noise.py)."""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv


def training_rollout(model: BaseAlgorithm, env: VecEnv) -> list[Any]:
    """One rollout of the model's ``n_steps`` on ``env``, collected as ``learn()`` collects it
    (every env starting an episode, the policy in eval mode), served as the model's minibatches
    (whole sequences for a recurrent model)."""
    model.env = env
    _, callback = model._setup_learn(model.n_steps * env.num_envs)  # resets env, as learn()
    model.policy.set_training_mode(False)
    model.collect_rollouts(env, callback, model.rollout_buffer, model.n_steps)
    return list(model.rollout_buffer.get(model.batch_size))


def evaluate_batch(policy: Any, batch: Any) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """The policy's log-probabilities of a minibatch's actions, its entropies, and which steps
    are real (a recurrent minibatch pads its sequences)."""
    if hasattr(batch, "lstm_states"):
        _, log_prob, entropy = policy.evaluate_actions(
            batch.observations, batch.actions, batch.lstm_states, batch.episode_starts
        )
        return log_prob, entropy, batch.mask > 1e-8
    _, log_prob, entropy = policy.evaluate_actions(batch.observations, batch.actions)
    return log_prob, entropy, th.ones_like(log_prob, dtype=th.bool)
