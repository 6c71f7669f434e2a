"""Model selection inside the experiments: several early-stopping monitors from one training run.

:class:`MonitorTracker` applies Keras's early-stopping rule (:func:`training.callbacks.select_epoch`)
to several monitors at once. Training goes on until every monitor would have stopped (or the epoch
cap), and an optional ``score_fn`` records the test metrics after every epoch, so the test score each
monitor would have restored is read off exactly, from one run instead of one run per monitor. The
primary monitor's best weights are restored at the end, as ``EarlyStopping(restore_best_weights=True)``
would.

Example:
    >>> tracker = MonitorTracker(["val_mean_task_auc", "val_loss"], patience=3)  # doctest: +SKIP
    >>> model.fit(ds, validation_data=val, epochs=30, callbacks=[MeanTaskAUC(["click"]), tracker])  # doctest: +SKIP
    >>> tracker.selected("val_loss")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

import mmoe_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is used)
from training.callbacks import monitor_mode, select_epoch


class MonitorTracker(tf.keras.callbacks.Callback):
    """Early stopping on ``monitors[0]`` that also tracks where the other monitors would have stopped.

    Args:
        monitors: Log keys; the first is primary (its best weights are restored at the end).
        patience: Keras ``EarlyStopping`` patience for every monitor (>= 1).
        score_fn: Optional ``model -> {name: value}`` called after every epoch (e.g. test metrics).

    Raises:
        ValueError: a monitor is missing from the first epoch's logs, or its direction is unknown.
    """

    def __init__(
        self,
        monitors: Sequence[str],
        patience: int,
        score_fn: Callable[[tf.keras.Model], dict[str, float]] | None = None,
    ) -> None:
        super().__init__()
        if not monitors or patience < 1:
            raise ValueError(f"MonitorTracker: need >= 1 monitor and patience >= 1, got {monitors!r}, {patience}")
        self.monitors = list(dict.fromkeys(monitors))
        self.modes = {m: monitor_mode(m) for m in self.monitors}
        self.patience = patience
        self.score_fn = score_fn
        self.logs: list[dict[str, float]] = []
        self.scores: list[dict[str, float]] = []
        self._best_weights: list[Any] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.logs, self.scores, self._best_weights = [], [], None

    def values(self, monitor: str) -> list[float]:
        """The monitor's value per epoch so far."""
        return [float(epoch_logs[monitor]) for epoch_logs in self.logs]

    def selected(self, monitor: str) -> tuple[int, int | None]:
        """``(best_epoch, stopped_epoch)`` (0-based) the monitor's early stopping gives on the epochs run."""
        return select_epoch(self.values(monitor), self.modes[monitor], self.patience)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = dict(logs or {})
        missing = [m for m in self.monitors if m not in logs]
        if missing:
            raise ValueError(f"monitor(s) {missing} not logged; logged: {sorted(logs)}")
        self.logs.append({k: float(v) for k, v in logs.items()})
        if self.score_fn is not None:
            self.scores.append(dict(self.score_fn(self.model)))
        if self.selected(self.monitors[0])[0] == len(self.logs) - 1:
            self._best_weights = self.model.get_weights()
        if all(self.selected(m)[1] is not None for m in self.monitors):
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._best_weights is not None:
            self.model.set_weights(self._best_weights)
