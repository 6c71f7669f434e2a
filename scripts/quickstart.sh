#!/usr/bin/env bash
# The main job, end to end, on the embedded default data:
#   set up the environment → train an MMoE (click + satisfaction) and, with the same data and budget, the
#   single-task baseline → per-task report with both AUCs side by side, and the gate summary →
#   export a SavedModel version → start the local TF-Serving-compatible server → REST predictions → stop the server.
#
# Everything lands under ./output (override with MMOE_OUTPUT): runs/<timestamp>/ for each training run,
# export/mmoe/<version>/ for each exported version, latest -> the newest run. Safe to re-run: each run gets
# its own folder and a new model version. MMOE_PORT / MMOE_GRPC_PORT pin the server's REST / gRPC ports (default:
# free ones, reported by the server);
# MMOE_TRAIN_OVERRIDES adds config overrides, e.g. "train.epochs=2 data.max_rows=600" (tests use it).
#
# Usage: bash scripts/quickstart.sh [--verbose]   (--verbose: keep TensorFlow's C++ start-up log)
set -euo pipefail
verbose=""
[ "${1:-}" = "--verbose" ] && verbose="--verbose"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="${MMOE_OUTPUT:-$repo/output}"
model_name="mmoe"

bash scripts/setup_env.sh
py="$repo/.venv/bin/python"
# 3 hides TensorFlow's C++ ERROR-level notices too (oneDNN's DT_INT32 notice at the first training step); failures
# still raise Python errors. --verbose keeps 2, as before.
if [ -n "$verbose" ]; then export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"; else export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"; fi
# TensorFlow's C++ runtime logs before TF_CPP_MIN_LOG_LEVEL applies (absl pre-init notice, oneDNN, CUDA probing on
# a CPU-only machine); `python -m training` hides it itself, the other steps go through this filter.
tf_noise='^(WARNING: All log messages before absl::InitializeLog\(\) is called|[IWE][0-9]{4} [0-9:. ]+[0-9]+ [a-z_]+\.cc:[0-9]+\])'
quiet() {
  if [ -n "$verbose" ]; then "$@"; else "$@" 2> >(grep -vE "$tf_noise" >&2); fi
}

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
run="$out/runs/$stamp"
mkdir -p "$out/runs" "$out/export"

echo; echo "== 1/4 train + evaluate, with the single-task baseline (run folder: $run)"
overrides=()
for item in ${MMOE_TRAIN_OVERRIDES:-}; do overrides+=(--set "$item"); done
"$py" -m training train --config training/configs/default.yaml --set train.verbose=1 \
  --set train.baseline=single_task ${overrides[@]+"${overrides[@]}"} --output-dir "$run" $verbose
ln -sfn "runs/$stamp" "$out/latest"

echo; echo "== 2/4 export a SavedModel version (base path: $out/export)"
quiet "$py" -m serving export --model "$run/model.keras" --base-path "$out/export" --model-name "$model_name" \
  --warmup-data data/sample/impressions.csv

echo; echo "== 3/4 start the local TF-Serving-compatible server"
# Port 0 = any free port; the server prints the ports it bound as "ports rest=N grpc=M" (MMOE_PORT / MMOE_GRPC_PORT
# pin them). A taken port fails at once with "error: ..." in the log.
: > "$run/server.log"  # exists before the wait loop reads it, however late the background job starts
"$py" -m serving serve --base-path "$out/export" --model-name "$model_name" --port "${MMOE_PORT:-0}" \
  --grpc-port "${MMOE_GRPC_PORT:-0}" > "$run/server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true' EXIT
ports=""
for _ in $(seq 1 240); do
  ports="$(sed -n 's/^ports rest=\([0-9]*\) grpc=\([0-9a-z]*\)$/\1 \2/p' "$run/server.log" | head -n 1)"
  [ -n "$ports" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then echo "server exited early; log:"; cat "$run/server.log"; exit 1; fi
  sleep 0.5
done
if [ -z "$ports" ]; then echo "server did not report its ports in 120 s; log:"; cat "$run/server.log"; exit 1; fi
read -r port grpc_port <<< "$ports"
url="http://127.0.0.1:$port"
echo "REST at $url, gRPC at 127.0.0.1:$grpc_port"
for _ in $(seq 1 120); do
  if curl -sf "$url/v1/models/$model_name" > /dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then echo "server exited early; log:"; cat "$run/server.log"; exit 1; fi
  sleep 0.5
done
curl -sf "$url/v1/models/$model_name"; echo

echo; echo "== 4/4 REST predictions for 3 impressions"
quiet "$py" - "$run/request.json" <<'PY'
"""Writes a TF Serving row-format request for the first three impressions of the embedded sample."""
import json
import sys

from data import feature_arrays
from data.sample import load_default

frame, schema = load_default()
arrays = feature_arrays(frame.head(3), schema)


def plain(value):
    return value.item() if hasattr(value, "item") else value


instances = [{name: plain(values[i]) for name, values in arrays.items()} for i in range(3)]
with open(sys.argv[1], "w") as handle:
    json.dump({"instances": instances}, handle, indent=1)
PY
echo "curl -X POST $url/v1/models/$model_name:predict -d @$run/request.json"
curl -sf -X POST "$url/v1/models/$model_name:predict" -H 'Content-Type: application/json' -d @"$run/request.json"; echo
echo; echo "same rows through serving.client (works unchanged against a real TF Serving):"
quiet "$py" -m serving predict --url "$url" --model-name "$model_name" --data data/sample/impressions.csv --rows 3

echo; echo "== done. Artifacts:"
echo "  run folder      $run  (model.keras, report.json/txt, gates.json/png, history.csv, tensorboard/)"
echo "  export base     $out/export/$model_name/  (versions: $(ls "$out/export/$model_name" | grep -E '^[0-9]+$' | sort -n | tr '\n' ' '))"
echo "  server log      $run/server.log"
