/* SPDX-License-Identifier: MIT */
/*
 * socket.c - the socket table and the BSD-like socket calls: numbers,
 * blocking and O_NONBLOCK semantics, timeouts, poll, and the readiness
 * notifications that wake blocked callers.
 *
 * Waiting: a call that cannot proceed (the endpoint says -EAGAIN) waits
 * through ns_wait() on its socket's condition variable with the stack lock
 * released - or, as the leader, on the link itself (stack.c); ns_poll()
 * links a waiter into every socket it watches. Endpoints call sock_notify()
 * whenever readiness may have changed, which wakes (ns_wake()) exactly the
 * callers of that socket. A socket closed while others wait on it is freed by the last
 * one to leave (refs), and they return -EBADF.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <netinet/tcp.h>
/* The socket option of that name; lwIP's TCP_MSS is a setting. */
#undef TCP_MSS

#include "clock.h"
#include "internal.h"
#include "state.h"

struct ns_pollwait {
	pthread_cond_t cond;
	bool fired;
};

static void sock_notify(struct tcpip_ep *ep, void *owner)
{
	struct ns_sock *k = owner;
	struct ns_waitlink *l;
	(void)ep;

	ns_wake(k->stack, &k->cond, true);
	for (l = k->waiters.next; l != &k->waiters; l = l->next) {
		l->w->fired = true;
		ns_wake(k->stack, &l->w->cond, false);
	}
}

/* Readiness changed somewhere: the embedder's notify fd fires on unlock. */
static void mark_notify(struct ns_stack *s)
{
	if (s->notify_used)
		s->notify_dirty = true;
}

static void sock_notify_stack(struct tcpip_ep *ep, void *owner)
{
	sock_notify(ep, owner);
	mark_notify(((struct ns_sock *)owner)->stack);
}

static void sock_release(struct ns_sock *k)
{
	pthread_cond_destroy(&k->cond);
	free(k);
}

static struct ns_sock *sock_get(struct ns_stack *s, int id)
{
	if (id < 0 || (unsigned)id >= s->nsocks_cap)
		return NULL;
	return s->socks[id];
}

/* The lowest free socket number from the hint on, or -EMFILE (counted). */
static int sock_free_slot(struct ns_stack *s)
{
	unsigned i, id;

	if (s->nsocks < s->nsocks_cap) {
		for (i = 0; i < s->nsocks_cap; i++) {
			id = (s->sock_hint + i) % s->nsocks_cap;
			if (!s->socks[id])
				return (int)id;
		}
	}
	s->sock_refused++;
	return -EMFILE;
}

/* Give @ep socket number @want (or any free one when negative).
 * Return: the number, -EMFILE, -EEXIST, -ENOMEM. */
static int sock_install_at(struct ns_stack *s, struct tcpip_ep *ep, bool nonblock, int want)
{
	struct ns_sock *k;
	int slot = want >= 0 ? want : sock_free_slot(s);
	unsigned id;

	if (slot < 0)
		return slot;
	if ((unsigned)slot >= s->nsocks_cap)
		return -EMFILE;
	if (s->socks[slot])
		return -EEXIST;
	id = (unsigned)slot;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	if (tcpip_cond_init(&k->cond)) {
		free(k);
		return -ENOMEM;
	}
	k->id = (int)id;
	k->stack = s;
	k->ep = ep;
	k->nonblock = nonblock;
	k->waiters.next = k->waiters.prev = &k->waiters;
	ep->notify = sock_notify_stack;
	ep->owner = k;
	s->socks[id] = k;
	s->nsocks++;
	if (want < 0)
		s->sock_hint = id + 1;
	return (int)id;
}

static int sock_install(struct ns_stack *s, struct tcpip_ep *ep, bool nonblock)
{
	return sock_install_at(s, ep, nonblock, -1);
}

/*
 * Wait until @k is ready for @events (or in error or hung up), with the
 * lock released. Return: 0 when ready, -EAGAIN at the timeout (as Linux's
 * SO_RCVTIMEO), -EBADF when the socket was closed meanwhile.
 */
static int sock_wait(struct ns_sock *k, unsigned events, int64_t timeout_ms)
{
	struct timespec deadline;
	int rc = 0;

	if (timeout_ms > 0)
		tw_deadline_after(&deadline, timeout_ms);
	k->refs++;
	while (!k->closed && !(tcpip_ep_poll(k->ep) & (events | POLLERR | POLLHUP))) {
		if (ns_wait(k->stack, &k->cond, timeout_ms > 0 ? &deadline : NULL) == -ETIMEDOUT) {
			rc = -EAGAIN;
			break;
		}
	}
	k->refs--;
	if (k->closed) {
		rc = -EBADF;
		if (!k->refs)
			sock_release(k);
	}
	return rc;
}

#define SOCK_ENTER(s, sock, k) \
	do { \
		if (!(s)) \
			return -EINVAL; \
		ns_lock(s); \
		(k) = sock_get((s), (sock)); \
		if (!(k)) { \
			ns_unlock(s); \
			return -EBADF; \
		} \
	} while (0)

int ns_socket(struct ns_stack *s, int domain, int type, int protocol)
{
	struct tcpip_ep *ep;
	bool nonblock = type & SOCK_NONBLOCK;
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC), rc;

	if (!s)
		return -EINVAL;
	if (domain != AF_INET && domain != AF_INET6)
		return -EAFNOSUPPORT;
	if (base != SOCK_STREAM && base != SOCK_DGRAM)
		return -EPROTONOSUPPORT;
	if (protocol && !(base == SOCK_STREAM && protocol == IPPROTO_TCP) &&
	    !(base == SOCK_DGRAM && protocol == IPPROTO_UDP))
		return -EPROTONOSUPPORT;
	ns_lock(s);
	rc = tcpip_ep_new(domain, base, NULL, NULL, &ep);
	if (!rc) {
		rc = sock_install(s, ep, nonblock);
		if (rc < 0)
			tcpip_ep_close(ep);
	}
	ns_unlock(s);
	return rc;
}

int ns_bind(struct ns_stack *s, int sock, const struct sockaddr *addr, socklen_t len)
{
	struct ns_sock *k;
	int rc;

	SOCK_ENTER(s, sock, k);
	rc = tcpip_ep_bind(k->ep, addr, len);
	ns_unlock(s);
	return rc;
}

int ns_listen(struct ns_stack *s, int sock, int backlog)
{
	struct ns_sock *k;
	int rc;

	SOCK_ENTER(s, sock, k);
	rc = tcpip_ep_listen(k->ep, backlog);
	ns_unlock(s);
	return rc;
}

int ns_accept(struct ns_stack *s, int sock, struct sockaddr *addr, socklen_t *len, int flags)
{
	struct ns_sock *k;
	struct tcpip_ep *child;
	int rc;

	if ((addr && !len) || (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)))
		return -EINVAL;
	SOCK_ENTER(s, sock, k);
	for (;;) {
		/* No number for it: leave the connection queued, as Linux does. */
		rc = sock_free_slot(s);
		if (rc < 0)
			break;
		rc = tcpip_ep_accept(k->ep, &child);
		if (rc != -EAGAIN || k->nonblock)
			break;
		rc = sock_wait(k, POLLIN, k->rcvtimeo_ms);
		if (rc)
			break;
	}
	if (rc == 0) {
		rc = sock_install(s, child, flags & SOCK_NONBLOCK);
		if (rc < 0)
			tcpip_ep_close(child);
		else if (addr)
			tcpip_ep_name(child, true, addr, len);
	}
	ns_unlock(s);
	return rc;
}

int ns_connect(struct ns_stack *s, int sock, const struct sockaddr *addr, socklen_t len)
{
	struct ns_sock *k;
	int rc;

	SOCK_ENTER(s, sock, k);
	rc = tcpip_ep_connect(k->ep, addr, len);
	if (rc == -EINPROGRESS && !k->nonblock) {
		rc = sock_wait(k, POLLOUT, k->sndtimeo_ms);
		if (rc == 0)
			rc = tcpip_ep_connect_result(k->ep);
		else if (rc == -EAGAIN)
			rc = -EINPROGRESS;
	}
	ns_unlock(s);
	return rc;
}

static bool valid_flags(int flags, int allowed)
{
	return !(flags & ~allowed);
}

ssize_t ns_sendto(struct ns_stack *s, int sock, const void *buf, size_t len, int flags,
		  const struct sockaddr *to, socklen_t tolen)
{
	const uint8_t *p = buf;
	struct ns_sock *k;
	size_t done = 0;
	ssize_t n = 0;

	if ((!buf && len) || !valid_flags(flags, MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE))
		return -EINVAL;
	SOCK_ENTER(s, sock, k);
	for (;;) {
		n = tcpip_ep_send(k->ep, p + done, len - done, to, tolen);
		if (n > 0)
			done += (size_t)n;
		if (done == len || (n < 0 && n != -EAGAIN) || k->ep->type == SOCK_DGRAM)
			break;
		if (k->nonblock || (flags & MSG_DONTWAIT))
			break;
		n = sock_wait(k, POLLOUT, k->sndtimeo_ms);
		if (n)
			break;
	}
	ns_unlock(s);
	/* A stream reports what it queued before an error, as Linux does. */
	return done ? (ssize_t)done : n;
}

ssize_t ns_send(struct ns_stack *s, int sock, const void *buf, size_t len, int flags)
{
	return ns_sendto(s, sock, buf, len, flags, NULL, 0);
}

ssize_t ns_recvfrom(struct ns_stack *s, int sock, void *buf, size_t len, int flags,
		    struct sockaddr *from, socklen_t *fromlen)
{
	uint8_t *p = buf;
	struct ns_sock *k;
	size_t done = 0;
	ssize_t n;
	bool dgram;

	if ((!buf && len) || (from && !fromlen) ||
	    !valid_flags(flags, MSG_DONTWAIT | MSG_PEEK | MSG_WAITALL | MSG_NOSIGNAL | MSG_TRUNC))
		return -EINVAL;
	SOCK_ENTER(s, sock, k);
	dgram = k->ep->type == SOCK_DGRAM;
	for (;;) {
		size_t full = 0;

		n = tcpip_ep_recv(k->ep, p + done, len - done, flags & MSG_PEEK,
				  done ? NULL : from, fromlen, &full);
		if (n > 0) {
			if (dgram) {
				if (flags & MSG_TRUNC)
					n = (ssize_t)full;
				break;
			}
			done += (size_t)n;
			if (done == len || !(flags & MSG_WAITALL) || (flags & MSG_PEEK))
				break;
			continue;
		}
		if (n != -EAGAIN || k->nonblock || (flags & MSG_DONTWAIT) || len == 0)
			break;
		n = sock_wait(k, POLLIN, k->rcvtimeo_ms);
		if (n)
			break;
	}
	ns_unlock(s);
	if (dgram)
		return n;
	return done ? (ssize_t)done : n;
}

ssize_t ns_recv(struct ns_stack *s, int sock, void *buf, size_t len, int flags)
{
	return ns_recvfrom(s, sock, buf, len, flags, NULL, NULL);
}

int ns_shutdown(struct ns_stack *s, int sock, int how)
{
	struct ns_sock *k;
	int rc;

	SOCK_ENTER(s, sock, k);
	rc = tcpip_ep_shutdown(k->ep, how);
	ns_unlock(s);
	return rc;
}

static void sock_close_locked(struct ns_stack *s, struct ns_sock *k)
{
	s->socks[k->id] = NULL;
	s->nsocks--;
	if ((unsigned)k->id < s->sock_hint)
		s->sock_hint = (unsigned)k->id;
	k->closed = true;
	tcpip_ep_close(k->ep);
	k->ep = NULL;
	sock_notify(NULL, k);
	if (!k->refs)
		sock_release(k);
}

int ns_close(struct ns_stack *s, int sock)
{
	struct ns_sock *k;

	SOCK_ENTER(s, sock, k);
	sock_close_locked(s, k);
	mark_notify(s);
	ns_unlock(s);
	return 0;
}

void ns_socks_free_all(struct ns_stack *s)
{
	unsigned i;

	for (i = 0; i < s->nsocks_cap; i++)
		if (s->socks[i])
			sock_close_locked(s, s->socks[i]);
}

int ns_getsockname(struct ns_stack *s, int sock, struct sockaddr *addr, socklen_t *len)
{
	struct ns_sock *k;
	int rc;

	if (!addr || !len)
		return -EINVAL;
	SOCK_ENTER(s, sock, k);
	rc = tcpip_ep_name(k->ep, false, addr, len);
	ns_unlock(s);
	return rc;
}

int ns_getpeername(struct ns_stack *s, int sock, struct sockaddr *addr, socklen_t *len)
{
	struct ns_sock *k;
	int rc;

	if (!addr || !len)
		return -EINVAL;
	SOCK_ENTER(s, sock, k);
	rc = tcpip_ep_name(k->ep, true, addr, len);
	ns_unlock(s);
	return rc;
}

static int timeo_get(int64_t ms, void *val, socklen_t *len)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (*len < (socklen_t)sizeof(tv))
		return -EINVAL;
	memcpy(val, &tv, sizeof(tv));
	*len = sizeof(tv);
	return 0;
}

static int timeo_set(int64_t *ms, const void *val, socklen_t len)
{
	struct timeval tv;

	if (!val || len < (socklen_t)sizeof(tv))
		return -EINVAL;
	memcpy(&tv, val, sizeof(tv));
	if (tv.tv_sec < 0 || tv.tv_usec < 0 || tv.tv_usec >= 1000000)
		return -EDOM;
	*ms = (int64_t)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
	return 0;
}

int ns_setsockopt(struct ns_stack *s, int sock, int level, int name, const void *val, socklen_t len)
{
	struct ns_sock *k;
	int rc;

	SOCK_ENTER(s, sock, k);
	if (level == SOL_SOCKET && name == SO_RCVTIMEO)
		rc = timeo_set(&k->rcvtimeo_ms, val, len);
	else if (level == SOL_SOCKET && name == SO_SNDTIMEO)
		rc = timeo_set(&k->sndtimeo_ms, val, len);
	else
		rc = tcpip_ep_setsockopt(k->ep, level, name, val, len);
	ns_unlock(s);
	return rc;
}

int ns_getsockopt(struct ns_stack *s, int sock, int level, int name, void *val, socklen_t *len)
{
	struct ns_sock *k;
	int rc;

	if (!val || !len)
		return -EINVAL;
	SOCK_ENTER(s, sock, k);
	if (level == SOL_SOCKET && name == SO_RCVTIMEO)
		rc = timeo_get(k->rcvtimeo_ms, val, len);
	else if (level == SOL_SOCKET && name == SO_SNDTIMEO)
		rc = timeo_get(k->sndtimeo_ms, val, len);
	else
		rc = tcpip_ep_getsockopt(k->ep, level, name, val, len);
	ns_unlock(s);
	return rc;
}

int ns_set_nonblocking(struct ns_stack *s, int sock, bool on)
{
	struct ns_sock *k;

	SOCK_ENTER(s, sock, k);
	k->nonblock = on;
	ns_unlock(s);
	return 0;
}

/* --- poll --- */

static int poll_scan(struct ns_stack *s, struct pollfd *fds, nfds_t nfds)
{
	nfds_t i;
	int ready = 0;

	for (i = 0; i < nfds; i++) {
		struct ns_sock *k;

		fds[i].revents = 0;
		if (fds[i].fd < 0)
			continue;
		k = sock_get(s, fds[i].fd);
		if (!k)
			fds[i].revents = POLLNVAL;
		else
			fds[i].revents = (short)(tcpip_ep_poll(k->ep) &
						 ((unsigned)fds[i].events | POLLERR | POLLHUP));
		if (fds[i].revents)
			ready++;
	}
	return ready;
}

int ns_poll(struct ns_stack *s, struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
	struct ns_waitlink *links = NULL;
	struct ns_sock **held = NULL;
	struct ns_pollwait w;
	struct timespec deadline;
	nfds_t i;
	int ready;

	if (!s || (!fds && nfds) || nfds > s->nsocks_cap)
		return -EINVAL;
	if (timeout_ms > 0)
		tw_deadline_after(&deadline, timeout_ms);
	ns_lock(s);
	ready = poll_scan(s, fds, nfds);
	if (ready || timeout_ms == 0 || nfds == 0)
		goto out;
	links = calloc(nfds, sizeof(*links));
	held = calloc(nfds, sizeof(*held));
	if (!links || !held) {
		ready = -ENOMEM;
		goto out;
	}
	tcpip_cond_init(&w.cond);
	for (i = 0; i < nfds; i++) {
		struct ns_sock *k = fds[i].fd >= 0 ? sock_get(s, fds[i].fd) : NULL;

		if (!k)
			continue;
		links[i].w = &w;
		links[i].next = k->waiters.next;
		links[i].prev = &k->waiters;
		k->waiters.next->prev = &links[i];
		k->waiters.next = &links[i];
		k->refs++;
		held[i] = k;
	}
	for (;;) {
		w.fired = false;
		while (!w.fired) {
			if (ns_wait(s, &w.cond, timeout_ms > 0 ? &deadline : NULL) == -ETIMEDOUT)
				break;
		}
		ready = poll_scan(s, fds, nfds);
		if (ready || !w.fired)
			break;
	}
	for (i = 0; i < nfds; i++) {
		struct ns_sock *k = held[i];

		if (!k)
			continue;
		links[i].prev->next = links[i].next;
		links[i].next->prev = links[i].prev;
		if (--k->refs == 0 && k->closed)
			sock_release(k);
	}
	pthread_cond_destroy(&w.cond);
out:
	ns_unlock(s);
	free(links);
	free(held);
	return ready;
}

/* --- introspection --- */

static enum ns_socket_state public_state(const struct tcpip_ep *ep)
{
	switch (ep->state) {
	case TCPIP_NEW: return NS_SOCKET_UNBOUND;
	case TCPIP_BOUND: return NS_SOCKET_BOUND;
	case TCPIP_LISTEN: return NS_SOCKET_LISTENING;
	case TCPIP_CONNECTING: return NS_SOCKET_CONNECTING;
	case TCPIP_CONNECTED:
		return ep->type == SOCK_STREAM && !ep->pcb.any ? NS_SOCKET_CLOSED : NS_SOCKET_CONNECTED;
	default: return NS_SOCKET_CLOSED;
	}
}

int ns_socket_list(struct ns_stack *s, struct ns_socket_info *out, size_t cap)
{
	unsigned i;
	size_t n = 0;

	if (!s || (!out && cap))
		return -EINVAL;
	ns_lock(s);
	for (i = 0; i < s->nsocks_cap; i++) {
		struct ns_sock *k = s->socks[i];
		struct ns_socket_info *info;
		socklen_t len;

		if (!k)
			continue;
		if (n < cap) {
			info = &out[n];
			memset(info, 0, sizeof(*info));
			info->id = k->id;
			info->family = k->ep->family;
			info->type = k->ep->type;
			info->state = public_state(k->ep);
			info->backlog = k->ep->backlog;
			info->rx_queued = k->ep->rx_bytes;
			if (info->state != NS_SOCKET_UNBOUND) {
				len = sizeof(info->local);
				tcpip_ep_name(k->ep, false, (struct sockaddr *)&info->local, &len);
			}
			len = sizeof(info->remote);
			if (tcpip_ep_name(k->ep, true, (struct sockaddr *)&info->remote, &len))
				memset(&info->remote, 0, sizeof(info->remote));
		}
		n++;
	}
	ns_unlock(s);
	return (int)n;
}

/* --- checkpoint state --- */

static int get_opt_int(struct tcpip_ep *ep, int level, int name)
{
	socklen_t len = sizeof(int);
	int v = 0;

	tcpip_ep_getsockopt(ep, level, name, &v, &len);
	return v;
}

static bool save_one(struct ns_sock *k, struct ns_state_sock *ss)
{
	struct tcpip_ep *ep = k->ep;
	struct linger lg;
	socklen_t len = sizeof(lg);

	memset(ss, 0, sizeof(*ss));
	switch (ep->state) {
	case TCPIP_NEW: ss->kind = NS_STATE_SOCK_UNBOUND; break;
	case TCPIP_BOUND: ss->kind = NS_STATE_SOCK_BOUND; break;
	case TCPIP_LISTEN: ss->kind = NS_STATE_SOCK_LISTEN; break;
	case TCPIP_CONNECTED:
		if (ep->type == SOCK_DGRAM) {
			ss->kind = NS_STATE_SOCK_CONNECTED;
			break;
		}
		return false;	/* a TCP connection: not saved */
	default:
		return false;
	}
	ss->id = k->id;
	ss->family = ep->family;
	ss->type = ep->type;
	ss->local_len = sizeof(ss->local);
	tcpip_ep_name(ep, false, (struct sockaddr *)&ss->local, &ss->local_len);
	if (ss->kind == NS_STATE_SOCK_CONNECTED) {
		ss->remote_len = sizeof(ss->remote);
		tcpip_ep_name(ep, true, (struct sockaddr *)&ss->remote, &ss->remote_len);
	}
	ss->backlog = ep->backlog;
	ss->nonblock = k->nonblock;
	ss->rcvtimeo_ms = k->rcvtimeo_ms;
	ss->sndtimeo_ms = k->sndtimeo_ms;
	ss->reuseaddr = get_opt_int(ep, SOL_SOCKET, SO_REUSEADDR);
	ss->rcvbuf = (unsigned)get_opt_int(ep, SOL_SOCKET, SO_RCVBUF);
	ss->sndbuf = (unsigned)get_opt_int(ep, SOL_SOCKET, SO_SNDBUF);
	if (tcpip_ep_getsockopt(ep, SOL_SOCKET, SO_LINGER, &lg, &len) == 0)
		ss->linger0 = lg.l_onoff;
	if (ep->family == AF_INET6)
		ss->v6only = get_opt_int(ep, IPPROTO_IPV6, IPV6_V6ONLY);
	if (ep->type == SOCK_STREAM) {
		ss->keepalive = get_opt_int(ep, SOL_SOCKET, SO_KEEPALIVE);
		ss->nodelay = get_opt_int(ep, IPPROTO_TCP, TCP_NODELAY);
		ss->keep_idle_s = (unsigned)get_opt_int(ep, IPPROTO_TCP, TCP_KEEPIDLE);
		ss->keep_intvl_s = (unsigned)get_opt_int(ep, IPPROTO_TCP, TCP_KEEPINTVL);
		ss->keep_cnt = (unsigned)get_opt_int(ep, IPPROTO_TCP, TCP_KEEPCNT);
	}
	return true;
}

int ns_socks_save(struct ns_stack *s, struct ns_state *st)
{
	unsigned i, n = 0;

	for (i = 0; i < s->nsocks_cap; i++)
		n += s->socks[i] != NULL;
	st->socks = calloc(n ? n : 1, sizeof(*st->socks));
	if (!st->socks)
		return -ENOMEM;
	st->nsocks = 0;
	for (i = 0; i < s->nsocks_cap; i++)
		if (s->socks[i] && save_one(s->socks[i], &st->socks[st->nsocks]))
			st->nsocks++;
	return 0;
}

static int set_opt_int(struct tcpip_ep *ep, int level, int name, int v)
{
	return tcpip_ep_setsockopt(ep, level, name, &v, sizeof(v));
}

/* Options first (IPV6_V6ONLY must precede bind), then bind, listen or
 * connect, as the application did. */
static int restore_ep(struct tcpip_ep *ep, const struct ns_state_sock *ss)
{
	struct linger lg = { .l_onoff = ss->linger0, .l_linger = 0 };
	int rc = 0;

	if (ss->family == AF_INET6)
		rc = set_opt_int(ep, IPPROTO_IPV6, IPV6_V6ONLY, ss->v6only);
	if (!rc)
		rc = set_opt_int(ep, SOL_SOCKET, SO_REUSEADDR, ss->reuseaddr);
	if (!rc && ss->rcvbuf)
		rc = set_opt_int(ep, SOL_SOCKET, SO_RCVBUF, (int)ss->rcvbuf);
	if (!rc && ss->sndbuf)
		rc = set_opt_int(ep, SOL_SOCKET, SO_SNDBUF, (int)ss->sndbuf);
	if (!rc)
		rc = tcpip_ep_setsockopt(ep, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (!rc && ss->type == SOCK_STREAM) {
		rc = set_opt_int(ep, SOL_SOCKET, SO_KEEPALIVE, ss->keepalive);
		if (!rc)
			rc = set_opt_int(ep, IPPROTO_TCP, TCP_NODELAY, ss->nodelay);
		if (!rc && ss->keep_idle_s)
			rc = set_opt_int(ep, IPPROTO_TCP, TCP_KEEPIDLE, (int)ss->keep_idle_s);
		if (!rc && ss->keep_intvl_s)
			rc = set_opt_int(ep, IPPROTO_TCP, TCP_KEEPINTVL, (int)ss->keep_intvl_s);
		if (!rc && ss->keep_cnt)
			rc = set_opt_int(ep, IPPROTO_TCP, TCP_KEEPCNT, (int)ss->keep_cnt);
	}
	if (!rc && ss->kind != NS_STATE_SOCK_UNBOUND)
		rc = tcpip_ep_bind(ep, (const struct sockaddr *)&ss->local, ss->local_len);
	if (!rc && ss->kind == NS_STATE_SOCK_LISTEN)
		rc = tcpip_ep_listen(ep, ss->backlog);
	if (!rc && ss->kind == NS_STATE_SOCK_CONNECTED)
		rc = tcpip_ep_connect(ep, (const struct sockaddr *)&ss->remote, ss->remote_len);
	return rc;
}

/* Recreate one socket under its number. */
static int sock_restore(struct ns_stack *s, const struct ns_state_sock *ss)
{
	struct tcpip_ep *ep;
	struct ns_sock *k;
	int rc;

	rc = tcpip_ep_new(ss->family, ss->type, NULL, NULL, &ep);
	if (rc)
		return rc;
	rc = restore_ep(ep, ss);
	if (!rc)
		rc = sock_install_at(s, ep, ss->nonblock, ss->id);
	if (rc < 0) {
		tcpip_ep_close(ep);
		return rc;
	}
	k = s->socks[rc];
	k->rcvtimeo_ms = ss->rcvtimeo_ms;
	k->sndtimeo_ms = ss->sndtimeo_ms;
	return 0;
}

int ns_socks_restore(struct ns_stack *s, const struct ns_state *st)
{
	size_t i;
	int rc = 0;

	/* Thousands of listeners: each bind O(1), not a walk of the others. */
	tcpip_ep_bulk_begin();
	for (i = 0; i < st->nsocks && !rc; i++)
		rc = sock_restore(s, &st->socks[i]);
	tcpip_ep_bulk_end();
	return rc;
}
