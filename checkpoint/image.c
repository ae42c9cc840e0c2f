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
	memcpy(buf, CKPT_IMAGE_MAGIC, CKPT_IMAGE_MAGIC_LEN);
	put_le32(buf + CKPT_HDR_OFF_VERSION, CKPT_IMAGE_VERSION);
	put_le32(buf + CKPT_HDR_OFF_HDR_LEN, CKPT_IMAGE_HDR_LEN);
	put_le64(buf + CKPT_HDR_OFF_PAYLOAD_LEN, len);
	put_le32(buf + CKPT_HDR_OFF_PAYLOAD_CRC, ckpt_crc32c(buf + CKPT_IMAGE_HDR_LEN, len));
	put_le32(buf + CKPT_HDR_OFF_HDR_CRC, ckpt_crc32c(buf, CKPT_HDR_OFF_HDR_CRC));
	*bufp = buf;
	*lenp = CKPT_IMAGE_HDR_LEN + len;
	return 0;
}

static int truncated(char *why, size_t whylen, size_t len, const char *what, uint64_t need)
{
	return ckpt_fail(why, whylen, -EBADMSG, "truncated: %zu bytes, %s needs %llu",
			 len, what, (unsigned long long)need);
}

int ckpt_image_decode(const uint8_t *buf, size_t len, struct ns_state *st,
		      char *why, size_t whylen)
{
	uint32_t version, hdr_len, crc;
	uint64_t payload_len;

	if (len == 0)
		return ckpt_fail(why, whylen, -EBADMSG, "empty file");
	if (len > CKPT_IMAGE_MAX_SIZE)
		return ckpt_fail(why, whylen, -EFBIG, "%zu bytes, over the limit of %u",
				 len, CKPT_IMAGE_MAX_SIZE);
	if (memcmp(buf, CKPT_IMAGE_MAGIC, len < CKPT_IMAGE_MAGIC_LEN ? len : CKPT_IMAGE_MAGIC_LEN))
		return ckpt_fail(why, whylen, -EINVAL, "not a netstack image");
	if (len < CKPT_HDR_OFF_VERSION + 4)
		return truncated(why, whylen, len, "the header", CKPT_IMAGE_HDR_LEN);
	/* The version first: a newer format's header may differ from ours. */
	version = get_le32(buf + CKPT_HDR_OFF_VERSION);
	if (version > CKPT_IMAGE_VERSION)
		return ckpt_fail(why, whylen, -EPROTONOSUPPORT,
				 "image format %u is newer than this netstack (%u)",
				 version, CKPT_IMAGE_VERSION);
	if (version != CKPT_IMAGE_VERSION)
		return ckpt_fail(why, whylen, -EPROTONOSUPPORT,
				 "image format %u is not one this netstack reads (%u)",
				 version, CKPT_IMAGE_VERSION);
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
		return ckpt_fail(why, whylen, -EBADMSG, "%llu bytes after the end of the image",
				 (unsigned long long)(len - CKPT_IMAGE_HDR_LEN - payload_len));
	crc = ckpt_crc32c(buf + CKPT_IMAGE_HDR_LEN, payload_len);
	if (crc != get_le32(buf + CKPT_HDR_OFF_PAYLOAD_CRC))
		return ckpt_fail(why, whylen, -EBADMSG, "payload checksum mismatch (damaged)");
	return ckpt_state_unpack(buf + CKPT_IMAGE_HDR_LEN, payload_len, version, st, why, whylen);
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

int ckpt_image_read(const char *dir, struct ns_state *st, char *why, size_t whylen)
{
	uint8_t *buf = NULL;
	struct stat sb;
	int dfd, fd = -1, rc;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return ckpt_fail(why, whylen, -errno, "image directory %s: %s",
				 dir, strerror(errno));
	fd = openat(dfd, CKPT_STATE_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ELOOP)
			ckpt_fail(why, whylen, rc, "%s/%s is a symlink, not an image file",
				  dir, CKPT_STATE_FILE);
		else if (rc == -ENOENT)
			ckpt_fail(why, whylen, rc,
				  "%s has no %s (not an image, or an incomplete one)",
				  dir, CKPT_STATE_FILE);
		else
			ckpt_fail(why, whylen, rc, "%s/%s: %s",
				  dir, CKPT_STATE_FILE, strerror(-rc));
		goto out;
	}
	if (fstat(fd, &sb) < 0) {
		rc = ckpt_fail(why, whylen, -errno, "%s/%s: %s",
			       dir, CKPT_STATE_FILE, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		rc = ckpt_fail(why, whylen, -EINVAL, "%s/%s is not a regular file",
			       dir, CKPT_STATE_FILE);
		goto out;
	}
	if ((uint64_t)sb.st_size > CKPT_IMAGE_MAX_SIZE) {
		rc = ckpt_fail(why, whylen, -EFBIG, "%s/%s: %lld bytes, over the limit of %u",
			       dir, CKPT_STATE_FILE, (long long)sb.st_size, CKPT_IMAGE_MAX_SIZE);
		goto out;
	}
	buf = malloc((size_t)sb.st_size + 1);
	if (!buf) {
		rc = ckpt_fail(why, whylen, -ENOMEM, "%s/%s: out of memory", dir, CKPT_STATE_FILE);
		goto out;
	}
	rc = read_exact(fd, buf, (size_t)sb.st_size);
	if (rc == -ESTALE) {
		rc = ckpt_fail(why, whylen, -EBADMSG, "%s/%s changed size while being read",
			       dir, CKPT_STATE_FILE);
		goto out;
	}
	if (rc) {
		ckpt_fail(why, whylen, rc, "%s/%s: %s", dir, CKPT_STATE_FILE, strerror(-rc));
		goto out;
	}
	rc = ckpt_image_decode(buf, (size_t)sb.st_size, st, why, whylen);
	if (rc && why && whylen) {
		char *reason = strdup(why);

		if (reason) {
			ckpt_fail(why, whylen, rc, "%s/%s: %s", dir, CKPT_STATE_FILE, reason);
			free(reason);
		}
	}
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	close(dfd);
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

static int write_all(int fd, const uint8_t *buf, size_t len)
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
static int fsync_dir(int dfd)
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
	rc = fsync_dir(fd);
	close(fd);
	return rc;
}

/* Move the temporary file to state.pb, never replacing an existing one. */
static int publish(int dfd)
{
	if (renameat2(dfd, CKPT_STATE_TMP, dfd, CKPT_STATE_FILE, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* A filesystem without RENAME_NOREPLACE: the directory was empty
	 * when we took it, so a plain rename is all that is left. */
	if (faccessat(dfd, CKPT_STATE_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	return renameat(dfd, CKPT_STATE_TMP, dfd, CKPT_STATE_FILE) < 0 ? -errno : 0;
}

int ckpt_image_write(const char *dir, const struct ns_state *st, char *why, size_t whylen)
{
	bool created, tmp_made = false, published = false;
	uint8_t *buf = NULL;
	int dfd = -1, fd = -1, rc;
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
	fd = openat(dfd, CKPT_STATE_TMP, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd < 0) {
		rc = ckpt_fail(why, whylen, -errno, "cannot create %s/%s: %s",
			       path, CKPT_STATE_TMP, strerror(errno));
		goto fail;
	}
	tmp_made = true;
	rc = write_all(fd, buf, len);
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
	rc = publish(dfd);
	if (rc) {
		ckpt_fail(why, whylen, rc, "renaming %s/%s to %s: %s",
			  path, CKPT_STATE_TMP, CKPT_STATE_FILE, strerror(-rc));
		goto fail;
	}
	published = true;
	rc = fsync_dir(dfd);
	if (!rc && created)
		rc = fsync_parent(path);
	if (rc) {
		ckpt_fail(why, whylen, rc, "syncing image directory %s: %s", path, strerror(-rc));
		goto fail;
	}
	goto out;
fail:
	/* Leave nothing that could pass for an image, nor our debris. */
	if (published) {
		unlinkat(dfd, CKPT_STATE_FILE, 0);
		fsync_dir(dfd);
	} else if (tmp_made) {
		unlinkat(dfd, CKPT_STATE_TMP, 0);
	}
	if (created)
		rmdir(path);
out:
	if (dfd >= 0)
		close(dfd);
	free(path);
	free(buf);
	return rc;
}
