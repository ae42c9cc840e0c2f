/* SPDX-License-Identifier: MIT */
/*
 * test_stack_timers.c - protocol timing of the whole stack under a fake
 * clock and without a dispatcher thread. Each test installs a fake monotonic
 * source before its stack exists, plays a kernel-like peer on 198.51.100.1
 * and fd42:5::1 over the in-memory channel endpoint in front of one NIC
 * (198.51.100.2/24, fd42:5::2/64, a fixed MAC), as test_stack_proto.c does,
 * and drives the stack itself with ns_stack_run_once() after every injected
 * frame and every clock step, recording each frame the stack sends with the
 * fake time at which it appeared. Minutes of protocol time then run
 * deterministically in a fraction of a second: TCP retransmission at the
 * RTO with its backoff and the final give-up, SYN retries, keepalive probes
 * and the reset that ends them, TIME-WAIT and what it does to a new SYN,
 * ARP aging and re-requests, the idle wheel's wakeups, and the 250 ms TCP
 * timer's lack of drift. Every expected time is derived in a comment from
 * lwIP 2.1.3's rules (tcp.c tcp_slowtmr/tcp_fasttmr, tcp_in.c, etharp.c)
 * and asserted to within the timer's own granularity: one TCP slow-timer
 * period (500 ms) or one ARP period (1 s), and to the millisecond where
 * both ends of an interval fall on ticks of the same timer.
 */
#define _GNU_SOURCE

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
/* <netinet/tcp.h>'s TCP_MSS (the socket option) clashes with lwIP's
 * configuration value of the same name; only lwIP's is used here. */
#undef TCP_MSS
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frames.h"
#include "internal.h"
#include "netstack.h"
#include "tcpip.h"
#include "wheel.h"
#include "lwip/etharp.h"
#include "lwip/mld6.h"
#include "lwip/prot/icmp6.h"
#include "lwip/priv/tcp_priv.h"

#define NS_PER_MS 1000000ull
#define START_MS 1000000ull	/* the fake clock starts at 1000 s */
#define FRAME_BUF 2048

#define NIC_IP4 "198.51.100.2"
#define PEER_IP4 "198.51.100.1"
#define NIC_IP6 "fd42:5::2"
#define PEER_IP6 "fd42:5::1"

#define LISTEN_PORT 80
#define REMOTE_PORT 9000	/* what the active open connects to */
#define PEER_PORT 40000		/* the peer's side of passive opens */
#define UDP_LOCAL_PORT 5000
#define UDP_PEER_PORT 9
#define PEER_ISN 1000000u

/* lwIP's TCP clock: tcp_slowtmr() runs on every other 250 ms tcp_tmr(). */
#define SLOW_MS TCP_SLOW_INTERVAL
/* A new pcb's RTO, tcp_alloc(): 3000 / TCP_SLOW_INTERVAL = 6 slow ticks. */
#define RTO_INIT_TICKS (3000 / TCP_SLOW_INTERVAL)

static const uint8_t nic_mac[FRAME_MAC_LEN] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x02 };
static const uint8_t peer_mac[FRAME_MAC_LEN] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01 };
static const uint8_t bcast_mac[FRAME_MAC_LEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* The peer's SYN options: MSS 1460, NOP, window scale 7. */
static const uint8_t syn_opts[] = { 2, 4, 0x05, 0xb4, 1, 3, 3, 7 };

static struct ns_stack *stack;
static struct ns_endpoint *chan;
static int nic_id;
static struct frame_path to4, to6;	/* from the peer to the stack */
/* Answer the stack's ARP requests and solicitations for the peer at once. */
static bool auto_answer;

/* ------------------------------------------------------------------ */
/* The fake clock                                                      */
/* ------------------------------------------------------------------ */

static uint64_t fake_ns;

static uint64_t fake_source(void *arg)
{
	(void)arg;
	return fake_ns;
}

static uint64_t now_ms(void)
{
	return fake_ns / NS_PER_MS;
}

/* ------------------------------------------------------------------ */
/* What the stack sent, with when                                      */
/* ------------------------------------------------------------------ */

struct frame {
	uint8_t buf[FRAME_BUF];
	size_t len;
	struct frame_parsed p;
};

/* One transmitted frame and the fake time (ms) at which it was taken. */
struct rec {
	uint64_t ms;
	struct frame f;
};

static struct rec **recs;
static size_t nrecs, caprecs;
static size_t seen;		/* the tests' cursor into recs */

typedef bool (*frame_match_fn)(const struct frame_parsed *p, const void *arg);

static struct in_addr ip4(const char *text)
{
	struct in_addr a;

	cr_assert_eq(inet_pton(AF_INET, text, &a), 1);
	return a;
}

static void inject_raw(const uint8_t *f, ssize_t len)
{
	int rc;

	cr_assert_gt(len, 0, "building the frame failed: %zd", len);
	rc = ns_channel_inject(chan, f, (size_t)len);
	cr_assert_eq(rc, 0, "ns_channel_inject: %d", rc);
}

/*
 * Answer the stack's ARP request or neighbour solicitation for the peer, as
 * the peer's kernel would (broadcast or unicast alike).
 * Return: whether @p was one.
 */
static bool answer_neighbour_query(const struct frame_parsed *p)
{
	uint8_t out[FRAME_BUF];
	ssize_t n = frame_neighbour_reply(p, &to4, &to6, out, sizeof(out));

	if (n == 0)
		return false;
	inject_raw(out, n);
	return true;
}

/* Take every frame the stack has sent, stamped with the fake time. Every
 * frame must parse with correct checksums from the NIC's MAC.
 * Return: whether a neighbour query was answered (the stack must run). */
static bool drain(void)
{
	bool answered = false;

	for (;;) {
		struct rec *r = calloc(1, sizeof(*r));
		char what[160];
		ssize_t n;

		cr_assert_not_null(r);
		n = ns_channel_read(chan, r->f.buf, sizeof(r->f.buf));
		if (n == -EAGAIN) {
			free(r);
			return answered;
		}
		cr_assert_geq(n, 0, "ns_channel_read: %zd", n);
		cr_assert_leq((size_t)n, sizeof(r->f.buf), "a %zd-byte frame at MTU 1500", n);
		r->f.len = (size_t)n;
		r->ms = now_ms();
		cr_assert_eq(frame_parse(r->f.buf, r->f.len, &r->f.p), 0, "a malformed %zu-byte frame",
			     r->f.len);
		frame_describe(&r->f.p, what, sizeof(what));
		cr_assert(r->f.p.csum_ok, "a frame with a bad checksum: %s", what);
		cr_assert(!memcmp(r->f.p.src_mac, nic_mac, FRAME_MAC_LEN), "not from the NIC's MAC: %s", what);
		if (nrecs == caprecs) {
			caprecs = caprecs ? 2 * caprecs : 256;
			recs = realloc(recs, caprecs * sizeof(*recs));
			cr_assert_not_null(recs);
		}
		recs[nrecs++] = r;
		if (auto_answer && answer_neighbour_query(&r->f.p))
			answered = true;
	}
}

/* One dispatcher round at the current fake time (frames waiting on the
 * channel, timers due), then take what was sent; again while answers to
 * neighbour queries wait to be received. */
static void run(void)
{
	do {
		ns_lock(stack);
		ns_stack_run_once(stack, false);
		ns_unlock(stack);
	} while (drain());
}

static void inject(const uint8_t *f, ssize_t len)
{
	inject_raw(f, len);
	run();
}

static uint64_t wakeup_ns(void)
{
	uint64_t w;

	ns_lock(stack);
	w = tcpip_timers_next_ns();
	ns_unlock(stack);
	return w;
}

/*
 * Move the fake clock forward by one step, not past @limit_ns, and run the
 * stack there. The step is 1 ms, except that no timer can be due before
 * the wheel's coalesced wakeup less TW_WAKEUP_SLACK_NS (the wakeup rounds
 * the earliest deadline up by less than that, and the earliest deadline
 * is never later than the real one): the clock jumps there at once. So
 * every timer fires on the exact millisecond it is due, as with 1 ms steps
 * throughout, at a tenth of the cost.
 */
static void advance_once(uint64_t limit_ns)
{
	uint64_t next = wakeup_ns(), t = fake_ns + NS_PER_MS;

	if (next == UINT64_MAX)
		t = limit_ns;
	else if (next > TW_WAKEUP_SLACK_NS && next - TW_WAKEUP_SLACK_NS > t)
		t = next - TW_WAKEUP_SLACK_NS;
	if (t > limit_ns)
		t = limit_ns;
	fake_ns = t;
	run();
}

/* Let the stack run until fake time @ms. */
static void advance_to(uint64_t ms)
{
	cr_assert_geq(ms * NS_PER_MS, fake_ns, "the clock cannot go back to %llu ms", (unsigned long long)ms);
	while (fake_ns < ms * NS_PER_MS)
		advance_once(ms * NS_PER_MS);
}

/* Set the clock to @ms directly, as a late wakeup would, and run once. */
static void jump_to(uint64_t ms)
{
	cr_assert_geq(ms * NS_PER_MS, fake_ns, "the clock cannot go back to %llu ms", (unsigned long long)ms);
	fake_ns = ms * NS_PER_MS;
	run();
}

typedef bool (*cond_fn)(const void *arg);

/* Let the stack run until @cond holds, for at most @limit_ms. Return: whether
 * it held; the clock then reads the first step at which it did. */
static bool advance_until(cond_fn cond, const void *arg, uint64_t limit_ms)
{
	uint64_t end = fake_ns + limit_ms * NS_PER_MS;

	for (;;) {
		if (cond(arg))
			return true;
		if (fake_ns >= end)
			return false;
		advance_once(end);
	}
}

/* The first recorded frame from *@from on that @match accepts; *@from moves
 * past it. NULL (and *@from at the end) when none. */
static struct rec *find_frame(size_t *from, frame_match_fn match, const void *arg)
{
	while (*from < nrecs) {
		struct rec *r = recs[(*from)++];

		if (match(&r->f.p, arg))
			return r;
	}
	return NULL;
}

static size_t count_frames(size_t from, frame_match_fn match, const void *arg)
{
	size_t n = 0;

	while (find_frame(&from, match, arg))
		n++;
	return n;
}

/* Let the stack run until it sends a frame that @match accepts, at most
 * @limit_ms (0: it must have been sent already); fail otherwise, listing
 * the other frames. Frames before it are passed over. */
static struct rec *await_frame(frame_match_fn match, const void *arg, uint64_t limit_ms, const char *what)
{
	uint64_t end = fake_ns + limit_ms * NS_PER_MS;
	size_t start = seen;
	char others[1024] = "";
	size_t used = 0;
	struct rec *r;

	for (;;) {
		size_t from = seen;

		r = find_frame(&from, match, arg);
		if (r) {
			seen = from;
			return r;
		}
		if (fake_ns >= end)
			break;
		advance_once(end);
	}
	for (; start < nrecs && used < sizeof(others); start++) {
		char d[160];

		frame_describe(&recs[start]->f.p, d, sizeof(d));
		used += (size_t)snprintf(others + used, sizeof(others) - used, "[%llu ms: %s] ",
					 (unsigned long long)(recs[start]->ms - START_MS), d);
	}
	cr_assert_fail("no %s within %llu ms (now %llu ms after start); other frames: %s", what,
		       (unsigned long long)limit_ms, (unsigned long long)(now_ms() - START_MS),
		       used ? others : "none");
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Matchers                                                            */
/* ------------------------------------------------------------------ */

/* A TCP segment from the stack; zero fields match anything. */
struct seg_want {
	uint16_t sport, dport;		/* the stack's port, the peer's */
	uint8_t set, clear;		/* flags that must be set, and clear */
	bool check_seq, check_ack;
	uint32_t seq, ack;
	bool with_data, without_data;
};

static bool match_tcp(const struct frame_parsed *p, const void *arg)
{
	const struct seg_want *w = arg;

	return p->ip_version && p->proto == IPPROTO_TCP && (!w->sport || p->sport == w->sport) &&
	       (!w->dport || p->dport == w->dport) && (p->tcp_flags & w->set) == w->set &&
	       !(p->tcp_flags & w->clear) && (!w->check_seq || p->seq == w->seq) &&
	       (!w->check_ack || p->ack == w->ack) && (!w->with_data || p->payload_len > 0) &&
	       (!w->without_data || p->payload_len == 0);
}

/* An ARP request for the peer's address (not the stack's gratuitous one). */
static bool match_arp_request_for_peer(const struct frame_parsed *p, const void *arg)
{
	(void)arg;
	return p->ethertype == FRAME_ETH_ARP && p->arp_op == FRAME_ARP_REQUEST &&
	       p->arp_tpa.s_addr == to4.src.v4.s_addr;
}

static bool match_udp_to_peer(const struct frame_parsed *p, const void *arg)
{
	(void)arg;
	return p->ip_version == 4 && p->proto == IPPROTO_UDP && p->dport == UDP_PEER_PORT;
}

/* ------------------------------------------------------------------ */
/* Set-up                                                              */
/* ------------------------------------------------------------------ */

static void setup(void)
{
	struct ns_stack_config cfg = { .log_level = NS_LOG_WARNING };
	struct ns_nic_config nc = { .name = "eth0" };
	struct ns_prefix pfx;

	/* Before the first stack of the process: lwip_init() arms the cyclic
	 * timers on the stack clock, so they start at START_MS. */
	fake_ns = START_MS * NS_PER_MS;
	tcpip_clock_use_source(fake_source, NULL);
	cr_assert_eq(ns_stack_new(&cfg, &stack), 0);
	cr_assert_eq(ns_endpoint_channel_new(&chan), 0);
	memcpy(nc.mac, nic_mac, sizeof(nc.mac));
	nic_id = ns_nic_add(stack, &nc, chan);
	cr_assert_geq(nic_id, 1, "ns_nic_add: %d", nic_id);
	cr_assert_eq(ns_prefix_parse(NIC_IP4 "/24", &pfx), 0);
	cr_assert_eq(ns_addr_add(stack, nic_id, &pfx), 0);
	cr_assert_eq(ns_prefix_parse(NIC_IP6 "/64", &pfx), 0);
	cr_assert_eq(ns_addr_add(stack, nic_id, &pfx), 0);
	cr_assert_eq(frame_path_init(&to4, peer_mac, PEER_IP4, nic_mac, NIC_IP4), 0);
	cr_assert_eq(frame_path_init(&to6, peer_mac, PEER_IP6, nic_mac, NIC_IP6), 0);
	auto_answer = true;
	run();
	cr_assert_eq(now_ms(), START_MS);
}

static void teardown(void)
{
	size_t i;

	ns_stack_free(stack);
	stack = NULL;
	for (i = 0; i < nrecs; i++)
		free(recs[i]);
	free(recs);
	recs = NULL;
	nrecs = caprecs = seen = 0;
}

/* Criterion forks per test: each test is the process's first stack, so
 * the fake source can be installed. The timeout is real time, a safety
 * net only: every test simulates its minutes in well under a second. */
TestSuite(timers, .init = setup, .fini = teardown, .timeout = 60);

/* ------------------------------------------------------------------ */
/* Sockets and connections                                             */
/* ------------------------------------------------------------------ */

static int tcp_listener(int family, uint16_t port)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	int sock = ns_socket(stack, family, SOCK_STREAM | SOCK_NONBLOCK, 0), rc;

	cr_assert_geq(sock, 0, "ns_socket: %d", sock);
	a6.sin6_addr = in6addr_any;
	if (family == AF_INET)
		rc = ns_bind(stack, sock, (struct sockaddr *)&a4, sizeof(a4));
	else
		rc = ns_bind(stack, sock, (struct sockaddr *)&a6, sizeof(a6));
	cr_assert_eq(rc, 0, "ns_bind: %d", rc);
	cr_assert_eq(ns_listen(stack, sock, 8), 0);
	return sock;
}

static void set_int(int sock, int level, int name, int v)
{
	int rc = ns_setsockopt(stack, sock, level, name, &v, sizeof(v));

	cr_assert_eq(rc, 0, "ns_setsockopt(%d, %d) = %d: %d", level, name, v, rc);
}

static int so_error(int sock)
{
	socklen_t len = sizeof(int);
	int v = -1;

	cr_assert_eq(ns_getsockopt(stack, sock, SOL_SOCKET, SO_ERROR, &v, &len), 0);
	return v;
}

static bool sock_failed(const void *arg)
{
	struct pollfd pfd = { .fd = *(const int *)arg, .events = POLLIN };

	return ns_poll(stack, &pfd, 1, 0) == 1 && (pfd.revents & POLLERR);
}

struct conn {
	const struct frame_path *path;
	struct tcp_peer peer;
	int listener;
	int sock;
	uint32_t isn;		/* the stack's */
	uint64_t syn_ms;	/* when the peer's SYN arrived */
};

/* The passive open: a listener on LISTEN_PORT, the peer's SYN, the SYN-ACK,
 * the peer's ACK, and the accepted (nonblocking) socket, all at one fake
 * instant. The SYN makes the first active pcb, so lwIP asks for its TCP
 * timer then: it first runs 250 ms later. */
static void establish(struct conn *c, const struct frame_path *path)
{
	bool v4 = path->src.family == AF_INET;
	struct seg_want synack = { .sport = LISTEN_PORT, .dport = PEER_PORT,
				   .set = FRAME_TCP_SYN | FRAME_TCP_ACK, .check_ack = true,
				   .ack = PEER_ISN + 1 };
	uint8_t buf[FRAME_BUF];
	struct rec *r;

	memset(c, 0, sizeof(*c));
	c->path = path;
	c->listener = tcp_listener(v4 ? AF_INET : AF_INET6, LISTEN_PORT);
	tcp_peer_init(&c->peer, path, PEER_PORT, LISTEN_PORT, PEER_ISN);
	c->syn_ms = now_ms();
	inject(buf, tcp_peer_syn(&c->peer, buf, sizeof(buf), syn_opts, sizeof(syn_opts)));
	r = await_frame(match_tcp, &synack, 0, "SYN-ACK");
	cr_assert_eq(r->f.p.ip_version, v4 ? 4 : 6);
	c->isn = r->f.p.seq;
	cr_assert_eq(tcp_peer_absorb(&c->peer, &r->f.p), 1);
	inject(buf, tcp_peer_ack(&c->peer, buf, sizeof(buf)));
	c->sock = ns_accept(stack, c->listener, NULL, NULL, SOCK_NONBLOCK);
	cr_assert_geq(c->sock, 0, "ns_accept: %d", c->sock);
}

/* ns_send(@data) goes out at once as one segment at the next sequence
 * number. Return: its record (not absorbed by the peer). */
static struct rec *stack_sends(struct conn *c, const char *data)
{
	size_t len = strlen(data);
	struct seg_want seg = { .sport = LISTEN_PORT, .dport = PEER_PORT, .set = FRAME_TCP_ACK,
				.with_data = true, .check_seq = true, .seq = c->peer.rcv_nxt };
	struct rec *r;
	ssize_t n;

	n = ns_send(stack, c->sock, data, len, MSG_DONTWAIT);
	cr_assert_eq(n, (ssize_t)len, "ns_send: %zd", n);
	run();
	r = await_frame(match_tcp, &seg, 0, "data segment");
	cr_assert_eq(r->f.p.payload_len, len);
	cr_assert(!memcmp(r->f.p.payload, data, len), "payload differs");
	return r;
}

static bool tcp_ticks_reached(const void *arg)
{
	u32_t t;

	ns_lock(stack);
	t = tcp_ticks;
	ns_unlock(stack);
	return t >= *(const u32_t *)arg;
}

static u32_t read_tcp_ticks(void)
{
	u32_t t;

	ns_lock(stack);
	t = tcp_ticks;
	ns_unlock(stack);
	return t;
}

/* ------------------------------------------------------------------ */
/* TCP retransmission                                                  */
/* ------------------------------------------------------------------ */

/*
 * lwIP 2.1.3's retransmission timer (tcp_slowtmr): pcb->rtime counts slow
 * ticks (500 ms) from the transmission; the segment goes again on the tick
 * where rtime reaches pcb->rto. So the first retransmission comes within one
 * slow period before the RTO: (rto - 500 ms, rto] after the original, the
 * tick's phase deciding where. Each retransmission (outside SYN-SENT) then
 * sets rto = ((sa >> 3) + sv) << tcp_backoff[nrtx], tcp_backoff = { 1, 2,
 * 3, 4, 5, 6, 7, 7, ... }, and resets rtime on that tick, so every later
 * interval is a whole number of slow ticks, exact to the millisecond.
 *
 * Without an RTT sample, sa = 0 and sv = 6 (tcp_alloc), rto = 6 ticks:
 * the first retransmission after (2.5 s, 3 s], then 12 ticks (6 s), 24
 * (12 s), 48 (24 s), ... The handshake here gives no sample: the SYN-ACK
 * leaves before the first slow tick, while tcp_ticks is 0, and lwIP's
 * rttest 0 means "no measurement running" (tcp_output_segment, tcp_receive).
 */
static void retransmissions_back_off_from_initial_rto(const struct frame_path *path)
{
	static const uint64_t backed_off_ms[] = { 12 * SLOW_MS, 24 * SLOW_MS, 48 * SLOW_MS };
	struct conn c;
	struct seg_want retx = { .sport = LISTEN_PORT, .dport = PEER_PORT, .set = FRAME_TCP_ACK,
				 .with_data = true, .check_seq = true };
	struct rec *orig, *prev, *r;
	uint64_t d;
	size_t i;

	establish(&c, path);
	cr_assert_eq(read_tcp_ticks(), 0, "the handshake must precede the first slow tick");
	orig = stack_sends(&c, "never acked");
	retx.seq = orig->f.p.seq;

	r = await_frame(match_tcp, &retx, RTO_INIT_TICKS * SLOW_MS, "first retransmission");
	d = r->ms - orig->ms;
	cr_assert(d > (RTO_INIT_TICKS - 1) * SLOW_MS && d <= RTO_INIT_TICKS * SLOW_MS,
		  "first retransmission %llu ms after the original, expected (2500, 3000]",
		  (unsigned long long)d);
	cr_assert_eq(r->f.p.payload_len, orig->f.p.payload_len);
	cr_assert(!memcmp(r->f.p.payload, orig->f.p.payload, orig->f.p.payload_len));
	for (i = 0; i < sizeof(backed_off_ms) / sizeof(backed_off_ms[0]); i++) {
		prev = r;
		r = await_frame(match_tcp, &retx, backed_off_ms[i], "backed-off retransmission");
		d = r->ms - prev->ms;
		cr_assert_eq(d, backed_off_ms[i], "retransmission %zu came %llu ms after the previous one, expected %llu",
			     i + 2, (unsigned long long)d, (unsigned long long)backed_off_ms[i]);
	}
}

Test(timers, tcp_data_retransmits_at_initial_rto_then_backs_off)
{
	retransmissions_back_off_from_initial_rto(&to4);
}

Test(timers, tcp_data_retransmits_at_initial_rto_then_backs_off_over_ipv6)
{
	retransmissions_back_off_from_initial_rto(&to6);
}

/*
 * With an RTT sample. The stack sends a byte after two slow ticks
 * (tcp_ticks 2, so rttest = 2 and a measurement runs) and the peer ACKs
 * it within the same tick: m = 0, so (tcp_receive, Van Jacobson)
 * sa = 0 + (0 - 0) = 0, sv = 6 + (|0| - (6 >> 2)) = 5, rto = 0 + 5 =
 * 5 ticks. The next segment's first retransmission then comes after
 * (2 s, 2.5 s], the next ones after 5 << 1 = 10 ticks (5 s), 5 << 2 = 20
 * (10 s) and 5 << 3 = 40 (20 s).
 */
Test(timers, tcp_rto_follows_a_measured_rtt)
{
	static const uint64_t backed_off_ms[] = { 10 * SLOW_MS, 20 * SLOW_MS, 40 * SLOW_MS };
	const u32_t two_ticks = 2;
	struct conn c;
	struct seg_want retx = { .sport = LISTEN_PORT, .dport = PEER_PORT, .set = FRAME_TCP_ACK,
				 .with_data = true, .check_seq = true };
	uint8_t buf[FRAME_BUF];
	struct rec *r, *prev;
	uint64_t d;
	size_t i;

	establish(&c, &to4);
	cr_assert(advance_until(tcp_ticks_reached, &two_ticks, 2000), "no slow ticks");
	r = stack_sends(&c, "a");
	cr_assert_eq(tcp_peer_absorb(&c.peer, &r->f.p), 1);
	inject(buf, tcp_peer_ack(&c.peer, buf, sizeof(buf)));

	r = stack_sends(&c, "b");
	retx.seq = r->f.p.seq;
	prev = r;
	r = await_frame(match_tcp, &retx, 5 * SLOW_MS, "first retransmission");
	d = r->ms - prev->ms;
	cr_assert(d > 4 * SLOW_MS && d <= 5 * SLOW_MS,
		  "first retransmission %llu ms after the original, expected (2000, 2500]",
		  (unsigned long long)d);
	for (i = 0; i < sizeof(backed_off_ms) / sizeof(backed_off_ms[0]); i++) {
		prev = r;
		r = await_frame(match_tcp, &retx, backed_off_ms[i], "backed-off retransmission");
		d = r->ms - prev->ms;
		cr_assert_eq(d, backed_off_ms[i], "retransmission %zu came %llu ms after the previous one, expected %llu",
			     i + 2, (unsigned long long)d, (unsigned long long)backed_off_ms[i]);
	}
}

/*
 * The whole schedule to the end. With TCP_MAXRTX 12 (lwipopts.h) the
 * intervals are (2.5 s, 3 s], then 6 << tcp_backoff[n] ticks for
 * n = 0 .. 10: 6, 12, 24, 48, 96, 192 s and 384 s five times (the table
 * stops at 7: 6 << 7 = 768 ticks). After the 12th, nrtx = 12 and the very
 * next slow tick, 500 ms later, removes the pcb ("max DATA retries") and
 * reports ERR_ABRT, which the socket reads as ETIMEDOUT; no RST is sent
 * (pcb_reset stays 0 on that path). Some 38 minutes of protocol time.
 */
Test(timers, tcp_data_retransmission_gives_up_after_tcp_maxrtx)
{
	static const uint8_t backoff[] = { 1, 2, 3, 4, 5, 6, 7, 7, 7, 7, 7, 7, 7 };	/* tcp.c */
	struct conn c;
	struct seg_want retx = { .sport = LISTEN_PORT, .dport = PEER_PORT, .set = FRAME_TCP_ACK,
				 .with_data = true, .check_seq = true };
	struct seg_want rst = { .sport = LISTEN_PORT, .dport = PEER_PORT, .set = FRAME_TCP_RST };
	struct rec *r, *prev;
	size_t start;
	uint64_t d, want, gone;
	char got[8];
	ssize_t n;
	int i;

	establish(&c, &to4);
	start = seen;
	r = stack_sends(&c, "never acked");
	retx.seq = r->f.p.seq;
	prev = r;
	r = await_frame(match_tcp, &retx, 3000, "first retransmission");
	d = r->ms - prev->ms;
	cr_assert(d > 2500 && d <= 3000, "first retransmission after %llu ms", (unsigned long long)d);
	for (i = 0; i < TCP_MAXRTX - 1; i++) {
		want = (uint64_t)(RTO_INIT_TICKS << backoff[i]) * SLOW_MS;
		prev = r;
		r = await_frame(match_tcp, &retx, want, "retransmission");
		d = r->ms - prev->ms;
		cr_assert_eq(d, want, "retransmission %d came %llu ms after the previous one, expected %llu",
			     i + 2, (unsigned long long)d, (unsigned long long)want);
	}
	cr_assert(advance_until(sock_failed, &c.sock, 2 * SLOW_MS), "the connection outlived TCP_MAXRTX");
	gone = now_ms();
	cr_assert_eq(gone - r->ms, SLOW_MS, "given up %llu ms after the last retransmission, expected 500",
		     (unsigned long long)(gone - r->ms));
	cr_assert_eq(count_frames(start, match_tcp, &retx), (size_t)TCP_MAXRTX + 1,
		     "the original and TCP_MAXRTX retransmissions");
	cr_assert_eq(count_frames(start, match_tcp, &rst), 0, "giving up sends no RST");
	n = ns_recv(stack, c.sock, got, sizeof(got), MSG_DONTWAIT);
	cr_assert_eq(n, -ETIMEDOUT, "ns_recv after giving up: %zd", n);
}

/*
 * An unanswered active open. lwIP 2.1.3 does not back the RTO off in
 * SYN-SENT (tcp_slowtmr: "Double retransmission time-out unless we are
 * trying to connect to somebody"), so the SYN repeats every 6 slow ticks:
 * first after (2.5 s, 3 s], then every 3 s exactly - unlike Linux, whose
 * SYN timeouts double. After TCP_SYNMAXRTX (6) retransmissions the next slow
 * tick, 500 ms on, removes the pcb ("max SYN retries reached"; checked
 * before the retransmission timer), without a RST; the connect fails with
 * ETIMEDOUT.
 */
Test(timers, tcp_syn_retransmits_every_initial_rto_then_connect_times_out)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(REMOTE_PORT) };
	struct seg_want syn = { .dport = REMOTE_PORT, .set = FRAME_TCP_SYN, .clear = FRAME_TCP_ACK };
	struct seg_want rst = { .dport = REMOTE_PORT, .set = FRAME_TCP_RST };
	struct rec *r, *prev, *orig;
	uint64_t d, gone;
	size_t start = seen;
	int sock, rc, i;

	to.sin_addr = ip4(PEER_IP4);
	sock = ns_socket(stack, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	cr_assert_geq(sock, 0);
	rc = ns_connect(stack, sock, (struct sockaddr *)&to, sizeof(to));
	cr_assert_eq(rc, -EINPROGRESS, "nonblocking connect: %d", rc);
	run();
	orig = await_frame(match_tcp, &syn, 0, "SYN");
	syn.check_seq = true;
	syn.seq = orig->f.p.seq;
	r = await_frame(match_tcp, &syn, RTO_INIT_TICKS * SLOW_MS, "first SYN retransmission");
	d = r->ms - orig->ms;
	cr_assert(d > (RTO_INIT_TICKS - 1) * SLOW_MS && d <= RTO_INIT_TICKS * SLOW_MS,
		  "first SYN retransmission after %llu ms, expected (2500, 3000]", (unsigned long long)d);
	for (i = 2; i <= TCP_SYNMAXRTX; i++) {
		prev = r;
		r = await_frame(match_tcp, &syn, RTO_INIT_TICKS * SLOW_MS, "SYN retransmission");
		d = r->ms - prev->ms;
		cr_assert_eq(d, RTO_INIT_TICKS * SLOW_MS,
			     "SYN retransmission %d came %llu ms after the previous one, expected 3000 (no backoff)",
			     i, (unsigned long long)d);
	}
	cr_assert(advance_until(sock_failed, &sock, 2 * SLOW_MS), "the connect outlived TCP_SYNMAXRTX");
	gone = now_ms();
	cr_assert_eq(gone - r->ms, SLOW_MS, "connect failed %llu ms after the last SYN, expected 500",
		     (unsigned long long)(gone - r->ms));
	cr_assert_eq(count_frames(start, match_tcp, &syn), (size_t)TCP_SYNMAXRTX + 1);
	cr_assert_eq(count_frames(start, match_tcp, &rst), 0);
	cr_assert_eq(so_error(sock), ETIMEDOUT);
}

/* ------------------------------------------------------------------ */
/* Keepalive                                                           */
/* ------------------------------------------------------------------ */

static void enable_keepalive(int sock)
{
	set_int(sock, SOL_SOCKET, SO_KEEPALIVE, 1);
	set_int(sock, IPPROTO_TCP, TCP_KEEPIDLE, 10);
	set_int(sock, IPPROTO_TCP, TCP_KEEPINTVL, 2);
	set_int(sock, IPPROTO_TCP, TCP_KEEPCNT, 3);
}

/* A keepalive probe: a bare ACK at snd_nxt - 1 (tcp_keepalive: no data). */
static struct seg_want probe_want(const struct conn *c)
{
	struct seg_want w = { .sport = LISTEN_PORT, .dport = PEER_PORT, .set = FRAME_TCP_ACK,
			      .clear = FRAME_TCP_SYN | FRAME_TCP_FIN | FRAME_TCP_RST | FRAME_TCP_PSH,
			      .check_seq = true, .seq = c->peer.rcv_nxt - 1, .check_ack = true,
			      .ack = c->peer.snd_nxt, .without_data = true };

	return w;
}

/*
 * tcp_slowtmr, with keep_idle 10000, keep_intvl 2000, keep_cnt 3 ms and
 * pcb->tmr = tcp_ticks when the last segment arrived: probe n (n = 0, 1,
 * 2) goes out once tcp_ticks - tmr > (10000 + n * 2000) / 500 = 20 + 4n,
 * i.e. on slow tick 21 + 4n after the last segment: the first within
 * (10 s, 10.5 s] of it, then every 4 ticks = 2 s exactly. The abort test
 * comes first and fires once tcp_ticks - tmr > (10000 + 3 * 2000) / 500 =
 * 32, on tick 33: 2 s after the third probe, with a RST at snd_nxt (and
 * ack rcv_nxt) and ERR_ABRT, which the socket reads as ETIMEDOUT.
 */
Test(timers, tcp_keepalive_probes_idle_connection_then_resets_it)
{
	struct conn c;
	struct seg_want probe, rst = { .sport = LISTEN_PORT, .dport = PEER_PORT, .set = FRAME_TCP_RST };
	struct rec *p[3], *reset;
	uint64_t last, d;
	size_t start;
	char got[8];
	ssize_t n;
	int i;

	establish(&c, &to4);
	last = now_ms();
	enable_keepalive(c.sock);
	probe = probe_want(&c);
	start = seen;
	p[0] = await_frame(match_tcp, &probe, 10 * 1000 + SLOW_MS, "first keepalive probe");
	d = p[0]->ms - last;
	cr_assert(d > 10000 && d <= 10000 + SLOW_MS, "first probe %llu ms after the last segment, expected (10000, 10500]",
		  (unsigned long long)d);
	for (i = 1; i < 3; i++) {
		p[i] = await_frame(match_tcp, &probe, 2000, "keepalive probe");
		d = p[i]->ms - p[i - 1]->ms;
		cr_assert_eq(d, 2000, "probe %d came %llu ms after the previous one, expected 2000", i + 1,
			     (unsigned long long)d);
	}
	reset = await_frame(match_tcp, &rst, 2000, "RST after TCP_KEEPCNT unanswered probes");
	d = reset->ms - p[2]->ms;
	cr_assert_eq(d, 2000, "RST %llu ms after the third probe, expected 2000", (unsigned long long)d);
	cr_assert_eq(reset->f.p.tcp_flags, FRAME_TCP_RST | FRAME_TCP_ACK, "flags 0x%02x", reset->f.p.tcp_flags);
	cr_assert_eq(reset->f.p.seq, c.peer.rcv_nxt, "RST seq %u, snd_nxt is %u", reset->f.p.seq, c.peer.rcv_nxt);
	cr_assert_eq(reset->f.p.ack, c.peer.snd_nxt, "RST ack %u", reset->f.p.ack);
	cr_assert_eq(count_frames(start, match_tcp, &probe), 3, "exactly TCP_KEEPCNT probes");
	n = ns_recv(stack, c.sock, got, sizeof(got), MSG_DONTWAIT);
	cr_assert_eq(n, -ETIMEDOUT, "ns_recv after the keepalive reset: %zd", n);
	n = ns_recv(stack, c.sock, got, sizeof(got), MSG_DONTWAIT);
	cr_assert_eq(n, 0, "ns_recv once the error was read: %zd", n);
}

/*
 * The peer answers each probe with an ACK: the segment sets pcb->tmr to
 * the current tick and keep_cnt_sent to 0 (tcp_process), so the next probe
 * is again a full idle period, (10 s, 10.5 s], away and the connection
 * outlives the 16.5 s an unanswered one gets.
 */
Test(timers, tcp_keepalive_answered_keeps_connection_alive)
{
	struct conn c;
	struct seg_want probe, rst = { .sport = LISTEN_PORT, .dport = PEER_PORT, .set = FRAME_TCP_RST };
	uint8_t buf[FRAME_BUF];
	struct pollfd pfd;
	struct rec *p, *r;
	uint64_t last, d;
	size_t start;
	char got[8];
	ssize_t n;
	int i;

	establish(&c, &to4);
	enable_keepalive(c.sock);
	last = now_ms();
	probe = probe_want(&c);
	start = seen;
	for (i = 0; i < 4; i++) {
		p = await_frame(match_tcp, &probe, 10 * 1000 + SLOW_MS, "keepalive probe");
		d = p->ms - last;
		cr_assert(d > 10000 && d <= 10000 + SLOW_MS,
			  "probe %d came %llu ms after the last segment, expected (10000, 10500]", i + 1,
			  (unsigned long long)d);
		inject(buf, tcp_peer_ack(&c.peer, buf, sizeof(buf)));
		last = now_ms();
	}
	cr_assert_gt(now_ms() - c.syn_ms, 40000);
	cr_assert_eq(count_frames(start, match_tcp, &rst), 0, "reset although every probe was answered");
	pfd = (struct pollfd){ .fd = c.sock, .events = POLLIN | POLLOUT };
	cr_assert_eq(ns_poll(stack, &pfd, 1, 0), 1);
	cr_assert_eq(pfd.revents, POLLOUT, "revents 0x%x", pfd.revents);
	n = ns_recv(stack, c.sock, got, sizeof(got), MSG_DONTWAIT);
	cr_assert_eq(n, -EAGAIN, "ns_recv: %zd", n);
	r = stack_sends(&c, "alive");
	cr_assert_eq(tcp_peer_absorb(&c.peer, &r->f.p), 5);
}

/* ------------------------------------------------------------------ */
/* TIME-WAIT                                                           */
/* ------------------------------------------------------------------ */

static bool time_wait_empty(const void *arg)
{
	bool empty;

	(void)arg;
	ns_lock(stack);
	empty = tcp_tw_pcbs == NULL;
	ns_unlock(stack);
	return empty;
}

/* The stack closes first: its FIN, the peer's ACK and FIN, the stack's
 * ACK, all at the current instant. The pcb is then in TIME-WAIT. */
static void active_close(struct conn *c)
{
	struct seg_want fin = { .sport = LISTEN_PORT, .dport = PEER_PORT,
				.set = FRAME_TCP_FIN | FRAME_TCP_ACK, .check_seq = true,
				.seq = c->peer.rcv_nxt };
	struct seg_want ack = { .sport = LISTEN_PORT, .dport = PEER_PORT, .set = FRAME_TCP_ACK,
				.clear = FRAME_TCP_SYN | FRAME_TCP_FIN | FRAME_TCP_RST, .check_ack = true };
	uint8_t buf[FRAME_BUF];
	struct rec *r;

	cr_assert_eq(ns_close(stack, c->sock), 0);
	run();
	r = await_frame(match_tcp, &fin, 0, "the stack's FIN");
	cr_assert_eq(tcp_peer_absorb(&c->peer, &r->f.p), 1);
	inject(buf, tcp_peer_ack(&c->peer, buf, sizeof(buf)));
	inject(buf, tcp_peer_fin(&c->peer, buf, sizeof(buf)));
	ack.ack = c->peer.snd_nxt;
	r = await_frame(match_tcp, &ack, 0, "ACK of the peer's FIN");
	cr_assert_eq(r->f.p.seq, c->peer.rcv_nxt);
	cr_assert(!time_wait_empty(NULL), "no TIME-WAIT pcb after the active close");
}

/* A bare ACK from the old connection's peer: TIME-WAIT ignores it
 * (tcp_timewait_input: no SYN, no FIN, no data - no answer, and only a FIN
 * restarts the timer); a listener answers it with a RST (tcp_listen_input). */
static void probe_time_wait(struct conn *c)
{
	uint8_t buf[FRAME_BUF];

	inject(buf, tcp_peer_ack(&c->peer, buf, sizeof(buf)));
}

/*
 * TIME-WAIT lasts while tcp_ticks - pcb->tmr <= 2 * TCP_MSL / 500 = 240
 * (tcp_slowtmr), so the pcb goes on slow tick 241 after pcb->tmr was last
 * set: within (120 s, 120.5 s] of it. Here the stack closes the instant the
 * handshake's ACK arrives and the peer's FIN follows at once, so that is
 * 2 MSL after the FIN as well.
 *
 * Meanwhile (tcp_timewait_input): a SYN for the same 4-tuple whose sequence
 * number lies in the old receive window is answered with a RST (seq = the
 * SYN's ack field, 0; ack = ISN + 1) and no connection is made - unlike
 * Linux, which would reuse the pair for a higher ISN; a SYN below the
 * window gets an ACK of the old connection (seq snd_nxt, ack rcv_nxt); a
 * bare ACK is ignored. Once the pcb is gone the listener on the port takes
 * over: the bare ACK draws a RST and the same SYN a SYN-ACK.
 */
Test(timers, tcp_time_wait_expires_after_2msl_and_blocks_the_4_tuple_until_then)
{
	struct conn c;
	struct seg_want any_from_port = { .sport = LISTEN_PORT, .dport = PEER_PORT };
	struct seg_want rst = { .sport = LISTEN_PORT, .dport = PEER_PORT, .set = FRAME_TCP_RST };
	struct seg_want synack = { .sport = LISTEN_PORT, .dport = PEER_PORT,
				   .set = FRAME_TCP_SYN | FRAME_TCP_ACK };
	uint8_t buf[FRAME_BUF];
	struct tcp_peer fresh, old;
	uint32_t new_isn;
	uint64_t fin, t, gone;
	struct rec *r;
	size_t mark;
	int rc;

	establish(&c, &to4);
	active_close(&c);
	fin = now_ms();
	new_isn = c.peer.snd_nxt + 100000;

	/* 1 s in: a SYN in the window is refused with a RST. */
	advance_to(fin + 1000);
	tcp_peer_init(&fresh, &to4, PEER_PORT, LISTEN_PORT, new_isn);
	inject(buf, tcp_peer_syn(&fresh, buf, sizeof(buf), syn_opts, sizeof(syn_opts)));
	r = await_frame(match_tcp, &any_from_port, 0, "answer to a SYN during TIME-WAIT");
	cr_assert_eq(r->f.p.tcp_flags, FRAME_TCP_RST | FRAME_TCP_ACK, "flags 0x%02x", r->f.p.tcp_flags);
	cr_assert_eq(r->f.p.seq, 0, "RST seq %u", r->f.p.seq);
	cr_assert_eq(r->f.p.ack, new_isn + 1, "RST ack %u", r->f.p.ack);
	rc = ns_accept(stack, c.listener, NULL, NULL, SOCK_NONBLOCK);
	cr_assert_eq(rc, -EAGAIN, "a connection was made during TIME-WAIT: %d", rc);

	/* 2 s in: an old SYN, below the window, gets the old connection's ACK. */
	advance_to(fin + 2000);
	tcp_peer_init(&old, &to4, PEER_PORT, LISTEN_PORT, c.peer.snd_nxt - 100000);
	inject(buf, tcp_peer_syn(&old, buf, sizeof(buf), syn_opts, sizeof(syn_opts)));
	r = await_frame(match_tcp, &any_from_port, 0, "answer to an old SYN during TIME-WAIT");
	cr_assert_eq(r->f.p.tcp_flags, FRAME_TCP_ACK, "flags 0x%02x", r->f.p.tcp_flags);
	cr_assert_eq(r->f.p.seq, c.peer.rcv_nxt, "seq %u", r->f.p.seq);
	cr_assert_eq(r->f.p.ack, c.peer.snd_nxt, "ack %u", r->f.p.ack);

	/* Bare ACKs every second up to exactly 2 MSL after the FIN: ignored. */
	mark = seen;
	for (t = fin + 3000; t <= fin + 2 * TCP_MSL; t += 1000) {
		advance_to(t);
		probe_time_wait(&c);
	}
	cr_assert_eq(count_frames(mark, match_tcp, &any_from_port), 0,
		     "TIME-WAIT answered a bare ACK, or ended before 2 MSL");
	cr_assert(!time_wait_empty(NULL), "TIME-WAIT ended before 2 MSL");

	cr_assert(advance_until(time_wait_empty, NULL, SLOW_MS), "TIME-WAIT outlived 2 MSL + 500 ms");
	gone = now_ms();
	cr_assert(gone - fin > 2 * TCP_MSL && gone - fin <= 2 * TCP_MSL + SLOW_MS,
		  "TIME-WAIT ended %llu ms after the FIN, expected (120000, 120500]",
		  (unsigned long long)(gone - fin));

	probe_time_wait(&c);
	r = await_frame(match_tcp, &rst, 0, "the listener's RST to a bare ACK");
	cr_assert_eq(r->f.p.seq, c.peer.rcv_nxt, "RST seq %u (the ACK's ack field)", r->f.p.seq);

	tcp_peer_init(&fresh, &to4, PEER_PORT, LISTEN_PORT, new_isn);
	inject(buf, tcp_peer_syn(&fresh, buf, sizeof(buf), syn_opts, sizeof(syn_opts)));
	r = await_frame(match_tcp, &synack, 0, "SYN-ACK once TIME-WAIT is over");
	cr_assert_eq(r->f.p.ack, new_isn + 1);
	cr_assert_eq(tcp_peer_absorb(&fresh, &r->f.p), 1);
	inject(buf, tcp_peer_ack(&fresh, buf, sizeof(buf)));
	rc = ns_accept(stack, c.listener, NULL, NULL, SOCK_NONBLOCK);
	cr_assert_geq(rc, 0, "ns_accept of the new connection: %d", rc);
}

/*
 * RFC 9293 (3.10.7.4, and RFC 793 before it): TIME-WAIT lasts 2 MSL from
 * entering it. lwIP 2.1.3 counts it from pcb->tmr, but tcp_process stops
 * updating pcb->tmr once the application has closed (TF_RXCLOSED, set by
 * tcp_close()), so the count starts at the last segment received BEFORE the
 * close: a connection idle for 60 s that the stack then closes stays in
 * TIME-WAIT only ~60 s after the peer's FIN, and one idle for 2 MSL or more
 * leaves TIME-WAIT on the next slow tick - early enough for an old
 * duplicate to reach a new incarnation of the 4-tuple. This test asserts
 * the RFC's duration and fails on lwIP 2.1.3 as netstack builds it.
 */
Test(timers, regression_time_wait_counts_from_last_segment_before_close)
{
	struct conn c;
	uint64_t fin, gone;

	establish(&c, &to4);
	advance_to(now_ms() + 60 * 1000);
	active_close(&c);
	fin = now_ms();
	cr_assert(advance_until(time_wait_empty, NULL, 2 * TCP_MSL + SLOW_MS), "TIME-WAIT never ended");
	gone = now_ms();
	cr_assert(gone - fin > 2 * TCP_MSL,
		  "TIME-WAIT ended %llu ms after the peer's FIN, before 2 MSL (%lu ms): lwIP counts it from "
		  "the last segment received before the close, %llu ms before the FIN",
		  (unsigned long long)(gone - fin), (unsigned long)(2 * TCP_MSL),
		  (unsigned long long)(fin - c.syn_ms));
}

/* ------------------------------------------------------------------ */
/* ARP aging                                                           */
/* ------------------------------------------------------------------ */

static bool arp_has_peer(const void *arg)
{
	struct eth_addr *eth;
	const ip4_addr_t *ip;
	ip4_addr_t peer;
	struct ns_nic *nic;
	ssize_t i;

	(void)arg;
	ip4_addr_set_u32(&peer, to4.src.v4.s_addr);
	ns_lock(stack);
	nic = ns_nic_find(stack, nic_id);
	cr_assert_not_null(nic);
	i = etharp_find_addr(&nic->netif, &peer, &eth, &ip);
	ns_unlock(stack);
	if (i >= 0)
		cr_assert(!memcmp(eth->addr, peer_mac, FRAME_MAC_LEN), "the ARP entry holds another MAC");
	return i >= 0;
}

static bool arp_lacks_peer(const void *arg)
{
	return !arp_has_peer(arg);
}

static int udp_socket(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(UDP_LOCAL_PORT) };
	int sock = ns_socket(stack, AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);

	cr_assert_geq(sock, 0);
	cr_assert_eq(ns_bind(stack, sock, (struct sockaddr *)&a, sizeof(a)), 0);
	return sock;
}

static void udp_to_peer(int sock)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(UDP_PEER_PORT) };
	ssize_t n;

	to.sin_addr = ip4(PEER_IP4);
	n = ns_sendto(stack, sock, "x", 1, 0, (struct sockaddr *)&to, sizeof(to));
	cr_assert_eq(n, 1, "ns_sendto: %zd", n);
	run();
}

/* A datagram to the peer that must leave at once, to the cached MAC. */
static void udp_goes_straight(int sock)
{
	struct rec *r;

	udp_to_peer(sock);
	r = await_frame(match_udp_to_peer, NULL, 0, "datagram to the peer");
	cr_assert(!memcmp(r->f.p.dst_mac, peer_mac, FRAME_MAC_LEN), "datagram not sent to the peer's MAC");
}

/* The first datagram: a broadcast ARP request, the datagram held until the
 * reply the test sends at once. Return: when the entry was learnt. */
static uint64_t learn_peer_mac(int sock)
{
	struct rec *r;
	size_t from;

	udp_to_peer(sock);
	r = await_frame(match_arp_request_for_peer, NULL, 0, "ARP request for the peer");
	cr_assert(!memcmp(r->f.p.dst_mac, bcast_mac, FRAME_MAC_LEN), "first ARP request not broadcast");
	from = seen;
	cr_assert_null(find_frame(&from, match_udp_to_peer, NULL), "datagram sent before the peer's MAC was known");
	cr_assert(!arp_has_peer(NULL));
	cr_assert(answer_neighbour_query(&r->f.p));
	run();
	r = await_frame(match_udp_to_peer, NULL, 0, "the held datagram");
	cr_assert(!memcmp(r->f.p.dst_mac, peer_mac, FRAME_MAC_LEN));
	cr_assert(arp_has_peer(NULL));
	return now_ms();
}

/*
 * etharp.c: an entry's ctime is 0 when the reply is learnt and grows by one
 * on every etharp_tmr() (ARP_TMR_INTERVAL, 1 s); sending through the entry
 * does not refresh it, and a send re-requests only once ctime reaches
 * ARP_AGE_REREQUEST_USED_UNICAST (ARP_MAXAGE - 30 = 270). So datagrams up
 * to 269 s after learning go straight to the cached MAC with no ARP at
 * all, and the entry is freed on the tick where ctime reaches ARP_MAXAGE
 * (300): within (299 s, 300 s] of learning. The next datagram is then held
 * behind a fresh broadcast request.
 */
Test(timers, arp_entry_is_used_without_requests_then_expires_after_arp_maxage)
{
	static const unsigned uses_s[] = { 30, 60, 90, 120, 150, 180, 210, 240, 269 };
	uint64_t learnt, gone;
	struct rec *r;
	size_t mark, from, i;
	int sock;

	auto_answer = false;
	advance_to(START_MS + 333);	/* off the ARP timer's phase */
	sock = udp_socket();
	learnt = learn_peer_mac(sock);
	mark = seen;
	for (i = 0; i < sizeof(uses_s) / sizeof(uses_s[0]); i++) {
		advance_to(learnt + uses_s[i] * 1000ull);
		udp_goes_straight(sock);
	}
	cr_assert_eq(count_frames(mark, match_arp_request_for_peer, NULL), 0,
		     "ARP request for the peer within %u s of learning its MAC", uses_s[i - 1]);

	cr_assert(advance_until(arp_lacks_peer, NULL, ARP_MAXAGE * 1000ull), "the ARP entry never expired");
	gone = now_ms();
	cr_assert(gone - learnt > (ARP_MAXAGE - 1) * 1000ull && gone - learnt <= ARP_MAXAGE * 1000ull,
		  "the ARP entry expired %llu ms after it was learnt, expected (299000, 300000]",
		  (unsigned long long)(gone - learnt));
	cr_assert_eq(count_frames(mark, match_arp_request_for_peer, NULL), 0, "ARP request for an unused entry");

	udp_to_peer(sock);
	r = await_frame(match_arp_request_for_peer, NULL, 0, "a fresh ARP request after the entry expired");
	cr_assert(!memcmp(r->f.p.dst_mac, bcast_mac, FRAME_MAC_LEN), "request after expiry not broadcast");
	from = seen;
	cr_assert_null(find_frame(&from, match_udp_to_peer, NULL), "datagram sent to an expired MAC");
	cr_assert(answer_neighbour_query(&r->f.p));
	run();
	r = await_frame(match_udp_to_peer, NULL, 0, "the datagram held for the new reply");
	cr_assert(!memcmp(r->f.p.dst_mac, peer_mac, FRAME_MAC_LEN));
}

/*
 * etharp_output_to_arp_index(): an entry used for sending while STABLE is
 * re-requested first by unicast to the cached MAC once ctime >=
 * ARP_MAXAGE - 30 (270 s), then by broadcast once ctime >= ARP_MAXAGE - 15
 * (285 s); each request moves it to REREQUESTING_1, and two etharp_tmr()
 * ticks bring it back to STABLE, so uses in between send no request (no
 * flooding). A reply resets ctime to 0: the refreshed entry is still there
 * past the old expiry and lasts (299 s, 300 s] from the reply.
 */
Test(timers, arp_entry_in_use_is_rerequested_before_expiry_and_a_reply_refreshes_it)
{
	struct rec *r;
	uint64_t learnt, refreshed, gone;
	size_t mark, from;
	int sock;

	auto_answer = false;
	advance_to(START_MS + 777);	/* off the ARP timer's phase */
	sock = udp_socket();
	learnt = learn_peer_mac(sock);

	/* 269 s: ctime <= 269, no request. */
	advance_to(learnt + 269 * 1000);
	mark = seen;
	udp_goes_straight(sock);
	cr_assert_eq(count_frames(mark, match_arp_request_for_peer, NULL), 0, "re-request before ctime 270");

	/* 271 s: ctime >= 270, a unicast request to the cached MAC, unanswered. */
	advance_to(learnt + 271 * 1000);
	mark = seen;
	udp_to_peer(sock);
	from = mark;
	r = find_frame(&from, match_arp_request_for_peer, NULL);
	cr_assert_not_null(r, "no re-request at ctime >= ARP_MAXAGE - 30");
	cr_assert(!memcmp(r->f.p.dst_mac, peer_mac, FRAME_MAC_LEN), "the first re-request is not unicast");
	r = await_frame(match_udp_to_peer, NULL, 0, "datagram beside the re-request");
	cr_assert(!memcmp(r->f.p.dst_mac, peer_mac, FRAME_MAC_LEN), "datagram not sent to the cached MAC");

	/* 272 s: at most one tick later the entry is still re-requesting. */
	advance_to(learnt + 272 * 1000);
	mark = seen;
	udp_goes_straight(sock);
	cr_assert_eq(count_frames(mark, match_arp_request_for_peer, NULL), 0,
		     "a second re-request within two ARP ticks");

	/* 290 s: ctime >= 285, a broadcast request; the peer answers. */
	advance_to(learnt + 290 * 1000);
	mark = seen;
	udp_to_peer(sock);
	from = mark;
	r = find_frame(&from, match_arp_request_for_peer, NULL);
	cr_assert_not_null(r, "no re-request at ctime >= ARP_MAXAGE - 15");
	cr_assert(!memcmp(r->f.p.dst_mac, bcast_mac, FRAME_MAC_LEN), "the late re-request is not broadcast");
	cr_assert(answer_neighbour_query(&r->f.p));
	run();
	refreshed = now_ms();
	r = await_frame(match_udp_to_peer, NULL, 0, "datagram beside the broadcast re-request");
	cr_assert(!memcmp(r->f.p.dst_mac, peer_mac, FRAME_MAC_LEN));

	/* 301 s: past the old expiry, the refreshed entry serves alone. */
	advance_to(learnt + 301 * 1000);
	cr_assert(arp_has_peer(NULL), "the entry expired although a reply refreshed it");
	mark = seen;
	udp_goes_straight(sock);
	cr_assert_eq(count_frames(mark, match_arp_request_for_peer, NULL), 0, "re-request of a fresh entry");

	cr_assert(advance_until(arp_lacks_peer, NULL, ARP_MAXAGE * 1000ull), "the refreshed entry never expired");
	gone = now_ms();
	cr_assert(gone - refreshed > (ARP_MAXAGE - 1) * 1000ull && gone - refreshed <= ARP_MAXAGE * 1000ull,
		  "the refreshed entry expired %llu ms after the reply, expected (299000, 300000]",
		  (unsigned long long)(gone - refreshed));
}

/* ------------------------------------------------------------------ */
/* The wheel                                                           */
/* ------------------------------------------------------------------ */

/* The wakeup the dispatcher would sleep until for the cyclic timers due
 * every @period_ms from @origin_ms: the k-th due time coalesced. */
static uint64_t grid_wakeup(uint64_t origin_ms, uint64_t period_ms, uint64_t k)
{
	return tw_wakeup_time((origin_ms + k * period_ms) * NS_PER_MS);
}

/* Sleep as the dispatcher would: to the next wakeup, then one round. */
static uint64_t dispatcher_round(void)
{
	uint64_t w = wakeup_ns();

	cr_assert_neq(w, UINT64_MAX, "no timer pending at all");
	cr_assert_gt(w, fake_ns, "the wheel asks for a wakeup in the past");
	fake_ns = w;
	run();
	return w;
}

/*
 * With nothing but listeners, lwIP's cyclic timers are IP and IPv6
 * reassembly, ARP and ND (1 s each) and MLD (MLD6_TMR_INTERVAL, 100 ms),
 * all armed at lwip_init() (START_MS) and re-armed at due + period; the
 * TCP timer runs only with active or TIME-WAIT pcbs. The dispatcher sleeps
 * until tcpip_timers_next_ns(). So over 10 s the wakeups must include every
 * point of the 100 ms grid from the start, coalesced up to the 8 ms wakeup
 * grid (tw_wakeup_time) - timers never late - and nothing else: no two
 * wakeups less than 100 ms rounded down to that grid (96 ms) apart, ten a
 * second.
 */
Test(timers, idle_stack_never_wakes_sooner_than_the_mld_period)
{
	const uint64_t min_gap = MLD6_TMR_INTERVAL * NS_PER_MS / TW_WAKEUP_SLACK_NS * TW_WAKEUP_SLACK_NS;
	const uint64_t end = (START_MS + 100 * MLD6_TMR_INTERVAL) * NS_PER_MS;
	uint64_t wakes[2048], grid, min_seen = UINT64_MAX;
	char list[1024] = "";
	size_t n = 0, i, j, used = 0;
	int ms;

	tcp_listener(AF_INET, LISTEN_PORT);
	tcp_listener(AF_INET6, LISTEN_PORT + 1);
	while (fake_ns < end) {
		uint64_t w = wakeup_ns();

		ns_lock(stack);
		ms = tcpip_timers_next_ms();
		ns_unlock(stack);
		cr_assert_eq((uint64_t)ms, (w - fake_ns + NS_PER_MS - 1) / NS_PER_MS, "next_ms %d", ms);
		cr_assert_lt(n, sizeof(wakes) / sizeof(wakes[0]));
		wakes[n++] = dispatcher_round();
	}
	/* Every MLD grid point is a wakeup: no timer waits past its coalesced due time. */
	for (j = 1, i = 0; j <= 100; j++) {
		grid = grid_wakeup(START_MS, MLD6_TMR_INTERVAL, j);
		while (i < n && wakes[i] < grid)
			i++;
		cr_assert(i < n && wakes[i] == grid, "no wakeup at the MLD grid point %llu ms after start",
			  (unsigned long long)(grid / NS_PER_MS - START_MS));
	}
	for (i = 0; i < n; i++) {
		uint64_t gap = wakes[i] - (i ? wakes[i - 1] : START_MS * NS_PER_MS);

		if (gap < min_seen)
			min_seen = gap;
		if (i < 24 && used < sizeof(list))
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%llu ",
						 (unsigned long long)(wakes[i] / NS_PER_MS - START_MS));
	}
	cr_assert(n == 100 && min_seen >= min_gap,
		  "%zu wakeups in 10 s idle (100 expected), the closest %llu us apart (at least %llu expected); "
		  "the first, in ms after start: %s",
		  n, (unsigned long long)(min_seen / 1000), (unsigned long long)(min_gap / 1000), list);
}

/*
 * A connection starts the TCP timer: lwIP asks for it when the SYN makes
 * the first active pcb, and tcp_tmr() runs 250 ms later and every 250 ms
 * after, tcp_slowtmr() on every other run (tcp_ticks counts those): 4 in
 * 2 s. Once the last pcb is gone (the peer's RST) the timer runs at most
 * once more and is not re-armed (timers.c: tcp_busy()), so tcp_ticks stops.
 */
Test(timers, tcp_timer_runs_only_while_a_connection_exists)
{
	uint8_t buf[FRAME_BUF];
	struct conn c;
	u32_t ticks;

	establish(&c, &to4);
	ticks = read_tcp_ticks();
	advance_to(c.syn_ms + 2000);
	cr_assert_eq(read_tcp_ticks() - ticks, 4, "%u slow ticks in 2 s", read_tcp_ticks() - ticks);

	inject(buf, tcp_peer_rst(&c.peer, buf, sizeof(buf)));
	cr_assert(sock_failed(&c.sock));
	ticks = read_tcp_ticks();
	advance_to(now_ms() + 2 * TCP_TMR_INTERVAL);
	cr_assert_leq(read_tcp_ticks() - ticks, 1, "the slow timer ran %u times after the last pcb went",
		      read_tcp_ticks() - ticks);
	ticks = read_tcp_ticks();
	advance_to(now_ms() + 60 * 1000);
	cr_assert_eq(read_tcp_ticks(), ticks, "the TCP timer still runs with no pcb");
}

/*
 * No drift over 1,000 periods of the TCP timer, with late wakeups. The
 * fast timer (every tcp_tmr(), 250 ms) sends the delayed ACK of a lone
 * in-order segment (tcp_receive sets TF_ACK_DELAY; tcp_fasttmr sends it).
 * The timer's k-th run is due at D_k = SYN + 250 k ms. In each period the
 * peer sends a segment at D_k - 20 ms; the stack is run at D_k - 1 ms (no
 * ACK yet: never early) and then only at D_k + late_k, late_k varying from
 * 0 to 199 ms as a late dispatcher's would: the ACK must come exactly then,
 * for every k up to 1,000. A timer re-armed at "now + 250 ms" instead of
 * "due + 250 ms" would slip by the lateness each period and miss.
 */
Test(timers, tcp_timer_does_not_drift_over_1000_periods_of_late_wakeups)
{
	struct conn c;
	struct seg_want ack = { .sport = LISTEN_PORT, .dport = PEER_PORT, .set = FRAME_TCP_ACK,
				.clear = FRAME_TCP_SYN | FRAME_TCP_FIN | FRAME_TCP_RST, .without_data = true,
				.check_ack = true };
	uint8_t buf[FRAME_BUF];
	uint64_t k, due, late;
	size_t mark;
	struct rec *r;

	advance_to(START_MS + 7);
	establish(&c, &to4);
	for (k = 1; k <= 1000; k++) {
		due = c.syn_ms + k * TCP_TMR_INTERVAL;
		late = (k * 37) % 200;
		jump_to(due - 20);
		inject(buf, tcp_peer_data(&c.peer, buf, sizeof(buf), "payload", 7));
		ack.ack = c.peer.snd_nxt;
		mark = seen;
		jump_to(due - 1);
		cr_assert_eq(count_frames(mark, match_tcp, &ack), 0,
			     "period %llu: ACK before the TCP timer was due", (unsigned long long)k);
		jump_to(due + late);
		r = await_frame(match_tcp, &ack, 0, "delayed ACK");
		cr_assert_eq(r->ms, due + late, "period %llu: ACK at %llu ms, the timer was due at %llu + %llu",
			     (unsigned long long)k, (unsigned long long)(r->ms - c.syn_ms),
			     (unsigned long long)(due - c.syn_ms), (unsigned long long)late);
		cr_assert_eq(r->f.p.seq, c.peer.rcv_nxt);
	}
	cr_assert_eq(now_ms() - c.syn_ms, 1000 * TCP_TMR_INTERVAL + (1000 * 37) % 200);
}
