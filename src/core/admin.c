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
int admin_sync(struct pnvme_ctrl *ctrl, const struct pnvme_sqe *cmd, void *buf, size_t len,
	       struct pnvme_cqe *cqe)
{
	struct admin_wait w = { 0 };
	void *dma = NULL;
	int rc;

	if (!ctrl || !cmd)
		return pnvme_fail(-EINVAL, "admin command: NULL controller or command");
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
		rc = qpair_submit_raw(ctrl->adminq, cmd, dma, len, admin_wait_cb, &w);
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
			   ctrl->opts.admin_timeout_ms);
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

/* Create I/O CQ (§5.4) / SQ (§5.5), physically contiguous, polled (IEN = 0). */
static int cmd_create_q(struct pnvme_ctrl *ctrl, struct pnvme_sqe *c, uint8_t opc,
			uint16_t qid, uint16_t cqid, uint64_t iova, uint32_t qsize)
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
		c->cdw11 = PNVME_CREATE_CQ_PC;
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
	struct pnvme_sqe c;
	int rc = cmd_create_q(ctrl, &c, PNVME_ADM_CREATE_CQ, qid, 0, iova, qsize);

	return rc ? rc : admin_sync(ctrl, &c, NULL, 0, NULL);
}

int pnvme_create_io_sq(struct pnvme_ctrl *ctrl, uint16_t qid, uint16_t cqid, uint64_t iova,
		       uint32_t qsize)
{
	struct pnvme_sqe c;
	int rc = cmd_create_q(ctrl, &c, PNVME_ADM_CREATE_SQ, qid, cqid, iova, qsize);

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
	int rc = cmd_create_q(ctrl, &c, PNVME_ADM_CREATE_CQ, qid, 0, iova, qsize);

	return rc ? rc : pnvme_admin_submit(ctrl, &c, NULL, 0, cb, arg);
}

int pnvme_create_io_sq_async(struct pnvme_ctrl *ctrl, uint16_t qid, uint16_t cqid,
			     uint64_t iova, uint32_t qsize, pnvme_cmd_cb cb, void *arg)
{
	struct pnvme_sqe c;
	int rc = cmd_create_q(ctrl, &c, PNVME_ADM_CREATE_SQ, qid, cqid, iova, qsize);

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
