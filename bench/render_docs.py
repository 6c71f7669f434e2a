"""Render the measured tables of README.md and ``docs/`` from the latest benchmark results in ``docs/bench/``.

Each block sits between ``<!-- bench:NAME:begin -->`` and ``<!-- bench:NAME:end -->`` and is written from
``docs/bench/NAME.json`` (or the file :data:`SOURCES` names) by the ``TABLES`` function of that name.

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
from collections.abc import Callable, Iterable, Sequence
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = tuple(REPO / p for p in ("README.md", "docs/performance.md", "docs/serving.md", "docs/scaling.md"))
BENCH = REPO / "docs" / "bench"
BLOCK = re.compile(r"(<!-- bench:(?P<name>[a-z_]+):begin -->\n)(?P<body>.*?)(<!-- bench:(?P=name):end -->)", re.S)
SOURCES = {"peer_summary": "peer_throughput", "ps_capacity": "parameter_server"}
MISSING = "No recorded result yet: the benchmark's `--out docs/bench/{}` writes it."


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A markdown table: ``table(("a", "b"), [(1, "x")])`` is ``["| a | b |", "|---|---|", "| 1 | x |"]``."""
    cells = [" | ".join(map(str, row)) for row in (header, *rows)]
    return [f"| {cells[0]} |", "|" + "---|" * len(header), *(f"| {row} |" for row in cells[1:])]


def _n(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _range(spread: dict[str, Any], digits: int = 0, unit: str = "") -> str:
    return f"{_n(spread['median'], digits)}{unit} ({_n(spread['min'], digits)}–{_n(spread['max'], digits)})"


def _load(result: dict[str, Any]) -> str:
    before, after = result["load_average_1m_before"], result["load_average_1m_after"]
    return f"{result['cpu_count']} cores, 1-minute load average {before} → {after}."


NOTEBOOK, DEEPCTR, SPE16 = "mmoe_tf/numpy", "deepctr/MMOE", "deepctr/MMOE@spe16"
AGAINST = (DEEPCTR, SPE16, "mmoe_tf/cli")  # the ratio rows: the notebook path against each
FIGURES = {  # ratio of the notebook path to a contender -> its header, and the project's targets by contender
    "train_speedup": ("training speed-up", {DEEPCTR: ("≥", 1.5), SPE16: ("≥", 1.2), "mmoe_tf/cli": ("≥", 0.9)}),
    "predict_speedup": ("prediction speed-up", {DEEPCTR: ("≥", 2)}),
    "train_cpu_per_example_ratio": ("training CPU per example", {DEEPCTR: ("≤", 0.75)}),
    "auc_delta": ("test AUC difference", {DEEPCTR: ("±", 0.003), SPE16: ("±", 0.003)}),
}
COLUMNS = {  # a contender's columns: header -> (field, decimals)
    "train examples/s": ("train_examples_per_s", 0),
    "train CPU µs / example": ("train_cpu_us_per_example", 2),
    "predict examples/s": ("predict_examples_per_s", 0),
}


def _judge(op: str, bound: float | None, value: float) -> tuple[str, str]:
    """The target as text, and whether ``value`` meets it (empty strings when there is no target)."""
    if bound is None:
        return "", ""
    ok = {"≥": value >= bound, "≤": value <= bound, "±": abs(value) <= bound}[op]
    return (f"within ± {bound}" if op == "±" else f"{op} {bound}×"), ("met" if ok else "**not met**")


def _auc(by_task: dict[str, float], form: str) -> str:
    return " / ".join(map(form.format, by_task.values()))


def _points(result: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(size class, batch with thousands separators, point)`` for every point of a peer-throughput result."""
    return [(size, f"{int(b):,}", point) for size, by_batch in result["sizes"].items() for b, point in by_batch.items()]


def peer_throughput(result: dict[str, Any]) -> list[str]:
    """Each contender's figures, then the notebook path against each other contender with the targets judged."""
    s, points = result["settings"], _points(result)
    rows = [
        (size, batch, f"`{name}`", *(_range(r[k], d) for k, d in COLUMNS.values()), _auc(r["test_auc"], "{:.4f}"))
        for size, batch, point in points
        for name, r in point["contenders"].items()
    ]
    ratio_rows, verdicts = [], []
    for size, batch, point in points:
        for other in AGAINST:
            if (r := point["ratios_of_notebook_path"].get(other)) is None:
                continue
            cells = []
            for key, (_, targets) in FIGURES.items():  # median (min–max), then the target and whether it is met
                if key == "auc_delta":
                    value, median = _auc(r[key], "{:+.4f}"), max(r[key].values(), key=abs)
                else:
                    value, median = _range(r[key], 2, "×"), r[key]["median"]
                target, verdict = _judge(*targets.get(other, ("", None)), median)
                cells.append(f"{value}; {target}: {verdict}" if target else value)
                verdicts += [verdict] if verdict else []
            ratio_rows.append((size, batch, f"`{other}`", *cells))
    lines = [
        f"Medians of {s['rounds']} alternated rounds (min–max over rounds), each contender in its own process, "
        f"{s['epochs_per_round']} timed epochs of {s['train_rows']:,} training rows per round.",
        "",
        *table(("size", "batch", "contender", *COLUMNS, "test AUC click / satisfaction"), rows),
    ]
    if ratio_rows:
        lines += ["", *table(("size", "batch", f"`{NOTEBOOK}` against", *(h for h, _ in FIGURES.values())), ratio_rows)]
    m = result["machine"]
    return [
        *lines,
        "",
        f"Targets met: {verdicts.count('met')} of {len(verdicts)}. Machine: {m['cpus']} cores"
        + (f", {m['cpu_model']}" if m.get("cpu_model") else "")
        + f"; 1-minute load average {m['load_average_1m']} at the end. "
        f"TensorFlow {s['tensorflow']}, DeepCTR {s['deepctr'] or 'not run'}.",
    ]


def _paired(point: dict[str, Any], name: str, other: str) -> float | None:
    """The median over rounds of ``name``'s training examples/s over ``other``'s (None when either was not run)."""
    rows = point["contenders"]
    if name not in rows or other not in rows:
        return None
    pairs = zip(*(rows[n]["train_examples_per_s"]["rounds"] for n in (name, other)), strict=True)
    return statistics.median(a / b for a, b in pairs)


def peer_summary(result: dict[str, Any]) -> list[str]:
    """The README's sentence: the notebook path's and the CLI's training speed-up over DeepCTR ``MMOE`` as it comes."""
    s, points = result["settings"], _points(result)
    notebook = [_paired(p, NOTEBOOK, DEEPCTR) for _, _, p in points]
    cli = [_paired(p, "mmoe_tf/cli", DEEPCTR) for _, _, p in points]
    if None in notebook:
        return ["Training speed against DeepCTR `MMOE`: not measured in the recorded run (see performance.md)."]
    at = ", ".join(f"{x:.2f}× at batch {b} ({size})" for x, (size, b, _) in zip(notebook, points, strict=True))
    beside = "" if None in cli else "; the CLI path's (`python -m training`) " + ", ".join(f"{x:.2f}×" for x in cli)
    return [
        f"Training speed against DeepCTR {s['deepctr']} `MMOE` as it comes (`bench/peer_throughput.py`: each library "
        f"in its own process with its default threads, median of {s['rounds']} alternated rounds of "
        f"{s['epochs_per_round']} epochs over {s['train_rows']:,} rows on {result['machine']['cpus']} cores): the "
        f"notebook path's (`model.fit` on numpy columns) examples/s over DeepCTR's are {at}{beside}."
    ]


def step_breakdown(result: dict[str, Any]) -> list[str]:
    """Each size class's step side by side: ops and op self time by part, stage costs, largest ops."""
    sizes = result["sizes"]
    lines = []
    for size, one in sizes.items():
        profile = one.get("profile")
        traced = f"; op self time {profile['op_self_time_us_per_step']:,.1f} µs per step " if profile else ""
        traced += f"({profile['steps_traced']} steps traced)" if profile else ""
        lines.append(
            f"- **{size}** ({one['model']}): batch {one['batch_size']:,}, {one['threads']} TensorFlow thread(s); "
            f"{one['ops_per_train_step']} non-constant ops per traced train step; Keras' whole step "
            f"{one['stage_us_per_example']['train_step']:.2f} µs of CPU per example ({one['train_examples_per_s']:,} "
            f"examples/s on one thread){traced}; 1-minute load average {one['load_average']}."
        )
    by_part = {size: one.get("profile", {}).get("by_part_us_per_step", {}) for size, one in sizes.items()}
    parts = dict.fromkeys(p for size, one in sizes.items() for p in [*by_part[size], *one["ops_by_part"]])
    stages = dict.fromkeys(k for one in sizes.values() for k in one["breakdown_us_per_example"])
    part_header = [h for s in sizes for h in (f"{s}: ops", f"{s}: op self time, µs per step")]
    part_rows = [
        [
            part,
            *(c for s, one in sizes.items() for c in (one["ops_by_part"].get(part, "—"), _n(by_part[s].get(part), 1))),
        ]
        for part in parts
    ]
    stage_rows = [
        [stage, *(_n(one["breakdown_us_per_example"].get(stage), 2) for one in sizes.values())] for stage in stages
    ]
    lines += ["", *table(["part of the step", *part_header], part_rows)]
    lines += ["", *table(["stage", *(f"{s}: µs per example" for s in sizes)], stage_rows)]
    top = [list(one["profile"]["top_ops_us_per_step"].items())[:5] for one in sizes.values() if "profile" in one]
    if top and len(top) == len(sizes):
        ranked = [[f"`{op}` {us:,.1f}" for op, us in row] for row in zip(*top, strict=False)]
        lines += ["", *table([f"largest ops of {s}, µs per step" for s in sizes], ranked)]
    unit = next(iter(sizes.values()))["unit"].removeprefix("µs per example ")
    return [*lines, "", f"Stage costs in µs per example {unit}. TensorFlow {result['tensorflow']}."]


def serving_latency(result: dict[str, Any]) -> list[str]:
    """p50 latencies against the in-process floor, requests/s by clients and server CPU, without and with batching."""
    nb, b, floor, ratios = result["no_batching"], result["batching"], result["in_process"], result["ratios"]
    sides = [nb["rest"], nb["grpc"], b["rest"], b["grpc"]]
    rows = []
    for batch in ("batch1", "batch64"):
        p50 = [f"{side['latency'][batch]['p50_ms']:.3f} ms" for side in sides]
        p50[0] += f" ({ratios[f'rest_over_inprocess_p50_{batch}']:.2f}×)"
        session = result["in_process_session"][batch]["p50_ms"]
        rows.append(
            (f"p50 latency, batch {batch[5:]}", f"{floor[batch]['p50_ms']:.3f} ms (session {session:.3f})", *p50)
        )
    for c in ("c1", "c8", "c32"):
        rps = (_n(side["throughput"][c]["rps"]) for side in sides)
        rows.append((f"requests/s, {c[1:]} client{'s' if c != 'c1' else ''}", "", *rps))
    cpu = (_n(side["throughput"]["c32"]["server_cpu_us_per_request"]) for side in sides)
    rows.append(("server CPU µs per request, 32 clients", "", *cpu))
    paired = "rest_batching_over_no_batching_rps_c{}_paired"
    return [
        *table(("", "in-process floor", "REST", "gRPC", "REST, batching", "gRPC, batching"), rows),
        "",
        f"Batching at 32 clients: {ratios[paired.format(32)]:.2f}× the unbatched REST requests/s (paired per round), "
        f"a lone client {ratios[paired.format(1)]:.2f}×. Medians of {result['rounds']} alternated rounds; "
        + _load(result),
    ]


HOSTILE = {
    "slowloris": "slowloris: a predict head trickled a byte every 0.2 s",
    "oversized_trailer": "chunked predict with an 80 KiB trailer",
    "never_reads": "pipelines 64-row predicts, never reads an answer",
    "grpc_huge_shape": "gRPC `Predict` declaring 60,000,000-element inputs, no values",
}


def serving_soak(result: dict[str, Any]) -> list[str]:
    """The normal clients' answers by transport, what each hostile client got, the reload events and the RSS."""
    rest, grpc, ev, rss, hostile = result["rest"], result["grpc"], result["events"], result["rss_mb"], result["hostile"]
    held = hostile["never_reads_held_s"]
    both = [
        ("answered (requests/s)", *(f"{t['ok']:,} ({t['rps']:,.0f}/s)" for t in (rest, grpc))),
        ("failed / wrong answers", *(f"{t['failed']} / {t['wrong']}" for t in (rest, grpc))),
        ("answers from version 1 / 2", *(f"{t['by_version']['1']:,} / {t['by_version']['2']:,}" for t in (rest, grpc))),
        ("an older version answering after a newer one", rest["regressed"], grpc["regressed"]),
    ]
    attacks = [
        (text, ", ".join(f"{n:,} × {got}" for got, n in hostile[name].items())) for name, text in HOSTILE.items()
    ]
    flags = " ".join(result["server_flags"])
    return [
        f"{result['seconds']:.0f} s at saturation; every check {'passed' if result['passed'] else 'did NOT pass'}.",
        "",
        *table(("", "REST", "gRPC"), both),
        "",
        *table(
            (f"hostile client, attacking again as soon as each attempt ends (server `{flags}`)", "what it got"), attacks
        ),
        "",
        f"Each never-reading connection was closed after {min(held, default=0):.0f}–{max(held, default=0):.0f} s. "
        f"Version 2 AVAILABLE at {ev['v2_available_s']:.0f} s; corrupt version 3 dropped at {ev['v3_dropped_s']:.0f} s "
        f"and `END` at {ev['v3_ended_s']:.0f} s while version 2 kept answering. Server RSS {rss['start']} MB at the "
        f"start, {rss['after_warmup']} MB after warm-up, {rss['final']} MB at the end ({rss['growth_pct']:+.2f} % of "
        f"the warmed-up figure). {_load(result)}",
    ]


def parameter_server(result: dict[str, Any]) -> list[str]:
    """One process against the cluster: AUC, table placement, memory per task and speed."""
    one, cluster, small = result["single_process"], result["cluster_2_workers_2_ps"], result["cluster_small_table"]
    rows, dim, batch = result["config"]["id_rows"], result["config"]["dim"], result["config"]["batch_size"]

    def by_role(run: dict[str, Any], role: str) -> str:
        return " / ".join(_n(mb) for task, mb in run["peak_rss_mb"].items() if task.startswith(role))

    shards = ", ".join(f"{s['shape'][0]:,} × {s['shape'][1]} on {s['task']}" for s in cluster["user_id_table_shards"])
    slots = " / ".join(f"{cluster[k]['ps:0']} MB" for k in ("variable_mb_per_task", "optimizer_variable_mb_per_task"))
    step = [batch / run["train_examples_per_s"] for run in (one, cluster, small)]
    delta, workers = result["auc_difference"], by_role(cluster, "worker")
    rss = f"ps {by_role(cluster, 'ps')}, workers {workers}, chief {_n(cluster['peak_rss_mb']['chief:0'])}"
    ratio = f"{cluster['train_examples_per_s']} ({result['throughput_ratio']:.2f}×)"
    body = [
        *((f"test AUC {t}", one["test_auc"][t], cluster["test_auc"][t]) for t in one["test_auc"]),
        ("`user_id` table", f"{rows:,} × {dim} in one variable", shards),
        ("model variables / Adam slots on ps:0", "—", slots),
        ("peak RSS, MB", _n(one["peak_rss_mb"]["single"]), rss),
        ("training examples/s", one["train_examples_per_s"], ratio),
        (f"seconds per step of {batch}", f"{step[0]:.2f}", f"{step[1]:.2f}"),
    ]
    return [
        *table(("", "one process", "cluster, 2 workers + 2 ps"), body),
        "",
        f"AUC difference (cluster − one process): {', '.join(f'{t} {v:+.4f}' for t, v in delta.items())} "
        f"(target: {', '.join(_judge('±', 0.005, max(delta.values(), key=abs)))}). Workers' "
        f"peak RSS {workers} MB against {by_role(small, 'worker')} MB on the same cluster with a "
        f"{small['id_rows']:,}-row table (growth below the {result['user_id_table_mb']:.0f} MB table: "
        f"{'yes' if result['worker_rss_growth_below_table_size'] else '**no**'}). With that small table the cluster "
        f"ran {small['train_examples_per_s']:,.0f} examples/s ({step[2]:.3f} s per step).",
    ]


CAPACITY = ((10_000_000, 2), (10_000_000, 8), (100_000_000, 8), (100_000_000, 32))  # ids, ps tasks


def ps_capacity(result: dict[str, Any]) -> list[str]:
    """Memory and speed at other sizes, from the per-row costs of ``bench/parameter_server.py``'s runs."""
    cluster, small = result["cluster_2_workers_2_ps"], result["cluster_small_table"]
    per_row = result["rss_bytes_per_id_row"]
    batch, rows_per_ps = result["config"]["batch_size"], result["config"]["id_rows"] / 2
    ps = max((t for t in per_row if t.startswith("ps")), key=per_row.get)
    base_mb, big_mb = small["peak_rss_mb"][ps], cluster["peak_rss_mb"][ps]
    small_step, big_step = (batch / run["train_examples_per_s"] for run in (small, cluster))
    row_s = (big_step - small_step) / rows_per_ps
    chief_mb, chief_row = small["peak_rss_mb"]["chief:0"], per_row["chief:0"]
    rows = []
    for ids, tasks in CAPACITY:
        memory = f"{(base_mb + per_row[ps] * ids / tasks / 2**20) / 1024:.1f} GB"
        speed = f"{batch / (small_step + row_s * ids / tasks):,.0f}"
        chief = f"{(chief_mb + chief_row * ids / 2**20) / 1024:.1f} GB"
        rows.append((f"{ids / 1e6:.0f}M", tasks, f"{ids / tasks / 1e6:.3g}M", memory, speed, chief))
    header = (f"ids × {result['config']['dim']}", "ps tasks", "rows per ps", "memory per ps")
    return [
        f"- **memory per ps**: {base_mb:,.0f} MB of process (the small-table run) + {per_row[ps]:.0f} B per table row "
        f"it holds (the larger of the two ps: ({big_mb:,.0f} − {base_mb:,.0f}) MB / {rows_per_ps:,.0f} rows);",
        f"- **step time**: {small_step:.3f} s per step of {batch} examples with a small table, plus "
        f"{row_s * 1e6:.2f} µs per row held by each ps (the Adam pass: ({big_step:.3f} − {small_step:.3f}) s / "
        f"{rows_per_ps:,.0f} rows), the ps tasks working in parallel;",
        f"- **chief**: {chief_mb:,.0f} MB + {chief_row:.0f} B per row of the whole table for the final unsharded copy "
        "(evaluation, `model.keras`, export).",
        "",
        *table((*header, f"examples/s (batch {batch}, Adam)", "chief at the end"), rows),
    ]


def ps_faults(result: dict[str, Any]) -> list[str]:
    """Each killed task: how the first run ended, whether the same command resumed it, and the epochs run."""
    epochs = max(s.get(run, {}).get("last_epoch", 0) for s in result["scenarios"] for run in ("first_run", "rerun"))
    rows = []
    for s in result["scenarios"]:
        if "rerun" in s:
            again = f"exit {s['rerun_exit_code']}, resumed at epoch {s['rerun']['initial_epoch']}"
            ran = f"{s['rerun']['initial_epoch']} + {s['rerun']['epochs_run_this_call']}"
        else:
            again, ran = "not needed", f"{s['first_run'].get('epochs_run_this_call', 0)} in one run"
        task = "chief" if s["role"] == "chief" else f"{s['role']} 0"
        ok = "yes" if s["ok"] else "**no**"
        rows.append((task, s["killed_after_epochs"], f"exit {s['first_exit_code']}", again, ran, ok))
    header = ("task killed", "after epoch", "first run", "same command again", f"epochs run (of {epochs})")
    return table((*header, "as expected"), rows)


TRAINING = (peer_throughput, peer_summary, step_breakdown)  # README.md and docs/performance.md
SERVING_AND_SCALING = (serving_latency, serving_soak, parameter_server, ps_capacity, ps_faults)  # their docs
TABLES: dict[str, Callable[[dict[str, Any]], list[str]]] = {f.__name__: f for f in (*TRAINING, *SERVING_AND_SCALING)}


def render(text: str, bench: pathlib.Path = BENCH) -> str:
    """``text`` with every generated block rewritten from ``bench/NAME.json``."""

    def block(match: re.Match) -> str:
        path = bench / f"{SOURCES.get(match['name'], match['name'])}.json"
        lines = TABLES[match["name"]](json.loads(path.read_text())) if path.exists() else [MISSING.format(path.name)]
        return match.group(1) + "\n".join(lines) + "\n" + match.group(4)

    return BLOCK.sub(block, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated block is stale")
    args = parser.parse_args(argv)
    stale = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        if (new := render(text)) != text:
            stale.append(str(doc.relative_to(REPO)))
            if not args.check:
                doc.write_text(new, encoding="utf-8")
    if args.check and stale:
        print(f"stale generated tables in {stale}: run python3 bench/render_docs.py", file=sys.stderr)
    return int(args.check and bool(stale))


if __name__ == "__main__":
    sys.exit(main())
