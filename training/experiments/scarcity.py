"""Label scarcity: does sharing with the plentiful task help more as the rare task's labels shrink?

Impression-simulator data (``data.generators.impressions``). In the train and validation splits
only a fraction (100 %, 10 %, 1 %) of the observed ``satisfaction`` labels is kept (the simulator's
``label_keep_fraction`` with the same seed, so the kept sets are nested); the test split keeps them
all. ``single_task``, ``shared_bottom`` and ``mmoe`` are compared by satisfaction test AUC on the
rows where satisfaction is observed (clicked rows).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from training.experiments import common

DEFAULT_FIT = common.FitOptions(epochs=20, batch_size=512)

ARCHITECTURES = ("single_task", "shared_bottom", "mmoe")
FRACTIONS = (1.0, 0.1, 0.01)
TASK = "satisfaction"


def run(
    rows: int = 30000,
    fractions: Sequence[float] = FRACTIONS,
    architectures: Sequence[str] = ARCHITECTURES,
    seeds: int = 2,
    fit: common.FitOptions = DEFAULT_FIT,
    figures_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Sweep label fraction × architecture × seed; return mean/std test AUC per task per setting."""
    records = []
    for seed in range(seeds):
        full, schema = common.impressions_data(rows, seed)
        test = common.split(full, seed)[2]
        for keep in fractions:
            # Same seed, same rows and labels; only the kept satisfaction labels differ (nested subsets).
            train, val, _ = common.split(common.impressions_data(rows, seed, label_keep_fraction=keep)[0], seed)
            for arch in architectures:
                _, scores = common.train_and_evaluate(schema, (train, val, test), architecture=arch, seed=seed, fit=fit)
                records.append(
                    {
                        "label_fraction": keep,
                        "architecture": arch,
                        "seed": seed,
                        "train_labels": int(train[TASK].notna().sum()),
                        **{f"auc_{name}": value for name, value in scores.items()},
                    }
                )
    raw = pd.DataFrame.from_records(records)
    metrics = [c for c in raw.columns if c.startswith("auc_")]
    table = common.aggregate(raw, ["label_fraction", "architecture"], ["train_labels", *metrics])
    table = table.drop(columns=["train_labels_std"]).rename(columns={"train_labels_mean": "train_labels"})
    single = table[table["architecture"] == "single_task"].set_index("label_fraction")[f"auc_{TASK}_mean"]
    if len(single):
        table[f"gain_vs_single_{TASK}"] = table[f"auc_{TASK}_mean"] - table["label_fraction"].map(single)
    plot(table, common.figure_path("scarcity", figures_dir))
    return table


def plot(table: pd.DataFrame, path: Path) -> Path:
    """Satisfaction test AUC (± std) vs the fraction of its labels kept, one line per architecture."""
    fig, (ax,) = common.new_figure(1, width=5.5)
    common.plot_architecture_lines(ax, table, "label_fraction", f"auc_{TASK}")
    ax.set_xscale("log")
    ax.set_xlabel("fraction of satisfaction labels kept (train/val)")
    ax.set_ylabel("satisfaction test AUC (observed rows)")
    return common.save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    """CLI: ``python -m training.experiments scarcity [--rows N --seeds S --fractions …]``."""
    parser = argparse.ArgumentParser(prog="python -m training.experiments scarcity", description=__doc__)
    common.add_size_arguments(parser, rows=30000, seeds=2, fit=DEFAULT_FIT)
    parser.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES))
    args = parser.parse_args(argv)
    table = run(
        args.rows,
        args.fractions,
        args.architectures,
        args.seeds,
        common.fit_options(args),
        args.figures_dir,
    )
    common.print_result(
        "scarcity: test AUC (mean ± std over seeds) with a fraction of satisfaction labels kept",
        table,
        common.figure_path("scarcity", args.figures_dir),
        {"rows": args.rows, "split": "random 80/10/10 per seed; test keeps every label"},
    )
    return table
