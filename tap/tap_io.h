/* SPDX-License-Identifier: MIT */
/*
 * tap_io.h - private to tap/: the state and the receive/send/destroy paths
 * shared by the two endpoints that move frames through a kernel fd, the TAP
 * device (tap_dev.c) and the fd endpoint (tap_fd.c). Both carry one frame per
 * read and per write; they differ only in how the fd is obtained and in two
 * flags, so the paths live here once and each file points its ops table at
 * them. Also container_of, which every endpoint uses to get from the common
 * head back to its own struct.
 *
 * No virtio-net header is used on these fds: received frames get a zero
 * offload header, and the offload fields of transmitted frames are ignored,
 * so the stack must hand them complete frames (checksums filled in, no GSO).
 */
#ifndef NETSTACK_TAP_IO_H
#define NETSTACK_TAP_IO_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tap.h"

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))
#endif

/* The fd is a socket: send with sendmsg(MSG_NOSIGNAL) so a peer that went
 * away is -EPIPE and not a SIGPIPE that kills the embedder. */
#define TAP_IO_SOCKET 0x1u
/* The fd carries datagrams (SOCK_DGRAM, SOCK_RAW, AF_PACKET): a zero-length
 * read is an empty datagram, handed up for the stack to count as a runt,
 * and not end of file. */
#define TAP_IO_DGRAM 0x2u

/* An endpoint on a kernel fd that is owned by the endpoint. */
struct tap_io {
	struct ns_endpoint ep;
	unsigned flags;		/* TAP_IO_* */
};

/*
 * Errors after which the endpoint still works: the call stops and reports
 * what it moved so far, and the next call tries again. ENOBUFS/ENOMEM are
 * momentary shortages; the ENET*, EHOST* and ECONNREFUSED ones are socket
 * errors the kernel reports once (an AF_PACKET socket's device went down, an
 * ICMP error arrived). On transmit, the kernel may also refuse one frame
 * (EINVAL: a runt, EMSGSIZE: too big for the socket) and a TAP that is
 * administratively down refuses writes with EIO until it is brought up.
 * Anything else (EBADFD from a TAP whose device was deleted, EBADF, EPIPE,
 * ECONNRESET, ...) means the fd is gone for good; treating it as
 * momentary would leave the dispatcher polling an fd that never recovers.
 */
static inline bool tap_io_err_transient(int err, bool tx)
{
	switch (err) {
	case EAGAIN:
#if EWOULDBLOCK != EAGAIN
	case EWOULDBLOCK:
#endif
	case ENOBUFS:
	case ENOMEM:
	case ENETDOWN:
	case ENETUNREACH:
	case EHOSTUNREACH:
	case ECONNREFUSED:
		return true;
	case EINVAL:
	case EMSGSIZE:
	case EIO:
		return tx;
	default:
		return false;
	}
}

/*
 * tap_io_recv() - the recv op: read frames one by one into the caller's slots.
 *
 * Each read gets the slot plus one spare byte, so a frame longer than the
 * slot shows as a read longer than its cap, on any fd that keeps frame
 * boundaries (a TAP, a datagram or seqpacket socket): the kernel discards
 * the rest of that frame, we count it and read the next one into the same
 * slot. A read of 0 on a stream or seqpacket fd is the peer's end of file.
 * Frames already read are always delivered; an error that ends the endpoint
 * is reported on its own, by the next call, which meets it again.
 */
static inline int tap_io_recv(struct ns_endpoint *ep, struct tap_rxframe *frames, unsigned n)
{
	struct tap_io *io = container_of(ep, struct tap_io, ep);
	unsigned got = 0;

	while (got < n) {
		struct tap_rxframe *f = &frames[got];
		uint8_t spare;
		struct iovec iov[2] = {
			{ .iov_base = f->data, .iov_len = f->cap },
			{ .iov_base = &spare, .iov_len = 1 },
		};
		ssize_t r = readv(ep->fd, iov, 2);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (got || tap_io_err_transient(errno, false))
				break;
			return -errno;
		}
		if (r == 0 && !(io->flags & TAP_IO_DGRAM)) {
			if (got)
				break;
			return -ECONNRESET;
		}
		if ((size_t)r > f->cap) {
			ep->rx_truncated++;
			continue;
		}
		memset(&f->off, 0, sizeof(f->off));
		f->len = (size_t)r;
		got++;
	}
	return (int)got;
}

/*
 * tap_io_send() - the send op: write frames one by one, each as one
 * gather write. Stops at the first frame the fd does not take now.
 */
static inline int tap_io_send(struct ns_endpoint *ep, const struct tap_txframe *frames, unsigned n)
{
	struct tap_io *io = container_of(ep, struct tap_io, ep);
	unsigned sent = 0;

	while (sent < n) {
		const struct tap_txframe *f = &frames[sent];
		ssize_t r;

		if (io->flags & TAP_IO_SOCKET) {
			struct msghdr msg = {
				.msg_iov = (struct iovec *)f->iov,
				.msg_iovlen = (size_t)f->iovcnt,
			};
			r = sendmsg(ep->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		} else {
			r = writev(ep->fd, f->iov, f->iovcnt);
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (sent || tap_io_err_transient(errno, true))
				break;
			return -errno;
		}
		sent++;
	}
	return (int)sent;
}

/* tap_io_destroy() - the destroy op: close the fd and free the endpoint. */
static inline void tap_io_destroy(struct ns_endpoint *ep)
{
	struct tap_io *io = container_of(ep, struct tap_io, ep);

	close(ep->fd);
	free(io);
}

#endif /* NETSTACK_TAP_IO_H */
