#!/usr/bin/env bash
# Checks the package as a user gets it: builds the wheel from this checkout, installs it with `pip install` into a
# fresh virtual environment, and, from a folder outside the checkout, runs what the install promises:
#   import mmoe_tf and the application packages (nothing named data/training/serving in site-packages; serving's
#   server imports no mmoe_tf), `python -m mmoe_tf_app.training --help`, `python -m mmoe_tf_app.serving --help`,
#   every console script's --help, and the main job at a tiny size on the embedded sample: train → evaluate →
#   gates → export → serve → REST prediction.
#
# The pinned requirements (and the build backend) come from a wheelhouse, ~/.cache/mmoe-tf/wheelhouse-<hash of
# requirements.txt and the build requirements>, filled once with `pip wheel` (the network is needed only then); the
# install runs `pip install --no-index` from it. Override the cache folder with MMOE_VENV_CACHE, the interpreter
# with PYTHON; MMOE_KEEP_CHECK=1 keeps the temporary folder. Prints each step's wall time.
#
# Usage: bash scripts/check_install.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
python_bin="${PYTHON:-python3}"
build_requirements="setuptools>=70.1"
key="$({ cat requirements.txt; echo "$build_requirements"; } | sha256sum | cut -c1-16)"
cache="${MMOE_VENV_CACHE:-$HOME/.cache/mmoe-tf}"
wheelhouse="$cache/wheelhouse-$key"
started=$SECONDS
step() { echo "[check_install] $(( SECONDS - started )) s: $*"; }
mkdir -p "$cache"

# one filler at a time (as scripts/setup_env.sh does for the environment)
exec 8>"$cache/.lock-wheelhouse-$key"
flock 8
if [ ! -f "$wheelhouse/.complete" ]; then
  step "filling the wheelhouse $wheelhouse"
  rm -rf "$wheelhouse" "$wheelhouse.partial"
  "$python_bin" -m pip wheel --quiet -r requirements.txt "$build_requirements" -w "$wheelhouse.partial"
  mv "$wheelhouse.partial" "$wheelhouse"
  touch "$wheelhouse/.complete"
else
  step "reusing the wheelhouse $wheelhouse"
fi
flock -u 8

work="$(mktemp -d "${TMPDIR:-/tmp}/mmoe-check-install.XXXXXX")"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ "${MMOE_KEEP_CHECK:-0}" = "1" ]; then echo "[check_install] kept $work"; else rm -rf "$work"; fi
  step "cleaned up"
}
trap cleanup EXIT
# offline from here on: only the wheelhouse
export PIP_NO_INDEX=1 PIP_FIND_LINKS="$wheelhouse" PIP_DISABLE_PIP_VERSION_CHECK=1

step "building the wheel (from the tracked and untracked-but-not-ignored files of the checkout)"
mkdir -p "$work/src" "$work/dist" "$work/run"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$work/src"
"$python_bin" -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip wheel --quiet --no-deps -w "$work/dist" "$work/src"
wheel="$(ls "$work/dist"/mmoe_tf-*.whl)"
echo "  $(basename "$wheel") ($(du -k "$wheel" | cut -f1) kB)"

step "pip install $(basename "$wheel") into a fresh virtual environment"
"$py" -m pip install --quiet "$wheel"
"$py" -m pip check

# from a folder outside the checkout, so only the installed package can be imported
cd "$work/run"
export TF_CPP_MIN_LOG_LEVEL=3
# TensorFlow's C++ start-up notices print before TF_CPP_MIN_LOG_LEVEL applies (as in scripts/quickstart.sh)
tf_noise='^(WARNING: All log messages before absl::InitializeLog\(\) is called|[IWE][0-9]{4} [0-9:. ]+[0-9]+ [a-z_]+\.cc:[0-9]+\])'
quiet() { "$@" 2> >(grep -vE "$tf_noise" >&2); }
step "imports, installed names and package data"
quiet "$py" - <<'PY'
import importlib.metadata
import importlib.util
import sys

import mmoe_tf_app.serving.cli
import mmoe_tf_app.serving.server

assert "mmoe_tf" not in sys.modules, "serving's server and CLI must not import mmoe_tf"
import mmoe_tf
import mmoe_tf_app.data
import mmoe_tf_app.training.cli
from mmoe_tf_app.data.sample import load_default

top_level = importlib.metadata.distribution("mmoe-tf").read_text("top_level.txt").split()
assert sorted(top_level) == ["mmoe_tf", "mmoe_tf_app"], top_level
for generic in ("data", "training", "serving"):
    assert importlib.util.find_spec(generic) is None, f"a top-level {generic!r} is importable"
frame, schema = load_default()
print(f"  mmoe_tf {mmoe_tf.__version__}; top-level names {top_level}; embedded sample {len(frame)} rows")
PY

step "python -m mmoe_tf_app.training --help; python -m mmoe_tf_app.serving --help"
quiet "$py" -m mmoe_tf_app.training --help > /dev/null
quiet "$py" -m mmoe_tf_app.serving --help > /dev/null
scripts="$("$py" -c 'import importlib.metadata as m; print(" ".join(e.name for e in m.distribution("mmoe-tf").entry_points if e.group == "console_scripts"))')"
for script in $scripts; do
  step "$script --help"
  quiet "$work/venv/bin/$script" --help > /dev/null
done

site="$("$py" -c 'import mmoe_tf_app.training, pathlib; print(pathlib.Path(mmoe_tf_app.training.__file__).parents[2])')"
config="$site/mmoe_tf_app/training/configs/default.yaml"
sample_csv="$site/mmoe_tf_app/data/sample/impressions.csv"
step "main job, tiny: mmoe-train train on the embedded sample (installed default config)"
"$work/venv/bin/mmoe-train" train --config "$config" --set data.max_rows=2000 --set train.epochs=1 \
  --set train.baseline=single_task --output-dir run > train.log 2>&1 || { cat train.log; exit 1; }
tail -n 3 train.log
step "mmoe-train evaluate; mmoe-train gates"
"$work/venv/bin/mmoe-train" evaluate --model run/model.keras > evaluate.log 2>&1 || { cat evaluate.log; exit 1; }
"$work/venv/bin/mmoe-train" gates --model run/model.keras --output-dir gates > gates.log 2>&1 || { cat gates.log; exit 1; }
step "mmoe-serving export (verified in a fresh process)"
"$work/venv/bin/mmoe-serving" export --model run/model.keras --base-path export --model-name mmoe \
  --warmup-data "$sample_csv" > export.log 2>&1 || { cat export.log; exit 1; }
port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
step "mmoe-serving serve on port $port, then a REST prediction"
"$work/venv/bin/mmoe-serving" serve --base-path export --model-name mmoe --port "$port" --no-grpc > server.log 2>&1 &
server_pid=$!
quiet "$py" - "$port" "$server_pid" <<'PY' || { cat server.log; exit 1; }
import json
import os
import sys
import time
import urllib.request

from mmoe_tf_app.data import feature_arrays
from mmoe_tf_app.data.sample import load_default

url, pid = f"http://127.0.0.1:{sys.argv[1]}/v1/models/mmoe", int(sys.argv[2])
deadline = time.monotonic() + 180
while True:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            status = json.load(answer)
        break
    except OSError:
        os.kill(pid, 0)  # raises once the server has exited
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
frame, schema = load_default()
arrays = feature_arrays(frame.head(3), schema)
plain = lambda value: value.item() if hasattr(value, "item") else value  # noqa: E731 (numpy scalar → JSON)
instances = [{name: plain(values[i]) for name, values in arrays.items()} for i in range(3)]
request = urllib.request.Request(f"{url}:predict", data=json.dumps({"instances": instances}).encode())
with urllib.request.urlopen(request, timeout=30) as answer:
    predictions = json.load(answer)["predictions"]
assert len(predictions) == 3, predictions
print(f"  {status['model_version_status'][0]['state']}; first prediction {predictions[0]}")
PY
quiet "$work/venv/bin/mmoe-serving" predict --url "http://127.0.0.1:$port" --model-name mmoe --data "$sample_csv" --rows 3
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""
step "done: the installed package works"
