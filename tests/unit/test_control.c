/* SPDX-License-Identifier: MIT */
/*
 * test_control.c - unit tests of tools/daemon.c's pure parts, which need no
 * stack: the control protocol's request parser and formatter (good
 * requests, every malformed shape, the size limit, random records), the
 * status line's formatter and parser, the JSON reader, and the
 * netstack-run.json reader a restore relies on.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

/* Build a record from NUL-separated fields given as one C literal with
 * explicit "\0"s: @len counts every byte, the final NUL included. */
#define REC(lit) (lit), (sizeof(lit) - 1)

static int parse(const char *buf, size_t len, struct control_request *req)
{
	const char *why = NULL;
	int ret = control_request_parse(buf, len, req, &why);

	if (ret)
		cr_expect_not_null(why, "a refusal says why");
	return ret;
}

static void refused(const char *buf, size_t len, int err)
{
	struct control_request req = { .verb = CONTROL_STATE, .timeout_ms = 7 };

	cr_expect_eq(parse(buf, len, &req), err, "record of %zu bytes refused with %d", len, err);
	cr_expect_eq(req.timeout_ms, 7, "a refused request leaves the output alone");
}

Test(control_request_parse, state_and_wait_restore_take_no_keys)
{
	struct control_request req;

	cr_assert_eq(parse(REC("state\0"), &req), 0);
	cr_expect_eq(req.verb, CONTROL_STATE);
	cr_assert_eq(parse(REC("wait-restore\0"), &req), 0);
	cr_expect_eq(req.verb, CONTROL_WAIT_RESTORE);
}

Test(control_request_parse, checkpoint_with_all_keys)
{
	struct control_request req;

	cr_assert_eq(parse(REC("checkpoint\0path=/tmp/img1\0leave-running=1\0compression=none\0"),
			   &req), 0);
	cr_expect_eq(req.verb, CONTROL_CHECKPOINT);
	cr_expect_str_eq(req.path, "/tmp/img1");
	cr_expect(req.leave_running);
	cr_expect_eq(req.compression, NS_COMPRESSION_NONE);
}

Test(control_request_parse, checkpoint_defaults_and_key_order)
{
	struct control_request req;

	cr_assert_eq(parse(REC("checkpoint\0path=/a b=c\0"), &req), 0);
	cr_expect_str_eq(req.path, "/a b=c", "a value may hold '=' and spaces");
	cr_expect_not(req.leave_running);
	cr_assert_eq(parse(REC("checkpoint\0leave-running=0\0path=/x\0"), &req), 0);
	cr_expect_str_eq(req.path, "/x");
	cr_expect_not(req.leave_running);
}

Test(control_request_parse, wait_checkpoint_timeout)
{
	struct control_request req;

	cr_assert_eq(parse(REC("wait-checkpoint\0"), &req), 0);
	cr_expect_eq(req.timeout_ms, -1, "no timeout-ms: forever");
	cr_assert_eq(parse(REC("wait-checkpoint\0timeout-ms=0\0"), &req), 0);
	cr_expect_eq(req.timeout_ms, 0);
	cr_assert_eq(parse(REC("wait-checkpoint\0timeout-ms=86400000\0"), &req), 0);
	cr_expect_eq(req.timeout_ms, CONTROL_TIMEOUT_MAX_MS);
}

Test(control_request_parse, refuses_broken_framing)
{
	refused(REC(""), -EBADMSG);
	refused(REC("state"), -EBADMSG);		/* no NUL at the end */
	refused(REC("\0"), -EBADMSG);			/* empty verb */
	refused(REC("state\0\0"), -EBADMSG);		/* empty field */
	refused(REC("checkpoint\0path=/x\0\0"), -EBADMSG);
	refused(REC("checkpoint\0path\0"), -EBADMSG);	/* no '=' */
	refused(REC("checkpoint\0path=/x\0garbage"), -EBADMSG);
}

Test(control_request_parse, refuses_unknown_verbs_and_keys)
{
	refused(REC("State\0"), -EOPNOTSUPP);
	refused(REC("stat\0"), -EOPNOTSUPP);
	refused(REC("states\0"), -EOPNOTSUPP);
	refused(REC("\xff\xfe\0"), -EOPNOTSUPP);
	refused(REC("state\0path=/x\0"), -EOPNOTSUPP);	/* a key of another verb */
	refused(REC("checkpoint\0path=/x\0timeout-ms=1\0"), -EOPNOTSUPP);
	refused(REC("checkpoint\0path=/x\0Path=/y\0"), -EOPNOTSUPP);
	refused(REC("checkpoint\0=x\0"), -EOPNOTSUPP);	/* empty key */
	refused(REC("wait-restore\0x=1\0"), -EOPNOTSUPP);
}

Test(control_request_parse, refuses_repeated_keys)
{
	refused(REC("checkpoint\0path=/x\0path=/y\0"), -EEXIST);
	refused(REC("checkpoint\0path=/x\0leave-running=1\0leave-running=1\0"), -EEXIST);
	refused(REC("wait-checkpoint\0timeout-ms=1\0timeout-ms=1\0"), -EEXIST);
}

Test(control_request_parse, refuses_bad_values)
{
	refused(REC("checkpoint\0"), -EINVAL);			/* path missing */
	refused(REC("checkpoint\0leave-running=1\0"), -EINVAL);
	refused(REC("checkpoint\0path=\0"), -EINVAL);
	refused(REC("checkpoint\0path=tmp/x\0"), -EINVAL);	/* relative */
	refused(REC("checkpoint\0path=/x\0leave-running=\0"), -EINVAL);
	refused(REC("checkpoint\0path=/x\0leave-running=2\0"), -EINVAL);
	refused(REC("checkpoint\0path=/x\0leave-running=true\0"), -EINVAL);
	refused(REC("checkpoint\0path=/x\0compression=zstd\0"), -EINVAL);
	refused(REC("checkpoint\0path=/x\0compression=\0"), -EINVAL);
	refused(REC("wait-checkpoint\0timeout-ms=\0"), -EINVAL);
	refused(REC("wait-checkpoint\0timeout-ms=-1\0"), -EINVAL);
	refused(REC("wait-checkpoint\0timeout-ms=+1\0"), -EINVAL);
	refused(REC("wait-checkpoint\0timeout-ms=1s\0"), -EINVAL);
	refused(REC("wait-checkpoint\0timeout-ms=86400001\0"), -EINVAL);
	refused(REC("wait-checkpoint\0timeout-ms=9999999999\0"), -EINVAL);
}

/* "checkpoint\0path=/" + @n - 1 'a's + "\0": a path of @n bytes. */
static char *path_request(size_t n, size_t *len)
{
	static const char head[] = "checkpoint\0path=/";
	size_t hl = sizeof(head) - 1;
	char *buf = malloc(hl + n + 1);

	cr_assert_not_null(buf);
	memcpy(buf, head, hl);
	memset(buf + hl, 'a', n - 1);
	buf[hl + n - 1] = '\0';
	*len = hl + n;
	return buf;
}

Test(control_request_parse, longest_path_is_accepted_one_more_is_refused)
{
	struct control_request req;
	size_t len;
	char *buf;

	buf = path_request(PATH_MAX - 1, &len);
	cr_expect_eq(parse(buf, len, &req), 0);
	cr_expect_eq(strlen(req.path), PATH_MAX - 1);
	free(buf);
	buf = path_request(PATH_MAX, &len);
	cr_expect_eq(parse(buf, len, &req), -EINVAL);
	free(buf);
}

Test(control_request_parse, oversize_is_refused_before_anything_else)
{
	size_t len = CONTROL_REQ_MAX + 1;
	char *buf = calloc(1, len);

	cr_assert_not_null(buf);
	memcpy(buf, "state", 6);
	refused(buf, len, -E2BIG);
	refused(buf, SIZE_MAX, -E2BIG);	/* what MSG_TRUNC may report */
	free(buf);
}

Test(control_request_parse, every_prefix_of_a_request_is_refused)
{
	static const char rec[] = "checkpoint\0path=/tmp/x\0leave-running=1\0";
	struct control_request req;

	for (size_t n = 0; n < sizeof(rec) - 1; n++) {
		bool whole_field = n > 0 && rec[n - 1] == '\0';

		/* A prefix that ends at a field boundary is a shorter valid
		 * request only when it holds the path. */
		if (whole_field && n >= strlen("checkpoint") + 1 + strlen("path=/tmp/x") + 1)
			continue;
		cr_expect_neq(parse(rec, n, &req), 0, "prefix of %zu bytes refused", n);
	}
	cr_expect_eq(parse(rec, sizeof(rec) - 1, &req), 0);
}

Test(control_request_parse, survives_random_records)
{
	static const char *const heads[] = { "", "state", "checkpoint", "wait-checkpoint" };
	unsigned seed = 1;
	char buf[512];

	for (int i = 0; i < 20000; i++) {
		struct control_request req;
		size_t len = (size_t)rand_r(&seed) % sizeof(buf);
		const char *h = heads[rand_r(&seed) % 4];
		size_t hl = strlen(h) + 1;
		int ret;

		for (size_t k = 0; k < len; k++) {
			int r = rand_r(&seed) % 8;

			buf[k] = r == 0 ? '\0' : r == 1 ? '=' : r == 2 ? '/' : (char)rand_r(&seed);
		}
		if (hl <= len)
			memcpy(buf, h, hl);
		ret = control_request_parse(buf, len, &req, NULL);
		cr_assert(ret == 0 || ret == -EBADMSG || ret == -EOPNOTSUPP || ret == -EEXIST ||
			  ret == -EINVAL,
			  "random record %d: unexpected %d", i, ret);
	}
}

Test(control_request_parse, refuses_null_arguments)
{
	struct control_request req;

	cr_expect_eq(control_request_parse(NULL, 6, &req, NULL), -EINVAL);
	cr_expect_eq(control_request_parse("state", 6, NULL, NULL), -EINVAL);
}

Test(control_request_format, round_trips_every_verb)
{
	struct control_request in[] = {
		{ .verb = CONTROL_CHECKPOINT, .path = "/tmp/img1", .leave_running = true },
		{ .verb = CONTROL_CHECKPOINT, .path = "/x" },
		{ .verb = CONTROL_STATE },
		{ .verb = CONTROL_WAIT_CHECKPOINT, .timeout_ms = -1 },
		{ .verb = CONTROL_WAIT_CHECKPOINT, .timeout_ms = 1500 },
		{ .verb = CONTROL_WAIT_RESTORE },
	};
	char buf[CONTROL_REQ_MAX];

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct control_request out;
		int n = control_request_format(&in[i], buf, sizeof(buf));

		cr_assert_gt(n, 0, "request %zu formats", i);
		cr_assert_eq(control_request_parse(buf, (size_t)n, &out, NULL), 0);
		cr_expect_eq(out.verb, in[i].verb);
		if (in[i].verb == CONTROL_CHECKPOINT) {
			cr_expect_str_eq(out.path, in[i].path);
			cr_expect_eq(out.leave_running, in[i].leave_running);
		}
		if (in[i].verb == CONTROL_WAIT_CHECKPOINT)
			cr_expect_eq(out.timeout_ms, in[i].timeout_ms);
	}
}

Test(control_request_format, exact_bytes_of_a_checkpoint)
{
	static const char want[] = "checkpoint\0path=/i\0leave-running=0\0";
	struct control_request req = { .verb = CONTROL_CHECKPOINT, .path = "/i" };
	char buf[64];

	cr_assert_eq(control_request_format(&req, buf, sizeof(buf)), (int)sizeof(want) - 1);
	cr_expect_eq(memcmp(buf, want, sizeof(want) - 1), 0);
}

Test(control_request_format, refuses_what_the_parser_would_refuse)
{
	struct control_request rel = { .verb = CONTROL_CHECKPOINT, .path = "img" };
	struct control_request empty = { .verb = CONTROL_CHECKPOINT };
	struct control_request bad_verb = { .verb = CONTROL_VERB_COUNT };
	struct control_request big = { .verb = CONTROL_WAIT_CHECKPOINT,
				       .timeout_ms = CONTROL_TIMEOUT_MAX_MS + 1 };
	char buf[CONTROL_REQ_MAX];

	cr_expect_eq(control_request_format(&rel, buf, sizeof(buf)), -EINVAL);
	cr_expect_eq(control_request_format(&empty, buf, sizeof(buf)), -EINVAL);
	cr_expect_eq(control_request_format(&bad_verb, buf, sizeof(buf)), -EINVAL);
	cr_expect_eq(control_request_format(&big, buf, sizeof(buf)), -EINVAL);
	cr_expect_eq(control_request_format(NULL, buf, sizeof(buf)), -EINVAL);
}

Test(control_request_format, short_buffer_is_enospc)
{
	struct control_request req = { .verb = CONTROL_CHECKPOINT, .path = "/tmp/img1" };
	char buf[16];

	cr_expect_eq(control_request_format(&req, buf, sizeof(buf)), -ENOSPC);
	cr_expect_eq(control_request_format(&req, buf, 3), -ENOSPC);
}

/* ------------------------------------------------------------------ */
/* Status lines                                                        */
/* ------------------------------------------------------------------ */

Test(control_response, ok_and_error_round_trip)
{
	char line[CONTROL_LINE_MAX + 1], msg[CONTROL_LINE_MAX + 1];
	bool ok;
	int n;

	n = control_response_format(true, NULL, line, sizeof(line));
	cr_assert_eq(n, 2);
	cr_expect_str_eq(line, "ok");
	cr_assert_eq(control_response_parse(line, (size_t)n, &ok, msg, sizeof(msg)), 0);
	cr_expect(ok);
	cr_expect_str_eq(msg, "");

	n = control_response_format(true, "restored", line, sizeof(line));
	cr_assert_eq(control_response_parse(line, (size_t)n, &ok, msg, sizeof(msg)), 0);
	cr_expect(ok);
	cr_expect_str_eq(msg, "restored");

	n = control_response_format(false, "image path /x is not empty", line, sizeof(line));
	cr_expect_str_eq(line, "error image path /x is not empty");
	cr_assert_eq(control_response_parse(line, (size_t)n, &ok, msg, sizeof(msg)), 0);
	cr_expect_not(ok);
	cr_expect_str_eq(msg, "image path /x is not empty");
}

Test(control_response, format_keeps_it_one_printable_line)
{
	char line[CONTROL_LINE_MAX + 1], *long_msg;
	bool ok;
	char msg[CONTROL_LINE_MAX + 1];
	int n;

	n = control_response_format(false, "a\nb\tc\x7f\xc3\xa9", line, sizeof(line));
	cr_assert_gt(n, 0);
	cr_expect_str_eq(line, "error a?b?c???");

	long_msg = malloc(3 * CONTROL_LINE_MAX);
	cr_assert_not_null(long_msg);
	memset(long_msg, 'x', 3 * CONTROL_LINE_MAX - 1);
	long_msg[3 * CONTROL_LINE_MAX - 1] = '\0';
	n = control_response_format(false, long_msg, line, sizeof(line));
	cr_expect_eq(n, CONTROL_LINE_MAX, "cut to the line limit");
	cr_expect_eq(control_response_parse(line, (size_t)n, &ok, msg, sizeof(msg)), 0);
	free(long_msg);
}

Test(control_response, format_refuses_error_without_text_and_short_buffers)
{
	char line[8];

	cr_expect_eq(control_response_format(false, NULL, line, sizeof(line)), -EINVAL);
	cr_expect_eq(control_response_format(false, "", line, sizeof(line)), -EINVAL);
	cr_expect_eq(control_response_format(false, "too long", line, sizeof(line)), -ENOSPC);
	cr_expect_eq(control_response_format(true, NULL, line, 2), -ENOSPC);
}

static void response_refused(const char *line, size_t len)
{
	char msg[CONTROL_LINE_MAX + 1];
	bool ok;

	cr_expect_eq(control_response_parse(line, len, &ok, msg, sizeof(msg)), -EBADMSG,
		     "'%.*s' refused", (int)len, line);
}

Test(control_response, parse_refuses_malformed_lines)
{
	char big[CONTROL_LINE_MAX + 1];

	response_refused("", 0);
	response_refused("o", 1);
	response_refused("okay", 4);
	response_refused("ok ", 3);
	response_refused("OK", 2);
	response_refused("error", 5);
	response_refused("error ", 6);
	response_refused("ok\n", 3);
	response_refused("ok\0x", 4);
	response_refused("error \xff", 7);
	memset(big, 'x', sizeof(big));
	memcpy(big, "ok ", 3);
	response_refused(big, sizeof(big));
}

Test(control_response, parse_short_msg_buffer_is_enospc)
{
	char msg[4];
	bool ok;

	cr_expect_eq(control_response_parse("error long text", 15, &ok, msg, sizeof(msg)), -ENOSPC);
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */
/* ------------------------------------------------------------------ */

static int jparse(const char *text, struct json_tok *toks, size_t cap)
{
	return json_parse(text, strlen(text), toks, cap);
}

Test(json_parse, tokens_in_document_order)
{
	const char *t = " {\"a\": [1, -2.5e3, true], \"b\": {\"c\": null}, \"d\": \"x\"} ";
	struct json_tok toks[16];
	int n = jparse(t, toks, 16);

	cr_assert_eq(n, 12);
	cr_expect_eq(toks[0].type, JSON_OBJECT);
	cr_expect_eq(toks[0].count, 3);
	cr_expect_eq(toks[0].end, 12);
	cr_expect_eq(toks[1].type, JSON_STRING);	/* "a" */
	cr_expect_eq(toks[2].type, JSON_ARRAY);
	cr_expect_eq(toks[2].count, 3);
	cr_expect_eq(toks[2].end, 6);
	cr_expect_eq(toks[4].type, JSON_NUMBER);
	cr_expect_eq(toks[4].len, strlen("-2.5e3"));
	cr_expect_eq(toks[5].type, JSON_BOOL);
	cr_expect_eq(toks[7].type, JSON_OBJECT);
	cr_expect_eq(toks[9].type, JSON_NULL);
}

Test(json_parse, scalars_and_empty_containers)
{
	struct json_tok toks[4];

	cr_expect_eq(jparse("0", toks, 4), 1);
	cr_expect_eq(jparse("\"\"", toks, 4), 1);
	cr_expect_eq(jparse("[]", toks, 4), 1);
	cr_expect_eq(toks[0].count, 0);
	cr_expect_eq(jparse("{}", toks, 4), 1);
	cr_expect_eq(jparse("[[]]", toks, 4), 2);
}

Test(json_parse, refuses_malformed_documents)
{
	static const char *const bad[] = {
		"", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "[1 2]",
		"01", "-", "1.", ".5", "1e", "+1", "tru", "nul", "True", "\"abc", "\"\\x\"",
		"\"\\u12g4\"", "\"a\nb\"", "\"\t\"", "[1] x", "{} {}", "// c\n1", "[1]/*c*/",
		"{\"a\":1 \"b\":2}", "\"\\", "NaN", "[\"\\u00\"]",
	};
	struct json_tok toks[16];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(jparse(bad[i], toks, 16), -EINVAL, "'%s' refused", bad[i]);
}

Test(json_parse, depth_limit)
{
	char deep[2 * JSON_DEPTH_MAX + 3];
	struct json_tok toks[JSON_DEPTH_MAX + 2];

	memset(deep, '[', JSON_DEPTH_MAX);
	memset(deep + JSON_DEPTH_MAX, ']', JSON_DEPTH_MAX);
	deep[2 * JSON_DEPTH_MAX] = '\0';
	cr_expect_eq(jparse(deep, toks, JSON_DEPTH_MAX + 2), JSON_DEPTH_MAX);
	memset(deep, '[', JSON_DEPTH_MAX + 1);
	memset(deep + JSON_DEPTH_MAX + 1, ']', JSON_DEPTH_MAX + 1);
	deep[2 * JSON_DEPTH_MAX + 2] = '\0';
	cr_expect_eq(jparse(deep, toks, JSON_DEPTH_MAX + 2), -EINVAL);
}

Test(json_parse, too_many_tokens_is_enospc)
{
	struct json_tok toks[3];

	cr_expect_eq(jparse("[1,2,3]", toks, 3), -ENOSPC);
}

Test(json_parse, not_nul_terminated_input)
{
	const char text[] = { '[', '1', ']', 'x' };
	struct json_tok toks[4];

	cr_expect_eq(json_parse(text, 3, toks, 4), 2);
}

Test(json_string, unescapes)
{
	const char *t = "[\"a\\\"b\\\\c\\/d\\n\\u00e9\\ud83d\\ude00\\ud800x\"]";
	struct json_tok toks[4];
	char buf[64];

	cr_assert_eq(jparse(t, toks, 4), 2);
	cr_assert_gt(json_string(t, &toks[1], buf, sizeof(buf)), 0);
	cr_expect_str_eq(buf, "a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbdx");
	cr_expect_eq(json_string(t, &toks[1], buf, 4), -ENOSPC);
	cr_expect_eq(json_string(t, &toks[0], buf, sizeof(buf)), -EINVAL, "not a string");
}

Test(json_string, refuses_nul_escape)
{
	const char *t = "\"a\\u0000b\"";
	struct json_tok toks[1];
	char buf[16];

	cr_assert_eq(jparse(t, toks, 1), 1);
	cr_expect_eq(json_string(t, &toks[0], buf, sizeof(buf)), -EINVAL);
}

Test(json_member, finds_keys_by_unescaped_name)
{
	const char *t = "{\"a\": {\"x\": 1}, \"b\\u0063\": 2, \"d\": [3]}";
	struct json_tok toks[16];
	int64_t v;
	int i;

	cr_assert_gt(jparse(t, toks, 16), 0);
	i = json_member(t, toks, 0, "bc");
	cr_assert_geq(i, 0);
	cr_expect_eq(json_int(t, &toks[i], 0, 10, &v), 0);
	cr_expect_eq(v, 2);
	cr_expect_eq(toks[json_member(t, toks, 0, "d")].type, JSON_ARRAY);
	cr_expect_eq(json_member(t, toks, 0, "x"), -1, "members of members are not found");
	cr_expect_eq(json_member(t, toks, 1, "a"), -1, "a key token is not an object");
}

Test(json_int, ranges_and_non_integers)
{
	const char *t = "[9223372036854775807, -9223372036854775808, 9223372036854775808, 1.0, 1e2, -0]";
	struct json_tok toks[8];
	int64_t v;

	cr_assert_eq(jparse(t, toks, 8), 7);
	cr_expect_eq(json_int(t, &toks[1], INT64_MIN, INT64_MAX, &v), 0);
	cr_expect_eq(v, INT64_MAX);
	cr_expect_eq(json_int(t, &toks[2], INT64_MIN, INT64_MAX, &v), 0);
	cr_expect_eq(v, INT64_MIN);
	cr_expect_eq(json_int(t, &toks[2], 0, INT64_MAX, &v), -ERANGE);
	cr_expect_eq(json_int(t, &toks[3], INT64_MIN, INT64_MAX, &v), -ERANGE);
	cr_expect_eq(json_int(t, &toks[4], INT64_MIN, INT64_MAX, &v), -EINVAL);
	cr_expect_eq(json_int(t, &toks[5], INT64_MIN, INT64_MAX, &v), -EINVAL);
	cr_expect_eq(json_int(t, &toks[6], 0, 1, &v), 0);
	cr_expect_eq(v, 0);
	cr_expect_eq(json_int(t, &toks[1], 0, 100, &v), -ERANGE);
}

/* ------------------------------------------------------------------ */
/* netstack-run.json                                                   */
/* ------------------------------------------------------------------ */

static const char good_config[] =
	"{\n"
	"  \"format\": \"netstack-run\",\n"
	"  \"version\": 1,\n"
	"  \"id\": \"myid\",\n"
	"  \"nics\": [\n"
	"    {\"name\": \"eth0\", \"kind\": \"tap\", \"device\": \"tap0\"}\n"
	"  ],\n"
	"  \"services\": [\n"
	"    {\"spec\": \"tcp:80:http\", \"socket\": 0},\n"
	"    {\"spec\": \"udp:7:echo\", \"socket\": 1}\n"
	"  ],\n"
	"  \"a-later-field\": {\"is\": [\"ignored\"]}\n"
	"}\n";

static int config_parse(const char *text, struct run_config_file *cfg)
{
	const char *why = NULL;
	int ret = run_config_parse(text, strlen(text), cfg, &why);

	if (ret)
		cr_expect_not_null(why, "a refusal says why");
	return ret;
}

/* @good_config with @from replaced by @to, malloc'ed. */
static char *config_edit(const char *from, const char *to)
{
	const char *at = strstr(good_config, from);
	size_t n = strlen(good_config) - strlen(from) + strlen(to) + 1;
	char *out = malloc(n);

	cr_assert_not_null(at, "'%s' is in the config", from);
	cr_assert_not_null(out);
	snprintf(out, n, "%.*s%s%s", (int)(at - good_config), good_config, to, at + strlen(from));
	return out;
}

static void config_refused(const char *from, const char *to, int err)
{
	struct run_config_file *cfg = calloc(1, sizeof(*cfg));
	char *text = config_edit(from, to);

	cr_assert_not_null(cfg);
	cr_expect_eq(config_parse(text, cfg), err, "'%s' -> '%s' refused with %d", from, to, err);
	free(text);
	free(cfg);
}

Test(run_config_parse, reads_nics_and_services)
{
	struct run_config_file *cfg = calloc(1, sizeof(*cfg));

	cr_assert_not_null(cfg);
	cr_assert_eq(config_parse(good_config, cfg), 0);
	cr_expect_str_eq(cfg->id, "myid");
	cr_assert_eq(cfg->nnics, 1);
	cr_expect_str_eq(cfg->nics[0].name, "eth0");
	cr_expect_str_eq(cfg->nics[0].kind, "tap");
	cr_expect_str_eq(cfg->nics[0].device, "tap0");
	cr_assert_eq(cfg->nservices, 2);
	cr_expect_eq(cfg->services[0].proto, SERVICE_TCP);
	cr_expect_eq(cfg->services[0].port, 80);
	cr_expect_eq(cfg->services[0].kind, SERVICE_HTTP);
	cr_expect_eq(cfg->socks[0], 0);
	cr_expect_eq(cfg->services[1].proto, SERVICE_UDP);
	cr_expect_eq(cfg->socks[1], 1);
	free(cfg);
}

Test(run_config_parse, refuses_other_files_and_versions)
{
	config_refused("\"netstack-run\"", "\"netstack-state\"", -EINVAL);
	config_refused("\"format\"", "\"formats\"", -EINVAL);
	config_refused("\"version\": 1", "\"version\": 2", -EPROTONOSUPPORT);
	config_refused("\"version\": 1", "\"version\": 0", -EINVAL);
	config_refused("\"version\": 1", "\"version\": \"1\"", -EINVAL);
	config_refused("{\n", "[\n", -EINVAL);
	config_refused("}\n", "},\n", -EINVAL);
}

Test(run_config_parse, refuses_bad_fields)
{
	config_refused("\"myid\"", "\"-bad\"", -EINVAL);
	config_refused("\"tap\"", "\"vhost\"", -EINVAL);
	config_refused("\"device\": \"tap0\"", "\"device\": \"\"", -EINVAL);
	config_refused("\"name\": \"eth0\", ", "", -EINVAL);
	config_refused("\"eth0\"", "\"eth0-is-a-much-too-long-name\"", -EINVAL);
	config_refused("\"tcp:80:http\"", "\"tcp:80:gopher\"", -EINVAL);
	config_refused("\"socket\": 0", "\"socket\": -1", -EINVAL);
	config_refused("\"socket\": 0", "\"socket\": 2147483648", -EINVAL);
	config_refused("\"socket\": 0", "\"socket\": 1", -EINVAL);	/* shared */
	config_refused("\"udp:7:echo\"", "\"tcp:80:echo\"", -EINVAL);	/* same port */
	config_refused("\"services\": [", "\"services\": {", -EINVAL);
	config_refused("\"nics\"", "\"nix\"", -EINVAL);
}

Test(run_config_parse, refuses_oversize)
{
	struct run_config_file *cfg = calloc(1, sizeof(*cfg));
	const char *why = NULL;

	cr_assert_not_null(cfg);
	cr_expect_eq(run_config_parse(good_config, RUN_CONFIG_MAX + 1, cfg, &why), -E2BIG);
	free(cfg);
}

Test(run_config_parse, every_truncation_is_refused)
{
	struct run_config_file *cfg = calloc(1, sizeof(*cfg));
	size_t len = strlen(good_config);

	cr_assert_not_null(cfg);
	/* The document ends with "}\n": every shorter prefix is incomplete. */
	for (size_t n = 0; n + 1 < len; n++)
		cr_expect_neq(run_config_parse(good_config, n, cfg, NULL), 0, "prefix of %zu bytes", n);
	free(cfg);
}
