/* SPDX-License-Identifier: MIT */
/*
 * memfile.c - the embedder's memory regions (create, find, free with the
 * stack), saving them as pages.img and pages.meta beside a checkpoint's
 * state (zero pages skipped, chunks CRC'ed, optionally zstd-compressed,
 * optionally written with O_DIRECT, all on the sidecar thread while
 * state.pb is written), and the restore side: checking pages.meta against
 * state.pb, mapping fresh regions and handing the chunks to the loader
 * (loader.c). The formats are in memfile.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zstd.h>

#include "clock.h"
#include "internal.h"
#include "memfile.h"

#define WRITE_BATCH	(1u << 20)	/* bytes per pwritev() of an uncompressed save */
#define WRITE_IOV	64u
#define ZSTD_LEVEL	1		/* fast: the save is on the checkpoint's path */

static uint64_t align_up(uint64_t v)
{
	return (v + CKPT_PAGE - 1) & ~(uint64_t)(CKPT_PAGE - 1);
}

/* ------------------------------------------------------------------ */
/* Regions                                                             */
/* ------------------------------------------------------------------ */

static void memfile_free(struct ns_memfile *mf)
{
	if (!mf)
		return;
	mf_loader_stop(mf);
	mf_uffd_stop(mf);
	if (mf->uffd >= 0)
		close(mf->uffd);
	if (mf->uffd_stopfd >= 0)
		close(mf->uffd_stopfd);
	for (unsigned i = 0; i < mf->nregions; i++) {
		munmap(mf->regions[i]->addr, mf->regions[i]->size);
		free(mf->regions[i]);
	}
	if (mf->fd >= 0)
		close(mf->fd);
	free(mf->chunks);
	free(mf->prio);
	pthread_mutex_destroy(&mf->mu);
	pthread_cond_destroy(&mf->done_cond);
	pthread_cond_destroy(&mf->work_cond);
	pthread_cond_destroy(&mf->lease_cond);
	free(mf);
}

/* The stack's memfile, made on first use (stack lock taken here). */
static struct ns_memfile *memfile_get(struct ns_stack *s)
{
	struct ns_memfile *mf;
	pthread_condattr_t ca;

	ns_lock(s);
	mf = s->memfile;
	if (!mf && (mf = calloc(1, sizeof(*mf)))) {
		pthread_mutex_init(&mf->mu, NULL);
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&mf->done_cond, &ca);
		pthread_cond_init(&mf->lease_cond, &ca);
		pthread_condattr_destroy(&ca);
		pthread_cond_init(&mf->work_cond, NULL);
		mf->fd = -1;
		mf->wakefd = -1;
		mf->uffd = -1;
		mf->uffd_stopfd = -1;
		mf->backend = "none";
		s->memfile = mf;
		s->memfile_free = memfile_free;
	}
	ns_unlock(s);
	return mf;
}

static bool name_valid(const char *name)
{
	size_t n;

	if (!name)
		return false;
	n = strnlen(name, NS_REGION_NAME_MAX);
	return n > 0 && n < NS_REGION_NAME_MAX;
}

static struct ns_region *region_lookup(struct ns_memfile *mf, const char *name)
{
	for (unsigned i = 0; i < mf->nregions; i++)
		if (!strcmp(mf->regions[i]->name, name))
			return mf->regions[i];
	return NULL;
}

/* Map a zeroed region and add it (mf->mu held). */
static int region_add(struct ns_memfile *mf, const char *name, uint64_t size,
		      struct ns_region **rp)
{
	struct ns_region *r;
	void *addr;

	if (region_lookup(mf, name))
		return -EEXIST;
	if (mf->nregions == CKPT_MAX_REGIONS)
		return -ENOSPC;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	/* Anonymous private memory: zero pages cost nothing until written,
	 * which is what a restore leaves zero pages as. */
	addr = mmap(NULL, size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (addr == MAP_FAILED) {
		free(r);
		return -ENOMEM;
	}
	r->mf = mf;
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->addr = addr;
	r->size = size;
	mf->regions[mf->nregions++] = r;
	*rp = r;
	return 0;
}

int ns_memfile_region_create(struct ns_stack *s, const char *name, size_t size,
			     struct ns_region **rp)
{
	struct ns_memfile *mf;
	int rc;

	if (!s || !rp || !name_valid(name) || size == 0 || size > CKPT_REGION_MAX)
		return -EINVAL;
	mf = memfile_get(s);
	if (!mf)
		return -ENOMEM;
	pthread_mutex_lock(&mf->mu);
	rc = mf->loading ? -EBUSY : region_add(mf, name, align_up(size), rp);
	pthread_mutex_unlock(&mf->mu);
	return rc;
}

int ns_memfile_region_find(struct ns_stack *s, const char *name, struct ns_region **rp)
{
	struct ns_memfile *mf;
	struct ns_region *r;

	if (!s || !rp || !name_valid(name))
		return -EINVAL;
	ns_lock(s);
	mf = s->memfile;
	ns_unlock(s);
	if (!mf)
		return -ENOENT;
	pthread_mutex_lock(&mf->mu);
	r = region_lookup(mf, name);
	pthread_mutex_unlock(&mf->mu);
	if (!r)
		return -ENOENT;
	*rp = r;
	return 0;
}

void *ns_region_addr(const struct ns_region *r)
{
	return r ? r->addr : NULL;
}

size_t ns_region_size(const struct ns_region *r)
{
	return r ? r->size : 0;
}

/* ------------------------------------------------------------------ */
/* Save                                                                */
/* ------------------------------------------------------------------ */

struct mf_save {
	struct ns_memfile *mf;
	enum ns_compression compression;
	bool direct;
	struct mf_index ix;
	size_t cap;
	bool img_made, meta_made, img_published, meta_published;
};

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t acc = 0;

	for (unsigned i = 0; i < CKPT_PAGE / sizeof(*w); i++)
		acc |= w[i];
	return acc == 0;
}

static int chunk_add(struct mf_save *sv, unsigned region, uint64_t off, uint64_t len)
{
	struct mf_chunk *c;

	if (sv->ix.nchunks == sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 1024;

		c = realloc(sv->ix.chunks, cap * sizeof(*c));
		if (!c)
			return -ENOMEM;
		sv->ix.chunks = c;
		sv->cap = cap;
	}
	sv->ix.chunks[sv->ix.nchunks++] = (struct mf_chunk){
		.region = region, .off = off, .len = len,
	};
	return 0;
}

/* The chunks of one region: its non-zero runs, cut at chunk_size. */
static int region_chunks(struct mf_save *sv, unsigned ri)
{
	const struct ns_region *r = sv->mf->regions[ri];
	uint64_t p = 0, start;
	int rc;

	sv->ix.regions[ri].first = sv->ix.nchunks;
	while (p < r->size) {
		if (page_is_zero(r->addr + p)) {
			p += CKPT_PAGE;
			continue;
		}
		start = p;
		do
			p += CKPT_PAGE;
		while (p < r->size && p - start < sv->ix.chunk_size && !page_is_zero(r->addr + p));
		if ((rc = chunk_add(sv, ri, start, p - start)))
			return rc;
	}
	sv->ix.regions[ri].n = sv->ix.nchunks - sv->ix.regions[ri].first;
	return 0;
}

void mf_iov_advance(struct iovec **iovp, int *np, size_t bytes)
{
	struct iovec *iov = *iovp;
	int n = *np;

	while (n > 0 && bytes >= iov->iov_len) {
		bytes -= iov->iov_len;
		iov++;
		n--;
	}
	if (n > 0) {
		iov->iov_base = (uint8_t *)iov->iov_base + bytes;
		iov->iov_len -= bytes;
	}
	*iovp = iov;
	*np = n;
}

static int pwrite_all(int fd, struct iovec *iov, int n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwritev(fd, iov, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		off += (uint64_t)w;
		mf_iov_advance(&iov, &n, (size_t)w);
	}
	return 0;
}

/* Uncompressed: the chunks back to back, many per pwritev(). */
static int write_plain(struct mf_save *sv, int fd)
{
	struct iovec iov[WRITE_IOV];
	uint64_t foff = 0, batch_off = 0, batch = 0;
	int n = 0, rc;

	for (size_t k = 0; k < sv->ix.nchunks; k++) {
		struct mf_chunk *c = &sv->ix.chunks[k];
		uint8_t *src = sv->mf->regions[c->region]->addr + c->off;

		c->crc = ckpt_crc32c(src, c->len);
		c->foff = foff;
		c->flen = c->len;
		foff += c->len;
		if (n == (int)WRITE_IOV || batch + c->len > WRITE_BATCH) {
			if ((rc = pwrite_all(fd, iov, n, batch_off)))
				return rc;
			batch_off += batch;
			batch = 0;
			n = 0;
		}
		iov[n++] = (struct iovec){ .iov_base = src, .iov_len = c->len };
		batch += c->len;
	}
	if (n && (rc = pwrite_all(fd, iov, n, batch_off)))
		return rc;
	sv->ix.file_size = foff;
	return 0;
}

/* zstd: one frame per chunk (or the chunk raw), each padded to the next 4 KiB. */
static int write_zstd(struct mf_save *sv, int fd)
{
	size_t cap = align_up(ZSTD_compressBound(sv->ix.chunk_size));
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	uint64_t foff = 0;
	uint8_t *out = NULL;
	int rc = 0;

	/* Aligned, so that O_DIRECT can write it. */
	if (!cctx || posix_memalign((void **)&out, CKPT_PAGE, cap)) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t k = 0; k < sv->ix.nchunks; k++) {
		struct mf_chunk *c = &sv->ix.chunks[k];
		uint8_t *src = sv->mf->regions[c->region]->addr + c->off;
		struct iovec iov;
		size_t z;

		c->crc = ckpt_crc32c(src, c->len);
		z = ZSTD_compressCCtx(cctx, out, cap, src, c->len, ZSTD_LEVEL);
		if (ZSTD_isError(z)) {
			rc = -EIO;
			goto out;
		}
		/* Pages that do not compress (already compressed or encrypted
		 * data) go in raw, file_length = length, so the file never
		 * grows past the plain one. */
		if (z >= c->len) {
			memcpy(out, src, c->len);
			z = c->len;
		}
		memset(out + z, 0, align_up(z) - z);
		c->foff = foff;
		c->flen = z;
		iov = (struct iovec){ .iov_base = out, .iov_len = align_up(z) };
		if ((rc = pwrite_all(fd, &iov, 1, foff)))
			goto out;
		foff += align_up(z);
	}
	sv->ix.file_size = foff;
out:
	free(out);
	ZSTD_freeCCtx(cctx);
	return rc;
}

static int save_write(void *arg, int dfd, const char *dir, char *why, size_t whylen)
{
	struct mf_save *sv = arg;
	uint8_t *meta = NULL;
	size_t meta_len;
	int fd, rc;

	for (unsigned i = 0; i < sv->ix.nregions; i++)
		if ((rc = region_chunks(sv, i)))
			return ckpt_fail(why, whylen, rc, "indexing region '%s': %s",
					 sv->ix.regions[i].name, strerror(-rc));
	fd = ckpt_tmp_create(dfd, dir, CKPT_PAGES_IMG_TMP, sv->direct ? O_DIRECT : 0, why,
			     whylen);
	if (fd == -EINVAL && sv->direct)
		return ckpt_fail(why, whylen, -EINVAL,
				 "--direct: the file system of %s does not support O_DIRECT", dir);
	if (fd < 0)
		return fd;
	sv->img_made = true;
	rc = sv->compression == NS_COMPRESSION_ZSTD ? write_zstd(sv, fd) : write_plain(sv, fd);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (rc)
		return ckpt_fail(why, whylen, rc, "writing %s/%s: %s", dir, CKPT_PAGES_IMG_TMP,
				 strerror(-rc));
	rc = mf_index_encode(&sv->ix, &meta, &meta_len, why, whylen);
	if (rc)
		return rc;
	fd = ckpt_tmp_create(dfd, dir, CKPT_PAGES_META_TMP, 0, why, whylen);
	if (fd < 0) {
		free(meta);
		return fd;
	}
	sv->meta_made = true;
	rc = ckpt_write_all(fd, meta, meta_len);
	free(meta);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (rc)
		return ckpt_fail(why, whylen, rc, "writing %s/%s: %s", dir, CKPT_PAGES_META_TMP,
				 strerror(-rc));
	return 0;
}

static int save_publish(void *arg, int dfd, const char *dir, char *why, size_t whylen)
{
	struct mf_save *sv = arg;
	int rc;

	rc = ckpt_publish(dfd, CKPT_PAGES_IMG_TMP, CKPT_PAGES_IMG);
	if (!rc) {
		sv->img_published = true;
		rc = ckpt_publish(dfd, CKPT_PAGES_META_TMP, CKPT_PAGES_META);
	}
	if (rc)
		return ckpt_fail(why, whylen, rc, "renaming the page files in %s: %s", dir,
				 strerror(-rc));
	sv->meta_published = true;
	return 0;
}

static void save_discard(void *arg, int dfd)
{
	struct mf_save *sv = arg;

	if (sv->img_made)
		unlinkat(dfd, sv->img_published ? CKPT_PAGES_IMG : CKPT_PAGES_IMG_TMP, 0);
	if (sv->meta_made)
		unlinkat(dfd, sv->meta_published ? CKPT_PAGES_META : CKPT_PAGES_META_TMP, 0);
}

uint32_t mf_save_chunk_size = CKPT_CHUNK_SIZE;

void mf_save_free(struct mf_save *sv)
{
	if (!sv)
		return;
	mf_index_release(&sv->ix);
	free(sv);
}

int mf_save_prepare(struct ns_stack *s, const struct ns_checkpoint_opts *opts,
		    struct ns_state *st, struct ckpt_sidecar *side, struct mf_save **savep,
		    char *why, size_t whylen)
{
	struct ns_memfile *mf;
	struct mf_save *sv;
	uint64_t id = 0;
	int rc;

	*savep = NULL;
	memset(side, 0, sizeof(*side));
	ns_lock(s);
	mf = s->memfile;
	ns_unlock(s);
	if (!mf)
		return 0;
	/* Memory that is not in yet cannot be saved. */
	rc = ns_memfile_wait(s, -1);
	if (rc) {
		struct ns_memfile_progress p;

		ns_memfile_progress(s, &p);
		return ckpt_fail(why, whylen, rc, "the memory is not all loaded: %s", p.why);
	}
	pthread_mutex_lock(&mf->mu);
	if (mf->nregions == 0) {
		pthread_mutex_unlock(&mf->mu);
		return 0;
	}
	sv = calloc(1, sizeof(*sv));
	if (!sv) {
		pthread_mutex_unlock(&mf->mu);
		return ckpt_fail(why, whylen, -ENOMEM, "out of memory");
	}
	while (id == 0)
		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			id = (uint64_t)tw_mono_ns() * 0x9e3779b97f4a7c15ull;
	sv->mf = mf;
	sv->compression = opts->compression;
	sv->direct = opts->direct;
	sv->ix.image_id = id;
	sv->ix.compression = opts->compression;
	sv->ix.chunk_size = mf_save_chunk_size;
	sv->ix.nregions = mf->nregions;
	for (unsigned i = 0; i < mf->nregions; i++) {
		snprintf(sv->ix.regions[i].name, sizeof(sv->ix.regions[i].name), "%s",
			 mf->regions[i]->name);
		sv->ix.regions[i].size = mf->regions[i]->size;
	}
	st->memory_id = id;
	st->memory_regions = mf->nregions;
	pthread_mutex_unlock(&mf->mu);
	*side = (struct ckpt_sidecar){
		.write = save_write, .publish = save_publish, .discard = save_discard, .arg = sv,
	};
	*savep = sv;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Restore                                                             */
/* ------------------------------------------------------------------ */

struct mf_restore {
	struct mf_index ix;
	int fd, uffd;
	bool background, direct;
	enum ns_memfile_backend backend;
	unsigned qd, loaders;
	size_t read_max;
};

void mf_restore_free(struct mf_restore *r)
{
	if (!r)
		return;
	mf_index_release(&r->ix);
	if (r->fd >= 0)
		close(r->fd);
	if (r->uffd >= 0)
		close(r->uffd);
	free(r);
}

static int pages_open(const char *dir, bool direct, int *fdp, struct stat *sb, char *why,
		      size_t whylen)
{
	int dfd, fd;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return ckpt_fail(why, whylen, -errno, "image directory %s: %s", dir,
				 strerror(errno));
	fd = openat(dfd, CKPT_PAGES_IMG, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (direct ? O_DIRECT : 0));
	close(dfd);
	if (fd < 0) {
		int rc = -errno;

		if (rc == -ENOENT)
			return ckpt_fail(why, whylen, rc,
					 "%s has state with memory but no %s (incomplete image)",
					 dir, CKPT_PAGES_IMG);
		if (rc == -EINVAL && direct)
			return ckpt_fail(why, whylen, rc,
					 "%s/%s: the file system does not support O_DIRECT", dir,
					 CKPT_PAGES_IMG);
		return ckpt_fail(why, whylen, rc, "%s/%s: %s", dir, CKPT_PAGES_IMG,
				 rc == -ELOOP ? "a symlink, not an image file" : strerror(-rc));
	}
	if (fstat(fd, sb) < 0 || !S_ISREG(sb->st_mode)) {
		close(fd);
		return ckpt_fail(why, whylen, -EINVAL, "%s/%s is not a regular file", dir,
				 CKPT_PAGES_IMG);
	}
	*fdp = fd;
	return 0;
}

int mf_restore_prepare(const char *dir, const struct ns_state *st,
		       const struct ns_restore_opts *opts, struct mf_restore **rp,
		       char *why, size_t whylen)
{
	struct mf_restore *r;
	uint8_t *buf = NULL;
	struct stat sb;
	size_t len;
	int rc;

	*rp = NULL;
	if (!st->memory_id)
		return 0;
	r = calloc(1, sizeof(*r));
	if (!r)
		return ckpt_fail(why, whylen, -ENOMEM, "out of memory");
	r->fd = r->uffd = -1;
	rc = ckpt_file_load(dir, CKPT_PAGES_META, CKPT_PAGES_META_MAX, &buf, &len, why, whylen);
	if (rc)
		goto fail;
	rc = mf_index_decode(buf, len, &r->ix, why, whylen);
	free(buf);
	if (rc) {
		ckpt_why_prefix(why, whylen, dir, CKPT_PAGES_META);
		goto fail;
	}
	if (r->ix.image_id != st->memory_id || r->ix.nregions != st->memory_regions) {
		rc = ckpt_fail(why, whylen, -EPROTO,
			       "%s/%s belongs to another checkpoint than %s", dir,
			       CKPT_PAGES_META, CKPT_STATE_FILE);
		goto fail;
	}
	rc = pages_open(dir, opts->direct, &r->fd, &sb, why, whylen);
	if (rc)
		goto fail;
	/* A short pages.img is refused up front in the foreground; in the
	 * background the ranges it lacks fail, with -EIO to their awaiters. */
	if ((uint64_t)sb.st_size != r->ix.file_size && !opts->background) {
		rc = ckpt_fail(why, whylen, -EBADMSG,
			       "%s/%s has %lld bytes, %s says %llu (truncated or damaged)", dir,
			       CKPT_PAGES_IMG, (long long)sb.st_size, CKPT_PAGES_META,
			       (unsigned long long)r->ix.file_size);
		goto fail;
	}
	if (opts->backend > NS_MEMFILE_MAP) {
		rc = ckpt_fail(why, whylen, -EINVAL, "unknown page loader backend %d",
			       (int)opts->backend);
		goto fail;
	}
	if (opts->demand_paging && !opts->background) {
		rc = ckpt_fail(why, whylen, -EINVAL, "demand paging is for background restores");
		goto fail;
	}
	/* What the loader was asked for is had now, before anything is made:
	 * a background restore starts serving before its loader starts. */
	if (opts->backend == NS_MEMFILE_MAP &&
	    (rc = mf_map_prepare(&r->ix, r->fd, opts->direct, opts->demand_paging, why, whylen)))
		goto fail;
	if (opts->backend == NS_MEMFILE_IO_URING && (rc = mf_uring_probe(why, whylen)))
		goto fail;
	if (opts->demand_paging && r->ix.nchunks) {
		r->uffd = mf_uffd_open(why, whylen);
		if (r->uffd < 0) {
			rc = r->uffd;
			goto fail;
		}
	}
	r->background = opts->background;
	r->direct = opts->direct;
	r->backend = opts->backend;
	r->qd = opts->queue_depth;
	r->loaders = opts->loaders;
	r->read_max = (size_t)opts->read_kib << 10;
	*rp = r;
	return 0;
fail:
	mf_restore_free(r);
	return rc;
}

int mf_restore_attach(struct ns_stack *s, struct mf_restore *r, char *why, size_t whylen)
{
	struct ns_memfile *mf = memfile_get(s);
	enum ns_memfile_backend backend = r->backend;
	int rc = 0;

	if (!mf) {
		mf_restore_free(r);
		return ckpt_fail(why, whylen, -ENOMEM, "out of memory");
	}
	pthread_mutex_lock(&mf->mu);
	if (mf->nregions || mf->chunks)
		rc = ckpt_fail(why, whylen, -EBUSY, "the stack has memory regions already");
	for (unsigned i = 0; !rc && i < r->ix.nregions; i++) {
		struct ns_region *reg;

		rc = region_add(mf, r->ix.regions[i].name, r->ix.regions[i].size, &reg);
		if (rc) {
			ckpt_fail(why, whylen, rc, "cannot map region '%s' (%llu bytes): %s",
				  r->ix.regions[i].name,
				  (unsigned long long)r->ix.regions[i].size, strerror(-rc));
			break;
		}
		reg->first = r->ix.regions[i].first;
		reg->n = r->ix.regions[i].n;
	}
	if (!rc) {
		mf->chunks = r->ix.chunks;
		mf->nchunks = r->ix.nchunks;
		r->ix.chunks = NULL;
		mf->compression = r->ix.compression;
		mf->direct = r->direct;
		mf->background = r->background;
		mf->fd = r->fd;
		r->fd = -1;
		mf->uffd = r->uffd;
		r->uffd = -1;
		mf->qd = r->qd;
		mf->loaders = r->loaders;
		mf->chunk_size = r->ix.chunk_size;
		mf->read_max = r->read_max;
	}
	pthread_mutex_unlock(&mf->mu);
	mf_restore_free(r);
	if (rc)
		return rc;
	/* Before the loader: it reads into bounce buffers with it. */
	if (mf->uffd >= 0 && (rc = mf_uffd_start(mf, why, whylen)))
		return rc;
	return mf_loader_start(mf, backend, why, whylen);
}
