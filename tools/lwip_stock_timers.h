/* SPDX-License-Identifier: MIT */
/*
 * lwip_stock_timers.h - lwIP's stock sorted-list timeouts under other names,
 * so netstack-bench can link them beside libnetstack, whose own lwIP copy
 * keeps the real names (and routes them to the timer wheel). The stock build
 * (core/timeouts.c, mem.c, memp.c with tools/lwip_stock/lwipopts.h)
 * includes this header first with -include, which renames every global
 * symbol those files define or use to stock_*; the benchmark includes it
 * for the declarations below. lwIP's own prototypes are then checked
 * against these by the compiler, so the two cannot drift apart. After a
 * change, `nm` on the stock objects must show no global symbol that is not
 * stock_* or the C library's.
 */
#ifndef BENCH_LWIP_STOCK_TIMERS_H
#define BENCH_LWIP_STOCK_TIMERS_H

#include <stdint.h>

/* core/timeouts.c */
#define lwip_cyclic_timers stock_lwip_cyclic_timers
#define lwip_num_cyclic_timers stock_lwip_num_cyclic_timers
#define sys_check_timeouts stock_sys_check_timeouts
#define sys_restart_timeouts stock_sys_restart_timeouts
#define sys_timeout stock_sys_timeout
#define sys_timeouts_init stock_sys_timeouts_init
#define sys_timeouts_sleeptime stock_sys_timeouts_sleeptime
#define sys_untimeout stock_sys_untimeout
/* used by timeouts.c, defined by the benchmark: its fake clock */
#define sys_now stock_sys_now

/* core/mem.c (MEM_LIBC_MALLOC: thin wrappers around malloc) */
#define mem_calloc stock_mem_calloc
#define mem_free stock_mem_free
#define mem_init stock_mem_init
#define mem_malloc stock_mem_malloc
#define mem_trim stock_mem_trim

/* core/memp.c (MEMP_MEM_MALLOC: pools allocate from mem_malloc); the
 * memp_<POOL> descriptors are named by token pasting in memp_std.h, and
 * the pasted names are macro-expanded again, so these catch them. */
#define memp_free stock_memp_free
#define memp_free_pool stock_memp_free_pool
#define memp_init stock_memp_init
#define memp_init_pool stock_memp_init_pool
#define memp_malloc stock_memp_malloc
#define memp_malloc_pool stock_memp_malloc_pool
#define memp_pools stock_memp_pools
#define memp_PBUF stock_memp_PBUF
#define memp_PBUF_POOL stock_memp_PBUF_POOL
#define memp_SYS_TIMEOUT stock_memp_SYS_TIMEOUT

/* The part of the stock API the benchmark calls, in plain C types (u32_t
 * is uint32_t; the handler matches lwIP's sys_timeout_handler). */
typedef void (*stock_timeout_handler)(void *arg);

void stock_mem_init(void);
void stock_memp_init(void);
void stock_sys_timeouts_init(void);
void stock_sys_timeout(uint32_t msecs, stock_timeout_handler handler, void *arg);
void stock_sys_untimeout(stock_timeout_handler handler, void *arg);
void stock_sys_check_timeouts(void);
uint32_t stock_sys_timeouts_sleeptime(void);
/* lwIP's sys_now(), which the benchmark defines: its fake clock. */
uint32_t stock_sys_now(void);

#endif /* BENCH_LWIP_STOCK_TIMERS_H */
