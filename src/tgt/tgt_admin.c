/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tgt_admin.c - the target's virtual controllers: Connect (Base 2.0 §6.3),
 * Property Get/Set (§6.5, §6.6) driving CC.EN -> CSTS.RDY and CC.SHN ->
 * CSTS.SHST (§3.6.1), Identify with the fabrics fields (§5.17), Get Log Page
 * (§5.16: Error, SMART from the backend, Changed Namespace List, Discovery),
 * Get/Set Features (Number of Queues, Keep Alive Timer, Asynchronous Event
 * Configuration), Keep Alive with KATO enforcement (§3.9), Asynchronous Event
 * Requests (held until a Namespace Attribute Changed or Discovery Log Page
 * Change notice, §5.2) and Abort (answered "not aborted").
 *
 * Every function here runs on the thread of the connection the command came
 * on; for admin commands that is the controller's admin queue.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pnvme/ctrl.h>
#include <pnvme/version.h>

#include "internal.h"
#include "tgt/tgt_priv.h"

/* Connect response DW0 for Invalid Parameters (Base 2.0 §6.3, Figure 380): IATTR, IPO. */
#define IPO_DATA(f) ((1u << 16) | (uint32_t)offsetof(struct pnvme_fabrics_connect_data, f))
#define IPO_SQE(f)  ((uint32_t)offsetof(struct pnvme_fabrics_connect, f))

/* SGLS (Base 2.0 Figure 275): SGLs supported (no alignment), offsets as addresses,
 * Transport SGL Data Blocks */
#define TGT_SGLS ((1u << 0) | (1u << 20) | (1u << 21))

static void done(struct tgt_req *req, uint16_t status)
{
	req->status = status;
	tgt_req_complete(req);
}

/* ------------------------------------------------------------------------ */
/* Connect                                                                   */
/* ------------------------------------------------------------------------ */

static struct tgt_ctrl *ctrl_find(struct pnvme_tgt *t, uint16_t cntlid)
{
	for (struct tgt_ctrl *c = t->ctrls; c; c = c->next)
		if (c->cntlid == cntlid)
			return c;
	return NULL;
}

/* A free dynamic controller id, 1..FFEFh (Base 2.0 §3.3.2.1); lock held. */
static int cntlid_alloc(struct pnvme_tgt *t)
{
	for (unsigned n = 0; n < 0xffefu; n++) {
		uint16_t id = t->next_cntlid;

		t->next_cntlid = (uint16_t)(id >= 0xffefu ? 1u : id + 1u);
		if (!ctrl_find(t, id))
			return id;
	}
	return -1;
}

static uint16_t connect_admin(struct tgt_req *req, const struct pnvme_fabrics_connect *cmd,
			      const struct pnvme_fabrics_connect_data *d, struct tgt_subsys *s)
{
	struct tgt_conn *c = req->conn;
	struct pnvme_tgt *t = c->g->tgt;
	struct tgt_ctrl *ctrl;
	int id;

	if (d->cntlid != PNVME_CONNECT_CNTLID_DYNAMIC) {
		req->dw0 = IPO_DATA(cntlid); /* dynamic controller model only */
		return TGT_SC(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM);
	}
	ctrl = calloc(1, sizeof(*ctrl));
	if (!ctrl)
		return PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INTERNAL);
	ctrl->tgt = t;
	ctrl->subsys = s;
	ctrl->refs = 1;
	ctrl->kato = cmd->kato;
	ctrl->ka_deadline = c->g->now + cmd->kato;
	memcpy(ctrl->hostnqn, d->hostnqn, sizeof(ctrl->hostnqn));
	memcpy(ctrl->hostid, d->hostid, sizeof(ctrl->hostid));
	pthread_mutex_lock(&t->lock);
	id = cntlid_alloc(t);
	if (id > 0) {
		ctrl->cntlid = (uint16_t)id;
		ctrl->nr_io = s ? t->o.max_io_queues : 0;
		ctrl->next = t->ctrls;
		t->ctrls = ctrl;
	}
	pthread_mutex_unlock(&t->lock);
	if (id < 0) {
		free(ctrl);
		return TGT_SC(PNVME_SCT_CMD, PNVME_SC_CONNECT_CTRL_BUSY);
	}
	c->ctrl = ctrl;
	TGT_STAT_ADD(c->g, ctrls_created, 1);
	log_info("tgt: controller %u for %s on %s", ctrl->cntlid, d->hostnqn,
		 s ? s->nqn : PNVME_DISCOVERY_NQN);
	return 0;
}

static uint16_t connect_io(struct tgt_req *req, const struct pnvme_fabrics_connect *cmd,
			   const struct pnvme_fabrics_connect_data *d, struct tgt_subsys *s)
{
	struct tgt_conn *c = req->conn;
	struct pnvme_tgt *t = c->g->tgt;
	struct tgt_ctrl *ctrl;
	uint16_t st = 0;

	pthread_mutex_lock(&t->lock);
	ctrl = ctrl_find(t, d->cntlid);
	if (!ctrl || ctrl->subsys != s || strcmp(ctrl->hostnqn, d->hostnqn) ||
	    __atomic_load_n(&ctrl->dead, __ATOMIC_ACQUIRE)) {
		req->dw0 = IPO_DATA(cntlid);
		st = TGT_SC(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM);
	} else if (!s || cmd->qid > ctrl->nr_io) {
		req->dw0 = IPO_SQE(qid);
		st = TGT_SC(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM);
	} else if (ctrl->qconn[cmd->qid / 8] & (1u << (cmd->qid % 8))) {
		st = TGT_SC(PNVME_SCT_CMD, PNVME_SC_CONNECT_CTRL_BUSY); /* as nvmet */
	} else {
		ctrl->qconn[cmd->qid / 8] |= (uint8_t)(1u << (cmd->qid % 8));
		__atomic_add_fetch(&ctrl->refs, 1, __ATOMIC_RELAXED);
		c->ctrl = ctrl;
		c->io_gen = ctrl->io_gen;
	}
	pthread_mutex_unlock(&t->lock);
	return st;
}

void tgt_exec_connect(struct tgt_req *req)
{
	const struct pnvme_fabrics_connect *cmd = (const void *)&req->sqe;
	struct tgt_conn *c = req->conn;
	struct pnvme_tgt *t = c->g->tgt;
	struct pnvme_fabrics_connect_data d;
	struct tgt_subsys *s = NULL;
	bool disc, allowed = true;
	uint16_t st;

	memcpy(&d, req->buf, sizeof(d));
	d.subnqn[PNVME_NQN_LEN - 1] = 0;
	d.hostnqn[PNVME_NQN_LEN - 1] = 0;
	if (cmd->recfmt != 0) {
		done(req, TGT_SC(PNVME_SCT_CMD, PNVME_SC_CONNECT_INCOMPATIBLE_FORMAT));
		return;
	}
	if (!d.hostnqn[0]) {
		req->dw0 = IPO_DATA(hostnqn);
		done(req, TGT_SC(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM));
		return;
	}
	disc = !strcmp(d.subnqn, PNVME_DISCOVERY_NQN);
	pthread_mutex_lock(&t->lock);
	if (!disc && !c->disc_only) { /* the discovery listener serves discovery alone */
		s = tgt_subsys_find(t, d.subnqn);
		allowed = s && tgt_host_allowed(s, d.hostnqn);
	}
	pthread_mutex_unlock(&t->lock);
	if (!disc && !s) {
		req->dw0 = IPO_DATA(subnqn);
		done(req, TGT_SC(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM));
		return;
	}
	if (!allowed) {
		log_info("tgt: host %s may not use %s", d.hostnqn, d.subnqn);
		done(req, TGT_SC(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_HOST));
		return;
	}
	/* SQSIZE is 0's based and at least 1 (Base 2.0 §6.3), below CAP.MQES + 1. */
	if (cmd->sqsize == 0 || cmd->sqsize >= t->o.queue_size) {
		req->dw0 = IPO_SQE(sqsize);
		done(req, TGT_SC(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM));
		return;
	}
	st = cmd->qid == 0 ? connect_admin(req, cmd, &d, s) : connect_io(req, cmd, &d, s);
	if (st) {
		done(req, st);
		return;
	}
	c->qid = cmd->qid;
	c->sqsize = cmd->sqsize;
	c->sqhd = (uint16_t)(1u % (cmd->sqsize + 1u)); /* the Connect itself was consumed */
	c->sqflow_off = cmd->cattr & TGT_CATTR_NO_SQFLOW;
	c->icd = cmd->qid ? t->o.icd_bytes : TGT_ADMIN_ICD;
	req->dw0 = c->ctrl->cntlid;
	done(req, 0);
}

/* ------------------------------------------------------------------------ */
/* Properties                                                                */
/* ------------------------------------------------------------------------ */

static uint64_t cap_value(const struct pnvme_tgt *t)
{
	/* Base 2.0 §3.1.4.1; fabrics: CQR 1, TO 15 (7.5 s), NVM command set, 4 KiB pages. */
	return PNVME_SET(PNVME_CAP_MQES, (uint64_t)t->o.queue_size - 1u) |
	       PNVME_SET(PNVME_CAP_CQR, 1ull) | PNVME_SET(PNVME_CAP_TO, 15ull) |
	       PNVME_SET(PNVME_CAP_CSS, (uint64_t)PNVME_CAP_CSS_NVM);
}

void tgt_exec_prop_get(struct tgt_req *req)
{
	const struct pnvme_fabrics_prop_get *g = (const void *)&req->sqe;
	struct tgt_ctrl *ctrl = req->conn->ctrl;
	bool eight = (g->attrib & 7u) == PNVME_PROP_SIZE_8;
	uint64_t v;

	switch (g->ofst) {
	case PNVME_REG_CAP:  v = cap_value(req->conn->g->tgt); break;
	case PNVME_REG_VS:   v = PNVME_VS(2, 0, 0); break;
	case PNVME_REG_CC:   v = ctrl->cc; break;
	case PNVME_REG_CSTS: v = __atomic_load_n(&ctrl->csts, __ATOMIC_RELAXED); break;
	default:
		done(req, TGT_GEN(PNVME_SC_INVALID_FIELD));
		return;
	}
	/* CAP is the only 8-byte property of the four (Base 2.0 §3.1.4, Figure 33). */
	if (eight != (g->ofst == PNVME_REG_CAP)) {
		done(req, TGT_GEN(PNVME_SC_INVALID_FIELD));
		return;
	}
	req->dw0 = (uint32_t)v;
	req->dw1 = (uint32_t)(v >> 32);
	done(req, 0);
}

/*
 * Controller Level Reset by CC.EN 1 -> 0 (Base 2.0 §3.7.2): the I/O queues
 * are deleted, which on a fabric means their connections end. Each I/O
 * connection's thread sees io_gen move and closes it (tgt_conn_poll); the
 * queue ids are free at once, so the host may connect them again after it
 * sets CC.EN. (nvmet leaves them: "XXX: tear down queues?") The admin queue
 * stays, with the AERs it holds.
 */
static void ioq_delete_all(struct tgt_ctrl *ctrl)
{
	struct pnvme_tgt *t = ctrl->tgt;

	pthread_mutex_lock(&t->lock);
	memset(ctrl->qconn, 0, sizeof(ctrl->qconn));
	__atomic_store_n(&ctrl->io_gen, ctrl->io_gen + 1u, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&t->lock);
}

/* CC written (Base 2.0 §3.1.4.5, §3.5.1, §3.6.1). */
static void write_cc(struct tgt_ctrl *ctrl, uint32_t cc)
{
	uint32_t old = ctrl->cc, csts = __atomic_load_n(&ctrl->csts, __ATOMIC_RELAXED);

	ctrl->cc = cc;
	if (PNVME_GET(cc, PNVME_CC_EN) && !PNVME_GET(old, PNVME_CC_EN)) {
		/* As nvmet_start_ctrl: 4 KiB pages, round robin, NVM; I/O controllers need
		 * 64-byte SQ and 16-byte CQ entries. Otherwise: Controller Fatal Status. */
		if (PNVME_GET(cc, PNVME_CC_MPS) || PNVME_GET(cc, PNVME_CC_AMS) ||
		    PNVME_GET(cc, PNVME_CC_CSS) != PNVME_CC_CSS_NVM ||
		    (ctrl->subsys && (PNVME_GET(cc, PNVME_CC_IOSQES) != 6 ||
				      PNVME_GET(cc, PNVME_CC_IOCQES) != 4)))
			csts |= PNVME_SET(PNVME_CSTS_CFS, 1u);
		else
			csts |= PNVME_SET(PNVME_CSTS_RDY, 1u);
	} else if (!PNVME_GET(cc, PNVME_CC_EN) && PNVME_GET(old, PNVME_CC_EN)) {
		csts &= ~(PNVME_SET(PNVME_CSTS_RDY, 1u) | PNVME_SET(PNVME_CSTS_CFS, 1u));
		ioq_delete_all(ctrl);
	}
	csts &= ~PNVME_SET(PNVME_CSTS_SHST, PNVME_CSTS_SHST_MASK);
	if (PNVME_GET(cc, PNVME_CC_SHN)) /* nothing volatile here: shutdown completes at once */
		csts |= PNVME_SET(PNVME_CSTS_SHST, PNVME_CSTS_SHST_COMPLETE);
	__atomic_store_n(&ctrl->csts, csts, __ATOMIC_RELEASE);
}

void tgt_exec_prop_set(struct tgt_req *req)
{
	const struct pnvme_fabrics_prop_set *s = (const void *)&req->sqe;

	/* Of the four, only CC may be written (4 bytes). */
	if (s->ofst != PNVME_REG_CC || (s->attrib & 7u) != PNVME_PROP_SIZE_4) {
		done(req, TGT_GEN(PNVME_SC_INVALID_FIELD));
		return;
	}
	write_cc(req->conn->ctrl, (uint32_t)s->value);
	done(req, 0);
}

/* ------------------------------------------------------------------------ */
/* Identify                                                                  */
/* ------------------------------------------------------------------------ */

static void set_str(char *dst, size_t n, const char *src)
{
	size_t l = strlen(src);

	memset(dst, ' ', n);
	memcpy(dst, src, l < n ? l : n);
}

static uint8_t mdts_of(uint32_t max_xfer)
{
	uint8_t m = 0;

	while ((4096u << m) < max_xfer)
		m++;
	return m;
}

static void identify_ctrl(struct tgt_req *req)
{
	struct tgt_conn *c = req->conn;
	struct pnvme_tgt *t = c->g->tgt;
	struct tgt_ctrl *ctrl = c->ctrl;
	struct pnvme_id_ctrl *id = (void *)req->buf;

	set_str(id->sn, sizeof(id->sn), ctrl->subsys ? ctrl->subsys->sn : "discovery");
	set_str(id->mn, sizeof(id->mn), "pnvme-tgt");
	set_str(id->fr, sizeof(id->fr), PNVME_VERSION_STRING);
	id->rab = 6;
	id->mdts = mdts_of(t->max_xfer);
	id->cntlid = ctrl->cntlid;
	id->ver = PNVME_VS(2, 0, 0);
	id->oaes = ctrl->subsys ? 1u << 8 : 1u << 31; /* NS attribute / discovery log notices */
	id->cntrltype = ctrl->subsys ? 1 : 2;         /* I/O controller / discovery controller */
	id->acl = TGT_ACL;
	id->aerl = TGT_AERL;
	id->frmw = 1u << 1 | 1u;                      /* one slot, read only */
	id->lpa = 1u << 2;                            /* extended data for Get Log Page */
	id->elpe = 0;
	id->kas = 10;                                 /* 100 ms units: a 1 s granularity */
	id->sqes = 0x66;
	id->cqes = 0x44;
	id->maxcmd = t->o.queue_size;
	id->nn = ctrl->subsys ? TGT_MAX_NSID : 0;
	id->oncs = ctrl->subsys ? PNVME_ONCS_WRITE_ZEROES | PNVME_ONCS_DSM : 0;
	/* A volatile write cache (the backends may have one); bits 2:1 = 10b: Flush with NSID
	 * FFFFFFFFh is not supported and fails with Invalid Namespace, as in nvmet, whose
	 * nvmet_req_find_ns() refuses it (Base 2.0 Figure 275; NVM 1.0 §3.2.2). */
	id->vwc = ctrl->subsys ? 0x01 | 2u << 1 : 0;
	id->sgls = TGT_SGLS;
	snprintf(id->subnqn, sizeof(id->subnqn), "%s",
		 ctrl->subsys ? ctrl->subsys->nqn : PNVME_DISCOVERY_NQN);
	/* Fabrics fields (Base 2.0 Figure 275): capsule sizes in 16-byte units, SQE included. */
	id->ioccsz = (uint32_t)(sizeof(struct pnvme_sqe) + t->o.icd_bytes) / 16u;
	id->iorcsz = (uint32_t)sizeof(struct pnvme_cqe) / 16u;
	id->icdoff = 0;
	id->fcatt = 0;                                /* dynamic controller model */
	id->msdbd = 1;
}

static void identify_ns(struct tgt_req *req, const struct tgt_ns *ns)
{
	struct pnvme_id_ns *id = (void *)req->buf;

	id->nsze = id->ncap = id->nuse = ns->nsze;
	id->nlbaf = 0;
	id->flbas = 0;
	id->lbaf[0] = PNVME_SET(PNVME_LBAF_LBADS, ns->lba_shift);
	id->dlfeat = ns->bns->id.dlfeat;
	memcpy(id->nguid, ns->nguid, sizeof(id->nguid));
}

/* Namespace Identification Descriptors (Base 2.0 §5.17.2.3): NGUID, UUID, CSI. */
static void identify_desc(struct tgt_req *req, const struct tgt_ns *ns)
{
	uint8_t *b = req->buf;

	b[0] = 2; /* NIDT NGUID */
	b[1] = 16;
	memcpy(b + 4, ns->nguid, 16);
	b[20] = 3; /* NIDT UUID */
	b[21] = 16;
	memcpy(b + 24, ns->uuid, 16);
	b[40] = 4; /* NIDT CSI: NVM */
	b[41] = 1;
	b[44] = 0;
}

/* Active Namespace ID list (CNS 02h): NSIDs above CDW1.NSID, ascending. */
static void identify_active(struct tgt_req *req, const struct tgt_subsys *s)
{
	uint32_t *list = (void *)req->buf;
	unsigned n = 0;

	for (uint32_t nsid = req->sqe.nsid + 1u; s && nsid && nsid <= TGT_MAX_NSID &&
	     n < PNVME_ID_NS_LIST_MAX; nsid++)
		if (tgt_ns_get(s, nsid))
			list[n++] = nsid;
}

void tgt_exec_identify(struct tgt_req *req)
{
	const struct tgt_subsys *s = req->conn->ctrl->subsys;
	uint8_t cns = (uint8_t)(req->sqe.cdw10 & 0xffu);
	const struct tgt_ns *ns;

	if (!s && cns != PNVME_ID_CNS_CTRL) {
		done(req, TGT_GEN(PNVME_SC_INVALID_FIELD));
		return;
	}
	switch (cns) {
	case PNVME_ID_CNS_CTRL:
		identify_ctrl(req);
		break;
	case PNVME_ID_CNS_NS:
	case PNVME_ID_CNS_NS_DESC_LIST:
		ns = tgt_ns_get(s, req->sqe.nsid);
		if (!ns) {
			done(req, TGT_GEN(PNVME_SC_INVALID_NS));
			return;
		}
		if (cns == PNVME_ID_CNS_NS)
			identify_ns(req, ns);
		else
			identify_desc(req, ns);
		break;
	case PNVME_ID_CNS_NS_ACTIVE:
		if (req->sqe.nsid >= 0xfffffffeu) {
			done(req, TGT_GEN(PNVME_SC_INVALID_NS));
			return;
		}
		identify_active(req, s);
		break;
	default:
		done(req, TGT_GEN(PNVME_SC_INVALID_FIELD));
		return;
	}
	done(req, 0);
}

/* ------------------------------------------------------------------------ */
/* Log pages                                                                 */
/* ------------------------------------------------------------------------ */

static void put_str(char *dst, size_t n, const char *src)
{
	/* Discovery log strings: ASCII, space padded (Base 2.0 Figure 262). */
	set_str(dst, n, src);
}

/* The Discovery Log Page (Base 2.0 §5.16.1.23): the subsystems this host may use. */
static uint8_t *discovery_log(struct tgt_conn *c, size_t *len)
{
	struct pnvme_tgt *t = c->g->tgt;
	const char *host = c->ctrl->hostnqn;
	struct pnvme_disc_log_hdr *h;
	uint8_t *page;
	uint64_t n = 0;
	char port[8];

	pthread_mutex_lock(&t->lock);
	page = calloc(1u + t->nr_subsys, 1024);
	if (!page)
		goto out;
	h = (void *)page;
	for (unsigned i = 0; i < t->nr_subsys; i++) {
		const struct tgt_subsys *s = t->subsys[i];
		struct pnvme_disc_log_entry *e = (void *)(page + 1024u * (n + 1));

		if (!tgt_host_allowed(s, host))
			continue;
		e->trtype = PNVME_TRTYPE_TCP;
		e->adrfam = c->adrfam ? c->adrfam : PNVME_ADRFAM_IPV4;
		e->subtype = PNVME_SUBTYPE_NVME;
		e->treq = 0; /* not specified: no secure channel */
		e->portid = 1;
		e->cntlid = PNVME_CONNECT_CNTLID_DYNAMIC;
		e->asqsz = t->o.queue_size;
		/* The I/O port, also when asked on the discovery-only port. */
		snprintf(port, sizeof(port), "%u", t->port);
		put_str(e->trsvcid, sizeof(e->trsvcid), port);
		put_str(e->traddr, sizeof(e->traddr), c->traddr);
		snprintf(e->subnqn, sizeof(e->subnqn), "%s", s->nqn);
		e->tsas[0] = 0; /* SECTYPE: none */
		n++;
	}
	h->genctr = t->genctr;
	h->numrec = n;
	h->recfmt = 0;
	*len = 1024u * (size_t)(n + 1);
out:
	pthread_mutex_unlock(&t->lock);
	return page;
}

/* 128-bit little-endian counters of the SMART log: dst += src. */
static void u128_add(uint8_t dst[16], const uint8_t src[16])
{
	unsigned carry = 0;

	for (unsigned i = 0; i < 16; i++) {
		unsigned v = dst[i] + src[i] + carry;

		dst[i] = (uint8_t)v;
		carry = v >> 8;
	}
}

/* 128-bit little-endian max: dst = max(dst, src). */
static void u128_max(uint8_t dst[16], const uint8_t src[16])
{
	for (int i = 15; i >= 0; i--) {
		if (dst[i] != src[i]) {
			if (src[i] > dst[i])
				memcpy(dst, src, 16);
			return;
		}
	}
}

/* Fold the SMART log of one more backend into `acc` (the controller-wide view). */
static void smart_merge(struct pnvme_smart_log *acc, const struct pnvme_smart_log *b, bool first)
{
	unsigned ta = acc->temperature[0] | acc->temperature[1] << 8;
	unsigned tb = b->temperature[0] | b->temperature[1] << 8;

	if (first) {
		*acc = *b;
		memset(acc->temp_sensor, 0, sizeof(acc->temp_sensor));
		return;
	}
	/* Health: the worst of the backends. */
	acc->critical_warning |= b->critical_warning;
	acc->endgrp_crit_warn |= b->endgrp_crit_warn;
	if (tb > ta) {
		acc->temperature[0] = b->temperature[0];
		acc->temperature[1] = b->temperature[1];
	}
	if (b->avail_spare < acc->avail_spare)
		acc->avail_spare = b->avail_spare;
	if (b->spare_thresh > acc->spare_thresh)
		acc->spare_thresh = b->spare_thresh;
	if (b->percent_used > acc->percent_used)
		acc->percent_used = b->percent_used;
	/* Work done through this subsystem: the sum. */
	u128_add(acc->data_units_read, b->data_units_read);
	u128_add(acc->data_units_written, b->data_units_written);
	u128_add(acc->host_reads, b->host_reads);
	u128_add(acc->host_writes, b->host_writes);
	u128_add(acc->ctrl_busy_time, b->ctrl_busy_time);
	u128_add(acc->media_errors, b->media_errors);
	u128_add(acc->num_err_log_entries, b->num_err_log_entries);
	/* Device lifetime: the oldest device's. */
	u128_max(acc->power_cycles, b->power_cycles);
	u128_max(acc->power_on_hours, b->power_on_hours);
	u128_max(acc->unsafe_shutdowns, b->unsafe_shutdowns);
	if (b->warning_temp_time > acc->warning_temp_time)
		acc->warning_temp_time = b->warning_temp_time;
	if (b->critical_comp_time > acc->critical_comp_time)
		acc->critical_comp_time = b->critical_comp_time;
}

/*
 * SMART / Health (Base 2.0 §5.16.1.3). LPA bit 0 is clear, so the log is
 * the controller's: NSID 0h or FFFFFFFFh aggregate every backend controller
 * holding a namespace of the subsystem, each once (as nvmet's
 * nvmet_get_smart_log_all sums its namespaces): counters of work (data
 * units, commands, busy time, media and error-log errors) are summed; health
 * is the worst (critical warnings OR-ed, the highest temperature and
 * percentage used, the lowest spare); lifetime counters (power cycles and
 * hours, unsafe shutdowns) are the highest. A specific NSID gets the log of
 * the backend holding that namespace.
 */
static uint8_t *smart_log(struct tgt_conn *c, uint32_t nsid, size_t *len, uint16_t *st)
{
	const struct tgt_subsys *s = c->ctrl->subsys;
	struct pnvme_tgt *t = c->g->tgt;
	bool all = nsid == 0xffffffffu || nsid == 0, seen[TGT_MAX_BACKENDS] = { false };
	struct pnvme_smart_log *log = calloc(1, sizeof(*log)), one;
	unsigned n = 0;

	if (!log)
		return NULL;
	if (!all && !tgt_ns_get(s, nsid)) {
		*st = TGT_GEN(PNVME_SC_INVALID_NS);
		free(log);
		return NULL;
	}
	for (uint32_t i = all ? 1 : nsid; i <= (all ? TGT_MAX_NSID : nsid); i++) {
		const struct tgt_ns *ns = tgt_ns_get(s, i);

		if (!ns || seen[ns->backend])
			continue;
		seen[ns->backend] = true;
		if (pnvme_smart_log(t->backends[ns->backend], &one)) {
			log_warn("tgt: SMART log of backend %u: %s", ns->backend, pnvme_last_error());
			*st = PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INTERNAL);
			free(log);
			return NULL;
		}
		smart_merge(log, &one, n++ == 0);
	}
	*len = sizeof(*log);
	return (uint8_t *)log;
}

/*
 * Changed Namespace List (Base 2.0 §5.16.1.5): the NSIDs changed since the
 * last read (FFFFFFFFh alone after more than 1024), cleared by this read.
 * nvmet clears it whatever RAE says; so do we.
 */
static uint8_t *changed_ns_log(struct tgt_conn *c, size_t *len)
{
	struct tgt_ctrl *ctrl = c->ctrl;
	struct pnvme_tgt *t = c->g->tgt;
	uint32_t *list = calloc(TGT_CHANGED_NS_MAX, sizeof(*list));

	if (!list)
		return NULL;
	pthread_mutex_lock(&t->lock);
	if (ctrl->nr_changed == ~0u)
		list[0] = 0xffffffffu;
	else
		memcpy(list, ctrl->changed, ctrl->nr_changed * sizeof(*list));
	ctrl->nr_changed = 0;
	pthread_mutex_unlock(&t->lock);
	*len = TGT_CHANGED_NS_MAX * sizeof(*list);
	return (uint8_t *)list;
}

void tgt_exec_get_log(struct tgt_req *req)
{
	const struct pnvme_sqe *sqe = &req->sqe;
	struct tgt_conn *c = req->conn;
	uint8_t lid = (uint8_t)PNVME_GET(sqe->cdw10, PNVME_GLP_LID);
	uint64_t lpo = sqe->cdw12 | (uint64_t)sqe->cdw13 << 32;
	uint16_t st = 0;
	uint8_t *page = NULL;
	size_t plen = 0;

	if (!c->ctrl->subsys) {
		if (lid == PNVME_LOG_DISCOVERY)
			page = discovery_log(c, &plen);
		else
			st = TGT_SC(PNVME_SCT_CMD, PNVME_SC_LOG_PAGE_INVALID);
	} else {
		switch (lid) {
		case PNVME_LOG_ERROR:          /* no errors kept: ELPE + 1 zero entries */
			plen = sizeof(struct pnvme_error_log);
			page = calloc(1, plen);
			break;
		case PNVME_LOG_SMART:
			page = smart_log(c, sqe->nsid, &plen, &st);
			break;
		case PNVME_LOG_CHANGED_NS:
			page = changed_ns_log(c, &plen);
			break;
		default:
			st = TGT_SC(PNVME_SCT_CMD, PNVME_SC_LOG_PAGE_INVALID);
			break;
		}
	}
	if (!st && !page)
		st = st ? st : PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INTERNAL);
	/* Reading the log page of an event unmasks its type unless RAE is set (§5.16). */
	if (!st && !(sqe->cdw10 & PNVME_GLP_RAE)) {
		if (lid == PNVME_LOG_DISCOVERY && !c->ctrl->subsys)
			c->ctrl->aen_masked &= ~TGT_AEN_DISC;
		else if (lid == PNVME_LOG_CHANGED_NS && c->ctrl->subsys)
			c->ctrl->aen_masked &= ~TGT_AEN_NS_ATTR;
	}
	if (!st && lpo >= plen && lpo)
		st = TGT_GEN(PNVME_SC_INVALID_FIELD); /* offset past the log */
	if (!st && lpo < plen)
		memcpy(req->buf, page + lpo, plen - lpo < req->len ? plen - lpo : req->len);
	free(page);
	done(req, st);
}

/* ------------------------------------------------------------------------ */
/* Features, Keep Alive, AER, Abort                                          */
/* ------------------------------------------------------------------------ */

void tgt_exec_features(struct tgt_req *req)
{
	const struct pnvme_sqe *sqe = &req->sqe;
	struct tgt_conn *c = req->conn;
	struct tgt_ctrl *ctrl = c->ctrl;
	struct pnvme_tgt *t = c->g->tgt;
	bool set = sqe->opc == PNVME_ADM_SET_FEATURES;
	uint8_t fid = (uint8_t)PNVME_GET(sqe->cdw10, PNVME_FEAT_FID);

	if (set && (sqe->cdw10 & PNVME_FEAT_SV)) {
		done(req, TGT_SC(PNVME_SCT_CMD, PNVME_SC_FEATURE_NOT_SAVEABLE));
		return;
	}
	switch (fid) {
	case PNVME_FEAT_NUM_QUEUES:
		if (!ctrl->subsys)
			break;
		if (set) {
			uint32_t nsq = PNVME_GET(sqe->cdw11, PNVME_NUMQ_NSQ);
			uint32_t ncq = PNVME_GET(sqe->cdw11, PNVME_NUMQ_NCQ);
			uint32_t n = (nsq < ncq ? nsq : ncq) + 1u;

			if (nsq == 0xffff || ncq == 0xffff)
				break;
			pthread_mutex_lock(&t->lock);
			ctrl->nr_io = (uint16_t)(n < t->o.max_io_queues ? n : t->o.max_io_queues);
			pthread_mutex_unlock(&t->lock);
		}
		req->dw0 = (uint32_t)(ctrl->nr_io - 1u) * 0x10001u; /* 0's based, SQs and CQs */
		done(req, 0);
		return;
	case PNVME_FEAT_KATO:
		if (set) {
			ctrl->kato = sqe->cdw11;
			ctrl->ka_deadline = c->g->now + ctrl->kato;
		}
		req->dw0 = ctrl->kato;
		done(req, 0);
		return;
	case PNVME_FEAT_ASYNC_EVENT:
		/* Base 2.0 §5.27.1.7; as nvmet, SMART warnings (7:0, never sent here) and
		 * the two notices this target sends; other bits: Invalid Field. */
		if (set && (sqe->cdw11 & ~(0xffu | TGT_AEC_NS_ATTR | TGT_AEC_DISC))) {
			done(req, TGT_GEN(PNVME_SC_INVALID_FIELD));
			return;
		}
		if (set)
			__atomic_store_n(&ctrl->aec, sqe->cdw11, __ATOMIC_RELAXED);
		req->dw0 = ctrl->aec;
		done(req, 0);
		return;
	case PNVME_FEAT_VOLATILE_WC:
		if (!ctrl->subsys)
			break;
		if (set) {
			done(req, TGT_SC(PNVME_SCT_CMD, PNVME_SC_FEATURE_NOT_CHANGEABLE));
			return;
		}
		req->dw0 = 1;
		done(req, 0);
		return;
	default:
		break;
	}
	done(req, TGT_GEN(PNVME_SC_INVALID_FIELD));
}

void tgt_exec_keep_alive(struct tgt_req *req)
{
	struct tgt_conn *c = req->conn;

	/* Base 2.0 §5.25, §3.9: restart the Keep Alive timer. */
	c->ctrl->ka_deadline = c->g->now + c->ctrl->kato;
	done(req, 0);
}

bool tgt_ctrl_kato_ok(struct tgt_conn *c)
{
	struct tgt_ctrl *ctrl = c->ctrl;

	if (!ctrl->kato || c->g->now < ctrl->ka_deadline)
		return true;
	log_notice("tgt: controller %u (%s): no Keep Alive within %u ms: torn down",
		   ctrl->cntlid, ctrl->hostnqn, ctrl->kato);
	return false;
}

void tgt_exec_abort(struct tgt_req *req)
{
	/* Base 2.0 §5.1: DW0 bit 0 set: the command was not aborted (it will complete). */
	req->dw0 = PNVME_ABORT_NOT_ABORTED;
	done(req, 0);
}

void tgt_exec_aer(struct tgt_req *req)
{
	struct tgt_ctrl *ctrl = req->conn->ctrl;

	/* Base 2.0 §5.2: held until an event; more than AERL + 1 is an error. */
	if (ctrl->nr_aer > TGT_AERL) {
		done(req, TGT_SC(PNVME_SCT_CMD, PNVME_SC_AER_LIMIT));
		return;
	}
	ctrl->aer[ctrl->nr_aer++] = req;
	req->state = REQ_HELD;
	(void)tgt_ctrl_aen(req->conn); /* an event raised before this AER came */
}

/*
 * Send raised events (Base 2.0 §5.2): each completes one held AER. An event
 * the host disabled (Asynchronous Event Configuration) is dropped; so is one
 * of a type already reported whose log page the host has not read yet (the
 * type is masked until then, §5.2.1); its log page still records it. An
 * enabled event with no AER held waits for the next AER.
 */
int tgt_ctrl_aen(struct tgt_conn *c)
{
	static const struct {
		uint32_t bit, aec, dw0;
	} ev[] = {
		{ TGT_AEN_NS_ATTR, TGT_AEC_NS_ATTR,
		  TGT_AER_NOTICE | TGT_AER_INFO_NS_ATTR << 8 | (uint32_t)PNVME_LOG_CHANGED_NS << 16 },
		{ TGT_AEN_DISC, TGT_AEC_DISC,
		  TGT_AER_NOTICE | TGT_AER_INFO_DISC << 8 | (uint32_t)PNVME_LOG_DISCOVERY << 16 },
	};
	struct tgt_ctrl *ctrl = c->ctrl;
	uint32_t pend = __atomic_load_n(&ctrl->aen_pending, __ATOMIC_ACQUIRE);
	int work = 0;

	for (unsigned i = 0; pend && i < sizeof(ev) / sizeof(ev[0]); i++) {
		struct tgt_req *req;

		if (!(pend & ev[i].bit))
			continue;
		if ((ctrl->aec & ev[i].aec) && !(ctrl->aen_masked & ev[i].bit)) {
			if (!ctrl->nr_aer)
				continue; /* kept for the next AER */
			req = ctrl->aer[--ctrl->nr_aer];
			ctrl->aen_masked |= ev[i].bit;
			req->dw0 = ev[i].dw0;
			req->status = 0;
			tgt_req_complete(req);
			work++;
		}
		__atomic_and_fetch(&ctrl->aen_pending, ~ev[i].bit, __ATOMIC_RELEASE);
	}
	return work;
}
