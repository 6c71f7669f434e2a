"""The speed figures in docs/performance.md are rendered from the benchmark outputs, and the bench scripts run."""

import json
import subprocess
import sys


def test_performance_doc_tables_match_the_bench_json(repo_root):
    done = subprocess.run(
        [sys.executable, "bench/render_performance.py", "--check"], cwd=repo_root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_bench_outputs_hold_the_issue_figures(repo_root):
    peer = json.loads((repo_root / "docs/bench/peer_throughput.json").read_text())
    for batch in ("512", "2048"):
        result = peer["by_batch_size"][batch]
        assert {"mmoe_tf/mmoe", "mmoe_tf/shared_bottom", "deepctr/MMOE", "deepctr/SharedBottom"} <= set(
            result["contenders"]
        )
        for key in ("train_speedup_vs_deepctr_mmoe", "predict_speedup_vs_deepctr_mmoe", "auc_delta_vs_deepctr_mmoe"):
            assert key in result
        assert all(r["ops_per_train_step"] > 0 for r in result["contenders"].values())
    assert peer["settings"]["rounds"] >= 3 and peer["settings"]["epochs_per_round"] >= 3
    assert set(peer["scaling"]["num_experts"]) == {"4", "8", "16", "32"}


def test_gate_mixing_bench_runs_and_checks_its_formulations(repo_root):
    done = subprocess.run(
        [
            sys.executable,
            "bench/gate_mixing.py",
            "--batch-size",
            "16",
            "--experts",
            "3",
            "--units",
            "4",
            "--repeats",
            "2",
            "--rounds",
            "1",
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result["us_per_pass"]) == {"einsum", "batched_matmul", "multiply_sum (TaskGate)", "repeat_flat"}
