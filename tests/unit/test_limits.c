/* SPDX-License-Identifier: MIT */
/*
 * test_limits.c - the stack's limits (ns_stack_config: max_sockets,
 * max_backlog, max_sock_buf, max_memory, max_rx_total) driven to and past
 * their edge over the in-memory channel endpoint, the test playing scripted
 * TCP/UDP peers on 198.51.100.0/24 with the frame toolkit (frames.c). Each
 * limit must refuse the work past it - -EMFILE, -ENOMEM/-ENOBUFS, SYNs left
 * unanswered, data held back or dropped, all counted in ns_stack_usage() -
 * and the stack must go on serving what it had: an established connection
 * carries data both ways after the flood, a closed socket frees its number.
 */
#define _GNU_SOURCE

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "frames.h"
#include "netstack.h"

#define WAIT_MS 2000		/* the bound on every wait for the stack */
#define QUIET_MS 300		/* silence this long counts as "no reply" */
#define FRAME_BUF 2048
#define SEG 1400		/* payload per data segment */

#define NIC_IP4 "198.51.100.2"
#define PEER_IP4 "198.51.100.1"
#define PORT 80
#define UDP_PORT 5353
#define PEER_PORT 40000
#define MAX_PEERS 4096
#define MAX_SOCKS 60000

static const uint8_t nic_mac[FRAME_MAC_LEN] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x02 };
static const uint8_t peer_mac[FRAME_MAC_LEN] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01 };
/* MSS 1460, SACK permitted, NOP, window scale 7: lwIP's 1 MiB window is
 * then usable in full. */
static const uint8_t syn_opts[] = { 2, 4, 0x05, 0xb4, 4, 2, 1, 3, 3, 7 };

static struct ns_stack *stack;
static struct ns_endpoint *chan;
static struct frame_path to4;

/* The peers' connections, so frames the stack sends reach the right one. */
static struct tcp_peer *peers[MAX_PEERS + 1];
static size_t npeers;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void start(struct ns_stack_config *cfg)
{
	struct ns_nic_config nc = { .name = "eth0" };
	struct ns_prefix pfx;
	int nic;

	cfg->log_level = NS_LOG_WARNING;
	cr_assert_eq(ns_stack_new(cfg, &stack), 0);
	cr_assert_eq(ns_endpoint_channel_new(&chan), 0);
	memcpy(nc.mac, nic_mac, sizeof(nc.mac));
	nic = ns_nic_add(stack, &nc, chan);
	cr_assert_geq(nic, 1, "ns_nic_add: %d", nic);
	cr_assert_eq(ns_prefix_parse(NIC_IP4 "/24", &pfx), 0);
	cr_assert_eq(ns_addr_add(stack, nic, &pfx), 0);
	cr_assert_eq(frame_path_init(&to4, peer_mac, PEER_IP4, nic_mac, NIC_IP4), 0);
	cr_assert_eq(ns_stack_start(stack), 0);
}

static void teardown(void)
{
	ns_stack_free(stack);
	stack = NULL;
	npeers = 0;
}

/* Criterion forks per test: one stack per process, as lwIP requires. */
TestSuite(limits, .fini = teardown, .timeout = 60);

static struct ns_usage usage(void)
{
	struct ns_usage u;

	cr_assert_eq(ns_stack_usage(stack, &u), 0);
	return u;
}

static struct ns_stats stats(void)
{
	struct ns_stats st;

	cr_assert_eq(ns_stack_stats(stack, &st), 0);
	return st;
}

/* Queue a frame for the stack, waiting while the channel's queue is full. */
static void inject(const uint8_t *f, ssize_t len)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	int rc;

	cr_assert_gt(len, 0, "building the frame failed: %zd", len);
	while ((rc = ns_channel_inject(chan, f, (size_t)len)) == -ENOBUFS && now_ms() < deadline)
		sleep_ms(1);
	cr_assert_eq(rc, 0, "ns_channel_inject: %d", rc);
}

/*
 * Take every frame the stack sent: answer its ARP requests, let each TCP
 * segment advance its peer. Return: how many were TCP segments for @peer
 * with flags @flags all set (@peer NULL: none counted).
 */
static int drain(const struct tcp_peer *peer, uint8_t flags)
{
	uint8_t buf[FRAME_BUF], out[FRAME_BUF];
	struct frame_parsed p;
	ssize_t n;
	int hits = 0;
	size_t i;

	while ((n = ns_channel_read(chan, buf, sizeof(buf))) >= 0) {
		cr_assert_eq(frame_parse(buf, (size_t)n, &p), 0, "the stack sent a malformed frame");
		cr_assert(p.csum_ok, "the stack sent a frame with a bad checksum");
		n = frame_neighbour_reply(&p, &to4, NULL, out, sizeof(out));
		if (n > 0) {
			inject(out, n);
			continue;
		}
		if (p.proto != IPPROTO_TCP)
			continue;
		for (i = 0; i < npeers; i++) {
			if (peers[i]->sport != p.dport)
				continue;
			tcp_peer_absorb(peers[i], &p);
			if (peers[i] == peer && (p.tcp_flags & flags) == flags)
				hits++;
		}
	}
	return hits;
}

/* Wait up to @ms for a segment to @peer with @flags. Return: whether one came. */
static bool await_seg(const struct tcp_peer *peer, uint8_t flags, unsigned ms)
{
	uint64_t deadline = now_ms() + ms;

	do {
		if (drain(peer, flags))
			return true;
		sleep_ms(1);
	} while (now_ms() < deadline);
	return false;
}

/* The peer's segment with @flags and @len bytes of @data. */
static void peer_send(struct tcp_peer *p, uint8_t flags, const void *data, size_t len)
{
	uint8_t f[FRAME_BUF];

	inject(f, tcp_peer_send(p, f, sizeof(f), flags, NULL, 0, data, len));
}

/*
 * Open a connection from a new peer on @sport to the listener.
 * Return: whether the stack answered the SYN within @ms (then the handshake
 * is complete).
 */
static bool peer_connect(struct tcp_peer *p, uint16_t sport, unsigned ms)
{
	uint8_t f[FRAME_BUF];

	cr_assert_lt(npeers, MAX_PEERS);
	tcp_peer_init(p, &to4, sport, PORT, 1000000u + sport * 4096u);
	peers[npeers++] = p;
	inject(f, tcp_peer_syn(p, f, sizeof(f), syn_opts, sizeof(syn_opts)));
	if (!await_seg(p, FRAME_TCP_SYN | FRAME_TCP_ACK, ms))
		return false;
	peer_send(p, FRAME_TCP_ACK, NULL, 0);
	return true;
}

static int listener(int backlog)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	int l = ns_socket(stack, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	cr_assert_geq(l, 0, "ns_socket: %d", l);
	cr_assert_eq(ns_bind(stack, l, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(ns_listen(stack, l, backlog), 0);
	return l;
}

/* Accept one connection, waiting for the stack to have queued it. */
static int accept_one(int l)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	int c;

	while ((c = ns_accept(stack, l, NULL, NULL, 0)) == -EAGAIN && now_ms() < deadline)
		sleep_ms(1);
	return c;
}

/* Read exactly @len bytes from @sock (nonblocking, within WAIT_MS). */
static void read_exactly(int sock, size_t len, uint8_t fill)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	uint8_t buf[4096];
	size_t got = 0, i;

	while (got < len) {
		ssize_t n = ns_recv(stack, sock, buf, sizeof(buf) < len - got ? sizeof(buf) : len - got,
				    MSG_DONTWAIT);

		if (n == -EAGAIN) {
			cr_assert_lt(now_ms(), deadline, "%zu of %zu bytes arrived", got, len);
			drain(NULL, 0);
			sleep_ms(1);
			continue;
		}
		cr_assert_gt(n, 0, "ns_recv: %zd after %zu bytes", n, got);
		for (i = 0; i < (size_t)n; i++)
			cr_assert_eq(buf[i], fill, "byte %zu", got + i);
		got += (size_t)n;
	}
}

/* Data both ways on an established connection: the peer sends and the
 * application reads it; the application sends and the peer sees it acked
 * by itself. */
static void assert_carries_data(struct tcp_peer *p, int sock, uint8_t fill)
{
	uint8_t data[SEG];
	ssize_t n;

	memset(data, fill, sizeof(data));
	peer_send(p, FRAME_TCP_ACK | FRAME_TCP_PSH, data, sizeof(data));
	read_exactly(sock, sizeof(data), fill);
	n = ns_send(stack, sock, data, 100, MSG_DONTWAIT);
	cr_assert_eq(n, 100, "ns_send: %zd", n);
	cr_assert(await_seg(p, FRAME_TCP_PSH, WAIT_MS), "the stack's data never reached the peer");
	peer_send(p, FRAME_TCP_ACK, NULL, 0);
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

Test(limits, config_out_of_range_is_einval)
{
	struct ns_stack_config bad[] = {
		{ .max_sockets = (1u << 24) + 1 },
		{ .max_backlog = 256 },
		{ .max_sock_buf = 2047 },
		{ .max_sock_buf = (1u << 30) + 1 },
		{ .max_memory = 1000 },
		{ .max_memory = 1 << 20, .max_rx_total = (1 << 20) + 1 },
		{ .max_rx_total = (size_t)1 << 40 },	/* above the default max_memory */
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(ns_stack_new(&bad[i], &stack), -EINVAL, "config %zu", i);
	stack = NULL;
}

Test(limits, defaults_are_reported)
{
	struct ns_stack_config cfg = { 0 };
	struct ns_usage u;

	start(&cfg);
	cr_assert_eq(ns_stack_usage(NULL, &u), -EINVAL);
	cr_assert_eq(ns_stack_usage(stack, NULL), -EINVAL);
	u = usage();
	cr_expect_eq(u.max_sockets, 65536);
	cr_expect_eq(u.max_memory, (uint64_t)512 << 20);
	cr_expect_eq(u.max_rx_total, (uint64_t)256 << 20);
	cr_expect_gt(u.mem_used, 0, "lwIP holds its NIC's memory");
	cr_expect_leq(u.mem_used, u.mem_peak);
	cr_expect_eq(u.mem_refused, 0);
	cr_expect_eq(u.sockets, 0);
}

/* ------------------------------------------------------------------ */
/* Sockets                                                             */
/* ------------------------------------------------------------------ */

Test(limits, sockets_past_max_get_emfile_until_one_closes)
{
	struct ns_stack_config cfg = { .max_sockets = 4 };
	struct tcp_peer p1, p2;
	int l, s[3], c, i;

	start(&cfg);
	l = listener(8);
	for (i = 0; i < 3; i++) {
		s[i] = ns_socket(stack, AF_INET, i ? SOCK_DGRAM : SOCK_STREAM, 0);
		cr_assert_geq(s[i], 0, "socket %d: %d", i, s[i]);
	}
	cr_assert_eq(usage().sockets, 4);
	cr_assert_eq(ns_socket(stack, AF_INET, SOCK_STREAM, 0), -EMFILE);
	cr_assert_eq(ns_socket(stack, AF_INET6, SOCK_DGRAM, 0), -EMFILE);

	/* A connection the table has no number for stays queued. */
	cr_assert(peer_connect(&p1, PEER_PORT, WAIT_MS), "no SYN-ACK");
	sleep_ms(50);
	cr_assert_eq(ns_accept(stack, l, NULL, NULL, 0), -EMFILE);
	cr_assert_eq(usage().sock_refused, 3);

	cr_assert_eq(ns_close(stack, s[1]), 0);
	c = accept_one(l);
	cr_assert_geq(c, 0, "ns_accept after a close: %d", c);
	assert_carries_data(&p1, c, 0x5a);

	/* Full again; a close frees a number for a new socket too. */
	cr_assert_eq(ns_socket(stack, AF_INET, SOCK_STREAM, 0), -EMFILE);
	cr_assert_eq(ns_close(stack, s[2]), 0);
	s[2] = ns_socket(stack, AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(s[2], 0, "ns_socket after a close: %d", s[2]);
	cr_assert_eq(usage().sock_refused, 4);
	/* And the listener still takes new connections. */
	cr_assert(peer_connect(&p2, PEER_PORT + 1, WAIT_MS), "no SYN-ACK after the refusals");
}

/* ------------------------------------------------------------------ */
/* Backlog                                                             */
/* ------------------------------------------------------------------ */

Test(limits, backlog_full_leaves_syns_unanswered)
{
	struct ns_stack_config cfg = { .max_backlog = 2 };
	struct tcp_peer p[4];
	struct ns_socket_info info[4];
	int l, c[2], i, n;

	start(&cfg);
	l = listener(100);	/* clamped to max_backlog, as to somaxconn */
	n = ns_socket_list(stack, info, 4);
	cr_assert_eq(n, 1);
	cr_assert_eq(info[0].backlog, 2);

	cr_assert(peer_connect(&p[0], PEER_PORT, WAIT_MS), "first connection refused");
	cr_assert(peer_connect(&p[1], PEER_PORT + 1, WAIT_MS), "second connection refused");
	cr_assert_not(peer_connect(&p[2], PEER_PORT + 2, QUIET_MS), "a SYN past the backlog was answered");

	/* The queued ones are whole. */
	for (i = 0; i < 2; i++) {
		c[i] = accept_one(l);
		cr_assert_geq(c[i], 0, "ns_accept %d: %d", i, c[i]);
		assert_carries_data(&p[i], c[i], (uint8_t)(0x10 + i));
	}
	cr_assert_eq(ns_accept(stack, l, NULL, NULL, 0), -EAGAIN, "the refused SYN was queued");
	/* With room again, a new SYN is answered. */
	cr_assert(peer_connect(&p[3], PEER_PORT + 3, WAIT_MS), "no room after accepting");
}

/* ------------------------------------------------------------------ */
/* Receive buffers                                                     */
/* ------------------------------------------------------------------ */

Test(limits, sock_buf_is_clamped_to_max)
{
	struct ns_stack_config cfg = { .max_sock_buf = 65536 };
	int s, v = 1 << 24;
	socklen_t len = sizeof(v);

	start(&cfg);
	s = ns_socket(stack, AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(s, 0);
	cr_assert_eq(ns_getsockopt(stack, s, SOL_SOCKET, SO_RCVBUF, &v, &len), 0);
	cr_expect_eq(v, 65536, "the default is clamped too");
	v = 1 << 24;
	cr_assert_eq(ns_setsockopt(stack, s, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v)), 0);
	cr_assert_eq(ns_getsockopt(stack, s, SOL_SOCKET, SO_SNDBUF, &v, &len), 0);
	cr_expect_eq(v, 65536);
	v = 4096;
	cr_assert_eq(ns_setsockopt(stack, s, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v)), 0);
	cr_assert_eq(ns_getsockopt(stack, s, SOL_SOCKET, SO_SNDBUF, &v, &len), 0);
	cr_expect_eq(v, 4096);
}

Test(limits, sndbuf_bounds_unacknowledged_tcp_data)
{
	struct ns_stack_config cfg = { 0 };
	static uint8_t data[64 * 1024];
	struct pollfd pfd;
	struct tcp_peer p;
	int l, c, v = 8192;
	uint32_t start_seq;
	ssize_t n, more;

	start(&cfg);
	l = listener(4);
	cr_assert(peer_connect(&p, PEER_PORT, WAIT_MS));
	c = accept_one(l);
	cr_assert_geq(c, 0);
	cr_assert_eq(ns_setsockopt(stack, c, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v)), 0);
	start_seq = p.rcv_nxt;
	n = ns_send(stack, c, data, sizeof(data), MSG_DONTWAIT);
	cr_assert_eq(n, 8192, "a send into an 8 KiB SO_SNDBUF took %zd bytes", n);
	cr_assert_eq(ns_send(stack, c, data, sizeof(data), MSG_DONTWAIT), -EAGAIN);
	pfd = (struct pollfd){ .fd = c, .events = POLLOUT };
	cr_assert_eq(ns_poll(stack, &pfd, 1, 0), 0, "POLLOUT with the buffer full");
	/* The peer acknowledges what came (the initial window's worth): that
	 * much room again, no more. */
	cr_assert(await_seg(&p, FRAME_TCP_ACK, WAIT_MS));
	sleep_ms(50);
	drain(NULL, 0);
	peer_send(&p, FRAME_TCP_ACK, NULL, 0);
	cr_assert_eq(ns_poll(stack, &pfd, 1, WAIT_MS), 1, "no POLLOUT once acknowledged");
	more = ns_send(stack, c, data, sizeof(data), MSG_DONTWAIT);
	cr_assert_gt(p.rcv_nxt - start_seq, 0);
	cr_assert_eq(more, (ssize_t)(p.rcv_nxt - start_seq), "after an ACK of %u bytes: %zd",
		     p.rcv_nxt - start_seq, more);
}

static int udp_socket(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int s = ns_socket(stack, AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0), big = 1 << 20;

	cr_assert_geq(s, 0);
	cr_assert_eq(ns_bind(stack, s, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(ns_setsockopt(stack, s, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big)), 0);
	return s;
}

static void udp_to(uint16_t port, size_t len)
{
	uint8_t f[FRAME_BUF], data[SEG];

	memset(data, 0xab, sizeof(data));
	inject(f, frame_udp(f, sizeof(f), &to4, PEER_PORT, port, data, len));
}

/* Count what @sock has queued, reading it all. */
static size_t udp_read_all(int sock)
{
	uint8_t buf[FRAME_BUF];
	size_t total = 0;
	ssize_t n;

	while ((n = ns_recv(stack, sock, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		total += (size_t)n;
	cr_assert_eq(n, -EAGAIN);
	return total;
}

Test(limits, rx_total_drops_datagrams_past_it)
{
	struct ns_stack_config cfg = { .max_rx_total = 16 * 1000 };
	int a, b, i;
	struct ns_usage u;

	start(&cfg);
	a = udp_socket(UDP_PORT);
	b = udp_socket(UDP_PORT + 1);
	for (i = 0; i < 20; i++)
		udp_to(UDP_PORT, 1000);
	udp_to(UDP_PORT + 1, 1000);
	sleep_ms(200);
	u = usage();
	cr_assert_eq(u.rx_queued, 17 * 1000, "16 fit, and b's first always does");
	cr_assert_eq(u.rx_refused, 4);
	cr_assert_eq(stats().udp_rcvbuf_drops, 0, "not a per-socket drop");
	cr_assert_eq(udp_read_all(a), 16 * 1000);
	cr_assert_eq(udp_read_all(b), 1000);
	cr_assert_eq(usage().rx_queued, 0);
	/* Room again. */
	udp_to(UDP_PORT, 1000);
	sleep_ms(100);
	cr_assert_eq(udp_read_all(a), 1000);
}

Test(limits, rx_total_holds_tcp_data_back_until_read)
{
	struct ns_stack_config cfg = { .max_rx_total = 4096 };
	uint8_t data[SEG];
	struct tcp_peer p;
	uint32_t resend = 0;
	int l, c, i;

	start(&cfg);
	l = listener(4);
	cr_assert(peer_connect(&p, PEER_PORT, WAIT_MS));
	c = accept_one(l);
	cr_assert_geq(c, 0);
	memset(data, 0x77, sizeof(data));
	/* 1400 + 1400 queue; the third would pass 4096: lwIP keeps it as
	 * refused data and drops what follows until the application reads. */
	for (i = 0; i < 10; i++) {
		if (i == 3)
			resend = p.snd_nxt;
		peer_send(&p, FRAME_TCP_ACK | FRAME_TCP_PSH, data, sizeof(data));
	}
	sleep_ms(200);
	drain(NULL, 0);
	cr_assert_eq(usage().rx_queued, 2 * SEG);
	cr_assert_geq(usage().rx_refused, 1);
	read_exactly(c, 3 * SEG, 0x77);
	cr_assert_eq(ns_recv(stack, c, data, sizeof(data), MSG_DONTWAIT), -EAGAIN,
		     "segments after the held one were taken");
	/* The peer retransmits the rest, which now fits. */
	p.snd_nxt = resend;
	for (i = 3; i < 10; i++) {
		peer_send(&p, FRAME_TCP_ACK | FRAME_TCP_PSH, data, sizeof(data));
		read_exactly(c, SEG, 0x77);
	}
	cr_assert_eq(usage().rx_queued, 0);
}

/* ------------------------------------------------------------------ */
/* Stack memory                                                        */
/* ------------------------------------------------------------------ */

/*
 * Out-of-order segments on @n connections: lwIP keeps each (up to its 1 MiB
 * window) waiting for the hole before it, so memory only grows.
 */
static void flood_ooseq(struct tcp_peer *p, int n, int segs)
{
	uint8_t data[SEG];
	int i, k;

	memset(data, 0xee, sizeof(data));
	for (k = 0; k < segs; k++) {
		for (i = 0; i < n; i++) {
			uint32_t next = p[i].snd_nxt;

			p[i].snd_nxt += SEG;	/* the hole */
			peer_send(&p[i], FRAME_TCP_ACK, data, sizeof(data));
			p[i].snd_nxt = next + SEG;
		}
		if (k % 16 == 0)
			drain(NULL, 0);
	}
}

Test(limits, memory_exhaustion_refuses_new_work_and_spares_old_connections)
{
	struct ns_stack_config cfg = { .max_memory = 1 << 20 };
	static int socks[MAX_SOCKS];
	struct tcp_peer keep, flood[6], after;
	uint32_t hole[6];
	uint8_t dgram[1000] = { 0 }, seg[SEG];
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9) };
	struct ns_usage u;
	int l, c, s, u_sock, i, nsocks, rc;
	ssize_t n;

	start(&cfg);
	l = listener(16);
	cr_assert(peer_connect(&keep, PEER_PORT, WAIT_MS));
	c = accept_one(l);
	cr_assert_geq(c, 0);
	assert_carries_data(&keep, c, 0x01);
	for (i = 0; i < 6; i++) {
		cr_assert(peer_connect(&flood[i], PEER_PORT + 1 + i, WAIT_MS), "flood connection %d", i);
		cr_assert_geq(accept_one(l), 0);
		hole[i] = flood[i].snd_nxt;
	}

	u_sock = ns_socket(stack, AF_INET, SOCK_DGRAM, 0);
	cr_assert_geq(u_sock, 0);
	inet_pton(AF_INET, PEER_IP4, &to.sin_addr);

	/* 6 x 280 KB of segments for 1 MiB: at the limit, the out-of-order
	 * queues are pruned to let frames in, again and again. */
	flood_ooseq(flood, 6, 200);
	sleep_ms(200);
	drain(NULL, 0);
	u = usage();
	cr_assert_leq(u.mem_used, u.max_memory, "the limit held");
	cr_assert_leq(u.mem_peak, u.max_memory, "the limit held all along");
	cr_assert_gt(u.mem_refused, 0, "the flood reached the limit");
	cr_assert_gt(u.mem_pruned, 0, "out-of-order data was dropped to make room");
	cr_log_info("flood: peak %llu of %llu bytes, %llu allocations refused, %llu bytes pruned",
		    (unsigned long long)u.mem_peak, (unsigned long long)u.max_memory,
		    (unsigned long long)u.mem_refused, (unsigned long long)u.mem_pruned);

	/* New work gets an error once memory is short; nothing crashes. */
	for (nsocks = 0; nsocks < MAX_SOCKS; nsocks++) {
		s = ns_socket(stack, AF_INET, SOCK_STREAM, 0);
		if (s < 0)
			break;
		socks[nsocks] = s;
	}
	cr_assert_eq(s, -ENOMEM, "ns_socket at the memory limit: %d after %d", s, nsocks);
	n = ns_sendto(stack, u_sock, dgram, sizeof(dgram), MSG_DONTWAIT, (struct sockaddr *)&to,
		      sizeof(to));
	cr_assert_eq(n, -ENOBUFS, "ns_sendto at the memory limit: %zd", n);
	n = ns_send(stack, c, dgram, sizeof(dgram), MSG_DONTWAIT);
	cr_assert(n == -EAGAIN || n == -ENOBUFS || n == -ENOMEM, "ns_send at the memory limit: %zd", n);
	/* Yet the older connection still receives: frames have memory of
	 * their own that pcbs and queued segments cannot take. */
	memset(seg, 0x03, sizeof(seg));
	peer_send(&keep, FRAME_TCP_ACK | FRAME_TCP_PSH, seg, sizeof(seg));
	read_exactly(c, sizeof(seg), 0x03);

	/* The flood ends: its connections are reset - the RSTs get in with
	 * memory still at the limit - and their memory is freed. */
	for (i = 0; i < 6; i++) {
		flood[i].snd_nxt = hole[i];	/* what the stack expects next */
		peer_send(&flood[i], FRAME_TCP_RST, NULL, 0);
	}
	sleep_ms(100);
	for (i = 0; i < nsocks; i++)
		cr_assert_eq(ns_close(stack, socks[i]), 0);
	u = usage();
	cr_assert_lt(u.mem_used, u.max_memory / 4, "memory came back: %llu",
		     (unsigned long long)u.mem_used);

	/* The connection from before is unharmed, and new work succeeds. */
	assert_carries_data(&keep, c, 0x02);
	s = ns_socket(stack, AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(s, 0, "ns_socket after the flood: %d", s);
	rc = ns_close(stack, s);
	cr_assert_eq(rc, 0);
	cr_assert(peer_connect(&after, PEER_PORT + 100, WAIT_MS), "no new connection after the flood");
}

Test(limits, connection_flood_at_memory_limit_is_refused_then_recovers)
{
	struct ns_stack_config cfg = { .max_memory = 256 << 10, .max_sockets = MAX_PEERS + 8 };
	static struct tcp_peer flood[MAX_PEERS];
	static int socks[MAX_PEERS];
	struct tcp_peer keep, after;
	struct ns_usage u;
	int l, c, n, i;

	start(&cfg);
	l = listener(255);
	cr_assert(peer_connect(&keep, PEER_PORT, WAIT_MS));
	c = accept_one(l);
	cr_assert_geq(c, 0);
	/* Connections, each accepted, until lwIP has no memory for a pcb:
	 * the SYN then goes unanswered (dropped, counted), nothing crashes. */
	for (n = 0; n < MAX_PEERS - 2; n++) {
		if (!peer_connect(&flood[n], (uint16_t)(PEER_PORT + 1 + n), QUIET_MS))
			break;
		socks[n] = accept_one(l);
		cr_assert_geq(socks[n], 0, "connection %d answered but not accepted: %d", n, socks[n]);
	}
	u = usage();
	cr_log_info("connection flood: %d connections in %llu bytes, %llu allocations refused",
		    n, (unsigned long long)u.max_memory, (unsigned long long)u.mem_refused);
	cr_assert_lt(n, MAX_PEERS - 2, "%d connections fit in 256 KiB", n);
	cr_assert_gt(n, 100, "only %d connections fit in 256 KiB", n);
	cr_assert_gt(u.mem_refused, 0);
	cr_assert_leq(u.mem_peak, u.max_memory);
	/* A few bytes may be left, not a few pcbs' worth. */
	for (i = n; i < MAX_PEERS; i++) {
		socks[i] = ns_socket(stack, AF_INET, SOCK_STREAM, 0);
		if (socks[i] < 0)
			break;
	}
	cr_assert_eq(i < MAX_PEERS ? socks[i] : 0, -ENOMEM, "ns_socket after %d more", i - n);
	cr_assert_lt(i - n, 4, "%d more sockets fitted", i - n);

	/* The application closes the flood's connections; the one from
	 * before works, and new connections are taken again. */
	while (i-- > 0)
		cr_assert_eq(ns_close(stack, socks[i]), 0);
	/* Their peers reset them (a closed connection holds its pcb until
	 * the peer is done): the RSTs get in from the memory kept for
	 * received frames, though the rest is full of pcbs. */
	drain(NULL, 0);
	for (i = 0; i < n; i++)
		peer_send(&flood[i], FRAME_TCP_RST, NULL, 0);
	sleep_ms(100);
	drain(NULL, 0);
	u = usage();
	cr_assert_lt(u.mem_used, u.max_memory / 2, "memory came back: %llu",
		     (unsigned long long)u.mem_used);
	assert_carries_data(&keep, c, 0x33);
	npeers--;	/* the refused one's SYN-ACK may come late: forget it */
	cr_assert(peer_connect(&after, PEER_PORT + MAX_PEERS, WAIT_MS), "no connection after the flood");
}
