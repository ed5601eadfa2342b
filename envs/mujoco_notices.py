"""MuJoCo's notices about Gymnasium's own model files, kept out of the user's way.

Gymnasium's ``half_cheetah.xml`` sets ``<compiler settotalmass="14">``, which MuJoCo 4
deprecates: every HalfCheetah env made (each training env, each evaluation env) prints a
warning and appends it to ``MUJOCO_LOG.TXT`` in the working folder. Neither the user
nor this package wrote that file, and MuJoCo still compiles the same model from it, so while
a Gymnasium MuJoCo env is built that notice is dropped; every other MuJoCo warning passes on
as MuJoCo gives it (printed, and logged to MUJOCO_LOG.TXT).

>>> with quiet_gymnasium_notices("HalfCheetah-v5"):
...     env = gym.make("HalfCheetah-v5")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import gymnasium as gym

# Notices about Gymnasium's bundled model files (the start of MuJoCo's message).
GYMNASIUM_ASSET_NOTICES = ("compiler attribute 'settotalmass' is deprecated",)
GYMNASIUM_MUJOCO_PACKAGE = "gymnasium.envs.mujoco"


def builds_gymnasium_mujoco(env_id: str) -> bool:
    """Whether ``env_id`` is registered to one of Gymnasium's own MuJoCo envs."""
    entry_point = gym.spec(env_id).entry_point
    return isinstance(entry_point, str) and entry_point.startswith(GYMNASIUM_MUJOCO_PACKAGE)


@contextlib.contextmanager
def quiet_gymnasium_notices(env_id: str) -> Iterator[None]:
    """Drop MuJoCo's notices about Gymnasium's model files while ``env_id`` is built.

    A no-op for other envs: importing mujoco fixes its OpenGL backend (``MUJOCO_GL``), so it
    is imported here only where the env would import it anyway.
    """
    if not builds_gymnasium_mujoco(env_id):
        yield
        return
    import mujoco

    previous = mujoco.get_mju_user_warning()

    def handle(message: str) -> None:
        if message.startswith(GYMNASIUM_ASSET_NOTICES):
            return
        if previous is not None:
            previous(message)
        else:  # MuJoCo's own default: print it and log it
            print(f"WARNING: {message}\n", file=sys.stderr, flush=True)
            mujoco.mju_writeLog("WARNING", message)

    mujoco.set_mju_user_warning(handle)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)
