/* SPDX-License-Identifier: MIT */
/*
 * bench_checkpoint.c - the `checkpoint` scenario of netstack-bench: how long
 * a checkpoint takes, and how long a restore takes until the restored stack
 * answers its first connection, with 1, 1,000 and 10,000 TCP listeners.
 * Each checkpoint and each restore runs in a fresh child process, as they
 * do in use (restore needs a process that never had a stack). The stack
 * sits on an in-memory channel NIC and the peer is played with the test
 * frame toolkit, so what is measured is the stack and the image, not a
 * TAP or a kernel peer. "First response" is the SYN-ACK of the restored
 * listener on the first port to a SYN injected right after restore returns.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "frames.h"
#include "netstack.h"

#define SCENARIO "checkpoint"
#define FIRST_PORT 10000
#define RESTORE_TARGET_MS 5.0	/* the project's restore goal: milliseconds */

static const uint8_t stack_mac[6] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x02 };
static const uint8_t peer_mac[6] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01 };

struct result {
	double checkpoint_ms;
	double restore_ms;		/* ns_stack_restore() alone */
	double first_response_ms;	/* restore start to the first SYN-ACK */
};

static int checkpoint_child(const char *dir, unsigned listeners, struct result *r)
{
	struct ns_nic_config cfg = { .name = "eth0" };
	struct ns_endpoint *ep;
	struct ns_stack *s;
	struct ns_prefix p;
	unsigned i;
	uint64_t t0;
	int nic, on = 1;

	memcpy(cfg.mac, stack_mac, 6);
	if (ns_stack_new(NULL, &s) || ns_endpoint_channel_new(&ep))
		return -1;
	nic = ns_nic_add(s, &cfg, ep);
	ns_prefix_parse("198.51.100.2/24", &p);
	if (nic < 0 || ns_addr_add(s, nic, &p))
		return -1;
	for (i = 0; i < listeners; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(FIRST_PORT + i) };
		int l = ns_socket(s, AF_INET, SOCK_STREAM, 0);

		ns_setsockopt(s, l, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (l < 0 || ns_bind(s, l, (struct sockaddr *)&a, sizeof(a)) || ns_listen(s, l, 128))
			return -1;
	}
	if (ns_stack_start(s))
		return -1;
	t0 = bench_now_ns();
	if (ns_stack_checkpoint(s, dir, NULL))
		return -1;
	r->checkpoint_ms = bench_ms_since(t0);
	return 0;
}

/* Inject the peer's ARP request (so the stack learns its MAC) and a SYN to
 * the first listener; wait for the SYN-ACK. */
static int first_response(struct ns_endpoint *ep)
{
	static const uint8_t opts[] = { 2, 4, 0x05, 0xb4 };
	struct frame_path path;
	struct tcp_peer peer;
	struct frame_parsed fp;
	uint8_t buf[2048];
	ssize_t n;
	int i;

	frame_path_init(&path, peer_mac, "198.51.100.1", stack_mac, "198.51.100.2");
	n = frame_arp(buf, sizeof(buf), &path, FRAME_ARP_REQUEST);
	if (n <= 0 || ns_channel_inject(ep, buf, (size_t)n))
		return -1;
	tcp_peer_init(&peer, &path, 40000, FIRST_PORT, 1000);
	n = tcp_peer_syn(&peer, buf, sizeof(buf), opts, sizeof(opts));
	if (n <= 0 || ns_channel_inject(ep, buf, (size_t)n))
		return -1;
	for (i = 0; i < 2000000; i++) {	/* bounded: a few seconds at most */
		n = ns_channel_read(ep, buf, sizeof(buf));
		if (n > 0 && frame_parse(buf, (size_t)n, &fp) == 0 && fp.proto == IPPROTO_TCP &&
		    (fp.tcp_flags & 0x12) == 0x12)
			return 0;
		if (n == -EAGAIN && i > 1000)
			usleep(10);
	}
	return -1;
}

static int restore_child(const char *dir, struct result *r)
{
	struct ns_restore_endpoint re = { .nic_name = "eth0" };
	struct ns_restore_opts opts = { .endpoints = &re, .nendpoints = 1, .start = true };
	struct ns_stack *s;
	char why[256];
	uint64_t t0;

	if (ns_endpoint_channel_new(&re.ep))
		return -1;
	t0 = bench_now_ns();
	if (ns_stack_restore(dir, &opts, &s, why, sizeof(why))) {
		fprintf(stderr, "%s: restore: %s\n", BENCH_PROG, why);
		return -1;
	}
	r->restore_ms = bench_ms_since(t0);
	if (first_response(re.ep))
		return -1;
	r->first_response_ms = bench_ms_since(t0);
	return 0;
}

/* What a child needs: the image directory and the listener count. */
struct job {
	const char *dir;
	unsigned listeners;
};

static int checkpoint_job(void *arg, void *result)
{
	const struct job *j = arg;

	return checkpoint_child(j->dir, j->listeners, result);
}

static int restore_job(void *arg, void *result)
{
	const struct job *j = arg;

	return restore_child(j->dir, result);
}

int bench_checkpoint_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static const unsigned counts[] = { 1, 1000, 10000 };
	char root[] = "/tmp/netstack-bench-ckpt-XXXXXX", dir[128], cmd[160];
	bool json = false;
	FILE *table;
	int c, rc = BENCH_EXIT_OK;
	size_t i;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h':
			printf("Usage: %s %s [--json]\n", BENCH_PROG, SCENARIO);
			return BENCH_EXIT_OK;
		default:
			return bench_fail(BENCH_EXIT_USAGE, SCENARIO, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bench_fail(BENCH_EXIT_USAGE, SCENARIO, "unexpected argument '%s'", argv[optind]);
	if (!mkdtemp(root))
		return bench_fail(BENCH_EXIT_RUNTIME, SCENARIO, "mkdtemp: %s", strerror(errno));
	table = bench_table_file(json);
	fprintf(table, "checkpoint: channel NIC, N TCP listeners; each step in a fresh process\n\n");
	fprintf(table, "%10s %14s %12s %20s\n", "listeners", "checkpoint ms", "restore ms",
		"first response ms");
	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct result r = { 0 };

		struct job job = { .dir = dir, .listeners = counts[i] };

		snprintf(dir, sizeof(dir), "%s/img-%u", root, counts[i]);
		if (bench_in_child(checkpoint_job, &job, &r, sizeof(r)) ||
		    bench_in_child(restore_job, &job, &r, sizeof(r))) {
			rc = bench_fail(BENCH_EXIT_RUNTIME, SCENARIO, "%u listeners: run failed", counts[i]);
			break;
		}
		fprintf(table, "%10u %14.2f %12.2f %20.2f\n", counts[i], r.checkpoint_ms, r.restore_ms,
			r.first_response_ms);
		if (json)
			printf("{\"scenario\":\"checkpoint\",\"listeners\":%u,\"checkpoint_ms\":%.3f,"
			       "\"restore_ms\":%.3f,\"restore_to_first_response_ms\":%.3f}\n",
			       counts[i], r.checkpoint_ms, r.restore_ms, r.first_response_ms);
		if (counts[i] == 1)
			fprintf(table, "%s  restore to first response with 1 listener: %.2f ms (target < %.0f ms)\n",
				r.first_response_ms < RESTORE_TARGET_MS ? "PASS" : "MISS",
				r.first_response_ms, RESTORE_TARGET_MS);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd)) {
	}
	return rc;
}
