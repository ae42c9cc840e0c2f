/* SPDX-License-Identifier: MIT */
/*
 * daemon.c - the operator side of a running stack: the control protocol
 * (pure parse and format functions), strict JSON reading over json-c, the
 * netstack-run.json a checkpoint leaves beside its image, the per-ID state
 * directory under --root (its lock, state.json, removal), the client calls
 * of the CLI's commands, and the daemon itself: the control socket server,
 * its request handlers (checkpoint, state, wait), the pre-checkpoint hook,
 * and going to the background. It uses libnetstack only through netstack.h.
 *
 * Theory of operation
 * -------------------
 * A daemon is one `netstack run` or `netstack restore` process. It claims
 * ROOT/ID by taking a POSIX write lock on ROOT/ID/lock (daemon_open()),
 * builds its stack, then daemon_serve() binds ROOT/ID/control.sock and
 * starts the control thread. That thread accepts connections, refuses
 * peers of other users (SO_PEERCRED), and gives each connection a detached
 * handler thread (at most HANDLERS_MAX at once). A handler reads one
 * request record (bounded in size and time), answers it, and closes; it
 * never lets a malformed request or a vanished client touch the daemon.
 *
 * Threads: the main thread sits in daemon_wait() on a signalfd (SIGINT,
 * SIGTERM) and an eventfd a handler writes when the daemon must end (after
 * a checkpoint without leave-running). daemon_quiesce() then sets stopping,
 * wakes the control thread through the stop eventfd, joins it, and waits
 * until the handler count drops to zero: handlers that wait for a
 * checkpoint do so in slices and notice stopping; a checkpoint in progress
 * finishes. Only then may the caller stop the services and free the stack.
 *
 * Checkpoints are serialised by ckpt_lock. The pre-checkpoint hook, run by
 * the library while the stack is quiesced, captures netstack-run.json (the
 * NICs and which socket number each service holds); the handler writes it
 * into the image directory only after ns_stack_checkpoint() succeeded,
 * since the directory is created by the library and must be empty before.
 *
 * Lock order: ckpt_lock, then d->lock, then the stack lock (inside API
 * calls); log_lock is a leaf taken under the stack lock (daemon_log()).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <isa-l/crc64.h>
#include <json-c/json.h>

#include "daemon.h"

#define CONTROL_SOCK "control.sock"
#define LOCK_FILE "lock"
#define STATE_FILE "state.json"
#define STATE_TMP ".state.json.tmp"
#define RUN_CONFIG_TMP ".netstack-run.json.tmp"
#define STATE_FILE_MAX (64u * 1024)

/* Handlers at once; a connection beyond is answered "busy". */
#define HANDLERS_MAX 32
/* Connections held open until the daemon is gone. */
#define HELD_MAX 8
/* How long a handler waits for the request, and for each send. */
#define REQUEST_WAIT_MS 5000
#define SEND_TIMEOUT_S 5
/* How long the control thread waits for the request of a connection it
 * refuses (busy, another user), so that the refusal can be read. */
#define REFUSE_WAIT_MS 50
/* wait-checkpoint waits in slices of this, checking for stopping. */
#define WAIT_SLICE_MS 250
/* How long the control thread pauses after accept() ran out of resources. */
#define ACCEPT_BACKOFF_MS 100
/* Values of a netstack-run.json (keys count): 5 per service, 7 per NIC,
 * some more. */
#define RUN_CONFIG_VALUES (RUN_CONFIG_SERVICES_MAX * 6 + RUN_CONFIG_NICS_MAX * 8 + 64)
#define STATE_FILE_VALUES 64
/* Nesting deeper than this is refused. */
#define JSON_DEPTH_MAX 16

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static_assert(CONTROL_CHUNK <= 65536, "a body record fits a default socket buffer");
static_assert(CONTROL_REQ_MAX > PATH_MAX + sizeof("checkpoint"), "a request holds a path");

/* ------------------------------------------------------------------ */
/* A growing string                                                    */
/* ------------------------------------------------------------------ */

/* A malloc'ed, NUL-terminated string; an allocation failure sticks in
 * oom and later appends are dropped, so callers check once at the end. */
struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static bool sb_reserve(struct sbuf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->oom)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 1024;
	while (cap < b->len + more + 1)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

__attribute__((format(printf, 2, 3)))
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !sb_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* @s as a JSON string, quoted; control bytes as \u00XX. Bytes above 0x7f
 * go out as they are (file names need not be UTF-8). */
static void sb_json_str(struct sbuf *b, const char *s)
{
	sb_printf(b, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			sb_printf(b, "\\%c", *p);
		else if (*p == '\n')
			sb_printf(b, "\\n");
		else if (*p == '\t')
			sb_printf(b, "\\t");
		else if (*p < 0x20 || *p == 0x7f)
			sb_printf(b, "\\u%04x", *p);
		else
			sb_printf(b, "%c", *p);
	}
	sb_printf(b, "\"");
}

static void sb_free(struct sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

uint64_t daemon_monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Copy @src into @dst, cut to @cap - 1 bytes (messages: a cut is fine). */
static void str_copy(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Milliseconds left until @deadline_ns (CLOCK_MONOTONIC); -1 for none. */
static int remaining_ms(uint64_t deadline_ns)
{
	uint64_t now;

	if (deadline_ns == UINT64_MAX)
		return -1;
	now = daemon_monotonic_ns();
	if (now >= deadline_ns)
		return 0;
	return (int)((deadline_ns - now + 999999) / 1000000);
}

static uint64_t deadline_from(int timeout_ms)
{
	if (timeout_ms < 0)
		return UINT64_MAX;
	return daemon_monotonic_ns() + (uint64_t)timeout_ms * 1000000u;
}

bool daemon_id_valid(const char *id)
{
	size_t len;

	if (!id)
		return false;
	len = strlen(id);
	if (len == 0 || len > SERVICE_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = id[i];
		bool alnum = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
			     (ch >= 'A' && ch <= 'Z');

		if (!alnum && (i == 0 || (ch != '_' && ch != '.' && ch != '-')))
			return false;
	}
	return true;
}

static const char *const status_names[] = {
	[DAEMON_RUNNING] = "running",
	[DAEMON_CHECKPOINTED] = "checkpointed",
	[DAEMON_STOPPED] = "stopped",
};
static_assert(ARRAY_SIZE(status_names) == DAEMON_STATUS_COUNT,
	      "status_names matches enum daemon_status");

const char *daemon_status_name(enum daemon_status st)
{
	return (unsigned)st < DAEMON_STATUS_COUNT ? status_names[st] : "unknown";
}

/* ------------------------------------------------------------------ */
/* Control protocol                                                    */
/* ------------------------------------------------------------------ */

static const char *const verb_names[] = {
	[CONTROL_CHECKPOINT] = "checkpoint",
	[CONTROL_STATE] = "state",
	[CONTROL_WAIT_CHECKPOINT] = "wait-checkpoint",
	[CONTROL_WAIT_RESTORE] = "wait-restore",
};
static_assert(ARRAY_SIZE(verb_names) == CONTROL_VERB_COUNT, "verb_names matches enum control_verb");

enum control_key {
	KEY_PATH,
	KEY_LEAVE_RUNNING,
	KEY_COMPRESSION,
	KEY_TIMEOUT_MS,
	KEY_DIRECT,
	KEY_COUNT,
};

static const char *const key_names[] = {
	[KEY_PATH] = "path",
	[KEY_LEAVE_RUNNING] = "leave-running",
	[KEY_COMPRESSION] = "compression",
	[KEY_TIMEOUT_MS] = "timeout-ms",
	[KEY_DIRECT] = "direct",
};
static_assert(ARRAY_SIZE(key_names) == KEY_COUNT, "key_names matches enum control_key");

/* Which keys each verb takes, as bit masks of enum control_key. */
static const unsigned verb_keys[] = {
	[CONTROL_CHECKPOINT] = 1u << KEY_PATH | 1u << KEY_LEAVE_RUNNING | 1u << KEY_COMPRESSION |
			       1u << KEY_DIRECT,
	[CONTROL_STATE] = 0,
	[CONTROL_WAIT_CHECKPOINT] = 1u << KEY_TIMEOUT_MS,
	[CONTROL_WAIT_RESTORE] = 0,
};
static_assert(ARRAY_SIZE(verb_keys) == CONTROL_VERB_COUNT, "verb_keys matches enum control_verb");
static_assert(KEY_COUNT <= 8 * sizeof(unsigned), "key masks fit");

static int say(const char **why, const char *text, int err)
{
	if (why)
		*why = text;
	return err;
}

/* Index of @names[i] equal to @text[0..len), or -1. */
static int word_find(const char *const *names, size_t count, const char *text, size_t len)
{
	for (size_t i = 0; i < count; i++) {
		if (strlen(names[i]) == len && memcmp(names[i], text, len) == 0)
			return (int)i;
	}
	return -1;
}

static int value_set(struct control_request *r, enum control_key key, const char *v, size_t vlen,
		     const char **why)
{
	unsigned long ms = 0;

	switch (key) {
	case KEY_PATH:
		if (v[0] != '/')
			return say(why, "path is not absolute", -EINVAL);
		if (vlen >= sizeof(r->path))
			return say(why, "path is too long", -EINVAL);
		memcpy(r->path, v, vlen + 1);
		return 0;
	case KEY_LEAVE_RUNNING:
		if (vlen != 1 || (v[0] != '0' && v[0] != '1'))
			return say(why, "leave-running is not 0 or 1", -EINVAL);
		r->leave_running = v[0] == '1';
		return 0;
	case KEY_COMPRESSION:
		if (strcmp(v, "none") == 0)
			r->compression = NS_COMPRESSION_NONE;
		else if (strcmp(v, "zstd") == 0)
			r->compression = NS_COMPRESSION_ZSTD;
		else
			return say(why, "compression is not none or zstd", -EINVAL);
		return 0;
	case KEY_DIRECT:
		if (vlen != 1 || (v[0] != '0' && v[0] != '1'))
			return say(why, "direct is not 0 or 1", -EINVAL);
		r->direct = v[0] == '1';
		return 0;
	case KEY_TIMEOUT_MS:
		if (vlen == 0 || vlen > 9)
			return say(why, "timeout-ms is not a number of milliseconds", -EINVAL);
		for (size_t i = 0; i < vlen; i++) {
			if (v[i] < '0' || v[i] > '9')
				return say(why, "timeout-ms is not a number of milliseconds", -EINVAL);
			ms = ms * 10 + (unsigned long)(v[i] - '0');
		}
		if (ms > CONTROL_TIMEOUT_MAX_MS)
			return say(why, "timeout-ms is over a day", -EINVAL);
		r->timeout_ms = (int)ms;
		return 0;
	default:
		return say(why, "unknown key", -EOPNOTSUPP);
	}
}

int control_request_parse(const void *buf, size_t len, struct control_request *req,
			  const char **why)
{
	struct control_request r;
	const char *p = buf;
	unsigned seen = 0;
	size_t pos, flen;
	int verb, ret;

	if (!buf || !req)
		return say(why, "no request", -EINVAL);
	if (len > CONTROL_REQ_MAX)
		return say(why, "request too large", -E2BIG);
	if (len == 0 || p[len - 1] != '\0')
		return say(why, "request is not NUL-terminated fields", -EBADMSG);

	flen = strlen(p);
	if (flen == 0)
		return say(why, "empty request verb", -EBADMSG);
	verb = word_find(verb_names, CONTROL_VERB_COUNT, p, flen);
	if (verb < 0)
		return say(why, "unknown request", -EOPNOTSUPP);

	memset(&r, 0, sizeof(r));
	r.verb = (enum control_verb)verb;
	r.compression = NS_COMPRESSION_NONE;
	r.timeout_ms = -1;
	for (pos = flen + 1; pos < len; pos += flen + 1) {
		const char *f = p + pos, *eq;
		int key;

		flen = strlen(f);	/* the record ends in NUL: bounded */
		if (flen == 0)
			return say(why, "empty field", -EBADMSG);
		eq = memchr(f, '=', flen);
		if (!eq)
			return say(why, "field without '='", -EBADMSG);
		key = word_find(key_names, KEY_COUNT, f, (size_t)(eq - f));
		if (key < 0 || !(verb_keys[verb] & 1u << key))
			return say(why, "unknown key for this request", -EOPNOTSUPP);
		if (seen & 1u << key)
			return say(why, "repeated key", -EEXIST);
		seen |= 1u << key;
		ret = value_set(&r, (enum control_key)key, eq + 1, flen - (size_t)(eq + 1 - f), why);
		if (ret)
			return ret;
	}
	if (r.verb == CONTROL_CHECKPOINT && !(seen & 1u << KEY_PATH))
		return say(why, "checkpoint without path", -EINVAL);
	*req = r;
	return 0;
}

/* Append "key=value\0"; false when it does not fit. */
static bool field_put(char *buf, size_t cap, size_t *len, const char *key, const char *value)
{
	size_t k = strlen(key), v = strlen(value);

	if (*len + k + 1 + v + 1 > cap)
		return false;
	memcpy(buf + *len, key, k);
	buf[*len + k] = '=';
	memcpy(buf + *len + k + 1, value, v + 1);
	*len += k + 1 + v + 1;
	return true;
}

int control_request_format(const struct control_request *req, char *buf, size_t cap)
{
	struct control_request check;
	char num[16];
	size_t len, vlen;
	bool fits = true;

	if (!req || !buf || (unsigned)req->verb >= CONTROL_VERB_COUNT)
		return -EINVAL;
	vlen = strlen(verb_names[req->verb]);
	if (vlen + 1 > cap)
		return -ENOSPC;
	memcpy(buf, verb_names[req->verb], vlen + 1);
	len = vlen + 1;
	switch (req->verb) {
	case CONTROL_CHECKPOINT:
		if (!memchr(req->path, '\0', sizeof(req->path)))
			return -EINVAL;
		if (req->compression != NS_COMPRESSION_NONE && req->compression != NS_COMPRESSION_ZSTD)
			return -EINVAL;
		fits = field_put(buf, cap, &len, "path", req->path) &&
		       field_put(buf, cap, &len, "leave-running", req->leave_running ? "1" : "0") &&
		       (req->compression != NS_COMPRESSION_ZSTD ||
			field_put(buf, cap, &len, "compression", "zstd")) &&
		       (!req->direct || field_put(buf, cap, &len, "direct", "1"));
		break;
	case CONTROL_WAIT_CHECKPOINT:
		if (req->timeout_ms >= 0) {
			snprintf(num, sizeof(num), "%d", req->timeout_ms);
			fits = field_put(buf, cap, &len, "timeout-ms", num);
		}
		break;
	default:
		break;
	}
	if (!fits)
		return -ENOSPC;
	/* One grammar: what is sent is what the daemon accepts. */
	if (control_request_parse(buf, len, &check, NULL))
		return -EINVAL;
	return (int)len;
}

int control_response_format(bool ok, const char *msg, char *buf, size_t cap)
{
	const char *prefix = ok ? "ok" : "error";
	size_t plen = strlen(prefix), mlen = msg ? strlen(msg) : 0, len;

	if (!buf || (!ok && mlen == 0))
		return -EINVAL;
	if (mlen > 0 && plen + 1 + mlen > CONTROL_LINE_MAX)
		mlen = CONTROL_LINE_MAX - plen - 1;	/* cut, still one line */
	len = plen + (mlen ? 1 + mlen : 0);
	if (len + 1 > cap)
		return -ENOSPC;
	memcpy(buf, prefix, plen);
	if (mlen) {
		buf[plen] = ' ';
		for (size_t i = 0; i < mlen; i++) {
			unsigned char c = (unsigned char)msg[i];

			buf[plen + 1 + i] = c < 0x20 || c > 0x7e ? '?' : (char)c;
		}
	}
	buf[len] = '\0';
	return (int)len;
}

int control_response_parse(const void *buf, size_t len, bool *ok, char *msg, size_t cap)
{
	const char *p = buf, *text;
	size_t tlen;

	if (!buf || !ok || !msg || len == 0 || len > CONTROL_LINE_MAX)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e)
			return -EBADMSG;
	}
	if (len == 2 && memcmp(p, "ok", 2) == 0) {
		*ok = true;
		text = p + 2;
	} else if (len > 3 && memcmp(p, "ok ", 3) == 0) {
		*ok = true;
		text = p + 3;
	} else if (len > 6 && memcmp(p, "error ", 6) == 0) {
		*ok = false;
		text = p + 6;
	} else {
		return -EBADMSG;
	}
	tlen = len - (size_t)(text - p);
	if (tlen + 1 > cap)
		return -ENOSPC;
	memcpy(msg, text, tlen);
	msg[tlen] = '\0';
	return 0;
}

/* ------------------------------------------------------------------ */
/* JSON reader                                                         */
/* ------------------------------------------------------------------ */

/*
 * Documents are parsed by json-c in strict mode (no comments, trailing
 * commas, single quotes or bytes after the value) with nesting limited to
 * JSON_DEPTH_MAX. json_doc_parse() adds what json-c lets through: raw
 * control bytes (in strings, or as whitespace other than tab, LF, CR) and
 * non-finite numbers (NaN, Infinity). A key given twice keeps its last
 * value. Bytes above 0x7f are taken as they are: file names need not be
 * UTF-8, and the writer (sb_json_str()) emits them so.
 */

/* Raw control bytes: refused inside strings, and between tokens other
 * than as tab, LF or CR. */
static bool json_bytes_ok(const char *text, size_t len)
{
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c < 0x20 && (in_string || (c != '\t' && c != '\n' && c != '\r')))
			return false;
		if (in_string && c == '\\')
			i++;	/* json-c checks the escape */
		else if (c == '"')
			in_string = !in_string;
	}
	return true;
}

/* Count the values of @v's subtree into *@n (a member counts its key as
 * one more); false when one is a non-finite number. */
static bool json_walk(struct json_object *v, size_t *n)
{
	(*n)++;
	switch (json_object_get_type(v)) {
	case json_type_double:
		return isfinite(json_object_get_double(v));
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			if (!json_walk(json_object_array_get_idx(v, i), n))
				return false;
		}
		return true;
	case json_type_object: {
		json_object_object_foreach(v, key, val) {
			(void)key;
			(*n)++;
			if (!json_walk(val, n))
				return false;
		}
		return true;
	}
	default:
		return true;
	}
}

/*
 * Parse @text (@len bytes; it need not be NUL-terminated) as one JSON
 * document of at most @max_values values (a member's key counts as one).
 * Return: 0 and *@out, which may be NULL for "null" (put it with
 * json_object_put()); -EINVAL (malformed, too deep); -ENOSPC (too many
 * values); -ENOMEM.
 */
static int json_doc_parse(const char *text, size_t len, size_t max_values,
			  struct json_object **out)
{
	struct json_tokener *tok;
	struct json_object *doc;
	size_t n = 0, end;
	int ret = 0;

	if (len > INT32_MAX - 1 || !json_bytes_ok(text, len))
		return -EINVAL;
	tok = json_tokener_new_ex(JSON_DEPTH_MAX);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	doc = json_tokener_parse_ex(tok, text, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (!doc && json_tokener_get_error(tok) == json_tokener_continue) {
		/* A value at the very end (a number) needs the end of input;
		 * a truncated document stays an error. */
		doc = json_tokener_parse_ex(tok, "", 1);
		end = len;
	}
	if (json_tokener_get_error(tok) != json_tokener_success) {
		ret = -EINVAL;	/* json-c 0.16 reports no allocation failure apart */
		goto out;
	}
	/* json-c stops after the value: what follows may only be blanks. */
	for (; end < len; end++) {
		char c = text[end];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			ret = -EINVAL;
			goto out;
		}
	}
	if (!json_walk(doc, &n)) {
		ret = -EINVAL;
		goto out;
	}
	if (n > max_values)
		ret = -ENOSPC;
out:
	json_tokener_free(tok);
	if (ret)
		json_object_put(doc);
	else
		*out = doc;
	return ret;
}

/* Member @key of object @obj; NULL when absent or null. */
static struct json_object *member(struct json_object *obj, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(obj, key, &v) ? v : NULL;
}

/* A string member of @obj into @buf. Return: its length; -ENOENT (absent),
 * -EINVAL (not a string, or one holding "\u0000"), -ENOSPC. */
static int member_string(struct json_object *obj, const char *key, char *buf, size_t cap)
{
	struct json_object *v;
	const char *s;
	size_t len;

	if (!json_object_object_get_ex(obj, key, &v))
		return -ENOENT;
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (strlen(s) != len)
		return -EINVAL;
	if (len >= cap)
		return -ENOSPC;
	memcpy(buf, s, len + 1);
	return (int)len;
}

/* An integer member of @obj (no fraction or exponent) in [@min, @max];
 * @min must exceed INT64_MIN (json-c saturates out-of-range numbers).
 * Return: 0; -ENOENT (absent), -EINVAL (not an integer), -ERANGE. */
static int member_int(struct json_object *obj, const char *key, int64_t min, int64_t max,
		      int64_t *out)
{
	struct json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(obj, key, &v))
		return -ENOENT;
	if (!json_object_is_type(v, json_type_int))
		return -EINVAL;
	n = json_object_get_int64(v);
	if (n == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX)
		return -ERANGE;
	if (n < min || n > max)
		return -ERANGE;
	*out = n;
	return 0;
}

/* ------------------------------------------------------------------ */
/* netstack-run.json                                                   */
/* ------------------------------------------------------------------ */

#define RUN_CONFIG_FORMAT "netstack-run"
#define RUN_CONFIG_VERSION 1

static bool nic_kind_valid(const char *kind)
{
	return strcmp(kind, "tap") == 0 || strcmp(kind, "fd") == 0 || strcmp(kind, "channel") == 0;
}

static int run_config_nic(struct json_object *obj, struct run_config_nic *nic, const char **why)
{
	if (!json_object_is_type(obj, json_type_object))
		return say(why, "a NIC is not an object", -EINVAL);
	if (member_string(obj, "name", nic->name, sizeof(nic->name)) <= 0)
		return say(why, "a NIC has no valid name", -EINVAL);
	if (member_string(obj, "kind", nic->kind, sizeof(nic->kind)) <= 0 ||
	    !nic_kind_valid(nic->kind))
		return say(why, "a NIC's kind is not tap, fd or channel", -EINVAL);
	if (member_string(obj, "device", nic->device, sizeof(nic->device)) < 0)
		return say(why, "a NIC has no valid device", -EINVAL);
	if (strcmp(nic->kind, "tap") == 0 && !nic->device[0])
		return say(why, "a TAP NIC names no device", -EINVAL);
	return 0;
}

static int run_config_service(struct json_object *obj, struct run_config_file *c, const char **why)
{
	struct service_spec *spec = &c->services[c->nservices];
	char spec_text[SERVICE_SPEC_MAX];
	int64_t sock;

	if (!json_object_is_type(obj, json_type_object))
		return say(why, "a service is not an object", -EINVAL);
	if (member_string(obj, "spec", spec_text, sizeof(spec_text)) <= 0 ||
	    services_parse(spec_text, spec) < 0)
		return say(why, "a service has no valid spec", -EINVAL);
	if (member_int(obj, "socket", 0, INT32_MAX, &sock) < 0)
		return say(why, "a service has no valid socket number", -EINVAL);
	for (size_t i = 0; i < c->nservices; i++) {
		if (c->services[i].proto == spec->proto && c->services[i].port == spec->port)
			return say(why, "two services share protocol and port", -EINVAL);
		if (c->socks[i] == (int)sock)
			return say(why, "two services share a socket", -EINVAL);
	}
	c->socks[c->nservices++] = (int)sock;
	return 0;
}

int run_config_parse(const char *text, size_t len, struct run_config_file *cfg, const char **why)
{
	struct run_config_file *c = NULL;
	struct json_object *doc = NULL, *arr;
	char format[32];
	int64_t version;
	size_t i, n;
	int ret;

	if (!text || !cfg)
		return say(why, "no config", -EINVAL);
	if (len > RUN_CONFIG_MAX)
		return say(why, "netstack-run.json is too large", -E2BIG);
	c = calloc(1, sizeof(*c));
	if (!c)
		return say(why, "out of memory", -ENOMEM);
	ret = json_doc_parse(text, len, RUN_CONFIG_VALUES, &doc);
	if (ret) {
		ret = say(why, ret == -EINVAL   ? "netstack-run.json is not valid JSON"
			       : ret == -ENOSPC ? "netstack-run.json holds too many values"
						: "out of memory",
			  ret == -ENOMEM ? -ENOMEM : -EINVAL);
		goto out;
	}
	if (!json_object_is_type(doc, json_type_object) ||
	    member_string(doc, "format", format, sizeof(format)) < 0 ||
	    strcmp(format, RUN_CONFIG_FORMAT) != 0) {
		ret = say(why, "not a netstack-run.json (no \"format\": \"netstack-run\")", -EINVAL);
		goto out;
	}
	if (member_int(doc, "version", 1, INT32_MAX, &version) < 0) {
		ret = say(why, "netstack-run.json has no valid version", -EINVAL);
		goto out;
	}
	if (version > RUN_CONFIG_VERSION) {
		ret = say(why, "netstack-run.json is of a newer version than this netstack reads",
			  -EPROTONOSUPPORT);
		goto out;
	}
	if (member_string(doc, "id", c->id, sizeof(c->id)) < 0 || !daemon_id_valid(c->id)) {
		ret = say(why, "netstack-run.json has no valid id", -EINVAL);
		goto out;
	}

	arr = member(doc, "nics");
	if (!json_object_is_type(arr, json_type_array)) {
		ret = say(why, "netstack-run.json has no nics array", -EINVAL);
		goto out;
	}
	n = json_object_array_length(arr);
	if (n > RUN_CONFIG_NICS_MAX) {
		ret = say(why, "netstack-run.json lists too many NICs", -EINVAL);
		goto out;
	}
	for (i = 0; i < n; i++) {
		ret = run_config_nic(json_object_array_get_idx(arr, i), &c->nics[c->nnics], why);
		if (ret)
			goto out;
		for (size_t k = 0; k < c->nnics; k++) {
			if (strcmp(c->nics[k].name, c->nics[c->nnics].name) == 0) {
				ret = say(why, "two NICs share a name", -EINVAL);
				goto out;
			}
		}
		c->nnics++;
	}

	arr = member(doc, "services");
	if (!json_object_is_type(arr, json_type_array)) {
		ret = say(why, "netstack-run.json has no services array", -EINVAL);
		goto out;
	}
	n = json_object_array_length(arr);
	if (n > RUN_CONFIG_SERVICES_MAX) {
		ret = say(why, "netstack-run.json lists too many services", -EINVAL);
		goto out;
	}
	for (i = 0; i < n; i++) {
		ret = run_config_service(json_object_array_get_idx(arr, i), c, why);
		if (ret)
			goto out;
	}
	*cfg = *c;
	ret = 0;
out:
	json_object_put(doc);
	free(c);
	return ret;
}

/* Read a whole small file at @dirfd/@name (no symlink) into a malloc'ed,
 * NUL-terminated buffer. */
static int file_read(int dirfd, const char *name, size_t max, char **out, size_t *lenp)
{
	struct stat st;
	size_t len = 0;
	char *buf;
	int fd, ret = 0;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out_fd;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		goto out_fd;
	}
	if ((uint64_t)st.st_size > max) {
		ret = -E2BIG;
		goto out_fd;
	}
	buf = malloc(max + 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out_fd;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, max + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			free(buf);
			goto out_fd;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			ret = -E2BIG;
			free(buf);
			goto out_fd;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*lenp = len;
out_fd:
	close(fd);
	return ret;
}

int run_config_read(const char *dir, struct run_config_file *cfg, char *why, size_t whylen)
{
	const char *reason = NULL;
	size_t len;
	char *text;
	int dirfd, ret;

	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0) {
		ret = -errno;
		snprintf(why, whylen, "cannot open image directory %s: %s", dir,
			 ret == -ELOOP ? "it is a symlink" : strerror(-ret));
		return ret == -ELOOP ? -EINVAL : ret;
	}
	ret = file_read(dirfd, RUN_CONFIG_FILE, RUN_CONFIG_MAX, &text, &len);
	close(dirfd);
	if (ret == -ENOENT) {
		snprintf(why, whylen,
			 "%s/%s is missing: only an image written by 'netstack checkpoint' can be "
			 "restored",
			 dir, RUN_CONFIG_FILE);
		return ret;
	}
	if (ret) {
		snprintf(why, whylen, "cannot read %s/%s: %s", dir, RUN_CONFIG_FILE,
			 ret == -E2BIG ? "too large" : ret == -ELOOP ? "a symlink" : strerror(-ret));
		return ret;
	}
	ret = run_config_parse(text, len, cfg, &reason);
	free(text);
	if (ret)
		snprintf(why, whylen, "%s/%s: %s", dir, RUN_CONFIG_FILE, reason);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Write @dirfd/@name crash-safely: @tmp (mode 0600, no symlink followed),
 * fsync, rename over @name (or, with @noreplace, only if @name does not
 * exist), fsync the directory. On failure @tmp is removed.
 */
static int file_write_atomic(int dirfd, const char *name, const char *tmp, const void *data,
			     size_t len, bool noreplace)
{
	int fd, ret;

	(void)unlinkat(dirfd, tmp, 0);	/* a leftover of a crash */
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ret = write_all(fd, data, len);
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && renameat2(dirfd, tmp, dirfd, name, noreplace ? RENAME_NOREPLACE : 0) < 0)
		ret = -errno;
	if (ret) {
		(void)unlinkat(dirfd, tmp, 0);
		return ret;
	}
	return fsync(dirfd) < 0 ? -errno : 0;
}

/* mkdir -p @path, new directories mode 0700. */
static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		buf[i] = i < len ? '/' : '\0';
	}
	return 0;
}

/* Open ROOT/ID as a directory of ours: no symlink, owned by this euid
 * (root may look at anyone's). */
static int id_dir_open(int rootfd, const char *id)
{
	struct stat st;
	int fd;

	fd = openat(rootfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? -ENOTDIR : -errno;
	if (fstat(fd, &st) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	if (st.st_uid != geteuid() && geteuid() != 0) {
		close(fd);
		return -EPERM;
	}
	return fd;
}

/* Who holds the lock on @dirfd/lock: its pid, 0 for nobody. */
static pid_t lock_holder(int dirfd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd = openat(dirfd, LOCK_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	pid_t pid = 0;

	if (fd < 0)
		return 0;
	if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
		pid = fl.l_pid > 0 ? fl.l_pid : -1;	/* -1: in another pid namespace */
	close(fd);
	return pid;
}

/* Take @dirfd/lock; the fd (which holds it) or -EBUSY, -errno. */
static int lock_take(int dirfd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd = openat(dirfd, LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	if (fcntl(fd, F_SETLK, &fl) < 0) {
		int err = errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* ------------------------------------------------------------------ */
/* State directories                                                   */
/* ------------------------------------------------------------------ */

static void record_from_state_file(int dirfd, struct daemon_record *rec, bool *checkpointed)
{
	struct json_object *doc = NULL, *v;
	char status[32];
	size_t len;
	char *text;
	int64_t n;

	*checkpointed = false;
	if (file_read(dirfd, STATE_FILE, STATE_FILE_MAX, &text, &len))
		return;
	if (json_doc_parse(text, len, STATE_FILE_VALUES, &doc) < 0 ||
	    !json_object_is_type(doc, json_type_object))
		goto out;
	if (member_string(doc, "status", status, sizeof(status)) > 0)
		*checkpointed = strcmp(status, "checkpointed") == 0;
	(void)member_string(doc, "created", rec->created, sizeof(rec->created));
	v = member(doc, "restored");
	rec->restored = json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
	v = member(doc, "restore_ms");
	if (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int))
		rec->restore_ms = json_object_get_double(v);
	else if (v)
		rec->restore_ms = 0;
	if (member_int(doc, "checkpoint_count", 0, INT64_MAX, &n) == 0)
		rec->checkpoint_count = n;
	if (member_string(doc, "image_path", rec->image_path, sizeof(rec->image_path)) < 0)
		rec->image_path[0] = '\0';
	if (member_string(doc, "restored_from", rec->restored_from,
			  sizeof(rec->restored_from)) < 0)
		rec->restored_from[0] = '\0';
out:
	json_object_put(doc);
	free(text);
}

int daemon_probe(const char *root, const char *id, struct daemon_record *rec)
{
	bool checkpointed;
	int rootfd, dirfd;

	if (!root || !rec || !daemon_id_valid(id))
		return -EINVAL;
	memset(rec, 0, sizeof(*rec));
	rec->checkpoint_count = -1;
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return errno == ENOTDIR ? -ENOENT : -errno;
	dirfd = id_dir_open(rootfd, id);
	close(rootfd);
	if (dirfd < 0)
		return dirfd;
	rec->pid = lock_holder(dirfd);
	record_from_state_file(dirfd, rec, &checkpointed);
	close(dirfd);
	if (rec->pid != 0)
		rec->status = DAEMON_RUNNING;
	else
		rec->status = checkpointed ? DAEMON_CHECKPOINTED : DAEMON_STOPPED;
	if (rec->pid < 0)
		rec->pid = 0;
	return 0;
}

static int id_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int daemon_list(const char *root, char ***idsp, size_t *np)
{
	char **ids = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *dir;
	int ret = 0;

	if (!root || !idsp || !np)
		return -EINVAL;
	dir = opendir(root);
	if (!dir) {
		if (errno != ENOENT)
			return -errno;
		*idsp = NULL;
		*np = 0;
		return 0;
	}
	while ((errno = 0, de = readdir(dir))) {
		struct stat st;

		if (!daemon_id_valid(de->d_name))
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		if (n == cap) {
			char **more = realloc(ids, (cap ? cap * 2 : 16) * sizeof(*ids));

			if (!more) {
				ret = -ENOMEM;
				break;
			}
			ids = more;
			cap = cap ? cap * 2 : 16;
		}
		ids[n] = strdup(de->d_name);
		if (!ids[n]) {
			ret = -ENOMEM;
			break;
		}
		n++;
	}
	if (!ret && errno)
		ret = -errno;
	closedir(dir);
	if (ret) {
		for (size_t i = 0; i < n; i++)
			free(ids[i]);
		free(ids);
		return ret;
	}
	if (n)
		qsort(ids, n, sizeof(*ids), id_cmp);
	*idsp = ids;
	*np = n;
	return 0;
}

/* Remove every entry of @dirfd that is not a directory. */
static void dir_empty(int dirfd)
{
	int fd = dup(dirfd);
	struct dirent *de;
	DIR *dir;

	if (fd < 0)
		return;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return;
	}
	while ((de = readdir(dir))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			(void)unlinkat(dirfd, de->d_name, 0);
	}
	closedir(dir);
}

int daemon_delete(const char *root, const char *id)
{
	int rootfd, dirfd, lockfd, ret = 0;

	if (!root || !daemon_id_valid(id))
		return -EINVAL;
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return errno == ENOTDIR ? -ENOENT : -errno;
	dirfd = id_dir_open(rootfd, id);
	if (dirfd < 0) {
		close(rootfd);
		return dirfd;
	}
	/* Holding the lock keeps any daemon from claiming the ID meanwhile;
	 * one that opened the old lock file checks it is still linked. */
	lockfd = lock_take(dirfd);
	if (lockfd < 0) {
		ret = lockfd;
		goto out;
	}
	dir_empty(dirfd);
	if (unlinkat(rootfd, id, AT_REMOVEDIR) < 0)
		ret = -errno;
	close(lockfd);
out:
	close(dirfd);
	close(rootfd);
	return ret;
}

int daemon_wait_gone(const char *root, const char *id, int timeout_ms)
{
	uint64_t deadline = deadline_from(timeout_ms);

	for (;;) {
		struct daemon_record rec;

		if (daemon_probe(root, id, &rec) < 0 || rec.status != DAEMON_RUNNING)
			return 0;
		if (remaining_ms(deadline) == 0)
			return -ETIMEDOUT;
		sleep_ms(10);
	}
}

/* The control socket's address: DIR/control.sock, or through the
 * directory's fd when that path is too long for sun_path. */
static int control_addr(const char *dir_path, int dirfd, struct sockaddr_un *sa, socklen_t *len)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", dir_path, CONTROL_SOCK);
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path)) {
		n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dirfd,
			     CONTROL_SOCK);
		if (n < 0 || (size_t)n >= sizeof(sa->sun_path))
			return -ENAMETOOLONG;
	}
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
	return 0;
}

/*
 * Is the peer of @fd one we talk to? A daemon serves its own euid and
 * root; a client talks to a daemon of its own euid or root's, and root
 * talks to any.
 */
static bool peer_allowed(int fd, bool daemon_side)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred))
		return false;
	if (cred.uid == geteuid() || cred.uid == 0)
		return true;
	return !daemon_side && geteuid() == 0;
}

/* ------------------------------------------------------------------ */
/* Client                                                              */
/* ------------------------------------------------------------------ */

/* Receive one record within the deadline: its full length (MSG_TRUNC),
 * 0 at end of stream, or -errno. */
static ssize_t recv_record(int fd, void *buf, size_t cap, uint64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int r = poll(&pfd, 1, remaining_ms(deadline));
		ssize_t n;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		n = recv(fd, buf, cap, MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == ECONNRESET ? 0 : -errno;
		return n;
	}
}

static int connect_control(const char *root, const char *id, int *fdp)
{
	char path[PATH_MAX];
	struct daemon_record rec;
	struct sockaddr_un sa;
	socklen_t salen;
	int rootfd, dirfd, fd, ret, n;

	ret = daemon_probe(root, id, &rec);
	if (ret)
		return ret;
	if (rec.status != DAEMON_RUNNING)
		return -ESRCH;
	n = snprintf(path, sizeof(path), "%s/%s", root, id);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return -errno;
	dirfd = id_dir_open(rootfd, id);
	close(rootfd);
	if (dirfd < 0)
		return dirfd;
	ret = control_addr(path, dirfd, &sa, &salen);
	if (ret)
		goto out_dir;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		goto out_dir;
	}
	if (connect(fd, (struct sockaddr *)&sa, salen) < 0) {
		ret = errno == ENOENT || errno == ECONNREFUSED ? -ECONNREFUSED : -errno;
		close(fd);
		goto out_dir;
	}
	if (!peer_allowed(fd, false)) {
		ret = -EPERM;
		close(fd);
		goto out_dir;
	}
	*fdp = fd;
out_dir:
	close(dirfd);
	return ret;
}

int control_call(const char *root, const char *id, const struct control_request *req,
		 int timeout_ms, bool keep_open, struct control_reply *rep)
{
	uint64_t deadline = deadline_from(timeout_ms);
	char *buf, line[CONTROL_LINE_MAX + 1];
	struct sbuf body = { 0 };
	int fd = -1, ret, len;
	ssize_t n;

	if (!rep)
		return -EINVAL;
	memset(rep, 0, sizeof(*rep));
	rep->fd = -1;
	buf = malloc(CONTROL_REQ_MAX > CONTROL_CHUNK + 1 ? CONTROL_REQ_MAX : CONTROL_CHUNK + 1);
	if (!buf)
		return -ENOMEM;
	len = control_request_format(req, buf, CONTROL_REQ_MAX);
	if (len < 0) {
		ret = len;
		goto out;
	}
	ret = connect_control(root, id, &fd);
	if (ret)
		goto out;
	if (send(fd, buf, (size_t)len, MSG_NOSIGNAL) != len) {
		ret = errno == EPIPE ? -ECONNRESET : -errno;
		goto out;
	}

	n = recv_record(fd, line, sizeof(line), deadline);
	if (n < 0) {
		ret = (int)n;
		goto out;
	}
	if (n == 0) {
		ret = -ECONNRESET;
		goto out;
	}
	if ((size_t)n > CONTROL_LINE_MAX ||
	    control_response_parse(line, (size_t)n, &rep->ok, rep->msg, sizeof(rep->msg))) {
		ret = -EBADMSG;
		goto out;
	}
	if (keep_open) {
		rep->fd = fd;
		fd = -1;
		goto out;
	}
	while (rep->ok) {
		n = recv_record(fd, buf, CONTROL_CHUNK + 1, deadline);
		if (n < 0) {
			ret = (int)n;
			goto out;
		}
		if (n == 0)
			break;
		if ((size_t)n > CONTROL_CHUNK) {
			ret = -EBADMSG;
			goto out;
		}
		if (body.len + (size_t)n > CONTROL_BODY_MAX) {
			ret = -E2BIG;
			goto out;
		}
		if (sb_reserve(&body, (size_t)n)) {
			memcpy(body.p + body.len, buf, (size_t)n);
			body.len += (size_t)n;
			body.p[body.len] = '\0';
		}
	}
	if (body.oom) {
		ret = -ENOMEM;
		goto out;
	}
	rep->body = body.p;
	rep->body_len = body.len;
	body.p = NULL;
out:
	sb_free(&body);
	free(buf);
	if (fd >= 0)
		close(fd);
	return ret;
}

int control_wait_eof(int fd, int timeout_ms)
{
	uint64_t deadline = deadline_from(timeout_ms);
	char buf[256];

	for (;;) {
		ssize_t n = recv_record(fd, buf, sizeof(buf), deadline);

		if (n == -ETIMEDOUT) {
			close(fd);
			return -ETIMEDOUT;
		}
		if (n <= 0)
			break;
	}
	close(fd);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Going to the background                                             */
/* ------------------------------------------------------------------ */

int daemon_detach(int *ready_fd)
{
	unsigned char status;
	int p[2];
	pid_t pid;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		int err = -errno;

		close(p[0]);
		close(p[1]);
		return err;
	}
	if (pid > 0) {
		close(p[1]);
		do
			n = read(p[0], &status, 1);
		while (n < 0 && errno == EINTR);
		if (n != 1) {
			fprintf(stderr, "netstack: the daemon exited while starting\n");
			_exit(1);
		}
		_exit(status);
	}
	close(p[0]);
	(void)setsid();
	if (chdir("/") < 0) {
		/* Only a courtesy to whoever unmounts the old cwd. */
	}
	*ready_fd = p[1];
	return 0;
}

void daemon_ready(int ready_fd, int status, int log_fd)
{
	unsigned char b = (unsigned char)status;
	int null;

	if (ready_fd < 0)
		return;
	fflush(stdout);
	fflush(stderr);
	if (status == 0) {
		/* The parent's pipes (a shell's $(...)) must not wait for us. */
		null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(log_fd >= 0 ? log_fd : null, STDERR_FILENO);
			close(null);
		}
	}
	while (write(ready_fd, &b, 1) < 0 && errno == EINTR)
		;
	close(ready_fd);
}

/* ------------------------------------------------------------------ */
/* The daemon                                                          */
/* ------------------------------------------------------------------ */

struct daemon {
	char id[SERVICE_ID_MAX + 1];
	char path[PATH_MAX];		/* ROOT/ID */
	int rootfd, dirfd, lockfd;
	bool created;			/* this daemon made ROOT/ID */
	bool state_written;		/* state.json is ours now */
	char created_at[40];

	/* What runs; set by daemon_serve(), then constant. */
	struct ns_stack *stack;
	struct services *svc;
	struct service_spec *specs;
	size_t nspecs;
	bool restored;
	double restore_ms;
	char restored_from[PATH_MAX];

	/* Logging: lines go out once serving; the last error is kept. */
	atomic_bool logging;
	pthread_mutex_t log_lock;
	char last_err[512];		/* under log_lock */

	/* Control. */
	int listenfd, stopfd, wakefd, sigfd;
	pthread_t server;
	bool server_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* a handler ended */
	unsigned nhandlers;		/* under lock */
	bool stopping;			/* under lock */
	bool end_set;			/* under lock */
	enum daemon_end end;		/* under lock */
	int held[HELD_MAX];		/* under lock */
	size_t nheld;
	int64_t checkpoint_count;	/* under lock: for state.json */
	char image_path[PATH_MAX];	/* under lock */
	char mem_digest[48];		/* under lock; empty until computed */

	/* Checkpoints, one at a time. */
	pthread_mutex_t ckpt_lock;
	char *hook_cfg;			/* under ckpt_lock: captured by the hook */
	size_t hook_cfg_len;
	int64_t done_count;		/* under ckpt_lock: the count our last */
	int done_rc;			/* handled attempt ended with, its result */
	char done_msg[CONTROL_LINE_MAX]; /* and its error line */
};

struct handler {
	struct daemon *d;
	int fd;
};

static void state_rfc3339(char *buf, size_t cap)
{
	struct tm tm;
	time_t now = time(NULL);

	if (!gmtime_r(&now, &tm) || !strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
		buf[0] = '\0';
}

int daemon_open(const char *root, const char *id, struct daemon **out)
{
	struct daemon *d;
	struct stat a, b;
	int ret, n;

	if (!root || root[0] != '/' || !daemon_id_valid(id) || !out)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->rootfd = d->dirfd = d->lockfd = -1;
	d->listenfd = d->stopfd = d->wakefd = d->sigfd = -1;
	snprintf(d->id, sizeof(d->id), "%s", id);
	n = snprintf(d->path, sizeof(d->path), "%s/%s", root, id);
	if (n < 0 || (size_t)n >= sizeof(d->path)) {
		ret = -ENAMETOOLONG;
		goto fail;
	}
	if (pthread_mutex_init(&d->log_lock, NULL) || pthread_mutex_init(&d->lock, NULL) ||
	    pthread_mutex_init(&d->ckpt_lock, NULL) || pthread_cond_init(&d->cond, NULL)) {
		ret = -ENOMEM;
		goto fail;
	}
	atomic_init(&d->logging, false);
	ret = mkdir_p(root);
	if (ret)
		goto fail;
	d->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->rootfd < 0) {
		ret = -errno;
		goto fail;
	}
	/* A delete may remove the directory between our open and our lock:
	 * then the lock is on an unlinked file; start over. */
	for (int tries = 0;; tries++) {
		if (tries == 5) {
			ret = -EAGAIN;
			goto fail;
		}
		if (mkdirat(d->rootfd, id, 0700) == 0)
			d->created = true;
		else if (errno != EEXIST) {
			ret = -errno;
			goto fail;
		}
		d->dirfd = id_dir_open(d->rootfd, id);
		if (d->dirfd < 0) {
			ret = d->dirfd;
			goto fail;
		}
		d->lockfd = lock_take(d->dirfd);
		if (d->lockfd < 0) {
			ret = d->lockfd;
			goto fail;
		}
		if (fstat(d->lockfd, &a) == 0 && a.st_nlink > 0 && fstat(d->dirfd, &a) == 0 &&
		    fstatat(d->rootfd, id, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			break;
		close(d->lockfd);
		close(d->dirfd);
		d->lockfd = d->dirfd = -1;
		d->created = false;
	}
	if (fchmod(d->dirfd, 0700) < 0) {
		ret = -errno;
		goto fail;
	}
	/* A daemon that died left its socket behind. */
	(void)unlinkat(d->dirfd, CONTROL_SOCK, 0);
	(void)unlinkat(d->dirfd, STATE_TMP, 0);
	state_rfc3339(d->created_at, sizeof(d->created_at));
	*out = d;
	return 0;
fail:
	daemon_close(d, DAEMON_END_ABORT);
	return ret;
}

const char *daemon_path(const struct daemon *d)
{
	return d->path;
}

void daemon_log(void *arg, int level, const char *msg)
{
	struct daemon *d = arg;

	if (level <= NS_LOG_ERR) {
		pthread_mutex_lock(&d->log_lock);
		snprintf(d->last_err, sizeof(d->last_err), "%s", msg);
		pthread_mutex_unlock(&d->log_lock);
	}
	if (atomic_load(&d->logging))
		fprintf(stderr, "netstack: %s: %s\n", d->id, msg);
}

static void last_err_take(struct daemon *d, char *buf, size_t cap)
{
	pthread_mutex_lock(&d->log_lock);
	snprintf(buf, cap, "%s", d->last_err);
	d->last_err[0] = '\0';
	pthread_mutex_unlock(&d->log_lock);
}

/* Write state.json as @status says. */
static int state_write(struct daemon *d, enum daemon_status status)
{
	struct sbuf b = { 0 };
	int ret;

	pthread_mutex_lock(&d->lock);
	sb_printf(&b, "{\n  \"id\": ");
	sb_json_str(&b, d->id);
	sb_printf(&b, ",\n  \"status\": \"%s\",\n  \"pid\": %d,\n  \"created\": ",
		  daemon_status_name(status), status == DAEMON_RUNNING ? (int)getpid() : 0);
	sb_json_str(&b, d->created_at);
	sb_printf(&b, ",\n  \"restored\": %s", d->restored ? "true" : "false");
	if (d->restored) {
		sb_printf(&b, ",\n  \"restore_ms\": %.3f,\n  \"restored_from\": ", d->restore_ms);
		sb_json_str(&b, d->restored_from);
	}
	sb_printf(&b, ",\n  \"checkpoint_count\": %" PRId64 ",\n  \"image_path\": ",
		  d->checkpoint_count);
	if (d->image_path[0])
		sb_json_str(&b, d->image_path);
	else
		sb_printf(&b, "null");
	sb_printf(&b, "\n}\n");
	pthread_mutex_unlock(&d->lock);
	if (b.oom)
		return -ENOMEM;
	ret = file_write_atomic(d->dirfd, STATE_FILE, STATE_TMP, b.p, b.len, false);
	if (!ret)
		d->state_written = true;
	sb_free(&b);
	return ret;
}

static const char *mac_text(const uint8_t mac[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
	return buf;
}

/* The NIC ids of the stack, malloc'ed. */
static int nic_ids(struct ns_stack *s, int **idsp)
{
	int n = ns_nic_list(s, NULL, 0), got;
	int *ids;

	for (;;) {
		if (n < 0)
			return n;
		ids = calloc((size_t)n + 1, sizeof(*ids));
		if (!ids)
			return -ENOMEM;
		got = ns_nic_list(s, ids, (size_t)n + 1);
		if (got >= 0 && got <= n + 1) {
			*idsp = ids;
			return got;
		}
		free(ids);
		n = got;
	}
}

/* Build netstack-run.json for the stack as it is now. */
static int run_config_build(struct daemon *d, struct sbuf *b)
{
	int *ids = NULL, n;

	n = nic_ids(d->stack, &ids);
	if (n < 0)
		return n;
	sb_printf(b, "{\n  \"format\": \"%s\",\n  \"version\": %d,\n  \"id\": ", RUN_CONFIG_FORMAT,
		  RUN_CONFIG_VERSION);
	sb_json_str(b, d->id);
	sb_printf(b, ",\n  \"nics\": [");
	for (int i = 0; i < n; i++) {
		struct ns_nic_info info;
		int ret = ns_nic_info(d->stack, ids[i], &info);

		if (ret < 0) {
			free(ids);
			return ret;
		}
		sb_printf(b, "%s\n    {\"name\": ", i ? "," : "");
		sb_json_str(b, info.name);
		sb_printf(b, ", \"kind\": ");
		sb_json_str(b, info.kind);
		sb_printf(b, ", \"device\": ");
		sb_json_str(b, info.device);
		sb_printf(b, "}");
	}
	free(ids);
	sb_printf(b, "%s],\n  \"services\": [", n ? "\n  " : "");
	for (size_t i = 0; i < d->nspecs; i++) {
		char spec[SERVICE_SPEC_MAX];
		int sock = services_socket(d->svc, i);

		if (sock < 0 || services_format(&d->specs[i], spec, sizeof(spec)) < 0)
			return -EINVAL;
		sb_printf(b, "%s\n    {\"spec\": ", i ? "," : "");
		sb_json_str(b, spec);
		sb_printf(b, ", \"socket\": %d}", sock);
	}
	sb_printf(b, "%s]\n}\n", d->nspecs ? "\n  " : "");
	return b->oom ? -ENOMEM : 0;
}

/* NS_HOOK_PRE_CHECKPOINT: the stack is quiesced, so the socket numbers
 * captured here are those the image holds. Runs in the checkpointing
 * handler, which holds ckpt_lock. */
static int hook_pre_checkpoint(struct ns_stack *s, void *arg)
{
	struct daemon *d = arg;
	struct sbuf b = { 0 };
	int ret;

	(void)s;
	ret = run_config_build(d, &b);
	if (ret) {
		sb_free(&b);
		return ret;
	}
	free(d->hook_cfg);
	d->hook_cfg = b.p;
	d->hook_cfg_len = b.len;
	return 0;
}

/* ---- the state document ---- */

static void sb_sockaddr(struct sbuf *b, const struct sockaddr_storage *ss)
{
	char text[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
		sb_printf(b, "\"%s:%u\"", text, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
		sb_printf(b, "\"[%s]:%u\"", text, ntohs(in6->sin6_port));
	} else {
		sb_printf(b, "null");
	}
}

static void sb_prefix(struct sbuf *b, const struct ns_prefix *p)
{
	char text[INET6_ADDRSTRLEN];

	if (ns_addr_format(&p->addr, text, sizeof(text)) < 0)
		snprintf(text, sizeof(text), "?");
	sb_printf(b, "\"%s/%u\"", text, p->len);
}

static const char *const sock_state_names[] = {
	[NS_SOCKET_UNBOUND] = "unbound",
	[NS_SOCKET_BOUND] = "bound",
	[NS_SOCKET_LISTENING] = "listening",
	[NS_SOCKET_CONNECTING] = "connecting",
	[NS_SOCKET_CONNECTED] = "connected",
	[NS_SOCKET_CLOSED] = "closed",
};
static_assert(ARRAY_SIZE(sock_state_names) == NS_SOCKET_CLOSED + 1,
	      "sock_state_names matches enum ns_socket_state");

static void state_nics(struct daemon *d, struct sbuf *b)
{
	int *ids = NULL, n = nic_ids(d->stack, &ids);

	sb_printf(b, ",\n  \"nics\": [");
	for (int i = 0; i < n; i++) {
		struct ns_prefix addrs[16];
		struct ns_nic_info info;
		char mac[18];
		int na;

		if (ns_nic_info(d->stack, ids[i], &info) < 0)
			continue;
		sb_printf(b, "%s\n    {\"id\": %d, \"name\": ", i ? "," : "", info.id);
		sb_json_str(b, info.name);
		sb_printf(b, ", \"kind\": ");
		sb_json_str(b, info.kind);
		sb_printf(b, ", \"device\": ");
		sb_json_str(b, info.device);
		sb_printf(b, ", \"mac\": \"%s\", \"mtu\": %u, \"up\": %s, \"link_up\": %s,\n"
			     "     \"addresses\": [",
			  mac_text(info.mac, mac), info.mtu, info.up ? "true" : "false",
			  info.link_up ? "true" : "false");
		na = ns_addr_list(d->stack, ids[i], addrs, ARRAY_SIZE(addrs));
		for (int k = 0; k < na && k < (int)ARRAY_SIZE(addrs); k++) {
			sb_printf(b, "%s", k ? ", " : "");
			sb_prefix(b, &addrs[k]);
		}
		sb_printf(b, "],\n     \"counters\": {\"rx_frames\": %" PRIu64 ", \"tx_frames\": %" PRIu64
			     ", \"rx_bytes\": %" PRIu64 ", \"tx_bytes\": %" PRIu64
			     ", \"rx_malformed\": %" PRIu64 ", \"tx_dropped\": %" PRIu64 "}}",
			  info.rx_frames, info.tx_frames, info.rx_bytes, info.tx_bytes,
			  info.rx_malformed, info.tx_dropped);
	}
	free(ids);
	sb_printf(b, "%s]", n > 0 ? "\n  " : "");
}

static void state_routes(struct daemon *d, struct sbuf *b)
{
	struct ns_route *r = NULL;
	int n = ns_route_list(d->stack, NULL, 0);

	while (n >= 0) {
		int got;

		free(r);
		r = calloc((size_t)n + 1, sizeof(*r));
		if (!r) {
			n = -ENOMEM;
			break;
		}
		got = ns_route_list(d->stack, r, (size_t)n + 1);
		if (got <= n + 1) {
			n = got;
			break;
		}
		n = got;
	}
	sb_printf(b, ",\n  \"routes\": [");
	for (int i = 0; i < n; i++) {
		char gw[INET6_ADDRSTRLEN];

		sb_printf(b, "%s\n    {\"destination\": ", i ? "," : "");
		sb_prefix(b, &r[i].dst);
		if (r[i].gateway.family && ns_addr_format(&r[i].gateway, gw, sizeof(gw)) >= 0)
			sb_printf(b, ", \"gateway\": \"%s\"", gw);
		else
			sb_printf(b, ", \"gateway\": null");
		sb_printf(b, ", \"nic\": %d, \"metric\": %u}", r[i].nic, r[i].metric);
	}
	sb_printf(b, "%s]", n > 0 ? "\n  " : "");
	free(r);
}

/* The service a socket serves, or NULL. */
static const struct service_spec *service_of(struct daemon *d, int sock)
{
	for (size_t i = 0; i < d->nspecs; i++) {
		if (services_socket(d->svc, i) == sock)
			return &d->specs[i];
	}
	return NULL;
}

static void state_sockets(struct daemon *d, struct sbuf *b)
{
	struct ns_socket_info *si = NULL;
	int n = ns_socket_list(d->stack, NULL, 0);
	bool first = true;

	while (n >= 0) {
		int got;

		free(si);
		si = calloc((size_t)n + 1, sizeof(*si));
		if (!si) {
			n = -ENOMEM;
			break;
		}
		got = ns_socket_list(d->stack, si, (size_t)n + 1);
		if (got <= n + 1) {
			n = got;
			break;
		}
		n = got;
	}

	sb_printf(b, ",\n  \"services\": [");
	for (size_t i = 0; i < d->nspecs; i++) {
		char spec[SERVICE_SPEC_MAX];

		if (services_format(&d->specs[i], spec, sizeof(spec)) < 0)
			continue;
		sb_printf(b, "%s\n    {\"spec\": ", i ? "," : "");
		sb_json_str(b, spec);
		sb_printf(b, ", \"socket\": %d}", services_socket(d->svc, i));
	}
	sb_printf(b, "%s]", d->nspecs ? "\n  " : "");

	sb_printf(b, ",\n  \"listeners\": [");
	for (int i = 0; i < n; i++) {
		const struct service_spec *spec;
		char text[SERVICE_SPEC_MAX];

		if (si[i].state != NS_SOCKET_LISTENING)
			continue;
		sb_printf(b, "%s\n    {\"socket\": %d, \"proto\": \"tcp\", \"local\": ",
			  first ? "" : ",", si[i].id);
		sb_sockaddr(b, &si[i].local);
		sb_printf(b, ", \"backlog\": %d, \"queued_bytes\": %zu, \"service\": ", si[i].backlog,
			  si[i].rx_queued);
		spec = service_of(d, si[i].id);
		if (spec && services_format(spec, text, sizeof(text)) >= 0) {
			sb_json_str(b, text);
			sb_printf(b, "}");
		} else {
			sb_printf(b, "null}");
		}
		first = false;
	}
	sb_printf(b, "%s]", first ? "" : "\n  ");

	sb_printf(b, ",\n  \"sockets\": [");
	for (int i = 0; i < n; i++) {
		unsigned st = (unsigned)si[i].state;

		sb_printf(b, "%s\n    {\"id\": %d, \"proto\": \"%s\", \"family\": \"%s\", \"state\": \"%s\","
			     " \"local\": ",
			  i ? "," : "", si[i].id, si[i].type == SOCK_STREAM ? "tcp" : "udp",
			  si[i].family == AF_INET6 ? "inet6" : "inet",
			  st < ARRAY_SIZE(sock_state_names) ? sock_state_names[st] : "unknown");
		sb_sockaddr(b, &si[i].local);
		sb_printf(b, ", \"remote\": ");
		sb_sockaddr(b, &si[i].remote);
		sb_printf(b, ", \"rx_queued\": %zu}", si[i].rx_queued);
	}
	sb_printf(b, "%s]", n > 0 ? "\n  " : "");
	free(si);
}

static void state_counters(struct daemon *d, struct sbuf *b)
{
	struct ns_stats st;

	if (ns_stack_stats(d->stack, &st) < 0) {
		sb_printf(b, ",\n  \"counters\": null");
		return;
	}
	sb_printf(b,
		  ",\n  \"counters\": {\n"
		  "    \"rx_frames\": %" PRIu64 ", \"tx_frames\": %" PRIu64 ",\n"
		  "    \"rx_bytes\": %" PRIu64 ", \"tx_bytes\": %" PRIu64 ",\n"
		  "    \"rx_malformed\": %" PRIu64 ", \"rx_dropped\": %" PRIu64
		  ", \"tx_dropped\": %" PRIu64 ",\n"
		  "    \"ip_chkerr\": %" PRIu64 ", \"ip_lenerr\": %" PRIu64 ", \"tcp_chkerr\": %" PRIu64
		  ", \"udp_chkerr\": %" PRIu64 ",\n"
		  "    \"udp_rcvbuf_drops\": %" PRIu64 ",\n"
		  "    \"syncookies_sent\": %" PRIu64 ", \"syncookies_validated\": %" PRIu64
		  ", \"syncookies_failed\": %" PRIu64 ",\n"
		  "    \"busy_poll_hits\": %" PRIu64 "\n  }",
		  st.rx_frames, st.tx_frames, st.rx_bytes, st.tx_bytes, st.rx_malformed, st.rx_dropped,
		  st.tx_dropped, st.ip_chkerr, st.ip_lenerr, st.tcp_chkerr, st.udp_chkerr,
		  st.udp_rcvbuf_drops, st.syncookies_sent, st.syncookies_validated,
		  st.syncookies_failed, st.busy_poll_hits);
}

/* The digest of the memory region once it is all in (computed once: the
 * daemon never writes the region after filling it). */
static bool memory_digest(struct daemon *d, const struct ns_memfile_progress *p, char *out,
			  size_t cap)
{
	struct ns_region *r;
	bool have;

	if (!p->done || p->error || ns_memfile_region_find(d->stack, DAEMON_MEMORY_REGION, &r))
		return false;
	pthread_mutex_lock(&d->lock);
	if (!d->mem_digest[0]) {
		uint64_t crc = crc64_ecma_refl(0, ns_region_addr(r), ns_region_size(r));

		snprintf(d->mem_digest, sizeof(d->mem_digest), "crc64:%016" PRIx64, crc);
	}
	have = snprintf(out, cap, "%s", d->mem_digest) > 0;
	pthread_mutex_unlock(&d->lock);
	return have;
}

static void state_usage(struct daemon *d, struct sbuf *b)
{
	struct ns_usage u;

	if (ns_stack_usage(d->stack, &u) < 0) {
		sb_printf(b, ",\n  \"usage\": null");
		return;
	}
	sb_printf(b,
		  ",\n  \"usage\": {\n"
		  "    \"sockets\": %" PRIu64 ", \"max_sockets\": %" PRIu64
		  ", \"sock_refused\": %" PRIu64 ",\n"
		  "    \"mem_used\": %" PRIu64 ", \"mem_peak\": %" PRIu64 ", \"max_memory\": %" PRIu64
		  ", \"mem_refused\": %" PRIu64 ", \"mem_pruned\": %" PRIu64 ",\n"
		  "    \"rx_queued\": %" PRIu64 ", \"max_rx_total\": %" PRIu64
		  ", \"rx_refused\": %" PRIu64 "\n  }",
		  u.sockets, u.max_sockets, u.sock_refused, u.mem_used, u.mem_peak, u.max_memory,
		  u.mem_refused, u.mem_pruned, u.rx_queued, u.max_rx_total, u.rx_refused);
}

static void state_memory(struct daemon *d, struct sbuf *b)
{
	struct ns_memfile_progress p;
	char digest[48];

	if (ns_memfile_progress(d->stack, &p) < 0 || p.regions == 0) {
		sb_printf(b, ",\n  \"memory\": null");
		return;
	}
	sb_printf(b,
		  ",\n  \"memory\": {\n"
		  "    \"regions\": %u, \"bytes\": %" PRIu64 ", \"data_bytes\": %" PRIu64 ",\n"
		  "    \"loaded\": %" PRIu64 ", \"failed\": %" PRIu64 ", \"done\": %s, \"loading\": %s,\n"
		  "    \"rate_mib_s\": %.1f, \"elapsed_ms\": %.3f,\n    \"backend\": ",
		  p.regions, p.bytes, p.data_bytes, p.loaded_bytes, p.failed_bytes,
		  p.done ? "true" : "false", p.loading ? "true" : "false",
		  (double)p.rate_bps / (1 << 20), (double)p.elapsed_ns / 1e6);
	sb_json_str(b, p.backend);
	sb_printf(b, ", \"fallback\": ");
	if (p.fallback[0])
		sb_json_str(b, p.fallback);
	else
		sb_printf(b, "null");
	sb_printf(b, ",\n    \"error\": ");
	if (p.error)
		sb_json_str(b, p.why);
	else
		sb_printf(b, "null");
	sb_printf(b, ", \"digest\": ");
	if (memory_digest(d, &p, digest, sizeof(digest)))
		sb_json_str(b, digest);
	else
		sb_printf(b, "null");
	sb_printf(b, "\n  }");
}

static void state_build(struct daemon *d, struct sbuf *b)
{
	int64_t count = ns_stack_checkpoint_count(d->stack, NULL);

	sb_printf(b, "{\n  \"id\": ");
	sb_json_str(b, d->id);
	sb_printf(b, ",\n  \"status\": \"running\",\n  \"pid\": %d,\n  \"created\": ", (int)getpid());
	sb_json_str(b, d->created_at);
	sb_printf(b, ",\n  \"restored\": %s", d->restored ? "true" : "false");
	if (d->restored) {
		sb_printf(b, ",\n  \"restore_ms\": %.3f,\n  \"restored_from\": ", d->restore_ms);
		sb_json_str(b, d->restored_from);
	}
	sb_printf(b, ",\n  \"checkpoint_count\": %" PRId64 ",\n  \"image_path\": ",
		  count < 0 ? 0 : count);
	pthread_mutex_lock(&d->lock);
	if (d->image_path[0])
		sb_json_str(b, d->image_path);
	else
		sb_printf(b, "null");
	pthread_mutex_unlock(&d->lock);
	state_nics(d, b);
	state_routes(d, b);
	state_sockets(d, b);
	state_counters(d, b);
	state_usage(d, b);
	state_memory(d, b);
	sb_printf(b, "\n}\n");
}

/* ---- handlers ---- */

static void reply(int fd, bool ok, const char *msg)
{
	char line[CONTROL_LINE_MAX + 1];
	int n = control_response_format(ok, msg, line, sizeof(line));

	if (n > 0)
		(void)send(fd, line, (size_t)n, MSG_NOSIGNAL);
}

__attribute__((format(printf, 3, 4)))
static void replyf(int fd, bool ok, const char *fmt, ...)
{
	char msg[CONTROL_LINE_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply(fd, ok, msg);
}

static bool is_stopping(struct daemon *d)
{
	bool stopping;

	pthread_mutex_lock(&d->lock);
	stopping = d->stopping;
	pthread_mutex_unlock(&d->lock);
	return stopping;
}

/* Ask the main thread to end the daemon. */
static void end_request(struct daemon *d, enum daemon_end end)
{
	uint64_t one = 1;

	pthread_mutex_lock(&d->lock);
	if (!d->end_set) {
		d->end_set = true;
		d->end = end;
	}
	pthread_mutex_unlock(&d->lock);
	(void)write(d->wakefd, &one, sizeof(one));
}

static void do_state(struct daemon *d, int fd)
{
	struct sbuf b = { 0 };

	state_build(d, &b);
	if (b.oom) {
		reply(fd, false, "out of memory building the state");
		sb_free(&b);
		return;
	}
	reply(fd, true, NULL);
	for (size_t off = 0; off < b.len && !is_stopping(d); off += CONTROL_CHUNK) {
		size_t n = b.len - off < CONTROL_CHUNK ? b.len - off : CONTROL_CHUNK;

		if (send(fd, b.p + off, n, MSG_NOSIGNAL) < 0)
			break;
	}
	sb_free(&b);
}

/*
 * Refuse an image path that cannot work before the stack is touched: a
 * failed checkpoint without leave-running would leave the stack stopped.
 * Return: NULL, or why not (in @buf).
 */
static const char *image_path_check(const char *path, char *buf, size_t cap)
{
	char parent[PATH_MAX];
	struct stat st;
	char *slash;

	if (lstat(path, &st) == 0) {
		DIR *dir;
		struct dirent *de;
		bool empty = true;

		if (S_ISLNK(st.st_mode))
			snprintf(buf, cap, "image path %s is a symlink", path);
		else if (!S_ISDIR(st.st_mode))
			snprintf(buf, cap, "image path %s exists and is not a directory", path);
		else if (!(dir = opendir(path)))
			snprintf(buf, cap, "cannot open image path %s: %s", path, strerror(errno));
		else {
			while ((de = readdir(dir))) {
				if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
					empty = false;
			}
			closedir(dir);
			if (empty)
				return NULL;
			snprintf(buf, cap, "image path %s is not empty", path);
		}
		return buf;
	}
	if (errno != ENOENT) {
		snprintf(buf, cap, "cannot use image path %s: %s", path, strerror(errno));
		return buf;
	}
	snprintf(parent, sizeof(parent), "%s", path);
	slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	if (stat(parent, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(buf, cap, "the parent of image path %s is not a directory", path);
		return buf;
	}
	return NULL;
}

/* Write the captured netstack-run.json into the new image directory. */
static int run_config_write(struct daemon *d, const char *dir)
{
	struct sbuf b = { 0 };
	int fd, ret;

	if (!d->hook_cfg) {
		/* The library ran no hook (it does on success): build it now. */
		ret = run_config_build(d, &b);
		if (ret) {
			sb_free(&b);
			return ret;
		}
		d->hook_cfg = b.p;
		d->hook_cfg_len = b.len;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = file_write_atomic(fd, RUN_CONFIG_FILE, RUN_CONFIG_TMP, d->hook_cfg, d->hook_cfg_len,
				true);
	close(fd);
	return ret;
}

/* "restored" once a restored daemon has every page of its memory in;
 * "loading" before; an error if some failed. */
static void do_wait_restore(struct daemon *d, int fd)
{
	struct ns_memfile_progress p;

	if (!d->restored) {
		reply(fd, true, "not-restored");
		return;
	}
	if (ns_memfile_progress(d->stack, &p) < 0 || p.done) {
		if (p.error)
			replyf(fd, false, "restored, but its memory failed to load: %s", p.why);
		else
			reply(fd, true, "restored");
		return;
	}
	reply(fd, true, "loading");
}

/* Remember how our attempt ended, for wait-checkpoint. */
static void done_set(struct daemon *d, int rc, const char *msg)
{
	d->done_count = ns_stack_checkpoint_count(d->stack, NULL);
	d->done_rc = rc;
	str_copy(d->done_msg, sizeof(d->done_msg), msg ? msg : "");
}

/* Returns true when the connection is to be held until the daemon is gone. */
static bool do_checkpoint(struct daemon *d, int fd, const struct control_request *req)
{
	struct ns_checkpoint_opts opts = { .leave_running = req->leave_running,
					   .compression = req->compression,
					   .direct = req->direct };
	/* Room for a whole path; reply() cuts the line to CONTROL_LINE_MAX. */
	char why[PATH_MAX + 256], msg[PATH_MAX + 512];
	bool hold = false;
	int rc;

	if (pthread_mutex_trylock(&d->ckpt_lock)) {
		reply(fd, false, "another checkpoint is in progress");
		return false;
	}
	if (is_stopping(d)) {
		reply(fd, false, "the daemon is stopping");
		goto out;
	}
	if (image_path_check(req->path, why, sizeof(why))) {
		reply(fd, false, why);
		goto out;
	}
	free(d->hook_cfg);
	d->hook_cfg = NULL;
	last_err_take(d, why, sizeof(why));	/* forget older lines */
	rc = ns_stack_checkpoint(d->stack, req->path, &opts);
	if (rc) {
		last_err_take(d, why, sizeof(why));
		if (!why[0])
			snprintf(why, sizeof(why), "checkpoint to %s failed: %s", req->path,
				 strerror(-rc));
		/* The library resumed the stack: a failed checkpoint changes
		 * nothing, the daemon serves on (as runsc's sandbox does). */
		snprintf(msg, sizeof(msg), "%s; the stack keeps running", why);
		done_set(d, rc, msg);
		reply(fd, false, msg);
		goto out;
	}
	rc = run_config_write(d, req->path);
	if (rc) {
		/* The image is unusable to 'restore' without its config: serve
		 * on. After a successful checkpoint ns_stack_start() resumes a
		 * stack that stayed stopped (and thaws its clock). */
		int rs = req->leave_running ? 0 : ns_stack_start(d->stack);

		snprintf(msg, sizeof(msg), "image written to %s, but not its %s: %s%s", req->path,
			 RUN_CONFIG_FILE, strerror(-rc),
			 req->leave_running ? ""
			 : rs ? "; the stack cannot resume, the daemon exits"
			      : "; the stack resumed");
		done_set(d, rc, msg);
		reply(fd, false, msg);
		if (rs)
			end_request(d, DAEMON_END_FAILED);
		goto out;
	}
	pthread_mutex_lock(&d->lock);
	d->checkpoint_count = ns_stack_checkpoint_count(d->stack, NULL);
	snprintf(d->image_path, sizeof(d->image_path), "%s", req->path);
	pthread_mutex_unlock(&d->lock);
	(void)state_write(d, DAEMON_RUNNING);
	done_set(d, 0, NULL);
	reply(fd, true, NULL);
	if (!req->leave_running) {
		hold = true;
		end_request(d, DAEMON_END_CHECKPOINTED);
	}
out:
	pthread_mutex_unlock(&d->ckpt_lock);
	return hold;
}

/* Has the client gone away? */
static bool peer_gone(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&pfd, 1, 0) <= 0)
		return false;
	if (pfd.revents & (POLLHUP | POLLERR))
		return true;
	return recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) == 0;
}

static void do_wait_checkpoint(struct daemon *d, int fd, const struct control_request *req)
{
	uint64_t deadline = deadline_from(req->timeout_ms);
	int64_t seen = ns_stack_checkpoint_count(d->stack, NULL), now;
	int last = 0, rc;

	for (;;) {
		int slice = remaining_ms(deadline);

		if (slice < 0 || slice > WAIT_SLICE_MS)
			slice = WAIT_SLICE_MS;
		(void)ns_stack_checkpoint_wait(d->stack, seen, slice);
		/* The count, not the wait's result, says whether an attempt
		 * ended: an attempt may itself fail with -ETIMEDOUT. */
		now = ns_stack_checkpoint_count(d->stack, &last);
		if (now > seen)
			break;
		if (is_stopping(d)) {
			reply(fd, false, "the daemon stopped before a checkpoint");
			return;
		}
		if (peer_gone(fd))
			return;
		if (remaining_ms(deadline) == 0) {
			replyf(fd, false, "no checkpoint within %d ms", req->timeout_ms);
			return;
		}
	}
	/* An attempt of ours also writes netstack-run.json: its handler
	 * holds ckpt_lock until then, and says how it ended. */
	pthread_mutex_lock(&d->ckpt_lock);
	rc = last;
	if (d->done_count == seen + 1 && (d->done_rc || !rc)) {
		rc = d->done_rc;
		if (rc)
			reply(fd, false, d->done_msg);
		else
			reply(fd, true, NULL);
		pthread_mutex_unlock(&d->ckpt_lock);
		return;
	}
	pthread_mutex_unlock(&d->ckpt_lock);
	if (rc)
		replyf(fd, false, "checkpoint failed: %s", strerror(-rc));
	else
		reply(fd, true, NULL);
}

static void handler_dispatch(struct daemon *d, int fd, bool *hold)
{
	struct pollfd pfd[2] = { { .fd = fd, .events = POLLIN }, { .fd = d->stopfd, .events = POLLIN } };
	struct timeval tv = { .tv_sec = SEND_TIMEOUT_S };
	struct control_request req;
	const char *why = NULL;
	char *buf;
	ssize_t n;
	int r;

	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	do
		r = poll(pfd, 2, REQUEST_WAIT_MS);
	while (r < 0 && errno == EINTR);
	if (r <= 0 || !(pfd[0].revents & POLLIN))
		return;		/* silent, stopping, or gone */
	buf = malloc(CONTROL_REQ_MAX + 1);
	if (!buf) {
		reply(fd, false, "out of memory");
		return;
	}
	n = recv(fd, buf, CONTROL_REQ_MAX + 1, MSG_DONTWAIT | MSG_TRUNC);
	if (n <= 0) {
		free(buf);
		return;
	}
	r = control_request_parse(buf, (size_t)n, &req, &why);
	free(buf);
	if (r) {
		replyf(fd, false, "bad request: %s", why ? why : "malformed");
		return;
	}
	switch (req.verb) {
	case CONTROL_CHECKPOINT:
		*hold = do_checkpoint(d, fd, &req);
		break;
	case CONTROL_STATE:
		do_state(d, fd);
		break;
	case CONTROL_WAIT_CHECKPOINT:
		do_wait_checkpoint(d, fd, &req);
		break;
	case CONTROL_WAIT_RESTORE:
		do_wait_restore(d, fd);
		break;
	default:
		reply(fd, false, "unknown request");
		break;
	}
}

static void *handler_main(void *arg)
{
	struct handler *h = arg;
	struct daemon *d = h->d;
	bool hold = false;

	handler_dispatch(d, h->fd, &hold);
	pthread_mutex_lock(&d->lock);
	if (hold && d->nheld < HELD_MAX)
		d->held[d->nheld++] = h->fd;
	else
		close(h->fd);
	d->nhandlers--;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	free(h);
	return NULL;
}

/*
 * Answer a connection the control thread will not serve, and close it.
 * Its request is read first (for at most REFUSE_WAIT_MS): closing a unix
 * socket with unread data makes the peer's recv() fail with ECONNRESET
 * before it could read our line.
 */
static void refuse(int fd, const char *msg)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&pfd, 1, REFUSE_WAIT_MS) > 0)
		(void)recv(fd, &c, 1, MSG_DONTWAIT | MSG_TRUNC);
	reply(fd, false, msg);
	close(fd);
}

static void serve_one(struct daemon *d, int fd)
{
	pthread_attr_t attr;
	struct handler *h;
	pthread_t t;
	int err;

	if (!peer_allowed(fd, true)) {
		refuse(fd, "permission denied: the daemon runs as another user");
		return;
	}
	pthread_mutex_lock(&d->lock);
	if (d->stopping || d->nhandlers >= HANDLERS_MAX) {
		bool stopping = d->stopping;

		pthread_mutex_unlock(&d->lock);
		refuse(fd, stopping ? "the daemon is stopping" : "busy: too many requests in progress");
		return;
	}
	d->nhandlers++;
	pthread_mutex_unlock(&d->lock);

	h = malloc(sizeof(*h));
	err = h ? pthread_attr_init(&attr) : ENOMEM;
	if (!err) {
		h->d = d;
		h->fd = fd;
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		err = pthread_create(&t, &attr, handler_main, h);
		pthread_attr_destroy(&attr);
	}
	if (err) {
		free(h);
		replyf(fd, false, "cannot serve the request: %s", strerror(err));
		close(fd);
		pthread_mutex_lock(&d->lock);
		d->nhandlers--;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
	}
}

static void *server_main(void *arg)
{
	struct daemon *d = arg;

	for (;;) {
		struct pollfd pfd[2] = { { .fd = d->listenfd, .events = POLLIN },
					 { .fd = d->stopfd, .events = POLLIN } };
		int fd;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			sleep_ms(ACCEPT_BACKOFF_MS);
			continue;
		}
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(d->listenfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of fds or memory: pause rather than spin. */
			if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
				sleep_ms(ACCEPT_BACKOFF_MS);
			continue;
		}
		serve_one(d, fd);
	}
	return NULL;
}

int daemon_serve(struct daemon *d, const struct daemon_stack *ds)
{
	struct sockaddr_un sa;
	socklen_t salen;
	sigset_t sigs;
	int ret;

	if (!d || !ds || !ds->stack || (ds->nspecs && (!ds->specs || !ds->svc)))
		return -EINVAL;
	d->stack = ds->stack;
	d->svc = ds->svc;
	d->nspecs = ds->nspecs;
	d->specs = calloc(ds->nspecs + 1, sizeof(*d->specs));
	if (!d->specs)
		return -ENOMEM;
	if (ds->nspecs)
		memcpy(d->specs, ds->specs, ds->nspecs * sizeof(*d->specs));
	d->restored = ds->restored;
	if (ds->restored_from)
		str_copy(d->restored_from, sizeof(d->restored_from), ds->restored_from);
	d->checkpoint_count = ns_stack_checkpoint_count(ds->stack, NULL);

	ret = ns_stack_add_hook(ds->stack, NS_HOOK_PRE_CHECKPOINT, hook_pre_checkpoint, d);
	if (ret)
		return ret;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	d->sigfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	d->stopfd = eventfd(0, EFD_CLOEXEC);
	d->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->sigfd < 0 || d->stopfd < 0 || d->wakefd < 0)
		return -errno;

	ret = control_addr(d->path, d->dirfd, &sa, &salen);
	if (ret)
		return ret;
	d->listenfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (d->listenfd < 0)
		return -errno;
	(void)unlinkat(d->dirfd, CONTROL_SOCK, 0);
	if (bind(d->listenfd, (struct sockaddr *)&sa, salen) < 0 ||
	    fchmodat(d->dirfd, CONTROL_SOCK, 0600, 0) < 0 || listen(d->listenfd, 64) < 0)
		return -errno;
	ret = -pthread_create(&d->server, NULL, server_main, d);
	if (ret)
		return ret;
	d->server_started = true;

	if (ds->restored)
		d->restore_ms = (double)(daemon_monotonic_ns() - ds->start_ns) / 1e6;
	ret = state_write(d, DAEMON_RUNNING);
	if (ret)
		return ret;
	atomic_store(&d->logging, true);
	return 0;
}

enum daemon_end daemon_wait(struct daemon *d)
{
	struct pollfd pfd[2] = { { .fd = d->sigfd, .events = POLLIN },
				 { .fd = d->wakefd, .events = POLLIN } };
	enum daemon_end end = DAEMON_END_SIGNAL;

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return DAEMON_END_SIGNAL;	/* cannot wait: stop cleanly */
		}
		if (pfd[0].revents)
			return DAEMON_END_SIGNAL;
		if (pfd[1].revents) {
			bool set;

			pthread_mutex_lock(&d->lock);
			set = d->end_set;
			end = d->end;
			pthread_mutex_unlock(&d->lock);
			if (set)
				return end;
			{
				uint64_t v;

				(void)read(d->wakefd, &v, sizeof(v));
			}
		}
	}
}

void daemon_quiesce(struct daemon *d)
{
	uint64_t one = 1;

	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->stopping = true;
	pthread_mutex_unlock(&d->lock);
	if (d->stopfd >= 0)
		(void)write(d->stopfd, &one, sizeof(one));
	if (d->server_started) {
		pthread_join(d->server, NULL);
		d->server_started = false;
	}
	pthread_mutex_lock(&d->lock);
	while (d->nhandlers > 0)
		pthread_cond_wait(&d->cond, &d->lock);
	pthread_mutex_unlock(&d->lock);
	atomic_store(&d->logging, false);
}

static void fd_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void daemon_close(struct daemon *d, enum daemon_end end)
{
	if (!d)
		return;
	daemon_quiesce(d);
	fd_close(&d->listenfd);
	/* Only the lock's holder touches the directory: a daemon refused
	 * because the ID runs must leave the running one's files alone. */
	if (d->dirfd >= 0 && d->lockfd >= 0) {
		(void)unlinkat(d->dirfd, CONTROL_SOCK, 0);
		switch (end) {
		case DAEMON_END_SIGNAL:
			dir_empty(d->dirfd);
			(void)unlinkat(d->rootfd, d->id, AT_REMOVEDIR);
			break;
		case DAEMON_END_CHECKPOINTED:
			(void)state_write(d, DAEMON_CHECKPOINTED);
			break;
		case DAEMON_END_FAILED:
			(void)state_write(d, DAEMON_STOPPED);
			break;
		case DAEMON_END_ABORT:
			/* Never served: a directory we made goes; one that was
			 * there keeps what its last daemon wrote. */
			if (d->created && !d->state_written) {
				dir_empty(d->dirfd);
				(void)unlinkat(d->rootfd, d->id, AT_REMOVEDIR);
			} else if (d->state_written) {
				(void)state_write(d, DAEMON_STOPPED);
			}
			break;
		}
	}
	/* Release the ID, then let go of the clients waiting for our end:
	 * when they see it, the stack (and its TAP) is gone too. */
	fd_close(&d->lockfd);
	for (size_t i = 0; i < d->nheld; i++)
		close(d->held[i]);
	fd_close(&d->dirfd);
	fd_close(&d->rootfd);
	fd_close(&d->stopfd);
	fd_close(&d->wakefd);
	fd_close(&d->sigfd);
	free(d->hook_cfg);
	free(d->specs);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->ckpt_lock);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->log_lock);
	free(d);
}
