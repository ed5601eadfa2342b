"""The partial-observability wrappers and the observation groups they act on."""

import doctest

import gymnasium as gym
import numpy as np
import pytest

import envs.observation_groups
import envs.wrappers
from envs.observation_groups import observation_groups
from envs.wrappers import CueMask, MaskObservation, ObservationDelay, SensorDropout, SensorNoise


class Counter(gym.Env):
    """Observation t is ``t + 1 + [0, 10, 20, 30]``: never 0, and tells the step apart."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float64)
    action_space = gym.spaces.Discrete(2)
    groups = {"positions": [0, 2], "velocities": [1, 3]}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 0.0, False, False, {}

    def _obs(self):
        return self.t + 1 + np.array([0.0, 10.0, 20.0, 30.0])


def rollout(env: gym.Env, steps: int, seed: int = 0) -> np.ndarray:
    obs = [env.reset(seed=seed)[0]]
    obs += [env.step(env.action_space.sample())[0] for _ in range(steps)]
    return np.array(obs)


@pytest.mark.parametrize("module", [envs.wrappers, envs.observation_groups])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(
    "env_id, kwargs, sizes",
    [
        ("HalfCheetah-v5", {}, {"positions": 8, "velocities": 9}),
        ("HalfCheetah-v5", {"exclude_current_positions_from_observation": False},
         {"positions": 9, "velocities": 9}),
        ("Ant-v5", {}, {"positions": 13, "velocities": 14, "contact_forces": 78}),
        ("Ant-v5", {"include_cfrc_ext_in_observation": False}, {"positions": 13, "velocities": 14}),
        ("Reacher-v5", {},
         {"positions": 4, "target": 2, "velocities": 2, "fingertip_to_target": 2}),
    ],
)  # fmt: skip
def test_groups_follow_the_model_and_env_settings(env_id, kwargs, sizes):
    env = gym.make(env_id, **kwargs)
    groups = observation_groups(env)
    assert {name: idx.size for name, idx in groups.items()} == sizes
    all_dims = np.sort(np.concatenate(list(groups.values())))
    assert all_dims.tolist() == list(range(env.observation_space.shape[0]))


def test_underivable_env_asks_for_explicit_groups():
    with pytest.raises(ValueError, match="CartPoleEnv.*explicit groups"):
        MaskObservation(gym.make("CartPole-v1"), drop=["velocities"])


@pytest.mark.parametrize(
    "groups, match",
    [
        ({"a": [0, 4]}, r"\[0, 4\].*\[0, 3\]"),
        ({"a": [0, 1], "b": [1, 2]}, "index 1 is in both"),
        ({"a": []}, "non-empty"),
        ({}, "non-empty mapping"),
    ],
)
def test_bad_groups_show_the_value(groups, match):
    with pytest.raises(ValueError, match=match):
        MaskObservation(Counter(), drop=["a"], groups=groups)


def test_mask_keeps_or_drops_whole_groups_in_order():
    kept = MaskObservation(Counter(), keep=["velocities"], groups=Counter.groups)
    assert kept.observation_space.shape == (2,)
    assert kept.reset(seed=0)[0].tolist() == [11.0, 31.0]
    assert {k: v.tolist() for k, v in observation_groups(kept).items()} == {"velocities": [0, 1]}
    partial = {"velocities": [1]}  # dims outside every group stay when dropping
    dropped = MaskObservation(Counter(), drop=["velocities"], groups=partial)
    assert dropped.reset(seed=0)[0].tolist() == [1.0, 21.0, 31.0]


def test_mask_names_what_it_hides_as_the_latent_a_memory_must_carry():
    dropped = MaskObservation(Counter(), drop=["velocities"], groups=Counter.groups)
    _, info = dropped.reset(seed=0)
    assert info["latent"] == {"velocities[0]": 11.0, "velocities[1]": 31.0}
    _, _, _, _, info = dropped.step(0)
    assert info["latent"] == {"velocities[0]": 12.0, "velocities[1]": 32.0}
    assert info["privileged"].tolist() == [2.0, 12.0, 22.0, 32.0]  # the whole reading, as before
    partial = MaskObservation(Counter(), keep=["velocities"], groups={"velocities": [1]})
    assert partial.reset(seed=0)[1]["latent"] == {
        "observation[0]": 1.0,
        "observation[2]": 21.0,
        "observation[3]": 31.0,
    }
    stacked = SensorDropout(dropped, start_prob=1.0, groups={"positions": [0, 1]})
    assert stacked.reset(seed=0)[1]["latent"] == {"velocities[0]": 11.0, "velocities[1]": 31.0}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"keep": ["velocity"]}, r"keep=\['velocity'\].*\['positions', 'velocities'\]"),
        ({"keep": ["positions"], "drop": ["velocities"]}, "exactly one of keep or drop"),
        ({}, "exactly one of keep or drop"),
        ({"drop": "velocities"}, "list of group names, got the string 'velocities'"),
        ({"drop": ["positions", "velocities"]}, "would leave no observation"),
    ],
)
def test_mask_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MaskObservation(Counter(), groups=Counter.groups, **kwargs)


def test_wrappers_need_a_flat_float_box():
    with pytest.raises(ValueError, match="flat float Box"):
        SensorNoise(gym.make("FrozenLake-v1"), std=0.1)


def test_groups_pass_through_stacked_wrappers():
    env = SensorDropout(MaskObservation(gym.make("Ant-v5"), drop=["velocities"]))
    groups = observation_groups(env)
    assert list(groups) == [
        "positions", "contact_forces", "positions_missing", "contact_forces_missing"
    ]  # fmt: skip
    assert groups["contact_forces_missing"].tolist() == [92]
    with pytest.raises(ValueError, match="through TimeAwareObservation.*explicit groups"):
        observation_groups(gym.wrappers.TimeAwareObservation(gym.make("Hopper-v5")))


def dropout_trace(steps: int, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    env = SensorDropout(Counter(), groups=Counter.groups, **kwargs)
    obs = rollout(env, steps, seed=123)
    return obs[:, :4], obs[:, 4:]


def run_lengths(flags: np.ndarray) -> list[int]:
    """Lengths of the runs of 1 in a 0/1 sequence (a run cut by the end counts too)."""
    edges = np.diff(np.concatenate([[0], flags, [0]]))
    return (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).tolist()


@pytest.mark.parametrize("p, m", [(0.1, 4.0), (0.3, 1.5)])
def test_dropout_matches_its_burst_statistics(p, m):
    _, flags = dropout_trace(40_000, start_prob=p, mean_burst=m)
    # Two-state chain: present -> missing w.p. p, missing -> present w.p. 1/m.
    stationary = p * m / (1 + p * m)
    assert flags.mean() == pytest.approx(stationary, abs=0.015)
    bursts = run_lengths(flags[:, 0]) + run_lengths(flags[:, 1])
    assert np.mean(bursts) == pytest.approx(m, rel=0.06)
    assert min(bursts) == 1


def test_dropout_flag_is_set_exactly_when_values_are_missing():
    readings, flags = dropout_trace(2_000, start_prob=0.2, mean_burst=3.0)
    truth = np.arange(1, 2_002)[:, None] + np.array([0.0, 10.0, 20.0, 30.0])
    for flag, dims in zip(flags.T, ([0, 2], [1, 3]), strict=True):
        missing = flag == 1
        assert np.all(readings[missing][:, dims] == 0)
        assert np.all(readings[~missing][:, dims] == truth[~missing][:, dims])
    assert 0 < flags.mean() < 1


def test_dropout_can_hold_the_last_value():
    readings, flags = dropout_trace(500, start_prob=0.3, mean_burst=3.0, hold_last=True)
    for t in np.flatnonzero(flags[1:, 0] == 1) + 1:
        assert readings[t, 0] == readings[t - 1, 0]
    assert np.all(readings[flags[:, 1] == 0][:, 1] > 0)


def test_dropout_draws_only_from_the_env_seed():
    a, _ = dropout_trace(300)
    b, _ = dropout_trace(300)
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"start_prob": 1.5}, r"start_prob must be in \[0, 1\], got 1.5"),
        ({"mean_burst": 0.5}, ">= 1, got 0.5"),
        ({"affected": ["speed"]}, r"affected=\['speed'\]"),
    ],
)
def test_dropout_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SensorDropout(Counter(), groups=Counter.groups, **kwargs)


class Positive(Counter):
    """A space that excludes 0, the value of a missing reading."""

    observation_space = gym.spaces.Box(1.0, np.inf, (4,), np.float64)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda env: SensorDropout(env, start_prob=1.0, groups=Counter.groups),
        lambda env: ObservationDelay(env, delay=2),
        lambda env: CueMask(env, cue=["positions"], visible_steps=1, groups=Counter.groups),
    ],
)
def test_missing_readings_are_inside_the_space(wrap):
    env = wrap(Positive())
    obs = rollout(env, 5)
    assert np.any(obs == 0)
    assert all(env.observation_space.contains(o) for o in obs)


def test_noise_has_the_given_standard_deviation():
    env = SensorNoise(Counter(), std=0.1, scale=[1.0, 2.0, 0.5, 0.0001])
    obs = rollout(env, 4_000)
    noise = obs - (np.arange(1, 4_002)[:, None] + np.array([0.0, 10.0, 20.0, 30.0]))
    assert noise.std(axis=0) == pytest.approx([0.1, 0.2, 0.05, 0.00001], rel=0.05)
    assert np.array_equal(obs, rollout(env, 4_000))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"std": -0.1}, "std must be finite and >= 0"),
        ({"std": [0.1, 0.2]}, r"one value or 4\), got \[0.1, 0.2\]"),
        ({"std": 0.1, "scale": [1.0, 2.0]}, r"scale must be 4 .*got \[1.0, 2.0\]"),
        ({"std": 0.1, "scale": [1.0, 1.0, 1.0, 0.0]}, "positive"),
    ],
)
def test_noise_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SensorNoise(Counter(), **kwargs)


def test_delay_shows_readings_k_steps_late():
    obs = rollout(ObservationDelay(Counter(), delay=3), 10)
    truth = rollout(Counter(), 10)
    assert np.all(obs[:3] == 0)
    assert np.array_equal(obs[3:], truth[:-3])
    assert np.array_equal(rollout(ObservationDelay(Counter(), delay=0), 5), truth[:6])


@pytest.mark.parametrize("delay", [-1, 1.5, True])
def test_delay_rejects_bad_values(delay):
    with pytest.raises(ValueError, match=f"delay must be an integer.*got {delay!r}"):
        ObservationDelay(Counter(), delay=delay)


@pytest.mark.parametrize("k", [1, 4])
def test_cue_is_hidden_from_step_k_on_and_only_then(k):
    env = CueMask(Counter(), cue=["velocities"], visible_steps=k, groups=Counter.groups)
    obs = rollout(env, 9)
    truth = rollout(Counter(), 9)
    hidden = np.arange(10) >= k
    assert np.array_equal(obs[:, 4], hidden.astype(float))
    assert np.all(obs[hidden][:, [1, 3]] == 0)
    assert np.array_equal(obs[~hidden][:, :4], truth[~hidden])
    assert np.array_equal(obs[:, [0, 2]], truth[:, [0, 2]])
    assert np.array_equal(rollout(env, 3)[:, 4], hidden[:4])  # reset shows the cue again


@pytest.mark.parametrize("k", [0, 2.0, None])
def test_cue_rejects_bad_visible_steps(k):
    with pytest.raises(ValueError, match=f"visible_steps must be an integer >= 1, got {k!r}"):
        CueMask(Counter(), cue=["velocities"], visible_steps=k, groups=Counter.groups)
