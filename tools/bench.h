/* SPDX-License-Identifier: MIT */
/*
 * bench.h - what netstack-bench's scenarios share with its main program
 * (tools/bench.c): the exit codes, the one-line usage error, the timing
 * clock, where output goes, and each scenario's entry point for the
 * scenario table. A scenario parses its own options, runs, prints a table
 * (and with --json, one JSON object per measurement per line) and reports
 * its targets as PASS/MISS lines; missing a target is a result, not a
 * failure, so it still exits 0.
 */
#ifndef NETSTACK_BENCH_H
#define NETSTACK_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BENCH_PROG "netstack-bench"

enum {
	BENCH_EXIT_OK = 0,
	BENCH_EXIT_RUNTIME = 1,
	BENCH_EXIT_USAGE = 2,
};

/* bench.c; kernel-doc there. */
int bench_fail(int code, const char *scenario, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
uint64_t bench_now_ns(void);
double bench_ms_since(uint64_t t0);
double bench_median(const double *v, size_t n, double *lo, double *hi);
int bench_in_child(int (*fn)(void *arg, void *result), void *arg, void *result, size_t size);
FILE *bench_table_file(bool json);

/* The scenarios, one file each. */
int bench_timers_main(int argc, char **argv);	/* bench_timers.c */
int bench_checkpoint_main(int argc, char **argv);	/* bench_checkpoint.c */
int bench_restore_main(int argc, char **argv);	/* bench_restore.c */
int bench_net_main(int argc, char **argv);	/* bench_net.c: stream rr crr udp conns net */

#endif /* NETSTACK_BENCH_H */
