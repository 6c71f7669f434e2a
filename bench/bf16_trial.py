"""One-off trial (issue 29): ``model.precision: mixed_bfloat16`` against ``float32``, speed and quality.

``speed``: training CPU time per example and examples/s of ``model.fit`` on a dict of numpy arrays (the notebook
path), 8 experts x ``--units``, towers 32, 16 numeric + 4 categorical features (embeddings 8), batch 2,048, after
an untimed warm-up; every (round, size, precision) in its own process, the two precisions alternated per round.

``quality``: test AUCs of ``python -m training train`` at the default config on the embedded sample, one seed
(``train.seed``, ``data.split.seed``, ``model.seed``) per pair, the two precisions alternated, paired differences
with a 95 % t-interval.

The last line printed is one JSON object.

Example:
    python bench/bf16_trial.py speed --rounds 5 --rows 49152
    python bench/bf16_trial.py quality --seeds 10 --output-dir /tmp/bf16_quality
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

PRECISIONS = ("float32", "mixed_bfloat16")
REPO = pathlib.Path(__file__).resolve().parents[1]


def _one_fit(precision: str, units: int, rows: int, batch: int) -> dict:
    import mmoe_tf
    from mmoe_tf.config import FeatureSpec, ModelConfig

    rng = np.random.default_rng(0)
    feats = {f"n{i}": rng.normal(size=rows).astype(np.float32) for i in range(16)}
    feats.update({f"c{i}": rng.integers(0, 1000, rows).astype(np.int64) for i in range(4)})
    logit = feats["n0"] + 0.5 * feats["n1"] - 0.3 * (feats["c0"] % 7 == 0)
    labels = {
        "click": (logit + rng.normal(size=rows) > 0).astype(np.float32),
        "satisfaction": (feats["n2"] - feats["n0"] + rng.normal(size=rows) > 0).astype(np.float32),
    }
    specs = [FeatureSpec(f"n{i}", "numeric") for i in range(16)]
    specs += [FeatureSpec(f"c{i}", "categorical", dtype="int64", embedding_dim=8) for i in range(4)]
    config = ModelConfig(
        features=tuple(specs), num_experts=8, expert_units=(units,), tower_units=(32,), precision=precision, seed=0
    )
    model = mmoe_tf.build_model(config, adapt_data=feats)
    warm = slice(0, batch * 4)
    warm_feats, warm_labels = {k: v[warm] for k, v in feats.items()}, {k: v[warm] for k, v in labels.items()}
    model.fit(warm_feats, warm_labels, batch_size=batch, verbose=0)
    cpu, wall = time.process_time(), time.perf_counter()
    model.fit(feats, labels, batch_size=batch, epochs=1, shuffle=True, verbose=0)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_us_per_example": 1e6 * cpu / rows, "examples_per_s": rows / wall}


def speed(args: argparse.Namespace) -> dict:
    runs = []
    for round_ in range(args.rounds):
        for units in args.units:
            for precision in PRECISIONS if round_ % 2 == 0 else PRECISIONS[::-1]:
                cmd = [sys.executable, __file__, "one", precision, str(units), str(args.rows), str(args.batch_size)]
                env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO, env=env).stdout
                load = os.getloadavg()[0]
                runs.append({"round": round_, "units": units, "precision": precision, "load": load})
                runs[-1].update(json.loads(out.strip().splitlines()[-1]))
    summary = {}
    for units in args.units:
        by = {(r["round"], r["precision"]): r for r in runs if r["units"] == units}
        ratios = [
            by[(i, "mixed_bfloat16")]["cpu_us_per_example"] / by[(i, "float32")]["cpu_us_per_example"]
            for i in range(args.rounds)
        ]
        summary[f"8x{units}"] = {"bf16_over_float32_cpu_per_round": ratios, "median": float(np.median(ratios))}
    return {"runs": runs, "summary": summary}


def quality(args: argparse.Namespace) -> dict:
    from scipy import stats

    sys.path.insert(0, str(REPO))

    from training.config import load_run_config
    from training.runner import train

    records = []
    for seed in range(args.seeds):
        for precision in PRECISIONS if seed % 2 == 0 else PRECISIONS[::-1]:
            folder = pathlib.Path(args.output_dir) / f"{precision}-seed{seed}"
            overrides = [f"model.precision={precision}", f"train.seed={seed}", f"data.split.seed={seed}"]
            overrides += [f"model.seed={seed}", "train.verbose=0", "gates.enabled=false", f"output_dir={folder}"]
            overrides += args.overrides
            test = train(load_run_config(None, overrides)).report["splits"]["test"]
            records.append({"precision": precision, "seed": seed, **{t: test[t]["auc"] for t in args.tasks}})
    by = {(r["precision"], r["seed"]): r for r in records}
    summary = {}
    for task in args.tasks:
        d = np.array([by[("mixed_bfloat16", s)][task] - by[("float32", s)][task] for s in range(args.seeds)])
        half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
        summary[task] = {"mean_difference": float(d.mean()), "ci95": [d.mean() - half, d.mean() + half]}
    return {"records": records, "summary": summary}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "one":
        precision, units, rows, batch = sys.argv[2], *map(int, sys.argv[3:6])
        print(json.dumps(_one_fit(precision, units, rows, batch)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("speed")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--rows", type=int, default=49152)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--units", type=int, nargs="+", default=[64, 256])
    q = sub.add_parser("quality")
    q.add_argument("--seeds", type=int, default=10)
    q.add_argument("--tasks", nargs="+", default=["click", "satisfaction"])
    q.add_argument("--output-dir", default="output/bf16_trial")
    q.add_argument("--set", dest="overrides", action="append", default=[], help="run config override KEY=VALUE")
    args = parser.parse_args()
    print(json.dumps(speed(args) if args.command == "speed" else quality(args)))


if __name__ == "__main__":
    main()
