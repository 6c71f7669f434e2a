"""Training with large batches split into two halves run side by side (``ModelConfig.train_split_rows``) or whole.

A training step of the benchmark's MMoE is a chain of ops that mostly depend on each other, so TensorFlow's two
inter-op threads find little to run at once, and with one thread per op a second core sits idle for much of the
step. With ``train_split_rows`` set (opt-in), ``MultiTaskModel.train_step`` runs a batch of at least that many rows
as two halves, whose forward and backward ops are independent until the loss; the inter-op threads run them side by
side.
Contenders, the same mmoe-tf ``mmoe`` model and sizes as ``bench/peer_throughput.py`` on ``--rows`` rows, trained
through ``make_dataset(shuffle=True, repeat=True)`` with ``steps_per_epoch`` (the CLI's path), one model each, after
one untimed epoch, each round running them in alternating order:

- ``whole``: ``train_split_rows=0`` (the default: every batch in one forward pass);
- ``split``: ``train_split_rows=1024``, which below 1,024 rows runs the whole batch and an empty one.

One thread per op (``mmoe_tf.configure_cpu_threads``, as the CLI runs); ``--inter-op-threads 1`` shows what the split
is worth without ops running side by side. Medians of wall-clock examples/s, process CPU µs per example, and the
per-round ratio ``split / whole``.

Usage:
    .venv/bin/python bench/split_step.py [--rounds 5] [--batch-sizes 256 512 1024 2048 4096] [--epochs 2]

The last printed line is one JSON object with the figures and the ratios.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import fit_rounds


def main(argv: list[str] | None = None) -> dict:
    args = fit_rounds.parse_args(
        __doc__.split("\n")[0], epochs=2, argv=argv, batch_sizes=(256, 512, 1024, 2048, 4096), inter_op_option=True
    )
    import mmoe_tf

    mmoe_tf.configure_cpu_threads(args.intra_op_threads, args.inter_op_threads or None)

    from data import batches_per_pass, make_dataset

    df, schema = fit_rounds.benchmark_table(args.rows)
    result: dict = {"benchmark": "split_step", "by_batch_size": {}}
    for batch in args.batch_sizes:
        steps = batches_per_pass(len(df), batch)
        dataset = make_dataset(df, schema, batch_size=batch, shuffle=True, seed=0, repeat=True)
        contenders = {"whole": (dataset, steps), "split": (dataset, steps)}
        block, rate = fit_rounds.time_fits(
            contenders, df, schema, args, batch, alternate=True, model_overrides={"split": {"train_split_rows": 1024}}
        )
        paired = [a / b for a, b in zip(rate["split"], rate["whole"], strict=True)]
        result["by_batch_size"][str(batch)] = {
            **block,
            "split_vs_whole_paired": round(statistics.median(paired), 3),
            "split_vs_whole_rounds": [round(x, 3) for x in paired],
        }
    result.update(fit_rounds.settings(args))
    result["inter_op_threads"] = args.inter_op_threads
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
