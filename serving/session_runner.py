"""Runs a SavedModel's signatures through one TensorFlow ``Session``, as TF Serving does.

TF Serving loads a version as a ``SavedModelBundle`` (the MetaGraph tagged ``serve`` in a
``Session``) and answers a request with one ``Session::Run`` of the signature's feeds and fetches.
:class:`SessionRunner` does the same from Python: one C-API callable per signature (feeds and fetches
fixed once, ``TF_SessionMakeCallable``), called with numpy arrays: no eager tensors, no structured-argument
handling, no per-call feed handling in Python, the same numbers.

The callable comes from ``Session._make_callable_from_options`` (what tf-keras' graph-mode backend uses
too). The public ``Session.make_callable`` with a feed list falls back to a full ``Session.run`` per call,
whose Python feed and fetch handling cost ≈ 350 µs a call on the test export: 498 → 148 µs at batch 1 and
566 → 212 µs at batch 64 (7 alternated rounds of 200 calls, one op thread). Even the ``make_callable`` callable
takes 0.77× / 0.76× the time of ``tf.saved_model.load(...).signatures[name](**tensors)`` (``docs/serving.md``,
design decisions).

Imports only TensorFlow, numpy and the standard library (never ``mmoe_tf``).

Example:
    >>> runner = SessionRunner("/tmp/export/mmoe/1")  # doctest: +SKIP
    >>> runner.run("serving_default", {"price": np.array([9.5], np.float32), ...})  # doctest: +SKIP
    {'click': array([[0.31]], dtype=float32), 'satisfaction': array([[0.62]], dtype=float32)}
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2

SERVE_TAG = "serve"


class SessionRunner:
    """A SavedModel's ``serve`` MetaGraph loaded in its own graph and session.

    Args:
        path: The version directory (holding ``saved_model.pb`` and ``variables/``).
        intra_op_threads: Threads one op may use (0: TensorFlow's default); default: the process's
            current ``tf.config.threading`` setting.
        inter_op_threads: Threads running independent ops (0: default; -1: every op runs in the thread that
            calls :meth:`run`, no hand-off to a pool); default as above.

    Attributes:
        meta_graph: The loaded ``MetaGraphDef`` (its ``signature_def`` map describes every signature).
    """

    def __init__(self, path: str | Path, intra_op_threads: int | None = None, inter_op_threads: int | None = None):
        if intra_op_threads is None:
            intra_op_threads = tf.config.threading.get_intra_op_parallelism_threads()
        if inter_op_threads is None:
            inter_op_threads = tf.config.threading.get_inter_op_parallelism_threads()
        config = config_pb2.ConfigProto(
            intra_op_parallelism_threads=intra_op_threads,
            inter_op_parallelism_threads=inter_op_threads,
            allow_soft_placement=True,
        )
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph, config=config)
        logger = tf.get_logger()
        level = logger.level
        logger.setLevel("ERROR")  # the v1 loader's deprecation notice: this is the API TF Serving's loader mirrors
        try:
            with self._graph.as_default():
                self.meta_graph: meta_graph_pb2.MetaGraphDef = tf.compat.v1.saved_model.loader.load(
                    self._session, [SERVE_TAG], str(path)
                )
        except BaseException:
            self._session.close()
            raise
        finally:
            logger.setLevel(level)
        self._callables: dict[str, tuple[list[str], list[tf.DType], list[str], Callable]] = {}
        self._lock = threading.Lock()

    def _callable(self, signature_name: str) -> tuple[list[str], list[tf.DType], list[str], Callable]:
        found = self._callables.get(signature_name)
        if found is not None:
            return found
        with self._lock:
            if signature_name not in self._callables:
                signature = self.meta_graph.signature_def[signature_name]
                inputs = sorted(signature.inputs)
                outputs = sorted(signature.outputs)
                feeds = [self._graph.get_tensor_by_name(signature.inputs[k].name) for k in inputs]
                fetches = [self._graph.get_tensor_by_name(signature.outputs[k].name) for k in outputs]
                run = self._session._make_callable_from_options(  # private: see the module docstring
                    config_pb2.CallableOptions(feed=[t.name for t in feeds], fetch=[t.name for t in fetches])
                )
                self._callables[signature_name] = (inputs, [t.dtype for t in feeds], outputs, run)
            return self._callables[signature_name]

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs ``{name: array}`` (sorted by name) of one signature for numpy ``inputs``.

        Values are converted to the signature's dtypes (numbers with ``np.asarray``, text to bytes).

        Raises:
            KeyError: an unknown signature or a missing input (callers check these first).
            tf.errors.OpError: TensorFlow rejected the values (e.g. a shape an op cannot take).
        """
        names, dtypes, outputs, run = self._callable(signature_name)
        values = [_feed_value(inputs[k], dtype) for k, dtype in zip(names, dtypes, strict=True)]
        return dict(zip(outputs, run(*values), strict=True))

    def close(self) -> None:
        """Release the session (its variables and lookup tables)."""
        self._session.close()


def _feed_value(value: np.ndarray, dtype: tf.DType) -> np.ndarray:
    if dtype != tf.string:
        return np.asarray(value, dtype=dtype.as_numpy_dtype)
    array = np.asarray(value)
    if array.dtype.kind == "U":
        return np.char.encode(array, "utf-8")
    if array.dtype.kind == "O" and any(isinstance(v, str) for v in array.flat):
        return np.array([v.encode("utf-8") if isinstance(v, str) else v for v in array.flat], dtype=object).reshape(
            array.shape
        )
    return array
