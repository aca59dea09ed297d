/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tgt_io.c - NVM commands of the target (NVM Command Set 1.0 §3): Read,
 * Write, Flush, Write Zeroes and Dataset Management, passed to the queue
 * pair the polling group owns on the namespace's backend controller. The
 * data buffer is the backend's DMA memory the connection received into (or
 * will send from): no copy. No lock: the group's thread owns the queue pair,
 * the buffers and the requests.
 *
 * A backend queue pair that is full (-EAGAIN) parks the request on the
 * group's wait list, in order; each round retries it after reaping.
 */
#include <errno.h>
#include <string.h>

#include <pnvme/qpair.h>

#include "internal.h"
#include "tgt/tgt_priv.h"

static void io_done(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct tgt_req *req = arg;
	struct tgt_conn *c = req->conn;

	c->g->bq[req->ns->backend].outstanding--;
	c->at_backend--;
	req->backend = false;
	/* The backend's status reaches the host as it is (SCT, SC, DNR, More). */
	if (cqe)
		req->status = PNVME_CQE_STATUS(cqe);
	else
		req->status = err ? PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INTERNAL) : 0;
	if (err && !req->status)
		req->status = PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INTERNAL);
	tgt_req_complete(req);
}

/* An errno of a submission the parse step did not foresee, as a status. */
static uint16_t errno_status(int rc)
{
	switch (rc) {
	case -ERANGE: return TGT_GEN(PNVME_SC_LBA_RANGE);
	case -EINVAL: return TGT_GEN(PNVME_SC_INVALID_FIELD);
	case -ENODEV: return PNVME_STATUS(PNVME_SCT_PATH, PNVME_SC_CTRL_PATH_ERROR);
	default:      return PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INTERNAL);
	}
}

/* Post the command to the backend; 0, -EAGAIN (queue full) or another errno. */
static int submit(struct tgt_req *req, struct tgt_bq *bq)
{
	const struct pnvme_sqe *sqe = &req->sqe;
	const struct pnvme_ns *bns = req->ns->bns;
	uint64_t slba = sqe->cdw10 | (uint64_t)sqe->cdw11 << 32;
	uint32_t nlb = PNVME_GET(sqe->cdw12, PNVME_RW_NLB) + 1u;
	uint32_t flags = sqe->cdw12 & (PNVME_RW_FUA | PNVME_RW_LR);

	switch (sqe->opc) {
	case PNVME_NVM_READ:
		return pnvme_read(bq->qp, bns, req->buf, slba, nlb, flags, io_done, req);
	case PNVME_NVM_WRITE:
		return pnvme_write(bq->qp, bns, req->buf, slba, nlb, flags, io_done, req);
	case PNVME_NVM_FLUSH:
		return pnvme_flush(bq->qp, bns, io_done, req);
	case PNVME_NVM_WRITE_ZEROES:
		return pnvme_write_zeroes(bq->qp, bns, slba, nlb,
					  flags | (sqe->cdw12 & PNVME_RW_DEAC), io_done, req);
	case PNVME_NVM_DSM:
		return pnvme_dsm(bq->qp, bns, (const struct pnvme_dsm_range *)(void *)req->buf,
				 PNVME_GET(sqe->cdw10, PNVME_DSM_NR) + 1u, sqe->cdw11 & 7u, io_done, req);
	default:
		return -EINVAL; /* parse_io lets nothing else through */
	}
}

static void wait_push(struct tgt_group *g, struct tgt_req *req)
{
	req->wnext = NULL;
	if (g->wait_tail)
		g->wait_tail->wnext = req;
	else
		g->wait_head = req;
	g->wait_tail = req;
}

/* Try to submit; true when the request left this function's hands (submitted or answered). */
static bool try_submit(struct tgt_req *req)
{
	struct tgt_conn *c = req->conn;
	struct tgt_bq *bq = tgt_bq_get(c->g, req->ns->backend);
	int rc;

	if (!bq) {
		req->status = PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_NS_NOT_READY);
		tgt_req_complete(req);
		return true;
	}
	rc = submit(req, bq);
	if (rc == -EAGAIN)
		return false;
	if (rc) {
		req->status = errno_status(rc);
		tgt_req_complete(req);
		return true;
	}
	req->backend = true;
	bq->outstanding++;
	c->at_backend++;
	return true;
}

void tgt_exec_io(struct tgt_req *req)
{
	struct tgt_group *g = req->conn->g;

	/* Keep the order: behind requests already waiting for room. */
	if (g->wait_head || !try_submit(req))
		wait_push(g, req);
}

int tgt_io_retry(struct tgt_group *g)
{
	int n = 0;

	while (g->wait_head) {
		struct tgt_req *req = g->wait_head;

		if (!try_submit(req))
			break;
		g->wait_head = req->wnext;
		if (!g->wait_head)
			g->wait_tail = NULL;
		n++;
	}
	return n;
}
