/* SPDX-License-Identifier: MIT */
/*
 * test_image.c - unit tests of the checkpoint image's state file
 * (checkpoint/image.c and checkpoint/state_pb.c): CRC32C known answers,
 * the header layout, round trips of a rich and of an empty state, and the
 * refusals, each checked for its error code, a one-line reason, and a
 * caller's state left untouched: missing, foreign, newer, truncated at every
 * offset, any single bit flipped, trailing bytes, symlinks, non-empty
 * directories, and payloads that unpack but say something impossible
 * (built here by editing a real payload and framing it with correct CRCs).
 * Writes that fail (a file size limit, a read-only directory, an invalid
 * state) leave neither state.pb nor the temporary file behind.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "image.h"
#include "netstack.pb-c.h"

typedef Netstack__V1__Image pb_image;

static char root[64];		/* this test's scratch directory */
static char img[128];		/* root/img: not there until written */
static char why[256];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	chmod(path, 0700);
	return remove(path);
}

static void setup(void)
{
	snprintf(root, sizeof(root), "/tmp/test_image.XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	snprintf(img, sizeof(img), "%s/img", root);
	umask(022);
}

static void teardown(void)
{
	chmod(root, 0700);
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(image, .init = setup, .fini = teardown);

/* ------------------------------------------------------------------ */
/* Building and comparing states                                       */
/* ------------------------------------------------------------------ */

static struct ns_prefix pfx(const char *cidr)
{
	struct ns_prefix p;

	memset(&p, 0, sizeof(p));
	cr_assert_eq(ns_prefix_parse(cidr, &p), 0, "%s", cidr);
	return p;
}

static struct ns_addr addr(const char *text)
{
	struct ns_addr a;

	memset(&a, 0, sizeof(a));
	if (text)
		cr_assert_eq(ns_addr_parse(text, &a), 0, "%s", text);
	return a;
}

static socklen_t sa(struct sockaddr_storage *ss, int family, const char *ip, unsigned port,
		    unsigned scope)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		cr_assert_eq(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
		return sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sin6->sin6_scope_id = scope;
		cr_assert_eq(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
		return sizeof(*sin6);
	}
}

static struct ns_state_nic *add_nic(struct ns_state *st, int id, const char *name, const char *kind,
				    const char *device, unsigned mtu, bool up)
{
	struct ns_state_nic *n = &st->nics[st->nnics++];

	memset(n, 0, sizeof(*n));
	n->id = id;
	snprintf(n->name, sizeof(n->name), "%s", name);
	snprintf(n->kind, sizeof(n->kind), "%s", kind);
	snprintf(n->device, sizeof(n->device), "%s", device);
	for (int i = 0; i < 6; i++)
		n->mac[i] = (uint8_t)(0x02 + id * 16 + i);
	n->mtu = mtu;
	n->up = up;
	return n;
}

static void add_route(struct ns_state *st, const char *dst, const char *gw, int nic,
		      unsigned metric)
{
	struct ns_route *r = &st->routes[st->nroutes++];

	memset(r, 0, sizeof(*r));
	r->dst = pfx(dst);
	r->gateway = addr(gw);
	r->nic = nic;
	r->metric = metric;
}

static struct ns_state_sock *add_sock(struct ns_state *st, int id, int family, int type,
				      enum ns_state_sock_kind kind)
{
	struct ns_state_sock *s = &st->socks[st->nsocks++];

	memset(s, 0, sizeof(*s));
	s->id = id;
	s->family = family;
	s->type = type;
	s->kind = kind;
	/* netstack saves the wildcard address even for an unbound socket */
	s->local_len = sa(&s->local, family, family == AF_INET ? "0.0.0.0" : "::", 0, 0);
	return s;
}

/* NICs of every kind with IPv4 and IPv6 addresses, routes of both families
 * with and without a gateway, sockets of every kind, family and type. */
static void rich_state(struct ns_state *st)
{
	struct ns_state_nic *n;
	struct ns_state_sock *s;

	memset(st, 0, sizeof(*st));
	st->clock_ns = 123456789012345ull;
	st->checkpoint_count = 7;
	st->stats = (struct ns_stats){ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, UINT64_MAX };
	st->nics = calloc(4, sizeof(*st->nics));
	st->routes = calloc(6, sizeof(*st->routes));
	st->socks = calloc(12, sizeof(*st->socks));
	cr_assert(st->nics && st->routes && st->socks);

	n = add_nic(st, 1, "eth0", "tap", "nstap0", 1500, true);
	n->addrs[n->naddrs++] = pfx("198.51.100.2/24");
	n->addrs[n->naddrs++] = pfx("fd42:5::2/64");
	n->addrs[n->naddrs++] = pfx("2001:db8:1::7/48");
	n = add_nic(st, 4, "uplink", "fd", "", 9000, false);
	n->addrs[n->naddrs++] = pfx("fd00::1/128");
	n->addrs[n->naddrs++] = pfx("10.0.0.1/8");
	n = add_nic(st, 9, "test-0123456789", "channel", "", 68, true);	/* 15 bytes */

	add_route(st, "0.0.0.0/0", "198.51.100.1", 1, 0);
	add_route(st, "203.0.113.0/24", NULL, 4, 10);
	add_route(st, "::/0", "fd42:5::1", 1, 1);
	add_route(st, "2001:db8:ff::/48", NULL, 4, 4294967295u);
	add_route(st, "203.0.113.128/25", "10.0.0.254", 4, 5);

	add_sock(st, 0, AF_INET, SOCK_STREAM, NS_STATE_SOCK_UNBOUND);
	s = add_sock(st, 3, AF_INET6, SOCK_STREAM, NS_STATE_SOCK_UNBOUND);
	s->nonblock = true;
	s->v6only = true;
	s = add_sock(st, 4, AF_INET, SOCK_STREAM, NS_STATE_SOCK_BOUND);
	s->local_len = sa(&s->local, AF_INET, "198.51.100.2", 8080, 0);
	s->reuseaddr = true;
	s = add_sock(st, 5, AF_INET, SOCK_STREAM, NS_STATE_SOCK_LISTEN);
	s->local_len = sa(&s->local, AF_INET, "0.0.0.0", 80, 0);
	s->backlog = 128;
	s->keepalive = true;
	s->nodelay = true;
	s->linger0 = true;
	s->rcvbuf = 65536;
	s->sndbuf = 131072;
	s->rcvtimeo_ms = 1500;
	s->sndtimeo_ms = INT64_MAX;
	s->keep_idle_s = 60;
	s->keep_intvl_s = 5;
	s->keep_cnt = 9;
	s = add_sock(st, 6, AF_INET6, SOCK_STREAM, NS_STATE_SOCK_LISTEN);
	s->local_len = sa(&s->local, AF_INET6, "::", 443, 0);
	s->backlog = 255;
	s->v6only = true;
	s = add_sock(st, 7, AF_INET6, SOCK_STREAM, NS_STATE_SOCK_BOUND);
	s->local_len = sa(&s->local, AF_INET6, "fe80::1", 22, 2);
	s = add_sock(st, 10, AF_INET, SOCK_DGRAM, NS_STATE_SOCK_UNBOUND);
	s = add_sock(st, 11, AF_INET, SOCK_DGRAM, NS_STATE_SOCK_BOUND);
	s->local_len = sa(&s->local, AF_INET, "198.51.100.2", 53, 0);
	s->rcvbuf = 212992;
	s = add_sock(st, 12, AF_INET, SOCK_DGRAM, NS_STATE_SOCK_CONNECTED);
	s->local_len = sa(&s->local, AF_INET, "198.51.100.2", 40000, 0);
	s->remote_len = sa(&s->remote, AF_INET, "198.51.100.1", 53, 0);
	s = add_sock(st, 13, AF_INET6, SOCK_DGRAM, NS_STATE_SOCK_BOUND);
	s->local_len = sa(&s->local, AF_INET6, "::ffff:198.51.100.2", 5353, 0);
	s = add_sock(st, 65535, AF_INET6, SOCK_DGRAM, NS_STATE_SOCK_CONNECTED);
	s->local_len = sa(&s->local, AF_INET6, "fe80::2", 546, 3);
	s->remote_len = sa(&s->remote, AF_INET6, "fe80::1", 547, 3);
	s->sndtimeo_ms = 1;
	s = add_sock(st, INT_MAX, AF_INET6, SOCK_DGRAM, NS_STATE_SOCK_UNBOUND);
}

/* One NIC, one route, one socket. */
static void small_state(struct ns_state *st)
{
	struct ns_state_nic *n;
	struct ns_state_sock *s;

	memset(st, 0, sizeof(*st));
	st->nics = calloc(1, sizeof(*st->nics));
	st->routes = calloc(1, sizeof(*st->routes));
	st->socks = calloc(1, sizeof(*st->socks));
	cr_assert(st->nics && st->routes && st->socks);
	n = add_nic(st, 1, "eth0", "tap", "tap0", 1500, true);
	n->addrs[n->naddrs++] = pfx("10.1.2.3/24");
	add_route(st, "0.0.0.0/0", "10.1.2.1", 1, 0);
	s = add_sock(st, 0, AF_INET, SOCK_STREAM, NS_STATE_SOCK_LISTEN);
	s->local_len = sa(&s->local, AF_INET, "0.0.0.0", 80, 0);
	s->backlog = 16;
}

static void assert_addr_eq(const struct ns_addr *a, const struct ns_addr *b, const char *what)
{
	cr_assert_eq(a->family, b->family, "%s: family", what);
	if (a->family == AF_INET)
		cr_assert_eq(a->v4.s_addr, b->v4.s_addr, "%s: IPv4 address", what);
	else if (a->family == AF_INET6)
		cr_assert_arr_eq(&a->v6, &b->v6, 16, "%s: IPv6 address", what);
}

static void assert_prefix_eq(const struct ns_prefix *a, const struct ns_prefix *b, const char *what)
{
	assert_addr_eq(&a->addr, &b->addr, what);
	cr_assert_eq(a->len, b->len, "%s: prefix length", what);
}

static void assert_sa_eq(const struct sockaddr_storage *a, socklen_t alen,
			 const struct sockaddr_storage *b, socklen_t blen, const char *what)
{
	cr_assert_eq(alen, blen, "%s: length", what);
	if (!alen)
		return;
	cr_assert_eq(a->ss_family, b->ss_family, "%s: family", what);
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		cr_assert_eq(x->sin_port, y->sin_port, "%s: port", what);
		cr_assert_eq(x->sin_addr.s_addr, y->sin_addr.s_addr, "%s: address", what);
	} else {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		cr_assert_eq(x->sin6_port, y->sin6_port, "%s: port", what);
		cr_assert_arr_eq(&x->sin6_addr, &y->sin6_addr, 16, "%s: address", what);
		cr_assert_eq(x->sin6_scope_id, y->sin6_scope_id, "%s: scope", what);
	}
}

static void assert_state_eq(const struct ns_state *a, const struct ns_state *b)
{
	size_t i, k;

	cr_assert_eq(a->clock_ns, b->clock_ns);
	cr_assert_eq(a->checkpoint_count, b->checkpoint_count);
	cr_assert_arr_eq(&a->stats, &b->stats, sizeof(a->stats));
	cr_assert_eq(a->nnics, b->nnics);
	for (i = 0; i < a->nnics; i++) {
		const struct ns_state_nic *x = &a->nics[i], *y = &b->nics[i];

		cr_assert_eq(x->id, y->id, "nic %zu", i);
		cr_assert_str_eq(x->name, y->name);
		cr_assert_str_eq(x->kind, y->kind);
		cr_assert_str_eq(x->device, y->device);
		cr_assert_arr_eq(x->mac, y->mac, 6);
		cr_assert_eq(x->mtu, y->mtu);
		cr_assert_eq(x->up, y->up);
		cr_assert_eq(x->naddrs, y->naddrs);
		for (k = 0; k < x->naddrs; k++)
			assert_prefix_eq(&x->addrs[k], &y->addrs[k], x->name);
	}
	cr_assert_eq(a->nroutes, b->nroutes);
	for (i = 0; i < a->nroutes; i++) {
		const struct ns_route *x = &a->routes[i], *y = &b->routes[i];

		assert_prefix_eq(&x->dst, &y->dst, "route dst");
		assert_addr_eq(&x->gateway, &y->gateway, "route gateway");
		cr_assert_eq(x->nic, y->nic, "route %zu", i);
		cr_assert_eq(x->metric, y->metric, "route %zu", i);
	}
	cr_assert_eq(a->nsocks, b->nsocks);
	for (i = 0; i < a->nsocks; i++) {
		const struct ns_state_sock *x = &a->socks[i], *y = &b->socks[i];

		cr_assert_eq(x->id, y->id, "socket %zu", i);
		cr_assert_eq(x->family, y->family, "socket %d", x->id);
		cr_assert_eq(x->type, y->type, "socket %d", x->id);
		cr_assert_eq(x->kind, y->kind, "socket %d", x->id);
		assert_sa_eq(&x->local, x->local_len, &y->local, y->local_len, "local");
		assert_sa_eq(&x->remote, x->remote_len, &y->remote, y->remote_len, "remote");
		cr_assert_eq(x->backlog, y->backlog, "socket %d", x->id);
		cr_assert_eq(x->nonblock, y->nonblock, "socket %d", x->id);
		cr_assert_eq(x->reuseaddr, y->reuseaddr, "socket %d", x->id);
		cr_assert_eq(x->keepalive, y->keepalive, "socket %d", x->id);
		cr_assert_eq(x->nodelay, y->nodelay, "socket %d", x->id);
		cr_assert_eq(x->v6only, y->v6only, "socket %d", x->id);
		cr_assert_eq(x->linger0, y->linger0, "socket %d", x->id);
		cr_assert_eq(x->rcvbuf, y->rcvbuf, "socket %d", x->id);
		cr_assert_eq(x->sndbuf, y->sndbuf, "socket %d", x->id);
		cr_assert_eq(x->rcvtimeo_ms, y->rcvtimeo_ms, "socket %d", x->id);
		cr_assert_eq(x->sndtimeo_ms, y->sndtimeo_ms, "socket %d", x->id);
		cr_assert_eq(x->keep_idle_s, y->keep_idle_s, "socket %d", x->id);
		cr_assert_eq(x->keep_intvl_s, y->keep_intvl_s, "socket %d", x->id);
		cr_assert_eq(x->keep_cnt, y->keep_cnt, "socket %d", x->id);
	}
}

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

static void path_in(char *buf, size_t cap, const char *dir, const char *name)
{
	cr_assert_lt((size_t)snprintf(buf, cap, "%s/%s", dir, name), cap);
}

static void put_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static uint8_t *get_file(const char *path, size_t *len)
{
	struct stat sb;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(fstat(fd, &sb), 0);
	buf = malloc((size_t)sb.st_size + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(read(fd, buf, (size_t)sb.st_size), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return buf;
}

static bool exists(const char *dir, const char *name)
{
	char p[256];
	struct stat sb;

	path_in(p, sizeof(p), dir, name);
	return lstat(p, &sb) == 0;
}

/* @dir holds nothing that looks like an image, nor the temporary file. */
static void assert_no_image(const char *dir)
{
	cr_assert_not(exists(dir, CKPT_STATE_FILE), "%s/state.pb exists", dir);
	cr_assert_not(exists(dir, CKPT_STATE_TMP), "%s/.state.pb.tmp exists", dir);
}

static void assert_one_line(const char *s)
{
	cr_assert_gt(strlen(s), 0, "no reason given");
	for (const char *p = s; *p; p++)
		cr_assert((unsigned char)*p >= 0x20 && *p != 0x7f,
			  "reason has a control character: %s", s);
}

/* Read @dir expecting @err; the reason is one line holding @substr (if
 * any) and the caller's state is left as it was. */
static void expect_refused(const char *dir, int err, const char *substr)
{
	struct ns_state st, before;
	int rc;

	memset(&st, 0xa5, sizeof(st));
	before = st;
	why[0] = '\0';
	rc = ckpt_image_read(dir, &st, why, sizeof(why));
	cr_assert_eq(rc, err, "read gave %d (%s), want %d: %s", rc, strerror(-rc), err, why);
	assert_one_line(why);
	if (substr)
		cr_assert_not_null(strstr(why, substr), "reason \"%s\" lacks \"%s\"", why, substr);
	cr_assert_arr_eq(&st, &before, sizeof(st), "the caller's state was touched");
}

static void write_ok(const char *dir, const struct ns_state *st)
{
	why[0] = '\0';
	cr_assert_eq(ckpt_image_write(dir, st, why, sizeof(why)), 0, "write: %s", why);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Frame @payload with a correct header, written here from the documented
 * layout rather than with image.c's code. */
static void put_image(const char *dir, uint32_t version, const uint8_t *payload, size_t len)
{
	char p[256];
	uint8_t *buf = malloc(32 + len);

	cr_assert_not_null(buf);
	mkdir(dir, 0700);
	memcpy(buf, "NSTKIMG1", 8);
	put_le32(buf + 8, version);
	put_le32(buf + 12, 32);
	put_le32(buf + 16, (uint32_t)len);
	put_le32(buf + 20, 0);
	put_le32(buf + 24, ckpt_crc32c(payload, len));
	put_le32(buf + 28, ckpt_crc32c(buf, 28));
	if (len)
		memcpy(buf + 32, payload, len);
	path_in(p, sizeof(p), dir, CKPT_STATE_FILE);
	put_file(p, buf, 32 + len);
	free(buf);
}

/* ------------------------------------------------------------------ */
/* CRC32C, layout, round trips                                         */
/* ------------------------------------------------------------------ */

Test(image, crc32c_known_answers)
{
	uint8_t zeros[32] = { 0 }, ones[32], inc[32];

	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++)
		inc[i] = (uint8_t)i;
	cr_assert_eq(ckpt_crc32c("123456789", 9), 0xE3069283u);	/* the check value */
	cr_assert_eq(ckpt_crc32c("", 0), 0);
	/* RFC 3720, B.4 */
	cr_assert_eq(ckpt_crc32c(zeros, 32), 0x8A9136AAu);
	cr_assert_eq(ckpt_crc32c(ones, 32), 0x62A8AB43u);
	cr_assert_eq(ckpt_crc32c(inc, 32), 0x46DD794Eu);
}

Test(image, header_layout_and_modes)
{
	struct ns_state st;
	char p[256];
	struct stat sb;
	uint8_t *buf;
	size_t len;

	rich_state(&st);
	write_ok(img, &st);
	ns_state_release(&st);
	path_in(p, sizeof(p), img, CKPT_STATE_FILE);
	buf = get_file(p, &len);
	cr_assert_gt(len, 32);
	cr_assert_arr_eq(buf, "NSTKIMG1", 8);
	cr_assert_eq(get_le32(buf + 8), CKPT_IMAGE_VERSION);
	cr_assert_eq(get_le32(buf + 12), 32);
	cr_assert_eq(get_le32(buf + 16) | (uint64_t)get_le32(buf + 20) << 32, len - 32);
	cr_assert_eq(get_le32(buf + 24), ckpt_crc32c(buf + 32, len - 32));
	cr_assert_eq(get_le32(buf + 28), ckpt_crc32c(buf, 28));
	free(buf);

	cr_assert_eq(stat(p, &sb), 0);
	cr_assert_eq(sb.st_mode & 07777, 0600);
	cr_assert_eq(stat(img, &sb), 0);
	cr_assert_eq(sb.st_mode & 07777, 0700);
	cr_assert_not(exists(img, CKPT_STATE_TMP));
}

Test(image, round_trip_rich_state)
{
	struct ns_state st, back;

	rich_state(&st);
	write_ok(img, &st);
	memset(&back, 0, sizeof(back));
	cr_assert_eq(ckpt_image_read(img, &back, why, sizeof(why)), 0, "read: %s", why);
	assert_state_eq(&st, &back);
	ns_state_release(&st);
	ns_state_release(&back);
	cr_assert_null(back.nics);
	cr_assert_eq(back.nnics, 0);
}

Test(image, round_trip_empty_state)
{
	struct ns_state st = { 0 }, back;

	write_ok(img, &st);
	cr_assert_eq(ckpt_image_read(img, &back, why, sizeof(why)), 0, "read: %s", why);
	assert_state_eq(&st, &back);
	ns_state_release(&back);
}

Test(image, encode_matches_the_written_file)
{
	struct ns_state st;
	uint8_t *enc, *file;
	size_t elen, flen;
	char p[256];

	rich_state(&st);
	cr_assert_eq(ckpt_image_encode(&st, &enc, &elen, why, sizeof(why)), 0, "%s", why);
	write_ok(img, &st);
	path_in(p, sizeof(p), img, CKPT_STATE_FILE);
	file = get_file(p, &flen);
	cr_assert_eq(elen, flen);
	cr_assert_arr_eq(enc, file, elen);
	free(enc);
	free(file);
	ns_state_release(&st);
}

Test(image, writes_into_an_existing_empty_directory)
{
	struct ns_state st;

	small_state(&st);
	cr_assert_eq(mkdir(img, 0755), 0);
	write_ok(img, &st);
	ns_state_release(&st);
	cr_assert(exists(img, CKPT_STATE_FILE));
}

/* Every value of every schema enum is used by the rich state, and every
 * counter has its field: a value added to the schema without a C mapping
 * (or the other way round) fails here or in the round trip. */
Test(image, rich_state_covers_every_schema_enum)
{
	struct ns_state st;
	uint8_t *enc;
	size_t len, i;
	pb_image *m;
	unsigned seen_fam = 0, seen_type = 0, seen_kind = 0, seen_nic = 0;

	rich_state(&st);
	cr_assert_eq(ckpt_image_encode(&st, &enc, &len, why, sizeof(why)), 0, "%s", why);
	ns_state_release(&st);
	m = netstack__v1__image__unpack(NULL, len - 32, enc + 32);
	cr_assert_not_null(m);
	for (i = 0; i < m->n_sockets; i++) {
		seen_fam |= 1u << m->sockets[i]->family;
		seen_type |= 1u << m->sockets[i]->type;
		seen_kind |= 1u << m->sockets[i]->kind;
	}
	for (i = 0; i < m->n_nics; i++)
		seen_nic |= 1u << m->nics[i]->kind;
	/* all values but UNSPECIFIED (0) */
	cr_assert_eq(seen_fam, (1u << netstack__v1__family__descriptor.n_values) - 2);
	cr_assert_eq(seen_type, (1u << netstack__v1__socket_type__descriptor.n_values) - 2);
	cr_assert_eq(seen_kind, (1u << netstack__v1__socket_kind__descriptor.n_values) - 2);
	cr_assert_eq(seen_nic, (1u << netstack__v1__nic_kind__descriptor.n_values) - 2);
	cr_assert_eq(netstack__v1__counters__descriptor.n_fields,
		     sizeof(struct ns_stats) / sizeof(uint64_t));
	netstack__v1__image__free_unpacked(m, NULL);
	free(enc);
}

/* ------------------------------------------------------------------ */
/* Refusals: where the image is, what the file is                      */
/* ------------------------------------------------------------------ */

Test(image, refuses_a_missing_directory)
{
	expect_refused(img, -ENOENT, img);
}

Test(image, refuses_a_directory_without_state_pb)
{
	cr_assert_eq(mkdir(img, 0700), 0);
	expect_refused(img, -ENOENT, "no state.pb");
}

Test(image, tolerates_a_null_reason_buffer)
{
	struct ns_state st = { 0 };
	char p[256];

	cr_assert_eq(ckpt_image_read(img, &st, NULL, 0), -ENOENT);
	path_in(p, sizeof(p), root, "occupied");
	put_file(p, "x", 1);
	cr_assert_eq(ckpt_image_write(root, &st, NULL, 0), -EEXIST);
}

Test(image, keeps_the_reason_on_one_line_whatever_the_path)
{
	char dir[128];

	snprintf(dir, sizeof(dir), "%s/two\nlines", root);
	expect_refused(dir, -ENOENT, "two?lines");
}

Test(image, refuses_a_symlinked_state_pb)
{
	struct ns_state st;
	char real[128], p[256], target[256];

	small_state(&st);
	snprintf(real, sizeof(real), "%s/real", root);
	write_ok(real, &st);
	ns_state_release(&st);
	cr_assert_eq(mkdir(img, 0700), 0);
	path_in(p, sizeof(p), img, CKPT_STATE_FILE);
	path_in(target, sizeof(target), real, CKPT_STATE_FILE);
	cr_assert_eq(symlink(target, p), 0);
	expect_refused(img, -ELOOP, "symlink");
}

Test(image, refuses_a_state_pb_that_is_not_a_file)
{
	char p[256];

	cr_assert_eq(mkdir(img, 0700), 0);
	path_in(p, sizeof(p), img, CKPT_STATE_FILE);
	cr_assert_eq(mkfifo(p, 0600), 0);	/* must not block either */
	expect_refused(img, -EINVAL, "not a regular file");
	cr_assert_eq(unlink(p), 0);
	cr_assert_eq(mkdir(p, 0700), 0);
	expect_refused(img, -EINVAL, "not a regular file");
}

Test(image, refuses_a_foreign_file)
{
	static const char text[] = "#!/bin/sh\necho this is not an image\n";
	static const uint8_t png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13,
				       'I', 'H', 'D', 'R', 0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0,
				       0x1f, 0x15, 0xc4, 0x89 };
	char p[256];

	cr_assert_eq(mkdir(img, 0700), 0);
	path_in(p, sizeof(p), img, CKPT_STATE_FILE);
	put_file(p, text, sizeof(text) - 1);
	expect_refused(img, -EINVAL, "not a netstack image");
	put_file(p, png, sizeof(png));
	expect_refused(img, -EINVAL, "not a netstack image");
	put_file(p, "N", 1);	/* a prefix of the magic: cut short, not foreign */
	expect_refused(img, -EBADMSG, "truncated");
	put_file(p, "", 0);
	expect_refused(img, -EBADMSG, "empty");
}

Test(image, refuses_a_newer_format)
{
	struct ns_state st;
	uint8_t *buf;
	size_t len;
	char p[256];

	small_state(&st);
	write_ok(img, &st);
	ns_state_release(&st);
	path_in(p, sizeof(p), img, CKPT_STATE_FILE);
	buf = get_file(p, &len);
	/* version 3 with its header CRC made right: only the version is off */
	put_le32(buf + 8, 3);
	put_le32(buf + 28, ckpt_crc32c(buf, 28));
	put_file(p, buf, len);
	expect_refused(img, -EPROTONOSUPPORT, "image format 3 is newer than this netstack (2)");
	/* a future header need not even be ours: 12 bytes say enough */
	put_file(p, buf, 12);
	expect_refused(img, -EPROTONOSUPPORT, "newer");
	put_le32(buf + 8, 0);
	put_le32(buf + 28, ckpt_crc32c(buf, 28));
	put_file(p, buf, len);
	expect_refused(img, -EPROTONOSUPPORT, "format 0");
	free(buf);
}

Test(image, refuses_an_oversized_file)
{
	char p[256];
	int fd;

	cr_assert_eq(mkdir(img, 0700), 0);
	path_in(p, sizeof(p), img, CKPT_STATE_FILE);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "NSTKIMG1", 8), 8);
	cr_assert_eq(ftruncate(fd, (off_t)CKPT_IMAGE_MAX_SIZE + 1), 0);	/* sparse */
	close(fd);
	expect_refused(img, -EFBIG, "over the limit");
}

/* ------------------------------------------------------------------ */
/* Refusals: damage                                                    */
/* ------------------------------------------------------------------ */

Test(image, refuses_truncation_at_every_offset)
{
	struct ns_state st;
	char p[256], cut[128], q[256];
	uint8_t *buf;
	size_t len, n;

	rich_state(&st);
	write_ok(img, &st);
	ns_state_release(&st);
	path_in(p, sizeof(p), img, CKPT_STATE_FILE);
	buf = get_file(p, &len);
	snprintf(cut, sizeof(cut), "%s/cut", root);
	cr_assert_eq(mkdir(cut, 0700), 0);
	path_in(q, sizeof(q), cut, CKPT_STATE_FILE);
	for (n = 0; n < len; n++) {
		put_file(q, buf, n);
		expect_refused(cut, -EBADMSG, n ? "truncated" : "empty");
	}
	put_file(q, buf, len);
	memset(&st, 0, sizeof(st));
	cr_assert_eq(ckpt_image_read(cut, &st, why, sizeof(why)), 0, "%s", why);
	ns_state_release(&st);
	free(buf);
}

Test(image, refuses_every_single_bit_flip)
{
	struct ns_state st;
	char p[256];
	uint8_t *buf;
	size_t len, i;
	int fd, bit;

	rich_state(&st);
	write_ok(img, &st);
	ns_state_release(&st);
	path_in(p, sizeof(p), img, CKPT_STATE_FILE);
	buf = get_file(p, &len);
	fd = open(p, O_WRONLY);
	cr_assert_geq(fd, 0);
	for (i = 0; i < len; i++) {
		for (bit = 0; bit < 8; bit++) {
			uint8_t b = buf[i] ^ (uint8_t)(1u << bit);
			int rc, want = i < 8 ? -EINVAL : -EBADMSG;

			cr_assert_eq(pwrite(fd, &b, 1, (off_t)i), 1);
			memset(&st, 0, sizeof(st));
			rc = ckpt_image_read(img, &st, why, sizeof(why));
			/* the version is read before the header CRC */
			if (i >= 8 && i < 12)
				want = -EPROTONOSUPPORT;
			cr_assert_eq(rc, want, "byte %zu bit %d: %d %s", i, bit, rc, why);
			assert_one_line(why);
		}
		cr_assert_eq(pwrite(fd, &buf[i], 1, (off_t)i), 1);
	}
	close(fd);
	cr_assert_eq(ckpt_image_read(img, &st, why, sizeof(why)), 0, "%s", why);
	ns_state_release(&st);
	free(buf);
}

Test(image, refuses_trailing_bytes)
{
	struct ns_state st;
	char p[256];
	uint8_t *buf, *longer;
	size_t len;

	small_state(&st);
	write_ok(img, &st);
	ns_state_release(&st);
	path_in(p, sizeof(p), img, CKPT_STATE_FILE);
	buf = get_file(p, &len);
	longer = calloc(1, len + 4096);
	cr_assert_not_null(longer);
	memcpy(longer, buf, len);
	put_file(p, longer, len + 1);
	expect_refused(img, -EBADMSG, "1 bytes after the end");
	put_file(p, longer, len + 4096);
	expect_refused(img, -EBADMSG, "4096 bytes after the end");
	free(longer);
	free(buf);
}

/* ------------------------------------------------------------------ */
/* Refusals: payloads that unpack but say something impossible         */
/* ------------------------------------------------------------------ */

static void set_bytes(ProtobufCBinaryData *b, const void *data, size_t len)
{
	free(b->data);
	b->data = len ? malloc(len) : NULL;
	if (len)
		memcpy(b->data, data, len);
	b->len = len;
}

static Netstack__V1__Prefix *new_prefix(size_t addr_len, uint32_t len)
{
	Netstack__V1__Prefix *p = malloc(sizeof(*p));
	static const uint8_t a[16] = { 0xfd };

	cr_assert_not_null(p);
	netstack__v1__prefix__init(p);
	set_bytes(&p->addr, a, addr_len);
	p->len = len;
	return p;
}

static Netstack__V1__Socket *sock_by_id(pb_image *m, int32_t id)
{
	for (size_t i = 0; i < m->n_sockets; i++)
		if (m->sockets[i]->id == id)
			return m->sockets[i];
	cr_assert_fail("no socket %d", id);
	return NULL;
}

/* The header version expect_bad_payload() frames with. */
static uint32_t frame_version = CKPT_IMAGE_VERSION;

/* The rich state's payload, edited by @mutate, framed with correct CRCs;
 * the reader must refuse it with -EPROTO and a reason holding @substr. */
static void expect_bad_payload(void (*mutate)(pb_image *m), const char *substr)
{
	struct ns_state st;
	uint8_t *enc, *out;
	size_t len, olen;
	pb_image *m;

	rich_state(&st);
	cr_assert_eq(ckpt_image_encode(&st, &enc, &len, why, sizeof(why)), 0, "%s", why);
	ns_state_release(&st);
	m = netstack__v1__image__unpack(NULL, len - 32, enc + 32);
	cr_assert_not_null(m);
	if (mutate)
		mutate(m);
	olen = netstack__v1__image__get_packed_size(m);
	out = malloc(olen + 1);
	cr_assert_not_null(out);
	cr_assert_eq(netstack__v1__image__pack(m, out), olen);
	netstack__v1__image__free_unpacked(m, NULL);
	put_image(img, frame_version, out, olen);
	if (mutate) {
		expect_refused(img, -EPROTO, substr);
	} else {
		cr_assert_eq(ckpt_image_read(img, &st, why, sizeof(why)), 0, "%s", why);
		ns_state_release(&st);
	}
	free(out);
	free(enc);
}

/* The harness itself: an unedited payload framed by put_image() reads. */
Test(image, reads_a_payload_framed_by_hand)
{
	expect_bad_payload(NULL, NULL);
}

static Netstack__V1__MemoryRef *memory_ref(uint64_t id, uint32_t regions);

static void as_format_1(pb_image *m)
{
	m->format_version = 1;
}

static void as_format_1_with_memory(pb_image *m)
{
	m->format_version = 1;
	m->memory = memory_ref(7, 1);
}

/* Images of format 1 (before the memory file) still restore; one that
 * names a memory file is not format 1. */
Test(image, reads_format_1_but_not_with_memory)
{
	struct ns_state st;

	frame_version = 1;
	expect_bad_payload(as_format_1_with_memory, "format 1 has no memory file");
	/* expect_bad_payload() wants a refusal for a mutation: frame by hand. */
	rich_state(&st);
	{
		uint8_t *enc, *out;
		size_t len, olen;
		pb_image *m;

		cr_assert_eq(ckpt_image_encode(&st, &enc, &len, why, sizeof(why)), 0);
		m = netstack__v1__image__unpack(NULL, len - 32, enc + 32);
		as_format_1(m);
		olen = netstack__v1__image__get_packed_size(m);
		out = malloc(olen);
		netstack__v1__image__pack(m, out);
		netstack__v1__image__free_unpacked(m, NULL);
		put_image(img, 1, out, olen);
		free(out);
		free(enc);
	}
	ns_state_release(&st);
	cr_assert_eq(ckpt_image_read(img, &st, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(st.memory_id, 0);
	ns_state_release(&st);
}

static Netstack__V1__MemoryRef *memory_ref(uint64_t id, uint32_t regions)
{
	/* malloc'ed: free_unpacked() frees it with the message */
	Netstack__V1__MemoryRef *ref = malloc(sizeof(*ref));

	cr_assert_not_null(ref);
	netstack__v1__memory_ref__init(ref);
	ref->image_id = id;
	ref->regions = regions;
	return ref;
}

#define BAD_PAYLOAD(name, substr, ...)				\
	static void mutate_##name(pb_image *m) { __VA_ARGS__; }	\
	Test(image, refuses_payload_##name) { expect_bad_payload(mutate_##name, substr); }

/* The rich state: nics[0] eth0 (tap, id 1: IPv4 /24, two IPv6), nics[1]
 * uplink (fd, id 4), nics[2] (channel, id 9); routes[0] 0.0.0.0/0 via
 * 198.51.100.1; sockets 0 (TCP v4 unbound), 4 (TCP v4 bound), 5 (TCP v4
 * listen), 6 (TCP v6 listen), 11 (UDP v4 bound), 12 (UDP v4 connected),
 * 13 (UDP v6 bound). */
BAD_PAYLOAD(bad_family, "unknown family 7", sock_by_id(m, 4)->family = 7)
BAD_PAYLOAD(unspecified_family, "unknown family 0", sock_by_id(m, 4)->family = 0)
BAD_PAYLOAD(bad_type, "unknown type 3", sock_by_id(m, 4)->type = 3)
BAD_PAYLOAD(bad_kind, "unknown kind 9", sock_by_id(m, 4)->kind = 9)
BAD_PAYLOAD(bad_nic_kind, "unknown endpoint kind 4", m->nics[1]->kind = 4)
BAD_PAYLOAD(address_length_5, "is 5 bytes",
	    set_bytes(&sock_by_id(m, 4)->local_addr, "\1\2\3\4\5", 5))
BAD_PAYLOAD(address_of_other_family, "needs 16",
	    set_bytes(&sock_by_id(m, 13)->local_addr, "\1\2\3\4", 4))
BAD_PAYLOAD(prefix_address_length_5, "not 4 or 16",
	    set_bytes(&m->nics[0]->addrs[0]->addr, "\1\2\3\4\5", 5))
BAD_PAYLOAD(prefix_33_on_ipv4, "prefix length 33", m->nics[0]->addrs[0]->len = 33)
BAD_PAYLOAD(prefix_129_on_ipv6, "prefix length 129", m->nics[0]->addrs[1]->len = 129)
BAD_PAYLOAD(route_prefix_33, "prefix length 33", m->routes[0]->dst->len = 33)
BAD_PAYLOAD(duplicate_socket_id, "two sockets have id 5", sock_by_id(m, 4)->id = 5)
BAD_PAYLOAD(negative_socket_id, "negative", sock_by_id(m, 4)->id = -1)
BAD_PAYLOAD(duplicate_nic_id, "two NICs have id 1", m->nics[1]->id = 1)
BAD_PAYLOAD(nic_id_zero, "id 0", m->nics[1]->id = 0)
BAD_PAYLOAD(duplicate_nic_name, "two NICs are named eth0", set_bytes(&m->nics[1]->name, "eth0", 4))
BAD_PAYLOAD(route_to_unknown_nic, "NIC 999", m->routes[0]->nic = 999)
BAD_PAYLOAD(route_to_nic_zero, "NIC 0", m->routes[0]->nic = 0)
BAD_PAYLOAD(route_without_destination, "destination is missing",
	    netstack__v1__prefix__free_unpacked(m->routes[0]->dst, NULL); m->routes[0]->dst = NULL)
BAD_PAYLOAD(gateway_of_other_family, "gateway is 16 bytes",
	    set_bytes(&m->routes[0]->gateway, "0123456789abcdef", 16))
BAD_PAYLOAD(mtu_40, "MTU 40", m->nics[0]->mtu = 40)
BAD_PAYLOAD(mtu_65522, "MTU 65522", m->nics[0]->mtu = 65522)
BAD_PAYLOAD(name_with_nul, "holds a NUL", set_bytes(&m->nics[0]->name, "et\0h", 4))
BAD_PAYLOAD(name_of_16_bytes, "16 bytes", set_bytes(&m->nics[0]->name, "0123456789abcdef", 16))
BAD_PAYLOAD(empty_name, "0 bytes", set_bytes(&m->nics[0]->name, NULL, 0))
BAD_PAYLOAD(device_with_nul, "holds a NUL", set_bytes(&m->nics[0]->device, "ta\0p", 4))
BAD_PAYLOAD(tap_without_device, "a TAP without a device", set_bytes(&m->nics[0]->device, NULL, 0))
BAD_PAYLOAD(device_on_an_fd, "only a TAP", set_bytes(&m->nics[1]->device, "tap9", 4))
BAD_PAYLOAD(mac_of_5_bytes, "MAC is 5 bytes", set_bytes(&m->nics[0]->mac, "\2\0\0\0\1", 5))
BAD_PAYLOAD(nine_addresses, "9 addresses",
	    Netstack__V1__Nic *n = m->nics[2];
	    n->addrs = realloc(n->addrs, 9 * sizeof(*n->addrs));
	    for (n->n_addrs = 0; n->n_addrs < 9; n->n_addrs++)
		    n->addrs[n->n_addrs] = new_prefix(4, 32))
BAD_PAYLOAD(no_counters, "no counters",
	    netstack__v1__counters__free_unpacked(m->counters, NULL); m->counters = NULL)
BAD_PAYLOAD(format_version_mismatch, "payload says format 1, header 2", m->format_version = 1)
BAD_PAYLOAD(memory_id_0, "memory file's id is 0", m->memory = memory_ref(0, 1))
BAD_PAYLOAD(memory_65_regions, "65 memory regions", m->memory = memory_ref(7, 65))
BAD_PAYLOAD(checkpoint_count_over_int64, "checkpoint count",
	    m->checkpoint_count = (uint64_t)INT64_MAX + 1)
BAD_PAYLOAD(listening_udp, "a listening UDP socket",
	    sock_by_id(m, 11)->kind = NETSTACK__V1__SOCKET_KIND__SOCKET_KIND_LISTEN;
	    sock_by_id(m, 11)->backlog = 5)
BAD_PAYLOAD(connected_tcp, "a connected TCP socket",
	    Netstack__V1__Socket *s = sock_by_id(m, 4);
	    s->kind = NETSTACK__V1__SOCKET_KIND__SOCKET_KIND_CONNECTED;
	    set_bytes(&s->remote_addr, "\1\2\3\4", 4); s->remote_port = 80)
BAD_PAYLOAD(bound_without_address, "without a local address",
	    set_bytes(&sock_by_id(m, 11)->local_addr, NULL, 0); sock_by_id(m, 11)->local_port = 0)
BAD_PAYLOAD(port_without_address, "a port or scope but no address",
	    set_bytes(&sock_by_id(m, 0)->local_addr, NULL, 0); sock_by_id(m, 0)->local_port = 9)
BAD_PAYLOAD(connected_without_peer, "connected but without a peer",
	    set_bytes(&sock_by_id(m, 12)->remote_addr, NULL, 0); sock_by_id(m, 12)->remote_port = 0)
BAD_PAYLOAD(peer_on_a_bound_socket, "has a peer but is not connected",
	    set_bytes(&sock_by_id(m, 11)->remote_addr, "\1\2\3\4", 4))
BAD_PAYLOAD(port_65536, "port 65536", sock_by_id(m, 4)->local_port = 65536)
BAD_PAYLOAD(scope_on_ipv4, "scope id on IPv4", sock_by_id(m, 4)->local_scope_id = 1)
BAD_PAYLOAD(backlog_256, "backlog 256", sock_by_id(m, 5)->backlog = 256)
BAD_PAYLOAD(listener_backlog_0, "backlog 0", sock_by_id(m, 5)->backlog = 0)
BAD_PAYLOAD(negative_backlog, "backlog -1", sock_by_id(m, 4)->backlog = -1)
BAD_PAYLOAD(v6only_on_ipv4, "IPV6_V6ONLY", sock_by_id(m, 4)->v6only = 1)
BAD_PAYLOAD(tcp_options_on_udp, "TCP options", sock_by_id(m, 11)->nodelay = 1)
BAD_PAYLOAD(rcvbuf_over_int, "over 2147483647", sock_by_id(m, 4)->rcvbuf = 0x80000000u)
BAD_PAYLOAD(negative_timeout, "negative timeout", sock_by_id(m, 4)->rcvtimeo_ms = -1)
BAD_PAYLOAD(unknown_field_in_a_nic, "nic 1 has 1 field(s) this netstack does not know",
	    Netstack__V1__Nic *n = m->nics[1];
	    n->base.unknown_fields = calloc(1, sizeof(*n->base.unknown_fields));
	    n->base.n_unknown_fields = 1;
	    n->base.unknown_fields[0] = (ProtobufCMessageUnknownField){
		    .tag = 99, .wire_type = PROTOBUF_C_WIRE_TYPE_VARINT,
		    .len = 1, .data = calloc(1, 1) })

/* Unknown fields at the top, and counts over the limits, in raw bytes. */
Test(image, refuses_an_unknown_top_level_field)
{
	struct ns_state st;
	uint8_t *enc, *out;
	size_t len;

	small_state(&st);
	cr_assert_eq(ckpt_image_encode(&st, &enc, &len, why, sizeof(why)), 0, "%s", why);
	ns_state_release(&st);
	out = malloc(len - 32 + 3);
	cr_assert_not_null(out);
	memcpy(out, enc + 32, len - 32);
	memcpy(out + len - 32, "\x98\x06\x01", 3);	/* field 99, varint 1 */
	put_image(img, CKPT_IMAGE_VERSION, out, len - 32 + 3);
	expect_refused(img, -EPROTO, "does not know");
	free(out);
	free(enc);
}

Test(image, refuses_too_many_nics)
{
	size_t n = CKPT_MAX_NICS + 1, len = 0;
	uint8_t *p = malloc(4 + 2 * n);

	cr_assert_not_null(p);
	memcpy(p, "\x08\x02\x3a\x00", 4);	/* format_version 2, empty counters */
	len = 4;
	for (size_t i = 0; i < n; i++, len += 2)
		memcpy(p + len, "\x22\x00", 2);	/* an empty Nic */
	put_image(img, CKPT_IMAGE_VERSION, p, len);
	expect_refused(img, -EPROTO, "1025 NICs");
	free(p);
}

Test(image, refuses_a_payload_that_does_not_unpack)
{
	put_image(img, CKPT_IMAGE_VERSION, (const uint8_t *)"\x22\x05\x08", 3);	/* a Nic cut short */
	expect_refused(img, -EBADMSG, "not a netstack.v1.Image");
}

/* ------------------------------------------------------------------ */
/* Writing: refusals and crash safety                                  */
/* ------------------------------------------------------------------ */

Test(image, refuses_to_write_into_a_non_empty_directory)
{
	struct ns_state st;
	char p[256];

	small_state(&st);
	cr_assert_eq(mkdir(img, 0700), 0);
	path_in(p, sizeof(p), img, "pages.img");
	put_file(p, "x", 1);
	cr_assert_eq(ckpt_image_write(img, &st, why, sizeof(why)), -EEXIST);
	assert_one_line(why);
	cr_assert_not_null(strstr(why, "is not empty"), "%s", why);
	assert_no_image(img);
	cr_assert(exists(img, "pages.img"));
	/* nor over an image already there */
	cr_assert_eq(unlink(p), 0);
	write_ok(img, &st);
	cr_assert_eq(ckpt_image_write(img, &st, why, sizeof(why)), -EEXIST);
	ns_state_release(&st);
}

Test(image, refuses_to_write_through_a_symlink)
{
	struct ns_state st;
	char real[128], slash[160];

	small_state(&st);
	snprintf(real, sizeof(real), "%s/real", root);
	cr_assert_eq(mkdir(real, 0700), 0);
	cr_assert_eq(symlink(real, img), 0);
	cr_assert_eq(ckpt_image_write(img, &st, why, sizeof(why)), -ELOOP);
	assert_one_line(why);
	cr_assert_not_null(strstr(why, "is a symlink"), "%s", why);
	assert_no_image(real);
	/* a trailing slash would make the kernel resolve it first */
	snprintf(slash, sizeof(slash), "%s//", img);
	cr_assert_eq(ckpt_image_write(slash, &st, why, sizeof(why)), -ELOOP);
	assert_no_image(real);
	/* a dangling one is not followed to create its target */
	cr_assert_eq(unlink(img), 0);
	cr_assert_eq(rmdir(real), 0);
	cr_assert_eq(symlink(real, img), 0);
	cr_assert_eq(ckpt_image_write(img, &st, why, sizeof(why)), -ELOOP);
	cr_assert_not(exists(root, "real"));
	ns_state_release(&st);
}

Test(image, refuses_to_write_over_a_file_or_under_nothing)
{
	struct ns_state st;
	char deep[192];

	small_state(&st);
	put_file(img, "x", 1);
	cr_assert_eq(ckpt_image_write(img, &st, why, sizeof(why)), -ENOTDIR);
	assert_one_line(why);
	snprintf(deep, sizeof(deep), "%s/no/such/dir", root);
	cr_assert_eq(ckpt_image_write(deep, &st, why, sizeof(why)), -ENOENT);
	assert_one_line(why);
	ns_state_release(&st);
}

Test(image, refuses_to_write_an_invalid_state)
{
	struct ns_state st;

	rich_state(&st);
	st.socks[0].family = 99;
	cr_assert_eq(ckpt_image_write(img, &st, why, sizeof(why)), -EINVAL);
	assert_one_line(why);
	cr_assert_not(exists(root, "img"), "a refused write created the directory");
	st.socks[0].family = AF_INET;
	st.nics[0].mtu = 40;
	cr_assert_eq(ckpt_image_write(img, &st, why, sizeof(why)), -EINVAL);
	cr_assert_not_null(strstr(why, "MTU 40"), "%s", why);
	st.nics[0].mtu = 1500;
	memset(st.nics[0].name, 'x', sizeof(st.nics[0].name));	/* no NUL */
	cr_assert_eq(ckpt_image_write(img, &st, why, sizeof(why)), -EINVAL);
	snprintf(st.nics[0].name, sizeof(st.nics[0].name), "eth0");
	st.routes[0].nic = 2;
	cr_assert_eq(ckpt_image_write(img, &st, why, sizeof(why)), -EINVAL);
	cr_assert_not_null(strstr(why, "NIC 2"), "%s", why);
	cr_assert_not(exists(root, "img"));
	ns_state_release(&st);
}

/* A write that fails halfway (the file size limit stops it) leaves no
 * state.pb, no temporary file, and no directory it created. */
Test(image, a_failed_write_leaves_no_image)
{
	struct rlimit rl = { .rlim_cur = 64, .rlim_max = RLIM_INFINITY };
	struct ns_state st;

	rich_state(&st);
	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	cr_assert_eq(ckpt_image_write(img, &st, why, sizeof(why)), -EFBIG);
	assert_one_line(why);
	cr_assert_not(exists(root, "img"));
	cr_assert_eq(mkdir(img, 0700), 0);
	cr_assert_eq(ckpt_image_write(img, &st, why, sizeof(why)), -EFBIG);
	assert_no_image(img);
	cr_assert(exists(root, "img"), "a directory the caller made was removed");
	rl.rlim_cur = RLIM_INFINITY;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	write_ok(img, &st);
	ns_state_release(&st);
}

/* Drop the capabilities that let root ignore file modes (this test runs in
 * its own process), so a read-only directory binds root too. */
static void drop_dac_override(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	cr_assert_eq(syscall(SYS_capget, &h, d), 0);
	d[0].effective &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH) |
			    (1u << CAP_FOWNER));
	cr_assert_eq(syscall(SYS_capset, &h, d), 0);
}

Test(image, a_read_only_directory_leaves_no_image)
{
	struct ns_state st;

	small_state(&st);
	drop_dac_override();
	cr_assert_eq(mkdir(img, 0500), 0);
	cr_assert_eq(ckpt_image_write(img, &st, why, sizeof(why)), -EACCES, "%s", why);
	assert_one_line(why);
	assert_no_image(img);
	ns_state_release(&st);
}
