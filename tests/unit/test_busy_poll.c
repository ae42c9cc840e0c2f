/* SPDX-License-Identifier: MIT */
/*
 * test_busy_poll.c - busy polling of a busy link (ns_stack_config
 * busy_poll_us): a thread blocked in the API while frames keep coming
 * polls the link instead of sleeping, so the sender has nobody to wake.
 *
 * The peer here paces itself on the receiver: the next datagram goes in as
 * soon as the last one came out, while the receiver is back in its wait.
 * With polling on, such waits are answered by the poll (busy_poll_hits);
 * off, never. No test here measures time: whether polling pays is
 * netstack-bench's job (README "Network performance").
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chanstack.h"
#include "imgdir.h"

#define PORT 7000
#define DATAGRAMS 200

static struct ns_stack *stack;
static struct ns_endpoint *chan;
static struct frame_path to4, to6;
static int sock = -1;
static atomic_int received;

static void teardown(void)
{
	ns_stack_free(stack);
	stack = NULL;
}

TestSuite(busy_poll, .fini = teardown, .timeout = 60);

/* A started stack polling for @us (the config's meaning) and a UDP socket
 * bound to PORT. */
static void start(int us)
{
	struct ns_stack_config cfg = { .log_level = NS_LOG_ERR, .busy_poll_us = us };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	int rc;

	stack = chanstack_new_cfg(&cfg, &chan, &to4, &to6);
	cr_assert_eq(ns_stack_start(stack), 0);
	sock = ns_socket(stack, AF_INET, SOCK_DGRAM, 0);
	cr_assert_geq(sock, 0, "ns_socket: %d", sock);
	rc = ns_bind(stack, sock, (struct sockaddr *)&a, sizeof(a));
	cr_assert_eq(rc, 0, "ns_bind: %d", rc);
}

static void inject_datagram(uint32_t seq)
{
	uint8_t f[128];
	ssize_t len = frame_udp(f, sizeof(f), &to4, 40000, PORT, &seq, sizeof(seq));
	int rc;

	cr_assert_gt(len, 0);
	rc = ns_channel_inject(chan, f, (size_t)len);
	cr_assert_eq(rc, 0, "ns_channel_inject: %d", rc);
}

/* Blocking receives, in order; each one counted once it is in. */
static void *receiver(void *arg)
{
	(void)arg;
	for (uint32_t i = 0; i < DATAGRAMS; i++) {
		uint32_t got = UINT32_MAX;
		ssize_t n = ns_recv(stack, sock, &got, sizeof(got), 0);

		if (n != sizeof(got) || got != i)
			return (void *)(intptr_t)(n < 0 ? n : -EPROTO);
		atomic_store(&received, (int)i + 1);
	}
	return NULL;
}

/* The peer: the next datagram as soon as the receiver took the last. */
static uint64_t stream(void)
{
	struct ns_stats st;
	pthread_t t;
	void *res;

	atomic_store(&received, 0);
	cr_assert_eq(pthread_create(&t, NULL, receiver, NULL), 0);
	for (uint32_t i = 0; i < DATAGRAMS; i++) {
		while (atomic_load(&received) < (int)i)
			sched_yield();
		inject_datagram(i);
	}
	cr_assert_eq(pthread_join(t, &res), 0);
	cr_assert_null(res, "receiver: %ld", (long)(intptr_t)res);
	cr_assert_eq(ns_stack_stats(stack, &st), 0);
	return st.busy_poll_hits;
}

Test(busy_poll, out_of_range_is_refused_and_the_edges_taken)
{
	const int bad[] = { -2, INT_MIN, 1001, INT_MAX };
	const int good[] = { -1, 0, 1, 1000 };
	struct ns_stack *s = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ns_stack_config cfg = { .busy_poll_us = bad[i] };

		cr_expect_eq(ns_stack_new(&cfg, &s), -EINVAL, "busy_poll_us %d taken", bad[i]);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct ns_stack_config cfg = { .busy_poll_us = good[i] };

		cr_assert_eq(ns_stack_new(&cfg, &s), 0, "busy_poll_us %d refused", good[i]);
		ns_stack_free(s);
	}
}

/* 1 ms, so that a sanitizer or valgrind still finds the next datagram
 * inside the poll (198 of 200 natively and under valgrind here); only
 * "some" is asserted, since how often depends on the machine's load. */
Test(busy_poll, a_receiver_kept_busy_is_answered_by_the_poll)
{
	uint64_t hits;

	start(1000);
	hits = stream();
	cr_log_info("%llu of %d waits answered by the poll", (unsigned long long)hits, DATAGRAMS);
	cr_expect_gt(hits, 0, "no wait of %d answered by the poll", DATAGRAMS);
	cr_expect_leq(hits, DATAGRAMS, "%llu hits for %d datagrams", (unsigned long long)hits,
		      DATAGRAMS);
}

Test(busy_poll, off_never_polls)
{
	start(-1);
	cr_expect_eq(stream(), 0);
}

/* A receive timeout still ends a wait that polls first. */
Test(busy_poll, a_timeout_ends_a_polling_wait)
{
	struct timeval tv = { .tv_usec = 50 * 1000 };
	uint32_t v;
	ssize_t n;

	start(1000);
	stream();
	cr_assert_eq(ns_setsockopt(stack, sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	n = ns_recv(stack, sock, &v, sizeof(v), 0);
	cr_expect_eq(n, -EAGAIN, "ns_recv: %zd", n);
}

/* Another thread's close wakes a receiver whose wait polls first. */
static void *closer(void *arg)
{
	struct timespec ts = { .tv_nsec = 20 * 1000 * 1000 };

	(void)arg;
	nanosleep(&ts, NULL);
	return (void *)(intptr_t)ns_close(stack, sock);
}

Test(busy_poll, a_close_wakes_a_polling_receiver)
{
	pthread_t t;
	uint32_t v;
	ssize_t n;
	void *res;

	start(1000);
	stream();
	cr_assert_eq(pthread_create(&t, NULL, closer, NULL), 0);
	n = ns_recv(stack, sock, &v, sizeof(v), 0);
	cr_assert_eq(pthread_join(t, &res), 0);
	cr_expect_eq((intptr_t)res, 0, "ns_close: %ld", (long)(intptr_t)res);
	cr_expect_eq(n, -EBADF, "ns_recv on a closed socket: %zd", n);
}

/* The count is one of the stack's counters: a checkpoint keeps it. */
Test(busy_poll, the_count_survives_a_checkpoint)
{
	struct ns_stack_config quiet = { .log_level = NS_LOG_ERR };
	struct ns_restore_endpoint re = { .nic_name = "eth0" };
	struct ns_restore_opts opts = { .config = &quiet, .endpoints = &re, .nendpoints = 1 };
	struct ns_stats st;
	uint64_t hits = 0;
	char img[256], why[256] = "";
	int fds[2], status, rc;
	pid_t pid;

	imgdir_make("ns-busy-poll", img, sizeof(img));
	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* One stack per process: this one is checkpointed here and
		 * restored in the parent, which has none. */
		start(1000);
		hits = stream();
		if (hits == 0 || ns_stack_checkpoint(stack, img, NULL) ||
		    write(fds[1], &hits, sizeof(hits)) != sizeof(hits))
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "checkpoint child: status %d", status);
	cr_assert_eq(read(fds[0], &hits, sizeof(hits)), (ssize_t)sizeof(hits));
	close(fds[0]);
	cr_assert_eq(ns_endpoint_channel_new(&re.ep), 0);
	rc = ns_stack_restore(img, &opts, &stack, why, sizeof(why));
	cr_assert_eq(rc, 0, "restore: %d: %s", rc, why);
	cr_assert_eq(ns_stack_stats(stack, &st), 0);
	cr_expect_eq(st.busy_poll_hits, hits, "%llu after the restore, %llu before",
		     (unsigned long long)st.busy_poll_hits, (unsigned long long)hits);
	imgdir_remove();
}
