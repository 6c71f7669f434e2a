"""Forward + backward time of a gate's expert mixing ``Σ_k w[b, k] · E[b, k, :]``, by formulation.

``TaskGate`` mixes ``[B, K, U]`` expert outputs with ``[B, K]`` softmax weights. Candidates: an
``einsum`` (which TensorFlow runs as B tiny batched matmuls), ``tf.matmul`` on ``[B, 1, K]``, a
broadcast multiply + sum over experts, and a repeat of the weights to the
flat ``[B, K·U]`` layout followed by a plain multiply (what ``TaskGate`` uses since the first round). With
``--tasks T`` every formulation mixes T gates' weights over the same experts, one task at a time as the MMoE block
does, and one more candidate mixes all tasks at once: ``tf.matmul`` of ``[B, T, K]`` weights and ``[B, K, U]``
experts (the experts read once for every task); ``repeat_flat, XLA`` is ``TaskGate``'s formulation compiled with
``jit_compile=True`` (XLA fuses the element-wise ops into one pass). Each timed call runs ``--repeats`` independent
forward + backward passes inside one ``tf.function`` (so call overhead is amortised), on one
TensorFlow thread, alternating the formulations over ``--rounds`` rounds; CPU µs per pass, medians.

Usage:
    .venv/bin/python bench/gate_mixing.py [--batch-size 512] [--experts 8] [--units 64] [--tasks 1]

The last printed line is one JSON object with the figures and the ratio to the einsum.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf


def formulations(k: int, u: int, tasks: int) -> dict:
    """``{name: mix(weights [B, T, K], experts [B, K, U]) -> [B, T, U]}``."""
    per_task = {
        "einsum": lambda w, e: tf.einsum("bk,bku->bu", w, e),
        "batched_matmul": lambda w, e: tf.squeeze(tf.matmul(w[:, tf.newaxis, :], e), 1),
        "multiply_sum": lambda w, e: tf.reduce_sum(w[:, :, tf.newaxis] * e, axis=1),
        "repeat_flat (TaskGate)": lambda w, e: tf.reduce_sum(
            tf.reshape(tf.reshape(e, [-1, k * u]) * tf.repeat(w, u, axis=1), [-1, k, u]), axis=1
        ),
    }
    # TaskGate's formulation compiled by XLA (training only, were it taken: TF Serving's signatures must not need XLA)
    per_task["repeat_flat, XLA"] = tf.function(per_task["repeat_flat (TaskGate)"], jit_compile=True)
    mixes = {
        name: (lambda mix: lambda w, e: tf.stack([mix(w[:, t], e) for t in range(tasks)], axis=1))(mix)
        for name, mix in per_task.items()
    }
    if tasks > 1:
        mixes["all_tasks_batched_matmul"] = lambda w, e: tf.matmul(w, e)
    return mixes


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--tasks", type=int, default=1, help="gates mixing the same experts")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    b, k, u, t = args.batch_size, args.experts, args.units, args.tasks
    weights = [tf.nn.softmax(tf.random.normal([b, t, k], seed=i)) for i in range(args.repeats)]
    experts = [tf.random.normal([b, k, u], seed=100 + i) for i in range(args.repeats)]

    def timed_fn(mix):
        @tf.function
        def passes(ws, es):
            grads = []
            for w, e in zip(ws, es, strict=True):
                with tf.GradientTape() as tape:
                    tape.watch([w, e])
                    loss = tf.reduce_sum(mix(w, e))
                grads.append(tape.gradient(loss, [w, e]))
            return grads

        return passes

    fns = {name: timed_fn(mix) for name, mix in formulations(k, u, t).items()}
    reference = fns["einsum"](weights, experts)
    for name, fn in fns.items():  # trace with the timed arguments, and check every formulation's gradients
        for got, want in zip(fn(weights, experts)[0], reference[0], strict=True):
            tf.debugging.assert_near(got, want, atol=1e-5, message=name)
    micros: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            start = time.process_time()
            fn(weights, experts)
            micros[name].append(1e6 * (time.process_time() - start) / args.repeats)
    median = {name: statistics.median(v) for name, v in micros.items()}
    result = {
        "benchmark": "gate_mixing",
        "unit": "CPU µs per forward + backward pass (one thread, median of rounds)",
        "shape": {"batch": b, "experts": k, "units": u, "tasks": t},
        "us_per_pass": {name: round(v, 1) for name, v in median.items()},
        "ratio_to_einsum": {name: round(v / median["einsum"], 3) for name, v in median.items()},
        "load_average": round(os.getloadavg()[0], 2),
    }
    for name, v in median.items():
        print(f"{name:26s} {v:8.1f} µs")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
