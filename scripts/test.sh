#!/bin/sh
# `make test`: builds the server (Debug, what `make run` uses) and the AddressSanitizer +
# UndefinedBehaviorSanitizer build, then runs every test under the sanitizers with ctest, which
# starts and stops its own PostgreSQL (tests/testpg.sh) and ends with its summary line.
set -eu
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}

cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build -j "$JOBS"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Asan >/dev/null
cmake --build build-asan -j "$JOBS"

if [ -f package.json ]; then
    # Real clients for the end-to-end tests (twilio, eventsource, ...), pinned by package-lock.json.
    # npm writes node_modules/.package-lock.json last: without it the install is missing or partial
    # (an interrupted npm ci, or an emptied directory), whatever the directory's own state.
    if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error
    fi
fi

exec ctest --test-dir build-asan --output-on-failure -j "$JOBS" ${CTEST_ARGS:-}
