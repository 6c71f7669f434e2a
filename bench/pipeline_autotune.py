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

import json
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import fit_rounds


def main(argv: list[str] | None = None) -> dict:
    args = fit_rounds.parse_args(__doc__.split("\n")[0], epochs=2, argv=argv)
    import mmoe_tf

    mmoe_tf.configure_cpu_threads(args.intra_op_threads)
    import tensorflow as tf

    from data import make_dataset
    from data.arrays import typed_feature_arrays, typed_labels_and_weights
    from data.pipeline import finish, permuted_batches, row_gatherer

    df, schema = fit_rounds.benchmark_table(args.rows)
    elements = (typed_feature_arrays(df, schema), *typed_labels_and_weights(df, schema))
    result: dict = {"benchmark": "pipeline_autotune", "by_batch_size": {}}
    for batch in args.batch_sizes:
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
            "cached": (fit_rounds.cached_batches(df, schema, batch), None),
            "make_dataset": (make_dataset(df, schema, batch_size=batch, shuffle=True, seed=0), None),
            "make_dataset_autotuned": (autotuned, None),
            "make_dataset_parallel2": (parallel2, None),
        }
        result["by_batch_size"][str(batch)], _ = fit_rounds.time_fits(
            datasets, df, schema, args, batch, alternate=False
        )
    result.update(fit_rounds.settings(args))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
