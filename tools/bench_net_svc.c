/* SPDX-License-Identifier: MIT */
/*
 * bench_net_svc.c - the services every sandbox of the network scenarios
 * runs, written once on a small socket interface (struct svc_ops) with two
 * implementations: the kernel's sockets (the reference sandbox and the ones
 * behind pasta and slirp4netns) and netstack's public API (the netstack
 * sandbox, whose process also owns the stack on its TAP). The services: TCP
 * echo (rr and crr), a UDP sink that counts datagrams and reports in band,
 * a connection holder that accepts and keeps idle connections (conns), and
 * on command extra listeners (memory per listener). Each runs in its own
 * thread, blocking; the process's main thread answers commands on a pipe.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "bench_net.h"

#define ECHO_BUF 65536
#define HOLD_MAX 65536

/* --- the kernel's sockets */

static int k_ret(long r)
{
	return r < 0 ? -errno : (int)r;
}

static int k_socket(void *ctx, int type)
{
	return k_ret(socket(AF_INET, type | SOCK_CLOEXEC, 0));
}

static int k_bind_listen(void *ctx, int sock, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int on = 1, type;
	socklen_t len = sizeof(type);

	setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (bind(sock, (struct sockaddr *)&a, sizeof(a)) < 0)
		return -errno;
	getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len);
	return type == SOCK_STREAM ? k_ret(listen(sock, 4096)) : 0;
}

static int k_accept(void *ctx, int sock)
{
	int c = accept4(sock, NULL, NULL, SOCK_CLOEXEC), on = 1;

	if (c >= 0)
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	return k_ret(c);
}

static ssize_t k_recv(void *ctx, int sock, void *buf, size_t len)
{
	return k_ret(recv(sock, buf, len, 0));
}

static ssize_t k_send(void *ctx, int sock, const void *buf, size_t len)
{
	return k_ret(send(sock, buf, len, MSG_NOSIGNAL));
}

static ssize_t k_recvfrom(void *ctx, int sock, void *buf, size_t len, struct sockaddr_in *from)
{
	socklen_t fl = sizeof(*from);

	return k_ret(recvfrom(sock, buf, len, 0, (struct sockaddr *)from, &fl));
}

static ssize_t k_sendto(void *ctx, int sock, const void *buf, size_t len,
			const struct sockaddr_in *to)
{
	return k_ret(sendto(sock, buf, len, 0, (const struct sockaddr *)to, sizeof(*to)));
}

static int k_close(void *ctx, int sock)
{
	return k_ret(close(sock));
}

const struct svc_ops svc_kernel_ops = {
	.socket = k_socket, .bind_listen = k_bind_listen, .accept = k_accept,
	.recv = k_recv, .send = k_send, .recvfrom = k_recvfrom, .sendto = k_sendto,
	.close = k_close,
};

/* --- netstack's public API */

static int n_socket(void *ctx, int type)
{
	return ns_socket(ctx, AF_INET, type, 0);
}

static int n_bind_listen(void *ctx, int sock, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int on = 1, type, rc;
	socklen_t len = sizeof(type);

	ns_setsockopt(ctx, sock, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	rc = ns_bind(ctx, sock, (struct sockaddr *)&a, sizeof(a));
	if (rc)
		return rc;
	ns_getsockopt(ctx, sock, SOL_SOCKET, SO_TYPE, &type, &len);
	return type == SOCK_STREAM ? ns_listen(ctx, sock, 255) : 0;
}

static int n_accept(void *ctx, int sock)
{
	int c = ns_accept(ctx, sock, NULL, NULL, 0), on = 1;

	if (c >= 0)
		ns_setsockopt(ctx, c, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	return c;
}

static ssize_t n_recv(void *ctx, int sock, void *buf, size_t len)
{
	return ns_recv(ctx, sock, buf, len, 0);
}

static ssize_t n_send(void *ctx, int sock, const void *buf, size_t len)
{
	return ns_send(ctx, sock, buf, len, 0);
}

static ssize_t n_recvfrom(void *ctx, int sock, void *buf, size_t len, struct sockaddr_in *from)
{
	socklen_t fl = sizeof(*from);

	return ns_recvfrom(ctx, sock, buf, len, 0, (struct sockaddr *)from, &fl);
}

static ssize_t n_sendto(void *ctx, int sock, const void *buf, size_t len,
			const struct sockaddr_in *to)
{
	return ns_sendto(ctx, sock, buf, len, 0, (const struct sockaddr *)to, sizeof(*to));
}

static int n_close(void *ctx, int sock)
{
	return ns_close(ctx, sock);
}

const struct svc_ops svc_netstack_ops = {
	.socket = n_socket, .bind_listen = n_bind_listen, .accept = n_accept,
	.recv = n_recv, .send = n_send, .recvfrom = n_recvfrom, .sendto = n_sendto,
	.close = n_close,
};

/* --- the services */

struct svc {
	const struct svc_ops *ops;
	void *ctx;
	int sock;
};

static int svc_open(const struct svc_ops *ops, void *ctx, int type, uint16_t port)
{
	int sock = ops->socket(ctx, type), rc;

	if (sock < 0)
		return sock;
	rc = ops->bind_listen(ctx, sock, port);
	if (rc) {
		ops->close(ctx, sock);
		return rc;
	}
	return sock;
}

/* Echo, one connection at a time: rr and crr clients are serial. */
static void *echo_main(void *arg)
{
	struct svc *v = arg;
	char *buf = malloc(ECHO_BUF);

	for (;;) {
		int c = v->ops->accept(v->ctx, v->sock);
		ssize_t n;

		if (c < 0)
			continue;
		while (buf && (n = v->ops->recv(v->ctx, c, buf, ECHO_BUF)) > 0)
			if (v->ops->send(v->ctx, c, buf, (size_t)n) != n)
				break;
		v->ops->close(v->ctx, c);
	}
	return NULL;
}

/* Count datagrams; answer the client's in-band control (bench_net.h). */
static void *udp_main(void *arg)
{
	struct svc *v = arg;
	uint64_t count = 0;
	uint8_t buf[2048];

	for (;;) {
		struct sockaddr_in from;
		uint8_t reply[1 + sizeof(count)];
		ssize_t n = v->ops->recvfrom(v->ctx, v->sock, buf, sizeof(buf), &from);

		if (n <= 0)
			continue;
		switch (buf[0]) {
		case UDP_DATA:
			count++;
			break;
		case UDP_RESET:
			count = 0;
			reply[0] = UDP_ACK;
			v->ops->sendto(v->ctx, v->sock, reply, 1, &from);
			break;
		case UDP_REPORT:
			reply[0] = UDP_COUNT;
			memcpy(reply + 1, &count, sizeof(count));
			v->ops->sendto(v->ctx, v->sock, reply, sizeof(reply), &from);
			break;
		}
	}
	return NULL;
}

/* Accept and hold: the connections stay idle until the client closes them;
 * a slot is reused once its connection is seen closed. */
static void *conns_main(void *arg)
{
	struct svc *v = arg;
	int *held = calloc(HOLD_MAX, sizeof(*held));
	unsigned n = 0;

	for (;;) {
		int c = v->ops->accept(v->ctx, v->sock);

		if (c < 0 || !held)
			continue;
		if (n == HOLD_MAX) {
			/* Full: drop the oldest half (their clients are gone). */
			for (unsigned i = 0; i < HOLD_MAX / 2; i++)
				v->ops->close(v->ctx, held[i]);
			memmove(held, held + HOLD_MAX / 2, HOLD_MAX / 2 * sizeof(*held));
			n = HOLD_MAX / 2;
		}
		held[n++] = c;
	}
	return NULL;
}

static int spawn(const struct svc_ops *ops, void *ctx, int type, uint16_t port,
		 void *(*fn)(void *))
{
	struct svc *v = malloc(sizeof(*v));
	pthread_t t;
	int rc;

	if (!v)
		return -ENOMEM;
	v->ops = ops;
	v->ctx = ctx;
	v->sock = svc_open(ops, ctx, type, port);
	if (v->sock < 0) {
		rc = v->sock;
		free(v);
		return rc;
	}
	rc = -pthread_create(&t, NULL, fn, v);
	if (rc)
		return rc;
	pthread_detach(t);
	return 0;
}

/**
 * svc_start_all() - start the echo, UDP sink and connection holder threads
 * (the iperf3 server is separate: kernel sandboxes run the real iperf3 -s)
 * @ops: the socket interface
 * @ctx: its context
 * @base: the first service port (bench_net.h)
 *
 * Return: 0 or -errno.
 */
int svc_start_all(const struct svc_ops *ops, void *ctx, uint16_t base)
{
	int rc = spawn(ops, ctx, SOCK_STREAM, base + SVC_ECHO, echo_main);

	if (!rc)
		rc = spawn(ops, ctx, SOCK_DGRAM, base + SVC_UDP, udp_main);
	if (!rc)
		rc = spawn(ops, ctx, SOCK_STREAM, base + SVC_CONNS, conns_main);
	return rc;
}

/**
 * svc_serve_commands() - answer the harness until it closes the pipe
 * @ops: the socket interface
 * @ctx: its context
 * @base: the first service port
 * @cmdfd: commands, one line each: "listen N" opens N more listeners
 * @replyfd: one line per command: "ok" or "error ERRNO"
 *
 * Return: 0 when the harness closed @cmdfd.
 */
int svc_serve_commands(const struct svc_ops *ops, void *ctx, uint16_t base, int cmdfd, int replyfd)
{
	unsigned next = 0;
	char line[64];
	FILE *in = fdopen(cmdfd, "r");

	if (!in)
		return -errno;
	if (write(replyfd, "ready\n", 6) != 6)
		return -EPIPE;
	while (fgets(line, sizeof(line), in)) {
		unsigned n = 0, i;
		int rc = 0, len;
		char reply[32];

		if (sscanf(line, "listen %u", &n) == 1) {
			for (i = 0; i < n && !rc; i++, next++) {
				int l = svc_open(ops, ctx, SOCK_STREAM,
						 (uint16_t)(base + SVC_LISTENERS + next));

				rc = l < 0 ? l : 0;
			}
		} else {
			rc = -EINVAL;
		}
		len = rc ? snprintf(reply, sizeof(reply), "error %d\n", -rc) :
			   snprintf(reply, sizeof(reply), "ok\n");
		if (write(replyfd, reply, (size_t)len) != len)
			break;
	}
	fclose(in);
	return 0;
}

struct iperf_arg {
	struct ns_stack *s;
	uint16_t port;
};

static void *iperf_main(void *arg)
{
	struct iperf_arg *a = arg;

	iperf3_ns_serve(a->s, a->port);
	return NULL;
}

static void log_quiet(void *arg, int level, const char *msg)
{
	if (level <= NS_LOG_WARNING)
		fprintf(stderr, "netstack: %s\n", msg);
}

/**
 * svc_netstack_main() - the netstack sandbox: a stack on @tap serving every
 * service, until the harness closes @cmdfd
 * @tap: an existing TAP device in this process's network namespace
 * @cidr: the stack's address
 * @base: the first service port
 * @cmdfd: the command pipe (svc_serve_commands())
 * @replyfd: the reply pipe; "ready" once every service listens
 *
 * Return: a process exit status.
 */
int svc_netstack_main(const char *tap, const char *cidr, uint16_t base, int cmdfd, int replyfd)
{
	struct ns_stack_config cfg = { .max_sockets = 65536, .log = log_quiet,
				       .log_level = NS_LOG_WARNING };
	static struct iperf_arg ia;
	struct ns_endpoint *ep;
	struct ns_stack *s;
	struct ns_prefix p;
	pthread_t t;
	int nic;

	if (ns_stack_new(&cfg, &s) || ns_endpoint_tap_open(tap, 0, &ep))
		return 1;
	nic = ns_nic_add(s, NULL, ep);
	if (nic < 0 || ns_prefix_parse(cidr, &p) || ns_addr_add(s, nic, &p) || ns_stack_start(s))
		return 1;
	if (svc_start_all(&svc_netstack_ops, s, base))
		return 1;
	ia.s = s;
	ia.port = base + SVC_IPERF;
	if (pthread_create(&t, NULL, iperf_main, &ia))
		return 1;
	return svc_serve_commands(&svc_netstack_ops, s, base, cmdfd, replyfd) ? 1 : 0;
}

/**
 * svc_kernel_main() - a kernel sandbox's services (iperf3 runs beside them)
 * @base: the first service port
 * @cmdfd: the command pipe
 * @replyfd: the reply pipe
 *
 * Return: a process exit status.
 */
int svc_kernel_main(uint16_t base, int cmdfd, int replyfd)
{
	if (svc_start_all(&svc_kernel_ops, NULL, base))
		return 1;
	return svc_serve_commands(&svc_kernel_ops, NULL, base, cmdfd, replyfd) ? 1 : 0;
}
