/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pcie/ring.h - the submit path of a queue pair, top to bottom: take a
 * tracker and the SQ slot at the tail (sqe_get), describe the data with PRPs
 * (build_prps), hand the entry over (sqe_post), ring the SQ tail doorbell
 * (ring_sq: MMIO, or a shadow doorbell with its EventIdx), with the doorbell
 * handshake against a controller reset (db_enter / db_leave).
 *
 * Private to the library. Everything here is static inline, most of it
 * always inlined, so that both users, the queue pair's own commands
 * (pcie/qpair.c: qpair_submit_raw, pnvme_qpair_flush, the CQ head doorbell of
 * the completion loop) and the NVM I/O commands (core/io.c: pnvme_read,
 * pnvme_write...), build the command in place with no call on the way (the
 * per-I/O instruction count of benchmarks/percmd-cost/run.sh).
 */
#ifndef PNVME_PCIE_RING_H
#define PNVME_PCIE_RING_H

#include "core/ctrl_priv.h"
#include "pcie/lattrace.h"

/* The callback of a command submitted without one. */
static inline void noop_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	(void)arg;
	(void)err;
	(void)cqe;
}

/*
 * Shadow doorbell update (Base 2.0 §5.8): store the new value in memory, then
 * tell whether the MMIO doorbell is still needed, which is when the value
 * moved past the controller's EventIdx (the index it asked to hear about):
 * (u16)(new - eventidx - 1) < (u16)(new - old), the virtio event rule.
 */
static inline bool shadow_db_update(uint32_t *sdb, const uint32_t *ei, uint32_t value)
{
	/* Only this thread stores the shadow entry: a relaxed load reads our last value. */
	uint16_t old = (uint16_t)__atomic_load_n(sdb, __ATOMIC_RELAXED);

	/* Release: the SQEs (or the consumed CQEs) it announces come first. */
	__atomic_store_n(sdb, value, __ATOMIC_RELEASE);
	/*
	 * Full barrier: the controller must see the shadow value before we read
	 * its EventIdx (it stores EventIdx, full barrier, loads the shadow
	 * value: one of the two sides sees the other's store).
	 */
	pnvme_mb();
	uint16_t event = (uint16_t)__atomic_load_n(ei, __ATOMIC_RELAXED);
	return (uint16_t)((uint16_t)value - event - 1) < (uint16_t)((uint16_t)value - old);
}

/*
 * Doorbell handshake with ctrl_recover() (Dekker): announce the write, then
 * (full barrier) check that no reset has begun. A reset moves the generation
 * (full barrier) and then waits for every queue pair's db_busy to drop, so
 * either it sees us inside the write and waits, or we see its generation and
 * write nothing: no doorbell reaches a controller that is being reset.
 * (A full barrier per doorbell write: once per batch with batched doorbells.)
 */
static inline bool db_enter(struct pnvme_qpair *qp)
{
	__atomic_store_n(&qp->db_busy, 1, __ATOMIC_RELAXED);
	/* The full barrier of the handshake (store db_busy, then load the generation). */
	pnvme_mb();
	if (unlikely(qp->gen != __atomic_load_n(qp->ctrl_gen, __ATOMIC_RELAXED))) {
		__atomic_store_n(&qp->db_busy, 0, __ATOMIC_RELEASE);
		return false;
	}
	return true;
}

static inline void db_leave(struct pnvme_qpair *qp)
{
	__atomic_store_n(&qp->db_busy, 0, __ATOMIC_RELEASE);
}

/* The SQ tail doorbell write (Base 2.0 §3.1.4.22), inside a db_enter() window. */
static ALWAYS_INLINE void sq_db_write(struct pnvme_qpair *qp)
{
	qp->sq_db_tail = qp->sq_tail;
	if (!qp->sdb_sq || shadow_db_update(qp->sdb_sq, qp->ei_sq, qp->sq_tail)) {
		db_write(qp->sq_db, qp->sq_tail); /* release: the SQEs come first */
		qp->stats.sq_doorbells++;
	}
	LT_SQDB();
}

/* The CQ head doorbell write (Base 2.0 §3.1.4.23), inside a db_enter() window. */
static ALWAYS_INLINE void cq_db_write(struct pnvme_qpair *qp, uint32_t head)
{
	qp->cq_db_head = head;
	if (!qp->sdb_cq || shadow_db_update(qp->sdb_cq, qp->ei_cq, head)) {
		db_write(qp->cq_db, head); /* release: our CQE reads come first */
		qp->stats.cq_doorbells++;
	}
	LT_CQDB();
}

/* Write the SQ tail doorbell. */
static inline void ring_sq(struct pnvme_qpair *qp)
{
	/*
	 * After a controller reset our SQ does not exist on the device until
	 * the next poll re-creates it: hold the doorbell until then. The full
	 * barrier in db_enter() also orders the SQE stores before the doorbell.
	 */
	if (unlikely(!db_enter(qp)))
		return;
	sq_db_write(qp);
	db_leave(qp);
}

/*
 * Take a tracker and the SQ slot at the tail. Returns the SQE to fill, or
 * NULL when the trackers are exhausted (queue full).
 *
 * A free tracker implies a free SQ slot: the controller fetches in order, and
 * a command it completed was fetched with everything before it, so entries
 * not yet fetched number at most the requests not completed, which is at most
 * nr_trk - nr_free = qsize - 1 - nr_free. The SQ head the device reports
 * is therefore never needed here (and a lying one cannot make us overwrite
 * an entry it has not fetched).
 */
static ALWAYS_INLINE struct pnvme_sqe *sqe_get(struct pnvme_qpair *qp, struct pnvme_tracker **trk_out,
					uint16_t *cid_out)
{
	if (unlikely(qp->nr_free == 0))
		return NULL;
	uint16_t idx = qp->free_cids[--qp->nr_free];
	struct pnvme_tracker *trk = &qp->trk[idx];
	trk->cid = (uint16_t)((trk->cid + (1u << CID_IDX_BITS)) & 0xffffu);
	*cid_out = trk->cid;
	*trk_out = trk;
	return &qp->sq[qp->sq_tail];
}

/*
 * What a submission does beyond posting the entry (qp->post_slow, QP_POST_*):
 * keep a copy for retries, ring the doorbell at once, send the capsule.
 * Out of line: the plain path tests one word. Returns 0.
 */
int qpair_post_slow(struct pnvme_qpair *qp, struct pnvme_tracker *trk,
		    const struct pnvme_sqe *sqe);

/*
 * The tracker's part of a submission, and the ring's: the entry at the tail
 * is filled. Returns 0, so that a submit path can end with it and the call
 * in its rare branch is a tail call (no frame on the fast path).
 */
static ALWAYS_INLINE int sqe_commit(struct pnvme_qpair *qp, struct pnvme_tracker *trk,
				    const struct pnvme_sqe *sqe)
{
	uint32_t tail = qp->sq_tail;

	trk->state = TRK_ACTIVE;
	trk->sq_slot = (uint16_t)tail;
	trk->deadline = pnvme_ticks() + qp->timeout_ticks;
	if (++tail == qp->qsize)
		tail = 0;
	qp->sq_tail = tail;
	qp->posted++;
	if (unlikely(qp->post_slow != 0)) {
		if (qp->post_slow != QP_POST_IMMEDIATE)
			return qpair_post_slow(qp, trk, sqe);
		ring_sq(qp);
	}
	return 0;
}

/* Hand the filled SQE at the tail to the device side of the ring. Returns 0. */
static ALWAYS_INLINE int sqe_post(struct pnvme_qpair *qp, struct pnvme_tracker *trk,
				  const struct pnvme_sqe *sqe, pnvme_cmd_cb cb, void *arg)
{
	trk->cb = cb ? cb : noop_cb;
	trk->arg = arg;
	return sqe_commit(qp, trk, sqe);
}

/* Give back a tracker taken by sqe_get() when the command could not be built. */
static inline void sqe_putback(struct pnvme_qpair *qp, uint16_t cid)
{
	qp->free_cids[qp->nr_free++] = (uint16_t)(cid & CID_IDX_MASK);
}

/*
 * Fill PRP1/PRP2 for `len` bytes at IOVA `iova` (Base 2.0 §4.1.1: PRP
 * entries and lists). The first entry may carry a dword-aligned offset; the
 * rest are page aligned. More than two pages use the tracker's preallocated
 * list page, which holds 512 entries: enough for the 2 MiB per-command cap
 * (MAX_XFER_CAP, core/ctrl.c), so the refusal below is never reached
 * through the per-command limit.
 */
static ALWAYS_INLINE int prps_fill(struct pnvme_tracker *trk, uint64_t iova, size_t len,
				   struct pnvme_sqe *sqe)
{
	sqe->prp1 = iova;
	size_t first = PNVME_PAGE_SIZE - (size_t)(iova & (PNVME_PAGE_SIZE - 1));
	if (len <= first) {
		sqe->prp2 = 0;
		return 0;
	}
	uint64_t next = iova + first;
	len -= first;
	if (len <= PNVME_PAGE_SIZE) {
		sqe->prp2 = next;
		return 0;
	}
	uint32_t n = (uint32_t)((len + PNVME_PAGE_SIZE - 1) >> PNVME_PAGE_SHIFT);
	if (unlikely(n > PNVME_PAGE_SIZE / sizeof(uint64_t)))
		return -EINVAL; /* (the caller says why: prps_too_long()) */
	uint64_t *list = trk->prp_list;
	for (uint32_t i = 0; i < n; i++)
		list[i] = next + ((uint64_t)i << PNVME_PAGE_SHIFT);
	sqe->prp2 = trk->prp_iova;
	return 0;
}

/* The message of prps_fill()'s refusal (pcie/qpair.c). Returns -EINVAL. */
__attribute__((cold)) int prps_too_long(size_t len);

/*
 * PRPs for `len` bytes at `buf`, which must lie inside one live allocation
 * and be dword aligned. Most I/O reuses the 2 MiB run of the previous
 * buffer: the cache hands its descriptor over, and the owner word of the
 * first granule bounds the range.
 */
static ALWAYS_INLINE int build_prps(struct pnvme_qpair *qp, struct pnvme_tracker *trk,
				    const void *buf, size_t len, struct pnvme_sqe *sqe)
{
	uint64_t iova;

	if (unlikely(pnvme_dma_cached_xlate(qp->dma, &qp->xl, (uintptr_t)buf, len, &iova) != 0))
		return -EINVAL;
	if (unlikely(iova & 3))
		return pnvme_fail(-EINVAL, "buffer %p is misaligned: data buffers must be dword "
				  "(4-byte) aligned (Base 2.0 §4.1.1)", buf);
	if (unlikely(prps_fill(trk, iova, len, sqe) != 0))
		return prps_too_long(len);
	return 0;
}

#endif /* PNVME_PCIE_RING_H */
