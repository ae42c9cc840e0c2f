/* SPDX-License-Identifier: MIT */
/*
 * test_memfile.c - the memory file through the public API: a forked child
 * creates regions of odd sizes and layouts (all zero, all data, every other
 * page, runs across chunk boundaries, pages with one non-zero byte), fills
 * them and checkpoints; the test process, fresh as restore requires,
 * restores and compares every byte. Round trips with and without zstd and
 * O_DIRECT, on io_uring and on the thread pool (and the fallback to it when
 * io_uring cannot be set up); priority (an awaited range at the end of a
 * big region arrives long before the rest, also with every CPU busy while
 * a background restore's loaders run at nice 19, which fault the region's
 * pages in from user space, not inside their reads); and every failure: pages.img
 * missing, truncated or corrupted (refused in the foreground, -EIO for the
 * affected ranges only in the background, never wrong bytes), pages.meta
 * missing, damaged or from another checkpoint. Also pages.meta's codec and
 * the API's argument checks.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <liburing.h>
#include <pthread.h>
#include <sys/resource.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#include "imgdir.h"
#include "internal.h"
#include "memfile.h"
#include "netstack.h"

#define PAGE 4096u

/* The big regions of the priority, demand-paging and failure tests, scaled
 * down under valgrind (tools/memcheck.sh), where every byte costs ~50x:
 * the orderings they check hold at any size. */
static size_t big_size(size_t bytes)
{
	return RUNNING_ON_VALGRIND ? bytes / 16 : bytes;
}

enum layout { ALL_ZERO, ALL_DATA, EVERY_OTHER, RUNS, SPARSE_BYTES, LAYOUTS };

struct region_spec {
	const char *name;
	size_t size;
	enum layout layout;
};

static char img[256];

static void make_image_path(void)
{
	imgdir_make("ns-memfile-test", img, sizeof(img));
}

/*
 * valgrind 3.19 does not know that io_uring_enter() blocks: a loader
 * waiting there keeps valgrind's one-thread-at-a-time turn and the process
 * hangs. Under valgrind (tools/memcheck.sh) the loads run on the thread
 * pool, whose preadv() memcheck follows; the io_uring loader is checked by
 * the ASan build.
 */
static enum ns_memfile_backend backend(enum ns_memfile_backend be)
{
	return RUNNING_ON_VALGRIND && be != NS_MEMFILE_MAP ? NS_MEMFILE_THREADS : be;
}

static const char *backend_name(enum ns_memfile_backend be)
{
	be = backend(be);
	return be == NS_MEMFILE_THREADS ? "threads" : be == NS_MEMFILE_MAP ? "map" : "io_uring";
}

static int restore(const struct ns_restore_opts *ro, struct ns_stack **sp, char *why, size_t len)
{
	struct ns_restore_opts o = *ro;

	o.backend = backend(o.backend);
	return ns_stack_restore(img, &o, sp, why, len);
}

static void remove_image(void)
{
	imgdir_remove();
}

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* The deterministic contents of a region: regenerate to compare. */
static void fill(uint8_t *p, size_t size, enum layout l, uint64_t seed)
{
	uint64_t x = seed | 1, run = 0;
	bool data = true;

	memset(p, 0, size);
	for (size_t off = 0; off < size; off += PAGE) {
		size_t n = size - off < PAGE ? size - off : PAGE;
		bool on;

		switch (l) {
		case ALL_ZERO:
			on = false;
			break;
		case EVERY_OTHER:
			on = (off / PAGE) % 2 == 0;
			break;
		case RUNS:
			if (run == 0) {
				data = !data;
				run = 1 + next(&x) % 40;	/* across 16-page chunks */
			}
			run--;
			on = data;
			break;
		case SPARSE_BYTES:
			if ((off / PAGE) % 3 == 0)
				p[off + next(&x) % n] = (uint8_t)(1 + next(&x) % 255);
			on = false;
			break;
		default:
			on = true;
		}
		if (!on)
			continue;
		for (size_t i = 0; i + 8 <= n; i += 8) {
			uint64_t v = next(&x);

			memcpy(p + off + i, &v, 8);
		}
	}
}

/* Fork a child that builds the regions, fills them and checkpoints. */
static void save(const struct region_spec *rs, size_t n, const struct ns_checkpoint_opts *o)
{
	pid_t pid = fork();
	int status;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct ns_stack *s;

		if (ns_stack_new(NULL, &s))
			_exit(10);
		for (size_t i = 0; i < n; i++) {
			struct ns_region *r;

			if (ns_memfile_region_create(s, rs[i].name, rs[i].size, &r))
				_exit(11);
			fill(ns_region_addr(r), rs[i].size, rs[i].layout, 1000 + i);
		}
		_exit(ns_stack_checkpoint(s, img, o) ? 12 : 0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "checkpoint child: status %d",
		  status);
}

static void check_regions(struct ns_stack *s, const struct region_spec *rs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t size = (rs[i].size + PAGE - 1) / PAGE * PAGE;
		struct ns_region *r;
		uint8_t *want;

		cr_assert_eq(ns_memfile_region_find(s, rs[i].name, &r), 0, "%s", rs[i].name);
		cr_assert_eq(ns_region_size(r), size);
		cr_assert_eq(ns_memfile_await(r, 0, size), 0);
		want = malloc(size);
		fill(want, rs[i].size, rs[i].layout, 1000 + i);
		memset(want + rs[i].size, 0, size - rs[i].size);
		cr_assert(memcmp(ns_region_addr(r), want, size) == 0, "region %s differs",
			  rs[i].name);
		free(want);
	}
}

static const struct region_spec odd[] = {
	{ "one-byte", 1, ALL_DATA },
	{ "zero", 3 * PAGE, ALL_ZERO },
	{ "data", 5 * PAGE + 17, ALL_DATA },
	{ "alt", 33 * PAGE, EVERY_OTHER },
	{ "runs", 8u << 20, RUNS },
	{ "sparse", 1u << 20, SPARSE_BYTES },
	{ "big-run", (1u << 20) + 3 * PAGE, ALL_DATA },
};
#define NODD (sizeof(odd) / sizeof(odd[0]))

/* The chunk size pages.meta of the image at img says, and that no chunk
 * is larger. */
static uint32_t saved_chunk_size(void)
{
	struct mf_index ix;
	char path[400], why[256] = "";
	uint8_t *buf;
	struct stat st;
	uint32_t size;
	FILE *f;

	snprintf(path, sizeof(path), "%s/pages.meta", img);
	cr_assert_eq(stat(path, &st), 0);
	buf = malloc((size_t)st.st_size);
	f = fopen(path, "rb");
	cr_assert(buf && f);
	cr_assert_eq(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);
	cr_assert_eq(mf_index_decode(buf, (size_t)st.st_size, &ix, why, sizeof(why)), 0, "%s", why);
	for (size_t i = 0; i < ix.nchunks; i++)
		cr_assert_leq(ix.chunks[i].len, ix.chunk_size);
	size = ix.chunk_size;
	mf_index_release(&ix);
	free(buf);
	return size;
}

static void round_trip(enum ns_compression c, bool direct, enum ns_memfile_backend be,
		       bool background)
{
	struct ns_checkpoint_opts co = { .compression = c, .direct = direct };
	struct ns_restore_opts ro = { .background = background, .direct = direct,
				      .backend = be };
	struct ns_memfile_progress p;
	struct ns_stack *s = NULL;
	char why[256] = "";
	uint64_t data = 0;

	make_image_path();
	save(odd, NODD, &co);
	cr_assert_eq(saved_chunk_size(), mf_save_chunk_size);
	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), 0, "%s", why);
	check_regions(s, odd, NODD);
	cr_assert_eq(ns_memfile_wait(s, 10000), 0);
	cr_assert_eq(ns_memfile_progress(s, &p), 0);
	cr_assert_eq(p.regions, NODD);
	cr_assert(p.done && !p.loading && p.error == 0);
	cr_assert_eq(p.loaded_bytes, p.data_bytes);
	cr_assert_eq(p.failed_bytes, 0);
	for (size_t i = 0; i < NODD; i++)
		data += odd[i].size;
	cr_assert_lt(p.data_bytes, data, "zero pages are skipped");
	cr_assert_str_eq(p.backend, backend_name(be));
	ns_stack_free(s);
	remove_image();
}

Test(memfile, round_trip_plain_uring) { round_trip(NS_COMPRESSION_NONE, false, NS_MEMFILE_IO_URING, false); }
Test(memfile, round_trip_plain_threads) { round_trip(NS_COMPRESSION_NONE, false, NS_MEMFILE_THREADS, false); }
Test(memfile, round_trip_zstd_uring) { round_trip(NS_COMPRESSION_ZSTD, false, NS_MEMFILE_IO_URING, false); }
Test(memfile, round_trip_zstd_threads_background) { round_trip(NS_COMPRESSION_ZSTD, false, NS_MEMFILE_THREADS, true); }
Test(memfile, round_trip_direct_uring_background) { round_trip(NS_COMPRESSION_NONE, true, NS_MEMFILE_IO_URING, true); }
Test(memfile, round_trip_direct_zstd_threads) { round_trip(NS_COMPRESSION_ZSTD, true, NS_MEMFILE_THREADS, false); }
Test(memfile, round_trip_plain_map) { round_trip(NS_COMPRESSION_NONE, false, NS_MEMFILE_MAP, false); }
Test(memfile, round_trip_plain_map_background) { round_trip(NS_COMPRESSION_NONE, false, NS_MEMFILE_MAP, true); }

/* Images written with other chunk sizes (older ones had 64 KiB; one chunk
 * may exceed the loader's 256 KiB reads) load too: pages.meta says which.
 * One restore per process, so one size and mode per test. */
static void round_trip_chunks(uint32_t chunk_size, enum ns_compression c,
			      enum ns_memfile_backend be, bool background)
{
	mf_save_chunk_size = chunk_size;
	round_trip(c, false, be, background);
}

Test(memfile, round_trip_4k_chunks_plain_uring)
{
	round_trip_chunks(4096, NS_COMPRESSION_NONE, NS_MEMFILE_IO_URING, false);
}

Test(memfile, round_trip_64k_chunks_zstd_threads_background)
{
	round_trip_chunks(64u << 10, NS_COMPRESSION_ZSTD, NS_MEMFILE_THREADS, true);
}

Test(memfile, round_trip_1m_chunks_plain_uring_background)
{
	round_trip_chunks(1u << 20, NS_COMPRESSION_NONE, NS_MEMFILE_IO_URING, true);
}

Test(memfile, round_trip_4k_chunks_plain_map_background)
{
	round_trip_chunks(4096, NS_COMPRESSION_NONE, NS_MEMFILE_MAP, true);
}

Test(memfile, round_trip_1m_chunks_zstd_uring)
{
	round_trip_chunks(1u << 20, NS_COMPRESSION_ZSTD, NS_MEMFILE_IO_URING, false);
}

static off_t pages_img_size(enum ns_compression c)
{
	struct stat st;
	char path[400];

	make_image_path();
	save(odd, NODD, &(struct ns_checkpoint_opts){ .compression = c });
	snprintf(path, sizeof(path), "%s/pages.img", img);
	cr_assert_eq(stat(path, &st), 0);
	remove_image();
	return st.st_size;
}

/* Random pages do not compress: zstd stores them raw rather than as frames
 * a little larger than the pages (plus padding), so the file never grows
 * past the plain one (it did, by 9% here). The zstd round trips above read
 * raw and compressed chunks back. */
Test(memfile, zstd_never_larger_than_plain)
{
	off_t plain = pages_img_size(NS_COMPRESSION_NONE), zstd = pages_img_size(NS_COMPRESSION_ZSTD);

	cr_assert_leq(zstd, plain, "zstd %lld bytes, plain %lld", (long long)zstd, (long long)plain);
}

Test(memfile, image_files_and_sizes)
{
	struct ns_checkpoint_opts co = { 0 };
	struct stat st;
	char path[400];
	uint64_t data = 0;

	make_image_path();
	save(odd, NODD, &co);
	snprintf(path, sizeof(path), "%s/pages.img", img);
	cr_assert_eq(stat(path, &st), 0);
	/* Only non-zero pages are in the file, whole pages each. */
	for (size_t i = 0; i < NODD; i++)
		data += (odd[i].size + PAGE - 1) / PAGE * PAGE;
	cr_assert_lt((uint64_t)st.st_size, data);
	cr_assert_eq(st.st_size % PAGE, 0);
	snprintf(path, sizeof(path), "%s/pages.meta", img);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	remove_image();
}

/* ------------------------------------------------------------------ */
/* Priority                                                            */
/* ------------------------------------------------------------------ */

static void priority(enum ns_memfile_backend be)
{
	const size_t size = big_size(1u << 30), end = size - (1u << 20);
	const struct region_spec big[] = { { "big", size, EVERY_OTHER } };
	struct ns_checkpoint_opts co = { 0 };
	/* One reader, small reads: loading the whole takes a while, so an
	 * await that jumped the queue shows. */
	struct ns_restore_opts ro = { .background = true, .backend = be, .queue_depth = 1,
				      .read_kib = 64 };
	struct ns_memfile_progress p;
	struct ns_stack *s = NULL;
	struct ns_region *r;
	char why[256] = "";
	uint8_t *want;

	make_image_path();
	save(big, 1, &co);
	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(ns_memfile_region_find(s, "big", &r), 0);
	cr_assert_eq(ns_memfile_await(r, end, 1u << 20), 0);
	cr_assert_eq(ns_memfile_progress(s, &p), 0);
	cr_assert_lt(p.loaded_bytes, p.data_bytes / 2,
		     "the awaited last MiB came after %llu of %llu bytes",
		     (unsigned long long)p.loaded_bytes, (unsigned long long)p.data_bytes);
	want = malloc(size);
	fill(want, size, EVERY_OTHER, 1000);
	cr_assert(memcmp((uint8_t *)ns_region_addr(r) + end, want + end, 1u << 20) == 0);
	cr_assert_eq(ns_memfile_wait(s, 60000), 0);
	cr_assert(memcmp(ns_region_addr(r), want, size) == 0);
	free(want);
	ns_stack_free(s);
	remove_image();
}

Test(memfile, priority_uring, .timeout = 120) { priority(NS_MEMFILE_IO_URING); }
Test(memfile, priority_threads, .timeout = 120) { priority(NS_MEMFILE_THREADS); }

/* Threads of this process at nice 19 (the background loaders). */
static int nice_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	cr_assert(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && getpriority(PRIO_PROCESS, (id_t)atoi(e->d_name)) == 19)
			n++;
	closedir(d);
	return n;
}

static atomic_bool spin_stop;

static void *spinner(void *arg)
{
	(void)arg;
	for (time_t end = time(NULL) + 60; !atomic_load(&spin_stop) && time(NULL) < end;)
		;
	return NULL;
}

/* A background restore's loaders run at nice 19, and with every CPU busy
 * at normal priority an awaited range still comes at once, from the urgent
 * thread, while the loader has hardly started. */
static void low_priority(enum ns_memfile_backend be)
{
	const size_t size = big_size(256u << 20), end = size - (1u << 20);
	const struct region_spec big[] = { { "big", size, EVERY_OTHER } };
	struct ns_restore_opts ro = { .background = true, .backend = be, .read_kib = 64 };
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_t spin[8];
	struct ns_memfile_progress p;
	struct ns_stack *s = NULL;
	struct ns_region *r;
	char why[256] = "";
	uint8_t *want;

	if (ncpu < 1 || ncpu > 8)
		ncpu = ncpu < 1 ? 1 : 8;
	make_image_path();
	save(big, 1, &(struct ns_checkpoint_opts){ 0 });
	want = malloc(size);
	fill(want, size, EVERY_OTHER, 1000);
	atomic_store(&spin_stop, false);
	for (long i = 0; i < ncpu; i++)
		cr_assert_eq(pthread_create(&spin[i], NULL, spinner, NULL), 0);
	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(ns_memfile_region_find(s, "big", &r), 0);
	cr_assert_eq(ns_memfile_await(r, end, 1u << 20), 0);
	cr_assert_eq(ns_memfile_progress(s, &p), 0);
	/* The loader sets its own priority once it runs: give it the time. */
	for (int i = 0; i < 1000 && nice_threads() == 0; i++)
		usleep(10000);
	cr_assert_geq(nice_threads(), 1, "no loader at nice 19");
	cr_assert_lt(p.loaded_bytes, p.data_bytes / 2, "the awaited MiB came after %llu of %llu bytes",
		     (unsigned long long)p.loaded_bytes, (unsigned long long)p.data_bytes);
	cr_assert(memcmp((uint8_t *)ns_region_addr(r) + end, want + end, 1u << 20) == 0);
	atomic_store(&spin_stop, true);
	for (long i = 0; i < ncpu; i++)
		pthread_join(spin[i], NULL);
	cr_assert_eq(ns_memfile_wait(s, 60000), 0);
	cr_assert(memcmp(ns_region_addr(r), want, size) == 0);
	ns_stack_free(s);
	remove_image();

	free(want);
	remove_image();
}

Test(memfile, background_low_priority_uring, .timeout = 180) { low_priority(NS_MEMFILE_IO_URING); }
Test(memfile, background_low_priority_threads, .timeout = 180) { low_priority(NS_MEMFILE_THREADS); }

static bool thp_always(void)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");

	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = '\0';
		fclose(f);
	}
	return strstr(buf, "[always]") != NULL;
}

/*
 * A background loader faults the region's pages in from user space before
 * it reads (loader.c prefault()): a fault taken inside read() or io_uring
 * takes the whole mm's mmap_lock, and back to back they starved the
 * serving threads' mmap()/mprotect(). Counted with a software perf counter
 * for page faults in kernel mode, inherited by the loader threads: without
 * the prefault each of the 16,384 data pages is one; with it only the
 * restore's own few remain. Skipped where perf events are not allowed
 * (perf_event_paranoid, or valgrind, whose own faults would count).
 */
static void kernel_faults(enum ns_memfile_backend be)
{
	const size_t size = 64u << 20, pages = size / PAGE;
	const struct region_spec all[] = { { "all", size, ALL_DATA } };
	struct perf_event_attr pa = { .type = PERF_TYPE_SOFTWARE, .size = sizeof(pa),
				      .config = PERF_COUNT_SW_PAGE_FAULTS, .exclude_user = 1,
				      .exclude_hv = 1, .inherit = 1 };
	struct ns_restore_opts ro = { .background = true, .backend = be };
	struct ns_stack *s = NULL;
	char why[256] = "";
	uint64_t faults = 0;
	int fd;

	if (RUNNING_ON_VALGRIND)
		cr_skip_test("valgrind's own page faults would count");
	if (thp_always())
		cr_skip_test("transparent huge pages always: 32 faults for 64 MiB either way");
	make_image_path();
	save(all, 1, &(struct ns_checkpoint_opts){ 0 });
	fd = (int)syscall(SYS_perf_event_open, &pa, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		remove_image();
		cr_skip_test("perf_event_open: %s", strerror(errno));
	}
	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(ns_memfile_wait(s, 60000), 0);
	ns_stack_free(s);	/* joins the loaders: their counts are in */
	cr_assert_eq(read(fd, &faults, sizeof(faults)), (ssize_t)sizeof(faults));
	close(fd);
	cr_assert_lt(faults, pages / 8, "%llu page faults in the kernel loading %zu pages",
		     (unsigned long long)faults, pages);
	remove_image();
}

Test(memfile, background_faults_pages_from_user_space_uring, .timeout = 60) { kernel_faults(NS_MEMFILE_IO_URING); }
Test(memfile, background_faults_pages_from_user_space_threads, .timeout = 60) { kernel_faults(NS_MEMFILE_THREADS); }

static const struct region_spec two[2];
static void flip_byte(const char *name, off_t off);

/* ------------------------------------------------------------------ */
/* Demand paging (userfaultfd)                                         */
/* ------------------------------------------------------------------ */

/* Touching memory that is not loaded yet, without ns_memfile_await(): the
 * touched pages come first and are right; zero pages read as zero; the
 * kernel touching them (a write(2) from the region) works too. */
/* valgrind runs one thread at a time, and a thread stopped in a userfaultfd
 * fault keeps that turn: the handler and the loader never run. */
static void skip_under_valgrind(void)
{
	if (RUNNING_ON_VALGRIND)
		cr_skip_test("userfaultfd faults deadlock under valgrind's serialised threads");
}

static void demand(enum ns_memfile_backend be, enum ns_compression c)
{
	const size_t size = big_size(512u << 20), end = size - (1u << 20);
	const struct region_spec big[] = { { "big", size, EVERY_OTHER } };
	struct ns_restore_opts ro = { .background = true, .demand_paging = true, .backend = be,
				      .queue_depth = 1, .read_kib = 64 };
	struct ns_memfile_progress p;
	struct ns_stack *s = NULL;
	struct ns_region *r;
	char why[256] = "";
	uint8_t *want, *mem, page[PAGE];
	int pipefd[2];

	skip_under_valgrind();
	make_image_path();
	save(big, 1, &(struct ns_checkpoint_opts){ .compression = c });
	want = malloc(size);	/* before the restore: filling it takes a while */
	fill(want, size, EVERY_OTHER, 1000);
	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(ns_memfile_region_find(s, "big", &r), 0);
	mem = ns_region_addr(r);
	/* The last MiB, touched straight away. */
	cr_assert(memcmp(mem + end, want + end, 1u << 20) == 0, "the touched MiB is wrong");
	cr_assert_eq(ns_memfile_progress(s, &p), 0);
	cr_assert(p.demand_paging);
	cr_assert_lt(p.loaded_bytes, p.data_bytes / 2, "touched after %llu of %llu bytes",
		     (unsigned long long)p.loaded_bytes, (unsigned long long)p.data_bytes);
	/* A zero page in the middle, and the kernel reading a data page. */
	cr_assert(memcmp(mem + size / 2 + PAGE, want + size / 2 + PAGE, PAGE) == 0);
	cr_assert_eq(pipe(pipefd), 0);
	cr_assert_eq(write(pipefd[1], mem + size / 4, PAGE), PAGE);
	cr_assert_eq(read(pipefd[0], page, PAGE), PAGE);
	cr_assert(memcmp(page, want + size / 4, PAGE) == 0);
	close(pipefd[0]);
	close(pipefd[1]);
	cr_assert_eq(ns_memfile_wait(s, 60000), 0);
	cr_assert(memcmp(mem, want, size) == 0);
	free(want);
	ns_stack_free(s);
	remove_image();
}

Test(memfile, demand_paging_threads, .timeout = 120) { demand(NS_MEMFILE_THREADS, NS_COMPRESSION_NONE); }
Test(memfile, demand_paging_uring_zstd, .timeout = 120) { demand(NS_MEMFILE_IO_URING, NS_COMPRESSION_ZSTD); }

Test(memfile, demand_paging_damaged_reads_zero)
{
	struct ns_restore_opts ro = { .background = true, .demand_paging = true };
	struct ns_stack *s = NULL;
	struct ns_region *a;
	char why[256] = "";
	uint8_t zero[PAGE] = { 0 };

	skip_under_valgrind();
	make_image_path();
	save(two, 2, &(struct ns_checkpoint_opts){ 0 });
	flip_byte("pages.img", 5u << 10);	/* region a, first chunk */
	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(ns_memfile_region_find(s, "a", &a), 0);
	cr_assert(memcmp(ns_region_addr(a), zero, PAGE) == 0, "a failed chunk reads as zeros");
	cr_assert_eq(ns_memfile_await(a, 0, PAGE), -EIO);
	cr_assert_eq(ns_memfile_wait(s, 10000), -EIO);
	ns_stack_free(s);
	remove_image();
}

Test(memfile, demand_paging_needs_background)
{
	struct ns_restore_opts ro = { .demand_paging = true };
	struct ns_stack *s = NULL;
	char why[256] = "";

	make_image_path();
	save(two, 2, &(struct ns_checkpoint_opts){ 0 });
	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), -EINVAL);
	cr_assert(strstr(why, "background"), "%s", why);
	remove_image();
}

/* ------------------------------------------------------------------ */
/* The fallback                                                        */
/* ------------------------------------------------------------------ */

static int uring_enosys(unsigned entries, struct io_uring *ring)
{
	(void)entries;
	(void)ring;
	return -ENOSYS;
}

Test(memfile, fallback_to_threads)
{
	struct ns_checkpoint_opts co = { 0 };
	struct ns_restore_opts ro = { .backend = NS_MEMFILE_AUTO };
	struct ns_memfile_progress p;
	struct ns_stack *s = NULL;
	char why[256] = "";

	make_image_path();
	save(odd, NODD, &co);
	mf_uring_setup = uring_enosys;
	cr_assert_eq(ns_stack_restore(img, &ro, &s, why, sizeof(why)), 0, "%s", why);
	check_regions(s, odd, NODD);
	cr_assert_eq(ns_memfile_progress(s, &p), 0);
	cr_assert_str_eq(p.backend, "threads");
	cr_assert(strstr(p.fallback, "io_uring_queue_init") && strstr(p.fallback, strerror(ENOSYS)),
		  "fallback: %s", p.fallback);
	ns_stack_free(s);
	remove_image();
}

Test(memfile, uring_demanded_but_missing)
{
	struct ns_checkpoint_opts co = { 0 };
	struct ns_restore_opts ro = { .backend = NS_MEMFILE_IO_URING };
	struct ns_stack *s = NULL;
	char why[256] = "";

	make_image_path();
	save(odd, NODD, &co);
	mf_uring_setup = uring_enosys;
	cr_assert_eq(ns_stack_restore(img, &ro, &s, why, sizeof(why)), -ENOSYS);
	cr_assert(strstr(why, "io_uring"), "%s", why);
	cr_assert_null(s);
	remove_image();
}

/* ------------------------------------------------------------------ */
/* Damaged images                                                      */
/* ------------------------------------------------------------------ */

static const struct region_spec two[2] = {
	{ "a", 4u << 20, ALL_DATA },
	{ "b", 4u << 20, ALL_DATA },
};

static void file_path(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", img, name);
}

static void truncate_pages(off_t cut)
{
	char path[400];
	struct stat st;

	file_path(path, sizeof(path), "pages.img");
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(truncate(path, st.st_size - cut), 0);
}

static void flip_byte(const char *name, off_t off)
{
	char path[400];
	uint8_t b;
	int fd;

	file_path(path, sizeof(path), name);
	fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &b, 1, off), 1);
	b ^= 0x40;
	cr_assert_eq(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

static void restore_refused_by(int err, const char *needle, bool background,
			       enum ns_memfile_backend be)
{
	struct ns_restore_opts ro = { .background = background, .backend = be };
	struct ns_stack *s = NULL;
	char why[256] = "";

	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), err, "why: %s", why);
	cr_assert(strstr(why, needle), "why: %s", why);
	cr_assert_null(s);
}

static void restore_refused(int err, const char *needle, bool background)
{
	restore_refused_by(err, needle, background, NS_MEMFILE_AUTO);
}

Test(memfile, pages_img_missing_refused)
{
	char path[400];

	make_image_path();
	save(two, 2, &(struct ns_checkpoint_opts){ 0 });
	file_path(path, sizeof(path), "pages.img");
	cr_assert_eq(unlink(path), 0);
	restore_refused(-ENOENT, "no pages.img", true);
	remove_image();
}

Test(memfile, pages_img_truncated_foreground_refused)
{
	make_image_path();
	save(two, 2, &(struct ns_checkpoint_opts){ 0 });
	truncate_pages(100);
	restore_refused(-EBADMSG, "truncated", false);
	remove_image();
}

Test(memfile, pages_img_corrupted_foreground_refused)
{
	make_image_path();
	save(two, 2, &(struct ns_checkpoint_opts){ 0 });
	flip_byte("pages.img", 5u << 20);
	restore_refused(-EIO, "CRC32C mismatch", false);
	remove_image();
}

Test(memfile, pages_img_corrupted_foreground_map_refused)
{
	make_image_path();
	save(two, 2, &(struct ns_checkpoint_opts){ 0 });
	flip_byte("pages.img", 5u << 20);
	restore_refused_by(-EIO, "CRC32C mismatch", false, NS_MEMFILE_MAP);
	remove_image();
}

Test(memfile, pages_img_corrupted_zstd_refused)
{
	char needle[64];

	snprintf(needle, sizeof(needle), "region 'a' bytes 0..%u", CKPT_CHUNK_SIZE);
	make_image_path();
	save(two, 2, &(struct ns_checkpoint_opts){ .compression = NS_COMPRESSION_ZSTD });
	flip_byte("pages.img", 100);
	restore_refused(-EIO, needle, false);
	remove_image();
}

/* Background: only the damaged ranges fail, and they read as zeros. */
static void background_damage(bool truncated, enum ns_memfile_backend be)
{
	struct ns_restore_opts ro = { .background = true, .backend = be };
	struct ns_memfile_progress p;
	struct ns_stack *s = NULL;
	struct ns_region *a, *b;
	char why[256] = "";
	uint8_t *want, zero[PAGE] = { 0 };
	const uint64_t bad = truncated ? (4u << 20) - PAGE : 5u << 10;

	make_image_path();
	save(two, 2, &(struct ns_checkpoint_opts){ 0 });
	if (truncated)
		truncate_pages(100);	/* the end of region b */
	else
		flip_byte("pages.img", (off_t)bad);	/* the first chunk of region a */
	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(ns_memfile_region_find(s, "a", &a), 0);
	cr_assert_eq(ns_memfile_region_find(s, "b", &b), 0);
	if (truncated) {
		cr_assert_eq(ns_memfile_await(b, bad, PAGE), -EIO);
		cr_assert_eq(ns_memfile_await(a, 0, 4u << 20), 0);
		cr_assert_eq(ns_memfile_await(b, 0, 1u << 20), 0);
		cr_assert(memcmp((uint8_t *)ns_region_addr(b) + bad, zero, PAGE) == 0);
	} else {
		cr_assert_eq(ns_memfile_await(a, bad, 1), -EIO);
		cr_assert_eq(ns_memfile_await(a, 1u << 20, 3u << 20), 0);
		cr_assert_eq(ns_memfile_await(b, 0, 4u << 20), 0);
		cr_assert(memcmp((uint8_t *)ns_region_addr(a), zero, PAGE) == 0);
		/* Still -EIO later: a failed range never turns good. */
		cr_assert_eq(ns_memfile_await(a, 0, PAGE), -EIO);
	}
	cr_assert_eq(ns_memfile_wait(s, 10000), -EIO);
	cr_assert_eq(ns_memfile_progress(s, &p), 0);
	cr_assert(p.done);
	cr_assert_eq(p.error, -EIO);
	cr_assert_eq(p.failed_bytes, CKPT_CHUNK_SIZE, "one chunk failed: %llu",
		     (unsigned long long)p.failed_bytes);
	cr_assert(strstr(p.why, truncated ? "truncated" : "CRC32C"), "%s", p.why);
	/* Every byte that was handed out is right. */
	want = malloc(4u << 20);
	fill(want, 4u << 20, ALL_DATA, truncated ? 1001 : 1000);
	if (truncated)
		cr_assert(memcmp(ns_region_addr(b), want, bad & ~(uint64_t)(CKPT_CHUNK_SIZE - 1)) == 0);
	else
		cr_assert(memcmp((uint8_t *)ns_region_addr(a) + CKPT_CHUNK_SIZE, want + CKPT_CHUNK_SIZE,
				 (4u << 20) - CKPT_CHUNK_SIZE) == 0);
	free(want);
	ns_stack_free(s);
	remove_image();
}

/* An I/O error while loading: the file under the loader starts failing
 * (its fd now names a directory: EISDIR). The ranges read after that fail
 * with -EIO and the reason says so; what came before stays good. */
static void io_error(enum ns_memfile_backend be)
{
	/* Full size even under valgrind: the loader must still be busy. */
	const size_t size = 256u << 20;
	const struct region_spec big[] = { { "big", size, ALL_DATA } };
	struct ns_restore_opts ro = { .background = true, .backend = be, .queue_depth = 1,
				      .read_kib = 64 };
	struct ns_memfile_progress p;
	struct ns_stack *s = NULL;
	struct ns_region *r;
	char why[256] = "";
	int dir;

	make_image_path();
	save(big, 1, &(struct ns_checkpoint_opts){ 0 });
	dir = open("/", O_RDONLY | O_DIRECTORY);
	cr_assert_geq(dir, 0);
	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(ns_memfile_region_find(s, "big", &r), 0);
	cr_assert_eq(ns_memfile_await(r, 0, 64u << 10), 0);
	cr_assert_eq(dup2(dir, s->memfile->fd), s->memfile->fd);
	cr_assert_eq(ns_memfile_await(r, size - PAGE, PAGE), -EIO);
	cr_assert_eq(ns_memfile_await(r, 0, 64u << 10), 0, "a range loaded before stays good");
	cr_assert_eq(ns_memfile_wait(s, 60000), -EIO);
	cr_assert_eq(ns_memfile_progress(s, &p), 0);
	cr_assert(strstr(p.why, "read error") && strstr(p.why, strerror(EISDIR)), "%s", p.why);
	cr_assert_gt(p.failed_bytes, 0);
	cr_assert_gt(p.loaded_bytes, 0);
	close(dir);
	ns_stack_free(s);
	remove_image();
}

Test(memfile, io_error_uring) { io_error(NS_MEMFILE_IO_URING); }
Test(memfile, io_error_threads) { io_error(NS_MEMFILE_THREADS); }

Test(memfile, background_truncated_eio_for_the_end) { background_damage(true, NS_MEMFILE_AUTO); }
Test(memfile, background_corrupted_eio_for_the_chunk) { background_damage(false, NS_MEMFILE_AUTO); }
/* Mapped: the cut end is never mapped (SIGBUS), a bad chunk's mapping
 * gives way to zeros (not the file's bytes again). */
Test(memfile, background_truncated_eio_for_the_end_map) { background_damage(true, NS_MEMFILE_MAP); }
Test(memfile, background_corrupted_eio_for_the_chunk_map) { background_damage(false, NS_MEMFILE_MAP); }

Test(memfile, pages_meta_missing_or_damaged_refused)
{
	char path[400];

	make_image_path();
	save(two, 2, &(struct ns_checkpoint_opts){ 0 });
	flip_byte("pages.meta", 40);
	restore_refused(-EBADMSG, "pages.meta: payload checksum mismatch", true);
	flip_byte("pages.meta", 40);
	file_path(path, sizeof(path), "pages.meta");
	cr_assert_eq(unlink(path), 0);
	restore_refused(-ENOENT, "no pages.meta", false);
	remove_image();
}

Test(memfile, pages_from_another_checkpoint_refused)
{
	char a[256], b[256], cmd[1000];

	make_image_path();
	save(two, 2, &(struct ns_checkpoint_opts){ 0 });
	snprintf(a, sizeof(a), "%s", img);
	snprintf(img, sizeof(img), "%.250s2", a);
	save(two, 2, &(struct ns_checkpoint_opts){ 0 });
	snprintf(b, sizeof(b), "%s", img);
	/* b's state with a's pages: the same shape, another checkpoint. */
	snprintf(cmd, sizeof(cmd), "cp %s/pages.meta %s/pages.img %s/", a, a, b);
	cr_assert_eq(system(cmd), 0);
	restore_refused(-EPROTO, "belongs to another checkpoint", false);
	remove_image();
}

/* ------------------------------------------------------------------ */
/* Mapping                                                             */
/* ------------------------------------------------------------------ */

static void pages_img_path(char *out, size_t cap)
{
	file_path(out, cap, "pages.img");
}

/* How many of this process's mappings are of pages.img. */
static int pages_img_mappings(void)
{
	char line[1024], want[420];
	FILE *f = fopen("/proc/self/maps", "re");
	int n = 0;

	cr_assert(f);
	pages_img_path(want, sizeof(want));
	while (fgets(line, sizeof(line), f))
		n += strstr(line, want) != NULL;
	fclose(f);
	return n;
}

static uint8_t *file_bytes(const char *path, size_t *lenp)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	cr_assert_geq(fd, 0);
	cr_assert_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	cr_assert_eq(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*lenp = (size_t)st.st_size;
	return buf;
}

/* Mapped, the regions are pages.img's pages until written, and a write
 * stays in the region; freeing the stack unmaps them. */
Test(memfile, map_shares_pages_img_until_written)
{
	struct ns_restore_opts ro = { .backend = NS_MEMFILE_MAP };
	struct ns_stack *s = NULL;
	struct ns_region *r;
	char why[256] = "", path[400];
	uint8_t *before, *after;
	size_t n0, n1;

	make_image_path();
	save(odd, NODD, &(struct ns_checkpoint_opts){ 0 });
	pages_img_path(path, sizeof(path));
	before = file_bytes(path, &n0);
	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), 0, "%s", why);
	check_regions(s, odd, NODD);
	cr_assert_gt(pages_img_mappings(), 0);
	for (size_t i = 0; i < NODD; i++) {
		cr_assert_eq(ns_memfile_region_find(s, odd[i].name, &r), 0);
		memset(ns_region_addr(r), 0x5a, ns_region_size(r));
	}
	after = file_bytes(path, &n1);
	cr_assert(n0 == n1 && memcmp(before, after, n0) == 0, "a write reached pages.img");
	ns_stack_free(s);
	cr_assert_eq(pages_img_mappings(), 0);
	free(before);
	free(after);
	remove_image();
}

/* A writer holding pages.img open denies the lease: no mapping; a
 * background restore that would serve before loading is refused before
 * anything is made as well. */
static void refused_without_a_lease(bool serve_first)
{
	struct ns_restore_opts ro = { .backend = NS_MEMFILE_MAP, .background = serve_first,
				      .start = serve_first };
	struct ns_stack *s = NULL;
	char why[256] = "", path[400];
	int w;

	make_image_path();
	save(odd, NODD, &(struct ns_checkpoint_opts){ 0 });
	pages_img_path(path, sizeof(path));
	w = open(path, O_RDWR);
	cr_assert_geq(w, 0);
	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), -EAGAIN, "%s", why);
	cr_assert(strstr(why, "cannot map pages.img: no read lease"), "%s", why);
	cr_assert_null(s);
	close(w);
	/* Nothing was made: a restore needs a process no stack existed in,
	 * and this one still is. */
	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), 0, "%s", why);
	ns_stack_free(s);
	remove_image();
}

Test(memfile, map_refused_without_a_lease) { refused_without_a_lease(false); }
Test(memfile, map_refused_without_a_lease_before_serving) { refused_without_a_lease(true); }

Test(memfile, map_refused_for_a_compressed_image)
{
	make_image_path();
	save(two, 2, &(struct ns_checkpoint_opts){ .compression = NS_COMPRESSION_ZSTD });
	restore_refused_by(-EOPNOTSUPP, "compressed", false, NS_MEMFILE_MAP);
	remove_image();
}

/* Whoever opens pages.img to write it waits until the stack has copied
 * every mapped page and read what it still lacked: no write shows through,
 * and the writer goes on well before the kernel's fs.lease-break-time
 * would let it. */
static void lease_break(bool background)
{
	const size_t size = big_size(256u << 20);
	const struct region_spec big[] = { { "big", size, ALL_DATA } };
	const struct region_spec *rs = background ? big : odd;
	const size_t n = background ? 1 : NODD;
	/* In the background: small reads, so the break comes while loading. */
	struct ns_restore_opts ro = { .backend = NS_MEMFILE_MAP, .background = background,
				      .queue_depth = 1, .read_kib = background ? 4 : 0 };
	struct ns_memfile_progress p;
	struct ns_stack *s = NULL;
	char why[256] = "", path[400];
	struct timespec t0, t1;
	int status = 0;
	pid_t pid;

	make_image_path();
	save(rs, n, &(struct ns_checkpoint_opts){ 0 });
	pages_img_path(path, sizeof(path));
	mf_lease_poll_ms = 1;
	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), 0, "%s", why);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		static uint8_t junk[1u << 16];
		int fd = open(path, O_WRONLY);

		memset(junk, 0xa5, sizeof(junk));
		for (off_t off = 0; fd >= 0 && off < (off_t)(size + (8u << 20)); off += sizeof(junk))
			if (pwrite(fd, junk, sizeof(junk), off) != (ssize_t)sizeof(junk))
				_exit(2);
		_exit(fd < 0 ? 1 : 0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer: status %d", status);
	cr_assert_lt(t1.tv_sec - t0.tv_sec, 30, "the writer waited for the kernel's timeout");
	check_regions(s, rs, n);
	cr_assert_eq(ns_memfile_wait(s, 10000), 0);
	cr_assert_eq(ns_memfile_progress(s, &p), 0);
	cr_assert_eq(p.error, 0, "%s", p.why);
	cr_assert_eq(p.loaded_bytes, p.data_bytes);
	ns_stack_free(s);
	remove_image();
}

Test(memfile, lease_break_copies_the_mapped_pages_first) { lease_break(false); }

/* A fs.lease-break-time too short to copy the data in is refused up
 * front. A break the stack cannot finish within it (here taken as 1 s,
 * less than the watcher's margin): the chunks copied too late may hold the
 * writer's bytes, so they fail rather than pass for loaded, and the memory
 * cannot be checkpointed as good. */
Test(memfile, lease_break_too_late_fails_the_chunks)
{
	struct ns_restore_opts ro = { .backend = NS_MEMFILE_MAP };
	struct ns_memfile_progress p;
	struct ns_stack *s = NULL;
	char why[256] = "", path[400];
	int fd;

	make_image_path();
	save(two, 2, &(struct ns_checkpoint_opts){ 0 });
	pages_img_path(path, sizeof(path));
	mf_lease_poll_ms = 1;
	mf_lease_break_s = 1;
	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), -ETIME, "%s", why);
	cr_assert(strstr(why, "fs.lease-break-time"), "%s", why);
	cr_assert_null(s);
	mf_lease_break_s = 0;
	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(ns_memfile_wait(s, 10000), 0);
	mf_lease_break_s = 1;
	fd = open(path, O_WRONLY);	/* waits for the watcher */
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(ns_memfile_wait(s, 10000), -EIO);
	cr_assert_eq(ns_memfile_progress(s, &p), 0);
	cr_assert_eq(p.failed_bytes, p.data_bytes, "failed %llu of %llu",
		     (unsigned long long)p.failed_bytes, (unsigned long long)p.data_bytes);
	cr_assert(strstr(p.why, "copied too late"), "%s", p.why);
	ns_stack_free(s);
	remove_image();
}

/* A background restore that starts the stack before its loader counts
 * once: its post-restore hooks do not run again on a later start. */
static int hook_runs;

static int count_hook(struct ns_stack *s, void *arg)
{
	(void)s;
	(void)arg;
	hook_runs++;
	return 0;
}

Test(memfile, background_start_restore_hooks_do_not_linger)
{
	struct ns_restore_opts ro = { .background = true, .start = true };
	struct ns_stack *s = NULL;
	char why[256] = "";

	make_image_path();
	save(odd, NODD, &(struct ns_checkpoint_opts){ 0 });
	cr_assert_eq(restore(&ro, &s, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(ns_stack_add_hook(s, NS_HOOK_POST_RESTORE, count_hook, NULL), 0);
	cr_assert_eq(ns_memfile_wait(s, 10000), 0);
	cr_assert_eq(ns_stack_stop(s), 0);
	cr_assert_eq(ns_stack_start(s), 0);
	cr_assert_eq(hook_runs, 0, "a post-restore hook ran on a plain restart");
	ns_stack_free(s);
	remove_image();
}
Test(memfile, lease_break_while_loading_reads_the_rest_first, .timeout = 120)
{
	lease_break(true);
}

/* ------------------------------------------------------------------ */
/* The API's checks                                                    */
/* ------------------------------------------------------------------ */

Test(memfile, api_arguments)
{
	struct ns_memfile_progress p;
	struct ns_stack *s;
	struct ns_region *r, *r2;
	char long_name[NS_REGION_NAME_MAX + 1];

	cr_assert_eq(ns_stack_new(NULL, &s), 0);
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	cr_assert_eq(ns_memfile_region_create(NULL, "m", 4096, &r), -EINVAL);
	cr_assert_eq(ns_memfile_region_create(s, "", 4096, &r), -EINVAL);
	cr_assert_eq(ns_memfile_region_create(s, NULL, 4096, &r), -EINVAL);
	cr_assert_eq(ns_memfile_region_create(s, long_name, 4096, &r), -EINVAL);
	cr_assert_eq(ns_memfile_region_create(s, "m", 0, &r), -EINVAL);
	cr_assert_eq(ns_memfile_region_create(s, "m", (1ull << 40) + 1, &r), -EINVAL);
	cr_assert_eq(ns_memfile_region_create(s, "m", 4096, NULL), -EINVAL);
	cr_assert_eq(ns_memfile_region_find(s, "m", &r), -ENOENT);
	cr_assert_eq(ns_memfile_progress(s, &p), 0);
	cr_assert(p.done && p.regions == 0);
	cr_assert_str_eq(p.backend, "none");
	cr_assert_eq(ns_memfile_region_create(s, "m", 5000, &r), 0);
	cr_assert_eq(ns_region_size(r), 8192);
	cr_assert_eq((uintptr_t)ns_region_addr(r) % 4096, 0);
	cr_assert_eq(ns_memfile_region_create(s, "m", 4096, &r2), -EEXIST);
	cr_assert_eq(ns_memfile_region_find(s, "m", &r2), 0);
	cr_assert_eq(r, r2);
	cr_assert_eq(ns_memfile_await(r, 0, 8192), 0);
	cr_assert_eq(ns_memfile_await(r, 0, 0), 0);
	cr_assert_eq(ns_memfile_await(r, 8192, 1), -EINVAL);
	cr_assert_eq(ns_memfile_await(r, 1, UINT64_MAX), -EINVAL);
	cr_assert_eq(ns_memfile_await(NULL, 0, 1), -EINVAL);
	cr_assert_eq(ns_memfile_wait(s, 0), 0);
	cr_assert_eq(ns_memfile_wait(NULL, 0), -EINVAL);
	cr_assert_eq(ns_memfile_progress(s, NULL), -EINVAL);
	for (int i = 1; i < 64; i++) {
		char name[16];

		snprintf(name, sizeof(name), "r%d", i);
		cr_assert_eq(ns_memfile_region_create(s, name, 4096, &r2), 0);
	}
	cr_assert_eq(ns_memfile_region_create(s, "one-too-many", 4096, &r2), -ENOSPC);
	cr_assert_eq(ns_memfile_progress(s, &p), 0);
	cr_assert_eq(p.regions, 64);
	cr_assert_eq(p.bytes, 8192 + 63 * 4096);
	ns_stack_free(s);
}

Test(memfile, checkpoint_bad_compression)
{
	struct ns_stack *s;

	cr_assert_eq(ns_stack_new(NULL, &s), 0);
	cr_assert_eq(ns_stack_checkpoint(s, "/tmp/never-made",
					 &(struct ns_checkpoint_opts){ .compression = 7 }),
		     -EINVAL);
	cr_assert_eq(access("/tmp/never-made", F_OK), -1);
	ns_stack_free(s);
}

/* ------------------------------------------------------------------ */
/* pages.meta's codec                                                  */
/* ------------------------------------------------------------------ */

static struct mf_chunk chunks[3] = {
	{ .region = 0, .off = 0, .len = 8192, .foff = 0, .flen = 8192, .crc = 1 },
	{ .region = 0, .off = 65536, .len = 4096, .foff = 8192, .flen = 4096, .crc = 2 },
	{ .region = 1, .off = 4096, .len = 4096, .foff = 12288, .flen = 4096, .crc = 3 },
};

static struct mf_index sample(void)
{
	struct mf_index ix = { .image_id = 42, .compression = NS_COMPRESSION_NONE,
			       .chunk_size = 65536, .file_size = 16384, .nregions = 2,
			       .nchunks = 3, .chunks = chunks };

	snprintf(ix.regions[0].name, sizeof(ix.regions[0].name), "first");
	ix.regions[0].size = 1u << 20;
	ix.regions[0].first = 0;
	ix.regions[0].n = 2;
	snprintf(ix.regions[1].name, sizeof(ix.regions[1].name), "second");
	ix.regions[1].size = 8192;
	ix.regions[1].first = 2;
	ix.regions[1].n = 1;
	return ix;
}

Test(pages_meta, round_trip)
{
	struct mf_index ix = sample(), out;
	uint8_t *buf;
	size_t len;

	cr_assert_eq(mf_index_encode(&ix, &buf, &len, NULL, 0), 0);
	cr_assert_eq(mf_index_decode(buf, len, &out, NULL, 0), 0);
	cr_assert_eq(out.image_id, 42);
	cr_assert_eq(out.nregions, 2);
	cr_assert_str_eq(out.regions[1].name, "second");
	cr_assert_eq(out.nchunks, 3);
	cr_assert(memcmp(out.chunks, chunks, sizeof(chunks)) == 0);
	/* Every truncation and every bit flip is refused, never crashes. */
	for (size_t cut = 0; cut < len; cut++) {
		struct mf_index bad;

		cr_assert_neq(mf_index_decode(buf, cut, &bad, NULL, 0), 0, "cut at %zu", cut);
	}
	for (size_t bit = 0; bit < len * 8; bit++) {
		struct mf_index bad;

		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_neq(mf_index_decode(buf, len, &bad, NULL, 0), 0, "bit %zu", bit);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	mf_index_release(&out);
	free(buf);
}

/* The writer applies the reader's rules: an invalid index is not written. */
Test(pages_meta, invalid_indexes_refused)
{
	struct mf_index ix;
	uint8_t *buf;
	size_t len;
	char why[200];
	struct mf_chunk save[3];

	memcpy(save, chunks, sizeof(save));
#define SPOIL(stmt, needle)                                                        \
	do {                                                                       \
		memcpy(chunks, save, sizeof(save));                                \
		ix = sample();                                                     \
		stmt;                                                              \
		why[0] = '\0';                                                     \
		cr_assert_eq(mf_index_encode(&ix, &buf, &len, why, sizeof(why)), -EINVAL, \
			     "%s", #stmt);                                         \
		cr_assert(strstr(why, needle), "%s: %s", #stmt, why);              \
	} while (0)
	SPOIL(ix.image_id = 0, "image id 0");
	SPOIL(ix.chunk_size = 1000, "chunk size");
	SPOIL(ix.regions[1].size = 4097, "size 4097");
	SPOIL(snprintf(ix.regions[1].name, 8, "first"), "same name");
	SPOIL(ix.regions[0].name[0] = '\0', "name of 0 bytes");
	SPOIL(chunks[1].off = 4096, "overlap");
	SPOIL(chunks[1].off = 1u << 20, "leave the region");
	SPOIL(chunks[1].len = 131072, "1..65536");
	SPOIL(chunks[0].off = 100, "page-aligned");
	SPOIL(chunks[1].foff = 4096, "overlaps the chunk before");
	SPOIL(chunks[2].flen = 8192, "8192 bytes in the file for 4096");
	SPOIL(ix.file_size = 12288, "ends after pages.img");
	memcpy(chunks, save, sizeof(save));
}
