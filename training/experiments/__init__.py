"""Experiments behind docs/results.md; each is ``python -m training.experiments <name> [options]``.

Every experiment module has ``run(...)`` (its summary rows; ``gates_vs_relatedness`` a DataFrame) and
``main(argv)`` (the CLI, which prints the table and saves a PNG under ``docs/figures/``). Results go
to ``docs/results/<name>.json`` (:mod:`training.experiments.results`); ``docs/results.md`` is
generated from them by :mod:`training.experiments.report`.
"""

EXPERIMENTS = (
    "relatedness",
    "scarcity",
    "census",
    "gates_vs_relatedness",
    "ceiling",
    "ceiling_reference",
    "gate_remedies",
)
