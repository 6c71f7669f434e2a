"""Adapters for the real data sets under ``<repo>/../shared/data``: each returns ``(DataFrame, Schema)``."""

from data.real.census import load_census
from data.real.click_conversion import load_ali_ccp, load_aliexpress

__all__ = ["load_ali_ccp", "load_aliexpress", "load_census"]
