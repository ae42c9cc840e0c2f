/* SPDX-License-Identifier: MIT */
/*
 * tap.h - link endpoints behind one ops table. An endpoint moves Ethernet
 * frames between the stack and something else: a TAP device, any fd that
 * carries one frame per read/write (socketpair, AF_PACKET), or an in-memory
 * channel for tests. The interface is built for batches (many frames per
 * call) and gives every frame an offload header (the virtio-net header's
 * fields) so checksum and segmentation offloads fit without changing it.
 *
 * Threading: an endpoint is not locked by itself. The stack calls recv from
 * its dispatcher thread and send with the stack lock held; the two may run at
 * once on different threads, so an endpoint's recv and send paths must not
 * share unprotected state. The channel endpoint's test-side calls
 * (ns_channel_inject/read) take the channel's own mutex.
 */
#ifndef NETSTACK_TAP_H
#define NETSTACK_TAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define TAP_ETH_HLEN 14u
#define TAP_VLAN_HLEN 4u
/* Largest frame any endpoint reads: the largest MTU lwIP's u16 lengths
 * allow plus Ethernet and VLAN headers. */
#define TAP_MTU_MAX 65521u
#define TAP_FRAME_MAX (TAP_MTU_MAX + TAP_ETH_HLEN + TAP_VLAN_HLEN)
#define TAP_NAME_MAX 16u

/* Offload metadata of one frame, the fields of struct virtio_net_hdr. Zero
 * means "a plain, complete frame". */
struct tap_offload {
	uint8_t flags;		/* VIRTIO_NET_HDR_F_* */
	uint8_t gso_type;	/* VIRTIO_NET_HDR_GSO_* */
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
};

/* A received frame. The caller provides @data with room for @cap bytes;
 * recv fills @len and @off. */
struct tap_rxframe {
	struct tap_offload off;
	uint8_t *data;
	size_t cap;
	size_t len;
};

/* A frame to transmit, as a gather list (a pbuf chain needs no copy). The
 * endpoint only reads @iov during the call. */
struct tap_txframe {
	struct tap_offload off;
	const struct iovec *iov;
	int iovcnt;
	size_t len;		/* sum of the iov lengths */
};

/* tap_tap_open() flags; the public NS_TAP_CREATE equals TAP_CREATE. */
#define TAP_CREATE 0x1u

enum tap_kind {
	TAP_KIND_TAP = 1,
	TAP_KIND_FD,
	TAP_KIND_CHANNEL,
};

struct ns_endpoint;

struct tap_ops {
	enum tap_kind kind;
	const char *name;	/* "tap", "fd", "channel" */
	/*
	 * Receive up to @n frames without blocking. A frame longer than its
	 * slot's cap is dropped and counted in ep->rx_truncated.
	 * Return: frames received (0: none now), or -errno when the endpoint
	 * failed for good (the device is gone): the stack takes the link down.
	 */
	int (*recv)(struct ns_endpoint *ep, struct tap_rxframe *frames, unsigned n);
	/*
	 * Transmit up to @n frames without blocking.
	 * Return: how many were taken (the rest were not sent: the caller
	 * counts them as dropped), or -errno when the endpoint failed for good.
	 */
	int (*send)(struct ns_endpoint *ep, const struct tap_txframe *frames, unsigned n);
	/* Free everything the endpoint holds, the struct included. */
	void (*destroy)(struct ns_endpoint *ep);
};

/* The common head of every endpoint. */
struct ns_endpoint {
	const struct tap_ops *ops;
	int fd;			/* pollable for input (EPOLLIN), or -1 */
	unsigned mtu;		/* the device's MTU when it has one, else 0 */
	char device[TAP_NAME_MAX]; /* the TAP's name, else empty */
	uint64_t rx_truncated;	/* frames longer than the slot they were read into */
};

/* Constructors: return 0 or -errno. */
int tap_tap_open(const char *name, unsigned flags, struct ns_endpoint **epp);
int tap_fd_open(int fd, struct ns_endpoint **epp);
int tap_channel_new(struct ns_endpoint **epp);

/* Channel test side (also the public ns_channel_* calls). */
int tap_channel_inject(struct ns_endpoint *ep, const void *frame, size_t len);
ssize_t tap_channel_read(struct ns_endpoint *ep, void *buf, size_t cap);
/* Frames waiting in the channel's outbound queue. */
size_t tap_channel_tx_pending(struct ns_endpoint *ep);

static inline void tap_endpoint_destroy(struct ns_endpoint *ep)
{
	if (ep)
		ep->ops->destroy(ep);
}

#endif /* NETSTACK_TAP_H */
