"""Registers the memory and timer tasks with Gymnasium.

Every task terminates by itself; ids whose episodes could run on (none so far) would get a
``max_episode_steps`` here. Tasks document their ``memoryless_ceiling`` in the class docstring.
"""

from gymnasium.envs.registration import register, registry

# id -> (entry point, keyword arguments)
_TASKS: dict[str, tuple[str, dict]] = {
    "MemoryStates-v0": ("envs.sequences:MemoryStatesEnv", {"max_distractors": 10}),
    "MemoryStates-Long-v0": ("envs.sequences:MemoryStatesEnv", {"max_distractors": 100}),
}

for _id, (_entry_point, _kwargs) in _TASKS.items():
    if _id not in registry:  # importing twice (e.g. reloads in tests) must not warn
        register(id=_id, entry_point=_entry_point, kwargs=_kwargs)

MEMORY: list[str] = list(_TASKS)
