"""The recurrent state across rollouts, time limits and bootstrapping; images; the GRU against
a reference; settings a cell or a device cannot take."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.torch_layers import NatureCNN
from stable_baselines3.common.vec_env import VecEnvWrapper

import agents.recurrent.cells as cells
import agents.recurrent.policies as policies
from agents.config import TrainConfig, make_config
from agents.errors import UserError
from agents.recurrent.buffers import SequenceRolloutBuffer
from agents.recurrent.cells import GRUWithCellPlaceholder, fused_adam_supported
from agents.recurrent.policies import FastRecurrentPolicy
from agents.recurrent.ppo import RecurrentPPO
from tests.recurrent_helpers import (
    BATCH_SIZE,
    HIDDEN,
    N_ENVS,
    N_STEPS,
    act_side_by_side,
    assert_sequences_reproduce_the_rollout,
    filled_stock_buffer,
    outputs_and_grads,
    rollout_only_model,
    small_policy,
)

TIME_LIMIT = 7  # CartPole episodes of an untrained policy last ~20 steps: most are cut here


def _copy_of_buffer(model: RecurrentPPO) -> dict[str, np.ndarray]:
    names = ("observations", "episode_starts", "rewards", "hidden_states_pi", "cell_states_pi")
    return {name: np.copy(getattr(model.rollout_buffer, name)) for name in names}


@pytest.mark.parametrize("max_episode_steps", [None, TIME_LIMIT], ids=["ends", "time-limit"])
def test_state_is_carried_across_the_rollout_boundary(max_episode_steps):
    """Replayed through the actor's nn.LSTM from the first stored state, resetting at episode
    starts (time-limit truncations included), two rollouts give exactly the states stored
    before each step: in particular the first state of the second rollout is the state the
    first rollout ended with. Sequences of the second rollout that start from such carried
    states then reproduce the rollout's values and log-probs."""
    rollouts: list[dict[str, np.ndarray]] = []
    model = rollout_only_model(
        5,
        "lstm",
        n_rollouts=2,
        max_episode_steps=max_episode_steps,
        after_rollout=lambda model: rollouts.append(_copy_of_buffer(model)),
    )
    both = {name: np.concatenate([r[name] for r in rollouts]) for name in rollouts[0]}
    lstm = model.policy.lstm_actor
    state = (th.as_tensor(both["hidden_states_pi"][0]), th.as_tensor(both["cell_states_pi"][0]))
    with th.no_grad():
        for t, observation in enumerate(both["observations"]):
            np.testing.assert_allclose(state[0], both["hidden_states_pi"][t], atol=1e-5)
            np.testing.assert_allclose(state[1], both["cell_states_pi"][t], atol=1e-5)
            keep = 1.0 - th.as_tensor(both["episode_starts"][t], dtype=th.float32).view(1, -1, 1)
            _, state = lstm(th.as_tensor(observation)[None], (keep * state[0], keep * state[1]))

    second = rollouts[1]
    continuing = second["episode_starts"][0] == 0
    assert continuing.any(), "an episode should run across the rollout boundary"
    assert np.abs(second["hidden_states_pi"][0][:, continuing]).min() > 0
    if max_episode_steps:
        env_starts = np.flatnonzero(both["episode_starts"][:, 0])
        assert (np.diff(env_starts) == TIME_LIMIT).sum() >= 3, "episodes cut by the time limit"
    carried = assert_sequences_reproduce_the_rollout(model)
    assert any(state.abs().sum() > 0 for state in carried)


class TruncatedEpisodes(VecEnvWrapper):
    """Records (step, env, terminal observation, reward) of every episode cut by its time
    limit, as the vectorised env reports them to the algorithm."""

    def __init__(self, venv) -> None:
        super().__init__(venv)
        self.steps = 0
        self.truncated: list[tuple[int, int, np.ndarray, float]] = []

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        observations, rewards, dones, infos = self.venv.step_wait()
        for env, info in enumerate(infos):
            if info.get("TimeLimit.truncated"):
                self.truncated.append(
                    (self.steps, env, info["terminal_observation"], float(rewards[env]))
                )
        self.steps += 1
        return observations, rewards, dones, infos


def test_critic_bootstraps_a_truncated_episode_from_its_own_carried_state():
    """A time-limit cut is not a failure: its last reward gets gamma * V(terminal observation),
    and V must be the critic's given the whole episode so far, i.e. its own recurrent state
    after the last step (sb3-contrib passes lstm_states.vf), not a fresh state and not the
    actor's. Recomputed here by running the critic over the episode and the terminal
    observation in one sequence."""
    env = TruncatedEpisodes(
        make_vec_env(
            "CartPole-v1", n_envs=N_ENVS, seed=0, env_kwargs={"max_episode_steps": TIME_LIMIT}
        )
    )
    model = RecurrentPPO(
        "MlpLstmPolicy",
        env,
        n_steps=N_STEPS * 2,
        batch_size=BATCH_SIZE,
        policy_kwargs=dict(lstm_hidden_size=HIDDEN, enable_critic_lstm=True),
        seed=0,
    )
    rollout: dict[str, np.ndarray] = {}
    model.train = lambda: rollout.update(_copy_of_buffer(model))  # type: ignore[method-assign]
    model.learn(N_STEPS * 2 * N_ENVS)
    policy, fresh_differs = model.policy, 0
    zeros = tuple(th.zeros(1, 1, HIDDEN) for _ in range(2))
    assert len(env.truncated) >= 3
    for step, index, terminal, reward in env.truncated:
        first = np.flatnonzero(rollout["episode_starts"][: step + 1, index])[-1]
        episode = np.concatenate([rollout["observations"][first : step + 1, index], [terminal]])
        starts = th.zeros(len(episode))
        starts[0] = 1.0
        with th.no_grad():
            values = policy.predict_values(th.as_tensor(episode), zeros, starts).flatten()
            fresh = policy.predict_values(th.as_tensor(terminal)[None], zeros, th.ones(1))
        expected = reward + model.gamma * float(values[-1])
        assert rollout["rewards"][step, index] == pytest.approx(expected, abs=1e-5)
        fresh_differs += abs(float(fresh) - float(values[-1])) > 1e-4
    assert fresh_differs, "the check must tell the carried state from a fresh one"


def test_cnn_lstm_policy_on_images_reproduces_its_rollout_and_reloads(tmp_path):
    model = rollout_only_model(5, "lstm", observations="image")
    assert isinstance(model.policy.features_extractor, NatureCNN)
    assert model.observation_space.shape == (1, 36, 36)  # SB3 moved the channel first
    assert_sequences_reproduce_the_rollout(model)

    model.save(tmp_path / "model.zip")
    loaded = RecurrentPPO.load(tmp_path / "model.zip")
    for state, loaded_state in act_side_by_side(model, loaded, model.get_env(), 10):
        np.testing.assert_array_equal(state[0], loaded_state[0])


def test_gru_outputs_and_gradients_match_a_step_by_step_reference():
    """sb3-contrib's policy runs a minibatch one time step at a time (its reference path for
    sequences with resets); given our GRU with the same weights it must compute the same
    values, log-probs, entropies and gradients as our one call per minibatch."""
    observation_space, action_space = spaces.Box(-5, 5, (4,)), spaces.Discrete(3)
    kwargs = dict(lstm_hidden_size=HIDDEN, n_lstm_layers=2, enable_critic_lstm=True)
    th.manual_seed(0)
    ours = FastRecurrentPolicy(
        observation_space, action_space, lambda _: 1e-3, recurrent_cell="gru", **kwargs
    )
    reference = RecurrentActorCriticPolicy(
        observation_space, action_space, lambda _: 1e-3, **kwargs
    )
    for name in ("lstm_actor", "lstm_critic"):
        setattr(reference, name, GRUWithCellPlaceholder(reference.features_dim, HIDDEN, 2))
    reference.load_state_dict(ours.state_dict())

    buffer = filled_stock_buffer(reference, np.random.default_rng(1))
    assert buffer.episode_starts[1:].any(), "the test needs episode starts mid-buffer"
    np.random.seed(2)
    for sample in buffer.get(17):
        expected, expected_grads = outputs_and_grads(reference, sample, discrete=True)
        actual, actual_grads = outputs_and_grads(ours, sample, discrete=True)
        for a, b in zip(actual, expected, strict=True):
            th.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        assert actual_grads.keys() == expected_grads.keys()
        assert any("weight_hh" in name for name in actual_grads)
        for name, grad in expected_grads.items():
            th.testing.assert_close(actual_grads[name], grad, atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize(
    ("cell", "lstm_kwargs", "message"),
    [
        ("gru", dict(proj_size=4), "proj_size applies to an LSTM only"),
        ("lstm", dict(proj_size=4), "'proj_size' is not supported"),
        ("lstm", dict(batch_first=True), "time-major"),
        ("gru", dict(bidirectional=True), "cannot read the steps to come"),
    ],
)
def test_lstm_kwargs_a_cell_cannot_take_are_refused(cell, lstm_kwargs, message):
    with pytest.raises(ValueError, match=message):
        RecurrentPPO(
            "MlpLstmPolicy",
            "CartPole-v1",
            policy_kwargs=dict(recurrent_cell=cell, lstm_kwargs=lstm_kwargs),
        )


def test_lstm_kwargs_that_fit_reach_the_gru_of_actor_and_critic():
    policy = small_policy(recurrent_cell="gru", lstm_kwargs=dict(dropout=0.25, bias=False))
    for rnn in (policy.lstm_actor, policy.lstm_critic):
        assert isinstance(rnn, GRUWithCellPlaceholder)
        assert rnn.dropout == 0.25 and rnn.bias is False


def test_fused_adam_only_where_torch_supports_it_on_the_device(tmp_path, monkeypatch):
    def fused(model: RecurrentPPO) -> list[bool]:
        return [group["fused"] for group in model.policy.optimizer.param_groups]

    model = RecurrentPPO("MlpLstmPolicy", "CartPole-v1", n_steps=16, batch_size=16)
    assert fused(model) == [fused_adam_supported("cpu")]
    model.save(tmp_path / "model.zip")
    # a device without fused kernels: a new model, and one saved where they exist
    monkeypatch.setattr(cells, "fused_adam_supported", lambda device_type: False)
    monkeypatch.setattr(policies, "fused_adam_supported", lambda device_type: False)
    assert fused(RecurrentPPO("MlpLstmPolicy", "CartPole-v1", n_steps=16)) == [False]
    loaded = RecurrentPPO.load(tmp_path / "model.zip", env=make_vec_env("CartPole-v1"))
    assert fused(loaded) == [False]
    loaded.learn(32)
    assert all(th.isfinite(p).all() for p in loaded.policy.parameters())


@pytest.mark.parametrize(
    "build",
    [
        lambda: make_config(overrides={"bptt_length": True}),
        lambda: TrainConfig(bptt_length=True).validate(),
        lambda: RecurrentPPO("MlpLstmPolicy", "CartPole-v1", bptt_length=True),
        lambda: SequenceRolloutBuffer(
            8, spaces.Box(-1, 1, (3,)), spaces.Discrete(2), (8, 1, 1, 4), bptt_length=True
        ),
    ],
    ids=["set", "config", "algorithm", "buffer"],
)
def test_bptt_length_true_is_refused_everywhere(build):
    """True is an int to Python; as a length it would silently mean 1."""
    with pytest.raises((ValueError, UserError), match="bptt_length"):
        build()
