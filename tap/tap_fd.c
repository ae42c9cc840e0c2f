/* SPDX-License-Identifier: MIT */
/*
 * tap_fd.c - the fd endpoint: any fd that carries one Ethernet frame per
 * read and per write, handed over by the embedder (one end of a socketpair,
 * an AF_PACKET socket, a TAP fd opened elsewhere). It owns taking the fd
 * over: making it nonblocking, finding out whether it is a socket and of
 * which kind, and keeping an AF_PACKET socket from reading back the stack's
 * own transmissions. Moving frames is the shared fd path of tap_io.h.
 *
 * A non-socket fd is written with writev(): if it is a pipe whose reader is
 * gone, the process gets SIGPIPE unless it ignores that signal.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tap.h"
#include "tap_io.h"

static const struct tap_ops tap_fd_ops = {
	.kind = TAP_KIND_FD,
	.name = "fd",
	.recv = tap_io_recv,
	.send = tap_io_send,
	.destroy = tap_io_destroy,
};

/* Socket buffer the endpoint asks for: a burst of a 1 MiB TCP window in
 * full frames. With AF_PACKET's default (about 200 KiB) the kernel dropped
 * some 15% of the frames of a 1 MiB echo, and TCP stalled on the losses. */
#define FD_SOCKBUF (4 * 1024 * 1024)

/* Grow a socket buffer: SO_*BUFFORCE passes rmem_max when privileged; the
 * plain option is the fallback, capped by the kernel. Best effort. */
static void grow_sockbuf(int fd, int force, int plain)
{
	int size = FD_SOCKBUF;

	if (setsockopt(fd, SOL_SOCKET, force, &size, sizeof(size)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, plain, &size, sizeof(size));
}

/* TAP_IO_* flags for @fd; on sockets, bigger buffers, and
 * PACKET_IGNORE_OUTGOING on AF_PACKET. */
static unsigned fd_kind(int fd)
{
	int domain, type, on = 1;
	socklen_t len = sizeof(domain);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return 0;	/* ENOTSOCK: a TAP fd, a pipe, a character device */
	grow_sockbuf(fd, SO_RCVBUFFORCE, SO_RCVBUF);
	grow_sockbuf(fd, SO_SNDBUFFORCE, SO_SNDBUF);
	len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		type = SOCK_STREAM;
	if (domain == AF_PACKET) {
		/* Linux >= 4.20; on older kernels the stack's own frames come
		 * back to it, and it drops them as foreign. */
		(void)setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &on, sizeof(on));
	}
	if (type == SOCK_DGRAM || type == SOCK_RAW || type == SOCK_PACKET)
		return TAP_IO_SOCKET | TAP_IO_DGRAM;
	return TAP_IO_SOCKET;
}

/**
 * tap_fd_open() - make an endpoint on an fd that carries one frame per
 * read and per write
 * @fd: the fd; the endpoint owns it from this call on: it is closed when
 *      the endpoint is destroyed, and also when this call fails
 * @epp: receives the endpoint, owned by the caller (tap_endpoint_destroy())
 *
 * The fd is made nonblocking (which shows through every fd that shares its
 * open file description). A read of 0 on a stream or seqpacket socket is the
 * peer's end of file and fails the endpoint with -ECONNRESET.
 *
 * Return: 0, -EINVAL (@epp NULL), -EBADF (@fd not open), -ENOMEM.
 */
int tap_fd_open(int fd, struct ns_endpoint **epp)
{
	struct tap_io *io;
	int fl, ret;

	if (fd < 0)
		return -EBADF;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0) {
		/* Not open: there is nothing to close. */
		return -EBADF;
	}
	if (!epp) {
		ret = -EINVAL;
		goto fail_fd;
	}
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		ret = -errno;
		goto fail_fd;
	}
	io = calloc(1, sizeof(*io));
	if (!io) {
		ret = -ENOMEM;
		goto fail_fd;
	}
	io->flags = fd_kind(fd);
	io->ep.ops = &tap_fd_ops;
	io->ep.fd = fd;
	*epp = &io->ep;
	return 0;

fail_fd:
	close(fd);
	return ret;
}
