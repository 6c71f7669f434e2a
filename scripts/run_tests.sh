#!/usr/bin/env bash
# Sets up the environment if needed, then runs the whole test suite (what CI runs).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup_env.sh
# Two worker processes by default (pytest-xdist), one test file per worker at a time, so module fixtures are built
# once: 7 min 37 s against 12-13 min in one process on 2 cores. MMOE_TEST_WORKERS=0 runs in this process.
exec .venv/bin/python -m pytest -n "${MMOE_TEST_WORKERS:-2}" --dist loadfile "$@"
