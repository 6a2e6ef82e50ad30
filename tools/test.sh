#!/usr/bin/env bash
# Builds duet twice — a normal tree and one with AddressSanitizer + UndefinedBehaviorSanitizer —
# and runs every Criterion suite (through ctest) in both. Exits non-zero when anything fails,
# including a sanitizer report or a leak.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc)
export DUET_LOG=${DUET_LOG:-error}
# LeakSanitizer reports fail the run, not just print
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_tree() {
  local dir=$1; shift
  echo "== building $dir ($*)"
  cmake -S . -B "$dir" "$@" >/dev/null
  if ! cmake --build "$dir" -j"$jobs" >"$dir/build.log" 2>&1; then
    grep -E 'error|warning' "$dir/build.log" >&2 || tail -n 40 "$dir/build.log" >&2
    return 1
  fi
  echo "== testing $dir"
  (cd "$dir" && ctest --output-on-failure -j"$jobs")
  if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$dir"/Testing/Temporary/LastTest.log; then
    echo "sanitizer reports in $dir:" >&2
    grep -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$dir"/Testing/Temporary/LastTest.log >&2
    return 1
  fi
}

run_tree build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_tree build-asan -DCMAKE_BUILD_TYPE=Debug -DDUET_SANITIZE=ON
echo "== all suites passed in both trees"
