/* SPDX-License-Identifier: MIT */
/*
 * bench_net.c - the network scenarios of netstack-bench: stream, rr, crr,
 * udp, conns, and net (all five in one run). Each measures four sandboxes
 * side by side in one run (bench_net_env.c): the kernel over veth (the
 * reference), netstack over a TAP, pasta and slirp4netns, each serving the
 * same services; the client is always the kernel in the client namespace.
 * Runs are interleaved (run 1 of every peer, then run 2, ...) and each
 * peer's ratio to the kernel is taken within a run, pair by pair, so load
 * from other work on the machine falls on both sides of a ratio alike. It
 * owns the options, the run loop, the table, --json lines, --plot and the
 * verdicts on issue #6's targets.
 *
 * Directions are the sandbox's: "rx" is data into the sandbox (iperf3
 * client -> sandbox server), "tx" out of it (iperf3 -R).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "bench_net.h"

#define RUNS_MAX 15
#define MEAS_MAX 64
#define RR_MAX 200000ul
#define CRR_MAX 100000ul

enum sc {
	SC_STREAM = 1 << 0,
	SC_RR = 1 << 1,
	SC_CRR = 1 << 2,
	SC_UDP = 1 << 3,
	SC_CONNS = 1 << 4,
};

struct opts {
	bool json, quick;
	const char *plot;
	int runs;
	double seconds;
	unsigned conns;
	unsigned peers;		/* bit per enum peer */
};

/* One measured case of one peer; v[] per run, ratio[] to the kernel's
 * value in the same run. */
struct meas {
	const char *scenario;
	const char *direction;	/* "rx", "tx", "both" */
	const char *variant;	/* "", "pinned", "64B", ... */
	unsigned mtu;
	enum peer peer;
	const char *figure;	/* the JSON name of v */
	const char *figure2;	/* of v2, or NULL */
	bool lower_better;
	int n, nr;
	double v[RUNS_MAX], v2[RUNS_MAX], ratio[RUNS_MAX];
};

static struct meas meas[MEAS_MAX];
static int nmeas;
static struct sandbox sbs[PEER_COUNT];
static bool progress;		/* --verbose: each figure on stderr as it comes */
static int held[PEER_COUNT];	/* connections each peer held in conns */

static struct meas *meas_get(const char *scenario, const char *dir, const char *variant,
			     unsigned mtu, enum peer peer, const char *figure, const char *figure2)
{
	for (int i = 0; i < nmeas; i++) {
		struct meas *m = &meas[i];

		if (!strcmp(m->scenario, scenario) && !strcmp(m->direction, dir) &&
		    !strcmp(m->variant, variant) && m->mtu == mtu && m->peer == peer)
			return m;
	}
	if (nmeas == MEAS_MAX)
		return NULL;
	meas[nmeas] = (struct meas){ .scenario = scenario, .direction = dir, .variant = variant,
				     .mtu = mtu, .peer = peer, .figure = figure, .figure2 = figure2,
				     .lower_better = !strncmp(figure, "rtt", 3) ||
						     !strncmp(figure, "kib", 3) };
	return &meas[nmeas++];
}

/* Record one run's figures; the kernel's must come first in each run. */
static void record(const char *scenario, const char *dir, const char *variant, unsigned mtu,
		   enum peer peer, const char *figure, double v, const char *figure2, double v2)
{
	struct meas *m = meas_get(scenario, dir, variant, mtu, peer, figure, figure2), *k;

	if (progress)
		fprintf(stderr, "  %s %s %s mtu %u %s: %s %.4g\n", scenario, dir, variant, mtu,
			sbs[peer].name, figure, v);
	if (!m || m->n == RUNS_MAX)
		return;
	m->v[m->n] = v;
	m->v2[m->n] = v2;
	m->n++;
	k = meas_get(scenario, dir, variant, mtu, PEER_KERNEL, figure, figure2);
	if (k && k->n == m->n && k->v[k->n - 1] > 0)
		m->ratio[m->nr++] = v / k->v[k->n - 1];
}

static void fail_note(const struct sandbox *sb, const char *what, int rc)
{
	fprintf(stderr, "%s: %s on %s failed: %s\n", BENCH_PROG, what, sb->name, strerror(-rc));
}

/* --- the scenarios: one run of every peer */

static void run_stream(const struct opts *o, unsigned mtu)
{
	for (int rev = 0; rev < 2; rev++) {
		for (int p = 0; p < PEER_COUNT; p++) {
			double gbps = 0, cpu = 0;
			int rc;

			if (!(o->peers & (1u << p)))
				continue;
			rc = env_run_iperf3(&sbs[p], o->seconds, rev, &gbps, &cpu);
			if (rc) {
				/* Once more: a just-started iperf3 -s may not listen yet. */
				usleep(500 * 1000);
				rc = env_run_iperf3(&sbs[p], o->seconds, rev, &gbps, &cpu);
			}
			if (rc)
				fail_note(&sbs[p], "iperf3", rc);
			else
				record("stream", rev ? "tx" : "rx", "", mtu, p, "gbps", gbps,
				       "cpu_s_per_gb", cpu);
		}
	}
}

/* Pin the client, the sandbox's stack and its services to CPU 0. */
static void pin_all(struct sandbox *sb, int cpu)
{
	env_pin(0, cpu);
	if (sb->server)
		env_pin(sb->server, cpu);
	if (sb->stack && sb->stack != sb->server)
		env_pin(sb->stack, cpu);
}

static void run_rr(const struct opts *o, unsigned mtu)
{
	for (int pinned = 1; pinned >= 0; pinned--) {
		for (int p = 0; p < PEER_COUNT; p++) {
			struct rr_result r;
			int rc;

			if (!(o->peers & (1u << p)))
				continue;
			if (pinned)
				pin_all(&sbs[p], 0);
			rc = load_rr(sbs[p].addr, sbs[p].base + SVC_ECHO, o->seconds, RR_MAX, &r);
			if (pinned)
				pin_all(&sbs[p], -1);
			if (rc)
				fail_note(&sbs[p], "rr", rc);
			else
				record("rr", "both", pinned ? "pinned" : "unpinned", mtu, p,
				       "rtt_us_median", r.median_us, "rtt_us_p99", r.p99_us);
		}
	}
}

static void run_crr(const struct opts *o, unsigned mtu)
{
	for (int p = 0; p < PEER_COUNT; p++) {
		double cps = 0;
		int rc;

		if (!(o->peers & (1u << p)))
			continue;
		rc = load_crr(sbs[p].addr, sbs[p].base + SVC_ECHO, o->seconds, CRR_MAX, &cps);
		if (rc)
			fail_note(&sbs[p], "crr", rc);
		else
			record("crr", "both", "", mtu, p, "conn_per_sec", cps, NULL, 0);
	}
}

static void run_udp(const struct opts *o, unsigned mtu)
{
	static const size_t sizes[] = { 64, 1400 };
	static const char *const names[] = { "64B", "1400B" };

	for (int i = 0; i < 2; i++) {
		for (int p = 0; p < PEER_COUNT; p++) {
			double pps = 0, loss = 0;
			int rc;

			if (!(o->peers & (1u << p)))
				continue;
			rc = load_udp(sbs[p].addr, sbs[p].base + SVC_UDP, sizes[i], o->seconds, &pps,
				      &loss);
			if (rc)
				fail_note(&sbs[p], "udp", rc);
			else
				record("udp", "rx", names[i], mtu, p, "pps", pps, "loss", loss);
		}
	}
}

/* Kernel memory in slabs, the kernel peer's side of "resident memory". */
static long slab_kib(void)
{
	char line[128];
	long kib = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Slab: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static long mem_kib(const struct sandbox *sb)
{
	return sb->peer == PEER_KERNEL ? slab_kib() : env_rss_kib(sb->stack);
}

#define LISTENERS 1000

static void run_conns(const struct opts *o, unsigned mtu)
{
	int *fds = calloc(o->conns, sizeof(*fds));

	for (int p = 0; fds && p < PEER_COUNT; p++) {
		struct sandbox *sb = &sbs[p];
		double per_listener = NAN;
		char reply[32], cmd[32];
		long before, after;
		int rc;

		if (!(o->peers & (1u << p)))
			continue;
		before = mem_kib(sb);
		rc = load_conns_open(sb->addr, sb->base + SVC_CONNS, o->conns, fds);
		if (rc < 0) {
			fail_note(sb, "conns", rc);
			continue;
		}
		if ((unsigned)rc < o->conns)
			fprintf(stderr, "%s: conns: %s held %d of %u connections\n", BENCH_PROG,
				sb->name, rc, o->conns);
		usleep(300 * 1000);	/* the holder accepts the last ones */
		after = mem_kib(sb);
		load_conns_close(fds, (unsigned)rc);
		/* Listeners live in the sandbox's kernel for pasta and slirp:
		 * their own memory does not change, so there is no figure. */
		if (p == PEER_KERNEL || p == PEER_NETSTACK) {
			long l0 = mem_kib(sb), l1;

			snprintf(cmd, sizeof(cmd), "listen %d", LISTENERS);
			if (env_sandbox_command(sb, cmd, reply, sizeof(reply)) == 0) {
				l1 = mem_kib(sb);
				per_listener = (double)(l1 - l0) / LISTENERS;
			}
		}
		record("conns", "rx", "", mtu, p, "kib_per_conn", (double)(after - before) / rc,
		       "kib_per_listener", per_listener);
		held[p] = rc;
	}
	free(fds);
}

/* --- reporting */

static void json_num(FILE *f, const char *name, double v)
{
	if (isnan(v))
		fprintf(f, ",\"%s\":null", name);
	else
		fprintf(f, ",\"%s\":%.6g", name, v);
}

static void print_json(void)
{
	for (int i = 0; i < nmeas; i++) {
		struct meas *m = &meas[i];
		double lo, hi, v = bench_median(m->v, (size_t)m->n, &lo, &hi);

		if (!m->n)
			continue;
		printf("{\"scenario\":\"%s\",\"peer\":\"%s\",\"version\":\"%s\",\"direction\":\"%s\","
		       "\"variant\":\"%s\",\"mtu\":%u,\"runs\":%d",
		       m->scenario, sbs[m->peer].name, sbs[m->peer].version, m->direction,
		       m->variant, m->mtu, m->n);
		json_num(stdout, m->figure, v);
		fprintf(stdout, ",\"%s_min\":%.6g,\"%s_max\":%.6g", m->figure, lo, m->figure, hi);
		if (m->figure2)
			json_num(stdout, m->figure2, bench_median(m->v2, (size_t)m->n, NULL, NULL));
		if (!strcmp(m->scenario, "conns"))
			printf(",\"conns\":%d", held[m->peer]);
		json_num(stdout, "ratio_to_kernel", bench_median(m->ratio, (size_t)m->nr, NULL, NULL));
		printf("}\n");
	}
	fflush(stdout);
}

static void print_table(FILE *f)
{
	const char *last = "";

	fprintf(f, "%-7s %-4s %-8s %5s  %-12s %14s %21s %10s  %s\n", "scen", "dir", "variant",
		"mtu", "peer", "median", "[min - max]", "vs kernel", "second figure");
	for (int i = 0; i < nmeas; i++) {
		struct meas *m = &meas[i];
		double lo, hi, v = bench_median(m->v, (size_t)m->n, &lo, &hi);
		double r = bench_median(m->ratio, (size_t)m->nr, NULL, NULL);
		char second[48] = "";

		if (strcmp(last, m->scenario))
			fprintf(f, "\n");
		last = m->scenario;
		if (m->figure2)
			snprintf(second, sizeof(second), "%s %.3g", m->figure2,
				 bench_median(m->v2, (size_t)m->n, NULL, NULL));
		if (!m->n) {
			fprintf(f, "%-7s %-4s %-8s %5u  %-12s %14s\n", m->scenario, m->direction,
				m->variant, m->mtu, sbs[m->peer].name, "failed");
			continue;
		}
		fprintf(f, "%-7s %-4s %-8s %5u  %-12s %9.4g %-4s [%7.4g - %7.4g] %9.3gx  %s\n",
			m->scenario, m->direction, m->variant, m->mtu, sbs[m->peer].name, v,
			m->figure[0] == 'g' ? "Gb/s" : m->figure[0] == 'r' ? "us" :
			m->figure[0] == 'c' ? "c/s" : m->figure[0] == 'p' ? "pps" : "KiB",
			lo, hi, r, second);
	}
	fprintf(f, "\npeers:");
	for (int p = 0; p < PEER_COUNT; p++)
		fprintf(f, " %s=\"%s\"", sbs[p].name, sbs[p].version);
	fprintf(f, "\n");
}

static double ratio_of(const char *sc, const char *dir, const char *variant, unsigned mtu,
		       enum peer p)
{
	for (int i = 0; i < nmeas; i++)
		if (!strcmp(meas[i].scenario, sc) && !strcmp(meas[i].direction, dir) &&
		    !strcmp(meas[i].variant, variant) && meas[i].mtu == mtu && meas[i].peer == p)
			return bench_median(meas[i].ratio, (size_t)meas[i].nr, NULL, NULL);
	return NAN;
}

static double value_of(const char *sc, const char *variant, enum peer p)
{
	for (int i = 0; i < nmeas; i++)
		if (!strcmp(meas[i].scenario, sc) && !strcmp(meas[i].variant, variant) &&
		    meas[i].peer == p)
			return bench_median(meas[i].v, (size_t)meas[i].n, NULL, NULL);
	return NAN;
}

/* One PASS/MISS line; NaN (not measured) is a MISS. */
static void verdict(FILE *f, bool ok, double got, const char *fmt, ...)
{
	va_list ap;

	fprintf(f, "%s ", !isnan(got) && ok ? "PASS" : "MISS");
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fprintf(f, "\n");
}

static void print_targets(FILE *f, unsigned sc)
{
	static const char *const dirs[] = { "rx", "tx" };

	fprintf(f, "\n");
	for (int d = 0; sc & SC_STREAM && d < 2; d++) {
		double r65 = ratio_of("stream", dirs[d], "", 65520, PEER_NETSTACK);
		double r15 = ratio_of("stream", dirs[d], "", 1500, PEER_NETSTACK);

		verdict(f, r65 >= 0.8, r65, "stream %s mtu 65520: netstack %.2fx kernel (target >= 0.8x)",
			dirs[d], r65);
		verdict(f, r15 >= 0.6, r15, "stream %s mtu 1500: netstack %.2fx kernel (target >= 0.6x)",
			dirs[d], r15);
		for (int p = PEER_PASTA; p <= PEER_SLIRP; p++) {
			double x = r65 / ratio_of("stream", dirs[d], "", 65520, p);

			verdict(f, x >= 3, x, "stream %s mtu 65520: netstack %.2fx %s (target >= 3x)",
				dirs[d], x, sbs[p].name);
		}
	}
	if (sc & SC_RR) {
		double r = ratio_of("rr", "both", "pinned", 65520, PEER_NETSTACK);

		verdict(f, r <= 1.5, r, "rr pinned: netstack round trip %.2fx kernel's (target <= 1.5x)",
			r);
	}
	if (sc & SC_CONNS) {
		double kib = value_of("conns", "", PEER_NETSTACK);

		verdict(f, kib <= 4 && held[PEER_NETSTACK] >= 10000, kib,
			"conns: netstack held %d, %.2f KiB per idle connection "
			"(target: 10,000 held, <= 4 KiB each)", held[PEER_NETSTACK], kib);
	}
}

/* A clustered bar chart of every peer's ratio to the kernel, per case. */
static int plot(const char *png)
{
	char data[] = "/tmp/nsbench-plotXXXXXX";
	int fd = mkstemp(data), rc;
	FILE *f, *g;

	if (fd < 0 || !(f = fdopen(fd, "w")))
		return -errno;
	fprintf(f, "case netstack pasta slirp4netns\n");
	for (int i = 0; i < nmeas; i++) {
		struct meas *m = &meas[i];

		if (m->peer != PEER_KERNEL)
			continue;
		fprintf(f, "\"%s %s%s%s %u\"", m->scenario, m->direction, m->variant[0] ? " " : "",
			m->variant, m->mtu);
		for (int p = PEER_NETSTACK; p < PEER_COUNT; p++) {
			double r = ratio_of(m->scenario, m->direction, m->variant, m->mtu, p);

			fprintf(f, isnan(r) ? " 0" : " %.4g", r);
		}
		fprintf(f, "\n");
	}
	fclose(f);
	g = popen("gnuplot", "w");
	if (!g) {
		unlink(data);
		return -errno;
	}
	fprintf(g, "set terminal png size 1200,600\nset output '%s'\n"
		   "set title 'netstack-bench: each peer relative to kernel<->kernel over veth (1.0)'\n"
		   "set style data histograms\nset style histogram clustered gap 1\n"
		   "set style fill solid border -1\nset xtics rotate by -30\nset key top left\n"
		   "set ylabel 'ratio to kernel (rtt, KiB: lower is better)'\nset grid ytics\n"
		   "plot '%s' using 2:xtic(1) title columnheader, '' using 3 title columnheader, "
		   "'' using 4 title columnheader\n", png, data);
	rc = pclose(g);
	unlink(data);
	return rc == 0 ? 0 : -EIO;
}

/* --- the run */

static int with_sandboxes(const struct opts *o, unsigned mtu, unsigned sc)
{
	int rc = 0;

	for (int p = 0; p < PEER_COUNT; p++) {
		if (!(o->peers & (1u << p)))
			continue;
		rc = env_sandbox_up(&sbs[p], mtu);
		if (rc) {
			fail_note(&sbs[p], "start", rc);
			goto down;
		}
	}
	for (int run = 0; run < o->runs; run++) {
		if (sc & SC_STREAM)
			run_stream(o, mtu);
		if (sc & SC_RR)
			run_rr(o, mtu);
		if (sc & SC_CRR)
			run_crr(o, mtu);
		if (sc & SC_UDP)
			run_udp(o, mtu);
	}
	/* Once: its figures barely vary. */
	if (sc & SC_CONNS)
		run_conns(o, mtu);
down:
	for (int p = 0; p < PEER_COUNT; p++)
		if (o->peers & (1u << p))
			env_sandbox_down(&sbs[p]);
	return rc;
}

static void usage(FILE *f, const char *sc)
{
	fprintf(f,
		"Usage: %s %s [--json] [--quick] [--plot FILE.png] [--runs N] [--time SECONDS]\n"
		"       [--conns N] [--peers kernel,netstack,pasta,slirp4netns] [--verbose]\n"
		"Needs root and /dev/net/tun; works in namespaces it creates and deletes.\n",
		BENCH_PROG, sc);
}

static int parse_peers(const char *arg, unsigned *peers)
{
	char buf[128], *save = NULL;

	*peers = 1u << PEER_KERNEL;	/* always: every ratio needs it */
	snprintf(buf, sizeof(buf), "%s", arg);
	for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		int p;

		for (p = 0; p < PEER_COUNT; p++)
			if (!strcmp(w, (const char *[]){ "kernel", "netstack", "pasta", "slirp4netns" }[p]))
				break;
		if (p == PEER_COUNT)
			return -EINVAL;
		*peers |= 1u << p;
	}
	return 0;
}

/**
 * bench_net_main() - the stream, rr, crr, udp, conns and net scenarios
 * @argc: argument count, argv[0] being the scenario's name
 * @argv: the arguments
 *
 * Return: a BENCH_EXIT_* code; 77 when root or /dev/net/tun is missing
 * (the ctest skip code).
 */
int bench_net_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },	{ "quick", no_argument, NULL, 'q' },
		{ "plot", required_argument, NULL, 'p' }, { "runs", required_argument, NULL, 'r' },
		{ "time", required_argument, NULL, 't' }, { "conns", required_argument, NULL, 'c' },
		{ "peers", required_argument, NULL, 'P' }, { "help", no_argument, NULL, 'h' },
		{ "verbose", no_argument, NULL, 'v' },
		{ 0 },
	};
	const char *name = argv[0];
	struct opts o = { .runs = 3, .seconds = 3, .conns = 10000, .peers = (1u << PEER_COUNT) - 1 };
	bool runs_set = false, time_set = false, conns_set = false;
	unsigned sc;
	int c, rc;
	FILE *tf;

	if (!strcmp(name, "stream"))
		sc = SC_STREAM;
	else if (!strcmp(name, "rr"))
		sc = SC_RR;
	else if (!strcmp(name, "crr"))
		sc = SC_CRR;
	else if (!strcmp(name, "udp"))
		sc = SC_UDP;
	else if (!strcmp(name, "conns"))
		sc = SC_CONNS;
	else
		sc = SC_STREAM | SC_RR | SC_CRR | SC_UDP | SC_CONNS;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o.json = true;
			break;
		case 'q':
			o.quick = true;
			break;
		case 'p':
			o.plot = optarg;
			break;
		case 'r':
			o.runs = atoi(optarg);
			runs_set = true;
			if (o.runs < 1 || o.runs > RUNS_MAX)
				return bench_fail(BENCH_EXIT_USAGE, name, "--runs: 1 to %d", RUNS_MAX);
			break;
		case 't':
			o.seconds = atof(optarg);
			time_set = true;
			if (!(o.seconds >= 1 && o.seconds <= 600))
				return bench_fail(BENCH_EXIT_USAGE, name, "--time: 1 to 600 seconds");
			break;
		case 'c':
			o.conns = (unsigned)atoi(optarg);
			conns_set = true;
			if (o.conns < 1 || o.conns > 30000)
				return bench_fail(BENCH_EXIT_USAGE, name, "--conns: 1 to 30000");
			break;
		case 'P':
			if (parse_peers(optarg, &o.peers))
				return bench_fail(BENCH_EXIT_USAGE, name, "--peers: unknown peer in '%s'",
						  optarg);
			break;
		case 'v':
			progress = true;
			break;
		case 'h':
			usage(stdout, name);
			return BENCH_EXIT_OK;
		default:
			return bench_fail(BENCH_EXIT_USAGE, name, "bad option (try --help)");
		}
	}
	if (optind < argc)
		return bench_fail(BENCH_EXIT_USAGE, name, "unexpected argument '%s'", argv[optind]);
	if (o.quick) {
		if (!runs_set)
			o.runs = 1;
		if (!time_set)
			o.seconds = 1;
		if (!conns_set)
			o.conns = 500;
	}
	rc = env_init();
	if (rc == -EPERM || rc == -ENODEV) {
		fprintf(stderr, "%s: %s: skipped: needs root and /dev/net/tun\n", BENCH_PROG, name);
		return 77;
	}
	if (rc)
		return bench_fail(BENCH_EXIT_RUNTIME, name, "setting up namespaces: %s", strerror(-rc));
	env_versions(sbs);
	for (int p = 0; p < PEER_COUNT; p++)
		sbs[p].peer = p;
	setvbuf(stdout, NULL, _IOLBF, 0);
	tf = bench_table_file(o.json);
	fprintf(tf, "%s %s: %d run(s) of %.0f s, peers measured in turn within each run\n",
		BENCH_PROG, name, o.runs, o.seconds);
	rc = 0;
	if (sc & SC_STREAM)
		rc |= with_sandboxes(&o, 1500, SC_STREAM);
	if (sc & ~SC_CONNS)
		rc |= with_sandboxes(&o, 65520, sc & ~SC_CONNS);
	/* Fresh sandboxes: after a UDP flood slirp4netns takes a while to
	 * catch up, and the listeners conns leaves behind would slow crr. */
	if (sc & SC_CONNS)
		rc |= with_sandboxes(&o, 65520, SC_CONNS);
	env_cleanup();
	if (o.json)
		print_json();
	print_table(tf);
	print_targets(tf, sc);
	if (o.plot && plot(o.plot))
		fprintf(stderr, "%s: %s: gnuplot failed to draw %s\n", BENCH_PROG, name, o.plot);
	return rc ? BENCH_EXIT_RUNTIME : BENCH_EXIT_OK;
}
