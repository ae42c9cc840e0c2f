/* SPDX-License-Identifier: MIT */
/*
 * route.c - the route table that lwIP's routing hooks consult. lwIP finds
 * connected subnets by itself (a NIC's IPv4 netmask, IPv6 /64s); this table
 * holds everything else: default routes and routes through gateways, or
 * on-link prefixes beyond a NIC's own. Lookup is longest prefix first, then
 * lowest metric, over NICs that are up. Kept sorted so lookup takes the
 * first match; the table is small (routes are configuration, not traffic).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/ip6_addr.h"
#include "tcpip.h"
#include "tcpip_hooks.h"

static struct tcpip_route *routes;
static size_t nroutes, cap;

void tcpip_addr_mask(ip_addr_t *a, unsigned len)
{
	uint8_t *b;
	unsigned i, bytes;

	if (IP_IS_V6(a)) {
		b = (uint8_t *)ip_2_ip6(a)->addr;
		bytes = 16;
	} else {
		b = (uint8_t *)&ip_2_ip4(a)->addr;
		bytes = 4;
	}
	for (i = 0; i < bytes; i++) {
		if (len >= 8 * (i + 1))
			continue;
		if (len <= 8 * i)
			b[i] = 0;
		else
			b[i] &= (uint8_t)(0xff00u >> (len - 8 * i));
	}
#if LWIP_IPV6_SCOPES
	if (IP_IS_V6(a))
		ip6_addr_clear_zone(ip_2_ip6(a));
#endif
}

bool tcpip_addr_in_prefix(const ip_addr_t *a, const ip_addr_t *net, unsigned len)
{
	ip_addr_t m;

	if (IP_IS_V6(a) != IP_IS_V6(net))
		return false;
	ip_addr_copy(m, *a);
	tcpip_addr_mask(&m, len);
	if (IP_IS_V6(a))
		return memcmp(ip_2_ip6(&m)->addr, ip_2_ip6(net)->addr, 16) == 0;
	return ip_2_ip4(&m)->addr == ip_2_ip4(net)->addr;
}

static bool same_addr(const ip_addr_t *a, const ip_addr_t *b)
{
	if (IP_IS_V6(a) != IP_IS_V6(b))
		return false;
	if (IP_IS_V6(a))
		return memcmp(ip_2_ip6(a)->addr, ip_2_ip6(b)->addr, 16) == 0;
	return ip_2_ip4(a)->addr == ip_2_ip4(b)->addr;
}

static bool same_route(const struct tcpip_route *a, const struct tcpip_route *b, bool any_netif)
{
	return a->len == b->len && same_addr(&a->dst, &b->dst) &&
	       a->has_gw == b->has_gw && (!a->has_gw || same_addr(&a->gw, &b->gw)) &&
	       (any_netif || a->netif == b->netif);
}

/* Sort order: longer prefix first, then lower metric, then older first. */
static bool before(const struct tcpip_route *a, const struct tcpip_route *b)
{
	if (a->len != b->len)
		return a->len > b->len;
	return a->metric < b->metric;
}

int tcpip_route_add(const struct tcpip_route *r)
{
	struct tcpip_route key = *r;
	size_t i;

	tcpip_addr_mask(&key.dst, key.len);
	for (i = 0; i < nroutes; i++)
		if (same_route(&routes[i], &key, false))
			return -EEXIST;
	if (nroutes == cap) {
		size_t ncap = cap ? 2 * cap : 8;
		struct tcpip_route *n = realloc(routes, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		routes = n;
		cap = ncap;
	}
	for (i = nroutes; i > 0 && before(&key, &routes[i - 1]); i--)
		routes[i] = routes[i - 1];
	routes[i] = key;
	nroutes++;
	return 0;
}

static void remove_at(size_t i)
{
	memmove(&routes[i], &routes[i + 1], (nroutes - i - 1) * sizeof(*routes));
	nroutes--;
}

int tcpip_route_del(const struct tcpip_route *r, bool any_netif)
{
	struct tcpip_route key = *r;
	size_t i;

	tcpip_addr_mask(&key.dst, key.len);
	for (i = 0; i < nroutes; i++) {
		if (same_route(&routes[i], &key, any_netif)) {
			remove_at(i);
			return 0;
		}
	}
	return -ESRCH;
}

void tcpip_route_flush_netif(struct netif *netif)
{
	size_t i = 0;

	while (i < nroutes) {
		if (routes[i].netif == netif)
			remove_at(i);
		else
			i++;
	}
}

size_t tcpip_route_list(struct tcpip_route *out, size_t n)
{
	if (out && n && nroutes)
		memcpy(out, routes, (n < nroutes ? n : nroutes) * sizeof(*routes));
	return nroutes;
}

const struct tcpip_route *tcpip_route_lookup(const ip_addr_t *dest)
{
	size_t i;

	for (i = 0; i < nroutes; i++) {
		const struct tcpip_route *r = &routes[i];

		if (netif_is_up(r->netif) && netif_is_link_up(r->netif) &&
		    tcpip_addr_in_prefix(dest, &r->dst, r->len))
			return r;
	}
	return NULL;
}

struct netif *tcpip_hook_ip4_route(const ip4_addr_t *src, const ip4_addr_t *dest)
{
	ip_addr_t d;
	const struct tcpip_route *r;

	(void)src;
	ip_addr_copy_from_ip4(d, *dest);
	r = tcpip_route_lookup(&d);
	return r ? r->netif : NULL;
}

const ip4_addr_t *tcpip_hook_ip4_gateway(struct netif *netif, const ip4_addr_t *dest)
{
	ip_addr_t d;
	const struct tcpip_route *r;

	ip_addr_copy_from_ip4(d, *dest);
	r = tcpip_route_lookup(&d);
	if (!r || r->netif != netif)
		return NULL;
	return r->has_gw ? ip_2_ip4(&r->gw) : dest;
}

/* lwIP asks the IPv6 hook before its own on-link check: leave destinations
 * inside a NIC's /64s to lwIP. */
static bool ip6_on_link(const ip6_addr_t *dest)
{
	struct netif *netif;
	int i;

	NETIF_FOREACH(netif) {
		if (!netif_is_up(netif) || !netif_is_link_up(netif))
			continue;
		for (i = 0; i < LWIP_IPV6_NUM_ADDRESSES; i++)
			if (ip6_addr_isvalid(netif_ip6_addr_state(netif, i)) &&
			    ip6_addr_netcmp_zoneless(dest, netif_ip6_addr(netif, i)))
				return true;
	}
	return false;
}

struct netif *tcpip_hook_ip6_route(const ip6_addr_t *src, const ip6_addr_t *dest)
{
	ip_addr_t d;
	const struct tcpip_route *r;

	(void)src;
	if (ip6_on_link(dest))
		return NULL;
	ip_addr_copy_from_ip6(d, *dest);
	r = tcpip_route_lookup(&d);
	return r ? r->netif : NULL;
}

const ip6_addr_t *tcpip_hook_ip6_gateway(struct netif *netif, const ip6_addr_t *dest)
{
	ip_addr_t d;
	const struct tcpip_route *r;

	ip_addr_copy_from_ip6(d, *dest);
	r = tcpip_route_lookup(&d);
	if (!r || r->netif != netif)
		return NULL;
	return r->has_gw ? ip_2_ip6(&r->gw) : dest;
}
