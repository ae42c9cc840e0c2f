/* SPDX-License-Identifier: MIT */
/*
 * test_tap_dev.c - unit tests of tap/tap_dev.c: argument checks, creating a
 * TAP and attaching to an existing persistent one, the MTU read back, frames
 * both ways through the kernel (an ARP exchange), truncation, a device
 * deleted under the endpoint, and the virtio-net header path: a partial
 * checksum completed (by hand and for a datagram the kernel sent). Everything that touches a device runs in a
 * private network namespace of the test's own process (Criterion runs each
 * test in its own process); without the privilege for that, or without
 * /dev/net/tun, those tests are skipped with the reason.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tap.h"
#include "tap_io.h"


/* Enter a fresh network namespace with IPv6 off, so the only frames on a
 * TAP are those a test causes. */
static void enter_netns(void)
{
	FILE *f;

	if (access("/dev/net/tun", R_OK | W_OK) < 0)
		cr_skip_test("/dev/net/tun: %s", strerror(errno));
	if (unshare(CLONE_NEWNET) < 0)
		cr_skip_test("no private network namespace: %s", strerror(errno));
	f = fopen("/proc/sys/net/ipv6/conf/default/disable_ipv6", "w");
	if (f) {
		fputs("1\n", f);
		fclose(f);
	}
}

/* An ioctl on an interface through a throwaway AF_INET socket. */
static int if_ioctl(unsigned long req, struct ifreq *ifr)
{
	int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret;

	cr_assert_geq(sk, 0);
	ret = ioctl(sk, req, ifr);
	close(sk);
	return ret;
}

static struct ifreq ifreq(const char *name)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	return ifr;
}

/* A persistent TAP, as `ip tuntap add mode tap` makes. */
static void make_persistent_tap(const char *name, int mtu)
{
	struct ifreq ifr = ifreq(name);
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	cr_assert_eq(ioctl(fd, TUNSETIFF, &ifr), 0, "TUNSETIFF: %s", strerror(errno));
	cr_assert_eq(ioctl(fd, TUNSETPERSIST, 1), 0);
	close(fd);
	ifr = ifreq(name);
	ifr.ifr_mtu = mtu;
	cr_assert_eq(if_ioctl(SIOCSIFMTU, &ifr), 0);
}

/* Bring @name up with 198.51.100.1/24. */
static void if_up_with_addr(const char *name)
{
	struct ifreq ifr = ifreq(name);
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	sin->sin_family = AF_INET;
	inet_pton(AF_INET, "198.51.100.1", &sin->sin_addr);
	cr_assert_eq(if_ioctl(SIOCSIFADDR, &ifr), 0);
	ifr = ifreq(name);
	cr_assert_eq(if_ioctl(SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	cr_assert_eq(if_ioctl(SIOCSIFFLAGS, &ifr), 0);
}

/* Delete a link as `ip link del` does, with RTM_DELLINK. */
static void link_del(const char *name)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
	} req = {
		.nh = {
			.nlmsg_len = sizeof(req),
			.nlmsg_type = RTM_DELLINK,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK,
		},
		.ifi = { .ifi_family = AF_UNSPEC, .ifi_index = (int)if_nametoindex(name) },
	};
	struct {
		struct nlmsghdr nh;
		struct nlmsgerr err;
	} ack;
	int sk = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	cr_assert_neq(req.ifi.ifi_index, 0);
	cr_assert_geq(sk, 0);
	cr_assert_eq(send(sk, &req, sizeof(req), 0), (ssize_t)sizeof(req));
	cr_assert_geq(recv(sk, &ack, sizeof(ack), 0), (ssize_t)sizeof(ack));
	cr_assert_eq(ack.nh.nlmsg_type, NLMSG_ERROR);
	cr_assert_eq(ack.err.error, 0, "RTM_DELLINK: %s", strerror(-ack.err.error));
	close(sk);
}

static bool wait_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* An ARP request (Ethernet broadcast) asking for @target from 198.51.100.2
 * at 02:00:00:00:00:02. */
static size_t arp_request(uint8_t *f, const char *target)
{
	static const uint8_t head[] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x06,
		0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,	/* Ethernet/IPv4, request */
		0x02, 0, 0, 0, 0, 0x02, 198, 51, 100, 2,	/* sender */
		0, 0, 0, 0, 0, 0,				/* target MAC */
	};

	memcpy(f, head, sizeof(head));
	inet_pton(AF_INET, target, f + sizeof(head));
	memset(f + sizeof(head) + 4, 0, 60 - sizeof(head) - 4);
	return 60;
}

Test(tap_dev, bad_name_or_flags_are_einval)
{
	struct ns_endpoint *ep = NULL;

	cr_assert_eq(tap_tap_open("", TAP_CREATE, &ep), -EINVAL);
	cr_assert_eq(tap_tap_open("sixteen-chars-xx", TAP_CREATE, &ep), -EINVAL);
	cr_assert_eq(tap_tap_open(NULL, TAP_CREATE, &ep), -EINVAL);
	cr_assert_eq(tap_tap_open("nstap0", TAP_CREATE, NULL), -EINVAL);
	cr_assert_eq(tap_tap_open("nstap0", 0x2, &ep), -EINVAL);
	cr_assert_null(ep);
}

Test(tap_dev, missing_device_without_create_is_enodev)
{
	struct ns_endpoint *ep = NULL;

	cr_assert_eq(if_nametoindex("nsmissing0"), 0);
	cr_assert_eq(tap_tap_open("nsmissing0", 0, &ep), -ENODEV);
	cr_assert_null(ep);
	cr_assert_eq(if_nametoindex("nsmissing0"), 0, "nothing was created");
}

Test(tap_dev, create_makes_the_device_and_reads_its_mtu)
{
	struct ns_endpoint *ep;

	enter_netns();
	cr_assert_eq(tap_tap_open("nstap0", TAP_CREATE, &ep), 0);
	cr_assert_neq(if_nametoindex("nstap0"), 0);
	cr_assert_eq(ep->ops->kind, TAP_KIND_TAP);
	cr_assert_str_eq(ep->ops->name, "tap");
	cr_assert_str_eq(ep->device, "nstap0");
	cr_assert_eq(ep->mtu, 1500);
	cr_assert(fcntl(ep->fd, F_GETFL) & O_NONBLOCK);
	tap_endpoint_destroy(ep);
}

Test(tap_dev, destroy_removes_a_device_it_created)
{
	struct ns_endpoint *ep;

	enter_netns();
	cr_assert_eq(tap_tap_open("nstap0", TAP_CREATE, &ep), 0);
	tap_endpoint_destroy(ep);
	cr_assert_eq(if_nametoindex("nstap0"), 0);
}

Test(tap_dev, name_template_gets_the_kernels_name)
{
	struct ns_endpoint *ep;

	enter_netns();
	cr_assert_eq(tap_tap_open("nst%d", TAP_CREATE, &ep), 0);
	cr_assert_str_eq(ep->device, "nst0");
	cr_assert_neq(if_nametoindex("nst0"), 0);
	tap_endpoint_destroy(ep);
}

Test(tap_dev, attach_to_existing_persistent_tap_reads_its_mtu)
{
	struct ns_endpoint *ep;

	enter_netns();
	make_persistent_tap("nstap1", 1400);
	cr_assert_eq(tap_tap_open("nstap1", 0, &ep), 0);
	cr_assert_eq(ep->mtu, 1400);
	tap_endpoint_destroy(ep);
	cr_assert_neq(if_nametoindex("nstap1"), 0, "a persistent TAP outlives us");
}

Test(tap_dev, second_attach_to_a_busy_tap_fails)
{
	struct ns_endpoint *a, *b = NULL;

	enter_netns();
	cr_assert_eq(tap_tap_open("nstap0", TAP_CREATE, &a), 0);
	cr_assert_eq(tap_tap_open("nstap0", 0, &b), -EBUSY);
	cr_assert_null(b);
	tap_endpoint_destroy(a);
}

Test(tap_dev, existing_device_that_is_not_a_tap_is_refused)
{
	struct ns_endpoint *ep = NULL;

	enter_netns();
	cr_assert_eq(tap_tap_open("lo", 0, &ep), -EINVAL);
	cr_assert_null(ep);
}

Test(tap_dev, frames_flow_both_ways_through_the_kernel)
{
	struct ns_endpoint *ep;
	uint8_t req[60], buf[2048];
	const struct iovec iov[] = { { req, 14 }, { req + 14, 46 } };
	const struct tap_txframe tx = { .iov = iov, .iovcnt = 2, .len = 60 };
	struct tap_rxframe rx = { .data = buf, .cap = sizeof(buf) };
	bool replied = false;

	enter_netns();
	cr_assert_eq(tap_tap_open("nstap0", TAP_CREATE, &ep), 0);
	if_up_with_addr("nstap0");
	arp_request(req, "198.51.100.1");
	cr_assert_eq(ep->ops->send(ep, &tx, 1), 1);
	/* The kernel answers with an ARP reply from 198.51.100.1. */
	while (!replied && wait_readable(ep->fd, 2000)) {
		cr_assert_geq(ep->ops->recv(ep, &rx, 1), 0);
		replied = rx.len >= 42 && buf[12] == 0x08 && buf[13] == 0x06 &&
			  buf[21] == 2 && !memcmp(buf + 28, "\xc6\x33\x64\x01", 4);
	}
	cr_assert(replied, "no ARP reply read from the TAP");
	cr_assert_arr_eq(buf, "\x02\0\0\0\0\x02", 6, "reply goes to our MAC");
	tap_endpoint_destroy(ep);
}

Test(tap_dev, frame_longer_than_slot_is_dropped_and_counted)
{
	struct ns_endpoint *ep;
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(9) };
	uint8_t buf[20];
	struct tap_rxframe rx = { .data = buf, .cap = sizeof(buf) };
	int sk;

	enter_netns();
	cr_assert_eq(tap_tap_open("nstap0", TAP_CREATE, &ep), 0);
	if_up_with_addr("nstap0");
	/* A datagram to a neighbour makes the kernel send a 42-byte ARP
	 * request out of the TAP. */
	inet_pton(AF_INET, "198.51.100.2", &dst.sin_addr);
	sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(sk, 0);
	cr_assert_eq(sendto(sk, "x", 1, 0, (struct sockaddr *)&dst, sizeof(dst)), 1);
	cr_assert(wait_readable(ep->fd, 2000), "the kernel sent nothing");
	cr_assert_eq(ep->ops->recv(ep, &rx, 1), 0);
	cr_assert_geq(ep->rx_truncated, 1);
	close(sk);
	tap_endpoint_destroy(ep);
}

Test(tap_dev, send_while_device_down_is_not_fatal)
{
	struct ns_endpoint *ep;
	uint8_t req[60];
	const struct iovec iov[] = { { req, sizeof(req) } };
	const struct tap_txframe tx = { .iov = iov, .iovcnt = 1, .len = sizeof(req) };

	enter_netns();
	cr_assert_eq(tap_tap_open("nstap0", TAP_CREATE, &ep), 0);
	arp_request(req, "198.51.100.1");
	cr_assert_eq(ep->ops->send(ep, &tx, 1), 0, "not taken, endpoint still up");
	if_up_with_addr("nstap0");
	cr_assert_eq(ep->ops->send(ep, &tx, 1), 1);
	tap_endpoint_destroy(ep);
}

Test(tap_dev, deleted_device_fails_recv_and_send)
{
	struct ns_endpoint *ep;
	uint8_t req[60], buf[2048];
	const struct iovec iov[] = { { req, sizeof(req) } };
	const struct tap_txframe tx = { .iov = iov, .iovcnt = 1, .len = sizeof(req) };
	struct tap_rxframe rx = { .data = buf, .cap = sizeof(buf) };
	int r;

	enter_netns();
	make_persistent_tap("nstap1", 1500);
	cr_assert_eq(tap_tap_open("nstap1", 0, &ep), 0);
	/* Up first, so a failed send cannot be the EIO of a device that is
	 * merely down. */
	if_up_with_addr("nstap1");
	link_del("nstap1");
	arp_request(req, "198.51.100.1");
	/* The kernel detaches the fd: EBADFD both ways, for good. */
	r = ep->ops->recv(ep, &rx, 1);
	cr_assert_eq(r, -EBADFD, "recv after delete returned %d", r);
	r = ep->ops->send(ep, &tx, 1);
	cr_assert_eq(r, -EBADFD, "send after delete returned %d", r);
	tap_endpoint_destroy(ep);
}

/* The Internet checksum of a UDP or TCP segment over IPv4, the reference
 * the completed checksums are checked against: sum of the pseudo-header
 * and the segment, complemented. @ip points at the IPv4 header. */
static uint16_t l4_csum_ref(const uint8_t *ip, uint8_t proto, const uint8_t *seg, size_t len)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 12; i < 20; i += 2)	/* source and destination addresses */
		sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	sum += proto + (uint32_t)len;
	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(seg[i] << 8 | seg[i + 1]);
	if (len & 1)
		sum += (uint32_t)seg[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

Test(tap_dev, vnet_partial_tcp_checksum_is_completed)
{
	uint8_t f[14 + 20 + 20 + 1001] = { 0 };
	uint8_t *ip = f + 14, *tcp = ip + 20;
	size_t seglen = sizeof(f) - 34, i;
	struct tap_offload off = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 34, .csum_offset = 16,
	};
	uint32_t pseudo = 0;
	uint16_t want, got;

	ip[0] = 0x45;
	ip[9] = 6;
	memcpy(ip + 12, "\xc6\x33\x64\x01\xc6\x33\x64\x02", 8);
	tcp[12] = 5 << 4;
	for (i = 20; i < seglen; i++)
		tcp[i] = (uint8_t)(i * 7);	/* an odd length on purpose */
	want = l4_csum_ref(ip, 6, tcp, seglen);
	/* What the kernel leaves in the field: the folded pseudo-header sum. */
	for (i = 12; i < 20; i += 2)
		pseudo += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	pseudo += 6 + (uint32_t)seglen;
	while (pseudo >> 16)
		pseudo = (pseudo & 0xffff) + (pseudo >> 16);
	tcp[16] = (uint8_t)(pseudo >> 8);
	tcp[17] = (uint8_t)pseudo;
	cr_assert(tap_vnet_csum_complete(f, sizeof(f), &off));
	got = (uint16_t)(tcp[16] << 8 | tcp[17]);
	cr_assert_eq(got, want, "checksum %#x, want %#x", got, want);
	cr_assert_eq(off.flags, VIRTIO_NET_HDR_F_DATA_VALID);
}

Test(tap_dev, vnet_checksum_offsets_past_the_frame_are_refused)
{
	uint8_t f[60] = { 0 };
	struct tap_offload off = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 50, .csum_offset = 16,
	};

	cr_assert_not(tap_vnet_csum_complete(f, sizeof(f), &off));
	off.csum_start = 60;
	off.csum_offset = 0;
	cr_assert_not(tap_vnet_csum_complete(f, sizeof(f), &off));
	off.flags = 0;	/* nothing to complete: fine whatever the offsets */
	cr_assert(tap_vnet_csum_complete(f, sizeof(f), &off));
}

/* An ARP reply telling the kernel 198.51.100.2 is at 02:00:00:00:00:02. */
static void arp_reply(uint8_t *f, const uint8_t *kernel_mac)
{
	static const uint8_t head[] = {
		0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02,
		0x02, 0, 0, 0, 0, 0x02, 198, 51, 100, 2,	/* sender */
	};

	memset(f, 0, 60);
	memcpy(f, kernel_mac, 6);
	memcpy(f + 6, "\x02\0\0\0\0\x02", 6);
	memcpy(f + 12, head, sizeof(head));
	memcpy(f + 32, kernel_mac, 6);
	memcpy(f + 38, "\xc6\x33\x64\x01", 4);
}

/* The kernel's own datagram may come with its checksum partial (the stack
 * need not check a sum the kernel never computed); its offsets then name
 * the UDP checksum field, and completing it gives the right sum. */
Test(tap_dev, kernel_datagram_arrives_with_a_completable_checksum)
{
	struct ns_endpoint *ep;
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(9) };
	uint8_t buf[2048], reply[60], payload[333];
	const struct iovec iov[] = { { reply, 60 } };
	const struct tap_txframe tx = { .iov = iov, .iovcnt = 1, .len = 60 };
	struct tap_rxframe rx = { .data = buf, .cap = sizeof(buf) };
	bool got_udp = false;
	int sk;

	enter_netns();
	cr_assert_eq(tap_tap_open("nstap0", TAP_CREATE, &ep), 0);
	if_up_with_addr("nstap0");
	inet_pton(AF_INET, "198.51.100.2", &dst.sin_addr);
	sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(sk, 0);
	memset(payload, 0xa5, sizeof(payload));
	cr_assert_eq(sendto(sk, payload, sizeof(payload), 0, (struct sockaddr *)&dst, sizeof(dst)),
		     (ssize_t)sizeof(payload));
	/* Answer the kernel's ARP request; then the datagram follows. */
	while (!got_udp && wait_readable(ep->fd, 2000)) {
		cr_assert_geq(ep->ops->recv(ep, &rx, 1), 0);
		if (rx.len >= 42 && buf[12] == 0x08 && buf[13] == 0x06) {
			arp_reply(reply, buf + 6);
			cr_assert_eq(ep->ops->send(ep, &tx, 1), 1);
		} else if (rx.len >= 42 && buf[12] == 0x08 && buf[13] == 0x00 && buf[23] == 17) {
			const uint8_t *udp = buf + 34;
			size_t len = (size_t)(udp[4] << 8 | udp[5]);
			uint16_t sum = (uint16_t)(udp[6] << 8 | udp[7]);

			cr_assert_eq(len, 8 + sizeof(payload));
			if (rx.off.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
				cr_assert_eq(rx.off.csum_start, 34);
				cr_assert_eq(rx.off.csum_offset, 6);
				cr_assert(tap_vnet_csum_complete(buf, rx.len, &rx.off));
				sum = (uint16_t)(udp[6] << 8 | udp[7]);
			}
			cr_assert_eq(l4_csum_ref(buf + 14, 17, udp, len), 0,
				     "UDP checksum %#x does not verify", sum);
			got_udp = true;
		}
	}
	cr_assert(got_udp, "the datagram never came out of the TAP");
	close(sk);
	tap_endpoint_destroy(ep);
}
