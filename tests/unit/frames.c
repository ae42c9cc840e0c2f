/* SPDX-License-Identifier: MIT */
/*
 * frames.c - the frame toolkit behind frames.h: one internet checksum, one
 * path from a struct frame_path to Ethernet and IP headers that every builder
 * shares, one upper-layer checksum step, the parser, and the scripted TCP
 * peer. Wire fields are written and read byte by byte in network order, so
 * nothing here depends on host endianness or alignment.
 */
#include "frames.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/ip_icmp.h>
#include <stdio.h>
#include <string.h>

#define NDP_HOP_LIMIT 255u
#define NDP_LLA_OPT_LEN 8u	/* type, length (in 8-byte units), MAC */
#define NDP_OPT_SLLA 1u
#define NDP_OPT_TLLA 2u
#define NDP_BODY_LEN 20u	/* 4 bytes flags/reserved, 16 bytes target */
#define IPV4_DF 0x4000u
#define IPV4_MF 0x2000u
#define IPV4_OFFSET_MASK 0x1fffu
#define IPV6_EXT_FRAGMENT 44u
#define TCP_OPT_EOL 0u
#define TCP_OPT_NOP 1u
#define TCP_OPT_MSS 2u
#define TCP_OPT_WSCALE 3u
#define TCP_OPT_SACK_PERM 4u
#define TCP_OPT_TS 8u

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

uint16_t frame_csum(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *b = data;
	uint64_t acc = sum;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		acc += get16(b + i);
	if (len & 1)
		acc += (uint32_t)b[len - 1] << 8;
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

/* The folded sum of the TCP/UDP/ICMPv6 pseudo-header, ready for frame_csum(). */
static uint32_t pseudo_sum(const struct frame_addr *src, const struct frame_addr *dst,
			   uint8_t proto, size_t len)
{
	uint8_t ph[40] = { 0 };
	size_t n;

	if (src->family == AF_INET) {
		memcpy(ph, &src->v4, 4);
		memcpy(ph + 4, &dst->v4, 4);
		ph[9] = proto;
		put16(ph + 10, (uint16_t)len);
		n = 12;
	} else {
		memcpy(ph, &src->v6, 16);
		memcpy(ph + 16, &dst->v6, 16);
		put32(ph + 32, (uint32_t)len);
		ph[39] = proto;
		n = 40;
	}
	return (uint16_t)~frame_csum(ph, n, 0);
}

int frame_addr_parse(const char *text, struct frame_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, text, &a->v4) == 1)
		a->family = AF_INET;
	else if (inet_pton(AF_INET6, text, &a->v6) == 1)
		a->family = AF_INET6;
	else
		return -EINVAL;
	return 0;
}

bool frame_addr_eq(const struct frame_addr *a, const struct frame_addr *b)
{
	if (a->family != b->family)
		return false;
	if (a->family == AF_INET)
		return a->v4.s_addr == b->v4.s_addr;
	if (a->family == AF_INET6)
		return memcmp(&a->v6, &b->v6, sizeof(a->v6)) == 0;
	return true;
}

int frame_path_init(struct frame_path *p, const uint8_t src_mac[FRAME_MAC_LEN], const char *src,
		    const uint8_t dst_mac[FRAME_MAC_LEN], const char *dst)
{
	memset(p, 0, sizeof(*p));
	memcpy(p->src_mac, src_mac, FRAME_MAC_LEN);
	memcpy(p->dst_mac, dst_mac, FRAME_MAC_LEN);
	if (frame_addr_parse(src, &p->src) || frame_addr_parse(dst, &p->dst) ||
	    p->src.family != p->dst.family)
		return -EINVAL;
	return 0;
}

ssize_t frame_eth(uint8_t *buf, size_t cap, const uint8_t dst[FRAME_MAC_LEN],
		  const uint8_t src[FRAME_MAC_LEN], uint16_t type)
{
	if (cap < FRAME_ETH_HLEN)
		return -ENOSPC;
	memcpy(buf, dst, FRAME_MAC_LEN);
	memcpy(buf + FRAME_MAC_LEN, src, FRAME_MAC_LEN);
	put16(buf + 2 * FRAME_MAC_LEN, type);
	return FRAME_ETH_HLEN;
}

ssize_t frame_arp(uint8_t *buf, size_t cap, const struct frame_path *path, uint16_t op)
{
	static const uint8_t bcast[FRAME_MAC_LEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t zero[FRAME_MAC_LEN];
	bool request = op == FRAME_ARP_REQUEST;
	uint8_t *a = buf + FRAME_ETH_HLEN;

	if (path->src.family != AF_INET || path->dst.family != AF_INET)
		return -EINVAL;
	if (cap < FRAME_ETH_HLEN + FRAME_ARP_LEN)
		return -ENOSPC;
	frame_eth(buf, cap, request ? bcast : path->dst_mac, path->src_mac, FRAME_ETH_ARP);
	put16(a, 1);			/* hardware: Ethernet */
	put16(a + 2, FRAME_ETH_IPV4);	/* protocol: IPv4 */
	a[4] = FRAME_MAC_LEN;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, path->src_mac, FRAME_MAC_LEN);
	memcpy(a + 14, &path->src.v4, 4);
	memcpy(a + 18, request ? zero : path->dst_mac, FRAME_MAC_LEN);
	memcpy(a + 24, &path->dst.v4, 4);
	return FRAME_ETH_HLEN + FRAME_ARP_LEN;
}

/*
 * Write the Ethernet and IP headers of a packet whose upper layer is @l4len
 * bytes long. Return: where the upper layer starts, or a builder's error.
 */
static ssize_t ip_begin(uint8_t *buf, size_t cap, const struct frame_path *path, uint8_t proto,
			size_t l4len)
{
	uint8_t ttl = path->ttl ? path->ttl : FRAME_TTL_DEFAULT;
	bool v4 = path->src.family == AF_INET;
	size_t iphlen = v4 ? FRAME_IPV4_HLEN : FRAME_IPV6_HLEN;
	uint8_t *ip = buf + FRAME_ETH_HLEN;

	if (path->src.family != path->dst.family ||
	    (path->src.family != AF_INET && path->src.family != AF_INET6))
		return -EINVAL;
	if (l4len > FRAME_IP_PAYLOAD_MAX - (v4 ? iphlen : 0))
		return -EMSGSIZE;
	if (cap < FRAME_ETH_HLEN + iphlen + l4len)
		return -ENOSPC;

	frame_eth(buf, cap, path->dst_mac, path->src_mac, v4 ? FRAME_ETH_IPV4 : FRAME_ETH_IPV6);
	memset(ip, 0, iphlen);
	if (v4) {
		ip[0] = 0x45;
		put16(ip + 2, (uint16_t)(iphlen + l4len));
		put16(ip + 6, IPV4_DF);
		ip[8] = ttl;
		ip[9] = proto;
		memcpy(ip + 12, &path->src.v4, 4);
		memcpy(ip + 16, &path->dst.v4, 4);
		put16(ip + 10, frame_csum(ip, iphlen, 0));
	} else {
		ip[0] = 0x60;
		put16(ip + 4, (uint16_t)l4len);
		ip[6] = proto;
		ip[7] = ttl;
		memcpy(ip + 8, &path->src.v6, 16);
		memcpy(ip + 24, &path->dst.v6, 16);
	}
	return (ssize_t)(FRAME_ETH_HLEN + iphlen);
}

/*
 * Fill in the checksum at @l4 + @csum_at over the upper layer [@l4, @end):
 * with the pseudo-header except for ICMPv4, and UDP's 0 sent as 0xffff.
 * Return: the frame length.
 */
static ssize_t l4_finish(uint8_t *buf, size_t l4, size_t end, const struct frame_path *path,
			 uint8_t proto, size_t csum_at)
{
	uint32_t sum = proto == IPPROTO_ICMP ? 0 : pseudo_sum(&path->src, &path->dst, proto, end - l4);
	uint16_t csum;

	put16(buf + l4 + csum_at, 0);
	csum = frame_csum(buf + l4, end - l4, sum);
	if (proto == IPPROTO_UDP && csum == 0)
		csum = 0xffff;
	put16(buf + l4 + csum_at, csum);
	return (ssize_t)end;
}

/* Copy @len bytes of @data, which may be NULL when @len is 0. */
static void put_bytes(uint8_t *to, const void *data, size_t len)
{
	if (len)
		memcpy(to, data, len);
}

ssize_t frame_ip(uint8_t *buf, size_t cap, const struct frame_path *path, uint8_t proto,
		 const void *payload, size_t len)
{
	ssize_t off = ip_begin(buf, cap, path, proto, len);

	if (off < 0)
		return off;
	put_bytes(buf + off, payload, len);
	return off + (ssize_t)len;
}

ssize_t frame_icmp_echo(uint8_t *buf, size_t cap, const struct frame_path *path, bool reply,
			uint16_t id, uint16_t seq, const void *data, size_t len)
{
	bool v4 = path->src.family == AF_INET;
	uint8_t proto = v4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
	ssize_t off = ip_begin(buf, cap, path, proto, FRAME_ICMP_HLEN + len);
	uint8_t *h;

	if (off < 0)
		return off;
	h = buf + off;
	if (v4)
		h[0] = reply ? ICMP_ECHOREPLY : ICMP_ECHO;
	else
		h[0] = reply ? ICMP6_ECHO_REPLY : ICMP6_ECHO_REQUEST;
	h[1] = 0;
	put16(h + 4, id);
	put16(h + 6, seq);
	put_bytes(h + FRAME_ICMP_HLEN, data, len);
	return l4_finish(buf, (size_t)off, (size_t)off + FRAME_ICMP_HLEN + len, path, proto, 2);
}

/*
 * The neighbour discovery messages share one shape: ICMPv6 header, 4 bytes
 * of flags, a target, and optionally one link-layer address option with the
 * sender's MAC. @q is the path as sent (hop limit and destination fixed up).
 */
static ssize_t ndp_build(uint8_t *buf, size_t cap, const struct frame_path *q, uint8_t type,
			 uint8_t flags, const struct in6_addr *target, uint8_t opt)
{
	size_t len = 4 + NDP_BODY_LEN + (opt ? NDP_LLA_OPT_LEN : 0);
	ssize_t off;
	uint8_t *h;

	if (q->src.family != AF_INET6)
		return -EINVAL;
	off = ip_begin(buf, cap, q, IPPROTO_ICMPV6, len);
	if (off < 0)
		return off;
	h = buf + off;
	memset(h, 0, len);
	h[0] = type;
	h[4] = flags;
	memcpy(h + 8, target, sizeof(*target));
	if (opt) {
		h[4 + NDP_BODY_LEN] = opt;
		h[4 + NDP_BODY_LEN + 1] = NDP_LLA_OPT_LEN / 8;
		memcpy(h + 4 + NDP_BODY_LEN + 2, q->src_mac, FRAME_MAC_LEN);
	}
	return l4_finish(buf, (size_t)off, (size_t)off + len, q, IPPROTO_ICMPV6, 2);
}

ssize_t frame_ndp_ns(uint8_t *buf, size_t cap, const struct frame_path *path)
{
	struct frame_path q = *path;
	const uint8_t *t = path->dst.v6.s6_addr;
	bool dad = IN6_IS_ADDR_UNSPECIFIED(&path->src.v6);

	/* ff02::1:ffXX:XXXX and 33:33:ff:XX:XX:XX from the target's last 24 bits. */
	memset(&q.dst.v6, 0, sizeof(q.dst.v6));
	q.dst.v6.s6_addr[0] = 0xff;
	q.dst.v6.s6_addr[1] = 0x02;
	q.dst.v6.s6_addr[11] = 0x01;
	q.dst.v6.s6_addr[12] = 0xff;
	memcpy(&q.dst.v6.s6_addr[13], t + 13, 3);
	q.dst_mac[0] = 0x33;
	q.dst_mac[1] = 0x33;
	memcpy(q.dst_mac + 2, &q.dst.v6.s6_addr[12], 4);
	q.ttl = NDP_HOP_LIMIT;
	return ndp_build(buf, cap, &q, ND_NEIGHBOR_SOLICIT, 0, &path->dst.v6, dad ? 0 : (uint8_t)NDP_OPT_SLLA);
}

ssize_t frame_ndp_na(uint8_t *buf, size_t cap, const struct frame_path *path, uint8_t flags)
{
	struct frame_path q = *path;

	q.ttl = NDP_HOP_LIMIT;
	return ndp_build(buf, cap, &q, ND_NEIGHBOR_ADVERT, flags, &path->src.v6, NDP_OPT_TLLA);
}

ssize_t frame_udp(uint8_t *buf, size_t cap, const struct frame_path *path, uint16_t sport,
		  uint16_t dport, const void *data, size_t len)
{
	size_t l4len = FRAME_UDP_HLEN + len;
	ssize_t off = ip_begin(buf, cap, path, IPPROTO_UDP, l4len);
	uint8_t *h;

	if (off < 0)
		return off;
	h = buf + off;
	put16(h, sport);
	put16(h + 2, dport);
	put16(h + 4, (uint16_t)l4len);
	put_bytes(h + FRAME_UDP_HLEN, data, len);
	return l4_finish(buf, (size_t)off, (size_t)off + l4len, path, IPPROTO_UDP, 6);
}

ssize_t frame_tcp(uint8_t *buf, size_t cap, const struct frame_path *path, const struct frame_tcp *seg)
{
	size_t optlen = (seg->opts_len + 3) & ~(size_t)3;
	size_t hlen = FRAME_TCP_HLEN + optlen;
	ssize_t off;
	uint8_t *h;

	if (seg->opts_len > FRAME_TCP_OPTS_MAX)
		return -EINVAL;
	off = ip_begin(buf, cap, path, IPPROTO_TCP, hlen + seg->len);
	if (off < 0)
		return off;
	h = buf + off;
	put16(h, seg->sport);
	put16(h + 2, seg->dport);
	put32(h + 4, seg->seq);
	put32(h + 8, seg->ack);
	h[12] = (uint8_t)(hlen / 4 << 4);
	h[13] = seg->flags;
	put16(h + 14, seg->window);
	put16(h + 18, 0);		/* urgent pointer */
	memset(h + FRAME_TCP_HLEN, TCP_OPT_EOL, optlen);
	put_bytes(h + FRAME_TCP_HLEN, seg->opts, seg->opts_len);
	put_bytes(h + hlen, seg->data, seg->len);
	return l4_finish(buf, (size_t)off, (size_t)off + hlen + seg->len, path, IPPROTO_TCP, 16);
}

/* ------------------------------------------------------------------ */
/* Parser                                                              */
/* ------------------------------------------------------------------ */

static void set_payload(struct frame_parsed *p, const uint8_t *b, size_t n)
{
	p->payload = b;
	p->payload_len = n;
}

static int parse_arp(struct frame_parsed *p, const uint8_t *a, size_t n)
{
	if (n < FRAME_ARP_LEN || get16(a) != 1 || get16(a + 2) != FRAME_ETH_IPV4 ||
	    a[4] != FRAME_MAC_LEN || a[5] != 4)
		return -EINVAL;
	p->arp_op = get16(a + 6);
	memcpy(p->arp_sha, a + 8, FRAME_MAC_LEN);
	memcpy(&p->arp_spa, a + 14, 4);
	memcpy(p->arp_tha, a + 18, FRAME_MAC_LEN);
	memcpy(&p->arp_tpa, a + 24, 4);
	return 0;
}

static int parse_tcp_opts(struct frame_parsed *p, const uint8_t *o, size_t n)
{
	size_t i = 0;

	while (i < n && o[i] != TCP_OPT_EOL) {
		uint8_t kind = o[i];
		size_t len;

		if (kind == TCP_OPT_NOP) {
			i++;
			continue;
		}
		if (i + 2 > n)
			return -EINVAL;
		len = o[i + 1];
		if (len < 2 || i + len > n)
			return -EINVAL;
		if (kind == TCP_OPT_MSS && len == 4) {
			p->mss = get16(o + i + 2);
		} else if (kind == TCP_OPT_WSCALE && len == 3) {
			p->wscale = o[i + 2];
		} else if (kind == TCP_OPT_SACK_PERM && len == 2) {
			p->sack_perm = true;
		} else if (kind == TCP_OPT_TS && len == 10) {
			p->has_ts = true;
			p->ts_val = get32(o + i + 2);
			p->ts_ecr = get32(o + i + 6);
		}
		i += len;
	}
	return 0;
}

static int parse_tcp(struct frame_parsed *p, const uint8_t *h, size_t n)
{
	size_t hlen;

	if (n < FRAME_TCP_HLEN)
		return -EINVAL;
	hlen = (size_t)(h[12] >> 4) * 4;
	if (hlen < FRAME_TCP_HLEN || hlen > n)
		return -EINVAL;
	p->sport = get16(h);
	p->dport = get16(h + 2);
	p->seq = get32(h + 4);
	p->ack = get32(h + 8);
	p->tcp_flags = h[13];
	p->window = get16(h + 14);
	p->tcp_opts = h + FRAME_TCP_HLEN;
	p->tcp_opts_len = hlen - FRAME_TCP_HLEN;
	set_payload(p, h + hlen, n - hlen);
	return parse_tcp_opts(p, p->tcp_opts, p->tcp_opts_len);
}

static int parse_udp(struct frame_parsed *p, const uint8_t *h, size_t n)
{
	size_t ulen;

	if (n < FRAME_UDP_HLEN)
		return -EINVAL;
	ulen = get16(h + 4);
	if (ulen < FRAME_UDP_HLEN || ulen > n)
		return -EINVAL;
	p->sport = get16(h);
	p->dport = get16(h + 2);
	set_payload(p, h + FRAME_UDP_HLEN, ulen - FRAME_UDP_HLEN);
	return 0;
}

/* ICMP and ICMPv6: echo identifiers, neighbour discovery targets and options. */
static int parse_icmp(struct frame_parsed *p, const uint8_t *h, size_t n)
{
	bool v4 = p->proto == IPPROTO_ICMP;
	uint8_t t;

	if (n < FRAME_ICMP_HLEN)
		return -EINVAL;
	t = p->icmp_type = h[0];
	p->icmp_code = h[1];
	set_payload(p, h + FRAME_ICMP_HLEN, n - FRAME_ICMP_HLEN);
	if (v4 ? (t == ICMP_ECHO || t == ICMP_ECHOREPLY)
	       : (t == ICMP6_ECHO_REQUEST || t == ICMP6_ECHO_REPLY)) {
		p->echo_id = get16(h + 4);
		p->echo_seq = get16(h + 6);
	} else if (!v4 && (t == ND_NEIGHBOR_SOLICIT || t == ND_NEIGHBOR_ADVERT)) {
		size_t i = 4 + NDP_BODY_LEN;

		if (n < i)
			return -EINVAL;
		if (t == ND_NEIGHBOR_ADVERT)
			p->nd_flags = h[4];
		memcpy(&p->nd_target, h + 8, sizeof(p->nd_target));
		while (i + 2 <= n) {
			size_t olen = (size_t)h[i + 1] * 8;

			if (olen == 0 || i + olen > n)
				return -EINVAL;
			if ((h[i] == NDP_OPT_SLLA || h[i] == NDP_OPT_TLLA) && olen == NDP_LLA_OPT_LEN) {
				p->nd_has_lla = true;
				memcpy(p->nd_lla, h + i + 2, FRAME_MAC_LEN);
			}
			i += olen;
		}
	}
	return 0;
}

/* Whether an upper layer's checksum holds. IPv4 UDP may leave it out (0). */
static bool l4_csum_ok(const struct frame_parsed *p, const uint8_t *h, size_t n)
{
	if (p->proto == IPPROTO_UDP && n >= FRAME_UDP_HLEN && get16(h + 6) == 0)
		return p->ip_version == 4;
	if (p->proto == IPPROTO_ICMP)
		return frame_csum(h, n, 0) == 0;
	return frame_csum(h, n, pseudo_sum(&p->src, &p->dst, p->proto, n)) == 0;
}

/* Everything above IP; @h/@n are exactly the upper layer (no padding). */
static int parse_l4(struct frame_parsed *p, const uint8_t *h, size_t n)
{
	int (*parse)(struct frame_parsed *p, const uint8_t *h, size_t n);

	switch (p->proto) {
	case IPPROTO_UDP:
		parse = parse_udp;
		break;
	case IPPROTO_TCP:
		parse = parse_tcp;
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		parse = parse_icmp;
		break;
	default:
		set_payload(p, h, n);
		return 0;
	}
	if (!l4_csum_ok(p, h, n))
		p->csum_ok = false;
	return parse(p, h, n);
}

static int parse_ipv4(struct frame_parsed *p, const uint8_t *ip, size_t n)
{
	size_t hlen, tot;

	if (n < FRAME_IPV4_HLEN || ip[0] >> 4 != 4)
		return -EINVAL;
	hlen = (size_t)(ip[0] & 0xf) * 4;
	tot = get16(ip + 2);
	if (hlen < FRAME_IPV4_HLEN || tot < hlen || tot > n)
		return -EINVAL;
	p->ip_version = 4;
	p->ttl = ip[8];
	p->proto = ip[9];
	p->ip_frag = get16(ip + 6);
	p->src.family = p->dst.family = AF_INET;
	memcpy(&p->src.v4, ip + 12, 4);
	memcpy(&p->dst.v4, ip + 16, 4);
	if (frame_csum(ip, hlen, 0) != 0)
		p->csum_ok = false;
	if (p->ip_frag & (IPV4_MF | IPV4_OFFSET_MASK)) {
		set_payload(p, ip + hlen, tot - hlen);
		return 0;
	}
	return parse_l4(p, ip + hlen, tot - hlen);
}

static int parse_ipv6(struct frame_parsed *p, const uint8_t *ip, size_t n)
{
	const uint8_t *h = ip + FRAME_IPV6_HLEN;
	size_t left;
	uint8_t nh;

	if (n < FRAME_IPV6_HLEN || ip[0] >> 4 != 6)
		return -EINVAL;
	left = get16(ip + 4);
	if (left > n - FRAME_IPV6_HLEN)
		return -EINVAL;
	p->ip_version = 6;
	nh = ip[6];
	p->ttl = ip[7];
	p->src.family = p->dst.family = AF_INET6;
	memcpy(&p->src.v6, ip + 8, 16);
	memcpy(&p->dst.v6, ip + 24, 16);
	while (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS) {
		size_t elen;

		if (left < 8 || (elen = ((size_t)h[1] + 1) * 8) > left)
			return -EINVAL;
		nh = h[0];
		h += elen;
		left -= elen;
	}
	p->proto = nh;
	if (nh == IPV6_EXT_FRAGMENT) {
		set_payload(p, h, left);
		return 0;
	}
	return parse_l4(p, h, left);
}

int frame_parse(const uint8_t *f, size_t len, struct frame_parsed *p)
{
	const uint8_t *l3 = f + FRAME_ETH_HLEN;

	memset(p, 0, sizeof(*p));
	p->wscale = -1;
	p->csum_ok = true;
	if (len < FRAME_ETH_HLEN)
		return -EINVAL;
	memcpy(p->dst_mac, f, FRAME_MAC_LEN);
	memcpy(p->src_mac, f + FRAME_MAC_LEN, FRAME_MAC_LEN);
	p->ethertype = get16(f + 2 * FRAME_MAC_LEN);
	len -= FRAME_ETH_HLEN;
	switch (p->ethertype) {
	case FRAME_ETH_ARP:
		return parse_arp(p, l3, len);
	case FRAME_ETH_IPV4:
		return parse_ipv4(p, l3, len);
	case FRAME_ETH_IPV6:
		return parse_ipv6(p, l3, len);
	default:
		set_payload(p, l3, len);
		return 0;
	}
}

/* ------------------------------------------------------------------ */
/* TCP peer                                                            */
/* ------------------------------------------------------------------ */

void tcp_peer_init(struct tcp_peer *p, const struct frame_path *path, uint16_t sport,
		   uint16_t dport, uint32_t iss)
{
	memset(p, 0, sizeof(*p));
	p->path = *path;
	p->sport = sport;
	p->dport = dport;
	p->snd_nxt = iss;
	p->window = 65535;
}

ssize_t tcp_peer_send(struct tcp_peer *p, uint8_t *buf, size_t cap, uint8_t flags,
		      const uint8_t *opts, size_t opts_len, const void *data, size_t len)
{
	struct frame_tcp seg = {
		.sport = p->sport,
		.dport = p->dport,
		.seq = p->snd_nxt,
		.ack = flags & FRAME_TCP_ACK ? p->rcv_nxt : 0,
		.flags = flags,
		.window = p->window,
		.opts = opts,
		.opts_len = opts_len,
		.data = data,
		.len = len,
	};
	ssize_t n = frame_tcp(buf, cap, &p->path, &seg);

	if (n >= 0)
		p->snd_nxt += (uint32_t)len + !!(flags & FRAME_TCP_SYN) + !!(flags & FRAME_TCP_FIN);
	return n;
}

int tcp_peer_absorb(struct tcp_peer *p, const struct frame_parsed *f)
{
	int version = p->path.src.family == AF_INET ? 4 : 6;
	uint32_t span = (uint32_t)f->payload_len + !!(f->tcp_flags & FRAME_TCP_FIN);

	if (f->ip_version != version || f->proto != IPPROTO_TCP || f->dport != p->sport ||
	    (p->dport && f->sport != p->dport))
		return -EINVAL;
	p->dport = f->sport;
	if ((f->tcp_flags & FRAME_TCP_SYN) && !p->synced) {
		p->rcv_nxt = f->seq + 1 + span;
		p->synced = true;
		return (int)(1 + span);
	}
	if (!p->synced || f->seq != p->rcv_nxt)
		return 0;
	p->rcv_nxt += span;
	return (int)span;
}

ssize_t frame_neighbour_reply(const struct frame_parsed *p, const struct frame_path *to4,
			      const struct frame_path *to6, uint8_t *buf, size_t cap)
{
	struct frame_path back;

	if (to4 && p->ethertype == FRAME_ETH_ARP && p->arp_op == FRAME_ARP_REQUEST &&
	    p->arp_tpa.s_addr == to4->src.v4.s_addr) {
		back = *to4;
		memcpy(back.dst_mac, p->arp_sha, FRAME_MAC_LEN);
		back.dst.v4 = p->arp_spa;
		return frame_arp(buf, cap, &back, FRAME_ARP_REPLY);
	}
	if (to6 && p->ip_version == 6 && p->proto == IPPROTO_ICMPV6 &&
	    p->icmp_type == ND_NEIGHBOR_SOLICIT &&
	    !memcmp(&p->nd_target, &to6->src.v6, sizeof(p->nd_target)) &&
	    !IN6_IS_ADDR_UNSPECIFIED(&p->src.v6)) {
		back = *to6;
		memcpy(back.dst_mac, p->src_mac, FRAME_MAC_LEN);
		back.dst = p->src;
		return frame_ndp_na(buf, cap, &back, FRAME_NA_SOLICITED | FRAME_NA_OVERRIDE);
	}
	return 0;
}

void frame_describe(const struct frame_parsed *p, char *buf, size_t cap)
{
	char s[INET6_ADDRSTRLEN] = "?", d[INET6_ADDRSTRLEN] = "?";

	if (p->ethertype == FRAME_ETH_ARP) {
		inet_ntop(AF_INET, &p->arp_spa, s, sizeof(s));
		inet_ntop(AF_INET, &p->arp_tpa, d, sizeof(d));
		snprintf(buf, cap, "ARP op %u %s->%s", p->arp_op, s, d);
		return;
	}
	if (!p->ip_version) {
		snprintf(buf, cap, "ethertype 0x%04x", p->ethertype);
		return;
	}
	inet_ntop(p->src.family, p->src.family == AF_INET ? (const void *)&p->src.v4 : (const void *)&p->src.v6,
		  s, sizeof(s));
	inet_ntop(p->dst.family, p->dst.family == AF_INET ? (const void *)&p->dst.v4 : (const void *)&p->dst.v6,
		  d, sizeof(d));
	switch (p->proto) {
	case IPPROTO_TCP:
		snprintf(buf, cap, "TCP %s:%u->%s:%u flags 0x%02x seq %u ack %u len %zu", s, p->sport, d,
			 p->dport, p->tcp_flags, p->seq, p->ack, p->payload_len);
		break;
	case IPPROTO_UDP:
		snprintf(buf, cap, "UDP %s:%u->%s:%u len %zu", s, p->sport, d, p->dport, p->payload_len);
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		snprintf(buf, cap, "ICMPv%d type %u %s->%s", p->ip_version == 4 ? 4 : 6, p->icmp_type, s, d);
		break;
	default:
		snprintf(buf, cap, "IPv%d proto %u %s->%s", p->ip_version, p->proto, s, d);
		break;
	}
}
