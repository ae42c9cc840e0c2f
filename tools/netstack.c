/* SPDX-License-Identifier: MIT */
/*
 * netstack.c - the `netstack` command line: `netstack [global flags]
 * <command> [flags] ID`, after runsc. It owns the parsing of global flags,
 * the command table and each command's flags and help, the one-line error
 * messages and exit codes (0 success, 1 runtime failure, 2 usage error),
 * and the commands: `run` and `restore` build a stack (from flags, or from a
 * checkpoint image) and serve it as a daemon, in the foreground or detached;
 * `checkpoint`, `wait`, `state`, `list`, `kill` and `delete` act on a
 * daemon through its state directory and control socket (daemon.c). It
 * uses libnetstack only through netstack.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "memfill.h"
#include "netstack.h"
#include "services.h"

#define PROG "netstack"

enum {
	EXIT_RUNTIME = 1,
	EXIT_USAGE = 2,
};

/* The ID rule: [A-Za-z0-9][A-Za-z0-9_.-]{0,63}. HTTP names the ID. */
#define ID_MAX SERVICE_ID_MAX
#define MTU_MIN 68u
#define MTU_MAX 65521u
#define MTU_DEFAULT 1500u

/* How long state and wait --restore's probes wait for a daemon's reply. */
#define STATE_TIMEOUT_MS 10000
/* How long checkpoint waits for the daemon to go after its "ok". */
#define EXIT_WAIT_MS 60000
/* How long delete --force waits for a killed daemon to go. */
#define KILL_WAIT_MS 10000
#define WAIT_RESTORE_DEFAULT_S 30
#define WAIT_TIMEOUT_MAX_S 86400
/* wait --restore polls this often. */
#define POLL_MS 50

/* Flags that come before the command. */
struct global_opts {
	char root[PATH_MAX];	/* absolute */
	const char *log;	/* a detached daemon's stderr, or NULL */
};

struct command {
	const char *name;
	const char *summary;
	int (*main)(const struct global_opts *g, int argc, char **argv);
};

static int run_main(const struct global_opts *g, int argc, char **argv);
static int checkpoint_main(const struct global_opts *g, int argc, char **argv);
static int restore_main(const struct global_opts *g, int argc, char **argv);
static int wait_main(const struct global_opts *g, int argc, char **argv);
static int state_main(const struct global_opts *g, int argc, char **argv);
static int list_main(const struct global_opts *g, int argc, char **argv);
static int kill_main(const struct global_opts *g, int argc, char **argv);
static int delete_main(const struct global_opts *g, int argc, char **argv);

static const struct command commands[] = {
	{ "run", "run one stack as a daemon, in the foreground or detached", run_main },
	{ "checkpoint", "write a running stack's state to an image directory", checkpoint_main },
	{ "restore", "run a stack again from a checkpoint image", restore_main },
	{ "wait", "wait for a checkpoint, a restore, or the daemon's end", wait_main },
	{ "state", "print a stack's state as JSON", state_main },
	{ "list", "list the IDs under the root directory", list_main },
	{ "kill", "send a signal to a stack's daemon", kill_main },
	{ "delete", "remove the state of a stack that is not running", delete_main },
};

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

/* Print "netstack: [CMD: ]MESSAGE" as one line on stderr; return @code. */
__attribute__((format(printf, 3, 4)))
static int fail(int code, const char *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (cmd)
		fprintf(stderr, "%s: %s: %s\n", PROG, cmd, msg);
	else
		fprintf(stderr, "%s: %s\n", PROG, msg);
	return code;
}

static void usage_top(FILE *f)
{
	fprintf(f,
		"Usage: %s [global flags] <command> [flags] ID\n"
		"\n"
		"netstack runs a user-space TCP/IP stack (lwIP) for a sandbox, as a daemon\n"
		"that can be checkpointed to an image directory and restored from it.\n"
		"\n"
		"Commands:\n",
		PROG);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
	fprintf(f,
		"\n"
		"Global flags (before the command):\n"
		"  --root DIR   the root of the state directories (default %s);\n"
		"               each daemon keeps ROOT/ID/ (mode 0700): its lock, state.json\n"
		"               and control socket (mode 0600; only the daemon's own user\n"
		"               and root may use it). A relative DIR is taken from the\n"
		"               current directory.\n"
		"  --log FILE   where a detached daemon (run/restore --detach) appends its\n"
		"               log lines; default: they are dropped. In the foreground\n"
		"               they go to stderr.\n"
		"  -h, --help   print this help and exit\n"
		"\n"
		"A daemon's status is \"running\" while it lives, \"checkpointed\" after it\n"
		"exited following a checkpoint without --leave-running, \"stopped\" when it\n"
		"died or a checkpoint without --leave-running failed. A daemon that exits on\n"
		"SIGINT or SIGTERM removes its state directory.\n"
		"\n"
		"'%s <command> --help' describes a command's flags.\n"
		"Commands print nothing on success unless said otherwise; each error is one\n"
		"line on stderr. Exit status: 0 on success, 1 on a runtime failure, 2 on a\n"
		"usage error.\n",
		DAEMON_ROOT_DEFAULT, PROG);
}

static void usage_run(FILE *f)
{
	fprintf(f,
		"Usage: %s [global flags] run [--detach] [--tap NAME | --fd N] --ip CIDR\n"
		"           [--ip CIDR]... [--gateway IP]... [--mtu N]\n"
		"           [--service PROTO:PORT:KIND]... [--memory SIZE] ID\n"
		"\n"
		"Run one stack with one NIC as the daemon of ID. Once it serves, one line\n"
		"\"netstack: ID running on ...\" goes to stdout. It claims ROOT/ID (refused if\n"
		"a daemon runs under ID already) and serves its control socket, so\n"
		"'checkpoint', 'state' and 'wait' work on it. On SIGINT or SIGTERM the\n"
		"services are closed, the stack is freed, ROOT/ID is removed, and the exit\n"
		"status is 0. After a checkpoint without --leave-running it exits 0 and\n"
		"keeps ROOT/ID as \"checkpointed\"; if that checkpoint failed it exits 1\n"
		"(\"stopped\").\n"
		"\n"
		"Flags:\n"
		"  --detach        run in the background: return once the daemon serves\n"
		"                  (after its \"running\" line), with its startup error and\n"
		"                  exit status if it fails; its log goes to --log FILE\n"
		"  --tap NAME      attach to the TAP device NAME (1..15 bytes), creating it\n"
		"                  if it does not exist\n"
		"  --fd N          use the inherited fd N, which must carry one Ethernet\n"
		"                  frame per read and write (a socketpair, an AF_PACKET\n"
		"                  socket); N is not 1 or 2 (stdout, stderr)\n"
		"                  Exactly one of --tap and --fd is required.\n"
		"  --ip CIDR       add an IPv4 or IPv6 address with its prefix length, e.g.\n"
		"                  198.51.100.2/24 or fd42:5::2/64 (no /LEN: a host address);\n"
		"                  repeatable, at least one. lwIP holds one IPv4 and up to\n"
		"                  three IPv6 addresses per NIC, plus the link-local one.\n"
		"  --gateway IP    add a default route (0.0.0.0/0 or ::/0, by IP's family)\n"
		"                  via IP; repeatable, once per family\n"
		"  --mtu N         the NIC's MTU, %u..%u; default: the TAP device's MTU\n"
		"                  clamped to that range, or %u with --fd or when the TAP's\n"
		"                  MTU cannot be read\n"
		"  --service SPEC  serve SPEC, PROTO:PORT:KIND with PORT 1..65535; repeatable,\n"
		"                  one service per protocol and port:\n"
		"                    tcp:PORT:echo     send back all it receives; close at EOF\n"
		"                    tcp:PORT:discard  read and drop all it receives until EOF\n"
		"                    tcp:PORT:chargen  send the RFC 864 pattern (72-character\n"
		"                                      lines of ASCII 32..126, each starting one\n"
		"                                      character later, CRLF) until the peer\n"
		"                                      goes; input is ignored\n"
		"                    tcp:PORT:http     HTTP/1.1 with keep-alive and pipelining:\n"
		"                                      GET or HEAD / answers 200 \"netstack ID\";\n"
		"                                      other paths 404, other methods 405;\n"
		"                                      \"Connection: close\", or HTTP/1.0 without\n"
		"                                      \"Connection: keep-alive\", closes after\n"
		"                                      the reply. Answered, then closed: a\n"
		"                                      malformed request 400, a request head\n"
		"                                      over %u bytes 431, Transfer-Encoding\n"
		"                                      501, an HTTP version other than 1.x 505\n"
		"                    udp:PORT:echo     send each datagram back to its sender\n"
		"                  TCP services listen on [::]:PORT (backlog %d) and serve IPv4\n"
		"                  and IPv6 peers, at most %d connections at once over all\n"
		"                  services (more are closed at once); UDP services bind\n"
		"                  [::]:PORT.\n"
		"  --memory SIZE   give the stack a memory region \"" DAEMON_MEMORY_REGION "\" of SIZE\n"
		"                  bytes (K, M, G, T: powers of 1024; at most 1T), filled with\n"
		"                  a test pattern of which about half the pages are zero.\n"
		"                  Checkpoints save it (pages.img, pages.meta); 'state' shows\n"
		"                  \"memory\" with a digest of its contents once it is all in.\n"
		"  -h, --help      print this help and exit\n"
		"\n"
		"ID names the stack: a letter or digit, then up to %d letters, digits,\n"
		"'_', '.' or '-'.\n",
		PROG, MTU_MIN, MTU_MAX, MTU_DEFAULT, HTTP_HEAD_MAX, SERVICE_BACKLOG,
		SERVICE_CONN_MAX, ID_MAX - 1);
}

static void usage_checkpoint(FILE *f)
{
	fprintf(f,
		"Usage: %s [global flags] checkpoint --image-path DIR [--leave-running]\n"
		"           [--compression none|zstd] [--direct] ID\n"
		"\n"
		"Ask the daemon of ID to write its stack's state to the image directory DIR:\n"
		"the stack clock, NICs, addresses, routes, TCP listeners and UDP sockets\n"
		"(established TCP connections are not saved; after a restore their peers\n"
		"get RST), and, with 'run --memory', the memory's non-zero pages as\n"
		"pages.img and their index pages.meta, written while state.pb is. Beside the image, in DIR/%s, the daemon writes its own\n"
		"config: the ID, each NIC's endpoint kind and device, and each service with\n"
		"the socket number it serves on. It is written after the image (DIR must be\n"
		"empty before), under a temporary name, fsynced, then renamed; 'restore'\n"
		"refuses an image without it.\n"
		"\n"
		"Without --leave-running the daemon exits afterwards (exit status 0) and\n"
		"ROOT/ID is kept as \"checkpointed\"; this command returns once the daemon is\n"
		"gone and its TAP is free, so 'restore' may follow at once. If the\n"
		"checkpoint fails, nothing changes: the stack resumes and the daemon\n"
		"serves on (as does it when only writing %s fails).\n"
		"A DIR that cannot work (not empty, not a directory, a\n"
		"symlink, no parent directory) is refused before the stack is touched;\n"
		"such a refusal is not a checkpoint attempt and does not count.\n"
		"\n"
		"Prints nothing on success; one line and exit status 1 on failure.\n"
		"\n"
		"Flags:\n"
		"  --image-path DIR    the image directory: new, or an empty directory;\n"
		"                      never a symlink. Required. A relative DIR is taken\n"
		"                      from the current directory.\n"
		"  --leave-running     keep the stack running after the checkpoint\n"
		"  --compression none|zstd\n"
		"                      how the memory's pages are stored in pages.img:\n"
		"                      as they are (default; they load straight into\n"
		"                      memory) or zstd, one frame per 256 KiB chunk\n"
		"  --direct            write pages.img with O_DIRECT (bypass the page cache)\n"
		"  -h, --help          print this help and exit\n",
		PROG, RUN_CONFIG_FILE, RUN_CONFIG_FILE);
}

static void usage_restore(FILE *f)
{
	fprintf(f,
		"Usage: %s [global flags] restore --image-path DIR [--detach] [--background]\n"
		"           [--direct] [--loader auto|io_uring|threads|map] [--fd N] ID\n"
		"\n"
		"Run a stack again, in this new process, from the image directory DIR that\n"
		"'netstack checkpoint' wrote: the library validates the whole image, builds\n"
		"the stack with its clock continuing from the saved time, re-attaches each\n"
		"TAP by its device name, and starts it; then the services listed in\n"
		"DIR/%s are started again on the restored listening and UDP\n"
		"sockets (the same socket numbers), and the daemon serves ROOT/ID like 'run'\n"
		"does. ID may differ from the one checkpointed. The time from the start of\n"
		"the restore to the control socket serving is recorded as \"restore_ms\" in\n"
		"'state'.\n"
		"\n"
		"Refused, with one line and exit status 1: a daemon runs under ID already;\n"
		"DIR has no %s (not written by 'netstack checkpoint'); the image is\n"
		"bad, truncated, foreign or of a newer version (the library says why); a\n"
		"TAP cannot be attached; a service's socket is not in the image.\n"
		"\n"
		"Prints nothing on success (use 'wait --restore' or 'state').\n"
		"\n"
		"Flags:\n"
		"  --image-path DIR  the image directory. Required.\n"
		"  --detach          run in the background: return once the restored daemon\n"
		"                    serves, with its error and exit status if it fails\n"
		"  --fd N            the inherited fd for the image's one fd NIC (an fd\n"
		"                    endpoint cannot be reopened by itself); N is not 1 or 2\n"
		"  --background      with memory (pages.img): serve as soon as the stack is\n"
		"                    restored while pages keep loading (io_uring, or a thread\n"
		"                    pool where io_uring is unavailable; 'state' shows which,\n"
		"                    and the progress); 'wait --restore' returns once every\n"
		"                    page is in. Without it every page is loaded and checked\n"
		"                    before the daemon serves, and a missing, short or\n"
		"                    damaged pages.img fails the restore.\n"
		"  --direct          read pages.img with O_DIRECT (bypass the page cache)\n"
		"  --loader WHICH    how pages.img loads: auto (default: io_uring, else the\n"
		"                    thread pool), io_uring, threads, or map: no copy, the\n"
		"                    memory is pages.img's page cache until written (plain\n"
		"                    images, not --direct). While mapped, a write to\n"
		"                    pages.img waits until the daemon copied its memory, but\n"
		"                    truncating it (cp over it, >) replaces the daemon's\n"
		"                    memory with the new bytes or SIGBUS: leave the image as\n"
		"                    it is. Refused with the reason where it cannot map (no\n"
		"                    file lease, compressed, ...)\n"
		"  -h, --help        print this help and exit\n",
		PROG, RUN_CONFIG_FILE, RUN_CONFIG_FILE);
}

static void usage_wait(FILE *f)
{
	fprintf(f,
		"Usage: %s [global flags] wait [--checkpoint | --restore] [--timeout SECONDS] ID\n"
		"\n"
		"  --checkpoint  return when the next checkpoint attempt of ID's daemon ends\n"
		"                (one that starts after this request reached the daemon),\n"
		"                including the writing of %s: exit status 0 if it\n"
		"                succeeded, 1 with one line if it failed. ID must be running.\n"
		"                Without --timeout it waits as long as it takes.\n"
		"  --restore     return when ID is served by a restored daemon with all of\n"
		"                its memory loaded: at once if it is; else wait for one to\n"
		"                appear, serve and finish loading, polling every %d ms, for\n"
		"                --timeout SECONDS (default %d). Exit status 1 at once if\n"
		"                some of its memory failed to load.\n"
		"  (neither)     return when no daemon runs under ID (at once if none does).\n"
		"                Without --timeout it waits as long as it takes.\n"
		"  --timeout SECONDS  give up after this long (0..%d): exit status 1\n"
		"  -h, --help    print this help and exit\n"
		"\n"
		"Prints nothing on success.\n",
		PROG, RUN_CONFIG_FILE, POLL_MS, WAIT_RESTORE_DEFAULT_S, WAIT_TIMEOUT_MAX_S);
}

static void usage_state(FILE *f)
{
	fprintf(f,
		"Usage: %s [global flags] state ID\n"
		"\n"
		"Print ID's state as one JSON object on stdout: id, status (\"running\",\n"
		"\"checkpointed\", \"stopped\"), pid (0 when not running), created (UTC),\n"
		"restored, restore_ms and restored_from (when restored), checkpoint_count\n"
		"(attempts, a restore included), image_path (the last image this daemon\n"
		"wrote, or null). A running daemon adds nics (id, name, kind, device, mac,\n"
		"mtu, up, link_up, addresses, counters), routes, services (spec, socket),\n"
		"listeners (socket, proto, local, backlog, queued_bytes, service), sockets\n"
		"(id, proto, family, state, local, remote, rx_queued), counters (the\n"
		"stack's), usage (sockets, memory and queued bytes against the stack's\n"
		"limits, and how often each refused) and memory (null without 'run --memory'; else regions, bytes,\n"
		"data_bytes (in non-zero pages), loaded, failed, done, loading, rate_mib_s,\n"
		"elapsed_ms, backend (\"io_uring\", \"threads\", \"map\" or \"none\"), fallback (why\n"
		"not io_uring, or null), error (or null) and digest (\"crc64:...\" of the\n"
		"region once every page is in, else null)). A daemon that is still starting gets the short form.\n"
		"\n"
		"  -h, --help  print this help and exit\n",
		PROG);
}

static void usage_list(FILE *f)
{
	fprintf(f,
		"Usage: %s [global flags] list [--quiet]\n"
		"\n"
		"Print one line per ID under the root directory, sorted: \"ID STATUS PID\"\n"
		"(PID 0 when not running; STATUS \"unknown\" when ROOT/ID cannot be read).\n"
		"\n"
		"  -q, --quiet  print only the IDs\n"
		"  -h, --help   print this help and exit\n",
		PROG);
}

static void usage_kill(FILE *f)
{
	fprintf(f,
		"Usage: %s [global flags] kill ID [SIGNAL]\n"
		"\n"
		"Send SIGNAL to the daemon of ID: a name (TERM, SIGTERM, kill; any case) or\n"
		"a number; default SIGTERM. SIGINT and SIGTERM stop it cleanly (ROOT/ID is\n"
		"removed); a signal that kills it leaves ROOT/ID as \"stopped\". Refused if\n"
		"ID is not running. The signal goes through a pidfd taken while the daemon\n"
		"holds its lock, so it never reaches a process that reused the pid.\n"
		"\n"
		"  -h, --help  print this help and exit\n",
		PROG);
}

static void usage_delete(FILE *f)
{
	fprintf(f,
		"Usage: %s [global flags] delete [--force] ID\n"
		"\n"
		"Remove ROOT/ID of a daemon that is not running (\"checkpointed\" or\n"
		"\"stopped\"). Checkpoint images are elsewhere and are not touched.\n"
		"\n"
		"  --force     if ID is running, kill its daemon with SIGKILL first and wait\n"
		"              (up to %d s) until it is gone\n"
		"  -h, --help  print this help and exit\n",
		PROG, KILL_WAIT_MS / 1000);
}

/*
 * Turn getopt_long()'s '?' or ':' (opterr is 0, the optstring starts with
 * ':') into one line. Long-only flags have values above UCHAR_MAX, so a
 * printable optopt is a short flag.
 */
static int flag_error(const char *cmd, int c, char **argv, const struct option *opts)
{
	if (c == ':') {
		for (const struct option *o = opts; o->name; o++) {
			if (o->val == optopt)
				return fail(EXIT_USAGE, cmd, "--%s: missing value", o->name);
		}
		return fail(EXIT_USAGE, cmd, "-%c: missing value", optopt);
	}
	if (optopt > 0 && optopt <= UCHAR_MAX && strncmp(argv[optind - 1], "--", 2) != 0)
		return fail(EXIT_USAGE, cmd, "unknown flag '-%c'", optopt);
	return fail(EXIT_USAGE, cmd, "unknown flag '%s'", argv[optind - 1]);
}

/* ------------------------------------------------------------------ */
/* Values                                                              */
/* ------------------------------------------------------------------ */

/* A decimal number in [min, max]: digits only, no sign or spaces. */
static int number_parse(const char *text, unsigned long min, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (!*text)
		return -EINVAL;
	for (const char *p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > max)
			return -ERANGE;
	}
	if (v < min)
		return -ERANGE;
	*out = v;
	return 0;
}

/* What the kernel accepts as an interface name (dev_valid_name()). */
static bool ifname_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len >= IFNAMSIZ || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (const char *p = name; *p; p++) {
		if (*p == '/' || *p == ':' || *p == ' ' || (*p >= '\t' && *p <= '\r'))
			return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* run                                                                 */
/* ------------------------------------------------------------------ */

enum run_flag {
	RUN_TAP = UCHAR_MAX + 1,
	RUN_FD,
	RUN_IP,
	RUN_GATEWAY,
	RUN_MTU,
	RUN_SERVICE,
	RUN_DETACH,
	RUN_MEMORY,
};

static const struct option run_options[] = {
	{ "tap", required_argument, NULL, RUN_TAP },
	{ "fd", required_argument, NULL, RUN_FD },
	{ "ip", required_argument, NULL, RUN_IP },
	{ "gateway", required_argument, NULL, RUN_GATEWAY },
	{ "mtu", required_argument, NULL, RUN_MTU },
	{ "service", required_argument, NULL, RUN_SERVICE },
	{ "detach", no_argument, NULL, RUN_DETACH },
	{ "memory", required_argument, NULL, RUN_MEMORY },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct run_config {
	const char *id;
	const char *tap;		/* or NULL */
	int fd;				/* or -1 */
	unsigned mtu;			/* 0: the default */
	struct ns_prefix *ips;		/* room for argc */
	const char **ip_texts;
	size_t nips;
	struct ns_addr gateways[2];	/* by family; family 0: none */
	const char *gateway_texts[2];
	struct service_spec *services;	/* room for argc */
	size_t nservices;
	bool detach;
	uint64_t memory;		/* --memory bytes; 0: none */
};

static void run_config_free(struct run_config *cfg)
{
	free(cfg->ips);
	free(cfg->ip_texts);
	free(cfg->services);
}

static int service_add(struct run_config *cfg, const char *text)
{
	struct service_spec spec;
	int ret = services_parse(text, &spec);

	switch (ret) {
	case 0:
		break;
	case -EPROTONOSUPPORT:
		return fail(EXIT_USAGE, "run", "--service: unknown protocol in '%s' (want tcp or udp)",
			    text);
	case -ERANGE:
		return fail(EXIT_USAGE, "run", "--service: bad port in '%s' (want 1..65535)", text);
	case -EOPNOTSUPP:
		return fail(EXIT_USAGE, "run",
			    "--service: unknown service kind in '%s' (tcp: echo, discard, "
			    "chargen, http; udp: echo)",
			    text);
	default:
		return fail(EXIT_USAGE, "run", "--service: bad service '%s' (want PROTO:PORT:KIND)",
			    text);
	}
	for (size_t i = 0; i < cfg->nservices; i++) {
		if (cfg->services[i].proto == spec.proto && cfg->services[i].port == spec.port)
			return fail(EXIT_USAGE, "run", "--service: '%s' repeats %s port %u", text,
				    spec.proto == SERVICE_TCP ? "tcp" : "udp", (unsigned)spec.port);
	}
	cfg->services[cfg->nservices++] = spec;
	return 0;
}

static int gateway_add(struct run_config *cfg, const char *text)
{
	struct ns_addr addr;
	int slot;

	if (ns_addr_parse(text, &addr) < 0)
		return fail(EXIT_USAGE, "run", "--gateway: bad address '%s'", text);
	slot = addr.family == AF_INET6;
	if (cfg->gateways[slot].family)
		return fail(EXIT_USAGE, "run", "--gateway: '%s' is a second %s gateway (one per family)",
			    text, slot ? "IPv6" : "IPv4");
	cfg->gateways[slot] = addr;
	cfg->gateway_texts[slot] = text;
	return 0;
}

/* A byte count: digits, then optionally K, M, G or T (powers of 1024). */
static int size_parse(const char *arg, uint64_t *out)
{
	static const char units[] = "KMGT";
	unsigned long long v;
	const char *u;
	char *end;
	int shift = 0;

	if (!arg[0] || arg[0] < '0' || arg[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end) {
		u = strchr(units, *end == 'k' ? 'K' : *end);
		if (!u || !*u || (end[1] && strcmp(end + 1, "iB") && strcmp(end + 1, "B")))
			return -EINVAL;
		shift = 10 * (int)(u - units + 1);
	}
	if (v == 0 || v > (1ull << 40) >> shift)
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int run_flag(struct run_config *cfg, int c, const char *arg)
{
	unsigned long v;

	switch (c) {
	case RUN_TAP:
		if (cfg->tap)
			return fail(EXIT_USAGE, "run", "--tap: given twice");
		if (!ifname_valid(arg))
			return fail(EXIT_USAGE, "run",
				    "--tap: bad interface name '%s' (want 1..%d bytes without "
				    "'/', ':' or whitespace)",
				    arg, IFNAMSIZ - 1);
		cfg->tap = arg;
		return 0;
	case RUN_FD:
		if (cfg->fd >= 0)
			return fail(EXIT_USAGE, "run", "--fd: given twice");
		if (number_parse(arg, 0, INT_MAX, &v) < 0 || v == STDOUT_FILENO ||
		    v == STDERR_FILENO)
			return fail(EXIT_USAGE, "run", "--fd: bad fd '%s' (want a number >= 0, not 1 or 2)",
				    arg);
		cfg->fd = (int)v;
		return 0;
	case RUN_IP:
		if (ns_prefix_parse(arg, &cfg->ips[cfg->nips]) < 0)
			return fail(EXIT_USAGE, "run", "--ip: bad CIDR '%s'", arg);
		cfg->ip_texts[cfg->nips++] = arg;
		return 0;
	case RUN_GATEWAY:
		return gateway_add(cfg, arg);
	case RUN_MTU:
		if (cfg->mtu)
			return fail(EXIT_USAGE, "run", "--mtu: given twice");
		if (number_parse(arg, MTU_MIN, MTU_MAX, &v) < 0)
			return fail(EXIT_USAGE, "run", "--mtu: bad MTU '%s' (want %u..%u)", arg, MTU_MIN,
				    MTU_MAX);
		cfg->mtu = (unsigned)v;
		return 0;
	case RUN_SERVICE:
		return service_add(cfg, arg);
	case RUN_DETACH:
		cfg->detach = true;
		return 0;
	case RUN_MEMORY:
		if (cfg->memory)
			return fail(EXIT_USAGE, "run", "--memory: given twice");
		if (size_parse(arg, &cfg->memory) < 0)
			return fail(EXIT_USAGE, "run",
				    "--memory: bad size '%s' (want 1..1T bytes, with K, M, G or T)",
				    arg);
		return 0;
	default:
		return fail(EXIT_USAGE, "run", "internal error: flag %d", c);
	}
}

/*
 * Parse run's command line. Return: 0 to go on, -1 after --help (exit 0),
 * else the exit code of a usage error, already reported.
 */
static int run_parse(int argc, char **argv, struct run_config *cfg)
{
	size_t room = (size_t)argc;	/* each flag takes at least one argument */
	int c, ret;

	cfg->fd = -1;
	cfg->ips = calloc(room, sizeof(*cfg->ips));
	cfg->ip_texts = calloc(room, sizeof(*cfg->ip_texts));
	cfg->services = calloc(room, sizeof(*cfg->services));
	if (!cfg->ips || !cfg->ip_texts || !cfg->services)
		return fail(EXIT_RUNTIME, "run", "%s", strerror(ENOMEM));

	opterr = 0;
	optind = 0;	/* glibc: start over, argv[0] being the command */
	while ((c = getopt_long(argc, argv, "+:h", run_options, NULL)) != -1) {
		if (c == 'h') {
			usage_run(stdout);
			return -1;
		}
		if (c == '?' || c == ':')
			return flag_error("run", c, argv, run_options);
		ret = run_flag(cfg, c, optarg);
		if (ret)
			return ret;
	}

	if (optind >= argc)
		return fail(EXIT_USAGE, "run", "missing ID");
	cfg->id = argv[optind++];
	if (optind < argc)
		return fail(EXIT_USAGE, "run", "unexpected argument '%s'", argv[optind]);
	if (!daemon_id_valid(cfg->id))
		return fail(EXIT_USAGE, "run", "bad ID '%s' (want [A-Za-z0-9][A-Za-z0-9_.-]{0,%d})",
			    cfg->id, ID_MAX - 1);
	if (cfg->tap && cfg->fd >= 0)
		return fail(EXIT_USAGE, "run", "--tap and --fd exclude each other");
	if (!cfg->tap && cfg->fd < 0)
		return fail(EXIT_USAGE, "run", "one of --tap NAME or --fd N is required");
	if (cfg->nips == 0)
		return fail(EXIT_USAGE, "run", "at least one --ip CIDR is required");
	return 0;
}

/* Open the endpoint and add the NIC; return the NIC id or an exit code < 0. */
static int nic_create(struct ns_stack *s, struct run_config *cfg)
{
	struct ns_nic_config nic = { 0 };
	struct ns_endpoint *ep;
	int ret;

	if (cfg->tap) {
		ret = ns_endpoint_tap_open(cfg->tap, NS_TAP_CREATE, &ep);
		if (ret < 0)
			return -fail(EXIT_RUNTIME, "run", "cannot open TAP '%s': %s", cfg->tap,
				     strerror(-ret));
	} else {
		/* The endpoint owns the fd from here, also on failure. */
		ret = ns_endpoint_fd_open(cfg->fd, &ep);
		if (ret < 0)
			return -fail(EXIT_RUNTIME, "run", "cannot use fd %d: %s", cfg->fd,
				     strerror(-ret));
	}
	nic.mtu = cfg->mtu;	/* 0: the library takes the TAP's MTU, else 1500 */
	ret = ns_nic_add(s, &nic, ep);
	if (ret < 0) {
		ns_endpoint_free(ep);
		return -fail(EXIT_RUNTIME, "run", "cannot add the NIC: %s", strerror(-ret));
	}
	return ret;
}

static int addresses_add(struct ns_stack *s, int nic, const struct run_config *cfg)
{
	for (size_t i = 0; i < cfg->nips; i++) {
		int ret = ns_addr_add(s, nic, &cfg->ips[i]);

		if (ret < 0)
			return fail(EXIT_RUNTIME, "run", "cannot add address '%s': %s", cfg->ip_texts[i],
				    strerror(-ret));
	}
	for (size_t i = 0; i < 2; i++) {
		struct ns_route r = { 0 };
		int ret;

		if (!cfg->gateways[i].family)
			continue;
		r.dst.addr.family = cfg->gateways[i].family;
		r.dst.len = 0;
		r.gateway = cfg->gateways[i];
		/* The one NIC: an IPv6 gateway is often link-local, which no
		 * subnet lookup would place. */
		r.nic = nic;
		ret = ns_route_add(s, &r);
		if (ret < 0)
			return fail(EXIT_RUNTIME, "run", "cannot add a default route via '%s': %s",
				    cfg->gateway_texts[i], strerror(-ret));
	}
	return 0;
}

/* "netstack: ID running on tap0 (198.51.100.2/24, fd42:5::2/64) services
 * tcp:80:http udp:7:echo", flushed: tests wait for it. */
static void running_print(const struct run_config *cfg)
{
	printf("%s: %s running on ", PROG, cfg->id);
	if (cfg->tap)
		printf("%s", cfg->tap);
	else
		printf("fd %d", cfg->fd);
	printf(" (");
	for (size_t i = 0; i < cfg->nips; i++) {
		char text[INET6_ADDRSTRLEN];

		if (ns_addr_format(&cfg->ips[i].addr, text, sizeof(text)) < 0)
			snprintf(text, sizeof(text), "?");
		printf("%s%s/%u", i ? ", " : "", text, cfg->ips[i].len);
	}
	printf(")");
	if (cfg->nservices)
		printf(" services");
	for (size_t i = 0; i < cfg->nservices; i++) {
		char text[SERVICE_SPEC_MAX];

		if (services_format(&cfg->services[i], text, sizeof(text)) < 0)
			snprintf(text, sizeof(text), "?");
		printf(" %s", text);
	}
	printf("\n");
	fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* The daemon's life, shared by run and restore                        */
/* ------------------------------------------------------------------ */

/*
 * Block SIGINT and SIGTERM before any thread exists, so every thread
 * inherits the mask and only the daemon's signalfd receives them. Writes to
 * a vanished peer (stdout, a socketpair, a control client) fail with EPIPE
 * instead of killing the process.
 */
static int signals_setup(const char *cmd)
{
	struct sigaction ign = { .sa_handler = SIG_IGN };
	sigset_t stop_sigs;
	int ret;

	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGINT);
	sigaddset(&stop_sigs, SIGTERM);
	ret = pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
	if (ret || sigaction(SIGPIPE, &ign, NULL) < 0)
		return fail(EXIT_RUNTIME, cmd, "cannot set up signals: %s", strerror(ret ? ret : errno));
	return 0;
}

/* The fd a detached daemon logs to: --log FILE, or -1 (dropped). */
static int log_open(const struct global_opts *g, const char *cmd, bool detach, int *fdp)
{
	*fdp = -1;
	if (!detach || !g->log)
		return 0;
	*fdp = open(g->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (*fdp < 0)
		return fail(EXIT_RUNTIME, cmd, "cannot open log file '%s': %s", g->log, strerror(errno));
	return 0;
}

/* Go to the background if asked; in the parent this never returns. */
static int detach_maybe(const char *cmd, bool detach, int *ready_fd)
{
	int ret;

	*ready_fd = -1;
	if (!detach)
		return 0;
	ret = daemon_detach(ready_fd);
	if (ret < 0)
		return fail(EXIT_RUNTIME, cmd, "cannot go to the background: %s", strerror(-ret));
	return 0;
}

static int claim(const struct global_opts *g, const char *cmd, const char *id, struct daemon **d)
{
	int ret = daemon_open(g->root, id, d);

	switch (ret) {
	case 0:
		return 0;
	case -EBUSY:
		return fail(EXIT_RUNTIME, cmd, "'%s' is running already", id);
	case -EPERM:
		return fail(EXIT_RUNTIME, cmd, "state directory %s/%s belongs to another user", g->root,
			    id);
	case -ENOTDIR:
		return fail(EXIT_RUNTIME, cmd, "%s/%s is not a directory", g->root, id);
	default:
		return fail(EXIT_RUNTIME, cmd, "cannot claim state directory %s/%s: %s", g->root, id,
			    strerror(-ret));
	}
}

/*
 * Serve the stack until the daemon ends, then take everything down in the
 * one safe order: the control thread and its requests, the services, the
 * stack, and last the state directory and lock (after which a client that
 * waits for our end sees it). Return: the exit status.
 */
static int serve(const char *cmd, struct daemon *d, const struct daemon_stack *ds,
		 const struct run_config *cfg, int ready_fd, int log_fd)
{
	enum daemon_end end = DAEMON_END_ABORT;
	int ret = daemon_serve(d, ds);

	if (ret < 0) {
		ret = fail(EXIT_RUNTIME, cmd, "cannot serve the control socket in %s: %s",
			   daemon_path(d), strerror(-ret));
	} else {
		if (cfg)
			running_print(cfg);
		daemon_ready(ready_fd, 0, log_fd);
		ready_fd = -1;
		end = daemon_wait(d);
		ret = end == DAEMON_END_FAILED ? EXIT_RUNTIME : 0;
	}
	daemon_quiesce(d);
	services_stop(ds->svc);
	ns_stack_free(ds->stack);
	daemon_close(d, end);
	daemon_ready(ready_fd, ret, -1);
	return ret;
}

/* ------------------------------------------------------------------ */
/* run                                                                 */
/* ------------------------------------------------------------------ */

static int run_main(const struct global_opts *g, int argc, char **argv)
{
	struct run_config cfg = { 0 };
	struct daemon *d = NULL;
	struct ns_stack_config scfg = { .log = daemon_log };
	struct services *svc = NULL;
	struct ns_stack *s = NULL;
	struct daemon_stack ds;
	int ret, nic, ready_fd = -1, log_fd = -1;
	size_t failed;

	ret = run_parse(argc, argv, &cfg);
	if (ret) {
		run_config_free(&cfg);
		return ret < 0 ? 0 : ret;
	}
	ret = log_open(g, "run", cfg.detach, &log_fd);
	if (!ret)
		ret = signals_setup("run");
	if (!ret)
		ret = detach_maybe("run", cfg.detach, &ready_fd);
	if (ret)
		goto out_config;

	/* Claim the ID before touching the TAP: a second daemon under the same
	 * ID must not steal the first one's device. */
	ret = claim(g, "run", cfg.id, &d);
	if (ret)
		goto out_ready;
	scfg.log_arg = d;
	ret = ns_stack_new(&scfg, &s);
	if (ret < 0) {
		ret = fail(EXIT_RUNTIME, "run", "cannot create the stack: %s", strerror(-ret));
		goto out_daemon;
	}
	nic = nic_create(s, &cfg);
	if (nic < 0) {
		ret = -nic;
		goto out_stack;
	}
	ret = addresses_add(s, nic, &cfg);
	if (ret)
		goto out_stack;
	if (cfg.memory) {
		struct ns_region *r;

		ret = ns_memfile_region_create(s, DAEMON_MEMORY_REGION, cfg.memory, &r);
		if (ret < 0) {
			ret = fail(EXIT_RUNTIME, "run", "--memory: cannot map %" PRIu64 " bytes: %s",
				   cfg.memory, strerror(-ret));
			goto out_stack;
		}
		memfill_pattern(ns_region_addr(r), ns_region_size(r));
	}
	ret = services_start(s, cfg.id, cfg.services, cfg.nservices, &svc, &failed);
	if (ret < 0) {
		char text[SERVICE_SPEC_MAX];

		if (failed < cfg.nservices &&
		    services_format(&cfg.services[failed], text, sizeof(text)) >= 0)
			ret = fail(EXIT_RUNTIME, "run", "cannot start service '%s': %s", text,
				   strerror(-ret));
		else
			ret = fail(EXIT_RUNTIME, "run", "cannot start the services: %s",
				   strerror(-ret));
		goto out_stack;
	}
	ret = ns_stack_start(s);
	if (ret < 0) {
		ret = fail(EXIT_RUNTIME, "run", "cannot start the stack: %s", strerror(-ret));
		goto out_services;
	}

	ds = (struct daemon_stack){ .stack = s, .svc = svc, .specs = cfg.services,
				    .nspecs = cfg.nservices };
	ret = serve("run", d, &ds, &cfg, ready_fd, log_fd);
	goto out_config;

out_services:
	services_stop(svc);
out_stack:
	ns_stack_free(s);
out_daemon:
	daemon_close(d, DAEMON_END_ABORT);
out_ready:
	daemon_ready(ready_fd, ret, -1);
out_config:
	if (log_fd >= 0)
		close(log_fd);
	run_config_free(&cfg);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Shared by the client commands                                       */
/* ------------------------------------------------------------------ */

/* @in as an absolute path: relative ones are taken from the current
 * directory; symlinks are not resolved. */
static int path_absolute(const char *cmd, const char *flag, const char *in, char *out, size_t cap)
{
	char cwd[PATH_MAX];
	int n;

	if (!*in)
		return fail(EXIT_USAGE, cmd, "%s: empty path", flag);
	if (in[0] == '/') {
		n = snprintf(out, cap, "%s", in);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return fail(EXIT_RUNTIME, cmd, "cannot read the current directory: %s",
				    strerror(errno));
		n = snprintf(out, cap, "%s/%s", strcmp(cwd, "/") ? cwd : "", in);
	}
	if (n < 0 || (size_t)n >= cap)
		return fail(EXIT_USAGE, cmd, "%s: path too long", flag);
	return 0;
}

/*
 * Parse a command's flags with getopt_long(); @flag is called for each.
 * Then take the ID (and up to @extra more arguments into @rest). Return: 0
 * to go on, -1 after --help, else an exit code already reported.
 */
static int args_parse(const char *cmd, int argc, char **argv, const char *shortopts,
		      const struct option *opts, void (*usage)(FILE *f),
		      int (*flag)(void *ctx, int c, const char *arg), void *ctx, const char **id,
		      int extra, char **rest)
{
	int c, ret;

	opterr = 0;
	optind = 0;	/* glibc: start over, argv[0] being the command */
	while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return -1;
		}
		if (c == '?' || c == ':')
			return flag_error(cmd, c, argv, opts);
		ret = flag(ctx, c, optarg);
		if (ret)
			return ret;
	}
	if (!id)
		goto rest;
	if (optind >= argc)
		return fail(EXIT_USAGE, cmd, "missing ID");
	*id = argv[optind++];
	if (!daemon_id_valid(*id))
		return fail(EXIT_USAGE, cmd, "bad ID '%s' (want [A-Za-z0-9][A-Za-z0-9_.-]{0,%d})", *id,
			    ID_MAX - 1);
rest:
	for (int i = 0; i < extra; i++)
		rest[i] = optind < argc ? argv[optind++] : NULL;
	if (optind < argc)
		return fail(EXIT_USAGE, cmd, "unexpected argument '%s'", argv[optind]);
	return 0;
}

/* The flags of a command that has none but --help. */
static const struct option help_options[] = {
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int no_flags(void *ctx, int c, const char *arg)
{
	(void)ctx;
	(void)arg;
	return fail(EXIT_USAGE, NULL, "internal error: flag %d", c);
}

/* One line for a control_call() or daemon_probe() that failed. */
static int client_error(const struct global_opts *g, const char *cmd, const char *id, int err,
			int timeout_ms)
{
	struct daemon_record rec;

	switch (err) {
	case -ENOENT:
		return fail(EXIT_RUNTIME, cmd, "no such ID '%s' under %s", id, g->root);
	case -ESRCH:
		if (daemon_probe(g->root, id, &rec) == 0)
			return fail(EXIT_RUNTIME, cmd, "'%s' is not running (status %s)", id,
				    daemon_status_name(rec.status));
		return fail(EXIT_RUNTIME, cmd, "'%s' is not running", id);
	case -ECONNREFUSED:
		return fail(EXIT_RUNTIME, cmd,
			    "'%s' is running but does not serve its control socket (starting, "
			    "or wedged)",
			    id);
	case -EPERM:
		return fail(EXIT_RUNTIME, cmd, "'%s' belongs to another user", id);
	case -ENOTDIR:
		return fail(EXIT_RUNTIME, cmd, "%s/%s is not a directory", g->root, id);
	case -ETIMEDOUT:
		return fail(EXIT_RUNTIME, cmd, "no reply from '%s' within %d s", id,
			    (timeout_ms + 999) / 1000);
	case -ECONNRESET:
		return fail(EXIT_RUNTIME, cmd, "'%s' closed the connection without a reply", id);
	case -EBADMSG:
		return fail(EXIT_RUNTIME, cmd, "'%s' sent a malformed reply", id);
	case -E2BIG:
		return fail(EXIT_RUNTIME, cmd, "'%s' sent a reply over %u bytes", id,
			    CONTROL_BODY_MAX);
	default:
		return fail(EXIT_RUNTIME, cmd, "cannot reach '%s': %s", id, strerror(-err));
	}
}

/* ------------------------------------------------------------------ */
/* checkpoint                                                          */
/* ------------------------------------------------------------------ */

enum ckpt_flag {
	CKPT_IMAGE_PATH = UCHAR_MAX + 1,
	CKPT_LEAVE_RUNNING,
	CKPT_COMPRESSION,
	CKPT_DIRECT,
};

static const struct option checkpoint_options[] = {
	{ "image-path", required_argument, NULL, CKPT_IMAGE_PATH },
	{ "leave-running", no_argument, NULL, CKPT_LEAVE_RUNNING },
	{ "compression", required_argument, NULL, CKPT_COMPRESSION },
	{ "direct", no_argument, NULL, CKPT_DIRECT },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct checkpoint_args {
	const char *image;
	bool leave_running, direct;
	enum ns_compression compression;
};

static int checkpoint_flag(void *ctx, int c, const char *arg)
{
	struct checkpoint_args *a = ctx;

	switch (c) {
	case CKPT_IMAGE_PATH:
		if (a->image)
			return fail(EXIT_USAGE, "checkpoint", "--image-path: given twice");
		a->image = arg;
		return 0;
	case CKPT_LEAVE_RUNNING:
		a->leave_running = true;
		return 0;
	case CKPT_COMPRESSION:
		if (strcmp(arg, "none") == 0)
			a->compression = NS_COMPRESSION_NONE;
		else if (strcmp(arg, "zstd") == 0)
			a->compression = NS_COMPRESSION_ZSTD;
		else
			return fail(EXIT_USAGE, "checkpoint",
				    "--compression: unsupported '%s' (want none or zstd)", arg);
		return 0;
	case CKPT_DIRECT:
		a->direct = true;
		return 0;
	default:
		return no_flags(ctx, c, arg);
	}
}

static int checkpoint_main(const struct global_opts *g, int argc, char **argv)
{
	struct checkpoint_args a = { 0 };
	struct control_request req = { .verb = CONTROL_CHECKPOINT,
				       .compression = NS_COMPRESSION_NONE };
	struct control_reply rep;
	const char *id;
	int ret;

	ret = args_parse("checkpoint", argc, argv, "+:h", checkpoint_options, usage_checkpoint,
			 checkpoint_flag, &a, &id, 0, NULL);
	if (ret)
		return ret < 0 ? 0 : ret;
	if (!a.image)
		return fail(EXIT_USAGE, "checkpoint", "--image-path DIR is required");
	ret = path_absolute("checkpoint", "--image-path", a.image, req.path, sizeof(req.path));
	if (ret)
		return ret;
	req.leave_running = a.leave_running;
	req.compression = a.compression;
	req.direct = a.direct;
	signal(SIGPIPE, SIG_IGN);

	/* No time limit: writing a big image takes what it takes. */
	ret = control_call(g->root, id, &req, -1, !a.leave_running, &rep);
	if (ret)
		return client_error(g, "checkpoint", id, ret, -1);
	if (!rep.ok) {
		if (rep.fd >= 0)
			close(rep.fd);
		return fail(EXIT_RUNTIME, "checkpoint", "%s", rep.msg);
	}
	if (!a.leave_running) {
		/* The daemon holds the connection until its stack (and TAP)
		 * is freed and its lock released. */
		if (control_wait_eof(rep.fd, EXIT_WAIT_MS) < 0 ||
		    daemon_wait_gone(g->root, id, EXIT_WAIT_MS) < 0)
			return fail(EXIT_RUNTIME, "checkpoint",
				    "the image is written, but '%s' did not exit within %d s", id,
				    EXIT_WAIT_MS / 1000);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* restore                                                             */
/* ------------------------------------------------------------------ */

enum restore_flag {
	RESTORE_IMAGE_PATH = UCHAR_MAX + 1,
	RESTORE_DETACH,
	RESTORE_FD,
	RESTORE_BACKGROUND,
	RESTORE_DIRECT,
	RESTORE_LOADER,
};

static const struct option restore_options[] = {
	{ "image-path", required_argument, NULL, RESTORE_IMAGE_PATH },
	{ "detach", no_argument, NULL, RESTORE_DETACH },
	{ "fd", required_argument, NULL, RESTORE_FD },
	{ "background", no_argument, NULL, RESTORE_BACKGROUND },
	{ "direct", no_argument, NULL, RESTORE_DIRECT },
	{ "loader", required_argument, NULL, RESTORE_LOADER },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct restore_args {
	const char *image;
	bool detach, background, direct;
	enum ns_memfile_backend loader;
	int fd;
};

static const char *const loader_names[] = {
	[NS_MEMFILE_AUTO] = "auto",
	[NS_MEMFILE_IO_URING] = "io_uring",
	[NS_MEMFILE_THREADS] = "threads",
	[NS_MEMFILE_MAP] = "map",
};

static int restore_flag(void *ctx, int c, const char *arg)
{
	struct restore_args *a = ctx;
	unsigned long v;

	switch (c) {
	case RESTORE_IMAGE_PATH:
		if (a->image)
			return fail(EXIT_USAGE, "restore", "--image-path: given twice");
		a->image = arg;
		return 0;
	case RESTORE_DETACH:
		a->detach = true;
		return 0;
	case RESTORE_BACKGROUND:
		a->background = true;
		return 0;
	case RESTORE_DIRECT:
		a->direct = true;
		return 0;
	case RESTORE_LOADER:
		for (size_t i = 0; i < sizeof(loader_names) / sizeof(loader_names[0]); i++)
			if (strcmp(arg, loader_names[i]) == 0) {
				a->loader = (enum ns_memfile_backend)i;
				return 0;
			}
		return fail(EXIT_USAGE, "restore",
			    "--loader: '%s' is not auto, io_uring, threads or map", arg);
	case RESTORE_FD:
		if (a->fd >= 0)
			return fail(EXIT_USAGE, "restore", "--fd: given twice");
		if (number_parse(arg, 0, INT_MAX, &v) < 0 || v == STDOUT_FILENO || v == STDERR_FILENO)
			return fail(EXIT_USAGE, "restore",
				    "--fd: bad fd '%s' (want a number >= 0, not 1 or 2)", arg);
		a->fd = (int)v;
		return 0;
	default:
		return no_flags(ctx, c, arg);
	}
}

/* Which NIC takes --fd, by the image's config; NULL when none needs it. */
static int restore_nics_check(const struct run_config_file *rc, const struct restore_args *a,
			      const char **fd_nic)
{
	*fd_nic = NULL;
	for (size_t i = 0; i < rc->nnics; i++) {
		const struct run_config_nic *n = &rc->nics[i];

		if (strcmp(n->kind, "channel") == 0)
			return fail(EXIT_RUNTIME, "restore",
				    "NIC '%s' ran on an in-memory channel, which no other process "
				    "can attach",
				    n->name);
		if (strcmp(n->kind, "fd") == 0) {
			if (*fd_nic)
				return fail(EXIT_RUNTIME, "restore",
					    "the image has two fd NICs ('%s', '%s'); --fd serves one",
					    *fd_nic, n->name);
			*fd_nic = n->name;
		}
	}
	if (*fd_nic && a->fd < 0)
		return fail(EXIT_RUNTIME, "restore",
			    "NIC '%s' ran on an inherited fd: give its new one with --fd N", *fd_nic);
	if (!*fd_nic && a->fd >= 0)
		return fail(EXIT_USAGE, "restore", "--fd: the image has no fd NIC");
	return 0;
}

/* Why services_adopt() refused a socket, in the image's terms. */
static const char *adopt_error(int err)
{
	switch (err) {
	case -EBADF:
		return "the image holds no such socket";
	case -EPROTOTYPE:
		return "the socket is of the other protocol";
	case -ENOTCONN:
		return "the socket is not listening (TCP) or not bound (UDP)";
	case -EADDRNOTAVAIL:
		return "the socket is bound to another port";
	default:
		return strerror(-err);
	}
}

static int restore_main(const struct global_opts *g, int argc, char **argv)
{
	struct restore_args a = { .fd = -1 };
	struct run_config_file *rc = NULL;
	struct ns_stack_config scfg = { .log = daemon_log };
	struct ns_restore_endpoint rep = { 0 };
	struct ns_restore_opts ro = { .config = &scfg, .start = true };
	char dir[PATH_MAX], why[512];
	struct services *svc = NULL;
	struct ns_stack *s = NULL;
	struct daemon *d = NULL;
	struct daemon_stack ds;
	const char *id, *fd_nic;
	int ret, ready_fd = -1, log_fd = -1;
	uint64_t start_ns;
	size_t failed;

	ret = args_parse("restore", argc, argv, "+:h", restore_options, usage_restore, restore_flag,
			 &a, &id, 0, NULL);
	if (ret)
		return ret < 0 ? 0 : ret;
	if (!a.image)
		return fail(EXIT_USAGE, "restore", "--image-path DIR is required");
	ret = path_absolute("restore", "--image-path", a.image, dir, sizeof(dir));
	if (ret)
		return ret;
	rc = malloc(sizeof(*rc));
	if (!rc)
		return fail(EXIT_RUNTIME, "restore", "%s", strerror(ENOMEM));
	/* The image's own config first: without it nothing can be served. */
	if (run_config_read(dir, rc, why, sizeof(why)) < 0) {
		ret = fail(EXIT_RUNTIME, "restore", "%s", why);
		goto out_rc;
	}
	ret = restore_nics_check(rc, &a, &fd_nic);
	if (!ret)
		ret = log_open(g, "restore", a.detach, &log_fd);
	if (!ret)
		ret = signals_setup("restore");
	if (!ret)
		ret = detach_maybe("restore", a.detach, &ready_fd);
	if (ret)
		goto out_rc;

	start_ns = daemon_monotonic_ns();
	ret = claim(g, "restore", id, &d);
	if (ret)
		goto out_ready;
	scfg.log_arg = d;
	if (fd_nic) {
		/* The endpoint owns the fd from here, also on failure. */
		ret = ns_endpoint_fd_open(a.fd, &rep.ep);
		if (ret < 0) {
			ret = fail(EXIT_RUNTIME, "restore", "cannot use fd %d: %s", a.fd,
				   strerror(-ret));
			goto out_daemon;
		}
		rep.nic_name = fd_nic;
		ro.endpoints = &rep;
		ro.nendpoints = 1;
	}
	ro.background = a.background;
	ro.direct = a.direct;
	ro.backend = a.loader;
	why[0] = '\0';
	ret = ns_stack_restore(dir, &ro, &s, why, sizeof(why));
	if (ret < 0) {
		/* A given endpoint is not freed here: the library may have
		 * added it to a NIC it freed already. The process ends. */
		ret = fail(EXIT_RUNTIME, "restore", "cannot restore from %s: %s", dir,
			   why[0] ? why : strerror(-ret));
		goto out_daemon;
	}
	ret = services_adopt(s, id, rc->services, rc->socks, rc->nservices, &svc, &failed);
	if (ret < 0) {
		char text[SERVICE_SPEC_MAX];

		if (failed < rc->nservices &&
		    services_format(&rc->services[failed], text, sizeof(text)) >= 0)
			ret = fail(EXIT_RUNTIME, "restore",
				   "cannot serve '%s' on the restored socket %d: %s", text,
				   rc->socks[failed], adopt_error(ret));
		else
			ret = fail(EXIT_RUNTIME, "restore", "cannot start the services: %s",
				   strerror(-ret));
		goto out_stack;
	}

	ds = (struct daemon_stack){ .stack = s, .svc = svc, .specs = rc->services,
				    .nspecs = rc->nservices, .restored = true,
				    .restored_from = dir, .start_ns = start_ns };
	ret = serve("restore", d, &ds, NULL, ready_fd, log_fd);
	goto out_log;

out_stack:
	ns_stack_free(s);
out_daemon:
	daemon_close(d, DAEMON_END_ABORT);
out_ready:
	daemon_ready(ready_fd, ret, -1);
out_log:
	if (log_fd >= 0)
		close(log_fd);
out_rc:
	free(rc);
	return ret;
}

/* ------------------------------------------------------------------ */
/* wait                                                                */
/* ------------------------------------------------------------------ */

enum wait_flag {
	WAIT_CHECKPOINT = UCHAR_MAX + 1,
	WAIT_RESTORE,
	WAIT_TIMEOUT,
};

static const struct option wait_options[] = {
	{ "checkpoint", no_argument, NULL, WAIT_CHECKPOINT },
	{ "restore", no_argument, NULL, WAIT_RESTORE },
	{ "timeout", required_argument, NULL, WAIT_TIMEOUT },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct wait_args {
	bool checkpoint, restore;
	long timeout_s;		/* -1: not given */
};

static int wait_flag(void *ctx, int c, const char *arg)
{
	struct wait_args *a = ctx;
	unsigned long v;

	switch (c) {
	case WAIT_CHECKPOINT:
		a->checkpoint = true;
		return 0;
	case WAIT_RESTORE:
		a->restore = true;
		return 0;
	case WAIT_TIMEOUT:
		if (a->timeout_s >= 0)
			return fail(EXIT_USAGE, "wait", "--timeout: given twice");
		if (number_parse(arg, 0, WAIT_TIMEOUT_MAX_S, &v) < 0)
			return fail(EXIT_USAGE, "wait", "--timeout: bad number of seconds '%s' (want 0..%d)",
				    arg, WAIT_TIMEOUT_MAX_S);
		a->timeout_s = (long)v;
		return 0;
	default:
		return no_flags(ctx, c, arg);
	}
}

static int wait_checkpoint(const struct global_opts *g, const char *id, long timeout_s)
{
	struct control_request req = { .verb = CONTROL_WAIT_CHECKPOINT, .timeout_ms = -1 };
	struct control_reply rep;
	int ret, call_ms = -1;

	if (timeout_s >= 0) {
		req.timeout_ms = (int)(timeout_s * 1000);
		call_ms = req.timeout_ms + 5000;	/* the daemon says it first */
	}
	ret = control_call(g->root, id, &req, call_ms, false, &rep);
	if (ret)
		return client_error(g, "wait", id, ret, call_ms);
	free(rep.body);
	if (!rep.ok)
		return fail(EXIT_RUNTIME, "wait", "%s", rep.msg);
	return 0;
}

static int wait_restore(const struct global_opts *g, const char *id, long timeout_s)
{
	struct control_request req = { .verb = CONTROL_WAIT_RESTORE };
	uint64_t deadline = daemon_monotonic_ns() + (uint64_t)timeout_s * 1000000000u;
	const char *last = "it did not appear";

	for (;;) {
		struct control_reply rep;
		int ret = control_call(g->root, id, &req, STATE_TIMEOUT_MS, false, &rep);

		if (ret == 0) {
			free(rep.body);
			if (rep.ok && strcmp(rep.msg, "restored") == 0)
				return 0;
			if (!rep.ok && strncmp(rep.msg, "restored,", 9) == 0)
				return fail(EXIT_RUNTIME, "wait", "'%s' %s", id, rep.msg);
			last = !rep.ok ? "its daemon refused the request"
			       : strcmp(rep.msg, "loading") == 0 ? "its memory is still loading"
			       : "it runs, but was started by 'run', not restored";
		} else if (ret == -ESRCH) {
			last = "it is not running";
		} else if (ret == -ECONNREFUSED) {
			last = "it is still starting";
		} else if (ret == -EPERM || ret == -ENOTDIR) {
			return client_error(g, "wait", id, ret, STATE_TIMEOUT_MS);
		}
		if (daemon_monotonic_ns() >= deadline)
			return fail(EXIT_RUNTIME, "wait",
				    "'%s' was not restored within %ld s (%s)", id, timeout_s, last);
		usleep(POLL_MS * 1000);
	}
}

static int wait_main(const struct global_opts *g, int argc, char **argv)
{
	struct wait_args a = { .timeout_s = -1 };
	const char *id;
	int ret;

	ret = args_parse("wait", argc, argv, "+:h", wait_options, usage_wait, wait_flag, &a, &id, 0,
			 NULL);
	if (ret)
		return ret < 0 ? 0 : ret;
	if (a.checkpoint && a.restore)
		return fail(EXIT_USAGE, "wait", "--checkpoint and --restore exclude each other");
	signal(SIGPIPE, SIG_IGN);
	if (a.checkpoint)
		return wait_checkpoint(g, id, a.timeout_s);
	if (a.restore)
		return wait_restore(g, id, a.timeout_s >= 0 ? a.timeout_s : WAIT_RESTORE_DEFAULT_S);
	if (daemon_wait_gone(g->root, id, a.timeout_s >= 0 ? (int)(a.timeout_s * 1000) : -1) < 0)
		return fail(EXIT_RUNTIME, "wait", "'%s' still runs after %ld s", id, a.timeout_s);
	return 0;
}

/* ------------------------------------------------------------------ */
/* state, list                                                         */
/* ------------------------------------------------------------------ */

static void json_print_str(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

/* The short form, from state.json and the lock. */
static void record_print(const char *id, const struct daemon_record *rec)
{
	printf("{\n  \"id\": ");
	json_print_str(id);
	printf(",\n  \"status\": \"%s\",\n  \"pid\": %d,\n  \"created\": ",
	       daemon_status_name(rec->status), (int)rec->pid);
	json_print_str(rec->created);
	printf(",\n  \"restored\": %s", rec->restored ? "true" : "false");
	if (rec->restored) {
		printf(",\n  \"restore_ms\": %.3f,\n  \"restored_from\": ", rec->restore_ms);
		json_print_str(rec->restored_from);
	}
	printf(",\n  \"checkpoint_count\": %" PRId64 ",\n  \"image_path\": ",
	       rec->checkpoint_count < 0 ? 0 : rec->checkpoint_count);
	if (rec->image_path[0])
		json_print_str(rec->image_path);
	else
		printf("null");
	printf("\n}\n");
}

static int state_main(const struct global_opts *g, int argc, char **argv)
{
	struct control_request req = { .verb = CONTROL_STATE };
	struct daemon_record rec;
	struct control_reply rep;
	const char *id;
	int ret;

	ret = args_parse("state", argc, argv, "+:h", help_options, usage_state, no_flags, NULL, &id, 0,
			 NULL);
	if (ret)
		return ret < 0 ? 0 : ret;
	signal(SIGPIPE, SIG_IGN);
	ret = daemon_probe(g->root, id, &rec);
	if (ret)
		return client_error(g, "state", id, ret, 0);
	if (rec.status == DAEMON_RUNNING) {
		ret = control_call(g->root, id, &req, STATE_TIMEOUT_MS, false, &rep);
		if (ret == 0 && rep.ok) {
			fwrite(rep.body ? rep.body : "", 1, rep.body_len, stdout);
			free(rep.body);
			return fflush(stdout) ? EXIT_RUNTIME : 0;
		}
		if (ret == 0)
			return fail(EXIT_RUNTIME, "state", "%s", rep.msg);
		/* Starting, or gone since the probe: what the files say. */
		if (ret != -ECONNREFUSED && ret != -ESRCH)
			return client_error(g, "state", id, ret, STATE_TIMEOUT_MS);
		if (daemon_probe(g->root, id, &rec) < 0)
			return client_error(g, "state", id, -ENOENT, 0);
	}
	record_print(id, &rec);
	return fflush(stdout) ? EXIT_RUNTIME : 0;
}

static const struct option list_options[] = {
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int list_flag(void *ctx, int c, const char *arg)
{
	if (c != 'q')
		return no_flags(ctx, c, arg);
	*(bool *)ctx = true;
	return 0;
}

static int list_main(const struct global_opts *g, int argc, char **argv)
{
	bool quiet = false;
	char **ids;
	size_t n;
	int ret;

	ret = args_parse("list", argc, argv, "+:hq", list_options, usage_list, list_flag, &quiet,
			 NULL, 0, NULL);
	if (ret)
		return ret < 0 ? 0 : ret;
	ret = daemon_list(g->root, &ids, &n);
	if (ret)
		return fail(EXIT_RUNTIME, "list", "cannot read %s: %s", g->root, strerror(-ret));
	for (size_t i = 0; i < n; i++) {
		struct daemon_record rec;

		if (quiet)
			printf("%s\n", ids[i]);
		else if (daemon_probe(g->root, ids[i], &rec) == 0)
			printf("%s %s %d\n", ids[i], daemon_status_name(rec.status), (int)rec.pid);
		else
			printf("%s unknown 0\n", ids[i]);
		free(ids[i]);
	}
	free(ids);
	return fflush(stdout) ? EXIT_RUNTIME : 0;
}

/* ------------------------------------------------------------------ */
/* kill, delete                                                        */
/* ------------------------------------------------------------------ */

/* "TERM", "sigterm", "15": the signal number, or -EINVAL. */
static int signal_parse(const char *text)
{
	unsigned long v;

	if (number_parse(text, 1, (unsigned long)SIGRTMAX, &v) == 0)
		return (int)v;
	if (strncasecmp(text, "SIG", 3) == 0)
		text += 3;
	for (int sig = 1; sig < NSIG; sig++) {
		const char *name = sigabbrev_np(sig);

		if (name && strcasecmp(name, text) == 0)
			return sig;
	}
	return -EINVAL;
}

/*
 * Signal ID's daemon. Through a pidfd taken while the lock still names
 * the pid: if the daemon had gone and the pid been reused, the lock would
 * no longer name it. Kernels without pidfds (before 5.3) get kill().
 */
static int daemon_signal(const struct global_opts *g, const char *cmd, const char *id, int sig)
{
	struct daemon_record rec;
	int ret, pidfd;

	ret = daemon_probe(g->root, id, &rec);
	if (ret)
		return client_error(g, cmd, id, ret, 0);
	if (rec.status != DAEMON_RUNNING)
		return client_error(g, cmd, id, -ESRCH, 0);
	if (rec.pid <= 0)
		return fail(EXIT_RUNTIME, cmd, "'%s' runs in another pid namespace: its pid is unknown",
			    id);
	pidfd = (int)syscall(SYS_pidfd_open, rec.pid, 0);
	if (pidfd < 0 && errno != ENOSYS) {
		if (errno == ESRCH)
			return client_error(g, cmd, id, -ESRCH, 0);
		return fail(EXIT_RUNTIME, cmd, "cannot reach pid %d: %s", (int)rec.pid, strerror(errno));
	}
	{
		struct daemon_record again;

		if (daemon_probe(g->root, id, &again) < 0 || again.pid != rec.pid) {
			if (pidfd >= 0)
				close(pidfd);
			return client_error(g, cmd, id, -ESRCH, 0);
		}
	}
	if (pidfd >= 0) {
		ret = (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
		close(pidfd);
	} else {
		ret = kill(rec.pid, sig);
	}
	if (ret < 0)
		return fail(EXIT_RUNTIME, cmd, "cannot signal pid %d: %s", (int)rec.pid,
			    strerror(errno));
	return 0;
}

static int kill_main(const struct global_opts *g, int argc, char **argv)
{
	const char *id;
	char *sigtext = NULL;
	int ret, sig = SIGTERM;

	ret = args_parse("kill", argc, argv, "+:h", help_options, usage_kill, no_flags, NULL, &id, 1,
			 &sigtext);
	if (ret)
		return ret < 0 ? 0 : ret;
	if (sigtext) {
		sig = signal_parse(sigtext);
		if (sig < 0)
			return fail(EXIT_USAGE, "kill", "bad signal '%s' (want a name such as TERM or "
				    "a number 1..%d)", sigtext, SIGRTMAX);
	}
	return daemon_signal(g, "kill", id, sig);
}

static const struct option delete_options[] = {
	{ "force", no_argument, NULL, 'f' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int delete_flag(void *ctx, int c, const char *arg)
{
	if (c != 'f')
		return no_flags(ctx, c, arg);
	*(bool *)ctx = true;
	return 0;
}

static int delete_main(const struct global_opts *g, int argc, char **argv)
{
	struct daemon_record rec;
	bool force = false;
	const char *id;
	int ret;

	/* --force only: runsc has no short form for it. */
	ret = args_parse("delete", argc, argv, "+:h", delete_options, usage_delete, delete_flag,
			 &force, &id, 0, NULL);
	if (ret)
		return ret < 0 ? 0 : ret;
	ret = daemon_probe(g->root, id, &rec);
	if (ret)
		return client_error(g, "delete", id, ret, 0);
	if (rec.status == DAEMON_RUNNING) {
		if (!force)
			return fail(EXIT_RUNTIME, "delete",
				    "'%s' is running (stop it with 'kill', or use --force)", id);
		ret = daemon_signal(g, "delete", id, SIGKILL);
		/* It may have gone by itself meanwhile: that is fine too. */
		if (ret && daemon_probe(g->root, id, &rec) == 0 && rec.status == DAEMON_RUNNING)
			return ret;
		if (daemon_wait_gone(g->root, id, KILL_WAIT_MS) < 0)
			return fail(EXIT_RUNTIME, "delete", "'%s' still runs %d s after SIGKILL", id,
				    KILL_WAIT_MS / 1000);
	}
	ret = daemon_delete(g->root, id);
	if (ret == -EBUSY)
		return fail(EXIT_RUNTIME, "delete", "'%s' is running again", id);
	if (ret == -ENOENT)
		return 0;	/* someone else deleted it: the goal is reached */
	if (ret)
		return fail(EXIT_RUNTIME, "delete", "cannot remove %s/%s: %s", g->root, id,
			    strerror(-ret));
	return 0;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

enum global_flag {
	GLOBAL_ROOT = UCHAR_MAX + 1,
	GLOBAL_LOG,
};

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "root", required_argument, NULL, GLOBAL_ROOT },
		{ "log", required_argument, NULL, GLOBAL_LOG },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct global_opts g = { .log = NULL };
	const char *root = DAEMON_ROOT_DEFAULT, *name;
	int c, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage_top(stdout);
			return 0;
		case GLOBAL_ROOT:
			root = optarg;
			break;
		case GLOBAL_LOG:
			g.log = optarg;
			if (!*g.log)
				return fail(EXIT_USAGE, NULL, "--log: empty path");
			break;
		default:
			return flag_error(NULL, c, argv, options);
		}
	}
	ret = path_absolute(NULL, "--root", root, g.root, sizeof(g.root));
	if (ret)
		return ret;
	if (optind >= argc)
		return fail(EXIT_USAGE, NULL, "missing command (see '%s --help')", PROG);

	name = argv[optind];
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].name, name) == 0)
			return commands[i].main(&g, argc - optind, argv + optind);
	}
	return fail(EXIT_USAGE, NULL, "unknown command '%s' (see '%s --help')", name, PROG);
}
