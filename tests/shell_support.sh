# Sourced by the shell tests (tests/consumer/check.sh, tests/package/check.sh). Set
# test_name before sourcing; it starts every failure message.

fail() { echo "$test_name: FAILED: $*" >&2; exit 1; }

# Runs a step quietly; on failure shows its output.
quiet() {
  local log
  log="$(mktemp)"
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    fail "$*"
  fi
  rm -f "$log"
}
