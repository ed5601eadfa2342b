"""What the memory holds, step by step: traces of the recurrent state and its gates.

A trace follows one env for its first K episodes through the same state-carrying loop as
evaluation (``agents.rollout.steps``) and records, per step, what the agent saw, did and got,
the env's ``info["latent"]`` and, for every recurrent layer, the hidden state ``h``, the cell
state ``c`` (LSTM only) and the gate activations. PyTorch does not expose gates, so they are
recomputed from the module's weights, from the state *before* the step (the previous step's
state, zeroed at episode starts) and the policy's features of the observation; the h and c
they give are checked against the module's own (:func:`record_trace` raises if they differ).

The format of the .npz file is documented in docs/memory.md.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.policies import BaseModel
from stable_baselines3.common.vec_env import unwrap_vec_normalize
from torch import nn

from agents import atomic
from agents.algos import build_model
from agents.errors import UserError
from agents.recurrent.policies import OBSERVATION_KEY
from agents.rollout import steps
from agents.runs import Run

# nn.LSTM stacks its four gates in this order in weight_ih/weight_hh; nn.GRU its three.
LSTM_GATES = ("input", "forget", "candidate", "output")
GRU_GATES = ("reset", "update", "candidate")
# The recomputed state must equal the module's; float32 arithmetic in another order differs
# by ~1e-7, so anything above this is a recomputation that no longer matches the module.
RECOMPUTE_TOLERANCE = 1e-4
# Without a number of episodes, a trace takes whole episodes until it holds this many steps
# (and at least MIN_TRACE_EPISODES): enough for probes on short symbolic episodes, a few
# episodes of a robot.
DEFAULT_TRACE_STEPS = 1000
MIN_TRACE_EPISODES = 3


@dataclass
class Trace:
    """Named per-step arrays (time on the first axis) and a description of the run.

    Names: ``obs``, ``action``, ``reward``, ``done``, ``episode``, ``t`` (step in its
    episode), ``latent/<name>``, ``<network>/layer<l>/<quantity>`` with network "actor" or
    "critic" and quantity ``h``, ``c`` or ``gate_<name>``.
    """

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __len__(self) -> int:
        return len(self.arrays["reward"])

    @property
    def latent_names(self) -> list[str]:
        return [name.split("/", 1)[1] for name in self.arrays if name.startswith("latent/")]

    @property
    def layers(self) -> list[str]:
        """Prefixes such as "actor/layer0", in network then layer order."""
        return [name[: -len("/h")] for name in self.arrays if name.endswith("/h")]

    def gates(self, layer: str) -> list[str]:
        return [name[len(layer) + 1 :] for name in self.arrays if name.startswith(f"{layer}/gate_")]

    def select(self, steps: np.ndarray) -> Trace:
        """The steps where ``steps`` (a boolean mask over time) is true, e.g. the steps long
        after a cue, where only memory can tell it: ``trace.select(trace["t"] >= 5)``."""
        return Trace({name: values[steps] for name, values in self.arrays.items()}, self.meta)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            raise UserError(f"trace file {path} must end in .npz")
        with atomic.replacing(path) as temporary:
            np.savez_compressed(temporary, **self.arrays, meta=np.array(json.dumps(self.meta)))
        return path


def load_trace(path: str | Path) -> Trace:
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files if name != "meta"}
        meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
    return Trace(arrays, meta)


def check_trace_options(path: str | Path | None, n_episodes: int | None) -> None:
    """Fail before a long evaluation, not after it."""
    if path is not None and Path(path).suffix != ".npz":
        raise UserError(f"trace file {path} must end in .npz")
    if n_episodes is not None and n_episodes <= 0:
        raise UserError(f"trace episodes must be a positive integer, got {n_episodes}")


def recurrent_networks(policy: nn.Module) -> dict[str, nn.Module]:
    """The policy's recurrent modules by network: the actor's, and the critic's if it has its
    own (with ``shared_lstm`` the critic reads the actor's, which is then the only one)."""
    networks = {}
    for name, attribute in (("actor", "lstm_actor"), ("critic", "lstm_critic")):
        module = getattr(policy, attribute, None)
        if module is not None:
            networks[name] = module
    return networks


def cell_kind(rnn: nn.Module) -> str:
    if isinstance(rnn, nn.LSTM):
        if rnn.proj_size or rnn.bidirectional:
            raise UserError("traces support LSTMs without projection, one direction")
        return "lstm"
    if isinstance(rnn, nn.GRU):
        if rnn.bidirectional:
            raise UserError("traces support GRUs of one direction")
        return "gru"
    raise UserError(f"cannot trace a recurrent layer of type {type(rnn).__name__}")


def gate_names(rnn: nn.Module) -> tuple[str, ...]:
    return LSTM_GATES if cell_kind(rnn) == "lstm" else GRU_GATES


def step_layers(
    rnn: nn.Module, x: th.Tensor, h: th.Tensor, c: th.Tensor
) -> list[dict[str, th.Tensor]]:
    """One time step of ``rnn`` written out gate by gate.

    ``x`` is (batch, input_size), ``h`` and ``c`` are (n_layers, batch, hidden) before the
    step. Returns, per layer, ``h`` and ``c`` after the step and ``gate_<name>`` for each
    gate; layer l reads layer l-1's new ``h``, as in ``nn.LSTM``/``nn.GRU`` (no dropout:
    traces are taken in eval mode).
    """
    kind = cell_kind(rnn)
    layers = []
    for layer in range(rnn.num_layers):
        w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
        from_input, from_state = x @ w_ih.T, h[layer] @ w_hh.T
        if rnn.bias:
            from_input = from_input + getattr(rnn, f"bias_ih_l{layer}")
            from_state = from_state + getattr(rnn, f"bias_hh_l{layer}")
        if kind == "lstm":
            out = _lstm_gates(from_input + from_state, c[layer])
        else:
            out = _gru_gates(from_input, from_state, h[layer])
        layers.append(out)
        x = out["h"]
    return layers


def _lstm_gates(preactivation: th.Tensor, c: th.Tensor) -> dict[str, th.Tensor]:
    i, f, g, o = preactivation.chunk(4, dim=-1)
    gates = {"input": th.sigmoid(i), "forget": th.sigmoid(f)}
    gates.update(candidate=th.tanh(g), output=th.sigmoid(o))
    c_new = gates["forget"] * c + gates["input"] * gates["candidate"]
    h_new = gates["output"] * th.tanh(c_new)
    return {"h": h_new, "c": c_new, **{f"gate_{k}": v for k, v in gates.items()}}


def _gru_gates(from_input: th.Tensor, from_state: th.Tensor, h: th.Tensor) -> dict[str, th.Tensor]:
    x_r, x_z, x_n = from_input.chunk(3, dim=-1)
    h_r, h_z, h_n = from_state.chunk(3, dim=-1)
    reset, update = th.sigmoid(x_r + h_r), th.sigmoid(x_z + h_z)
    candidate = th.tanh(x_n + reset * h_n)  # the reset gate scales the recurrent part only
    h_new = (1 - update) * candidate + update * h
    gates = {"reset": reset, "update": update, "candidate": candidate}
    return {"h": h_new, **{f"gate_{k}": v for k, v in gates.items()}}


def policy_features(policy: nn.Module, observation: np.ndarray, network: str) -> th.Tensor:
    """The recurrent layer's input for ``observation`` (as the vec env returns it, so already
    normalised), computed as sb3-contrib's policy does before its LSTM."""
    obs, _ = policy.obs_to_tensor(observation)
    extractor = policy.pi_features_extractor if network == "actor" else policy.vf_features_extractor
    return BaseModel.extract_features(policy, obs, extractor)


def record_trace(
    run: Run,
    n_episodes: int | None = None,
    deterministic: bool = True,
    seed: int = 0,
    min_steps: int = DEFAULT_TRACE_STEPS,
) -> Trace:
    """Act in one env for ``n_episodes`` episodes and record everything per step.

    ``n_episodes=None`` takes whole episodes until the trace holds ``min_steps`` steps, and
    at least ``MIN_TRACE_EPISODES`` episodes.
    """
    check_trace_options(None, n_episodes)
    policy = run.model.policy
    networks = recurrent_networks(policy)
    columns: dict[str, list[np.ndarray]] = {}
    states = {name: None for name in networks}  # (h, c) before the step, per network
    env = run.make_env(n_envs=1, seed=seed, wrapper_class=ObservationLog)
    normalized = unwrap_vec_normalize(env) is not None
    policy.set_training_mode(False)
    episode = t = 0
    try:
        for step in steps(run.model, env, deterministic):
            row = {
                "obs": np.asarray(actor_view(step.observation)[0], dtype=np.float32),
                "action": np.asarray(step.action[0]),
                "reward": np.asarray(step.reward[0], dtype=np.float32),
                "done": np.asarray(step.done[0], dtype=bool),
                "episode": np.array(episode),
                "t": np.array(t),
            }
            with th.no_grad():
                for name, rnn in networks.items():
                    row.update(_trace_network(policy, name, rnn, step, states))
            for key, value in row.items():
                columns.setdefault(key, []).append(value)
            t += 1
            if step.done[0]:
                episode, t = episode + 1, 0
                if _enough(episode, len(columns["obs"]), n_episodes, min_steps):
                    break
        seen = env.get_attr("seen")[0][: len(columns["obs"])]
    finally:
        env.close()
    arrays = {key: np.stack(values) for key, values in columns.items()}
    if normalized:
        arrays["obs_raw"] = np.stack([np.asarray(obs, dtype=np.float32) for obs, _ in seen])
    arrays.update(_latent_columns([latent for _, latent in seen]))
    meta = {
        "env_id": run.config.env,
        "algo": run.config.algo,
        "model": str(run.model_path),
        "deterministic": deterministic,
        "seed": seed,
        "episodes": episode,
        "networks": {
            name: {
                "cell": cell_kind(rnn),
                "layers": rnn.num_layers,
                "hidden_size": rnn.hidden_size,
                "gates": list(gate_names(rnn)),
            }
            for name, rnn in networks.items()
        },
        "shared_lstm": bool(getattr(policy, "shared_lstm", False)),
        # a critic that reads the hidden state holds it without remembering anything
        "privileged_critic": run.config.critic_is_privileged,
    }
    return Trace(arrays, meta)


def untrained_copy(run: Run) -> Run:
    """A freshly initialised model of the same config (its seed included): the control for
    probes, showing what a network holds before any training (a random recurrent network
    already keeps a fading echo of its inputs)."""
    env = run.make_env(n_envs=run.config.n_envs, seed=run.config.seed)
    try:
        model = build_model(run.config, env)
    finally:
        env.close()
    return dataclasses.replace(run, model=model)


def _enough(episodes: int, steps: int, n_episodes: int | None, min_steps: int) -> bool:
    if n_episodes is not None:
        return episodes >= n_episodes
    return episodes >= MIN_TRACE_EPISODES and steps >= min_steps


class ObservationLog(gym.Wrapper):
    """Keeps every observation the agent will act on, as the env made it (before any
    normalisation), with the numeric ``info["latent"]`` that came with it.

    The final observation of an episode is left out: the vectorised env resets at once and
    the agent acts on the new episode's first observation instead.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.seen: list[tuple[np.ndarray, dict[str, float]]] = []

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        self.seen.append((np.array(actor_view(observation)), _numbers(info.get("latent", {}))))
        return observation, info

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        if not (terminated or truncated):
            latent = _numbers(info.get("latent", {}))
            self.seen.append((np.array(actor_view(observation)), latent))
        return observation, reward, terminated, truncated, info


def actor_view(observation: Any) -> Any:
    """What the actor reads: the whole observation, or its ``observation`` key when a
    privileged critic's state rides along (agents/inputs.py)."""
    return observation[OBSERVATION_KEY] if isinstance(observation, dict) else observation


def _trace_network(
    policy: nn.Module, name: str, rnn: nn.Module, step, states: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Recompute one network's step; for the actor, check against the state it returned."""
    shape = (rnn.num_layers, 1, rnn.hidden_size)
    previous = states[name]
    if previous is None or step.episode_start[0]:
        previous = (th.zeros(shape), th.zeros(shape))
    features = policy_features(policy, step.observation, name)
    layers = step_layers(rnn, features, *previous)
    h = th.stack([layer["h"] for layer in layers])
    c = th.stack([layer["c"] for layer in layers]) if "c" in layers[0] else th.zeros_like(h)
    if name == "actor" and step.state is not None:
        _check_recomputed(h, c, step.state, cell_kind(rnn))
        # carry the module's own state, so that rounding differences never accumulate
        h, c = (th.as_tensor(np.asarray(s), dtype=th.float32) for s in step.state)
    states[name] = (h, c)
    return {
        f"{name}/layer{index}/{quantity}": value[0].numpy().astype(np.float32)
        for index, layer in enumerate(layers)
        for quantity, value in layer.items()
    }


def _check_recomputed(h: th.Tensor, c: th.Tensor, state, kind: str) -> None:
    error = float((h - th.as_tensor(state[0])).abs().max())
    if kind == "lstm":
        error = max(error, float((c - th.as_tensor(state[1])).abs().max()))
    if error > RECOMPUTE_TOLERANCE:
        raise RuntimeError(
            f"gates recomputed from the weights give a state {error:.2e} away from the "
            "module's own; the recurrent layer computes something memory.py does not know"
        )


def _numbers(latent: dict[str, Any]) -> dict[str, float]:
    numbers = {}
    for key, value in latent.items():
        if isinstance(value, (bool, int, float, np.number, np.bool_)):
            numbers[str(key)] = float(value)
    return numbers


def _latent_columns(latents: list[dict[str, float]]) -> dict[str, np.ndarray]:
    names = sorted({key for latent in latents for key in latent})
    return {
        f"latent/{name}": np.array([latent.get(name, np.nan) for latent in latents])
        for name in names
    }
