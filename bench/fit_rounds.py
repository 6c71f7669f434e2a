"""What the training-path benchmarks share: their options, the cached ceiling, and timed ``fit`` rounds.

Used by ``bench/pipeline_autotune.py``, ``bench/repeated_pipeline.py`` and ``bench/split_step.py``: the same mmoe-tf
``mmoe`` model and sizes as ``bench/peer_throughput.py``, one model per contender, one untimed epoch each, then rounds
of ``--epochs`` epochs. ``timed_rounds`` (the rounds themselves) also serves ``bench/expert_groups_real.py`` and
``bench/sparse_dedup.py``, which build their own contenders.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any


def parse_args(
    description: str,
    epochs: int,
    argv: list[str] | None = None,
    batch_sizes: tuple[int, ...] = (512, 2048),
    inter_op_option: bool = False,
) -> argparse.Namespace:
    """``--rows``, ``--batch-sizes``, ``--rounds``, ``--epochs`` (default ``epochs``), ``--intra-op-threads`` and,
    with ``inter_op_option``, ``--inter-op-threads`` (0: all cores)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--rows", type=int, default=160_000)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=list(batch_sizes))
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--intra-op-threads", type=int, default=1)
    if inter_op_option:
        p.add_argument("--inter-op-threads", type=int, default=0)
    return p.parse_args(argv)


def benchmark_table(rows: int) -> tuple[Any, Any]:
    """The peer benchmark's simulated table of ``rows`` rows (seed 0), validated, and its schema; seeds Keras."""
    import tensorflow as tf

    from data.arrays import ensure_validated
    from data.generators import simulate_ctr_table

    tf.keras.utils.set_random_seed(0)
    df, schema = simulate_ctr_table(n_rows=rows, seed=0)
    return ensure_validated(df, schema, with_labels=True), schema


def cached_batches(df: Any, schema: Any, batch: int) -> Any:
    """The table-order batches of ``make_dataset``, cached in memory and filled (the ceiling)."""
    from data import make_dataset

    cached = make_dataset(df, schema, batch_size=batch).cache()
    for _ in cached:
        pass
    return cached


def timed_rounds(
    runs: dict[str, Callable[[], Any]],
    rounds: int,
    alternate: bool = True,
    on_round: Callable[[int, dict[str, list[float]]], None] | None = None,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and process-CPU seconds of every contender's run, once per round.

    Args:
        runs: The timed call of each contender, by name.
        rounds: Rounds.
        alternate: Run the contenders in reversed order every other round.
        on_round: Called after each round with its index and the wall seconds so far (progress output).

    Returns:
        ``(wall, cpu)``: seconds per round, by contender.
    """
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds):
        for name in list(runs) if not alternate or r % 2 == 0 else list(reversed(runs)):
            start, start_cpu = time.perf_counter(), time.process_time()
            runs[name]()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
        if on_round is not None:
            on_round(r, wall)
    return wall, cpu


def time_fits(
    datasets: dict[str, tuple[Any, int | None]],
    df: Any,
    schema: Any,
    args: argparse.Namespace,
    batch: int,
    alternate: bool,
    model_overrides: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """Examples/s and process CPU µs per example of ``fit`` on each ``(dataset, steps_per_epoch)``, over rounds.

    Args:
        datasets: Contenders by name; ``"cached"``, when present, is the reference of ``ratio_to_cached``.
        alternate: Run the contenders in reversed order every other round.
        model_overrides: ``ModelConfig`` fields by contender name (default: the model as ``build_model`` makes it).

    Returns:
        The batch size's JSON block (medians, rounds, ratios to cached) and the per-round rates.
    """
    import peer_throughput as peer

    from data import feature_arrays

    sizes = peer.parse_args([])
    models = {}
    for name, (ds, steps_per_epoch) in datasets.items():
        overrides = (model_overrides or {}).get(name, {})
        models[name] = peer.mmoe_tf_model(schema, "mmoe", feature_arrays(df, schema), sizes, **overrides)
        models[name].fit(ds, steps_per_epoch=steps_per_epoch, verbose=0)
    examples = args.epochs * len(df)

    def fit(name: str) -> Callable[[], Any]:
        ds, steps_per_epoch = datasets[name]
        return lambda: models[name].fit(ds, epochs=args.epochs, steps_per_epoch=steps_per_epoch, verbose=0)

    def report(r: int, wall: dict[str, list[float]]) -> None:
        print(
            f"[b={batch}] round {r + 1}: " + ", ".join(f"{n} {examples / v[-1]:,.0f}/s" for n, v in wall.items()),
            flush=True,
        )

    wall, seconds = timed_rounds({name: fit(name) for name in datasets}, args.rounds, alternate, report)
    rate = {n: [examples / w for w in v] for n, v in wall.items()}
    cpu = {n: [1e6 * c / examples for c in v] for n, v in seconds.items()}
    median = {n: statistics.median(v) for n, v in rate.items()}
    block = {
        "examples_per_s": {n: round(v) for n, v in median.items()},
        "cpu_us_per_example": {n: round(statistics.median(v), 2) for n, v in cpu.items()},
        "rounds": {n: [round(x) for x in v] for n, v in rate.items()},
    }
    if "cached" in median:
        block["ratio_to_cached"] = {n: round(v / median["cached"], 3) for n, v in median.items()}
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
