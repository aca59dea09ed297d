/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme/req.h - prepared requests: a Read or Write checked and built once,
 * then submitted many times with only a starting LBA.
 *
 * pnvme_read() / pnvme_write() check every argument, translate the buffer
 * and build the command on each call. An application that issues the same
 * kind of I/O over and over (a benchmark, a storage engine with fixed
 * buffers per slot) prepares a request instead:
 *
 *     struct pnvme_req req;
 *     pnvme_req_prep_read(qp, &req, ns, buf, 8, 0, done_cb, ctx);  // once
 *     pnvme_req_submit(qp, &req, slba);       // each time, e.g. from done_cb
 *     ...
 *     pnvme_req_release(&req);                // when done with it
 *
 * Preparing does what pnvme_read() does up to the submission: it checks the
 * queue pair, the namespace (same controller, no metadata, nlb within the
 * per-command limit), the flags and the buffer (inside one live pnvme DMA
 * allocation, dword aligned, large enough), translates the buffer and builds
 * the command's template (opcode, NSID, PRP entries or PRP list, NLB,
 * flags). It also takes one of the queue pair's request slots (trackers) for
 * the request to keep until pnvme_req_release(): a prepared request never
 * finds the queue full. pnvme_req_submit() then checks only what can change
 * between submissions, with one load and compare each: that the request is
 * not in flight, the LBA range, the queue pair's state, and whether any DMA
 * memory of the controller was freed or any namespace changed since the
 * request was checked; if so it checks the buffer and the namespace again
 * (a freed buffer is refused, a namespace formatted to another block size
 * rebuilds the template or refuses the request). Completions keep the
 * command-id generation check, timeouts, Abort and reset recovery of every
 * request: each submission completes exactly once.
 *
 * Threading: as the queue pair's (one thread at a time). A request belongs
 * to the queue pair it was prepared on.
 */
#ifndef PNVME_REQ_H
#define PNVME_REQ_H

#include <stdint.h>

#include <pnvme/api.h>
#include <pnvme/ctrl.h>
#include <pnvme/qpair.h>
#include <pnvme/spec.h>

PNVME_BEGIN_DECLS

/*
 * A prepared request. The application owns the memory (any storage, no
 * alignment beyond the type's); its contents are private to pnvme.
 */
struct pnvme_req {
	/* private: */
	struct pnvme_sqe sqe;        /* the command, less CID and SLBA */
	struct pnvme_qpair *qp;      /* prepared on this queue pair (NULL: released) */
	void *trk;                   /* the request slot it holds */
	const struct pnvme_ns *ns;
	const void *buf;
	uint64_t last_slba;          /* highest starting LBA inside the namespace */
	uint64_t epoch;              /* DMA frees + namespace changes seen at the last check */
	uint32_t nlb;
	uint32_t io_flags;
};

/**
 * Prepare `req` as a Read of `nlb` blocks into `buf` on queue pair `qp`
 * (namespace `ns`), completing through `cb(arg, ...)` (NULL: no callback).
 * `req` is uninitialised memory or a released request; preparing a request
 * that is still prepared leaks its request slot. Nothing is submitted.
 * @buf: pnvme DMA memory of the controller, dword aligned, holding
 *       nlb * ns->block_bytes bytes, inside one allocation (any memory on
 *       NVMe/TCP)
 * @nlb: 1..ns->max_lbas (no splitting)
 * @io_flags: PNVME_IO_FUA | PNVME_IO_LR
 * Returns 0, -EINVAL (NULL argument, a namespace of another controller, nlb
 * out of range, unknown flags, a namespace with metadata: use
 * pnvme_read_md(), a bad buffer), -ENODEV (namespace removed, controller
 * gone), -ECANCELED / -EIO (queue pair stopped), -EAGAIN (every request
 * slot of the queue pair is taken by outstanding or prepared requests).
 */
int pnvme_req_prep_read(struct pnvme_qpair *qp, struct pnvme_req *req,
			const struct pnvme_ns *ns, void *buf, uint32_t nlb, uint32_t io_flags,
			pnvme_cmd_cb cb, void *arg);
/** Prepare a Write of `nlb` blocks from `buf`; as pnvme_req_prep_read(). */
int pnvme_req_prep_write(struct pnvme_qpair *qp, struct pnvme_req *req,
			 const struct pnvme_ns *ns, const void *buf, uint32_t nlb,
			 uint32_t io_flags, pnvme_cmd_cb cb, void *arg);

/**
 * Submit prepared request `req` at starting LBA `slba` on `qp`, the queue
 * pair it was prepared on. Does not ring the doorbell (unless the queue pair
 * has PNVME_QPAIR_DB_IMMEDIATE). The callback runs once per submission, from
 * pnvme_qpair_poll(); the request may be submitted again from it.
 * Returns 0, -EINVAL (NULL, a request not prepared on this queue pair, its
 * buffer freed, or its namespace changed so that it no longer fits: see
 * pnvme_last_error()), -EBUSY (the request is in flight: submitted and its
 * callback not yet run), -ERANGE (slba + nlb beyond the namespace), -ENODEV
 * (namespace removed, controller gone), -ECANCELED / -EIO (queue pair
 * stopped).
 */
int pnvme_req_submit(struct pnvme_qpair *qp, struct pnvme_req *req, uint64_t slba);

/**
 * Give the request's slot back to its queue pair; `req` may then be
 * prepared again or its memory reused. Returns 0 (also for NULL or a
 * request released already) or -EBUSY while it is in flight. Release every
 * request before pnvme_qpair_destroy(): destroying the queue pair ends its
 * requests (in-flight ones complete with -ECANCELED) and they must not be
 * used again, not even released.
 */
int pnvme_req_release(struct pnvme_req *req);

PNVME_END_DECLS
#endif /* PNVME_REQ_H */
