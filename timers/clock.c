/* SPDX-License-Identifier: MIT */
/*
 * clock.c - the stack clock (clock.h): reads CLOCK_MONOTONIC, or a caller's
 * source, and keeps the offset and the frozen value that turn it into stack
 * time. All arithmetic on the offset is modulo 2^64, so stack time may be
 * set behind the source as well as ahead of it.
 */
#define _GNU_SOURCE

#include <time.h>

#include "clock.h"

#define NS_PER_SEC 1000000000ull

/**
 * tw_mono_ns() - CLOCK_MONOTONIC in ns: the process's own time, for
 * intervals that must not stop when a stack clock is frozen or rebased
 *
 * Return: nanoseconds; CLOCK_MONOTONIC cannot fail on Linux.
 */
uint64_t tw_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/**
 * tw_deadline_after() - the CLOCK_MONOTONIC time @ms from now, for
 * pthread_cond_timedwait() on a condition variable set to that clock
 * @ts: receives the time
 * @ms: milliseconds from now, >= 0
 */
void tw_deadline_after(struct timespec *ts, int64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static uint64_t monotonic_ns(void *arg)
{
	(void)arg;
	return tw_mono_ns();
}

/**
 * tw_clock_init() - start a clock on CLOCK_MONOTONIC, offset 0, running
 * @c: the clock
 */
void tw_clock_init(struct tw_clock *c)
{
	tw_clock_init_source(c, monotonic_ns, NULL);
}

/**
 * tw_clock_init_source() - start a clock on another monotonic source
 * @c: the clock
 * @mono: returns the source's time in ns; it must never go backwards
 * @arg: passed to every @mono call
 *
 * The clock starts running with offset 0: it reads what @mono returns.
 */
void tw_clock_init_source(struct tw_clock *c, uint64_t (*mono)(void *arg), void *arg)
{
	*c = (struct tw_clock){ .mono = mono, .arg = arg };
}

/**
 * tw_clock_now() - the stack time
 * @c: the clock
 *
 * Return: source + offset in ns, or the frozen value while @c is frozen.
 */
uint64_t tw_clock_now(const struct tw_clock *c)
{
	return c->frozen ? c->frozen_ns : c->mono(c->arg) + c->offset;
}

/**
 * tw_clock_freeze() - hold the stack time at its current value
 * @c: the clock; freezing a frozen clock keeps the value it holds
 *
 * Until tw_clock_thaw(), every read returns the value read here.
 */
void tw_clock_freeze(struct tw_clock *c)
{
	if (c->frozen)
		return;
	c->frozen_ns = tw_clock_now(c);
	c->frozen = true;
}

/**
 * tw_clock_thaw() - let a frozen clock run again from the value it holds
 * @c: the clock; thawing a running clock does nothing
 *
 * The offset absorbs the time the source moved meanwhile, so the clock does
 * not jump: the first read after thawing returns the frozen value plus only
 * what the source advanced since this call.
 */
void tw_clock_thaw(struct tw_clock *c)
{
	if (!c->frozen)
		return;
	c->frozen = false;
	tw_clock_set(c, c->frozen_ns);
}

/**
 * tw_clock_set() - make the clock read @now_ns from this instant
 * @c: the clock, frozen or running
 * @now_ns: the new stack time
 *
 * A running clock continues from @now_ns; a frozen one holds @now_ns and
 * continues from it once thawed. Restore uses this to resume stack time at
 * the value a checkpoint recorded.
 */
void tw_clock_set(struct tw_clock *c, uint64_t now_ns)
{
	if (c->frozen)
		c->frozen_ns = now_ns;
	else
		c->offset = now_ns - c->mono(c->arg);
}
