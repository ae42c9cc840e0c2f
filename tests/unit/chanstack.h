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

#endif /* NETSTACK_TESTS_CHANSTACK_H */
