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
from agents.config import ALGOS, VEC_ENVS, TrainConfig, make_config, parse_assignments
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
    a display (a server, a cluster node) only EGL works, so choose it unless the user did."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")


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


def _train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train a recurrent PPO agent (or a memoryless baseline) and evaluate it.",
        epilog="Precedence: preset for the env < --config < --set < explicit flags. "
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
    parser.add_argument("--device", help="torch device: cpu (default), cuda, auto")
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
    parser.add_argument("--list-envs", action="store_true", help="list our env ids and exit")
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a stopped or finished run to its n_timesteps (or a new --timesteps "
        "total), with its own config",
    )
    return parser


def _train(args: argparse.Namespace) -> int:
    if args.list_envs:
        import envs

        for suite, ids in envs.SUITES.items():
            print(f"{suite}: {' '.join(ids)}")
        return 0
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
    print(f"Watch it: python evaluate.py {run_dir} --video {run_dir / 'video.mp4'}")
    return 0


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


def _train_config(args: argparse.Namespace) -> TrainConfig:
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
    return make_config(
        env=args.env,
        config_file=args.config_file,
        overrides=parse_assignments(args.overrides),
        **explicit,
    )


def _evaluate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluate.py",
        description="Evaluate a trained agent: statistics, and optionally a video, memory "
        "traces, probes of what the memory holds and an HTML report.",
    )
    parser.add_argument("path", metavar="RUN_DIR|MODEL.zip", help="run folder or model file")
    parser.add_argument("--episodes", type=int, default=100)
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
        "(e.g. a longer variant); required for a bare model without config.yaml",
    )
    parser.add_argument("--env-kwargs", nargs="+", default=None, metavar="KEY=VALUE")
    parser.add_argument("--json", metavar="PATH", help="also write the statistics here")
    parser.add_argument("--video", metavar="PATH", help="record a video (.mp4 or .gif)")
    parser.add_argument("--video-episodes", type=int, default=1)
    parser.add_argument("--device", default="cpu")
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
        help="write report.html (and report_video.mp4) into the run folder",
    )
    return parser


def _evaluate(args: argparse.Namespace) -> int:
    from agents.evaluation import evaluate
    from agents.insight.traces import check_trace_options, record_trace, recurrent_networks
    from agents.runs import load

    env_kwargs = parse_assignments(args.env_kwargs, "--env-kwargs") if args.env_kwargs else None
    check_trace_options(args.trace, args.trace_episodes)
    run = load(args.path, env=args.env, env_kwargs=env_kwargs, device=args.device)
    if args.probe and not recurrent_networks(run.model.policy):
        raise UserError(f"--probe reads a recurrent state; this model ({run.config.algo}) has none")
    metrics = evaluate(
        run,
        n_episodes=args.episodes,
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


def _print_metrics(metrics: dict[str, Any]) -> None:
    mode = "deterministic" if metrics["deterministic"] else "stochastic"
    low, high = metrics["ci95"]
    print(f"{metrics['env_id']}  {metrics['algo']}  {metrics['episodes']} episodes ({mode})")
    if metrics["success_rate"] is not None:
        ceiling = metrics["memoryless_ceiling"]
        beside = f"   (memoryless ceiling: {ceiling:.2f})" if ceiling is not None else ""
        print(f"  success rate  {metrics['success_rate']:.3f}{beside}")
    print(
        f"  mean return   {metrics['mean_return']:.3f} +- {metrics['std_return']:.3f}  "
        f"(95% CI {low:.3f} .. {high:.3f})"
    )
    print(f"  mean length   {metrics['mean_length']:.1f}")
