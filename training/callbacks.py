"""Keras callbacks of a training run: Keras's own, plus ones that log loss weights and the mean task AUC.

``make_callbacks`` returns, in order: :class:`LossWeightLogger` and :class:`MeanTaskAUC` (they must
precede the stoppers and loggers so their values reach them), :class:`MonitorCheck`,
``BackupAndRestore``, ``EarlyStopping(restore_best_weights=True)``, ``ModelCheckpoint``,
``TensorBoard`` and ``CSVLogger``. The progress bar comes from ``fit(verbose=...)``.

Model selection: the early-stopping / best-checkpoint monitor may be any logged metric; its direction
comes from its name (:func:`monitor_mode`: ``*auc`` up, ``*loss`` down). The built-in
``val_mean_task_auc`` is the mean of the binary tasks' validation AUCs, each on the task's observed
rows (the compiled AUC metrics are weighted by the label masks). An ESMM-conditional task is trained
and logged through its joint target (``<parent>_and_<task>``), whose AUC then stands in for it.

Example:
    >>> cbs = make_callbacks(run_dir, write_dir, train_config)  # doctest: +SKIP
    >>> model.fit(ds, epochs=3, callbacks=cbs)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf

import mmoe_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before tensorflow is used)
from training.config import TrainConfig

LOSS_WEIGHT_PREFIX = "loss_weight_"
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


class LossWeightLogger(tf.keras.callbacks.Callback):
    """Adds ``loss_weight_<task>`` (from ``mmoe_tf.current_loss_weights``) to each epoch's logs.

    The values then land in ``history.csv`` (CSVLogger), TensorBoard and ``History``. Fixed λ are
    logged too, so every run's history has the same columns.

    Raises:
        FloatingPointError: a learned weight became NaN/inf (training diverged).
    """

    def __init__(self) -> None:
        super().__init__()
        self.latest: dict[str, float] = {}

    def _weights(self) -> dict[str, float]:
        from mmoe_tf.losses import current_loss_weights

        return {task: float(value) for task, value in current_loss_weights(self.model).items()}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.latest = self._weights()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.latest = self._weights()
        bad = {t: w for t, w in self.latest.items() if not math.isfinite(w)}
        if bad:
            raise FloatingPointError(f"epoch {epoch + 1}: non-finite loss weights {bad}")
        if logs is not None:
            logs.update({f"{LOSS_WEIGHT_PREFIX}{task}": w for task, w in self.latest.items()})


class MeanTaskAUC(tf.keras.callbacks.Callback):
    """Adds ``mean_task_auc`` / ``val_mean_task_auc``: the mean of the binary tasks' logged AUCs.

    Each ``<task>_auc`` is the compiled, label-mask-weighted AUC, i.e. measured on the task's observed
    rows. A key is only added when every binary task's AUC is in the logs.

    Args:
        binary_tasks: Names of the binary tasks.

    Example:
        >>> cb = MeanTaskAUC(["click", "satisfaction"])
        >>> logs = {"val_click_auc": 0.8, "val_satisfaction_auc": 0.6}
        >>> cb.on_epoch_end(0, logs); round(logs["val_mean_task_auc"], 3)
        0.7
    """

    def __init__(self, binary_tasks: Sequence[str]) -> None:
        super().__init__()
        self.binary_tasks = list(binary_tasks)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None or not self.binary_tasks:
            return
        for prefix in ("", "val_"):
            keys = [f"{prefix}{task}_auc" for task in self.binary_tasks]
            if all(k in logs for k in keys):
                logs[f"{prefix}{MEAN_TASK_AUC}"] = float(sum(float(logs[k]) for k in keys) / len(keys))


class MonitorCheck(tf.keras.callbacks.Callback):
    """Fails after the first epoch, with the logged keys, when the monitored metric is not logged.

    (Keras's own callbacks only warn and then never stop or save.)

    Raises:
        ValueError: ``monitor`` is missing from the first epoch's logs.
    """

    def __init__(self, monitor: str, setting: str = "train.early_stopping.monitor") -> None:
        super().__init__()
        self.monitor, self.setting = monitor, setting
        self._checked = False

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._checked or logs is None:
            return
        self._checked = True
        if self.monitor not in logs:
            raise ValueError(f"{self.setting}: {self.monitor!r} is not a logged metric; logged: {sorted(logs)}")


def make_callbacks(
    run_dir: str | pathlib.Path,
    own_dir: str | pathlib.Path,
    train: TrainConfig,
    has_validation: bool = True,
    binary_tasks: Sequence[str] = (),
) -> list[tf.keras.callbacks.Callback]:
    """The run's callbacks.

    Args:
        run_dir: The run folder. Keras's multi-worker-aware callbacks (BackupAndRestore,
            ModelCheckpoint, TensorBoard) get paths in it and redirect non-chief workers themselves.
        own_dir: Where this process writes its own files (``history.csv``): ``run_dir`` for the chief,
            a temp dir for other workers.
        train: The ``train`` section (early stopping settings).
        has_validation: Whether ``fit`` gets validation data (else monitors fall back to training twins).
        binary_tasks: Names of the binary trained targets (``mmoe_tf.targets.trained_targets``), for
            ``mean_task_auc``.

    Returns:
        The callback list, LossWeightLogger first.
    """
    run_dir, own_dir = pathlib.Path(run_dir), pathlib.Path(own_dir)
    monitor = resolve_monitor(train.early_stopping.monitor, binary_tasks, has_validation)
    mode = monitor_mode(monitor)
    callbacks: list[tf.keras.callbacks.Callback] = [
        LossWeightLogger(),
        MeanTaskAUC(binary_tasks),
        MonitorCheck(monitor),
        tf.keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False),
    ]
    if train.early_stopping.patience > 0:
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(
                monitor=monitor,
                mode=mode,
                patience=train.early_stopping.patience,
                min_delta=train.early_stopping.min_delta,
                restore_best_weights=True,
                verbose=1 if train.verbose else 0,
            )
        )
    callbacks += [
        tf.keras.callbacks.ModelCheckpoint(
            str(run_dir / "checkpoints" / "best.weights.h5"),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            save_weights_only=True,
        ),
        tf.keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False, profile_batch=0),
        tf.keras.callbacks.CSVLogger(str(own_dir / "history.csv"), append=True),
    ]
    return callbacks
