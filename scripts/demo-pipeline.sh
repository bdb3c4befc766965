#!/usr/bin/env bash
# `make demo`, second part: the Triton pipeline end to end against local servers that this
# script starts and stops (kinesalite for Kinesis, s3rver for S3):
#   events -> `kclpp spoold` (SpoolClient) and Producer::put_many -> Kinesis
#   -> `kclpp store` (.tri archives in S3, triton_checkpoint rows in SQLite)
#   -> `kclpp cat` (JSON lines back) and `kclpp stats` (checkpoint ages).
# Exits non-zero unless `kclpp cat` reads back every event sent, each exactly once.
#
#   scripts/demo-pipeline.sh [BUILD_DIR]   (default: build; needs targets kclpp, kclpp_triton_producer)
#   KCLPP_DEMO_KEEP=1 keeps the temporary directory (server and tool logs, triton.db, s3/).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(cd "$repo_root" && cd "${1:-build}" && pwd)"
kclpp="$build/cli/kclpp"
producer="$build/examples/kclpp_triton_producer"
work="$(mktemp -d -t kclpp-demo-pipeline.XXXXXX)"
pids=()     # every server and tool started in the background, killed on exit
cleanup() {
  local i  # newest first: the tools stop (and flush) while the servers still answer
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n ${KCLPP_DEMO_KEEP:-} ]]; then echo "kept $work (logs, triton.db, s3/)"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The clients sign every request: kinesalite accepts any key, s3rver only its own S3RVER.
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE
export KCLPP_LOG_LEVEL="${KCLPP_LOG_LEVEL:-info}"
unset TRITON_CONFIG TRITON_DB TRITON_CLIENT TRITON_BUCKET

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
indent() { sed 's/^/  /'; }
# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s; false when it never succeeded.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}
# stop PID: SIGTERM, waits, returns its exit status; forgets the PID for the cleanup.
stop() {
  kill -TERM "$1" 2>/dev/null || true  # it may have exited already: wait gives its status
  local status=0 pid kept=()
  wait "$1" || status=$?
  for pid in "${pids[@]}"; do [[ $pid == "$1" ]] || kept+=("$pid"); done
  pids=("${kept[@]}")
  return "$status"
}

kinesis="http://127.0.0.1:$(free_port)"
s3="http://127.0.0.1:$(free_port)"
spool="tcp://127.0.0.1:$(free_port)"
bucket=demo-archive
client=demo
today="$(date -u +%Y%m%d)"

step "starting kinesalite on $kinesis and s3rver on $s3 (bucket $bucket)"
node "$repo_root/node_modules/kinesalite/cli.js" --port "${kinesis##*:}" --createStreamMs 0 \
  >"$work/kinesalite.log" 2>&1 &
pids+=($!)
mkdir "$work/s3"
# --openssl-legacy-provider: s3rver's listing tokens use DES (legacy in OpenSSL 3).
node --openssl-legacy-provider "$repo_root/node_modules/s3rver/bin/s3rver.js" -d "$work/s3" \
  -a 127.0.0.1 -p "${s3##*:}" --configure-bucket "$bucket" >"$work/s3rver.log" 2>&1 &
pids+=($!)
wait_for 15 curl -s -o /dev/null "$kinesis" || { cat "$work/kinesalite.log"; exit 1; }
wait_for 15 curl -sf -o /dev/null "$s3/$bucket" || { cat "$work/s3rver.log"; exit 1; }

step "triton.yaml: logical stream 'events' -> Kinesis stream demo_events, keyed by user_id"
cat >"$work/triton.yaml" <<EOF
events:
  name: demo_events
  partition_key: user_id
  region: us-east-1
EOF
indent <"$work/triton.yaml"
"$kclpp" create-stream --endpoint "$kinesis" --stream demo_events --shards 2

step "kclpp spoold on $spool; kclpp_triton_producer --spool: 40 events through it"
"$kclpp" spoold --config "$work/triton.yaml" --endpoint "$spool" --kinesis-endpoint "$kinesis" \
  --flush-interval-ms 50 2>"$work/spoold.log" &
spoold_pid=$!
pids+=("$spoold_pid")
"$producer" --config "$work/triton.yaml" --stream events --spool --spool-endpoint "$spool" \
  --count 40 --first 0 2>&1 | indent
# The producer's close() waited until ZeroMQ took every event; give spoold a moment to take
# them off its socket. SIGTERM: it stops receiving, writes all it holds to Kinesis, exits 0.
sleep 0.5
stop "$spoold_pid" || { echo "  kclpp spoold failed:"; indent <"$work/spoold.log"; exit 1; }
grep -iE 'written|received|stop|flush' "$work/spoold.log" | indent || true

step "kclpp_triton_producer (blocking Producer::put_many): 25 more events"
"$producer" --config "$work/triton.yaml" --stream events --endpoint "$kinesis" \
  --count 25 --first 40 2>&1 | indent
sent=65

step "kclpp store: archives every 2 s to s3://$bucket, checkpoints in triton_checkpoint (SQLite)"
cat_events() {
  "$kclpp" cat --config "$work/triton.yaml" --stream events --bucket "$bucket" --client "$client" \
    --s3-endpoint "$s3" --start-date "$today" --end-date "$(date -u +%Y%m%d)" 2>>"$work/cat.log"
}
all_archived() { [[ $(cat_events | wc -l) -ge $sent ]]; }
mkdir "$work/spool"
"$kclpp" store --config "$work/triton.yaml" --stream events --bucket "$bucket" --client "$client" \
  --endpoint "$kinesis" --s3-endpoint "$s3" --checkpoint-db "triton+sqlite:$work/triton.db" \
  --spool-dir "$work/spool" --rotate-interval-s 2 --idle-time-ms 200 --shard-sync-ms 1000 \
  --shutdown-grace-ms 10000 \
  2>"$work/store.log" &
store_pid=$!
pids+=("$store_pid")
# Until `kclpp cat` sees every event (or the store died: no use waiting then).
archived_or_store_gone() { ! kill -0 "$store_pid" 2>/dev/null || all_archived; }
wait_for 20 archived_or_store_gone || echo "  (not every event archived after 20 s: see below)"
status=0
stop "$store_pid" || status=$?
grep -iE 'upload|checkpoint|rotat|done|error|warn' "$work/store.log" | indent || true
echo "  kclpp store exit status after SIGTERM: $status"

step "S3 objects (s3rver keeps each as a file under its directory)"
(cd "$work/s3/$bucket" && find . -name '*._S3rver_object' | sed 's|^\./||; s|\._S3rver_object$||' | sort) |
  tee "$work/keys.txt" | indent
metadata_key="$(grep '\.metadata$' "$work/keys.txt" | head -1 || true)"
if [[ -n $metadata_key ]]; then
  step "$metadata_key"
  indent <"$work/s3/$bucket/$metadata_key._S3rver_object"
  echo
fi

step "kclpp cat --stream events --start-date $today (first 5 lines)"
cat_events >"$work/cat.jsonl" || { echo "  kclpp cat failed:"; tail -5 "$work/cat.log" | indent; }
head -5 "$work/cat.jsonl" | indent
echo "  ... $(wc -l <"$work/cat.jsonl") lines"

step "triton_checkpoint rows in $work/triton.db"
if [[ -f $work/triton.db ]]; then  # (the sqlite3 CLI would create an empty one)
  sqlite3 -header -column "$work/triton.db" 'SELECT * FROM triton_checkpoint ORDER BY shard' | indent || true
else
  echo "  (no database: kclpp store never checkpointed)"
fi

step "kclpp stats --client $client"
"$kclpp" stats --checkpoint-db "triton+sqlite:$work/triton.db" --client "$client" | indent || true

# Every event sent, read back from S3 exactly once (seq 0..64).
check="$(/usr/bin/python3 - "$work/cat.jsonl" "$sent" <<'EOF'
import json, sys
seqs = sorted(json.loads(line)["seq"] for line in open(sys.argv[1]))
want = list(range(int(sys.argv[2])))
missing = sorted(set(want) - set(seqs))
extra = len(seqs) - len(set(seqs))
print(f"{len(seqs)} records read back; missing seq {missing or 'none'}; {extra} duplicates")
sys.exit(0 if seqs == want else 1)
EOF
)" && ok=1 || ok=0
step "done: $sent events sent; $check; servers stopped"
[[ $ok -eq 1 && $status -eq 0 ]]
