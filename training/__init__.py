"""Training, evaluation and gate analysis of mmoe-tf models.

Public API (reusable by experiments):

- :func:`training.config.load_run_config` / :class:`training.config.RunConfig`: run configs.
- :func:`training.runner.train`: one run end to end (returns :class:`training.runner.RunResult`).
- :func:`training.evaluation.evaluate_predictions`, :func:`training.evaluation.evaluate_model`,
  :func:`training.evaluation.format_report`: the per-task report.
- :func:`training.gate_analysis.analyze_gate_weights`, :func:`training.gate_analysis.analyze_model_gates`,
  :func:`training.gate_analysis.format_gate_summary`, :func:`training.gate_analysis.plot_gates`.
- :func:`training.distribute.make_strategy`.

Submodules are imported lazily so ``import training`` stays cheap (and ``python -m training`` can quiet
TensorFlow's start-up log before TensorFlow is imported).
"""

from typing import Any

__all__ = ["RunConfig", "RunConfigError", "load_run_config"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from training import config

        return getattr(config, name)
    raise AttributeError(f"module 'training' has no attribute {name!r}")
