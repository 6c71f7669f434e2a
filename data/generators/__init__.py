"""Seeded numpy data generators: the MMoE paper's synthetic benchmark and an impression-log simulator."""

from data.generators.impressions import impressions_schema, oracle_auc, simulate_impressions
from data.generators.synthetic import make_synthetic, synthetic_schema

__all__ = ["impressions_schema", "make_synthetic", "oracle_auc", "simulate_impressions", "synthetic_schema"]
