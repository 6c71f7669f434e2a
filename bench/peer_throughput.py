"""Training and prediction speed of mmoe-tf against DeepCTR 0.9.4 ``MMOE``, every contender in its own process.

Protocol, size classes (:data:`SIZES`) and contenders: ``docs/performance.md``, "Against DeepCTR". The JSON holds, per
size class and batch size, each contender's median and per-round figures and the per-round ratios of the notebook path
(``mmoe_tf/numpy``) to every other contender.

Usage:
    python3 bench/peer_throughput.py --out docs/bench/peer_throughput.json           # both size classes, 5 rounds
    python3 bench/peer_throughput.py --skip-deepctr --rows 3000 --rounds 1 --epochs 1  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
from typing import Any

import harness

SIZES: dict[str, dict[str, Any]] = {  # categorical cardinalities, experts × units, tower units; the batch sizes timed
    "base": dict(cardinalities=(100, 1_000, 20, 5_000), num_experts=8, expert_units=64, tower_units=32),
    "large": dict(cardinalities=(100, 1_000, 10_000, 100_000) * 8, num_experts=8, expert_units=256, tower_units=64),
}
SIZES["base"]["batch_sizes"], SIZES["large"]["batch_sizes"] = (512, 2048), (2048,)
MMOE_TF = ("mmoe_tf/numpy", "mmoe_tf/dataframe", "mmoe_tf/cli")
DEEPCTR = ("deepctr/MMOE", "deepctr/MMOE@spe16")
NOTEBOOK = "mmoe_tf/numpy"
FIGURES = ("train_examples_per_s", "train_cpu_us_per_example", "predict_examples_per_s")  # per contender and round
RATIOS = {  # ratio of the notebook path to another contender -> the per-round figure it divides
    "train_speedup": "train_examples_per_s",
    "predict_speedup": "predict_examples_per_s",
    "train_cpu_per_example_ratio": "train_cpu_us_per_example",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = harness.parser(__doc__, rounds=5)
    p.add_argument("--rows", type=int, default=200_000, help="rows generated (80 %% train, 20 %% test)")
    p.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=list(SIZES))
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="override every size class's batches")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per round and contender")
    p.add_argument("--predict-passes", type=int, default=3, help="timed predict calls over the test rows")
    p.add_argument("--warmup-batches", type=int, default=64, help="untimed training batches before timing")
    p.add_argument("--contenders", nargs="+", choices=MMOE_TF + DEEPCTR, default=None)
    p.add_argument("--skip-deepctr", action="store_true", help="mmoe-tf contenders only (no benchmark environment)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--size", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def table(size: str, rows: int) -> tuple[dict[str, Any], Any]:
    from data.generators import simulate_ctr_table

    df, schema = simulate_ctr_table(n_rows=rows, cardinalities=SIZES[size]["cardinalities"], seed=0)
    cut = int(0.8 * len(df))
    return {"train": df.iloc[:cut].reset_index(drop=True), "test": df.iloc[cut:].reset_index(drop=True)}, schema


def model_config(schema: Any, size: dict[str, Any], **extra: Any) -> Any:
    """The mmoe-tf model config of a size class (one expert and one tower layer)."""
    units = {k: (size[k],) for k in ("expert_units", "tower_units")}
    return schema.model_config(num_experts=size["num_experts"], **units, **extra)


def deepctr_inputs(frames: dict[str, Any], schema: Any) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Label-encoded ids and standardised numbers (fitted on train), as DeepCTR's examples prepare them."""
    import numpy as np
    import pandas as pd

    encoded: dict[str, dict[str, Any]] = {"train": {}, "test": {}}
    cardinalities = {}
    for f in schema.features:
        train_col = frames["train"][f.name]
        if f.kind == "numeric":
            mean, std = float(train_col.mean()), float(train_col.std() or 1.0)
            for split in encoded:
                encoded[split][f.name] = ((frames[split][f.name] - mean) / std).to_numpy(np.float32)
        else:
            categories = pd.Index(pd.unique(train_col))
            cardinalities[f.name] = len(categories) + 1  # index len(categories) = unseen
            for split in encoded:
                codes = categories.get_indexer(frames[split][f.name])
                encoded[split][f.name] = np.where(codes < 0, len(categories), codes).astype(np.int64)
    return encoded, cardinalities


def deepctr_contender(name: str, frames: dict, schema: Any, size: dict, batch: int) -> tuple[Any, Any, Any]:
    import numpy as np
    import tensorflow as tf
    from deepctr.feature_column import DenseFeat, SparseFeat
    from deepctr.models import MMOE

    encoded, cardinalities = deepctr_inputs(frames, schema)
    columns = [
        DenseFeat(f.name, 1) if f.kind == "numeric" else SparseFeat(f.name, cardinalities[f.name], f.embedding_dim)
        for f in schema.features
    ]
    model = MMOE(
        columns,
        num_experts=size["num_experts"],
        expert_dnn_hidden_units=(size["expert_units"],),
        tower_dnn_hidden_units=(size["tower_units"],),
        l2_reg_embedding=0.0,
        task_types=("binary", "binary"),
        task_names=tuple(t.name for t in schema.tasks),
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(1e-3),
        loss=["binary_crossentropy"] * len(schema.tasks),
        metrics=[tf.keras.metrics.AUC(name="auc")],
        steps_per_execution=16 if name.endswith("@spe16") else 1,
    )
    labels = [frames["train"][t.name].to_numpy(np.float32) for t in schema.tasks]

    def fit(epochs: int, rows: int | None = None) -> None:
        x = {k: v[:rows] for k, v in encoded["train"].items()}
        model.fit(x, [y[:rows] for y in labels], batch_size=batch, epochs=epochs, shuffle=True, verbose=0)

    def predict() -> dict[str, Any]:
        scores = model.predict(encoded["test"], batch_size=batch, verbose=0)
        return {t.name: scores[i] for i, t in enumerate(schema.tasks)}

    return model, fit, predict


def mmoe_tf_contender(name: str, frames: dict, schema: Any, size: dict, batch: int) -> tuple[Any, Any, Any]:
    import mmoe_tf
    from data import batches_per_pass, feature_arrays, make_dataset

    if name == "mmoe_tf/cli":
        mmoe_tf.configure_cpu_threads()  # what `python -m training` applies before building anything
    train, test = frames["train"], frames["test"]
    config = model_config(schema, size, learning_rate=1e-3)
    model = mmoe_tf.build_model(config, adapt_data=feature_arrays(train, schema))
    tasks = [t.name for t in schema.tasks]
    if name == "mmoe_tf/cli":  # the CLI's input pipeline
        pipeline = make_dataset(train, schema, batch_size=batch, shuffle=True, seed=0, repeat=True)
        test_ds = make_dataset(test, schema, batch_size=batch, with_labels=False)

        def fit(epochs: int, rows: int | None = None) -> None:
            steps = batches_per_pass(rows or len(train), batch)
            model.fit(pipeline, epochs=epochs, steps_per_epoch=steps, verbose=0)

        return model, fit, lambda: model.predict(test_ds, verbose=0)
    as_frame = name == "mmoe_tf/dataframe"
    features = train[list(config.feature_names)] if as_frame else feature_arrays(train, schema)
    test_features = test[list(config.feature_names)] if as_frame else feature_arrays(test, schema)
    labels = {t: train[t].to_numpy() for t in tasks}

    def fit(epochs: int, rows: int | None = None) -> None:
        x = features.iloc[:rows] if as_frame else {k: v[:rows] for k, v in features.items()}
        model.fit(x, {t: y[:rows] for t, y in labels.items()}, batch_size=batch, epochs=epochs, shuffle=True, verbose=0)

    return model, fit, lambda: model.predict(test_features, batch_size=batch, verbose=0)


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Build, warm up and time one contender; returns its figures for one round."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    size = SIZES[args.size]
    frames, schema = table(args.size, args.rows)
    build = deepctr_contender if args.worker in DEEPCTR else mmoe_tf_contender
    model, fit, predict = build(args.worker, frames, schema, size, args.batch)
    # untimed warm-up tracing what the timed epochs run: full batches and the last, shorter one
    n_train = len(frames["train"])
    fit(1, rows=min(n_train, args.warmup_batches * args.batch + n_train % args.batch))
    predict()
    n_test = len(frames["test"])
    train_wall, train_cpu = harness.timed(lambda: fit(args.epochs))
    predict_wall, _ = harness.timed(lambda: [predict() for _ in range(args.predict_passes)])
    scores = predict()
    import tensorflow as tf

    return {
        "train_examples_per_s": args.epochs * n_train / train_wall,
        "train_cpu_us_per_example": 1e6 * train_cpu / (args.epochs * n_train),
        "predict_examples_per_s": args.predict_passes * n_test / predict_wall,
        "test_auc": {
            t.name: float(roc_auc_score(frames["test"][t.name], np.ravel(scores[t.name]))) for t in schema.tasks
        },
        "parameters": int(model.count_params()),
        "tensorflow": tf.__version__,
        "threads": [
            tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads(),
        ],
    }


def run_contender(name: str, size: str, batch: int, args: argparse.Namespace, python: str) -> dict[str, Any]:
    command = [python, str(pathlib.Path(__file__).resolve()), "--worker", name, "--size", size, "--batch", str(batch)]
    for flag in ("rows", "epochs", "predict_passes", "warmup_batches"):
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1"}
    proc = subprocess.run(command, cwd=harness.REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} (size {size}, batch {batch}) failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    figures = ", ".join(f"{k} {v:,.2f}" for k, v in result.items() if isinstance(v, float))
    print(f"[{size} b={batch}] {name}: {figures} (load {os.getloadavg()[0]:.1f})", flush=True)
    return result


def summarise(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians and per-round values per contender, and per-round ratios of the notebook path to the others."""
    contenders = {}
    for name, results in rounds.items():
        row = {key: harness.spread([r[key] for r in results], 0 if key.endswith("per_s") else 3) for key in FIGURES}
        tasks = results[0]["test_auc"]
        row["test_auc"] = {t: round(statistics.median(r["test_auc"][t] for r in results), 4) for t in tasks}
        contenders[name] = row | {key: results[0][key] for key in ("parameters", "threads")}
    ratios: dict[str, Any] = {}
    for other, theirs in rounds.items() if NOTEBOOK in rounds else ():
        if other != NOTEBOOK:
            pairs = list(zip(rounds[NOTEBOOK], theirs, strict=True))
            ratios[other] = {name: harness.spread([a[k] / b[k] for a, b in pairs], 3) for name, k in RATIOS.items()}
            ours = contenders[NOTEBOOK]["test_auc"]
            ratios[other]["auc_delta"] = {t: round(ours[t] - v, 4) for t, v in contenders[other]["test_auc"].items()}
    return {"contenders": contenders, "ratios_of_notebook_path": ratios}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.worker:
        return harness.emit(worker(args))
    names = list(args.contenders or (MMOE_TF + DEEPCTR))
    if args.skip_deepctr:
        names = [n for n in names if n not in DEEPCTR]
    python = str(harness.bench_python()) if any(n in DEEPCTR for n in names) else sys.executable
    result: dict[str, Any] = {"benchmark": "peer_throughput", "sizes": {}}
    for size in args.sizes:
        for batch in args.batch_sizes or SIZES[size]["batch_sizes"]:
            rounds = harness.alternate(
                names, args.rounds, lambda n, _r, s=size, b=batch: run_contender(n, s, b, args, python)
            )
            result["sizes"].setdefault(size, {})[str(batch)] = summarise(rounds)
    result["settings"] = {
        "rows": args.rows,
        "train_rows": int(0.8 * args.rows),
        "rounds": args.rounds,
        "epochs_per_round": args.epochs,
        "predict_passes_per_round": args.predict_passes,
        "warmup_batches": args.warmup_batches,
        "size_classes": {s: SIZES[s] for s in args.sizes},
        "deepctr": harness.BENCH_PINS[0].split("==")[1] if python != sys.executable else None,
        "tensorflow": rounds[names[0]][0]["tensorflow"],
    }
    result["machine"] = harness.machine()
    return harness.emit(result, args.out)


if __name__ == "__main__":
    main()
