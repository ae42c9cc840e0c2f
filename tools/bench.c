/* SPDX-License-Identifier: MIT */
/*
 * bench.c - the `netstack-bench` command: `netstack-bench <scenario>
 * [--json] [options]`. It owns the scenario table (a scenario is a name, its
 * options, a one-line summary and an entry point; new scenarios are one row
 * here and one file beside this one), the top-level help that lists them,
 * dispatch, and the helpers of bench.h. Exit codes: 0 when the scenario ran
 * (its targets are PASS/MISS lines, not exit codes), 1 on a runtime
 * failure, 2 on a usage error, reported as one line on stderr.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

struct scenario {
	const char *name;
	const char *options;
	const char *summary;
	int (*main)(int argc, char **argv);
};

static const struct scenario scenarios[] = {
	{ "timers", "[--json] [--quick]",
	  "timer wheel vs lwIP's stock timeouts: arm+cancel and arm+expire\n"
	  "with 1k..1M timers pending; CPU of 1,000 periodic 10 ms timers",
	  bench_timers_main },
	{ "checkpoint", "[--json]",
	  "checkpoint time and restore-to-first-response time with 1, 1,000\n"
	  "and 10,000 TCP listeners, each step in a fresh process",
	  bench_checkpoint_main },
	{ "restore", "[--json] [--quick] [--sizes MiB,...]",
	  "restore with 64 MiB, 1 GiB and 4 GiB of memory: first HTTP response,\n"
	  "foreground vs --background, io_uring vs threads, load rate vs fio",
	  bench_restore_main },
	{ "stream", "[--json] [--quick] [--plot FILE.png] [--runs N] [--time S]",
	  "bulk TCP into and out of the sandbox, MTU 1500 and 65520: stock iperf3\n"
	  "against kernel/veth, netstack/TAP, pasta and slirp4netns; Gbit/s, CPU s/GB",
	  bench_net_main },
	{ "rr", "[--json] [--quick] [--plot FILE.png] [--runs N] [--time S]",
	  "1-byte TCP request/response, pinned to one CPU and not; median, p99 us",
	  bench_net_main },
	{ "crr", "[--json] [--quick] [--plot FILE.png] [--runs N] [--time S]",
	  "connect, 1-byte request/response, close: connections per second",
	  bench_net_main },
	{ "udp", "[--json] [--quick] [--plot FILE.png] [--runs N] [--time S]",
	  "UDP datagrams of 64 and 1400 bytes into the sandbox: delivered pps, loss",
	  bench_net_main },
	{ "conns", "[--json] [--quick] [--conns N]",
	  "10,000 idle TCP connections to one listener: the stack's resident\n"
	  "memory per connection and per listener",
	  bench_net_main },
	{ "net", "[--json] [--quick] [--plot FILE.png] [--runs N] [--time S] [--conns N]",
	  "stream, rr, crr, udp and conns in one run (every peer side by side)",
	  bench_net_main },
};

#define SCENARIO_COUNT (sizeof(scenarios) / sizeof(scenarios[0]))

/**
 * bench_fail() - report one error line on stderr
 * @code:	the exit code to return
 * @scenario:	the scenario it concerns, or NULL
 * @fmt:	printf format of the message, then its arguments
 *
 * Prints "netstack-bench: [SCENARIO: ]MESSAGE" as one line.
 *
 * Return: @code, so a caller can write `return bench_fail(...)`.
 */
int bench_fail(int code, const char *scenario, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (scenario)
		fprintf(stderr, "%s: %s: %s\n", BENCH_PROG, scenario, msg);
	else
		fprintf(stderr, "%s: %s\n", BENCH_PROG, msg);
	return code;
}

/**
 * bench_now_ns() - the timing clock: CLOCK_MONOTONIC in nanoseconds
 *
 * Return: the current time, in ns.
 */
uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/**
 * bench_ms_since() - milliseconds since @t0
 * @t0: a bench_now_ns() value
 *
 * Return: the time since, in ms.
 */
double bench_ms_since(uint64_t t0)
{
	return (double)(bench_now_ns() - t0) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/**
 * bench_median() - the median of @n figures, and their range
 * @v: the figures (left as they are)
 * @n: how many
 * @lo: if not NULL, set to the smallest (NAN when @n is 0)
 * @hi: if not NULL, set to the largest (NAN when @n is 0)
 *
 * Return: the median; NAN when @n is 0 or memory ran out.
 */
double bench_median(const double *v, size_t n, double *lo, double *hi)
{
	double *s = n ? malloc(n * sizeof(*s)) : NULL, m;

	if (lo)
		*lo = NAN;
	if (hi)
		*hi = NAN;
	if (!s)
		return NAN;
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	if (lo)
		*lo = s[0];
	if (hi)
		*hi = s[n - 1];
	m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	free(s);
	return m;
}

/**
 * bench_in_child() - run @fn in a fresh process, as a restore needs one
 * @fn: the work; fills @result (its copy in the child) and returns 0 or -1
 * @arg: passed to @fn
 * @result: in: what the child starts from; out: what it ended with
 * @size: the size of @result
 *
 * The child's @result comes back through a pipe.
 *
 * Return: 0 when @fn returned 0 and the child exited cleanly, else -1.
 */
int bench_in_child(int (*fn)(void *arg, void *result), void *arg, void *result, size_t size)
{
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	if (pipe(fds))
		return -1;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		int rc;

		close(fds[0]);
		rc = fn(arg, result);
		_exit(write(fds[1], result, size) == (ssize_t)size && rc == 0 ? 0 : 1);
	}
	close(fds[1]);
	n = read(fds[0], result, size);
	close(fds[0]);
	waitpid(pid, &status, 0);
	return n == (ssize_t)size && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/**
 * bench_table_file() - where the human-readable table and verdicts go
 * @json:	whether --json was given
 *
 * With --json, stdout carries nothing but the JSON lines, so the table
 * moves to stderr.
 *
 * Return: stdout, or stderr when @json.
 */
FILE *bench_table_file(bool json)
{
	return json ? stderr : stdout;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s <scenario> [--json] [options]\n"
		"       %s <scenario> --help\n"
		"\n"
		"Measures netstack's parts and the stack side by side with alternatives.\n"
		"\n"
		"Scenarios:\n",
		BENCH_PROG, BENCH_PROG);
	for (size_t i = 0; i < SCENARIO_COUNT; i++) {
		const char *s = scenarios[i].summary, *nl;

		fprintf(f, "  %s %s\n", scenarios[i].name, scenarios[i].options);
		/* The summary, indented, one line per '\n'. */
		for (; (nl = strchr(s, '\n')); s = nl + 1)
			fprintf(f, "      %.*s\n", (int)(nl - s), s);
		fprintf(f, "      %s\n", s);
	}
	fprintf(f,
		"\n"
		"Output: a table on stdout, with each target as a PASS or MISS line.\n"
		"With --json, stdout carries one JSON object per measurement per line\n"
		"and the table goes to stderr.\n"
		"Exit status: 0 when the scenario ran (whether or not it met its targets),\n"
		"1 on a runtime failure, 2 on a usage error.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return bench_fail(BENCH_EXIT_USAGE, NULL, "missing scenario (try --help)");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return BENCH_EXIT_OK;
	}
	for (size_t i = 0; i < SCENARIO_COUNT; i++)
		if (!strcmp(argv[1], scenarios[i].name))
			return scenarios[i].main(argc - 1, argv + 1);
	if (argv[1][0] == '-')
		return bench_fail(BENCH_EXIT_USAGE, NULL,
				  "expected a scenario before '%s' (try --help)", argv[1]);
	return bench_fail(BENCH_EXIT_USAGE, NULL, "unknown scenario '%s' (try --help)", argv[1]);
}
