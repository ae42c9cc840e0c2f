/* SPDX-License-Identifier: MIT */
/*
 * endpoint.h - TCP and UDP endpoints: each wraps one lwIP PCB, owns its
 * receive queue (and a listener its accept queue), and knows its readiness
 * in poll(2) terms. Endpoints never block: an operation that cannot proceed
 * returns -EAGAIN, and the endpoint calls its notify function whenever its
 * readiness may have changed, so the socket layer above can wait and wake.
 *
 * Theory of operation (TCP):
 *   NEW --bind--> BOUND --listen--> LISTEN (accept queue of ESTABLISHED children)
 *   NEW/BOUND --connect--> CONNECTING --lwIP connected--> CONNECTED
 *   any --lwIP err callback (RST, abort, timeout)--> DEAD (pcb freed by lwIP, err kept)
 * lwIP's tcp_write/tcp_recved take u16 lengths: send and recv loop in pieces.
 * lwIP's pbuf lengths are u16 too, so the receive queue is a ring of pbuf
 * chains rather than one chain.
 *
 * All functions require the stack lock (tcpip_lock).
 */
#ifndef NETSTACK_TCPIP_ENDPOINT_H
#define NETSTACK_TCPIP_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct tcpip_ep;

/* Called (stack lock held) when @ep's readiness may have changed. */
typedef void (*tcpip_notify_fn)(struct tcpip_ep *ep, void *owner);

/* A FIFO of pointers that grows as needed. */
struct tcpip_ring {
	void **items;
	unsigned head, count, cap;
};

enum tcpip_tcp_state {
	TCPIP_NEW,
	TCPIP_BOUND,
	TCPIP_LISTEN,
	TCPIP_CONNECTING,
	TCPIP_CONNECTED,
	TCPIP_DEAD,		/* lwIP freed the pcb: reset, aborted or timed out */
	TCPIP_CLOSED,		/* UDP after close; TCP never exposes it */
};

struct tcpip_ep {
	int family;		/* AF_INET or AF_INET6: the socket's domain */
	int type;		/* SOCK_STREAM or SOCK_DGRAM */
	enum tcpip_tcp_state state;
	union {
		struct tcp_pcb *tcp;
		struct udp_pcb *udp;
		void *any;
	} pcb;
	tcpip_notify_fn notify;
	void *owner;

	int err;		/* pending error for SO_ERROR, as a positive errno */
	bool v6only;
	bool linger0;		/* SO_LINGER with l_linger 0: close aborts */
	bool shut_rd, shut_wr;
	bool rx_eof;		/* TCP: the peer's FIN arrived */
	unsigned rcvbuf, sndbuf; /* SO_RCVBUF/SO_SNDBUF as set */

	/* Receive queue: TCP pbuf chains, UDP struct tcpip_dgram, listener
	 * child endpoints. */
	struct tcpip_ring rxq;
	size_t rx_bytes;	/* TCP: unread bytes; UDP: queued payload */
	uint16_t rx_off;	/* TCP: bytes of the head pbuf already read */
	int backlog;		/* listener */
	struct tcpip_ep *listener; /* a child still in its listener's queue */
};

/**
 * tcpip_ep_new() - a new unbound endpoint
 * @family: AF_INET or AF_INET6
 * @type: SOCK_STREAM or SOCK_DGRAM
 * @notify: readiness callback
 * @owner: passed to @notify
 * @epp: receives the endpoint
 *
 * Return: 0, -ENOMEM.
 */
int tcpip_ep_new(int family, int type, tcpip_notify_fn notify, void *owner, struct tcpip_ep **epp);
/* Close and free: graceful for TCP unless unread data or linger0 (RST). */
void tcpip_ep_close(struct tcpip_ep *ep);

int tcpip_ep_bind(struct tcpip_ep *ep, const struct sockaddr *sa, socklen_t len);
int tcpip_ep_listen(struct tcpip_ep *ep, int backlog);
/**
 * tcpip_ep_bulk_begin() - many binds and listens follow (a restore)
 *
 * Until tcpip_ep_bulk_end(), a TCP bind or listen on a port no other bound
 * or listening pcb uses costs O(1) instead of a walk of every such pcb,
 * with the same outcome (endpoint.c, "bulk binding"). The stack lock must
 * be held from begin to end, and TCP pcbs be bound and listened only
 * through these functions meanwhile. Without memory, calls are as usual.
 */
void tcpip_ep_bulk_begin(void);
/* tcpip_ep_bulk_end() - back to plain binds and listens. */
void tcpip_ep_bulk_end(void);
/* Return: 0 with *childp set, or -EAGAIN, -EINVAL. The child's notify is
 * the listener's until the caller sets its own. */
int tcpip_ep_accept(struct tcpip_ep *ep, struct tcpip_ep **childp);
/* Return: TCP -EINPROGRESS (then wait for POLLOUT and read
 * tcpip_ep_connect_result), UDP 0; or -errno. */
int tcpip_ep_connect(struct tcpip_ep *ep, const struct sockaddr *sa, socklen_t len);
int tcpip_ep_connect_result(struct tcpip_ep *ep);

/* Return: bytes queued (possibly fewer than @len), -EAGAIN, -errno. @to is
 * for UDP only (NULL: the connected peer). */
ssize_t tcpip_ep_send(struct tcpip_ep *ep, const void *buf, size_t len,
		      const struct sockaddr *to, socklen_t tolen);
/* Return: bytes read, 0 at end of stream, -EAGAIN, -errno. @peek leaves
 * the data queued. UDP: a datagram longer than @len is truncated and its
 * full length is stored in *@full (when not NULL). */
ssize_t tcpip_ep_recv(struct tcpip_ep *ep, void *buf, size_t len, bool peek,
		      struct sockaddr *from, socklen_t *fromlen, size_t *full);
int tcpip_ep_shutdown(struct tcpip_ep *ep, int how);
/* POLLIN/POLLOUT/POLLERR/POLLHUP/POLLRDHUP as they stand now. */
unsigned tcpip_ep_poll(const struct tcpip_ep *ep);
int tcpip_ep_name(const struct tcpip_ep *ep, bool peer, struct sockaddr *sa, socklen_t *len);
int tcpip_ep_setsockopt(struct tcpip_ep *ep, int level, int name, const void *val, socklen_t len);
/* The limits every endpoint obeys (the stack's configuration). */
struct tcpip_ep_limits {
	unsigned max_backlog;	/* listen() backlogs are clamped to it: 1..255 (lwIP's u8) */
	size_t max_sock_buf;	/* SO_RCVBUF/SO_SNDBUF are clamped to it */
	size_t max_rx_total;	/* unread received bytes queued over all endpoints */
};
void tcpip_ep_set_limits(const struct tcpip_ep_limits *l);
/* Received bytes queued now, and how often a segment or datagram was held
 * back or dropped because it would have exceeded max_rx_total. */
void tcpip_ep_usage(size_t *queued, uint64_t *refused);
/* UDP datagrams dropped on full receive queues, all endpoints together. */
uint64_t tcpip_ep_udp_drops(void);
int tcpip_ep_getsockopt(struct tcpip_ep *ep, int level, int name, void *val, socklen_t *len);

#endif /* NETSTACK_TCPIP_ENDPOINT_H */
