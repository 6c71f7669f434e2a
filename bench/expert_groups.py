"""Training speed of an MMoE's experts and gates computed as G groups of experts, on a stand-in of the dense part.

Before this, mmoe-tf ran all K experts as one GEMM and each gate's mixing over all of them: a training step was one
chain of ops, and TensorFlow's inter-op pool had little to run side by side. Split the experts into G groups (each its
own GEMM on a slice of the kernel, each gate mixing its slice of the weights, the partial mixtures added), and the
groups' forward and backward passes become independent chains that two cores can run at once; the arithmetic is the
same. This stand-in came first; the kept change is ``MMoE(expert_groups=...)``, measured on the real model by
``bench/expert_groups_real.py``.

The model here is the benchmark's dense part alone, on cached tensors: inputs ``[B, 48]`` (16 numeric + 4 × 8
embedding columns), 8 experts × 64 units, two linear softmax gates, towers of 32, a sigmoid cross-entropy per task and
a plain SGD update; no feature preprocessing, no Keras step, no metrics, no Adam. So its ratios bound what the real
model could gain, they do not measure it. Steps run inside one ``tf.function`` loop; the contenders alternate over
``--rounds`` rounds; figures are medians, speed-ups paired per round against one group.

Usage:
    .venv/bin/python bench/expert_groups.py [--batch-sizes 256 512 2048] [--groups 1 2 4] [--inter-op-threads 0]

The last printed line is one JSON object with the figures and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

INPUT_DIM, EXPERTS, UNITS, TASKS, TOWER = 48, 8, 64, 2, 32


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 512, 2048])
    p.add_argument("--groups", type=int, nargs="+", default=[1, 2, 4], help="expert groups (must divide 8)")
    p.add_argument("--inter-op-threads", type=int, default=0, help="ops run at once (0: all cores)")
    p.add_argument("--steps", type=int, default=20, help="training steps per timed call")
    p.add_argument("--rounds", type=int, default=9)
    return p.parse_args(argv)


def make_step(batch: int, groups: int, steps: int) -> tf.types.experimental.GenericFunction:
    """A ``tf.function`` running ``steps`` SGD steps of the dense MMoE with its experts in ``groups`` groups."""
    rng = tf.random.Generator.from_seed(0)
    x = rng.normal([batch, INPUT_DIM])
    labels = [tf.cast(rng.uniform([batch, 1]) < 0.3, tf.float32) for _ in range(TASKS)]
    kernel = tf.Variable(rng.normal([INPUT_DIM, EXPERTS * UNITS]) * 0.1)
    bias = tf.Variable(tf.zeros([EXPERTS * UNITS]))
    gates = [tf.Variable(rng.normal([INPUT_DIM, EXPERTS]) * 0.1) for _ in range(TASKS)]
    towers = [tf.Variable(rng.normal([UNITS, TOWER]) * 0.1) for _ in range(TASKS)]
    heads = [tf.Variable(rng.normal([TOWER, 1]) * 0.1) for _ in range(TASKS)]
    variables = [kernel, bias, *gates, *towers, *heads]
    per_group = EXPERTS // groups
    width = per_group * UNITS

    def mix(experts: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:  # TaskGate's formulation (repeat_flat)
        flat = experts * tf.repeat(weights, UNITS, axis=1)
        return tf.reduce_sum(tf.reshape(flat, [-1, per_group, UNITS]), axis=1)

    def loss() -> tf.Tensor:
        outputs = [
            tf.nn.relu(x @ kernel[:, g * width : (g + 1) * width] + bias[g * width : (g + 1) * width])
            for g in range(groups)
        ]
        total = 0.0
        for t in range(TASKS):
            weights = tf.nn.softmax(x @ gates[t])
            parts = [mix(outputs[g], weights[:, g * per_group : (g + 1) * per_group]) for g in range(groups)]
            mixed = parts[0] if groups == 1 else tf.add_n(parts)
            logit = tf.nn.relu(mixed @ towers[t]) @ heads[t]
            total += tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels[t], logit))
        return total

    @tf.function
    def run() -> tf.Tensor:
        value = tf.constant(0.0)
        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                value = loss()
            for variable, grad in zip(variables, tape.gradient(value, variables), strict=True):
                variable.assign_sub(1e-4 * grad)
        return value

    return run


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    if any(EXPERTS % g for g in args.groups) or 1 not in args.groups:
        raise SystemExit(f"--groups must divide {EXPERTS} and include 1 (the baseline); got {args.groups}")
    result: dict = {"benchmark": "expert_groups", "unit": "training examples/s (median of alternated rounds)"}
    by_batch = {}
    for batch in args.batch_sizes:
        runs = {g: make_step(batch, g, args.steps) for g in args.groups}
        for run in runs.values():  # trace
            run()
        wall: dict[int, list[float]] = {g: [] for g in runs}
        cpu: dict[int, list[float]] = {g: [] for g in runs}
        for r in range(args.rounds):
            for g in runs if r % 2 == 0 else list(runs)[::-1]:
                start, start_cpu = time.perf_counter(), time.process_time()
                runs[g]()
                wall[g].append(time.perf_counter() - start)
                cpu[g].append(time.process_time() - start_cpu)
        examples = args.steps * batch
        rows = {}
        for g in runs:
            paired = statistics.median(one / this for one, this in zip(wall[1], wall[g], strict=True))
            rows[str(g)] = {
                "examples_per_s": round(examples / statistics.median(wall[g])),
                "speedup_vs_one_group_paired": round(paired, 3),
                "cpu_us_per_example": round(1e6 * statistics.median(cpu[g]) / examples, 2),
            }
            print(f"batch {batch:5d}, {g} group(s): {rows[str(g)]}", flush=True)
        by_batch[str(batch)] = rows
    result.update(
        by_batch_size=by_batch,
        settings={
            "inter_op_threads": args.inter_op_threads,
            "intra_op_threads": 1,
            "steps": args.steps,
            "rounds": args.rounds,
            "cpus": os.cpu_count(),
        },
        load_average=round(os.getloadavg()[0], 2),
        tensorflow=tf.__version__,
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
