#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# memcheck.sh - every Criterion unit test executable, and every fuzz
# target replaying its committed corpus and regressions, under valgrind's
# memcheck: no invalid access, no use of uninitialised memory (which ASan
# does not see), no definite or indirect leak, in the test runner and in
# each test's child process (--trace-children follows Criterion's workers;
# system()'s shells and tools under /bin and /usr/bin are not traced).
# Suppressions are only for what is not netstack's bug (tools/memcheck.supp
# says why, entry by entry).
#
# Usage: tools/memcheck.sh [BUILD-DIR [TEST...]]
#   BUILD-DIR  a configured, built gcc tree without sanitizers (default build;
#              valgrind 3.19 cannot read clang 14's DWARF 5);
#              its tests/test_* and tests/fuzz/fuzz_* are run
#   TEST       names of test executables (default: all)
# Logs go to BUILD-DIR/memcheck/ (one per process); exits 1 if any test
# fails or any process reports an error, naming the log.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
shift || true
[ -d "$build/tests" ] || { echo "memcheck.sh: $build/tests: no built tests" >&2; exit 2; }
build=$(cd "$build" && pwd)

tests=("$@")
if [ "${#tests[@]}" -eq 0 ]; then
	for t in "$build"/tests/test_*; do
		[ -x "$t" ] && tests+=("$(basename "$t")")
	done
	for t in "$build"/tests/fuzz/fuzz_*; do
		[ -x "$t" ] && [ "$(basename "$t")" != fuzz_seeds ] && tests+=("fuzz/$(basename "$t")")
	done
fi

logs=$build/memcheck
rm -rf "$logs"
mkdir -p "$logs"
failed=0
start_all=$(date +%s)
for t in "${tests[@]}"; do
	start=$(date +%s)
	rc=0
	name=${t#fuzz/}
	case "$t" in
	fuzz/*)	# A replay of what fuzzing found, not a Criterion runner.
		args=("$here/tests/fuzz/corpus/$name")
		[ -d "$here/tests/fuzz/regressions/$name" ] && args+=("$here/tests/fuzz/regressions/$name") ;;
	*)	args=(--jobs 1) ;;
	esac
	(cd "$build/tests" && valgrind --quiet --trace-children=yes \
		--trace-children-skip='/bin/*,/usr/bin/*,/sbin/*,/usr/sbin/*' \
		--leak-check=full --errors-for-leak-kinds=definite,indirect \
		--show-leak-kinds=definite,indirect --error-exitcode=1 \
		--suppressions="$here/tools/memcheck.supp" \
		--log-file="$logs/$name.%p.log" "./$t" "${args[@]}" >"$logs/$name.out" 2>&1) || rc=$?
	bad=$(grep -lE 'ERROR SUMMARY: [1-9]|definitely lost: [1-9]|indirectly lost: [1-9]' \
		"$logs/$name".*.log 2>/dev/null || true)
	if [ "$rc" -ne 0 ] || [ -n "$bad" ]; then
		failed=1
		echo "FAIL $t ($(( $(date +%s) - start )) s, exit $rc)"
		grep -E '^\[FAIL\]|Crashing: [1-9]|^replay: ' "$logs/$name.out" | tail -10 || true
		for f in $bad; do
			echo "  $f:"
			grep -E -A12 '^==[0-9]+== [A-Z][a-z]' "$f" | head -40 | sed 's/^/    /'
		done
	else
		echo "ok   $t ($(( $(date +%s) - start )) s)"
	fi
done
echo "memcheck: ${#tests[@]} executables in $(( $(date +%s) - start_all )) s"
exit "$failed"
