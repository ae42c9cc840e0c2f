/* SPDX-License-Identifier: MIT */
/*
 * test_checkpoint.c - checkpoint and restore through the public API: a
 * forked child builds a stack (a channel NIC, IPv4 and IPv6 addresses, a
 * gateway route, TCP listeners and UDP sockets with options), checkpoints
 * it and exits; the test process, fresh as restore requires, restores the
 * image and checks that every piece came back under the same numbers, that
 * the clock continued, that the count went on, that a restored listener
 * answers a SYN whose TCP timestamp continues upward, and that a segment
 * of a connection that was not saved gets RST.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/ip_icmp.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frames.h"
#include "netstack.h"

static const uint8_t stack_mac[6] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x02 };
static const uint8_t peer_mac[6] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01 };

static char img[256];

static void make_image_path(void)
{
	char parent[128];

	snprintf(parent, sizeof(parent), "/tmp/ns-ckpt-test-%d", (int)getpid());
	cr_assert_eq(mkdir(parent, 0700), 0);
	snprintf(img, sizeof(img), "%s/img", parent);
}

static void remove_image(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf /tmp/ns-ckpt-test-%d", (int)getpid());
	if (system(cmd)) {
	}
}

static int sock_at(struct ns_stack *s, int family, int type, const char *ip, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	int k = ns_socket(s, family, type, 0), on = 1;

	if (k < 0)
		return k;
	ns_setsockopt(s, k, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		inet_pton(AF_INET, ip, &a->sin_addr);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		inet_pton(AF_INET6, ip, &a->sin6_addr);
		len = sizeof(*a);
	}
	return ns_bind(s, k, (struct sockaddr *)&ss, len) ?: k;
}

/* The child: build, checkpoint, report the stack time it saw, exit. */
static void checkpoint_child(int fd_out)
{
	struct ns_stack *s;
	struct ns_endpoint *ep;
	struct ns_nic_config cfg = { .name = "eth0", .mtu = 1400 };
	struct ns_prefix p4, p6;
	struct ns_route r = { 0 };
	int nic, l4, l6, u4, spare, on = 1;
	struct timespec ts;
	uint64_t before;

	memcpy(cfg.mac, stack_mac, 6);
	if (ns_stack_new(NULL, &s) || ns_endpoint_channel_new(&ep))
		_exit(10);
	nic = ns_nic_add(s, &cfg, ep);
	ns_prefix_parse("198.51.100.2/24", &p4);
	ns_prefix_parse("fd42:5::2/64", &p6);
	if (nic < 0 || ns_addr_add(s, nic, &p4) || ns_addr_add(s, nic, &p6))
		_exit(11);
	ns_prefix_parse("0.0.0.0/0", &r.dst);
	ns_addr_parse("198.51.100.254", &r.gateway);
	if (ns_route_add(s, &r))
		_exit(12);
	spare = ns_socket(s, AF_INET, SOCK_DGRAM, 0);	/* number 0: unbound */
	l4 = sock_at(s, AF_INET, SOCK_STREAM, "198.51.100.2", 80);
	l6 = sock_at(s, AF_INET6, SOCK_STREAM, "::", 8080);
	u4 = sock_at(s, AF_INET, SOCK_DGRAM, "0.0.0.0", 53);
	if (spare != 0 || l4 != 1 || l6 != 2 || u4 != 3)
		_exit(13);
	ns_setsockopt(s, l4, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (ns_listen(s, l4, 16) || ns_listen(s, l6, 32) || ns_stack_start(s))
		_exit(14);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	before = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	if (ns_stack_checkpoint(s, img, NULL))
		_exit(15);
	if (write(fd_out, &before, sizeof(before)) != sizeof(before))
		_exit(16);
	_exit(ns_stack_checkpoint_count(s, NULL) == 1 ? 0 : 17);
}

static uint64_t run_checkpoint_child(void)
{
	int fds[2], status;
	uint64_t before = 0;
	pid_t pid;

	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		checkpoint_child(fds[1]);
	}
	close(fds[1]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "checkpoint child: status %d", status);
	cr_assert_eq(read(fds[0], &before, sizeof(before)), (ssize_t)sizeof(before));
	close(fds[0]);
	return before;
}

static struct ns_stack *restore(struct ns_endpoint **epp, bool start)
{
	struct ns_restore_endpoint re = { .nic_name = "eth0" };
	struct ns_restore_opts opts = { .endpoints = &re, .nendpoints = 1, .start = start };
	struct ns_stack *s = NULL;
	char why[256] = "";
	int rc;

	cr_assert_eq(ns_endpoint_channel_new(epp), 0);
	re.ep = *epp;
	rc = ns_stack_restore(img, &opts, &s, why, sizeof(why));
	cr_assert_eq(rc, 0, "restore: %d: %s", rc, why);
	return s;
}

TestSuite(checkpoint, .init = make_image_path, .fini = remove_image, .timeout = 60);

Test(checkpoint, restore_brings_back_nics_addresses_routes_and_sockets)
{
	struct ns_endpoint *ep;
	struct ns_stack *s;
	struct ns_nic_info info;
	struct ns_prefix addrs[8];
	struct ns_route routes[8];
	struct ns_socket_info socks[8];
	char text[64];
	int ids[4], n, i, v;
	socklen_t len = sizeof(v);
	bool gw = false;

	run_checkpoint_child();
	s = restore(&ep, false);
	cr_assert_eq(ns_nic_list(s, ids, 4), 1);
	cr_assert_eq(ns_nic_info(s, ids[0], &info), 0);
	cr_expect_str_eq(info.name, "eth0");
	cr_expect_eq(info.mtu, 1400);
	cr_expect_arr_eq(info.mac, stack_mac, 6);
	n = ns_addr_list(s, ids[0], addrs, 8);
	cr_expect_eq(n, 3, "v4, link-local, v6: %d", n);
	for (i = 0; i < n && i < 8; i++) {
		ns_addr_format(&addrs[i].addr, text, sizeof(text));
		cr_expect(strcmp(text, "198.51.100.2") == 0 || strncmp(text, "fe80:", 5) == 0 ||
			  strcmp(text, "fd42:5::2") == 0, "unexpected address %s", text);
	}
	n = ns_route_list(s, routes, 8);
	for (i = 0; i < n && i < 8; i++) {
		if (routes[i].dst.len == 0 && routes[i].gateway.family == AF_INET) {
			ns_addr_format(&routes[i].gateway, text, sizeof(text));
			gw = strcmp(text, "198.51.100.254") == 0;
		}
	}
	cr_expect(gw, "the default route via 198.51.100.254 came back");
	n = ns_socket_list(s, socks, 8);
	cr_assert_eq(n, 4, "four sockets: %d", n);
	cr_expect_eq(socks[0].id, 0);
	cr_expect_eq(socks[0].state, NS_SOCKET_UNBOUND);
	cr_expect_eq(socks[1].state, NS_SOCKET_LISTENING);
	cr_expect_eq(socks[1].backlog, 16);
	cr_expect_eq(ntohs(((struct sockaddr_in *)&socks[1].local)->sin_port), 80);
	cr_expect_eq(socks[2].state, NS_SOCKET_LISTENING);
	cr_expect_eq(socks[2].family, AF_INET6);
	cr_expect_eq(ntohs(((struct sockaddr_in6 *)&socks[2].local)->sin6_port), 8080);
	cr_expect_eq(socks[3].type, SOCK_DGRAM);
	cr_expect_eq(socks[3].state, NS_SOCKET_BOUND);
	cr_expect_eq(ns_getsockopt(s, 1, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
	cr_expect_eq(v, 1, "TCP_NODELAY kept");
	cr_expect_eq(ns_stack_checkpoint_count(s, NULL), 2, "checkpoint 1, then the restore");
	ns_stack_free(s);
}

/* Read frames until one is TCP from the stack, answering its ARP
 * requests for the peer on the way. */
static bool next_tcp(struct ns_endpoint *ep, const struct frame_path *path,
		     struct frame_parsed *fp, uint8_t *buf, size_t cap)
{
	for (int i = 0; i < 2000; i++) {
		ssize_t n = ns_channel_read(ep, buf, cap);

		if (n == -EAGAIN) {
			usleep(1000);
			continue;
		}
		if (n <= 0 || frame_parse(buf, (size_t)n, fp) != 0)
			continue;
		uint8_t reply[128];
		ssize_t r = frame_neighbour_reply(fp, path, NULL, reply, sizeof(reply));

		if (r > 0) {
			ns_channel_inject(ep, reply, (size_t)r);
			continue;
		}
		if (fp->proto == IPPROTO_TCP)
			return true;
	}
	return false;
}

Test(checkpoint, restored_listener_answers_with_timestamps_continuing_upward)
{
	static const uint8_t opts[] = { 2, 4, 0x05, 0xb4, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0 };
	struct frame_path path;
	struct tcp_peer peer;
	struct frame_parsed fp;
	struct ns_endpoint *ep;
	struct ns_stack *s;
	uint8_t buf[2048];
	uint64_t saved_wall_ns;
	ssize_t n;

	saved_wall_ns = run_checkpoint_child();
	/* Stack time stands still between checkpoint and restore: a clock that
	 * merely followed CLOCK_MONOTONIC would jump by this sleep. */
	usleep(1500 * 1000);
	s = restore(&ep, true);
	frame_path_init(&path, peer_mac, "198.51.100.1", stack_mac, "198.51.100.2");
	tcp_peer_init(&peer, &path, 40000, 80, 1000);
	n = tcp_peer_syn(&peer, buf, sizeof(buf), opts, sizeof(opts));
	cr_assert_gt(n, 0);
	cr_assert_eq(ns_channel_inject(ep, buf, (size_t)n), 0);
	cr_assert(next_tcp(ep, &path, &fp, buf, sizeof(buf)), "a SYN-ACK from the restored listener");
	cr_expect_eq(fp.tcp_flags & (TH_SYN | TH_ACK), TH_SYN | TH_ACK);
	cr_expect(fp.has_ts, "timestamps negotiated");
	/* The stack clock continued from the checkpoint (lwIP's TSval is the
	 * stack time in ms): upward from the saved time, without the 1.5 s the
	 * process spent checkpointed. */
	cr_expect_geq(fp.ts_val, (uint32_t)(saved_wall_ns / 1000000u),
		      "TSval %u continues upward from %llu ms", fp.ts_val,
		      (unsigned long long)(saved_wall_ns / 1000000u));
	cr_expect_lt(fp.ts_val, (uint32_t)(saved_wall_ns / 1000000u) + 1000u,
		     "TSval %u did not jump by the time spent checkpointed (saved %llu ms)",
		     fp.ts_val, (unsigned long long)(saved_wall_ns / 1000000u));
	ns_stack_free(s);
}

Test(checkpoint, segment_of_an_unsaved_connection_gets_rst)
{
	struct frame_path path;
	struct tcp_peer peer;
	struct frame_parsed fp;
	struct ns_endpoint *ep;
	struct ns_stack *s;
	uint8_t buf[2048];
	ssize_t n;

	run_checkpoint_child();
	s = restore(&ep, true);
	frame_path_init(&path, peer_mac, "198.51.100.1", stack_mac, "198.51.100.2");
	tcp_peer_init(&peer, &path, 40001, 80, 5000);
	peer.rcv_nxt = 777;	/* mid-connection, as if established before */
	peer.snd_nxt = 5001;
	peer.synced = true;
	n = tcp_peer_data(&peer, buf, sizeof(buf), "hi", 2);
	cr_assert_gt(n, 0);
	cr_assert_eq(ns_channel_inject(ep, buf, (size_t)n), 0);
	cr_assert(next_tcp(ep, &path, &fp, buf, sizeof(buf)), "an answer to the stray segment");
	cr_expect(fp.tcp_flags & TH_RST, "RST, as from a rebooted host (flags %#x)", fp.tcp_flags);
	ns_stack_free(s);
}

Test(checkpoint, a_second_stack_in_the_process_cannot_restore)
{
	struct ns_stack *s, *r = NULL;
	char why[256] = "";

	run_checkpoint_child();
	cr_assert_eq(ns_stack_new(NULL, &s), 0);
	ns_stack_free(s);
	cr_expect_eq(ns_stack_restore(img, NULL, &r, why, sizeof(why)), -EBUSY);
	cr_expect(strstr(why, "fresh process") != NULL, "why: %s", why);
	cr_expect_null(r);
}

Test(checkpoint, restore_refuses_a_missing_image_and_changes_nothing)
{
	struct ns_stack *r = NULL, *s;
	char why[256] = "";

	cr_expect_lt(ns_stack_restore("/nonexistent/netstack-image", NULL, &r, why, sizeof(why)), 0);
	cr_expect_neq(why[0], '\0', "a reason is given");
	cr_expect_null(strchr(why, '\n'), "one line");
	/* Nothing was created: a stack can still be made here. */
	cr_expect_eq(ns_stack_new(NULL, &s), 0);
	ns_stack_free(s);
}

Test(checkpoint, every_attempt_counts_and_wakes_waiters)
{
	struct ns_stack *s;
	int last = 1;

	cr_assert_eq(ns_stack_new(NULL, &s), 0);
	cr_expect_eq(ns_stack_checkpoint_count(s, NULL), 0);
	cr_expect_eq(ns_stack_checkpoint(s, "", NULL), -EINVAL);
	cr_expect_eq(ns_stack_checkpoint_count(s, &last), 1, "a failed attempt counts");
	cr_expect_eq(last, -EINVAL);
	cr_expect_eq(ns_stack_checkpoint_wait(s, 0, 0), -EINVAL, "count 1 > 0: the last result");
	cr_expect_eq(ns_stack_checkpoint_wait(s, 1, 50), -ETIMEDOUT);
	cr_expect_eq(ns_stack_checkpoint(s, img, &(struct ns_checkpoint_opts){ .leave_running = true }), 0);
	cr_expect_eq(ns_stack_checkpoint_count(s, &last), 2);
	cr_expect_eq(last, 0);
	cr_expect_eq(ns_stack_checkpoint(s, img, NULL), -EEXIST, "the image directory is not empty");
	ns_stack_free(s);
}

Test(checkpoint, a_failed_checkpoint_resumes_the_stack)
{
	struct ns_stack *s;
	char file[300];
	FILE *f;

	cr_assert_eq(mkdir(img, 0700), 0);
	snprintf(file, sizeof(file), "%s/occupied", img);
	f = fopen(file, "w");
	cr_assert_not_null(f);
	fclose(f);
	cr_assert_eq(ns_stack_new(NULL, &s), 0);
	cr_assert_eq(ns_stack_start(s), 0);
	cr_expect_eq(ns_stack_checkpoint(s, img, NULL), -EEXIST);
	/* Nothing changed: the dispatcher runs again (stop succeeds). */
	cr_expect_eq(ns_stack_stop(s), 0, "the stack was resumed after the failure");
	ns_stack_free(s);
}
