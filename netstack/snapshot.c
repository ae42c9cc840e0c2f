/* SPDX-License-Identifier: MIT */
/*
 * snapshot.c - the stack as plain state for checkpoints: capture it into a
 * struct ns_state (stack clock, count, counters, NICs, routes, sockets) and
 * build a fresh stack back from one; the checkpoint count with its waiters;
 * the embedder's hooks. The image format is checkpoint/'s business.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "internal.h"
#include "state.h"

static void save_nic(struct ns_nic *nic, struct ns_state_nic *sn)
{
	struct netif *n = &nic->netif;
	int k;

	memset(sn, 0, sizeof(*sn));
	sn->id = nic->id;
	memcpy(sn->name, nic->name, sizeof(sn->name));
	snprintf(sn->kind, sizeof(sn->kind), "%s", nic->ep->ops->name);
	snprintf(sn->device, sizeof(sn->device), "%s", nic->ep->device);
	memcpy(sn->mac, n->hwaddr, 6);
	sn->mtu = n->mtu;
	sn->up = nic->up;
	if (!ip4_addr_isany_val(*netif_ip4_addr(n))) {
		ns_ip_to_addr(&n->ip_addr, &sn->addrs[sn->naddrs].addr);
		sn->addrs[sn->naddrs++].len = nic->v4len;
	}
	for (k = 0; k < LWIP_IPV6_NUM_ADDRESSES && sn->naddrs < NS_STATE_MAX_ADDRS; k++) {
		if (!ip6_addr_isvalid(netif_ip6_addr_state(n, k)) ||
		    ip6_addr_islinklocal(netif_ip6_addr(n, k)))
			continue;
		ns_ip_to_addr(&n->ip6_addr[k], &sn->addrs[sn->naddrs].addr);
		sn->addrs[sn->naddrs++].len = nic->v6len[k];
	}
}

int ns_state_save(struct ns_stack *s, struct ns_state *st)
{
	struct tcpip_route *t = NULL;
	size_t i, nt;
	int rc = -ENOMEM;

	memset(st, 0, sizeof(*st));
	st->clock_ns = tcpip_now_ns();
	st->checkpoint_count = (uint64_t)s->ckpt_count;
	st->stats = s->stats;
	st->nics = calloc(s->nnics + 1, sizeof(*st->nics));
	nt = tcpip_route_list(NULL, 0);
	t = calloc(nt + 1, sizeof(*t));
	st->routes = calloc(nt + 1, sizeof(*st->routes));
	if (!st->nics || !t || !st->routes)
		goto fail;
	for (i = 0; i < s->nnics; i++)
		save_nic(s->nics[i], &st->nics[st->nnics++]);
	tcpip_route_list(t, nt);
	for (i = 0; i < nt; i++) {
		struct ns_route *r = &st->routes[st->nroutes++];

		ns_ip_to_addr(&t[i].dst, &r->dst.addr);
		r->dst.len = t[i].len;
		if (t[i].has_gw)
			ns_ip_to_addr(&t[i].gw, &r->gateway);
		r->nic = ((struct ns_nic *)t[i].netif->state)->id;
		r->metric = t[i].metric;
	}
	rc = ns_socks_save(s, st);
	if (rc)
		goto fail;
	free(t);
	return 0;
fail:
	free(t);
	ns_state_release(st);
	return rc;
}

static struct ns_endpoint *given_endpoint(const struct ns_restore_endpoint *eps, size_t n,
					  const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (eps[i].nic_name && strcmp(eps[i].nic_name, name) == 0)
			return eps[i].ep;
	return NULL;
}

/* The endpoint a restored NIC runs on: the embedder's, or its TAP again. */
static int nic_endpoint(const struct ns_state_nic *sn, const struct ns_restore_endpoint *eps,
			size_t neps, struct ns_endpoint **epp, bool *owned)
{
	*epp = given_endpoint(eps, neps, sn->name);
	*owned = false;
	if (*epp)
		return 0;
	if (strcmp(sn->kind, "tap") != 0 || !sn->device[0])
		return -ENODEV;	/* an fd or channel cannot be reopened by itself */
	*owned = true;
	return ns_endpoint_tap_open(sn->device, NS_TAP_CREATE, epp);
}

/* Build the saved NICs, addresses, routes and sockets into @s, a new
 * stack; the stack lock is not held (the calls take it). */
int ns_state_load(struct ns_stack *s, const struct ns_state *st,
		  const struct ns_restore_endpoint *eps, size_t neps)
{
	size_t i, k;
	int rc;

	for (i = 0; i < st->nnics; i++) {
		const struct ns_state_nic *sn = &st->nics[i];
		struct ns_nic_config cfg = { .name = sn->name, .mtu = sn->mtu };
		struct ns_endpoint *ep;
		bool owned;

		memcpy(cfg.mac, sn->mac, 6);
		rc = nic_endpoint(sn, eps, neps, &ep, &owned);
		if (rc)
			return rc;
		ns_lock(s);
		s->next_nic_id = sn->id;	/* routes and embedders know NICs by id */
		ns_unlock(s);
		rc = ns_nic_add(s, &cfg, ep);
		if (rc < 0) {
			if (owned)
				ns_endpoint_free(ep);
			return rc;
		}
		for (k = 0; k < sn->naddrs; k++) {
			rc = ns_addr_add(s, sn->id, &sn->addrs[k]);
			if (rc)
				return rc;
		}
		if (!sn->up && (rc = ns_nic_set_up(s, sn->id, false)))
			return rc;
	}
	for (i = 0; i < st->nroutes; i++) {
		struct ns_route r = st->routes[i];

		rc = ns_route_add(s, &r);
		if (rc)
			return rc;
	}
	ns_lock(s);
	rc = ns_socks_restore(s, st);
	s->stats.rx_frames = st->stats.rx_frames;
	s->stats.tx_frames = st->stats.tx_frames;
	s->stats.rx_bytes = st->stats.rx_bytes;
	s->stats.tx_bytes = st->stats.tx_bytes;
	s->stats.rx_malformed = st->stats.rx_malformed;
	s->stats.tx_dropped = st->stats.tx_dropped;
	s->stats.busy_poll_hits = st->stats.busy_poll_hits;
	s->ckpt_count = (int64_t)st->checkpoint_count;
	ns_unlock(s);
	return rc;
}

void ns_checkpoint_done(struct ns_stack *s, int result)
{
	s->ckpt_count++;
	s->ckpt_result = result;
	pthread_cond_broadcast(&s->ckpt_cond);
}

int ns_hooks_run(struct ns_stack *s, enum ns_hook_kind kind)
{
	struct ns_hook hooks[NS_MAX_HOOKS];
	int i, rc;

	ns_lock(s);
	memcpy(hooks, s->hooks[kind], sizeof(hooks));
	ns_unlock(s);
	for (i = 0; i < NS_MAX_HOOKS && hooks[i].fn; i++) {
		rc = hooks[i].fn(s, hooks[i].arg);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int ns_stack_add_hook(struct ns_stack *s, enum ns_hook_kind kind, ns_hook_fn fn, void *arg)
{
	int i, rc = -ENOSPC;

	if (!s || !fn || (kind != NS_HOOK_PRE_CHECKPOINT && kind != NS_HOOK_POST_RESTORE))
		return -EINVAL;
	ns_lock(s);
	for (i = 0; i < NS_MAX_HOOKS; i++) {
		if (!s->hooks[kind][i].fn) {
			s->hooks[kind][i].fn = fn;
			s->hooks[kind][i].arg = arg;
			rc = 0;
			break;
		}
	}
	ns_unlock(s);
	return rc;
}

int64_t ns_stack_checkpoint_count(struct ns_stack *s, int *last_result)
{
	int64_t n;

	if (!s)
		return -EINVAL;
	ns_lock(s);
	n = s->ckpt_count;
	if (last_result)
		*last_result = s->ckpt_result;
	ns_unlock(s);
	return n;
}

int ns_stack_checkpoint_wait(struct ns_stack *s, int64_t seen, int timeout_ms)
{
	struct timespec deadline;
	int rc = 0;

	if (!s || seen < 0)
		return -EINVAL;
	if (timeout_ms >= 0) {
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	ns_lock(s);
	while (s->ckpt_count <= seen && rc == 0)
		rc = tcpip_cond_wait(&s->ckpt_cond, timeout_ms >= 0 ? &deadline : NULL);
	if (s->ckpt_count > seen)
		rc = s->ckpt_result;
	ns_unlock(s);
	return rc;
}
