"""What the networks read besides the observation: previous action and reward, and the
privileged critic's hidden state (agents/inputs.py, agents/recurrent/policies.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.policies import BaseModel

import agents
from agents.algos import build_model
from agents.config import make_config
from agents.environments import make_vec
from agents.errors import UserError
from agents.inputs import (
    PreviousStep,
    PrivilegedObservation,
    previous_step_layout,
    privileged_state,
)
from agents.insight.traces import record_trace
from envs.wrappers import MaskObservation, SensorDropout

TINY = dict(n_envs=2, n_steps=32, batch_size=32, n_epochs=1, eval_freq=0, progress=False)


@pytest.mark.parametrize(
    ("env_id", "action", "encoded"),
    [
        ("TMaze-v0", 2, [0.0, 0.0, 1.0, 0.0]),  # Discrete(4): one-hot
        ("Timer-v0", np.array([0.25], np.float32), [0.25]),  # Box: the action itself
    ],
)
def test_previous_action_and_reward_follow_each_step_and_reset_to_zero(env_id, action, encoded):
    env = PreviousStep(gym.make(env_id), action=True, reward=True)
    observation, _ = env.reset(seed=0)
    size = env.unwrapped.observation_space.shape[0]
    assert env.observation_space.shape == (size + len(encoded) + 1,)
    assert observation[size:].tolist() == [0.0] * (len(encoded) + 1)
    observation, reward, *_ = env.step(action)
    np.testing.assert_allclose(observation[size:], [*encoded, reward])
    assert env.observation_space.contains(observation)
    observation, _ = env.reset()
    assert not observation[size:].any()


def test_previous_observation_is_the_last_reading_and_the_first_after_a_reset():
    env = PreviousStep(gym.make("Pendulum-v1"), action=False, reward=True, observation=True)
    assert env.observation_space.shape == (3 + 3 + 1,)
    first, _ = env.reset(seed=0)
    np.testing.assert_array_equal(first[3:6], first[:3])  # no change yet
    second, reward, *_ = env.step(np.array([1.0], np.float32))
    third, *_ = env.step(np.array([1.0], np.float32))
    np.testing.assert_array_equal(second[3:6], first[:3])
    np.testing.assert_array_equal(third[3:6], second[:3])
    assert second[6] == np.float32(reward)
    assert not np.array_equal(third[:3], third[3:6])  # the pendulum moved
    again, _ = env.reset(seed=1)
    np.testing.assert_array_equal(again[3:6], again[:3])


def test_hiding_wrappers_pass_the_full_reading_on_as_privileged():
    env = SensorDropout(MaskObservation(gym.make("Hopper-v5"), keep=["positions"]), start_prob=1)
    observation, info = env.reset(seed=0)
    full = info["privileged"]
    assert full.shape == (11,)  # the whole Hopper reading, not the masked one
    assert not observation[:5].any()  # dropped out at once (start_prob 1)
    _, _, _, _, info = env.step(env.action_space.sample())
    np.testing.assert_array_equal(info["privileged"], env.unwrapped._get_obs())


def test_privileged_state_comes_from_info_privileged_then_latent():
    assert privileged_state({"privileged": [1, 2]}).tolist() == [1.0, 2.0]
    assert privileged_state({"latent": {"owed": 3, "writing": 1}}).tolist() == [3.0, 1.0]
    assert privileged_state({"is_success": True}) is None


def test_env_without_privileged_state_is_a_user_error_in_training_and_zeros_in_evaluation(
    tmp_path,
):
    with pytest.raises(ValueError, match="offers no privileged state"):
        PrivilegedObservation(gym.make("CartPole-v1"))
    env = PrivilegedObservation(gym.make("CartPole-v1"), required=False, size=3)
    observation, _ = env.reset(seed=0)
    assert observation["privileged"].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(UserError, match="offers no privileged state"):
        agents.train(
            env="CartPole-v1", privileged_critic=True, n_timesteps=64, runs_root=tmp_path, **TINY
        )
    assert not any(tmp_path.iterdir()), "no half-made run folder"


@pytest.mark.parametrize("critic_lstm", [False, True])
def test_actor_ignores_the_privileged_state_and_the_critic_reads_it(critic_lstm):
    config = make_config(
        env="Counting-v0", privileged_critic=True, enable_critic_lstm=critic_lstm, **TINY
    )
    env = make_vec(config, 2, seed=0)
    model = build_model(config, env)
    policy = model.policy
    assert (policy.lstm_critic is None) == (not critic_lstm)
    observation = env.reset()
    other = {**observation, "privileged": observation["privileged"] + 5.0}
    starts = np.ones(2, dtype=bool)
    for deterministic in (True, False):
        th.manual_seed(0)
        actions, _ = model.predict(observation, episode_start=starts, deterministic=deterministic)
        th.manual_seed(0)
        again, _ = model.predict(other, episode_start=starts, deterministic=deterministic)
        np.testing.assert_array_equal(actions, again)
    states = (th.zeros(1, 2, config.lstm_hidden_size),) * 2
    tensors = [policy.obs_to_tensor(obs)[0] for obs in (observation, other)]
    values = [policy.predict_values(t, states, th.ones(2)) for t in tensors]
    assert not th.allclose(values[0], values[1])
    # the features preprocessed once are what each extractor gives on its own
    actor, critic = policy.extract_features(tensors[1])
    for features, extractor in [(actor, "pi"), (critic, "vf")]:
        alone = BaseModel.extract_features(
            policy, tensors[1], getattr(policy, f"{extractor}_features_extractor")
        )
        th.testing.assert_close(features, alone, atol=0, rtol=0)
    env.close()


def test_privileged_run_evaluates_and_traces_with_the_actor_alone(tmp_path):
    run_dir = agents.train(
        env="TMaze-v0",
        privileged_critic=True,
        enable_critic_lstm=False,
        state_loss_coef=0.5,  # its read-out of the memory is not part of the actor either
        previous_action=True,
        n_timesteps=128,
        final_eval_episodes=2,
        run_dir=tmp_path / "run",
        **TINY,
    )
    run = agents.load(run_dir)
    assert run.model.observation_space["observation"].shape == (3 + 4,)  # + previous action
    metrics = agents.evaluate(run, n_episodes=2)
    assert metrics["episodes"] == 2
    trace = record_trace(run, n_episodes=1)
    assert trace["obs"].shape[1] == 7  # what the actor saw, without the privileged state
    assert [layer for layer in trace.layers] == ["actor/layer0"]  # no critic memory to trace
    with pytest.raises(UserError, match="do not match") as mismatch:
        agents.load(run_dir, env="CartPole-P-v1").make_env()
    # the critic's input (zeros on any env) is left out: the actor's is what differs
    assert "(7,)" in str(mismatch.value) and "privileged" not in str(mismatch.value)


def test_privileged_critic_is_refused_without_a_critic_of_its_own():
    with pytest.raises(UserError, match="privileged_critic"):
        make_config(
            env="TMaze-v0", privileged_critic=True, shared_lstm=True, enable_critic_lstm=False
        )


@pytest.mark.parametrize("algo", ["ppo", "ppo_framestack"])
def test_feed_forward_baselines_ignore_privileged_critic(algo):
    """A preset that gives the recurrent critic privileged state serves the baselines too."""
    config = make_config(env="TMaze-v0", algo=algo, privileged_critic=True, **TINY)
    env = make_vec(config, 2, seed=0)
    assert isinstance(env.observation_space, gym.spaces.Box)
    model = build_model(config, env)
    model.learn(64)
    env.close()


def test_state_loss_needs_the_privileged_state():
    with pytest.raises(UserError, match="state_loss_coef needs the env's hidden state"):
        make_config(env="Counting-v0", state_loss_coef=1.0)
    with pytest.raises(UserError, match="state_loss_coef must be >= 0"):
        make_config(env="Counting-v0", privileged_critic=True, state_loss_coef=-1.0)
    # the baselines ignore it, as they ignore privileged_critic
    assert make_config(env="Counting-v0", algo="ppo", state_loss_coef=1.0).state_loss_coef == 1.0


def test_state_loss_teaches_the_actor_memory_the_hidden_state(tmp_path):
    """The extra pass lowers the read-out's error on a fixed rollout, moves the actor's memory
    and leaves the critic alone; the head survives save and load."""
    config = make_config(  # a constant rate: the preset's decays to 0 by the end of learn()
        env="Counting-v0", privileged_critic=True, state_loss_coef=1.0, learning_rate=1e-2, **TINY
    )
    env = make_vec(config, 2, seed=0)
    model = build_model(config, env)
    model.learn(64)  # one rollout in the buffer, and the PPO pass with the state pass after it
    policy = model.policy

    def state_loss() -> float:
        (data,) = model.rollout_buffer.get(None)  # the whole rollout as one minibatch
        with th.no_grad():
            loss = policy.state_prediction_loss(
                data.observations, data.lstm_states.pi, data.episode_starts, data.mask > 0
            )
        return loss.item()

    critic = [p.detach().clone() for p in policy.lstm_critic.parameters()]
    actor = [p.detach().clone() for p in policy.lstm_actor.parameters()]
    before = state_loss()
    for _ in range(20):
        model._train_state_prediction()
    assert state_loss() < 0.5 * before
    assert all(th.equal(p, q) for p, q in zip(critic, policy.lstm_critic.parameters(), strict=True))
    assert not all(
        th.equal(p, q) for p, q in zip(actor, policy.lstm_actor.parameters(), strict=True)
    )
    assert "train/state_loss" in model.logger.name_to_value

    model.save(tmp_path / "model.zip")
    loaded = type(model).load(tmp_path / "model.zip", env=env)
    assert loaded.state_loss_coef == 1.0
    th.testing.assert_close(loaded.policy.state_head.weight, policy.state_head.weight)
    env.close()


@pytest.mark.parametrize("env_id", ["TMaze-v0", "Timer-v0", "Pendulum-v1"])
@pytest.mark.parametrize("flags", [(True, True, True), (True, False, False), (False, True, True)])
def test_the_layout_that_exports_describe_is_the_wrappers(env_id, flags):
    action, reward, observation = flags
    inner = gym.make(env_id)
    env = PreviousStep(inner, action=action, reward=reward, observation=observation)
    env_size, parts = previous_step_layout(
        env.action_space, env.observation_space.shape[0], action, reward, observation
    )
    assert env_size == inner.observation_space.shape[0]
    assert env_size + sum(size for _, size in parts) == env.observation_space.shape[0]
    first, _ = env.reset(seed=0)
    stepped, reward_received, *_ = env.step(env.action_space.sample())
    # the parts lie where the layout says: the previous observation first, the reward last
    if observation:
        np.testing.assert_array_equal(stepped[env_size : 2 * env_size], first[:env_size])
    if reward:
        assert parts[-1] == ("previous reward", 1)
        assert stepped[-1] == np.float32(reward_received)
