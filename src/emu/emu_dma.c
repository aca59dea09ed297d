/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * emu_dma.c - how the emulated controller reaches host memory.
 *
 * The IOVA table (pnvme_emu_map / pnvme_emu_unmap): a sorted array of
 * mappings, searched by emu_map_find() behind the inline xlate() of
 * emu_priv.h, which keeps a last-hit cache; a miss is a Data Transfer Error.
 * An unmap drops the rings and shadow doorbell pages that lay in the removed
 * range. Then PRP walking (Base 2.0 §4.1.1): an iterator over a command's
 * PRP1 / PRP2 / PRP lists that hands out contiguous host segments (or, for a
 * command with PSDT 01b, over its SGL: emu_sgl.c), and the copies to and
 * from a command's data buffer built on it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "emu_priv.h"

/* ------------------------------------------------------------------------ */
/* IOVA table                                                               */
/* ------------------------------------------------------------------------ */

/* The mapping containing `iova`, or NULL. */
const struct emu_map *emu_map_find(const struct pnvme_emu *emu, uint64_t iova)
{
	size_t lo = 0, hi = emu->nr_maps;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (emu->maps[mid].iova <= iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct emu_map *m = &emu->maps[lo - 1];
	return iova - m->iova < m->len ? m : NULL;
}

/* Queues whose rings lay in a removed mapping stop being processed; shadow
 * doorbell pages in it are dropped (every queue goes back to its registers). */
static void rings_unmapped(struct pnvme_emu *emu, uint64_t iova, uint64_t len)
{
	if (emu->dbbuf_on && (emu->dbbuf_iova - iova < len || emu->eventidx_iova - iova < len)) {
		log_debug("emu: shadow doorbell pages unmapped");
		emu_dbbuf_off(emu);
	}
	for (uint32_t q = 0; q <= emu->cfg.nr_io_queues; q++) {
		if (emu->sqs[q].valid && !emu->sqs[q].in_cmb && emu->sqs[q].iova - iova < len) {
			log_debug("emu: SQ %u ring unmapped", q);
			emu->sqs[q].ring = NULL;
		}
		if (emu->cqs[q].valid && emu->cqs[q].iova - iova < len) {
			log_debug("emu: CQ %u ring unmapped", q);
			emu->cqs[q].ring = NULL;
		}
	}
}

int pnvme_emu_map(struct pnvme_emu *emu, void *vaddr, uint64_t iova, size_t len)
{
	size_t i;
	int rc = 0;

	if (emu == NULL || vaddr == NULL || len == 0 || ((uintptr_t)vaddr & PAGE_MASK_) ||
	    (iova & PAGE_MASK_) || (len & PAGE_MASK_) || iova + len < iova)
		return pnvme_fail(-EINVAL, "emu map: bad range iova %#llx len %zu",
				  (unsigned long long)iova, len);
	emu_lock(emu);
	/* insertion point: first mapping above iova */
	for (i = 0; i < emu->nr_maps && emu->maps[i].iova <= iova; i++)
		;
	if ((i > 0 && emu->maps[i - 1].iova + emu->maps[i - 1].len > iova) ||
	    (i < emu->nr_maps && iova + len > emu->maps[i].iova)) {
		rc = pnvme_fail(-EEXIST, "emu map: iova %#llx len %zu overlaps a mapping",
				(unsigned long long)iova, len);
		goto out;
	}
	if (emu->nr_maps == emu->maps_cap) {
		size_t ncap = emu->maps_cap ? emu->maps_cap * 2 : 64;
		struct emu_map *n = realloc(emu->maps, ncap * sizeof(*n));
		if (n == NULL) {
			rc = pnvme_fail(-ENOMEM, "emu map: out of memory");
			goto out;
		}
		emu->maps = n;
		emu->maps_cap = ncap;
	}
	memmove(&emu->maps[i + 1], &emu->maps[i], (emu->nr_maps - i) * sizeof(*emu->maps));
	emu->maps[i].iova = iova;
	emu->maps[i].len = len;
	emu->maps[i].va = vaddr;
	emu->nr_maps++;
	emu->hit = NULL;
out:
	emu_unlock(emu);
	return rc;
}

int pnvme_emu_unmap(struct pnvme_emu *emu, uint64_t iova, size_t len)
{
	int rc = -ENOENT;

	if (emu == NULL)
		return pnvme_fail(-EINVAL, "emu unmap: NULL emulator");
	emu_lock(emu);
	for (size_t i = 0; i < emu->nr_maps; i++) {
		if (emu->maps[i].iova == iova && emu->maps[i].len == len) {
			memmove(&emu->maps[i], &emu->maps[i + 1],
				(emu->nr_maps - i - 1) * sizeof(*emu->maps));
			emu->nr_maps--;
			emu->hit = NULL;
			rings_unmapped(emu, iova, len);
			rc = 0;
			break;
		}
	}
	emu_unlock(emu);
	if (rc != 0)
		return pnvme_fail(rc, "emu unmap: no mapping at iova %#llx len %zu",
				  (unsigned long long)iova, len);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* PRP walking (Base 2.0 §4.1.1: Physical Region Page entries and lists)    */
/* ------------------------------------------------------------------------ */

void emu_prp_init(struct prp_iter *it, const struct pnvme_sqe *cmd, uint64_t len)
{
	it->prp1 = cmd->prp1;
	it->next = cmd->prp2;
	it->left = len;
	it->list = NULL;
	it->nlist = 0;
	it->stage = PRP_FIRST;
	if (unlikely(PNVME_GET(cmd->flags, PNVME_SQE_PSDT) != 0)) {
		/* PSDT 01b (req_init() let no other value through): an SGL, emu_sgl.c */
		it->stage = PRP_SGL;
		it->seg = NULL;
		it->nseg = 0;
		it->budget = EMU_SGL_MAX_DESC;
		it->d1_read = false;
		it->in_last = false;
		/* opcode bits 1:0 = 10b: data moves controller to host (Base 2.0 §5, NVM 1.0 §3) */
		it->c2h = (cmd->opc & 3u) == 2u;
		it->excess = false;
	}
}

/* A PRP list pointer may carry a qword-aligned offset; the list runs to the page end. */
static uint16_t prp_load_list(struct pnvme_emu *emu, struct prp_iter *it, uint64_t ptr)
{
	if (ptr & 7u)
		return ST_PRP_OFFSET;
	it->nlist = (uint32_t)((PNVME_PAGE_SIZE - (ptr & PAGE_MASK_)) / 8u);
	it->list = (const uint64_t *)xlate(emu, ptr, (uint64_t)it->nlist * 8u);
	return it->list != NULL ? 0 : ST_XFER_ERROR;
}

/* The next contiguous host segment of the transfer: 0 or an NVMe status. */
uint16_t emu_prp_next(struct pnvme_emu *emu, struct prp_iter *it, uint8_t **va, size_t *n)
{
	uint64_t addr, len;
	uint16_t st;

	switch (it->stage) {
	case PRP_FIRST:
		/* PRP1 may have a (dword aligned) offset into its page */
		addr = it->prp1;
		if (addr & 3u)
			return ST_PRP_OFFSET;
		len = PNVME_PAGE_SIZE - (addr & PAGE_MASK_);
		if (len > it->left)
			len = it->left;
		it->stage = it->left - len <= PNVME_PAGE_SIZE ? PRP_SECOND : PRP_LIST;
		break;
	case PRP_SECOND:
		/* at most one page left: PRP2 is a data pointer, offset 0 */
		addr = it->next;
		if (addr & PAGE_MASK_)
			return ST_PRP_OFFSET;
		len = it->left;
		break;
	case PRP_SGL:
		return emu_sgl_next(emu, it, va, n);
	default:
		/* PRP2 points at a list; the last entry of a full list page chains
		 * to the next list when more than one page is left */
		for (unsigned hops = 0;; hops++) {
			if (hops > 8)
				return ST_PRP_OFFSET;
			if (it->nlist == 0) {
				st = prp_load_list(emu, it, it->next);
				if (st)
					return st;
			}
			addr = *it->list++;
			it->nlist--;
			if (it->nlist == 0 && it->left > PNVME_PAGE_SIZE) {
				it->next = addr;
				continue;
			}
			break;
		}
		if (addr & PAGE_MASK_)
			return ST_PRP_OFFSET;
		len = it->left < PNVME_PAGE_SIZE ? it->left : PNVME_PAGE_SIZE;
		break;
	}
	*va = xlate(emu, addr, len);
	if (*va == NULL)
		return ST_XFER_ERROR;
	it->left -= len;
	*n = (size_t)len;
	return 0;
}

/* Copy `avail` bytes of `src` to the command's data buffer, zero-filled to `len`. */
uint16_t emu_prp_to_host(struct pnvme_emu *emu, struct emu_req *req, const void *src,
			 uint64_t avail, uint64_t len)
{
	const uint8_t *s = src;
	struct prp_iter it;

	emu_prp_init(&it, &req->cmd, len);
	while (it.left) {
		uint8_t *va;
		size_t n, c;
		uint16_t st = emu_prp_next(emu, &it, &va, &n);
		if (st)
			return st;
		c = avail < n ? (size_t)avail : n;
		if (va != NULL) {               /* NULL: an SGL Bit Bucket */
			memcpy(va, s, c);
			memset(va + c, 0, n - c);
		}
		s += c;
		avail -= c;
	}
	return 0;
}

uint16_t emu_prp_from_host(struct pnvme_emu *emu, struct emu_req *req, void *dst, uint64_t len)
{
	uint8_t *d = dst;
	struct prp_iter it;

	emu_prp_init(&it, &req->cmd, len);
	while (it.left) {
		uint8_t *va;
		size_t n;
		uint16_t st = emu_prp_next(emu, &it, &va, &n);
		if (st)
			return st;
		if (va == NULL)                 /* a Bit Bucket: only where data goes to the host */
			return ST_SGL_TYPE;
		memcpy(d, va, n);
		d += n;
	}
	return 0;
}
