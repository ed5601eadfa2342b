"""Recurrent PPO agents: train, load, evaluate and export them.

>>> import agents
>>> run_dir = agents.train(env="MemoryStates-v0", n_timesteps=50_000)   # doctest: +SKIP
>>> agents.evaluate(run_dir, n_episodes=100)["success_rate"]           # doctest: +SKIP
>>> agents.resume(run_dir, n_timesteps=100_000)  # train on, to a new total  # doctest: +SKIP
>>> agents.export(run_dir, "policy.onnx")   # the actor, for a robot     # doctest: +SKIP
"""

from agents.config import TrainConfig, make_config
from agents.deploy.files import export
from agents.errors import UserError
from agents.evaluation import evaluate
from agents.resume import resume
from agents.runs import Run, load
from agents.training import TrainingInterrupted, train

__all__ = [
    "Run",
    "TrainConfig",
    "TrainingInterrupted",
    "UserError",
    "evaluate",
    "export",
    "load",
    "make_config",
    "resume",
    "train",
]
