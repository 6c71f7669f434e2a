"""Export a Keras multi-task model as a self-contained SavedModel for TF Serving.

Layout: ``<base_path>/<model_name>/<version>/`` with signatures ``serving_default`` (one ``[-1]`` input per
feature, one ``[-1]`` output per model output), ``gates`` (``gate_<task>`` ``[-1, K]``, when the architecture has
gates) and ``ranking_score`` (``score`` ``[-1]`` = Σ w_task·p_task), plus ``assets.extra/export_info.json`` and
``assets.extra/tf_serving_warmup_requests``. The version is written to a hidden temporary directory, verified in a
fresh Python process that never imports ``mmoe_tf``, then renamed into place; a failed export leaves nothing behind.

Example:
    >>> path = export_model(model, "/tmp/export", score_weights={"click": 1, "satisfaction": 2})  # doctest: +SKIP
    >>> path.name  # doctest: +SKIP
    '1'
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

import mmoe_tf
from serving.model_store import numeric_versions
from serving.warmup import WARMUP_FILENAME, write_warmup_file

# the folder this package is imported from (the repository root; site-packages when installed as mmoe_tf_app.serving)
IMPORT_ROOT = Path(__file__).resolve().parents[__package__.count(".") + 1]
EXPORT_INFO = "export_info.json"
VERIFY_TOLERANCE = 1e-5
# A bfloat16 model's predictions depend on which kernels run (fused or not, oneDNN or Eigen), each rounding to
# bfloat16 its own way: its verification allows 2^-5 (~16 bf16 roundings) of its largest output or score (at least 1).
BF16_VERIFY_RELATIVE = 2**-5


class ExportVerificationError(RuntimeError):
    """The exported SavedModel did not reproduce the Keras model's predictions (nothing was left in place)."""


def _optional_mmoe(attr: str) -> Any:
    """An ``mmoe_tf`` function that may not exist yet in this checkout (``None`` then)."""
    return getattr(mmoe_tf, attr, None)


def model_config_dict(model: tf.keras.Model) -> dict[str, Any] | None:
    """The model's ``ModelConfig`` as a dict, or ``None`` for models not built by ``mmoe_tf.build_model``."""
    config_of = _optional_mmoe("config_of")
    if config_of is None:
        return None
    try:
        return config_of(model).to_dict()
    except (ValueError, KeyError, AttributeError, TypeError):
        return None


def input_specs(model: tf.keras.Model) -> dict[str, tf.TensorSpec]:
    """One ``TensorSpec([-1, ...], dtype, name)`` per model input, keyed by input name."""
    specs = {}
    for name, tensor in zip(model.input_names, model.inputs, strict=True):
        specs[name] = tf.TensorSpec([None, *tensor.shape[1:]], tensor.dtype, name=name)
    return specs


def _as_dict(model: tf.keras.Model, outputs: Any) -> dict[str, tf.Tensor]:
    if isinstance(outputs, Mapping):
        return dict(outputs)
    if isinstance(outputs, (list, tuple)):
        return dict(zip(model.output_names, outputs, strict=True))
    return {model.output_names[0]: outputs}


def _squeeze(t: tf.Tensor) -> tf.Tensor:
    return tf.squeeze(t, axis=-1) if t.shape.rank == 2 and t.shape[-1] == 1 else t


def _gate_model(model: tf.keras.Model) -> tf.keras.Model | None:
    gate_model = _optional_mmoe("gate_model")
    if gate_model is None:
        return None
    try:
        return gate_model(model)
    except ValueError:  # architecture without gates
        return None


def parse_score_weights(text: str | None) -> dict[str, float] | None:
    """Parse ``click=1,satisfaction=2`` into ``{"click": 1.0, "satisfaction": 2.0}`` (``None`` passes through)."""
    if text is None:
        return None
    weights = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ValueError(f"--score-weights: expected name=number pairs like click=1,satisfaction=2; got {item!r}")
    return weights


def _score_weights(weights: Mapping[str, float] | None, outputs: list[str], config: dict | None) -> dict[str, float]:
    tasks = [t["name"] for t in config["tasks"]] if config else outputs
    if weights is None:
        return {t: 1.0 for t in tasks}
    unknown = sorted(set(weights) - set(outputs))
    if unknown:
        raise ValueError(f"score_weights: unknown output(s) {unknown}; the model's outputs are {outputs}")
    for name, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            raise ValueError(f"score_weights: weight of {name!r} must be a finite number, got {w!r}")
    return {k: float(v) for k, v in weights.items()}


def _synthetic_features(specs: Mapping[str, tf.TensorSpec], rows: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, spec in specs.items():
        shape = (rows, *spec.shape[1:])
        if spec.dtype == tf.string:
            out[name] = np.array([f"v{i}".encode() for i in rng.integers(0, 5, int(np.prod(shape)))], object).reshape(
                shape
            )
        elif spec.dtype.is_integer:
            out[name] = rng.integers(0, 10, shape).astype(spec.dtype.as_numpy_dtype)
        else:
            out[name] = rng.normal(size=shape).astype(spec.dtype.as_numpy_dtype)
    return out


def _as_bytes(value: Any) -> bytes:
    """A string feature value as bytes; missing values (None/NaN) become ``b""`` (the model's missing marker)."""
    if isinstance(value, bytes):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return b""
    return str(value).encode("utf-8")


def prepare_features(
    features: Mapping[str, Any] | pd.DataFrame, specs: Mapping[str, tf.TensorSpec], config: dict | None = None
) -> dict[str, np.ndarray]:
    """Convert sample rows into arrays of each input's dtype (strings as ``bytes``).

    Args:
        features: ``{input_name: values}`` or a DataFrame whose columns are input names (or the config's
            ``FeatureSpec.column`` names).
        specs: From :func:`input_specs`.
        config: Model config dict, used to map source columns to feature names.

    Raises:
        ValueError: an input is missing or a value cannot be converted (naming the input).
    """
    columns = {f["name"]: f["column"] for f in config["features"]} if config else {}
    out = {}
    for name, spec in specs.items():
        if name in features:
            values = features[name]
        elif columns.get(name) in features:
            values = features[columns[name]]
        else:
            raise ValueError(f"sample features: input {name!r} is missing; inputs are {list(specs)}")
        values = np.asarray(values)
        try:
            if spec.dtype == tf.string:
                out[name] = np.array([_as_bytes(v) for v in values.ravel()], dtype=object).reshape(values.shape)
            elif spec.dtype.is_integer:
                numbers = values.astype(np.float64) if values.dtype.kind != "i" else values
                if values.dtype.kind != "i" and not np.all(np.isfinite(numbers) & (numbers == np.round(numbers))):
                    raise ValueError("it holds missing or non-integer values")
                out[name] = values.astype(spec.dtype.as_numpy_dtype)
            else:
                out[name] = values.astype(spec.dtype.as_numpy_dtype)
        except (TypeError, ValueError) as err:
            raise ValueError(f"sample features: input {name!r} cannot become {spec.dtype.name}: {err}") from None
    return out


class _Signatures:
    """The three serving functions around a Keras model (and its gate model)."""

    def __init__(self, model: tf.keras.Model, gates: tf.keras.Model | None, weights: Mapping[str, float]) -> None:
        self.model, self.gates, self.weights = model, gates, dict(weights)

    def serving_default(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        outputs = _as_dict(self.model, self.model(features, training=False))
        return {name: _squeeze(t) for name, t in outputs.items()}

    def ranking_score(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        outputs = self.serving_default(features)
        terms = [tf.cast(outputs[name], tf.float32) * w for name, w in sorted(self.weights.items())]
        return {"score": tf.add_n(terms)}

    def gate_weights(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        outputs = _as_dict(self.gates, self.gates(features, training=False))
        return {f"gate_{task}": t for task, t in outputs.items()}


def _predict_numpy(fn: Any, features: Mapping[str, np.ndarray], specs: Mapping[str, tf.TensorSpec]) -> dict:
    tensors = {k: tf.constant(features[k], dtype=specs[k].dtype) for k in specs}
    return {k: v.numpy() for k, v in fn(tensors).items()}


def _write_npz(path: Path, groups: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    arrays = {}
    for prefix, values in groups.items():
        for name, a in values.items():
            if a.dtype == object:  # bytes -> str (numpy's astype(str) would decode as ASCII only)
                a = np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in a.ravel()]).reshape(
                    a.shape
                )
            arrays[f"{prefix}__{name}"] = a
    np.savez(path, **arrays)


def _verify_tolerance(config: Mapping[str, Any] | None, expected: Mapping[str, Any]) -> float:
    """:data:`VERIFY_TOLERANCE`; for a ``mixed_bfloat16`` model :data:`BF16_VERIFY_RELATIVE` of its outputs' scale."""
    if (config or {}).get("precision", "float32") == "float32":
        return VERIFY_TOLERANCE
    outputs, weights = expected["outputs"], expected["score_weights"]
    score = sum(np.abs(np.asarray(outputs[k], np.float64)) * abs(w) for k, w in weights.items())
    arrays = [*(np.asarray(v, np.float64) for v in outputs.values()), np.asarray(score)]
    return BF16_VERIFY_RELATIVE * max([1.0, *(float(np.nanmax(np.abs(a), initial=0.0)) for a in arrays)])


def verify_export(
    version_dir: str | Path,
    features: Mapping[str, np.ndarray],
    expected: Mapping[str, Any],
    tolerance: float = VERIFY_TOLERANCE,
) -> dict:
    """Load ``version_dir`` in a fresh Python process without ``mmoe_tf`` and compare its predictions.

    Args:
        version_dir: The exported SavedModel directory.
        features: Sample inputs (by input name).
        expected: ``{"outputs": {...}, "gates": {...}, "score_weights": {...}}`` computed in-process.
        tolerance: The largest absolute difference accepted.

    Returns:
        The child's report (``max_abs_diff`` per signature, ``mmoe_tf_imported``, ``warmup_records``).

    Raises:
        ExportVerificationError: the child failed, imported ``mmoe_tf``, or a difference exceeds ``tolerance``.
    """
    with tempfile.TemporaryDirectory(prefix="mmoe-verify-") as tmp:
        npz = Path(tmp) / "samples.npz"
        _write_npz(npz, {"in": features, "out": expected["outputs"], "gate": expected.get("gates") or {}})
        weights = json.dumps(expected["score_weights"])
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(IMPORT_ROOT)}
        # the child runs in ``tmp``: hand it an absolute path, or a relative base path would point into ``tmp``
        version = str(Path(version_dir).resolve())
        cmd = [sys.executable, "-m", f"{__package__}._verify", version, str(npz), weights, str(tolerance)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        detail = lines[-1] if lines else " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise ExportVerificationError(f"export verification failed (exit {proc.returncode}): {detail}")
    return json.loads(lines[-1])


def _versions() -> dict[str, str]:
    import tf_keras

    return {
        "mmoe_tf": mmoe_tf.__version__,
        "tensorflow": tf.__version__,
        "tf_keras": tf_keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _next_version(model_dir: Path) -> int:
    return max(numeric_versions(model_dir), default=0) + 1


def export_model(
    model: tf.keras.Model,
    base_path: str | Path,
    model_name: str = "mmoe",
    version: int | None = None,
    sample_features: Mapping[str, Any] | pd.DataFrame | None = None,
    score_weights: Mapping[str, float] | None = None,
) -> Path:
    """Export ``model`` to ``base_path/model_name/<version>/`` atomically and verify it.

    Args:
        model: A Keras model with named scalar inputs and dict outputs ``{name: [B, 1]}``.
        base_path: The TF Serving base path (created if missing).
        model_name: Model name (no ``/`` or ``:``).
        version: Version number; default is one above the highest existing version.
        sample_features: A few real rows (dict or DataFrame) used for verification and warm-up records;
            synthetic rows are used when ``None``.
        score_weights: ``{output: weight}`` for ``ranking_score``; default weight 1 for every task.

    Returns:
        The final version directory.

    Raises:
        ValueError: bad name, version or weights. FileExistsError: the version already exists.
        ExportVerificationError: the SavedModel does not reproduce the Keras predictions.
    """
    if not model_name or "/" in model_name or ":" in model_name:
        raise ValueError(f"export_model: field 'model_name' must be non-empty without '/' or ':', got {model_name!r}")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ValueError(f"export_model: field 'version' must be a positive integer, got {version!r}")
    model_dir = Path(base_path) / model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    if version is not None and (model_dir / str(version)).exists():
        raise FileExistsError(f"export_model: version {version} already exists at {model_dir / str(version)}")

    config = model_config_dict(model)
    specs = input_specs(model)
    gates = _gate_model(model)
    rows = _synthetic_features(specs) if sample_features is None else prepare_features(sample_features, specs, config)
    sigs = _Signatures(model, gates, {})
    outputs = _predict_numpy(sigs.serving_default, rows, specs)
    sigs.weights = _score_weights(score_weights, list(outputs), config)
    expected = {
        "outputs": outputs,
        "gates": _predict_numpy(sigs.gate_weights, rows, specs) if gates is not None else {},
        "score_weights": sigs.weights,
    }

    archive = tf.keras.export.ExportArchive()
    archive.track(model)
    if gates is not None:
        archive.track(gates)
    archive.add_endpoint("serving_default", sigs.serving_default, input_signature=[specs])
    if gates is not None:
        archive.add_endpoint("gates", sigs.gate_weights, input_signature=[specs])
    archive.add_endpoint("ranking_score", sigs.ranking_score, input_signature=[specs])
    signature_names = ["serving_default", *(["gates"] if gates is not None else []), "ranking_score"]

    tmp = model_dir / f".tmp-{uuid.uuid4().hex}"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            archive.write_out(str(tmp))
        extra = tmp / "assets.extra"
        extra.mkdir()
        warmup_rows = {k: v[:8] for k, v in rows.items()}
        n_warmup = write_warmup_file(extra / WARMUP_FILENAME, model_name, warmup_rows, signature_names)
        report = verify_export(tmp, rows, expected, _verify_tolerance(config, expected))
        info = {
            "model_name": model_name,
            "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "signatures": signature_names,
            "inputs": {k: {"dtype": s.dtype.name, "shape": [-1, *s.shape[1:]]} for k, s in specs.items()},
            "outputs": list(outputs),
            "gate_outputs": list(expected["gates"]),
            "score_weights": sigs.weights,
            "model_config": config,
            "versions": _versions(),
            "verification": report,
            "warmup_records": n_warmup,
        }
        return _move_into_place(tmp, model_dir, version, info)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _move_into_place(tmp: Path, model_dir: Path, version: int | None, info: dict) -> Path:
    for _ in range(100):
        number = version if version is not None else _next_version(model_dir)
        info["version"] = number
        (tmp / "assets.extra" / EXPORT_INFO).write_text(json.dumps(info, indent=2, sort_keys=True))
        target = model_dir / str(number)
        try:
            os.rename(tmp, target)  # atomic on one filesystem; fails if target exists and is non-empty
            return target
        except OSError:
            if version is not None or not target.exists():
                raise
    raise FileExistsError(f"export_model: could not find a free version number in {model_dir}")
