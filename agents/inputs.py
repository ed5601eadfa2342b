"""What the networks read besides the observation: the previous observation, action and reward
(the actor), and the env's hidden state (a privileged critic).

Both are Gymnasium wrappers that the env factory puts on every env of a run whose config asks
for them (``previous_observation``, ``previous_action``, ``previous_reward``,
``privileged_critic``), so evaluation, videos and traces rebuild exactly what the agent was
trained on.

Where the privileged state comes from, in this order:

1. ``info["privileged"]``, an array, given by ``reset`` and every ``step``. The
   partial-observability wrappers of ``envs.wrappers`` put the observation they hide there,
   so the ``-P``, ``-V`` and ``-Dropout`` robots give their full observation. A user's env
   opts in by doing the same.
2. ``info["latent"]``, the dict of numbers that the memory tasks give (their cue, count,
   steps left ...), flattened in its key order.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.recurrent.policies import OBSERVATION_KEY, PRIVILEGED_KEY


def _flat_box(space: gym.Space, what: str) -> spaces.Box:
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"{what} needs a flat Box observation space, got {space}")
    return space


def previous_step_layout(
    action_space: gym.Space, wrapped_size: int, action: bool, reward: bool, observation: bool
) -> tuple[int, list[tuple[str, int]]]:
    """How ``PreviousStep`` lays out an observation of ``wrapped_size`` values: the size of the
    env's own observation, then what the wrapper appends after it, in order, as ``(what, size)``.
    Exported policies describe their input with it (agents/deploy/files.py)."""
    appended = []
    if action:
        if isinstance(action_space, spaces.Discrete | spaces.MultiDiscrete):
            appended.append(("previous action, one-hot", _one_hot_size(action_space)))
        else:
            action_size = int(np.prod(action_space.shape))
            appended.append(("previous action, as sent to the env", action_size))
    if reward:
        appended.append(("previous reward", 1))
    env_size = wrapped_size - sum(size for _, size in appended)
    if observation:  # as long as the env's own
        env_size //= 2
        appended.insert(0, ("previous env observation", env_size))
    return env_size, appended


def _one_hot_size(space: spaces.Discrete | spaces.MultiDiscrete) -> int:
    return int(space.n) if isinstance(space, spaces.Discrete) else int(space.nvec.sum())


class PreviousStep(gym.Wrapper):
    """Appends what the previous step showed and did to the observation: its observation, its
    action (one-hot if discrete) and its reward, each if asked for.

    An agent that sees what it just did can tell its own choices from the world's response,
    which recurrent agents of the meta-RL and POMDP literature are given routinely (RL^2,
    Duan et al. 2016; Ni et al. 2022). The previous observation puts a reading's change (a
    velocity, where positions are observed) one linear layer away, as two stacked frames do.
    After a reset the previous action and reward are zeros and the previous observation is the
    first one (no change yet).

    >>> env = PreviousStep(gym.make("CartPole-v1"), action=True, reward=True)
    >>> env.observation_space.shape
    (7,)
    >>> obs, _ = env.reset(seed=0)
    >>> env.step(1)[0][4:].tolist()
    [0.0, 1.0, 1.0]
    """

    def __init__(
        self, env: gym.Env, action: bool = True, reward: bool = False, observation: bool = False
    ) -> None:
        super().__init__(env)
        box = _flat_box(env.observation_space, "PreviousStep")
        action_space = env.action_space
        if not action:
            low = high = np.zeros(0)
        elif isinstance(action_space, spaces.Box):
            low, high = action_space.low.ravel(), action_space.high.ravel()
        elif isinstance(action_space, spaces.Discrete | spaces.MultiDiscrete):
            size = _one_hot_size(action_space)
            low, high = np.zeros(size), np.ones(size)
        elif isinstance(action_space, spaces.MultiBinary):
            low, high = np.zeros(action_space.n), np.ones(action_space.n)
        else:
            raise ValueError(f"PreviousStep cannot encode actions of {action_space}")
        if reward:
            low, high = np.append(low, -np.inf), np.append(high, np.inf)
        self._size = len(low)  # what a reset fills with zeros
        if observation:
            low, high = np.concatenate([box.low, low]), np.concatenate([box.high, high])
        self.action, self.reward, self.observation = action, reward, observation
        self._last: np.ndarray | None = None
        self.observation_space = spaces.Box(
            np.concatenate([box.low, low]).astype(box.dtype),
            np.concatenate([box.high, high]).astype(box.dtype),
            dtype=box.dtype,
        )

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        observation, info = self.env.reset(**kwargs)
        self._last = observation  # no change yet
        return self._append(observation, np.zeros(self._size)), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        extra = self._encode(action) if self.action else np.zeros(0)
        if self.reward:
            extra = np.append(extra, reward)
        return self._append(observation, extra), reward, terminated, truncated, info

    def _encode(self, action: Any) -> np.ndarray:
        space = self.env.action_space
        if isinstance(space, spaces.Discrete):
            return np.eye(space.n)[int(action) - space.start]
        if isinstance(space, spaces.MultiDiscrete):
            offsets = np.asarray(action).ravel() - space.start.ravel()
            return np.concatenate(
                [np.eye(n)[int(k)] for n, k in zip(space.nvec, offsets, strict=True)]
            )
        if isinstance(space, spaces.Box):
            # what the env acts on: MuJoCo clamps controls to their range and classic control
            # clips, so an action beyond the bounds is shown as the bound (and the observation
            # stays inside its space)
            return np.clip(
                np.asarray(action, dtype=np.float64).ravel(), space.low.ravel(), space.high.ravel()
            )
        return np.asarray(action, dtype=np.float64).ravel()

    def _append(self, observation: np.ndarray, extra: np.ndarray) -> np.ndarray:
        if self.observation:
            extra = np.concatenate([self._last, extra])
            self._last = np.array(observation)  # a copy: an env may reuse its array
        return np.concatenate([observation, extra]).astype(self.observation_space.dtype)


def privileged_state(info: dict[str, Any]) -> np.ndarray | None:
    """The env's hidden state from one step's ``info`` (see the module docstring), or None."""
    if PRIVILEGED_KEY in info:
        return np.asarray(info[PRIVILEGED_KEY], dtype=np.float32).ravel()
    latent = info.get("latent")
    if isinstance(latent, dict) and latent:
        return np.array([float(value) for value in latent.values()], dtype=np.float32)
    return None


class PrivilegedObservation(gym.Wrapper):
    """Dict observations ``{"observation": what the robot senses, "privileged": hidden state}``.

    The actor reads ``observation`` only, the critic both (asymmetric actor-critic, Pinto et
    al. 2018). The size of the privileged vector is read from a first ``reset``, unless
    ``size`` is given. With ``required=False`` (evaluation, where only the actor acts) an env
    that offers no privileged state gets zeros, so a trained agent runs on any env with its
    observation space.
    """

    def __init__(self, env: gym.Env, required: bool = True, size: int | None = None) -> None:
        super().__init__(env)
        self.required = required
        if size is None:
            _, info = env.reset()
            state = privileged_state(info)
            if state is None:
                raise ValueError(_no_state_message(env))
            size = len(state)
        self._size = size
        self.observation_space = spaces.Dict(
            {
                OBSERVATION_KEY: env.observation_space,
                PRIVILEGED_KEY: spaces.Box(-np.inf, np.inf, (size,), np.float32),
            }
        )

    def reset(self, **kwargs: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        observation, info = self.env.reset(**kwargs)
        return self._with_state(observation, info), info

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        return self._with_state(observation, info), reward, terminated, truncated, info

    def _with_state(self, observation: Any, info: dict[str, Any]) -> dict[str, np.ndarray]:
        state = privileged_state(info)
        if state is None:
            if self.required:
                raise ValueError(_no_state_message(self.env))
            state = np.zeros(self._size, np.float32)
        elif len(state) != self._size:
            raise ValueError(
                f"the privileged state has {len(state)} values, the critic was built for "
                f"{self._size}; an env must give the same size on every step"
            )
        return {OBSERVATION_KEY: observation, PRIVILEGED_KEY: state}


def actor_space(space: gym.Space) -> gym.Space:
    """What the actor reads of an observation space: the ``observation`` part of the Dict that
    ``PrivilegedObservation`` makes, else the whole space."""
    if isinstance(space, spaces.Dict) and PRIVILEGED_KEY in space.spaces:
        return space[OBSERVATION_KEY]
    return space


def _no_state_message(env: gym.Env) -> str:
    name = env.spec.id if env.spec else type(env.unwrapped).__name__
    return (
        f"env {name} offers no privileged state for the critic: give info['privileged'] (an "
        "array) or info['latent'] (a dict of numbers) from reset() and step(), or set "
        "privileged_critic=false"
    )
