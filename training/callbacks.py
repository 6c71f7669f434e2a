"""Keras callbacks of a training run: Keras's own, plus ones that log loss weights and the mean task AUC.

``make_callbacks`` returns, in order: :class:`LossWeightLogger` and :class:`MeanTaskAUC` (they must
precede the stoppers and loggers so their values reach them), :class:`MonitorCheck`,
``BackupAndRestore``, ``EarlyStopping(restore_best_weights=True)``, ``ModelCheckpoint``,
``TensorBoard`` and ``CSVLogger``. The progress bar comes from ``fit(verbose=...)``.

Model selection: the early-stopping / best-checkpoint monitor may be any logged metric; its direction
comes from its name (:func:`training.monitor.monitor_mode`, re-exported here: ``*auc`` up, ``*loss`` down). The built-in
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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import tensorflow as tf

import mmoe_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before tensorflow is used)
from training.monitor import (
    DEFAULT_MONITOR,
    MEAN_TASK_AUC,
    monitor_mode,
    per_task_best_epochs,
    resolve_monitor,
    select_epoch,
)

if TYPE_CHECKING:
    from training.config import TrainConfig

__all__ = [
    "DEFAULT_MONITOR",
    "LOSS_WEIGHT_PREFIX",
    "MEAN_TASK_AUC",
    "LossWeightLogger",
    "MeanTaskAUC",
    "MonitorCheck",
    "make_callbacks",
    "monitor_mode",
    "per_task_best_epochs",
    "resolve_monitor",
    "select_epoch",
]

LOSS_WEIGHT_PREFIX = "loss_weight_"


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
