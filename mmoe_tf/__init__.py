"""mmoe-tf: Multi-gate Mixture-of-Experts multi-task ranking models on tf.keras (Keras 2 API).

Importing this package sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow resolves ``tf.keras``
(TensorFlow Recommenders refuses Keras 3) and fails with a clear message if ``tf.keras`` was
already bound to Keras 3.
"""

from mmoe_tf._env import KerasVersionError, ensure_legacy_keras

ensure_legacy_keras()

from mmoe_tf.config import (  # noqa: E402
    ARCHITECTURES,
    FeatureSpec,
    ModelConfig,
    TaskSpec,
    default_tasks,
    joint_output_name,
)

# --- layers (owned by the layers work) ---
# --- models, features, losses, targets, saving, gates (owned by the model work) ---

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES",
    "FeatureSpec",
    "KerasVersionError",
    "ModelConfig",
    "TaskSpec",
    "default_tasks",
    "joint_output_name",
]
