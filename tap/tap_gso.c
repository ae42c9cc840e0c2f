/* SPDX-License-Identifier: MIT */
/*
 * tap_gso.c - the transmit coalescer of tap_gso.h: parses each offered TCP
 * segment's headers, decides whether the kernel's segmentation of the
 * pending frame would reproduce it, and writes the pending frame's headers
 * (lengths, IPv4 header checksum, the TCP pseudo-header sum the kernel
 * completes per segment) and virtio-net header when it is sent.
 */
#include <linux/virtio_net.h>
#include <string.h>

#include "tap_csum.h"
#include "tap_gso.h"

#define ETHTYPE_IP 0x0800
#define ETHTYPE_IPV6 0x86dd
#define IP_PROTO_TCP 6
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CSUM_OFF 16u	/* the checksum field within the TCP header */

/* A frame's headers as tap_gso_add() reads them. */
struct seg {
	uint8_t h[TAP_GSO_HDR_MAX];
	uint16_t hlen, l4;
	bool v6;
	uint32_t seq;
	size_t payload;
};

/* Copy the first @n bytes of a gather list; return how many there were. */
static size_t iov_head(const struct iovec *iov, int iovcnt, uint8_t *dst, size_t n)
{
	size_t got = 0;
	int i;

	for (i = 0; i < iovcnt && got < n; i++) {
		size_t k = iov[i].iov_len < n - got ? iov[i].iov_len : n - got;

		memcpy(dst + got, iov[i].iov_base, k);
		got += k;
	}
	return got;
}

/* Where a frame's TCP header is, if it is an unfragmented TCP packet with
 * its headers in the first TAP_GSO_HDR_MAX bytes; fills @s but seq and
 * payload. */
static bool tcp_parse(const struct iovec *iov, int iovcnt, size_t len, struct seg *s)
{
	size_t have = iov_head(iov, iovcnt, s->h, len < TAP_GSO_HDR_MAX ? len : TAP_GSO_HDR_MAX);
	const uint8_t *ip = s->h + TAP_ETH_HLEN;
	size_t thlen;

	if (have < TAP_ETH_HLEN + 20u + 20u)
		return false;
	switch (tap_get16(s->h + 12)) {
	case ETHTYPE_IP:
		/* No options (the kernel copies them to every piece, but
		 * lwIP sends none), not a fragment, the length exact. */
		if (ip[0] != 0x45 || ip[9] != IP_PROTO_TCP || (tap_get16(ip + 6) & 0x3fff) ||
		    tap_get16(ip + 2) != len - TAP_ETH_HLEN)
			return false;
		s->v6 = false;
		s->l4 = TAP_ETH_HLEN + 20;
		break;
	case ETHTYPE_IPV6:
		/* TCP right after the fixed header: no extension headers. */
		if (have < TAP_ETH_HLEN + 40u + 20u || (ip[0] >> 4) != 6 || ip[6] != IP_PROTO_TCP ||
		    tap_get16(ip + 4) != len - TAP_ETH_HLEN - 40)
			return false;
		s->v6 = true;
		s->l4 = TAP_ETH_HLEN + 40;
		break;
	default:
		return false;
	}
	thlen = (size_t)(s->h[s->l4 + 12] >> 4) * 4;
	if (thlen < 20 || s->l4 + thlen > have)
		return false;
	s->hlen = (uint16_t)(s->l4 + thlen);
	return true;
}

/* Whether the frame is a TCP data segment the coalescer may take; fills @s. */
static bool seg_parse(const struct iovec *iov, int iovcnt, size_t len, struct seg *s)
{
	const uint8_t *th;

	if (!tcp_parse(iov, iovcnt, len, s))
		return false;
	/* ACK, maybe PSH: nothing the kernel would treat specially per piece
	 * (it keeps FIN on the last piece, CWR on the first, but lwIP's
	 * FIN rides alone often enough not to matter). */
	th = s->h + s->l4;
	if ((th[13] & ~TCP_PSH) != TCP_ACK || (th[12] & 0x0f))
		return false;
	if (len <= s->hlen)
		return false;	/* no data: a pure ACK or a probe */
	s->payload = len - s->hlen;
	s->seq = tap_get32(th + 4);
	return true;
}

/* Whether the segment joins the pending frame, headers and sizes alike. */
static bool seg_fits(const struct tap_gso *g, const struct seg *s)
{
	const uint8_t *a = g->hdr, *b = s->h;
	size_t ip = TAP_ETH_HLEN, l4 = g->l4, iplen;

	if (g->closed || s->v6 != g->v6 || s->hlen != g->hlen || s->seq != g->next_seq ||
	    s->payload > g->mss || g->nseg == TAP_GSO_SEGS_MAX)
		return false;
	/* What the IP length field of the frame would hold with it. */
	iplen = g->hlen - TAP_ETH_HLEN - (g->v6 ? 40u : 0u) + g->payload + s->payload;
	if (iplen > 0xffff)
		return false;
	if (memcmp(a, b, TAP_ETH_HLEN))
		return false;
	if (g->v6) {
		/* Version, class and flow label; next header, hop limit and
		 * both addresses. Not the payload length. */
		if (memcmp(a + ip, b + ip, 4) || memcmp(a + ip + 6, b + ip + 6, 34))
			return false;
	} else {
		/* Version, header length, TOS; flags, TTL, protocol; both
		 * addresses. Not the length, id or checksum. */
		if (memcmp(a + ip, b + ip, 2) || memcmp(a + ip + 6, b + ip + 6, 4) ||
		    memcmp(a + ip + 12, b + ip + 12, 8))
			return false;
	}
	/* Ports; ack, offset and window; urgent pointer and the options
	 * (timestamps equal byte for byte). Not seq, PSH or the checksum. */
	return !memcmp(a + l4, b + l4, 4) && !memcmp(a + l4 + 8, b + l4 + 8, 5) &&
	       !memcmp(a + l4 + 14, b + l4 + 14, 2) &&
	       !memcmp(a + l4 + 18, b + l4 + 18, (size_t)g->hlen - l4 - 18);
}

void tap_gso_init(struct tap_gso *g,
		  int (*emit)(void *arg, const struct tap_txframe *f, unsigned nseg, size_t wire),
		  void (*release)(void *arg, void *cookie), void *arg)
{
	memset(g, 0, sizeof(*g));
	g->emit = emit;
	g->release = release;
	g->arg = arg;
}

static void gso_release(struct tap_gso *g)
{
	unsigned i;

	for (i = 0; i < g->nseg; i++)
		g->release(g->arg, g->cookie[i]);
	g->nseg = 0;
}

void tap_gso_discard(struct tap_gso *g)
{
	gso_release(g);
}

/* Append the payload of a frame, past its @skip header bytes. */
static bool gso_append(struct tap_gso *g, const struct iovec *iov, int iovcnt, size_t skip)
{
	int i, n = g->iovcnt;

	for (i = 0; i < iovcnt; i++) {
		const uint8_t *base = iov[i].iov_base;
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		if (n == TAP_TX_IOV_MAX)
			return false;
		g->iov[n].iov_base = (void *)(base + skip);
		g->iov[n].iov_len = l - skip;
		skip = 0;
		n++;
	}
	g->iovcnt = n;
	return true;
}

/* Start a pending frame with @s. Return: false if its payload needs more
 * gather entries than a frame may have. */
static bool gso_start(struct tap_gso *g, const struct seg *s, const struct iovec *iov, int iovcnt)
{
	memcpy(g->hdr, s->h, s->hlen);
	g->hlen = s->hlen;
	g->l4 = s->l4;
	g->v6 = s->v6;
	g->mss = (uint16_t)s->payload;
	g->closed = false;
	g->payload = 0;
	g->wire = 0;
	g->iov[0].iov_base = g->hdr;
	g->iov[0].iov_len = s->hlen;
	g->iovcnt = 1;
	return gso_append(g, iov, iovcnt, s->hlen);
}

bool tap_gso_add(struct tap_gso *g, const struct iovec *iov, int iovcnt, size_t len, void *cookie)
{
	struct seg s;
	int saved;

	if (!seg_parse(iov, iovcnt, len, &s)) {
		tap_gso_flush(g);
		return false;
	}
	saved = g->iovcnt;
	if (!g->nseg || !seg_fits(g, &s) || !gso_append(g, iov, iovcnt, s.hlen)) {
		g->iovcnt = saved;
		tap_gso_flush(g);
		if (!gso_start(g, &s, iov, iovcnt))
			return false;	/* too scattered to take at all */
	}
	/* The frame's flags are its last segment's: PSH where the kernel
	 * puts it, on the last piece. */
	g->hdr[g->l4 + 13] = s.h[s.l4 + 13];
	g->closed = s.payload < g->mss;
	g->next_seq = s.seq + (uint32_t)s.payload;
	g->payload += s.payload;
	g->wire += len;
	g->cookie[g->nseg++] = cookie;
	return true;
}

/* The TCP checksum field of a partial checksum (NEEDS_CSUM): the
 * pseudo-header's sum, not complemented, for @tcplen bytes of TCP; the
 * kernel adds the bytes from csum_start on (adjusting the length to each
 * piece's when it cuts a GSO frame). @hdr: the frame from Ethernet on. */
static uint16_t tcp_csum_seed(const uint8_t *hdr, bool v6, size_t tcplen)
{
	const uint8_t *ip = hdr + TAP_ETH_HLEN;
	uint8_t pseudo[40];
	size_t plen;

	if (v6) {
		/* Addresses, the upper-layer length (32 bits), zeros, next header. */
		memcpy(pseudo, ip + 8, 32);
		memset(pseudo + 32, 0, 8);
		tap_put16(pseudo + 34, (uint16_t)tcplen);
		pseudo[39] = IP_PROTO_TCP;
		plen = 40;
	} else {
		memcpy(pseudo, ip + 12, 8);
		pseudo[8] = 0;
		pseudo[9] = IP_PROTO_TCP;
		tap_put16(pseudo + 10, (uint16_t)tcplen);
		plen = 12;
	}
	return (uint16_t)tap_csum_add(0, pseudo, plen);	/* host order, as it loads */
}

static void csum_partial_offload(struct tap_offload *off, uint16_t l4)
{
	memset(off, 0, sizeof(*off));
	off->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	off->csum_start = l4;
	off->csum_offset = TCP_CSUM_OFF;
}

bool tap_tcp_csum_partial(const struct iovec *iov, int iovcnt, size_t len, struct tap_offload *off)
{
	struct seg s;
	uint16_t seed;
	size_t at, k, base;
	int i;

	if (!tcp_parse(iov, iovcnt, len, &s))
		return false;
	seed = tcp_csum_seed(s.h, s.v6, len - s.l4);
	/* Into the frame itself, wherever its gather list holds the field
	 * (the two bytes may straddle two entries). */
	at = s.l4 + TCP_CSUM_OFF;
	for (i = 0, k = 0, base = 0; i < iovcnt && k < 2; base += iov[i].iov_len, i++)
		for (; k < 2 && at + k < base + iov[i].iov_len; k++)
			((uint8_t *)iov[i].iov_base)[at + k - base] = ((const uint8_t *)&seed)[k];
	csum_partial_offload(off, s.l4);
	return true;
}

/* Make the pending frame's headers those of one frame of all its data. */
static void gso_fix_headers(struct tap_gso *g, struct tap_offload *off)
{
	uint8_t *ip = g->hdr + TAP_ETH_HLEN, *th = g->hdr + g->l4;
	size_t tcplen = g->hlen - g->l4 + g->payload;
	uint16_t sum;

	if (g->v6) {
		tap_put16(ip + 4, (uint16_t)tcplen);
	} else {
		tap_put16(ip + 2, (uint16_t)(20 + tcplen));
		memset(ip + 10, 0, 2);
		sum = (uint16_t)~tap_csum_add(0, ip, 20);
		memcpy(ip + 10, &sum, 2);	/* host order, as the sum loads */
	}
	/* NEEDS_CSUM over the whole frame's TCP length; the kernel adjusts
	 * the seed to each piece's length and adds the piece's bytes. */
	sum = tcp_csum_seed(g->hdr, g->v6, tcplen);
	memcpy(th + TCP_CSUM_OFF, &sum, 2);
	csum_partial_offload(off, g->l4);
	if (g->nseg == 1)
		return;
	off->gso_type = g->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
	off->hdr_len = g->hlen;
	off->gso_size = g->mss;
}

int tap_gso_flush(struct tap_gso *g)
{
	struct tap_txframe f = { .iov = g->iov };
	int rc;

	if (!g->nseg)
		return 1;
	/* One segment goes out as lwIP built it (the header copy is its
	 * header as it was then), its checksum left to the kernel if lwIP
	 * left it out. */
	if (g->nseg > 1 || g->csum_partial)
		gso_fix_headers(g, &f.off);
	f.iovcnt = g->iovcnt;
	f.len = g->hlen + g->payload;
	rc = g->emit(g->arg, &f, g->nseg, g->wire);
	gso_release(g);
	return rc;
}
