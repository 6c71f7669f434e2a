"""Training-step throughput of ``ExpertBank`` vs a loop of per-expert ``tf.keras.layers.Dense`` layers.

Setup: K=8 experts, units 64, batch 512, 100 input dims, one hidden layer ([64]) and two ([64, 64]).
A step is forward + backward + Adam update, compiled with ``tf.function``; warm-up steps are
excluded. Variants are timed interleaved: each round times a few steps of every variant in a shuffled
order, and the median examples/s over the rounds is reported, so load from other processes
hits every variant alike.

Usage:
    .venv/bin/python bench/expert_bank.py [--rounds 60] [--steps 4] [--threads N]

The last printed line is one JSON object: every median throughput, ``speedup_vs_loop`` (one layer,
``auto`` vs the Dense loop, ratio of wall-clock medians) and ``speedup_vs_loop_2layer``; the same
ratios taken per round (``paired_*``); examples per process-CPU second (``cpu_*``, less sensitive
to other processes competing for the cores); and ``noise_auto_vs_*``, the gap between ``auto`` and
the explicitly named variant that runs the same code (a direct reading of the measurement noise).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf

import mmoe_tf  # noqa: F401  (sets the Keras 2 API)
from mmoe_tf.layers import ExpertBank
from mmoe_tf.layers.expert_bank import DEEP_METHODS, FIRST_METHODS, parse_implementation

NUM_EXPERTS, UNITS, BATCH, INPUT_DIM = 8, 64, 512, 100


class DenseLoopExperts(tf.keras.layers.Layer):
    """Reference: K independent experts, each a stack of ``tf.keras.layers.Dense``, looped in Python."""

    def __init__(self, num_experts: int, units: list[int], **kwargs):
        super().__init__(**kwargs)
        self.experts = [
            [
                tf.keras.layers.Dense(
                    u, activation="relu", kernel_initializer=tf.keras.initializers.GlorotUniform(seed=100 * k + d)
                )
                for d, u in enumerate(units)
            ]
            for k in range(num_experts)
        ]

    def call(self, x: tf.Tensor) -> tf.Tensor:
        outputs = []
        for expert in self.experts:
            h = x
            for layer in expert:
                h = layer(h)
            outputs.append(h)
        return tf.stack(outputs, axis=1)


def make_step(layer: tf.keras.layers.Layer, x: tf.Tensor, target: tf.Tensor):
    """A compiled forward + backward + Adam step of ``layer`` on a fixed batch."""
    layer(x)  # build
    optimizer = tf.keras.optimizers.Adam(1e-3)

    @tf.function
    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(layer(x, training=True) - target))
        grads = tape.gradient(loss, layer.trainable_variables)
        optimizer.apply_gradients(zip(grads, layer.trainable_variables, strict=True))
        return loss

    return step


def variant_name(implementation: str, depths: int) -> str:
    """Display name of an ExpertBank implementation; one-layer banks have no deeper depth to name."""
    first, deep = parse_implementation(implementation)
    if depths == 1:
        return f"bank_{first}"
    return f"bank_{first}" if first == deep else f"bank_{first}:{deep}"


def variants(units: list[int]) -> dict[str, tf.keras.layers.Layer]:
    """The reference Dense loop, ``auto`` and every ExpertBank implementation for ``units``."""
    out: dict[str, tf.keras.layers.Layer] = {"dense_loop": DenseLoopExperts(NUM_EXPERTS, units)}
    if len(units) == 1:
        impls = [f"{first}:{DEEP_METHODS[0]}" for first in FIRST_METHODS]
    else:
        impls = [f"gemm:{deep}" for deep in DEEP_METHODS] + list(DEEP_METHODS)
    out["bank_auto"] = ExpertBank(NUM_EXPERTS, units, seed=0, implementation="auto")
    for impl in impls:
        out[variant_name(impl, len(units))] = ExpertBank(NUM_EXPERTS, units, seed=0, implementation=impl)
    return out


def measure(
    layers: dict[str, tf.keras.layers.Layer], rounds: int, steps: int, warmup: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per-variant samples of examples per wall-clock second and per process-CPU second.

    Each round times ``steps`` steps of every variant, in a shuffled order.
    """
    x = tf.random.stateless_normal([BATCH, INPUT_DIM], seed=[1, 2])
    out_dim = next(iter(layers.values())).compute_output_shape([BATCH, INPUT_DIM])[-1]
    target = tf.random.stateless_normal([BATCH, NUM_EXPERTS, out_dim], seed=[3, 4])
    step_fns = {name: make_step(layer, x, target) for name, layer in layers.items()}
    for fn in step_fns.values():
        for _ in range(warmup):
            fn()
        fn().numpy()
    wall: dict[str, list[float]] = {name: [] for name in step_fns}
    cpu: dict[str, list[float]] = {name: [] for name in step_fns}
    order = list(step_fns)
    shuffler = random.Random(0)
    for _ in range(rounds):
        shuffler.shuffle(order)
        for name in order:
            fn = step_fns[name]
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                loss = fn()
            loss.numpy()
            wall[name].append(steps * BATCH / (time.perf_counter() - start))
            cpu[name].append(steps * BATCH / max(time.process_time() - start_cpu, 1e-9))
    return wall, cpu


def paired_speedup(samples: dict[str, list[float]], name: str, reference: str = "dense_loop") -> float:
    """Median over rounds of ``name``'s throughput divided by ``reference``'s in the same round."""
    return statistics.median(a / b for a, b in zip(samples[name], samples[reference], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="TF intra-op threads (0: TensorFlow's default)")
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)

    auto_impl = ":".join(parse_implementation("auto"))
    summary: dict = {
        "setup": {
            "num_experts": NUM_EXPERTS,
            "units": UNITS,
            "batch": BATCH,
            "input_dim": INPUT_DIM,
            "rounds": args.rounds,
            "steps_per_sample": args.steps,
            "intra_op_threads": args.threads or "default",
            "cpu_count": os.cpu_count(),
            "load_average_at_start": round(os.getloadavg()[0], 2),
            "statistic": "median over interleaved rounds of examples/s (forward+backward+Adam step)",
            "auto": auto_impl,
        }
    }
    for label, units in (("1layer", [UNITS]), ("2layer", [UNITS, UNITS])):
        wall, cpu = measure(variants(units), args.rounds, args.steps, args.warmup)
        med = {k: statistics.median(v) for k, v in wall.items()}
        med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
        for name, value in sorted(med.items(), key=lambda kv: -kv[1]):
            print(
                f"{label:7s} {name:18s} {value:8.0f} ex/s x{value / med['dense_loop']:.2f} "
                f"(paired x{paired_speedup(wall, name):.2f}) | {med_cpu[name]:8.0f} ex/cpu-s "
                f"x{med_cpu[name] / med_cpu['dense_loop']:.2f}"
            )
        banks = [k for k in med if k.startswith("bank_") and k != "bank_auto"]
        suffix = "" if label == "1layer" else "_2layer"
        summary[f"throughput_{label}"] = {k: round(v) for k, v in med.items()}
        summary[f"cpu_throughput_{label}"] = {k: round(v) for k, v in med_cpu.items()}
        summary[f"fastest_{label}"] = max(banks, key=med.get)
        summary[f"fastest_cpu_{label}"] = max(banks, key=med_cpu.get)
        summary[f"speedup_vs_loop{suffix}"] = round(med["bank_auto"] / med["dense_loop"], 3)
        summary[f"paired_speedup_vs_loop{suffix}"] = round(paired_speedup(wall, "bank_auto"), 3)
        summary[f"cpu_speedup_vs_loop{suffix}"] = round(med_cpu["bank_auto"] / med_cpu["dense_loop"], 3)
        twin = variant_name(auto_impl, len(units))  # runs the same code as auto: the gap is noise
        summary[f"noise_auto_vs_{twin}{suffix}"] = round(med["bank_auto"] / med[twin], 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
