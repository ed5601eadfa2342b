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
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.policies import BaseModel

_STATE_ARRAYS = ("hidden_states_pi", "cell_states_pi", "hidden_states_vf", "cell_states_vf")
_STEP_ARRAYS = ("actions", "values", "log_probs", "advantages", "returns", "episode_starts")


def check_bptt_length(bptt_length: object) -> None:
    """ValueError unless ``bptt_length`` is a positive int (not a bool) or None."""
    if bptt_length is not None and (
        isinstance(bptt_length, bool) or not isinstance(bptt_length, int) or bptt_length < 1
    ):
        raise ValueError(
            f"bptt_length must be a positive integer or null (no truncation), got {bptt_length!r}"
        )


def pack_minibatches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Group sequences, in the given order, into minibatches of at least ``batch_size`` steps.

    A minibatch closes as soon as it holds ``batch_size`` steps or more; the sequences left
    over at the end (fewer steps) join the last minibatch. So no minibatch is ever tiny (a
    single step would make the advantage's std NaN), and a rollout shorter than
    ``batch_size`` is one minibatch.

    :return: indices into ``lengths``, one array per minibatch.
    """
    groups: list[list[int]] = []
    current: list[int] = []
    held = 0
    for index, length in enumerate(lengths):
        current.append(index)
        held += int(length)
        if held >= batch_size:
            groups.append(current)
            current, held = [], 0
    if current:
        if groups:
            groups[-1].extend(current)
        else:
            groups.append(current)
    return [np.asarray(group) for group in groups]


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

    Mixed in front of an sb3-contrib recurrent buffer; reuses its storage.
    """

    bptt_length: int | None
    # Whether the critic has recurrent states of its own; if not (a feed-forward or shared
    # critic), the actor's are served in their place, as sb3-contrib stores them.
    critic_states: bool
    # A policy whose recurrent layers replay the rollout before every epoch but the first
    # (RecurrentPPO's recompute_states); None keeps the states stored during the rollout.
    refresh_states_with: Any = None

    def __init__(
        self,
        *args: Any,
        bptt_length: int | None = None,
        critic_states: bool = True,
        **kwargs: Any,
    ) -> None:
        check_bptt_length(bptt_length)
        self.bptt_length = bptt_length
        self.critic_states = critic_states
        super().__init__(*args, **kwargs)  # the sb3-contrib buffer's

    def _stored_states(self) -> tuple[str, ...]:
        return _STATE_ARRAYS if self.critic_states else _STATE_ARRAYS[:2]

    def add(self, *args: Any, lstm_states: RNNStates, **kwargs: Any) -> None:
        """As sb3-contrib's ``add``, storing the critic's states only if it has its own, and
        each state with one copy."""
        states = (*lstm_states.pi, *lstm_states.vf)  # the critic's are left out if not its own
        for name, state in zip(self._stored_states(), states, strict=False):
            self.__dict__[name][self.pos] = state.cpu().numpy()
        self._add_step(*args, **kwargs)

    def _add_step(self, *args: Any, **kwargs: Any) -> None:
        """The step's arrays, as SB3's buffer without states stores them."""
        raise NotImplementedError

    def _recompute_states(self, policy: Any) -> None:
        """Replay each env's rollout through the current recurrent layers, from its stored
        first state, and store the states again.

        A sequence cut at a bptt boundary starts from the state stored while collecting; after
        an epoch of updates that state comes from other weights than the ones being trained
        ("stale", Kapturowski et al. 2019, R2D2). Replaying gives the state the current
        weights would have carried there.
        """
        n_envs, n_steps = self.n_envs, self.buffer_size
        starts = self._step_column("episode_starts").reshape(n_envs, n_steps)
        networks = [("pi", policy.pi_features_extractor, policy.lstm_actor)]
        if policy.lstm_critic is not None:
            networks.append(("vf", policy.vf_features_extractor, policy.lstm_critic))
        with th.no_grad():
            for suffix, extractor, rnn in networks:
                features = BaseModel.extract_features(policy, self._obs_t, extractor)
                features = features.reshape(n_envs, n_steps, -1)
                # (n_layers, n_envs * n_steps, hidden), env-major -> per env and step
                shape = (rnn.num_layers, n_envs, n_steps, rnn.hidden_size)
                hidden = self._states_t[f"hidden_states_{suffix}"].view(shape)
                cell = self._states_t[f"cell_states_{suffix}"].view(shape)
                state = (hidden[:, :, 0], cell[:, :, 0])
                for t in range(n_steps):
                    # stored: the state before step t, before its episode-start reset
                    hidden[:, :, t], cell[:, :, t] = state
                    _, state = policy._process_sequence(features[:, t], state, starts[:, t], rnn)

    def _prepare(self) -> None:
        """Flatten env-major (as sb3-contrib) and move everything to torch once per rollout."""
        if isinstance(self.observations, dict):
            for key, obs in self.observations.items():
                self.observations[key] = self.swap_and_flatten(obs)
        else:
            self.observations = self.swap_and_flatten(self.observations)
        for name in _STEP_ARRAYS:
            self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
        self.generator_ready = True

        if isinstance(self.observations, dict):
            self._obs_t: Any = {k: self.to_torch(v) for k, v in self.observations.items()}
        else:
            self._obs_t = self.to_torch(self.observations)
        # The per-step arrays stacked in one tensor, and the states in another, so that a
        # minibatch takes one gather from each (``_states_t`` names views of the states).
        # Steps run along the last axis but one, so that what a gather gives is already laid
        # out as the minibatch serves it: each per-step array a contiguous row, the states
        # (n_layers, n_seq, hidden) as the recurrent layers take them.
        size = self.buffer_size * self.n_envs
        steps = [self.to_torch(self.__dict__[name]).reshape(size, -1) for name in _STEP_ARRAYS]
        self._steps_all = th.cat(steps, dim=1).T.contiguous()
        ends = np.cumsum([step.shape[1] for step in steps])
        self._step_columns = {
            name: slice(end - step.shape[1], end)
            for name, step, end in zip(_STEP_ARRAYS, steps, ends, strict=True)
        }
        stored = self._stored_states()
        # each (n_steps, n_layers, n_envs, hidden) -> env-major (len(stored), n_layers,
        # n_envs * n_steps, hidden), copied once into place
        n_layers, hidden = self.hidden_state_shape[1], self.hidden_state_shape[3]
        states = np.empty(
            (len(stored), n_layers, self.n_envs, self.buffer_size, hidden), np.float32
        )
        for i, name in enumerate(stored):
            states[i] = self.__dict__[name].transpose(1, 2, 0, 3)
        states = states.reshape(len(stored), n_layers, size, hidden)
        self._states_all = self.to_torch(states, copy=False)
        self._states_t = {name: self._states_all[i] for i, name in enumerate(stored)}
        self._seq_starts, self._seq_lengths = sequence_starts(
            self.episode_starts.flatten(), self.buffer_size, self.bptt_length
        )

    def _step_column(self, name: str) -> th.Tensor:
        """A view of one per-step array of the whole rollout (one of ``_STEP_ARRAYS``)."""
        return self._steps_all[self._step_columns[name]].flatten()

    def get(
        self, batch_size: int | None = None
    ) -> Generator[RecurrentRolloutBufferSamples | RecurrentDictRolloutBufferSamples, None, None]:
        """Yield minibatches of whole shuffled sequences, each of at least ``batch_size`` steps
        (see :func:`pack_minibatches`)."""
        assert self.full, "Rollout buffer must be full before sampling from it"
        if not self.generator_ready:
            self._prepare()
        elif self.refresh_states_with is not None:  # a later epoch: the weights have moved
            self._recompute_states(self.refresh_states_with)
        if batch_size is None:
            batch_size = self.buffer_size * self.n_envs
        # np.random (seeded by SB3's set_random_seed) keeps training reproducible under a seed.
        order = np.random.permutation(len(self._seq_starts))
        for group in pack_minibatches(self._seq_lengths[order], batch_size):
            yield self._sequence_samples(order[group])

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
        states = self._states_all.index_select(2, start_index)  # (stored, n_layers, n_seq, hidden)
        actor = (states[0], states[1])
        critic = (states[2], states[3]) if self.critic_states else actor
        steps = self._steps_all.index_select(1, index)
        columns = self._step_columns

        def step_array(name: str) -> th.Tensor:
            return steps[columns[name]].flatten()

        if isinstance(self._obs_t, dict):
            observations: Any = {k: obs.index_select(0, index) for k, obs in self._obs_t.items()}
            samples_cls: Any = RecurrentDictRolloutBufferSamples
        else:
            observations = self._obs_t.index_select(0, index)
            samples_cls = RecurrentRolloutBufferSamples
        return samples_cls(
            observations=observations,
            actions=steps[columns["actions"]].T,
            old_values=step_array("values"),
            old_log_prob=step_array("log_probs"),
            advantages=step_array("advantages"),
            returns=step_array("returns"),
            lstm_states=RNNStates(actor, critic),
            episode_starts=step_array("episode_starts") * mask,
            mask=mask,
        )


class SequenceRolloutBuffer(_SequenceSampling, RecurrentRolloutBuffer):
    """sb3-contrib's ``RecurrentRolloutBuffer`` serving whole shuffled (truncated) sequences.

    :param bptt_length: cut sequences every ``bptt_length`` steps; None cuts only at episode
        starts and env boundaries.
    :param critic_states: whether the critic has recurrent states of its own (an LSTM); if
        not, the minibatches serve the actor's in their place. Other arguments as
        ``RecurrentRolloutBuffer``.
    """

    def _add_step(self, *args: Any, **kwargs: Any) -> None:
        RolloutBuffer.add(self, *args, **kwargs)


class SequenceDictRolloutBuffer(_SequenceSampling, RecurrentDictRolloutBuffer):
    """``SequenceRolloutBuffer`` for Dict observation spaces."""

    def _add_step(self, *args: Any, **kwargs: Any) -> None:
        DictRolloutBuffer.add(self, *args, **kwargs)
