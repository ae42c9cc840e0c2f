/* SPDX-License-Identifier: MIT */
/*
 * repair.h - making a mutated or hand-broken Ethernet frame consistent
 * again where a test wants it to be: finding its upper layer (TCP, UDP,
 * ICMP, ICMPv6 after IPv4 or IPv6 with hop-by-hop, routing and destination
 * options) and recomputing the IPv4 header checksum and the upper layer's,
 * so that a frame is wrong only in the field a test or a fuzzer chose.
 * Used by fuzz_frame.c (mutations get past the checksums) and by
 * tests/unit/test_malformed.c (each case breaks exactly one field).
 * Fields are read and written at any alignment, in network order.
 */
#ifndef NETSTACK_TESTS_FUZZ_REPAIR_H
#define NETSTACK_TESTS_FUZZ_REPAIR_H

#include <stddef.h>
#include <stdint.h>

/* Where a frame's upper layer is. */
struct repair_l4 {
	uint8_t proto;
	uint8_t *hdr;		/* NULL: no upper layer to repair */
	size_t len;		/* bytes from hdr to the end of the IP payload */
	uint8_t pseudo[40];	/* the pseudo-header, ready to sum */
	size_t pseudo_len;
};

uint16_t repair_get16(const uint8_t *p);
uint32_t repair_get32(const uint8_t *p);
void repair_put16(uint8_t *p, uint16_t v);
void repair_put32(uint8_t *p, uint32_t v);

/**
 * repair_find_l4() - locate the upper layer of an IPv4 or IPv6 frame
 * @f: the frame, from its Ethernet header; @l->hdr points into it
 * @len: its length
 * @l: filled in; l->hdr is NULL for a fragment, another ethertype, or
 *     headers that do not fit. The IP payload ends where the IP length
 *     field says or at the end of the frame, whichever comes first.
 */
void repair_find_l4(uint8_t *f, size_t len, struct repair_l4 *l);

/**
 * repair_csums() - recompute the checksums of a frame
 * @f: the frame
 * @len: its length
 * @l: what repair_find_l4() found in it
 *
 * The IPv4 header checksum (when the header fits), then the TCP, UDP,
 * ICMP or ICMPv6 checksum over what @l covers (with the pseudo-header
 * where the protocol has one; a UDP sum of 0 is sent as 0xffff).
 */
void repair_csums(uint8_t *f, size_t len, const struct repair_l4 *l);

#endif /* NETSTACK_TESTS_FUZZ_REPAIR_H */
