"""Tasks for recurrent-control. Importing this package registers every id with Gymnasium.

Suites (lists of registered ids):

- ``MEMORY``: memory and timer tasks of the LSTM literature (envs/memory_suite.py).
- ``POMDP_MUJOCO``: MuJoCo robots with velocities or positions hidden, or sensor dropout,
  and the cue-reaching task (envs/pomdp_suite.py).
- ``POMDP_CLASSIC``: CartPole and Pendulum with velocities hidden, fast sanity checks.

Tasks that need memory document a *memoryless ceiling*: the best success rate any policy
without memory can reach. It is readable on any made env as
``env.get_wrapper_attr("memoryless_ceiling")``. :func:`describe` says in a few words what a
task's memory must carry, or what a robot does not see.

Without ``import envs``, ``gymnasium.make("envs:Hopper-P-v5")`` imports it first.
"""

from envs.memory_suite import CARRIES, MEMORY
from envs.pomdp_suite import HIDES, POMDP_CLASSIC, POMDP_MUJOCO

SUITES: dict[str, list[str]] = {
    "memory": MEMORY,
    "pomdp_mujoco": POMDP_MUJOCO,
    "pomdp_classic": POMDP_CLASSIC,
}


def describe(env_id: str) -> str:
    """E.g. "carries: the first symbol, across 1 to 10 x's" or "hides: velocities"; "" for an
    id that is not ours."""
    if env_id in CARRIES:
        return f"carries: {CARRIES[env_id]}"
    if env_id in HIDES:
        return f"hides: {HIDES[env_id]}"
    return ""


__all__ = ["MEMORY", "POMDP_CLASSIC", "POMDP_MUJOCO", "SUITES", "describe"]
