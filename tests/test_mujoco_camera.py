"""The camera of a video keeps a walking robot in the picture."""

from __future__ import annotations

import numpy as np
import pytest

from agents.environments import make_single_env

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _robot_pixels(frame: np.ndarray) -> int:
    """Pixels of the robot's brown-orange body (the floor is grey-green and black, the sky
    blue)."""
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    return int(np.sum((r > g + 40) & (r > b + 60)))


@pytest.mark.parametrize("env_id", ["Hopper-P-v5", "HalfCheetah-v5"])
def test_robot_stays_in_the_picture_when_it_walks_away(env_id):
    env = make_single_env(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    at_start = _robot_pixels(env.render())
    robot = env.unwrapped
    qpos = robot.data.qpos.copy()
    qpos[0] += 5.0  # five metres down the track, as a good walker is after a few seconds
    robot.set_state(qpos, robot.data.qvel.copy())
    walked_away = _robot_pixels(env.render())
    env.close()
    assert at_start > 500
    assert walked_away > 0.5 * at_start
