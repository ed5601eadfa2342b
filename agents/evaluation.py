"""Judging a trained agent: episode statistics, and a video a person can watch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from scipy import stats

from agents import atomic
from agents.environments import cannot_render, memoryless_ceiling
from agents.errors import UserError
from agents.rollout import Episode, episodes, steps
from agents.runs import Run, load

VIDEO_SUFFIXES = (".mp4", ".gif")


def evaluate(
    run: Run | str | Path,
    n_episodes: int = 100,
    deterministic: bool = True,
    seed: int = 0,
    n_envs: int = 1,
    video: str | Path | None = None,
    video_episodes: int = 1,
    keep_state: bool = True,
) -> dict[str, Any]:
    """Statistics over ``n_episodes`` episodes (and, with ``video``, a recording).

    Returns env_id, algo, episodes, mean_return, std_return, ci95 (Student-t interval of the
    mean return), mean_length, success_rate (None when the env does not report
    ``info["is_success"]``), returns and lengths (per episode, in the order they ended), the
    task's memoryless_ceiling (None when it states none), and deterministic, seed and n_envs,
    which name the episodes: env i of n_envs is seeded seed + i.
    """
    counts = {"n_episodes (--episodes)": n_episodes, "n_envs (--n-envs)": n_envs,
              "video_episodes (--video-episodes)": video_episodes}  # fmt: skip
    for name, count in counts.items():
        if count <= 0:
            raise UserError(f"{name} must be a positive integer, got {count}")
    if seed < 0:
        raise UserError(f"seed (--seed) must be >= 0 (Gymnasium seeds envs with it), got {seed}")
    if video is not None and Path(video).suffix not in VIDEO_SUFFIXES:
        raise UserError(f"video {video} must end in .mp4 or .gif")
    run = run if isinstance(run, Run) else load(run)
    env = run.make_env(n_envs=n_envs, seed=seed)
    try:
        results = episodes(run.model, env, n_episodes, deterministic, keep_state)
        ceiling = memoryless_ceiling(env)
    finally:
        env.close()
    metrics = {
        "env_id": run.config.env,
        "algo": run.config.algo,
        **summarize(results),
        "memoryless_ceiling": ceiling,
        "deterministic": deterministic,
        "seed": seed,
        "n_envs": n_envs,
    }
    if video is not None:
        metrics["video"] = str(record_video(run, video, video_episodes, deterministic, seed))
    return metrics


def summarize(results: list[Episode]) -> dict[str, Any]:
    returns = np.array([episode.total_return for episode in results])
    lengths = [episode.length for episode in results]
    n = len(returns)
    mean = float(returns.mean())
    std = float(returns.std(ddof=1)) if n > 1 else 0.0
    half_width = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else 0.0
    successes = [episode.success for episode in results if episode.success is not None]
    return {
        "episodes": n,
        "mean_return": mean,
        "std_return": std,
        "ci95": [mean - half_width, mean + half_width],
        "mean_length": float(np.mean(lengths)),
        "success_rate": float(np.mean(successes)) if len(successes) == n else None,
        "returns": returns.tolist(),  # per episode: spread, outliers, other statistics
        "lengths": lengths,
    }


def record_video(
    run: Run, path: str | Path, n_episodes: int, deterministic: bool = True, seed: int = 0
) -> Path:
    """Render the first ``n_episodes`` episodes of one env into an .mp4 or .gif."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = run.make_env(n_envs=1, seed=seed, render_mode="rgb_array", wrapper_class=FrameCollector)
    try:
        finished = 0
        for step in steps(run.model, env, deterministic):
            finished += int(step.done[0])
            if finished >= n_episodes:
                break
        frames = env.get_attr("frames")[0][:-1]  # the last frame starts an unplayed episode
        fps = env.get_attr("metadata")[0].get("render_fps") or 30
    except gym.error.DependencyNotInstalled as error:  # e.g. pygame for classic control
        raise UserError(f"cannot render {run.config.env}: {str(error).splitlines()[0]}") from None
    finally:
        env.close()
    with atomic.replacing(path) as temporary:
        if path.suffix == ".gif":
            every, delay_ms = gif_timing(fps)
            imageio.mimsave(temporary, frames[::every], duration=delay_ms, loop=0)
        else:
            imageio.mimsave(temporary, frames, fps=fps, macro_block_size=1)
    return path


GIF_MAX_FPS = 25  # GIF delays are whole 1/100 s; browsers play delays under 20 ms at 100 ms


def gif_timing(fps: float) -> tuple[int, int]:
    """(keep every n-th frame, delay per kept frame in ms) that play a GIF in real time."""
    every = max(1, round(fps / GIF_MAX_FPS))
    delay_ms = max(20, 10 * round(100 * every / fps))
    return every, delay_ms


class FrameCollector(gym.Wrapper):
    """Keeps a frame after every reset and step, before the vectorised env's auto-reset can
    hide an episode's last state."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        if env.render_mode != "rgb_array":
            name = env.spec.id if env.spec else type(env.unwrapped).__name__
            raise cannot_render(name, f"its render_mode is {env.render_mode!r}, not 'rgb_array'")
        self.frames: list[np.ndarray] = []

    def reset(self, **kwargs):
        result = self.env.reset(**kwargs)
        self.frames.append(np.asarray(self.env.render()))
        return result

    def step(self, action):
        result = self.env.step(action)
        self.frames.append(np.asarray(self.env.render()))
        return result
