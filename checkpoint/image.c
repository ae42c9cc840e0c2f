/* SPDX-License-Identifier: MIT */
/*
 * image.c - the state file of a checkpoint image on disk: its header
 * (layout in image.h) with CRC32C from ISA-L, creating or vetting the image
 * directory, writing state.pb through a temporary file, fsync and rename so
 * that a crash or an error never leaves a state.pb that looks complete, and
 * reading one back with every check done before the caller gets anything.
 * What the payload holds is state_pb.c's business.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <isa-l/crc.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"

static_assert(sizeof(CKPT_IMAGE_MAGIC) - 1 == CKPT_IMAGE_MAGIC_LEN, "the magic is 8 bytes");
static_assert(CKPT_HDR_OFF_HDR_CRC + 4 == CKPT_IMAGE_HDR_LEN, "the header ends with its CRC");
static_assert(CKPT_IMAGE_MAX_SIZE <= 0x7fffffffu, "ISA-L takes an int length");

int ckpt_fail(char *why, size_t whylen, int err, const char *fmt, ...)
{
	va_list ap;
	char *p;

	if (!why || !whylen)
		return err;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	for (p = why; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return err;
}

uint32_t ckpt_crc32c(const void *buf, size_t len)
{
	/* ISA-L neither inverts the initial value nor the result itself;
	 * CRC32C proper starts from ~0 and inverts at the end. */
	return ~crc32_iscsi((unsigned char *)buf, (int)len, 0xffffffffu);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

void ckpt_frame_header(uint8_t *buf, const char *magic, uint32_t version, size_t payload_len)
{
	memcpy(buf, magic, CKPT_IMAGE_MAGIC_LEN);
	put_le32(buf + CKPT_HDR_OFF_VERSION, version);
	put_le32(buf + CKPT_HDR_OFF_HDR_LEN, CKPT_IMAGE_HDR_LEN);
	put_le64(buf + CKPT_HDR_OFF_PAYLOAD_LEN, payload_len);
	put_le32(buf + CKPT_HDR_OFF_PAYLOAD_CRC,
		 ckpt_crc32c(buf + CKPT_IMAGE_HDR_LEN, payload_len));
	put_le32(buf + CKPT_HDR_OFF_HDR_CRC, ckpt_crc32c(buf, CKPT_HDR_OFF_HDR_CRC));
}

int ckpt_image_encode(const struct ns_state *st, uint8_t **bufp, size_t *lenp,
		      char *why, size_t whylen)
{
	uint8_t *buf;
	size_t len;
	int rc;

	rc = ckpt_state_pack(st, CKPT_IMAGE_HDR_LEN, CKPT_IMAGE_MAX_SIZE - CKPT_IMAGE_HDR_LEN,
			     &buf, &len, why, whylen);
	if (rc)
		return rc;
	ckpt_frame_header(buf, CKPT_IMAGE_MAGIC, CKPT_IMAGE_VERSION, len);
	*bufp = buf;
	*lenp = CKPT_IMAGE_HDR_LEN + len;
	return 0;
}

static int truncated(char *why, size_t whylen, size_t len, const char *what, uint64_t need)
{
	return ckpt_fail(why, whylen, -EBADMSG, "truncated: %zu bytes, %s needs %llu",
			 len, what, (unsigned long long)need);
}

int ckpt_frame_decode(const struct ckpt_frame_kind *k, const uint8_t *buf, size_t len,
		      uint32_t *versionp, const uint8_t **payloadp, size_t *payload_lenp,
		      char *why, size_t whylen)
{
	uint32_t version, hdr_len, crc;
	uint64_t payload_len;

	if (len == 0)
		return ckpt_fail(why, whylen, -EBADMSG, "empty file");
	if (len > k->max_size)
		return ckpt_fail(why, whylen, -EFBIG, "%zu bytes, over the limit of %zu",
				 len, k->max_size);
	if (memcmp(buf, k->magic, len < CKPT_IMAGE_MAGIC_LEN ? len : CKPT_IMAGE_MAGIC_LEN))
		return ckpt_fail(why, whylen, -EINVAL, "not a netstack %s", k->what);
	if (len < CKPT_HDR_OFF_VERSION + 4)
		return truncated(why, whylen, len, "the header", CKPT_IMAGE_HDR_LEN);
	/* The version first: a newer format's header may differ from ours. */
	version = get_le32(buf + CKPT_HDR_OFF_VERSION);
	if (version > k->max_version)
		return ckpt_fail(why, whylen, -EPROTONOSUPPORT,
				 "%s format %u is newer than this netstack (%u)",
				 k->what, version, k->max_version);
	if (version < k->min_version)
		return ckpt_fail(why, whylen, -EPROTONOSUPPORT,
				 "%s format %u is not one this netstack reads (%u..%u)",
				 k->what, version, k->min_version, k->max_version);
	if (len < CKPT_IMAGE_HDR_LEN)
		return truncated(why, whylen, len, "the header", CKPT_IMAGE_HDR_LEN);
	crc = ckpt_crc32c(buf, CKPT_HDR_OFF_HDR_CRC);
	if (crc != get_le32(buf + CKPT_HDR_OFF_HDR_CRC))
		return ckpt_fail(why, whylen, -EBADMSG, "header checksum mismatch (damaged)");
	hdr_len = get_le32(buf + CKPT_HDR_OFF_HDR_LEN);
	if (hdr_len != CKPT_IMAGE_HDR_LEN)
		return ckpt_fail(why, whylen, -EBADMSG, "header length %u, format %u has %u",
				 hdr_len, version, CKPT_IMAGE_HDR_LEN);
	payload_len = get_le64(buf + CKPT_HDR_OFF_PAYLOAD_LEN);
	if (len - CKPT_IMAGE_HDR_LEN < payload_len)
		return truncated(why, whylen, len, "the header and payload",
				 CKPT_IMAGE_HDR_LEN + payload_len);
	if (len - CKPT_IMAGE_HDR_LEN > payload_len)
		return ckpt_fail(why, whylen, -EBADMSG, "%llu bytes after the end of the %s",
				 (unsigned long long)(len - CKPT_IMAGE_HDR_LEN - payload_len),
				 k->what);
	crc = ckpt_crc32c(buf + CKPT_IMAGE_HDR_LEN, payload_len);
	if (crc != get_le32(buf + CKPT_HDR_OFF_PAYLOAD_CRC))
		return ckpt_fail(why, whylen, -EBADMSG, "payload checksum mismatch (damaged)");
	*versionp = version;
	*payloadp = buf + CKPT_IMAGE_HDR_LEN;
	*payload_lenp = payload_len;
	return 0;
}

static const struct ckpt_frame_kind state_kind = {
	.magic = CKPT_IMAGE_MAGIC, .what = "image", .max_size = CKPT_IMAGE_MAX_SIZE,
	.min_version = CKPT_IMAGE_VERSION_MIN, .max_version = CKPT_IMAGE_VERSION,
};

int ckpt_image_decode(const uint8_t *buf, size_t len, struct ns_state *st,
		      char *why, size_t whylen)
{
	const uint8_t *payload;
	size_t payload_len;
	uint32_t version;
	int rc;

	rc = ckpt_frame_decode(&state_kind, buf, len, &version, &payload, &payload_len,
			       why, whylen);
	if (rc)
		return rc;
	return ckpt_state_unpack(payload, payload_len, version, st, why, whylen);
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

/* All of @fd, a regular file of @size bytes, into @buf; a file that
 * changes size meanwhile is refused. */
static int read_exact(int fd, uint8_t *buf, size_t size)
{
	size_t got = 0;
	uint8_t extra;
	ssize_t n;

	while (got < size) {
		n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ESTALE;
		got += (size_t)n;
	}
	do
		n = read(fd, &extra, 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n ? -ESTALE : 0;
}

int ckpt_file_load(const char *dir, const char *name, size_t max, uint8_t **bufp, size_t *lenp,
		   char *why, size_t whylen)
{
	uint8_t *buf = NULL;
	struct stat sb;
	int dfd, fd = -1, rc;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return ckpt_fail(why, whylen, -errno, "image directory %s: %s",
				 dir, strerror(errno));
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ELOOP)
			ckpt_fail(why, whylen, rc, "%s/%s is a symlink, not an image file",
				  dir, name);
		else if (rc == -ENOENT)
			ckpt_fail(why, whylen, rc,
				  "%s has no %s (not an image, or an incomplete one)",
				  dir, name);
		else
			ckpt_fail(why, whylen, rc, "%s/%s: %s", dir, name, strerror(-rc));
		goto out;
	}
	if (fstat(fd, &sb) < 0) {
		rc = ckpt_fail(why, whylen, -errno, "%s/%s: %s", dir, name, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		rc = ckpt_fail(why, whylen, -EINVAL, "%s/%s is not a regular file", dir, name);
		goto out;
	}
	if ((uint64_t)sb.st_size > max) {
		rc = ckpt_fail(why, whylen, -EFBIG, "%s/%s: %lld bytes, over the limit of %zu",
			       dir, name, (long long)sb.st_size, max);
		goto out;
	}
	buf = malloc((size_t)sb.st_size + 1);
	if (!buf) {
		rc = ckpt_fail(why, whylen, -ENOMEM, "%s/%s: out of memory", dir, name);
		goto out;
	}
	rc = read_exact(fd, buf, (size_t)sb.st_size);
	if (rc == -ESTALE) {
		rc = ckpt_fail(why, whylen, -EBADMSG, "%s/%s changed size while being read",
			       dir, name);
		goto out;
	}
	if (rc) {
		ckpt_fail(why, whylen, rc, "%s/%s: %s", dir, name, strerror(-rc));
		goto out;
	}
	*bufp = buf;
	*lenp = (size_t)sb.st_size;
	buf = NULL;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	close(dfd);
	return rc;
}

void ckpt_why_prefix(char *why, size_t whylen, const char *dir, const char *name)
{
	char *reason;

	if (!why || !whylen)
		return;
	reason = strdup(why);
	if (reason) {
		ckpt_fail(why, whylen, 0, "%s/%s: %s", dir, name, reason);
		free(reason);
	}
}

int ckpt_image_read(const char *dir, struct ns_state *st, char *why, size_t whylen)
{
	uint8_t *buf;
	size_t len;
	int rc;

	rc = ckpt_file_load(dir, CKPT_STATE_FILE, CKPT_IMAGE_MAX_SIZE, &buf, &len, why, whylen);
	if (rc)
		return rc;
	rc = ckpt_image_decode(buf, len, st, why, whylen);
	if (rc)
		ckpt_why_prefix(why, whylen, dir, CKPT_STATE_FILE);
	free(buf);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

static int dir_is_empty(int dfd)
{
	struct dirent *de;
	int fd, rc = 1;
	DIR *d;

	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	errno = 0;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			rc = 0;
			break;
		}
	}
	if (!de && errno)
		rc = -errno;
	closedir(d);
	return rc;
}

/* Create @dir, or take an existing empty one; never through a symlink. */
static int dir_prepare(const char *dir, int *dfdp, bool *created, char *why, size_t whylen)
{
	struct stat sb;
	int dfd, rc;

	*created = false;
	if (mkdir(dir, 0700) == 0) {
		*created = true;
	} else if (errno != EEXIST) {
		return ckpt_fail(why, whylen, -errno, "cannot create image directory %s: %s",
				 dir, strerror(errno));
	} else if (lstat(dir, &sb) < 0) {
		return ckpt_fail(why, whylen, -errno, "image directory %s: %s",
				 dir, strerror(errno));
	} else if (S_ISLNK(sb.st_mode)) {
		return ckpt_fail(why, whylen, -ELOOP, "image directory %s is a symlink", dir);
	} else if (!S_ISDIR(sb.st_mode)) {
		return ckpt_fail(why, whylen, -ENOTDIR, "image directory %s is not a directory",
				 dir);
	}
	/* O_NOFOLLOW: the name may have been swapped for a symlink since. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		rc = ckpt_fail(why, whylen, -errno, "image directory %s: %s", dir, strerror(errno));
		goto fail;
	}
	rc = dir_is_empty(dfd);
	if (rc <= 0) {
		if (rc == 0)
			rc = ckpt_fail(why, whylen, -EEXIST, "image directory %s is not empty",
				       dir);
		else
			ckpt_fail(why, whylen, rc, "image directory %s: %s", dir, strerror(-rc));
		close(dfd);
		goto fail;
	}
	*dfdp = dfd;
	return 0;
fail:
	if (*created)
		rmdir(dir);
	*created = false;
	return rc;
}

int ckpt_write_all(int fd, const uint8_t *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* fsync a directory; EINVAL means the filesystem cannot, which is no error. */
int ckpt_fsync_dir(int dfd)
{
	return fsync(dfd) < 0 && errno != EINVAL ? -errno : 0;
}

/* fsync the directory holding @path, so a new entry for @path lasts. */
static int fsync_parent(const char *path)
{
	char *copy = strdup(path);
	int fd, rc;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -errno;
	rc = ckpt_fsync_dir(fd);
	close(fd);
	return rc;
}

/* Move @tmp to @name, never replacing an existing file. */
int ckpt_publish(int dfd, const char *tmp, const char *name)
{
	if (renameat2(dfd, tmp, dfd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* A filesystem without RENAME_NOREPLACE: the directory was empty
	 * when we took it, so a plain rename is all that is left. */
	if (faccessat(dfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	return renameat(dfd, tmp, dfd, name) < 0 ? -errno : 0;
}

int ckpt_tmp_create(int dfd, const char *dir, const char *tmp, int extra_flags, char *why,
		    size_t whylen)
{
	int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | extra_flags,
			0600);

	if (fd < 0)
		return ckpt_fail(why, whylen, -errno, "cannot create %s/%s: %s",
				 dir, tmp, strerror(errno));
	return fd;
}

/* The sidecar's files are written by a thread while state.pb is. */
struct sidecar_run {
	const struct ckpt_sidecar *side;
	int dfd;
	const char *dir;
	int rc;
	char why[256];
};

static void *sidecar_thread(void *arg)
{
	struct sidecar_run *r = arg;

	r->rc = r->side->write(r->side->arg, r->dfd, r->dir, r->why, sizeof(r->why));
	return NULL;
}

int ckpt_image_write(const char *dir, const struct ns_state *st, char *why, size_t whylen)
{
	return ckpt_image_write_with(dir, st, NULL, why, whylen);
}

int ckpt_image_write_with(const char *dir, const struct ns_state *st,
			  const struct ckpt_sidecar *side, char *why, size_t whylen)
{
	bool created, tmp_made = false, published = false, side_started = false;
	struct sidecar_run run = { .side = side, .rc = 0 };
	uint8_t *buf = NULL;
	int dfd = -1, fd = -1, rc;
	pthread_t side_thread;
	size_t len, n;
	char *path;

	rc = ckpt_image_encode(st, &buf, &len, why, whylen);
	if (rc)
		return rc;
	/* "link/" would resolve the symlink "link" before any O_NOFOLLOW. */
	path = strdup(dir);
	if (!path) {
		free(buf);
		return ckpt_fail(why, whylen, -ENOMEM, "out of memory");
	}
	for (n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
		path[n - 1] = '\0';
	rc = dir_prepare(path, &dfd, &created, why, whylen);
	if (rc)
		goto out;
	if (side) {
		run.dfd = dfd;
		run.dir = path;
		rc = -pthread_create(&side_thread, NULL, sidecar_thread, &run);
		if (rc) {
			ckpt_fail(why, whylen, rc, "cannot start the page writer: %s",
				  strerror(-rc));
			goto fail;
		}
		side_started = true;
	}
	fd = ckpt_tmp_create(dfd, path, CKPT_STATE_TMP, 0, why, whylen);
	if (fd < 0) {
		rc = fd;
		goto fail;
	}
	tmp_made = true;
	rc = ckpt_write_all(fd, buf, len);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	fd = -1;
	if (rc) {
		ckpt_fail(why, whylen, rc, "writing %s/%s: %s",
			  path, CKPT_STATE_TMP, strerror(-rc));
		goto fail;
	}
	if (side_started) {
		pthread_join(side_thread, NULL);
		side_started = false;
		if (run.rc) {
			rc = ckpt_fail(why, whylen, run.rc, "%s", run.why);
			goto fail;
		}
		/* The sidecar's files go in first: state.pb, last, is what
		 * makes the image complete. */
		rc = side->publish(side->arg, dfd, path, why, whylen);
		if (rc)
			goto fail;
	}
	rc = ckpt_publish(dfd, CKPT_STATE_TMP, CKPT_STATE_FILE);
	if (rc) {
		ckpt_fail(why, whylen, rc, "renaming %s/%s to %s: %s",
			  path, CKPT_STATE_TMP, CKPT_STATE_FILE, strerror(-rc));
		goto fail;
	}
	published = true;
	rc = ckpt_fsync_dir(dfd);
	if (!rc && created)
		rc = fsync_parent(path);
	if (rc) {
		ckpt_fail(why, whylen, rc, "syncing image directory %s: %s", path, strerror(-rc));
		goto fail;
	}
	goto out;
fail:
	if (side_started)
		pthread_join(side_thread, NULL);
	/* Leave nothing that could pass for an image, nor our debris. */
	if (published)
		unlinkat(dfd, CKPT_STATE_FILE, 0);
	else if (tmp_made)
		unlinkat(dfd, CKPT_STATE_TMP, 0);
	if (side)
		side->discard(side->arg, dfd);
	ckpt_fsync_dir(dfd);
	if (created)
		rmdir(path);
out:
	if (dfd >= 0)
		close(dfd);
	free(path);
	free(buf);
	return rc;
}
