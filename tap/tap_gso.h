/* SPDX-License-Identifier: MIT */
/*
 * tap_gso.h - transmit GSO by coalescing: consecutive TCP segments of one
 * flow, handed over one by one in a burst, become one large frame with a
 * virtio-net header (gso_type TCPV4/TCPV6, gso_size = the segments' payload
 * size, a partial checksum) that the kernel cuts back into exactly those
 * segments. lwIP builds segments no larger than the MSS (1448 bytes of data
 * on a 1500-MTU link); one writev per segment was what bounded sending at
 * that MTU. Only for endpoints with TAP_EP_VNET.
 *
 * A segment joins the pending frame when the kernel's segmentation would
 * give it back unchanged: the same Ethernet header, IP header (apart from
 * the lengths, the IPv4 id and checksum), ports, ack, window and TCP
 * options (timestamps included, byte for byte); its sequence number follows
 * the last one's; flags ACK alone or with PSH (the frame carries the last
 * segment's PSH, as the kernel puts it on the last piece only); payload of
 * exactly gso_size, except that a shorter one may end the frame. IPv4 with
 * options or fragments, SYN, FIN, RST, URG, pure ACKs and anything not TCP
 * is not taken: the caller sends it itself, after the pending frame.
 *
 * Payload bytes are not copied: the pending frame points into the callers'
 * buffers, which they keep alive until @release gives each back (the header
 * is copied, since lwIP rewrites it in place to retransmit). Not locked; the
 * caller serialises (the stack lock).
 */
#ifndef NETSTACK_TAP_GSO_H
#define NETSTACK_TAP_GSO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "tap.h"

/* Room for Ethernet, IPv6 and a TCP header with the most options. */
#define TAP_GSO_HDR_MAX (TAP_ETH_HLEN + 40u + 60u)
/* Segments one frame may carry: 65535 bytes of IP hold 45 full 1448-byte
 * segments; smaller MSSes stop at this bound instead. */
#define TAP_GSO_SEGS_MAX 64u

struct tap_gso {
	/* Send one frame (@nseg segments, @wire bytes as they were handed
	 * over). Return: as the endpoint's send() for one frame. */
	int (*emit)(void *arg, const struct tap_txframe *f, unsigned nseg, size_t wire);
	/* The frame holding @cookie's payload is gone: it may be freed. */
	void (*release)(void *arg, void *cookie);
	void *arg;
	/* lwIP leaves TCP checksums out (the NIC's NETIF_CHECKSUM_GEN_TCP is
	 * off): single segments go with a partial checksum too. */
	bool csum_partial;

	/* The pending frame; nseg == 0: none. */
	unsigned nseg;
	uint8_t hdr[TAP_GSO_HDR_MAX];
	uint16_t hlen;		/* its Ethernet + IP + TCP headers */
	uint16_t l4;		/* where TCP starts */
	uint16_t mss;		/* every segment's payload but the last's */
	bool v6;
	bool closed;		/* the last segment was short: nothing may follow */
	uint32_t next_seq;
	size_t payload;		/* data bytes in the frame */
	size_t wire;		/* bytes of its segments */
	int iovcnt;
	struct iovec iov[TAP_TX_IOV_MAX]; /* [0]: hdr */
	void *cookie[TAP_GSO_SEGS_MAX];
};

void tap_gso_init(struct tap_gso *g,
		  int (*emit)(void *arg, const struct tap_txframe *f, unsigned nseg, size_t wire),
		  void (*release)(void *arg, void *cookie), void *arg);
/**
 * tap_gso_add() - offer one frame
 * @iov, @iovcnt, @len: the frame, as a gather list
 * @cookie: given back through release() once the frame's bytes are sent
 *
 * Return: true if the frame was taken (it will go out with the pending
 * frame), false if not: the pending frame has then been sent, and the
 * caller sends this one itself.
 */
bool tap_gso_add(struct tap_gso *g, const struct iovec *iov, int iovcnt, size_t len, void *cookie);
/* Send the pending frame, if any (the end of a burst). Return: emit()'s
 * result, or 1 when nothing was pending. */
int tap_gso_flush(struct tap_gso *g);
/* Drop the pending frame unsent (the NIC is going away). */
void tap_gso_discard(struct tap_gso *g);
/**
 * tap_tcp_csum_partial() - leave a TCP frame's checksum to the kernel
 * @iov, @iovcnt, @len: the frame; its checksum field is written in place
 * @off: set to NEEDS_CSUM from the TCP header on
 *
 * For a frame lwIP sent without a TCP checksum that the coalescer did not
 * take (SYN, FIN, RST, a pure ACK).
 * Return: false (nothing done) if it is not an unfragmented TCP packet.
 */
bool tap_tcp_csum_partial(const struct iovec *iov, int iovcnt, size_t len, struct tap_offload *off);

#endif /* NETSTACK_TAP_GSO_H */
