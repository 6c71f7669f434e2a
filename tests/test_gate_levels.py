"""Gate weights level by level: mean weights per gate and expert, one heatmap per level (PLE, stacked MMoE)."""

import json

import numpy as np
import pytest

from training.gate_levels import level_mean_weights, plot_level_gates

PNG = b"\x89PNG\r\n\x1a\n"
NAMES = {
    "click": ["click/0", "shared/0", "shared/1"],
    "rating": ["rating/0", "shared/0", "shared/1"],
    "shared": ["click/0", "rating/0", "shared/0", "shared/1"],
}


def test_level_mean_weights_place_every_gate_on_the_levels_experts():
    levels = level_mean_weights(
        {
            "level1/click": np.tile([0.2, 0.3, 0.5], (2, 1)),
            "level0/click": np.array([[0.5, 0.25, 0.25], [0.1, 0.4, 0.5]]),
            "level0/rating": np.tile([1.0, 0.0, 0.0], (3, 1)),
            "level0/shared": np.tile([0.1, 0.2, 0.3, 0.4], (2, 1)),
        },
        NAMES,
    )
    assert [lv["level"] for lv in levels] == [0, 1]
    assert levels[0]["experts"] == ["click/0", "rating/0", "shared/0", "shared/1"]
    assert levels[0]["gates"]["click"][1] is None and levels[0]["gates"]["click"][0] == pytest.approx(0.3)
    assert levels[0]["gates"]["rating"] == [None, 1.0, 0.0, 0.0]
    assert levels[0]["gates"]["shared"] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert levels[1]["experts"] == ["click/0", "shared/0", "shared/1"] and list(levels[1]["gates"]) == ["click"]
    with pytest.raises(ValueError, match="level0/nope"):
        level_mean_weights({"level0/nope": np.ones((1, 3)) / 3}, NAMES)
    with pytest.raises(ValueError, match=r"level_weights\['level0/click'\]: expected 3 columns"):
        level_mean_weights({"level0/click": np.ones((1, 2)) / 2}, NAMES)


def test_one_heatmap_per_level(tmp_path):
    levels = level_mean_weights(
        {"level0/click": np.tile([0.2, 0.3, 0.5], (2, 1)), "level1/rating": np.tile([0.6, 0.3, 0.1], (2, 1))}, NAMES
    )
    paths = plot_level_gates(levels, tmp_path)
    assert [p.name for p in paths] == ["gates_level0.png", "gates_level1.png"]
    assert all(p.read_bytes()[:8] == PNG for p in paths)
    assert plot_level_gates([], tmp_path) == []


@pytest.mark.parametrize(
    ("architecture", "extra", "files"),
    [
        ("ple", ["model.num_levels=2", "model.num_shared_experts=1"], ["gates_level0.png", "gates_level1.png"]),
        ("mmoe", ["model.num_experts=3"], []),
    ],
)
def test_train_writes_a_heatmap_per_level(tmp_path, architecture, extra, files):
    from training.cli import main

    out = tmp_path / "run"
    sets = ["data.max_rows=300", "train.epochs=1", "train.batch_size=64", "train.verbose=0", "model.expert_units=[4]"]
    sets += [f"model.architecture={architecture}", *extra]
    assert main(["train", "--output-dir", str(out), "--quiet", *[a for s in sets for a in ("--set", s)]]) == 0
    assert sorted(p.name for p in out.glob("gates_level*.png")) == files
    gates = json.loads((out / "gates.json").read_text())
    if files:
        levels = gates["levels"]
        assert [lv["level"] for lv in levels] == [0, 1]
        assert list(levels[0]["gates"]) == ["click", "satisfaction", "shared"]
        assert levels[0]["experts"] == ["click/0", "satisfaction/0", "shared/0"]
        for lv in levels:
            for weights in lv["gates"].values():
                assert sum(w for w in weights if w is not None) == pytest.approx(1.0, abs=1e-5)
        # the top level's task gates are the ones the main analysis summarises
        assert [w for w in levels[1]["gates"]["click"] if w is not None] == pytest.approx(
            gates["tasks"]["click"]["mean_weights"], abs=1e-5
        )
    else:
        assert "levels" not in gates
    assert gates["summary"]["sentences"] and "What the gates learned:" in (out / "gates.txt").read_text()
