"""No TensorFlow C++ start-up log from ``python -m training`` commands, including ``compare``'s worker processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys

# absl/TSL C++ log lines ("I0000 00:00:… port.cc:153] oneDNN custom operations are on …", "E0000 … cuInit"),
# the absl pre-init banner, and CUDA/oneDNN/CPU-instruction notices.
CPP_LOG = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d:\d\d|absl::InitializeLog|oneDNN custom operations|cuda_|cuInit|"
    r"could not find cuda|This TensorFlow binary is optimized|rebuild TensorFlow with the appropriate compiler",
    re.IGNORECASE | re.MULTILINE,
)


def test_cpp_log_pattern_catches_tensorflows_start_up_lines():
    sample = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1733471234.123456  123 port.cc:153] oneDNN custom operations are on.\n"
    )
    assert len(CPP_LOG.findall(sample)) >= 2
    assert not CPP_LOG.search("compare: 100%|██████████| 4/4 [00:30<00:00]\nINFO training: run …")


def test_compare_with_two_jobs_prints_no_cpp_log(tmp_path, repo_root):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    sets = ["data.max_rows=200", "train.epochs=1", "train.batch_size=64", "model.expert_units=[4]"]
    sets += ["model.tower_units=[4]", "gates.enabled=false"]
    args = [sys.executable, "-m", "training", "compare", "--architectures", "single_task"]
    args += ["--seeds", "2", "--jobs", "2"]  # two fits, one per worker process
    args += ["--output-dir", str(tmp_path / "cmp"), "--no-progress", *[a for s in sets for a in ("--set", s)]]
    proc = subprocess.run(args, cwd=repo_root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Recommended" in proc.stdout
    for name, text in (("stderr", proc.stderr), ("stdout", proc.stdout)):
        lines = [line for line in text.splitlines() if CPP_LOG.search(line)]
        assert not lines, f"C++ log in {name}: {lines[:5]}"


BUILD_TINY_MODEL = """
import sys
import numpy as np
import mmoe_tf
from mmoe_tf.config import ModelConfig
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.task_specs import TaskSpec
config = ModelConfig(features=(FeatureSpec("price", "numeric"),), tasks=(TaskSpec("click"),), num_experts=2,
                     expert_units=(4,), tower_units=(2,))
model = mmoe_tf.build_model(config, adapt_data={"price": np.linspace(0, 1, 16, dtype=np.float32)})
mmoe_tf.save_model(model, sys.argv[1])
"""


def test_serving_export_prints_no_cpp_log(tmp_path, repo_root):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MMOE_TF_STARTUP_LOG")}
    model = tmp_path / "model.keras"
    build = [sys.executable, "-c", BUILD_TINY_MODEL, str(model)]
    subprocess.run(build, cwd=repo_root, env=env, capture_output=True, text=True, timeout=300, check=True)
    args = [sys.executable, "-m", "serving", "export", "--model", str(model), "--base-path", str(tmp_path / "export")]
    proc = subprocess.run(args, cwd=repo_root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "exported mmoe version 1" in proc.stdout
    for name, text in (("stderr", proc.stderr), ("stdout", proc.stdout)):
        lines = [line for line in text.splitlines() if CPP_LOG.search(line)]
        assert not lines, f"C++ log in {name}: {lines[:5]}"
