"""The serving soak (``bench/serving_soak.py``) as an opt-in test: REST + gRPC at saturation, reload, corrupt version,
hostile clients.

It runs for minutes, so the default suite skips it (with that reason); ``SERVING_SOAK_SECONDS=120`` runs the full
2-minute soak of the issue, any smaller positive number a shorter one. Every requirement is checked by the script
itself (its last line is a JSON summary with a pass/fail per requirement); this test asserts each one.
"""

import json
import os
import subprocess
import sys

import pytest

SECONDS = float(os.environ.get("SERVING_SOAK_SECONDS", "0"))


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(SECONDS <= 0, reason="soak runs for minutes; set SERVING_SOAK_SECONDS=120 to run it")
def test_soak_rest_and_grpc_with_hot_reload_and_corrupt_version(repo_root):
    # the hard cap leaves a short soak time for the reload, the corrupt version and every hostile attack to end
    args = ["--seconds", str(SECONDS), "--max-seconds", str(max(3 * SECONDS, 300))]
    proc = subprocess.run(
        [sys.executable, "bench/serving_soak.py", *args],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=1700,
    )
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["checks"] == {name: True for name in summary["checks"]}, json.dumps(summary, indent=1)
    assert summary["rest"]["failed"] == summary["grpc"]["failed"] == 0
    assert summary["rest"]["by_version"]["2"] > 0 and summary["grpc"]["by_version"]["2"] > 0
    hostile = summary["hostile"]
    assert set(hostile["slowloris"]) == {"408"} and set(hostile["oversized_trailer"]) == {"431"}
    assert set(hostile["never_reads"]) == {"closed"} and set(hostile["grpc_huge_shape"]) == {"INVALID_ARGUMENT"}
    assert summary["rss_mb"]["growth_pct"] <= 5.0
    assert proc.returncode == 0
