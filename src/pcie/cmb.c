/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * cmb.c - I/O submission queues in the Controller Memory Buffer
 * (PNVME_QPAIR_CMB_SQ; NVMe Base 2.0 §3.1.4.11-§3.1.4.14).
 *
 * The first queue pair that asks enables the CMB, in the order the
 * registers require: CMBMSC.CRE (§3.1.4.13) makes CMBLOC and CMBSZ readable
 * (§3.1.4.11, §3.1.4.12); CMBSZ.SQS must be set; the BAR that CMBLOC.BIR
 * names is mapped through the backend, and CMBMSC gets CMSE with CBA = the
 * bus address of the CMB (the BAR's address plus CMBLOC.OFST). Queue rings
 * are carved from the CMB in whole 4 KiB pages, first fit, under the admin
 * lock (queue pairs take and give back their pages under it).
 *
 * Commands are still built in the host-memory ring (qp->sq), so the submit
 * paths are the same for every queue pair; a CMB queue pair's post_slow has
 * QP_POST_CMB, and the committed entry is copied into the CMB as whole
 * 64-byte stores (non-temporal on x86, which combine into one burst on a
 * write-combining mapping) followed by a store fence, before any doorbell.
 */
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#include "core/ctrl_priv.h"

/* How long CMBLOC/CMBSZ may take to appear after CRE (a polled emulator steps meanwhile). */
#define CMB_CRE_WAIT_MS 1000u

/* CMBMSC is 64 bits: high dword first, since QEMU's controller acts on the low one. */
static void cmbmsc_write(struct pnvme_ctrl *ctrl, uint64_t v)
{
	mmio_write32(ctrl->bar, PNVME_REG_CMBMSC + 4, (uint32_t)(v >> 32));
	mmio_write32(ctrl->bar, PNVME_REG_CMBMSC, (uint32_t)v);
}

/*
 * The CMB's bus address must not be an IOVA the device may be handed for
 * host memory: it would read the CMB instead. IOVAs come from a bump
 * pointer (pcie/dma.c): refuse when the CMB lies below it inside the
 * window, and end the window at the CMB when it lies above.
 */
static int cmb_iova_reserve(struct pnvme_ctrl *ctrl, uint64_t bus, uint64_t len)
{
	struct pnvme_dma *d = &ctrl->dma;
	int rc = 0;

	pthread_mutex_lock(&d->lock);
	if (bus + len <= ctrl->be.iova_base || bus >= ctrl->be.iova_end) {
		/* outside the window */
	} else if (bus >= d->iova_next) {
		ctrl->be.iova_end = bus;
	} else {
		rc = pnvme_fail(-ENOTSUP, "CMB at bus address %#llx overlaps IOVAs already in use "
				"(up to %#llx): not enabled", (unsigned long long)bus,
				(unsigned long long)d->iova_next);
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

/* Enable the CMB (see the top of the file). Admin lock held. */
static int cmb_enable(struct pnvme_ctrl *ctrl)
{
	volatile uint8_t *va = NULL;
	uint32_t loc = 0, sz = 0;
	uint64_t bar_bus = 0, off, len, unit;
	size_t bar_len = 0;
	int rc;

	if (ctrl->tcp != NULL)
		return pnvme_fail(-ENOTSUP, "CMB queues: NVMe/TCP has no Controller Memory Buffer");
	if (!PNVME_GET(ctrl->cap, PNVME_CAP_CMBS)) {
		log_notice("CMB queues: the controller has no Controller Memory Buffer (CAP.CMBS 0)");
		return pnvme_fail(-ENOTSUP, "CMB queues: the controller has no Controller Memory "
				  "Buffer (CAP.CMBS = 0)");
	}
	/* §3.1.4.13: CRE first; CMBLOC and CMBSZ read 0 until the controller takes it. */
	cmbmsc_write(ctrl, PNVME_CMBMSC_CRE);
	uint64_t until = pnvme_now_ms() + CMB_CRE_WAIT_MS;
	for (;;) {
		sz = mmio_read32(ctrl->bar, PNVME_REG_CMBSZ);
		if (sz == UINT32_MAX)
			return pnvme_fail(-ENODEV, "CMB: registers read all ones: the device is gone");
		if (sz != 0 || pnvme_now_ms() > until)
			break;
		ctrl_wait_hook(ctrl);
	}
	loc = mmio_read32(ctrl->bar, PNVME_REG_CMBLOC);
	if (sz == 0) {
		cmbmsc_write(ctrl, 0);
		return pnvme_fail(-ENOTSUP, "CMB queues: CMBSZ still reads 0 %u ms after "
				  "CMBMSC.CRE was set", CMB_CRE_WAIT_MS);
	}
	if (!PNVME_GET(sz, PNVME_CMBSZ_SQS)) {
		cmbmsc_write(ctrl, 0);
		log_notice("CMB queues: the CMB takes no submission queues (CMBSZ %#x)", sz);
		return pnvme_fail(-ENOTSUP, "CMB queues: the Controller Memory Buffer takes no "
				  "submission queues (CMBSZ %#x: SQS = 0)", sz);
	}
	len = PNVME_CMBSZ_BYTES(sz);
	unit = len != 0 ? len / PNVME_GET(sz, PNVME_CMBSZ_SZ) : 0;
	off = (uint64_t)PNVME_GET(loc, PNVME_CMBLOC_OFST) * unit;
	if (len < PNVME_PAGE_SIZE || ctrl->be.ops->bar_map == NULL) {
		cmbmsc_write(ctrl, 0);
		return pnvme_fail(-ENOTSUP, "CMB queues: %s (CMBSZ %#x)", len < PNVME_PAGE_SIZE ?
				  "the CMB size is reserved or under 4 KiB" :
				  "this transport cannot map the CMB's BAR", sz);
	}
	rc = ctrl->be.ops->bar_map(ctrl->be.ctx, PNVME_GET(loc, PNVME_CMBLOC_BIR), &va, &bar_len,
				   &bar_bus);
	if (rc != 0) {
		cmbmsc_write(ctrl, 0);
		return rc;
	}
	if (off > bar_len || len > bar_len - off || ((bar_bus + off) & 0xfffu)) {
		cmbmsc_write(ctrl, 0);
		return pnvme_fail(-EPROTO, "CMB: %llu bytes at offset %#llx do not fit BAR%u of "
				  "%zu bytes at %#llx", (unsigned long long)len,
				  (unsigned long long)off, PNVME_GET(loc, PNVME_CMBLOC_BIR), bar_len,
				  (unsigned long long)bar_bus);
	}
	rc = cmb_iova_reserve(ctrl, bar_bus + off, len);
	if (rc != 0) {
		cmbmsc_write(ctrl, 0);
		return rc;
	}
	ctrl->cmb_used = calloc((size_t)(len >> PNVME_PAGE_SHIFT), 1);
	if (ctrl->cmb_used == NULL) {
		cmbmsc_write(ctrl, 0);
		return pnvme_fail(-ENOMEM, "CMB: out of memory");
	}
	ctrl->cmb = va + off;
	ctrl->cmb_len = (size_t)len;
	ctrl->cmb_bus = bar_bus + off;
	/* §3.1.4.13: the controller memory space at CBA */
	cmbmsc_write(ctrl, ctrl->cmb_bus | PNVME_CMBMSC_CMSE | PNVME_CMBMSC_CRE);
	log_info("CMB: %zu KiB in BAR%u at offset %#llx, CBA %#llx (CMBLOC %#x, CMBSZ %#x)",
		 ctrl->cmb_len >> 10, PNVME_GET(loc, PNVME_CMBLOC_BIR), (unsigned long long)off,
		 (unsigned long long)ctrl->cmb_bus, loc, sz);
	return 0;
}

void cmb_restore(struct pnvme_ctrl *ctrl)
{
	if (ctrl->cmb != NULL)
		cmbmsc_write(ctrl, ctrl->cmb_bus | PNVME_CMBMSC_CMSE | PNVME_CMBMSC_CRE);
}

void cmb_close(struct pnvme_ctrl *ctrl)
{
	free(ctrl->cmb_used);
	ctrl->cmb_used = NULL;
	ctrl->cmb = NULL;
}

int cmb_sq_alloc(struct pnvme_qpair *qp)
{
	struct pnvme_ctrl *ctrl = qp->ctrl;
	size_t bytes = ALIGN_UP((size_t)qp->qsize * sizeof(struct pnvme_sqe), (size_t)PNVME_PAGE_SIZE);
	size_t need = bytes >> PNVME_PAGE_SHIFT, pages, run = 0;
	int rc;

	if (ctrl->cmb == NULL) {
		rc = cmb_enable(ctrl);
		if (rc != 0)
			return rc;
	}
	pages = ctrl->cmb_len >> PNVME_PAGE_SHIFT;
	for (size_t i = 0; i < pages; i++) {
		run = ctrl->cmb_used[i] ? 0 : run + 1;
		if (run < need)
			continue;
		size_t first = i + 1 - need;
		memset(&ctrl->cmb_used[first], 1, need);
		qp->cmb_sq = (volatile struct pnvme_sqe *)(ctrl->cmb + (first << PNVME_PAGE_SHIFT));
		qp->cmb_sq_bus = ctrl->cmb_bus + ((uint64_t)first << PNVME_PAGE_SHIFT);
		qp->post_slow |= QP_POST_CMB;
		return 0;
	}
	return pnvme_fail(-ENOSPC, "CMB queues: no room for a ring of %u entries (%zu KiB) in "
			  "the %zu KiB Controller Memory Buffer", qp->qsize, bytes >> 10,
			  ctrl->cmb_len >> 10);
}

void cmb_sq_free(struct pnvme_qpair *qp)
{
	struct pnvme_ctrl *ctrl = qp->ctrl;

	if (qp->cmb_sq == NULL)
		return;
	size_t first = (size_t)(qp->cmb_sq_bus - ctrl->cmb_bus) >> PNVME_PAGE_SHIFT;
	size_t need = ALIGN_UP((size_t)qp->qsize * sizeof(struct pnvme_sqe),
			       (size_t)PNVME_PAGE_SIZE) >> PNVME_PAGE_SHIFT;
	memset(&ctrl->cmb_used[first], 0, need);
	qp->cmb_sq = NULL;
	qp->post_slow &= ~QP_POST_CMB;
}

void cmb_sqe_write(struct pnvme_qpair *qp, uint32_t slot, const struct pnvme_sqe *sqe)
{
	volatile struct pnvme_sqe *dst = &qp->cmb_sq[slot];

#if defined(__x86_64__)
	/* Four 16-byte non-temporal stores fill one 64-byte line (one WC burst). */
	__m128i *d = (__m128i *)(uintptr_t)dst;
	const __m128i *s = (const __m128i *)sqe;
	__m128i a = _mm_loadu_si128(s), b = _mm_loadu_si128(s + 1);
	__m128i c = _mm_loadu_si128(s + 2), e = _mm_loadu_si128(s + 3);
	_mm_stream_si128(d, a);
	_mm_stream_si128(d + 1, b);
	_mm_stream_si128(d + 2, c);
	_mm_stream_si128(d + 3, e);
	/* The entry is globally visible before any later store (the doorbell). */
	_mm_sfence();
#else
	volatile uint64_t *d = (volatile uint64_t *)(uintptr_t)dst;
	uint64_t w[8];

	memcpy(w, sqe, sizeof(w));
	for (unsigned i = 0; i < 8; i++)
		d[i] = w[i];
	/* Device-visible order: the entry before the doorbell (dmb oshst on arm64). */
	pnvme_wmb();
#endif
}
