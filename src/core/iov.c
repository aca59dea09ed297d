/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * iov.c - vectored Read and Write (pnvme_readv / pnvme_writev): one command
 * with one PRP list where the elements can be described by PRPs (Base 2.0
 * §4.1.1: only the first element may start inside a page and only the last
 * may end inside one), else one child command per element, completing the
 * parent once (as the MDTS split in io.c).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "core/ctrl_priv.h"
#include "pcie/ring.h"

#define IOV_MAX_ELEMS 1024u

/* Can the elements be one PRP list? (and is the total one command's worth?) */
static bool prp_compatible(const struct pnvme_qpair *qp, const struct iovec *iov, unsigned n,
			   size_t total)
{
	if (qp->tq || total > qp->ctrl->max_xfer)
		return false;
	for (unsigned i = 0; i < n; i++) {
		uintptr_t a = (uintptr_t)iov[i].iov_base, e = a + iov[i].iov_len;
		if (i > 0 && (a & (PNVME_PAGE_SIZE - 1)))
			return false;
		if (i + 1 < n && (e & (PNVME_PAGE_SIZE - 1)))
			return false;
	}
	return true;
}

/* PRP1/PRP2 (and the tracker's list) for page-chained elements; each bounds-checked. */
static int build_iov_prps(struct pnvme_qpair *qp, struct pnvme_tracker *trk,
			  const struct iovec *iov, unsigned n, struct pnvme_sqe *sqe)
{
	uint64_t pages[PNVME_PAGE_SIZE / sizeof(uint64_t) + 1] = { 0 };
	unsigned np = 0;

	for (unsigned i = 0; i < n; i++) {
		uint64_t iova;
		if (pnvme_dma_xlate(qp->dma, iov[i].iov_base, iov[i].iov_len, &iova))
			return pnvme_fail(-EINVAL, "element %u: %s", i, pnvme_last_error());
		if (iova & 3)
			return pnvme_fail(-EINVAL, "element %u (%p) is not dword aligned", i,
					  iov[i].iov_base);
		/* the first PRP carries the offset; every later page starts on a boundary */
		uint64_t end = iova + iov[i].iov_len;
		for (uint64_t p = iova; p < end; p = (p & ~(uint64_t)(PNVME_PAGE_SIZE - 1)) +
						       PNVME_PAGE_SIZE) {
			if (np == ARRAY_SIZE(pages))
				return pnvme_fail(-EINVAL, "the elements need more than one PRP list "
						  "page");
			pages[np++] = p;
		}
	}
	sqe->prp1 = pages[0];
	if (np == 1) {
		sqe->prp2 = 0;
	} else if (np == 2) {
		sqe->prp2 = pages[1];
	} else {
		memcpy(trk->prp_list, pages + 1, (np - 1) * sizeof(uint64_t));
		sqe->prp2 = trk->prp_iova;
	}
	return 0;
}

/* One child per element (the elements that PRPs cannot chain). */
struct iov_req {
	pnvme_cmd_cb cb;
	void *arg;
	unsigned left;     /* children not yet completed */
	int err;
	struct pnvme_cqe cqe;
};

static void iov_child_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct iov_req *r = arg;

	if (err && !r->err) {
		r->err = err;
		r->cqe = *cqe;
	} else if (!r->err) {
		r->cqe = *cqe;
	}
	if (--r->left == 0) {
		pnvme_cmd_cb cb = r->cb;
		void *cb_arg = r->arg;
		struct pnvme_cqe c = r->cqe;
		int e = r->err;
		free(r);
		cb(cb_arg, e, &c);
	}
}

static int submit_rwv(struct pnvme_qpair *qp, const struct pnvme_ns *ns, uint8_t opc,
		      const struct iovec *iov, unsigned iovcnt, uint64_t slba, uint32_t nlb,
		      uint32_t io_flags, pnvme_cmd_cb cb, void *arg, const char *fn)
{
	size_t total = 0, want;
	uint64_t end;

	if (!qp || !ns || ns->ctrl != qp->ctrl)
		return pnvme_fail(-EINVAL, "%s: NULL or mismatched queue pair / namespace", fn);
	if (!iov || iovcnt == 0 || iovcnt > IOV_MAX_ELEMS)
		return pnvme_fail(-EINVAL, "%s: 1..%u elements, got %u", fn, IOV_MAX_ELEMS, iovcnt);
	if (ns->ms && !ns->md_ext)
		return pnvme_fail(-EINVAL, "%s: namespace %u keeps metadata in a separate buffer: "
				  "use pnvme_%s_md()", fn, ns->nsid,
				  opc == PNVME_NVM_READ ? "read" : "write");
	if (io_flags & ~(PNVME_IO_FUA | PNVME_IO_LR))
		return pnvme_fail(-EINVAL, "%s: unsupported I/O flags 0x%x", fn, io_flags);
	if (nlb == 0 || __builtin_add_overflow(slba, nlb, &end) || end > ns->nlba)
		return pnvme_fail(nlb ? -ERANGE : -EINVAL, "%s: blocks %llu+%u outside the "
				  "namespace (%llu blocks)", fn, (unsigned long long)slba, nlb,
				  (unsigned long long)ns->nlba);
	for (unsigned i = 0; i < iovcnt; i++) {
		if (!iov[i].iov_base || iov[i].iov_len == 0)
			return pnvme_fail(-EINVAL, "%s: element %u is empty", fn, i);
		total += iov[i].iov_len;
	}
	want = (size_t)nlb * ns->block_bytes;
	if (total != want)
		return pnvme_fail(-EINVAL, "%s: the elements hold %zu bytes, %u blocks need %zu",
				  fn, total, nlb, want);
	if (qpair_gone_flag(qp))
		return qpair_gone(qp);

	if (iovcnt == 1)
		return opc == PNVME_NVM_READ
			       ? pnvme_read(qp, ns, iov[0].iov_base, slba, nlb, io_flags, cb, arg)
			       : pnvme_write(qp, ns, iov[0].iov_base, slba, nlb, io_flags, cb, arg);

	if (prp_compatible(qp, iov, iovcnt, total)) {
		struct pnvme_tracker *trk;
		struct pnvme_sqe *sqe;
		uint16_t cid;
		int rc;

		sqe = sqe_get(qp, &trk, &cid);
		if (!sqe)
			return -EAGAIN;
		memset(sqe, 0, sizeof(*sqe));
		rc = build_iov_prps(qp, trk, iov, iovcnt, sqe);
		if (rc) {
			sqe_putback(qp, cid);
			return rc;
		}
		sqe->opc = opc;
		sqe->cid = cid;
		sqe->nsid = ns->nsid;
		sqe->cdw10 = (uint32_t)slba;
		sqe->cdw11 = (uint32_t)(slba >> 32);
		sqe->cdw12 = (nlb - 1) | io_flags;
		trk->opc = opc;
		sqe_post(qp, trk, sqe, cb, arg);
		return 0;
	}

	/* One child per element: each must hold whole blocks. */
	for (unsigned i = 0; i < iovcnt; i++)
		if (iov[i].iov_len % ns->block_bytes)
			return pnvme_fail(-EINVAL, "%s: element %u (%zu bytes) is not a whole number "
					  "of %u-byte blocks, and the elements cannot be chained "
					  "with PRPs", fn, i, iov[i].iov_len, ns->block_bytes);
	/* Every element valid before the first child leaves (nothing half done). */
	for (unsigned i = 0; i < iovcnt && !qp->tq; i++) {
		uint64_t iova;
		if (pnvme_dma_xlate(qp->dma, iov[i].iov_base, iov[i].iov_len, &iova))
			return pnvme_fail(-EINVAL, "%s: element %u: %s", fn, i, pnvme_last_error());
	}
	if (qp->nr_free < iovcnt)
		return -EAGAIN; /* all children at once, or none: poll and retry */
	struct iov_req *r = calloc(1, sizeof(*r));
	if (!r)
		return pnvme_fail(-ENOMEM, "out of memory");
	r->cb = cb ? cb : noop_cb;
	r->arg = arg;
	r->left = iovcnt;
	uint64_t lba = slba;
	for (unsigned i = 0; i < iovcnt; i++) {
		uint32_t n = (uint32_t)(iov[i].iov_len / ns->block_bytes);
		int rc = opc == PNVME_NVM_READ
				 ? pnvme_read(qp, ns, iov[i].iov_base, lba, n, io_flags, iov_child_cb, r)
				 : pnvme_write(qp, ns, iov[i].iov_base, lba, n, io_flags, iov_child_cb,
					       r);
		if (rc) {
			/* The children not submitted count as failed with rc. */
			if (!r->err) {
				r->err = rc;
				memset(&r->cqe, 0, sizeof(r->cqe));
			}
			unsigned unsent = iovcnt - i;
			if (r->left == unsent) { /* nothing submitted: fail the call itself */
				free(r);
				return rc;
			}
			r->left -= unsent - 1;
			iov_child_cb(r, rc, &r->cqe); /* completes the parent once the rest do */
			return 0;
		}
		lba += n;
	}
	return 0;
}

int pnvme_readv(struct pnvme_qpair *qp, const struct pnvme_ns *ns, const struct iovec *iov,
		unsigned iovcnt, uint64_t slba, uint32_t nlb, uint32_t io_flags, pnvme_cmd_cb cb,
		void *arg)
{
	return submit_rwv(qp, ns, PNVME_NVM_READ, iov, iovcnt, slba, nlb, io_flags, cb, arg,
			  "pnvme_readv");
}

int pnvme_writev(struct pnvme_qpair *qp, const struct pnvme_ns *ns, const struct iovec *iov,
		 unsigned iovcnt, uint64_t slba, uint32_t nlb, uint32_t io_flags, pnvme_cmd_cb cb,
		 void *arg)
{
	return submit_rwv(qp, ns, PNVME_NVM_WRITE, iov, iovcnt, slba, nlb, io_flags, cb, arg,
			  "pnvme_writev");
}
