"""Task relatedness at the MMoE paper's setup: MMoE vs OMoE vs shared-bottom on its synthetic data.

For each task correlation p the paper's generator (``data.generators.synthetic``, input dimension
100, 10 sinusoids, noise σ = 0.1) makes two regression tasks. MMoE and OMoE have 8 experts × 16
units, towers of 8 units; the shared bottom is one layer sized to MMoE's parameter count
(:func:`common.matched_bottom_units`). As in the paper, each architecture's learning rate is chosen
from {1e-4, 1e-3, 1e-2}: on a separate tuning seed, by the mean best validation MSE over the
correlations. Then every architecture is trained on each (correlation, seed) data set with its
learning rate and scored by test MSE per task; the paired difference to the shared bottom (same data
set) is reported with its 95 % interval. Paper (Ma et al. 2018, Fig. 4): MoE models beat the shared
bottom at every correlation, OMoE degrades as the correlation falls, MMoE stays about flat.

Per-fit records: ``docs/results/raw/relatedness.jsonl``; rows: ``relatedness.json`` (test MSE) and
``relatedness_lr.json`` (the learning-rate choice).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.experiments import common
from training.experiments.results import RawStore, summarize, write_results

NAME = "relatedness"
DEFAULT_FIT = common.FitOptions(epochs=80, batch_size=1024, patience=5, monitor="val_loss")
ARCHITECTURES = ("mmoe", "omoe", "ple", "shared_bottom")
CORRELATIONS = (0.5, 0.9, 1.0)
LEARNING_RATES = (1e-4, 1e-3, 1e-2)
TUNING_SEED = 1000
BASELINE = "shared_bottom"


def _sizes(architectures: Sequence[str], dim: int) -> dict[str, dict[str, Any]]:
    """Per architecture: model overrides (the shared bottom matched to MMoE's parameter count)."""
    if BASELINE not in architectures:
        return {a: {} for a in architectures}
    df, schema = common.synthetic_data(64, 1.0, 0, dim)
    units = common.matched_bottom_units(schema, df, "mmoe")
    return {a: ({"expert_units": (units,)} if a == BASELINE else {}) for a in architectures}


def _fit(store, stage, p, seed, arch, lr, rows, dim, fit, overrides) -> None:
    """One fit; its per-task test MSE and best validation loss appended to ``store``."""
    key = {"stage": stage, "rows": rows, "dim": dim, "correlation": p, "architecture": arch, "seed": seed}
    if store.has(**key, learning_rate=lr):
        return
    df, schema = common.synthetic_data(rows, p, seed, dim)
    result = common.fit_and_score(
        schema,
        common.split(df, seed),
        architecture=arch,
        seed=seed,
        fit=common.FitOptions(fit.epochs, fit.batch_size, fit.patience, lr, monitor="val_loss"),
        **overrides,
    )
    params = int(result.model.count_params())
    base = {**key, "learning_rate": lr, "parameters": params, "best_epoch": result.best_epochs["val_loss"]}
    base["epochs_run"] = result.epochs_run
    records = [{**base, "task": "all", "metric": "val_loss", "value": result.best_values["val_loss"]}]
    records += [{**base, "task": t, "metric": "mse", "value": v} for t, v in result.scores["val_loss"].items()]
    store.add(records)


def choose_learning_rates(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Per architecture, the tuning-stage learning rate with the lowest mean best validation loss."""
    means: dict[tuple[str, float], list[float]] = {}
    for r in records:
        if r["stage"] == "tune" and r["metric"] == "val_loss" and r["value"] is not None:
            means.setdefault((r["architecture"], r["learning_rate"]), []).append(r["value"])
    best: dict[str, tuple[float, float]] = {}
    for (arch, lr), values in means.items():
        score = sum(values) / len(values)
        if arch not in best or score < best[arch][1]:
            best[arch] = (lr, score)
    return {arch: lr for arch, (lr, _) in best.items()}


def run(
    rows: int = 40_000,
    correlations: Sequence[float] = CORRELATIONS,
    architectures: Sequence[str] = ARCHITECTURES,
    seeds: int = 10,
    fit: common.FitOptions = DEFAULT_FIT,
    figures_dir: str | Path | None = None,
    dim: int = 100,
    learning_rates: Sequence[float] = LEARNING_RATES,
    results_dir: str | Path | None = None,
    tune_correlations: Sequence[float] | None = None,
    first_seed: int = 0,
) -> list[dict[str, Any]]:
    """Tune each architecture's learning rate, then sweep seed × correlation × architecture; return the rows.

    ``tune_correlations`` (default: all of ``correlations``) are the data sets the learning rate is
    chosen on (tuning seed only). Seeds run outermost, so a stopped run has every cell at a similar count.
    """
    store = RawStore(NAME, results_dir)
    sizes = _sizes(architectures, dim)
    tune_set = tuple(tune_correlations or correlations)
    for lr in learning_rates:
        for arch in architectures:
            for p in tune_set:
                _fit(store, "tune", p, TUNING_SEED, arch, lr, rows, dim, fit, sizes[arch])
    mine = [r for r in store.records() if r["rows"] == rows and r["dim"] == dim]
    tuned = [r for r in mine if r["learning_rate"] in learning_rates and r["correlation"] in tune_set]
    chosen = choose_learning_rates(tuned)
    tuning = summarize(
        [r for r in tuned if r["stage"] == "tune" and r["metric"] == "val_loss"],
        ["architecture", "learning_rate"],
        extras=("best_epoch", "epochs_run"),
    )
    for row in tuning:
        row["chosen"] = chosen.get(row["architecture"]) == row["learning_rate"]
    write_results(f"{NAME}_lr", tuning, results_dir)
    for seed in range(first_seed, first_seed + seeds):
        for p in correlations:
            for arch in architectures:
                _fit(store, "main", p, seed, arch, chosen[arch], rows, dim, fit, sizes[arch])
            _summary(store, rows, dim, chosen, results_dir)  # kept current as fits finish
    table = _summary(store, rows, dim, chosen, results_dir)  # also with --seeds 0: summarise what is recorded
    plot(table, common.figure_path(NAME, figures_dir))
    return table


def _summary(store: RawStore, rows: int, dim: int, chosen: dict[str, float], results_dir: Any) -> list[dict]:
    main = [
        r
        for r in store.records()
        if r["stage"] == "main" and r["rows"] == rows and r["dim"] == dim and r["metric"] == "mse"
        if chosen.get(r["architecture"]) == r["learning_rate"]
    ]
    table = summarize(
        main,
        ["correlation", "architecture"],
        compare=("architecture", BASELINE, "gain_vs_baseline"),
        extras=("learning_rate", "parameters", "best_epoch", "epochs_run"),
    )
    versus_mmoe = summarize(main, ["correlation", "architecture"], compare=("architecture", "mmoe", "gain_vs_mmoe"))
    for row, other in zip(table, versus_mmoe, strict=True):
        if row["architecture"] == "ple" and "gain_vs_mmoe" in other:
            row["gain_vs_mmoe"] = other["gain_vs_mmoe"]  # PLE's paired difference to MMoE (same data sets)
    write_results(NAME, table, results_dir)
    return table


def plot(table: Sequence[dict[str, Any]], path: Path) -> Path:
    """Test MSE (mean, 95 % interval) vs correlation, one panel per task, one line per architecture."""
    tasks = list(dict.fromkeys(r["task"] for r in table))
    fig, axes = common.new_figure(len(tasks))
    for ax, task in zip(axes, tasks, strict=True):
        common.plot_rows(ax, [r for r in table if r["task"] == task], "correlation")
        ax.set_xlabel("task correlation p")
        ax.set_ylabel("test MSE")
        ax.set_title(task)
    return common.save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """CLI: ``python -m training.experiments relatedness [--rows N --seeds S --correlations … --dim D]``."""
    parser = argparse.ArgumentParser(prog="python -m training.experiments relatedness", description=__doc__)
    common.add_size_arguments(parser, rows=40_000, seeds=10, fit=DEFAULT_FIT)
    parser.add_argument("--correlations", type=float, nargs="+", default=list(CORRELATIONS))
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--dim", type=int, default=100, help="input dimension (default 100, as the paper)")
    parser.add_argument("--learning-rates", type=float, nargs="+", default=list(LEARNING_RATES))
    parser.add_argument("--tune-correlations", type=float, nargs="+", help="default: every --correlations value")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first_seed … first_seed+seeds-1")
    parser.add_argument("--results-dir", default=None, help="where the JSON goes (default docs/results)")
    args = parser.parse_args(argv)
    table = run(
        args.rows,
        args.correlations,
        args.architectures,
        args.seeds,
        common.fit_options(args),
        args.figures_dir,
        args.dim,
        args.learning_rates,
        args.results_dir,
        args.tune_correlations,
        args.first_seed,
    )
    common.print_rows(f"{NAME}: test MSE per task, mean [95 % CI] over seeds; gain = paired vs {BASELINE}", table)
    return table
