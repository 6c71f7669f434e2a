"""Declarative input features: :class:`FeatureSpec` (one raw input) and :class:`FeatureCross` (a crossed pair or more).

Example:
    >>> spec = FeatureSpec("device", "categorical", dtype="string")
    >>> FeatureSpec.from_dict(spec.to_dict()) == spec
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from mmoe_tf._field_checks import check_name, fail, from_mapping

FEATURE_KINDS = ("numeric", "categorical", "hashed")
FEATURE_DTYPES = {
    "numeric": ("float32",),
    "categorical": ("string", "int64"),
    "hashed": ("string", "int64"),
}


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One raw input feature; its preprocessing lives inside the model.

    Args:
        name: Input name of the model (and of the serving signature).
        kind: ``numeric`` (normalised with mean/variance adapted from data), ``categorical``
            (vocabulary adapted from data or given, plus out-of-vocabulary buckets, then an
            embedding) or ``hashed`` (hashed into ``num_bins`` buckets, then an embedding).
        dtype: ``float32`` for numeric; ``string`` or ``int64`` for categorical and hashed.
        column: Source column in the user's table; defaults to ``name``.
        embedding_dim: Embedding width for categorical and hashed features.
        vocabulary: Fixed vocabulary for a categorical feature; ``None`` adapts it from data.
        max_tokens: Cap on an adapted vocabulary's size (most frequent values kept).
        num_oov_buckets: Buckets for values outside the vocabulary (at least 1, so unseen values
            never crash).
        num_bins: Hash buckets for a hashed feature.
        default: Value used when an optional feature is missing (absent column, NaN or blank).
            ``None`` means the feature is required.
    """

    name: str
    kind: str
    dtype: str | None = None
    column: str | None = None
    embedding_dim: int = 8
    vocabulary: tuple | None = None
    max_tokens: int | None = None
    num_oov_buckets: int = 1
    num_bins: int = 1024
    default: float | int | str | None = None

    def __post_init__(self) -> None:
        owner = f"FeatureSpec {self.name!r}"
        check_name(owner, self.name)
        if self.kind not in FEATURE_KINDS:
            fail(owner, "kind", f"is {self.kind!r}, an unknown feature kind; expected one of {FEATURE_KINDS}")
        dtype = self.dtype or FEATURE_DTYPES[self.kind][0]
        if dtype not in FEATURE_DTYPES[self.kind]:
            fail(owner, "dtype", f"is {dtype!r}; a {self.kind} feature takes one of {FEATURE_DTYPES[self.kind]}")
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "column", self.column or self.name)
        if self.vocabulary is not None:
            object.__setattr__(self, "vocabulary", tuple(self.vocabulary))
            if self.kind != "categorical":
                fail(owner, "vocabulary", "is only valid for categorical features")
            if not self.vocabulary:
                fail(owner, "vocabulary", "must not be empty")
        for field in ("embedding_dim", "num_oov_buckets", "num_bins"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(owner, field, f"must be a positive integer, got {value!r}")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            fail(owner, "max_tokens", f"must be a positive integer or null, got {self.max_tokens!r}")
        if self.default is not None:
            expects_str = dtype == "string"
            if expects_str != isinstance(self.default, str) or isinstance(self.default, bool):
                fail(owner, "default", f"is {self.default!r}, which does not match dtype {dtype}")

    @property
    def required(self) -> bool:
        """True when the feature has no ``default`` and so must be present in every row."""
        return self.default is None

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (lists, not tuples) suitable for JSON/YAML."""
        data = dataclasses.asdict(self)
        if data["vocabulary"] is not None:
            data["vocabulary"] = list(data["vocabulary"])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        return from_mapping(cls, data, f"feature {data.get('name', '?')!r}" if isinstance(data, Mapping) else "feature")


@dataclasses.dataclass(frozen=True)
class FeatureCross:
    """A crossed feature: each row's combination of two or more categorical/hashed features' values.

    The combination is hashed into ``num_bins`` buckets (``tf.keras.layers.HashedCrossing``) and
    embedded, inside the model: the crossed columns of Wide & Deep (Cheng et al., 2016). It lets
    the network look up an interaction (e.g. user segment × item category) instead of having to
    learn it from the two separate embeddings. The model's inputs do not change.

    Args:
        features: Names of the crossed features (categorical or hashed, at least two, distinct).
        num_bins: Hash buckets of the combination.
        embedding_dim: Embedding width of the cross.

    Example:
        >>> FeatureCross.from_dict(["user_segment", "item_category"]).name
        'user_segment_x_item_category'
    """

    features: tuple[str, ...]
    num_bins: int = 1024
    embedding_dim: int = 8

    def __post_init__(self) -> None:
        features = (self.features,) if isinstance(self.features, str) else tuple(self.features)
        object.__setattr__(self, "features", features)
        owner = f"FeatureCross {list(features)!r}"
        if len(features) < 2 or len(set(features)) != len(features):
            fail(owner, "features", "must name at least two distinct features")
        if not all(isinstance(f, str) and f for f in features):
            fail(owner, "features", "must hold feature names (non-empty strings)")
        for field in ("num_bins", "embedding_dim"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(owner, field, f"must be a positive integer, got {value!r}")

    @property
    def name(self) -> str:
        """``<a>_x_<b>...``: names the cross's layers."""
        return "_x_".join(self.features)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form suitable for JSON/YAML."""
        return {"features": list(self.features), "num_bins": self.num_bins, "embedding_dim": self.embedding_dim}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[str] | FeatureCross) -> FeatureCross:
        """From :meth:`to_dict`'s mapping, or a plain list of feature names (default sizes)."""
        if isinstance(data, FeatureCross):
            return data
        if isinstance(data, Sequence) and not isinstance(data, str):
            return cls(features=tuple(data))
        return from_mapping(cls, data, "feature_crosses entry")


def check_crosses(crosses: Sequence[FeatureCross], features: Sequence[FeatureSpec], owner: str) -> None:
    """Raise ``ValueError`` unless every cross names existing non-numeric features, each cross once."""
    kinds = {f.name: f.kind for f in features}
    seen = set()
    for cross in crosses:
        unknown = [n for n in cross.features if n not in kinds]
        if unknown:
            fail(owner, "feature_crosses", f"cross {cross.name!r} names unknown features {unknown}")
        numeric = [n for n in cross.features if kinds[n] == "numeric"]
        if numeric:
            fail(
                owner,
                "feature_crosses",
                f"cross {cross.name!r} names numeric features {numeric}; "
                "only categorical and hashed features can be crossed",
            )
        if cross.name in seen:
            fail(owner, "feature_crosses", f"lists the cross {cross.name!r} twice")
        seen.add(cross.name)
