"""One SavedModel signature call in process: ``tf.saved_model.load`` signature vs the server's session path.

The local server answers through :class:`serving.session_runner.SessionRunner` (one ``Session`` per
version, a callable per signature, as TF Serving's ``SavedModelBundle``). This compares it with the
eager signature call of ``tf.saved_model.load`` on the same export and inputs, on one op thread (the
server's default), alternating the two for several rounds; figures are medians of µs per call.

Usage:
    .venv/bin/python bench/signature_call.py [--export DIR] [--rounds 7] [--calls 300]

Without ``--export`` it uses the serving tests' small export (``serving.testing.cached_export``);
pass a quick-start version directory (e.g. ``runs/quickstart/export/mmoe/1``) for the real model. The
last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf


def _batch(specs: dict[str, tf.TensorSpec], rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for name, spec in specs.items():
        if spec.dtype == tf.string:
            out[name] = np.array([b"a", b"b", b"c"] * rows, dtype=object)[:rows]
        elif spec.dtype.is_integer:
            out[name] = rng.integers(0, 5, size=rows).astype(spec.dtype.as_numpy_dtype)
        else:
            out[name] = rng.random(rows).astype(spec.dtype.as_numpy_dtype)
    return out


def measure(version_dir: pathlib.Path, rounds: int, calls: int) -> dict:
    """Median µs per call of both paths at batch 1 and 64 (outputs checked equal first)."""
    from serving.session_runner import SessionRunner

    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    specs = signature.structured_input_signature[1]
    runner = SessionRunner(version_dir)
    rng = np.random.default_rng(0)

    def eager(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = {k: tf.constant(x[k], dtype=specs[k].dtype) for k in specs}
        return {k: v.numpy() for k, v in signature(**tensors).items()}

    def session(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return runner.run("serving_default", x)

    result = {}
    for rows in (1, 64):
        x = _batch(specs, rows, rng)
        a, b = eager(x), session(x)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        micros: dict[str, list[float]] = {"signature_call": [], "session_runner": []}
        for _ in range(rounds):
            for name, fn in (("signature_call", eager), ("session_runner", session)):
                start = time.perf_counter()
                for _ in range(calls):
                    fn(x)
                micros[name].append((time.perf_counter() - start) / calls * 1e6)
        medians = {k: round(statistics.median(v), 1) for k, v in micros.items()}
        result[f"batch{rows}"] = {
            "us_per_call": medians,
            "rounds": {k: [round(v, 1) for v in vs] for k, vs in micros.items()},
            "session_over_signature": round(medians["session_runner"] / medians["signature_call"], 3),
        }
    runner.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--export", type=pathlib.Path, default=None, help="a SavedModel version directory")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    with tempfile.TemporaryDirectory(prefix="mmoe-bench-") as tmp:
        if args.export is None:
            from serving.testing import MODEL_NAME, cached_export

            version_dir = cached_export(pathlib.Path(tmp) / "export").base_path / MODEL_NAME / "1"
        else:
            version_dir = args.export
        figures = measure(version_dir, args.rounds, args.calls)
    for key, value in figures.items():
        print(f"{key}: {value['us_per_call']} (session/signature {value['session_over_signature']})")
    print(
        json.dumps(
            {
                "benchmark": "signature_call",
                "unit": "µs per call (median of alternated rounds, one op thread)",
                "export": str(args.export or "serving tests' export"),
                **figures,
                "load_average": round(os.getloadavg()[0], 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
