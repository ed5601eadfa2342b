"""Shared fixtures. Tests run on one torch thread: the CI machine has two cores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("MUJOCO_GL", "egl")
torch.set_num_threads(1)

# The smallest budget that exercises every part of a run (eval, checkpoints, final eval).
TINY_RUN = [
    "--timesteps",
    "256",
    "--n-envs",
    "2",
    "--no-progress",
    "--eval-freq",
    "128",
    "--eval-episodes",
    "2",
    "--checkpoint-freq",
    "128",
    "--set",
    "n_steps=32",
    "batch_size=32",
    "n_epochs=1",
    "final_eval_episodes=4",
]

# The same for agents.train: a run folder in seconds, without periodic evaluation.
TINY_TRAIN = dict(
    n_timesteps=256,
    n_envs=2,
    n_steps=32,
    batch_size=32,
    n_epochs=1,
    eval_freq=0,
    final_eval_episodes=4,
    progress=False,
)


# A normalised recurrent run with lin_ schedules: six rollouts of 64 steps, an update after
# each, evaluations every 128 steps, checkpoints after the updates at 128 and 256.
SMALL_RUN = dict(
    env="CartPole-P-v1",
    n_timesteps=384,
    n_envs=2,
    n_steps=32,
    batch_size=32,
    n_epochs=2,
    learning_rate="lin_1e-3",
    clip_range="lin_0.2",
    ent_coef="lin_0.01",
    normalize=True,
    eval_freq=128,
    eval_episodes=2,
    checkpoint_freq=128,
    final_eval_episodes=2,
    progress=False,
)


def run_script(script: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run train.py / evaluate.py as a user would, capturing its output."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=cwd or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="session")
def memory_run(tmp_path_factory) -> Path:
    """A recurrent agent trained on MemoryStates-v0 with its preset; shared by the tests that
    need an agent that has learned to use its memory."""
    import agents

    return agents.train(
        env="MemoryStates-v0", progress=False, run_dir=tmp_path_factory.mktemp("runs") / "memory"
    )


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> Path:
    """A finished SMALL_RUN, for tests that resume, damage or reload a run folder: copy it
    before changing anything."""
    import agents

    return agents.train(run_dir=tmp_path_factory.mktemp("runs") / "small", **SMALL_RUN)
