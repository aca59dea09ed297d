/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pcie.c - the PCIe transport of the controller core (struct
 * pnvme_transport_ops): registers are MMIO in BAR0, the admin queue is
 * described by AQA/ASQ/ACQ, I/O queues are created with admin commands.
 * Used for devices bound to vfio-pci and for the emulated controller, whose
 * "BAR" is memory it polls (src/emu). The rings, PRPs and doorbells of the
 * I/O path are in qpair.c and ring.h.
 */
#include <stdio.h>

#include "core/ctrl_priv.h"

static int pcie_reg_read32(struct pnvme_ctrl *ctrl, uint32_t off, uint32_t *val)
{
	*val = mmio_read32(ctrl->bar, off);
	return 0;
}

static int pcie_reg_read64(struct pnvme_ctrl *ctrl, uint32_t off, uint64_t *val)
{
	*val = mmio_read64(ctrl->bar, off);
	return 0;
}

static int pcie_reg_write32(struct pnvme_ctrl *ctrl, uint32_t off, uint32_t val)
{
	mmio_write32(ctrl->bar, off, val);
	return 0;
}

/*
 * CAP, VS and BAR0's size; then, whatever state the last owner left (a
 * killed process leaves queues running), disable the controller before the
 * device may DMA again and before our memory is mapped at IOVAs its old
 * queues might still use.
 */
static int pcie_probe(struct pnvme_ctrl *ctrl)
{
	int rc;

	ctrl->bar = ctrl->be.bar;
	ctrl->cap = mmio_read64(ctrl->bar, PNVME_REG_CAP);
	ctrl->vs = mmio_read32(ctrl->bar, PNVME_REG_VS);
	if (ctrl->cap == UINT64_MAX || ctrl->vs == UINT32_MAX) {
		ctrl_mark_dead(ctrl);
		return pnvme_fail(-ENODEV, "controller registers read all ones: the device is "
				  "gone or not responding");
	}
	ctrl->dstrd = (uint32_t)PNVME_GET(ctrl->cap, PNVME_CAP_DSTRD);
	if (PNVME_CQ_HDBL(0, ctrl->dstrd) + sizeof(uint32_t) > ctrl->be.bar_len)
		return pnvme_fail(-EPROTO, "BAR0 (%zu bytes) too small for the admin doorbells "
				  "(CAP.DSTRD %u)", ctrl->be.bar_len, ctrl->dstrd);
	if (PNVME_GET(ctrl->cap, PNVME_CAP_MQES) == 0)
		return pnvme_fail(-EPROTO, "CAP.MQES is 0: queues of one entry cannot work");
	rc = ctrl_cc_disable(ctrl);
	if (rc)
		return rc;
	if (ctrl->be.ops->bus_master)
		return ctrl->be.ops->bus_master(ctrl->be.ctx, true);
	return 0;
}

/* Base 2.0 §3.5.1 steps 1-2. */
static int pcie_admin_setup(struct pnvme_ctrl *ctrl)
{
	struct pnvme_qpair *aq = ctrl->adminq;
	uint64_t asq, acq;
	int rc;

	/* Step 1: wait for any previous reset to finish (CSTS.RDY = 0). */
	rc = ctrl_cc_disable(ctrl);
	if (rc)
		return rc;

	/* Step 2: admin queue attributes and base addresses (and, where the device
	 * polls them, doorbells that read 0 again: see pnvme_backend.db_polled). */
	qpair_db_zero(aq);
	if (pnvme_dma_xlate(&ctrl->dma, aq->sq_mem, 1, &asq) ||
	    pnvme_dma_xlate(&ctrl->dma, aq->cq_mem, 1, &acq))
		return pnvme_fail(-EFAULT, "admin queue rings are not DMA mapped");
	mmio_write32(ctrl->bar, PNVME_REG_AQA, PNVME_SET(PNVME_AQA_ASQS, aq->qsize - 1) |
					      PNVME_SET(PNVME_AQA_ACQS, aq->qsize - 1));
	mmio_write64(ctrl->bar, PNVME_REG_ASQ, asq);
	mmio_write64(ctrl->bar, PNVME_REG_ACQ, acq);
	cmb_restore(ctrl);  /* CMB queues are re-created in it after a reset */
	return 0;
}

/*
 * Create the queue pair's CQ, then its SQ (Base 2.0 §3.3.1.2: a completion
 * queue must exist before its submission queue). A refusal of the SQ takes
 * the CQ back, unless a reset ran inside (it deleted both).
 */
static int pcie_queue_create(struct pnvme_qpair *qp)
{
	struct pnvme_ctrl *ctrl = qp->ctrl;
	uint32_t gen = __atomic_load_n(&ctrl->gen, __ATOMIC_ACQUIRE);
	uint64_t sq_iova, cq_iova;
	char why[256];
	int rc;

	if (pnvme_dma_xlate(&ctrl->dma, qp->sq_mem, 1, &sq_iova) ||
	    pnvme_dma_xlate(&ctrl->dma, qp->cq_mem, 1, &cq_iova))
		return pnvme_fail(-EFAULT, "queue rings are not DMA mapped");
	if (qp->cmb_sq != NULL)
		sq_iova = qp->cmb_sq_bus;   /* the SQ the controller reads is in its CMB */
	/* Shadow entries (and a polled device's doorbells) start from zero
	 * before the device may look at them. */
	qpair_shadow_setup(qp);
	qpair_db_zero(qp);
	if (qp->irq_fd >= 0) {
		/* MSI-X vector = queue id; again after a reset (the same eventfd) */
		rc = ctrl->be.ops->irq_set(ctrl->be.ctx, qp->qid, qp->irq_fd);
		if (rc)
			return rc;
	}
	rc = ctrl_create_io_cq_irq(ctrl, qp->qid, cq_iova, qp->cq_size,
				   qp->irq_fd >= 0 ? (int32_t)qp->qid : -1);
	if (rc)
		return rc;
	rc = pnvme_create_io_sq(ctrl, qp->qid, qp->qid, sq_iova, qp->qsize);
	if (rc && gen == __atomic_load_n(&ctrl->gen, __ATOMIC_ACQUIRE)) {
		/* Refused: take the CQ back, keep the refusal's message. */
		snprintf(why, sizeof(why), "%s", pnvme_last_error());
		(void)pnvme_delete_io_cq(ctrl, qp->qid);
		rc = pnvme_fail(rc, "%s", why);
	}
	return rc;
}

static void pcie_close(struct pnvme_ctrl *ctrl)
{
	cmb_close(ctrl);
	if (ctrl->be.ops && ctrl->be.ops->close)
		ctrl->be.ops->close(ctrl->be.ctx);
}

const struct pnvme_transport_ops pnvme_pcie_ops = {
	.name = "pcie",
	.reg_read32 = pcie_reg_read32,
	.reg_read64 = pcie_reg_read64,
	.reg_write32 = pcie_reg_write32,
	.probe = pcie_probe,
	.admin_setup = pcie_admin_setup,
	.disable = ctrl_cc_disable,
	.queue_create = pcie_queue_create,
	.queue_delete = pcie_queue_delete,
	.close = pcie_close,
};
