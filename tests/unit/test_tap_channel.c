/* SPDX-License-Identifier: MIT */
/*
 * test_tap_channel.c - unit tests of tap/tap_channel.c: the inbound and
 * outbound queues (order, batching, bounds, truncation), the eventfd that
 * tells the dispatcher when inbound frames wait, and the refusal of calls on
 * endpoints that are not channels.
 */
#define _GNU_SOURCE

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "tap.h"

static struct ns_endpoint *ep;

static void setup(void)
{
	cr_assert_eq(tap_channel_new(&ep), 0);
}

static void teardown(void)
{
	tap_endpoint_destroy(ep);
}

TestSuite(tap_channel, .init = setup, .fini = teardown);

/* A frame of @len bytes whose every byte is @tag. */
static void inject_tagged(uint8_t tag, size_t len)
{
	uint8_t buf[256];

	cr_assert_leq(len, sizeof(buf));
	memset(buf, tag, len);
	cr_assert_eq(tap_channel_inject(ep, buf, len), 0);
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	cr_assert_geq(poll(&p, 1, 0), 0);
	return p.revents & POLLIN;
}

/* Up to @n slots of 256 bytes each, backed by @bufs. */
static void slots(struct tap_rxframe *f, uint8_t (*bufs)[256], unsigned n, size_t cap)
{
	for (unsigned i = 0; i < n; i++)
		f[i] = (struct tap_rxframe){ .data = bufs[i], .cap = cap };
}

Test(tap_channel, endpoint_head_describes_a_channel)
{
	cr_assert_eq(ep->ops->kind, TAP_KIND_CHANNEL);
	cr_assert_str_eq(ep->ops->name, "channel");
	cr_assert_geq(ep->fd, 0);
	cr_assert_eq(ep->mtu, 0);
	cr_assert_str_empty(ep->device);
}

Test(tap_channel, inbound_frames_come_out_in_fifo_order)
{
	struct tap_rxframe f[8];
	uint8_t bufs[8][256];

	inject_tagged(1, 60);
	inject_tagged(2, 61);
	inject_tagged(3, 62);
	slots(f, bufs, 8, 256);
	cr_assert_eq(ep->ops->recv(ep, f, 8), 3);
	for (unsigned i = 0; i < 3; i++) {
		cr_assert_eq(f[i].len, 60 + i);
		cr_assert_eq(f[i].data[0], i + 1);
		cr_assert_eq(f[i].data[f[i].len - 1], i + 1);
		cr_assert_eq(f[i].off.flags, 0);
	}
}

Test(tap_channel, recv_takes_at_most_n_frames)
{
	struct tap_rxframe f[2];
	uint8_t bufs[2][256];

	for (uint8_t i = 1; i <= 5; i++)
		inject_tagged(i, 64);
	slots(f, bufs, 2, 256);
	cr_assert_eq(ep->ops->recv(ep, f, 2), 2);
	cr_assert_eq(f[1].data[0], 2);
	cr_assert_eq(ep->ops->recv(ep, f, 2), 2);
	cr_assert_eq(f[0].data[0], 3);
	cr_assert_eq(ep->ops->recv(ep, f, 2), 1);
	cr_assert_eq(f[0].data[0], 5);
	cr_assert_eq(ep->ops->recv(ep, f, 2), 0);
}

Test(tap_channel, frame_longer_than_slot_is_dropped_and_counted)
{
	struct tap_rxframe f[2];
	uint8_t bufs[2][256];

	inject_tagged(1, 200);
	inject_tagged(2, 100);
	slots(f, bufs, 2, 128);
	/* The 200-byte frame is not delivered; the next one takes its slot. */
	cr_assert_eq(ep->ops->recv(ep, f, 2), 1);
	cr_assert_eq(f[0].len, 100);
	cr_assert_eq(f[0].data[0], 2);
	cr_assert_eq(ep->rx_truncated, 1);
}

Test(tap_channel, inject_refuses_empty_and_oversized_frames)
{
	static uint8_t big[TAP_FRAME_MAX + 1];

	cr_assert_eq(tap_channel_inject(ep, big, 0), -EINVAL);
	cr_assert_eq(tap_channel_inject(ep, big, TAP_FRAME_MAX + 1), -EINVAL);
	cr_assert_eq(tap_channel_inject(ep, NULL, 60), -EINVAL);
	cr_assert_eq(tap_channel_inject(ep, big, TAP_FRAME_MAX), 0);
}

Test(tap_channel, inject_on_full_queue_is_enobufs)
{
	uint8_t frame[60] = { 0 };
	int ret;
	unsigned n = 0;

	while ((ret = tap_channel_inject(ep, frame, sizeof(frame))) == 0)
		n++;
	cr_assert_eq(ret, -ENOBUFS);
	cr_assert_eq(n, 4096);
}

Test(tap_channel, eventfd_readable_exactly_while_inbound_not_empty)
{
	struct tap_rxframe f[1];
	uint8_t bufs[1][256];

	slots(f, bufs, 1, 256);
	cr_assert_not(readable(ep->fd));
	inject_tagged(1, 60);
	inject_tagged(2, 60);
	cr_assert(readable(ep->fd));
	cr_assert_eq(ep->ops->recv(ep, f, 1), 1);
	cr_assert(readable(ep->fd), "one frame still queued");
	cr_assert_eq(ep->ops->recv(ep, f, 1), 1);
	cr_assert_not(readable(ep->fd), "queue drained");
	inject_tagged(3, 60);
	cr_assert(readable(ep->fd));
}

Test(tap_channel, eventfd_reset_when_only_oversized_frames_were_drained)
{
	struct tap_rxframe f[1];
	uint8_t bufs[1][256];

	slots(f, bufs, 1, 16);
	inject_tagged(1, 60);
	cr_assert_eq(ep->ops->recv(ep, f, 1), 0);
	cr_assert_eq(ep->rx_truncated, 1);
	cr_assert_not(readable(ep->fd));
}

Test(tap_channel, sent_frames_are_gathered_and_read_in_order)
{
	const struct iovec a[] = { { "ab", 2 }, { "cde", 3 } };
	const struct iovec b[] = { { "xyz", 3 } };
	const struct tap_txframe tx[] = {
		{ .iov = a, .iovcnt = 2, .len = 5 },
		{ .iov = b, .iovcnt = 1, .len = 3 },
	};
	char buf[16];

	cr_assert_eq(ep->ops->send(ep, tx, 2), 2);
	cr_assert_eq(tap_channel_tx_pending(ep), 2);
	cr_assert_eq(tap_channel_read(ep, buf, sizeof(buf)), 5);
	cr_assert_arr_eq(buf, "abcde", 5);
	cr_assert_eq(tap_channel_read(ep, buf, sizeof(buf)), 3);
	cr_assert_arr_eq(buf, "xyz", 3);
	cr_assert_eq(tap_channel_tx_pending(ep), 0);
	cr_assert_eq(tap_channel_read(ep, buf, sizeof(buf)), -EAGAIN);
}

Test(tap_channel, read_into_short_buffer_truncates_and_returns_full_length)
{
	const struct iovec a[] = { { "abcdef", 6 } };
	const struct tap_txframe tx = { .iov = a, .iovcnt = 1, .len = 6 };
	char buf[4] = { 0 };

	cr_assert_eq(ep->ops->send(ep, &tx, 1), 1);
	cr_assert_eq(tap_channel_read(ep, buf, 3), 6);
	cr_assert_arr_eq(buf, "abc\0", 4);
	cr_assert_eq(tap_channel_tx_pending(ep), 0, "the rest of the frame is gone");
}

Test(tap_channel, send_on_full_outbound_queue_takes_fewer)
{
	const unsigned n = 65536 + 10;
	const struct iovec a[] = { { "frame", 5 } };
	struct tap_txframe *tx = calloc(n, sizeof(*tx));

	cr_assert_not_null(tx);
	for (unsigned i = 0; i < n; i++)
		tx[i] = (struct tap_txframe){ .iov = a, .iovcnt = 1, .len = 5 };
	cr_assert_eq(ep->ops->send(ep, tx, n), 65536);
	cr_assert_eq(tap_channel_tx_pending(ep), 65536);
	cr_assert_eq(ep->ops->send(ep, tx, 1), 0);
	free(tx);
}

/* A foreign endpoint: right head, wrong ops. */
static int no_recv(struct ns_endpoint *e, struct tap_rxframe *f, unsigned n)
{
	(void)e, (void)f, (void)n;
	return 0;
}

static int no_send(struct ns_endpoint *e, const struct tap_txframe *f, unsigned n)
{
	(void)e, (void)f, (void)n;
	return 0;
}

static void no_destroy(struct ns_endpoint *e)
{
	(void)e;
}

Test(tap_channel, channel_calls_on_other_kinds_are_einval)
{
	static const struct tap_ops fd_ops = { TAP_KIND_FD, "fd", no_recv, no_send, no_destroy };
	static const struct tap_ops fake_chan_ops = { TAP_KIND_CHANNEL, "channel", no_recv, no_send, no_destroy };
	struct ns_endpoint other = { .ops = &fd_ops, .fd = -1 };
	struct ns_endpoint fake = { .ops = &fake_chan_ops, .fd = -1 };
	char buf[8];

	cr_assert_eq(tap_channel_inject(&other, "12345678", 8), -EINVAL);
	cr_assert_eq(tap_channel_read(&other, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(tap_channel_tx_pending(&other), 0);
	cr_assert_eq(tap_channel_inject(&fake, "12345678", 8), -EINVAL);
	cr_assert_eq(tap_channel_inject(NULL, "12345678", 8), -EINVAL);
	cr_assert_eq(tap_channel_read(NULL, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(tap_channel_read(ep, NULL, 8), -EINVAL);
}

Test(tap_channel, new_without_result_pointer_is_einval)
{
	cr_assert_eq(tap_channel_new(NULL), -EINVAL);
}

/* A test thread injecting while the dispatcher receives: every frame
 * arrives once, in order, none lost to a race on the queue or eventfd. */
#define RACE_FRAMES 20000u

static void *injector(void *arg)
{
	(void)arg;
	for (uint32_t i = 0; i < RACE_FRAMES;) {
		uint8_t frame[64] = { 0 };

		memcpy(frame, &i, sizeof(i));
		int ret = tap_channel_inject(ep, frame, sizeof(frame));
		if (ret == 0)
			i++;
		else if (ret != -ENOBUFS)
			return (void *)1;
	}
	return NULL;
}

Test(tap_channel, concurrent_inject_and_recv_keep_order)
{
	struct tap_rxframe f[32];
	uint8_t bufs[32][256];
	pthread_t t;
	uint32_t next = 0;
	void *res;

	slots(f, bufs, 32, 256);
	cr_assert_eq(pthread_create(&t, NULL, injector, NULL), 0);
	while (next < RACE_FRAMES) {
		struct pollfd p = { .fd = ep->fd, .events = POLLIN };
		int n;

		cr_assert_geq(poll(&p, 1, 5000), 1, "eventfd stayed quiet with frames pending");
		n = ep->ops->recv(ep, f, 32);
		cr_assert_geq(n, 0);
		for (int i = 0; i < n; i++, next++) {
			uint32_t seq;

			memcpy(&seq, f[i].data, sizeof(seq));
			cr_assert_eq(seq, next);
		}
	}
	cr_assert_eq(pthread_join(t, &res), 0);
	cr_assert_null(res);
}
