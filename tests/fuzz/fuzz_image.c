/* SPDX-License-Identifier: MIT */
/*
 * fuzz_image.c - libFuzzer target for the checkpoint image reader: the bytes
 * of a state.pb go to ckpt_image_decode(), which must refuse anything bad
 * with an error and one line of reason, and never crash, leak or read out of
 * bounds. Each input is decoded twice: once as it is, which exercises the
 * header checks, and once with its header's payload length and both CRC32Cs
 * made right, so that mutations get past the CRCs into protobuf-c's unpack
 * and the field validation of checkpoint/state_pb.c. Whatever the reader
 * accepts must survive the writer's validation and decode back to a state
 * that encodes to the same bytes: the reader and the writer apply one set of
 * rules.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "image.h"

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

/* An accepted state encodes, and what it encodes to decodes and encodes
 * to the same bytes again. */
static void check_round_trip(const struct ns_state *st)
{
	struct ns_state again;
	uint8_t *e1, *e2;
	size_t l1, l2;
	char why[256];
	int rc;

	rc = ckpt_image_encode(st, &e1, &l1, why, sizeof(why));
	if (rc == -ENOMEM)
		return;
	FUZZ_CHECK(rc == 0, "the writer refuses a state the reader accepted: %d %s", rc, why);
	memset(&again, 0, sizeof(again));
	rc = ckpt_image_decode(e1, l1, &again, why, sizeof(why));
	FUZZ_CHECK(rc == 0 || rc == -ENOMEM, "the reader refuses what the writer wrote: %d %s", rc, why);
	if (rc == 0) {
		rc = ckpt_image_encode(&again, &e2, &l2, why, sizeof(why));
		FUZZ_CHECK(rc == 0 || rc == -ENOMEM, "re-encoding failed: %d %s", rc, why);
		if (rc == 0) {
			FUZZ_CHECK(l1 == l2 && !memcmp(e1, e2, l1), "a decode/encode round trip changed the image");
			free(e2);
		}
		ns_state_release(&again);
	}
	free(e1);
}

static void decode(const uint8_t *buf, size_t len)
{
	struct ns_state st;
	char why[256];
	int rc;

	memset(&st, 0, sizeof(st));
	why[0] = '\0';
	rc = ckpt_image_decode(buf, len, &st, why, sizeof(why));
	if (rc) {
		FUZZ_CHECK(rc < 0, "decode returned %d", rc);
		FUZZ_CHECK(why[0] != '\0', "a refusal without a reason (%d)", rc);
		FUZZ_CHECK(!strchr(why, '\n'), "a reason of more than one line: %s", why);
		return;
	}
	check_round_trip(&st);
	ns_state_release(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed;

	decode(data, size);
	if (size < CKPT_IMAGE_HDR_LEN || size > CKPT_IMAGE_MAX_SIZE)
		return 0;
	/* The same bytes with a self-consistent header: the payload is what
	 * follows the first CKPT_IMAGE_HDR_LEN bytes. */
	fixed = malloc(size);
	if (!fixed)
		return 0;
	memcpy(fixed, data, size);
	put_le64(fixed + CKPT_HDR_OFF_PAYLOAD_LEN, size - CKPT_IMAGE_HDR_LEN);
	put_le32(fixed + CKPT_HDR_OFF_PAYLOAD_CRC,
		 ckpt_crc32c(fixed + CKPT_IMAGE_HDR_LEN, size - CKPT_IMAGE_HDR_LEN));
	put_le32(fixed + CKPT_HDR_OFF_HDR_CRC, ckpt_crc32c(fixed, CKPT_HDR_OFF_HDR_CRC));
	decode(fixed, size);
	free(fixed);
	return 0;
}
