/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * iov.c - vectored Read and Write (pnvme_readv / pnvme_writev), on PCIe
 * described in one of three ways:
 *  - PRPs: one command with one PRP list where the elements can be described
 *    by PRPs (Base 2.0 §4.1.1: only the first element may start inside a
 *    page and only the last may end inside one);
 *  - SGLs (Base 2.0 §4.1.2), where the controller reports them (Identify
 *    SGLS bits 1:0) and PRPs cannot describe the elements, or always with
 *    PNVME_QPAIR_PREFER_SGL: one Data Block descriptor per element (or part
 *    of one), in the tracker's list page, named by a Last Segment descriptor
 *    in the SQE, or the one Data Block in the SQE itself; a request that
 *    exceeds MDTS, crosses NOIOB or needs more than 256 descriptors becomes
 *    several commands, cut on block boundaries;
 *  - else one child command per element.
 * Several commands complete the parent once (as the MDTS split in io.c).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <pnvme/tcp_spec.h> /* struct pnvme_sgl_desc (Base 2.0 §4.1.2) */

#include "core/ctrl_priv.h"
#include "pcie/ring.h"

#define IOV_MAX_ELEMS 1024u
/* Data Block descriptors in a tracker's list page (4 KiB / 16 bytes). */
#define SGL_PER_PAGE  ((unsigned)(PNVME_PAGE_SIZE / sizeof(struct pnvme_sgl_desc)))
/* submit_sgl(): the elements need what this controller's SGLs cannot give. */
#define SGL_CANNOT    1

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

/*
 * The children not submitted (from child `unsent` from the end on) count as
 * failed with rc. Returns what the call returns: rc when nothing went out,
 * else 0 (the parent completes once the children submitted do).
 */
static int iov_req_cut(struct iov_req *r, int rc, unsigned unsent)
{
	if (!r->err) {
		r->err = rc;
		memset(&r->cqe, 0, sizeof(r->cqe));
	}
	if (r->left == unsent) { /* nothing submitted: fail the call itself */
		free(r);
		return rc;
	}
	r->left -= unsent - 1;
	iov_child_cb(r, rc, &r->cqe); /* completes the parent once the rest do */
	return 0;
}

/* ------------------------------------------------------------------------ */
/* SGLs (Base 2.0 §4.1.2)                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Identify SGLS bits 1:0 (Base 2.0 Figure 275) of a PCIe queue pair's
 * controller: PNVME_SGLS_NO_ALIGN, PNVME_SGLS_DWORD_ALIGN, or 0 (none, or
 * the reserved 11b). NVMe/TCP builds its own SGL (tcp/host.h).
 */
static unsigned sgl_support(const struct pnvme_qpair *qp)
{
	unsigned s = PNVME_GET(qp->ctrl->id.sgls, PNVME_SGLS_SUPPORT);

	if (qp->tq)
		return 0;
	return s == PNVME_SGLS_NO_ALIGN || s == PNVME_SGLS_DWORD_ALIGN ? s : 0;
}

/* Where a walk over the elements stands: byte `off` of element `i`. */
struct iov_pos {
	unsigned i;
	size_t off;
};

static void pos_advance(const struct iovec *iov, struct iov_pos *p, size_t len)
{
	while (len) {
		size_t rest = iov[p->i].iov_len - p->off;
		if (rest > len) {
			p->off += len;
			return;
		}
		len -= rest;
		p->i++;
		p->off = 0;
	}
}

/* Bytes one command from block `lba` (of [lba, end)) may carry: MDTS, and NOIOB as io.c cuts. */
static size_t sgl_cmd_max(const struct pnvme_ns *ns, uint64_t lba, uint64_t end)
{
	uint64_t nb = end - lba;
	uint32_t noiob = ns->id.noiob;

	if (nb > ns->max_lbas)
		nb = ns->max_lbas;
	if (noiob && nb > noiob - lba % noiob)
		nb = noiob - lba % noiob;
	return (size_t)nb * ns->block_bytes;
}

/*
 * Bytes of the command starting at `p`: at most `max`, whole blocks, in at
 * most SGL_PER_PAGE descriptors (one per element or part of one). 0 when a
 * single block is spread over more elements than that.
 */
static size_t sgl_cmd_bytes(const struct iovec *iov, unsigned n, struct iov_pos p, size_t max,
			    uint32_t bb)
{
	size_t len = 0;

	for (unsigned k = 0; k < SGL_PER_PAGE && p.i < n && len < max; k++, p.i++, p.off = 0) {
		size_t piece = iov[p.i].iov_len - p.off;
		len += piece < max - len ? piece : max - len;
	}
	return len - len % bb;
}

/*
 * One command for `len` bytes of the elements from `p` (advanced past them),
 * at block `lba`: Data Block descriptors (type 0h, subtype Address) in the
 * tracker's list page and a Last Segment descriptor (3h) naming them in SGL
 * Descriptor 1, or a single Data Block in SGL Descriptor 1; PSDT 01b.
 */
static int sgl_cmd_submit(struct pnvme_qpair *qp, const struct pnvme_ns *ns, uint8_t opc,
			  const struct iovec *iov, struct iov_pos *p, size_t len, uint64_t lba,
			  uint32_t io_flags, pnvme_cmd_cb cb, void *arg)
{
	uint32_t nlb = (uint32_t)(len / ns->block_bytes);
	struct pnvme_sgl_desc *list, *d1;
	struct pnvme_tracker *trk;
	struct pnvme_sqe *sqe;
	unsigned nd = 0;
	uint16_t cid;

	sqe = sqe_get(qp, &trk, &cid);
	if (!sqe)
		return -EAGAIN;
	list = (struct pnvme_sgl_desc *)(void *)trk->prp_list;
	while (len) {
		size_t piece = iov[p->i].iov_len - p->off;
		uint64_t iova;

		if (piece > len)
			piece = len;
		/* (the elements were checked: this cannot fail, nor overflow the page) */
		if (nd == SGL_PER_PAGE ||
		    pnvme_dma_xlate(qp->dma, (const uint8_t *)iov[p->i].iov_base + p->off, piece,
				    &iova)) {
			sqe_putback(qp, cid);
			return pnvme_fail(-EINVAL, "element %u cannot be described", p->i);
		}
		list[nd++] = (struct pnvme_sgl_desc){
			.addr = iova, .length = (uint32_t)piece,
			.id = PNVME_SGL_ID(PNVME_SGL_TYPE_DATA_BLOCK, PNVME_SGL_SUBTYPE_ADDRESS) };
		pos_advance(iov, p, piece);
		len -= piece;
	}
	memset(sqe, 0, sizeof(*sqe));
	d1 = (struct pnvme_sgl_desc *)(void *)&sqe->prp1;
	if (nd == 1)
		*d1 = list[0];
	else
		*d1 = (struct pnvme_sgl_desc){
			.addr = trk->prp_iova, .length = nd * (uint32_t)sizeof(*list),
			.id = PNVME_SGL_ID(PNVME_SGL_TYPE_LAST_SEGMENT, PNVME_SGL_SUBTYPE_ADDRESS) };
	sqe->opc = opc;
	sqe->flags = (uint8_t)PNVME_SET(PNVME_SQE_PSDT, PNVME_SQE_PSDT_SGL_MPTR_CONTIG);
	sqe->cid = cid;
	sqe->nsid = ns->nsid;
	sqe->cdw10 = (uint32_t)lba;
	sqe->cdw11 = (uint32_t)(lba >> 32);
	sqe->cdw12 = (nlb - 1) | io_flags;
	trk->opc = opc;
	sqe_post(qp, trk, sqe, cb, arg);
	return 0;
}

/*
 * The elements as SGL commands: every element checked first (one live
 * allocation each; dword address and length where SGLS is 10b), the
 * commands planned, then all submitted at once (or -EAGAIN, nothing sent).
 * Returns 0, a negative errno, or SGL_CANNOT when the SGLs of this
 * controller cannot describe the elements (nothing checked is wrong then:
 * the caller goes on to one command per element).
 */
static int submit_sgl(struct pnvme_qpair *qp, const struct pnvme_ns *ns, uint8_t opc,
		      const struct iovec *iov, unsigned n, uint64_t slba, uint32_t nlb,
		      uint32_t io_flags, pnvme_cmd_cb cb, void *arg, const char *fn)
{
	uint32_t bb = ns->block_bytes;
	uint64_t end = slba + nlb, lba;
	struct iov_pos p = { 0, 0 };
	unsigned cmds = 0;

	for (unsigned i = 0; i < n; i++) {
		uint64_t iova;
		if (pnvme_dma_xlate(qp->dma, iov[i].iov_base, iov[i].iov_len, &iova))
			return pnvme_fail(-EINVAL, "%s: element %u: %s", fn, i, pnvme_last_error());
	}
	if (sgl_support(qp) == PNVME_SGLS_DWORD_ALIGN)
		for (unsigned i = 0; i < n; i++)
			if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) & 3u)
				return SGL_CANNOT; /* Data Blocks must be dword granular */
	for (lba = slba; lba < end; cmds++) {
		size_t len = sgl_cmd_bytes(iov, n, p, sgl_cmd_max(ns, lba, end), bb);
		if (len == 0)
			return SGL_CANNOT; /* one block in more than 256 pieces */
		pos_advance(iov, &p, len);
		lba += len / bb;
	}
	if (cmds > 1 && (qp->flags & PNVME_QPAIR_NO_SPLIT))
		return pnvme_fail(-EINVAL, "%s: the elements need %u commands (MDTS %u bytes, at "
				  "most %u SGL descriptors each) and the queue pair does not "
				  "split (PNVME_QPAIR_NO_SPLIT)", fn, cmds, ns->max_xfer,
				  SGL_PER_PAGE);
	if (qp->nr_free < cmds)
		return -EAGAIN; /* all commands at once, or none: poll and retry */
	if (cmds == 1) {
		p = (struct iov_pos){ 0, 0 };
		return sgl_cmd_submit(qp, ns, opc, iov, &p, (size_t)nlb * bb, slba, io_flags,
				      cb, arg);
	}
	struct iov_req *r = calloc(1, sizeof(*r));
	if (!r)
		return pnvme_fail(-ENOMEM, "out of memory");
	r->cb = cb ? cb : noop_cb;
	r->arg = arg;
	r->left = cmds;
	p = (struct iov_pos){ 0, 0 };
	lba = slba;
	for (unsigned k = 0; k < cmds; k++) {
		size_t len = sgl_cmd_bytes(iov, n, p, sgl_cmd_max(ns, lba, end), bb);
		int rc = sgl_cmd_submit(qp, ns, opc, iov, &p, len, lba, io_flags, iov_child_cb, r);
		if (rc)
			return iov_req_cut(r, rc, cmds - k);
		lba += len / bb;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* pnvme_readv / pnvme_writev                                               */
/* ------------------------------------------------------------------------ */

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

	/*
	 * PRPs where they describe the elements (with SGLs on hand, only when
	 * the first element is dword aligned, which PRP1 needs), unless the
	 * queue pair prefers SGLs; then SGLs where the controller has them.
	 */
	unsigned sgl = sgl_support(qp);
	bool prp_ok = !sgl || !((uintptr_t)iov[0].iov_base & 3u);
	if (sgl && (qp->flags & PNVME_QPAIR_PREFER_SGL))
		prp_ok = false;

	if (iovcnt == 1 && prp_ok)
		return opc == PNVME_NVM_READ
			       ? pnvme_read(qp, ns, iov[0].iov_base, slba, nlb, io_flags, cb, arg)
			       : pnvme_write(qp, ns, iov[0].iov_base, slba, nlb, io_flags, cb, arg);

	if (prp_ok && iovcnt > 1 && prp_compatible(qp, iov, iovcnt, total)) {
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

	if (sgl) {
		int rc = submit_sgl(qp, ns, opc, iov, iovcnt, slba, nlb, io_flags, cb, arg, fn);
		if (rc != SGL_CANNOT)
			return rc;
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
		if (rc)
			return iov_req_cut(r, rc, iovcnt - i);
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
