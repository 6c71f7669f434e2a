"""CPU time per training example of mmoe-tf `mmoe` and DeepCTR `MMOE` on one TensorFlow thread.

Wall-clock throughput on a shared machine moves with everyone else's load; the CPU time a single
TensorFlow thread spends per example moves much less, and is what a change to the step itself
changes. Same data and sizes as ``bench/peer_throughput.py`` (its helpers build both models), both
fed the same batches from cached ``tf.data`` datasets (DeepCTR: its label-encoded inputs), epochs
alternated over ``--rounds`` rounds; medians. Runs in the benchmark venv (DeepCTR).

Usage:
    python3 bench/peer_cpu.py [--rows 50000] [--batch-size 512] [--rounds 5]

The last printed line is one JSON object with the figures and the ratio.
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


def main(argv: list[str] | None = None) -> dict:
    import peer_throughput as peer

    peer.reexec_in_bench_venv(str(pathlib.Path(__file__).resolve()))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=50_000)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import numpy as np
    import tensorflow as tf

    from data import feature_arrays, make_dataset
    from data.generators import simulate_ctr_table

    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(0)
    df, schema = simulate_ctr_table(n_rows=args.rows, seed=0)
    frames = {"train": df, "test": df.head(1)}
    sizes = peer.parse_args([])
    encoded, cardinalities = peer.deepctr_inputs(frames, schema)
    labels = tuple(df[t.name].to_numpy(np.float32) for t in schema.tasks)
    contenders = {
        "deepctr/MMOE": (
            peer.deepctr_model("MMOE", schema, cardinalities, sizes),
            tf.data.Dataset.from_tensor_slices((encoded["train"], labels)).batch(args.batch_size).cache(),
        ),
        "mmoe_tf/mmoe": (
            peer.mmoe_tf_model(schema, "mmoe", feature_arrays(df, schema), sizes),
            make_dataset(df, schema, batch_size=args.batch_size).cache(),
        ),
    }
    for model, dataset in contenders.values():
        model.fit(dataset, verbose=0)  # fills the cache and traces the step
    micros: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (model, dataset) in contenders.items():
            start = time.process_time()
            model.fit(dataset, verbose=0)
            micros[name].append(1e6 * (time.process_time() - start) / len(df))
    median = {name: statistics.median(v) for name, v in micros.items()}
    result = {
        "benchmark": "peer_cpu",
        "unit": "CPU µs per training example, one TensorFlow thread (median of alternated epochs)",
        "us_per_example": {k: round(v, 2) for k, v in median.items()},
        "rounds": {k: [round(x, 2) for x in v] for k, v in micros.items()},
        "mmoe_tf_speedup": round(median["deepctr/MMOE"] / median["mmoe_tf/mmoe"], 3),
        "rows": len(df),
        "batch_size": args.batch_size,
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
