/* SPDX-License-Identifier: MIT */
/*
 * stack.c - the stack object: lifecycle, the stack lock as the API sees
 * it, the dispatcher thread, logging, counters, and the public wrappers of
 * the link endpoints.
 *
 * The dispatcher sleeps in epoll_wait on the endpoints' fds and a wakeup
 * eventfd, for exactly as long as the next protocol timer allows. An API
 * call that arms an earlier timer (a connect, a send) wakes it on unlock, so
 * no timer waits for an unrelated event and nothing polls on a fixed tick.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lwip/ip4_frag.h"
#include "lwip/ip6_frag.h"
#include "lwip/stats.h"
#include "clock.h"
#include "internal.h"

static_assert(NS_TAP_CREATE == TAP_CREATE, "public and tap/ flags differ");

static struct ns_stack *the_stack;

static void eventfd_signal(int fd)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is already non-zero: still signalled. */
	if (write(fd, &one, sizeof(one)) < 0) {
	}
}

static void eventfd_drain(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0) {
	}
}

void ns_lock(struct ns_stack *s)
{
	(void)s;
	tcpip_lock();
}

void ns_unlock(struct ns_stack *s)
{
	/* A call armed a timer that falls due before the dispatcher wakes. */
	if (s->sleeping && tcpip_timers_next_ns() < s->sleep_until) {
		s->sleeping = false;
		eventfd_signal(s->wakefd);
	}
	if (s->notify_dirty) {
		s->notify_dirty = false;
		eventfd_signal(s->notifyfd);
	}
	tcpip_unlock();
}

void ns_log(struct ns_stack *s, int level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (level > s->cfg.log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (s->cfg.log)
		s->cfg.log(s->cfg.log_arg, level, line);
	else
		fprintf(stderr, "netstack: %s\n", line);
}

/* Fill in the defaults of @c's limits. Return: 0, -EINVAL if one is out
 * of range. */
static int limits_settle(struct ns_stack_config *c)
{
	if (c->max_sockets > (1u << 24) || c->max_backlog > NS_DEFAULT_MAX_BACKLOG ||
	    (c->max_sock_buf && (c->max_sock_buf < NS_MIN_SOCK_BUF || c->max_sock_buf > NS_MAX_SOCK_BUF)) ||
	    (c->max_memory && c->max_memory < NS_MIN_MEMORY))
		return -EINVAL;
	if (!c->max_sockets)
		c->max_sockets = NS_DEFAULT_MAX_SOCKETS;
	if (!c->max_backlog)
		c->max_backlog = NS_DEFAULT_MAX_BACKLOG;
	if (!c->max_sock_buf)
		c->max_sock_buf = NS_DEFAULT_MAX_SOCK_BUF;
	if (!c->max_memory)
		c->max_memory = NS_DEFAULT_MAX_MEMORY;
	if (c->max_rx_total > c->max_memory)
		return -EINVAL;
	if (!c->max_rx_total)
		c->max_rx_total = c->max_memory / 2;
	return 0;
}

/* Make lwIP and the endpoints obey @c's limits (lock held). */
static void limits_apply(const struct ns_stack_config *c)
{
	struct tcpip_ep_limits l = {
		.max_backlog = c->max_backlog,
		.max_sock_buf = c->max_sock_buf,
		.max_rx_total = c->max_rx_total,
	};

	tcpip_ep_set_limits(&l);
	tcpip_mem_set_limit(c->max_memory);
}

int ns_stack_new(const struct ns_stack_config *cfg, struct ns_stack **stackp)
{
	struct ns_stack_config settled = { 0 };
	struct ns_stack *s;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	unsigned i;
	int rc;

	if (!stackp)
		return -EINVAL;
	if (cfg)
		settled = *cfg;
	if (limits_settle(&settled))
		return -EINVAL;
	tcpip_init();
	tcpip_lock();
	if (the_stack) {
		tcpip_unlock();
		return -EBUSY;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		rc = -ENOMEM;
		goto fail_unlock;
	}
	s->cfg = settled;
	if (!s->cfg.log_level)
		s->cfg.log_level = NS_LOG_INFO;
	s->next_nic_id = 1;
	s->nsocks_cap = s->cfg.max_sockets;
	s->socks = calloc(s->nsocks_cap, sizeof(*s->socks));
	s->rxbuf = malloc((size_t)NS_RX_BATCH * TAP_FRAME_MAX);
	if (!s->socks || !s->rxbuf) {
		rc = -ENOMEM;
		goto fail_alloc;
	}
	for (i = 0; i < NS_RX_BATCH; i++) {
		s->rx[i].data = s->rxbuf + (size_t)i * TAP_FRAME_MAX;
		s->rx[i].cap = TAP_FRAME_MAX;
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		rc = -errno;
		goto fail_alloc;
	}
	s->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->wakefd < 0) {
		rc = -errno;
		goto fail_epoll;
	}
	s->notifyfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->notifyfd < 0) {
		rc = -errno;
		goto fail_wake;
	}
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wakefd, &ev) < 0) {
		rc = -errno;
		goto fail_notify;
	}
	rc = tcpip_cond_init(&s->ckpt_cond);
	if (rc)
		goto fail_notify;
	limits_apply(&s->cfg);
	the_stack = s;
	tcpip_unlock();
	*stackp = s;
	return 0;

fail_notify:
	close(s->notifyfd);
fail_wake:
	close(s->wakefd);
fail_epoll:
	close(s->epfd);
fail_alloc:
	free(s->rxbuf);
	free(s->socks);
	free(s);
fail_unlock:
	tcpip_unlock();
	return rc;
}

static void dispatch_ready(struct ns_stack *s, struct epoll_event *evs, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		struct ns_nic *nic = evs[i].data.ptr;

		if (!nic)
			eventfd_drain(s->wakefd);
		else
			ns_nic_rx(s, nic);
	}
}

/*
 * One round of the dispatcher, with the lock held: handle endpoint
 * failures found on the transmit path (outside lwIP's output path), fire due
 * timers, then wait for endpoint input - until the next timer is due when
 * @block, else not at all - and feed what arrived to lwIP. The lock is
 * released while waiting, so API calls proceed meanwhile.
 */
void ns_stack_run_once(struct ns_stack *s, bool block)
{
	struct epoll_event evs[16];
	int timeout = 0, n;
	size_t i;

	for (i = 0; i < s->nnics; i++)
		if (s->nics[i]->failed)
			ns_nic_handle_failure(s, s->nics[i]);
	tcpip_timers_run();
	if (block) {
		timeout = tcpip_timers_next_ms();
		s->sleep_until = tcpip_timers_next_ns();
		s->sleeping = true;
	}
	ns_unlock(s);
	n = epoll_wait(s->epfd, evs, 16, timeout);
	ns_lock(s);
	s->sleeping = false;
	if (n > 0) {
		dispatch_ready(s, evs, n);
		tcpip_time_wait_fixup();
	}
}

static void *dispatcher(void *arg)
{
	struct ns_stack *s = arg;

	ns_lock(s);
	while (!s->stopping)
		ns_stack_run_once(s, true);
	ns_unlock(s);
	return NULL;
}

int ns_stack_start(struct ns_stack *s)
{
	bool restored;
	int rc;

	if (!s)
		return -EINVAL;
	ns_lock(s);
	if (s->running) {
		ns_unlock(s);
		return -EALREADY;
	}
	s->stopping = false;
	if (s->tx_frozen) {
		/* Resuming a stack that stayed stopped after its checkpoint. */
		s->tx_frozen = false;
		tw_clock_thaw(tcpip_clock());
	}
	rc = -pthread_create(&s->thread, NULL, dispatcher, s);
	if (rc == 0)
		s->running = true;
	restored = rc == 0 && s->restored;
	s->restored = false;
	ns_unlock(s);
	/* A restored stack serves from here on: its post-restore hooks run
	 * once, without the lock. */
	if (restored)
		rc = ns_hooks_run(s, NS_HOOK_POST_RESTORE);
	return rc;
}

int ns_stack_stop(struct ns_stack *s)
{
	pthread_t t;

	if (!s)
		return -EINVAL;
	ns_lock(s);
	if (!s->running) {
		ns_unlock(s);
		return -EALREADY;
	}
	if (pthread_equal(pthread_self(), s->thread)) {
		ns_unlock(s);
		return -EDEADLK;
	}
	s->stopping = true;
	t = s->thread;
	eventfd_signal(s->wakefd);
	ns_unlock(s);
	pthread_join(t, NULL);
	ns_lock(s);
	s->running = false;
	ns_unlock(s);
	return 0;
}

/* lwIP keeps half-reassembled datagrams until they age out; with the
 * NICs gone none can complete, so age them all out now. */
static void release_reassembly(void)
{
	int i;

	for (i = 0; i <= IP_REASS_MAXAGE || i <= IPV6_REASS_MAXAGE; i++) {
		ip_reass_tmr();
		ip6_reass_tmr();
	}
}

void ns_stack_free(struct ns_stack *s)
{
	if (!s)
		return;
	if (s->running)
		ns_stack_stop(s);
	/* The page loader first: its reads land in the regions it unmaps. */
	if (s->memfile_free)
		s->memfile_free(s->memfile);
	ns_lock(s);
	ns_socks_free_all(s);
	while (s->nnics)
		ns_nic_destroy(s, s->nics[s->nnics - 1]);
	release_reassembly();
	free(s->nics);
	free(s->socks);
	free(s->rxbuf);
	close(s->epfd);
	close(s->wakefd);
	close(s->notifyfd);
	pthread_cond_destroy(&s->ckpt_cond);
	the_stack = NULL;
	tcpip_unlock();
	free(s);
}

int ns_stack_notify_fd(struct ns_stack *s)
{
	int fd;

	if (!s)
		return -EINVAL;
	ns_lock(s);
	s->notify_used = true;
	fd = s->notifyfd;
	ns_unlock(s);
	return fd;
}

int ns_stack_stats(struct ns_stack *s, struct ns_stats *st)
{
	if (!s || !st)
		return -EINVAL;
	ns_lock(s);
	*st = s->stats;
	st->udp_rcvbuf_drops = tcpip_ep_udp_drops();
	st->ip_chkerr = lwip_stats.ip.chkerr;
	st->ip_lenerr = lwip_stats.ip.lenerr + lwip_stats.ip6.lenerr;
	st->tcp_chkerr = lwip_stats.tcp.chkerr;
	st->udp_chkerr = lwip_stats.udp.chkerr;
	/* lwIP counts an ICMPv4 checksum error in icmp.chkerr alone (ICMPv6
	 * counts it in icmp6.drop as well): it is a drop all the same. */
	st->rx_dropped = lwip_stats.link.drop + lwip_stats.etharp.drop + lwip_stats.ip.drop +
			 lwip_stats.ip6.drop + lwip_stats.icmp.drop + lwip_stats.icmp.chkerr +
			 lwip_stats.icmp6.drop +
			 lwip_stats.tcp.drop + lwip_stats.udp.drop + lwip_stats.nd6.drop +
			 lwip_stats.ip_frag.drop + lwip_stats.ip6_frag.drop;
	ns_unlock(s);
	return 0;
}

int ns_stack_usage(struct ns_stack *s, struct ns_usage *u)
{
	struct tcpip_mem_usage m;
	size_t queued;

	if (!s || !u)
		return -EINVAL;
	ns_lock(s);
	tcpip_mem_usage(&m);
	tcpip_ep_usage(&queued, &u->rx_refused);
	u->sockets = s->nsocks;
	u->max_sockets = s->cfg.max_sockets;
	u->sock_refused = s->sock_refused;
	u->mem_used = m.used;
	u->mem_peak = m.peak;
	u->max_memory = s->cfg.max_memory;
	u->mem_refused = m.refused;
	u->mem_pruned = m.pruned;
	u->rx_queued = queued;
	u->max_rx_total = s->cfg.max_rx_total;
	ns_unlock(s);
	return 0;
}

/* --- link endpoints: the public face of tap/ --- */

int ns_endpoint_tap_open(const char *name, unsigned flags, struct ns_endpoint **epp)
{
	if (!name || !epp || (flags & ~NS_TAP_CREATE))
		return -EINVAL;
	return tap_tap_open(name, flags, epp);
}

int ns_endpoint_fd_open(int fd, struct ns_endpoint **epp)
{
	if (!epp) {
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	return tap_fd_open(fd, epp);
}

int ns_endpoint_channel_new(struct ns_endpoint **epp)
{
	if (!epp)
		return -EINVAL;
	return tap_channel_new(epp);
}

int ns_channel_inject(struct ns_endpoint *ep, const void *frame, size_t len)
{
	if (!ep || !frame)
		return -EINVAL;
	return tap_channel_inject(ep, frame, len);
}

ssize_t ns_channel_read(struct ns_endpoint *ep, void *buf, size_t cap)
{
	if (!ep || (!buf && cap))
		return -EINVAL;
	return tap_channel_read(ep, buf, cap);
}

void ns_endpoint_free(struct ns_endpoint *ep)
{
	tap_endpoint_destroy(ep);
}
