"""Training through ``data.make_dataset`` as a finite dataset (a new iterator per epoch) or a repeated one.

``model.fit`` creates a new iterator at every epoch of a finite dataset; for a shuffled ``make_dataset`` that
costs tens of ms (tf.data instantiates and optimises the pipeline's functions, then the first batch waits for the
epoch's permutation) while the training step waits. A repeated dataset with ``steps_per_epoch`` keeps one iterator
for the whole ``fit``: the same batches per epoch, the next epoch's first batches prefetched like any other.
``python -m training`` now trains this way. Contenders, the same mmoe-tf ``mmoe`` model and sizes as
``bench/peer_throughput.py`` on ``--rows`` rows, one model each, after one untimed epoch, each round running them
in alternating order (forward, then reversed):

- ``cached``: the table-order batches of ``make_dataset``, cached in memory (the ceiling);
- ``finite``: ``make_dataset(shuffle=True)`` fitted for ``--epochs`` epochs (the previous CLI path);
- ``repeated``: ``make_dataset(shuffle=True, repeat=True)`` with ``steps_per_epoch=batches_per_pass(...)`` (the CLI).

Also printed: the time to create an iterator and get its first batch, per dataset. One thread per op
(``mmoe_tf.configure_cpu_threads``, as the CLI runs). Medians of wall-clock examples/s, process CPU µs per example,
and the per-round ratio ``repeated / finite``.

Usage:
    .venv/bin/python bench/repeated_pipeline.py [--rounds 7] [--batch-sizes 512 2048] [--epochs 3]

The last printed line is one JSON object with the figures and the ratios.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import fit_rounds


def first_batch_ms(dataset: object, repeats: int = 9) -> float:
    """Median time to create an iterator of ``dataset`` and take its first element, in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        next(iter(dataset))
        times.append(1e3 * (time.perf_counter() - start))
    return round(statistics.median(times), 2)


def main(argv: list[str] | None = None) -> dict:
    args = fit_rounds.parse_args(__doc__.split("\n")[0], epochs=3, argv=argv)
    import mmoe_tf

    mmoe_tf.configure_cpu_threads(args.intra_op_threads)

    from data import batches_per_pass, make_dataset

    df, schema = fit_rounds.benchmark_table(args.rows)
    result: dict = {"benchmark": "repeated_pipeline", "by_batch_size": {}}
    for batch in args.batch_sizes:
        steps = batches_per_pass(len(df), batch)
        datasets = {
            "cached": (fit_rounds.cached_batches(df, schema, batch), None),
            "finite": (make_dataset(df, schema, batch_size=batch, shuffle=True, seed=0), None),
            "repeated": (make_dataset(df, schema, batch_size=batch, shuffle=True, seed=0, repeat=True), steps),
        }
        first = {name: first_batch_ms(ds) for name, (ds, _) in datasets.items()}
        print(f"[b={batch}] iterator + first batch: " + ", ".join(f"{n} {v} ms" for n, v in first.items()))
        block, rate = fit_rounds.time_fits(datasets, df, schema, args, batch, alternate=True)
        paired = [a / b for a, b in zip(rate["repeated"], rate["finite"], strict=True)]
        result["by_batch_size"][str(batch)] = {
            **block,
            "repeated_vs_finite_paired": round(statistics.median(paired), 3),
            "repeated_vs_finite_rounds": [round(x, 3) for x in paired],
            "iterator_first_batch_ms": first,
        }
    result.update(fit_rounds.settings(args))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
