"""Fast recurrent training (issue 5): exactness against sb3-contrib, sequences, save/load, seeds.

Timings live in benchmarks/throughput.py, not here.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.buffers import RecurrentRolloutBuffer
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from agents.recurrent.buffers import pack_minibatches, sequence_starts
from agents.recurrent.policies import FastRecurrentPolicy
from agents.recurrent.ppo import RecurrentPPO

th.set_num_threads(1)

N_ENVS, N_STEPS, HIDDEN = 3, 24, 8


def _filled_stock_buffer(
    policy: RecurrentActorCriticPolicy, rng: np.random.Generator
) -> RecurrentRolloutBuffer:
    """A stock buffer of random steps: episode starts mid-buffer in several envs, random states."""
    lstm = policy.lstm_actor
    state_shape = (N_STEPS, lstm.num_layers, N_ENVS, lstm.hidden_size)
    buffer = RecurrentRolloutBuffer(
        N_STEPS, policy.observation_space, policy.action_space, state_shape, "cpu", n_envs=N_ENVS
    )
    for step in range(N_STEPS):
        starts = (rng.random(N_ENVS) < 0.2) | (step == 0)
        states = [th.randn(lstm.num_layers, N_ENVS, lstm.hidden_size) for _ in range(4)]
        actions = np.stack([policy.action_space.sample() for _ in range(N_ENVS)])
        buffer.add(
            rng.standard_normal((N_ENVS, *policy.observation_space.shape)).astype(np.float32),
            actions.reshape(N_ENVS, -1),
            rng.standard_normal(N_ENVS),
            starts.astype(np.float32),
            th.randn(N_ENVS, 1),
            th.randn(N_ENVS),
            lstm_states=RNNStates(tuple(states[:2]), tuple(states[2:])),
        )
    buffer.compute_returns_and_advantage(last_values=th.zeros(N_ENVS, 1), dones=np.zeros(N_ENVS))
    return buffer


def _outputs_and_grads(policy, sample, discrete: bool) -> tuple[list[th.Tensor], dict]:
    actions = sample.actions.long().flatten() if discrete else sample.actions
    policy.zero_grad()
    values, log_prob, entropy = policy.evaluate_actions(
        sample.observations, actions, sample.lstm_states, sample.episode_starts
    )
    mask = sample.mask
    # A loss that reaches every parameter through values, log-probs and entropy.
    loss = (values.flatten() * mask).sum() + (log_prob * mask).sum() + (entropy * mask).sum()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}
    return [values.flatten() * mask, log_prob * mask, entropy * mask], grads


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

    buffer = _filled_stock_buffer(stock, np.random.default_rng(1))
    assert buffer.episode_starts[1:].any(), "the test needs episode starts mid-buffer"
    np.random.seed(2)
    n_minibatches = 0
    for batch_size in (17, None):  # minibatches cut mid-episode, and the whole buffer at once
        for sample in buffer.get(batch_size):
            stock_out, stock_grads = _outputs_and_grads(stock, sample, discrete)
            our_out, our_grads = _outputs_and_grads(ours, sample, discrete)
            for expected, actual in zip(stock_out, our_out, strict=True):
                th.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
            assert stock_grads.keys() == our_grads.keys()
            for name, grad in stock_grads.items():
                th.testing.assert_close(our_grads[name], grad, atol=1e-5, rtol=1e-5, msg=name)
            n_minibatches += 1
    assert n_minibatches == 5 + 1


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stepping_one_step_at_a_time_equals_one_call_over_the_sequence(cell: str) -> None:
    """Rollouts step with the cell functions, training runs nn.LSTM/nn.GRU: same outputs."""
    policy = FastRecurrentPolicy(
        spaces.Box(-1, 1, (3,)), spaces.Discrete(2), lambda _: 1e-3,
        lstm_hidden_size=HIDDEN, n_lstm_layers=2, recurrent_cell=cell,
    )  # fmt: skip
    n_envs, n_steps = 4, 6
    features = th.randn(n_envs, n_steps, 3)
    episode_starts = th.zeros(n_envs, n_steps)
    episode_starts[:, 0] = th.tensor([1.0, 0.0, 1.0, 0.0])
    episode_starts[1, 3] = 1.0  # a reset mid-sequence: the time axis is split there
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


class SplitObservation(gym.ObservationWrapper):
    """CartPole with a Dict observation, to exercise the Dict buffer and MultiInput policy."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        half = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.observation_space = spaces.Dict(cart=half, pole=half)

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        return {"cart": observation[:2], "pole": observation[2:]}


def _rollout_only_model(
    bptt_length: int | None, cell: str, seed: int = 0, dict_obs: bool = False
) -> RecurrentPPO:
    """A model whose buffer holds one rollout collected by its current parameters."""
    wrapper = SplitObservation if dict_obs else None
    env = make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=seed, wrapper_class=wrapper)
    model = RecurrentPPO(
        "MultiInputLstmPolicy" if dict_obs else "MlpLstmPolicy",
        env,
        n_steps=N_STEPS * 2,
        batch_size=20,
        bptt_length=bptt_length,
        policy_kwargs=dict(lstm_hidden_size=HIDDEN, recurrent_cell=cell),
        seed=seed,
    )
    model.train = lambda: None  # type: ignore[method-assign]  # keep the rollout's parameters
    model.learn(N_STEPS * 2 * N_ENVS)
    return model


@pytest.mark.parametrize(
    ("bptt_length", "cell", "dict_obs"),
    [
        (None, "lstm", False),
        (1, "lstm", False),
        (5, "lstm", False),
        (None, "gru", False),
        (1, "gru", False),
        (5, "gru", False),
        (5, "lstm", True),
    ],
)
def test_truncated_sequences_reproduce_the_rollout(
    bptt_length: int | None, cell: str, dict_obs: bool
) -> None:
    """Sequences from stored states, reset at episode starts, give the rollout's outputs again.

    Holds only if the state bookkeeping is exact: a bptt cut must start from the stored state
    without reset and an episode start must reset; any slip changes values and log-probs.
    """
    model = _rollout_only_model(bptt_length, cell, dict_obs=dict_obs)
    buffer = model.rollout_buffer
    episode_starts = buffer.episode_starts.copy()
    assert episode_starts[1:].any(), "CartPole episodes should end inside the rollout"
    served = []
    for sample in buffer.get(batch_size=20):
        assert isinstance(sample.observations, dict) == dict_obs
        mask = sample.mask > 0
        n_seq = sample.lstm_states.pi[0].shape[1]
        length = mask.reshape(n_seq, -1).sum(dim=1)
        if bptt_length is not None:
            assert int(length.max()) <= bptt_length
        # Episode starts, if any, sit at the first step of a sequence.
        assert not sample.episode_starts.reshape(n_seq, -1)[:, 1:].any()
        with th.no_grad():
            values, log_prob, _ = model.policy.evaluate_actions(
                sample.observations,
                sample.actions.long().flatten(),
                sample.lstm_states,
                sample.episode_starts,
            )
        th.testing.assert_close(values.flatten()[mask], sample.old_values[mask], atol=1e-5, rtol=0)
        th.testing.assert_close(log_prob[mask], sample.old_log_prob[mask], atol=1e-5, rtol=0)
        served.append(int(mask.sum()))
    assert sum(served) == N_STEPS * 2 * N_ENVS, "every step is served exactly once per epoch"


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

    obs = env.reset()
    states = [None, None]
    episode_start = np.ones(2, dtype=bool)
    for _ in range(30):
        actions = []
        for i, agent in enumerate((model, loaded)):
            action, states[i] = agent.predict(obs, states[i], episode_start, deterministic=True)
            actions.append(action)
        np.testing.assert_array_equal(actions[0], actions[1])
        for a, b in zip(states[0], states[1], strict=True):
            assert a.shape == (2, 2, HIDDEN)  # (n_layers, n_envs, hidden), as sb3-contrib
            np.testing.assert_array_equal(a, b)
        if cell == "gru":
            assert not states[0][1].any(), "the GRU's placeholder cell state stays zero"
        obs, _, episode_start, _ = env.step(actions[0])


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


def test_gru_model_works_with_sb3_evaluate_policy() -> None:
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
    mean_return, _ = evaluate_policy(model, env, n_eval_episodes=4)
    assert mean_return > 0


def test_policy_save_keeps_recurrent_settings(tmp_path) -> None:
    policy = FastRecurrentPolicy(
        spaces.Box(-1, 1, (3,)),
        spaces.Discrete(2),
        lambda _: 1e-3,
        lstm_hidden_size=HIDDEN,
        n_lstm_layers=2,
        recurrent_cell="gru",
    )
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
    model = _rollout_only_model(bptt_length=5, cell=cell)
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
    starts = buffer._steps_t["episode_starts"].view(N_ENVS, N_STEPS * 2)
    first_cell = stored["cell_states_pi"].view(N_ENVS, N_STEPS * 2, -1)[:, 0]
    state = (first[:, 0][None].contiguous(), first_cell[None].contiguous())
    with th.no_grad():
        for t in range(N_STEPS * 2):
            th.testing.assert_close(hidden[:, t], state[0][0], atol=1e-5, rtol=0)
            _, state = model.policy._process_sequence(
                observations[:, t], state, starts[:, t], model.policy.lstm_actor
            )
    assert not th.allclose(hidden, first, atol=1e-3)
