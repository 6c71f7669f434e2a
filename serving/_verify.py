"""Child process of the export check: load a SavedModel WITHOUT mmoe_tf and compare its predictions.

Usage: ``python -m serving._verify VERSION_DIR SAMPLES.npz SCORE_WEIGHTS_JSON TOLERANCE``. ``SAMPLES.npz`` holds
``in__<input>``, ``out__<output>`` and ``gate__<output>`` arrays. Prints one JSON line; exit code 1 on mismatch.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tensorflow as tf

from serving.model_store import Servable


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b|; NaN in both counts as equal, NaN in one as infinitely different."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    both = np.isnan(a) & np.isnan(b)
    diff = np.where(both, 0.0, np.abs(a - b))
    return float(np.max(np.nan_to_num(diff, nan=np.inf), initial=0.0))


def main(argv: list[str]) -> int:
    version_dir, npz_path, weights_json, tolerance = argv[0], argv[1], argv[2], float(argv[3])
    data = np.load(npz_path)
    groups: dict[str, dict[str, np.ndarray]] = {"in": {}, "out": {}, "gate": {}}
    for key in data.files:
        prefix, name = key.split("__", 1)
        groups[prefix][name] = data[key]
    servable = Servable("verify", 0, version_dir)  # replays the warm-up records, as TF Serving does
    dtypes = servable.signature_inputs("serving_default")
    features = {
        k: np.char.encode(v, "utf-8").astype(object) if dtypes[k] == "string" else v for k, v in groups["in"].items()
    }
    report: dict = {"signatures": sorted(servable.signatures), "warmup_records": servable.warmup_count}
    diffs = {}
    outputs = servable.run("serving_default", features)
    if sorted(outputs) != sorted(groups["out"]):
        report["error"] = f"serving_default outputs {sorted(outputs)} != Keras outputs {sorted(groups['out'])}"
    else:
        diffs["serving_default"] = max(max_abs_diff(outputs[k], groups["out"][k]) for k in outputs)
    if "ranking_score" in servable.signatures:
        weights = json.loads(weights_json)
        expected = sum(w * groups["out"][k].astype(np.float32) for k, w in weights.items())
        score = servable.run("ranking_score", features)["score"]
        diffs["ranking_score"] = max_abs_diff(score, expected)
    if groups["gate"]:
        gates = servable.run("gates", features)
        diffs["gates"] = max(max_abs_diff(gates.get(k, np.nan), groups["gate"][k]) for k in groups["gate"])
    report["max_abs_diff"] = diffs
    report["mmoe_tf_imported"] = "mmoe_tf" in sys.modules
    report["tensorflow"] = tf.__version__
    ok = "error" not in report and not report["mmoe_tf_imported"] and all(d <= tolerance for d in diffs.values())
    report["ok"] = ok
    print(json.dumps(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
