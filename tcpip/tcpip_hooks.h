/* SPDX-License-Identifier: MIT */
/*
 * tcpip_hooks.h - the functions behind the LWIP_HOOK_* macros of
 * lwipopts.h. lwIP includes this file (LWIP_HOOK_FILENAME) in the sources
 * that use hooks, after its own headers, so lwIP's types are in scope.
 */
#ifndef NETSTACK_TCPIP_HOOKS_H
#define NETSTACK_TCPIP_HOOKS_H

#include "lwip/ip_addr.h"
#include "lwip/netif.h"

struct netif *tcpip_hook_ip4_route(const ip4_addr_t *src, const ip4_addr_t *dest);
const ip4_addr_t *tcpip_hook_ip4_gateway(struct netif *netif, const ip4_addr_t *dest);
struct netif *tcpip_hook_ip6_route(const ip6_addr_t *src, const ip6_addr_t *dest);
const ip6_addr_t *tcpip_hook_ip6_gateway(struct netif *netif, const ip6_addr_t *dest);
u32_t tcpip_hook_tcp_isn(const ip_addr_t *local_ip, u16_t local_port,
			 const ip_addr_t *remote_ip, u16_t remote_port);
struct tcp_pcb;
struct tcp_hdr;
struct pbuf;
err_t tcpip_hook_tcp_inpkt(struct tcp_pcb *pcb, const struct tcp_hdr *hdr, const struct pbuf *p);
/* filter.c: nonzero when the packet was eaten (dropped, or answered with a
 * SYN cookie); the hook then owns and has freed it. */
int tcpip_hook_ip4_input(struct pbuf *p, struct netif *inp);
int tcpip_hook_ip6_input(struct pbuf *p, struct netif *inp);

#endif /* NETSTACK_TCPIP_HOOKS_H */
