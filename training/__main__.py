"""``python -m training`` → :func:`training.cli.main` (TensorFlow's start-up log hidden unless ``--verbose``)."""

import sys

from training.quiet import quiet_startup

with quiet_startup(enabled="--verbose" not in sys.argv[1:]):
    from training.cli import main

sys.exit(main())
