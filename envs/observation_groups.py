"""Named groups of observation dimensions: which indices are positions, velocities, ...

The partial-observability wrappers (envs/wrappers.py) hide, drop out or cue whole groups.
A group is a name and a sorted array of indices into a flat ``Box`` observation.

For Gymnasium's MuJoCo v5 robots the groups are derived from the model and the env's own
settings, never typed by hand:

- robots that publish ``observation_structure`` (HalfCheetah, Hopper, Walker2d, Ant, Swimmer,
  Humanoid, HumanoidStandup, InvertedPendulum) concatenate ``qpos[skipped:]``, ``qvel`` and
  optional extras (``cfrc_ext`` ...). The sizes are cross-checked against the model
  (``nq``, ``nv``, ``nbody``), the ``exclude_current_positions_from_observation`` setting and
  the observation size, so a layout that drifts fails loudly instead of masking the wrong dims.
- Reacher is read by joint name: the arm's hinges come before the ``target_x``/``target_y``
  slides in ``qpos``.

Any other env needs explicit groups, e.g. ``{"positions": [0, 2], "velocities": [1, 3]}``.
Wrappers from envs/wrappers.py publish the layout of their own output, so they stack.
"""

from collections.abc import Mapping, Sequence

import gymnasium as gym
import numpy as np

Groups = dict[str, np.ndarray]

# Gymnasium's observation_structure keys -> our group names (skipped_qpos is not observed).
_STRUCTURE_GROUPS: dict[str, str] = {
    "qpos": "positions",
    "qvel": "velocities",
    "cfrc_ext": "contact_forces",
    "cinert": "com_inertias",
    "cvel": "com_velocities",
    "qfrc_actuator": "actuator_forces",
    "ten_length": "tendon_lengths",
    "ten_velocity": "tendon_velocities",
}

_EXPLICIT_HINT = "pass explicit groups, e.g. groups={'positions': [0, 2], 'velocities': [1, 3]}"


def observation_groups(env: gym.Env) -> Groups:
    """Returns the named index groups of ``env``'s flat observation.

    Walks the wrapper chain from the outside in: a wrapper of envs/wrappers.py answers with
    the layout of its own output; wrappers that keep the observation space (TimeLimit, ...)
    are passed through; any other observation-changing wrapper stops the walk with an error.

    >>> import gymnasium as gym
    >>> groups = observation_groups(gym.make("HalfCheetah-v5"))
    >>> {name: idx.tolist() for name, idx in groups.items()}["velocities"]
    [8, 9, 10, 11, 12, 13, 14, 15, 16]
    """
    layer = env
    while isinstance(layer, gym.Wrapper):
        own = vars(layer).get("observation_groups")
        if own is not None:
            return {name: idx.copy() for name, idx in own.items()}
        if layer.observation_space != layer.env.observation_space:
            raise ValueError(
                f"cannot derive observation groups through {type(layer).__name__}, which "
                f"changes the observation space; {_EXPLICIT_HINT}"
            )
        layer = layer.env
    groups = _derive_from_model(layer)
    return validate_groups(groups, _flat_size(layer.observation_space))


def validate_groups(groups: Mapping[str, Sequence[int] | np.ndarray], size: int) -> Groups:
    """Checks user-given groups against an observation of ``size`` dims; returns them sorted."""
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError(f"groups must be a non-empty mapping name -> indices, got {groups!r}")
    checked: Groups = {}
    seen: dict[int, str] = {}
    for name, indices in groups.items():
        idx = np.asarray(indices)
        if not isinstance(name, str) or idx.ndim != 1 or idx.size == 0:
            raise ValueError(
                f"group {name!r} must be a str name with a non-empty 1-D list of indices, "
                f"got {indices!r}"
            )
        if not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= size:
            raise ValueError(
                f"group {name!r} has indices {idx.tolist()}; allowed are integers in "
                f"[0, {size - 1}] for an observation of size {size}"
            )
        for i in idx.tolist():
            if i in seen:
                raise ValueError(
                    f"index {i} is in both group {seen[i]!r} and group {name!r}; groups "
                    f"must not overlap"
                )
            seen[i] = name
        checked[name] = np.sort(idx).astype(np.int64)
    return checked


def _flat_size(space: gym.Space) -> int:
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"observation groups need a flat Box observation space, got {space}")
    return int(space.shape[0])


def _derive_from_model(env: gym.Env) -> Groups:
    from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
    from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv

    if isinstance(env, ReacherEnv):
        return _reacher_groups(env)
    if isinstance(env, MujocoEnv) and hasattr(env, "observation_structure"):
        return _structure_groups(env)
    raise ValueError(
        f"cannot derive observation groups for {type(env).__name__}: only Gymnasium MuJoCo "
        f"v5 robots with observation_structure, and Reacher, are known; {_EXPLICIT_HINT}"
    )


def _structure_groups(env) -> Groups:
    """Groups of the robots whose observation is qpos[skipped:], qvel, then extras."""
    structure: dict[str, int] = dict(env.observation_structure)
    model = env.model
    skipped = structure.pop("skipped_qpos", 0)
    excludes = getattr(env, "_exclude_current_positions_from_observation", False)
    expected = {"qpos": model.nq - skipped, "qvel": model.nv}
    if "cfrc_ext" in structure and structure["cfrc_ext"]:
        expected["cfrc_ext"] = (model.nbody - 1) * 6  # one 6-D wrench per body but the world
    mismatch = {k: (structure.get(k), v) for k, v in expected.items() if structure.get(k) != v}
    size = _flat_size(env.observation_space)
    if mismatch or bool(skipped) != bool(excludes) or sum(structure.values()) != size:
        raise ValueError(
            f"{type(env).__name__}.observation_structure {env.observation_structure} does not "
            f"match its model (nq={model.nq}, nv={model.nv}, nbody={model.nbody}) and "
            f"observation size {size}; {_EXPLICIT_HINT}"
        )
    groups: Groups = {}
    start = 0
    for key, count in structure.items():
        if count and key not in _STRUCTURE_GROUPS:
            raise ValueError(f"unknown observation_structure entry {key!r}; {_EXPLICIT_HINT}")
        if count:
            groups[_STRUCTURE_GROUPS[key]] = np.arange(start, start + count)
        start += count
    return groups


def _reacher_groups(env) -> Groups:
    """Reacher: cos(arm), sin(arm), target qpos, arm qvel, fingertip - target (x, y)."""
    model = env.model
    first_target = int(model.joint("target_x").qposadr[0])
    if int(model.joint("target_y").qposadr[0]) != first_target + 1 or model.nq != first_target + 2:
        raise ValueError(f"unexpected Reacher model layout; {_EXPLICIT_HINT}")
    arm = first_target  # arm hinges precede the target slides in qpos and qvel
    return {
        "positions": np.arange(0, 2 * arm),
        "target": np.arange(2 * arm, 2 * arm + 2),
        "velocities": np.arange(2 * arm + 2, 3 * arm + 2),
        "fingertip_to_target": np.arange(3 * arm + 2, 3 * arm + 4),
    }
