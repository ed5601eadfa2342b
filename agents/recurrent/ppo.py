"""RecurrentPPO with fast sequence processing, truncated BPTT and a choice of LSTM or GRU.

A thin subclass of ``sb3_contrib.RecurrentPPO``: rollout collection, the PPO loss, logging,
save/load and ``predict`` are sb3-contrib's. Two pieces change (issue 5):

- the policy (agents/recurrent/policies.py) makes one recurrent call per minibatch instead of
  a Python loop over time steps, and offers ``recurrent_cell="gru"``;
- the rollout buffer (agents/recurrent/buffers.py) serves minibatches of many short sequences,
  cut every ``bptt_length`` steps and at episode starts, each starting from the state stored
  during the rollout.

>>> from agents.recurrent.ppo import RecurrentPPO
>>> model = RecurrentPPO("MlpLstmPolicy", "CartPole-v1", n_steps=32, batch_size=64,
...                      bptt_length=16, policy_kwargs=dict(recurrent_cell="gru"))
>>> model = model.learn(64)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import sb3_contrib
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy

from agents.recurrent.buffers import (
    SequenceDictRolloutBuffer,
    SequenceRolloutBuffer,
    check_bptt_length,
)
from agents.recurrent.cells import use_fused_adam_where_supported
from agents.recurrent.policies import (
    FastRecurrentCnnPolicy,
    FastRecurrentMultiInputPolicy,
    FastRecurrentPolicy,
    PrivilegedCriticPolicy,
)

# Chosen from docs/throughput.md and docs/parity.md. With oneDNN's LSTM kernel the cost of a
# minibatch depends little on how its steps are cut (8 to 64 overlap within the repetitions'
# spread on HalfCheetah-P), but long sequences mean more padding when episodes are short
# (CartPole-P: 8 and 16 ~15-55 % faster than 32, 64 or None), and the GRU, which has no fused
# kernel on CPU, pays per step (8 ~1.2x faster than 16). 8 and 16 are close; on the
# 1-100-step memory task every length tried from 16 to None learned within seed noise of
# sb3-contrib, and 16 keeps gradients over twice the horizon of 8.
DEFAULT_BPTT_LENGTH: int | None = 16


class RecurrentPPO(sb3_contrib.RecurrentPPO):
    """sb3-contrib's RecurrentPPO trained on whole shuffled sequences of at most ``bptt_length``.

    Takes every argument of ``sb3_contrib.RecurrentPPO``, unchanged and in the same order, plus:

    :param bptt_length: truncated backpropagation-through-time length: training sequences are
        cut at episode starts, env boundaries and every ``bptt_length`` steps; a cut that is
        not an episode start starts from the state stored during the rollout. None cuts only
        at episode starts and env boundaries (gradients through whole episode pieces of up to
        ``n_steps``). ``batch_size`` counts steps; minibatches are sets of whole sequences
        of at least ``batch_size`` steps.
    :param recompute_states: before every epoch but the first, replay the rollout through the
        current recurrent layers to refresh the stored states that truncated sequences start
        from (they go stale as the weights change). Costs one no-grad pass over the rollout.
    :param state_loss_coef: after the PPO epochs, one more pass over the rollout in which the
        actor's memory learns to predict the privileged state, with this weight on the loss
        (needs ``PrivilegedCriticLstmPolicy`` with ``predict_state=True``); 0 skips it.

    The policy aliases ("MlpLstmPolicy", "CnnLstmPolicy", "MultiInputLstmPolicy") map to the
    fast policies, which accept ``policy_kwargs`` ``recurrent_cell="lstm"|"gru"`` besides
    sb3-contrib's. ``predict`` returns sb3-contrib's state: a tuple ``(h, c)`` of arrays of
    shape ``(n_layers, n_envs, hidden)``; for GRU, ``c`` is zeros and ignored.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpLstmPolicy": FastRecurrentPolicy,
        "CnnLstmPolicy": FastRecurrentCnnPolicy,
        "MultiInputLstmPolicy": FastRecurrentMultiInputPolicy,
        "PrivilegedCriticLstmPolicy": PrivilegedCriticPolicy,
    }

    def __init__(
        self,
        *args: Any,
        bptt_length: int | None = DEFAULT_BPTT_LENGTH,
        recompute_states: bool = False,
        state_loss_coef: float = 0.0,
        **kwargs: Any,
    ) -> None:
        check_bptt_length(bptt_length)  # before the parent builds envs and networks
        # Set before the parent's constructor, which calls _setup_model().
        self.bptt_length = bptt_length
        self.recompute_states = recompute_states
        self.state_loss_coef = state_loss_coef
        super().__init__(*args, **kwargs)
        if state_loss_coef > 0 and not getattr(self.policy, "predict_state", False):
            raise ValueError(
                "state_loss_coef needs a policy that predicts the state: "
                "PrivilegedCriticLstmPolicy with policy_kwargs predict_state=True"
            )

    def _setup_model(self) -> None:
        """Build everything as sb3-contrib does, then swap in the sequence rollout buffer."""
        super()._setup_model()
        stock = self.rollout_buffer
        buffer_cls = (
            SequenceDictRolloutBuffer
            if isinstance(self.observation_space, spaces.Dict)
            else SequenceRolloutBuffer
        )
        self.rollout_buffer = buffer_cls(
            self.n_steps,
            self.observation_space,
            self.action_space,
            stock.hidden_state_shape,
            self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
            bptt_length=self.bptt_length,
        )
        if self.recompute_states:
            self.rollout_buffer.refresh_states_with = self.policy
        use_fused_adam_where_supported(self.policy.optimizer, self.device)

    def _update_learning_rate(self, optimizers: Any) -> None:
        """As SB3's, then each parameter group's ``lr_scale`` (the policy's memory_lr_scale)."""
        super()._update_learning_rate(optimizers)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            for group in optimizer.param_groups:
                group["lr"] *= group.get("lr_scale", 1.0)

    def train(self) -> None:
        """sb3-contrib's PPO epochs, then the state-prediction pass if ``state_loss_coef``."""
        super().train()
        if self.state_loss_coef > 0:
            self._train_state_prediction()

    def _train_state_prediction(self) -> None:
        # Its own pass rather than a term in sb3-contrib's loss, which has no hook for one: the
        # estimator trains on the same minibatches, with the same optimizer and clipping.
        losses = []
        for data in self.rollout_buffer.get(self.batch_size):
            loss = self.policy.state_prediction_loss(
                data.observations, data.lstm_states.pi, data.episode_starts, data.mask > 1e-8
            )
            self.policy.optimizer.zero_grad()
            (self.state_loss_coef * loss).backward()
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
            losses.append(loss.item())
        self.logger.record("train/state_loss", float(np.mean(losses)))

    def set_parameters(self, *args: Any, **kwargs: Any) -> None:
        """As SB3's; an optimizer state saved as fused is not fused where torch cannot."""
        super().set_parameters(*args, **kwargs)
        use_fused_adam_where_supported(self.policy.optimizer, self.device)
