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
 * A TAP opened by tap_dev.c carries a virtio-net header before every frame
 * (TAP_IO_VNET): the kernel then hands over its large TCP segments (GSO, up
 * to 64 KiB at any MTU) with the checksum left partial (NEEDS_CSUM). This
 * path checks that the partial checksum's offsets lie within the frame and
 * hands the frame up as it is: the stack completes the sum only if it needs
 * it (tap_vnet_csum_complete()), which for a TCP or UDP packet straight
 * from the kernel's memory it does not. On transmit the frame's offload
 * fields become the header. The fd endpoint carries no
 * header: received frames get a zero offload header, the offload fields of
 * transmitted frames are ignored, and the stack must hand it complete frames.
 */
#ifndef NETSTACK_TAP_IO_H
#define NETSTACK_TAP_IO_H

#include <errno.h>
#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tap.h"
#include "tap_csum.h"

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
/* Every frame is preceded by a struct virtio_net_hdr (IFF_VNET_HDR). */
#define TAP_IO_VNET 0x4u
/* Gather entries of one frame on transmit, the header included. */
#define TAP_IO_IOV_MAX (TAP_TX_IOV_MAX + 1)

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

static inline void tap_vnet_to_offload(const struct virtio_net_hdr *h, struct tap_offload *off)
{
	off->flags = h->flags;
	off->gso_type = h->gso_type;
	off->hdr_len = h->hdr_len;
	off->gso_size = h->gso_size;
	off->csum_start = h->csum_start;
	off->csum_offset = h->csum_offset;
}

static inline void tap_vnet_from_offload(const struct tap_offload *off, struct virtio_net_hdr *h)
{
	h->flags = off->flags;
	h->gso_type = off->gso_type;
	h->hdr_len = off->hdr_len;
	h->gso_size = off->gso_size;
	h->csum_start = off->csum_start;
	h->csum_offset = off->csum_offset;
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
		struct virtio_net_hdr vh;
		uint8_t spare;
		bool vnet = io->flags & TAP_IO_VNET;
		struct iovec iov[3] = {
			{ .iov_base = &vh, .iov_len = sizeof(vh) },
			{ .iov_base = f->data, .iov_len = f->cap },
			{ .iov_base = &spare, .iov_len = 1 },
		};
		ssize_t r = readv(ep->fd, iov + !vnet, 3 - !vnet);

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
		memset(&f->off, 0, sizeof(f->off));
		if (vnet) {
			/* A read shorter than the header is a runt: zero length. */
			r = r < (ssize_t)sizeof(vh) ? 0 : r - (ssize_t)sizeof(vh);
			tap_vnet_to_offload(&vh, &f->off);
		}
		if ((size_t)r > f->cap) {
			ep->rx_truncated++;
			continue;
		}
		f->len = (size_t)r;
		if (!tap_vnet_csum_in_frame(f->len, &f->off))
			f->len = 0;	/* the stack counts it as malformed */
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

		if (io->flags & TAP_IO_VNET) {
			struct virtio_net_hdr vh;
			struct iovec iov[TAP_IO_IOV_MAX];

			if (f->iovcnt >= TAP_IO_IOV_MAX)
				break;	/* the caller counts it as dropped */
			tap_vnet_from_offload(&f->off, &vh);
			iov[0].iov_base = &vh;
			iov[0].iov_len = sizeof(vh);
			memcpy(iov + 1, f->iov, (size_t)f->iovcnt * sizeof(*iov));
			r = writev(ep->fd, iov, f->iovcnt + 1);
		} else if (io->flags & TAP_IO_SOCKET) {
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
