"""Probe: XLA-compile the dense part of the real model (experts, gates, towers), lookups left outside.

The benchmark model of ``bench/peer_throughput.py`` (8 experts × 64 units, towers 32) is split into its
feature encoder (vocabulary lookups, embeddings, normalisation: not XLA-compilable because of the lookup
tables) and the rest, which runs in a ``tf.function(jit_compile=True)``; the loss, the optimizer and the
metrics stay as Keras runs them. The same model without XLA trains alongside, alternated over
``--rounds`` rounds of one epoch on a cached dataset; medians of examples/s and of the process's CPU
µs per example (the steadier figure on a shared machine). ``--threads 1`` pins
TensorFlow to one thread.

Usage: ``.venv/bin/python bench/xla_dense_part.py [--rows 100000] [--batch-size 512] [--rounds 3] [--threads 0]``.
The last printed line is one JSON object with both rates and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf


def with_xla_dense_part(model: Any) -> Any:
    """Replace ``model``'s train step with one whose experts, gates and towers run XLA-compiled."""
    encoded = model.get_layer("features").output
    encoder = tf.keras.Model(model.inputs, encoded)
    dense = tf.keras.Model(encoded, dict(zip(model.output_names, model.outputs, strict=True)))
    dense_xla = tf.function(lambda e: dense(e, training=True), jit_compile=True)

    def train_step(data: Any) -> dict[str, Any]:
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = dense_xla(encoder(x, training=True))
            loss = model.compute_loss(x, y, y_pred, sample_weight)
        model.optimizer.minimize(loss, model.trainable_variables, tape=tape)
        return model.compute_metrics(x, y, y_pred, sample_weight)

    model.train_step = train_step
    model.make_train_function(force=True)
    return model


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import mmoe_tf
    from data import feature_arrays, make_dataset
    from data.generators import simulate_ctr_table

    df, schema = simulate_ctr_table(n_rows=args.rows, seed=0)
    ds = make_dataset(df, schema, batch_size=args.batch_size).cache()
    for _ in ds:  # fill the cache before timing
        pass

    def build() -> Any:
        tf.keras.utils.set_random_seed(0)
        config = schema.model_config(architecture="mmoe", num_experts=8, expert_units=(64,), tower_units=(32,))
        return mmoe_tf.build_model(config, adapt_data=feature_arrays(df, schema))

    contenders = {"keras": build(), "xla_dense_part": with_xla_dense_part(build())}
    for model in contenders.values():
        model.fit(ds, epochs=1, verbose=0)  # warm-up: trace (and compile)
    rates: dict[str, list[float]] = {k: [] for k in contenders}
    cpu: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(args.rounds):
        for name, model in contenders.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            model.fit(ds, epochs=1, verbose=0)
            rates[name].append(args.rows / (time.perf_counter() - start))
            cpu[name].append((time.process_time() - start_cpu) / args.rows * 1e6)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items()), flush=True)
    result = {k: round(statistics.median(v)) for k, v in rates.items()}
    cpu_result = {k: round(statistics.median(v), 2) for k, v in cpu.items()}
    out = {
        "benchmark": "xla_dense_part",
        "examples_per_s": result,
        "cpu_us_per_example": cpu_result,
        "xla_vs_keras": round(result["xla_dense_part"] / result["keras"], 3),
        "xla_vs_keras_cpu": round(cpu_result["xla_dense_part"] / cpu_result["keras"], 3),
        "settings": vars(args),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
