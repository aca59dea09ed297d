/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * emu_sgl.c - Scatter Gather Lists: how the emulated controller walks the
 * data pointer of a command with PSDT 01b (Base 2.0 §4.1.2).
 *
 * SGL Descriptor 1 sits in the SQE where PRP1 / PRP2 would. It is a Data
 * Block (the whole transfer in one piece), a Bit Bucket, or a Segment / Last
 * Segment descriptor naming a list of 16-byte descriptors in host memory.
 * The last descriptor of a segment may chain to the next one (Segment) or to
 * the final one (Last Segment); a Last Segment holds data descriptors only.
 * What the controller accepts:
 *   - Data Block (type 0h), subtype Address (0h); with sgl=2 (SGLS 10b) its
 *     address and length dword granular (else SGL Data Block Granularity
 *     Invalid); length 0 transfers nothing.
 *   - Bit Bucket (type 1h), subtype 0h, for data the controller sends to the
 *     host only (opcode bits 1:0 = 10b: Read): that many bytes are dropped.
 *     In a command that moves data to the controller it is a type the
 *     controller does not support there: SGL Descriptor Type Invalid.
 *   - Segment (2h) and Last Segment (3h), subtype 0h, as the last descriptor
 *     of SGL Descriptor 1 or of a Segment. Length a non-zero multiple of 16
 *     (else Invalid SGL Segment Descriptor); the whole segment must lie in
 *     one IOVA mapping (else Data Transfer Error); any alignment.
 *   - A segment descriptor that is not the last of its segment: Invalid
 *     Number of SGL Descriptors. One inside a Last Segment: Invalid SGL
 *     Segment Descriptor. Other types and subtypes (Keyed, Transport, Offset):
 *     SGL Descriptor Type Invalid.
 *   - The data and bit bucket lengths must add up to exactly the command's
 *     transfer (SGLS bit 18 clear): fewer or more bytes is Data SGL Length
 *     Invalid. A segment that ends on a data descriptor ends the list.
 *   - At most EMU_SGL_MAX_DESC descriptors per command, chains included (a
 *     chain that loops back on itself ends there): Invalid Number of SGL
 *     Descriptors.
 * Every address, of data and of segments, goes through the IOVA table like a
 * PRP (xlate(): one mapping must hold the whole range). emu_sgl_check() walks
 * the list once before any data moves, so an invalid SGL fails the command
 * untouched; the walk that moves the data checks everything again (the host
 * may have changed the lists meanwhile).
 */
#include <string.h>

#include <pnvme/tcp_spec.h>

#include "emu_priv.h"

#define SGL_DESC_SIZE 16u

_Static_assert(sizeof(struct pnvme_sgl_desc) == SGL_DESC_SIZE, "SGL descriptor size");

/*
 * The next Data Block or Bit Bucket descriptor of the list, following
 * segment descriptors on the way. *end: the list has no more. 0 or a status.
 */
static uint16_t sgl_next_desc(struct pnvme_emu *emu, struct prp_iter *it,
			      struct pnvme_sgl_desc *d, bool *end)
{
	*end = false;
	for (;;) {
		bool seg_last;
		uint8_t type;

		if (!it->d1_read) {
			/* SGL Descriptor 1: bytes 24..39 of the SQE */
			it->d1_read = true;
			d->addr = it->prp1;
			d->length = (uint32_t)it->next;
			memset(d->rsvd12, 0, sizeof(d->rsvd12));
			d->id = (uint8_t)(it->next >> 56);
			seg_last = true;
		} else if (it->nseg == 0) {
			*end = true;
			return 0;
		} else {
			memcpy(d, it->seg, sizeof(*d));
			it->seg += SGL_DESC_SIZE;
			seg_last = --it->nseg == 0;
		}
		if (it->budget == 0)
			return ST_SGL_COUNT;
		it->budget--;
		type = (uint8_t)PNVME_SGL_TYPE(d->id);
		if (PNVME_SGL_SUBTYPE(d->id) != PNVME_SGL_SUBTYPE_ADDRESS)
			return ST_SGL_TYPE;
		switch (type) {
		case PNVME_SGL_TYPE_DATA_BLOCK:
			if (emu->cfg.sgl == PNVME_SGLS_DWORD_ALIGN && ((d->addr | d->length) & 3u))
				return ST_SGL_GRAN;
			return 0;
		case PNVME_SGL_TYPE_BIT_BUCKET:
			return it->c2h ? 0 : ST_SGL_TYPE;
		case PNVME_SGL_TYPE_SEGMENT:
		case PNVME_SGL_TYPE_LAST_SEGMENT:
			if (it->in_last)
				return ST_SGL_SEG;      /* a Last Segment chains nowhere */
			if (!seg_last)
				return ST_SGL_COUNT;    /* only a segment's last descriptor chains */
			if (d->length == 0 || d->length % SGL_DESC_SIZE)
				return ST_SGL_SEG;
			it->seg = xlate(emu, d->addr, d->length);
			if (it->seg == NULL)
				return ST_XFER_ERROR;
			it->nseg = d->length / SGL_DESC_SIZE;
			it->in_last = type == PNVME_SGL_TYPE_LAST_SEGMENT;
			break;
		default:
			return ST_SGL_TYPE;
		}
	}
}

uint16_t emu_sgl_next(struct pnvme_emu *emu, struct prp_iter *it, uint8_t **va, size_t *n)
{
	for (;;) {
		struct pnvme_sgl_desc d;
		uint64_t len;
		bool end;
		uint16_t st = sgl_next_desc(emu, it, &d, &end);

		if (st)
			return st;
		if (end)
			return ST_SGL_DATA_LEN;         /* the list ended before the transfer */
		if (d.length == 0)
			continue;
		len = d.length;
		if (len > it->left) {
			it->excess = true;
			len = it->left;
		}
		if (PNVME_SGL_TYPE(d.id) == PNVME_SGL_TYPE_BIT_BUCKET) {
			*va = NULL;                     /* dropped */
		} else {
			*va = xlate(emu, d.addr, len);
			if (*va == NULL)
				return ST_XFER_ERROR;
		}
		it->left -= len;
		*n = (size_t)len;
		return 0;
	}
}

uint16_t emu_sgl_check(struct pnvme_emu *emu, const struct pnvme_sqe *cmd, uint64_t len)
{
	struct pnvme_sgl_desc d;
	struct prp_iter it;
	bool end = false;
	uint16_t st;

	emu_prp_init(&it, cmd, len);
	while (it.left) {
		uint8_t *va;
		size_t n;
		st = emu_sgl_next(emu, &it, &va, &n);
		if (st)
			return st;
	}
	if (it.excess)
		return ST_SGL_DATA_LEN;
	/* The rest of the list may hold empty descriptors only. */
	while (!end) {
		st = sgl_next_desc(emu, &it, &d, &end);
		if (st)
			return st;
		if (!end && d.length != 0)
			return ST_SGL_DATA_LEN;
	}
	return 0;
}
