/* SPDX-License-Identifier: MIT */
/*
 * fuzz_frame.c - libFuzzer target for everything a peer can send: Ethernet
 * frames (ARP, IPv4, IPv6 with extension headers and fragments, ICMP,
 * ICMPv6 with neighbour discovery and MLD, TCP, UDP) into a whole stack over
 * the in-memory channel endpoint, without a dispatcher thread, under a fake
 * clock that only inputs move.
 *
 * The process holds one stack (lwIP is global), set up once: a NIC with
 * 198.51.100.2/24 and fd42:5::2/64, a dual-stack TCP listener on port 80, a
 * dual-stack UDP socket on port 53, and one established connection per
 * family from the peer (198.51.100.1 and fd42:5::1, ports 40000 and 40001),
 * opened through the channel with crafted frames and each holding unacked
 * data the stack sent, so retransmission, SACK and window code is in reach.
 * A second dual-stack listener (port 8080, backlog 2) is kept full of
 * half-open connections from the peer (ports 50000 and 50001), and one
 * more SYN (port 50002) has had a cookie, so the SYN cookies
 * (tcpip/syncookie.c) answer SYNs to it and check the ACKs that follow.
 * Before every input the harness puts that state back: it reads what the
 * sockets received, accepts and closes what the fuzzer connected, aborts
 * every other connection and TIME-WAIT, and re-opens a connection the
 * previous input killed. Inputs then see the same stack, up to its
 * sequence numbers, caches and reassembly queues.
 *
 * An input is a sequence of records, each
 *
 *   ctl (1 byte) | length (2 bytes, big-endian) | frame (length bytes)
 *
 * ctl bit 0 (FUZZ_REBASE): a TCP segment's sequence and acknowledgement
 * numbers are offsets from what the connection with those ports expects
 * (rcv_nxt and snd_nxt), so mutations land in the window; a segment to
 * the cookie listener's port with ACK but not SYN or RST and no
 * connection on its ports gets a cookie instead: its sequence number is
 * taken as the peer's ISN + 1, and its acknowledgement number's low byte
 * as the cookie's data and bits 8-9 as its age in clock ticks (0 and 1
 * valid), so the ACK carries the cookie + 1 a SYN would have had;
 * bit 1 (FUZZ_CSUM): the IPv4 header checksum and the TCP, UDP, ICMP or
 * ICMPv6 checksum are recomputed, so mutations get past them;
 * bit 2 (FUZZ_BATCH): the stack does not run before the next frame, which
 * then arrives in the same receive batch;
 * bit 3 (FUZZ_APP_SHUT): then the application shuts down the sending side
 * of the connection of the frame's IP version (IPv4 unless the frame is
 * IPv6), so the stack's own FIN and the closing states are in reach;
 * bits 4-7: after this frame the clock moves by advance_ms[] of them, the
 * stack running every timer due on the way. A short tail is ignored.
 *
 * Every frame the stack sends must parse with correct checksums
 * (tests/unit/frames.c): a malformed answer to a malformed frame is a bug
 * found, as a crash, an lwIP assertion or a sanitizer report is.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "frames.h"
#include "fuzz.h"
#include "repair.h"
#include "internal.h"
#include "netstack.h"
#include "tcpip.h"
#include "lwip/ip4_frag.h"
#include "lwip/ip6_frag.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/sys.h"
#include "syncookie.h"

#define NS_PER_MS 1000000ull
#define START_NS (1000000ull * NS_PER_MS)	/* the fake clock starts at 1000 s */

#define NIC_IP4 "198.51.100.2"
#define PEER_IP4 "198.51.100.1"
#define NIC_IP6 "fd42:5::2"
#define PEER_IP6 "fd42:5::1"
#define LISTEN_PORT 80
#define COOKIE_PORT 8080	/* the listener kept full of half-open connections */
#define COOKIE_BACKLOG 2
#define HALF_OPEN_PORT 50000	/* the peer's half-open connections, then the cookie SYN */
#define UDP_PORT 53
#define PEER_ISN 1000000u
#define INFLIGHT 3000		/* bytes the stack keeps unacked on each connection */

#define FUZZ_REBASE 0x01u
#define FUZZ_CSUM 0x02u
#define FUZZ_BATCH 0x04u
#define FUZZ_APP_SHUT 0x08u
#define FUZZ_REC_HDR 3u


static const unsigned advance_ms[16] = {
	0, 1, 10, 50, 100, 200, 250, 500, 1000, 2000, 3000, 5000, 10000, 30000, 60000, 120000,
};

static const uint8_t nic_mac[FRAME_MAC_LEN] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x02 };
static const uint8_t peer_mac[FRAME_MAC_LEN] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01 };

/* A Linux-like SYN's options: MSS 1460, SACK permitted, timestamps, NOP,
 * window scale 7. */
static const uint8_t syn_opts[] = {
	2, 4, 0x05, 0xb4,
	4, 2,
	8, 10, 0, 0, 0x30, 0x39, 0, 0, 0, 0,
	1,
	3, 3, 7,
};

struct conn {
	const struct frame_path *path;
	uint16_t port;		/* the peer's */
	struct tcp_peer peer;
	int sock;		/* -1 while not established */
};

static uint64_t fake_ns = START_NS;
static bool trace;		/* FUZZ_FRAME_TRACE set: print what the stack sends */
static struct ns_stack *stack;
static struct ns_endpoint *chan;
static struct frame_path to4, to6;
static int listener = -1, udp = -1, cookie_listener = -1;
static struct conn conns[2] = {
	{ .path = &to4, .port = 40000, .sock = -1 },
	{ .path = &to6, .port = 40001, .sock = -1 },
};
#define NCONNS (sizeof(conns) / sizeof(conns[0]))

/* Room for any frame the channel carries, in or out. */
static uint8_t frame_buf[1u << 17];

static uint64_t fake_source(void *arg)
{
	(void)arg;
	return fake_ns;
}

/* ------------------------------------------------------------------ */
/* Frames in and out                                                   */
/* ------------------------------------------------------------------ */

static void inject(const uint8_t *f, size_t len)
{
	/* -EINVAL (empty, too long) and -ENOBUFS are the channel's to refuse. */
	if (len)
		ns_channel_inject(chan, f, len);
}

/* Take every frame the stack sent; each must be well-formed. TCP segments
 * to a connection's peer move its tcp_peer; neighbour queries for the peer
 * are answered. Return: whether an answer was injected. */
static bool drain(void)
{
	bool answered = false;
	ssize_t n;

	while ((n = ns_channel_read(chan, frame_buf, sizeof(frame_buf))) != -EAGAIN) {
		struct frame_parsed p;
		uint8_t reply[256];
		ssize_t r;
		size_t i;

		FUZZ_CHECK(n > 0 && (size_t)n <= sizeof(frame_buf), "ns_channel_read: %zd", n);
		FUZZ_CHECK(frame_parse(frame_buf, (size_t)n, &p) == 0,
			   "the stack sent a malformed %zd-byte frame", n);
		FUZZ_CHECK(p.csum_ok, "the stack sent a frame with a bad checksum (ethertype 0x%04x, proto %u)",
			   p.ethertype, p.proto);
		FUZZ_CHECK(!memcmp(p.src_mac, nic_mac, FRAME_MAC_LEN), "a frame not from the NIC's MAC");
		if (trace)
			fprintf(stderr, "  out: ethertype 0x%04x IPv%d proto %u %u->%u flags 0x%02x seq %u ack %u len %zu icmp %u\n",
				p.ethertype, p.ip_version, p.proto, p.sport, p.dport, p.tcp_flags, p.seq, p.ack,
				p.payload_len, p.icmp_type);
		for (i = 0; i < NCONNS; i++)
			if (p.proto == IPPROTO_TCP && p.dport == conns[i].port && p.sport == LISTEN_PORT)
				tcp_peer_absorb(&conns[i].peer, &p);
		r = frame_neighbour_reply(&p, &to4, &to6, reply, sizeof(reply));
		if (r > 0) {
			inject(reply, (size_t)r);
			answered = true;
		}
	}
	return answered;
}

/* One dispatcher round at the current fake time, then take what was sent;
 * again while answers to neighbour queries wait to be received. */
static void run(void)
{
	do {
		ns_lock(stack);
		ns_stack_run_once(stack, false);
		ns_unlock(stack);
	} while (drain());
}

 /*
 * Move the clock @ms forward, stopping at every timer the wheel has due on
 * the way, as a dispatcher that wakes on time would: one jump would fire
 * lwIP's cyclic TCP timer once where it is owed many ticks.
 */
static void advance(unsigned ms)
{
	uint64_t end = fake_ns + ms * NS_PER_MS, next;

	while (fake_ns < end) {
		ns_lock(stack);
		next = tcpip_timers_next_ns();
		ns_unlock(stack);
		if (next <= fake_ns)
			next = fake_ns + NS_PER_MS;
		fake_ns = next < end ? next : end;
		run();
	}
}

/* ------------------------------------------------------------------ */
/* Repairs that keep mutations meaningful                              */
/* ------------------------------------------------------------------ */

/* The connection with these ports, not a listener. Lock held. */
static struct tcp_pcb *pcb_find(uint16_t local, uint16_t remote)
{
	struct tcp_pcb *pcb;

	for (pcb = tcp_active_pcbs; pcb; pcb = pcb->next)
		if (pcb->local_port == local && pcb->remote_port == remote)
			return pcb;
	return NULL;
}

/* An address of the pseudo-header repair_find_l4() made: @i 0 the
 * source, 1 the destination. */
static void pseudo_addr(const struct repair_l4 *l, int i, ip_addr_t *ip)
{
	if (l->pseudo_len == 40) {
		ip_addr_set_zero_ip6(ip);
		memcpy(ip_2_ip6(ip)->addr, l->pseudo + 16 * i, 16);
	} else {
		ip_addr_set_zero_ip4(ip);
		memcpy(&ip_2_ip4(ip)->addr, l->pseudo + 4 * i, 4);
	}
}

/* The ACK of a cookie the stack would have sent for this segment's SYN
 * (see the header comment for what the fuzzer's numbers choose). Lock held. */
static void cookie_ack(const struct repair_l4 *l)
{
	uint32_t seq = repair_get32(l->hdr + 4), ack = repair_get32(l->hdr + 8);
	uint32_t count = ((uint32_t)sys_now() >> 16) - ((ack >> 8) & 3u);
	ip_addr_t src, dst;

	pseudo_addr(l, 0, &src);
	pseudo_addr(l, 1, &dst);
	repair_put32(l->hdr + 8, tcpip_cookie_make(&dst, COOKIE_PORT, &src, repair_get16(l->hdr), seq - 1,
						   count, ack & 0xffu) + 1);
}

/* Sequence and acknowledgement numbers as offsets from what the
 * connection with the segment's ports expects, or a cookie's ACK. */
static void rebase(const struct repair_l4 *l)
{
	struct tcp_pcb *pcb;
	uint16_t dport;

	if (!l->hdr || l->proto != IPPROTO_TCP || l->len < FRAME_TCP_HLEN)
		return;
	dport = repair_get16(l->hdr + 2);
	ns_lock(stack);
	pcb = pcb_find(dport, repair_get16(l->hdr));
	if (pcb) {
		repair_put32(l->hdr + 4, repair_get32(l->hdr + 4) + pcb->rcv_nxt);
		repair_put32(l->hdr + 8, repair_get32(l->hdr + 8) + pcb->snd_nxt);
	} else if (dport == COOKIE_PORT && (l->hdr[13] & (TCP_SYN | TCP_RST | TCP_ACK)) == TCP_ACK) {
		cookie_ack(l);
	}
	ns_unlock(stack);
}

/* ------------------------------------------------------------------ */
/* The stack's state between inputs                                    */
/* ------------------------------------------------------------------ */

/* The passive open of @c through the listener, then INFLIGHT bytes sent
 * by the stack and never acknowledged. Leaves c->sock -1 when the stack
 * does not complete it (an earlier input may have, say, moved the peer's
 * neighbour entry); the next input tries again. */
static void establish(struct conn *c)
{
	static const char junk[INFLIGHT];
	struct sockaddr_storage ss;
	socklen_t sslen;
	uint8_t buf[256];
	ssize_t n;
	int s;

	tcp_peer_init(&c->peer, c->path, c->port, LISTEN_PORT, PEER_ISN);
	n = tcp_peer_syn(&c->peer, buf, sizeof(buf), syn_opts, sizeof(syn_opts));
	FUZZ_CHECK(n > 0, "tcp_peer_syn: %zd", n);
	inject(buf, (size_t)n);
	run();
	if (!c->peer.synced)
		return;
	n = tcp_peer_ack(&c->peer, buf, sizeof(buf));
	FUZZ_CHECK(n > 0, "tcp_peer_ack: %zd", n);
	inject(buf, (size_t)n);
	run();
	for (;;) {
		sslen = sizeof(ss);
		s = ns_accept(stack, listener, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK);
		if (s < 0)
			return;
		if (ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) == c->port)
			break;
		ns_close(stack, s);
	}
	c->sock = s;
	n = ns_send(stack, s, junk, sizeof(junk), MSG_DONTWAIT);
	FUZZ_CHECK(n > 0, "ns_send on a fresh connection: %zd", n);
	run();
}

static bool conn_healthy(const struct conn *c)
{
	struct pollfd pfd = { .fd = c->sock, .events = POLLIN | POLLOUT };
	struct tcp_pcb *pcb;
	bool ok;

	if (c->sock < 0 || ns_poll(stack, &pfd, 1, 0) < 0 || (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)))
		return false;
	ns_lock(stack);
	pcb = pcb_find(LISTEN_PORT, c->port);
	ok = pcb && pcb->state == ESTABLISHED && pcb->callback_arg;
	ns_unlock(stack);
	return ok;
}

/* A pcb nobody holds a socket for, other than our connections': handed
 * over to lwIP by a close, half-open (SYN_RCVD) or in TIME-WAIT. Lock held. */
static struct tcp_pcb *stray_pcb(void)
{
	struct tcp_pcb *lists[2] = { tcp_active_pcbs, tcp_tw_pcbs }, *pcb;
	size_t i, k;

	for (k = 0; k < 2; k++)
		for (pcb = lists[k]; pcb; pcb = pcb->next) {
			bool ours = false;

			for (i = 0; i < NCONNS; i++)
				ours |= conns[i].sock >= 0 && pcb->local_port == LISTEN_PORT &&
					pcb->remote_port == conns[i].port;
			if (!ours && (!pcb->callback_arg || pcb->state == SYN_RCVD || pcb->state == TIME_WAIT))
				return pcb;
		}
	return NULL;
}

/* The cookie listener's backlog full of half-open connections, then one
 * SYN past it, answered with a cookie: cookies are in use. */
static void flood(void)
{
	uint8_t buf[256];
	uint16_t i;

	for (i = 0; i <= COOKIE_BACKLOG; i++) {
		struct tcp_peer p;
		ssize_t n;

		tcp_peer_init(&p, &to4, (uint16_t)(HALF_OPEN_PORT + i), COOKIE_PORT, PEER_ISN);
		n = tcp_peer_syn(&p, buf, sizeof(buf), syn_opts, sizeof(syn_opts));
		FUZZ_CHECK(n > 0, "tcp_peer_syn: %zd", n);
		inject(buf, (size_t)n);
		run();
	}
}

static void reset_state(void)
{
	static uint8_t sink[65536];
	struct tcp_pcb *pcb;
	size_t i;
	int s;

	for (i = 0; i < NCONNS; i++) {
		if (conns[i].sock >= 0)
			while (ns_recv(stack, conns[i].sock, sink, sizeof(sink), MSG_DONTWAIT) > 0)
				;
		if (conns[i].sock >= 0 && !conn_healthy(&conns[i])) {
			ns_close(stack, conns[i].sock);
			conns[i].sock = -1;
		}
	}
	while (ns_recvfrom(stack, udp, sink, sizeof(sink), MSG_DONTWAIT, NULL, NULL) >= 0)
		;
	while ((s = ns_accept(stack, listener, NULL, NULL, SOCK_NONBLOCK)) >= 0)
		ns_close(stack, s);
	while ((s = ns_accept(stack, cookie_listener, NULL, NULL, SOCK_NONBLOCK)) >= 0)
		ns_close(stack, s);
	ns_lock(stack);
	while ((pcb = stray_pcb())) {
		/* No callback may reach a socket: these have none, or (SYN_RCVD)
		 * only the listener's argument and no error callback. */
		tcp_arg(pcb, NULL);
		tcp_abort(pcb);
	}
	ns_unlock(stack);
	run();
	flood();
	for (i = 0; i < NCONNS; i++) {
		struct tcp_pcb *p;
		bool idle;

		if (conns[i].sock < 0) {
			establish(&conns[i]);
			continue;
		}
		ns_lock(stack);
		p = pcb_find(LISTEN_PORT, conns[i].port);
		idle = p && !p->unacked && !p->unsent;
		ns_unlock(stack);
		if (idle) {
			static const char more[INFLIGHT];

			ns_send(stack, conns[i].sock, more, sizeof(more), MSG_DONTWAIT);
			run();
		}
	}
}

/* ------------------------------------------------------------------ */
/* libFuzzer                                                           */
/* ------------------------------------------------------------------ */

/*
 * Age out every partly reassembled IPv4 and IPv6 datagram, as their timers
 * would. Besides keeping inputs apart, this keeps LeakSanitizer honest:
 * lwIP chains the fragments it holds through a packed helper struct over
 * each fragment's IP header, and with a 14-byte Ethernet header before it
 * (ETH_PAD_SIZE 0) that pointer is not 8-byte aligned, so LSan, which only
 * scans aligned words, would report the held fragments as leaked.
 */
static void flush_reassembly(void)
{
	int i;

	ns_lock(stack);
	for (i = 0; i <= IP_REASS_MAXAGE; i++)
		ip_reass_tmr();
	for (i = 0; i <= IPV6_REASS_MAXAGE; i++)
		ip6_reass_tmr();
	ns_unlock(stack);
	run();
}

static int socket_on(int type, uint16_t port)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	int s = ns_socket(stack, AF_INET6, type | SOCK_NONBLOCK, 0), rc;

	FUZZ_CHECK(s >= 0, "ns_socket: %d", s);
	a6.sin6_addr = in6addr_any;
	rc = ns_bind(stack, s, (struct sockaddr *)&a6, sizeof(a6));
	FUZZ_CHECK(rc == 0, "ns_bind: %d", rc);
	return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct ns_stack_config cfg = { .log_level = NS_LOG_ERR };
	struct ns_nic_config nc = { .name = "eth0" };
	struct ns_prefix pfx;
	size_t i;
	int nic, rc;

	(void)argc;
	(void)argv;
	trace = getenv("FUZZ_FRAME_TRACE");
	/* Before the first stack: lwIP's cyclic timers start on this clock. */
	tcpip_clock_use_source(fake_source, NULL);
	rc = ns_stack_new(&cfg, &stack);
	FUZZ_CHECK(rc == 0, "ns_stack_new: %d", rc);
	rc = ns_endpoint_channel_new(&chan);
	FUZZ_CHECK(rc == 0, "ns_endpoint_channel_new: %d", rc);
	memcpy(nc.mac, nic_mac, sizeof(nc.mac));
	nic = ns_nic_add(stack, &nc, chan);
	FUZZ_CHECK(nic >= 1, "ns_nic_add: %d", nic);
	FUZZ_CHECK(ns_prefix_parse(NIC_IP4 "/24", &pfx) == 0 && ns_addr_add(stack, nic, &pfx) == 0,
		   "the IPv4 address");
	FUZZ_CHECK(ns_prefix_parse(NIC_IP6 "/64", &pfx) == 0 && ns_addr_add(stack, nic, &pfx) == 0,
		   "the IPv6 address");
	FUZZ_CHECK(frame_path_init(&to4, peer_mac, PEER_IP4, nic_mac, NIC_IP4) == 0 &&
		   frame_path_init(&to6, peer_mac, PEER_IP6, nic_mac, NIC_IP6) == 0, "paths");
	listener = socket_on(SOCK_STREAM, LISTEN_PORT);
	rc = ns_listen(stack, listener, 16);
	FUZZ_CHECK(rc == 0, "ns_listen: %d", rc);
	cookie_listener = socket_on(SOCK_STREAM, COOKIE_PORT);
	rc = ns_listen(stack, cookie_listener, COOKIE_BACKLOG);
	FUZZ_CHECK(rc == 0, "ns_listen: %d", rc);
	udp = socket_on(SOCK_DGRAM, UDP_PORT);
	run();
	reset_state();
	for (i = 0; i < NCONNS; i++)
		FUZZ_CHECK(conns[i].sock >= 0, "connection %zu did not open", i);
	{
		struct tcpip_syncookie_stats st;

		tcpip_syncookie_stats(&st);
		FUZZ_CHECK(st.sent > 0, "the cookie listener's SYN got no cookie");
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	reset_state();
	while (size >= FUZZ_REC_HDR) {
		uint8_t ctl = data[0];
		size_t len = repair_get16(data + 1);
		struct repair_l4 l;

		data += FUZZ_REC_HDR;
		size -= FUZZ_REC_HDR;
		if (len > size)
			len = size;
		memcpy(frame_buf, data, len);
		data += len;
		size -= len;
		if (trace)
			fprintf(stderr, " in: ctl 0x%02x, %zu bytes\n", ctl, len);
		repair_find_l4(frame_buf, len, &l);
		if (ctl & FUZZ_REBASE)
			rebase(&l);
		if (ctl & FUZZ_CSUM)
			repair_csums(frame_buf, len, &l);
		inject(frame_buf, len);
		if (!(ctl & FUZZ_BATCH) || size < FUZZ_REC_HDR)
			run();
		if (ctl & FUZZ_APP_SHUT) {
			struct conn *c = &conns[len >= FRAME_ETH_HLEN &&
						repair_get16(frame_buf + 12) == FRAME_ETH_IPV6];

			if (c->sock >= 0)
				ns_shutdown(stack, c->sock, SHUT_WR);
			run();
		}
		if (ctl >> 4)
			advance(advance_ms[ctl >> 4]);
	}
	flush_reassembly();
	return 0;
}
