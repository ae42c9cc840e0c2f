/* SPDX-License-Identifier: MIT */
/*
 * nic.c - NICs: an lwIP netif bound to a link endpoint. Owns the receive
 * path (a batch of frames from the endpoint into lwIP, malformed ones
 * dropped and counted; on a TAP, large frames read straight into reusable
 * buffers lent to lwIP, and lwIP told not to check again a checksum the
 * kernel or tap/ vouched for), the transmit path (a pbuf chain handed to
 * the endpoint as a gather list, no copy; on a TAP, the TCP segments of one
 * receive batch coalesced into GSO frames), link failure (the NIC goes down
 * with one log line; the stack carries on), and the public NIC calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/virtio_net.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "lwip/etharp.h"
#include "lwip/ethip6.h"
#include "lwip/nd6.h"
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/prot/ip4.h"
#include "lwip/prot/ip6.h"
#include "netif/ethernet.h"
#include "internal.h"
#include "syncookie.h"
#include "tap_gso.h"

#define NS_MTU_MIN 68u
#define NS_TX_IOV_MAX 64

/*
 * A received frame is lent to lwIP in the buffer it was read into when it
 * fills at least this much of it; a smaller one is copied into a pbuf of
 * its own size, because a lent buffer stays whole (64 KiB) in a receive
 * queue until the application reads it: a 1 MiB window of 1514-byte frames
 * would pin 45 MiB. Half bounds that at twice the data. The kernel's TSO
 * frames through a TAP are 64 KiB at any MTU in bulk transfers, so they
 * are lent; ACKs and small frames are copied, as cheap as before.
 */
#define NIC_RX_LEND_MIN (TAP_FRAME_MAX / 2)
/* Idle buffers a NIC keeps besides the ones in its read slots: enough to
 * re-arm the slots after a batch lent them all, few enough that an idle
 * NIC holds little of the memory limit (each counts against it). 64
 * measured no faster (netstack-bench stream, 3 runs interleaved: into
 * the stack 0.66x vs 0.64x kernel at MTU 65520, 0.77x vs 0.93x at 1500). */
#define NIC_RX_IDLE_MAX 16u
/* Read slots armed with a buffer at first; doubled each time a batch
 * fills them, up to NS_RX_BATCH. The rest read into the stack's copy
 * buffer, so a NIC that sees one frame per wakeup holds 4 buffers. */
#define NIC_RX_ARMED_MIN 4u

/* A receive buffer: a pbuf_custom lwIP frees back to its pool. */
struct rx_buf {
	struct pbuf_custom pc;	/* first: lwIP hands back &pc.pbuf */
	struct rx_pool *pool;
	struct rx_buf *next;	/* on the free list */
	uint8_t data[TAP_FRAME_MAX + 1];	/* + rx_pbuf()'s guard byte */
};

/* A NIC's buffers. Outlives the NIC while lwIP or a socket still holds
 * one of them (the last one back frees it). */
struct rx_pool {
	pthread_mutex_t lock;	/* lwIP frees pbufs on any thread */
	struct rx_buf *free;
	unsigned nfree;
	unsigned lent;		/* held by lwIP now */
	bool dead;		/* its NIC is gone */
};

/* The data path state of a NIC on an endpoint with TAP_EP_VNET. */
struct nic_dp {
	struct rx_pool *pool;
	struct rx_buf *slot[NS_RX_BATCH];	/* armed read slots */
	unsigned armed;
	struct tap_gso gso;
};

/* Set while this thread feeds a receive batch to lwIP: TCP segments sent
 * meanwhile (the ACK-clocked ones) are coalesced, and ns_nic_rx() sends
 * what is pending after each batch. Elsewhere (an application's send, a
 * timer) nothing flushes when the stack lock is released, so a segment
 * waits only while lwIP's tcp_output() is known to send the next one in
 * the same loop (tcp_burst_continues()). */
static _Thread_local bool tx_coalescing;
/* Active pcbs tcp_burst_continues() looks through for the sender: lwIP
 * moves a pcb to the front of the list on input, and a bulk sender is
 * among the first few; past them, a segment goes out at once. */
#define NIC_TX_PCB_SCAN 16

struct ns_nic *ns_nic_find(struct ns_stack *s, int id)
{
	size_t i;

	for (i = 0; i < s->nnics; i++)
		if (s->nics[i]->id == id)
			return s->nics[i];
	return NULL;
}

/* Hand one frame of @nseg segments (@wire bytes as lwIP built them) to
 * the endpoint and count it. */
static err_t nic_send(struct ns_nic *nic, const struct tap_txframe *f, unsigned nseg, size_t wire)
{
	int n = nic->ep->ops->send(nic->ep, f, 1);

	if (n == 1) {
		nic->tx_frames += nseg;
		nic->tx_bytes += wire;
		nic->stack->stats.tx_frames += nseg;
		nic->stack->stats.tx_bytes += wire;
		return ERR_OK;
	}
	if (n < 0) {
		/* Leave the teardown to the dispatcher: we are deep inside
		 * lwIP's output path here. */
		nic->failed = -n;
		return ERR_IF;
	}
	nic->tx_dropped += nseg;
	nic->stack->stats.tx_dropped += nseg;
	return ERR_OK;	/* a lost frame, as on a real wire: TCP retransmits */
}

/* Whether frames may leave now: a stack checkpointed without leave-running
 * is frozen as the image shows it, and tearing it down must not tell peers
 * (no FIN, no RST), so that after a restore their connections are reset, as
 * by a host that rebooted - not closed at checkpoint time. */
static bool nic_tx_frozen(const struct ns_nic *nic)
{
	return nic->stack->tx_frozen;
}

/* The coalescer's emit: a pending GSO frame (or single segment) goes out. */
static int gso_emit(void *arg, const struct tap_txframe *f, unsigned nseg, size_t wire)
{
	struct ns_nic *nic = arg;

	if (nic_tx_frozen(nic))
		return 1;
	if (!nic->link_up || nic->failed) {
		nic->tx_dropped += nseg;
		nic->stack->stats.tx_dropped += nseg;
		return 0;
	}
	return nic_send(nic, f, nseg, wire) == ERR_OK ? 1 : -nic->failed;
}

static void gso_release(void *arg, void *cookie)
{
	(void)arg;
	pbuf_free(cookie);
}

/*
 * Whether lwIP's tcp_output() loop, now sending the segment in @p, sends
 * the next one straight after: its condition replayed for the next unsent
 * segment, as it will read once this one has moved to the unacked queue
 * (within the window min(snd_wnd, cwnd), and not held back by Nagle:
 * tcp_do_output_nagle() with unacked non-empty). tcp_output() sends a
 * segment whose pbuf is pcb->unsent's; a retransmission moves segments
 * back to unsent first, so the same holds for it. If the loop stopped for
 * another reason, the frame would wait for the next frame or receive batch
 * on the NIC; no path of lwIP 2.1.3 does that without a frame of its own.
 */
static bool tcp_burst_continues(const struct pbuf *p)
{
	struct tcp_pcb *pcb;
	int n;

	for (pcb = tcp_active_pcbs, n = 0; pcb && n < NIC_TX_PCB_SCAN; pcb = pcb->next, n++) {
		const struct tcp_seg *seg = pcb->unsent, *next;

		if (!seg || seg->p != p)
			continue;
		next = seg->next;
		if (!next || lwip_ntohl(next->tcphdr->seqno) - pcb->lastack + next->len >
				     LWIP_MIN(pcb->snd_wnd, pcb->cwnd))
			return false;
		return (pcb->flags & (TF_NODELAY | TF_INFR | TF_NAGLEMEMERR | TF_FIN)) ||
		       next->next || next->len >= pcb->mss || tcp_sndbuf(pcb) == 0 ||
		       tcp_sndqueuelen(pcb) >= TCP_SND_QUEUELEN;
	}
	return false;
}

/*
 * The checksums lwIP makes and checks on this NIC when no frame says
 * otherwise. On a TAP, TCP's are left to the kernel (each frame goes with
 * a partial checksum, NEEDS_CSUM), which completes them only where they
 * are checked (local delivery trusts its own memory): lwIP's pass over
 * every byte sent (lwip_chksum_copy) was 9% of the stack process's
 * samples over a `netstack-bench stream` run.
 */
static u16_t nic_csum_base(const struct ns_nic *nic)
{
	if (nic->dp && nic->dp->gso.csum_partial)
		return NETIF_CHECKSUM_ENABLE_ALL & ~NETIF_CHECKSUM_GEN_TCP;
	return NETIF_CHECKSUM_ENABLE_ALL;
}

/* The end of a burst: every NIC's pending frame goes out. */
static void nic_tx_flush_all(struct ns_stack *s)
{
	size_t i;

	for (i = 0; i < s->nnics; i++)
		if (s->nics[i]->dp)
			tap_gso_flush(&s->nics[i]->dp->gso);
}

static err_t nic_linkoutput(struct netif *netif, struct pbuf *p)
{
	struct ns_nic *nic = netif->state;
	struct iovec iov[NS_TX_IOV_MAX];
	struct tap_txframe f = { .iov = iov, .len = p->tot_len };
	struct pbuf *q;
	int n = 0;

	if (nic_tx_frozen(nic))
		return ERR_OK;
	/* lwIP's SYN-ACK to a SYN replayed from a cookie: the peer has the
	 * cookie's, and sent a duplicate ACK for this one. */
	if (tcpip_syncookie_replaying())
		return ERR_OK;
	if (!nic->link_up || nic->failed)
		goto drop;
	for (q = p; q; q = q->next) {
		if (!q->len)
			continue;
		if (n == NS_TX_IOV_MAX)
			goto drop;	/* lwIP never builds chains this long */
		iov[n].iov_base = q->payload;
		iov[n].iov_len = q->len;
		n++;
	}
	if (nic->dp) {
		/* The coalescer keeps the payload by reference until it sends
		 * it: the pbuf stays ours till then (and lwIP will not send
		 * that segment again meanwhile: tcp_output_segment_busy()). */
		pbuf_ref(p);
		if (tap_gso_add(&nic->dp->gso, iov, n, p->tot_len, p)) {
			if (!tx_coalescing && !tcp_burst_continues(p))
				tap_gso_flush(&nic->dp->gso);
			return ERR_OK;
		}
		pbuf_free(p);
		if (nic->dp->gso.csum_partial)
			tap_tcp_csum_partial(iov, n, f.len, &f.off);
	}
	f.iovcnt = n;
	return nic_send(nic, &f, 1, f.len);
drop:
	nic->tx_dropped++;
	nic->stack->stats.tx_dropped++;
	return ERR_OK;
}

static err_t nic_netif_init(struct netif *netif)
{
	struct ns_nic *nic = netif->state;

	netif->name[0] = 'n';
	netif->name[1] = 's';
	netif->hwaddr_len = ETH_HWADDR_LEN;
	netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET |
		       NETIF_FLAG_MLD6;
	netif->output = etharp_output;
	netif->output_ip6 = ethip6_output;
	netif->linkoutput = nic_linkoutput;
	(void)nic;
	return ERR_OK;
}

/* --- receive buffers (struct rx_pool) --- */

static void rx_pool_destroy(struct rx_pool *pool)
{
	while (pool->free) {
		struct rx_buf *b = pool->free;

		pool->free = b->next;
		tcpip_mem_free(b);
	}
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

/* An idle buffer, or a new one: counted against the memory limit like
 * any received frame, so lent or idle, the limit stays true. */
static struct rx_buf *rx_buf_get(struct rx_pool *pool)
{
	struct rx_buf *b;

	pthread_mutex_lock(&pool->lock);
	b = pool->free;
	if (b) {
		pool->free = b->next;
		pool->nfree--;
	}
	pthread_mutex_unlock(&pool->lock);
	if (b)
		return b;
	tcpip_mem_rx(true);
	b = tcpip_mem_malloc(sizeof(*b));
	tcpip_mem_rx(false);
	if (b)
		b->pool = pool;
	return b;
}

/* lwIP's custom free function: the buffer goes back to its pool. */
static void rx_buf_free(struct pbuf *p)
{
	struct rx_buf *b = (struct rx_buf *)(void *)p;
	struct rx_pool *pool = b->pool;
	bool keep, last;

	pthread_mutex_lock(&pool->lock);
	pool->lent--;
	keep = !pool->dead && pool->nfree < NIC_RX_IDLE_MAX;
	if (keep) {
		b->next = pool->free;
		pool->free = b;
		pool->nfree++;
	}
	last = pool->dead && !pool->lent;
	pthread_mutex_unlock(&pool->lock);
	if (!keep)
		tcpip_mem_free(b);
	if (last)
		rx_pool_destroy(pool);
}

/* The frame read into @b, handed to lwIP without a copy. */
static struct pbuf *rx_buf_lend(struct rx_buf *b, size_t len)
{
	struct rx_pool *pool = b->pool;
	struct pbuf *p;

	b->data[len] = 0;	/* the guard byte: see rx_pbuf() */
	b->pc.custom_free_function = rx_buf_free;
	p = pbuf_alloced_custom(PBUF_RAW, (u16_t)len, PBUF_REF, &b->pc, b->data, (u16_t)len);
	if (!p)
		return NULL;	/* (cannot happen: the buffer holds any frame) */
	pthread_mutex_lock(&pool->lock);
	pool->lent++;
	pthread_mutex_unlock(&pool->lock);
	return p;
}

static struct nic_dp *nic_dp_new(struct ns_nic *nic)
{
	struct nic_dp *dp = calloc(1, sizeof(*dp));

	if (!dp)
		return NULL;
	dp->pool = calloc(1, sizeof(*dp->pool));
	if (!dp->pool) {
		free(dp);
		return NULL;
	}
	pthread_mutex_init(&dp->pool->lock, NULL);
	dp->armed = NIC_RX_ARMED_MIN;
	tap_gso_init(&dp->gso, gso_emit, gso_release, nic);
	return dp;
}

/* Lent buffers come back to a dead pool, which the last of them frees. */
static void nic_dp_free(struct nic_dp *dp)
{
	struct rx_pool *pool;
	unsigned i;
	bool last;

	if (!dp)
		return;
	pool = dp->pool;
	tap_gso_discard(&dp->gso);
	for (i = 0; i < NS_RX_BATCH; i++)
		tcpip_mem_free(dp->slot[i]);
	pthread_mutex_lock(&pool->lock);
	pool->dead = true;
	last = !pool->lent;
	pthread_mutex_unlock(&pool->lock);
	if (last)
		rx_pool_destroy(pool);
	free(dp);
}

static void random_mac(uint8_t mac[6])
{
	uint32_t a = tcpip_random(), b = tcpip_random();

	memcpy(mac, &a, 4);
	memcpy(mac + 4, &b, 2);
	mac[0] = (uint8_t)((mac[0] & 0xfe) | 0x02);	/* unicast, locally administered */
}

static bool mac_is_zero(const uint8_t mac[6])
{
	static const uint8_t zero[6];

	return memcmp(mac, zero, 6) == 0;
}

static bool name_in_use(struct ns_stack *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->nnics; i++)
		if (strcmp(s->nics[i]->name, name) == 0)
			return true;
	return false;
}

/* The device's MTU clamped to what the stack takes, else Ethernet's. */
static unsigned default_mtu(const struct ns_endpoint *ep)
{
	if (!ep->mtu)
		return 1500;
	if (ep->mtu < NS_MTU_MIN)
		return NS_MTU_MIN;
	return ep->mtu > TAP_MTU_MAX ? TAP_MTU_MAX : ep->mtu;
}

int ns_nic_add(struct ns_stack *s, const struct ns_nic_config *cfg, struct ns_endpoint *ep)
{
	struct ns_nic_config def = { 0 };
	struct epoll_event ev = { .events = EPOLLIN };
	struct ns_nic *nic;
	int rc;

	if (!s || !ep)
		return -EINVAL;
	if (!cfg)
		cfg = &def;
	if (cfg->mtu && (cfg->mtu < NS_MTU_MIN || cfg->mtu > TAP_MTU_MAX))
		return -EINVAL;
	if (cfg->name && (!cfg->name[0] || strlen(cfg->name) >= NS_NIC_NAME_MAX))
		return -EINVAL;
	if (cfg->mac[0] & 1)
		return -EINVAL;	/* multicast MAC */
	nic = calloc(1, sizeof(*nic));
	if (!nic)
		return -ENOMEM;
	ns_lock(s);
	if (s->nnics == s->nics_cap) {
		size_t ncap = s->nics_cap ? 2 * s->nics_cap : 4;
		struct ns_nic **n = realloc(s->nics, ncap * sizeof(*n));

		if (!n) {
			rc = -ENOMEM;
			goto fail;
		}
		s->nics = n;
		s->nics_cap = ncap;
	}
	nic->id = s->next_nic_id;
	if (cfg->name) {
		snprintf(nic->name, sizeof(nic->name), "%s", cfg->name);
	} else {
		/* The lowest "ethN" nobody has chosen. */
		int n = 0;

		do
			snprintf(nic->name, sizeof(nic->name), "eth%d", n++);
		while (name_in_use(s, nic->name));
	}
	if (name_in_use(s, nic->name)) {
		rc = -EEXIST;
		goto fail;
	}
	nic->ep = ep;
	nic->stack = s;
	if (ep->offloads & TAP_EP_VNET) {
		nic->dp = nic_dp_new(nic);
		if (!nic->dp) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	if (!netif_add(&nic->netif, NULL, NULL, NULL, nic, nic_netif_init, ethernet_input)) {
		rc = -ENOMEM;
		goto fail;
	}
	if (nic->dp)
		nic->dp->gso.csum_partial = true;
	NETIF_SET_CHECKSUM_CTRL(&nic->netif, nic_csum_base(nic));
	if (mac_is_zero(cfg->mac))
		random_mac(nic->netif.hwaddr);
	else
		memcpy(nic->netif.hwaddr, cfg->mac, 6);
	nic->netif.mtu = (u16_t)(cfg->mtu ? cfg->mtu : default_mtu(ep));
	if (ep->fd >= 0) {
		ev.data.ptr = nic;
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, ep->fd, &ev) < 0) {
			rc = -errno;
			netif_remove(&nic->netif);
			goto fail;
		}
	}
	netif_create_ip6_linklocal_address(&nic->netif, 1);
	netif_ip6_addr_set_state(&nic->netif, 0, IP6_ADDR_PREFERRED);
	nic->v6len[0] = 64;
	/* No lwIP default netif: it would carry packets to any destination,
	 * past the route table; without a route, connect is -ENETUNREACH. */
	nic->up = nic->link_up = true;
	netif_set_up(&nic->netif);
	netif_set_link_up(&nic->netif);
	s->nics[s->nnics++] = nic;
	s->next_nic_id++;
	rc = nic->id;
	ns_log(s, NS_LOG_INFO, "nic %s: %s%s%s, mtu %u", nic->name, ep->ops->name,
	       ep->device[0] ? " " : "", ep->device, nic->netif.mtu);
	ns_unlock(s);
	return rc;
fail:
	ns_unlock(s);
	nic_dp_free(nic->dp);
	free(nic);
	return rc;
}

void ns_nic_destroy(struct ns_stack *s, struct ns_nic *nic)
{
	size_t i;

	for (i = 0; i < s->nnics; i++) {
		if (s->nics[i] == nic) {
			memmove(&s->nics[i], &s->nics[i + 1], (s->nnics - i - 1) * sizeof(*s->nics));
			s->nnics--;
			break;
		}
	}
	if (nic->ep->fd >= 0)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, nic->ep->fd, NULL);
	tcpip_route_flush_netif(&nic->netif);
	netif_remove(&nic->netif);
	tap_endpoint_destroy(nic->ep);
	nic_dp_free(nic->dp);
	free(nic);
}

int ns_nic_remove(struct ns_stack *s, int id)
{
	struct ns_nic *nic;

	if (!s)
		return -EINVAL;
	ns_lock(s);
	nic = ns_nic_find(s, id);
	if (nic)
		ns_nic_destroy(s, nic);
	ns_unlock(s);
	return nic ? 0 : -ENODEV;
}

/* The endpoint failed for good (the TAP was deleted, the fd hit EOF): take
 * the link down so routes avoid it, stop polling it, and say so once. */
void ns_nic_handle_failure(struct ns_stack *s, struct ns_nic *nic)
{
	if (!nic->link_up)
		return;
	nic->link_up = false;
	if (nic->ep->fd >= 0)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, nic->ep->fd, NULL);
	netif_set_link_down(&nic->netif);
	ns_log(s, NS_LOG_ERR, "nic %s: link down: %s endpoint%s%s failed: %s", nic->name,
	       nic->ep->ops->name, nic->ep->device[0] ? " " : "", nic->ep->device,
	       strerror(nic->failed ? nic->failed : EIO));
}

/*
 * lwIP 2.1.3 reads a fixed header before checking the frame holds it:
 * etharp_input() the whole ARP header, ip4_input() the total length,
 * ip6_input() the first word. Hardware pads frames to 60 bytes; a TAP
 * peer's runt is not padded. So a frame too short for its network header
 * is malformed here, before lwIP.
 */
static bool net_runt(const uint8_t *d, size_t len)
{
	size_t need;

	switch (d[12] << 8 | d[13]) {
	case ETHTYPE_ARP:
		need = SIZEOF_ETHARP_HDR;
		break;
	case ETHTYPE_IP:
		need = IP_HLEN;
		break;
	case ETHTYPE_IPV6:
		need = IP6_HLEN;
		break;
	default:
		return false;
	}
	return len < TAP_ETH_HLEN + need;
}

/*
 * A received frame as one pbuf, followed by a zero byte the pbuf does not
 * count: lwIP 2.1.3's tcp_parseopt() reads an option's length byte before
 * checking that it lies within the options, so a segment without data
 * whose options end in a kind byte is read one byte past its end. That
 * byte is then ours, and a length of 0 ends the parsing.
 */
static struct pbuf *rx_pbuf(const uint8_t *data, size_t len)
{
	size_t guard = len < 0xffff ? 1 : 0;
	struct pbuf *p;

	tcpip_mem_rx(true);	/* from the memory kept for received frames */
	p = pbuf_alloc(PBUF_RAW, (u16_t)(len + guard), PBUF_RAM);
	tcpip_mem_rx(false);

	if (!p)
		return NULL;
	memcpy(p->payload, data, len);
	if (guard)
		((uint8_t *)p->payload)[len] = 0;
	p->len = p->tot_len = (u16_t)len;
	return p;
}

/*
 * The checksum checks lwIP may skip for a frame, and the partial checksum
 * completed where they may not. lwIP skips TCP's and UDP's check when the
 * virtio-net header vouches for the sum: DATA_VALID (the kernel checked
 * it), or NEEDS_CSUM (the kernel made the packet and left the sum partial,
 * as it does for its own packets, which it never checks either) with
 * csum_start and csum_offset naming this packet's TCP or UDP checksum
 * field. Only for unfragmented packets whose transport header follows the
 * IP header: a fragment's flag would vouch for the whole datagram lwIP
 * reassembles from it. Every other frame (those of endpoints without the
 * header included) is checked in full, a partial sum completed first.
 */
static u16_t rx_csum_prepare(struct tap_rxframe *f)
{
	const uint8_t *d = f->data, *ip = d + TAP_ETH_HLEN;
	bool partial = f->off.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;
	unsigned l4, proto;

	if (!partial && !(f->off.flags & VIRTIO_NET_HDR_F_DATA_VALID))
		return NETIF_CHECKSUM_ENABLE_ALL;
	switch (d[12] << 8 | d[13]) {
	case ETHTYPE_IP:	/* net_runt(): the header is there */
		if ((ip[0] >> 4) != 4 || ((ip[6] << 8 | ip[7]) & 0x3fff))
			goto check;
		l4 = TAP_ETH_HLEN + (ip[0] & 0xfu) * 4;
		proto = ip[9];
		break;
	case ETHTYPE_IPV6:
		l4 = TAP_ETH_HLEN + IP6_HLEN;
		proto = ip[6];
		break;
	default:
		goto check;
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		goto check;
	if ((partial || f->off.csum_start || f->off.csum_offset) &&
	    (f->off.csum_start != l4 || f->off.csum_offset != (proto == IPPROTO_TCP ? 16 : 6)))
		goto check;
	return NETIF_CHECKSUM_ENABLE_ALL & ~(NETIF_CHECKSUM_CHECK_TCP | NETIF_CHECKSUM_CHECK_UDP);
check:
	/* recv() checked the offsets lie within the frame. */
	tap_vnet_csum_complete(f->data, f->len, &f->off);
	return NETIF_CHECKSUM_ENABLE_ALL;
}

/* Point the read slots at the NIC's buffers where it has them, else at the
 * stack's copy buffer. */
static void rx_arm(struct ns_stack *s, struct ns_nic *nic)
{
	struct nic_dp *dp = nic->dp;
	unsigned i;

	for (i = 0; i < NS_RX_BATCH; i++) {
		struct rx_buf *b = NULL;

		if (dp && i < dp->armed) {
			if (!dp->slot[i])
				dp->slot[i] = rx_buf_get(dp->pool);
			b = dp->slot[i];
		}
		s->rx[i].data = b ? b->data : s->rxbuf + (size_t)i * TAP_FRAME_MAX;
	}
}

/* Frame @i of the batch as a pbuf: lent in its buffer or copied. */
static struct pbuf *rx_frame_pbuf(struct ns_nic *nic, unsigned i, const struct tap_rxframe *f)
{
	struct nic_dp *dp = nic->dp;
	struct pbuf *p;

	if (dp && i < dp->armed && dp->slot[i] && f->len >= NIC_RX_LEND_MIN) {
		p = rx_buf_lend(dp->slot[i], f->len);
		if (p)
			dp->slot[i] = NULL;
		return p;
	}
	p = rx_pbuf(f->data, f->len);
	/* At the memory limit, a peer's pile of out-of-order data must not
	 * keep out its own (or anyone's) RST. */
	if (!p && tcpip_mem_relieve())
		p = rx_pbuf(f->data, f->len);
	return p;
}

void ns_nic_rx(struct ns_stack *s, struct ns_nic *nic)
{
	struct ns_endpoint *ep = nic->ep;
	uint64_t truncated = ep->rx_truncated;
	int round, n, i;

	/* Nothing is pending here; if a burst ever ended where lwIP's loop
	 * was expected to go on (tcp_burst_continues()), its frame goes now. */
	nic_tx_flush_all(s);
	tx_coalescing = true;
	/* A bounded number of batches per wakeup keeps NICs and timers fair. */
	for (round = 0; round < 4; round++) {
		rx_arm(s, nic);
		n = ep->ops->recv(ep, s->rx, NS_RX_BATCH);
		if (n < 0) {
			nic->failed = -n;
			ns_nic_handle_failure(s, nic);
			break;
		}
		for (i = 0; i < n; i++) {
			struct tap_rxframe *f = &s->rx[i];
			struct pbuf *p;
			u16_t ctrl;

			nic->rx_frames++;
			nic->rx_bytes += f->len;
			s->stats.rx_frames++;
			s->stats.rx_bytes += f->len;
			if (f->len < TAP_ETH_HLEN || f->len > 0xffff || net_runt(f->data, f->len)) {
				nic->rx_malformed++;
				s->stats.rx_malformed++;
				continue;
			}
			if (!nic->up)
				continue;
			ctrl = rx_csum_prepare(f);
			p = rx_frame_pbuf(nic, (unsigned)i, f);
			if (!p) {
				LINK_STATS_INC(link.memerr);
				LINK_STATS_INC(link.drop);
				continue;
			}
			/* Input runs to its end here, under the stack lock:
			 * the flags hold for this frame alone. */
			NETIF_SET_CHECKSUM_CTRL(&nic->netif, ctrl & nic_csum_base(nic));
			if (nic->netif.input(p, &nic->netif) != ERR_OK)
				pbuf_free(p);
			NETIF_SET_CHECKSUM_CTRL(&nic->netif, nic_csum_base(nic));
		}
		/* The batch hit the memory limit (an out-of-order segment
		 * found no room, say): make room before the next. */
		tcpip_mem_relieve_if_refused();
		nic_tx_flush_all(s);
		if (nic->dp && (unsigned)n >= nic->dp->armed && nic->dp->armed < NS_RX_BATCH)
			nic->dp->armed *= 2;
		if (n < NS_RX_BATCH)
			break;
	}
	tx_coalescing = false;
	nic_tx_flush_all(s);
	if (ep->rx_truncated != truncated) {
		nic->rx_malformed += ep->rx_truncated - truncated;
		s->stats.rx_malformed += ep->rx_truncated - truncated;
	}
}

int ns_nic_set_up(struct ns_stack *s, int id, bool up)
{
	struct ns_nic *nic;

	if (!s)
		return -EINVAL;
	ns_lock(s);
	nic = ns_nic_find(s, id);
	if (nic) {
		nic->up = up;
		if (up)
			netif_set_up(&nic->netif);
		else
			netif_set_down(&nic->netif);
	}
	ns_unlock(s);
	return nic ? 0 : -ENODEV;
}

int ns_nic_set_mtu(struct ns_stack *s, int id, unsigned mtu)
{
	struct ns_nic *nic;

	if (!s)
		return -EINVAL;
	if (mtu < NS_MTU_MIN || mtu > TAP_MTU_MAX)
		return -EINVAL;
	ns_lock(s);
	nic = ns_nic_find(s, id);
	if (nic) {
		nic->netif.mtu = (u16_t)mtu;
		/* A segment built for the old MTU may now leave in fragments,
		 * and a fragment's checksum cannot be left partial: lwIP
		 * makes TCP's again on this NIC from now on. */
		if (nic->dp && nic->dp->gso.csum_partial) {
			tap_gso_flush(&nic->dp->gso);
			nic->dp->gso.csum_partial = false;
			NETIF_SET_CHECKSUM_CTRL(&nic->netif, nic_csum_base(nic));
		}
	}
	ns_unlock(s);
	return nic ? 0 : -ENODEV;
}

int ns_nic_info(struct ns_stack *s, int id, struct ns_nic_info *info)
{
	struct ns_nic *nic;

	if (!s || !info)
		return -EINVAL;
	ns_lock(s);
	nic = ns_nic_find(s, id);
	if (nic) {
		memset(info, 0, sizeof(*info));
		info->id = nic->id;
		snprintf(info->name, sizeof(info->name), "%s", nic->name);
		snprintf(info->kind, sizeof(info->kind), "%s", nic->ep->ops->name);
		snprintf(info->device, sizeof(info->device), "%s", nic->ep->device);
		memcpy(info->mac, nic->netif.hwaddr, 6);
		info->mtu = nic->netif.mtu;
		info->up = nic->up;
		info->link_up = nic->link_up;
		info->rx_frames = nic->rx_frames;
		info->tx_frames = nic->tx_frames;
		info->rx_bytes = nic->rx_bytes;
		info->tx_bytes = nic->tx_bytes;
		info->rx_malformed = nic->rx_malformed;
		info->tx_dropped = nic->tx_dropped;
	}
	ns_unlock(s);
	return nic ? 0 : -ENODEV;
}

int ns_nic_list(struct ns_stack *s, int *ids, size_t cap)
{
	size_t i;
	int n;

	if (!s || (!ids && cap))
		return -EINVAL;
	ns_lock(s);
	for (i = 0; i < s->nnics && i < cap; i++)
		ids[i] = s->nics[i]->id;
	n = (int)s->nnics;
	ns_unlock(s);
	return n;
}
