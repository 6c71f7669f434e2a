"""SavedModel export: layout, signatures, export_info, warm-up records, verification and atomicity.

Reuses the session's single export (``serving.testing.cached_export``: a real ``mmoe_tf.build_model`` MMoE with a
float32, a string (adapted vocabulary inside the model) and an int64 input).
"""

import json

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

import mmoe_tf
from serving import _verify as verify_child
from serving import export as export_mod
from serving.export import ExportVerificationError, export_model, parse_score_weights, prepare_features
from serving.testing import SCORE_WEIGHTS, build_test_model, sample_frame, saved_model_cli_show
from serving.warmup import read_warmup_file


@pytest.fixture(scope="module")
def loaded(export):
    return tf.saved_model.load(str(export.version_dir))


@pytest.fixture(scope="module")
def model(export):
    return mmoe_tf.load_model(export.keras_path)


def _features(samples):
    return {
        "price": tf.constant(samples["price"].to_numpy(np.float32)),
        "device": tf.constant(samples["device"].astype(str).tolist()),
        "category": tf.constant(samples["category"].to_numpy(np.int64)),
    }


def test_layout_is_atomic_and_complete(export):
    model_dir = export.version_dir.parent
    assert sorted(p.name for p in model_dir.iterdir()) == ["1"]  # no .tmp-* left behind
    assert (export.version_dir / "saved_model.pb").is_file()
    assert (export.version_dir / "variables").is_dir()
    extra = export.version_dir / "assets.extra"
    assert sorted(p.name for p in extra.iterdir()) == ["export_info.json", "tf_serving_warmup_requests"]


def test_export_info_records_config_weights_versions_and_check(export, model):
    info = json.loads((export.version_dir / "assets.extra" / "export_info.json").read_text())
    assert info["version"] == 1 and info["model_name"] == "mmoe"
    assert info["signatures"] == ["serving_default", "gates", "ranking_score"]
    assert info["score_weights"] == SCORE_WEIGHTS
    assert info["model_config"] == mmoe_tf.config_of(model).to_dict()
    assert set(info["versions"]) == {"mmoe_tf", "tensorflow", "tf_keras", "numpy", "python"}
    assert info["versions"]["tensorflow"] == tf.__version__
    check = info["verification"]
    assert check["ok"] is True and check["mmoe_tf_imported"] is False
    assert set(check["max_abs_diff"]) == {"serving_default", "gates", "ranking_score"}
    assert max(check["max_abs_diff"].values()) <= 1e-5
    assert info["inputs"] == {
        "price": {"dtype": "float32", "shape": [-1]},
        "device": {"dtype": "string", "shape": [-1]},
        "category": {"dtype": "int64", "shape": [-1]},
    }


def test_signatures_shapes_and_dtypes(loaded):
    assert {"serving_default", "gates", "ranking_score"} <= set(loaded.signatures)
    default = loaded.signatures["serving_default"]
    inputs = default.structured_input_signature[1]
    assert {k: (v.dtype, v.shape.as_list()) for k, v in inputs.items()} == {
        "price": (tf.float32, [None]),
        "device": (tf.string, [None]),
        "category": (tf.int64, [None]),
    }
    assert {k: v.shape.as_list() for k, v in default.structured_outputs.items()} == {
        "click": [None],
        "satisfaction": [None],
    }
    gates = loaded.signatures["gates"].structured_outputs
    assert {k: v.shape.as_list() for k, v in gates.items()} == {"gate_click": [None, 3], "gate_satisfaction": [None, 3]}
    assert list(loaded.signatures["ranking_score"].structured_outputs) == ["score"]


PREDICT = "tensorflow/serving/predict"
RAW_INPUTS = {"price": ("DT_FLOAT", "(-1)"), "device": ("DT_STRING", "(-1)"), "category": ("DT_INT64", "(-1)")}


def test_saved_model_cli_shows_the_signatures_tf_serving_users_expect(export):
    shown = saved_model_cli_show(export.version_dir)
    assert set(shown) == {"serving_default", "ranking_score", "gates", "__saved_model_init_op"}
    for name in ("serving_default", "ranking_score", "gates"):
        assert shown[name]["method"] == PREDICT, name  # answered by Predict and REST :predict
        assert shown[name]["inputs"] == RAW_INPUTS, name  # raw features, any batch size
    assert shown["serving_default"]["outputs"] == {"click": ("DT_FLOAT", "(-1)"), "satisfaction": ("DT_FLOAT", "(-1)")}
    assert shown["ranking_score"]["outputs"] == {"score": ("DT_FLOAT", "(-1)")}
    assert shown["gates"]["outputs"] == {
        "gate_click": ("DT_FLOAT", "(-1, 3)"),  # one weight per expert (3 in the test model)
        "gate_satisfaction": ("DT_FLOAT", "(-1, 3)"),
    }


def test_signatures_match_keras_model(loaded, model, export):
    feats = _features(export.samples)
    keras_out = model(feats, training=False)
    out = loaded.signatures["serving_default"](**feats)
    for name in ("click", "satisfaction"):
        np.testing.assert_allclose(out[name].numpy(), keras_out[name].numpy()[:, 0], atol=1e-5, rtol=0)
        assert np.all((out[name].numpy() > 0) & (out[name].numpy() < 1))
    score = loaded.signatures["ranking_score"](**feats)["score"].numpy()
    want = sum(w * keras_out[k].numpy()[:, 0] for k, w in SCORE_WEIGHTS.items())
    np.testing.assert_allclose(score, want, atol=1e-5, rtol=0)
    gates = loaded.signatures["gates"](**feats)
    keras_gates = mmoe_tf.gate_model(model)(feats, training=False)
    np.testing.assert_allclose(gates["gate_click"].numpy(), keras_gates["click"].numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(gates["gate_satisfaction"].numpy().sum(axis=1), 1.0, atol=1e-5)


def test_unseen_and_missing_values_do_not_crash(loaded):
    out = loaded.signatures["serving_default"](
        price=tf.constant([np.nan, 1e9], tf.float32),
        device=tf.constant(["", "brand-new-device"]),
        category=tf.constant([-5, 10**12], tf.int64),
    )
    assert np.all(np.isfinite(out["click"].numpy()))


def test_warmup_records_are_prediction_logs_from_real_rows(export, loaded):
    logs = read_warmup_file(export.version_dir / "assets.extra" / "tf_serving_warmup_requests")
    assert all(isinstance(entry, prediction_log_pb2.PredictionLog) for entry in logs)
    requests = [entry.predict_log.request for entry in logs]
    # one request per signature and batch size (1 and 8 of the 64 sample rows)
    sizes = [(r.model_spec.signature_name, tf.make_ndarray(r.inputs["price"]).shape[0]) for r in requests]
    assert sizes == [(s, n) for s in ("serving_default", "gates", "ranking_score") for n in (1, 8)]
    assert {r.model_spec.name for r in requests} == {"mmoe"}
    first = requests[0]
    arrays = {k: tf.make_ndarray(v) for k, v in first.inputs.items()}
    assert set(arrays) == {"price", "device", "category"}
    assert arrays["category"].dtype == np.int64 and arrays["price"].dtype == np.float32
    assert arrays["device"][0].decode() == export.samples["device"].iloc[0]
    out = loaded.signatures[first.model_spec.signature_name](**{k: tf.constant(v) for k, v in arrays.items()})
    assert len(next(iter(out.values())).numpy()) == len(arrays["price"])


def test_failed_export_leaves_nothing_in_place(model, tmp_path, monkeypatch):
    def failing_verify(*args, **kwargs):
        raise ExportVerificationError("simulated mismatch")

    monkeypatch.setattr(export_mod, "verify_export", failing_verify)
    with pytest.raises(ExportVerificationError, match="simulated mismatch"):
        export_model(model, tmp_path, "mmoe")
    assert list((tmp_path / "mmoe").iterdir()) == []


def test_architecture_without_gates_has_no_gates_signature(tmp_path, monkeypatch):
    config = mmoe_tf.config_of(build_test_model()).replace(architecture="shared_bottom")
    plain = mmoe_tf.build_model(config, adapt_data=sample_frame(64), compile=False)
    seen = {}

    def inspect_verify(version_dir, features, expected, tolerance):  # stands in for the child; inspects the model
        seen["signatures"] = sorted(tf.saved_model.load(str(version_dir)).signatures)
        seen["gates"] = expected["gates"]
        return {"ok": True}

    monkeypatch.setattr(export_mod, "verify_export", inspect_verify)
    path = export_model(plain, tmp_path, "plain", version=7)
    assert path == tmp_path / "plain" / "7"
    assert seen == {"signatures": ["ranking_score", "serving_default"], "gates": {}}
    shown = saved_model_cli_show(path)
    assert sorted(shown) == ["__saved_model_init_op", "ranking_score", "serving_default"]
    for name in ("serving_default", "ranking_score"):
        assert shown[name]["method"] == PREDICT and shown[name]["inputs"] == RAW_INPUTS
    info = json.loads((path / "assets.extra" / "export_info.json").read_text())
    assert info["signatures"] == ["serving_default", "ranking_score"]
    assert info["score_weights"] == {"click": 1.0, "satisfaction": 1.0}


def _verify_args(export, tmp_path, expected, tolerance="1e-5"):
    npz = tmp_path / "samples.npz"
    feats = {
        "in__price": export.samples["price"].to_numpy(np.float32),
        "in__device": export.samples["device"].to_numpy(str),
        "in__category": export.samples["category"].to_numpy(np.int64),
    }
    np.savez(npz, **feats, **{f"out__{k}": v for k, v in expected.items()})
    return [str(export.version_dir), str(npz), json.dumps(SCORE_WEIGHTS), tolerance]


def test_verification_samples_keep_non_ascii_strings(tmp_path):
    device = np.array([b"caf\xc3\xa9", b"ios"], dtype=object)
    export_mod._write_npz(tmp_path / "s.npz", {"in": {"device": device}})
    assert np.load(tmp_path / "s.npz")["in__device"].tolist() == ["café", "ios"]


def test_verify_child_flags_mmoe_tf_and_mismatches(export, tmp_path, capsys):
    # Run in this process (mmoe_tf is imported here), so the child's own guard must fail it.
    right = {k: export.expected[k].to_numpy() for k in ("click", "satisfaction")}
    assert verify_child.main(_verify_args(export, tmp_path, right)) == 1
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["mmoe_tf_imported"] is True and report["max_abs_diff"]["serving_default"] <= 1e-5
    wrong = {k: v + 0.01 for k, v in right.items()}
    assert verify_child.main(_verify_args(export, tmp_path, wrong)) == 1
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["max_abs_diff"]["serving_default"] > 0.009 and report["ok"] is False
    assert verify_child.max_abs_diff(np.array([np.nan, 1.0]), np.array([np.nan, 1.0])) == 0.0
    assert verify_child.max_abs_diff(np.array([np.nan]), np.array([0.0])) == float("inf")


def test_export_argument_errors(export, model, tmp_path):
    with pytest.raises(FileExistsError, match="version 1 already exists"):
        export_model(model, export.base_path, "mmoe", version=1)
    with pytest.raises(ValueError, match="model_name"):
        export_model(model, tmp_path, "a/b")
    with pytest.raises(ValueError, match="unknown output"):
        export_model(model, tmp_path, "mmoe", score_weights={"clicks": 1.0})
    with pytest.raises(ValueError, match="input 'category' is missing"):
        export_model(model, tmp_path, "mmoe", sample_features=export.samples[["price", "device"]])
    assert not any((tmp_path / "mmoe").iterdir())


def test_prepare_features_converts_dtypes_and_missing_strings(loaded):
    import pandas as pd

    specs = loaded.signatures["serving_default"].structured_input_signature[1]
    frame = pd.DataFrame({"price": [1, None], "device": ["ios", np.nan], "category": [3, 4]})
    feats = prepare_features(frame, specs)
    assert feats["price"].dtype == np.float32 and np.isnan(feats["price"][1])
    assert feats["device"].tolist() == [b"ios", b""]
    assert feats["category"].dtype == np.int64
    with pytest.raises(ValueError, match="input 'category' cannot become int64"):
        prepare_features(frame.assign(category=[1, None]), specs)


def test_parse_score_weights():
    assert parse_score_weights("click=1, satisfaction=2.5") == {"click": 1.0, "satisfaction": 2.5}
    assert parse_score_weights(None) is None
    for bad in ("click", "click=x", "=1"):
        with pytest.raises(ValueError, match="name=number"):
            parse_score_weights(bad)
