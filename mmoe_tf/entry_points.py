"""The data entry points of a ``MultiTaskModel``: every one hands its data to the same :class:`ModelData` first.

Keras 2 has no public hook between a call such as ``model.fit(df, labels)`` and its data adapters, and a DataFrame
(or a dict of raw columns holding missing values) cannot reach ``train_step``: Keras' adapter would turn it into one
tensor, or fail to. Its adapter list (``data_adapter.ALL_ADAPTER_CLS``) is private and process-wide: an adapter
registered there would change how every other Keras model in the process reads a DataFrame. So ``fit``,
``evaluate``, ``predict`` and the three ``*_on_batch`` methods each do exactly one thing before calling Keras' own
method: pass ``x`` / ``y`` / ``sample_weight`` (and validation data) through :meth:`DataEntryPoints.conformed`, and
run one step per execution when the data is a single batch or a dataset whose size Keras cannot infer. Everything
else is Keras'. Weights files get a config sidecar (``mmoe_tf.saving``) from ``save_weights`` (so also from
``ModelCheckpoint(save_weights_only=True)``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from mmoe_tf.batches import batches_per_pass, shuffled_batches, table_batches, table_order_batches
from mmoe_tf.model_data import ModelData
from mmoe_tf.saving import check_weights_sidecar, write_weights_sidecar

DEFAULT_PREDICT_BATCH_SIZE = 32  # tf.keras.Model's batch_size when none is given


def _plain_columns(x: Any) -> bool:
    """True for a non-empty dict of equal-length 1-D numpy arrays (what ``to_model_inputs`` returns)."""
    if not isinstance(x, dict) or not x or not all(isinstance(v, np.ndarray) and v.ndim == 1 for v in x.values()):
        return False
    return len({len(v) for v in x.values()}) == 1 and len(next(iter(x.values()))) > 0


def _columns_of(value: Any, rows: int) -> bool:
    """A dict of 1-D numpy arrays of ``rows`` rows each."""
    return isinstance(value, Mapping) and all(
        isinstance(v, np.ndarray) and v.ndim == 1 and len(v) == rows for v in value.values()
    )


def _floatx(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float columns as float32, as Keras' numpy adapter converts them."""
    return {k: v.astype(np.float32) if v.dtype.kind == "f" and v.dtype != np.float32 else v for k, v in columns.items()}


def _unsized(x: Any, steps: Any) -> bool:
    """A dataset whose number of batches Keras cannot infer, given without a step count."""
    return steps is None and isinstance(x, tf.data.Dataset) and int(x.cardinality()) == int(tf.data.UNKNOWN_CARDINALITY)


class DataEntryPoints(tf.keras.Model):
    """``tf.keras.Model`` whose data entry points conform their data with ``self.model_data`` (a ``ModelData``)."""

    model_data: ModelData

    def conformed(self, x: Any, y: Any = None, sample_weight: Any = None) -> tuple[Any, Any, Any]:
        """``(x, y, sample_weight)`` as Keras should receive them (see ``mmoe_tf.model_data``)."""
        data = self.model_data
        return data.features(x), data.labels(y), data.sample_weights(sample_weight)

    def _conform_call(self, x: Any, y: Any, kwargs: dict[str, Any]) -> tuple[Any, Any]:
        x, y, sample_weight = self.conformed(x, y, kwargs.get("sample_weight"))
        if sample_weight is not None:
            kwargs["sample_weight"] = sample_weight
        return x, y

    @contextlib.contextmanager
    def _one_step_per_execution(self, needed: bool) -> Iterator[None]:
        """Run one step per Keras execution while ``needed`` (a single batch, or a dataset of unknown size).

        Keras' multi-step functions read ``steps_per_execution`` when they run, so all three are made first (while
        it is > 1) and the value is 1 just for this call, as Keras' own data handler sets it for an epoch's last
        steps; with more steps per execution, one batch would leave Keras reading past its end.
        """
        # Private: Keras keeps the compiled steps_per_execution only in this variable (no public setter).
        spe = getattr(self, "_steps_per_execution", None)
        if not needed or spe is None or int(spe.numpy()) == 1:
            yield
            return
        self.make_train_function()
        self.make_test_function()
        self.make_predict_function()
        original = int(spe.numpy())
        spe.assign(1)
        try:
            yield
        finally:
            spe.assign(original)

    def _fit_columns(self, x: Any, y: Any, args: tuple, kwargs: dict[str, Any]) -> tf.data.Dataset | None:
        """``fit``'s columns (a dict or DataFrame) as a dataset of Keras' own batches, or ``None`` to leave them to
        Keras' numpy adapter (class weights, a step count, ``shuffle="batch"``, positional arguments).

        The same rows per batch as Keras: ``batch_size`` (32 when not given), shuffled each epoch unless
        ``shuffle=False``, ``validation_split``'s last rows held out; cut by :mod:`mmoe_tf.batches` (one gather
        or slice per dtype) and, over several epochs, repeated with ``steps_per_epoch`` one pass (one iterator for
        the whole ``fit``), as ``data.make_dataset`` feeds the CLI: Keras' adapter slices every column per batch.
        """
        weights = kwargs.get("sample_weight")
        shuffle = kwargs.get("shuffle", True)
        if args or kwargs.get("class_weight") or kwargs.get("steps_per_epoch") is not None or shuffle not in (0, 1):
            return None
        if not _plain_columns(x):
            return None
        rows = len(next(iter(x.values())))
        if not _columns_of(y, rows) or (weights is not None and not _columns_of(weights, rows)):
            return None
        elements: tuple = (x, _floatx(y)) if weights is None else (x, _floatx(y), _floatx(weights))
        batch_size = kwargs.pop("batch_size", None) or DEFAULT_PREDICT_BATCH_SIZE
        split = kwargs.pop("validation_split", 0.0) or 0.0
        if split and kwargs.get("validation_data") is None:
            cut = math.floor(rows * (1.0 - split))
            if cut in (0, rows):
                raise ValueError(f"validation_split={split} leaves no rows to train or to validate on ({rows} rows)")
            held_out = tf.nest.map_structure(lambda a: a[cut:], elements)
            kwargs["validation_data"] = table_batches(held_out, kwargs.get("validation_batch_size") or batch_size)
            elements = tf.nest.map_structure(lambda a: a[:cut], elements)
            rows = cut
        kwargs.pop("sample_weight", None)
        kwargs.pop("shuffle", None)
        repeat = kwargs.get("epochs", 1) - kwargs.get("initial_epoch", 0) > 1
        if repeat:
            kwargs["steps_per_epoch"] = batches_per_pass(rows, batch_size)
        if shuffle:
            return shuffled_batches(elements, batch_size, repeat)
        return table_batches(elements, batch_size, repeat)

    def fit(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any) -> tf.keras.callbacks.History:
        x, y = self._conform_call(x, y, kwargs)
        columns = self._fit_columns(x, y, args, kwargs)
        if columns is not None:
            x, y = columns, None
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)):
            validation = tuple(self.conformed(*validation))
            kwargs["validation_data"] = validation if validation[2] is not None else validation[:2]
        elif validation is not None:
            kwargs["validation_data"] = self.conformed(validation)[0]
        validation = kwargs.get("validation_data")
        validation_x = validation[0] if isinstance(validation, tuple) else validation
        unsized = _unsized(x, kwargs.get("steps_per_epoch")) or _unsized(validation_x, kwargs.get("validation_steps"))
        with self._one_step_per_execution(unsized):
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any) -> Any:
        x, y = self._conform_call(x, y, kwargs)
        with self._one_step_per_execution(_unsized(x, kwargs.get("steps"))):
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """Keras' ``predict``; columns (a dict or DataFrame) are cut into batches of ``batch_size`` rows (32 when not
        given) by :func:`mmoe_tf.batches.table_order_batches`: Keras' own batches, so its outputs, in less time."""
        x = self.conformed(x)[0]
        if not args and kwargs.get("steps") is None and _plain_columns(x):
            x = table_order_batches(x, kwargs.pop("batch_size", None) or DEFAULT_PREDICT_BATCH_SIZE)
        with self._one_step_per_execution(_unsized(x, kwargs.get("steps"))):
            return super().predict(x, *args, **kwargs)

    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, *args: Any, **kwargs: Any) -> Any:
        x, y, sample_weight = self.conformed(x, y, sample_weight)
        with self._one_step_per_execution(True):
            return super().train_on_batch(x, y, sample_weight, *args, **kwargs)

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, *args: Any, **kwargs: Any) -> Any:
        x, y, sample_weight = self.conformed(x, y, sample_weight)
        with self._one_step_per_execution(True):
            return super().test_on_batch(x, y, sample_weight, *args, **kwargs)

    def predict_on_batch(self, x: Any) -> Any:
        with self._one_step_per_execution(True):
            return super().predict_on_batch(self.conformed(x)[0])

    def save_weights(self, filepath: Any, *args: Any, **kwargs: Any) -> Any:
        """Keras' ``save_weights`` plus a ``<filepath>.mmoe.json`` sidecar holding the model's config."""
        result = super().save_weights(filepath, *args, **kwargs)
        write_weights_sidecar(self, filepath)
        return result

    def load_weights(self, filepath: Any, *args: Any, **kwargs: Any) -> Any:
        """Keras' ``load_weights`` after checking the sidecar's config (``ValueError`` naming what differs)."""
        check_weights_sidecar(self, filepath)
        return super().load_weights(filepath, *args, **kwargs)
