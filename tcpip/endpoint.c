/* SPDX-License-Identifier: MIT */
/*
 * endpoint.c - TCP and UDP endpoints over lwIP's raw API: PCB lifecycle,
 * lwIP callbacks, receive and accept queues, readiness, socket options and
 * sockaddr conversion (including IPv4-mapped addresses on dual-stack IPv6
 * endpoints). See endpoint.h for the state machine.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

/* <netinet/tcp.h>'s TCP_MSS (the socket option) would clash with lwIP's
 * configuration value of the same name; the option is not supported. */
#undef TCP_MSS

#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "lwip/udp.h"
#include "endpoint.h"
#include "tcpip.h"

/* A queued UDP datagram. */
struct tcpip_dgram {
	struct pbuf *p;
	ip_addr_t from;
	u16_t port;
};

/* Options kept on the endpoint, so they survive the pcb and are applied to
 * every pcb it gets (lwIP's listen pcbs lack most TCP fields). */
struct ep_opts {
	bool reuseaddr, keepalive, nodelay;
	u32_t keep_idle_ms, keep_intvl_ms, keep_cnt; /* 0 = lwIP's default */
};

struct ep_full {
	struct tcpip_ep ep;
	struct ep_opts opt;
};

#define UDP_RCVBUF_DEFAULT (256u * 1024u)
#define BUF_MIN 2048u
#define BUF_MAX (64u * 1024u * 1024u)
/* The largest UDP payloads lwIP can carry: its pbuf lengths are u16 and,
 * for IPv6, include the 40-byte header (the wire would allow 65527). */
#define UDP_MAX_PAYLOAD_V4 (0xffffu - 20u - 8u)
#define UDP_MAX_PAYLOAD_V6 (0xffffu - 40u - 8u)

/* The stack's limits (one stack per process, so they are global as lwIP
 * is), and the unread received bytes queued over all endpoints. */
static struct tcpip_ep_limits limits = {
	.max_backlog = 0xff, .max_sock_buf = BUF_MAX, .max_rx_total = SIZE_MAX,
};
static size_t rx_total;
static uint64_t rx_refused;

void tcpip_ep_set_limits(const struct tcpip_ep_limits *l)
{
	limits = *l;
}

void tcpip_ep_usage(size_t *queued, uint64_t *refused)
{
	*queued = rx_total;
	*refused = rx_refused;
}

/* Whether @len more received bytes may queue on @ep within the stack-wide
 * total. An empty queue always takes one more, so every connection makes
 * progress. (A TCP endpoint's own bound is its window, TCP_WND; UDP's is
 * SO_RCVBUF, checked in udp_on_recv().) */
static bool rx_fits(const struct tcpip_ep *ep, size_t len)
{
	return !ep->rx_bytes || rx_total + len <= limits.max_rx_total;
}

/* Room in a TCP endpoint's send buffer: lwIP's own (TCP_SND_BUF, the
 * ceiling) less what a smaller SO_SNDBUF withholds. Queued = unacked plus
 * unsent bytes. */
static size_t snd_room(const struct tcpip_ep *ep, const struct tcp_pcb *pcb)
{
	size_t queued = TCP_SND_BUF - pcb->snd_buf, room = pcb->snd_buf;

	if (ep->sndbuf < TCP_SND_BUF) {
		if (queued >= ep->sndbuf)
			return 0;
		if (room > ep->sndbuf - queued)
			room = ep->sndbuf - queued;
	}
	return room;
}

static void rx_add(struct tcpip_ep *ep, size_t len)
{
	ep->rx_bytes += len;
	rx_total += len;
}

static void rx_sub(struct tcpip_ep *ep, size_t len)
{
	ep->rx_bytes -= len;
	rx_total -= len;
}

static struct ep_opts *opts_of(struct tcpip_ep *ep)
{
	return &((struct ep_full *)ep)->opt;
}

/* --- the ring --- */

static int ring_push(struct tcpip_ring *r, void *item)
{
	if (r->count == r->cap) {
		unsigned ncap = r->cap ? 2 * r->cap : 8, i;
		void **n = malloc(ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		for (i = 0; i < r->count; i++)
			n[i] = r->items[(r->head + i) % r->cap];
		free(r->items);
		r->items = n;
		r->head = 0;
		r->cap = ncap;
	}
	r->items[(r->head + r->count) % r->cap] = item;
	r->count++;
	return 0;
}

static void *ring_at(const struct tcpip_ring *r, unsigned i)
{
	return i < r->count ? r->items[(r->head + i) % r->cap] : NULL;
}

static void *ring_pop(struct tcpip_ring *r)
{
	void *item = ring_at(r, 0);

	if (item) {
		r->head = (r->head + 1) % r->cap;
		r->count--;
	}
	return item;
}

static void notify(struct tcpip_ep *ep)
{
	if (ep->notify)
		ep->notify(ep, ep->owner);
}

/* --- addresses --- */

static bool is_tcp(const struct tcpip_ep *ep)
{
	return ep->type == SOCK_STREAM;
}

static u8_t pcb_type(const struct tcpip_ep *ep)
{
	if (ep->family == AF_INET)
		return IPADDR_TYPE_V4;
	return ep->v6only ? IPADDR_TYPE_V6 : IPADDR_TYPE_ANY;
}

/* sockaddr -> lwIP address. An IPv4-mapped IPv6 address becomes IPv4; the
 * IPv6 wildcard on a dual-stack endpoint becomes lwIP's any-type wildcard. */
static int sa_to_ip(const struct tcpip_ep *ep, const struct sockaddr *sa, socklen_t len,
		    ip_addr_t *ip, u16_t *port)
{
	if (!sa)
		return -EINVAL;
	if (ep->family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		if (len < (socklen_t)sizeof(*sin))
			return -EINVAL;
		if (sin->sin_family != AF_INET)
			return -EAFNOSUPPORT;
		ip_addr_set_ip4_u32_val(*ip, sin->sin_addr.s_addr);
		*port = ntohs(sin->sin_port);
		return 0;
	}

	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

	if (len < (socklen_t)sizeof(*sin6))
		return -EINVAL;
	if (sin6->sin6_family != AF_INET6)
		return -EAFNOSUPPORT;
	*port = ntohs(sin6->sin6_port);
	if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		u32_t v4;

		if (ep->v6only)
			return -ENETUNREACH;
		memcpy(&v4, &sin6->sin6_addr.s6_addr[12], 4);
		ip_addr_set_ip4_u32_val(*ip, v4);
		return 0;
	}
	if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr) && !ep->v6only) {
		*ip = *IP_ANY_TYPE;
		return 0;
	}
	memset(ip, 0, sizeof(*ip));
	memcpy(ip_2_ip6(ip)->addr, &sin6->sin6_addr, 16);
	IP_SET_TYPE_VAL(*ip, IPADDR_TYPE_V6);
#if LWIP_IPV6_SCOPES
	if (ip6_addr_islinklocal(ip_2_ip6(ip)) && sin6->sin6_scope_id && sin6->sin6_scope_id < 256)
		ip6_addr_set_zone(ip_2_ip6(ip), (u8_t)sin6->sin6_scope_id);
#endif
	return 0;
}

/* lwIP address -> sockaddr of the endpoint's family, truncated to *len as
 * getsockname(2) does; *len gets the full size. */
static void ip_to_sa(const struct tcpip_ep *ep, const ip_addr_t *ip, u16_t port,
		     struct sockaddr *sa, socklen_t *len)
{
	struct sockaddr_storage ss;
	socklen_t full;

	memset(&ss, 0, sizeof(ss));
	if (ep->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = IP_IS_V4(ip) ? ip_2_ip4(ip)->addr : 0;
		full = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		if (IP_IS_V6_VAL(*ip)) {
			memcpy(&sin6->sin6_addr, ip_2_ip6(ip)->addr, 16);
#if LWIP_IPV6_SCOPES
			sin6->sin6_scope_id = ip6_addr_zone(ip_2_ip6(ip));
#endif
		} else if (IP_IS_V4_VAL(*ip) && !ip4_addr_isany_val(*ip_2_ip4(ip))) {
			sin6->sin6_addr.s6_addr[10] = 0xff;
			sin6->sin6_addr.s6_addr[11] = 0xff;
			memcpy(&sin6->sin6_addr.s6_addr[12], &ip_2_ip4(ip)->addr, 4);
		}
		full = sizeof(*sin6);
	}
	memcpy(sa, &ss, *len < full ? *len : full);
	*len = full;
}

/* --- options --- */

static void apply_opts(struct tcpip_ep *ep)
{
	struct ep_opts *o = opts_of(ep);

	if (!ep->pcb.any)
		return;
	if (is_tcp(ep)) {
		struct tcp_pcb *pcb = ep->pcb.tcp;

		if (o->reuseaddr)
			ip_set_option(pcb, SOF_REUSEADDR);
		else
			ip_reset_option(pcb, SOF_REUSEADDR);
		if (o->keepalive)
			ip_set_option(pcb, SOF_KEEPALIVE);
		else
			ip_reset_option(pcb, SOF_KEEPALIVE);
		if (ep->state == TCPIP_LISTEN)
			return;	/* a tcp_pcb_listen has no more fields */
		if (o->nodelay)
			tcp_nagle_disable(pcb);
		else
			tcp_nagle_enable(pcb);
		if (o->keep_idle_ms)
			pcb->keep_idle = o->keep_idle_ms;
		if (o->keep_intvl_ms)
			pcb->keep_intvl = o->keep_intvl_ms;
		if (o->keep_cnt)
			pcb->keep_cnt = o->keep_cnt;
	} else {
		if (o->reuseaddr)
			ip_set_option(ep->pcb.udp, SOF_REUSEADDR);
		else
			ip_reset_option(ep->pcb.udp, SOF_REUSEADDR);
	}
}

/* --- TCP callbacks --- */

static void tcp_recved_all(struct tcp_pcb *pcb, size_t n)
{
	while (n) {
		u16_t chunk = n > 0xffff ? 0xffff : (u16_t)n;

		tcp_recved(pcb, chunk);
		n -= chunk;
	}
}

static void finish_if_done(struct tcpip_ep *ep);

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	struct tcpip_ep *ep = arg;

	(void)err;
	if (!p) {
		ep->rx_eof = true;
		finish_if_done(ep);
		notify(ep);
		return ERR_OK;
	}
	if (ep->shut_rd) {
		tcp_recved_all(pcb, p->tot_len);
		pbuf_free(p);
		return ERR_OK;
	}
	/* Refused data stays with lwIP, which offers it again later (when
	 * the application reads, or on its fast timer). */
	if (!rx_fits(ep, p->tot_len)) {
		rx_refused++;
		return ERR_MEM;
	}
	if (ring_push(&ep->rxq, p))
		return ERR_MEM;
	rx_add(ep, p->tot_len);
	notify(ep);
	return ERR_OK;
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	(void)pcb;
	(void)len;
	notify(arg);
	return ERR_OK;
}

/* lwIP has freed the pcb. It reports ERR_ABRT only for its own timeouts
 * (we detach before aborting ourselves), ERR_RST for a peer's reset. */
static void on_err(void *arg, err_t err)
{
	struct tcpip_ep *ep = arg;

	ep->pcb.tcp = NULL;
	if (ep->state == TCPIP_CONNECTING)
		ep->err = err == ERR_RST ? ECONNREFUSED : err == ERR_ABRT ? ETIMEDOUT : -tcpip_err_to_errno(err);
	else if (err == ERR_ABRT)
		ep->err = ETIMEDOUT;
	else if (err != ERR_CLSD)
		ep->err = -tcpip_err_to_errno(err);
	ep->state = TCPIP_DEAD;
	ep->rx_eof = true;
	notify(ep);
}

static err_t on_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
	struct tcpip_ep *ep = arg;

	(void)pcb;
	(void)err;
	ep->state = TCPIP_CONNECTED;
	notify(ep);
	return ERR_OK;
}

static void attach_tcp(struct tcpip_ep *ep)
{
	struct tcp_pcb *pcb = ep->pcb.tcp;

	tcp_arg(pcb, ep);
	tcp_recv(pcb, on_recv);
	tcp_sent(pcb, on_sent);
	tcp_err(pcb, on_err);
}

static void detach_tcp(struct tcp_pcb *pcb)
{
	tcp_arg(pcb, NULL);
	tcp_recv(pcb, NULL);
	tcp_sent(pcb, NULL);
	tcp_err(pcb, NULL);
}

/*
 * Hand a connection's pcb to lwIP for good: no callback reaches @ep any
 * more, and lwIP frees the pcb when the connection is over - without
 * telling anyone, so the endpoint must forget it now. @abort resets instead
 * of closing.
 */
static void release_tcp(struct tcpip_ep *ep, bool abort)
{
	struct tcp_pcb *pcb = ep->pcb.tcp;

	ep->pcb.tcp = NULL;
	if (!pcb)
		return;
	detach_tcp(pcb);
	if (abort || tcp_close(pcb) != ERR_OK)
		tcp_abort(pcb);
}

/* Both directions are over (the peer's FIN or SHUT_RD, and SHUT_WR): nothing
 * more will pass through this connection, so let lwIP finish it alone.
 * lwIP is told the unread bytes were taken, so closing does not reset. */
static void finish_if_done(struct tcpip_ep *ep)
{
	if (ep->state != TCPIP_CONNECTED || !ep->pcb.tcp || !ep->shut_wr ||
	    !(ep->rx_eof || ep->shut_rd))
		return;
	tcp_recved_all(ep->pcb.tcp, ep->rx_bytes);
	release_tcp(ep, false);
}

static struct tcpip_ep *ep_alloc(int family, int type, tcpip_notify_fn fn, void *owner)
{
	struct ep_full *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->ep.family = family;
	f->ep.type = type;
	f->ep.notify = fn;
	f->ep.owner = owner;
	f->ep.state = TCPIP_NEW;
	f->ep.rcvbuf = type == SOCK_STREAM ? TCP_WND : UDP_RCVBUF_DEFAULT;
	f->ep.sndbuf = type == SOCK_STREAM ? TCP_SND_BUF : UDP_RCVBUF_DEFAULT;
	if (f->ep.rcvbuf > limits.max_sock_buf)
		f->ep.rcvbuf = (unsigned)limits.max_sock_buf;
	if (f->ep.sndbuf > limits.max_sock_buf)
		f->ep.sndbuf = (unsigned)limits.max_sock_buf;
	return &f->ep;
}

static void free_rxq(struct tcpip_ep *ep);

static err_t on_accept(void *arg, struct tcp_pcb *newpcb, err_t err)
{
	struct tcpip_ep *l = arg, *c;

	if (err != ERR_OK || !newpcb)
		return ERR_VAL;
	if ((int)l->rxq.count >= l->backlog)
		goto refuse;
	c = ep_alloc(l->family, SOCK_STREAM, l->notify, l->owner);
	if (!c)
		goto refuse;
	if (ring_push(&l->rxq, c)) {
		free(c);
		goto refuse;
	}
	c->pcb.tcp = newpcb;
	c->state = TCPIP_CONNECTED;
	c->listener = l;
	c->v6only = l->v6only;
	*opts_of(c) = *opts_of(l);
	c->rcvbuf = l->rcvbuf;
	c->sndbuf = l->sndbuf;
	attach_tcp(c);
	apply_opts(c);
	/* Counted against the listen backlog until accepted. */
	tcp_backlog_delayed(newpcb);
	notify(l);
	return ERR_OK;
refuse:
	tcp_abort(newpcb);
	return ERR_ABRT;
}

/* --- lifecycle --- */

int tcpip_ep_new(int family, int type, tcpip_notify_fn fn, void *owner, struct tcpip_ep **epp)
{
	struct tcpip_ep *ep;

	if ((family != AF_INET && family != AF_INET6) || (type != SOCK_STREAM && type != SOCK_DGRAM))
		return -EINVAL;
	ep = ep_alloc(family, type, fn, owner);
	if (!ep)
		return -ENOMEM;
	if (is_tcp(ep)) {
		ep->pcb.tcp = tcp_new_ip_type(pcb_type(ep));
		if (ep->pcb.tcp)
			attach_tcp(ep);
	} else {
		ep->pcb.udp = udp_new_ip_type(pcb_type(ep));
	}
	if (!ep->pcb.any) {
		free(ep);
		return -ENOMEM;
	}
	*epp = ep;
	return 0;
}

static void free_rxq(struct tcpip_ep *ep)
{
	void *item;

	while ((item = ring_pop(&ep->rxq))) {
		if (ep->state == TCPIP_LISTEN) {
			struct tcpip_ep *c = item;

			if (c->pcb.tcp) {
				detach_tcp(c->pcb.tcp);
				tcp_abort(c->pcb.tcp);
			}
			free_rxq(c);
			free(c);
		} else if (is_tcp(ep)) {
			pbuf_free(item);
		} else {
			struct tcpip_dgram *d = item;

			pbuf_free(d->p);
			free(d);
		}
	}
	free(ep->rxq.items);
	ep->rxq.items = NULL;
	ep->rxq.cap = 0;
	rx_sub(ep, ep->rx_bytes);
}

void tcpip_ep_close(struct tcpip_ep *ep)
{
	if (!ep)
		return;
	if (is_tcp(ep) && ep->pcb.tcp) {
		struct tcp_pcb *pcb = ep->pcb.tcp;

		if (ep->state == TCPIP_LISTEN) {
			tcp_arg(pcb, NULL);
			tcp_accept(pcb, NULL);
			tcp_close(pcb);
		} else {
			/* Unread data or SO_LINGER 0: reset, as Linux does. */
			release_tcp(ep, ep->rx_bytes || ep->linger0);
		}
	} else if (!is_tcp(ep) && ep->pcb.udp) {
		udp_remove(ep->pcb.udp);
	}
	ep->pcb.any = NULL;
	free_rxq(ep);
	free(ep);
}

/* --- operations --- */

static uint64_t udp_drops;

uint64_t tcpip_ep_udp_drops(void)
{
	return udp_drops;
}

static void udp_on_recv(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *addr, u16_t port)
{
	struct tcpip_ep *ep = arg;
	struct tcpip_dgram *d;

	(void)pcb;
	if (ep->shut_rd || ep->rx_bytes + p->tot_len > ep->rcvbuf)
		goto drop;
	if (!rx_fits(ep, p->tot_len)) {
		rx_refused++;	/* the stack's bound, not this socket's */
		pbuf_free(p);
		return;
	}
	d = malloc(sizeof(*d));
	if (!d)
		goto drop;
	d->p = p;
	ip_addr_copy(d->from, *addr);
	d->port = port;
	if (ring_push(&ep->rxq, d)) {
		free(d);
		goto drop;
	}
	rx_add(ep, p->tot_len);
	notify(ep);
	return;
drop:
	udp_drops++;
	pbuf_free(p);
}

/* --- bulk binding (restore) ---
 *
 * lwIP's tcp_bind() compares the new pcb with every pcb on its lists, and
 * with SO_REUSEADDR tcp_listen() compares it with every listener, though
 * both only look further at pcbs on the same port: binding N listeners one
 * after the other costs N^2/2 comparisons (10,000 listeners: 300 ms).
 *
 * Between tcpip_ep_bulk_begin() and tcpip_ep_bulk_end(), bulk_ports counts
 * the pcbs on the bound and listen lists per port: those there at begin
 * and every bind since. A bind to a port no such pcb uses, or a listen of
 * the only pcb on its port, runs with those two lists set aside: every pcb
 * lwIP would compare with is still in view (none of the set-aside ones,
 * the active and TIME-WAIT lists whole), so it answers as it would with
 * the lists whole. A listen keeps its own pcb in view, at the head of the
 * bound list where its bind put it, for tcp_listen() unlinks it from there.
 * lwIP only ever prepends (TCP_REG), so relinking the set-aside lists
 * behind what the call left leaves them as the plain call would, in the
 * same order. Every other call (port 0, where lwIP picks a free port; a
 * port in use, where it may refuse) is the plain call over the whole lists.
 * Closing a pcb does not lower its count: a stale count only sends a call
 * the plain way, which is why this is for a bulk and not for always.
 * Counts stop at 2: only 0 and 1 are asked for.
 */
#define PORTS_N (UINT16_MAX + 1u)
static uint8_t *bulk_ports;	/* NULL: not in a bulk */

static void port_count(u16_t port)
{
	if (bulk_ports && bulk_ports[port] < 2)
		bulk_ports[port]++;
}

void tcpip_ep_bulk_begin(void)
{
	struct tcp_pcb *lists[2] = { tcp_bound_pcbs, tcp_listen_pcbs.pcbs }, *pcb;
	size_t i;

	free(bulk_ports);
	bulk_ports = calloc(PORTS_N, 1);	/* none: every call the plain way */
	for (i = 0; i < 2; i++)
		for (pcb = lists[i]; pcb; pcb = pcb->next)
			port_count(pcb->local_port);
}

void tcpip_ep_bulk_end(void)
{
	free(bulk_ports);
	bulk_ports = NULL;
}

/* The bound and listen lists lwIP does not see during one call. */
struct set_aside {
	struct tcp_pcb *bound, *listen;
};

/* Set aside the bound and listen lists but @keep, the bound list's head. */
static void lists_set_aside(struct set_aside *a, struct tcp_pcb *keep)
{
	if (keep) {
		a->bound = keep->next;
		keep->next = NULL;
	} else {
		a->bound = tcp_bound_pcbs;
		tcp_bound_pcbs = NULL;
	}
	a->listen = tcp_listen_pcbs.pcbs;
	tcp_listen_pcbs.pcbs = NULL;
}

static void relink(struct tcp_pcb **list, struct tcp_pcb *rest)
{
	while (*list)
		list = &(*list)->next;
	*list = rest;
}

static void lists_put_back(const struct set_aside *a)
{
	relink(&tcp_bound_pcbs, a->bound);
	relink(&tcp_listen_pcbs.pcbs, a->listen);
}

/* tcp_bind(), with lwIP's lists cut short when no pcb may conflict. */
static err_t bind_tcp(struct tcp_pcb *pcb, const ip_addr_t *ip, u16_t port)
{
	struct set_aside a;
	err_t err;

	if (!bulk_ports || port == 0 || bulk_ports[port]) {
		err = tcp_bind(pcb, ip, port);
	} else {
		lists_set_aside(&a, NULL);
		err = tcp_bind(pcb, ip, port);
		lists_put_back(&a);
	}
	if (err == ERR_OK)
		port_count(pcb->local_port);
	return err;
}

/* tcp_listen_with_backlog_and_err(), likewise. */
static struct tcp_pcb *listen_tcp(struct tcp_pcb *pcb, u8_t backlog, err_t *err)
{
	struct tcp_pcb *lpcb;
	struct set_aside a;

	if (!bulk_ports || bulk_ports[pcb->local_port] != 1 || tcp_bound_pcbs != pcb)
		return tcp_listen_with_backlog_and_err(pcb, backlog, err);
	lists_set_aside(&a, pcb);
	lpcb = tcp_listen_with_backlog_and_err(pcb, backlog, err);
	lists_put_back(&a);
	return lpcb;
}

int tcpip_ep_bind(struct tcpip_ep *ep, const struct sockaddr *sa, socklen_t len)
{
	ip_addr_t ip;
	u16_t port;
	err_t err;
	int rc;

	if (ep->state != TCPIP_NEW || !ep->pcb.any)
		return -EINVAL;
	rc = sa_to_ip(ep, sa, len, &ip, &port);
	if (rc)
		return rc;
	if (!ip_addr_isany(&ip)) {
		struct netif *n;
		bool local = false;

		NETIF_FOREACH(n) {
			if (IP_IS_V4(&ip) && ip4_addr_cmp(ip_2_ip4(&ip), netif_ip4_addr(n)))
				local = true;
			if (IP_IS_V6(&ip) && netif_get_ip6_addr_match(n, ip_2_ip6(&ip)) >= 0)
				local = true;
		}
		if (!local)
			return -EADDRNOTAVAIL;
	}
	apply_opts(ep);
	err = is_tcp(ep) ? bind_tcp(ep->pcb.tcp, &ip, port) : udp_bind(ep->pcb.udp, &ip, port);
	if (err != ERR_OK)
		return tcpip_err_to_errno(err);
	if (!is_tcp(ep))
		udp_recv(ep->pcb.udp, udp_on_recv, ep);
	ep->state = TCPIP_BOUND;
	return 0;
}

int tcpip_ep_listen(struct tcpip_ep *ep, int backlog)
{
	struct tcp_pcb *lpcb;
	err_t err;

	if (!is_tcp(ep))
		return -EOPNOTSUPP;
	if (backlog <= 0)
		backlog = 1;
	/* As Linux clamps to somaxconn; the ceiling is lwIP's u8 backlog. */
	if (backlog > (int)limits.max_backlog)
		backlog = (int)limits.max_backlog;
	if (ep->state == TCPIP_LISTEN) {
		ep->backlog = backlog;
		tcp_backlog_set(ep->pcb.tcp, (u8_t)backlog);
		return 0;
	}
	if (ep->state == TCPIP_NEW) {
		apply_opts(ep);
		err = bind_tcp(ep->pcb.tcp, ep->family == AF_INET ? IP4_ADDR_ANY :
			       ep->v6only ? IP6_ADDR_ANY : IP_ANY_TYPE, 0);
		if (err != ERR_OK)
			return tcpip_err_to_errno(err);
		ep->state = TCPIP_BOUND;
	}
	if (ep->state != TCPIP_BOUND)
		return -EINVAL;
	lpcb = listen_tcp(ep->pcb.tcp, (u8_t)backlog, &err);
	if (!lpcb)
		return tcpip_err_to_errno(err);
	ep->pcb.tcp = lpcb;	/* lwIP freed the old pcb */
	ep->state = TCPIP_LISTEN;
	ep->backlog = backlog;
	tcp_arg(lpcb, ep);
	tcp_accept(lpcb, on_accept);
	return 0;
}

int tcpip_ep_accept(struct tcpip_ep *ep, struct tcpip_ep **childp)
{
	struct tcpip_ep *c;

	if (!is_tcp(ep))
		return -EOPNOTSUPP;
	if (ep->state != TCPIP_LISTEN)
		return -EINVAL;
	c = ring_pop(&ep->rxq);
	if (!c)
		return -EAGAIN;
	c->listener = NULL;
	if (c->pcb.tcp)
		tcp_backlog_accepted(c->pcb.tcp);
	*childp = c;
	return 0;
}

int tcpip_ep_connect(struct tcpip_ep *ep, const struct sockaddr *sa, socklen_t len)
{
	ip_addr_t ip;
	u16_t port;
	err_t err;
	int rc;

	if (is_tcp(ep)) {
		switch (ep->state) {
		case TCPIP_CONNECTING: return -EALREADY;
		case TCPIP_CONNECTED: return -EISCONN;
		case TCPIP_LISTEN:
		case TCPIP_DEAD:
		case TCPIP_CLOSED: return -EINVAL;
		default: break;
		}
	}
	rc = sa_to_ip(ep, sa, len, &ip, &port);
	if (rc)
		return rc;
	if (ip_addr_isany(&ip) || port == 0)
		return is_tcp(ep) ? -ECONNREFUSED : -EINVAL;
	if (!ip_route(IP_IS_V6(&ip) ? IP6_ADDR_ANY : IP4_ADDR_ANY, &ip))
		return -ENETUNREACH;
	if (!is_tcp(ep)) {
		err = udp_connect(ep->pcb.udp, &ip, port);
		if (err != ERR_OK)
			return tcpip_err_to_errno(err);
		udp_recv(ep->pcb.udp, udp_on_recv, ep);
		ep->state = TCPIP_CONNECTED;
		return 0;
	}
	apply_opts(ep);
	err = tcp_connect(ep->pcb.tcp, &ip, port, on_connected);
	if (err != ERR_OK)
		return tcpip_err_to_errno(err);
	ep->state = TCPIP_CONNECTING;
	return -EINPROGRESS;
}

int tcpip_ep_connect_result(struct tcpip_ep *ep)
{
	int e;

	switch (ep->state) {
	case TCPIP_CONNECTED:
		return 0;
	case TCPIP_CONNECTING:
		return -EINPROGRESS;
	default:
		e = ep->err ? ep->err : ECONNREFUSED;
		ep->err = 0;
		return -e;
	}
}

static ssize_t stream_send(struct tcpip_ep *ep, const uint8_t *buf, size_t len)
{
	struct tcp_pcb *pcb = ep->pcb.tcp;
	size_t total = 0;

	switch (ep->state) {
	case TCPIP_CONNECTING:
		return -EAGAIN;
	case TCPIP_CONNECTED:
		break;
	case TCPIP_DEAD:
		if (ep->err) {
			int e = ep->err;

			ep->err = 0;
			return -e;
		}
		return -EPIPE;
	default:
		return -ENOTCONN;
	}
	if (ep->shut_wr || !pcb)
		return -EPIPE;
	while (total < len) {
		/* Not tcp_sndbuf(): it clamps to 16 bits. */
		size_t room = snd_room(ep, pcb), chunk = len - total;
		u8_t flags = TCP_WRITE_FLAG_COPY;
		err_t err;

		if (room == 0 || tcp_sndqueuelen(pcb) >= TCP_SND_QUEUELEN - 1)
			break;
		if (chunk > room)
			chunk = room;
		if (chunk > 0xffff)
			chunk = 0xffff;
		if (total + chunk < len)
			flags |= TCP_WRITE_FLAG_MORE;
		err = tcp_write(pcb, buf + total, (u16_t)chunk, flags);
		if (err == ERR_MEM)
			break;
		if (err != ERR_OK) {
			if (total == 0)
				return tcpip_err_to_errno(err);
			break;
		}
		total += chunk;
	}
	if (total == 0)
		return len ? -EAGAIN : 0;
	tcp_output(pcb);
	return (ssize_t)total;
}

static ssize_t dgram_send(struct tcpip_ep *ep, const void *buf, size_t len,
			   const struct sockaddr *to, socklen_t tolen)
{
	struct pbuf *p;
	ip_addr_t ip;
	u16_t port;
	err_t err;
	int rc;

	if (ep->shut_wr)
		return -EPIPE;
	if (to) {
		rc = sa_to_ip(ep, to, tolen, &ip, &port);
		if (rc)
			return rc;
		if (ip_addr_isany(&ip) || port == 0)
			return -EINVAL;
	} else if (ep->state != TCPIP_CONNECTED) {
		return -EDESTADDRREQ;
	}
	if (len > (IP_IS_V6(to ? &ip : &ep->pcb.udp->remote_ip) ? UDP_MAX_PAYLOAD_V6 : UDP_MAX_PAYLOAD_V4))
		return -EMSGSIZE;
	p = pbuf_alloc(PBUF_TRANSPORT, (u16_t)len, PBUF_RAM);
	if (!p)
		return -ENOBUFS;
	if (len)
		pbuf_take(p, buf, (u16_t)len);
	if (ep->state == TCPIP_NEW)
		udp_recv(ep->pcb.udp, udp_on_recv, ep);
	err = to ? udp_sendto(ep->pcb.udp, p, &ip, port) : udp_send(ep->pcb.udp, p);
	pbuf_free(p);
	if (ep->state == TCPIP_NEW)
		ep->state = TCPIP_BOUND;	/* lwIP bound it to an ephemeral port */
	if (err != ERR_OK)
		return err == ERR_RTE ? -ENETUNREACH : tcpip_err_to_errno(err);
	return (ssize_t)len;
}

ssize_t tcpip_ep_send(struct tcpip_ep *ep, const void *buf, size_t len,
		      const struct sockaddr *to, socklen_t tolen)
{
	if (!ep->pcb.any && !is_tcp(ep))
		return -EBADF;
	if (is_tcp(ep)) {
		if (to && ep->state != TCPIP_CONNECTED)
			return ep->state == TCPIP_CONNECTING ? -EAGAIN : -ENOTCONN;
		return stream_send(ep, buf, len);
	}
	return dgram_send(ep, buf, len, to, tolen);
}

static ssize_t stream_recv(struct tcpip_ep *ep, uint8_t *buf, size_t len, bool peek)
{
	size_t copied = 0, off = ep->rx_off;
	unsigned i = 0;

	switch (ep->state) {
	case TCPIP_CONNECTING:
		return -EAGAIN;
	case TCPIP_CONNECTED:
	case TCPIP_DEAD:
		break;
	default:
		return -ENOTCONN;
	}
	if (ep->rx_bytes == 0) {
		if (ep->state == TCPIP_DEAD && ep->err) {
			int e = ep->err;

			ep->err = 0;
			return -e;
		}
		if (ep->rx_eof || ep->shut_rd || ep->state == TCPIP_DEAD)
			return 0;
		return -EAGAIN;
	}
	while (copied < len) {
		struct pbuf *p = ring_at(&ep->rxq, i);
		size_t n;

		if (!p)
			break;
		n = p->tot_len - off;
		if (n > len - copied)
			n = len - copied;
		pbuf_copy_partial(p, buf + copied, (u16_t)n, (u16_t)off);
		copied += n;
		if (off + n < p->tot_len) {
			off += n;
			break;
		}
		off = 0;
		i++;
	}
	if (peek)
		return (ssize_t)copied;
	while (i--)
		pbuf_free(ring_pop(&ep->rxq));
	ep->rx_off = (uint16_t)off;
	rx_sub(ep, copied);
	if (ep->pcb.tcp)
		tcp_recved_all(ep->pcb.tcp, copied);
	/* Data on_recv() refused for want of room comes in now, not at
	 * lwIP's next fast timer. It may end the connection (a refused FIN). */
	if (ep->pcb.tcp && ep->pcb.tcp->refused_data)
		tcp_process_refused_data(ep->pcb.tcp);
	return (ssize_t)copied;
}

static ssize_t dgram_recv(struct tcpip_ep *ep, void *buf, size_t len, bool peek,
			     struct sockaddr *from, socklen_t *fromlen, size_t *full)
{
	struct tcpip_dgram *d = ring_at(&ep->rxq, 0);
	size_t n;

	if (!d) {
		if (ep->err) {
			int e = ep->err;

			ep->err = 0;
			return -e;
		}
		return ep->shut_rd ? 0 : -EAGAIN;
	}
	n = d->p->tot_len < len ? d->p->tot_len : len;
	pbuf_copy_partial(d->p, buf, (u16_t)n, 0);
	if (full)
		*full = d->p->tot_len;
	if (from && fromlen)
		ip_to_sa(ep, &d->from, d->port, from, fromlen);
	if (!peek) {
		ring_pop(&ep->rxq);
		rx_sub(ep, d->p->tot_len);
		pbuf_free(d->p);
		free(d);
	}
	return (ssize_t)n;
}

ssize_t tcpip_ep_recv(struct tcpip_ep *ep, void *buf, size_t len, bool peek,
		      struct sockaddr *from, socklen_t *fromlen, size_t *full)
{
	ssize_t n;

	if (!is_tcp(ep))
		return dgram_recv(ep, buf, len, peek, from, fromlen, full);
	n = stream_recv(ep, buf, len, peek);
	if (n >= 0 && from && fromlen)
		tcpip_ep_name(ep, true, from, fromlen);
	if (full)
		*full = n > 0 ? (size_t)n : 0;
	return n;
}

/*
 * SHUT_RD is ours alone: later data is acknowledged and dropped, as Linux
 * does (lwIP's own receive shutdown would reset the connection on the next
 * segment). SHUT_WR sends lwIP's FIN. Once both are done the pcb goes back
 * to lwIP (finish_if_done).
 */
int tcpip_ep_shutdown(struct tcpip_ep *ep, int how)
{
	bool rd = how == SHUT_RD || how == SHUT_RDWR, wr = how == SHUT_WR || how == SHUT_RDWR;

	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return -EINVAL;
	if (is_tcp(ep)) {
		if (ep->state == TCPIP_LISTEN && rd) {
			/* Linux: shutting down a listener stops it accepting. */
			ep->shut_rd = true;
			notify(ep);
			return 0;
		}
		if (ep->state != TCPIP_CONNECTED && ep->state != TCPIP_CONNECTING)
			return -ENOTCONN;
		if (wr && !ep->shut_wr && ep->pcb.tcp) {
			err_t err = tcp_shutdown(ep->pcb.tcp, 0, 1);

			if (err != ERR_OK)
				return tcpip_err_to_errno(err);
		}
		if (rd && ep->pcb.tcp)
			tcp_recved_all(ep->pcb.tcp, ep->rx_bytes);
	} else if (ep->state != TCPIP_CONNECTED) {
		return -ENOTCONN;
	}
	if (rd) {
		ep->shut_rd = true;
		free_rxq(ep);
		ep->rx_off = 0;
	}
	if (wr)
		ep->shut_wr = true;
	if (is_tcp(ep))
		finish_if_done(ep);
	notify(ep);
	return 0;
}

/* The raw snd_buf: lwIP's tcp_sndbuf() clamps it to 16 bits, which would
 * never reach a quarter of a 1 MiB buffer. */
static bool tcp_writable(const struct tcpip_ep *ep, const struct tcp_pcb *pcb)
{
	size_t cap = ep->sndbuf < TCP_SND_BUF ? ep->sndbuf : TCP_SND_BUF;

	/* Wake writers only with room worth writing into (as Linux waits for
	 * a third of the buffer), so a sender does not spin on slivers. */
	return snd_room(ep, pcb) >= cap / 4 && tcp_sndqueuelen(pcb) < TCP_SNDQUEUELOWAT;
}

unsigned tcpip_ep_poll(const struct tcpip_ep *ep)
{
	unsigned m = 0;

	if (!is_tcp(ep)) {
		if (ep->rxq.count || ep->shut_rd)
			m |= POLLIN;
		if (!ep->shut_wr)
			m |= POLLOUT;
		if (ep->err)
			m |= POLLERR;
		return m;
	}
	switch (ep->state) {
	case TCPIP_NEW:
	case TCPIP_BOUND:
		return POLLOUT | POLLHUP;
	case TCPIP_LISTEN:
		return ep->rxq.count ? POLLIN : 0;
	case TCPIP_CONNECTING:
		return 0;
	case TCPIP_CONNECTED:
		if (ep->rx_bytes || ep->rx_eof || ep->shut_rd)
			m |= POLLIN;
		if (ep->rx_eof || ep->shut_rd)
			m |= POLLRDHUP;
		if (!ep->shut_wr && ep->pcb.tcp && tcp_writable(ep, ep->pcb.tcp))
			m |= POLLOUT;
		if ((ep->rx_eof || ep->shut_rd) && ep->shut_wr)
			m |= POLLHUP;
		return m;
	default:
		m = POLLIN | POLLRDHUP | POLLHUP;
		if (ep->err)
			m |= POLLERR;
		return m;
	}
}

int tcpip_ep_name(const struct tcpip_ep *ep, bool peer, struct sockaddr *sa, socklen_t *len)
{
	const ip_addr_t *ip;
	u16_t port;

	if (peer) {
		if (ep->state != TCPIP_CONNECTED || !ep->pcb.any)
			return -ENOTCONN;
		if (is_tcp(ep)) {
			ip = &ep->pcb.tcp->remote_ip;
			port = ep->pcb.tcp->remote_port;
		} else {
			ip = &ep->pcb.udp->remote_ip;
			port = ep->pcb.udp->remote_port;
		}
	} else if (!ep->pcb.any) {
		ip = IP_ANY_TYPE;
		port = 0;
	} else if (is_tcp(ep)) {
		ip = &ep->pcb.tcp->local_ip;
		port = ep->pcb.tcp->local_port;
	} else {
		ip = &ep->pcb.udp->local_ip;
		port = ep->pcb.udp->local_port;
	}
	ip_to_sa(ep, ip, port, sa, len);
	return 0;
}

static int get_int(const void *val, socklen_t len, int *out)
{
	if (!val || len < (socklen_t)sizeof(int))
		return -EINVAL;
	memcpy(out, val, sizeof(int));
	return 0;
}

int tcpip_ep_setsockopt(struct tcpip_ep *ep, int level, int name, const void *val, socklen_t len)
{
	struct ep_opts *o = opts_of(ep);
	int v, rc;

	if (level == SOL_SOCKET && name == SO_LINGER) {
		struct linger l;

		if (!val || len < (socklen_t)sizeof(l))
			return -EINVAL;
		memcpy(&l, val, sizeof(l));
		ep->linger0 = l.l_onoff && l.l_linger == 0;
		return 0;
	}
	rc = get_int(val, len, &v);
	if (rc)
		return rc;
	switch (level) {
	case SOL_SOCKET:
		switch (name) {
		case SO_REUSEADDR: o->reuseaddr = v != 0; break;
		case SO_KEEPALIVE:
			if (!is_tcp(ep))
				return -ENOPROTOOPT;
			o->keepalive = v != 0;
			break;
		case SO_RCVBUF:
		case SO_SNDBUF: {
			/* Clamped, as Linux clamps to rmem_max/wmem_max. */
			unsigned b = v < (int)BUF_MIN ? BUF_MIN :
				     (size_t)v > limits.max_sock_buf ? (unsigned)limits.max_sock_buf :
				     (unsigned)v;

			if (name == SO_RCVBUF)
				ep->rcvbuf = b;
			else
				ep->sndbuf = b;
			return 0;
		}
		default: return -ENOPROTOOPT;
		}
		break;
	case IPPROTO_TCP:
		if (!is_tcp(ep))
			return -ENOPROTOOPT;
		switch (name) {
		case TCP_NODELAY: o->nodelay = v != 0; break;
		case TCP_KEEPIDLE:
		case TCP_KEEPINTVL:
			if (v < 1 || v > 32767)
				return -EINVAL;
			if (name == TCP_KEEPIDLE)
				o->keep_idle_ms = (u32_t)v * 1000u;
			else
				o->keep_intvl_ms = (u32_t)v * 1000u;
			break;
		case TCP_KEEPCNT:
			if (v < 1 || v > 127)
				return -EINVAL;
			o->keep_cnt = (u32_t)v;
			break;
		default: return -ENOPROTOOPT;
		}
		break;
	case IPPROTO_IPV6:
		if (ep->family != AF_INET6 || name != IPV6_V6ONLY)
			return -ENOPROTOOPT;
		if (ep->state != TCPIP_NEW)
			return -EINVAL;
		ep->v6only = v != 0;
		if (is_tcp(ep)) {
			IP_SET_TYPE_VAL(ep->pcb.tcp->local_ip, pcb_type(ep));
			IP_SET_TYPE_VAL(ep->pcb.tcp->remote_ip, pcb_type(ep));
		} else {
			IP_SET_TYPE_VAL(ep->pcb.udp->local_ip, pcb_type(ep));
			IP_SET_TYPE_VAL(ep->pcb.udp->remote_ip, pcb_type(ep));
		}
		return 0;
	default:
		return -ENOPROTOOPT;
	}
	apply_opts(ep);
	return 0;
}

int tcpip_ep_getsockopt(struct tcpip_ep *ep, int level, int name, void *val, socklen_t *len)
{
	struct ep_opts *o = opts_of(ep);
	int v;

	if (!val || !len)
		return -EINVAL;
	if (level == SOL_SOCKET && name == SO_LINGER) {
		struct linger l = { .l_onoff = ep->linger0, .l_linger = 0 };

		if (*len < (socklen_t)sizeof(l))
			return -EINVAL;
		memcpy(val, &l, sizeof(l));
		*len = sizeof(l);
		return 0;
	}
	switch (level) {
	case SOL_SOCKET:
		switch (name) {
		case SO_REUSEADDR: v = o->reuseaddr; break;
		case SO_KEEPALIVE: v = o->keepalive; break;
		case SO_RCVBUF: v = (int)ep->rcvbuf; break;
		case SO_SNDBUF: v = (int)ep->sndbuf; break;
		case SO_TYPE: v = ep->type; break;
		case SO_ACCEPTCONN: v = ep->state == TCPIP_LISTEN; break;
		case SO_ERROR: v = ep->err; ep->err = 0; break;
		default: return -ENOPROTOOPT;
		}
		break;
	case IPPROTO_TCP:
		if (!is_tcp(ep))
			return -ENOPROTOOPT;
		switch (name) {
		case TCP_NODELAY: v = o->nodelay; break;
		case TCP_KEEPIDLE: v = (int)((o->keep_idle_ms ? o->keep_idle_ms : TCP_KEEPIDLE_DEFAULT) / 1000u); break;
		case TCP_KEEPINTVL: v = (int)((o->keep_intvl_ms ? o->keep_intvl_ms : TCP_KEEPINTVL_DEFAULT) / 1000u); break;
		case TCP_KEEPCNT: v = (int)(o->keep_cnt ? o->keep_cnt : TCP_KEEPCNT_DEFAULT); break;
		default: return -ENOPROTOOPT;
		}
		break;
	case IPPROTO_IPV6:
		if (ep->family != AF_INET6 || name != IPV6_V6ONLY)
			return -ENOPROTOOPT;
		v = ep->v6only;
		break;
	default:
		return -ENOPROTOOPT;
	}
	if (*len < (socklen_t)sizeof(int))
		return -EINVAL;
	memcpy(val, &v, sizeof(int));
	*len = sizeof(int);
	return 0;
}
