#!/usr/bin/env bash
# The package test (make test's package stage; docs/operations.md §4): builds the kclpp and
# kclpp-dev .deb files with CPack from an already built tree (no compile), then
#  1. checks their metadata (dpkg-deb --info): names, version, architecture, maintainer,
#     sections, descriptions; the runtime's Depends cover every library the tool links,
#     and the -dev package depends on the runtime of the same version;
#  2. checks their contents (dpkg-deb --contents): the expected files, the units under
#     /lib/systemd/system, nothing of the build tree or of the staging directory;
#  3. unpacks both into a temporary root (dpkg-deb -x), runs ROOT/usr/bin/kclpp, and builds
#     and runs the find_package consumer against ROOT/usr (tests/consumer/check.sh), then
#     checks that every Debian package whose files that build used is in kclpp-dev's Depends;
#  4. verifies the systemd units (systemd-analyze verify, with ExecStart pointing into ROOT)
#     and the settings a clean shutdown depends on (KillMode=mixed, Type=notify, ...).
#
#   tests/package/check.sh [BUILD_DIR]      (default: build; run from anywhere)
#
# Without systemd-analyze the unit check is skipped with a message, except under KCLPP_CI.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="$(cd "$repo_root" && cd "${1:-build}" && pwd)"
out="$build/packages"

test_name="package test"
# shellcheck source=../shell_support.sh
source "$repo_root/tests/shell_support.sh"

root="$(mktemp -d "${TMPDIR:-/tmp}/kclpp-package-root.XXXXXX")"
trap 'rm -rf "$root"' EXIT

# --- build the packages ----------------------------------------------------------------
version="$(sed -n 's/^project(kclpp VERSION \([0-9.]*\).*/\1/p' "$repo_root/CMakeLists.txt")"
[[ -n $version ]] || fail "no project(kclpp VERSION ...) in CMakeLists.txt"
release="$(sed -n 's/^KCLPP_PACKAGE_RELEASE:STRING=//p' "$build/CMakeCache.txt")"
arch="$(dpkg --print-architecture)"
rm -rf "$out"
quiet cpack --config "$build/CPackConfig.cmake" -B "$out"
runtime="$out/kclpp_${version}-${release}_${arch}.deb"
dev="$out/kclpp-dev_${version}-${release}_${arch}.deb"
[[ -f $runtime && -f $dev ]] || fail "cpack made $(ls "$out"/*.deb 2>/dev/null | xargs -n1 basename), not $(basename "$runtime") and $(basename "$dev")"

# --- 1. metadata -------------------------------------------------------------------------
field() { dpkg-deb --field "$1" "$2"; }
expect_field() {  # DEB FIELD VALUE
  local got
  got="$(field "$1" "$2")"
  [[ $got == "$3" ]] || fail "$(basename "$1"): $2 is '$got', expected '$3'"
}
for deb in "$runtime" "$dev"; do
  expect_field "$deb" Version "$version-$release"
  expect_field "$deb" Architecture "$arch"
  [[ $(field "$deb" Maintainer) =~ ^[^\<]+\ \<[^@\>]+@[^\>]+\>$ ]] ||
    fail "$(basename "$deb"): Maintainer '$(field "$deb" Maintainer)' is not 'Name <email>'"
  synopsis="$(field "$deb" Description | sed -n 1p)"
  ((${#synopsis} > 10 && ${#synopsis} <= 80)) || fail "$(basename "$deb"): synopsis '$synopsis'"
  (($(field "$deb" Description | wc -l) > 2)) || fail "$(basename "$deb"): no extended description"
done
expect_field "$runtime" Package kclpp
expect_field "$runtime" Section net
expect_field "$dev" Package kclpp-dev
expect_field "$dev" Section libdevel

# Depends as one package name per line (alternatives split too).
depends_names() { field "$1" Depends | tr ',|' '\n\n' | sed 's/(.*)//; s/^ *//; s/ *$//' | grep -v '^$'; }
runtime_depends="$(depends_names "$runtime")"
dev_depends="$(field "$dev" Depends)"
[[ $dev_depends == *"kclpp (= $version-$release)"* ]] ||
  fail "kclpp-dev does not depend on kclpp (= $version-$release): $dev_depends"

# --- 2. contents ------------------------------------------------------------------------
contents="$(dpkg-deb --contents "$runtime" | awk '{print $NF}'; dpkg-deb --contents "$dev" | awk '{print $NF}')"
for path in ./usr/bin/kclpp ./lib/systemd/system/kclpp-daemon@.service ./lib/systemd/system/kclpp-store@.service \
  ./usr/share/doc/kclpp/copyright ./usr/share/doc/kclpp/README.md ./usr/share/doc/kclpp/examples/app.properties \
  ./usr/share/doc/kclpp/examples/store-NAME.env ./usr/share/doc/kclpp-dev/copyright \
  ./usr/include/kclpp/processor.hpp ./usr/include/kclpp/app/main.hpp ./usr/lib/cmake/kclpp/kclppConfig.cmake \
  ./usr/lib/cmake/kclpp/kclppConfigVersion.cmake ./usr/lib/cmake/kclpp/kclppTargets.cmake; do
  grep -qxF "$path" <<<"$contents" || fail "no $path in the packages"
done
for lib in processor kcl aws native pipeline app; do
  grep -qxF "./usr/lib/libkclpp_$lib.a" <<<"$contents" || fail "no libkclpp_$lib.a in kclpp-dev"
done
# Nothing of the build: internal helpers, tests, examples, the staging tree, /usr/local.
if grep -E 'internal|/tests?/|examples/[^/]*\.cpp|_CPack_|/usr/local|/usr/lib/systemd' <<<"$contents"; then
  fail "the packages hold files that are not for users (above)"
fi
# The runtime and -dev packages must not share a file (dpkg would refuse the second).
shared="$(dpkg-deb --contents "$runtime" | awk '$1 !~ /^d/ {print $NF}' | sort |
  comm -12 - <(dpkg-deb --contents "$dev" | awk '$1 !~ /^d/ {print $NF}' | sort))"
[[ -z $shared ]] || fail "files in both packages: $shared"

# --- 3. unpack, run the tool, build the consumer --------------------------------------
dpkg-deb -x "$runtime" "$root"
dpkg-deb -x "$dev" "$root"
if grep -rlF -e "$build" -e "$repo_root" "$root"; then fail "build paths in the files above"; fi
if grep -rlE '/work/|/home/' "$root/usr/lib" "$root/usr/bin"; then fail "build-machine paths in the files above"; fi

help="$("$root/usr/bin/kclpp" --help 2>&1)" || fail "ROOT/usr/bin/kclpp --help failed: $help"
for command in daemon store put get; do
  grep -q "$command" <<<"$help" || fail "kclpp --help does not list '$command'"
done
# Every library the tool links comes from a package in its Depends (dpkg-shlibdeps's work).
# dpkg knows a file by the path its package ships, /lib/... or /usr/lib/... (merged /usr),
# so both are asked; one dpkg-query for all paths (each call costs a database load).
alias_of() { sed -E 's,^/usr/lib/,/lib/,; t; s,^/lib/,/usr/lib/,' <<<"$1"; }
owner_table() {  # PATH... -> "PATH PACKAGE" lines, one per owning package
  local args=() path
  for path in "$@"; do args+=("$path" "$(alias_of "$path")"); done
  dpkg-query -S "${args[@]}" 2>/dev/null | awk -F': ' '{
    n = split($1, pkgs, ", ")
    for (i = 1; i <= n; i++) { sub(/:.*/, "", pkgs[i]); print $2, pkgs[i] } }' || true
}
owners_in() {  # TABLE PATH -> the packages owning PATH (or its alias)
  awk -v p="$2" -v a="$(alias_of "$2")" '$1 == p || $1 == a {print $2}' <<<"$1" | sort -u
}
covered() {  # WHAT PATH OWNERS DEPENDS: fails unless one owner is in DEPENDS
  [[ -n $3 ]] || fail "no Debian package holds $2 ($1)"
  grep -qxF -f <(printf '%s\n' "$3") <<<"$4" ||
    fail "$1 uses $2 (package $(tr '\n' ' ' <<<"$3")), which is not in Depends: $(tr '\n' ' ' <<<"$4")"
}
needed="$(readelf -d "$root/usr/bin/kclpp" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')"
lib_paths="$(ldd "$root/usr/bin/kclpp" | awk -v needed="$needed" '
  BEGIN { split(needed, n, "\n"); for (i in n) want[n[i]] = 1 }
  $2 == "=>" && ($1 in want) { print $3 }')"
(($(wc -l <<<"$lib_paths") == $(wc -l <<<"$needed"))) || fail "ldd does not find every library kclpp links: $needed"
mapfile -t lib_array <<<"$lib_paths"
table="$(owner_table "${lib_array[@]}")"
for path in "${lib_array[@]}"; do
  covered "kclpp" "$path" "$(owners_in "$table" "$path")" "$runtime_depends"
done
linked=${#lib_array[@]}
((linked >= 10)) || fail "readelf lists only $linked libraries of kclpp"

"$repo_root/tests/consumer/check.sh" "$build" "$root/usr"
# Each system file the consumer's build found (the dependencies kclppConfig.cmake pulls
# in) belongs to a package that kclpp-dev depends on, or a user of kclpp-dev hits
# "Could not find a package configuration file" that the package should have prevented.
cache="$build/consumer/CMakeCache.txt"
dev_names="$(depends_names "$dev")"
# (pkg_check_modules leaves pkgcfg_lib_<prefix>_<lib> entries.)
mapfile -t dep_paths < <(grep -E '^([A-Za-z0-9_-]+_(DIR|LIBRARY[A-Z_]*|INCLUDE_DIR[A-Z_]*)|pkgcfg_lib_[A-Za-z0-9_-]+):(PATH|FILEPATH)=/' "$cache" |
  grep -v '^CMAKE_' | sed 's/^[^=]*=//' | grep -v "^$root" | sort -u)
table="$(owner_table "${dep_paths[@]}")"
checked=0
for path in "${dep_paths[@]}"; do
  owners="$(owners_in "$table" "$path")"
  [[ -n $owners ]] || continue  # not a packaged file (none is expected; a local install)
  covered "the consumer's build" "$path" "$owners" "$dev_names"
  checked=$((checked + 1))
done
((checked >= 8)) || fail "only $checked dependency paths in the consumer's CMakeCache.txt (expected the 12 of kclppConfig.cmake)"

# --- 4. the systemd units -----------------------------------------------------------------
units="$root/lib/systemd/system"
for unit in kclpp-daemon@.service kclpp-store@.service; do
  for setting in KillMode=mixed Type=notify NotifyAccess=main Restart=on-failure DynamicUser=yes \
    ProtectSystem=strict NoNewPrivileges=yes; do
    grep -qx "$setting" "$units/$unit" || fail "$unit: no $setting"
  done
  grep -qE '^WatchdogSec=[1-9]' "$units/$unit" || fail "$unit: no WatchdogSec="
  grep -q '^StateDirectory=kclpp/' "$units/$unit" || fail "$unit: no StateDirectory=kclpp/..."
  # An interpreter child (node's JIT) cannot run with these.
  if grep -E '^(MemoryDenyWriteExecute=yes|SystemCallFilter=)' "$units/$unit"; then
    fail "$unit: a setting that breaks interpreter children"
  fi
done
# TimeoutStopSec must outlast the graceful shutdown: shutdownGraceMillis (10 s) for the
# daemon, --shutdown-grace-ms (60 s) for the store.
stop_seconds() { sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$units/$1"; }
(($(stop_seconds kclpp-daemon@.service) > 10)) || fail "kclpp-daemon@: TimeoutStopSec not above the 10 s shutdown grace"
(($(stop_seconds kclpp-store@.service) > 60)) || fail "kclpp-store@: TimeoutStopSec not above the 60 s shutdown grace"
for script in postinst prerm postrm; do
  dpkg-deb --ctrl-tarfile "$runtime" | tar -xOf - "./$script" | sh -n || fail "$script: syntax error"
done

if command -v systemd-analyze >/dev/null 2>&1; then
  # verify checks that ExecStart's binary exists: point it at the unpacked one. Any
  # output (an unknown key, a bad value) is a failure, though verify exits 0 for some.
  mkdir "$root/verify"
  for unit in "$units"/*.service; do
    sed "s|/usr/bin/kclpp|$root/usr/bin/kclpp|g" "$unit" >"$root/verify/$(basename "$unit")"
  done
  report="$(systemd-analyze verify "$root"/verify/*.service 2>&1)" || fail "systemd-analyze verify: $report"
  [[ -z $report ]] || fail "systemd-analyze verify: $report"
  verified="systemd-analyze verify passed"
elif [[ -n ${KCLPP_CI:-} ]]; then
  fail "systemd-analyze is missing (Debian package systemd)"
else
  verified="systemd-analyze missing: units not verified"
fi

echo "package test: passed ($(basename "$runtime") $(du -k "$runtime" | cut -f1) KiB," \
  "$(basename "$dev") $(du -k "$dev" | cut -f1) KiB; $linked libraries and $checked dependency paths covered by Depends; $verified)"
