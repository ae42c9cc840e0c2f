/* SPDX-License-Identifier: MIT */
/*
 * internal.h - the stack object shared by the netstack/ sources: NICs, the
 * socket table, the dispatcher's state and the helpers every API call uses
 * to take and release the stack lock.
 *
 * Locking: the stack lock (tcpip_lock) guards everything in struct ns_stack
 * and all of lwIP. The dispatcher holds it while it feeds a batch of frames
 * to lwIP and runs timers, and releases it while it sleeps in epoll_wait.
 */
#ifndef NETSTACK_INTERNAL_H
#define NETSTACK_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lwip/netif.h"
#include "netstack.h"
#include "tap.h"
#include "tcpip.h"
#include "endpoint.h"

#define NS_RX_BATCH 32
#define NS_DEFAULT_MAX_SOCKETS 65536u
/* Default limits (ns_stack_config). The backlog ceiling is lwIP's u8. The
 * socket buffer ceiling is what SO_RCVBUF could always reach. 512 MiB of
 * lwIP memory holds 10,000 idle connections (~40 MiB at issue #6's
 * 4 KiB each) beside a hundred
 * with full 1 MiB windows both ways and out-of-order queues (~350 MiB);
 * half of it may sit unread in receive queues, leaving the rest for
 * sending, pcbs and the frames in flight. */
#define NS_DEFAULT_MAX_BACKLOG 255u
#define NS_DEFAULT_MAX_SOCK_BUF (64u << 20)
#define NS_MIN_SOCK_BUF 2048u
#define NS_MAX_SOCK_BUF (1u << 30)
#define NS_DEFAULT_MAX_MEMORY ((size_t)512 << 20)
#define NS_MIN_MEMORY ((size_t)64 << 10)
#define NS_DEFAULT_BUSY_POLL_US 50
#define NS_MAX_BUSY_POLL_US 1000
#define NS_MAX_HOOKS 8

struct ns_nic {
	int id;
	char name[NS_NIC_NAME_MAX];
	struct netif netif;
	struct ns_endpoint *ep;
	struct ns_stack *stack;
	bool up;
	bool link_up;
	int failed;		/* errno of an endpoint failure not yet handled */
	uint8_t v4len;		/* prefix length of the IPv4 address */
	uint8_t v6len[LWIP_IPV6_NUM_ADDRESSES];
	uint64_t rx_frames, tx_frames, rx_bytes, tx_bytes, rx_malformed, tx_dropped;
	struct nic_dp *dp;	/* reusable receive buffers, transmit GSO (nic.c); or NULL */
};

struct ns_pollwait;
struct ns_follower;

/* One poll() call's interest in one socket. */
struct ns_waitlink {
	struct ns_waitlink *prev, *next;
	struct ns_pollwait *w;
};

struct ns_sock {
	int id;
	struct ns_stack *stack;
	struct tcpip_ep *ep;	/* NULL once closed */
	pthread_cond_t cond;	/* blocked send/recv/accept/connect wait here */
	struct ns_waitlink waiters; /* list head of poll() callers */
	unsigned refs;		/* callers waiting on it; freed at 0 once closed */
	bool closed;
	bool nonblock;
	int64_t rcvtimeo_ms, sndtimeo_ms; /* 0: no timeout */
};

struct ns_stack {
	struct ns_stack_config cfg;
	pthread_t thread;
	bool running;
	bool stopping;
	bool sleeping;		/* the dispatcher is in epoll_wait */
	uint64_t sleep_until;	/* stack-clock ns it wakes at; UINT64_MAX: no timer */
	/* epfd: the link endpoints and kickfd (a leader waits on it);
	 * dispfd: wakefd and epfd (the dispatcher waits on it). */
	int epfd, dispfd, wakefd, kickfd, notifyfd;
	bool lent;		/* epfd is lent to leaders: off in dispfd */
	uint64_t lease_until;	/* stack-clock ns the loan is checked at */
	bool lease_parked;	/* unchecked until the waiting leader's wait ends */
	uint64_t lead_ends, lead_ends_seen; /* leaders' waits ended; at the last check */
	struct ns_follower *followers; /* callers in ns_wait on their condition */
	const void *heir;	/* the thread that leads next; NULL: any */
	uint64_t heir_since;	/* stack-clock ns it was named */
	pthread_cond_t *leader_cond; /* what the leader would wait on; NULL: none */
	bool link_busy;		/* the last leader's wait got input within cfg.busy_poll_us */
	bool notify_used, notify_dirty;

	struct ns_nic **nics;
	size_t nnics, nics_cap;
	int next_nic_id;

	struct ns_sock **socks;
	unsigned nsocks_cap;	/* cfg.max_sockets */
	unsigned sock_hint;
	unsigned nsocks;	/* open now */
	uint64_t sock_refused;	/* -EMFILE given */

	struct ns_stats stats;

	/* Checkpoints (snapshot.c). */
	bool restored;		/* post-restore hooks run at the next start */
	bool tx_frozen;		/* checkpointed, not resumed: nothing is sent */
	int64_t ckpt_count;
	int ckpt_result;
	pthread_cond_t ckpt_cond;
	struct ns_hook {
		ns_hook_fn fn;
		void *arg;
	} hooks[2][NS_MAX_HOOKS];

	/* The memory file (checkpoint/memfile.c), made on first use and
	 * freed through memfile_free(), which stops its loader first. */
	struct ns_memfile *memfile;
	void (*memfile_free)(struct ns_memfile *mf);

	struct tap_rxframe rx[NS_RX_BATCH];
	uint8_t *rxbuf;
};

void ns_lock(struct ns_stack *s);
/* Releases the lock; first wakes the dispatcher if a timer now falls due
 * before it would wake, and signals the notify fd if readiness changed. */
void ns_unlock(struct ns_stack *s);
/* One dispatcher round (lock held); tests drive a stopped stack with it
 * (block = false) under a fake clock. */
void ns_stack_run_once(struct ns_stack *s, bool block);
/**
 * ns_wait() - block until woken through ns_wake() on @cond (lock held)
 * @s: the stack
 * @cond: the caller's condition variable
 * @deadline: absolute CLOCK_MONOTONIC time, or NULL to wait forever
 *
 * While the stack runs and no other caller leads, the caller waits on the
 * link itself and feeds its input to lwIP (stack.c, "Leader/follower").
 * Return: 0 when woken or after input (maybe spuriously: recheck), or
 * -ETIMEDOUT at the deadline.
 */
int ns_wait(struct ns_stack *s, pthread_cond_t *cond, const struct timespec *deadline);
/* Wake @cond's waiters (@all, else one), kicking it if it leads. */
void ns_wake(struct ns_stack *s, pthread_cond_t *cond, bool all);
void ns_log(struct ns_stack *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* nic.c */
struct ns_nic *ns_nic_find(struct ns_stack *s, int id);
void ns_nic_rx(struct ns_stack *s, struct ns_nic *nic);
void ns_nic_handle_failure(struct ns_stack *s, struct ns_nic *nic);
void ns_nic_destroy(struct ns_stack *s, struct ns_nic *nic);

/* socket.c */
void ns_socks_free_all(struct ns_stack *s);
struct ns_state;
/* Save the sockets that hold no connection state (lock held). */
int ns_socks_save(struct ns_stack *s, struct ns_state *st);
/* Recreate them under their numbers, in order; stop at the first failure
 * (lock held). */
int ns_socks_restore(struct ns_stack *s, const struct ns_state *st);

/* snapshot.c: the stack <-> struct ns_state (checkpoint/ writes it) */
int ns_state_save(struct ns_stack *s, struct ns_state *st);
int ns_state_load(struct ns_stack *s, const struct ns_state *st,
		  const struct ns_restore_endpoint *eps, size_t neps);
/* Count a checkpoint attempt and wake its waiters (lock held). */
void ns_checkpoint_done(struct ns_stack *s, int result);
int ns_hooks_run(struct ns_stack *s, enum ns_hook_kind kind);

/* addr.c: conversions between the public and lwIP's address types */
void ns_addr_to_ip(const struct ns_addr *a, ip_addr_t *ip);
void ns_ip_to_addr(const ip_addr_t *ip, struct ns_addr *a);
bool ns_prefix_valid(const struct ns_prefix *p);

#endif /* NETSTACK_INTERNAL_H */
