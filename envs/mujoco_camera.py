"""A camera that keeps a walking robot in the picture.

Gymnasium 1.x renders its MuJoCo envs with a free camera. Its locomotion envs name the body to
follow (``trackbodyid`` in their camera config), which a free camera ignores, and HalfCheetah
names none: a robot that walks well leaves the picture within a few seconds and a video shows
an empty floor. A tracking camera at the same distance and angle keeps it in frame.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco

ROOT_BODY = 1  # the first body after the world: a locomotion robot's torso


def follow_tracked_body(env: gym.Env) -> gym.Env:
    """Make a MuJoCo ``env``'s camera follow its robot, if the robot moves through the world
    (a free or sliding root joint; an arm fixed to the ground keeps its camera)."""
    robot = env.unwrapped
    renderer = getattr(robot, "mujoco_renderer", None)
    if renderer is None or renderer.camera_id != -1 or not _moves_through_the_world(robot.model):
        return env
    config = dict(renderer.default_cam_config or {})  # Gymnasium shares one dict per env class
    config.setdefault("trackbodyid", ROOT_BODY)
    config["type"] = mujoco.mjtCamera.mjCAMERA_TRACKING
    renderer.default_cam_config = config
    renderer.camera_id = None  # -1 would turn the camera back to free on every frame
    return env


def _moves_through_the_world(model: mujoco.MjModel) -> bool:
    roaming = {int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_SLIDE)}
    return (
        model.njnt > 0
        and int(model.jnt_type[0]) in roaming
        and int(model.jnt_bodyid[0]) == ROOT_BODY
    )
