/* SPDX-License-Identifier: MIT */
/*
 * tcpip.h - the lwIP port's interface to the rest of netstack: the one stack
 * lock (lwIP is global, so is its lock), lwIP's initialisation, the timer
 * seam, the route table that lwIP's routing hooks consult, errno mapping,
 * sockaddr conversion, and the transport endpoints (endpoint.h).
 *
 * Who may call what: everything here except tcpip_lock()/tcpip_random()
 * requires the stack lock. lwIP calls back (endpoint callbacks, hooks) only
 * from inside lwIP calls, so callbacks run with the lock held too.
 */
#ifndef NETSTACK_TCPIP_H
#define NETSTACK_TCPIP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lwip/err.h"
#include "lwip/ip_addr.h"
#include "lwip/netif.h"

/* --- the stack lock --- */

void tcpip_lock(void);
void tcpip_unlock(void);
bool tcpip_locked_by_me(void);
/**
 * tcpip_cond_wait() - wait on @cond, releasing the stack lock meanwhile
 * @cond: a condition variable created with tcpip_cond_init()
 * @deadline: absolute CLOCK_MONOTONIC time, or NULL to wait forever
 *
 * Return: 0 when woken (maybe spuriously), -ETIMEDOUT at the deadline.
 */
int tcpip_cond_wait(pthread_cond_t *cond, const struct timespec *deadline);
int tcpip_cond_init(pthread_cond_t *cond);

/* --- lwIP --- */

/* lwip_init() once per process; later calls do nothing. */
void tcpip_init(void);
/* Map an lwIP err_t to a negative errno (0 for ERR_OK). */
int tcpip_err_to_errno(err_t err);

/* --- the memory limit: every lwIP allocation is counted (port.c) --- */

struct tcpip_mem_usage {
	size_t used;		/* bytes lwIP holds now, allocator headers included */
	size_t peak;		/* the most it has held */
	size_t limit;		/* 0: none */
	uint64_t refused;	/* allocations refused: over the limit or malloc() failed */
	uint64_t pruned;	/* bytes tcpip_mem_relieve() freed */
};

/* Refuse allocations that would take lwIP above @bytes (0: no limit).
 * Lowering it below what is in use frees nothing; new allocations fail. */
void tcpip_mem_set_limit(size_t bytes);
void tcpip_mem_usage(struct tcpip_mem_usage *u);
/* While on (this thread), allocations are for a received frame and may use
 * the part of the limit kept for them. */
void tcpip_mem_rx(bool on);
/* At the limit: drop every connection's out-of-order queue, the one thing
 * lwIP holds that a peer can pile up and that may be dropped at will (it
 * was never acknowledged). Return: the bytes freed. */
size_t tcpip_mem_relieve(void);
/* The same if an allocation was refused since the last relief: called
 * after input, where lwIP's queues may be changed (unlike inside the
 * allocator, which may be called from the middle of them). */
size_t tcpip_mem_relieve_if_refused(void);

/* --- time: the stack clock and the timer wheel (timers.c) --- */

struct tw_clock;
/* The stack clock: CLOCK_MONOTONIC + offset, ns. lwIP's sys_now() reads it. */
struct tw_clock *tcpip_clock(void);
uint64_t tcpip_now_ns(void);
/**
 * tcpip_clock_use_source() - read the monotonic time from @mono instead
 * @mono: returns nanoseconds; a test's fake clock
 * @arg: passed to @mono
 *
 * Only before the first tcpip_init() (that is, before the first stack).
 */
void tcpip_clock_use_source(uint64_t (*mono)(void *arg), void *arg);

/**
 * tcpip_clock_continue() - make the stack clock read @now_ns now and go on
 * from there (a restore continues a checkpoint's time)
 * @now_ns: the saved stack time
 *
 * Only before the first tcpip_init(): lwIP's timers are armed on the clock.
 * Return: 0, -EBUSY if lwIP was already initialised in this process.
 */
int tcpip_clock_continue(uint64_t now_ns);

/* After input: start the TIME-WAIT clock of pcbs that just entered it
 * (lwIP 2.1.3 would count from their last activity before close). */
void tcpip_time_wait_fixup(void);

/* Run every timer that is due. Return: callbacks run. */
size_t tcpip_timers_run(void);
/* Stack-clock ns at which to wake for the next due timer: its deadline
 * coalesced (tw_wakeup_time: up to TW_WAKEUP_SLACK_NS later, never
 * earlier than the wheel's next event); UINT64_MAX when none is pending. */
uint64_t tcpip_timers_next_ns(void);
/* Milliseconds until then, rounded up; -1 when none is pending. */
int tcpip_timers_next_ms(void);

/* --- routes (gateway routes; connected subnets are lwIP's own) --- */

struct tcpip_route {
	ip_addr_t dst;		/* network address, host bits zero */
	uint8_t len;		/* prefix length */
	ip_addr_t gw;		/* IPADDR_TYPE_ANY-typed zero = on-link */
	bool has_gw;
	struct netif *netif;
	unsigned metric;
};

int tcpip_route_add(const struct tcpip_route *r);
int tcpip_route_del(const struct tcpip_route *r, bool any_netif);
/* Remove every route through @netif (the NIC is going away). */
void tcpip_route_flush_netif(struct netif *netif);
/* Copy up to @cap routes, longest prefix first. Return: the total count. */
size_t tcpip_route_list(struct tcpip_route *out, size_t cap);
/* The best route for @dest (NULL if none). */
const struct tcpip_route *tcpip_route_lookup(const ip_addr_t *dest);

/* Zero the host bits of @a beyond @len. */
void tcpip_addr_mask(ip_addr_t *a, unsigned len);
/* Whether @a lies within @net/@len (same family). */
bool tcpip_addr_in_prefix(const ip_addr_t *a, const ip_addr_t *net, unsigned len);

#endif /* NETSTACK_TCPIP_H */
