"""Everything between a user's interaction log and the ``tf.data.Dataset`` that ``model.fit`` consumes.

Schema → validated table (:func:`load_table`) → splits → in-memory (:func:`make_dataset`) or
streamed (:func:`write_tfrecords` / :func:`tfrecord_dataset`) input pipelines; plus generators,
real-data adapters (``data.real``) and the embedded default sample (``data.sample``).
"""

import mmoe_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is used)
from data.arrays import feature_arrays, labels_and_weights
from data.errors import DataValidationError
from data.labels import label_report
from data.loading import iter_table_chunks, load_table
from data.pipeline import batches_per_pass, make_dataset
from data.schema import Schema
from data.splits import random_split, time_split
from data.tfrecords import read_manifest, tfrecord_dataset, write_tfrecords
from data.validation import validate_frame

__all__ = [
    "DataValidationError",
    "Schema",
    "batches_per_pass",
    "feature_arrays",
    "iter_table_chunks",
    "label_report",
    "labels_and_weights",
    "load_table",
    "make_dataset",
    "random_split",
    "read_manifest",
    "tfrecord_dataset",
    "time_split",
    "validate_frame",
    "write_tfrecords",
]
