/* SPDX-License-Identifier: MIT */
/*
 * syncookie.c - SYN cookies for lwIP's listeners, as Linux does them
 * (RFC 4987). lwIP 2.1.3 counts a half-open connection against its
 * listener's backlog from the SYN on and keeps it up to 20 s, so a SYN
 * flood fills the backlog and every later SYN, a real client's too, is
 * dropped. Here, in front of lwIP (the IP input hooks, filter.c), a SYN to
 * a listener whose backlog is full is answered with a cookie SYN-ACK and
 * forgotten; the ACK that echoes a valid cookie is turned into a
 * connection by replaying a SYN rebuilt from the cookie into lwIP, whose
 * ISN hook (port.c) then returns the cookie, and by letting the ACK
 * through after it. Room for that connection is made by dropping the
 * listener's oldest half-open one: a valid cookie proves a live peer, a
 * half-open connection under a flood most likely does not. This file owns
 * the cookie's format, its checks, the replay and the counters.
 */
#define _GNU_SOURCE
#include "syncookie.h"

#include <string.h>

#include "lwip/inet_chksum.h"
#include "lwip/ip.h"
#include "lwip/ip4.h"
#include "lwip/ip6.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/prot/tcp.h"
#include "lwip/stats.h"
#include "lwip/sys.h"
#include "tap_csum.h"

/*
 * The cookie, a 32-bit ISN: the clock's low 3 bits on top, then the 8 bits
 * of data (below TCPIP_COOKIE_DATA_MAX), then 21 bits of a MAC over both
 * addresses and ports, the peer's ISN, the whole clock and the data, so
 * no field can be changed without the MAC failing, and a guess passes with
 * odds 2^-21 per clock tried. The clock ticks every 65.5 s (sys_now() >>
 * 16) and the current and previous tick are accepted, so a cookie lives
 * 65-131 s (Linux: up to 2 minutes).
 */
#define COOKIE_COUNT_SHIFT 16
/* sys_now() is 32 bits, so the clock is 16 and wraps every 49.7 days: the
 * tick before 0 is 0xffff, and every difference is taken modulo 2^16. */
#define COOKIE_COUNT_MASK 0xffffu
#define COOKIE_COUNT_POS 29
#define COOKIE_DATA_POS 21
#define COOKIE_MAC_MASK ((1u << COOKIE_DATA_POS) - 1)
#define COOKIE_DOMAIN 0x636f6f6b69650001ULL	/* keeps cookies apart from ISNs */

/* data: the MSS index (3 bits), the peer's window scale (4 bits, 15 = none),
 * SACK permitted (1 bit). The MSS is the table's largest entry not above the
 * peer's: Linux's four plus jumbo and the 65520-byte MTU TAPs here. */
static const uint16_t mss_table[8] = { 536, 1300, 1400, 1440, 1460, 4000, 8940, 65460 };
#define DATA_WS_NONE 15u

struct tcp_opts {
	uint16_t mss;		/* 0: none */
	int ws;			/* -1: none */
	bool sack;
	bool ts;
	uint32_t tsval, tsecr;
};

static struct tcpip_syncookie_stats stats;	/* stack lock */
static bool cookies_sent;
static uint32_t last_sent_count;

/* The SYN being replayed, for tcpip_syncookie_replay_isn(). */
static struct {
	bool armed, used;
	ip_addr_t local, remote;
	uint16_t local_port, remote_port;
	uint32_t isn;
} replay;

void tcpip_syncookie_stats(struct tcpip_syncookie_stats *st)
{
	*st = stats;
}

void tcpip_addr_words(const ip_addr_t *ip, uint64_t out[2])
{
	out[0] = out[1] = 0;
	if (IP_IS_V6(ip))
		memcpy(out, ip_2_ip6(ip)->addr, 16);
	else
		memcpy(out, &ip_2_ip4(ip)->addr, 4);
}

static uint32_t cookie_mac(const ip_addr_t *local_ip, uint16_t local_port, const ip_addr_t *remote_ip,
			   uint16_t remote_port, uint32_t peer_isn, uint32_t count, unsigned data)
{
	uint64_t w[7];

	tcpip_addr_words(local_ip, w);
	tcpip_addr_words(remote_ip, &w[2]);
	w[4] = (uint64_t)IP_IS_V6(local_ip) << 32 | (uint32_t)local_port << 16 | remote_port;
	w[5] = (uint64_t)peer_isn << 32 | count;
	w[6] = COOKIE_DOMAIN ^ (uint64_t)data << 32;
	return (uint32_t)tcpip_siphash(w, 7) & COOKIE_MAC_MASK;
}

uint32_t tcpip_cookie_make(const ip_addr_t *local_ip, uint16_t local_port, const ip_addr_t *remote_ip,
			   uint16_t remote_port, uint32_t peer_isn, uint32_t count, unsigned data)
{
	data &= TCPIP_COOKIE_DATA_MAX - 1;
	count &= COOKIE_COUNT_MASK;
	return (count & 7u) << COOKIE_COUNT_POS | data << COOKIE_DATA_POS |
	       cookie_mac(local_ip, local_port, remote_ip, remote_port, peer_isn, count, data);
}

bool tcpip_cookie_check(const ip_addr_t *local_ip, uint16_t local_port, const ip_addr_t *remote_ip,
			uint16_t remote_port, uint32_t peer_isn, uint32_t cookie, uint32_t count,
			unsigned *data)
{
	unsigned d = (cookie >> COOKIE_DATA_POS) & (TCPIP_COOKIE_DATA_MAX - 1);
	uint32_t age, c;

	for (age = 0; age < 2; age++) {
		c = (count - age) & COOKIE_COUNT_MASK;
		if ((c & 7u) == cookie >> COOKIE_COUNT_POS &&
		    cookie_mac(local_ip, local_port, remote_ip, remote_port, peer_isn, c, d) ==
		    (cookie & COOKIE_MAC_MASK)) {
			*data = d;
			return true;
		}
	}
	return false;
}

static uint32_t cookie_count(void)
{
	return ((uint32_t)sys_now() >> COOKIE_COUNT_SHIFT) & COOKIE_COUNT_MASK;
}

/* Options as lwIP's tcp_parseopt() reads them: a bad length ends parsing. */
static void parse_opts(const uint8_t *o, size_t len, struct tcp_opts *out)
{
	size_t i = 0;

	memset(out, 0, sizeof(*out));
	out->ws = -1;
	while (i < len) {
		uint8_t kind = o[i], l;

		if (kind == LWIP_TCP_OPT_EOL)
			break;
		if (kind == LWIP_TCP_OPT_NOP) {
			i++;
			continue;
		}
		if (i + 1 >= len)
			break;
		l = o[i + 1];
		if (l < 2 || i + l > len)
			break;
		if (kind == LWIP_TCP_OPT_MSS && l == LWIP_TCP_OPT_LEN_MSS)
			out->mss = tap_get16(o + i + 2);
		else if (kind == LWIP_TCP_OPT_WS && l == LWIP_TCP_OPT_LEN_WS)
			out->ws = o[i + 2];
		else if (kind == LWIP_TCP_OPT_SACK_PERM && l == LWIP_TCP_OPT_LEN_SACK_PERM)
			out->sack = true;
		else if (kind == LWIP_TCP_OPT_TS && l == LWIP_TCP_OPT_LEN_TS) {
			out->ts = true;
			out->tsval = tap_get32(o + i + 2);
			out->tsecr = tap_get32(o + i + 6);
		}
		i += l;
	}
}

static unsigned cookie_data(const struct tcp_opts *o)
{
	unsigned mss = o->mss ? o->mss : mss_table[0], i;
	unsigned ws = o->ws < 0 ? DATA_WS_NONE : o->ws > 14 ? 14u : (unsigned)o->ws;

	for (i = 7; i > 0 && mss_table[i] > mss; i--)
		;
	return i | ws << 3 | (o->sack ? 0x80u : 0u);
}

/* The listener lwIP's tcp_input() would pick for this segment. */
static struct tcp_pcb_listen *find_listener(const struct tcpip_tcp_seg *s, uint16_t port)
{
	struct tcp_pcb_listen *l, *any = NULL;

	for (l = tcp_listen_pcbs.listen_pcbs; l; l = l->next) {
		if (l->netif_idx != NETIF_NO_INDEX && l->netif_idx != netif_get_index(s->inp))
			continue;
		if (l->local_port != port)
			continue;
		if (IP_IS_ANY_TYPE_VAL(l->local_ip)) {
			any = l;
		} else if (IP_ADDR_PCB_VERSION_MATCH_EXACT(l, &s->dst)) {
			if (ip_addr_cmp(&l->local_ip, &s->dst))
				return l;
			if (ip_addr_isany(&l->local_ip))
				any = l;
		}
	}
	return any;
}

static struct tcp_pcb *find_pcb(struct tcp_pcb *list, const struct tcpip_tcp_seg *s, uint16_t sport,
				uint16_t dport)
{
	struct tcp_pcb *pcb;

	for (pcb = list; pcb; pcb = pcb->next)
		if (pcb->remote_port == sport && pcb->local_port == dport &&
		    ip_addr_cmp(&pcb->remote_ip, &s->src) && ip_addr_cmp(&pcb->local_ip, &s->dst))
			return pcb;
	return NULL;
}

/* What lwIP's ip4_input()/ip6_input() and tcp_input() would check before a
 * SYN or an ACK reaches a listener: to one of our unicast addresses, from a
 * unicast one, with a right checksum. Checked before a cookie is sent or
 * taken, since the segment then never reaches those checks. */
static bool dst_is_ours(const struct tcpip_tcp_seg *s)
{
	struct netif *n;

	NETIF_FOREACH(n) {
		if (!netif_is_up(n))
			continue;
		if (IP_IS_V6(&s->dst)) {
			s8_t i = netif_get_ip6_addr_match(n, ip_2_ip6(&s->dst));

			if (i >= 0 && ip6_addr_isvalid(netif_ip6_addr_state(n, i)))
				return true;
		} else if (!ip4_addr_isany_val(*netif_ip4_addr(n)) &&
			   ip4_addr_cmp(ip_2_ip4(&s->dst), netif_ip4_addr(n))) {
			return true;
		}
	}
	return false;
}

static bool src_is_unicast(const struct tcpip_tcp_seg *s)
{
	if (IP_IS_V6(&s->src))
		return !ip6_addr_ismulticast(ip_2_ip6(&s->src)) && !ip6_addr_isany(ip_2_ip6(&s->src));
	return !ip4_addr_isany(ip_2_ip4(&s->src)) && !ip4_addr_ismulticast(ip_2_ip4(&s->src)) &&
	       !ip4_addr_isbroadcast(ip_2_ip4(&s->src), s->inp);
}

static bool checks_tcp(struct netif *n)
{
	return !n || (n->chksum_flags & NETIF_CHECKSUM_CHECK_TCP);
}

static bool tcp_csum_ok(const struct tcpip_tcp_seg *s)
{
	uint16_t sum;

	if (!checks_tcp(s->inp))
		return true;
	if (pbuf_remove_header(s->p, s->ip_hlen))
		return false;
	sum = ip_chksum_pseudo_partial(s->p, IP_PROTO_TCP, s->tcp_len, s->tcp_len, &s->src, &s->dst);
	pbuf_add_header_force(s->p, s->ip_hlen);
	return sum == 0;
}

/* ip4_input() checks the IPv4 header's sum only after the hook: unchecked,
 * an ACK with a broken header and a right cookie evicted a half-open
 * connection and replayed its SYN, and only then did lwIP drop the ACK. */
static bool ip4_csum_ok(const struct tcpip_tcp_seg *s)
{
	if (IP_IS_V6(&s->dst) || (s->inp && !(s->inp->chksum_flags & NETIF_CHECKSUM_CHECK_IP)))
		return true;
	return inet_chksum(s->p->payload, s->ip_hlen) == 0;
}

static bool acceptable(const struct tcpip_tcp_seg *s)
{
	return dst_is_ours(s) && src_is_unicast(s) && ip4_csum_ok(s) && tcp_csum_ok(s);
}

/* A TCP header with options into a pbuf whose payload is the TCP header.
 * Return: the pbuf, or NULL without memory. */
static struct pbuf *tcp_segment(uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
				uint16_t wnd, const uint8_t *opts, size_t optlen)
{
	struct pbuf *p = pbuf_alloc(PBUF_IP, (u16_t)(TCP_HLEN + optlen), PBUF_RAM);
	uint8_t *t;

	if (!p)
		return NULL;
	t = p->payload;
	tap_put16(t, sport);
	tap_put16(t + 2, dport);
	tap_put32(t + 4, seq);
	tap_put32(t + 8, ack);
	tap_put16(t + 12, (uint16_t)(((TCP_HLEN + optlen) / 4) << 12 | flags));
	tap_put16(t + 14, wnd);
	tap_put32(t + 16, 0);	/* checksum, urgent pointer */
	memcpy(t + TCP_HLEN, opts, optlen);
	return p;
}

static void tcp_set_csum(struct pbuf *p, const ip_addr_t *src, const ip_addr_t *dst)
{
	uint16_t sum = ip_chksum_pseudo(p, IP_PROTO_TCP, p->tot_len, src, dst);

	memcpy((uint8_t *)p->payload + 16, &sum, 2);	/* already in network order */
}

static size_t put_ts(uint8_t *o, bool sack, uint32_t tsval, uint32_t tsecr)
{
	o[0] = sack ? LWIP_TCP_OPT_SACK_PERM : LWIP_TCP_OPT_NOP;
	o[1] = sack ? LWIP_TCP_OPT_LEN_SACK_PERM : LWIP_TCP_OPT_NOP;
	o[2] = LWIP_TCP_OPT_TS;
	o[3] = LWIP_TCP_OPT_LEN_TS;
	tap_put32(o + 4, tsval);
	tap_put32(o + 8, tsecr);
	return 12;
}

/* The options a SYN or SYN-ACK carries: MSS, then SACK permitted and/or
 * timestamps, then the window scale, the order Linux sends them in. */
static size_t syn_opts(uint8_t *o, uint16_t mss, int ws, bool sack, bool ts, uint32_t tsval, uint32_t tsecr)
{
	size_t n = 0;

	o[n++] = LWIP_TCP_OPT_MSS;
	o[n++] = LWIP_TCP_OPT_LEN_MSS;
	tap_put16(o + n, mss);
	n += 2;
	if (ts) {
		n += put_ts(o + n, sack, tsval, tsecr);
	} else if (sack) {
		o[n++] = LWIP_TCP_OPT_NOP;
		o[n++] = LWIP_TCP_OPT_NOP;
		o[n++] = LWIP_TCP_OPT_SACK_PERM;
		o[n++] = LWIP_TCP_OPT_LEN_SACK_PERM;
	}
	if (ws >= 0) {
		o[n++] = LWIP_TCP_OPT_NOP;
		o[n++] = LWIP_TCP_OPT_WS;
		o[n++] = LWIP_TCP_OPT_LEN_WS;
		o[n++] = (uint8_t)ws;
	}
	return n;
}

/*
 * Whether a full backlog holds a half-open connection: only then does a
 * cookie help (its ACK takes that one's place). A backlog of established
 * connections the application has not accepted means the application is
 * behind, and the SYN is dropped, as Linux drops it with a full accept
 * queue, cookies or not. The half-open pcbs of a flood are the newest, so
 * the walk from the head of the list ends early.
 */
static bool has_half_open(const struct tcp_pcb_listen *l)
{
	const struct tcp_pcb *pcb;

	for (pcb = tcp_active_pcbs; pcb; pcb = pcb->next)
		if (pcb->state == SYN_RCVD && pcb->listener == l)
			return true;
	return false;
}

/*
 * Which connections lwIP may hold, as a Bloom filter over the peer's
 * address and port and our port of every active and TIME-WAIT pcb. Under a
 * flood every SYN's lookup misses, and walking lwIP's lists (a backlog of
 * half-open pcbs) cost a quarter of the stack's time per SYN; the filter
 * answers "not there" with two bit tests. A pcb that left stays in it
 * until the next rebuild (a lookup then walks the lists, as before); a new
 * one must not be missed, so every pcb lwIP creates with addresses, active
 * or passive, goes through tcp_next_iss(), whose hook (port.c) calls
 * tcpip_syncookie_pcbs_changed(), and the next lookup rebuilds. Under a
 * flood lwIP creates a pcb only when a backlog slot frees up.
 */
#define KNOWN_BITS 8192u
static uint64_t known_bits[KNOWN_BITS / 64];	/* stack lock */
static bool known_valid;

void tcpip_syncookie_pcbs_changed(void)
{
	known_valid = false;
}

static uint64_t tuple_hash(const ip_addr_t *remote, uint16_t remote_port, uint16_t local_port)
{
	uint64_t w[2], h;

	tcpip_addr_words(remote, w);
	h = w[0] * 0x9e3779b97f4a7c15ULL ^ w[1] * 0xc2b2ae3d27d4eb4fULL ^
	    ((uint64_t)remote_port << 16 | local_port) * 0x165667b19e3779f9ULL;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	return h ^ h >> 32;
}

static void known_add(uint64_t h)
{
	known_bits[(h % KNOWN_BITS) / 64] |= 1ULL << (h % 64);
	h >>= 32;
	known_bits[(h % KNOWN_BITS) / 64] |= 1ULL << (h % 64);
}

static bool known_has(uint64_t h)
{
	if (!(known_bits[(h % KNOWN_BITS) / 64] & 1ULL << (h % 64)))
		return false;
	h >>= 32;
	return known_bits[(h % KNOWN_BITS) / 64] & 1ULL << (h % 64);
}

static void known_rebuild(void)
{
	struct tcp_pcb *lists[2] = { tcp_active_pcbs, tcp_tw_pcbs }, *pcb;
	size_t i;

	memset(known_bits, 0, sizeof(known_bits));
	for (i = 0; i < 2; i++)
		for (pcb = lists[i]; pcb; pcb = pcb->next)
			known_add(tuple_hash(&pcb->remote_ip, pcb->remote_port, pcb->local_port));
	known_valid = true;
}

/* Whether lwIP may hold this connection: false means it does not. */
static bool maybe_known(const struct tcpip_tcp_seg *s, uint16_t sport, uint16_t dport)
{
	if (!known_valid)
		known_rebuild();
	return known_has(tuple_hash(&s->src, sport, dport));
}

/* A segment of a connection lwIP holds, which lwIP's tcp_input() gives
 * that connection before any listener: a repeated SYN to a half-open one
 * gets its SYN-ACK again, a SYN to an established one a challenge ACK
 * (RFC 5961), never a cookie for a second connection on the same ports. */
static bool known(const struct tcpip_tcp_seg *s, uint16_t sport, uint16_t dport)
{
	return maybe_known(s, sport, dport) &&
	       (find_pcb(tcp_active_pcbs, s, sport, dport) || find_pcb(tcp_tw_pcbs, s, sport, dport));
}

static bool on_syn(const struct tcpip_tcp_seg *s, uint16_t sport, uint16_t dport, uint32_t seq)
{
	struct tcp_pcb_listen *l = find_listener(s, dport);
	uint8_t opts[40];
	struct tcp_opts o;
	struct netif *out;
	struct pbuf *p;
	uint32_t count, cookie;
	size_t n;

	if (!l || l->accepts_pending < l->backlog || !has_half_open(l) || known(s, sport, dport) ||
	    !acceptable(s))
		return false;
	out = ip_route(&s->dst, &s->src);
	if (!out)
		return false;
	parse_opts(s->tcp + TCP_HLEN, (size_t)(s->tcp[12] >> 4) * 4 - TCP_HLEN, &o);
	count = cookie_count();
	cookie = tcpip_cookie_make(&s->dst, dport, &s->src, sport, seq, count, cookie_data(&o));
	/* As lwIP's own SYN-ACK: our MSS for the route, our window scale if
	 * the peer offered one, and lwIP's clock as TSval, so the peer sees
	 * timestamps only go up once lwIP takes over. */
	n = syn_opts(opts, tcp_eff_send_mss_netif(TCP_MSS, out, &s->src), o.ws >= 0 ? TCP_RCV_SCALE : -1,
		     o.sack, o.ts, sys_now(), o.tsval);
	p = tcp_segment(dport, sport, cookie, seq + 1, TCP_SYN | TCP_ACK, 0xffff, opts, n);
	if (p) {
		if (out->chksum_flags & NETIF_CHECKSUM_GEN_TCP)
			tcp_set_csum(p, &s->dst, &s->src);
		ip_output_if(p, &s->dst, &s->src, TCP_TTL, 0, IP_PROTO_TCP, out);
		pbuf_free(p);
		stats.sent++;
		cookies_sent = true;
		last_sent_count = count;
	}
	pbuf_free(s->p);
	return true;
}

/* Drop the listener's oldest half-open connection. Return: whether one was. */
static bool evict_half_open(struct tcp_pcb_listen *l)
{
	struct tcp_pcb *pcb, *oldest = NULL;

	for (pcb = tcp_active_pcbs; pcb; pcb = pcb->next)
		if (pcb->state == SYN_RCVD && pcb->listener == l &&
		    (!oldest || (u32_t)(tcp_ticks - pcb->tmr) >= (u32_t)(tcp_ticks - oldest->tmr)))
			oldest = pcb;
	if (!oldest)
		return false;
	/* No RST: its peer is most likely a forged address. */
	tcp_abandon(oldest, 0);
	return true;
}

/* Feed lwIP the SYN the cookie stands for. Return: whether lwIP made a
 * connection of it (it asked for the ISN). */
static bool replay_syn(const struct tcpip_tcp_seg *s, uint16_t sport, uint16_t dport, uint32_t peer_isn,
		       uint32_t cookie, unsigned data, const struct tcp_opts *ack_opts)
{
	unsigned ws = (data >> 3) & 15u;
	bool v6 = IP_IS_V6(&s->src);
	uint8_t opts[40], *ip;
	struct pbuf *p;
	size_t n;

	n = syn_opts(opts, mss_table[data & 7u], ws == DATA_WS_NONE ? -1 : (int)ws, data & 0x80u,
		     ack_opts->ts, ack_opts->tsval, 0);
	p = tcp_segment(sport, dport, peer_isn, 0, TCP_SYN, tap_get16(s->tcp + 14), opts, n);
	if (!p)
		return false;
	tcp_set_csum(p, &s->src, &s->dst);
	if (pbuf_add_header(p, v6 ? IP6_HLEN : IP_HLEN)) {
		pbuf_free(p);
		return false;
	}
	ip = p->payload;
	memset(ip, 0, v6 ? IP6_HLEN : IP_HLEN);
	if (v6) {
		ip[0] = 6 << 4;
		tap_put16(ip + 4, (uint16_t)(p->tot_len - IP6_HLEN));
		ip[6] = IP_PROTO_TCP;
		ip[7] = 64;
		memcpy(ip + 8, ip_2_ip6(&s->src)->addr, 16);
		memcpy(ip + 24, ip_2_ip6(&s->dst)->addr, 16);
	} else {
		ip[0] = 4 << 4 | IP_HLEN / 4;
		tap_put16(ip + 2, (uint16_t)p->tot_len);
		tap_put16(ip + 6, 0x4000);	/* DF */
		ip[8] = 64;
		ip[9] = IP_PROTO_TCP;
		memcpy(ip + 12, &ip_2_ip4(&s->src)->addr, 4);
		memcpy(ip + 16, &ip_2_ip4(&s->dst)->addr, 4);
		/* inet_chksum() returns it in network order. */
		{
			uint16_t sum = inet_chksum(ip, IP_HLEN);

			memcpy(ip + 10, &sum, 2);
		}
	}
	replay.armed = true;
	replay.used = false;
	ip_addr_copy(replay.local, s->dst);
	ip_addr_copy(replay.remote, s->src);
	replay.local_port = dport;
	replay.remote_port = sport;
	replay.isn = cookie;
	if (v6)
		ip6_input(p, s->inp);
	else
		ip4_input(p, s->inp);
	replay.armed = false;
	return replay.used;
}

static bool on_ack(const struct tcpip_tcp_seg *s, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack)
{
	struct tcp_pcb_listen *l = find_listener(s, dport);
	struct tcp_pcb *pcb;
	struct tcp_opts o;
	unsigned data;

	if (!l)
		return false;
	/* A segment of a connection that exists (lwIP keeps the busy ones at
	 * the head of the list): no MAC to compute. */
	pcb = NULL;
	if (maybe_known(s, sport, dport)) {
		pcb = find_pcb(tcp_active_pcbs, s, sport, dport);
		if ((pcb && pcb->state != SYN_RCVD) || find_pcb(tcp_tw_pcbs, s, sport, dport))
			return false;
	}
	if (!tcpip_cookie_check(&s->dst, dport, &s->src, sport, seq - 1, ack - 1, cookie_count(), &data)) {
		if (!pcb)
			stats.failed++;
		return false;
	}
	if (!acceptable(s))
		return false;
	/* The peer took our cookie over lwIP's SYN-ACK to a repeated SYN. */
	if (pcb)
		tcp_abandon(pcb, 0);
	if (l->accepts_pending >= l->backlog && !evict_half_open(l)) {
		/* Established connections fill the backlog: the application is
		 * behind. Linux drops the ACK too; the peer sends again. */
		stats.overflow++;
		TCP_STATS_INC(tcp.drop);
		pbuf_free(s->p);
		return true;
	}
	parse_opts(s->tcp + TCP_HLEN, (size_t)(s->tcp[12] >> 4) * 4 - TCP_HLEN, &o);
	if (!replay_syn(s, sport, dport, seq - 1, ack - 1, data, &o)) {
		TCP_STATS_INC(tcp.memerr);
		pbuf_free(s->p);
		return true;
	}
	stats.validated++;
	return false;	/* lwIP takes the ACK: the connection is established */
}

bool tcpip_syncookie_input(const struct tcpip_tcp_seg *s)
{
	const uint8_t *t = s->tcp;
	uint8_t flags = t[13] & TCP_FLAGS;
	uint16_t sport = tap_get16(t), dport = tap_get16(t + 2);

	/* The replayed SYN itself. */
	if (replay.armed)
		return false;
	if ((flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) == TCP_SYN)
		return on_syn(s, sport, dport, tap_get32(t + 4));
	/* Cookies are checked only while some were sent lately: otherwise an
	 * ACK costs one test. */
	if ((flags & (TCP_SYN | TCP_RST | TCP_ACK)) == TCP_ACK && cookies_sent &&
	    ((cookie_count() - last_sent_count) & COOKIE_COUNT_MASK) <= 1)
		return on_ack(s, sport, dport, tap_get32(t + 4), tap_get32(t + 8));
	return false;
}

bool tcpip_syncookie_replaying(void)
{
	return replay.armed;
}

bool tcpip_syncookie_replay_isn(const ip_addr_t *local_ip, uint16_t local_port,
				const ip_addr_t *remote_ip, uint16_t remote_port, uint32_t *isn)
{
	uint64_t a[2], b[2];

	if (!replay.armed || local_port != replay.local_port || remote_port != replay.remote_port ||
	    IP_IS_V6(local_ip) != IP_IS_V6(&replay.local))
		return false;
	tcpip_addr_words(local_ip, a);
	tcpip_addr_words(&replay.local, b);
	if (memcmp(a, b, sizeof(a)))
		return false;
	tcpip_addr_words(remote_ip, a);
	tcpip_addr_words(&replay.remote, b);
	if (memcmp(a, b, sizeof(a)))
		return false;
	replay.used = true;
	*isn = replay.isn;
	return true;
}
