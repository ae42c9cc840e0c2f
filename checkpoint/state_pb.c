/* SPDX-License-Identifier: MIT */
/*
 * state_pb.c - struct ns_state <-> netstack.v1.Image (netstack.proto): the
 * enum maps between the schema and the C constants, packing a state into a
 * payload, and unpacking one with every field validated before anything is
 * allocated for the caller. The same rules check a state before it is
 * written, so whatever the writer accepts, the reader accepts too.
 *
 * The rules, besides each field's range: enums are known values (never
 * UNSPECIFIED); an address is 4 bytes for IPv4 and 16 for IPv6 and a
 * prefix length fits it; NIC ids are >= 1 and unique, names 1..15 bytes,
 * NUL-free and unique, a TAP names its device and nothing else does, the
 * MAC is 6 bytes, the MTU 68..65521, at most NS_STATE_MAX_ADDRS addresses;
 * a route's gateway has its destination's family and its NIC exists; socket
 * ids are >= 0 and unique, addresses have the socket's family, a bound,
 * listening or connected socket has a local address and only a connected
 * one a peer, only TCP listens and only UDP connects, backlogs are 0..255
 * (1..255 when listening), IPV6_V6ONLY is for IPv6 and TCP options for TCP,
 * values restored through an int fit one; counts stay under CKPT_MAX_*;
 * a memory reference (format 2 on) has a non-zero id and 1..CKPT_MAX_REGIONS
 * regions; and no message carries a field this netstack does not know.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "netstack.pb-c.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

typedef Netstack__V1__Image pb_image;
typedef Netstack__V1__Nic pb_nic;
typedef Netstack__V1__Prefix pb_prefix;
typedef Netstack__V1__Route pb_route;
typedef Netstack__V1__Socket pb_socket;
typedef Netstack__V1__Counters pb_counters;
typedef Netstack__V1__MemoryRef pb_memory_ref;
typedef ProtobufCBinaryData pb_bytes;

#define MTU_MIN 68u
#define MTU_MAX 65521u
#define BACKLOG_MAX 255
#define NAME_MAX_LEN (NS_NIC_NAME_MAX - 1)	/* bytes before the NUL */

/* ------------------------------------------------------------------ */
/* Enum maps, indexed by the protobuf value; index 0 is UNSPECIFIED.   */
/* ------------------------------------------------------------------ */

static const char *const nic_kind_of_pb[] = {
	[NETSTACK__V1__NIC_KIND__NIC_KIND_UNSPECIFIED] = NULL,
	[NETSTACK__V1__NIC_KIND__NIC_KIND_TAP] = "tap",
	[NETSTACK__V1__NIC_KIND__NIC_KIND_FD] = "fd",
	[NETSTACK__V1__NIC_KIND__NIC_KIND_CHANNEL] = "channel",
};
static_assert(ARRAY_SIZE(nic_kind_of_pb) == NETSTACK__V1__NIC_KIND__NIC_KIND_CHANNEL + 1,
	      "a kind name for every NicKind");
#define KIND_ROOM sizeof(((struct ns_state_nic *)0)->kind)
static_assert(sizeof("tap") <= KIND_ROOM && sizeof("fd") <= KIND_ROOM &&
	      sizeof("channel") <= KIND_ROOM, "every kind name fits ns_state_nic.kind");

static const int family_of_pb[] = {
	[NETSTACK__V1__FAMILY__FAMILY_UNSPECIFIED] = -1,
	[NETSTACK__V1__FAMILY__FAMILY_INET] = AF_INET,
	[NETSTACK__V1__FAMILY__FAMILY_INET6] = AF_INET6,
};
static_assert(ARRAY_SIZE(family_of_pb) == NETSTACK__V1__FAMILY__FAMILY_INET6 + 1,
	      "an address family for every Family");

static const int type_of_pb[] = {
	[NETSTACK__V1__SOCKET_TYPE__SOCKET_TYPE_UNSPECIFIED] = -1,
	[NETSTACK__V1__SOCKET_TYPE__SOCKET_TYPE_STREAM] = SOCK_STREAM,
	[NETSTACK__V1__SOCKET_TYPE__SOCKET_TYPE_DGRAM] = SOCK_DGRAM,
};
static_assert(ARRAY_SIZE(type_of_pb) == NETSTACK__V1__SOCKET_TYPE__SOCKET_TYPE_DGRAM + 1,
	      "a socket type for every SocketType");

static const int kind_of_pb[] = {
	[NETSTACK__V1__SOCKET_KIND__SOCKET_KIND_UNSPECIFIED] = -1,
	[NETSTACK__V1__SOCKET_KIND__SOCKET_KIND_UNBOUND] = NS_STATE_SOCK_UNBOUND,
	[NETSTACK__V1__SOCKET_KIND__SOCKET_KIND_BOUND] = NS_STATE_SOCK_BOUND,
	[NETSTACK__V1__SOCKET_KIND__SOCKET_KIND_LISTEN] = NS_STATE_SOCK_LISTEN,
	[NETSTACK__V1__SOCKET_KIND__SOCKET_KIND_CONNECTED] = NS_STATE_SOCK_CONNECTED,
};
static_assert(ARRAY_SIZE(kind_of_pb) == NETSTACK__V1__SOCKET_KIND__SOCKET_KIND_CONNECTED + 1,
	      "an ns_state_sock_kind for every SocketKind");
static_assert(ARRAY_SIZE(kind_of_pb) - 1 == NS_STATE_SOCK_CONNECTED + 1,
	      "a SocketKind for every ns_state_sock_kind");

/* ns_stats <-> Counters, field for field. */
#define NS_STATS_FIELDS(X) \
	X(rx_frames) X(tx_frames) X(rx_bytes) X(tx_bytes) X(rx_malformed) \
	X(rx_dropped) X(tx_dropped) X(ip_chkerr) X(ip_lenerr) X(tcp_chkerr) \
	X(udp_chkerr) X(udp_rcvbuf_drops) X(syncookies_sent) X(syncookies_validated) \
	X(syncookies_failed) X(busy_poll_hits)
#define COUNT_ONE(f) + 1
static_assert(sizeof(struct ns_stats) == (0 NS_STATS_FIELDS(COUNT_ONE)) * sizeof(uint64_t),
	      "a Counters field for every ns_stats field");

static_assert(sizeof(unsigned) == sizeof(uint32_t), "unsigned fields travel as uint32");
static_assert(sizeof(int) == sizeof(int32_t), "int fields travel as int32");

/* The protobuf value whose entry in @map is @c, or 0 (UNSPECIFIED). */
static int pb_of_int(const int *map, size_t n, int c)
{
	size_t i;

	for (i = 1; i < n; i++)
		if (map[i] == c)
			return (int)i;
	return 0;
}

static bool pb_known(size_t n, int pb)
{
	return pb > 0 && (size_t)pb < n;
}

/* ------------------------------------------------------------------ */
/* Validation of an Image, whoever built it                            */
/* ------------------------------------------------------------------ */

static unsigned addr_bits(size_t len)
{
	return len == 4 ? 32 : len == 16 ? 128 : 0;
}

static const char *family_name(int pb)
{
	return pb == NETSTACK__V1__FAMILY__FAMILY_INET ? "IPv4" : "IPv6";
}

static size_t family_addr_len(int pb)
{
	return pb == NETSTACK__V1__FAMILY__FAMILY_INET ? 4 : 16;
}

static int unknown_fields(const ProtobufCMessage *m, const char *what, char *why, size_t whylen)
{
	if (m->n_unknown_fields)
		return ckpt_fail(why, whylen, -EPROTO,
				 "%s has %u field(s) this netstack does not know"
				 " (written by a newer one?)",
				 what, m->n_unknown_fields);
	return 0;
}

/* A NIC or device name: 1 (0 if @may_be_empty) .. 15 bytes, no NUL. */
static bool name_ok(const pb_bytes *b, bool may_be_empty)
{
	if (b->len > NAME_MAX_LEN || (b->len == 0 && !may_be_empty))
		return false;
	return b->len == 0 || !memchr(b->data, '\0', b->len);
}

static int check_prefix(const pb_prefix *p, const char *what, char *why, size_t whylen)
{
	unsigned bits;
	int rc;

	if (!p)
		return ckpt_fail(why, whylen, -EPROTO, "%s is missing", what);
	if ((rc = unknown_fields(&p->base, what, why, whylen)))
		return rc;
	bits = addr_bits(p->addr.len);
	if (!bits)
		return ckpt_fail(why, whylen, -EPROTO, "%s: address is %zu bytes, not 4 or 16",
				 what, p->addr.len);
	if (p->len > bits)
		return ckpt_fail(why, whylen, -EPROTO, "%s: prefix length %u is over %u",
				 what, p->len, bits);
	return 0;
}

static int check_nic(const pb_nic *n, size_t i, char *why, size_t whylen)
{
	char what[64];
	size_t k;
	int rc;

	snprintf(what, sizeof(what), "nic %zu", i);
	if ((rc = unknown_fields(&n->base, what, why, whylen)))
		return rc;
	if (n->id < 1 || n->id > INT_MAX)
		return ckpt_fail(why, whylen, -EPROTO, "%s: id %u is out of range", what, n->id);
	snprintf(what, sizeof(what), "nic %u", n->id);
	if (!name_ok(&n->name, false))
		return ckpt_fail(why, whylen, -EPROTO,
				 "%s: name is %zu bytes or holds a NUL (1..%d bytes, no NUL)",
				 what, n->name.len, NAME_MAX_LEN);
	snprintf(what, sizeof(what), "nic %u (%.*s)",
		 n->id, (int)n->name.len, (const char *)n->name.data);
	if (!pb_known(ARRAY_SIZE(nic_kind_of_pb), (int)n->kind))
		return ckpt_fail(why, whylen, -EPROTO, "%s: unknown endpoint kind %d",
				 what, (int)n->kind);
	if (!name_ok(&n->device, true))
		return ckpt_fail(why, whylen, -EPROTO,
				 "%s: device name is %zu bytes or holds a NUL"
				 " (0..%d bytes, no NUL)",
				 what, n->device.len, NAME_MAX_LEN);
	if ((n->kind == NETSTACK__V1__NIC_KIND__NIC_KIND_TAP) != (n->device.len > 0))
		return ckpt_fail(why, whylen, -EPROTO, "%s: %s", what,
				 n->device.len ? "only a TAP has a device name"
					       : "a TAP without a device name");
	if (n->mac.len != 6)
		return ckpt_fail(why, whylen, -EPROTO, "%s: MAC is %zu bytes, not 6",
				 what, n->mac.len);
	if (n->mtu < MTU_MIN || n->mtu > MTU_MAX)
		return ckpt_fail(why, whylen, -EPROTO, "%s: MTU %u is outside %u..%u",
				 what, n->mtu, MTU_MIN, MTU_MAX);
	if (n->n_addrs > NS_STATE_MAX_ADDRS)
		return ckpt_fail(why, whylen, -EPROTO, "%s: %zu addresses, at most %d",
				 what, n->n_addrs, NS_STATE_MAX_ADDRS);
	for (k = 0; k < n->n_addrs; k++) {
		char awhat[96];

		snprintf(awhat, sizeof(awhat), "%s address %zu", what, k);
		if ((rc = check_prefix(n->addrs[k], awhat, why, whylen)))
			return rc;
	}
	return 0;
}

/* An endpoint of a socket: empty, or an address of @family (a
 * protobuf Family) with a port and, for IPv6, a scope. */
static int check_sockaddr(const pb_bytes *addr, uint32_t port, uint32_t scope, int family,
			  const char *what, char *why, size_t whylen)
{
	if (!addr->len) {
		if (port || scope)
			return ckpt_fail(why, whylen, -EPROTO,
					 "%s has a port or scope but no address", what);
		return 0;
	}
	if (addr->len != family_addr_len(family))
		return ckpt_fail(why, whylen, -EPROTO, "%s is %zu bytes, an %s socket needs %zu",
				 what, addr->len, family_name(family), family_addr_len(family));
	if (port > UINT16_MAX)
		return ckpt_fail(why, whylen, -EPROTO, "%s: port %u is over 65535", what, port);
	if (scope && family != NETSTACK__V1__FAMILY__FAMILY_INET6)
		return ckpt_fail(why, whylen, -EPROTO, "%s: a scope id on IPv4", what);
	return 0;
}

static int check_socket(const pb_socket *s, size_t i, char *why, size_t whylen)
{
	char what[64], ep[96];
	bool stream, listen, connected;
	int rc;

	snprintf(what, sizeof(what), "socket %zu", i);
	if ((rc = unknown_fields(&s->base, what, why, whylen)))
		return rc;
	if (s->id < 0)
		return ckpt_fail(why, whylen, -EPROTO, "%s: id %d is negative", what, s->id);
	snprintf(what, sizeof(what), "socket %d", s->id);
	if (!pb_known(ARRAY_SIZE(family_of_pb), (int)s->family))
		return ckpt_fail(why, whylen, -EPROTO, "%s: unknown family %d",
				 what, (int)s->family);
	if (!pb_known(ARRAY_SIZE(type_of_pb), (int)s->type))
		return ckpt_fail(why, whylen, -EPROTO, "%s: unknown type %d", what, (int)s->type);
	if (!pb_known(ARRAY_SIZE(kind_of_pb), (int)s->kind))
		return ckpt_fail(why, whylen, -EPROTO, "%s: unknown kind %d", what, (int)s->kind);
	stream = s->type == NETSTACK__V1__SOCKET_TYPE__SOCKET_TYPE_STREAM;
	listen = s->kind == NETSTACK__V1__SOCKET_KIND__SOCKET_KIND_LISTEN;
	connected = s->kind == NETSTACK__V1__SOCKET_KIND__SOCKET_KIND_CONNECTED;

	snprintf(ep, sizeof(ep), "%s: local address", what);
	if ((rc = check_sockaddr(&s->local_addr, s->local_port, s->local_scope_id, s->family,
				 ep, why, whylen)))
		return rc;
	snprintf(ep, sizeof(ep), "%s: peer address", what);
	if ((rc = check_sockaddr(&s->remote_addr, s->remote_port, s->remote_scope_id, s->family,
				 ep, why, whylen)))
		return rc;
	if (s->kind != NETSTACK__V1__SOCKET_KIND__SOCKET_KIND_UNBOUND && !s->local_addr.len)
		return ckpt_fail(why, whylen, -EPROTO, "%s: bound but without a local address",
				 what);
	if (connected != (s->remote_addr.len > 0))
		return ckpt_fail(why, whylen, -EPROTO, "%s: %s", what,
				 connected ? "connected but without a peer"
					   : "has a peer but is not connected");
	if (listen && !stream)
		return ckpt_fail(why, whylen, -EPROTO, "%s: a listening UDP socket", what);
	if (connected && stream)
		return ckpt_fail(why, whylen, -EPROTO, "%s: a connected TCP socket (never saved)",
				 what);
	if (s->backlog < (listen ? 1 : 0) || s->backlog > BACKLOG_MAX)
		return ckpt_fail(why, whylen, -EPROTO, "%s: backlog %d is outside %d..%d",
				 what, s->backlog, listen ? 1 : 0, BACKLOG_MAX);
	if (s->v6only && s->family != NETSTACK__V1__FAMILY__FAMILY_INET6)
		return ckpt_fail(why, whylen, -EPROTO, "%s: IPV6_V6ONLY on an IPv4 socket", what);
	if (!stream && (s->keepalive || s->nodelay || s->keep_idle_s || s->keep_intvl_s ||
			s->keep_cnt))
		return ckpt_fail(why, whylen, -EPROTO, "%s: TCP options on a UDP socket", what);
	if (s->rcvbuf > INT_MAX || s->sndbuf > INT_MAX || s->keep_idle_s > INT_MAX ||
	    s->keep_intvl_s > INT_MAX || s->keep_cnt > INT_MAX)
		return ckpt_fail(why, whylen, -EPROTO,
				 "%s: a buffer size or keepalive value over %d", what, INT_MAX);
	if (s->rcvtimeo_ms < 0 || s->sndtimeo_ms < 0)
		return ckpt_fail(why, whylen, -EPROTO, "%s: a negative timeout", what);
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

	return (x > y) - (x < y);
}

static int check_nics(const pb_image *m, uint32_t *ids, char *why, size_t whylen)
{
	size_t i, k;
	int rc;

	for (i = 0; i < m->n_nics; i++) {
		const pb_nic *n = m->nics[i];

		if ((rc = check_nic(n, i, why, whylen)))
			return rc;
		for (k = 0; k < i; k++) {
			const pb_nic *o = m->nics[k];

			if (o->id == n->id)
				return ckpt_fail(why, whylen, -EPROTO, "two NICs have id %u",
						 n->id);
			if (o->name.len == n->name.len &&
			    !memcmp(o->name.data, n->name.data, n->name.len))
				return ckpt_fail(why, whylen, -EPROTO, "two NICs are named %.*s",
						 (int)n->name.len, (const char *)n->name.data);
		}
		ids[i] = n->id;
	}
	qsort(ids, m->n_nics, sizeof(*ids), cmp_u32);
	return 0;
}

static int check_routes(const pb_image *m, const uint32_t *nic_ids, char *why, size_t whylen)
{
	size_t i;
	int rc;

	for (i = 0; i < m->n_routes; i++) {
		const pb_route *r = m->routes[i];
		char what[64];

		snprintf(what, sizeof(what), "route %zu", i);
		if ((rc = unknown_fields(&r->base, what, why, whylen)))
			return rc;
		snprintf(what, sizeof(what), "route %zu destination", i);
		if ((rc = check_prefix(r->dst, what, why, whylen)))
			return rc;
		if (r->gateway.len && r->gateway.len != r->dst->addr.len)
			return ckpt_fail(why, whylen, -EPROTO,
					 "route %zu: gateway is %zu bytes, its destination %zu",
					 i, r->gateway.len, r->dst->addr.len);
		if (!bsearch(&r->nic, nic_ids, m->n_nics, sizeof(*nic_ids), cmp_u32))
			return ckpt_fail(why, whylen, -EPROTO,
					 "route %zu: goes through NIC %u, not in the image",
					 i, r->nic);
	}
	return 0;
}

static int check_sockets(const pb_image *m, int32_t *ids, char *why, size_t whylen)
{
	size_t i;
	int rc;

	for (i = 0; i < m->n_sockets; i++) {
		if ((rc = check_socket(m->sockets[i], i, why, whylen)))
			return rc;
		ids[i] = m->sockets[i]->id;
	}
	qsort(ids, m->n_sockets, sizeof(*ids), cmp_i32);
	for (i = 1; i < m->n_sockets; i++)
		if (ids[i] == ids[i - 1])
			return ckpt_fail(why, whylen, -EPROTO, "two sockets have id %d", ids[i]);
	return 0;
}

/* Everything about @m, which may come from anywhere. */
static int check_image(const pb_image *m, uint32_t version, char *why, size_t whylen)
{
	uint32_t *nic_ids = NULL;
	int32_t *sock_ids = NULL;
	int rc;

	if ((rc = unknown_fields(&m->base, "the image", why, whylen)))
		return rc;
	if (m->format_version != version)
		return ckpt_fail(why, whylen, -EPROTO, "payload says format %u, header %u",
				 m->format_version, version);
	if (m->checkpoint_count > INT64_MAX)
		return ckpt_fail(why, whylen, -EPROTO, "checkpoint count %llu is out of range",
				 (unsigned long long)m->checkpoint_count);
	if (m->n_nics > CKPT_MAX_NICS || m->n_routes > CKPT_MAX_ROUTES ||
	    m->n_sockets > CKPT_MAX_SOCKETS)
		return ckpt_fail(why, whylen, -EPROTO,
				 "%zu NICs, %zu routes, %zu sockets: over the limits (%u, %u, %u)",
				 m->n_nics, m->n_routes, m->n_sockets,
				 CKPT_MAX_NICS, CKPT_MAX_ROUTES, CKPT_MAX_SOCKETS);
	if (!m->counters)
		return ckpt_fail(why, whylen, -EPROTO, "the image has no counters");
	if (m->memory) {
		if (version < 2)
			return ckpt_fail(why, whylen, -EPROTO,
					 "format %u has no memory file, yet the image names one",
					 version);
		if ((rc = unknown_fields(&m->memory->base, "the memory reference", why, whylen)))
			return rc;
		if (m->memory->image_id == 0)
			return ckpt_fail(why, whylen, -EPROTO, "the memory file's id is 0");
		if (m->memory->regions == 0 || m->memory->regions > CKPT_MAX_REGIONS)
			return ckpt_fail(why, whylen, -EPROTO,
					 "%u memory regions: want 1..%u",
					 m->memory->regions, CKPT_MAX_REGIONS);
	}
	if ((rc = unknown_fields(&m->counters->base, "counters", why, whylen)))
		return rc;

	nic_ids = malloc((m->n_nics + 1) * sizeof(*nic_ids));
	sock_ids = malloc((m->n_sockets + 1) * sizeof(*sock_ids));
	if (!nic_ids || !sock_ids) {
		rc = ckpt_fail(why, whylen, -ENOMEM, "out of memory validating the image");
		goto out;
	}
	rc = check_nics(m, nic_ids, why, whylen);
	if (!rc)
		rc = check_routes(m, nic_ids, why, whylen);
	if (!rc)
		rc = check_sockets(m, sock_ids, why, whylen);
out:
	free(nic_ids);
	free(sock_ids);
	return rc;
}

/* ------------------------------------------------------------------ */
/* struct ns_state -> Image                                            */
/* ------------------------------------------------------------------ */

/* Everything an Image built from a state points to; the bytes fields point
 * into the state itself. */
struct build {
	pb_image img;
	pb_counters counters;
	pb_memory_ref memory;
	pb_nic *nics, **nicp;
	pb_prefix *prefixes, **prefixp;
	pb_route *routes, **routep;
	pb_socket *socks, **sockp;
};

static void build_free(struct build *b)
{
	free(b->nics);
	free(b->nicp);
	free(b->prefixes);
	free(b->prefixp);
	free(b->routes);
	free(b->routep);
	free(b->socks);
	free(b->sockp);
}

static int addr_to_pb(const struct ns_addr *a, pb_bytes *out)
{
	/* protobuf-c only reads through data when packing. */
	if (a->family == AF_INET) {
		*out = (pb_bytes){ .len = 4, .data = (uint8_t *)&a->v4 };
		return 0;
	}
	if (a->family == AF_INET6) {
		*out = (pb_bytes){ .len = 16, .data = (uint8_t *)&a->v6 };
		return 0;
	}
	return -1;
}

static int prefix_to_pb(const struct ns_prefix *p, pb_prefix *out)
{
	netstack__v1__prefix__init(out);
	out->len = p->len;
	return addr_to_pb(&p->addr, &out->addr);
}

static int name_to_pb(const char *name, size_t room, pb_bytes *out)
{
	size_t len = strnlen(name, room);

	if (len == room)
		return -1;	/* not NUL-terminated */
	*out = (pb_bytes){ .len = len, .data = (uint8_t *)name };
	return 0;
}

static int nic_to_pb(const struct ns_state_nic *sn, pb_nic *n, pb_prefix *pfx, pb_prefix **pfxp,
		     char *why, size_t whylen)
{
	size_t k;
	int kind = 0;

	netstack__v1__nic__init(n);
	if (sn->id < 1)
		return ckpt_fail(why, whylen, -EINVAL, "nic id %d is out of range", sn->id);
	n->id = (uint32_t)sn->id;
	if (name_to_pb(sn->name, sizeof(sn->name), &n->name) ||
	    name_to_pb(sn->device, sizeof(sn->device), &n->device))
		return ckpt_fail(why, whylen, -EINVAL, "nic %d: a name is not NUL-terminated",
				 sn->id);
	for (k = 1; k < ARRAY_SIZE(nic_kind_of_pb); k++)
		if (strncmp(sn->kind, nic_kind_of_pb[k], sizeof(sn->kind)) == 0)
			kind = (int)k;
	if (!kind)
		return ckpt_fail(why, whylen, -EINVAL, "nic %d: unknown endpoint kind \"%.*s\"",
				 sn->id, (int)sizeof(sn->kind), sn->kind);
	n->kind = kind;
	n->mac = (pb_bytes){ .len = sizeof(sn->mac), .data = (uint8_t *)sn->mac };
	n->mtu = sn->mtu;
	n->up = sn->up;
	n->n_addrs = sn->naddrs;
	n->addrs = pfxp;
	for (k = 0; k < sn->naddrs; k++) {
		pfxp[k] = &pfx[k];
		if (prefix_to_pb(&sn->addrs[k], &pfx[k]))
			return ckpt_fail(why, whylen, -EINVAL, "nic %d: address %zu has family %d",
					 sn->id, k, sn->addrs[k].addr.family);
	}
	return 0;
}

static int route_to_pb(const struct ns_route *r, size_t i, pb_route *out, pb_prefix *dst,
		       char *why, size_t whylen)
{
	netstack__v1__route__init(out);
	out->dst = dst;
	if (prefix_to_pb(&r->dst, dst))
		return ckpt_fail(why, whylen, -EINVAL, "route %zu: destination has family %d",
				 i, r->dst.addr.family);
	if (r->gateway.family && addr_to_pb(&r->gateway, &out->gateway))
		return ckpt_fail(why, whylen, -EINVAL, "route %zu: gateway has family %d",
				 i, r->gateway.family);
	if (r->nic < 0)
		return ckpt_fail(why, whylen, -EINVAL, "route %zu: NIC %d", i, r->nic);
	out->nic = (uint32_t)r->nic;
	out->metric = r->metric;
	return 0;
}

/* A sockaddr of the socket's @family, or none (@len 0). */
static int sockaddr_to_pb(const struct sockaddr_storage *ss, socklen_t len, int family,
			  pb_bytes *addr, uint32_t *port, uint32_t *scope)
{
	if (!len)
		return 0;
	if (ss->ss_family != family)
		return -1;
	if (family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		if (len != sizeof(*sin))
			return -1;
		*addr = (pb_bytes){ .len = 4, .data = (uint8_t *)&sin->sin_addr };
		*port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		if (len != sizeof(*sin6))
			return -1;
		*addr = (pb_bytes){ .len = 16, .data = (uint8_t *)&sin6->sin6_addr };
		*port = ntohs(sin6->sin6_port);
		*scope = sin6->sin6_scope_id;
	}
	return 0;
}

static int sock_to_pb(const struct ns_state_sock *ss, pb_socket *s, char *why, size_t whylen)
{
	netstack__v1__socket__init(s);
	s->id = ss->id;
	s->family = pb_of_int(family_of_pb, ARRAY_SIZE(family_of_pb), ss->family);
	s->type = pb_of_int(type_of_pb, ARRAY_SIZE(type_of_pb), ss->type);
	s->kind = pb_of_int(kind_of_pb, ARRAY_SIZE(kind_of_pb), (int)ss->kind);
	if (!s->family || !s->type || !s->kind)
		return ckpt_fail(why, whylen, -EINVAL,
				 "socket %d: family %d, type %d, kind %d: not all known",
				 ss->id, ss->family, ss->type, (int)ss->kind);
	if (sockaddr_to_pb(&ss->local, ss->local_len, ss->family,
			   &s->local_addr, &s->local_port, &s->local_scope_id))
		return ckpt_fail(why, whylen, -EINVAL,
				 "socket %d: local address is not a %s sockaddr",
				 ss->id, family_name(s->family));
	if (sockaddr_to_pb(&ss->remote, ss->remote_len, ss->family,
			   &s->remote_addr, &s->remote_port, &s->remote_scope_id))
		return ckpt_fail(why, whylen, -EINVAL,
				 "socket %d: peer address is not a %s sockaddr",
				 ss->id, family_name(s->family));
	s->backlog = ss->backlog;
	s->nonblock = ss->nonblock;
	s->reuseaddr = ss->reuseaddr;
	s->keepalive = ss->keepalive;
	s->nodelay = ss->nodelay;
	s->v6only = ss->v6only;
	s->linger0 = ss->linger0;
	s->rcvbuf = ss->rcvbuf;
	s->sndbuf = ss->sndbuf;
	s->rcvtimeo_ms = ss->rcvtimeo_ms;
	s->sndtimeo_ms = ss->sndtimeo_ms;
	s->keep_idle_s = ss->keep_idle_s;
	s->keep_intvl_s = ss->keep_intvl_s;
	s->keep_cnt = ss->keep_cnt;
	return 0;
}

static int build_image(const struct ns_state *st, struct build *b, char *why, size_t whylen)
{
	size_t i, naddrs = 0, np = 0;
	int rc;

	netstack__v1__image__init(&b->img);
	netstack__v1__counters__init(&b->counters);
	netstack__v1__memory_ref__init(&b->memory);
	if (st->nnics > CKPT_MAX_NICS || st->nroutes > CKPT_MAX_ROUTES ||
	    st->nsocks > CKPT_MAX_SOCKETS)
		return ckpt_fail(why, whylen, -EINVAL,
				 "%zu NICs, %zu routes, %zu sockets: over the limits (%u, %u, %u)",
				 st->nnics, st->nroutes, st->nsocks,
				 CKPT_MAX_NICS, CKPT_MAX_ROUTES, CKPT_MAX_SOCKETS);
	if ((st->nnics && !st->nics) || (st->nroutes && !st->routes) || (st->nsocks && !st->socks))
		return ckpt_fail(why, whylen, -EINVAL, "a state array is missing");
	for (i = 0; i < st->nnics; i++) {
		if (st->nics[i].naddrs > NS_STATE_MAX_ADDRS)
			return ckpt_fail(why, whylen, -EINVAL, "nic %d: %zu addresses, at most %d",
					 st->nics[i].id, st->nics[i].naddrs, NS_STATE_MAX_ADDRS);
		naddrs += st->nics[i].naddrs;
	}
	b->nics = calloc(st->nnics + 1, sizeof(*b->nics));
	b->nicp = calloc(st->nnics + 1, sizeof(*b->nicp));
	b->prefixes = calloc(naddrs + st->nroutes + 1, sizeof(*b->prefixes));
	b->prefixp = calloc(naddrs + 1, sizeof(*b->prefixp));
	b->routes = calloc(st->nroutes + 1, sizeof(*b->routes));
	b->routep = calloc(st->nroutes + 1, sizeof(*b->routep));
	b->socks = calloc(st->nsocks + 1, sizeof(*b->socks));
	b->sockp = calloc(st->nsocks + 1, sizeof(*b->sockp));
	if (!b->nics || !b->nicp || !b->prefixes || !b->prefixp || !b->routes || !b->routep ||
	    !b->socks || !b->sockp)
		return ckpt_fail(why, whylen, -ENOMEM, "out of memory building the image");

	b->img.format_version = CKPT_IMAGE_VERSION;
	b->img.clock_ns = st->clock_ns;
	b->img.checkpoint_count = st->checkpoint_count;
#define STATS_TO_PB(f) b->counters.f = st->stats.f;
	NS_STATS_FIELDS(STATS_TO_PB)
#undef STATS_TO_PB
	b->img.counters = &b->counters;
	if (st->memory_id) {
		if (st->memory_regions == 0 || st->memory_regions > CKPT_MAX_REGIONS)
			return ckpt_fail(why, whylen, -EINVAL, "%u memory regions: want 1..%u",
					 st->memory_regions, CKPT_MAX_REGIONS);
		b->memory.image_id = st->memory_id;
		b->memory.regions = st->memory_regions;
		b->img.memory = &b->memory;
	}
	b->img.n_nics = st->nnics;
	b->img.nics = b->nicp;
	for (i = 0; i < st->nnics; i++) {
		b->nicp[i] = &b->nics[i];
		rc = nic_to_pb(&st->nics[i], &b->nics[i], &b->prefixes[np], &b->prefixp[np],
			       why, whylen);
		if (rc)
			return rc;
		np += st->nics[i].naddrs;
	}
	b->img.n_routes = st->nroutes;
	b->img.routes = b->routep;
	for (i = 0; i < st->nroutes; i++) {
		b->routep[i] = &b->routes[i];
		rc = route_to_pb(&st->routes[i], i, &b->routes[i], &b->prefixes[np++], why, whylen);
		if (rc)
			return rc;
	}
	b->img.n_sockets = st->nsocks;
	b->img.sockets = b->sockp;
	for (i = 0; i < st->nsocks; i++) {
		b->sockp[i] = &b->socks[i];
		if ((rc = sock_to_pb(&st->socks[i], &b->socks[i], why, whylen)))
			return rc;
	}
	return 0;
}

int ckpt_state_pack(const struct ns_state *st, size_t headroom, size_t max_payload,
		    uint8_t **bufp, size_t *payload_len, char *why, size_t whylen)
{
	struct build b = { 0 };
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	rc = build_image(st, &b, why, whylen);
	if (!rc) {
		/* The reader's rules; its -EPROTO means an invalid state here. */
		rc = check_image(&b.img, CKPT_IMAGE_VERSION, why, whylen);
		if (rc == -EPROTO)
			rc = -EINVAL;
	}
	if (rc)
		goto out;
	len = netstack__v1__image__get_packed_size(&b.img);
	if (len > max_payload) {
		rc = ckpt_fail(why, whylen, -EFBIG,
			       "the state packs to %zu bytes, over the limit of %zu",
			       len, max_payload);
		goto out;
	}
	buf = malloc(headroom + len);
	if (!buf) {
		rc = ckpt_fail(why, whylen, -ENOMEM, "out of memory packing %zu bytes", len);
		goto out;
	}
	if (netstack__v1__image__pack(&b.img, buf + headroom) != len) {
		free(buf);
		rc = ckpt_fail(why, whylen, -EIO,
			       "protobuf-c packed a size other than it announced");
		goto out;
	}
	*bufp = buf;
	*payload_len = len;
out:
	build_free(&b);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Image -> struct ns_state, once validated                            */
/* ------------------------------------------------------------------ */

static void addr_from_pb(const pb_bytes *b, struct ns_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (b->len == 4) {
		a->family = AF_INET;
		memcpy(&a->v4, b->data, 4);
	} else if (b->len == 16) {
		a->family = AF_INET6;
		memcpy(&a->v6, b->data, 16);
	}
}

static void prefix_from_pb(const pb_prefix *p, struct ns_prefix *out)
{
	memset(out, 0, sizeof(*out));
	addr_from_pb(&p->addr, &out->addr);
	out->len = p->len;
}

static void nic_from_pb(const pb_nic *n, struct ns_state_nic *sn)
{
	size_t k;

	memset(sn, 0, sizeof(*sn));
	sn->id = (int)n->id;
	memcpy(sn->name, n->name.data, n->name.len);
	if (n->device.len)
		memcpy(sn->device, n->device.data, n->device.len);
	strcpy(sn->kind, nic_kind_of_pb[n->kind]);
	memcpy(sn->mac, n->mac.data, sizeof(sn->mac));
	sn->mtu = n->mtu;
	sn->up = n->up;
	sn->naddrs = n->n_addrs;
	for (k = 0; k < n->n_addrs; k++)
		prefix_from_pb(n->addrs[k], &sn->addrs[k]);
}

static void route_from_pb(const pb_route *r, struct ns_route *out)
{
	memset(out, 0, sizeof(*out));
	prefix_from_pb(r->dst, &out->dst);
	addr_from_pb(&r->gateway, &out->gateway);
	out->nic = (int)r->nic;
	out->metric = r->metric;
}

static void sockaddr_from_pb(const pb_bytes *addr, uint32_t port, uint32_t scope, int family,
			     struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	*len = 0;
	if (!addr->len)
		return;
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		memcpy(&sin->sin_addr, addr->data, 4);
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		memcpy(&sin6->sin6_addr, addr->data, 16);
		sin6->sin6_scope_id = scope;
		*len = sizeof(*sin6);
	}
}

static void sock_from_pb(const pb_socket *s, struct ns_state_sock *ss)
{
	memset(ss, 0, sizeof(*ss));
	ss->id = s->id;
	ss->family = family_of_pb[s->family];
	ss->type = type_of_pb[s->type];
	ss->kind = (enum ns_state_sock_kind)kind_of_pb[s->kind];
	sockaddr_from_pb(&s->local_addr, s->local_port, s->local_scope_id, ss->family,
			 &ss->local, &ss->local_len);
	sockaddr_from_pb(&s->remote_addr, s->remote_port, s->remote_scope_id, ss->family,
			 &ss->remote, &ss->remote_len);
	ss->backlog = s->backlog;
	ss->nonblock = s->nonblock;
	ss->reuseaddr = s->reuseaddr;
	ss->keepalive = s->keepalive;
	ss->nodelay = s->nodelay;
	ss->v6only = s->v6only;
	ss->linger0 = s->linger0;
	ss->rcvbuf = s->rcvbuf;
	ss->sndbuf = s->sndbuf;
	ss->rcvtimeo_ms = s->rcvtimeo_ms;
	ss->sndtimeo_ms = s->sndtimeo_ms;
	ss->keep_idle_s = s->keep_idle_s;
	ss->keep_intvl_s = s->keep_intvl_s;
	ss->keep_cnt = s->keep_cnt;
}

static int state_from_pb(const pb_image *m, struct ns_state *st, char *why, size_t whylen)
{
	size_t i;

	memset(st, 0, sizeof(*st));
	st->clock_ns = m->clock_ns;
	st->checkpoint_count = m->checkpoint_count;
#define STATS_FROM_PB(f) st->stats.f = m->counters->f;
	NS_STATS_FIELDS(STATS_FROM_PB)
#undef STATS_FROM_PB
	st->nics = calloc(m->n_nics + 1, sizeof(*st->nics));
	st->routes = calloc(m->n_routes + 1, sizeof(*st->routes));
	st->socks = calloc(m->n_sockets + 1, sizeof(*st->socks));
	if (!st->nics || !st->routes || !st->socks) {
		ns_state_release(st);
		return ckpt_fail(why, whylen, -ENOMEM, "out of memory for the restored state");
	}
	for (i = 0; i < m->n_nics; i++)
		nic_from_pb(m->nics[i], &st->nics[i]);
	st->nnics = m->n_nics;
	for (i = 0; i < m->n_routes; i++)
		route_from_pb(m->routes[i], &st->routes[i]);
	st->nroutes = m->n_routes;
	for (i = 0; i < m->n_sockets; i++)
		sock_from_pb(m->sockets[i], &st->socks[i]);
	st->nsocks = m->n_sockets;
	if (m->memory) {
		st->memory_id = m->memory->image_id;
		st->memory_regions = m->memory->regions;
	}
	return 0;
}

int ckpt_state_unpack(const uint8_t *payload, size_t len, uint32_t version,
		      struct ns_state *st, char *why, size_t whylen)
{
	struct ns_state tmp;
	pb_image *m;
	int rc;

	m = netstack__v1__image__unpack(NULL, len, payload);
	if (!m)
		return ckpt_fail(why, whylen, -EBADMSG,
				 "the payload is not a netstack.v1.Image (or memory ran out)");
	rc = check_image(m, version, why, whylen);
	if (!rc)
		rc = state_from_pb(m, &tmp, why, whylen);
	netstack__v1__image__free_unpacked(m, NULL);
	if (!rc)
		*st = tmp;
	return rc;
}
