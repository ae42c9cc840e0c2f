/* SPDX-License-Identifier: MIT */
/*
 * filter.c - the first look at every IPv4 and IPv6 packet, before lwIP's
 * ip4_input()/ip6_input() (LWIP_HOOK_IP4_INPUT, LWIP_HOOK_IP6_INPUT). It
 * drops and counts what Linux drops but lwIP 2.1.3 takes: IPv4 options
 * whose lengths do not add up, a UDP length field below the header or past
 * the IP payload, a zero UDP checksum over IPv6 (RFC 8200), and neighbour
 * discovery messages with a zero-length option (RFC 4861 4.6); and it hands
 * TCP segments to the SYN cookies (syncookie.c). Anything it cannot read
 * whole - a truncated header, a non-first fragment - goes on to lwIP,
 * whose own checks drop it. Reassembled datagrams do not come back through
 * the hook, so a fragmented UDP datagram's length is lwIP's to judge.
 */
#define _GNU_SOURCE
#include <string.h>

#include "lwip/ip.h"
#include "lwip/pbuf.h"
#include "lwip/prot/ip4.h"
#include "lwip/prot/ip6.h"
#include "lwip/prot/tcp.h"
#include "lwip/stats.h"
#include "syncookie.h"
#include "tap_csum.h"
#include "tcpip_hooks.h"

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_DSTOPTS_ 60
#define ICMP6_RS 133
#define ICMP6_REDIRECT 137
#define EXT_HEADERS_MAX 8	/* more than any sane packet carries */

/* A drop: freed here, counted where netstack's rx_dropped sums lwIP's. */
static int drop(struct pbuf *p, u16_t *counter)
{
	(*counter)++;
	pbuf_free(p);
	return 1;
}

/* Whether a UDP header's length field agrees with the bytes after it. */
static bool udp_len_ok(const uint8_t *udp, size_t avail)
{
	uint16_t len = tap_get16(udp + 4);

	return len >= 8 && len <= avail;
}

/* IPv4 options: each of the right length within the header (Linux's
 * ip_options_compile() drops the packet otherwise). */
static bool ip4_options_ok(const uint8_t *o, size_t len)
{
	size_t i = 0;

	while (i < len) {
		if (o[i] == 0)		/* end of options */
			return true;
		if (o[i] == 1) {	/* no-op */
			i++;
			continue;
		}
		if (i + 1 >= len || o[i + 1] < 2 || o[i + 1] > len - i)
			return false;
		i += o[i + 1];
	}
	return true;
}

static bool tcp_seg_ok(const uint8_t *tcp, size_t len)
{
	size_t hl;

	if (len < TCP_HLEN)
		return false;
	hl = (size_t)(tcp[12] >> 4) * 4;
	return hl >= TCP_HLEN && hl <= len;
}

/* A well-formed TCP segment, its addresses in @seg already. */
static int to_syncookies(struct tcpip_tcp_seg *seg, struct pbuf *p, struct netif *inp, size_t ip_hlen,
			 size_t tcp_len)
{
	seg->p = p;
	seg->inp = inp;
	seg->tcp = (const uint8_t *)p->payload + ip_hlen;
	seg->tcp_len = (uint16_t)tcp_len;
	seg->ip_hlen = (uint16_t)ip_hlen;
	return tcpip_syncookie_input(seg);
}

int tcpip_hook_ip4_input(struct pbuf *p, struct netif *inp)
{
	const uint8_t *ip = p->payload, *l4;
	struct tcpip_tcp_seg seg;
	size_t hl, total;

	/* lwIP checks the version before the hook; anything short or
	 * inconsistent is left to its checks. */
	if (p->len < IP_HLEN)
		return 0;
	hl = (size_t)(ip[0] & 0x0f) * 4;
	total = tap_get16(ip + 2);
	if (hl < IP_HLEN || hl > p->len || total < hl || total > p->tot_len)
		return 0;
	if (hl > IP_HLEN && !ip4_options_ok(ip + IP_HLEN, hl - IP_HLEN))
		return drop(p, &lwip_stats.ip.drop);
	/* Only a whole datagram shows its transport header. */
	if (tap_get16(ip + 6) & (IP_MF | IP_OFFMASK))
		return 0;
	l4 = ip + hl;
	if (ip[9] == IP_PROTO_UDP && total - hl >= 8 && (size_t)p->len >= hl + 8 &&
	    !udp_len_ok(l4, total - hl))
		return drop(p, &lwip_stats.udp.drop);
	if (ip[9] != IP_PROTO_TCP || !tcp_seg_ok(l4, total - hl) ||
	    (size_t)p->len < hl + (size_t)(l4[12] >> 4) * 4)
		return 0;
	ip_addr_set_zero_ip4(&seg.src);
	ip_addr_set_zero_ip4(&seg.dst);
	memcpy(&ip_2_ip4(&seg.src)->addr, ip + 12, 4);
	memcpy(&ip_2_ip4(&seg.dst)->addr, ip + 16, 4);
	return to_syncookies(&seg, p, inp, hl, total - hl);
}

/* Neighbour discovery (types 133-137): the fixed part before the options. */
static size_t nd_fixed_len(uint8_t type)
{
	static const uint8_t fixed[] = { 8, 16, 24, 24, 40 };

	return fixed[type - ICMP6_RS];
}

static bool nd_options_ok(const uint8_t *o, size_t len)
{
	size_t i = 0;

	/* An option's length counts 8-byte units; 0 is never valid. */
	while (i + 2 <= len) {
		if (o[i + 1] == 0)
			return false;
		i += (size_t)o[i + 1] * 8;
	}
	return true;
}

int tcpip_hook_ip6_input(struct pbuf *p, struct netif *inp)
{
	const uint8_t *ip = p->payload, *l4;
	struct tcpip_tcp_seg seg;
	size_t off = IP6_HLEN, end;
	uint8_t nh;
	int n;

	if (p->len < IP6_HLEN)
		return 0;
	end = IP6_HLEN + tap_get16(ip + 4);
	if (end > p->tot_len || end > p->len)
		return 0;
	nh = ip[6];
	for (n = 0; n < EXT_HEADERS_MAX; n++) {
		if (nh == IPPROTO_HOPOPTS_ || nh == IPPROTO_ROUTING_ || nh == IPPROTO_DSTOPTS_) {
			if (off + 8 > end)
				return 0;
			nh = ip[off];
			off += ((size_t)ip[off + 1] + 1) * 8;
		} else if (nh == IPPROTO_FRAGMENT_) {
			/* Past the first fragment, or more to come: not whole. */
			if (off + 8 > end || (tap_get16(ip + off + 2) & 0xfff9))
				return 0;
			nh = ip[off];
			off += 8;
		} else {
			break;
		}
	}
	if (off > end)
		return 0;
	l4 = ip + off;
	if (nh == IP6_NEXTH_UDP && end - off >= 8) {
		if (!udp_len_ok(l4, end - off) || tap_get16(l4 + 6) == 0)
			return drop(p, &lwip_stats.udp.drop);
		return 0;
	}
	if (nh == IP6_NEXTH_ICMP6 && end - off >= 1 && l4[0] >= ICMP6_RS && l4[0] <= ICMP6_REDIRECT &&
	    end - off >= nd_fixed_len(l4[0])) {
		if (!nd_options_ok(l4 + nd_fixed_len(l4[0]), end - off - nd_fixed_len(l4[0])))
			return drop(p, &lwip_stats.nd6.drop);
		return 0;
	}
	/* SYN cookies only for TCP straight after the IPv6 header. */
	if (nh != IP6_NEXTH_TCP || off != IP6_HLEN || !tcp_seg_ok(l4, end - off))
		return 0;
	ip_addr_set_zero_ip6(&seg.src);
	ip_addr_set_zero_ip6(&seg.dst);
	memcpy(ip_2_ip6(&seg.src)->addr, ip + 8, 16);
	memcpy(ip_2_ip6(&seg.dst)->addr, ip + 24, 16);
	ip6_addr_assign_zone(ip_2_ip6(&seg.src), IP6_UNKNOWN, inp);
	ip6_addr_assign_zone(ip_2_ip6(&seg.dst), IP6_UNKNOWN, inp);
	return to_syncookies(&seg, p, inp, off, end - off);
}
