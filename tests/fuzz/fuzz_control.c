/* SPDX-License-Identifier: MIT */
/*
 * fuzz_control.c - libFuzzer target for what a daemon reads from outside in
 * tools/daemon.c: a control-socket request record (control_request_parse),
 * a status record as a client reads it (control_response_parse) and a
 * netstack-run.json beside an image (run_config_parse). Every input goes to
 * all three. A request the parser accepts must format back into a record
 * that parses to the same request (one grammar both ways); a refusal must
 * say why.
 */
#include <errno.h>
#include <string.h>

#include "daemon.h"
#include "fuzz.h"

static void request(const uint8_t *data, size_t size)
{
	struct control_request req, again;
	const char *why = NULL;
	char rec[CONTROL_REQ_MAX];
	int rc, len;

	memset(&req, 0, sizeof(req));
	rc = control_request_parse(data, size, &req, &why);
	if (rc) {
		FUZZ_CHECK(rc < 0 && why, "a request refused with %d and no reason", rc);
		return;
	}
	FUZZ_CHECK((unsigned)req.verb < CONTROL_VERB_COUNT, "verb %d", (int)req.verb);
	FUZZ_CHECK(memchr(req.path, '\0', sizeof(req.path)), "an unterminated path");
	len = control_request_format(&req, rec, sizeof(rec));
	FUZZ_CHECK(len > 0, "an accepted request does not format: %d", len);
	memset(&again, 0, sizeof(again));
	rc = control_request_parse(rec, (size_t)len, &again, &why);
	FUZZ_CHECK(rc == 0, "a formatted request does not parse: %d %s", rc, why);
	FUZZ_CHECK(again.verb == req.verb && !strcmp(again.path, req.path) &&
		   again.leave_running == req.leave_running && again.compression == req.compression &&
		   again.timeout_ms == req.timeout_ms, "a request changed on its way through format");
}

static void response(const uint8_t *data, size_t size)
{
	char msg[CONTROL_LINE_MAX + 1];
	bool ok;
	int rc;

	rc = control_response_parse(data, size, &ok, msg, sizeof(msg));
	if (rc == 0)
		FUZZ_CHECK(memchr(msg, '\0', sizeof(msg)) && strlen(msg) < size, "a bad message");
}

static void run_config(const uint8_t *data, size_t size)
{
	/* Large (a thousand services): static, not on the stack. */
	static struct run_config_file cfg;
	const char *why = NULL;
	int rc;

	if (size > RUN_CONFIG_MAX)
		return;
	rc = run_config_parse((const char *)data, size, &cfg, &why);
	if (rc) {
		FUZZ_CHECK(rc < 0 && why, "a run config refused with %d and no reason", rc);
		return;
	}
	FUZZ_CHECK(cfg.nnics <= RUN_CONFIG_NICS_MAX && cfg.nservices <= RUN_CONFIG_SERVICES_MAX,
		   "%zu NICs, %zu services", cfg.nnics, cfg.nservices);
	FUZZ_CHECK(memchr(cfg.id, '\0', sizeof(cfg.id)), "an unterminated id");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	request(data, size);
	response(data, size);
	run_config(data, size);
	return 0;
}
