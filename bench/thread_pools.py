"""Training speed under TensorFlow's default thread pools against one thread per op, for mmoe-tf and DeepCTR.

TensorFlow's thread pools are fixed for a process once its runtime starts, so each setting runs in its own
worker process; the settings alternate over ``--rounds`` rounds (A, B, A, B, …). A worker trains, on the data and
sizes of ``bench/peer_throughput.py``, mmoe-tf ``mmoe`` fed by ``data.make_dataset`` (shuffled, the CLI's path) and
DeepCTR ``MMOE`` fed numpy arrays, at each batch size, and times ``--epochs`` epochs of ``fit`` after one untimed
epoch. Settings (``intra,inter``; 0 = TensorFlow's default, all cores): ``0,0`` (TensorFlow's default) and ``1,0``
(one thread per op, ops side by side: what ``mmoe_tf.configure_cpu_threads`` sets). Medians over rounds.
Runs in the benchmark venv of ``bench/peer_throughput.py`` (DeepCTR).

Usage:
    python3 bench/thread_pools.py [--rounds 3] [--epochs 2] [--batch-sizes 512 2048]

The last printed line is one JSON object: examples/s per setting, library and batch size, the ratios of one
thread per op to the default, and mmoe-tf with one thread per op against DeepCTR under each setting (its users'
default being TensorFlow's).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

SETTINGS = {"tensorflow_default": (0, 0), "one_thread_per_op": (1, 0)}


def worker(intra: int, inter: int, rows: int, batch_sizes: list[int], epochs: int) -> dict:
    """Train both libraries' MMoE at every batch size in this process; examples/s per (library, batch)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import numpy as np
    import peer_throughput as peer
    import tensorflow as tf

    import mmoe_tf
    from data import feature_arrays, make_dataset
    from data.generators import simulate_ctr_table

    mmoe_tf.configure_cpu_threads(intra, inter)
    tf.keras.utils.set_random_seed(0)
    df, schema = simulate_ctr_table(n_rows=rows, seed=0)
    sizes = peer.parse_args([])
    encoded, cardinalities = peer.deepctr_inputs({"train": df, "test": df.head(1)}, schema)
    labels = [df[t.name].to_numpy(np.float32) for t in schema.tasks]
    out: dict[str, float] = {}
    for batch in batch_sizes:
        ours = peer.mmoe_tf_model(schema, "mmoe", feature_arrays(df, schema), sizes)
        dataset = make_dataset(df, schema, batch_size=batch, shuffle=True, seed=0)
        theirs = peer.deepctr_model("MMOE", schema, cardinalities, sizes)
        fits = {
            "mmoe_tf/mmoe": lambda e, m=ours, d=dataset: m.fit(d, epochs=e, verbose=0),
            "deepctr/MMOE": lambda e, m=theirs, b=batch: m.fit(
                encoded["train"], labels, batch_size=b, epochs=e, shuffle=True, verbose=0
            ),
        }
        for name, fit in fits.items():
            fit(1)  # traces the step
            start = time.perf_counter()
            fit(epochs)
            out[f"{name}@{batch}"] = epochs * len(df) / (time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> dict:
    import peer_throughput as peer

    peer.reexec_in_bench_venv(str(pathlib.Path(__file__).resolve()))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=160_000)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--worker", help=argparse.SUPPRESS)  # "intra,inter": run one worker, print its JSON
    args = p.parse_args(argv)
    if args.worker:
        intra, inter = (int(v) for v in args.worker.split(","))
        print(json.dumps(worker(intra, inter, args.rows, args.batch_sizes, args.epochs)))
        return {}
    runs: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    for r in range(args.rounds):
        for name, (intra, inter) in SETTINGS.items():
            command = [sys.executable, __file__, "--worker", f"{intra},{inter}", "--rows", str(args.rows)]
            command += ["--epochs", str(args.epochs), "--batch-sizes", *map(str, args.batch_sizes)]
            env = {k: v for k, v in os.environ.items() if k not in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}
            done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1} {name}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in runs[name][-1].items()))
    keys = list(runs["tensorflow_default"][0])
    median = {name: {k: round(statistics.median(run[k] for run in rs)) for k in keys} for name, rs in runs.items()}
    result = {
        "benchmark": "thread_pools",
        "unit": "training examples/s (median of alternated rounds, one process per setting and round)",
        "settings": {name: {"intra_op_threads": a, "inter_op_threads": b} for name, (a, b) in SETTINGS.items()},
        "examples_per_s": median,
        "rounds": {name: [{k: round(v) for k, v in run.items()} for run in rs] for name, rs in runs.items()},
        "one_thread_per_op_vs_default": {
            k: round(median["one_thread_per_op"][k] / median["tensorflow_default"][k], 3) for k in keys
        },
        "mmoe_tf_one_thread_per_op_vs_deepctr": {
            f"{batch} (DeepCTR at {setting})": round(
                median["one_thread_per_op"][f"mmoe_tf/mmoe@{batch}"] / median[setting][f"deepctr/MMOE@{batch}"], 3
            )
            for batch in args.batch_sizes
            for setting in SETTINGS
        },
        "rows": args.rows,
        "epochs_per_round": args.epochs,
        "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
