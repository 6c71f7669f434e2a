"""tf.distribute strategies for training: none, mirrored (one machine), multi_worker and parameter_server (TF_CONFIG).

Create the strategy before any other TensorFlow work in the process (multi-worker collectives and
logical CPU devices can only be configured before TensorFlow initialises its runtime), build and
compile the model inside ``strategy.scope()``, and let only the chief write the final artifacts.

Example:
    >>> strategy = make_strategy("none")
    >>> with strategy.scope():
    ...     model = build_model(config)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from collections.abc import Callable
from typing import Any

import tensorflow as tf

import mmoe_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before tensorflow is used)
from training.config import DISTRIBUTE_KINDS as STRATEGIES


def configure_logical_cpus(count: int) -> None:
    """Split the first physical CPU into ``count`` logical devices (before TensorFlow initialises).

    Raises:
        RuntimeError: TensorFlow's runtime is already initialised with a different device layout.
    """
    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current is not None and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as err:
        raise RuntimeError(
            f"train.logical_cpus={count}: TensorFlow is already initialised, so logical CPU devices can no longer "
            "be configured; set them at the start of a fresh process (e.g. run the CLI in a subprocess)"
        ) from err


def make_strategy(
    kind: str = "none",
    logical_cpus: int | None = None,
    ps_shard_policy: str = "min_size",
    ps_shard_bytes: int = 1 << 20,
) -> tf.distribute.Strategy:
    """Return the distribution strategy for ``train.distribute``.

    Args:
        kind: ``none`` (default strategy), ``mirrored`` (all local GPUs, else all logical CPUs),
            ``multi_worker`` (``MultiWorkerMirroredStrategy``; needs ``TF_CONFIG``) or ``parameter_server``
            (``ParameterServerStrategy``; needs ``TF_CONFIG``; in a ``worker``/``ps`` task this call serves until
            the process is stopped, see :mod:`training.parameter_server`).
        logical_cpus: If set, first split the CPU into this many logical devices.
        ps_shard_policy: ``parameter_server`` only: how variables are split across ps tasks.
        ps_shard_bytes: ``parameter_server`` only: the shard policy's size in bytes.

    Raises:
        ValueError: unknown ``kind`` or a missing/invalid ``TF_CONFIG`` for ``multi_worker``.
    """
    if kind not in STRATEGIES:
        raise ValueError(f"train.distribute: unknown strategy {kind!r}; expected one of {STRATEGIES}")
    if logical_cpus:
        configure_logical_cpus(logical_cpus)
    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        cross_ops = None if gpus else tf.distribute.ReductionToOneDevice(reduce_to_device=devices[0])
        return tf.distribute.MirroredStrategy(devices=devices, cross_device_ops=cross_ops)
    if kind == "parameter_server":
        from training import parameter_server

        return parameter_server.make_strategy(ps_shard_policy, ps_shard_bytes)
    _check_tf_config()
    return tf.distribute.MultiWorkerMirroredStrategy()


def _check_tf_config() -> None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "train.distribute=multi_worker needs the TF_CONFIG environment variable, e.g. "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
        )
    try:
        tf_config = json.loads(raw)
        workers = tf_config["cluster"]["worker"]
        task = tf_config["task"]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"TF_CONFIG: expected cluster.worker (list) and task.type/index, got {raw!r} ({err})"
        ) from None
    if not 0 <= index < len(workers) + len(tf_config["cluster"].get("chief", [])):
        raise ValueError(f"TF_CONFIG: task.index {index} is out of range for {len(workers)} worker(s)")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True unless this process is a non-chief worker of a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None or task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def write_dir(output_dir: str | pathlib.Path, strategy: tf.distribute.Strategy) -> pathlib.Path:
    """Where this process writes its own files: ``output_dir`` for the chief, a fresh temp dir otherwise."""
    if is_chief(strategy):
        return pathlib.Path(output_dir)
    task_id = getattr(strategy.cluster_resolver, "task_id", "x")
    return pathlib.Path(tempfile.mkdtemp(prefix=f"mmoe-worker{task_id}-"))


def strategy_for(train: Any) -> tf.distribute.Strategy:
    """:func:`make_strategy` for a run config's ``train`` section.

    Raises:
        ValueError: ``train.baseline`` with ``parameter_server`` (the baseline would be saved sharded; not supported).
    """
    if train.distribute == "parameter_server" and train.baseline:
        raise ValueError(
            "train.baseline: not supported with train.distribute=parameter_server; train the baseline in its own run"
        )
    return make_strategy(train.distribute, train.logical_cpus, train.ps_shard_policy, train.ps_shard_bytes)


def fit_input(strategy: tf.distribute.Strategy, make_dataset: Callable[[], tf.data.Dataset]) -> Any:
    """``fit``'s training input: ``make_dataset()``, or under ``parameter_server`` a per-worker ``DatasetCreator``."""
    from training import parameter_server

    if parameter_server.is_parameter_server(strategy):
        return parameter_server.per_worker_input(strategy, make_dataset)
    return make_dataset()


def unsharded(
    strategy: tf.distribute.Strategy,
    model: tf.keras.Model,
    build: Callable[[], tf.keras.Model],
    scratch: str | pathlib.Path,
) -> tf.keras.Model:
    """``model``, or under ``parameter_server`` a local copy holding its variables whole (to save, evaluate, export)."""
    from training import parameter_server

    if parameter_server.is_parameter_server(strategy):
        return parameter_server.unsharded_copy(model, build, scratch)
    return model
