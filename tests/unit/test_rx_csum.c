/* SPDX-License-Identifier: MIT */
/*
 * test_rx_csum.c - which received checksums the stack checks (netstack/nic.c
 * rx_csum_prepare()). Datagrams with a wrong UDP checksum go to a whole
 * stack over the channel endpoint, each with the offload header a TAP would
 * have read: without one (any endpoint but a TAP) the stack checks and
 * drops; with DATA_VALID (the kernel checked it) or NEEDS_CSUM naming the
 * packet's own checksum field (the kernel's own packet, sum left partial)
 * it takes them unchecked, as Linux does; with NEEDS_CSUM naming another
 * field, or on fragments, it completes the sum where told and checks the
 * real one, and drops.
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

#define UDP_PORT 53

static const char payload[] = "checksum-vouched-or-not, 32 byte";

static struct ns_stack *stack;
static struct ns_endpoint *chan;
static struct frame_path to4, to6;
static int udp;

static void setup(void)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(UDP_PORT) };

	stack = chanstack_new(&chan, &to4, &to6);
	udp = ns_socket(stack, AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	cr_assert_geq(udp, 0);
	a6.sin6_addr = in6addr_any;
	cr_assert_eq(ns_bind(stack, udp, (struct sockaddr *)&a6, sizeof(a6)), 0);
}

static void teardown(void)
{
	ns_stack_free(stack);
	stack = NULL;
}

TestSuite(rx_csum, .init = setup, .fini = teardown, .timeout = 30);

/* Feed frames with @off to the stack; return how many datagrams reached
 * the socket. */
static int feed(uint8_t (*f)[2048], const size_t *len, int n, const struct tap_offload *off)
{
	uint8_t sink[256];
	int i, got = 0;

	for (i = 0; i < n; i++)
		cr_assert_eq(tap_channel_inject_offload(chan, f[i], len[i], off), 0);
	ns_lock(stack);
	ns_stack_run_once(stack, false);
	ns_unlock(stack);
	while (ns_channel_read(chan, sink, sizeof(sink)) != -EAGAIN)
		;	/* ICMP errors, neighbour queries: not what is looked at */
	while (ns_recvfrom(stack, udp, sink, sizeof(sink), MSG_DONTWAIT, NULL, NULL) >= 0)
		got++;
	return got;
}

/* A datagram to the socket; @bad: its checksum one off. Return the UDP
 * header's offset in the frame. */
static size_t datagram(uint8_t *f, size_t *len, bool v6, bool bad)
{
	size_t l4 = FRAME_ETH_HLEN + (v6 ? 40u : 20u);
	ssize_t n = frame_udp(f, 2048, v6 ? &to6 : &to4, 40000, UDP_PORT, payload,
			      sizeof(payload));

	cr_assert_gt(n, 0);
	*len = (size_t)n;
	if (bad)
		f[l4 + 7] ^= 1;
	return l4;
}

Test(rx_csum, without_a_header_every_checksum_is_checked)
{
	uint8_t f[1][2048];
	size_t len[1];

	datagram(f[0], len, false, false);
	cr_assert_eq(feed(f, len, 1, NULL), 1, "a right datagram was lost");
	datagram(f[0], len, false, true);
	cr_assert_eq(feed(f, len, 1, NULL), 0, "a wrong checksum was taken");
	datagram(f[0], len, true, true);
	cr_assert_eq(feed(f, len, 1, NULL), 0, "a wrong IPv6 checksum was taken");
}

Test(rx_csum, data_valid_is_taken_unchecked)
{
	const struct tap_offload valid = { .flags = VIRTIO_NET_HDR_F_DATA_VALID };
	uint8_t f[1][2048];
	size_t len[1];

	datagram(f[0], len, false, true);
	cr_assert_eq(feed(f, len, 1, &valid), 1, "DATA_VALID over IPv4 was checked");
	datagram(f[0], len, true, true);
	cr_assert_eq(feed(f, len, 1, &valid), 1, "DATA_VALID over IPv6 was checked");
}

Test(rx_csum, a_partial_sum_on_its_own_field_is_taken_unchecked)
{
	uint8_t f[1][2048];
	size_t len[1];
	size_t l4 = datagram(f[0], len, false, true);
	const struct tap_offload partial = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = (uint16_t)l4, .csum_offset = 6,
	};

	cr_assert_eq(feed(f, len, 1, &partial), 1);
}

Test(rx_csum, a_partial_sum_on_another_field_is_completed_and_checked)
{
	uint8_t f[1][2048];
	size_t len[1];
	size_t l4 = datagram(f[0], len, false, true);
	/* It names two payload bytes: completing the sum there leaves the
	 * (wrong) UDP checksum as it was, which the stack then checks. */
	const struct tap_offload elsewhere = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = (uint16_t)(l4 + 8),
		.csum_offset = 0,
	};

	cr_assert_eq(feed(f, len, 1, &elsewhere), 0, "a partial sum elsewhere vouched");
	datagram(f[0], len, false, true);
	cr_assert_eq(feed(f, len, 1, &(struct tap_offload){ .flags = VIRTIO_NET_HDR_F_DATA_VALID,
							     .csum_start = (uint16_t)(l4 + 8),
							     .csum_offset = 0 }),
		     0, "DATA_VALID with offsets naming another field vouched");
}

Test(rx_csum, fragments_are_checked_whatever_the_header_says)
{
	const struct tap_offload valid = { .flags = VIRTIO_NET_HDR_F_DATA_VALID };
	uint8_t whole[2048], f[2][2048];
	size_t wlen, len[2], l4 = datagram(whole, &wlen, false, true);
	size_t udplen = wlen - l4, cut = 16;	/* a multiple of 8 */
	int i;

	/* The wrong datagram in two IPv4 fragments, both vouched for. */
	for (i = 0; i < 2; i++) {
		const uint8_t *part = whole + l4 + (i ? cut : 0);
		size_t plen = i ? udplen - cut : cut;
		ssize_t n = frame_ip(f[i], sizeof(f[i]), &to4, 17, part, plen);
		uint8_t *ip = f[i] + FRAME_ETH_HLEN;
		uint16_t sum;

		cr_assert_gt(n, 0);
		len[i] = (size_t)n;
		ip[4] = 0x12;	/* the same id */
		ip[6] = (uint8_t)(i ? 0 : 0x20);	/* MF on the first */
		ip[7] = (uint8_t)(i ? cut / 8 : 0);
		ip[10] = ip[11] = 0;
		sum = frame_csum(ip, 20, 0);
		ip[10] = (uint8_t)(sum >> 8);
		ip[11] = (uint8_t)sum;
	}
	cr_assert_eq(feed(f, len, 2, &valid), 0, "a reassembled wrong datagram was taken");
	/* The same fragments right are delivered: the drop was the sum. */
	whole[l4 + 7] ^= 1;
	memcpy(f[0] + FRAME_ETH_HLEN + 20, whole + l4, cut);
	cr_assert_eq(feed(f, len, 2, &valid), 1, "the right reassembled datagram was lost");
}
