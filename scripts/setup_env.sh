#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment and links it as ./.venv.
#
# The environment lives outside the clone, keyed by a hash of requirements.txt, so a fresh
# clone reuses an existing one and a change of requirements builds a new one from scratch.
# Override the cache folder with MMOE_VENV_CACHE.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
python_bin="${PYTHON:-python3}"
key="$(sha256sum requirements.txt | cut -c1-16)"
cache="${MMOE_VENV_CACHE:-$HOME/.cache/mmoe-tf}"
venv="$cache/venv-$key"
mkdir -p "$cache"
# One builder at a time: a second setup (another clone, quickstart and tests at once) waits here
# instead of deleting the half-built environment under the first.
exec 9>"$cache/.lock-$key"
flock 9
if [ ! -f "$venv/.complete" ]; then
  echo "[setup] building virtual environment $venv (requirements hash $key)"
  rm -rf "$venv"
  "$python_bin" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r requirements.txt
  touch "$venv/.complete"
else
  echo "[setup] reusing virtual environment $venv"
fi
ln -sfn "$venv" .venv
