"""Training through ``data.make_dataset`` with and without tf.data's autotuner, next to a cached dataset.

``make_dataset`` used to map its per-batch gather with ``num_parallel_calls=AUTOTUNE`` and prefetch
``AUTOTUNE`` batches; it now maps in order and prefetches 2 batches with the autotuner off. Contenders, all
the same mmoe-tf ``mmoe`` model and sizes as ``bench/peer_throughput.py`` on ``--rows`` rows, alternated over
``--rounds`` rounds of ``--epochs`` epochs after one untimed epoch:

- ``cached``: the table-order batches of ``make_dataset``, cached in memory (the ceiling);
- ``make_dataset``: shuffled, as the CLI feeds ``fit`` (no autotuner);
- ``make_dataset_autotuned``: the same batches through the previous tail (parallel map and prefetch autotuned);
- ``make_dataset_parallel2``: the same batches, 2 gathers in flight, prefetch 2, no autotuner.

One thread per op (``mmoe_tf.configure_cpu_threads``, as the CLI runs) unless ``--intra-op-threads`` says
otherwise. Medians of wall-clock examples/s and process CPU µs per example.

Usage:
    .venv/bin/python bench/pipeline_autotune.py [--rounds 7] [--batch-sizes 512 2048]

The last printed line is one JSON object with the figures and the ratios to ``cached``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=160_000)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--intra-op-threads", type=int, default=1)
    args = p.parse_args(argv)
    import mmoe_tf

    mmoe_tf.configure_cpu_threads(args.intra_op_threads)
    import peer_throughput as peer
    import tensorflow as tf

    from data import feature_arrays, make_dataset
    from data.arrays import ensure_validated, typed_feature_arrays, typed_labels_and_weights
    from data.generators import simulate_ctr_table
    from data.pipeline import finish, permuted_batches, row_gatherer

    tf.keras.utils.set_random_seed(0)
    df, schema = simulate_ctr_table(n_rows=args.rows, seed=0)
    df = ensure_validated(df, schema, with_labels=True)
    elements = (typed_feature_arrays(df, schema), *typed_labels_and_weights(df, schema))
    sizes = peer.parse_args([])
    result: dict = {"benchmark": "pipeline_autotune", "by_batch_size": {}}
    for batch in args.batch_sizes:
        cached = make_dataset(df, schema, batch_size=batch).cache()
        for _ in cached:  # fill the cache
            pass
        autotuned = finish(  # the previous tail: parallel map and prefetch sized by the autotuner
            permuted_batches(len(df), batch, seed=0).map(
                row_gatherer(elements), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
            ),
            with_labels=True,
            targets_fn=None,
        )
        parallel2 = finish(
            permuted_batches(len(df), batch, seed=0).map(
                row_gatherer(elements), num_parallel_calls=2, deterministic=True
            ),
            with_labels=True,
            targets_fn=None,
            autotune=False,
        )
        datasets = {
            "cached": cached,
            "make_dataset": make_dataset(df, schema, batch_size=batch, shuffle=True, seed=0),
            "make_dataset_autotuned": autotuned,
            "make_dataset_parallel2": parallel2,
        }
        models = {}
        for name, ds in datasets.items():
            models[name] = peer.mmoe_tf_model(schema, "mmoe", feature_arrays(df, schema), sizes)
            models[name].fit(ds, verbose=0)
        rate: dict[str, list[float]] = {n: [] for n in datasets}
        cpu: dict[str, list[float]] = {n: [] for n in datasets}
        for r in range(args.rounds):
            for name, ds in datasets.items():
                wall, proc = time.perf_counter(), time.process_time()
                models[name].fit(ds, epochs=args.epochs, verbose=0)
                rate[name].append(args.epochs * len(df) / (time.perf_counter() - wall))
                cpu[name].append(1e6 * (time.process_time() - proc) / (args.epochs * len(df)))
            print(f"[b={batch}] round {r + 1}: " + ", ".join(f"{n} {v[-1]:,.0f}/s" for n, v in rate.items()))
        median = {n: statistics.median(v) for n, v in rate.items()}
        result["by_batch_size"][str(batch)] = {
            "examples_per_s": {n: round(v) for n, v in median.items()},
            "cpu_us_per_example": {n: round(statistics.median(v), 2) for n, v in cpu.items()},
            "rounds": {n: [round(x) for x in v] for n, v in rate.items()},
            "ratio_to_cached": {n: round(v / median["cached"], 3) for n, v in median.items()},
        }
    result.update(
        rows=args.rows,
        epochs_per_round=args.epochs,
        intra_op_threads=args.intra_op_threads,
        cpus=os.cpu_count(),
        load_average=round(os.getloadavg()[0], 2),
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
