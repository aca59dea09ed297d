/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * io.c - the NVM I/O commands (NVM Command Set 1.0 §3): Read and Write (the
 * fast path, submit_rw, and everything it leaves to submit_rw_slow: errors,
 * metadata, protection information), Flush, Write Zeroes, Dataset
 * Management, I/O passthrough, and their synchronous forms. Each builds its
 * SQE in place in the queue pair's ring with the inline steps of
 * pcie/ring.h; on NVMe/TCP the data is described by an SGL instead of PRPs
 * (tcp/host.h).
 */
#include <stdlib.h>
#include <string.h>

#include "core/ctrl_priv.h"
#include "pcie/ring.h"
#include "tcp/host.h"

/* ------------------------------------------------------------------------ */
/* NVM I/O commands (NVM Command Set 1.0 §3)                                */
/* ------------------------------------------------------------------------ */

/*
 * Every I/O call takes a queue pair and a namespace of the same controller
 * (struct pnvme_ns carries its owner). io_args_ok() is the test, io_args_fail()
 * the message, out of line since only bad calls get there.
 */
static inline bool io_args_ok(const struct pnvme_qpair *qp, const struct pnvme_ns *ns)
{
	return likely(qp != NULL && ns != NULL && ns->ctrl == qp->ctrl);
}

static __attribute__((cold, noinline)) int io_args_fail(const struct pnvme_qpair *qp,
							const struct pnvme_ns *ns,
							const char *fn)
{
	if (!qp || !ns)
		return pnvme_fail(-EINVAL, "%s: NULL %s", fn, !qp ? "queue pair" : "namespace");
	return pnvme_fail(-EINVAL, "%s: namespace belongs to another controller (NSID %u)", fn,
			  ns->nsid);
}

static inline int check_range(const struct pnvme_ns *ns, uint64_t slba, uint32_t nlb)
{
	if (unlikely(nlb == 0 || slba >= ns->nlba || nlb > ns->nlba - slba)) {
		if (ns->removed)
			return pnvme_fail(-ENODEV, "namespace %u was removed", ns->nsid);
		return pnvme_fail(nlb == 0 ? -EINVAL : -ERANGE,
				  "LBA range %llu+%u outside namespace %u (%llu blocks)",
				  (unsigned long long)slba, nlb, ns->nsid,
				  (unsigned long long)ns->nlba);
	}
	return 0;
}

/* Fill a Read / Write SQE: 64-bit stores of CDW0 + NSID, CDW2/3, MPTR, CDW10-15. */
static ALWAYS_INLINE void rw_sqe(struct pnvme_sqe *sqe, uint8_t opc, uint16_t cid, uint32_t nsid,
				 uint64_t mptr, uint64_t slba, uint32_t cdw12, uint32_t cdw14,
				 uint32_t cdw15)
{
	uint64_t w0 = (uint64_t)opc | (uint64_t)cid << 16 | (uint64_t)nsid << 32;
	uint64_t w12 = (uint64_t)cdw12;
	uint64_t w14 = (uint64_t)cdw14 | (uint64_t)cdw15 << 32;
	uint64_t zero = 0;

	memcpy(&sqe->opc, &w0, 8);
	memcpy(&sqe->cdw2, &zero, 8);
	sqe->mptr = mptr;
	memcpy(&sqe->cdw10, &slba, 8);
	memcpy(&sqe->cdw12, &w12, 8);
	memcpy(&sqe->cdw14, &w14, 8);
}

static int submit_rw_slow(struct pnvme_qpair *qp, const struct pnvme_ns *ns, uint8_t opc,
			  const void *buf, const void *md, uint64_t slba, uint32_t nlb,
			  uint32_t io_flags, uint16_t apptag, uint16_t apptag_mask, pnvme_cmd_cb cb,
			  void *arg);

/* ------------------------------------------------------------------------ */
/* Requests larger than one command (MDTS): split into children              */
/* ------------------------------------------------------------------------ */

/*
 * A Read or Write of more blocks than one command may carry (max_lbas, from
 * MDTS) becomes child commands of at most max_lbas blocks each, cut also at
 * the namespace's optimal I/O boundary (NOIOB, NVM 1.0c Figure 97) when it
 * reports one, as SPDK's driver does. The parent's callback runs exactly
 * once, after the last child, with the first error (and that child's CQE;
 * else the last child's). Rule for a full queue: the children that fit are
 * submitted at once; the rest go out from the completion callbacks of the
 * earlier ones (each completion frees a tracker), in LBA order. If not even
 * the first child fits, nothing is submitted and the call returns -EAGAIN.
 * After an error no further child is submitted. A queue pair created with
 * PNVME_QPAIR_NO_SPLIT refuses such requests instead (-EINVAL).
 */
struct split_req {
	struct pnvme_qpair *qp;
	const struct pnvme_ns *ns;
	pnvme_cmd_cb cb;
	void *arg;
	const uint8_t *buf;
	const uint8_t *md;
	uint64_t slba, next, end;   /* first LBA, next child's, end of the request */
	uint32_t bpb, mpb;          /* buffer / metadata bytes per block */
	uint32_t io_flags;
	uint32_t inflight;
	uint16_t apptag, apptag_mask;
	uint8_t  opc;
	bool     in_submit;
	int      err;
	struct pnvme_cqe cqe;
};

static void split_cb(void *arg, int err, const struct pnvme_cqe *cqe);

static uint32_t child_nlb(const struct split_req *sr)
{
	uint64_t n = sr->end - sr->next;
	uint32_t noiob = sr->ns->id.noiob;

	if (n > sr->ns->max_lbas)
		n = sr->ns->max_lbas;
	if (noiob && n > noiob - sr->next % noiob)
		n = noiob - sr->next % noiob; /* end the child on the boundary */
	return (uint32_t)n;
}

static void split_done(struct split_req *sr)
{
	pnvme_cmd_cb cb = sr->cb;
	void *arg = sr->arg;
	struct pnvme_cqe cqe = sr->cqe;
	int err = sr->err;

	free(sr);
	cb(arg, err, &cqe);
}

/* Submit children while trackers are free. Returns how many went out. */
static uint32_t split_more(struct split_req *sr)
{
	uint32_t sent = 0;

	sr->in_submit = true;
	while (sr->next < sr->end && !sr->err) {
		uint32_t nlb = child_nlb(sr);
		uint64_t off = sr->next - sr->slba;
		int rc = submit_rw_slow(sr->qp, sr->ns, sr->opc, sr->buf + off * sr->bpb,
					sr->md ? sr->md + off * sr->mpb : NULL, sr->next, nlb,
					sr->io_flags, sr->apptag, sr->apptag_mask, split_cb, sr);
		if (rc == -EAGAIN)
			break; /* the next completion submits it */
		if (rc) {
			sr->err = rc;
			memset(&sr->cqe, 0, sizeof(sr->cqe));
			break;
		}
		sr->next += nlb;
		sr->inflight++;
		sent++;
	}
	sr->in_submit = false;
	return sent;
}

static void split_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct split_req *sr = arg;

	sr->inflight--;
	if (err && !sr->err) {
		sr->err = err;
		sr->cqe = *cqe;
	} else if (!sr->err) {
		sr->cqe = *cqe;
	}
	/* (A child completing inside split_more(): a host-side completion. The loop goes on.) */
	if (sr->in_submit)
		return;
	if (!sr->err && sr->next < sr->end)
		(void)split_more(sr);
	if (sr->inflight == 0 && (sr->err || sr->next >= sr->end))
		split_done(sr);
}

static __attribute__((cold, noinline)) int
submit_split(struct pnvme_qpair *qp, const struct pnvme_ns *ns, uint8_t opc, const void *buf,
	     const void *md, uint64_t slba, uint32_t nlb, uint32_t io_flags, uint16_t apptag,
	     uint16_t apptag_mask, uint32_t bpb, uint32_t mpb, pnvme_cmd_cb cb, void *arg)
{
	struct split_req *sr;
	uint64_t iova;

	/* The whole buffer must be valid before the first child leaves. */
	if (!qp->tq && pnvme_dma_xlate(qp->dma, buf, (size_t)nlb * bpb, &iova))
		return -EINVAL; /* the message says what is wrong with the buffer */
	if (md && !qp->tq && pnvme_dma_xlate(qp->dma, md, (size_t)nlb * mpb, &iova))
		return pnvme_fail(-EINVAL, "metadata %s", pnvme_last_error());
	sr = calloc(1, sizeof(*sr));
	if (!sr)
		return pnvme_fail(-ENOMEM, "out of memory for a split request");
	*sr = (struct split_req){ .qp = qp, .ns = ns, .cb = cb ? cb : noop_cb, .arg = arg,
				  .buf = buf, .md = md, .slba = slba, .next = slba,
				  .end = slba + nlb, .bpb = bpb, .mpb = mpb, .io_flags = io_flags,
				  .apptag = apptag, .apptag_mask = apptag_mask, .opc = opc };
	if (split_more(sr) == 0) {
		int rc = sr->err ? sr->err : -EAGAIN;
		free(sr);
		return rc;
	}
	if (sr->inflight == 0) /* every child was completed by the host already */
		split_done(sr);
	return 0;
}

/*
 * Read and Write with everything the fast path leaves out: its errors, and
 * namespaces with metadata (NVM 1.0c §5.2). On an extended-LBA namespace
 * each block moves lba_size + ms bytes through PRPs; otherwise metadata goes
 * through MPTR, one contiguous buffer (PSDT 0: Base 2.0 §4.1.2). With PRACT
 * and 8 bytes of metadata (PI only) the controller inserts / strips the PI
 * and no metadata moves at all.
 */
static __attribute__((cold, noinline)) int
submit_rw_slow(struct pnvme_qpair *qp, const struct pnvme_ns *ns, uint8_t opc, const void *buf,
	       const void *md, uint64_t slba, uint32_t nlb, uint32_t io_flags, uint16_t apptag,
	       uint16_t apptag_mask, pnvme_cmd_cb cb, void *arg)
{
	uint32_t ok = PNVME_IO_FUA | PNVME_IO_LR;
	struct pnvme_tracker *trk;
	struct pnvme_sqe *sqe;
	uint64_t mptr = 0;
	size_t len, md_len;
	uint16_t cid;
	int rc;

	if (ns->pi_type)
		ok |= PNVME_IO_PRACT | PNVME_IO_PRCHK_ALL;
	if (io_flags & ~ok)
		return pnvme_fail(-EINVAL, "unsupported I/O flags 0x%x%s", io_flags,
				  (io_flags & ~ok & (PNVME_IO_PRACT | PNVME_IO_PRCHK_ALL))
					  ? " (protection flags on a namespace without "
					    "protection information)" : "");
	if (nlb > ns->max_lbas && (qp->flags & PNVME_QPAIR_NO_SPLIT))
		return pnvme_fail(-EINVAL, "%u blocks exceed the per-command limit of %u "
				  "(MDTS %u bytes) and the queue pair does not split "
				  "(PNVME_QPAIR_NO_SPLIT)", nlb, ns->max_lbas, ns->max_xfer);
	rc = check_range(ns, slba, nlb);
	if (rc)
		return rc;
	bool md_moves = ns->ms != 0 && !((io_flags & PNVME_IO_PRACT) && ns->ms == 8);
	if (nlb > ns->max_lbas) {
		if (md_moves && !ns->md_ext && !md && !qp->tq)
			return pnvme_fail(-EINVAL, "namespace %u keeps %u bytes of metadata per "
					  "block in a separate buffer: use pnvme_%s_md()", ns->nsid,
					  ns->ms, opc == PNVME_NVM_READ ? "read" : "write");
		return submit_split(qp, ns, opc, buf, md, slba,
				    nlb, io_flags, apptag, apptag_mask,
				    ns->lba_size + (md_moves && ns->md_ext ? ns->ms : 0),
				    md_moves && !ns->md_ext ? ns->ms : 0, cb, arg);
	}
	len = (size_t)nlb << ns->lba_shift;
	md_len = (size_t)nlb * ns->ms;
	if (md_moves && ns->md_ext)
		len += md_len;
	if (md_moves && !ns->md_ext) {
		if (qp->tq)
			return pnvme_fail(-EOPNOTSUPP, "namespace %u keeps metadata in a separate "
					  "buffer, which NVMe over Fabrics cannot carry", ns->nsid);
		if (!md)
			return pnvme_fail(-EINVAL, "namespace %u keeps %u bytes of metadata per block "
					  "in a separate buffer: use pnvme_%s_md() with one of "
					  "%zu bytes", ns->nsid, ns->ms,
					  opc == PNVME_NVM_READ ? "read" : "write", md_len);
		rc = pnvme_dma_xlate(qp->dma, md, md_len, &mptr);
		if (rc)
			return pnvme_fail(rc, "metadata %s", pnvme_last_error());
		if (mptr & 3)
			return pnvme_fail(-EINVAL, "metadata buffer %p is misaligned: MPTR must be "
					  "dword aligned", md);
	} else if (md) {
		return pnvme_fail(-EINVAL, "a metadata buffer for namespace %u, which moves none "
				  "separately (%s)", ns->nsid,
				  ns->ms == 0 ? "no metadata" : ns->md_ext ? "extended LBAs: "
				  "metadata is in the data buffer" : "PRACT with PI-only metadata");
	}
	if (unlikely(qpair_gone_flag(qp)))
		return qpair_gone(qp);
	sqe = sqe_get(qp, &trk, &cid);
	if (!sqe)
		return -EAGAIN;
	if (!qp->tq) {
		rc = build_prps(qp, trk, buf, len, sqe);
		if (rc) {
			sqe_putback(qp, cid);
			return rc;
		}
	}
	/* PI types 1 and 2: (expected) initial reference tag = low 32 bits of the LBA. */
	uint32_t reftag = ns->pi_type == 1 || ns->pi_type == 2 ? (uint32_t)slba : 0;
	rw_sqe(sqe, opc, cid, ns->nsid, mptr, slba, (nlb - 1) | io_flags, reftag,
	       (uint32_t)apptag_mask << 16 | apptag);
	if (qp->tq)
		tcp_sqe_data(sqe, buf, len); /* fabrics: an SGL, any memory (tcp/host.h) */
	trk->opc = opc;
	sqe_post(qp, trk, sqe, cb, arg);
	return 0;
}

/*
 * Everything pnvme_read() / pnvme_write() leave to the slow path: a bad
 * call, a range or flags the fast path does not take, metadata, a stopped
 * queue pair, a buffer outside the translation cache. Same arguments as
 * the fast entry, so that it is a tail call (no frame on the fast path).
 */
static __attribute__((noinline)) int read_slow(struct pnvme_qpair *qp, const struct pnvme_ns *ns,
					       void *buf, uint64_t slba, uint32_t nlb,
					       uint32_t io_flags, pnvme_cmd_cb cb, void *arg)
{
	if (!io_args_ok(qp, ns))
		return io_args_fail(qp, ns, "pnvme_read");
	return submit_rw_slow(qp, ns, PNVME_NVM_READ, buf, NULL, slba, nlb, io_flags, 0, 0, cb,
			      arg);
}

static __attribute__((noinline)) int write_slow(struct pnvme_qpair *qp, const struct pnvme_ns *ns,
						const void *buf, uint64_t slba, uint32_t nlb,
						uint32_t io_flags, pnvme_cmd_cb cb, void *arg)
{
	if (!io_args_ok(qp, ns))
		return io_args_fail(qp, ns, "pnvme_write");
	return submit_rw_slow(qp, ns, PNVME_NVM_WRITE, buf, NULL, slba, nlb, io_flags, 0, 0, cb,
			      arg);
}

static __attribute__((cold, noinline)) int rw_prps_fail(struct pnvme_qpair *qp, uint16_t cid,
							size_t len)
{
	sqe_putback(qp, cid);
	return prps_too_long(len);
}

/*
 * Read and Write (NVM 1.0 §3.2.4, §3.2.6): SLBA in CDW10/11, NLB 0's based in
 * CDW12. The fast path: the same controller, nlb in 1..fast_lbas (no
 * metadata), FUA / LR only, the range inside the namespace, the queue pair
 * live, the buffer inside one live allocation of the cached 2 MiB run and
 * dword aligned. Anything else goes to read_slow / write_slow, which check
 * again and say what is wrong.
 */
static ALWAYS_INLINE int submit_rw(struct pnvme_qpair *qp, const struct pnvme_ns *ns, uint8_t opc,
				   const void *buf, uint64_t slba, uint32_t nlb, uint32_t io_flags,
				   pnvme_cmd_cb cb, void *arg)
{
	struct pnvme_tracker *trk;
	struct pnvme_sqe *sqe;
	uint64_t end, iova;
	uint16_t cid;

	if (unlikely(!io_args_ok(qp, ns) || nlb - 1 >= ns->fast_lbas ||
		     (io_flags & ~(PNVME_IO_FUA | PNVME_IO_LR)) ||
		     __builtin_add_overflow(slba, nlb, &end) || end > ns->nlba ||
		     qpair_gone_flag(qp)))
		goto slow;
	size_t len = (size_t)nlb << ns->lba_shift;
	if (unlikely(!pnvme_dma_cache_hit(&qp->xl, (uintptr_t)buf, len, &iova) || (iova & 3)))
		goto slow;
	sqe = sqe_get(qp, &trk, &cid);
	if (unlikely(!sqe))
		return -EAGAIN;
	if (unlikely(prps_fill(trk, iova, len, sqe) != 0))
		return rw_prps_fail(qp, cid, len);
	rw_sqe(sqe, opc, cid, ns->nsid, 0, slba, (nlb - 1) | io_flags, 0, 0);
	trk->opc = opc;
	return sqe_post(qp, trk, sqe, cb, arg);
slow:
	return opc == PNVME_NVM_READ ? read_slow(qp, ns, (void *)(uintptr_t)buf, slba, nlb, io_flags,
						 cb, arg)
				     : write_slow(qp, ns, buf, slba, nlb, io_flags, cb, arg);
}

int pnvme_read(struct pnvme_qpair *qp, const struct pnvme_ns *ns, void *buf, uint64_t slba,
	       uint32_t nlb, uint32_t io_flags, pnvme_cmd_cb cb, void *arg)
{
	return submit_rw(qp, ns, PNVME_NVM_READ, buf, slba, nlb, io_flags, cb, arg);
}

int pnvme_write(struct pnvme_qpair *qp, const struct pnvme_ns *ns, const void *buf,
		uint64_t slba, uint32_t nlb, uint32_t io_flags, pnvme_cmd_cb cb, void *arg)
{
	return submit_rw(qp, ns, PNVME_NVM_WRITE, buf, slba, nlb, io_flags, cb, arg);
}

int pnvme_read_md(struct pnvme_qpair *qp, const struct pnvme_ns *ns, void *buf, void *md,
		  uint64_t slba, uint32_t nlb, uint32_t io_flags, uint16_t apptag,
		  uint16_t apptag_mask, pnvme_cmd_cb cb, void *arg)
{
	if (!io_args_ok(qp, ns))
		return io_args_fail(qp, ns, "pnvme_read_md");
	return submit_rw_slow(qp, ns, PNVME_NVM_READ, buf, md, slba, nlb, io_flags, apptag,
			      apptag_mask, cb, arg);
}

int pnvme_write_md(struct pnvme_qpair *qp, const struct pnvme_ns *ns, const void *buf,
		   const void *md, uint64_t slba, uint32_t nlb, uint32_t io_flags,
		   uint16_t apptag, uint16_t apptag_mask, pnvme_cmd_cb cb, void *arg)
{
	if (!io_args_ok(qp, ns))
		return io_args_fail(qp, ns, "pnvme_write_md");
	return submit_rw_slow(qp, ns, PNVME_NVM_WRITE, buf, md, slba, nlb, io_flags, apptag,
			      apptag_mask, cb, arg);
}

/* Commands without data: Flush (NVM 1.0 §3.2.2 / Base 2.0 §7.1), Write Zeroes. */
static int submit_nodata(struct pnvme_qpair *qp, uint32_t nsid, uint8_t opc, uint32_t cdw10,
			 uint32_t cdw11, uint32_t cdw12, pnvme_cmd_cb cb, void *arg)
{
	struct pnvme_sqe cmd;

	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = opc;
	cmd.nsid = nsid;
	cmd.cdw10 = cdw10;
	cmd.cdw11 = cdw11;
	cmd.cdw12 = cdw12;
	return qpair_submit_raw(qp, &cmd, NULL, 0, cb, arg);
}

int pnvme_flush(struct pnvme_qpair *qp, const struct pnvme_ns *ns, pnvme_cmd_cb cb, void *arg)
{
	if (!io_args_ok(qp, ns))
		return io_args_fail(qp, ns, "pnvme_flush");
	return submit_nodata(qp, ns->nsid, PNVME_NVM_FLUSH, 0, 0, 0, cb, arg);
}

int pnvme_write_zeroes(struct pnvme_qpair *qp, const struct pnvme_ns *ns, uint64_t slba,
		       uint32_t nlb, uint32_t io_flags, pnvme_cmd_cb cb, void *arg)
{
	const uint32_t ok = PNVME_IO_DEAC | PNVME_IO_FUA | PNVME_IO_LR;

	if (!io_args_ok(qp, ns))
		return io_args_fail(qp, ns, "pnvme_write_zeroes");
	if (io_flags & ~ok)
		return pnvme_fail(-EINVAL, "unsupported Write Zeroes flags 0x%x", io_flags);
	if (nlb > 65536u)
		return pnvme_fail(-EINVAL, "Write Zeroes of %u blocks: at most 65536", nlb);
	int rc = check_range(ns, slba, nlb); /* -EINVAL, -ERANGE, -ENODEV (removed) */
	if (rc)
		return rc;
	return submit_nodata(qp, ns->nsid, PNVME_NVM_WRITE_ZEROES, (uint32_t)slba,
			     (uint32_t)(slba >> 32), (nlb - 1) | io_flags, cb, arg);
}

/*
 * Dataset Management (NVM 1.0 §3.2.3). The ranges are copied into the
 * tracker's own DMA page (256 ranges x 16 bytes = 4 KiB exactly).
 */
int pnvme_dsm(struct pnvme_qpair *qp, const struct pnvme_ns *ns,
	      const struct pnvme_dsm_range *ranges, uint32_t nr, uint32_t attr, pnvme_cmd_cb cb,
	      void *arg)
{
	struct pnvme_tracker *trk;
	struct pnvme_sqe *sqe;
	uint16_t cid;

	if (!io_args_ok(qp, ns))
		return io_args_fail(qp, ns, "pnvme_dsm");
	if (!ranges || nr == 0 || nr > PNVME_DSM_MAX_RANGES)
		return pnvme_fail(-EINVAL, "Dataset Management needs 1..%u ranges, got %u",
				  PNVME_DSM_MAX_RANGES, nr);
	if (attr & ~(PNVME_DSM_IDR | PNVME_DSM_IDW | PNVME_DSM_AD))
		return pnvme_fail(-EINVAL, "unsupported Dataset Management attributes 0x%x", attr);
	for (uint32_t i = 0; i < nr; i++) {
		int rc = ranges[i].nlb ? check_range(ns, ranges[i].slba, ranges[i].nlb) : 0;
		if (rc)
			return rc;
	}
	if (unlikely(qpair_gone_flag(qp)))
		return qpair_gone(qp);
	sqe = sqe_get(qp, &trk, &cid);
	if (!sqe)
		return -EAGAIN;
	memcpy(trk->prp_list, ranges, nr * sizeof(*ranges));
	memset(sqe, 0, sizeof(*sqe));
	sqe->opc = PNVME_NVM_DSM;
	sqe->cid = cid;
	sqe->nsid = ns->nsid;
	sqe->prp1 = trk->prp_iova;
	if (qp->tq)
		tcp_sqe_data(sqe, trk->prp_list, nr * sizeof(*ranges));
	sqe->cdw10 = nr - 1;
	sqe->cdw11 = attr;
	trk->opc = PNVME_NVM_DSM;
	sqe_post(qp, trk, sqe, cb, arg);
	return 0;
}

int pnvme_io_passthru(struct pnvme_qpair *qp, const struct pnvme_sqe *sqe, void *dma_buf,
		      size_t len, pnvme_cmd_cb cb, void *arg)
{
	if (!qp || !sqe)
		return pnvme_fail(-EINVAL, "io_passthru: NULL %s", !qp ? "queue pair" : "command");
	return qpair_submit_raw(qp, sqe, dma_buf, len, cb, arg);
}

/* ------------------------------------------------------------------------ */
/* Synchronous helpers                                                      */
/* ------------------------------------------------------------------------ */

struct sync_req {
	volatile int done;
	int err;
	struct pnvme_cqe cqe;
};

static void sync_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct sync_req *s = arg;
	s->err = err;
	s->cqe = *cqe;
	s->done = 1;
}

/*
 * Submit through `submit` (which returns -EAGAIN while the queue is full),
 * then wait. A full queue is retried while polling, for at most the queue
 * pair's timeout.
 */
#define SYNC_SUBMIT(qp, s, expr)                                                        \
	do {                                                                            \
		uint64_t until_;                                                        \
		int rc_;                                                                \
		if (!(qp))                                                              \
			return pnvme_fail(-EINVAL, "sync I/O: NULL queue pair");        \
		until_ = pnvme_ticks() + (qp)->timeout_ticks;                           \
		if ((qp)->in_poll)                                                      \
			return pnvme_fail(-EDEADLK, "sync I/O from a completion callback " \
					  "of the same queue pair");                    \
		while ((rc_ = (expr)) == -EAGAIN) {                                     \
			int prc_ = pnvme_qpair_poll((qp), 0);                           \
			if (prc_ < 0)                                                   \
				return prc_;                                            \
			if ((int64_t)(pnvme_ticks() - until_) >= 0)                     \
				return pnvme_fail(-ETIMEDOUT, "queue %u stayed full",   \
						  (qp)->qid);                           \
			if (prc_ == 0)                                                  \
				ctrl_wait_hook((qp)->ctrl);                             \
		}                                                                       \
		if (rc_)                                                                \
			return rc_;                                                     \
		rc_ = qpair_wait_flag((qp), &(s).done, NULL);                           \
		if (rc_)                                                                \
			return rc_;                                                     \
	} while (0)

static int sync_result(struct sync_req *s)
{
	if (s->err && s->err != -ETIMEDOUT && s->err != -ECANCELED && s->err != -ENODEV) {
		uint16_t st = PNVME_CQE_STATUS(&s->cqe);
		return pnvme_fail(s->err, "command failed: %s", pnvme_status_str(st));
	}
	if (s->err)
		return pnvme_fail(s->err, "command did not complete (%s)",
				  s->err == -ETIMEDOUT ? "timed out" :
				  s->err == -ENODEV ? "device gone" : "cancelled");
	return 0;
}

int pnvme_read_sync(struct pnvme_qpair *qp, const struct pnvme_ns *ns, void *buf,
		    uint64_t slba, uint32_t nlb, uint32_t io_flags)
{
	struct sync_req s = { 0 };
	if (!io_args_ok(qp, ns))
		return io_args_fail(qp, ns, "pnvme_read_sync");
	SYNC_SUBMIT(qp, s, pnvme_read(qp, ns, buf, slba, nlb, io_flags, sync_cb, &s));
	return sync_result(&s);
}

int pnvme_write_sync(struct pnvme_qpair *qp, const struct pnvme_ns *ns, const void *buf,
		     uint64_t slba, uint32_t nlb, uint32_t io_flags)
{
	struct sync_req s = { 0 };
	if (!io_args_ok(qp, ns))
		return io_args_fail(qp, ns, "pnvme_write_sync");
	SYNC_SUBMIT(qp, s, pnvme_write(qp, ns, buf, slba, nlb, io_flags, sync_cb, &s));
	return sync_result(&s);
}

int pnvme_flush_sync(struct pnvme_qpair *qp, const struct pnvme_ns *ns)
{
	struct sync_req s = { 0 };
	SYNC_SUBMIT(qp, s, pnvme_flush(qp, ns, sync_cb, &s));
	return sync_result(&s);
}

int pnvme_write_zeroes_sync(struct pnvme_qpair *qp, const struct pnvme_ns *ns, uint64_t slba,
			    uint32_t nlb, uint32_t io_flags)
{
	struct sync_req s = { 0 };
	SYNC_SUBMIT(qp, s, pnvme_write_zeroes(qp, ns, slba, nlb, io_flags, sync_cb, &s));
	return sync_result(&s);
}

int pnvme_dsm_sync(struct pnvme_qpair *qp, const struct pnvme_ns *ns,
		   const struct pnvme_dsm_range *ranges, uint32_t nr, uint32_t attr)
{
	struct sync_req s = { 0 };
	SYNC_SUBMIT(qp, s, pnvme_dsm(qp, ns, ranges, nr, attr, sync_cb, &s));
	return sync_result(&s);
}

int pnvme_io_passthru_sync(struct pnvme_qpair *qp, const struct pnvme_sqe *sqe,
			   void *dma_buf, size_t len, struct pnvme_cqe *cqe)
{
	struct sync_req s = { 0 };
	SYNC_SUBMIT(qp, s, pnvme_io_passthru(qp, sqe, dma_buf, len, sync_cb, &s));
	if (cqe)
		*cqe = s.cqe;
	return sync_result(&s);
}
