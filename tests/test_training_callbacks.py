"""Model-selection pieces: monitor direction, Keras-equivalent epoch selection, mean task AUC, tracker."""

import numpy as np
import pytest
import tensorflow as tf

from training.callbacks import (
    MeanTaskAUC,
    MonitorCheck,
    monitor_mode,
    per_task_best_epochs,
    resolve_monitor,
    select_epoch,
)
from training.config import RunConfigError, load_run_config
from training.experiments.selection import MonitorTracker


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("val_mean_task_auc", "max"),
        ("val_satisfaction_auc", "max"),
        ("click_auc", "max"),
        ("val_loss", "min"),
        ("val_click_loss", "min"),
        ("val_y1_mae", "min"),
    ],
)
def test_monitor_mode_from_name(name, mode):
    assert monitor_mode(name) == mode


def test_monitor_without_direction_is_a_config_error():
    with pytest.raises(ValueError, match=r"val_click_score.*cannot infer"):
        monitor_mode("val_click_score")
    with pytest.raises(RunConfigError, match=r"train\.early_stopping\.monitor: monitor 'val_click_score'"):
        load_run_config("training/configs/default.yaml", ["train.early_stopping.monitor=val_click_score"])


def test_default_monitor_is_the_measured_best():
    # docs/results.md §1: val_loss served the scarce task best with MMoE
    assert load_run_config("training/configs/default.yaml").train.early_stopping.monitor == "val_loss"


def test_resolve_monitor_fallbacks():
    assert resolve_monitor("val_mean_task_auc", ["click"]) == "val_mean_task_auc"
    assert resolve_monitor("val_mean_task_auc", []) == "val_loss"
    assert resolve_monitor("val_click_auc", ["click"], has_validation=False) == "click_auc"


def _keras_choice(values, mode, patience):
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(1,))])
    stop = tf.keras.callbacks.EarlyStopping(monitor="m", mode=mode, patience=patience)
    stop.set_model(model)
    stop.on_train_begin()
    for epoch, value in enumerate(values):
        stop.on_epoch_end(epoch, {"m": value})
        if model.stop_training:
            return stop.best_epoch, epoch
    return stop.best_epoch, None


@pytest.mark.parametrize("seed", range(6))
def test_select_epoch_matches_keras_early_stopping(seed):
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.normal(0.0, 1.0, 25)).tolist()
    values[3] = float("nan")
    for mode in ("max", "min"):
        for patience in (1, 2, 4):
            assert select_epoch(values, mode, patience) == _keras_choice(values, mode, patience)


def test_mean_task_auc_needs_every_binary_task():
    cb = MeanTaskAUC(["click", "satisfaction"])
    logs = {"click_auc": 0.9, "satisfaction_auc": 0.7, "val_click_auc": 0.8}
    cb.on_epoch_end(0, logs)
    assert logs["mean_task_auc"] == pytest.approx(0.8)
    assert "val_mean_task_auc" not in logs  # val_satisfaction_auc missing


def test_monitor_check_names_the_logged_metrics():
    check = MonitorCheck("val_sat_auc")
    with pytest.raises(ValueError, match=r"'val_sat_auc' is not a logged metric; logged: \['loss', 'val_loss'\]"):
        check.on_epoch_end(0, {"loss": 1.0, "val_loss": 1.0})


def test_per_task_best_epochs():
    history = {"val_click_auc": [0.7, 0.8, 0.79], "val_y_loss": [3.0, 2.0, 1.0], "val_sat_auc": [0.6, 0.55, 0.5]}
    out = per_task_best_epochs(history, {"click": "binary", "sat": "binary", "y": "regression", "gone": "binary"}, 3)
    assert out["click"] == {
        "metric": "val_click_auc",
        "best_epoch": 2,
        "best_value": 0.8,
        "selected_epoch": 3,
        "value_at_selected_epoch": 0.79,
    }
    assert out["sat"]["best_epoch"] == 1 and out["y"]["best_epoch"] == 3
    assert "gone" not in out


def test_monitor_tracker_stops_when_every_monitor_stopped_and_restores_primary_best():
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(1,))])
    tracker = MonitorTracker(["a_auc", "b_loss"], patience=2, score_fn=lambda m: {"w": float(m.get_weights()[1][0])})
    tracker.set_model(model)
    tracker.on_train_begin()
    a = [0.5, 0.7, 0.6, 0.6, 0.6, 0.6]  # best epoch 1, stops at epoch 3
    b = [5.0, 4.0, 3.0, 2.0, 2.5, 2.5]  # best epoch 3, stops at epoch 5
    for epoch, (x, y) in enumerate(zip(a, b, strict=True)):
        model.layers[0].bias.assign([float(epoch)])
        tracker.on_epoch_end(epoch, {"a_auc": x, "b_loss": y})
        assert model.stop_training == (epoch == 5)
    assert tracker.selected("a_auc") == (1, 3) and tracker.selected("b_loss") == (3, 5)
    assert [s["w"] for s in tracker.scores] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    tracker.on_train_end()
    assert float(model.layers[0].bias.numpy()[0]) == 1.0  # the primary monitor's best epoch
