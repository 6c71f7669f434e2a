"""MMoE building blocks: expert banks (MLP and DCN-v2 cross), task gates, the MMoE block and the PLE (CGC) level.

Both blocks derive from ``mixture.MixtureOfExperts``, which holds the expert and gate options they share.
"""

from mmoe_tf.layers.cross_expert_bank import CrossExpertBank
from mmoe_tf.layers.expert_bank import ExpertBank
from mmoe_tf.layers.mmoe_block import MMoE
from mmoe_tf.layers.ple_block import CGC
from mmoe_tf.layers.task_gate import TaskGate

__all__ = ["CGC", "CrossExpertBank", "ExpertBank", "MMoE", "TaskGate"]
