"""``python -m training compare``: does multi-task learning beat separate models on *this* data, and which one?

Trains every architecture (default ``single_task shared_bottom mmoe ple``) over N seeds on the run
config's data and schema. Seed ``s`` sets the data split, the shuffle order and the weight
initialisation, and every architecture of that seed uses the same split, so architectures are
compared pair by pair (see :mod:`training.compare_report` for the statistics). The model section
of the run config applies to every architecture (``model.architecture`` is overridden).

Every gated architecture's report also gives the similarity of its tasks' gates (``1 - JS``, per task pair, mean
with a 95 % interval over seeds, with the sharing band of :mod:`training.gate_summary`) next to its metrics.

Output folder: ``compare.json``, ``compare.md``, ``compare.png`` and ``fits/<arch>-seed<s>/`` (one
full run folder per fit, with ``compare_fit.json`` once finished). Rerunning with the same
``--output-dir`` resumes: finished fits are skipped and an interrupted fit resumes from its last
finished epoch. More seeds or architectures may be added on a rerun; a different run config is refused.

Example:
    python -m training compare --set data.max_rows=2000 --set train.epochs=5 --seeds 3 --jobs 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import json
import logging
import multiprocessing
import os
import pathlib
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from training.compare_report import BASELINE, format_markdown, plot_compare, summarize
from training.config import RunConfig, RunConfigError, load_run_config, unused_model_fields
from training.quiet import quiet_worker

LOGGER = logging.getLogger("training.compare")
DEFAULT_ARCHITECTURES = ("single_task", "shared_bottom", "mmoe", "ple")
DEFAULT_COMPARE_DIR = pathlib.Path("output") / "compare"
FIT_RESULT = "compare_fit.json"
COMPARE_CONFIG = "compare_config.json"


class CompareError(RuntimeError):
    """A fit of the comparison failed; finished fits are kept for a resumed run."""


@dataclasses.dataclass(frozen=True)
class Fit:
    """One (architecture, seed) training run of a comparison."""

    architecture: str
    seed: int

    @property
    def name(self) -> str:
        """Folder name under ``fits/``, e.g. ``ple-seed1``."""
        return f"{self.architecture}-seed{self.seed}"


def fit_run_config(base: RunConfig, fit: Fit, run_dir: pathlib.Path) -> RunConfig:
    """``base`` with the fit's architecture and seed (split, shuffle and weights), silent, writing to ``run_dir``."""
    raw = base.to_dict()
    # Fields the fit's architecture does not use (e.g. num_experts for ple) are dropped, not refused: one run
    # config describes every architecture of the comparison.
    unused = set(unused_model_fields(fit.architecture, raw["model"].get("expert_type", "mlp")))
    model = {k: v for k, v in raw["model"].items() if k not in unused}
    raw["model"] = {**model, "architecture": fit.architecture, "seed": fit.seed}
    raw["data"]["split"]["seed"] = fit.seed
    raw["train"]["seed"] = fit.seed
    raw["train"]["verbose"] = 0
    raw["output_dir"] = str(run_dir)
    return RunConfig.from_dict(raw)


def _write_json(path: pathlib.Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)  # atomic: a killed process never leaves half a result


def run_fit(raw_config: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """Train one fit (resuming its run folder if interrupted) and write ``compare_fit.json``.

    Args:
        raw_config: ``RunConfig.to_dict()`` of the fit (picklable, for worker processes).
        run_dir: The fit's run folder.

    Returns:
        The fit record: ``architecture``, ``seed``, ``metrics`` (``{task: test AUC or MSE}``),
        ``gate_similarity`` (``{"a|b": 1 - JS}`` of the test split's gates; ``None`` without gates or with
        ``gates.enabled: false``), ``parameters``, ``epochs``, ``fit_seconds``, ``wall_seconds``, ``resumed``,
        ``run_dir``.
    """
    import tensorflow as tf

    from training.runner import train

    folder = pathlib.Path(run_dir)
    if (folder / "model.keras").exists():  # killed after saving, before the result: run again from scratch
        shutil.rmtree(folder)
    run_config = RunConfig.from_dict(raw_config)
    quiet = {"training": logging.WARNING, "tensorflow": logging.ERROR}  # per-fit chatter would break the progress bar
    levels = {name: logging.getLogger(name).level for name in quiet}
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(max(level, logging.getLogger(name).getEffectiveLevel()))
    try:
        started = time.perf_counter()
        result = train(run_config, output_dir=folder)
        wall = time.perf_counter() - started
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    test = result.report["splits"]["test"]
    gates = result.gates or {}
    record = {
        "architecture": result.model_config.architecture,
        "seed": run_config.train.seed,
        "metrics": {t.name: test[t.name]["auc" if t.type == "binary" else "mse"] for t in result.model_config.tasks},
        "gate_similarity": (
            {pair: s["js_similarity"] for pair, s in gates["similarity"].items()} if gates.get("available") else None
        ),
        "parameters": result.report["model"]["parameters"],
        "epochs": result.report["training"]["last_epoch"],
        "fit_seconds": result.report["training"]["fit_seconds"],
        "wall_seconds": round(wall, 3),
        "resumed": result.initial_epoch > 0,
        "run_dir": str(folder),
    }
    _write_json(folder / FIT_RESULT, record)
    tf.keras.backend.clear_session()
    return record


def _init_worker(threads: int) -> None:
    """Worker-process setup: quiet TensorFlow running ``threads`` ops at once (the machine is shared by the jobs)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops the workers
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import mmoe_tf

    mmoe_tf.configure_cpu_threads(inter_op_threads=threads)  # one thread per op: docs/performance.md
    logging.getLogger("training").setLevel(logging.WARNING)


def _check_architectures(architectures: Sequence[str]) -> list[str]:
    from mmoe_tf.config import ARCHITECTURES

    archs = list(architectures)
    unknown = [a for a in archs if a not in ARCHITECTURES]
    if unknown:
        raise RunConfigError(f"--architectures: unknown {unknown}; expected some of {list(ARCHITECTURES)}")
    dupes = sorted({a for a in archs if archs.count(a) > 1})
    if dupes:
        raise RunConfigError(f"--architectures: {dupes} listed more than once")
    if BASELINE not in archs:
        LOGGER.info("adding %s: the paired differences are taken against it", BASELINE)
        archs.insert(0, BASELINE)
    return archs


def _check_folder(out: pathlib.Path, base: RunConfig) -> None:
    """Create ``out`` or check it holds a comparison of the same run config (resume)."""
    config = {k: v for k, v in base.to_dict().items() if k != "output_dir"}
    saved = out / COMPARE_CONFIG
    if saved.is_file():
        previous = json.loads(saved.read_text())["run_config"]
        diff = sorted(k for k in set(previous) | set(config) if previous.get(k) != config.get(k))
        if diff:
            raise FileExistsError(
                f"--output-dir {out}: holds a comparison with a different run config (sections {diff}); "
                "rerun with the same config to resume, or choose a new folder"
            )
    elif out.exists() and any(out.iterdir()):
        raise FileExistsError(f"--output-dir {out}: exists, is not empty and is not a comparison ({COMPARE_CONFIG})")
    out.mkdir(parents=True, exist_ok=True)
    _write_json(saved, {"run_config": config})


def _tasks_and_primary(
    base: RunConfig, archs: Sequence[str], first_seed: int, primary_task: str | None
) -> tuple[dict[str, str], str, str, dict[str, int]]:
    """Metric per task, the primary task with the reason, and the training labels per task (first seed)."""
    from data import labels_and_weights
    from training.runner import load_data, model_config_for, split_data

    first = fit_run_config(base, Fit(archs[0], first_seed), pathlib.Path("."))
    df, schema = load_data(first)  # the rows and split of the first seed's fits
    for arch in archs:  # every architecture's config is valid before anything trains
        model_config_for(schema, fit_run_config(base, Fit(arch, first_seed), pathlib.Path(".")))
    config = model_config_for(schema, base)
    parts = split_data(df, schema, first)
    if len(parts["test"]) == 0:
        raise RunConfigError("data.split.fractions: compare scores the test split, so its fraction must be > 0")
    _, weights = labels_and_weights(parts["train"], schema)
    counts = {t.name: int((weights[t.name] > 0).sum()) for t in config.tasks}
    metrics = {t.name: "auc" if t.type == "binary" else "mse" for t in config.tasks}
    if primary_task is not None:
        if primary_task not in metrics:
            raise RunConfigError(f"--primary-task: no task {primary_task!r}; tasks are {list(metrics)}")
        return metrics, primary_task, "named with --primary-task", counts
    scarcest = min(counts, key=counts.get)
    tied = [t for t, n in counts.items() if n == counts[scarcest]]
    if len(tied) > 1:
        return (
            metrics,
            scarcest,
            f"tasks {tied} tie as the scarcest ({counts[scarcest]} training labels): the first",
            counts,
        )
    return metrics, scarcest, f"the scarcest task: {counts[scarcest]} training labels", counts


def _run_pending(
    pending: list[tuple[Fit, dict[str, Any], pathlib.Path]],
    jobs: int,
    bar: Any,
    on_fit: Callable[[dict[str, Any]], None] | None,
) -> list[dict[str, Any]]:
    records = []

    def done(fit: Fit, record: dict[str, Any]) -> None:
        records.append(record)
        if on_fit is not None:
            on_fit(record)
        bar.set_postfix_str(f"{fit.name} {record['wall_seconds']:.0f}s")
        bar.update(1)

    if jobs == 1:
        for fit, raw, folder in pending:
            try:
                done(fit, run_fit(raw, str(folder)))
            except Exception as err:
                raise CompareError(f"fit {fit.name} failed ({type(err).__name__}: {err}); rerun to resume") from err
        return records
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
    # quiet_worker (a TensorFlow-free module) hides each worker's TensorFlow start-up log before _init_worker runs
    pool = concurrent.futures.ProcessPoolExecutor(
        jobs, mp_context=context, initializer=quiet_worker, initargs=("training.compare:_init_worker", threads)
    )
    futures = {pool.submit(run_fit, raw, str(folder)): fit for fit, raw, folder in pending}
    try:
        for future in concurrent.futures.as_completed(futures):
            fit = futures[future]
            try:
                done(fit, future.result())
            except Exception as err:
                raise CompareError(f"fit {fit.name} failed ({type(err).__name__}: {err}); rerun to resume") from err
    except BaseException:  # a failed fit or Ctrl-C: stop now; unfinished fits resume on the next run
        pool.shutdown(wait=False, cancel_futures=True)
        for child in multiprocessing.active_children():
            child.terminate()
        raise
    pool.shutdown()
    return records


def compare(
    run_config: RunConfig,
    architectures: Sequence[str] = DEFAULT_ARCHITECTURES,
    seeds: int = 3,
    primary_task: str | None = None,
    jobs: int = 1,
    output_dir: str | pathlib.Path | None = None,
    progress: bool = True,
    on_fit: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train ``architectures`` × ``seeds`` and write ``compare.json``/``.md``/``.png`` into ``output_dir``.

    Args:
        run_config: The user's run config (data, schema, model sizes, training settings).
        architectures: Architectures to compare; ``single_task`` (the baseline) is added when absent.
        seeds: Number of seeds (>= 2); seed ``i`` is ``run_config.train.seed + i``.
        primary_task: Task whose paired intervals pick the recommendation (``compare_report.RULE``); default the
            task with the fewest training labels.
        jobs: Fits run in parallel in this many processes (1: in this process).
        output_dir: Comparison folder; default ``output/compare/<UTC timestamp>``; an existing one is resumed.
        progress: Show a progress bar over fits (stderr).
        on_fit: Called in this process with each newly finished fit's record, as it finishes.

    Returns:
        The ``compare.json`` content.

    Raises:
        RunConfigError: bad arguments or config. FileExistsError: a folder of another comparison.
        CompareError: a fit failed (finished fits are kept; rerun to resume).
    """
    from tqdm.auto import tqdm

    archs = _check_architectures(architectures)
    # Every model field filled in (defaults for fields the config's own architecture ignores), so a comparison
    # resumes the same whether its config was read for one architecture or for several (the CLI's way).
    run_config = RunConfig.from_dict(run_config.to_dict(), keep_unused_model_fields=True)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise RunConfigError(f"--seeds: need at least 2 seeds for intervals, got {seeds!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise RunConfigError(f"--jobs: expected an integer >= 1, got {jobs!r}")
    seed_list = [run_config.train.seed + i for i in range(seeds)]
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = pathlib.Path(output_dir or DEFAULT_COMPARE_DIR / stamp).resolve()
    metrics, primary, why, counts = _tasks_and_primary(run_config, archs, seed_list[0], primary_task)
    _check_folder(out, run_config)

    fits = [Fit(a, s) for s in seed_list for a in archs]
    records, pending = [], []
    for fit in fits:
        folder = out / "fits" / fit.name
        if (folder / FIT_RESULT).is_file():
            records.append(json.loads((folder / FIT_RESULT).read_text()))
        else:
            pending.append((fit, fit_run_config(run_config, fit, folder).to_dict(), folder))
    if records:
        LOGGER.info("resuming %s: %d of %d fits already finished", out, len(records), len(fits))
    bar = tqdm(total=len(fits), initial=len(records), desc="compare", unit="fit", disable=not progress, file=sys.stderr)
    try:
        new = _run_pending(pending, jobs, bar, on_fit)
    finally:
        bar.close()
    records += new
    order = {fit.name: i for i, fit in enumerate(fits)}
    records.sort(key=lambda r: order[Fit(r["architecture"], r["seed"]).name])

    stats = summarize(records, archs, metrics, primary, why)
    result = {
        "data": run_config.data.path,
        "architectures": archs,
        "seeds": seed_list,
        "metrics": metrics,
        "primary_task": primary,
        "train_labels_first_seed": counts,
        "parameters": {r["architecture"]: r["parameters"] for r in records},
        **stats,
        "total_wall_seconds": round(sum(r["wall_seconds"] for r in records), 3),
        "fits": records,
        "output_dir": str(out),
    }
    _write_json(out / "compare.json", result)
    (out / "compare.md").write_text(format_markdown(result))
    plot_compare(result, out / "compare.png")
    return result


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``compare`` subcommand on ``python -m training``'s subparsers."""
    p = sub.add_parser(
        "compare",
        help="train several architectures over seeds and compare them with single_task",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="run config file (.yaml/.json/.toml); omitted = built-in defaults")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    p.add_argument("--architectures", nargs="+", default=list(DEFAULT_ARCHITECTURES), help="architectures to train")
    p.add_argument("--seeds", type=int, default=3, help="seeds per architecture (>= 2; default 3)")
    p.add_argument(
        "--primary-task", help="task whose intervals pick the recommendation (default: fewest training labels)"
    )
    p.add_argument("--jobs", type=int, default=1, help="fits in parallel processes (default 1)")
    p.add_argument("--output-dir", help="comparison folder (default output/compare/<UTC time>); rerun it to resume")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    """Handler of ``python -m training compare``: run it and print ``compare.md``."""
    # One config describes every compared architecture: fields only some of them use (e.g. ple's
    # num_shared_experts) are kept here and dropped per fit by fit_run_config.
    run_config = load_run_config(args.config, args.overrides, keep_unused_model_fields=True)
    try:
        result = compare(
            run_config,
            architectures=args.architectures,
            seeds=args.seeds,
            primary_task=args.primary_task,
            jobs=args.jobs,
            output_dir=args.output_dir,
            progress=not args.no_progress,
        )
    except CompareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command (same --output-dir) to resume", file=sys.stderr)
        return 130
    out = pathlib.Path(result["output_dir"])
    print((out / "compare.md").read_text().rstrip())
    print(f"\ncomparison folder: {out}")
    return 0
