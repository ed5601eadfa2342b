"""Fast recurrent training (issue 5): exactness against sb3-contrib, sequences, save/load, seeds.

Timings live in benchmarks/throughput.py, not here.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import sb3_contrib
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

from agents.recurrent.buffers import pack_minibatches, sequence_starts
from agents.recurrent.cells import make_recurrent_layer, step_cells
from agents.recurrent.policies import FastRecurrentPolicy
from agents.recurrent.ppo import RecurrentPPO
from agents.rollout import episodes
from tests.recurrent_helpers import (
    HIDDEN,
    N_ENVS,
    N_STEPS,
    act_side_by_side,
    assert_sequences_reproduce_the_rollout,
    filled_stock_buffer,
    outputs_and_grads,
    rollout_only_model,
    small_policy,
)

th.set_num_threads(1)


@pytest.mark.parametrize(
    ("action_space", "policy_kwargs"),
    [
        (spaces.Box(-1, 1, (2,)), dict(enable_critic_lstm=True)),
        (spaces.Box(-1, 1, (2,)), dict(enable_critic_lstm=False, shared_lstm=True)),
        (spaces.Discrete(3), dict(enable_critic_lstm=False, n_lstm_layers=2)),
    ],
    ids=["critic-lstm", "shared-lstm", "no-critic-lstm-2-layers"],
)
def test_matches_stock_sb3_contrib_on_the_same_minibatch(action_space, policy_kwargs) -> None:
    """No truncation: values, log-probs, entropy and gradients equal sb3-contrib's (1e-5)."""
    obs_space = spaces.Box(-5, 5, (4,))
    kwargs = dict(lstm_hidden_size=HIDDEN, **policy_kwargs)
    th.manual_seed(0)
    stock = RecurrentActorCriticPolicy(obs_space, action_space, lambda _: 1e-3, **kwargs)
    ours = FastRecurrentPolicy(obs_space, action_space, lambda _: 1e-3, **kwargs)
    ours.load_state_dict(stock.state_dict())
    discrete = isinstance(action_space, spaces.Discrete)

    buffer = filled_stock_buffer(stock, np.random.default_rng(1))
    assert buffer.episode_starts[1:].any(), "the test needs episode starts mid-buffer"
    np.random.seed(2)
    n_minibatches = 0
    for batch_size in (17, None):  # minibatches cut mid-episode, and the whole buffer at once
        for sample in buffer.get(batch_size):
            stock_out, stock_grads = outputs_and_grads(stock, sample, discrete)
            our_out, our_grads = outputs_and_grads(ours, sample, discrete)
            for expected, actual in zip(stock_out, our_out, strict=True):
                th.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
            assert stock_grads.keys() == our_grads.keys()
            for name, grad in stock_grads.items():
                th.testing.assert_close(our_grads[name], grad, atol=1e-5, rtol=1e-5, msg=name)
            n_minibatches += 1
    assert n_minibatches == 5 + 1


@pytest.mark.parametrize("resets", [True, False], ids=["with-resets", "without-resets"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stepping_one_step_at_a_time_equals_one_call_over_the_sequence(
    cell: str, resets: bool
) -> None:
    """Rollouts step with the cell functions, training runs nn.LSTM/nn.GRU: same outputs,
    with resets at sequence starts and mid-sequence, and on the path without any."""
    policy = FastRecurrentPolicy(
        spaces.Box(-1, 1, (3,)), spaces.Discrete(2), lambda _: 1e-3,
        lstm_hidden_size=HIDDEN, n_lstm_layers=2, recurrent_cell=cell,
    )  # fmt: skip
    n_envs, n_steps = 4, 6
    features = th.randn(n_envs, n_steps, 3)
    episode_starts = th.zeros(n_envs, n_steps)
    episode_starts[:, 0] = th.tensor([1.0, 0.0, 1.0, 0.0])
    episode_starts[1, 3] = 1.0  # a reset mid-sequence: the time axis is split there
    episode_starts *= resets
    states = tuple(th.randn(2, n_envs, HIDDEN) for _ in range(2))
    with th.no_grad():
        step_states, step_outputs = states, []
        for t in range(n_steps):
            output, step_states = policy._process_sequence(
                features[:, t], step_states, episode_starts[:, t], policy.lstm_actor
            )
            step_outputs.append(output)
    with th.enable_grad():
        output, final = policy._process_sequence(
            features.reshape(-1, 3), states, episode_starts.flatten(), policy.lstm_actor
        )
    th.testing.assert_close(th.stack(step_outputs, dim=1).reshape(-1, HIDDEN), output)
    for a, b in zip(step_states, final, strict=True):
        th.testing.assert_close(a, b)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cell_steps_equal_the_recurrent_layer(cell: str, bias: bool) -> None:
    """step_cells (collecting, predict, export) reads each layer's weights from the layer's
    own list: one step of two layers equals the layer's forward, with or without biases."""
    rnn = make_recurrent_layer(cell, 3, HIDDEN, 2, bias=bias)
    features = th.randn(5, 3)
    states = tuple(th.randn(2, 5, HIDDEN) for _ in range(2))
    with th.no_grad():
        output, (hidden, cell_state) = step_cells(features, states, rnn)
        expected, (expected_hidden, expected_cell) = rnn(features[None], states)
    th.testing.assert_close(output, expected[0])
    th.testing.assert_close(hidden, expected_hidden)
    if cell == "lstm":
        th.testing.assert_close(cell_state, expected_cell)


def test_sequences_cut_at_episode_starts_env_boundaries_and_bptt_length() -> None:
    # 2 envs x 10 steps, env-major; episode starts at env 0 step 4 and env 1 step 7.
    episode_starts = np.zeros(20)
    episode_starts[[0, 4, 10, 17]] = 1
    starts, lengths = sequence_starts(episode_starts, n_steps=10, bptt_length=3)
    assert starts.tolist() == [0, 3, 4, 7, 10, 13, 16, 17]
    assert lengths.tolist() == [3, 1, 3, 3, 3, 3, 1, 3]
    starts, lengths = sequence_starts(episode_starts, n_steps=10, bptt_length=None)
    assert starts.tolist() == [0, 4, 10, 17]
    assert lengths.tolist() == [4, 6, 7, 3]


def test_minibatches_hold_at_least_batch_size_steps_over_random_episode_lengths() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        lengths = rng.integers(1, 40, size=rng.integers(1, 60))
        batch_size = int(rng.integers(1, 200))
        groups = pack_minibatches(lengths, batch_size)
        served = np.concatenate(groups)
        assert served.tolist() == list(range(len(lengths))), "each sequence once, in order"
        sizes = [int(lengths[group].sum()) for group in groups]
        if lengths.sum() < batch_size:
            assert len(groups) == 1  # the whole rollout
        else:
            assert min(sizes) >= batch_size
        # a minibatch closes at batch_size steps; only the last takes the leftovers too
        assert max(sizes[:-1], default=0) <= batch_size - 1 + lengths.max()
        assert sizes[-1] <= 2 * (batch_size - 1) + lengths.max()


@pytest.mark.parametrize("bptt_length", [16, None])
def test_batch_size_at_most_bptt_length_trains_without_nan(bptt_length: int | None) -> None:
    """Sequences once joined the minibatch where their first step fell, which left
    minibatches of a single step (advantage std NaN) when batch_size <= bptt_length."""
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = RecurrentPPO(
        "MlpLstmPolicy",
        env,
        n_steps=64,
        batch_size=16,
        n_epochs=2,
        bptt_length=bptt_length,
        policy_kwargs=dict(lstm_hidden_size=HIDDEN),
        seed=0,
    )
    model.learn(256)
    sizes = [int(sample.mask.sum()) for sample in model.rollout_buffer.get(batch_size=16)]
    assert min(sizes) >= 16 and sum(sizes) == 128
    assert all(th.isfinite(p).all() for p in model.policy.parameters())


def test_feed_forward_critic_reads_its_features_unprojected_when_asked(tmp_path) -> None:
    """By default the feed-forward critic maps its features to lstm_hidden_size values first,
    as sb3-contrib's (models saved so still load); with project_critic_input=False its MLP
    reads them straight, as PPO's critic, and a saved model keeps that layout."""
    obs_space, action_space = spaces.Box(-1, 1, (3,)), spaces.Discrete(2)
    kwargs = dict(lstm_hidden_size=HIDDEN, enable_critic_lstm=False)
    projected = FastRecurrentPolicy(obs_space, action_space, lambda _: 1e-3, **kwargs)
    stock = RecurrentActorCriticPolicy(obs_space, action_space, lambda _: 1e-3, **kwargs)
    assert projected.state_dict().keys() == stock.state_dict().keys()
    assert projected.mlp_extractor.value_net[0].in_features == HIDDEN

    model = RecurrentPPO(
        "MlpLstmPolicy",
        make_vec_env("CartPole-v1", n_envs=2, seed=0),
        n_steps=16,
        batch_size=16,
        policy_kwargs=dict(kwargs, project_critic_input=False),
        seed=0,
    )
    policy = model.policy
    assert not any(name.startswith("critic.") for name in policy.state_dict())
    assert policy.mlp_extractor.value_net[0].in_features == 4  # CartPole's readings
    assert {id(p) for p in policy.mlp_extractor.value_net.parameters()} <= {
        id(p) for group in policy.optimizer.param_groups for p in group["params"]
    }
    model.learn(32)
    model.save(tmp_path / "model.zip")
    loaded = RecurrentPPO.load(tmp_path / "model.zip")
    assert loaded.policy.state_dict().keys() == policy.state_dict().keys()
    obs = th.as_tensor(model.env.reset())
    states = (th.zeros(1, 2, HIDDEN),) * 2
    for p in (policy, loaded.policy):
        th.testing.assert_close(
            p.predict_values(obs, states, th.ones(2)),
            policy.predict_values(obs, states, th.ones(2)),
        )


@pytest.mark.parametrize(
    ("env_id", "settings"),
    [
        ("CartPole-v1", dict(normalize_advantage=True)),
        ("CartPole-v1", dict(normalize_advantage=False, clip_range_vf=0.1)),
        ("Pendulum-v1", dict(target_kl=1e-4)),  # stops early within the first epoch
    ],
    ids=["normalized", "value-clipped", "early-stop"],
)
def test_train_updates_and_logs_as_sb3_contribs_train(env_id: str, settings: dict) -> None:
    """Our train() (means weighted by the mask) moves the weights and logs as sb3-contrib's
    (means over the steps the boolean mask selects), on minibatches that hold padding."""

    def trained(train) -> tuple[list[th.Tensor], dict[str, float]]:
        model = RecurrentPPO(
            "MlpLstmPolicy",
            make_vec_env(env_id, n_envs=2, seed=3),
            n_steps=48,
            batch_size=20,
            n_epochs=3,
            bptt_length=6,
            policy_kwargs=dict(lstm_hidden_size=HIDDEN),
            seed=3,
            **settings,
        )
        model.set_logger(configure(None, []))
        model.train = types.MethodType(train, model)  # type: ignore[method-assign]
        model.learn(192)  # two updates
        logs = {k: v for k, v in model.logger.name_to_value.items() if k.startswith("train/")}
        return [p.detach().clone() for p in model.policy.parameters()], logs

    ours, our_logs = trained(RecurrentPPO.train)
    stock, stock_logs = trained(sb3_contrib.RecurrentPPO.train)
    for a, b in zip(ours, stock, strict=True):
        th.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert our_logs.keys() == {*stock_logs, "train/grad_norm"}  # which stock does not log
    for key, value in stock_logs.items():
        assert our_logs[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_train_logs_the_gradient_norm_before_clipping() -> None:
    def grad_norm(max_grad_norm: float) -> float:
        model = RecurrentPPO(
            "MlpLstmPolicy",
            make_vec_env("CartPole-v1", n_envs=2, seed=3),
            n_steps=48,
            batch_size=20,
            n_epochs=1,
            max_grad_norm=max_grad_norm,
            policy_kwargs=dict(lstm_hidden_size=HIDDEN),
            seed=3,
        )
        model.set_logger(configure(None, []))
        model.learn(96)  # one update: the same rollout and first gradients under both clips
        return model.logger.name_to_value["train/grad_norm"]

    clipped, free = grad_norm(1e-6), grad_norm(1e6)
    assert clipped > 1e-3  # the norm before clipping, not the clipped 1e-6
    # one epoch: the first minibatch's gradient is the same under both clips, the later ones
    # follow weights that moved by different steps
    assert 0.2 < clipped / free < 5


@pytest.mark.parametrize(
    ("bptt_length", "cell", "observations"),
    [
        (None, "lstm", "flat"),
        (1, "lstm", "flat"),
        (5, "lstm", "flat"),
        (None, "gru", "flat"),
        (1, "gru", "flat"),
        (5, "gru", "flat"),
        (5, "lstm", "dict"),
        (5, "lstm", "feed-forward critic"),
        (5, "gru", "feed-forward critic"),
    ],
)
def test_truncated_sequences_reproduce_the_rollout(
    bptt_length: int | None, cell: str, observations: str
) -> None:
    """Sequences from stored states, reset at episode starts, give the rollout's outputs again
    (tests/recurrent_helpers.py says why that checks the state bookkeeping). Without a critic
    LSTM the buffer stores the actor's states only."""
    if observations == "feed-forward critic":
        model = rollout_only_model(
            bptt_length, cell, enable_critic_lstm=False, project_critic_input=False
        )
        assert model.rollout_buffer.critic_states is False
    else:
        model = rollout_only_model(bptt_length, cell, observations=observations)
    assert model.rollout_buffer.episode_starts[1:].any(), "episodes should end in the rollout"
    assert_sequences_reproduce_the_rollout(model)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_saved_model_reloads_with_identical_actions_and_state_shapes(cell: str, tmp_path) -> None:
    env = make_vec_env("CartPole-v1", n_envs=2, seed=3)
    model = RecurrentPPO(
        "MlpLstmPolicy",
        env,
        n_steps=16,
        batch_size=16,
        bptt_length=4,
        policy_kwargs=dict(lstm_hidden_size=HIDDEN, n_lstm_layers=2, recurrent_cell=cell),
        seed=3,
    )
    model.learn(64)
    model.save(tmp_path / "model.zip")
    loaded = RecurrentPPO.load(tmp_path / "model.zip")
    assert loaded.bptt_length == 4
    assert loaded.policy.recurrent_cell == cell

    for state, loaded_state in act_side_by_side(model, loaded, env, 30):
        for a, b in zip(state, loaded_state, strict=True):
            assert a.shape == (2, 2, HIDDEN)  # (n_layers, n_envs, hidden), as sb3-contrib
            np.testing.assert_array_equal(a, b)
        if cell == "gru":
            assert not state[1].any(), "the GRU's placeholder cell state stays zero"


def test_training_is_reproducible_under_a_seed() -> None:
    def trained_parameters() -> list[th.Tensor]:
        env = make_vec_env("CartPole-v1", n_envs=2, seed=5)
        model = RecurrentPPO(
            "MlpLstmPolicy",
            env,
            n_steps=32,
            batch_size=16,
            n_epochs=2,
            bptt_length=8,
            policy_kwargs=dict(lstm_hidden_size=HIDDEN),
            seed=5,
        )
        model.learn(128)
        return [p.detach().clone() for p in model.policy.parameters()]

    first, second = trained_parameters(), trained_parameters()
    for a, b in zip(first, second, strict=True):
        th.testing.assert_close(a, b, atol=0, rtol=0)


def test_gru_model_acts_in_sb3_evaluate_policy_as_in_our_rollout_loop() -> None:
    """SB3's evaluate_policy (used by EvalCallback) carries the GRU's (h, c) and resets it as
    agents/rollout.py does: the same episodes, step for step."""
    env = make_vec_env("CartPole-v1", n_envs=2, seed=7)
    model = RecurrentPPO(
        "MlpLstmPolicy",
        env,
        n_steps=16,
        batch_size=16,
        policy_kwargs=dict(lstm_hidden_size=HIDDEN, recurrent_cell="gru"),
        seed=7,
    )
    assert type(model.policy.lstm_actor).__name__ == "GRUWithCellPlaceholder"
    env.seed(7)
    returns, lengths = evaluate_policy(model, env, n_eval_episodes=6, return_episode_rewards=True)
    env.seed(7)
    ours = episodes(model, env, 6, deterministic=True)
    assert sorted(returns) == sorted(episode.total_return for episode in ours)
    assert sorted(lengths) == sorted(episode.length for episode in ours)


def test_policy_save_keeps_recurrent_settings(tmp_path) -> None:
    policy = small_policy(recurrent_cell="gru")
    policy.save(tmp_path / "policy.pt")
    loaded = FastRecurrentPolicy.load(tmp_path / "policy.pt")
    assert loaded.recurrent_cell == "gru"
    assert loaded.lstm_actor.num_layers == 2 and loaded.lstm_actor.hidden_size == HIDDEN


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(bptt_length=0), "bptt_length"),
        (dict(bptt_length=2.5), "bptt_length"),
        (dict(bptt_length=True), "bptt_length"),
        (dict(policy_kwargs=dict(recurrent_cell="rnn")), "recurrent_cell"),
    ],
)
def test_bad_settings_are_refused_with_the_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RecurrentPPO("MlpLstmPolicy", "CartPole-v1", **kwargs)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recomputed_start_states_replay_the_rollout(cell: str) -> None:
    """recompute_states replays each env from its first stored state: with the rollout's own
    weights it finds the stored states again; with new weights, sequences cut at bptt
    boundaries start from the states the new weights carry there."""
    model = rollout_only_model(bptt_length=5, cell=cell)
    buffer = model.rollout_buffer
    buffer.refresh_states_with = model.policy
    list(buffer.get(batch_size=20))  # the first epoch serves the stored states
    stored = {name: tensor.clone() for name, tensor in buffer._states_t.items()}
    assert stored["hidden_states_pi"].abs().sum() > 0
    list(buffer.get(batch_size=20))
    for name, tensor in buffer._states_t.items():
        th.testing.assert_close(tensor, stored[name], atol=1e-5, rtol=0)

    with th.no_grad():  # new weights, as after an epoch of updates
        for parameter in model.policy.lstm_actor.parameters():
            parameter.add_(0.3 * th.randn_like(parameter))
    list(buffer.get(batch_size=20))
    hidden = buffer._states_t["hidden_states_pi"].view(N_ENVS, N_STEPS * 2, -1)
    first = stored["hidden_states_pi"].view(N_ENVS, N_STEPS * 2, -1)
    th.testing.assert_close(hidden[:, 0], first[:, 0])  # each env's first state is kept
    # Replaying one env step by step with the new weights gives the refreshed states.
    observations = buffer._obs_t.view(N_ENVS, N_STEPS * 2, -1)
    starts = buffer._step_column("episode_starts").view(N_ENVS, N_STEPS * 2)
    first_cell = stored["cell_states_pi"].view(N_ENVS, N_STEPS * 2, -1)[:, 0]
    state = (first[:, 0][None].contiguous(), first_cell[None].contiguous())
    with th.no_grad():
        for t in range(N_STEPS * 2):
            th.testing.assert_close(hidden[:, t], state[0][0], atol=1e-5, rtol=0)
            _, state = model.policy._process_sequence(
                observations[:, t], state, starts[:, t], model.policy.lstm_actor
            )
    assert not th.allclose(hidden, first, atol=1e-3)


def test_memory_lr_scale_moves_the_actors_lstm_at_its_share_of_the_rate(tmp_path) -> None:
    """One Adam step from the same weights and rollout moves every weight by about the rate:
    with memory_lr_scale the actor's LSTM moves by that share of it, the rest as without."""

    def first_step(scale: float) -> tuple[RecurrentPPO, dict[str, th.Tensor]]:
        env = make_vec_env("CartPole-v1", n_envs=2, seed=11)
        model = RecurrentPPO(
            "MlpLstmPolicy",
            env,
            n_steps=32,
            batch_size=64,
            n_epochs=1,
            learning_rate=1e-3,
            policy_kwargs=dict(lstm_hidden_size=HIDDEN, memory_lr_scale=scale),
            seed=11,
        )
        before = {k: p.detach().clone() for k, p in model.policy.named_parameters()}
        model.learn(64)
        after = model.policy.named_parameters()
        return model, {k: (p.detach() - before[k]).abs().max() for k, p in after}

    _, unscaled = first_step(1.0)
    model, scaled = first_step(0.25)
    for name, step in scaled.items():
        share = 0.25 if name.startswith("lstm_actor.") else 1.0
        th.testing.assert_close(step, share * unscaled[name], rtol=0.05, atol=1e-7)
    assert any(name.startswith("lstm_actor.") for name in scaled)

    model.save(tmp_path / "model.zip")
    loaded = RecurrentPPO.load(tmp_path / "model.zip")
    loaded.set_logger(configure(None, []))
    loaded._update_learning_rate(loaded.policy.optimizer)
    rates = [group["lr"] for group in loaded.policy.optimizer.param_groups]
    assert rates == pytest.approx([1e-3, 0.25e-3])
