"""Command line: ``python -m serving {export,serve,predict}`` (also installed as ``mmoe-serving``).

Examples:
    python -m serving export --model runs/x/model.keras --base-path export --model-name mmoe \\
        --score-weights click=1,satisfaction=2 --warmup-data data/sample/impressions.csv
    python -m serving serve --base-path export --model-name mmoe --port 8501 --grpc-port 8500 --enable-batching
    python -m serving predict --url http://127.0.0.1:8501 --model-name mmoe --data rows.csv --rows 5

Each subcommand imports only what it needs: ``serve`` and ``predict`` never import ``mmoe_tf``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from serving.event_loop import EVENT_LOOPS


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port 0..65535 (0 = any free port), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with the ``export``, ``serve`` and ``predict`` subcommands."""
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    exp = sub.add_parser("export", help="export a .keras model as a verified SavedModel version for TF Serving")
    exp.add_argument("--model", required=True, type=Path, help="the trained model (.keras file)")
    exp.add_argument("--base-path", required=True, type=Path, help="TF Serving base path (holds <name>/<version>/)")
    exp.add_argument("--model-name", default="mmoe")
    exp.add_argument("--version", type=_positive_int, default=None, help="default: next free version number")
    exp.add_argument("--score-weights", default=None, help="ranking_score weights, e.g. click=1,satisfaction=2")
    exp.add_argument("--warmup-data", type=Path, default=None, help="CSV/Parquet of real rows for warm-up and checks")
    exp.add_argument("--warmup-rows", type=_positive_int, default=32, help="rows of --warmup-data to use")

    srv = sub.add_parser("serve", help="serve exported models over TF Serving's REST and gRPC APIs")
    src = srv.add_mutually_exclusive_group(required=True)
    src.add_argument("--base-path", type=Path, help="export base path: serves BASE/<model-name>/<version>/")
    src.add_argument("--model-config-file", type=Path, help="TF Serving model_config_list text proto")
    srv.add_argument("--model-name", default="mmoe")
    srv.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback only)")
    srv.add_argument("--port", type=_port, default=8501, help="REST port (TF Serving's --rest_api_port; 0 = any free)")
    srv.add_argument("--grpc-port", type=_port, default=8500, help="gRPC port (TF Serving's --port; 0 = any free)")
    srv.add_argument("--no-grpc", action="store_true", help="serve REST only")
    srv.add_argument(
        "--grpc-max-message-bytes", type=_positive_int, default=64 * 1024 * 1024, help="larger: RESOURCE_EXHAUSTED"
    )
    srv.add_argument("--max-body-bytes", type=_positive_int, default=16 * 1024 * 1024)
    # REST bounds on every client (docs/serving_security.md)
    srv.add_argument("--max-head-bytes", type=_positive_int, default=64 * 1024, help="request line + headers: 431")
    srv.add_argument("--head-timeout-seconds", type=float, default=10.0, help="to receive a request's headers: 408")
    srv.add_argument("--body-timeout-seconds", type=float, default=60.0, help="to receive a body after its head: 408")
    srv.add_argument("--idle-timeout-seconds", type=float, default=75.0, help="idle or not-reading connections close")
    srv.add_argument(
        "--max-pending-bytes-per-connection",
        type=_positive_int,
        default=16 * 1024 * 1024,
        help="requests read ahead + answers not yet taken, past which a connection is not read",
    )
    srv.add_argument("--max-connections", type=_positive_int, default=1024, help="more are answered 503")
    srv.add_argument("--enable-batching", action="store_true", help="merge concurrent requests into batches")
    srv.add_argument("--max-batch-size", type=_positive_int, default=64)
    srv.add_argument("--batch-timeout-micros", type=int, default=2000)
    srv.add_argument("--max-enqueued-batches", type=_positive_int, default=100)
    srv.add_argument(
        "--batching-parameters-file",
        type=Path,
        default=None,
        help="TF Serving BatchingParameters text proto; enables batching and replaces the batching flags",
    )
    srv.add_argument("--num-threads", type=_positive_int, default=2, help="inference threads")
    srv.add_argument("--intra-op-threads", type=int, default=1, help="TF intra-op threads (0 = all cores)")
    srv.add_argument(
        "--inter-op-threads",
        type=int,
        default=-1,
        help="TF inter-op threads (0 = all cores; -1 = run a request's ops in the thread that calls the model)",
    )
    srv.add_argument(
        "--event-loop", choices=EVENT_LOOPS, default="auto", help="auto = uvloop when installed (faster), else asyncio"
    )
    srv.add_argument(
        "--monitoring-config-file",
        "--monitoring_config_file",
        type=Path,
        default=None,
        help="TF Serving MonitoringConfig text proto; prometheus_config { enable: true } serves the metrics",
    )
    srv.add_argument(
        "--monitoring", action="store_true", help="serve Prometheus metrics at /monitoring/prometheus/metrics"
    )
    srv.add_argument("--poll-seconds", type=float, default=1.0, help="scan interval for new versions")
    srv.add_argument("--rest-timeout-seconds", type=float, default=30.0)

    pre = sub.add_parser("predict", help="score rows of a CSV through a REST endpoint and print the table")
    pre.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8501")
    pre.add_argument("--model-name", default="mmoe")
    pre.add_argument("--data", required=True, type=Path, help="CSV with one column per model input")
    pre.add_argument("--rows", type=_positive_int, default=5)
    pre.add_argument("--version", type=_positive_int, default=None)
    pre.add_argument("--signature-name", default="serving_default")
    return parser


def _read_table(path: Path, rows: int | None = None):
    import pandas as pd

    if not path.exists():
        raise SystemExit(f"error: data file {path} does not exist")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, keep_default_na=True)
    return frame.head(rows) if rows else frame


def _export(args: argparse.Namespace) -> int:
    # export loads the Keras model (and so mmoe_tf): TensorFlow's C++ start-up log is hidden as in `python -m training`
    # (MMOE_TF_STARTUP_LOG=show keeps it)
    from training.quiet import quiet_startup, startup_log_shown

    with quiet_startup(enabled=not startup_log_shown()):
        import tensorflow as tf

        import mmoe_tf
    from serving.export import export_model, parse_score_weights

    if not args.model.exists():
        raise SystemExit(f"error: model file {args.model} does not exist")
    load = getattr(mmoe_tf, "load_model", None)
    model = load(args.model) if load else tf.keras.models.load_model(args.model)
    samples = _read_table(args.warmup_data, args.warmup_rows) if args.warmup_data else None
    path = export_model(
        model,
        args.base_path,
        model_name=args.model_name,
        version=args.version,
        sample_features=samples,
        score_weights=parse_score_weights(args.score_weights),
    )
    print(f"exported {args.model_name} version {path.name} to {path}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from serving.batching import BatchingOptions, read_batching_parameters
    from serving.metrics import read_monitoring_config
    from serving.model_store import ModelSource, read_model_config
    from serving.server import main
    from serving.server_config import ServerConfig
    from serving.tf_serving.protos import PROMETHEUS_DEFAULT_PATH

    if args.model_config_file:
        sources = read_model_config(args.model_config_file)
    else:
        sources = [ModelSource(args.model_name, args.base_path / args.model_name)]  # BASE/<name>/<version>/
    batching, threads = None, args.num_threads
    if args.batching_parameters_file:
        batching, file_threads, ignored = read_batching_parameters(args.batching_parameters_file)
        threads = file_threads or threads
        if ignored:
            print(f"warning: batching parameters {ignored} are not implemented here and ignored", file=sys.stderr)
    elif args.enable_batching:
        batching = BatchingOptions(args.max_batch_size, args.batch_timeout_micros, args.max_enqueued_batches)
    monitoring_path = PROMETHEUS_DEFAULT_PATH if args.monitoring else None
    if args.monitoring_config_file:  # the file decides (as TF Serving's): enabled or not, and the path
        monitoring_path = read_monitoring_config(args.monitoring_config_file)
    config = ServerConfig(
        host=args.host,
        port=args.port,
        grpc_port=None if args.no_grpc else args.grpc_port,
        grpc_max_message_bytes=args.grpc_max_message_bytes,
        max_body_bytes=args.max_body_bytes,
        batching=batching,
        num_threads=threads,
        poll_seconds=args.poll_seconds,
        rest_timeout_seconds=args.rest_timeout_seconds,
        intra_op_threads=args.intra_op_threads,
        inter_op_threads=args.inter_op_threads,
        event_loop=args.event_loop,
        max_head_bytes=args.max_head_bytes,
        head_timeout_seconds=args.head_timeout_seconds,
        body_timeout_seconds=args.body_timeout_seconds,
        idle_timeout_seconds=args.idle_timeout_seconds,
        max_pending_bytes_per_connection=args.max_pending_bytes_per_connection,
        max_connections=args.max_connections,
        monitoring_path=monitoring_path,
    )
    return main(sources, config)


def _predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from serving.client import PredictClient

    frame = _read_table(args.data, args.rows)
    client = PredictClient(args.url, args.model_name, version=args.version, signature_name=args.signature_name)
    inputs = list(client.signature_inputs(args.signature_name))
    if any(name not in frame.columns for name in inputs):
        _refuse_missing_inputs(list(frame.columns), inputs, str(args.data))
    scores = client.predict(frame)
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(scores.to_string())
    return 0


def _refuse_missing_inputs(columns: list[str], inputs: list[str], source: str) -> None:
    """The training commands' column check (``data.columns``: names each absent input with a did-you-mean).

    Imported only when an input is missing: ``data`` loads TensorFlow, whose start-up log is kept quiet.
    """
    from training.quiet import quiet_startup

    with quiet_startup():
        from data.columns import check_inputs
    check_inputs(columns, inputs, source)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (errors print one line to stderr and return 1 or 2)."""
    args = build_parser().parse_args(argv)
    handler = {"export": _export, "serve": _serve, "predict": _predict}[args.command]
    try:
        return handler(args)
    except (ValueError, OSError, RuntimeError) as err:  # OSError: a port in use, an unreadable file
        print(f"error: {err}", file=sys.stderr)
        return 1
