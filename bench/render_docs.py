"""Render the measured tables of README.md and ``docs/`` from the latest benchmark results in ``docs/bench/``.

Each block sits between ``<!-- bench:NAME:begin -->`` and ``<!-- bench:NAME:end -->`` and is written from
``docs/bench/NAME.json`` (or the file :data:`SOURCES` names), so the docs cannot drift from the measurements.

Usage:
    python3 bench/render_docs.py          # rewrite every generated block in place
    python3 bench/render_docs.py --check  # exit 1 and name the stale docs when a block differs from its JSON
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import statistics
import sys
from collections.abc import Callable
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = tuple(REPO / p for p in ("README.md", "docs/performance.md", "docs/serving.md", "docs/scaling.md"))
BENCH = REPO / "docs" / "bench"
BLOCK = re.compile(r"(<!-- bench:(?P<name>[a-z_]+):begin -->\n)(?P<body>.*?)(<!-- bench:(?P=name):end -->)", re.S)
SOURCES = {"peer_summary": "peer_throughput", "ps_capacity": "parameter_server"}


def _n(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _range(spread: dict[str, Any], digits: int = 0, unit: str = "") -> str:
    return f"{_n(spread['median'], digits)}{unit} ({_n(spread['min'], digits)}–{_n(spread['max'], digits)})"


def _machine(facts: dict[str, Any]) -> str:
    model = f", {facts['cpu_model']}" if facts.get("cpu_model") else ""
    return f"Machine: {facts['cpus']} cores{model}; 1-minute load average {facts['load_average_1m']} at the end."


NOTEBOOK, DEEPCTR = "mmoe_tf/numpy", "deepctr/MMOE"
TARGETS = {  # the project's targets for the notebook path against each contender: figure -> (comparison, bound)
    DEEPCTR: {
        "train_speedup": ("≥", 1.5),
        "predict_speedup": ("≥", 2),
        "train_cpu_per_example_ratio": ("≤", 0.75),
        "auc_delta": ("±", 0.003),
    },
    "deepctr/MMOE@spe16": {"train_speedup": ("≥", 1.2), "auc_delta": ("±", 0.003)},
    "mmoe_tf/dataset": {},  # no target: what the notebook path's data path costs against the CLI's
    "mmoe_tf/cli": {"train_speedup": ("≥", 0.9)},
}
FIGURES = {
    "train_speedup": "training speed-up",
    "predict_speedup": "prediction speed-up",
    "train_cpu_per_example_ratio": "training CPU per example",
    "auc_delta": "test AUC difference",
}


def _judge(op: str, bound: float | None, value: float) -> tuple[str, str]:
    """The target as text, and whether ``value`` meets it (empty strings when there is no target)."""
    if bound is None:
        return "", ""
    ok = {"≥": value >= bound, "≤": value <= bound, "±": abs(value) <= bound}[op]
    return (f"within ± {bound}" if op == "±" else f"{op} {bound}×"), ("met" if ok else "**not met**")


def _ratio_rows(batch: str, point: dict[str, Any]) -> tuple[list[tuple[str, ...]], list[str]]:
    """One row per contender the notebook path is compared with: ``(batch, contender, one cell per figure)``, a
    cell holding the median (min–max) and, where the figure has a target, the target and whether it is met; and
    the verdicts."""
    rows, verdicts = [], []
    for other, targets in TARGETS.items():
        if (r := point["ratios_of_notebook_path"].get(other)) is None:
            continue
        cells = []
        for key in FIGURES:
            if key == "auc_delta":
                value, median = " / ".join(f"{v:+.4f}" for v in r[key].values()), max(r[key].values(), key=abs)
            else:
                value, median = _range(r[key], 2, "×"), r[key]["median"]
            target, verdict = _judge(*targets.get(key, ("", None)), median)
            cells.append(f"{value}; {target}: {verdict}" if target else value)
            verdicts += [verdict] if verdict else []
        rows.append((batch, other, *cells))
    return rows, verdicts


def peer_throughput(result: dict[str, Any]) -> list[str]:
    s = result["settings"]
    lines = [
        f"Medians of {s['rounds']} alternated rounds (min–max over rounds), each contender in its own process, "
        f"{s['epochs_per_round']} timed epochs of {s['train_rows']:,} training rows per round.",
    ]
    verdicts = []
    for size, by_batch in result["sizes"].items():
        lines += ["", f"**{size}**", "", "| batch | contender | train examples/s | train CPU µs / example "]
        lines[-1] += "| predict examples/s | test AUC click / satisfaction |"
        lines.append("|---|---|---|---|---|---|")
        for batch, point in by_batch.items():
            for name, row in point["contenders"].items():
                train, cpu = _range(row["train_examples_per_s"]), _range(row["train_cpu_us_per_example"], 2)
                predict, auc = (
                    _range(row["predict_examples_per_s"]),
                    " / ".join(f"{v:.4f}" for v in row["test_auc"].values()),
                )
                lines.append(f"| {int(batch):,} | `{name}` | {train} | {cpu} | {predict} | {auc} |")
        ratios = [_ratio_rows(batch, point) for batch, point in by_batch.items()]
        if any(rows for rows, _ in ratios):
            lines += ["", "| batch | `mmoe_tf/numpy` against | " + " | ".join(FIGURES.values()) + " |"]
            lines.append("|---|---|" + "---|" * len(FIGURES))
            lines += [f"| {int(b):,} | `{o}` | " + " | ".join(c) + " |" for rows, _ in ratios for b, o, *c in rows]
            verdicts += [v for _, found in ratios for v in found]
    met = f"Targets met: {verdicts.count('met')} of {len(verdicts)}. "
    versions = f"TensorFlow {s['tensorflow']}, DeepCTR {s['deepctr'] or 'not run'}."
    return [*lines, "", met + _machine(result["machine"]) + " " + versions]


def _paired(point: dict[str, Any], name: str, other: str) -> float | None:
    """The median over rounds of ``name``'s training examples/s over ``other``'s (None when either was not run)."""
    rows = point["contenders"]
    if name not in rows or other not in rows:
        return None
    pairs = zip(*(rows[n]["train_examples_per_s"]["rounds"] for n in (name, other)), strict=True)
    return statistics.median(a / b for a, b in pairs)


def peer_summary(result: dict[str, Any]) -> list[str]:
    """The README's sentence: the notebook path's and the CLI's training speed-up over DeepCTR ``MMOE`` as it comes."""
    s, points = result["settings"], [(size, b, p) for size, bb in result["sizes"].items() for b, p in bb.items()]
    notebook = [_paired(p, NOTEBOOK, DEEPCTR) for _, _, p in points]
    cli = [_paired(p, "mmoe_tf/cli", DEEPCTR) for _, _, p in points]
    if None in notebook:
        return ["Training speed against DeepCTR `MMOE`: not measured in the recorded run (see performance.md)."]
    protocol = (
        f"`bench/peer_throughput.py`: each library in its own process with TensorFlow's default threads, median of "
        f"{s['rounds']} alternated rounds of {s['epochs_per_round']} epochs over {s['train_rows']:,} rows on "
        f"{result['machine']['cpus']} cores"
    )
    at = ", ".join(f"{x:.2f}× at batch {int(b):,} ({size})" for x, (size, b, _) in zip(notebook, points, strict=True))
    beside = "" if None in cli else "; the CLI path's (`python -m training`) " + ", ".join(f"{x:.2f}×" for x in cli)
    return [
        f"Training speed against DeepCTR {s['deepctr']} `MMOE` as it comes ({protocol}): the notebook path's "
        f"(`model.fit` on numpy columns) examples/s over DeepCTR's are {at}{beside}."
    ]


def step_breakdown(result: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for size, one in result["sizes"].items():
        lines += [f"**{size}** size class ({one['model']}):", "", *step_of_size(one), ""]
    return [*lines, f"TensorFlow {result['tensorflow']}."]


def step_of_size(result: dict[str, Any]) -> list[str]:
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
    return [*lines, "", f"1-minute load average {result['load_average']}."]


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


def parameter_server(result: dict[str, Any]) -> list[str]:
    one, cluster, small = result["single_process"], result["cluster_2_workers_2_ps"], result["cluster_small_table"]
    rows, dim, batch = result["config"]["id_rows"], result["config"]["dim"], result["config"]["batch_size"]
    rss = cluster["peak_rss_mb"]

    def by_role(run: dict[str, Any], role: str) -> str:
        return " / ".join(_n(mb) for task, mb in run["peak_rss_mb"].items() if task.startswith(role))

    shards = ", ".join(f"{s['shape'][0]:,} × {s['shape'][1]} on {s['task']}" for s in cluster["user_id_table_shards"])
    slots = " / ".join(f"{cluster[k]['ps:0']} MB" for k in ("variable_mb_per_task", "optimizer_variable_mb_per_task"))
    step = [batch / run["train_examples_per_s"] for run in (one, cluster, small)]
    delta = result["auc_difference"]
    return [
        "| | one process | cluster, 2 workers + 2 ps |",
        "|---|---|---|",
        *(f"| test AUC {t} | {one['test_auc'][t]} | {cluster['test_auc'][t]} |" for t in one["test_auc"]),
        f"| `user_id` table | {rows:,} × {dim} in one variable | {shards} |",
        f"| model variables / Adam slots on ps:0 | — | {slots} |",
        f"| peak RSS, MB | {_n(one['peak_rss_mb']['single'])} | ps {by_role(cluster, 'ps')}, workers "
        f"{by_role(cluster, 'worker')}, chief {_n(rss['chief:0'])} |",
        f"| training examples/s | {one['train_examples_per_s']} | {cluster['train_examples_per_s']} "
        f"({result['throughput_ratio']:.2f}×) |",
        f"| seconds per step of {batch} | {step[0]:.2f} | {step[1]:.2f} |",
        "",
        f"AUC difference (cluster − one process): {', '.join(f'{t} {v:+.4f}' for t, v in delta.items())} "
        f"(target: {', '.join(_judge('±', 0.005, max(delta.values(), key=abs)))}). Workers' "
        f"peak RSS {by_role(cluster, 'worker')} MB against {by_role(small, 'worker')} MB on the same cluster with a "
        f"{small['id_rows']:,}-row table (growth below the {result['user_id_table_mb']:.0f} MB table: "
        f"{'yes' if result['worker_rss_growth_below_table_size'] else '**no**'}). With that small table the cluster "
        f"ran {small['train_examples_per_s']:,.0f} examples/s ({step[2]:.3f} s per step).",
    ]


CAPACITY = ((10_000_000, 2), (10_000_000, 8), (100_000_000, 8), (100_000_000, 32))  # ids, ps tasks


def ps_capacity(result: dict[str, Any]) -> list[str]:
    """Memory and speed at other sizes, from the per-row costs of ``bench/parameter_server.py``'s runs."""
    cluster, small, per_row = (
        result["cluster_2_workers_2_ps"],
        result["cluster_small_table"],
        result["rss_bytes_per_id_row"],
    )
    batch, rows_per_ps = result["config"]["batch_size"], result["config"]["id_rows"] / 2
    ps = max((t for t in per_row if t.startswith("ps")), key=per_row.get)
    base_mb, big_mb = small["peak_rss_mb"][ps], cluster["peak_rss_mb"][ps]
    small_step, big_step = (batch / run["train_examples_per_s"] for run in (small, cluster))
    row_s = (big_step - small_step) / rows_per_ps
    chief_mb, chief_row = small["peak_rss_mb"]["chief:0"], per_row["chief:0"]
    lines = [
        f"- **memory per ps**: {base_mb:,.0f} MB of process (the small-table run) + {per_row[ps]:.0f} B per table row "
        f"it holds (the larger of the two ps: ({big_mb:,.0f} − {base_mb:,.0f}) MB / {rows_per_ps:,.0f} rows);",
        f"- **step time**: {small_step:.3f} s per step of {batch} examples with a small table, plus "
        f"{row_s * 1e6:.2f} µs per row held by each ps (the Adam pass: ({big_step:.3f} − {small_step:.3f}) s / "
        f"{rows_per_ps:,.0f} rows), the ps tasks working in parallel;",
        f"- **chief**: {chief_mb:,.0f} MB + {chief_row:.0f} B per row of the whole table for the final unsharded copy "
        "(evaluation, `model.keras`, export).",
        "",
        f"| ids × {result['config']['dim']} | ps tasks | rows per ps | memory per ps "
        f"| examples/s (batch {batch}, Adam) | chief at the end |",
        "|---|---|---|---|---|---|",
    ]
    for ids, tasks in CAPACITY:
        held = ids / tasks
        memory = (base_mb + per_row[ps] * held / 2**20) / 1024
        chief = (chief_mb + chief_row * ids / 2**20) / 1024
        speed = batch / (small_step + row_s * held)
        cells = f"{ids / 1e6:.0f}M | {tasks} | {held / 1e6:.3g}M | {memory:.1f} GB | {speed:,.0f} | {chief:.1f} GB"
        lines.append(f"| {cells} |")
    return lines


def ps_faults(result: dict[str, Any]) -> list[str]:
    epochs = max(s.get(run, {}).get("last_epoch", 0) for s in result["scenarios"] for run in ("first_run", "rerun"))
    lines = [
        f"| task killed | after epoch | first run | same command again | epochs run (of {epochs}) | as expected |",
        "|---|---|---|---|---|---|",
    ]
    for s in result["scenarios"]:
        task = "chief" if s["role"] == "chief" else f"{s['role']} 0"
        if "rerun" in s:
            again = f"exit {s['rerun_exit_code']}, resumed at epoch {s['rerun']['initial_epoch']}"
            ran = f"{s['rerun']['initial_epoch']} + {s['rerun']['epochs_run_this_call']}"
        else:
            again, ran = "not needed", f"{s['first_run'].get('epochs_run_this_call', 0)} in one run"
        ok = "yes" if s["ok"] else "**no**"
        lines.append(f"| {task} | {s['killed_after_epochs']} | exit {s['first_exit_code']} | {again} | {ran} | {ok} |")
    return lines


TABLES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "peer_throughput": peer_throughput,
    "peer_summary": peer_summary,
    "step_breakdown": step_breakdown,
    "serving_latency": serving_latency,
    "serving_soak": serving_soak,
    "parameter_server": parameter_server,
    "ps_capacity": ps_capacity,
    "ps_faults": ps_faults,
}


def render(text: str, bench: pathlib.Path = BENCH) -> str:
    """``text`` with every generated block rewritten from ``bench/NAME.json``."""

    def block(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise KeyError(f"unknown generated block {name!r}; known: {sorted(TABLES)}")
        path = bench / f"{SOURCES.get(name, name)}.json"
        if path.exists():
            body = "\n".join(TABLES[name](json.loads(path.read_text())))
        else:
            body = f"No recorded result yet: the benchmark's `--out docs/bench/{path.name}` writes it."
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
