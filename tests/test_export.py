"""Exported policies (ONNX run by onnxruntime, TorchScript) act as the model's own ``predict``:
step by step over whole episodes, state fed back and zeroed at episode starts, using only what
the sidecar JSON says. And the errors a user can make are one line."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import onnxruntime
import pytest
import torch

import agents
from agents.cli import evaluate_main
from agents.deploy.files import sidecar_path
from agents.environments import read_normalization
from agents.rollout import steps
from agents.runs import Run, load
from tests.conftest import REPO, TINY_TRAIN, run_script

FORMATS = (".onnx", ".pt")
# torch 2.13 deprecates TorchScript (docs/export.md says so); the .pt files still load
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

# Each cell type meets each action space once with and once without normalisation.
CASES = {
    "lstm-discrete-normalized": ("CartPole-P-v1", {"normalize": True}),
    "lstm-box": ("Pendulum-P-v1", {"normalize": False}),
    "gru-discrete-previous-action": (
        "CartPole-P-v1",
        {"recurrent_cell": "gru", "previous_action": True, "previous_reward": True},
    ),
    "gru-box-normalized": ("Pendulum-P-v1", {"recurrent_cell": "gru", "normalize": True}),
    "privileged-critic": ("CartPole-P-v1", {"privileged_critic": True, "normalize": True}),
    "skip-connection-privileged": (
        "Pendulum-P-v1",
        {"skip_connection": True, "privileged_critic": True, "enable_critic_lstm": False},
    ),
    "ppo": ("Pendulum-P-v1", {"algo": "ppo", "normalize": True}),
    "ppo-framestack": (
        "CartPole-P-v1",
        {"algo": "ppo_framestack", "normalize": True, "previous_action": True},
    ),
    "previous-observation": (
        "Pendulum-P-v1",
        {"previous_observation": True, "previous_reward": True, "normalize": True},
    ),
}
STATE_NAMES = {
    "lstm-discrete-normalized": ["h", "c"],
    "lstm-box": ["h", "c"],
    "gru-discrete-previous-action": ["h"],  # a GRU has no cell state: no c in the file
    "gru-box-normalized": ["h"],
    "privileged-critic": ["h", "c"],
    "skip-connection-privileged": ["h", "c"],
    "ppo": [],
    "ppo-framestack": ["frames"],
    "previous-observation": ["h", "c"],
}


TINY_MEMORY = 16  # LSTM/GRU units of the tiny runs, whatever the env's preset says


def _tiny_run(run_dir: Path, env: str, **config) -> Path:
    """A few hundred steps: enough to move the weights and normalisation statistics."""
    settings = {**TINY_TRAIN, "final_eval_episodes": 1, "lstm_hidden_size": TINY_MEMORY}
    return agents.train(env=env, run_dir=run_dir, **{**settings, **config})


@pytest.fixture(scope="module", params=list(CASES))
def exported(request, tmp_path_factory) -> tuple[str, Path, dict[str, Path]]:
    """A tiny run of one case, exported to both formats."""
    env, config = CASES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    run_dir = _tiny_run(root / "run", env, **config)
    files = {suffix: agents.export(run_dir, root / f"policy{suffix}") for suffix in FORMATS}
    return request.param, run_dir, files


class KeepObservations(gym.Wrapper):
    """Keeps each observation the agent acts on, as the exported file takes it: before
    normalisation and frame stacking, the actor's entry of a privileged critic's Dict."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.seen: list[np.ndarray] = []

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        self._keep(observation)
        return observation, info

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        if not (terminated or truncated):  # else the vec env resets, and that one is kept
            self._keep(observation)
        return observation, reward, terminated, truncated, info

    def _keep(self, observation) -> None:
        actor_part = observation["observation"] if isinstance(observation, dict) else observation
        self.seen.append(np.asarray(actor_part, dtype=np.float32))


def _open(path: Path):
    """A function from input arrays (by name) to the file's outputs (by name)."""
    if path.suffix == ".onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]
        return lambda inputs: dict(zip(names, session.run(None, inputs), strict=True))
    module = torch.jit.load(str(path))
    names = [tensor["name"] for tensor in json.loads(sidecar_path(path).read_text())["outputs"]]

    def run_file(inputs):
        with torch.no_grad():
            outputs = module(*(torch.as_tensor(value) for value in inputs.values()))
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        return dict(zip(names, (output.numpy() for output in outputs), strict=True))

    return run_file


def _compare_over_episodes(run: Run, path: Path, n_episodes: int = 2) -> list[np.ndarray]:
    """Step the file beside ``predict`` (agents/rollout.py) until ``n_episodes`` have ended;
    the file gets the raw observation and, from the sidecar alone, its state. Returns the
    file's actions."""
    sidecar = json.loads(sidecar_path(path).read_text())
    zeros = {  # one robot: batch 1
        tensor["name"]: np.zeros([1 if d == "batch" else d for d in tensor["shape"]], np.float32)
        for tensor in sidecar["inputs"]
    }
    run_file = _open(path)
    env = run.make_env(wrapper_class=KeepObservations)
    seen = env.get_attr("seen")[0]
    actions, ended, state = [], 0, {}
    try:
        for t, step in enumerate(steps(run.model, env, deterministic=True)):
            assert t < 1000, "episodes did not end"
            if step.episode_start[0]:
                state = {pair["input"]: zeros[pair["input"]] for pair in sidecar["state"]}
            outputs = run_file({"obs": seen[t][None], **state})
            if sidecar["action_space"]["type"] == "Discrete":
                assert outputs["action"].dtype == np.int64
                np.testing.assert_array_equal(outputs["action"], step.action)
            else:
                np.testing.assert_allclose(outputs["action"], step.action, rtol=0, atol=1e-5)
            if sidecar["recurrent"]:  # predict's state after acting
                np.testing.assert_allclose(outputs["h_out"], step.state[0], rtol=0, atol=1e-5)
                if "c_out" in outputs:
                    np.testing.assert_allclose(outputs["c_out"], step.state[1], rtol=0, atol=1e-5)
            if sidecar["frame_stack"]:  # what predict read: the normalised, stacked frames
                np.testing.assert_allclose(
                    outputs["frames_out"], step.observation, rtol=0, atol=1e-5
                )
            state = {pair["input"]: outputs[pair["output"]] for pair in sidecar["state"]}
            actions.append(outputs["action"][0])
            ended += int(step.done[0])
            if ended == n_episodes:
                return actions
    finally:
        env.close()
    raise AssertionError("unreachable")


@pytest.mark.parametrize("suffix", FORMATS)
def test_exported_file_acts_as_predict(exported, suffix):
    _, run_dir, files = exported
    actions = _compare_over_episodes(load(run_dir), files[suffix])
    assert len(actions) > 2


def test_file_inputs_and_outputs_are_the_sidecars(exported):
    case, _, files = exported
    session = onnxruntime.InferenceSession(str(files[".onnx"]), providers=["CPUExecutionProvider"])
    sidecar = json.loads(sidecar_path(files[".onnx"]).read_text())
    states = STATE_NAMES[case]
    assert [tensor.name for tensor in session.get_inputs()] == ["obs", *states]
    assert [tensor.name for tensor in session.get_outputs()] == [
        "action",
        *(f"{name}_out" for name in states),
    ]
    assert [tensor["name"] for tensor in sidecar["inputs"]] == ["obs", *states]
    assert [pair["input"] for pair in sidecar["state"]] == states
    for tensor in session.get_inputs():  # the batch axis is free: several robots at once
        assert tensor.shape[0 if tensor.name in ("obs", "frames") else 1] == "batch"
    assert sidecar["onnx_opset"] >= 17


def test_sidecar_describes_normalisation_and_what_to_append(tmp_path):
    env, config = CASES["gru-discrete-previous-action"]
    run_dir = _tiny_run(tmp_path / "run", env, **config, normalize=True)
    agents.export(run_dir, tmp_path / "policy.onnx")
    sidecar = json.loads((tmp_path / "policy.onnx.json").read_text())
    statistics = read_normalization(run_dir / "vecnormalize.pkl").obs_rms
    np.testing.assert_allclose(sidecar["normalization"]["mean"], statistics.mean)
    np.testing.assert_allclose(sidecar["normalization"]["var"], statistics.var)
    assert sidecar["observation"]["env_observation_size"] == 2  # CartPole-P: x, angle
    assert sidecar["observation"]["append"] == [
        {"what": "previous action, one-hot", "size": 2},
        {"what": "previous reward", "size": 1},
    ]
    assert sidecar["observation"]["rule"].endswith("the previous action and reward are zeros")
    assert sidecar["observation_space"]["shape"] == [5]
    assert sidecar["recurrent"] == {"cell": "gru", "layers": 1, "hidden_size": TINY_MEMORY}
    assert "zeros" in sidecar["reset"]


def test_sidecar_puts_the_previous_observation_first(tmp_path):
    env, config = CASES["previous-observation"]
    agents.export(_tiny_run(tmp_path / "run", env, **config), tmp_path / "policy.onnx")
    observation = json.loads((tmp_path / "policy.onnx.json").read_text())["observation"]
    assert observation["env_observation_size"] == 2  # Pendulum-P: cos, sin of the angle
    assert observation["append"] == [
        {"what": "previous env observation", "size": 2},
        {"what": "previous reward", "size": 1},
    ]
    assert observation["rule"].endswith(
        "the previous action and reward are zeros and the previous observation is the current one"
    )


@pytest.mark.parametrize("suffix", FORMATS)
def test_actions_are_clipped_to_the_action_space(tmp_path, suffix):
    run = load(_tiny_run(tmp_path / "run", "Pendulum-P-v1", normalize=True))
    with torch.no_grad():
        run.model.policy.action_net.bias += 10.0  # a mean far above the bound of 2
    actions = _compare_over_episodes(run, agents.export(run, tmp_path / f"policy{suffix}"), 1)
    np.testing.assert_array_equal(np.array(actions), 2.0)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    return _tiny_run(tmp_path_factory.mktemp("small") / "run", "CartPole-P-v1")


def _user_error(call) -> str:
    with pytest.raises(agents.UserError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message
    return message


def test_user_errors_are_one_line(small_run, tmp_path):
    assert ".onnx" in _user_error(lambda: agents.export(small_run, tmp_path / "policy.txt"))
    missing = tmp_path / "missing"
    assert "does not exist" in _user_error(lambda: agents.export(missing, tmp_path / "p.pt"))
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((small_run / "config.yaml").read_text())
    assert "no model.zip" in _user_error(lambda: agents.export(unfinished, tmp_path / "p.pt"))
    (tmp_path / "taken.pt").mkdir()  # a folder where the file should go
    assert "cannot write" in _user_error(lambda: agents.export(small_run, tmp_path / "taken.pt"))


@pytest.mark.parametrize("package", ["onnx", "onnxruntime"])
def test_missing_export_extra_names_it_and_keeps_the_old_file(
    small_run, tmp_path, monkeypatch, package
):
    target = tmp_path / "policy.onnx"
    target.write_text("an earlier export")
    monkeypatch.setitem(sys.modules, package, None)  # import fails as if not installed
    message = _user_error(lambda: agents.export(small_run, target))
    assert package in message and 'pip install -e ".[export]"' in message
    assert target.read_text() == "an earlier export"


def test_evaluate_export_writes_the_file_and_skips_the_episodes(small_run, tmp_path, capsys):
    assert evaluate_main([str(small_run), "--export", str(tmp_path / "p.pt")]) == 0
    out = capsys.readouterr().out
    assert "Exported" in out and "mean return" not in out
    assert (tmp_path / "p.pt").is_file() and (tmp_path / "p.pt.json").is_file()
    stats = tmp_path / "stats.json"
    command = [str(small_run), "--export", str(tmp_path / "q.pt"), "--episodes", "2"]
    assert evaluate_main([*command, "--json", str(stats)]) == 0
    assert json.loads(stats.read_text())["episodes"] == 2
    assert evaluate_main([str(small_run), "--export", str(tmp_path / "p.txt")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_docs_example_runs_an_exported_policy(small_run, tmp_path):
    """docs/export.md's standalone loop, as a user copies it, on a policy exported here."""
    code = re.search(r"```python\n(.*?)```", (REPO / "docs/export.md").read_text(), re.S)[1]
    (tmp_path / "run_policy.py").write_text(code)
    agents.export(small_run, tmp_path / "policy.onnx")
    shown = run_script(str(tmp_path / "run_policy.py"), "policy.onnx", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert re.findall(r"episode (\d): return [\d.]+", shown.stdout) == ["0", "1", "2"]
