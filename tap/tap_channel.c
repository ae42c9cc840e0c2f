/* SPDX-License-Identifier: MIT */
/*
 * tap_channel.c - the in-memory channel endpoint that protocol tests drive
 * the stack with (gVisor's link/channel). It owns two bounded FIFO queues of
 * frames, one mutex over both, and an eventfd: tests inject frames into the
 * inbound queue, which the stack's dispatcher drains through recv, and take
 * the frames the stack sent from the outbound queue. The eventfd in ep->fd
 * is readable exactly while the inbound queue is not empty, so the
 * dispatcher polls a channel like any other endpoint. Each queued frame is
 * one heap copy that the channel owns until recv or tap_channel_read copies
 * it out and frees it.
 */
#define _GNU_SOURCE

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "tap.h"
#include "tap_io.h"

/* Queue sizes, in frames; powers of two so a ring index is a mask. Inbound
 * is what a test injects ahead of the stack; outbound is what the stack may
 * send before the test reads it (a whole TCP window of small segments). */
#define CHAN_IN_ORDER 12
#define CHAN_OUT_ORDER 16
#define CHAN_IN_MAX (1u << CHAN_IN_ORDER)
#define CHAN_OUT_MAX (1u << CHAN_OUT_ORDER)

struct cframe {
	size_t len;
	struct tap_offload off;	/* as a TAP would have read it */
	uint8_t data[];
};

/* A ring of frame pointers; head and tail run freely and wrap. */
struct cqueue {
	struct cframe **slot;
	uint32_t mask;
	uint32_t head;		/* next to take */
	uint32_t tail;		/* next free */
};

struct channel {
	struct ns_endpoint ep;	/* ep.fd is the eventfd */
	pthread_mutex_t lock;	/* guards in and out */
	struct cqueue in;	/* to the stack */
	struct cqueue out;	/* from the stack */
};

static_assert(CHAN_OUT_MAX <= UINT32_MAX / 2, "ring indexes are uint32_t");

static void channel_destroy(struct ns_endpoint *ep);
static int channel_recv(struct ns_endpoint *ep, struct tap_rxframe *frames, unsigned n);
static int channel_send(struct ns_endpoint *ep, const struct tap_txframe *frames, unsigned n);

static const struct tap_ops channel_ops = {
	.kind = TAP_KIND_CHANNEL,
	.name = "channel",
	.recv = channel_recv,
	.send = channel_send,
	.destroy = channel_destroy,
};

static int cq_init(struct cqueue *q, uint32_t size)
{
	q->slot = calloc(size, sizeof(*q->slot));
	q->mask = size - 1;
	q->head = q->tail = 0;
	return q->slot ? 0 : -ENOMEM;
}

static void cq_free(struct cqueue *q)
{
	while (q->head != q->tail)
		free(q->slot[q->head++ & q->mask]);
	free(q->slot);
}

static uint32_t cq_len(const struct cqueue *q)
{
	return q->tail - q->head;
}

static bool cq_push(struct cqueue *q, struct cframe *f)
{
	if (cq_len(q) > q->mask)
		return false;
	q->slot[q->tail++ & q->mask] = f;
	return true;
}

static struct cframe *cq_pop(struct cqueue *q)
{
	if (q->head == q->tail)
		return NULL;
	return q->slot[q->head++ & q->mask];
}

/* The channel behind @ep, or NULL if @ep is not a channel. Comparing the
 * ops table, not just its kind, also refuses a foreign struct that claims
 * to be a channel. */
static struct channel *to_channel(struct ns_endpoint *ep)
{
	if (!ep || ep->ops != &channel_ops)
		return NULL;
	return container_of(ep, struct channel, ep);
}

/* Make the eventfd readable; the counter only ever holds 0 or 1. */
static void efd_set(struct channel *c)
{
	uint64_t one = 1;

	(void)!write(c->ep.fd, &one, sizeof(one));
}

static void efd_clear(struct channel *c)
{
	uint64_t v;

	(void)!read(c->ep.fd, &v, sizeof(v));
}

/**
 * tap_channel_new() - create an empty channel endpoint
 * @epp: receives the endpoint, owned by the caller (tap_endpoint_destroy())
 *
 * Return: 0, -EINVAL (@epp NULL), -ENOMEM, -errno if no eventfd can be made.
 */
int tap_channel_new(struct ns_endpoint **epp)
{
	struct channel *c;
	int ret;

	if (!epp)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	ret = -pthread_mutex_init(&c->lock, NULL);
	if (ret)
		goto fail_alloc;
	ret = cq_init(&c->in, CHAN_IN_MAX);
	if (ret)
		goto fail_mutex;
	ret = cq_init(&c->out, CHAN_OUT_MAX);
	if (ret)
		goto fail_in;
	c->ep.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->ep.fd < 0) {
		ret = -errno;
		goto fail_out;
	}
	c->ep.ops = &channel_ops;
	*epp = &c->ep;
	return 0;

fail_out:
	cq_free(&c->out);
fail_in:
	cq_free(&c->in);
fail_mutex:
	pthread_mutex_destroy(&c->lock);
fail_alloc:
	free(c);
	return ret;
}

static void channel_destroy(struct ns_endpoint *ep)
{
	struct channel *c = container_of(ep, struct channel, ep);

	close(c->ep.fd);
	cq_free(&c->out);
	cq_free(&c->in);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* Inbound frames are copied into the stack's slots under the lock: the
 * channel is for tests, where simplicity beats the copy's hold time. */
static int channel_recv(struct ns_endpoint *ep, struct tap_rxframe *frames, unsigned n)
{
	struct channel *c = container_of(ep, struct channel, ep);
	unsigned got = 0;
	struct cframe *f;

	pthread_mutex_lock(&c->lock);
	while (got < n && (f = cq_pop(&c->in))) {
		struct tap_rxframe *rx = &frames[got];

		if (f->len > rx->cap) {
			ep->rx_truncated++;
		} else {
			memcpy(rx->data, f->data, f->len);
			rx->off = f->off;
			rx->len = f->len;
			got++;
		}
		free(f);
	}
	if (cq_len(&c->in) == 0)
		efd_clear(c);
	pthread_mutex_unlock(&c->lock);
	return (int)got;
}

/* Outbound frames are gathered into their copies before taking the lock.
 * A frame that finds the queue full, or no memory, ends the batch: it and
 * the rest are not taken, and the stack counts them as dropped. */
static int channel_send(struct ns_endpoint *ep, const struct tap_txframe *frames, unsigned n)
{
	struct channel *c = container_of(ep, struct channel, ep);
	unsigned sent;

	for (sent = 0; sent < n; sent++) {
		const struct tap_txframe *tx = &frames[sent];
		struct cframe *f;
		size_t len = 0;
		bool queued;
		int i;

		for (i = 0; i < tx->iovcnt; i++)
			len += tx->iov[i].iov_len;
		f = malloc(sizeof(*f) + len);
		if (!f)
			break;
		f->len = 0;
		f->off = tx->off;
		for (i = 0; i < tx->iovcnt; i++) {
			if (tx->iov[i].iov_len)
				memcpy(f->data + f->len, tx->iov[i].iov_base, tx->iov[i].iov_len);
			f->len += tx->iov[i].iov_len;
		}
		pthread_mutex_lock(&c->lock);
		queued = cq_push(&c->out, f);
		pthread_mutex_unlock(&c->lock);
		if (!queued) {
			free(f);
			break;
		}
	}
	return (int)sent;
}

/**
 * tap_channel_inject() - queue one frame for the stack to receive
 * @ep: a channel endpoint
 * @frame: the frame, copied; the caller keeps it
 * @len: its length, 1 to TAP_FRAME_MAX
 *
 * Return: 0, -EINVAL (not a channel, bad length or @frame NULL), -ENOBUFS
 * if the inbound queue already holds its maximum, -ENOMEM.
 */
int tap_channel_inject(struct ns_endpoint *ep, const void *frame, size_t len)
{
	return tap_channel_inject_offload(ep, frame, len, NULL);
}

/**
 * tap_channel_inject_offload() - queue a frame with an offload header
 * @ep, @frame, @len: as tap_channel_inject()
 * @off: the header recv() hands up with it, as a TAP's virtio-net header
 *       would give it (NULL: none); NEEDS_CSUM offsets must lie within the
 *       frame, as a TAP's recv() guarantees
 *
 * Return: as tap_channel_inject(); -EINVAL for NEEDS_CSUM offsets outside.
 */
int tap_channel_inject_offload(struct ns_endpoint *ep, const void *frame, size_t len,
			       const struct tap_offload *off)
{
	struct channel *c = to_channel(ep);
	struct cframe *f;
	bool queued;

	if (!c || !frame || len == 0 || len > TAP_FRAME_MAX ||
	    (off && !tap_vnet_csum_in_frame(len, off)))
		return -EINVAL;
	f = malloc(sizeof(*f) + len);
	if (!f)
		return -ENOMEM;
	f->len = len;
	if (off)
		f->off = *off;
	else
		memset(&f->off, 0, sizeof(f->off));
	memcpy(f->data, frame, len);

	pthread_mutex_lock(&c->lock);
	queued = cq_push(&c->in, f);
	if (queued && cq_len(&c->in) == 1)
		efd_set(c);
	pthread_mutex_unlock(&c->lock);
	if (!queued) {
		free(f);
		return -ENOBUFS;
	}
	return 0;
}

/**
 * tap_channel_read() - take the oldest frame the stack sent
 * @ep: a channel endpoint
 * @buf: receives min(frame length, @cap) bytes; may be NULL when @cap is 0
 * @cap: room in @buf; the rest of a longer frame is discarded
 *
 * Return: the frame's full length, -EAGAIN if none is queued, -EINVAL (not
 * a channel, or @buf NULL with @cap > 0).
 */
ssize_t tap_channel_read(struct ns_endpoint *ep, void *buf, size_t cap)
{
	return tap_channel_read_offload(ep, buf, cap, NULL);
}

/**
 * tap_channel_read_offload() - tap_channel_read() with the frame's header
 * @ep, @buf, @cap: as tap_channel_read()
 * @off: receives the offload header the stack sent the frame with, or NULL
 *
 * Return: as tap_channel_read().
 */
ssize_t tap_channel_read_offload(struct ns_endpoint *ep, void *buf, size_t cap,
				 struct tap_offload *off)
{
	struct channel *c = to_channel(ep);
	struct cframe *f;
	ssize_t len;
	size_t copy;

	if (!c || (!buf && cap))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	f = cq_pop(&c->out);
	pthread_mutex_unlock(&c->lock);
	if (!f)
		return -EAGAIN;
	copy = f->len < cap ? f->len : cap;
	if (copy)
		memcpy(buf, f->data, copy);
	if (off)
		*off = f->off;
	len = (ssize_t)f->len;
	free(f);
	return len;
}

/**
 * tap_channel_set_vnet() - make the channel play a TAP with IFF_VNET_HDR
 * @ep: a channel endpoint not yet given to a NIC
 *
 * The NIC then runs its TAP data path (offload headers, checksums left
 * partial, segments merged into GSO frames); tap_channel_read_offload()
 * shows each frame's header.
 *
 * Return: 0, -EINVAL (not a channel).
 */
int tap_channel_set_vnet(struct ns_endpoint *ep)
{
	struct channel *c = to_channel(ep);

	if (!c)
		return -EINVAL;
	c->ep.offloads = TAP_EP_VNET;
	return 0;
}

/**
 * tap_channel_tx_pending() - how many frames the stack sent that were not
 * read yet
 * @ep: a channel endpoint
 *
 * Return: the outbound queue's length; 0 if @ep is not a channel (the type
 * has no room for an error).
 */
size_t tap_channel_tx_pending(struct ns_endpoint *ep)
{
	struct channel *c = to_channel(ep);
	size_t len;

	if (!c)
		return 0;
	pthread_mutex_lock(&c->lock);
	len = cq_len(&c->out);
	pthread_mutex_unlock(&c->lock);
	return len;
}
