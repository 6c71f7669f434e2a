"""Parameter-server training: ``train.distribute: parameter_server`` driven by ``TF_CONFIG``.

TensorFlow's ``ParameterServerStrategy``: the model's variables live on ``ps`` tasks, embedding tables (and any
variable of at least ``train.ps_shard_bytes``) split across them by a ``tf.distribute.experimental.partitioners``
partitioner; ``worker`` tasks run training steps, pulling the rows a batch touches and pushing gradients; the
``chief`` task (the coordinator) runs ``model.fit`` and schedules steps on the workers through a
``ClusterCoordinator``, which re-runs the steps of a failed worker on the others.

Every task runs the same command with its own ``TF_CONFIG``::

    {"cluster": {"chief": ["host0:2222"], "worker": ["host1:2222", "host2:2222"], "ps": ["host3:2222", "host4:2222"]},
     "task": {"type": "worker", "index": 0}}

``worker`` and ``ps`` tasks start a ``tf.distribute.Server`` and serve until they are stopped
(:func:`serve_forever`); the ``chief`` gets the strategy (:func:`make_strategy`) and trains.

In-model preprocessing stays in the model: ``StringLookup``/``IntegerLookup`` tables built in the strategy's scope
are replicated to every worker by the strategy, ``Hashing`` has no state and ``Normalization``'s statistics are
small non-trainable variables on a ps; so the exported SavedModel still takes raw features.

Example:
    >>> strategy = make_strategy("min_size", 1 << 20)  # doctest: +SKIP  (needs TF_CONFIG with task.type chief)
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import tempfile
from collections.abc import Callable
from typing import Any

import tensorflow as tf
from tensorflow.python.distribute.sharded_variable import ShardedVariable  # no public name for the type

import mmoe_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before tensorflow is used)
from training.config import PS_SHARD_POLICIES as SHARD_POLICIES

ROLES = ("chief", "worker", "ps")


def read_tf_config() -> dict[str, Any]:
    """``TF_CONFIG`` parsed and checked for a parameter-server cluster.

    Raises:
        ValueError: missing, unparsable, or without ``chief`` (1), ``worker`` (≥ 1) and ``ps`` (≥ 1) tasks, or a
            ``task`` that is not one of them.
    """
    raw = os.environ.get("TF_CONFIG")
    example = (
        '{"cluster": {"chief": ["host0:2222"], "worker": ["host1:2222"], "ps": ["host2:2222"]}, '
        '"task": {"type": "chief", "index": 0}}'
    )
    if not raw:
        raise ValueError(f"train.distribute=parameter_server needs the TF_CONFIG environment variable, e.g. {example}")
    try:
        tf_config = json.loads(raw)
        cluster, task = tf_config["cluster"], tf_config["task"]
        role, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"TF_CONFIG: expected cluster and task.type/index, got {raw!r} ({err})") from None
    counts = {name: len(cluster.get(name) or []) for name in ROLES}
    if counts["chief"] != 1 or counts["worker"] < 1 or counts["ps"] < 1:
        raise ValueError(
            f"TF_CONFIG: a parameter-server cluster needs 1 chief, >= 1 worker and >= 1 ps task, got {counts}"
        )
    if role not in ROLES or not 0 <= index < counts[role]:
        raise ValueError(f"TF_CONFIG: task {role}:{index} is not in the cluster {counts}")
    return tf_config


def make_partitioner(policy: str, shard_bytes: int, num_ps: int) -> Any:
    """The ``variable_partitioner`` for ``train.ps_shard_policy`` over ``num_ps`` ps tasks.

    Args:
        policy: ``min_size`` (default): variables of at least ``shard_bytes`` split into up to ``num_ps`` shards of
            at least ``shard_bytes`` each, smaller ones whole; ``max_size``: every variable split into shards of at
            most ``shard_bytes`` (many shards for a big table); ``fixed``: every variable with more than one row in
            ``num_ps`` shards; ``none``: no sharding (each variable whole on one ps, round robin).
        shard_bytes: The size threshold of ``min_size`` / the shard size of ``max_size``.
        num_ps: Number of ps tasks.

    Raises:
        ValueError: unknown ``policy``.
    """
    partitioners = tf.distribute.experimental.partitioners
    if policy not in SHARD_POLICIES:
        raise ValueError(f"train.ps_shard_policy: expected one of {SHARD_POLICIES}, got {policy!r}")
    if policy == "none" or num_ps < 2:
        return None
    if policy == "min_size":
        return partitioners.MinSizePartitioner(min_shard_bytes=shard_bytes, max_shards=num_ps)
    if policy == "max_size":
        return partitioners.MaxSizePartitioner(max_shard_bytes=shard_bytes)
    return partitioners.FixedShardsPartitioner(num_shards=num_ps)


def serve_forever(tf_config: dict[str, Any]) -> None:
    """Run this ``worker``/``ps`` task's server until the process is stopped (never returns)."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(
        resolver.cluster_spec(),
        job_name=resolver.task_type,
        task_index=resolver.task_id,
        protocol=resolver.rpc_layer or "grpc",
        start=True,
    )
    print(f"parameter_server: {resolver.task_type}:{resolver.task_id} serving at {server.target}", flush=True)
    server.join()


def make_strategy(shard_policy: str = "min_size", shard_bytes: int = 1 << 20) -> tf.distribute.Strategy:
    """The ``ParameterServerStrategy`` of the ``chief`` task; ``worker``/``ps`` tasks serve here and never return.

    Args:
        shard_policy: See :func:`make_partitioner`.
        shard_bytes: See :func:`make_partitioner`.

    Raises:
        ValueError: a bad ``TF_CONFIG`` (see :func:`read_tf_config`) or shard policy.
    """
    tf_config = read_tf_config()
    os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")  # a dead task fails the RPC at once (fault handling)
    if tf_config["task"]["type"] != "chief":
        serve_forever(tf_config)
    partitioner = make_partitioner(shard_policy, shard_bytes, len(tf_config["cluster"]["ps"]))
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver(rpc_layer="grpc")
    return tf.distribute.experimental.ParameterServerStrategy(resolver, variable_partitioner=partitioner)


def is_parameter_server(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` is a ``ParameterServerStrategy`` (fit runs through a coordinator)."""
    return isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy)


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Worker tasks of the strategy's cluster."""
    return int(strategy.extended._num_workers)  # the public cluster_resolver is None on the chief


def per_worker_input(strategy: tf.distribute.Strategy, make_dataset: Callable[[], tf.data.Dataset]) -> Any:
    """``fit`` input for ``strategy``: a ``DatasetCreator`` whose dataset each worker builds and shards by batch.

    ``make_dataset()`` is called on every worker (inside its dataset function) and must give the same batch sequence
    on each (a seeded shuffle): worker ``i`` of ``n`` keeps batches ``i, i + n, …``
    (``tf.distribute.coordinator.experimental_get_current_worker_index``; under ``ParameterServerStrategy`` the
    ``InputContext`` is ``1`` pipeline with id ``0`` on every worker, so it cannot tell them apart). The coordinator
    hands steps to whichever worker is free, so a faster worker reads past its share of a pass: every row is read
    about once per epoch, not exactly once.

    A finite dataset (validation data) is repeated, and the creator's ``validation_steps`` attribute is its batches
    of one pass (what Keras needs for a ``DatasetCreator`` as ``validation_data``): the in-fit validation metrics
    cover about one pass, split across the workers as they come free.
    """
    workers = num_workers(strategy)
    batches = int(make_dataset().cardinality())
    finite = batches >= 0

    def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        del input_context  # one pipeline with id 0 on every worker under this strategy
        index = tf.distribute.coordinator.experimental_get_current_worker_index()
        ds = make_dataset()
        return (ds.repeat() if finite else ds).shard(workers, index)

    creator = tf.keras.utils.experimental.DatasetCreator(dataset_fn)
    creator.validation_steps = batches if finite else None
    return creator


def file_shard_input(
    strategy: tf.distribute.Strategy, directory: str | pathlib.Path, schema: Any, **dataset_args: Any
) -> Any:
    """``fit`` input from a directory of TFRecord shards: each worker streams only its own files.

    Args:
        strategy: The ``ParameterServerStrategy``.
        directory: Shards written by :func:`data.tfrecords.write_tfrecords` (at least one per worker).
        schema: Their schema.
        dataset_args: Passed to :func:`data.shards.worker_tfrecord_dataset` (``batch_size``, ``seed``, …).

    Returns:
        A ``DatasetCreator``; pass ``steps_per_epoch`` to ``fit`` (the data repeats).
    """
    from data.shards import worker_tfrecord_dataset
    from data.tfrecords import manifest_files

    workers = num_workers(strategy)
    manifest_files(directory, schema)  # fail here, on the coordinator, for a bad directory

    def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        del input_context  # one pipeline with id 0 on every worker under this strategy
        index = tf.distribute.coordinator.experimental_get_current_worker_index()
        return worker_tfrecord_dataset(directory, schema, workers, index, **dataset_args)

    return tf.keras.utils.experimental.DatasetCreator(dataset_fn)


def unsharded_copy(model: tf.keras.Model, build: Callable[[], tf.keras.Model], run_dir: str | pathlib.Path) -> Any:
    """A copy of ``model`` built by ``build()`` outside any strategy, with the trained values of every variable.

    The variables go through a TensorFlow checkpoint: a sharded variable is written as slices of one whole
    variable, so it restores into the unsharded copy's variable of the full shape (what ``model.keras`` and the
    export then hold). Where the variables lived is written to ``run_dir/ps_placement.json``
    (``{"bytes_per_task": …, "variables": …}``, see :func:`variable_placement`).
    """
    placement = {
        "bytes_per_task": bytes_per_task(model),
        "optimizer_bytes_per_task": bytes_per_task(model.optimizer) if model.optimizer is not None else {},
        "variables": variable_placement(model),
    }
    (pathlib.Path(run_dir) / "ps_placement.json").write_text(json.dumps(placement, indent=1) + "\n")
    with tempfile.TemporaryDirectory(dir=run_dir, prefix="unsharded-") as tmp:
        path = tf.train.Checkpoint(model=model).write(str(pathlib.Path(tmp) / "ckpt"))
        copy = build()
        # every variable of the copy must come from the checkpoint (its optimizer's slots are created later)
        tf.train.Checkpoint(model=copy).read(path).assert_existing_objects_matched().expect_partial()
    return copy


def variable_placement(model: Any) -> dict[str, list[dict[str, Any]]]:
    """Where the variables of ``model`` (or an optimizer) live: ``{variable name: [{task, shape, bytes} per shard]}``.

    A sharded variable's shards (``name/part_0``, ``name/part_1``, …) are listed under the variable's name.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    variables = model.variables() if callable(model.variables) else model.variables
    # a model lists its shards; an optimizer may list a ShardedVariable (a slot of a sharded table) as one
    shards = [s for v in variables for s in (v.variables if isinstance(v, ShardedVariable) else [v])]
    for var in shards:
        name = re.sub(r"/part_\d+:\d+$|:\d+$", "", var.name)
        task = re.search(r"/job:(\w+)/replica:\d+/task:(\d+)", var.device or "")
        out.setdefault(name, []).append(
            {
                "task": f"{task[1]}:{task[2]}" if task else "local",
                "shape": list(var.shape),
                "bytes": int(var.shape.num_elements() * var.dtype.size),
            }
        )
    return out


def bytes_per_task(model: Any) -> dict[str, int]:
    """Variable bytes held by each task (``ps:0``, ``ps:1``, …) of ``model`` (:func:`variable_placement`)."""
    totals: dict[str, int] = {}
    for shards in variable_placement(model).values():
        for shard in shards:
            totals[shard["task"]] = totals.get(shard["task"], 0) + shard["bytes"]
    return dict(sorted(totals.items()))
