"""Experiments behind docs/results.md; each is ``python -m training.experiments <name> [options]``.

Every experiment module has ``run(...) -> pandas.DataFrame`` (the table) and ``main(argv)`` (the CLI,
which prints the table and saves a PNG under ``docs/figures/``).
"""

EXPERIMENTS = ("relatedness", "scarcity", "census", "gates_vs_relatedness", "ceiling")
