/* SPDX-License-Identifier: MIT */
/*
 * bench_timers.c - the `timers` scenario of netstack-bench: netstack's timer
 * wheel (timers/wheel.h, "wheel") against lwIP's stock sorted-list
 * timeouts built from the same lwIP source ("lwip", tools/lwip_stock_timers.h).
 * It owns the two measurements and their targets:
 *
 * (a) throughput of arm+cancel and of arm+expire while N = 1k, 10k, 100k
 *     and 1M other timers are pending. Both structures run on fake clocks
 *     the scenario advances itself; the timing clock is CLOCK_MONOTONIC.
 *     Each measurement runs for a time budget or OPS_MAX operations,
 *     whichever comes first, so lwIP's O(N) insert still finishes at 1M,
 *     split into ROUNDS rounds of which the median counts.
 *     Target: the wheel's cost per operation at 1M pending is within
 *     RATIO_TARGET of its cost at 1k.
 * (b) the CPU that 1,000 periodic 10 ms timers cost on the wheel in a real
 *     loop that sleeps until the wheel's next deadline (gVisor's workload,
 *     31% -> 4% CPU there). Target: under CPU_TARGET_PERCENT, and no drift:
 *     every timer fires once per interval.
 *
 * "N pending" means N timers armed at random, uniformly 1 s..60 s beyond
 * the furthest fake time an arm+expire run can reach (HORIZON_NS), so none
 * of them fires or moves while an operation is measured; arm+cancel arms
 * into the same range. lwIP's list is filled latest first (head inserts).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"
#include "clock.h"
#include "lwip_stock_timers.h"
#include "wheel.h"

#define SCENARIO "timers"

#define NS_PER_US 1000ull
#define NS_PER_MS 1000000ull
#define NS_PER_SEC 1000000000ull

/* (a) */
static const size_t pending_sizes[] = { 1000, 10000, 100000, 1000000 };
#define PENDING_COUNT (sizeof(pending_sizes) / sizeof(pending_sizes[0]))
#define BUDGET_NS (300 * NS_PER_MS)
#define QUICK_BUDGET_NS (50 * NS_PER_MS)
#define OPS_MAX (1u << 22)
#define WARMUP_OPS 64u
#define ROUNDS 5u		/* per measurement; the median counts */
#define BATCH_MAX 65536u
#define SPREAD_MIN_NS (1 * NS_PER_SEC)
#define SPREAD_MAX_NS (60 * NS_PER_SEC)
/* lwIP's clock counts ms, and so does the wheel's tick (checked below):
 * every arm+expire advances the fake clock by one such tick. */
#define STOCK_TICK_NS NS_PER_MS
#define RUN_TICKS ((uint64_t)OPS_MAX + WARMUP_OPS)
/* Pending timers must stay out of the way of a whole arm+expire run: not
 * fire, and on the wheel not even cascade, which happens when the wheel's
 * clock reaches the start of the slot that holds them. They lie on level
 * FILL_LEVEL (64^3 .. 64^4 ticks ahead, wheel.h), so they start one slot
 * of that level, 64^3 ticks (~4.4 min), past the furthest tick a run
 * reaches. */
#define FILL_LEVEL 3u
#define FILL_SLOT_TICKS (1ull << (FILL_LEVEL * TW_LVL_BITS))
#define HORIZON_NS ((RUN_TICKS + FILL_SLOT_TICKS) * STOCK_TICK_NS)
/* Random expiries, drawn once and cycled through by arm+cancel. */
#define RANDOM_BITS 16
#define RANDOM_COUNT (1u << RANDOM_BITS)
#define RATIO_TARGET 1.2

/* (b) */
#define PERIODIC_TIMERS 1000u
#define PERIODIC_INTERVAL_NS (10 * NS_PER_MS)
#define PERIODIC_SECONDS 5u
#define QUICK_PERIODIC_SECONDS 1u
#define CPU_TARGET_PERCENT 1.0
/* Fires per timer may be one off the ideal count: a timer due in the last
 * tick before the end may fire at the end or just after it. */
#define FIRES_SLACK 1u

static_assert(TW_TICK_NS == STOCK_TICK_NS, "one tick per arm+expire on both sides");
static_assert((HORIZON_NS + SPREAD_MIN_NS) / TW_TICK_NS >= FILL_SLOT_TICKS &&
	      (HORIZON_NS + SPREAD_MAX_NS) / TW_TICK_NS < FILL_SLOT_TICKS << TW_LVL_BITS,
	      "pending timers lie on the wheel's level FILL_LEVEL");
static_assert((HORIZON_NS + SPREAD_MAX_NS) / STOCK_TICK_NS <= UINT32_MAX / 4,
	      "lwIP's sys_timeout() takes at most UINT32_MAX / 4 ms");

enum impl { IMPL_WHEEL, IMPL_LWIP, IMPL_COUNT };
enum op { OP_ARM_CANCEL, OP_ARM_EXPIRE, OP_COUNT };

static const char *const impl_names[] = { [IMPL_WHEEL] = "wheel", [IMPL_LWIP] = "lwip" };
static const char *const op_names[] = {
	[OP_ARM_CANCEL] = "arm_cancel",
	[OP_ARM_EXPIRE] = "arm_expire",
};
static_assert(sizeof(impl_names) / sizeof(impl_names[0]) == IMPL_COUNT, "impl_names");
static_assert(sizeof(op_names) / sizeof(op_names[0]) == OP_COUNT, "op_names");

struct opts {
	bool json;
	bool quick;
};

/* One throughput measurement: its median round, and all it ran. */
struct result {
	uint64_t ops;
	uint64_t ns;
	uint64_t total_ops;
};

/* The periodic workload's outcome. */
struct periodic_result {
	unsigned seconds;
	uint64_t wall_ns;
	uint64_t cpu_ns;
	uint64_t fires;
	uint64_t wakeups;
	uint64_t advance_ns;	/* of the wall time, spent in tw_wheel_advance() */
	unsigned fires_min, fires_max;
	uint64_t late_max_ns;
};

/* ------------------------------------------------------------------ */
/* Random numbers: splitmix64, seeded the same every run.              */
/* ------------------------------------------------------------------ */

static uint64_t rng_state = 0x6e657473746b2121ull;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi); the modulo bias is far below what we measure. */
static uint64_t rng_range(uint64_t lo, uint64_t hi)
{
	return lo + rng_next() % (hi - lo);
}

/* How far ahead a pending (or arm+cancel) timer expires, in ns and in the
 * whole ms that lwIP's sys_timeout() takes; both index the same draws. */
static uint64_t ahead_ns[RANDOM_COUNT];
static uint32_t ahead_ms[RANDOM_COUNT];
static unsigned ahead_next;

static uint64_t draw_ahead_ns(void)
{
	return HORIZON_NS + rng_range(SPREAD_MIN_NS, SPREAD_MAX_NS);
}

static void ahead_fill(void)
{
	for (unsigned i = 0; i < RANDOM_COUNT; i++) {
		ahead_ns[i] = draw_ahead_ns();
		ahead_ms[i] = (uint32_t)(ahead_ns[i] / NS_PER_MS);
	}
}

/* ------------------------------------------------------------------ */
/* Fires: counted, so a run that fired the wrong timers is refused.    */
/* ------------------------------------------------------------------ */

static uint64_t probe_fires;	/* the measured timer */
static uint64_t pending_fires;	/* pending timers: must stay 0 while measuring */

/* ------------------------------------------------------------------ */
/* The wheel                                                           */
/* ------------------------------------------------------------------ */

static struct tw_wheel wheel;
static uint64_t wheel_now;	/* the wheel's fake clock, ns */
static struct tw_timer wheel_probe;
static struct tw_timer *wheel_pending;
static size_t wheel_pending_count;

static void wheel_probe_fire(struct tw_timer *t)
{
	(void)t;
	probe_fires++;
}

static void wheel_pending_fire(struct tw_timer *t)
{
	(void)t;
	pending_fires++;
}

static int wheel_populate(size_t n)
{
	wheel_pending = calloc(n, sizeof(*wheel_pending));
	if (!wheel_pending)
		return -ENOMEM;
	wheel_pending_count = n;
	tw_wheel_init(&wheel, wheel_now);
	tw_timer_init(&wheel_probe, wheel_probe_fire);
	for (size_t i = 0; i < n; i++) {
		tw_timer_init(&wheel_pending[i], wheel_pending_fire);
		tw_timer_arm(&wheel, &wheel_pending[i], wheel_now + draw_ahead_ns());
	}
	return 0;
}

/* Returns how many of the pending timers were still pending. */
static size_t wheel_drain(void)
{
	size_t n = 0;

	for (size_t i = 0; i < wheel_pending_count; i++)
		n += tw_timer_cancel(&wheel, &wheel_pending[i]);
	free(wheel_pending);
	wheel_pending = NULL;
	wheel_pending_count = 0;
	return n;
}

static void wheel_arm_cancel(uint64_t ops)
{
	for (uint64_t i = 0; i < ops; i++) {
		tw_timer_arm(&wheel, &wheel_probe, wheel_now + ahead_ns[ahead_next++ % RANDOM_COUNT]);
		tw_timer_cancel(&wheel, &wheel_probe);
	}
}

static void wheel_arm_expire(uint64_t ops)
{
	for (uint64_t i = 0; i < ops; i++) {
		tw_timer_arm(&wheel, &wheel_probe, wheel_now + TW_TICK_NS);
		wheel_now += TW_TICK_NS;
		tw_wheel_advance(&wheel, wheel_now);
	}
}

/* ------------------------------------------------------------------ */
/* lwIP's stock timeouts                                               */
/* ------------------------------------------------------------------ */

static uint32_t stock_now;	/* lwIP's fake clock, ms */

/**
 * stock_sys_now() - the clock of lwIP's stock timeouts (its sys_now())
 *
 * A fake one, in ms, that the arm+expire run advances by one per operation.
 *
 * Return: the fake time in ms.
 */
uint32_t stock_sys_now(void)
{
	return stock_now;
}

static void stock_probe_fire(void *arg)
{
	(void)arg;
	probe_fires++;
}

static void stock_pending_fire(void *arg)
{
	(void)arg;
	pending_fires++;
}

static int cmp_desc_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x < y) - (x > y);
}

static int stock_populate(size_t n)
{
	static bool ready;
	uint32_t *ms = malloc(n * sizeof(*ms));

	if (!ms)
		return -ENOMEM;
	if (!ready) {
		stock_mem_init();
		stock_memp_init();
		stock_sys_timeouts_init();
		ready = true;
	}
	for (size_t i = 0; i < n; i++)
		ms[i] = (uint32_t)(draw_ahead_ns() / NS_PER_MS);
	/* Latest first: each insert lands at the head of lwIP's sorted list,
	 * so setting up costs O(N), not O(N^2). */
	qsort(ms, n, sizeof(*ms), cmp_desc_u32);
	for (size_t i = 0; i < n; i++)
		stock_sys_timeout(ms[i], stock_pending_fire, NULL);
	free(ms);
	return 0;
}

/* lwIP cannot cancel "all": let every pending timer expire, which frees
 * them. Returns how many there were. */
static size_t stock_drain(void)
{
	size_t n;

	stock_now += (uint32_t)((HORIZON_NS + SPREAD_MAX_NS) / NS_PER_MS) + 1;
	stock_sys_check_timeouts();
	n = (size_t)pending_fires;
	pending_fires = 0;
	return n;
}

static void stock_arm_cancel(uint64_t ops)
{
	for (uint64_t i = 0; i < ops; i++) {
		stock_sys_timeout(ahead_ms[ahead_next++ % RANDOM_COUNT], stock_probe_fire, NULL);
		stock_sys_untimeout(stock_probe_fire, NULL);
	}
}

static void stock_arm_expire(uint64_t ops)
{
	for (uint64_t i = 0; i < ops; i++) {
		stock_sys_timeout(1, stock_probe_fire, NULL);
		stock_now++;
		stock_sys_check_timeouts();
	}
}

/* ------------------------------------------------------------------ */
/* (a) Throughput                                                      */
/* ------------------------------------------------------------------ */

struct impl_ops {
	int (*populate)(size_t n);
	size_t (*drain)(void);
	void (*op[OP_COUNT])(uint64_t ops);
};

static const struct impl_ops impls[IMPL_COUNT] = {
	[IMPL_WHEEL] = { wheel_populate, wheel_drain, { wheel_arm_cancel, wheel_arm_expire } },
	[IMPL_LWIP] = { stock_populate, stock_drain, { stock_arm_cancel, stock_arm_expire } },
};

static double ops_per_sec(const struct result *r)
{
	return (double)r->ops * (double)NS_PER_SEC / (double)r->ns;
}

static double ns_per_op(const struct result *r)
{
	return (double)r->ns / (double)r->ops;
}

/*
 * Run @run in batches until @budget_ns has passed or @ops_max operations
 * are done. Each batch is sized from the rate so far to take about an
 * eighth of the remaining budget, so the clock is read rarely when
 * operations are cheap, and a slow structure overshoots the budget by
 * little.
 */
static struct result measure_round(void (*run)(uint64_t ops), uint64_t budget_ns, uint64_t ops_max)
{
	struct result r = { 0, 0, 0 };
	uint64_t start = bench_now_ns(), batch = 1;

	while (r.ops < ops_max && r.ns < budget_ns) {
		if (batch > ops_max - r.ops)
			batch = ops_max - r.ops;
		run(batch);
		r.ops += batch;
		r.ns = bench_now_ns() - start;
		if (r.ns && r.ns < budget_ns)
			batch = r.ops * (budget_ns - r.ns) / r.ns / 8;
		if (batch < 1)
			batch = 1;
		else if (batch > BATCH_MAX)
			batch = BATCH_MAX;
	}
	if (!r.ns)
		r.ns = 1;
	return r;
}

static int cmp_ns_per_op(const void *a, const void *b)
{
	double x = ns_per_op(a), y = ns_per_op(b);

	return (x > y) - (x < y);
}

/*
 * Measure @run in ROUNDS rounds that share the budget and OPS_MAX, and
 * keep the median round: another process on the machine slows whole
 * rounds (by 2x on a shared 2-core VM), and the median ignores a minority
 * of them where a mean would not. The result's total_ops counts every
 * operation run, warm-up aside.
 */
static struct result measure(void (*run)(uint64_t ops), uint64_t budget_ns)
{
	struct result rounds[ROUNDS], median;
	uint64_t total = 0;

	run(WARMUP_OPS);
	for (unsigned i = 0; i < ROUNDS; i++) {
		rounds[i] = measure_round(run, budget_ns / ROUNDS, OPS_MAX / ROUNDS);
		total += rounds[i].ops;
	}
	qsort(rounds, ROUNDS, sizeof(rounds[0]), cmp_ns_per_op);
	median = rounds[ROUNDS / 2];
	median.total_ops = total;
	return median;
}

static int run_throughput(const struct opts *o, struct result res[IMPL_COUNT][OP_COUNT][PENDING_COUNT])
{
	uint64_t budget = o->quick ? QUICK_BUDGET_NS : BUDGET_NS;
	size_t left;

	ahead_fill();
	for (size_t p = 0; p < PENDING_COUNT; p++) {
		for (int i = 0; i < IMPL_COUNT; i++) {
			int err = impls[i].populate(pending_sizes[p]);

			if (err)
				return bench_fail(BENCH_EXIT_RUNTIME, SCENARIO, "%s with %zu pending: %s",
						  impl_names[i], pending_sizes[p], strerror(-err));
			for (int op = 0; op < OP_COUNT; op++) {
				struct result *r = &res[i][op][p];
				uint64_t expect;

				probe_fires = 0;
				*r = measure(impls[i].op[op], budget);
				expect = op == OP_ARM_EXPIRE ? r->total_ops + WARMUP_OPS : 0;
				if (pending_fires || probe_fires != expect)
					return bench_fail(BENCH_EXIT_RUNTIME, SCENARIO,
							  "%s %s with %zu pending: %llu pending and %llu measured timers fired, expected 0 and %llu",
							  impl_names[i], op_names[op], pending_sizes[p],
							  (unsigned long long)pending_fires,
							  (unsigned long long)probe_fires,
							  (unsigned long long)expect);
			}
			left = impls[i].drain();
			if (left != pending_sizes[p])
				return bench_fail(BENCH_EXIT_RUNTIME, SCENARIO,
						  "%s: %zu of %zu timers were still pending at the end",
						  impl_names[i], left, pending_sizes[p]);
		}
	}
	return BENCH_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* (b) Periodic timers in a real loop                                  */
/* ------------------------------------------------------------------ */

struct periodic {
	struct tw_timer t;	/* first: the callback casts back */
	unsigned fires;
};
static_assert(offsetof(struct periodic, t) == 0, "struct periodic casts from its timer");

static uint64_t periodic_now;
static uint64_t periodic_late_max;

/* Fire, and re-arm at the previous due time plus the interval: no drift
 * however late this wakeup was. */
static void periodic_fire(struct tw_timer *t)
{
	struct periodic *p = (struct periodic *)t;
	uint64_t due = tw_timer_expires(t);

	if (periodic_now - due > periodic_late_max)
		periodic_late_max = periodic_now - due;
	p->fires++;
	tw_timer_arm(&wheel, t, due + PERIODIC_INTERVAL_NS);
}

static uint64_t timeval_ns(const struct timeval *tv)
{
	return (uint64_t)tv->tv_sec * NS_PER_SEC + (uint64_t)tv->tv_usec * NS_PER_US;
}

static uint64_t cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return timeval_ns(&ru.ru_utime) + timeval_ns(&ru.ru_stime);
}

static int sleep_until(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / NS_PER_SEC), .tv_nsec = (long)(ns % NS_PER_SEC) };
	int err;

	while ((err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR)
		;
	return -err;
}

static int run_periodic(const struct opts *o, struct periodic_result *res)
{
	struct periodic *timers = calloc(PERIODIC_TIMERS, sizeof(*timers));
	struct tw_clock clock;
	uint64_t start, end, cpu0;
	int err = 0;

	if (!timers)
		return bench_fail(BENCH_EXIT_RUNTIME, SCENARIO, "periodic: %s", strerror(ENOMEM));
	memset(res, 0, sizeof(*res));
	res->seconds = o->quick ? QUICK_PERIODIC_SECONDS : PERIODIC_SECONDS;
	/* Offset 0: stack time is CLOCK_MONOTONIC, so the wheel's deadlines
	 * are absolute CLOCK_MONOTONIC times to sleep until. */
	tw_clock_init(&clock);
	start = tw_clock_now(&clock);
	end = start + res->seconds * NS_PER_SEC;
	tw_wheel_init(&wheel, start);
	for (unsigned i = 0; i < PERIODIC_TIMERS; i++) {
		tw_timer_init(&timers[i].t, periodic_fire);
		tw_timer_arm(&wheel, &timers[i].t, start + rng_range(0, PERIODIC_INTERVAL_NS));
	}

	cpu0 = cpu_ns();
	periodic_now = start;
	while (periodic_now < end) {
		/* Sleep as the stack's dispatcher does (coalesced wakeups). */
		uint64_t next = tw_wakeup_time(tw_wheel_next_deadline(&wheel));

		err = sleep_until(next < end ? next : end);
		if (err)
			break;
		periodic_now = tw_clock_now(&clock);
		res->fires += tw_wheel_advance(&wheel, periodic_now);
		res->advance_ns += tw_clock_now(&clock) - periodic_now;
		res->wakeups++;
	}
	res->cpu_ns = cpu_ns() - cpu0;
	res->wall_ns = periodic_now - start;
	res->late_max_ns = periodic_late_max;

	res->fires_min = UINT32_MAX;
	for (unsigned i = 0; i < PERIODIC_TIMERS; i++) {
		if (timers[i].fires < res->fires_min)
			res->fires_min = timers[i].fires;
		if (timers[i].fires > res->fires_max)
			res->fires_max = timers[i].fires;
		tw_timer_cancel(&wheel, &timers[i].t);
	}
	free(timers);
	if (err)
		return bench_fail(BENCH_EXIT_RUNTIME, SCENARIO, "periodic: clock_nanosleep: %s", strerror(-err));
	return BENCH_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

/* "12.3 M", "456 k", "789": ops/s at a glance. */
static void print_rate(FILE *f, double v)
{
	if (v >= 1e6)
		fprintf(f, " %9.2f M", v / 1e6);
	else if (v >= 1e3)
		fprintf(f, " %9.2f k", v / 1e3);
	else
		fprintf(f, " %9.1f  ", v);
}

static double periodic_cpu_percent(const struct periodic_result *pr)
{
	return (double)pr->cpu_ns * 100.0 / (double)pr->wall_ns;
}

static double periodic_fires_per_sec(const struct periodic_result *pr)
{
	return (double)pr->fires * NS_PER_SEC / (double)pr->wall_ns;
}

static double wheel_ratio(struct result res[IMPL_COUNT][OP_COUNT][PENDING_COUNT], int op)
{
	return ns_per_op(&res[IMPL_WHEEL][op][PENDING_COUNT - 1]) / ns_per_op(&res[IMPL_WHEEL][op][0]);
}

static void print_table(FILE *f, const struct opts *o,
			struct result res[IMPL_COUNT][OP_COUNT][PENDING_COUNT],
			const struct periodic_result *pr)
{
	unsigned expect = (unsigned)(pr->seconds * NS_PER_SEC / PERIODIC_INTERVAL_NS);
	double cpu = periodic_cpu_percent(pr);
	bool drift_ok = pr->fires_min + FIRES_SLACK >= expect && pr->fires_max <= expect + FIRES_SLACK;

	fprintf(f, "timers: each measurement %.2f s or %u ops in %u rounds, the median shown;\n"
		"pending timers expire 1..60 s after %.0f s of fake time, beyond any run's reach\n\n",
		(double)(o->quick ? QUICK_BUDGET_NS : BUDGET_NS) / NS_PER_SEC, OPS_MAX, ROUNDS,
		(double)HORIZON_NS / NS_PER_SEC);
	fprintf(f, "%-10s %8s %13s %11s %13s %11s %11s\n", "op", "pending", "wheel ops/s",
		"wheel ns/op", "lwip ops/s", "lwip ns/op", "lwip/wheel");
	for (int op = 0; op < OP_COUNT; op++) {
		for (size_t p = 0; p < PENDING_COUNT; p++) {
			const struct result *w = &res[IMPL_WHEEL][op][p], *l = &res[IMPL_LWIP][op][p];

			fprintf(f, "%-10s %8zu ", op_names[op], pending_sizes[p]);
			print_rate(f, ops_per_sec(w));
			fprintf(f, " %11.1f ", ns_per_op(w));
			print_rate(f, ops_per_sec(l));
			fprintf(f, " %11.1f %10.1fx\n", ns_per_op(l), ns_per_op(l) / ns_per_op(w));
		}
	}
	fprintf(f, "\nperiodic: wheel, %u timers every %llu ms for %u s in a sleep/advance loop:\n"
		"  %.2f%% CPU (%.1f ms over %.3f s), %.0f fires/s, %llu wakeups at %.1f us CPU each,\n"
		"  %.1f us of which in tw_wheel_advance(); fires per timer %u..%u (ideal %u);\n"
		"  latest fire %.3f ms after its due time\n\n",
		PERIODIC_TIMERS, PERIODIC_INTERVAL_NS / NS_PER_MS, pr->seconds,
		cpu, (double)pr->cpu_ns / NS_PER_MS, (double)pr->wall_ns / NS_PER_SEC,
		periodic_fires_per_sec(pr), (unsigned long long)pr->wakeups,
		(double)pr->cpu_ns / NS_PER_US / (double)pr->wakeups,
		(double)pr->advance_ns / NS_PER_US / (double)pr->wakeups,
		pr->fires_min, pr->fires_max, expect, (double)pr->late_max_ns / NS_PER_MS);

	for (int op = 0; op < OP_COUNT; op++)
		fprintf(f, "%s  wheel %s: %.1f ns/op at %zu pending, %.2fx its cost at %zu (target <= %.1fx)\n",
			wheel_ratio(res, op) <= RATIO_TARGET ? "PASS" : "MISS", op_names[op],
			ns_per_op(&res[IMPL_WHEEL][op][PENDING_COUNT - 1]), pending_sizes[PENDING_COUNT - 1],
			wheel_ratio(res, op), pending_sizes[0], RATIO_TARGET);
	fprintf(f, "%s  periodic: %.2f%% CPU (target < %.0f%%)\n",
		cpu < CPU_TARGET_PERCENT ? "PASS" : "MISS", cpu, CPU_TARGET_PERCENT);
	fprintf(f, "%s  periodic: no drift, every timer fired %u..%u times (target %u +- %u)\n",
		drift_ok ? "PASS" : "MISS", pr->fires_min, pr->fires_max, expect, FIRES_SLACK);
}

static void print_json(struct result res[IMPL_COUNT][OP_COUNT][PENDING_COUNT],
		       const struct periodic_result *pr)
{
	for (int i = 0; i < IMPL_COUNT; i++)
		for (int op = 0; op < OP_COUNT; op++)
			for (size_t p = 0; p < PENDING_COUNT; p++)
				printf("{\"scenario\":\"%s\",\"impl\":\"%s\",\"op\":\"%s\",\"pending\":%zu,"
				       "\"ops_per_sec\":%.1f,\"ns_per_op\":%.2f,\"ops\":%llu,\"rounds\":%u}\n",
				       SCENARIO, impl_names[i], op_names[op], pending_sizes[p],
				       ops_per_sec(&res[i][op][p]), ns_per_op(&res[i][op][p]),
				       (unsigned long long)res[i][op][p].total_ops, ROUNDS);
	printf("{\"scenario\":\"%s\",\"impl\":\"wheel\",\"op\":\"periodic\",\"pending\":%u,"
	       "\"ops_per_sec\":%.1f,\"cpu_percent\":%.3f,\"timers\":%u,\"interval_ms\":%llu,"
	       "\"seconds\":%u,\"wakeups\":%llu,\"advance_us_per_wakeup\":%.2f,"
	       "\"fires_min\":%u,\"fires_max\":%u,\"late_max_ms\":%.3f}\n",
	       SCENARIO, PERIODIC_TIMERS, periodic_fires_per_sec(pr), periodic_cpu_percent(pr),
	       PERIODIC_TIMERS, PERIODIC_INTERVAL_NS / NS_PER_MS, pr->seconds,
	       (unsigned long long)pr->wakeups, (double)pr->advance_ns / NS_PER_US / (double)pr->wakeups,
	       pr->fires_min, pr->fires_max, (double)pr->late_max_ns / NS_PER_MS);
}

/* ------------------------------------------------------------------ */
/* Entry                                                               */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s " SCENARIO " [--json] [--quick]\n"
		"\n"
		"Timer throughput of netstack's wheel (\"wheel\") and of lwIP's stock\n"
		"sorted-list timeouts (\"lwip\"): arm+cancel and arm+expire with 1k, 10k,\n"
		"100k and 1M other timers pending, %.2f s or %u operations each (the\n"
		"median of %u rounds); then the CPU that %u periodic %llu ms timers cost\n"
		"on the wheel over %u s, in a loop that sleeps until the next deadline.\n"
		"Targets, reported as PASS or MISS lines: the wheel's cost per operation\n"
		"at 1M pending within %.1fx of its cost at 1k; the periodic timers under\n"
		"%.0f%% CPU, each firing once per interval.\n"
		"\n"
		"Flags:\n"
		"  --json   one JSON object per measurement per line on stdout\n"
		"           (fields scenario, impl, op, pending, ops_per_sec, ...);\n"
		"           the table goes to stderr\n"
		"  --quick  %.2f s per measurement and %u s of periodic timers\n"
		"  --help   print this help and exit\n",
		BENCH_PROG, (double)BUDGET_NS / NS_PER_SEC, OPS_MAX, ROUNDS, PERIODIC_TIMERS,
		PERIODIC_INTERVAL_NS / NS_PER_MS, PERIODIC_SECONDS, RATIO_TARGET, CPU_TARGET_PERCENT,
		(double)QUICK_BUDGET_NS / NS_PER_SEC, QUICK_PERIODIC_SECONDS);
}

/**
 * bench_timers_main() - `netstack-bench timers [--json] [--quick]`
 * @argc:	argument count, argv[0] being "timers"
 * @argv:	the scenario's name and its options
 *
 * Return: BENCH_EXIT_OK when it ran, whatever its targets;
 * BENCH_EXIT_USAGE on a bad option; BENCH_EXIT_RUNTIME if it could not run
 * or a structure fired the wrong timers.
 */
int bench_timers_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct result res[IMPL_COUNT][OP_COUNT][PENDING_COUNT];
	struct periodic_result pr;
	struct opts o = { false, false };
	int c, rc;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o.json = true;
			break;
		case 'q':
			o.quick = true;
			break;
		case 'h':
			usage(stdout);
			return BENCH_EXIT_OK;
		default:
			return bench_fail(BENCH_EXIT_USAGE, SCENARIO, "unknown option '%s' (try --help)",
					  argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bench_fail(BENCH_EXIT_USAGE, SCENARIO, "unexpected argument '%s' (try --help)",
				  argv[optind]);

	rc = run_throughput(&o, res);
	if (rc)
		return rc;
	rc = run_periodic(&o, &pr);
	if (rc)
		return rc;
	print_table(bench_table_file(o.json), &o, res, &pr);
	if (o.json)
		print_json(res, &pr);
	return BENCH_EXIT_OK;
}
