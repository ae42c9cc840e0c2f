/* SPDX-License-Identifier: MIT */
/*
 * two_nics.c - a stack on two TAP NICs, for test_tap_loss.py, which deletes
 * one TAP under load and checks that the other keeps serving (the netstack
 * CLI runs one NIC). Built on the public API only: each NIC gets its TAP
 * and one IPv4 address, and three TCP services listen on every address:
 * chargen (19, sends a pattern until the peer goes), discard (9, reads
 * until EOF) and echo (7). It prints "two_nics: running" once serving and
 * exits 0 on SIGTERM or SIGINT.
 * Usage: two_nics TAP0 ADDR0/PREFIX TAP1 ADDR1/PREFIX
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netstack.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK 65536

enum service { CHARGEN = 19, DISCARD = 9, ECHO = 7 };

static struct ns_stack *stack;

struct conn {
	int sock;
	enum service svc;
};

static void *serve(void *arg)
{
	struct conn c = *(struct conn *)arg;
	static char pattern[CHUNK];
	char buf[CHUNK];
	ssize_t n;
	size_t i;

	free(arg);
	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = (char)(' ' + i % 95);
	for (;;) {
		if (c.svc == CHARGEN) {
			if (ns_send(stack, c.sock, pattern, sizeof(pattern), 0) < 0)
				break;
			continue;
		}
		n = ns_recv(stack, c.sock, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		if (c.svc == ECHO && ns_send(stack, c.sock, buf, (size_t)n, 0) != n)
			break;
	}
	ns_close(stack, c.sock);
	return NULL;
}

static void *accept_loop(void *arg)
{
	struct conn *l = arg;

	for (;;) {
		struct conn *c = malloc(sizeof(*c));
		pthread_t t;

		if (!c)
			abort();
		c->svc = l->svc;
		c->sock = ns_accept(stack, l->sock, NULL, NULL, 0);
		if (c->sock < 0 || pthread_create(&t, NULL, serve, c)) {
			if (c->sock >= 0)
				ns_close(stack, c->sock);
			free(c);
			usleep(10000);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "two_nics: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	return 1;
}

int main(int argc, char **argv)
{
	static struct conn listeners[] = { { -1, CHARGEN }, { -1, DISCARD }, { -1, ECHO } };
	struct ns_stack_config cfg = { .log_level = NS_LOG_INFO };
	sigset_t stop;
	int i, rc, sig;

	if (argc != 5) {
		fprintf(stderr, "usage: two_nics TAP0 ADDR0/PREFIX TAP1 ADDR1/PREFIX\n");
		return 2;
	}
	/* Signals wait for sigwait() below, whichever thread they reach. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	if ((rc = ns_stack_new(&cfg, &stack)))
		return fail("stack", rc);
	for (i = 0; i < 2; i++) {
		struct ns_nic_config nc = { .name = argv[1 + 2 * i] };
		struct ns_endpoint *ep;
		struct ns_prefix p;
		int nic;

		if ((rc = ns_endpoint_tap_open(argv[1 + 2 * i], 0, &ep)))
			return fail(argv[1 + 2 * i], rc);
		if ((nic = ns_nic_add(stack, &nc, ep)) < 0)
			return fail("nic", nic);
		if ((rc = ns_prefix_parse(argv[2 + 2 * i], &p)) || (rc = ns_addr_add(stack, nic, &p)))
			return fail(argv[2 + 2 * i], rc);
	}
	for (i = 0; i < 3; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(listeners[i].svc) };
		int l = ns_socket(stack, AF_INET, SOCK_STREAM, 0);
		pthread_t t;

		if (l < 0)
			return fail("socket", l);
		if ((rc = ns_bind(stack, l, (struct sockaddr *)&a, sizeof(a))) || (rc = ns_listen(stack, l, 16)))
			return fail("listen", rc);
		listeners[i].sock = l;
		if ((rc = pthread_create(&t, NULL, accept_loop, &listeners[i])))
			return fail("thread", rc);
		pthread_detach(t);
	}
	if ((rc = ns_stack_start(stack)))
		return fail("start", rc);
	printf("two_nics: running on %s (%s) and %s (%s)\n", argv[1], argv[2], argv[3], argv[4]);
	fflush(stdout);
	sigwait(&stop, &sig);
	/* Threads are blocked in the stack: leave without tearing it down. */
	fflush(stderr);
	_exit(0);
}
