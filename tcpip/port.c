/* SPDX-License-Identifier: MIT */
/*
 * port.c - the platform half of the lwIP port: the stack lock and its
 * core-locked assertion, lwIP's one-time initialisation, the err_t -> errno
 * map, diagnostics, randomness, the TCP initial sequence number hook (which
 * gives a connection a SYN cookie vouched for the cookie as its ISN), and
 * the allocator behind every lwIP allocation, which counts bytes against the
 * stack's memory limit. Time and timers live in timers.c, on the timer wheel
 * of timers/.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"
#include "lwip/init.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/sys.h"
#include "tcpip.h"
#include "syncookie.h"
#include "tcpip_hooks.h"

static pthread_mutex_t stack_lock = PTHREAD_MUTEX_INITIALIZER;
/* Whether this thread holds stack_lock: for LWIP_ASSERT_CORE_LOCKED. */
static _Thread_local bool lock_held;

void tcpip_lock(void)
{
	pthread_mutex_lock(&stack_lock);
	lock_held = true;
}

void tcpip_unlock(void)
{
	lock_held = false;
	pthread_mutex_unlock(&stack_lock);
}

bool tcpip_locked_by_me(void)
{
	return lock_held;
}

int tcpip_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	int err;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	err = pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
	return -err;
}

int tcpip_cond_wait(pthread_cond_t *cond, const struct timespec *deadline)
{
	int err;

	lock_held = false;
	if (deadline)
		err = pthread_cond_timedwait(cond, &stack_lock, deadline);
	else
		err = pthread_cond_wait(cond, &stack_lock);
	lock_held = true;
	return err == ETIMEDOUT ? -ETIMEDOUT : 0;
}

void tcpip_assert_core_locked(void)
{
	if (!lock_held)
		tcpip_assert_fail("lwIP called without the stack lock", __FILE__, __LINE__);
}

/*
 * The memory limit. lwIP allocates everything - pbufs, pcbs, segments,
 * reassembly - through mem_malloc() (MEM_LIBC_MALLOC, MEMP_MEM_MALLOC),
 * which lwipopts.h points here. Each block carries its size in a header
 * (mem_clib_free() gets no size), and the bytes in use are reserved before
 * malloc() so a block never takes the total above the limit. Atomics, not
 * the stack lock: pbufs may be freed by a thread that does not hold it.
 *
 * The last eighth of the limit is kept for received frames: at the limit,
 * the frames that free memory - ACKs of queued data, FINs, RSTs - must
 * still get in, and a flood of pcbs or queued segments must not lock them
 * out. Everything else fails at seven eighths.
 */
#define MEM_RX_RESERVE_DIV 8
union mem_hdr {
	size_t size;		/* the block's bytes, this header included */
	max_align_t align;	/* what follows stays as aligned as malloc()'s */
};

static _Atomic size_t mem_used, mem_peak;
static _Atomic size_t mem_limit = SIZE_MAX;
static _Atomic uint64_t mem_refused;
static uint64_t mem_pruned;	/* stack lock */
static uint64_t mem_refused_seen;	/* stack lock: by tcpip_mem_relieve() */
static _Thread_local bool mem_for_rx;	/* allocating a received frame */

void tcpip_mem_rx(bool on)
{
	mem_for_rx = on;
}

void tcpip_mem_set_limit(size_t bytes)
{
	atomic_store(&mem_limit, bytes ? bytes : SIZE_MAX);
}

void tcpip_mem_usage(struct tcpip_mem_usage *u)
{
	size_t limit = atomic_load(&mem_limit);

	u->used = atomic_load(&mem_used);
	u->peak = atomic_load(&mem_peak);
	u->limit = limit == SIZE_MAX ? 0 : limit;
	u->refused = atomic_load(&mem_refused);
	u->pruned = mem_pruned;
}

void *tcpip_mem_malloc(size_t size)
{
	size_t total = size + sizeof(union mem_hdr);
	size_t used, peak, limit = atomic_load_explicit(&mem_limit, memory_order_relaxed);
	union mem_hdr *h;

	if (total < size)
		goto refuse;
	if (!mem_for_rx && limit != SIZE_MAX)
		limit -= limit / MEM_RX_RESERVE_DIV;
	used = atomic_fetch_add_explicit(&mem_used, total, memory_order_relaxed) + total;
	if (used > limit || used < total)
		goto unreserve;
	h = malloc(total);
	if (!h)
		goto unreserve;
	h->size = total;
	peak = atomic_load_explicit(&mem_peak, memory_order_relaxed);
	while (used > peak &&
	       !atomic_compare_exchange_weak_explicit(&mem_peak, &peak, used, memory_order_relaxed,
						      memory_order_relaxed))
		;
	return h + 1;
unreserve:
	atomic_fetch_sub_explicit(&mem_used, total, memory_order_relaxed);
refuse:
	atomic_fetch_add_explicit(&mem_refused, 1, memory_order_relaxed);
	return NULL;
}

void *tcpip_mem_calloc(size_t count, size_t size)
{
	void *p;

	if (size && count > SIZE_MAX / size) {
		atomic_fetch_add_explicit(&mem_refused, 1, memory_order_relaxed);
		return NULL;
	}
	p = tcpip_mem_malloc(count * size);
	if (p)
		memset(p, 0, count * size);
	return p;
}

void tcpip_mem_free(void *mem)
{
	union mem_hdr *h;

	if (!mem)
		return;
	h = (union mem_hdr *)mem - 1;
	atomic_fetch_sub_explicit(&mem_used, h->size, memory_order_relaxed);
	free(h);
}

size_t tcpip_mem_relieve(void)
{
	size_t before = atomic_load(&mem_used), freed;
	struct tcp_pcb *pcb;

	/* Out-of-order segments were never acknowledged: the peers send
	 * them again, as Linux's tcp_prune_ofo_queue() counts on. */
	for (pcb = tcp_active_pcbs; pcb; pcb = pcb->next)
		tcp_free_ooseq(pcb);
	freed = before - atomic_load(&mem_used);
	mem_pruned += freed;
	mem_refused_seen = atomic_load(&mem_refused);
	return freed;
}

size_t tcpip_mem_relieve_if_refused(void)
{
	if (atomic_load_explicit(&mem_refused, memory_order_relaxed) == mem_refused_seen)
		return 0;
	return tcpip_mem_relieve();
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool clock_ready;

void tcpip_clock_use_source(uint64_t (*mono)(void *arg), void *arg)
{
	tw_clock_init_source(tcpip_clock(), mono, arg);
	clock_ready = true;
}

static bool lwip_ready;

int tcpip_clock_continue(uint64_t now_ns)
{
	int rc = -EBUSY;

	tcpip_lock();
	if (!lwip_ready) {
		tw_clock_init(tcpip_clock());
		tw_clock_set(tcpip_clock(), now_ns);
		clock_ready = true;
		rc = 0;
	}
	tcpip_unlock();
	return rc;
}

static void init_lwip(void)
{
	bool held = lock_held;

	/* lwip_init() asserts the core lock in places. */
	if (!held)
		tcpip_lock();
	/* Before lwip_init(): it arms the cyclic timers on the stack clock. */
	if (!clock_ready)
		tw_clock_init(tcpip_clock());
	clock_ready = true;
	lwip_init();
	lwip_ready = true;
	if (!held)
		tcpip_unlock();
}

void tcpip_init(void)
{
	pthread_once(&init_once, init_lwip);
}

int tcpip_err_to_errno(err_t err)
{
	switch (err) {
	case ERR_OK: return 0;
	case ERR_MEM: return -ENOMEM;
	case ERR_BUF: return -ENOBUFS;
	case ERR_TIMEOUT: return -ETIMEDOUT;
	case ERR_RTE: return -ENETUNREACH;
	case ERR_INPROGRESS: return -EINPROGRESS;
	case ERR_VAL: return -EINVAL;
	case ERR_WOULDBLOCK: return -EWOULDBLOCK;
	case ERR_USE: return -EADDRINUSE;
	case ERR_ALREADY: return -EALREADY;
	case ERR_ISCONN: return -EISCONN;
	case ERR_CONN: return -ENOTCONN;
	case ERR_IF: return -ENETDOWN;
	case ERR_ABRT: return -ECONNABORTED;
	case ERR_RST: return -ECONNRESET;
	case ERR_CLSD: return -ENOTCONN;
	case ERR_ARG: return -EINVAL;
	}
	return -EIO;
}

void tcpip_diag(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("netstack: lwip: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

void tcpip_assert_fail(const char *msg, const char *file, int line)
{
	fprintf(stderr, "netstack: internal error: %s (%s:%d)\n", msg, file, line);
	abort();
}

/* xoshiro128** seeded from getrandom(): fast, and good enough for ports
 * and IDs. Sequence numbers use the keyed hash below. */
static uint32_t rng_state[4];
static bool rng_seeded;

static uint32_t rotl32(uint32_t x, int k)
{
	return (x << k) | (x >> (32 - k));
}

static void fill_random(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = getrandom(p, len, 0);

		if (n <= 0)
			continue;	/* EINTR; getrandom never fails otherwise once seeded */
		p += n;
		len -= (size_t)n;
	}
}

uint32_t tcpip_random(void)
{
	uint32_t result, t;

	if (!rng_seeded) {
		do
			fill_random(rng_state, sizeof(rng_state));
		while (!(rng_state[0] | rng_state[1] | rng_state[2] | rng_state[3]));
		rng_seeded = true;
	}
	result = rotl32(rng_state[1] * 5, 7) * 9;
	t = rng_state[1] << 9;
	rng_state[2] ^= rng_state[0];
	rng_state[3] ^= rng_state[1];
	rng_state[1] ^= rng_state[2];
	rng_state[0] ^= rng_state[3];
	rng_state[2] ^= t;
	rng_state[3] = rotl32(rng_state[3], 11);
	return result;
}

/*
 * RFC 6528 initial sequence numbers: a keyed hash of the connection's
 * addresses and ports plus a 4-microsecond clock, so a peer can neither
 * guess another connection's ISN nor see it go backwards for its own.
 * The hash is SipHash-2-4's round function over a per-process key; SYN
 * cookies (syncookie.c) are MACs of the same hash.
 */
static uint64_t isn_key[2];
static bool isn_keyed;

#define SIPROUND(v0, v1, v2, v3) do { \
	v0 += v1; v1 = (v1 << 13) | (v1 >> 51); v1 ^= v0; v0 = (v0 << 32) | (v0 >> 32); \
	v2 += v3; v3 = (v3 << 16) | (v3 >> 48); v3 ^= v2; \
	v0 += v3; v3 = (v3 << 21) | (v3 >> 43); v3 ^= v0; \
	v2 += v1; v1 = (v1 << 17) | (v1 >> 47); v1 ^= v2; v2 = (v2 << 32) | (v2 >> 32); \
} while (0)

uint64_t tcpip_siphash(const uint64_t *words, size_t n)
{
	uint64_t v0, v1, v2, v3;
	size_t i;

	if (!isn_keyed) {
		fill_random(isn_key, sizeof(isn_key));
		isn_keyed = true;
	}
	v0 = 0x736f6d6570736575ULL ^ isn_key[0];
	v1 = 0x646f72616e646f6dULL ^ isn_key[1];
	v2 = 0x6c7967656e657261ULL ^ isn_key[0];
	v3 = 0x7465646279746573ULL ^ isn_key[1];

	for (i = 0; i < n; i++) {
		v3 ^= words[i];
		SIPROUND(v0, v1, v2, v3);
		SIPROUND(v0, v1, v2, v3);
		v0 ^= words[i];
	}
	v2 ^= 0xff;
	for (i = 0; i < 4; i++)
		SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/*
 * A segment of a connection, before lwIP's tcp_input() sees it. lwIP 2.1.3
 * trims a segment that overlaps rcv_nxt by (rcv_nxt - seqno) bytes and
 * asserts that this is under 64 KiB, which no real segment exceeds; but a
 * segment whose sequence number lies 2^31 from rcv_nxt passes its signed
 * TCP_SEQ_BETWEEN() test as an overlap, and one such segment from a peer
 * aborted the stack (found by fuzz_frame). It is dropped and counted here.
 */
err_t tcpip_hook_tcp_inpkt(struct tcp_pcb *pcb, const struct tcp_hdr *hdr, const struct pbuf *p)
{
	u32_t seqno, tcplen;

	/* A listener's pcb is a struct tcp_pcb_listen: no rcv_nxt to read. */
	if (pcb->state == LISTEN || pcb->state == CLOSED || pcb->state == SYN_SENT)
		return ERR_OK;
	/* tcp_input() has turned the header to host order in place. */
	seqno = hdr->seqno;
	/* p->payload is the data here: the header is already past. */
	tcplen = (u32_t)p->tot_len + ((TCPH_FLAGS(hdr) & (TCP_FIN | TCP_SYN)) ? 1u : 0u);
	if (tcplen && TCP_SEQ_BETWEEN(pcb->rcv_nxt, seqno + 1, seqno + tcplen - 1) &&
	    pcb->rcv_nxt - seqno >= 0xffff) {
		TCP_STATS_INC(tcp.drop);
		return ERR_VAL;
	}
	return ERR_OK;
}

u32_t tcpip_hook_tcp_isn(const ip_addr_t *local_ip, u16_t local_port,
			 const ip_addr_t *remote_ip, u16_t remote_port)
{
	uint64_t words[5];
	uint32_t isn;

	/* Every new connection with addresses comes here (tcp_connect() and
	 * tcp_listen_input()), just before lwIP lists it. */
	tcpip_syncookie_pcbs_changed();
	/* A connection a SYN cookie vouched for starts at the cookie. */
	if (tcpip_syncookie_replay_isn(local_ip, local_port, remote_ip, remote_port, &isn))
		return isn;
	tcpip_addr_words(local_ip, words);
	tcpip_addr_words(remote_ip, &words[2]);
	words[4] = ((uint64_t)local_port << 16) | remote_port;
	/* sys_now() is in milliseconds; RFC 6528's clock ticks every 4 us. */
	return (u32_t)tcpip_siphash(words, 5) + (u32_t)sys_now() * 250u;
}
