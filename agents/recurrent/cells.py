"""The recurrent cells: LSTM and GRU behind one ``(h, c)`` interface, and fast single steps.

GRU (asked for in sb3-contrib issues #220 and #295) keeps the LSTM interface: its state is
still a pair ``(h, c)`` whose ``c`` is a placeholder of zeros, so ``predict``, the rollout
buffers, SB3's ``evaluate_policy`` and every loop that carries ``(h, c)`` work unchanged.
"""

from __future__ import annotations

import functools
from typing import Any, Literal, get_args

import torch as th
from torch import nn

RecurrentCell = Literal["lstm", "gru"]
RECURRENT_CELLS: tuple[str, ...] = get_args(RecurrentCell)

# lstm_kwargs (sb3-contrib's name, for either cell) that the policies work with; the others
# of nn.LSTM would break them, some silently.
RECURRENT_KWARGS = ("bias", "dropout", "device", "dtype")
_REFUSED_KWARGS = {
    "proj_size": "the recurrent state holds lstm_hidden_size values per unit",
    "batch_first": "the policy feeds sequences time-major",
    "bidirectional": "a policy cannot read the steps to come",
}


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


def check_recurrent_kwargs(cell: str, kwargs: dict[str, Any]) -> None:
    """ValueError naming any ``lstm_kwargs`` key the recurrent layers of ``cell`` cannot take."""
    for key in kwargs:
        if key in RECURRENT_KWARGS:
            continue
        if key == "proj_size" and cell == "gru":
            raise ValueError(
                "lstm_kwargs proj_size applies to an LSTM only; a GRU (recurrent_cell 'gru') "
                f"has no projection. Supported: {', '.join(RECURRENT_KWARGS)}"
            )
        reason = f" ({_REFUSED_KWARGS[key]})" if key in _REFUSED_KWARGS else ""
        raise ValueError(
            f"lstm_kwargs {key!r} is not supported{reason}; supported: "
            f"{', '.join(RECURRENT_KWARGS)}"
        )


def make_recurrent_layer(
    cell: str, input_size: int, hidden_size: int, num_layers: int, **kwargs: Any
) -> nn.Module:
    """Build the recurrent layer for ``cell`` ("lstm" or "gru"), both with the (h, c) interface."""
    check_recurrent_kwargs(cell, kwargs)
    if cell == "lstm":
        return nn.LSTM(input_size, hidden_size, num_layers=num_layers, **kwargs)
    if cell == "gru":
        return GRUWithCellPlaceholder(input_size, hidden_size, num_layers=num_layers, **kwargs)
    raise ValueError(f"recurrent_cell must be one of {RECURRENT_CELLS}, got {cell!r}")


def steps_with_cells(rnn: nn.Module) -> bool:
    """Whether a single step may bypass ``rnn.forward`` (see ``step_with_cells``)."""
    return (
        not th.is_grad_enabled()
        and type(rnn) in (nn.LSTM, GRUWithCellPlaceholder)
        and rnn.bias
        and not rnn.bidirectional
        and getattr(rnn, "proj_size", 0) == 0
        and (rnn.dropout == 0 or not rnn.training)
    )


def step_with_cells(
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
    if episode_starts.any():  # most steps start no episode: the check costs less than a reset
        keep = (1.0 - episode_starts).view(-1, 1)
        states = (states[0] * keep, states[1] * keep)
    return step_cells(features, states, rnn)


def step_cells(
    features: th.Tensor, states: tuple[th.Tensor, th.Tensor], rnn: nn.Module
) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]:
    """``step_with_cells`` without the reset: the state is the caller's to zero. Exported
    policies (agents/export.py) run this same arithmetic, so they act as ``predict`` does."""
    hidden, cell = states
    x = features
    # w_ih, w_hh, b_ih, b_hh of each layer in turn: the list nn.LSTM.forward itself passes to
    # its kernel, kept current by nn.RNNBase (looking each weight up by name took ~10 % of a
    # collecting step's time in the cell function here)
    weights = rnn._flat_weights
    per_layer = len(weights) // rnn.num_layers  # 2 without biases
    new_hidden, new_cell = [], []
    for layer in range(rnn.num_layers):
        layer_weights = weights[per_layer * layer : per_layer * (layer + 1)]
        if isinstance(rnn, nn.LSTM):
            x, c = th.lstm_cell(x, (hidden[layer], cell[layer]), *layer_weights)
        else:
            x = th.gru_cell(x, hidden[layer], *layer_weights)
            c = th.zeros_like(x)
        new_hidden.append(x)
        new_cell.append(c)
    if rnn.num_layers == 1:  # a view, where stacking one tensor copies it
        return x, (x.unsqueeze(0), c.unsqueeze(0))
    return x, (th.stack(new_hidden), th.stack(new_cell))


@functools.cache
def fused_adam_supported(device_type: str) -> bool:
    """Whether the installed torch runs ``Adam(fused=True)`` on this kind of device (CPU from
    torch 2.4 on; CUDA earlier), found by one step on a one-element tensor."""
    try:
        parameter = nn.Parameter(th.zeros(1, device=device_type))
        optimizer = th.optim.Adam([parameter], fused=True)
        parameter.grad = th.zeros_like(parameter)
        optimizer.step()
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


def use_fused_adam_where_supported(optimizer: th.optim.Optimizer, device: th.device) -> None:
    """Turn fused Adam off where torch does not support it on ``device`` (a model built or
    saved on a device that does, moved or loaded onto one that does not)."""
    if not fused_adam_supported(th.device(device).type):
        for group in optimizer.param_groups:
            if group.get("fused"):
                group["fused"] = False


def set_forget_bias(module: nn.Module, value: float) -> None:
    """Set the forget gates' bias of every ``nn.LSTM`` in ``module`` to ``value``.

    PyTorch adds two biases, ``bias_ih`` and ``bias_hh``, whose gates are stacked as input,
    forget, cell, output: the forget quarter of ``bias_ih`` carries ``value``, that of
    ``bias_hh`` is zeroed, so that their sum is ``value``.
    """
    with th.no_grad():
        for lstm in (layer for layer in module.modules() if isinstance(layer, nn.LSTM)):
            forget = slice(lstm.hidden_size, 2 * lstm.hidden_size)
            for name, bias in lstm.named_parameters():
                if name.startswith("bias_"):
                    bias[forget] = value if name.startswith("bias_ih") else 0.0
