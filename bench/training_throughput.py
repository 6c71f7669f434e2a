"""Training throughput (examples/s) of mmoe vs shared_bottom vs single_task at the same size.

Same features (the embedded default sample's schema), same expert/bottom units, same towers, same
batch; one model per architecture is built and warmed up (graph tracing excluded), then
``fit(steps_per_epoch=--steps)`` is timed in interleaved rounds (mmoe, shared_bottom, single_task,
mmoe, ...) so machine noise hits all three alike. Reports the median over rounds.

Usage:
    .venv/bin/python bench/training_throughput.py [--steps 200] [--repeats 5] [--batch-size 256]

The last printed line is one JSON object with the figures and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Keras 2 API (tf-keras), as mmoe_tf requires

import tensorflow as tf

from data import feature_arrays, make_dataset
from data.sample import load_default
from mmoe_tf.models import build_model

ARCHITECTURES = ("mmoe", "shared_bottom", "single_task")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=200, help="timed training steps per round and architecture")
    p.add_argument("--repeats", type=int, default=5, help="interleaved timing rounds")
    p.add_argument("--batch-size", type=int, default=256, help="training batch size (same for all)")
    p.add_argument("--num-experts", type=int, default=4, help="experts K of the mmoe model")
    p.add_argument("--expert-units", type=int, nargs="+", default=[64], help="expert / bottom MLP sizes")
    p.add_argument("--tower-units", type=int, nargs="+", default=[32], help="tower MLP sizes")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; prints progress and, last, one JSON line. Returns the JSON dict."""
    args = parse_args(argv)
    tf.keras.utils.set_random_seed(0)
    df, schema = load_default()
    adapt = feature_arrays(df, schema)
    ds = make_dataset(
        df, schema, batch_size=args.batch_size, shuffle=False, repeat=True
    )  # no shuffle buffer refill per fit call
    models = {}
    for arch in ARCHITECTURES:
        config = schema.model_config(
            architecture=arch,
            num_experts=args.num_experts,
            expert_units=tuple(args.expert_units),
            tower_units=tuple(args.tower_units),
        )
        model = build_model(config, adapt_data=adapt)
        model.fit(ds, epochs=1, steps_per_epoch=3, verbose=0)  # trace the train step once (excluded)
        models[arch] = model
        print(f"{arch}: {model.count_params()} parameters, warmed up", flush=True)

    rates: dict[str, list[float]] = {arch: [] for arch in ARCHITECTURES}
    for r in range(args.repeats):
        for arch in ARCHITECTURES:
            start = time.perf_counter()
            models[arch].fit(ds, epochs=1, steps_per_epoch=args.steps, verbose=0)
            seconds = time.perf_counter() - start
            rates[arch].append(args.steps * args.batch_size / seconds)
            print(f"round {r + 1} {arch}: {rates[arch][-1]:.0f} examples/s", flush=True)

    median = {arch: statistics.median(v) for arch, v in rates.items()}
    result = {
        "benchmark": "training_throughput",
        "unit": "examples/s (median of interleaved rounds)",
        "examples_per_s": {arch: round(v, 1) for arch, v in median.items()},
        "rounds": {arch: [round(x, 1) for x in v] for arch, v in rates.items()},
        "parameters": {arch: int(m.count_params()) for arch, m in models.items()},
        "ratio_mmoe_vs_shared_bottom": round(median["mmoe"] / median["shared_bottom"], 3),
        "ratio_mmoe_vs_single_task": round(median["mmoe"] / median["single_task"], 3),
        "settings": {
            "batch_size": args.batch_size,
            "steps": args.steps,
            "repeats": args.repeats,
            "num_experts": args.num_experts,
            "expert_units": args.expert_units,
            "tower_units": args.tower_units,
            "rows": len(df),
            "cpus": os.cpu_count(),
            "tensorflow": tf.__version__,
            "python": platform.python_version(),
        },
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
