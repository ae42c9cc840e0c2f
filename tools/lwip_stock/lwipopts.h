/* SPDX-License-Identifier: MIT */
/*
 * lwipopts.h - the options with which netstack-bench builds lwIP's stock
 * timeouts (core/timeouts.c with mem.c and memp.c) as the baseline for its
 * timer benchmark: NO_SYS, lwIP's own sorted-list timers (not netstack's
 * wheel), the C library's malloc behind every pool as in libnetstack, and
 * every protocol off so lwip_cyclic_timers is empty and only the timers the
 * benchmark arms are on the list. Found by the stock build alone, through
 * its include path, ahead of Debian's port/include (which supplies
 * arch/cc.h and has a lwipopts.h of its own); tools/lwip_stock_timers.h
 * renames the symbols.
 */
#ifndef BENCH_STOCK_LWIPOPTS_H
#define BENCH_STOCK_LWIPOPTS_H

#define NO_SYS 1
#define SYS_LIGHTWEIGHT_PROT 0
#define LWIP_NETCONN 0
#define LWIP_SOCKET 0
#define LWIP_TIMERS 1
#define LWIP_TIMERS_CUSTOM 0	/* the point: lwIP's own timeouts.c */

/* As libnetstack's tcpip/lwipopts.h: malloc for the heap and the pools, so
 * sys_timeout() costs what it costs there. */
#define MEM_LIBC_MALLOC 1
#define MEMP_MEM_MALLOC 1
#define MEM_ALIGNMENT 8

/* No protocol, hence no cyclic timer (IPv4 stays on: lwIP needs one IP
 * version to configure itself). */
#define LWIP_IPV4 1
#define LWIP_IPV6 0
#define LWIP_ARP 0
#define LWIP_ETHERNET 0
#define IP_REASSEMBLY 0
#define IP_FRAG 0
#define LWIP_ICMP 0
#define LWIP_RAW 0
#define LWIP_UDP 0
#define LWIP_TCP 0
#define LWIP_DHCP 0
#define LWIP_AUTOIP 0
#define LWIP_IGMP 0
#define LWIP_DNS 0
#define LWIP_STATS 0

#endif /* BENCH_STOCK_LWIPOPTS_H */
