"""Config resolution: preset < --config < --set < explicit flags, and clear errors."""

from itertools import chain

import pytest
import yaml

from agents.config import (
    ALGO_ONLY_KEYS,
    FIELDS,
    coerce,
    make_config,
    parse_assignments,
    preset_for,
)
from agents.errors import UserError


def test_precedence_preset_file_set_flag(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump({"gamma": 0.9, "n_steps": 64, "ent_coef": 0.02}))
    config = make_config(
        env="MemoryStates-v0",
        config_file=config_file,
        overrides={"n_steps": 32, "ent_coef": 0.03},
        ent_coef=0.04,
    )
    preset = preset_for("MemoryStates-v0")
    assert config.gamma == 0.9  # file beats preset
    assert config.n_steps == 32  # --set beats file
    assert config.ent_coef == 0.04  # explicit flag beats --set
    assert config.n_envs == preset["n_envs"]  # untouched keys come from the preset


def test_env_block_of_preset_applies_to_its_env():
    default = preset_for("some-unknown-env")
    memory = preset_for("MemoryStates-v0")
    assert memory != default
    assert make_config(env="MemoryStates-v0").n_timesteps == memory["n_timesteps"]


def test_set_values_are_yaml_never_eval():
    values = parse_assignments(
        ["net_arch=[32, 32]", "gamma=0.98", "normalize=true", "env=__import__('os')"]
    )
    assert values == {
        "net_arch": [32, 32],
        "gamma": 0.98,
        "normalize": True,
        "env": "__import__('os')",
    }


def test_coerce_accepts_scientific_ints_and_int_floats():
    assert coerce("n_timesteps", "1e5") == 100_000
    assert coerce("n_timesteps", 2e4) == 20_000
    assert coerce("learning_rate", 1) == 1.0
    assert coerce("bptt_length", None) is None


def test_schedules_keep_the_zoo_spelling():
    assert coerce("learning_rate", "lin_1e-3") == "lin_0.001"
    assert coerce("ent_coef", "lin_0.01") == "lin_0.01"
    assert coerce("clip_range", "0.1") == 0.1  # a number written as a string


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lerning_rate": 1e-3}, "unknown config key 'lerning_rate' (did you mean learning_rate"),
        ({"n_timesteps": 0}, "n_timesteps must be a positive integer, got 0"),
        ({"n_timesteps": -5}, "n_timesteps must be a positive integer, got -5"),
        ({"batch_size": 4096, "n_steps": 16, "n_envs": 2}, "batch_size 4096 is larger than"),
        ({"algo": "dqn"}, "unknown algo 'dqn'; choose one of: recurrent_ppo, ppo, ppo_framestack"),
        ({"gamma": 1.5}, "gamma must lie in [0, 1], got 1.5"),
        ({"n_envs": "many"}, "config key 'n_envs' expects int, got 'many'"),
        ({"normalize": "yes please"}, "config key 'normalize' expects bool"),
        ({"recurrent_cell": "rnn"}, "unknown recurrent_cell 'rnn'"),
        ({"recurrent_cell": "gru", "forget_bias": 1.0}, "a gru has none"),
        ({"learning_rate": "lin_fast"}, "expects a number or lin_<number> (linear to 0)"),
        ({"clip_range": "cos_0.2"}, "config key 'clip_range' expects a number or lin_<number>"),
        ({"learning_rate": "lin_0"}, "learning_rate must be > 0, got lin_0"),
        ({"ent_coef": -0.01}, "ent_coef must be >= 0, got -0.01"),
        ({"target_kl": 0}, "target_kl must be > 0 or null (no limit), got 0.0"),
        ({"desired_kl": -0.01}, "desired_kl must be > 0 or null (fixed rate), got -0.01"),
        ({"desired_kl": 0.01, "learning_rate": "lin_1e-3"}, "cannot also follow lin_0.001"),
        ({"memory_lr_scale": 0}, "memory_lr_scale must be > 0 (1: the memory learns at"),
        ({"bptt_length": True}, "config key 'bptt_length' expects int, got True"),
    ],
)
def test_bad_values_name_the_problem(overrides, message):
    with pytest.raises(UserError) as error:
        make_config(env="MemoryStates-v0", overrides=overrides)
    assert message in str(error.value)


def test_missing_and_corrupt_config_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        make_config(config_file=tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("gamma: [0.9\n")
    with pytest.raises(UserError, match="not valid YAML"):
        make_config(config_file=broken)


def test_every_preset_key_is_a_config_field_and_valid():
    from agents.config import ALGOS, for_algo, load_presets

    for env, block in load_presets().items():
        for algo in ALGOS:
            # make_config validates; each block's values are the ones its env gets
            if env == "default":
                values = make_config(env_preset=False, algo=algo).to_dict()
            else:
                values = make_config(env=env, algo=algo).to_dict()
            for key, value in for_algo(block, algo).items():
                assert values[key] == coerce(key, value), (env, algo, key)


def test_an_algorithms_sub_block_applies_to_that_algorithm_only(tmp_path):
    presets = tmp_path / "presets.yaml"
    presets.write_text(
        "default: {n_envs: 8, gamma: 0.99, ppo: {gamma: 0.9}}\n"
        "Robot-v0: {n_envs: 4, recurrent_ppo: {n_envs: 16, net_arch: []}}\n"
    )
    from agents.config import load_presets

    loaded = load_presets(presets)
    assert preset_for("Robot-v0", "recurrent_ppo", loaded) == {
        "n_envs": 16,
        "gamma": 0.99,
        "net_arch": [],
    }
    assert preset_for("Robot-v0", "ppo", loaded) == {"n_envs": 4, "gamma": 0.9}
    assert preset_for("Other-v0", "ppo_framestack", loaded) == {"n_envs": 8, "gamma": 0.99}
    # the algorithm picks the sub-block wherever it is named (here in a --config file)
    real = load_presets()
    env = next(env for env, block in real.items() if "recurrent_ppo" in (block or {}))
    sub = real[env]["recurrent_ppo"]
    ppo = make_config(env=env, algo="ppo").to_dict()
    key = next(key for key in sub if ppo[key] != coerce(key, sub[key]))
    assert make_config(env=env).to_dict()[key] == coerce(key, sub[key])
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump({"algo": "ppo"}))
    assert make_config(env=env, config_file=config_file).to_dict()[key] == ppo[key]


def test_config_defaults_are_the_default_block():
    from agents.config import TrainConfig, load_presets

    # one set of defaults: library code's TrainConfig() starts where the CLI does
    fields = TrainConfig().to_dict()
    for key, value in load_presets()["default"].items():
        assert fields[key] == coerce(key, value), key


def test_state_dependent_exploration_needs_continuous_actions(tmp_path):
    import agents

    with pytest.raises(UserError, match="use_sde explores in continuous actions"):
        agents.train(env="TMaze-v0", use_sde=True, n_timesteps=64, runs_root=tmp_path)
    assert not any(tmp_path.iterdir()), "no half-made run folder"


def _forget_bias(lstm):
    """The forget gates' total bias (bias_ih + bias_hh), the same for every unit."""
    forget = slice(lstm.hidden_size, 2 * lstm.hidden_size)
    total = lstm.bias_ih_l0[forget] + lstm.bias_hh_l0[forget]
    assert total.min() == total.max()
    return total.detach()[0]


@pytest.mark.parametrize(
    ("env", "key", "value", "read"),
    [
        ("TMaze-v0", "normalize_advantage", False, lambda m: m.normalize_advantage),
        ("TMaze-v0", "target_kl", 0.02, lambda m: m.target_kl),
        ("TMaze-v0", "recompute_states", True, lambda m: m.recompute_states),
        ("TMaze-v0", "memory_lr_scale", 0.25, lambda m: m.policy.memory_lr_scale),
        ("TMaze-v0", "bptt_length", None, lambda m: m.bptt_length),
        ("TMaze-v0", "forget_bias", 1.0, lambda m: float(_forget_bias(m.policy.lstm_actor))),
        ("Pendulum-P-v1", "use_sde", True, lambda m: m.use_sde),
        ("Pendulum-P-v1", "log_std_init", -1.5, lambda m: float(m.policy.log_std.detach().mean())),
    ],
)
def test_config_keys_reach_the_model(env, key, value, read):
    from agents.algos import build_model
    from agents.environments import make_vec

    config = make_config(env=env, overrides={key: value, "use_sde": key == "use_sde"})
    vec = make_vec(config, 1, seed=0)
    assert read(build_model(config, vec)) == value
    vec.close()


@pytest.mark.parametrize(
    ("algo", "read", "ignored"),
    [
        ("recurrent_ppo", "lstm_hidden_size", "frame_stack"),
        ("ppo", "learning_rate", "lstm_hidden_size"),
        ("ppo_framestack", "frame_stack", "bptt_length"),
    ],
)
def test_a_config_names_the_keys_its_algo_reads(algo, read, ignored):
    assert set(chain.from_iterable(ALGO_ONLY_KEYS.values())) <= set(FIELDS)
    keys = make_config(algo=algo).read_by_algo()
    assert read in keys and ignored not in keys
