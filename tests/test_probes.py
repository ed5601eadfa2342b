"""Probes: the units that track a latent variable, and a linear read-out scored on new episodes."""

from __future__ import annotations

import numpy as np
import pytest

import agents
from agents.insight.probes import format_probes, probe_trace
from agents.insight.traces import Trace, record_trace, untrained_copy

EPISODES, LENGTH, UNITS = 12, 20, 16


def synthetic_trace(latents: dict[str, np.ndarray], cell: np.ndarray) -> Trace:
    """A trace of EPISODES episodes of LENGTH steps with the given actor cell state."""
    steps = EPISODES * LENGTH
    t = np.tile(np.arange(LENGTH), EPISODES)
    arrays = {
        "obs": np.zeros((steps, 2), np.float32),
        "action": np.zeros(steps),
        "reward": np.zeros(steps),
        "done": t == LENGTH - 1,
        "episode": np.repeat(np.arange(EPISODES), LENGTH),
        "t": t,
        "actor/layer0/h": np.tanh(cell),
        "actor/layer0/c": cell,
        **{f"latent/{name}": values for name, values in latents.items()},
    }
    return Trace(arrays)


def test_probe_names_the_unit_that_carries_a_number():
    rng = np.random.default_rng(0)
    count = np.tile(np.arange(LENGTH), EPISODES).astype(float)  # steps since the start
    cell = rng.normal(0, 0.3, (len(count), UNITS))
    cell[:, 7] = 0.1 * count + rng.normal(0, 0.05, len(count))
    (probe,) = probe_trace(synthetic_trace({"count": count}, cell))
    assert probe.kind == "regression" and probe.metric == "R^2"
    assert (probe.units[0].quantity, probe.units[0].unit) == ("actor/layer0/c", 7)
    assert probe.units[0].r > 0.95 and probe.score > 0.9
    assert probe.chance < 0.05 and probe.observation_score < 0.05
    assert probe.fit_episodes == 8 and probe.test_episodes == 4
    assert "actor cell (layer 0) unit 7 tracks count" in probe.sentence()


def test_probe_is_scored_on_episodes_it_was_not_fitted_to():
    """Each episode has its own random state pattern and its own random value: a probe can
    memorise the fitted episodes, but nothing carries over to new ones."""
    rng = np.random.default_rng(1)
    patterns = rng.normal(0, 1, (EPISODES, 64))
    values = rng.normal(0, 1, EPISODES)
    cell = np.repeat(patterns, LENGTH, axis=0)
    (probe,) = probe_trace(synthetic_trace({"value": np.repeat(values, LENGTH)}, cell))
    assert probe.score < 0.3


def test_small_integer_latents_are_categories():
    rng = np.random.default_rng(2)
    slot = np.tile(np.arange(LENGTH) % 3, EPISODES).astype(float)
    flag = np.repeat(np.arange(EPISODES) % 2, LENGTH).astype(float)
    cell = rng.normal(0, 0.3, (len(slot), UNITS))
    cell[np.arange(len(slot)), 2 + slot.astype(int)] += 1  # a unit per category
    cell[:, 5] += flag
    constant = np.zeros(len(slot))
    probes = probe_trace(synthetic_trace({"slot": slot, "flag": flag, "same": constant}, cell))
    by_name = {probe.latent: probe for probe in probes}
    assert set(by_name) == {"slot", "flag"}  # a constant says nothing and is skipped
    assert by_name["slot"].metric == "accuracy" and by_name["slot"].measure == "eta"
    assert by_name["flag"].metric == "accuracy" and by_name["flag"].measure == "r"
    assert by_name["slot"].units[0].unit in (2, 3, 4) and by_name["flag"].units[0].unit == 5
    assert by_name["slot"].score > 0.9 and by_name["flag"].score > 0.9
    assert "slot" in format_probes(probes)
    forced = probe_trace(synthetic_trace({"slot": slot}, cell), categorical={"slot": False})
    assert forced[0].metric == "R^2"


def test_a_privileged_critics_state_is_not_probed():
    """A critic that reads the hidden state holds it as input; only memory counts."""
    rng = np.random.default_rng(3)
    value = np.repeat(rng.normal(0, 1, EPISODES), LENGTH)
    trace = synthetic_trace({"value": value}, rng.normal(0, 0.3, (len(value), UNITS)))
    critic = np.tile(value[:, None], (1, UNITS))
    trace.arrays.update({"critic/layer0/h": np.tanh(critic), "critic/layer0/c": critic})
    (probe,) = probe_trace(trace)
    assert probe.quantity.startswith("critic/") and probe.score > 0.9
    trace.meta["privileged_critic"] = True
    (probe,) = probe_trace(trace)
    assert set(probe.scores) == {"actor/layer0/h", "actor/layer0/c"} and probe.score < 0.3


def test_probes_need_state_and_episodes():
    cell = np.zeros((EPISODES * LENGTH, UNITS))
    trace = synthetic_trace({"x": np.arange(len(cell), dtype=float)}, cell)
    short = Trace({k: v[: 2 * LENGTH] for k, v in trace.arrays.items()})
    with pytest.raises(agents.UserError, match="at least 3 episodes"):
        probe_trace(short)
    memoryless = Trace({k: v for k, v in trace.arrays.items() if not k.startswith("actor")})
    with pytest.raises(agents.UserError, match="no recurrent state"):
        probe_trace(memoryless)


def test_probe_finds_the_cue_in_a_trained_memory_but_not_in_an_untrained_one(memory_run):
    """MemoryStates-v0 shows the cue on the first step only; the trained agent answers it after
    up to 10 distractors. A probe on its state reads the cue on held-out episodes, also on the
    steps four or more after the cue, where only memory can know it. The same network
    untrained keeps a fading echo of its inputs for two or three steps (a random LSTM's forget
    gates sit near 1/2), so on those late steps its probe does no better than chance."""
    run = agents.load(memory_run)
    trained = record_trace(run, n_episodes=60, seed=5)
    untrained = record_trace(untrained_copy(run), n_episodes=60, seed=5)
    (everywhere,) = probe_trace(trained)
    assert everywhere.latent == "cue" and everywhere.metric == "accuracy"
    assert everywhere.score >= 0.95 and abs(everywhere.units[0].r) > 0.8

    (late,) = probe_trace(trained.select(trained["t"] >= 4))
    (late_untrained,) = probe_trace(untrained.select(untrained["t"] >= 4))
    assert late.score >= 0.95
    assert late_untrained.score <= late_untrained.chance + 0.1
