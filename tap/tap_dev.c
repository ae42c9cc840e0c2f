/* SPDX-License-Identifier: MIT */
/*
 * tap_dev.c - the TAP device endpoint: attaching to a TAP interface by name
 * (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, one Ethernet frame per read and write,
 * each behind a virtio-net header), creating it when the caller asks to,
 * turning on the offloads (TUNSETOFFLOAD: the kernel may hand over partial
 * checksums and TCP segments of up to 64 KiB) and reading its MTU. Moving
 * frames is the shared fd path of tap_io.h. A TAP this endpoint created is not made persistent,
 * so the kernel deletes it when the endpoint closes its fd; a TAP that
 * existed before (made persistent with `ip tuntap add`) stays.
 */
#define _GNU_SOURCE

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tap.h"
#include "tap_io.h"

/* The flag values of ns_endpoint_tap_open(), which passes them through. */
#define TAP_FLAGS_ALL TAP_CREATE

static_assert(TAP_NAME_MAX == IFNAMSIZ, "ep->device holds an interface name");

static const struct tap_ops tap_dev_ops = {
	.kind = TAP_KIND_TAP,
	.name = "tap",
	.recv = tap_io_recv,
	.send = tap_io_send,
	.destroy = tap_io_destroy,
};

/* The interface's MTU, asked through a throwaway socket of any family. */
static int dev_mtu(const char *name, unsigned *mtu)
{
	struct ifreq ifr = { 0 };
	int sk, ret = 0;

	sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sk < 0)
		return -errno;
	memcpy(ifr.ifr_name, name, strlen(name) + 1);
	if (ioctl(sk, SIOCGIFMTU, &ifr) < 0)
		ret = -errno;
	else
		*mtu = (unsigned)ifr.ifr_mtu;
	close(sk);
	return ret;
}

/**
 * tap_tap_open() - attach to a TAP device, creating it if asked
 * @name: interface name, 1 to TAP_NAME_MAX - 1 bytes; with TAP_CREATE a
 *        kernel template such as "tap%d" is allowed and ep->device gets the
 *        name the kernel chose
 * @flags: 0 or TAP_CREATE (NS_TAP_CREATE)
 * @epp: receives the endpoint, owned by the caller (tap_endpoint_destroy())
 *
 * Without TAP_CREATE a missing device is -ENODEV: TUNSETIFF would create it,
 * so its existence is checked first. (A device deleted between that check
 * and TUNSETIFF is created anyway, and vanishes again with the endpoint.)
 *
 * Return: 0; -EINVAL for a bad name or flags, or a device that is not a TAP;
 * -ENODEV; -EPERM without CAP_NET_ADMIN for a TAP we may not use; -EBUSY if
 * another fd is attached to it; -ENOMEM; another -errno from the kernel.
 */
int tap_tap_open(const char *name, unsigned flags, struct ns_endpoint **epp)
{
	struct ifreq ifr = { 0 };
	struct tap_io *io;
	size_t len;
	int fd, ret;

	if (!name || !epp || (flags & ~TAP_FLAGS_ALL))
		return -EINVAL;
	len = strnlen(name, TAP_NAME_MAX);
	if (len == 0 || len >= TAP_NAME_MAX)
		return -EINVAL;
	if (!(flags & TAP_CREATE) && if_nametoindex(name) == 0)
		return -ENODEV;

	io = calloc(1, sizeof(*io));
	if (!io)
		return -ENOMEM;
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto fail_alloc;
	}
	memcpy(ifr.ifr_name, name, len + 1);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		ret = -errno;
		goto fail_fd;
	}
	io->flags = TAP_IO_VNET;
	io->ep.offloads = TAP_EP_VNET;
	/* Large TCP segments from the kernel at any MTU: one frame and one
	 * read per 64 KiB instead of per 1448 bytes, the checksum completed
	 * in tap_io_recv() in the one pass the kernel would otherwise make.
	 * A kernel without these offloads still works, frame by frame. */
	{
		int hdrsz = sizeof(struct virtio_net_hdr);

		if (ioctl(fd, TUNSETVNETHDRSZ, &hdrsz) < 0 ||
		    ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) < 0)
			(void)ioctl(fd, TUNSETOFFLOAD, 0);
	}
	/* The kernel wrote back the name it used (a "%d" template filled in). */
	memcpy(io->ep.device, ifr.ifr_name, TAP_NAME_MAX);
	io->ep.device[TAP_NAME_MAX - 1] = '\0';
	ret = dev_mtu(io->ep.device, &io->ep.mtu);
	if (ret)
		goto fail_fd;

	io->ep.ops = &tap_dev_ops;
	io->ep.fd = fd;
	*epp = &io->ep;
	return 0;

fail_fd:
	close(fd);
fail_alloc:
	free(io);
	return ret;
}
