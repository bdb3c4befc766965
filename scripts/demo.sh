#!/usr/bin/env bash
# `make demo`: the echo example processor running natively (no JVM) against a local
# Kinesis (kinesalite) that this script starts and stops, with SQLite checkpoints.
#
#   scripts/demo.sh [BUILD_DIR]        (default: build; run after the build)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(cd "$repo_root" && cd "${1:-build}" && pwd)"
kclpp="$build/cli/kclpp"
echo_example="$build/examples/kclpp_echo"
work="$(mktemp -d -t kclpp-demo.XXXXXX)"
server_pid=""
worker_pid=""
cleanup() {
  [[ -n $worker_pid ]] && kill "$worker_pid" 2>/dev/null || true
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Local servers accept any credentials, but the client signs every request: give it some.
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1
export KCLPP_LOG_LEVEL=info

port="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
endpoint="http://127.0.0.1:$port"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "starting kinesalite on $endpoint"
node "$repo_root/node_modules/kinesalite/cli.js" --port "$port" --createStreamMs 0 \
  >"$work/kinesalite.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "$endpoint" && break
  sleep 0.1
done

step "kclpp create-stream --stream demo --shards 2"
"$kclpp" create-stream --endpoint "$endpoint" --stream demo --shards 2
"$kclpp" shards --endpoint "$endpoint" --stream demo

step "kclpp put: 30 records"
for i in $(seq 1 30); do echo "order $i: $((RANDOM % 90 + 10)) widgets"; done |
  "$kclpp" put --endpoint "$endpoint" --stream demo

step "the echo example, natively: kclpp_echo 10 --stream demo (checkpoint every 10 records)"
"$echo_example" 10 --stream demo --endpoint "$endpoint" --application demo-app \
  --initial-position TRIM_HORIZON --idle-time-ms 200 \
  --checkpoint-store "sqlite:$work/checkpoints.db" 2>"$work/worker.log" &
worker_pid=$!
for _ in $(seq 100); do
  [[ $(grep -c 'data=order' "$work/worker.log" || true) -ge 30 ]] && break
  sleep 0.1
done
kill -TERM "$worker_pid"
wait "$worker_pid" && status=0 || status=$?
worker_pid=""
grep -E 'data=order|shutdown|lease|checkpoint' "$work/worker.log" | sed 's/^/  /'
echo "  worker exit status after SIGTERM: $status"

step "checkpoint rows in $work/checkpoints.db"
sqlite3 -header -column "$work/checkpoints.db" \
  'SELECT application, stream, shard_id, sequence_number, sub_sequence_number FROM kclpp_checkpoints ORDER BY shard_id'

processed="$(grep -c 'data=order' "$work/worker.log" || true)"
step "done: $processed of 30 records processed; kinesalite stopped"
[[ $processed -ge 30 && $status -eq 0 ]]
