"""Importing mmoe_tf binds tf.keras to the Keras 2 API, even after `import tensorflow`, or fails clearly."""

from __future__ import annotations

import os
import subprocess
import sys


def _python(code: str, repo_root) -> subprocess.CompletedProcess:
    unset = ("TF_USE_LEGACY_KERAS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in unset}
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


def test_configure_cpu_threads_before_and_after_tensorflow_starts(repo_root):
    """Defaults to one thread per op, reads the environment, and refuses clearly once the runtime has started."""
    code = """
import mmoe_tf, tensorflow as tf
print(mmoe_tf.configure_cpu_threads())
print(tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads())
tf.constant(1.0) + 1.0
print(mmoe_tf.configure_cpu_threads())  # unchanged settings: nothing to do
try:
    mmoe_tf.configure_cpu_threads(intra_op_threads=2)
except RuntimeError as err:
    print("refused:", err)
"""
    result = _python(code, repo_root)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[:3] == ["(1, 0)", "1 0", "(1, 0)"]
    assert lines[3].startswith("refused:") and "already started" in lines[3] and "TF_NUM_INTRAOP_THREADS" in lines[3]

    from_env = subprocess.run(
        [sys.executable, "-c", "import mmoe_tf; print(mmoe_tf.configure_cpu_threads())"],
        cwd=repo_root,
        env={**os.environ, "TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert from_env.returncode == 0, from_env.stderr[-2000:]
    assert from_env.stdout.strip() == "(2, 1)"


def test_configure_cpu_threads_rejects_bad_counts(monkeypatch):
    import pytest

    import mmoe_tf

    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="intra_op_threads must be a whole number"):
            mmoe_tf.configure_cpu_threads(intra_op_threads=bad)
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "many")
    with pytest.raises(ValueError, match="TF_NUM_INTEROP_THREADS='many'"):
        mmoe_tf.configure_cpu_threads()


def test_build_and_load_choose_one_thread_per_op_only_when_nothing_else_has(repo_root, tmp_path):
    """build_model / load_model set (1, 0) in a fresh process, and defer to every earlier choice."""
    code = f"""
import os, mmoe_tf, tensorflow as tf
from mmoe_tf.threads import adopt_default_cpu_threads
pools = tf.config.threading
threads = lambda: (pools.get_intra_op_parallelism_threads(), pools.get_inter_op_parallelism_threads())
os.environ["TF_NUM_INTRAOP_THREADS"] = "0"
print(adopt_default_cpu_threads(), threads())  # the environment decides
del os.environ["TF_NUM_INTRAOP_THREADS"]
tf.config.threading.set_inter_op_parallelism_threads(1)
print(adopt_default_cpu_threads(), threads())  # the user decided
tf.config.threading.set_inter_op_parallelism_threads(0)
config = mmoe_tf.ModelConfig(features=(mmoe_tf.FeatureSpec("user", "hashed", dtype="string"),), expert_units=(16,))
model = mmoe_tf.build_model(config)
print(threads())
mmoe_tf.save_model(model, {str(tmp_path / "m.keras")!r})
"""
    built = _python(code, repo_root)
    assert built.returncode == 0, built.stderr[-2000:]
    assert built.stdout.strip().splitlines() == ["None (0, 0)", "None (0, 1)", "(1, 0)"]

    loaded = _python(
        f"import mmoe_tf, tensorflow as tf; mmoe_tf.load_model({str(tmp_path / 'm.keras')!r}); "
        "print(tf.config.threading.get_intra_op_parallelism_threads())",
        repo_root,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip() == "1"

    ran_first = _python(  # a notebook that ran TensorFlow first keeps its pools, and gets no error
        "import mmoe_tf, tensorflow as tf; from mmoe_tf.threads import adopt_default_cpu_threads; "
        "tf.constant(1.0) + 1.0; "
        "print(adopt_default_cpu_threads(), tf.config.threading.get_intra_op_parallelism_threads())",
        repo_root,
    )
    assert ran_first.returncode == 0, ran_first.stderr[-2000:]
    assert ran_first.stdout.strip() == "None 0"
