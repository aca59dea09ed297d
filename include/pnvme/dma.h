/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme/dma.h - memory the device can reach.
 *
 * Every data buffer and queue ring lives in memory from this allocator: it is
 * backed by 2 MiB hugepages where the system has them (MAP_HUGETLB) and by
 * ordinary pages otherwise (with a notice in the log), and mapped for the
 * device at an IOVA the library chooses (the emulated controller's IOMMU table,
 * or VFIO_IOMMU_MAP_DMA on a real device). Memory is handed out in 4 KiB
 * granules carved from 2 MiB chunks; requests over 2 MiB get chunks of their own.
 */
#ifndef PNVME_DMA_H
#define PNVME_DMA_H

#include <stddef.h>
#include <stdint.h>

#include <pnvme/api.h>

PNVME_BEGIN_DECLS

struct pnvme_ctrl;

/**
 * Allocate `size` bytes of zeroed DMA memory for `ctrl`.
 * @align: required alignment, a power of two up to 2 MiB (0 = 4 KiB). The
 *         buffer is always at least 4 KiB aligned.
 * @buf:   out, the virtual address.
 * @iova:  out (may be NULL), the address the device uses.
 * Returns 0, -EINVAL (size 0, bad alignment), -ENOMEM (no memory, or the
 * mapping failed). Thread safety: serialised internally; any thread.
 */
int pnvme_dma_alloc(struct pnvme_ctrl *ctrl, size_t size, size_t align, void **buf,
		    uint64_t *iova);

/**
 * Release memory from pnvme_dma_alloc(). `buf` must be the address the
 * allocation returned; NULL is ignored (returns 0).
 * Returns 0, or -EINVAL with a message (pnvme_last_error()) and nothing freed:
 * already freed (double free), an address inside an allocation, or not pnvme
 * DMA memory of this controller. Thread safety: any thread; never while the
 * device may still use the buffer (its commands completed).
 */
int pnvme_dma_free(struct pnvme_ctrl *ctrl, void *buf);

/**
 * Translate [buf, buf + len) to the IOVA of its first byte (len 0 counts
 * as 1). Every byte of the range must lie inside one live allocation: the
 * size asked of pnvme_dma_alloc() is the bound, not the 4 KiB granule.
 * Returns 0, or -EINVAL with a message saying which: not pnvme DMA memory of
 * this controller, freed, or running past its allocation by N bytes (a
 * range straddling two allocations is an overrun of the first).
 * Lock-free; any thread.
 */
int pnvme_dma_iova(const struct pnvme_ctrl *ctrl, const void *buf, size_t len, uint64_t *iova);

PNVME_END_DECLS
#endif /* PNVME_DMA_H */
