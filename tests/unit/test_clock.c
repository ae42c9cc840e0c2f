/* SPDX-License-Identifier: MIT */
/*
 * test_clock.c - unit tests of the stack clock (timers/clock.c): on a fake
 * monotonic source the tests move by hand, the offset (running, set ahead
 * of and behind the source), freezing, thawing without a jump, and setting
 * a frozen clock; on the real source, that it reads CLOCK_MONOTONIC.
 */
#define _GNU_SOURCE

#include <criterion/criterion.h>
#include <time.h>

#include "clock.h"

static uint64_t fake_ns;

static uint64_t fake(void *arg)
{
	return *(const uint64_t *)arg;
}

static struct tw_clock clk;

static void start(uint64_t mono)
{
	fake_ns = mono;
	tw_clock_init_source(&clk, fake, &fake_ns);
}

Test(clock, starts_at_the_source)
{
	start(1000);
	cr_assert_eq(tw_clock_now(&clk), 1000);
}

Test(clock, follows_the_source)
{
	start(1000);
	fake_ns += 250;
	cr_assert_eq(tw_clock_now(&clk), 1250);
}

Test(clock, freeze_holds_the_value)
{
	start(1000);
	tw_clock_freeze(&clk);
	fake_ns += 500;
	cr_assert_eq(tw_clock_now(&clk), 1000);
}

Test(clock, freezing_twice_keeps_the_first_value)
{
	start(1000);
	tw_clock_freeze(&clk);
	fake_ns += 500;
	tw_clock_freeze(&clk);
	cr_assert_eq(tw_clock_now(&clk), 1000);
}

Test(clock, thaw_continues_without_a_jump)
{
	start(1000);
	tw_clock_freeze(&clk);
	fake_ns += 500;
	tw_clock_thaw(&clk);
	cr_assert_eq(tw_clock_now(&clk), 1000);
	fake_ns += 10;
	cr_assert_eq(tw_clock_now(&clk), 1010);
}

Test(clock, thaw_of_a_running_clock_changes_nothing)
{
	start(1000);
	tw_clock_set(&clk, 7000);
	fake_ns += 500;
	tw_clock_thaw(&clk);
	cr_assert_eq(tw_clock_now(&clk), 7500);
}

Test(clock, set_moves_the_value_and_time_continues)
{
	start(1000);
	tw_clock_set(&clk, 5000000);
	cr_assert_eq(tw_clock_now(&clk), 5000000);
	fake_ns += 7;
	cr_assert_eq(tw_clock_now(&clk), 5000007);
}

Test(clock, set_behind_the_source)
{
	start(1000000000000ull);
	tw_clock_set(&clk, 5);
	cr_assert_eq(tw_clock_now(&clk), 5);
	fake_ns += 3;
	cr_assert_eq(tw_clock_now(&clk), 8);
}

Test(clock, set_while_frozen_holds_then_continues)
{
	start(1000);
	tw_clock_freeze(&clk);
	tw_clock_set(&clk, 9000);
	fake_ns += 500;
	cr_assert_eq(tw_clock_now(&clk), 9000);
	tw_clock_thaw(&clk);
	fake_ns += 20;
	cr_assert_eq(tw_clock_now(&clk), 9020);
}

static uint64_t monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

Test(clock, init_reads_clock_monotonic)
{
	uint64_t before, now;

	tw_clock_init(&clk);
	before = monotonic();
	now = tw_clock_now(&clk);
	cr_assert_leq(before, now);
	cr_assert_leq(now, monotonic());
}
