#!/usr/bin/env bash
# The find_package test: installs kclpp from an already built tree into a fresh prefix,
# builds tests/consumer against that prefix only, and drives the resulting processor with
# a short MultiLangDaemon transcript (initialize, processRecords with one record, EOF).
# Also checks that README.md shows this processor verbatim.
#
#   tests/consumer/check.sh [BUILD_DIR]      (default: build; run from anywhere)
#   tests/consumer/check.sh BUILD_DIR PREFIX (kclpp already installed in PREFIX, e.g. the
#                                             unpacked .deb files' usr/: no cmake --install)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="$(cd "$repo_root" && cd "${1:-build}" && pwd)"
prefix="${2:-$build/consumer-prefix}"
consumer_build="$build/consumer"
build_type="$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build/CMakeCache.txt")"

test_name="consumer test"
# shellcheck source=../shell_support.sh
source "$repo_root/tests/shell_support.sh"

# The README's "complete processor" must be this very file, so the README never drifts.
readme_example="$(awk '/^```cpp/{n++; next} /^```/{if (n == 1) exit} n == 1' "$repo_root/README.md")"
[[ $readme_example == "$(cat "$repo_root/tests/consumer/main.cpp")" ]] ||
  fail "the first cpp block of README.md differs from tests/consumer/main.cpp"

rm -rf "$consumer_build"
if (($# < 2)); then
  rm -rf "$prefix"
  quiet cmake --install "$build" --prefix "$prefix"
fi
# Only the installed prefix may satisfy find_package (no user or system package registry).
quiet cmake -G Ninja -S "$repo_root/tests/consumer" -B "$consumer_build" \
  -DCMAKE_BUILD_TYPE="${build_type:-RelWithDebInfo}" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF
quiet cmake --build "$consumer_build"

found="$(sed -n 's/^kclpp_DIR:PATH=//p' "$consumer_build/CMakeCache.txt")"
[[ $found == "$prefix"/* ]] || fail "find_package(kclpp) found '$found', not the test prefix"

transcript='{"action":"initialize","shardId":"shardId-000000000001","sequenceNumber":"TRIM_HORIZON","subSequenceNumber":0}
{"action":"processRecords","records":[{"data":"bWVvdw==","partitionKey":"cat","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","approximateArrivalTimestamp":1476889707000,"subSequenceNumber":0,"action":"record"}],"millisBehindLatest":0}'

out="$consumer_build/stdout.txt"
err="$consumer_build/stderr.txt"
status=0
printf '%s\n' "$transcript" | timeout 30 "$consumer_build/kclpp_consumer" >"$out" 2>"$err" ||
  status=$?
if ((status != 0)); then
  cat "$err" >&2
  fail "kclpp_consumer exited with $status (expected 0 at stdin EOF)"
fi
for action in initialize processRecords; do
  grep -E "\"responseFor\" *: *\"$action\"" "$out" | grep -Eq '"action" *: *"status"' ||
    { cat "$out" "$err" >&2; fail "no status line for $action on stdout"; }
done
grep -q 'cat' "$err" || { cat "$err" >&2; fail "the record was not logged to stderr"; }
help="$("$consumer_build/kclpp_consumer" --help 2>&1)" || fail "kclpp_consumer --help failed"
grep -q -- '--stream NAME' <<<"$help" || fail "kclpp_consumer --help does not document native mode"
echo "consumer test: passed (find_package(kclpp) from $prefix, 2 status lines)"
