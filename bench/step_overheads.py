"""Per-step overheads around the model: Keras' steps per execution, and the input pipeline's shuffle.

Same data and model sizes as ``bench/peer_throughput.py`` (``simulate_ctr_table``, 8 experts × 64
units, towers 32). Two side-by-side measurements, contenders alternated over ``--rounds`` rounds,
medians reported:

1. ``steps_per_execution`` (``ModelConfig.steps_per_execution``, passed to ``compile``) at each
   ``--batch-sizes`` value: one epoch of ``fit`` on ``data.make_dataset`` (shuffled) and one
   ``predict``, as wall-clock examples/s and process CPU µs per example.
2. One pass over ``make_dataset``'s batches (no model): the whole-table shuffle buffer the pipeline
   used before (``Dataset.range(n).shuffle(n)`` then ``batch``, one gather per column), the per-epoch
   permutation (``data.pipeline.permuted_batches``) with one gather per column and with one gather
   per dtype (``data.pipeline.row_gatherer``, what ``make_dataset`` does now), and no shuffle (table
   order: batched indices with one gather per column before, contiguous slices per dtype now); CPU µs
   per row. ``--skip-steps`` runs only this part (keeping the first part of an existing ``--out``).

Usage: ``.venv/bin/python bench/step_overheads.py [--rows 100000] [--rounds 5] [--out docs/bench/step_overheads.json]``.
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Keras 2 API before TensorFlow resolves tf.keras

import tensorflow as tf  # noqa: E402

import mmoe_tf  # noqa: E402
from data import feature_arrays, make_dataset  # noqa: E402
from data.arrays import typed_feature_arrays, typed_labels_and_weights  # noqa: E402
from data.generators import simulate_ctr_table  # noqa: E402
from data.pipeline import permuted_batches, row_gatherer, row_slicer  # noqa: E402


def measured(fn: Any, examples: int) -> tuple[float, float]:
    """(examples/s wall-clock, process CPU µs per example) of one call of ``fn``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return examples / (time.perf_counter() - wall), (time.process_time() - cpu) / examples * 1e6


def steps_per_execution(df: Any, schema: Any, batch: int, values: list[int], rounds: int) -> dict[str, Any]:
    """fit/predict examples/s and CPU µs per example for each ``steps_per_execution`` value."""
    train = make_dataset(df, schema, batch_size=batch, shuffle=True, seed=0)
    features = make_dataset(df, schema, batch_size=batch, with_labels=False)
    models = {}
    for spe in values:
        config = schema.model_config(
            architecture="mmoe", num_experts=8, expert_units=(64,), tower_units=(32,), steps_per_execution=spe
        )
        model = mmoe_tf.build_model(config, adapt_data=feature_arrays(df, schema))
        model.fit(train, epochs=1, verbose=0)  # warm-up: traces train and predict
        model.predict(features, verbose=0)
        models[spe] = model
    runs: dict[int, dict[str, list[float]]] = {
        v: {"train": [], "train_cpu": [], "predict": [], "predict_cpu": []} for v in values
    }
    n = len(df)
    for r in range(rounds):
        for spe, model in models.items():
            rate, cpu = measured(lambda m=model: m.fit(train, epochs=1, verbose=0), n)
            runs[spe]["train"].append(rate)
            runs[spe]["train_cpu"].append(cpu)
            rate, cpu = measured(lambda m=model: m.predict(features, verbose=0), n)
            runs[spe]["predict"].append(rate)
            runs[spe]["predict_cpu"].append(cpu)
        line = ", ".join(
            f"spe {s}: train {v['train'][-1]:,.0f}/s predict {v['predict'][-1]:,.0f}/s" for s, v in runs.items()
        )
        print(f"[b={batch}] round {r + 1}: {line}", flush=True)
    table = {
        str(spe): {
            "train_examples_per_s": round(statistics.median(v["train"])),
            "train_cpu_us_per_example": round(statistics.median(v["train_cpu"]), 2),
            "predict_examples_per_s": round(statistics.median(v["predict"])),
            "predict_cpu_us_per_example": round(statistics.median(v["predict_cpu"]), 2),
        }
        for spe, v in runs.items()
    }
    first, chosen = (
        table[str(values[0])],
        table[str(mmoe_tf.ModelConfig.__dataclass_fields__["steps_per_execution"].default)],
    )
    return {
        "by_steps_per_execution": table,
        "default_vs_1": {
            "train_speedup": round(chosen["train_examples_per_s"] / first["train_examples_per_s"], 3),
            "train_cpu_ratio": round(chosen["train_cpu_us_per_example"] / first["train_cpu_us_per_example"], 3),
            "predict_speedup": round(chosen["predict_examples_per_s"] / first["predict_examples_per_s"], 3),
        },
    }


def shuffle_cost(df: Any, schema: Any, batch: int, rounds: int) -> dict[str, Any]:
    """CPU µs per row of one pass over the pipeline's batches with each way of ordering the rows."""
    n = len(df)
    elements = (typed_feature_arrays(df, schema), *typed_labels_and_weights(df, schema))
    columns = tf.nest.map_structure(tf.convert_to_tensor, elements)

    def gathered(indices: tf.data.Dataset) -> tf.data.Dataset:
        return indices.map(
            lambda idx: tf.nest.map_structure(lambda c: tf.gather(c, idx), columns), num_parallel_calls=tf.data.AUTOTUNE
        ).prefetch(tf.data.AUTOTUNE)

    contenders = {
        "shuffle buffer, gather per column (before)": gathered(
            tf.data.Dataset.range(n).shuffle(n, seed=0).batch(batch)
        ),
        "permuted_batches, gather per column": gathered(permuted_batches(n, batch, seed=0)),
        "permuted_batches, gather per dtype (now)": permuted_batches(n, batch, seed=0)
        .map(row_gatherer(elements), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE),
        "no shuffle, gather per column": gathered(tf.data.Dataset.range(n).batch(batch)),
        "no shuffle, slice per dtype (now)": tf.data.Dataset.range(-(-n // batch))
        .map(row_slicer(elements, batch), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE),
    }
    cpu: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for name, ds in contenders.items():
            cpu[name].append(measured(lambda ds=ds: [None for _ in ds], n)[1])
    table = {k: round(statistics.median(v), 3) for k, v in cpu.items()}
    before = table["shuffle buffer, gather per column (before)"]
    return {
        "cpu_us_per_row": table,
        "now_vs_before": round(table["permuted_batches, gather per dtype (now)"] / before, 3),
        "table_order_now_vs_before": round(
            table["no shuffle, slice per dtype (now)"] / table["no shuffle, gather per column"], 3
        ),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--values", type=int, nargs="+", default=[1, 4, 16, 64], help="steps_per_execution values")
    p.add_argument("--skip-steps", action="store_true", help="only the input-pipeline part")
    p.add_argument("--out", default=None, help="also write the JSON here (e.g. docs/bench/step_overheads.json)")
    args = p.parse_args(argv)
    tf.keras.utils.set_random_seed(0)
    df, schema = simulate_ctr_table(n_rows=args.rows, seed=0)
    result: dict[str, Any] = {"benchmark": "step_overheads", "rows": args.rows, "rounds": args.rounds}
    if args.skip_steps and args.out and Path(args.out).exists():  # keep the steps part of an earlier run
        result["steps_per_execution"] = json.loads(Path(args.out).read_text())["steps_per_execution"]
    elif not args.skip_steps:
        result["steps_per_execution"] = {
            str(b): steps_per_execution(df, schema, b, args.values, args.rounds) for b in args.batch_sizes
        }
    result["shuffle"] = {str(b): shuffle_cost(df, schema, b, args.rounds) for b in args.batch_sizes}
    result["machine"] = {
        "cpus": os.cpu_count(),
        "load_average_end": round(os.getloadavg()[0], 2),
        "tensorflow": tf.__version__,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
