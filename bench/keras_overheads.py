"""Python-side overhead of Keras' ``fit`` / ``predict`` calls: mmoe-tf's dependency lookup against Keras' own.

Keras looks up every trackable attribute it sets on a model (``predict_function`` on each
``predict``, ``test_function`` on each ``evaluate``, ``train_function`` on each ``fit``), and the
functional model's lookup lists every layer with weights first. ``MultiTaskModel._lookup_dependency``
skips that scan for names that cannot be layers.

This runs the same model twice, side by side: as ``build_model`` returns it, and with Keras' own
``_lookup_dependency`` restored (a subclass). A cached ``metrics`` list was measured the same way and
rejected (fit 2,580 against 2,553 ms: no gain). It alternates
``fit`` (3 epochs of ``--rows`` cached rows) and ``predict`` (``--predict-rows`` cached rows) over
``--rounds`` rounds, on one TensorFlow thread; figures are medians of process CPU time per call.

Usage:
    .venv/bin/python bench/keras_overheads.py [--batch-size 2048] [--rounds 7]

The last printed line is one JSON object with the figures and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Keras 2 API before TensorFlow resolves tf.keras

import tensorflow as tf  # noqa: E402

import mmoe_tf  # noqa: E402, F401  (sets up the Keras 2 API)
from data import feature_arrays, make_dataset  # noqa: E402
from data.generators import simulate_ctr_table  # noqa: E402


def with_keras_methods(model: tf.keras.Model) -> tf.keras.Model:
    """The same model object with Keras' own ``_lookup_dependency`` (the code before)."""
    functional = next(c for c in type(model).__mro__ if c.__name__ == "Functional")

    class KerasMethods(type(model)):
        def _lookup_dependency(self, name, cached_dependencies=None):
            return functional._lookup_dependency(self, name, cached_dependencies)

    model.__class__ = KerasMethods
    return model


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=160_000)
    parser.add_argument("--predict-rows", type=int, default=40_000)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    from peer_throughput import mmoe_tf_model, parse_args  # bench/ is this script's folder

    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    df, schema = simulate_ctr_table(n_rows=args.rows, seed=0)
    sizes = parse_args([])
    adapt = feature_arrays(df, schema)
    contenders = {
        "mmoe_tf": mmoe_tf_model(schema, "mmoe", adapt, sizes),
        "keras lookup (before)": with_keras_methods(mmoe_tf_model(schema, "mmoe", adapt, sizes)),
    }
    train = make_dataset(df, schema, batch_size=args.batch_size).cache()
    test = make_dataset(df.head(args.predict_rows), schema, batch_size=args.batch_size, with_labels=False).cache()
    for model in contenders.values():  # traces, fills the caches
        model.fit(train, verbose=0)
        model.predict(test, verbose=0)
    seconds: dict[str, dict[str, list[float]]] = {name: {"fit": [], "predict": []} for name in contenders}
    for r in range(args.rounds):
        order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
        for name in order:
            model = contenders[name]
            start = time.process_time()
            model.fit(train, epochs=3, verbose=0)
            seconds[name]["fit"].append(time.process_time() - start)
            start = time.process_time()
            model.predict(test, verbose=0)
            seconds[name]["predict"].append(time.process_time() - start)
    medians = {name: {k: statistics.median(v) for k, v in calls.items()} for name, calls in seconds.items()}
    new, old = medians["mmoe_tf"], medians["keras lookup (before)"]
    result = {
        "benchmark": "keras_overheads",
        "unit": "process CPU ms per call, one TensorFlow thread (median of alternated rounds)",
        "batch_size": args.batch_size,
        "fit_3_epochs_rows": args.rows,
        "predict_rows": args.predict_rows,
        "ms_per_call": {name: {k: round(1e3 * v, 1) for k, v in m.items()} for name, m in medians.items()},
        "rounds_ms": {name: {k: [round(1e3 * x, 1) for x in v] for k, v in c.items()} for name, c in seconds.items()},
        "fit_cpu_ratio": round(new["fit"] / old["fit"], 3),
        "predict_cpu_ratio": round(new["predict"] / old["predict"], 3),
        "load_average": round(os.getloadavg()[0], 2),
    }
    for name, m in result["ms_per_call"].items():
        print(f"{name}: fit(3 epochs) {m['fit']} ms, predict {m['predict']} ms CPU")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
