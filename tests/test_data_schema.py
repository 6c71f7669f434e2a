"""Schema: YAML/JSON round trips, errors naming the bad key, ModelConfig bridge."""

import pytest

from data.schema import Schema
from mmoe_tf.config import ModelConfig
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.task_specs import TaskSpec


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema(
        features=(
            FeatureSpec("price", "numeric", default=0.0),
            FeatureSpec("device", "categorical", dtype="string", vocabulary=("mobile", "desktop"), embedding_dim=4),
            FeatureSpec("hour", "categorical", dtype="int64"),
            FeatureSpec("user", "hashed", column="user_id", num_bins=64),
        ),
        tasks=(TaskSpec("click"), TaskSpec("rating", "regression", loss="huber", label_column="stars")),
        timestamp_column="ts",
        id_columns=("request_id",),
        extra_columns=("note",),
    )


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_file_round_trip(schema, tmp_path, suffix):
    path = schema.to_file(tmp_path / f"schema{suffix}")
    loaded = Schema.from_file(path)
    assert loaded == schema
    assert loaded.feature("user").column == "user_id"
    assert loaded.task("rating").loss == "huber"


def test_compact_yaml_omits_defaults(schema, tmp_path):
    text = schema.to_file(tmp_path / "s.yaml").read_text()
    assert "num_oov_buckets" not in text  # left at its default
    assert "num_bins: 64" in text


def test_model_config_uses_features_and_tasks(schema):
    config = schema.model_config(num_experts=3)
    assert isinstance(config, ModelConfig)
    assert config.features == schema.features and config.tasks == schema.tasks
    assert config.num_experts == 3


def test_columns_views(schema):
    assert schema.columns == ("price", "device", "hour", "user_id", "click", "stars", "ts", "request_id", "note")
    assert schema.label_columns == ("click", "stars")


def test_unknown_top_level_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("features: [{name: a, kind: numeric}]\ntasks: [{name: click}]\ntimestamp: ts\n")
    with pytest.raises(ValueError, match=r"bad.yaml.*unknown key\(s\) \['timestamp'\]"):
        Schema.from_file(path)


def test_bad_feature_field_is_named_with_its_position(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(
        '{"features": [{"name": "a", "kind": "numeric"}, {"name": "b", "kind": "numerc"}], "tasks": [{"name": "c"}]}'
    )
    with pytest.raises(ValueError, match=r"features\[1\].*'kind'.*'numerc'"):
        Schema.from_file(path)


def test_unknown_feature_key_is_named():
    with pytest.raises(ValueError, match=r"features\[0\].*unknown key\(s\) \['size'\]"):
        Schema.from_dict({"features": [{"name": "a", "kind": "numeric", "size": 3}], "tasks": [{"name": "c"}]})


def test_missing_tasks_key_is_named():
    with pytest.raises(ValueError, match="field 'tasks' is missing"):
        Schema.from_dict({"features": [{"name": "a", "kind": "numeric"}]})


def test_column_used_twice_is_rejected():
    with pytest.raises(ValueError, match=r"column 'a' is used both as a feature column and as a label column"):
        Schema(features=(FeatureSpec("a", "numeric"),), tasks=(TaskSpec("click", label_column="a"),))


def test_bad_suffix():
    with pytest.raises(ValueError, match=r"unsupported suffix '\.txt'"):
        Schema(features=(FeatureSpec("a", "numeric"),), tasks=(TaskSpec("c"),)).to_file("schema.txt")
