"""TF Serving's ``BatchingParameters`` and ``MonitoringConfig`` messages, for reading and checking their text protos.

``tensorflow-serving-api`` ships ``ModelServerConfig`` (``tensorflow_serving.config.model_server_config_pb2``) but not
``session_bundle_config.proto`` (``BatchingParameters``, read by ``--batching_parameters_file``) nor
``monitoring_config.proto`` (``MonitoringConfig``, read by ``--monitoring_config_file``). Both are declared here with
the upstream package, field names and types, in a private descriptor pool (no clash should the real
modules ever be imported). Text-format parsing depends only on names and types, so a file these accept is one the
real server accepts, and a field the real server rejects (a misspelling, ``max_batch_size: 64`` without the
``{ value: }`` wrapper) fails here too.

Example:
    >>> from google.protobuf import text_format
    >>> text_format.Parse("max_batch_size { value: 64 }", BatchingParameters()).max_batch_size.value
    64
    >>> text_format.Parse('prometheus_config { enable: true }', MonitoringConfig()).prometheus_config.enable
    True
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

PACKAGE = "tensorflow.serving"
PROMETHEUS_DEFAULT_PATH = "/monitoring/prometheus/metrics"  # TF Serving's PrometheusExporter::kPrometheusPath

_F = descriptor_pb2.FieldDescriptorProto


def _field(message: descriptor_pb2.DescriptorProto, name: str, number: int, kind: int, type_name: str = "") -> None:
    label = _F.LABEL_REPEATED if name == "allowed_batch_sizes" else _F.LABEL_OPTIONAL
    field = message.field.add(name=name, number=number, type=kind, label=label)
    if type_name:
        field.type_name = type_name


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)

    batching = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package=PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    params = batching.message_type.add(name="BatchingParameters")
    wrapped = [
        ("max_batch_size", 1, "Int64Value"),
        ("batch_timeout_micros", 2, "Int64Value"),
        ("max_enqueued_batches", 3, "Int64Value"),
        ("num_batch_threads", 4, "Int64Value"),
        ("thread_pool_name", 5, "StringValue"),
        ("enable_large_batch_splitting", 8, "BoolValue"),
        ("max_execution_batch_size", 9, "Int64Value"),
    ]
    for name, number, wrapper in wrapped:
        _field(params, name, number, _F.TYPE_MESSAGE, f".google.protobuf.{wrapper}")
    _field(params, "allowed_batch_sizes", 6, _F.TYPE_INT64)
    _field(params, "pad_variable_length_inputs", 7, _F.TYPE_BOOL)
    pool.Add(batching)

    monitoring = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/monitoring_config.proto", package=PACKAGE, syntax="proto3"
    )
    prometheus = monitoring.message_type.add(name="PrometheusConfig")
    _field(prometheus, "enable", 1, _F.TYPE_BOOL)
    _field(prometheus, "path", 2, _F.TYPE_STRING)
    config = monitoring.message_type.add(name="MonitoringConfig")
    _field(config, "prometheus_config", 1, _F.TYPE_MESSAGE, f".{PACKAGE}.PrometheusConfig")
    pool.Add(monitoring)
    return pool


_POOL = _build_pool()
BatchingParameters = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{PACKAGE}.BatchingParameters"))
PrometheusConfig = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{PACKAGE}.PrometheusConfig"))
MonitoringConfig = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{PACKAGE}.MonitoringConfig"))
