/* SPDX-License-Identifier: MIT */
/*
 * wheel.c - the hierarchical timing wheel (wheel.h, which carries the theory
 * of operation and the geometry): placing timers in buckets, cascading,
 * collecting and sorting expired timers, and running their callbacks.
 */
#include "wheel.h"

enum tw_state {
	TW_IDLE,	/* not pending */
	TW_QUEUED,	/* in bucket t->bucket */
	TW_EXPIRING,	/* on tw_wheel_advance()'s expire list */
};

/* --- intrusive lists --- */

static void list_init(struct tw_link *head)
{
	head->next = head->prev = head;
}

static bool list_empty(const struct tw_link *head)
{
	return head->next == head;
}

static void list_add_tail(struct tw_link *head, struct tw_link *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

static void list_del(struct tw_link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
}

static struct tw_timer *list_first(struct tw_link *head)
{
	return container_of(head->next, struct tw_timer, link);
}

/* --- sorting the expire batch by (expires, seq) --- */

static bool fires_before(const struct tw_link *a, const struct tw_link *b)
{
	const struct tw_timer *ta = container_of(a, struct tw_timer, link);
	const struct tw_timer *tb = container_of(b, struct tw_timer, link);

	return ta->expires != tb->expires ? ta->expires < tb->expires : ta->seq < tb->seq;
}

/* Merges two NULL-terminated sorted chains linked through ->next. */
static struct tw_link *merge(struct tw_link *a, struct tw_link *b)
{
	struct tw_link head, *tail = &head;

	while (a && b) {
		struct tw_link **min = fires_before(a, b) ? &a : &b;

		tail->next = *min;
		tail = *min;
		*min = (*min)->next;
	}
	tail->next = a ? a : b;
	return head.next;
}

/*
 * Bottom-up merge sort of a circular list: bin i holds a sorted run of 2^i
 * timers, so 64 bins cover any list in O(n log n) without recursion; the
 * prev links are rebuilt at the end. The usual batch of one returns at once.
 */
static void list_sort(struct tw_link *head)
{
	struct tw_link *bins[64], *run = NULL, *l, *next;
	unsigned i, used = 0;

	if (head->next == head->prev)
		return;
	head->prev->next = NULL;
	for (l = head->next; l; l = next) {
		next = l->next;
		l->next = NULL;
		for (i = 0; i < used && bins[i]; i++) {
			l = merge(bins[i], l);
			bins[i] = NULL;
		}
		if (i == used)
			used++;
		bins[i] = l;
	}
	for (i = 0; i < used; i++)
		run = merge(bins[i], run);
	list_init(head);
	for (l = run; l; l = next) {
		next = l->next;
		list_add_tail(head, l);
	}
}

/* --- placing timers --- */

static unsigned lvl_shift(unsigned lvl)
{
	return lvl * TW_LVL_BITS;
}

/* The tick at which an expiry in ns is due: rounded up, never early. */
static uint64_t tick_of(uint64_t ns)
{
	return ns / TW_TICK_NS + (ns % TW_TICK_NS != 0);
}

/* Queues @t in the bucket for @tick (>= w->clk, less than TW_WHEEL_TICKS
 * ahead): the level whose range holds the distance, see wheel.h. */
static void enqueue(struct tw_wheel *w, struct tw_timer *t, uint64_t tick)
{
	uint64_t d = tick - w->clk;
	/* The highest set bit of d picks the level; or-ing in the mask puts
	 * every d < TW_LVL_SIZE (0 included) on level 0. */
	unsigned lvl = (63u - (unsigned)__builtin_clzll(d | TW_LVL_MASK)) / TW_LVL_BITS;
	unsigned slot = (unsigned)(tick >> lvl_shift(lvl)) & TW_LVL_MASK;

	t->bucket = (uint16_t)(lvl * TW_LVL_SIZE + slot);
	t->state = TW_QUEUED;
	list_add_tail(&w->buckets[t->bucket], &t->link);
	w->occupied[lvl] |= 1ull << slot;
}

/* Takes a pending timer out of its bucket or off the expire list. */
static void detach(struct tw_wheel *w, struct tw_timer *t)
{
	list_del(&t->link);
	if (t->state == TW_QUEUED && list_empty(&w->buckets[t->bucket]))
		w->occupied[t->bucket / TW_LVL_SIZE] &= ~(1ull << (t->bucket % TW_LVL_SIZE));
	t->state = TW_IDLE;
	w->pending--;
}

/* --- advancing --- */

/*
 * The first tick after clk at which a non-empty slot must be emptied: for
 * each level, the start of its next non-empty slot among the 64 periods
 * after clk's own. Level 0's slot for clk itself holds only due timers, so
 * callers empty it (advance) or answer for it (next_deadline) first.
 * Return: that tick, or UINT64_MAX if the wheel is empty.
 */
static uint64_t next_event(const struct tw_wheel *w)
{
	uint64_t best = UINT64_MAX;
	unsigned lvl;

	for (lvl = 0; lvl < TW_LEVELS; lvl++) {
		unsigned shift = lvl_shift(lvl);
		uint64_t base = (w->clk >> shift) + 1, occ = w->occupied[lvl], rot, at;
		unsigned r = (unsigned)base & TW_LVL_MASK;

		if (best <= base << shift)
			break;	/* this level and those above start no earlier */
		if (!occ)
			continue;
		rot = r ? occ >> r | occ << (64 - r) : occ;
		at = (base + (uint64_t)__builtin_ctzll(rot)) << shift;
		if (at < best)
			best = at;
	}
	return best;
}

/* Empties bucket (@lvl, @slot) if it holds timers: level 0's expire onto
 * @expired, higher levels' cascade to the levels below. */
static void bucket_empty(struct tw_wheel *w, unsigned lvl, unsigned slot,
			 struct tw_link *expired)
{
	struct tw_link *head = &w->buckets[lvl * TW_LVL_SIZE + slot];

	if (!(w->occupied[lvl] & 1ull << slot))
		return;
	w->occupied[lvl] &= ~(1ull << slot);
	w->slots_visited++;
	while (!list_empty(head)) {
		struct tw_timer *t = list_first(head);

		list_del(&t->link);
		if (lvl) {
			/* Less than 64^lvl ticks away now: a lower level,
			 * never this bucket again. */
			enqueue(w, t, tick_of(t->expires));
		} else {
			t->state = TW_EXPIRING;
			list_add_tail(expired, &t->link);
		}
	}
}

/* --- API --- */

/**
 * tw_timer_init() - prepare a timer, not pending
 * @t: the timer, embedded in its owner
 * @fn: called with @t when it fires, @t no longer pending
 */
void tw_timer_init(struct tw_timer *t, void (*fn)(struct tw_timer *t))
{
	*t = (struct tw_timer){ .fn = fn, .state = TW_IDLE };
}

/**
 * tw_wheel_init() - make an empty wheel
 * @w: the wheel
 * @now_ns: the stack time now
 */
void tw_wheel_init(struct tw_wheel *w, uint64_t now_ns)
{
	unsigned i;

	*w = (struct tw_wheel){ .now = now_ns, .clk = now_ns / TW_TICK_NS };
	for (i = 0; i < TW_BUCKETS; i++)
		list_init(&w->buckets[i]);
}

/**
 * tw_timer_arm() - make a timer fire at a time, moving it if pending
 * @w: the wheel
 * @t: an initialised timer, pending on @w or not pending
 * @expires_ns: the stack time to fire at; at or before the wheel's now, it
 *	fires in the next tw_wheel_advance(); past the wheel's range, it is
 *	clamped to the last reachable tick
 *
 * Arming counts as a new arming for the tie-break order, re-arming too.
 */
void tw_timer_arm(struct tw_wheel *w, struct tw_timer *t, uint64_t expires_ns)
{
	uint64_t tick = w->clk, last;

	if (t->state != TW_IDLE)
		detach(w, t);
	if (expires_ns > w->now) {
		last = w->clk + (TW_WHEEL_TICKS - 1);
		if (last > TW_TICK_MAX)
			last = TW_TICK_MAX;
		tick = tick_of(expires_ns);
		if (tick > last) {
			tick = last;
			expires_ns = last * TW_TICK_NS;
		}
	}
	/* else due: clk's own level-0 slot, which the next advance empties
	 * first whatever its now. */
	t->expires = expires_ns;
	t->seq = w->seq++;
	w->pending++;
	enqueue(w, t, tick);
}

/**
 * tw_timer_cancel() - stop a timer
 * @w: the wheel it was armed on
 * @t: the timer; pending or not
 *
 * Return: true if @t was pending (it will not fire now), false if not.
 */
bool tw_timer_cancel(struct tw_wheel *w, struct tw_timer *t)
{
	if (t->state == TW_IDLE)
		return false;
	detach(w, t);
	return true;
}

/**
 * tw_timer_pending() - whether a timer will fire unless cancelled
 * @t: the timer
 *
 * Return: true from arming until its callback is called or it is cancelled
 * (also while it waits on an advance's expire list).
 */
bool tw_timer_pending(const struct tw_timer *t)
{
	return t->state != TW_IDLE;
}

/**
 * tw_timer_expires() - the time a timer was last armed for
 * @t: the timer
 *
 * Return: the expiry in ns as passed to tw_timer_arm(), or the clamped one
 * if it was past the wheel's range; meaningful in its callback too.
 */
uint64_t tw_timer_expires(const struct tw_timer *t)
{
	return t->expires;
}

/**
 * tw_wheel_advance() - move the wheel to @now_ns and run what is due
 * @w: the wheel
 * @now_ns: the stack time now; an earlier time than the wheel's is taken as
 *	the wheel's (its time never goes back)
 *
 * Collects every timer due at @now_ns, then runs their callbacks in
 * (expiry, arming order) order; see wheel.h for what callbacks may do.
 *
 * Return: the number of callbacks run.
 */
size_t tw_wheel_advance(struct tw_wheel *w, uint64_t now_ns)
{
	struct tw_link expired;
	uint64_t target, at;
	size_t ran = 0;

	list_init(&expired);
	if (now_ns > w->now)
		w->now = now_ns;
	target = w->now / TW_TICK_NS;
	bucket_empty(w, 0, (unsigned)w->clk & TW_LVL_MASK, &expired);
	while ((at = next_event(w)) <= target) {
		unsigned lvl;

		w->clk = at;
		/* Cascade every level whose slot starts at this tick (all
		 * of them land lower), then expire level 0's slot. */
		for (lvl = 1; lvl < TW_LEVELS && !(at & ((1ull << lvl_shift(lvl)) - 1)); lvl++)
			bucket_empty(w, lvl, (unsigned)(at >> lvl_shift(lvl)) & TW_LVL_MASK, &expired);
		bucket_empty(w, 0, (unsigned)at & TW_LVL_MASK, &expired);
	}
	w->clk = target;

	list_sort(&expired);
	while (!list_empty(&expired)) {
		struct tw_timer *t = list_first(&expired);

		detach(w, t);
		t->fn(t);
		ran++;
	}
	return ran;
}

/* The earliest expiry tick in bucket (@lvl, @slot), or @fallback (the
 * slot's start, always safe) when it holds more than TW_SCAN_MAX timers:
 * exact for the few timers a stack has, bounded cost for a crowded wheel. */
#define TW_SCAN_MAX 64

static uint64_t bucket_min_tick(const struct tw_wheel *w, unsigned lvl, unsigned slot,
				uint64_t fallback)
{
	const struct tw_link *head = &w->buckets[lvl * TW_LVL_SIZE + slot], *l;
	uint64_t best = UINT64_MAX;
	unsigned n = 0;

	for (l = head->next; l != head; l = l->next) {
		const struct tw_timer *t = container_of(l, struct tw_timer, link);
		uint64_t tick = tick_of(t->expires);

		if (++n > TW_SCAN_MAX)
			return fallback;
		if (tick < best)
			best = tick;
	}
	return best;
}

/**
 * tw_wheel_next_deadline() - when the next timer fires
 * @w: the wheel
 *
 * Never later than the time the next timer fires (its expiry rounded up to
 * a tick), so sleeping until it misses nothing. Each level's next occupied
 * slot holds that level's earliest timers (slots do not wrap), so the
 * earliest expiry among those slots is exact: a sleeper wakes when a timer
 * is due, not when one merely cascades. Only a slot above level 0 holding
 * more than TW_SCAN_MAX timers is not scanned; its start (at most 64^l - 1
 * ticks early) stands in, keeping the cost O(TW_LEVELS * TW_SCAN_MAX).
 *
 * Return: that time in ns; the wheel's now if a due timer waits for the
 * next advance; UINT64_MAX if no timer is pending.
 */
uint64_t tw_wheel_next_deadline(const struct tw_wheel *w)
{
	uint64_t best = UINT64_MAX;
	unsigned lvl;

	if (w->occupied[0] & 1ull << (w->clk & TW_LVL_MASK))
		return w->now;
	for (lvl = 0; lvl < TW_LEVELS; lvl++) {
		unsigned shift = lvl_shift(lvl);
		uint64_t base = (w->clk >> shift) + 1, occ = w->occupied[lvl], rot, slot_no, at;
		unsigned r = (unsigned)base & TW_LVL_MASK;

		if (best <= base << shift)
			break;	/* this level and those above start no earlier */
		if (!occ)
			continue;
		rot = r ? occ >> r | occ << (64 - r) : occ;
		slot_no = base + (uint64_t)__builtin_ctzll(rot);
		at = slot_no << shift;
		if (lvl > 0)
			at = bucket_min_tick(w, lvl, (unsigned)slot_no & TW_LVL_MASK, at);
		if (at < best)
			best = at;
	}
	return best == UINT64_MAX ? UINT64_MAX : best * TW_TICK_NS;
}

/**
 * tw_wheel_pending() - how many timers are pending
 * @w: the wheel
 *
 * Return: the timers armed and neither fired nor cancelled.
 */
size_t tw_wheel_pending(const struct tw_wheel *w)
{
	return w->pending;
}
