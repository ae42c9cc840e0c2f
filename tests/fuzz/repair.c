/* SPDX-License-Identifier: MIT */
/*
 * repair.c - see repair.h: locating a frame's upper layer and recomputing
 * its checksums with the frame toolkit's internet checksum.
 */
#include <arpa/inet.h>
#include <string.h>

#include "frames.h"
#include "repair.h"

#define ETH_HLEN FRAME_ETH_HLEN
#define IP6_EXT_HOPOPTS 0u
#define IP6_EXT_ROUTING 43u
#define IP6_EXT_FRAGMENT 44u
#define IP6_EXT_DSTOPTS 60u

uint16_t repair_get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return ntohs(v);
}

uint32_t repair_get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return ntohl(v);
}

void repair_put16(uint8_t *p, uint16_t v)
{
	v = htons(v);
	memcpy(p, &v, sizeof(v));
}

void repair_put32(uint8_t *p, uint32_t v)
{
	v = htonl(v);
	memcpy(p, &v, sizeof(v));
}

/* Find the upper layer of an IPv4 or IPv6 frame. A fragment has none. */
void repair_find_l4(uint8_t *f, size_t len, struct repair_l4 *l)
{
	uint16_t type;

	memset(l, 0, sizeof(*l));
	if (len < ETH_HLEN)
		return;
	type = repair_get16(f + 12);
	f += ETH_HLEN;
	len -= ETH_HLEN;
	if (type == FRAME_ETH_IPV4 && len >= FRAME_IPV4_HLEN) {
		size_t ihl = (size_t)(f[0] & 0xf) * 4, tot = repair_get16(f + 2);

		if (ihl < FRAME_IPV4_HLEN || ihl > len || tot < ihl)
			return;
		if (tot > len)
			tot = len;
		if (repair_get16(f + 6) & 0x3fff)	/* MF or an offset */
			return;
		l->proto = f[9];
		l->hdr = f + ihl;
		l->len = tot - ihl;
		memcpy(l->pseudo, f + 12, 8);
		l->pseudo[9] = l->proto;
		repair_put16(l->pseudo + 10, (uint16_t)l->len);
		l->pseudo_len = 12;
	} else if (type == FRAME_ETH_IPV6 && len >= FRAME_IPV6_HLEN) {
		size_t plen = repair_get16(f + 4), off = FRAME_IPV6_HLEN;
		uint8_t nh = f[6];

		if (plen > len - FRAME_IPV6_HLEN)
			plen = len - FRAME_IPV6_HLEN;
		while (nh == IP6_EXT_HOPOPTS || nh == IP6_EXT_ROUTING || nh == IP6_EXT_DSTOPTS) {
			size_t ext;

			if (off + 2 > FRAME_IPV6_HLEN + plen)
				return;
			ext = ((size_t)f[off + 1] + 1) * 8;
			nh = f[off];
			off += ext;
		}
		if (nh == IP6_EXT_FRAGMENT || off > FRAME_IPV6_HLEN + plen)
			return;
		l->proto = nh;
		l->hdr = f + off;
		l->len = FRAME_IPV6_HLEN + plen - off;
		memcpy(l->pseudo, f + 8, 32);
		repair_put32(l->pseudo + 32, (uint32_t)l->len);
		l->pseudo[39] = nh;
		l->pseudo_len = 40;
	}
}

void repair_csums(uint8_t *f, size_t len, const struct repair_l4 *l)
{
	size_t off;
	uint16_t c;

	if (len >= ETH_HLEN + FRAME_IPV4_HLEN && repair_get16(f + 12) == FRAME_ETH_IPV4) {
		size_t ihl = (size_t)(f[ETH_HLEN] & 0xf) * 4;

		if (ihl >= FRAME_IPV4_HLEN && ETH_HLEN + ihl <= len) {
			repair_put16(f + ETH_HLEN + 10, 0);
			repair_put16(f + ETH_HLEN + 10, frame_csum(f + ETH_HLEN, ihl, 0));
		}
	}
	if (!l->hdr)
		return;
	switch (l->proto) {
	case IPPROTO_TCP:
		off = 16;
		break;
	case IPPROTO_UDP:
		off = 6;
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		off = 2;
		break;
	default:
		return;
	}
	if (l->len < off + 2)
		return;
	repair_put16(l->hdr + off, 0);
	if (l->proto == IPPROTO_ICMP)
		c = frame_csum(l->hdr, l->len, 0);
	else
		c = frame_csum(l->hdr, l->len, (uint16_t)~frame_csum(l->pseudo, l->pseudo_len, 0));
	if (l->proto == IPPROTO_UDP && c == 0)
		c = 0xffff;
	repair_put16(l->hdr + off, c);
}

