/* SPDX-License-Identifier: MIT */
/*
 * test_tap_fd.c - unit tests of tap/tap_fd.c (and the shared fd path of
 * tap/tap_io.h): taking an fd over, frames both ways over a seqpacket
 * socketpair with batching and truncation, the peer's end of file, a peer
 * that is gone on transmit, empty datagrams, and PACKET_IGNORE_OUTGOING on
 * an AF_PACKET socket (in a private network namespace).
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tap.h"

static struct ns_endpoint *ep;
static int peer = -1;

/* The endpoint on one end of a socketpair of @type, the test on the other. */
static void open_pair(int type)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(tap_fd_open(sv[0], &ep), 0);
	peer = sv[1];
}

static void setup(void)
{
	open_pair(SOCK_SEQPACKET);
}

static void teardown(void)
{
	tap_endpoint_destroy(ep);
	if (peer >= 0)
		close(peer);
}

TestSuite(tap_fd, .init = setup, .fini = teardown);

static void peer_send(uint8_t tag, size_t len)
{
	uint8_t buf[2048];

	cr_assert_leq(len, sizeof(buf));
	memset(buf, tag, len);
	cr_assert_eq(send(peer, buf, len, 0), (ssize_t)len);
}

static void slots(struct tap_rxframe *f, uint8_t (*bufs)[2048], unsigned n, size_t cap)
{
	for (unsigned i = 0; i < n; i++)
		f[i] = (struct tap_rxframe){ .data = bufs[i], .cap = cap };
}

Test(tap_fd, endpoint_head_describes_an_fd_endpoint)
{
	cr_assert_eq(ep->ops->kind, TAP_KIND_FD);
	cr_assert_str_eq(ep->ops->name, "fd");
	cr_assert_eq(ep->mtu, 0);
	cr_assert_str_empty(ep->device);
}

Test(tap_fd, open_makes_fd_nonblocking)
{
	int fl = fcntl(ep->fd, F_GETFL);

	cr_assert_geq(fl, 0);
	cr_assert(fl & O_NONBLOCK);
}

Test(tap_fd, destroy_closes_the_fd)
{
	int fd = ep->fd;

	tap_endpoint_destroy(ep);
	ep = NULL;
	cr_assert_eq(fcntl(fd, F_GETFD), -1);
	cr_assert_eq(errno, EBADF);
}

Test(tap_fd, open_on_bad_fd_is_ebadf)
{
	struct ns_endpoint *e = NULL;
	int fds[2];

	cr_assert_eq(tap_fd_open(-1, &e), -EBADF);
	cr_assert_eq(pipe(fds), 0);
	close(fds[0]);
	close(fds[1]);
	cr_assert_eq(tap_fd_open(fds[0], &e), -EBADF);
	cr_assert_null(e);
}

Test(tap_fd, open_failure_still_closes_the_fd)
{
	int fds[2];

	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(tap_fd_open(fds[0], NULL), -EINVAL);
	cr_assert_eq(fcntl(fds[0], F_GETFD), -1, "the endpoint owned it");
	close(fds[1]);
}

Test(tap_fd, recv_with_nothing_queued_is_zero)
{
	struct tap_rxframe f[4];
	uint8_t bufs[4][2048];

	slots(f, bufs, 4, 2048);
	cr_assert_eq(ep->ops->recv(ep, f, 4), 0);
}

Test(tap_fd, recv_batches_frames_in_order)
{
	struct tap_rxframe f[8];
	uint8_t bufs[8][2048];

	peer_send(1, 60);
	peer_send(2, 1514);
	peer_send(3, 61);
	slots(f, bufs, 8, 2048);
	cr_assert_eq(ep->ops->recv(ep, f, 8), 3);
	cr_assert_eq(f[0].len, 60);
	cr_assert_eq(f[1].len, 1514);
	cr_assert_eq(f[2].len, 61);
	for (unsigned i = 0; i < 3; i++) {
		cr_assert_eq(f[i].data[0], i + 1);
		cr_assert_eq(f[i].data[f[i].len - 1], i + 1);
	}
}

Test(tap_fd, recv_takes_at_most_n_frames)
{
	struct tap_rxframe f[2];
	uint8_t bufs[2][2048];

	for (uint8_t i = 1; i <= 3; i++)
		peer_send(i, 64);
	slots(f, bufs, 2, 2048);
	cr_assert_eq(ep->ops->recv(ep, f, 2), 2);
	cr_assert_eq(f[1].data[0], 2);
	cr_assert_eq(ep->ops->recv(ep, f, 2), 1);
	cr_assert_eq(f[0].data[0], 3);
}

Test(tap_fd, frame_longer_than_slot_is_dropped_and_counted)
{
	struct tap_rxframe f[2];
	uint8_t bufs[2][2048];

	peer_send(1, 200);
	peer_send(2, 100);
	slots(f, bufs, 2, 128);
	cr_assert_eq(ep->ops->recv(ep, f, 2), 1);
	cr_assert_eq(f[0].len, 100);
	cr_assert_eq(f[0].data[0], 2);
	cr_assert_eq(ep->rx_truncated, 1);
}

Test(tap_fd, frame_exactly_slot_size_is_delivered)
{
	struct tap_rxframe f[1];
	uint8_t bufs[1][2048];

	peer_send(7, 128);
	slots(f, bufs, 1, 128);
	cr_assert_eq(ep->ops->recv(ep, f, 1), 1);
	cr_assert_eq(f[0].len, 128);
	cr_assert_eq(ep->rx_truncated, 0);
}

Test(tap_fd, send_writes_one_message_per_frame)
{
	const struct iovec a[] = { { "ab", 2 }, { "cde", 3 } };
	const struct iovec b[] = { { "xyz", 3 } };
	const struct tap_txframe tx[] = {
		{ .iov = a, .iovcnt = 2, .len = 5 },
		{ .iov = b, .iovcnt = 1, .len = 3 },
	};
	char buf[16];

	cr_assert_eq(ep->ops->send(ep, tx, 2), 2);
	cr_assert_eq(recv(peer, buf, sizeof(buf), MSG_DONTWAIT), 5);
	cr_assert_arr_eq(buf, "abcde", 5);
	cr_assert_eq(recv(peer, buf, sizeof(buf), MSG_DONTWAIT), 3);
	cr_assert_arr_eq(buf, "xyz", 3);
}

Test(tap_fd, send_to_full_socket_takes_fewer_without_blocking)
{
	static uint8_t payload[1500];
	const struct iovec a[] = { { payload, sizeof(payload) } };
	struct tap_txframe tx[4096];
	int n;

	for (unsigned i = 0; i < 4096; i++)
		tx[i] = (struct tap_txframe){ .iov = a, .iovcnt = 1, .len = sizeof(payload) };
	n = ep->ops->send(ep, tx, 4096);
	cr_assert_gt(n, 0);
	cr_assert_lt(n, 4096, "a socketpair cannot queue 6 MB");
	cr_assert_eq(ep->ops->send(ep, tx, 1), 0, "still full");
}

Test(tap_fd, peer_close_is_econnreset_on_recv)
{
	struct tap_rxframe f[2];
	uint8_t bufs[2][2048];

	slots(f, bufs, 2, 2048);
	peer_send(1, 60);
	close(peer);
	peer = -1;
	cr_assert_eq(ep->ops->recv(ep, f, 2), 1, "frames before the end are delivered");
	cr_assert_eq(ep->ops->recv(ep, f, 2), -ECONNRESET);
}

Test(tap_fd, peer_close_is_negative_errno_on_send_not_sigpipe)
{
	const struct iovec a[] = { { "frame", 5 } };
	const struct tap_txframe tx = { .iov = a, .iovcnt = 1, .len = 5 };

	close(peer);
	peer = -1;
	cr_assert_eq(ep->ops->send(ep, &tx, 1), -EPIPE);
}

Test(tap_fd, empty_datagram_is_a_zero_length_frame_not_eof)
{
	struct tap_rxframe f[2];
	uint8_t bufs[2][2048];

	tap_endpoint_destroy(ep);
	close(peer);
	open_pair(SOCK_DGRAM);
	slots(f, bufs, 2, 2048);
	cr_assert_eq(send(peer, "", 0, 0), 0);
	peer_send(1, 60);
	cr_assert_eq(ep->ops->recv(ep, f, 2), 2);
	cr_assert_eq(f[0].len, 0);
	cr_assert_eq(f[1].len, 60);
}

Test(tap_fd, af_packet_socket_ignores_outgoing)
{
	struct ns_endpoint *e;
	int sk, on = 0;
	socklen_t len = sizeof(on);

	if (unshare(CLONE_NEWNET) < 0)
		cr_skip_test("no private network namespace: %s", strerror(errno));
	sk = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	if (sk < 0)
		cr_skip_test("no AF_PACKET socket: %s", strerror(errno));
	cr_assert_eq(tap_fd_open(sk, &e), 0);
	if (getsockopt(sk, SOL_PACKET, PACKET_IGNORE_OUTGOING, &on, &len) < 0)
		cr_skip_test("kernel lacks PACKET_IGNORE_OUTGOING (Linux < 4.20)");
	cr_assert_eq(on, 1);
	tap_endpoint_destroy(e);
}
