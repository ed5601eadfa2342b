"""Deploy a trained policy as one standalone file: ONNX or TorchScript, the actor alone, with
its recurrent state as explicit inputs and outputs, and a sidecar JSON that says how to run it.

>>> import agents
>>> agents.export("runs/Hopper-P-v5__recurrent_ppo__0__<time>", "hopper.onnx")  # doctest: +SKIP
PosixPath('hopper.onnx')

The file takes raw observations (the normalisation is folded in) and returns the
deterministic action; ``hopper.onnx.json`` beside it gives names, shapes, spaces, the
normalisation and the reset rule. docs/export.md runs one with numpy and onnxruntime only.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces

from agents.deploy.actor import BATCH, DeployableActor, deployable_actor
from agents.environments import read_normalization
from agents.errors import UserError
from agents.inputs import previous_step_layout
from agents.runs import Run, load

FORMATS = {".onnx": "onnx", ".pt": "torchscript"}
ONNX_OPSET = 18  # torch's exporter writes 18 natively; converting down to 17 breaks Split
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # export, torch's exporter, the check
INSTALL_EXTRA = 'pip install -e ".[export]"'
EXAMPLE_BATCH = 2  # a batch of 1 would let torch.export fix the batch axis to 1
TOLERANCE = 1e-5


def sidecar_path(path: str | Path) -> Path:
    """Where the JSON that describes an exported file lies: ``policy.onnx.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def check_export_target(path: str | Path) -> str:
    """The format of ``path`` by its suffix; UserError for another suffix or a missing package."""
    suffix = Path(path).suffix
    if suffix not in FORMATS:
        raise UserError(
            f"cannot export to {path}: the file must end in .onnx (ONNX) or .pt (TorchScript)"
        )
    if FORMATS[suffix] == "onnx":
        for package in ONNX_PACKAGES:
            try:
                importlib.import_module(package)
            except ImportError:
                raise UserError(
                    f"exporting to ONNX needs the optional package {package}: {INSTALL_EXTRA}"
                ) from None
    return FORMATS[suffix]


def export(run: Run | str | Path, path: str | Path) -> Path:
    """Write the actor of ``run`` (a run folder, a model .zip or a loaded ``Run``) to ``path``
    (.onnx or .pt) and its description to ``sidecar_path(path)``; returns ``path``.

    The file is checked against the model before it replaces anything at ``path``.
    """
    path = Path(path)
    file_format = check_export_target(path)
    run = run if isinstance(run, Run) else load(run)
    vecnormalize = read_normalization(run.vecnormalize_path) if run.config.normalize else None
    frame_stack = run.config.frame_stack if run.config.algo == "ppo_framestack" else None
    actor = deployable_actor(run.model, vecnormalize, frame_stack)
    write = _write_onnx if file_format == "onnx" else _write_torchscript
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _written_atomically(path) as temporary:
            run_file = write(actor, temporary)
            _check_file(actor, run_file)
        with _written_atomically(sidecar_path(path)) as temporary:
            description = describe(actor, run, path.name, file_format)
            temporary.write_text(json.dumps(description, indent=2) + "\n")
    except OSError as error:  # a folder in the way, no permission, a full disk
        raise UserError(f"cannot write {path} ({error.strerror}); choose another path") from None
    return path


@contextlib.contextmanager
def _written_atomically(path: Path) -> Iterator[Path]:
    """A temporary path renamed to ``path`` when the block succeeds (nothing half written)."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch's exporters warn about their own internals (skipped torchvision ops, and
    TorchScript's deprecation, which docs/export.md states), nothing a user can act on."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _example(actor: DeployableActor, batch: int = EXAMPLE_BATCH, seed: int = 0) -> dict:
    return actor.example_inputs(batch, np.random.default_rng(seed))


RunFile = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


def _write_onnx(actor: DeployableActor, path: Path) -> RunFile:
    import onnxruntime

    example = {name: th.as_tensor(value) for name, value in _example(actor).items()}
    batch = th.export.Dim(BATCH)
    dynamic = {t.name: {t.shape.index(BATCH): batch} for t in actor.inputs}
    with _quiet_exporter(), th.no_grad():
        th.onnx.export(
            actor.module,
            tuple(example.values()),
            str(path),
            input_names=[t.name for t in actor.inputs],
            output_names=[t.name for t in actor.outputs],
            opset_version=ONNX_OPSET,
            dynamo=True,
            dynamic_shapes=dynamic,
            external_data=False,
            verbose=False,
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda inputs: session.run(None, inputs)


def _write_torchscript(actor: DeployableActor, path: Path) -> RunFile:
    example = tuple(th.as_tensor(value) for value in _example(actor).values())
    with _quiet_exporter(), th.no_grad():
        th.jit.trace(actor.module, example).save(str(path))
        loaded = th.jit.load(str(path))

    def run_file(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        with th.no_grad():
            outputs = loaded(*(th.as_tensor(value) for value in inputs.values()))
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        return [output.numpy() for output in outputs]

    return run_file


def _check_file(actor: DeployableActor, run_file: RunFile) -> None:
    """The written file gives the torch actor's outputs on random inputs at another batch
    size than it was traced with; an exporter that got something wrong stops here."""
    inputs = _example(actor, batch=3, seed=1)
    with th.no_grad():
        expected = actor.module(*(th.as_tensor(value) for value in inputs.values()))
    expected = expected if isinstance(expected, tuple) else (expected,)
    for tensor, got, want in zip(actor.outputs, run_file(inputs), expected, strict=True):
        if not np.allclose(got, want.numpy(), rtol=0, atol=TOLERANCE):
            raise RuntimeError(f"the exported {tensor.name} differs from the model's")


def describe(actor: DeployableActor, run: Run, file_name: str, file_format: str) -> dict:
    """The sidecar JSON: everything a caller needs to run the file without this package."""
    state_names = ", ".join(name for name, _ in actor.state_pairs)
    return {
        "file": file_name,
        "format": file_format,
        **({"onnx_opset": ONNX_OPSET} if file_format == "onnx" else {}),
        "env_id": run.config.env,
        "algo": run.config.algo,
        "model": str(run.model_path),
        "inputs": [vars(tensor) for tensor in actor.inputs],
        "outputs": [vars(tensor) for tensor in actor.outputs],
        "state": [{"input": name, "output": output} for name, output in actor.state_pairs],
        "reset": (
            f"at an episode start feed zeros as {state_names}; at every other step feed back "
            "the previous step's " + ", ".join(out for _, out in actor.state_pairs)
            if actor.state_pairs
            else "none: the policy has no state"
        ),
        "recurrent": actor.recurrent,
        "frame_stack": actor.frame_stack,
        "observation_space": describe_space(actor.observation_space),
        "observation": _observation_layout(run, actor.observation_space),
        "normalization": actor.normalization,
        "action_space": describe_space(run.model.action_space),
        "action": (
            "argmax of the logits"
            if isinstance(run.model.action_space, spaces.Discrete)
            else "mean of the Gaussian, clipped to the action space's bounds"
        ),
    }


def _observation_layout(run: Run, space: spaces.Box) -> dict[str, Any]:
    """What goes into ``obs``: the env's raw observation, then what the caller appends (the
    run trained on a PreviousStep wrapper, which the file does not hold)."""
    config = run.config
    env_size, parts = previous_step_layout(
        run.model.action_space,
        int(space.shape[-1]),
        action=config.previous_action,
        reward=config.previous_reward,
        observation=config.previous_observation,
    )
    appended = [{"what": what, "size": size} for what, size in parts]
    layout = {"env_observation_size": env_size, "append": appended}
    if appended:
        at_start = []
        if config.previous_action or config.previous_reward:
            at_start.append("the previous action and reward are zeros")
        if config.previous_observation:
            at_start.append("the previous observation is the current one")
        layout["rule"] = (
            "obs = concatenate([env observation, "
            + ", ".join(part["what"] for part in appended)
            + "]), raw (before normalisation); at an episode start "
            + " and ".join(at_start)
        )
    return layout


def describe_space(space: spaces.Space) -> dict[str, Any]:
    """A space as JSON; an infinite bound is null (JSON has no infinity)."""
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    return {
        "type": "Box",
        "shape": list(space.shape),
        "dtype": str(space.dtype),
        "low": _finite_or_null(space.low),
        "high": _finite_or_null(space.high),
    }


def _finite_or_null(bounds: np.ndarray) -> list:
    values = bounds.astype(np.float64)
    return np.where(np.isfinite(values), values, None).tolist()
