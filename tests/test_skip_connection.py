"""The skip connection (``skip_connection``): the heads read the current features beside the
recurrent output, for every critic the policy can have, in training, save/load and export."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th

import agents
from agents.algos import build_model
from agents.config import make_config
from agents.environments import make_vec
from tests.conftest import TINY_TRAIN

TINY = dict(n_steps=16, batch_size=32, n_epochs=1, lstm_hidden_size=8, net_arch=[8])
CRITICS = {
    "critic-lstm": dict(),
    "feed-forward-critic": dict(enable_critic_lstm=False),
    "shared-lstm": dict(shared_lstm=True),
    "privileged-critic-lstm": dict(privileged_critic=True),
    "privileged-feed-forward": dict(privileged_critic=True, enable_critic_lstm=False),
}


def _model(skip: bool, **critic):
    config = make_config(env="CartPole-P-v1", skip_connection=skip, **TINY, **critic)
    env = make_vec(config, 2, seed=0)
    return build_model(config, env), env


def _silence_memory(policy) -> None:
    """Zero every recurrent weight: the memory then outputs zeros whatever it reads."""
    with th.no_grad():
        for rnn in (policy.lstm_actor, policy.lstm_critic):
            for parameter in rnn.parameters() if rnn is not None else ():
                parameter.zero_()


@pytest.mark.parametrize("critic", CRITICS.values(), ids=CRITICS.keys())
def test_heads_read_the_current_features_beside_a_silent_memory(critic):
    outputs = {}
    for skip in (False, True):
        model, env = _model(skip, **critic)
        _silence_memory(model.policy)
        observation = env.reset()
        other = (
            {key: value + 1.0 for key, value in observation.items()}
            if isinstance(observation, dict)
            else observation + 1.0
        )
        states = (th.zeros(1, 2, 8),) * 2
        starts = th.ones(2)
        outputs[skip] = []
        for obs in (observation, other):
            tensor = model.policy.obs_to_tensor(obs)[0]
            distribution, _ = model.policy.get_distribution(tensor, states, starts)
            values = model.policy.predict_values(tensor, states, starts)
            outputs[skip].append((distribution.distribution.probs, values))
        model.learn(64)  # the training pass reads the same widths
        env.close()
    (probs, values), (other_probs, other_values) = outputs[False]
    assert th.equal(probs, other_probs), "without the skip a silent memory hides the step"
    (probs, values), (other_probs, other_values) = outputs[True]
    assert not th.allclose(probs, other_probs)
    assert not th.allclose(values, other_values)


def test_skip_connection_survives_save_and_load(tmp_path):
    model, env = _model(True, privileged_critic=True, enable_critic_lstm=False)
    observation = env.reset()
    starts = np.ones(2, dtype=bool)
    actions, state = model.predict(observation, episode_start=starts, deterministic=True)
    model.save(tmp_path / "model.zip")
    loaded = type(model).load(tmp_path / "model.zip")
    assert loaded.policy.skip_connection
    again, again_state = loaded.predict(observation, episode_start=starts, deterministic=True)
    np.testing.assert_array_equal(actions, again)
    np.testing.assert_allclose(state[0], again_state[0])
    env.close()


def test_skip_connection_is_read_by_recurrent_ppo_alone(tmp_path):
    run_dir = agents.train(
        env="CartPole-P-v1",
        algo="ppo",
        skip_connection=True,
        runs_root=tmp_path,
        **TINY_TRAIN,
    )
    assert run_dir.is_dir()
    assert "skip_connection" not in make_config(algo="ppo").read_by_algo()
