"""Contract tests run over every memory and timer task (envs.MEMORY).

Each task must pass both env checkers, be reproducible under a seed, report its latent state
and success, render, and keep its promises about success: its oracle (which reads the hidden
state) always succeeds, its best memoryless policy reaches the documented ceiling, and no
memoryless policy we try (that one, or a random one) beats it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs

# Ids whose registered episodes are too long for a fast test run with fewer pulses (the
# pulse length, which the ceiling depends on, is kept) and fewer episodes.
SHORT_KWARGS: dict[str, dict] = {
    "Timer-Long-v0": {"triggers": 1},
    "Timer-Jaeger-v0": {"triggers": 1},
}
FEWER_EPISODES = {"Timer-Long-v0": 4, "Timer-Jaeger-v0": 40}  # divide episode counts by this

Z_BAND = 4.0  # binomial sigmas: a correct ceiling fails this check about once in 16 000 runs


def make(env_id: str, **kwargs) -> gym.Env:
    return gym.make(env_id, **{**SHORT_KWARGS.get(env_id, {}), **kwargs})


def run_episode(
    env: gym.Env, policy: Callable[[np.ndarray], object], seed: int | None = None
) -> tuple[list[np.ndarray], dict]:
    """Roll out one episode; return the observations and the final info."""
    obs, info = env.reset(seed=seed)
    observations = [obs]
    while True:
        obs, _, terminated, truncated, info = env.step(policy(obs))
        observations.append(obs)
        if terminated or truncated:
            return observations, info


def success_rate(env: gym.Env, policy: Callable[[np.ndarray], object], episodes: int) -> float:
    """Fraction of ``episodes`` (fewer for the slowest ids) that end with is_success."""
    episodes = max(5, episodes // FEWER_EPISODES.get(env.spec.id, 1))
    env.reset(seed=0)
    env.action_space.seed(0)
    wins = [run_episode(env, policy)[1]["is_success"] for _ in range(episodes)]
    return float(np.mean(wins))


def band(p: float, episodes: int) -> float:
    """Half-width of the binomial Z_BAND-sigma interval, never below one episode."""
    return max(Z_BAND * math.sqrt(p * (1 - p) / episodes), 1.0 / episodes)


@pytest.fixture(params=envs.MEMORY)
def env_id(request) -> str:
    return request.param


def test_suite_lists_registered_ids():
    assert envs.MEMORY, "the memory suite is empty"
    assert len(set(envs.MEMORY)) == len(envs.MEMORY)
    for env_id in envs.MEMORY:
        assert env_id in gym.registry
        assert env_id.endswith("-v0")


def test_env_checkers_pass_without_warnings(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = make(env_id)
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)
        env.close()


def test_ceiling_documented(env_id):
    env = make(env_id)
    ceiling = env.get_wrapper_attr("memoryless_ceiling")
    assert isinstance(ceiling, float) and 0.0 <= ceiling < 1.0
    doc = type(env.unwrapped).__doc__
    for section in ("Description", "Action Space", "Observation Space", "Rewards",
                    "Starting State", "Episode End", "Arguments", "Memoryless ceiling",
                    "Version History"):  # fmt: skip
        assert f"## {section}" in doc, f"{env_id}: docstring lacks the {section} section"


def test_seeding_is_reproducible(env_id):
    def trajectory(seed: int) -> np.ndarray:
        env = make(env_id)
        env.action_space.seed(123)  # the same action sequence for both seeds
        observations, _ = run_episode(env, lambda obs: env.action_space.sample(), seed=seed)
        return np.concatenate([o.ravel() for o in observations])

    first, again, other = trajectory(1), trajectory(1), trajectory(2)
    np.testing.assert_array_equal(first, again)
    # Seeds could collide on a tiny task; some seed in a handful must give another episode.
    others = [other] + [trajectory(seed) for seed in range(3, 8)]
    assert any(o.shape != first.shape or not np.array_equal(o, first) for o in others)


def test_steps_keep_the_contract(env_id):
    env = make(env_id)
    env.action_space.seed(0)
    for episode in range(5):
        obs, info = env.reset(seed=episode)
        keys = set(info["latent"])
        assert keys, "latent must name at least one hidden variable"
        done = False
        while not done:
            assert env.observation_space.contains(obs)
            assert np.all(np.isfinite(obs))
            assert set(info["latent"]) == keys
            assert all(isinstance(v, (int, float)) for v in info["latent"].values())
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert np.isfinite(reward)
            done = terminated or truncated
            # Tasks that may be truncated by a time limit report it every step; none may
            # claim success before the end.
            assert done or not info.get("is_success", False)
        assert isinstance(info["is_success"], bool)


def test_oracle_always_succeeds(env_id):
    env = make(env_id)
    unwrapped = env.unwrapped
    assert success_rate(env, lambda obs: unwrapped.oracle_action(), episodes=200) == 1.0


def test_memoryless_policy_reaches_the_ceiling_and_no_more(env_id):
    env = make(env_id)
    unwrapped = env.unwrapped
    ceiling = unwrapped.memoryless_ceiling
    episodes = 400
    rate = success_rate(env, unwrapped.memoryless_action, episodes)
    episodes = max(5, episodes // FEWER_EPISODES.get(env_id, 1))
    assert abs(rate - ceiling) <= band(ceiling, episodes), f"{rate=} {ceiling=}"


def test_random_policy_stays_below_the_ceiling(env_id):
    env = make(env_id)
    ceiling = env.unwrapped.memoryless_ceiling
    episodes = 200
    rate = success_rate(env, lambda obs: env.action_space.sample(), episodes)
    episodes = max(5, episodes // FEWER_EPISODES.get(env_id, 1))
    assert rate <= ceiling + band(ceiling, episodes), f"{rate=} {ceiling=}"


def test_render_modes(env_id):
    for mode in ("ansi", "rgb_array"):
        env = make(env_id, render_mode=mode)
        env.reset(seed=0)
        env.action_space.seed(0)
        for _ in range(3):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            frame = env.render()
            if mode == "ansi":
                assert isinstance(frame, str) and frame
            else:
                assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
                assert frame.min() != frame.max(), "the frame is blank"
            if terminated or truncated:
                break
        env.close()
