"""Every partially observable robot id: API checks, masks proved by physics, Reacher-Cue."""

import doctest
import re
import warnings

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
import envs.reacher_cue
from agents.environments import memoryless_ceiling
from envs.pomdp_suite import DROPOUT_MEAN_BURST, DROPOUT_START_PROB
from envs.reacher_cue import MEMORYLESS_CEILING, SUCCESS_DISTANCE, oracle_action
from envs.wrappers import MaskObservation, SensorDropout

ALL_IDS = envs.POMDP_MUJOCO + envs.POMDP_CLASSIC
ROBOTS = ["HalfCheetah", "Hopper", "Walker2d", "Ant"]
OBS_SIZES = {
    "HalfCheetah": {"P": 8, "V": 9, "Dropout": 19},
    "Hopper": {"P": 5, "V": 6, "Dropout": 13},
    "Walker2d": {"P": 8, "V": 9, "Dropout": 19},
    "Ant": {"P": 13, "V": 14, "Dropout": 108},
}


def base_id(env_id: str) -> str:
    return gym.spec(env_id).kwargs.get("base_id", "Reacher-v5")


def checker_warnings(env_id: str) -> set[str]:
    """Warnings of Gymnasium's and SB3's env checkers, with the env's repr taken out."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make(env_id)
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env)
    return {re.sub(r"<[^()]*>", "<env>", str(w.message)) for w in caught}


def test_suites_list_every_id():
    expected = [f"{r}-{kind}-v5" for kind in ("P", "V", "Dropout") for r in ROBOTS]
    assert sorted(envs.POMDP_MUJOCO) == sorted([*expected, "Reacher-Cue-v5"])
    assert envs.POMDP_CLASSIC == ["CartPole-P-v1", "Pendulum-P-v1"]


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_checkers_add_no_warning_to_the_base_env(env_id):
    # What remains is the base env's own: unbounded MuJoCo readings, Pendulum's [-2, 2]
    # torque, and the checkers' advice to check env.unwrapped, which every made env gets.
    assert checker_warnings(env_id) <= checker_warnings(base_id(env_id))


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_rollouts_are_finite_in_space_and_reproducible(env_id):
    def rollout(seed: int) -> np.ndarray:
        env = gym.make(env_id)
        env.action_space.seed(seed)
        obs = [env.reset(seed=seed)[0]]
        for _ in range(30):
            ob, _, terminated, truncated, _ = env.step(env.action_space.sample())
            assert np.all(np.isfinite(ob)) and env.observation_space.contains(ob)
            obs.append(ob if not (terminated or truncated) else env.reset()[0])
        return np.array(obs)

    first = rollout(seed=3)
    assert np.array_equal(first, rollout(seed=3))
    assert not np.array_equal(first, rollout(seed=4))


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_episode_limit_is_the_base_envs(env_id):
    env = gym.make(env_id)
    assert env.spec.max_episode_steps == gym.spec(base_id(env_id)).max_episode_steps
    assert env.get_wrapper_attr("_max_episode_steps") == env.spec.max_episode_steps


@pytest.mark.parametrize("robot", ROBOTS)
def test_observation_sizes(robot):
    for kind, size in OBS_SIZES[robot].items():
        assert gym.make(f"{robot}-{kind}-v5").observation_space.shape == (size,)


def test_render_mode_passes_through():
    env = gym.make("Hopper-P-v5", render_mode="rgb_array", width=32, height=24)
    assert env.unwrapped.render_mode == "rgb_array"
    base = gym.make("Hopper-v5", render_mode="rgb_array", width=32, height=24)
    base.reset(seed=0)
    try:
        base.render()
    except Exception as error:  # no OpenGL on this machine: nothing of ours to test
        pytest.skip(f"MuJoCo cannot render here: {error!r}")
    env.reset(seed=0)
    assert env.render().shape == (24, 32, 3)


def layer(env: gym.Env, kind: type) -> gym.Wrapper:
    while not isinstance(env, kind):
        env = env.env
    return env


def perturbed_observations(env_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kept observation as is, with qvel perturbed, and with qpos perturbed.

    Derived quantities are recomputed (mj_forward, then the contact forces the way Gymnasium
    does), so a kept reading that depends on the hidden quantity would show it.
    """
    env = gym.make(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(10):
        env.step(env.action_space.sample())
    mask, robot = layer(env, MaskObservation), env.unwrapped
    model, data = robot.model, robot.data
    rng = np.random.default_rng(0)

    def observe() -> np.ndarray:
        mujoco.mj_forward(model, data)
        mujoco.mj_rnePostConstraint(model, data)
        return mask.observation(robot._get_obs())

    clean, qpos, qvel = observe(), data.qpos.copy(), data.qvel.copy()
    data.qvel[:] = qvel + rng.normal(scale=1.0, size=model.nv)
    velocity_changed = observe()
    data.qvel[:] = qvel
    data.qpos[:] = qpos + rng.normal(scale=0.1, size=model.nq)
    position_changed = observe()
    return clean, velocity_changed, position_changed


@pytest.mark.parametrize("robot", ROBOTS)
def test_p_envs_hide_every_velocity_effect(robot):
    clean, velocity_changed, position_changed = perturbed_observations(f"{robot}-P-v5")
    assert np.array_equal(velocity_changed, clean)
    assert not np.allclose(position_changed, clean)


@pytest.mark.parametrize("robot", ROBOTS)
def test_v_envs_hide_every_position_effect(robot):
    clean, velocity_changed, position_changed = perturbed_observations(f"{robot}-V-v5")
    assert np.array_equal(position_changed, clean)
    assert not np.allclose(velocity_changed, clean)


def test_classic_p_envs_show_positions_only():
    env = gym.make("CartPole-P-v1")
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        x, _, theta, _ = env.unwrapped.state
        assert np.allclose(obs, [x, theta])
        obs = env.step(env.action_space.sample())[0]
    env = gym.make("Pendulum-P-v1")
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        theta, _ = env.unwrapped.state
        assert np.allclose(obs, [np.cos(theta), np.sin(theta)])
        obs = env.step(env.action_space.sample())[0]


@pytest.mark.parametrize("robot", ROBOTS)
def test_dropout_envs_use_the_documented_bursts(robot):
    dropout = layer(gym.make(f"{robot}-Dropout-v5"), SensorDropout)
    assert (dropout.start_prob, dropout.mean_burst) == (DROPOUT_START_PROB, DROPOUT_MEAN_BURST)
    assert dropout.affected[:2] == ["positions", "velocities"]


def test_reacher_cue_docstring_example_runs():
    result = doctest.testmod(envs.reacher_cue)
    assert result.attempted > 0 and result.failed == 0


def reacher_episode(policy, seed: int, cue_actions: float | None = None):
    """Observations and final info of one Reacher-Cue-v5 episode."""
    env = gym.make("Reacher-Cue-v5")
    obs, info = env.reset(seed=seed)
    trace, done, t = [obs], False, 0
    while not done:
        action = policy(obs, info)
        if cue_actions is not None and t < 5:
            action = np.full(2, cue_actions)
        obs, _, terminated, truncated, info = env.step(action)
        trace.append(obs)
        done, t = terminated or truncated, t + 1
    return np.array(trace), info


def fixed_point(obs, info):
    return oracle_action(obs, {"target_x": 0.1, "target_y": 0.0})


def test_reacher_cue_hides_the_target_from_step_5_on():
    trace, info = reacher_episode(fixed_point, seed=1)
    target = [info["latent"]["target_x"], info["latent"]["target_y"]]
    assert len(trace) == 51
    assert np.array_equal(trace[:, 10], np.arange(51) >= 5)
    assert np.allclose(trace[:5, 4:6], target)
    assert np.all(np.abs(trace[:5, 8:10]) > 0)
    assert np.all(trace[5:, [4, 5, 8, 9]] == 0)


def test_reacher_cue_holds_the_arm_while_the_target_is_shown():
    push, _ = reacher_episode(fixed_point, seed=2, cue_actions=1.0)
    pull, _ = reacher_episode(fixed_point, seed=2, cue_actions=-1.0)
    assert np.array_equal(push[:6], pull[:6])
    moved, _ = reacher_episode(lambda obs, info: np.ones(2), seed=2)
    assert not np.allclose(moved[7], push[7])


def test_reacher_cue_arm_left_free_moves_during_the_cue_and_states_no_ceiling():
    def first_steps(cue_actions: float, **kwargs) -> np.ndarray:
        env = gym.make("Reacher-Cue-v5", **kwargs)
        obs = [env.reset(seed=2)[0]]
        obs += [env.step(np.full(2, cue_actions))[0] for _ in range(3)]
        return np.array(obs)

    assert not np.allclose(first_steps(1.0, hold_arm=False), first_steps(-1.0, hold_arm=False))
    free = gym.make("Reacher-Cue-v5", hold_arm=False, cue_steps=50)
    assert memoryless_ceiling(free) is None
    assert memoryless_ceiling(gym.make("Reacher-Cue-v5")) == pytest.approx(MEMORYLESS_CEILING)
    obs, _ = free.reset(seed=0)
    for _ in range(49):
        obs, *_ = free.step(free.action_space.sample())
    assert obs[10] == 0 and np.all(obs[[4, 5]] != 0)  # the target is still shown


def test_reacher_cue_oracle_succeeds():
    finals = [reacher_episode(lambda obs, info: oracle_action(obs, info["latent"]), s)[1]
              for s in range(10)]  # fmt: skip
    assert all(info["is_success"] for info in finals)
    assert all(info["distance"] < SUCCESS_DISTANCE for info in finals)


def test_reacher_cue_memoryless_ceiling():
    env = gym.make("Reacher-Cue-v5")
    assert env.get_wrapper_attr("memoryless_ceiling") == MEMORYLESS_CEILING == pytest.approx(0.01)
    # The ceiling's premise, by Monte Carlo over Reacher's own targets: a fixed point x is
    # within SUCCESS_DISTANCE of the target with probability (r / R)^2 at best.
    env.reset(seed=0)
    targets = []
    for _ in range(5_000):
        latent = env.reset()[1]["latent"]
        targets.append([latent["target_x"], latent["target_y"]])
    targets = np.array(targets)
    assert np.linalg.norm(targets, axis=1).max() < 0.2
    for point, expected in [((0.1, 0.0), 0.01), ((0.0, -0.15), 0.01), ((0.2, 0.0), 0.005)]:
        hits = np.linalg.norm(targets - point, axis=1) < SUCCESS_DISTANCE
        assert hits.mean() == pytest.approx(expected, abs=0.004)
    # The best memoryless policy reaches a fixed point; it succeeds at about the ceiling.
    successes = [reacher_episode(fixed_point, seed)[1]["is_success"] for seed in range(100)]
    assert np.mean(successes) <= MEMORYLESS_CEILING + 0.04
