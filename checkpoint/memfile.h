/* SPDX-License-Identifier: MIT */
/*
 * memfile.h - the memory file: an embedder's memory regions saved beside a
 * checkpoint's state (pages.meta, the index; pages.img, the pages) and
 * loaded back after a restore by a loader thread through io_uring, or by a
 * pool of threads where io_uring cannot be had. Internal to checkpoint/;
 * the embedder's side is in netstack.h ("The memory file").
 *
 * pages.img: the non-zero pages of every region, in region order and then
 * offset order, cut into chunks of at most chunk_size region bytes. Each
 * chunk starts on a 4 KiB boundary of the file, so pages.img can be read
 * with O_DIRECT straight into the (page-aligned) regions. Uncompressed, a
 * chunk is its bytes as they are, so consecutive chunks are consecutive in
 * the file and one read covers several; with zstd, a chunk is one zstd
 * frame padded with zeros to the next 4 KiB, so chunks decompress
 * independently.
 *
 * pages.meta: the header of state.pb (image.h) with magic NSTKPGS1, then a
 * packed netstack.v1.PagesIndex: the image id that state.pb names too, the
 * compression, pages.img's size, and per region its name, size and chunks
 * (offset, length, file offset and length, CRC32C of the region bytes).
 * The loader checks each chunk's CRC after it lands (after decompression),
 * so no wrong byte is ever handed out: a chunk that fails reads as zeros
 * and its awaiters get -EIO.
 */
#ifndef NETSTACK_CHECKPOINT_MEMFILE_H
#define NETSTACK_CHECKPOINT_MEMFILE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "netstack.h"

#define CKPT_PAGES_META		"pages.meta"
#define CKPT_PAGES_META_TMP	".pages.meta.tmp"
#define CKPT_PAGES_IMG		"pages.img"
#define CKPT_PAGES_IMG_TMP	".pages.img.tmp"
#define CKPT_PAGES_MAGIC	"NSTKPGS1"
#define CKPT_PAGES_VERSION	1u
#define CKPT_PAGES_META_MAX	(256u << 20)
#define CKPT_PAGE		4096u
#define CKPT_REGION_MAX		(1ull << 40)	/* 1 TiB */
/* Chunk: the unit of CRC, of compression and of an await's granularity.
 * 256 KiB, the loader's read size: a restore decodes pages.meta before it
 * serves, and with 64 KiB chunks that index (~41,000 chunks for 4 GiB of
 * the test pattern) took 2.4 ms of a 3.6 ms background restore, mostly
 * faults on the fresh memory it unpacks into; 256 KiB chunks made it a
 * third of that (~17,000 chunks, 1.6-1.9 ms restores). An await of one
 * page loads up to 256 KiB (~0.1-0.25 ms into fresh memory here), as a
 * readahead would. Reads merge consecutive chunks up to read_kib. Images
 * with other chunk sizes (pages.meta says which) still load. */
#define CKPT_CHUNK_SIZE		(256u << 10)
#define CKPT_CHUNK_MAX		(4u << 20)

enum mf_chunk_state {
	MF_PENDING,
	MF_INFLIGHT,
	MF_DONE,
	MF_FAILED,
};

struct mf_chunk {
	uint32_t region;	/* index into the index's regions */
	uint32_t crc;		/* CRC32C of the region bytes */
	uint64_t off, len;	/* in the region */
	uint64_t foff, flen;	/* in pages.img */
	uint8_t state;		/* enum mf_chunk_state, under the memfile's lock */
	uint8_t mapped;		/* its pages are pages.img's, mapped (loader.c) */
};

struct mf_index_region {
	char name[NS_REGION_NAME_MAX];
	uint64_t size;
	size_t first, n;	/* its chunks: chunks[first .. first + n) */
};

/* pages.meta, decoded. */
struct mf_index {
	uint64_t image_id;
	enum ns_compression compression;
	uint32_t chunk_size;
	uint64_t file_size;
	unsigned nregions;
	struct mf_index_region regions[CKPT_MAX_REGIONS];
	size_t nchunks;
	struct mf_chunk *chunks;	/* malloc'ed; in file order */
};

/* Free @ix's chunks (not @ix); safe on a zeroed index. */
void mf_index_release(struct mf_index *ix);

/**
 * mf_index_encode() - the bytes of pages.meta for @ix
 * @ix: the index; only read (validated as the reader would)
 * @bufp: receives the file's bytes, malloc'ed; the caller frees them
 * @lenp: receives their length
 * @why: one-line reason on failure, or NULL
 * @whylen: room in @why
 *
 * Return: 0, -EINVAL (an invalid index), -EFBIG, -ENOMEM.
 */
int mf_index_encode(const struct mf_index *ix, uint8_t **bufp, size_t *lenp, char *why,
		    size_t whylen);

/**
 * mf_index_decode() - validate the bytes of a pages.meta and convert them
 * @buf: the whole file; only read, never trusted (the function to fuzz)
 * @len: its length
 * @ix: receives the index on success (release it); untouched on failure
 * @why: one-line reason on failure, or NULL
 * @whylen: room in @why
 *
 * Return: 0, -EINVAL, -EFBIG, -EPROTONOSUPPORT, -EBADMSG, -EPROTO, -ENOMEM.
 */
int mf_index_decode(const uint8_t *buf, size_t len, struct mf_index *ix, char *why,
		    size_t whylen);

/* ---- the stack's regions and their loader (memfile.c, loader.c) ---- */

struct ns_region {
	struct ns_memfile *mf;
	char name[NS_REGION_NAME_MAX];
	uint8_t *addr;		/* mmap'ed, page-aligned */
	size_t size;		/* a page multiple */
	size_t first, n;	/* its chunks in mf->chunks (restored regions) */
};

struct ns_memfile {
	pthread_mutex_t mu;
	pthread_cond_t done_cond;	/* a chunk finished (awaiters, waiters) */
	pthread_cond_t work_cond;	/* work for the thread pool */
	struct ns_region *regions[CKPT_MAX_REGIONS];
	unsigned nregions;

	/* Loading, after a restore. chunks[] stay until the stack is freed:
	 * an await on a failed range keeps saying -EIO. */
	struct mf_chunk *chunks;
	size_t nchunks;
	enum ns_compression compression;
	bool direct;
	bool background;	/* loaders at nice 19, awaits at normal priority */
	int fd;			/* pages.img, or -1 */
	bool loading, stop;
	size_t remaining;	/* chunks not yet done or failed */
	size_t cursor;		/* the next chunk in file order to look at */
	size_t *prio, nprio;	/* awaited chunks, a stack: the top goes first */
	unsigned inflight;
	unsigned qd;		/* reads in flight (io_uring) or threads */
	unsigned loaders;	/* io_uring loader threads; 0: the default */
	size_t read_max;	/* bytes in one read */
	uint64_t data_bytes, loaded_bytes, failed_bytes;
	uint64_t start_ns, end_ns;
	int error;
	char why[160];
	const char *backend;
	char fallback[96];
	int wakefd;		/* io_uring: an await wakes the loader */
	uint32_t chunk_size;	/* the index's largest chunk */
	/* Demand paging (uffd.c): the regions registered with userfaultfd; a
	 * fault on a page not loaded yet moves its chunk to the front. */
	int uffd;		/* -1: not used */
	int uffd_stopfd;
	pthread_t uffd_thread;
	bool uffd_running;
	pthread_t threads[64];
	unsigned nthreads;
	/* The map backend (loader.c, "Mapping"): chunks mapped from pages.img
	 * privately, under a read lease that lease_main() watches. */
	bool map;		/* new reads map (false once the lease breaks) */
	unsigned map_inflight;	/* reads mapping right now */
	uint64_t map_size;	/* pages.img's size under the lease */
	uint64_t ra_next;	/* readahead asked for up to here */
	pthread_cond_t lease_cond;	/* the watcher's sleep; stop wakes it */
};

/* loader.c */
/* Whether @ix's pages.img (@fd) can be mapped (NS_MEMFILE_MAP); if so its
 * read lease is taken on @fd. Return: 0, -EOPNOTSUPP (compressed, O_DIRECT,
 * demand paging), -errno, with the reason in @why. */
int mf_map_prepare(const struct mf_index *ix, int fd, bool direct, bool demand, char *why,
		   size_t whylen);
/* Whether an io_uring can be set up (NS_MEMFILE_IO_URING demanded).
 * Return: 0, -errno with @why. */
int mf_uring_probe(char *why, size_t whylen);
/* Start loading @mf->chunks with @backend (with NS_MEMFILE_MAP, pages.img
 * leased by mf_map_prepare() already); Return: 0 or -errno + @why. */
int mf_loader_start(struct ns_memfile *mf, enum ns_memfile_backend backend, char *why,
		    size_t whylen);
/* Stop loading (reads in flight are waited for) and join the threads. */
void mf_loader_stop(struct ns_memfile *mf);
/* Put chunks [lo, hi) at the front of the queue, @lo on top (mu held). */
void mf_prioritise(struct ns_memfile *mf, size_t lo, size_t hi);
/* The chunks of @r that hold bytes of [offset, offset + length): [*lop, *hip). */
void mf_chunk_span(const struct ns_memfile *mf, const struct ns_region *r, uint64_t offset,
		   uint64_t length, size_t *lop, size_t *hip);

/* uffd.c */
/* A userfaultfd with its API settled (the restore's check that demand
 * paging can be had). Return: the fd, or -errno with @why. */
int mf_uffd_open(char *why, size_t whylen);
/* Register the regions with mf->uffd (mf_uffd_open()'s, which it closes
 * on failure) and start the fault handler. Return: 0, -errno. */
int mf_uffd_start(struct ns_memfile *mf, char *why, size_t whylen);
/* Stop the handler and unregister (also once everything is loaded). */
void mf_uffd_stop(struct ns_memfile *mf);
/* Make @c's pages @bytes (checked already), waking threads that wait on
 * them. Return: 0, -errno. */
int mf_uffd_install(struct ns_memfile *mf, const struct mf_chunk *c, const uint8_t *bytes);
/* Make @c's pages zero (a chunk that failed), waking their waiters. */
void mf_uffd_zero(struct ns_memfile *mf, const struct mf_chunk *c);

/* Move past @bytes of an iovec array (a short read or write's progress). */
struct iovec;
void mf_iov_advance(struct iovec **iovp, int *np, size_t bytes);

/* ---- used by api.c ---- */

struct mf_save;

/**
 * mf_save_prepare() - what a checkpoint of @s's regions will write
 * @s: the stack (quiesced); its regions are read by the sidecar's thread
 * @opts: compression and O_DIRECT
 * @st: receives memory_id and memory_regions (left 0 without regions)
 * @side: receives the sidecar for ckpt_image_write_with()
 * @savep: receives the save's state, freed with mf_save_free(); NULL and
 *         @side zeroed when the stack has no regions
 *
 * Waits for a restore's loading to finish first: memory that is not in
 * cannot be saved. Return: 0, -EIO (loading failed), -ENOMEM, -EINVAL.
 */
int mf_save_prepare(struct ns_stack *s, const struct ns_checkpoint_opts *opts,
		    struct ns_state *st, struct ckpt_sidecar *side, struct mf_save **savep,
		    char *why, size_t whylen);
void mf_save_free(struct mf_save *sv);

struct mf_restore;

/**
 * mf_restore_prepare() - read and check the memory file named by @st
 * @dir: the image directory
 * @st: the restored state (memory_id, memory_regions)
 * @opts: the restore options (background, direct, backend, sizes)
 * @rp: receives what mf_restore_attach() needs (NULL without memory)
 *
 * Validates pages.meta against @st and opens pages.img; in the foreground
 * a pages.img of the wrong size is refused here, before anything changes.
 * Return: 0 or -errno with a reason in @why.
 */
int mf_restore_prepare(const char *dir, const struct ns_state *st,
		       const struct ns_restore_opts *opts, struct mf_restore **rp,
		       char *why, size_t whylen);

/**
 * mf_restore_attach() - map @r's regions into @s and start loading them
 * @s: the restored stack, without regions yet
 * @r: from mf_restore_prepare(); consumed (freed) in every case
 *
 * Return: 0 or -errno with a reason in @why (-ENOSYS etc. when the
 * io_uring backend was demanded and cannot be had).
 */
int mf_restore_attach(struct ns_stack *s, struct mf_restore *r, char *why, size_t whylen);
void mf_restore_free(struct mf_restore *r);

/* Test seam: the chunk size checkpoints write (CKPT_CHUNK_SIZE; a page
 * multiple up to CKPT_CHUNK_MAX), so images of other sizes can be made. */
extern uint32_t mf_save_chunk_size;

/* Test seam: how often the map backend looks whether its lease on
 * pages.img is being broken (ms; 500). */
extern unsigned mf_lease_poll_ms;
/* Test seam: fs.lease-break-time as the map backend takes it (s; 0: read
 * the sysctl). */
extern long mf_lease_break_s;

/* Test seam: how the io_uring backend sets up its ring (entries, ring). */
struct io_uring;
extern int (*mf_uring_setup)(unsigned entries, struct io_uring *ring);

#endif /* NETSTACK_CHECKPOINT_MEMFILE_H */
