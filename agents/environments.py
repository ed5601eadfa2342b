"""From an env id to the vectorised env a model trains and is judged on.

An env is named either by a registered Gymnasium id (``envs`` registers ours) or, for a
user's own env, by ``module:Class`` / ``module:function`` (``my_robot:MyRobotEnv``), resolved
from the current directory too, like ``uvicorn`` does.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import load_env_creator
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnv,
    VecFrameStack,
    VecNormalize,
)

import envs  # noqa: F401  (registers our ids)
from agents.config import TrainConfig
from agents.errors import UserError
from agents.inputs import PRIVILEGED_KEY, PreviousStep, PrivilegedObservation, actor_space
from agents.interruption import ignore_in_worker
from envs.mujoco_camera import follow_tracked_body
from envs.mujoco_notices import quiet_gymnasium_notices
from envs.valid_actions import ValidActions


def resolve_env(env: str) -> str | Callable[..., gym.Env]:
    """Return a registered id unchanged, or import ``module:attr``; UserError if neither."""
    if ":" in env and env not in gym.registry:
        return _import_entry_point(env)
    if env in gym.registry:
        return env
    close = difflib.get_close_matches(env, gym.registry.keys(), n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UserError(
        f"unknown env id {env!r}; {hint}Use a registered Gymnasium id "
        "(python train.py --list-envs) or module:Class for your own env"
    )


def _import_entry_point(env: str) -> Callable[..., gym.Env]:
    module_name, _, attr = env.partition(":")
    if os.getcwd() not in sys.path:  # a user's module next to where they run the command
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise UserError(
                f"cannot import module {module_name!r} for env {env!r}; run from the folder "
                "that holds it or add that folder to PYTHONPATH"
            ) from None
        if error.name:  # the env's module imports a package this Python does not have
            raise UserError(
                f"module {module_name!r} (env {env!r}) imports {error.name!r}, which is not "
                f"installed; install the package that provides it into {sys.executable}"
            ) from None
        raise
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UserError(f"module {module_name!r} has no class or function {attr!r} (env {env!r})")
    return factory


def make_single_env(env: str, env_kwargs: dict[str, Any] | None = None, **make_kwargs: Any):
    """One unwrapped-by-us env, for inspection (spaces, ceiling) and tests."""
    entry = resolve_env(env)
    kwargs = {**(env_kwargs or {}), **make_kwargs}
    try:
        if isinstance(entry, str):
            with quiet_gymnasium_notices(entry):
                made = gym.make(entry, **kwargs)
        else:
            made = entry(**kwargs)
    except (TypeError, ValueError) as error:  # constructors refuse bad settings this way
        if "render_mode" in kwargs and not _takes_render_mode(entry):
            raise cannot_render(env, "its constructor takes no render_mode argument") from None
        raise UserError(
            f"env {env!r} rejected its arguments ({error}); check --env-kwargs"
        ) from None
    if not isinstance(made, gym.Env):
        raise UserError(f"{env!r} returned {type(made).__name__}, not a gymnasium.Env")
    for name in ("observation_space", "action_space"):
        if not isinstance(getattr(made, name, None), spaces.Space):
            raise UserError(
                f"env {env!r} has no {name} (a gymnasium.spaces.Space); set "
                "self.observation_space and self.action_space in its __init__"
            )
    return follow_tracked_body(made) if "render_mode" in kwargs else made


def check_first_observation(env_id: str, env: gym.Env, seed: int) -> None:
    """UserError unless ``reset`` gives an observation of the shape ``observation_space``
    declares (a mismatch otherwise fails deep inside the vectorised env). Values outside a
    Box's bounds pass: many envs exceed theirs, and the agents do not rely on them."""
    observation, _ = env.reset(seed=seed)
    problem = _observation_mismatch(env.observation_space, observation)
    if problem is not None:
        raise UserError(
            f"env {env_id!r}: reset() returned an observation of {problem}; make the "
            "observations and observation_space agree"
        )


def _observation_mismatch(space: gym.Space, observation: Any) -> str | None:
    if isinstance(space, spaces.Box):
        shape = np.shape(observation)
        return None if shape == space.shape else f"shape {shape}, its observation_space {space}"
    if isinstance(space, spaces.Dict):
        if not isinstance(observation, dict) or set(observation) != set(space.spaces):
            keys = sorted(observation) if isinstance(observation, dict) else type(observation)
            return f"keys {keys}, its observation_space keys {sorted(space.spaces)}"
        for key, subspace in space.spaces.items():
            problem = _observation_mismatch(subspace, observation[key])
            if problem is not None:
                return f"{problem} (key {key!r})"
        return None
    return None if space.contains(observation) else f"{observation!r}, outside {space}"


def cannot_render(env: str, reason: str) -> UserError:
    """The one error for an env that gives no frames for a video, with Gymnasium's recipe."""
    return UserError(
        f"env {env!r} cannot render ({reason}); to record it, follow Gymnasium's convention: "
        "accept render_mode=None in __init__, keep it as self.render_mode, list 'rgb_array' "
        "in metadata['render_modes'] and return an RGB array from render()"
    )


def _takes_render_mode(entry: str | Callable[..., gym.Env]) -> bool:
    """Whether the env's constructor accepts ``render_mode`` (True when it cannot be told)."""
    creator = load_env_creator(gym.spec(entry).entry_point) if isinstance(entry, str) else entry
    try:
        parameters = inspect.signature(creator).parameters.values()
    except (TypeError, ValueError):  # a builtin or C extension without a signature
        return True
    return any(p.name == "render_mode" or p.kind is p.VAR_KEYWORD for p in parameters)


def memoryless_ceiling(env: gym.Env | VecEnv) -> float | None:
    """The documented best success rate without memory, if the task states one."""
    if isinstance(env, VecEnv):
        has = env.has_attr("memoryless_ceiling")
        ceiling = env.get_attr("memoryless_ceiling", indices=0)[0] if has else None
    else:
        try:
            ceiling = env.get_wrapper_attr("memoryless_ceiling")
        except AttributeError:
            ceiling = None
    return None if ceiling is None else float(ceiling)


def make_vec(
    config: TrainConfig,
    n_envs: int,
    seed: int,
    monitor_dir: Path | None = None,
    render_mode: str | None = None,
    vecnormalize_path: Path | None = None,
    training: bool = True,
    wrapper_class: type[gym.Wrapper] | None = None,
    expected_spaces: tuple[gym.Space, gym.Space] | None = None,
    append_monitor: bool = False,
    trained_on: str | None = None,
) -> VecEnv:
    """The vectorised env for ``config``: monitored, normalised and frame-stacked as it says.

    Normalisation statistics are loaded from ``vecnormalize_path`` when given (a resumed
    training goes on updating them); for evaluation (``training=False``) they are frozen and
    rewards are reported unnormalised. ``expected_spaces`` (the model's) name the env that
    does not fit them, and ``trained_on`` (the env the model was trained on) the one to use
    instead; ``append_monitor`` continues the monitor CSVs of a resumed run.
    """
    resolve_env(config.env)  # fail here, in the main process, with a clear message
    env_kwargs = dict(config.env_kwargs)
    if render_mode is not None:
        env_kwargs["render_mode"] = render_mode
    use_subproc = config.vec_env == "subproc" and n_envs > 1
    wrap = functools.partial(
        with_agent_inputs,
        config=config,
        required=training,
        privileged_size=_privileged_size(expected_spaces),
        outer=wrapper_class,
    )
    vec = make_vec_env(
        # a function of ours, so that subprocesses import envs (our ids) and the user's module
        functools.partial(make_single_env, config.env),
        n_envs=n_envs,
        seed=seed,
        monitor_dir=str(monitor_dir) if monitor_dir else None,
        env_kwargs=env_kwargs,
        vec_env_cls=_quiet_subprocesses if use_subproc else DummyVecEnv,
        wrapper_class=wrap,
        monitor_kwargs={"override_existing": not append_monitor},
    )
    if config.normalize:
        if vecnormalize_path is not None:
            vec = load_normalization(
                vecnormalize_path, vec, config.env, expected_spaces, training, trained_on
            )
        else:
            readings = observation_normalization(vec.observation_space)
            if training:
                reward = {"gamma": config.gamma, "norm_reward": config.normalize_reward}
            else:  # an eval env during training: statistics synced by SB3 before each use
                reward = {"training": False, "norm_reward": False}
            vec = VecNormalize(vec, **reward, **readings)
    if config.algo == "ppo_framestack":
        vec = VecFrameStack(vec, n_stack=config.frame_stack)
    return vec


def _quiet_subprocesses(env_fns: list[Callable[[], gym.Env]], **kwargs: Any) -> SubprocVecEnv:
    """SubprocVecEnv whose workers leave SIGINT and SIGTERM to the main process."""
    return SubprocVecEnv([ignore_in_worker(env_fn) for env_fn in env_fns], **kwargs)


def with_agent_inputs(
    env: gym.Env,
    config: TrainConfig,
    required: bool = True,
    privileged_size: int | None = None,
    outer: Callable[[gym.Env], gym.Env] | None = None,
) -> gym.Env:
    """A check of every action (envs/valid_actions.py), the inputs the config asks for
    (agents/inputs.py), then the caller's own wrapper.

    Evaluation passes ``required=False``: only the actor acts, so an env without privileged
    state gets zeros in its place.
    """
    env = ValidActions(env)
    try:
        if config.previous_observation or config.previous_action or config.previous_reward:
            env = PreviousStep(
                env,
                action=config.previous_action,
                reward=config.previous_reward,
                observation=config.previous_observation,
            )
        if config.critic_is_privileged:
            env = PrivilegedObservation(env, required=required, size=privileged_size)
    except ValueError as error:
        raise UserError(str(error)) from None
    return outer(env) if outer is not None else env


def _privileged_size(model_spaces: tuple[gym.Space, gym.Space] | None) -> int | None:
    """The critic's privileged input size, read from a trained model's observation space."""
    if model_spaces is None or not isinstance(model_spaces[0], spaces.Dict):
        return None
    privileged = model_spaces[0].spaces.get(PRIVILEGED_KEY)
    return None if privileged is None else int(privileged.shape[0])


def observation_normalization(space: gym.Space) -> dict[str, Any]:
    """VecNormalize's ``norm_obs`` and ``norm_obs_keys`` for ``space``: the running mean and
    std apply to the real-valued readings (Box, or a Dict's Box entries), not to images (the
    policy scales those) or to discrete values, which VecNormalize refuses. With nothing to
    normalise only the rewards are."""

    def readings(subspace: gym.Space) -> bool:
        return isinstance(subspace, spaces.Box) and not is_image_space(subspace)

    if isinstance(space, spaces.Dict):
        keys = [key for key, subspace in space.spaces.items() if readings(subspace)]
        return {"norm_obs": bool(keys), "norm_obs_keys": keys or None}
    return {"norm_obs": readings(space)}


def load_normalization(
    path: Path | None,
    vec: VecEnv,
    env_id: str = "",
    expected_spaces: tuple[gym.Space, gym.Space] | None = None,
    training: bool = False,
    trained_on: str | None = None,
) -> VecNormalize:
    """Normalisation statistics from ``path`` around ``vec`` (VecNormalize.load, with one-line
    errors for a missing or corrupt file and for an env of other spaces, as
    :func:`spaces_mismatch`); frozen, with unnormalised rewards, unless ``training`` (a resumed
    run)."""
    normalized = read_normalization(path)
    if normalized.observation_space != vec.observation_space:
        vec.close()
        trained = expected_spaces or (normalized.observation_space, vec.action_space)
        raise spaces_mismatch(env_id, trained, vec, trained_on)
    normalized.set_venv(vec)
    if not training:
        normalized.training = False
        normalized.norm_reward = False
    return normalized


def read_normalization(path: Path | None) -> VecNormalize:
    """The saved normalisation statistics (without an env); one-line errors for a missing or
    corrupt file."""
    if path is None or not path.is_file():
        raise UserError(
            f"the run was trained with normalize=true but {path} is missing; "
            "use the whole run folder, or copy vecnormalize.pkl beside the model"
        )
    try:
        with open(path, "rb") as file:
            normalized = pickle.load(file)
        if not isinstance(normalized, VecNormalize):
            raise TypeError(type(normalized).__name__)
    except Exception as error:  # a pickle can fail in many ways; all mean the file is bad
        raise UserError(
            f"cannot read {path} ({type(error).__name__}); the file is corrupt or truncated"
        ) from None
    return normalized


def spaces_mismatch(
    env_id: str,
    trained: tuple[gym.Space, gym.Space],
    env: VecEnv | gym.Env,
    trained_on: str | None = None,
) -> UserError:
    """The one error for a model (or its normalisation) and an env of other spaces;
    ``trained_on``: the env the model was trained on, where known, named as one to use."""
    trained_obs, env_obs = trained[0], env.observation_space
    if actor_space(trained_obs) != actor_space(env_obs):
        # A privileged critic's input is filled in for any env (zeros where it offers none),
        # so only what the actor reads can be the mismatch; the rest would hide it.
        trained_obs, env_obs = actor_space(trained_obs), actor_space(env_obs)
    hint = ""
    if trained_on and trained_on != env_id:
        hint = f", such as {trained_on!r}, which it was trained on"
    return UserError(
        f"model and env do not match: the model takes observations {trained_obs} and acts in "
        f"{trained[1]}, env {env_id!r} gives {env_obs} and takes "
        f"{env.action_space}; evaluate on an env with the same spaces{hint}"
    )
