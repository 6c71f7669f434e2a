#!/usr/bin/env bash
# Sets up the environment if needed, then runs the whole test suite (what CI runs).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest "$@"
