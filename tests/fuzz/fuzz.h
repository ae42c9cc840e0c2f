/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h - what every fuzz target in tests/fuzz/ shares: libFuzzer's two
 * entry points, which each target defines and which either libFuzzer's own
 * main (-DNETSTACK_FUZZ=ON, clang) or replay.c (every other build, to
 * replay the committed corpus under ctest) calls, and the one way a target
 * reports a broken invariant: a message on stderr and abort(), which both
 * libFuzzer and ctest see as a crash.
 */
#ifndef NETSTACK_TESTS_FUZZ_H
#define NETSTACK_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Called once per process before the first input; may be absent. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
/* One input; only read. Returns 0 (libFuzzer reserves other values). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant broken: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
		abort(); \
	} \
} while (0)

#endif /* NETSTACK_TESTS_FUZZ_H */
