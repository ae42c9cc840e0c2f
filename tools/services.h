/* SPDX-License-Identifier: MIT */
/*
 * services.h - the test services the `netstack` CLI runs on its stack (TCP
 * echo, discard, chargen and HTTP; UDP echo), built only on the public socket
 * API of netstack.h: they are its first embedder. Besides starting and
 * stopping services, this header exposes the pure parts that need no stack
 * (the service spec parser, the HTTP request parser and response writer, the
 * RFC 864 line generator) so that unit tests drive them directly.
 */
#ifndef NETSTACK_TOOLS_SERVICES_H
#define NETSTACK_TOOLS_SERVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "netstack.h"

enum service_proto {
	SERVICE_TCP,
	SERVICE_UDP,
	SERVICE_PROTO_COUNT,
};

enum service_kind {
	SERVICE_ECHO,
	SERVICE_DISCARD,
	SERVICE_CHARGEN,
	SERVICE_HTTP,
	SERVICE_KIND_COUNT,
};

/* One service, as "PROTO:PORT:KIND" on the command line. */
struct service_spec {
	enum service_proto proto;
	uint16_t port;		/* 1..65535 */
	enum service_kind kind;
};

/* Room for any formatted spec, "tcp:65535:chargen" and its NUL included. */
#define SERVICE_SPEC_MAX 24
/* The longest stack ID a service names (the CLI's ID rule). */
#define SERVICE_ID_MAX 64
/* Most connections served at once over all TCP services; more are closed
 * as soon as they are accepted. */
#define SERVICE_CONN_MAX 4096
/* Receive and send buffer of each connection and of each UDP service. */
#define SERVICE_BUF_SIZE 65536
/* Listen backlog of each TCP service (the library may clamp it). */
#define SERVICE_BACKLOG 1024

struct services;

/**
 * services_parse() - parse "PROTO:PORT:KIND"
 * @spec: the text, e.g. "tcp:80:http"; PROTO and KIND are lower case
 * @out: filled in on success only
 *
 * Valid kinds are echo, discard, chargen and http for tcp, echo for udp.
 * Nothing is printed: the caller words the error.
 *
 * Return: 0; -EINVAL if @spec is not three fields separated by ':';
 * -EPROTONOSUPPORT for a PROTO other than tcp or udp; -ERANGE if PORT is not
 * a decimal number in 1..65535; -EOPNOTSUPP for a KIND the protocol lacks.
 */
int services_parse(const char *spec, struct service_spec *out);

/**
 * services_format() - format a spec as "PROTO:PORT:KIND"
 * @spec: the spec
 * @buf: receives a NUL-terminated string
 * @cap: room in @buf; SERVICE_SPEC_MAX is always enough
 *
 * Return: the string length, -EINVAL for an invalid spec, -ENOSPC.
 */
int services_format(const struct service_spec *spec, char *buf, size_t cap);

/**
 * services_start() - open the services' sockets and start their threads
 * @s: the stack; it must outlive the services (call services_stop() first)
 * @id: the stack ID that HTTP names, at most SERVICE_ID_MAX bytes; copied
 * @specs: the services; copied. No two may share protocol and port.
 * @n: how many (0 is fine: an empty set)
 * @out: receives the running set
 * @failed: receives the index of the spec that failed, or @n when the
 *          failure belongs to no single spec; may be NULL
 *
 * Each TCP service listens on [::]:PORT (dual-stack: IPv4 peers arrive as
 * ::ffff:a.b.c.d) with SO_REUSEADDR and an acceptor thread; each connection
 * gets a detached worker thread doing blocking calls. Each UDP service has
 * one thread on a socket bound to [::]:PORT. On failure nothing is left
 * running.
 *
 * Return: 0; -EINVAL (bad spec or ID), -EEXIST (two specs share protocol and
 * port), or the -errno of the failed ns_socket(), ns_setsockopt(), ns_bind(),
 * ns_listen() or thread creation.
 */
int services_start(struct ns_stack *s, const char *id, const struct service_spec *specs, size_t n,
		   struct services **out, size_t *failed);

/**
 * services_adopt() - serve on sockets that exist already (after a restore)
 * @s: the stack; it must outlive the services (call services_stop() first)
 * @id: the stack ID that HTTP names, at most SERVICE_ID_MAX bytes; copied
 * @specs: the services; copied. No two may share protocol and port.
 * @socks: for each spec, the number of its socket in @s: for TCP a listener
 *         on PORT, for UDP a datagram socket bound to PORT; copied
 * @n: how many
 * @out: receives the running set
 * @failed: as for services_start(); may be NULL
 *
 * A restored stack keeps its listeners and UDP sockets under their socket
 * numbers; this starts the same threads services_start() would on them,
 * instead of creating new sockets. Each socket is checked through the public
 * API first (SO_TYPE, SO_ACCEPTCONN, the bound port). From a successful call
 * on, the set owns the sockets and services_stop() closes them; on failure
 * none is closed and nothing is left running.
 *
 * Return: 0; -EINVAL (bad spec, ID or socket number), -EEXIST (two specs
 * share protocol and port, or two share a socket), -EBADF (no such socket),
 * -EPROTOTYPE (a stream socket for a UDP service or the reverse), -ENOTCONN
 * (a TCP socket that is not listening, a UDP socket that is not bound),
 * -EADDRNOTAVAIL (bound to another port), or the -errno of thread creation.
 */
int services_adopt(struct ns_stack *s, const char *id, const struct service_spec *specs,
		   const int *socks, size_t n, struct services **out, size_t *failed);

/**
 * services_socket() - the socket number a service runs on
 * @svc: the set
 * @i: the service's index in the specs given to services_start() or
 *     services_adopt()
 *
 * A checkpoint records these numbers so that a restore can adopt them.
 *
 * Return: the socket number (>= 0), -EINVAL for a bad @i.
 */
int services_socket(const struct services *svc, size_t i);

/**
 * services_stop() - stop all services and free them
 * @svc: the set, or NULL
 *
 * Closes the listening and UDP sockets, joins their threads, closes every
 * open connection (its worker's blocked call returns -EBADF) and waits until
 * every worker is past its last call into the stack. Afterwards
 * ns_stack_free() is safe.
 */
void services_stop(struct services *svc);

/* ------------------------------------------------------------------ */
/* RFC 864 character generator                                         */
/* ------------------------------------------------------------------ */

#define CHARGEN_FIRST 32	/* ' ' */
#define CHARGEN_LAST 126	/* '~' */
#define CHARGEN_RING (CHARGEN_LAST - CHARGEN_FIRST + 1)
#define CHARGEN_WIDTH 72
#define CHARGEN_LINE_LEN (CHARGEN_WIDTH + 2)	/* with CRLF */

/**
 * chargen_line() - line @n of the RFC 864 pattern
 * @n: line number; the pattern repeats every CHARGEN_RING lines
 * @out: receives CHARGEN_LINE_LEN bytes, not NUL-terminated
 *
 * Line n holds the characters (n mod 95) .. (n + 71 mod 95) of the ring of
 * printable ASCII ' ' .. '~', then CR LF.
 */
void chargen_line(unsigned long n, char out[CHARGEN_LINE_LEN]);

/* ------------------------------------------------------------------ */
/* HTTP/1.1                                                            */
/* ------------------------------------------------------------------ */

/* Most bytes a request head (request line, header fields, blank line) may
 * take; a longer one is answered 431. */
#define HTTP_HEAD_MAX 8192

enum http_method {
	HTTP_METHOD_OTHER,	/* any other valid token */
	HTTP_METHOD_GET,
	HTTP_METHOD_HEAD,
};

struct http_request {
	enum http_method method;
	const char *target;	/* points into the parsed buffer; not NUL-terminated */
	size_t target_len;
	unsigned version_major;	/* HTTP/major.minor, each one digit */
	unsigned version_minor;
	bool keep_alive;	/* the version's default, then Connection */
	bool transfer_encoding;	/* a Transfer-Encoding field was present */
	uint64_t content_length; /* body bytes that follow the head */
};

/**
 * http_parse_request() - parse one request head at the start of a buffer
 * @buf: received bytes; only read
 * @len: how many
 * @req: filled in on success only; its target points into @buf
 *
 * Leading empty lines are skipped; lines may end in CRLF or LF. The request
 * line must be METHOD SP TARGET SP HTTP/D.D; header fields must be
 * "name: value" without folding. Connection takes "close" and "keep-alive"
 * (close wins); Content-Length must be one decimal number (repeats must
 * agree). A body is not consumed: the caller skips @req->content_length
 * bytes after the head.
 *
 * Return: the head's length in bytes (> 0) when it is complete; 0 when more
 * bytes are needed; -EINVAL when it is malformed (answer 400); -E2BIG when no
 * complete head fits in HTTP_HEAD_MAX bytes (answer 431).
 */
int http_parse_request(const char *buf, size_t len, struct http_request *req);

/**
 * http_status() - the status a parsed request is answered with
 * @req: a request http_parse_request() accepted
 *
 * Return: 505 for a major version other than 1, 501 for a request with
 * Transfer-Encoding, 405 for a method other than GET and HEAD, 200 for the
 * path "/" (query ignored; origin or absolute form), else 404.
 */
int http_status(const struct http_request *req);

/**
 * http_response() - write a complete response
 * @status: 200, 400, 404, 405, 431, 501 or 505
 * @head: true to leave the body out (a HEAD request); Content-Length still
 *        gives the body's length
 * @keep_alive: whether the connection stays open (Connection header)
 * @id: the stack ID named in a 200's body, "netstack ID\n"
 * @now: the time for the Date header
 * @buf: receives the response; not NUL-terminated
 * @cap: room in @buf; 1024 bytes always suffice with a valid @id
 *
 * Return: the response length, -EINVAL for an unknown status, -ENOSPC.
 */
int http_response(int status, bool head, bool keep_alive, const char *id, time_t now, char *buf,
		  size_t cap);

#endif /* NETSTACK_TOOLS_SERVICES_H */
