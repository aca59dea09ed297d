/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * emu_fault.c - fault injection into the emulated controller.
 *
 * Faults are armed with pnvme_emu_inject() and cleared with
 * pnvme_emu_clear_faults(). Controller-wide faults (CFS, all ones, never
 * ready, no shutdown, MQES zero, reorder...) are checked with
 * emu_fault_armed() where they apply; command faults (drop, delay, status,
 * ignore abort, mangled CQEs) match a command by queue, opcode, skip and count
 * in emu_fault_match() when the command is fetched, and mark its request.
 */
#include <errno.h>
#include <string.h>

#include "emu_priv.h"

/* ------------------------------------------------------------------------ */
/* Faults                                                                   */
/* ------------------------------------------------------------------------ */

/* Faults that match commands (qid, opc, skip, count). */
static bool fault_is_cmd(enum pnvme_emu_fault_kind k)
{
	switch (k) {
	case PNVME_EMU_FAULT_DROP_CPL:
	case PNVME_EMU_FAULT_DELAY_CPL:
	case PNVME_EMU_FAULT_STATUS:
	case PNVME_EMU_FAULT_IGNORE_ABORT:
	case PNVME_EMU_FAULT_CQE_BAD_CID:
	case PNVME_EMU_FAULT_CQE_DUP:
	case PNVME_EMU_FAULT_CQE_BAD_SQHD:
	case PNVME_EMU_FAULT_CQE_SQHD_BACK:
		return true;
	default:
		return false;
	}
}

bool emu_fault_armed(const struct pnvme_emu *emu, enum pnvme_emu_fault_kind k)
{
	for (unsigned i = 0; i < EMU_MAX_FAULTS; i++)
		if (emu->faults[i].armed && emu->faults[i].f.kind == k)
			return true;
	return false;
}

/* Apply matching command faults; returns a status to complete with, or 0. */
uint16_t emu_fault_match(struct pnvme_emu *emu, struct emu_req *req)
{
	uint16_t status = 0;

	for (unsigned i = 0; i < EMU_MAX_FAULTS; i++) {
		struct emu_fault_slot *s = &emu->faults[i];
		if (!s->armed || !fault_is_cmd(s->f.kind))
			continue;
		if (s->f.qid != PNVME_EMU_ANY_QID && s->f.qid != req->sq->qid)
			continue;
		if (s->f.opc != PNVME_EMU_ANY_OPC && s->f.opc != req->cmd.opc)
			continue;
		/* IGNORE_ABORT counts Abort commands only */
		if (s->f.kind == PNVME_EMU_FAULT_IGNORE_ABORT &&
		    (req->sq->qid != 0 || req->cmd.opc != PNVME_ADM_ABORT))
			continue;
		if (++s->seen <= s->f.skip)
			continue;
		if (s->f.count && s->hits >= s->f.count)
			continue;
		s->hits++;
		switch (s->f.kind) {
		case PNVME_EMU_FAULT_DROP_CPL:
			req->drop = true;
			break;
		case PNVME_EMU_FAULT_DELAY_CPL:
			req->delay = true;
			if (s->f.delay_us > req->delay_us)
				req->delay_us = s->f.delay_us;
			break;
		case PNVME_EMU_FAULT_IGNORE_ABORT:
			req->ignore_abort = true;
			break;
		case PNVME_EMU_FAULT_CQE_BAD_CID:
			req->fx |= FX_BAD_CID;
			break;
		case PNVME_EMU_FAULT_CQE_DUP:
			req->fx |= FX_DUP;
			break;
		case PNVME_EMU_FAULT_CQE_BAD_SQHD:
			req->fx |= FX_BAD_SQHD;
			break;
		case PNVME_EMU_FAULT_CQE_SQHD_BACK:
			req->fx |= FX_SQHD_BACK;
			break;
		default:
			status = s->f.status;
			break;
		}
	}
	return status;
}

int pnvme_emu_inject(struct pnvme_emu *emu, const struct pnvme_emu_fault *fault)
{
	int rc = -ENOSPC;

	if (emu == NULL || fault == NULL)
		return pnvme_fail(-EINVAL, "emu inject: NULL %s", emu == NULL ? "emulator" : "fault");
	if (fault->kind < PNVME_EMU_FAULT_NEVER_READY || fault->kind > PNVME_EMU_FAULT_MQES_ZERO)
		return pnvme_fail(-EINVAL, "emu inject: unknown fault kind");
	emu_lock(emu);
	for (unsigned i = 0; i < EMU_MAX_FAULTS; i++) {
		struct emu_fault_slot *s = &emu->faults[i];
		if (s->armed)
			continue;
		memset(s, 0, sizeof(*s));
		s->f = *fault;
		s->armed = true;
		if (fault_is_cmd(fault->kind))
			emu->nr_cmd_faults++;
		rc = 0;
		break;
	}
	if (rc == 0) {
		switch (fault->kind) {
		case PNVME_EMU_FAULT_CFS:
			emu->cfs = true;
			emu_csts_update(emu);
			break;
		case PNVME_EMU_FAULT_ALL_ONES:
			emu->gone = true;
			emu->running = false;
			emu_bar_fill(emu, UINT32_MAX);
			break;
		case PNVME_EMU_FAULT_MQES_ZERO:
			emu->cap_dirty = true;       /* CAP changes at the next step */
			break;
		default:
			break;
		}
	}
	emu_unlock(emu);
	if (rc != 0)
		return pnvme_fail(rc, "emu inject: %u faults already armed", EMU_MAX_FAULTS);
	return 0;
}

void pnvme_emu_clear_faults(struct pnvme_emu *emu)
{
	if (emu == NULL)
		return;
	emu_lock(emu);
	if (emu_fault_armed(emu, PNVME_EMU_FAULT_MQES_ZERO))
		emu->cap_dirty = true;
	for (unsigned i = 0; i < EMU_MAX_FAULTS; i++)
		emu->faults[i].armed = false;
	emu->nr_cmd_faults = 0;
	emu_unlock(emu);
}
