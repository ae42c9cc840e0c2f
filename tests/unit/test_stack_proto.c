/* SPDX-License-Identifier: MIT */
/*
 * test_stack_proto.c - protocol tests of the whole stack over the in-memory
 * channel endpoint, the test playing a kernel-like peer on 198.51.100.1 and
 * fd42:5::1 in front of one NIC (198.51.100.2/24, fd42:5::2/64, a fixed MAC):
 * ARP and IPv6 neighbour discovery answers, ICMP and ICMPv6 echo, the TCP
 * passive open (SYN-ACK options, accept readiness), data both ways with its
 * sequence and acknowledgement arithmetic, the peer's FIN and our own, RST
 * for closed ports, checksum and runt drops with their counters, UDP both
 * ways over IPv4 and IPv6, and the active open (ARP first, SYN, completion
 * or refusal through poll, SO_ERROR and a blocking connect). Every frame the
 * stack sends is taken apart by frames.c, which checks all its checksums;
 * the ARP requests and neighbour solicitations the stack makes for the peer
 * are answered on the way, so tests see only the frames they wait for.
 */
#define _GNU_SOURCE

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/ip_icmp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "frames.h"
#include "netstack.h"

#define WAIT_MS 2000		/* the bound on every wait for the stack */
#define QUIET_MS 300		/* silence this long counts as "no reply" */
#define FRAME_BUF 2048		/* a frame at the NIC's MTU of 1500, with room */

#define NIC_IP4 "198.51.100.2"
#define PEER_IP4 "198.51.100.1"
#define OTHER_IP4 "198.51.100.77"
#define NIC_IP6 "fd42:5::2"
#define PEER_IP6 "fd42:5::1"
#define OTHER_IP6 "fd42:5::77"

#define LISTEN_PORT 80
#define CLOSED_PORT 81
#define ECHO_PORT 7
#define REMOTE_PORT 9000	/* what the active open connects to */
#define PEER_PORT 40000		/* the peer's side of passive opens */
#define PEER_ISN 1000000u
#define PEER_TSVAL 12345u

/* What lwIP must put in its SYNs: TCP_RCV_SCALE in lwipopts.h, and the
 * MTU of 1500 less the IPv4 or IPv6 and TCP headers. */
#define STACK_WSCALE 6
#define MSS_V4 (1500 - 20 - 20)
#define MSS_V6 (1500 - 40 - 20)

static const uint8_t nic_mac[FRAME_MAC_LEN] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x02 };
static const uint8_t peer_mac[FRAME_MAC_LEN] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01 };
static const uint8_t bcast_mac[FRAME_MAC_LEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* A Linux-like SYN's options: MSS 1460, SACK permitted, timestamps, NOP,
 * window scale 7. */
static const uint8_t syn_opts[] = {
	2, 4, 0x05, 0xb4,
	4, 2,
	8, 10, 0, 0, PEER_TSVAL >> 8, PEER_TSVAL & 0xff, 0, 0, 0, 0,
	1,
	3, 3, 7,
};

static const uint8_t mss_opt[] = { 2, 4, 0x05, 0xb4 };

static struct ns_stack *stack;
static struct ns_endpoint *chan;	/* the stack's once the NIC is added */
static struct frame_path to4, to6;	/* from the peer to the stack */

/* One frame the stack sent, taken apart. */
struct frame {
	uint8_t buf[FRAME_BUF];
	size_t len;
	struct frame_parsed p;
};

typedef bool (*frame_match_fn)(const struct frame_parsed *p, const void *arg);

/* ------------------------------------------------------------------ */
/* Time, addresses, stack set-up                                       */
/* ------------------------------------------------------------------ */

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

static struct in_addr ip4(const char *text)
{
	struct in_addr a;

	cr_assert_eq(inet_pton(AF_INET, text, &a), 1);
	return a;
}

static struct in6_addr ip6(const char *text)
{
	struct in6_addr a;

	cr_assert_eq(inet_pton(AF_INET6, text, &a), 1);
	return a;
}

static struct sockaddr_in sin4(const char *text, uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };

	sa.sin_addr = ip4(text);
	return sa;
}

static void setup(void)
{
	struct ns_stack_config cfg = { .log_level = NS_LOG_WARNING };
	struct ns_nic_config nc = { .name = "eth0" };
	struct ns_prefix pfx;
	int nic;

	cr_assert_eq(ns_stack_new(&cfg, &stack), 0);
	cr_assert_eq(ns_endpoint_channel_new(&chan), 0);
	memcpy(nc.mac, nic_mac, sizeof(nc.mac));
	nic = ns_nic_add(stack, &nc, chan);
	cr_assert_geq(nic, 1, "ns_nic_add: %d", nic);
	cr_assert_eq(ns_prefix_parse(NIC_IP4 "/24", &pfx), 0);
	cr_assert_eq(ns_addr_add(stack, nic, &pfx), 0);
	cr_assert_eq(ns_prefix_parse(NIC_IP6 "/64", &pfx), 0);
	cr_assert_eq(ns_addr_add(stack, nic, &pfx), 0);
	cr_assert_eq(frame_path_init(&to4, peer_mac, PEER_IP4, nic_mac, NIC_IP4), 0);
	cr_assert_eq(frame_path_init(&to6, peer_mac, PEER_IP6, nic_mac, NIC_IP6), 0);
	cr_assert_eq(ns_stack_start(stack), 0);
}

static void teardown(void)
{
	ns_stack_free(stack);
	stack = NULL;
}

/* Criterion forks per test: one stack per process, as lwIP requires. The
 * timeout is a safety net only; every wait below has its own bound. */
TestSuite(proto, .init = setup, .fini = teardown, .timeout = 30);

/* ------------------------------------------------------------------ */
/* Frames in and out                                                   */
/* ------------------------------------------------------------------ */

static void inject(const uint8_t *f, ssize_t len)
{
	int rc;

	cr_assert_gt(len, 0, "building the frame failed: %zd", len);
	rc = ns_channel_inject(chan, f, (size_t)len);
	cr_assert_eq(rc, 0, "ns_channel_inject: %d", rc);
}

/*
 * Take the oldest frame the stack sent. Every frame must parse and carry
 * correct checksums, whatever the test is waiting for.
 * Return: false when none is queued.
 */
static bool next_frame(struct frame *f)
{
	ssize_t n = ns_channel_read(chan, f->buf, sizeof(f->buf));
	char what[160];

	if (n == -EAGAIN)
		return false;
	cr_assert_geq(n, 0, "ns_channel_read: %zd", n);
	cr_assert_leq((size_t)n, sizeof(f->buf), "the stack sent a %zd-byte frame at MTU 1500", n);
	f->len = (size_t)n;
	cr_assert_eq(frame_parse(f->buf, f->len, &f->p), 0, "the stack sent a malformed %zu-byte frame",
		     f->len);
	frame_describe(&f->p, what, sizeof(what));
	cr_assert(f->p.csum_ok, "the stack sent a frame with a bad checksum: %s", what);
	cr_assert(!memcmp(f->p.src_mac, nic_mac, FRAME_MAC_LEN), "frame not from the NIC's MAC: %s", what);
	return true;
}

/*
 * Answer the stack's ARP request or neighbour solicitation for the peer, as
 * the peer's kernel would.
 * Return: whether @p was one.
 */
static bool answer_neighbour_query(const struct frame_parsed *p)
{
	uint8_t out[FRAME_BUF];
	ssize_t n = frame_neighbour_reply(p, &to4, &to6, out, sizeof(out));

	if (n == 0)
		return false;
	inject(out, n);
	return true;
}

/*
 * Wait up to WAIT_MS for a frame that @match accepts and put it in @f.
 * Frames before it are skipped (MLD reports, ...); ARP requests and
 * solicitations for the peer among them are answered. Fails the test on
 * timeout, listing what was skipped.
 */
static void expect_frame(struct frame *f, frame_match_fn match, const void *arg, const char *what)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	char seen[1024] = "";
	size_t used = 0;

	for (;;) {
		while (next_frame(f)) {
			char d[160];

			if (match(&f->p, arg))
				return;
			if (answer_neighbour_query(&f->p))
				continue;
			frame_describe(&f->p, d, sizeof(d));
			if (used < sizeof(seen))
				used += (size_t)snprintf(seen + used, sizeof(seen) - used, "[%s] ", d);
		}
		if (now_ms() >= deadline)
			break;
		sleep_ms(1);
	}
	cr_assert_fail("no %s within %d ms; other frames: %s", what, WAIT_MS, used ? seen : "none");
}

/* Watch the stack for QUIET_MS and fail if it sends a frame @match accepts. */
static void expect_silence(frame_match_fn match, const void *arg, const char *what)
{
	uint64_t deadline = now_ms() + QUIET_MS;
	struct frame f;

	while (now_ms() < deadline) {
		while (next_frame(&f)) {
			char d[160];

			frame_describe(&f.p, d, sizeof(d));
			cr_assert(!match(&f.p, arg), "unexpected %s: %s", what, d);
			answer_neighbour_query(&f.p);
		}
		sleep_ms(1);
	}
}

/* Matchers. */

/* An ARP frame with this opcode; for requests, about this target (the
 * stack's gratuitous ARP for its own address is one too). */
struct arp_want {
	uint16_t op;
	const char *target;		/* NULL: any */
};

static bool match_arp(const struct frame_parsed *p, const void *arg)
{
	const struct arp_want *w = arg;

	return p->ethertype == FRAME_ETH_ARP && p->arp_op == w->op &&
	       (!w->target || p->arp_tpa.s_addr == ip4(w->target).s_addr);
}

struct icmp_want {
	int ip_version;
	uint8_t type;
};

static bool match_icmp(const struct frame_parsed *p, const void *arg)
{
	const struct icmp_want *w = arg;

	return p->ip_version == w->ip_version &&
	       p->proto == (w->ip_version == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6) && p->icmp_type == w->type;
}

/* A TCP segment from the stack; ports 0 match any. */
struct seg_want {
	int ip_version;
	uint16_t sport, dport;		/* the stack's port, the peer's */
	uint8_t set, clear;		/* flags that must be set, and clear */
	bool with_data;
};

static bool match_tcp(const struct frame_parsed *p, const void *arg)
{
	const struct seg_want *w = arg;

	return p->ip_version == w->ip_version && p->proto == IPPROTO_TCP &&
	       (!w->sport || p->sport == w->sport) && (!w->dport || p->dport == w->dport) &&
	       (p->tcp_flags & w->set) == w->set && !(p->tcp_flags & w->clear) &&
	       (!w->with_data || p->payload_len > 0);
}

struct udp_want {
	int ip_version;
	uint16_t sport, dport;
};

static bool match_udp(const struct frame_parsed *p, const void *arg)
{
	const struct udp_want *w = arg;

	return p->ip_version == w->ip_version && p->proto == IPPROTO_UDP && p->sport == w->sport &&
	       p->dport == w->dport;
}

static bool match_any_tcp(const struct frame_parsed *p, const void *arg)
{
	(void)arg;
	return p->proto == IPPROTO_TCP;
}

/* The addressing of an IP frame the stack sent to the peer. */
static void assert_to_peer(const struct frame_parsed *p, const struct frame_path *path)
{
	cr_assert(!memcmp(p->dst_mac, peer_mac, FRAME_MAC_LEN), "not sent to the peer's MAC");
	cr_assert(frame_addr_eq(&p->src, &path->dst), "wrong source address");
	cr_assert(frame_addr_eq(&p->dst, &path->src), "wrong destination address");
}

/* ------------------------------------------------------------------ */
/* Counters                                                            */
/* ------------------------------------------------------------------ */

static struct ns_stats stats_now(void)
{
	struct ns_stats st;

	cr_assert_eq(ns_stack_stats(stack, &st), 0);
	return st;
}

#define STAT(st, off) (*(const uint64_t *)((const char *)&(st) + (off)))

/* Wait up to WAIT_MS for the counter at @off to reach @want. Return: its value. */
static uint64_t wait_stat(size_t off, uint64_t want)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	struct ns_stats st;

	for (;;) {
		st = stats_now();
		if (STAT(st, off) >= want || now_ms() >= deadline)
			return STAT(st, off);
		sleep_ms(1);
	}
}

/* ------------------------------------------------------------------ */
/* Sockets                                                             */
/* ------------------------------------------------------------------ */

static void set_timeouts(int sock)
{
	struct timeval tv = { .tv_sec = WAIT_MS / 1000, .tv_usec = (WAIT_MS % 1000) * 1000 };

	cr_assert_eq(ns_setsockopt(stack, sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	cr_assert_eq(ns_setsockopt(stack, sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
}

/* A socket of @type bound to the wildcard address of @family and @port. */
static int bound_socket(int family, int type, uint16_t port)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	int sock = ns_socket(stack, family, type, 0), rc;

	cr_assert_geq(sock, 0, "ns_socket: %d", sock);
	a6.sin6_addr = in6addr_any;
	if (family == AF_INET)
		rc = ns_bind(stack, sock, (struct sockaddr *)&a4, sizeof(a4));
	else
		rc = ns_bind(stack, sock, (struct sockaddr *)&a6, sizeof(a6));
	cr_assert_eq(rc, 0, "ns_bind: %d", rc);
	return sock;
}

static int so_error(int sock)
{
	socklen_t len = sizeof(int);
	int v = -1;

	cr_assert_eq(ns_getsockopt(stack, sock, SOL_SOCKET, SO_ERROR, &v, &len), 0);
	cr_assert_eq(len, sizeof(int));
	return v;
}

/* ------------------------------------------------------------------ */
/* TCP: the passive open shared by the connection tests                */
/* ------------------------------------------------------------------ */

struct conn {
	struct tcp_peer peer;
	int ip_version;
	int listener;
	int sock;
	uint32_t stack_isn;
};

/*
 * A listener on LISTEN_PORT, the peer's SYN with Linux's options, the
 * SYN-ACK checked, the peer's ACK, and the accepted socket (with bounded
 * blocking timeouts). Asserts every step, so every connection test also
 * pins the handshake.
 */
static void establish(struct conn *c, int family)
{
	const struct frame_path *path = family == AF_INET ? &to4 : &to6;
	struct seg_want synack = { .sport = LISTEN_PORT, .dport = PEER_PORT,
				   .set = FRAME_TCP_SYN | FRAME_TCP_ACK };
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct pollfd pfd;
	uint8_t buf[FRAME_BUF];
	struct frame f;
	int rc;

	memset(c, 0, sizeof(*c));
	c->ip_version = family == AF_INET ? 4 : 6;
	synack.ip_version = c->ip_version;
	c->listener = bound_socket(family, SOCK_STREAM | SOCK_NONBLOCK, LISTEN_PORT);
	cr_assert_eq(ns_listen(stack, c->listener, 8), 0);
	rc = ns_accept(stack, c->listener, NULL, NULL, 0);
	cr_assert_eq(rc, -EAGAIN, "accept with nothing queued: %d", rc);

	tcp_peer_init(&c->peer, path, PEER_PORT, LISTEN_PORT, PEER_ISN);
	inject(buf, tcp_peer_syn(&c->peer, buf, sizeof(buf), syn_opts, sizeof(syn_opts)));
	expect_frame(&f, match_tcp, &synack, "SYN-ACK");
	assert_to_peer(&f.p, path);
	cr_assert_eq(f.p.tcp_flags, FRAME_TCP_SYN | FRAME_TCP_ACK, "flags 0x%02x", f.p.tcp_flags);
	cr_assert_eq(f.p.ack, PEER_ISN + 1, "SYN-ACK ack %u", f.p.ack);
	cr_assert_eq(f.p.mss, family == AF_INET ? MSS_V4 : MSS_V6, "MSS option %u", f.p.mss);
	cr_assert_eq(f.p.wscale, STACK_WSCALE, "window scale option %d", f.p.wscale);
	cr_assert(f.p.has_ts, "the peer offered timestamps; the SYN-ACK has none");
	cr_assert_eq(f.p.ts_ecr, PEER_TSVAL, "timestamp echo %u", f.p.ts_ecr);
	cr_assert_eq(f.p.payload_len, 0);
	c->stack_isn = f.p.seq;
	cr_assert_eq(tcp_peer_absorb(&c->peer, &f.p), 1);

	/* Half-open connections are not accepted. */
	rc = ns_accept(stack, c->listener, NULL, NULL, 0);
	cr_assert_eq(rc, -EAGAIN, "accept before the handshake's ACK: %d", rc);

	inject(buf, tcp_peer_ack(&c->peer, buf, sizeof(buf)));
	pfd = (struct pollfd){ .fd = c->listener, .events = POLLIN };
	rc = ns_poll(stack, &pfd, 1, WAIT_MS);
	cr_assert_eq(rc, 1, "listener not readable after the handshake: %d", rc);
	cr_assert_eq(pfd.revents, POLLIN, "revents 0x%x", pfd.revents);
	c->sock = ns_accept(stack, c->listener, (struct sockaddr *)&ss, &sslen, 0);
	cr_assert_geq(c->sock, 0, "ns_accept: %d", c->sock);
	if (family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;

		cr_assert_eq(sslen, sizeof(*a));
		cr_assert_eq(a->sin_family, AF_INET);
		cr_assert_eq(a->sin_addr.s_addr, to4.src.v4.s_addr);
		cr_assert_eq(ntohs(a->sin_port), PEER_PORT);
	} else {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;

		cr_assert_eq(sslen, sizeof(*a));
		cr_assert_eq(a->sin6_family, AF_INET6);
		cr_assert(!memcmp(&a->sin6_addr, &to6.src.v6, 16));
		cr_assert_eq(ntohs(a->sin6_port), PEER_PORT);
	}
	set_timeouts(c->sock);
}

/* The peer sends @data; the stack must hand it to ns_recv and ACK it. */
static void peer_sends(struct conn *c, const char *data)
{
	struct seg_want ack = { .ip_version = c->ip_version, .sport = LISTEN_PORT, .dport = PEER_PORT,
				.set = FRAME_TCP_ACK,
				.clear = FRAME_TCP_SYN | FRAME_TCP_FIN | FRAME_TCP_RST };
	size_t len = strlen(data);
	uint8_t buf[FRAME_BUF];
	char got[64];
	struct frame f;
	ssize_t n;

	inject(buf, tcp_peer_data(&c->peer, buf, sizeof(buf), data, len));
	memset(got, 0, sizeof(got));
	n = ns_recv(stack, c->sock, got, sizeof(got), 0);
	cr_assert_eq(n, (ssize_t)len, "ns_recv: %zd", n);
	cr_assert_str_eq(got, data);
	expect_frame(&f, match_tcp, &ack, "ACK of the peer's data");
	cr_assert_eq(f.p.ack, c->peer.snd_nxt, "ack %u, the peer sent up to %u", f.p.ack, c->peer.snd_nxt);
	cr_assert_eq(f.p.seq, c->peer.rcv_nxt, "seq %u, expected %u", f.p.seq, c->peer.rcv_nxt);
	cr_assert_eq(f.p.payload_len, 0);
}

/* ns_send(@data) must go out as one segment at the stack's next sequence
 * number; the peer ACKs it. */
static void stack_sends(struct conn *c, const char *data)
{
	struct seg_want seg = { .ip_version = c->ip_version, .sport = LISTEN_PORT, .dport = PEER_PORT,
				.set = FRAME_TCP_ACK, .with_data = true };
	size_t len = strlen(data);
	uint8_t buf[FRAME_BUF];
	struct frame f;
	ssize_t n;

	n = ns_send(stack, c->sock, data, len, 0);
	cr_assert_eq(n, (ssize_t)len, "ns_send: %zd", n);
	expect_frame(&f, match_tcp, &seg, "data segment");
	cr_assert_eq(f.p.seq, c->peer.rcv_nxt, "seq %u, expected %u", f.p.seq, c->peer.rcv_nxt);
	cr_assert_eq(f.p.ack, c->peer.snd_nxt, "ack %u, expected %u", f.p.ack, c->peer.snd_nxt);
	cr_assert_eq(f.p.tcp_flags, FRAME_TCP_ACK | FRAME_TCP_PSH, "flags 0x%02x", f.p.tcp_flags);
	cr_assert_eq(f.p.payload_len, len);
	cr_assert(!memcmp(f.p.payload, data, len), "payload differs");
	cr_assert_eq(tcp_peer_absorb(&c->peer, &f.p), (int)len);
	inject(buf, tcp_peer_ack(&c->peer, buf, sizeof(buf)));
}

/* ------------------------------------------------------------------ */
/* ARP and neighbour discovery                                         */
/* ------------------------------------------------------------------ */

Test(proto, arp_request_for_nic_address_gets_reply_with_nic_mac)
{
	static const struct arp_want reply = { FRAME_ARP_REPLY, NULL };
	uint8_t buf[FRAME_BUF];
	struct frame f;

	inject(buf, frame_arp(buf, sizeof(buf), &to4, FRAME_ARP_REQUEST));
	expect_frame(&f, match_arp, &reply, "ARP reply");
	cr_assert(!memcmp(f.p.dst_mac, peer_mac, FRAME_MAC_LEN), "reply not sent to the asker");
	cr_assert(!memcmp(f.p.arp_sha, nic_mac, FRAME_MAC_LEN), "sender MAC is not the NIC's");
	cr_assert_eq(f.p.arp_spa.s_addr, ip4(NIC_IP4).s_addr, "sender address");
	cr_assert(!memcmp(f.p.arp_tha, peer_mac, FRAME_MAC_LEN), "target MAC is not the asker's");
	cr_assert_eq(f.p.arp_tpa.s_addr, ip4(PEER_IP4).s_addr, "target address");
}

Test(proto, arp_request_for_other_address_gets_no_reply)
{
	static const struct arp_want reply = { FRAME_ARP_REPLY, NULL };
	struct frame_path path = to4;
	uint8_t buf[FRAME_BUF];

	path.dst.v4 = ip4(OTHER_IP4);
	inject(buf, frame_arp(buf, sizeof(buf), &path, FRAME_ARP_REQUEST));
	expect_silence(match_arp, &reply, "ARP reply for an address the NIC does not hold");
}

Test(proto, neighbour_solicitation_gets_solicited_advertisement)
{
	static const struct icmp_want na = { 6, ND_NEIGHBOR_ADVERT };
	uint8_t buf[FRAME_BUF];
	struct frame f;

	inject(buf, frame_ndp_ns(buf, sizeof(buf), &to6));
	expect_frame(&f, match_icmp, &na, "neighbour advertisement");
	assert_to_peer(&f.p, &to6);
	cr_assert_eq(f.p.ttl, 255, "hop limit %u", f.p.ttl);
	cr_assert(!memcmp(&f.p.nd_target, &to6.dst.v6, 16), "target is not " NIC_IP6);
	cr_assert(f.p.nd_flags & FRAME_NA_SOLICITED, "solicited flag clear (flags 0x%02x)", f.p.nd_flags);
	cr_assert(!(f.p.nd_flags & FRAME_NA_ROUTER), "router flag set (flags 0x%02x)", f.p.nd_flags);
	cr_assert(f.p.nd_has_lla, "no target link-layer address option");
	cr_assert(!memcmp(f.p.nd_lla, nic_mac, FRAME_MAC_LEN), "target link-layer address is not the NIC's");
}

Test(proto, neighbour_solicitation_for_other_address_gets_no_advertisement)
{
	static const struct icmp_want na = { 6, ND_NEIGHBOR_ADVERT };
	struct frame_path path = to6;
	uint8_t buf[FRAME_BUF];

	path.dst.v6 = ip6(OTHER_IP6);
	inject(buf, frame_ndp_ns(buf, sizeof(buf), &path));
	expect_silence(match_icmp, &na, "advertisement for an address the NIC does not hold");
}

/* ------------------------------------------------------------------ */
/* ICMP echo                                                           */
/* ------------------------------------------------------------------ */

static void echo_round_trip(const struct frame_path *path)
{
	bool v4 = path->src.family == AF_INET;
	struct icmp_want reply = { v4 ? 4 : 6, v4 ? ICMP_ECHOREPLY : ICMP6_ECHO_REPLY };
	uint8_t data[56], buf[FRAME_BUF];
	struct frame f;
	size_t i;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(0xa0 + i);
	inject(buf, frame_icmp_echo(buf, sizeof(buf), path, false, 0x1234, 7, data, sizeof(data)));
	expect_frame(&f, match_icmp, &reply, "echo reply");
	assert_to_peer(&f.p, path);
	cr_assert_eq(f.p.icmp_code, 0);
	cr_assert_eq(f.p.echo_id, 0x1234, "id 0x%04x", f.p.echo_id);
	cr_assert_eq(f.p.echo_seq, 7, "seq %u", f.p.echo_seq);
	cr_assert_eq(f.p.payload_len, sizeof(data), "payload %zu bytes", f.p.payload_len);
	cr_assert(!memcmp(f.p.payload, data, sizeof(data)), "payload differs");
}

Test(proto, icmp_echo_request_gets_reply)
{
	echo_round_trip(&to4);
}

Test(proto, icmpv6_echo_request_gets_reply)
{
	echo_round_trip(&to6);
}

/* ------------------------------------------------------------------ */
/* TCP passive open and data                                           */
/* ------------------------------------------------------------------ */

Test(proto, tcp_syn_to_listener_gets_syn_ack_and_accept_waits_for_handshake)
{
	struct conn c;
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);

	establish(&c, AF_INET);
	cr_assert_eq(ns_getsockname(stack, c.sock, (struct sockaddr *)&a, &alen), 0);
	cr_assert_eq(a.sin_addr.s_addr, ip4(NIC_IP4).s_addr);
	cr_assert_eq(ntohs(a.sin_port), LISTEN_PORT);
}

Test(proto, tcp_data_from_peer_is_received_and_acked)
{
	struct conn c;

	establish(&c, AF_INET);
	peer_sends(&c, "hello");
	cr_assert_eq(c.peer.snd_nxt, PEER_ISN + 1 + 5);
}

Test(proto, tcp_send_goes_out_at_next_sequence_number)
{
	struct conn c;

	establish(&c, AF_INET);
	peer_sends(&c, "hello");
	stack_sends(&c, "world");
	cr_assert_eq(c.peer.rcv_nxt, c.stack_isn + 1 + 5);
}

Test(proto, tcp_peer_fin_gives_eof_and_is_acked)
{
	struct seg_want ack = { .ip_version = 4, .sport = LISTEN_PORT, .dport = PEER_PORT,
				.set = FRAME_TCP_ACK,
				.clear = FRAME_TCP_SYN | FRAME_TCP_FIN | FRAME_TCP_RST };
	uint8_t buf[FRAME_BUF];
	struct conn c;
	struct frame f;
	char got[16];
	ssize_t n;

	establish(&c, AF_INET);
	peer_sends(&c, "hello");
	stack_sends(&c, "world");
	inject(buf, tcp_peer_fin(&c.peer, buf, sizeof(buf)));
	n = ns_recv(stack, c.sock, got, sizeof(got), 0);
	cr_assert_eq(n, 0, "ns_recv after the peer's FIN: %zd", n);
	expect_frame(&f, match_tcp, &ack, "ACK of the peer's FIN");
	cr_assert_eq(f.p.ack, PEER_ISN + 1 + 5 + 1, "ack %u", f.p.ack);
	cr_assert_eq(f.p.seq, c.stack_isn + 1 + 5, "seq %u", f.p.seq);
}

Test(proto, tcp_close_after_peer_fin_sends_fin)
{
	struct seg_want fin = { .ip_version = 4, .sport = LISTEN_PORT, .dport = PEER_PORT,
				.set = FRAME_TCP_FIN | FRAME_TCP_ACK };
	uint8_t buf[FRAME_BUF];
	struct conn c;
	struct frame f;
	char got[16];
	ssize_t n;

	establish(&c, AF_INET);
	peer_sends(&c, "hello");
	stack_sends(&c, "world");
	inject(buf, tcp_peer_fin(&c.peer, buf, sizeof(buf)));
	n = ns_recv(stack, c.sock, got, sizeof(got), 0);
	cr_assert_eq(n, 0, "ns_recv after the peer's FIN: %zd", n);
	cr_assert_eq(ns_close(stack, c.sock), 0);
	expect_frame(&f, match_tcp, &fin, "FIN");
	cr_assert_eq(f.p.tcp_flags, FRAME_TCP_FIN | FRAME_TCP_ACK, "flags 0x%02x", f.p.tcp_flags);
	cr_assert_eq(f.p.seq, c.stack_isn + 1 + 5, "FIN seq %u", f.p.seq);
	cr_assert_eq(f.p.ack, PEER_ISN + 1 + 5 + 1, "FIN ack %u", f.p.ack);
	cr_assert_eq(f.p.payload_len, 0);
	cr_assert_eq(tcp_peer_absorb(&c.peer, &f.p), 1);
	inject(buf, tcp_peer_ack(&c.peer, buf, sizeof(buf)));
}

Test(proto, tcp_over_ipv6_handshake_and_data_both_ways)
{
	struct conn c;

	establish(&c, AF_INET6);
	peer_sends(&c, "hello6");
	stack_sends(&c, "world6");
	cr_assert_eq(c.peer.rcv_nxt, c.stack_isn + 1 + 6);
}

/* ------------------------------------------------------------------ */
/* TCP: closed ports, bad checksums, runts                             */
/* ------------------------------------------------------------------ */

static void syn_to_closed_port_gets_rst(const struct frame_path *path)
{
	struct seg_want rst = { .ip_version = path->src.family == AF_INET ? 4 : 6,
				.sport = CLOSED_PORT, .dport = PEER_PORT, .set = FRAME_TCP_RST };
	uint8_t buf[FRAME_BUF];
	struct tcp_peer peer;
	struct frame f;

	tcp_peer_init(&peer, path, PEER_PORT, CLOSED_PORT, PEER_ISN);
	inject(buf, tcp_peer_syn(&peer, buf, sizeof(buf), mss_opt, sizeof(mss_opt)));
	expect_frame(&f, match_tcp, &rst, "RST");
	assert_to_peer(&f.p, path);
	cr_assert_eq(f.p.tcp_flags, FRAME_TCP_RST | FRAME_TCP_ACK, "flags 0x%02x", f.p.tcp_flags);
	cr_assert_eq(f.p.ack, PEER_ISN + 1, "RST ack %u", f.p.ack);
	cr_assert_eq(f.p.seq, 0, "RST seq %u (the SYN carried no ACK)", f.p.seq);
	cr_assert_eq(f.p.payload_len, 0);
}

Test(proto, tcp_syn_to_closed_port_gets_rst_ack)
{
	syn_to_closed_port_gets_rst(&to4);
}

Test(proto, tcp_syn_to_closed_port_gets_rst_ack_over_ipv6)
{
	syn_to_closed_port_gets_rst(&to6);
}

Test(proto, tcp_segment_with_bad_checksum_is_dropped_and_counted)
{
	struct seg_want rst = { .ip_version = 4, .sport = CLOSED_PORT, .dport = PEER_PORT,
				.set = FRAME_TCP_RST };
	struct frame_tcp syn = { .sport = PEER_PORT, .dport = CLOSED_PORT, .seq = PEER_ISN,
				 .flags = FRAME_TCP_SYN, .window = 65535 };
	const size_t csum_at = FRAME_ETH_HLEN + FRAME_IPV4_HLEN + 16;
	uint8_t buf[FRAME_BUF];
	struct ns_stats before = stats_now();
	struct frame f;
	uint64_t got;
	ssize_t n;

	n = frame_tcp(buf, sizeof(buf), &to4, &syn);
	cr_assert_gt(n, 0);
	buf[csum_at] ^= 0x5a;
	inject(buf, n);
	got = wait_stat(offsetof(struct ns_stats, tcp_chkerr), before.tcp_chkerr + 1);
	cr_assert_eq(got, before.tcp_chkerr + 1, "tcp_chkerr %llu, was %llu", (unsigned long long)got,
		     (unsigned long long)before.tcp_chkerr);
	expect_silence(match_any_tcp, NULL, "TCP reply to a segment with a bad checksum");

	/* The same SYN intact is answered: the checksum alone made the
	 * difference. */
	inject(buf, frame_tcp(buf, sizeof(buf), &to4, &syn));
	expect_frame(&f, match_tcp, &rst, "RST to the intact SYN");
	cr_assert_eq(f.p.ack, PEER_ISN + 1);
	cr_assert_eq(stats_now().tcp_chkerr, before.tcp_chkerr + 1);
}

Test(proto, runt_frame_is_counted_as_malformed)
{
	uint8_t runt[FRAME_ETH_HLEN - 4];
	struct ns_stats before = stats_now(), after;
	uint64_t got;

	memcpy(runt, nic_mac, FRAME_MAC_LEN);
	memcpy(runt + FRAME_MAC_LEN, peer_mac, sizeof(runt) - FRAME_MAC_LEN);
	inject(runt, sizeof(runt));
	got = wait_stat(offsetof(struct ns_stats, rx_malformed), before.rx_malformed + 1);
	cr_assert_eq(got, before.rx_malformed + 1, "rx_malformed %llu, was %llu", (unsigned long long)got,
		     (unsigned long long)before.rx_malformed);
	after = stats_now();
	cr_assert_eq(after.rx_frames, before.rx_frames + 1);
	cr_assert_eq(after.rx_bytes, before.rx_bytes + sizeof(runt));
}

/* ------------------------------------------------------------------ */
/* UDP                                                                 */
/* ------------------------------------------------------------------ */

static void udp_round_trip(const struct frame_path *path, uint16_t peer_port)
{
	bool v4 = path->src.family == AF_INET;
	struct udp_want back = { v4 ? 4 : 6, ECHO_PORT, peer_port };
	static const char ping[] = "ping over udp", pong[] = "pong!";
	struct sockaddr_storage from;
	socklen_t fromlen = sizeof(from);
	uint8_t buf[FRAME_BUF];
	char got[64];
	struct frame f;
	ssize_t n;
	int sock;

	sock = bound_socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM, ECHO_PORT);
	set_timeouts(sock);
	inject(buf, frame_udp(buf, sizeof(buf), path, peer_port, ECHO_PORT, ping, sizeof(ping)));
	n = ns_recvfrom(stack, sock, got, sizeof(got), 0, (struct sockaddr *)&from, &fromlen);
	cr_assert_eq(n, (ssize_t)sizeof(ping), "ns_recvfrom: %zd", n);
	cr_assert(!memcmp(got, ping, sizeof(ping)), "datagram differs");
	if (v4) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&from;

		cr_assert_eq(fromlen, sizeof(*a));
		cr_assert_eq(a->sin_family, AF_INET);
		cr_assert_eq(a->sin_addr.s_addr, path->src.v4.s_addr, "source address");
		cr_assert_eq(ntohs(a->sin_port), peer_port);
	} else {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&from;

		cr_assert_eq(fromlen, sizeof(*a));
		cr_assert_eq(a->sin6_family, AF_INET6);
		cr_assert(!memcmp(&a->sin6_addr, &path->src.v6, 16), "source address");
		cr_assert_eq(ntohs(a->sin6_port), peer_port);
	}

	n = ns_sendto(stack, sock, pong, sizeof(pong), 0, (struct sockaddr *)&from, fromlen);
	cr_assert_eq(n, (ssize_t)sizeof(pong), "ns_sendto: %zd", n);
	expect_frame(&f, match_udp, &back, "UDP reply");
	assert_to_peer(&f.p, path);
	cr_assert_eq(f.p.payload_len, sizeof(pong));
	cr_assert(!memcmp(f.p.payload, pong, sizeof(pong)), "payload differs");
	/* csum_ok also accepts an IPv4 checksum left out; insist on one. */
	cr_assert(f.p.payload[-2] | f.p.payload[-1], "UDP checksum left out");
	cr_assert_eq(ns_close(stack, sock), 0);
}

Test(proto, udp_datagram_round_trip)
{
	udp_round_trip(&to4, 40002);
}

Test(proto, udp_datagram_round_trip_over_ipv6)
{
	udp_round_trip(&to6, 40003);
}

/* ------------------------------------------------------------------ */
/* TCP active open                                                     */
/* ------------------------------------------------------------------ */

/* A TCP socket connecting to the peer's REMOTE_PORT. Return: the socket,
 * with ns_connect's result in *@rc unless @rc is NULL (then it is not
 * called). */
static int active_socket(bool nonblock, int *rc)
{
	struct sockaddr_in to = sin4(PEER_IP4, REMOTE_PORT);
	int sock = ns_socket(stack, AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);

	cr_assert_geq(sock, 0, "ns_socket: %d", sock);
	if (rc)
		*rc = ns_connect(stack, sock, (struct sockaddr *)&to, sizeof(to));
	return sock;
}

/* Wait for the stack's SYN (the ARP for the peer answered on the way) and
 * let @peer absorb it. */
static void expect_syn(struct tcp_peer *peer, struct frame *f)
{
	struct seg_want syn = { .ip_version = 4, .dport = REMOTE_PORT, .set = FRAME_TCP_SYN,
				.clear = FRAME_TCP_ACK };

	expect_frame(f, match_tcp, &syn, "SYN");
	assert_to_peer(&f->p, &to4);
	cr_assert_eq(f->p.tcp_flags, FRAME_TCP_SYN, "flags 0x%02x", f->p.tcp_flags);
	cr_assert_eq(f->p.mss, MSS_V4, "MSS option %u", f->p.mss);
	cr_assert_neq(f->p.sport, 0);
	tcp_peer_init(peer, &to4, REMOTE_PORT, 0, PEER_ISN);
	cr_assert_eq(tcp_peer_absorb(peer, &f->p), 1);
}

Test(proto, tcp_connect_resolves_peer_then_sends_syn_and_completes)
{
	static const struct arp_want request = { FRAME_ARP_REQUEST, PEER_IP4 };
	struct seg_want ack = { .ip_version = 4, .dport = REMOTE_PORT, .set = FRAME_TCP_ACK,
				.clear = FRAME_TCP_SYN | FRAME_TCP_FIN | FRAME_TCP_RST };
	struct sockaddr_in peer_sa;
	socklen_t len = sizeof(peer_sa);
	struct pollfd pfd;
	uint8_t buf[FRAME_BUF];
	struct tcp_peer peer;
	struct frame f;
	uint32_t isn;
	int sock, rc;

	sock = active_socket(true, &rc);
	cr_assert_eq(rc, -EINPROGRESS, "nonblocking connect: %d", rc);

	expect_frame(&f, match_arp, &request, "ARP request for the peer");
	cr_assert(!memcmp(f.p.dst_mac, bcast_mac, FRAME_MAC_LEN), "ARP request not broadcast");
	cr_assert(!memcmp(f.p.arp_sha, nic_mac, FRAME_MAC_LEN));
	cr_assert_eq(f.p.arp_spa.s_addr, ip4(NIC_IP4).s_addr);
	cr_assert_eq(f.p.arp_tpa.s_addr, ip4(PEER_IP4).s_addr);
	cr_assert(answer_neighbour_query(&f.p));

	expect_syn(&peer, &f);
	isn = f.p.seq;
	pfd = (struct pollfd){ .fd = sock, .events = POLLOUT };
	cr_assert_eq(ns_poll(stack, &pfd, 1, 0), 0, "connecting socket ready: revents 0x%x", pfd.revents);

	inject(buf, tcp_peer_syn(&peer, buf, sizeof(buf), mss_opt, sizeof(mss_opt)));
	expect_frame(&f, match_tcp, &ack, "ACK of the SYN-ACK");
	cr_assert_eq(f.p.sport, peer.dport);
	cr_assert_eq(f.p.seq, isn + 1, "seq %u", f.p.seq);
	cr_assert_eq(f.p.ack, PEER_ISN + 1, "ack %u", f.p.ack);
	cr_assert_eq(f.p.payload_len, 0);

	pfd = (struct pollfd){ .fd = sock, .events = POLLOUT };
	rc = ns_poll(stack, &pfd, 1, WAIT_MS);
	cr_assert_eq(rc, 1, "ns_poll: %d", rc);
	cr_assert_eq(pfd.revents, POLLOUT, "revents 0x%x", pfd.revents);
	cr_assert_eq(so_error(sock), 0);
	cr_assert_eq(ns_getpeername(stack, sock, (struct sockaddr *)&peer_sa, &len), 0);
	cr_assert_eq(peer_sa.sin_addr.s_addr, ip4(PEER_IP4).s_addr);
	cr_assert_eq(ntohs(peer_sa.sin_port), REMOTE_PORT);
	rc = ns_connect(stack, sock, (struct sockaddr *)&peer_sa, sizeof(peer_sa));
	cr_assert_eq(rc, -EISCONN, "second connect: %d", rc);
}

Test(proto, tcp_connect_refused_by_rst_reports_econnrefused_in_so_error)
{
	uint8_t buf[FRAME_BUF];
	struct tcp_peer peer;
	struct pollfd pfd;
	struct frame f;
	int sock, rc;

	sock = active_socket(true, &rc);
	cr_assert_eq(rc, -EINPROGRESS, "nonblocking connect: %d", rc);
	expect_syn(&peer, &f);
	inject(buf, tcp_peer_rst(&peer, buf, sizeof(buf)));

	pfd = (struct pollfd){ .fd = sock, .events = POLLOUT };
	rc = ns_poll(stack, &pfd, 1, WAIT_MS);
	cr_assert_eq(rc, 1, "ns_poll: %d", rc);
	cr_assert(pfd.revents & POLLERR, "revents 0x%x lacks POLLERR", pfd.revents);
	cr_assert_eq(so_error(sock), ECONNREFUSED);
	cr_assert_eq(so_error(sock), 0, "SO_ERROR is cleared on read");
}

struct connect_job {
	int sock;
	int rc;
};

static void *connect_thread(void *arg)
{
	struct connect_job *j = arg;
	struct sockaddr_in to = sin4(PEER_IP4, REMOTE_PORT);

	j->rc = ns_connect(stack, j->sock, (struct sockaddr *)&to, sizeof(to));
	return NULL;
}

Test(proto, tcp_blocking_connect_refused_by_rst_returns_econnrefused)
{
	struct connect_job job = { .rc = 1 };
	uint8_t buf[FRAME_BUF];
	struct tcp_peer peer;
	struct frame f;
	pthread_t t;

	job.sock = active_socket(false, NULL);
	set_timeouts(job.sock);	/* bounds the blocking connect */
	cr_assert_eq(pthread_create(&t, NULL, connect_thread, &job), 0);
	expect_syn(&peer, &f);
	inject(buf, tcp_peer_rst(&peer, buf, sizeof(buf)));
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(job.rc, -ECONNREFUSED, "blocking connect: %d", job.rc);
}
