"""What a ``MultiTaskModel`` accepts as features and labels, checked the same way on every Keras entry point.

:class:`ModelData` works at two levels, both reached by ``fit``, ``evaluate``, ``predict`` and the ``*_on_batch``
methods alike:

* before Keras' data adapters (:meth:`ModelData.features`, :meth:`ModelData.labels`): DataFrames and dicts of raw
  columns become validated numpy columns (``to_model_inputs``: an absent feature, text in a numeric column or a
  wrong dtype is named with its rows), label DataFrames and label lists in task order become dicts, and a dataset's
  element spec is checked;
* on tensors inside ``train_step`` / ``test_step`` / ``predict_step`` (:meth:`ModelData.check_feature_tensors`,
  :meth:`ModelData.label_dict`): whatever reached Keras another way (tensors, generators, custom loops) gets the
  same checks when Keras traces the step.

Example:
    >>> data = ModelData(ModelConfig(features=(FeatureSpec("price", "numeric"),)))
    >>> sorted(data.labels([[1.0], [0.0]]))
    ['click', 'satisfaction']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from mmoe_tf.config import ModelConfig
from mmoe_tf.model_inputs import input_dtype, to_model_inputs
from mmoe_tf.targets import trained_targets


def _is_frame(value: Any) -> bool:
    """A pandas DataFrame (checked without importing pandas)."""
    return hasattr(value, "columns") and hasattr(value, "to_numpy")


def _holds_tensors(value: Mapping[str, Any]) -> bool:
    return any(tf.is_tensor(v) for v in value.values())


def _dtype_fits(got: tf.DType, want: tf.DType) -> bool:
    """Whether a column of ``got`` feeds an input of ``want`` (Keras casts numbers to the input's dtype)."""
    if got == want:
        return True
    if want.is_floating:
        return got.is_floating or got.is_integer
    return want.is_integer and got.is_integer


class ModelData:
    """The feature and label checks and conversions of the model built from ``config``.

    Args:
        config: The model's ``ModelConfig``.
    """

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.feature_names = list(config.feature_names)
        self.task_names = [task.name for task in config.tasks]
        self.targets = [name for name, _ in trained_targets(config)]

    # ----- before Keras' data adapters ---------------------------------------------------------------------------
    def features(self, x: Any) -> Any:
        """``x`` as Keras should receive it: raw columns converted and checked, a dataset's spec checked."""
        if isinstance(x, tf.data.Dataset):
            spec = x.element_spec
            features = spec[0] if isinstance(spec, tuple) else spec
            if isinstance(features, Mapping):
                self.check_feature_tensors(features, what="dataset features")
            if isinstance(spec, tuple) and len(spec) > 1 and isinstance(spec[1], Mapping):
                self.check_label_keys(spec[1])
            return x
        if isinstance(x, Mapping) and _holds_tensors(x):
            self.check_feature_tensors(x)
            return x
        if isinstance(x, Mapping) or _is_frame(x):
            return to_model_inputs(self.config.features, x)
        return x

    def labels(self, y: Any) -> Any:
        """Labels as a dict keyed by target: a DataFrame's columns or a list in task order become one; keys checked."""
        if y is None:
            return None
        if _is_frame(y):
            y = {str(column): y[column].to_numpy() for column in y.columns}
        elif isinstance(y, (list, tuple)):
            y = self._by_task(y, "labels")
        if isinstance(y, Mapping):
            self.check_label_keys(y)
        return y

    def sample_weights(self, sample_weight: Any) -> Any:
        """Sample weights in the same forms as :meth:`labels` (DataFrame, list in task order or dict)."""
        if _is_frame(sample_weight):
            return {str(column): sample_weight[column].to_numpy() for column in sample_weight.columns}
        if isinstance(sample_weight, (list, tuple)):
            return self._by_task(sample_weight, "sample weights")
        return sample_weight

    # ----- on tensors, when Keras traces a step ------------------------------------------------------------------
    def check_feature_tensors(self, x: Any, what: str = "inputs") -> None:
        """``ValueError`` naming the feature when a dict of tensors (or specs) lacks one or has a wrong dtype."""
        if not isinstance(x, Mapping):
            return  # a list/tuple in input order: Keras' functional model checks it
        absent = [name for name in self.feature_names if name not in x]
        if absent:
            raise ValueError(f"{what} lack features {absent}; the model takes {self.feature_names}")
        for spec in self.config.features:
            got, want = tf.as_dtype(x[spec.name].dtype), input_dtype(spec)
            if not _dtype_fits(got, want):
                raise ValueError(f"{what}: feature {spec.name!r} has dtype {got.name}; expected {want.name}")

    def label_dict(self, y: Any) -> dict[str, Any]:
        """Labels (tensors, at trace time) as a dict keyed by target or task name, checked."""
        if isinstance(y, (list, tuple)):
            y = self._by_task(y, "labels")
        elif not isinstance(y, Mapping):
            if len(self.targets) != 1:
                raise ValueError(
                    "labels must be a dict keyed by task name, a list in task order "
                    f"{self.task_names} or a DataFrame; got one {type(y).__name__}"
                )
            y = {self.targets[0]: y}
        self.check_label_keys(y)
        for name, value in y.items():
            dtype = tf.as_dtype(value.dtype)
            if not (dtype.is_floating or dtype.is_integer or dtype.is_bool):
                raise ValueError(f"label {name!r} has dtype {dtype.name}; expected numbers")
        return dict(y)

    def weight_dict(self, sample_weight: Any) -> dict[str, Any] | None:
        """Sample weights (tensors) as a dict keyed like the labels, or ``None``."""
        if sample_weight is None or isinstance(sample_weight, Mapping):
            return sample_weight
        if isinstance(sample_weight, (list, tuple)):
            return self._by_task(sample_weight, "sample weights")
        if len(self.targets) == 1:
            return {self.targets[0]: sample_weight}
        raise ValueError(
            f"sample weights must be a dict keyed by task name or a list in task order {self.task_names}, "
            f"got one {type(sample_weight).__name__}"
        )

    # ----- shared ------------------------------------------------------------------------------------------------
    def check_label_keys(self, y: Mapping[str, Any]) -> None:
        """``ValueError`` listing the trained targets ``y`` cannot give (an ESMM joint label may be derived)."""
        missing = []
        for name, task in trained_targets(self.config):
            if name in y:
                continue
            parts = [task.name, task.conditional_on] if task.conditional_on else [name]
            if any(part not in y for part in parts):
                missing.append(name)
        if missing:
            raise ValueError(
                f"labels lack the trained targets {missing} (an ESMM joint label can be derived from its parent "
                f"and child labels); labels hold {sorted(y)}; the tasks are {self.task_names}"
            )

    def _by_task(self, values: list | tuple, what: str) -> dict[str, Any]:
        if len(values) != len(self.task_names):
            raise ValueError(
                f"{what} as a list must hold one column per task, in task order {self.task_names}; got {len(values)}"
            )
        pairs = zip(self.task_names, values, strict=True)
        return {name: np.asarray(v) if isinstance(v, list) else v for name, v in pairs}
