"""Memory traces: the gates recomputed from the weights reproduce the module's own state."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from torch import nn

import agents
from agents.algos import build_model
from agents.environments import make_vec
from agents.insight.traces import load_trace, policy_features, record_trace, step_layers
from agents.recurrent.cells import GRUWithCellPlaceholder
from agents.runs import Run

TOLERANCE = 1e-5


def untrained_run(**fields) -> Run:
    """A freshly initialised model on MemoryStates-v0 (no training needed to test tracing)."""
    config = agents.make_config(
        env="MemoryStates-v0", n_envs=1, n_steps=16, batch_size=16, progress=False, **fields
    )
    env = make_vec(config, 1, 0)
    model = build_model(config, env)
    env.close()
    return Run(model, config, model_path=None, vecnormalize_path=None)


@pytest.mark.parametrize("module", [nn.LSTM, GRUWithCellPlaceholder])
def test_step_layers_reproduce_the_module_over_a_sequence(module):
    th.manual_seed(0)
    rnn = module(5, 7, num_layers=3)
    x = th.randn(12, 2, 5)
    h, c = th.zeros(3, 2, 7), th.zeros(3, 2, 7)
    with th.no_grad():
        for t in range(len(x)):
            _, (h_module, c_module) = rnn(x[t : t + 1], (h, c))
            layers = step_layers(rnn, x[t], h, c)
            h_gates = th.stack([layer["h"] for layer in layers])
            assert (h_gates - h_module).abs().max() < TOLERANCE
            if module is nn.LSTM:
                c_gates = th.stack([layer["c"] for layer in layers])
                assert (c_gates - c_module).abs().max() < TOLERANCE
            h, c = h_module, c_module


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_trace_state_equals_the_module_state_at_every_step(cell):
    """Replays each traced episode through the modules themselves, from a zero state, layer by
    layer; the traced h and c of the actor and the critic must match at every step."""
    run = untrained_run(recurrent_cell=cell, n_lstm_layers=2, lstm_hidden_size=16)
    trace = record_trace(run, n_episodes=4, seed=3)
    policy = run.model.policy
    assert set(trace.meta["networks"]) == {"actor", "critic"}
    assert trace.layers == ["actor/layer0", "actor/layer1", "critic/layer0", "critic/layer1"]
    expected_gates = {
        "lstm": ["input", "forget", "candidate", "output"],
        "gru": ["reset", "update", "candidate"],
    }[cell]
    assert trace.gates("actor/layer1") == [f"gate_{g}" for g in expected_gates]
    for network, rnn in (("actor", policy.lstm_actor), ("critic", policy.lstm_critic)):
        h = c = None
        for t in range(len(trace)):
            if trace["t"][t] == 0:
                h, c = th.zeros(2, 1, 16), th.zeros(2, 1, 16)
            with th.no_grad():
                x = policy_features(policy, trace["obs"][t][None], network)
                _, (h, c) = rnn(x[None], (h, c))
            for layer in range(2):
                traced = trace[f"{network}/layer{layer}/h"][t]
                assert np.abs(traced - h[layer, 0].numpy()).max() < TOLERANCE
                if cell == "lstm":
                    traced_c = trace[f"{network}/layer{layer}/c"][t]
                    assert np.abs(traced_c - c[layer, 0].numpy()).max() < TOLERANCE
        assert cell == "lstm" or f"{network}/layer0/c" not in trace.arrays


def test_trace_file_round_trip_and_alignment(tmp_path):
    """Per step: the observation acted on, with the latent of that moment; episodes numbered."""
    trace = record_trace(untrained_run(), n_episodes=5, seed=1)
    path = trace.save(tmp_path / "trace.npz")
    loaded = load_trace(path)
    assert loaded.meta["episodes"] == 5 and loaded.meta["networks"]["actor"]["cell"] == "lstm"
    assert sorted(loaded.arrays) == sorted(trace.arrays)
    for name in ("obs", "action", "reward", "done", "episode", "t", "latent/cue"):
        assert len(loaded[name]) == len(loaded)
    assert loaded["done"].sum() == 5 and loaded["done"][-1]
    starts = np.flatnonzero(loaded["t"] == 0)
    assert list(loaded["episode"][starts]) == [0, 1, 2, 3, 4]
    # MemoryStates shows the cue first: observation index 0 for "A" (cue 0), 1 for "B"
    first_symbols = loaded["obs"][starts].argmax(axis=1)
    assert list(first_symbols) == list(loaded["latent/cue"][starts].astype(int))
    for episode in range(5):
        assert np.unique(loaded["latent/cue"][loaded["episode"] == episode]).size == 1
    # the only reward is on the last step, where the answer is given
    assert np.all(loaded["reward"][~loaded["done"]] == 0)


def test_normalised_runs_also_record_the_raw_observation():
    trace = record_trace(untrained_run(normalize=True), n_episodes=2)
    raw = trace["obs_raw"]
    assert raw.shape == trace["obs"].shape
    assert np.all(raw.sum(axis=1) == 1) and set(np.unique(raw)) == {0.0, 1.0}  # one-hot


def test_memoryless_models_trace_without_layers():
    trace = record_trace(untrained_run(algo="ppo"), n_episodes=2)
    assert trace.layers == [] and trace.meta["networks"] == {}
    assert trace["done"].sum() == 2


def test_trace_rejects_nonpositive_episodes():
    with pytest.raises(agents.UserError, match="positive"):
        record_trace(untrained_run(), n_episodes=0)


def test_a_shared_lstm_is_traced_once_as_the_actor():
    trace = record_trace(untrained_run(shared_lstm=True), n_episodes=1)
    assert trace.meta["shared_lstm"] and list(trace.meta["networks"]) == ["actor"]


def test_by_default_a_trace_takes_whole_episodes_up_to_a_step_budget():
    trace = record_trace(untrained_run(), min_steps=50)
    assert len(trace) >= 50 and trace["done"][-1]
    steps_before_last_episode = np.flatnonzero(trace["done"])[-2] + 1
    assert steps_before_last_episode < 50 or trace.meta["episodes"] == 3  # stopped at once
    assert trace.meta["episodes"] >= 3
