"""Export, serve and query mmoe-tf models through TF Serving's REST and gRPC APIs.

- ``serving.export`` (imports ``mmoe_tf``): ``export_model(model, base_path, ...)`` writes a verified SavedModel.
- ``serving.server`` (no ``mmoe_tf``): a local server implementing the TF Serving REST contract
  (``serving.rest_api`` on ``serving.http_server``, httptools) and, on ``--grpc-port``, its gRPC API
  (``serving.grpc_server``), sharing one model store and inference engine; options in ``serving.server_config``.
- ``serving.client`` (no ``mmoe_tf``): ``PredictClient`` over REST or gRPC, for this server or a real TF Serving.

This package's ``__init__`` imports nothing, so the request-answering modules stay free of ``mmoe_tf``.
"""
