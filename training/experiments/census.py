"""UCI Census-Income (KDD): test AUC per task for each architecture on the MMoE paper's task groups.

Only the 99,762-row UCI *test* file is available (``../shared/data/census-income``), so it is split
here with a seeded random 80/10/10 train/validation/test split; the numbers are therefore not
directly comparable with the paper's (which trains on the 199,523-row training file).
Task groups (``data.real.census``): 1 = income > 50K & marital status never married,
2 = education (at least college) & marital status.

As the paper tuned every model, each architecture gets a small grid (learning rate × width
multiplier of its hidden layers), chosen per group on the tuning seed's validation mean task AUC;
the tuning seed's fit with the chosen setting is also its first reported seed. Rows: mean test AUC
with 95 % intervals over seeds, and the paired gain over single-task (same split). Per-fit records:
``docs/results/raw/census.jsonl``; rows: ``census.json`` and ``census_grid.json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.callbacks import monitor_mode
from training.experiments import common
from training.experiments.results import RawStore, summarize, write_results

DEFAULT_FIT = common.FitOptions(epochs=15, batch_size=1024, patience=2)
NAME = "census"
ARCHITECTURES = ("single_task", "shared_bottom", "omoe", "mmoe")
GROUPS = (1, 2)
LEARNING_RATES = (1e-3, 3e-3)
WIDTHS = (1, 2)
BASELINE = "single_task"


def _overrides(architecture: str, width: int) -> dict[str, Any]:
    """The common sizes of ``architecture`` with every hidden layer ``width`` times wider."""
    base = common.model_overrides(architecture)
    return {k: tuple(u * width for u in base[k]) for k in ("expert_units", "tower_units") if k in base}


def run(
    rows: int | None = None,
    groups: Sequence[int] = GROUPS,
    architectures: Sequence[str] = ARCHITECTURES,
    seeds: int = 5,
    fit: common.FitOptions = DEFAULT_FIT,
    data_root: str | Path | None = None,
    figures_dir: str | Path | None = None,
    learning_rates: Sequence[float] = LEARNING_RATES,
    widths: Sequence[int] = WIDTHS,
    results_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Per group: tune each architecture on seed 0 (validation), then seeds 1.. with the choice; return the rows."""
    store = RawStore(NAME, results_dir)
    for group in groups:
        df, schema = common.census_data(group, data_root)
        if rows is not None and rows < len(df):
            df = df.sample(n=rows, random_state=0).reset_index(drop=True)
        for arch in architectures:
            for lr in learning_rates:
                for width in widths:
                    _fit_one(store, df, schema, group, 0, arch, lr, width, fit)
        chosen = _choose(store.records(), len(df), group)
        for seed in range(1, seeds):
            for arch in architectures:
                _fit_one(store, df, schema, group, seed, arch, *chosen[arch], fit)
            _summary(store, results_dir)
    table = _summary(store, results_dir)
    plot(table, common.figure_path(NAME, figures_dir))
    return table


def _fit_one(
    store: RawStore,
    df: Any,
    schema: Any,
    group: int,
    seed: int,
    arch: str,
    lr: float,
    width: int,
    fit: common.FitOptions,
) -> None:
    """One census fit (skipped if recorded); its per-task test AUC appended to ``store``."""
    key = {"rows": len(df), "group": group, "architecture": arch, "seed": seed, "learning_rate": lr, "width": width}
    if store.has(**key):
        return
    options = common.FitOptions(fit.epochs, fit.batch_size, fit.patience, lr, monitor=fit.monitor)
    result = common.fit_and_score(
        schema, common.split(df, seed), architecture=arch, seed=seed, fit=options, **_overrides(arch, width)
    )
    base = {
        **key,
        "tasks": " & ".join(t.name for t in schema.tasks),
        "monitor": fit.monitor,
        "val_monitor": result.best_values[next(iter(result.best_values))],
        "best_epoch": next(iter(result.best_epochs.values())),
        "epochs_run": result.epochs_run,
        "parameters": int(result.model.count_params()),
    }
    scores = next(iter(result.scores.values()))
    store.add({**base, "task": t, "metric": "auc", "value": v} for t, v in scores.items())


def _choose(records: Sequence[dict[str, Any]], rows: int, group: int) -> dict[str, tuple[float, int]]:
    """Per architecture: the seed-0 ``(learning_rate, width)`` with the best validation monitor value."""
    best: dict[str, tuple[float, tuple[float, int]]] = {}
    for r in records:
        if r["rows"] == rows and r["group"] == group and r["seed"] == 0 and r["val_monitor"] is not None:
            sign = 1.0 if monitor_mode(r["monitor"]) == "max" else -1.0
            score = sign * r["val_monitor"]
            if r["architecture"] not in best or score > best[r["architecture"]][0]:
                best[r["architecture"]] = (score, (r["learning_rate"], r["width"]))
    return {arch: setting for arch, (_, setting) in best.items()}


def _summary(store: RawStore, results_dir: str | Path | None) -> list[dict[str, Any]]:
    """Write ``census_grid.json`` (seed-0 grid) and ``census.json`` (chosen settings over seeds); return the latter."""
    records = store.records()
    grid = summarize(
        [r for r in records if r["seed"] == 0],
        ["group", "tasks", "architecture", "learning_rate", "width"],
        extras=("val_monitor", "best_epoch"),
    )
    chosen = {}
    for rows, group in {(r["rows"], r["group"]) for r in records}:
        for arch, setting in _choose(records, rows, group).items():
            chosen[(rows, group, arch)] = setting
    for row in grid:
        row["chosen"] = any(
            key[1:] == (row["group"], row["architecture"]) and value == (row["learning_rate"], row["width"])
            for key, value in chosen.items()
        )
    grid.sort(key=lambda r: (r["group"], _arch_rank(r["architecture"]), r["learning_rate"], r["width"]))
    write_results(f"{NAME}_grid", grid, results_dir)
    main = [
        r for r in records if chosen.get((r["rows"], r["group"], r["architecture"])) == (r["learning_rate"], r["width"])
    ]
    table = summarize(
        main,
        ["group", "tasks", "architecture"],
        compare=("architecture", BASELINE, "gain_vs_single_task"),
        extras=("learning_rate", "width", "parameters", "best_epoch"),
    )
    table.sort(key=lambda r: (r["group"], _arch_rank(r["architecture"])))
    write_results(NAME, table, results_dir)
    return table


def _arch_rank(architecture: str) -> int:
    return ARCHITECTURES.index(architecture) if architecture in ARCHITECTURES else len(ARCHITECTURES)


def plot(table: Sequence[dict[str, Any]], path: Path) -> Path:
    """Grouped bars of both tasks' test AUC (95 % intervals), one panel per task group."""
    groups = list(dict.fromkeys(r["group"] for r in table))
    fig, axes = common.new_figure(len(groups), width=5.5)
    for ax, group in zip(axes, groups, strict=True):
        part = [r for r in table if r["group"] == group]
        archs = list(dict.fromkeys(r["architecture"] for r in part))
        tasks = list(dict.fromkeys(r["task"] for r in part))
        for offset, task in enumerate(tasks):
            cells = {r["architecture"]: r for r in part if r["task"] == task}
            means = np.array([cells[a]["mean"] for a in archs], dtype=float)
            low = np.array([(cells[a]["ci95"] or [m, m])[0] for a, m in zip(archs, means, strict=True)])
            high = np.array([(cells[a]["ci95"] or [m, m])[1] for a, m in zip(archs, means, strict=True)])
            x = [i + 0.4 * offset for i in range(len(archs))]
            ax.bar(x, means, width=0.4, yerr=[means - low, high - means], capsize=3, label=task)
        ax.set_xticks([i + 0.2 for i in range(len(archs))], archs, rotation=20)
        lowest = min(r["mean"] for r in part)
        ax.set_ylim(max(0.0, lowest - 0.05), 1.0)
        ax.set_ylabel("test AUC")
        ax.set_title(f"group {group}: {part[0]['tasks']}")
        ax.legend(loc="lower right")
    return common.save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """CLI: ``python -m training.experiments census [--groups 1 2 --seeds S --rows N]``."""
    parser = argparse.ArgumentParser(prog="python -m training.experiments census", description=__doc__)
    common.add_size_arguments(parser, rows=0, seeds=5, fit=DEFAULT_FIT)
    parser.add_argument("--groups", type=int, nargs="+", default=list(GROUPS), choices=GROUPS)
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--data-root", default=None, help="folder holding census-income/ (default ../shared/data)")
    parser.add_argument("--learning-rates", type=float, nargs="+", default=list(LEARNING_RATES))
    parser.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS), help="hidden-size multipliers")
    parser.add_argument("--results-dir", default=None, help="where the JSON goes (default docs/results)")
    args = parser.parse_args(argv)
    table = run(
        args.rows or None,
        args.groups,
        args.architectures,
        args.seeds,
        common.fit_options(args),
        args.data_root,
        args.figures_dir,
        args.learning_rates,
        args.widths,
        args.results_dir,
    )
    common.print_rows(f"{NAME}: test AUC, mean [95 % CI] over seeds; gain = paired vs {BASELINE}", table)
    return table
