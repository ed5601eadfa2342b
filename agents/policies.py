"""The recurrent actor-critic policy: fast sequence processing and a choice of LSTM or GRU cell.

sb3-contrib's ``RecurrentActorCriticPolicy`` runs a minibatch through its LSTM one step at a
time in a Python loop whenever the minibatch holds an episode start (sb3-contrib issues #113,
#118), which is almost always. The loop is not needed: a state is only ever reset *at the
first step of a sequence* (the rollout buffers cut sequences at episode starts and padding sits
at the end), so resetting the initial state with ``(1 - episode_start[0])`` and making one
recurrent call over the whole padded batch is exact. ``_process_sequence`` below does that,
and stays exact for arbitrary callers by splitting the time axis only where a reset happens
in the middle (one call per such time index instead of one per step).

GRU (asked for in sb3-contrib issues #220 and #295) keeps the LSTM interface: its state is
still a pair ``(h, c)`` whose ``c`` is a placeholder of zeros, so ``predict``, the rollout
buffers, SB3's ``evaluate_policy`` and every loop that carries ``(h, c)`` work unchanged.
The recurrent modules keep sb3-contrib's attribute names ``lstm_actor``/``lstm_critic``
whatever the cell, because sb3-contrib's ``RecurrentPPO`` reads ``policy.lstm_actor``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import (
    RecurrentActorCriticPolicy as Sb3ContribRecurrentPolicy,
)
from stable_baselines3.common.torch_layers import CombinedExtractor, NatureCNN
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

RecurrentCell = Literal["lstm", "gru"]
RECURRENT_CELLS: tuple[str, ...] = ("lstm", "gru")


class GRUWithCellPlaceholder(nn.GRU):
    """``nn.GRU`` that takes and returns an LSTM-style state ``(h, c)``.

    A GRU has no cell state; ``c`` is accepted and returned as zeros of ``h``'s shape so that
    code written for ``nn.LSTM`` (state tuples of two arrays of shape
    ``(n_layers, n_envs, hidden)``) runs on a GRU without a branch. Parameter names are those
    of ``nn.GRU``.
    """

    def forward(  # type: ignore[override]
        self,
        input: th.Tensor,
        hx: tuple[th.Tensor, th.Tensor] | None = None,
    ) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]:
        output, h_n = super().forward(input, None if hx is None else hx[0])
        return output, (h_n, th.zeros_like(h_n))


def make_recurrent_layer(
    cell: str, input_size: int, hidden_size: int, num_layers: int, **kwargs: Any
) -> nn.Module:
    """Build the recurrent layer for ``cell`` ("lstm" or "gru"), both with the (h, c) interface."""
    if cell == "lstm":
        return nn.LSTM(input_size, hidden_size, num_layers=num_layers, **kwargs)
    if cell == "gru":
        return GRUWithCellPlaceholder(input_size, hidden_size, num_layers=num_layers, **kwargs)
    raise ValueError(f"recurrent_cell must be one of {RECURRENT_CELLS}, got {cell!r}")


class FastRecurrentPolicy(Sb3ContribRecurrentPolicy):
    """sb3-contrib's recurrent actor-critic with one recurrent call per minibatch and a cell choice.

    Takes every argument of sb3-contrib's ``RecurrentActorCriticPolicy`` (``lstm_hidden_size``,
    ``n_lstm_layers``, ``shared_lstm``, ``enable_critic_lstm``, ``lstm_kwargs``, ``net_arch``
    ...) plus ``recurrent_cell``. With ``recurrent_cell="lstm"`` the parameters, their
    initialisation under a seed and the state-dict keys are sb3-contrib's, so the outputs and
    gradients equal stock sb3-contrib's (tests/test_fast_recurrent.py checks it).

    :param recurrent_cell: "lstm" (default, as sb3-contrib) or "gru". For "gru" the
        ``c`` half of every state tuple is zeros and ignored.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        *args: Any,
        recurrent_cell: RecurrentCell = "lstm",
        **kwargs: Any,
    ) -> None:
        if recurrent_cell not in RECURRENT_CELLS:
            raise ValueError(
                f"recurrent_cell must be one of {RECURRENT_CELLS}, got {recurrent_cell!r}"
            )
        self.recurrent_cell = recurrent_cell
        optimizer_class = kwargs.get("optimizer_class", th.optim.Adam)
        if not args and optimizer_class is th.optim.Adam and kwargs.get("optimizer_kwargs") is None:
            # SB3's Adam default (eps 1e-5), fused: one kernel for all parameters instead of a
            # Python loop over them; the LSTM's large tensors made Adam ~10 % of train() here.
            kwargs["optimizer_kwargs"] = {"eps": 1e-5, "fused": True}
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)
        if recurrent_cell == "lstm":
            return
        # The parent hard-codes nn.LSTM; swap in GRUs of the same size, then rebuild the
        # optimizer, which holds references to the parameters it was built with.
        lstm = self.lstm_actor
        self.lstm_actor = make_recurrent_layer(
            "gru", lstm.input_size, lstm.hidden_size, lstm.num_layers, **self.lstm_kwargs
        )
        if self.lstm_critic is not None:
            self.lstm_critic = make_recurrent_layer(
                "gru", lstm.input_size, lstm.hidden_size, lstm.num_layers, **self.lstm_kwargs
            )
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    @staticmethod
    def _process_sequence(
        features: th.Tensor,
        lstm_states: tuple[th.Tensor, th.Tensor],
        episode_starts: th.Tensor,
        lstm: nn.Module,
    ) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]:
        """Run ``n_seq`` padded sequences through ``lstm``, resetting states at episode starts.

        Same contract as sb3-contrib's: ``features`` is ``(n_seq * max_len, features_dim)``
        sequence-major, ``lstm_states`` are the states before each sequence's first step and
        ``episode_starts`` is ``(n_seq * max_len,)``. Returns the flattened outputs and the
        final states. The time axis is split only at steps where some sequence resets after
        its first step; sequences from the rollout buffers never do, so training makes exactly
        one call per minibatch, and collecting rollouts (``max_len == 1``) one per step.
        """
        n_seq = lstm_states[0].shape[1]
        if features.shape[0] == n_seq and _steps_with_cells(lstm):
            return _step_with_cells(features, lstm_states, episode_starts, lstm)
        # (n_seq * max_len, dim) -> (max_len, n_seq, dim), the layout nn.LSTM expects
        features_sequence = features.reshape((n_seq, -1, lstm.input_size)).swapaxes(0, 1)
        episode_starts = episode_starts.reshape((n_seq, -1)).swapaxes(0, 1)
        max_len = features_sequence.shape[0]

        reset_steps = [0]
        if max_len > 1:
            reset_steps += (th.nonzero(episode_starts[1:].any(dim=1)).flatten() + 1).tolist()
        boundaries = [*reset_steps, max_len]

        outputs = []
        hidden, cell = lstm_states
        for start, end in zip(boundaries[:-1], boundaries[1:], strict=True):
            # The one place where the recurrent state is reset: (1 - episode_start).
            keep = (1.0 - episode_starts[start]).view(1, n_seq, 1)
            output, (hidden, cell) = lstm(
                features_sequence[start:end], (keep * hidden, keep * cell)
            )
            outputs.append(output)
        output = outputs[0] if len(outputs) == 1 else th.cat(outputs)
        # (max_len, n_seq, hidden) -> (n_seq * max_len, hidden), sequence-major again
        return th.flatten(output.transpose(0, 1), start_dim=0, end_dim=1), (hidden, cell)

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
        )
        return data


def _steps_with_cells(rnn: nn.Module) -> bool:
    """Whether a single step may bypass ``rnn.forward`` (see ``_step_with_cells``)."""
    return (
        not th.is_grad_enabled()
        and type(rnn) in (nn.LSTM, GRUWithCellPlaceholder)
        and rnn.bias
        and not rnn.bidirectional
        and getattr(rnn, "proj_size", 0) == 0
        and (rnn.dropout == 0 or not rnn.training)
    )


def _step_with_cells(
    features: th.Tensor,
    states: tuple[th.Tensor, th.Tensor],
    episode_starts: th.Tensor,
    rnn: nn.Module,
) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]:
    """One time step for all envs with ``th.lstm_cell``/``th.gru_cell``, layer by layer.

    Collecting rollouts and ``predict`` run the recurrent layer one step at a time, where
    ``nn.LSTM``'s whole-sequence kernel (oneDNN on CPU) costs about twice as much per call as
    the cell function; same arithmetic, outputs equal to ~1e-7.
    """
    keep = (1.0 - episode_starts).view(-1, 1)
    hidden, cell = states[0] * keep, states[1] * keep
    x = features
    new_hidden, new_cell = [], []
    for layer in range(rnn.num_layers):
        weights = [getattr(rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh")]
        biases = [getattr(rnn, f"{name}_l{layer}") for name in ("bias_ih", "bias_hh")]
        if isinstance(rnn, nn.LSTM):
            x, c = th.lstm_cell(x, (hidden[layer], cell[layer]), *weights, *biases)
        else:
            x = th.gru_cell(x, hidden[layer], *weights, *biases)
            c = th.zeros_like(x)
        new_hidden.append(x)
        new_cell.append(c)
    return x, (th.stack(new_hidden), th.stack(new_cell))


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
