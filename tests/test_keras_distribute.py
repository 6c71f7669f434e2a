"""Under tf.distribute.MirroredStrategy over 2 logical CPUs, fit / evaluate / predict / train_on_batch match plain
tf.keras on an equivalent functional model. Logical devices must be set before TensorFlow starts, so the case runs
in its own Python process."""

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    sys.path.insert(0, "tests")
    from test_keras_conformance import FEATURES, LABELS, SMALL, SMALL_Y, TASKS, build, twin

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {"replicas": strategy.num_replicas_in_sync}
    with strategy.scope():
        model = build()
        plain = twin(build())
    common = dict(batch_size=16, shuffle=False, epochs=2, verbose=0)
    got, want = model.fit(FEATURES, LABELS, **common).history, plain.fit(FEATURES, LABELS, **common).history
    out["history"] = {k: [got[k], want[k]] for k in want}
    out["history_keys"] = [sorted(got), sorted(want)]
    out["evaluate"] = [model.evaluate(FEATURES, LABELS, verbose=0), plain.evaluate(FEATURES, LABELS, verbose=0)]
    a, b = model.predict(FEATURES, verbose=0), plain.predict(FEATURES, verbose=0)
    out["predict_max_diff"] = max(float(np.abs(a[t] - b[t]).max()) for t in TASKS)
    out["train_on_batch"] = [model.train_on_batch(SMALL, SMALL_Y), plain.train_on_batch(SMALL, SMALL_Y)]
    print(json.dumps(out))
    """
)


def test_mirrored_strategy_over_two_cpus_matches_plain_keras(repo_root):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=repo_root, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    assert out["history_keys"][0] == out["history_keys"][1]
    for key, (got, want) in out["history"].items():
        assert got == pytest.approx(want, rel=2e-4, abs=1e-6), key
    got, want = out["evaluate"]
    assert got == pytest.approx(want, rel=2e-4)
    assert out["predict_max_diff"] < 1e-5
    assert out["train_on_batch"][0] == pytest.approx(out["train_on_batch"][1], rel=2e-4)
