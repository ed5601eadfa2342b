"""Reacher-Cue: see the target for a moment, then reach it from memory.

## Description
Gymnasium's Reacher-v5 two-link arm, with the target shown only as a cue. During the first
``CUE_STEPS`` observations the target's position and the fingertip-to-target vector are
visible and the arm is held: its actions are replaced by zero torque ("watch, then act").
From then on those dims read 0, a ``cue_hidden`` flag is 1, and the arm moves; it must bring
the fingertip onto the remembered target before the episode ends (50 steps, as Reacher-v5).

## Observation Space
``Box(-inf, inf, (11,), float64)``: Reacher-v5's 10 readings (cos and sin of the two joint
angles, target x and y in m, joint angular velocities in rad/s, fingertip - target x and y in
m) with the target dims 4, 5, 8, 9 zeroed once hidden, then the ``cue_hidden`` flag.

## Rewards
Reacher-v5's: ``-|fingertip - target| - |action|^2``; no control cost while the arm is held.

## Success
``info["is_success"]`` on every step: fingertip within ``SUCCESS_DISTANCE`` (0.02 m) of the
target; on the final step it is the episode's success. 0.02 m is where the fingertip sphere
(radius 0.01 m) and the target sphere (radius 0.009 m) touch. ``info["latent"]`` holds the
target ``{"target_x", "target_y"}`` (m) for memory probes.

## Memoryless ceiling
Holding the arm during the cue is what makes memory necessary: an arm that could move while
it sees the target would store the target in its own joint angles and velocities, which a
memoryless policy reads back. Held, the arm's state when the cue disappears depends only on
its random initial state, which Reacher draws independently of the target. Everything a
memoryless policy sees afterwards is then independent of the target, hence so is the final
fingertip position X, and P(success) = E_X[P(|X - T| < r)] <= max_x P(|x - T| < r). Reacher
draws T uniformly on the disc of radius R = 0.2 m (rejection sampling from a square), so for
any x the probability is at most the area ratio (r / R)^2 = (0.02 / 0.2)^2 = 0.01, reached
by any reachable x at least r inside the disc. ``MEMORYLESS_CEILING`` = 0.01; the oracle
(:func:`oracle_action`, which reads the latent) succeeds in nearly every episode.

## Arguments
``cue_steps`` (5), ``success_distance`` (0.02 m) and ``hold_arm`` (True), through
``gym.make("Reacher-Cue-v5", ...)`` or ``--env-kwargs``. ``hold_arm=False`` lets the arm move
during the cue, which voids the ceiling (``memoryless_ceiling`` is None); with ``cue_steps=50``
as well the target never hides: Reacher-v5 with this success test, the reference for how
precisely an agent reaches a target it sees.
"""

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv

from envs.wrappers import CueMask

CUE_STEPS = 5  # observations showing the target; the arm is held meanwhile
SUCCESS_DISTANCE = 0.02  # m, fingertip sphere (0.01) + target sphere (0.009) radii, rounded
TARGET_RADIUS = 0.2  # m, Reacher-v5 draws the target uniformly on this disc
MEMORYLESS_CEILING = (SUCCESS_DISTANCE / TARGET_RADIUS) ** 2


class ReacherCue(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Reacher with the target visible for ``cue_steps`` observations while the arm is held.

    >>> from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv
    >>> env = ReacherCue(ReacherEnv())
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, sorted(info["latent"])
    ((11,), ['target_x', 'target_y'])
    """

    def __init__(
        self,
        env: gym.Env,
        cue_steps: int = CUE_STEPS,
        success_distance: float = SUCCESS_DISTANCE,
        hold_arm: bool = True,
    ):
        gym.utils.RecordConstructorArgs.__init__(
            self, cue_steps=cue_steps, success_distance=success_distance, hold_arm=hold_arm
        )
        if not isinstance(env.unwrapped, ReacherEnv):
            raise ValueError(f"ReacherCue wraps a Reacher-v5 env, got {env.unwrapped}")
        if not 0 < success_distance < TARGET_RADIUS:
            raise ValueError(
                f"success_distance must be in (0, {TARGET_RADIUS}) m, got {success_distance!r}"
            )
        super().__init__(
            CueMask(env, cue=["target", "fingertip_to_target"], visible_steps=cue_steps)
        )
        self.cue_steps = int(cue_steps)
        self.success_distance = float(success_distance)
        self.hold_arm = bool(hold_arm)
        # An arm free to move during the cue can keep the target in its joints: no ceiling then.
        self.memoryless_ceiling = (
            (self.success_distance / TARGET_RADIUS) ** 2 if self.hold_arm else None
        )
        self.observation_groups = self.env.observation_groups
        self._steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        self._steps = 0
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, {**info, "latent": self._latent()}

    def step(self, action):
        if self.hold_arm and self._steps < self.cue_steps:  # held while the target is visible
            action = np.zeros(self.action_space.shape, dtype=self.action_space.dtype)
        self._steps += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {
            **info,
            "distance": self.distance(),
            "is_success": self.distance() < self.success_distance,
            "latent": self._latent(),
        }
        return obs, reward, terminated, truncated, info

    def distance(self) -> float:
        """Fingertip-to-target distance in m."""
        base = self.env.unwrapped
        return float(np.linalg.norm(base.get_body_com("fingertip") - base.get_body_com("target")))

    def _latent(self) -> dict[str, float]:
        x, y = self.env.unwrapped.get_body_com("target")[:2]
        return {"target_x": float(x), "target_y": float(y)}


def make_reacher_cue(render_mode: str | None = None, **kwargs: Any) -> ReacherCue:
    """Entry point of ``Reacher-Cue-v5``; ``kwargs`` go to ReacherCue or Reacher-v5."""
    names = ("cue_steps", "success_distance", "hold_arm")
    cue_kwargs = {k: kwargs.pop(k) for k in names if k in kwargs}
    return ReacherCue(ReacherEnv(render_mode=render_mode, **kwargs), **cue_kwargs)


# Forward kinematics of Reacher-v5 (body1 at 0.1 m on link 0, fingertip 0.11 m on link 1).
_LINKS = (0.1, 0.11)
_ELBOW_LIMIT = 3.0  # rad, range of joint1


def oracle_action(observation: np.ndarray, latent: dict[str, float]) -> np.ndarray:
    """Reaches the target read from ``latent``: inverse kinematics, then joint PD control."""
    cos0, cos1, sin0, sin1 = observation[:4]
    angles = np.array([np.arctan2(sin0, cos0), np.arctan2(sin1, cos1)])
    velocities = observation[6:8]
    target = np.array([latent["target_x"], latent["target_y"]])
    l0, l1 = _LINKS
    reach = np.clip(np.linalg.norm(target), abs(l0 - l1) + 1e-6, l0 + l1 - 1e-6)
    cos_elbow = (reach**2 - l0**2 - l1**2) / (2 * l0 * l1)
    elbow = np.arccos(np.clip(cos_elbow, -1, 1)) * (1 if angles[1] >= 0 else -1)
    elbow = np.clip(elbow, -_ELBOW_LIMIT, _ELBOW_LIMIT)
    shoulder = np.arctan2(target[1], target[0]) - np.arctan2(
        l1 * np.sin(elbow), l0 + l1 * np.cos(elbow)
    )
    error = np.array([shoulder, elbow]) - angles
    error = (error + np.pi) % (2 * np.pi) - np.pi
    return np.clip(2.0 * error - 0.2 * velocities, -1.0, 1.0)
