"""Feature preprocessing inside the model: raw scalars in, one dense vector out.

``FeatureEncoder`` turns one raw value per row per feature into a concatenated dense vector, using
only TensorFlow ops (so an exported SavedModel needs no Python preprocessing):

* ``numeric``: missing values (NaN or ±inf) are replaced by the spec's ``default``; without a
  default they are replaced by the adapted mean, i.e. they normalise to exactly 0 and cannot
  poison the model. Then ``(x - mean) / std`` with the adapted mean/variance (``Normalization``'s arithmetic).
* ``categorical``: ``StringLookup`` / ``IntegerLookup`` over the given or adapted vocabulary with
  ``num_oov_buckets`` out-of-vocabulary indices (unseen values never crash), then ``Embedding``.
  A string ``""`` is "missing": it becomes ``default`` when there is one, otherwise OOV.
  ``int64`` features have no in-band missing marker (the data layer fills them).
* ``hashed``: ``Hashing(num_bins)`` then ``Embedding``; ``""`` becomes ``default`` if set.
* Embedding tables start as :class:`mmoe_tf.initializers.EmbeddingInitializer` draws: uniform in
  ``±min(0.05, 1/√rows)``, out-of-vocabulary rows at zero.
* crosses (:class:`~mmoe_tf.feature_specs.FeatureCross`): the combination of several categorical/hashed
  features' raw values (after the same missing-value defaults), ``HashedCrossing(num_bins)`` then
  ``Embedding``; their columns come after all the features'.

The adapted state (vocabularies, means, variances) is part of the layer config, so a saved model
is rebuilt without re-adapting.

Example:
    >>> specs = [FeatureSpec("price", "numeric"), FeatureSpec("device", "categorical", dtype="string")]
    >>> enc = FeatureEncoder(specs)
    >>> enc.adapt({"price": np.array([1.0, 2.0]), "device": np.array(["ios", "web"], dtype=object)})
    >>> enc({"price": tf.constant([1.5]), "device": tf.constant(["android"])}).shape
    TensorShape([1, 9])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf

from mmoe_tf.feature_specs import FeatureCross, FeatureSpec, check_crosses
from mmoe_tf.feature_state import adapt_state, keep_untracked, needs_adapting, plain_copy
from mmoe_tf.initializers import EmbeddingInitializer


def _as_specs(features: Sequence[FeatureSpec | Mapping[str, Any]]) -> tuple[FeatureSpec, ...]:
    specs = tuple(f if isinstance(f, FeatureSpec) else FeatureSpec.from_dict(f) for f in features)
    if not specs:
        raise ValueError("FeatureEncoder: field 'features' must list at least one feature")
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"FeatureEncoder: field 'features' has duplicate names {dupes}")
    return specs


@tf.keras.utils.register_keras_serializable(package="mmoe_tf")
class FeatureEncoder(tf.keras.layers.Layer):
    """Encodes a dict of raw feature tensors ``{name: [B]}`` into one dense ``[B, D]`` tensor.

    Args:
        features: ``FeatureSpec``s (or their dicts); the output concatenates them in this order.
        state: Adapted preprocessing state from :func:`adapt_state` (or :meth:`adapt`); ``None``
            when nothing needs adapting or when :meth:`adapt` is called before first use.
        seed: Base seed of the embedding initialisers.
        embedding_l2: L2 penalty ``λ · Σ w²`` on each embedding table (a layer loss; ``0``: none).
        crosses: Crossed features (``FeatureCross``, its dict, or a list of feature names), each
            hashed and embedded; their columns follow the features'.

    Example:
        >>> enc = FeatureEncoder([FeatureSpec("city", "hashed", num_bins=8, embedding_dim=3)])
        >>> enc({"city": tf.constant(["paris", ""])}).shape
        TensorShape([2, 3])
    """

    def __init__(
        self,
        features: Sequence[FeatureSpec | Mapping[str, Any]],
        state: Mapping[str, Mapping[str, Any]] | None = None,
        seed: int = 0,
        embedding_l2: float = 0.0,
        crosses: Sequence[FeatureCross | Mapping[str, Any] | Sequence[str]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.specs = _as_specs(features)
        self.crosses = tuple(FeatureCross.from_dict(c) for c in crosses)
        check_crosses(self.crosses, self.specs, "FeatureEncoder")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"FeatureEncoder: field 'seed' must be an integer >= 0, got {seed!r}")
        if isinstance(embedding_l2, bool) or not isinstance(embedding_l2, (int, float)) or not embedding_l2 >= 0:
            raise ValueError(f"FeatureEncoder: field 'embedding_l2' must be a number >= 0, got {embedding_l2!r}")
        self.seed = seed
        self.embedding_l2 = float(embedding_l2)
        self.state: dict[str, dict[str, Any]] | None = None
        self._preprocessors: list[tf.keras.layers.Layer | None] = []
        self._embeddings: list[tf.keras.layers.Layer | None] = []
        if state is not None:
            self._set_state(state)
        elif not needs_adapting(self.specs):
            self._set_state({s.name: {} for s in self.specs})

    @property
    def output_dim(self) -> int:
        """Width D of the encoded vector."""
        own = sum(1 if s.kind == "numeric" else s.embedding_dim for s in self.specs)
        return own + sum(c.embedding_dim for c in self.crosses)

    def adapt(self, data: Mapping[str, Any] | Any) -> None:
        """Adapt normalisers and vocabularies from ``data`` (dict of arrays / DataFrame by feature name)."""
        if self.built:
            raise ValueError(f"FeatureEncoder {self.name!r} is already built; adapt before first use")
        self._set_state(adapt_state(self.specs, data))

    def _set_state(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        missing = [n for n in needs_adapting(self.specs) if not state.get(n)]
        if missing:
            raise ValueError(f"FeatureEncoder: field 'state' lacks the adapted state of features {missing}")
        keep_untracked(self, "state", {s.name: dict(state.get(s.name, {})) for s in self.specs})
        self._preprocessors, self._embeddings = [], []
        for i, spec in enumerate(self.specs):
            pre, emb = self._make_layers(spec, self.state[spec.name], i)
            self._preprocessors.append(pre)
            self._embeddings.append(emb)
        # Assigned after the features' layers, and only when there are crosses, so that models without
        # crosses keep exactly the weight layout (and .keras files) they had before crosses existed.
        if self.crosses:
            self._crossings = [
                tf.keras.layers.HashedCrossing(num_bins=c.num_bins, name=f"cross_{c.name}") for c in self.crosses
            ]
            self._cross_embeddings = [
                self._embedding(c.num_bins, c.embedding_dim, len(self.specs) + j, f"embed_cross_{c.name}")
                for j, c in enumerate(self.crosses)
            ]
        self._numeric = _NumericGroup(self.specs, self.state)
        self._column_order = _column_order(self.specs, sum(c.embedding_dim for c in self.crosses))

    def _make_layers(self, spec: FeatureSpec, state: Mapping[str, Any], index: int) -> tuple[Any, Any]:
        if spec.kind == "numeric":
            return None, None  # all numeric features are normalised together (_NumericGroup)
        if spec.kind == "categorical":
            # A tuple, which Keras does not wrap: a tracked list would be walked entry by entry whenever Keras
            # lists the model's variables (docs/performance.md, Design decisions).
            vocabulary = tuple(spec.vocabulary) if spec.vocabulary is not None else tuple(state["vocabulary"])
            lookup = tf.keras.layers.StringLookup if spec.dtype == "string" else tf.keras.layers.IntegerLookup
            pre = lookup(
                vocabulary=vocabulary, num_oov_indices=spec.num_oov_buckets, mask_token=None, name=f"lookup_{spec.name}"
            )
            size = len(vocabulary) + spec.num_oov_buckets
        else:
            pre = tf.keras.layers.Hashing(num_bins=spec.num_bins, name=f"hash_{spec.name}")
            size = spec.num_bins
        oov_rows = spec.num_oov_buckets if spec.kind == "categorical" else 0
        return pre, self._embedding(size, spec.embedding_dim, index, f"embed_{spec.name}", oov_rows)

    def _embedding(self, size: int, dim: int, index: int, name: str, oov_rows: int = 0) -> tf.keras.layers.Embedding:
        return tf.keras.layers.Embedding(
            size,
            dim,
            embeddings_initializer=EmbeddingInitializer(zero_rows=oov_rows, seed=self.seed * 7919 + index),
            embeddings_regularizer=tf.keras.regularizers.L2(self.embedding_l2) if self.embedding_l2 > 0 else None,
            name=name,
        )

    def build(self, input_shape: Any) -> None:
        if self.state is None:
            raise ValueError(
                f"FeatureEncoder {self.name!r} is not adapted: features {needs_adapting(self.specs)} need "
                "adapt data (pass adapt_data to build_model or call adapt())"
            )
        super().build(input_shape)

    def _missing_to_default(self, spec: FeatureSpec, x: tf.Tensor) -> tf.Tensor:
        if spec.dtype == "string":
            if x.dtype != tf.string:
                raise ValueError(f"feature {spec.name!r} expects string values, got a {x.dtype.name} tensor")
            if spec.default is not None:
                x = tf.where(tf.equal(x, ""), tf.constant(spec.default), x)
            return x
        if not x.dtype.is_integer:
            raise ValueError(f"feature {spec.name!r} expects int64 values, got a {x.dtype.name} tensor")
        return tf.cast(x, tf.int64)

    def call(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        if not isinstance(inputs, Mapping):
            raise ValueError(f"FeatureEncoder expects a dict of feature tensors, got {type(inputs).__name__}")
        absent = [s.name for s in self.specs if s.name not in inputs]
        if absent:
            raise ValueError(f"FeatureEncoder: inputs lack features {absent}")
        parts = [self._numeric(inputs)] if self._numeric.names else []
        values = {}
        for spec, pre, emb in zip(self.specs, self._preprocessors, self._embeddings, strict=True):
            if spec.kind != "numeric":
                values[spec.name] = self._missing_to_default(spec, _flat(inputs[spec.name]))
                parts.append(emb(pre(values[spec.name])))
        if self.crosses:
            for cross, crossing, emb in zip(self.crosses, self._crossings, self._cross_embeddings, strict=True):
                parts.append(emb(crossing(tuple(values[name] for name in cross.features))))
        x = parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)
        # Grouped layout [numeric block, embeddings..., crosses...] back to the features' order (one gather, or none).
        return x if self._column_order is None else tf.gather(x, self._column_order, axis=1)

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        first = next(iter(input_shape.values())) if isinstance(input_shape, Mapping) else None
        batch = tf.TensorShape(first)[0] if first is not None else None
        return tf.TensorShape([batch, self.output_dim])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            features=[s.to_dict() for s in self.specs],
            state=plain_copy(self.state),
            seed=self.seed,
            embedding_l2=self.embedding_l2,
            crosses=[c.to_dict() for c in self.crosses],
        )
        return config


def _flat(x: tf.Tensor) -> tf.Tensor:
    """``[B]`` from a ``[B]`` or ``[B, 1]`` feature tensor."""
    return tf.squeeze(x, axis=-1) if x.shape.rank == 2 else x


class _NumericGroup:
    """Missing-value fill and normalisation of every numeric feature at once: ``{name: [B]}`` → ``[B, n]``.

    Same arithmetic as one ``tf.keras.layers.Normalization`` per feature, ``(x - mean) /
    max(sqrt(variance), 1e-7)`` after NaN/inf take the feature's ``default`` (else its mean), in a
    handful of ops instead of ≈ 8 per feature (``docs/performance.md``). Holds constants only.
    """

    def __init__(self, specs: Sequence[FeatureSpec], state: Mapping[str, Mapping[str, Any]]) -> None:
        numeric = [s for s in specs if s.kind == "numeric"]
        self.names = [s.name for s in numeric]
        self.mean = [float(state[s.name]["mean"]) for s in numeric]
        self.variance = [float(state[s.name]["variance"]) for s in numeric]
        self.fill = [float(s.default) if s.default is not None else m for s, m in zip(numeric, self.mean, strict=True)]

    def __call__(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        x = tf.stack([tf.cast(_flat(inputs[name]), tf.float32) for name in self.names], axis=1)
        x = tf.where(tf.math.is_finite(x), x, tf.constant(self.fill, tf.float32))
        std = tf.maximum(tf.sqrt(tf.constant(self.variance, tf.float32)), tf.keras.backend.epsilon())
        return (x - tf.constant(self.mean, tf.float32)) / std


def _column_order(specs: Sequence[FeatureSpec], tail: int = 0) -> tuple[int, ...] | None:
    """Columns of the grouped layout ``[numeric..., embeddings..., tail]`` in the specs' order (the ``tail``
    columns, the crosses', stay last); ``None`` if that is the grouped order already."""
    widths = [1 if s.kind == "numeric" else s.embedding_dim for s in specs]
    numeric = [i for i, s in enumerate(specs) if s.kind == "numeric"]
    grouped = numeric + [i for i, s in enumerate(specs) if s.kind != "numeric"]
    start, offsets = 0, {}
    for i in grouped:
        offsets[i] = start
        start += widths[i]
    order = [offsets[i] + j for i in range(len(specs)) for j in range(widths[i])]
    order += list(range(start, start + tail))
    return None if order == list(range(len(order))) else tuple(order)
