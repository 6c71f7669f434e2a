"""``bench/parameter_server.py`` smoke-run at a tiny size: one process and the local cluster (2 workers, 2 ps).

A file of its own so that the suite's workers (``--dist loadfile``) run it beside ``tests/test_bench.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str], timeout: float = 900) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_parameter_server_runs_one_process_and_the_local_cluster(tmp_path):
    out = tmp_path / "ps.json"
    args = ["--id-rows", "4096", "--small-id-rows", "2048", "--rows", "600", "--epochs", "1", "--batch-size", "128"]
    result = _run(["bench/parameter_server.py", *args, "--shard-bytes", "65536", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert [s["task"] for s in result["cluster_2_workers_2_ps"]["user_id_table_shards"]] == ["ps:0", "ps:1"]
    assert set(result["cluster_2_workers_2_ps"]["peak_rss_mb"]) == {"chief:0", "ps:0", "ps:1", "worker:0", "worker:1"}
    spec = importlib.util.spec_from_file_location("bench_render_docs", REPO / "bench" / "render_docs.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    assert "2,048 × 16 on ps:0, 2,048 × 16 on ps:1" in "\n".join(render.parameter_server(result))
    assert "| 100M | 32 |" in "\n".join(render.ps_capacity(result))
