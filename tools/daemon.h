/* SPDX-License-Identifier: MIT */
/*
 * daemon.h - the operator side of a running stack, for the `netstack` CLI:
 * the per-ID state directory under --root (claimed with a lock, its
 * state.json, removal), the control socket a daemon serves and the small
 * request/response protocol spoken over it, the client calls the other
 * commands make, the netstack-run.json written beside a checkpoint image,
 * and going to the background with a readiness pipe. The protocol and the
 * run-config reader (JSON read with json-c, kept private to daemon.c) are
 * pure functions that unit tests (tests/unit/test_control.c) drive without
 * a stack.
 *
 * State directory ROOT/ID/ (mode 0700, owned by the daemon's euid):
 *
 *   lock          a POSIX write lock on it, held by the daemon for its whole
 *                 life: "running" means locked; F_GETLK names the pid
 *   state.json    written by the daemon (temporary name, fsync, rename):
 *                 id, status, pid, created, restored, restore_ms,
 *                 restored_from, checkpoint_count, image_path
 *   control.sock  AF_UNIX SOCK_SEQPACKET, mode 0600, while the daemon serves
 *
 * Status: "running" while the lock is held; else "checkpointed" if the
 * daemon's last word in state.json was that, else "stopped" (it died, or a
 * checkpoint without --leave-running failed). A daemon that exits normally
 * removes the directory.
 *
 * Control protocol: one request per connection. The client sends one
 * SEQPACKET record, at most CONTROL_REQ_MAX bytes:
 *
 *   request = verb NUL *(key "=" value NUL)
 *
 *   verb             keys (each at most once)
 *   checkpoint       path=ABSOLUTE-DIR (required), leave-running=0|1,
 *                    compression=none|zstd, direct=0|1
 *   state            (none)
 *   wait-checkpoint  timeout-ms=0..86400000 (absent: forever)
 *   wait-restore     (none)
 *
 * Values hold no NUL; keys are lower case. The daemon answers with one
 * status record, "ok[ TEXT]" or "error TEXT" (one line of printable ASCII,
 * at most CONTROL_LINE_MAX bytes), then for `state` the JSON body in records
 * of at most CONTROL_CHUNK bytes, then closes. After a checkpoint without
 * leave-running the daemon keeps the connection open until it has freed the
 * stack (the TAP is free) and released its lock, so the client's end of
 * stream means "gone". The daemon refuses a peer whose SO_PEERCRED uid is
 * neither its euid nor 0.
 */
#ifndef NETSTACK_TOOLS_DAEMON_H
#define NETSTACK_TOOLS_DAEMON_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "netstack.h"
#include "services.h"

/* ------------------------------------------------------------------ */
/* Control protocol (pure)                                             */
/* ------------------------------------------------------------------ */

/* Room for a request: the longest path and the other fields. */
#define CONTROL_REQ_MAX (PATH_MAX + 256)
/* The status record: "ok ..." or "error ...". */
#define CONTROL_LINE_MAX 1024
/* Body records after an "ok". */
#define CONTROL_CHUNK 32768
/* The most body a client accepts. */
#define CONTROL_BODY_MAX (64u << 20)
/* wait-checkpoint's timeout-ms bound: one day. */
#define CONTROL_TIMEOUT_MAX_MS 86400000

enum control_verb {
	CONTROL_CHECKPOINT,
	CONTROL_STATE,
	CONTROL_WAIT_CHECKPOINT,
	CONTROL_WAIT_RESTORE,
	CONTROL_VERB_COUNT,
};

struct control_request {
	enum control_verb verb;
	char path[PATH_MAX];		/* checkpoint: the image directory, absolute */
	bool leave_running;		/* checkpoint */
	enum ns_compression compression; /* checkpoint */
	bool direct;			/* checkpoint: pages.img with O_DIRECT */
	int timeout_ms;			/* wait-checkpoint: -1 forever */
};

/**
 * control_request_parse() - parse one request record
 * @buf: the record as received; only read
 * @len: its length (a record longer than CONTROL_REQ_MAX is refused, so a
 *       receiver passes the length MSG_TRUNC reported)
 * @req: filled in on success only
 * @why: receives a static one-line reason on failure; may be NULL
 *
 * Return: 0; -E2BIG (over CONTROL_REQ_MAX); -EBADMSG (not NUL-terminated
 * fields, an empty field, a field without '='); -EOPNOTSUPP (unknown verb,
 * or a key the verb does not take); -EEXIST (a key repeated); -EINVAL (a
 * bad value, or a required key missing).
 */
int control_request_parse(const void *buf, size_t len, struct control_request *req,
			  const char **why);

/**
 * control_request_format() - write a request record
 * @req: the request; fields the verb does not take are ignored
 * @buf: receives the record (NUL bytes inside; not a C string)
 * @cap: room in @buf; CONTROL_REQ_MAX is always enough
 *
 * Return: the record's length; -EINVAL for a request that
 * control_request_parse() would refuse; -ENOSPC.
 */
int control_request_format(const struct control_request *req, char *buf, size_t cap);

/**
 * control_response_format() - write a status record
 * @ok: "ok" or "error"
 * @msg: the text after it, or NULL (an "error" needs one); control bytes
 *       and bytes above 0x7e become '?', and it is cut to fit the line
 * @buf: receives the record, NUL-terminated (the NUL is not sent)
 * @cap: room in @buf; CONTROL_LINE_MAX + 1 is always enough
 *
 * Return: the record's length; -EINVAL; -ENOSPC.
 */
int control_response_format(bool ok, const char *msg, char *buf, size_t cap);

/**
 * control_response_parse() - parse a status record
 * @buf: the record; only read
 * @len: its length
 * @ok: receives whether it was "ok"
 * @msg: receives the text after "ok " or "error " (empty for a bare "ok"),
 *       NUL-terminated
 * @cap: room in @msg; CONTROL_LINE_MAX + 1 is always enough
 *
 * Return: 0; -EBADMSG (empty, over CONTROL_LINE_MAX, not "ok"/"error", a
 * byte outside printable ASCII, "error" without text); -ENOSPC.
 */
int control_response_parse(const void *buf, size_t len, bool *ok, char *msg, size_t cap);

/* ------------------------------------------------------------------ */
/* netstack-run.json: the daemon's config beside an image (pure)        */
/* ------------------------------------------------------------------ */

#define RUN_CONFIG_FILE "netstack-run.json"
#define RUN_CONFIG_MAX (1u << 20)	/* bytes */
#define RUN_CONFIG_NICS_MAX 16
#define RUN_CONFIG_SERVICES_MAX 1024

struct run_config_nic {
	char name[NS_NIC_NAME_MAX];
	char kind[8];			/* "tap", "fd", "channel" */
	char device[NS_NIC_NAME_MAX];	/* the TAP's name, else empty */
};

struct run_config_file {
	char id[SERVICE_ID_MAX + 1];	/* the ID it was checkpointed under */
	size_t nnics;
	struct run_config_nic nics[RUN_CONFIG_NICS_MAX];
	size_t nservices;
	struct service_spec services[RUN_CONFIG_SERVICES_MAX];
	int socks[RUN_CONFIG_SERVICES_MAX]; /* each service's socket number */
};

/**
 * run_config_parse() - read a netstack-run.json
 * @text: its contents; only read
 * @len: their length, at most RUN_CONFIG_MAX
 * @cfg: filled in on success only
 * @why: receives a static one-line reason on failure; may be NULL
 *
 * The JSON must be strict RFC 8259 (no comments, trailing commas, raw
 * control bytes in strings, NaN or Infinity, nesting deeper than 16). A key
 * given twice keeps its last value; unknown keys are ignored.
 *
 * Return: 0, -EINVAL (not JSON, not this file, a bad field), -E2BIG,
 * -EPROTONOSUPPORT (a newer version), -ENOMEM.
 */
int run_config_parse(const char *text, size_t len, struct run_config_file *cfg, const char **why);

/* ------------------------------------------------------------------ */
/* State directories (client side)                                     */
/* ------------------------------------------------------------------ */

/* Default for the global --root flag. */
#define DAEMON_ROOT_DEFAULT "/run/netstack"

enum daemon_status {
	DAEMON_RUNNING,
	DAEMON_CHECKPOINTED,
	DAEMON_STOPPED,
	DAEMON_STATUS_COUNT,
};

/* What a state directory says about its ID. */
struct daemon_record {
	enum daemon_status status;
	pid_t pid;			/* the daemon, when running; else 0 */
	char created[40];		/* RFC 3339, UTC; may be empty */
	bool restored;
	double restore_ms;		/* when restored */
	char restored_from[PATH_MAX];	/* when restored: the image directory */
	int64_t checkpoint_count;	/* as last recorded; -1 unknown */
	char image_path[PATH_MAX];	/* the last image written; may be empty */
};

/**
 * daemon_id_valid() - the ID rule: [A-Za-z0-9][A-Za-z0-9_.-]{0,63}
 * @id: the text
 *
 * Return: whether @id is a valid ID (and so a safe directory name).
 */
bool daemon_id_valid(const char *id);

/**
 * daemon_status_name() - "running", "checkpointed", "stopped"
 * @st: the status
 *
 * Return: a static string; "unknown" for a bad value.
 */
const char *daemon_status_name(enum daemon_status st);

/**
 * daemon_probe() - what ROOT/ID says
 * @root: the root directory
 * @id: the ID
 * @rec: filled in
 *
 * Return: 0, -ENOENT (no such ID), -ENOTDIR, -EPERM (owned by another
 * user), -errno.
 */
int daemon_probe(const char *root, const char *id, struct daemon_record *rec);

/**
 * daemon_list() - the IDs under @root, sorted
 * @root: the root directory; a missing one holds no IDs
 * @ids: receives a malloc'ed array of malloc'ed strings; the caller frees
 *       each and the array
 * @n: receives the count
 *
 * Only names that are valid IDs and directories are listed.
 *
 * Return: 0, -ENOMEM, -errno.
 */
int daemon_list(const char *root, char ***ids, size_t *n);

/**
 * daemon_delete() - remove the state directory of an ID that is not running
 * @root: the root directory
 * @id: the ID
 *
 * Takes the ID's lock while it removes, so no daemon claims it meanwhile.
 *
 * Return: 0, -ENOENT, -EBUSY (running), -errno.
 */
int daemon_delete(const char *root, const char *id);

/**
 * daemon_wait_gone() - wait until no daemon holds the ID's lock
 * @root: the root directory
 * @id: the ID
 * @timeout_ms: how long at most
 *
 * Return: 0 (not running, or no such ID), -ETIMEDOUT.
 */
int daemon_wait_gone(const char *root, const char *id, int timeout_ms);

/* ------------------------------------------------------------------ */
/* Client                                                              */
/* ------------------------------------------------------------------ */

struct control_reply {
	bool ok;
	char msg[CONTROL_LINE_MAX + 1];
	char *body;		/* malloc'ed, NUL-terminated; NULL when none */
	size_t body_len;
	int fd;			/* with keep_open: the connection, else -1 */
};

/**
 * control_call() - send one request to ID's daemon and read the reply
 * @root: the root directory
 * @id: the ID
 * @req: the request
 * @timeout_ms: for the whole call; -1 forever
 * @keep_open: leave the connection open in @rep->fd after the status
 *             record instead of reading a body (checkpoint)
 * @rep: filled in; free @rep->body and close @rep->fd
 *
 * The daemon must run as this euid or root (SO_PEERCRED), unless the
 * caller is root.
 *
 * Return: 0 when a status record arrived (ok or error); -ENOENT (no such
 * ID), -ESRCH (not running), -ECONNREFUSED (running but not serving: still
 * starting, or wedged), -EPERM (the daemon is another user's),
 * -ETIMEDOUT, -ECONNRESET (closed without a reply), -EBADMSG (a reply that
 * does not parse), -E2BIG (a body over CONTROL_BODY_MAX), -errno.
 */
int control_call(const char *root, const char *id, const struct control_request *req,
		 int timeout_ms, bool keep_open, struct control_reply *rep);

/**
 * control_wait_eof() - wait until the daemon closes a kept connection
 * @fd: a connection from control_call() with keep_open; closed here
 * @timeout_ms: -1 forever
 *
 * Return: 0, -ETIMEDOUT.
 */
int control_wait_eof(int fd, int timeout_ms);

/* ------------------------------------------------------------------ */
/* Daemon                                                              */
/* ------------------------------------------------------------------ */

struct daemon;

/* Why daemon_wait() returned, and so how daemon_close() leaves the
 * state directory. */
enum daemon_end {
	DAEMON_END_SIGNAL,	/* SIGINT or SIGTERM: exit 0, directory removed */
	DAEMON_END_CHECKPOINTED, /* after a checkpoint without leave-running:
				  * exit 0, kept as "checkpointed" */
	DAEMON_END_FAILED,	/* a checkpoint without leave-running failed:
				 * the stack is stopped; exit 1, kept as "stopped" */
	DAEMON_END_ABORT,	/* never served: the directory is removed if this
				 * daemon created it, else left as it was */
};

/**
 * daemon_detach() - go to the background (before any thread exists)
 * @ready_fd: in the child, receives the write end of the readiness pipe
 *
 * The parent waits on the pipe and does not return: it exits with the
 * child's startup status (what the child passes to daemon_ready()), or 1
 * if the child dies first. The child starts a new session, moves to "/",
 * and returns 0; its stdio stays the parent's until daemon_ready().
 *
 * Return: 0 in the child, -errno if fork or pipe fails (in the parent).
 */
int daemon_detach(int *ready_fd);

/**
 * daemon_ready() - tell a waiting parent how startup went
 * @ready_fd: from daemon_detach(), or -1 in the foreground (then nothing
 *            happens); closed here
 * @status: 0 when serving, else the exit status the parent takes
 * @log_fd: with @status 0: stdin and stdout become /dev/null and stderr
 *          this fd (or /dev/null when -1), so the parent's pipes close
 */
void daemon_ready(int ready_fd, int status, int log_fd);

/**
 * daemon_open() - claim ROOT/ID for this process
 * @root: the root directory (created, mode 0700, if missing); absolute
 * @id: a valid ID
 * @out: receives the daemon
 *
 * Creates ROOT/ID (mode 0700) or reuses one no daemon holds, and takes its
 * lock. Nothing else is written until daemon_serve().
 *
 * Return: 0, -EBUSY (a daemon runs under ID), -EPERM (ROOT/ID belongs to
 * another user), -ENOTDIR, -ENAMETOOLONG, -ENOMEM, -errno.
 */
int daemon_open(const char *root, const char *id, struct daemon **out);

/**
 * daemon_path() - ROOT/ID, for messages
 * @d: the daemon
 *
 * Return: a string owned by @d.
 */
const char *daemon_path(const struct daemon *d);

/**
 * daemon_log() - an ns_log_fn: lines go to stderr as "netstack: ID: MSG"
 * once daemon_serve() succeeded (before that the CLI reports failures in
 * lines of its own); the last error line is kept to explain a failed
 * checkpoint
 * @arg: the struct daemon
 * @level: the line's level
 * @msg: the line
 */
void daemon_log(void *arg, int level, const char *msg);

/* The memory region of 'run --memory' (and of its restores). */
#define DAEMON_MEMORY_REGION "memory"

/* What a daemon serves. */
struct daemon_stack {
	struct ns_stack *stack;
	struct services *svc;
	const struct service_spec *specs;	/* copied */
	size_t nspecs;
	bool restored;
	const char *restored_from; /* the image directory; copied */
	uint64_t start_ns;	/* CLOCK_MONOTONIC when the restore began */
};

/**
 * daemon_serve() - start serving the control socket for a running stack
 * @d: the daemon
 * @ds: the stack and its services; the stack must outlive daemon_quiesce()
 *
 * Registers the pre-checkpoint hook, binds ROOT/ID/control.sock (mode
 * 0600), starts the control thread, writes state.json ("running"; with
 * restore_ms for a restored stack, measured from @ds->start_ns to now).
 *
 * Return: 0, -errno.
 */
int daemon_serve(struct daemon *d, const struct daemon_stack *ds);

/**
 * daemon_wait() - wait until the daemon should end
 * @d: a serving daemon
 *
 * The caller has blocked SIGINT and SIGTERM in every thread.
 *
 * Return: why (DAEMON_END_SIGNAL, _CHECKPOINTED or _FAILED).
 */
enum daemon_end daemon_wait(struct daemon *d);

/**
 * daemon_quiesce() - stop the control thread and wait for every request
 * in progress, so the stack may be freed
 * @d: the daemon; safe if it never served
 */
void daemon_quiesce(struct daemon *d);

/**
 * daemon_close() - leave the state directory as @end says, release the
 * lock, close the connections held open, and free @d
 * @d: the daemon, or NULL; quiesced, and its stack freed already
 * @end: how the daemon ends
 */
void daemon_close(struct daemon *d, enum daemon_end end);

/* ------------------------------------------------------------------ */
/* Small helpers shared with the CLI                                   */
/* ------------------------------------------------------------------ */

/**
 * daemon_monotonic_ns() - CLOCK_MONOTONIC in nanoseconds
 *
 * Return: the time.
 */
uint64_t daemon_monotonic_ns(void);

/**
 * run_config_read() - read and parse DIR/netstack-run.json
 * @dir: the image directory
 * @cfg: filled in
 * @why: receives a one-line reason on failure
 * @whylen: room in @why
 *
 * Return: 0, -ENOENT (no such file), -EINVAL and the others of
 * run_config_parse(), -errno.
 */
int run_config_read(const char *dir, struct run_config_file *cfg, char *why, size_t whylen);

#endif /* NETSTACK_TOOLS_DAEMON_H */
