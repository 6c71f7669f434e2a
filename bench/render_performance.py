"""Render the measured tables of ``docs/performance.md`` from the benchmark outputs in ``docs/bench/``.

The tables between ``<!-- generated:begin -->`` and ``<!-- generated:end -->`` are written from
``docs/bench/peer_throughput.json`` (the last JSON line of ``bench/peer_throughput.py --scaling``),
``docs/bench/peer_cpu.json``, ``docs/bench/gate_mixing.json``, ``docs/bench/step_overheads.json``
(``bench/step_overheads.py``), ``docs/bench/thread_pools.json``, ``docs/bench/pipeline_autotune.json``,
``docs/bench/repeated_pipeline.json`` (``bench/repeated_pipeline.py``),
``docs/bench/split_step{,_inter_op_1}.json`` (``bench/split_step.py``, with two and one inter-op threads) and
``docs/bench/step_breakdown_{before,after}.json`` (``bench/step_breakdown.py --threads 1 --profile``
on the code before and after the speed work), so the prose cannot drift from the measurements;
``tests/test_bench_docs.py`` checks that the file is up to date.

Usage:
    python3 bench/render_performance.py          # rewrite the generated block in place
    python3 bench/render_performance.py --check  # exit 1 when the block is stale
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "performance.md"
BENCH = REPO / "docs" / "bench"
BEGIN, END = "<!-- generated:begin -->", "<!-- generated:end -->"


def _load(name: str) -> dict[str, Any]:
    return json.loads((BENCH / name).read_text())


def _n(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def peer_tables(peer: dict[str, Any]) -> list[str]:
    lines = []
    for batch, result in peer["by_batch_size"].items():
        rows = result["contenders"]
        lines += [
            f"**Batch {int(batch):,}** (medians of {peer['settings']['rounds']} alternated rounds × "
            f"{peer['settings']['epochs_per_round']} epochs, {peer['settings']['train_rows']:,} training rows"
            + (
                f"; test AUC after {result['auc_epochs']} epochs, the same for every model):"
                if "auc_epochs" in result
                else "):"
            ),
            "",
            "| model | train examples/s | predict examples/s | click AUC | satisfaction AUC | parameters "
            "| ops / train step |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in rows.items():
            auc = r["test_auc"]
            lines.append(
                f"| {name} | {_n(r['train_examples_per_s'])} | {_n(r['predict_examples_per_s'])} | "
                f"{auc['click']:.4f} | {auc['satisfaction']:.4f} | {r['parameters']:,} "
                f"| {_n(r['ops_per_train_step'])} |"
            )
        lines.append("")
        if "train_speedup_vs_deepctr_mmoe" in result:
            delta = result["auc_delta_vs_deepctr_mmoe"]
            lines.append(
                f"mmoe-tf `mmoe` vs DeepCTR `MMOE`: training **{result['train_speedup_vs_deepctr_mmoe']:.2f}×**"
                + (
                    f" ({result['train_speedup_vs_deepctr_mmoe_fastest_round']:.2f}× DeepCTR's fastest round)"
                    if "train_speedup_vs_deepctr_mmoe_fastest_round" in result
                    else ""
                )
                + f", prediction **{result['predict_speedup_vs_deepctr_mmoe']:.2f}×**, test AUC difference click "
                f"{delta['click']:+.4f}, satisfaction {delta['satisfaction']:+.4f}; vs DeepCTR `SharedBottom` "
                f"training {result['train_ratio_vs_deepctr_shared_bottom']:.2f}×."
            )
        if "ple_train_speedup_vs_deepctr_ple" in result:
            delta = result["ple_auc_delta_vs_deepctr_ple"]
            lines.append(
                f"mmoe-tf `ple` vs DeepCTR `PLE`: training {result['ple_train_speedup_vs_deepctr_ple']:.2f}×, "
                f"test AUC difference click {delta['click']:+.4f}, satisfaction {delta['satisfaction']:+.4f}."
            )
        paths = result["prediction_paths"]
        lines += [
            f"Real input path: training through `data.make_dataset` runs at **{result['pipeline_vs_cached']:.2f}×** "
            "the cached in-memory dataset. Prediction: `training evaluate`'s path "
            f"{_n(paths['training_evaluate_predict'])}/s, the exported SavedModel's `serving_default` "
            f"{_n(paths['saved_model_serving_default'])}/s.",
            "",
        ]
    settings = peer["settings"]
    intra = settings.get("intra_op_threads", 0)
    inter = settings.get("inter_op_threads", 0)
    threads = (
        "TensorFlow's default thread pools"
        if intra == 0 and inter == 0
        else f"TensorFlow threads for every contender: {intra} per op, {inter} ops at once (0 = all cores)"
    )
    lines.append(
        f"Machine: {settings['cpus']} cores shared with other jobs (load average at the end "
        f"{settings['load_average_end']}); {threads}; TensorFlow {settings['tensorflow']}, DeepCTR "
        f"{settings['deepctr']}."
    )
    return lines


def scaling_tables(scaling: dict[str, Any]) -> list[str]:
    lines = ["", "| axis | value | training examples/s |", "|---|---|---|"]
    for axis in ("num_experts", "batch_size", "categorical_features"):
        for value, rate in scaling[axis].items():
            lines.append(f"| {axis} | {value} | {_n(rate)} |")
    lines += [
        "",
        f"Time per example with 32 experts is {scaling['experts_32_vs_4_cost_ratio']:.2f}× that with 4 experts "
        "(8× the experts).",
    ]
    return lines


def breakdown_tables(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    lines = [
        "| part of the step | ops before | ops after | op self-time before (µs/step) | after (µs/step) |",
        "|---|---|---|---|---|",
    ]
    parts = list(
        dict.fromkeys([*before["ops_by_part"], *after["ops_by_part"], *before["profile"]["by_part_us_per_step"]])
    )
    for part in parts:
        lines.append(
            f"| {part} | {before['ops_by_part'].get(part, 0)} | {after['ops_by_part'].get(part, 0)} | "
            f"{_n(before['profile']['by_part_us_per_step'].get(part))} | "
            f"{_n(after['profile']['by_part_us_per_step'].get(part))} |"
        )
    lines.append(
        f"| **total** | **{before['ops_per_train_step']}** | **{after['ops_per_train_step']}** | "
        f"**{_n(before['profile']['op_self_time_us_per_step'])}** | "
        f"**{_n(after['profile']['op_self_time_us_per_step'])}** |"
    )
    lines += ["", "Stages (one thread, CPU µs per example; each stage includes the ones above it):", ""]
    lines += ["| stage | before | after |", "|---|---|---|"]
    for stage, value in before["stage_us_per_example"].items():
        lines.append(f"| {stage} | {value:.2f} | {after['stage_us_per_example'][stage]:.2f} |")
    lines += [
        "",
        f"Load average during the runs: {before['load_average']} (before) and {after['load_average']} (after).",
        "",
        "Top ops after the change (self time, µs per step):",
        "",
    ]
    lines += [f"- `{name}`: {us:,.0f}" for name, us in after["profile"]["top_ops_us_per_step"].items()]
    return lines


def overhead_tables(overheads: dict[str, Any]) -> list[str]:
    """``bench/step_overheads.py``: steps per execution, and the input pipeline's shuffle."""
    lines = [
        f"`steps_per_execution` (medians of {overheads['rounds']} alternated rounds, one epoch of `fit` on "
        f"`make_dataset` and one `predict` over {overheads['rows']:,} rows; CPU = process CPU time, both cores):",
        "",
        "| batch | steps per execution | train examples/s | train CPU µs/example | predict examples/s "
        "| predict CPU µs/example |",
        "|---|---|---|---|---|---|",
    ]
    for batch, result in overheads["steps_per_execution"].items():
        for spe, r in result["by_steps_per_execution"].items():
            lines.append(
                f"| {int(batch):,} | {spe} | {_n(r['train_examples_per_s'])} | {r['train_cpu_us_per_example']:.2f} | "
                f"{_n(r['predict_examples_per_s'])} | {r['predict_cpu_us_per_example']:.2f} |"
            )
    lines.append("")
    for batch, result in overheads["steps_per_execution"].items():
        ratio = result["default_vs_1"]
        lines.append(
            f"Batch {int(batch):,}, the default (16) against 1: training **{ratio['train_speedup']:.2f}×** "
            f"(CPU per example ×{ratio['train_cpu_ratio']:.2f}), prediction **{ratio['predict_speedup']:.2f}×**."
        )
    lines += ["", "Input pipeline alone (one pass over the batches, no model; CPU µs per row):", ""]
    batches = list(overheads["shuffle"])
    lines += ["| row order | " + " | ".join(f"batch {int(b):,}" for b in batches) + " |"]
    lines += ["|---|" + "---|" * len(batches)]
    for name in overheads["shuffle"][batches[0]]["cpu_us_per_row"]:
        cells = " | ".join(f"{overheads['shuffle'][b]['cpu_us_per_row'][name]:.2f}" for b in batches)
        lines.append(f"| {name} | {cells} |")
    for batch in batches:
        result = overheads["shuffle"][batch]
        line = f"\nBatch {int(batch):,}: the pipeline now costs **{result['now_vs_before']:.2f}×** the CPU per row"
        line += " it did before"
        if "table_order_now_vs_before" in result:
            ratio = result["table_order_now_vs_before"]
            line += f" (shuffled), **{ratio:.2f}×** in table order (evaluation, prediction)"
        lines.append(line + ".")
    machine = overheads["machine"]
    lines += ["", f"Load average at the end: {machine['load_average_end']} on {machine['cpus']} cores."]
    return lines


def peer_cpu_table(peer_cpu: dict[str, Any]) -> list[str]:
    """``bench/peer_cpu.py``: CPU µs per training example on one TensorFlow thread, per batch size."""
    lines = [
        "| batch | mmoe-tf `mmoe` µs/example | DeepCTR `MMOE` µs/example | mmoe-tf speed-up | rounds | load |",
        "|---|---|---|---|---|---|",
    ]
    for batch, r in peer_cpu["by_batch_size"].items():
        us = r["us_per_example"]
        lines.append(
            f"| {int(batch):,} | {us['mmoe_tf/mmoe']:.2f} | {us['deepctr/MMOE']:.2f} | **{r['mmoe_tf_speedup']:.2f}×** "
            f"| {len(r['rounds']['mmoe_tf/mmoe'])} | {r['load_average']} |"
        )
    return lines


def thread_pool_table(pools: dict[str, Any]) -> list[str]:
    """``bench/thread_pools.py``: training examples/s under TensorFlow's default pools and one thread per op."""
    lines = [
        "| model @ batch | TensorFlow's default pools | one thread per op | ratio |",
        "|---|---|---|---|",
    ]
    rates = pools["examples_per_s"]
    for key, ratio in pools["one_thread_per_op_vs_default"].items():
        lines.append(
            f"| {key} | {_n(rates['tensorflow_default'][key])} | {_n(rates['one_thread_per_op'][key])} | "
            f"**{ratio:.2f}×** |"
        )
    rounds = len(pools["rounds"]["one_thread_per_op"])
    lines += ["", f"{rounds} alternated rounds × {pools['epochs_per_round']} epochs, load {pools['load_average']}."]
    return lines


def _round_count(bench: dict[str, Any], contender: str) -> int:
    """Timed rounds of ``contender`` in a ``fit_rounds``-style JSON (the same for every batch size)."""
    return len(next(iter(bench["by_batch_size"].values()))["rounds"][contender])


def _against_cached_rows(bench: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """A table of examples/s (× cached) per input and batch size, for the input-pipeline benchmarks' JSON."""
    batches = list(bench["by_batch_size"])
    lines = [
        "| input | " + " | ".join(f"batch {int(b):,}: examples/s (× cached)" for b in batches) + " |",
        "|---|" + "---|" * len(batches),
    ]
    for key, label in labels.items():
        if key not in bench["by_batch_size"][batches[0]]["examples_per_s"]:
            continue
        cells = []
        for b in batches:
            r = bench["by_batch_size"][b]
            cells.append(f"{_n(r['examples_per_s'][key])} ({r['ratio_to_cached'][key]:.2f}×)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def pipeline_autotune_table(pipe: dict[str, Any]) -> list[str]:
    """``bench/pipeline_autotune.py``: training through make_dataset with and without the autotuner."""
    labels = {
        "cached": "cached",
        "make_dataset": "`make_dataset` (in order, prefetch 2, no autotuner)",
        "make_dataset_autotuned": "previous: autotuned parallel map and prefetch",
        "make_dataset_parallel2": "2 gathers in flight, prefetch 2, no autotuner",
    }
    lines = _against_cached_rows(pipe, labels)
    rounds = _round_count(pipe, "cached")
    load = pipe["load_average"]
    lines += ["", f"Training examples/s, {rounds} alternated rounds × {pipe['epochs_per_round']} epochs, load {load}."]
    return lines


def repeated_pipeline_table(rep: dict[str, Any]) -> list[str]:
    """``bench/repeated_pipeline.py``: a finite dataset (a new iterator per epoch) against a repeated one."""
    labels = {
        "cached": "cached",
        "finite": "finite: `fit(ds, epochs)` (previous CLI path)",
        "repeated": "repeated: `repeat=True`, `steps_per_epoch` one pass (the CLI)",
    }
    lines = _against_cached_rows(rep, labels)
    paired = ", ".join(
        f"batch {int(b):,}: **{r['repeated_vs_finite_paired']:.3f}×** (rounds "
        + ", ".join(f"{x:.2f}" for x in r["repeated_vs_finite_rounds"])
        + ")"
        for b, r in rep["by_batch_size"].items()
    )
    first = "; ".join(
        f"batch {int(b):,}: " + ", ".join(f"{k} {v} ms" for k, v in r["iterator_first_batch_ms"].items())
        for b, r in rep["by_batch_size"].items()
    )
    rounds = _round_count(rep, "cached")
    lines += [
        "",
        f"Training examples/s, {rounds} rounds × {rep['epochs_per_round']} epochs in alternating order, "
        f"load {rep['load_average']}. Repeated against finite, median of the per-round ratios: {paired}. "
        f"Creating an iterator and taking its first batch: {first}.",
    ]
    return lines


def split_step_table(runs: dict[str, dict[str, Any]]) -> list[str]:
    """``bench/split_step.py``: batches trained as two halves side by side against whole, per inter-op setting."""
    lines = [
        "| inter-op threads | batch | whole: examples/s | split: examples/s | split / whole, paired "
        "(rounds) | CPU µs per example, whole → split |",
        "|---|---|---|---|---|---|",
    ]
    for label, run in runs.items():
        for b, r in run["by_batch_size"].items():
            rate, cpu = r["examples_per_s"], r["cpu_us_per_example"]
            rounds = ", ".join(f"{x:.2f}" for x in r["split_vs_whole_rounds"])
            lines.append(
                f"| {label} | {int(b):,} | {_n(rate['whole'])} | {_n(rate['split'])} | "
                f"**{r['split_vs_whole_paired']:.3f}×** ({rounds}) | {cpu['whole']:.2f} → {cpu['split']:.2f} |"
            )
    first = next(iter(runs.values()))
    runs_text = "; ".join(
        f"{label}: {_round_count(run, 'whole')} rounds, load {run['load_average']}" for label, run in runs.items()
    )
    lines += [
        "",
        f"Training through `make_dataset(repeat=True)`, rounds of {first['epochs_per_round']} epochs of "
        f"{first['rows']:,} rows in alternating order, one thread per op (inter-op threads {runs_text}); `split` is "
        "`train_split_rows=1024`, which below 1,024 rows runs the whole batch and an empty second call.",
    ]
    return lines


def render() -> str:
    peer = _load("peer_throughput.json")
    body = ["### Side by side with DeepCTR", "", *peer_tables(peer)]
    body += [
        "",
        "### CPU time per training example, one TensorFlow thread (`bench/peer_cpu.py`)",
        "",
        *peer_cpu_table(_load("peer_cpu.json")),
    ]
    if "scaling" in peer:
        body += [
            "",
            "### Scaling (mmoe-tf `mmoe`, batch 512 unless the axis is the batch size)",
            *scaling_tables(peer["scaling"]),
        ]
    if (BENCH / "thread_pools.json").exists():
        body += [
            "",
            "### Thread pools (`bench/thread_pools.py`, one process per setting and round)",
            "",
            *thread_pool_table(_load("thread_pools.json")),
        ]
    if (BENCH / "pipeline_autotune.json").exists():
        body += [
            "",
            "### The input pipeline with and without tf.data's autotuner (`bench/pipeline_autotune.py`)",
            "",
            *pipeline_autotune_table(_load("pipeline_autotune.json")),
        ]
    if (BENCH / "repeated_pipeline.json").exists():
        body += [
            "",
            "### A finite or a repeated training dataset (`bench/repeated_pipeline.py`)",
            "",
            *repeated_pipeline_table(_load("repeated_pipeline.json")),
        ]
    if (BENCH / "split_step.json").exists():
        runs = {"all cores": _load("split_step.json")}
        if (BENCH / "split_step_inter_op_1.json").exists():
            runs["1"] = _load("split_step_inter_op_1.json")
        body += [
            "",
            "### Large batches as two halves side by side (`bench/split_step.py`)",
            "",
            *split_step_table(runs),
        ]
    if (BENCH / "step_overheads.json").exists():
        body += [
            "",
            "### Steps per execution and the pipeline's shuffle",
            "",
            *overhead_tables(_load("step_overheads.json")),
        ]
    body += [
        "",
        "### Where a training step goes (before → after)",
        "",
        *breakdown_tables(_load("step_breakdown_before.json"), _load("step_breakdown_after.json")),
    ]
    return "\n".join(body)


def updated_doc() -> str:
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{render()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/performance.md is stale")
    args = parser.parse_args(argv)
    new = updated_doc()
    if args.check:
        if new != DOC.read_text():
            print("docs/performance.md is stale: run python3 bench/render_performance.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
