"""Properties of every registered id and every wrapper, drawn by hypothesis (the dm_control
suite's suite_test.py is the model): reproducible under a seed, observations finite and
inside the space, rewards finite, the info keys each kind of env promises, random actions
and actions outside the bounds survived, NaN actions and out-of-range indices refused by
the env factory before they reach the simulation.

Examples are few and episodes short (MuJoCo ids step a dozen times) to keep the default tier
fast; the slow tier draws many more, longer ones. ``derandomize`` makes every run draw the
same examples.
"""

from __future__ import annotations

import doctest
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st

import agents.atomic
import agents.schedules
import envs
import envs.valid_actions
from agents.config import TrainConfig
from agents.environments import make_single_env, with_agent_inputs
from agents.inputs import PreviousStep, PrivilegedObservation
from envs.pomdp_suite import CARTPOLE_GROUPS, PENDULUM_GROUPS
from envs.valid_actions import ValidActions
from envs.wrappers import CueMask, MaskObservation, ObservationDelay, SensorDropout, SensorNoise

FEW = settings(max_examples=4, deadline=None, derandomize=True, database=None)
MANY = settings(FEW, max_examples=40)
SEEDS = st.integers(0, 2**31 - 1)
# "inside": uniform within the bounds; "bounds": each dim at its low or high end; "outside":
# up to 10 ranges beyond them (Box spaces only; a discrete index outside is refused instead)
ACTION_KINDS = st.sampled_from(["inside", "bounds", "outside"])

SUITE_OF = {env_id: suite for suite, ids in envs.SUITES.items() for env_id in ids}
ALL_IDS = list(SUITE_OF)
STEPS = {"memory": 80, "pomdp_mujoco": 12, "pomdp_classic": 40}
# What info carries at reset and at every step: memory tasks their hidden variables, the
# partially observable robots the full reading they hide (for a privileged critic).
INFO_EVERY_STEP = {"memory": "latent", "pomdp_mujoco": "privileged", "pomdp_classic": "privileged"}
ENDS_WITH_SUCCESS = {*envs.MEMORY, "Reacher-Cue-v5"}


def draw_action(space: gym.Space, rng: np.random.Generator, kind: str) -> Any:
    if isinstance(space, spaces.Discrete):
        return int(space.start + rng.integers(space.n))
    assert isinstance(space, spaces.Box), space
    low, high = space.low, space.high
    if kind == "bounds":
        action = np.where(rng.random(space.shape) < 0.5, low, high)
    elif kind == "outside":
        beyond = (high - low) * rng.uniform(1.0, 10.0, space.shape)
        action = np.where(rng.random(space.shape) < 0.5, low - beyond, high + beyond)
    else:
        action = rng.uniform(low, high)
    return action.astype(space.dtype)


def rollout(env: gym.Env, seed: int, kind: str, steps: int) -> list[tuple]:
    """(observation, reward, terminated, truncated, info) of ``steps`` steps, resetting at
    episode ends; the first entry is the reset's."""
    rng = np.random.default_rng(seed)
    observation, info = env.reset(seed=seed)
    records = [(observation, 0.0, False, False, info)]
    for _ in range(steps):
        record = env.step(draw_action(env.action_space, rng, kind))
        records.append(record)
        if record[2] or record[3]:
            observation, info = env.reset()
            records.append((observation, 0.0, False, False, info))
    env.close()
    return records


def flat(observation: Any) -> np.ndarray:
    if isinstance(observation, dict):
        return np.concatenate([np.ravel(value) for value in observation.values()])
    return np.ravel(observation)


def assert_finite_and_inside(space: gym.Space, records: list[tuple]) -> None:
    for observation, reward, *_ in records:
        assert np.all(np.isfinite(flat(observation))), observation
        assert space.contains(observation), (observation, space)
        assert np.isfinite(reward), reward


def assert_same(first: list[tuple], again: list[tuple]) -> None:
    assert len(first) == len(again)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(flat(a[0]), flat(b[0]))
        assert a[1:4] == b[1:4]


def check_id(env_id: str, seed: int, kind: str, steps: int) -> None:
    suite = SUITE_OF[env_id]
    env = gym.make(env_id)
    records = rollout(env, seed, kind, steps)
    assert_same(records, rollout(gym.make(env_id), seed, kind, steps))
    assert_finite_and_inside(env.observation_space, records)
    key = INFO_EVERY_STEP[suite]
    for _, _, terminated, truncated, info in records:
        assert key in info, (key, sorted(info))
        if env_id in ENDS_WITH_SUCCESS and (terminated or truncated):
            assert isinstance(info["is_success"], bool)


@pytest.mark.parametrize("env_id", ALL_IDS)
@FEW
@given(seed=SEEDS, kind=ACTION_KINDS)
def test_every_id_is_reproducible_finite_inside_its_space_and_keeps_its_info(env_id, seed, kind):
    check_id(env_id, seed, kind, STEPS[SUITE_OF[env_id]])


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ALL_IDS)
@MANY
@given(seed=SEEDS, kind=ACTION_KINDS)
def test_every_id_over_many_long_examples(env_id, seed, kind):
    check_id(env_id, seed, kind, 10 * STEPS[SUITE_OF[env_id]])


def _has_box_actions(env_id: str) -> bool:
    env = gym.make(env_id)
    env.close()
    return isinstance(env.action_space, spaces.Box)


BOX_IDS = [env_id for env_id in ALL_IDS if _has_box_actions(env_id)]
DISCRETE_IDS = [env_id for env_id in ALL_IDS if env_id not in BOX_IDS]


def made_by_the_factory(env_id: str) -> gym.Env:
    return with_agent_inputs(make_single_env(env_id), TrainConfig(env=env_id))


@pytest.mark.parametrize("env_id", BOX_IDS)
@FEW
@given(seed=SEEDS, bad=st.sampled_from([np.nan, np.inf, -np.inf]), data=st.data())
def test_non_finite_actions_are_refused_and_leave_the_env_intact(env_id, seed, bad, data):
    env = made_by_the_factory(env_id)
    env.reset(seed=seed)
    action = np.zeros(env.action_space.shape, env.action_space.dtype)
    action[data.draw(st.integers(0, action.size - 1))] = bad
    with pytest.raises(ValueError, match="not finite"):
        env.step(action)
    observation, reward, *_ = env.step(np.zeros_like(action))
    assert np.all(np.isfinite(observation)) and np.isfinite(reward)


@pytest.mark.parametrize("env_id", DISCRETE_IDS)
@FEW
@given(offset=st.integers(1, 1000), below=st.booleans())
def test_discrete_actions_outside_the_space_are_refused(env_id, offset, below):
    env = made_by_the_factory(env_id)
    env.reset(seed=0)
    space = env.action_space
    action = space.start - offset if below else space.start + space.n - 1 + offset
    with pytest.raises(ValueError, match=f"action {action} is outside Discrete"):
        env.step(action)


# Each wrapper with its settings drawn by hypothesis, on a cheap base env whose groups are known.
BASES: dict[str, tuple[str, dict[str, tuple[int, ...]] | None]] = {
    "CartPole-v1": ("CartPole-v1", CARTPOLE_GROUPS),
    "Pendulum-v1": ("Pendulum-v1", PENDULUM_GROUPS),
    "Copy-v0": ("Copy-v0", None),  # a memory task: no groups, latent in info
}
GROUPED = ["CartPole-v1", "Pendulum-v1"]


def _mask(data: st.DataObject, groups: dict) -> Callable[[gym.Env], gym.Env]:
    names = data.draw(st.lists(st.sampled_from(sorted(groups)), min_size=1, unique=True))
    if data.draw(st.booleans()):
        return lambda env: MaskObservation(env, keep=names, groups=groups)
    if len(names) == len(groups):
        names = names[:1]
    return lambda env: MaskObservation(env, drop=names, groups=groups)


def _dropout(data: st.DataObject, groups: dict) -> Callable[[gym.Env], gym.Env]:
    start_prob = data.draw(st.floats(0.0, 1.0))
    mean_burst = data.draw(st.floats(1.0, 20.0))
    hold_last = data.draw(st.booleans())
    return lambda env: SensorDropout(
        env, start_prob=start_prob, mean_burst=mean_burst, hold_last=hold_last, groups=groups
    )


def _noise(data: st.DataObject, groups: dict) -> Callable[[gym.Env], gym.Env]:
    std = data.draw(st.floats(0.0, 3.0))
    return lambda env: SensorNoise(env, std=std)


def _delay(data: st.DataObject, groups: dict) -> Callable[[gym.Env], gym.Env]:
    delay = data.draw(st.integers(0, 6))
    return lambda env: ObservationDelay(env, delay=delay)


def _cue(data: st.DataObject, groups: dict) -> Callable[[gym.Env], gym.Env]:
    visible_steps = data.draw(st.integers(1, 8))
    cue = [data.draw(st.sampled_from(sorted(groups)))]
    return lambda env: CueMask(env, cue=cue, visible_steps=visible_steps, groups=groups)


HIDING_WRAPPERS = {
    "MaskObservation": _mask,
    "SensorDropout": _dropout,
    "SensorNoise": _noise,
    "ObservationDelay": _delay,
    "CueMask": _cue,
}


@pytest.mark.parametrize("wrapper", list(HIDING_WRAPPERS))
@pytest.mark.parametrize("base", GROUPED)
@FEW
@given(seed=SEEDS, kind=ACTION_KINDS, data=st.data())
def test_hiding_wrappers_keep_the_properties_and_pass_the_reading_on(
    wrapper, base, seed, kind, data
):
    base_id, groups = BASES[base]
    wrap = HIDING_WRAPPERS[wrapper](data, groups)
    env = wrap(gym.make(base_id))
    records = rollout(env, seed, kind, 40)
    assert_same(records, rollout(wrap(gym.make(base_id)), seed, kind, 40))
    assert_finite_and_inside(env.observation_space, records)
    full = gym.make(base_id).observation_space
    for *_, info in records:
        assert full.contains(np.asarray(info["privileged"], full.dtype)), info["privileged"]


@pytest.mark.parametrize("base", list(BASES))
@FEW
@given(
    seed=SEEDS,
    kind=ACTION_KINDS,
    previous=st.sampled_from(["action", "reward", "both", "observation", "none"]),
    privileged=st.booleans(),
)
def test_agent_input_wrappers_keep_the_properties(base, seed, kind, previous, privileged):
    base_id, groups = BASES[base]

    def wrap(env: gym.Env) -> gym.Env:
        env = ValidActions(env)
        if privileged and groups is not None:  # the reading a mask hides is the privileged state
            env = MaskObservation(env, keep=["positions"], groups=groups)
        if previous != "none":
            env = PreviousStep(
                env,
                action=previous in ("action", "both"),
                reward=previous in ("reward", "both"),
                observation=previous == "observation",
            )
        return PrivilegedObservation(env) if privileged else env

    env = wrap(gym.make(base_id))
    records = rollout(env, seed, kind, 40)
    assert_same(records, rollout(wrap(gym.make(base_id)), seed, kind, 40))
    assert_finite_and_inside(env.observation_space, records)


@pytest.mark.parametrize("module", [envs.valid_actions, agents.atomic, agents.schedules])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
