/* SPDX-License-Identifier: MIT */
/*
 * idle_listeners.c - an idle stack costs nothing: a stack with one NIC and
 * 1,000 listening sockets, and no traffic, must use under 1% of a CPU over
 * 5 s. lwIP's TCP timer runs only while connections exist and every other
 * timer sleeps on the wheel, so the process should barely wake. The whole
 * process is measured (getrusage), dispatcher thread included.
 * Exit 0 on pass, 1 on failure; one line says what was measured.
 */
#define _GNU_SOURCE
#include <netstack.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define LISTENERS 1000
#define SECONDS 5
#define MAX_CPU_PERCENT 1.0

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "idle_listeners: %s: %s\n", what, strerror(-rc));
	return 1;
}

int main(void)
{
	struct ns_stack *s;
	struct ns_endpoint *ep;
	struct ns_prefix p;
	double cpu0, wall0, cpu, wall, percent;
	int nic, i, rc, on = 1;

	if ((rc = ns_stack_new(NULL, &s)) || (rc = ns_endpoint_channel_new(&ep)))
		return fail("stack", rc);
	if ((nic = ns_nic_add(s, NULL, ep)) < 0)
		return fail("nic", nic);
	ns_prefix_parse("198.51.100.2/24", &p);
	if ((rc = ns_addr_add(s, nic, &p)) || (rc = ns_stack_start(s)))
		return fail("address/start", rc);
	for (i = 0; i < LISTENERS; i++) {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(10000 + i) };
		int l = ns_socket(s, AF_INET6, SOCK_STREAM, 0);

		if (l < 0)
			return fail("socket", l);
		ns_setsockopt(s, l, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if ((rc = ns_bind(s, l, (struct sockaddr *)&a, sizeof(a))) || (rc = ns_listen(s, l, 128)))
			return fail("listen", rc);
	}
	sleep(1);	/* let start-up settle (MLD reports, first timer rounds) */
	cpu0 = cpu_seconds();
	wall0 = wall_seconds();
	sleep(SECONDS);
	cpu = cpu_seconds() - cpu0;
	wall = wall_seconds() - wall0;
	percent = 100.0 * cpu / wall;
	ns_stack_free(s);
	printf("idle_listeners: %d listeners idle for %.2f s: %.3f%% CPU (%.1f ms), limit %.1f%%\n",
	       LISTENERS, wall, percent, cpu * 1e3, MAX_CPU_PERCENT);
	return percent < MAX_CPU_PERCENT ? 0 : 1;
}
