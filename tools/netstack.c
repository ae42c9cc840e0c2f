/* SPDX-License-Identifier: MIT */
/*
 * netstack.c - the `netstack` command line: `netstack [global flags]
 * <command> [flags] ID`, after runsc. It owns the parsing of global flags,
 * the command table and each command's flags, the one-line error messages
 * and exit codes (0 success, 1 runtime failure, 2 usage error), and for now
 * the `run` command, which builds one stack from its flags, starts the
 * services of services.c on it, and runs it in the foreground until SIGINT
 * or SIGTERM. It uses libnetstack only through netstack.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* Flags that come before the command. Later: --root DIR and the like. */
struct global_opts {
	int unused;
};

struct command {
	const char *name;
	const char *summary;
	int (*main)(const struct global_opts *g, int argc, char **argv);
};

static int run_main(const struct global_opts *g, int argc, char **argv);

static const struct command commands[] = {
	{ "run", "run one stack in the foreground until SIGINT or SIGTERM", run_main },
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
		"netstack runs a user-space TCP/IP stack (lwIP) for a sandbox.\n"
		"\n"
		"Commands:\n",
		PROG);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f,
		"\n"
		"Global flags (before the command):\n"
		"  -h, --help  print this help and exit\n"
		"\n"
		"'%s <command> --help' describes a command's flags.\n"
		"Exit status: 0 on success, 1 on a runtime failure, 2 on a usage error.\n",
		PROG);
}

static void usage_run(FILE *f)
{
	fprintf(f,
		"Usage: %s run [--tap NAME | --fd N] --ip CIDR [--ip CIDR]...\n"
		"           [--gateway IP]... [--mtu N] [--service PROTO:PORT:KIND]... ID\n"
		"\n"
		"Run one stack with one NIC in the foreground. Once it runs, one line\n"
		"\"netstack: ID running on ...\" goes to stdout. On SIGINT or SIGTERM the\n"
		"services are closed, the stack is freed, and the exit status is 0.\n"
		"\n"
		"Flags:\n"
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
		"  -h, --help      print this help and exit\n"
		"\n"
		"ID names the stack: a letter or digit, then up to %d letters, digits,\n"
		"'_', '.' or '-'.\n",
		PROG, MTU_MIN, MTU_MAX, MTU_DEFAULT, HTTP_HEAD_MAX, SERVICE_BACKLOG,
		SERVICE_CONN_MAX, ID_MAX - 1);
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

static bool id_valid(const char *id)
{
	size_t len = strlen(id);

	if (len == 0 || len > ID_MAX)
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
};

static const struct option run_options[] = {
	{ "tap", required_argument, NULL, RUN_TAP },
	{ "fd", required_argument, NULL, RUN_FD },
	{ "ip", required_argument, NULL, RUN_IP },
	{ "gateway", required_argument, NULL, RUN_GATEWAY },
	{ "mtu", required_argument, NULL, RUN_MTU },
	{ "service", required_argument, NULL, RUN_SERVICE },
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
};

/* Where the stack's log lines go. */
struct run_log {
	const char *id;
	atomic_bool running;
};

/*
 * Until the stack runs, a failure is reported by the CLI in one line of its
 * own, so the library's lines are dropped; afterwards they go to stderr,
 * prefixed with the stack ID. Called with the stack lock held.
 */
static void run_log_line(void *arg, int level, const char *msg)
{
	struct run_log *log = arg;

	(void)level;
	if (atomic_load(&log->running))
		fprintf(stderr, "%s: %s: %s\n", PROG, log->id, msg);
}

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
	if (!id_valid(cfg->id))
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

static int run_main(const struct global_opts *g, int argc, char **argv)
{
	struct run_config cfg = { 0 };
	struct run_log log = { 0 };
	struct ns_stack_config scfg = { .log = run_log_line, .log_arg = &log };
	struct services *svc = NULL;
	struct ns_stack *s = NULL;
	struct sigaction ign = { .sa_handler = SIG_IGN };
	sigset_t stop_sigs;
	size_t failed;
	int ret, nic, sig;

	(void)g;
	ret = run_parse(argc, argv, &cfg);
	if (ret) {
		run_config_free(&cfg);
		return ret < 0 ? 0 : ret;
	}

	/* Block the stop signals before any thread exists, so every thread
	 * inherits the mask and only sigwait() below receives them. Writes to
	 * a vanished peer (stdout, a socketpair) fail with EPIPE instead of
	 * killing the process. */
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGINT);
	sigaddset(&stop_sigs, SIGTERM);
	ret = pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
	if (ret || sigaction(SIGPIPE, &ign, NULL) < 0) {
		ret = fail(EXIT_RUNTIME, "run", "cannot set up signals: %s", strerror(ret ? ret : errno));
		goto out_config;
	}

	log.id = cfg.id;
	atomic_init(&log.running, false);
	ret = ns_stack_new(&scfg, &s);
	if (ret < 0) {
		ret = fail(EXIT_RUNTIME, "run", "cannot create the stack: %s", strerror(-ret));
		goto out_config;
	}
	nic = nic_create(s, &cfg);
	if (nic < 0) {
		ret = -nic;
		goto out_stack;
	}
	ret = addresses_add(s, nic, &cfg);
	if (ret)
		goto out_stack;
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

	atomic_store(&log.running, true);
	running_print(&cfg);
	/* sigwait() fails only for an invalid set; stop then as well. */
	while (sigwait(&stop_sigs, &sig) == EINTR)
		;
	ret = 0;

out_services:
	services_stop(svc);
out_stack:
	ns_stack_free(s);
out_config:
	run_config_free(&cfg);
	return ret;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct global_opts g = { 0 };
	const char *name;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", options, NULL)) != -1) {
		if (c == 'h') {
			usage_top(stdout);
			return 0;
		}
		return flag_error(NULL, c, argv, options);
	}
	if (optind >= argc)
		return fail(EXIT_USAGE, NULL, "missing command (see '%s --help')", PROG);

	name = argv[optind];
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].name, name) == 0)
			return commands[i].main(&g, argc - optind, argv + optind);
	}
	return fail(EXIT_USAGE, NULL, "unknown command '%s' (see '%s --help')", name, PROG);
}
