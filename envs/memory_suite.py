"""Registers the memory and timer tasks with Gymnasium (see docs/envs.md for the table).

Every task but the T-maze ends by itself; the T-maze agent may wander, so its ids carry a
``max_episode_steps``. Each task documents its ``memoryless_ceiling`` in the class docstring.
"""

from gymnasium.envs.registration import register, registry

# id -> (entry point, keyword arguments, max_episode_steps)
_TASKS: dict[str, tuple[str, dict, int | None]] = {
    "Timer-v0": ("envs.timer:TimerEnv", {"duration_scale": 20}, None),
    "Timer-Long-v0": ("envs.timer:TimerEnv", {"duration_scale": 100}, None),
    "Timer-Jaeger-v0": ("envs.timer:TimerEnv", {"duration_scale": 1000}, None),
    "DinnerCycle-v0": ("envs.dinner:DinnerCycleEnv", {}, None),
    "ChildrensBook-v0": ("envs.book:ChildrensBookEnv", {}, None),
    "Counting-v0": ("envs.counting:CountingEnv", {"min_count": 1, "max_count": 10}, None),
    "Counting-Long-v0": ("envs.counting:CountingEnv", {"min_count": 11, "max_count": 20}, None),
    "SelectiveCounting-v0": ("envs.counting:SelectiveCountingEnv", {}, None),
    "MemoryStates-v0": ("envs.sequences:MemoryStatesEnv", {"max_distractors": 10}, None),
    "MemoryStates-Long-v0": ("envs.sequences:MemoryStatesEnv", {"max_distractors": 100}, None),
    "Copy-v0": ("envs.sequences:CopyEnv", {"max_length": 5}, None),
    "Copy-Long-v0": ("envs.sequences:CopyEnv", {"max_length": 10}, None),
    "TMaze-v0": ("envs.tmaze:TMazeEnv", {"length": 10}, 100),
    "TMaze-Long-v0": ("envs.tmaze:TMazeEnv", {"length": 50}, 500),
}

for _id, (_entry_point, _kwargs, _max_steps) in _TASKS.items():
    if _id not in registry:  # importing twice (e.g. reloads in tests) must not warn
        register(id=_id, entry_point=_entry_point, kwargs=_kwargs, max_episode_steps=_max_steps)

MEMORY: list[str] = list(_TASKS)

# What each task's memory must carry, in a few words (train.py --list-envs).
CARRIES: dict[str, str] = {
    "Timer-v0": "the time left in a pulse of up to 20 steps",
    "Timer-Long-v0": "the time left in a pulse of up to 100 steps",
    "Timer-Jaeger-v0": "the time left in a pulse of up to 1000 steps",
    "DinnerCycle-v0": "the last dish seen and the nights since, mod 3",
    "ChildrensBook-v0": "the subject and the place in the sentence",
    "Counting-v0": "the count of a's (1 to 10) while writing b's",
    "Counting-Long-v0": "the count of a's (11 to 20) while writing b's",
    "SelectiveCounting-v0": "the count of a's among x's while writing b's",
    "MemoryStates-v0": "the first symbol, across 1 to 10 x's",
    "MemoryStates-Long-v0": "the first symbol, across 1 to 100 x's",
    "Copy-v0": "a string of 1 to 5 symbols",
    "Copy-Long-v0": "a string of 1 to 10 symbols",
    "TMaze-v0": "the sign at the start, down a corridor of 10 cells",
    "TMaze-Long-v0": "the sign at the start, down a corridor of 50 cells",
}
