/* SPDX-License-Identifier: MIT */
/*
 * lwipopts.h - how netstack configures lwIP 2.1.3: NO_SYS with one big stack
 * lock, IPv4 and IPv6, TCP with window scaling and 1 MiB windows, dynamic
 * memory, and the hooks through which netstack's route table and core-lock
 * check reach into lwIP. Every value that is not lwIP's default says why.
 */
#ifndef NETSTACK_LWIPOPTS_H
#define NETSTACK_LWIPOPTS_H

/* One dispatcher thread plus API callers under the stack lock: no lwIP
 * threads, no netconn/socket layer (netstack has its own). */
#define NO_SYS 1
#define SYS_LIGHTWEIGHT_PROT 0
#define LWIP_NETCONN 0
#define LWIP_SOCKET 0
#define LWIP_TIMERS 1
/* Every lwIP timer runs on netstack's timer wheel (tcpip/timers.c). */
#define LWIP_TIMERS_CUSTOM 1

/* Memory: the C library's malloc for the heap and for every pool, so
 * thousands of sockets fit and nothing is sized at build time. */
#define MEM_LIBC_MALLOC 1
#define MEMP_MEM_MALLOC 1
/* ...through an allocator that counts every byte against
 * ns_stack_config.max_memory (tcpip/port.c): above it lwIP sees NULL, as
 * on a full heap, and refuses the work instead of the process growing. */
#define mem_clib_malloc tcpip_mem_malloc
#define mem_clib_calloc tcpip_mem_calloc
#define mem_clib_free tcpip_mem_free
#include <stddef.h>
void *tcpip_mem_malloc(size_t size);
void *tcpip_mem_calloc(size_t count, size_t size);
void tcpip_mem_free(void *mem);
#define MEM_ALIGNMENT 8
#define MEMP_NUM_TCP_PCB 65535		/* bounds only; real limit: ns_stack_config.max_sockets */
#define MEMP_NUM_TCP_PCB_LISTEN 65535
#define MEMP_NUM_UDP_PCB 65535
#define MEMP_NUM_TCP_SEG 65535
#define MEMP_NUM_REASSDATA 256
#define MEMP_NUM_FRAG_PBUF 256
#define MEMP_NUM_ARP_QUEUE 256
#define MEMP_NUM_ND6_QUEUE 256
/* Received frames are copied into one PBUF_RAM pbuf each (contiguous at
 * any MTU); the pool serves lwIP's own small allocations. */
#define PBUF_POOL_SIZE 4096
#define PBUF_POOL_BUFSIZE 1536

/* <netinet/in.h> provides htons() and friends; lwIP's copies would clash. */
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS 1

/* Link layer. */
#define LWIP_ARP 1
#define LWIP_ETHERNET 1
#define ARP_TABLE_SIZE 512
#define ARP_QUEUEING 1
/* Packets held per unresolved neighbour: lwIP's default of 3 lost all but
 * the last 3 (and any datagram of more than 3 fragments). */
#define ARP_QUEUE_LEN 64
#define ETHARP_SUPPORT_STATIC_ENTRIES 1
#define LWIP_SINGLE_NETIF 0
#define LWIP_NETIF_STATUS_CALLBACK 1
#define LWIP_NETIF_LINK_CALLBACK 1
#define LWIP_NETIF_HOSTNAME 0
#define LWIP_NUM_NETIF_CLIENT_DATA 1
#define LWIP_CHECKSUM_CTRL_PER_NETIF 1

/* IPv4. */
#define LWIP_IPV4 1
#define IP_FORWARD 0
#define IP_REASSEMBLY 1
#define IP_FRAG 1
#define IP_REASS_MAX_PBUFS 512
#define LWIP_ICMP 1
#define LWIP_RAW 0
#define LWIP_DHCP 0
#define LWIP_AUTOIP 0
#define LWIP_IGMP 0
#define LWIP_DNS 0

/* IPv6: static addresses used at once (no DAD: the sandbox owns its
 * network), neighbour discovery, MLD so the solicited-node groups are
 * joined, fragments. */
#define LWIP_IPV6 1
#define LWIP_IPV6_NUM_ADDRESSES 4
#define LWIP_IPV6_AUTOCONFIG 0
#define LWIP_IPV6_DUP_DETECT_ATTEMPTS 0
#define LWIP_IPV6_SEND_ROUTER_SOLICIT 0
#define LWIP_IPV6_MLD 1
#define LWIP_IPV6_FRAG 1
#define LWIP_IPV6_REASS 1
/* Reassembly keeps a pointer in the fragment header's place: on 64-bit it
 * does not fit, so lwIP must copy the header aside. */
#define IPV6_FRAG_COPYHEADER 1
#define LWIP_IPV6_DHCP6 0
#define LWIP_ICMP6 1
/* lwIP walks these caches with s8_t indexes: more than 127 entries loops
 * forever in nd6_tmr(). */
#define LWIP_ND6_NUM_NEIGHBORS 64
#define LWIP_ND6_NUM_DESTINATIONS 64
#define LWIP_ND6_QUEUEING 1
#define LWIP_IPV6_ADDRESS_LIFETIMES 1
#define LWIP_ND6_ALLOW_RA_UPDATES 0

/* UDP. */
#define LWIP_UDP 1
#define LWIP_UDPLITE 0

/* TCP: 1 MiB receive window and send buffer per connection. lwIP's
 * tcp_write/tcp_recved take u16 lengths: the endpoints loop. The window
 * scale must make TCP_WND >> TCP_RCV_SCALE fit 16 bits: 1 MiB >> 5 = 32 KiB;
 * 6 leaves room to raise the window to 4 MiB without renegotiating. */
#define LWIP_TCP 1
#define LWIP_WND_SCALE 1
#define TCP_RCV_SCALE 6
/* The largest MSS lwIP uses; each connection takes min(this, the NIC's MTU
 * - 40, the peer's MSS), so 1500-MTU links still get 1460. With 1460 here
 * (lwIP's usual value) a 65520-MTU TAP carried 1460-byte segments both
 * ways and ran no faster than MTU 1500 (4.0 vs 4.1 Gbit/s into the stack,
 * netstack-bench stream). The value is the largest whose whole frame fits
 * lwIP's u16 pbuf lengths with IPv6, TCP timestamps and Ethernet headers:
 * 65535 - 14 - 40 - 20 - 12 = 65449, rounded down to 8. */
#define TCP_MSS 65440
/* The MSS the send queue is sized for: Ethernet's, the smallest common one. */
#define TCP_MSS_SMALL 1460
/* 1 MiB each way: 2 MiB measured no faster on a TAP (stream, MTU 65520,
 * 3 runs: into the stack 0.37x vs 0.46x kernel, out 0.78x vs 0.75x, both
 * within the run-to-run spread), nor again once received frames were lent
 * to lwIP without a copy (3 runs interleaved, into the stack at 65520:
 * 0.53x vs 0.71x with 1 MiB; at 1500 0.71x vs 0.83x), and 4 MiB would
 * need a larger window scale. A busy connection's buffers stay at 2 MiB. */
#define TCP_WND (1024 * 1024)
#define TCP_SND_BUF (1024 * 1024)
/* Segments queued per connection: the send buffer in pieces of the small
 * MSS (a 1500-MTU connection must fill it too), and twice that for small
 * writes with TCP_NODELAY. Must stay < 0xffff. */
#define TCP_SND_QUEUELEN (4 * TCP_SND_BUF / TCP_MSS_SMALL)
/* Only lwIP's netconn layer (not built) reads these; wakeups use netstack's
 * own marks. */
#define TCP_SNDLOWAT 32768
#define TCP_SNDQUEUELOWAT (TCP_SND_QUEUELEN / 2)
#define TCP_OVERSIZE TCP_MSS
/* lwIP's sanity checks demand TCP_SNDLOWAT < 0xffff - 4 * TCP_MSS, which no
 * MSS above 16 KiB allows, although nothing built reads TCP_SNDLOWAT. They
 * are off; the ones that matter are kept here. */
#define LWIP_DISABLE_TCP_SANITY_CHECKS 1
#if TCP_SND_BUF < 2 * TCP_MSS || TCP_WND < TCP_MSS || TCP_SNDLOWAT >= TCP_SND_BUF
#error "TCP_SND_BUF must hold two segments, TCP_WND one, and TCP_SNDLOWAT < TCP_SND_BUF"
#endif
#if TCP_SND_QUEUELEN > 0xffff || TCP_SND_QUEUELEN < 2 * (TCP_SND_BUF / TCP_MSS_SMALL) || \
	TCP_SNDQUEUELOWAT >= TCP_SND_QUEUELEN
#error "TCP_SND_QUEUELEN must fit 16 bits and hold the send buffer in small segments"
#endif
#define TCP_QUEUE_OOSEQ 1
#define TCP_OOSEQ_MAX_BYTES TCP_WND
#define TCP_OOSEQ_MAX_PBUFS 0
#define LWIP_TCP_SACK_OUT 1
#define LWIP_TCP_MAX_SACK_NUM 4
#define LWIP_TCP_TIMESTAMPS 1
#define LWIP_TCP_KEEPALIVE 1
#define TCP_LISTEN_BACKLOG 1
#define TCP_DEFAULT_LISTEN_BACKLOG 128
#define TCP_CALCULATE_EFF_SEND_MSS 1
#define SO_REUSE 1
#define SO_REUSE_RXTOALL 0
#define LWIP_CALLBACK_API 1
#define LWIP_EVENT_API 0
#define LWIP_RANDOMIZE_INITIAL_LOCAL_PORTS 1
#define TCP_SYNMAXRTX 6
#define TCP_MAXRTX 12

/* Counters: netstack reports drops from lwIP's own statistics. */
#define LWIP_STATS 1
#define LWIP_STATS_DISPLAY 0
#define LINK_STATS 1
#define ETHARP_STATS 1
#define IP_STATS 1
#define IPFRAG_STATS 1
#define ICMP_STATS 1
#define UDP_STATS 1
#define TCP_STATS 1
#define MEM_STATS 0
#define MEMP_STATS 0
#define SYS_STATS 0
#define IP6_STATS 1
#define ICMP6_STATS 1
#define IP6_FRAG_STATS 1
#define MLD6_STATS 1
#define ND6_STATS 1

/* Checksums are generated and checked in software, per NIC and per frame
 * (LWIP_CHECKSUM_CTRL_PER_NETIF): a TAP leaves outgoing TCP sums to the
 * kernel and vouches for incoming ones (netstack/nic.c). Not while data is
 * copied in: that pass would be wasted on a TAP, and elsewhere the sum at
 * output costs the same. */
#define LWIP_CHECKSUM_ON_COPY 0

/* lwIP's checksum routine: tap/'s sum, eight bytes per step instead of
 * lwIP's two. perf (cpu-clock) of netstack-bench stream into the stack at
 * MTU 1500 put 27.5% of the stack process in lwip_standard_chksum. The
 * header is self-contained (C library only), so lwIP's own sources can
 * include it by path. */
#include "../tap/tap_csum.h"
#define LWIP_CHKSUM(data, len) ((uint16_t)tap_csum_add(0, (const uint8_t *)(data), (size_t)(len)))

/* Hooks into netstack: the route table (gateway routes; connected subnets
 * are lwIP's own), the core-lock check, and RST accounting. */
#define LWIP_HOOK_FILENAME "tcpip_hooks.h"
#define LWIP_HOOK_IP4_ROUTE_SRC(src, dest) tcpip_hook_ip4_route((src), (dest))
#define LWIP_HOOK_ETHARP_GET_GW(netif, dest) tcpip_hook_ip4_gateway((netif), (dest))
#define LWIP_HOOK_IP6_ROUTE(src, dest) tcpip_hook_ip6_route((src), (dest))
#define LWIP_HOOK_ND6_GET_GW(netif, dest) tcpip_hook_ip6_gateway((netif), (dest))
#define LWIP_HOOK_TCP_ISN(local_ip, local_port, remote_ip, remote_port) \
	tcpip_hook_tcp_isn((local_ip), (local_port), (remote_ip), (remote_port))
/* Segments lwIP 2.1.3 cannot take: see tcpip_hook_tcp_inpkt(). */
#define LWIP_HOOK_TCP_INPACKET_PCB(pcb, hdr, optlen, opt1len, opt2, p) \
	tcpip_hook_tcp_inpkt((pcb), (hdr), (p))
/* Every IP packet first: drops what Linux drops and lwIP takes, and SYN
 * cookies (tcpip/filter.c, tcpip/syncookie.c). */
#define LWIP_HOOK_IP4_INPUT(p, inp) tcpip_hook_ip4_input((p), (inp))
#define LWIP_HOOK_IP6_INPUT(p, inp) tcpip_hook_ip6_input((p), (inp))

#ifndef NDEBUG
void tcpip_assert_core_locked(void);
#define LWIP_ASSERT_CORE_LOCKED() tcpip_assert_core_locked()
#endif

/* Debug output off; LWIP_DEBUG stays undefined in every build. */
#define LWIP_DBG_TYPES_ON 0

#endif /* NETSTACK_LWIPOPTS_H */
