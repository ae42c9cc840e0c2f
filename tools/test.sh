#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test.sh - the whole test suite from a fresh machine: installs what is
# needed (tools/setup.sh), builds with -Werror under gcc (tests run) and
# clang (must compile clean), then runs every unit and integration test
# through ctest. Integration tests need root and /dev/net/tun; without them
# they are reported as skipped, not passed.
#
# Then each fuzz target runs for FUZZ_SECONDS (default 60) under libFuzzer
# (tools/fuzz.sh; ctest already replayed the committed corpus in both
# builds) while, beside it, every unit test and fuzz replay runs under
# valgrind's memcheck (tools/memcheck.sh): each keeps one CPU busy, so
# together they take about as long as the slower. MEMCHECK=0 skips memcheck.
#
# Usage: tools/test.sh [ctest args...]   e.g. tools/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

# clang must build the library and tools cleanly too (-Werror).
CC=clang cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNETSTACK_TESTS=OFF >/dev/null
cmake --build build-clang -j"$jobs"

(cd build && ctest --output-on-failure --timeout 300 "$@")

# The same tests under AddressSanitizer and UndefinedBehaviorSanitizer.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNETSTACK_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ctest --output-on-failure --timeout 300 "$@")

# Bounded fuzzing of every target (new inputs stay in a scratch
# directory), and memcheck beside it.
memcheck_pid=
if [ "${MEMCHECK:-1}" = 1 ]; then
	bash tools/memcheck.sh build >build/memcheck.out 2>&1 &
	memcheck_pid=$!
fi
fuzz_rc=0
bash tools/fuzz.sh "${FUZZ_SECONDS:-60}" || fuzz_rc=$?
memcheck_rc=0
if [ -n "$memcheck_pid" ]; then
	wait "$memcheck_pid" || memcheck_rc=$?
	cat build/memcheck.out
fi
[ "$fuzz_rc" = 0 ] && [ "$memcheck_rc" = 0 ]
