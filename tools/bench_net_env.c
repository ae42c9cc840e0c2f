/* SPDX-License-Identifier: MIT */
/*
 * bench_net_env.c - the world the network scenarios run in: network
 * namespaces the harness creates and always deletes (on return, on error,
 * on SIGINT/SIGTERM/SIGHUP), and the sandboxes inside them, each serving the
 * same services (bench_net.h) behind a different stack:
 *
 *   H  client namespace: every load generator and iperf3 client runs here
 *   K  kernel:      veth H 198.51.100.1/28 <-> K 198.51.100.2/28
 *   -  netstack:    TAP in H 198.51.100.17/28; the stack is 198.51.100.18
 *   P  pasta:       H's veth 198.51.100.33/28 (default via .34) is pasta's
 *                   template; pasta forwards ports base.. from H into P
 *   S  slirp4netns: guest 198.51.100.100 in slirp's own 198.51.100.0/24,
 *                   ports forwarded from H's loopback through its API socket
 *
 * Only 198.51.100.0/24 is used. The harness itself moves into H, so the
 * loads it generates start there. Every child is killed with the harness
 * (PR_SET_PDEATHSIG) and by pid on cleanup; a signal handler removes the
 * namespaces with the same two system calls `ip netns del` uses.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "bench_net.h"

#define NS_COUNT 4
#define PIDS_MAX 32
#define READY_MS 10000
#define NETNS_DIR "/run/netns/"

enum { NS_H, NS_K, NS_P, NS_S };

static char ns_names[NS_COUNT][32];
static bool ns_made[NS_COUNT];
static pid_t pids[PIDS_MAX];
static char api_path[108];
static bool env_ready;

static const char *const peer_names[PEER_COUNT] = {
	"kernel", "netstack", "pasta", "slirp4netns",
};

/* --- processes */

static void track(pid_t pid)
{
	for (int i = 0; i < PIDS_MAX; i++)
		if (!pids[i]) {
			pids[i] = pid;
			return;
		}
}

static void reap(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 50; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			goto untrack;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
untrack:
	for (int i = 0; i < PIDS_MAX; i++)
		if (pids[i] == pid)
			pids[i] = 0;
}

static int enter_ns(int which)
{
	char path[64];
	int fd, rc;

	snprintf(path, sizeof(path), NETNS_DIR "%.31s", ns_names[which]);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = setns(fd, CLONE_NEWNET) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* A child in namespace @which; it dies with the harness. */
static pid_t fork_in(int which)
{
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (enter_ns(which))
			_exit(126);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		return 0;
	}
	if (pid > 0)
		track(pid);
	return pid;
}

/* Before a child execs: quiet unless NSBENCH_DEBUG is set in the
 * environment, and SIGPIPE back to its default (an ignored signal stays
 * ignored across exec, and pasta refuses to start when it finds it so). */
static void exec_prep(bool keep_stdout)
{
	int null = open("/dev/null", O_RDWR);

	signal(SIGPIPE, SIG_DFL);
	if (null < 0)
		return;
	dup2(null, STDIN_FILENO);
	if (!keep_stdout)
		dup2(null, STDOUT_FILENO);
	if (!getenv("NSBENCH_DEBUG"))
		dup2(null, STDERR_FILENO);
	close(null);
}

/* Run argv in namespace @which (or the current one: -1), wait for it. */
static int run_argv(int which, char *const argv[])
{
	pid_t pid = which >= 0 ? fork_in(which) : fork();
	int st;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		exec_prep(false);
		execvp(argv[0], argv);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	for (int i = 0; i < PIDS_MAX; i++)
		if (pids[i] == pid)
			pids[i] = 0;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* Write @value to /proc/sys/@name (in the harness's namespace). */
static int sysctl_set(const char *name, const char *value)
{
	char path[128];
	int fd, rc = 0;

	snprintf(path, sizeof(path), "/proc/sys/%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, value, strlen(value)) != (ssize_t)strlen(value))
		rc = -EIO;
	close(fd);
	return rc;
}

/* `ip ARGS...` with the words of a printf-formatted line. */
static int ip(const char *fmt, ...)
{
	char line[256], *argv[32], *save = NULL;
	va_list ap;
	int n = 0;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	argv[n++] = "ip";
	for (char *w = strtok_r(line, " ", &save); w && n < 31; w = strtok_r(NULL, " ", &save))
		argv[n++] = w;
	argv[n] = NULL;
	return run_argv(-1, argv);
}

/* --- cleanup */

static void remove_namespaces(void)
{
	char path[64];

	for (int i = 0; i < NS_COUNT; i++) {
		if (!ns_made[i])
			continue;
		snprintf(path, sizeof(path), NETNS_DIR "%.31s", ns_names[i]);
		umount2(path, MNT_DETACH);
		unlink(path);
		ns_made[i] = false;
	}
}

/* Async-signal-safe: kill, umount2, unlink, _exit. */
static void on_signal(int sig)
{
	for (int i = 0; i < PIDS_MAX; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGKILL);
	remove_namespaces();
	if (api_path[0])
		unlink(api_path);
	_exit(128 + sig);
}

/**
 * env_cleanup() - stop every child and delete the namespaces; idempotent
 */
void env_cleanup(void)
{
	for (int i = 0; i < PIDS_MAX; i++)
		if (pids[i] > 0)
			reap(pids[i]);
	remove_namespaces();
	if (api_path[0])
		unlink(api_path);
	env_ready = false;
}

/**
 * env_init() - create the namespaces and links, move the harness into H
 *
 * Return: 0, -EPERM without root, -ENODEV without /dev/net/tun, -EIO when a
 * step failed (everything made so far is removed again).
 */
int env_init(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct rlimit rl = { 1 << 16, 1 << 16 };
	int rc = 0;

	if (geteuid() != 0)
		return -EPERM;
	if (access("/dev/net/tun", R_OK | W_OK))
		return -ENODEV;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	atexit(env_cleanup);
	/* The conns scenario holds 10,000+ sockets on each side. */
	setrlimit(RLIMIT_NOFILE, &rl);
	for (int i = 0; i < NS_COUNT; i++) {
		snprintf(ns_names[i], sizeof(ns_names[i]), "nsbench%d%c", (int)getpid(), "hkps"[i]);
		if (ip("netns add %s", ns_names[i]))
			goto fail;
		ns_made[i] = true;
		rc |= ip("-n %s link set lo up", ns_names[i]);
	}
	rc |= ip("link add nsbv0 netns %s type veth peer name nsbv1 netns %s",
		 ns_names[NS_H], ns_names[NS_K]);
	rc |= ip("-n %s addr add 198.51.100.1/28 dev nsbv0", ns_names[NS_H]);
	rc |= ip("-n %s addr add 198.51.100.2/28 dev nsbv1", ns_names[NS_K]);
	rc |= ip("-n %s link set nsbv0 up", ns_names[NS_H]);
	rc |= ip("-n %s link set nsbv1 up", ns_names[NS_K]);
	rc |= ip("-n %s tuntap add dev nsbt0 mode tap", ns_names[NS_H]);
	rc |= ip("-n %s addr add 198.51.100.17/28 dev nsbt0", ns_names[NS_H]);
	rc |= ip("-n %s link set nsbt0 up", ns_names[NS_H]);
	/* A veth pair inside H stands in for a dummy (not every kernel has
	 * the module): pasta takes the default route's link as its template. */
	rc |= ip("-n %s link add nsbd0 type veth peer name nsbd1", ns_names[NS_H]);
	rc |= ip("-n %s addr add 198.51.100.33/28 dev nsbd0", ns_names[NS_H]);
	rc |= ip("-n %s link set nsbd0 up", ns_names[NS_H]);
	rc |= ip("-n %s link set nsbd1 up", ns_names[NS_H]);
	rc |= ip("-n %s route add default via 198.51.100.34", ns_names[NS_H]);
	if (rc || enter_ns(NS_H))
		goto fail;
	/* crr's client closes first, so its side keeps every connection in
	 * TIME-WAIT for 60 s: ~15,000 after one 2 s run at 7,500/s, half the
	 * ephemeral ports, and the next run's connect()s spent their time
	 * searching for a free one (every peer, the kernel too, fell from
	 * ~7,500/s to ~745/s). Let connect() reuse a TIME-WAIT port, as
	 * benchmark clients usually do (timestamps keep it safe). */
	if (sysctl_set("net/ipv4/tcp_tw_reuse", "1"))
		goto fail;
	env_ready = true;
	return 0;
fail:
	env_cleanup();
	return -EIO;
}

/* --- sandboxes */

/* Wait for one line from @fd, at most READY_MS. */
static int read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
	size_t n = 0;

	while (n + 1 < cap) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, timeout_ms) <= 0)
			return -ETIMEDOUT;
		r = read(fd, buf + n, 1);
		if (r <= 0)
			return -EPIPE;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return 0;
}

/* Fork the services child: in @which (netstack: -1, the harness's H). */
static int start_services(struct sandbox *sb, int which)
{
	int cmd[2], reply[2];
	char line[32];
	pid_t pid;

	if (pipe2(cmd, O_CLOEXEC) || pipe2(reply, O_CLOEXEC))
		return -errno;
	pid = which >= 0 ? fork_in(which) : fork();
	if (pid == 0) {
		int st;

		if (which < 0)
			prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		close(cmd[1]);
		close(reply[0]);
		st = sb->peer == PEER_NETSTACK ?
			svc_netstack_main("nsbt0", "198.51.100.18/28", sb->base, cmd[0], reply[1]) :
			svc_kernel_main(sb->base, cmd[0], reply[1]);
		_exit(st);
	}
	close(cmd[0]);
	close(reply[1]);
	if (pid < 0) {
		close(cmd[1]);
		close(reply[0]);
		return -errno;
	}
	if (which < 0)
		track(pid);
	sb->server = pid;
	sb->cmdfd = cmd[1];
	sb->replyfd = reply[0];
	if (read_line(sb->replyfd, line, sizeof(line), READY_MS) || strcmp(line, "ready"))
		return -EIO;
	return 0;
}

static pid_t spawn_quiet(int which, char *const argv[])
{
	pid_t pid = which >= 0 ? fork_in(which) : fork();

	if (pid == 0) {
		if (which < 0)
			prctl(PR_SET_PDEATHSIG, SIGKILL);
		exec_prep(false);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (pid > 0 && which < 0)
		track(pid);
	return pid;
}

static int start_iperf_server(struct sandbox *sb, int which)
{
	char port[8];
	char *argv[] = { "iperf3", "-s", "-p", port, NULL };

	snprintf(port, sizeof(port), "%u", sb->base + SVC_IPERF);
	sb->iperf = spawn_quiet(which, argv);
	return sb->iperf > 0 ? 0 : -errno;
}

/* Until the echo service answers from H, at most READY_MS. */
static int wait_reachable(struct sandbox *sb)
{
	uint64_t end = bench_now_ns() + (uint64_t)READY_MS * 1000000u;

	while (bench_now_ns() < end) {
		struct rr_result r;

		if (load_rr(sb->addr, sb->base + SVC_ECHO, 0, 1, &r) == 0)
			return 0;
		usleep(50 * 1000);
	}
	return -ETIMEDOUT;
}

static int start_pasta(struct sandbox *sb)
{
	char netns[64], mtu[8], tcp[32], udp[8];
	/* --runas 0: as nobody (its default for root) it cannot join a
	 * namespace that root's ip netns made. */
	char *argv[] = { "pasta", "-f", "-q", "-4", "--runas", "0", "--config-net", "-I", "nsbp0",
			 "-m", mtu, "-t", tcp, "-u", udp, "-T", "none", "-U", "none",
			 "--netns", netns, NULL };

	snprintf(netns, sizeof(netns), NETNS_DIR "%.31s", ns_names[NS_P]);
	snprintf(mtu, sizeof(mtu), "%u", sb->mtu);
	snprintf(tcp, sizeof(tcp), "%u-%u", sb->base, sb->base + SVC_CONNS);
	snprintf(udp, sizeof(udp), "%u", sb->base + SVC_UDP);
	sb->stack = spawn_quiet(-1, argv);
	if (sb->stack < 0)
		return -errno;
	/* pasta configures the link; its MTU is only advertised: set it. */
	for (int i = 0; i < 100; i++) {
		if (!ip("-n %s link set nsbp0 mtu %u", ns_names[NS_P], sb->mtu))
			return 0;
		usleep(50 * 1000);
	}
	return -EIO;
}

/* One request on slirp4netns's API socket: add a port forward. */
static int slirp_forward(const char *proto, unsigned port)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char req[256], reply[256];
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = -EIO;
	ssize_t n;

	if (s < 0)
		return -errno;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", api_path);
	snprintf(req, sizeof(req),
		 "{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"%s\", "
		 "\"host_addr\": \"0.0.0.0\", \"host_port\": %u, "
		 "\"guest_addr\": \"198.51.100.100\", \"guest_port\": %u}}",
		 proto, port, port);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    write(s, req, strlen(req)) == (ssize_t)strlen(req)) {
		shutdown(s, SHUT_WR);
		n = read(s, reply, sizeof(reply) - 1);
		if (n > 0) {
			reply[n] = '\0';
			rc = strstr(reply, "error") ? -EIO : 0;
		}
	}
	close(s);
	return rc;
}

static int start_slirp(struct sandbox *sb)
{
	char netns[64], mtu[16], ready[16], line[8];
	int rfd[2], rc = 0;
	/* Not --disable-host-loopback: with it, slirp drops the guest's
	 * answers to UDP forwarded from the host's loopback. */
	char *argv[] = { "slirp4netns", "--configure", mtu, "--cidr=198.51.100.0/24",
			 "--disable-dns", "--api-socket", api_path,
			 ready, "--netns-type=path", netns, "nsbs0", NULL };

	snprintf(api_path, sizeof(api_path), "/tmp/nsbench%d.sock", (int)getpid());
	unlink(api_path);
	snprintf(netns, sizeof(netns), NETNS_DIR "%.31s", ns_names[NS_S]);
	snprintf(mtu, sizeof(mtu), "--mtu=%u", sb->mtu);
	if (pipe(rfd))
		return -errno;
	snprintf(ready, sizeof(ready), "--ready-fd=%d", rfd[1]);
	sb->stack = fork();
	if (sb->stack == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(rfd[0]);
		exec_prep(false);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(rfd[1]);
	if (sb->stack < 0) {
		close(rfd[0]);
		return -errno;
	}
	track(sb->stack);
	{
		struct pollfd p = { .fd = rfd[0], .events = POLLIN };

		if (poll(&p, 1, READY_MS) <= 0 || read(rfd[0], line, 1) != 1)
			rc = -ETIMEDOUT;
	}
	close(rfd[0]);
	for (unsigned i = SVC_IPERF; !rc && i <= SVC_CONNS; i++)
		rc = slirp_forward(i == SVC_UDP ? "udp" : "tcp", sb->base + i);
	return rc;
}

/**
 * env_sandbox_up() - start a sandbox at an MTU: its services, its iperf3
 * server, its stack; wait until the client reaches it
 * @sb: the sandbox (peer set); filled in
 * @mtu: the link MTU inside the sandbox
 *
 * Return: 0 or -errno (call env_sandbox_down() either way).
 */
int env_sandbox_up(struct sandbox *sb, unsigned mtu)
{
	int rc = 0;

	sb->name = peer_names[sb->peer];
	sb->mtu = mtu;
	sb->server = sb->iperf = sb->stack = 0;
	sb->cmdfd = sb->replyfd = -1;
	switch (sb->peer) {
	case PEER_KERNEL:
		snprintf(sb->addr, sizeof(sb->addr), "198.51.100.2");
		sb->base = 5200;
		rc |= ip("-n %s link set nsbv0 mtu %u", ns_names[NS_H], mtu);
		rc |= ip("-n %s link set nsbv1 mtu %u", ns_names[NS_K], mtu);
		if (!rc)
			rc = start_iperf_server(sb, NS_K);
		if (!rc)
			rc = start_services(sb, NS_K);
		break;
	case PEER_NETSTACK:
		snprintf(sb->addr, sizeof(sb->addr), "198.51.100.18");
		sb->base = 5200;
		rc = ip("-n %s link set nsbt0 mtu %u", ns_names[NS_H], mtu);
		if (!rc)
			rc = start_services(sb, -1);
		sb->stack = sb->server;
		sb->iperf = sb->server;
		break;
	case PEER_PASTA:
		snprintf(sb->addr, sizeof(sb->addr), "198.51.100.33");
		sb->base = 6200;
		rc = start_iperf_server(sb, NS_P);
		if (!rc)
			rc = start_services(sb, NS_P);
		if (!rc)
			rc = start_pasta(sb);
		break;
	case PEER_SLIRP:
		/* Not H's 198.51.100.33: inside slirp's 198.51.100.0/24 the
		 * guest would answer that source on-link, where nobody is.
		 * From loopback, slirp shows the guest its gateway instead. */
		snprintf(sb->addr, sizeof(sb->addr), "127.0.0.1");
		sb->base = 7200;
		rc = start_iperf_server(sb, NS_S);
		if (!rc)
			rc = start_services(sb, NS_S);
		if (!rc)
			rc = start_slirp(sb);
		break;
	default:
		return -EINVAL;
	}
	return rc ? rc : wait_reachable(sb);
}

/**
 * env_sandbox_down() - stop what env_sandbox_up() started
 * @sb: the sandbox
 */
void env_sandbox_down(struct sandbox *sb)
{
	if (sb->cmdfd >= 0)
		close(sb->cmdfd);
	if (sb->replyfd >= 0)
		close(sb->replyfd);
	sb->cmdfd = sb->replyfd = -1;
	if (sb->stack != sb->server)
		reap(sb->stack);
	if (sb->iperf != sb->server)
		reap(sb->iperf);
	reap(sb->server);
	sb->server = sb->iperf = sb->stack = 0;
	if (sb->peer == PEER_SLIRP && api_path[0])
		unlink(api_path);
}

/**
 * env_sandbox_command() - one command to the sandbox's services child
 * @sb: the sandbox
 * @cmd: the command line, without newline
 * @reply: receives the reply line
 * @cap: room in @reply
 *
 * Return: 0 when it answered "ok", else -errno.
 */
int env_sandbox_command(struct sandbox *sb, const char *cmd, char *reply, size_t cap)
{
	char line[64];
	int len = snprintf(line, sizeof(line), "%s\n", cmd), rc;

	if (write(sb->cmdfd, line, (size_t)len) != len)
		return -EPIPE;
	rc = read_line(sb->replyfd, reply, cap, 60000);
	return rc ? rc : (strcmp(reply, "ok") ? -EIO : 0);
}

static double json_double(json_object *j, const char *a, const char *b, const char *c)
{
	json_object *x, *y, *z;

	if (json_object_object_get_ex(j, a, &x) && json_object_object_get_ex(x, b, &y) &&
	    json_object_object_get_ex(y, c, &z))
		return json_object_get_double(z);
	return -1;
}

/* CPU seconds (user + system) of a process, from /proc. */
double env_cpu_seconds(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the ")" that ends the name: state is field 3, utime 14. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/**
 * env_run_iperf3() - a stock iperf3 client in H against the sandbox
 * @sb: the sandbox
 * @seconds: test length (whole seconds, at least 1)
 * @reverse: iperf3 -R: the sandbox sends
 * @gbps: receives what arrived, in Gbit/s
 * @cpu_per_gb: receives CPU seconds per GB of client, server and stack
 *
 * Return: 0 or -errno; the client is killed if it overruns by 20 s.
 */
int env_run_iperf3(struct sandbox *sb, double seconds, bool reverse, double *gbps, double *cpu_per_gb)
{
	char port[8], secs[16], out[1 << 16];
	char *argv[] = { "iperf3", "-c", sb->addr, "-p", port, "-t", secs, "-J",
			 "--connect-timeout", "3000", reverse ? "-R" : NULL, NULL };
	double cpu0 = env_cpu_seconds(sb->stack) +
		      (sb->iperf != sb->stack ? env_cpu_seconds(sb->iperf) : 0), cpu1;
	uint64_t deadline = bench_now_ns() + (uint64_t)(seconds + 20) * 1000000000u;
	struct rusage ru;
	json_object *j;
	size_t n = 0;
	int fds[2], st = 0;
	pid_t pid;

	snprintf(port, sizeof(port), "%u", sb->base + SVC_IPERF);
	snprintf(secs, sizeof(secs), "%d", seconds < 1 ? 1 : (int)seconds);
	if (pipe2(fds, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], STDOUT_FILENO);
		exec_prep(true);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		return -errno;
	}
	track(pid);
	for (;;) {
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		int64_t left = (int64_t)(deadline - bench_now_ns()) / 1000000;
		ssize_t r;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		r = read(fds[0], out + n, sizeof(out) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fds[0]);
	kill(pid, SIGKILL);
	wait4(pid, &st, 0, &ru);
	for (int i = 0; i < PIDS_MAX; i++)
		if (pids[i] == pid)
			pids[i] = 0;
	cpu1 = env_cpu_seconds(sb->stack) +
	       (sb->iperf != sb->stack ? env_cpu_seconds(sb->iperf) : 0);
	out[n] = '\0';
	j = json_tokener_parse(out);
	if (!j)
		return -EPROTO;
	*gbps = json_double(j, "end", "sum_received", "bits_per_second") / 1e9;
	if (cpu_per_gb) {
		double bytes = json_double(j, "end", "sum_received", "bytes");
		double cpu = cpu1 - cpu0 + (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
			     ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;

		*cpu_per_gb = bytes > 0 ? cpu / (bytes / 1e9) : 0;
	}
	json_object_put(j);
	return *gbps > 0 ? 0 : -EIO;
}

/**
 * env_pin() - set the CPU affinity of every thread of a process
 * @pid: the process (0: the harness)
 * @cpu: the CPU, or -1 for all of them
 *
 * Return: 0 or -errno.
 */
int env_pin(pid_t pid, int cpu)
{
	char path[64];
	cpu_set_t set;
	struct dirent *d;
	DIR *dir;

	CPU_ZERO(&set);
	if (cpu >= 0) {
		CPU_SET(cpu, &set);
	} else {
		for (long i = 0; i < sysconf(_SC_NPROCESSORS_ONLN) && i < CPU_SETSIZE; i++)
			CPU_SET(i, &set);
	}
	if (pid <= 0)
		pid = getpid();
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.')
			sched_setaffinity(atoi(d->d_name), sizeof(set), &set);
	closedir(dir);
	return 0;
}

/**
 * env_rss_kib() - a process's resident memory
 * @pid: the process
 *
 * Return: VmRSS in KiB, or -1.
 */
long env_rss_kib(pid_t pid)
{
	char path[64], line[128];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* The first line a command prints, for version labels. */
static void first_line(char *const argv[], const char *prefix, char *buf, size_t cap)
{
	char line[64] = "";
	int fds[2];
	pid_t pid;

	snprintf(buf, cap, "%sunknown", prefix);
	if (pipe2(fds, O_CLOEXEC))
		return;
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		exec_prep(true);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	if (pid > 0 && read_line(fds[0], line, sizeof(line), 5000) == 0 && line[0])
		snprintf(buf, cap, "%s%s", prefix, line);
	close(fds[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

/**
 * env_versions() - label each peer with its version
 * @sbs: PEER_COUNT sandboxes, indexed by peer
 */
void env_versions(struct sandbox *sbs)
{
	char *uname[] = { "uname", "-r", NULL };
	char *pasta[] = { "dpkg-query", "-W", "-f", "${Version}\n", "passt", NULL };
	char *slirp[] = { "slirp4netns", "--version", NULL };

	first_line(uname, "Linux ", sbs[PEER_KERNEL].version, sizeof(sbs[0].version));
	snprintf(sbs[PEER_NETSTACK].version, sizeof(sbs[0].version), "netstack %s (lwIP 2.1.3)",
		 NETSTACK_VERSION);
	first_line(pasta, "passt ", sbs[PEER_PASTA].version, sizeof(sbs[0].version));
	first_line(slirp, "", sbs[PEER_SLIRP].version, sizeof(sbs[0].version));
	for (int i = 0; i < PEER_COUNT; i++)
		sbs[i].name = peer_names[i];
}
