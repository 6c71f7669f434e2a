"""Model-selection rules without TensorFlow: which way a logged metric improves, and where Keras would stop.

The run config validates ``train.early_stopping.monitor`` with :func:`monitor_mode`; the callbacks
(:mod:`training.callbacks`) and the experiments use the same rules.

Example:
    >>> monitor_mode("val_click_auc"), select_epoch([0.5, 0.7, 0.6, 0.65], "max", patience=2)
    ('max', (1, 3))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

MEAN_TASK_AUC = "mean_task_auc"
DEFAULT_MONITOR = f"val_{MEAN_TASK_AUC}"
# Metric-name endings and the direction in which they improve.
_MODE_BY_SUFFIX = (
    ("auc", "max"),
    ("accuracy", "max"),
    ("precision", "max"),
    ("recall", "max"),
    ("loss", "min"),
    ("mae", "min"),
    ("mse", "min"),
    ("error", "min"),
)


def monitor_mode(monitor: str) -> str:
    """``"max"`` or ``"min"``: the direction in which the logged metric ``monitor`` improves.

    Args:
        monitor: A Keras log key such as ``val_satisfaction_auc``, ``val_loss`` or ``val_mean_task_auc``.

    Returns:
        ``"max"`` for names ending in auc/accuracy/precision/recall, ``"min"`` for loss/mae/mse/error.

    Raises:
        ValueError: the name has none of these endings (the direction cannot be inferred).

    Example:
        >>> monitor_mode("val_satisfaction_auc"), monitor_mode("val_click_loss")
        ('max', 'min')
    """
    for suffix, mode in _MODE_BY_SUFFIX:
        if monitor.endswith(suffix):
            return mode
    endings = ", ".join(f"*{s}" for s, _ in _MODE_BY_SUFFIX)
    raise ValueError(
        f"monitor {monitor!r}: cannot infer whether it should go up or down; expected a name ending in {endings}"
    )


def resolve_monitor(monitor: str, binary_tasks: Sequence[str], has_validation: bool = True) -> str:
    """The log key actually watched for ``monitor``.

    ``*mean_task_auc`` needs a binary task; for regression-only models it falls back to the
    (validation) loss. Without validation data ``val_`` monitors fall back to their training twin.

    Example:
        >>> resolve_monitor("val_mean_task_auc", [], True), resolve_monitor("val_click_auc", ["click"], False)
        ('val_loss', 'click_auc')
    """
    if monitor.endswith(MEAN_TASK_AUC) and not binary_tasks:
        monitor = "val_loss" if monitor.startswith("val_") else "loss"
    if not has_validation and monitor.startswith("val_"):
        monitor = monitor[len("val_") :]
    return monitor


def select_epoch(values: Sequence[float], mode: str, patience: int, min_delta: float = 0.0) -> tuple[int, int | None]:
    """Where Keras ``EarlyStopping(restore_best_weights=True)`` would stop and which epoch it would restore.

    Same rule as Keras: an epoch improves when it beats the best by more than ``min_delta`` (NaN
    never does); training stops once ``patience`` epochs in a row did not improve.

    Args:
        values: The monitored value per epoch (0-based).
        mode: ``"max"`` or ``"min"``.
        patience: Epochs without improvement before stopping (0 = never stop early).
        min_delta: Minimum change that counts as an improvement.

    Returns:
        ``(best_epoch, stopped_epoch)``, 0-based; ``stopped_epoch`` is ``None`` if it never stopped.

    Example:
        >>> select_epoch([0.5, 0.7, 0.6, 0.65], "max", patience=2)
        (1, 3)
    """
    sign = 1.0 if mode == "max" else -1.0
    best, best_epoch, wait = -math.inf, 0, 0
    for epoch, value in enumerate(values):
        wait += 1
        score = sign * float(value)
        if not math.isnan(score) and score - abs(min_delta) > best:
            best, best_epoch, wait = score, epoch, 0
        if patience > 0 and wait >= patience and epoch > 0:
            return best_epoch, epoch
    return best_epoch, None


def per_task_best_epochs(
    history: Mapping[str, Sequence[float]], tasks: Mapping[str, str], selected_epoch: int | None
) -> dict[str, dict[str, Any]]:
    """Per task: the epoch where its own validation metric was best, next to the epoch the monitor chose.

    Args:
        history: ``{log key: [value per epoch]}`` (Keras ``History.history`` or ``history.csv`` columns).
        tasks: ``{task name: "binary" | "regression"}``; binary tasks use ``val_<task>_auc`` (max),
            others ``val_<task>_loss`` (min).
        selected_epoch: 1-based epoch whose weights were kept (``None`` if unknown).

    Returns:
        ``{task: {"metric", "best_epoch" (1-based), "best_value", "selected_epoch",
        "value_at_selected_epoch"}}``; tasks whose metric was not logged are left out.
    """
    out: dict[str, dict[str, Any]] = {}
    for task, kind in tasks.items():
        metric = f"val_{task}_auc" if kind == "binary" else f"val_{task}_loss"
        values = [float(v) for v in history.get(metric, [])]
        if not values or all(math.isnan(v) for v in values):
            continue
        sign = 1.0 if monitor_mode(metric) == "max" else -1.0
        best = max(range(len(values)), key=lambda i: -math.inf if math.isnan(values[i]) else sign * values[i])
        at_selected = None
        if selected_epoch is not None and 1 <= selected_epoch <= len(values):
            at_selected = values[selected_epoch - 1]
        out[task] = {
            "metric": metric,
            "best_epoch": best + 1,
            "best_value": values[best],
            "selected_epoch": selected_epoch,
            "value_at_selected_epoch": at_selected,
        }
    return out
