"""The rollout loop carries the recurrent state and resets it exactly at episode starts."""

import itertools

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv

from agents.rollout import episodes, steps


class CountdownEnv(gym.Env):
    """Episodes of a fixed length per env; success iff the action on the last step equals the
    number of steps taken before it (only a policy that counts can know it)."""

    observation_space = spaces.Box(0, 1, (1,), np.float32)
    action_space = spaces.Discrete(16)

    def __init__(self, length: int):
        self.length = length

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        done = self.t == self.length
        info = {"is_success": int(action) == self.t - 1} if done else {}
        return np.zeros(1, np.float32), float(done), done, False, info


class StepCounter:
    """A stand-in recurrent model whose state counts the steps since the last reset."""

    def __init__(self):
        self.calls = []

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        self.calls.append((None if state is None else state.copy(), episode_start.copy()))
        if state is None:
            state = np.zeros(len(observation), dtype=int)
        state = np.where(episode_start, 0, state)
        return state.copy(), state + 1


def test_state_resets_exactly_at_episode_starts_with_several_envs():
    env = DummyVecEnv([lambda n=n: CountdownEnv(n) for n in (2, 3, 5)])
    model = StepCounter()
    for _ in itertools.islice(steps(model, env), 30):
        pass
    _, first_start = model.calls[0]
    assert first_start.all()
    for t, (state, episode_start) in enumerate(model.calls[1:], start=1):
        expected_start = np.array([t % n == 0 for n in (2, 3, 5)])
        np.testing.assert_array_equal(episode_start, expected_start)
        assert state is not None


def test_counting_policy_succeeds_only_when_the_state_is_carried():
    env = DummyVecEnv([lambda n=n: CountdownEnv(n) for n in (2, 3, 5)])
    carried = episodes(StepCounter(), env, 30)
    dropped = episodes(StepCounter(), env, 30, keep_state=False)
    assert all(episode.success for episode in carried)
    assert not any(episode.success for episode in dropped)


def test_episode_quota_is_spread_over_envs():
    env = DummyVecEnv([lambda n=n: CountdownEnv(n) for n in (1, 7)])
    results = episodes(StepCounter(), env, 10)
    assert len(results) == 10
    # the short env must not fill the sample: five episodes of length 7 are in it
    assert sorted(episode.length for episode in results).count(7) == 5
