"""Input-pipeline throughput and streaming memory, side by side on generated impressions.

Measures, on ``--rows`` simulated rows written to a temp dir:

- rows/s of CSV → ``load_table`` → ``make_dataset`` → one full pass of batches,
- the same from Parquet,
- rows/s of writing sharded TFRecords from the CSV (chunked) and of streaming them back,
- peak RSS (psutil, sampled every 10 ms in a fresh process) while streaming the TFRecords once and
  four times (``repeat``) with a bounded shuffle buffer, against loading the table in memory.

Usage: ``.venv/bin/python bench/data_pipeline.py [--rows 200000] [--batch-size 1024]``.
The last printed line is one JSON object with the figures and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Keras 2 API before TensorFlow resolves tf.keras

import psutil  # noqa: E402
import tensorflow as tf  # noqa: E402

import mmoe_tf  # noqa: E402,F401  (Keras 2 / TF setup)
from data import load_table, make_dataset, tfrecord_dataset, write_tfrecords  # noqa: E402
from data.generators import impressions_schema, simulate_impressions  # noqa: E402


def consume(ds: tf.data.Dataset) -> int:
    """Iterate every batch; returns the number of rows seen."""
    rows = 0
    for _, labels, _ in ds:
        rows += int(labels["click"].shape[0])
    return rows


class PeakRss:
    """Samples this process's RSS in a background thread; ``peak_mb`` after ``stop``."""

    def __init__(self, interval: float = 0.01) -> None:
        self.process, self.interval, self.peak = psutil.Process(), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRss:
        self.peak = self.process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def memory_child(mode: str, path: str, batch_size: int, shuffle_buffer: int) -> None:
    """Runs in a fresh process: prints JSON with baseline and peak RSS (MB) for one measurement."""
    schema = impressions_schema()
    consume(make_dataset(simulate_impressions(n_rows=2048, seed=1)[0], schema, batch_size=batch_size))  # warm up TF
    baseline = psutil.Process().memory_info().rss / 2**20
    result = {"baseline_mb": baseline}
    if mode == "stream":
        for passes in (1, 4):
            ds = tfrecord_dataset(path, schema, batch_size=batch_size, shuffle=True, shuffle_buffer=shuffle_buffer)
            with PeakRss() as rss:
                rows = consume(ds.repeat(passes))
            result[f"peak_mb_{passes}x"], result[f"rows_{passes}x"] = rss.peak_mb, rows
    else:
        with PeakRss() as rss:
            rows = consume(make_dataset(load_table(path, schema), schema, batch_size=batch_size, shuffle=True))
        result["peak_mb_1x"], result["rows_1x"] = rss.peak_mb, rows
    print(json.dumps(result))


def measure_memory(mode: str, path: Path, batch_size: int, shuffle_buffer: int, env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--memory-child", mode, str(path), "--batch-size", str(batch_size)]
    cmd += ["--shuffle-buffer", str(shuffle_buffer)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO, env={**os.environ, **(env or {})})
    out = out.stdout
    return json.loads(out.strip().splitlines()[-1])


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--shuffle-buffer", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--memory-child", nargs=2, metavar=("MODE", "PATH"))
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child, args.batch_size, args.shuffle_buffer)
        return

    n, bs = args.rows, args.batch_size
    with tempfile.TemporaryDirectory(prefix="mmoe_data_bench_") as tmp:
        tmp = Path(tmp)
        gen_s, (df, schema) = timed(lambda: simulate_impressions(n_rows=n, seed=0))
        df.to_csv(tmp / "rows.csv", index=False)
        df.to_parquet(tmp / "rows.parquet", engine="pyarrow")
        del df
        print(f"generated {n:,} rows in {gen_s:.1f}s")

        figures = {"rows": n, "batch_size": bs, "shuffle_buffer": args.shuffle_buffer, "shards": args.shards}
        for name, file in (("csv", "rows.csv"), ("parquet", "rows.parquet")):
            secs, rows = timed(lambda f=file: consume(make_dataset(load_table(tmp / f, schema), schema, batch_size=bs)))
            assert rows == n, (name, rows)
            figures[f"{name}_rows_per_s"] = round(n / secs)
            print(f"{name:>8} → dataset, one pass: {secs:.2f}s = {n / secs:,.0f} rows/s")

        secs, _ = timed(
            lambda: write_tfrecords(tmp / "rows.csv", schema, tmp / "tfr", num_shards=args.shards, progress=False)
        )
        figures["tfrecord_write_rows_per_s"] = round(n / secs)
        figures["tfrecord_mb"] = round(sum(p.stat().st_size for p in (tmp / "tfr").glob("*.tfrecord")) / 2**20, 1)
        print(f"tfrecord write (CSV in chunks): {secs:.2f}s = {n / secs:,.0f} rows/s, {figures['tfrecord_mb']} MB")
        secs, rows = timed(lambda: consume(tfrecord_dataset(tmp / "tfr", schema, batch_size=bs)))
        assert rows == n
        figures["tfrecord_stream_rows_per_s"] = round(n / secs)
        print(f"tfrecord stream, one pass: {secs:.2f}s = {n / secs:,.0f} rows/s")
        figures["ratio_parquet_vs_csv"] = round(figures["parquet_rows_per_s"] / figures["csv_rows_per_s"], 2)
        figures["ratio_tfrecord_stream_vs_csv"] = round(
            figures["tfrecord_stream_rows_per_s"] / figures["csv_rows_per_s"], 2
        )

        stream = measure_memory("stream", tmp / "tfr", bs, args.shuffle_buffer)
        # glibc gives each tf.data thread its own malloc arena; capping arenas shows what is fragmentation
        capped = measure_memory("stream", tmp / "tfr", bs, args.shuffle_buffer, {"MALLOC_ARENA_MAX": "2"})
        in_memory = measure_memory("memory", tmp / "rows.csv", bs, args.shuffle_buffer)
        assert stream["rows_1x"] == n and stream["rows_4x"] == 4 * n and in_memory["rows_1x"] == n
        for key, run in (("stream", stream), ("stream_arena2", capped)):
            figures[f"{key}_rss_growth_mb_1x"] = round(run["peak_mb_1x"] - run["baseline_mb"], 1)
            figures[f"{key}_rss_growth_mb_4x"] = round(run["peak_mb_4x"] - run["baseline_mb"], 1)
            figures[f"{key}_peak_rss_mb_1x"] = round(run["peak_mb_1x"], 1)
            figures[f"{key}_peak_rss_mb_4x"] = round(run["peak_mb_4x"], 1)
            figures[f"ratio_{key}_peak_rss_4x_vs_1x"] = round(run["peak_mb_4x"] / run["peak_mb_1x"], 3)
        figures["in_memory_rss_growth_mb"] = round(in_memory["peak_mb_1x"] - in_memory["baseline_mb"], 1)
        print(
            f"streaming {figures['tfrecord_mb']} MB of TFRecords, peak RSS growth over baseline: "
            f"{figures['stream_rss_growth_mb_1x']} MB (1 pass), {figures['stream_rss_growth_mb_4x']} MB (4 passes); "
            f"with MALLOC_ARENA_MAX=2: {figures['stream_arena2_rss_growth_mb_1x']} / "
            f"{figures['stream_arena2_rss_growth_mb_4x']} MB; in-memory load_table+make_dataset: "
            f"{figures['in_memory_rss_growth_mb']} MB"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
