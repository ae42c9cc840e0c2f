/* SPDX-License-Identifier: MIT */
/*
 * clock.h - the stack clock: CLOCK_MONOTONIC plus an offset, in nanoseconds.
 * Every protocol time (sys_now(), the timer wheel, TCP timestamps) reads this
 * clock and nothing else. The offset lets restore make stack time continue
 * where a checkpoint stopped (tw_clock_set()), and freezing holds the time
 * still while the stack's state is being saved, so that no timer advances
 * between the snapshot of the clock and the snapshot of the timers; thawing
 * moves the offset so time resumes from the frozen value without a jump.
 *
 * The raw monotonic read goes through one function pointer, so tests (and
 * the stack's own test hooks) can drive the clock from a fake source.
 *
 * Threading: a clock has no lock of its own. The stack lock guards the
 * stack's clock; any other user must serialise every call on one clock.
 */
#ifndef NETSTACK_CLOCK_H
#define NETSTACK_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

struct tw_clock {
	uint64_t (*mono)(void *arg);	/* the monotonic source, in ns */
	void *arg;			/* passed to @mono */
	/* Stack time = mono + offset, modulo 2^64: an offset "below zero"
	 * (stack time behind the source) is stored as its two's complement. */
	uint64_t offset;
	uint64_t frozen_ns;		/* what reads return while frozen */
	bool frozen;
};

uint64_t tw_mono_ns(void);
struct timespec;
void tw_deadline_after(struct timespec *ts, int64_t ms);
void tw_clock_init(struct tw_clock *c);
void tw_clock_init_source(struct tw_clock *c, uint64_t (*mono)(void *arg), void *arg);
uint64_t tw_clock_now(const struct tw_clock *c);
void tw_clock_freeze(struct tw_clock *c);
void tw_clock_thaw(struct tw_clock *c);
void tw_clock_set(struct tw_clock *c, uint64_t now_ns);

#endif
