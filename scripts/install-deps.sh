#!/usr/bin/env bash
# Installs every system (Debian) and npm dependency of kclpp. Idempotent, and fast when
# everything is present: one dpkg-query, one stat, one line of output.
#
#   scripts/install-deps.sh            # from anywhere; acts on the repository it lives in
#
# Debian packages are installed only when missing (`apt-get update` at most once per run,
# sudo only when not root). Node packages come from the committed package-lock.json via
# `npm ci`, re-run only when node_modules is missing or older than the lock file.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Debian packages the build, the tests, the sanitizer and fuzz builds and the benchmarks need.
debian_packages=(
  build-essential cmake ninja-build g++ curl
  clang libclang-rt-14-dev           # fuzz build (libFuzzer) and clang sanitizer runtimes
  googletest libgtest-dev            # unit + integration tests
  libbenchmark-dev                   # bench/
  nlohmann-json3-dev libsimdjson-dev # JSON: strict writer / fast reader
  libcurl4-openssl-dev libssl-dev    # native-reader: Kinesis HTTP API, SigV4
  zlib1g-dev                         # aws: CRC32 of the event-stream frames (fan-out)
  libnghttp2-dev                     # bench/fanout: its HTTP/2 event-stream server
  libexpat1-dev                      # aws: the XML replies of S3 and STS
  libsqlite3-dev libpq-dev sqlite3   # checkpoint stores (sqlite3: the demo shows the rows)
  postgresql                         # a Postgres the integration tests start themselves
  python3-botocore python3-boto3     # independent SigV4 signer (tests), boto3 baseline (bench)
  libmsgpack-cxx-dev libsnappy-dev libyaml-cpp-dev   # pipeline: records, .tri archives, config
  libzmq3-dev cppzmq-dev             # pipeline: tritond-compatible spool daemon and client
  libsystemd-dev pkg-config          # cli: sd_notify (Type=notify, WatchdogSec)
  python3-msgpack python3-snappy python3-crc32c python3-zmq   # py-triton cross-checks, baselines
  dpkg-dev file systemd              # make package: dpkg-shlibdeps and file (CPack's Depends),
                                     # systemd-analyze verify of the units (tests/package)
  libcpp-httplib-dev                 # cli: the operations endpoint (/metrics, /healthz, /readyz)
  prometheus                         # tests: `promtool check metrics` on the scraped page
)
# Node.js may come from elsewhere than Debian (it does on the dev machines): only when no
# node/npm is on PATH do we ask Debian for its own.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  debian_packages+=(nodejs npm)
fi

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

did_something=0

# --- Debian ---------------------------------------------------------------------------
missing=()
for pkg in "${debian_packages[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
  [[ $status == installed ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "install-deps: installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
  did_something=1
fi

# --- npm (test servers and reference processors, pinned by package-lock.json) ------------
lock="$repo_root/package-lock.json"
stamp="$repo_root/node_modules/.kclpp-npm-ci-stamp"
if [[ -f $lock ]]; then
  # The stamp holds the checksum of the lock and package.json it was installed from:
  # modification times say nothing in a fresh checkout or a second git worktree.
  wanted="$(cat "$lock" "$repo_root/package.json" | sha256sum | cut -d' ' -f1)"
  if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
    if [[ -L $repo_root/node_modules ]]; then
      # A worktree sharing another tree's node_modules: npm ci would empty the shared
      # directory through the link and install a private copy here.
      echo "install-deps: note: node_modules is a link to $(readlink "$repo_root/node_modules");" \
        "not running npm ci through it (run scripts/install-deps.sh in that tree)" >&2
    else
      echo "install-deps: npm ci (package-lock.json changed or node_modules missing)"
      (cd "$repo_root" && npm ci --no-audit --no-fund --loglevel=error)
      echo "$wanted" >"$stamp"
      did_something=1
    fi
  fi
else
  echo "install-deps: note: no package-lock.json in $repo_root, skipping npm ci" >&2
fi

if ((did_something == 0)); then
  echo "install-deps: all dependencies present"
fi
