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
 *
 * Leader/follower: a caller that must block (ns_wait) while the link is
 * idle does not sleep on its condition variable and leave the dispatcher
 * to read the link and wake it - two thread hand-offs per round trip, a
 * context switch each on a shared CPU - but waits on the link itself and
 * feeds what arrives to lwIP, as the dispatcher would; its own readiness
 * comes out of that input directly. The link is lent to one such leader at
 * a time. Two epoll sets make the loan cheap: s->epfd holds the link
 * endpoints (nic.c registers them) and the leader's kick eventfd; the
 * dispatcher waits on s->dispfd, which holds the wakeup eventfd and s->epfd
 * itself. Lending disables that nested entry (one epoll_ctl), so a frame
 * wakes the leader alone. Anything that readies the leader's wait other
 * than its own input (another thread, a timer, a close, a stop) kicks it
 * through the kick eventfd (ns_wake).
 *
 * The loan outlives the wait that took it, on a lease: a caller that got
 * its data, answers and comes back to wait finds the link still lent (no
 * epoll_ctl each way), and a request that arrives meanwhile - typically
 * while the peer, woken by our answer, runs on our CPU - wakes nobody: the
 * caller reads it when it waits again. The dispatcher renews the lease
 * every LEASE_NS while leaders keep using the link and takes it back when
 * a lease passes in which no leader's wait ended and none waits now, so
 * input with nobody waiting (the application away computing, an embedder
 * on the notify fd) is late by at most two leases. A leader blocked for
 * long keeps the link without costing the dispatcher a wakeup per lease.
 *
 * One leader at a time: other callers wait as followers on their
 * condition, woken by the leader's input. A follower so woken is the heir:
 * traffic flows to its thread now, so the leader, if it waits again first,
 * follows, and the heir leads when it next waits. Without that, a thread
 * parked in accept on an idle listener would keep leading and hand every
 * request of the busy thread over as the dispatcher used to.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "lwip/ip4_frag.h"
#include "lwip/ip6_frag.h"
#include "lwip/stats.h"
#include "clock.h"
#include "internal.h"
#include "syncookie.h"

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

/* How long a loan of the link lasts unless leaders keep using it. */
#define LEASE_NS (1000u * 1000u)

/* Stack-clock ns at which the dispatcher must wake: the next timer, or the
 * end of the link's lease if that comes first. */
static uint64_t wake_at(const struct ns_stack *s)
{
	uint64_t t = tcpip_timers_next_ns();

	return s->lent && !s->lease_parked && s->lease_until < t ? s->lease_until : t;
}

void ns_unlock(struct ns_stack *s)
{
	/* A call armed a timer (or lent the link) due before the dispatcher
	 * wakes. */
	if (s->sleeping && wake_at(s) < s->sleep_until) {
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
	    (c->max_memory && c->max_memory < NS_MIN_MEMORY) || c->busy_poll_us < -1 ||
	    c->busy_poll_us > NS_MAX_BUSY_POLL_US)
		return -EINVAL;
	if (!c->busy_poll_us)
		c->busy_poll_us = NS_DEFAULT_BUSY_POLL_US;
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
	struct epoll_event kick = { .events = EPOLLIN };
	struct epoll_event link = { .events = EPOLLIN };
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
	s->dispfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->dispfd < 0) {
		rc = -errno;
		goto fail_epoll;
	}
	s->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->wakefd < 0) {
		rc = -errno;
		goto fail_disp;
	}
	s->kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->kickfd < 0) {
		rc = -errno;
		goto fail_wake;
	}
	s->notifyfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->notifyfd < 0) {
		rc = -errno;
		goto fail_kick;
	}
	kick.data.ptr = &s->kickfd;
	link.data.ptr = &s->epfd;
	if (epoll_ctl(s->dispfd, EPOLL_CTL_ADD, s->wakefd, &ev) < 0 ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->kickfd, &kick) < 0 ||
	    epoll_ctl(s->dispfd, EPOLL_CTL_ADD, s->epfd, &link) < 0) {
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
fail_kick:
	close(s->kickfd);
fail_wake:
	close(s->wakefd);
fail_disp:
	close(s->dispfd);
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

/* Whether @nic is still one of the stack's: epoll events are read without
 * the lock, and the NIC may have been removed since. */
static bool nic_live(struct ns_stack *s, const struct ns_nic *nic)
{
	size_t i;

	for (i = 0; i < s->nnics; i++)
		if (s->nics[i] == nic)
			return true;
	return false;
}

/* Feed what the link endpoints in s->epfd reported to lwIP (lock held). */
static void dispatch_link(struct ns_stack *s, struct epoll_event *evs, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		void *ptr = evs[i].data.ptr;

		if (ptr == &s->kickfd)
			eventfd_drain(s->kickfd);
		else if (nic_live(s, ptr))
			ns_nic_rx(s, ptr);
	}
	tcpip_time_wait_fixup();
}

static void dispatch_ready(struct ns_stack *s, struct epoll_event *evs, int n)
{
	struct epoll_event link[16];
	int i, m;

	for (i = 0; i < n; i++) {
		if (!evs[i].data.ptr) {
			eventfd_drain(s->wakefd);
		} else if (!s->lent) {
			/* (Lent since epoll_wait returned: the link and its
			 * kicks are the leader's; taking them could leave it
			 * asleep.) */
			m = epoll_wait(s->epfd, link, 16, 0);
			if (m > 0)
				dispatch_link(s, link, m);
		}
	}
}

/* A lease from now; ns_unlock() wakes the dispatcher to keep it. */
static void lease_start(struct ns_stack *s)
{
	s->lease_until = tcpip_now_ns() + LEASE_NS;
	s->lead_ends_seen = s->lead_ends;
	s->lease_parked = false;
}

/* Lend the link to leaders (@lend) or give it back to the dispatcher. */
static void link_lend(struct ns_stack *s, bool lend)
{
	/* No events: the entry keeps only EPOLLERR|EPOLLHUP, which an epoll
	 * fd never reports, so s->epfd's wakeups no longer reach dispfd. */
	struct epoll_event ev = { .events = lend ? 0 : EPOLLIN, .data.ptr = &s->epfd };

	if (s->lent == lend)
		return;
	/* Cannot fail: both sets exist and s->epfd is in s->dispfd. */
	epoll_ctl(s->dispfd, EPOLL_CTL_MOD, s->epfd, &ev);
	s->lent = lend;
	if (lend)
		lease_start(s);
}

/*
 * At the dispatcher's round, once the lease is over: renew it if leaders
 * used the link during it; else take the link back - but never from a
 * leader that waits (both would read s->epfd, and the dispatcher could
 * drain the kick meant for the leader and leave it asleep): that loan is
 * parked, unchecked until the leader's wait ends, so a leader blocked for
 * long costs the dispatcher no wakeup per lease.
 */
static void lease_check(struct ns_stack *s)
{
	uint64_t now;

	if (!s->lent || s->lease_parked)
		return;
	now = tcpip_now_ns();
	if (now < s->lease_until)
		return;
	if (s->lead_ends != s->lead_ends_seen) {
		s->lead_ends_seen = s->lead_ends;
		s->lease_until = now + LEASE_NS;
	} else if (s->leader_cond) {
		s->lease_parked = true;
	} else {
		link_lend(s, false);
	}
}

/* Set on the leader's thread while it feeds its input to lwIP. Its
 * address tells threads apart (THREAD_TOKEN). */
static _Thread_local bool dispatching;
#define THREAD_TOKEN ((const void *)&dispatching)
/* Followers looked at for an heir per wakeup: the first few are enough. */
#define HEIR_SCAN 16

/* A caller waiting on its condition while another leads. */
struct ns_follower {
	struct ns_follower *next, **pprev;
	pthread_cond_t *cond;
	const void *thread;	/* THREAD_TOKEN of the caller */
};

static bool heir_valid(const struct ns_stack *s);

void ns_wake(struct ns_stack *s, pthread_cond_t *cond, bool all)
{
	if (all)
		pthread_cond_broadcast(cond);
	else
		pthread_cond_signal(cond);
	/* (The leader's own input comes after it stopped waiting, with
	 * leader_cond cleared: it needs no kick.) */
	if (s->leader_cond == cond) {
		eventfd_signal(s->kickfd);
	} else if (dispatching && !heir_valid(s)) {
		/* The leader's input readies a follower: traffic flows to
		 * that thread now, so it leads next and reads its own. */
		const struct ns_follower *f;
		int i = 0;

		for (f = s->followers; f && i < HEIR_SCAN; f = f->next, i++)
			if (f->cond == cond) {
				s->heir = f->thread;
				s->heir_since = tcpip_now_ns();
				break;
			}
	}
}

/* Milliseconds from now to @deadline, rounded up; 0 once it has passed. */
static int ms_until(const struct timespec *deadline)
{
	struct timespec now;
	int64_t ns;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ns = (int64_t)(deadline->tv_sec - now.tv_sec) * 1000000000 + (deadline->tv_nsec - now.tv_nsec);
	if (ns <= 0)
		return 0;
	return ns / 1000000 >= INT32_MAX ? INT32_MAX : (int)((ns + 999999) / 1000000);
}

/* Whether @s->heir still holds: a claim lapses after a lease, so a thread
 * that never waits again cannot keep every other one from leading. */
static bool heir_valid(const struct ns_stack *s)
{
	return s->heir && tcpip_now_ns() - s->heir_since < LEASE_NS;
}

static bool may_lead(struct ns_stack *s)
{
	if (!s->running || s->stopping || s->leader_cond)
		return false;
	return !heir_valid(s) || s->heir == THREAD_TOKEN;
}

/* Whether @n events hold link input (not only the leader's kick). */
static bool link_input(const struct ns_stack *s, const struct epoll_event *evs, int n)
{
	for (int i = 0; i < n; i++)
		if (evs[i].data.ptr != &s->kickfd)
			return true;
	return false;
}

/*
 * The leader's wait on the link (lock not held): while the link is busy,
 * poll it for up to cfg.busy_poll_us before sleeping - the sender of a steady
 * stream then finds nobody to wake (on this VM kind the wakeup, an
 * interrupt to an idle CPU, took ~30% of a kernel sender's CPU and kept rx
 * at 65520 near 0.66x the kernel's veth; polling 50 us: 0.84x). Between
 * looks the CPU is yielded to anything runnable on it (a peer on the same
 * CPU, as in a pinned round trip). The sleep that follows ends at
 * @deadline (NULL: none). Sets *@busy when link input came within the
 * poll's time of the start, *@polled when the poll found it; a kick is
 * neither. (Process time, not the stack clock: that one stands still
 * while the stack is frozen after a checkpoint.)
 */
static int link_wait(struct ns_stack *s, struct epoll_event *evs, const struct timespec *deadline,
		     bool *busy, bool *polled)
{
	/* -1 (never) counts as no time at all. */
	uint64_t window = s->cfg.busy_poll_us > 0 ? (uint64_t)s->cfg.busy_poll_us * 1000 : 0;
	uint64_t t0 = tw_mono_ns();
	int n = 0;

	*polled = false;
	if (window && s->link_busy) {
		do {
			n = epoll_wait(s->epfd, evs, 16, 0);
			if (n) {
				*polled = n > 0 && link_input(s, evs, n);
				break;
			}
			sched_yield();
		} while (tw_mono_ns() - t0 < window);
	}
	if (n != 0) {
		*busy = *polled;
		return n;
	}
	n = epoll_wait(s->epfd, evs, 16, deadline ? ms_until(deadline) : -1);
	*busy = n > 0 && link_input(s, evs, n) && tw_mono_ns() - t0 <= window;
	return n;
}

int ns_wait(struct ns_stack *s, pthread_cond_t *cond, const struct timespec *deadline)
{
	struct epoll_event evs[16];
	bool busy, polled;
	int n;

	if (!may_lead(s)) {
		/* A follower: the leader's input or the dispatcher's wakes it
		 * through @cond. */
		struct ns_follower f = { .cond = cond, .thread = THREAD_TOKEN };

		f.next = s->followers;
		f.pprev = &s->followers;
		if (f.next)
			f.next->pprev = &f.next;
		s->followers = &f;
		n = tcpip_cond_wait(cond, deadline);
		*f.pprev = f.next;
		if (f.next)
			f.next->pprev = f.pprev;
		return n;
	}
	s->heir = NULL;
	if (deadline && !ms_until(deadline))
		return -ETIMEDOUT;
	s->leader_cond = cond;
	link_lend(s, true);
	ns_unlock(s);
	n = link_wait(s, evs, deadline, &busy, &polled);
	ns_lock(s);
	s->leader_cond = NULL;
	s->lead_ends++;
	s->link_busy = busy;
	if (polled)
		s->stats.busy_poll_hits++;
	if (s->running && !s->stopping) {
		if (n > 0) {
			dispatching = true;
			dispatch_link(s, evs, n);
			dispatching = false;
		}
		if (s->lease_parked)
			lease_start(s);
	} else {
		link_lend(s, false);	/* stopped: nobody reads the link */
	}
	return n == 0 && deadline && !ms_until(deadline) ? -ETIMEDOUT : 0;
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
	lease_check(s);
	if (block) {
		s->sleep_until = wake_at(s);
		timeout = tcpip_timers_next_ms();
		if (s->sleep_until < tcpip_timers_next_ns()) {
			uint64_t now = tcpip_now_ns(), ms;

			/* The lease ends first. */
			ms = s->sleep_until <= now ? 0 : (s->sleep_until - now + 999999) / 1000000;
			timeout = ms > INT32_MAX ? INT32_MAX : (int)ms;
		}
		s->sleeping = true;
	}
	ns_unlock(s);
	n = epoll_wait(s->dispfd, evs, 16, timeout);
	ns_lock(s);
	s->sleeping = false;
	if (n > 0)
		dispatch_ready(s, evs, n);
}

static void *dispatcher(void *arg)
{
	struct ns_stack *s = arg;

	ns_lock(s);
	/* A loan from before a stop ended with it (unless its leader has yet
	 * to wake from the stop's kick: it gives the link back itself). */
	if (!s->leader_cond)
		link_lend(s, false);
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
	/* A leader must stop reading the link too. */
	if (s->leader_cond)
		eventfd_signal(s->kickfd);
	ns_unlock(s);
	pthread_join(t, NULL);
	ns_lock(s);
	s->running = false;
	/* A stopped stack is driven by ns_stack_run_once() alone. */
	if (!s->leader_cond)
		link_lend(s, false);
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
	close(s->dispfd);
	close(s->wakefd);
	close(s->kickfd);
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
	struct tcpip_syncookie_stats sc;

	if (!s || !st)
		return -EINVAL;
	ns_lock(s);
	*st = s->stats;
	st->udp_rcvbuf_drops = tcpip_ep_udp_drops();
	tcpip_syncookie_stats(&sc);
	st->syncookies_sent = sc.sent;
	st->syncookies_validated = sc.validated;
	st->syncookies_failed = sc.failed;
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
