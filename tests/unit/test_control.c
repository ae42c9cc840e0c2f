/* SPDX-License-Identifier: MIT */
/*
 * test_control.c - unit tests of tools/daemon.c's pure parts, which need no
 * stack: the control protocol's request parser and formatter (good
 * requests, every malformed shape, the size limit, random records), the
 * status line's formatter and parser, and the netstack-run.json reader a
 * restore relies on (strict JSON, every refusal).
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
	refused(REC("checkpoint\0path=/x\0compression=lz4\0"), -EINVAL);
	refused(REC("checkpoint\0path=/x\0direct=yes\0"), -EINVAL);
	refused(REC("state\0direct=1\0"), -EOPNOTSUPP);
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

Test(control_request_format, zstd_and_direct_round_trip)
{
	static const char want[] = "checkpoint\0path=/i\0leave-running=1\0compression=zstd\0direct=1\0";
	struct control_request req = { .verb = CONTROL_CHECKPOINT, .path = "/i",
				       .leave_running = true, .compression = NS_COMPRESSION_ZSTD,
				       .direct = true }, out;
	char buf[128];

	cr_assert_eq(control_request_format(&req, buf, sizeof(buf)), (int)sizeof(want) - 1);
	cr_expect_eq(memcmp(buf, want, sizeof(want) - 1), 0);
	cr_assert_eq(control_request_parse(buf, sizeof(want) - 1, &out, NULL), 0);
	cr_expect_eq(out.compression, NS_COMPRESSION_ZSTD);
	cr_expect(out.direct && out.leave_running);
	req.compression = 9;
	cr_expect_eq(control_request_format(&req, buf, sizeof(buf)), -EINVAL);
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

/* @text (@len bytes) refused with @err and a reason that is exactly @why. */
static void text_says(const char *text, size_t len, int err, const char *why)
{
	struct run_config_file *cfg = calloc(1, sizeof(*cfg));
	const char *got = NULL;

	cr_assert_not_null(cfg);
	cfg->nnics = 77;
	cr_expect_eq(run_config_parse(text, len, cfg, &got), err, "'%.*s' refused with %d",
		     (int)(len > 200 ? 200 : len), text, err);
	cr_expect_eq(cfg->nnics, 77, "a refused config leaves the output alone");
	cr_expect_not_null(got, "a refusal says why");
	if (got)
		cr_expect_str_eq(got, why, "reason for '%.*s'", (int)(len > 200 ? 200 : len), text);
	free(cfg);
}

/* @good_config with @from replaced by @to, refused with @err and @why. */
static void config_says(const char *from, const char *to, int err, const char *why)
{
	char *text = config_edit(from, to);

	text_says(text, strlen(text), err, why);
	free(text);
}

static void config_accepted(const char *from, const char *to)
{
	struct run_config_file *cfg = calloc(1, sizeof(*cfg));
	char *text = config_edit(from, to);

	cr_assert_not_null(cfg);
	cr_expect_eq(config_parse(text, cfg), 0, "'%s' -> '%s' accepted", from, to);
	free(text);
	free(cfg);
}

#define NOT_JSON "netstack-run.json is not valid JSON"
#define NOT_RUN "not a netstack-run.json (no \"format\": \"netstack-run\")"
#define LATER "{\"is\": [\"ignored\"]}"

Test(run_config_parse, no_text_or_output)
{
	struct run_config_file *cfg = calloc(1, sizeof(*cfg));
	const char *why = NULL;

	cr_assert_not_null(cfg);
	cr_expect_eq(run_config_parse(NULL, 0, cfg, &why), -EINVAL);
	cr_expect_str_eq(why, "no config");
	cr_expect_eq(run_config_parse(good_config, strlen(good_config), NULL, &why), -EINVAL);
	cr_expect_eq(run_config_parse(NULL, 0, cfg, NULL), -EINVAL, "why may be NULL");
	free(cfg);
}

Test(run_config_parse, oversize_says_why)
{
	text_says(good_config, RUN_CONFIG_MAX + 1, -E2BIG, "netstack-run.json is too large");
}

Test(run_config_parse, refuses_non_strict_json)
{
	text_says("", 0, -EINVAL, NOT_JSON);
	text_says("   \n", 4, -EINVAL, NOT_JSON);
	config_says("}\n", "},\n", -EINVAL, NOT_JSON);			/* bytes after */
	config_says("}\n", "} {}\n", -EINVAL, NOT_JSON);		/* a second value */
	config_says("}\n", "} x\n", -EINVAL, NOT_JSON);
	config_says("\"socket\": 1}\n", "\"socket\": 1},\n", -EINVAL, NOT_JSON); /* trailing , */
	config_says("\"version\": 1,", "\"version\": 1,,", -EINVAL, NOT_JSON);
	config_says("\"version\": 1,", "/* c */ \"version\": 1,", -EINVAL, NOT_JSON);
	config_says("\"version\": 1,", "\"version\": 1, // c\n", -EINVAL, NOT_JSON);
	config_says("\"myid\"", "'myid'", -EINVAL, NOT_JSON);
	config_says("\"version\"", "version", -EINVAL, NOT_JSON);
	config_says("\"version\": 1", "\"version\" 1", -EINVAL, NOT_JSON);
	config_says("\"version\": 1", "\"version\": 01", -EINVAL, NOT_JSON);
	config_says("\"version\": 1", "\"version\": +1", -EINVAL, NOT_JSON);
	config_says("\"version\": 1", "\"version\": 0x1", -EINVAL, NOT_JSON);
	config_says("\"version\": 1", "\"version\": 1e", -EINVAL, NOT_JSON);
	config_says(LATER, "{\"is\": TRUE}", -EINVAL, NOT_JSON);
	config_says(LATER, "{\"is\": nul}", -EINVAL, NOT_JSON);
	config_says(LATER, "{\"is\": NaN}", -EINVAL, NOT_JSON);
	config_says(LATER, "{\"is\": Infinity}", -EINVAL, NOT_JSON);
	config_says(LATER, "{\"is\": -Infinity}", -EINVAL, NOT_JSON);
	config_says(LATER, "\"\\x\"", -EINVAL, NOT_JSON);		/* bad escape */
	config_says(LATER, "\"\\u12\"", -EINVAL, NOT_JSON);
	config_says(LATER, "\"a\tb\"", -EINVAL, NOT_JSON);		/* raw tab in a string */
	config_says(LATER, "\"a\nb\"", -EINVAL, NOT_JSON);
	config_says(LATER, "\"a\x01z\"", -EINVAL, NOT_JSON);
	config_says("\"version\": 1,", "\"version\": 1,\v", -EINVAL, NOT_JSON);
	config_says("\"version\": 1,", "\"version\": 1,\f", -EINVAL, NOT_JSON);
	config_says("\"version\": 1,", "\"version\": 1,\x01", -EINVAL, NOT_JSON);
	config_says("\"myid\"", "\"myid", -EINVAL, NOT_JSON);		/* unterminated */
}

Test(run_config_parse, refuses_nul_bytes)
{
	char buf[sizeof(good_config) + 1];
	size_t len = strlen(good_config);

	memcpy(buf, good_config, len);
	buf[len] = '\0';
	text_says(buf, len + 1, -EINVAL, NOT_JSON);		/* a NUL after the value */
	memcpy(buf, good_config, len + 1);
	buf[strstr(good_config, "myid") - good_config + 2] = '\0';
	text_says(buf, len, -EINVAL, NOT_JSON);			/* one inside a string */
}

Test(run_config_parse, reads_input_that_is_not_nul_terminated)
{
	struct run_config_file *cfg = calloc(1, sizeof(*cfg));
	size_t len = strlen(good_config);
	char *buf = malloc(len + 8);

	cr_assert_not_null(cfg);
	cr_assert_not_null(buf);
	memcpy(buf, good_config, len);
	memcpy(buf + len, "garbage!", 8);
	cr_expect_eq(run_config_parse(buf, len, cfg, NULL), 0);
	cr_expect_str_eq(cfg->id, "myid");
	free(buf);
	free(cfg);
}

Test(run_config_parse, nesting_limit)
{
	char deep[64], deeper[64];

	/* The document is one level; the field may nest 15 more. */
	snprintf(deep, sizeof(deep), "%.15s%.15s", "[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]");
	snprintf(deeper, sizeof(deeper), "%.16s%.16s", "[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]");
	config_accepted(LATER, deep);
	config_says(LATER, deeper, -EINVAL, NOT_JSON);
}

Test(run_config_parse, refuses_too_many_values)
{
	size_t n = 8000, len = 0;
	char *text = malloc(strlen(good_config) + 2 * n + 8);
	const char *at = strstr(good_config, LATER);

	cr_assert_not_null(text);
	memcpy(text, good_config, (size_t)(at - good_config));
	len = (size_t)(at - good_config);
	text[len++] = '[';
	for (size_t i = 0; i < n; i++) {
		text[len++] = '0';
		text[len++] = i + 1 < n ? ',' : ']';
	}
	strcpy(text + len, at + strlen(LATER));
	text_says(text, strlen(text), -EINVAL, "netstack-run.json holds too many values");
	free(text);
}

Test(run_config_parse, refuses_other_documents)
{
	text_says("null", 4, -EINVAL, NOT_RUN);
	text_says("[]", 2, -EINVAL, NOT_RUN);
	text_says("42", 2, -EINVAL, NOT_RUN);
	text_says("\"netstack-run\"", 14, -EINVAL, NOT_RUN);
	text_says("{}", 2, -EINVAL, NOT_RUN);
	config_says("{\n", "[\n", -EINVAL, NOT_JSON);
	config_says("\"netstack-run\"", "\"netstack-state\"", -EINVAL, NOT_RUN);
	config_says("\"netstack-run\"", "\"netstack-run \"", -EINVAL, NOT_RUN);
	config_says("\"netstack-run\"", "\"netstack-run\\u0000\"", -EINVAL, NOT_RUN);
	config_says("\"netstack-run\"", "null", -EINVAL, NOT_RUN);
	config_says("\"netstack-run\"", "[\"netstack-run\"]", -EINVAL, NOT_RUN);
	config_says("\"format\"", "\"formats\"", -EINVAL, NOT_RUN);
}

Test(run_config_parse, refuses_bad_versions)
{
	static const char *const bad[] = {
		"0", "-1", "\"1\"", "1.0", "1e0", "true", "null", "[1]", "2147483648",
		"9223372036854775808", "99999999999999999999", "-99999999999999999999",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char to[64];

		snprintf(to, sizeof(to), "\"version\": %s", bad[i]);
		config_says("\"version\": 1", to, -EINVAL, "netstack-run.json has no valid version");
	}
	config_says("\"version\": 1,", "", -EINVAL, "netstack-run.json has no valid version");
	config_says("\"version\": 1", "\"version\": 2", -EPROTONOSUPPORT,
		    "netstack-run.json is of a newer version than this netstack reads");
	config_says("\"version\": 1", "\"version\": 2147483647", -EPROTONOSUPPORT,
		    "netstack-run.json is of a newer version than this netstack reads");
}

Test(run_config_parse, refuses_bad_ids)
{
	static const char *const bad[] = {
		"\"-bad\"", "\"\"", "\"a/b\"", "\"..\"", "42", "null", "[\"myid\"]",
		"\"my\\u0000id\"",
		("\"an-id-that-is-far-too-long-to-be-a-valid-identifier-for-netstack-"
		 "at-all-really-way-past-any-limit\""),
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		config_says("\"myid\"", bad[i], -EINVAL, "netstack-run.json has no valid id");
	config_says("\"id\": \"myid\",", "", -EINVAL, "netstack-run.json has no valid id");
}

Test(run_config_parse, refuses_bad_nics)
{
	config_says("\"nics\"", "\"nix\"", -EINVAL, "netstack-run.json has no nics array");
	config_says("\"nics\": [", "\"nics\": {\"a\": ", -EINVAL, NOT_JSON);
	config_says("\"nics\": [\n    {\"name\": \"eth0\", \"kind\": \"tap\", \"device\": \"tap0\"}\n  ]",
		    "\"nics\": null", -EINVAL, "netstack-run.json has no nics array");
	config_says("\"nics\": [\n    {\"name\": \"eth0\", \"kind\": \"tap\", \"device\": \"tap0\"}\n  ]",
		    "\"nics\": {}", -EINVAL, "netstack-run.json has no nics array");
	config_says("{\"name\": \"eth0\", \"kind\": \"tap\", \"device\": \"tap0\"}", "\"eth0\"",
		    -EINVAL, "a NIC is not an object");
	config_says("{\"name\": \"eth0\", \"kind\": \"tap\", \"device\": \"tap0\"}", "null",
		    -EINVAL, "a NIC is not an object");
	config_says("\"name\": \"eth0\", ", "", -EINVAL, "a NIC has no valid name");
	config_says("\"eth0\"", "\"\"", -EINVAL, "a NIC has no valid name");
	config_says("\"eth0\"", "0", -EINVAL, "a NIC has no valid name");
	config_says("\"eth0\"", "\"eth0-is-a-much-too-long-name\"", -EINVAL,
		    "a NIC has no valid name");
	config_says("\"tap\"", "\"vhost\"", -EINVAL, "a NIC's kind is not tap, fd or channel");
	config_says("\"tap\"", "\"tapper\"", -EINVAL, "a NIC's kind is not tap, fd or channel");
	config_says("\"tap\"", "null", -EINVAL, "a NIC's kind is not tap, fd or channel");
	config_says("\"kind\": \"tap\", ", "", -EINVAL, "a NIC's kind is not tap, fd or channel");
	config_says(", \"device\": \"tap0\"", "", -EINVAL, "a NIC has no valid device");
	config_says("\"tap0\"", "0", -EINVAL, "a NIC has no valid device");
	config_says("\"tap0\"", "\"tap0-is-a-much-too-long-name\"", -EINVAL,
		    "a NIC has no valid device");
	config_says("\"device\": \"tap0\"", "\"device\": \"\"", -EINVAL, "a TAP NIC names no device");
	config_says("{\"name\": \"eth0\", \"kind\": \"tap\", \"device\": \"tap0\"}",
		    "{\"name\": \"eth0\", \"kind\": \"tap\", \"device\": \"tap0\"},"
		    "{\"name\": \"eth0\", \"kind\": \"fd\", \"device\": \"\"}",
		    -EINVAL, "two NICs share a name");
}

Test(run_config_parse, nic_kinds_and_count)
{
	char nics[2048];
	size_t len = 0;

	config_accepted("{\"name\": \"eth0\", \"kind\": \"tap\", \"device\": \"tap0\"}",
			"{\"name\": \"eth0\", \"kind\": \"fd\", \"device\": \"\"},"
			"{\"name\": \"eth1\", \"kind\": \"channel\", \"device\": \"\"}");
	for (int i = 0; i < RUN_CONFIG_NICS_MAX; i++)
		len += (size_t)snprintf(nics + len, sizeof(nics) - len,
					"%s{\"name\": \"n%d\", \"kind\": \"fd\", \"device\": \"\"}",
					i ? "," : "", i);
	config_accepted("{\"name\": \"eth0\", \"kind\": \"tap\", \"device\": \"tap0\"}", nics);
	snprintf(nics + len, sizeof(nics) - len, ",{\"name\": \"x\", \"kind\": \"fd\", \"device\": \"\"}");
	config_says("{\"name\": \"eth0\", \"kind\": \"tap\", \"device\": \"tap0\"}", nics, -EINVAL,
		    "netstack-run.json lists too many NICs");
}

Test(run_config_parse, refuses_bad_services)
{
	static const char *const bad_sockets[] = {
		"-1", "2147483648", "\"0\"", "0.0", "0e0", "null", "true",
		"9223372036854775808", "99999999999999999999", "-99999999999999999999",
	};

	config_says("\"services\"", "\"service\"", -EINVAL, "netstack-run.json has no services array");
	config_says("\"services\": [", "\"services\": {", -EINVAL, NOT_JSON);
	config_says("{\"spec\": \"tcp:80:http\", \"socket\": 0}", "[]", -EINVAL,
		    "a service is not an object");
	config_says("{\"spec\": \"tcp:80:http\", \"socket\": 0}", "\"tcp:80:http\"", -EINVAL,
		    "a service is not an object");
	config_says("\"tcp:80:http\"", "\"tcp:80:gopher\"", -EINVAL, "a service has no valid spec");
	config_says("\"tcp:80:http\"", "\"\"", -EINVAL, "a service has no valid spec");
	config_says("\"tcp:80:http\"", "80", -EINVAL, "a service has no valid spec");
	config_says("\"spec\": \"tcp:80:http\", ", "", -EINVAL, "a service has no valid spec");
	config_says(", \"socket\": 0", "", -EINVAL, "a service has no valid socket number");
	for (size_t i = 0; i < sizeof(bad_sockets) / sizeof(bad_sockets[0]); i++) {
		char to[64];

		snprintf(to, sizeof(to), "\"socket\": %s", bad_sockets[i]);
		config_says("\"socket\": 0", to, -EINVAL, "a service has no valid socket number");
	}
	config_says("\"socket\": 0", "\"socket\": 1", -EINVAL, "two services share a socket");
	config_says("\"udp:7:echo\"", "\"tcp:80:echo\"", -EINVAL,
		    "two services share protocol and port");
	config_accepted("\"socket\": 0", "\"socket\": 2147483647");
}

Test(run_config_parse, service_count_limit)
{
	size_t cap = (RUN_CONFIG_SERVICES_MAX + 1) * 48 + 64, len = 0;
	char *svcs = malloc(cap);

	cr_assert_not_null(svcs);
	for (int i = 0; i < RUN_CONFIG_SERVICES_MAX; i++)
		len += (size_t)snprintf(svcs + len, cap - len, "%s{\"spec\": \"tcp:%d:echo\", \"socket\": %d}",
					i ? "," : "", i + 1, i);
	config_accepted("{\"spec\": \"tcp:80:http\", \"socket\": 0},\n"
			"    {\"spec\": \"udp:7:echo\", \"socket\": 1}", svcs);
	snprintf(svcs + len, cap - len, ",{\"spec\": \"udp:1:echo\", \"socket\": 99999}");
	config_says("{\"spec\": \"tcp:80:http\", \"socket\": 0},\n"
		    "    {\"spec\": \"udp:7:echo\", \"socket\": 1}", svcs, -EINVAL,
		    "netstack-run.json lists too many services");
	free(svcs);
}

Test(run_config_parse, escapes_and_empty_lists)
{
	struct run_config_file *cfg = calloc(1, sizeof(*cfg));
	char *text = config_edit("\"myid\"", "\"my\\u0069\\u0064\"");

	cr_assert_not_null(cfg);
	cr_expect_eq(config_parse(text, cfg), 0);
	cr_expect_str_eq(cfg->id, "myid", "escapes are undone");
	free(text);
	config_accepted("{\"name\": \"eth0\", \"kind\": \"tap\", \"device\": \"tap0\"}", "");
	config_accepted("{\"spec\": \"tcp:80:http\", \"socket\": 0},\n"
			"    {\"spec\": \"udp:7:echo\", \"socket\": 1}", "");
	config_accepted("\"version\": 1", "\"version\": 1 ");
	config_accepted("\"socket\": 0", "\"socket\": -0");
	config_accepted(LATER, "[null, true, false, 1.5e3, -0.25, \"\\u00e9\\ud83d\\ude00\\ud800\", {}]");
	free(cfg);
}

Test(run_config_parse, duplicate_key_keeps_last)
{
	config_accepted("\"version\": 1", "\"version\": 2, \"version\": 1");
	config_says("\"version\": 1", "\"version\": 1, \"version\": 2", -EPROTONOSUPPORT,
		    "netstack-run.json is of a newer version than this netstack reads");
}
