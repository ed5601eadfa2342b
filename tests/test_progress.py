"""What a run shows while it trains: a bar that ends at its total, or lines without a terminal."""

import io
import re

import agents
from agents.algos import build_model
from agents.config import make_config
from agents.environments import make_vec
from agents.progress import ProgressBar, ProgressLines
from tests.conftest import TINY_TRAIN as TINY

# 2 envs x 32 steps: SB3 collects whole rollouts of 64 steps, so a budget of 100 runs 128.
ROLLOUT = dict(n_envs=2, n_steps=32, batch_size=32, n_epochs=1)


def _model():
    config = make_config(env="MemoryStates-v0", **ROLLOUT)
    return build_model(config, make_vec(config, config.n_envs, seed=0))


def test_progress_bar_total_is_the_steps_that_will_run():
    model = _model()
    bar = ProgressBar()
    model.learn(100, callback=bar)
    assert model.num_timesteps == 128
    assert bar.pbar.total == bar.pbar.n == 128  # SB3's own bar: 128 of a total of 100


def test_lines_give_steps_speed_and_recent_episodes():
    model = _model()
    out = io.StringIO()
    model.learn(256, callback=ProgressLines(every_s=0, stream=out))
    lines = out.getvalue().splitlines()
    assert [re.match(r"\s*([\d,]+)/256 steps", line)[1] for line in lines] == [
        "64",
        "128",
        "192",
        "256",
    ]
    assert all("steps/s" in line for line in lines)
    # MemoryStates episodes last 3 to 12 steps: the first rollout has finished some
    assert re.search(r"last \d+ episodes: return -?\d\.\d\d, success \d\.\d\d", lines[0])


def test_training_without_a_terminal_prints_lines_with_the_last_evaluation(tmp_path, capsys):
    """progress=True asks for the bar, but pytest's captured stdout is not a terminal (nor is
    a log file or a cluster job's output): lines instead, the first after one rollout."""
    tiny = {**TINY, "eval_freq": 128, "eval_episodes": 2, "progress": True}
    agents.train(env="MemoryStates-v0", run_dir=tmp_path / "run", **tiny)
    lines = capsys.readouterr().out.splitlines()
    assert re.match(r"\s*64/256 steps", lines[0]), lines
    assert re.match(r"\s*256/256 steps", lines[-1]), lines
    assert re.search(r"eval at 256: return -?\d\.\d\d, success \d\.\d\d", lines[-1]), lines
