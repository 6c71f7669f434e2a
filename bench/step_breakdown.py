"""Where one training step of an mmoe-tf model spends its time and its graph ops.

The models and data of ``peer_throughput.py``'s size classes (``--sizes``; one result per class). The step is built
up in stages (input, preprocessing, forward, loss, backward, optimizer, Keras' whole ``train_step``) timed over the
same cached batches in alternated rounds; a stage's cost is the difference of medians (µs per example; CPU time
with ``--threads 1``). ``--profile`` also sums each op's self time in traced steps by part of the step (in the
benchmark environment).

Usage:
    .venv/bin/python bench/step_breakdown.py --batch-size 2048 --threads 1 --profile \
        --out docs/bench/step_breakdown.json
    .venv/bin/python bench/step_breakdown.py --rows 2000 --rounds 1 --batch-size 256 --sizes base  # a smoke run
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
from typing import Any

import harness
import tensorflow as tf
from peer_throughput import SIZES, model_config

import mmoe_tf
from data import feature_arrays, make_dataset
from data.generators import simulate_ctr_table

PARTS = {  # the part of the step an op belongs to <- substrings of its name (the first match wins)
    "backward": ("gradient_tape",),
    "optimizer": ("Adam",),
    "metrics": ("broadcast_weights", "auc"),
    "preprocessing": ("/features",),
    "experts + gates": ("/mmoe_", "/bottom"),
    "towers": ("/click", "/satisfaction"),
    "loss": ("logistic_loss",),
}
STAGES = {  # each stage adds one part of the step to the previous one; its cost is the difference of their times
    "input": "input (pipeline, overlapped with training by prefetch)",
    "preprocessing": "preprocessing",
    "forward": "experts + gates + towers (forward)",
    "loss": "loss and masking",
    "backward": "backward (all parts)",
    "optimizer": "optimizer",
    "train_step": "metrics, trackers and Keras step",
}


def part_of(name: str) -> str:
    """The part of the step an op of this (scoped) name belongs to."""
    return next(
        (part for part, keys in PARTS.items() if any(k in name for k in keys)), "other (masking, trackers, glue)"
    )


def ops_by_part(model: tf.keras.Model, dataset: tf.data.Dataset) -> dict[str, int]:
    """Non-constant ops of one traced train step, grouped by the part of the step they belong to."""
    graph = model.train_function.get_concrete_function(iter(dataset)).graph
    counts: collections.Counter[str] = collections.Counter()
    seen: set[str] = set()

    def walk(g: Any, scope: str) -> None:
        for op in g.get_operations():
            if op.type in ("Const", "NoOp", "Placeholder", "Identity"):
                continue
            counts[part_of(f"{scope}/{op.name}")] += 1
        for name, fn in g._functions.items():
            if name not in seen and getattr(fn, "graph", None) is not None:
                seen.add(name)
                walk(fn.graph, f"{scope}/{name}")

    walk(graph, "")
    return dict(counts.most_common())


def profile_step(model: tf.keras.Model, dataset: tf.data.Dataset, steps: int) -> dict[str, Any]:
    """Per-op self time of ``steps`` traced training steps (µs per step), by part of the step and by op."""
    import glob
    import tempfile

    from xprof.convert import raw_to_tool_data

    steps = sum(1 for _ in dataset.take(steps))  # the dataset may hold fewer batches (40,000 rows: 19 of 2,048)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        model.fit(dataset.take(steps), verbose=0)
        tf.profiler.experimental.stop()
        paths = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
        table = json.loads(raw_to_tool_data.xspace_to_tool_data(paths, "framework_op_stats", {})[0])[0]
    columns = {c["id"]: i for i, c in enumerate(table["cols"])}
    by_part: collections.Counter[str] = collections.Counter()
    by_op: collections.Counter[str] = collections.Counter()
    for row in table["rows"]:
        cells = [c["v"] if isinstance(c, dict) else c for c in row["c"]]
        op_type, name, self_us = cells[columns["type"]], cells[columns["operation"]], cells[columns["total_self_time"]]
        if op_type == "IDLE":
            continue
        by_part["input pipeline" if op_type == "Dataset" else part_of(name)] += self_us / steps
        by_op[f"{op_type} {name}"] += self_us / steps
    return {
        "steps_traced": steps,
        "op_self_time_us_per_step": round(sum(by_part.values()), 1),
        "by_part_us_per_step": {k: round(v, 1) for k, v in by_part.most_common()},
        "top_ops_us_per_step": {k: round(v, 1) for k, v in by_op.most_common(12)},
    }


def main(argv: list[str] | None = None) -> dict:
    p = harness.parser(__doc__, rounds=5)
    p.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=list(SIZES), help="size classes to break down")
    p.add_argument("--rows", type=int, default=40_000)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--threads", type=int, default=0, help="TensorFlow intra/inter-op threads (0: default)")
    p.add_argument("--profile", action="store_true", help="also report per-op self time of 60 traced training steps")
    args = p.parse_args(argv)
    if args.profile:
        harness.reexec_in_bench_env()
    if args.threads:
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    result = {"benchmark": "step_breakdown", "sizes": {size: breakdown_of(size, args) for size in args.sizes}}
    result |= {"tensorflow": tf.__version__, "machine": harness.machine()}
    return harness.emit(result, args.out)


def breakdown_of(size_class: str, args: argparse.Namespace) -> dict[str, Any]:
    """Stage times, ops by part and (with ``--profile``) per-op self time of one size class's training step."""
    size = SIZES[size_class]
    df, schema = simulate_ctr_table(n_rows=args.rows, cardinalities=size["cardinalities"], seed=0)
    model = mmoe_tf.build_model(model_config(schema, size), adapt_data=feature_arrays(df, schema))
    pipeline = make_dataset(df, schema, batch_size=args.batch_size, shuffle=True)
    batches = list(make_dataset(df, schema, batch_size=args.batch_size, drop_remainder=True))
    model.fit(tf.data.Dataset.from_tensors(batches[0]), verbose=0)  # builds the optimizer and the train function
    encoder = model.get_layer("features")
    variables = model.trainable_variables

    def loss_of(x: Any, y: Any, w: Any) -> tf.Tensor:
        return model.compute_loss(x, y, model(x, training=True), w)

    @tf.function
    def backward(x: Any, y: Any, w: Any) -> list:
        with tf.GradientTape() as tape:
            loss = loss_of(x, y, w)
        return tape.gradient(loss, variables)

    @tf.function
    def optimizer_step(x: Any, y: Any, w: Any) -> None:
        model.optimizer.apply_gradients(zip(backward(x, y, w), variables, strict=True))

    stacked = tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(lambda *t: tf.stack(t), *batches)).unbatch()
    stacked = stacked.batch(args.batch_size).cache()  # the same batches, as a dataset for Keras' own step
    encode, forward, loss = (tf.function(f) for f in (encoder, lambda x: model(x, training=True), loss_of))
    stages = dict(  # in the order of STAGES
        input=lambda: [None for _ in pipeline],
        preprocessing=lambda: [encode(x) for x, _, _ in batches],
        forward=lambda: [forward(x) for x, _, _ in batches],
        loss=lambda: [loss(*b) for b in batches],
        backward=lambda: [backward(*b) for b in batches],
        optimizer=lambda: [optimizer_step(*b) for b in batches],
        train_step=lambda: model.fit(stacked, verbose=0),
    )
    for fn in stages.values():  # trace
        fn()
    cpu = 1 if args.threads == 1 else 0  # harness.timed's CPU seconds on one thread, else its wall seconds
    seconds = harness.alternate(list(stages), args.rounds, lambda name, _r: harness.timed(stages[name])[cpu])
    us = {k: 1e6 * statistics.median(v) / (len(batches) * args.batch_size) for k, v in seconds.items()}
    order = list(STAGES)  # input overlaps the step: nothing is subtracted from it, nor from preprocessing
    cost = {k: us[k] - (us[order[i - 1]] if i > 1 else 0.0) for i, k in enumerate(order)}
    ops = ops_by_part(model, tf.data.Dataset.from_tensors(batches[0]))
    result = {
        "model": f"{size['num_experts']} experts × {size['expert_units']}, towers {size['tower_units']}, "
        f"{len(size['cardinalities'])} categorical features (up to {max(size['cardinalities']):,} values)",
        "unit": "µs per example (median of rounds; CPU time when --threads 1, else wall time)",
        "batch_size": args.batch_size,
        "threads": args.threads or "default",
        "ops_per_train_step": sum(ops.values()),
        "ops_by_part": ops,
        "stage_us_per_example": {k: round(v, 3) for k, v in us.items()},
        "breakdown_us_per_example": {text: round(cost[k], 3) for k, text in STAGES.items()},
        "train_examples_per_s": round(1e6 / us["train_step"]),
        "load_average": round(os.getloadavg()[0], 2),
    }
    if args.profile:
        result["profile"] = profile_step(model, stacked, 60)
    return result


if __name__ == "__main__":
    main()
