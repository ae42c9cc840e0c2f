/* SPDX-License-Identifier: MIT */
/*
 * timers.c - the timer seam: every lwIP timer on the stack's timer wheel
 * (LWIP_TIMERS_CUSTOM). Owns the stack clock (CLOCK_MONOTONIC + offset, in
 * ns; sys_now() reads it), the wheel, lwIP's cyclic timers, its on-demand
 * TCP timer, and one-shot sys_timeout()s.
 *
 * Cyclic timers are re-armed at their previous due time plus their
 * interval, not at "now + interval", so the 250 ms TCP timer and the others
 * never drift however late a wakeup is; a timer that fell more than a whole
 * interval behind (the process was stopped) restarts from now instead of
 * firing a burst. The TCP timer runs only while lwIP has active or
 * TIME-WAIT pcbs, so an idle stack with any number of listeners sleeps.
 *
 * All of it runs under the stack lock.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "lwip/priv/tcp_priv.h"
#include "lwip/sys.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "clock.h"
#include "tcpip.h"
#include "wheel.h"

#define NS_PER_MS 1000000ull
#define CYCLIC_MAX 16

static struct tw_clock stack_clock;
static struct tw_wheel wheel;

/* One of lwIP's cyclic timers (ARP, reassembly, ND6, MLD; TCP on demand). */
struct cyclic {
	struct tw_timer t;
	const struct lwip_cyclic_timer *def;
};

static struct cyclic cyclic[CYCLIC_MAX];
#define TCP_CYCLIC (&cyclic[0])	/* lwip_cyclic_timers[0] is tcp_tmr */

/* A one-shot sys_timeout(). Kept on a list for sys_untimeout(). */
struct oneshot {
	struct tw_timer t;
	sys_timeout_handler handler;
	void *arg;
	struct oneshot *prev, *next;
};

static struct oneshot oneshots = { .prev = &oneshots, .next = &oneshots };

struct tw_clock *tcpip_clock(void)
{
	return &stack_clock;
}

uint64_t tcpip_now_ns(void)
{
	return tw_clock_now(&stack_clock);
}

u32_t sys_now(void)
{
	return (u32_t)(tw_clock_now(&stack_clock) / NS_PER_MS);
}

static bool tcp_busy(void)
{
	return tcp_active_pcbs || tcp_tw_pcbs;
}

/* Next due time of a periodic timer: its last due time plus the period,
 * or a period from now if it fell a whole period behind. */
static uint64_t next_period(const struct tw_timer *t, uint64_t period, uint64_t now)
{
	uint64_t due = tw_timer_expires(t) + period;

	return due > now ? due : now + period;
}

/*
 * lwIP 2.1.3 can leave a connection's persist timer running with nothing
 * left to probe: after a retransmission timeout has moved sent data back
 * to the unsent queue and a zero window started the persist timer, an ACK
 * of that data frees the unsent queue without stopping the timer, and
 * tcp_slowtmr() then asserts (aborts) - a peer can crash the stack with
 * four segments (tests/fuzz/regressions/fuzz_frame/persist-timer-*). The
 * persist timer only ever makes sense with unsent data and nothing in
 * flight, as tcp_output() arms it; stop it, before each TCP tick, where
 * that no longer holds.
 */
static void persist_fixup(void)
{
	struct tcp_pcb *pcb;

	for (pcb = tcp_active_pcbs; pcb; pcb = pcb->next)
		if (pcb->persist_backoff && (!pcb->unsent || pcb->unacked))
			pcb->persist_backoff = 0;
}

static void cyclic_fire(struct tw_timer *t)
{
	struct cyclic *c = (struct cyclic *)t;
	uint64_t period = (uint64_t)c->def->interval_ms * NS_PER_MS;

	if (c == TCP_CYCLIC)
		persist_fixup();
	c->def->handler();
	if (c == TCP_CYCLIC && !tcp_busy())
		return;	/* tcp_timer_needed() restarts it */
	tw_timer_arm(&wheel, t, next_period(t, period, tcpip_now_ns()));
}

void tcp_timer_needed(void)
{
	LWIP_ASSERT_CORE_LOCKED();
	if (!tw_timer_pending(&TCP_CYCLIC->t) && tcp_busy())
		tw_timer_arm(&wheel, &TCP_CYCLIC->t, tcpip_now_ns() + TCP_TMR_INTERVAL * NS_PER_MS);
}

void sys_timeouts_init(void)
{
	uint64_t now;
	int i;

	LWIP_ASSERT("lwIP has more cyclic timers than timers.c holds",
		    lwip_num_cyclic_timers <= CYCLIC_MAX);
	LWIP_ASSERT("lwip_cyclic_timers[0] is tcp_tmr", lwip_cyclic_timers[0].handler == tcp_tmr);
	now = tcpip_now_ns();
	tw_wheel_init(&wheel, now);
	for (i = 0; i < lwip_num_cyclic_timers; i++) {
		cyclic[i].def = &lwip_cyclic_timers[i];
		tw_timer_init(&cyclic[i].t, cyclic_fire);
		if (&cyclic[i] != TCP_CYCLIC)
			tw_timer_arm(&wheel, &cyclic[i].t,
				     now + (uint64_t)cyclic[i].def->interval_ms * NS_PER_MS);
	}
}

static void oneshot_unlink(struct oneshot *o)
{
	o->prev->next = o->next;
	o->next->prev = o->prev;
}

static void oneshot_fire(struct tw_timer *t)
{
	struct oneshot *o = (struct oneshot *)t;
	sys_timeout_handler handler = o->handler;
	void *arg = o->arg;

	oneshot_unlink(o);
	free(o);
	handler(arg);
}

void sys_timeout(u32_t msecs, sys_timeout_handler handler, void *arg)
{
	struct oneshot *o = malloc(sizeof(*o));

	LWIP_ASSERT_CORE_LOCKED();
	/* lwIP has no way to report this failure; its stock version asserts. */
	LWIP_ASSERT("sys_timeout: out of memory", o != NULL);
	o->handler = handler;
	o->arg = arg;
	o->next = &oneshots;
	o->prev = oneshots.prev;
	oneshots.prev->next = o;
	oneshots.prev = o;
	tw_timer_init(&o->t, oneshot_fire);
	tw_timer_arm(&wheel, &o->t, tcpip_now_ns() + (uint64_t)msecs * NS_PER_MS);
}

void sys_untimeout(sys_timeout_handler handler, void *arg)
{
	struct oneshot *o;

	LWIP_ASSERT_CORE_LOCKED();
	for (o = oneshots.next; o != &oneshots; o = o->next) {
		if (o->handler == handler && o->arg == arg) {
			tw_timer_cancel(&wheel, &o->t);
			oneshot_unlink(o);
			free(o);
			return;
		}
	}
}

/*
 * lwIP 2.1.3 times TIME-WAIT (and the FIN-WAIT-2 timeout) from pcb->tmr,
 * the last segment received - but stops refreshing it once the application
 * has closed (TF_RXCLOSED). A connection idle for a minute before its close
 * then left TIME-WAIT after one minute instead of 2 * MSL, and one idle for
 * 2 * MSL at the next slow tick. lwIP gives no callback on entering
 * TIME-WAIT, so after each input batch the newly entered pcbs (TCP_REG
 * pushes them at the head of tcp_tw_pcbs) get their clock restarted, once:
 * TF_NS_TW_TIMED marks them, a flag bit lwIP does not use.
 */
#define TF_NS_TW_TIMED 0x8000U
static_assert(TF_NS_TW_TIMED > TF_SACK && (TF_NS_TW_TIMED & (TF_NS_TW_TIMED - 1)) == 0,
	      "TF_NS_TW_TIMED must be a flag bit lwIP leaves free");

void tcpip_time_wait_fixup(void)
{
	struct tcp_pcb *pcb;

	for (pcb = tcp_tw_pcbs; pcb && !(pcb->flags & TF_NS_TW_TIMED); pcb = pcb->next) {
		pcb->tmr = tcp_ticks;
		tcp_set_flags(pcb, TF_NS_TW_TIMED);
	}
}

size_t tcpip_timers_run(void)
{
	return tw_wheel_advance(&wheel, tcpip_now_ns());
}

uint64_t tcpip_timers_next_ns(void)
{
	return tw_wakeup_time(tw_wheel_next_deadline(&wheel));
}

int tcpip_timers_next_ms(void)
{
	uint64_t next = tcpip_timers_next_ns(), now = tcpip_now_ns(), ms;

	if (next == UINT64_MAX)
		return -1;
	if (next <= now)
		return 0;
	ms = (next - now + NS_PER_MS - 1) / NS_PER_MS;	/* never wake early */
	return ms > INT_MAX ? INT_MAX : (int)ms;
}
