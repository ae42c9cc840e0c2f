/* SPDX-License-Identifier: MIT */
/*
 * test_services.c - unit tests of tools/services.c's pure parts, which need
 * no stack: the service spec parser and formatter, the HTTP/1.1 request
 * parser, status choice and response writer, and the RFC 864 line
 * generator. The threads and sockets are exercised by the integration tests.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services.h"

/* ------------------------------------------------------------------ */
/* services_parse / services_format                                    */
/* ------------------------------------------------------------------ */

static void expect_spec(const char *text, enum service_proto proto, unsigned port,
			enum service_kind kind)
{
	struct service_spec spec;

	cr_assert_eq(services_parse(text, &spec), 0, "'%s' parses", text);
	cr_expect_eq(spec.proto, proto, "'%s': protocol", text);
	cr_expect_eq(spec.port, port, "'%s': port", text);
	cr_expect_eq(spec.kind, kind, "'%s': kind", text);
}

static void expect_bad_spec(const char *text, int err)
{
	struct service_spec spec = { .proto = SERVICE_UDP, .port = 4242, .kind = SERVICE_ECHO };

	cr_expect_eq(services_parse(text, &spec), err, "'%s' is refused with %d", text, err);
	cr_expect(spec.proto == SERVICE_UDP && spec.port == 4242 && spec.kind == SERVICE_ECHO,
		  "'%s': the output is untouched", text);
}

Test(services_parse, accepts_every_offered_kind)
{
	expect_spec("tcp:7:echo", SERVICE_TCP, 7, SERVICE_ECHO);
	expect_spec("tcp:9:discard", SERVICE_TCP, 9, SERVICE_DISCARD);
	expect_spec("tcp:19:chargen", SERVICE_TCP, 19, SERVICE_CHARGEN);
	expect_spec("tcp:80:http", SERVICE_TCP, 80, SERVICE_HTTP);
	expect_spec("udp:7:echo", SERVICE_UDP, 7, SERVICE_ECHO);
}

Test(services_parse, accepts_port_range_ends)
{
	expect_spec("tcp:1:echo", SERVICE_TCP, 1, SERVICE_ECHO);
	expect_spec("udp:65535:echo", SERVICE_UDP, 65535, SERVICE_ECHO);
	expect_spec("tcp:0080:http", SERVICE_TCP, 80, SERVICE_HTTP);
}

Test(services_parse, refuses_malformed_specs)
{
	expect_bad_spec("", -EINVAL);
	expect_bad_spec("tcp", -EINVAL);
	expect_bad_spec("tcp:80", -EINVAL);
	expect_bad_spec("tcp:80:", -EINVAL);
	expect_bad_spec(":80:echo", -EINVAL);
	expect_bad_spec("tcp::echo", -EINVAL);
	expect_bad_spec("tcp:80:echo:1", -EINVAL);
	expect_bad_spec("::", -EINVAL);
	cr_expect_eq(services_parse(NULL, &(struct service_spec){ 0 }), -EINVAL);
	cr_expect_eq(services_parse("tcp:80:echo", NULL), -EINVAL);
}

Test(services_parse, refuses_unknown_protocols)
{
	expect_bad_spec("sctp:80:echo", -EPROTONOSUPPORT);
	expect_bad_spec("TCP:80:echo", -EPROTONOSUPPORT);
	expect_bad_spec("tcpx:80:echo", -EPROTONOSUPPORT);
	expect_bad_spec("tc:80:echo", -EPROTONOSUPPORT);
}

Test(services_parse, refuses_bad_ports)
{
	expect_bad_spec("tcp:0:echo", -ERANGE);
	expect_bad_spec("tcp:65536:echo", -ERANGE);
	expect_bad_spec("tcp:99999999999999999999999:echo", -ERANGE);
	expect_bad_spec("tcp:-1:echo", -ERANGE);
	expect_bad_spec("tcp:+80:echo", -ERANGE);
	expect_bad_spec("tcp: 80:echo", -ERANGE);
	expect_bad_spec("tcp:8o:echo", -ERANGE);
	expect_bad_spec("tcp:0x50:echo", -ERANGE);
}

Test(services_parse, refuses_kinds_the_protocol_lacks)
{
	expect_bad_spec("tcp:80:ftp", -EOPNOTSUPP);
	expect_bad_spec("tcp:80:HTTP", -EOPNOTSUPP);
	expect_bad_spec("tcp:80:http ", -EOPNOTSUPP);
	expect_bad_spec("udp:9:discard", -EOPNOTSUPP);
	expect_bad_spec("udp:19:chargen", -EOPNOTSUPP);
	expect_bad_spec("udp:80:http", -EOPNOTSUPP);
}

Test(services_format, round_trips_parse)
{
	static const char *const texts[] = { "tcp:7:echo", "tcp:9:discard", "tcp:65535:chargen",
					     "tcp:80:http", "udp:7:echo" };

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct service_spec spec;
		char buf[SERVICE_SPEC_MAX];

		cr_assert_eq(services_parse(texts[i], &spec), 0);
		cr_expect_eq(services_format(&spec, buf, sizeof(buf)), (int)strlen(texts[i]));
		cr_expect_str_eq(buf, texts[i]);
	}
}

Test(services_format, refuses_invalid_specs_and_short_buffers)
{
	struct service_spec udp_http = { .proto = SERVICE_UDP, .port = 80, .kind = SERVICE_HTTP };
	struct service_spec port0 = { .proto = SERVICE_TCP, .port = 0, .kind = SERVICE_ECHO };
	struct service_spec ok = { .proto = SERVICE_TCP, .port = 80, .kind = SERVICE_HTTP };
	char buf[SERVICE_SPEC_MAX];

	cr_expect_eq(services_format(&udp_http, buf, sizeof(buf)), -EINVAL);
	cr_expect_eq(services_format(&port0, buf, sizeof(buf)), -EINVAL);
	cr_expect_eq(services_format(&ok, buf, strlen("tcp:80:http")), -ENOSPC);
}

/* ------------------------------------------------------------------ */
/* http_parse_request / http_status / http_response                    */
/* ------------------------------------------------------------------ */

/* Parse @text, which must be exactly one complete request head. */
static struct http_request parse_one(const char *text)
{
	struct http_request req;
	int ret = http_parse_request(text, strlen(text), &req);

	cr_assert_eq(ret, (int)strlen(text), "'%s' parses whole (got %d)", text, ret);
	return req;
}

static bool target_is(const struct http_request *req, const char *want)
{
	return req->target_len == strlen(want) && memcmp(req->target, want, req->target_len) == 0;
}

Test(http_parse_request, get_root)
{
	struct http_request req = parse_one("GET / HTTP/1.1\r\nHost: example\r\n\r\n");

	cr_expect_eq(req.method, HTTP_METHOD_GET);
	cr_expect(target_is(&req, "/"));
	cr_expect_eq(req.version_major, 1);
	cr_expect_eq(req.version_minor, 1);
	cr_expect_eq(req.content_length, 0);
	cr_expect_not(req.transfer_encoding);
	cr_expect_eq(http_status(&req), 200);
}

Test(http_parse_request, head_root)
{
	struct http_request req = parse_one("HEAD / HTTP/1.1\r\n\r\n");

	cr_expect_eq(req.method, HTTP_METHOD_HEAD);
	cr_expect_eq(http_status(&req), 200);
}

Test(http_parse_request, keep_alive_is_the_default_of_http11)
{
	cr_expect(parse_one("GET / HTTP/1.1\r\n\r\n").keep_alive);
}

Test(http_parse_request, close_is_the_default_of_http10)
{
	cr_expect_not(parse_one("GET / HTTP/1.0\r\n\r\n").keep_alive);
}

Test(http_parse_request, http10_keep_alive_on_request)
{
	cr_expect(parse_one("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
}

Test(http_parse_request, connection_close_ends_http11)
{
	cr_expect_not(parse_one("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
	cr_expect_not(parse_one("GET / HTTP/1.1\r\nconnection:CLOSE\r\n\r\n").keep_alive);
	cr_expect_not(parse_one("GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n").keep_alive);
}

Test(http_parse_request, close_wins_over_keep_alive)
{
	cr_expect_not(parse_one("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
	cr_expect_not(
		parse_one("GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n")
			.keep_alive);
}

Test(http_parse_request, pipelined_requests_parse_in_order)
{
	const char *first = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	const char *second = "HEAD /other HTTP/1.1\r\nConnection: close\r\n\r\n";
	char buf[256];
	struct http_request req;
	size_t len;
	int n1, n2;

	len = (size_t)snprintf(buf, sizeof(buf), "%s%s", first, second);
	n1 = http_parse_request(buf, len, &req);
	cr_assert_eq(n1, (int)strlen(first));
	cr_expect_eq(req.method, HTTP_METHOD_GET);
	cr_expect(req.keep_alive);

	n2 = http_parse_request(buf + n1, len - (size_t)n1, &req);
	cr_assert_eq(n2, (int)strlen(second));
	cr_expect_eq(req.method, HTTP_METHOD_HEAD);
	cr_expect(target_is(&req, "/other"));
	cr_expect_not(req.keep_alive);
	cr_expect_eq(http_status(&req), 404);
}

Test(http_parse_request, every_prefix_needs_more)
{
	const char *text = "GET / HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n";
	struct http_request req;

	for (size_t len = 0; len < strlen(text); len++)
		cr_expect_eq(http_parse_request(text, len, &req), 0, "prefix of %zu bytes", len);
}

Test(http_parse_request, leading_empty_lines_and_bare_lf)
{
	struct http_request req = parse_one("\r\n\nGET / HTTP/1.1\nHost: x\n\n");

	cr_expect_eq(req.method, HTTP_METHOD_GET);
	cr_expect_eq(http_status(&req), 200);
}

Test(http_parse_request, body_length_is_reported_not_consumed)
{
	const char *text = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
	struct http_request req;
	int n = http_parse_request(text, strlen(text), &req);

	cr_expect_eq(n, (int)(strlen(text) - 5));
	cr_expect_eq(req.content_length, 5);
}

Test(http_parse_request, malformed_requests_are_400)
{
	static const char *const bad[] = {
		"GET /\r\n\r\n",				/* no version */
		"GET  / HTTP/1.1\r\n\r\n",			/* two spaces */
		"GET / HTTP/1.1 \r\n\r\n",			/* trailing space */
		" GET / HTTP/1.1\r\n\r\n",			/* leading space */
		"GET / HTTP/1.10\r\n\r\n",			/* two-digit minor */
		"GET / FOO/1.1\r\n\r\n",			/* not HTTP */
		"GET / http/1.1\r\n\r\n",			/* case matters */
		"G(T / HTTP/1.1\r\n\r\n",			/* not a token */
		"GET /a\x01 HTTP/1.1\r\n\r\n",			/* control in target */
		"GET / HTTP/1.1\r\nNo colon\r\n\r\n",
		"GET / HTTP/1.1\r\nName : value\r\n\r\n",	/* space before colon */
		"GET / HTTP/1.1\r\n: value\r\n\r\n",		/* empty name */
		"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",	/* obs-fold */
		"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",		/* bare CR */
		"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length:\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
	};
	struct http_request req;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(http_parse_request(bad[i], strlen(bad[i]), &req), -EINVAL,
			     "case %zu is malformed", i);
}

Test(http_parse_request, nul_in_a_field_is_400)
{
	static const char text[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
	struct http_request req;

	cr_expect_eq(http_parse_request(text, sizeof(text) - 1, &req), -EINVAL);
}

Test(http_parse_request, bad_request_line_is_400_before_the_head_ends)
{
	const char *text = "GET / HTTP/1.1 x\r\nHost: a\r\n";
	struct http_request req;

	cr_expect_eq(http_parse_request(text, strlen(text), &req), -EINVAL);
}

/* A request whose head is exactly @len bytes, padded with one field. */
static char *head_of_length(size_t len)
{
	const char *start = "GET / HTTP/1.1\r\nX-Pad: ";
	const char *end = "\r\n\r\n";
	char *buf = malloc(len + 1);
	size_t pad = len - strlen(start) - strlen(end);

	cr_assert_not_null(buf);
	memcpy(buf, start, strlen(start));
	memset(buf + strlen(start), 'a', pad);
	memcpy(buf + strlen(start) + pad, end, strlen(end) + 1);
	return buf;
}

Test(http_parse_request, head_of_the_limit_is_accepted)
{
	char *text = head_of_length(HTTP_HEAD_MAX);
	struct http_request req;

	cr_expect_eq(http_parse_request(text, HTTP_HEAD_MAX, &req), HTTP_HEAD_MAX);
	free(text);
}

Test(http_parse_request, head_over_the_limit_is_431)
{
	char *text = head_of_length(HTTP_HEAD_MAX + 1);
	struct http_request req;

	cr_expect_eq(http_parse_request(text, HTTP_HEAD_MAX + 1, &req), -E2BIG);
	/* Short of the limit, the same bytes only need more. */
	cr_expect_eq(http_parse_request(text, HTTP_HEAD_MAX - 1, &req), 0);
	free(text);
}

Test(http_parse_request, endless_line_is_431)
{
	char *text = malloc(HTTP_HEAD_MAX);
	struct http_request req;

	cr_assert_not_null(text);
	memcpy(text, "GET /", 5);
	memset(text + 5, 'a', HTTP_HEAD_MAX - 5);
	cr_expect_eq(http_parse_request(text, HTTP_HEAD_MAX, &req), -E2BIG);
	free(text);
}

Test(http_status, other_methods_are_405)
{
	struct http_request req = parse_one("POST / HTTP/1.1\r\n\r\n");

	cr_expect_eq(req.method, HTTP_METHOD_OTHER);
	cr_expect_eq(http_status(&req), 405);
	/* Methods are case-sensitive. */
	req = parse_one("get / HTTP/1.1\r\n\r\n");
	cr_expect_eq(http_status(&req), 405);
}

Test(http_status, other_paths_are_404)
{
	struct http_request req = parse_one("GET /index.html HTTP/1.1\r\n\r\n");

	cr_expect_eq(http_status(&req), 404);
	req = parse_one("GET // HTTP/1.1\r\n\r\n");
	cr_expect_eq(http_status(&req), 404);
}

Test(http_status, query_and_absolute_form_reach_root)
{
	struct http_request req = parse_one("GET /?a=b HTTP/1.1\r\n\r\n");

	cr_expect_eq(http_status(&req), 200);
	req = parse_one("GET http://example/ HTTP/1.1\r\n\r\n");
	cr_expect_eq(http_status(&req), 200);
	req = parse_one("GET http://example HTTP/1.1\r\n\r\n");
	cr_expect_eq(http_status(&req), 200);
	req = parse_one("GET http://example/x HTTP/1.1\r\n\r\n");
	cr_expect_eq(http_status(&req), 404);
}

Test(http_status, other_major_versions_are_505)
{
	struct http_request req = parse_one("GET / HTTP/2.0\r\n\r\n");

	cr_expect_eq(http_status(&req), 505);
	cr_expect_not(req.keep_alive);
}

Test(http_status, transfer_encoding_is_501)
{
	struct http_request req = parse_one("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");

	cr_expect(req.transfer_encoding);
	cr_expect_eq(http_status(&req), 501);
}

Test(http_response, ok_names_the_stack)
{
	const char *want = "HTTP/1.1 200 OK\r\n"
			   "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
			   "Server: netstack\r\n"
			   "Content-Type: text/plain; charset=utf-8\r\n"
			   "Content-Length: 15\r\n"
			   "Connection: keep-alive\r\n"
			   "\r\n"
			   "netstack web-1\n";
	char buf[1024];
	int n = http_response(200, false, true, "web-1", 0, buf, sizeof(buf));

	cr_assert_eq(n, (int)strlen(want));
	cr_expect_eq(memcmp(buf, want, (size_t)n), 0, "got:\n%.*s", n, buf);
}

Test(http_response, head_has_length_but_no_body)
{
	char get[1024], head[1024];
	int ng = http_response(200, false, false, "web-1", 0, get, sizeof(get));
	int nh = http_response(200, true, false, "web-1", 0, head, sizeof(head));

	cr_assert_gt(ng, 0);
	cr_assert_gt(nh, 0);
	cr_expect_eq(ng - nh, (int)strlen("netstack web-1\n"));
	cr_expect_eq(memcmp(get, head, (size_t)nh), 0);
	cr_expect(memmem(head, (size_t)nh, "Content-Length: 15\r\n", 20) != NULL);
	cr_expect(memmem(head, (size_t)nh, "Connection: close\r\n", 19) != NULL);
}

Test(http_response, errors_405_400_431)
{
	char buf[1024];
	int n;

	n = http_response(405, false, true, "x", 0, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	cr_expect(memmem(buf, (size_t)n, "HTTP/1.1 405 Method Not Allowed\r\n", 33) != NULL);
	cr_expect(memmem(buf, (size_t)n, "Allow: GET, HEAD\r\n", 18) != NULL);

	n = http_response(400, false, false, "x", 0, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	cr_expect(memmem(buf, (size_t)n, "HTTP/1.1 400 Bad Request\r\n", 26) != NULL);

	n = http_response(431, false, false, "x", 0, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	cr_expect(memmem(buf, (size_t)n, "HTTP/1.1 431 Request Header Fields Too Large\r\n", 46) !=
		  NULL);
}

Test(http_response, refuses_unknown_status_and_short_buffer)
{
	char buf[64];

	cr_expect_eq(http_response(302, false, true, "x", 0, buf, sizeof(buf)), -EINVAL);
	cr_expect_eq(http_response(200, false, true, "x", 0, buf, sizeof(buf)), -ENOSPC);
}

/* ------------------------------------------------------------------ */
/* chargen_line                                                        */
/* ------------------------------------------------------------------ */

static void expect_line(unsigned long n, const char *want)
{
	char line[CHARGEN_LINE_LEN];

	cr_assert_eq(strlen(want), CHARGEN_LINE_LEN);
	chargen_line(n, line);
	cr_expect_eq(memcmp(line, want, CHARGEN_LINE_LEN), 0, "line %lu: got '%.*s'", n,
		     CHARGEN_LINE_LEN, line);
}

Test(chargen_line, first_two_lines_are_rfc864)
{
	expect_line(0, " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefg\r\n");
	expect_line(1, "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefgh\r\n");
}

Test(chargen_line, wraps_around_the_ring)
{
	/* Line 24 runs from '8' to '~' and wraps to ' '. */
	expect_line(24, "89:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~ \r\n");
}

Test(chargen_line, repeats_every_95_lines)
{
	char a[CHARGEN_LINE_LEN], b[CHARGEN_LINE_LEN];

	for (unsigned long n = 0; n < CHARGEN_RING; n++) {
		chargen_line(n, a);
		chargen_line(n + CHARGEN_RING, b);
		cr_expect_eq(memcmp(a, b, CHARGEN_LINE_LEN), 0, "line %lu", n);
	}
}
