/* SPDX-License-Identifier: MIT */
/*
 * syncookie.h - SYN cookies (RFC 4987) in front of lwIP's listeners, and
 * the input filter that sees every IPv4 and IPv6 packet before lwIP does.
 * A listener whose backlog is full of half-open connections answers a SYN
 * with a SYN-ACK whose sequence number is a keyed MAC of the connection's
 * addresses, ports, the peer's ISN and a coarse clock, with the peer's MSS,
 * window scale and SACK permission folded in; nothing is kept. An ACK that
 * carries a valid cookie becomes a connection: a SYN rebuilt from the
 * cookie is replayed into lwIP (which takes the cookie as its ISN), then
 * the ACK itself completes the handshake.
 */
#ifndef NETSTACK_SYNCOOKIE_H
#define NETSTACK_SYNCOOKIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lwip/ip_addr.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"

/* What tcpip/ counted since the process started (all stacks share lwIP). */
struct tcpip_syncookie_stats {
	uint64_t sent;		/* SYN-ACKs with a cookie */
	uint64_t validated;	/* ACKs whose cookie made a connection */
	uint64_t failed;	/* ACKs to a listener, cookies in use, no cookie, no connection */
	uint64_t overflow;	/* valid cookies refused: the accept queue itself was full */
};

void tcpip_syncookie_stats(struct tcpip_syncookie_stats *st);

/* A TCP segment the input filter found well formed, its headers in p's
 * first buffer. Addresses as lwIP keeps them (IPv6 zones assigned). */
struct tcpip_tcp_seg {
	struct pbuf *p;		/* the IP packet */
	struct netif *inp;	/* where it came in */
	ip_addr_t src, dst;
	const uint8_t *tcp;	/* the TCP header */
	uint16_t tcp_len;	/* header and data, as the IP length says */
	uint16_t ip_hlen;	/* p->payload + ip_hlen == tcp */
};

/* Whether the segment was eaten (sent a cookie, or dropped): then the
 * caller frees nothing and lwIP never sees it. */
bool tcpip_syncookie_input(const struct tcpip_tcp_seg *seg);

/* lwIP is creating a connection (its ISN hook): the next lookup of which
 * connections lwIP holds must see it. */
void tcpip_syncookie_pcbs_changed(void);

/* Whether lwIP is taking a replayed SYN now. Its answer, a SYN-ACK of its
 * own, is not to be sent: the peer has our cookie SYN-ACK and its ACK of
 * that, already here, acknowledges lwIP's too (the NIC drops it). */
bool tcpip_syncookie_replaying(void);

/* The ISN lwIP is to use for a connection a cookie replays, if this is one. */
bool tcpip_syncookie_replay_isn(const ip_addr_t *local_ip, uint16_t local_port,
				const ip_addr_t *remote_ip, uint16_t remote_port, uint32_t *isn);

/* An address's bytes as two words, the rest zero (ip_addr_t may carry
 * padding and a zone): what the MACs hash and replays compare. */
void tcpip_addr_words(const ip_addr_t *ip, uint64_t out[2]);

/* The MAC behind cookies and ISNs (port.c): SipHash-2-4 over words, keyed
 * per process. */
uint64_t tcpip_siphash(const uint64_t *words, size_t n);

/*
 * The cookie itself, exposed for unit tests. @data packs what the SYN
 * asked for (see syncookie.c: MSS index, window scale, SACK), below
 * TCPIP_COOKIE_DATA_MAX; @count is the clock (sys_now() >> 16, ~65 s),
 * taken modulo 2^16 as sys_now() wraps. tcpip_cookie_check() takes the
 * cookie as the ACK acknowledged it, minus one, and accepts the current
 * count and the one before (0xffff before 0).
 */
#define TCPIP_COOKIE_DATA_MAX 256u
uint32_t tcpip_cookie_make(const ip_addr_t *local_ip, uint16_t local_port, const ip_addr_t *remote_ip,
			   uint16_t remote_port, uint32_t peer_isn, uint32_t count, unsigned data);
bool tcpip_cookie_check(const ip_addr_t *local_ip, uint16_t local_port, const ip_addr_t *remote_ip,
			uint16_t remote_port, uint32_t peer_isn, uint32_t cookie, uint32_t count,
			unsigned *data);

#endif /* NETSTACK_SYNCOOKIE_H */
