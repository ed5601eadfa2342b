"""Run folders: save/load round trips and evaluating a user's own env."""

import csv
import shutil
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.spaces import Box

import agents
from agents.algos import build_model
from agents.cli import evaluate_main
from agents.config import make_config
from agents.environments import make_vec, observation_normalization
from agents.errors import UserError
from agents.insight.report import write_report
from agents.runs import load, read_config
from tests.conftest import TINY_RUN, run_script
from tests.conftest import TINY_TRAIN as TINY


def _actions(model, observations, starts):
    state, actions = None, []
    for observation, start in zip(observations, starts, strict=True):
        action, state = model.predict(
            observation, state=state, episode_start=start, deterministic=True
        )
        actions.append(action)
    return np.array(actions)


@pytest.mark.parametrize("algo", ["recurrent_ppo", "ppo", "ppo_framestack"])
def test_save_load_round_trip_gives_identical_actions(algo, tmp_path):
    config = make_config(
        env="CartPole-P-v1",
        algo=algo,
        n_envs=2,
        n_steps=32,
        batch_size=32,
        n_epochs=1,
        normalize=True,
    )
    env = make_vec(config, config.n_envs, seed=0)
    model = build_model(config, env)
    model.learn(128)  # moves the weights and the normalisation statistics off their init
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(20, 2, *env.observation_space.shape)).astype(np.float32)
    starts = np.zeros((20, 2), dtype=bool)
    starts[[0, 7, 13], 0] = True  # episode starts in the middle, in one env only
    starts[0] = True
    before = _actions(model, observations, starts)
    model.save(tmp_path / "model.zip")
    reloaded = type(model).load(tmp_path / "model.zip")
    np.testing.assert_array_equal(_actions(reloaded, observations, starts), before)


def test_run_folder_round_trip_restores_normalisation(tmp_path):
    run_dir = agents.train(
        env="CartPole-P-v1",
        run_dir=tmp_path / "run",
        n_timesteps=256,
        n_envs=2,
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        normalize=True,
        progress=False,
        eval_freq=0,
        final_eval_episodes=2,
    )
    run = load(run_dir)
    env = run.make_env()
    assert env.training is False and env.norm_reward is False
    assert env.obs_rms.count > 256  # the statistics gathered in training, not fresh ones
    env.close()


@pytest.mark.parametrize("normalize_reward", [True, False])
def test_normalize_reward_chooses_whether_training_rewards_are_scaled(normalize_reward):
    config = make_config(env="CartPole-P-v1", normalize=True, normalize_reward=normalize_reward)
    env = make_vec(config, 2, seed=0)
    env.reset()
    for _ in range(5):
        _, rewards, _, _ = env.step(np.zeros(2, dtype=np.int64))
    assert env.norm_reward is normalize_reward
    # CartPole pays 1 a step: scaled by the running return's std, it is no longer 1
    assert np.allclose(rewards, 1.0) is not normalize_reward
    env.close()


def test_normalize_scales_only_the_readings_it_can():
    """Discrete observations (FrozenLake) are left as they are and the rewards still scaled;
    a Dict's real-valued entries are normalised, not its discrete ones or its images."""
    config = make_config(env="FrozenLake-v1", normalize=True)
    env = make_vec(config, 2, seed=0)
    observations = env.reset()
    assert env.norm_obs is False and env.norm_reward is True
    assert set(np.asarray(observations).ravel()) <= set(range(16))  # cell indices, unscaled
    env.close()

    image = Box(0, 255, (16, 16, 3), np.uint8)
    space = gym.spaces.Dict(
        {"position": Box(-1, 1, (3,)), "gear": gym.spaces.Discrete(4), "camera": image}
    )
    assert observation_normalization(space) == {"norm_obs": True, "norm_obs_keys": ["position"]}
    assert observation_normalization(image) == {"norm_obs": False}
    assert observation_normalization(Box(-1, 1, (3,))) == {"norm_obs": True}


USER_ENV = textwrap.dedent('''
    import gymnasium as gym
    import numpy as np

    class Echo(gym.Env):
        """Shows a bit, then asks for it back one step later."""
        observation_space = gym.spaces.Box(0, 1, (2,), np.float32)
        action_space = gym.spaces.Discrete(2)
        metadata = {"render_modes": []}

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.bit, self.t = int(self.np_random.integers(2)), 0
            return np.array([self.bit, 0], np.float32), {}

        def step(self, action):
            self.t += 1
            done = self.t == 2
            reward = float(done and action == self.bit)
            info = {"is_success": bool(reward)} if done else {}
            return np.array([0, 1], np.float32), reward, done, False, info
''')


def test_users_env_as_module_class_trains_and_evaluates(tmp_path):
    (tmp_path / "my_robot.py").write_text(USER_ENV)
    trained = run_script(
        "train.py", "--env", "my_robot:Echo", "--run-dir", "run", *TINY_RUN, cwd=tmp_path
    )
    assert trained.returncode == 0, trained.stderr
    assert "my_robot:Echo" in trained.stdout
    evaluated = run_script("evaluate.py", "run", "--episodes", "4", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "success rate" in evaluated.stdout


def test_users_env_with_subprocess_envs(tmp_path, monkeypatch):
    (tmp_path / "my_robot.py").write_text(USER_ENV)
    monkeypatch.chdir(tmp_path)
    run_dir = agents.train(
        env="my_robot:Echo",
        vec_env="subproc",
        n_envs=2,
        n_timesteps=128,
        n_steps=32,
        batch_size=32,
        n_epochs=1,
        progress=False,
        eval_freq=0,
        final_eval_episodes=2,
        run_dir=tmp_path / "run",
    )
    assert (run_dir / "model.zip").is_file()


BROKEN_ENVS = USER_ENV + textwrap.dedent("""
    class NoSpaces(gym.Env):
        pass

    class WrongShape(Echo):
        def reset(self, *, seed=None, options=None):
            return np.zeros(3, np.float32), {}

    class WrongKeys(Echo):
        observation_space = gym.spaces.Dict({"a": gym.spaces.Box(0, 1, (2,))})

        def reset(self, *, seed=None, options=None):
            return {"b": np.zeros(2, np.float32)}, {}
""")


@pytest.mark.parametrize(
    ("env_class", "fragment"),
    [
        ("NoSpaces", "has no observation_space (a gymnasium.spaces.Space); set"),
        ("WrongShape", "reset() returned an observation of shape (3,), its observation_space"),
        ("WrongKeys", "keys ['b'], its observation_space keys ['a']"),
    ],
)
def test_users_env_that_breaks_gymnasiums_contract_is_told_what_to_fix(
    env_class, fragment, tmp_path, monkeypatch
):
    (tmp_path / "broken_robot.py").write_text(BROKEN_ENVS)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(agents.UserError, match="broken_robot") as error:
        agents.train(env=f"broken_robot:{env_class}", runs_root=tmp_path / "runs", **TINY)
    assert fragment in str(error.value)
    assert not (tmp_path / "runs").exists(), "no half-made run folder"


# Takes render_mode (so make passes it) but keeps none: Gymnasium's Env.render_mode is None.
SILENT_ENV = USER_ENV + textwrap.dedent("""
    class Silent(Echo):
        def __init__(self, render_mode=None):
            pass
""")


@pytest.mark.parametrize(
    ("env_class", "reason"),
    [
        ("Echo", "its constructor takes no render_mode argument"),
        ("Silent", "its render_mode is None, not 'rgb_array'"),
    ],
)
def test_users_env_that_cannot_render_says_how_to_add_render_mode(
    env_class, reason, tmp_path, monkeypatch, capsys
):
    """The video and the report's video say that the env cannot render and how to make it,
    not that the user's --env-kwargs were wrong."""
    (tmp_path / "silent_robot.py").write_text(SILENT_ENV)
    monkeypatch.chdir(tmp_path)
    env = f"silent_robot:{env_class}"
    run_dir = agents.train(env=env, run_dir=tmp_path / "run", **TINY)
    code = evaluate_main([str(run_dir), "--episodes", "2", "--video", "echo.mp4"])
    error = capsys.readouterr().err
    assert code == 2 and len(error.strip().splitlines()) == 1, error
    name = env if env_class == "Echo" else env_class  # a constructed env has no id of its own
    assert f"env {name!r} cannot render ({reason})" in error and "render_mode=None" in error
    assert "--env-kwargs" not in error
    run = load(run_dir)
    page = write_report(run, agents.evaluate(run, n_episodes=2)).read_text()
    assert "No video: env " in page and "render_mode=None in __init__" in page


def test_run_folder_saved_by_an_earlier_layout_still_loads_and_acts():
    """model.zip pickles the policy class by module path; version 0.1.0 kept it in
    agents/policies.py (now agents/recurrent/policies.py)."""
    run = load(Path(__file__).parent / "data" / "run_saved_by_0.1.0")
    assert type(run.model.policy).__module__ == "agents.recurrent.policies"
    metrics = agents.evaluate(run, n_episodes=4)
    assert metrics["episodes"] == 4
    _, state = run.model.predict(np.zeros((1, 4), np.float32), episode_start=np.ones(1))
    assert state[0].shape == (1, 1, 8)  # the saved hidden size, not today's default


def test_a_model_file_copied_out_of_its_run_folder_still_knows_its_config(small_run, tmp_path):
    """model.zip carries the run's config: without config.yaml beside it the model still acts
    in its own env, with the run's wrappers and normalisation; on another env the mismatch
    names the env it was trained on."""
    for name in ("model.zip", "vecnormalize.pkl"):
        shutil.copy(small_run / name, tmp_path / name)
    run = load(tmp_path / "model.zip")
    assert run.config == read_config(small_run / "config.yaml")
    assert agents.evaluate(run, n_episodes=2)["episodes"] == 2
    elsewhere = load(tmp_path / "model.zip", env="Pendulum-P-v1")
    with pytest.raises(UserError, match="such as 'CartPole-P-v1', which it was trained on$"):
        elsewhere.make_env()


def test_a_model_file_saved_without_its_config_asks_for_the_env(tmp_path):
    """Models saved before the config travelled with them (or by SB3 itself)."""
    shutil.copy(Path(__file__).parent / "data" / "run_saved_by_0.1.0" / "model.zip", tmp_path)
    with pytest.raises(UserError, match="no config.yaml beside .*; pass --env"):
        load(tmp_path / "model.zip")
    assert load(tmp_path / "model.zip", env="CartPole-P-v1").config.env == "CartPole-P-v1"


def test_linear_schedules_anneal_learning_rate_clip_range_and_entropy_bonus(small_run):
    with open(small_run / "progress.csv") as file:
        rows = list(csv.DictReader(file))
    for column, start in (
        ("train/learning_rate", 1e-3),
        ("train/clip_range", 0.2),
        ("train/ent_coef", 0.01),
    ):
        values = np.array([float(row[column]) for row in rows if row.get(column)])
        # the k-th of 6 updates runs at (1 - k/6) of the start value (SB3 writes an update's
        # metrics when the next rollout ends, so the last may not reach the file)
        np.testing.assert_allclose(values[:5], start * (1 - np.arange(1, 6) / 6), atol=1e-9)
