/* SPDX-License-Identifier: MIT */
/*
 * image.h - the checkpoint image's state file, state.pb: its on-disk format
 * (a fixed little-endian header, then a packed netstack.v1.Image, see
 * netstack.proto), writing it crash-safely into a fresh image directory,
 * and reading it back with every byte and every field validated before the
 * caller sees anything. It converts struct ns_state (netstack/state.h) to
 * and from the payload; protobuf-c types never leave checkpoint/. The page
 * files of the memory file are not handled here.
 *
 * The header, 32 bytes, all integers little-endian:
 *
 *   offset  size  field
 *        0     8  magic "NSTKIMG1"
 *        8     4  format version (CKPT_IMAGE_VERSION)
 *       12     4  header length (32 in version 1)
 *       16     8  payload length: the file holds exactly this many more bytes
 *       24     4  CRC32C (Castagnoli) of the payload
 *       28     4  CRC32C of bytes 0..27 (the header before this field)
 *
 * A reader checks the magic, then the version (a newer one is refused by
 * name: its header may differ), then the header's CRC, then that the file
 * holds exactly the payload, its CRC, that it unpacks, and that every field
 * makes sense (checkpoint/state_pb.c lists the rules).
 *
 * Errors: every function returns 0 or -errno and, when @why is not NULL,
 * writes one line (no newline; control characters replaced by '?') saying
 * what was wrong: -ENOENT (no directory or no state.pb), -ELOOP (a
 * symlink), -EINVAL (not a netstack image, not a regular file; an invalid
 * state given to the writer), -EFBIG (over CKPT_IMAGE_MAX_SIZE),
 * -EPROTONOSUPPORT (a format version this netstack does not read),
 * -EBADMSG (damaged: truncated, trailing bytes, a CRC mismatch, a payload
 * that does not unpack), -EPROTO (well-formed but invalid content: a value
 * out of range, a dangling reference, a field this netstack does not know),
 * -EEXIST (the target directory is not empty), -ENOMEM, or the errno of a
 * failed system call.
 */
#ifndef NETSTACK_CHECKPOINT_IMAGE_H
#define NETSTACK_CHECKPOINT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "state.h"

#define CKPT_IMAGE_MAGIC	"NSTKIMG1"
#define CKPT_IMAGE_MAGIC_LEN	8
/* Format 2 added Image.memory (the memory file); format 1 is still read. */
#define CKPT_IMAGE_VERSION	2u
#define CKPT_IMAGE_VERSION_MIN	1u
#define CKPT_IMAGE_HDR_LEN	32u
/* Header field offsets; each follows from the one before. */
#define CKPT_HDR_OFF_VERSION	CKPT_IMAGE_MAGIC_LEN
#define CKPT_HDR_OFF_HDR_LEN	(CKPT_HDR_OFF_VERSION + 4)
#define CKPT_HDR_OFF_PAYLOAD_LEN (CKPT_HDR_OFF_HDR_LEN + 4)
#define CKPT_HDR_OFF_PAYLOAD_CRC (CKPT_HDR_OFF_PAYLOAD_LEN + 8)
#define CKPT_HDR_OFF_HDR_CRC	(CKPT_HDR_OFF_PAYLOAD_CRC + 4)

/* The whole state.pb, header included, is at most this big. */
#define CKPT_IMAGE_MAX_SIZE	(256u << 20)
/* Bounds on what one image may hold; the table sizes of a sane stack. */
#define CKPT_MAX_NICS		1024u
#define CKPT_MAX_ROUTES		65536u
#define CKPT_MAX_SOCKETS	(1u << 20)
#define CKPT_MAX_REGIONS	64u	/* memory regions (memfile.c) */

#define CKPT_STATE_FILE		"state.pb"
#define CKPT_STATE_TMP		".state.pb.tmp"

/**
 * ckpt_image_write() - write @st as @dir/state.pb, crash-safely
 * @dir: the image directory: must not exist (it is created, mode 0700) or
 *       be an empty directory; a symlink is refused, never followed
 * @st: the state; only read. Validated first, by the rules the reader
 *      applies, so a written image always reads back
 * @why: receives a one-line reason on failure; may be NULL
 * @whylen: room in @why
 *
 * The file is written as .state.pb.tmp (O_EXCL, O_NOFOLLOW, mode 0600),
 * fsynced, renamed to state.pb (never replacing one), and the directory
 * fsynced (its parent too when it was created here). On failure there is
 * no state.pb and no temporary file, and a directory this call created is
 * removed again.
 *
 * Return: 0, -EEXIST (@dir is not empty), -ELOOP, -ENOTDIR, -EINVAL
 * (invalid state), -EFBIG, -ENOMEM, -errno of a failed system call.
 */
int ckpt_image_write(const char *dir, const struct ns_state *st, char *why, size_t whylen);

/*
 * struct ckpt_sidecar - more files written into the image directory with
 * state.pb: write() runs on its own thread while state.pb is written and
 * leaves only temporary names; publish() renames them into place before
 * state.pb is (so state.pb, renamed last, is what makes an image look
 * complete); discard() removes whatever of them exists after a failure.
 * write() and publish() return 0 or -errno with a reason in @why.
 */
struct ckpt_sidecar {
	int (*write)(void *arg, int dfd, const char *dir, char *why, size_t whylen);
	int (*publish)(void *arg, int dfd, const char *dir, char *why, size_t whylen);
	void (*discard)(void *arg, int dfd);
	void *arg;
};

/**
 * ckpt_image_write_with() - ckpt_image_write() with a sidecar's files
 * @dir: as for ckpt_image_write()
 * @st: as for ckpt_image_write()
 * @side: the sidecar, or NULL
 * @why: receives a one-line reason on failure; may be NULL
 * @whylen: room in @why
 *
 * Return: as ckpt_image_write(), or the sidecar's error.
 */
int ckpt_image_write_with(const char *dir, const struct ns_state *st,
			  const struct ckpt_sidecar *side, char *why, size_t whylen);

/**
 * ckpt_image_read() - read and fully validate @dir/state.pb
 * @dir: the image directory
 * @st: on success, the state; its arrays are malloc'ed, and the caller
 *      frees them with ns_state_release(). On failure it is untouched and
 *      nothing is left allocated
 * @why: receives a one-line reason on failure, starting with the file's
 *       path; may be NULL
 * @whylen: room in @why
 *
 * state.pb must be a regular file (a symlink is refused) of at most
 * CKPT_IMAGE_MAX_SIZE bytes that ckpt_image_decode() accepts.
 *
 * Return: 0 or -errno as listed at the top of this file.
 */
int ckpt_image_read(const char *dir, struct ns_state *st, char *why, size_t whylen);

/**
 * ckpt_image_encode() - the bytes of state.pb for @st, in memory
 * @st: the state; only read; validated as by ckpt_image_write()
 * @bufp: receives the header and payload, malloc'ed; the caller frees it
 * @lenp: receives their length
 * @why: receives a one-line reason on failure; may be NULL
 * @whylen: room in @why
 *
 * Return: 0, -EINVAL (invalid state), -EFBIG, -ENOMEM.
 */
int ckpt_image_encode(const struct ns_state *st, uint8_t **bufp, size_t *lenp,
		      char *why, size_t whylen);

/**
 * ckpt_image_decode() - validate the bytes of a state.pb and convert them
 * @buf: the whole file; only read
 * @len: its length
 * @st: as for ckpt_image_read()
 * @why: receives a one-line reason on failure; may be NULL
 * @whylen: room in @why
 *
 * Nothing in @buf is trusted: this is the function to fuzz.
 *
 * Return: 0, -EINVAL, -EFBIG, -EPROTONOSUPPORT, -EBADMSG, -EPROTO, -ENOMEM.
 */
int ckpt_image_decode(const uint8_t *buf, size_t len, struct ns_state *st,
		      char *why, size_t whylen);

/**
 * ckpt_crc32c() - CRC32C (Castagnoli, as iSCSI and ext4) of a buffer
 * @buf: the bytes
 * @len: how many; at most CKPT_IMAGE_MAX_SIZE
 *
 * Return: the CRC, 0xE3069283 for "123456789".
 */
uint32_t ckpt_crc32c(const void *buf, size_t len);

/**
 * ckpt_fail() - fill @why with one line and return @err
 * @why: the buffer, or NULL
 * @whylen: room in it
 * @err: the negative errno to return
 * @fmt: printf format of the reason
 *
 * Control characters (a newline in a path or a name from an image) are
 * replaced by '?', so the reason stays one line.
 *
 * Return: @err.
 */
int ckpt_fail(char *why, size_t whylen, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The framing shared by state.pb and pages.meta. */
struct ckpt_frame_kind {
	const char *magic;	/* CKPT_IMAGE_MAGIC_LEN bytes */
	const char *what;	/* "image", "pages index": for messages */
	size_t max_size;	/* of the whole file */
	uint32_t min_version, max_version;
};

/* Fill the header before the payload at @buf + CKPT_IMAGE_HDR_LEN. */
void ckpt_frame_header(uint8_t *buf, const char *magic, uint32_t version, size_t payload_len);

/**
 * ckpt_frame_decode() - check a framed file's header and CRCs
 * @k: what the file must be
 * @buf: the whole file; only read, not trusted
 * @len: its length
 * @versionp: receives the format version
 * @payloadp: receives the payload's start (inside @buf)
 * @payload_lenp: receives its length
 * @why: receives a one-line reason on failure; may be NULL
 * @whylen: room in @why
 *
 * Return: 0, -EINVAL, -EFBIG, -EPROTONOSUPPORT, -EBADMSG.
 */
int ckpt_frame_decode(const struct ckpt_frame_kind *k, const uint8_t *buf, size_t len,
		      uint32_t *versionp, const uint8_t **payloadp, size_t *payload_lenp,
		      char *why, size_t whylen);

/* Read all of @dir/@name (a regular file, no symlink, at most @max bytes)
 * into a malloc'ed buffer the caller frees. Return: 0 or -errno + @why. */
int ckpt_file_load(const char *dir, const char *name, size_t max, uint8_t **bufp, size_t *lenp,
		   char *why, size_t whylen);
/* Prefix the reason in @why with "@dir/@name: ". */
void ckpt_why_prefix(char *why, size_t whylen, const char *dir, const char *name);
/* Create @tmp in @dfd for writing (O_EXCL, O_NOFOLLOW, 0600, plus
 * @extra_flags). Return: the fd, or -errno with a reason. */
int ckpt_tmp_create(int dfd, const char *dir, const char *tmp, int extra_flags, char *why,
		    size_t whylen);
/* Rename @tmp to @name in @dfd, never replacing a file. Return: 0, -errno. */
int ckpt_publish(int dfd, const char *tmp, const char *name);
int ckpt_write_all(int fd, const uint8_t *buf, size_t len);
/* fsync a directory (a filesystem that cannot is no error). */
int ckpt_fsync_dir(int dfd);

/* state_pb.c: struct ns_state <-> the protobuf payload. */

/**
 * ckpt_state_pack() - validate @st and pack it as a netstack.v1.Image
 * @st: the state; only read
 * @headroom: bytes to leave free before the payload (for the header)
 * @max_payload: the largest payload allowed
 * @bufp: receives @headroom bytes, then the payload; malloc'ed, the caller
 *        frees it
 * @payload_len: receives the payload's length
 * @why: receives a one-line reason on failure; may be NULL
 * @whylen: room in @why
 *
 * Return: 0, -EINVAL (invalid state), -EFBIG, -ENOMEM.
 */
int ckpt_state_pack(const struct ns_state *st, size_t headroom, size_t max_payload,
		    uint8_t **bufp, size_t *payload_len, char *why, size_t whylen);

/**
 * ckpt_state_unpack() - unpack, validate and convert a payload
 * @payload: the packed netstack.v1.Image; only read, not trusted
 * @len: its length
 * @version: the format version the header declared; the payload must agree
 * @st: as for ckpt_image_read()
 * @why: receives a one-line reason on failure; may be NULL
 * @whylen: room in @why
 *
 * Return: 0, -EBADMSG (does not unpack), -EPROTO (invalid content),
 * -ENOMEM.
 */
int ckpt_state_unpack(const uint8_t *payload, size_t len, uint32_t version,
		      struct ns_state *st, char *why, size_t whylen);

#endif /* NETSTACK_CHECKPOINT_IMAGE_H */
