"""Seeded numpy data generators: the MMoE paper's synthetic benchmark, an impression-log simulator, a wide CTR table."""

from data.generators.ctr_table import ctr_table_schema, simulate_ctr_table
from data.generators.impressions import impressions_schema, oracle_auc, simulate_impressions
from data.generators.synthetic import make_synthetic, synthetic_schema

__all__ = [
    "ctr_table_schema",
    "impressions_schema",
    "make_synthetic",
    "oracle_auc",
    "simulate_ctr_table",
    "simulate_impressions",
    "synthetic_schema",
]
