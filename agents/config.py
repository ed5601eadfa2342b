"""Training configuration: one typed dataclass, presets from YAML, overrides, validation.

Precedence, lowest first: the ``default`` block of presets.yaml < the block for the env id
(its sub-block for the run's algorithm last, e.g. ``recurrent_ppo:``) < a ``--config`` YAML
file < ``--set key=value`` pairs < explicit command-line flags.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from agents import schedules
from agents.errors import UserError
from agents.recurrent import RECURRENT_CELLS
from agents.recurrent.buffers import check_bptt_length

PRESETS_FILE = Path(__file__).with_name("presets.yaml")
ALGOS = ("recurrent_ppo", "ppo", "ppo_framestack")
VEC_ENVS = ("dummy", "subproc")
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved resolved as config.yaml in the run folder.

    Field defaults equal the ``default`` block of presets.yaml (a test holds them together), so
    ``TrainConfig(env=...)`` in library code starts where the CLI does.
    """

    env: str = "MemoryStates-v0"
    algo: str = "recurrent_ppo"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    n_timesteps: int = 100_000
    seed: int = 0
    n_envs: int = 8
    vec_env: str = "dummy"
    device: str = "cpu"
    torch_threads: int = 1
    normalize: bool = True  # running mean and std of real-valued observations (VecNormalize)
    normalize_reward: bool = True  # with normalize: rewards scaled too (off: the zoo's obs only)
    # periodic evaluation and checkpoints, in env steps summed over all envs (0 disables)
    eval_freq: int = 10_000
    eval_episodes: int = 20
    final_eval_episodes: int = 100
    checkpoint_freq: int = 0
    progress: bool = True
    # PPO; learning_rate, clip_range and ent_coef also take "lin_<start>" (linear to 0)
    n_steps: int = 128
    batch_size: int = 256
    n_epochs: int = 10
    learning_rate: float | str = 1e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float | str = 0.2
    ent_coef: float | str = 0.03
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None  # stop an update's epochs early past 1.5 x this KL
    # adapt the learning rate (from learning_rate) to updates of this KL; null: no adaptation
    desired_kl: float | None = None
    normalize_advantage: bool = False  # per minibatch; off, a solved task's noise stays small
    log_std_init: float = 0.0  # Gaussian policies: initial log standard deviation
    use_sde: bool = False  # Box actions: state-dependent exploration (gSDE) instead of noise
    sde_sample_freq: int = -1  # with use_sde: new exploration matrix every N steps (-1: rollout)
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    activation_fn: str = "tanh"
    ortho_init: bool = True
    # what the networks read besides the observation (agents/inputs.py)
    previous_observation: bool = False  # the last observation too (a reading's change)
    previous_action: bool = False  # the last action, appended to the observation
    previous_reward: bool = False  # the last reward, appended to the observation
    privileged_critic: bool = False  # recurrent_ppo: the critic also reads the hidden state
    # recurrent_ppo with privileged_critic: weight of a loss in which the actor's memory learns
    # to predict the hidden state (a concurrent state estimator); 0 leaves it out
    state_loss_coef: float = 0.0
    # recurrent_ppo only
    recurrent_cell: str = "lstm"
    forget_bias: float | None = None  # LSTM forget gates' initial bias; null: PyTorch's init
    skip_connection: bool = False  # the heads read the current features beside the memory
    lstm_hidden_size: int = 64
    n_lstm_layers: int = 1
    enable_critic_lstm: bool = True
    shared_lstm: bool = False
    bptt_length: int | None = None  # null: whole episode pieces of n_steps
    recompute_states: bool = False  # refresh stored sequence start states before each epoch
    # the actor's recurrent layer learns at this fraction of learning_rate (1: the same rate)
    memory_lr_scale: float = 1.0
    # ppo_framestack only
    frame_stack: int = 4

    def validate(self) -> TrainConfig:
        """Raise UserError naming the first bad value and what is allowed."""
        _check_choice("algo", self.algo, ALGOS)
        _check_choice("vec_env", self.vec_env, VEC_ENVS)
        _check_choice("recurrent_cell", self.recurrent_cell, RECURRENT_CELLS)
        _check_choice("activation_fn", self.activation_fn, tuple(ACTIVATIONS))
        for name in (
            "n_timesteps",
            "n_envs",
            "n_steps",
            "batch_size",
            "n_epochs",
            "eval_episodes",
            "final_eval_episodes",
            "lstm_hidden_size",
            "n_lstm_layers",
            "frame_stack",
            "torch_threads",
        ):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.seed < 0:
            raise UserError(f"seed must be >= 0 (Gymnasium seeds envs with it), got {self.seed}")
        for name in ("eval_freq", "checkpoint_freq"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0 (0 disables it), got {getattr(self, name)}")
        for name in ("learning_rate", "clip_range"):
            if schedules.start(getattr(self, name)) <= 0:
                raise UserError(f"{name} must be > 0, got {getattr(self, name)}")
        if schedules.start(self.ent_coef) < 0:
            raise UserError(f"ent_coef must be >= 0, got {self.ent_coef}")
        if self.target_kl is not None and self.target_kl <= 0:
            raise UserError(f"target_kl must be > 0 or null (no limit), got {self.target_kl}")
        if self.desired_kl is not None and self.desired_kl <= 0:
            raise UserError(f"desired_kl must be > 0 or null (fixed rate), got {self.desired_kl}")
        if self.desired_kl is not None and isinstance(self.learning_rate, str):
            raise UserError(
                f"desired_kl adapts the learning rate, which cannot also follow "
                f"{self.learning_rate}: give learning_rate its starting number, or set "
                "desired_kl null"
            )
        for name in ("gamma", "gae_lambda"):
            if not 0 <= getattr(self, name) <= 1:
                raise UserError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        rollout = self.n_steps * self.n_envs
        if self.batch_size > rollout:
            raise UserError(
                f"batch_size {self.batch_size} is larger than one rollout, n_steps * n_envs = "
                f"{self.n_steps} * {self.n_envs} = {rollout}; lower batch_size or raise n_steps"
            )
        if self.critic_is_privileged and self.shared_lstm:
            raise UserError(
                "privileged_critic needs a critic of its own: set shared_lstm false (or "
                "privileged_critic false)"
            )
        if self.memory_lr_scale <= 0:
            raise UserError(
                f"memory_lr_scale must be > 0 (1: the memory learns at learning_rate), got "
                f"{self.memory_lr_scale}"
            )
        if self.state_loss_coef < 0:
            raise UserError(f"state_loss_coef must be >= 0 (0: none), got {self.state_loss_coef}")
        if self.state_loss_coef > 0 and self.algo == "recurrent_ppo" and not self.privileged_critic:
            raise UserError(
                "state_loss_coef needs the env's hidden state to predict: set privileged_critic "
                "true (or state_loss_coef 0)"
            )
        if self.forget_bias is not None and self.recurrent_cell != "lstm":
            raise UserError(
                f"forget_bias sets an LSTM's forget gates; a {self.recurrent_cell} has none: "
                "leave it null or use recurrent_cell lstm"
            )
        try:
            check_bptt_length(self.bptt_length)
        except ValueError as error:
            raise UserError(str(error)) from None
        if any(not isinstance(units, int) or units <= 0 for units in self.net_arch):
            raise UserError(f"net_arch must be a list of positive layer sizes, got {self.net_arch}")
        return self

    @property
    def critic_is_privileged(self) -> bool:
        """privileged_critic as the run reads it: a recurrent_ppo key that the feed-forward
        baselines ignore (ALGO_ONLY_KEYS), so one preset serves all three algorithms."""
        return self.privileged_critic and self.algo == "recurrent_ppo"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def read_by_algo(self) -> dict[str, Any]:
        """The keys this run's algorithm reads (config.yaml keeps them all)."""
        return read_by_algo(self.to_dict())


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
# Evaluated once: the annotations are strings (postponed evaluation), costly to resolve per key.
FIELD_TYPES = typing.get_type_hints(TrainConfig)
# Keys that one algorithm reads and the others ignore (grouped so in TrainConfig).
ALGO_ONLY_KEYS: dict[str, tuple[str, ...]] = {
    "recurrent_ppo": (
        "privileged_critic",
        "state_loss_coef",
        "recurrent_cell",
        "forget_bias",
        "skip_connection",
        "lstm_hidden_size",
        "n_lstm_layers",
        "enable_critic_lstm",
        "shared_lstm",
        "bptt_length",
        "recompute_states",
        "memory_lr_scale",
    ),
    "ppo_framestack": ("frame_stack",),
}


def read_by_algo(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` (a config as a dict) without the keys its algorithm ignores."""
    ignored = {
        key for algo, keys in ALGO_ONLY_KEYS.items() if algo != settings.get("algo") for key in keys
    }
    return {key: value for key, value in settings.items() if key not in ignored}


# Keys that only an LSTM cell takes (validate refuses them for a GRU).
LSTM_ONLY_KEYS: tuple[str, ...] = ("forget_bias",)


# libyaml's parser where PyYAML was built with it: ~25x faster than the pure-Python one on
# presets.yaml, which every resolved config reads (benchmarks resolve hundreds).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_presets(path: Path = PRESETS_FILE) -> dict[str, dict[str, Any]]:
    with open(path) as file:
        return yaml.load(file, Loader=_SAFE_LOADER) or {}


def preset_for(
    env: str, algo: str = TrainConfig.algo, presets: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The ``default`` block updated with the env's own block (if any), each with its
    sub-block for ``algo`` applied: a block's keys serve every algorithm (a fair comparison runs
    them alike), and a sub-block holds what only one of them is tuned with (the recurrent
    agent's own settings, say, while the baselines keep their full-observation reference's)."""
    presets = load_presets() if presets is None else presets
    return {**for_algo(presets.get("default"), algo), **for_algo(presets.get(env), algo)}


def for_algo(block: dict[str, Any] | None, algo: str) -> dict[str, Any]:
    """A preset block's shared keys updated with its sub-block for ``algo``."""
    block = block or {}
    shared = {key: value for key, value in block.items() if key not in ALGOS}
    return {**shared, **(block.get(algo) or {})}


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"config file {path} does not exist; pass an existing YAML file to --config"
        )
    try:
        with open(path) as file:
            values = yaml.safe_load(file) or {}
    except yaml.YAMLError as error:
        reason = str(error).splitlines()[0]
        raise UserError(f"config file {path} is not valid YAML ({reason}); fix the file") from None
    if not isinstance(values, dict):
        raise UserError(f"config file {path} must hold a mapping of key: value, got {values!r}")
    return values


def parse_assignments(pairs: list[str], what: str = "--set") -> dict[str, Any]:
    """Parse ``key=value`` strings; values go through yaml.safe_load (never eval)."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{what} expects key=value, got {pair!r} (example: {what} gamma=0.98)")
        try:
            values[key.strip()] = yaml.safe_load(text) if text else None
        except yaml.YAMLError:
            values[key.strip()] = text
    return values


def make_config(
    env: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    env_preset: bool = True,
    validate: bool = True,
    **explicit: Any,
) -> TrainConfig:
    """Resolve a config by the precedence rule above; explicit values that are None are unset.

    ``env_preset=False`` starts from the ``default`` block alone, as an env without a block of
    its own does (how the defaults are judged on tasks they were not tuned for).
    ``validate=False`` leaves the checks of values against each other to the caller (a
    hyperparameter search checks each sampled combination).
    """
    layers = [read_config_file(config_file) if config_file else {}, overrides or {}]
    explicit = {key: value for key, value in explicit.items() if value is not None}
    if env is not None:
        explicit["env"] = env
    for layer in (*layers, explicit):
        _check_keys(layer)

    # the env id and the algorithm decide which preset applies, so find them first
    def chosen(key: str) -> Any:
        layer = next((layer for layer in (explicit, *reversed(layers)) if key in layer), None)
        return getattr(TrainConfig, key) if layer is None else layer[key]

    env_id, algo = chosen("env"), chosen("algo")
    values: dict[str, Any] = {"env": env_id}
    preset = (
        preset_for(env_id, algo) if env_preset else for_algo(load_presets().get("default"), algo)
    )
    for layer in (preset, *layers, explicit):
        values.update(layer)
    config = TrainConfig(**{key: coerce(key, value) for key, value in values.items()})
    return config.validate() if validate else config


# A saved config without one of these keys was written before the key existed, by a version
# that trained with this value; the field's default has changed since.
VALUES_BEFORE_THE_KEY = {"normalize_advantage": True}  # SB3's, our default until round9


def from_dict(values: dict[str, Any]) -> TrainConfig:
    """Rebuild a saved config (config.yaml of a run folder); keys added since it was written
    take the value its version trained with."""
    _check_keys(values)
    values = {**VALUES_BEFORE_THE_KEY, **values}
    return TrainConfig(**{key: coerce(key, value) for key, value in values.items()})


def _check_keys(values: dict[str, Any]) -> None:
    for key in values:
        if key not in FIELDS:
            close = difflib.get_close_matches(key, FIELDS, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UserError(
                f"unknown config key {key!r}{hint}; valid keys: {', '.join(sorted(FIELDS))}"
            )


def coerce(key: str, value: Any) -> Any:
    """Check a value against the field's type; accept 1e5 for an int and 1 for a float."""
    if key in schedules.SCHEDULED_KEYS:
        try:
            return schedules.parse(key, value)
        except ValueError as error:
            raise UserError(str(error)) from None
    expected = FIELD_TYPES[key]
    optional = typing.get_origin(expected) in (typing.Union, types.UnionType)
    if optional:
        if value is None:
            return None
        expected = next(arg for arg in typing.get_args(expected) if arg is not type(None))
    origin = typing.get_origin(expected) or expected
    if origin is bool and isinstance(value, bool):
        return value
    if origin is int and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):  # yaml reads 1e5 as a string
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if number.is_integer():
                    return int(number)
    if origin is float and not isinstance(value, bool):
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    if origin in (str, list, dict) and isinstance(value, origin):
        return value
    type_name = getattr(origin, "__name__", str(origin))
    raise UserError(f"config key {key!r} expects {type_name}, got {value!r}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
