/* SPDX-License-Identifier: MIT */
/*
 * memfill.h - the test pattern of `netstack run --memory` and of
 * `netstack-bench restore`: deterministic, about half zero pages, so a
 * checkpoint skips them and a restore can be checked byte for byte (or by
 * digest) against a fresh fill.
 */
#ifndef NETSTACK_TOOLS_MEMFILL_H
#define NETSTACK_TOOLS_MEMFILL_H

#include <stddef.h>

/**
 * memfill_pattern() - fill a memory region with the test pattern
 * @addr: the region (zeroed, as a fresh mapping is)
 * @size: its size; a page multiple (a last partial page stays zero)
 *
 * Runs of 1..64 pages, alternately data (a xorshift64 stream) and zero,
 * the same for every call: zero pages are left as they are, never written.
 */
void memfill_pattern(void *addr, size_t size);

#endif /* NETSTACK_TOOLS_MEMFILL_H */
