"""Importing mmoe_tf binds tf.keras to the Keras 2 API, even after `import tensorflow`, or fails clearly."""

from __future__ import annotations

import os
import subprocess
import sys


def _python(code: str, repo_root) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=repo_root, env=env, capture_output=True, text=True, timeout=300
    )


def test_env_guard_cases_in_fresh_processes(repo_root):
    """One subprocess per case (TensorFlow binds tf.keras once per process)."""
    first = _python("import mmoe_tf, tensorflow as tf; print(tf.keras.Model.__module__)", repo_root)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.strip().startswith("tf_keras")

    after_tf = _python("import tensorflow as tf; import mmoe_tf; print(tf.keras.Model.__module__)", repo_root)
    assert after_tf.returncode == 0, after_tf.stderr[-2000:]
    assert after_tf.stdout.strip().startswith("tf_keras"), "importing mmoe_tf after tensorflow must still give tf-keras"

    keras3_bound = _python("import tensorflow as tf; tf.keras.layers; import mmoe_tf", repo_root)
    assert keras3_bound.returncode != 0
    assert "KerasVersionError" in keras3_bound.stderr
    assert "TF_USE_LEGACY_KERAS=1" in keras3_bound.stderr and "import mmoe_tf first" in keras3_bound.stderr
