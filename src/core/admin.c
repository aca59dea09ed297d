/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * admin.c - admin commands (NVMe Base 2.0 §5): raw submission, the sync
 * wait, and wrappers for Identify, Get/Set Features, Get Log Page,
 * Create/Delete I/O queues and Abort.
 *
 * The admin queue is shared by every thread of the application: each
 * submission and each poll of it happens under ctrl->admin_lock. Sync calls
 * bounce their data through DMA memory so callers can pass ordinary memory.
 */
#include <stdlib.h>
#include <string.h>

#include "core/ctrl_priv.h"
#include "tcp/host.h"

/* Data direction from the opcode's two low bits (Base 2.0 §5, Figure 138). */
static inline bool opc_to_host(uint8_t opc)
{
	return (opc & 3u) == 2u || (opc & 3u) == 3u;
}

static inline bool opc_to_ctrl(uint8_t opc)
{
	return (opc & 3u) == 1u || (opc & 3u) == 3u;
}

int pnvme_admin_submit(struct pnvme_ctrl *ctrl, const struct pnvme_sqe *sqe, void *dma_buf,
		       size_t len, pnvme_cmd_cb cb, void *arg)
{
	int rc;

	if (!ctrl || !sqe || !cb)
		return pnvme_fail(-EINVAL, "admin_submit: NULL argument");
	pthread_mutex_lock(&ctrl->admin_lock);
	rc = qpair_submit_raw(ctrl->adminq, sqe, dma_buf, len, cb, arg);
	pthread_mutex_unlock(&ctrl->admin_lock);
	return rc;
}

int pnvme_ctrl_process_admin(struct pnvme_ctrl *ctrl)
{
	int rc;

	if (!ctrl)
		return pnvme_fail(-EINVAL, "process_admin: NULL controller");
	pthread_mutex_lock(&ctrl->admin_lock);
	if (ctrl->tcp && !ctrl->adminq->in_poll)
		tcp_keep_alive(ctrl);
	rc = pnvme_qpair_poll(ctrl->adminq, 0);
	ctrl_run_pending_reset(ctrl);
	if (ctrl->tcp)
		ctrl_reconnect_poll(ctrl);
	ctrl_aer_process(ctrl); /* asynchronous events reaped by this or earlier polls */
	pthread_mutex_unlock(&ctrl->admin_lock);
	return rc;
}

struct admin_wait {
	volatile int done;
	int err;
	struct pnvme_cqe cqe;
};

static void admin_wait_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct admin_wait *w = arg;
	w->err = err;
	w->cqe = *cqe;
	w->done = 1;
}

/*
 * Submit `cmd` and wait for it; `buf` is ordinary memory of `len` bytes,
 * copied through a DMA bounce buffer in the opcode's direction.
 */
static int admin_sync_tmo(struct pnvme_ctrl *ctrl, const struct pnvme_sqe *cmd, void *buf,
			  size_t len, struct pnvme_cqe *cqe, uint32_t timeout_ms);

int admin_sync(struct pnvme_ctrl *ctrl, const struct pnvme_sqe *cmd, void *buf, size_t len,
	       struct pnvme_cqe *cqe)
{
	return admin_sync_tmo(ctrl, cmd, buf, len, cqe, 0);
}

/*
 * admin_sync() with the command's own timeout (`timeout_ms`, 0: the admin
 * timeout), for commands that legitimately run long (Format NVM). Its
 * deadline is taken at submission from the admin queue's timeout, which is
 * swapped for this one submission under the admin lock.
 */
static int admin_sync_tmo(struct pnvme_ctrl *ctrl, const struct pnvme_sqe *cmd, void *buf,
			  size_t len, struct pnvme_cqe *cqe, uint32_t timeout_ms)
{
	struct admin_wait w = { 0 };
	void *dma = NULL;
	int rc;

	if (!ctrl || !cmd)
		return pnvme_fail(-EINVAL, "admin command: NULL controller or command");
	if (cqe)
		memset(cqe, 0, sizeof(*cqe));
	if (ctrl_is_dead(ctrl))
		return pnvme_fail(-ENODEV, "controller is gone");
	if (len) {
		if (!buf)
			return pnvme_fail(-EINVAL, "admin command: data length without a buffer");
		rc = pnvme_dma_alloc_raw(&ctrl->dma, len, PNVME_PAGE_SIZE, &dma, NULL);
		if (rc)
			return rc;
		if (opc_to_ctrl(cmd->opc))
			memcpy(dma, buf, len);
	}
	pthread_mutex_lock(&ctrl->admin_lock);
	if (ctrl->adminq->in_poll) {
		/* Only this thread can be inside the poll while we hold the lock. */
		pthread_mutex_unlock(&ctrl->admin_lock);
		if (dma)
			pnvme_dma_free_raw(&ctrl->dma, dma);
		return pnvme_fail(-EDEADLK, "sync admin command 0x%02x from an admin completion "
				  "callback: use the async variant", cmd->opc);
	}
	uint64_t until = pnvme_ticks() + ctrl->admin_timeout_ticks;
	do {
		uint64_t saved_tmo = ctrl->adminq->timeout_ticks;
		if (timeout_ms)
			ctrl->adminq->timeout_ticks = pnvme_ms_to_ticks(timeout_ms);
		rc = qpair_submit_raw(ctrl->adminq, cmd, dma, len, admin_wait_cb, &w);
		ctrl->adminq->timeout_ticks = saved_tmo;
		if (rc == -EAGAIN) {
			/* Queue full of async commands: reap (and recover) and retry. */
			int prc = pnvme_qpair_poll(ctrl->adminq, 0);
			ctrl_run_pending_reset(ctrl);
			if (prc < 0)
				rc = prc;
			else if ((int64_t)(pnvme_ticks() - until) >= 0)
				rc = pnvme_fail(-ETIMEDOUT, "admin queue stayed full for the admin "
						"timeout (%u ms)", ctrl->opts.admin_timeout_ms);
			else if (prc == 0)
				ctrl_wait_hook(ctrl);
		}
	} while (rc == -EAGAIN);
	pthread_mutex_unlock(&ctrl->admin_lock);
	if (rc)
		goto out;
	rc = qpair_wait_flag(ctrl->adminq, &w.done, &ctrl->admin_lock);
	if (rc)
		goto out;
	if (cqe)
		*cqe = w.cqe;
	rc = w.err;
	if (rc == 0 && len && opc_to_host(cmd->opc))
		memcpy(buf, dma, len);
	if (rc == -ETIMEDOUT)
		pnvme_fail(rc, "admin command 0x%02x timed out after %u ms", cmd->opc,
			   timeout_ms ? timeout_ms : ctrl->opts.admin_timeout_ms);
	else if (rc == -ENODEV || rc == -ECANCELED)
		pnvme_fail(rc, "admin command 0x%02x: %s", cmd->opc,
			   rc == -ENODEV ? "controller gone" : "cancelled");
	else if (rc)
		pnvme_fail(rc, "admin command 0x%02x failed: %s", cmd->opc,
			   pnvme_status_str(PNVME_CQE_STATUS(&w.cqe)));
out:
	/*
	 * A timed-out command's buffer may still be written by the device: keep
	 * it until the reset that follows every admin timeout has disabled the
	 * controller (or until close).
	 */
	if (dma && w.err == -ETIMEDOUT) {
		pthread_mutex_lock(&ctrl->admin_lock);
		void **q = realloc(ctrl->quarantine, (ctrl->nr_quarantine + 1) * sizeof(*q));
		if (q) {
			ctrl->quarantine = q;
			q[ctrl->nr_quarantine++] = dma;
		} /* else: left to pnvme_dma_fini() at close */
		pthread_mutex_unlock(&ctrl->admin_lock);
	} else if (dma) {
		pnvme_dma_free_raw(&ctrl->dma, dma);
	}
	return rc;
}

int pnvme_admin_passthru(struct pnvme_ctrl *ctrl, const struct pnvme_sqe *sqe, void *buf,
			 size_t len, struct pnvme_cqe *cqe)
{
	if (!ctrl || !sqe)
		return pnvme_fail(-EINVAL, "admin_passthru: NULL argument");
	return admin_sync(ctrl, sqe, buf, len, cqe);
}

/* ------------------------------------------------------------------------ */
/* Command builders                                                         */
/* ------------------------------------------------------------------------ */

/* Identify (Base 2.0 §5.17): CNS in CDW10 bits 7:0. */
static void cmd_identify(struct pnvme_sqe *c, uint8_t cns, uint32_t nsid)
{
	memset(c, 0, sizeof(*c));
	c->opc = PNVME_ADM_IDENTIFY;
	c->nsid = nsid;
	c->cdw10 = cns;
}

/* Get / Set Features (Base 2.0 §5.15, §5.27). */
static void cmd_features(struct pnvme_sqe *c, uint8_t opc, uint8_t fid, uint32_t nsid,
			 uint32_t cdw11, uint32_t cdw12)
{
	memset(c, 0, sizeof(*c));
	c->opc = opc;
	c->nsid = nsid;
	c->cdw10 = PNVME_SET(PNVME_FEAT_FID, fid);
	c->cdw11 = cdw11;
	c->cdw12 = cdw12;
}

/* Get Log Page (Base 2.0 §5.16): NUMD 0's based dwords split over CDW10/11. */
static int cmd_get_log(struct pnvme_sqe *c, uint8_t lid, uint32_t nsid, uint64_t offset,
		       size_t len)
{
	uint32_t numd;

	if (len == 0 || (len & 3) || (offset & 3) || len / 4 > (1ull << 32))
		return pnvme_fail(-EINVAL, "log page length %zu / offset %llu must be non-zero "
				  "multiples of 4", len, (unsigned long long)offset);
	numd = (uint32_t)(len / 4 - 1);
	memset(c, 0, sizeof(*c));
	c->opc = PNVME_ADM_GET_LOG_PAGE;
	c->nsid = nsid;
	c->cdw10 = PNVME_SET(PNVME_GLP_LID, lid) | PNVME_SET(PNVME_GLP_NUMDL, numd & 0xffffu);
	c->cdw11 = PNVME_SET(PNVME_GLP_NUMDU, numd >> 16);
	c->cdw12 = (uint32_t)offset;
	c->cdw13 = (uint32_t)(offset >> 32);
	return 0;
}

/*
 * Create I/O CQ (§5.4) / SQ (§5.5), physically contiguous; a CQ polled
 * (IEN = 0), or with interrupts on MSI-X vector `iv` (iv >= 0).
 */
static int cmd_create_q(struct pnvme_ctrl *ctrl, struct pnvme_sqe *c, uint8_t opc,
			uint16_t qid, uint16_t cqid, uint64_t iova, uint32_t qsize, int32_t iv)
{
	uint32_t mqes;

	if (!ctrl)
		return pnvme_fail(-EINVAL, "create queue %u: NULL controller", qid);
	mqes = (uint32_t)PNVME_GET(ctrl->cap, PNVME_CAP_MQES) + 1;
	if (qid == 0 || qsize < 2 || qsize > mqes || (iova & (PNVME_PAGE_SIZE - 1)))
		return pnvme_fail(-EINVAL, "create queue %u: size %u outside 2..%u or ring "
				  "IOVA 0x%llx not page aligned", qid, qsize, mqes,
				  (unsigned long long)iova);
	memset(c, 0, sizeof(*c));
	c->opc = opc;
	c->prp1 = iova;
	c->cdw10 = PNVME_SET(PNVME_CREATE_Q_QID, qid) | PNVME_SET(PNVME_CREATE_Q_QSIZE, qsize - 1);
	if (opc == PNVME_ADM_CREATE_CQ)
		c->cdw11 = PNVME_CREATE_CQ_PC |
			   (iv >= 0 ? PNVME_CREATE_CQ_IEN | PNVME_SET(PNVME_CREATE_CQ_IV, (uint32_t)iv)
				    : 0);
	else
		c->cdw11 = PNVME_CREATE_SQ_PC | PNVME_SET(PNVME_CREATE_SQ_CQID, cqid);
	return 0;
}

static void cmd_delete_q(struct pnvme_sqe *c, uint8_t opc, uint16_t qid)
{
	memset(c, 0, sizeof(*c));
	c->opc = opc;
	c->cdw10 = PNVME_SET(PNVME_CREATE_Q_QID, qid);
}

/* Abort (Base 2.0 §5.1). */
static void cmd_abort(struct pnvme_sqe *c, uint16_t sqid, uint16_t cid)
{
	memset(c, 0, sizeof(*c));
	c->opc = PNVME_ADM_ABORT;
	c->cdw10 = PNVME_SET(PNVME_ABORT_SQID, sqid) | PNVME_SET(PNVME_ABORT_CID, cid);
}

/* ------------------------------------------------------------------------ */
/* Wrappers                                                                 */
/* ------------------------------------------------------------------------ */

int pnvme_identify(struct pnvme_ctrl *ctrl, uint8_t cns, uint32_t nsid, void *buf)
{
	struct pnvme_sqe c;

	if (!ctrl || !buf)
		return pnvme_fail(-EINVAL, "identify: NULL argument");
	cmd_identify(&c, cns, nsid);
	return admin_sync(ctrl, &c, buf, PNVME_IDENTIFY_DATA_SIZE, NULL);
}

int pnvme_identify_async(struct pnvme_ctrl *ctrl, uint8_t cns, uint32_t nsid, void *dma_buf,
			 pnvme_cmd_cb cb, void *arg)
{
	struct pnvme_sqe c;

	cmd_identify(&c, cns, nsid);
	return pnvme_admin_submit(ctrl, &c, dma_buf, PNVME_IDENTIFY_DATA_SIZE, cb, arg);
}

int pnvme_get_features(struct pnvme_ctrl *ctrl, uint8_t fid, uint32_t nsid, uint32_t cdw11,
		       uint32_t *dw0)
{
	struct pnvme_sqe c;
	struct pnvme_cqe cqe;
	int rc;

	if (!ctrl)
		return pnvme_fail(-EINVAL, "get_features: NULL controller");
	cmd_features(&c, PNVME_ADM_GET_FEATURES, fid, nsid, cdw11, 0);
	rc = admin_sync(ctrl, &c, NULL, 0, &cqe);
	if (rc == 0 && dw0)
		*dw0 = cqe.dw0;
	return rc;
}

int pnvme_get_features_async(struct pnvme_ctrl *ctrl, uint8_t fid, uint32_t nsid,
			     uint32_t cdw11, pnvme_cmd_cb cb, void *arg)
{
	struct pnvme_sqe c;

	cmd_features(&c, PNVME_ADM_GET_FEATURES, fid, nsid, cdw11, 0);
	return pnvme_admin_submit(ctrl, &c, NULL, 0, cb, arg);
}

int pnvme_set_features(struct pnvme_ctrl *ctrl, uint8_t fid, uint32_t nsid, uint32_t cdw11,
		       uint32_t cdw12, uint32_t *dw0)
{
	struct pnvme_sqe c;
	struct pnvme_cqe cqe;
	int rc;

	if (!ctrl)
		return pnvme_fail(-EINVAL, "set_features: NULL controller");
	cmd_features(&c, PNVME_ADM_SET_FEATURES, fid, nsid, cdw11, cdw12);
	rc = admin_sync(ctrl, &c, NULL, 0, &cqe);
	if (rc == 0 && dw0)
		*dw0 = cqe.dw0;
	return rc;
}

int pnvme_set_features_async(struct pnvme_ctrl *ctrl, uint8_t fid, uint32_t nsid,
			     uint32_t cdw11, uint32_t cdw12, pnvme_cmd_cb cb, void *arg)
{
	struct pnvme_sqe c;

	cmd_features(&c, PNVME_ADM_SET_FEATURES, fid, nsid, cdw11, cdw12);
	return pnvme_admin_submit(ctrl, &c, NULL, 0, cb, arg);
}

int pnvme_get_log_page(struct pnvme_ctrl *ctrl, uint8_t lid, uint32_t nsid, uint64_t offset,
		       void *buf, size_t len)
{
	struct pnvme_sqe c;
	int rc;

	if (!ctrl || !buf)
		return pnvme_fail(-EINVAL, "get_log_page: NULL argument");
	rc = cmd_get_log(&c, lid, nsid, offset, len);
	if (rc)
		return rc;
	return admin_sync(ctrl, &c, buf, len, NULL);
}

int pnvme_get_log_page_async(struct pnvme_ctrl *ctrl, uint8_t lid, uint32_t nsid,
			     uint64_t offset, void *dma_buf, size_t len, pnvme_cmd_cb cb,
			     void *arg)
{
	struct pnvme_sqe c;
	int rc = cmd_get_log(&c, lid, nsid, offset, len);

	if (rc)
		return rc;
	return pnvme_admin_submit(ctrl, &c, dma_buf, len, cb, arg);
}

int pnvme_smart_log(struct pnvme_ctrl *ctrl, struct pnvme_smart_log *log)
{
	return pnvme_get_log_page(ctrl, PNVME_LOG_SMART, 0xffffffffu, 0, log, sizeof(*log));
}

int pnvme_error_log(struct pnvme_ctrl *ctrl, struct pnvme_error_log *entries, unsigned n)
{
	if (!ctrl || !entries || n == 0)
		return pnvme_fail(-EINVAL, "error_log: need a buffer for at least one entry");
	/* ELPE is 0's based: the controller keeps at most ELPE + 1 entries. */
	if (n > (unsigned)ctrl->id.elpe + 1)
		n = (unsigned)ctrl->id.elpe + 1;
	return pnvme_get_log_page(ctrl, PNVME_LOG_ERROR, 0xffffffffu, 0, entries,
				  n * sizeof(*entries));
}

int pnvme_abort(struct pnvme_ctrl *ctrl, uint16_t sqid, uint16_t cid, bool *aborted)
{
	struct pnvme_sqe c;
	struct pnvme_cqe cqe;
	int rc;

	if (!ctrl)
		return pnvme_fail(-EINVAL, "abort: NULL controller");
	cmd_abort(&c, sqid, cid);
	rc = admin_sync(ctrl, &c, NULL, 0, &cqe);
	if (rc == 0 && aborted)
		*aborted = !(cqe.dw0 & PNVME_ABORT_NOT_ABORTED);
	return rc;
}

int pnvme_abort_async(struct pnvme_ctrl *ctrl, uint16_t sqid, uint16_t cid, pnvme_cmd_cb cb,
		      void *arg)
{
	struct pnvme_sqe c;

	cmd_abort(&c, sqid, cid);
	return pnvme_admin_submit(ctrl, &c, NULL, 0, cb, arg);
}

int pnvme_create_io_cq(struct pnvme_ctrl *ctrl, uint16_t qid, uint64_t iova, uint32_t qsize)
{
	return ctrl_create_io_cq_irq(ctrl, qid, iova, qsize, -1);
}

int ctrl_create_io_cq_irq(struct pnvme_ctrl *ctrl, uint16_t qid, uint64_t iova, uint32_t qsize,
			  int32_t iv)
{
	struct pnvme_sqe c;
	int rc = cmd_create_q(ctrl, &c, PNVME_ADM_CREATE_CQ, qid, 0, iova, qsize, iv);

	return rc ? rc : admin_sync(ctrl, &c, NULL, 0, NULL);
}

int pnvme_create_io_sq(struct pnvme_ctrl *ctrl, uint16_t qid, uint16_t cqid, uint64_t iova,
		       uint32_t qsize)
{
	struct pnvme_sqe c;
	int rc = cmd_create_q(ctrl, &c, PNVME_ADM_CREATE_SQ, qid, cqid, iova, qsize, -1);

	return rc ? rc : admin_sync(ctrl, &c, NULL, 0, NULL);
}

int pnvme_delete_io_cq(struct pnvme_ctrl *ctrl, uint16_t qid)
{
	struct pnvme_sqe c;

	cmd_delete_q(&c, PNVME_ADM_DELETE_CQ, qid);
	return admin_sync(ctrl, &c, NULL, 0, NULL);
}

int pnvme_delete_io_sq(struct pnvme_ctrl *ctrl, uint16_t qid)
{
	struct pnvme_sqe c;

	cmd_delete_q(&c, PNVME_ADM_DELETE_SQ, qid);
	return admin_sync(ctrl, &c, NULL, 0, NULL);
}

int pnvme_create_io_cq_async(struct pnvme_ctrl *ctrl, uint16_t qid, uint64_t iova,
			     uint32_t qsize, pnvme_cmd_cb cb, void *arg)
{
	struct pnvme_sqe c;
	int rc = cmd_create_q(ctrl, &c, PNVME_ADM_CREATE_CQ, qid, 0, iova, qsize, -1);

	return rc ? rc : pnvme_admin_submit(ctrl, &c, NULL, 0, cb, arg);
}

int pnvme_create_io_sq_async(struct pnvme_ctrl *ctrl, uint16_t qid, uint16_t cqid,
			     uint64_t iova, uint32_t qsize, pnvme_cmd_cb cb, void *arg)
{
	struct pnvme_sqe c;
	int rc = cmd_create_q(ctrl, &c, PNVME_ADM_CREATE_SQ, qid, cqid, iova, qsize, -1);

	return rc ? rc : pnvme_admin_submit(ctrl, &c, NULL, 0, cb, arg);
}

int pnvme_delete_io_cq_async(struct pnvme_ctrl *ctrl, uint16_t qid, pnvme_cmd_cb cb,
			     void *arg)
{
	struct pnvme_sqe c;

	cmd_delete_q(&c, PNVME_ADM_DELETE_CQ, qid);
	return pnvme_admin_submit(ctrl, &c, NULL, 0, cb, arg);
}

int pnvme_delete_io_sq_async(struct pnvme_ctrl *ctrl, uint16_t qid, pnvme_cmd_cb cb,
			     void *arg)
{
	struct pnvme_sqe c;

	cmd_delete_q(&c, PNVME_ADM_DELETE_SQ, qid);
	return pnvme_admin_submit(ctrl, &c, NULL, 0, cb, arg);
}

/* ------------------------------------------------------------------------ */
/* Format NVM, Sanitize, firmware slot log                                  */
/* ------------------------------------------------------------------------ */

/* Default Format NVM timeout: formats of large drives take minutes (nvme-cli waits 600 s). */
#define FORMAT_TIMEOUT_MS 600000u


/* The I/O queue pair with requests outstanding, if any (admin lock held). */
static const struct pnvme_qpair *busy_qpair(const struct pnvme_ctrl *ctrl)
{
	for (const struct pnvme_qpair *q = ctrl->qpairs; q; q = q->next)
		if (pnvme_qpair_outstanding(q) != 0)
			return q;
	return NULL;
}

/* Base 2.0 §5.23 / NVM 1.0 §4.1: Format NVM CDW10 from the options, checked. */
static int format_cdw10(struct pnvme_ctrl *ctrl, uint32_t nsid,
			const struct pnvme_format_opts *o, uint32_t *cdw10)
{
	const struct pnvme_ns *ns = nsid == PNVME_NSID_ALL ? pnvme_ctrl_ns_at(ctrl, 0)
							   : pnvme_ctrl_ns(ctrl, nsid);

	if (!(ctrl->id.oacs & PNVME_OACS_FORMAT))
		return pnvme_fail(-EOPNOTSUPP, "format: the controller does not support Format "
				  "NVM (Identify Controller OACS bit 1 is 0)");
	if (nsid == PNVME_NSID_ALL && (ctrl->id.fna & PNVME_FNA_FNVMBS))
		return pnvme_fail(-EOPNOTSUPP, "format: the controller does not take NSID "
				  "FFFFFFFFh for Format NVM (FNA bit 3): name a namespace");
	if (nsid != PNVME_NSID_ALL && !ns)
		return pnvme_fail(-EINVAL, "format: namespace %u is not active", nsid);
	if (o->lbaf > 63 || (ns && o->lbaf > ns->id.nlbaf))
		return pnvme_fail(-EINVAL, "format: LBA format %u does not exist (the namespace "
				  "has formats 0..%u)", o->lbaf, ns ? ns->id.nlbaf : 63u);
	if (o->pi > 3 || o->mset > 1 || o->pil > 1)
		return pnvme_fail(-EINVAL, "format: protection type %u (0..3), mset %u, pil %u "
				  "(0 or 1)", o->pi, o->mset, o->pil);
	if (ns && o->pi && PNVME_GET(ns->id.lbaf[o->lbaf], PNVME_LBAF_MS) < 8)
		return pnvme_fail(-EINVAL, "format: protection information needs 8 bytes of "
				  "metadata; LBA format %u has %u", o->lbaf,
				  (unsigned)PNVME_GET(ns->id.lbaf[o->lbaf], PNVME_LBAF_MS));
	if (o->ses > PNVME_SES_CRYPTO)
		return pnvme_fail(-EINVAL, "format: secure erase setting %u (0 none, 1 user data, "
				  "2 cryptographic)", o->ses);
	if (o->ses == PNVME_SES_CRYPTO && !(ctrl->id.fna & PNVME_FNA_CRYES))
		return pnvme_fail(-EOPNOTSUPP, "format: the controller does not support "
				  "cryptographic erase (FNA bit 2 is 0)");
	*cdw10 = PNVME_FORMAT_LBAF(o->lbaf) | (o->mset ? PNVME_FORMAT_MSET : 0) |
		 PNVME_SET(PNVME_FORMAT_PI, o->pi) | (o->pil ? PNVME_FORMAT_PIL : 0) |
		 PNVME_SET(PNVME_FORMAT_SES, o->ses);
	return 0;
}

int pnvme_format_nvm(struct pnvme_ctrl *ctrl, uint32_t nsid, const struct pnvme_format_opts *opts)
{
	struct pnvme_format_opts dflt = { 0 };
	const struct pnvme_qpair *busy;
	struct pnvme_sqe c;
	uint32_t cdw10 = 0, tmo;
	bool all;
	int rc;

	if (!ctrl)
		return pnvme_fail(-EINVAL, "format: NULL controller");
	if (!opts)
		opts = &dflt;
	if (nsid == 0)
		return pnvme_fail(-EINVAL, "format: namespace 0 (name one, or PNVME_NSID_ALL)");
	rc = format_cdw10(ctrl, nsid, opts, &cdw10);
	if (rc)
		return rc;
	pthread_mutex_lock(&ctrl->admin_lock);
	busy = busy_qpair(ctrl);
	pthread_mutex_unlock(&ctrl->admin_lock);
	if (busy)
		return pnvme_fail(-EBUSY, "format: I/O queue pair %u has %u request(s) "
				  "outstanding: quiesce I/O first", pnvme_qpair_id(busy),
				  pnvme_qpair_outstanding(busy));
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_FORMAT_NVM;
	c.nsid = nsid;
	c.cdw10 = cdw10;
	tmo = opts->timeout_ms ? opts->timeout_ms : FORMAT_TIMEOUT_MS;
	if (!opts->timeout_ms && tmo < ctrl->opts.admin_timeout_ms)
		tmo = ctrl->opts.admin_timeout_ms;
	log_info("Format NVM: namespace 0x%x, LBA format %u, mset %u, pi %u, pil %u, ses %u",
		 nsid, opts->lbaf, opts->mset, opts->pi, opts->pil, opts->ses);
	rc = admin_sync_tmo(ctrl, &c, NULL, 0, NULL, tmo);
	if (rc)
		return rc;
	/*
	 * The format changed what Identify Namespace reports: read it again for
	 * the namespace, or for all of them with NSID FFFFFFFFh or a controller
	 * whose formats apply to every namespace (FNA bit 0). The array is
	 * updated in place, so pnvme_ns pointers stay valid.
	 */
	all = nsid == PNVME_NSID_ALL || (ctrl->id.fna & PNVME_FNA_FNS);
	return ctrl_ns_rescan(ctrl, &nsid, 1, all);
}

/* SANICAP bit each sanitize action needs (Base 2.0 §5.24, Figure 275). */
static uint32_t sanact_cap(enum pnvme_sanact a)
{
	switch (a) {
	case PNVME_SANACT_BLOCK_ERASE:  return PNVME_SANICAP_BES;
	case PNVME_SANACT_OVERWRITE:    return PNVME_SANICAP_OWS;
	case PNVME_SANACT_CRYPTO_ERASE: return PNVME_SANICAP_CES;
	default:                        return PNVME_SANICAP_BES | PNVME_SANICAP_OWS |
					       PNVME_SANICAP_CES;
	}
}

static const char *sanact_name(enum pnvme_sanact a)
{
	switch (a) {
	case PNVME_SANACT_EXIT_FAILURE: return "exit failure mode";
	case PNVME_SANACT_BLOCK_ERASE:  return "block erase";
	case PNVME_SANACT_OVERWRITE:    return "overwrite";
	case PNVME_SANACT_CRYPTO_ERASE: return "crypto erase";
	default:                        return "?";
	}
}

int pnvme_sanitize(struct pnvme_ctrl *ctrl, enum pnvme_sanact action, uint32_t flags,
		   uint32_t ovrpat)
{
	const uint32_t allowed = PNVME_SANITIZE_AUSE | PNVME_SANITIZE_OIPBP | PNVME_SANITIZE_NDAS |
				 PNVME_SET(PNVME_SANITIZE_OWPASS, PNVME_SANITIZE_OWPASS_MASK);
	struct pnvme_sqe c;

	if (!ctrl)
		return pnvme_fail(-EINVAL, "sanitize: NULL controller");
	if (action < PNVME_SANACT_EXIT_FAILURE || action > PNVME_SANACT_CRYPTO_ERASE)
		return pnvme_fail(-EINVAL, "sanitize: unknown action %d", (int)action);
	if (flags & ~allowed)
		return pnvme_fail(-EINVAL, "sanitize: unknown flag bits 0x%x", flags & ~allowed);
	if ((flags & (PNVME_SANITIZE_OIPBP | PNVME_SET(PNVME_SANITIZE_OWPASS,
							   PNVME_SANITIZE_OWPASS_MASK))) &&
	    action != PNVME_SANACT_OVERWRITE)
		return pnvme_fail(-EINVAL, "sanitize: overwrite passes / pattern inversion apply "
				  "to the overwrite action only");
	if (!(ctrl->id.sanicap & sanact_cap(action)))
		return pnvme_fail(-EOPNOTSUPP, "sanitize: the controller does not support %s "
				  "(Identify Controller SANICAP 0x%x)", action == PNVME_SANACT_EXIT_FAILURE ?
				  "the Sanitize command" : sanact_name(action), ctrl->id.sanicap);
	if ((flags & PNVME_SANITIZE_NDAS) && (ctrl->id.sanicap & PNVME_SANICAP_NDI))
		return pnvme_fail(-EOPNOTSUPP, "sanitize: the controller inhibits No-Deallocate "
				  "After Sanitize (SANICAP NDI)");
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_SANITIZE;
	c.cdw10 = PNVME_SET(PNVME_SANITIZE_SANACT, (uint32_t)action) | flags;
	c.cdw11 = ovrpat;
	log_info("Sanitize: %s (CDW10 0x%x)", sanact_name(action), c.cdw10);
	return admin_sync(ctrl, &c, NULL, 0, NULL);
}

int pnvme_sanitize_log(struct pnvme_ctrl *ctrl, struct pnvme_sanitize_log *log)
{
	if (!ctrl || !log)
		return pnvme_fail(-EINVAL, "sanitize_log: NULL argument");
	if (!(ctrl->id.sanicap & (PNVME_SANICAP_BES | PNVME_SANICAP_OWS | PNVME_SANICAP_CES)))
		return pnvme_fail(-EOPNOTSUPP, "sanitize_log: the controller does not support "
				  "sanitize (SANICAP 0x%x), so it has no Sanitize Status log",
				  ctrl->id.sanicap);
	return pnvme_get_log_page(ctrl, PNVME_LOG_SANITIZE, PNVME_NSID_ALL, 0, log, sizeof(*log));
}

int pnvme_fw_log(struct pnvme_ctrl *ctrl, struct pnvme_fw_slot_log *log)
{
	if (!ctrl || !log)
		return pnvme_fail(-EINVAL, "fw_log: NULL argument");
	/* Base 2.0 §5.16.1.4: mandatory, controller wide (NSID 0 or FFFFFFFFh). */
	return pnvme_get_log_page(ctrl, PNVME_LOG_FW_SLOT, PNVME_NSID_ALL, 0, log, sizeof(*log));
}
