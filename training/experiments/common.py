"""Shared pieces of the experiments: train-and-evaluate one architecture, aggregate seeds, print, plot.

Every experiment builds its model from a ``data.Schema`` with ``Schema.model_config`` and
``mmoe_tf.build_model``, feeds it with ``data.make_dataset``, stops early on a validation split
(monitor ``FitOptions.monitor``, by default ``val_loss``, the measured best for the scarce task: see
docs/results.md §1) and scores the test split. Metrics are per task: AUC on observed rows for binary tasks, MSE for
regression tasks. :func:`fit_and_score` also reads off the test scores other monitors would have given.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

import mmoe_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is used)

REPO_ROOT = Path(__file__).resolve().parents[2]
FIGURES_DIR = REPO_ROOT / "docs" / "figures"


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """How one model is fitted: epochs cap, batch size, early-stopping patience and monitor, learning rate."""

    epochs: int = 30
    batch_size: int = 256
    patience: int = 3
    learning_rate: float = 1e-3
    verbose: int = 0
    monitor: str = "val_loss"


@dataclasses.dataclass
class FitResult:
    """One fitted model's test scores under each tracked early-stopping monitor.

    Attributes:
        model: The model with the primary monitor's best weights.
        config: Its ``ModelConfig``.
        scores: ``{monitor: {task: test metric}}`` (AUC for binary tasks, MSE for regression).
        best_epochs: ``{monitor: 1-based epoch whose weights that monitor keeps}``.
        best_values: ``{monitor: its validation value at that epoch}`` (for tuning on validation).
        epochs_run: Epochs trained.
        seconds: Wall time of the fit and scoring.
    """

    model: tf.keras.Model
    config: Any
    scores: dict[str, dict[str, float]]
    best_epochs: dict[str, int]
    best_values: dict[str, float]
    epochs_run: int
    seconds: float


DEFAULT_FIT = FitOptions()


def limit_threads(intra: int | None = None, inter: int = 2) -> None:
    """Keep TensorFlow to two threads (the machine is shared), one per op (``mmoe_tf.configure_cpu_threads``:
    faster for these small models); ignored once TF has started."""
    from mmoe_tf import configure_cpu_threads

    with contextlib.suppress(RuntimeError):
        configure_cpu_threads(intra, inter)


def fit_and_score(
    schema: Any,
    splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    *,
    architecture: str,
    seed: int,
    fit: FitOptions = DEFAULT_FIT,
    monitors: Sequence[str] = (),
    **overrides: Any,
) -> FitResult:
    """Fit ``architecture`` on ``(train, val, test)``, early-stopping on ``fit.monitor``; score the test split.

    With extra ``monitors`` the fit goes on until each of them would also have stopped, the test
    split is scored after every epoch, and ``scores[m]`` is the test score at the epoch monitor ``m``
    keeps (exactly what a separate run early-stopped on ``m`` would give, as the runs are identical up
    to that point). The model has the experiments' common sizes (:func:`model_overrides`), with
    ``overrides`` on top.
    """
    from data import feature_arrays, make_dataset
    from mmoe_tf import build_model
    from mmoe_tf.targets import trained_targets
    from training.callbacks import MeanTaskAUC, resolve_monitor
    from training.experiments.selection import MonitorTracker

    train, val, test = splits
    start = time.perf_counter()
    tf.keras.utils.set_random_seed(seed)
    overrides = {**model_overrides(architecture), **overrides}
    config = schema.model_config(architecture=architecture, seed=seed, learning_rate=fit.learning_rate, **overrides)
    binary = [name for name, task in trained_targets(config) if task.type == "binary"]
    watched = list(dict.fromkeys(resolve_monitor(m, binary) for m in (fit.monitor, *monitors)))
    model = build_model(config, adapt_data=feature_arrays(train, schema))
    train_ds = make_dataset(train, schema, batch_size=fit.batch_size, shuffle=True, seed=seed)
    val_ds = make_dataset(val, schema, batch_size=max(fit.batch_size, 1024))
    score_fn = (lambda m: task_metrics(m, config, test, schema)) if len(watched) > 1 else None
    tracker = MonitorTracker(watched, patience=fit.patience, score_fn=score_fn)
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=fit.epochs,
        callbacks=[MeanTaskAUC(binary), tracker],
        verbose=fit.verbose,
    )
    best = {m: tracker.selected(m)[0] for m in watched}
    if score_fn is not None:
        scores = {m: tracker.scores[epoch] for m, epoch in best.items()}
    else:
        scores = {watched[0]: task_metrics(model, config, test, schema)}
    result = FitResult(
        model,
        config,
        scores,
        {m: e + 1 for m, e in best.items()},
        {m: tracker.values(m)[e] for m, e in best.items()},
        len(tracker.logs),
        time.perf_counter() - start,
    )
    shown = ", ".join(f"{k}={v:.4f}" for k, v in scores[watched[0]].items())
    print(
        f"[{architecture} seed={seed}] {result.epochs_run} epochs (best {result.best_epochs}), "
        f"{result.seconds:.0f}s: {shown}",
        file=sys.stderr,
        flush=True,
    )
    return result


def predict(model: tf.keras.Model, features: Mapping[str, np.ndarray], batch_size: int = 8192) -> dict[str, np.ndarray]:
    """Outputs of a dict-output model (``build_model``/``gate_model``) from eager calls in batches.

    Skips ``Model.predict``'s graph tracing, which dominates one-off scoring of many-input models.
    """
    rows = len(next(iter(features.values())))
    chunks = [
        model({k: v[start : start + batch_size] for k, v in features.items()}, training=False)
        for start in range(0, rows, batch_size)
    ]
    return {name: np.concatenate([c[name].numpy() for c in chunks]) for name in chunks[0]}


def task_metrics(model: tf.keras.Model, config: Any, df: pd.DataFrame, schema: Any) -> dict[str, float]:
    """Per task (``training.evaluation``): AUC on observed rows (binary) or MSE (regression); NaN if undefined."""
    from data import feature_arrays, labels_and_weights
    from training.evaluation import evaluate_predictions

    labels, weights = labels_and_weights(df, schema)
    report = evaluate_predictions(config, labels, weights, predict(model, feature_arrays(df, schema)))
    scores = {}
    for task in config.tasks:
        value = report[task.name]["auc" if task.type == "binary" else "mse"]
        scores[task.name] = float("nan") if value is None else float(value)
    return scores


def train_and_evaluate(
    schema: Any,
    splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    *,
    architecture: str,
    seed: int,
    fit: FitOptions = DEFAULT_FIT,
    **overrides: Any,
) -> tuple[tf.keras.Model, dict[str, float]]:
    """Fit ``architecture`` on ``(train, val, test)``; the model and its test metrics (see :func:`fit_and_score`)."""
    result = fit_and_score(schema, splits, architecture=architecture, seed=seed, fit=fit, **overrides)
    return result.model, next(iter(result.scores.values()))


def aggregate(raw: pd.DataFrame, by: Sequence[str], values: Sequence[str]) -> pd.DataFrame:
    """Mean and std (ddof=1; 0 for a single seed) of ``values`` over seeds, one row per ``by`` group."""
    grouped = raw.groupby(list(by), sort=False)[list(values)]
    mean = grouped.mean().add_suffix("_mean")
    std = grouped.std(ddof=1).fillna(0.0).add_suffix("_std")
    count = grouped.size().rename("seeds")
    return pd.concat([mean, std, count], axis=1).reset_index()


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-markdown table; ``<x>_mean``/``<x>_std`` column pairs print as ``mean ± std``."""
    columns: list[tuple[str, Any]] = []
    for col in df.columns:
        if col.endswith("_std") and f"{col[:-4]}_mean" in df.columns:
            continue
        if col.endswith("_mean") and f"{col[:-5]}_std" in df.columns:
            base = col[:-5]
            columns.append((base, lambda r, b=base: f"{r[b + '_mean']:.{digits}f} ± {r[b + '_std']:.{digits}f}"))
        elif pd.api.types.is_float_dtype(df[col]) and not (df[col] == df[col].round(3)).all():
            columns.append((col, lambda r, c=col: f"{r[c]:.{digits}f}"))
        else:
            columns.append((col, lambda r, c=col: str(r[c])))
    lines = ["| " + " | ".join(name for name, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in df.to_dict("records"):  # keeps each column's type (iterrows would turn ints into floats)
        lines.append("| " + " | ".join(fmt(row) for _, fmt in columns) + " |")
    return "\n".join(lines)


def figure_path(name: str, out_dir: str | os.PathLike | None = None) -> Path:
    """``<out_dir or docs/figures>/<name>.png``, creating the folder."""
    folder = Path(out_dir) if out_dir is not None else FIGURES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.png"


def new_figure(ncols: int, width: float = 4.5, height: float = 3.5):
    """A matplotlib (Agg) figure with ``ncols`` axes side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def plot_rows(ax: Any, rows: Sequence[Mapping[str, Any]], x: str, group: str = "architecture") -> None:
    """One line per ``group`` value: summary-row ``mean`` against ``x``, with the 95 % interval as error bars."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[group], []).append(row)
    for name, part in groups.items():
        part = sorted(part, key=lambda r: r[x])
        means = np.array([np.nan if r["mean"] is None else r["mean"] for r in part], dtype=float)
        low = np.array([r["ci95"][0] if r.get("ci95") else m for r, m in zip(part, means, strict=True)])
        high = np.array([r["ci95"][1] if r.get("ci95") else m for r, m in zip(part, means, strict=True)])
        xs = [r[x] for r in part]
        ax.errorbar(xs, means, yerr=[means - low, high - means], marker="o", capsize=3, label=str(name))
    ax.legend()


def print_rows(title: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Print summary rows (``training.experiments.results``) as a markdown table under ``title``."""
    from training.experiments.results import rows_table

    print(f"\n## {title}\n")
    print(rows_table(rows))


def save_figure(fig: Any, path: Path) -> Path:
    """Save and close ``fig``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def add_size_arguments(parser: Any, *, rows: int, seeds: int, fit: FitOptions) -> None:
    """Size options of every experiment (defaults from ``fit``): rows, epochs, seeds, batch, patience, lr, figures."""
    parser.add_argument("--rows", type=int, default=rows, help=f"rows generated / used (default {rows})")
    parser.add_argument("--epochs", type=int, default=fit.epochs, help=f"max epochs (default {fit.epochs})")
    parser.add_argument("--seeds", type=int, default=seeds, help=f"seeds per setting (default {seeds})")
    parser.add_argument("--batch-size", type=int, default=fit.batch_size, help=f"default {fit.batch_size}")
    parser.add_argument("--patience", type=int, default=fit.patience, help=f"early stopping (default {fit.patience})")
    parser.add_argument("--learning-rate", type=float, default=fit.learning_rate, help=f"default {fit.learning_rate}")
    parser.add_argument("--monitor", default=fit.monitor, help=f"early-stopping monitor (default {fit.monitor})")
    parser.add_argument("--figures-dir", default=None, help="where the PNG goes (default docs/figures)")


def fit_options(args: Any) -> FitOptions:
    """``FitOptions`` from parsed ``add_size_arguments`` options."""
    return FitOptions(args.epochs, args.batch_size, args.patience, args.learning_rate, monitor=args.monitor)


def print_result(title: str, table: pd.DataFrame, figure: Path | None, extra: Mapping[str, Any] | None = None) -> None:
    """Print the experiment's table (markdown) and where its figure went."""
    print(f"\n## {title}\n")
    for key, value in (extra or {}).items():
        print(f"{key}: {value}")
    print(markdown_table(table))
    if figure is not None:
        print(f"\nfigure: {figure}")


# --- data and model choices shared by the experiments -------------------------------------------

# Roughly equal parameter budgets: 8 experts × 16 units (mmoe/omoe; ple: 4 shared + 2 per task for two
# tasks) ≈ one 128-unit bottom (shared_bottom) ≈ one 64-unit network per task for two tasks (single_task).
MODEL_OVERRIDES: dict[str, dict[str, Any]] = {
    "mmoe": {"num_experts": 8, "expert_units": (16,), "tower_units": (8,)},
    "omoe": {"num_experts": 8, "expert_units": (16,), "tower_units": (8,)},
    "ple": {"num_shared_experts": 4, "num_task_experts": 2, "expert_units": (16,), "tower_units": (8,)},
    "shared_bottom": {"expert_units": (128,), "tower_units": (8,)},
    "single_task": {"expert_units": (64,), "tower_units": (8,)},
}


def model_overrides(architecture: str) -> dict[str, Any]:
    """``ModelConfig`` overrides used for ``architecture`` in every experiment."""
    return dict(MODEL_OVERRIDES[architecture])


def parameter_count(schema: Any, df: pd.DataFrame, architecture: str, **overrides: Any) -> int:
    """Trainable + non-trainable parameters of ``architecture`` (common sizes, then ``overrides``) on ``schema``."""
    from data import feature_arrays
    from mmoe_tf import build_model

    config = schema.model_config(architecture=architecture, **{**model_overrides(architecture), **overrides})
    return int(build_model(config, adapt_data=feature_arrays(df.head(64), schema)).count_params())


def matched_bottom_units(schema: Any, df: pd.DataFrame, target: str = "mmoe", **overrides: Any) -> int:
    """Hidden units of a one-layer ``shared_bottom`` whose parameter count is closest to ``target``'s.

    (The MMoE paper sizes its shared-bottom baseline to MMoE's parameter count.) ``overrides`` apply
    to both models (e.g. ``tower_units``).
    """
    goal = parameter_count(schema, df, target, **overrides)
    one = parameter_count(schema, df, "shared_bottom", **{**overrides, "expert_units": (1,)})
    two = parameter_count(schema, df, "shared_bottom", **{**overrides, "expert_units": (2,)})
    per_unit = two - one  # the count is linear in the bottom width
    return max(1, round((goal - one) / per_unit) + 1)


def split(df: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Seeded random 80/10/10 train/validation/test split (``data.random_split``)."""
    from data import random_split

    return random_split(df, fractions=(0.8, 0.1, 0.1), seed=seed)


def synthetic_data(rows: int, correlation: float, seed: int, dim: int = 100) -> tuple[pd.DataFrame, Any]:
    """The MMoE paper's two-regression-task synthetic data (``dim`` inputs) at task correlation ``correlation``."""
    from data.generators import make_synthetic

    return make_synthetic(n_rows=rows, correlation=correlation, dim=dim, seed=seed)


def impressions_data(rows: int, seed: int, label_keep_fraction: float = 1.0) -> tuple[pd.DataFrame, Any]:
    """Impression-simulator rows (with true probabilities ``p_click``/``p_satisfaction``) and their schema."""
    from data.generators import simulate_impressions

    return simulate_impressions(n_rows=rows, seed=seed, label_keep_fraction=label_keep_fraction)


def oracle_aucs(df: pd.DataFrame, schema: Any) -> dict[str, float]:
    """Per task: the AUC the simulator's true probabilities reach on ``df`` (observed rows)."""
    from data.generators import oracle_auc

    return {task.name: oracle_auc(df, task.name) for task in schema.tasks}


def census_data(group: int, data_root: str | os.PathLike | None = None) -> tuple[pd.DataFrame, Any]:
    """The UCI Census-Income test file with task group ``group`` (``data.real.census``), and its schema.

    ``data_root`` holds ``census-income/`` (default ``../shared/data``).
    """
    from data.real.census import load_census

    return load_census(group=group, files=("test",), path=data_root)
