/* SPDX-License-Identifier: MIT */
/*
 * test_tx_csum.c - who makes the TCP checksums a NIC sends (netstack/nic.c
 * nic_csum_base(), ns_nic_set_mtu()). On a TAP with a virtio-net header
 * lwIP leaves them to the kernel: each TCP frame goes with NEEDS_CSUM and
 * the pseudo-header sum in its checksum field, which the kernel completes
 * (or cuts the frame into segments and completes each). Once the MTU
 * changes, a segment lwIP built for the old MTU could leave in IP
 * fragments, and a fragment's checksum cannot be left partial, so lwIP
 * makes TCP's checksums itself again on that NIC. Driven over the channel
 * endpoint playing such a TAP (tap_channel_set_vnet()).
 */
#define _GNU_SOURCE

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <linux/virtio_net.h>
#include <string.h>

#include "chanstack.h"
#include "frames.h"
#include "internal.h"
#include "netstack.h"
#include "tap.h"

#define PORT 8080

static struct ns_stack *stack;
static struct ns_endpoint *chan;
static struct frame_path to4, to6;

static void setup(void)
{
	stack = chanstack_new_vnet(&chan, &to4, &to6);
}

static void teardown(void)
{
	ns_stack_free(stack);
	stack = NULL;
}

TestSuite(tx_csum, .init = setup, .fini = teardown, .timeout = 30);

/* The last TCP frame the stack sent to the peer. */
struct last {
	struct tcp_peer *peer;
	bool got;
	struct chan_frame f;
};

/* Complete a partial checksum as the kernel does for NEEDS_CSUM: the sum
 * from csum_start to the end, folded, into csum_start + csum_offset. */
static void complete_csum(struct chan_frame *f)
{
	uint16_t sum;

	cr_assert_leq((size_t)f->off.csum_start + f->off.csum_offset + 2, f->len);
	sum = htons(frame_csum(f->buf + f->off.csum_start, f->len - f->off.csum_start, 0));
	memcpy(f->buf + f->off.csum_start + f->off.csum_offset, &sum, 2);
}

static void keep_last(const struct chan_frame *f, void *arg)
{
	struct last *l = arg;

	if (f->p.proto != IPPROTO_TCP || f->p.dport != l->peer->sport)
		return;
	tcp_peer_absorb(l->peer, &f->p);
	l->f = *f;
	l->got = true;
}

/* Run the stack; return whether it sent @peer a TCP frame, the last in
 * @l->f. Every segment is absorbed by @peer. */
static bool run(struct tcp_peer *peer, struct last *l)
{
	l->peer = peer;
	l->got = false;
	chanstack_run(stack, chan, &to4, &to6, keep_last, l);
	return l->got;
}

/* A connection from the peer to a listener, accepted: its socket. */
static int connect_peer(struct tcp_peer *peer, const struct frame_path *path, int family)
{
	static const uint8_t mss[] = { 2, 4, 0x05, 0xb4 };	/* 1460 */
	struct sockaddr_storage ss = { 0 };
	static struct last s;
	uint8_t f[256];
	socklen_t len;
	int l, c;

	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(PORT);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(PORT);
		len = sizeof(*a);
	}
	l = ns_socket(stack, family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	cr_assert_geq(l, 0);
	cr_assert_eq(ns_bind(stack, l, (struct sockaddr *)&ss, len), 0);
	cr_assert_eq(ns_listen(stack, l, 4), 0);
	tcp_peer_init(peer, path, 40000, PORT, 1000);
	cr_assert_eq(ns_channel_inject(chan, f, (size_t)tcp_peer_syn(peer, f, sizeof(f), mss, sizeof(mss))),
		     0);
	cr_assert(run(peer, &s), "no SYN-ACK");
	cr_assert_eq(ns_channel_inject(chan, f, (size_t)tcp_peer_ack(peer, f, sizeof(f))), 0);
	run(peer, &s);
	c = ns_accept(stack, l, NULL, NULL, SOCK_NONBLOCK);
	cr_assert_geq(c, 0, "no connection: %d", c);
	return c;
}

/* The stack sends @n bytes on @c; return the data frame the peer got. */
static void send_data(int c, struct tcp_peer *peer, size_t n, struct last *s)
{
	static const uint8_t data[1000] = { 1, 2, 3 };

	cr_assert_eq(ns_send(stack, c, data, n, MSG_DONTWAIT), (ssize_t)n);
	cr_assert(run(peer, s), "no data frame");
	cr_assert_eq(s->f.p.payload_len, n);
	/* Acknowledged, so Nagle holds nothing back next time. */
	{
		static struct last ack;
		uint8_t f[256];

		cr_assert_eq(ns_channel_inject(chan, f, (size_t)tcp_peer_ack(peer, f, sizeof(f))), 0);
		run(peer, &ack);
	}
}

static void partial_then_whole_after_an_mtu_change(const struct frame_path *path, int family)
{
	struct tcp_peer peer;
	static struct last s;
	size_t l4 = FRAME_ETH_HLEN + (family == AF_INET ? 20 : 40);
	int c = connect_peer(&peer, path, family);

	/* Left to the kernel: partial, with the header that says where. */
	send_data(c, &peer, 1000, &s);
	cr_assert(s.f.off.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM, "the TCP checksum was not left partial");
	cr_assert_eq(s.f.off.csum_start, l4);
	cr_assert_eq(s.f.off.csum_offset, 16);
	cr_assert_not(s.f.p.csum_ok, "a partial checksum that verifies as whole");
	complete_csum(&s.f);
	cr_assert_eq(frame_parse(s.f.buf, s.f.len, &s.f.p), 0);
	cr_assert(s.f.p.csum_ok, "the partial checksum does not complete to the right one");

	/* After the MTU changes, lwIP makes it whole itself. */
	cr_assert_eq(ns_nic_set_mtu(stack, 1, 1400), 0);
	send_data(c, &peer, 1000, &s);
	cr_assert_not(s.f.off.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM,
		      "the TCP checksum still left to the kernel after the MTU changed");
	cr_assert(s.f.p.csum_ok, "the checksum lwIP made is wrong");
	ns_close(stack, c);
}

Test(tx_csum, ipv4_partial_until_the_mtu_changes)
{
	partial_then_whole_after_an_mtu_change(&to4, AF_INET);
}

Test(tx_csum, ipv6_partial_until_the_mtu_changes)
{
	partial_then_whole_after_an_mtu_change(&to6, AF_INET6);
}
