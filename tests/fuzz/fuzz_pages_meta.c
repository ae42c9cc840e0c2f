/* SPDX-License-Identifier: MIT */
/*
 * fuzz_pages_meta.c - libFuzzer target for the memory file's index reader:
 * the bytes of a pages.meta go to mf_index_decode(), which must refuse
 * anything bad with an error and one line of reason and never crash, leak
 * or read out of bounds. Each input is decoded twice: as it is (the header
 * checks), and with a correct header (ckpt_frame_header()) rebuilt over
 * whatever follows the first 32 bytes, so mutations reach protobuf-c's
 * unpack and the index rules of checkpoint/pages_pb.c. An index the reader
 * accepts must be one the writer accepts, and must come back unchanged
 * from a write and a read: one set of rules on both sides.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "memfile.h"

static void check_round_trip(const struct mf_index *ix)
{
	struct mf_index again;
	uint8_t *enc;
	size_t len;
	char why[256];
	int rc;

	rc = mf_index_encode(ix, &enc, &len, why, sizeof(why));
	if (rc == -ENOMEM)
		return;
	FUZZ_CHECK(rc == 0, "the writer refuses an index the reader accepted: %d %s", rc, why);
	memset(&again, 0, sizeof(again));
	rc = mf_index_decode(enc, len, &again, why, sizeof(why));
	FUZZ_CHECK(rc == 0 || rc == -ENOMEM, "the reader refuses what the writer wrote: %d %s",
		   rc, why);
	if (rc == 0) {
		FUZZ_CHECK(again.image_id == ix->image_id && again.nregions == ix->nregions &&
			   again.nchunks == ix->nchunks && again.file_size == ix->file_size &&
			   again.compression == ix->compression,
			   "a write/read round trip changed the index");
		FUZZ_CHECK(!memcmp(again.regions, ix->regions, sizeof(ix->regions)),
			   "a write/read round trip changed the regions");
		FUZZ_CHECK(!ix->nchunks ||
			   !memcmp(again.chunks, ix->chunks, ix->nchunks * sizeof(*ix->chunks)),
			   "a write/read round trip changed the chunks");
		mf_index_release(&again);
	}
	free(enc);
}

static void decode(const uint8_t *buf, size_t len)
{
	struct mf_index ix;
	char why[256];
	int rc;

	memset(&ix, 0, sizeof(ix));
	why[0] = '\0';
	rc = mf_index_decode(buf, len, &ix, why, sizeof(why));
	if (rc) {
		FUZZ_CHECK(rc < 0, "decode returned %d", rc);
		FUZZ_CHECK(why[0] != '\0', "a refusal without a reason (%d)", rc);
		FUZZ_CHECK(!strchr(why, '\n'), "a reason of more than one line: %s", why);
		return;
	}
	/* Every chunk lies inside its region and inside the file. */
	for (size_t k = 0; k < ix.nchunks; k++) {
		const struct mf_chunk *c = &ix.chunks[k];

		FUZZ_CHECK(c->region < ix.nregions, "chunk %zu: region %u", k, c->region);
		FUZZ_CHECK(c->off + c->len <= ix.regions[c->region].size, "chunk %zu leaves its region", k);
		FUZZ_CHECK(c->foff + c->flen <= ix.file_size, "chunk %zu leaves the file", k);
	}
	check_round_trip(&ix);
	mf_index_release(&ix);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed;

	decode(data, size);
	if (size < CKPT_IMAGE_HDR_LEN || size > CKPT_PAGES_META_MAX)
		return 0;
	fixed = malloc(size);
	if (!fixed)
		return 0;
	memcpy(fixed, data, size);
	ckpt_frame_header(fixed, CKPT_PAGES_MAGIC, CKPT_PAGES_VERSION, size - CKPT_IMAGE_HDR_LEN);
	decode(fixed, size);
	free(fixed);
	return 0;
}
