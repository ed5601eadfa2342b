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

from collections import defaultdict
from typing import Any, ClassVar

import numpy as np
import sb3_contrib
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.utils import explained_variance

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

# The loss terms that train() logs as means over an update's minibatches (sb3-contrib's names).
_LOGGED_TERMS = ("entropy_loss", "policy_gradient_loss", "value_loss", "clip_fraction")


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
            critic_states=self.policy.lstm_critic is not None,
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
        """sb3-contrib's PPO epochs (its loss, clipping, early stop and logs, step for step),
        then the state-prediction pass if ``state_loss_coef``.

        One difference in how, not what: a mean over a minibatch's real steps is a sum
        weighted by the mask over their number, where sb3-contrib selects them with the
        boolean mask. The numbers are the same (to rounding; tests/test_fast_recurrent.py),
        but selecting costs a copy forward and a scatter backward for each term of the loss,
        which made ~5 % of an iteration (docs/throughput.md). The logged values are read
        once per update, not once per minibatch.
        """
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)
        clip_range_vf = None
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)
        logged: dict[str, list[th.Tensor]] = defaultdict(list)  # per minibatch, detached
        continue_training = True
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for data in self.rollout_buffer.get(self.batch_size):
                terms = self._loss_terms(data, clip_range, clip_range_vf)
                loss = terms["loss"]
                for name in _LOGGED_TERMS:
                    logged[name].append(terms[name].detach())
                approx_kl_divs.append(terms["approx_kl"].detach())
                if self.target_kl is not None and terms["approx_kl"] > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl")
                    break
                self.policy.optimizer.zero_grad()
                loss.backward()
                # the norm before clipping: past max_grad_norm every weight's step shrinks
                norm = th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                logged["grad_norm"].append(norm.detach())
                self.policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break
        self._record_train_logs(logged, approx_kl_divs, loss, clip_range, clip_range_vf)
        if self.state_loss_coef > 0:
            self._train_state_prediction()

    def _loss_terms(
        self, data: Any, clip_range: float, clip_range_vf: float | None
    ) -> dict[str, th.Tensor]:
        """sb3-contrib's PPO loss on one minibatch of padded sequences, and what it logs."""
        actions = data.actions
        if isinstance(self.action_space, spaces.Discrete):
            actions = actions.long().flatten()
        mask = data.mask
        n_real = mask.sum()

        def mean(values: th.Tensor) -> th.Tensor:  # over the real steps, padding left out
            return (values * mask).sum() / n_real

        values, log_prob, entropy = self.policy.evaluate_actions(
            data.observations, actions, data.lstm_states, data.episode_starts
        )
        values = values.flatten()
        advantages = data.advantages
        if self.normalize_advantage:
            centred = advantages - mean(advantages)
            std = ((centred**2 * mask).sum() / (n_real - 1)).sqrt()  # th.std's, unbiased
            advantages = centred / (std + 1e-8)
        log_ratio = log_prob - data.old_log_prob
        ratio = th.exp(log_ratio)
        clipped_ratio = th.clamp(ratio, 1 - clip_range, 1 + clip_range)
        policy_loss = -mean(th.min(advantages * ratio, advantages * clipped_ratio))
        if clip_range_vf is not None:  # the change in value clipped, as SB3
            values = data.old_values + th.clamp(
                values - data.old_values, -clip_range_vf, clip_range_vf
            )
        value_loss = mean((data.returns - values) ** 2)
        entropy_loss = -mean(entropy if entropy is not None else -log_prob)
        with th.no_grad():
            clip_fraction = mean((th.abs(ratio - 1) > clip_range).float())
            approx_kl = mean((ratio - 1) - log_ratio)  # Schulman's estimator, SB3 issue 417
        return {
            "loss": policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss,
            "policy_gradient_loss": policy_loss,
            "value_loss": value_loss,
            "entropy_loss": entropy_loss,
            "clip_fraction": clip_fraction,
            "approx_kl": approx_kl,
        }

    def _record_train_logs(
        self,
        logged: dict[str, list[th.Tensor]],
        approx_kl_divs: list[th.Tensor],
        loss: th.Tensor,
        clip_range: float,
        clip_range_vf: float | None,
    ) -> None:
        """sb3-contrib's ``train/`` records: means over the update's minibatches (approx_kl
        over the last epoch's), as it logs them; and ``train/grad_norm``, the gradient's
        norm before clipping, which sb3-contrib does not log."""
        for name, values in logged.items():  # no grad_norm if target_kl stopped at once
            self.logger.record(f"train/{name}", th.stack(values).mean().item())
        self.logger.record("train/approx_kl", th.stack(approx_kl_divs).mean().item())
        self.logger.record("train/loss", loss.item())
        explained_var = explained_variance(
            self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()
        )
        self.logger.record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)

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
