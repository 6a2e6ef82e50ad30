#!/usr/bin/env bash
# Builds duet twice — a normal tree and one with AddressSanitizer + UndefinedBehaviorSanitizer —
# and runs every Criterion suite (through ctest) in both. Exits non-zero when anything fails,
# including a sanitizer report or a leak.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc)

# Suites that need the shared models skip when they are missing; a run that skips them
# must not look green, so it stops here unless the caller asks for it.
models=${DUET_TEST_MODELS:-$(cd .. && pwd)/shared/models}
if [[ ! -f $models/stories260K.gguf && ${DUET_ALLOW_MISSING_MODELS:-0} != 1 ]]; then
  echo "test models not found in $models: put the shared folder beside the clone, set" >&2
  echo "DUET_TEST_MODELS to its models folder, or DUET_ALLOW_MISSING_MODELS=1 to skip them" >&2
  exit 2
fi
export DUET_TEST_MODELS=$models
export DUET_LOG=${DUET_LOG:-error}
# LeakSanitizer reports fail the run, not just print
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The official openai package, for the OpenAI-compatibility suite: installed exactly as
# tests/node/package-lock.json pins it, again only when the lock changed.
if [[ ! -f tests/node/node_modules/.package-lock.json ||
      tests/node/package-lock.json -nt tests/node/node_modules/.package-lock.json ]]; then
  echo "== installing the tests' Node.js packages"
  npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
fi

run_tree() {
  local dir=$1; shift
  echo "== building $dir ($*)"
  cmake -S . -B "$dir" "$@" -DDUET_TEST_MODELS="$DUET_TEST_MODELS" >/dev/null
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
