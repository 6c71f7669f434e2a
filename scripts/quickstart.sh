#!/usr/bin/env bash
# The main job, end to end, on the embedded default data:
#   set up the environment → train an MMoE (click + satisfaction) → per-task report and gate summary →
#   export a SavedModel version → start the local TF-Serving-compatible server → REST predictions → stop the server.
#
# Everything lands under ./output (override with MMOE_OUTPUT): runs/<timestamp>/ for each training run,
# export/mmoe/<version>/ for each exported version, latest -> the newest run. Safe to re-run: each run gets
# its own folder and a new model version.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="${MMOE_OUTPUT:-$repo/output}"
model_name="mmoe"

bash scripts/setup_env.sh
py="$repo/.venv/bin/python"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
run="$out/runs/$stamp"
mkdir -p "$out/runs" "$out/export"

echo; echo "== 1/4 train + evaluate (run folder: $run)"
"$py" -m training train --config training/configs/default.yaml --set train.verbose=1 --output-dir "$run"
ln -sfn "runs/$stamp" "$out/latest"

echo; echo "== 2/4 export a SavedModel version (base path: $out/export)"
"$py" -m serving export --model "$run/model.keras" --base-path "$out/export" --model-name "$model_name" \
  --warmup-data data/sample/impressions.csv

port="${MMOE_PORT:-$("$py" -c 'from serving.testing import free_port; print(free_port())')}"
url="http://127.0.0.1:$port"
echo; echo "== 3/4 start the local TF-Serving-compatible server on $url"
"$py" -m serving serve --base-path "$out/export" --model-name "$model_name" --port "$port" > "$run/server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  if curl -sf "$url/v1/models/$model_name" > /dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then echo "server exited early; log:"; cat "$run/server.log"; exit 1; fi
  sleep 0.5
done
curl -sf "$url/v1/models/$model_name"; echo

echo; echo "== 4/4 REST predictions for 3 impressions"
"$py" - "$run/request.json" <<'PY'
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
"$py" -m serving predict --url "$url" --model-name "$model_name" --data data/sample/impressions.csv --rows 3

echo; echo "== done. Artifacts:"
echo "  run folder      $run  (model.keras, report.json/txt, gates.json/png, history.csv, tensorboard/)"
echo "  export base     $out/export/$model_name/  (versions: $(ls "$out/export/$model_name" | grep -E '^[0-9]+$' | sort -n | tr '\n' ' '))"
echo "  server log      $run/server.log"
