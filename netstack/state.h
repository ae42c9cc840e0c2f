/* SPDX-License-Identifier: MIT */
/*
 * state.h - the stack's checkpointable state as plain C: what netstack/
 * hands checkpoint/ and takes back on restore. Only checkpoint/ turns it
 * into protobuf; nothing here knows the image format.
 *
 * Saved: the stack clock, the checkpoint count, counters, NICs (name,
 * endpoint kind and device, MAC, MTU, up, addresses), gateway routes, and
 * sockets that hold no connection state: TCP listeners and UDP sockets,
 * under their socket numbers, with their options. Established TCP
 * connections and queued-but-unaccepted ones are not saved (their peers
 * get RST after a restore). Unbound sockets are saved too, so numbers stay
 * valid.
 */
#ifndef NETSTACK_STATE_H
#define NETSTACK_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "netstack.h"

#define NS_STATE_MAX_ADDRS 8

struct ns_state_nic {
	int id;
	char name[NS_NIC_NAME_MAX];
	char kind[8];			/* "tap", "fd", "channel" */
	char device[NS_NIC_NAME_MAX];	/* the TAP's name, else empty */
	uint8_t mac[6];
	unsigned mtu;
	bool up;
	size_t naddrs;
	struct ns_prefix addrs[NS_STATE_MAX_ADDRS]; /* link-local excluded */
};

enum ns_state_sock_kind {
	NS_STATE_SOCK_UNBOUND = 0,	/* created, nothing else */
	NS_STATE_SOCK_BOUND,		/* bound, not listening (TCP) or not connected (UDP) */
	NS_STATE_SOCK_LISTEN,		/* TCP listener */
	NS_STATE_SOCK_CONNECTED,	/* UDP with a default peer */
};

struct ns_state_sock {
	int id;				/* socket number, kept across restore */
	int family;			/* AF_INET, AF_INET6 */
	int type;			/* SOCK_STREAM, SOCK_DGRAM */
	enum ns_state_sock_kind kind;
	struct sockaddr_storage local;	/* valid from BOUND on */
	socklen_t local_len;
	struct sockaddr_storage remote;	/* CONNECTED only */
	socklen_t remote_len;
	int backlog;			/* LISTEN only */
	bool nonblock, reuseaddr, keepalive, nodelay, v6only, linger0;
	unsigned rcvbuf, sndbuf;
	int64_t rcvtimeo_ms, sndtimeo_ms;
	unsigned keep_idle_s, keep_intvl_s, keep_cnt; /* 0: lwIP's default */
};

struct ns_state {
	uint64_t clock_ns;		/* the stack clock when saved */
	uint64_t checkpoint_count;
	struct ns_stats stats;
	size_t nnics;
	struct ns_state_nic *nics;
	size_t nroutes;
	struct ns_route *routes;	/* gateway/table routes only; nic = ns_state_nic.id */
	size_t nsocks;
	struct ns_state_sock *socks;
	/* The memory file saved with this state (checkpoint/memfile.c):
	 * 0 when the stack had no memory regions. */
	uint64_t memory_id;
	unsigned memory_regions;
};

/* Free the arrays of @st (not @st itself); safe on a zeroed struct. */
void ns_state_release(struct ns_state *st);

#endif /* NETSTACK_STATE_H */
