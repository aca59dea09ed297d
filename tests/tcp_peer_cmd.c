/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tcp_peer_cmd.c - the controllers and commands of the fake NVMe/TCP target
 * (tcp_peer.h): check a capsule and its SGL, move data with R2T/H2CData
 * and C2HData, execute fabrics, admin and NVM commands, answer.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <pnvme/spec.h>
#include <pnvme/tcp_spec.h>

#include "tcp/pdu.h"
#include "tcp_peer_priv.h"

/* ------------------------------------------------------------------------ */
/* Controllers                                                               */
/* ------------------------------------------------------------------------ */

/* The live controller `cntlid` (peer lock held), or NULL. */
struct ctrl *tp_ctrl_find(struct tcp_peer *p, int cntlid)
{
	for (unsigned i = 0; i < PEER_MAX_CTRLS; i++)
		if (p->ctrls[i].live && p->ctrls[i].cntlid == cntlid)
			return &p->ctrls[i];
	return NULL;
}

/*
 * The controller is gone (its admin queue closed, or KATO passed): wake
 * every connection of it so they close too, as nvmet tears down all queues
 * of a controller (peer lock held).
 */
void tp_ctrl_destroy(struct tcp_peer *p, struct ctrl *ctrl, const struct conn *self)
{
	for (struct conn *o = p->conns; o; o = o->next)
		if (o != self && !o->done && o->cntlid == ctrl->cntlid && o->fd >= 0)
			shutdown(o->fd, SHUT_RD); /* wakes the owner, who closes it */
	ctrl->live = false;
}

static uint64_t cap_value(const struct tcp_peer *p)
{
	/* Base 2.0 §3.1.4.1; fabrics: CQR 1, TO 15 (7.5 s), CSS NVM, MPSMIN/MPSMAX 0 (4 KiB). */
	return PNVME_SET(PNVME_CAP_MQES, (uint64_t)p->queue_size - 1u) |
	       PNVME_SET(PNVME_CAP_CQR, 1ull) | PNVME_SET(PNVME_CAP_TO, 15ull) |
	       PNVME_SET(PNVME_CAP_CSS, (uint64_t)PNVME_CAP_CSS_NVM);
}

/* Property Set CC (Base 2.0 §3.1.4.5, §3.6): EN -> RDY, SHN -> SHST complete (peer lock held). */
static void ctrl_write_cc(struct tcp_peer *p, struct ctrl *ctrl, uint32_t cc)
{
	uint32_t old = ctrl->cc;

	ctrl->cc = cc;
	p->st.last_cc = cc;
	if (PNVME_GET(cc, PNVME_CC_EN) && !PNVME_GET(old, PNVME_CC_EN)) {
		/* As nvmet: an I/O controller needs 64/16-byte entries, 4 KiB pages, RR. */
		if (!ctrl->disc && (PNVME_GET(cc, PNVME_CC_IOSQES) != 6 ||
				    PNVME_GET(cc, PNVME_CC_IOCQES) != 4 ||
				    PNVME_GET(cc, PNVME_CC_MPS) != 0 || PNVME_GET(cc, PNVME_CC_AMS) != 0))
			ctrl->csts |= PNVME_SET(PNVME_CSTS_CFS, 1u);
		else
			ctrl->csts |= PNVME_SET(PNVME_CSTS_RDY, 1u);
	} else if (!PNVME_GET(cc, PNVME_CC_EN) && PNVME_GET(old, PNVME_CC_EN)) {
		ctrl->csts &= ~(PNVME_SET(PNVME_CSTS_RDY, 1u) | PNVME_SET(PNVME_CSTS_CFS, 1u));
	}
	ctrl->csts &= ~PNVME_SET(PNVME_CSTS_SHST, PNVME_CSTS_SHST_MASK);
	if (PNVME_GET(cc, PNVME_CC_SHN)) {
		ctrl->csts |= PNVME_SET(PNVME_CSTS_SHST, PNVME_CSTS_SHST_COMPLETE);
		p->st.shutdown = true;
	}
}

/* ------------------------------------------------------------------------ */
/* Commands                                                                  */
/* ------------------------------------------------------------------------ */

/* What a command did: status, DW0/DW1, and data for the host. */
struct result {
	uint16_t status;
	uint32_t dw0, dw1;
	uint32_t xfer;           /* bytes of buf to send as C2HData */
	bool     no_resp;        /* held (AER) or the connection is closing */
};

static void set_str(char *dst, size_t n, const char *src)
{
	size_t l = strlen(src);

	memset(dst, ' ', n);
	memcpy(dst, src, l < n ? l : n);
}

static void put32(uint8_t *b, uint32_t off, uint32_t v)
{
	memcpy(b + off, &v, sizeof(v));
}

/* Connect (Base 2.0 §6.3); data is the 1024-byte Connect data. */
static void exec_connect(struct conn *c, const struct pnvme_sqe *sqe, const uint8_t *data,
			 uint32_t len, struct result *r)
{
	struct tcp_peer *p = c->peer;
	const struct pnvme_fabrics_connect *cmd = (const void *)sqe;
	struct pnvme_fabrics_connect_data d;
	struct ctrl *ctrl = NULL;
	uint32_t arg = 0;
	bool disc;

	peer_lock(p);
	p->st.connects++;
	peer_unlock(p);
	if (c->qid >= 0) {
		r->status = GEN(PNVME_SC_CMD_SEQ_ERROR);
		return;
	}
	if (len < sizeof(d)) {
		r->status = GEN(PNVME_SC_SGL_INVALID_DATA);
		return;
	}
	memcpy(&d, data, sizeof(d));
	d.subnqn[PNVME_NQN_LEN - 1] = 0;
	d.hostnqn[PNVME_NQN_LEN - 1] = 0;
	if (tp_fault_take_qid(p, TCP_PEER_FAULT_CONNECT_STATUS, cmd->qid, &arg)) {
		r->status = SC_DNR(PNVME_SCT_CMD, arg & 0xffu);
		if ((arg & 0xffu) == PNVME_SC_CONNECT_INVALID_PARAM)
			r->dw0 = IPO_DATA(subnqn);
		return;
	}
	if (cmd->recfmt != 0) {
		r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_INCOMPATIBLE_FORMAT);
		return;
	}
	disc = !strcmp(d.subnqn, PNVME_DISCOVERY_NQN);
	if (!disc && strcmp(d.subnqn, p->subnqn)) {
		r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM);
		r->dw0 = IPO_DATA(subnqn);
		return;
	}
	if (!disc && p->hostnqn[0] && strcmp(d.hostnqn, p->hostnqn)) {
		r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_HOST);
		return;
	}
	if (cmd->sqsize == 0 || cmd->sqsize >= p->queue_size) {
		r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM);
		r->dw0 = IPO_SQE(sqsize);
		return;
	}

	peer_lock(p);
	if (cmd->qid == 0) {
		/* Admin queue: a new controller, dynamic model only (Base 2.0 §3.3.2.1). */
		if (d.cntlid != PNVME_CONNECT_CNTLID_DYNAMIC) {
			r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM);
			r->dw0 = IPO_DATA(cntlid);
			goto out;
		}
		for (unsigned i = 0; i < PEER_MAX_CTRLS && !ctrl; i++)
			if (!p->ctrls[i].live)
				ctrl = &p->ctrls[i];
		if (!ctrl) {
			r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_CTRL_BUSY);
			goto out;
		}
		memset(ctrl, 0, sizeof(*ctrl));
		ctrl->live = true;
		ctrl->disc = disc;
		ctrl->cntlid = p->next_cntlid;
		p->next_cntlid = (uint16_t)(p->next_cntlid >= 0xffef ? p->cfg.cntlid_start
							      : p->next_cntlid + 1);
		ctrl->kato = cmd->kato;
		ctrl->ka_deadline = now_ms() + cmd->kato;
		ctrl->nr_io = disc ? 0 : p->max_queues;
		snprintf(ctrl->hostnqn, sizeof(ctrl->hostnqn), "%s", d.hostnqn);
	} else {
		ctrl = tp_ctrl_find(p, d.cntlid);
		if (!ctrl || ctrl->disc != disc || strcmp(ctrl->hostnqn, d.hostnqn)) {
			r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM);
			r->dw0 = IPO_DATA(cntlid);
			ctrl = NULL;
			goto out;
		}
		if (cmd->qid > ctrl->nr_io) {
			r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM);
			r->dw0 = IPO_SQE(qid);
			ctrl = NULL;
			goto out;
		}
		if (ctrl->qconn[cmd->qid / 8] & (1u << (cmd->qid % 8))) {
			/* As nvmet: the queue exists already. */
			r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_CTRL_BUSY);
			ctrl = NULL;
			goto out;
		}
		ctrl->qconn[cmd->qid / 8] |= (uint8_t)(1u << (cmd->qid % 8));
	}
	c->qid = cmd->qid;
	c->cntlid = ctrl->cntlid;
	c->sqsize = cmd->sqsize;
	c->sqflow_off = cmd->cattr & PEER_CONNECT_CATTR_NO_SQFLOW;
	r->dw0 = ctrl->cntlid;
	p->st.connects_ok++;
out:
	peer_unlock(p);
}

/* Property Get / Set (Base 2.0 §6.5, §6.6) of CAP, VS, CC, CSTS. */
static void exec_property(struct conn *c, const struct pnvme_sqe *sqe, struct result *r)
{
	struct tcp_peer *p = c->peer;
	const struct pnvme_fabrics_prop_get *g = (const void *)sqe;
	const struct pnvme_fabrics_prop_set *s = (const void *)sqe;
	bool set = g->fctype == PNVME_FCTYPE_PROPERTY_SET;
	unsigned size = (g->attrib & 7u) == PNVME_PROP_SIZE_8 ? 8 : 4;
	struct ctrl *ctrl;
	uint64_t v = 0;

	if (c->qid != 0) {
		r->status = GEN(PNVME_SC_INVALID_OPCODE);
		return;
	}
	peer_lock(p);
	ctrl = tp_ctrl_find(p, c->cntlid);
	if (!ctrl) {
		r->status = GEN(PNVME_SC_CMD_SEQ_ERROR);
	} else if (set) {
		if (s->ofst == PNVME_REG_CC && size == 4)
			ctrl_write_cc(p, ctrl, (uint32_t)s->value);
		else
			r->status = GEN(PNVME_SC_INVALID_FIELD);
	} else {
		switch (g->ofst) {
		case PNVME_REG_CAP:  v = cap_value(p); break;
		case PNVME_REG_VS:   v = PNVME_VS(2, 0, 0); break;
		case PNVME_REG_CC:   v = ctrl->cc; break;
		case PNVME_REG_CSTS: v = ctrl->csts; break;
		default:             r->status = GEN(PNVME_SC_INVALID_FIELD); break;
		}
		if (size == 8 && g->ofst != PNVME_REG_CAP)
			r->status = GEN(PNVME_SC_INVALID_FIELD);
		r->dw0 = (uint32_t)v;
		r->dw1 = size == 8 ? (uint32_t)(v >> 32) : 0;
	}
	peer_unlock(p);
}

static void identify_ctrl(struct tcp_peer *p, const struct ctrl *ctrl, uint8_t *buf)
{
	struct pnvme_id_ctrl *id = (void *)buf;
	char sn[24];

	snprintf(sn, sizeof(sn), "peer-%u", ctrl->cntlid);
	set_str(id->sn, sizeof(id->sn), sn);
	set_str(id->mn, sizeof(id->mn), "pnvme tcp_peer");
	set_str(id->fr, sizeof(id->fr), "1.0");
	id->mdts = p->cfg.mdts;
	id->cntlid = ctrl->cntlid;
	id->ver = PNVME_VS(2, 0, 0);
	id->cntrltype = ctrl->disc ? 2 : 1;      /* 1: I/O controller, 2: discovery */
	id->acl = 3;
	id->aerl = 3;
	id->lpa = 1u << 2;                       /* extended data for Get Log Page */
	id->kas = 10;                            /* 100 ms units: 1 s granularity */
	id->sqes = 0x66;
	id->cqes = 0x44;
	id->maxcmd = p->queue_size;
	id->nn = ctrl->disc ? 0 : 1;
	id->oncs = PNVME_ONCS_WRITE_ZEROES;
	id->vwc = 1;
	id->sgls = PEER_SGLS;
	snprintf(id->subnqn, sizeof(id->subnqn), "%s",
		 ctrl->disc ? PNVME_DISCOVERY_NQN : p->subnqn);
	/* Fabrics fields: capsule sizes in 16-byte units, data at capsule offset 0. */
	put32(buf, ID_IOCCSZ, p->ioccsz / 16u);
	put32(buf, ID_IORCSZ, 1);
	buf[ID_ICDOFF] = 0;
	buf[ID_ICDOFF + 1] = 0;
	buf[ID_FCATT] = 0;                       /* dynamic controller model */
	buf[ID_MSDBD] = 1;
}

/* Identify (Base 2.0 §5.17) */
static void exec_identify(struct conn *c, const struct ctrl *ctrl, const struct pnvme_sqe *sqe,
			  uint8_t *buf, uint32_t len, struct result *r)
{
	struct tcp_peer *p = c->peer;
	uint8_t cns = (uint8_t)(sqe->cdw10 & 0xffu);

	if (len < PNVME_IDENTIFY_DATA_SIZE) {
		r->status = GEN(PNVME_SC_SGL_INVALID_DATA);
		return;
	}
	r->xfer = PNVME_IDENTIFY_DATA_SIZE;
	switch (cns) {
	case PNVME_ID_CNS_CTRL:
		identify_ctrl(p, ctrl, buf);
		break;
	case PNVME_ID_CNS_NS: {
		struct pnvme_id_ns *ns = (void *)buf;
		unsigned lbads = p->lba_size == 4096 ? 12 : 9;

		if (ctrl->disc || sqe->nsid != 1) {
			r->status = GEN(PNVME_SC_INVALID_NS);
			r->xfer = 0;
			break;
		}
		ns->nsze = ns->ncap = ns->nuse = p->cfg.nblocks;
		ns->lbaf[0] = PNVME_SET(PNVME_LBAF_LBADS, lbads);
		break;
	}
	case PNVME_ID_CNS_NS_ACTIVE:
		if (!ctrl->disc && sqe->nsid < 1)
			put32(buf, 0, 1);
		break;
	case PNVME_ID_CNS_NS_DESC_LIST:
		if (ctrl->disc || sqe->nsid != 1) {
			r->status = GEN(PNVME_SC_INVALID_NS);
			r->xfer = 0;
			break;
		}
		/* NGUID descriptor (NIDT 2, NIDL 16), then CSI (NIDT 4, NIDL 1): NVM. */
		buf[0] = 2;
		buf[1] = 16;
		memcpy(buf + 4, "pnvme-tcp-peer-1", 16);
		buf[20] = 4;
		buf[21] = 1;
		buf[24] = 0;
		break;
	default:
		r->status = GEN(PNVME_SC_INVALID_FIELD);
		r->xfer = 0;
		break;
	}
}

/* Get Log Page (Base 2.0 §5.16); the Discovery Log Page on a discovery controller. */
static void exec_get_log(struct conn *c, const struct ctrl *ctrl, const struct pnvme_sqe *sqe,
			 uint8_t *buf, uint32_t len, struct result *r)
{
	struct tcp_peer *p = c->peer;
	uint8_t lid = (uint8_t)PNVME_GET(sqe->cdw10, PNVME_GLP_LID);
	uint64_t numd = ((uint64_t)PNVME_GET(sqe->cdw11, PNVME_GLP_NUMDU) << 16 |
			 PNVME_GET(sqe->cdw10, PNVME_GLP_NUMDL)) + 1;
	uint64_t lpo = sqe->cdw12 | (uint64_t)sqe->cdw13 << 32;
	uint64_t want = numd * 4;
	uint8_t *page;
	size_t plen;

	if (want > len) {
		r->status = GEN(PNVME_SC_SGL_INVALID_DATA);
		return;
	}
	if (ctrl->disc && lid == TCP_PEER_LOG_DISCOVERY) {
		/* Header (1024 bytes: GENCTR, NUMREC, RECFMT) then 1024-byte entries. */
		plen = 1024u * (1u + p->cfg.n_disc);
		page = calloc(1, plen);
		if (!page) {
			r->status = GEN(PNVME_SC_INTERNAL);
			return;
		}
		memcpy(page, &p->cfg.genctr, 8);
		memcpy(page + 8, &(uint64_t){ p->cfg.n_disc }, 8);
		for (unsigned i = 0; i < p->cfg.n_disc; i++) {
			uint8_t *e = page + 1024u * (i + 1);
			const struct disc_entry *de = &p->disc[i];

			e[0] = de->e.trtype;
			e[1] = de->e.adrfam;
			e[2] = de->e.subtype;
			e[3] = de->e.treq;
			memcpy(e + 4, &de->e.portid, 2);
			memcpy(e + 6, &de->e.cntlid, 2);
			memcpy(e + 8, &de->e.asqsz, 2);
			memcpy(e + 32, de->trsvcid, strlen(de->trsvcid));
			memcpy(e + 256, de->subnqn, strlen(de->subnqn));
			memcpy(e + 512, de->traddr, strlen(de->traddr));
		}
	} else if (!ctrl->disc && (lid == PNVME_LOG_ERROR || lid == PNVME_LOG_SMART ||
				   lid == PNVME_LOG_FW_SLOT || lid == PNVME_LOG_CMD_EFFECTS)) {
		plen = 4096;
		page = calloc(1, plen);
		if (!page) {
			r->status = GEN(PNVME_SC_INTERNAL);
			return;
		}
	} else {
		r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_LOG_PAGE_INVALID);
		return;
	}
	if (lpo < plen)
		memcpy(buf, page + lpo, plen - lpo < want ? plen - lpo : want);
	free(page);
	r->xfer = (uint32_t)want;
}

/* Set / Get Features (Base 2.0 §5.27, §5.15): Number of Queues, KATO, volatile WC. */
static void exec_features(struct conn *c, struct ctrl *ctrl, const struct pnvme_sqe *sqe,
			  struct result *r)
{
	struct tcp_peer *p = c->peer;
	bool set = sqe->opc == PNVME_ADM_SET_FEATURES;
	uint8_t fid = (uint8_t)PNVME_GET(sqe->cdw10, PNVME_FEAT_FID);

	switch (fid) {
	case PNVME_FEAT_NUM_QUEUES:
		if (ctrl->disc) {
			r->status = GEN(PNVME_SC_INVALID_FIELD);
			break;
		}
		if (set) {
			uint32_t nsq = PNVME_GET(sqe->cdw11, PNVME_NUMQ_NSQ);
			uint32_t ncq = PNVME_GET(sqe->cdw11, PNVME_NUMQ_NCQ);
			uint32_t n = (nsq < ncq ? nsq : ncq) + 1u;

			if (nsq == 0xffff || ncq == 0xffff) {
				r->status = GEN(PNVME_SC_INVALID_FIELD);
				break;
			}
			ctrl->nr_io = (uint16_t)(n < p->max_queues ? n : p->max_queues);
		}
		/* Granted counts, 0's based; Set reports the controller's maximum (as nvmet). */
		r->dw0 = (uint32_t)(p->max_queues - 1u) * 0x10001u;
		break;
	case PNVME_FEAT_KATO:
		if (set) {
			ctrl->kato = sqe->cdw11;
			ctrl->ka_deadline = now_ms() + ctrl->kato;
		}
		r->dw0 = ctrl->kato;
		break;
	case PNVME_FEAT_VOLATILE_WC:
		if (set)
			r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_FEATURE_NOT_CHANGEABLE);
		r->dw0 = 1;
		break;
	case PNVME_FEAT_ASYNC_EVENT:
		break;
	default:
		r->status = GEN(PNVME_SC_INVALID_FIELD);
		break;
	}
}

/* Admin commands other than fabrics ones (Base 2.0 §5). */
static void exec_admin(struct conn *c, const struct pnvme_sqe *sqe, uint8_t *buf, uint32_t len,
		       struct result *r)
{
	struct tcp_peer *p = c->peer;
	struct ctrl *ctrl;

	peer_lock(p);
	p->st.admin_cmds[sqe->opc]++;
	ctrl = tp_ctrl_find(p, c->cntlid);
	if (!ctrl || !PNVME_GET(ctrl->cc, PNVME_CC_EN) || !PNVME_GET(ctrl->csts, PNVME_CSTS_RDY)) {
		/* As nvmet_check_ctrl_status(): admin commands need CC.EN and CSTS.RDY. */
		r->status = GEN(PNVME_SC_CMD_SEQ_ERROR);
		goto out;
	}
	switch (sqe->opc) {
	case PNVME_ADM_IDENTIFY:
		exec_identify(c, ctrl, sqe, buf, len, r);
		break;
	case PNVME_ADM_GET_LOG_PAGE:
		exec_get_log(c, ctrl, sqe, buf, len, r);
		break;
	case PNVME_ADM_SET_FEATURES:
	case PNVME_ADM_GET_FEATURES:
		exec_features(c, ctrl, sqe, r);
		break;
	case PNVME_ADM_KEEP_ALIVE:
		/* Base 2.0 §5.25, §3.9: restart the Keep Alive timer. */
		p->st.keep_alives++;
		ctrl->ka_deadline = now_ms() + ctrl->kato;
		break;
	case PNVME_ADM_ABORT:
		/* Base 2.0 §5.1: DW0 bit 0 set: the command was not aborted. */
		r->dw0 = PNVME_ABORT_NOT_ABORTED;
		break;
	case PNVME_ADM_ASYNC_EVENT:
		/* Held until the controller goes away: no events happen here. */
		r->no_resp = true;
		break;
	default:
		r->status = GEN(PNVME_SC_INVALID_OPCODE);
		break;
	}
out:
	peer_unlock(p);
}

/* NVM command set I/O (NVM 1.0 §3.2): Read, Write, Flush, Write Zeroes on NSID 1. */
static void exec_io(struct conn *c, const struct pnvme_sqe *sqe, uint8_t *buf, uint32_t len,
		    struct result *r)
{
	struct tcp_peer *p = c->peer;
	uint64_t slba = sqe->cdw10 | (uint64_t)sqe->cdw11 << 32;
	uint64_t nlb = PNVME_GET(sqe->cdw12, PNVME_RW_NLB) + 1u;
	uint64_t off = slba * p->lba_size, bytes = nlb * p->lba_size;
	struct ctrl *ctrl;

	peer_lock(p);
	p->st.io_cmds[sqe->opc]++;
	p->st.io_per_qid[c->qid > (int)TCP_PEER_MAX_QID ? TCP_PEER_MAX_QID : (unsigned)c->qid]++;
	ctrl = tp_ctrl_find(p, c->cntlid);
	if (!ctrl || !PNVME_GET(ctrl->csts, PNVME_CSTS_RDY)) {
		r->status = GEN(PNVME_SC_CMD_SEQ_ERROR);
		goto out;
	}
	if (sqe->opc != PNVME_NVM_FLUSH || sqe->nsid != 0xffffffffu) {
		if (sqe->nsid != 1) {
			r->status = GEN(PNVME_SC_INVALID_NS);
			goto out;
		}
	}
	switch (sqe->opc) {
	case PNVME_NVM_FLUSH:
		break;
	case PNVME_NVM_READ:
	case PNVME_NVM_WRITE:
	case PNVME_NVM_WRITE_ZEROES:
		if (slba >= p->cfg.nblocks || nlb > p->cfg.nblocks - slba) {
			r->status = GEN(PNVME_SC_LBA_RANGE);
			break;
		}
		if (sqe->opc == PNVME_NVM_WRITE_ZEROES) {
			memset(p->ns + off, 0, bytes);
			p->st.blocks_written += nlb;
			break;
		}
		if (len != bytes) {
			/* The SGL must describe exactly the blocks (nvmet_check_transfer_len). */
			r->status = GEN(PNVME_SC_SGL_INVALID_DATA);
			break;
		}
		if (sqe->opc == PNVME_NVM_WRITE) {
			memcpy(p->ns + off, buf, bytes);
			p->st.blocks_written += nlb;
		} else {
			memcpy(buf, p->ns + off, bytes);
			p->st.blocks_read += nlb;
			r->xfer = (uint32_t)bytes;
		}
		break;
	default:
		r->status = GEN(PNVME_SC_INVALID_OPCODE);
		break;
	}
out:
	peer_unlock(p);
}

/* Data direction of a command: Base 2.0 §5 opcode bits 1:0 (fabrics: FCTYPE bits 1:0). */
static unsigned cmd_dir(const struct pnvme_sqe *sqe)
{
	const struct pnvme_fabrics_connect *f = (const void *)sqe;

	return (sqe->opc == PNVME_OPC_FABRICS ? f->fctype : sqe->opc) & 3u;
}
#define DIR_H2C 1u
#define DIR_C2H 2u

/* Execute a command whose host data (if any) is at buf, then answer it. */
int tp_cmd_execute(struct conn *c, const struct pnvme_sqe *sqe, uint8_t *buf, uint32_t len,
		       uint16_t status)
{
	struct tcp_peer *p = c->peer;
	struct result r = { .status = status };
	uint32_t arg = 0;
	bool done = false;
	int ret;

	if (tp_fault_take(c, TCP_PEER_FAULT_SWALLOW, NULL))
		return 0;
	if (tp_fault_take(c, TCP_PEER_FAULT_TERM_REQ, &arg)) {
		struct pnvme_tcp_tx_pdu pdu;

		pnvme_tcp_build_term_req(&pdu, false, (uint16_t)(arg ? arg : 1), 0, sqe,
					 sizeof(*sqe));
		(void)tp_send_pdu(c, &pdu);
		c->close_how = CLOSE_FIN;
		return -ECONNABORTED;
	}

	if (!r.status) {
		if (sqe->opc == PNVME_OPC_FABRICS) {
			const struct pnvme_fabrics_connect *f = (const void *)sqe;

			peer_lock(p);
			p->st.fabrics_cmds[f->fctype & 0xfu]++;
			peer_unlock(p);
			if (f->fctype == PNVME_FCTYPE_CONNECT)
				exec_connect(c, sqe, buf, len, &r);
			else if (c->qid < 0)
				r.status = GEN(PNVME_SC_INVALID_OPCODE);
			else if (f->fctype == PNVME_FCTYPE_PROPERTY_GET ||
				 f->fctype == PNVME_FCTYPE_PROPERTY_SET)
				exec_property(c, sqe, &r);
			else
				r.status = GEN(PNVME_SC_INVALID_OPCODE);
		} else if (c->qid < 0) {
			/* nvmet_parse_connect_cmd(): nothing but Connect before Connect. */
			r.status = GEN(PNVME_SC_INVALID_OPCODE);
		} else if (c->qid == 0) {
			exec_admin(c, sqe, buf, len, &r);
		} else {
			exec_io(c, sqe, buf, len, &r);
		}
	}
	if (r.no_resp)
		return 0;
	if (!r.status && r.xfer) {
		ret = tp_send_c2h(c, sqe->cid, buf, r.xfer < len ? r.xfer : len, &done);
		if (ret || done)
			return ret;
	}
	return tp_send_resp(c, sqe->cid, r.status, r.dw0, r.dw1);
}

/* Ask for the next window(s) of a command's data (TCP 1.0 §3.6.2.9), up to r2t_max outstanding. */
int tp_cmd_send_r2ts(struct conn *c, struct pcmd *pc)
{
	struct tcp_peer *p = c->peer;
	uint32_t win = p->r2t_len;

	while (pc->asked < pc->len && (pc->asked - pc->rcvd + win - 1) / win < c->r2t_max) {
		struct pnvme_tcp_tx_pdu pdu;
		uint32_t n = pc->len - pc->asked < win ? pc->len - pc->asked : win;
		int ret;

		pnvme_tcp_build_r2t(&pdu, &c->tp, pc->sqe.cid, (uint16_t)(pc - c->pend), pc->asked,
				    n);
		ret = tp_send_pdu(c, &pdu);
		if (ret)
			return ret;
		pc->asked += n;
		peer_lock(p);
		p->st.r2ts++;
		peer_unlock(p);
	}
	return 0;
}

void tp_pcmd_free(struct pcmd *pc)
{
	free(pc->buf);
	memset(pc, 0, sizeof(*pc));
}

/*
 * A whole CapsuleCmd arrived (TCP 1.0 §3.6.2.5): check its SGL (Base 2.0
 * §4.1.2; fabrics use SGLs only), then run it with its in-capsule data, or
 * start R2Ts for data the host holds, or prepare a buffer for data to send.
 */
int tp_cmd_capsule(struct conn *c, const struct pnvme_sqe *sqe, uint32_t incap, int ddgst)
{
	struct tcp_peer *p = c->peer;
	const struct pnvme_sgl_desc *sgl = (const void *)&sqe->prp1;
	unsigned dir = cmd_dir(sqe);
	uint32_t len = sgl->length;
	uint8_t *buf = NULL;
	int ret;

	if (tp_fault_close_after(c)) {
		c->close_how = CLOSE_RST;
		return -ECONNABORTED;
	}
	c->sqhd = (uint16_t)(c->sqsize ? (c->sqhd + 1u) % (c->sqsize + 1u) : 0);
	if (ddgst)
		return tp_send_resp(c, sqe->cid, SC(PNVME_SCT_GENERIC, PNVME_SC_TRANSIENT_TR_ERR), 0, 0);
	if (PNVME_GET(sqe->flags, PNVME_SQE_PSDT) != PNVME_SQE_PSDT_SGL_MPTR_CONTIG)
		return tp_send_resp(c, sqe->cid, GEN(PNVME_SC_INVALID_FIELD), 0, 0);
	if (!dir || dir == 3u || !len) {
		/* No data: nothing may come in the capsule. */
		if (incap)
			return tp_send_resp(c, sqe->cid, GEN(PNVME_SC_SGL_INVALID_DATA), 0, 0);
		return tp_cmd_execute(c, sqe, NULL, 0, 0);
	}
	if (len > p->max_xfer)
		return tp_send_resp(c, sqe->cid, GEN(PNVME_SC_INVALID_FIELD), 0, 0);

	if (sgl->id == PNVME_SGL_ID_INCAPSULE) {
		/* In-capsule data (TCP 1.0 §3.3.2): writes only, within the capsule size. */
		uint32_t max = c->qid > 0 ? p->ioccsz - 64u : PEER_ADMIN_CCSZ;

		if (dir != DIR_H2C)
			return tp_send_resp(c, sqe->cid, GEN(PNVME_SC_INVALID_FIELD), 0, 0);
		if (len > max || sgl->addr > max - len)
			return tp_send_resp(c, sqe->cid, GEN(PNVME_SC_SGL_INVALID_OFFSET), 0, 0);
		if (sgl->addr + len != incap)
			return tp_send_resp(c, sqe->cid, GEN(PNVME_SC_SGL_INVALID_DATA), 0, 0);
		return tp_cmd_execute(c, sqe, c->incap + sgl->addr, len, 0);
	}
	if (sgl->id != PNVME_SGL_ID_TRANSPORT || sgl->addr != 0)
		return tp_send_resp(c, sqe->cid, GEN(PNVME_SC_SGL_INVALID_TYPE), 0, 0);
	if (incap)
		return tp_send_resp(c, sqe->cid, GEN(PNVME_SC_SGL_INVALID_DATA), 0, 0);

	if (dir == DIR_C2H) {
		buf = calloc(1, len);
		if (!buf)
			return tp_send_resp(c, sqe->cid, GEN(PNVME_SC_INTERNAL), 0, 0);
		ret = tp_cmd_execute(c, sqe, buf, len, 0);
		free(buf);
		return ret;
	}

	/* Host to controller via R2T: a slot, its TTAG the slot index. */
	for (unsigned i = 0; i < c->npend; i++) {
		struct pcmd *pc = &c->pend[i];

		if (pc->busy)
			continue;
		if (tp_fault_take(c, TCP_PEER_FAULT_SWALLOW, NULL))
			return 0;
		pc->buf = malloc(len);
		if (!pc->buf)
			return tp_send_resp(c, sqe->cid, GEN(PNVME_SC_INTERNAL), 0, 0);
		pc->busy = true;
		pc->sqe = *sqe;
		pc->len = len;
		return tp_cmd_send_r2ts(c, pc);
	}
	/* More writes waiting than the queue holds: the host broke SQSIZE. */
	return pnvme_tcp_rx_fail(&c->rx, PNVME_TCP_RX_LIMIT, 0);
}
