"""Command lines of train.py and evaluate.py: parse, call the API, print, exit codes."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents import atomic
from agents.config import (
    ALGOS,
    VEC_ENVS,
    TrainConfig,
    make_config,
    parse_assignments,
    read_config_file,
)
from agents.devices import DEVICE_HELP
from agents.errors import UserError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C; SIGTERM gives 128 + 15


def train_main(argv: list[str] | None = None) -> int:
    args = _train_parser().parse_args(argv)
    _render_headless_by_default()
    return _guarded(lambda: _train(args))


def evaluate_main(argv: list[str] | None = None) -> int:
    args = _evaluate_parser().parse_args(argv)
    _render_headless_by_default()
    return _guarded(lambda: _evaluate(args))


def _render_headless_by_default() -> None:
    """MuJoCo picks its OpenGL backend when it is first imported: on a Linux machine without
    a display (a server, a cluster node) only EGL works, so choose it unless the user did.
    Gymnasium's classic-control envs draw with pygame, whose SDL would look for a display
    there and print an error line that is none; its dummy driver draws off-screen alike."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def _guarded(action: Callable[[], int]) -> int:
    """User errors become one line on stderr and exit code 2, never a traceback."""
    from agents.training import TrainingInterrupted

    try:
        return action()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except TrainingInterrupted as interrupted:
        print(f"\n{interrupted}", file=sys.stderr)
        return 128 + interrupted.signum
    except KeyboardInterrupt:  # outside training, where nothing is left to save
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader stopped early (| head): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # as Python's docs do
        return 1


def _train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train a recurrent PPO agent (or a memoryless baseline) and evaluate it.",
        epilog="Precedence: preset for the env and algo < --config < --set < explicit flags. "
        "Example: python train.py --env CartPole-P-v1 --algo ppo --set n_steps=256",
    )
    parser.add_argument(
        "--env",
        help="registered id, or module:Class / module:function "
        "for your own env (default: MemoryStates-v0)",
    )
    parser.add_argument(
        "--env-kwargs",
        nargs="+",
        default=None,
        metavar="KEY=VALUE",
        help="keyword arguments for the env constructor",
    )
    parser.add_argument("--algo", choices=ALGOS, help="default: recurrent_ppo")
    parser.add_argument("--timesteps", type=int, dest="n_timesteps", help="total env steps")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--n-envs", type=int, dest="n_envs")
    parser.add_argument("--vec", choices=VEC_ENVS, dest="vec_env", help="vectorised env kind")
    parser.add_argument(
        "--config", dest="config_file", metavar="FILE.yaml", help="YAML file of config keys"
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override config keys, e.g. --set gamma=0.98 net_arch=[128,128]",
    )
    parser.add_argument(
        "--run-dir", help="run folder to create (default: runs/<env>__<algo>__<seed>__<time>)"
    )
    parser.add_argument("--device", help=DEVICE_HELP)
    parser.add_argument(
        "--eval-freq",
        type=int,
        dest="eval_freq",
        help="evaluate every this many env steps (0: never)",
    )
    parser.add_argument("--eval-episodes", type=int, dest="eval_episodes")
    parser.add_argument(
        "--checkpoint-freq",
        type=int,
        dest="checkpoint_freq",
        help="save a checkpoint every this many env steps (0: never)",
    )
    parser.add_argument(
        "--no-progress", action="store_false", dest="progress", default=None, help="no progress bar"
    )
    parser.add_argument(
        "--list-envs",
        action="store_true",
        help="list our env ids, what each hides or its memory must carry, and exit",
    )
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a stopped or finished run to its n_timesteps (or a new --timesteps "
        "total), with its own config",
    )
    _add_tuning_arguments(parser)
    return parser


# the flags of a hyperparameter search, named as in rl-baselines3-zoo; None: tuning's default
TUNING_FLAGS = (
    "n_trials", "max_total_trials", "n_jobs", "storage", "study_name", "sampler", "pruner",
    "n_startup_trials", "n_evaluations", "trial_seeds", "search_space", "heartbeat_interval",
)  # fmt: skip


def _add_tuning_arguments(parser: argparse.ArgumentParser) -> None:
    tune = parser.add_argument_group("tune hyperparameters with Optuna (README: Tune)")
    tune.add_argument(
        "--optimize",
        "--optimize-hyperparameters",
        action="store_true",
        help="run a study: every trial is a run folder in runs/<env>__<algo>__optimize__<time>",
    )
    tune.add_argument(
        "--envs", nargs="+", metavar="ID", help="tune for the mean success rate over these envs"
    )
    tune.add_argument("--n-trials", type=int, help="trials this worker runs (default 100)")
    tune.add_argument("--max-total-trials", type=int, help="trials of the study, all workers")
    tune.add_argument("--n-jobs", type=int, help="trials at once in this process (default 1)")
    tune.add_argument("--storage", metavar="URL", help="Optuna storage (default: SQLite file)")
    tune.add_argument("--study-name", help="workers of one storage and name share a study")
    tune.add_argument("--sampler", help="tpe (default) or random")
    tune.add_argument("--pruner", help="median (default), halving or none")
    tune.add_argument("--n-startup-trials", type=int, help="random trials first (default 10)")
    tune.add_argument("--n-evaluations", type=int, help="evaluations a run (default 5)")
    tune.add_argument(
        "--trial-seeds",
        type=int,
        metavar="N",
        help="runs per env in a trial, seeds --seed to --seed + N - 1; scored by their mean, "
        "for tasks whose seeds differ more than their settings do (default 1)",
    )
    tune.add_argument(
        "--search-space", metavar="FILE.yaml", help="agents/tuning/search_spaces.yaml"
    )
    tune.add_argument(
        "--heartbeat-interval",
        type=int,
        metavar="S",
        help="seconds; a trial silent for 2 S is marked failed (default 60)",
    )
    tune.add_argument("--no-optim-plots", action="store_false", dest="plots", default=None)


def _train(args: argparse.Namespace) -> int:
    if args.list_envs:
        from agents.listing import env_listing

        print(env_listing())
        return 0
    if args.optimize or args.envs:
        return _optimize(args, _explicit_settings(args))
    from agents.runs import METRICS_FILE
    from agents.training import train

    command = shlex.join(["python", "train.py", *sys.argv[1:]])
    if args.resume:
        run_dir = _resume(args, command)
    else:
        run_dir = train(_train_config(args), run_dir=args.run_dir, command=command)
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    print(f"\nRun folder: {run_dir}")
    _print_metrics(metrics)
    repeat = shlex.join(
        [str(run_dir), "--episodes", str(metrics["episodes"]), "--seed", str(metrics["seed"])]
        + ["--n-envs", str(metrics["n_envs"])]
    )
    print(f"Repeat this evaluation: python evaluate.py {repeat}")
    print(f"Watch it: python evaluate.py {run_dir} --video {run_dir / 'video.mp4'}")
    _print_best(run_dir)
    return 0


def _print_best(run_dir: Path) -> None:
    """Where the best periodic evaluation's policy is, when training saved one."""
    from agents.callbacks import BEST_DIR, BEST_EVALUATION_FILE

    path = run_dir / BEST_DIR / BEST_EVALUATION_FILE
    if path.is_file():
        best = json.loads(path.read_text())
        print(
            f"Best periodic evaluation: return {best['mean_return']:.3f} at "
            f"{best['timesteps']:,} steps ({best['episodes']} episodes); its policy: "
            f"python evaluate.py {run_dir / BEST_DIR}"
        )


def _resume(args: argparse.Namespace, command: str) -> Path:
    from agents.resume import resume

    allowed = {"resume", "n_timesteps", "progress", "device", "help"}
    for action in _train_parser()._actions:
        if action.dest not in allowed and getattr(args, action.dest) != action.default:
            raise UserError(
                f"--resume continues a run with its own config; leave out "
                f"{action.option_strings[0]} (--timesteps, --device and --no-progress go "
                "with it)"
            )
    return resume(
        args.resume,
        n_timesteps=args.n_timesteps,
        command=command,
        progress=args.progress,
        device=args.device,
    )


def _explicit_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields given as flags of their own (None where not given)."""
    explicit = {
        name: getattr(args, name)
        for name in (
            "algo",
            "n_timesteps",
            "seed",
            "n_envs",
            "vec_env",
            "device",
            "eval_freq",
            "eval_episodes",
            "checkpoint_freq",
            "progress",
        )
    }
    if args.env_kwargs is not None:
        explicit["env_kwargs"] = parse_assignments(args.env_kwargs, "--env-kwargs")
    return explicit


def _train_config(args: argparse.Namespace) -> TrainConfig:
    return make_config(
        env=args.env,
        config_file=args.config_file,
        overrides=parse_assignments(args.overrides),
        **_explicit_settings(args),
    )


def _optimize(args: argparse.Namespace, explicit: dict[str, Any]) -> int:
    from agents.tuning.study import StudyOptions, optimize

    if not args.optimize:
        raise UserError("--envs names the envs of a study: add --optimize (or train one --env)")
    if args.env and args.envs:
        raise UserError("pass --env ID or --envs ID ID ..., not both")
    overrides = parse_assignments(args.overrides)
    envs = args.envs or [args.env]
    # several envs: each starts from the `default` block, which this study is to choose;
    # optimize() checks the configs with the values the search will sample
    configs = [
        make_config(
            env, args.config_file, overrides, env_preset=len(envs) == 1, validate=False, **explicit
        )
        for env in envs
    ]
    from_file = read_config_file(args.config_file) if args.config_file else {}
    fixed = {*from_file, *overrides, *(key for key, value in explicit.items() if value is not None)}
    # --seed seeds the trials' training, not the sampler: workers started with one command
    # line must not all sample the same hyperparameters
    flags = {name: getattr(args, name) for name in (*TUNING_FLAGS, "plots", "progress")}
    options = StudyOptions(**{name: value for name, value in flags.items() if value is not None})
    command = shlex.join(["python", "train.py", *sys.argv[1:]])
    result = optimize(configs, options, study_dir=args.run_dir, fixed_keys=fixed, command=command)
    states = ", ".join(f"{count} {state}" for state, count in result.states.items())
    print(f"\nStudy folder: {result.folder}")
    print(f"Study {result.study_name} in {result.storage}: {states}")
    if result.best_trial is None:
        print("No trial has completed yet, so there is no best.yaml.")
        return 0
    best = result.folder / "best.yaml"
    print(f"Best: trial {result.best_trial}, value {result.best_value:.4g} -> {best}")
    print(f"Train with it: python train.py --env {configs[0].env} --config {best}")
    return 0


def _evaluate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Evaluate a trained agent: statistics, and optionally a video, memory "
        "traces, probes of what the memory holds and an HTML report.",
        epilog="Output files (--json, --video, --trace, --export) replace any file of that "
        "name, and missing folders on their paths are created.",
    )
    parser.add_argument("path", metavar="RUN_DIR|MODEL.zip", help="run folder or model file")
    parser.add_argument("--episodes", type=int, help="episodes to evaluate (default: 100)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--deterministic", action="store_true", default=True, help="greedy actions (default)"
    )
    mode.add_argument(
        "--stochastic",
        action="store_false",
        dest="deterministic",
        help="sample actions from the policy",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-envs", type=int, default=1)
    parser.add_argument(
        "--env",
        help="evaluate on another env with the same spaces "
        "(e.g. a longer variant); required for a model file that neither sits in its run "
        "folder nor carries its config (saved by SB3 itself, or by an earlier version)",
    )
    parser.add_argument("--env-kwargs", nargs="+", default=None, metavar="KEY=VALUE")
    parser.add_argument("--json", metavar="PATH", help="also write the statistics here")
    parser.add_argument("--video", metavar="PATH", help="record a video (.mp4 or .gif)")
    parser.add_argument("--video-episodes", type=int, default=1)
    parser.add_argument("--device", default="cpu", help=DEVICE_HELP)
    parser.add_argument(
        "--export",
        metavar="PATH.onnx|PATH.pt",
        help="write the actor as an ONNX or TorchScript file with its state as inputs and "
        "outputs, and PATH.json beside it (docs/export.md); skips the evaluation unless "
        "--episodes or an output of it (--json, --video, --trace, --probe, --report) is given",
    )
    memory = parser.add_argument_group("look inside the memory (docs/memory.md)")
    memory.add_argument(
        "--trace",
        metavar="PATH.npz",
        help="save per-step observations, actions, rewards, latents, h, c and gates",
    )
    memory.add_argument(
        "--trace-episodes",
        type=int,
        metavar="K",
        help="episodes traced for --trace, --probe and --report (default: whole episodes "
        "until 1000 steps, at least 3)",
    )
    memory.add_argument(
        "--probe",
        action="store_true",
        help="print the units that track each latent variable and linear probe scores",
    )
    memory.add_argument(
        "--report",
        action="store_true",
        help="write report.html into the run folder: one file, figures and video inlined",
    )
    return parser


def _evaluate(args: argparse.Namespace) -> int:
    from agents.deploy.files import check_export_target, export, sidecar_path
    from agents.evaluation import evaluate
    from agents.insight.traces import check_trace_options, record_trace, recurrent_networks
    from agents.runs import load

    env_kwargs = parse_assignments(args.env_kwargs, "--env-kwargs") if args.env_kwargs else None
    _check_output_files(
        {"--json": args.json, "--video": args.video, "--trace": args.trace, "--export": args.export}
    )
    check_trace_options(args.trace, args.trace_episodes)
    if args.export:
        check_export_target(args.export)
    run = load(args.path, env=args.env, env_kwargs=env_kwargs, device=args.device)
    if args.probe and not recurrent_networks(run.model.policy):
        raise UserError(f"--probe reads a recurrent state; this model ({run.config.algo}) has none")
    if args.export:
        written = export(run, args.export)
        print(f"Exported: {written} (how to run it: {sidecar_path(written)})")
        evaluation_outputs = (args.json, args.video, args.trace, args.probe, args.report)
        if args.episodes is None and not any(evaluation_outputs):
            return 0
    metrics = evaluate(
        run,
        n_episodes=100 if args.episodes is None else args.episodes,
        deterministic=args.deterministic,
        seed=args.seed,
        n_envs=args.n_envs,
        video=args.video,
        video_episodes=args.video_episodes,
    )
    _print_metrics(metrics)
    if args.json:
        atomic.write_json(args.json, metrics)
    if args.video:
        print(f"Video: {metrics['video']}")
    if args.trace or args.probe or args.report:
        from agents.insight.probes import format_probes, probe_run
        from agents.insight.report import write_report

        trace = record_trace(run, args.trace_episodes, args.deterministic, args.seed)
        if args.trace:
            print(f"Trace: {trace.save(args.trace)} ({len(trace)} steps)")
        probes = None
        if args.probe or (args.report and trace.layers):
            probes = probe_run(run, trace, args.deterministic, args.seed)
        if args.probe:
            print(format_probes(probes))
        if args.report:
            print(f"Report: {write_report(run, metrics, trace, probes, seed=args.seed)}")
    return 0


def _check_output_files(outputs: dict[str, str | None]) -> None:
    """Before any work: a path that names a folder, or lies under a file, would only fail
    once everything ran."""
    for flag, path in outputs.items():
        if path is None:
            continue
        if Path(path).is_dir():
            raise UserError(f"{flag} {path} is a folder; give the path of a file to write")
        blocking = next((parent for parent in Path(path).parents if parent.is_file()), None)
        if blocking is not None:
            raise UserError(
                f"{flag} {path}: {blocking} is a file, not a folder; give a path under a folder"
            )


def _print_metrics(metrics: dict[str, Any]) -> None:
    mode = "deterministic" if metrics["deterministic"] else "stochastic"
    low, high = metrics["ci95"]
    episodes = f"{metrics['episodes']} episodes ({mode}{_seeds(metrics)})"
    print(f"{metrics['env_id']}  {metrics['algo']}  {episodes}")
    if metrics["success_rate"] is not None:
        ceiling = metrics["memoryless_ceiling"]
        beside = f"   (memoryless ceiling: {ceiling:.2f})" if ceiling is not None else ""
        print(f"  success rate  {metrics['success_rate']:.3f}{beside}")
    print(
        f"  mean return   {metrics['mean_return']:.3f} +- {metrics['std_return']:.3f}  "
        f"(95% CI {low:.3f} .. {high:.3f})"
    )
    print(f"  mean length   {metrics['mean_length']:.1f}")


def _seeds(metrics: dict[str, Any]) -> str:
    """Which episodes: env i of n is seeded seed + i, so both numbers name them."""
    if "seed" not in metrics or "n_envs" not in metrics:  # metrics.json of version 0.1.0
        return ""
    n_envs = metrics["n_envs"]
    return f", seed {metrics['seed']}, {n_envs} env{'s' if n_envs > 1 else ''}"
