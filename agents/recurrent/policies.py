"""The recurrent actor-critic policy: fast sequence processing and a choice of LSTM or GRU cell.

sb3-contrib's ``RecurrentActorCriticPolicy`` runs a minibatch through its LSTM one step at a
time in a Python loop whenever the minibatch holds an episode start (sb3-contrib issues #113,
#118), which is almost always. The loop is not needed: a state is only ever reset *at the
first step of a sequence* (the rollout buffers cut sequences at episode starts and padding sits
at the end), so resetting the initial state with ``(1 - episode_start[0])`` and making one
recurrent call over the whole padded batch is exact. ``_process_sequence`` below does that,
and stays exact for arbitrary callers by splitting the time axis only where a reset happens
in the middle (one call per such time index instead of one per step).

The cell may be a GRU (agents/recurrent/cells.py). The recurrent modules keep sb3-contrib's
attribute names ``lstm_actor``/``lstm_critic`` whatever the cell, because sb3-contrib's
``RecurrentPPO`` reads ``policy.lstm_actor``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import (
    RecurrentActorCriticPolicy as Sb3ContribRecurrentPolicy,
)
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, preprocess_obs
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    MlpExtractor,
    NatureCNN,
)
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from agents.recurrent.cells import (
    RECURRENT_CELLS,
    RecurrentCell,
    check_recurrent_kwargs,
    fused_adam_supported,
    make_recurrent_layer,
    set_forget_bias,
    step_with_cells,
    steps_with_cells,
)

# The keys of a Dict observation for an asymmetric actor-critic (agents/inputs.py builds it).
OBSERVATION_KEY = "observation"
PRIVILEGED_KEY = "privileged"


def run_sequence(
    features: th.Tensor,
    lstm_states: tuple[th.Tensor, th.Tensor],
    episode_starts: th.Tensor,
    lstm: nn.Module,
) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]:
    """Run ``n_seq`` padded sequences through ``lstm``, resetting states at episode starts.

    Same contract as sb3-contrib's ``_process_sequence``: ``features`` is ``(n_seq * max_len,
    features_dim)`` sequence-major, ``lstm_states`` are the states before each sequence's
    first step and ``episode_starts`` is ``(n_seq * max_len,)``. Returns the flattened outputs
    and the final states. The time axis is split only at steps where some sequence resets
    after its first step; sequences from the rollout buffers never do, so training makes
    exactly one call per minibatch, and collecting rollouts (``max_len == 1``) one per step.
    """
    n_seq = lstm_states[0].shape[1]
    if features.shape[0] == n_seq and steps_with_cells(lstm):
        return step_with_cells(features, lstm_states, episode_starts, lstm)
    # (n_seq * max_len, dim) -> (max_len, n_seq, dim), the layout nn.LSTM expects
    features_sequence = features.reshape((n_seq, -1, lstm.input_size)).swapaxes(0, 1)
    if episode_starts.any():
        output, states = _run_with_resets(features_sequence, lstm_states, episode_starts, lstm)
    else:  # no reset anywhere (most minibatches of long episodes): skip finding them
        output, states = lstm(features_sequence, lstm_states)
    # (max_len, n_seq, hidden) -> (n_seq * max_len, hidden), sequence-major again
    return th.flatten(output.transpose(0, 1), start_dim=0, end_dim=1), states


def _run_with_resets(
    features_sequence: th.Tensor,
    lstm_states: tuple[th.Tensor, th.Tensor],
    episode_starts: th.Tensor,
    lstm: nn.Module,
) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]:
    """``run_sequence``'s time-major recurrent calls, one per stretch between the time
    indices where some sequence resets."""
    max_len, n_seq = features_sequence.shape[:2]
    episode_starts = episode_starts.reshape((n_seq, -1)).swapaxes(0, 1)
    reset_steps = [0]
    if max_len > 1:
        reset_steps += (th.nonzero(episode_starts[1:].any(dim=1)).flatten() + 1).tolist()
    boundaries = [*reset_steps, max_len]

    outputs = []
    hidden, cell = lstm_states
    for start, end in zip(boundaries[:-1], boundaries[1:], strict=True):
        # The one place where the recurrent state is reset: (1 - episode_start).
        keep = (1.0 - episode_starts[start]).view(1, n_seq, 1)
        output, (hidden, cell) = lstm(features_sequence[start:end], (keep * hidden, keep * cell))
        outputs.append(output)
    output = outputs[0] if len(outputs) == 1 else th.cat(outputs)
    return output, (hidden, cell)


class FastRecurrentPolicy(Sb3ContribRecurrentPolicy):
    """sb3-contrib's recurrent actor-critic with one recurrent call per minibatch and a cell choice.

    Takes every argument of sb3-contrib's ``RecurrentActorCriticPolicy`` (``lstm_hidden_size``,
    ``n_lstm_layers``, ``shared_lstm``, ``enable_critic_lstm``, ``lstm_kwargs``, ``net_arch``
    ...) plus ``recurrent_cell``. With ``recurrent_cell="lstm"`` the parameters, their
    initialisation under a seed and the state-dict keys are sb3-contrib's, so the outputs and
    gradients equal stock sb3-contrib's (tests/test_fast_recurrent.py checks it).

    :param recurrent_cell: "lstm" (default, as sb3-contrib) or "gru". For "gru" the
        ``c`` half of every state tuple is zeros and ignored.
    :param forget_bias: the initial bias of the LSTMs' forget gates (None: PyTorch's init,
        as sb3-contrib). 1.0 starts every unit remembering, so that gradients reach back
        across many steps before the memory has learned what to keep (Gers et al. 2000,
        Jozefowicz et al. 2015).
    :param skip_connection: the heads read the current features beside the recurrent
        output, ``[memory, features]`` (as pomdp-baselines, Ni et al. 2022): what the step
        shows needs no path through the memory, which is left to carry what it hides.
    :param memory_lr_scale: the actor's recurrent layer learns at this fraction of the
        learning rate (its own optimizer parameter group). Under Adam every weight moves by
        about the learning rate per step, and the LSTM's many weights, fed back over every
        step of a sequence, can move the policy far more than the heads do: in the trained
        Hopper-P and Walker2d-P policies such a step of the LSTM moved it 6-52x as far as one
        of all the rest (docs/kl_sensitivity.md). A smaller share lets a KL-limited update
        also move the heads and the action noise.
    :param project_critic_input: a feed-forward critic (``enable_critic_lstm=False``, not
        shared) maps its features linearly to ``lstm_hidden_size`` values before its MLP, as
        sb3-contrib's does (True, the default). False feeds the features straight to the MLP,
        as PPO's critic: a linear map before the MLP's first linear layer adds no function the
        layer cannot learn alone, only weights and time (docs/throughput.md). Our trainer
        builds False (agents/algos.py); True keeps models built or saved before it loadable.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        *args: Any,
        recurrent_cell: RecurrentCell = "lstm",
        forget_bias: float | None = None,
        skip_connection: bool = False,
        memory_lr_scale: float = 1.0,
        project_critic_input: bool = True,
        **kwargs: Any,
    ) -> None:
        if recurrent_cell not in RECURRENT_CELLS:
            raise ValueError(
                f"recurrent_cell must be one of {RECURRENT_CELLS}, got {recurrent_cell!r}"
            )
        self.recurrent_cell = recurrent_cell
        self.skip_connection = skip_connection  # read by _build_mlp_extractor, called below
        self.memory_lr_scale = memory_lr_scale
        self.project_critic_input = project_critic_input
        optimizer_class = kwargs.get("optimizer_class", th.optim.Adam)
        check_recurrent_kwargs(recurrent_cell, kwargs.get("lstm_kwargs") or {})
        if not args and optimizer_class is th.optim.Adam and kwargs.get("optimizer_kwargs") is None:
            # SB3's Adam default (eps 1e-5), fused where torch can: one kernel for all
            # parameters instead of a Python loop over them; the LSTM's large tensors made
            # Adam ~10 % of train() here. The policy is built on the CPU; RecurrentPPO turns
            # fusing off again if the device it moves to has no fused kernel.
            kwargs["optimizer_kwargs"] = {"eps": 1e-5, "fused": fused_adam_supported("cpu")}
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)
        critic_features = self._critic_features_extractor()
        if critic_features is not None:
            self.vf_features_extractor = critic_features
        critic_dim = self.vf_features_extractor.features_dim
        rebuild = recurrent_cell != "lstm" or critic_dim != self.features_dim
        if rebuild:
            self._rebuild_recurrent_layers(recurrent_cell, critic_dim)
        unprojected = not project_critic_input and self.critic is not None
        if unprojected:
            self.critic = nn.Identity()
            self._set_value_net(critic_dim)
        if skip_connection:
            self._connect_critic_skip(critic_dim)
        if rebuild or unprojected or skip_connection or memory_lr_scale != 1.0:
            self._rebuild_optimizer(lr_schedule)
        if forget_bias is not None:
            set_forget_bias(self, forget_bias)

    def _build_mlp_extractor(self) -> None:
        if self.skip_connection:  # the heads read [memory, the actor's features]
            self.lstm_output_dim += self.features_dim
        super()._build_mlp_extractor()

    def _rebuild_recurrent_layers(self, recurrent_cell: RecurrentCell, critic_dim: int) -> None:
        # The parent builds nn.LSTMs sized for the actor's features; rebuild what differs (the
        # cell; the critic's input). The caller rebuilds the optimizer.
        hidden, layers = self.lstm_actor.hidden_size, self.lstm_actor.num_layers
        if recurrent_cell != "lstm":
            self.lstm_actor = make_recurrent_layer(
                recurrent_cell, self.features_dim, hidden, layers, **self.lstm_kwargs
            )
        if self.lstm_critic is not None:
            self.lstm_critic = make_recurrent_layer(
                recurrent_cell, critic_dim, hidden, layers, **self.lstm_kwargs
            )
        elif self.critic is not None:
            self.critic = nn.Linear(critic_dim, hidden)

    def _connect_critic_skip(self, critic_dim: int) -> None:
        """The critic's side of the skip connection (``_process_sequence`` does the rest): a
        feed-forward critic's layer also passes its input on, and a value head whose input
        differs from the actor's (a privileged critic's) gets its own width. A feed-forward
        critic that reads its features unprojected reads all of them already."""
        if isinstance(self.critic, nn.Identity):
            return
        if self.critic is not None:
            self.critic = SkipLinear(self.critic)
        if not self.shared_lstm and critic_dim != self.features_dim:
            self._set_value_net(self.lstm_actor.hidden_size + critic_dim)

    def _set_value_net(self, input_dim: int) -> None:
        """A new critic MLP of the policy's ``net_arch`` that reads ``input_dim`` values."""
        extractor = MlpExtractor(input_dim, self.net_arch, self.activation_fn, self.device)
        if self.ortho_init:
            extractor.value_net.apply(partial(self.init_weights, gain=np.sqrt(2)))
        self.mlp_extractor.value_net = extractor.value_net

    def _rebuild_optimizer(self, lr_schedule: Schedule) -> None:
        """After modules are added or replaced: the optimizer holds references to the
        parameters it was built with. With ``memory_lr_scale`` the actor's recurrent layer is
        a parameter group of its own, whose ``lr_scale`` RecurrentPPO applies to every rate."""
        params: Any = self.parameters()
        if self.memory_lr_scale != 1.0:
            memory = list(self.lstm_actor.parameters())
            in_memory = {id(parameter) for parameter in memory}
            rest = [parameter for parameter in self.parameters() if id(parameter) not in in_memory]
            params = [
                {"params": rest},
                {
                    "params": memory,
                    "lr": lr_schedule(1) * self.memory_lr_scale,
                    "lr_scale": self.memory_lr_scale,
                },
            ]
        self.optimizer = self.optimizer_class(params, lr=lr_schedule(1), **self.optimizer_kwargs)

    def _critic_features_extractor(self) -> BaseFeaturesExtractor | None:
        """A features extractor of the critic's own, or None for the one SB3 built."""
        return None

    def _process_sequence(
        self,
        features: th.Tensor,
        lstm_states: tuple[th.Tensor, th.Tensor],
        episode_starts: th.Tensor,
        lstm: nn.Module,
    ) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]:
        """``run_sequence`` (the module's function), with ``skip_connection`` the features
        appended to its outputs."""
        output, states = run_sequence(features, lstm_states, episode_starts, lstm)
        if self.skip_connection:
            output = th.cat([output, features], dim=1)
        return output, states

    def _get_constructor_parameters(self) -> dict[str, Any]:
        """Include the recurrent settings, which sb3-contrib leaves out of ``policy.save()``."""
        data = super()._get_constructor_parameters()
        data.update(
            lstm_hidden_size=self.lstm_actor.hidden_size,
            n_lstm_layers=self.lstm_actor.num_layers,
            shared_lstm=self.shared_lstm,
            enable_critic_lstm=self.enable_critic_lstm,
            lstm_kwargs=self.lstm_kwargs,
            recurrent_cell=self.recurrent_cell,
            skip_connection=self.skip_connection,
            memory_lr_scale=self.memory_lr_scale,
            project_critic_input=self.project_critic_input,
        )
        return data


class SkipLinear(nn.Module):
    """The feed-forward critic's layer with the skip connection: ``[linear(x), x]``."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, features: th.Tensor) -> th.Tensor:
        return th.cat([self.linear(features), features], dim=1)


class SelectKeys(BaseFeaturesExtractor):
    """Features of a Dict observation: the chosen keys, flattened and concatenated."""

    def __init__(self, observation_space: spaces.Dict, keys: tuple[str, ...]) -> None:
        missing = [key for key in keys if key not in observation_space.spaces]
        if missing:
            raise ValueError(f"observation space {observation_space} has no key {missing[0]!r}")
        dim = sum(get_flattened_obs_dim(observation_space[key]) for key in keys)
        super().__init__(observation_space, dim)
        self.keys = tuple(keys)

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        return th.cat([th.flatten(observations[key], start_dim=1) for key in self.keys], dim=1)


class PrivilegedCriticPolicy(FastRecurrentPolicy):
    """Asymmetric actor-critic: the actor reads ``obs["observation"]`` and carries memory; the
    critic also reads ``obs["privileged"]``, the env's hidden state (Pinto et al. 2018).

    The critic only shapes the advantages during training: everything that acts (``predict``,
    evaluation, export) goes through the actor, so a deployed policy never needs the hidden
    state. With ``enable_critic_lstm=True`` the critic has its own memory too (history and
    state: unbiased, Baisero & Amato 2022); with ``False`` it is feed-forward, cheaper, and
    the rollouts carry one recurrent state instead of two.

    :param predict_state: add ``state_head``, a linear read-out of the actor's memory that
        learns to predict the privileged state (:meth:`state_prediction_loss`; RecurrentPPO's
        ``state_loss_coef``): a state estimator trained with the policy (Ji et al. 2022), which
        makes the memory hold what the task hides. Nothing that acts reads it.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        *args: Any,
        predict_state: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.update(
            features_extractor_class=SelectKeys,
            features_extractor_kwargs={"keys": (OBSERVATION_KEY,)},
            share_features_extractor=False,
        )
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)
        self.predict_state = predict_state
        if predict_state:
            state_dim = get_flattened_obs_dim(observation_space[PRIVILEGED_KEY])
            self.state_head = nn.Linear(self.lstm_output_dim, state_dim)
            self._rebuild_optimizer(lr_schedule)

    def _critic_features_extractor(self) -> BaseFeaturesExtractor:
        return SelectKeys(self.observation_space, (OBSERVATION_KEY, PRIVILEGED_KEY))

    def extract_features(  # type: ignore[override]
        self, obs: dict[str, th.Tensor], features_extractor: BaseFeaturesExtractor | None = None
    ) -> th.Tensor | tuple[th.Tensor, th.Tensor]:
        """The actor's and the critic's features, as the two extractors give them, from one
        preprocessing of the observation: the critic's are the actor's and the state."""
        if features_extractor is not None:
            return super().extract_features(obs, features_extractor)
        observation = preprocess_obs(obs, self.observation_space, self.normalize_images)
        actor = th.flatten(observation[OBSERVATION_KEY], start_dim=1)
        state = th.flatten(observation[PRIVILEGED_KEY], start_dim=1)
        return actor, th.cat([actor, state], dim=1)

    def state_prediction_loss(
        self,
        obs: dict[str, th.Tensor],
        lstm_states: tuple[th.Tensor, th.Tensor],
        episode_starts: th.Tensor,
        mask: th.Tensor,
    ) -> th.Tensor:
        """Mean squared error of the privileged state read out of the actor's memory, over
        the steps where ``mask`` is true (padded sequences as the rollout buffers serve them)."""
        pi_features, _ = self.extract_features(obs)
        memory, _ = self._process_sequence(
            pi_features, lstm_states, episode_starts, self.lstm_actor
        )
        target = th.flatten(obs[PRIVILEGED_KEY].float(), start_dim=1)
        error = ((self.state_head(memory) - target) ** 2).mean(dim=1)
        return error[mask].mean()

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(predict_state=self.predict_state)
        return data


class FastRecurrentCnnPolicy(FastRecurrentPolicy):
    """``FastRecurrentPolicy`` for image observations (NatureCNN features, as sb3-contrib)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("features_extractor_class", NatureCNN)
        super().__init__(*args, **kwargs)


class FastRecurrentMultiInputPolicy(FastRecurrentPolicy):
    """``FastRecurrentPolicy`` for Dict observations (CombinedExtractor, as sb3-contrib)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("features_extractor_class", CombinedExtractor)
        super().__init__(*args, **kwargs)
