"""``python -m training {train,evaluate,gates,compare,config}``: train a run, evaluate a saved model, analyse its
gates, compare architectures over seeds, check a run config or write its JSON Schema.

Examples:
    python -m training train --config training/configs/default.yaml --set model.num_experts=8 --set train.epochs=3
    python -m training evaluate --model output/runs/RUN/model.keras            # the run's own test split
    python -m training evaluate --model output/runs/RUN/model.keras --split all --data table.csv --schema s.yaml
    python -m training gates --model output/runs/RUN/model.keras --output-dir /tmp/gates
    python -m training compare --set train.epochs=5 --seeds 3 --jobs 2 --output-dir output/compare/first
    python -m training config --config my.yaml --set train.epochs=3    # validate; print the resolved config
    python -m training config --schema run_config.schema.json          # JSON Schema for editors
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from training import compare
from training.config import config_reference, load_run_config
from training.scoring_data import SPLITS, scoring_table

EPILOG = """\
run config reference (YAML/TOML file, then --set overrides; KEY = default):
{reference}

--set values are read as YAML: 8, 0.5, [64, 32], null, true, click.
Per-task overrides, e.g. ESMM: --set model.tasks.satisfaction.conditional_on=click
"""


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a run config and write a run folder",
        description="Train, evaluate (validation + test) and analyse gates; writes model.keras, run_config.yaml, "
        "report.json/.txt, gates.json/.txt/.png, history.csv, tensorboard/, checkpoints/, backup/. Rerunning with the "
        "same --output-dir resumes an interrupted run from its last finished epoch.",
        epilog=EPILOG.format(reference=config_reference()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="run config file (.yaml/.yml/.json or .toml); omitted = built-in defaults")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key (dotted path), repeatable, e.g. --set train.epochs=3",
    )
    p.add_argument("--output-dir", help="run folder (default: output_dir from the config, else output/runs/<UTC time>)")
    p.add_argument("--quiet", action="store_true", help="do not print the report and gate summary at the end")


def _add_model_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="saved model (RUN/model.keras)")
    p.add_argument(
        "--data",
        default=None,
        help="CSV/Parquet table with the model's feature columns, or 'default' for the embedded sample "
        "(default: the run's own table, from run_config.yaml next to the model)",
    )
    p.add_argument(
        "--schema",
        help="schema file (YAML/JSON); default: schema.yaml next to the model, else the "
        "embedded sample's schema when --data is default",
    )
    p.add_argument(
        "--split",
        choices=SPLITS,
        default=None,
        help="rows to score, cut with the run's split settings (default: test for the run's own table, all for --data)",
    )
    p.add_argument(
        "--allow-missing-features",
        action="store_true",
        help="score a table that lacks the column of an optional feature (every row takes its schema default, with "
        "a warning naming the column); without it a missing column is an error. The run config's "
        "data.allow_missing_features switch, for this command (on when the run was trained with it)",
    )
    p.add_argument(
        "--nan-policy",
        default=None,
        choices=("error", "fill"),
        help="missing feature values: raise, or fill with each feature's default (default: the run's "
        "data.nan_policy, else error)",
    )
    p.add_argument("--batch-size", type=int, default=1024, help="prediction batch size")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="per-task report of a saved model on a table",
        description="Per-task metrics (binary: AUC, log loss, calibration; regression: MSE, MAE) on the "
        "rows where each task's label is observed; prints which table and split it scored and a table, "
        "optionally writes JSON. Default: the run's own table (run_config.yaml next to the model), test split.",
    )
    _add_model_data(p)
    p.add_argument(
        "--output",
        help="write the report as JSON here (and the table next to it as .txt); an existing file is refused",
    )
    p.add_argument("--force", action="store_true", help="replace existing --output files")


def _add_gates(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gates",
        help="gate analysis of a saved model on a table",
        description="Mean gate weight per task and expert, gate entropy, task similarity, expert "
        "utilisation; warns when a gate collapses onto one expert.",
    )
    _add_model_data(p)
    p.add_argument("--output-dir", help="write gates.json and gates.png here (existing ones are refused)")
    p.add_argument("--force", action="store_true", help="replace gates.json / gates.png in --output-dir")
    p.add_argument("--collapse-max-weight", type=float, default=0.9, help="collapse when mean max weight > this")
    p.add_argument("--collapse-entropy", type=float, default=0.1, help="collapse when normalised entropy < this")
    p.add_argument(
        "--unused-share", type=float, default=None, help="unused expert when its mass share < this (default 0.1/K)"
    )


def _add_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config",
        help="validate a run config, or write its JSON Schema / README reference",
        description="Without --schema/--readme: validate --config and --set as train would and print the resolved\n"
        "config (YAML). The JSON Schema lets editors check YAML run configs (e.g. the YAML language server's\n"
        "'# yaml-language-server: $schema=PATH' comment).",
        epilog=EPILOG.format(reference=config_reference()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="run config file (.yaml/.yml/.json or .toml); omitted = built-in defaults")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a key")
    p.add_argument("--schema", nargs="?", const="-", metavar="PATH", help="write the JSON Schema to PATH (- = stdout)")
    p.add_argument("--readme", metavar="PATH", help="rewrite the configuration reference between its markers in PATH")
    p.add_argument(
        "--check", action="store_true", help="with --readme/--schema PATH: exit 1 if the file is out of date"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m training`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="logging level (gate-collapse warnings are WARNING)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate,gates,compare,config}")
    _add_train(sub)
    _add_evaluate(sub)
    _add_gates(sub)
    compare.add_parser(sub)
    _add_config(sub)
    for command in sub.choices.values():
        command.add_argument(
            "--intra-op-threads",
            type=int,
            default=None,
            metavar="N",
            help="threads one TensorFlow op may use (default: $TF_NUM_INTRAOP_THREADS, else 1: fastest for "
            "models of small ops, docs/performance.md; 0 = TensorFlow's default, all cores)",
        )
        command.add_argument(
            "--inter-op-threads",
            type=int,
            default=None,
            metavar="N",
            help="threads running independent ops (default: $TF_NUM_INTEROP_THREADS, else 0 = all cores)",
        )
        command.add_argument(
            "--verbose",
            action="store_true",
            help="show TensorFlow's start-up log (CUDA probing, CPU-instruction notices; hidden by default)",
        )
    return parser


def _load_for_eval(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(model, config, ScoringTable) for evaluate/gates; prints which table and split are scored."""
    from mmoe_tf.saving import config_of, load_model

    model_path = pathlib.Path(args.model)
    if not model_path.exists():
        raise FileNotFoundError(f"--model: no such file: {model_path}")
    model = load_model(model_path)
    config = config_of(model)
    table = scoring_table(
        model_path, config, args.data, args.schema, args.split, args.nan_policy, args.allow_missing_features
    )
    print(f"scoring {table.describe()}")
    return model, config, table


def _evaluate(args: argparse.Namespace) -> int:
    from training.evaluation import evaluate_model, format_report
    from training.run_folder import refuse_overwrite

    if args.output:
        out = pathlib.Path(args.output)
        refuse_overwrite(dict.fromkeys([out, out.with_suffix(".txt")]), "--output", args.force)
    model, config, table = _load_for_eval(args)
    report = {
        "model": str(args.model),
        "data": table.source,
        "split": table.split,
        "splits": {table.split: evaluate_model(model, config, table.df, table.schema, batch_size=args.batch_size)},
    }
    text = format_report(report["splits"])
    print(text)
    if args.output:
        out = pathlib.Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        out.with_suffix(".txt").write_text(text + "\n")
        print(f"\nreport written to {out}")
    return 0


def _gates(args: argparse.Namespace) -> int:
    from data import feature_arrays
    from training.gate_analysis import analyze_model_gates, format_gate_summary, write_gate_analysis
    from training.run_folder import refuse_overwrite

    if args.output_dir:
        out = pathlib.Path(args.output_dir)
        refuse_overwrite(
            [out / "gates.json", out / "gates.png", *out.glob("gates_level*.png")], "--output-dir", args.force
        )
    model, _, table = _load_for_eval(args)
    analysis = analyze_model_gates(
        model,
        feature_arrays(table.df, table.schema),
        batch_size=args.batch_size,
        collapse_max_weight=args.collapse_max_weight,
        collapse_entropy=args.collapse_entropy,
        unused_share=args.unused_share,
    )
    print(format_gate_summary(analysis))
    if args.output_dir:
        out = pathlib.Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_gate_analysis(analysis, out)
        print(f"\ngate analysis written to {out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from training.runner import print_run_summary, train

    run_config = load_run_config(args.config, args.overrides)
    result = train(run_config, output_dir=args.output_dir)
    if not args.quiet:
        print_run_summary(result)
    return 0


def _write_or_check(path: pathlib.Path, text: str, check: bool) -> int:
    if check:
        current = path.read_text() if path.is_file() else ""
        if current != text:
            flag = "--readme" if path.suffix == ".md" else "--schema"
            print(f"{path} is out of date; run: python -m training config {flag} {path}", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0


def _config(args: argparse.Namespace) -> int:
    from training.config import json_schema, render_readme

    if args.schema:
        text = json.dumps(json_schema(), indent=2) + "\n"
        if args.schema == "-":
            print(text, end="")
            return 0
        return _write_or_check(pathlib.Path(args.schema), text, args.check)
    if args.readme:
        path = pathlib.Path(args.readme)
        return _write_or_check(path, render_readme(path.read_text()), args.check)
    import yaml

    print(yaml.safe_dump(load_run_config(args.config, args.overrides).to_dict(), sort_keys=False), end="")
    return 0


def _configure_threads(args: argparse.Namespace) -> None:
    """Apply ``--intra-op-threads`` / ``--inter-op-threads`` (defaults: ``mmoe_tf.configure_cpu_threads``).

    Called in-process after TensorFlow has run (a notebook, a test), the defaults are skipped; explicit
    flags that can no longer apply are an error.
    """
    from mmoe_tf import configure_cpu_threads

    try:
        configure_cpu_threads(args.intra_op_threads, args.inter_op_threads)
    except RuntimeError as err:
        if args.intra_op_threads is not None or args.inter_op_threads is not None:
            raise ValueError(f"--intra-op-threads/--inter-op-threads: {err}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code (2 for bad config/input, with a one-line error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("training").setLevel(args.log_level)
    handlers = {"train": _train, "evaluate": _evaluate, "gates": _gates, "compare": compare.main, "config": _config}
    try:
        if args.command != "config":  # config runs no TensorFlow
            _configure_threads(args)
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as err:
        # config, data validation (DataValidationError is a ValueError) and file problems: no stack trace
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
