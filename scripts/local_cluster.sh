#!/usr/bin/env bash
# A parameter-server cluster on this machine: 1 chief (coordinator), N workers and M ps tasks as local processes
# on free loopback ports, each with its TF_CONFIG; every task runs the same `python -m training train ...` command
# with `--set train.distribute=parameter_server`. The chief runs in the foreground; when it exits (or this script is
# interrupted) the worker and ps processes are stopped.
#
# Usage: scripts/local_cluster.sh [--workers N] [--ps M] [--state-dir DIR] -- <arguments of `python -m training train`>
# Example: scripts/local_cluster.sh --workers 2 --ps 2 -- --config training/configs/parameter_server.yaml
# DIR (default: a fresh temp dir) receives tasks.tsv (role, index, port, pid) and one log per worker/ps task.
# Exit code: the chief's.
set -euo pipefail

workers=2
ps=2
state_dir=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --workers) workers="$2"; shift 2 ;;
    --ps) ps="$2"; shift 2 ;;
    --state-dir) state_dir="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "local_cluster.sh: unknown option $1 (arguments for training go after --)" >&2; exit 2 ;;
  esac
done
if ! [[ "$workers" =~ ^[1-9][0-9]*$ && "$ps" =~ ^[1-9][0-9]*$ ]]; then
  echo "local_cluster.sh: --workers and --ps must be integers >= 1 (got $workers, $ps)" >&2
  exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
state_dir="${state_dir:-$(mktemp -d -t mmoe-cluster-XXXXXX)}"
mkdir -p "$state_dir"

# Free loopback ports, one per task (bound and released at once; a race with another program is possible).
read -r -a ports <<< "$("$python" - "$((1 + workers + ps))" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("localhost", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)"
cluster="$("$python" - "$workers" "$ps" "${ports[@]}" <<'PY'
import json, sys
workers, ps, ports = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
hosts = [f"localhost:{p}" for p in ports]
print(json.dumps({"chief": hosts[:1], "worker": hosts[1 : 1 + workers], "ps": hosts[1 + workers :]}))
PY
)"

pids=()
stop_servers() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

printf 'role\tindex\tport\tpid\n' > "$state_dir/tasks.tsv"
start_task() {  # role index port
  TF_CONFIG="{\"cluster\": $cluster, \"task\": {\"type\": \"$1\", \"index\": $2}}" \
    "$python" -m training train "${train_args[@]}" --set train.distribute=parameter_server \
    > "$state_dir/$1-$2.log" 2>&1 &
  pids+=("$!")
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$!" >> "$state_dir/tasks.tsv"
}
train_args=("$@")
for ((i = 0; i < ps; i++)); do start_task ps "$i" "${ports[$((1 + workers + i))]}"; done
for ((i = 0; i < workers; i++)); do start_task worker "$i" "${ports[$((1 + i))]}"; done
echo "local_cluster: $workers worker(s), $ps ps task(s); tasks and logs in $state_dir" >&2

set +e
TF_CONFIG="{\"cluster\": $cluster, \"task\": {\"type\": \"chief\", \"index\": 0}}" \
  "$python" -m training train "${train_args[@]}" --set train.distribute=parameter_server &
chief=$!
pids+=("$chief")
printf 'chief\t0\t%s\t%s\n' "${ports[0]}" "$chief" >> "$state_dir/tasks.tsv"
wait "$chief"
status=$?
exit "$status"
