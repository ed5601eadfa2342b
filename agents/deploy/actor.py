"""The actor of a trained model as a plain torch module with explicit state, ready to export.

What a robot runs is the actor alone: observation normalisation (VecNormalize's statistics,
frozen), frame stacking, the features, one recurrent step, the actor MLP and the deterministic
action. Every module here takes its state as inputs and returns the next state as outputs, so
an exported file holds no hidden state and the caller resets it (zeros at an episode start),
the reset rule of agents/rollout.py. The recurrent step is ``step_cells``, the arithmetic
``predict`` runs, so the file acts as the model does.

Inputs and outputs, by model (``batch`` robots at once, 1 for one robot):

- LSTM: ``(obs, h, c) -> (action, h_out, c_out)``, states ``(layers, batch, hidden)``;
- GRU: ``(obs, h) -> (action, h_out)``: a GRU has no cell state, so the file has no ``c``;
- frame stacking (``ppo_framestack``): ``(obs, frames) -> (action, frames_out)``, where
  ``frames`` holds the last ``frame_stack`` normalised observations, oldest first;
- feed-forward (``ppo``): ``obs -> action``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.vec_env import VecNormalize
from torch import nn

from agents.errors import UserError
from agents.recurrent.cells import step_cells, steps_with_cells
from agents.recurrent.policies import OBSERVATION_KEY, SelectKeys

BATCH = "batch"  # the name of the free batch axis in shapes


class ObservationNormalization(nn.Module):
    """VecNormalize's observation normalisation with frozen statistics:
    ``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``."""

    def __init__(self, mean: np.ndarray, var: np.ndarray, epsilon: float, clip_obs: float) -> None:
        super().__init__()
        self.register_buffer("mean", th.as_tensor(mean, dtype=th.float32))
        # the square root in float64, as VecNormalize takes it
        self.register_buffer("std", th.as_tensor(np.sqrt(var + epsilon), dtype=th.float32))
        self.clip_obs = float(clip_obs)

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return th.clamp((obs - self.mean) / self.std, -self.clip_obs, self.clip_obs)


class DeterministicAction(nn.Module):
    """The actor MLP and the greedy action: the argmax of the logits (Discrete), or the
    Gaussian's mean clipped to the action space's bounds (Box), as ``predict`` returns them."""

    def __init__(self, policy: nn.Module, action_space: spaces.Space) -> None:
        super().__init__()
        self.latent = copy.deepcopy(policy.mlp_extractor.policy_net)
        self.action_net = copy.deepcopy(policy.action_net)
        self.discrete = isinstance(action_space, spaces.Discrete)
        if not self.discrete:
            self.shape = tuple(action_space.shape)
            self.register_buffer("low", th.as_tensor(action_space.low.ravel(), dtype=th.float32))
            self.register_buffer("high", th.as_tensor(action_space.high.ravel(), dtype=th.float32))

    def forward(self, features: th.Tensor) -> th.Tensor:
        output = self.action_net(self.latent(features))
        if self.discrete:
            return th.argmax(output, dim=1)
        return th.maximum(th.minimum(output, self.high), self.low).reshape((-1, *self.shape))


class Actor(nn.Module):
    """Normalisation and features, shared by the actors below; ``forward`` is each one's."""

    def __init__(self, normalize: nn.Module, head: DeterministicAction) -> None:
        super().__init__()
        self.normalize = normalize
        self.head = head

    def features(self, obs: th.Tensor) -> th.Tensor:
        return th.flatten(self.normalize(obs), start_dim=1)


class FeedForwardActor(Actor):
    def forward(self, obs: th.Tensor) -> th.Tensor:
        return self.head(self.features(obs))


class FrameStackActor(Actor):
    """``frames`` holds the last observations after normalisation, stacked on the last axis
    (VecFrameStack's layout and its zeros after a reset)."""

    def __init__(self, normalize: nn.Module, head: DeterministicAction, frame_size: int) -> None:
        super().__init__(normalize, head)
        self.frame_size = frame_size

    def forward(self, obs: th.Tensor, frames: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        frames_out = th.cat([frames[..., self.frame_size :], self.normalize(obs)], dim=-1)
        return self.head(th.flatten(frames_out, start_dim=1)), frames_out


class RecurrentActor(Actor):
    """One step of the recurrent layer between the features and the head; with
    ``skip_connection`` the head reads the features beside the layer's output."""

    def __init__(
        self, normalize: nn.Module, head: DeterministicAction, rnn: nn.Module, skip: bool
    ) -> None:
        super().__init__(normalize, head)
        self.rnn = rnn
        self.skip = skip

    def step(
        self, obs: th.Tensor, state: tuple[th.Tensor, th.Tensor]
    ) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]:
        features = self.features(obs)
        output, state = step_cells(features, state, self.rnn)
        if self.skip:
            output = th.cat([output, features], dim=1)
        return self.head(output), state


class LstmActor(RecurrentActor):
    def forward(
        self, obs: th.Tensor, h: th.Tensor, c: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        action, (h_out, c_out) = self.step(obs, (h, c))
        return action, h_out, c_out


class GruActor(RecurrentActor):
    def forward(self, obs: th.Tensor, h: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        action, (h_out, _) = self.step(obs, (h, h))  # a GRU reads no c
        return action, h_out


@dataclass
class TensorSpec:
    """One input or output of the exported actor; ``batch`` stands for the free batch size."""

    name: str
    shape: list[int | str]
    dtype: str = "float32"


@dataclass
class DeployableActor:
    """The module to export, its inputs and outputs, and what the caller must know."""

    module: Actor
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    observation_space: spaces.Box  # what ``obs`` takes, before normalisation
    normalization: dict[str, Any] | None
    recurrent: dict[str, Any] | None = None
    frame_stack: int | None = None
    state_pairs: list[tuple[str, str]] = field(default_factory=list)  # (input, output)

    def example_inputs(self, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Random inputs of the right shapes and dtypes, for tracing and checking the file."""
        inputs = {}
        for tensor in self.inputs:
            shape = [batch if size == BATCH else size for size in tensor.shape]
            inputs[tensor.name] = rng.normal(size=shape).astype(tensor.dtype)
        return inputs


def deployable_actor(
    model: BaseAlgorithm, vecnormalize: VecNormalize | None, frame_stack: int | None
) -> DeployableActor:
    """The actor of ``model`` (with ``vecnormalize``'s statistics, if the run normalised, and
    ``frame_stack`` frames for ppo_framestack) as a module with explicit state; UserError for
    a model that cannot be exported (what is supported is named in the message)."""
    policy = model.policy
    observation_space = _actor_observation_space(policy)
    _check_action_space(policy, model.action_space)
    if frame_stack:
        # VecFrameStack repeats each bound n times on the last axis: take every n-th
        observation_space = spaces.Box(
            observation_space.low[..., ::frame_stack],
            observation_space.high[..., ::frame_stack],
            dtype=observation_space.dtype,
        )
    normalize, normalization = _normalization(vecnormalize, observation_space.shape)
    head = DeterministicAction(policy, model.action_space)
    obs = TensorSpec("obs", [BATCH, *observation_space.shape])
    action = _action_tensor(model.action_space)
    actor = DeployableActor(
        FeedForwardActor(normalize, head), [obs], [action], observation_space, normalization
    )
    rnn = getattr(policy, "lstm_actor", None)
    if rnn is not None:
        _add_recurrent_state(actor, _frozen_copy(rnn), getattr(policy, "skip_connection", False))
    elif frame_stack:
        stacked = [*observation_space.shape[:-1], observation_space.shape[-1] * frame_stack]
        actor.module = FrameStackActor(normalize, head, observation_space.shape[-1])
        actor.frame_stack = frame_stack
        _add_state(actor, "frames", [BATCH, *stacked])
    actor.module.cpu().eval().requires_grad_(False)
    return actor


def _add_recurrent_state(actor: DeployableActor, rnn: nn.Module, skip: bool) -> None:
    is_lstm = isinstance(rnn, nn.LSTM)
    module = LstmActor if is_lstm else GruActor
    actor.module = module(actor.module.normalize, actor.module.head, rnn, skip)
    actor.recurrent = {
        "cell": "lstm" if is_lstm else "gru",
        "layers": rnn.num_layers,
        "hidden_size": rnn.hidden_size,
    }
    shape: list[int | str] = [rnn.num_layers, BATCH, rnn.hidden_size]
    for name in ("h", "c") if is_lstm else ("h",):
        _add_state(actor, name, shape)


def _add_state(actor: DeployableActor, name: str, shape: list[int | str]) -> None:
    actor.inputs.append(TensorSpec(name, shape))
    actor.outputs.append(TensorSpec(f"{name}_out", shape))
    actor.state_pairs.append((name, f"{name}_out"))


def _frozen_copy(rnn: nn.Module) -> nn.Module:
    rnn = copy.deepcopy(rnn).cpu().eval()
    with th.no_grad():
        if not steps_with_cells(rnn):
            raise UserError(
                f"cannot export the recurrent layer {rnn}: export supports LSTM and GRU layers "
                "of one direction, with biases and without projection"
            )
    return rnn


def _actor_observation_space(policy: nn.Module) -> spaces.Box:
    extractor = getattr(policy, "pi_features_extractor", policy.features_extractor)
    space = policy.observation_space
    if isinstance(extractor, SelectKeys) and extractor.keys == (OBSERVATION_KEY,):
        space = space[OBSERVATION_KEY]  # a privileged critic's run: the actor reads this only
    elif not isinstance(extractor, FlattenExtractor):
        space = None
    if not isinstance(space, spaces.Box) or is_image_space(space):
        raise UserError(
            f"cannot export a policy on observations {policy.observation_space}: export "
            "supports vector (Box) observations, also as the actor's part of a privileged "
            "critic's Dict"
        )
    return space


def _check_action_space(policy: nn.Module, action_space: spaces.Space) -> None:
    if not isinstance(action_space, spaces.Discrete | spaces.Box) or policy.squash_output:
        raise UserError(
            f"cannot export a policy acting in {action_space}: export supports Discrete and "
            "Box actions (Gaussian, not squashed)"
        )


def _action_tensor(action_space: spaces.Space) -> TensorSpec:
    if isinstance(action_space, spaces.Discrete):
        return TensorSpec("action", [BATCH], "int64")
    return TensorSpec("action", [BATCH, *action_space.shape])


def _normalization(
    vecnormalize: VecNormalize | None, shape: tuple[int, ...]
) -> tuple[nn.Module, dict[str, Any] | None]:
    """The folded normalisation and its description, or identity when there is none."""
    if vecnormalize is None or not vecnormalize.norm_obs:
        return nn.Identity(), None
    statistics = vecnormalize.obs_rms
    if isinstance(statistics, dict):  # Dict observations: the actor's entry
        if OBSERVATION_KEY not in statistics:
            return nn.Identity(), None
        statistics = statistics[OBSERVATION_KEY]
    if statistics.mean.shape != shape:
        raise UserError(
            f"the normalisation statistics are of shape {statistics.mean.shape}, the policy "
            f"reads observations of shape {shape}; vecnormalize.pkl is not this model's"
        )
    module = ObservationNormalization(
        statistics.mean, statistics.var, vecnormalize.epsilon, vecnormalize.clip_obs
    )
    description = {
        "formula": "clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)",
        "mean": statistics.mean.tolist(),
        "var": statistics.var.tolist(),
        "epsilon": float(vecnormalize.epsilon),
        "clip_obs": float(vecnormalize.clip_obs),
    }
    return module, description
