"""Keras callbacks of a training run: Keras's own, plus one that logs the per-task loss weights.

``make_callbacks`` returns, in order: :class:`LossWeightLogger` (must precede the loggers so its
values reach them), ``BackupAndRestore``, ``EarlyStopping(restore_best_weights=True)``,
``ModelCheckpoint``, ``TensorBoard`` and ``CSVLogger``. The progress bar comes from ``fit(verbose=...)``.

Example:
    >>> cbs = make_callbacks(run_dir, write_dir, train_config)  # doctest: +SKIP
    >>> model.fit(ds, epochs=3, callbacks=cbs)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import tensorflow as tf

import mmoe_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before tensorflow is used)
from training.config import TrainConfig

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


def make_callbacks(
    run_dir: str | pathlib.Path, own_dir: str | pathlib.Path, train: TrainConfig, has_validation: bool = True
) -> list[tf.keras.callbacks.Callback]:
    """The run's callbacks.

    Args:
        run_dir: The run folder. Keras's multi-worker-aware callbacks (BackupAndRestore,
            ModelCheckpoint, TensorBoard) get paths in it and redirect non-chief workers themselves.
        own_dir: Where this process writes its own files (``history.csv``): ``run_dir`` for the chief,
            a temp dir for other workers.
        train: The ``train`` section (early stopping settings).
        has_validation: Whether ``fit`` gets validation data (else monitors fall back to ``loss``).

    Returns:
        The callback list, LossWeightLogger first.
    """
    run_dir, own_dir = pathlib.Path(run_dir), pathlib.Path(own_dir)
    monitor = train.early_stopping.monitor
    if not has_validation and monitor.startswith("val_"):
        monitor = monitor[len("val_") :]
    callbacks: list[tf.keras.callbacks.Callback] = [
        LossWeightLogger(),
        tf.keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False),
    ]
    if train.early_stopping.patience > 0:
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(
                monitor=monitor,
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
            save_best_only=True,
            save_weights_only=True,
        ),
        tf.keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False, profile_batch=0),
        tf.keras.callbacks.CSVLogger(str(own_dir / "history.csv"), append=True),
    ]
    return callbacks
