"""Per-task evaluation report: metrics on the rows where each task's label is observed.

Binary outputs get AUC, log loss and calibration (mean prediction vs observed rate, and their
ratio); regression outputs get MSE and MAE; every output gets counts (rows, observed, positives).
ESMM models are reported twice per conditional task: the conditional head ``p(task | parent)`` on
the rows where the task is observed (e.g. clicked rows), and the joint output ``p(parent and task)``
on all rows with a known joint label (``mmoe_tf.targets.add_joint_targets``). Degenerate cases (no
observed rows, one class only) give ``null`` metrics with a ``notes`` entry, never an exception.

Example:
    >>> import numpy as np
    >>> from mmoe_tf.config import ModelConfig
    >>> from mmoe_tf.feature_specs import FeatureSpec
    >>> cfg = ModelConfig(features=(FeatureSpec("x", "numeric"),))
    >>> y = {"click": np.array([0, 1, 1, 0.]), "satisfaction": np.array([0, 1, 0, 0.])}
    >>> w = {"click": np.ones(4), "satisfaction": np.array([0, 1, 1, 0.])}
    >>> p = {"click": np.array([.2, .7, .6, .1]), "satisfaction": np.array([.5, .9, .2, .5])}
    >>> evaluate_predictions(cfg, y, w, p)["click"]["auc"]
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn import metrics

from mmoe_tf.config import ModelConfig
from mmoe_tf.targets import add_joint_targets
from mmoe_tf.task_specs import TaskSpec, joint_output_name

EPS = 1e-7


def _float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def binary_metrics(labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray) -> dict[str, Any]:
    """Metrics of one binary output on its observed rows (``weights > 0``).

    Args:
        labels: 0/1 labels (NaN allowed where unobserved).
        predictions: Probabilities.
        weights: Observation mask/weights; rows with weight 0 are ignored.

    Returns:
        ``rows, observed, positives, auc, log_loss, mean_prediction, observed_rate,
        calibration_ratio, notes``.
    """
    counts, y, p = _observed(labels, predictions, weights)
    out: dict[str, Any] = {
        "type": "binary",
        **counts,
        "positives": int((y > 0.5).sum()) if y.size else 0,
        "auc": None,
        "log_loss": None,
        "mean_prediction": None,
        "observed_rate": None,
        "calibration_ratio": None,
        "notes": [],
    }
    if y.size == 0:
        out["notes"].append("no observed labels: all metrics are null")
        return out
    if not np.isfinite(p).all():
        out["notes"].append(f"{int((~np.isfinite(p)).sum())} non-finite predictions: metrics are null")
        return out
    y = (y > 0.5).astype(np.float64)
    out["mean_prediction"] = _float(p.mean())
    out["observed_rate"] = _float(y.mean())
    if out["observed_rate"] > 0:
        out["calibration_ratio"] = _float(out["mean_prediction"] / out["observed_rate"])
    else:
        out["notes"].append("calibration_ratio is null: observed rate is 0")
    if np.unique(y).size < 2:
        out["notes"].append(f"auc is null: only one class ({int(y[0])}) among observed labels")
    else:
        out["auc"] = _float(metrics.roc_auc_score(y, p))
    out["log_loss"] = _float(metrics.log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0.0, 1.0]))
    return out


def regression_metrics(labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray) -> dict[str, Any]:
    """MSE/MAE (plus means) of one regression output on its observed rows (``weights > 0``)."""
    counts, y, p = _observed(labels, predictions, weights)
    out: dict[str, Any] = {
        "type": "regression",
        **counts,
        "mse": None,
        "mae": None,
        "mean_prediction": None,
        "mean_label": None,
        "notes": [],
    }
    if y.size == 0:
        out["notes"].append("no observed labels: all metrics are null")
        return out
    if not (np.isfinite(p).all() and np.isfinite(y).all()):
        out["notes"].append("non-finite labels or predictions among observed rows: metrics are null")
        return out
    out.update(
        mse=_float(metrics.mean_squared_error(y, p)),
        mae=_float(metrics.mean_absolute_error(y, p)),
        mean_prediction=_float(p.mean()),
        mean_label=_float(y.mean()),
    )
    return out


def _flat(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _observed(labels: Any, predictions: Any, weights: Any) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
    """``({rows, observed}, labels, predictions)``, the arrays cut to the observed rows (``weights > 0``)."""
    labels, predictions, weights = _flat(labels), _flat(predictions), _flat(weights)
    mask = weights > 0
    return {"rows": int(labels.size), "observed": int(mask.sum())}, labels[mask], predictions[mask]


def _metrics_for(task: TaskSpec, labels: Any, predictions: Any, weights: Any) -> dict[str, Any]:
    fn = binary_metrics if task.type == "binary" else regression_metrics
    return fn(labels, predictions, weights)


def evaluate_predictions(
    config: ModelConfig,
    labels: Mapping[str, np.ndarray],
    weights: Mapping[str, np.ndarray],
    predictions: Mapping[str, np.ndarray],
) -> dict[str, dict[str, Any]]:
    """Metrics for every model output.

    Args:
        config: The model's config (tasks, ESMM structure).
        labels: Per-task labels keyed by task name (as from ``data.labels_and_weights``).
        weights: Per-task observation weights (0 = label missing).
        predictions: Model outputs keyed by output name (``[N]`` or ``[N, 1]``).

    Returns:
        ``{output_name: metrics}``; each entry also has ``task`` and ``role`` (``task``,
        ``conditional`` for an ESMM head, ``joint`` for ``<parent>_and_<task>``).
    """
    report: dict[str, dict[str, Any]] = {}
    for task in config.tasks:
        for source, name in ((labels, "labels"), (weights, "weights"), (predictions, "predictions")):
            if task.name not in source:
                raise KeyError(
                    f"evaluate_predictions: {name} has no entry for task {task.name!r}; got {sorted(source)}"
                )
        entry = _metrics_for(task, labels[task.name], predictions[task.name], weights[task.name])
        entry = {"task": task.name, "role": "conditional" if task.conditional_on else "task", **entry}
        if task.conditional_on:
            entry["notes"].insert(0, f"p({task.name} | {task.conditional_on}) on rows where {task.name} is observed")
        report[task.name] = entry
    joint_labels, joint_weights = add_joint_targets(config, labels, weights)
    for task in config.tasks:
        if not task.conditional_on:
            continue
        name = joint_output_name(task)
        if name not in predictions:
            raise KeyError(
                f"evaluate_predictions: predictions has no joint output {name!r} for ESMM task {task.name!r}"
            )
        parent = task.conditional_on
        entry = binary_metrics(joint_labels[name], predictions[name], joint_weights[name])
        entry["notes"].insert(0, f"p({parent} and {task.name}) on all rows with a known joint label")
        report[name] = {"task": task.name, "role": "joint", **entry}
    return report


def predict_outputs(
    model: Any, features: Mapping[str, np.ndarray] | Any, batch_size: int = 1024
) -> dict[str, np.ndarray]:
    """``model.predict`` as a dict of flat numpy arrays keyed by output name."""
    outputs = model.predict(features, batch_size=batch_size, verbose=0)
    if not isinstance(outputs, Mapping):
        outputs = dict(zip(model.output_names, outputs if isinstance(outputs, list) else [outputs], strict=True))
    return {name: np.asarray(value).reshape(-1) for name, value in outputs.items()}


def evaluate_model(model: Any, config: ModelConfig, df: Any, schema: Any, batch_size: int = 1024) -> dict[str, Any]:
    """Predict on a table and report every output.

    Args:
        model: A trained model (outputs keyed like ``config.output_names``).
        config: Its ModelConfig.
        df: A validated table (``data.load_table``).
        schema: The ``data.Schema`` of ``df``.
        batch_size: Prediction batch size.

    Returns:
        ``{output_name: metrics}`` as :func:`evaluate_predictions`.
    """
    from data import feature_arrays, labels_and_weights

    labels, weights = labels_and_weights(df, schema)
    predictions = predict_outputs(model, feature_arrays(df, schema), batch_size=batch_size)
    return evaluate_predictions(config, labels, weights, predictions)


def _fmt(value: Any, spec: str = ".4f") -> str:
    if value is None:
        return "-"
    return format(value, spec) if isinstance(value, float) else str(value)


COLUMNS = (
    "split",
    "output",
    "role",
    "rows",
    "observed",
    "positives",
    "auc",
    "log_loss",
    "mean_pred",
    "obs_rate",
    "calib",
    "mse",
    "mae",
)


def format_report(splits: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """A fixed-width table of ``{split: {output: metrics}}``, plus any notes underneath.

    Example:
        >>> print(format_report({"test": {"click": binary_metrics([0, 1], [0.2, 0.9], [1, 1])}}))  # doctest: +SKIP
    """
    rows, notes = [], []
    for split, outputs in splits.items():
        for name, m in outputs.items():
            rows.append(
                (
                    split,
                    name,
                    m.get("role", "task"),
                    _fmt(m.get("rows")),
                    _fmt(m.get("observed")),
                    _fmt(m.get("positives")),
                    _fmt(m.get("auc")),
                    _fmt(m.get("log_loss")),
                    _fmt(m.get("mean_prediction")),
                    _fmt(m.get("observed_rate")),
                    _fmt(m.get("calibration_ratio"), ".3f"),
                    _fmt(m.get("mse")),
                    _fmt(m.get("mae")),
                )
            )
            notes.extend(f"  [{split}/{name}] {note}" for note in m.get("notes", ()))
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]

    def line(cells: tuple[str, ...] | list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i > 2 else c.ljust(w) for i, (c, w) in pairs)

    text = [line(COLUMNS), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    if notes:
        text += ["", "notes:", *notes]
    return "\n".join(text)


def format_baseline_comparison(report: Mapping[str, Any], split: str = "test") -> str:
    """The model's AUC (binary) or MSE (regression) next to the baseline's, per output, on one split.

    Args:
        report: A run's ``report.json`` content with ``model``, ``splits`` and ``baseline``.
        split: Which split to compare.

    Returns:
        A small fixed-width table (gain = model − baseline for AUC, baseline − model for MSE: > 0 is better),
        and a line saying the gain is one seed of one split, not a finding (``training compare`` gives intervals).
    """
    ours, base = report["splits"].get(split, {}), report["baseline"]["splits"].get(split, {})
    arch, base_arch = report["model"]["architecture"], report["baseline"]["architecture"]
    header = ("output", "metric", f"{arch}", f"{base_arch}", "gain", "observed")
    rows = []
    for name, m in ours.items():
        b = base.get(name, {})
        metric = "auc" if m.get("type") == "binary" else "mse"
        a_val, b_val = m.get(metric), b.get(metric)
        gain = None
        if a_val is not None and b_val is not None:
            gain = a_val - b_val if metric == "auc" else b_val - a_val
        rows.append(
            (name, metric, _fmt(a_val), _fmt(b_val), "-" if gain is None else f"{gain:+.4f}", _fmt(m.get("observed")))
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    title = f"{split} split: {arch} vs the {base_arch} baseline (same data, same training budget)"
    caveat = (
        "gain: one seed of one split, no interval — its sign may flip with another seed; run "
        "`python -m training compare` for 95 % intervals over seeds"
    )
    return "\n".join([title, line(header), line(tuple("-" * w for w in widths)), *(line(r) for r in rows), caveat])
