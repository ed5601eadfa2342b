"""``train.py --list-envs``: every id we register, what it asks of the agent, its ceiling."""

from __future__ import annotations

import envs
from agents.environments import make_single_env, memoryless_ceiling

SUITE_TITLES = {
    "memory": "Memory and timer tasks (ceiling: the best success rate without memory)",
    "pomdp_mujoco": "MuJoCo robots that do not see everything",
    "pomdp_classic": "Classic control without velocities (quick checks)",
}
ID_WIDTH = 24


def env_listing() -> str:
    """One line per id: the id, its memoryless ceiling ("-" where it states none) and what
    its memory must carry or what it hides; the ceiling is read from the made env, so it
    follows the id's own settings (Counting-Long-v0 counts further than Counting-v0)."""
    lines = [f"{'id':<{ID_WIDTH + 2}}ceiling  what its memory must carry, or what it hides"]
    for suite, ids in envs.SUITES.items():
        lines.append(SUITE_TITLES.get(suite, suite))
        for env_id in ids:
            env = make_single_env(env_id)
            try:
                ceiling = memoryless_ceiling(env)
            finally:
                env.close()
            shown = "-" if ceiling is None else f"{ceiling:.3f}"
            lines.append(f"  {env_id:<{ID_WIDTH}}{shown:>7}  {envs.describe(env_id)}")
    lines.append("More in docs/envs.md; your own env: --env module:Class.")
    return "\n".join(lines)
