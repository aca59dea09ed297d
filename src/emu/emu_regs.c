/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * emu_regs.c - the emulated controller's registers and its state machine.
 *
 * BAR0 as the controller sees it (NVMe Base 2.0 §3.1.4): reset values, CAP
 * (with the MQES_ZERO fault), CSTS as the controller sets it, the all-ones
 * state of a removed device; and the controller state that CC drives (Base 2.0
 * §3.5-§3.7): enable with the admin queues from AQA/ASQ/ACQ, reset on CC.EN
 * 1 -> 0, shutdown notification, recovery from the all-ones state. The
 * doorbell registers are read by the queue code (emu_queues.c).
 */

#include "emu_priv.h"

/* ------------------------------------------------------------------------ */
/* Registers (Base 2.0 §3.1.4: BAR0 as the controller writes it)            */
/* ------------------------------------------------------------------------ */

void emu_csts_update(struct pnvme_emu *emu)
{
	uint32_t v = emu->csts & ~(PNVME_CSTS_RDY_MASK | (PNVME_CSTS_CFS_MASK << PNVME_CSTS_CFS_SHIFT));
	if (emu->ready)
		v |= PNVME_SET(PNVME_CSTS_RDY, 1u);
	if (emu->cfs)
		v |= PNVME_SET(PNVME_CSTS_CFS, 1u);
	emu->csts = v;
	emu->running = emu->ready && !emu->cfs && !emu->shut && !emu->gone;
	reg_write(emu, PNVME_REG_CSTS, v);
}

/*
 * Every 32-bit word of BAR0 set to `v` (reset values, surprise removal): word
 * by word with atomic stores, since the host may be reading any register.
 */
void emu_bar_fill(struct pnvme_emu *emu, uint32_t v)
{
	for (size_t off = 0; off + 4 <= emu->bar_len; off += 4)
		__atomic_store_n((volatile uint32_t *)(emu->bar + off), v, __ATOMIC_RELAXED);
}

/* CAP.MQES as advertised: the configured value, or 0 while MQES_ZERO is armed.
 * Create I/O Queue enforces the advertised value. */
uint32_t emu_mqes_now(const struct pnvme_emu *emu)
{
	return emu_fault_armed(emu, PNVME_EMU_FAULT_MQES_ZERO) ? 0u : emu->cfg.mqes;
}

/* Base 2.0 §3.1.4.1: Controller Capabilities. */
void emu_cap_write(struct pnvme_emu *emu)
{
	const struct pnvme_emu_config *c = &emu->cfg;
	uint64_t cap = PNVME_SET(PNVME_CAP_MQES, (uint64_t)emu_mqes_now(emu)) |
		       PNVME_SET(PNVME_CAP_CQR, 1ull) |
		       PNVME_SET(PNVME_CAP_TO, (uint64_t)c->to) |
		       PNVME_SET(PNVME_CAP_DSTRD, (uint64_t)c->dstrd) |
		       PNVME_SET(PNVME_CAP_CSS, (uint64_t)PNVME_CAP_CSS_NVM) |
		       PNVME_SET(PNVME_CAP_MPSMIN, 0ull) | PNVME_SET(PNVME_CAP_MPSMAX, 0ull) |
		       PNVME_SET(PNVME_CAP_CMBS, (uint64_t)(c->cmb != 0));

	mmio_write64(emu->bar, PNVME_REG_CAP, cap);
	emu->cap_dirty = false;
}

/* Base 2.0 §3.1.4: the reset values of the properties this controller has. */
void emu_regs_init(struct pnvme_emu *emu)
{
	emu_bar_fill(emu, 0);
	emu_cap_write(emu);
	reg_write(emu, PNVME_REG_VS, PNVME_VS(2, 0, 0));
	emu->cc = 0;
	emu->csts = 0;
	emu->cmbmsc = 0;
	emu->cmse = false;
}

/* ------------------------------------------------------------------------ */
/* Controller Memory Buffer (Base 2.0 §3.1.4.11-§3.1.4.14)                  */
/* ------------------------------------------------------------------------ */

#define EMU_CMB_BIR 2u  /* the CMB is all of BAR2, offset 0 (as QEMU's controller) */

/*
 * §3.1.4.13: CRE makes CMBLOC and CMBSZ readable (0 while it is clear);
 * CMSE with CBA maps the CMB into the controller memory space; a CBA whose
 * range wraps sets CMBSTS.CBAI (§3.1.4.14) and leaves the space disabled.
 */
void emu_cmb_process(struct pnvme_emu *emu)
{
	uint64_t v, cba;
	uint32_t loc, sz;

	if (emu->cmb == NULL)
		return;
	v = mmio_read64(emu->bar, PNVME_REG_CMBMSC);
	if (v == emu->cmbmsc)
		return;
	emu->cmbmsc = v;
	emu->cmse = false;
	if (!(v & PNVME_CMBMSC_CRE)) {
		reg_write(emu, PNVME_REG_CMBLOC, 0);
		reg_write(emu, PNVME_REG_CMBSZ, 0);
		reg_write(emu, PNVME_REG_CMBSTS, 0);
		return;
	}
	/* §3.1.4.11: an SQ in the CMB may pair with a CQ, PRPs and data in host memory */
	loc = PNVME_SET(PNVME_CMBLOC_BIR, EMU_CMB_BIR) | PNVME_SET(PNVME_CMBLOC_CQMMS, 1u) |
	      PNVME_SET(PNVME_CMBLOC_CDPMLS, 1u) | PNVME_SET(PNVME_CMBLOC_CDPCILS, 1u) |
	      PNVME_SET(PNVME_CMBLOC_CDMMMS, 1u) | PNVME_SET(PNVME_CMBLOC_OFST, 0u);
	/* §3.1.4.12: submission queues only, in 1 MiB units (SZU 2) */
	sz = PNVME_SET(PNVME_CMBSZ_SQS, 1u) | PNVME_SET(PNVME_CMBSZ_SZU, 2u) |
	     PNVME_SET(PNVME_CMBSZ_SZ, emu->cfg.cmb);
	reg_write(emu, PNVME_REG_CMBLOC, loc);
	reg_write(emu, PNVME_REG_CMBSZ, sz);
	if (!(v & PNVME_CMBMSC_CMSE)) {
		reg_write(emu, PNVME_REG_CMBSTS, 0);
		return;
	}
	cba = v & PNVME_CMBMSC_CBA_MASK;
	if (cba + (emu->cmb_len - 1) < cba) {
		log_debug("emu: CMBMSC.CBA %#llx: the CMB would wrap", (unsigned long long)cba);
		reg_write(emu, PNVME_REG_CMBSTS, PNVME_CMBSTS_CBAI);
		return;
	}
	reg_write(emu, PNVME_REG_CMBSTS, 0);
	emu->cmb_cba = cba;
	emu->cmse = true;
	log_debug("emu: CMB of %zu bytes at %#llx", emu->cmb_len, (unsigned long long)cba);
}

uint8_t *emu_cmb_addr(struct pnvme_emu *emu, uint64_t addr, uint64_t len, bool *straddles)
{
	uint64_t off = addr - emu->cmb_cba;

	*straddles = false;
	if (!emu->cmse || off >= emu->cmb_len)
		return NULL;
	*straddles = len > emu->cmb_len - off;
	return emu->cmb + off;
}

/* ------------------------------------------------------------------------ */
/* Controller state (Base 2.0 §3.5: initialization, reset, shutdown)        */
/* ------------------------------------------------------------------------ */

/* Base 2.0 §3.5.1, controller side of steps 4-5: admin queues from AQA/ASQ/ACQ, then RDY. */
static void ctrl_enable(struct pnvme_emu *emu)
{
	uint32_t aqa = reg_read(emu, PNVME_REG_AQA);
	uint64_t asq = mmio_read64(emu->bar, PNVME_REG_ASQ);
	uint64_t acq = mmio_read64(emu->bar, PNVME_REG_ACQ);
	uint32_t sqs = PNVME_GET(aqa, PNVME_AQA_ASQS) + 1u;
	uint32_t cqs = PNVME_GET(aqa, PNVME_AQA_ACQS) + 1u;
	uint32_t cc = emu->cc;
	void *sring, *cring;

	emu->st.enables++;
	emu->enabled = true;
	emu->cfs = false;                       /* a CFS not pinned by a fault ends here */
	emu_queues_reset(emu);
	emu_features_default(emu);

	for (unsigned i = 0; i < EMU_MAX_FAULTS; i++) {
		struct emu_fault_slot *s = &emu->faults[i];
		if (s->armed && s->f.kind == PNVME_EMU_FAULT_CFS_ON_ENABLE) {
			s->armed = false;                /* one shot */
			log_debug("emu: fault: CFS on enable");
			goto fatal;
		}
	}
	if (emu_fault_armed(emu, PNVME_EMU_FAULT_CFS))
		goto fatal;
	if (PNVME_GET(cc, PNVME_CC_MPS) != 0 || PNVME_GET(cc, PNVME_CC_CSS) != PNVME_CC_CSS_NVM ||
	    PNVME_GET(cc, PNVME_CC_AMS) != PNVME_CC_AMS_RR) {
		log_debug("emu: enable: unsupported CC %#x", cc);
		goto fatal;
	}
	if (sqs < 2 || cqs < 2 || (asq & PAGE_MASK_) || (acq & PAGE_MASK_)) {
		log_debug("emu: enable: bad AQA %#x / ASQ %#llx / ACQ %#llx", aqa,
			  (unsigned long long)asq, (unsigned long long)acq);
		goto fatal;
	}
	sring = xlate(emu, asq, (uint64_t)sqs * sizeof(struct pnvme_sqe));
	cring = xlate(emu, acq, (uint64_t)cqs * sizeof(struct pnvme_cqe));
	if (sring == NULL || cring == NULL) {
		log_debug("emu: enable: admin queues not in the IOVA table");
		goto fatal;
	}
	emu->sqs[0].ring = sring;
	emu->sqs[0].size = sqs;
	emu->sqs[0].iova = asq;
	emu->sqs[0].valid = true;
	emu->sqs[0].db = sq_db_now(emu, 0);      /* (see sq_db_now()) */
	emu->cqs[0].db = cq_db_now(emu, 0);
	emu->cqs[0].ring = cring;
	emu->cqs[0].size = cqs;
	emu->cqs[0].iova = acq;
	emu->cqs[0].phase = 1;
	emu->cqs[0].nr_sqs = 1;
	emu->cqs[0].valid = true;

	if (emu_fault_armed(emu, PNVME_EMU_FAULT_NEVER_READY)) {
		log_debug("emu: fault: never ready");
		emu->ready = false;
	} else {
		emu->ready = true;
	}
	emu_csts_update(emu);
	return;
fatal:
	emu->cfs = true;
	emu->ready = false;
	emu_csts_update(emu);
}

/* Base 2.0 §3.7.2: controller reset on CC.EN 1 -> 0. */
static void ctrl_disable(struct pnvme_emu *emu)
{
	if (emu->enabled && PNVME_GET(emu->csts, PNVME_CSTS_SHST) != PNVME_CSTS_SHST_COMPLETE)
		emu->unsafe_shutdowns++;
	emu->enabled = false;
	emu_queues_reset(emu);
	emu->ready = false;
	emu->shut = false;
	emu->cfs = emu_fault_armed(emu, PNVME_EMU_FAULT_CFS);   /* a pinned CFS stays */
	emu->csts = 0;
	emu_csts_update(emu);
}

/* Base 2.0 §3.6: shutdown notification. */
static void ctrl_shutdown(struct pnvme_emu *emu)
{
	uint32_t shst = PNVME_CSTS_SHST_COMPLETE;

	if (emu_fault_armed(emu, PNVME_EMU_FAULT_NO_SHUTDOWN)) {
		log_debug("emu: fault: ignoring shutdown");
		shst = PNVME_CSTS_SHST_OCCURING;
	} else {
		for (uint32_t i = 0; i < emu->cfg.nr_ns; i++)
			emu_media_sync(emu, &emu->ns[i]);
		emu->shut = true;
	}
	emu->csts = (emu->csts & ~(PNVME_CSTS_SHST_MASK << PNVME_CSTS_SHST_SHIFT)) |
		    PNVME_SET(PNVME_CSTS_SHST, shst);
	emu_csts_update(emu);
}

bool emu_cc_process(struct pnvme_emu *emu)
{
	uint32_t cc = reg_read(emu, PNVME_REG_CC);
	uint32_t old = emu->cc;

	if (cc == old)
		return false;
	/* AQA/ASQ/ACQ (and the rings) were written before CC: the acquire load of
	 * CC above orders our reads of them after it */
	emu->cc = cc;
	if (PNVME_GET(old, PNVME_CC_EN) && !PNVME_GET(cc, PNVME_CC_EN))
		ctrl_disable(emu);
	else if (!PNVME_GET(old, PNVME_CC_EN) && PNVME_GET(cc, PNVME_CC_EN))
		ctrl_enable(emu);
	if (!PNVME_GET(old, PNVME_CC_SHN) && PNVME_GET(cc, PNVME_CC_SHN)) {
		ctrl_shutdown(emu);
	} else if (PNVME_GET(old, PNVME_CC_SHN) && !PNVME_GET(cc, PNVME_CC_SHN)) {
		emu->shut = false;
		emu->csts &= ~(PNVME_CSTS_SHST_MASK << PNVME_CSTS_SHST_SHIFT);
		emu_csts_update(emu);
	}
	return true;
}

/* All-ones state: registers read FFFFFFFFh until the fault is cleared and the host disables. */
void emu_gone_process(struct pnvme_emu *emu)
{
	uint32_t cc;

	if (emu_fault_armed(emu, PNVME_EMU_FAULT_ALL_ONES)) {
		emu_bar_fill(emu, UINT32_MAX);
		return;
	}
	cc = reg_read(emu, PNVME_REG_CC);
	if (PNVME_GET(cc, PNVME_CC_EN))
		return;
	emu->gone = false;
	emu_regs_init(emu);
	reg_write(emu, PNVME_REG_CC, cc);
	emu->cc = cc;
	emu->enabled = true;                /* so the reset below runs in full */
	ctrl_disable(emu);
}
