/* SPDX-License-Identifier: MIT */
/*
 * loader.c - loading a restored memory file: the chunks of pages.img go
 * into their regions with many reads in flight, awaited ranges first and
 * the rest in file order, consecutive chunks merged into one readv()
 * straight into the region (no bounce buffer unless compressed). Three
 * backends share the scheduling (pick()) and the checking (finish()): one
 * thread driving an io_uring; a pool of threads doing preadv() where
 * io_uring cannot be set up (ENOSYS, EPERM, a kernel with it disabled);
 * and, when asked for, the same pool mapping an uncompressed pages.img
 * into the regions instead of copying it ("Mapping").
 * In a background restore the loaders run at nice 19 in file order
 * and one more thread, at normal priority, reads only awaited chunks.
 * Every chunk's CRC32C is checked after it lands and a chunk that fails
 * (short read, I/O error, CRC, bad zstd frame) is zeroed again and
 * reported: -EIO to its awaiters, the first reason in the progress. The
 * API calls (await, wait, progress) are here too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "clock.h"
#include "internal.h"
#include "memfile.h"

#define DEFAULT_QD	64u
/* In the background, fewer: buffered reads from the page cache are copied
 * inside io_uring_enter(), 64 x 256 KiB = 16 MiB into fresh memory with
 * the CPU held (preempt=none kernels switch at a tick), while the stack
 * answers its first requests. 10 runs each at 4 GiB: first response
 * under 5 ms in 10 of 10 with 8 (median 2.0 ms) against 9 of 10 with 64
 * (median 2.6), the load rate the same (~2 GB/s). */
#define BACKGROUND_QD	8u
#define DEFAULT_THREADS	4u	/* 2 CPUs here: more only compete with serving */
#define MAX_QD		1024u
#define MAX_THREADS	64u
#define DEFAULT_READ	(256u << 10)
#define MAX_READ	(16u << 20)
#define MAX_IOV		64
#define WAKE_TAG	UINT64_MAX
#define URING_LOADERS	2
#define LOADER_NICE	19

static int uring_setup_default(unsigned entries, struct io_uring *ring)
{
	return io_uring_queue_init(entries, ring, 0);
}

int (*mf_uring_setup)(unsigned entries, struct io_uring *ring) = uring_setup_default;

/* Wake the io_uring loader; a failed write means the counter is non-zero
 * already, which wakes it as well. */
static void wake(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
		return;
}

/*
 * A background restore serves while pages load, so its loaders run at nice
 * 19: any ordinary thread that wakes (the dispatcher, the embedder's) gets
 * the CPU first. Not SCHED_IDLE, though it yields even more: a loader is
 * often in the kernel holding a lock a serving thread may want (its page
 * faults, the page cache), and under load an idle-class holder waits
 * longest; one first answer took 220 ms that way while two other builds
 * kept both CPUs busy. What an embedder waits for does not wait behind them
 * either: awaited chunks go to one thread at normal priority
 * (urgent_main()). Foreground loading has nothing to yield to.
 */
static void loader_priority(const struct ns_memfile *mf)
{
	if (mf->background)
		setpriority(PRIO_PROCESS, (id_t)gettid(), LOADER_NICE);
}

static uint64_t align_up(uint64_t v)
{
	return (v + CKPT_PAGE - 1) & ~(uint64_t)(CKPT_PAGE - 1);
}

/* One read: chunks [first, first + n), into their regions or a bounce. */
struct read_req {
	size_t first, n;
	struct iovec iov[MAX_IOV];
	int niov;
	uint8_t *bounce;	/* compressed chunks (and all with userfaultfd) land here */
	uint8_t *stage;		/* userfaultfd + zstd: a chunk decompressed, checked */
	size_t want;		/* bytes asked for */
	uint64_t foff;
};

/* ------------------------------------------------------------------ */
/* Scheduling and checking, shared by both backends                    */
/* ------------------------------------------------------------------ */

/* Which chunks a loader thread takes: a foreground loader both kinds; in
 * the background the low-priority loaders go in file order and the urgent
 * thread takes only awaited chunks. */
enum pick_from { PICK_ANY, PICK_ORDER, PICK_AWAITED };

/* The next read: the top awaited chunk, else the next in file order, plus
 * the pending chunks right after it in the file (uncompressed only, up to
 * read_max). Marks them in flight. mf->mu held. */
static bool pick(struct ns_memfile *mf, enum pick_from from, size_t *firstp, size_t *np)
{
	size_t c = SIZE_MAX, end;
	uint64_t bytes;

	while (from != PICK_ORDER && mf->nprio) {
		size_t k = mf->prio[--mf->nprio];

		if (mf->chunks[k].state == MF_PENDING) {
			c = k;
			break;
		}
	}
	if (c == SIZE_MAX && from == PICK_AWAITED)
		return false;
	if (c == SIZE_MAX) {
		while (mf->cursor < mf->nchunks && mf->chunks[mf->cursor].state != MF_PENDING)
			mf->cursor++;
		if (mf->cursor == mf->nchunks)
			return false;
		c = mf->cursor;
	}
	end = c + 1;
	bytes = mf->chunks[c].flen;
	if (mf->compression == NS_COMPRESSION_NONE)
		while (end < mf->nchunks && end - c < MAX_IOV &&
		       mf->chunks[end].state == MF_PENDING &&
		       mf->chunks[end - 1].foff + mf->chunks[end - 1].flen == mf->chunks[end].foff &&
		       bytes + mf->chunks[end].flen <= mf->read_max)
			bytes += mf->chunks[end++].flen;
	for (size_t k = c; k < end; k++)
		mf->chunks[k].state = MF_INFLIGHT;
	mf->inflight++;
	*firstp = c;
	*np = end - c;
	return true;
}

static enum pick_from pick_for(const struct ns_memfile *mf)
{
	return mf->background ? PICK_ORDER : PICK_ANY;
}

static uint8_t *chunk_addr(const struct ns_memfile *mf, const struct mf_chunk *c)
{
	return mf->regions[c->region]->addr + c->off;
}

static void req_build(const struct ns_memfile *mf, struct read_req *rq, size_t first, size_t n)
{
	const struct mf_chunk *c = &mf->chunks[first];

	rq->first = first;
	rq->n = n;
	rq->foff = c->foff;
	if (mf->compression == NS_COMPRESSION_ZSTD) {
		rq->want = mf->direct ? align_up(c->flen) : c->flen;
		rq->iov[0] = (struct iovec){ .iov_base = rq->bounce, .iov_len = rq->want };
		rq->niov = 1;
		return;
	}
	rq->want = 0;
	for (size_t k = 0; k < n; k++) {
		c = &mf->chunks[first + k];
		rq->iov[k] = (struct iovec){ .iov_base = chunk_addr(mf, c), .iov_len = c->len };
		rq->want += c->len;
	}
	rq->niov = (int)n;
	if (mf->uffd >= 0) {
		/* Demand paging: a page appears only whole and checked, through
		 * UFFDIO_COPY; the read cannot go into the region itself. */
		rq->iov[0] = (struct iovec){ .iov_base = rq->bounce, .iov_len = rq->want };
		rq->niov = 1;
	}
}

/*
 * Fault in the region pages @rq reads into, from user space, before the
 * read. A page fault taken inside read() or io_uring (copying to user
 * memory, or pinning it for O_DIRECT) takes the whole mm's mmap_lock,
 * one fault at a time, where a fault from user space takes only its
 * VMA's lock. A loader faulting 4 KiB pages in the kernel back to back
 * starved any mmap(), mprotect() or munmap() of the serving threads
 * (glibc making a thread's malloc arena, a thread's stack) until the
 * rwsem handed the lock over a tick later: sched_switch traces of slow
 * first responses show the answering thread in D state in mprotect() for
 * 2.8 ms while the nice-19 loader faulted in copy_page_to_iter(). The
 * store cannot lose data: the read that follows overwrites every byte,
 * and nothing reads a chunk before it is loaded. Not for a mapping
 * read (the caller knows; mf->map may change under the lock), and for
 * background restores only: in the foreground nothing serves yet, and
 * faults taken in the kernel cost less (1 GiB, 2 x 3 runs with
 * prefaulting: io_uring 0.53x fio -> 0.48x, O_DIRECT 1.07x -> 0.81x).
 */
static void prefault(const struct ns_memfile *mf, const struct read_req *rq)
{
	if (!mf->background || mf->uffd >= 0 || mf->compression == NS_COMPRESSION_ZSTD)
		return;	/* nothing serves yet, or read into a bounce buffer */
	for (int k = 0; k < rq->niov; k++)
		for (size_t o = 0; o < rq->iov[k].iov_len; o += CKPT_PAGE)
			((volatile uint8_t *)rq->iov[k].iov_base)[o] = 0;
}

/* The buffers a read slot needs in this memfile's mode. Return: 0, -ENOMEM. */
static int req_alloc(const struct ns_memfile *mf, struct read_req *rq)
{
	size_t bounce = 0;

	if (mf->compression == NS_COMPRESSION_ZSTD)
		bounce = align_up(ZSTD_compressBound(mf->chunk_size));
	if (mf->uffd >= 0 && mf->read_max > bounce)
		bounce = mf->read_max;
	/* Aligned, so that O_DIRECT can read into it. */
	if (bounce && posix_memalign((void **)&rq->bounce, CKPT_PAGE, bounce))
		return -ENOMEM;
	if (mf->uffd >= 0 && mf->compression == NS_COMPRESSION_ZSTD &&
	    posix_memalign((void **)&rq->stage, CKPT_PAGE, mf->chunk_size))
		return -ENOMEM;
	return 0;
}

static void req_free(struct read_req *rq)
{
	free(rq->bounce);
	free(rq->stage);
	rq->bounce = rq->stage = NULL;
}

/* Read what is left of @rq after @done bytes, synchronously. Return: the
 * bytes read in all (short at the end of the file), or -errno. */
static ssize_t read_rest(int fd, struct read_req *rq, size_t done)
{
	struct iovec *iov = rq->iov;
	int n = rq->niov;

	mf_iov_advance(&iov, &n, done);
	while (n > 0) {
		ssize_t r = preadv(fd, iov, n, (off_t)(rq->foff + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return done ? (ssize_t)done : -errno;
		if (r == 0)
			break;
		done += (size_t)r;
		mf_iov_advance(&iov, &n, (size_t)r);
	}
	return (ssize_t)done;
}

/* Check one chunk of a read that brought @got bytes: 0 or a reason. On
 * success *@bytesp is where its uncompressed bytes are (in the region, or
 * with userfaultfd in the bounce or stage buffer, to be installed). */
static const char *chunk_check(const struct ns_memfile *mf, const struct read_req *rq,
			       const struct mf_chunk *c, uint64_t got, const uint8_t **bytesp)
{
	uint8_t *dst = mf->uffd >= 0 ? rq->stage : chunk_addr(mf, c);

	if (mf->compression == NS_COMPRESSION_ZSTD) {
		size_t z;

		if (got < c->flen)
			return "short read: pages.img ends early (truncated)";
		if (c->flen == c->len) {	/* stored raw: it did not compress */
			if (mf->uffd >= 0)
				dst = rq->bounce;
			else
				memcpy(dst, rq->bounce, c->len);
		} else {
			z = ZSTD_decompress(dst, c->len, rq->bounce, c->flen);
			if (ZSTD_isError(z) || z != c->len)
				return "the zstd frame does not decompress to the chunk (damaged)";
		}
	} else if (c->foff + c->len > rq->foff + got) {
		return "short read: pages.img ends early (truncated)";
	} else if (mf->uffd >= 0) {
		dst = rq->bounce + (c->foff - rq->foff);
	}
	if (ckpt_crc32c(dst, c->len) != c->crc)
		return "CRC32C mismatch (damaged)";
	*bytesp = dst;
	return NULL;
}

/* Make a failed chunk's pages zero again: anonymous memory over the
 * mapping (not MADV_DONTNEED, which would bring the file's bytes back). */
static void map_unmap(struct ns_memfile *mf, struct mf_chunk *c)
{
	uint8_t *at = chunk_addr(mf, c);

	if (mmap(at, c->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED |
		 MAP_NORESERVE, -1, 0) == MAP_FAILED)
		memset(at, 0, c->len);	/* out of mappings: private zeros */
	c->mapped = 0;
}

/* A chunk that failed, on its read or after it was in (a lease break):
 * counted failed, the first reason kept. mf->mu held. */
static void chunk_fail(struct ns_memfile *mf, struct mf_chunk *c, const char *reason)
{
	if (c->state == MF_DONE)
		mf->loaded_bytes -= c->len;
	c->state = MF_FAILED;
	mf->failed_bytes += c->len;
	if (!mf->error) {
		mf->error = -EIO;
		snprintf(mf->why, sizeof(mf->why), "pages.img: region '%s' bytes %llu..%llu: %s",
			 mf->regions[c->region]->name, (unsigned long long)c->off,
			 (unsigned long long)(c->off + c->len), reason);
	}
}

/* A read ended with @res (bytes, or -errno): check each chunk, publish. */
static void finish(struct ns_memfile *mf, struct read_req *rq, ssize_t res)
{
	const char *reasons[MAX_IOV];
	char io[64];

	if (res >= 0 && (size_t)res < rq->want)
		res = read_rest(mf->fd, rq, (size_t)res);	/* short: try the rest once */
	if (res < 0)
		snprintf(io, sizeof(io), "read error: %s", strerror((int)-res));
	for (size_t k = 0; k < rq->n; k++) {
		struct mf_chunk *c = &mf->chunks[rq->first + k];
		const uint8_t *bytes = NULL;

		reasons[k] = res < 0 ? io : chunk_check(mf, rq, c, (uint64_t)res, &bytes);
		if (!reasons[k] && mf->uffd >= 0 && mf_uffd_install(mf, c, bytes))
			reasons[k] = "userfaultfd could not install the pages";
		/* Never hand out wrong bytes: the range reads as zeros. */
		if (reasons[k] && mf->uffd >= 0)
			mf_uffd_zero(mf, c);
		else if (reasons[k] && c->mapped)
			map_unmap(mf, c);
		else if (reasons[k])
			madvise(chunk_addr(mf, c), c->len, MADV_DONTNEED);
	}
	pthread_mutex_lock(&mf->mu);
	for (size_t k = 0; k < rq->n; k++) {
		struct mf_chunk *c = &mf->chunks[rq->first + k];

		if (!reasons[k]) {
			c->state = MF_DONE;
			mf->loaded_bytes += c->len;
			continue;
		}
		chunk_fail(mf, c, reasons[k]);
	}
	mf->remaining -= rq->n;
	mf->inflight--;
	if (mf->remaining == 0) {
		mf->end_ns = tw_mono_ns();
		mf->loading = false;
		pthread_cond_broadcast(&mf->work_cond);
		wake(mf->wakefd);	/* the other io_uring loaders end too */
		wake(mf->uffd_stopfd);	/* demand paging is over */
	}
	pthread_cond_broadcast(&mf->done_cond);
	pthread_mutex_unlock(&mf->mu);
}

/* The loader ends early (the stack is freed, or io_uring broke): chunks
 * never read fail, so nobody waits for them forever. mf->mu held. */
static void abandon(struct ns_memfile *mf, const char *reason)
{
	for (size_t k = 0; k < mf->nchunks; k++) {
		struct mf_chunk *c = &mf->chunks[k];

		if (c->state != MF_PENDING)
			continue;
		c->state = MF_FAILED;
		mf->failed_bytes += c->len;
		mf->remaining--;
		if (mf->uffd >= 0)
			mf_uffd_zero(mf, c);	/* wakes whoever waits on its pages */
	}
	if (!mf->error) {
		mf->error = -EIO;
		snprintf(mf->why, sizeof(mf->why), "%s", reason);
	}
	if (mf->remaining == 0) {
		mf->end_ns = tw_mono_ns();
		mf->loading = false;
		wake(mf->uffd_stopfd);
	}
	pthread_cond_broadcast(&mf->done_cond);
}

/* ------------------------------------------------------------------ */
/* Mapping                                                             */
/* ------------------------------------------------------------------ */

/*
 * From the page cache, copying is not what costs: a restore copies into
 * memory nobody touched before, a page fault per 4 KiB, and on the CI VM
 * that fault costs 3-5x the copy (README, "The memory file"). The map
 * backend copies nothing: the pool threads map each run of a read's
 * chunks from pages.img (MAP_PRIVATE, so a write copies the page, never
 * reaches the file), fault the run in (MADV_POPULATE_READ: a page that
 * cannot be read fails here, not as SIGBUS) and check its CRC in place.
 *
 * A page stays the page cache's until written, so a change to pages.img
 * would show through. A read lease rules that out for writes: opening the
 * file for writing breaks the lease, and the opener waits
 * (fs.lease-break-time) until we let go. lease_main() looks every
 * mf_lease_poll_ms (no signal: a library cannot own one; the kernel's
 * SIGIO is turned off with F_SETOWN 0), and on a break copies every mapped
 * page (MADV_POPULATE_WRITE breaks copy-on-write without writing), has
 * what is left loaded by reading, then releases the lease; what it could
 * not copy before the kernel's fs.lease-break-time fails. Truncation
 * breaks the lease too, but the kernel then takes even copied pages of the
 * cut range away (truncate_pagecache() unmaps private copies, as POSIX
 * has it): the range shows the file's new bytes, or SIGBUS past its end.
 * So mapping is asked for, never chosen for the embedder (netstack.h,
 * "Mapping").
 */
#define MAP_READ	(4u << 20)	/* bytes per read unless read_kib says */
/* MADV_POPULATE_READ holds the mmap_lock for reading while it faults its
 * whole range in, and a serving thread's mmap() or mprotect() waits for
 * it: in the background, fault in 256 KiB at a time (64 MiB, 50 runs
 * each: the worst of each 10 first responses 0.9-2.4 ms against
 * 1.2-4.7 with 4 MiB). */
#define MAP_POPULATE_BG	(256u << 10)
#define MAP_THREADS	2u		/* the pool in the foreground */
#define RA_WINDOW	(32u << 20)	/* readahead kept ahead of the mapping */
#define MAP_SLACK	4096		/* mappings left for the rest of the process */
#define BREAK_COPY_BPS	(256ull << 20)	/* a slow copy rate, to size a lease break */

/* Ask for the file ahead of the mapping: a fault reads 128 KiB at a time. */
static void map_readahead(struct ns_memfile *mf, uint64_t foff, uint64_t len)
{
	uint64_t from, to = foff + len + RA_WINDOW;

	pthread_mutex_lock(&mf->mu);
	from = mf->ra_next > foff ? mf->ra_next : foff;
	if (to > mf->map_size)
		to = mf->map_size;
	if (from < to)
		mf->ra_next = to;
	pthread_mutex_unlock(&mf->mu);
	if (from < to)
		readahead(mf->fd, (off64_t)from, (size_t)(to - from));
}

/* Fault in a mapped range (MAP_POPULATE_BG at a time in the background). */
static int populate(const struct ns_memfile *mf, uint8_t *at, uint64_t len)
{
	uint64_t step = mf->background ? MAP_POPULATE_BG : len;

	for (uint64_t o = 0; o < len; o += step)
		if (madvise(at + o, len - o < step ? len - o : step, MADV_POPULATE_READ) < 0)
			return -1;
	return 0;
}

/* The map backend's read: map each run of @rq's chunks that is one range
 * of its region as well, and fault it in. Return: the bytes in place from
 * rq->foff on, short at the file's end or where mapping failed. */
static ssize_t map_read(struct ns_memfile *mf, struct read_req *rq)
{
	size_t done = 0;

	map_readahead(mf, rq->foff, rq->want);
	for (size_t k = 0; k < rq->n;) {
		struct mf_chunk *c = &mf->chunks[rq->first + k];
		uint8_t *at = chunk_addr(mf, c);
		uint64_t len = c->len;
		size_t j = k + 1;

		while (j < rq->n && mf->chunks[rq->first + j].region == c->region &&
		       mf->chunks[rq->first + j].off == c->off + len)
			len += mf->chunks[rq->first + j++].len;
		if (c->foff + len > mf->map_size)
			break;	/* past the end: a mapping would be SIGBUS */
		/* Marked first: a MAP_FIXED that fails may have unmapped the
		 * range, and a failed chunk's map_unmap() maps it again. */
		for (size_t i = k; i < j; i++)
			mf->chunks[rq->first + i].mapped = 1;
		/* Short on failure: finish() reads the rest into the region. */
		if (mmap(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE,
			 mf->fd, (off_t)c->foff) == MAP_FAILED ||
		    populate(mf, at, len) < 0)
			break;
		done += len;
		k = j;
	}
	return (ssize_t)done;
}

/* Copy every mapped page (MADV_POPULATE_WRITE breaks copy-on-write
 * without writing; pages the embedder wrote are its own already), so that
 * pages.img may change. A chunk that could not be copied, or was copied
 * after @safe_ns (the kernel may have let the writer go on by then), may
 * show the writer's bytes: it fails (-EIO to its awaiters, and a later
 * checkpoint is refused) rather than pass for loaded. Not zeroed: that
 * would lose what the embedder wrote there. No read maps meanwhile
 * (map_inflight 0, map false). */
static void map_privatise(struct ns_memfile *mf, uint64_t safe_ns)
{
	for (size_t k = 0; k < mf->nchunks; k++) {
		struct mf_chunk *c = &mf->chunks[k];
		const char *lost = NULL;

		if (!c->mapped)
			continue;
		if (madvise(chunk_addr(mf, c), c->len, MADV_POPULATE_WRITE) < 0)
			lost = "pages.img was opened for writing and this could not be copied";
		else if (tw_mono_ns() > safe_ns)
			lost = "pages.img was opened for writing and this was copied too late";
		if (!lost)
			continue;
		pthread_mutex_lock(&mf->mu);
		chunk_fail(mf, c, lost);
		pthread_cond_broadcast(&mf->done_cond);
		pthread_mutex_unlock(&mf->mu);
	}
}

static long sysctl_long(const char *path, long dflt)
{
	FILE *f = fopen(path, "re");
	long v;

	if (!f)
		return dflt;
	if (fscanf(f, "%ld", &v) != 1)
		v = dflt;
	fclose(f);
	return v;
}

unsigned mf_lease_poll_ms = 500;
long mf_lease_break_s;

/* How long the kernel holds a writer for a lease break (s). */
static long lease_break_s(void)
{
	return mf_lease_break_s ? mf_lease_break_s
				: sysctl_long("/proc/sys/fs/lease-break-time", 45);
}

/* The lease's watcher: until the stack goes, or the lease breaks. */
static void *lease_main(void *arg)
{
	struct ns_memfile *mf = arg;
	long ms;
	struct timespec dl;
	uint64_t safe_ns;
	int rc;

	pthread_mutex_lock(&mf->mu);
	while (!mf->stop) {
		tw_deadline_after(&dl, mf_lease_poll_ms);
		pthread_cond_timedwait(&mf->lease_cond, &mf->mu, &dl);
		if (mf->stop)
			break;
		pthread_mutex_unlock(&mf->mu);
		rc = fcntl(mf->fd, F_GETLEASE);
		pthread_mutex_lock(&mf->mu);
		if (rc == F_RDLCK)
			continue;
		/* Someone opens pages.img to write or truncates it, and waits
		 * until we let go or the kernel's time is up: within that, copy
		 * what is mapped and have the rest read from the file as it is. */
		ms = lease_break_s() * 1000 - (long)mf_lease_poll_ms - 1000;	/* noticed late */
		tw_deadline_after(&dl, ms > 0 ? ms : 0);
		safe_ns = tw_mono_ns() + (uint64_t)(ms > 0 ? ms : 0) * 1000000u;
		mf->map = false;
		while (mf->map_inflight)
			pthread_cond_wait(&mf->done_cond, &mf->mu);
		pthread_mutex_unlock(&mf->mu);
		map_privatise(mf, safe_ns);
		pthread_mutex_lock(&mf->mu);
		while (mf->remaining && !mf->stop &&
		       pthread_cond_timedwait(&mf->done_cond, &mf->mu, &dl) == 0)
			;
		break;
	}
	fcntl(mf->fd, F_SETLEASE, F_UNLCK);
	pthread_mutex_unlock(&mf->mu);
	return NULL;
}

int mf_map_prepare(const struct mf_index *ix, int fd, bool direct, bool demand, char *why,
		   size_t whylen)
{
	long maps = sysctl_long("/proc/sys/vm/max_map_count", 65530);
	uint64_t data = 0, need_s;
	size_t runs = 0;

	if (ix->compression != NS_COMPRESSION_NONE || direct || demand)
		return ckpt_fail(why, whylen, -EOPNOTSUPP, "cannot map pages.img: %s",
				 demand ? "demand paging copies pages in" :
				 direct ? "O_DIRECT reads around the page cache" :
				 "pages.img is compressed");
	if (sysconf(_SC_PAGESIZE) != CKPT_PAGE)
		return ckpt_fail(why, whylen, -EOPNOTSUPP, "cannot map pages.img: pages are not 4 KiB");
	/* Length 0: the advice checked, no memory touched. */
	if (madvise((void *)(uintptr_t)CKPT_PAGE, 0, MADV_POPULATE_WRITE) < 0)
		return ckpt_fail(why, whylen, -errno,
				 "cannot map pages.img: no MADV_POPULATE_WRITE (Linux 5.14)");
	for (size_t k = 0; k < ix->nchunks; k++) {
		const struct mf_chunk *c = &ix->chunks[k], *p = c - 1;

		data += c->len;
		runs += k == 0 || c->region != p->region || c->off != p->off + p->len;
	}
	if (2 * runs + 2 * ix->nregions + MAP_SLACK > (size_t)maps)
		return ckpt_fail(why, whylen, -ENOMEM,
				 "cannot map pages.img: %zu runs of pages, vm.max_map_count %ld",
				 runs, maps);
	need_s = 2 + data / BREAK_COPY_BPS;
	if ((uint64_t)lease_break_s() < need_s)
		return ckpt_fail(why, whylen, -ETIME,
				 "cannot map pages.img: fs.lease-break-time is under %llu s",
				 (unsigned long long)need_s);
	/* F_SETLEASE makes this process the owner that a break signals, SIGIO
	 * by default, which would end it: SIGURG (ignored unless handled) until
	 * F_SETOWN 0 leaves no owner to signal. */
	if (fcntl(fd, F_SETSIG, SIGURG) < 0 || fcntl(fd, F_SETLEASE, F_RDLCK) < 0)
		return ckpt_fail(why, whylen, -errno, "cannot map pages.img: no read lease: %s",
				 strerror(errno));
	if (fcntl(fd, F_SETOWN, 0) < 0) {
		int rc = -errno;

		fcntl(fd, F_SETLEASE, F_UNLCK);
		return ckpt_fail(why, whylen, rc, "cannot map pages.img: F_SETOWN: %s",
				 strerror(-rc));
	}
	return 0;
}

/* Map from now on, pages.img leased (mf_map_prepare()), and start the
 * lease's watcher. mf->mu held. Return: 0 or -errno with @why. */
static int map_start(struct ns_memfile *mf, char *why, size_t whylen)
{
	struct stat sb;
	int rc;

	rc = fstat(mf->fd, &sb) < 0 ? -errno : 0;
	if (!rc)
		rc = -pthread_create(&mf->threads[mf->nthreads], NULL, lease_main, mf);
	if (rc) {
		fcntl(mf->fd, F_SETLEASE, F_UNLCK);
		return ckpt_fail(why, whylen, rc, "cannot map pages.img: %s", strerror(-rc));
	}
	mf->nthreads++;
	mf->map_size = (uint64_t)sb.st_size;
	mf->map = true;
	return 0;
}

/* ------------------------------------------------------------------ */
/* io_uring backend: one thread, qd reads in flight                    */
/* ------------------------------------------------------------------ */

struct uring_loader {
	struct ns_memfile *mf;
	struct io_uring ring;
	struct read_req *reqs;
	unsigned nslots, *free_slots, nfree;
};

static void uring_free(struct uring_loader *u)
{
	if (u->reqs)
		for (unsigned i = 0; i < u->nslots; i++)
			req_free(&u->reqs[i]);
	free(u->reqs);
	free(u->free_slots);
	free(u);
}

static void *uring_main(void *arg)
{
	struct uring_loader *u = arg;
	struct ns_memfile *mf = u->mf;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	bool wake_armed = false, broken = false;
	size_t first, n;

	loader_priority(mf);
	for (;;) {
		unsigned head, seen = 0, nfree0 = u->nfree;
		bool finished;
		int rc;

		if (!wake_armed && (sqe = io_uring_get_sqe(&u->ring))) {
			io_uring_prep_poll_add(sqe, mf->wakefd, POLLIN);
			io_uring_sqe_set_data64(sqe, WAKE_TAG);
			wake_armed = true;
		}
		pthread_mutex_lock(&mf->mu);
		while (!mf->stop && !broken && u->nfree && pick(mf, pick_for(mf), &first, &n)) {
			struct read_req *rq = &u->reqs[u->free_slots[--u->nfree]];

			req_build(mf, rq, first, n);
			sqe = io_uring_get_sqe(&u->ring);	/* entries > qd: never NULL */
			if (rq->niov == 1)
				io_uring_prep_read(sqe, mf->fd, rq->iov[0].iov_base,
						   (unsigned)rq->iov[0].iov_len, rq->foff);
			else
				io_uring_prep_readv(sqe, mf->fd, rq->iov, (unsigned)rq->niov,
						    rq->foff);
			io_uring_sqe_set_data64(sqe, (uint64_t)(rq - u->reqs));
		}
		if ((mf->stop || broken) && mf->remaining)
			abandon(mf, mf->stop ? "loading was cancelled"
					     : "io_uring stopped working; loading abandoned");
		/* Our own reads: another loader's may still be in flight. */
		finished = (mf->remaining == 0 || mf->stop || broken) && u->nfree == u->nslots;
		pthread_mutex_unlock(&mf->mu);
		if (finished)
			break;
		/* This round's reads, the slots taken off free_slots above; not
		 * under the lock: faults can take long. */
		for (unsigned i = u->nfree; i < nfree0; i++)
			prefault(mf, &u->reqs[u->free_slots[i]]);
		rc = io_uring_submit_and_wait(&u->ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
			broken = true;	/* reads in flight still complete below */
		io_uring_for_each_cqe(&u->ring, head, cqe) {
			uint64_t tag = io_uring_cqe_get_data64(cqe);

			seen++;
			if (tag == WAKE_TAG) {
				uint64_t v;

				wake_armed = false;
				/* Once loading is over (or stopped) the counter stays
				 * set, so every loader's poll sees it, whenever armed. */
				pthread_mutex_lock(&mf->mu);
				if (!mf->stop && mf->remaining &&
				    read(mf->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					broken = true;
				pthread_mutex_unlock(&mf->mu);
				continue;
			}
			finish(mf, &u->reqs[tag], cqe->res);
			u->free_slots[u->nfree++] = (unsigned)tag;
		}
		io_uring_cq_advance(&u->ring, seen);
	}
	io_uring_queue_exit(&u->ring);
	uring_free(u);
	return NULL;
}

/* One io_uring loader thread with @nslots reads in flight. */
static int uring_one(struct ns_memfile *mf, unsigned nslots, char *why, size_t whylen)
{
	struct uring_loader *u = calloc(1, sizeof(*u));
	int rc;

	if (!u)
		return -ENOMEM;
	u->mf = mf;
	rc = mf_uring_setup(nslots + 1, &u->ring);
	if (rc < 0) {
		free(u);
		return ckpt_fail(why, whylen, rc, "io_uring_queue_init: %s", strerror(-rc));
	}
	u->nslots = nslots;
	u->reqs = calloc(nslots, sizeof(*u->reqs));
	u->free_slots = calloc(nslots, sizeof(*u->free_slots));
	rc = !u->reqs || !u->free_slots ? -ENOMEM : 0;
	for (unsigned i = 0; !rc && i < nslots; i++) {
		u->free_slots[u->nfree++] = i;
		rc = req_alloc(mf, &u->reqs[i]);
	}
	if (!rc)
		rc = -pthread_create(&mf->threads[mf->nthreads], NULL, uring_main, u);
	if (rc) {
		io_uring_queue_exit(&u->ring);
		uring_free(u);
		return ckpt_fail(why, whylen, rc, "cannot start the io_uring loader: %s",
				 strerror(-rc));
	}
	mf->nthreads++;
	return 0;
}

int mf_uring_probe(char *why, size_t whylen)
{
	struct io_uring ring;
	int rc = mf_uring_setup(2, &ring);

	if (rc < 0)
		return ckpt_fail(why, whylen, rc, "io_uring_queue_init: %s", strerror(-rc));
	io_uring_queue_exit(&ring);
	return 0;
}

/*
 * Two loader threads by default, one in the background. From the page
 * cache a read is a copy into fresh memory, a page fault per 4 KiB, done
 * inline by the submitting thread: on a quiet machine two loaders load 1 GiB
 * at ~3.7 GB/s where one does ~2.1 (the README's table). In the background
 * one CPU stays free for serving: a loader holds its CPU in the kernel for
 * milliseconds per io_uring_enter(), nice or not. They share the queue
 * depth; ns_restore_opts.loaders overrides.
 */
static int uring_start(struct ns_memfile *mf, char *why, size_t whylen)
{
	unsigned n = mf->background ? 1 : URING_LOADERS;
	int rc;

	if (mf->loaders)	/* one thread left for the urgent one */
		n = mf->loaders < MAX_THREADS - 1 ? mf->loaders : MAX_THREADS - 1;
	if (n > mf->qd)
		n = mf->qd;
	mf->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (mf->wakefd < 0)
		return ckpt_fail(why, whylen, -errno, "eventfd: %s", strerror(errno));
	for (unsigned i = 0; i < n; i++) {
		rc = uring_one(mf, mf->qd / n + (i < mf->qd % n), why, whylen);
		if (rc && i == 0) {
			close(mf->wakefd);
			mf->wakefd = -1;
			return rc;
		}
		if (rc)
			break;	/* fewer loaders, still working */
	}
	mf->backend = "io_uring";
	return 0;
}

/* ------------------------------------------------------------------ */
/* Thread-pool backend                                                 */
/* ------------------------------------------------------------------ */

/* A pool thread, or the urgent thread (@from PICK_AWAITED): synchronous
 * reads of what pick() gives, until every chunk is in or the stack goes. */
static void pool_loop(struct ns_memfile *mf, enum pick_from from)
{
	struct read_req rq = { 0 };
	size_t first, n;
	bool no_memory = req_alloc(mf, &rq) != 0;

	pthread_mutex_lock(&mf->mu);
	for (;;) {
		if (mf->stop) {
			if (mf->remaining)
				abandon(mf, "loading was cancelled");
			break;
		}
		if (no_memory) {
			/* The urgent thread leaves its chunks to the loaders. */
			if (from != PICK_AWAITED && mf->inflight == 0 && mf->remaining)
				abandon(mf, "out of memory for the page loader");
			break;
		}
		if (pick(mf, from, &first, &n)) {
			bool map = mf->map;

			mf->map_inflight += map;
			pthread_mutex_unlock(&mf->mu);
			req_build(mf, &rq, first, n);
			if (!map)	/* as picked: mf->map changes under the lock */
				prefault(mf, &rq);
			finish(mf, &rq, map ? map_read(mf, &rq) : read_rest(mf->fd, &rq, 0));
			pthread_mutex_lock(&mf->mu);
			if (map && --mf->map_inflight == 0)
				pthread_cond_broadcast(&mf->done_cond);	/* lease_main() */
			continue;
		}
		if (mf->remaining == 0)
			break;
		pthread_cond_wait(&mf->work_cond, &mf->mu);
	}
	pthread_mutex_unlock(&mf->mu);
	req_free(&rq);
}

static void *pool_main(void *arg)
{
	struct ns_memfile *mf = arg;

	loader_priority(mf);
	pool_loop(mf, pick_for(mf));
	return NULL;
}

/* Background restores: awaited chunks (ns_memfile_await(), a userfaultfd
 * fault) read at the embedder's priority, whatever the idle loaders do. */
static void *urgent_main(void *arg)
{
	pool_loop(arg, PICK_AWAITED);
	return NULL;
}

static int pool_start(struct ns_memfile *mf, unsigned nthreads, char *why, size_t whylen)
{
	unsigned started = 0;
	int rc = 0;

	for (unsigned i = 0; i < nthreads; i++) {
		rc = -pthread_create(&mf->threads[mf->nthreads], NULL, pool_main, mf);
		if (rc)
			break;
		mf->nthreads++;
		started++;
	}
	if (!started)
		return ckpt_fail(why, whylen, rc, "cannot start the page loader threads: %s",
				 strerror(-rc));
	mf->backend = "threads";
	return 0;
}

/* ------------------------------------------------------------------ */
/* Start, stop                                                         */
/* ------------------------------------------------------------------ */

int mf_loader_start(struct ns_memfile *mf, enum ns_memfile_backend backend, char *why,
		    size_t whylen)
{
	unsigned nthreads;
	int rc = 0;

	pthread_mutex_lock(&mf->mu);
	mf->start_ns = mf->end_ns = tw_mono_ns();
	mf->data_bytes = 0;
	for (size_t k = 0; k < mf->nchunks; k++)
		mf->data_bytes += mf->chunks[k].len;
	mf->remaining = mf->nchunks;
	if (!mf->nchunks) {
		pthread_mutex_unlock(&mf->mu);
		return 0;	/* all zero: nothing to read */
	}
	mf->prio = malloc(2 * mf->nchunks * sizeof(*mf->prio));
	if (!mf->prio) {
		pthread_mutex_unlock(&mf->mu);
		return ckpt_fail(why, whylen, -ENOMEM, "out of memory for the page loader");
	}
	if (backend == NS_MEMFILE_MAP && (rc = map_start(mf, why, whylen))) {
		pthread_mutex_unlock(&mf->mu);
		return rc;
	}
	if (mf->read_max == 0)
		mf->read_max = mf->map ? MAP_READ : DEFAULT_READ;
	mf->read_max = align_up(mf->read_max < MAX_READ ? mf->read_max : MAX_READ);
	/* As for io_uring: in the background, one thread leaves a CPU to serve. */
	nthreads = mf->qd ? mf->qd : mf->background ? 1 : mf->map ? MAP_THREADS : DEFAULT_THREADS;
	if (nthreads > MAX_THREADS - 2)
		nthreads = MAX_THREADS - 2;
	if (mf->qd == 0)
		mf->qd = mf->background ? BACKGROUND_QD : DEFAULT_QD;
	if (mf->qd > MAX_QD)
		mf->qd = MAX_QD;
	mf->loading = true;
	if (mf->map) {
		rc = pool_start(mf, nthreads, why, whylen);
		if (!rc)
			mf->backend = "map";
	} else if (backend != NS_MEMFILE_THREADS) {
		rc = uring_start(mf, why, whylen);
		if (rc && backend == NS_MEMFILE_AUTO) {
			snprintf(mf->fallback, sizeof(mf->fallback), "%s", why ? why : "");
			rc = pool_start(mf, nthreads, why, whylen);
		}
	} else {
		rc = pool_start(mf, nthreads, why, whylen);
	}
	/* Without it awaited chunks still come, in file order: not fatal. */
	if (!rc && mf->background && mf->nthreads < MAX_THREADS &&
	    !pthread_create(&mf->threads[mf->nthreads], NULL, urgent_main, mf))
		mf->nthreads++;
	if (rc)
		mf->loading = false;
	pthread_mutex_unlock(&mf->mu);
	return rc;
}

void mf_loader_stop(struct ns_memfile *mf)
{
	pthread_mutex_lock(&mf->mu);
	mf->stop = true;
	pthread_cond_broadcast(&mf->work_cond);
	pthread_cond_broadcast(&mf->done_cond);
	pthread_cond_broadcast(&mf->lease_cond);
	wake(mf->wakefd);
	pthread_mutex_unlock(&mf->mu);
	for (unsigned i = 0; i < mf->nthreads; i++)
		pthread_join(mf->threads[i], NULL);
	mf->nthreads = 0;
	if (mf->wakefd >= 0)
		close(mf->wakefd);
	mf->wakefd = -1;
}

/* ------------------------------------------------------------------ */
/* The API                                                             */
/* ------------------------------------------------------------------ */

void mf_prioritise(struct ns_memfile *mf, size_t lo, size_t hi)
{
	size_t cap = 2 * mf->nchunks, room, j = 0;

	if (mf->nprio + (hi - lo) > cap) {
		/* Drop entries that are no longer pending. */
		for (size_t i = 0; i < mf->nprio; i++)
			if (mf->chunks[mf->prio[i]].state == MF_PENDING)
				mf->prio[j++] = mf->prio[i];
		mf->nprio = j;
	}
	room = cap - mf->nprio;
	if (hi - lo > room)
		hi = lo + room;
	for (size_t k = hi; k-- > lo;)
		if (mf->chunks[k].state == MF_PENDING)
			mf->prio[mf->nprio++] = k;
	pthread_cond_broadcast(&mf->work_cond);	/* the urgent thread among them */
	wake(mf->wakefd);
}

void mf_chunk_span(const struct ns_memfile *mf, const struct ns_region *r, uint64_t offset,
		   uint64_t length, size_t *lop, size_t *hip)
{
	size_t a = r->first, b = r->first + r->n;

	/* The region's chunks are sorted: the first ending after @offset ... */
	while (a < b) {
		size_t m = a + (b - a) / 2;

		if (mf->chunks[m].off + mf->chunks[m].len <= offset)
			a = m + 1;
		else
			b = m;
	}
	*lop = a;
	/* ... to the first starting at or after its end. */
	b = r->first + r->n;
	while (a < b) {
		size_t m = a + (b - a) / 2;

		if (mf->chunks[m].off < offset + length)
			a = m + 1;
		else
			b = m;
	}
	*hip = a;
}

static bool finished(const struct mf_chunk *c)
{
	return c->state == MF_DONE || c->state == MF_FAILED;
}

int ns_memfile_await(struct ns_region *r, uint64_t offset, uint64_t length)
{
	struct ns_memfile *mf;
	size_t lo, hi, i;
	bool failed = false;
	int rc = 0;

	if (!r || offset > r->size || length > r->size - offset)
		return -EINVAL;
	if (length == 0)
		return 0;
	mf = r->mf;
	pthread_mutex_lock(&mf->mu);
	if (r->n == 0 || !mf->chunks) {
		pthread_mutex_unlock(&mf->mu);
		return 0;
	}
	mf_chunk_span(mf, r, offset, length, &lo, &hi);
	for (i = lo; i < hi && finished(&mf->chunks[i]); i++)
		;
	if (i < hi)
		mf_prioritise(mf, i, hi);
	for (i = lo;;) {
		while (i < hi && finished(&mf->chunks[i]))
			failed |= mf->chunks[i++].state == MF_FAILED;
		if (i == hi)
			break;
		if (mf->stop) {
			rc = -ECANCELED;
			break;
		}
		pthread_cond_wait(&mf->done_cond, &mf->mu);
	}
	pthread_mutex_unlock(&mf->mu);
	return rc ? rc : failed ? -EIO : 0;
}

static struct ns_memfile *memfile_of(struct ns_stack *s)
{
	struct ns_memfile *mf;

	ns_lock(s);
	mf = s->memfile;
	ns_unlock(s);
	return mf;
}

int ns_memfile_wait(struct ns_stack *s, int timeout_ms)
{
	struct ns_memfile *mf;
	struct timespec dl;
	int rc = 0;

	if (!s)
		return -EINVAL;
	mf = memfile_of(s);
	if (!mf)
		return 0;
	tw_deadline_after(&dl, timeout_ms > 0 ? timeout_ms : 0);
	pthread_mutex_lock(&mf->mu);
	while (mf->remaining && !mf->stop && !rc) {
		if (timeout_ms < 0)
			pthread_cond_wait(&mf->done_cond, &mf->mu);
		else if (timeout_ms == 0 ||
			 pthread_cond_timedwait(&mf->done_cond, &mf->mu, &dl) == ETIMEDOUT)
			rc = -ETIMEDOUT;
	}
	if (!rc && (mf->remaining || mf->failed_bytes))
		rc = -EIO;
	pthread_mutex_unlock(&mf->mu);
	return rc;
}

int ns_memfile_progress(struct ns_stack *s, struct ns_memfile_progress *p)
{
	struct ns_memfile *mf;
	uint64_t now;

	if (!s || !p)
		return -EINVAL;
	memset(p, 0, sizeof(*p));
	p->backend = "none";
	p->done = true;
	mf = memfile_of(s);
	if (!mf)
		return 0;
	pthread_mutex_lock(&mf->mu);
	p->regions = mf->nregions;
	for (unsigned i = 0; i < mf->nregions; i++)
		p->bytes += mf->regions[i]->size;
	p->data_bytes = mf->data_bytes;
	p->loaded_bytes = mf->loaded_bytes;
	p->failed_bytes = mf->failed_bytes;
	p->loading = mf->loading;
	p->done = mf->remaining == 0;
	p->error = mf->error;
	snprintf(p->why, sizeof(p->why), "%s", mf->why);
	snprintf(p->fallback, sizeof(p->fallback), "%s", mf->fallback);
	p->backend = mf->backend;
	p->demand_paging = mf->uffd >= 0;
	now = mf->remaining ? tw_mono_ns() : mf->end_ns;
	p->elapsed_ns = now - mf->start_ns;
	if (p->elapsed_ns)
		p->rate_bps = (uint64_t)((double)mf->loaded_bytes * 1e9 / (double)p->elapsed_ns);
	pthread_mutex_unlock(&mf->mu);
	return 0;
}
