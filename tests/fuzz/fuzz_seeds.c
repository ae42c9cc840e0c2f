/* SPDX-License-Identifier: MIT */
/*
 * fuzz_seeds.c - writes the seed corpora of the fuzz targets, so that what
 * is committed under tests/fuzz/corpus/ can be made again and reviewed:
 * frame sequences built with the frame toolkit (tests/unit/frames.c) in
 * fuzz_frame's record format, state.pb images written by a real stack's
 * checkpoint, and control requests, status lines and netstack-run.json files
 * as the daemon exchanges them. Run by hand after a format changes:
 *
 *   build/tests/fuzz/fuzz_seeds tests/fuzz/corpus
 *
 * It writes <dir>/fuzz_frame/, <dir>/fuzz_image/ and <dir>/fuzz_control/
 * (which must exist), one small file per seed, replacing files of the same
 * name. It creates one stack (for the images), so it runs once per process.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "frames.h"
#include "netstack.h"

/* What fuzz_frame.c expects: its addresses, ports and record format. */
#define NIC_IP4 "198.51.100.2"
#define PEER_IP4 "198.51.100.1"
#define OTHER_IP4 "198.51.100.77"
#define NIC_IP6 "fd42:5::2"
#define PEER_IP6 "fd42:5::1"
#define LISTEN_PORT 80
#define COOKIE_PORT 8080
#define HALF_OPEN_PORT 50000
#define PEER_ISN 1000000u
#define UDP_PORT 53
#define CONN4_PORT 40000
#define CONN6_PORT 40001
#define FUZZ_REBASE 0x01u
#define FUZZ_CSUM 0x02u
#define FUZZ_BATCH 0x04u
#define FUZZ_APP_SHUT 0x08u
#define ADVANCE(i) ((uint8_t)((i) << 4))	/* index into fuzz_frame's advance_ms[] */

static const uint8_t nic_mac[FRAME_MAC_LEN] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x02 };
static const uint8_t peer_mac[FRAME_MAC_LEN] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01 };

static const char *outdir;
static struct frame_path to4, to6, other4;
static int written;

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("fuzz_seeds: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void put_file(const char *target, const char *name, const void *buf, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f))
		die("%s: %s", path, strerror(errno));
	written++;
}

/* ------------------------------------------------------------------ */
/* fuzz_frame: sequences of records                                    */
/* ------------------------------------------------------------------ */

struct seq {
	uint8_t buf[16384];
	size_t len;
};

static void rec(struct seq *s, uint8_t ctl, const uint8_t *f, ssize_t len)
{
	if (len < 0 || s->len + 3 + (size_t)len > sizeof(s->buf))
		die("a seed frame did not build (%zd)", len);
	s->buf[s->len] = ctl;
	s->buf[s->len + 1] = (uint8_t)(len >> 8);
	s->buf[s->len + 2] = (uint8_t)len;
	memcpy(s->buf + s->len + 3, f, (size_t)len);
	s->len += 3 + (size_t)len;
}

/* A segment to @dport, through FUZZ_REBASE: on a connection, sequence and
 * acknowledgement numbers as offsets; to the cookie listener without one,
 * an ACK of a cookie (see fuzz_frame.c). */
static void seg_to(struct seq *s, uint8_t ctl, const struct frame_path *path, uint16_t sport,
		   uint16_t dport, uint8_t flags, int32_t seq_off, int32_t ack_off, const uint8_t *opts,
		   size_t opts_len, const void *data, size_t len)
{
	struct frame_tcp t = {
		.sport = sport, .dport = dport, .seq = (uint32_t)seq_off, .ack = (uint32_t)ack_off,
		.flags = flags, .window = 65535, .opts = opts, .opts_len = opts_len, .data = data, .len = len,
	};
	uint8_t f[2048];

	rec(s, ctl | FUZZ_REBASE | FUZZ_CSUM, f, frame_tcp(f, sizeof(f), path, &t));
}

/* A segment on one of the harness's connections to the first listener. */
static void seg(struct seq *s, uint8_t ctl, const struct frame_path *path, uint16_t sport,
		uint8_t flags, int32_t seq_off, int32_t ack_off, const uint8_t *opts, size_t opts_len,
		const void *data, size_t len)
{
	seg_to(s, ctl, path, sport, LISTEN_PORT, flags, seq_off, ack_off, opts, opts_len, data, len);
}

static void save(const char *name, const struct seq *s)
{
	put_file("fuzz_frame", name, s->buf, s->len);
}

static const uint8_t syn_opts[] = {
	2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0x30, 0x39, 0, 0, 0, 0, 1, 3, 3, 7,
};
/* Timestamps, then a SACK block of bytes 1000-2000 past snd_nxt's offset
 * 0 (lwIP reads it whether or not it makes sense). */
static const uint8_t sack_opts[] = {
	1, 1, 8, 10, 0, 0, 0x30, 0x3a, 0, 0, 0, 0,
	1, 1, 5, 10, 0, 0, 0x03, 0xe8, 0, 0, 0x07, 0xd0,
};

/* An IPv4 packet in two fragments of a UDP datagram to the UDP socket. */
static void ipv4_fragments(struct seq *s, bool overlap)
{
	uint8_t whole[2048], f[2048], udp[1024];
	struct frame_parsed p;
	ssize_t n;
	size_t ulen, first = 512;

	memset(udp, 'f', sizeof(udp));
	n = frame_udp(whole, sizeof(whole), &to4, 5353, UDP_PORT, udp, 800);
	if (n < 0 || frame_parse(whole, (size_t)n, &p))
		die("fragment seed");
	ulen = (size_t)n - FRAME_ETH_HLEN - FRAME_IPV4_HLEN;
	/* First: the header and 512 bytes of UDP, MF set. */
	memcpy(f, whole, FRAME_ETH_HLEN + FRAME_IPV4_HLEN + first);
	f[FRAME_ETH_HLEN + 2] = (uint8_t)((FRAME_IPV4_HLEN + first) >> 8);
	f[FRAME_ETH_HLEN + 3] = (uint8_t)(FRAME_IPV4_HLEN + first);
	f[FRAME_ETH_HLEN + 4] = 0x12;	/* ID */
	f[FRAME_ETH_HLEN + 6] = 0x20;	/* MF, offset 0 */
	f[FRAME_ETH_HLEN + 7] = 0;
	rec(s, FUZZ_CSUM, f, (ssize_t)(FRAME_ETH_HLEN + FRAME_IPV4_HLEN + first));
	/* Second: the rest (or, overlapping, from 8 bytes earlier). */
	{
		size_t from = overlap ? first - 8 : first, rest = ulen - from;

		memcpy(f, whole, FRAME_ETH_HLEN + FRAME_IPV4_HLEN);
		memcpy(f + FRAME_ETH_HLEN + FRAME_IPV4_HLEN, whole + FRAME_ETH_HLEN + FRAME_IPV4_HLEN + from,
		       rest);
		f[FRAME_ETH_HLEN + 2] = (uint8_t)((FRAME_IPV4_HLEN + rest) >> 8);
		f[FRAME_ETH_HLEN + 3] = (uint8_t)(FRAME_IPV4_HLEN + rest);
		f[FRAME_ETH_HLEN + 4] = 0x12;
		f[FRAME_ETH_HLEN + 6] = (uint8_t)((from / 8) >> 8);
		f[FRAME_ETH_HLEN + 7] = (uint8_t)(from / 8);
		rec(s, FUZZ_CSUM, f, (ssize_t)(FRAME_ETH_HLEN + FRAME_IPV4_HLEN + rest));
	}
}

/* An ICMPv6 echo request in two IPv6 fragments. */
static void ipv6_fragments(struct seq *s)
{
	uint8_t echo[1024], body[2048], frag[2048];
	ssize_t n;
	size_t blen, first = 504;
	int i;

	memset(echo, 'e', sizeof(echo));
	/* The ICMPv6 message whole, taken from a built frame. */
	n = frame_icmp_echo(frag, sizeof(frag), &to6, false, 7, 1, echo, 900);
	if (n < 0)
		die("echo seed");
	blen = (size_t)n - FRAME_ETH_HLEN - FRAME_IPV6_HLEN;
	memcpy(body, frag + FRAME_ETH_HLEN + FRAME_IPV6_HLEN, blen);
	for (i = 0; i < 2; i++) {
		size_t off = i ? first : 0, len = i ? blen - first : first;
		uint8_t payload[2048];
		ssize_t m;

		payload[0] = IPPROTO_ICMPV6;	/* fragment header: next header */
		payload[1] = 0;
		payload[2] = (uint8_t)(off >> 8);
		payload[3] = (uint8_t)((off & 0xf8) | (i ? 0 : 1));	/* M on the first */
		payload[4] = 0;
		payload[5] = 0;
		payload[6] = 0x12;
		payload[7] = 0x34;
		memcpy(payload + 8, body + off, len);
		m = frame_ip(frag, sizeof(frag), &to6, 44, payload, len + 8);
		rec(s, 0, frag, m);
	}
}

/* The cookie listener, full of half-open connections: a SYN gets a
 * cookie and its ACK (FUZZ_REBASE makes it carry the cookie; the ack
 * number chooses the cookie's data and age) makes a connection, with
 * data, FIN, both, timestamps; an ACK with no SYN of its own before it
 * (the harness's SYN armed the cookies), an expired one; a repeated SYN
 * of a half-open connection. */
static void cookie_seeds(void)
{
	/* data 0xbc: MSS 1460, window scale 7, SACK; bit 8: a tick old. */
	static const char hello[] = "hello, cookie";
	static const uint8_t ts_opts[] = { 1, 1, 8, 10, 0, 0, 0x30, 0x3a, 0, 0, 0, 1 };
	struct seq s;

	memset(&s, 0, sizeof(s));
	seg_to(&s, 0, &to4, 42000, COOKIE_PORT, FRAME_TCP_SYN, 5000, 0, syn_opts, sizeof(syn_opts), NULL, 0);
	s.buf[0] = FUZZ_CSUM;	/* the SYN's numbers as they are */
	seg_to(&s, 0, &to4, 42000, COOKIE_PORT, FRAME_TCP_ACK | FRAME_TCP_PSH, 5001, 0xbc, ts_opts,
	       sizeof(ts_opts), hello, sizeof(hello));
	seg_to(&s, 0, &to4, 42000, COOKIE_PORT, FRAME_TCP_FIN | FRAME_TCP_ACK, 0, 0, NULL, 0, NULL, 0);
	save("cookie4-syn-ack-data-fin", &s);
	memset(&s, 0, sizeof(s));
	seg_to(&s, 0, &to6, 42001, COOKIE_PORT, FRAME_TCP_SYN, 7000, 0, syn_opts, sizeof(syn_opts), NULL, 0);
	s.buf[0] = FUZZ_CSUM;
	seg_to(&s, 0, &to6, 42001, COOKIE_PORT, FRAME_TCP_ACK, 7001, 0xbc, ts_opts, sizeof(ts_opts), NULL, 0);
	seg_to(&s, 0, &to6, 42001, COOKIE_PORT, FRAME_TCP_ACK | FRAME_TCP_PSH, 0, 0, NULL, 0, hello,
	       sizeof(hello));
	save("cookie6-syn-ack-data", &s);
	memset(&s, 0, sizeof(s));
	seg_to(&s, 0, &to4, 42002, COOKIE_PORT, FRAME_TCP_ACK | FRAME_TCP_FIN | FRAME_TCP_PSH, 9001, 0x1bc,
	       NULL, 0, hello, sizeof(hello));
	save("cookie4-ack-fin-data-a-tick-old", &s);
	memset(&s, 0, sizeof(s));
	seg_to(&s, 0, &to6, 42003, COOKIE_PORT, FRAME_TCP_ACK, 9001, 0x20f, NULL, 0, NULL, 0);
	seg_to(&s, 0, &to4, 42003, COOKIE_PORT, FRAME_TCP_ACK | FRAME_TCP_RST, 9001, 0x0f, NULL, 0, NULL, 0);
	save("cookie-expired-and-rst", &s);
	memset(&s, 0, sizeof(s));
	seg_to(&s, 0, &to4, HALF_OPEN_PORT, COOKIE_PORT, FRAME_TCP_SYN, (int32_t)PEER_ISN, 0, syn_opts,
	       sizeof(syn_opts), NULL, 0);
	s.buf[0] = FUZZ_CSUM;
	seg_to(&s, ADVANCE(13), &to4, HALF_OPEN_PORT + 2, COOKIE_PORT, FRAME_TCP_ACK, (int32_t)PEER_ISN + 1,
	       0xbc, NULL, 0, NULL, 0);
	save("cookie4-repeated-syn-then-late-ack", &s);
}

static void frame_seeds(void)
{
	static const char hello[] = "hello, stack";
	uint8_t f[2048], body[64];
	struct seq s;

	/* The two connections: data, FIN, RST, a SACK, out of order. */
	memset(&s, 0, sizeof(s));
	seg(&s, 0, &to4, CONN4_PORT, FRAME_TCP_ACK | FRAME_TCP_PSH, 0, 0, NULL, 0, hello, sizeof(hello));
	save("tcp4-data-ack-all", &s);
	memset(&s, 0, sizeof(s));
	seg(&s, 0, &to6, CONN6_PORT, FRAME_TCP_ACK | FRAME_TCP_PSH, 0, -1000, NULL, 0, hello, sizeof(hello));
	save("tcp6-data-ack-part", &s);
	memset(&s, 0, sizeof(s));
	seg(&s, 0, &to4, CONN4_PORT, FRAME_TCP_ACK | FRAME_TCP_PSH, 2000, -3000, NULL, 0, hello, sizeof(hello));
	seg(&s, 0, &to4, CONN4_PORT, FRAME_TCP_ACK | FRAME_TCP_PSH, 1000, -3000, NULL, 0, hello, sizeof(hello));
	seg(&s, 0, &to4, CONN4_PORT, FRAME_TCP_ACK | FRAME_TCP_PSH, 0, -3000, NULL, 0, hello, sizeof(hello));
	save("tcp4-out-of-order", &s);
	memset(&s, 0, sizeof(s));
	seg(&s, 0, &to4, CONN4_PORT, FRAME_TCP_ACK, 0, -3000, sack_opts, sizeof(sack_opts), NULL, 0);
	seg(&s, 0, &to4, CONN4_PORT, FRAME_TCP_ACK, 0, -3000, sack_opts, sizeof(sack_opts), NULL, 0);
	seg(&s, 0, &to4, CONN4_PORT, FRAME_TCP_ACK, 0, -3000, sack_opts, sizeof(sack_opts), NULL, 0);
	save("tcp4-dupacks-sack", &s);
	memset(&s, 0, sizeof(s));
	seg(&s, 0, &to6, CONN6_PORT, FRAME_TCP_FIN | FRAME_TCP_ACK, 0, 0, NULL, 0, NULL, 0);
	save("tcp6-fin", &s);
	memset(&s, 0, sizeof(s));
	seg(&s, 0, &to4, CONN4_PORT, FRAME_TCP_RST, 0, 0, NULL, 0, NULL, 0);
	save("tcp4-rst", &s);
	memset(&s, 0, sizeof(s));
	seg(&s, 0, &to4, CONN4_PORT, FRAME_TCP_ACK, 0, -3000, NULL, 0, NULL, 0);
	rec(&s, ADVANCE(8), f, 0);
	rec(&s, ADVANCE(10), f, 0);
	seg(&s, ADVANCE(12), &to4, CONN4_PORT, FRAME_TCP_ACK, 0, 0, NULL, 0, NULL, 0);
	save("tcp4-retransmit-then-ack", &s);
	memset(&s, 0, sizeof(s));
	seg(&s, 0, &to6, CONN6_PORT, FRAME_TCP_ACK, 0, 0, NULL, 0, NULL, 0);
	s.buf[3 + FRAME_ETH_HLEN + FRAME_IPV6_HLEN + 14] = 0;	/* window 0 */
	s.buf[3 + FRAME_ETH_HLEN + FRAME_IPV6_HLEN + 15] = 0;
	rec(&s, ADVANCE(11), f, 0);
	save("tcp6-zero-window-probe", &s);

	/* The application closes first: its FIN acked, the peer's FIN, TIME-WAIT
	 * and its expiry; and a simultaneous close. */
	memset(&s, 0, sizeof(s));
	seg(&s, FUZZ_APP_SHUT, &to4, CONN4_PORT, FRAME_TCP_ACK, 0, 0, NULL, 0, NULL, 0);
	seg(&s, 0, &to4, CONN4_PORT, FRAME_TCP_ACK, 0, 0, NULL, 0, NULL, 0);
	seg(&s, ADVANCE(14), &to4, CONN4_PORT, FRAME_TCP_FIN | FRAME_TCP_ACK, 0, 0, NULL, 0, NULL, 0);
	save("tcp4-active-close-time-wait", &s);
	memset(&s, 0, sizeof(s));
	seg(&s, FUZZ_APP_SHUT | FUZZ_BATCH, &to6, CONN6_PORT, FRAME_TCP_FIN | FRAME_TCP_ACK, 0, -2856, NULL, 0,
	    NULL, 0);
	seg(&s, ADVANCE(9), &to6, CONN6_PORT, FRAME_TCP_ACK, 1, 0, NULL, 0, NULL, 0);
	save("tcp6-simultaneous-close", &s);

	/* New connections: a handshake completed by offset 0 (the stack's
	 * ISN + 1), then data and a close; a SYN to a closed port. */
	memset(&s, 0, sizeof(s));
	seg(&s, 0, &to4, 41000, FRAME_TCP_SYN, 0, 0, syn_opts, sizeof(syn_opts), NULL, 0);
	s.buf[0] = FUZZ_CSUM;	/* the SYN's numbers as they are */
	seg(&s, 0, &to4, 41000, FRAME_TCP_ACK, 0, 0, NULL, 0, NULL, 0);
	seg(&s, 0, &to4, 41000, FRAME_TCP_ACK | FRAME_TCP_PSH, 0, 0, NULL, 0, hello, sizeof(hello));
	seg(&s, 0, &to4, 41000, FRAME_TCP_FIN | FRAME_TCP_ACK, 0, 0, NULL, 0, NULL, 0);
	save("tcp4-handshake-data-fin", &s);
	memset(&s, 0, sizeof(s));
	seg(&s, 0, &to6, 41001, FRAME_TCP_SYN, 0, 0, syn_opts, sizeof(syn_opts), NULL, 0);
	s.buf[0] = FUZZ_CSUM;
	seg(&s, 0, &to6, 41001, FRAME_TCP_ACK, 0, 0, NULL, 0, NULL, 0);
	save("tcp6-handshake", &s);
	memset(&s, 0, sizeof(s));
	{
		struct frame_tcp t = { .sport = 41002, .dport = 81, .seq = 5, .flags = FRAME_TCP_SYN,
				       .window = 1024 };

		rec(&s, 0, f, frame_tcp(f, sizeof(f), &to4, &t));
	}
	save("tcp4-syn-closed-port", &s);

	cookie_seeds();

	/* Link and network layer: ARP, neighbour discovery, echo, UDP. */
	memset(&s, 0, sizeof(s));
	rec(&s, 0, f, frame_arp(f, sizeof(f), &other4, FRAME_ARP_REQUEST));
	rec(&s, 0, f, frame_arp(f, sizeof(f), &to4, FRAME_ARP_REPLY));
	save("arp-request-reply", &s);
	memset(&s, 0, sizeof(s));
	rec(&s, 0, f, frame_ndp_ns(f, sizeof(f), &to6));
	rec(&s, 0, f, frame_ndp_na(f, sizeof(f), &to6, FRAME_NA_SOLICITED | FRAME_NA_OVERRIDE));
	save("ndp-ns-na", &s);
	memset(&s, 0, sizeof(s));
	memset(body, 'p', sizeof(body));
	rec(&s, 0, f, frame_icmp_echo(f, sizeof(f), &to4, false, 1, 1, body, sizeof(body)));
	rec(&s, 0, f, frame_icmp_echo(f, sizeof(f), &to6, false, 1, 2, body, sizeof(body)));
	save("icmp-echo-both", &s);
	memset(&s, 0, sizeof(s));
	rec(&s, 0, f, frame_udp(f, sizeof(f), &to4, 5353, UDP_PORT, hello, sizeof(hello)));
	rec(&s, 0, f, frame_udp(f, sizeof(f), &to6, 5353, UDP_PORT, hello, sizeof(hello)));
	rec(&s, 0, f, frame_udp(f, sizeof(f), &to4, 5353, 9, hello, sizeof(hello)));
	save("udp-both-and-closed-port", &s);
	memset(&s, 0, sizeof(s));
	ipv4_fragments(&s, false);
	save("ipv4-fragments", &s);
	memset(&s, 0, sizeof(s));
	ipv4_fragments(&s, true);
	save("ipv4-fragments-overlap", &s);
	memset(&s, 0, sizeof(s));
	ipv6_fragments(&s);
	save("ipv6-fragments-echo", &s);
	memset(&s, 0, sizeof(s));
	{
		/* Hop-by-hop (PadN) then destination options before UDP. */
		uint8_t pl[64] = { 60, 0, 1, 4, 0, 0, 0, 0, IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0 };
		uint8_t u[64];
		ssize_t n = frame_udp(u, sizeof(u), &to6, 5353, UDP_PORT, "x", 1);

		memcpy(pl + 16, u + FRAME_ETH_HLEN + FRAME_IPV6_HLEN, (size_t)n - FRAME_ETH_HLEN - FRAME_IPV6_HLEN);
		rec(&s, FUZZ_CSUM, f, frame_ip(f, sizeof(f), &to6, 0, pl,
					       16 + (size_t)n - FRAME_ETH_HLEN - FRAME_IPV6_HLEN));
	}
	save("ipv6-ext-headers-udp", &s);
	memset(&s, 0, sizeof(s));
	{
		/* IPv4 with options (NOP, NOP, end) then an echo request. */
		ssize_t n = frame_icmp_echo(f, sizeof(f), &to4, false, 9, 9, "o", 1);
		uint8_t g[256];

		memcpy(g, f, FRAME_ETH_HLEN + FRAME_IPV4_HLEN);
		g[FRAME_ETH_HLEN] = 0x46;
		g[FRAME_ETH_HLEN + 3] = (uint8_t)(g[FRAME_ETH_HLEN + 3] + 4);
		memcpy(g + FRAME_ETH_HLEN + FRAME_IPV4_HLEN, "\x01\x01\x00\x00", 4);
		memcpy(g + FRAME_ETH_HLEN + FRAME_IPV4_HLEN + 4, f + FRAME_ETH_HLEN + FRAME_IPV4_HLEN,
		       (size_t)n - FRAME_ETH_HLEN - FRAME_IPV4_HLEN);
		rec(&s, FUZZ_CSUM, g, n + 4);
	}
	save("ipv4-options-echo", &s);
}

/* ------------------------------------------------------------------ */
/* fuzz_image: images from a real stack's checkpoints                  */
/* ------------------------------------------------------------------ */

/* Copy @dir/@file to the fuzz_image corpus as @name, if it is there. */
static void take_file(const char *dir, const char *file, const char *name)
{
	static uint8_t buf[1 << 20];
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n <= 0 || n == (ssize_t)sizeof(buf))
		die("%s: cannot read it whole", path);
	put_file("fuzz_image", name, buf, (size_t)n);
}

/* A checkpoint of @st: its state.pb as @name. (pages.meta seeds belong to
 * fuzz_pages_meta's corpus.) */
static void image_from(struct ns_stack *st, const char *name, enum ns_compression compression)
{
	struct ns_checkpoint_opts o = { .leave_running = true, .compression = compression };
	static const char *const files[] = { "state.pb", "pages.meta", "pages.img" };
	char dir[] = "/tmp/fuzz-seeds-XXXXXX", path[64];
	size_t i;
	int rc;

	if (!mkdtemp(dir))
		die("mkdtemp: %s", strerror(errno));
	rc = ns_stack_checkpoint(st, dir, &o);
	if (rc)
		die("ns_stack_checkpoint: %d", rc);
	take_file(dir, "state.pb", name);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

static int sock_at(struct ns_stack *st, int family, int type, const char *ip, uint16_t port)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	int s = ns_socket(st, family, type, 0), rc;

	if (s < 0)
		die("ns_socket: %d", s);
	if (!ip)
		return s;
	if (family == AF_INET) {
		inet_pton(AF_INET, ip, &a4.sin_addr);
		rc = ns_bind(st, s, (struct sockaddr *)&a4, sizeof(a4));
	} else {
		inet_pton(AF_INET6, ip, &a6.sin6_addr);
		rc = ns_bind(st, s, (struct sockaddr *)&a6, sizeof(a6));
	}
	if (rc)
		die("ns_bind %s: %d", ip, rc);
	return s;
}

static void image_seeds(void)
{
	struct ns_stack_config cfg = { .log_level = NS_LOG_ERR };
	struct ns_nic_config nc = { .name = "eth0" };
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(53) };
	struct ns_endpoint *ep = NULL;
	struct ns_stack *st;
	struct ns_prefix p;
	struct ns_route r;
	struct ns_region *rg, *rg2;
	size_t i;
	int nic, s, one = 1;
	struct timeval tv = { .tv_sec = 2 };

	if (ns_stack_new(&cfg, &st) || ns_endpoint_channel_new(&ep))
		die("stack");
	image_from(st, "empty-stack", NS_COMPRESSION_NONE);
	memcpy(nc.mac, nic_mac, sizeof(nc.mac));
	nic = ns_nic_add(st, &nc, ep);
	if (nic < 1 || ns_prefix_parse(NIC_IP4 "/24", &p) || ns_addr_add(st, nic, &p) ||
	    ns_prefix_parse(NIC_IP6 "/64", &p) || ns_addr_add(st, nic, &p))
		die("NIC");
	image_from(st, "one-nic", NS_COMPRESSION_NONE);
	memset(&r, 0, sizeof(r));
	if (ns_prefix_parse("203.0.113.0/24", &r.dst) || ns_addr_parse("198.51.100.1", &r.gateway))
		die("route");
	r.nic = nic;
	if (ns_route_add(st, &r))
		die("ns_route_add");
	s = sock_at(st, AF_INET6, SOCK_STREAM, "::", 80);
	ns_setsockopt(st, s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	ns_listen(st, s, 64);
	s = sock_at(st, AF_INET, SOCK_STREAM, NIC_IP4, 8080);
	ns_setsockopt(st, s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ns_listen(st, s, 1);
	s = sock_at(st, AF_INET, SOCK_DGRAM, NIC_IP4, 5353);
	inet_pton(AF_INET, PEER_IP4, &peer.sin_addr);
	ns_connect(st, s, (struct sockaddr *)&peer, sizeof(peer));
	sock_at(st, AF_INET6, SOCK_DGRAM, NIC_IP6, 53);
	sock_at(st, AF_INET, SOCK_STREAM, NULL, 0);
	image_from(st, "listeners-udp-route", NS_COMPRESSION_NONE);
	/* Memory: two regions, every other page of the first written. */
	if (ns_memfile_region_create(st, "mem", 64 << 10, &rg) ||
	    ns_memfile_region_create(st, "small", 4096, &rg2))
		die("ns_memfile_region_create");
	for (i = 0; i < ns_region_size(rg); i += 8192)
		memset((uint8_t *)ns_region_addr(rg) + i, (int)(i >> 12) | 1, 4096);
	image_from(st, "with-memory", NS_COMPRESSION_NONE);
	image_from(st, "with-memory-zstd", NS_COMPRESSION_ZSTD);
	ns_stack_free(st);
}

/* ------------------------------------------------------------------ */
/* fuzz_control: requests, status lines, run configs                   */
/* ------------------------------------------------------------------ */

static void control_seeds(void)
{
	static const struct {
		const char *name;
		const char *bytes;
		size_t len;
	} seeds[] = {
#define SEED(name, lit) { name, lit, sizeof(lit) - 1 }
		SEED("req-state", "state\0"),
		SEED("req-wait-restore", "wait-restore\0"),
		SEED("req-wait-checkpoint", "wait-checkpoint\0timeout-ms=1500\0"),
		SEED("req-checkpoint", "checkpoint\0path=/tmp/img1\0leave-running=1\0compression=none\0"),
		SEED("resp-ok", "ok"),
		SEED("resp-ok-text", "ok checkpointed to /tmp/img1"),
		SEED("resp-error", "error no such directory"),
		SEED("run-config",
		     "{\n  \"format\": \"netstack-run\",\n  \"version\": 1,\n  \"id\": \"myid\",\n"
		     "  \"nics\": [\n    {\"name\": \"eth0\", \"kind\": \"tap\", \"device\": \"tap0\"}\n  ],\n"
		     "  \"services\": [\n    {\"spec\": \"tcp:80:http\", \"socket\": 0},\n"
		     "    {\"spec\": \"udp:7:echo\", \"socket\": 1}\n  ]\n}\n"),
		SEED("run-config-fd", "{\"format\":\"netstack-run\",\"version\":1,\"id\":\"a.b-c_d\","
		     "\"nics\":[{\"name\":\"n0\",\"kind\":\"fd\",\"device\":\"\"}],\"services\":[]}"),
#undef SEED
	};
	size_t i;

	for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		put_file("fuzz_control", seeds[i].name, seeds[i].bytes, seeds[i].len);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	if (frame_path_init(&to4, peer_mac, PEER_IP4, nic_mac, NIC_IP4) ||
	    frame_path_init(&to6, peer_mac, PEER_IP6, nic_mac, NIC_IP6) ||
	    frame_path_init(&other4, peer_mac, OTHER_IP4, nic_mac, NIC_IP4))
		die("paths");
	frame_seeds();
	image_seeds();
	control_seeds();
	printf("fuzz_seeds: %d files written under %s\n", written, outdir);
	return 0;
}
