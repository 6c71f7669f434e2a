"""mmoe-tf: Multi-gate Mixture-of-Experts multi-task ranking models on tf.keras (Keras 2 API).

Importing this package sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow resolves ``tf.keras``
(TensorFlow Recommenders refuses Keras 3) and fails with a clear message if ``tf.keras`` was
already bound to Keras 3.
"""

from mmoe_tf._env import KerasVersionError, ensure_legacy_keras

ensure_legacy_keras()

from mmoe_tf.config import ARCHITECTURES, ModelConfig  # noqa: E402
from mmoe_tf.feature_specs import FeatureCross, FeatureSpec  # noqa: E402
from mmoe_tf.features import FeatureEncoder  # noqa: E402
from mmoe_tf.gates import gate_model  # noqa: E402
from mmoe_tf.layers import CGC, CrossExpertBank, ExpertBank, MMoE, TaskGate  # noqa: E402
from mmoe_tf.losses import UncertaintyWeighting, current_loss_weights  # noqa: E402
from mmoe_tf.models import MultiTaskModel, build_model, compile_model  # noqa: E402
from mmoe_tf.saving import config_of, load_model, save_model  # noqa: E402
from mmoe_tf.targets import add_joint_targets  # noqa: E402
from mmoe_tf.task_specs import TaskSpec, default_tasks, joint_output_name  # noqa: E402
from mmoe_tf.threads import configure_cpu_threads  # noqa: E402
from mmoe_tf.towers import MLP, Tower  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES",
    "CGC",
    "MLP",
    "CrossExpertBank",
    "ExpertBank",
    "FeatureCross",
    "FeatureEncoder",
    "FeatureSpec",
    "KerasVersionError",
    "MMoE",
    "ModelConfig",
    "MultiTaskModel",
    "TaskGate",
    "TaskSpec",
    "Tower",
    "UncertaintyWeighting",
    "add_joint_targets",
    "build_model",
    "compile_model",
    "config_of",
    "configure_cpu_threads",
    "current_loss_weights",
    "default_tasks",
    "gate_model",
    "joint_output_name",
    "load_model",
    "save_model",
]
