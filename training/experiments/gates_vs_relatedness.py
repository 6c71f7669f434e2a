"""Gates vs relatedness: are the two tasks' MMoE gate distributions more alike when tasks correlate more?

MMoE is trained on the paper's synthetic data (``data.generators.synthetic``) at several task
correlations; the top-level gates of both tasks are read with ``mmoe_tf.gate_model`` on the test
split and compared with the gate-analysis similarity (``training.gate_analysis``). Expected: higher
similarity at high correlation than at low correlation.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from data import feature_arrays
from mmoe_tf import gate_model
from training.experiments import common
from training.experiments.results import summarize, write_results
from training.gate_analysis import analyze_gate_weights

DEFAULT_FIT = common.FitOptions(batch_size=512, learning_rate=3e-3)

CORRELATIONS = (0.0, 0.5, 0.9, 1.0)


def run(
    rows: int = 8000,
    correlations: Sequence[float] = CORRELATIONS,
    seeds: int = 2,
    fit: common.FitOptions = DEFAULT_FIT,
    figures_dir: str | Path | None = None,
    dim: int = 16,
    results_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Correlation × seed; return mean/std gate similarity of the two tasks and their test MSE.

    Also writes ``<results_dir or docs/results>/gates_vs_relatedness.json`` (means with 95 % intervals).
    """
    records, mean_gates = [], {}
    for p in correlations:
        for seed in range(seeds):
            df, schema = common.synthetic_data(rows, p, seed, dim)
            splits = common.split(df, seed)
            model, scores = common.train_and_evaluate(schema, splits, architecture="mmoe", seed=seed, fit=fit)
            analysis = analyze_gate_weights(common.predict(gate_model(model), feature_arrays(splits[2], schema)))
            (pair,) = analysis["similarity"].values()
            records.append(
                {
                    "correlation": p,
                    "seed": seed,
                    "js_similarity": pair["js_similarity"],
                    "cosine": pair["cosine"],
                    **{f"mse_{name}": value for name, value in scores.items()},
                }
            )
            if seed == 0:
                mean_gates[p] = {task: np.asarray(t["mean_weights"]) for task, t in analysis["tasks"].items()}
    raw = pd.DataFrame.from_records(records)
    values = [c for c in raw.columns if c not in ("correlation", "seed")]
    long = [
        {
            "correlation": r["correlation"],
            "seed": r["seed"],
            "task": name[len("mse_") :] if name.startswith("mse_") else "gates",
            "metric": "mse" if name.startswith("mse_") else name,
            "value": r[name],
        }
        for r in records
        for name in values
    ]
    write_results("gates_vs_relatedness", summarize(long, ["correlation"]), results_dir)
    table = common.aggregate(raw, ["correlation"], values)
    plot(table, mean_gates, common.figure_path("gates_vs_relatedness", figures_dir))
    return table


def plot(table: pd.DataFrame, mean_gates: dict[float, dict[str, np.ndarray]], path: Path) -> Path:
    """Left: similarity (± std) vs correlation. Right: seed-0 mean gate weights per expert, low vs high p."""
    fig, (left, right) = common.new_figure(2, width=5.0)
    for name in ("js_similarity", "cosine"):
        left.errorbar(
            table["correlation"], table[f"{name}_mean"], yerr=table[f"{name}_std"], marker="o", capsize=3, label=name
        )
    left.legend()
    left.set_xlabel("task correlation p")
    left.set_ylabel("gate similarity of the two tasks")
    ends = [min(mean_gates), max(mean_gates)] if len(mean_gates) > 1 else list(mean_gates)
    bars = [(p, task, weights) for p in ends for task, weights in mean_gates[p].items()]
    width = 0.8 / len(bars)
    for i, (p, task, weights) in enumerate(bars):
        right.bar(np.arange(len(weights)) + i * width, weights, width=width, label=f"p={p:g} {task}")
    right.set_xlabel("expert")
    right.set_ylabel("mean gate weight (test, seed 0)")
    right.legend(fontsize="small")
    return common.save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    """CLI: ``python -m training.experiments gates_vs_relatedness [--rows N --seeds S --correlations …]``."""
    parser = argparse.ArgumentParser(prog="python -m training.experiments gates_vs_relatedness", description=__doc__)
    common.add_size_arguments(parser, rows=8000, seeds=2, fit=DEFAULT_FIT)
    parser.add_argument("--correlations", type=float, nargs="+", default=list(CORRELATIONS))
    parser.add_argument("--dim", type=int, default=16, help="input dimension (default 16; paper: 100)")
    parser.add_argument("--results-dir", default=None, help="where the JSON goes (default docs/results)")
    args = parser.parse_args(argv)
    table = run(
        args.rows, args.correlations, args.seeds, common.fit_options(args), args.figures_dir, args.dim, args.results_dir
    )
    common.print_result(
        "gates_vs_relatedness: similarity of the two tasks' MMoE gates (mean ± std over seeds)",
        table,
        common.figure_path("gates_vs_relatedness", args.figures_dir),
        {
            "rows": args.rows,
            "dim": args.dim,
            "similarity": "gate_analysis on mean test gates: 1 - JS distance, cosine",
        },
    )
    return table
