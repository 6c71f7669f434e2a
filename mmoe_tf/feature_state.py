"""The adapted preprocessing state of the features: normaliser mean/variance and vocabularies, computed from data.

Example:
    >>> adapt_state([FeatureSpec("price", "numeric")], {"price": np.array([1.0, 3.0])})
    {'price': {'mean': 2.0, 'variance': 1.0}}
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.model_inputs import convert_column, string_values


def _column(data: Any, spec: FeatureSpec) -> np.ndarray:
    """The raw values of ``spec`` in ``data`` (dict of arrays or DataFrame keyed by feature name)."""
    try:
        has = spec.name in data
    except TypeError:
        raise ValueError(
            f"adapt data must be a dict of arrays or a DataFrame keyed by feature name, got {type(data).__name__}"
        ) from None
    if not has:
        keys = list(data.keys()) if hasattr(data, "keys") else []
        raise ValueError(
            f"adapt data lacks feature {spec.name!r} (a {spec.kind} feature needs data to adapt from); "
            f"available keys: {sorted(map(str, keys))[:20]}"
        )
    values = np.asarray(data[spec.name])
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"adapt data for feature {spec.name!r} must be one value per row, got shape {values.shape}")
    return values


def _numeric_state(spec: FeatureSpec, values: np.ndarray) -> dict[str, float]:
    x = convert_column(spec, values).astype(np.float64)
    missing = ~np.isfinite(x)
    if spec.default is not None:
        x = np.where(missing, float(spec.default), x)
    else:
        x = x[~missing]
    if x.size == 0:
        return {"mean": 0.0, "variance": 1.0}
    return {"mean": float(x.mean()), "variance": float(x.var())}


def _vocabulary_state(spec: FeatureSpec, values: np.ndarray) -> dict[str, list]:
    tokens = string_values(spec, values) if spec.dtype == "string" else convert_column(spec, values).tolist()
    counts = collections.Counter(t for t in tokens if t != "")
    if spec.dtype == "int64":
        counts.pop(-1, None)  # -1 is IntegerLookup's OOV token; it maps to OOV anyway
    if not counts:
        raise ValueError(f"feature {spec.name!r}: adapt data holds no non-missing values to build a vocabulary from")
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if spec.max_tokens is not None:
        ranked = ranked[: spec.max_tokens]
    return {"vocabulary": [t for t, _ in ranked]}


def adapt_state(specs: Sequence[FeatureSpec], data: Mapping[str, Any] | Any) -> dict[str, dict[str, Any]]:
    """Compute the preprocessing state (normaliser stats, vocabularies) of ``specs`` from ``data``.

    Args:
        specs: Feature specs.
        data: Dict of arrays or DataFrame keyed by feature name (raw values, NaN/"" = missing).

    Returns:
        ``{feature_name: {"mean", "variance"} | {"vocabulary"} | {}}`` (JSON-serialisable).

    Raises:
        ValueError: when ``data`` lacks a feature that needs adapting or holds values of the wrong type.
    """
    state: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if spec.kind == "numeric":
            state[spec.name] = _numeric_state(spec, _column(data, spec))
        elif spec.kind == "categorical" and spec.vocabulary is None:
            state[spec.name] = _vocabulary_state(spec, _column(data, spec))
        else:
            state[spec.name] = {}
    return state


def needs_adapting(specs: Sequence[FeatureSpec]) -> list[str]:
    """Names of the features whose preprocessing must be adapted from data."""
    return [s.name for s in specs if s.kind == "numeric" or (s.kind == "categorical" and s.vocabulary is None)]


def plain_copy(value: Any) -> Any:
    """Deep copy of ``value`` with Keras' tracking wrappers turned back into plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: plain_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_copy(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@tf.__internal__.tracking.no_automatic_dependency_tracking
def keep_untracked(owner: tf.Module, name: str, state: Any) -> None:
    """Set ``owner.<name> = state`` as a plain value, outside Keras' attribute tracking.

    Keras wraps a dict or list set on a layer in a tracked structure, and walks it entry by entry every time it
    lists the layer's variables (several times per ``fit`` / ``predict`` call); for a state holding vocabularies
    of 100,000 values that walk is seconds per call (docs/performance.md, Design decisions). The state holds no
    variables, so nothing is lost.
    """
    setattr(owner, name, state)
