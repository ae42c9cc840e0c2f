/* SPDX-License-Identifier: MIT */
/*
 * test_stack_api.c - the stack, NIC, address and route calls of netstack.h
 * (netstack/stack.c, nic.c and addr.c) against their documented contract:
 * one stack per process, start and stop, NULL arguments, NIC validation,
 * defaults, description and listing, prefix parsing and address
 * formatting, the address slots of a NIC, the route table (gateway
 * resolution, conflicts, listing, removal with its NIC) and the counters.
 * Where a call's effect shows on the wire, the test drives the stack through
 * an in-memory channel endpoint and looks at the frames with tests/unit's
 * frame toolkit (ARP for a gateway, fragment sizes after an MTU change).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/icmp6.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frames.h"
#include "netstack.h"

#define WAIT_MS 5000	/* bound on every wait that should succeed */
#define QUIET_MS 200	/* how long "nothing happens" is watched */

static const uint8_t mac1[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a };
static const uint8_t peer_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x77 };
static const uint8_t gw_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0xfe };

static struct ns_stack *stack;

static void teardown(void)
{
	ns_stack_free(stack);
	stack = NULL;
}

TestSuite(stack_api, .fini = teardown, .timeout = 30);
TestSuite(nic_api, .fini = teardown, .timeout = 30);
TestSuite(addr_api, .fini = teardown, .timeout = 30);
TestSuite(route_api, .fini = teardown, .timeout = 30);

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static void stack_new_quiet(void)
{
	struct ns_stack_config cfg = { .log_level = NS_LOG_WARNING };

	cr_assert_eq(ns_stack_new(&cfg, &stack), 0);
}

static struct ns_endpoint *channel(void)
{
	struct ns_endpoint *ep;

	cr_assert_eq(ns_endpoint_channel_new(&ep), 0);
	return ep;
}

/* A channel NIC named @name with MAC @mac; *epp keeps the endpoint for
 * injecting and reading frames (the stack owns it). */
static int channel_nic(const char *name, const uint8_t mac[6], struct ns_endpoint **epp)
{
	struct ns_nic_config cfg = { .name = name };
	struct ns_endpoint *ep = channel();
	int id;

	if (mac)
		memcpy(cfg.mac, mac, 6);
	id = ns_nic_add(stack, &cfg, ep);
	cr_assert_geq(id, 1, "ns_nic_add: %d", id);
	if (epp)
		*epp = ep;
	return id;
}

static struct ns_prefix prefix(const char *text)
{
	struct ns_prefix p;

	cr_assert_eq(ns_prefix_parse(text, &p), 0, "'%s' parses", text);
	return p;
}

static struct ns_addr addr(const char *text)
{
	struct ns_addr a;

	cr_assert_eq(ns_addr_parse(text, &a), 0, "'%s' parses", text);
	return a;
}

static void addr_add(int nic, const char *text)
{
	struct ns_prefix p = prefix(text);
	int rc = ns_addr_add(stack, nic, &p);

	cr_assert_eq(rc, 0, "ns_addr_add %s: %d", text, rc);
}

/* "198.51.100.0/24" for a prefix (via ns_addr_format). */
static const char *prefix_text(const struct ns_prefix *p, char buf[64])
{
	char a[INET6_ADDRSTRLEN];

	cr_assert_geq(ns_addr_format(&p->addr, a, sizeof(a)), 0);
	snprintf(buf, 64, "%s/%u", a, p->len);
	return buf;
}

/* "0.0.0.0/0 via 198.51.100.254 nic 1" or "198.51.100.0/24 nic 1". */
static const char *route_text(const struct ns_route *r, char buf[160])
{
	char d[64], g[INET6_ADDRSTRLEN];

	prefix_text(&r->dst, d);
	if (r->gateway.family) {
		cr_assert_geq(ns_addr_format(&r->gateway, g, sizeof(g)), 0);
		snprintf(buf, 160, "%s via %s nic %d", d, g, r->nic);
	} else {
		snprintf(buf, 160, "%s nic %d", d, r->nic);
	}
	return buf;
}

static bool route_listed(const char *want)
{
	struct ns_route r[32];
	char buf[160];
	int n = ns_route_list(stack, r, 32), i;

	cr_assert_geq(n, 0);
	cr_assert_leq(n, 32);
	for (i = 0; i < n; i++)
		if (strcmp(route_text(&r[i], buf), want) == 0)
			return true;
	return false;
}

static struct ns_route route(const char *dst, const char *gw, int nic)
{
	struct ns_route r;

	memset(&r, 0, sizeof(r));
	r.dst = prefix(dst);
	if (gw)
		r.gateway = addr(gw);
	r.nic = nic;
	return r;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

typedef bool (*frame_pred)(const struct frame_parsed *f, const void *arg);

/* The next frame the stack sends that @pred accepts, within @ms; others
 * are passed over. Return: its length, or -ETIMEDOUT. */
static ssize_t wait_frame(struct ns_endpoint *ep, frame_pred pred, const void *arg, int ms,
			  uint8_t *buf, size_t cap, struct frame_parsed *f)
{
	int64_t deadline = now_ms() + ms;

	do {
		ssize_t n = ns_channel_read(ep, buf, cap);

		if (n == -EAGAIN) {
			sleep_ms(2);
			continue;
		}
		cr_assert_gt(n, 0, "ns_channel_read: %zd", n);
		cr_assert_eq(frame_parse(buf, (size_t)n, f), 0, "the stack sent a malformed frame");
		cr_assert(f->csum_ok, "the stack sent a bad checksum");
		if (pred(f, arg))
			return n;
	} while (now_ms() < deadline);
	return -ETIMEDOUT;
}

static bool is_arp_request_for(const struct frame_parsed *f, const void *arg)
{
	const struct in_addr *target = arg;

	return f->ethertype == FRAME_ETH_ARP && f->arp_op == FRAME_ARP_REQUEST &&
	       f->arp_tpa.s_addr == target->s_addr;
}

static bool is_arp_reply(const struct frame_parsed *f, const void *arg)
{
	(void)arg;
	return f->ethertype == FRAME_ETH_ARP && f->arp_op == FRAME_ARP_REPLY;
}

static bool is_ns_for(const struct frame_parsed *f, const void *arg)
{
	return f->ip_version == 6 && f->proto == IPPROTO_ICMPV6 &&
	       f->icmp_type == ND_NEIGHBOR_SOLICIT && IN6_ARE_ADDR_EQUAL(&f->nd_target, arg);
}

/* UDP, or any fragment of it (each carries the protocol in its IP header). */
static bool is_udp(const struct frame_parsed *f, const void *arg)
{
	(void)arg;
	return f->ip_version && f->proto == IPPROTO_UDP;
}

/* Inject a frame the peer (198.51.100.2 at peer_mac) sends: an ARP request
 * for @target_ip, asked of the NIC with MAC @nic_mac. */
static void inject_arp_request(struct ns_endpoint *ep, const uint8_t nic_mac[6], const char *from,
			       const uint8_t from_mac[6], const char *target_ip)
{
	struct frame_path p;
	uint8_t f[64];
	ssize_t n;

	cr_assert_eq(frame_path_init(&p, from_mac, from, nic_mac, target_ip), 0);
	n = frame_arp(f, sizeof(f), &p, FRAME_ARP_REQUEST);
	cr_assert_gt(n, 0);
	cr_assert_eq(ns_channel_inject(ep, f, (size_t)n), 0);
}

static void inject_arp_reply(struct ns_endpoint *ep, const uint8_t nic_mac[6], const char *nic_ip,
			     const char *from, const uint8_t from_mac[6])
{
	struct frame_path p;
	uint8_t f[64];
	ssize_t n;

	cr_assert_eq(frame_path_init(&p, from_mac, from, nic_mac, nic_ip), 0);
	n = frame_arp(f, sizeof(f), &p, FRAME_ARP_REPLY);
	cr_assert_gt(n, 0);
	cr_assert_eq(ns_channel_inject(ep, f, (size_t)n), 0);
}

static int udp_socket_to(const char *ip, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	int u;

	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		cr_assert_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
		*len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		cr_assert_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
		*len = sizeof(*s4);
	}
	u = ns_socket(stack, ss->ss_family, SOCK_DGRAM, 0);
	cr_assert_geq(u, 0);
	return u;
}

/* ------------------------------------------------------------------ */
/* The stack                                                           */
/* ------------------------------------------------------------------ */

Test(stack_api, a_second_stack_in_the_process_is_ebusy)
{
	struct ns_stack *second = (struct ns_stack *)&second;

	stack_new_quiet();
	cr_expect_eq(ns_stack_new(NULL, &second), -EBUSY);
	cr_expect_eq(second, (struct ns_stack *)&second, "the result is untouched");
}

Test(stack_api, a_freed_stack_can_be_created_again)
{
	stack_new_quiet();
	ns_stack_free(stack);
	stack = NULL;
	cr_expect_eq(ns_stack_new(NULL, &stack), 0);
	cr_expect_not_null(stack);
}

Test(stack_api, null_arguments_are_einval_everywhere)
{
	struct ns_endpoint *ep = NULL;
	struct ns_prefix p = prefix("198.51.100.1/24");
	struct ns_route r = route("0.0.0.0/0", "198.51.100.254", 0);
	struct ns_nic_info info;
	struct ns_stats st;
	struct ns_addr a;
	struct pollfd pfd = { .fd = 0, .events = POLLIN };
	char buf[64];
	int ids[2], fd, nic;

	cr_expect_eq(ns_stack_new(NULL, NULL), -EINVAL);
	stack_new_quiet();
	nic = channel_nic("n0", mac1, &ep);

	cr_expect_eq(ns_stack_start(NULL), -EINVAL);
	cr_expect_eq(ns_stack_stop(NULL), -EINVAL);
	cr_expect_eq(ns_stack_notify_fd(NULL), -EINVAL);
	cr_expect_eq(ns_stack_stats(NULL, &st), -EINVAL);
	cr_expect_eq(ns_stack_stats(stack, NULL), -EINVAL);

	cr_expect_eq(ns_endpoint_tap_open(NULL, 0, &ep), -EINVAL);
	cr_expect_eq(ns_endpoint_channel_new(NULL), -EINVAL);
	fd = open("/dev/null", O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_expect_eq(ns_endpoint_fd_open(fd, NULL), -EINVAL);
	cr_expect_eq(fcntl(fd, F_GETFD), -1, "the fd is closed on failure too");
	cr_expect_eq(ns_channel_inject(NULL, buf, 60), -EINVAL);
	cr_expect_eq(ns_channel_inject(ep, NULL, 60), -EINVAL);
	cr_expect_eq(ns_channel_read(NULL, buf, sizeof(buf)), -EINVAL);
	cr_expect_eq(ns_channel_read(ep, NULL, 60), -EINVAL);

	cr_expect_eq(ns_nic_add(NULL, NULL, ep), -EINVAL);
	cr_expect_eq(ns_nic_add(stack, NULL, NULL), -EINVAL);
	cr_expect_eq(ns_nic_remove(NULL, nic), -EINVAL);
	cr_expect_eq(ns_nic_set_up(NULL, nic, true), -EINVAL);
	cr_expect_eq(ns_nic_set_mtu(NULL, nic, 1500), -EINVAL);
	cr_expect_eq(ns_nic_info(NULL, nic, &info), -EINVAL);
	cr_expect_eq(ns_nic_info(stack, nic, NULL), -EINVAL);
	cr_expect_eq(ns_nic_list(NULL, ids, 2), -EINVAL);
	cr_expect_eq(ns_nic_list(stack, NULL, 2), -EINVAL);

	cr_expect_eq(ns_addr_parse(NULL, &a), -EINVAL);
	cr_expect_eq(ns_addr_parse("198.51.100.1", NULL), -EINVAL);
	cr_expect_eq(ns_prefix_parse(NULL, &p), -EINVAL);
	cr_expect_eq(ns_prefix_parse("198.51.100.1/24", NULL), -EINVAL);
	cr_expect_eq(ns_addr_format(NULL, buf, sizeof(buf)), -EINVAL);
	cr_expect_eq(ns_addr_format(&p.addr, NULL, 64), -EINVAL);
	cr_expect_eq(ns_addr_add(NULL, nic, &p), -EINVAL);
	cr_expect_eq(ns_addr_add(stack, nic, NULL), -EINVAL);
	cr_expect_eq(ns_addr_del(NULL, nic, &p), -EINVAL);
	cr_expect_eq(ns_addr_del(stack, nic, NULL), -EINVAL);
	cr_expect_eq(ns_addr_list(NULL, nic, &p, 1), -EINVAL);
	cr_expect_eq(ns_addr_list(stack, nic, NULL, 1), -EINVAL);

	cr_expect_eq(ns_route_add(NULL, &r), -EINVAL);
	cr_expect_eq(ns_route_add(stack, NULL), -EINVAL);
	cr_expect_eq(ns_route_del(NULL, &r), -EINVAL);
	cr_expect_eq(ns_route_del(stack, NULL), -EINVAL);
	cr_expect_eq(ns_route_list(NULL, &r, 1), -EINVAL);
	cr_expect_eq(ns_route_list(stack, NULL, 1), -EINVAL);

	cr_expect_eq(ns_socket(NULL, AF_INET, SOCK_STREAM, 0), -EINVAL);
	cr_expect_eq(ns_poll(NULL, &pfd, 1, 0), -EINVAL);
	cr_expect_eq(ns_close(NULL, 0), -EINVAL);

	/* Freeing nothing is fine. */
	ns_stack_free(NULL);
	ns_endpoint_free(NULL);
}

Test(stack_api, start_twice_is_ealready_and_stop_when_stopped_is_ealready)
{
	stack_new_quiet();
	cr_expect_eq(ns_stack_stop(stack), -EALREADY, "never started");
	cr_expect_eq(ns_stack_start(stack), 0);
	cr_expect_eq(ns_stack_start(stack), -EALREADY);
	cr_expect_eq(ns_stack_stop(stack), 0);
	cr_expect_eq(ns_stack_stop(stack), -EALREADY);
	cr_expect_eq(ns_stack_start(stack), 0, "start resumes");
	cr_expect_eq(ns_stack_stop(stack), 0);
}

Test(stack_api, frames_are_read_only_while_the_stack_runs)
{
	struct ns_endpoint *ep;
	struct frame_parsed f;
	uint8_t buf[2048];
	int nic;

	stack_new_quiet();
	nic = channel_nic("n0", mac1, &ep);
	addr_add(nic, "198.51.100.1/24");
	while (ns_channel_read(ep, buf, sizeof(buf)) > 0) {
	}
	inject_arp_request(ep, mac1, "198.51.100.2", peer_mac, "198.51.100.1");
	cr_expect_eq(wait_frame(ep, is_arp_reply, NULL, QUIET_MS, buf, sizeof(buf), &f), -ETIMEDOUT,
		     "not started: no answer");
	cr_assert_eq(ns_stack_start(stack), 0);
	cr_expect_gt(wait_frame(ep, is_arp_reply, NULL, WAIT_MS, buf, sizeof(buf), &f), 0,
		     "started: the queued request is answered");
	cr_assert_eq(ns_stack_stop(stack), 0);
	inject_arp_request(ep, mac1, "198.51.100.2", peer_mac, "198.51.100.1");
	cr_expect_eq(wait_frame(ep, is_arp_reply, NULL, QUIET_MS, buf, sizeof(buf), &f), -ETIMEDOUT,
		     "stopped: no answer");
	cr_assert_eq(ns_stack_start(stack), 0);
	cr_expect_gt(wait_frame(ep, is_arp_reply, NULL, WAIT_MS, buf, sizeof(buf), &f), 0,
		     "resumed");
}

Test(stack_api, the_notify_fd_is_one_fd_for_the_stack)
{
	int fd;

	stack_new_quiet();
	fd = ns_stack_notify_fd(stack);
	cr_assert_geq(fd, 0);
	cr_expect_eq(ns_stack_notify_fd(stack), fd);
	cr_expect_neq(fcntl(fd, F_GETFD), -1, "an open fd");
}

struct log_capture {
	int lines, last_level;
	char last[256];
};

static void capture_log(void *arg, int level, const char *msg)
{
	struct log_capture *c = arg;

	c->lines++;
	c->last_level = level;
	snprintf(c->last, sizeof(c->last), "%s", msg);
}

Test(stack_api, log_lines_go_to_the_callback_up_to_the_configured_level)
{
	struct log_capture info = { 0 }, warn = { 0 };
	struct ns_stack_config cfg = { .log = capture_log, .log_arg = &info };

	cr_assert_eq(ns_stack_new(&cfg, &stack), 0);
	channel_nic("logged0", NULL, NULL);
	cr_expect_geq(info.lines, 1, "adding a NIC says so at NS_LOG_INFO");
	cr_expect_eq(info.last_level, NS_LOG_INFO);
	cr_expect(strstr(info.last, "logged0") != NULL, "the line names the NIC: '%s'", info.last);
	ns_stack_free(stack);

	cfg = (struct ns_stack_config){
		.log = capture_log, .log_arg = &warn, .log_level = NS_LOG_WARNING,
	};
	cr_assert_eq(ns_stack_new(&cfg, &stack), 0);
	channel_nic("quiet0", NULL, NULL);
	cr_expect_eq(warn.lines, 0, "info lines are dropped at NS_LOG_WARNING");
}

Test(stack_api, stats_count_frames_both_ways_and_runts_as_malformed)
{
	struct ns_endpoint *ep;
	struct ns_nic_info info;
	struct frame_parsed f;
	struct ns_stats st;
	uint8_t buf[2048], runt[10] = { 0 };
	int nic;

	stack_new_quiet();
	nic = channel_nic("n0", mac1, &ep);
	addr_add(nic, "198.51.100.1/24");
	cr_assert_eq(ns_stack_start(stack), 0);
	cr_assert_eq(ns_stack_stats(stack, &st), 0);
	cr_expect_eq(st.rx_frames, 0, "nothing received yet");

	inject_arp_request(ep, mac1, "198.51.100.2", peer_mac, "198.51.100.1");
	cr_assert_gt(wait_frame(ep, is_arp_reply, NULL, WAIT_MS, buf, sizeof(buf), &f), 0);
	cr_assert_eq(ns_channel_inject(ep, runt, sizeof(runt)), 0);
	sleep_ms(100);
	cr_assert_eq(ns_stack_stats(stack, &st), 0);
	cr_expect_eq(st.rx_frames, 2, "the request and the runt");
	cr_expect_geq(st.rx_bytes, 42 + sizeof(runt));
	cr_expect_geq(st.tx_frames, 1, "at least the reply");
	cr_expect_geq(st.tx_bytes, 42 * st.tx_frames);
	cr_expect_eq(st.rx_malformed, 1, "the runt");
	cr_assert_eq(ns_nic_info(stack, nic, &info), 0);
	cr_expect_eq(info.rx_frames, st.rx_frames, "one NIC: its counters are the stack's");
	cr_expect_eq(info.tx_frames, st.tx_frames);
	cr_expect_eq(info.rx_malformed, 1);
}

/* ------------------------------------------------------------------ */
/* NICs                                                                */
/* ------------------------------------------------------------------ */

static void expect_nic_add_einval(const struct ns_nic_config *cfg, const char *what)
{
	struct ns_endpoint *ep = channel();

	cr_expect_eq(ns_nic_add(stack, cfg, ep), -EINVAL, "%s", what);
	ns_endpoint_free(ep);	/* a refused endpoint stays the caller's */
}

Test(nic_api, bad_mtus_names_and_macs_are_einval)
{
	char name16[NS_NIC_NAME_MAX + 1];

	stack_new_quiet();
	memset(name16, 'x', NS_NIC_NAME_MAX);
	name16[NS_NIC_NAME_MAX] = '\0';
	expect_nic_add_einval(&(struct ns_nic_config){ .mtu = 67 }, "MTU 67");
	expect_nic_add_einval(&(struct ns_nic_config){ .mtu = 65522 }, "MTU 65522");
	expect_nic_add_einval(&(struct ns_nic_config){ .mtu = 1u << 20 }, "MTU 1 MiB");
	expect_nic_add_einval(&(struct ns_nic_config){ .name = name16 }, "a 16-byte name");
	expect_nic_add_einval(&(struct ns_nic_config){ .name = "" }, "an empty name");
	expect_nic_add_einval(&(struct ns_nic_config){ .mac = { 0x01, 0, 0x5e, 0, 0, 1 } },
			      "multicast MAC");
	expect_nic_add_einval(&(struct ns_nic_config){ .mac = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },
			      "broadcast MAC");
	cr_expect_eq(ns_nic_list(stack, NULL, 0), 0, "nothing was added");
}

Test(nic_api, the_limits_themselves_are_accepted)
{
	char name15[NS_NIC_NAME_MAX];
	struct ns_nic_info info;
	int a, b;

	stack_new_quiet();
	memset(name15, 'y', sizeof(name15) - 1);
	name15[sizeof(name15) - 1] = '\0';
	a = ns_nic_add(stack, &(struct ns_nic_config){ .mtu = 68, .name = name15 }, channel());
	b = ns_nic_add(stack, &(struct ns_nic_config){ .mtu = 65521 }, channel());
	cr_assert_geq(a, 1, "MTU 68, 15-byte name: %d", a);
	cr_assert_geq(b, 1, "MTU 65521: %d", b);
	cr_assert_eq(ns_nic_info(stack, a, &info), 0);
	cr_expect_eq(info.mtu, 68);
	cr_expect_str_eq(info.name, name15);
	cr_assert_eq(ns_nic_info(stack, b, &info), 0);
	cr_expect_eq(info.mtu, 65521);
}

Test(nic_api, a_duplicate_name_is_eexist)
{
	struct ns_endpoint *ep;

	stack_new_quiet();
	channel_nic("uplink", NULL, NULL);
	ep = channel();
	cr_expect_eq(ns_nic_add(stack, &(struct ns_nic_config){ .name = "uplink" }, ep), -EEXIST);
	ns_endpoint_free(ep);
	cr_expect_eq(ns_nic_list(stack, NULL, 0), 1);
}

Test(nic_api, defaults_name_mtu_and_a_random_local_unicast_mac)
{
	struct ns_nic_info a, b;
	int ia, ib;

	stack_new_quiet();
	ia = ns_nic_add(stack, NULL, channel());
	ib = ns_nic_add(stack, NULL, channel());
	cr_assert_geq(ia, 1);
	cr_assert_geq(ib, 1);
	cr_assert_eq(ns_nic_info(stack, ia, &a), 0);
	cr_assert_eq(ns_nic_info(stack, ib, &b), 0);
	cr_expect_str_eq(a.name, "eth0");
	cr_expect_str_eq(b.name, "eth1");
	cr_expect_eq(a.mtu, 1500);
	cr_expect_eq(a.mac[0] & 0x03, 0x02, "locally administered unicast: %02x", a.mac[0]);
	cr_expect_eq(b.mac[0] & 0x03, 0x02, "locally administered unicast: %02x", b.mac[0]);
	cr_expect(memcmp(a.mac, b.mac, 6) != 0, "two random MACs differ");
}

/* "NULL = eth<N>": a name the caller picked must not make a later
 * unnamed NIC fail. */
Test(nic_api, a_default_name_never_collides_with_a_chosen_one)
{
	struct ns_nic_info info;
	struct ns_endpoint *ep;
	int first, second;

	stack_new_quiet();
	first = channel_nic("eth1", NULL, NULL);
	ep = channel();
	second = ns_nic_add(stack, NULL, ep);
	if (second < 0)
		ns_endpoint_free(ep);
	cr_assert_geq(second, 1, "an unnamed NIC after one named eth1: %d", second);
	cr_assert_eq(ns_nic_info(stack, second, &info), 0);
	cr_expect_str_neq(info.name, "eth1");
	(void)first;
}

Test(nic_api, info_describes_fd_and_channel_nics)
{
	struct ns_endpoint *fdep;
	struct ns_nic_info info;
	int sv[2], fdnic, chnic;

	stack_new_quiet();
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	cr_assert_eq(ns_endpoint_fd_open(sv[0], &fdep), 0);
	fdnic = ns_nic_add(stack,
			   &(struct ns_nic_config){ .name = "wire0", .mac = { 0x02, 0, 0, 0, 0, 0x0a },
						    .mtu = 9000 },
			   fdep);
	cr_assert_geq(fdnic, 1);
	chnic = channel_nic("chan0", (const uint8_t[6]){ 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 }, NULL);

	cr_assert_eq(ns_nic_info(stack, fdnic, &info), 0);
	cr_expect_eq(info.id, fdnic);
	cr_expect_str_eq(info.name, "wire0");
	cr_expect_str_eq(info.kind, "fd");
	cr_expect_str_eq(info.device, "");
	cr_expect_arr_eq(info.mac, ((uint8_t[6]){ 0x02, 0, 0, 0, 0, 0x0a }), 6);
	cr_expect_eq(info.mtu, 9000);
	cr_expect(info.up, "administratively up");
	cr_expect(info.link_up);

	cr_assert_eq(ns_nic_info(stack, chnic, &info), 0);
	cr_expect_eq(info.id, chnic);
	cr_expect_str_eq(info.name, "chan0");
	cr_expect_str_eq(info.kind, "channel");
	cr_expect_arr_eq(info.mac, ((uint8_t[6]){ 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 }), 6);
	cr_expect_eq(info.mtu, 1500);
	cr_expect(info.up);
	close(sv[1]);
}

Test(nic_api, set_up_and_set_mtu_show_in_info_and_unknown_ids_are_enodev)
{
	struct ns_nic_info info;
	int nic;

	stack_new_quiet();
	nic = channel_nic("n0", NULL, NULL);
	cr_expect_eq(ns_nic_set_up(stack, nic, false), 0);
	cr_assert_eq(ns_nic_info(stack, nic, &info), 0);
	cr_expect_not(info.up);
	cr_expect_eq(ns_nic_set_up(stack, nic, true), 0);
	cr_assert_eq(ns_nic_info(stack, nic, &info), 0);
	cr_expect(info.up);
	cr_expect_eq(ns_nic_set_mtu(stack, nic, 1280), 0);
	cr_assert_eq(ns_nic_info(stack, nic, &info), 0);
	cr_expect_eq(info.mtu, 1280);
	cr_expect_eq(ns_nic_set_mtu(stack, nic, 67), -EINVAL);
	cr_expect_eq(ns_nic_set_mtu(stack, nic, 65522), -EINVAL);
	cr_assert_eq(ns_nic_info(stack, nic, &info), 0);
	cr_expect_eq(info.mtu, 1280, "unchanged by a refused MTU");

	cr_expect_eq(ns_nic_set_up(stack, 99, true), -ENODEV);
	cr_expect_eq(ns_nic_set_mtu(stack, 99, 1500), -ENODEV);
	cr_expect_eq(ns_nic_info(stack, 99, &info), -ENODEV);
	cr_expect_eq(ns_nic_remove(stack, 99), -ENODEV);
	cr_expect_eq(ns_nic_info(stack, 0, &info), -ENODEV);
	cr_expect_eq(ns_nic_info(stack, -1, &info), -ENODEV);
}

Test(nic_api, a_nic_that_is_down_carries_nothing)
{
	struct sockaddr_storage to;
	socklen_t len;
	int nic, u;

	stack_new_quiet();
	nic = channel_nic("n0", mac1, NULL);
	addr_add(nic, "198.51.100.1/24");
	cr_assert_eq(ns_stack_start(stack), 0);
	u = udp_socket_to("198.51.100.2", 53, &to, &len);
	cr_assert_eq(ns_nic_set_up(stack, nic, false), 0);
	cr_expect_eq(ns_sendto(stack, u, "x", 1, 0, (struct sockaddr *)&to, len), -ENETUNREACH, "down");
	cr_assert_eq(ns_nic_set_up(stack, nic, true), 0);
	cr_expect_eq(ns_sendto(stack, u, "x", 1, 0, (struct sockaddr *)&to, len), 1, "up again");
}

Test(nic_api, a_smaller_mtu_makes_smaller_frames)
{
	struct sockaddr_storage to;
	struct frame_parsed f;
	struct ns_endpoint *ep;
	struct in_addr peer;
	static uint8_t data[3000], buf[4096];
	socklen_t len;
	ssize_t n;
	int nic, u, frags = 0;

	stack_new_quiet();
	nic = channel_nic("n0", mac1, &ep);
	addr_add(nic, "198.51.100.1/24");
	cr_assert_eq(ns_nic_set_mtu(stack, nic, 576), 0);
	cr_assert_eq(ns_stack_start(stack), 0);
	cr_assert_eq(inet_pton(AF_INET, "198.51.100.2", &peer), 1);
	u = udp_socket_to("198.51.100.2", 53, &to, &len);
	/* Resolve the peer first: the fragments then go out at once. */
	cr_assert_eq(ns_sendto(stack, u, "x", 1, 0, (struct sockaddr *)&to, len), 1);
	cr_assert_gt(wait_frame(ep, is_arp_request_for, &peer, WAIT_MS, buf, sizeof(buf), &f), 0);
	inject_arp_reply(ep, mac1, "198.51.100.1", "198.51.100.2", peer_mac);
	cr_assert_gt(wait_frame(ep, is_udp, NULL, WAIT_MS, buf, sizeof(buf), &f), 0);
	cr_assert_eq(ns_sendto(stack, u, data, sizeof(data), 0, (struct sockaddr *)&to, len),
		     (ssize_t)sizeof(data));
	while ((n = wait_frame(ep, is_udp, NULL, QUIET_MS, buf, sizeof(buf), &f)) > 0) {
		cr_expect_leq(n, 576 + FRAME_ETH_HLEN, "frame of %zd bytes", n);
		frags++;
	}
	cr_expect_geq(frags, 6, "3000 bytes in 552-byte fragments: %d frames", frags);
}

/* Linux queues about 200 KiB for an unresolved neighbour; lwIP keeps
 * ARP_QUEUE_LEN packets per entry, 3 unless lwipopts.h says otherwise. */
Test(nic_api, packets_waiting_for_arp_are_all_sent_once_it_resolves)
{
	struct sockaddr_storage to;
	struct frame_parsed f;
	struct ns_endpoint *ep;
	struct in_addr peer;
	uint8_t buf[2048];
	socklen_t len;
	int nic, u, i, sent = 0;

	stack_new_quiet();
	nic = channel_nic("n0", mac1, &ep);
	addr_add(nic, "198.51.100.1/24");
	cr_assert_eq(ns_stack_start(stack), 0);
	cr_assert_eq(inet_pton(AF_INET, "198.51.100.2", &peer), 1);
	u = udp_socket_to("198.51.100.2", 53, &to, &len);
	for (i = 0; i < 8; i++)
		cr_assert_eq(ns_sendto(stack, u, &i, sizeof(i), 0, (struct sockaddr *)&to, len),
			     (ssize_t)sizeof(i));
	cr_assert_gt(wait_frame(ep, is_arp_request_for, &peer, WAIT_MS, buf, sizeof(buf), &f), 0);
	inject_arp_reply(ep, mac1, "198.51.100.1", "198.51.100.2", peer_mac);
	while (wait_frame(ep, is_udp, NULL, QUIET_MS, buf, sizeof(buf), &f) > 0)
		sent++;
	cr_expect_eq(sent, 8, "%d of 8 datagrams went out once the peer's MAC was known", sent);
}

Test(nic_api, list_returns_ids_in_the_order_added_and_the_full_count)
{
	int a, b, c, ids[3] = { 0 }, one[1] = { 0 };

	stack_new_quiet();
	cr_expect_eq(ns_nic_list(stack, NULL, 0), 0);
	a = channel_nic("a", NULL, NULL);
	b = channel_nic("b", NULL, NULL);
	c = channel_nic("c", NULL, NULL);
	cr_expect_eq(ns_nic_list(stack, ids, 3), 3);
	cr_expect(ids[0] == a && ids[1] == b && ids[2] == c, "%d %d %d", ids[0], ids[1], ids[2]);
	cr_expect_eq(ns_nic_list(stack, one, 1), 3, "the full count with less room");
	cr_expect_eq(one[0], a);
	cr_assert_eq(ns_nic_remove(stack, b), 0);
	memset(ids, 0, sizeof(ids));
	cr_expect_eq(ns_nic_list(stack, ids, 3), 2);
	cr_expect(ids[0] == a && ids[1] == c, "%d %d", ids[0], ids[1]);
	cr_expect_eq(ns_nic_remove(stack, b), -ENODEV, "removed already");
}

/* ------------------------------------------------------------------ */
/* Parsing and formatting                                              */
/* ------------------------------------------------------------------ */

static void expect_prefix(const char *text, int family, const char *addr_text, unsigned len)
{
	struct ns_prefix p;
	char buf[INET6_ADDRSTRLEN];

	cr_assert_eq(ns_prefix_parse(text, &p), 0, "'%s' parses", text);
	cr_expect_eq(p.addr.family, family, "'%s': family", text);
	cr_expect_eq(p.len, len, "'%s': length %u", text, p.len);
	cr_assert_geq(ns_addr_format(&p.addr, buf, sizeof(buf)), 0);
	cr_expect_str_eq(buf, addr_text, "'%s': address", text);
}

Test(addr_api, prefix_parse_accepts_cidrs_and_bare_addresses)
{
	expect_prefix("198.51.100.2/24", AF_INET, "198.51.100.2", 24);
	expect_prefix("fd42:5::2/64", AF_INET6, "fd42:5::2", 64);
	expect_prefix("198.51.100.2", AF_INET, "198.51.100.2", 32);
	expect_prefix("fd42:5::2", AF_INET6, "fd42:5::2", 128);
	expect_prefix("0.0.0.0/0", AF_INET, "0.0.0.0", 0);
	expect_prefix("::/0", AF_INET6, "::", 0);
	expect_prefix("203.0.113.7/32", AF_INET, "203.0.113.7", 32);
	expect_prefix("fd42:5::1/128", AF_INET6, "fd42:5::1", 128);
}

Test(addr_api, prefix_parse_refuses_malformed_text)
{
	static const char *const bad[] = {
		"x", "", "1.2.3.4/33", "/24", "1.2.3.4/-1", "fd42:5::1/129", "1.2.3.4/",
		"1.2.3.4/24x", "1.2.3.4/+24", "1.2.3.4/24/8", "1.2.3.4 /24", "198.51.100.256/24",
		"fd42:5::1/", "fd42:5:::1/64",
		"1111:2222:3333:4444:5555:6666:7777:8888:9999/64",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ns_prefix p;

		cr_expect_eq(ns_prefix_parse(bad[i], &p), -EINVAL, "'%s' is refused", bad[i]);
	}
}

/* strtoul() skips leading white space: the length must not. */
Test(addr_api, prefix_parse_refuses_white_space_in_the_length)
{
	struct ns_prefix p;

	cr_expect_eq(ns_prefix_parse("198.51.100.2/ 24", &p), -EINVAL);
	cr_expect_eq(ns_prefix_parse("fd42:5::2/\t64", &p), -EINVAL);
}

Test(addr_api, addr_parse_takes_addresses_only)
{
	struct ns_addr a;

	cr_expect_eq(ns_addr_parse("198.51.100.2", &a), 0);
	cr_expect_eq(a.family, AF_INET);
	cr_expect_eq(ns_addr_parse("fd42:5::2", &a), 0);
	cr_expect_eq(a.family, AF_INET6);
	cr_expect_eq(ns_addr_parse("198.51.100.2/24", &a), -EINVAL);
	cr_expect_eq(ns_addr_parse("example.org", &a), -EINVAL);
	cr_expect_eq(ns_addr_parse("", &a), -EINVAL);
}

Test(addr_api, addr_format_writes_text_and_needs_room_for_the_nul)
{
	struct ns_addr v4 = addr("198.51.100.2"), v6 = addr("fd42:5::2"), none = { 0 };
	struct ns_addr longest = addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	char buf[INET6_ADDRSTRLEN];

	cr_expect_eq(ns_addr_format(&v4, buf, sizeof(buf)), 12);
	cr_expect_str_eq(buf, "198.51.100.2");
	cr_expect_eq(ns_addr_format(&v6, buf, sizeof(buf)), 9);
	cr_expect_str_eq(buf, "fd42:5::2");
	cr_expect_eq(ns_addr_format(&v4, buf, 13), 12, "exactly enough");
	cr_expect_eq(ns_addr_format(&v4, buf, 12), -ENOSPC, "no room for the NUL");
	cr_expect_eq(ns_addr_format(&v4, buf, 0), -ENOSPC);
	cr_expect_eq(ns_addr_format(&longest, buf, sizeof(buf)), 39, "INET6_ADDRSTRLEN is enough");
	cr_expect_eq(ns_addr_format(&none, buf, sizeof(buf)), -EINVAL, "family 0");
}

/* ------------------------------------------------------------------ */
/* Addresses                                                           */
/* ------------------------------------------------------------------ */

static void expect_addr_add(int nic, const char *text, int rc)
{
	struct ns_prefix p = prefix(text);

	cr_expect_eq(ns_addr_add(stack, nic, &p), rc, "ns_addr_add %s", text);
}

Test(addr_api, a_second_ipv4_address_is_eexist)
{
	int nic;

	stack_new_quiet();
	nic = channel_nic("n0", mac1, NULL);
	addr_add(nic, "198.51.100.1/24");
	expect_addr_add(nic, "203.0.113.1/24", -EEXIST);
	expect_addr_add(nic, "198.51.100.1/24", -EEXIST);
}

Test(addr_api, a_duplicate_ipv6_address_is_eexist)
{
	int nic;

	stack_new_quiet();
	nic = channel_nic("n0", mac1, NULL);
	addr_add(nic, "fd42:5::1/64");
	expect_addr_add(nic, "fd42:5::1/64", -EEXIST);
	expect_addr_add(nic, "fd42:5::1/48", -EEXIST);	/* the length does not matter */
	expect_addr_add(nic, "fe80::ff:fe00:a/64", -EEXIST);
}

Test(addr_api, ipv6_addresses_beyond_the_slots_are_enospc)
{
	int nic;

	stack_new_quiet();
	nic = channel_nic("n0", mac1, NULL);
	addr_add(nic, "fd42:5::1/64");
	addr_add(nic, "fd42:5::2/64");
	addr_add(nic, "fd42:5::3/64");
	expect_addr_add(nic, "fd42:5::4/64", -ENOSPC);
	/* Deleting one frees its slot. */
	cr_assert_eq(ns_addr_del(stack, nic, &(struct ns_prefix){ .addr = addr("fd42:5::2") }), 0);
	expect_addr_add(nic, "fd42:5::4/64", 0);
}

Test(addr_api, unusable_addresses_are_einval)
{
	struct ns_prefix p = { .len = 24 };
	int nic;

	stack_new_quiet();
	nic = channel_nic("n0", mac1, NULL);
	expect_addr_add(nic, "198.51.100.1/0", -EINVAL);
	expect_addr_add(nic, "0.0.0.0/24", -EINVAL);
	expect_addr_add(nic, "224.0.0.1/4", -EINVAL);
	expect_addr_add(nic, "255.255.255.255/32", -EINVAL);
	expect_addr_add(nic, "ff02::1/64", -EINVAL);
	expect_addr_add(nic, "::/64", -EINVAL);
	expect_addr_add(nic, "::1/128", -EINVAL);
	cr_expect_eq(ns_addr_add(stack, nic, &p), -EINVAL, "family 0");
	p = prefix("198.51.100.1/24");
	p.len = 33;
	cr_expect_eq(ns_addr_add(stack, nic, &p), -EINVAL, "length 33");
	p = prefix("198.51.100.1/24");
	cr_expect_eq(ns_addr_add(stack, 99, &p), -ENODEV);
}

Test(addr_api, deleting_an_address_the_nic_lacks_is_eaddrnotavail)
{
	struct ns_prefix v4 = prefix("198.51.100.1/24"), other = prefix("198.51.100.9/24");
	struct ns_prefix v6 = prefix("fd42:5::1/64");
	int nic;

	stack_new_quiet();
	nic = channel_nic("n0", mac1, NULL);
	cr_expect_eq(ns_addr_del(stack, nic, &v4), -EADDRNOTAVAIL, "no IPv4 address yet");
	cr_expect_eq(ns_addr_del(stack, nic, &v6), -EADDRNOTAVAIL, "no such IPv6 address");
	addr_add(nic, "198.51.100.1/24");
	cr_expect_eq(ns_addr_del(stack, nic, &other), -EADDRNOTAVAIL, "another IPv4 address");
	cr_expect_eq(ns_addr_del(stack, nic, &v4), 0);
	cr_expect_eq(ns_addr_del(stack, nic, &v4), -EADDRNOTAVAIL, "deleted already");
	cr_expect_eq(ns_addr_del(stack, 99, &v4), -ENODEV);
	addr_add(nic, "203.0.113.1/24");	/* the IPv4 slot is free again */
}

Test(addr_api, list_has_ipv4_first_then_link_local_then_the_rest)
{
	struct ns_prefix out[8], one[1];
	char buf[64];
	int nic, n;

	stack_new_quiet();
	nic = channel_nic("n0", mac1, NULL);
	n = ns_addr_list(stack, nic, out, 8);
	cr_assert_eq(n, 1, "a new NIC has its link-local address: %d", n);
	cr_expect_str_eq(prefix_text(&out[0], buf), "fe80::ff:fe00:a/64", "EUI-64 from 02:00:00:00:00:0a");
	addr_add(nic, "fd42:5::1/64");
	addr_add(nic, "198.51.100.1/24");
	n = ns_addr_list(stack, nic, out, 8);
	cr_assert_eq(n, 3);
	cr_expect_str_eq(prefix_text(&out[0], buf), "198.51.100.1/24");
	cr_expect_str_eq(prefix_text(&out[1], buf), "fe80::ff:fe00:a/64");
	cr_expect_str_eq(prefix_text(&out[2], buf), "fd42:5::1/64");
	cr_expect_eq(ns_addr_list(stack, nic, one, 1), 3, "the full count with less room");
	cr_expect_str_eq(prefix_text(&one[0], buf), "198.51.100.1/24");
	cr_expect_eq(ns_addr_list(stack, nic, NULL, 0), 3);
	cr_expect_eq(ns_addr_list(stack, 99, out, 8), -ENODEV);
}

/* ------------------------------------------------------------------ */
/* Routes                                                              */
/* ------------------------------------------------------------------ */

/* A stack with NIC "n0" (198.51.100.1/24, fd42:5::1/64) on a channel. */
static int one_nic(struct ns_endpoint **epp)
{
	int nic;

	stack_new_quiet();
	nic = channel_nic("n0", mac1, epp);
	addr_add(nic, "198.51.100.1/24");
	addr_add(nic, "fd42:5::1/64");
	return nic;
}

Test(route_api, a_default_route_picks_the_nic_that_reaches_its_gateway)
{
	struct ns_route v4 = route("0.0.0.0/0", "198.51.100.254", 0);
	struct ns_route v6 = route("::/0", "fd42:5::fe", 0);
	char buf[160];
	int other, nic;

	nic = one_nic(NULL);
	other = channel_nic("n1", NULL, NULL);
	addr_add(other, "203.0.113.1/24");
	cr_assert_eq(ns_route_add(stack, &v4), 0);
	cr_expect_eq(v4.nic, nic, "filled in: %d", v4.nic);
	cr_assert_eq(ns_route_add(stack, &v6), 0);
	cr_expect_eq(v6.nic, nic);
	snprintf(buf, sizeof(buf), "0.0.0.0/0 via 198.51.100.254 nic %d", nic);
	cr_expect(route_listed(buf), "%s", buf);
	snprintf(buf, sizeof(buf), "::/0 via fd42:5::fe nic %d", nic);
	cr_expect(route_listed(buf), "%s", buf);
}

Test(route_api, a_gateway_no_nic_reaches_is_enetunreach)
{
	struct ns_route r = route("0.0.0.0/0", "203.0.113.254", 0);
	struct ns_route r6 = route("::/0", "2001:db8::1", 0);

	one_nic(NULL);
	cr_expect_eq(ns_route_add(stack, &r), -ENETUNREACH);
	cr_expect_eq(ns_route_add(stack, &r6), -ENETUNREACH);
}

Test(route_api, bad_routes_are_einval_or_enodev)
{
	struct ns_route mixed = route("0.0.0.0/0", "fd42:5::fe", 0);
	struct ns_route mixed6 = route("::/0", "198.51.100.254", 0);
	struct ns_route onlink = route("203.0.113.0/24", NULL, 0);
	struct ns_route mcast = route("0.0.0.0/0", "224.0.0.1", 0);
	struct ns_route nonic = route("0.0.0.0/0", "198.51.100.254", 99);
	struct ns_route badlen = route("0.0.0.0/0", "198.51.100.254", 0);

	one_nic(NULL);
	badlen.dst.len = 33;
	cr_expect_eq(ns_route_add(stack, &mixed), -EINVAL, "IPv4 via IPv6");
	cr_expect_eq(ns_route_add(stack, &mixed6), -EINVAL, "IPv6 via IPv4");
	cr_expect_eq(ns_route_add(stack, &onlink), -EINVAL, "on-link without a NIC");
	cr_expect_eq(ns_route_add(stack, &mcast), -EINVAL, "a multicast gateway");
	cr_expect_eq(ns_route_add(stack, &badlen), -EINVAL, "prefix length 33");
	cr_expect_eq(ns_route_add(stack, &nonic), -ENODEV);
}

Test(route_api, a_duplicate_route_is_eexist)
{
	struct ns_route r = route("0.0.0.0/0", "198.51.100.254", 0);
	struct ns_route again = route("0.0.0.0/0", "198.51.100.254", 0);
	struct ns_route host = route("203.0.113.7/32", "198.51.100.254", 0);

	one_nic(NULL);
	cr_assert_eq(ns_route_add(stack, &r), 0);
	cr_expect_eq(ns_route_add(stack, &again), -EEXIST);
	again.metric = 5;
	cr_expect_eq(ns_route_add(stack, &again), -EEXIST, "the metric does not make it another route");
	cr_expect_eq(ns_route_add(stack, &host), 0, "a more specific route is another route");
}

/* The table stores prefixes masked; the duplicate check must compare them
 * masked too, or 203.0.113.9/24 becomes a second 203.0.113.0/24. */
Test(route_api, a_route_written_with_host_bits_duplicates_its_network)
{
	struct ns_route net = route("203.0.113.0/24", "198.51.100.254", 0);
	struct ns_route host_bits = route("203.0.113.9/24", "198.51.100.254", 0);
	int rc;

	one_nic(NULL);
	cr_assert_eq(ns_route_add(stack, &net), 0);
	rc = ns_route_add(stack, &host_bits);
	cr_expect_eq(rc, -EEXIST, "ns_route_add: %d; the table now lists %d routes", rc,
		     ns_route_list(stack, NULL, 0));
}

Test(route_api, list_has_connected_and_gateway_routes)
{
	struct ns_route gw = route("0.0.0.0/0", "198.51.100.254", 0);
	struct ns_route onlink = route("203.0.113.0/24", NULL, 0);
	char buf[160];
	int nic, n;

	nic = one_nic(NULL);
	onlink.nic = nic;
	cr_assert_eq(ns_route_add(stack, &gw), 0);
	cr_assert_eq(ns_route_add(stack, &onlink), 0);
	n = ns_route_list(stack, NULL, 0);
	cr_expect_eq(n, 4, "two connected, two added: %d", n);
	snprintf(buf, sizeof(buf), "198.51.100.0/24 nic %d", nic);
	cr_expect(route_listed(buf), "%s", buf);
	snprintf(buf, sizeof(buf), "fd42:5::/64 nic %d", nic);
	cr_expect(route_listed(buf), "%s", buf);
	snprintf(buf, sizeof(buf), "0.0.0.0/0 via 198.51.100.254 nic %d", nic);
	cr_expect(route_listed(buf), "%s", buf);
	snprintf(buf, sizeof(buf), "203.0.113.0/24 nic %d", nic);
	cr_expect(route_listed(buf), "%s", buf);
}

/* "the route table, longest prefix first": within a family, a listed
 * route is never more specific than the one before it. */
Test(route_api, list_is_longest_prefix_first)
{
	struct ns_route host = route("203.0.113.7/32", "198.51.100.254", 0);
	struct ns_route dflt = route("0.0.0.0/0", "198.51.100.254", 0);
	struct ns_route host6 = route("2001:db8::7/128", "fd42:5::fe", 0);
	struct ns_route r[16];
	char a[160], b[160];
	int n, i, j;

	one_nic(NULL);
	cr_assert_eq(ns_route_add(stack, &dflt), 0);
	cr_assert_eq(ns_route_add(stack, &host), 0);
	cr_assert_eq(ns_route_add(stack, &host6), 0);
	n = ns_route_list(stack, r, 16);
	cr_assert_eq(n, 5);
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (r[i].dst.addr.family == r[j].dst.addr.family)
				cr_expect_geq(r[i].dst.len, r[j].dst.len, "'%s' is listed before '%s'",
					      route_text(&r[i], a), route_text(&r[j], b));
}

Test(route_api, del_removes_once_then_esrch)
{
	struct ns_route r = route("0.0.0.0/0", "198.51.100.254", 0);
	struct ns_route key = route("0.0.0.0/0", "198.51.100.254", 0);
	struct ns_route wrong_gw = route("0.0.0.0/0", "198.51.100.253", 0);
	char buf[160];
	int nic;

	nic = one_nic(NULL);
	cr_assert_eq(ns_route_add(stack, &r), 0);
	cr_expect_eq(ns_route_del(stack, &wrong_gw), -ESRCH, "another gateway");
	cr_expect_eq(ns_route_del(stack, &key), 0, "nic 0 matches any NIC");
	snprintf(buf, sizeof(buf), "0.0.0.0/0 via 198.51.100.254 nic %d", nic);
	cr_expect_not(route_listed(buf));
	cr_expect_eq(ns_route_del(stack, &key), -ESRCH);
	key.nic = nic;
	cr_assert_eq(ns_route_add(stack, &r), 0);
	cr_expect_eq(ns_route_del(stack, &key), 0, "with its NIC named");
}

Test(route_api, removing_a_nic_drops_its_routes)
{
	struct ns_route via_a = route("0.0.0.0/0", "198.51.100.254", 0);
	struct ns_route via_b = route("192.88.99.0/24", "203.0.113.254", 0);
	char buf[160];
	int a, b, n;

	a = one_nic(NULL);
	b = channel_nic("n1", NULL, NULL);
	addr_add(b, "203.0.113.1/24");
	cr_assert_eq(ns_route_add(stack, &via_a), 0);
	cr_assert_eq(ns_route_add(stack, &via_b), 0);
	cr_assert_eq(ns_nic_remove(stack, a), 0);
	n = ns_route_list(stack, NULL, 0);
	cr_expect_eq(n, 2, "n1's connected route and its gateway route: %d", n);
	snprintf(buf, sizeof(buf), "0.0.0.0/0 via 198.51.100.254 nic %d", a);
	cr_expect_not(route_listed(buf), "gone with its NIC");
	snprintf(buf, sizeof(buf), "198.51.100.0/24 nic %d", a);
	cr_expect_not(route_listed(buf), "the connected route too");
	snprintf(buf, sizeof(buf), "192.88.99.0/24 via 203.0.113.254 nic %d", b);
	cr_expect(route_listed(buf), "the other NIC's route stays");
	snprintf(buf, sizeof(buf), "203.0.113.0/24 nic %d", b);
	cr_expect(route_listed(buf));
}

Test(route_api, traffic_beyond_the_subnet_goes_to_the_gateway)
{
	struct ns_route r = route("0.0.0.0/0", "198.51.100.254", 0);
	struct sockaddr_storage to;
	struct frame_parsed f;
	struct ns_endpoint *ep;
	struct in_addr gw, far;
	uint8_t buf[2048];
	socklen_t len;
	int u;

	one_nic(&ep);
	cr_assert_eq(inet_pton(AF_INET, "198.51.100.254", &gw), 1);
	cr_assert_eq(inet_pton(AF_INET, "192.88.99.9", &far), 1);
	cr_assert_eq(ns_route_add(stack, &r), 0);
	cr_assert_eq(ns_stack_start(stack), 0);
	u = udp_socket_to("192.88.99.9", 53, &to, &len);
	cr_assert_eq(ns_sendto(stack, u, "query", 5, 0, (struct sockaddr *)&to, len), 5);
	cr_assert_gt(wait_frame(ep, is_arp_request_for, &gw, WAIT_MS, buf, sizeof(buf), &f), 0,
		     "the stack asks for the gateway's MAC");
	inject_arp_reply(ep, mac1, "198.51.100.1", "198.51.100.254", gw_mac);
	cr_assert_gt(wait_frame(ep, is_udp, NULL, WAIT_MS, buf, sizeof(buf), &f), 0);
	cr_expect_arr_eq(f.dst_mac, gw_mac, 6, "sent to the gateway's MAC");
	cr_expect_eq(f.dst.v4.s_addr, far.s_addr, "addressed to the far host");
	cr_expect_eq(f.dport, 53);

	cr_assert_eq(ns_route_del(stack, &r), 0);
	cr_expect_eq(ns_sendto(stack, u, "query", 5, 0, (struct sockaddr *)&to, len), -ENETUNREACH,
		     "no route any more");
}

Test(route_api, ipv6_traffic_beyond_the_prefix_solicits_the_gateway)
{
	struct ns_route r = route("::/0", "fd42:5::fe", 0);
	struct sockaddr_storage to;
	struct frame_parsed f;
	struct ns_endpoint *ep;
	struct in6_addr gw;
	uint8_t buf[2048];
	socklen_t len;
	int u;

	one_nic(&ep);
	cr_assert_eq(inet_pton(AF_INET6, "fd42:5::fe", &gw), 1);
	cr_assert_eq(ns_route_add(stack, &r), 0);
	cr_assert_eq(ns_stack_start(stack), 0);
	u = udp_socket_to("2001:db8::9", 53, &to, &len);
	cr_assert_eq(ns_sendto(stack, u, "query", 5, 0, (struct sockaddr *)&to, len), 5);
	cr_expect_gt(wait_frame(ep, is_ns_for, &gw, WAIT_MS, buf, sizeof(buf), &f), 0,
		     "the stack solicits the gateway");
}

/* With no route, lwIP's fallback to its default netif must not turn an
 * unreachable destination into an on-link one. */
Test(route_api, without_a_route_tcp_connect_is_enetunreach)
{
	struct sockaddr_in far = { .sin_family = AF_INET, .sin_port = htons(80) };
	int t, rc;

	one_nic(NULL);
	cr_assert_eq(ns_stack_start(stack), 0);
	cr_assert_eq(inet_pton(AF_INET, "192.88.99.9", &far.sin_addr), 1);
	t = ns_socket(stack, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	cr_assert_geq(t, 0);
	rc = ns_connect(stack, t, (struct sockaddr *)&far, sizeof(far));
	cr_expect_eq(rc, -ENETUNREACH, "connect: %d", rc);
}
