/* SPDX-License-Identifier: MIT */
/*
 * tap_csum.h - the Internet checksum's ones' complement sum, eight bytes per
 * step, header-only and dependent on nothing but the C library: tap_io.h
 * completes the kernel's partial checksums with it, and tcpip/lwipopts.h
 * makes it lwIP's checksum routine (LWIP_CHKSUM), so the one fast sum
 * serves both. Words are loaded in host order, as lwIP's own routine
 * loads them; callers fold or swap around it as they would around lwIP's.
 * Also the big-endian loads and stores of header fields that the TAP data
 * path (tap_gso.c) and the input filter and SYN cookies (tcpip/) share.
 */
#ifndef NETSTACK_TAP_CSUM_H
#define NETSTACK_TAP_CSUM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/**
 * tap_csum_add() - add the 16-bit ones' complement sum of bytes to a sum
 * @sum: the sum so far (0 to start)
 * @p: the bytes; any alignment
 * @len: how many; an odd last byte counts as the first of a word
 *
 * Return: the folded 16-bit sum, in host order.
 */
static inline uint32_t tap_csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	uint64_t acc = sum;

	for (; len >= 8; p += 8, len -= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		/* Four 16-bit words at once, in two 32-bit lanes; a lane
		 * overflows only after 2^31 steps, and the fold below adds
		 * the carries back. */
		acc += (w & 0xffff0000ffffull) + ((w >> 16) & 0xffff0000ffffull);
	}
	for (; len >= 2; p += 2, len -= 2) {
		uint16_t w;

		memcpy(&w, p, 2);
		acc += w;
	}
	if (len) {
		uint16_t w = 0;

		memcpy(&w, p, 1);
		acc += w;
	}
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint32_t)acc;
}

/* A header field in network order, at any alignment. */
static inline uint16_t tap_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t tap_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void tap_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void tap_put32(uint8_t *p, uint32_t v)
{
	tap_put16(p, (uint16_t)(v >> 16));
	tap_put16(p + 2, (uint16_t)v);
}

#endif /* NETSTACK_TAP_CSUM_H */
