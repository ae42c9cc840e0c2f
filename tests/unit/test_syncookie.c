/* SPDX-License-Identifier: MIT */
/*
 * test_syncookie.c - SYN cookies (tcpip/syncookie.c) against a whole stack
 * over the in-memory channel endpoint, the test playing the peer with the
 * frame toolkit and running the stack itself (ns_stack_run_once()). A
 * listener with a backlog of two is filled with half-open connections;
 * the next SYN must get a cookie SYN-ACK carrying the options the SYN
 * asked for, and the ACK echoing it must become a connection that carries
 * bulk data both ways with window scaling and timestamps in force, over
 * IPv4 and IPv6. A wrong, transplanted, expired or corrupted cookie ACK
 * must make nothing. The cookie's own make/check pair is tested directly.
 */
#define _GNU_SOURCE

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "chanstack.h"
#include "frames.h"
#include "internal.h"
#include "lwip/ip_addr.h"
#include "lwip/sys.h"
#include "netstack.h"
#include "syncookie.h"

#define LISTEN_PORT 80
#define BACKLOG 2
#define HALF_OPEN_PORT 1000	/* the peers that fill the backlog: 1000, 1001 */
#define PEER_PORT 2000
#define PEER_ISN 7000000u
#define PEER_TSVAL 5000u
#define FRAME_BUF 2048
#define MSS 1460
#define BULK (256 * 1024)


/* MSS 1460, SACK permitted, timestamps (TSval PEER_TSVAL), NOP, window scale 7. */
static const uint8_t syn_opts[] = {
	2, 4, MSS >> 8, MSS & 0xff, 4, 2, 8, 10, 0, 0, PEER_TSVAL >> 8, PEER_TSVAL & 0xff, 0, 0, 0, 0,
	1, 3, 3, 7,
};

static struct ns_stack *stack;
static struct ns_endpoint *chan;
static struct frame_path to4, to6;
static int listener;
static struct tcp_peer half[BACKLOG];	/* the half-open connections, oldest first */

static void setup(void)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(LISTEN_PORT) };

	stack = chanstack_new(&chan, &to4, &to6);
	listener = ns_socket(stack, AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
	cr_assert_geq(listener, 0);
	a6.sin6_addr = in6addr_any;
	cr_assert_eq(ns_bind(stack, listener, (struct sockaddr *)&a6, sizeof(a6)), 0);
	cr_assert_eq(ns_listen(stack, listener, BACKLOG), 0);
}

static void teardown(void)
{
	ns_stack_free(stack);
	stack = NULL;
}

/* What the stack sent one peer, segment by segment. */
struct seen {
	struct tcp_peer *peer;
	unsigned segs, rsts, synacks;
	struct frame_parsed last;	/* pointers cleared: the frame is gone */
	uint32_t synack_seq;
	uint16_t synack_mss;
	int synack_wscale;
	bool synack_sack, synack_ts;
	uint32_t synack_tsval, synack_tsecr;
	uint8_t *data;			/* payload in order, if not NULL */
	size_t data_len, data_cap;
	bool ts_always, ts_echo_ok;	/* every segment had TS; TSecr echoed ours */
	uint32_t expect_ecr;
	uint16_t max_payload, min_window;
};

static void inject(const uint8_t *f, size_t len)
{
	int rc = ns_channel_inject(chan, f, len);

	cr_assert_eq(rc, 0, "ns_channel_inject: %d", rc);
}

static void note(struct seen *w, const struct frame_parsed *p)
{
	uint32_t before = w->peer->rcv_nxt;
	int moved;

	if (p->proto != IPPROTO_TCP || p->dport != w->peer->sport)
		return;
	moved = tcp_peer_absorb(w->peer, p);
	w->segs++;
	if (p->tcp_flags & FRAME_TCP_RST)
		w->rsts++;
	if ((p->tcp_flags & (FRAME_TCP_SYN | FRAME_TCP_ACK)) == (FRAME_TCP_SYN | FRAME_TCP_ACK) &&
	    !w->synacks++) {
		w->synack_seq = p->seq;
		w->synack_mss = p->mss;
		w->synack_wscale = p->wscale;
		w->synack_sack = p->sack_perm;
		w->synack_ts = p->has_ts;
		w->synack_tsval = p->ts_val;
		w->synack_tsecr = p->ts_ecr;
	}
	if (!(p->tcp_flags & FRAME_TCP_SYN)) {
		if (!p->has_ts)
			w->ts_always = false;
		else if (p->ts_ecr != w->expect_ecr)
			w->ts_echo_ok = false;
		if (!w->min_window || p->window < w->min_window)
			w->min_window = p->window;
	}
	if (p->payload_len > w->max_payload)
		w->max_payload = (uint16_t)p->payload_len;
	if (w->data && moved > 0 && p->payload_len && !(p->tcp_flags & FRAME_TCP_SYN) &&
	    p->seq == before) {
		cr_assert_leq(w->data_len + p->payload_len, w->data_cap, "more data than sent");
		memcpy(w->data + w->data_len, p->payload, p->payload_len);
		w->data_len += p->payload_len;
	}
	w->last = *p;
	w->last.tcp_opts = w->last.payload = NULL;
}

/* One round of the stack, answering its neighbour queries; every TCP
 * segment for @w's peer is noted. */
static void run(struct seen *w)
{
	bool again;

	do {
		uint8_t buf[70000];
		struct frame_parsed p;
		ssize_t n;

		again = false;
		ns_lock(stack);
		ns_stack_run_once(stack, false);
		ns_unlock(stack);
		while ((n = ns_channel_read(chan, buf, sizeof(buf))) != -EAGAIN) {
			uint8_t reply[256];
			ssize_t r;

			cr_assert_gt(n, 0, "ns_channel_read: %zd", n);
			cr_assert_eq(frame_parse(buf, (size_t)n, &p), 0, "the stack sent a malformed frame");
			cr_assert(p.csum_ok, "the stack sent a frame with a bad checksum");
			r = frame_neighbour_reply(&p, &to4, &to6, reply, sizeof(reply));
			if (r > 0) {
				inject(reply, (size_t)r);
				again = true;
			} else if (w) {
				note(w, &p);
			}
		}
	} while (again);
}

static void seen_init(struct seen *w, struct tcp_peer *peer)
{
	memset(w, 0, sizeof(*w));
	w->peer = peer;
	w->ts_always = w->ts_echo_ok = true;
	w->synack_wscale = -1;
}

/* A timestamps option (with two NOPs before it) for the peer's segments. */
static size_t ts_opt(uint8_t o[12], uint32_t tsval, uint32_t tsecr)
{
	o[0] = o[1] = 1;
	o[2] = 8;
	o[3] = 10;
	for (int i = 0; i < 4; i++) {
		o[4 + i] = (uint8_t)(tsval >> (24 - 8 * i));
		o[8 + i] = (uint8_t)(tsecr >> (24 - 8 * i));
	}
	return 12;
}

/* Two SYNs that are never completed fill the backlog with half-open
 * connections, as a flood does. Each is answered, without a cookie. */
static void fill_backlog(const struct frame_path *path)
{
	struct tcpip_syncookie_stats st;

	for (uint16_t i = 0; i < BACKLOG; i++) {
		struct seen w;
		uint8_t f[FRAME_BUF];

		tcp_peer_init(&half[i], path, (uint16_t)(HALF_OPEN_PORT + i), LISTEN_PORT, PEER_ISN + i);
		seen_init(&w, &half[i]);
		inject(f, (size_t)tcp_peer_syn(&half[i], f, sizeof(f), syn_opts, sizeof(syn_opts)));
		run(&w);
		cr_assert_eq(w.synacks, 1, "half-open %u: no SYN-ACK", i);
	}
	tcpip_syncookie_stats(&st);
	cr_assert_eq(st.sent, 0, "a cookie before the backlog was full");
}

static void addr_of(const struct frame_addr *a, ip_addr_t *ip)
{
	if (a->family == AF_INET) {
		ip_addr_set_zero_ip4(ip);
		memcpy(&ip_2_ip4(ip)->addr, &a->v4, 4);
	} else {
		ip_addr_set_zero_ip6(ip);
		memcpy(ip_2_ip6(ip)->addr, &a->v6, 16);
	}
}

/* Whether @isn is a valid cookie for the peer's connection now. */
static bool is_cookie(const struct tcp_peer *peer, uint32_t isn)
{
	ip_addr_t local, remote;
	unsigned data;

	addr_of(&peer->path.dst, &local);
	addr_of(&peer->path.src, &remote);
	return tcpip_cookie_check(&local, LISTEN_PORT, &remote, peer->sport, PEER_ISN, isn,
				  (uint32_t)sys_now() >> 16, &data);
}

/* The peer's SYN past the full backlog: a cookie SYN-ACK comes back. */
static void cookie_syn(struct tcp_peer *peer, struct seen *w, const struct frame_path *path, uint16_t port)
{
	uint8_t f[FRAME_BUF];

	tcp_peer_init(peer, path, port, LISTEN_PORT, PEER_ISN);
	seen_init(w, peer);
	inject(f, (size_t)tcp_peer_syn(peer, f, sizeof(f), syn_opts, sizeof(syn_opts)));
	run(w);
	cr_assert_eq(w->synacks, 1, "no SYN-ACK past the full backlog");
	cr_assert(is_cookie(peer, w->synack_seq), "the SYN-ACK carries no cookie");
}

/* The peer's ACK of the cookie, with a timestamp; @window on the wire. */
static void cookie_ack(struct tcp_peer *peer, struct seen *w, uint16_t window)
{
	uint8_t f[FRAME_BUF], o[12];

	peer->window = window;
	inject(f, (size_t)tcp_peer_send(peer, f, sizeof(f), FRAME_TCP_ACK, o,
					ts_opt(o, PEER_TSVAL + 1, w->synack_tsval), NULL, 0));
	run(w);
}

static int accept_one(void)
{
	return ns_accept(stack, listener, NULL, NULL, SOCK_NONBLOCK);
}

static void pattern(uint8_t *buf, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed + i * 7 + (i >> 9));
}

/* BULK bytes from the stack to the peer, the peer acknowledging each round
 * with a window of 0xffff << 7. Checks the order, bytes, MSS and TS. */
static void bulk_to_peer(struct tcp_peer *peer, int s)
{
	static uint8_t out[BULK], in[BULK];
	uint8_t f[FRAME_BUF], o[12];
	size_t sent = 0;
	struct seen w;
	int rounds;

	pattern(out, sizeof(out), 0x31);
	seen_init(&w, peer);
	w.data = in;
	w.data_cap = sizeof(in);
	w.expect_ecr = PEER_TSVAL + 1;
	peer->window = 0xffff;
	for (rounds = 0; w.data_len < BULK && rounds < 2000; rounds++) {
		if (sent < BULK) {
			ssize_t n = ns_send(stack, s, out + sent, BULK - sent, MSG_DONTWAIT);

			if (n > 0)
				sent += (size_t)n;
		}
		run(&w);
		inject(f, (size_t)tcp_peer_send(peer, f, sizeof(f), FRAME_TCP_ACK, o,
						ts_opt(o, PEER_TSVAL + 1, w.last.ts_val), NULL, 0));
	}
	cr_assert_eq(w.data_len, (size_t)BULK, "%zu of %d bytes reached the peer", w.data_len, BULK);
	cr_assert(!memcmp(in, out, BULK), "the bytes changed on the way");
	cr_assert_leq(w.max_payload, MSS - 12, "a segment of %u bytes over the MSS", w.max_payload);
	cr_assert(w.ts_always, "a segment without timestamps");
	cr_assert(w.ts_echo_ok, "TSecr did not echo the peer's TSval");
	cr_assert_eq(w.rsts, 0);
}

/* BULK bytes from the peer to the stack in MSS-sized segments. */
static void bulk_to_stack(struct tcp_peer *peer, int s)
{
	static uint8_t out[BULK], in[BULK];
	uint8_t f[FRAME_BUF], o[12];
	size_t sent = 0, got = 0;
	struct seen w;
	int rounds;

	pattern(out, sizeof(out), 0x77);
	seen_init(&w, peer);
	for (rounds = 0; got < BULK && rounds < 2000; rounds++) {
		for (int k = 0; k < 16 && sent < BULK; k++) {
			size_t len = BULK - sent < MSS ? BULK - sent : MSS;

			inject(f, (size_t)tcp_peer_send(peer, f, sizeof(f), FRAME_TCP_ACK | FRAME_TCP_PSH, o,
							ts_opt(o, PEER_TSVAL + 2, 0), out + sent, len));
			sent += len;
		}
		run(&w);
		for (;;) {
			ssize_t n = ns_recv(stack, s, in + got, BULK - got, MSG_DONTWAIT);

			if (n <= 0)
				break;
			got += (size_t)n;
		}
	}
	cr_assert_eq(got, (size_t)BULK, "%zu of %d bytes reached the stack", got, BULK);
	cr_assert(!memcmp(in, out, BULK), "the bytes changed on the way");
	/* The stack's window is scaled (1 MiB >> 6 on the wire): unscaled it
	 * could not exceed 65535 nor would it be announced this small. */
	cr_assert_gt(w.min_window, 0);
	cr_assert_lt(w.last.window, 0xffff, "window %u: not scaled", w.last.window);
	cr_assert_eq(w.rsts, 0);
}

static void cookie_connection_carries_bulk_data(const struct frame_path *path)
{
	struct tcpip_syncookie_stats st;
	/* Ours: the MTU's (1500) less the IP and TCP headers. */
	unsigned mss = path->src.family == AF_INET ? MSS : MSS - 20;
	struct tcp_peer peer;
	struct seen w;
	uint8_t f[FRAME_BUF];
	int s;

	fill_backlog(path);
	cookie_syn(&peer, &w, path, PEER_PORT);
	/* The SYN-ACK grants what the SYN asked for, as lwIP's own would. */
	cr_assert_eq(w.synack_mss, mss, "MSS %u", w.synack_mss);
	cr_assert_eq(w.synack_wscale, 6, "window scale %d", w.synack_wscale);
	cr_assert(w.synack_sack, "no SACK permitted");
	cr_assert(w.synack_ts && w.synack_tsecr == PEER_TSVAL, "timestamps not echoed");

	/* Window 32 << 7 = 4 KiB: the stack's first flight shows the scale. */
	cookie_ack(&peer, &w, 32);
	cr_assert_eq(w.rsts, 0, "the cookie ACK was refused");
	/* lwIP's answer to the replayed SYN stays in: the peer has its SYN-ACK. */
	cr_assert_eq(w.synacks, 1, "%u SYN-ACKs: lwIP's own went out too", w.synacks);
	s = accept_one();
	cr_assert_geq(s, 0, "no connection from the cookie: %d", s);
	tcpip_syncookie_stats(&st);
	cr_assert_eq(st.sent, 1);
	cr_assert_eq(st.validated, 1);

	{
		static uint8_t buf[8192];
		struct seen flight;

		seen_init(&flight, &peer);
		flight.data = NULL;
		cr_assert_eq(ns_send(stack, s, buf, sizeof(buf), MSG_DONTWAIT), (ssize_t)sizeof(buf));
		run(&flight);
		/* Unscaled, 32 bytes; scaled, 4096, of which the initial
		 * congestion window (4380) sends two whole segments (the
		 * MSS less the timestamps option). */
		cr_assert(peer.rcv_nxt - (w.synack_seq + 1) >= 2 * (mss - 12) &&
			  peer.rcv_nxt - (w.synack_seq + 1) <= 4096u,
			  "first flight %u bytes: the peer's window scale is not in force",
			  peer.rcv_nxt - (w.synack_seq + 1));
		/* Take the rest, so the bulk below starts clean. */
		for (int i = 0; i < 20 && peer.rcv_nxt - (w.synack_seq + 1) < sizeof(buf); i++) {
			uint8_t o[12];

			peer.window = 0xffff;
			inject(f, (size_t)tcp_peer_send(&peer, f, sizeof(f), FRAME_TCP_ACK, o,
							ts_opt(o, PEER_TSVAL + 1, flight.last.ts_val), NULL, 0));
			run(&flight);
		}
		cr_assert_eq(peer.rcv_nxt - (w.synack_seq + 1), sizeof(buf));
	}
	bulk_to_peer(&peer, s);
	bulk_to_stack(&peer, s);

	/* The oldest half-open connection made room: its ACK finds none now;
	 * the other one completes as usual. */
	seen_init(&w, &half[0]);
	inject(f, (size_t)tcp_peer_ack(&half[0], f, sizeof(f)));
	run(&w);
	cr_assert_eq(w.rsts, 1, "the oldest half-open connection is still there");
	cr_assert_eq(accept_one(), -EAGAIN);
	seen_init(&w, &half[1]);
	inject(f, (size_t)tcp_peer_ack(&half[1], f, sizeof(f)));
	run(&w);
	cr_assert_eq(w.rsts, 0, "the newer half-open connection was dropped");
	cr_assert_geq(accept_one(), 0, "the newer half-open connection did not complete");
	ns_close(stack, s);
}

Test(syncookie, ipv4_cookie_connection_carries_bulk_data_scaled_and_timestamped,
     .init = setup, .fini = teardown, .timeout = 60)
{
	cookie_connection_carries_bulk_data(&to4);
}

Test(syncookie, ipv6_cookie_connection_carries_bulk_data_scaled_and_timestamped,
     .init = setup, .fini = teardown, .timeout = 60)
{
	cookie_connection_carries_bulk_data(&to6);
}

Test(syncookie, no_cookie_while_the_backlog_has_room, .init = setup, .fini = teardown)
{
	struct tcpip_syncookie_stats st;
	struct tcp_peer peer;
	struct seen w;
	uint8_t f[FRAME_BUF];

	tcp_peer_init(&peer, &to4, PEER_PORT, LISTEN_PORT, PEER_ISN);
	seen_init(&w, &peer);
	inject(f, (size_t)tcp_peer_syn(&peer, f, sizeof(f), syn_opts, sizeof(syn_opts)));
	run(&w);
	cr_assert_eq(w.synacks, 1);
	cr_assert_not(is_cookie(&peer, w.synack_seq), "a cookie with room in the backlog");
	tcpip_syncookie_stats(&st);
	cr_assert_eq(st.sent, 0);
}

/* An ACK that must make no connection: answered by a RST from the
 * listener (as any stray ACK), or, with a checksum @corrupt, dropped. */
static void refused(struct tcp_peer *peer, uint32_t ack, bool corrupt, const char *what)
{
	uint8_t f[FRAME_BUF], o[12];
	struct seen w;
	ssize_t n;

	seen_init(&w, peer);
	peer->rcv_nxt = ack;
	peer->synced = true;
	n = tcp_peer_send(peer, f, sizeof(f), FRAME_TCP_ACK, o, ts_opt(o, PEER_TSVAL + 1, 0), NULL, 0);
	cr_assert_gt(n, 0);
	if (corrupt)
		f[n - 1] ^= 0x40;	/* the last option byte: the checksum no longer holds */
	inject(f, (size_t)n);
	run(&w);
	cr_assert_eq(w.rsts, corrupt ? 0u : 1u, "%s: %u RSTs of %u segments (flags %x)", what, w.rsts, w.segs, w.last.tcp_flags);
	cr_assert_eq(accept_one(), -EAGAIN, "%s: a connection came of it", what);
}

static uint32_t forge(uint16_t port, uint32_t count)
{
	ip_addr_t local, remote;

	addr_of(&to4.dst, &local);
	addr_of(&to4.src, &remote);
	/* data 4 | 7 << 3 | SACK: MSS 1460, window scale 7. */
	return tcpip_cookie_make(&local, LISTEN_PORT, &remote, port, PEER_ISN, count, 4u | 7u << 3 | 0x80u);
}

Test(syncookie, forged_transplanted_expired_and_corrupted_cookies_make_nothing,
     .init = setup, .fini = teardown, .timeout = 30)
{
	struct tcpip_syncookie_stats st;
	struct tcp_peer peer, other;
	struct seen w;
	uint32_t now = (uint32_t)sys_now() >> 16;

	fill_backlog(&to4);
	cookie_syn(&peer, &w, &to4, PEER_PORT);

	refused(&peer, w.synack_seq + 2, false, "cookie + 1");
	refused(&peer, w.synack_seq ^ 0x10000, false, "a bit flipped");
	tcp_peer_init(&other, &to4, PEER_PORT + 1, LISTEN_PORT, PEER_ISN);
	other.snd_nxt = PEER_ISN + 1;
	refused(&other, w.synack_seq + 1, false, "another port's cookie");
	tcp_peer_init(&other, &to4, PEER_PORT + 2, LISTEN_PORT, PEER_ISN);
	other.snd_nxt = PEER_ISN + 1;
	refused(&other, forge(PEER_PORT + 2, now - 2) + 1, false, "a cookie two clock ticks old");
	tcp_peer_init(&other, &to4, PEER_PORT + 3, LISTEN_PORT, PEER_ISN);
	other.snd_nxt = PEER_ISN + 1;
	refused(&other, forge(PEER_PORT + 3, now + 1) + 1, false, "a cookie from the future");
	peer.snd_nxt = PEER_ISN + 1;
	refused(&peer, w.synack_seq + 1, true, "a right cookie, a wrong checksum");
	tcpip_syncookie_stats(&st);
	cr_assert_eq(st.validated, 0);
	cr_assert_geq(st.failed, 5, "failed %llu", (unsigned long long)st.failed);

	/* The previous tick still counts, and the right cookie still works. */
	tcp_peer_init(&other, &to4, PEER_PORT + 4, LISTEN_PORT, PEER_ISN);
	other.snd_nxt = PEER_ISN + 1;
	other.rcv_nxt = forge(PEER_PORT + 4, now - 1) + 1;
	other.synced = true;
	seen_init(&w, &other);
	{
		uint8_t f[FRAME_BUF];

		inject(f, (size_t)tcp_peer_ack(&other, f, sizeof(f)));
	}
	run(&w);
	cr_assert_eq(w.rsts, 0, "a cookie one tick old was refused");
	cr_assert_geq(accept_one(), 0, "no connection from a cookie one tick old");
	tcpip_syncookie_stats(&st);
	cr_assert_eq(st.validated, 1);
}

Test(syncookie, cookie_round_trips_every_data_value_and_rejects_changes)
{
	ip_addr_t a4, b4, a6, b6;
	uint32_t count = 12345, c;
	unsigned data, d;

	ip_addr_set_zero_ip4(&a4);
	ip_addr_set_zero_ip4(&b4);
	cr_assert(ip4addr_aton(NIC_IP4, ip_2_ip4(&a4)));
	cr_assert(ip4addr_aton(PEER_IP4, ip_2_ip4(&b4)));
	ip_addr_set_zero_ip6(&a6);
	ip_addr_set_zero_ip6(&b6);
	cr_assert(ip6addr_aton(NIC_IP6, ip_2_ip6(&a6)));
	cr_assert(ip6addr_aton(PEER_IP6, ip_2_ip6(&b6)));
	for (data = 0; data < TCPIP_COOKIE_DATA_MAX; data++) {
		c = tcpip_cookie_make(&a4, 80, &b4, 4000, 99, count, data);
		cr_assert(tcpip_cookie_check(&a4, 80, &b4, 4000, 99, c, count, &d));
		cr_assert_eq(d, data);
		cr_assert(tcpip_cookie_check(&a4, 80, &b4, 4000, 99, c, count + 1, &d), "one tick later");
		cr_assert_not(tcpip_cookie_check(&a4, 80, &b4, 4000, 99, c, count + 2, &d), "two ticks later");
		cr_assert_not(tcpip_cookie_check(&a4, 80, &b4, 4001, 99, c, count, &d), "another port");
		cr_assert_not(tcpip_cookie_check(&a4, 80, &b4, 4000, 100, c, count, &d), "another peer ISN");
		cr_assert_not(tcpip_cookie_check(&b4, 80, &a4, 4000, 99, c, count, &d), "addresses swapped");
		c = tcpip_cookie_make(&a6, 80, &b6, 4000, 99, count, data);
		cr_assert(tcpip_cookie_check(&a6, 80, &b6, 4000, 99, c, count, &d));
		cr_assert_eq(d, data);
		for (int bit = 0; bit < 32; bit++)
			cr_assert_not(tcpip_cookie_check(&a6, 80, &b6, 4000, 99, c ^ 1u << bit, count, &d),
				      "bit %d flipped", bit);
		cr_assert_not(tcpip_cookie_check(&a6, 80, &b6, 4000, 99, c + 1, count, &d), "plus one");
	}
}

/* sys_now() wraps every 49.7 days and the 16-bit clock with it: a cookie
 * made in the last tick before the wrap must pass in the first after it,
 * and one from two ticks back must not. */
Test(syncookie, cookie_from_the_tick_before_the_clock_wraps_is_accepted)
{
	ip_addr_t a4, b4;
	uint32_t c;
	unsigned d;

	ip_addr_set_zero_ip4(&a4);
	ip_addr_set_zero_ip4(&b4);
	cr_assert(ip4addr_aton(NIC_IP4, ip_2_ip4(&a4)));
	cr_assert(ip4addr_aton(PEER_IP4, ip_2_ip4(&b4)));
	c = tcpip_cookie_make(&a4, 80, &b4, 4000, 99, 0xffff, 5);
	cr_assert(tcpip_cookie_check(&a4, 80, &b4, 4000, 99, c, 0, &d), "refused just after the wrap");
	cr_assert_eq(d, 5);
	c = tcpip_cookie_make(&a4, 80, &b4, 4000, 99, 0xfffe, 5);
	cr_assert_not(tcpip_cookie_check(&a4, 80, &b4, 4000, 99, c, 0, &d), "two ticks old across the wrap");
}

/* lwIP checks the IPv4 header's sum only after the input hook: a SYN or
 * a cookie ACK with a broken header must get neither a cookie nor a
 * connection (nor evict a half-open one for it). */
Test(syncookie, broken_ipv4_header_checksum_gets_no_cookie_and_makes_nothing,
     .init = setup, .fini = teardown, .timeout = 30)
{
	struct tcpip_syncookie_stats st;
	struct tcp_peer peer, bad;
	struct seen w, wb;
	uint8_t f[FRAME_BUF], o[12];
	ssize_t n;

	fill_backlog(&to4);
	tcp_peer_init(&bad, &to4, PEER_PORT + 1, LISTEN_PORT, PEER_ISN);
	seen_init(&wb, &bad);
	n = tcp_peer_syn(&bad, f, sizeof(f), syn_opts, sizeof(syn_opts));
	cr_assert_gt(n, 0);
	f[FRAME_ETH_HLEN + 10] ^= 0x01;	/* the IPv4 header checksum */
	inject(f, (size_t)n);
	run(&wb);
	cr_assert_eq(wb.synacks, 0, "a cookie SYN-ACK to a SYN with a broken IPv4 header");

	cookie_syn(&peer, &w, &to4, PEER_PORT);
	n = tcp_peer_send(&peer, f, sizeof(f), FRAME_TCP_ACK, o, ts_opt(o, PEER_TSVAL + 1, w.synack_tsval),
			  NULL, 0);
	cr_assert_gt(n, 0);
	f[FRAME_ETH_HLEN + 10] ^= 0x01;
	inject(f, (size_t)n);
	run(&w);
	tcpip_syncookie_stats(&st);
	cr_assert_eq(st.sent, 1);
	cr_assert_eq(st.validated, 0, "a cookie ACK with a broken IPv4 header was taken");
	cr_assert_eq(accept_one(), -EAGAIN);
}

/* lwIP answers a repeated SYN of a half-open connection with that
 * connection's SYN-ACK: the cookies must leave it to lwIP, not hand out a
 * cookie for a second connection on the same ports. */
Test(syncookie, repeated_syn_of_a_half_open_connection_gets_its_own_synack,
     .init = setup, .fini = teardown, .timeout = 30)
{
	struct tcpip_syncookie_stats st;
	struct tcp_peer again;
	struct seen w;
	uint8_t f[FRAME_BUF];
	uint32_t first;

	fill_backlog(&to4);
	first = half[0].rcv_nxt;
	tcp_peer_init(&again, &to4, HALF_OPEN_PORT, LISTEN_PORT, PEER_ISN);
	seen_init(&w, &again);
	inject(f, (size_t)tcp_peer_syn(&again, f, sizeof(f), syn_opts, sizeof(syn_opts)));
	run(&w);
	cr_assert_eq(w.synacks, 1, "no SYN-ACK to the repeated SYN");
	cr_assert_eq(w.synack_seq + 1, first, "the repeated SYN got another ISN (%u, first %u)",
		     w.synack_seq, first - 1);
	tcpip_syncookie_stats(&st);
	cr_assert_eq(st.sent, 0, "a cookie for a connection lwIP has");
}

/* A connection lwIP made after the cookies last looked at its lists (here:
 * the cookie connection itself, made by the replayed SYN) is lwIP's too: a
 * SYN on its ports gets lwIP's answer (an ACK), never a cookie. Guards the
 * filter in front of those lists: it must learn of every new pcb. */
Test(syncookie, syn_on_a_connection_made_since_the_last_lookup_gets_no_cookie,
     .init = setup, .fini = teardown, .timeout = 30)
{
	struct tcpip_syncookie_stats st;
	struct tcp_peer peer, again;
	struct seen w;
	uint8_t f[FRAME_BUF];

	fill_backlog(&to4);
	cookie_syn(&peer, &w, &to4, PEER_PORT);
	cookie_ack(&peer, &w, 0xffff);
	tcpip_syncookie_stats(&st);
	cr_assert_eq(st.validated, 1, "no cookie connection");
	cr_assert_eq(st.sent, 1);
	tcp_peer_init(&again, &to4, PEER_PORT, LISTEN_PORT, PEER_ISN + 1000);
	seen_init(&w, &again);
	inject(f, (size_t)tcp_peer_syn(&again, f, sizeof(f), syn_opts, sizeof(syn_opts)));
	run(&w);
	tcpip_syncookie_stats(&st);
	cr_assert_eq(st.sent, 1, "a cookie for a connection lwIP has");
	cr_assert_eq(w.synacks, 0, "a SYN-ACK for a connection lwIP has");
	cr_assert_eq(w.segs, 1, "no challenge ACK (%u segments)", w.segs);
	cr_assert_eq(w.last.ack, peer.snd_nxt, "the ACK is not the connection's");
}

/* The ACK that echoes the cookie may carry data and a FIN (a peer that
 * sends at once and closes): the replayed SYN makes the connection, and
 * lwIP takes both from that ACK. */
Test(syncookie, cookie_ack_with_data_and_fin_delivers_both, .init = setup, .fini = teardown,
     .timeout = 30)
{
	static const char hello[] = "hello, cookie";
	struct tcpip_syncookie_stats st;
	struct tcp_peer peer;
	struct seen w;
	uint8_t f[FRAME_BUF], o[12];
	char buf[64];
	int s;

	fill_backlog(&to6);
	cookie_syn(&peer, &w, &to6, PEER_PORT);
	inject(f, (size_t)tcp_peer_send(&peer, f, sizeof(f), FRAME_TCP_ACK | FRAME_TCP_PSH | FRAME_TCP_FIN, o,
					ts_opt(o, PEER_TSVAL + 1, w.synack_tsval), hello, sizeof(hello)));
	run(&w);
	cr_assert_eq(w.rsts, 0, "the cookie ACK was refused");
	tcpip_syncookie_stats(&st);
	cr_assert_eq(st.validated, 1);
	s = accept_one();
	cr_assert_geq(s, 0, "no connection from the cookie: %d", s);
	cr_assert_eq(ns_recv(stack, s, buf, sizeof(buf), MSG_DONTWAIT), (ssize_t)sizeof(hello));
	cr_assert_str_eq(buf, hello);
	cr_assert_eq(ns_recv(stack, s, buf, sizeof(buf), MSG_DONTWAIT), 0, "no end of stream");
	cr_assert_eq(w.last.ack, PEER_ISN + 1 + sizeof(hello) + 1, "the data and FIN not acknowledged");
	ns_close(stack, s);
}

/* A cookie outlives its listener: the ACK must then make nothing, and be
 * answered as any segment to a closed port is. */
Test(syncookie, cookie_ack_after_the_listener_closed_makes_nothing, .init = setup, .fini = teardown,
     .timeout = 30)
{
	struct tcpip_syncookie_stats st;
	struct tcp_peer peer;
	struct seen w;

	fill_backlog(&to4);
	cookie_syn(&peer, &w, &to4, PEER_PORT);
	cr_assert_eq(ns_close(stack, listener), 0);
	cookie_ack(&peer, &w, 0xffff);
	cr_assert_eq(w.rsts, 1, "no RST from the closed port");
	tcpip_syncookie_stats(&st);
	cr_assert_eq(st.validated, 0);
}

/* A listener bound to one address rather than any: the cookie path must
 * find it as lwIP's tcp_input() does, for the SYN and for its ACK. */
Test(syncookie, cookie_connection_to_a_listener_bound_to_one_address, .init = setup, .fini = teardown,
     .timeout = 30)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(LISTEN_PORT) };
	struct tcpip_syncookie_stats st;
	struct tcp_peer peer;
	struct seen w;

	cr_assert_eq(ns_close(stack, listener), 0);
	listener = ns_socket(stack, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	cr_assert_geq(listener, 0);
	cr_assert_eq(inet_pton(AF_INET, NIC_IP4, &a4.sin_addr), 1);
	cr_assert_eq(ns_bind(stack, listener, (struct sockaddr *)&a4, sizeof(a4)), 0);
	cr_assert_eq(ns_listen(stack, listener, BACKLOG), 0);
	fill_backlog(&to4);
	cookie_syn(&peer, &w, &to4, PEER_PORT);
	cookie_ack(&peer, &w, 0xffff);
	cr_assert_eq(w.rsts, 0, "the cookie ACK was refused");
	tcpip_syncookie_stats(&st);
	cr_assert_eq(st.validated, 1);
	cr_assert_geq(accept_one(), 0, "no connection from the cookie");
}
