/* SPDX-License-Identifier: MIT */
/*
 * frames.h - a frame toolkit that lets unit tests act as a kernel-like peer
 * on the stack's in-memory channel endpoint: builders that write complete
 * Ethernet frames (ARP, IPv4, IPv6, ICMP and ICMPv6 echo, neighbour
 * solicitation and advertisement, UDP, TCP) with correct checksums into a
 * caller's buffer, one parser that takes apart whatever the stack transmits
 * and checks every checksum in it, and a small TCP peer that keeps sequence
 * numbers so tests can script a connection segment by segment. It needs
 * nothing from the stack and links into any test.
 *
 * Conventions: every builder describes its frame from the sender's side with
 * a struct frame_path (source = "me", destination = the other end), writes
 * the whole frame starting at @buf and returns its length, -ENOSPC when
 * @cap is too small, -EINVAL for inconsistent arguments, or -EMSGSIZE when
 * the IP payload would exceed 65535 bytes. Nothing is allocated and nothing
 * is retained: parsed results point into the caller's frame.
 */
#ifndef NETSTACK_TESTS_FRAMES_H
#define NETSTACK_TESTS_FRAMES_H

#include <netinet/in.h>		/* IPPROTO_*, struct in_addr, struct in6_addr */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FRAME_MAC_LEN 6u
#define FRAME_ETH_HLEN 14u
#define FRAME_ARP_LEN 28u
#define FRAME_IPV4_HLEN 20u
#define FRAME_IPV6_HLEN 40u
#define FRAME_ICMP_HLEN 8u	/* type, code, checksum, 4 bytes of header */
#define FRAME_UDP_HLEN 8u
#define FRAME_TCP_HLEN 20u
#define FRAME_TCP_OPTS_MAX 40u
#define FRAME_IP_PAYLOAD_MAX 65535u
/* The largest frame a builder writes: IPv6 with a 65535-byte payload. */
#define FRAME_MAX (FRAME_ETH_HLEN + FRAME_IPV6_HLEN + FRAME_IP_PAYLOAD_MAX)

#define FRAME_ETH_IPV4 0x0800u
#define FRAME_ETH_ARP 0x0806u
#define FRAME_ETH_IPV6 0x86ddu

#define FRAME_ARP_REQUEST 1u
#define FRAME_ARP_REPLY 2u

/* TCP flags, as in the header's flags byte. */
#define FRAME_TCP_FIN 0x01u
#define FRAME_TCP_SYN 0x02u
#define FRAME_TCP_RST 0x04u
#define FRAME_TCP_PSH 0x08u
#define FRAME_TCP_ACK 0x10u
#define FRAME_TCP_URG 0x20u

/* Neighbour advertisement flags, as in the first byte after the checksum. */
#define FRAME_NA_ROUTER 0x80u
#define FRAME_NA_SOLICITED 0x40u
#define FRAME_NA_OVERRIDE 0x20u

/* The TTL (hop limit) used when a path leaves it 0. */
#define FRAME_TTL_DEFAULT 64u

/*
 * An IPv4 or IPv6 address. The bytes of the union that the family does not
 * use are always zero in what this toolkit writes, so two addresses compare
 * with frame_addr_eq() or memcmp().
 */
struct frame_addr {
	int family;		/* AF_INET, AF_INET6, or 0 for none */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	};
};

/* Who sends a frame to whom: Ethernet and IP, from the sender's side. */
struct frame_path {
	uint8_t src_mac[FRAME_MAC_LEN];
	uint8_t dst_mac[FRAME_MAC_LEN];
	struct frame_addr src, dst;	/* the same family */
	uint8_t ttl;			/* TTL or hop limit; 0 = FRAME_TTL_DEFAULT */
};

/* One TCP segment to build. */
struct frame_tcp {
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;			/* FRAME_TCP_* */
	uint16_t window;		/* as on the wire, unscaled */
	const uint8_t *opts;		/* raw option bytes, padded with EOL to 4 */
	size_t opts_len;		/* at most FRAME_TCP_OPTS_MAX */
	const void *data;
	size_t len;
};

/*
 * What frame_parse() found. Fields of layers the frame does not carry are
 * zero (wscale: -1). Pointers point into the parsed frame.
 */
struct frame_parsed {
	/* Ethernet */
	uint8_t dst_mac[FRAME_MAC_LEN], src_mac[FRAME_MAC_LEN];
	uint16_t ethertype;

	/* ARP (Ethernet/IPv4 only) */
	uint16_t arp_op;
	uint8_t arp_sha[FRAME_MAC_LEN], arp_tha[FRAME_MAC_LEN];
	struct in_addr arp_spa, arp_tpa;

	/* IP */
	int ip_version;			/* 4, 6, or 0 */
	struct frame_addr src, dst;
	uint8_t proto;			/* after IPv6 hop-by-hop/routing/dest options */
	uint8_t ttl;			/* TTL or hop limit */
	uint16_t ip_frag;		/* IPv4 flags + fragment offset field */

	/* ICMP and ICMPv6; types as in <netinet/ip_icmp.h>, <netinet/icmp6.h> */
	uint8_t icmp_type, icmp_code;
	uint16_t echo_id, echo_seq;	/* echo request and reply only */
	struct in6_addr nd_target;	/* neighbour solicitation/advertisement */
	uint8_t nd_flags;		/* advertisement: FRAME_NA_* */
	bool nd_has_lla;		/* a source/target link-layer address option */
	uint8_t nd_lla[FRAME_MAC_LEN];

	/* UDP and TCP */
	uint16_t sport, dport;

	/* TCP */
	uint32_t seq, ack;
	uint8_t tcp_flags;
	uint16_t window;		/* as on the wire, unscaled */
	const uint8_t *tcp_opts;
	size_t tcp_opts_len;
	uint16_t mss;			/* 0: no MSS option */
	int wscale;			/* -1: no window scale option */
	bool sack_perm;
	bool has_ts;
	uint32_t ts_val, ts_ecr;

	/*
	 * What follows the last header understood: TCP/UDP data, ICMP echo data,
	 * the body after an ICMP header's first 8 bytes, the IP payload of a
	 * fragment or unknown protocol, the Ethernet payload of an unknown type.
	 * Ethernet padding is excluded for IP.
	 */
	const uint8_t *payload;
	size_t payload_len;

	/* Every checksum present (IPv4 header, ICMP, ICMPv6, UDP, TCP) is right. */
	bool csum_ok;
};

/**
 * frame_csum() - the internet checksum (RFC 1071)
 * @data: bytes to sum, as 16-bit big-endian words (an odd tail is padded)
 * @len: their length
 * @sum: a partial sum to start from (0, or the complement of an earlier
 *       frame_csum() result, such as a pseudo-header's)
 *
 * Return: the complemented, folded sum in host order: the value to store in
 * a checksum field, or 0 when summing a message whose checksum is right.
 */
uint16_t frame_csum(const void *data, size_t len, uint32_t sum);

/**
 * frame_addr_parse() - parse "198.51.100.2" or "fd42:5::2"
 * @text: the address
 * @a: filled in; unused bytes zeroed
 *
 * Return: 0 or -EINVAL.
 */
int frame_addr_parse(const char *text, struct frame_addr *a);

/**
 * frame_addr_eq() - whether two addresses are the same
 * @a: one address
 * @b: the other
 *
 * Return: true if family and address match.
 */
bool frame_addr_eq(const struct frame_addr *a, const struct frame_addr *b);

/**
 * frame_path_init() - fill a path from MACs and textual addresses
 * @p: the path; its TTL becomes 0 (FRAME_TTL_DEFAULT)
 * @src_mac: the sender's MAC
 * @src: the sender's address
 * @dst_mac: the receiver's MAC
 * @dst: the receiver's address, of the same family as @src
 *
 * Return: 0 or -EINVAL.
 */
int frame_path_init(struct frame_path *p, const uint8_t src_mac[FRAME_MAC_LEN], const char *src,
		    const uint8_t dst_mac[FRAME_MAC_LEN], const char *dst);

/**
 * frame_eth() - write an Ethernet header
 * @buf: where
 * @cap: room in @buf
 * @dst: destination MAC
 * @src: source MAC
 * @type: the ethertype, host order
 *
 * Return: FRAME_ETH_HLEN or -ENOSPC.
 */
ssize_t frame_eth(uint8_t *buf, size_t cap, const uint8_t dst[FRAME_MAC_LEN],
		  const uint8_t src[FRAME_MAC_LEN], uint16_t type);

/**
 * frame_arp() - an ARP request or reply for IPv4 over Ethernet
 * @buf: where
 * @cap: room in @buf
 * @path: sender (src MAC and IPv4) and target (dst MAC and IPv4)
 * @op: FRAME_ARP_REQUEST (sent to broadcast, target MAC zero) or
 *      FRAME_ARP_REPLY (sent to the target MAC)
 *
 * Return: the frame length (42), -ENOSPC, -EINVAL.
 */
ssize_t frame_arp(uint8_t *buf, size_t cap, const struct frame_path *path, uint16_t op);

/**
 * frame_ip() - an IPv4 or IPv6 packet around a payload given whole
 * @buf: where
 * @cap: room in @buf
 * @path: addresses; their family picks the IP version
 * @proto: IPv4 protocol or IPv6 next header
 * @payload: the bytes after the IP header, copied as they are
 * @len: their length
 *
 * IPv4 goes out with DF set, ID 0, no options and a correct header checksum;
 * IPv6 with traffic class and flow label 0. Nothing in @payload is touched,
 * so this also builds hand-made or deliberately broken upper layers.
 *
 * Return: the frame length, -ENOSPC, -EINVAL, -EMSGSIZE.
 */
ssize_t frame_ip(uint8_t *buf, size_t cap, const struct frame_path *path, uint8_t proto,
		 const void *payload, size_t len);

/**
 * frame_icmp_echo() - an ICMP (IPv4) or ICMPv6 (IPv6) echo request or reply
 * @buf: where
 * @cap: room in @buf
 * @path: addresses; their family picks ICMP or ICMPv6
 * @reply: false for a request, true for a reply
 * @id: the identifier
 * @seq: the sequence number
 * @data: echo data, or NULL when @len is 0
 * @len: its length
 *
 * Return: the frame length, -ENOSPC, -EINVAL, -EMSGSIZE.
 */
ssize_t frame_icmp_echo(uint8_t *buf, size_t cap, const struct frame_path *path, bool reply,
			uint16_t id, uint16_t seq, const void *data, size_t len);

/**
 * frame_ndp_ns() - a neighbour solicitation asking for the MAC of path->dst
 * @buf: where
 * @cap: room in @buf
 * @path: the solicitor (src MAC and IPv6) and the target address (dst IPv6;
 *        dst MAC is not used)
 *
 * Sent to the target's solicited-node multicast group and its 33:33 MAC,
 * hop limit 255, with a source link-layer address option unless the source
 * is :: (duplicate address detection).
 *
 * Return: the frame length, -ENOSPC, -EINVAL.
 */
ssize_t frame_ndp_ns(uint8_t *buf, size_t cap, const struct frame_path *path);

/**
 * frame_ndp_na() - a neighbour advertisement for the sender's own address
 * @buf: where
 * @cap: room in @buf
 * @path: the advertiser (src MAC and IPv6, which is the target) and the
 *        receiver (dst MAC and IPv6; ff02::1 for an unsolicited one)
 * @flags: FRAME_NA_ROUTER | FRAME_NA_SOLICITED | FRAME_NA_OVERRIDE
 *
 * Hop limit 255, with a target link-layer address option (src MAC).
 *
 * Return: the frame length, -ENOSPC, -EINVAL.
 */
ssize_t frame_ndp_na(uint8_t *buf, size_t cap, const struct frame_path *path, uint8_t flags);

/**
 * frame_udp() - a UDP datagram over IPv4 or IPv6
 * @buf: where
 * @cap: room in @buf
 * @path: addresses
 * @sport: source port
 * @dport: destination port
 * @data: the payload, or NULL when @len is 0
 * @len: its length
 *
 * The checksum covers the pseudo-header; a computed 0 is sent as 0xffff.
 *
 * Return: the frame length, -ENOSPC, -EINVAL, -EMSGSIZE.
 */
ssize_t frame_udp(uint8_t *buf, size_t cap, const struct frame_path *path, uint16_t sport,
		  uint16_t dport, const void *data, size_t len);

/**
 * frame_tcp() - a TCP segment over IPv4 or IPv6
 * @buf: where
 * @cap: room in @buf
 * @path: addresses
 * @seg: the segment; options are padded with EOL to a multiple of 4
 *
 * Return: the frame length, -ENOSPC, -EINVAL (options too long), -EMSGSIZE.
 */
ssize_t frame_tcp(uint8_t *buf, size_t cap, const struct frame_path *path, const struct frame_tcp *seg);

/**
 * frame_parse() - take a frame apart and check its checksums
 * @f: the frame, from its Ethernet header
 * @len: its length
 * @p: filled in (zeroed first)
 *
 * Understands ARP, IPv4 (with options), IPv6 (skipping hop-by-hop, routing
 * and destination options headers), ICMP, ICMPv6 (echo, neighbour
 * solicitation and advertisement in detail), UDP and TCP (MSS, window scale,
 * SACK permitted and timestamp options). An IPv4 fragment or IPv6 fragment
 * header stops at the IP layer. Other ethertypes and protocols are not an
 * error: their bytes are the payload.
 *
 * Return: 0, or -EINVAL if the frame is truncated or a header is malformed
 * (@p then holds what was parsed before the fault).
 */
int frame_parse(const uint8_t *f, size_t len, struct frame_parsed *p);

/*
 * frame_describe() - one line saying what a parsed frame is, for failure
 * messages: "TCP 198.51.100.2:80->198.51.100.1:40000 flags 0x12 seq ..."
 * (ARP, UDP, ICMP and other IP protocols likewise). Always NUL-terminates
 * @buf when @cap > 0.
 */
void frame_describe(const struct frame_parsed *p, char *buf, size_t cap);

/*
 * A scripted TCP peer. Its path runs from the peer (src) to the stack (dst).
 * Every segment it sends starts at snd_nxt and advances it by the data
 * length plus one for SYN and for FIN; segments it absorbs from the stack
 * advance rcv_nxt the same way when they arrive in order.
 */
struct tcp_peer {
	struct frame_path path;
	uint16_t sport;			/* the peer's port */
	uint16_t dport;			/* the stack's; 0 = take it from the first segment absorbed */
	uint32_t snd_nxt;		/* next sequence number to send */
	uint32_t rcv_nxt;		/* next sequence number expected; valid once synced */
	uint16_t window;		/* advertised in every segment; 65535 after init */
	bool synced;			/* the stack's SYN has been absorbed */
};

/**
 * frame_neighbour_reply() - the peer's answer to the stack's neighbour query
 * @p: a frame the stack sent, parsed
 * @to4: the IPv4 path from the peer to the stack (its src is the peer), or NULL
 * @to6: the IPv6 path likewise, or NULL
 * @buf: receives the reply
 * @cap: room in @buf
 *
 * An ARP request for @to4's source address gets an ARP reply; a neighbour
 * solicitation for @to6's source address (not a DAD probe) gets a solicited
 * advertisement with the override flag, as the peer's kernel would send.
 *
 * Return: the reply's length, 0 if @p is no such query, or -errno.
 */
ssize_t frame_neighbour_reply(const struct frame_parsed *p, const struct frame_path *to4,
			      const struct frame_path *to6, uint8_t *buf, size_t cap);

/**
 * tcp_peer_init() - set up a peer that has sent nothing yet
 * @p: the peer
 * @path: from the peer to the stack; copied
 * @sport: the peer's port
 * @dport: the stack's port, or 0 to learn it from the stack's SYN
 * @iss: the peer's initial sequence number
 */
void tcp_peer_init(struct tcp_peer *p, const struct frame_path *path, uint16_t sport,
		   uint16_t dport, uint32_t iss);

/**
 * tcp_peer_send() - build the peer's next segment and advance snd_nxt
 * @p: the peer
 * @buf: where
 * @cap: room in @buf
 * @flags: FRAME_TCP_* exactly as sent; the ack field is rcv_nxt with
 *         FRAME_TCP_ACK, else 0
 * @opts: raw TCP options, or NULL
 * @opts_len: their length
 * @data: payload, or NULL when @len is 0
 * @len: its length
 *
 * snd_nxt advances only when the frame was built.
 *
 * Return: the frame length or a frame_tcp() error.
 */
ssize_t tcp_peer_send(struct tcp_peer *p, uint8_t *buf, size_t cap, uint8_t flags,
		      const uint8_t *opts, size_t opts_len, const void *data, size_t len);

/**
 * tcp_peer_absorb() - take in a segment the stack sent to this peer
 * @p: the peer
 * @f: the parsed frame
 *
 * The first SYN sets rcv_nxt to its sequence number plus one (plus data
 * and FIN) and marks the peer synced. Later segments advance rcv_nxt by data
 * length plus FIN when their sequence number equals rcv_nxt; retransmissions
 * (a repeated SYN too) and out-of-order segments leave it alone. A peer with dport 0 adopts the
 * source port of the first segment.
 *
 * Return: how far rcv_nxt moved, or -EINVAL if @f is not TCP between this
 * peer's ports and IP version.
 */
int tcp_peer_absorb(struct tcp_peer *p, const struct frame_parsed *f);

/*
 * The usual segments. SYN and RST carry ACK once the peer is synced (a
 * SYN-ACK; a RST refusing the stack's SYN); data carries ACK|PSH.
 */
static inline ssize_t tcp_peer_syn(struct tcp_peer *p, uint8_t *buf, size_t cap,
				   const uint8_t *opts, size_t opts_len)
{
	uint8_t ack = p->synced ? FRAME_TCP_ACK : 0;

	return tcp_peer_send(p, buf, cap, FRAME_TCP_SYN | ack, opts, opts_len, NULL, 0);
}

static inline ssize_t tcp_peer_ack(struct tcp_peer *p, uint8_t *buf, size_t cap)
{
	return tcp_peer_send(p, buf, cap, FRAME_TCP_ACK, NULL, 0, NULL, 0);
}

static inline ssize_t tcp_peer_data(struct tcp_peer *p, uint8_t *buf, size_t cap,
				    const void *data, size_t len)
{
	return tcp_peer_send(p, buf, cap, FRAME_TCP_ACK | FRAME_TCP_PSH, NULL, 0, data, len);
}

static inline ssize_t tcp_peer_fin(struct tcp_peer *p, uint8_t *buf, size_t cap)
{
	return tcp_peer_send(p, buf, cap, FRAME_TCP_FIN | FRAME_TCP_ACK, NULL, 0, NULL, 0);
}

static inline ssize_t tcp_peer_rst(struct tcp_peer *p, uint8_t *buf, size_t cap)
{
	uint8_t ack = p->synced ? FRAME_TCP_ACK : 0;

	return tcp_peer_send(p, buf, cap, FRAME_TCP_RST | ack, NULL, 0, NULL, 0);
}

#endif /* NETSTACK_TESTS_FRAMES_H */
