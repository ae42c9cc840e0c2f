/* SPDX-License-Identifier: MIT */
/*
 * test_gso.c - the transmit coalescer (tap/tap_gso.c): TCP segments built
 * by the frame toolkit are offered one by one; every frame it emits is cut
 * here as the kernel cuts a GSO frame (the pieces' sequence numbers,
 * lengths, PSH on the last only, checksums completed from the seed it
 * left), and the pieces must equal the segments offered, byte for byte but
 * for the IPv4 id and header checksum, which the kernel renumbers. Edge
 * cases: a sequence gap, another flow, SYN/FIN/RST, options that differ,
 * IPv6, short and oversized segments, the 64 KiB bound, single segments.
 */
#include <criterion/criterion.h>
#include <linux/virtio_net.h>
#include <string.h>

#include "frames.h"
#include "tap_gso.h"

#define NSEG_MAX 128
#define MSS 1448

static const uint8_t mac_a[6] = { 0x02, 0, 0, 0, 0, 0xa };
static const uint8_t mac_b[6] = { 0x02, 0, 0, 0, 0, 0xb };

/* What the coalescer handed over, and what it released. */
struct sink {
	uint8_t frame[NSEG_MAX][70000];
	size_t len[NSEG_MAX];
	struct tap_offload off[NSEG_MAX];
	unsigned nseg[NSEG_MAX];
	unsigned nframes;
	unsigned released;
	unsigned emitted_segs;	/* segments emitted when the last release came */
};

static struct sink *sink;

static int emit(void *arg, const struct tap_txframe *f, unsigned nseg, size_t wire)
{
	struct sink *s = arg;
	size_t off = 0;
	int i;

	(void)wire;
	cr_assert_lt(s->nframes, NSEG_MAX);
	cr_assert_leq(f->iovcnt, TAP_TX_IOV_MAX);
	for (i = 0; i < f->iovcnt; i++) {
		memcpy(s->frame[s->nframes] + off, f->iov[i].iov_base, f->iov[i].iov_len);
		off += f->iov[i].iov_len;
	}
	cr_assert_eq(off, f->len);
	s->len[s->nframes] = off;
	s->off[s->nframes] = f->off;
	s->nseg[s->nframes] = nseg;
	s->nframes++;
	s->emitted_segs += nseg;
	return 1;
}

static void release(void *arg, void *cookie)
{
	struct sink *s = arg;

	(void)cookie;
	s->released++;
	/* A payload is released only once the frame holding it is out. */
	cr_assert_leq(s->released, s->emitted_segs);
}

static struct tap_gso gso;

static void setup(void)
{
	sink = calloc(1, sizeof(*sink));
	cr_assert(sink);
	tap_gso_init(&gso, emit, release, sink);
}

static void teardown(void)
{
	free(sink);
}

TestSuite(gso, .init = setup, .fini = teardown);

/* The segments offered, kept to compare with what comes out. */
static uint8_t seg_buf[NSEG_MAX][2048 + 128];
static size_t seg_len[NSEG_MAX];
static unsigned nsegs;

static const uint8_t ts_opts[12] = { 1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9 };

struct segspec {
	bool v6;
	uint16_t sport;
	uint32_t seq;
	size_t len;
	uint8_t flags;		/* FRAME_TCP_*, ACK added */
	const uint8_t *opts;	/* default: ts_opts */
	size_t opts_len;
	bool one_iov;		/* not split over two gather entries */
};

/* Build a segment like lwIP's and offer it, split over two gather entries
 * at a point that varies. Return what tap_gso_add() said. */
static bool offer(const struct segspec *sp)
{
	struct frame_path path;
	uint8_t data[2048];
	struct frame_tcp t = {
		.sport = sp->sport ? sp->sport : 5001, .dport = 40000, .seq = sp->seq,
		.ack = 777, .flags = (uint8_t)(sp->flags | FRAME_TCP_ACK), .window = 512,
		.opts = sp->opts ? sp->opts : ts_opts, .opts_len = sp->opts ? sp->opts_len : 12,
		.data = data, .len = sp->len,
	};
	struct iovec iov[2];
	unsigned i = nsegs;
	ssize_t n;
	size_t cut;
	size_t k;

	cr_assert_lt(i, NSEG_MAX);
	cr_assert_eq(frame_path_init(&path, mac_a, sp->v6 ? "fd42:5::2" : "198.51.100.2", mac_b,
				     sp->v6 ? "fd42:5::1" : "198.51.100.1"), 0);
	for (k = 0; k < sp->len; k++)
		data[k] = (uint8_t)(sp->seq + k);
	n = frame_tcp(seg_buf[i], sizeof(seg_buf[i]), &path, &t);
	cr_assert_gt(n, 0);
	seg_len[i] = (size_t)n;
	nsegs++;
	cut = 20 + (i * 37) % ((size_t)n - 20);
	iov[0].iov_base = seg_buf[i];
	iov[0].iov_len = cut;
	iov[1].iov_base = seg_buf[i] + cut;
	iov[1].iov_len = (size_t)n - cut;
	if (sp->one_iov) {
		iov[0].iov_len = (size_t)n;
		return tap_gso_add(&gso, iov, 1, (size_t)n, seg_buf[i]);
	}
	return tap_gso_add(&gso, iov, 2, (size_t)n, seg_buf[i]);
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The TCP checksum of a segment as a receiver computes it (0: right). */
static uint16_t tcp_verify(const uint8_t *f, size_t len)
{
	bool v6 = rd16(f + 12) == 0x86dd;
	size_t l4 = 14 + (v6 ? 40 : 20), tl = len - l4;
	uint8_t ph[40] = { 0 };
	size_t plen;

	if (v6) {
		memcpy(ph, f + 14 + 8, 32);
		wr16(ph + 34, (uint16_t)tl);
		ph[39] = 6;
		plen = 40;
	} else {
		memcpy(ph, f + 14 + 12, 8);
		ph[9] = 6;
		wr16(ph + 10, (uint16_t)tl);
		plen = 12;
	}
	return frame_csum(f + l4, tl, (uint16_t)~frame_csum(ph, plen, 0));
}

/*
 * Check emitted frame @fi against the offered segments from @first on, as
 * the kernel would cut it; return how many segments it held.
 */
static unsigned check_frame(unsigned fi, unsigned first)
{
	const uint8_t *f = sink->frame[fi];
	size_t len = sink->len[fi];
	const struct tap_offload *o = &sink->off[fi];
	bool v6 = rd16(f + 12) == 0x86dd;
	size_t l4 = 14 + (v6 ? 40 : 20), hlen = l4 + (size_t)(f[l4 + 12] >> 4) * 4;
	size_t pay = len - hlen, g, off;
	unsigned i, n;

	if (sink->nseg[fi] == 1 && gso.csum_partial) {
		/* As offered but for a partial checksum the kernel completes. */
		uint8_t whole[2048 + 128];

		cr_assert_eq(o->flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
		cr_assert_eq(o->gso_type, 0);
		cr_assert_eq(o->csum_start, l4);
		cr_assert_eq(o->csum_offset, 16);
		cr_assert_eq(len, seg_len[first]);
		memcpy(whole, f, len);
		wr16(whole + l4 + 16, frame_csum(whole + l4, len - l4, 0));
		cr_assert(!memcmp(whole, seg_buf[first], len), "single segment %u changed", first);
		return 1;
	}
	if (sink->nseg[fi] == 1) {
		/* A single segment leaves as it was offered. */
		cr_assert_eq(o->flags, 0);
		cr_assert_eq(o->gso_type, 0);
		cr_assert_eq(len, seg_len[first]);
		cr_assert(!memcmp(f, seg_buf[first], len), "single segment %u changed", first);
		return 1;
	}
	cr_assert_eq(o->flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	cr_assert_eq(o->gso_type, v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4);
	cr_assert_eq(o->hdr_len, hlen);
	cr_assert_eq(o->csum_start, l4);
	cr_assert_eq(o->csum_offset, 16);
	g = o->gso_size;
	n = (unsigned)((pay + g - 1) / g);
	cr_assert_eq(n, sink->nseg[fi]);
	/* The frame itself is well formed: its IP length right, and the
	 * checksum the seed completes to is right over the whole frame. */
	if (v6) {
		cr_assert_eq(rd16(f + 14 + 4), len - l4);
	} else {
		cr_assert_eq(rd16(f + 14 + 2), len - 14);
		cr_assert_eq(frame_csum(f + 14, 20, 0), 0, "IPv4 header checksum");
	}
	{
		uint8_t whole[70000];
		uint16_t sum;

		memcpy(whole, f, len);
		sum = frame_csum(whole + l4, len - l4, 0);
		wr16(whole + l4 + 16, sum);
		cr_assert_eq(tcp_verify(whole, len), 0, "the seed is not the pseudo-header sum");
	}
	for (i = 0, off = 0; i < n; i++, off += g) {
		size_t k = pay - off < g ? pay - off : g;
		uint8_t piece[2048 + 128];
		const uint8_t *want = seg_buf[first + i];
		uint32_t seq = (uint32_t)f[l4 + 4] << 24 | (uint32_t)f[l4 + 5] << 16 |
			       (uint32_t)f[l4 + 6] << 8 | f[l4 + 7];

		cr_assert_lt(first + i, nsegs);
		memcpy(piece, f, hlen);
		memcpy(piece + hlen, f + hlen + off, k);
		seq += (uint32_t)off;
		piece[l4 + 4] = (uint8_t)(seq >> 24);
		piece[l4 + 5] = (uint8_t)(seq >> 16);
		piece[l4 + 6] = (uint8_t)(seq >> 8);
		piece[l4 + 7] = (uint8_t)seq;
		if (i + 1 < n)
			piece[l4 + 13] &= (uint8_t)~(FRAME_TCP_PSH | FRAME_TCP_FIN);
		if (v6) {
			wr16(piece + 14 + 4, (uint16_t)(hlen - l4 + k));
		} else {
			wr16(piece + 14 + 2, (uint16_t)(hlen - 14 + k));
			memcpy(piece + 14 + 4, want + 14 + 4, 2);	/* the id: renumbered */
			wr16(piece + 14 + 10, 0);
			wr16(piece + 14 + 10, frame_csum(piece + 14, 20, 0));
		}
		wr16(piece + l4 + 16, 0);
		wr16(piece + l4 + 16, tcp_verify(piece, hlen + k));
		cr_assert_eq(hlen + k, seg_len[first + i], "piece %u of frame %u: length", i, fi);
		cr_assert(!memcmp(piece, want, hlen + k), "piece %u of frame %u differs", i, fi);
	}
	return n;
}

/* Check every emitted frame covers the offered segments in order. */
static void check_all(void)
{
	unsigned fi, seg = 0;

	for (fi = 0; fi < sink->nframes; fi++)
		seg += check_frame(fi, seg);
	cr_assert_eq(seg, nsegs, "%u of %u segments came out", seg, nsegs);
	cr_assert_eq(sink->released, sink->emitted_segs);
}

static void reset_segs(void)
{
	nsegs = 0;
}

Test(gso, consecutive_segments_become_one_frame)
{
	unsigned i;

	reset_segs();
	for (i = 0; i < 5; i++)
		cr_assert(offer(&(struct segspec){ .seq = 1000 + i * MSS, .len = MSS }));
	cr_assert_eq(sink->nframes, 0, "nothing goes out before the flush");
	cr_assert_eq(tap_gso_flush(&gso), 1);
	cr_assert_eq(sink->nframes, 1);
	cr_assert_eq(sink->off[0].gso_size, MSS);
	check_all();
}

Test(gso, ipv6_too)
{
	unsigned i;

	reset_segs();
	for (i = 0; i < 4; i++)
		cr_assert(offer(&(struct segspec){ .v6 = true, .seq = 5 + i * 1428, .len = 1428 }));
	tap_gso_flush(&gso);
	cr_assert_eq(sink->nframes, 1);
	cr_assert_eq(sink->off[0].gso_type, VIRTIO_NET_HDR_GSO_TCPV6);
	check_all();
}

Test(gso, sequence_gap_starts_a_new_frame)
{
	reset_segs();
	offer(&(struct segspec){ .seq = 0, .len = MSS });
	offer(&(struct segspec){ .seq = MSS, .len = MSS });
	offer(&(struct segspec){ .seq = 3 * MSS, .len = MSS });	/* one missing */
	offer(&(struct segspec){ .seq = 4 * MSS, .len = MSS });
	tap_gso_flush(&gso);
	cr_assert_eq(sink->nframes, 2);
	check_all();
}

Test(gso, another_flow_or_family_starts_a_new_frame)
{
	reset_segs();
	offer(&(struct segspec){ .seq = 0, .len = MSS });
	offer(&(struct segspec){ .seq = MSS, .len = MSS, .sport = 5002 });
	offer(&(struct segspec){ .seq = 2 * MSS, .len = MSS, .sport = 5002 });
	offer(&(struct segspec){ .v6 = true, .seq = 3 * MSS, .len = MSS, .sport = 5002 });
	tap_gso_flush(&gso);
	cr_assert_eq(sink->nframes, 3);
	cr_assert_eq(sink->nseg[0], 1);
	cr_assert_eq(sink->nseg[1], 2);
	cr_assert_eq(sink->nseg[2], 1);
	check_all();
}

Test(gso, syn_fin_rst_and_pure_acks_are_not_taken_and_keep_their_order)
{
	static const uint8_t flags[] = { FRAME_TCP_FIN, FRAME_TCP_RST, FRAME_TCP_SYN,
					 FRAME_TCP_URG };
	unsigned i;

	for (i = 0; i < sizeof(flags); i++) {
		sink->nframes = 0;
		sink->released = sink->emitted_segs = 0;
		reset_segs();
		cr_assert(offer(&(struct segspec){ .seq = 0, .len = MSS }));
		cr_assert(offer(&(struct segspec){ .seq = MSS, .len = MSS }));
		cr_assert(!offer(&(struct segspec){ .seq = 2 * MSS, .len = 10, .flags = flags[i] }),
			  "flags %#x taken", flags[i]);
		/* The pending frame went out before the caller sends this one. */
		cr_assert_eq(sink->nframes, 1);
		cr_assert_eq(sink->nseg[0], 2);
		nsegs--;	/* the caller sent that one itself */
		check_all();
	}
	reset_segs();
	sink->nframes = sink->released = sink->emitted_segs = 0;
	cr_assert(!offer(&(struct segspec){ .seq = 0, .len = 0 }), "a pure ACK was taken");
	cr_assert_eq(sink->nframes, 0);
}

Test(gso, options_must_match_byte_for_byte)
{
	static const uint8_t ts2[12] = { 1, 1, 8, 10, 0, 0, 0, 8, 0, 0, 0, 9 };
	static const uint8_t none[1] = { 0 };

	reset_segs();
	offer(&(struct segspec){ .seq = 0, .len = MSS });
	offer(&(struct segspec){ .seq = MSS, .len = MSS });
	/* TSval moved on: a new frame. */
	offer(&(struct segspec){ .seq = 2 * MSS, .len = MSS, .opts = ts2, .opts_len = 12 });
	offer(&(struct segspec){ .seq = 3 * MSS, .len = MSS, .opts = ts2, .opts_len = 12 });
	/* No options at all: the header length differs. */
	offer(&(struct segspec){ .seq = 4 * MSS, .len = MSS + 12, .opts = none, .opts_len = 0 });
	tap_gso_flush(&gso);
	cr_assert_eq(sink->nframes, 3);
	cr_assert_eq(sink->nseg[0], 2);
	cr_assert_eq(sink->nseg[1], 2);
	check_all();
}

Test(gso, psh_rides_on_the_last_piece)
{
	reset_segs();
	offer(&(struct segspec){ .seq = 0, .len = MSS });
	offer(&(struct segspec){ .seq = MSS, .len = MSS });
	offer(&(struct segspec){ .seq = 2 * MSS, .len = MSS, .flags = FRAME_TCP_PSH });
	tap_gso_flush(&gso);
	cr_assert_eq(sink->nframes, 1);
	check_all();
}

Test(gso, a_short_segment_ends_the_frame_and_a_longer_one_starts_another)
{
	reset_segs();
	offer(&(struct segspec){ .seq = 0, .len = MSS });
	offer(&(struct segspec){ .seq = MSS, .len = 100 });	/* short: last */
	offer(&(struct segspec){ .seq = MSS + 100, .len = MSS });	/* a new frame */
	offer(&(struct segspec){ .seq = 2 * MSS + 100, .len = 1000 });
	offer(&(struct segspec){ .seq = 2 * MSS + 1100, .len = 1200 });	/* > gso_size */
	tap_gso_flush(&gso);
	cr_assert_eq(sink->nframes, 3);
	cr_assert_eq(sink->nseg[0], 2);
	cr_assert_eq(sink->nseg[1], 2);
	cr_assert_eq(sink->nseg[2], 1);
	check_all();
}

Test(gso, a_frame_stops_below_64k)
{
	unsigned i;

	reset_segs();
	for (i = 0; i < 50; i++)
		cr_assert(offer(&(struct segspec){ .seq = i * MSS, .len = MSS }));
	tap_gso_flush(&gso);
	/* (65535 - 20 - 32) / 1448 = 45 segments fit one IPv4 packet. */
	cr_assert_eq(sink->nframes, 2);
	cr_assert_eq(sink->nseg[0], 45);
	cr_assert_leq(sink->len[0], 65535 + 14);
	check_all();
}

Test(gso, small_mss_stops_at_the_segment_bound)
{
	unsigned i;

	reset_segs();
	for (i = 0; i < TAP_GSO_SEGS_MAX + 3; i++)
		cr_assert(offer(&(struct segspec){ .seq = i * 100, .len = 100, .one_iov = true }));
	tap_gso_flush(&gso);
	cr_assert_eq(sink->nframes, 2);
	cr_assert_eq(sink->nseg[0], TAP_GSO_SEGS_MAX);
	check_all();
}

Test(gso, too_scattered_a_frame_flushes_and_starts_anew)
{
	unsigned i;

	/* Two gather entries of payload per segment: the 128-entry bound of
	 * a frame is met before the 64 segments or 64 KiB. */
	reset_segs();
	for (i = 0; i < 70; i++)
		cr_assert(offer(&(struct segspec){ .seq = i * 100, .len = 100 }));
	tap_gso_flush(&gso);
	cr_assert_geq(sink->nframes, 2);
	check_all();
}

Test(gso, ipv4_options_and_fragments_are_not_taken)
{
	uint8_t f[200];
	struct iovec iov;

	reset_segs();
	cr_assert(offer(&(struct segspec){ .seq = 0, .len = 100 }));
	memcpy(f, seg_buf[0], seg_len[0]);
	iov.iov_base = f;
	iov.iov_len = seg_len[0];
	f[14 + 6] |= 0x20;	/* more fragments */
	cr_assert(!tap_gso_add(&gso, &iov, 1, seg_len[0], f));
	cr_assert_eq(sink->nframes, 1, "the pending frame went first");
	f[14 + 6] &= (uint8_t)~0x20;
	f[14] = 0x46;		/* an option word */
	cr_assert(!tap_gso_add(&gso, &iov, 1, seg_len[0], f));
	f[14] = 0x45;
	f[14 + 3]++;		/* IP length != frame length */
	cr_assert(!tap_gso_add(&gso, &iov, 1, seg_len[0], f));
	check_all();
}

Test(gso, discard_releases_without_sending)
{
	reset_segs();
	offer(&(struct segspec){ .seq = 0, .len = MSS });
	offer(&(struct segspec){ .seq = MSS, .len = MSS });
	sink->emitted_segs = 2;	/* release() may be called now */
	tap_gso_discard(&gso);
	cr_assert_eq(sink->nframes, 0);
	cr_assert_eq(sink->released, 2);
	cr_assert_eq(tap_gso_flush(&gso), 1, "nothing left pending");
}

Test(gso, with_partial_checksums_single_segments_leave_theirs_to_the_kernel)
{
	gso.csum_partial = true;
	reset_segs();
	offer(&(struct segspec){ .seq = 0, .len = MSS });
	offer(&(struct segspec){ .seq = 5 * MSS, .len = MSS });	/* a gap: alone */
	offer(&(struct segspec){ .seq = 6 * MSS, .len = MSS, .v6 = true });
	tap_gso_flush(&gso);
	cr_assert_eq(sink->nframes, 3);
	check_all();
}

Test(gso, a_frame_not_taken_gets_a_partial_checksum_in_place)
{
	uint8_t f[2048], want[2048];
	struct tap_offload off;
	struct iovec iov[3];
	size_t l4 = 14 + 20, cut;

	reset_segs();
	/* A SYN, its checksum field split over two gather entries. */
	cr_assert(!offer(&(struct segspec){ .seq = 9, .len = 0, .flags = FRAME_TCP_SYN }));
	memcpy(want, seg_buf[0], seg_len[0]);
	memcpy(f, seg_buf[0], seg_len[0]);
	f[l4 + 16] = f[l4 + 17] = 0;	/* as lwIP leaves it */
	for (cut = l4 + 15; cut <= l4 + 18; cut++) {
		iov[0] = (struct iovec){ f, cut };
		iov[1] = (struct iovec){ f + cut, 1 };
		iov[2] = (struct iovec){ f + cut + 1, seg_len[0] - cut - 1 };
		f[l4 + 16] = f[l4 + 17] = 0;
		cr_assert(tap_tcp_csum_partial(iov, 3, seg_len[0], &off));
		cr_assert_eq(off.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
		cr_assert_eq(off.csum_start, l4);
		cr_assert_eq(off.csum_offset, 16);
		wr16(f + l4 + 16, frame_csum(f + l4, seg_len[0] - l4, 0));
		cr_assert(!memcmp(f, want, seg_len[0]), "cut at %zu: not the right sum", cut);
	}
	f[12] = 0x08;
	f[13] = 0x06;	/* ARP */
	cr_assert(!tap_tcp_csum_partial(iov, 3, seg_len[0], &off));
}
