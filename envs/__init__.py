"""Tasks for recurrent-control. Importing this package registers every id with Gymnasium.

Suites (lists of registered ids):

- ``MEMORY``: memory and timer tasks of the LSTM literature (envs/memory_suite.py).
- ``POMDP_MUJOCO``: MuJoCo robots with velocities or positions hidden, or sensor dropout,
  and the cue-reaching task (envs/pomdp_suite.py).
- ``POMDP_CLASSIC``: CartPole and Pendulum with velocities hidden, fast sanity checks.

Tasks that need memory document a *memoryless ceiling*: the best success rate any policy
without memory can reach. It is readable on any made env as
``env.get_wrapper_attr("memoryless_ceiling")``.
"""

from envs.memory_suite import MEMORY
from envs.pomdp_suite import POMDP_CLASSIC, POMDP_MUJOCO

SUITES: dict[str, list[str]] = {
    "memory": MEMORY,
    "pomdp_mujoco": POMDP_MUJOCO,
    "pomdp_classic": POMDP_CLASSIC,
}

__all__ = ["MEMORY", "POMDP_CLASSIC", "POMDP_MUJOCO", "SUITES"]
