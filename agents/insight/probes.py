"""Which units of the memory track which hidden variable of the task, and how well.

For each latent variable of a trace (``info["latent"]``) two readings:

- **units**: the state units (``h`` and ``c`` of every recurrent layer) whose activation
  correlates most with the variable over the trace: Pearson's r, or for a category with more
  than two values the correlation ratio eta (the share of a unit's spread that the category
  explains, square-rooted);
- **a linear probe**: a linear read-out of a layer's whole state fitted on two thirds of the
  episodes and scored on the others, never on the steps it was fitted to. Numbers are scored
  by R^2, categories (integers with at most ``MAX_CLASSES`` values) by accuracy, each beside
  the score of the best constant guess (chance).

The probe is ridge regression on the raw activations with penalty ``n * noise_std**2``: the
least-squares read-out that would be best if independent noise of ``noise_std`` were added
to every unit (Bishop 1995, "Training with noise is equivalent to Tikhonov
regularization"). In these noiseless tasks even an untrained network keeps a faint but
exact echo of its past inputs, which an unregularised probe reads perfectly; the noise level
makes the probe count only what the state holds with an amplitude a read-out could rely on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from agents.errors import UserError
from agents.insight.traces import Trace, record_trace, recurrent_networks, untrained_copy
from agents.runs import Run

NOISE_STD = 0.1  # in units of activation; h lies in [-1, 1]
MAX_CLASSES = 3  # an integer latent with at most this many values is a category
HELD_OUT_EVERY = 3  # every third episode is held out for scoring
TOP_UNITS = 3


@dataclass
class UnitScore:
    quantity: str  # "actor/layer0/c"
    unit: int
    r: float  # Pearson's r, or eta for a category of more than two values


@dataclass
class Probe:
    latent: str
    kind: str  # "regression" or "classification"
    metric: str  # "R^2" or "accuracy"
    score: float  # held-out score of the best state below
    chance: float  # held-out score of the best constant (fit-set mean; most frequent class)
    observation_score: float  # held-out score of the same probe on the observation alone
    quantity: str  # the state the best probe reads
    scores: dict[str, float]  # held-out score per state
    units: list[UnitScore]  # the units that correlate most, strongest first
    measure: str  # "r" or "eta"
    fit_episodes: int
    test_episodes: int
    control_score: float = float("nan")  # the same probe on an untrained network

    def sentence(self) -> str:
        """E.g. 'actor cell (layer 0) unit 17 tracks steps_left, r = 0.97; probe R^2 = 0.95
        on 7 held-out episodes ...'."""
        best = self.units[0]
        controls = [f"observation alone {self.observation_score:.2f}", f"chance {self.chance:.2f}"]
        if not np.isnan(self.control_score):
            controls.insert(0, f"untrained network {self.control_score:.2f}")
        return (
            f"{describe(best.quantity)} unit {best.unit} tracks {self.latent}, "
            f"{self.measure} = {best.r:.2f}; probe {self.metric} = {self.score:.2f} on "
            f"{self.test_episodes} held-out episodes, reading {describe(self.quantity)} "
            f"({', '.join(controls)})"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def describe(quantity: str) -> str:
    """'actor/layer0/c' -> 'actor cell (layer 0)'."""
    network, layer, name = quantity.split("/")
    kind = {"h": "hidden", "c": "cell"}.get(name, name)
    return f"{network} {kind} (layer {layer.removeprefix('layer')})"


def state_quantities(trace: Trace) -> list[str]:
    """The states a probe reads: every recurrent layer's h and c, except a privileged critic's,
    which is given the hidden state as input (its probe would score what it reads, not what
    any memory kept)."""
    layers = trace.layers
    if trace.meta.get("privileged_critic"):
        layers = [layer for layer in layers if not layer.startswith("critic/")]
    return [
        f"{layer}/{name}"
        for layer in layers
        for name in ("h", "c")
        if f"{layer}/{name}" in trace.arrays
    ]


def probe_trace(
    trace: Trace,
    control: Trace | None = None,
    noise_std: float = NOISE_STD,
    top: int = TOP_UNITS,
    categorical: dict[str, bool] | None = None,
) -> list[Probe]:
    """One :class:`Probe` per latent variable of ``trace`` that varies.

    ``control`` is a trace of an untrained network of the same config (see
    ``agents.insight.traces.untrained_copy``); each probe is refitted on it and its score kept as
    ``control_score``, the part of the score that owes nothing to training. ``categorical``
    overrides, per latent name, whether it is a category (accuracy) or a number (R^2); by
    default integers with at most ``MAX_CLASSES`` values are categories.
    """
    _check_probeable(trace)
    categorical = dict(categorical or {})
    probes = []
    for name in trace.latent_names:
        values = trace[f"latent/{name}"]
        known = values[np.isfinite(values)]
        if np.unique(known).size < 2:
            continue  # a constant says nothing about the memory
        is_category = categorical.setdefault(name, _looks_categorical(known))
        probe = _probe_latent(trace, name, is_category, noise_std, top)
        if control is not None:
            probe.control_score = _control_score(control, name, is_category, noise_std)
        probes.append(probe)
    return probes


def probe_run(
    run: Run, trace: Trace, deterministic: bool = True, seed: int = 0, **options
) -> list[Probe]:
    """Probes of ``trace`` (a trace of ``run``) with, as the control, an untrained network of
    the same config traced from the same env seed for at least as many steps (its episodes
    may be shorter or longer than the trained agent's)."""
    if not recurrent_networks(run.model.policy):
        raise UserError(f"probes read a recurrent state; this model ({run.config.algo}) has none")
    control = record_trace(untrained_copy(run), None, deterministic, seed, min_steps=len(trace))
    return probe_trace(trace, control, **options)


def _check_probeable(trace: Trace) -> None:
    if not state_quantities(trace):
        raise UserError("the trace holds no recurrent state to probe (a memoryless model?)")
    episodes = np.unique(trace["episode"]).size
    if episodes < HELD_OUT_EVERY:
        raise UserError(
            f"probes need at least {HELD_OUT_EVERY} episodes in the trace, got {episodes}; "
            "record more with --trace-episodes"
        )


def _control_score(control: Trace, name: str, is_category: bool, noise_std: float) -> float:
    """The same probe on the untrained network; NaN where it cannot be fitted there (the
    untrained policy may never reach the states where the latent varies)."""
    values = control.arrays.get(f"latent/{name}")
    if values is None or np.unique(values[np.isfinite(values)]).size < 2:
        return float("nan")
    try:
        _check_probeable(control)
        return _probe_latent(control, name, is_category, noise_std, 1).score
    except UserError:
        return float("nan")


def _looks_categorical(values: np.ndarray) -> bool:
    return bool(np.all(values == np.round(values)) and np.unique(values).size <= MAX_CLASSES)


def _probe_latent(trace: Trace, name: str, is_category: bool, noise_std: float, top: int) -> Probe:
    y_all = trace[f"latent/{name}"]
    known = np.isfinite(y_all)
    y = y_all[known]
    test = (trace["episode"] % HELD_OUT_EVERY == HELD_OUT_EVERY - 1)[known]
    fit = ~test
    if fit.sum() == 0 or test.sum() == 0:
        raise UserError(f"latent {name!r} is known in too few episodes to fit and score a probe")
    multiclass = is_category and np.unique(y).size > 2
    read = _classify if is_category else _regress
    units = []
    scores = {}
    for quantity in state_quantities(trace):
        states = trace[quantity][known].astype(np.float64)
        strength = _eta(states, y) if multiclass else _pearson(states, y)
        units += [UnitScore(quantity, int(u), float(strength[u])) for u in range(states.shape[1])]
        scores[quantity] = read(states[fit], y[fit], states[test], y[test], noise_std)
    observation = trace["obs"][known].reshape(len(y), -1).astype(np.float64)
    observation_score = read(observation[fit], y[fit], observation[test], y[test], noise_std)
    units.sort(key=lambda unit: -abs(unit.r))
    best = max(scores, key=lambda q: -np.inf if np.isnan(scores[q]) else scores[q])
    if is_category:
        chance = _chance_accuracy(y[test])
    else:
        chance = _r2(y[test], np.full(test.sum(), y[fit].mean()))
    episodes = trace["episode"][known]
    return Probe(
        latent=name,
        kind="classification" if is_category else "regression",
        metric="accuracy" if is_category else "R^2",
        score=float(scores[best]),
        chance=float(chance),
        observation_score=float(observation_score),
        quantity=best,
        scores={q: float(s) for q, s in scores.items()},
        units=units[:top],
        measure="eta" if multiclass else "r",
        fit_episodes=int(np.unique(episodes[fit]).size),
        test_episodes=int(np.unique(episodes[test]).size),
    )


def _pearson(states: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of every column with ``y``; 0 for a unit that never changes."""
    x = states - states.mean(axis=0)
    t = y - y.mean()
    norms = np.sqrt((x**2).sum(axis=0) * (t**2).sum())
    return np.divide(x.T @ t, norms, out=np.zeros(x.shape[1]), where=norms > 1e-12)


def _eta(states: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Correlation ratio of every column with the category ``y``."""
    total = ((states - states.mean(axis=0)) ** 2).sum(axis=0)
    between = sum(
        (y == c).sum() * (states[y == c].mean(axis=0) - states.mean(axis=0)) ** 2
        for c in np.unique(y)
    )
    return np.sqrt(np.divide(between, total, out=np.zeros_like(total), where=total > 1e-12))


def ridge(x: np.ndarray, y: np.ndarray, noise_std: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights and intercept of the least-squares fit of ``y`` (n, k) on ``x`` (n, d) under
    input noise of ``noise_std``: ridge with penalty n * noise_std**2, intercept unpenalised."""
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ xc + len(x) * noise_std**2 * np.eye(x.shape[1])
    weights = np.linalg.lstsq(gram, xc.T @ yc, rcond=None)[0]
    return weights, y_mean - x_mean @ weights


def _regress(x_fit, y_fit, x_test, y_test, noise_std: float) -> float:
    weights, intercept = ridge(x_fit, y_fit[:, None], noise_std)
    return _r2(y_test, (x_test @ weights + intercept)[:, 0])


def _classify(x_fit, y_fit, x_test, y_test, noise_std: float) -> float:
    """Accuracy of the least-squares classifier: ridge onto one-hot codes, then argmax."""
    classes = np.unique(y_fit)
    weights, intercept = ridge(x_fit, (y_fit[:, None] == classes).astype(float), noise_std)
    predicted = classes[np.argmax(x_test @ weights + intercept, axis=1)]
    return float(np.mean(predicted == y_test))


def _r2(y: np.ndarray, predicted: np.ndarray) -> float:
    total = ((y - y.mean()) ** 2).sum()
    if total == 0:
        return float("nan")
    return float(1 - ((y - predicted) ** 2).sum() / total)


def _chance_accuracy(y: np.ndarray) -> float:
    """Always answering the held-out steps' most frequent class: a generous chance level."""
    _, counts = np.unique(y, return_counts=True)
    return float(counts.max() / len(y))


def format_probes(probes: list[Probe]) -> str:
    """A plain-text table, one line per latent, then per latent a sentence and the probe's
    score on each state."""
    if not probes:
        return "no latent variable to probe (the env gives no varying info['latent'])"
    header = f"{'latent':<14} {'probe':>16}  {'untrained':>9}  {'obs only':>8}  {'chance':>6}  "
    lines = [header + f"{'best unit':<31}probe reads"]
    for probe in probes:
        unit = probe.units[0]
        lines.append(
            f"{probe.latent:<14} {probe.metric:>8} = {probe.score:5.2f}  "
            f"{probe.control_score:9.2f}  {probe.observation_score:8.2f}  {probe.chance:6.2f}  "
            f"{unit.quantity + ' #' + str(unit.unit):<22} {probe.measure}={unit.r:+.2f}  "
            f"{probe.quantity}"
        )
    for probe in probes:
        by_state = ", ".join(f"{q} {score:.2f}" for q, score in probe.scores.items())
        lines += ["", probe.sentence(), f"  {probe.metric} by state: {by_state}"]
    return "\n".join(lines)
