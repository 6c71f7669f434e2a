"""Assets for a real TF Serving (``models.config``, ``batching_parameters.txt``, ``monitoring.config``,
``docker-compose.yml``) and :mod:`serving.tf_serving.protos`, the config messages that ``tensorflow-serving-api``
does not ship, to check those files as TF Serving reads them."""
