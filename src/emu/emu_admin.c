/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * emu_admin.c - the admin command set of the emulated controller (Base 2.0 §5).
 *
 * Parsing and execution of each admin command: Identify (controller,
 * namespace, active namespace list, with the test override), Get Log Page
 * (error information, SMART), Get / Set Features, Create / Delete I/O
 * Submission and Completion Queue, Abort, Asynchronous Event Request and
 * Doorbell Buffer Config. emu_parse_admin() checks a command's fields and
 * picks its execute function.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_priv.h"

/* ------------------------------------------------------------------------ */
/* Admin command set (Base 2.0 §5)                                          */
/* ------------------------------------------------------------------------ */

static void pad_copy(char *dst, size_t n, const char *src)
{
	size_t l = strlen(src);
	memset(dst, ' ', n);
	memcpy(dst, src, l < n ? l : n);
}

static void put_u128(uint8_t dst[16], uint64_t v)
{
	memset(dst, 0, 16);
	memcpy(dst, &v, sizeof(v));
}

/* Base 2.0 §5.17.2.1, Figure 275: Identify Controller data structure. */
static void identify_ctrl(struct pnvme_emu *emu, struct pnvme_id_ctrl *id)
{
	const struct pnvme_emu_config *c = &emu->cfg;

	id->vid = 0x1b36;
	id->ssvid = 0x1af4;
	pad_copy(id->sn, sizeof(id->sn), c->sn);
	pad_copy(id->mn, sizeof(id->mn), c->mn);
	pad_copy(id->fr, sizeof(id->fr), EMU_FW_REV);
	id->rab = 6;
	id->mdts = (uint8_t)c->mdts;
	if (emu_fault_armed(emu, PNVME_EMU_FAULT_ID_MDTS_HUGE))
		id->mdts = 255;                  /* the limit enforced stays c->mdts */
	id->cntlid = 1;
	id->ver = PNVME_VS(2, 0, 0);
	id->cntrltype = 1;                       /* I/O controller */
	id->oacs = emu->cfg.dbbuf ? PNVME_OACS_DBBUF : 0;
	if (c->format) {
		id->oacs |= PNVME_OACS_FORMAT;
		/* one format for all namespaces, erase too; crypto erase offered */
		id->fna = PNVME_FNA_FNS | PNVME_FNA_SENS | PNVME_FNA_CRYES;
	}
	id->sanicap = c->sanicap;
	id->acl = EMU_ACL;
	id->aerl = EMU_AERL;
	id->oaes = 1u << 8;                      /* namespace attribute notices (emu_aen.c) */
	id->frmw = 1u << 1;                      /* one firmware slot */
	id->lpa = 1u << 2;                       /* extended Get Log Page (offset, NUMDU) */
	id->elpe = EMU_ERRLOG_LEN - 1;
	id->npss = 0;
	id->wctemp = EMU_WCTEMP_K;
	id->cctemp = EMU_CCTEMP_K;
	put_u128(id->tnvmcap, c->ns_size * c->nr_ns);
	id->sqes = 0x66;
	id->cqes = 0x44;
	id->nn = emu_fault_armed(emu, PNVME_EMU_FAULT_ID_NN_HUGE) ? 0xffffffffu : EMU_NN;
	id->oncs = PNVME_ONCS_DSM | PNVME_ONCS_WRITE_ZEROES;
	id->vwc = 1;
	/* SGLS: sgl=1 any alignment (as QEMU's controller), 2 dword Data Blocks; Bit Buckets */
	if (c->sgl != 0)
		id->sgls = PNVME_SET(PNVME_SGLS_SUPPORT, c->sgl) | PNVME_SGLS_BIT_BUCKET;
	snprintf(id->subnqn, sizeof(id->subnqn), "nqn.2024-01.dev.pnvme:emu:%s", c->sn);
	id->psd[0].mp = 2500;                    /* 25 W, in 0.01 W */
	id->psd[0].enlat = 16;
	id->psd[0].exlat = 4;
}

/* NVM 1.0 §4.1.5.1, Figure 97: Identify Namespace data structure. */
static void identify_ns(struct pnvme_emu *emu, uint32_t nsid, struct pnvme_id_ns *id)
{
	const struct emu_ns *ns = &emu->ns[nsid - 1];

	id->nsze = ns->nlba;
	id->ncap = ns->nlba;
	id->nuse = ns->nlba;
	id->nlbaf = (uint8_t)emu->nlbaf;
	/* FLBAS (NVM 1.0 Figure 97): index bits 3:0, and 5:4 in FLBAS bits 6:5 */
	id->flbas = (uint8_t)((emu->fmt_idx & 0xfu) | ((emu->fmt_idx >> 4) << 5));
	id->dlfeat = 0x1u | (1u << 3);   /* deallocated blocks read zeroes; WZ DEAC */
	put_u128(id->nvmcap, ns->bytes);
	id->nguid[0] = 0x70;              /* 'p' */
	memcpy(&id->nguid[4], emu->cfg.sn, 8);
	memcpy(&id->nguid[12], &nsid, 4);
	memcpy(id->lbaf, emu->lbaf, sizeof(emu->lbaf));
	/*
	 * NVM 1.0 Figure 97: FLBAS bit 4, MC, DPC, DPS. Without Format NVM only
	 * what the namespace is; with it, every setting Format NVM accepts.
	 */
	if (emu->cfg.ext)
		id->flbas |= PNVME_FLBAS_META_EXT;
	if (emu->cfg.format)
		id->mc = 3u;
	else if (emu->ms != 0)
		id->mc = emu->cfg.ext ? 1u : 2u;        /* bit 0 extended, bit 1 separate */
	if (emu->cfg.format)
		id->dpc = 0x1fu;                        /* types 1..3, first or last bytes */
	else if (emu->cfg.pi != 0)
		id->dpc = (uint8_t)((1u << (emu->cfg.pi - 1)) | (emu->cfg.pi_first ? 1u << 3 : 1u << 4));
	if (emu->cfg.pi != 0)
		id->dps = (uint8_t)(emu->cfg.pi | (emu->cfg.pi_first ? 1u << 3 : 0));
	if (emu_fault_armed(emu, PNVME_EMU_FAULT_ID_FLBAS_RANGE)) {
		/* index 3 with NLBAF 0; LBAF3 itself looks fine, so only the NLBAF check catches it */
		id->flbas = (uint8_t)(EMU_BAD_FLBAS | (id->flbas & PNVME_FLBAS_META_EXT));
		id->lbaf[EMU_BAD_FLBAS] = id->lbaf[0];
	}
	if (emu_fault_armed(emu, PNVME_EMU_FAULT_ID_LBADS_ZERO)) {
		unsigned fmt = PNVME_FLBAS_INDEX(id->flbas);
		id->lbaf[fmt] &= ~(uint32_t)(PNVME_LBAF_LBADS_MASK << PNVME_LBAF_LBADS_SHIFT);
	}
}

/*
 * Base 2.0 §5.17.2.2: active NSIDs above `nsid`, ascending. ID_NN_HUGE breaks
 * the order: the highest comes first, then the rest, then the lowest again
 * (nsid 1 alone gives [1, 1]; 3 namespaces give [3, 1, 2, 1]).
 */
static void identify_active_list(struct pnvme_emu *emu, uint32_t nsid, uint32_t *list)
{
	uint32_t n = 0;

	for (uint32_t id = nsid + 1; id <= emu->cfg.nr_ns && n < PNVME_ID_NS_LIST_MAX; id++)
		if (emu_ns_active(emu, id))
			list[n++] = id;
	if (n == 0 || !emu_fault_armed(emu, PNVME_EMU_FAULT_ID_NN_HUGE))
		return;
	uint32_t hi = list[n - 1], lo = list[0];
	memmove(&list[1], &list[0], (size_t)(n - 1) * sizeof(*list));
	list[0] = hi;
	if (n < PNVME_ID_NS_LIST_MAX)
		list[n] = lo;
}

/* Base 2.0 §5.17: Identify */
static uint16_t exec_identify(struct pnvme_emu *emu, struct emu_req *req)
{
	uint32_t cns = req->cmd.cdw10 & 0xffu;
	uint32_t nsid = req->cmd.nsid;
	uint8_t *buf = emu->scratch;

	memset(buf, 0, PNVME_IDENTIFY_DATA_SIZE);
	switch (cns) {
	case PNVME_ID_CNS_NS:
		if (nsid == 0 || nsid > EMU_NN)
			return ST_INVALID_NS;
		if (emu_ns_active(emu, nsid))        /* inactive NSIDs: zeroes */
			identify_ns(emu, nsid, (struct pnvme_id_ns *)buf);
		break;
	case PNVME_ID_CNS_CTRL:
		identify_ctrl(emu, (struct pnvme_id_ctrl *)buf);
		break;
	case PNVME_ID_CNS_NS_ACTIVE:
		if (nsid >= 0xfffffffeu)
			return ST_INVALID_NS;
		identify_active_list(emu, nsid, (uint32_t *)buf);
		break;
	case PNVME_ID_CNS_NS_DESC_LIST:
		/* Base 2.0 §5.17.2.3: one NGUID descriptor (NIDT 2, NIDL 16) */
		if (nsid == 0 || nsid > EMU_NN)
			return ST_INVALID_NS;
		if (emu_ns_active(emu, nsid)) {
			struct pnvme_id_ns id;
			memset(&id, 0, sizeof(id));
			identify_ns(emu, nsid, &id);
			buf[0] = 2;
			buf[1] = 16;
			memcpy(buf + 4, id.nguid, 16);
		}
		break;
	default:
		return ST_INVALID_FIELD;
	}
	if (unlikely(cns < ARRAY_SIZE(emu->id_override) && emu->id_override[cns] != NULL))
		memcpy(buf, emu->id_override[cns], PNVME_IDENTIFY_DATA_SIZE);
	return emu_prp_to_host(emu, req, buf, PNVME_IDENTIFY_DATA_SIZE, PNVME_IDENTIFY_DATA_SIZE);
}

/* Base 2.0 §5.16.1.3, Figure 207: SMART / Health Information. */
static void smart_fill(struct pnvme_emu *emu, struct pnvme_smart_log *s)
{
	uint64_t hours = (emu_now_ns() / 1000000000ull - emu->created_ns / 1000000000ull) / 3600u;

	s->critical_warning = emu->crit_warn;
	s->temperature[0] = (uint8_t)(EMU_TEMP_K & 0xff);
	s->temperature[1] = (uint8_t)(EMU_TEMP_K >> 8);
	s->avail_spare = 100;
	s->spare_thresh = 10;
	put_u128(s->data_units_read, (emu->sectors_read + 999) / 1000);
	put_u128(s->data_units_written, (emu->sectors_written + 999) / 1000);
	put_u128(s->host_reads, emu->host_reads);
	put_u128(s->host_writes, emu->host_writes);
	put_u128(s->power_cycles, 1);
	put_u128(s->power_on_hours, hours);
	put_u128(s->unsafe_shutdowns, emu->unsafe_shutdowns);
	put_u128(s->num_err_log_entries, emu->error_count);
	s->temp_sensor[0] = EMU_TEMP_K;
}

/* Base 2.0 §5.16: Get Log Page (offset and NUMDU honoured; RAE clear re-arms events). */
static uint16_t exec_get_log_page(struct pnvme_emu *emu, struct emu_req *req)
{
	const struct pnvme_sqe *c = &req->cmd;
	uint32_t lid = PNVME_GET(c->cdw10, PNVME_GLP_LID);
	uint64_t numd = ((uint64_t)PNVME_GET(c->cdw11, PNVME_GLP_NUMDU) << 16 |
			 PNVME_GET(c->cdw10, PNVME_GLP_NUMDL)) + 1u;
	uint64_t len = numd * 4u;
	uint64_t off = (uint64_t)c->cdw12 | ((uint64_t)c->cdw13 << 32);
	uint8_t *buf = emu->scratch;
	uint64_t size;

	switch (lid) {
	case PNVME_LOG_ERROR: {
		struct pnvme_error_log *e = (struct pnvme_error_log *)buf;
		size = EMU_ERRLOG_LEN * sizeof(*e);
		memset(buf, 0, (size_t)size);
		for (uint64_t i = 0; i < EMU_ERRLOG_LEN && i < emu->error_count; i++)
			e[i] = emu->errlog[(emu->error_count - 1 - i) % EMU_ERRLOG_LEN];
		break;
	}
	case PNVME_LOG_SMART:
		size = sizeof(struct pnvme_smart_log);
		memset(buf, 0, (size_t)size);
		smart_fill(emu, (struct pnvme_smart_log *)buf);
		break;
	case PNVME_LOG_FW_SLOT: {
		/* Base 2.0 §5.16.1.4: running from slot 1, nothing pending */
		struct pnvme_fw_slot_log *f = (struct pnvme_fw_slot_log *)buf;
		size = sizeof(*f);
		memset(buf, 0, (size_t)size);
		f->afi = PNVME_SET(PNVME_AFI_ACTIVE, 1u);
		pad_copy(f->frs[0], sizeof(f->frs[0]), EMU_FW_REV);
		break;
	}
	case PNVME_LOG_SANITIZE: {
		struct pnvme_sanitize_log *l = (struct pnvme_sanitize_log *)buf;
		if (emu->cfg.sanicap == 0)
			return ST_LOG_INVALID;
		size = sizeof(*l);
		memset(buf, 0, (size_t)size);
		l->sprog = emu->san_busy ? emu->san_sprog : 0xffffu;
		l->sstat = emu->san_sstat;
		l->scdw10 = emu->san_cdw10;
		l->eto = l->etbe = l->etce = 0xffffffffu;       /* no estimates */
		l->etondas = l->etbendas = l->etcendas = 0xffffffffu;
		break;
	}
	case PNVME_LOG_CHANGED_NS:
		size = PNVME_CHANGED_NS_MAX * sizeof(uint32_t);
		memset(buf, 0, (size_t)size);
		emu_aen_changed_list(emu, (uint32_t *)buf);
		break;
	default:
		return ST_LOG_INVALID;
	}
	if ((off & 3u) || off > size)
		return ST_INVALID_FIELD;
	uint16_t st = emu_prp_to_host(emu, req, buf + off, size - off, len);
	if (st == 0 && !(c->cdw10 & PNVME_GLP_RAE))
		emu_aen_log_read(emu, lid);
	return st;
}

/* Base 2.0 §5.27.1: the features this controller keeps. */
static uint32_t *feature_slot(struct pnvme_emu *emu, uint32_t fid)
{
	switch (fid) {
	case PNVME_FEAT_ARBITRATION:   return &emu->feat_arb;
	case PNVME_FEAT_POWER_MGMT:    return &emu->feat_pm;
	case PNVME_FEAT_ERR_RECOVERY:  return &emu->feat_err_rec;
	case PNVME_FEAT_VOLATILE_WC:   return &emu->feat_vwc;
	case PNVME_FEAT_NUM_QUEUES:    return &emu->feat_nq;
	case PNVME_FEAT_IRQ_COALESCE:  return &emu->feat_irq_coal;
	case PNVME_FEAT_ASYNC_EVENT:   return &emu->feat_aec;
	case PNVME_FEAT_TEMP_THRESH:   return &emu->feat_temp_over;
	default:                       return NULL;
	}
}

void emu_features_default(struct pnvme_emu *emu)
{
	uint32_t nq = emu->cfg.nr_io_queues - 1;

	emu->feat_arb = 0;
	emu->feat_pm = 0;
	emu->feat_temp_over = EMU_WCTEMP_K;
	emu->feat_temp_under = 0;
	emu->feat_err_rec = 0;
	emu->feat_vwc = 1;
	emu->feat_nq = nq | (nq << 16);
	emu->feat_irq_coal = 0;
	emu->feat_aec = 0;
}

/* Temperature Threshold (Base 2.0 §5.27.1.4): TMPTH 15:0, TMPSEL 19:16, THSEL 21:20. */
static uint32_t *temp_slot(struct pnvme_emu *emu, uint32_t cdw11)
{
	uint32_t tmpsel = (cdw11 >> 16) & 0xfu, thsel = (cdw11 >> 20) & 0x3u;
	if (tmpsel != 0 || thsel > 1)
		return NULL;
	return thsel == 0 ? &emu->feat_temp_over : &emu->feat_temp_under;
}

/* Base 2.0 §5.15: Get Features (SEL: current, default, saved = default, capabilities). */
static uint16_t exec_get_features(struct pnvme_emu *emu, struct emu_req *req)
{
	uint32_t fid = PNVME_GET(req->cmd.cdw10, PNVME_FEAT_FID);
	uint32_t sel = PNVME_GET(req->cmd.cdw10, PNVME_FEAT_SEL);
	uint32_t *slot = feature_slot(emu, fid);

	if (slot == NULL || sel > 3)
		return ST_INVALID_FIELD;
	if (fid == PNVME_FEAT_TEMP_THRESH) {
		slot = temp_slot(emu, req->cmd.cdw11);
		if (slot == NULL)
			return ST_INVALID_FIELD;
	}
	if (sel == 3) {
		req->dw0 = 1u << 2;                 /* changeable, not saveable */
	} else if (sel == 0) {
		req->dw0 = *slot;
	} else {
		/* default, and saved (nothing is saveable, so saved = default) */
		switch (fid) {
		case PNVME_FEAT_VOLATILE_WC: req->dw0 = 1; break;
		case PNVME_FEAT_NUM_QUEUES:
			req->dw0 = (emu->cfg.nr_io_queues - 1) | ((emu->cfg.nr_io_queues - 1) << 16);
			break;
		case PNVME_FEAT_TEMP_THRESH:
			req->dw0 = slot == &emu->feat_temp_over ? EMU_WCTEMP_K : 0;
			break;
		default: req->dw0 = 0; break;
		}
	}
	return 0;
}

/* Base 2.0 §5.27: Set Features. */
static uint16_t exec_set_features(struct pnvme_emu *emu, struct emu_req *req)
{
	uint32_t fid = PNVME_GET(req->cmd.cdw10, PNVME_FEAT_FID);
	uint32_t v = req->cmd.cdw11;
	uint32_t *slot = feature_slot(emu, fid);

	if (slot == NULL)
		return ST_INVALID_FIELD;
	if (req->cmd.cdw10 & PNVME_FEAT_SV)
		return ST_NOT_SAVEABLE;
	switch (fid) {
	case PNVME_FEAT_NUM_QUEUES: {
		/* Base 2.0 §5.27.1.5: only before any I/O queue exists */
		uint32_t nsq = PNVME_GET(v, PNVME_NUMQ_NSQ), ncq = PNVME_GET(v, PNVME_NUMQ_NCQ);
		uint32_t max = emu->cfg.nr_io_queues - 1;
		if (emu->io_queues_created)
			return ST_CMD_SEQ;
		if (nsq == 0xffff || ncq == 0xffff)
			return ST_INVALID_FIELD;
		emu->feat_nq = (nsq < max ? nsq : max) | ((ncq < max ? ncq : max) << 16);
		req->dw0 = emu->feat_nq;
		return 0;
	}
	case PNVME_FEAT_POWER_MGMT:
		if ((v & 0x1fu) > 0)                /* NPSS = 0: only power state 0 */
			return ST_INVALID_FIELD;
		*slot = v & 0xffu;
		return 0;
	case PNVME_FEAT_TEMP_THRESH:
		slot = temp_slot(emu, v);
		if (slot == NULL)
			return ST_INVALID_FIELD;
		*slot = v & 0xffffu;
		return 0;
	case PNVME_FEAT_ERR_RECOVERY:
		if (v & (1u << 16))                 /* DULBE: not supported (NSFEAT bit 2 = 0) */
			return ST_INVALID_FIELD;
		*slot = v & 0xffffu;
		return 0;
	case PNVME_FEAT_VOLATILE_WC:
		*slot = v & 1u;
		return 0;
	case PNVME_FEAT_ASYNC_EVENT:
		*slot = v;
		emu_aen_configured(emu);
		return 0;
	default:
		*slot = v;
		return 0;
	}
}

static bool qid_ok(const struct pnvme_emu *emu, uint32_t qid)
{
	return qid >= 1 && qid <= emu->cfg.nr_io_queues;
}

/* Base 2.0 §5.4: Create I/O Completion Queue */
static uint16_t exec_create_cq(struct pnvme_emu *emu, struct emu_req *req)
{
	const struct pnvme_sqe *c = &req->cmd;
	uint32_t qid = PNVME_GET(c->cdw10, PNVME_CREATE_Q_QID);
	uint32_t qsize = PNVME_GET(c->cdw10, PNVME_CREATE_Q_QSIZE) + 1u;
	uint32_t iv = PNVME_GET(c->cdw11, PNVME_CREATE_CQ_IV);
	struct emu_cq *cq;
	bool straddles;
	void *ring;

	if (!qid_ok(emu, qid) || emu->cqs[qid].valid)
		return ST_QID_INVALID;
	if (qsize < 2 || qsize > emu_mqes_now(emu) + 1u ||
	    PNVME_GET(emu->cc, PNVME_CC_IOCQES) != 4)
		return ST_QUEUE_SIZE;
	if (!(c->cdw11 & PNVME_CREATE_CQ_PC))        /* CAP.CQR = 1 */
		return ST_INVALID_FIELD;
	if ((c->cdw11 & PNVME_CREATE_CQ_IEN) && iv > emu->cfg.nr_io_queues)
		return ST_IV_INVALID;
	if (c->prp1 & PAGE_MASK_)
		return ST_INVALID_FIELD;
	emu_cmb_process(emu);           /* a CMBMSC written just before the command */
	if (emu_cmb_addr(emu, c->prp1, 1, &straddles) != NULL)
		return ST_CMB_INVALID;      /* CMBSZ.CQS = 0: no CQs in the CMB */
	ring = xlate(emu, c->prp1, (uint64_t)qsize * sizeof(struct pnvme_cqe));
	if (ring == NULL)
		return ST_INVALID_FIELD;

	cq = &emu->cqs[qid];
	emu_cq_destroy(cq);
	cq->ring = ring;
	cq->size = qsize;
	cq->phase = 1;
	cq->qid = (uint16_t)qid;
	cq->iova = c->prp1;
	cq->ien = (c->cdw11 & PNVME_CREATE_CQ_IEN) != 0;
	cq->iv = (uint16_t)iv;
	cq->valid = true;
	cq->db = cq_db_now(emu, qid);           /* head 0: the host's next write shows */
	emu_cq_shadow_attach(emu, cq, false);
	emu->io_queues_created = true;
	if (qid > emu->hi_qid)
		emu->hi_qid = qid;
	return 0;
}

/* Base 2.0 §5.5: Create I/O Submission Queue */
static uint16_t exec_create_sq(struct pnvme_emu *emu, struct emu_req *req)
{
	const struct pnvme_sqe *c = &req->cmd;
	uint32_t qid = PNVME_GET(c->cdw10, PNVME_CREATE_Q_QID);
	uint32_t qsize = PNVME_GET(c->cdw10, PNVME_CREATE_Q_QSIZE) + 1u;
	uint32_t cqid = PNVME_GET(c->cdw11, PNVME_CREATE_SQ_CQID);
	uint64_t bytes = (uint64_t)qsize * sizeof(struct pnvme_sqe);
	struct emu_sq *sq;
	uint8_t *cmb_ring;
	bool straddles;
	void *ring;

	if (!qid_ok(emu, qid) || emu->sqs[qid].valid)
		return ST_QID_INVALID;
	if (cqid == 0 || cqid > emu->cfg.nr_io_queues || !emu->cqs[cqid].valid)
		return ST_CQ_INVALID;
	if (qsize < 2 || qsize > emu_mqes_now(emu) + 1u ||
	    PNVME_GET(emu->cc, PNVME_CC_IOSQES) != 6)
		return ST_QUEUE_SIZE;
	if (!(c->cdw11 & PNVME_CREATE_SQ_PC))
		return ST_INVALID_FIELD;
	if (c->prp1 & PAGE_MASK_)
		return ST_INVALID_FIELD;
	/*
	 * PRP1 in the controller memory space (CMBMSC.CMSE, Base 2.0
	 * §3.1.4.13): the ring is CMB memory, whole (CMBLOC.CQPDS = 0: a
	 * queue is not split between the CMB and host memory).
	 */
	emu_cmb_process(emu);           /* a CMBMSC written just before the command */
	cmb_ring = emu_cmb_addr(emu, c->prp1, bytes, &straddles);
	if (straddles)
		return ST_CMB_INVALID;
	ring = cmb_ring != NULL ? cmb_ring : xlate(emu, c->prp1, bytes);
	if (ring == NULL)
		return ST_INVALID_FIELD;

	sq = &emu->sqs[qid];
	memset(sq, 0, sizeof(*sq));
	sq->in_cmb = cmb_ring != NULL;
	sq->ring = ring;
	sq->size = qsize;
	sq->qid = (uint16_t)qid;
	sq->cqid = (uint16_t)cqid;
	sq->iova = c->prp1;
	sq->valid = true;
	emu->cqs[cqid].nr_sqs++;
	sq->db = sq_db_now(emu, qid);           /* tail 0: the host's next write shows */
	emu_sq_shadow_attach(emu, sq, false);
	emu->io_queues_created = true;
	if (qid > emu->hi_qid)
		emu->hi_qid = qid;
	return 0;
}

static void aborts_drop_sq(struct pnvme_emu *emu, uint16_t sqid)
{
	for (uint32_t i = 0; i < emu->nr_aborts;) {
		if (emu->aborts[i].sqid == sqid)
			emu->aborts[i] = emu->aborts[--emu->nr_aborts];
		else
			i++;
	}
}

/* Base 2.0 §5.6: Delete I/O Submission Queue; held commands end with Aborted SQ Deleted. */
static uint16_t exec_delete_sq(struct pnvme_emu *emu, struct emu_req *req)
{
	uint32_t qid = PNVME_GET(req->cmd.cdw10, PNVME_CREATE_Q_QID);
	struct emu_sq *sq;

	if (!qid_ok(emu, qid) || !emu->sqs[qid].valid)
		return ST_QID_INVALID;
	sq = &emu->sqs[qid];
	for (uint32_t i = 0; i < emu->nr_delayed;) {
		struct emu_cpl c = emu->delayed[i].cpl;
		if (c.sqid != qid) {
			i++;
			continue;
		}
		emu_delayed_remove(emu, i);
		emu_cpl_now(emu, sq, c.cid, ST_ABORT_SQ_DEL);
	}
	aborts_drop_sq(emu, (uint16_t)qid);
	emu_sq_destroy(emu, sq);
	emu_hi_qid_update(emu);
	return 0;
}

/* Base 2.0 §5.7: Delete I/O Completion Queue */
static uint16_t exec_delete_cq(struct pnvme_emu *emu, struct emu_req *req)
{
	uint32_t qid = PNVME_GET(req->cmd.cdw10, PNVME_CREATE_Q_QID);

	if (!qid_ok(emu, qid) || !emu->cqs[qid].valid)
		return ST_QID_INVALID;
	if (emu->cqs[qid].nr_sqs != 0)
		return ST_QDEL_INVALID;
	emu_cq_destroy(&emu->cqs[qid]);
	emu_hi_qid_update(emu);
	return 0;
}

/*
 * Is command `cid` sitting in SQ `sq` between the head and the doorbell? The
 * ring is looked up in the IOVA table afresh, for its whole length: a queue
 * whose ring memory was unmapped has nothing the controller can see (and is
 * never read through a stale or NULL pointer).
 */
static bool sq_holds_unfetched(struct pnvme_emu *emu, struct emu_sq *sq, uint16_t cid)
{
	uint32_t db = sq_db_now(emu, sq->qid);
	/* A register value not taken yet is the newest tail (sq_tail_fetch()). */
	uint32_t tail = db != sq->db && !sq->sdb_used ? db : sq->tail;
	const struct pnvme_sqe *ring;

	if (sq->ring == NULL || sq->size == 0)
		return false;
	ring = sq->in_cmb ? sq->ring
			  : (const struct pnvme_sqe *)xlate(emu, sq->iova, (uint64_t)sq->size *
							    sizeof(struct pnvme_sqe));
	if (ring == NULL)
		return false;
	if (sq->sdb_p != NULL && (sq->sdb_used || shadow_load(sq->sdb_p) != sq->sdb))
		tail = shadow_load(sq->sdb_p);
	if (tail >= sq->size)
		tail = sq->tail;
	for (uint32_t i = sq->head; i != tail; i = i + 1 == sq->size ? 0 : i + 1)
		if (ring[i].cid == cid)
			return true;
	return false;
}

/* Base 2.0 §5.1: Abort. DW0 bit 0 = 0: the command was aborted. */
static uint16_t exec_abort(struct pnvme_emu *emu, struct emu_req *req)
{
	uint16_t sqid = (uint16_t)PNVME_GET(req->cmd.cdw10, PNVME_ABORT_SQID);
	uint16_t cid = (uint16_t)PNVME_GET(req->cmd.cdw10, PNVME_ABORT_CID);
	struct emu_sq *sq;

	req->dw0 = PNVME_ABORT_NOT_ABORTED;
	if (req->ignore_abort) {
		log_debug("emu: fault: ignoring Abort of sq %u cid %u", sqid, cid);
		return 0;
	}
	if (sqid > emu->cfg.nr_io_queues || !emu->sqs[sqid].valid)
		return 0;
	sq = &emu->sqs[sqid];
	/* a completion held back by a delay fault */
	for (uint32_t i = 0; i < emu->nr_delayed; i++) {
		if (emu->delayed[i].cpl.sqid == sqid && emu->delayed[i].cpl.cid == cid) {
			emu_delayed_remove(emu, i);
			emu_cpl_now(emu, sq, cid, ST_ABORT_REQ);
			req->dw0 = 0;
			return 0;
		}
	}
	/* an outstanding Asynchronous Event Request */
	if (sqid == 0) {
		for (uint32_t i = 0; i < emu->nr_aer; i++) {
			if (emu->aer_cid[i] == cid) {
				emu->aer_cid[i] = emu->aer_cid[--emu->nr_aer];
				emu_cpl_now(emu, sq, cid, ST_ABORT_REQ);
				req->dw0 = 0;
				return 0;
			}
		}
	}
	/* not fetched yet: remember it, complete it when it is fetched */
	if (emu->nr_aborts < EMU_MAX_ABORTS && sq_holds_unfetched(emu, sq, cid)) {
		emu->aborts[emu->nr_aborts].sqid = sqid;
		emu->aborts[emu->nr_aborts].cid = cid;
		emu->nr_aborts++;
		req->dw0 = 0;
	}
	return 0;
}

/* Base 2.0 §5.2: Asynchronous Event Request: held until an event (emu_aen.c). */
static uint16_t exec_aer(struct pnvme_emu *emu, struct emu_req *req)
{
	if (emu->nr_aer > EMU_AERL)
		return ST_AER_LIMIT;
	if (emu_aen_take(emu, &req->dw0))
		return 0;                /* an event was waiting */
	emu->aer_cid[emu->nr_aer++] = req->cmd.cid;
	req->hold = true;
	return 0;
}

static uint16_t exec_nop(struct pnvme_emu *emu, struct emu_req *req)
{
	(void)emu;
	(void)req;
	return 0;
}

/*
 * Base 2.0 §5.8: Doorbell Buffer Config. PRP1 is the Shadow Doorbell buffer,
 * PRP2 the EventIdx buffer, one memory page each, page aligned (else Invalid
 * Field in Command; the two may not be the same page either). An address
 * outside the IOVA table is a Data Transfer Error. Accepted whether or not I/O
 * queues exist, like QEMU's controller: existing I/O queues are attached at
 * once, their current tail/head written into the shadow entries. A second
 * config replaces the first. A controller reset forgets it.
 */
static uint16_t exec_dbbuf_config(struct pnvme_emu *emu, struct emu_req *req)
{
	uint64_t dbs = req->cmd.prp1, eis = req->cmd.prp2;
	uint32_t *d, *e;

	if ((dbs & PAGE_MASK_) || (eis & PAGE_MASK_) || dbs == eis)
		return ST_INVALID_FIELD;
	d = (uint32_t *)xlate(emu, dbs, PNVME_PAGE_SIZE);
	e = (uint32_t *)xlate(emu, eis, PNVME_PAGE_SIZE);
	if (d == NULL || e == NULL)
		return ST_XFER_ERROR;
	emu->dbbuf = d;
	emu->eventidx = e;
	emu->dbbuf_iova = dbs;
	emu->eventidx_iova = eis;
	emu->dbbuf_on = true;
	for (uint32_t q = 1; q <= emu->hi_qid; q++) {
		if (emu->cqs[q].valid)
			emu_cq_shadow_attach(emu, &emu->cqs[q], true);
		if (emu->sqs[q].valid)
			emu_sq_shadow_attach(emu, &emu->sqs[q], true);
	}
	log_debug("emu: shadow doorbells at %#llx, EventIdx at %#llx",
		  (unsigned long long)dbs, (unsigned long long)eis);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Format NVM and Sanitize                                                  */
/* ------------------------------------------------------------------------ */

/* (LBADS, MS) pairs the format list walks after the configured format. */
static const uint8_t fmt_walk[16][2] = {
	{ 9, 0 }, { 9, 8 }, { 9, 16 }, { 9, 64 }, { 12, 0 }, { 12, 8 }, { 12, 16 }, { 12, 64 },
	{ 10, 0 }, { 11, 0 }, { 9, 32 }, { 12, 32 }, { 10, 8 }, { 11, 8 }, { 10, 16 }, { 11, 16 },
};

void emu_formats_init(struct pnvme_emu *emu)
{
	uint32_t n = 1;

	memset(emu->lbaf, 0, sizeof(emu->lbaf));
	emu->lbaf[0] = PNVME_SET(PNVME_LBAF_LBADS, emu->lba_shift) |
		       PNVME_SET(PNVME_LBAF_MS, emu->ms);
	for (uint32_t rp = 0; rp < 4; rp++) {
		for (uint32_t i = 0; i < ARRAY_SIZE(fmt_walk) && n < emu->cfg.lbafs; i++) {
			if (rp == 0 && fmt_walk[i][0] == emu->lba_shift && fmt_walk[i][1] == emu->ms)
				continue;
			emu->lbaf[n++] = PNVME_SET(PNVME_LBAF_LBADS, fmt_walk[i][0]) |
					 PNVME_SET(PNVME_LBAF_MS, fmt_walk[i][1]) |
					 PNVME_SET(PNVME_LBAF_RP, rp);
		}
	}
	emu->nlbaf = n - 1;
	emu->fmt_idx = 0;
}

/* Base 2.0 §5.23, NVM 1.0 §4.1: Format NVM (every namespace: FNA bit 0). */
static uint16_t exec_format(struct pnvme_emu *emu, struct emu_req *req)
{
	uint32_t cdw10 = req->cmd.cdw10, nsid = req->cmd.nsid;
	uint32_t idx = PNVME_GET(cdw10, PNVME_FORMAT_LBAFL) |
		       PNVME_GET(cdw10, PNVME_FORMAT_LBAFU) << 4;
	uint32_t pi = PNVME_GET(cdw10, PNVME_FORMAT_PI);
	uint32_t ses = PNVME_GET(cdw10, PNVME_FORMAT_SES);

	if (emu->san_busy)
		return ST_SANITIZING;
	if (nsid != PNVME_NSID_ALL && (nsid == 0 || nsid > emu->cfg.nr_ns))
		return ST_INVALID_NS;
	if (ses > PNVME_SES_CRYPTO)
		return ST_INVALID_FIELD;
	if (idx > emu->nlbaf || pi > 3 ||
	    (pi != 0 && PNVME_GET(emu->lbaf[idx], PNVME_LBAF_MS) < EMU_PI_SIZE))
		return ST_INVALID_FORMAT;
	return emu_media_format(emu, idx, (cdw10 & PNVME_FORMAT_MSET) != 0, pi,
				(cdw10 & PNVME_FORMAT_PIL) != 0, ses);
}

static void sanitize_finish(struct pnvme_emu *emu)
{
	uint32_t sanact = PNVME_GET(emu->san_cdw10, PNVME_SANITIZE_SANACT);
	uint32_t passes = PNVME_GET(emu->san_cdw10, PNVME_SANITIZE_OWPASS);

	emu_media_sanitize(emu, emu->san_cdw10, emu->san_ovrpat);
	emu->san_busy = false;
	emu->san_sprog = 0xffffu;
	emu->san_sstat = PNVME_SET(PNVME_SSTAT_STATUS, PNVME_SSTAT_COMPLETED);
	if (sanact == PNVME_SANACT_OVERWRITE)
		emu->san_sstat |= PNVME_SET(PNVME_SSTAT_OPC, passes ? passes : 16u);
	log_debug("emu: sanitize (action %u) completed", sanact);
}

/* One admin command went by while a sanitize runs: it advances one step. */
static void sanitize_step(struct pnvme_emu *emu)
{
	uint32_t total = emu->cfg.sansteps;

	if (--emu->san_left == 0) {
		sanitize_finish(emu);
		return;
	}
	emu->san_sprog = (uint16_t)((uint64_t)(total - emu->san_left) * 65536u / total);
}

/* Base 2.0 §5.24: Sanitize. Runs in the background for cfg.sansteps admin commands. */
static uint16_t exec_sanitize(struct pnvme_emu *emu, struct emu_req *req)
{
	uint32_t sanact = PNVME_GET(req->cmd.cdw10, PNVME_SANITIZE_SANACT);
	uint32_t need;

	switch (sanact) {
	case PNVME_SANACT_EXIT_FAILURE: need = 7u; break;
	case PNVME_SANACT_BLOCK_ERASE:  need = PNVME_SANICAP_BES; break;
	case PNVME_SANACT_OVERWRITE:    need = PNVME_SANICAP_OWS; break;
	case PNVME_SANACT_CRYPTO_ERASE: need = PNVME_SANICAP_CES; break;
	default:                        return ST_INVALID_FIELD;
	}
	if (!(emu->cfg.sanicap & need))
		return ST_INVALID_FIELD;
	if (sanact == PNVME_SANACT_EXIT_FAILURE)
		return 0;                       /* never in failure mode: nothing to exit */
	if (emu->san_busy)
		return ST_SANITIZING;
	emu->san_cdw10 = req->cmd.cdw10;
	emu->san_ovrpat = req->cmd.cdw11;
	emu->san_left = emu->cfg.sansteps;
	if (emu->san_left == 0) {
		sanitize_finish(emu);
		return 0;
	}
	emu->san_busy = true;
	emu->san_sprog = 0;
	emu->san_sstat = PNVME_SET(PNVME_SSTAT_STATUS, PNVME_SSTAT_IN_PROGRESS);
	return 0;
}

/* Parse an admin command: validate fields, pick the execute function. */
uint16_t emu_parse_admin(struct pnvme_emu *emu, struct emu_req *req)
{
	const struct pnvme_sqe *c = &req->cmd;

	if (unlikely(emu->san_busy))
		sanitize_step(emu);
	switch (c->opc) {
	case PNVME_ADM_IDENTIFY:
		if (PNVME_IDENTIFY_DATA_SIZE > emu->max_xfer)
			return ST_INVALID_FIELD;
		req->execute = exec_identify;
		return 0;
	case PNVME_ADM_GET_LOG_PAGE: {
		uint64_t numd = ((uint64_t)PNVME_GET(c->cdw11, PNVME_GLP_NUMDU) << 16 |
				 PNVME_GET(c->cdw10, PNVME_GLP_NUMDL)) + 1u;
		if (numd * 4u > emu->max_xfer)
			return ST_INVALID_FIELD;
		req->execute = exec_get_log_page;
		return 0;
	}
	case PNVME_ADM_GET_FEATURES:
		req->execute = exec_get_features;
		return 0;
	case PNVME_ADM_SET_FEATURES:
		req->execute = exec_set_features;
		return 0;
	case PNVME_ADM_CREATE_CQ:
		req->execute = exec_create_cq;
		return 0;
	case PNVME_ADM_CREATE_SQ:
		req->execute = exec_create_sq;
		return 0;
	case PNVME_ADM_DELETE_SQ:
		req->execute = exec_delete_sq;
		return 0;
	case PNVME_ADM_DELETE_CQ:
		req->execute = exec_delete_cq;
		return 0;
	case PNVME_ADM_ABORT:
		req->execute = exec_abort;
		return 0;
	case PNVME_ADM_ASYNC_EVENT:
		req->execute = exec_aer;
		return 0;
	case PNVME_ADM_KEEP_ALIVE:
		req->execute = exec_nop;
		return 0;
	case PNVME_ADM_FORMAT_NVM:
		if (!emu->cfg.format)
			return ST_INVALID_OPC;
		req->execute = exec_format;
		return 0;
	case PNVME_ADM_SANITIZE:
		if (emu->cfg.sanicap == 0)
			return ST_INVALID_OPC;
		req->execute = exec_sanitize;
		return 0;
	case PNVME_ADM_DBBUF_CONFIG:
		if (!emu->cfg.dbbuf)
			return ST_INVALID_OPC;
		req->execute = exec_dbbuf_config;
		return 0;
	default:
		return ST_INVALID_OPC;
	}
}

/*
 * Internal, for tests and fuzzers (not in the public header: declare it where
 * used): answer Identify CNS `cns` (0 Namespace - every valid NSID -, 1
 * Controller, 2 Active Namespace ID list - every start NSID -) with these 4096
 * bytes instead of our own data, whatever faults are armed. `data` NULL goes
 * back to our own. Returns 0, -EINVAL (other CNS), -ENOMEM. Any thread.
 */
int pnvme_emu_identify_override(struct pnvme_emu *emu, uint32_t cns, const void *data);
int pnvme_emu_identify_override(struct pnvme_emu *emu, uint32_t cns, const void *data)
{
	uint8_t *copy = NULL;

	if (emu == NULL || cns >= ARRAY_SIZE(emu->id_override))
		return -EINVAL;
	if (data != NULL) {
		copy = malloc(PNVME_IDENTIFY_DATA_SIZE);
		if (copy == NULL)
			return -ENOMEM;
		memcpy(copy, data, PNVME_IDENTIFY_DATA_SIZE);
	}
	emu_lock(emu);
	free(emu->id_override[cns]);
	emu->id_override[cns] = copy;
	emu_unlock(emu);
	return 0;
}
