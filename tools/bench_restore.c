/* SPDX-License-Identifier: MIT */
/*
 * bench_restore.c - the `restore` scenario of netstack-bench: restores of a
 * stack with 64 MiB, 1 GiB and 4 GiB of memory (the `run --memory` pattern,
 * about half zero pages), foreground and --background, on io_uring and on
 * the thread pool, from the page cache and with O_DIRECT; and fio reading
 * the same pages.img the same way, as the reference rate.
 *
 * Each checkpoint and each restore runs in a fresh child process (restore
 * needs one). The stack sits on an in-memory channel NIC; the peer, played
 * with the test frame toolkit, connects right after ns_stack_restore()
 * returns and sends an HTTP GET, which a thread of the restored process
 * answers on the restored listener through the public socket API.
 * "First response" is restore start to that HTTP response's arrival. The
 * load rate is the memory file's data bytes over the loader's elapsed time
 * (ns_memfile_progress()); fio's is its read bandwidth on the same file:
 * page cache: the file read once before, --invalidate=0 --mem=mmap; direct:
 * --direct=1 (cold by construction). Both use 256 KiB reads, 64 in flight.
 * "uffd" is a background restore with userfaultfd demand paging (pages go
 * through a bounce buffer and UFFDIO_COPY: one more copy).
 *
 * With --repeat N each mode restores N times, each in its own process: a
 * row then gives the medians, and the first response's worst beside its
 * median, since the target is on the tail ("under 5 ms", every time).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "frames.h"
#include "memfill.h"
#include "netstack.h"

#define SCENARIO "restore"
#define HTTP_PORT 80
#define FIRST_RESPONSE_TARGET_MS 5.0
#define RATE_TARGET 0.9
#define READ_KIB 256
#define QUEUE_DEPTH 64
#define REPEAT_MAX 100

static const uint8_t stack_mac[6] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x02 };
static const uint8_t peer_mac[6] = { 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01 };
static const char http_reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";

struct mode {
	const char *name;
	bool background, direct;
	enum ns_memfile_backend backend;
	unsigned loaders;	/* io_uring loader threads; 0: the default */
	bool demand;		/* userfaultfd demand paging */
};

static const struct mode modes[] = {
	{ .name = "fg io_uring", .backend = NS_MEMFILE_IO_URING },
	{ .name = "fg io_uring 1 thr", .backend = NS_MEMFILE_IO_URING, .loaders = 1 },
	{ .name = "fg threads", .backend = NS_MEMFILE_THREADS },
	{ .name = "bg io_uring", .background = true, .backend = NS_MEMFILE_IO_URING },
	{ .name = "bg threads", .background = true, .backend = NS_MEMFILE_THREADS },
	{ .name = "bg io_uring uffd", .background = true, .backend = NS_MEMFILE_IO_URING,
	  .demand = true },
	{ .name = "fg map", .backend = NS_MEMFILE_MAP },
	{ .name = "bg map", .background = true, .backend = NS_MEMFILE_MAP },
	{ .name = "fg io_uring direct", .direct = true, .backend = NS_MEMFILE_IO_URING },
	{ .name = "fg threads direct", .direct = true, .backend = NS_MEMFILE_THREADS },
};
#define NMODES (sizeof(modes) / sizeof(modes[0]))

static const char *backend_name(enum ns_memfile_backend be)
{
	return be == NS_MEMFILE_THREADS ? "threads" : be == NS_MEMFILE_MAP ? "map" : "io_uring";
}

struct result {
	double restore_ms;		/* ns_stack_restore() */
	double first_response_ms;	/* restore start to the HTTP response */
	double load_ms;			/* the loader's elapsed time */
	uint64_t data_bytes;
};

/* The children's stacks say nothing: their log lines would cut the table. */
static void quiet(void *arg, int level, const char *msg)
{
	(void)arg;
	(void)level;
	(void)msg;
}

static const struct ns_stack_config quiet_cfg = { .log = quiet };

static int checkpoint_child(const char *dir, uint64_t size)
{
	struct ns_nic_config cfg = { .name = "eth0" };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(HTTP_PORT) };
	struct ns_endpoint *ep;
	struct ns_region *r;
	struct ns_stack *s;
	struct ns_prefix p;
	int nic, l;

	memcpy(cfg.mac, stack_mac, 6);
	if (ns_stack_new(&quiet_cfg, &s) || ns_endpoint_channel_new(&ep))
		return -1;
	nic = ns_nic_add(s, &cfg, ep);
	ns_prefix_parse("198.51.100.2/24", &p);
	if (nic < 0 || ns_addr_add(s, nic, &p))
		return -1;
	l = ns_socket(s, AF_INET, SOCK_STREAM, 0);
	if (l != 0 || ns_bind(s, l, (struct sockaddr *)&a, sizeof(a)) || ns_listen(s, l, 16))
		return -1;
	if (ns_memfile_region_create(s, "memory", size, &r))
		return -1;
	memfill_pattern(ns_region_addr(r), ns_region_size(r));
	return ns_stack_start(s) || ns_stack_checkpoint(s, dir, NULL) ? -1 : 0;
}

/* The embedder's side: answer one HTTP request on the restored listener. */
static void *http_thread(void *arg)
{
	struct ns_stack *s = arg;
	char req[512];
	int c = ns_accept(s, 0, NULL, NULL, 0);

	if (c < 0)
		return NULL;
	if (ns_recv(s, c, req, sizeof(req), 0) > 0)
		ns_send(s, c, http_reply, sizeof(http_reply) - 1, 0);
	return NULL;
}

static int inject(struct ns_endpoint *ep, const uint8_t *buf, ssize_t n)
{
	return n > 0 ? ns_channel_inject(ep, buf, (size_t)n) : -1;
}

/* Connect, send a GET, wait for the response's bytes. */
static int http_exchange(struct ns_endpoint *ep)
{
	static const uint8_t opts[] = { 2, 4, 0x05, 0xb4 };
	static const char get[] = "GET / HTTP/1.1\r\nHost: b\r\n\r\n";
	struct frame_path path;
	struct tcp_peer peer;
	struct frame_parsed fp;
	uint8_t buf[2048];
	bool sent_get = false;
	ssize_t n;

	frame_path_init(&path, peer_mac, "198.51.100.1", stack_mac, "198.51.100.2");
	if (inject(ep, buf, frame_arp(buf, sizeof(buf), &path, FRAME_ARP_REQUEST)))
		return -1;
	tcp_peer_init(&peer, &path, 40000, HTTP_PORT, 1000);
	if (inject(ep, buf, tcp_peer_syn(&peer, buf, sizeof(buf), opts, sizeof(opts))))
		return -1;
	for (long i = 0; i < 20000000; i++) {	/* bounded: seconds at most */
		n = ns_channel_read(ep, buf, sizeof(buf));
		if (n == -EAGAIN) {
			if (i > 1000)
				usleep(5);
			continue;
		}
		if (n <= 0 || frame_parse(buf, (size_t)n, &fp) || fp.proto != IPPROTO_TCP)
			continue;
		tcp_peer_absorb(&peer, &fp);
		if (!sent_get && (fp.tcp_flags & 0x12) == 0x12) {
			if (inject(ep, buf, tcp_peer_data(&peer, buf, sizeof(buf), get, sizeof(get) - 1)))
				return -1;
			sent_get = true;
		} else if (sent_get && fp.payload_len >= 12 &&
			   memcmp(fp.payload, "HTTP/1.1 200", 12) == 0) {
			return 0;
		}
	}
	return -1;
}

static int restore_child(const char *dir, const struct mode *m, struct result *r)
{
	struct ns_restore_endpoint re = { .nic_name = "eth0" };
	struct ns_restore_opts opts = { .config = &quiet_cfg, .endpoints = &re, .nendpoints = 1,
					.start = true,
					.background = m->background, .direct = m->direct,
					.backend = m->backend,
					/* Mapping is no read: its own default (4 MiB runs). */
					.read_kib = m->backend == NS_MEMFILE_MAP ? 0 : READ_KIB,
					.loaders = m->loaders, .demand_paging = m->demand,
					/* fio's depth in the foreground; the library's
					 * own in the background, where rate is not the aim. */
					.queue_depth = m->backend == NS_MEMFILE_THREADS || m->background
						       ? 0 : QUEUE_DEPTH };
	struct ns_memfile_progress p;
	struct ns_stack *s;
	pthread_t th;
	char why[256];
	uint64_t t0;

	if (ns_endpoint_channel_new(&re.ep))
		return -1;
	t0 = bench_now_ns();
	if (ns_stack_restore(dir, &opts, &s, why, sizeof(why))) {
		fprintf(stderr, "%s: restore: %s\n", BENCH_PROG, why);
		return -1;
	}
	r->restore_ms = bench_ms_since(t0);
	if (pthread_create(&th, NULL, http_thread, s) || http_exchange(re.ep))
		return -1;
	r->first_response_ms = bench_ms_since(t0);
	pthread_join(th, NULL);
	if (ns_memfile_wait(s, 600000) || ns_memfile_progress(s, &p))
		return -1;
	r->load_ms = (double)p.elapsed_ns / 1e6;
	r->data_bytes = p.data_bytes;
	return 0;
}

/* What a child does: a checkpoint of @size bytes of memory (mode NULL),
 * or a restore in @mode. */
struct job {
	const char *dir;
	uint64_t size;
	const struct mode *mode;
};

static int job_run(void *arg, void *result)
{
	const struct job *j = arg;

	return j->mode ? restore_child(j->dir, j->mode, result) : checkpoint_child(j->dir, j->size);
}

/* fio's sequential read rate of @file, bytes per second; 0 on failure. */
static double fio_rate(const char *file, bool direct)
{
	char cmd[1024], line[4096];
	double bw = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "fio --name=seq --filename='%s' --rw=read --bs=%uk --ioengine=io_uring "
		 "--iodepth=%u %s --output-format=terse --terse-version=3 2>/dev/null",
		 file, READ_KIB, QUEUE_DEPTH,
		 direct ? "--direct=1" : "--invalidate=0 --mem=mmap");
	f = popen(cmd, "r");
	if (!f)
		return 0;
	/* terse v3: field 7 is the read bandwidth in KiB/s. */
	if (fgets(line, sizeof(line), f)) {
		char *tok = strtok(line, ";");

		for (int i = 1; tok && i < 7; i++)
			tok = strtok(NULL, ";");
		if (tok)
			bw = atof(tok) * 1024.0;
	}
	pclose(f);
	return bw;
}

/*
 * The ceiling for loading into fresh memory: one thread read()ing the file
 * (from the page cache) 256 KiB at a time into a fresh anonymous mapping,
 * which takes a page fault per 4 KiB, as the loader's reads do. fio reads
 * into one buffer it reuses, so it pays none. Bytes per second; 0 on
 * failure.
 */
static double fresh_rate(const char *file)
{
	struct stat sb;
	uint64_t t0, done = 0;
	uint8_t *mem;
	double rate = 0;
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_size == 0)
		goto out;
	mem = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		goto out;
	t0 = bench_now_ns();
	while (done < (uint64_t)sb.st_size) {
		ssize_t n = read(fd, mem + done, (size_t)sb.st_size - done < READ_KIB * 1024u
						   ? (size_t)sb.st_size - done : READ_KIB * 1024u);
		if (n <= 0)
			break;
		done += (uint64_t)n;
	}
	rate = (double)done / ((double)(bench_now_ns() - t0) / 1e9);
	munmap(mem, (size_t)sb.st_size);
out:
	if (fd >= 0)
		close(fd);
	return rate;
}

static void warm(const char *file)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "cat '%s' > /dev/null", file);
	if (system(cmd)) {
	}
}

static int usage(int code)
{
	printf("Usage: %s %s [--json] [--quick] [--sizes MiB,...] [--modes WORD] [--repeat N]\n"
	       "  --quick        64 MiB only\n"
	       "  --sizes LIST   memory sizes in MiB (default 64,1024,4096)\n"
	       "  --modes WORD   only the modes whose name contains WORD (e.g. bg, direct)\n"
	       "  --repeat N     restore N times per mode and size (1..%d, default 1): rows\n"
	       "                 give medians and the worst first response\n",
	       BENCH_PROG, SCENARIO, REPEAT_MAX);
	return code;
}

int bench_restore_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "quick", no_argument, NULL, 'q' },
		{ "sizes", required_argument, NULL, 's' },
		{ "modes", required_argument, NULL, 'm' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint64_t sizes[8] = { 64, 1024, 4096 };
	size_t nsizes = 3;
	char root[] = "/var/tmp/netstack-bench-restore-XXXXXX", dir[128], file[160], cmd[160];
	double worst_first = 0, worst_rate[NMODES];
	const char *only = NULL;
	unsigned repeat = 1, nfirst = 0, under = 0;
	const char *gap;
	bool json = false;
	FILE *table;
	int c, rc = BENCH_EXIT_OK;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'q': sizes[0] = 64; nsizes = 1; break;
		case 's': {
			char *p = optarg, *end;

			for (nsizes = 0; *p && nsizes < 8; nsizes++) {
				sizes[nsizes] = strtoull(p, &end, 10);
				if (end == p || sizes[nsizes] == 0 || sizes[nsizes] > (1u << 20))
					return bench_fail(BENCH_EXIT_USAGE, SCENARIO, "--sizes: bad list '%s'", optarg);
				p = *end == ',' ? end + 1 : end;
				if (*end && *end != ',')
					return bench_fail(BENCH_EXIT_USAGE, SCENARIO, "--sizes: bad list '%s'", optarg);
			}
			break;
		}
		case 'm':
			only = optarg;
			for (c = 0; c < (int)NMODES && !strstr(modes[c].name, only); c++)
				;
			if (c == (int)NMODES)
				return bench_fail(BENCH_EXIT_USAGE, SCENARIO, "--modes: no mode matches '%s'",
						  only);
			break;
		case 'r': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (end == optarg || *end || v == 0 || v > REPEAT_MAX)
				return bench_fail(BENCH_EXIT_USAGE, SCENARIO,
						  "--repeat: want 1..%d, not '%s'", REPEAT_MAX, optarg);
			repeat = (unsigned)v;
			break;
		}
		case 'h':
			return usage(BENCH_EXIT_OK);
		default:
			return bench_fail(BENCH_EXIT_USAGE, SCENARIO, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bench_fail(BENCH_EXIT_USAGE, SCENARIO, "unexpected argument '%s'", argv[optind]);
	/* /var/tmp: on disk (O_DIRECT needs a real file system), not tmpfs. */
	if (!mkdtemp(root))
		return bench_fail(BENCH_EXIT_RUNTIME, SCENARIO, "mkdtemp: %s", strerror(errno));
	table = bench_table_file(json);
	fprintf(table, "restore: channel NIC, one HTTP listener, N MiB of memory (about half zero\n"
		"pages); each step in a fresh process; %u KiB reads, %u in flight (io_uring),\n"
		"4 threads (pool); in the background 1 of either and the library's depth (8);\n"
		"map: 2 threads mapping 4 MiB runs (1 in the background); fio reads pages.img\n"
		"with the foreground's read size and depth\n\n",
		READ_KIB, QUEUE_DEPTH);
	for (size_t k = 0; k < NMODES; k++)
		worst_rate[k] = 1e9;
	/* With repeats, one more column: the first response's worst. */
	gap = repeat > 1 ? "          " : "";
	fprintf(table, "%8s %-19s %10s %10s%s %9s %9s %9s %6s\n", "MiB", "mode", "restore ms",
		"1st HTTP", repeat > 1 ? " 1st worst" : "", "load ms", "MiB/s", "fio MiB/s",
		"ratio");
	if (repeat > 1)
		fprintf(table, "%8s %-19s %10s %10s %9s %9s %9s %9s\n", "", "", "median", "median",
			"", "median", "median", "(fresh)");
	else
		fprintf(table, "%8s %-19s %10s %10s %9s %9s %9s\n", "", "", "", "", "", "",
			"(fresh)");
	for (size_t i = 0; i < nsizes && rc == BENCH_EXIT_OK; i++) {
		struct result ck = { 0 };
		double fio[2], fresh;

		snprintf(dir, sizeof(dir), "%s/img-%llu", root, (unsigned long long)sizes[i]);
		snprintf(file, sizeof(file), "%s/pages.img", dir);
		if (bench_in_child(job_run, &(struct job){ .dir = dir, .size = sizes[i] << 20 },
				   &ck, sizeof(ck))) {
			rc = bench_fail(BENCH_EXIT_RUNTIME, SCENARIO, "%llu MiB: checkpoint failed",
					(unsigned long long)sizes[i]);
			break;
		}
		warm(file);
		fio[0] = fio_rate(file, false);
		fio[1] = fio_rate(file, true);
		fresh = fresh_rate(file);
		for (size_t k = 0; k < NMODES; k++) {
			const struct mode *m = &modes[k];
			double restore[REPEAT_MAX], first[REPEAT_MAX], load[REPEAT_MAX],
				rates[REPEAT_MAX], ref = fio[m->direct], rate, worst,
				med_restore, med_first, med_load;
			uint64_t data = 0;

			if (only && !strstr(m->name, only))
				continue;
			for (unsigned n = 0; n < repeat; n++) {
				struct result r = { 0 };

				if (!m->direct)
					warm(file);
				if (bench_in_child(job_run, &(struct job){ .dir = dir, .mode = m },
						   &r, sizeof(r))) {
					rc = bench_fail(BENCH_EXIT_RUNTIME, SCENARIO,
							"%llu MiB %s: restore failed",
							(unsigned long long)sizes[i], m->name);
					break;
				}
				restore[n] = r.restore_ms;
				first[n] = r.first_response_ms;
				load[n] = r.load_ms;
				rates[n] = r.load_ms > 0 ? (double)r.data_bytes / (r.load_ms / 1e3) : 0;
				data = r.data_bytes;
				if (m->background) {
					nfirst++;
					under += r.first_response_ms < FIRST_RESPONSE_TARGET_MS;
				}
			}
			if (rc != BENCH_EXIT_OK)
				break;
			rate = bench_median(rates, repeat, NULL, NULL);
			med_restore = bench_median(restore, repeat, NULL, NULL);
			med_first = bench_median(first, repeat, NULL, &worst);
			med_load = bench_median(load, repeat, NULL, NULL);
			fprintf(table, "%8llu %-19s %10.2f %10.2f", (unsigned long long)sizes[i],
				m->name, med_restore, med_first);
			if (repeat > 1)
				fprintf(table, " %9.2f", worst);
			fprintf(table, " %9.1f %9.0f %9.0f %6.2f\n", med_load, rate / (1 << 20),
				ref / (1 << 20), ref > 0 ? rate / ref : 0);
			if (json)
				printf("{\"scenario\":\"restore\",\"memory_mib\":%llu,\"mode\":\"%s\","
				       "\"background\":%s,\"direct\":%s,\"backend\":\"%s\",\"runs\":%u,"
				       "\"restore_ms\":%.3f,\"first_response_ms\":%.3f,"
				       "\"first_response_worst_ms\":%.3f,\"load_ms\":%.3f,"
				       "\"data_bytes\":%llu,\"load_mib_s\":%.1f,\"fio_mib_s\":%.1f,"
				       "\"ratio_to_fio\":%.3f}\n",
				       (unsigned long long)sizes[i], m->name,
				       m->background ? "true" : "false", m->direct ? "true" : "false",
				       backend_name(m->backend), repeat,
				       med_restore, med_first, worst, med_load,
				       (unsigned long long)data, rate / (1 << 20),
				       ref / (1 << 20), ref > 0 ? rate / ref : 0);
			if (m->background && worst > worst_first)
				worst_first = worst;
			if (ref > 0 && rate / ref < worst_rate[k])
				worst_rate[k] = rate / ref;
		}
		fprintf(table, "%8llu %-19s %10s %10s%s %9s %9s %9.0f   (one read() into fresh memory)\n",
			(unsigned long long)sizes[i], "ceiling", "", "", gap, "", "", fresh / (1 << 20));
		if (json)
			printf("{\"scenario\":\"restore\",\"memory_mib\":%llu,\"mode\":\"ceiling\","
			       "\"fresh_read_mib_s\":%.1f,\"fio_mib_s\":%.1f,\"fio_direct_mib_s\":%.1f}\n",
			       (unsigned long long)sizes[i], fresh / (1 << 20), fio[0] / (1 << 20),
			       fio[1] / (1 << 20));
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd)) {
		}
	}
	if (rc == BENCH_EXIT_OK) {
		fputc('\n', table);
		if (worst_first > 0)
			fprintf(table, "%s  --background restore to first HTTP response: worst %.2f ms, "
				"%u of %u under %.0f ms (target: every one, at any size)\n",
				worst_first < FIRST_RESPONSE_TARGET_MS ? "PASS" : "MISS", worst_first,
				under, nfirst, FIRST_RESPONSE_TARGET_MS);
		/* The full rate of each foreground loader as shipped (not the
		 * one-thread row); background loaders use only spare CPU. */
		for (size_t k = 0; k < NMODES; k++)
			if (!modes[k].background && !modes[k].loaders && worst_rate[k] < 1e9)
				fprintf(table, "%s  %s: load rate vs fio, %s: worst %.2fx "
					"(target >= %.2fx)\n",
					worst_rate[k] >= RATE_TARGET ? "PASS" : "MISS", modes[k].name,
					modes[k].direct ? "O_DIRECT" : "page cache", worst_rate[k],
					RATE_TARGET);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd)) {
	}
	return rc;
}
