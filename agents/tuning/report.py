"""What a study leaves in its folder for a user to act on: best.yaml (a config file for
``--config``), the table of trials (trials.csv, trials.md) and Optuna's history and
parameter-importance plots.

Every worker of a study writes them from all the study's trials when it ends; each file is
written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import os
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from agents.insight.plots import save_png

if TYPE_CHECKING:
    import optuna

BEST_FILE = "best.yaml"
TRIALS_CSV = "trials.csv"
TRIALS_MARKDOWN = "trials.md"
HISTORY_PNG = "history.png"
IMPORTANCE_PNG = "importance.png"


def write_results(study: optuna.Study, folder: Path, plots: bool = True) -> list[Path]:
    """Write the results of every trial so far; returns the files written."""
    trials = study.get_trials(deepcopy=False)
    rows = trial_rows(trials)
    written = [
        _write_text(folder / TRIALS_CSV, _csv(rows)),
        _write_text(folder / TRIALS_MARKDOWN, _markdown(study.study_name, rows)),
    ]
    complete = [trial for trial in trials if trial.state.name == "COMPLETE"]
    if complete:
        best = max(complete, key=lambda trial: trial.value)
        written.append(_write_text(folder / BEST_FILE, best_yaml(study.study_name, best)))
    if plots and complete:
        written += _plots(study, folder)
    return written


def best_config(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The config keys a trial ran with that the study chose or the user fixed."""
    return {**trial.user_attrs.get("fixed", {}), **trial.user_attrs.get("tuned", {})}


def best_yaml(study_name: str, trial: optuna.trial.FrozenTrial) -> str:
    scores = trial.user_attrs.get("scores", {})
    lines = [
        f"# Best trial of study {study_name}: trial {trial.number}, value {trial.value:.4g}",
        "# (success rate where the env reports success, else mean return; mean over envs).",
        *(f"#   {env}: {value:.4g}" for env, value in scores.items()),
        f"# Train with it: python train.py --env {next(iter(scores), 'ID')} --config best.yaml",
    ]
    if len(scores) > 1:
        lines.append("# Tuned over several envs: a `default` block for agents/presets.yaml.")
    body = yaml.safe_dump(best_config(trial), sort_keys=False)
    return "\n".join(lines) + "\n" + body


def trial_rows(trials: list[optuna.trial.FrozenTrial]) -> list[dict[str, Any]]:
    """One row a trial: number, state, value, duration, the values tuned, note, run folders."""
    keys: list[str] = []
    for trial in trials:
        keys += [key for key in trial.user_attrs.get("tuned", trial.params) if key not in keys]
    rows = []
    for trial in trials:
        tuned = trial.user_attrs.get("tuned", trial.params)
        duration = trial.duration.total_seconds() if trial.duration else None
        note = trial.user_attrs.get("note", "")
        if trial.state.name == "FAIL" and not note:
            note = "failed: its worker stopped (killed, lost) or raised an error"
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name.lower(),
                "value": trial.value,
                "duration_s": round(duration, 1) if duration is not None else None,
                **{key: tuned.get(key) for key in keys},
                "note": note,
                "runs": " ".join(trial.user_attrs.get("runs", [])),
            }
        )
    return rows


def _csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def _markdown(study_name: str, rows: list[dict[str, Any]]) -> str:
    """The trials, best first (pruned and failed ones after the complete ones)."""
    lines = [f"# Trials of study {study_name}", ""]
    if not rows:
        return "\n".join([*lines, "No trial yet."]) + "\n"
    ranked = sorted(rows, key=lambda row: (row["value"] is None, -(row["value"] or 0)))
    columns = list(rows[0])
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[column]) for column in columns) + " |" for row in ranked]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "/")


def _plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optuna's optimization history and parameter importances (PED-ANOVA: no scikit-learn
    needed, unlike the fANOVA default); an importance plot needs two complete trials."""
    import matplotlib
    import matplotlib.pyplot as plt
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.visualization import matplotlib as optuna_plots

    written = []
    drawings = {
        HISTORY_PNG: lambda: optuna_plots.plot_optimization_history(study),
        IMPORTANCE_PNG: lambda: optuna_plots.plot_param_importances(
            study, evaluator=PedAnovaImportanceEvaluator()
        ),
    }
    for name, draw in drawings.items():
        # Optuna sets pyplot's style; the context gives the process its own back afterwards
        with warnings.catch_warnings(), matplotlib.rc_context():
            warnings.simplefilter("ignore")  # experimental-API and few-trials warnings
            try:
                axes = draw()
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue  # too few trials to plot this yet
            temporary = folder / f".{name}.{_writer_id()}.png"
            save_png(axes.figure, temporary)
            plt.close(axes.figure)
        os.replace(temporary, folder / name)
        written.append(folder / name)
    return written


def _write_text(path: Path, text: str) -> Path:
    temporary = path.with_name(f".{path.name}.{_writer_id()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    return path


def _writer_id() -> str:
    """Unique among the workers (processes, threads) that may write one study folder."""
    return f"{os.getpid()}-{threading.get_ident()}"
