"""TF Serving warm-up records: ``assets.extra/tf_serving_warmup_requests`` (a TFRecord of ``PredictionLog``).

TF Serving replays these requests when it loads a version, so the first real request is not slow. Built from a
few real rows at export time.

Example:
    >>> write_warmup_file(path, "mmoe", {"price": np.array([1.0], np.float32)}, ["serving_default"])  # doctest: +SKIP
    2
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

WARMUP_FILENAME = "tf_serving_warmup_requests"


def predict_log(model_name: str, signature_name: str, features: Mapping[str, np.ndarray]) -> bytes:
    """One serialised ``PredictionLog`` holding a ``PredictRequest`` for ``features``.

    Args:
        model_name: ``model_spec.name`` of the request.
        signature_name: Signature the request targets.
        features: ``{input_name: array}`` (strings as ``bytes``/``str`` object arrays).
    """
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for name, values in features.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(values)))
    entry = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    return entry.SerializeToString()


def write_warmup_file(
    path: str | Path,
    model_name: str,
    features: Mapping[str, np.ndarray],
    signature_names: Sequence[str],
    batch_sizes: Sequence[int] = (1, 8),
) -> int:
    """Write warm-up records: for every signature, one request per batch size (capped at the rows available).

    Returns:
        The number of records written.

    Raises:
        ValueError: ``features`` holds no rows.
    """
    rows = len(next(iter(features.values()))) if features else 0
    if rows == 0:
        raise ValueError("write_warmup_file: field 'features' must hold at least one row")
    sizes = sorted({min(b, rows) for b in batch_sizes})
    count = 0
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature in signature_names:
            for size in sizes:
                writer.write(predict_log(model_name, signature, {k: v[:size] for k, v in features.items()}))
                count += 1
    return count


def read_warmup_file(path: str | Path) -> list[prediction_log_pb2.PredictionLog]:
    """Parse a warm-up file back into ``PredictionLog`` protos."""
    return [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
