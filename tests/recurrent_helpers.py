"""Small models and envs shared by the tests of the recurrent algorithm: a model whose buffer
holds rollouts collected without training, and the check that its sequences reproduce them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.buffers import RecurrentRolloutBuffer
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.env_util import make_vec_env

from agents.recurrent.policies import FastRecurrentPolicy
from agents.recurrent.ppo import RecurrentPPO

N_ENVS, N_STEPS, HIDDEN = 3, 24, 8
BATCH_SIZE = 20


class SplitObservation(gym.ObservationWrapper):
    """CartPole with a Dict observation, to exercise the Dict buffer and MultiInput policy."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        half = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.observation_space = spaces.Dict(cart=half, pole=half)

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        return {"cart": observation[:2], "pole": observation[2:]}


class BandImage(gym.ObservationWrapper):
    """CartPole seen as a 36 x 36 grey image (NatureCNN's smallest input): four vertical
    bands whose brightness encodes the four readings."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = spaces.Box(0, 255, (36, 36, 1), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        levels = np.clip(128 + 40 * observation, 0, 255).astype(np.uint8)
        return np.repeat(levels, 9)[None, :, None].repeat(36, axis=0)


OBSERVATIONS: dict[str, tuple[type[gym.Wrapper] | None, str]] = {
    "flat": (None, "MlpLstmPolicy"),
    "dict": (SplitObservation, "MultiInputLstmPolicy"),
    "image": (BandImage, "CnnLstmPolicy"),
}


def small_policy(**kwargs) -> FastRecurrentPolicy:
    """A two-layer recurrent policy for 3 readings and 2 actions."""
    return FastRecurrentPolicy(
        spaces.Box(-1, 1, (3,)),
        spaces.Discrete(2),
        lambda _: 1e-3,
        lstm_hidden_size=HIDDEN,
        n_lstm_layers=2,
        **kwargs,
    )


def act_side_by_side(
    first: RecurrentPPO, second: RecurrentPPO, env, steps: int
) -> Iterator[tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]]:
    """Both models act (deterministically, carrying their states) on the same observations of
    ``env``, stepped with the first's actions; checks that the actions agree and yields the
    two states after every step."""
    observations = env.reset()
    states: list = [None, None]
    starts = np.ones(env.num_envs, dtype=bool)
    for _ in range(steps):
        actions = []
        for i, agent in enumerate((first, second)):
            action, states[i] = agent.predict(observations, states[i], starts, deterministic=True)
            actions.append(action)
        np.testing.assert_array_equal(actions[0], actions[1])
        yield states[0], states[1]
        observations, _, starts, _ = env.step(actions[0])


def rollout_only_model(
    bptt_length: int | None,
    cell: str,
    seed: int = 0,
    observations: str = "flat",
    n_rollouts: int = 1,
    max_episode_steps: int | None = None,
    after_rollout: Callable[[RecurrentPPO], None] | None = None,
    **policy_kwargs: Any,
) -> RecurrentPPO:
    """A model that collects ``n_rollouts`` rollouts of CartPole with its initial parameters
    (``train`` only calls ``after_rollout``); its buffer holds the last one. ``policy_kwargs``
    add to the policy's."""
    wrapper, policy = OBSERVATIONS[observations]
    env_kwargs = {"max_episode_steps": max_episode_steps} if max_episode_steps else None
    env = make_vec_env(
        "CartPole-v1", n_envs=N_ENVS, seed=seed, wrapper_class=wrapper, env_kwargs=env_kwargs
    )
    model = RecurrentPPO(
        policy,
        env,
        n_steps=N_STEPS * 2,
        batch_size=BATCH_SIZE,
        bptt_length=bptt_length,
        policy_kwargs=dict(lstm_hidden_size=HIDDEN, recurrent_cell=cell, **policy_kwargs),
        seed=seed,
    )
    model.train = lambda: after_rollout and after_rollout(model)  # type: ignore[method-assign]
    model.learn(N_STEPS * 2 * N_ENVS * n_rollouts)
    del model.train  # PPO's again, and nothing unpicklable for model.save
    return model


def assert_sequences_reproduce_the_rollout(model: RecurrentPPO) -> list[th.Tensor]:
    """Every training sequence, run from its stored start state and reset only at episode
    starts, gives the values and log-probs of the rollout again; returns the sequences'
    start states (actor h) where the first step is not an episode start.

    Holds only if the state bookkeeping is exact: a bptt cut must start from the stored state
    without reset and an episode start must reset; any slip changes values and log-probs.
    """
    carried, served = [], 0
    for sample in model.rollout_buffer.get(batch_size=BATCH_SIZE):
        mask = sample.mask > 0
        n_seq = sample.lstm_states.pi[0].shape[1]
        starts = sample.episode_starts.reshape(n_seq, -1)
        if model.bptt_length is not None:
            assert int(mask.reshape(n_seq, -1).sum(dim=1).max()) <= model.bptt_length
        # Episode starts, if any, sit at the first step of a sequence.
        assert not starts[:, 1:].any()
        with th.no_grad():
            values, log_prob, _ = model.policy.evaluate_actions(
                sample.observations,
                sample.actions.long().flatten(),
                sample.lstm_states,
                sample.episode_starts,
            )
        th.testing.assert_close(values.flatten()[mask], sample.old_values[mask], atol=1e-5, rtol=0)
        th.testing.assert_close(log_prob[mask], sample.old_log_prob[mask], atol=1e-5, rtol=0)
        carried.extend(sample.lstm_states.pi[0][:, starts[:, 0] == 0].unbind(dim=1))
        served += int(mask.sum())
    assert served == N_STEPS * 2 * N_ENVS, "every step is served exactly once per epoch"
    return carried


def filled_stock_buffer(
    policy: RecurrentActorCriticPolicy, rng: np.random.Generator
) -> RecurrentRolloutBuffer:
    """A stock buffer of random steps: episode starts mid-buffer in several envs, random states."""
    lstm = policy.lstm_actor
    state_shape = (N_STEPS, lstm.num_layers, N_ENVS, lstm.hidden_size)
    buffer = RecurrentRolloutBuffer(
        N_STEPS, policy.observation_space, policy.action_space, state_shape, "cpu", n_envs=N_ENVS
    )
    for step in range(N_STEPS):
        starts = (rng.random(N_ENVS) < 0.2) | (step == 0)
        states = [th.randn(lstm.num_layers, N_ENVS, lstm.hidden_size) for _ in range(4)]
        actions = np.stack([policy.action_space.sample() for _ in range(N_ENVS)])
        buffer.add(
            rng.standard_normal((N_ENVS, *policy.observation_space.shape)).astype(np.float32),
            actions.reshape(N_ENVS, -1),
            rng.standard_normal(N_ENVS),
            starts.astype(np.float32),
            th.randn(N_ENVS, 1),
            th.randn(N_ENVS),
            lstm_states=RNNStates(tuple(states[:2]), tuple(states[2:])),
        )
    buffer.compute_returns_and_advantage(last_values=th.zeros(N_ENVS, 1), dones=np.zeros(N_ENVS))
    return buffer


def outputs_and_grads(policy, sample, discrete: bool) -> tuple[list[th.Tensor], dict]:
    actions = sample.actions.long().flatten() if discrete else sample.actions
    policy.zero_grad()
    values, log_prob, entropy = policy.evaluate_actions(
        sample.observations, actions, sample.lstm_states, sample.episode_starts
    )
    mask = sample.mask
    # A loss that reaches every parameter through values, log-probs and entropy.
    loss = (values.flatten() * mask).sum() + (log_prob * mask).sum() + (entropy * mask).sum()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}
    return [values.flatten() * mask, log_prob * mask, entropy * mask], grads
