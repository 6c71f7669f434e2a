"""What the input-pipeline benchmarks share: their options, the cached ceiling, and timed ``fit`` rounds.

Used by ``bench/pipeline_autotune.py`` and ``bench/repeated_pipeline.py``: the same mmoe-tf ``mmoe`` model and sizes
as ``bench/peer_throughput.py``, one model per input, one untimed epoch each, then rounds of ``--epochs`` epochs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any


def parse_args(description: str, epochs: int, argv: list[str] | None = None) -> argparse.Namespace:
    """``--rows``, ``--batch-sizes``, ``--rounds``, ``--epochs`` (default ``epochs``) and ``--intra-op-threads``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--rows", type=int, default=160_000)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--intra-op-threads", type=int, default=1)
    return p.parse_args(argv)


def cached_batches(df: Any, schema: Any, batch: int) -> Any:
    """The table-order batches of ``make_dataset``, cached in memory and filled (the ceiling)."""
    from data import make_dataset

    cached = make_dataset(df, schema, batch_size=batch).cache()
    for _ in cached:
        pass
    return cached


def time_fits(
    datasets: dict[str, tuple[Any, int | None]],
    df: Any,
    schema: Any,
    args: argparse.Namespace,
    batch: int,
    alternate: bool,
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """Examples/s and process CPU µs per example of ``fit`` on each ``(dataset, steps_per_epoch)``, over rounds.

    Args:
        datasets: Contenders by name; ``"cached"`` is the reference of ``ratio_to_cached``.
        alternate: Run the contenders in reversed order every other round.

    Returns:
        The batch size's JSON block (medians, rounds, ratios to cached) and the per-round rates.
    """
    import peer_throughput as peer

    from data import feature_arrays

    sizes = peer.parse_args([])
    models = {}
    for name, (ds, steps_per_epoch) in datasets.items():
        models[name] = peer.mmoe_tf_model(schema, "mmoe", feature_arrays(df, schema), sizes)
        models[name].fit(ds, steps_per_epoch=steps_per_epoch, verbose=0)
    rate: dict[str, list[float]] = {n: [] for n in datasets}
    cpu: dict[str, list[float]] = {n: [] for n in datasets}
    for r in range(args.rounds):
        order = list(datasets) if not alternate or r % 2 == 0 else list(reversed(datasets))
        for name in order:
            ds, steps_per_epoch = datasets[name]
            wall, proc = time.perf_counter(), time.process_time()
            models[name].fit(ds, epochs=args.epochs, steps_per_epoch=steps_per_epoch, verbose=0)
            rate[name].append(args.epochs * len(df) / (time.perf_counter() - wall))
            cpu[name].append(1e6 * (time.process_time() - proc) / (args.epochs * len(df)))
        print(f"[b={batch}] round {r + 1}: " + ", ".join(f"{n} {v[-1]:,.0f}/s" for n, v in rate.items()), flush=True)
    median = {n: statistics.median(v) for n, v in rate.items()}
    block = {
        "examples_per_s": {n: round(v) for n, v in median.items()},
        "cpu_us_per_example": {n: round(statistics.median(v), 2) for n, v in cpu.items()},
        "rounds": {n: [round(x) for x in v] for n, v in rate.items()},
        "ratio_to_cached": {n: round(v / median["cached"], 3) for n, v in median.items()},
    }
    return block, rate


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings for the JSON's top level."""
    return {
        "rows": args.rows,
        "epochs_per_round": args.epochs,
        "intra_op_threads": args.intra_op_threads,
        "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),
    }
