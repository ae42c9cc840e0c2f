#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# fuzz.sh - fuzz every target in tests/fuzz/ with libFuzzer for a bounded
# time: builds them with clang, ASan and UBSan in build-fuzz/
# (-DNETSTACK_FUZZ=ON), then runs each for SECONDS (default 60) from its
# committed corpus and regressions. New inputs go to a scratch directory,
# never into the repository; a crash stops that target, its input is
# printed and kept in the scratch directory, and the script exits 1 once
# every target has run. One line per target is appended to
# build-fuzz/fuzz-log.tsv (date, target, seconds, executions, crash).
#
# Usage: tools/fuzz.sh [SECONDS-PER-TARGET [TARGET...]]
#   FUZZ_KEEP=DIR   keep the scratch corpora and crash inputs in DIR
#   FUZZ_JOBS=N     build with N jobs (default 2)
# A crash found becomes tests/fuzz/regressions/<target>/<name> (see
# tests/fuzz/README.md), replayed by ctest from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
	# Every target in tests/fuzz/ (fuzz_seeds writes corpora; it is no target).
	for f in tests/fuzz/fuzz_*.c; do
		t=$(basename "$f" .c)
		[ "$t" = fuzz_seeds ] || targets+=("$t")
	done
fi
case "$secs" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a number" >&2; exit 2 ;; esac

build=build-fuzz
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DNETSTACK_SANITIZE=ON -DNETSTACK_FUZZ=ON >/dev/null
cmake --build "$build" -j"${FUZZ_JOBS:-2}" --target "${targets[@]}" >/dev/null

if [ -n "${FUZZ_KEEP:-}" ]; then
	scratch=$FUZZ_KEEP
	mkdir -p "$scratch"
else
	scratch=$(mktemp -d /tmp/netstack-fuzz.XXXXXX)
	trap 'rm -rf "$scratch"' EXIT
fi

failed=0
printf '%-14s %8s %12s %10s  %s\n' target seconds executions exec/s result
for t in "${targets[@]}"; do
	seeds=(tests/fuzz/corpus/"$t")
	[ -d tests/fuzz/regressions/"$t" ] && seeds+=(tests/fuzz/regressions/"$t")
	mkdir -p "$scratch/$t/corpus" "$scratch/$t/crash"
	start=$(date +%s)
	rc=0
	# The first directory receives new inputs; the others are only read.
	"$build/tests/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$scratch/$t/crash/" \
		"$scratch/$t/corpus" "${seeds[@]}" >"$scratch/$t/log" 2>&1 || rc=$?
	took=$(( $(date +%s) - start ))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t/log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$scratch/$t/log" | tail -1)
	crash=$(ls "$scratch/$t/crash" 2>/dev/null | head -1)
	if [ "$rc" -ne 0 ] || [ -n "$crash" ]; then
		result="CRASH ${crash:-exit $rc}"
		failed=1
	else
		result=ok
	fi
	printf '%-14s %8s %12s %10s  %s\n' "$t" "$took" "${execs:-?}" "${rate:-?}" "$result"
	printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$took" "${execs:-0}" "$result" \
		>>"$build/fuzz-log.tsv"
	if [ "$result" != ok ]; then
		# What libFuzzer and the sanitizers said about it.
		grep -E -A30 '^==[0-9]+==|runtime error|invariant broken|internal error|deadly signal' \
			"$scratch/$t/log" | head -60 >&2 || tail -40 "$scratch/$t/log" >&2
		[ -n "$crash" ] && echo "fuzz.sh: $t: input kept as $scratch/$t/crash/$crash" >&2
		[ -n "$crash" ] && [ -z "${FUZZ_KEEP:-}" ] && cp "$scratch/$t/crash/$crash" "$build/" &&
			echo "fuzz.sh: copied to $build/$crash" >&2
	fi
done
exit "$failed"
