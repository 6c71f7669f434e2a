"""Ceiling: how close does a trained MMoE get to the oracle AUC of the impression simulator?

The simulator (``data.generators.impressions``) knows each row's true probabilities, so the best
achievable AUC on a test split is the oracle AUC of those probabilities
(``data.generators.impressions.oracle_auc``). The model is trained with early stopping on a
validation split (monitor ``--monitor``, default ``val_loss``; the test AUC that ``val_loss``,
``val_mean_task_auc`` and ``val_satisfaction_auc`` would each have kept is tracked, so rerunning with
another ``--monitor`` only re-summarises) and each task's test AUC is
compared with its oracle. Target: gap within 0.01 at 200k rows.

Per-fit records go to ``docs/results/raw/ceiling.jsonl`` (a rerun skips recorded fits); the summary
rows (metrics ``auc``, ``oracle_auc``, ``gap``) to ``docs/results/ceiling.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.experiments import common
from training.experiments.results import RawStore, summarize, write_results

DEFAULT_FIT = common.FitOptions(epochs=40, batch_size=1024, patience=3)
NAME = "ceiling"
TARGET_GAP = 0.01
MONITORS = ("val_loss", "val_mean_task_auc", "val_satisfaction_auc")  # all tracked; fit.monitor is primary


def run(
    rows: int = 200_000,
    seeds: int = 3,
    architecture: str = "mmoe",
    fit: common.FitOptions = DEFAULT_FIT,
    figures_dir: str | Path | None = None,
    overrides: dict | None = None,
    results_dir: str | Path | None = None,
    feature_changes: dict[str, dict[str, Any]] | None = None,
    loss_weights: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Per monitor and task: mean test AUC of the model, of the oracle, and their gap (95 % intervals over seeds).

    ``overrides`` are ``ModelConfig`` fields replacing the experiments' common sizes (e.g. larger experts);
    ``feature_changes`` ``{feature: {FeatureSpec field: value}}`` (e.g. more hash bins) and ``loss_weights``
    ``{task: λ}`` change the simulator's schema. All of them, and fit options other than the default, make a
    variant with its own raw records and result file.
    """
    store = RawStore(NAME, results_dir)
    schema_changes = {"features": feature_changes or {}, "loss_weights": loss_weights or {}}
    variant_fields = {
        **(overrides or {}),
        **_fit_changes(fit),
        **{k: v for k, v in schema_changes.items() if v},
    }
    variant = json.dumps(variant_fields, sort_keys=True)
    for seed in range(seeds):
        key = {"rows": rows, "architecture": architecture, "variant": variant, "seed": seed}
        if store.has(**key, monitor=fit.monitor):
            continue
        df, schema = common.impressions_data(rows, seed)
        schema = _changed_schema(schema, feature_changes or {}, loss_weights or {})
        splits = common.split(df, seed)
        result = common.fit_and_score(
            schema,
            splits,
            architecture=architecture,
            seed=seed,
            fit=fit,
            monitors=MONITORS,
            **(overrides or {}),
        )
        oracle = common.oracle_aucs(splits[2], schema)
        store.add(
            {
                **key,
                "primary": monitor == fit.monitor,
                "monitor": monitor,
                "task": task,
                "metric": metric,
                "value": value,
                "best_epoch": result.best_epochs[monitor],
                "epochs_run": result.epochs_run,
            }
            for monitor, scores in result.scores.items()
            for task, auc in scores.items()
            for metric, value in (("auc", auc), ("oracle_auc", oracle[task]), ("gap", oracle[task] - auc))
        )
    records = [r for r in store.records() if r["rows"] == rows and r["variant"] == variant]
    table = summarize(records, ["architecture", "variant", "monitor"], extras=("best_epoch", "epochs_run"))
    for row in table:
        if row["metric"] == "gap":
            row["within_target"] = bool(row["mean"] <= TARGET_GAP)
    name = NAME if not variant_fields else f"{NAME}_{_slug(variant_fields)}"  # a variant never overwrites the default's
    write_results(name, table, results_dir)
    plot([r for r in table if r["monitor"] == fit.monitor], architecture, common.figure_path(name, figures_dir))
    return table


SELECTION_SEEDS = 3  # seeds 0-2: every variant's; further seeds confirm a chosen variant on data it was not chosen on


def summarize_variants(rows: int = 200_000, results_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """All recorded variants side by side: satisfaction and click gaps per monitor, on the selection seeds (0-2)
    and, where a variant has more, separately on the confirmation seeds (3+). Writes ``ceiling_variants.json``."""
    records = [r for r in RawStore(NAME, results_dir).records() if r["rows"] == rows and r["metric"] == "gap"]
    for record in records:
        record["seeds_used"] = "0-2" if record["seed"] < SELECTION_SEEDS else "3+"
    table = summarize(records, ["architecture", "variant", "seeds_used", "monitor"], extras=("best_epoch",))
    for row in table:
        row["within_target"] = bool(row["mean"] <= TARGET_GAP)
        row["slug"] = _slug(json.loads(row["variant"])) or "default"
    table.sort(key=lambda r: (r["seeds_used"], r["task"], r["monitor"], r["mean"]))
    write_results(f"{NAME}_variants", table, results_dir)
    return table


def _changed_schema(schema: Any, feature_changes: dict[str, dict[str, Any]], loss_weights: dict[str, float]) -> Any:
    unknown = sorted(set(feature_changes) - {f.name for f in schema.features})
    unknown += sorted(set(loss_weights) - {t.name for t in schema.tasks})
    if unknown:
        raise ValueError(f"ceiling: no feature or task named {unknown} in the simulator's schema")
    return schema.replace(
        features=tuple(dataclasses.replace(f, **feature_changes.get(f.name, {})) for f in schema.features),
        tasks=tuple(dataclasses.replace(t, loss_weight=loss_weights.get(t.name, t.loss_weight)) for t in schema.tasks),
    )


def _fit_changes(fit: common.FitOptions) -> dict[str, Any]:
    """Fit options that differ from ``DEFAULT_FIT``: part of a variant's key (not the monitor: all are tracked)."""
    keys = ("epochs", "batch_size", "patience", "learning_rate")
    return {k: getattr(fit, k) for k in keys if getattr(fit, k) != getattr(DEFAULT_FIT, k)}


def _slug(fields: dict) -> str:
    """File-name part of a variant: ``expert_units64_tower_units32``, ``features_user_id_num_bins16384``."""

    def text(value: Any) -> str:  # [64, 32] -> 64x32; [[a, b], [c, d]] -> axb_cxd
        if not isinstance(value, (tuple, list)):
            return str(value)
        nested = any(isinstance(v, (tuple, list)) for v in value)
        return ("_" if nested else "x").join(map(text, value))

    def parts(prefix: str, value: Any) -> list[str]:
        if isinstance(value, dict):
            return [p for key, v in sorted(value.items()) for p in parts(f"{prefix}_{key}" if prefix else key, v)]
        return [f"{prefix}{text(value)}"]

    return "_".join(parts("", fields))


def plot(rows: list[dict[str, Any]], architecture: str, path: Path) -> Path:
    """Bars of model vs oracle test AUC per task (model bars with 95 % intervals)."""
    model = [r for r in rows if r["metric"] == "auc"]
    oracle = {r["task"]: r for r in rows if r["metric"] == "oracle_auc"}
    fig, (ax,) = common.new_figure(1, width=5.0)
    x = list(range(len(model)))
    means = [r["mean"] for r in model]
    errs = [
        [m - (r["ci95"] or [m, m])[0] for r, m in zip(model, means, strict=True)],
        [(r["ci95"] or [m, m])[1] - m for r, m in zip(model, means, strict=True)],
    ]
    ax.bar([i - 0.2 for i in x], means, width=0.4, yerr=errs, capsize=3, label=architecture)
    ax.bar(
        [i + 0.2 for i in x], [oracle[r["task"]]["mean"] for r in model], width=0.4, label="oracle (true probabilities)"
    )
    ax.set_xticks(x, [r["task"] for r in model])
    low = min(min(means), min(o["mean"] for o in oracle.values()))
    ax.set_ylim(max(0.0, low - 0.05), min(1.0, max(o["mean"] for o in oracle.values()) + 0.05))
    ax.set_ylabel("test AUC")
    ax.legend(loc="upper right")
    return common.save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """CLI: ``python -m training.experiments ceiling [--rows N --seeds S --monitor M]``."""
    parser = argparse.ArgumentParser(prog="python -m training.experiments ceiling", description=__doc__)
    common.add_size_arguments(parser, rows=200_000, seeds=3, fit=DEFAULT_FIT)
    parser.add_argument("--architecture", default="mmoe")
    parser.add_argument("--num-experts", type=int, help="experts (default: the experiments' common 8)")
    parser.add_argument("--expert-units", type=int, nargs="+", help="expert hidden sizes (default: 16)")
    parser.add_argument("--tower-units", type=int, nargs="+", help="tower hidden sizes (default: 8)")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any other ModelConfig field, value as YAML (e.g. --set expert_dropout=0.1); repeatable",
    )
    parser.add_argument(
        "--feature-set",
        action="append",
        default=[],
        metavar="FEATURE.FIELD=VALUE",
        help="change a FeatureSpec of the simulator's schema (e.g. user_id.num_bins=16384); repeatable",
    )
    parser.add_argument(
        "--loss-weight", action="append", default=[], metavar="TASK=WEIGHT", help="a task's loss weight; repeatable"
    )
    parser.add_argument(
        "--summarize-variants",
        action="store_true",
        help="only write ceiling_variants.json: every recorded variant's gaps (selection seeds 0-2, confirmation 3+)",
    )
    parser.add_argument("--results-dir", default=None, help="where the JSON goes (default docs/results)")
    args = parser.parse_args(argv)
    if args.summarize_variants:
        table = summarize_variants(args.rows, args.results_dir)
        common.print_rows(f"{NAME}: every variant's gap to the oracle (target <= {TARGET_GAP})", table)
        return table
    overrides = {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in (
            ("num_experts", args.num_experts),
            ("expert_units", args.expert_units),
            ("tower_units", args.tower_units),
        )
        if value is not None
    }
    overrides.update({field: value for (field,), value in _parse_settings(parser, "--set", args.settings).items()})
    table = run(
        args.rows,
        args.seeds,
        args.architecture,
        common.fit_options(args),
        args.figures_dir,
        overrides,
        args.results_dir,
        _feature_changes(_parse_settings(parser, "--feature-set", args.feature_set, depth=2)),
        {task: float(weight) for (task,), weight in _parse_settings(parser, "--loss-weight", args.loss_weight).items()},
    )
    common.print_rows(f"{NAME}: {args.architecture} test AUC vs oracle AUC (target gap <= {TARGET_GAP})", table)
    return table


def _parse_settings(
    parser: argparse.ArgumentParser, option: str, settings: Sequence[str], depth: int = 1
) -> dict[tuple[str, ...], Any]:
    """``KEY=VALUE`` pairs read as the training CLI reads ``--set`` (:func:`training.config.parse_override`:
    values as YAML, lists become tuples), keyed by the ``depth`` dotted names of the key."""
    from training.config import RunConfigError, parse_override

    parsed = {}
    for item in settings:
        try:
            parts, value = parse_override(item)
        except RunConfigError as err:
            parser.error(f"{option}: {err}")
        if len(parts) != depth:
            parser.error(f"{option} expects {'.'.join(['NAME'] * depth)}=VALUE, got {item!r}")
        parsed[tuple(parts)] = tuple(value) if isinstance(value, list) else value
    return parsed


def _feature_changes(settings: dict[tuple[str, ...], Any]) -> dict[str, dict[str, Any]]:
    """``{(feature, field): value}`` as ``{feature: {field: value}}``."""
    changes: dict[str, dict[str, Any]] = {}
    for (feature, field), value in settings.items():
        changes.setdefault(feature, {})[field] = value
    return changes
