/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * req.c - prepared requests (pnvme/req.h): a Read or Write (NVM Command Set
 * 1.0 §3.2.4, §3.2.6) checked and built once, submitted many times.
 *
 * A prepared request holds one tracker of its queue pair from prepare to
 * release (trk->owned: completions leave it off the free stack), with the
 * callback, its argument and, for transfers of more than two pages, the PRP
 * list already in place. The request keeps the command's template (opcode,
 * NSID, PRP entries, NLB and flags) and the last starting LBA that fits.
 * A submission copies the template into the SQ slot at the tail, adds the
 * command id (the tracker's next generation) and the SLBA, and commits the
 * tracker as every submission does (pcie/ring.h: deadline, SQ slot, retry
 * copy, doorbell). What it trusts from the last check is re-checked when the
 * controller's DMA epoch moved (a free of DMA memory, a namespace change).
 */
#include <string.h>

#include "core/ctrl_priv.h"
#include "pcie/ring.h"
#include "tcp/host.h"

#include <pnvme/req.h>

/*
 * Check `ns`, `buf`, `nlb` and `io_flags` for queue pair `qp` and build the
 * template (and the PRP list in `trk`'s page) into `req`. The epoch is read
 * first: a free that races with the check moves it again, and the next
 * submission checks once more.
 */
static int req_build(struct pnvme_qpair *qp, struct pnvme_req *req, const struct pnvme_ns *ns,
		     uint8_t opc, const void *buf, uint32_t nlb, uint32_t io_flags,
		     struct pnvme_tracker *trk, const char *fn)
{
	uint64_t epoch = __atomic_load_n(&qp->dma->epoch, __ATOMIC_ACQUIRE);
	struct pnvme_sqe t;
	size_t len;

	if (ns->removed)
		return pnvme_fail(-ENODEV, "%s: namespace %u was removed", fn, ns->nsid);
	if (ns->ms)
		return pnvme_fail(-EINVAL, "%s: namespace %u has %u bytes of metadata per block: "
				  "prepared requests carry none (use pnvme_%s_md())", fn, ns->nsid,
				  ns->ms, opc == PNVME_NVM_READ ? "read" : "write");
	if (nlb == 0 || nlb > ns->max_lbas)
		return pnvme_fail(-EINVAL, "%s: %u blocks: a prepared request is one command of "
				  "1..%u blocks (MDTS %u bytes)", fn, nlb, ns->max_lbas, ns->max_xfer);
	if (io_flags & ~(PNVME_IO_FUA | PNVME_IO_LR))
		return pnvme_fail(-EINVAL, "%s: unsupported I/O flags 0x%x (PNVME_IO_FUA, "
				  "PNVME_IO_LR)", fn, io_flags);
	if (nlb > ns->nlba)
		return pnvme_fail(-ERANGE, "%s: %u blocks do not fit namespace %u (%llu blocks)",
				  fn, nlb, ns->nsid, (unsigned long long)ns->nlba);
	len = (size_t)nlb << ns->lba_shift; /* no metadata: block_bytes == lba_size */
	memset(&t, 0, sizeof(t));
	t.opc = opc;
	t.nsid = ns->nsid;
	t.cdw12 = (nlb - 1) | io_flags; /* NLB, 0's based; FUA, LR */
	if (qp->tq) {
		tcp_sqe_data(&t, buf, len); /* fabrics: an SGL, any memory (tcp/host.h) */
	} else if (build_prps(qp, trk, buf, len, &t) != 0) {
		return pnvme_fail(-EINVAL, "%s: %s", fn, pnvme_last_error());
	}
	req->sqe = t;
	req->ns = ns;
	req->buf = buf;
	req->nlb = nlb;
	req->io_flags = io_flags;
	req->last_slba = ns->nlba - nlb;
	req->epoch = epoch;
	return 0;
}

static int req_prep(struct pnvme_qpair *qp, struct pnvme_req *req, const struct pnvme_ns *ns,
		    uint8_t opc, const void *buf, uint32_t nlb, uint32_t io_flags, pnvme_cmd_cb cb,
		    void *arg, const char *fn)
{
	struct pnvme_tracker *trk;
	uint16_t idx;
	int rc;

	if (!qp || !req || !ns || !buf)
		return pnvme_fail(-EINVAL, "%s: NULL %s", fn, !qp ? "queue pair" : !req ? "request"
							      : !ns ? "namespace" : "buffer");
	if (ns->ctrl != qp->ctrl)
		return pnvme_fail(-EINVAL, "%s: namespace belongs to another controller (NSID %u)",
				  fn, ns->nsid);
	if (qpair_gone_flag(qp))
		return qpair_gone(qp);
	if (qp->nr_free == 0)
		return pnvme_fail(-EAGAIN, "%s: all %u request slots of queue %u are taken "
				  "(outstanding: %u, prepared requests: %u)", fn, qp->nr_trk,
				  qp->qid, qpair_outstanding(qp), qp->nr_owned);
	idx = qp->free_cids[--qp->nr_free];
	trk = &qp->trk[idx];
	rc = req_build(qp, req, ns, opc, buf, nlb, io_flags, trk, fn);
	if (rc) {
		qp->free_cids[qp->nr_free++] = idx;
		return rc;
	}
	trk->owned = 1;
	trk->cb = cb ? cb : noop_cb;
	trk->arg = arg;
	trk->opc = opc;
	qp->nr_owned++;
	req->qp = qp;
	req->trk = trk;
	return 0;
}

int pnvme_req_prep_read(struct pnvme_qpair *qp, struct pnvme_req *req,
			const struct pnvme_ns *ns, void *buf, uint32_t nlb, uint32_t io_flags,
			pnvme_cmd_cb cb, void *arg)
{
	return req_prep(qp, req, ns, PNVME_NVM_READ, buf, nlb, io_flags, cb, arg,
			"pnvme_req_prep_read");
}

int pnvme_req_prep_write(struct pnvme_qpair *qp, struct pnvme_req *req,
			 const struct pnvme_ns *ns, const void *buf, uint32_t nlb,
			 uint32_t io_flags, pnvme_cmd_cb cb, void *arg)
{
	return req_prep(qp, req, ns, PNVME_NVM_WRITE, buf, nlb, io_flags, cb, arg,
			"pnvme_req_prep_write");
}

/*
 * Post the request at the tail: its template, the tracker's next command id
 * (the generation the completion is checked against), the SLBA (CDW10/11).
 */
static ALWAYS_INLINE int req_post(struct pnvme_qpair *qp, const struct pnvme_req *req,
				   struct pnvme_tracker *trk, uint64_t slba)
{
	struct pnvme_sqe *sqe = &qp->sq[qp->sq_tail];
	uint16_t cid = (uint16_t)(trk->cid + (1u << CID_IDX_BITS));

	*sqe = req->sqe;
	sqe->cid = cid;
	memcpy(&sqe->cdw10, &slba, 8);
	trk->cid = cid;
	return sqe_commit(qp, trk, sqe);
}

static __attribute__((cold, noinline)) int req_bad(const struct pnvme_qpair *qp,
						   const struct pnvme_req *req)
{
	if (!qp || !req)
		return pnvme_fail(-EINVAL, "pnvme_req_submit: NULL %s", !qp ? "queue pair"
									  : "request");
	if (!req->qp)
		return pnvme_fail(-EINVAL, "pnvme_req_submit: the request is not prepared "
				  "(released)");
	return pnvme_fail(-EINVAL, "pnvme_req_submit: the request was prepared on queue %u, "
			  "not on queue %u", req->qp->qid, qp->qid);
}

/*
 * Everything the fast path leaves out: a request in flight, a stopped queue
 * pair, a moved epoch (check buffer and namespace again), an LBA range
 * outside the namespace.
 */
static __attribute__((noinline)) int req_submit_slow(struct pnvme_qpair *qp, struct pnvme_req *req,
						     uint64_t slba)
{
	struct pnvme_tracker *trk = req->trk;
	const struct pnvme_ns *ns = req->ns;
	int rc;

	if (trk->state != TRK_FREE)
		return pnvme_fail(-EBUSY, "pnvme_req_submit: the request is in flight (submitted, "
				  "its callback has not run yet)");
	if (qpair_gone_flag(qp))
		return qpair_gone(qp);
	if (req->epoch != __atomic_load_n(&qp->dma->epoch, __ATOMIC_ACQUIRE)) {
		rc = req_build(qp, req, ns, req->sqe.opc, req->buf, req->nlb, req->io_flags, trk,
			       "pnvme_req_submit");
		if (rc)
			return rc;
	}
	if (slba > req->last_slba)
		return pnvme_fail(-ERANGE, "pnvme_req_submit: LBA range %llu+%u outside namespace "
				  "%u (%llu blocks)", (unsigned long long)slba, req->nlb, ns->nsid,
				  (unsigned long long)ns->nlba);
	return req_post(qp, req, trk, slba);
}

int pnvme_req_submit(struct pnvme_qpair *qp, struct pnvme_req *req, uint64_t slba)
{
	if (unlikely(qp == NULL || req == NULL || req->qp != qp))
		return req_bad(qp, req);
	struct pnvme_tracker *trk = req->trk;
	/*
	 * One load and compare each: not in flight, inside the namespace, the
	 * checks of the buffer and namespace still hold, the queue pair lives.
	 */
	if (unlikely(trk->state != TRK_FREE || slba > req->last_slba ||
		     req->epoch != __atomic_load_n(&qp->dma->epoch, __ATOMIC_RELAXED) ||
		     qpair_gone_flag(qp)))
		return req_submit_slow(qp, req, slba);
	return req_post(qp, req, trk, slba);
}

int pnvme_req_release(struct pnvme_req *req)
{
	struct pnvme_qpair *qp;
	struct pnvme_tracker *trk;

	if (!req || !req->qp)
		return 0;
	qp = req->qp;
	trk = req->trk;
	if (trk->state != TRK_FREE)
		return pnvme_fail(-EBUSY, "pnvme_req_release: the request is in flight");
	trk->owned = 0;
	trk->cb = NULL;
	trk->arg = NULL;
	qp->free_cids[qp->nr_free++] = (uint16_t)(trk - qp->trk);
	qp->nr_owned--;
	req->qp = NULL;
	req->trk = NULL;
	return 0;
}
