"""Registers the partially observable robots with Gymnasium.

- ``<Robot>-P-v5``: only positions (joint angles included) observed, velocities hidden;
  ``<Robot>-V-v5``: only velocities observed, positions hidden. These are the "-P"/"-V" tasks
  of recurrent model-free RL (Han et al. 2020, VRM; Ni et al. 2022, "Recurrent Model-Free RL
  Can Be a Strong Baseline for Many POMDPs"), ported to Gymnasium's MuJoCo v5 robots. Ant's
  contact forces are hidden in both: they depend on positions and velocities alike.
- ``<Robot>-Dropout-v5``: full observation, but each group (positions, velocities, contact
  forces) goes missing in bursts; see DROPOUT_START_PROB and DROPOUT_MEAN_BURST.
- ``Reacher-Cue-v5``: the target is shown for 5 steps only (envs/reacher_cue.py).
- ``CartPole-P-v1``, ``Pendulum-P-v1``: velocities hidden, like rl-baselines3-zoo's
  CartPoleNoVel-v1 and PendulumNoVel-v1.

Each id keeps its base env's episode limit; ``render_mode`` and the base env's keyword
arguments pass through ``gymnasium.make``.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

from envs.mujoco_notices import quiet_gymnasium_notices
from envs.wrappers import MaskObservation, SensorDropout

# A burst starts on 10 % of present steps and lasts 4 steps on average, so a group is missing
# p*m/(1+p*m) = 2/7 ~ 29 % of the time. Bursts of ~4 steps (0.2 s for HalfCheetah and Ant,
# 0.03 s for Hopper and Walker2d) outlast a 2-frame stack; 71 % presence keeps them learnable.
DROPOUT_START_PROB = 0.1
DROPOUT_MEAN_BURST = 4.0
DROPOUT_SHARE = (  # p*m/(1+p*m): the share of steps a group is missing
    DROPOUT_START_PROB * DROPOUT_MEAN_BURST / (1 + DROPOUT_START_PROB * DROPOUT_MEAN_BURST)
)

ROBOTS = ("HalfCheetah", "Hopper", "Walker2d", "Ant")

# Classic-control layouts are not derivable from a MuJoCo model, so they are written here.
CARTPOLE_GROUPS = {"positions": (0, 2), "velocities": (1, 3)}  # x, theta | x_dot, theta_dot
PENDULUM_GROUPS = {"positions": (0, 1), "velocities": (2,)}  # cos, sin | angular velocity


def make_base(base_id: str, **kwargs: Any) -> gym.Env:
    """The bare base env of a registered id (no TimeLimit or checker: the outer make adds them)."""
    spec = gym.spec(base_id)
    with quiet_gymnasium_notices(base_id):
        return load_env_creator(spec.entry_point)(**{**spec.kwargs, **kwargs})


def make_masked(
    base_id: str,
    keep: Sequence[str],
    groups: Mapping[str, Sequence[int]] | None = None,
    **kwargs: Any,
) -> gym.Env:
    """Entry point of the -P / -V ids: the base env showing only the ``keep`` groups."""
    return MaskObservation(make_base(base_id, **kwargs), keep=list(keep), groups=groups)


def make_dropout(
    base_id: str,
    start_prob: float = DROPOUT_START_PROB,
    mean_burst: float = DROPOUT_MEAN_BURST,
    **kwargs: Any,
) -> gym.Env:
    """Entry point of the -Dropout ids: every group of the base env drops out in bursts."""
    return SensorDropout(make_base(base_id, **kwargs), start_prob=start_prob, mean_burst=mean_burst)


def _register(env_id: str, entry_point: str, base_id: str, **kwargs: Any) -> None:
    """Registers ``env_id`` with its base env's episode limit."""
    gym.register(
        id=env_id,
        entry_point=entry_point,
        max_episode_steps=gym.spec(base_id).max_episode_steps,
        kwargs={"base_id": base_id, **kwargs},
    )


# id -> what the agent does not see, for listings (train.py --list-envs)
HIDES: dict[str, str] = {}


def _register_suites() -> tuple[list[str], list[str]]:
    mujoco: list[str] = []
    for robot in ROBOTS:
        contacts = ["contact forces"] if robot == "Ant" else []
        for suffix, shown, hidden in (
            ("P", "positions", ["velocities"]),
            ("V", "velocities", ["positions", "joint angles"]),
        ):
            env_id = f"{robot}-{suffix}-v5"
            _register(env_id, "envs.pomdp_suite:make_masked", f"{robot}-v5", keep=(shown,))
            HIDES[env_id] = _in_words(hidden + contacts)
            mujoco.append(env_id)
    for robot in ROBOTS:
        _register(f"{robot}-Dropout-v5", "envs.pomdp_suite:make_dropout", f"{robot}-v5")
        HIDES[f"{robot}-Dropout-v5"] = (
            f"each sensor group {DROPOUT_SHARE:.0%} of the time, in bursts of "
            f"~{DROPOUT_MEAN_BURST:g} steps"
        )
        mujoco.append(f"{robot}-Dropout-v5")
    gym.register(
        id="Reacher-Cue-v5",
        entry_point="envs.reacher_cue:make_reacher_cue",
        max_episode_steps=gym.spec("Reacher-v5").max_episode_steps,
    )
    HIDES["Reacher-Cue-v5"] = "the target, once a cue at the start (the arm held) is over"
    mujoco.append("Reacher-Cue-v5")

    classic: list[str] = []
    for env_id, base_id, groups, hidden in (
        ("CartPole-P-v1", "CartPole-v1", CARTPOLE_GROUPS, "the cart's and the pole's velocities"),
        ("Pendulum-P-v1", "Pendulum-v1", PENDULUM_GROUPS, "the angular velocity"),
    ):
        _register(
            env_id, "envs.pomdp_suite:make_masked", base_id, keep=("positions",), groups=groups
        )
        HIDES[env_id] = hidden
        classic.append(env_id)
    return mujoco, classic


def _in_words(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


POMDP_MUJOCO, POMDP_CLASSIC = _register_suites()
