/* SPDX-License-Identifier: MIT */
/*
 * chanstack.h - the stack most frame-level unit tests start from: one stack
 * (errors logged only) with one NIC "eth0" on an in-memory channel
 * endpoint, NIC_IP4/24 and NIC_IP6/64 on it, and the peer's paths to it
 * from PEER_IP4 and PEER_IP6. Every step is a Criterion assertion.
 */
#ifndef NETSTACK_TESTS_CHANSTACK_H
#define NETSTACK_TESTS_CHANSTACK_H

#include "frames.h"
#include "netstack.h"
#include "tap.h"

#define NIC_IP4 "198.51.100.2"
#define PEER_IP4 "198.51.100.1"
#define NIC_IP6 "fd42:5::2"
#define PEER_IP6 "fd42:5::1"

extern const uint8_t nic_mac[FRAME_MAC_LEN];	/* the stack's NIC */
extern const uint8_t peer_mac[FRAME_MAC_LEN];	/* the peer the tests play */

/*
 * chanstack_new() - that stack
 * @chanp: receives the channel endpoint (the NIC's; the stack frees it)
 * @to4: receives the IPv4 path from the peer to the stack
 * @to6: receives the IPv6 path likewise
 *
 * Return: the stack, not started; the caller frees it.
 */
struct ns_stack *chanstack_new(struct ns_endpoint **chanp, struct frame_path *to4,
			       struct frame_path *to6);

/* The same with the stack configured by @cfg. */
struct ns_stack *chanstack_new_cfg(const struct ns_stack_config *cfg, struct ns_endpoint **chanp,
				   struct frame_path *to4, struct frame_path *to6);

/* The same, with the channel playing a TAP with a virtio-net header
 * (tap_channel_set_vnet()): the NIC runs its TAP data path. */
struct ns_stack *chanstack_new_vnet(struct ns_endpoint **chanp, struct frame_path *to4,
				    struct frame_path *to6);

/* A frame the stack sent, as chanstack_run() hands it over. */
struct chan_frame {
	uint8_t buf[70000];
	size_t len;
	struct tap_offload off;	/* all zero unless the channel plays a TAP */
	struct frame_parsed p;
};

/*
 * chanstack_run() - one round of the stack on its channel
 * @s, @chan, @to4, @to6: as chanstack_new() gave them
 * @fn: gets every frame the stack sent but its neighbour queries, which
 *      are answered (and the stack run again); NULL: dropped
 * @arg: for @fn
 *
 * Every frame must parse and carry a right checksum, or a partial one its
 * offload header says to complete (Criterion assertions).
 */
void chanstack_run(struct ns_stack *s, struct ns_endpoint *chan, const struct frame_path *to4,
		   const struct frame_path *to6, void (*fn)(const struct chan_frame *f, void *arg),
		   void *arg);

#endif /* NETSTACK_TESTS_CHANSTACK_H */
