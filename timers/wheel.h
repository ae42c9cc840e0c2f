/* SPDX-License-Identifier: MIT */
/*
 * wheel.h - a hierarchical timing wheel with cascading (Varghese & Lauck,
 * scheme 7; the Linux timer wheel before 4.8). It owns the buckets of
 * pending timers, the per-level bitmaps of non-empty buckets, and the
 * wheel's notion of "now"; it never reads a clock: the caller passes the
 * stack time to tw_wheel_init() and tw_wheel_advance(), so tests drive it
 * with a fake one. It allocates nothing: timers are embedded in their
 * owners, which get back to themselves with container_of().
 *
 * Theory of operation. Times in the API are 64-bit nanoseconds of the stack
 * clock; inside they are ticks of TW_TICK_NS, an expiry rounded up to the
 * next tick (so never early) and "now" rounded down. The wheel's tick is
 * clk = now / TW_TICK_NS. A timer due d = tick - clk ticks ahead goes to
 * level 0 if d < 64, else to the level l whose range holds d
 * (64^l <= d < 64^(l+1)), in slot (tick >> 6l) & 63. So level 0 holds the
 * ticks clk ... clk + 63, one per slot, clk's own slot holding the timers
 * already due; level l >= 1 holds the 64 slot-periods (clk >> 6l) + 1 ...
 * (clk >> 6l) + 64 of 64^l ticks each, again one per slot, with no wrap.
 * When clk reaches the start of a level-l slot (l >= 1), that slot cascades:
 * each of its timers, now less than 64^l ticks away, is re-inserted at a
 * lower level. When clk reaches a level-0 slot, its timers expire. A timer
 * is thus cascaded at most TW_LEVELS - 1 times and expires on its exact
 * tick; unlike the kernel's non-cascading wheel, coarser levels add no
 * lateness. tw_wheel_advance() does not walk every tick: the bitmaps give
 * each level's next non-empty slot (__builtin_ctzll on a rotated word), and
 * clk jumps from one such event to the next.
 *
 * Geometry, from the constants below (TW_TICK_NS = 1 ms, 64 slots per
 * level, 7 levels to cover at least 2^40 ticks):
 *
 *   level  slot granularity       timers due (ticks ahead)   i.e. up to
 *     0    1 ms                   0 .. 63                    63 ms
 *     1    64 ms                  64 .. 4095                 ~4.1 s
 *     2    4.096 s                4096 .. 2^18 - 1           ~4.4 min
 *     3    ~4.4 min               2^18 .. 2^24 - 1           ~4.7 h
 *     4    ~4.7 h                 2^24 .. 2^30 - 1           ~12.4 days
 *     5    ~12.4 days             2^30 .. 2^36 - 1           ~2.2 years
 *     6    ~2.2 years             2^36 .. 2^42 - 1           ~139 years
 *
 * The slot granularity never bounds when a timer fires; next_deadline is
 * exact unless a slot above level 0 holds more than 64 timers, when it may
 * be early by up to that slot's granularity. Past the last level: an expiry more than
 * TW_WHEEL_TICKS - 1 ticks ahead (and any that would not fit in 64-bit ns)
 * is clamped to the last reachable tick, never wrapped into the near
 * future; tw_timer_expires() then reports the clamped time.
 *
 * Firing. A timer armed for @expires_ns fires in the first
 * tw_wheel_advance(now) with now >= @expires_ns rounded up to a tick: never
 * early; called on that tick, advance runs it at most TW_TICK_NS - 1 ns
 * after the requested time (the rounding), and a later call adds only its
 * own delay. A timer armed for a time at or before the wheel's now (the
 * last one passed in) is due: it fires in the next advance, whatever now
 * that call passes.
 *
 * Cost: arm, re-arm and cancel are O(1). Advance is O(TW_LEVELS) per
 * non-empty slot it empties, plus O(1) per timer cascaded and O(log n) per
 * timer expired (the batch is sorted); time it skips over costs nothing.
 * next_deadline is O(TW_LEVELS * 64): it scans each level's next slot, up
 * to 64 timers, for the earliest expiry.
 *
 * Expiry and reset (libuv's uv__run_timers). Advance first collects every
 * due timer onto a local list ordered by (expiry, arming order), then pops
 * and runs them one by one. A callback may cancel or re-arm any timer,
 * itself included, and arm new ones. A timer on that list is still pending:
 * cancelling or re-arming it takes it off the list, so a stale expiry never
 * runs after a reset, and a reset never loses to the expiry it replaced. A
 * timer re-armed for a time at or before now runs in the next advance, not
 * the current one. A callback must not call tw_wheel_advance() or
 * tw_wheel_init(), and a pending timer must be cancelled before its memory
 * is freed (freeing it in its own callback is fine: it is no longer pending).
 *
 * Threading: none inside. The caller serialises every call on a wheel and
 * its timers (the stack lock); callbacks run with it held.
 */
#ifndef NETSTACK_WHEEL_H
#define NETSTACK_WHEEL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TW_TICK_NS 1000000ull		/* base granularity: 1 ms */
#define TW_TICK_MAX (UINT64_MAX / TW_TICK_NS)	/* last tick whose ns fit */
#define TW_LVL_BITS 6
#define TW_LVL_SIZE (1u << TW_LVL_BITS)	/* slots per level */
#define TW_LVL_MASK (TW_LVL_SIZE - 1)
#define TW_MIN_RANGE_BITS 40		/* cover at least 2^40 ticks */
#define TW_LEVELS ((TW_MIN_RANGE_BITS + TW_LVL_BITS - 1) / TW_LVL_BITS)
#define TW_WHEEL_BITS (TW_LEVELS * TW_LVL_BITS)
#define TW_WHEEL_TICKS (1ull << TW_WHEEL_BITS)	/* the range, from clk */
#define TW_BUCKETS (TW_LEVELS * TW_LVL_SIZE)

static_assert(TW_LVL_SIZE == 8 * sizeof(uint64_t), "one bitmap word per level");
static_assert(TW_WHEEL_BITS >= TW_MIN_RANGE_BITS && TW_WHEEL_BITS < 64,
	      "the levels cover the range, and a tick distance fits in 64 bits");
static_assert(TW_BUCKETS <= UINT16_MAX, "a bucket index fits tw_timer.bucket");

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))
#endif

/* Intrusive circular list links. */
struct tw_link {
	struct tw_link *next, *prev;
};

/* A timer, embedded in its owner. Fields are private to wheel.c. */
struct tw_timer {
	struct tw_link link;		/* in a bucket, or on advance's expire list */
	uint64_t expires;		/* ns, as armed (clamped to the range) */
	uint64_t seq;			/* arming order: breaks ties in expires */
	void (*fn)(struct tw_timer *t);
	uint16_t bucket;		/* level * TW_LVL_SIZE + slot, while queued */
	uint8_t state;			/* enum tw_state in wheel.c */
};

struct tw_wheel {
	uint64_t now;			/* ns, the latest passed in */
	uint64_t clk;			/* now in ticks, between calls */
	uint64_t seq;			/* next arming's sequence number */
	size_t pending;			/* queued plus on an expire list */
	uint64_t slots_visited;		/* non-empty slots advance emptied (tests) */
	uint64_t occupied[TW_LEVELS];	/* bit s: bucket (level, s) is non-empty */
	struct tw_link buckets[TW_BUCKETS];
};

void tw_timer_init(struct tw_timer *t, void (*fn)(struct tw_timer *t));
void tw_wheel_init(struct tw_wheel *w, uint64_t now_ns);
void tw_timer_arm(struct tw_wheel *w, struct tw_timer *t, uint64_t expires_ns);
bool tw_timer_cancel(struct tw_wheel *w, struct tw_timer *t);
bool tw_timer_pending(const struct tw_timer *t);
uint64_t tw_timer_expires(const struct tw_timer *t);
size_t tw_wheel_advance(struct tw_wheel *w, uint64_t now_ns);
uint64_t tw_wheel_next_deadline(const struct tw_wheel *w);
size_t tw_wheel_pending(const struct tw_wheel *w);

/*
 * Wakeup coalescing. Whoever sleeps until the next deadline (the stack's
 * dispatcher, the bench) wakes at tw_wakeup_time(deadline): the deadline
 * rounded up to a multiple of TW_WAKEUP_SLACK_NS of stack time, so timers
 * due close together share one wakeup. A timer then fires at most
 * TW_WAKEUP_SLACK_NS + one tick after its expiry, never early; periodic
 * timers re-armed from their due time still do not drift. Why 8 ms: one
 * wakeup costs some 25 us of kernel time on a small VM, so 1,000 periodic
 * 10 ms timers at random phases cost ~3% of a CPU when each tick wakes the
 * thread, and under 1% at 125 wakeups a second; lwIP's finest timer (MLD)
 * runs every 100 ms, so 8 ms is far below anything the protocols notice.
 */
#define TW_WAKEUP_SLACK_NS (8 * TW_TICK_NS)

static inline uint64_t tw_wakeup_time(uint64_t deadline_ns)
{
	uint64_t rem = deadline_ns % TW_WAKEUP_SLACK_NS;

	if (!rem || deadline_ns > UINT64_MAX - TW_WAKEUP_SLACK_NS)
		return deadline_ns;
	return deadline_ns + (TW_WAKEUP_SLACK_NS - rem);
}

#endif
