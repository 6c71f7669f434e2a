"""``python -m serving {export,serve,predict}``."""

import sys

from serving.cli import main

sys.exit(main())
