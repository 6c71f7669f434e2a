"""Multi-task ranking models built from a ``ModelConfig``: MMoE, OMoE, PLE, shared-bottom and single-task.

All five architectures share the same feature handling (``FeatureEncoder``) and the same towers,
so comparisons between them are fair. The model is a functional Keras model subclass,
``MultiTaskModel``, whose config is the ``ModelConfig`` plus the adapted feature state: it is
saved and re-created without re-adapting, and its losses (fixed λ or learned uncertainty weights,
ESMM joint targets, masked labels) are computed by :meth:`MultiTaskModel.compute_loss`.

Example:
    >>> config = ModelConfig(features=(FeatureSpec("price", "numeric"),), num_experts=2, expert_units=(8,))
    >>> model = build_model(config, adapt_data={"price": np.array([1.0, 2.0, 3.0])})
    >>> sorted(model.predict({"price": np.array([1.5])}, verbose=0))
    ['click', 'satisfaction']
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from mmoe_tf.batches import table_order_batches
from mmoe_tf.config import ModelConfig, joint_output_name
from mmoe_tf.features import (
    FeatureEncoder,
    adapt_state,
    input_dtype,
    make_inputs,
    needs_adapting,
    plain_copy,
    to_model_inputs,
)
from mmoe_tf.layers import CGC, CrossExpertBank, MMoE
from mmoe_tf.layers._common import derive_seed
from mmoe_tf.losses import UncertaintyWeighting, make_loss
from mmoe_tf.optimizers import FusedAdam
from mmoe_tf.saving import check_weights_sidecar, write_weights_sidecar
from mmoe_tf.targets import add_joint_targets, task_order, trained_targets
from mmoe_tf.towers import MLP, Tower


def mmoe_layer_name(level: int) -> str:
    """Name of the MMoE/OMoE block at ``level`` (0-based) inside a built model."""
    return f"mmoe_{level}"


def ple_layer_name(level: int) -> str:
    """Name of the PLE extraction level (a ``CGC`` layer) at ``level`` (0-based) inside a built model."""
    return f"ple_{level}"


def _bottom(config: ModelConfig, seed: int, name: str) -> tf.keras.layers.Layer:
    """The shared-bottom / single-task bottom network: one expert's worth of network."""
    if config.expert_type == "cross":
        return tf.keras.Sequential(
            [
                CrossExpertBank(
                    1,
                    config.expert_units,
                    num_cross_layers=config.cross_layers,
                    activation=config.expert_activation,
                    dropout=config.expert_dropout,
                    normalization=config.expert_norm,
                    seed=seed,
                    name="cross",
                ),
                tf.keras.layers.Reshape((config.expert_units[-1],), name="squeeze"),
            ],
            name=name,
        )
    return MLP(
        config.expert_units,
        activation=config.expert_activation,
        dropout=config.expert_dropout,
        normalization=config.expert_norm,
        seed=seed,
        name=name,
    )


def _encoder(config: ModelConfig, state: Mapping[str, Any], seed: int, name: str) -> FeatureEncoder:
    """The config's feature encoder (features, crosses, embedding L2) with its seed and layer name."""
    return FeatureEncoder(
        config.features,
        state,
        seed=seed,
        embedding_l2=config.embedding_l2,
        crosses=config.feature_crosses,
        name=name,
    )


def _representations(config: ModelConfig, state: Mapping[str, Any], inputs: dict) -> dict[str, tf.Tensor]:
    """The input of each task's tower, keyed by task name."""
    arch = config.architecture
    if arch == "single_task":
        reps = {}
        for i, task in enumerate(config.tasks):
            encoder = _encoder(config, state, derive_seed(config.seed, 1, i), f"features_{task.name}")
            reps[task.name] = _bottom(config, derive_seed(config.seed, 2, i), f"bottom_{task.name}")(encoder(inputs))
        return reps
    x = _encoder(config, state, derive_seed(config.seed, 1), "features")(inputs)
    if arch == "shared_bottom":
        h = _bottom(config, derive_seed(config.seed, 2), "bottom")(x)
        return {t.name: h for t in config.tasks}
    if arch == "ple":
        return _ple(config, x)
    num_gates = len(config.tasks) if arch == "mmoe" else 1
    level_input: Any = x
    mixed: list[tf.Tensor] = []
    for level in range(config.num_levels):
        block = MMoE(
            num_gates=num_gates,
            num_experts=config.num_experts,
            expert_units=config.expert_units,
            **_expert_and_gate_options(config),
            seed=derive_seed(config.seed, 3, level),
            name=mmoe_layer_name(level),
        )
        mixed, _ = block(level_input)
        level_input = list(mixed) if num_gates > 1 else mixed[0]
    return {t.name: mixed[i if num_gates > 1 else 0] for i, t in enumerate(config.tasks)}


def _expert_and_gate_options(config: ModelConfig) -> dict[str, Any]:
    """The expert and gate options that MMoE/OMoE blocks and PLE (CGC) levels share, from ``config``."""
    return {
        "expert_type": config.expert_type,
        "expert_activation": config.expert_activation,
        "expert_dropout": config.expert_dropout,
        "expert_norm": config.expert_norm,
        "cross_layers": config.cross_layers,
        "gate_hidden_units": config.gate_hidden_units,
        "gate_temperature": config.gate_temperature,
        "gate_dropout": config.gate_dropout,
    }


def _ple(config: ModelConfig, x: tf.Tensor) -> dict[str, tf.Tensor]:
    """PLE: ``num_levels`` CGC levels; every level but the last also mixes a shared output for the next."""
    level_input: Any = x
    mixed: list[tf.Tensor] = []
    for level in range(config.num_levels):
        block = CGC(
            num_tasks=len(config.tasks),
            num_task_experts=config.num_task_experts,
            num_shared_experts=config.num_shared_experts,
            expert_units=config.expert_units,
            shared_gate=level < config.num_levels - 1,
            **_expert_and_gate_options(config),
            seed=derive_seed(config.seed, 5, level),
            name=ple_layer_name(level),
        )
        mixed, _ = block(level_input)
        level_input = list(mixed)
    return {t.name: mixed[i] for i, t in enumerate(config.tasks)}


def _build_graph(config: ModelConfig, state: Mapping[str, Any]) -> tuple[dict, dict]:
    inputs = make_inputs(config.features)
    reps = _representations(config, state, inputs)
    heads: dict[str, tf.Tensor] = {}
    unconditional: dict[str, tf.Tensor] = {}
    for i, task in enumerate(config.tasks):
        heads[task.name] = Tower(
            task.tower_units if task.tower_units is not None else config.tower_units,
            task_type=task.type,
            activation=config.tower_activation,
            dropout=config.tower_dropout,
            seed=derive_seed(config.seed, 4, i),
            name=task.name,
        )(reps[task.name])
    for task in task_order(config):
        if task.conditional_on is None:
            unconditional[task.name] = heads[task.name]
        else:
            joint = tf.keras.layers.Multiply(name=joint_output_name(task))(
                [unconditional[task.conditional_on], heads[task.name]]
            )
            unconditional[task.name] = heads[joint_output_name(task)] = joint
    return inputs, {name: heads[name] for name in config.output_names}


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


@tf.keras.utils.register_keras_serializable(package="mmoe_tf")
class MultiTaskModel(tf.keras.Model):
    """Functional multi-task model built from a ``ModelConfig`` and adapted feature state.

    Use :func:`build_model` rather than constructing it directly (it adapts the state from data).

    Args:
        model_config: ``ModelConfig`` (or its dict).
        feature_state: Adapted preprocessing state from ``mmoe_tf.features.adapt_state``.

    Losses (:meth:`compute_loss`): one per trained target (the task's own output, or its ESMM joint
    output); labels that are NaN/inf count as unobserved (weight 0, label 0) so masked rows never
    affect the loss; a missing ESMM joint label is derived with ``add_joint_targets``. The total is
    ``Σ λ_i L_i`` (``fixed``) or the uncertainty-weighted sum (``uncertainty``, see
    ``mmoe_tf.losses``), plus regularisation losses. Logged: ``loss`` and ``<target>_loss``. Under a
    ``tf.distribute`` strategy with n replicas the returned loss is divided by n, like Keras' compiled losses.
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
        inputs, outputs = _build_graph(config, state)
        kwargs.setdefault("name", config.architecture)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self._mmoe_config = config
        self._feature_state_plain = state
        targets = trained_targets(config)
        self._targets = [name for name, _ in targets]
        self._target_losses = {name: make_loss(task) for name, task in targets}
        self._fixed_weights = {name: task.loss_weight for name, task in targets}
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

    # ----- losses -------------------------------------------------------------------------------
    def _prepare_targets(self, y: Any, sample_weight: Any) -> tuple[dict, dict]:
        """Labels ``[B, 1]`` and weights ``[B]`` (float32) for every trained target, unobserved masked."""
        if not isinstance(y, Mapping):
            if len(self._targets) == 1 and y is not None:
                y = {self._targets[0]: y}
                sample_weight = None if sample_weight is None else {self._targets[0]: sample_weight}
            else:
                raise ValueError(
                    f"labels must be a dict keyed by task name with keys {self._targets}, got {type(y).__name__}"
                )
        if sample_weight is not None and not isinstance(sample_weight, Mapping):
            raise ValueError(f"sample weights must be a dict keyed by task name, got {type(sample_weight).__name__}")
        if any(name not in y for name in self._targets):
            y, sample_weight = add_joint_targets(self._mmoe_config, y, sample_weight)
        labels, weights = {}, {}
        for name in self._targets:
            label = tf.reshape(tf.cast(y[name], tf.float32), [-1, 1])
            weight = None if sample_weight is None else sample_weight.get(name)
            weight = tf.ones_like(label[:, 0]) if weight is None else tf.reshape(tf.cast(weight, tf.float32), [-1])
            seen = tf.math.is_finite(label[:, 0])
            weights[name] = tf.where(seen, weight, tf.zeros_like(weight))
            labels[name] = tf.where(seen[:, tf.newaxis], label, tf.zeros_like(label))
        return labels, weights

    def compute_loss(
        self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None
    ) -> tf.Tensor | None:
        del x
        if y is None:
            return None
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

    # ----- the training step --------------------------------------------------------------------
    def train_step(self, data: Any) -> dict[str, Any]:
        """Keras' training step; with ``train_split_rows`` set, a batch that large runs forward as two halves.

        The halves' outputs are concatenated before the loss, so the loss, the gradient and the metric updates
        are the whole batch's (up to float rounding). The two halves are independent chains of ops until then,
        and TensorFlow's inter-op threads run them side by side: on 2 cores, 1.09× / 1.15× the examples/s at
        batches of 2,048 / 4,096 rows through ``make_dataset``, and 0.95–1.00× with one inter-op thread
        (``docs/performance.md``, "Eighth round").
        """
        if not self._splits_training_batches():
            return super().train_step(data)
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self._forward_in_halves(x, self._mmoe_config.train_split_rows)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        self._validate_target_and_loss(y, loss)
        self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def _splits_training_batches(self) -> bool:
        """Whether :meth:`train_step` splits large batches: enabled, no batch normalisation, no GPU (read when
        Keras traces the step)."""
        if self._mmoe_config.train_split_rows <= 0:
            return False
        if any(isinstance(layer, tf.keras.layers.BatchNormalization) for layer in self._flatten_layers()):
            return False  # each half would normalise with its own batch statistics
        return not tf.config.list_logical_devices("GPU")  # one device stream: the halves would only queue

    def _forward_in_halves(self, x: Any, min_rows: int) -> dict[str, tf.Tensor]:
        """The training-mode outputs of ``x``, computed as two halves when it has ``min_rows`` rows or more.

        A smaller batch goes whole through the first call and leaves the second an empty batch, so one graph
        serves every batch size; the empty call's ops are what makes splitting a loss below the threshold
        (0.84–0.95× the examples/s at 256–512 rows, measured).
        """
        rows = tf.shape(tf.nest.flatten(x)[0])[0]
        cut = tf.where(rows >= min_rows, rows // 2, rows)
        first = self(tf.nest.map_structure(lambda t: t[:cut], x), training=True)
        second = self(tf.nest.map_structure(lambda t: t[cut:], x), training=True)
        return tf.nest.map_structure(lambda a, b: tf.concat([a, b], axis=0), first, second)

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any) -> dict[str, Any]:
        if y is not None:
            y, sample_weight = self._prepare_targets(y, sample_weight)
        return super().compute_metrics(x, y, y_pred, sample_weight)

    @property
    def metrics(self) -> list[tf.keras.metrics.Metric]:
        own = [self.loss_tracker, *self.target_loss_trackers]
        return own + [m for m in super().metrics if all(m is not o for o in own)]

    def _lookup_dependency(self, name: str, cached_dependencies: Any = None) -> Any:
        """Keras' checkpoint-dependency lookup, without its layer scan for names that cannot be layers.

        Keras calls this for every trackable attribute it sets, e.g. ``predict_function`` on each
        ``predict``/``evaluate``; the functional model's version first lists every layer with weights
        (≈ 36 ms per call for the benchmark's model) although only ``layer-N`` /
        ``layer_with_weights-N`` names can match a layer. Other names go straight to the layer-level
        lookup the functional one falls back to, so the result is the same.
        """
        if not cached_dependencies and not name.startswith("layer"):
            return tf.keras.layers.Layer._lookup_dependency(self, name)
        return super()._lookup_dependency(name, cached_dependencies)

    # ----- input checks at the Python entry points ----------------------------------------------
    def _conform_features(self, x: Any) -> Any:
        """Dicts/DataFrames of raw columns → validated numpy inputs; datasets → checked element spec."""
        specs = self._mmoe_config.features
        if isinstance(x, tf.data.Dataset):
            spec = x.element_spec
            features = spec[0] if isinstance(spec, tuple) else spec
            if isinstance(features, Mapping):
                absent = [s.name for s in specs if s.name not in features]
                if absent:
                    raise ValueError(
                        f"dataset features lack {absent}; the model takes {list(self._mmoe_config.feature_names)}"
                    )
                for s in specs:
                    got = features[s.name].dtype
                    want = input_dtype(s)
                    if (
                        got != want
                        and not (want.is_floating and (got.is_floating or got.is_integer))
                        and not (want.is_integer and got.is_integer)
                    ):
                        raise ValueError(f"dataset feature {s.name!r} has dtype {got.name}; expected {want.name}")
            if isinstance(spec, tuple) and len(spec) > 1:
                self._check_label_keys(spec[1])
            return x
        if isinstance(x, Mapping) and any(tf.is_tensor(v) for v in x.values()):
            absent = [s.name for s in specs if s.name not in x]
            if absent:
                raise ValueError(
                    f"inputs lack features {absent}; the model takes {list(self._mmoe_config.feature_names)}"
                )
            return x
        if isinstance(x, Mapping) or hasattr(x, "columns"):
            return to_model_inputs(specs, x)
        return x

    def _check_label_keys(self, y: Any) -> None:
        if not isinstance(y, Mapping):
            return
        missing = []
        for name, task in trained_targets(self._mmoe_config):
            if name in y:
                continue
            parts = [task.name, self._mmoe_config.task(task.conditional_on).name] if task.conditional_on else [name]
            if any(p not in y for p in parts):
                missing.append(name)
        if missing:
            raise ValueError(
                f"labels lack the trained targets {missing} (an ESMM joint label can be derived from its parent "
                f"and child labels); labels hold {sorted(y)}"
            )

    @contextlib.contextmanager
    def _one_step_per_execution_if_unsized(self, *inputs: tuple[Any, Any]) -> Iterator[None]:
        """Run one step per execution if some ``(data, steps)`` is a dataset of unknown size without steps.

        With ``steps_per_execution > 1`` Keras refuses datasets whose number of batches it cannot
        infer (e.g. streamed TFRecords) unless the steps are given. Keras' multi-step functions read
        ``steps_per_execution`` at run time, so all three are created first (while it is > 1) and
        the variable is set to 1 just for this call.
        """
        spe = getattr(self, "_steps_per_execution", None)
        unsized = any(
            steps is None
            and isinstance(x, tf.data.Dataset)
            and int(x.cardinality()) == int(tf.data.UNKNOWN_CARDINALITY)
            for x, steps in inputs
        )
        unsized = unsized and spe is not None and int(spe.numpy()) > 1
        if not unsized:
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

    def fit(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any) -> tf.keras.callbacks.History:
        """``tf.keras.Model.fit`` after checking features (dict, DataFrame or dataset) and label keys."""
        x = self._conform_features(x)
        self._check_label_keys(y)
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and len(validation) >= 2:
            self._check_label_keys(validation[1])
            kwargs["validation_data"] = (self._conform_features(validation[0]), *validation[1:])
        elif validation is not None:
            kwargs["validation_data"] = self._conform_features(validation)
        validation = kwargs.get("validation_data")
        validation_x = validation[0] if isinstance(validation, (tuple, list)) else validation
        with self._one_step_per_execution_if_unsized(
            (x, kwargs.get("steps_per_epoch")), (validation_x, kwargs.get("validation_steps"))
        ):
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any) -> Any:
        """``tf.keras.Model.evaluate`` after checking features and label keys."""
        x = self._conform_features(x)
        self._check_label_keys(y)
        with self._one_step_per_execution_if_unsized((x, kwargs.get("steps"))):
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """``tf.keras.Model.predict`` after checking features (dict, DataFrame or dataset).

        Columns (a dict or DataFrame) are cut into batches of ``batch_size`` rows (Keras' default, 32, when not
        given) by :func:`mmoe_tf.batches.table_order_batches`: the same batches as Keras' numpy adapter, so the
        same outputs, at 0.75–0.88× the time (``docs/performance.md``, "Seventh round").
        """
        x = self._conform_features(x)
        if not args and kwargs.get("steps") is None and _plain_columns(x):
            x = table_order_batches(x, kwargs.pop("batch_size", None) or DEFAULT_PREDICT_BATCH_SIZE)
        with self._one_step_per_execution_if_unsized((x, kwargs.get("steps"))):
            return super().predict(x, *args, **kwargs)

    # ----- checked weights files ----------------------------------------------------------------
    def save_weights(self, filepath: Any, *args: Any, **kwargs: Any) -> Any:
        """``tf.keras.Model.save_weights`` plus a ``<filepath>.mmoe.json`` sidecar holding the config."""
        result = super().save_weights(filepath, *args, **kwargs)
        write_weights_sidecar(self, filepath)
        return result

    def load_weights(self, filepath: Any, *args: Any, **kwargs: Any) -> Any:
        """``tf.keras.Model.load_weights`` that first checks the sidecar config (``ValueError`` on mismatch)."""
        check_weights_sidecar(self, filepath)
        return super().load_weights(filepath, *args, **kwargs)


DEFAULT_PREDICT_BATCH_SIZE = 32  # tf.keras.Model.predict's


def _plain_columns(x: Any) -> bool:
    """True for a non-empty dict of equal-length 1-D numpy arrays (what ``to_model_inputs`` returns)."""
    if not isinstance(x, dict) or not x or not all(isinstance(v, np.ndarray) and v.ndim == 1 for v in x.values()):
        return False
    return len({len(v) for v in x.values()}) == 1 and len(next(iter(x.values()))) > 0


def _optimizer(config: ModelConfig) -> tf.keras.optimizers.Optimizer:
    """The config's optimizer; ``adam`` is :class:`FusedAdam` (same update, one fused kernel per variable)."""
    if config.optimizer.lower() == "adam":
        return FusedAdam(learning_rate=config.learning_rate)
    try:
        return tf.keras.optimizers.get(
            {
                "class_name": config.optimizer,
                "config": {"learning_rate": config.learning_rate, "is_legacy_optimizer": False},
            }
        )
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"ModelConfig: field 'optimizer' is {config.optimizer!r}, not a Keras optimizer: {err}"
        ) from None


def compile_model(model: MultiTaskModel) -> MultiTaskModel:
    """Compile ``model`` from its config: optimizer/learning rate, per-target losses, weighted metrics,
    ``steps_per_execution``.

    Metrics (weighted by the sample weights): ``<target>_auc`` for binary targets,
    ``<target>_mae`` for regression targets.
    """
    config = model.mmoe_config
    losses, weights, metrics = {}, {}, {}
    for name, task in trained_targets(config):
        losses[name] = make_loss(task)
        weights[name] = task.loss_weight
        metrics[name] = [
            tf.keras.metrics.AUC(name="auc")
            if task.type == "binary"
            else tf.keras.metrics.MeanAbsoluteError(name="mae")
        ]
    model.compile(
        optimizer=_optimizer(config),
        loss=losses,
        loss_weights=weights,
        weighted_metrics=metrics,
        steps_per_execution=config.steps_per_execution,
    )
    return model


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
    pending = needs_adapting(config.features)
    if pending and adapt_data is None:
        raise ValueError(f"build_model: features {pending} need adapt_data (raw columns keyed by feature name)")
    state = adapt_state(config.features, adapt_data) if pending else {f.name: {} for f in config.features}
    model = MultiTaskModel(config, state)
    return compile_model(model) if compile else model
