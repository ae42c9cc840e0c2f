/* SPDX-License-Identifier: MIT */
/*
 * pages_pb.c - pages.meta <-> struct mf_index: packing the index of
 * pages.img as a netstack.v1.PagesIndex behind the image header, and
 * unpacking one with every field checked before the caller sees it.
 *
 * The rules: the format version is the header's; the image id is not 0;
 * the compression is NONE or ZSTD; chunk_size is a page multiple of
 * 4 KiB..CKPT_CHUNK_MAX; 1..CKPT_MAX_REGIONS regions with unique names of
 * 1..31 NUL-free bytes and sizes that are page multiples up to
 * CKPT_REGION_MAX; a region's chunks are page-aligned, 1..chunk_size bytes,
 * sorted and disjoint inside it; in the file every chunk starts 4 KiB-aligned
 * at or after the end of the one before (region order, then offset order),
 * an uncompressed chunk is exactly its length and a compressed one at most
 * zstd's bound for it, and all lie inside file_size; no message carries a
 * field this netstack does not know.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "memfile.h"
#include "netstack.pb-c.h"

typedef Netstack__V1__PagesIndex pb_index;
typedef Netstack__V1__PageRegion pb_region;

static const struct ckpt_frame_kind pages_kind = {
	.magic = CKPT_PAGES_MAGIC, .what = "pages index", .max_size = CKPT_PAGES_META_MAX,
	.min_version = CKPT_PAGES_VERSION, .max_version = CKPT_PAGES_VERSION,
};

void mf_index_release(struct mf_index *ix)
{
	free(ix->chunks);
	ix->chunks = NULL;
	ix->nchunks = 0;
}

static int unknown(const ProtobufCMessage *m, const char *what, char *why, size_t whylen)
{
	if (m->n_unknown_fields)
		return ckpt_fail(why, whylen, -EPROTO,
				 "%s has %u field(s) this netstack does not know", what,
				 m->n_unknown_fields);
	return 0;
}

static bool aligned(uint64_t v)
{
	return (v & (CKPT_PAGE - 1)) == 0;
}

/* A chunk, as the columns of its region hold it. */
struct chunk_view {
	uint64_t offset, length, file_offset, file_length;
};

/* Chunk @ci of region @ri; @fend is where the previous chunk's file bytes
 * ended, @rend where the previous chunk of this region ended. The reason
 * is only formatted on failure: this runs once per chunk on the restore's
 * critical path. */
static int check_chunk(const pb_index *m, unsigned ri, size_t ci, const struct chunk_view *c,
		       uint64_t size, uint64_t *rend, uint64_t *fend, char *why, size_t whylen)
{
	unsigned long long off = c->offset, len = c->length, foff = c->file_offset,
			   flen = c->file_length;

	if (!aligned(off) || !aligned(len) || len == 0 || len > m->chunk_size)
		return ckpt_fail(why, whylen, -EPROTO,
				 "region %u chunk %zu: offset %llu, length %llu: want page-aligned, "
				 "1..%u bytes", ri, ci, off, len, m->chunk_size);
	if (off < *rend || off > size || size - off < len)
		return ckpt_fail(why, whylen, -EPROTO,
				 "region %u chunk %zu: bytes %llu..%llu overlap the chunk before or "
				 "leave the region", ri, ci, off, off + len);
	*rend = off + len;
	if (!aligned(foff) || foff < *fend)
		return ckpt_fail(why, whylen, -EPROTO,
				 "region %u chunk %zu: file offset %llu is unaligned or overlaps the "
				 "chunk before", ri, ci, foff);
	if (m->compression == NETSTACK__V1__COMPRESSION__COMPRESSION_NONE
		    ? flen != len
		    : flen == 0 || flen > ZSTD_compressBound(len))
		return ckpt_fail(why, whylen, -EPROTO,
				 "region %u chunk %zu: %llu bytes in the file for %llu", ri, ci, flen,
				 len);
	if (foff > m->file_size || m->file_size - foff < flen)
		return ckpt_fail(why, whylen, -EPROTO,
				 "region %u chunk %zu: ends after pages.img (%llu bytes)", ri, ci,
				 (unsigned long long)m->file_size);
	*fend = foff + flen;
	return 0;
}

static int check_index(const pb_index *m, uint32_t version, char *why, size_t whylen)
{
	uint64_t fend = 0;
	int rc;

	if ((rc = unknown(&m->base, "the pages index", why, whylen)))
		return rc;
	if (m->format_version != version)
		return ckpt_fail(why, whylen, -EPROTO, "payload says format %u, header %u",
				 m->format_version, version);
	if (m->image_id == 0)
		return ckpt_fail(why, whylen, -EPROTO, "image id 0");
	if (m->compression != NETSTACK__V1__COMPRESSION__COMPRESSION_NONE &&
	    m->compression != NETSTACK__V1__COMPRESSION__COMPRESSION_ZSTD)
		return ckpt_fail(why, whylen, -EPROTO, "unknown compression %d",
				 (int)m->compression);
	if (!aligned(m->chunk_size) || m->chunk_size == 0 || m->chunk_size > CKPT_CHUNK_MAX)
		return ckpt_fail(why, whylen, -EPROTO, "chunk size %u: want 4 KiB multiples up to %u",
				 m->chunk_size, CKPT_CHUNK_MAX);
	if (m->n_regions == 0 || m->n_regions > CKPT_MAX_REGIONS)
		return ckpt_fail(why, whylen, -EPROTO, "%zu regions: want 1..%u", m->n_regions,
				 CKPT_MAX_REGIONS);
	for (size_t i = 0; i < m->n_regions; i++) {
		const pb_region *r = m->regions[i];
		uint64_t rend = 0;

		if ((rc = unknown(&r->base, "a region", why, whylen)))
			return rc;
		if (r->name.len == 0 || r->name.len >= NS_REGION_NAME_MAX ||
		    memchr(r->name.data, '\0', r->name.len))
			return ckpt_fail(why, whylen, -EPROTO,
					 "region %zu: a name of %zu bytes (want 1..%u, no NUL)", i,
					 r->name.len, NS_REGION_NAME_MAX - 1);
		for (size_t j = 0; j < i; j++)
			if (m->regions[j]->name.len == r->name.len &&
			    !memcmp(m->regions[j]->name.data, r->name.data, r->name.len))
				return ckpt_fail(why, whylen, -EPROTO,
						 "regions %zu and %zu have the same name", j, i);
		if (!aligned(r->size) || r->size == 0 || r->size > CKPT_REGION_MAX)
			return ckpt_fail(why, whylen, -EPROTO,
					 "region %zu: size %llu (want page multiples up to 1 TiB)",
					 i, (unsigned long long)r->size);
		if (r->n_length != r->n_offset || r->n_file_offset != r->n_offset ||
		    r->n_file_length != r->n_offset || r->n_crc32c != r->n_offset)
			return ckpt_fail(why, whylen, -EPROTO,
					 "region %zu: chunk columns of different lengths", i);
		for (size_t j = 0; j < r->n_offset; j++) {
			struct chunk_view c = { r->offset[j], r->length[j], r->file_offset[j],
						r->file_length[j] };

			rc = check_chunk(m, (unsigned)i, j, &c, r->size, &rend, &fend, why, whylen);
			if (rc)
				return rc;
		}
	}
	return 0;
}

int mf_index_decode(const uint8_t *buf, size_t len, struct mf_index *ix, char *why,
		    size_t whylen)
{
	struct mf_index tmp = { 0 };
	const uint8_t *payload;
	size_t plen, total = 0, k = 0;
	uint32_t version;
	pb_index *m;
	int rc;

	rc = ckpt_frame_decode(&pages_kind, buf, len, &version, &payload, &plen, why, whylen);
	if (rc)
		return rc;
	m = netstack__v1__pages_index__unpack(NULL, plen, payload);
	if (!m)
		return ckpt_fail(why, whylen, -EBADMSG,
				 "the payload is not a netstack.v1.PagesIndex (or memory ran out)");
	rc = check_index(m, version, why, whylen);
	if (rc)
		goto out;
	for (size_t i = 0; i < m->n_regions; i++)
		total += m->regions[i]->n_offset;
	tmp.chunks = calloc(total + 1, sizeof(*tmp.chunks));
	if (!tmp.chunks) {
		rc = ckpt_fail(why, whylen, -ENOMEM, "out of memory for %zu chunks", total);
		goto out;
	}
	tmp.image_id = m->image_id;
	tmp.compression = m->compression == NETSTACK__V1__COMPRESSION__COMPRESSION_ZSTD
				  ? NS_COMPRESSION_ZSTD : NS_COMPRESSION_NONE;
	tmp.chunk_size = m->chunk_size;
	tmp.file_size = m->file_size;
	tmp.nregions = (unsigned)m->n_regions;
	for (size_t i = 0; i < m->n_regions; i++) {
		const pb_region *r = m->regions[i];
		struct mf_index_region *xr = &tmp.regions[i];

		memcpy(xr->name, r->name.data, r->name.len);
		xr->name[r->name.len] = '\0';
		xr->size = r->size;
		xr->first = k;
		xr->n = r->n_offset;
		for (size_t j = 0; j < r->n_offset; j++, k++)
			tmp.chunks[k] = (struct mf_chunk){
				.region = (uint32_t)i, .crc = r->crc32c[j], .off = r->offset[j],
				.len = r->length[j], .foff = r->file_offset[j],
				.flen = r->file_length[j],
			};
	}
	tmp.nchunks = total;
	*ix = tmp;
out:
	netstack__v1__pages_index__free_unpacked(m, NULL);
	return rc;
}

int mf_index_encode(const struct mf_index *ix, uint8_t **bufp, size_t *lenp, char *why,
		    size_t whylen)
{
	pb_index m = NETSTACK__V1__PAGES_INDEX__INIT;
	pb_region regions[CKPT_MAX_REGIONS], *regionp[CKPT_MAX_REGIONS];
	uint64_t *cols = NULL;
	uint32_t *crcs = NULL;
	uint8_t *buf = NULL;
	size_t len, n = ix->nchunks;
	int rc;

	if (ix->nregions == 0 || ix->nregions > CKPT_MAX_REGIONS)
		return ckpt_fail(why, whylen, -EINVAL, "%u regions: want 1..%u", ix->nregions,
				 CKPT_MAX_REGIONS);
	/* Four columns of n, then the CRCs: region i's are slices of them. */
	cols = malloc((4 * n + 1) * sizeof(*cols));
	crcs = malloc((n + 1) * sizeof(*crcs));
	if (!cols || !crcs) {
		rc = ckpt_fail(why, whylen, -ENOMEM, "out of memory packing the pages index");
		goto out;
	}
	for (size_t k = 0; k < n; k++) {
		cols[k] = ix->chunks[k].off;
		cols[n + k] = ix->chunks[k].len;
		cols[2 * n + k] = ix->chunks[k].foff;
		cols[3 * n + k] = ix->chunks[k].flen;
		crcs[k] = ix->chunks[k].crc;
	}
	m.format_version = CKPT_PAGES_VERSION;
	m.image_id = ix->image_id;
	m.compression = ix->compression == NS_COMPRESSION_ZSTD
				? NETSTACK__V1__COMPRESSION__COMPRESSION_ZSTD
				: NETSTACK__V1__COMPRESSION__COMPRESSION_NONE;
	m.chunk_size = ix->chunk_size;
	m.file_size = ix->file_size;
	m.n_regions = ix->nregions;
	m.regions = regionp;
	for (unsigned i = 0; i < ix->nregions; i++) {
		const struct mf_index_region *xr = &ix->regions[i];
		pb_region *r = &regions[i];

		netstack__v1__page_region__init(r);
		regionp[i] = r;
		r->name.data = (uint8_t *)xr->name;
		r->name.len = strnlen(xr->name, sizeof(xr->name));
		r->size = xr->size;
		if (xr->first > n || n - xr->first < xr->n) {
			rc = ckpt_fail(why, whylen, -EINVAL, "region %u: chunks out of range", i);
			goto out;
		}
		r->n_offset = r->n_length = r->n_file_offset = r->n_file_length = r->n_crc32c = xr->n;
		r->offset = cols + xr->first;
		r->length = cols + n + xr->first;
		r->file_offset = cols + 2 * n + xr->first;
		r->file_length = cols + 3 * n + xr->first;
		r->crc32c = crcs + xr->first;
	}
	/* The reader's rules: what is written always reads back. */
	rc = check_index(&m, CKPT_PAGES_VERSION, why, whylen);
	if (rc) {
		rc = -EINVAL;
		goto out;
	}
	len = netstack__v1__pages_index__get_packed_size(&m);
	if (len > CKPT_PAGES_META_MAX - CKPT_IMAGE_HDR_LEN) {
		rc = ckpt_fail(why, whylen, -EFBIG, "the pages index packs to %zu bytes", len);
		goto out;
	}
	buf = malloc(CKPT_IMAGE_HDR_LEN + len);
	if (!buf) {
		rc = ckpt_fail(why, whylen, -ENOMEM, "out of memory packing the pages index");
		goto out;
	}
	netstack__v1__pages_index__pack(&m, buf + CKPT_IMAGE_HDR_LEN);
	ckpt_frame_header(buf, CKPT_PAGES_MAGIC, CKPT_PAGES_VERSION, len);
	*bufp = buf;
	*lenp = CKPT_IMAGE_HDR_LEN + len;
	rc = 0;
out:
	free(cols);
	free(crcs);
	return rc;
}
