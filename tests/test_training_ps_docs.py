"""docs/scaling.md quotes the latest parameter-server benchmark and fault-check outputs (docs/bench/*.json)."""

import json


def _fmt(value: float) -> str:
    return f"{value:,}"


def test_scaling_doc_quotes_the_benchmark(repo_root):
    bench = json.loads((repo_root / "docs/bench/parameter_server.json").read_text())
    text = (repo_root / "docs/scaling.md").read_text()
    single, cluster, small = bench["single_process"], bench["cluster_2_workers_2_ps"], bench["cluster_small_table"]
    for task in ("click", "satisfaction"):
        row = f"| test AUC {task} | {single['test_auc'][task]} | {cluster['test_auc'][task]} |"
        assert row in text, row
        assert abs(bench["auc_difference"][task]) < 0.005
    ratio = f"{bench['throughput_ratio']:.2f}×"
    row = f"| training examples/s | {single['train_examples_per_s']} | {cluster['train_examples_per_s']} ({ratio}) |"
    assert row in text, row
    shards = cluster["user_id_table_shards"]
    assert [s["task"] for s in shards] == ["ps:0", "ps:1"]
    assert f"{_fmt(shards[0]['shape'][0])} × 16 on ps:0, {_fmt(shards[1]['shape'][0])} × 16 on ps:1" in text
    rss = cluster["peak_rss_mb"]
    quoted = f"ps {_fmt(round(rss['ps:0']))} / {_fmt(round(rss['ps:1']))} MB, workers {round(rss['worker:0'])} / "
    assert quoted in text, quoted
    assert bench["worker_rss_growth_below_table_size"]
    assert f"cluster ran {_fmt(round(small['train_examples_per_s']))} examples/s" in text
    per_row = round(max(bench["rss_bytes_per_id_row"]["ps:0"], bench["rss_bytes_per_id_row"]["ps:1"]))
    assert f"{per_row} B per table row it holds" in text


def test_scaling_doc_quotes_the_fault_check(repo_root):
    faults = json.loads((repo_root / "docs/bench/ps_faults.json").read_text())
    text = (repo_root / "docs/scaling.md").read_text()
    assert faults["all_ok"]
    by_role = {s["role"]: s for s in faults["scenarios"]}
    assert by_role["worker"]["first_exit_code"] == 0 and by_role["worker"]["first_run"]["last_epoch"] == 3
    for role in ("ps", "chief"):
        scenario = by_role[role]
        assert scenario["rerun"]["initial_epoch"] == 1 and scenario["rerun"]["last_epoch"] == 3
        assert f"exit {scenario['first_exit_code']}" in text
