/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * emu_aen.c - asynchronous events of the emulated controller (NVMe Base 2.0
 * §5.2) and the test controls that raise them: namespaces removed, added
 * back or resized (Namespace Attribute Changed notice, Changed Namespace
 * List log 04h, §5.16.1.5) and SMART critical warnings (SMART / Health
 * status events, log 02h).
 *
 * An event is raised only when the host enabled its kind with Set Features
 * Asynchronous Event Configuration (§5.27.1.7). It completes an outstanding
 * Asynchronous Event Request, or waits for the next one. Once an event of a
 * type was reported, further events of that type wait until the host reads
 * the log page the event named with RAE clear (§5.2: the type is masked
 * until then).
 */
#include <errno.h>
#include <string.h>

#include "emu_priv.h"

#define AEC_NS_ATTR (1u << 8)   /* Asynchronous Event Configuration: namespace notices */

static uint32_t aen_dw0(uint32_t type, uint32_t info, uint32_t lid)
{
	return PNVME_SET(PNVME_AER_TYPE, type) | PNVME_SET(PNVME_AER_INFO, info) |
	       PNVME_SET(PNVME_AER_LID, lid);
}

static bool type_masked(const struct pnvme_emu *emu, uint32_t dw0)
{
	return (emu->aen_masked >> PNVME_GET(dw0, PNVME_AER_TYPE)) & 1u;
}

/* Index of the oldest event whose type is not masked, or -1. */
static int aen_next(const struct pnvme_emu *emu)
{
	for (uint32_t i = 0; i < emu->nr_aen; i++)
		if (!type_masked(emu, emu->aen_pending[i]))
			return (int)i;
	return -1;
}

static uint32_t aen_pop(struct pnvme_emu *emu, int i)
{
	uint32_t dw0 = emu->aen_pending[i];

	memmove(&emu->aen_pending[i], &emu->aen_pending[i + 1],
		(emu->nr_aen - (uint32_t)i - 1) * sizeof(emu->aen_pending[0]));
	emu->nr_aen--;
	emu->aen_masked |= (uint8_t)(1u << PNVME_GET(dw0, PNVME_AER_TYPE));
	return dw0;
}

/* Complete held Asynchronous Event Requests with waiting events. */
static void aen_deliver(struct pnvme_emu *emu)
{
	int i;

	if (!emu->running)
		return;
	while (emu->nr_aer && (i = aen_next(emu)) >= 0) {
		struct emu_cpl c = {
			.dw0 = aen_pop(emu, i),
			.sqid = 0,
			.cid = emu->aer_cid[0],
			.sqhd = (uint16_t)emu->sqs[0].head,
			.cqid = 0,
		};
		memmove(&emu->aer_cid[0], &emu->aer_cid[1], --emu->nr_aer * sizeof(emu->aer_cid[0]));
		log_debug("emu: asynchronous event 0x%08x (cid %u)", c.dw0, c.cid);
		emu_cpl_post(emu, &c);
	}
}

static void aen_raise(struct pnvme_emu *emu, uint32_t dw0)
{
	for (uint32_t i = 0; i < emu->nr_aen; i++)
		if (emu->aen_pending[i] == dw0)
			return; /* already waiting: one report covers both */
	if (emu->nr_aen == EMU_AEN_PENDING) {
		log_debug("emu: asynchronous event 0x%08x lost: %u waiting", dw0, EMU_AEN_PENDING);
		return;
	}
	emu->aen_pending[emu->nr_aen++] = dw0;
	aen_deliver(emu);
}

bool emu_aen_take(struct pnvme_emu *emu, uint32_t *dw0)
{
	int i = aen_next(emu);

	if (i < 0)
		return false;
	*dw0 = aen_pop(emu, i);
	return true;
}

void emu_aen_log_read(struct pnvme_emu *emu, uint32_t lid)
{
	uint32_t type;

	switch (lid) {
	case PNVME_LOG_ERROR:
		type = PNVME_AER_TYPE_ERROR;
		break;
	case PNVME_LOG_SMART:
		type = PNVME_AER_TYPE_SMART;
		break;
	case PNVME_LOG_CHANGED_NS:
		emu->changed_ns = 0;  /* §5.16.1.5: cleared by a read with RAE clear */
		type = PNVME_AER_TYPE_NOTICE;
		break;
	default:
		return;
	}
	emu->aen_masked &= (uint8_t)~(1u << type);
	aen_deliver(emu);
}

void emu_aen_changed_list(const struct pnvme_emu *emu, uint32_t *list)
{
	uint32_t n = 0;

	for (uint32_t nsid = 1; nsid <= EMU_NN; nsid++)
		if ((emu->changed_ns >> (nsid - 1)) & 1u)
			list[n++] = nsid;
}

/* ------------------------------------------------------------------------ */
/* Test controls (public, <pnvme/emu.h>)                                    */
/* ------------------------------------------------------------------------ */

static void ns_changed(struct pnvme_emu *emu, uint32_t nsid)
{
	emu->changed_ns |= 1ull << (nsid - 1);
	if (emu->feat_aec & AEC_NS_ATTR)
		aen_raise(emu, aen_dw0(PNVME_AER_TYPE_NOTICE, PNVME_AER_NOTICE_NS_CHANGED,
				       PNVME_LOG_CHANGED_NS));
}

void emu_aen_configured(struct pnvme_emu *emu)
{
	if (emu->cfg.aen_ms && !emu->aen_armed && (emu->feat_aec & AEC_NS_ATTR)) {
		emu->aen_armed = true;
		emu->aen_at_ns = emu_now_ns() + (uint64_t)emu->cfg.aen_ms * 1000000u;
	}
}

void emu_aen_timer(struct pnvme_emu *emu)
{
	uint32_t nsid = emu->cfg.nr_ns;

	if (emu_now_ns() < emu->aen_at_ns)
		return;
	emu->aen_at_ns = 0;
	if (!emu_ns_active(emu, nsid))
		return;
	log_debug("emu: aen_ms: namespace %u removed", nsid);
	emu->ns[nsid - 1].inactive = true;
	ns_changed(emu, nsid);
}

int pnvme_emu_ns_remove(struct pnvme_emu *emu, uint32_t nsid)
{
	if (emu == NULL)
		return -EINVAL;
	emu_lock(emu);
	if (!emu_ns_active(emu, nsid)) {
		emu_unlock(emu);
		return pnvme_fail(-EINVAL, "emu: no active namespace %u", nsid);
	}
	emu->ns[nsid - 1].inactive = true;
	ns_changed(emu, nsid);
	emu_unlock(emu);
	return 0;
}

int pnvme_emu_ns_add(struct pnvme_emu *emu, uint32_t nsid)
{
	if (emu == NULL)
		return -EINVAL;
	emu_lock(emu);
	if (nsid == 0 || nsid > emu->cfg.nr_ns || !emu->ns[nsid - 1].inactive) {
		emu_unlock(emu);
		return pnvme_fail(-EINVAL, "emu: namespace %u is active or beyond ns=%u", nsid,
				  emu->cfg.nr_ns);
	}
	emu->ns[nsid - 1].inactive = false;
	emu->ns[nsid - 1].nlba = emu->cfg.ns_size >> emu->lba_shift;
	ns_changed(emu, nsid);
	emu_unlock(emu);
	return 0;
}

int pnvme_emu_ns_resize(struct pnvme_emu *emu, uint32_t nsid, uint64_t nlba)
{
	if (emu == NULL)
		return -EINVAL;
	emu_lock(emu);
	if (!emu_ns_active(emu, nsid) || nlba == 0 || nlba > emu->cfg.ns_size >> emu->lba_shift) {
		emu_unlock(emu);
		return pnvme_fail(-EINVAL, "emu: namespace %u inactive, or %llu blocks outside "
				  "1..%llu", nsid, (unsigned long long)nlba,
				  (unsigned long long)(emu->cfg.ns_size >> emu->lba_shift));
	}
	emu->ns[nsid - 1].nlba = nlba;
	ns_changed(emu, nsid);
	emu_unlock(emu);
	return 0;
}

int pnvme_emu_set_critical_warning(struct pnvme_emu *emu, uint8_t bits)
{
	uint8_t raised;

	if (emu == NULL)
		return -EINVAL;
	emu_lock(emu);
	raised = (uint8_t)(bits & ~emu->crit_warn & emu->feat_aec & PNVME_AEC_SMART_MASK);
	emu->crit_warn = bits;
	if (raised) {
		/* Base 2.0 Figure 149: the information field names the kind. */
		uint32_t info = (raised & PNVME_SMART_CW_SPARE) ? PNVME_AER_SMART_SPARE :
				(raised & PNVME_SMART_CW_TEMPERATURE) ? PNVME_AER_SMART_TEMPERATURE :
				PNVME_AER_SMART_RELIABILITY;
		aen_raise(emu, aen_dw0(PNVME_AER_TYPE_SMART, info, PNVME_LOG_SMART));
	}
	emu_unlock(emu);
	return 0;
}
