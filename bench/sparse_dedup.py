"""CPU per training example with and without Keras' deduplication of sparse (embedding) gradients (a candidate).

``FusedAdam`` densifies an embedding table's ``IndexedSlices`` gradient with one segment sum, which adds repeated
rows, so it could skip the ``Unique`` + segment sum that Keras' optimizer runs on every sparse gradient first (the
candidate, ``_skip_deduplication`` below; measured and not taken, ``docs/performance.md``). This times the peer
benchmark's model (``bench/peer_throughput.py``: 8 experts × 64, 4 embedding tables) trained through
``data.make_dataset(repeat=True)`` on one TensorFlow thread (CPU time is the steadier measure of work), with Keras'
deduplication (as shipped) and without it. Two model instances per contender, rounds alternated (reversed every
other round): instances of the same model differ by a few per cent.

Usage:
    .venv/bin/python bench/sparse_dedup.py [--batch-sizes 512 2048] [--rounds 9]

The last printed line is one JSON object with the figures and the ratio (CPU with deduplication / without).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf
from fit_rounds import timed_rounds

import mmoe_tf
from data import batches_per_pass, feature_arrays, make_dataset
from data.generators import simulate_ctr_table
from mmoe_tf.optimizers import FusedAdam

CONTENDERS = ("skipped", "keras_dedup", "keras_dedup_2", "skipped_2")


def _skip_deduplication(self: FusedAdam, grads: list) -> list:
    """The candidate: float32 sparse gradients go to the fused update as they are (its segment sum adds repeats)."""
    fused = [isinstance(g, tf.IndexedSlices) and g.dtype == tf.float32 for g in grads]
    kept = tf.keras.optimizers.Adam._deduplicate_sparse_grad(
        self, [None if f else g for f, g in zip(fused, grads, strict=True)]
    )
    return [g if f else k for f, g, k in zip(fused, grads, kept, strict=True)]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--rows", type=int, default=160_000)
    p.add_argument("--rounds", type=int, default=9)
    args = p.parse_args(argv)
    threads = mmoe_tf.configure_cpu_threads(1, 1)
    df, schema = simulate_ctr_table(n_rows=args.rows, seed=0)
    adapt = feature_arrays(df, schema)
    config = schema.model_config(
        architecture="mmoe", num_experts=8, expert_units=(64,), tower_units=(32,), learning_rate=1e-3
    )
    shipped = FusedAdam._deduplicate_sparse_grad
    by_batch = {}
    for batch in args.batch_sizes:
        dataset = make_dataset(df, schema, batch_size=batch, shuffle=True, seed=0, repeat=True)
        steps = batches_per_pass(len(df), batch)
        models = {}
        try:
            for name in CONTENDERS:  # the method is read when the train step is traced (the warm-up fit)
                FusedAdam._deduplicate_sparse_grad = shipped if name.startswith("keras") else _skip_deduplication
                models[name] = mmoe_tf.build_model(config, adapt_data=adapt)
                models[name].fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        finally:
            FusedAdam._deduplicate_sparse_grad = shipped
        runs = {
            name: functools.partial(model.fit, dataset, steps_per_epoch=steps, verbose=0)
            for name, model in models.items()
        }
        _, cpu = timed_rounds(runs, args.rounds)
        examples = steps * batch
        ratios = [
            d / s
            for d, s in zip(cpu["keras_dedup"] + cpu["keras_dedup_2"], cpu["skipped"] + cpu["skipped_2"], strict=True)
        ]
        row = {name: round(1e6 * statistics.median(v) / examples, 3) for name, v in cpu.items()}
        row["cpu_ratio_dedup_over_skipped_paired"] = round(statistics.median(ratios), 3)
        print(f"batch {batch}: {row}", flush=True)
        by_batch[str(batch)] = row
    result = {
        "benchmark": "sparse_dedup",
        "unit": "CPU µs per training example, one thread (median of alternated rounds)",
        "by_batch_size": by_batch,
        "settings": {"rows": args.rows, "rounds": args.rounds, "threads": threads},
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
