"""Training and prediction speed of mmoe-tf against DeepCTR 0.9.4, side by side in one process.

Data: ``data.generators.simulate_ctr_table`` (16 numeric + 4 categorical features with cardinalities
100 / 1,000 / 20 / 5,000, two binary tasks), ``--rows`` rows split 80 / 20 into train and test.
Sizes (issue 9): 8 experts × 64 units, linear gates, towers 32, embeddings 8, Adam 1e-3, no dropout.

Contenders:
- ``mmoe_tf/mmoe`` and ``mmoe_tf/shared_bottom``: ``mmoe_tf.build_model`` exactly as it comes (its
  compiled metrics, its in-model preprocessing of the raw columns), fed by ``data.make_dataset``
  the way ``python -m training`` feeds it (shuffled and repeated, ``steps_per_epoch`` one pass:
  ``data.batches_per_pass``); ``mmoe_tf/ple`` too when the architecture exists.
- ``mmoe_tf/mmoe@cached``: the same config fed from a cached in-memory ``tf.data`` dataset of the
  same batches (the ceiling for the input pipeline: issue 9 item 5).
- ``deepctr/MMOE``, ``deepctr/SharedBottom`` (and ``deepctr/PLE`` beside ``mmoe_tf/ple``): DeepCTR's
  models with the same sizes, ``l2_reg_embedding=0`` (mmoe-tf has no embedding penalty), compiled
  with Adam 1e-3, binary cross-entropy and an AUC metric per task, fed numpy arrays the way
  DeepCTR's examples do. DeepCTR needs label-encoded ids and scaled numbers: that preprocessing is
  done once in numpy before timing (a cost mmoe-tf pays inside its model, so the comparison
  favours DeepCTR).

Per batch size (``--batch-sizes``): every model is built and warmed up (one untimed epoch traces
the train, predict and evaluate functions), then ``--rounds`` rounds alternate the contenders (in reversed
order every other round, so no contender always runs first or after the same one), each
timing ``--epochs`` epochs of ``fit`` and ``--predict-passes`` back-to-back ``predict`` calls over the test rows
(one pass over 40,000 rows lasts ~0.1 s at batch 2,048, too short to time on a shared machine). Medians over rounds.
Also measured once per batch size: prediction through ``training.evaluation`` (what
``python -m training evaluate`` calls) and through the exported SavedModel's ``serving_default``.
Test AUC per task after the warm-up and the first round (``1 + --epochs`` epochs for every
contender, so the quality check does not depend on ``--rounds``: with 5 rounds = 16 epochs every model
overfits, DeepCTR's less on click thanks to its default L2 on embeddings); ``test_auc_after_all_rounds``
is kept as well.

DeepCTR is a benchmark-only dependency: this script builds its own virtual environment outside the
repository (``~/.cache/mmoe-tf/bench-deepctr-<hash>``: the project's pinned requirements plus
``deepctr==0.9.4``) on first use and re-runs itself there.

Threads: every contender runs in this one process with the same TensorFlow thread pools, by default one
thread per op (``--intra-op-threads 1``, what mmoe-tf's CLI sets; faster for DeepCTR's models too on
2 cores); ``--intra-op-threads 0`` measures TensorFlow's default (every op split over all cores).

Usage:
    python3 bench/peer_throughput.py                                  # the full comparison
    python3 bench/peer_throughput.py --scaling                        # + experts/batch/categorical tables
    python3 bench/peer_throughput.py --rows 20000 --rounds 1 --epochs 1 --batch-sizes 512   # a smoke run

The last printed line is one JSON object with every figure and the ratios
``train_speedup_vs_deepctr_mmoe``, ``predict_speedup_vs_deepctr_mmoe`` and ``auc_delta_vs_deepctr_mmoe``, plus
``train_speedup_vs_deepctr_mmoe_fastest_round`` (mmoe-tf's median against DeepCTR's fastest round).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
DEEPCTR_PIN = "deepctr==0.9.4"
PROFILER_PIN = (
    "tensorboard-plugin-profile==2.24.2"  # xprof: per-op times from a TensorFlow trace (step_breakdown --profile)
)
_IN_BENCH_ENV = "MMOE_BENCH_DEEPCTR_ENV"


def bench_venv() -> pathlib.Path:
    """The benchmark's own virtual environment (built on first use), keyed by requirements + DeepCTR pin."""
    requirements = (REPO / "requirements.txt").read_bytes()
    key = hashlib.sha256(requirements + DEEPCTR_PIN.encode() + PROFILER_PIN.encode()).hexdigest()[:16]
    venv = (
        pathlib.Path(os.environ.get("MMOE_VENV_CACHE", pathlib.Path.home() / ".cache/mmoe-tf")) / f"bench-deepctr-{key}"
    )
    if not (venv / ".complete").exists():
        print(f"[bench] building {venv} (requirements.txt + {DEEPCTR_PIN}, {PROFILER_PIN}); one-time", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(venv / "bin/python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "-r", str(REPO / "requirements.txt"), DEEPCTR_PIN, PROFILER_PIN], check=True)
        (venv / ".complete").touch()
    return venv


def reexec_in_bench_venv(script: str | None = None) -> None:
    """Re-run ``script`` (default: this file) with the same arguments in the benchmark venv unless already there."""
    if os.environ.get(_IN_BENCH_ENV) == "1":
        return
    python = bench_venv() / "bin/python"
    os.environ[_IN_BENCH_ENV] = "1"
    os.execv(str(python), [str(python), script or str(pathlib.Path(__file__).resolve()), *sys.argv[1:]])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=200_000, help="rows generated (80 %% train, 20 %% test)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--rounds", type=int, default=3, help="alternated timing rounds per batch size")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per round and contender")
    p.add_argument("--predict-passes", type=int, default=5, help="timed predict calls over the test rows per round")
    p.add_argument("--num-experts", type=int, default=8)
    p.add_argument("--expert-units", type=int, default=64)
    p.add_argument("--tower-units", type=int, default=32)
    p.add_argument(
        "--intra-op-threads",
        type=int,
        default=1,
        help="TF threads per op for every contender (default 1, what mmoe-tf's CLI uses; 0 = TF's default)",
    )
    p.add_argument("--inter-op-threads", type=int, default=0, help="TF threads running ops at once (0: all cores)")
    p.add_argument("--skip-deepctr", action="store_true", help="mmoe-tf contenders only (no bench venv)")
    p.add_argument("--scaling", action="store_true", help="also measure mmoe-tf against experts/batch/categoricals")
    p.add_argument("--scaling-rows", type=int, default=100_000, help="training rows of each scaling point")
    return p.parse_args(argv)


# ----- models -------------------------------------------------------------------------------------
def mmoe_tf_model(schema: Any, architecture: str, adapt: Any, args: argparse.Namespace, **overrides: Any) -> Any:
    import mmoe_tf

    sizes: dict[str, Any] = dict(expert_units=(args.expert_units,), tower_units=(args.tower_units,), learning_rate=1e-3)
    if architecture in ("mmoe", "omoe"):
        sizes["num_experts"] = args.num_experts
    if architecture == "ple":
        sizes.update(ple_sizes(args))
    sizes.update(overrides)
    return mmoe_tf.build_model(schema.model_config(architecture=architecture, **sizes), adapt_data=adapt)


def ple_sizes(args: argparse.Namespace) -> dict[str, Any]:
    """PLE with as many experts per task gate as MMoE: 4 shared + 4 own per task, 1 level (CGC)."""
    half = args.num_experts // 2
    return {"num_shared_experts": half, "num_task_experts": half, "num_levels": 1}


def deepctr_model(name: str, schema: Any, cardinalities: dict[str, int], args: argparse.Namespace) -> Any:
    import tensorflow as tf
    from deepctr.feature_column import DenseFeat, SparseFeat
    from deepctr.models import MMOE, PLE, SharedBottom

    columns = [
        SparseFeat(f.name, cardinalities[f.name], embedding_dim=f.embedding_dim)
        if f.kind != "numeric"
        else DenseFeat(f.name, 1)
        for f in schema.features
    ]
    common = dict(
        tower_dnn_hidden_units=(args.tower_units,),
        l2_reg_embedding=0.0,
        task_types=("binary", "binary"),
        task_names=("click", "satisfaction"),
    )
    if name == "MMOE":
        model = MMOE(columns, num_experts=args.num_experts, expert_dnn_hidden_units=(args.expert_units,), **common)
    elif name == "SharedBottom":
        model = SharedBottom(columns, bottom_dnn_hidden_units=(args.expert_units,), **common)
    else:
        half = args.num_experts // 2
        model = PLE(
            columns,
            shared_expert_num=half,
            specific_expert_num=half,
            num_levels=1,
            expert_dnn_hidden_units=(args.expert_units,),
            **common,
        )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(1e-3),
        loss=["binary_crossentropy", "binary_crossentropy"],
        metrics=[tf.keras.metrics.AUC(name="auc")],
    )
    return model


# ----- measurement helpers ------------------------------------------------------------------------
def count_train_ops(model: Any, dataset: Any) -> int:
    """Ops in one traced train step (the function graph and every function it calls)."""
    concrete = model.train_function.get_concrete_function(iter(dataset))
    seen: set[str] = set()

    def walk(graph: Any) -> int:
        n = len(graph.get_operations())
        for name, fn in graph._functions.items():
            if name not in seen and getattr(fn, "graph", None) is not None:
                seen.add(name)
                n += walk(fn.graph)
        return n

    return walk(concrete.graph)


def auc(labels: Any, scores: Any) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


class Contender:
    """One model with its own input path: ``fit_epochs`` and ``predict`` are what gets timed."""

    def __init__(self, name: str, model: Any, fit: Any, predict: Any, one_batch: Any) -> None:
        self.name, self.model, self._fit, self._predict = name, model, fit, predict
        self.one_batch = one_batch  # a dataset of one training batch, to trace the train step for its op count
        self.train_rates: list[float] = []
        self.predict_rates: list[float] = []

    def fit_epochs(self, epochs: int) -> None:
        self._fit(epochs)

    def predict(self) -> dict[str, Any]:
        return self._predict()


def make_contenders(frames: dict, schema: Any, batch: int, args: argparse.Namespace, with_deepctr: bool) -> list:
    import numpy as np
    import tensorflow as tf

    from data import batches_per_pass, feature_arrays, make_dataset
    from mmoe_tf.config import ARCHITECTURES

    train, test = frames["train"], frames["test"]
    adapt = feature_arrays(train, schema)
    # The CLI's training input (training.runner): shuffled, repeated, one pass per epoch.
    pipeline = make_dataset(train, schema, batch_size=batch, shuffle=True, seed=0, repeat=True)
    steps = batches_per_pass(len(train), batch)
    cached = make_dataset(train, schema, batch_size=batch).cache()
    for _ in cached:  # fill the cache before timing
        pass
    test_features = make_dataset(test, schema, batch_size=batch, with_labels=False)
    out = []

    def mmoe_tf_contender(name: str, architecture: str, dataset: Any) -> Contender:
        model = mmoe_tf_model(schema, architecture, adapt, args)
        steps_per_epoch = steps if dataset is pipeline else None
        return Contender(
            name,
            model,
            lambda e: model.fit(dataset, epochs=e, steps_per_epoch=steps_per_epoch, verbose=0),
            lambda: model.predict(test_features, verbose=0),
            cached.take(1),
        )

    out.append(mmoe_tf_contender("mmoe_tf/mmoe", "mmoe", pipeline))
    out.append(mmoe_tf_contender("mmoe_tf/mmoe@cached", "mmoe", cached))
    out.append(mmoe_tf_contender("mmoe_tf/shared_bottom", "shared_bottom", pipeline))
    if "ple" in ARCHITECTURES:
        out.append(mmoe_tf_contender("mmoe_tf/ple", "ple", pipeline))
    if with_deepctr:
        encoded, cardinalities = deepctr_inputs(frames, schema)
        y_train = [train[t.name].to_numpy(np.float32) for t in schema.tasks]
        names = ["MMOE", "SharedBottom"] + (["PLE"] if "ple" in ARCHITECTURES else [])
        for name in names:
            model = deepctr_model(name, schema, cardinalities, args)

            def fit(e: int, model: Any = model) -> None:
                model.fit(encoded["train"], y_train, batch_size=batch, epochs=e, shuffle=True, verbose=0)

            def predict(model: Any = model) -> dict[str, Any]:
                p = model.predict(encoded["test"], batch_size=batch, verbose=0)
                return {t.name: p[i] for i, t in enumerate(schema.tasks)}

            one_batch = tf.data.Dataset.from_tensors(
                ({k: v[:batch] for k, v in encoded["train"].items()}, tuple(y[:batch] for y in y_train))
            )
            out.append(Contender(f"deepctr/{name}", model, fit, predict, one_batch))
    return out


def deepctr_inputs(frames: dict, schema: Any) -> tuple[dict, dict[str, int]]:
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


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def serving_paths_rate(contender: Contender, frames: dict, schema: Any, batch: int, passes: int) -> dict[str, float]:
    """examples/s of ``training.evaluation``'s prediction and of the exported ``serving_default``."""
    import tensorflow as tf

    from data import feature_arrays
    from serving.export import export_model
    from training.evaluation import predict_outputs

    test = frames["test"]
    rates = {}
    features = feature_arrays(test, schema)
    predict_outputs(contender.model, features, batch_size=batch)
    rates["training_evaluate_predict"] = (
        passes
        * len(test)
        / timed(
            lambda: [
                predict_outputs(contender.model, feature_arrays(test, schema), batch_size=batch) for _ in range(passes)
            ]
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = export_model(contender.model, tmp, model_name="bench")
        signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        columns = {f.name: tf.constant(test[f.name].to_numpy()) for f in schema.features}
        chunks = [{k: v[i : i + batch] for k, v in columns.items()} for i in range(0, len(test), batch)]
        signature(**chunks[0])
        rates["saved_model_serving_default"] = (
            passes * len(test) / timed(lambda: [signature(**c) for _ in range(passes) for c in chunks])
        )
    return rates


def run_batch_size(frames: dict, schema: Any, batch: int, args: argparse.Namespace, with_deepctr: bool) -> dict:
    import numpy as np

    contenders = make_contenders(frames, schema, batch, args, with_deepctr)
    ops, params = {}, {}
    for c in contenders:  # warm-up: trace train / predict / evaluate (untimed)
        c.fit_epochs(1)
        c.predict()
        params[c.name] = int(c.model.count_params())
        ops[c.name] = count_train_ops(c.model, c.one_batch)
        print(f"[b={batch}] {c.name}: {params[c.name]:,} parameters, warmed up", flush=True)
    n_train, n_test = len(frames["train"]), len(frames["test"])

    def test_aucs(c: Any) -> dict[str, float]:
        preds = c.predict()
        return {t.name: round(auc(frames["test"][t.name], np.ravel(preds[t.name])), 4) for t in schema.tasks}

    quality: dict[str, dict[str, float]] = {}
    passes = args.predict_passes
    for r in range(args.rounds):
        for c in contenders if r % 2 == 0 else contenders[::-1]:
            c.train_rates.append(args.epochs * n_train / timed(lambda c=c: c.fit_epochs(args.epochs)))
            c.predict_rates.append(passes * n_test / timed(lambda c=c: [c.predict() for _ in range(passes)]))
            print(
                f"[b={batch}] round {r + 1} {c.name}: train {c.train_rates[-1]:,.0f}/s, "
                f"predict {c.predict_rates[-1]:,.0f}/s (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
            if r == 0:  # quality at one budget for all (warm-up + one round), whatever the number of rounds
                quality[c.name] = test_aucs(c)
    result: dict[str, Any] = {"contenders": {}, "auc_epochs": 1 + args.epochs}
    for c in contenders:
        result["contenders"][c.name] = {
            "train_examples_per_s": round(statistics.median(c.train_rates)),
            "predict_examples_per_s": round(statistics.median(c.predict_rates)),
            "train_rounds": [round(x) for x in c.train_rates],
            "predict_rounds": [round(x) for x in c.predict_rates],
            "test_auc": quality[c.name],
            "test_auc_after_all_rounds": test_aucs(c),
            "parameters": params[c.name],
            "ops_per_train_step": ops.get(c.name),
        }
    main = next(c for c in contenders if c.name == "mmoe_tf/mmoe")
    result["prediction_paths"] = {
        k: round(v) for k, v in serving_paths_rate(main, frames, schema, batch, passes).items()
    }
    rows = result["contenders"]
    result["pipeline_vs_cached"] = round(
        rows["mmoe_tf/mmoe"]["train_examples_per_s"] / rows["mmoe_tf/mmoe@cached"]["train_examples_per_s"], 3
    )
    if with_deepctr:
        ours, peer = rows["mmoe_tf/mmoe"], rows["deepctr/MMOE"]
        result["train_speedup_vs_deepctr_mmoe"] = round(ours["train_examples_per_s"] / peer["train_examples_per_s"], 3)
        # DeepCTR's rounds are bimodal on 2 cores (≈ 90k or 150-200k examples/s at batch 2,048): also against its
        # fastest round, which no median of its hides.
        result["train_speedup_vs_deepctr_mmoe_fastest_round"] = round(
            ours["train_examples_per_s"] / max(peer["train_rounds"]), 3
        )
        result["predict_speedup_vs_deepctr_mmoe"] = round(
            ours["predict_examples_per_s"] / peer["predict_examples_per_s"], 3
        )
        result["auc_delta_vs_deepctr_mmoe"] = {
            t: round(ours["test_auc"][t] - peer["test_auc"][t], 4) for t in ours["test_auc"]
        }
        result["train_ratio_vs_deepctr_shared_bottom"] = round(
            ours["train_examples_per_s"] / rows["deepctr/SharedBottom"]["train_examples_per_s"], 3
        )
        if "deepctr/PLE" in rows:
            mine, theirs = rows["mmoe_tf/ple"], rows["deepctr/PLE"]
            result["ple_train_speedup_vs_deepctr_ple"] = round(
                mine["train_examples_per_s"] / theirs["train_examples_per_s"], 3
            )
            result["ple_auc_delta_vs_deepctr_ple"] = {
                t: round(mine["test_auc"][t] - theirs["test_auc"][t], 4) for t in mine["test_auc"]
            }
    return result


def scaling(args: argparse.Namespace) -> dict:
    """mmoe-tf training examples/s against experts, batch size and number of categorical features."""
    from data import feature_arrays, make_dataset
    from data.generators import simulate_ctr_table

    points: list[tuple[str, int, dict]] = []
    points += [("num_experts", k, {"num_experts": k}) for k in (4, 8, 16, 32)]
    points += [("batch_size", b, {"batch": b}) for b in (256, 1024, 4096)]
    points += [("categorical_features", n, {"n_cat": n}) for n in (4, 16, 64)]
    base_cards = (100, 1_000, 20, 5_000)
    rates: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
    setups = {}
    for axis, value, knobs in points:
        cards = tuple(base_cards[i % 4] for i in range(knobs.get("n_cat", 4)))
        df, schema = simulate_ctr_table(n_rows=args.scaling_rows, cardinalities=cards, seed=1)
        batch = knobs.get("batch", 512)
        model = mmoe_tf_model(
            schema, "mmoe", feature_arrays(df, schema), args, num_experts=knobs.get("num_experts", args.num_experts)
        )
        ds = make_dataset(df, schema, batch_size=batch).cache()
        model.fit(ds, epochs=1, verbose=0)
        setups[(axis, value)] = (model, ds, len(df))
    for r in range(args.rounds):
        for key, (model, ds, n) in setups.items():
            rates[key].append(n / timed(lambda model=model, ds=ds: model.fit(ds, epochs=1, verbose=0)))
        print(
            f"[scaling] round {r + 1}: " + ", ".join(f"{a}={v}: {x[-1]:,.0f}/s" for (a, v), x in rates.items()),
            flush=True,
        )
    table: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for (axis, value), values in rates.items():
        table[axis][str(value)] = round(statistics.median(values))
    experts = table["num_experts"]
    table["experts_32_vs_4_cost_ratio"] = round(experts["4"] / experts["32"], 3)  # time per example ratio
    return dict(table)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not args.skip_deepctr:
        reexec_in_bench_venv()
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras = tf-keras (Keras 2), as mmoe_tf and DeepCTR need
    import tensorflow as tf

    import mmoe_tf
    from data.generators import simulate_ctr_table

    # Process-wide, so every contender (DeepCTR too) trains with the same thread pools.
    threads = mmoe_tf.configure_cpu_threads(args.intra_op_threads, args.inter_op_threads)
    tf.keras.utils.set_random_seed(0)
    df, schema = simulate_ctr_table(n_rows=args.rows, seed=0)
    cut = int(0.8 * len(df))
    frames = {"train": df.iloc[:cut].reset_index(drop=True), "test": df.iloc[cut:].reset_index(drop=True)}
    result: dict[str, Any] = {"benchmark": "peer_throughput", "unit": "examples/s (median of alternated rounds)"}
    by_batch = {}
    for batch in args.batch_sizes:
        by_batch[str(batch)] = run_batch_size(frames, schema, batch, args, with_deepctr=not args.skip_deepctr)
    result["by_batch_size"] = by_batch
    for key in (
        "train_speedup_vs_deepctr_mmoe",
        "train_speedup_vs_deepctr_mmoe_fastest_round",
        "predict_speedup_vs_deepctr_mmoe",
        "auc_delta_vs_deepctr_mmoe",
    ):
        if all(key in v for v in by_batch.values()):
            result[key] = {b: v[key] for b, v in by_batch.items()}
    if args.scaling:
        result["scaling"] = scaling(args)
    result["settings"] = {
        "rows": args.rows,
        "train_rows": cut,
        "batch_sizes": args.batch_sizes,
        "rounds": args.rounds,
        "epochs_per_round": args.epochs,
        "predict_passes_per_round": args.predict_passes,
        "num_experts": args.num_experts,
        "expert_units": args.expert_units,
        "tower_units": args.tower_units,
        "cpus": os.cpu_count(),
        "intra_op_threads": threads[0],
        "inter_op_threads": threads[1],
        "load_average_end": round(os.getloadavg()[0], 2),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "deepctr": None if args.skip_deepctr else DEEPCTR_PIN.split("==")[1],
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
