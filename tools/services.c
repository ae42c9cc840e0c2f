/* SPDX-License-Identifier: MIT */
/*
 * services.c - the CLI's test services (TCP echo, discard, chargen and HTTP;
 * UDP echo), written only against the public socket API of netstack.h, as
 * any embedder would write them. It owns the service spec syntax, the
 * listener/acceptor/worker threads and their shutdown, the HTTP/1.1 request
 * parser and response writer, and the RFC 864 pattern.
 *
 * Theory of operation
 * -------------------
 * services_start() opens one socket per service: a TCP service listens on
 * [::]:PORT and runs an acceptor thread; a UDP service binds [::]:PORT and
 * runs one thread that echoes datagrams. services_adopt() does the same on
 * sockets that exist already (a restored stack keeps its listeners and UDP
 * sockets under their numbers), after checking each one through the API.
 * Every accepted connection gets a struct conn, linked on the set's list,
 * and a detached worker thread that serves it with blocking
 * ns_recv()/ns_send() and then releases it.
 *
 * Who closes what: a listening or UDP socket is closed only by
 * services_stop(). A connection socket is closed exactly once, under the
 * set's lock: by its worker when it is done, or by services_stop(), which
 * marks it closed so the worker does not close the number again (it might
 * belong to someone else by then).
 *
 * services_stop() runs in three steps so that no socket number is ever used
 * after it could have been reused: (1) set stopping and close the listening
 * and UDP sockets, which makes their threads' blocked calls return -EBADF;
 * (2) join those threads, after which no thread creates sockets any more;
 * (3) close every open connection and wait until the count of workers drops
 * to zero. A worker touches neither the set nor the stack after it has
 * decremented that count, so the set can be freed and the stack after it.
 *
 * Lock order: the set's lock may be held while calling into the stack (which
 * takes the stack lock); the stack never calls back into this file.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "services.h"

/* Room for one response in a connection's output buffer; http_response()
 * needs less than this with an ID of at most SERVICE_ID_MAX bytes. */
#define HTTP_RESPONSE_MAX 1024
/* Output buffer of an HTTP connection: responses to pipelined requests are
 * gathered here and sent together. */
#define HTTP_OUT_SIZE (16 * HTTP_RESPONSE_MAX)
/* How long a closing HTTP connection keeps reading (and dropping) what the
 * peer still sends, and how long each read may wait. */
#define LINGER_TOTAL_MS 5000
#define LINGER_READ_MS 1000
/* How long an acceptor waits before retrying after a resource error
 * (socket table full, no memory); a finishing worker wakes it earlier. */
#define BACKOFF_MS 100
/* Stack of each worker thread: its buffers are on the heap. */
#define WORKER_STACK_SIZE (256 * 1024)

#define XSTR(x) #x
#define STR(x) XSTR(x)

/* Whole RFC 864 periods that fit in a connection's buffer. */
#define CHARGEN_PERIOD_LEN (CHARGEN_RING * CHARGEN_LINE_LEN)
#define CHARGEN_PERIODS (SERVICE_BUF_SIZE / CHARGEN_PERIOD_LEN)

static_assert(CHARGEN_PERIODS >= 1, "a connection buffer holds one chargen period");
static_assert(HTTP_HEAD_MAX < SERVICE_BUF_SIZE, "a full request head fits in the buffer");
static_assert(SERVICE_CONN_MAX > 0, "at least one connection");

static const char *const proto_names[] = {
	[SERVICE_TCP] = "tcp",
	[SERVICE_UDP] = "udp",
};
static_assert(sizeof(proto_names) / sizeof(proto_names[0]) == SERVICE_PROTO_COUNT,
	      "proto_names matches enum service_proto");

static const char *const kind_names[] = {
	[SERVICE_ECHO] = "echo",
	[SERVICE_DISCARD] = "discard",
	[SERVICE_CHARGEN] = "chargen",
	[SERVICE_HTTP] = "http",
};
static_assert(sizeof(kind_names) / sizeof(kind_names[0]) == SERVICE_KIND_COUNT,
	      "kind_names matches enum service_kind");

/* Which kinds each protocol offers. */
static const bool kind_offered[SERVICE_PROTO_COUNT][SERVICE_KIND_COUNT] = {
	[SERVICE_TCP] = {
		[SERVICE_ECHO] = true,
		[SERVICE_DISCARD] = true,
		[SERVICE_CHARGEN] = true,
		[SERVICE_HTTP] = true,
	},
	[SERVICE_UDP] = {
		[SERVICE_ECHO] = true,
	},
};

struct services;

/* One service's socket and thread. */
struct listener {
	struct services *svc;
	struct service_spec spec;
	char name[SERVICE_SPEC_MAX];	/* "tcp:80:http", for log lines */
	int sock;			/* set before the thread starts, then constant */
	bool closed;			/* under svc->lock: services_stop() closed sock */
	bool running;			/* the thread was created and must be joined */
	pthread_t thread;
	unsigned char *buf;		/* UDP: the datagram buffer */
};

/* One accepted connection; owned by its worker thread. */
struct conn {
	struct conn *prev, *next;	/* on svc->conns, under svc->lock */
	struct services *svc;
	const struct listener *l;
	int sock;			/* constant */
	bool closed;			/* under svc->lock: the socket was closed */
	unsigned char buf[SERVICE_BUF_SIZE];
};

struct services {
	struct ns_stack *stack;
	char id[SERVICE_ID_MAX + 1];
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* CLOCK_MONOTONIC; a worker ended, or stopping */
	pthread_attr_t worker_attr;
	bool stopping;			/* under lock */
	unsigned nconns;		/* under lock: workers not yet released */
	struct conn *conns;		/* under lock */
	size_t n;
	struct listener l[];
};

/* ------------------------------------------------------------------ */
/* Specs                                                               */
/* ------------------------------------------------------------------ */

/* Index of the name in @names that equals @text[0..len), or -1. */
static int name_find(const char *const *names, size_t count, const char *text, size_t len)
{
	for (size_t i = 0; i < count; i++) {
		if (strlen(names[i]) == len && memcmp(names[i], text, len) == 0)
			return (int)i;
	}
	return -1;
}

int services_parse(const char *spec, struct service_spec *out)
{
	const char *c1, *c2, *kind_text;
	unsigned long port = 0;
	int proto, kind;

	if (!spec || !out)
		return -EINVAL;
	c1 = strchr(spec, ':');
	c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (!c2 || strchr(c2 + 1, ':'))
		return -EINVAL;
	kind_text = c2 + 1;
	if (c1 == spec || c2 == c1 + 1 || *kind_text == '\0')
		return -EINVAL;

	proto = name_find(proto_names, SERVICE_PROTO_COUNT, spec, (size_t)(c1 - spec));
	if (proto < 0)
		return -EPROTONOSUPPORT;

	for (const char *p = c1 + 1; p < c2; p++) {
		if (*p < '0' || *p > '9')
			return -ERANGE;
		port = port * 10 + (unsigned long)(*p - '0');
		if (port > UINT16_MAX)
			return -ERANGE;
	}
	if (port == 0)
		return -ERANGE;

	kind = name_find(kind_names, SERVICE_KIND_COUNT, kind_text, strlen(kind_text));
	if (kind < 0 || !kind_offered[proto][kind])
		return -EOPNOTSUPP;

	out->proto = (enum service_proto)proto;
	out->port = (uint16_t)port;
	out->kind = (enum service_kind)kind;
	return 0;
}

static bool spec_valid(const struct service_spec *spec)
{
	return (unsigned)spec->proto < SERVICE_PROTO_COUNT &&
	       (unsigned)spec->kind < SERVICE_KIND_COUNT &&
	       kind_offered[spec->proto][spec->kind] && spec->port != 0;
}

int services_format(const struct service_spec *spec, char *buf, size_t cap)
{
	int n;

	if (!spec || !buf || !spec_valid(spec))
		return -EINVAL;
	n = snprintf(buf, cap, "%s:%u:%s", proto_names[spec->proto], (unsigned)spec->port,
		     kind_names[spec->kind]);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= cap)
		return -ENOSPC;
	return n;
}

/* ------------------------------------------------------------------ */
/* RFC 864                                                             */
/* ------------------------------------------------------------------ */

void chargen_line(unsigned long n, char out[CHARGEN_LINE_LEN])
{
	unsigned first = (unsigned)(n % CHARGEN_RING);

	for (unsigned i = 0; i < CHARGEN_WIDTH; i++)
		out[i] = (char)(CHARGEN_FIRST + (first + i) % CHARGEN_RING);
	out[CHARGEN_WIDTH] = '\r';
	out[CHARGEN_WIDTH + 1] = '\n';
}

/* ------------------------------------------------------------------ */
/* HTTP/1.1 (RFC 9110, RFC 9112)                                        */
/* ------------------------------------------------------------------ */

/* tchar of RFC 9110 5.6.2: the characters of a method or field name. */
static bool is_tchar(unsigned char ch)
{
	if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
		return true;
	return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* field-vchar, SP and HTAB (obs-text included): what a field value may hold. */
static bool is_field_char(unsigned char ch)
{
	return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

static bool is_ows(char ch)
{
	return ch == ' ' || ch == '\t';
}

/*
 * Find the line that starts at @pos and ends within @lim. Sets *@eol to the
 * end of its content (before CR LF, or before a bare LF, which RFC 9112 2.2
 * lets a recipient accept). Returns the offset after the LF, or 0 when no LF
 * lies within @lim. A CR anywhere else stays in the content, where the
 * character checks reject it.
 */
static size_t line_next(const char *buf, size_t pos, size_t lim, size_t *eol)
{
	const char *nl = memchr(buf + pos, '\n', lim - pos);
	size_t end;

	if (!nl)
		return 0;
	end = (size_t)(nl - buf);
	*eol = (end > pos && buf[end - 1] == '\r') ? end - 1 : end;
	return end + 1;
}

/* METHOD SP TARGET SP HTTP/D.D, strictly single spaces. */
static int request_line_parse(const char *p, size_t n, struct http_request *r)
{
	size_t i = 0, t;

	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ' ')
		return -EINVAL;
	if (i == 3 && memcmp(p, "GET", 3) == 0)
		r->method = HTTP_METHOD_GET;
	else if (i == 4 && memcmp(p, "HEAD", 4) == 0)
		r->method = HTTP_METHOD_HEAD;
	else
		r->method = HTTP_METHOD_OTHER;

	t = ++i;
	while (i < n && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f)
		i++;
	if (i == t || i >= n || p[i] != ' ')
		return -EINVAL;
	r->target = p + t;
	r->target_len = i - t;
	i++;

	if (n - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 5] < '0' || p[i + 5] > '9' ||
	    p[i + 6] != '.' || p[i + 7] < '0' || p[i + 7] > '9')
		return -EINVAL;
	r->version_major = (unsigned)(p[i + 5] - '0');
	r->version_minor = (unsigned)(p[i + 7] - '0');
	return 0;
}

/* What the header fields said that matters here. */
struct head_fields {
	bool close;
	bool keep_alive;
	bool have_length;
	bool transfer_encoding;
	uint64_t length;
};

static bool name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Connection = #connection-option: a comma list, empty elements allowed. */
static void connection_parse(const char *v, size_t n, struct head_fields *h)
{
	size_t i = 0;

	while (i < n) {
		size_t start, end;

		while (i < n && (is_ows(v[i]) || v[i] == ','))
			i++;
		start = i;
		while (i < n && v[i] != ',')
			i++;
		end = i;
		while (end > start && is_ows(v[end - 1]))
			end--;
		if (name_is(v + start, end - start, "close"))
			h->close = true;
		else if (name_is(v + start, end - start, "keep-alive"))
			h->keep_alive = true;
	}
}

/* Content-Length = 1*DIGIT; a repeat must carry the same value. */
static int content_length_parse(const char *v, size_t n, struct head_fields *h)
{
	uint64_t len = 0;

	if (n == 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (v[i] < '0' || v[i] > '9')
			return -EINVAL;
		d = (unsigned)(v[i] - '0');
		if (len > (UINT64_MAX - d) / 10)
			return -EINVAL;
		len = len * 10 + d;
	}
	if (h->have_length && h->length != len)
		return -EINVAL;
	h->have_length = true;
	h->length = len;
	return 0;
}

/* name ":" OWS value OWS; no whitespace before the colon, no folding. */
static int field_parse(const char *p, size_t n, struct head_fields *h)
{
	size_t i = 0, name_len, start, end;

	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ':')
		return -EINVAL;
	name_len = i++;
	while (i < n && is_ows(p[i]))
		i++;
	start = i;
	end = n;
	while (end > start && is_ows(p[end - 1]))
		end--;
	for (size_t k = start; k < end; k++) {
		if (!is_field_char((unsigned char)p[k]))
			return -EINVAL;
	}

	if (name_is(p, name_len, "connection"))
		connection_parse(p + start, end - start, h);
	else if (name_is(p, name_len, "content-length"))
		return content_length_parse(p + start, end - start, h);
	else if (name_is(p, name_len, "transfer-encoding"))
		h->transfer_encoding = true;
	return 0;
}

/* No complete head yet: wait for more unless the limit is reached. */
static int head_incomplete(size_t len)
{
	return len >= HTTP_HEAD_MAX ? -E2BIG : 0;
}

int http_parse_request(const char *buf, size_t len, struct http_request *req)
{
	size_t lim = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
	struct http_request r = { 0 };
	struct head_fields h = { 0 };
	size_t pos = 0, eol = 0, next;
	int ret;

	if (!buf || !req)
		return -EINVAL;

	/* RFC 9112 2.2: empty lines before the request line are ignored. */
	for (;;) {
		next = line_next(buf, pos, lim, &eol);
		if (!next)
			return head_incomplete(len);
		if (eol > pos)
			break;
		pos = next;
	}
	ret = request_line_parse(buf + pos, eol - pos, &r);
	if (ret)
		return ret;

	for (;;) {
		pos = next;
		next = line_next(buf, pos, lim, &eol);
		if (!next)
			return head_incomplete(len);
		if (eol == pos)
			break;
		if (is_ows(buf[pos]))	/* obs-fold: RFC 9112 5.2 allows 400 */
			return -EINVAL;
		ret = field_parse(buf + pos, eol - pos, &h);
		if (ret)
			return ret;
	}

	if (r.version_major != 1)
		r.keep_alive = false;
	else if (r.version_minor >= 1)
		r.keep_alive = !h.close;
	else
		r.keep_alive = h.keep_alive && !h.close;
	r.transfer_encoding = h.transfer_encoding;
	r.content_length = h.have_length ? h.length : 0;
	*req = r;
	/* next <= HTTP_HEAD_MAX, so it fits an int. */
	return (int)next;
}

/* Skip "http://authority" or "https://authority" of an absolute-form
 * target (RFC 9112 3.2.2), leaving the path and query. */
static void target_path(const char **p, size_t *n)
{
	static const char *const schemes[] = { "http://", "https://" };

	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		size_t sl = strlen(schemes[i]);

		if (*n >= sl && strncasecmp(*p, schemes[i], sl) == 0) {
			const char *end = *p + *n, *q = *p + sl;

			while (q < end && *q != '/' && *q != '?')
				q++;
			*n = (size_t)(end - q);
			*p = q;
			return;
		}
	}
}

int http_status(const struct http_request *req)
{
	const char *path = req->target;
	size_t n = req->target_len;
	const char *query;

	if (req->version_major != 1)
		return 505;
	if (req->transfer_encoding)
		return 501;
	if (req->method == HTTP_METHOD_OTHER)
		return 405;
	target_path(&path, &n);
	query = memchr(path, '?', n);
	if (query)
		n = (size_t)(query - path);
	/* An absolute-form target without a path means "/". */
	if (n == 0 && path != req->target)
		return 200;
	return n == 1 && path[0] == '/' ? 200 : 404;
}

static const char *status_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 505: return "HTTP Version Not Supported";
	default: return NULL;
	}
}

/* IMF-fixdate of RFC 9110 5.6.7, without the locale strftime() would use. */
static int http_date(time_t now, char *buf, size_t cap)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	int n;

	if (!gmtime_r(&now, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
	    tm.tm_mon > 11)
		return -EINVAL;
	n = snprintf(buf, cap, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
		     months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return n < 0 || (size_t)n >= cap ? -EINVAL : 0;
}

int http_response(int status, bool head, bool keep_alive, const char *id, time_t now, char *buf,
		  size_t cap)
{
	const char *reason = status_reason(status);
	char body[SERVICE_ID_MAX + 64];
	char date[64];
	int body_len, n;

	if (!reason || !id || !buf)
		return -EINVAL;
	if (status == 200)
		body_len = snprintf(body, sizeof(body), "netstack %s\n", id);
	else
		body_len = snprintf(body, sizeof(body), "%d %s\n", status, reason);
	if (body_len < 0 || (size_t)body_len >= sizeof(body))
		return -EINVAL;
	if (http_date(now, date, sizeof(date)))
		return -EINVAL;

	n = snprintf(buf, cap,
		     "HTTP/1.1 %d %s\r\n"
		     "Date: %s\r\n"
		     "Server: netstack\r\n"
		     "Content-Type: text/plain; charset=utf-8\r\n"
		     "Content-Length: %d\r\n"
		     "%s"
		     "Connection: %s\r\n"
		     "\r\n"
		     "%s",
		     status, reason, date, body_len, status == 405 ? "Allow: GET, HEAD\r\n" : "",
		     keep_alive ? "keep-alive" : "close", head ? "" : body);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= cap)
		return -ENOSPC;
	return n;
}

/* ------------------------------------------------------------------ */
/* Threads                                                             */
/* ------------------------------------------------------------------ */

/* One line on stderr; @err 0 adds no error text. */
static void warn(const struct listener *l, const char *what, int err)
{
	char eb[128];

	if (err)
		fprintf(stderr, "netstack: %s: %s: %s: %s\n", l->svc->id, l->name, what,
			strerror_r(-err, eb, sizeof(eb)));
	else
		fprintf(stderr, "netstack: %s: %s: %s\n", l->svc->id, l->name, what);
}

static bool is_stopping(struct services *svc)
{
	bool stopping;

	pthread_mutex_lock(&svc->lock);
	stopping = svc->stopping;
	pthread_mutex_unlock(&svc->lock);
	return stopping;
}

static void deadline_after(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static bool deadline_passed(const struct timespec *ts)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > ts->tv_sec || (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

/* Wait BACKOFF_MS, or less if a worker ends or the set is stopping. */
static void backoff(struct services *svc)
{
	struct timespec ts;

	deadline_after(&ts, BACKOFF_MS);
	pthread_mutex_lock(&svc->lock);
	if (!svc->stopping)
		pthread_cond_timedwait(&svc->cond, &svc->lock, &ts);
	pthread_mutex_unlock(&svc->lock);
}

/* Send all of @buf on a blocking socket. */
static int send_all(struct ns_stack *s, int sock, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = ns_send(s, sock, p, len, MSG_NOSIGNAL);

		if (n < 0)
			return (int)n;
		/* A blocking send queues something or fails; never spin on 0. */
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void echo_serve(struct conn *c)
{
	struct ns_stack *s = c->svc->stack;

	for (;;) {
		ssize_t n = ns_recv(s, c->sock, c->buf, sizeof(c->buf), 0);

		/* 0: the peer's EOF; < 0: reset, or closed by services_stop(). */
		if (n <= 0)
			return;
		if (send_all(s, c->sock, c->buf, (size_t)n) < 0)
			return;
	}
}

static void discard_serve(struct conn *c)
{
	struct ns_stack *s = c->svc->stack;

	while (ns_recv(s, c->sock, c->buf, sizeof(c->buf), 0) > 0)
		;
}

/* RFC 864: send until the peer goes; what it sends is never read (and is
 * thrown away with the connection). */
static void chargen_serve(struct conn *c)
{
	size_t lines = (size_t)CHARGEN_PERIODS * CHARGEN_RING;

	for (size_t i = 0; i < lines; i++)
		chargen_line(i, (char *)c->buf + i * CHARGEN_LINE_LEN);
	/* The buffer holds whole periods, so sending it again continues the
	 * pattern seamlessly. */
	while (send_all(c->svc->stack, c->sock, c->buf, lines * CHARGEN_LINE_LEN) == 0)
		;
}

/*
 * Close an HTTP connection the way RFC 9112 9.6 asks: half-close, then read
 * and drop what the peer still sends (pipelined requests after the last one
 * answered) until its FIN, for a bounded time. Closing with unread data would
 * send RST, which can destroy the response before the peer has read it.
 */
static void linger_drain(struct conn *c)
{
	struct ns_stack *s = c->svc->stack;
	struct timeval tv = { .tv_sec = LINGER_READ_MS / 1000,
			      .tv_usec = (LINGER_READ_MS % 1000) * 1000 };
	struct timespec deadline;

	if (ns_shutdown(s, c->sock, SHUT_WR) < 0)
		return;
	if (ns_setsockopt(s, c->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return;
	deadline_after(&deadline, LINGER_TOTAL_MS);
	while (ns_recv(s, c->sock, c->buf, sizeof(c->buf), 0) > 0) {
		if (deadline_passed(&deadline))
			return;
	}
}

static void http_serve(struct conn *c)
{
	struct ns_stack *s = c->svc->stack;
	char *in = (char *)c->buf;
	size_t start = 0, end = 0;	/* unparsed input: in[start, end) */
	uint64_t skip = 0;		/* body bytes still to drop */
	size_t out_len = 0;
	bool closing = false;
	char *out;

	out = malloc(HTTP_OUT_SIZE);
	if (!out)
		return;
	for (;;) {
		while (!closing && start < end) {
			struct http_request req;
			bool keep = false, head = false;
			int status, ret, n;

			if (skip > 0) {
				size_t d = end - start < skip ? end - start : (size_t)skip;

				start += d;
				skip -= d;
				continue;
			}
			ret = http_parse_request(in + start, end - start, &req);
			if (ret == 0)
				break;
			if (ret < 0) {
				status = ret == -E2BIG ? 431 : 400;
			} else {
				status = http_status(&req);
				head = req.method == HTTP_METHOD_HEAD;
				/* After 501 (Transfer-Encoding) or 505 the body's end is
				 * unknown: the connection cannot carry on. */
				keep = req.keep_alive && status != 501 && status != 505;
				start += (size_t)ret;
				skip = req.content_length;
			}
			if (HTTP_OUT_SIZE - out_len < HTTP_RESPONSE_MAX) {
				if (send_all(s, c->sock, out, out_len) < 0)
					goto out;
				out_len = 0;
			}
			n = http_response(status, head, keep, c->svc->id, time(NULL), out + out_len,
					  HTTP_OUT_SIZE - out_len);
			if (n < 0)
				goto out;
			out_len += (size_t)n;
			closing = !keep;
		}
		if (out_len > 0) {
			if (send_all(s, c->sock, out, out_len) < 0)
				goto out;
			out_len = 0;
		}
		if (closing) {
			linger_drain(c);
			goto out;
		}
		/* Keep a partial head at the front; it is shorter than
		 * HTTP_HEAD_MAX, so there is always room to read more. */
		if (start > 0) {
			memmove(in, in + start, end - start);
			end -= start;
			start = 0;
		}
		ssize_t got = ns_recv(s, c->sock, in + end, sizeof(c->buf) - end, 0);
		/* EOF (a partial request is dropped), reset, or stopped. */
		if (got <= 0)
			goto out;
		end += (size_t)got;
	}
out:
	free(out);
}

typedef void (*serve_fn)(struct conn *c);

static const serve_fn serve_tcp[] = {
	[SERVICE_ECHO] = echo_serve,
	[SERVICE_DISCARD] = discard_serve,
	[SERVICE_CHARGEN] = chargen_serve,
	[SERVICE_HTTP] = http_serve,
};
static_assert(sizeof(serve_tcp) / sizeof(serve_tcp[0]) == SERVICE_KIND_COUNT,
	      "serve_tcp matches enum service_kind");

/* Close the connection unless services_stop() did, and let it go. After
 * this the worker touches neither the set nor the stack. */
static void conn_release(struct conn *c)
{
	struct services *svc = c->svc;

	pthread_mutex_lock(&svc->lock);
	if (!c->closed) {
		/* Only -EBADF is possible, and the number is ours until now. */
		(void)ns_close(svc->stack, c->sock);
		c->closed = true;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		svc->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	svc->nconns--;
	pthread_cond_broadcast(&svc->cond);
	pthread_mutex_unlock(&svc->lock);
	free(c);
}

static void *worker_main(void *arg)
{
	struct conn *c = arg;

	serve_tcp[c->l->spec.kind](c);
	conn_release(c);
	return NULL;
}

/* Give a freshly accepted socket its worker, or close it: 0, -EAGAIN at
 * SERVICE_CONN_MAX, or -errno. */
static int conn_spawn(struct listener *l, int sock)
{
	struct services *svc = l->svc;
	pthread_t thread;
	struct conn *c;
	int err;

	c = malloc(sizeof(*c));
	if (!c) {
		(void)ns_close(svc->stack, sock);
		return -ENOMEM;
	}
	c->svc = svc;
	c->l = l;
	c->sock = sock;
	c->closed = false;
	c->prev = NULL;

	pthread_mutex_lock(&svc->lock);
	if (svc->stopping || svc->nconns >= SERVICE_CONN_MAX) {
		/* -EAGAIN, which a blocking accept never returns, tells
		 * "at the limit" apart from the stack's own -EMFILE. */
		err = svc->stopping ? 0 : -EAGAIN;
		pthread_mutex_unlock(&svc->lock);
		(void)ns_close(svc->stack, sock);
		free(c);
		return err;
	}
	c->next = svc->conns;
	if (c->next)
		c->next->prev = c;
	svc->conns = c;
	svc->nconns++;
	pthread_mutex_unlock(&svc->lock);

	err = pthread_create(&thread, &svc->worker_attr, worker_main, c);
	if (err) {
		conn_release(c);
		return -err;
	}
	return 0;
}

static void *acceptor_main(void *arg)
{
	struct listener *l = arg;
	struct services *svc = l->svc;
	int last_err = 0;

	for (;;) {
		int sock = ns_accept(svc->stack, l->sock, NULL, NULL, 0);
		int err;

		if (sock < 0) {
			if (is_stopping(svc))
				break;
			if (sock == -ECONNABORTED)
				continue;
			if (sock == -EBADF || sock == -EINVAL || sock == -ENOTSOCK) {
				warn(l, "accept failed for good", sock);
				break;
			}
			/* Resources (socket table, memory): say so once, then
			 * retry after a pause rather than spin. */
			if (sock != last_err)
				warn(l, "accept", sock);
			last_err = sock;
			backoff(svc);
			continue;
		}
		err = conn_spawn(l, sock);
		if (err && err != last_err) {
			if (err == -EAGAIN)
				warn(l, STR(SERVICE_CONN_MAX) " connections open, closing new ones",
				     0);
			else
				warn(l, "cannot serve a connection", err);
		}
		last_err = err;
	}
	return NULL;
}

static void *udp_main(void *arg)
{
	struct listener *l = arg;
	struct services *svc = l->svc;
	int last_err = 0;

	for (;;) {
		struct sockaddr_storage from;
		socklen_t from_len = sizeof(from);
		ssize_t n, sent;

		n = ns_recvfrom(svc->stack, l->sock, l->buf, SERVICE_BUF_SIZE, 0,
				(struct sockaddr *)&from, &from_len);
		if (n < 0) {
			if (is_stopping(svc))
				break;
			if (n == -EBADF || n == -EINVAL || n == -ENOTSOCK) {
				warn(l, "receive failed for good", (int)n);
				break;
			}
			if (n != last_err)
				warn(l, "receive", (int)n);
			last_err = (int)n;
			backoff(svc);
			continue;
		}
		sent = ns_sendto(svc->stack, l->sock, l->buf, (size_t)n, MSG_NOSIGNAL,
				 (struct sockaddr *)&from, from_len);
		if (sent < 0) {
			if (is_stopping(svc))
				break;
			/* The datagram is lost, as UDP allows; say so once. */
			if (sent != last_err)
				warn(l, "send", (int)sent);
			last_err = (int)sent;
			continue;
		}
		last_err = 0;
	}
	return NULL;
}

/* Create, configure and bind the service's socket (listening for TCP). */
static int listener_open(struct services *svc, struct listener *l)
{
	struct sockaddr_in6 sa = {
		.sin6_family = AF_INET6,
		.sin6_port = htons(l->spec.port),
		.sin6_addr = IN6ADDR_ANY_INIT,
	};
	bool tcp = l->spec.proto == SERVICE_TCP;
	int one = 1;
	int ret;

	/* AF_INET6 on :: also serves IPv4 peers (IPV6_V6ONLY is off by default). */
	ret = ns_socket(svc->stack, AF_INET6, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
	if (ret < 0)
		return ret;
	l->sock = ret;

	if (tcp) {
		ret = ns_setsockopt(svc->stack, l->sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ret < 0)
			return ret;
	}
	ret = ns_bind(svc->stack, l->sock, (const struct sockaddr *)&sa, sizeof(sa));
	if (ret < 0)
		return ret;
	if (tcp)
		return ns_listen(svc->stack, l->sock, SERVICE_BACKLOG);

	l->buf = malloc(SERVICE_BUF_SIZE);
	return l->buf ? 0 : -ENOMEM;
}

/*
 * Take over @sock for the service: check that it is what the service would
 * have opened (a TCP listener or a bound UDP socket, on the service's port).
 * Nothing is changed on the socket, so a refusal leaves it as it was.
 */
static int listener_adopt(struct services *svc, struct listener *l, int sock)
{
	bool tcp = l->spec.proto == SERVICE_TCP;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(int);
	int type = 0, listening = 0;
	uint16_t port;
	int ret;

	ret = ns_getsockopt(svc->stack, sock, SOL_SOCKET, SO_TYPE, &type, &len);
	if (ret < 0)
		return ret;
	if (type != (tcp ? SOCK_STREAM : SOCK_DGRAM))
		return -EPROTOTYPE;
	if (tcp) {
		len = sizeof(listening);
		ret = ns_getsockopt(svc->stack, sock, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
		if (ret < 0)
			return ret;
		if (!listening)
			return -ENOTCONN;
	}
	len = sizeof(ss);
	ret = ns_getsockname(svc->stack, sock, (struct sockaddr *)&ss, &len);
	if (ret < 0)
		return ret;
	if (ss.ss_family == AF_INET6)
		port = ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
	else if (ss.ss_family == AF_INET)
		port = ntohs(((const struct sockaddr_in *)&ss)->sin_port);
	else
		return -ENOTCONN;	/* unbound */
	if (port == 0)
		return -ENOTCONN;
	if (port != l->spec.port)
		return -EADDRNOTAVAIL;
	if (!tcp) {
		l->buf = malloc(SERVICE_BUF_SIZE);
		if (!l->buf)
			return -ENOMEM;
	}
	l->sock = sock;
	return 0;
}

/* Everything services_start() and services_adopt() validate before they
 * touch the stack; @socks is NULL for services_start(). */
static int specs_check(const struct service_spec *specs, const int *socks, size_t n, size_t *bad)
{
	for (size_t i = 0; i < n; i++) {
		*bad = i;
		if (!spec_valid(&specs[i]) || (socks && socks[i] < 0))
			return -EINVAL;
		for (size_t j = 0; j < i; j++) {
			if (specs[j].proto == specs[i].proto && specs[j].port == specs[i].port)
				return -EEXIST;
			if (socks && socks[j] == socks[i])
				return -EEXIST;
		}
	}
	*bad = n;
	return 0;
}

/* services_start() with @socks NULL, services_adopt() otherwise. */
static int start(struct ns_stack *s, const char *id, const struct service_spec *specs,
		 const int *socks, size_t n, struct services **out, size_t *failed)
{
	bool adopting = socks != NULL;
	pthread_condattr_t cattr;
	struct services *svc;
	size_t bad = n, i;
	int ret;

	if (!s || !id || !out || (n > 0 && !specs) || id[0] == '\0' ||
	    strlen(id) > SERVICE_ID_MAX) {
		ret = -EINVAL;
		goto fail_args;
	}
	ret = specs_check(specs, socks, n, &bad);
	if (ret)
		goto fail_args;

	svc = calloc(1, sizeof(*svc) + n * sizeof(svc->l[0]));
	if (!svc) {
		ret = -ENOMEM;
		goto fail_args;
	}
	svc->stack = s;
	strcpy(svc->id, id);
	svc->n = n;

	ret = -pthread_mutex_init(&svc->lock, NULL);
	if (ret)
		goto fail_mutex;
	ret = -pthread_condattr_init(&cattr);
	if (ret)
		goto fail_condattr;
	ret = -pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	if (!ret)
		ret = -pthread_cond_init(&svc->cond, &cattr);
	pthread_condattr_destroy(&cattr);
	if (ret)
		goto fail_condattr;
	ret = -pthread_attr_init(&svc->worker_attr);
	if (ret)
		goto fail_attr;
	ret = -pthread_attr_setdetachstate(&svc->worker_attr, PTHREAD_CREATE_DETACHED);
	if (ret)
		goto fail_attr_set;
	/* A smaller stack is only an economy: keep the default if refused. */
	(void)pthread_attr_setstacksize(&svc->worker_attr, WORKER_STACK_SIZE);

	/* From here services_stop() can undo any partial state. */
	for (i = 0; i < n; i++) {
		struct listener *l = &svc->l[i];

		l->svc = svc;
		l->spec = specs[i];
		l->sock = -1;
		(void)services_format(&l->spec, l->name, sizeof(l->name));
	}
	for (i = 0; i < n; i++) {
		ret = socks ? listener_adopt(svc, &svc->l[i], socks[i]) : listener_open(svc, &svc->l[i]);
		if (ret) {
			bad = i;
			goto fail_started;
		}
	}
	for (i = 0; i < n; i++) {
		struct listener *l = &svc->l[i];

		ret = -pthread_create(&l->thread, NULL,
				      l->spec.proto == SERVICE_TCP ? acceptor_main : udp_main, l);
		if (ret) {
			bad = n;
			/* Threads are blocked on the sockets: only closing them
			 * wakes those threads, adopted or not. */
			adopting = false;
			goto fail_started;
		}
		l->running = true;
	}
	*out = svc;
	return 0;

fail_started:
	/* A refused adoption leaves the caller's sockets open. */
	for (i = 0; adopting && i < n; i++)
		svc->l[i].closed = true;
	services_stop(svc);
	goto fail_args;
fail_attr_set:
	pthread_attr_destroy(&svc->worker_attr);
fail_attr:
	pthread_cond_destroy(&svc->cond);
fail_condattr:
	pthread_mutex_destroy(&svc->lock);
fail_mutex:
	free(svc);
fail_args:
	if (failed)
		*failed = bad;
	return ret;
}

int services_start(struct ns_stack *s, const char *id, const struct service_spec *specs, size_t n,
		   struct services **out, size_t *failed)
{
	return start(s, id, specs, NULL, n, out, failed);
}

int services_adopt(struct ns_stack *s, const char *id, const struct service_spec *specs,
		   const int *socks, size_t n, struct services **out, size_t *failed)
{
	if (n > 0 && !socks) {
		if (failed)
			*failed = n;
		return -EINVAL;
	}
	return start(s, id, specs, socks ? socks : (const int[1]){ 0 }, n, out, failed);
}

int services_socket(const struct services *svc, size_t i)
{
	if (!svc || i >= svc->n || svc->l[i].sock < 0)
		return -EINVAL;
	return svc->l[i].sock;
}

void services_stop(struct services *svc)
{
	if (!svc)
		return;

	/* (1) No new work; wake the acceptors and UDP threads. */
	pthread_mutex_lock(&svc->lock);
	svc->stopping = true;
	for (size_t i = 0; i < svc->n; i++) {
		struct listener *l = &svc->l[i];

		if (l->sock >= 0 && !l->closed) {
			(void)ns_close(svc->stack, l->sock);
			l->closed = true;
		}
	}
	pthread_cond_broadcast(&svc->cond);
	pthread_mutex_unlock(&svc->lock);

	/* (2) Once they are gone, no thread creates sockets any more. */
	for (size_t i = 0; i < svc->n; i++) {
		if (svc->l[i].running)
			pthread_join(svc->l[i].thread, NULL);
	}

	/* (3) Unblock every worker and wait until all have let go. */
	pthread_mutex_lock(&svc->lock);
	for (struct conn *c = svc->conns; c; c = c->next) {
		if (!c->closed) {
			(void)ns_close(svc->stack, c->sock);
			c->closed = true;
		}
	}
	while (svc->nconns > 0)
		pthread_cond_wait(&svc->cond, &svc->lock);
	pthread_mutex_unlock(&svc->lock);

	for (size_t i = 0; i < svc->n; i++)
		free(svc->l[i].buf);
	pthread_attr_destroy(&svc->worker_attr);
	pthread_cond_destroy(&svc->cond);
	pthread_mutex_destroy(&svc->lock);
	free(svc);
}
