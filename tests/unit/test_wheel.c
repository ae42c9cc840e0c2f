/* SPDX-License-Identifier: MIT */
/*
 * test_wheel.c - unit tests of the timer wheel (timers/wheel.c) on a fake
 * clock: the test passes every `now` itself and keeps it in cur_now, so a
 * callback records the time it ran at. Covered: tick rounding, ordering by
 * (expiry, arming order), exact expiry after cascading through every level
 * whatever the steps, clamping past the range, due timers, cancel and
 * re-arm from outside and from inside callbacks (the reset-vs-expiry race),
 * next_deadline's bound, and the cost of big jumps and of many timers.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "wheel.h"

#define MS TW_TICK_NS

/* A timer that records when it ran. */
struct probe {
	struct tw_timer t;
	unsigned id;
	unsigned fires;
	uint64_t fired_at;	/* cur_now when it last ran */
	uint64_t prev_now;	/* the now of the advance before that one */
	void (*then)(struct probe *p);	/* what the callback does next */
	struct probe *other;		/* a timer @then acts on */
	uint64_t period;		/* for periodic(): ns between runs */
};

static struct tw_wheel wheel;
static uint64_t cur_now, prev_now;
/* Ids in the order the callbacks ran, when a test wants it. */
static unsigned *fire_log;
static size_t fire_len;

static void record(struct tw_timer *t)
{
	struct probe *p = container_of(t, struct probe, t);

	cr_assert_leq(tw_timer_expires(t), cur_now, "timer %u fired early", p->id);
	cr_assert_not(tw_timer_pending(t));
	p->fires++;
	p->fired_at = cur_now;
	p->prev_now = prev_now;
	if (fire_log)
		fire_log[fire_len++] = p->id;
	if (p->then)
		p->then(p);
}

static void probe_init(struct probe *p, unsigned id)
{
	*p = (struct probe){ .id = id };
	tw_timer_init(&p->t, record);
}

static void arm(struct probe *p, uint64_t expires)
{
	tw_timer_arm(&wheel, &p->t, expires);
}

static void start(uint64_t now)
{
	cur_now = prev_now = now;
	tw_wheel_init(&wheel, now);
}

static size_t advance(uint64_t now)
{
	prev_now = cur_now;
	cur_now = now;
	return tw_wheel_advance(&wheel, now);
}

/* The time a timer for @ns fires at when advanced tick by tick. */
static uint64_t tick_up(uint64_t ns)
{
	return (ns + MS - 1) / MS * MS;
}

/* splitmix64, seeded the same every run. */
static uint64_t rng = 0x776865656c2121ull;

static uint64_t rnd(uint64_t bound)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (z ^ (z >> 31)) % bound;
}

/* One timer per level, 3 slots and 5 ticks into the level, plus 1 ns. */
static struct probe lvl[TW_LEVELS];

static uint64_t lvl_expiry(uint64_t base, unsigned l)
{
	return base + (3 * (1ull << (l * TW_LVL_BITS)) + 5) * MS + 1;
}

static void arm_level_timers(uint64_t base)
{
	unsigned l;

	for (l = 0; l < TW_LEVELS; l++) {
		probe_init(&lvl[l], l);
		arm(&lvl[l], lvl_expiry(base, l));
	}
}

/* An unaligned start, so no level's slots line up with the wheel's time. */
#define BASE (123456789ull * MS + 54321)

Test(wheel, expiry_rounds_up_to_tick)
{
	struct probe a, b;

	start(0);
	probe_init(&a, 0);
	probe_init(&b, 1);
	arm(&a, 5 * MS + 1);
	arm(&b, 7 * MS);
	cr_assert_eq(advance(5 * MS + 1), 0);
	cr_assert_eq(advance(6 * MS - 1), 0);
	cr_assert_eq(advance(6 * MS), 1);
	cr_assert_eq(a.fires, 1);
	cr_assert_eq(advance(7 * MS), 1);
	cr_assert_eq(b.fires, 1);
}

static struct probe *order_probes;

static int by_expiry_then_arming(const void *x, const void *y)
{
	const struct probe *a = &order_probes[*(const unsigned *)x];
	const struct probe *b = &order_probes[*(const unsigned *)y];
	uint64_t ea = tw_timer_expires(&a->t), eb = tw_timer_expires(&b->t);

	if (ea != eb)
		return ea < eb ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;	/* armed in id order */
}

Test(wheel, random_expiries_fire_in_order_on_their_tick)
{
	enum { N = 20000, SPAN = 1 << 18 };	/* ticks: levels 0 to 2 */
	unsigned *want = calloc(N, sizeof(*want)), i;
	uint64_t t;

	order_probes = calloc(N, sizeof(*order_probes));
	fire_log = calloc(N, sizeof(*fire_log));
	start(0);
	for (i = 0; i < N; i++) {
		probe_init(&order_probes[i], i);
		/* One in eight shares the expiry of an earlier timer. */
		arm(&order_probes[i], i && rnd(8) == 0
		    ? tw_timer_expires(&order_probes[rnd(i)].t) : 1 + rnd(SPAN * MS));
		want[i] = i;
	}
	qsort(want, N, sizeof(*want), by_expiry_then_arming);
	for (t = 1; t <= SPAN; t++)
		advance(t * MS);
	cr_assert_eq(fire_len, N);
	cr_assert_eq(tw_wheel_pending(&wheel), 0);
	for (i = 0; i < N; i++) {
		struct probe *p = &order_probes[i];

		cr_assert_eq(fire_log[i], want[i], "position %u", i);
		cr_assert_eq(p->fires, 1);
		cr_assert_eq(p->fired_at, tick_up(tw_timer_expires(&p->t)), "timer %u", i);
	}
	free(fire_log);
	free(order_probes);
	free(want);
}

Test(wheel, ties_fire_in_arming_order)
{
	enum { N = 64 };
	struct probe p[N];
	unsigned armed[N], i;

	fire_log = calloc(N, sizeof(*fire_log));
	start(0);
	for (i = 0; i < N; i++) {
		armed[i] = (i * 37) % N;	/* a permutation of the ids */
		probe_init(&p[armed[i]], armed[i]);
		arm(&p[armed[i]], 1000 * MS);
	}
	/* Re-arming is a new arming: the first one armed now comes last. */
	arm(&p[armed[0]], 1000 * MS);
	cr_assert_eq(advance(1000 * MS), N);
	for (i = 0; i < N; i++)
		cr_assert_eq(fire_log[i], armed[(i + 1) % N], "position %u", i);
	free(fire_log);
}

/* From one expiry to the next in big jumps: each timer is still pending a
 * nanosecond before its tick and fires on it, after its cascades. */
Test(wheel, cascades_through_every_level_onto_the_exact_tick)
{
	unsigned l, k;

	start(BASE);
	arm_level_timers(BASE);
	for (l = 0; l < TW_LEVELS; l++) {
		uint64_t due = tick_up(lvl_expiry(BASE, l));

		cr_assert_eq(advance(due - 1), 0, "level %u early", l);
		cr_assert_eq(advance(due), 1, "level %u not on its tick", l);
		for (k = 0; k < TW_LEVELS; k++)
			cr_assert_eq(lvl[k].fires, (unsigned)(k <= l));
	}
}

/* Random steps of 1 tick to 2^36 ticks, against one jump over everything. */
Test(wheel, random_steps_and_one_jump_fire_alike)
{
	uint64_t end = tick_up(lvl_expiry(BASE, TW_LEVELS - 1));
	unsigned l;

	fire_log = calloc(TW_LEVELS, sizeof(*fire_log));
	start(BASE);
	arm_level_timers(BASE);
	while (cur_now < end)
		advance(cur_now + rnd((1ull << rnd(37)) * MS) + 1);
	for (l = 0; l < TW_LEVELS; l++) {
		uint64_t due = tick_up(tw_timer_expires(&lvl[l].t));

		cr_assert_eq(lvl[l].fires, 1);
		cr_assert(lvl[l].prev_now < due && due <= lvl[l].fired_at,
			  "level %u: not in the first advance at or after its tick", l);
		cr_assert_eq(fire_log[l], l);
	}

	fire_len = 0;
	start(BASE);
	arm_level_timers(BASE);
	cr_assert_eq(advance(end), TW_LEVELS);
	for (l = 0; l < TW_LEVELS; l++)
		cr_assert_eq(fire_log[l], l);
	free(fire_log);
}

Test(wheel, far_future_is_clamped_not_wrapped)
{
	uint64_t last = (BASE / MS + TW_WHEEL_TICKS - 1) * MS;
	struct probe p;
	unsigned l;

	start(BASE);
	probe_init(&p, 0);
	arm(&p, UINT64_MAX);
	cr_assert(tw_timer_pending(&p.t));
	cr_assert_eq(tw_timer_expires(&p.t), last);
	/* Where a wrapped expiry would land: the start of each level. */
	for (l = 0; l < TW_LEVELS; l++)
		cr_assert_eq(advance(BASE + (1ull << (l * TW_LVL_BITS)) * MS), 0);
	cr_assert_eq(advance(last - 1), 0);
	cr_assert_eq(advance(last), 1);
	cr_assert_eq(p.fires, 1);
}

Test(wheel, far_future_near_end_of_time_is_clamped)
{
	uint64_t last = TW_TICK_MAX * MS;
	struct probe p;

	start(UINT64_MAX - 5000 * MS);
	probe_init(&p, 0);
	arm(&p, UINT64_MAX);
	cr_assert_eq(tw_timer_expires(&p.t), last);
	while (!p.fires) {
		uint64_t deadline = tw_wheel_next_deadline(&wheel);

		cr_assert_leq(deadline, last);
		advance(deadline);
	}
	cr_assert_eq(p.fired_at, last);
}

Test(wheel, past_expiry_fires_at_next_advance)
{
	uint64_t now = 10 * MS + MS / 2;
	static const uint64_t when[] = { 3 * MS, 0, 10 * MS + MS / 2, 10 * MS + MS / 5 };
	static const unsigned order[] = { 1, 0, 3, 2 };
	struct probe p[4];
	unsigned i;

	fire_log = calloc(4, sizeof(*fire_log));
	start(now);
	for (i = 0; i < 4; i++) {
		probe_init(&p[i], i);
		arm(&p[i], when[i]);
	}
	cr_assert_leq(tw_wheel_next_deadline(&wheel), now);
	cr_assert_eq(advance(now), 4);	/* time did not move */
	for (i = 0; i < 4; i++)
		cr_assert_eq(fire_log[i], order[i]);
	free(fire_log);
}

Test(wheel, cancel_reports_whether_pending)
{
	struct probe p;

	start(0);
	probe_init(&p, 0);
	cr_assert_not(tw_timer_pending(&p.t));
	cr_assert_not(tw_timer_cancel(&wheel, &p.t));
	arm(&p, 5 * MS);
	cr_assert(tw_timer_pending(&p.t));
	cr_assert(tw_timer_cancel(&wheel, &p.t));
	cr_assert_not(tw_timer_pending(&p.t));
	cr_assert_not(tw_timer_cancel(&wheel, &p.t));
	arm(&p, 5 * MS);
	cr_assert_eq(advance(5 * MS), 1);
	cr_assert_not(tw_timer_cancel(&wheel, &p.t));
}

Test(wheel, cancelled_timer_never_fires)
{
	struct probe p[3];
	unsigned i;

	start(BASE);
	for (i = 0; i < 3; i++) {
		probe_init(&p[i], i);
		arm(&p[i], lvl_expiry(BASE, 2 * i));
	}
	cr_assert(tw_timer_cancel(&wheel, &p[1].t));
	cr_assert_eq(tw_wheel_pending(&wheel), 2);
	cr_assert_eq(advance(UINT64_MAX), 2);
	cr_assert_eq(p[1].fires, 0);
	cr_assert_eq(tw_wheel_pending(&wheel), 0);
}

Test(wheel, rearm_moves_the_timer)
{
	struct probe p;

	start(0);
	probe_init(&p, 0);
	arm(&p, 10 * MS);
	arm(&p, 500 * MS);	/* later */
	cr_assert_eq(tw_wheel_pending(&wheel), 1);
	cr_assert_eq(advance(499 * MS), 0);
	arm(&p, 700 * MS);
	arm(&p, 600 * MS);	/* earlier */
	cr_assert_eq(advance(599 * MS), 0);
	cr_assert_eq(advance(700 * MS), 1);
	cr_assert_eq(p.fired_at, 700 * MS);
	cr_assert_eq(p.prev_now, 599 * MS);
	cr_assert_eq(p.fires, 1);
}

static void cancel_other(struct probe *p)
{
	cr_assert(tw_timer_cancel(&wheel, &p->other->t));
}

Test(wheel, callback_cancels_later_timer_of_same_batch)
{
	struct probe a, b;

	start(0);
	probe_init(&a, 0);
	probe_init(&b, 1);
	a.then = cancel_other;
	a.other = &b;
	arm(&a, 5 * MS);
	arm(&b, 7 * MS);
	cr_assert_eq(advance(10 * MS), 1);
	cr_assert_eq(b.fires, 0);
	cr_assert_eq(tw_wheel_pending(&wheel), 0);
}

static void periodic(struct probe *p)
{
	arm(p, tw_timer_expires(&p->t) + p->period);
}

Test(wheel, callback_rearms_itself_each_period)
{
	struct probe p;
	uint64_t t, runs = 0;

	start(0);
	probe_init(&p, 0);
	p.then = periodic;
	p.period = 7 * MS + 300000;
	arm(&p, p.period);
	for (t = 1; t <= 2000; t++) {
		if (advance(t * MS)) {
			runs++;
			cr_assert_eq(p.fired_at, tick_up(runs * p.period), "run %lu", (unsigned long)runs);
		}
	}
	cr_assert_eq(runs, 2000 * MS / p.period);
	cr_assert_eq(p.fires, runs);
}

static void push_other_later(struct probe *p)
{
	arm(p->other, cur_now + 50 * MS);
}

/* gVisor's tcpip timer race: a reset arriving while the old expiry is being
 * delivered must win; the stale expiry must not run as well. */
Test(wheel, reset_racing_expiry_runs_once_at_new_time)
{
	struct probe a, b;

	start(0);
	probe_init(&a, 0);
	probe_init(&b, 1);
	a.then = push_other_later;
	a.other = &b;
	arm(&a, 5 * MS);
	arm(&b, 5 * MS);	/* same batch, after a */
	cr_assert_eq(advance(5 * MS), 1);
	cr_assert_eq(b.fires, 0);
	cr_assert(tw_timer_pending(&b.t));
	cr_assert_eq(advance(55 * MS - 1), 0);
	cr_assert_eq(advance(55 * MS), 1);
	cr_assert_eq(b.fires, 1);
	cr_assert_eq(b.fired_at, 55 * MS);
}

static void rearm_now(struct probe *p)
{
	arm(p, cur_now);
}

Test(wheel, rearm_at_or_before_now_runs_next_advance)
{
	struct probe p;

	start(0);
	probe_init(&p, 0);
	p.then = rearm_now;
	arm(&p, 10 * MS);
	cr_assert_eq(advance(10 * MS), 1);
	cr_assert(tw_timer_pending(&p.t));
	cr_assert_eq(advance(10 * MS), 1);
	cr_assert_eq(p.fires, 2);
}

static void arm_other_3ms_later(struct probe *p)
{
	probe_init(p->other, 1);
	arm(p->other, cur_now + 3 * MS);
}

Test(wheel, callback_arms_new_timer)
{
	struct probe a, b;

	start(0);
	probe_init(&a, 0);
	a.then = arm_other_3ms_later;
	a.other = &b;
	arm(&a, 4 * MS);
	cr_assert_eq(advance(4 * MS), 1);
	cr_assert_eq(advance(7 * MS - 1), 0);
	cr_assert_eq(advance(7 * MS), 1);
	cr_assert_eq(b.fired_at, 7 * MS);
}

/* tcpip's one-shot timeouts free their memory in their own callback. */
static void free_self(struct tw_timer *t)
{
	free(t);
}

Test(wheel, callback_may_free_its_timer)
{
	struct tw_timer *t = malloc(sizeof(*t));

	start(0);
	tw_timer_init(t, free_self);
	tw_timer_arm(&wheel, t, 1 * MS);
	cr_assert_eq(advance(1 * MS), 1);
	cr_assert_eq(tw_wheel_pending(&wheel), 0);
}

/* For timers armed in the future: it ran in the first advance at or after
 * its tick. */
static void check_on_time(struct probe *p)
{
	cr_assert_lt(p->prev_now, tick_up(tw_timer_expires(&p->t)), "timer %u late", p->id);
}

/* The earliest time at which a pending probe fires. */
static uint64_t true_next(const struct probe *p, size_t n)
{
	uint64_t min = UINT64_MAX;
	size_t i;

	for (i = 0; i < n; i++)
		if (tw_timer_pending(&p[i].t) && tick_up(tw_timer_expires(&p[i].t)) < min)
			min = tick_up(tw_timer_expires(&p[i].t));
	return min;
}

Test(wheel, next_deadline_is_never_late)
{
	enum { N = 500, ROUNDS = 20000 };
	struct probe *p = calloc(N, sizeof(*p));
	unsigned i, r;

	start(BASE);
	for (i = 0; i < N; i++) {
		probe_init(&p[i], i);
		p[i].then = check_on_time;
	}
	for (r = 0; r < ROUNDS; r++) {
		struct probe *q = &p[rnd(N)];
		uint64_t next, deadline;

		if (rnd(4))
			arm(q, cur_now + 1 + rnd((1ull << rnd(TW_WHEEL_BITS)) * MS));
		else
			tw_timer_cancel(&wheel, &q->t);
		next = true_next(p, N);
		deadline = tw_wheel_next_deadline(&wheel);
		cr_assert_leq(deadline, next, "round %u", r);
		cr_assert_gt(deadline, cur_now);
		/* Nothing fires before the deadline; then go to it or a bit past. */
		if (deadline != UINT64_MAX && r % 2)
			cr_assert_eq(advance(deadline - 1), 0, "round %u", r);
		else if (deadline != UINT64_MAX)
			advance(deadline + rnd(64 * MS));
	}
	free(p);
}

Test(wheel, next_deadline_hops_fire_every_timer_on_its_tick)
{
	unsigned l, wakeups = 0;

	start(BASE);
	arm_level_timers(BASE);
	while (tw_wheel_pending(&wheel)) {
		advance(tw_wheel_next_deadline(&wheel));
		wakeups++;
	}
	for (l = 0; l < TW_LEVELS; l++)
		cr_assert_eq(lvl[l].fired_at, tick_up(tw_timer_expires(&lvl[l].t)), "level %u", l);
	/* Level l's timer wakes the loop at most once per level it passes. */
	cr_assert_leq(wakeups, TW_LEVELS * (TW_LEVELS + 1) / 2);
}

Test(wheel, next_deadline_is_max_when_empty)
{
	struct probe p;

	start(0);
	cr_assert_eq(tw_wheel_next_deadline(&wheel), UINT64_MAX);
	probe_init(&p, 0);
	arm(&p, 3 * MS);
	cr_assert_eq(tw_wheel_next_deadline(&wheel), 3 * MS);
	tw_timer_cancel(&wheel, &p.t);
	cr_assert_eq(tw_wheel_next_deadline(&wheel), UINT64_MAX);
	arm(&p, 3 * MS);
	advance(3 * MS);
	cr_assert_eq(tw_wheel_next_deadline(&wheel), UINT64_MAX);
}

Test(wheel, idle_far_timer_wakes_rarely)
{
	uint64_t day = 86400000ull * MS;
	unsigned wakeups = 0;
	struct probe p;

	start(0);
	probe_init(&p, 0);
	arm(&p, day);
	cr_assert_gt(tw_wheel_next_deadline(&wheel), 3600000ull * MS);
	while (!p.fires) {
		advance(tw_wheel_next_deadline(&wheel));
		wakeups++;
	}
	cr_assert_leq(wakeups, TW_LEVELS);
	cr_assert_eq(p.fired_at, day);
}

Test(wheel, big_jump_visits_few_slots)
{
	static const uint64_t when[] = { 1000 * MS, 86400000ull * MS, 999999999ull * MS };
	struct probe p[3];
	unsigned i;

	start(0);
	for (i = 0; i < 3; i++) {
		probe_init(&p[i], i);
		arm(&p[i], when[i]);
	}
	cr_assert_eq(advance(1000000000ull * MS), 3);
	cr_assert_leq(wheel.slots_visited, 3 * TW_LEVELS);
}

Test(wheel, million_timers_armed_then_cancelled_leave_none)
{
	enum { N = 1000000 };
	struct probe *p = calloc(N, sizeof(*p));
	unsigned i;

	start(BASE);
	for (i = 0; i < N; i++) {
		probe_init(&p[i], i);
		arm(&p[i], i % 1000 ? BASE + rnd((1ull << rnd(TW_WHEEL_BITS)) * MS) : UINT64_MAX);
	}
	cr_assert_eq(tw_wheel_pending(&wheel), N);
	for (i = 0; i < N; i++)
		cr_assert(tw_timer_cancel(&wheel, &p[i].t));
	cr_assert_eq(tw_wheel_pending(&wheel), 0);
	cr_assert_eq(tw_wheel_next_deadline(&wheel), UINT64_MAX);
	cr_assert_eq(advance(UINT64_MAX), 0);
	free(p);
}
