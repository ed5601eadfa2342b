"""Rollout buffers that serve minibatches of whole, shuffled, optionally truncated sequences.

sb3-contrib's ``RecurrentRolloutBuffer`` slices a minibatch out of the env-major buffer as one
contiguous range, so a minibatch holds one or two sequences of up to ``n_steps`` steps: the
recurrent layer then runs hundreds of steps with a batch of one or two. Here the buffer is cut
into training sequences once per rollout, at

- episode starts (the state is reset there),
- env boundaries (each env's rollout starts from the state stored for it), and
- every ``bptt_length`` steps since the last cut (truncated backpropagation through time),

and each minibatch is a random set of whole sequences holding about ``batch_size`` steps, as
CleanRL's and pytorch-a2c-ppo-acktr's recurrent PPO do. A sequence that starts at a bptt cut
starts from the state stored during the rollout, without reset; only episode starts reset.
Short sequences side by side keep the recurrent layer busy with a wide batch and few steps.

The samples have sb3-contrib's layout (``RecurrentRolloutBufferSamples``: padded
``(n_seq * max_len, ...)`` tensors, states ``(n_layers, n_seq, hidden)`` and a mask), so
sb3-contrib's ``RecurrentPPO.train`` consumes them unchanged. Padding repeats each sequence's
last step (finite values) and is removed from every loss term by the mask; its
``episode_starts`` are zero so the policy never resets inside a sequence.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import torch as th
from sb3_contrib.common.recurrent.buffers import RecurrentDictRolloutBuffer, RecurrentRolloutBuffer
from sb3_contrib.common.recurrent.type_aliases import (
    RecurrentDictRolloutBufferSamples,
    RecurrentRolloutBufferSamples,
    RNNStates,
)

_STATE_ARRAYS = ("hidden_states_pi", "cell_states_pi", "hidden_states_vf", "cell_states_vf")
_STEP_ARRAYS = ("actions", "values", "log_probs", "advantages", "returns", "episode_starts")


def sequence_starts(
    episode_starts: np.ndarray, n_steps: int, bptt_length: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Cut an env-major flattened buffer into training sequences.

    :param episode_starts: ``(n_envs * n_steps,)`` env-major flags, 1 where an episode starts.
    :param n_steps: steps per env in the buffer.
    :param bptt_length: maximum sequence length, or None for whole episode pieces.
    :return: start indices and lengths of the sequences, in buffer order.
    """
    size = len(episode_starts)
    positions = np.arange(size)
    cut = (episode_starts > 0) | (positions % n_steps == 0)
    if bptt_length is not None:
        # Counted from the last episode start or env boundary, so that sequences after an
        # episode start are full length rather than aligned to a fixed grid.
        last_cut = np.maximum.accumulate(np.where(cut, positions, 0))
        cut |= (positions - last_cut) % bptt_length == 0
    starts = np.flatnonzero(cut)
    lengths = np.diff(np.append(starts, size))
    return starts, lengths


class _SequenceSampling:
    """``get()`` for the two sequence buffers below (array and Dict observations).

    Mixed in front of an sb3-contrib recurrent buffer; reuses its storage and ``add()``.
    """

    bptt_length: int | None

    def _init_sequences(self, bptt_length: int | None) -> None:
        if bptt_length is not None and (not isinstance(bptt_length, int) or bptt_length < 1):
            raise ValueError(f"bptt_length must be a positive int or None, got {bptt_length!r}")
        self.bptt_length = bptt_length

    def _prepare(self) -> None:
        """Flatten env-major (as sb3-contrib) and move everything to torch once per rollout."""
        # (n_steps, n_layers, n_envs, hidden) -> (n_steps, n_envs, n_layers, hidden)
        for name in _STATE_ARRAYS:
            self.__dict__[name] = self.__dict__[name].swapaxes(1, 2)
        if isinstance(self.observations, dict):
            for key, obs in self.observations.items():
                self.observations[key] = self.swap_and_flatten(obs)
        else:
            self.observations = self.swap_and_flatten(self.observations)
        for name in (*_STEP_ARRAYS, *_STATE_ARRAYS):
            self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
        self.generator_ready = True

        if isinstance(self.observations, dict):
            self._obs_t: Any = {k: self.to_torch(v) for k, v in self.observations.items()}
        else:
            self._obs_t = self.to_torch(self.observations)
        self._steps_t = {name: self.to_torch(self.__dict__[name]) for name in _STEP_ARRAYS}
        self._states_t = {name: self.to_torch(self.__dict__[name]) for name in _STATE_ARRAYS}
        self._seq_starts, self._seq_lengths = sequence_starts(
            self.episode_starts.flatten(), self.buffer_size, self.bptt_length
        )

    def get(
        self, batch_size: int | None = None
    ) -> Generator[RecurrentRolloutBufferSamples | RecurrentDictRolloutBufferSamples, None, None]:
        """Yield minibatches of whole sequences, about ``batch_size`` steps each, shuffled."""
        assert self.full, "Rollout buffer must be full before sampling from it"
        if not self.generator_ready:
            self._prepare()
        total = self.buffer_size * self.n_envs
        if batch_size is None:
            batch_size = total
        # np.random (seeded by SB3's set_random_seed) keeps training reproducible under a seed.
        order = np.random.permutation(len(self._seq_starts))
        lengths = self._seq_lengths[order]
        # A sequence joins the minibatch in which its first step falls; a sequence longer than
        # batch_size leaves the next index empty, hence unique().
        minibatch = (np.cumsum(lengths) - lengths) // batch_size
        for index in np.unique(minibatch):
            yield self._sequence_samples(order[minibatch == index])

    def _sequence_samples(
        self, seq_ids: np.ndarray
    ) -> RecurrentRolloutBufferSamples | RecurrentDictRolloutBufferSamples:
        starts = self._seq_starts[seq_ids]
        lengths = self._seq_lengths[seq_ids]
        offsets = np.arange(lengths.max())
        valid = offsets[None, :] < lengths[:, None]
        # Padding repeats the last step of its sequence: finite, and masked out of the loss.
        step_index = starts[:, None] + np.minimum(offsets[None, :], lengths[:, None] - 1)
        index = th.as_tensor(step_index.reshape(-1), device=self.device)
        mask = th.as_tensor(valid.reshape(-1), dtype=th.float32, device=self.device)

        start_index = th.as_tensor(starts, device=self.device)
        # (n_seq, n_layers, hidden) -> (n_layers, n_seq, hidden)
        states = {
            name: tensor[start_index].swapaxes(0, 1).contiguous()
            for name, tensor in self._states_t.items()
        }
        steps = self._steps_t
        if isinstance(self._obs_t, dict):
            observations: Any = {key: obs[index] for key, obs in self._obs_t.items()}
            samples_cls: Any = RecurrentDictRolloutBufferSamples
        else:
            observations = self._obs_t[index]
            samples_cls = RecurrentRolloutBufferSamples
        return samples_cls(
            observations=observations,
            actions=steps["actions"][index],
            old_values=steps["values"][index].flatten(),
            old_log_prob=steps["log_probs"][index].flatten(),
            advantages=steps["advantages"][index].flatten(),
            returns=steps["returns"][index].flatten(),
            lstm_states=RNNStates(
                (states["hidden_states_pi"], states["cell_states_pi"]),
                (states["hidden_states_vf"], states["cell_states_vf"]),
            ),
            episode_starts=steps["episode_starts"][index].flatten() * mask,
            mask=mask,
        )


class SequenceRolloutBuffer(_SequenceSampling, RecurrentRolloutBuffer):
    """sb3-contrib's ``RecurrentRolloutBuffer`` serving whole shuffled (truncated) sequences.

    :param bptt_length: cut sequences every ``bptt_length`` steps; None cuts only at episode
        starts and env boundaries. Other arguments as ``RecurrentRolloutBuffer``.
    """

    def __init__(self, *args: Any, bptt_length: int | None = None, **kwargs: Any) -> None:
        self._init_sequences(bptt_length)
        super().__init__(*args, **kwargs)


class SequenceDictRolloutBuffer(_SequenceSampling, RecurrentDictRolloutBuffer):
    """``SequenceRolloutBuffer`` for Dict observation spaces."""

    def __init__(self, *args: Any, bptt_length: int | None = None, **kwargs: Any) -> None:
        self._init_sequences(bptt_length)
        super().__init__(*args, **kwargs)
