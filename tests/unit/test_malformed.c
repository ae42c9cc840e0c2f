/* SPDX-License-Identifier: MIT */
/*
 * test_malformed.c - frames malformed in one header field each, sent to a
 * whole stack over the in-memory channel endpoint (no dispatcher thread:
 * the test runs the stack itself with ns_stack_run_once()). Every layer the
 * stack parses is covered: Ethernet (runts), ARP (each fixed field,
 * truncation), IPv4 (version, header length, total length, checksum,
 * source address, an option longer than the header, fragments past 64 KiB
 * or overlapping), IPv6 (version, payload length, multicast source,
 * extension headers out of order, past the packet, routing type 0,
 * fragments past 64 KiB, overlapping or not a multiple of 8), UDP
 * (checksums, a zero one over IPv6, the length field), TCP, ICMP and ICMPv6
 * (checksums, lengths, data offset, options, truncation, neighbour
 * discovery's hop limit, code and option rules). Every other field of a case is right: checksums are
 * recomputed after the damage (tests/fuzz/repair.c) unless the checksum is
 * the damage.
 *
 * Each case runs in its own process and checks that the frame is dropped
 * (no answer but ICMP errors, nothing delivered to the UDP socket or the
 * listener), that a drop counter moved (rx_malformed, or rx_dropped, the
 * sum of lwIP's per-protocol drop counters), and that the stack still
 * serves: a TCP handshake from the peer, data both ways, in the case's
 * IP version.
 */
#define _GNU_SOURCE

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/ip_icmp.h>
#include <string.h>

#include "chanstack.h"
#include "frames.h"
#include "internal.h"
#include "lwip/stats.h"
#include "netstack.h"
#include "repair.h"

#define LISTEN_PORT 80
#define UDP_PORT 53
#define PEER_PORT 40000
#define CHECK_PORT 41000	/* the peer's side of the serving check */
#define PEER_ISN 1000000u
#define FRAME_BUF 2048
#define MAX_FRAMES 3


/* MSS 1460, SACK permitted, timestamps, NOP, window scale 7. */
static const uint8_t syn_opts[] = {
	2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0x30, 0x39, 0, 0, 0, 0, 1, 3, 3, 7,
};
static const char payload[] = "malformed-frame";

static struct ns_stack *stack;
static struct ns_endpoint *chan;
static struct frame_path to4, to6;
static int listener, udp;

/* ------------------------------------------------------------------ */
/* The cases                                                           */
/* ------------------------------------------------------------------ */

enum base { B_UDP4, B_UDP6, B_TCP4, B_TCP6, B_ICMP4, B_ICMP6, B_ARP, B_NS, B_SPECIAL };
enum layer { L_ETH, L_NET, L_L4 };

#define REPAIR 0x1	/* recompute checksums after the damage */
#define FIXLEN 0x2	/* after truncating, make the IP length field agree */
/*
 * What is expected of a case other than a counted drop, each pinned as it
 * is so that a change shows up here:
 * TOLERATED: Linux takes it too (a TCP option of a bad length ends option
 * parsing; the segment stands), so the SYN is answered.
 * What lwIP 2.1.3 itself takes but Linux drops (IPv4 options that do not
 * add up, a UDP length field below the header or past the payload, a zero
 * UDP checksum over IPv6, a neighbour solicitation with a zero-length
 * option) is dropped and counted by tcpip/filter.c, and tested as any drop.
 */
#define TOLERATED 0x4

struct mcase;
typedef int (*special_fn)(const struct mcase *c, uint8_t f[MAX_FRAMES][FRAME_BUF], size_t *lens);

struct mcase {
	const char *name;
	enum base base;
	enum layer layer;	/* where off and keep count from */
	int off;		/* the field's offset in the layer */
	int width;		/* 1, 2 or 4 bytes written big-endian; 0: none */
	uint32_t value;
	uint8_t mask;		/* 1-byte fields: the bits replaced; 0: all */
	int keep;		/* >= 0: the frame ends this many bytes into the layer */
	unsigned flags;
	special_fn special;	/* B_SPECIAL: builds the frames itself */
};

static int sp_ipv4_options_truncated(const struct mcase *, uint8_t [][FRAME_BUF], size_t *);
static int sp_ipv4_frag_beyond_64k(const struct mcase *, uint8_t [][FRAME_BUF], size_t *);
static int sp_ipv4_frags_overlap(const struct mcase *, uint8_t [][FRAME_BUF], size_t *);
static int sp_ipv6_hbh_not_first(const struct mcase *, uint8_t [][FRAME_BUF], size_t *);
static int sp_ipv6_ext_beyond_packet(const struct mcase *, uint8_t [][FRAME_BUF], size_t *);
static int sp_ipv6_routing_type0(const struct mcase *, uint8_t [][FRAME_BUF], size_t *);
static int sp_ipv6_frag_beyond_64k(const struct mcase *, uint8_t [][FRAME_BUF], size_t *);
static int sp_ipv6_frags_overlap(const struct mcase *, uint8_t [][FRAME_BUF], size_t *);
static int sp_ipv6_frag_not_8(const struct mcase *, uint8_t [][FRAME_BUF], size_t *);

#define NONE -1
static const struct mcase cases[] = {
	/* Ethernet and ARP */
	{ "eth-runt-13-bytes", B_UDP4, L_ETH, 0, 0, 0, 0, 13, 0, NULL },
	{ "arp-truncated-header", B_ARP, L_NET, 0, 0, 0, 0, 20, 0, NULL },
	{ "arp-bad-hardware-type", B_ARP, L_NET, 0, 2, 6, 0, NONE, 0, NULL },
	{ "arp-bad-protocol-type", B_ARP, L_NET, 2, 2, 0x86dd, 0, NONE, 0, NULL },
	{ "arp-bad-hardware-length", B_ARP, L_NET, 4, 1, 8, 0, NONE, 0, NULL },
	{ "arp-bad-protocol-length", B_ARP, L_NET, 5, 1, 16, 0, NONE, 0, NULL },
	/* IPv4 */
	{ "ipv4-truncated-header", B_UDP4, L_NET, 0, 0, 0, 0, 12, 0, NULL },
	{ "ipv4-version-5", B_UDP4, L_NET, 0, 1, 0x50, 0xf0, NONE, REPAIR, NULL },
	{ "ipv4-header-length-16", B_UDP4, L_NET, 0, 1, 0x04, 0x0f, NONE, REPAIR, NULL },
	{ "ipv4-header-length-past-packet", B_UDP4, L_NET, 0, 1, 0x0f, 0x0f, NONE, REPAIR, NULL },
	{ "ipv4-total-length-below-header", B_UDP4, L_NET, 2, 2, 16, 0, NONE, REPAIR, NULL },
	{ "ipv4-total-length-past-frame", B_UDP4, L_NET, 2, 2, 1000, 0, NONE, REPAIR, NULL },
	{ "ipv4-bad-header-checksum", B_UDP4, L_NET, 10, 2, 0xdead, 0, NONE, 0, NULL },
	{ "ipv4-source-broadcast", B_UDP4, L_NET, 12, 4, 0xffffffff, 0, NONE, REPAIR, NULL },
	{ "ipv4-source-multicast", B_UDP4, L_NET, 12, 4, 0xe0000001, 0, NONE, REPAIR, NULL },
	{ "ipv4-options-truncated", B_SPECIAL, 0, 0, 0, 0, 0, NONE, 0, sp_ipv4_options_truncated },
	{ "ipv4-fragment-past-64k", B_SPECIAL, 0, 0, 0, 0, 0, NONE, 0, sp_ipv4_frag_beyond_64k },
	{ "ipv4-fragments-overlapping", B_SPECIAL, 0, 0, 0, 0, 0, NONE, 0, sp_ipv4_frags_overlap },
	/* IPv6 */
	{ "ipv6-truncated-header", B_UDP6, L_NET, 0, 0, 0, 0, 30, 0, NULL },
	{ "ipv6-version-4", B_UDP6, L_NET, 0, 1, 0x40, 0xf0, NONE, 0, NULL },
	{ "ipv6-payload-length-past-frame", B_UDP6, L_NET, 4, 2, 1000, 0, NONE, 0, NULL },
	{ "ipv6-source-multicast", B_UDP6, L_NET, 8, 1, 0xff, 0, NONE, REPAIR, NULL },
	{ "ipv6-hop-by-hop-not-first", B_SPECIAL, 0, 0, 0, 0, 0, NONE, 0, sp_ipv6_hbh_not_first },
	{ "ipv6-ext-header-past-packet", B_SPECIAL, 0, 0, 0, 0, 0, NONE, 0, sp_ipv6_ext_beyond_packet },
	{ "ipv6-routing-type-0", B_SPECIAL, 0, 0, 0, 0, 0, NONE, 0, sp_ipv6_routing_type0 },
	{ "ipv6-fragment-past-64k", B_SPECIAL, 0, 0, 0, 0, 0, NONE, 0, sp_ipv6_frag_beyond_64k },
	{ "ipv6-fragments-overlapping", B_SPECIAL, 0, 0, 0, 0, 0, NONE, 0, sp_ipv6_frags_overlap },
	{ "ipv6-fragment-not-multiple-of-8", B_SPECIAL, 0, 0, 0, 0, 0, NONE, 0, sp_ipv6_frag_not_8 },
	/* UDP */
	{ "udp4-bad-checksum", B_UDP4, L_L4, 6, 2, 0x1234, 0, NONE, 0, NULL },
	{ "udp6-bad-checksum", B_UDP6, L_L4, 6, 2, 0x1234, 0, NONE, 0, NULL },
	{ "udp6-zero-checksum", B_UDP6, L_L4, 6, 2, 0, 0, NONE, 0, NULL },
	{ "udp4-length-past-payload", B_UDP4, L_L4, 4, 2, 200, 0, NONE, REPAIR, NULL },
	{ "udp4-length-below-header", B_UDP4, L_L4, 4, 2, 4, 0, NONE, REPAIR, NULL },
	{ "udp6-length-past-payload", B_UDP6, L_L4, 4, 2, 200, 0, NONE, REPAIR, NULL },
	{ "udp4-truncated-header", B_UDP4, L_L4, 0, 0, 0, 0, 4, FIXLEN, NULL },
	{ "udp6-truncated-header", B_UDP6, L_L4, 0, 0, 0, 0, 4, FIXLEN, NULL },
	/* TCP (a SYN to the listener) */
	{ "tcp4-bad-checksum", B_TCP4, L_L4, 16, 2, 0xbeef, 0, NONE, 0, NULL },
	{ "tcp6-bad-checksum", B_TCP6, L_L4, 16, 2, 0xbeef, 0, NONE, 0, NULL },
	{ "tcp4-data-offset-below-header", B_TCP4, L_L4, 12, 1, 0x40, 0xf0, NONE, REPAIR, NULL },
	{ "tcp4-data-offset-past-segment", B_TCP4, L_L4, 12, 1, 0xf0, 0xf0, NONE, REPAIR, NULL },
	{ "tcp6-data-offset-past-segment", B_TCP6, L_L4, 12, 1, 0xf0, 0xf0, NONE, REPAIR, NULL },
	{ "tcp4-option-length-zero", B_TCP4, L_L4, 21, 1, 0, 0, NONE, REPAIR | TOLERATED, NULL },
	{ "tcp4-option-past-header", B_TCP4, L_L4, 21, 1, 40, 0, NONE, REPAIR | TOLERATED, NULL },
	{ "tcp4-truncated-header", B_TCP4, L_L4, 0, 0, 0, 0, 12, FIXLEN, NULL },
	{ "tcp6-truncated-header", B_TCP6, L_L4, 0, 0, 0, 0, 12, FIXLEN, NULL },
	{ "tcp4-to-broadcast", B_TCP4, L_NET, 16, 4, 0xc63364ff, 0, NONE, REPAIR, NULL },
	/* ICMP and ICMPv6 (echo requests, neighbour solicitations) */
	{ "icmp4-bad-checksum", B_ICMP4, L_L4, 2, 2, 0x1111, 0, NONE, 0, NULL },
	{ "icmp4-truncated", B_ICMP4, L_L4, 0, 0, 0, 0, 3, FIXLEN, NULL },
	{ "icmp6-bad-checksum", B_ICMP6, L_L4, 2, 2, 0x1111, 0, NONE, 0, NULL },
	{ "icmp6-truncated", B_ICMP6, L_L4, 0, 0, 0, 0, 3, FIXLEN, NULL },
	{ "ndp-ns-hop-limit-64", B_NS, L_NET, 7, 1, 64, 0, NONE, REPAIR, NULL },
	{ "ndp-ns-code-1", B_NS, L_L4, 1, 1, 1, 0, NONE, REPAIR, NULL },
	{ "ndp-ns-option-length-zero", B_NS, L_L4, 25, 1, 0, 0, NONE, REPAIR, NULL },
	{ "ndp-ns-truncated", B_NS, L_L4, 0, 0, 0, 0, 16, FIXLEN | REPAIR, NULL },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static bool base_v6(enum base b)
{
	return b == B_UDP6 || b == B_TCP6 || b == B_ICMP6 || b == B_NS;
}

/* Where a layer starts in a frame built here (no IPv4 options). */
static size_t layer_off(enum base b, enum layer l)
{
	if (l == L_ETH)
		return 0;
	if (l == L_NET)
		return FRAME_ETH_HLEN;
	return FRAME_ETH_HLEN + (base_v6(b) ? FRAME_IPV6_HLEN : FRAME_IPV4_HLEN);
}

/* The case's frame before the damage: valid, and answered or delivered. */
static ssize_t build_base(enum base b, uint8_t *f)
{
	const struct frame_path *path = base_v6(b) ? &to6 : &to4;
	struct frame_tcp t = { .sport = PEER_PORT, .dport = LISTEN_PORT, .seq = PEER_ISN,
			       .flags = FRAME_TCP_SYN, .window = 65535, .opts = syn_opts,
			       .opts_len = sizeof(syn_opts) };

	switch (b) {
	case B_UDP4:
	case B_UDP6:
		return frame_udp(f, FRAME_BUF, path, 5353, UDP_PORT, payload, sizeof(payload));
	case B_TCP4:
	case B_TCP6:
		return frame_tcp(f, FRAME_BUF, path, &t);
	case B_ICMP4:
	case B_ICMP6:
		return frame_icmp_echo(f, FRAME_BUF, path, false, 7, 1, payload, sizeof(payload));
	case B_ARP:
		return frame_arp(f, FRAME_BUF, &to4, FRAME_ARP_REQUEST);
	case B_NS:
		return frame_ndp_ns(f, FRAME_BUF, &to6);
	default:
		return -EINVAL;
	}
}

static void set_ip_length(uint8_t *f, size_t len)
{
	if (repair_get16(f + 12) == FRAME_ETH_IPV4)
		repair_put16(f + FRAME_ETH_HLEN + 2, (uint16_t)(len - FRAME_ETH_HLEN));
	else
		repair_put16(f + FRAME_ETH_HLEN + 4, (uint16_t)(len - FRAME_ETH_HLEN - FRAME_IPV6_HLEN));
}

static void repair_all(uint8_t *f, size_t len)
{
	struct repair_l4 l;

	repair_find_l4(f, len, &l);
	repair_csums(f, len, &l);
}

/* Build the case's frames. Return: how many. */
static int build_case(const struct mcase *c, uint8_t f[MAX_FRAMES][FRAME_BUF], size_t *lens)
{
	size_t at;
	ssize_t n;
	uint8_t *p;

	if (c->base == B_SPECIAL)
		return c->special(c, f, lens);
	n = build_base(c->base, f[0]);
	cr_assert_gt(n, 0, "%s: the base frame", c->name);
	at = layer_off(c->base, c->layer);
	p = f[0] + at + c->off;
	switch (c->width) {
	case 1:
		*p = c->mask ? (uint8_t)((*p & ~c->mask) | (c->value & c->mask)) : (uint8_t)c->value;
		break;
	case 2:
		repair_put16(p, (uint16_t)c->value);
		break;
	case 4:
		repair_put32(p, c->value);
		break;
	}
	if (c->keep >= 0) {
		n = (ssize_t)(at + (size_t)c->keep);
		if (c->flags & FIXLEN)
			set_ip_length(f[0], (size_t)n);
	}
	if (c->flags & REPAIR)
		repair_all(f[0], (size_t)n);
	lens[0] = (size_t)n;
	return 1;
}

/* An IP packet around a payload, with checksums made right. */
static size_t ip_frame(uint8_t *f, const struct frame_path *path, uint8_t proto, const uint8_t *pl,
		       size_t len)
{
	ssize_t n = frame_ip(f, FRAME_BUF, path, proto, pl, len);

	cr_assert_gt(n, 0, "frame_ip: %zd", n);
	return (size_t)n;
}

/* A UDP datagram's bytes (header and payload) to the UDP socket. */
static size_t udp_bytes(const struct frame_path *path, uint8_t *out, size_t datalen)
{
	uint8_t f[FRAME_BUF], data[1024];
	size_t hl = path->src.family == AF_INET ? FRAME_IPV4_HLEN : FRAME_IPV6_HLEN;
	ssize_t n;

	memset(data, 'u', sizeof(data));
	n = frame_udp(f, sizeof(f), path, 5353, UDP_PORT, data, datalen);
	cr_assert_gt(n, 0);
	memcpy(out, f + FRAME_ETH_HLEN + hl, (size_t)n - FRAME_ETH_HLEN - hl);
	return (size_t)n - FRAME_ETH_HLEN - hl;
}

/* The base UDP datagram over IPv4 with 4 bytes of options. Return: its length. */
static size_t udp4_with_options(uint8_t *f, const uint8_t opt[4])
{
	uint8_t plain[FRAME_BUF];
	ssize_t n = frame_udp(plain, FRAME_BUF, &to4, 5353, UDP_PORT, payload, sizeof(payload));
	uint8_t *ip = f + FRAME_ETH_HLEN;

	cr_assert_gt(n, 0);
	memcpy(f, plain, FRAME_ETH_HLEN + FRAME_IPV4_HLEN);
	ip[0] = 0x46;
	memcpy(ip + FRAME_IPV4_HLEN, opt, 4);
	memcpy(ip + FRAME_IPV4_HLEN + 4, plain + FRAME_ETH_HLEN + FRAME_IPV4_HLEN,
	       (size_t)n - FRAME_ETH_HLEN - FRAME_IPV4_HLEN);
	set_ip_length(f, (size_t)n + 4);
	repair_all(f, (size_t)n + 4);
	return (size_t)n + 4;
}

static int sp_ipv4_options_truncated(const struct mcase *c, uint8_t f[][FRAME_BUF], size_t *lens)
{
	/* Record route claiming 39 bytes in a 4-byte options area. */
	static const uint8_t opt[4] = { 7, 39, 4, 0 };

	(void)c;
	lens[0] = udp4_with_options(f[0], opt);
	return 1;
}

/* IPv4 fragments of one UDP datagram: @off bytes into it, @len bytes. */
static size_t frag4(uint8_t *f, const uint8_t *dgram, size_t off, size_t len, bool more)
{
	size_t n = ip_frame(f, &to4, IPPROTO_UDP, dgram + off, len);
	uint8_t *ip = f + FRAME_ETH_HLEN;

	repair_put16(ip + 4, 0x4242);
	repair_put16(ip + 6, (uint16_t)((more ? 0x2000 : 0) | (off / 8)));
	repair_put16(ip + 10, 0);
	repair_put16(ip + 10, frame_csum(ip, FRAME_IPV4_HLEN, 0));
	return n;
}

static int sp_ipv4_frag_beyond_64k(const struct mcase *c, uint8_t f[][FRAME_BUF], size_t *lens)
{
	uint8_t d[2048];

	(void)c;
	memset(d, 'z', sizeof(d));
	/* The last fragment, at offset 65528, carries 64 bytes: past 65535. */
	lens[0] = frag4(f[0], d, 0, 64, false);
	repair_put16(f[0] + FRAME_ETH_HLEN + 6, 65528 / 8);
	repair_put16(f[0] + FRAME_ETH_HLEN + 10, 0);
	repair_put16(f[0] + FRAME_ETH_HLEN + 10, frame_csum(f[0] + FRAME_ETH_HLEN, FRAME_IPV4_HLEN, 0));
	lens[1] = frag4(f[1], d, 0, 64, true);
	return 2;
}

static int sp_ipv4_frags_overlap(const struct mcase *c, uint8_t f[][FRAME_BUF], size_t *lens)
{
	uint8_t d[1024];
	size_t len = udp_bytes(&to4, d, 600);

	(void)c;
	lens[0] = frag4(f[0], d, 0, 512, true);
	lens[1] = frag4(f[1], d, 504, len - 504, false);	/* 8 bytes over the first */
	return 2;
}

/* IPv6 with the given extension headers before a UDP datagram. */
static size_t ipv6_with_ext(uint8_t *f, uint8_t first, const uint8_t *ext, size_t extlen)
{
	uint8_t pl[FRAME_BUF];
	size_t n;

	memcpy(pl, ext, extlen);
	n = udp_bytes(&to6, pl + extlen, 16);
	n = ip_frame(f, &to6, first, pl, extlen + n);
	repair_all(f, n);
	return n;
}

static int sp_ipv6_hbh_not_first(const struct mcase *c, uint8_t f[][FRAME_BUF], size_t *lens)
{
	/* Destination options, then hop-by-hop (only allowed first), then UDP. */
	static const uint8_t ext[16] = { 0, 0, 1, 4, 0, 0, 0, 0, IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0 };

	(void)c;
	lens[0] = ipv6_with_ext(f[0], 60, ext, sizeof(ext));
	return 1;
}

static int sp_ipv6_ext_beyond_packet(const struct mcase *c, uint8_t f[][FRAME_BUF], size_t *lens)
{
	/* Destination options claiming 168 bytes. */
	static const uint8_t ext[8] = { IPPROTO_UDP, 20, 1, 4, 0, 0, 0, 0 };

	(void)c;
	lens[0] = ipv6_with_ext(f[0], 60, ext, sizeof(ext));
	return 1;
}

static int sp_ipv6_routing_type0(const struct mcase *c, uint8_t f[][FRAME_BUF], size_t *lens)
{
	/* RFC 5095: a type 0 routing header with segments left is an error. */
	uint8_t ext[24] = { IPPROTO_UDP, 2, 0, 1 };

	(void)c;
	memcpy(ext + 8, &to6.dst.v6, 16);
	lens[0] = ipv6_with_ext(f[0], 43, ext, sizeof(ext));
	return 1;
}

/* An IPv6 fragment of @dgram: @off bytes into it, @len bytes. */
static size_t frag6(uint8_t *f, const uint8_t *dgram, size_t off, size_t len, bool more)
{
	uint8_t pl[FRAME_BUF] = { IPPROTO_UDP, 0 };

	repair_put16(pl + 2, (uint16_t)((off & 0xfff8) | (more ? 1 : 0)));
	repair_put32(pl + 4, 0x4242);
	memcpy(pl + 8, dgram + off, len);
	return ip_frame(f, &to6, 44, pl, len + 8);
}

static int sp_ipv6_frag_beyond_64k(const struct mcase *c, uint8_t f[][FRAME_BUF], size_t *lens)
{
	uint8_t d[2048];

	(void)c;
	memset(d, 'z', sizeof(d));
	lens[0] = frag6(f[0], d, 0, 64, false);
	repair_put16(f[0] + FRAME_ETH_HLEN + FRAME_IPV6_HLEN + 2, 65528);
	lens[1] = frag6(f[1], d, 0, 64, true);
	return 2;
}

static int sp_ipv6_frags_overlap(const struct mcase *c, uint8_t f[][FRAME_BUF], size_t *lens)
{
	uint8_t d[1024];
	size_t len = udp_bytes(&to6, d, 600);

	(void)c;
	lens[0] = frag6(f[0], d, 0, 512, true);
	lens[1] = frag6(f[1], d, 504, len - 504, false);
	return 2;
}

static int sp_ipv6_frag_not_8(const struct mcase *c, uint8_t f[][FRAME_BUF], size_t *lens)
{
	uint8_t d[1024];
	size_t len = udp_bytes(&to6, d, 600);

	(void)c;
	/* RFC 8200: a fragment with M set must carry a multiple of 8 bytes. */
	lens[0] = frag6(f[0], d, 0, 509, true);
	lens[1] = frag6(f[1], d, 509, len - 509, false);
	repair_put16(f[1] + FRAME_ETH_HLEN + FRAME_IPV6_HLEN + 2, 509 & 0xfff8);
	return 2;
}

/* ------------------------------------------------------------------ */
/* Driving the stack                                                   */
/* ------------------------------------------------------------------ */

static void inject(const uint8_t *f, size_t len)
{
	int rc = ns_channel_inject(chan, f, len);

	cr_assert_eq(rc, 0, "ns_channel_inject: %d", rc);
}

/* One round of the stack, answering its neighbour queries for the peer;
 * every other frame it sent is handed to @fn. */
static void run(void (*fn)(const struct chan_frame *f, void *arg), void *arg)
{
	chanstack_run(stack, chan, &to4, &to6, fn, arg);
}

static uint64_t drops(void)
{
	struct ns_stats st;

	cr_assert_eq(ns_stack_stats(stack, &st), 0);
	return st.rx_malformed + st.rx_dropped;
}

/* Whether the stack answered at all (TCP, ICMP, neighbour discovery). */
static void note_answer(const struct chan_frame *s, void *arg)
{
	if (s->p.proto == IPPROTO_TCP || (s->p.proto == IPPROTO_ICMPV6 && s->p.icmp_type == ND_NEIGHBOR_ADVERT))
		*(bool *)arg = true;
}

/* An answer to a malformed frame: anything but an ICMP error or MLD. */
static void no_answer(const struct chan_frame *s, void *arg)
{
	const char *name = arg;

	if (s->p.proto == IPPROTO_ICMP && (s->p.icmp_type == ICMP_UNREACH || s->p.icmp_type == ICMP_TIMXCEED ||
					   s->p.icmp_type == ICMP_PARAMPROB))
		return;
	if (s->p.proto == IPPROTO_ICMPV6 && (s->p.icmp_type < 128 || s->p.icmp_type == MLD_LISTENER_REPORT ||
					     s->p.icmp_type == 143))
		return;
	cr_assert_fail("%s: the stack answered (ethertype 0x%04x, proto %u, type %u, flags 0x%02x)", name,
		       s->p.ethertype, s->p.proto, s->p.icmp_type, s->p.tcp_flags);
}

struct expect_seg {
	struct tcp_peer *peer;
	uint8_t flags;
	bool with_data;
	bool seen;
};

static void absorb(const struct chan_frame *s, void *arg)
{
	struct expect_seg *e = arg;

	if (s->p.proto != IPPROTO_TCP || s->p.dport != e->peer->sport)
		return;
	tcp_peer_absorb(e->peer, &s->p);
	if ((s->p.tcp_flags & e->flags) == e->flags && (!e->with_data || s->p.payload_len))
		e->seen = true;
}

/* The stack still serves: a handshake from a new peer port, data both
 * ways, then the peer resets the connection. */
static void assert_serves(const struct mcase *c)
{
	bool v6 = c->base == B_SPECIAL ? strstr(c->name, "ipv6") != NULL : base_v6(c->base);
	struct tcp_peer peer;
	struct expect_seg e = { .peer = &peer, .flags = FRAME_TCP_SYN | FRAME_TCP_ACK };
	uint8_t buf[FRAME_BUF];
	char got[16];
	ssize_t n;
	int s;

	tcp_peer_init(&peer, v6 ? &to6 : &to4, CHECK_PORT, LISTEN_PORT, PEER_ISN);
	n = tcp_peer_syn(&peer, buf, sizeof(buf), syn_opts, sizeof(syn_opts));
	inject(buf, (size_t)n);
	run(absorb, &e);
	cr_assert(e.seen, "%s: no SYN-ACK afterwards: the stack stopped serving", c->name);
	inject(buf, (size_t)tcp_peer_ack(&peer, buf, sizeof(buf)));
	inject(buf, (size_t)tcp_peer_data(&peer, buf, sizeof(buf), "ping", 4));
	run(absorb, &e);
	s = ns_accept(stack, listener, NULL, NULL, SOCK_NONBLOCK);
	cr_assert_geq(s, 0, "%s: the connection afterwards was not accepted: %d", c->name, s);
	n = ns_recv(stack, s, got, sizeof(got), MSG_DONTWAIT);
	cr_assert_eq(n, 4, "%s: recv afterwards: %zd", c->name, n);
	cr_assert(!memcmp(got, "ping", 4));
	cr_assert_eq(ns_send(stack, s, "pong", 4, MSG_DONTWAIT), 4);
	e = (struct expect_seg){ .peer = &peer, .flags = FRAME_TCP_ACK, .with_data = true };
	run(absorb, &e);
	cr_assert(e.seen, "%s: the stack's data afterwards never came", c->name);
	inject(buf, (size_t)tcp_peer_rst(&peer, buf, sizeof(buf)));
	run(NULL, NULL);
	ns_close(stack, s);
}

/* ------------------------------------------------------------------ */
/* Set-up and the test                                                 */
/* ------------------------------------------------------------------ */

static int socket_on(int type, uint16_t port)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	int s = ns_socket(stack, AF_INET6, type | SOCK_NONBLOCK, 0);

	cr_assert_geq(s, 0);
	a6.sin6_addr = in6addr_any;
	cr_assert_eq(ns_bind(stack, s, (struct sockaddr *)&a6, sizeof(a6)), 0);
	return s;
}

static void setup(void)
{
	stack = chanstack_new(&chan, &to4, &to6);
	listener = socket_on(SOCK_STREAM, LISTEN_PORT);
	cr_assert_eq(ns_listen(stack, listener, 8), 0);
	udp = socket_on(SOCK_DGRAM, UDP_PORT);
	run(NULL, NULL);
}

static void teardown(void)
{
	ns_stack_free(stack);
	stack = NULL;
}

ParameterizedTestParameters(malformed, dropped_counted_and_still_serving)
{
	static unsigned idx[NCASES];
	size_t i;

	for (i = 0; i < NCASES; i++)
		idx[i] = (unsigned)i;
	return cr_make_param_array(unsigned, idx, NCASES);
}

ParameterizedTest(unsigned *i, malformed, dropped_counted_and_still_serving,
		  .init = setup, .fini = teardown, .timeout = 30)
{
	const struct mcase *c = &cases[*i];
	uint8_t frames[MAX_FRAMES][FRAME_BUF];
	size_t lens[MAX_FRAMES];
	uint64_t before;
	uint8_t sink[256];
	ssize_t n;
	int k, nf;

	nf = build_case(c, frames, lens);
	/* The stack has settled: what it sends from here answers the case. */
	before = drops();
	for (k = 0; k < nf; k++)
		inject(frames[k], lens[k]);
	if (c->flags & TOLERATED) {
		bool answered = false;

		run(note_answer, &answered);
		n = ns_recvfrom(stack, udp, sink, sizeof(sink), MSG_DONTWAIT, NULL, NULL);
		cr_expect(answered || n >= 0, "%s: neither answered nor delivered: no longer as pinned", c->name);
	} else {
		run(no_answer, (void *)c->name);
		cr_expect_gt(drops(), before, "%s: dropped without a counter moving", c->name);
		n = ns_recvfrom(stack, udp, sink, sizeof(sink), MSG_DONTWAIT, NULL, NULL);
		cr_expect_eq(n, -EAGAIN, "%s: delivered to the UDP socket (%zd)", c->name, n);
	}
	/* Nothing is accepted (a tolerated SYN leaves a half-open connection). */
	n = ns_accept(stack, listener, NULL, NULL, SOCK_NONBLOCK);
	cr_expect_eq(n, -EAGAIN, "%s: a connection came of it (%zd)", c->name, n);
	assert_serves(c);
}

/* The base frames themselves are right: each is answered or delivered, so
 * a case's drop is the damage's doing. */
Test(malformed, base_frames_are_accepted, .init = setup, .fini = teardown, .timeout = 30)
{
	static const enum base bases[] = { B_UDP4, B_UDP6, B_ICMP4, B_ICMP6, B_ARP, B_NS };
	uint8_t f[FRAME_BUF], sink[256];
	size_t i;

	for (i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		uint64_t before = drops();
		ssize_t n = build_base(bases[i], f);

		inject(f, (size_t)n);
		run(NULL, NULL);
		cr_expect_eq(drops(), before, "base %zu was dropped", i);
	}
	cr_expect_eq(ns_recvfrom(stack, udp, sink, sizeof(sink), MSG_DONTWAIT, NULL, NULL), (ssize_t)sizeof(payload));
	cr_expect_eq(ns_recvfrom(stack, udp, sink, sizeof(sink), MSG_DONTWAIT, NULL, NULL), (ssize_t)sizeof(payload));
}

/* Options that add up are no reason to drop: router alert, and no-ops
 * ending in end-of-options, as Linux takes them. */
Test(malformed, ipv4_options_that_add_up_are_taken, .init = setup, .fini = teardown, .timeout = 30)
{
	static const uint8_t opts[][4] = { { 148, 4, 0, 0 }, { 1, 1, 1, 0 } };
	uint8_t f[FRAME_BUF], sink[256];
	size_t i;

	for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		uint64_t before = drops();

		inject(f, udp4_with_options(f, opts[i]));
		run(NULL, NULL);
		cr_expect_eq(drops(), before, "options %zu were dropped", i);
		cr_expect_eq(ns_recvfrom(stack, udp, sink, sizeof(sink), MSG_DONTWAIT, NULL, NULL),
			     (ssize_t)sizeof(payload), "options %zu: not delivered", i);
	}
}
