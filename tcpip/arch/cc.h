/* SPDX-License-Identifier: MIT */
/*
 * arch/cc.h - lwIP's compiler and platform glue for netstack: types come from
 * the C library, diagnostics go to the stack log, randomness to
 * tcpip_random(). lwIP includes this through lwip/arch.h.
 */
#ifndef NETSTACK_ARCH_CC_H
#define NETSTACK_ARCH_CC_H

#include <endian.h>
#include <stdint.h>

#define BYTE_ORDER __BYTE_ORDER

/* lwIP's own errno values would clash with <errno.h>. */
#define LWIP_ERRNO_STDINCLUDE 1
#define LWIP_ERRNO_INCLUDE <errno.h>

/* Keep struct timeval from the C library. */
#define LWIP_TIMEVAL_PRIVATE 0
#include <sys/time.h>

uint32_t tcpip_random(void);
#define LWIP_RAND() tcpip_random()

void tcpip_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* lwIP's assertions guard its own invariants, never input from a peer or a
 * caller (those are validated at the API boundary), so a failed one is a bug
 * in netstack or lwIP: report and stop. */
void tcpip_assert_fail(const char *msg, const char *file, int line) __attribute__((noreturn));

#define LWIP_PLATFORM_DIAG(x) do { tcpip_diag x; } while (0)
#define LWIP_PLATFORM_ASSERT(x) tcpip_assert_fail((x), __FILE__, __LINE__)

#endif /* NETSTACK_ARCH_CC_H */
