/* SPDX-License-Identifier: MIT */
/*
 * chanstack.c - the stack on a channel NIC that frame-level unit tests
 * share (chanstack.h).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "chanstack.h"

const uint8_t nic_mac[FRAME_MAC_LEN] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x02 };
const uint8_t peer_mac[FRAME_MAC_LEN] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01 };

struct ns_stack *chanstack_new(struct ns_endpoint **chanp, struct frame_path *to4,
			       struct frame_path *to6)
{
	struct ns_stack_config cfg = { .log_level = NS_LOG_ERR };
	struct ns_nic_config nc = { .name = "eth0" };
	struct ns_stack *s;
	struct ns_prefix pfx;
	int nic;

	cr_assert_eq(ns_stack_new(&cfg, &s), 0);
	cr_assert_eq(ns_endpoint_channel_new(chanp), 0);
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
