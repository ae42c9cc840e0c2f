/* SPDX-License-Identifier: MIT */
/*
 * nic.c - NICs: an lwIP netif bound to a link endpoint. Owns the receive
 * path (a batch of frames from the endpoint into lwIP, malformed ones
 * dropped and counted), the transmit path (a pbuf chain handed to the
 * endpoint as a gather list, no copy), link failure (the NIC goes down with
 * one log line; the stack carries on), and the public NIC calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "lwip/etharp.h"
#include "lwip/ethip6.h"
#include "lwip/nd6.h"
#include "lwip/pbuf.h"
#include "lwip/prot/ip4.h"
#include "lwip/prot/ip6.h"
#include "netif/ethernet.h"
#include "internal.h"

#define NS_MTU_MIN 68u
#define NS_TX_IOV_MAX 64

struct ns_nic *ns_nic_find(struct ns_stack *s, int id)
{
	size_t i;

	for (i = 0; i < s->nnics; i++)
		if (s->nics[i]->id == id)
			return s->nics[i];
	return NULL;
}

static err_t nic_linkoutput(struct netif *netif, struct pbuf *p)
{
	struct ns_nic *nic = netif->state;
	struct iovec iov[NS_TX_IOV_MAX];
	struct tap_txframe f = { .iov = iov, .len = p->tot_len };
	struct pbuf *q;
	int n = 0;

	/* A stack checkpointed without leave-running is frozen as the image
	 * shows it: tearing it down must not tell peers (no FIN, no RST), so
	 * that after a restore their connections are reset, as by a host that
	 * rebooted - not closed at checkpoint time. */
	if (nic->stack->tx_frozen)
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
	f.iovcnt = n;
	n = nic->ep->ops->send(nic->ep, &f, 1);
	if (n == 1) {
		nic->tx_frames++;
		nic->tx_bytes += f.len;
		nic->stack->stats.tx_frames++;
		nic->stack->stats.tx_bytes += f.len;
		return ERR_OK;
	}
	if (n < 0) {
		/* Leave the teardown to the dispatcher: we are deep inside
		 * lwIP's output path here. */
		nic->failed = -n;
		return ERR_IF;
	}
drop:
	nic->tx_dropped++;
	nic->stack->stats.tx_dropped++;
	return ERR_OK;	/* a lost frame, as on a real wire: TCP retransmits */
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
	if (!netif_add(&nic->netif, NULL, NULL, NULL, nic, nic_netif_init, ethernet_input)) {
		rc = -ENOMEM;
		goto fail;
	}
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

void ns_nic_rx(struct ns_stack *s, struct ns_nic *nic)
{
	struct ns_endpoint *ep = nic->ep;
	uint64_t truncated = ep->rx_truncated;
	int round, n, i;

	/* A bounded number of batches per wakeup keeps NICs and timers fair. */
	for (round = 0; round < 4; round++) {
		n = ep->ops->recv(ep, s->rx, NS_RX_BATCH);
		if (n < 0) {
			nic->failed = -n;
			ns_nic_handle_failure(s, nic);
			return;
		}
		for (i = 0; i < n; i++) {
			struct tap_rxframe *f = &s->rx[i];
			struct pbuf *p;

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
			p = rx_pbuf(f->data, f->len);
			/* At the memory limit, a peer's pile of out-of-order
			 * data must not keep out its own (or anyone's) RST. */
			if (!p && tcpip_mem_relieve())
				p = rx_pbuf(f->data, f->len);
			if (!p) {
				LINK_STATS_INC(link.memerr);
				LINK_STATS_INC(link.drop);
				continue;
			}
			if (nic->netif.input(p, &nic->netif) != ERR_OK)
				pbuf_free(p);
		}
		/* The batch hit the memory limit (an out-of-order segment
		 * found no room, say): make room before the next. */
		tcpip_mem_relieve_if_refused();
		if (n < NS_RX_BATCH)
			break;
	}
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
	if (nic)
		nic->netif.mtu = (u16_t)mtu;
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
