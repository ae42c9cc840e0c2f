/* SPDX-License-Identifier: MIT */
/*
 * bench_net_load.c - the client side of the rr, crr, udp and conns
 * scenarios: kernel sockets in the client namespace, against any sandbox's
 * services (bench_net.h). No stock tool fits these four (iperf3 has no
 * request/response or connection-rate mode), so they are ours, identical for
 * every peer. Each load is bounded both in time and in count, and every
 * socket call has a timeout, so a broken peer ends a run instead of hanging
 * it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "bench_net.h"

#define IO_TIMEOUT_MS 2000
#define UDP_CTL_TRIES 20
#define CONNS_LIMIT_S 30	/* to open the connections of a conns run */

static int sock_to(const char *addr, uint16_t port, int type, int timeout_ms)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	int s, on = 1;

	if (inet_pton(AF_INET, addr, &a.sin_addr) != 1)
		return -EINVAL;
	s = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	/* SO_SNDTIMEO also bounds connect(). */
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (type == SOCK_STREAM)
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	/* UDP stays unconnected: slirp4netns answers a forwarded port from
	 * another source port, which a connected socket would filter out. */
	if (type == SOCK_DGRAM)
		return s;
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int err = -errno;

		close(s);
		return err;
	}
	return s;
}

/* One byte there and back. */
static int ping(int s)
{
	char c = 'x';

	if (send(s, &c, 1, MSG_NOSIGNAL) != 1 || recv(s, &c, 1, 0) != 1)
		return errno ? -errno : -ECONNRESET;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/**
 * load_rr() - 1-byte request/response round trips on one connection
 * @addr: the echo service's address
 * @port: its port
 * @seconds: how long at most
 * @max: how many round trips at most
 * @r: receives the median and 99th percentile in microseconds
 *
 * Return: 0 or -errno.
 */
int load_rr(const char *addr, uint16_t port, double seconds, unsigned long max, struct rr_result *r)
{
	double *us = malloc(max * sizeof(*us));
	uint64_t end = bench_now_ns() + (uint64_t)(seconds * 1e9);
	unsigned long n = 0;
	int s, rc = 0;

	if (!us)
		return -ENOMEM;
	s = sock_to(addr, port, SOCK_STREAM, IO_TIMEOUT_MS);
	if (s < 0) {
		free(us);
		return s;
	}
	/* Warm up: the first exchanges pay for ARP and cold caches. */
	for (int i = 0; i < 100 && !rc; i++)
		rc = ping(s);
	while (!rc && n < max) {
		uint64_t t0 = bench_now_ns(), t1;

		rc = ping(s);
		t1 = bench_now_ns();
		us[n++] = (double)(t1 - t0) / 1e3;
		if (t1 > end)
			break;
	}
	close(s);
	if (!rc && n) {
		qsort(us, n, sizeof(*us), cmp_double);
		r->median_us = us[n / 2];
		r->p99_us = us[(n * 99) / 100];
		r->count = n;
	}
	free(us);
	return rc ? rc : (n ? 0 : -EIO);
}

/**
 * load_crr() - connect, 1-byte request/response, close, as often as possible
 * @addr: the echo service's address
 * @port: its port
 * @seconds: how long at most
 * @max: how many connections at most
 * @per_sec: receives connections per second
 *
 * Return: 0 or -errno.
 */
int load_crr(const char *addr, uint16_t port, double seconds, unsigned long max, double *per_sec)
{
	uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(seconds * 1e9), now = t0;
	unsigned long n = 0;
	int rc = 0;

	while (n < max && now < end) {
		int s = sock_to(addr, port, SOCK_STREAM, IO_TIMEOUT_MS);

		if (s < 0)
			return s;
		rc = ping(s);
		close(s);
		if (rc)
			return rc;
		n++;
		now = bench_now_ns();
	}
	*per_sec = (double)n / ((double)(now - t0) / 1e9);
	return 0;
}

/* Send a control datagram until the sink answers with @want; the answer
 * lands in @reply. */
static int udp_ctl(int s, const struct sockaddr_in *to, uint8_t what, uint8_t want,
		   uint8_t *reply, size_t cap)
{
	for (int i = 0; i < UDP_CTL_TRIES; i++) {
		ssize_t n;

		if (sendto(s, &what, 1, 0, (const struct sockaddr *)to, sizeof(*to)) != 1 &&
		    errno != ENOBUFS && errno != EAGAIN)
			return -errno;
		/* Skip stale answers to earlier tries. */
		while ((n = recv(s, reply, cap, 0)) > 0)
			if (reply[0] == want)
				return (int)n;
	}
	return -ETIMEDOUT;
}

/**
 * load_udp() - datagrams of @size bytes as fast as the client can send
 * @addr: the UDP sink's address
 * @port: its port
 * @size: payload bytes per datagram
 * @seconds: how long to send
 * @pps: receives datagrams per second that reached the sink
 * @loss: receives the fraction of those sent that did not
 *
 * Return: 0 or -errno.
 */
int load_udp(const char *addr, uint16_t port, size_t size, double seconds, double *pps, double *loss)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
	uint8_t buf[2048] = { UDP_DATA }, reply[16];
	uint64_t t0, end, sent = 0, got;
	int s, rc;

	if (size < 1 || size > sizeof(buf) || inet_pton(AF_INET, addr, &to.sin_addr) != 1)
		return -EINVAL;
	s = sock_to(addr, port, SOCK_DGRAM, 200);
	if (s < 0)
		return s;
	rc = udp_ctl(s, &to, UDP_RESET, UDP_ACK, reply, sizeof(reply));
	if (rc < 0)
		goto out;
	t0 = bench_now_ns();
	end = t0 + (uint64_t)(seconds * 1e9);
	/* The clock is read every 64 datagrams: cheap, and still exact to
	 * well under a millisecond. */
	for (;;) {
		if ((sent & 63) == 0 && bench_now_ns() >= end)
			break;
		if (sendto(s, buf, size, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)size)
			sent++;
		else if (errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED)
			break;
	}
	usleep(200 * 1000);	/* let queued datagrams land */
	rc = udp_ctl(s, &to, UDP_REPORT, UDP_COUNT, reply, sizeof(reply));
	if (rc < (int)(1 + sizeof(got))) {
		rc = rc < 0 ? rc : -EPROTO;
		goto out;
	}
	memcpy(&got, reply + 1, sizeof(got));
	*pps = (double)got / seconds;
	*loss = sent ? 1.0 - (double)got / (double)sent : 0;
	rc = 0;
out:
	close(s);
	return rc;
}

/**
 * load_conns_open() - open up to @n idle connections to the connection holder
 * @addr: its address
 * @port: its port
 * @n: how many
 * @fds: receives them; close with load_conns_close()
 *
 * Stops at the first connect that fails or when CONNS_LIMIT_S is up, and
 * keeps what it opened: a stack that cannot hold @n still gets a figure,
 * for the number it held.
 *
 * Return: how many are open, or -errno when not even one is.
 */
int load_conns_open(const char *addr, uint16_t port, unsigned n, int *fds)
{
	uint64_t end = bench_now_ns() + CONNS_LIMIT_S * 1000000000ull;
	unsigned i;
	int rc = 0;

	for (i = 0; i < n && bench_now_ns() < end; i++) {
		rc = sock_to(addr, port, SOCK_STREAM, IO_TIMEOUT_MS);
		if (rc < 0)
			break;
		fds[i] = rc;
	}
	return i ? (int)i : (rc < 0 ? rc : -ETIMEDOUT);
}

/**
 * load_conns_close() - close connections load_conns_open() opened
 * @fds: the fds
 * @n: how many
 */
void load_conns_close(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}
