"""Render the measured tables of README.md, ``docs/performance.md`` and ``docs/serving.md`` from ``docs/bench/``.

Each table sits between ``<!-- bench:NAME:begin -->`` and ``<!-- bench:NAME:end -->`` in a doc, and is written from
``docs/bench/NAME.json``: the latest result (``--out``) of the maintained benchmark ``bench/NAME.py``
(``peer_summary``, the README's speed lines, from ``peer_throughput.json``). Nothing between the markers is edited by
hand, so the docs cannot drift from the measurements.

Usage:
    python3 bench/render_docs.py          # rewrite every generated block in place
    python3 bench/render_docs.py --check  # exit 1 and name the stale blocks when a doc differs from its JSON
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
from collections.abc import Callable
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = (REPO / "README.md", REPO / "docs" / "performance.md", REPO / "docs" / "serving.md")
BENCH = REPO / "docs" / "bench"
BLOCK = re.compile(r"(<!-- bench:(?P<name>[a-z_]+):begin -->\n)(?P<body>.*?)(<!-- bench:(?P=name):end -->)", re.S)


def _n(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _range(spread: dict[str, Any], digits: int = 0, unit: str = "") -> str:
    return f"{_n(spread['median'], digits)}{unit} ({_n(spread['min'], digits)}–{_n(spread['max'], digits)})"


def _machine(facts: dict[str, Any]) -> str:
    model = f", {facts['cpu_model']}" if facts.get("cpu_model") else ""
    return f"Machine: {facts['cpus']} cores{model}; 1-minute load average {facts['load_average_1m']} at the end."


def peer_throughput(result: dict[str, Any]) -> list[str]:
    if "sizes" not in result:
        return peer_throughput_one_process(result)
    s = result["settings"]
    lines = [
        f"Medians of {s['rounds']} alternated rounds (each contender in its own process; min–max over rounds), "
        f"{s['epochs_per_round']} timed epochs of {s['train_rows']:,} training rows per round.",
        "",
    ]
    for size, by_batch in result["sizes"].items():
        for batch, point in by_batch.items():
            lines += [
                f"**{size}, batch {int(batch):,}**",
                "",
                "| contender | train examples/s | train CPU µs / example | predict examples/s | click AUC "
                "| satisfaction AUC | parameters |",
                "|---|---|---|---|---|---|---|",
            ]
            for name, row in point["contenders"].items():
                auc = row["test_auc"]
                lines.append(
                    f"| {name} | {_range(row['train_examples_per_s'])} | {_range(row['train_cpu_us_per_example'], 2)} "
                    f"| {_range(row['predict_examples_per_s'])} | {auc['click']:.4f} | {auc['satisfaction']:.4f} "
                    f"| {row['parameters']:,} |"
                )
            if point["ratios_of_notebook_path"]:
                lines += [
                    "",
                    "| `mmoe_tf/numpy` against | training speed-up | prediction speed-up | training CPU per example "
                    "| AUC difference (click / satisfaction) |",
                    "|---|---|---|---|---|",
                ]
                for other, r in point["ratios_of_notebook_path"].items():
                    lines.append(
                        f"| {other} | {_range(r['train_speedup'], 2, '×')} | {_range(r['predict_speedup'], 2, '×')} "
                        f"| {_range(r['train_cpu_per_example_ratio'], 2, '×')} "
                        f"| {r['auc_delta']['click']:+.4f} / {r['auc_delta']['satisfaction']:+.4f} |"
                    )
            lines.append("")
    versions = f" TensorFlow {s['tensorflow']}, DeepCTR {s['deepctr']}."
    return [*lines, _machine(result["machine"]) + versions]


def peer_throughput_one_process(result: dict[str, Any]) -> list[str]:
    """A result of the one-process protocol (``by_batch_size``): all contenders in one process, one thread per op."""
    s = result["settings"]
    lines = [
        f"Recorded with the **one-process protocol**: every contender in one process with {s['intra_op_threads']} "
        f"thread per op, mmoe-tf fed by `data.make_dataset` (the CLI path), DeepCTR by numpy; medians of "
        f"{s['rounds']} alternated rounds × {s['epochs_per_round']} epochs of {s['train_rows']:,} rows.",
        "",
        "| batch | contender | train examples/s | predict examples/s | click AUC | satisfaction AUC |",
        "|---|---|---|---|---|---|",
    ]
    for batch, point in result["by_batch_size"].items():
        for name, row in point["contenders"].items():
            if name in ("mmoe_tf/mmoe", "mmoe_tf/mmoe@cached", "deepctr/MMOE"):
                auc = row["test_auc"]
                lines.append(
                    f"| {int(batch):,} | {name} | {_n(row['train_examples_per_s'])} "
                    f"| {_n(row['predict_examples_per_s'])} | {auc['click']:.4f} | {auc['satisfaction']:.4f} |"
                )
    lines += ["", "| batch | training speed-up vs DeepCTR `MMOE` | against its fastest round | prediction speed-up |"]
    lines.append("|---|---|---|---|")
    for batch, point in result["by_batch_size"].items():
        lines.append(
            f"| {int(batch):,} | {point['train_speedup_vs_deepctr_mmoe']:.2f}× "
            f"| {point['train_speedup_vs_deepctr_mmoe_fastest_round']:.2f}× "
            f"| {point['predict_speedup_vs_deepctr_mmoe']:.2f}× |"
        )
    return [
        *lines,
        "",
        f"Machine: {s['cpus']} cores shared with other jobs (load average {s['load_average_end']} at the end); "
        f"TensorFlow {s['tensorflow']}, DeepCTR {s['deepctr']}.",
    ]


def peer_summary(result: dict[str, Any]) -> list[str]:
    """The README's lines: mmoe-tf's speed-up over DeepCTR ``MMOE`` per path, from the latest peer result."""
    if "sizes" not in result:
        points = result["by_batch_size"]
        speedups = " / ".join(f"{p['train_speedup_vs_deepctr_mmoe']:.2f}×" for p in points.values())
        fastest = " / ".join(f"{p['train_speedup_vs_deepctr_mmoe_fastest_round']:.2f}×" for p in points.values())
        predict = " / ".join(f"{p['predict_speedup_vs_deepctr_mmoe']:.2f}×" for p in points.values())
        batches = " / ".join(f"{int(b):,}" for b in points)
        return [
            f"- CLI path, recorded with every contender in one process and one thread per op (batch {batches}): "
            f"training {speedups} DeepCTR `MMOE` ({fastest} against its fastest round), prediction {predict}."
        ]
    lines = []
    for size, by_batch in result["sizes"].items():
        for batch, point in by_batch.items():
            r = point["ratios_of_notebook_path"]
            names = {"deepctr/MMOE": "DeepCTR `MMOE`", "deepctr/MMOE@spe16": "DeepCTR tuned", "mmoe_tf/cli": "the CLI"}
            cells = [f"{r[name]['train_speedup']['median']:.2f}× {label}" for name, label in names.items() if name in r]
            lines.append(
                f"- {size}, batch {int(batch):,}: the notebook path (`model.fit` on numpy) trains at "
                + ", ".join(cells)
                + (
                    f"; predicts at {r['deepctr/MMOE']['predict_speedup']['median']:.2f}× DeepCTR `MMOE`."
                    if "deepctr/MMOE" in r
                    else "."
                )
            )
    return lines


def step_breakdown(result: dict[str, Any]) -> list[str]:
    profile = result.get("profile", {})
    lines = [
        f"Batch {result['batch_size']:,}, {result['threads']} TensorFlow thread(s); {result['ops_per_train_step']} "
        f"non-constant ops per traced train step; Keras' whole step {result['stage_us_per_example']['train_step']:.2f} "
        f"µs of CPU per example ({result['train_examples_per_s']:,} examples/s on one thread).",
        "",
        "| part of the step | ops | op self time, µs per step | stage, µs per example |",
        "|---|---|---|---|",
    ]
    by_part = profile.get("by_part_us_per_step", {})
    parts = list(dict.fromkeys([*by_part, *result["ops_by_part"]]))
    for part in parts:
        lines.append(f"| {part} | {result['ops_by_part'].get(part, '—')} | {_n(by_part.get(part), 1)} | |")
    for stage, value in result["breakdown_us_per_example"].items():
        lines.append(f"| stage: {stage} | | | {value:.2f} |")
    if profile:
        lines += ["", f"Op self time {profile['op_self_time_us_per_step']:,.1f} µs per step "]
        lines[-1] += f"({profile['steps_traced']} steps traced). Largest ops (µs per step):"
        lines += ["", "| op | µs per step |", "|---|---|"]
        lines += [f"| `{op}` | {us:,.1f} |" for op, us in list(profile["top_ops_us_per_step"].items())[:5]]
    return [*lines, "", f"TensorFlow {result['tensorflow']}; 1-minute load average {result['load_average']}."]


def serving_latency(result: dict[str, Any]) -> list[str]:
    nb, b, floor, ratios = result["no_batching"], result["batching"], result["in_process"], result["ratios"]
    session = result["in_process_session"]

    def p50(side: dict[str, Any], transport: str, batch: str) -> str:
        return f"{side[transport]['latency'][batch]['p50_ms']:.3f} ms"

    lines = ["| | in-process floor | REST | gRPC | REST, batching | gRPC, batching |", "|---|---|---|---|---|---|"]
    for batch in ("batch1", "batch64"):
        lines.append(
            f"| p50 latency, batch {batch[5:]} | {floor[batch]['p50_ms']:.3f} ms "
            f"(session {session[batch]['p50_ms']:.3f}) | {p50(nb, 'rest', batch)} "
            f"({ratios[f'rest_over_inprocess_p50_{batch}']:.2f}×) | {p50(nb, 'grpc', batch)} "
            f"| {p50(b, 'rest', batch)} | {p50(b, 'grpc', batch)} |"
        )
    for c in ("c1", "c8", "c32"):
        row = [nb["rest"], nb["grpc"], b["rest"], b["grpc"]]
        cells = " | ".join(_n(side["throughput"][c]["rps"]) for side in row)
        lines.append(f"| requests/s, {c[1:]} client{'s' if c != 'c1' else ''} | | {cells} |")
    cpu = " | ".join(_n(side["throughput"]["c32"]["server_cpu_us_per_request"]) for side in row)
    lines += [
        f"| server CPU µs per request, 32 clients | | {cpu} |",
        "",
        f"Batching at 32 clients: {ratios['rest_batching_over_no_batching_rps_c32_paired']:.2f}× the unbatched "
        "REST requests/s (paired per round), a lone client "
        f"{ratios['rest_batching_over_no_batching_rps_c1_paired']:.2f}×. "
        f"Medians of {result['rounds']} alternated rounds; {result['cpu_count']} cores, 1-minute load average "
        f"{result['load_average_1m_before']} → {result['load_average_1m_after']}.",
    ]
    return lines


HOSTILE = {
    "slowloris": "slowloris: a predict head trickled a byte every 0.2 s",
    "oversized_trailer": "chunked predict with an 80 KiB trailer",
    "never_reads": "pipelines 64-row predicts, never reads an answer",
    "grpc_huge_shape": "gRPC `Predict` declaring 60,000,000-element inputs, no values",
}


def serving_soak(result: dict[str, Any]) -> list[str]:
    rest, grpc, ev, rss, hostile = result["rest"], result["grpc"], result["events"], result["rss_mb"], result["hostile"]
    held = hostile["never_reads_held_s"]
    lines = [
        f"{result['seconds']:.0f} s at saturation; every check {'passed' if result['passed'] else 'did NOT pass'}.",
        "",
        "| | REST | gRPC |",
        "|---|---|---|",
        f"| answered (requests/s) | {rest['ok']:,} ({rest['rps']:,.0f}/s) | {grpc['ok']:,} ({grpc['rps']:,.0f}/s) |",
        f"| failed / wrong answers | {rest['failed']} / {rest['wrong']} | {grpc['failed']} / {grpc['wrong']} |",
        f"| answers from version 1 / 2 | {rest['by_version']['1']:,} / {rest['by_version']['2']:,} "
        f"| {grpc['by_version']['1']:,} / {grpc['by_version']['2']:,} |",
        f"| an older version answering after a newer one | {rest['regressed']} | {grpc['regressed']} |",
        "",
        f"| hostile client, attacking again as soon as each attempt ends (server `{' '.join(result['server_flags'])}`) "
        "| what it got |",
        "|---|---|",
        *(
            f"| {text} | {', '.join(f'{n:,} × {got}' for got, n in hostile[name].items())} |"
            for name, text in HOSTILE.items()
        ),
        "",
        f"Each never-reading connection was closed after {min(held, default=0):.0f}–{max(held, default=0):.0f} s. "
        f"Version 2 AVAILABLE at {ev['v2_available_s']:.0f} s; corrupt version 3 dropped at {ev['v3_dropped_s']:.0f} s "
        f"and `END` at {ev['v3_ended_s']:.0f} s while version 2 kept answering. Server RSS {rss['start']} MB at the "
        f"start, {rss['after_warmup']} MB after warm-up, {rss['final']} MB at the end ({rss['growth_pct']:+.2f} % of "
        f"the warmed-up figure). {result['cpu_count']} cores, 1-minute load average {result['load_average_1m_before']} "
        f"→ {result['load_average_1m_after']}.",
    ]
    return lines


TABLES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "peer_throughput": peer_throughput,
    "peer_summary": peer_summary,
    "step_breakdown": step_breakdown,
    "serving_latency": serving_latency,
    "serving_soak": serving_soak,
}


def render(text: str, bench: pathlib.Path = BENCH) -> str:
    """``text`` with every generated block rewritten from ``bench/NAME.json``."""

    def block(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise KeyError(f"unknown generated block {name!r}; known: {sorted(TABLES)}")
        source = "peer_throughput" if name == "peer_summary" else name
        body = "\n".join(TABLES[name](json.loads((bench / f"{source}.json").read_text())))
        return f"{match.group(1)}{body}\n{match.group(4)}"

    return BLOCK.sub(block, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated block is stale")
    args = parser.parse_args(argv)
    stale = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        new = render(text)
        if new != text:
            stale.append(str(doc.relative_to(REPO)))
            if not args.check:
                doc.write_text(new, encoding="utf-8")
    if args.check and stale:
        print(f"stale generated tables in {stale}: run python3 bench/render_docs.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
