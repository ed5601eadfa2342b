"""The one loop that acts in a vectorised env while carrying the recurrent state.

Every rollout outside training (evaluation, video, traces) goes through ``steps``. The state
is reset exactly at episode starts: ``episode_start`` is the previous step's ``done``, which
the policy uses to zero that env's state before its next step (CleanRL's ``(1 - done)``).
Feed-forward models go through the same loop; their state stays None.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv


@dataclass
class Step:
    """One step of all envs: what each saw, did and got; ``state`` is after acting."""

    observation: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    done: np.ndarray
    info: list[dict[str, Any]]
    state: tuple[np.ndarray, ...] | None
    episode_start: np.ndarray


def steps(
    model: BaseAlgorithm, env: VecEnv, deterministic: bool = True, keep_state: bool = True
) -> Iterator[Step]:
    """Act forever in ``env`` (it auto-resets); the caller stops when it has enough.

    ``keep_state=False`` drops the memory at every step: only for tests and ablations that
    show what the memory is worth.
    """
    observation = env.reset()
    state = None
    episode_start = np.ones(env.num_envs, dtype=bool)
    while True:
        action, state = model.predict(
            observation, state=state, episode_start=episode_start, deterministic=deterministic
        )
        if not keep_state:
            state = None
        next_observation, reward, done, info = env.step(action)
        yield Step(observation, action, reward, done, info, state, episode_start)
        observation, episode_start = next_observation, done


@dataclass
class Episode:
    total_return: float
    length: int
    success: bool | None
    final_info: dict[str, Any]  # the env's info on the last step (a distance, a count ...)


def episodes(
    model: BaseAlgorithm,
    env: VecEnv,
    n_episodes: int,
    deterministic: bool = True,
    keep_state: bool = True,
) -> list[Episode]:
    """Run ``n_episodes`` episodes spread evenly over the envs.

    Each env contributes a fixed quota (as SB3's evaluate_policy does), so envs whose
    episodes end sooner do not bias the sample towards short episodes.
    """
    n_envs = env.num_envs
    quotas = np.array([(n_episodes + i) // n_envs for i in range(n_envs)])
    counts = np.zeros(n_envs, dtype=int)
    returns = np.zeros(n_envs)
    lengths = np.zeros(n_envs, dtype=int)
    finished: list[Episode] = []
    for step in steps(model, env, deterministic, keep_state):
        returns += step.reward
        lengths += 1
        for i in np.flatnonzero(step.done):
            if counts[i] < quotas[i]:
                success = step.info[i].get("is_success")
                finished.append(
                    Episode(
                        float(returns[i]),
                        int(lengths[i]),
                        None if success is None else bool(success),
                        step.info[i],
                    )
                )
                counts[i] += 1
            returns[i], lengths[i] = 0.0, 0
        if (counts >= quotas).all():
            return finished
    raise AssertionError("unreachable: steps() never ends")
