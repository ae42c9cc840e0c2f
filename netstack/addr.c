/* SPDX-License-Identifier: MIT */
/*
 * addr.c - addresses and routes: parsing and formatting, the public
 * address calls on a NIC's netif (one IPv4 address, a few IPv6 ones), and
 * the public route calls over tcpip/'s route table. Connected routes are
 * implied by addresses and listed, never stored.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/ip4_addr.h"
#include "lwip/ip6_addr.h"
#include "internal.h"

void ns_addr_to_ip(const struct ns_addr *a, ip_addr_t *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (a->family == AF_INET6) {
		memcpy(ip_2_ip6(ip)->addr, &a->v6, 16);
		IP_SET_TYPE_VAL(*ip, IPADDR_TYPE_V6);
	} else {
		ip_2_ip4(ip)->addr = a->v4.s_addr;
		IP_SET_TYPE_VAL(*ip, IPADDR_TYPE_V4);
	}
}

void ns_ip_to_addr(const ip_addr_t *ip, struct ns_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (IP_IS_V6(ip)) {
		a->family = AF_INET6;
		memcpy(&a->v6, ip_2_ip6(ip)->addr, 16);
	} else {
		a->family = AF_INET;
		a->v4.s_addr = ip_2_ip4(ip)->addr;
	}
}

static unsigned family_bits(int family)
{
	return family == AF_INET6 ? 128 : family == AF_INET ? 32 : 0;
}

bool ns_prefix_valid(const struct ns_prefix *p)
{
	unsigned bits = family_bits(p->addr.family);

	return bits && p->len <= bits;
}

int ns_addr_parse(const char *text, struct ns_addr *a)
{
	if (!text || !a)
		return -EINVAL;
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, text, &a->v4) == 1) {
		a->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, &a->v6) == 1) {
		a->family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

int ns_prefix_parse(const char *text, struct ns_prefix *p)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned long len;
	int rc;

	if (!text || !p || strlen(text) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, text);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	rc = ns_addr_parse(buf, &p->addr);
	if (rc)
		return rc;
	p->len = family_bits(p->addr.family);
	if (!slash)
		return 0;
	if (slash[1] < '0' || slash[1] > '9')
		return -EINVAL;	/* strtoul would skip spaces and take signs */
	len = strtoul(slash + 1, &end, 10);
	if (*end || len > p->len)
		return -EINVAL;
	p->len = (unsigned)len;
	return 0;
}

int ns_addr_format(const struct ns_addr *a, char *buf, size_t cap)
{
	char tmp[INET6_ADDRSTRLEN];
	size_t n;

	if (!a || !buf || (a->family != AF_INET && a->family != AF_INET6))
		return -EINVAL;
	if (!inet_ntop(a->family, a->family == AF_INET ? (const void *)&a->v4 : (const void *)&a->v6,
		       tmp, sizeof(tmp)))
		return -EINVAL;
	n = strlen(tmp);
	if (n >= cap)
		return -ENOSPC;
	memcpy(buf, tmp, n + 1);
	return (int)n;
}

static int ip6_index(struct netif *netif, const struct ns_addr *a)
{
	int i;

	for (i = 0; i < LWIP_IPV6_NUM_ADDRESSES; i++)
		if (ip6_addr_isvalid(netif_ip6_addr_state(netif, i)) &&
		    memcmp(netif_ip6_addr(netif, i)->addr, &a->v6, 16) == 0)
			return i;
	return -1;
}

static bool addr_is_unicast(const struct ns_addr *a)
{
	if (a->family == AF_INET) {
		uint32_t h = ntohl(a->v4.s_addr);

		return h != 0 && h != 0xffffffffu && (h >> 28) != 0xe;
	}
	return !IN6_IS_ADDR_UNSPECIFIED(&a->v6) && !IN6_IS_ADDR_MULTICAST(&a->v6) &&
	       !IN6_IS_ADDR_LOOPBACK(&a->v6);
}

int ns_addr_add(struct ns_stack *s, int id, const struct ns_prefix *p)
{
	struct ns_nic *nic;
	ip_addr_t ip;
	int rc = 0;

	if (!s || !p || !ns_prefix_valid(p) || !addr_is_unicast(&p->addr))
		return -EINVAL;
	if (p->addr.family == AF_INET && p->len == 0)
		return -EINVAL;
	ns_addr_to_ip(&p->addr, &ip);
	ns_lock(s);
	nic = ns_nic_find(s, id);
	if (!nic) {
		rc = -ENODEV;
	} else if (p->addr.family == AF_INET) {
		ip4_addr_t mask;

		if (!ip4_addr_isany_val(*netif_ip4_addr(&nic->netif))) {
			rc = -EEXIST;
		} else {
			ip4_addr_set_u32(&mask, p->len ? htonl(0xffffffffu << (32 - p->len)) : 0);
			netif_set_addr(&nic->netif, ip_2_ip4(&ip), &mask, NULL);
			nic->v4len = (uint8_t)p->len;
		}
	} else {
		s8_t idx;

		if (ip6_index(&nic->netif, &p->addr) >= 0) {
			rc = -EEXIST;
		} else if (netif_add_ip6_address(&nic->netif, ip_2_ip6(&ip), &idx) != ERR_OK) {
			rc = -ENOSPC;
		} else {
			/* No duplicate address detection: usable at once. */
			netif_ip6_addr_set_state(&nic->netif, idx, IP6_ADDR_PREFERRED);
			netif_ip6_addr_set_valid_life(&nic->netif, idx, IP6_ADDR_LIFE_STATIC);
			netif_ip6_addr_set_pref_life(&nic->netif, idx, IP6_ADDR_LIFE_STATIC);
			nic->v6len[idx] = (uint8_t)p->len;
		}
	}
	ns_unlock(s);
	return rc;
}

int ns_addr_del(struct ns_stack *s, int id, const struct ns_prefix *p)
{
	struct ns_nic *nic;
	int rc = 0, idx;

	if (!s || !p || !ns_prefix_valid(p))
		return -EINVAL;
	ns_lock(s);
	nic = ns_nic_find(s, id);
	if (!nic) {
		rc = -ENODEV;
	} else if (p->addr.family == AF_INET) {
		if (netif_ip4_addr(&nic->netif)->addr != p->addr.v4.s_addr ||
		    ip4_addr_isany_val(*netif_ip4_addr(&nic->netif)))
			rc = -EADDRNOTAVAIL;
		else
			netif_set_addr(&nic->netif, NULL, NULL, NULL);
	} else {
		idx = ip6_index(&nic->netif, &p->addr);
		if (idx < 0)
			rc = -EADDRNOTAVAIL;
		else
			netif_ip6_addr_set_state(&nic->netif, (s8_t)idx, IP6_ADDR_INVALID);
	}
	ns_unlock(s);
	return rc;
}

/* Fill @out[*n] when there is room; always count. */
static void emit(struct ns_prefix *out, size_t cap, size_t *n, const ip_addr_t *ip, unsigned len)
{
	if (*n < cap) {
		ns_ip_to_addr(ip, &out[*n].addr);
		out[*n].len = len;
	}
	(*n)++;
}

int ns_addr_list(struct ns_stack *s, int id, struct ns_prefix *out, size_t cap)
{
	struct ns_nic *nic;
	size_t n = 0;
	int i;

	if (!s || (!out && cap))
		return -EINVAL;
	ns_lock(s);
	nic = ns_nic_find(s, id);
	if (!nic) {
		ns_unlock(s);
		return -ENODEV;
	}
	if (!ip4_addr_isany_val(*netif_ip4_addr(&nic->netif)))
		emit(out, cap, &n, &nic->netif.ip_addr, nic->v4len);
	for (i = 0; i < LWIP_IPV6_NUM_ADDRESSES; i++)
		if (ip6_addr_isvalid(netif_ip6_addr_state(&nic->netif, i)))
			emit(out, cap, &n, &nic->netif.ip6_addr[i], nic->v6len[i]);
	ns_unlock(s);
	return (int)n;
}

/* --- routes --- */

/* The NIC whose subnet holds @gw (IPv6: a /64 of its, or any NIC for a
 * link-local gateway when only one NIC exists). */
static struct ns_nic *nic_for_gateway(struct ns_stack *s, const ip_addr_t *gw)
{
	size_t i;
	int k;

	for (i = 0; i < s->nnics; i++) {
		struct netif *n = &s->nics[i]->netif;

		if (IP_IS_V4(gw)) {
			if (!ip4_addr_isany_val(*netif_ip4_addr(n)) &&
			    ip4_addr_netcmp(ip_2_ip4(gw), netif_ip4_addr(n), netif_ip4_netmask(n)))
				return s->nics[i];
			continue;
		}
		if (ip6_addr_islinklocal(ip_2_ip6(gw)) && s->nnics == 1)
			return s->nics[i];
		for (k = 0; k < LWIP_IPV6_NUM_ADDRESSES; k++)
			if (ip6_addr_isvalid(netif_ip6_addr_state(n, k)) &&
			    ip6_addr_netcmp_zoneless(ip_2_ip6(gw), netif_ip6_addr(n, k)))
				return s->nics[i];
	}
	return NULL;
}

static int route_to_tcpip(struct ns_stack *s, const struct ns_route *r, struct tcpip_route *t,
			  bool need_nic)
{
	struct ns_nic *nic = NULL;

	if (!ns_prefix_valid(&r->dst))
		return -EINVAL;
	if (r->gateway.family && r->gateway.family != r->dst.addr.family)
		return -EINVAL;
	memset(t, 0, sizeof(*t));
	ns_addr_to_ip(&r->dst.addr, &t->dst);
	t->len = (uint8_t)r->dst.len;
	t->metric = r->metric;
	t->has_gw = r->gateway.family != 0;
	if (t->has_gw) {
		ns_addr_to_ip(&r->gateway, &t->gw);
		if (!addr_is_unicast(&r->gateway))
			return -EINVAL;
	}
	if (r->nic) {
		nic = ns_nic_find(s, r->nic);
		if (!nic)
			return -ENODEV;
	} else if (t->has_gw) {
		nic = nic_for_gateway(s, &t->gw);
		if (!nic && need_nic)
			return -ENETUNREACH;
	} else if (need_nic) {
		return -EINVAL;	/* an on-link route must name its NIC */
	}
	t->netif = nic ? &nic->netif : NULL;
	return 0;
}

int ns_route_add(struct ns_stack *s, struct ns_route *r)
{
	struct tcpip_route t;
	int rc;

	if (!s || !r)
		return -EINVAL;
	ns_lock(s);
	rc = route_to_tcpip(s, r, &t, true);
	if (!rc)
		rc = tcpip_route_add(&t);
	if (!rc)
		r->nic = ((struct ns_nic *)t.netif->state)->id;
	ns_unlock(s);
	return rc;
}

int ns_route_del(struct ns_stack *s, const struct ns_route *r)
{
	struct tcpip_route t;
	int rc;

	if (!s || !r)
		return -EINVAL;
	ns_lock(s);
	rc = route_to_tcpip(s, r, &t, false);
	if (!rc)
		rc = tcpip_route_del(&t, r->nic == 0);
	ns_unlock(s);
	return rc;
}

/* Append one route to @all (room for every route was made). */
static void put_route(struct ns_route *all, size_t *n, const ip_addr_t *dst, unsigned len,
		      const ip_addr_t *gw, int nic, unsigned metric)
{
	struct ns_route *r = &all[(*n)++];
	ip_addr_t net;

	memset(r, 0, sizeof(*r));
	ip_addr_copy(net, *dst);
	tcpip_addr_mask(&net, len);
	ns_ip_to_addr(&net, &r->dst.addr);
	r->dst.len = len;
	if (gw)
		ns_ip_to_addr(gw, &r->gateway);
	r->nic = nic;
	r->metric = metric;
}

static bool route_before(const struct ns_route *a, const struct ns_route *b)
{
	if (a->dst.len != b->dst.len)
		return a->dst.len > b->dst.len;
	return a->metric < b->metric;
}

static size_t connected_count(struct ns_stack *s)
{
	size_t i, n = 0;
	int k;

	for (i = 0; i < s->nnics; i++) {
		n += !ip4_addr_isany_val(*netif_ip4_addr(&s->nics[i]->netif));
		for (k = 0; k < LWIP_IPV6_NUM_ADDRESSES; k++)
			n += ip6_addr_isvalid(netif_ip6_addr_state(&s->nics[i]->netif, k));
	}
	return n;
}

int ns_route_list(struct ns_stack *s, struct ns_route *out, size_t cap)
{
	struct tcpip_route *t = NULL;
	struct ns_route *all = NULL;
	size_t n = 0, nt, i, j;
	int k, rc;

	if (!s || (!out && cap))
		return -EINVAL;
	ns_lock(s);
	nt = tcpip_route_list(NULL, 0);
	t = calloc(nt + 1, sizeof(*t));
	all = calloc(nt + connected_count(s) + 1, sizeof(*all));
	if (!t || !all) {
		rc = -ENOMEM;
		goto out;
	}
	tcpip_route_list(t, nt);
	/* The on-link routes implied by the NICs' addresses (link-local ones
	 * excepted), then the table's. */
	for (i = 0; i < s->nnics; i++) {
		struct ns_nic *nic = s->nics[i];

		if (!ip4_addr_isany_val(*netif_ip4_addr(&nic->netif)))
			put_route(all, &n, &nic->netif.ip_addr, nic->v4len, NULL, nic->id, 0);
		for (k = 0; k < LWIP_IPV6_NUM_ADDRESSES; k++)
			if (ip6_addr_isvalid(netif_ip6_addr_state(&nic->netif, k)) &&
			    !ip6_addr_islinklocal(netif_ip6_addr(&nic->netif, k)))
				put_route(all, &n, &nic->netif.ip6_addr[k], nic->v6len[k], NULL, nic->id, 0);
	}
	for (i = 0; i < nt; i++)
		put_route(all, &n, &t[i].dst, t[i].len, t[i].has_gw ? &t[i].gw : NULL,
			  ((struct ns_nic *)t[i].netif->state)->id, t[i].metric);
	/* Longest prefix first, then lowest metric; stable (insertion sort:
	 * route tables are small). */
	for (i = 1; i < n; i++) {
		struct ns_route r = all[i];

		for (j = i; j > 0 && route_before(&r, &all[j - 1]); j--)
			all[j] = all[j - 1];
		all[j] = r;
	}
	if (cap)
		memcpy(out, all, (n < cap ? n : cap) * sizeof(*out));
	rc = (int)n;
out:
	free(t);
	free(all);
	ns_unlock(s);
	return rc;
}
