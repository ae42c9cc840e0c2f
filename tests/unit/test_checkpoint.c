/* SPDX-License-Identifier: MIT */
/*
 * test_checkpoint.c - checkpoint and restore through the public API: a
 * forked child builds a stack (a channel NIC, IPv4 and IPv6 addresses, a
 * gateway route, TCP listeners and UDP sockets with options), checkpoints
 * it and exits; the test process, fresh as restore requires, restores the
 * image and checks that every piece came back under the same numbers, that
 * the clock continued, that the count went on, that a restored listener
 * answers a SYN whose TCP timestamp continues upward, and that a segment
 * of a connection that was not saved gets RST. Hand-made images check that
 * thousands of listeners come back, each answering, in lwIP's order, and
 * that sockets which conflict are refused as lwIP refuses them.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/tcp.h>
/* <netinet/tcp.h>'s TCP_MSS (the socket option) clashes with lwIP's
 * configuration value of the same name; only lwIP's is used here. */
#undef TCP_MSS
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frames.h"
#include "image.h"
#include "imgdir.h"
#include "netstack.h"
#include "lwip/priv/tcp_priv.h"

static const uint8_t stack_mac[6] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x02 };
static const uint8_t peer_mac[6] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01 };

static char img[256];

static void make_image_path(void)
{
	imgdir_make("ns-ckpt-test", img, sizeof(img));
}

static void remove_image(void)
{
	imgdir_remove();
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

/* --- hand-made images: many listeners, conflicts --- */

#define GROUP_PORT 7000		/* listeners on one port, different addresses */
#define ORDER_PORT 7001		/* 0.0.0.0 and dual-stack ::, both SO_REUSEADDR */
#define MANY_V4 2000
#define MANY_V6 500
#define MANY_MAX (MANY_V4 + MANY_V6 + 8)
#define PEER_PORT 40000

/* Append a TCP socket, numbered by its place, to a hand-made image. */
static int add_tcp(struct ns_state_sock *socks, size_t *n, enum ns_state_sock_kind kind,
		   const char *ip, uint16_t port, bool reuse, bool v6only)
{
	struct ns_state_sock *ss = &socks[*n];

	memset(ss, 0, sizeof(*ss));
	ss->id = (int)*n;
	ss->type = SOCK_STREAM;
	ss->kind = kind;
	ss->backlog = 16;
	ss->nonblock = true;
	ss->reuseaddr = reuse;
	ss->v6only = v6only;
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss->local;

		ss->family = a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		cr_assert_eq(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
		ss->local_len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss->local;

		ss->family = a->sin_family = AF_INET;
		a->sin_port = htons(port);
		cr_assert_eq(inet_pton(AF_INET, ip, &a->sin_addr), 1);
		ss->local_len = sizeof(*a);
	}
	return (int)(*n)++;
}

/* Write @dir: eth0, a channel NIC with 198.51.100.2/24, fd42:5::2/64 and
 * fd42:5::3/64, and @socks. */
static void write_image(const char *dir, struct ns_state_sock *socks, size_t n)
{
	struct ns_state_nic nic = { .id = 1, .name = "eth0", .kind = "channel", .mtu = 1500,
				    .up = true, .naddrs = 3 };
	struct ns_state st = { .clock_ns = 1000000000ull, .nnics = 1, .nics = &nic,
			       .nsocks = n, .socks = socks };
	char why[256] = "";

	memcpy(nic.mac, stack_mac, 6);
	ns_prefix_parse("198.51.100.2/24", &nic.addrs[0]);
	ns_prefix_parse("fd42:5::2/64", &nic.addrs[1]);
	ns_prefix_parse("fd42:5::3/64", &nic.addrs[2]);
	cr_assert_eq(ckpt_image_write(dir, &st, why, sizeof(why)), 0, "image %s: %s", dir, why);
}

static bool same_local(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_in *a4 = (const void *)a, *b4 = (const void *)b;
	const struct sockaddr_in6 *a6 = (const void *)a, *b6 = (const void *)b;

	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return a4->sin_port == b4->sin_port && a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	return a6->sin6_port == b6->sin6_port && memcmp(&a6->sin6_addr, &b6->sin6_addr, 16) == 0;
}

static uint16_t port_of(const struct ns_state_sock *ss)
{
	/* sin6_port is where sin_port is. */
	return ntohs(((const struct sockaddr_in *)&ss->local)->sin_port);
}

/* A dual-stack :: listener is reached over IPv4, the others in their family. */
static bool reached_over_v4(const struct ns_state_sock *ss)
{
	return ss->family == AF_INET || !ss->v6only;
}

/* Every listener but those on GROUP_PORT and ORDER_PORT (checked apart). */
static bool syn_ack_wanted(const struct ns_state_sock *ss)
{
	return ss->kind == NS_STATE_SOCK_LISTEN && port_of(ss) != GROUP_PORT &&
	       port_of(ss) != ORDER_PORT;
}

/* Take the stack's frames until none came for 100 ms: answer neighbour
 * queries, and note in @syn_ack[port] each SYN-ACK's IP version. */
static void drain(struct ns_endpoint *ep, const struct frame_path *to4,
		  const struct frame_path *to6, uint8_t *syn_ack)
{
	struct frame_parsed fp;
	uint8_t buf[2048], reply[128];
	int idle = 0;

	while (idle < 100) {
		ssize_t n = ns_channel_read(ep, buf, sizeof(buf)), r;

		if (n == -EAGAIN) {
			usleep(1000);
			idle++;
			continue;
		}
		idle = 0;
		if (n <= 0 || frame_parse(buf, (size_t)n, &fp) != 0)
			continue;
		r = frame_neighbour_reply(&fp, to4, to6, reply, sizeof(reply));
		if (r > 0)
			cr_assert_eq(ns_channel_inject(ep, reply, (size_t)r), 0);
		else if (fp.proto == IPPROTO_TCP && fp.dport == PEER_PORT &&
			 (fp.tcp_flags & (TH_SYN | TH_ACK | TH_RST)) == (TH_SYN | TH_ACK))
			syn_ack[fp.sport] = (uint8_t)fp.ip_version;
	}
}

/* Send a SYN to every listener in @socks but the ones on GROUP_PORT and
 * ORDER_PORT, and expect each to answer with a SYN-ACK in the family it
 * was reached in. A SYN lost while the neighbour was resolved is sent
 * again: lwIP answers a repeated SYN with the SYN-ACK again. */
static void expect_every_listener_answers(struct ns_endpoint *ep, const struct ns_state_sock *socks,
					  size_t n)
{
	static const uint8_t mss[] = { 2, 4, 0x05, 0xb4 };
	struct frame_path to4, to6;
	uint8_t *syn_ack = calloc(65536, 1), buf[256];
	size_t i, missing = n;
	int round;

	cr_assert_not_null(syn_ack);
	frame_path_init(&to4, peer_mac, "198.51.100.1", stack_mac, "198.51.100.2");
	frame_path_init(&to6, peer_mac, "fd42:5::1", stack_mac, "fd42:5::2");
	for (round = 0; round < 5 && missing; round++) {
		for (i = 0; i < n; i++) {
			struct frame_tcp syn = { .sport = PEER_PORT, .dport = port_of(&socks[i]),
						 .seq = 1000, .flags = FRAME_TCP_SYN, .window = 65535,
						 .opts = mss, .opts_len = sizeof(mss) };
			ssize_t len;

			if (!syn_ack_wanted(&socks[i]) || syn_ack[syn.dport])
				continue;
			len = frame_tcp(buf, sizeof(buf), reached_over_v4(&socks[i]) ? &to4 : &to6, &syn);
			cr_assert_gt(len, 0);
			cr_assert_eq(ns_channel_inject(ep, buf, (size_t)len), 0);
		}
		drain(ep, &to4, &to6, syn_ack);
		for (i = 0, missing = 0; i < n; i++)
			missing += syn_ack_wanted(&socks[i]) && !syn_ack[port_of(&socks[i])];
	}
	for (i = 0; i < n; i++) {
		uint16_t port = port_of(&socks[i]);

		if (!syn_ack_wanted(&socks[i]))
			continue;
		cr_expect_eq(syn_ack[port], reached_over_v4(&socks[i]) ? 4 : 6,
			     "socket %d, port %u: a SYN-ACK over IPv%d (got %u)", socks[i].id, port,
			     reached_over_v4(&socks[i]) ? 4 : 6, syn_ack[port]);
	}
	free(syn_ack);
}

/* lwIP's bound and listen lists are as binding and listening @socks one
 * by one leaves them: each newest first, since lwIP prepends. The stack
 * is not started: nothing else touches them. */
static void expect_lwip_lists(const struct ns_state_sock *socks, size_t n)
{
	struct tcp_pcb *lists[2] = { tcp_bound_pcbs, tcp_listen_pcbs.pcbs }, *pcb;
	size_t i;
	int l;

	for (l = 0; l < 2; l++) {
		enum ns_state_sock_kind kind = l ? NS_STATE_SOCK_LISTEN : NS_STATE_SOCK_BOUND;

		pcb = lists[l];
		for (i = n; i-- > 0;) {
			if (socks[i].kind != kind)
				continue;
			cr_assert_not_null(pcb, "socket %d is on lwIP's list", socks[i].id);
			cr_assert_eq(pcb->local_port, port_of(&socks[i]), "socket %d in its place (port %u there)",
				     socks[i].id, pcb->local_port);
			pcb = pcb->next;
		}
		cr_expect_null(pcb, "nothing more on lwIP's list");
	}
}

/* Open a connection from @from to @to:@port over the channel; the stack's
 * listener then has it queued. */
static void handshake(struct ns_endpoint *ep, const char *from, const char *to, uint16_t port,
		      uint16_t sport)
{
	struct frame_path path, to4;
	struct tcp_peer peer;
	struct frame_parsed fp;
	uint8_t buf[2048];
	ssize_t n;
	int i;

	frame_path_init(&path, peer_mac, from, stack_mac, to);
	frame_path_init(&to4, peer_mac, "198.51.100.1", stack_mac, "198.51.100.2");
	tcp_peer_init(&peer, &path, sport, port, 5000);
	n = tcp_peer_syn(&peer, buf, sizeof(buf), NULL, 0);
	cr_assert_gt(n, 0);
	cr_assert_eq(ns_channel_inject(ep, buf, (size_t)n), 0);
	for (i = 0; i < 2000 && !peer.synced; i++) {
		uint8_t reply[128];
		ssize_t r;

		n = ns_channel_read(ep, buf, sizeof(buf));
		if (n == -EAGAIN) {
			usleep(1000);
			continue;
		}
		if (n <= 0 || frame_parse(buf, (size_t)n, &fp) != 0)
			continue;
		r = frame_neighbour_reply(&fp, &to4, &path, reply, sizeof(reply));
		if (r > 0)
			ns_channel_inject(ep, reply, (size_t)r);
		else if (fp.proto == IPPROTO_TCP && fp.sport == port && fp.dport == sport)
			cr_assert_eq(tcp_peer_absorb(&peer, &fp), 1, "SYN-ACK from %s:%u", to, port);
	}
	cr_assert(peer.synced, "a SYN-ACK from %s:%u", to, port);
	n = tcp_peer_ack(&peer, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	cr_assert_eq(ns_channel_inject(ep, buf, (size_t)n), 0);
}

/* Which of @ids accepted the connection just made (-1: none within 2 s). */
static int accepted_by(struct ns_stack *s, const int *ids, size_t n)
{
	size_t i;
	int t, c;

	for (t = 0; t < 2000; t++) {
		for (i = 0; i < n; i++) {
			c = ns_accept(s, ids[i], NULL, NULL, 0);
			if (c >= 0) {
				ns_close(s, c);
				return ids[i];
			}
			cr_assert_eq(c, -EAGAIN, "accept on %d: %d", ids[i], c);
		}
		usleep(1000);
	}
	return -1;
}

Test(checkpoint, restore_brings_back_thousands_of_listeners_each_answering)
{
	struct ns_state_sock *socks = calloc(MANY_MAX, sizeof(*socks));
	struct ns_socket_info *info = calloc(MANY_MAX, sizeof(*info));
	int g4, g4any = -1, g6 = -1, g6any, o4any, odual, n;
	struct ns_endpoint *ep;
	struct ns_stack *s;
	size_t k = 0, i;

	cr_assert(socks && info);
	/* One port, several addresses, spread over the restore: first, in the
	 * middle and last, so each binds while thousands of others are listed.
	 * A bound socket shares the first listener's address and port; a few
	 * more are bound only, on ports of their own. */
	g4 = add_tcp(socks, &k, NS_STATE_SOCK_LISTEN, "198.51.100.2", GROUP_PORT, true, false);
	add_tcp(socks, &k, NS_STATE_SOCK_BOUND, "198.51.100.2", GROUP_PORT, true, false);
	o4any = add_tcp(socks, &k, NS_STATE_SOCK_LISTEN, "0.0.0.0", ORDER_PORT, true, false);
	for (i = 0; i < MANY_V4; i++) {
		add_tcp(socks, &k, i % 250 == 7 ? NS_STATE_SOCK_BOUND : NS_STATE_SOCK_LISTEN,
			i % 2 ? "0.0.0.0" : "198.51.100.2", (uint16_t)(20000 + i), i % 3 == 0, false);
		if (i == MANY_V4 / 2) {
			g4any = add_tcp(socks, &k, NS_STATE_SOCK_LISTEN, "0.0.0.0", GROUP_PORT, true, false);
			g6 = add_tcp(socks, &k, NS_STATE_SOCK_LISTEN, "fd42:5::2", GROUP_PORT, true, true);
		}
	}
	for (i = 0; i < MANY_V6; i++)
		add_tcp(socks, &k, NS_STATE_SOCK_LISTEN, i % 2 ? "::" : "fd42:5::2",
			(uint16_t)(30000 + i), i % 3 == 0, i % 2 == 0);
	g6any = add_tcp(socks, &k, NS_STATE_SOCK_LISTEN, "::", GROUP_PORT, true, true);
	odual = add_tcp(socks, &k, NS_STATE_SOCK_LISTEN, "::", ORDER_PORT, true, false);
	write_image(img, socks, k);

	s = restore(&ep, false);
	expect_lwip_lists(socks, k);
	cr_assert_eq(ns_stack_start(s), 0);
	n = ns_socket_list(s, info, MANY_MAX);
	cr_assert_eq(n, (int)k, "%d sockets of %zu", n, k);
	for (i = 0; i < k; i++) {
		cr_assert_eq(info[i].id, socks[i].id);
		cr_expect_eq(info[i].state, socks[i].kind == NS_STATE_SOCK_LISTEN ?
			     NS_SOCKET_LISTENING : NS_SOCKET_BOUND, "socket %d", socks[i].id);
		cr_expect(same_local(&info[i].local, &socks[i].local), "socket %d: its address",
			  socks[i].id);
	}
	expect_every_listener_answers(ep, socks, k);

	/* An exact address wins over any; among the any-listeners lwIP takes
	 * the one last on its list: the first restored. */
	handshake(ep, "198.51.100.1", "198.51.100.2", GROUP_PORT, 50001);
	cr_expect_eq(accepted_by(s, (int[]){ g4, g4any, odual }, 3), g4);
	handshake(ep, "fd42:5::1", "fd42:5::2", GROUP_PORT, 50002);
	cr_expect_eq(accepted_by(s, (int[]){ g6, g6any }, 2), g6);
	handshake(ep, "fd42:5::1", "fd42:5::3", GROUP_PORT, 50003);
	cr_expect_eq(accepted_by(s, (int[]){ g6, g6any }, 2), g6any);
	handshake(ep, "198.51.100.1", "198.51.100.2", ORDER_PORT, 50004);
	cr_expect_eq(accepted_by(s, (int[]){ o4any, odual }, 2), o4any);
	ns_stack_free(s);
	free(info);
	free(socks);
}

/* Two TCP sockets of a hand-made image on one port, a hundred listeners on
 * other ports between them and after them, and what the restore says. */
struct pair {
	const char *what;
	enum ns_state_sock_kind kind[2];
	const char *ip[2];
	bool reuse[2], v6only[2];
	int rc;			/* the restore's: 0 or -EADDRINUSE, as lwIP decides */
};

#define L NS_STATE_SOCK_LISTEN
#define B NS_STATE_SOCK_BOUND
static const struct pair pairs[] = {
	{ "one address twice, both SO_REUSEADDR (tcp_listen refuses)",
	  { L, L }, { "198.51.100.2", "198.51.100.2" }, { true, true }, { false, false }, -EADDRINUSE },
	{ "0.0.0.0 without SO_REUSEADDR, then an address (tcp_bind refuses)",
	  { L, L }, { "0.0.0.0", "198.51.100.2" }, { false, true }, { false, false }, -EADDRINUSE },
	{ "dual-stack ::, then 0.0.0.0 (tcp_bind refuses)",
	  { L, L }, { "::", "0.0.0.0" }, { false, false }, { false, false }, -EADDRINUSE },
	{ "one IPv6 address twice",
	  { L, L }, { "fd42:5::2", "fd42:5::2" }, { false, false }, { true, true }, -EADDRINUSE },
	{ "a bound socket holds the port for a listener on 0.0.0.0",
	  { B, L }, { "198.51.100.2", "0.0.0.0" }, { false, true }, { false, false }, -EADDRINUSE },
	{ "0.0.0.0 and an address, both SO_REUSEADDR",
	  { L, L }, { "0.0.0.0", "198.51.100.2" }, { true, true }, { false, false }, 0 },
	{ "IPv6-only :: and 0.0.0.0",
	  { L, L }, { "::", "0.0.0.0" }, { false, false }, { true, false }, 0 },
	{ "bound, then listening on one address, both SO_REUSEADDR",
	  { B, L }, { "198.51.100.2", "198.51.100.2" }, { true, true }, { false, false }, 0 },
};
#undef L
#undef B

#define PAIR_PORT 8000
#define PAIR_FILL 100

/* Restore @dir in a fresh process (restore needs one); its return code,
 * reason, and whether the stack pointer was left NULL on failure. */
static int restore_in_child(const char *dir, char *why, size_t whylen, bool *untouched)
{
	struct { int rc; bool untouched; char why[256]; } out = { 0 };
	int fds[2], status;
	pid_t pid;

	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct ns_restore_endpoint re = { .nic_name = "eth0" };
		struct ns_restore_opts opts = { .endpoints = &re, .nendpoints = 1 };
		struct ns_stack *s = NULL;

		close(fds[0]);
		if (ns_endpoint_channel_new(&re.ep))
			_exit(10);
		out.rc = ns_stack_restore(dir, &opts, &s, out.why, sizeof(out.why));
		out.untouched = !s;
		if (s)
			ns_stack_free(s);
		_exit(write(fds[1], &out, sizeof(out)) == (ssize_t)sizeof(out) ? 0 : 11);
	}
	close(fds[1]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "restore child: status %d", status);
	cr_assert_eq(read(fds[0], &out, sizeof(out)), (ssize_t)sizeof(out));
	close(fds[0]);
	snprintf(why, whylen, "%s", out.why);
	*untouched = out.untouched;
	return out.rc;
}

Test(checkpoint, restore_refuses_conflicting_sockets_as_lwip_does)
{
	struct ns_state_sock socks[2 * PAIR_FILL + 2];
	size_t p, i, k;

	for (p = 0; p < sizeof(pairs) / sizeof(pairs[0]); p++) {
		const struct pair *c = &pairs[p];
		char dir[300], why[256];
		bool untouched;
		int rc;

		k = 0;
		add_tcp(socks, &k, c->kind[0], c->ip[0], PAIR_PORT, c->reuse[0], c->v6only[0]);
		for (i = 0; i < PAIR_FILL; i++)
			add_tcp(socks, &k, NS_STATE_SOCK_LISTEN, "198.51.100.2", (uint16_t)(20000 + i),
				true, false);
		add_tcp(socks, &k, c->kind[1], c->ip[1], PAIR_PORT, c->reuse[1], c->v6only[1]);
		for (i = 0; i < PAIR_FILL; i++)
			add_tcp(socks, &k, NS_STATE_SOCK_LISTEN, "0.0.0.0", (uint16_t)(30000 + i),
				false, false);
		snprintf(dir, sizeof(dir), "%s-%zu", img, p);
		write_image(dir, socks, k);
		rc = restore_in_child(dir, why, sizeof(why), &untouched);
		cr_expect_eq(rc, c->rc, "%s: restore %d, want %d (%s)", c->what, rc, c->rc, why);
		if (c->rc) {
			cr_expect(strstr(why, "cannot rebuild the stack from the image") != NULL,
				  "%s: why: %s", c->what, why);
			cr_expect(untouched, "%s: no stack handed out", c->what);
		}
	}
}
