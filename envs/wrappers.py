"""Partial observability as Gymnasium wrappers: mask, dropout, noise, delay, cue.

Each wrapper works on any env with a flat float ``Box`` observation. Wrappers that act on
named groups (``positions``, ``velocities``, ``contact_forces``, ``target`` ...) take them from
:func:`envs.observation_groups.observation_groups` (derived from the MuJoCo model) or from an
explicit ``groups={name: indices}``. Every wrapper publishes the groups of its own output as
``observation_groups``, so they stack: ``SensorDropout(MaskObservation(env, drop=[...]))``.

Missing values are 0, and the observation space is widened to contain 0 where needed.
Randomness comes only from the env's ``np_random``, so ``reset(seed=...)`` reproduces it.

What a wrapper hides is not lost for training: each passes the reading it received on as
``info["privileged"]`` (when wrappers stack, the innermost one's, the full reading, wins), which
a privileged critic reads (agents/inputs.py) and the actor never sees. MaskObservation also
names the readings it hides in ``info["latent"]`` (``{"velocities[0]": ...}``), the variables
that traces record and probes look for in the memory (agents/insight).
"""

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from envs.observation_groups import Groups, observation_groups, validate_groups

__all__ = ["CueMask", "MaskObservation", "ObservationDelay", "SensorDropout", "SensorNoise"]

GroupsArg = Mapping[str, Sequence[int]] | None


def _flat_box(env: gym.Env) -> gym.spaces.Box:
    space = env.observation_space
    if (
        not isinstance(space, gym.spaces.Box)
        or len(space.shape) != 1
        or not np.issubdtype(space.dtype, np.floating)
    ):
        raise ValueError(f"this wrapper needs a flat float Box observation space, got {space}")
    return space


def _groups(env: gym.Env, groups: GroupsArg) -> Groups:
    if groups is None:
        return observation_groups(env)
    return validate_groups(groups, _flat_box(env).shape[0])


def _pick(groups: Groups, names: Sequence[str] | None, what: str) -> list[str]:
    """Validated group names; None means all groups."""
    if names is None:
        return list(groups)
    if isinstance(names, str):
        raise ValueError(f"{what} must be a list of group names, got the string {names!r}")
    unknown = [n for n in names if n not in groups]
    if unknown or not names:
        raise ValueError(f"{what}={list(names)!r}: allowed group names are {sorted(groups)}")
    return list(dict.fromkeys(names))  # without repeats, in the given order


def _groups_if_known(env: gym.Env) -> Groups | None:
    """Groups of ``env`` when derivable, for wrappers that keep the layout to pass on."""
    try:
        return observation_groups(env)
    except ValueError:
        return None


def _with_zero(box: gym.spaces.Box, dims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``box`` widened so that 0 (a missing reading) is inside on ``dims``."""
    low, high = box.low.copy(), box.high.copy()
    low[dims] = np.minimum(low[dims], 0)
    high[dims] = np.maximum(high[dims], 0)
    return low, high


def _with_flags(low: np.ndarray, high: np.ndarray, n: int, dtype) -> gym.spaces.Box:
    return gym.spaces.Box(
        np.concatenate([low, np.zeros(n)]).astype(dtype),
        np.concatenate([high, np.ones(n)]).astype(dtype),
        dtype=dtype,
    )


class HidingWrapper(gym.ObservationWrapper):
    """An observation wrapper that also passes the unhidden reading on as ``info["privileged"]``,
    and what it always hides, named, as ``info["latent"]`` (see :meth:`hidden_readings`)."""

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        return self.observation(observation), self._keep_reading(info, observation)

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        return (
            self.observation(observation),
            reward,
            terminated,
            truncated,
            self._keep_reading(info, observation),
        )

    def hidden_readings(self, observation: np.ndarray) -> dict[str, float]:
        """The readings this wrapper never shows, by name: the variables a memory must carry,
        which traces record and probes decode (agents/insight). None here; MaskObservation's
        are its dropped dims."""
        return {}

    def _keep_reading(self, info: dict[str, Any], observation: np.ndarray) -> dict[str, Any]:
        info.setdefault("privileged", observation)
        hidden = self.hidden_readings(observation)
        if hidden:
            info.setdefault("latent", hidden)
        return info


class MaskObservation(HidingWrapper, gym.utils.RecordConstructorArgs):
    """Removes whole groups of the observation; the observation space shrinks.

    Give exactly one of ``keep`` (only these groups stay) or ``drop`` (these groups go;
    dims outside every group stay). Kept dims keep their original order.

    >>> import gymnasium as gym
    >>> env = MaskObservation(gym.make("Hopper-v5"), drop=["velocities"])
    >>> env.observation_space.shape
    (5,)
    >>> env = MaskObservation(
    ...     gym.make("CartPole-v1"), keep=["positions"],
    ...     groups={"positions": [0, 2], "velocities": [1, 3]})
    >>> env.reset(seed=0)[0].shape
    (2,)
    """

    def __init__(
        self,
        env: gym.Env,
        keep: Sequence[str] | None = None,
        drop: Sequence[str] | None = None,
        groups: GroupsArg = None,
    ):
        gym.utils.RecordConstructorArgs.__init__(self, keep=keep, drop=drop, groups=groups)
        gym.ObservationWrapper.__init__(self, env)
        box = _flat_box(env)
        all_groups = _groups(env, groups)
        if (keep is None) == (drop is None):
            raise ValueError(f"give exactly one of keep or drop, got keep={keep!r}, drop={drop!r}")
        if keep is not None:
            kept_names = _pick(all_groups, keep, "keep")
            kept = np.concatenate([all_groups[n] for n in kept_names])
        else:
            dropped_names = _pick(all_groups, drop, "drop")
            gone = np.concatenate([all_groups[n] for n in dropped_names])
            kept_names = [n for n in all_groups if n not in dropped_names]
            kept = np.setdiff1d(np.arange(box.shape[0]), gone)
        if kept.size == 0:
            raise ValueError(f"keep={keep!r}, drop={drop!r} would leave no observation")
        self.kept_indices: np.ndarray = np.sort(kept)
        new_index = {int(old): new for new, old in enumerate(self.kept_indices)}
        self.observation_groups: Groups = {
            n: np.array([new_index[int(i)] for i in all_groups[n]]) for n in kept_names
        }
        self.observation_space = gym.spaces.Box(
            box.low[self.kept_indices], box.high[self.kept_indices], dtype=box.dtype
        )
        # each hidden dim by its group and place in it, e.g. "velocities[0]" (for MuJoCo robots
        # qvel in joint order: the root's forward speed first), else by its index
        place = {int(i): f"{n}[{k}]" for n, idx in all_groups.items() for k, i in enumerate(idx)}
        hidden = np.setdiff1d(np.arange(box.shape[0]), self.kept_indices)
        self.hidden_names = {place.get(int(i), f"observation[{i}]"): int(i) for i in hidden}

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.kept_indices]

    def hidden_readings(self, observation: np.ndarray) -> dict[str, float]:
        return {name: float(observation[i]) for name, i in self.hidden_names.items()}


class SensorDropout(HidingWrapper, gym.utils.RecordConstructorArgs):
    """Readings of each group go missing in bursts; a 0/1 missing flag per group is appended.

    Each affected group is a two-state Markov chain, advanced once per observation
    (``reset`` starts it from "present"). While present, a burst starts with probability
    ``start_prob``; the reading that starts it is already missing. While missing, the burst
    ends with probability ``1 / mean_burst``, so burst lengths are geometric on {1, 2, ...}
    with mean ``mean_burst``. The stationary missing fraction is
    ``p * m / (1 + p * m)`` (p = start_prob, m = mean_burst).

    Missing values are 0, or the last delivered value with ``hold_last=True`` (0 before any).
    Flags are appended in the order of ``affected``, as groups ``"<group>_missing"``.

    >>> import gymnasium as gym
    >>> env = SensorDropout(gym.make("HalfCheetah-v5"), start_prob=0.1, mean_burst=4)
    >>> env.observation_space.shape  # 17 readings + flags for positions, velocities
    (19,)
    """

    def __init__(
        self,
        env: gym.Env,
        start_prob: float = 0.1,
        mean_burst: float = 4.0,
        affected: Sequence[str] | None = None,
        hold_last: bool = False,
        groups: GroupsArg = None,
    ):
        gym.utils.RecordConstructorArgs.__init__(
            self,
            start_prob=start_prob,
            mean_burst=mean_burst,
            affected=affected,
            hold_last=hold_last,
            groups=groups,
        )
        gym.ObservationWrapper.__init__(self, env)
        if not 0.0 <= start_prob <= 1.0:
            raise ValueError(f"start_prob must be in [0, 1], got {start_prob!r}")
        if not (np.isfinite(mean_burst) and mean_burst >= 1.0):
            raise ValueError(
                f"mean_burst (mean burst length in steps) must be finite and >= 1, "
                f"got {mean_burst!r}"
            )
        box = _flat_box(env)
        all_groups = _groups(env, groups)
        self.affected: list[str] = _pick(all_groups, affected, "affected")
        self.start_prob = float(start_prob)
        self.mean_burst = float(mean_burst)
        self.hold_last = bool(hold_last)
        self._dims = [all_groups[n] for n in self.affected]
        size = box.shape[0]
        self.observation_groups = dict(all_groups)
        for k, name in enumerate(self.affected):
            self.observation_groups[f"{name}_missing"] = np.array([size + k])
        low, high = _with_zero(box, np.concatenate(self._dims))
        self.observation_space = _with_flags(low, high, len(self.affected), box.dtype)
        self.missing = np.zeros(len(self.affected), dtype=bool)
        self._last = np.zeros(size, dtype=box.dtype)

    def _advance(self) -> None:
        u = self.np_random.random(len(self.affected))
        self.missing = np.where(self.missing, u >= 1.0 / self.mean_burst, u < self.start_prob)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.missing[:] = False
        self._last[:] = 0
        return self._deliver(obs), self._keep_reading(info, obs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._deliver(obs), reward, terminated, truncated, self._keep_reading(info, obs)

    def _deliver(self, obs: np.ndarray) -> np.ndarray:
        self._advance()
        out = self.observation(obs)
        self._last[:] = out[: self._last.size]
        return out

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """Applies the current missing state (advanced by reset/step) to a reading."""
        out = np.array(observation, dtype=self.observation_space.dtype)
        for dims, missing in zip(self._dims, self.missing, strict=True):
            if missing:
                out[dims] = self._last[dims] if self.hold_last else 0
        return np.concatenate([out, self.missing.astype(out.dtype)])


class SensorNoise(HidingWrapper, gym.utils.RecordConstructorArgs):
    """Adds Gaussian noise: ``obs + std * scale * N(0, 1)`` per dimension.

    ``std`` alone is an absolute standard deviation (a number, or one per dim). With
    ``scale`` (one positive number per dim, e.g. typical magnitudes of each reading) it is
    relative: 0.05 means 5 % of each dim's scale. Noisy dims get unbounded space limits.

    >>> import gymnasium as gym
    >>> env = SensorNoise(gym.make("Pendulum-v1"), std=0.01)
    >>> bool(env.observation_space.high[0] == float("inf"))
    True
    """

    def __init__(
        self,
        env: gym.Env,
        std: float | Sequence[float],
        scale: Sequence[float] | np.ndarray | None = None,
    ):
        gym.utils.RecordConstructorArgs.__init__(self, std=std, scale=scale)
        gym.ObservationWrapper.__init__(self, env)
        box = _flat_box(env)
        size = box.shape[0]
        sigma = np.asarray(std, dtype=np.float64)
        if sigma.shape not in ((), (size,)) or not np.all(np.isfinite(sigma) & (sigma >= 0)):
            raise ValueError(f"std must be finite and >= 0 (one value or {size}), got {std!r}")
        if scale is not None:
            scale_arr = np.asarray(scale, dtype=np.float64)
            if scale_arr.shape != (size,) or not np.all(np.isfinite(scale_arr) & (scale_arr > 0)):
                raise ValueError(
                    f"scale must be {size} finite positive numbers (one per dim), got {scale!r}"
                )
            sigma = sigma * scale_arr
        self.sigma: np.ndarray = np.broadcast_to(sigma, (size,)).copy()
        self.observation_groups = _groups_if_known(env)
        noisy = self.sigma > 0
        low, high = box.low.copy(), box.high.copy()
        low[noisy], high[noisy] = -np.inf, np.inf
        self.observation_space = gym.spaces.Box(low, high, dtype=box.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        noise = self.sigma * self.np_random.standard_normal(self.sigma.size)
        return (observation + noise).astype(self.observation_space.dtype)


class ObservationDelay(HidingWrapper, gym.utils.RecordConstructorArgs):
    """Readings arrive ``delay`` steps late; until the first one arrives the observation is 0.

    >>> import gymnasium as gym
    >>> env = ObservationDelay(gym.make("CartPole-v1"), delay=2)
    >>> env.reset(seed=0)[0].tolist()
    [0.0, 0.0, 0.0, 0.0]
    """

    def __init__(self, env: gym.Env, delay: int):
        gym.utils.RecordConstructorArgs.__init__(self, delay=delay)
        gym.ObservationWrapper.__init__(self, env)
        if isinstance(delay, bool) or not isinstance(delay, int | np.integer) or delay < 0:
            raise ValueError(f"delay must be an integer number of steps >= 0, got {delay!r}")
        box = _flat_box(env)
        self.delay = int(delay)
        self.observation_groups = _groups_if_known(env)
        low, high = _with_zero(box, np.arange(box.shape[0])) if delay else (box.low, box.high)
        self.observation_space = gym.spaces.Box(low, high, dtype=box.dtype)
        self._queue: deque[np.ndarray] = deque()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        self._queue.clear()
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        self._queue.append(np.array(observation, dtype=self.observation_space.dtype))
        if len(self._queue) > self.delay:
            return self._queue.popleft()
        return np.zeros(self.observation_space.shape, dtype=self.observation_space.dtype)


class CueMask(HidingWrapper, gym.utils.RecordConstructorArgs):
    """The ``cue`` groups are visible in the first ``visible_steps`` observations only.

    Observation t (t = 0 after reset, t = n after the n-th step) shows the cue while
    ``t < visible_steps``; from then on the cue dims are 0 and an appended flag
    (group ``"cue_hidden"``) is 1.

    >>> import gymnasium as gym
    >>> env = CueMask(gym.make("Reacher-v5"), cue=["target"], visible_steps=5)
    >>> env.observation_space.shape  # 10 readings + the cue_hidden flag
    (11,)
    """

    def __init__(
        self,
        env: gym.Env,
        cue: Sequence[str],
        visible_steps: int,
        groups: GroupsArg = None,
    ):
        gym.utils.RecordConstructorArgs.__init__(
            self, cue=cue, visible_steps=visible_steps, groups=groups
        )
        gym.ObservationWrapper.__init__(self, env)
        if (
            isinstance(visible_steps, bool)
            or not isinstance(visible_steps, int | np.integer)
            or visible_steps < 1
        ):
            raise ValueError(f"visible_steps must be an integer >= 1, got {visible_steps!r}")
        box = _flat_box(env)
        all_groups = _groups(env, groups)
        self.cue: list[str] = _pick(all_groups, cue, "cue")
        self.visible_steps = int(visible_steps)
        self.cue_indices: np.ndarray = np.concatenate([all_groups[n] for n in self.cue])
        self.observation_groups = {**all_groups, "cue_hidden": np.array([box.shape[0]])}
        low, high = _with_zero(box, self.cue_indices)
        self.observation_space = _with_flags(low, high, 1, box.dtype)
        self.t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        self.t = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        self.t += 1
        return super().step(action)

    @property
    def cue_hidden(self) -> bool:
        return self.t >= self.visible_steps

    def observation(self, observation: np.ndarray) -> np.ndarray:
        out = np.array(observation, dtype=self.observation_space.dtype)
        if self.cue_hidden:
            out[self.cue_indices] = 0
        return np.append(out, out.dtype.type(self.cue_hidden))
