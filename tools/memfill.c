/* SPDX-License-Identifier: MIT */
/*
 * memfill.c - the deterministic memory pattern of memfill.h.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "memfill.h"

#define PAGE 4096u

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

void memfill_pattern(void *addr, size_t size)
{
	uint64_t x = 0x9e3779b97f4a7c15ull, run = 0, v;
	uint8_t *p = addr;
	bool data = false;

	for (size_t off = 0; off + PAGE <= size; off += PAGE) {
		if (run == 0) {
			data = !data;
			run = 1 + xorshift(&x) % 64;
		}
		run--;
		if (!data)
			continue;
		for (size_t i = 0; i < PAGE; i += 8) {
			v = xorshift(&x);
			memcpy(p + off + i, &v, 8);
		}
	}
}
