"""Saving and loading models with their ``ModelConfig``, and checked weights files.

A ``.keras`` file stores the ``ModelConfig`` and the adapted feature state in the model config, so
loading re-creates the model without re-adapting and restores the weights exactly.

Example:
    >>> save_model(model, "run/model.keras")
    >>> model = load_model("run/model.keras", expected_config=config)   # ValueError if configs differ
    >>> config_of(model) == config
    True
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import tensorflow as tf

from mmoe_tf.config import ModelConfig
from mmoe_tf.threads import adopt_default_cpu_threads

SIDECAR_SUFFIX = ".mmoe.json"


def config_of(model: tf.keras.Model) -> ModelConfig:
    """The ``ModelConfig`` a model was built from (survives save/load).

    Raises:
        ValueError: when ``model`` was not built by ``mmoe_tf.build_model`` / ``load_model``.
    """
    config = getattr(model, "mmoe_config", None)
    if not isinstance(config, ModelConfig):
        raise ValueError(
            f"model {getattr(model, 'name', model)!r} carries no mmoe_tf ModelConfig; "
            "build it with mmoe_tf.build_model or load it with mmoe_tf.load_model"
        )
    return config


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def config_diff(stored: ModelConfig, expected: ModelConfig) -> list[str]:
    """Human-readable differences ``"field: stored != expected"`` between two configs (empty if equal)."""
    a, b = stored.to_dict(), expected.to_dict()
    diffs = []
    for key in a:
        if a[key] == b[key]:
            continue
        if key in ("features", "tasks"):
            names_a = [item["name"] for item in a[key]]
            names_b = [item["name"] for item in b[key]]
            if names_a != names_b:
                diffs.append(f"{key}: names {names_a} != {names_b}")
                continue
            for item_a, item_b in zip(a[key], b[key], strict=True):
                for field in item_a:
                    if item_a[field] != item_b[field]:
                        where = f"{key}[{item_a['name']!r}].{field}"
                        diffs.append(f"{where}: {_describe(item_a[field])} != {_describe(item_b[field])}")
        else:
            diffs.append(f"{key}: {_describe(a[key])} != {_describe(b[key])}")
    return diffs


def _check_same(stored: ModelConfig, expected: ModelConfig, what: str) -> None:
    diffs = config_diff(stored, expected)
    if diffs:
        raise ValueError(f"{what} differs from the expected config in fields: " + "; ".join(diffs))


def save_model(model: tf.keras.Model, path: str | os.PathLike) -> Path:
    """Save ``model`` (config, feature state, weights, optimizer) to a Keras ``.keras`` file.

    Args:
        model: A model from ``build_model``.
        path: Destination; must end with ``.keras``. Parent folders are created.

    Returns:
        The path written.
    """
    config_of(model)
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"save_model: path must end with '.keras', got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def stored_config(path: str | os.PathLike) -> ModelConfig:
    """Read the ``ModelConfig`` stored in a ``.keras`` file without building the model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved model at {str(path)!r}")
    try:
        with zipfile.ZipFile(path) as archive:
            model_json = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError) as err:
        raise ValueError(f"{str(path)!r} is not a Keras .keras model file: {err}") from None
    config = model_json.get("config", {})
    if "model_config" not in config:
        raise ValueError(f"{str(path)!r} was not saved by mmoe_tf (no model_config in its Keras config)")
    return ModelConfig.from_dict(config["model_config"])


def load_model(
    path: str | os.PathLike, expected_config: ModelConfig | None = None, compile: bool = True
) -> tf.keras.Model:
    """Load a model saved by :func:`save_model`; no data and no re-adapting needed.

    Args:
        path: A ``.keras`` file written by :func:`save_model`.
        expected_config: When given, the stored config must equal it.
        compile: Whether to restore the compiled state (optimizer, losses, metrics).

    Returns:
        The ``MultiTaskModel`` with identical weights (and predictions).

    Raises:
        ValueError: listing the differing fields when the stored config differs from ``expected_config``.
    """
    stored = stored_config(path)
    if expected_config is not None:
        _check_same(stored, expected_config, f"the model stored in {str(path)!r}")
    adopt_default_cpu_threads()  # as build_model does
    return tf.keras.models.load_model(path, compile=compile)


def _sidecar(filepath: Any) -> Path:
    return Path(os.fspath(filepath) + SIDECAR_SUFFIX)


def write_weights_sidecar(model: tf.keras.Model, filepath: Any) -> Path:
    """Write the config and feature state of ``model`` next to a weights file."""
    sidecar = _sidecar(filepath)
    payload = {"model_config": config_of(model).to_dict(), "feature_state": getattr(model, "feature_state", None)}
    sidecar.write_text(json.dumps(payload, sort_keys=True))
    return sidecar


def check_weights_sidecar(model: tf.keras.Model, filepath: Any) -> None:
    """``ValueError`` when the weights at ``filepath`` were saved from a model with another config.

    Weights files written without a sidecar (not by an mmoe_tf model) are not checked.
    """
    sidecar = _sidecar(filepath)
    if not sidecar.is_file():
        return
    payload = json.loads(sidecar.read_text())
    what = f"the model whose weights are in {os.fspath(filepath)!r}"
    _check_same(ModelConfig.from_dict(payload["model_config"]), config_of(model), what)
    state = json.loads(json.dumps(getattr(model, "feature_state", None)))
    if payload.get("feature_state") != state:
        stored_state = payload.get("feature_state") or {}
        differ = sorted(k for k in set(stored_state) | set(state or {}) if stored_state.get(k) != (state or {}).get(k))
        raise ValueError(f"{what} was adapted on other data: vocabularies/normalisation differ for features {differ}")
