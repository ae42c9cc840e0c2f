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

#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "tap_csum.h"

#define TAP_ETH_HLEN 14u
#define TAP_VLAN_HLEN 4u
/* Largest frame any endpoint reads: the largest MTU lwIP's u16 lengths
 * allow plus Ethernet and VLAN headers. */
#define TAP_MTU_MAX 65521u
#define TAP_FRAME_MAX (TAP_MTU_MAX + TAP_ETH_HLEN + TAP_VLAN_HLEN)
#define TAP_NAME_MAX 16u
/* The most gather entries one transmitted frame may have (a coalesced TCP
 * frame: its header and up to 45 segments' payloads, a pbuf or two each). */
#define TAP_TX_IOV_MAX 128

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

/*
 * Whether a partial checksum's offsets (VIRTIO_NET_HDR_F_NEEDS_CSUM) lie
 * within a frame of @len bytes, as recv() guarantees for every frame it
 * returns with that flag.
 */
static inline bool tap_vnet_csum_in_frame(size_t len, const struct tap_offload *off)
{
	size_t start = off->csum_start, field = start + off->csum_offset;

	return !(off->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || (start < len && field + 2 <= len);
}

/**
 * tap_vnet_csum_complete() - finish a checksum the kernel left partial
 * @frame: the frame; the checksum field is rewritten in place
 * @len: its length
 * @off: its offload header; VIRTIO_NET_HDR_F_NEEDS_CSUM is replaced by
 *       VIRTIO_NET_HDR_F_DATA_VALID on success
 *
 * With NEEDS_CSUM, the field at csum_start + csum_offset holds the sum of
 * the pseudo-header and the checksum is the complement of the sum of
 * everything from csum_start on, that field included (virtio-net spec).
 *
 * Return: true, or false for offsets outside the frame (the caller drops
 * it as malformed).
 */
static inline bool tap_vnet_csum_complete(uint8_t *frame, size_t len, struct tap_offload *off)
{
	size_t start = off->csum_start, field = start + off->csum_offset;
	uint16_t sum;

	if (!(off->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
		return true;
	if (!tap_vnet_csum_in_frame(len, off))
		return false;
	sum = (uint16_t)~tap_csum_add(0, frame + start, len - start);
	/* UDP sends an all-zero sum as all ones (0 means "none"); a TCP sum
	 * of 0xffff and 0 are the same in ones' complement. */
	memcpy(frame + field, &sum, 2);
	off->flags = (uint8_t)((off->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM) |
			       VIRTIO_NET_HDR_F_DATA_VALID);
	return true;
}

/* A received frame. The caller provides @data with room for @cap bytes;
 * recv fills @len and @off. A frame may arrive with NEEDS_CSUM (its
 * checksum partial, its offsets within the frame): the receiver completes
 * it with tap_vnet_csum_complete() or knows it need not. */
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

/* ns_endpoint.offloads: frames pass a virtio-net header to and from the
 * kernel, so send() honours a frame's offload header (the kernel cuts a
 * TCP frame with gso_size into segments and fills in a partial checksum)
 * and received frames may be up to 64 KiB whatever the MTU. */
#define TAP_EP_VNET 0x1u

/* The common head of every endpoint. */
struct ns_endpoint {
	const struct tap_ops *ops;
	int fd;			/* pollable for input (EPOLLIN), or -1 */
	unsigned offloads;	/* TAP_EP_*; 0: plain frames only */
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
/* The same with the offload header a TAP would have read (tests of what the
 * stack does with one). */
int tap_channel_inject_offload(struct ns_endpoint *ep, const void *frame, size_t len,
			       const struct tap_offload *off);
ssize_t tap_channel_read(struct ns_endpoint *ep, void *buf, size_t cap);
/* The same, with the offload header the stack sent the frame with (all
 * zero unless the channel plays a TAP with one; @off may be NULL). */
ssize_t tap_channel_read_offload(struct ns_endpoint *ep, void *buf, size_t cap,
				 struct tap_offload *off);
/* Play a TAP with a virtio-net header (TAP_EP_VNET): the stack then sends
 * with offload headers, as to a TAP. Before the endpoint joins a NIC. */
int tap_channel_set_vnet(struct ns_endpoint *ep);
/* Frames waiting in the channel's outbound queue. */
size_t tap_channel_tx_pending(struct ns_endpoint *ep);

static inline void tap_endpoint_destroy(struct ns_endpoint *ep)
{
	if (ep)
		ep->ops->destroy(ep);
}

#endif /* NETSTACK_TAP_H */
