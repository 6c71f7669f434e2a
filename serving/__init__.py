"""Export, serve and query mmoe-tf models through TF Serving's REST API.

- ``serving.export`` (imports ``mmoe_tf``): ``export_model(model, base_path, ...)`` writes a verified SavedModel.
- ``serving.server`` (no ``mmoe_tf``): a local aiohttp server implementing the TF Serving REST contract.
- ``serving.client`` (no ``mmoe_tf``): ``PredictClient`` for this server or a real TF Serving.

This package's ``__init__`` imports nothing, so the request-answering modules stay free of ``mmoe_tf``.
"""
