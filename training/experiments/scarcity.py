"""Label scarcity: does sharing with the plentiful task help more as the rare task's labels shrink?

Impression-simulator data (``data.generators.impressions``, 200k rows per seed by default). In the
train and validation splits only a fraction (100 %, 10 %, 1 %, 0.3 %) of the observed
``satisfaction`` labels is kept (the simulator's ``label_keep_fraction`` with the same seed, so the
kept sets are nested); the test split keeps them all. Every architecture is scored by test AUC on the
rows where each task is observed, and compared with ``single_task`` on the same seed (same data,
split and kept labels): the paired gain and its 95 % interval.

Each fit tracks where three early-stopping monitors (``val_loss``, ``val_mean_task_auc``,
``val_satisfaction_auc``) would have stopped and the test AUC each would have kept
(:func:`common.fit_and_score`), which is how the default monitor was chosen
(``docs/results/model_selection.json``); ``--monitor`` picks the one the main table reports, and
rerunning with another ``--monitor`` only re-summarises (every monitor is in the raw records).

Per-fit records go to ``docs/results/raw/scarcity.jsonl`` as fits finish; a rerun skips fits already
recorded, so separate invocations (e.g. one per fraction) add up.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.experiments import common
from training.experiments.results import RawStore, summarize, write_results

NAME = "scarcity"
SELECTION_NAME = "model_selection"
DEFAULT_FIT = common.FitOptions(epochs=30, batch_size=1024, patience=3)
ARCHITECTURES = ("single_task", "shared_bottom", "omoe", "mmoe", "ple")
FRACTIONS = (1.0, 0.1, 0.01, 0.003)
MONITORS = ("val_loss", "val_mean_task_auc", "val_satisfaction_auc")  # all tracked; fit.monitor is primary
TASK = "satisfaction"
BASELINE = "single_task"


def run(
    rows: int = 200_000,
    fractions: Sequence[float] = FRACTIONS,
    architectures: Sequence[str] = ARCHITECTURES,
    seeds: int = 5,
    fit: common.FitOptions = DEFAULT_FIT,
    figures_dir: str | Path | None = None,
    results_dir: str | Path | None = None,
    first_seed: int = 0,
) -> list[dict[str, Any]]:
    """Sweep label fraction × seed × architecture (skipping fits already recorded); return the summary rows.

    Rows (also written to ``<results_dir>/scarcity.json``) are for the primary monitor ``fit.monitor``;
    ``model_selection.json`` compares every tracked monitor with ``val_loss``.
    """
    store = RawStore(NAME, results_dir)
    for keep in fractions:
        for seed in range(first_seed, first_seed + seeds):
            todo = [
                a
                for a in architectures
                if not store.has(label_fraction=keep, architecture=a, seed=seed, rows=rows, monitor=fit.monitor)
            ]
            if not todo:
                continue
            full, schema = common.impressions_data(rows, seed)
            test = common.split(full, seed)[2]
            # Same seed, same rows and labels; only the kept satisfaction labels differ (nested subsets).
            train, val, _ = common.split(common.impressions_data(rows, seed, label_keep_fraction=keep)[0], seed)
            for arch in todo:
                result = common.fit_and_score(
                    schema, (train, val, test), architecture=arch, seed=seed, fit=fit, monitors=MONITORS
                )
                store.add(
                    {
                        "rows": rows,
                        "label_fraction": keep,
                        "architecture": arch,
                        "monitor": monitor,
                        "primary": monitor == fit.monitor,
                        "seed": seed,
                        "task": task,
                        "metric": "auc",
                        "value": value,
                        "best_epoch": result.best_epochs[monitor],
                        "epochs_run": result.epochs_run,
                        "train_labels": int(train[TASK].notna().sum()),
                        "val_labels": int(val[TASK].notna().sum()),
                        "epochs_cap": fit.epochs,
                        "batch_size": fit.batch_size,
                        "learning_rate": fit.learning_rate,
                        "patience": fit.patience,
                    }
                    for monitor, scores in result.scores.items()
                    for task, value in scores.items()
                )
            summarize_store(store, rows, fit.monitor, results_dir)
    table = summarize_store(store, rows, fit.monitor, results_dir)
    plot(table, common.figure_path(NAME, figures_dir))
    return table


def summarize_store(
    store: RawStore, rows: int, monitor: str, results_dir: str | Path | None = None
) -> list[dict[str, Any]]:
    """Write ``scarcity.json`` (primary monitor, gains vs single-task) and ``model_selection.json``; return rows."""
    records = [r for r in store.records() if r["rows"] == rows]
    primary = [r for r in records if r["monitor"] == monitor]
    table = summarize(
        primary,
        ["label_fraction", "architecture"],
        compare=("architecture", BASELINE, "gain_vs_single_task"),
        extras=("train_labels", "best_epoch", "epochs_run"),
    )
    versus_bottom = summarize(
        primary, ["label_fraction", "architecture"], compare=("architecture", "shared_bottom", "gain_vs_shared_bottom")
    )
    versus_mmoe = summarize(
        primary, ["label_fraction", "architecture"], compare=("architecture", "mmoe", "gain_vs_mmoe")
    )
    for row, other, ple in zip(table, versus_bottom, versus_mmoe, strict=True):
        row["monitor"] = monitor
        if row["architecture"] in ("omoe", "mmoe", "ple") and "gain_vs_shared_bottom" in other:
            row["gain_vs_shared_bottom"] = other["gain_vs_shared_bottom"]
        if row["architecture"] == "ple" and "gain_vs_mmoe" in ple:
            row["gain_vs_mmoe"] = ple["gain_vs_mmoe"]  # PLE's paired difference to MMoE (same seeds)
    table.sort(key=_order)
    write_results(NAME, table, results_dir)
    selection = summarize(
        records,
        ["label_fraction", "architecture", "monitor"],
        compare=("monitor", "val_loss", "gain_vs_baseline"),
        extras=("best_epoch",),
    )
    selection.sort(key=_order)
    write_results(SELECTION_NAME, selection, results_dir)
    return table


def _order(row: dict[str, Any]) -> tuple:
    """Rows by fraction (descending), then architecture (``ARCHITECTURES`` order, others last), keeping the rest."""
    arch = row["architecture"]
    return (-row["label_fraction"], ARCHITECTURES.index(arch) if arch in ARCHITECTURES else len(ARCHITECTURES))


def plot(table: Sequence[dict[str, Any]], path: Path) -> Path:
    """Satisfaction test AUC (mean, 95 % interval) vs the fraction of its labels kept, one line per architecture."""
    fig, (ax,) = common.new_figure(1, width=5.5)
    common.plot_rows(ax, [r for r in table if r["task"] == TASK], "label_fraction")
    ax.set_xscale("log")
    ax.set_xlabel("fraction of satisfaction labels kept (train/val)")
    ax.set_ylabel("satisfaction test AUC (observed rows)")
    return common.save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """CLI: ``python -m training.experiments scarcity [--rows N --seeds S --fractions … --architectures …]``."""
    parser = argparse.ArgumentParser(prog="python -m training.experiments scarcity", description=__doc__)
    common.add_size_arguments(parser, rows=200_000, seeds=5, fit=DEFAULT_FIT)
    parser.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first_seed … first_seed+seeds-1")
    parser.add_argument("--results-dir", default=None, help="where the JSON goes (default docs/results)")
    args = parser.parse_args(argv)
    table = run(
        args.rows,
        args.fractions,
        args.architectures,
        args.seeds,
        common.fit_options(args),
        args.figures_dir,
        args.results_dir,
        args.first_seed,
    )
    common.print_rows(f"{NAME}: test AUC, mean [95 % CI] over seeds; gain = paired vs single_task", table)
    return table
