"""``python -m training.experiments <name> [options]``: run one experiment, print its table, save its plot."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from training.experiments import EXPERIMENTS


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to ``training.experiments.<name>.main``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in EXPERIMENTS:
        print(
            f"usage: python -m training.experiments {{{','.join(EXPERIMENTS)}}} [options]  (-h after a name)",
            file=sys.stderr,
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    from training.quiet import quiet_startup, startup_log_shown

    with quiet_startup(enabled=not startup_log_shown()):  # TensorFlow's C++ start-up log
        from training.experiments import common

    common.limit_threads()
    importlib.import_module(f"training.experiments.{argv[0]}").main(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
