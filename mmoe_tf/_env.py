"""Makes sure TensorFlow's ``tf.keras`` is the Keras 2 API (tf-keras) before anything uses it.

TensorFlow Recommenders refuses Keras 3, so the package sets ``TF_USE_LEGACY_KERAS=1`` before
TensorFlow resolves ``tf.keras``. TensorFlow resolves it lazily, on first attribute access, so
importing ``mmoe_tf`` after ``import tensorflow`` still works as long as nothing has touched
``tf.keras`` yet. If ``tf.keras`` was already bound to Keras 3, we fail with a clear message
instead of silently mixing two frameworks.
"""

from __future__ import annotations

import os
import sys

LEGACY_KERAS_ENV = "TF_USE_LEGACY_KERAS"


class KerasVersionError(ImportError):
    """Raised when ``tf.keras`` is not the Keras 2 API this package needs."""


def ensure_legacy_keras() -> None:
    """Set ``TF_USE_LEGACY_KERAS=1`` and check ``tf.keras`` resolves to tf-keras 2.x.

    Raises:
        KerasVersionError: ``tf.keras`` was already resolved to Keras 3 before this import, or
            tf-keras is not installed.
    """
    value = os.environ.get(LEGACY_KERAS_ENV)
    tf_already_imported = "tensorflow" in sys.modules
    if value not in (None, "1", "true", "True"):
        raise KerasVersionError(
            f"{LEGACY_KERAS_ENV}={value!r} is set in the environment; mmoe_tf needs the Keras 2 API "
            f"(tf-keras). Unset it or set {LEGACY_KERAS_ENV}=1."
        )
    os.environ[LEGACY_KERAS_ENV] = "1"
    import tensorflow as tf

    try:
        model_module = tf.keras.Model.__module__
    except (ImportError, AttributeError) as err:  # tf-keras missing: TF raises when TF_USE_LEGACY_KERAS=1
        raise KerasVersionError(
            "mmoe_tf needs the tf-keras package (Keras 2 API): pip install -r requirements.txt"
        ) from err
    if not model_module.startswith("tf_keras"):
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as package_version

        try:
            version = package_version("keras")
        except PackageNotFoundError:
            version = "3 (keras package metadata not found)"
        hint = (
            " TensorFlow was imported and tf.keras was used before mmoe_tf set "
            f"{LEGACY_KERAS_ENV}=1; import mmoe_tf first or export {LEGACY_KERAS_ENV}=1."
            if tf_already_imported
            else ""
        )
        raise KerasVersionError(
            f"tf.keras resolved to Keras {version}, but mmoe_tf needs the Keras 2 API (tf-keras 2.x).{hint}"
        )
