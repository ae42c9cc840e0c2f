/* SPDX-License-Identifier: MIT */
/*
 * iperf3_ns.c - an iperf3-protocol server written on netstack's public
 * socket API, so a stock `iperf3 -c` on the kernel measures what an embedder
 * of libnetstack gets. It speaks the part of the protocol a single-stream
 * TCP test uses, forward and reverse (-R), one test at a time:
 *
 *   client -> cookie (37 bytes) on the control connection
 *   server -> PARAM_EXCHANGE; client -> parameters (u32 length + JSON)
 *   server -> CREATE_STREAMS; client opens the data connection, sends cookie
 *   server -> TEST_START, TEST_RUNNING; data flows (to the server, or from it
 *             with "reverse") until the client sends TEST_END
 *   server -> EXCHANGE_RESULTS; client -> its results JSON; server -> ours
 *   server -> DISPLAY_RESULTS; client -> IPERF_DONE
 *
 * States are one signed byte each. Anything else the client asks for (UDP,
 * several streams, bidirectional) is refused with ACCESS_DENIED. Every wait
 * is bounded, so a vanished client never wedges the server.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_net.h"

#define COOKIE_SIZE 37
#define JSON_MAX (64 * 1024)
#define BLOCK_MAX (1024 * 1024)
#define WAIT_MS 10000		/* longest a step of the protocol may stall */
#define RUN_SLACK_S 30		/* past the test's own time */

enum {
	TEST_START = 1,
	TEST_RUNNING = 2,
	TEST_END = 4,
	PARAM_EXCHANGE = 9,
	CREATE_STREAMS = 10,
	CLIENT_TERMINATE = 12,
	EXCHANGE_RESULTS = 13,
	DISPLAY_RESULTS = 14,
	IPERF_DONE = 16,
	ACCESS_DENIED = -1,
};

struct test {
	struct ns_stack *s;
	int ctrl, data;
	bool reverse;
	size_t blksize;
	double duration;
	uint64_t bytes;
	double seconds;
	uint8_t *buf;
	const char *step;	/* the protocol step running */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int wait_for(struct ns_stack *s, int sock, short events)
{
	struct pollfd p = { .fd = sock, .events = events };
	int n = ns_poll(s, &p, 1, WAIT_MS);

	if (n < 0)
		return n;
	return n == 0 ? -ETIMEDOUT : 0;
}

/* Read exactly @len bytes, each wait bounded. */
static int recv_all(struct ns_stack *s, int sock, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n;
		int rc = wait_for(s, sock, POLLIN);

		if (rc)
			return rc;
		n = ns_recv(s, sock, (char *)buf + got, len - got, MSG_DONTWAIT);
		if (n == -EAGAIN)
			continue;
		if (n <= 0)
			return n ? (int)n : -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

static int send_all(struct ns_stack *s, int sock, const void *buf, size_t len)
{
	size_t put = 0;

	while (put < len) {
		ssize_t n;
		int rc = wait_for(s, sock, POLLOUT);

		if (rc)
			return rc;
		n = ns_send(s, sock, (const char *)buf + put, len - put, MSG_DONTWAIT);
		if (n == -EAGAIN)
			continue;
		if (n < 0)
			return (int)n;
		put += (size_t)n;
	}
	return 0;
}

static int send_state(struct test *t, signed char state)
{
	return send_all(t->s, t->ctrl, &state, 1);
}

/* A JSON message: u32 length in network order, then the text. The caller
 * owns the returned object. */
static int json_recv(struct test *t, json_object **out)
{
	uint32_t len;
	char *text;
	int rc = recv_all(t->s, t->ctrl, &len, sizeof(len));

	if (rc)
		return rc;
	len = ntohl(len);
	if (len == 0 || len > JSON_MAX)
		return -EPROTO;
	text = malloc(len + 1);
	if (!text)
		return -ENOMEM;
	rc = recv_all(t->s, t->ctrl, text, len);
	text[len] = '\0';
	*out = rc ? NULL : json_tokener_parse(text);
	free(text);
	if (!rc && !*out)
		rc = -EPROTO;
	return rc;
}

static int json_send(struct test *t, json_object *j)
{
	const char *text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
	uint32_t len = htonl((uint32_t)strlen(text));
	int rc = send_all(t->s, t->ctrl, &len, sizeof(len));

	return rc ? rc : send_all(t->s, t->ctrl, text, strlen(text));
}

static int64_t param_int(json_object *j, const char *key, int64_t def)
{
	json_object *v;

	return json_object_object_get_ex(j, key, &v) ? json_object_get_int64(v) : def;
}

/* Take the parameters; false for a test this server does not run. */
static bool take_params(struct test *t, json_object *j)
{
	json_object *v;

	if (!json_object_object_get_ex(j, "tcp", &v) || !json_object_get_boolean(v))
		return false;
	if (param_int(j, "parallel", 1) != 1 || param_int(j, "bidirectional", 0))
		return false;
	t->reverse = param_int(j, "reverse", 0) != 0;
	t->blksize = (size_t)param_int(j, "len", 128 * 1024);
	t->duration = (double)param_int(j, "time", 10);
	return t->blksize > 0 && t->blksize <= BLOCK_MAX;
}

static int accept_stream(struct test *t, int listener, const char *cookie)
{
	char got[COOKIE_SIZE];
	int rc = wait_for(t->s, listener, POLLIN);

	if (rc)
		return rc;
	t->data = ns_accept(t->s, listener, NULL, NULL, 0);
	if (t->data < 0)
		return t->data;
	rc = recv_all(t->s, t->data, got, sizeof(got));
	if (!rc && memcmp(got, cookie, COOKIE_SIZE))
		rc = -EPROTO;
	return rc;
}

/* Move data until the client says TEST_END: one poll over the control and
 * the data connection, the data side nonblocking. When the server sends,
 * TEST_END also ends its side of the data connection, as iperf3's own
 * server does: the client reads a block at a time, blocking, and only end
 * of stream ends a block the server stopped sending in the middle of. */
static int run_data(struct test *t)
{
	double t0 = now_s(), deadline = t0 + t->duration + RUN_SLACK_S;
	bool data_open = true;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = t->ctrl, .events = POLLIN },
			{ .fd = t->data, .events = t->reverse ? POLLOUT : POLLIN },
		};
		int n = ns_poll(t->s, p, data_open ? 2 : 1, 1000);

		if (n < 0)
			return n;
		if (now_s() > deadline)
			return -ETIMEDOUT;
		if (p[0].revents) {
			signed char st;
			ssize_t r = ns_recv(t->s, t->ctrl, &st, 1, MSG_DONTWAIT);

			if (r == -EAGAIN)
				continue;
			if (r <= 0 || st == CLIENT_TERMINATE)
				return r < 0 ? (int)r : -ECONNRESET;
			if (st == TEST_END) {
				if (t->reverse)
					ns_shutdown(t->s, t->data, SHUT_WR);
				break;
			}
		}
		if (data_open && p[1].revents) {
			ssize_t r = t->reverse ?
				ns_send(t->s, t->data, t->buf, t->blksize, MSG_DONTWAIT) :
				ns_recv(t->s, t->data, t->buf, t->blksize, MSG_DONTWAIT);

			if (r > 0)
				t->bytes += (uint64_t)r;
			else if (r != -EAGAIN)
				data_open = false;
		}
	}
	t->seconds = now_s() - t0;
	return 0;
}

static json_object *results(const struct test *t)
{
	json_object *j = json_object_new_object(), *streams = json_object_new_array();
	json_object *st = json_object_new_object();

	json_object_object_add(j, "cpu_util_total", json_object_new_double(0));
	json_object_object_add(j, "cpu_util_user", json_object_new_double(0));
	json_object_object_add(j, "cpu_util_system", json_object_new_double(0));
	json_object_object_add(j, "sender_has_retransmits", json_object_new_int(0));
	json_object_object_add(st, "id", json_object_new_int(1));
	json_object_object_add(st, "bytes", json_object_new_int64((int64_t)t->bytes));
	json_object_object_add(st, "retransmits", json_object_new_int(-1));
	json_object_object_add(st, "jitter", json_object_new_double(0));
	json_object_object_add(st, "errors", json_object_new_int(0));
	json_object_object_add(st, "packets", json_object_new_int(0));
	json_object_object_add(st, "start_time", json_object_new_double(0));
	json_object_object_add(st, "end_time", json_object_new_double(t->seconds));
	json_object_array_add(streams, st);
	json_object_object_add(j, "streams", streams);
	return j;
}

/* Run one protocol step unless an earlier one failed; remember which ran
 * last, for the log line of a test that ends early. */
#define STEP(t, rc, name, call)			\
	do {					\
		if (!(rc)) {			\
			(t)->step = (name);	\
			(rc) = (call);		\
		}				\
	} while (0)

static int run_test(struct test *t, int listener)
{
	char cookie[COOKIE_SIZE];
	json_object *j = NULL;
	signed char done;
	int rc = 0;

	STEP(t, rc, "cookie", recv_all(t->s, t->ctrl, cookie, sizeof(cookie)));
	STEP(t, rc, "param exchange", send_state(t, PARAM_EXCHANGE));
	STEP(t, rc, "parameters", json_recv(t, &j));
	if (rc)
		return rc;
	if (!take_params(t, j)) {
		json_object_put(j);
		send_state(t, ACCESS_DENIED);
		t->step = "parameters (not a single-stream TCP test)";
		return -EOPNOTSUPP;
	}
	json_object_put(j);
	j = NULL;
	STEP(t, rc, "create streams", send_state(t, CREATE_STREAMS));
	STEP(t, rc, "data connection", accept_stream(t, listener, cookie));
	STEP(t, rc, "test start", send_state(t, TEST_START));
	STEP(t, rc, "test running", send_state(t, TEST_RUNNING));
	STEP(t, rc, "data", run_data(t));
	STEP(t, rc, "exchange results", send_state(t, EXCHANGE_RESULTS));
	/* The client's own results: not needed. */
	STEP(t, rc, "client results", json_recv(t, &j));
	json_object_put(j);
	j = rc ? NULL : results(t);
	STEP(t, rc, "server results", json_send(t, j));
	json_object_put(j);
	STEP(t, rc, "display results", send_state(t, DISPLAY_RESULTS));
	STEP(t, rc, "done", recv_all(t->s, t->ctrl, &done, 1));	/* IPERF_DONE */
	return rc;
}

/**
 * iperf3_ns_serve() - serve iperf3 clients, one test at a time, forever
 * @s: a running stack with an address
 * @port: the TCP port (iperf3's default is 5201)
 *
 * A test that fails (the client vanished, asked for something this server
 * does not do) is closed and the next client is served.
 *
 * Return: -errno when the listener cannot be set up; otherwise it does not
 * return.
 */
int iperf3_ns_serve(struct ns_stack *s, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct test t = { .s = s };
	int l, on = 1;

	t.buf = calloc(1, BLOCK_MAX);
	if (!t.buf)
		return -ENOMEM;
	l = ns_socket(s, AF_INET, SOCK_STREAM, 0);
	if (l < 0)
		return l;
	ns_setsockopt(s, l, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ns_bind(s, l, (struct sockaddr *)&a, sizeof(a)) || ns_listen(s, l, 16))
		return -EADDRINUSE;
	for (;;) {
		int rc;

		t.ctrl = ns_accept(s, l, NULL, NULL, 0);
		if (t.ctrl < 0)
			continue;
		t.data = -1;
		t.bytes = 0;
		t.seconds = 0;
		rc = run_test(&t, l);

		if (rc)
			fprintf(stderr, "iperf3_ns: a test ended early at '%s': %s\n", t.step,
				strerror(-rc));
		if (t.data >= 0)
			ns_close(s, t.data);
		ns_close(s, t.ctrl);
	}
}
