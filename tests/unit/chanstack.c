/* SPDX-License-Identifier: MIT */
/*
 * chanstack.c - the stack on a channel NIC that frame-level unit tests
 * share (chanstack.h).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/virtio_net.h>
#include <string.h>

#include "chanstack.h"
#include "internal.h"

const uint8_t nic_mac[FRAME_MAC_LEN] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x02 };
const uint8_t peer_mac[FRAME_MAC_LEN] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01 };

static struct ns_stack *make(const struct ns_stack_config *cfg, struct ns_endpoint **chanp,
			     struct frame_path *to4, struct frame_path *to6, bool vnet)
{
	struct ns_stack_config quiet = { .log_level = NS_LOG_ERR };
	struct ns_nic_config nc = { .name = "eth0" };
	struct ns_stack *s;
	struct ns_prefix pfx;
	int nic;

	cr_assert_eq(ns_stack_new(cfg ? cfg : &quiet, &s), 0);
	cr_assert_eq(ns_endpoint_channel_new(chanp), 0);
	if (vnet)
		cr_assert_eq(tap_channel_set_vnet(*chanp), 0);
	memcpy(nc.mac, nic_mac, sizeof(nc.mac));
	nic = ns_nic_add(s, &nc, *chanp);
	cr_assert_geq(nic, 1);
	cr_assert_eq(ns_prefix_parse(NIC_IP4 "/24", &pfx), 0);
	cr_assert_eq(ns_addr_add(s, nic, &pfx), 0);
	cr_assert_eq(ns_prefix_parse(NIC_IP6 "/64", &pfx), 0);
	cr_assert_eq(ns_addr_add(s, nic, &pfx), 0);
	cr_assert_eq(frame_path_init(to4, peer_mac, PEER_IP4, nic_mac, NIC_IP4), 0);
	cr_assert_eq(frame_path_init(to6, peer_mac, PEER_IP6, nic_mac, NIC_IP6), 0);
	return s;
}

struct ns_stack *chanstack_new(struct ns_endpoint **chanp, struct frame_path *to4,
			       struct frame_path *to6)
{
	return make(NULL, chanp, to4, to6, false);
}

struct ns_stack *chanstack_new_cfg(const struct ns_stack_config *cfg, struct ns_endpoint **chanp,
				   struct frame_path *to4, struct frame_path *to6)
{
	return make(cfg, chanp, to4, to6, false);
}

struct ns_stack *chanstack_new_vnet(struct ns_endpoint **chanp, struct frame_path *to4,
				    struct frame_path *to6)
{
	return make(NULL, chanp, to4, to6, true);
}

void chanstack_run(struct ns_stack *s, struct ns_endpoint *chan, const struct frame_path *to4,
		   const struct frame_path *to6, void (*fn)(const struct chan_frame *f, void *arg),
		   void *arg)
{
	static struct chan_frame f;	/* 70 KB: off the stack */
	bool again;

	do {
		ssize_t n;

		again = false;
		ns_lock(s);
		ns_stack_run_once(s, false);
		ns_unlock(s);
		while ((n = tap_channel_read_offload(chan, f.buf, sizeof(f.buf), &f.off)) != -EAGAIN) {
			uint8_t reply[256];
			ssize_t r;

			cr_assert_gt(n, 0, "ns_channel_read: %zd", n);
			f.len = (size_t)n;
			cr_assert_eq(frame_parse(f.buf, f.len, &f.p), 0, "the stack sent a malformed frame");
			cr_assert(f.p.csum_ok || (f.off.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM),
				  "the stack sent a frame with a bad checksum");
			r = frame_neighbour_reply(&f.p, to4, to6, reply, sizeof(reply));
			if (r > 0) {
				cr_assert_eq(ns_channel_inject(chan, reply, (size_t)r), 0);
				again = true;
			} else if (fn) {
				fn(&f, arg);
			}
		}
	} while (again);
}
