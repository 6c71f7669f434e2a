"""Multi-task ranking models built from a ``ModelConfig``: MMoE, OMoE, PLE, shared-bottom and single-task.

The model is a functional Keras model subclass, ``MultiTaskModel`` (its graph: ``mmoe_tf.architectures``), whose
config is the ``ModelConfig`` plus the adapted feature state: it is saved and re-created without re-adapting. Its
own losses (fixed λ or learned uncertainty weights, ESMM joint targets, masked labels) are computed by
:meth:`MultiTaskModel.compute_loss`; a ``compile(loss=...)`` of the user's replaces them with Keras' compiled loss.

Example:
    >>> config = ModelConfig(features=(FeatureSpec("price", "numeric"),), num_experts=2, expert_units=(8,))
    >>> model = build_model(config, adapt_data={"price": np.array([1.0, 2.0, 3.0])})
    >>> sorted(model.predict({"price": np.array([1.5])}, verbose=0))
    ['click', 'satisfaction']
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from mmoe_tf.architectures import build_graph, mmoe_layer_name, ple_layer_name
from mmoe_tf.compiling import compile_model, loss_signature, own_loss_arguments, strip_output_prefix
from mmoe_tf.config import ModelConfig
from mmoe_tf.entry_points import DEFAULT_PREDICT_BATCH_SIZE, DataEntryPoints
from mmoe_tf.feature_state import adapt_state, keep_untracked, needs_adapting, plain_copy
from mmoe_tf.layers.mmoe_block import grouped_inference
from mmoe_tf.losses import UncertaintyWeighting, make_loss
from mmoe_tf.model_data import ModelData
from mmoe_tf.targets import add_joint_targets, task_order, trained_targets
from mmoe_tf.threads import adopt_default_cpu_threads

__all__ = [
    "DEFAULT_PREDICT_BATCH_SIZE",
    "MultiTaskModel",
    "build_model",
    "compile_model",
    "mmoe_layer_name",
    "ple_layer_name",
]


def _weighted_mean_loss(
    loss: tf.keras.losses.Loss, labels: tf.Tensor, predictions: tf.Tensor, weights: tf.Tensor
) -> tf.Tensor:
    """``Σ_b w_b · loss_b / B``: what calling ``loss`` with ``sample_weight`` returns, in fewer ops.

    ``loss.call`` gives the per-row loss (a sigmoid head's cross-entropy is computed from its logits,
    as Keras does); the weighted sum over the per-replica batch replaces Keras' reduction wrapper,
    whose shape checks and broadcasting asserts cost ≈ 60 graph ops per target in a training step.
    """
    per_row = loss.call(labels, predictions)
    return tf.reduce_sum(per_row * weights) / tf.cast(tf.shape(per_row)[0], per_row.dtype)


_OWN_LOSS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # compiled loss container -> uses own loss


@tf.keras.utils.register_keras_serializable(package="mmoe_tf")
class MultiTaskModel(DataEntryPoints):
    """Functional multi-task model built from a ``ModelConfig`` and adapted feature state.

    Use :func:`build_model` rather than constructing it directly (it adapts the state from data). It is a
    ``tf.keras.Model``: its own code is Keras' extension points (``train_step``, ``test_step``,
    ``predict_step``, ``compute_loss``, ``compute_metrics``, ``metrics``, ``get_config`` / ``from_config``,
    ``compile_from_config``); its data entry points check data through ``mmoe_tf.model_data``
    (``mmoe_tf.entry_points``).

    Args:
        model_config: ``ModelConfig`` (or its dict).
        feature_state: Adapted preprocessing state from ``mmoe_tf.feature_state.adapt_state``.

    Losses (:meth:`compute_loss`), unless ``compile`` was given other losses than the config's: one per
    trained target (the task's own output, or its ESMM joint output); labels that are NaN/inf count as
    unobserved (weight 0, label 0) so masked rows never affect the loss; a missing ESMM joint label is
    derived with ``add_joint_targets``. The total is ``Σ λ_i L_i`` (``fixed``) or the uncertainty-weighted
    sum (``uncertainty``, see ``mmoe_tf.losses``), plus regularisation losses. Logged: ``loss`` and
    ``<target>_loss``. Under a ``tf.distribute`` strategy with n replicas the returned loss is divided by
    n, like Keras' compiled losses. Labels may be a dict keyed by task (or target), a list in task order
    or a DataFrame.
    """

    def __init__(
        self,
        model_config: ModelConfig | Mapping[str, Any],
        feature_state: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        config = model_config if isinstance(model_config, ModelConfig) else ModelConfig.from_dict(model_config)
        task_order(config)  # validates conditional_on cycles
        state = {name: dict(value) for name, value in (feature_state or {}).items()}
        inputs, outputs = build_graph(config, state)
        kwargs.setdefault("name", config.architecture)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self._mmoe_config = config
        keep_untracked(self, "_feature_state_plain", state)
        self.model_data = ModelData(config)
        targets = trained_targets(config)
        self._targets = [name for name, _ in targets]
        self._target_losses = {name: make_loss(task) for name, task in targets}
        self._fixed_weights = {name: task.loss_weight for name, task in targets}
        own_losses, own_weights = own_loss_arguments(config)
        self._own_loss_signature = ({k: loss_signature(v) for k, v in own_losses.items()}, own_weights)
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")
        self.target_loss_trackers = [tf.keras.metrics.Mean(name=f"{name}_loss") for name in self._targets]
        self.loss_balancer = None
        if config.loss_balancing == "uncertainty":
            learned = [(name, task) for name, task in targets if task.loss_weight > 0]
            if not learned:
                raise ValueError("ModelConfig: field 'tasks' has no task with loss_weight > 0 to balance")
            self.loss_balancer = UncertaintyWeighting(
                [name for name, _ in learned], [task.type for _, task in learned], name="loss_balancer"
            )
            self.loss_balancer.build(None)

    @property
    def mmoe_config(self) -> ModelConfig:
        """The ``ModelConfig`` this model was built from."""
        return self._mmoe_config

    @property
    def feature_state(self) -> dict[str, Any]:
        """The adapted preprocessing state (vocabularies, means, variances) keyed by feature name."""
        return plain_copy(self._feature_state_plain)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "model_config": self._mmoe_config.to_dict(),
            "feature_state": plain_copy(self._feature_state_plain),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any], custom_objects: Any = None) -> MultiTaskModel:
        config = dict(config)
        trainable = config.pop("trainable", True)
        model = cls(**config)
        model.trainable = trainable
        return model

    def compile_from_config(self, config: Mapping[str, Any]) -> None:
        """Keras' ``compile_from_config`` with per-output metric names as they were (``click_auc``, not
        ``click_click_auc``): a saved config holds the names Keras prefixed, and compiling prefixes them again."""
        config = dict(config)
        for key in ("metrics", "weighted_metrics"):
            config[key] = strip_output_prefix(config.get(key))
        super().compile_from_config(config)

    # ----- losses ----------------------------------------------------------------------------------------------
    def uses_own_loss(self) -> bool:
        """Whether :meth:`compute_loss` computes the config's losses: compiled with no loss, or the config's own.

        After ``compile(loss=...)`` with other losses or loss weights, Keras' compiled loss runs instead.
        """
        compiled = getattr(self, "compiled_loss", None)
        if compiled is None:
            return True
        if compiled not in _OWN_LOSS:
            try:
                weights = (self.get_compile_config() or {}).get("loss_weights")
            except ValueError:  # Keras cannot serialise its compile arguments while saving a SavedModel
                weights = None
            loss = self.loss
            own_losses, own_weights = self._own_loss_signature
            if not loss:
                own = not weights
            else:
                losses = {k: loss_signature(v) for k, v in loss.items()} if isinstance(loss, Mapping) else loss
                own = losses == own_losses and (weights is None or dict(weights) == own_weights)
            _OWN_LOSS[compiled] = own
        return _OWN_LOSS[compiled]

    def _prepare_targets(self, y: Any, sample_weight: Any) -> tuple[dict, dict]:
        """Labels ``[B, 1]`` and weights ``[B]`` (float32) for every trained target, unobserved masked."""
        y, sample_weight = self._joint_labels(y, sample_weight)
        labels, weights = {}, {}
        for name in self._targets:
            label = tf.reshape(tf.cast(y[name], tf.float32), [-1, 1])
            weight = None if sample_weight is None else sample_weight.get(name)
            weight = tf.ones_like(label[:, 0]) if weight is None else tf.reshape(tf.cast(weight, tf.float32), [-1])
            seen = tf.math.is_finite(label[:, 0])
            weights[name] = tf.where(seen, weight, tf.zeros_like(weight))
            labels[name] = tf.where(seen[:, tf.newaxis], label, tf.zeros_like(label))
        return labels, weights

    def _joint_labels(self, y: Any, sample_weight: Any) -> tuple[dict, Any]:
        """Labels and weights as dicts keyed by target, ESMM joint labels derived where absent."""
        y = self.model_data.label_dict(y)
        sample_weight = self.model_data.weight_dict(sample_weight)
        if any(name not in y for name in self._targets):
            y, sample_weight = add_joint_targets(self._mmoe_config, y, sample_weight)
        return y, sample_weight

    def compute_loss(
        self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None
    ) -> tf.Tensor | None:
        if y is None:
            return None
        if not self.uses_own_loss():
            y, sample_weight = self._joint_labels(y, sample_weight)
            outputs = set(self.output_names)
            y = {k: v for k, v in y.items() if k in outputs}
            sample_weight = None if sample_weight is None else {k: v for k, v in sample_weight.items() if k in y}
            return super().compute_loss(x, y, y_pred, sample_weight)
        labels, weights = self._prepare_targets(y, sample_weight)
        per_target = {}
        batch = tf.shape(labels[self._targets[0]])[0]
        for name, tracker in zip(self._targets, self.target_loss_trackers, strict=True):
            loss = _weighted_mean_loss(self._target_losses[name], labels[name], y_pred[name], weights[name])
            tracker.update_state(loss, sample_weight=batch)
            per_target[name] = loss
        if self.loss_balancer is not None:
            total = self.loss_balancer.combine([per_target[n] for n in self.loss_balancer.target_names])
        else:
            total = tf.add_n([self._fixed_weights[n] * per_target[n] for n in self._targets])
        if self.losses:
            total += tf.add_n(self.losses)
        self.loss_tracker.update_state(total, sample_weight=batch)
        # Gradients are summed over replicas: each replica contributes its per-replica mean / n (as Keras does).
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return total / replicas if replicas > 1 else total

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any) -> dict[str, Any]:
        if y is not None:
            if self.uses_own_loss():
                y, sample_weight = self._prepare_targets(y, sample_weight)
            else:
                y, sample_weight = self._joint_labels(y, sample_weight)
        return super().compute_metrics(x, y, y_pred, sample_weight)

    @property
    def metrics(self) -> list[tf.keras.metrics.Metric]:
        own = [self.loss_tracker, *self.target_loss_trackers]
        others = [m for m in super().metrics if all(m is not o for o in own)]
        if not self.uses_own_loss():
            return others
        names = {m.name for m in own}  # a reloaded model's compiled-loss trackers carry the same names, never updated
        return own + [m for m in others if m.name not in names]

    # ----- the steps -------------------------------------------------------------------------------------------
    def train_step(self, data: Any) -> dict[str, Any]:
        """Keras' training step; with ``train_split_rows`` set, a batch that large runs forward as two halves.

        The halves' outputs are concatenated before the loss, so the loss, the gradient and the metric updates
        are the whole batch's (up to float rounding). The two halves are independent chains of ops that
        TensorFlow's inter-op threads run side by side (docs/performance.md, Design decisions).
        """
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        self.model_data.check_feature_tensors(x)
        if not self._splits_training_batches():
            return super().train_step(data)
        with tf.GradientTape() as tape:
            y_pred = self._forward_in_halves(x, self._mmoe_config.train_split_rows)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        if loss is None:
            raise ValueError("fit: no labels to compute a loss from; pass y (a dict keyed by task name)")
        self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def test_step(self, data: Any) -> dict[str, Any]:
        """Keras' evaluation step, with the experts in groups (:func:`mmoe_tf.layers.mmoe_block.grouped_inference`)."""
        self.model_data.check_feature_tensors(tf.keras.utils.unpack_x_y_sample_weight(data)[0])
        with grouped_inference():
            return super().test_step(data)

    def predict_step(self, data: Any) -> Any:
        """Keras' prediction step, with the experts in groups; exported signatures keep one group."""
        self.model_data.check_feature_tensors(tf.keras.utils.unpack_x_y_sample_weight(data)[0])
        with grouped_inference():
            return super().predict_step(data)

    def _splits_training_batches(self) -> bool:
        """Whether :meth:`train_step` splits large batches: enabled, no batch normalisation, no GPU (read when
        Keras traces the step)."""
        if self._mmoe_config.train_split_rows <= 0:
            return False
        if any(isinstance(module, tf.keras.layers.BatchNormalization) for module in self.submodules):
            return False  # each half would normalise with its own batch statistics
        return not tf.config.list_logical_devices("GPU")  # one device stream: the halves would only queue

    def _forward_in_halves(self, x: Any, min_rows: int) -> dict[str, tf.Tensor]:
        """The training-mode outputs of ``x``, computed as two halves when it has ``min_rows`` rows or more.

        A smaller batch goes whole through the first call and leaves the second an empty batch, so one graph
        serves every batch size; the empty call's ops are what makes splitting a loss below the threshold.
        """
        rows = tf.shape(tf.nest.flatten(x)[0])[0]
        cut = tf.where(rows >= min_rows, rows // 2, rows)
        first = self(tf.nest.map_structure(lambda t: t[:cut], x), training=True)
        second = self(tf.nest.map_structure(lambda t: t[cut:], x), training=True)
        return tf.nest.map_structure(lambda a, b: tf.concat([a, b], axis=0), first, second)

    def _lookup_dependency(self, name: str, cached_dependencies: Any = None) -> Any:
        """Keras' checkpoint-dependency lookup, without its layer scan for names that cannot be layers.

        Private, kept for speed: Keras calls it for every trackable attribute it sets (``predict_function`` on
        each ``predict`` / ``evaluate``), and the functional model's version first lists every layer with weights
        (≈ 36 ms a call on the benchmark model) although only ``layer-N`` / ``layer_with_weights-N`` names can
        match one; other names go straight to the layer-level lookup it falls back to, so the result is the same.
        """
        if not cached_dependencies and not name.startswith("layer"):
            return tf.keras.layers.Layer._lookup_dependency(self, name)
        return super()._lookup_dependency(name, cached_dependencies)


# HDF5 model files name the class without its registered package: found under its bare name too.
tf.keras.utils.get_custom_objects().setdefault("MultiTaskModel", MultiTaskModel)


def build_model(
    config: ModelConfig | Mapping[str, Any], adapt_data: Mapping[str, Any] | Any = None, compile: bool = True
) -> MultiTaskModel:
    """Build (and by default compile) the multi-task model described by ``config``.

    Args:
        config: The model description; ``config.architecture`` picks ``mmoe``, ``omoe``, ``ple``,
            ``shared_bottom`` or ``single_task``.
        adapt_data: Raw feature columns keyed by feature name (dict of arrays or DataFrame), used
            to adapt normalisers and vocabularies; required when any feature needs adapting.
        compile: Whether to compile with the config's optimizer, losses and metrics.

    In a process where TensorFlow has not run yet and no thread counts were chosen, it sets one
    thread per op for the process, as the CLI does (``mmoe_tf.threads.adopt_default_cpu_threads``;
    ``TF_NUM_INTRAOP_THREADS=0`` keeps TensorFlow's defaults).

    Returns:
        A ``MultiTaskModel`` with one input per feature and outputs ``{name: [B, 1]}`` for
        every name in ``config.output_names``.

    Raises:
        ValueError: invalid config (naming the field), missing or bad adapt data (naming the feature).

    Example:
        >>> model = build_model(config, adapt_data=train_df)
        >>> model.fit(dataset, epochs=1)
    """
    if isinstance(config, Mapping):
        config = ModelConfig.from_dict(config)
    if not isinstance(config, ModelConfig):
        raise ValueError(f"build_model: config must be a ModelConfig or its dict, got {type(config).__name__}")
    task_order(config)
    adopt_default_cpu_threads()
    pending = needs_adapting(config.features)
    if pending and adapt_data is None:
        raise ValueError(f"build_model: features {pending} need adapt_data (raw columns keyed by feature name)")
    state = adapt_state(config.features, adapt_data) if pending else {f.name: {} for f in config.features}
    model = MultiTaskModel(config, state)
    return compile_model(model) if compile else model
