/* SPDX-License-Identifier: MIT */
/*
 * timers.c - the timer seam: lwIP's notion of time (sys_now) and the only
 * place that runs its timeouts. Everything that schedules or fires a
 * protocol timer goes through this file, so the timer wheel can replace
 * lwIP's sorted timeout list here without touching the rest of the stack.
 */
#include <time.h>

#include "lwip/sys.h"
#include "lwip/timeouts.h"
#include "tcpip.h"

u32_t sys_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

void tcpip_timers_run(void)
{
	sys_check_timeouts();
}

int tcpip_timers_next_ms(void)
{
	u32_t ms = sys_timeouts_sleeptime();

	if (ms == SYS_TIMEOUTS_SLEEPTIME_INFINITE)
		return -1;
	return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}
