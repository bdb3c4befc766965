#!/bin/sh
# Captures SubscribeToShard replies of kinesis-local 0.6.2 (an event-stream encoder that is
# not ours) into this folder: how the files here were made (README.md). Needs node, the
# AWS CLI and curl with HTTP/2; run from the repository's top folder. Sequence numbers and
# timestamps differ on every run: the tests know the committed files' values.
#   tests/data/event_stream/capture.sh [PLAIN_PORT] [TLS_PORT]
set -eu
port=${1:-45991}
tls_port=${2:-45992}
out=$(cd "$(dirname "$0")" && pwd)
kl=$(cd node_modules/kinesis-local && pwd)
work=$(mktemp -d)
(cd "$kl" && KINESIS_MOCK_PLAIN_PORT=$port KINESIS_MOCK_TLS_PORT=$tls_port \
  KINESIS_MOCK_CERT_PATH="$kl/server.json" CREATE_STREAM_DURATION=0ms \
  REGISTER_STREAM_CONSUMER_DURATION=0ms AWS_REGION=us-east-1 LOG_LEVEL=WARN \
  SHOULD_PERSIST_DATA=false exec node main.js >"$work/log" 2>&1) &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
export AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=y AWS_DEFAULT_REGION=us-east-1
k() { aws --endpoint-url "http://127.0.0.1:$port" kinesis "$@"; }
for _ in 1 2 3 4 5 6 7 8 9 10; do k list-streams >/dev/null 2>&1 && break; sleep 1; done

k create-stream --stream-name capture --shard-count 1
sleep 1
printf 'first record' >"$work/r1"
printf '\000\001\377\376 binary' >"$work/r2"
printf '{"json":"inside","n":3}' >"$work/r3"
k put-record --stream-name capture --partition-key alpha --data "fileb://$work/r1" --output text
k put-record --stream-name capture --partition-key 'ключ' --data "fileb://$work/r2" --output text
k put-record --stream-name capture --partition-key beta --data "fileb://$work/r3" --output text
stream_arn=arn:aws:kinesis:us-east-1:000000000000:stream/capture
k register-stream-consumer --stream-arn "$stream_arn" --consumer-name cap >/dev/null
sleep 1
arn=$(k describe-stream-consumer --stream-arn "$stream_arn" --consumer-name cap \
  --query ConsumerDescription.ConsumerARN --output text)

# subscribe ARN FILE SECONDS: the reply body of one SubscribeToShard (TRIM_HORIZON) as the
# hand probe of the issue sends it (kinesis-local accepts any signature).
subscribe() {
  curl -s -N --http2-prior-knowledge --max-time "$3" "http://127.0.0.1:$port/" \
    -H "X-Amz-Target: Kinesis_20131202.SubscribeToShard" \
    -H "Content-Type: application/x-amz-json-1.1" \
    -H "Authorization: AWS4-HMAC-SHA256 Credential=x/20261206/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=abc" \
    -H "X-Amz-Date: 20261206T000000Z" \
    -d "{\"ConsumerARN\":\"$1\",\"ShardId\":\"shardId-000000000000\",\"StartingPosition\":{\"Type\":\"TRIM_HORIZON\"}}" \
    -o "$2" || true   # --max-time ends the stream: curl's 28 is expected
}
# The three records, then empty events (kinesis-local sends one a second).
subscribe "$arn" "$out/kinesis_local_events.bin" 3.5 &
first=$!
sleep 1
# A second subscription of the same consumer and shard while the first runs.
subscribe "$arn" "$out/kinesis_local_in_use.bin" 1
wait $first
# A consumer that does not exist.
subscribe "${arn%:*}-gone:1" "$out/kinesis_local_not_found.bin" 1
ls -l "$out"/*.bin
