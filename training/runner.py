"""One training run: data → split → model (in the strategy scope) → ``fit`` → report + gate analysis.

The run folder (``output_dir``, default ``output/runs/<UTC timestamp>``) receives ``model.keras``,
``run_config.yaml``, ``schema.yaml``, ``report.json``, ``report.txt``, ``gates.json``, ``gates.txt``,
``gates.png`` (and ``gates_level<l>.png`` for PLE), ``history.csv``, ``tensorboard/``, ``checkpoints/`` and
``backup/``. An existing run folder is never clobbered: a finished run (``model.keras`` present) is refused, an
unfinished one (same ``run_config.yaml``) is resumed from its last finished epoch by Keras ``BackupAndRestore``.

The data side (reading, splitting, datasets) lives in :mod:`training.run_data` and the run folder's handling in
:mod:`training.run_folder`; their public names are importable from here too.

Example:
    >>> from training.config import load_run_config
    >>> result = train(load_run_config("training/configs/default.yaml", ["train.epochs=2"]))  # doctest: +SKIP
    >>> result.report["splits"]["test"]["click"]["auc"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import pathlib
import shutil
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf
import yaml

import mmoe_tf
from mmoe_tf.targets import trained_targets
from training import distribute
from training.callbacks import LossWeightLogger, make_callbacks, monitor_mode, per_task_best_epochs
from training.config import RunConfig, resolved_for
from training.evaluation import evaluate_model, format_baseline_comparison, format_report
from training.gate_analysis import analyze_model_gates, format_gate_summary, write_gate_analysis
from training.run_data import (  # noqa: F401  (public names kept importable from training.runner)
    SPLIT_NAMES,
    fit_dataset,
    load_data,
    model_config_for,
    read_table,
    split_data,
    steps_per_epoch,
    targets_fn_for,
)
from training.run_folder import (  # noqa: F401  (public names kept importable from training.runner)
    DEFAULT_RUNS_DIR,
    dedupe_history,
    new_run_dir,
    prepare_run_dir,
    refuse_overwrite,
)

LOGGER = logging.getLogger("training")


@dataclasses.dataclass
class RunResult:
    """What :func:`train` produced.

    Attributes:
        run_dir: The run folder.
        model: The trained model (best weights when early stopping restored them).
        model_config: Its ModelConfig.
        report: The ``report.json`` content (``None`` on non-chief workers).
        gates: The ``gates.json`` content (``None`` on non-chief workers or when disabled).
        history: ``{metric: [value per epoch]}`` of this process's ``fit`` call.
        initial_epoch: First epoch run by this call (> 0 when resumed from a backup).
        is_chief: Whether this process wrote the run folder.
    """

    run_dir: pathlib.Path
    model: tf.keras.Model
    model_config: mmoe_tf.ModelConfig
    report: dict[str, Any] | None
    gates: dict[str, Any] | None
    history: dict[str, list[float]]
    initial_epoch: int
    is_chief: bool


# ---- the run -----------------------------------------------------------------------------------
def train(
    run_config: RunConfig,
    output_dir: str | pathlib.Path | None = None,
    callbacks: Iterable[tf.keras.callbacks.Callback] = (),
) -> RunResult:
    """Train, evaluate and analyse one model; write the run folder (chief only).

    Args:
        run_config: Validated run config.
        output_dir: Run folder; overrides ``run_config.output_dir``; default ``output/runs/<UTC stamp>``.
        callbacks: Extra Keras callbacks, run after the standard ones.

    Returns:
        A :class:`RunResult`.

    Raises:
        RunConfigError, FileExistsError, data.DataValidationError: bad config, folder or data.
    """
    strategy = distribute.strategy_for(run_config.train)
    chief = distribute.is_chief(strategy)
    run_dir = pathlib.Path(output_dir or run_config.output_dir or new_run_dir()).resolve()
    df, schema = load_data(run_config)
    parts = split_data(df, schema, run_config)
    config = model_config_for(schema, run_config)
    run_config = resolved_for(dataclasses.replace(run_config, output_dir=str(run_dir)), config)
    resuming = prepare_run_dir(run_dir, run_config) if chief else run_dir.exists()
    own_dir = distribute.write_dir(run_dir, strategy)
    tf.keras.utils.set_random_seed(run_config.train.seed)
    LOGGER.info(
        "run %s: %s rows (train/val/test %s), %s, strategy %s with %d replica(s)%s",
        run_dir,
        len(df),
        [len(p) for p in parts.values()],
        config.architecture,
        type(strategy).__name__,
        strategy.num_replicas_in_sync,
        " — resuming" if resuming else "",
    )

    from data import feature_arrays
    from mmoe_tf.models import build_model
    from mmoe_tf.saving import load_model, save_model

    with strategy.scope():
        model = build_model(config, adapt_data=feature_arrays(parts["train"], schema))
    train_ds = distribute.fit_input(
        strategy, functools.partial(fit_dataset, parts["train"], schema, config, run_config, True)
    )
    has_val = len(parts["validation"]) > 0
    val_ds = None
    if has_val:
        make_val = functools.partial(fit_dataset, parts["validation"], schema, config, run_config, False)
        val_ds = distribute.fit_input(strategy, make_val)
    cbs = _fit_callbacks(config, run_dir, own_dir, run_config, has_val) + list(callbacks)

    if chief:  # written once the run can start, so a failed start leaves the folder reusable
        (run_dir / "run_config.yaml").write_text(yaml.safe_dump(run_config.to_dict(), sort_keys=False))
        schema.to_file(run_dir / "schema.yaml")
    steps = steps_per_epoch(len(parts["train"]), run_config)
    history, seconds, initial_epoch = _fit(model, train_ds, val_ds, cbs, run_config, steps)
    baseline = None
    if run_config.train.baseline:
        adapt = feature_arrays(parts["train"], schema)
        baseline = _train_baseline(run_dir, own_dir, config, adapt, (train_ds, steps), val_ds, strategy, run_config)
    model = distribute.unsharded(  # parameter_server: variables whole, on this process
        strategy, model, lambda: build_model(config, adapt_data=feature_arrays(parts["train"], schema)), own_dir
    )
    model_path = own_dir / "model.keras"
    save_model(model, model_path)  # every worker saves (collective reads); only the chief's is kept
    if not chief:
        shutil.rmtree(own_dir, ignore_errors=True)
        return RunResult(run_dir, model, config, None, None, history.history, initial_epoch, False)

    eval_model = model
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        eval_model = load_model(model_path)  # predict locally, not as a collective over the workers
    dedupe_history(run_dir / "history.csv")
    report = {
        "run_dir": str(run_dir),
        "model": {
            "architecture": config.architecture,
            "num_experts": config.num_experts,
            "tasks": [t.to_dict() for t in config.tasks],
            "output_names": list(config.output_names),
            "loss_balancing": config.loss_balancing,
            "parameters": int(model.count_params()),
        },
        "data": {"source": run_config.data.path, "rows": {k: len(v) for k, v in parts.items()}},
        "training": _training_summary(history, cbs, initial_epoch, seconds, strategy, run_config, config),
        "splits": {
            name: evaluate_model(
                eval_model, config, parts[name], schema, batch_size=max(1024, run_config.train.batch_size)
            )
            for name in ("validation", "test")
            if len(parts[name])
        },
    }
    if baseline is not None:
        base_model, base_config, base_summary = baseline
        report["baseline"] = {
            "architecture": base_config.architecture,
            "parameters": int(base_model.count_params()),
            "training": base_summary,
            "splits": {
                name: evaluate_model(
                    base_model, base_config, parts[name], schema, batch_size=max(1024, run_config.train.batch_size)
                )
                for name in ("validation", "test")
                if len(parts[name])
            },
        }
    text = format_report(report["splits"])
    if baseline is not None:
        text += "\n\n" + format_baseline_comparison(report)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (run_dir / "report.txt").write_text(text + "\n")

    gates = None
    if run_config.gates.enabled:
        gate_df = parts["test"] if len(parts["test"]) else parts["validation"] if has_val else parts["train"]
        g = run_config.gates
        gates = analyze_model_gates(
            eval_model,
            feature_arrays(gate_df, schema),
            collapse_max_weight=g.collapse_max_weight,
            collapse_entropy=g.collapse_entropy,
            unused_share=g.unused_share,
        )
        write_gate_analysis(gates, run_dir)
        (run_dir / "gates.txt").write_text(format_gate_summary(gates) + "\n")
    return RunResult(run_dir, model, config, report, gates, history.history, initial_epoch, True)


def _fit_callbacks(
    config: mmoe_tf.ModelConfig, run_dir: pathlib.Path, own_dir: pathlib.Path, run_config: RunConfig, has_val: bool
) -> list:
    """The run's callbacks for a model of ``config`` (its binary tasks feed ``val_mean_task_auc``)."""
    binary = [name for name, task in trained_targets(config) if task.type == "binary"]
    return make_callbacks(run_dir, own_dir, run_config.train, has_validation=has_val, binary_tasks=binary)


def _fit(
    model: tf.keras.Model, train_ds: Any, val_ds: Any, cbs: list, run_config: RunConfig, steps_per_epoch: int
) -> tuple[Any, float, int]:
    """``model.fit`` of the repeated ``train_ds`` with the run's budget.

    Returns:
        ``(history, seconds, initial_epoch)``.
    """
    started = time.perf_counter()
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        validation_steps=getattr(val_ds, "validation_steps", None),  # parameter_server's DatasetCreator
        epochs=run_config.train.epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=cbs,
        verbose=run_config.train.verbose,
    )
    seconds = time.perf_counter() - started
    initial_epoch = int(history.epoch[0]) if history.epoch else run_config.train.epochs
    return history, seconds, initial_epoch


def _train_baseline(
    run_dir: pathlib.Path,
    own_dir: pathlib.Path,
    config: mmoe_tf.ModelConfig,
    adapt: Mapping[str, np.ndarray],
    train: tuple[tf.data.Dataset, int],
    val_ds: tf.data.Dataset | None,
    strategy: Any,
    run_config: RunConfig,
) -> tuple[tf.keras.Model, mmoe_tf.ModelConfig, dict[str, Any]]:
    """Train ``train.baseline`` on the same datasets with the same budget and model selection (``run_dir/baseline``).

    ``train`` is the repeated training dataset and its steps per epoch.

    Returns:
        ``(model, its config, training summary)``; the model is also saved as ``baseline/model.keras``.
    """
    from mmoe_tf.models import build_model
    from mmoe_tf.saving import save_model

    base_config = config.replace(architecture=run_config.train.baseline)
    base_dir, base_own = run_dir / "baseline", own_dir / "baseline"
    base_own.mkdir(parents=True, exist_ok=True)
    tf.keras.utils.set_random_seed(run_config.train.seed)
    with strategy.scope():
        base_model = build_model(base_config, adapt_data=adapt)
    cbs = _fit_callbacks(base_config, base_dir, base_own, run_config, val_ds is not None)
    LOGGER.info("baseline %s: same splits, epochs and early stopping", base_config.architecture)
    train_ds, steps_per_epoch = train
    history, seconds, initial_epoch = _fit(base_model, train_ds, val_ds, cbs, run_config, steps_per_epoch)
    save_model(base_model, base_own / "model.keras")
    summary = _training_summary(history, cbs, initial_epoch, seconds, strategy, run_config, base_config, base_own)
    return base_model, base_config, summary


def _full_history(run_dir: pathlib.Path, history: Any) -> dict[str, list[float]]:
    """Every epoch's logs: ``history.csv`` (covers epochs before a resume), else this call's ``History``."""
    path = run_dir / "history.csv"
    if path.is_file() and path.stat().st_size:
        frame = pd.read_csv(path)
        return {col: frame[col].astype(float).tolist() for col in frame.columns if col != "epoch"}
    return {k: [float(x) for x in v] for k, v in history.history.items()}


def _training_summary(
    history: Any,
    cbs: list,
    initial_epoch: int,
    seconds: float,
    strategy: Any,
    run_config: RunConfig,
    config: mmoe_tf.ModelConfig,
    history_dir: pathlib.Path | None = None,
) -> dict[str, Any]:
    """``report.json["training"]`` of one fit; ``history_dir`` holds its ``history.csv`` (default: the run folder)."""
    stopper = next((c for c in cbs if isinstance(c, tf.keras.callbacks.EarlyStopping)), None)
    checkpoint = next(c for c in cbs if isinstance(c, tf.keras.callbacks.ModelCheckpoint))
    weights = next(c for c in cbs if isinstance(c, LossWeightLogger)).latest
    final = {k: float(v[-1]) for k, v in history.history.items() if v}
    best_epoch = int(stopper.best_epoch) + 1 if stopper is not None and stopper.best_weights is not None else None
    run_dir = history_dir or pathlib.Path(run_config.output_dir)
    tasks = {name: task.type for name, task in trained_targets(config)}
    return {
        "monitor": checkpoint.monitor,
        "monitor_mode": monitor_mode(checkpoint.monitor),
        "epochs_requested": run_config.train.epochs,
        "initial_epoch": initial_epoch,
        "epochs_run_this_call": len(history.epoch),
        "last_epoch": int(history.epoch[-1]) + 1 if history.epoch else initial_epoch,
        "early_stopped": bool(stopper is not None and stopper.stopped_epoch > 0),
        "best_epoch": best_epoch,
        "per_task_best_epochs": per_task_best_epochs(_full_history(run_dir, history), tasks, best_epoch),
        "final_logs": {k: (v if np.isfinite(v) else None) for k, v in final.items()},
        "loss_weights": weights,
        "fit_seconds": round(seconds, 3),
        "distribute": run_config.train.distribute,
        "strategy": type(strategy).__name__,
        "replicas": int(strategy.num_replicas_in_sync),
    }


def print_run_summary(result: RunResult) -> None:
    """Print the report table and the gate summary of a finished run (chief only)."""
    if not result.is_chief:
        return
    print((result.run_dir / "report.txt").read_text().rstrip())
    if result.gates is not None:
        print()
        print(format_gate_summary(result.gates))
    print(f"\nrun folder: {result.run_dir}")
