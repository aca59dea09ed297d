/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qpair.c - submission and completion queue pairs (admin and I/O), request
 * trackers, PRP construction, the NVM I/O commands and their sync helpers.
 *
 * Queue mechanics follow NVMe Base 2.0 §3.3.1 (memory-based transport queue
 * model): the host owns the SQ tail and the CQ head, the controller the SQ
 * head (reported in each CQE's SQHD) and the CQ tail (found through the phase
 * tag, which the controller inverts on every pass through the CQ).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctrl_priv.h"
#include "tcp/host.h"

/* Depth = requests outstanding at once; the rings have one entry more (ctrl.h). */
#define DEFAULT_IO_DEPTH 255u  /* 256-entry rings */
#define QPAIR_FLAGS (PNVME_QPAIR_DB_IMMEDIATE | PNVME_QPAIR_LAZY_CQ_DB)

/* ------------------------------------------------------------------------ */
/* Creation and teardown                                                    */
/* ------------------------------------------------------------------------ */

int qpair_alloc(struct pnvme_ctrl *ctrl, uint16_t qid, uint32_t qsize, uint32_t timeout_ms,
		uint32_t flags, uint32_t max_retries, struct pnvme_qpair **out)
{
	struct pnvme_qpair *qp;
	uint64_t iova;
	int rc;

	qp = calloc(1, sizeof(*qp));
	if (!qp)
		return pnvme_fail(-ENOMEM, "out of memory for a queue pair");
	qp->ctrl = ctrl;
	qp->qid = qid;
	qp->qsize = qsize;
	qp->nr_trk = qsize - 1;
	qp->cq_size = qsize;
	if (flags & PNVME_QPAIR_LAZY_CQ_DB) {
		uint32_t mqes = (uint32_t)PNVME_GET(ctrl->cap, PNVME_CAP_MQES) + 1;
		qp->cq_size = 2 * qsize < mqes ? 2 * qsize : mqes;
	}
	/*
	 * The controller sees as occupied the entries we have not reaped (at most
	 * nr_trk: one per tracker) plus those reaped but not reported; it needs
	 * one free to post. So reporting every (cq_size - nr_trk) entries suffices.
	 */
	qp->cq_db_every = qp->cq_size - qp->nr_trk;
	qp->flags = flags;
	qp->phase = 1;
	qp->dma = &ctrl->dma;
	qp->xl.pg = &pnvme_dma_no_page; /* the empty cache */
	qp->max_retries = max_retries > 255 ? 255 : max_retries;
	qp->ctrl_dead = &ctrl->dead;
	/*
	 * I/O queue pairs follow the controller's generation; the admin queue,
	 * rebuilt by the reset itself, follows its doorbell gate (see
	 * ctrl_change_state()): closed while a reset has the controller disabled.
	 */
	qp->ctrl_gen = qid ? &ctrl->gen : &ctrl->admin_gen;
	qp->gen = __atomic_load_n(qp->ctrl_gen, __ATOMIC_ACQUIRE);
	if (ctrl->tcp) {
		/* The rings travel in capsules: doorbells are memory the TCP queue reads. */
		rc = tcp_queue_alloc(qp);
		if (rc)
			goto fail;
	} else {
		qp->sq_db = (volatile uint32_t *)(ctrl->bar + PNVME_SQ_TDBL(qid, ctrl->dstrd));
		qp->cq_db = (volatile uint32_t *)(ctrl->bar + PNVME_CQ_HDBL(qid, ctrl->dstrd));
	}
	pnvme_qpair_set_timeout(qp, timeout_ms);

	rc = pnvme_dma_alloc_raw(&ctrl->dma, (size_t)qsize * sizeof(struct pnvme_sqe),
				 PNVME_PAGE_SIZE, &qp->sq_mem, &iova);
	if (rc)
		goto fail;
	qp->sq = qp->sq_mem;
	rc = pnvme_dma_alloc_raw(&ctrl->dma, (size_t)qp->cq_size * sizeof(struct pnvme_cqe),
				 PNVME_PAGE_SIZE, &qp->cq_mem, &iova);
	if (rc)
		goto fail;
	qp->cq = qp->cq_mem;
	rc = pnvme_dma_alloc_raw(&ctrl->dma, (size_t)qp->nr_trk * PNVME_PAGE_SIZE,
				 PNVME_PAGE_SIZE, &qp->prp_mem, &iova);
	if (rc)
		goto fail;

	qp->trk = calloc(qp->nr_trk, sizeof(*qp->trk));
	qp->free_cids = calloc(qp->nr_trk, sizeof(*qp->free_cids));
	if (qp->max_retries)
		qp->saved_mem = calloc(qp->nr_trk, sizeof(*qp->saved_mem));
	if (!qp->trk || !qp->free_cids || (qp->max_retries && !qp->saved_mem)) {
		rc = pnvme_fail(-ENOMEM, "out of memory for %u request trackers", qp->nr_trk);
		goto fail;
	}
	for (uint32_t i = 0; i < qp->nr_trk; i++) {
		qp->trk[i].prp_list = (uint64_t *)((uint8_t *)qp->prp_mem + (size_t)i * PNVME_PAGE_SIZE);
		qp->trk[i].prp_iova = iova + (uint64_t)i * PNVME_PAGE_SIZE;
		if (qp->saved_mem)
			qp->trk[i].saved = &qp->saved_mem[i];
		qp->trk[i].cid = (uint16_t)i;
		/* Lowest command ids on top of the stack. */
		qp->free_cids[i] = (uint16_t)(qp->nr_trk - 1 - i);
	}
	qp->nr_free = qp->nr_trk;
	*out = qp;
	return 0;
fail:
	qpair_free(qp);
	return rc;
}

void qpair_free(struct pnvme_qpair *qp)
{
	if (!qp)
		return;
	if (qp->tq)
		tcp_queue_free(qp);
	pnvme_dma_free_raw(&qp->ctrl->dma, qp->sq_mem);
	pnvme_dma_free_raw(&qp->ctrl->dma, qp->cq_mem);
	pnvme_dma_free_raw(&qp->ctrl->dma, qp->prp_mem);
	free(qp->trk);
	free(qp->free_cids);
	free(qp->saved_mem);
	free(qp);
}

/*
 * Stop a queue pair for good with `err`: submissions fail at once (the
 * submit paths' one "controller gone?" load now reads this queue's own flag,
 * so the hot path pays nothing extra) and the next poll fails what is left.
 */
static void qpair_stop(struct pnvme_qpair *qp, int err)
{
	qp->err = err;
	__atomic_store_n(&qp->stopped, 1, __ATOMIC_RELAXED);
	qp->ctrl_dead = &qp->stopped;
}

/* The error a stopped (or dead-controller) queue pair gives submitters. */
static __attribute__((cold, noinline)) int qpair_gone(const struct pnvme_qpair *qp)
{
	if (qp->err)
		return pnvme_fail(qp->err, "queue pair %u is stopped (%s)", qp->qid,
				  qp->err == -ECANCELED ? "being destroyed"
							: "could not be re-created after a reset");
	return pnvme_fail(-ENODEV, "controller is gone");
}

static void noop_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	(void)arg;
	(void)err;
	(void)cqe;
}

void qpair_shadow_setup(struct pnvme_qpair *qp)
{
	struct pnvme_ctrl *ctrl = qp->ctrl;

	if (!ctrl->dbbuf_on || qp->qid == 0) {
		qp->sdb_sq = qp->sdb_cq = NULL;
		qp->ei_sq = qp->ei_cq = NULL;
		return;
	}
	/* Same layout as the doorbell registers, without the 1000h offset (§5.8). */
	size_t sq = (PNVME_SQ_TDBL(qp->qid, ctrl->dstrd) - PNVME_REG_DBS) / 4;
	size_t cq = (PNVME_CQ_HDBL(qp->qid, ctrl->dstrd) - PNVME_REG_DBS) / 4;
	if ((cq + 1) * sizeof(uint32_t) > PNVME_PAGE_SIZE) {
		/* Outside the one shadow page: this queue keeps the MMIO doorbells. */
		qp->sdb_sq = qp->sdb_cq = NULL;
		qp->ei_sq = qp->ei_cq = NULL;
		return;
	}
	qp->sdb_sq = &ctrl->dbbuf[sq];
	qp->sdb_cq = &ctrl->dbbuf[cq];
	qp->ei_sq = &ctrl->eventidx[sq];
	qp->ei_cq = &ctrl->eventidx[cq];
	__atomic_store_n(qp->sdb_sq, 0, __ATOMIC_RELAXED);
	__atomic_store_n(qp->sdb_cq, 0, __ATOMIC_RELAXED);
}

void qpair_db_zero(struct pnvme_qpair *qp)
{
	if (qp->ctrl->be.db_polled) {
		db_write(qp->sq_db, 0);
		db_write(qp->cq_db, 0);
	}
}

void qpair_ring_reset(struct pnvme_qpair *qp)
{
	qp->sq_tail = 0;
	qp->sq_head = 0;
	qp->sq_db_tail = 0;
	qp->cq_head = 0;
	qp->phase = 1;
	qp->cq_db_head = 0;
	memset(qp->cq, 0, (size_t)qp->cq_size * sizeof(*qp->cq));
}

void pnvme_qpair_opts_default(struct pnvme_qpair_opts *opts)
{
	if (!opts)
		return;
	memset(opts, 0, sizeof(*opts));
	opts->depth = 0;
	opts->timeout_ms = 0;
	opts->flags = 0;
	opts->max_retries = 0;
}

/* Creations of one queue pair's queues a reset may interrupt before it gives up. */
#define QPAIR_CREATE_TRIES 4u

/*
 * Create the queue pair's CQ, then its SQ (Base 2.0 §3.3.1.2: a completion
 * queue must exist before its submission queue), on a live controller, with
 * the admin lock held. On success *gen is the controller generation the
 * queues exist in.
 *
 * A reset can run inside these two commands, on this thread: when an admin
 * command times out (one of ours, or another thread's Abort that our wait
 * reaps), the admin wait runs the reset before it returns. The reset's
 * CC.EN = 0 deleted every I/O queue (Base 2.0 §3.7.2), so what the commands
 * answered no longer describes the device (a Delete I/O CQ after a failed
 * Create I/O SQ would then fail with Invalid Queue Identifier): the queues
 * are created again, in the new generation. Only a refusal in an unchanged
 * generation, a dead controller, or resets inside QPAIR_CREATE_TRIES tries
 * in a row end it. Returns 0, -ENODEV (dead), or the errno of the refusal.
 */
static int queues_create(struct pnvme_qpair *qp, uint32_t *gen_out)
{
	struct pnvme_ctrl *ctrl = qp->ctrl;
	char why[256];
	int rc;

	for (unsigned try = 1;; try++) {
		uint32_t gen = __atomic_load_n(&ctrl->gen, __ATOMIC_ACQUIRE);
		enum ctrl_state st = ctrl_state(ctrl);

		if (st == CTRL_DEAD)
			return pnvme_fail(-ENODEV, "controller is gone");
		if (st != CTRL_LIVE)
			return pnvme_fail(-EBUSY, "controller is %s", st == CTRL_DELETING ?
					  "being closed" : "being reset by this thread");
		rc = ctrl->tr->queue_create(qp);
		if (gen == __atomic_load_n(&ctrl->gen, __ATOMIC_ACQUIRE)) {
			if (rc == 0)
				*gen_out = gen;
			return rc;
		}
		/* A reset ran inside: the queues (if any) are gone with it. */
		snprintf(why, sizeof(why), "%s", rc ? pnvme_last_error()
						       : "both created, then deleted by the reset");
		if (try == QPAIR_CREATE_TRIES)
			return pnvme_fail(rc ? rc : -EIO, "queue %u: the controller was reset during "
					  "each of %u tries to create its queues (last: %s)",
					  qp->qid, QPAIR_CREATE_TRIES, why);
		log_notice("queue %u: the controller was reset while its queues were being "
			   "created (%s): creating them again", qp->qid, why);
	}
}

int pnvme_qpair_create(struct pnvme_ctrl *ctrl, const struct pnvme_qpair_opts *opts,
		       struct pnvme_qpair **out)
{
	struct pnvme_qpair_opts o;
	struct pnvme_qpair *qp = NULL;
	uint32_t mqes, entries, gen;
	uint16_t qid = 0;
	int rc;

	if (!ctrl || !out)
		return pnvme_fail(-EINVAL, "qpair_create: NULL %s", !ctrl ? "controller" : "out");
	*out = NULL;
	/* Queues hold at most CAP.MQES + 1 entries (MQES is 0's based), so depth <= MQES. */
	mqes = (uint32_t)PNVME_GET(ctrl->cap, PNVME_CAP_MQES);
	if (opts)
		o = *opts;
	else
		pnvme_qpair_opts_default(&o);
	if (o.flags & ~QPAIR_FLAGS)
		return pnvme_fail(-EINVAL, "qpair opts: unknown flag bits 0x%x (known: 0x%x)",
				  o.flags & ~QPAIR_FLAGS, QPAIR_FLAGS);
	if (o.depth == 0)
		o.depth = DEFAULT_IO_DEPTH < mqes ? DEFAULT_IO_DEPTH : mqes;

	if (o.depth < 1 || o.depth > mqes)
		return pnvme_fail(-EINVAL, "qpair_create: depth %u outside 1..%u (CAP.MQES: "
				  "queues of at most %u entries)", o.depth, mqes, mqes + 1);
	if (o.depth > PNVME_MAX_QUEUE_ENTRIES - 1)
		return pnvme_fail(-EINVAL, "qpair_create: depth %u above %u (queues of at most "
				  "%u entries: command ids keep 4 bits for a generation)", o.depth,
				  PNVME_MAX_QUEUE_ENTRIES - 1, PNVME_MAX_QUEUE_ENTRIES);
	entries = o.depth + 1;
	if (ctrl_is_dead(ctrl))
		return pnvme_fail(-ENODEV, "qpair_create: controller is gone");

	pthread_mutex_lock(&ctrl->admin_lock);
	enum ctrl_state st = ctrl_state(ctrl);
	if (st != CTRL_LIVE) {
		/* (Other threads wait for a reset to end: only its own callbacks see it.) */
		rc = pnvme_fail(st == CTRL_DEAD ? -ENODEV : -EBUSY, "qpair_create: controller is "
				"%s", st == CTRL_DEAD ? "gone" : st == CTRL_DELETING ? "being closed"
							      : "being reset by this thread");
		goto unlock;
	}
	for (uint16_t i = 1; i <= ctrl->max_io_queues; i++) {
		if (!ctrl->qid_used[i]) {
			qid = i;
			break;
		}
	}
	if (qid == 0) {
		rc = pnvme_fail(-EBUSY, "qpair_create: all %u I/O queues granted by the "
				"controller are in use", ctrl->max_io_queues);
		goto unlock;
	}
	rc = qpair_alloc(ctrl, qid, entries, o.timeout_ms ? o.timeout_ms : ctrl->opts.io_timeout_ms,
			 o.flags, o.max_retries, &qp);
	if (rc)
		goto unlock;
	/*
	 * A reset run inside the creation may call the reset callback, which
	 * may create a queue pair: the identifier is taken from here on. The
	 * queues exist in the generation queues_create() returns.
	 */
	ctrl->qid_used[qid] = 1;
	rc = queues_create(qp, &gen);
	if (rc) {
		ctrl->qid_used[qid] = 0;
		goto free_qp;
	}
	qp->gen = gen;
	qp->next = ctrl->qpairs;
	ctrl->qpairs = qp;
	pthread_mutex_unlock(&ctrl->admin_lock);
	*out = qp;
	return 0;
free_qp:
	qpair_free(qp);
unlock:
	pthread_mutex_unlock(&ctrl->admin_lock);
	return rc;
}

static int reap(struct pnvme_qpair *qp, uint32_t max);

/*
 * PCIe: Base 2.0 §3.3.1.3, delete the SQ first; the controller aborts what
 * it had not completed. Reap what it posted, then delete the CQ. (After a
 * reset the queues exist on the device only once re-created.) The queue
 * pair is stopped before that last reap: a callback that submits gets
 * -ECANCELED instead of ringing the deleted SQ. Admin lock held.
 */
int pcie_queue_delete(struct pnvme_qpair *qp)
{
	struct pnvme_ctrl *ctrl = qp->ctrl;
	uint32_t gen = qp->gen;
	int rc, rc2;

	rc = pnvme_delete_io_sq(ctrl, qp->qid);
	qpair_stop(qp, -ECANCELED);
	qp->in_poll = 1;
	(void)reap(qp, 0);
	qp->in_poll = 0;
	if (gen == __atomic_load_n(&ctrl->gen, __ATOMIC_ACQUIRE)) {
		rc2 = pnvme_delete_io_cq(ctrl, qp->qid);
		if (!rc)
			rc = rc2;
	}
	/*
	 * A reset run inside these admin waits (an admin command timed out,
	 * the Delete itself or another thread's) disabled the controller,
	 * which deleted both queues: done, unless it died.
	 */
	if (gen != __atomic_load_n(&ctrl->gen, __ATOMIC_ACQUIRE) && !ctrl_is_dead(ctrl))
		rc = 0;
	return rc;
}

int pnvme_qpair_destroy(struct pnvme_qpair *qp)
{
	struct pnvme_ctrl *ctrl;
	int rc = 0;

	if (!qp)
		return 0;
	if (qp->in_poll)
		return pnvme_fail(-EDEADLK, "pnvme_qpair_destroy from a completion callback of "
				  "the same queue pair");
	ctrl = qp->ctrl;
	pnvme_qpair_flush(qp);
	pthread_mutex_lock(&ctrl->admin_lock);
	if (!ctrl_is_dead(ctrl) && qp->gen == __atomic_load_n(&ctrl->gen, __ATOMIC_ACQUIRE) &&
	    !qp->err)
		rc = ctrl->tr->queue_delete(qp);
	/* Callbacks run below may try to submit: they get -ECANCELED. */
	qpair_stop(qp, -ECANCELED);
	qp->in_poll = 1;
	qpair_fail_all(qp, -ECANCELED);
	for (struct pnvme_qpair **pp = &ctrl->qpairs; *pp; pp = &(*pp)->next) {
		if (*pp == qp) {
			*pp = qp->next;
			break;
		}
	}
	ctrl->qid_used[qp->qid] = 0;
	pthread_mutex_unlock(&ctrl->admin_lock);
	qpair_free(qp);
	return rc;
}

uint16_t pnvme_qpair_id(const struct pnvme_qpair *qp)
{
	return qp ? qp->qid : 0;
}

uint32_t pnvme_qpair_depth(const struct pnvme_qpair *qp)
{
	return qp ? qp->nr_trk : 0; /* one tracker per slot: entries - 1 */
}

uint32_t pnvme_qpair_outstanding(const struct pnvme_qpair *qp)
{
	return qp ? qp->outstanding : 0;
}

void pnvme_qpair_set_timeout(struct pnvme_qpair *qp, uint32_t timeout_ms)
{
	if (!qp)
		return;
	if (timeout_ms == 0)
		timeout_ms = qp->ctrl->opts.io_timeout_ms;
	qp->timeout_ticks = pnvme_ms_to_ticks(timeout_ms);
	/* Scan for expired requests several times per timeout, at least every 1 ms. */
	qp->check_ticks = qp->timeout_ticks / 8;
	if (qp->check_ticks > pnvme_ms_to_ticks(1))
		qp->check_ticks = pnvme_ms_to_ticks(1);
	if (qp->check_ticks == 0)
		qp->check_ticks = 1;
}

void pnvme_qpair_get_stats(const struct pnvme_qpair *qp, struct pnvme_qpair_stats *stats)
{
	if (!stats)
		return;
	if (qp)
		*stats = qp->stats;
	else
		memset(stats, 0, sizeof(*stats));
}

void pnvme_qpair_reset_stats(struct pnvme_qpair *qp)
{
	if (qp)
		memset(&qp->stats, 0, sizeof(qp->stats));
}

void (*pnvme_test_reset_request_hook)(struct pnvme_ctrl *ctrl);

/* ------------------------------------------------------------------------ */
/* Submission                                                               */
/* ------------------------------------------------------------------------ */

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

/* Write the SQ tail doorbell (Base 2.0 §3.1.4.22). */
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

static inline void ring_sq(struct pnvme_qpair *qp)
{
	/*
	 * After a controller reset our SQ does not exist on the device until
	 * the next poll re-creates it: hold the doorbell until then. The full
	 * barrier in db_enter() also orders the SQE stores before the doorbell.
	 */
	if (unlikely(!db_enter(qp)))
		return;
	qp->sq_db_tail = qp->sq_tail;
	if (!qp->sdb_sq || shadow_db_update(qp->sdb_sq, qp->ei_sq, qp->sq_tail)) {
		db_write(qp->sq_db, qp->sq_tail); /* release: the SQEs come first */
		qp->stats.sq_doorbells++;
	}
	db_leave(qp);
}

void pnvme_qpair_flush(struct pnvme_qpair *qp)
{
	if (likely(qp != NULL) && qp->sq_tail != qp->sq_db_tail) {
		ring_sq(qp);
		if (unlikely(qp->tq != NULL))
			tcp_queue_flush(qp); /* the capsules leave now */
	}
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

/* Hand the filled SQE at the tail to the device side of the ring. */
static ALWAYS_INLINE void sqe_post(struct pnvme_qpair *qp, struct pnvme_tracker *trk,
			    const struct pnvme_sqe *sqe, pnvme_cmd_cb cb, void *arg)
{
	trk->cb = cb ? cb : noop_cb;
	trk->arg = arg;
	trk->state = TRK_ACTIVE;
	trk->sq_slot = (uint16_t)qp->sq_tail;
	trk->deadline = pnvme_ticks() + qp->timeout_ticks;
	if (unlikely(trk->saved != NULL)) {
		*trk->saved = *sqe; /* retries enabled: keep the command */
		trk->retries = 0;
	}
	if (++qp->sq_tail == qp->qsize)
		qp->sq_tail = 0;
	qp->outstanding++;
	qp->stats.submitted++;
	if (qp->flags & PNVME_QPAIR_DB_IMMEDIATE)
		ring_sq(qp);
}

/* Give back a tracker taken by sqe_get() when the command could not be built. */
static inline void sqe_putback(struct pnvme_qpair *qp, uint16_t cid)
{
	qp->free_cids[qp->nr_free++] = (uint16_t)(cid & CID_IDX_MASK);
}

/*
 * Fill PRP1/PRP2 for `len` bytes at `buf` (Base 2.0 §4.1.1: PRP entries and
 * lists). The first entry may carry a dword-aligned offset; the rest are page
 * aligned. More than two pages use the tracker's preallocated list page, which
 * holds 512 entries: enough for the 2 MiB per-command cap.
 */
static ALWAYS_INLINE int build_prps(struct pnvme_qpair *qp, struct pnvme_tracker *trk, const void *buf,
			     size_t len, struct pnvme_sqe *sqe)
{
	uint64_t iova;

	/*
	 * [buf, buf + len) must lie inside one live allocation. Most I/O reuses
	 * the 2 MiB run of the previous buffer: the cache hands its descriptor
	 * over, and the owner word of the first granule bounds the range.
	 */
	if (unlikely(pnvme_dma_cached_xlate(qp->dma, &qp->xl, (uintptr_t)buf, len, &iova) != 0))
		return -EINVAL;
	if (unlikely(iova & 3))
		return pnvme_fail(-EINVAL, "buffer %p is misaligned: data buffers must be dword "
				  "(4-byte) aligned (Base 2.0 §4.1.1)", buf);
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
		return pnvme_fail(-EINVAL, "transfer of %zu bytes needs more than one PRP list page",
				  len + first);
	uint64_t *list = trk->prp_list;
	for (uint32_t i = 0; i < n; i++)
		list[i] = next + ((uint64_t)i << PNVME_PAGE_SHIFT);
	sqe->prp2 = trk->prp_iova;
	return 0;
}

/* Generic submission of a caller-built command (admin and I/O passthrough). */
int qpair_submit_raw(struct pnvme_qpair *qp, const struct pnvme_sqe *cmd, void *dma_buf,
		     size_t len, pnvme_cmd_cb cb, void *arg)
{
	struct pnvme_tracker *trk;
	struct pnvme_sqe *sqe;
	uint16_t cid;

	if (unlikely(qpair_gone_flag(qp)))
		return qpair_gone(qp);
	if (len > qp->ctrl->max_xfer)
		return pnvme_fail(-EINVAL, "transfer of %zu bytes exceeds the controller's "
				  "limit of %u bytes (MDTS)", len, qp->ctrl->max_xfer);
	if (len && !dma_buf)
		return pnvme_fail(-EINVAL, "data length %zu without a buffer", len);
	sqe = sqe_get(qp, &trk, &cid);
	if (!sqe)
		return -EAGAIN;
	*sqe = *cmd;
	sqe->cid = cid;
	sqe->flags = (uint8_t)(sqe->flags & ~(PNVME_SQE_PSDT_MASK << PNVME_SQE_PSDT_SHIFT));
	if (qp->tq) {
		/* Fabrics: SGLs only, any memory of the caller's (tcp/host.h). */
		tcp_sqe_data(sqe, dma_buf, len);
	} else if (len) {
		int rc = build_prps(qp, trk, dma_buf, len, sqe);

		if (rc != 0) {
			sqe_putback(qp, cid);
			return rc; /* the message says what is wrong with the buffer */
		}
	}
	/* len == 0: PRP1/PRP2 stay as the caller set them (e.g. queue ring IOVAs). */
	trk->opc = cmd->opc;
	sqe_post(qp, trk, sqe, cb, arg);
	if (unlikely(qp->tq != NULL) && (qp->flags & PNVME_QPAIR_DB_IMMEDIATE))
		tcp_queue_flush(qp);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Completion                                                               */
/* ------------------------------------------------------------------------ */

/* Drop the tracker's interest in its Abort; free the context if the Abort is done. */
static void abort_release(struct pnvme_tracker *trk)
{
	struct abort_ctx *a = trk->abort;

	if (!a)
		return;
	trk->abort = NULL;
	if (__atomic_exchange_n(&a->state, AB_ORPHAN, __ATOMIC_ACQ_REL) != AB_PENDING)
		free(a);
}

static void abort_done(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct abort_ctx *a = arg;
	int result = err ? AB_FAILED :
		     (cqe->dw0 & PNVME_ABORT_NOT_ABORTED) ? AB_NOT_ABORTED : AB_ABORTED;

	if (__atomic_exchange_n(&a->state, result, __ATOMIC_ACQ_REL) == AB_ORPHAN)
		free(a);
}

/* Complete a tracker from the host side (timeout, deletion, reset, device gone). */
static void host_complete(struct pnvme_qpair *qp, uint16_t cid, int err, bool keep_cid)
{
	struct pnvme_tracker *trk = &qp->trk[cid];
	pnvme_cmd_cb cb = trk->cb;
	void *arg = trk->arg;
	struct pnvme_cqe cqe;

	host_cqe(&cqe, trk->cid, qp->qid);
	abort_release(trk);
	qp->outstanding--;
	if (keep_cid) {
		/* The device may still post this command id: keep it out of use. */
		trk->state = TRK_EXPIRED;
		qp->nr_expired++;
	} else {
		trk->state = TRK_FREE;
		qp->free_cids[qp->nr_free++] = cid;
	}
	trk->cb = NULL;
	qp->stats.completed++;
	if (cb)
		cb(arg, err, &cqe);
}

void qpair_fail_all(struct pnvme_qpair *qp, int err)
{
	/* TCP: no PDU of these requests may be sent (or land) once they complete. */
	if (qp->tq)
		tcp_queue_close(qp);
	for (uint32_t i = 0; i < qp->nr_trk; i++) {
		struct pnvme_tracker *trk = &qp->trk[i];
		if (trk->state == TRK_ACTIVE || trk->state == TRK_ABORTING) {
			host_complete(qp, (uint16_t)i, trk->state == TRK_ABORTING ? -ETIMEDOUT : err,
				      false);
		} else if (trk->state == TRK_EXPIRED) {
			trk->state = TRK_FREE;
			qp->nr_expired--;
			qp->free_cids[qp->nr_free++] = (uint16_t)i;
		}
	}
	/* Nothing is in flight any more: the rings are empty from our side. */
	qp->sq_head = qp->sq_tail;
}

/* Commands that may be sent again without changing their effect. */
static inline bool opc_retryable(uint8_t opc)
{
	return opc == PNVME_NVM_READ || opc == PNVME_NVM_WRITE || opc == PNVME_NVM_FLUSH ||
	       opc == PNVME_NVM_WRITE_ZEROES || opc == PNVME_NVM_DSM;
}

/* Report a kind of device misbehaviour once per queue pair. */
static void warn_once(struct pnvme_qpair *qp, unsigned bit, const char *what, unsigned v)
{
	if (qp->warned & (1u << bit))
		return;
	qp->warned |= 1u << bit;
	log_err("queue %u: %s (%u); ignored, counted in the queue statistics", qp->qid, what, v);
}

/*
 * A CQE that is not the plain completion of an ACTIVE request: a late one for
 * a request we aborted or timed out, or a device bug (CID out of range, not
 * outstanding, already completed). Returns true if a callback ran.
 */
static bool cqe_slow(struct pnvme_qpair *qp, const struct pnvme_cqe *cqe, uint16_t cid,
		     uint16_t status)
{
	uint16_t idx = (uint16_t)(cid & CID_IDX_MASK);
	struct pnvme_tracker *trk = idx < qp->nr_trk && qp->trk[idx].cid == cid ? &qp->trk[idx]
									 : NULL;

	if (trk && trk->state == TRK_ABORTING) {
		/* The command finished, or was aborted at our request: it timed out. */
		uint16_t st = (uint16_t)(status >> 1);
		pnvme_cmd_cb cb = trk->cb;
		void *arg = trk->arg;
		int err = 0;
		if (PNVME_STATUS_CODE(st) == PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_ABORT_REQ))
			err = -ETIMEDOUT;
		else if (st)
			err = pnvme_status_errno(st);
		abort_release(trk);
		trk->state = TRK_FREE;
		trk->cb = NULL;
		qp->free_cids[qp->nr_free++] = idx;
		qp->outstanding--;
		cb(arg, err, cqe);
		return true;
	}
	if (trk && trk->state == TRK_EXPIRED) {
		/* The device finally completed a command we timed out: recycle its id. */
		trk->state = TRK_FREE;
		qp->nr_expired--;
		qp->free_cids[qp->nr_free++] = idx;
		return false;
	}
	qp->stats.bad_cqes++;
	warn_once(qp, 0, idx < qp->nr_trk ? "completion for a command id that is not outstanding"
					  : "completion with an out-of-range command id", cid);
	return false;
}

/*
 * Re-post a request in the next SQ slot with its saved command (retry after
 * an error without DNR, or after a reset). Always succeeds.
 *
 * The command goes out under a fresh command identifier (the tracker's next
 * generation): the device may still post a completion for the attempt that
 * failed (a duplicate, a late one), and that must not complete the retry
 * while the device still owns the buffer. Such a CQE now names a CID that is
 * not outstanding and is counted as a bad CQE.
 */
static bool repost(struct pnvme_qpair *qp, uint16_t cid, const struct pnvme_sqe *cmd,
		   bool retry)
{
	struct pnvme_tracker *trk = &qp->trk[cid];
	uint32_t next = qp->sq_tail + 1 == qp->qsize ? 0 : qp->sq_tail + 1;
	struct pnvme_sqe *sqe = &qp->sq[qp->sq_tail];

	/* The tracker is ours already, so a slot is free (see sqe_get). */
	trk->cid = (uint16_t)((trk->cid + (1u << CID_IDX_BITS)) & 0xffffu);
	*sqe = *cmd;
	sqe->cid = trk->cid;
	trk->sq_slot = (uint16_t)qp->sq_tail;
	trk->state = TRK_ACTIVE;
	trk->deadline = pnvme_ticks() + qp->timeout_ticks;
	qp->sq_tail = next;
	if (retry)
		qp->stats.retries++;
	return true;
}

/*
 * After a controller reset (or death), bring this queue pair to the new
 * generation: wait for the reset to end, reap what the old CQ still holds,
 * decide the fate of every outstanding request, re-create CQ and SQ on the
 * device with the same rings, re-post what may be retried, then run the
 * callbacks of the rest. Returns 0, a negative errno (the queue pair is
 * stopped or the controller dead), or 1 when this thread is the one running
 * the reset (called from one of its callbacks): nothing to do until it ends.
 */
static int qpair_reconnect(struct pnvme_qpair *qp);

/*
 * Take the SQ head pointer of a batch's last CQE. It may only move forward,
 * up to our tail: anything else is untrusted device data gone wrong.
 */
static inline void sqhd_update(struct pnvme_qpair *qp, uint32_t sqhd)
{
	uint32_t adv = sqhd >= qp->sq_head ? sqhd - qp->sq_head : sqhd + qp->qsize - qp->sq_head;
	/* Only entries the doorbell announced can have been fetched. */
	uint32_t used = qp->sq_db_tail >= qp->sq_head ? qp->sq_db_tail - qp->sq_head
						      : qp->sq_db_tail + qp->qsize - qp->sq_head;

	if (likely(adv <= used)) {
		qp->sq_head = sqhd;
	} else {
		qp->stats.bad_sqhd++;
		warn_once(qp, 1, "completion with an impossible SQ head pointer", sqhd);
	}
}

/* Base 2.0 §4.2.4 phase-tag walk; shared by poll and reconnect. */
static ALWAYS_INLINE int reap(struct pnvme_qpair *qp, uint32_t max)
{
	uint32_t head = qp->cq_head;
	uint32_t limit = max ? max : UINT32_MAX;
	uint32_t sqhd = 0;
	uint16_t phase = qp->phase;
	int n = 0;

	for (;;) {
		struct pnvme_cqe *cqe = &qp->cq[head];
		uint16_t status = cqe_status_load(cqe);

		/* The entry is new when its phase tag matches ours. */
		if ((status & 1) != phase)
			break;
		/*
		 * The device writes the entry before flipping its phase tag; without
		 * this barrier the loads of CID and SQHD below could be satisfied
		 * before the status load above and see the previous pass's values.
		 * (The acquire load orders them for the CPUs; on arm64 the barrier
		 * also orders them against the device, an outer-shareable observer.
		 * On x86 both are free.)
		 */
		pnvme_rmb();
		uint16_t cid = cqe->cid;
		sqhd = cqe->sqhd; /* the last one of the batch is the one that counts */
		if (++head == qp->cq_size) {
			head = 0;
			phase ^= 1;
		}
		uint32_t idx = cid & CID_IDX_MASK;
		if (unlikely(idx >= qp->nr_trk || qp->trk[idx].cid != cid ||
			     qp->trk[idx].state != TRK_ACTIVE)) {
			if (cqe_slow(qp, cqe, cid, status))
				n++;
			continue;
		}
		struct pnvme_tracker *trk = &qp->trk[idx];
		int err = 0;
		if (unlikely(status >> 1)) {
			uint16_t st = (uint16_t)(status >> 1);
			if (trk->saved && !PNVME_STATUS_IS_DNR(st) && trk->retries < qp->max_retries &&
			    opc_retryable(trk->opc)) {
				trk->retries++;
				if (repost(qp, (uint16_t)idx, trk->saved, true))
					continue;
			}
			qp->stats.errors++;
			err = pnvme_status_errno(st);
		}
		pnvme_cmd_cb cb = trk->cb;
		void *arg = trk->arg;
		trk->state = TRK_FREE;
		qp->free_cids[qp->nr_free++] = (uint16_t)idx;
		qp->outstanding--;
		n++;
		cb(arg, err, cqe);
		if (unlikely((uint32_t)n == limit))
			break;
	}
	/*
	 * The head moved iff an entry was consumed (at most cq_size - 1 can be:
	 * the device sees our head doorbell only after this loop), and then
	 * `sqhd` is the last entry's.
	 */
	if (head != qp->cq_head) {
		sqhd_update(qp, sqhd);
		qp->cq_head = head;
		qp->phase = phase;
		/* Base 2.0 §3.1.4.23: release the consumed entries, once per batch (or later). */
		uint32_t unreported = head >= qp->cq_db_head ? head - qp->cq_db_head
							     : head + qp->cq_size - qp->cq_db_head;
		if (unreported >= qp->cq_db_every && likely(db_enter(qp))) {
			qp->cq_db_head = head;
			if (!qp->sdb_cq || shadow_db_update(qp->sdb_cq, qp->ei_cq, head)) {
				db_write(qp->cq_db, head); /* release: our CQE reads come first */
				qp->stats.cq_doorbells++;
			}
			db_leave(qp);
		}
	}
	qp->stats.completed += (uint64_t)n;
	return n;
}

/*
 * Abort commands the controller holds (ours and the application's): every
 * one not yet completed by the device, host-completed ones included (the
 * device may still be working on them). Admin lock held; slow path.
 */
static uint32_t aborts_outstanding(const struct pnvme_qpair *aq)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < aq->nr_trk; i++)
		if (aq->trk[i].state != TRK_FREE && aq->trk[i].opc == PNVME_ADM_ABORT)
			n++;
	return n;
}

/*
 * Send an Abort (Base 2.0 §5.1) for an expired request. Returns 0 when sent,
 * -EBUSY when the admin queue is busy right now (the next scan tries again:
 * the I/O path never blocks on the admin lock), -EDQUOT when the controller
 * already holds as many Aborts as it accepts (Identify Controller ACL, 0's
 * based, §5.17.2.1; one more would complete with Abort Command Limit
 * Exceeded, §5.1), another errno when no Abort can be sent.
 */
static int start_abort(struct pnvme_qpair *qp, uint16_t cid, uint64_t now)
{
	struct pnvme_ctrl *ctrl = qp->ctrl;
	struct pnvme_tracker *trk = &qp->trk[cid];
	struct pnvme_sqe cmd;
	struct abort_ctx *a;
	int rc;

	if (pthread_mutex_trylock(&ctrl->admin_lock) != 0)
		return -EBUSY;
	if (ctrl_state(ctrl) != CTRL_LIVE) {
		/* This thread is running a reset (a callback of it): the reset ends it anyway. */
		pthread_mutex_unlock(&ctrl->admin_lock);
		return -EBUSY;
	}
	if (aborts_outstanding(ctrl->adminq) >= (uint32_t)ctrl->id.acl + 1) {
		pthread_mutex_unlock(&ctrl->admin_lock);
		return -EDQUOT;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		pthread_mutex_unlock(&ctrl->admin_lock);
		return -ENOMEM;
	}
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = PNVME_ADM_ABORT;
	cmd.cdw10 = PNVME_SET(PNVME_ABORT_SQID, qp->qid) | PNVME_SET(PNVME_ABORT_CID, trk->cid);
	rc = qpair_submit_raw(ctrl->adminq, &cmd, NULL, 0, abort_done, a);
	pthread_mutex_unlock(&ctrl->admin_lock);
	if (rc) {
		free(a);
		return rc == -EAGAIN ? -EBUSY : rc;
	}
	trk->abort = a;
	trk->state = TRK_ABORTING;
	trk->deadline = now + ctrl->admin_timeout_ticks;
	qp->stats.aborts++;
	qp->stats.timeouts++;
	log_warn("queue %u: command id %u (opcode 0x%02x) timed out; aborting it", qp->qid,
		 trk->cid, trk->opc);
	return 0;
}

/*
 * Deadline scan and health check (slow path, at most every check_ticks).
 * The ladder of Linux's nvme_timeout: the CQ was reaped just before; a
 * request still outstanding past its deadline gets an Abort; one whose Abort
 * did not settle it by the admin timeout, or a controller fatal status,
 * resets the controller. Admin commands are not aborted: their expiry
 * completes them with -ETIMEDOUT and resets the controller after the poll.
 */
static void check_deadlines(struct pnvme_qpair *qp, uint64_t now)
{
	struct pnvme_ctrl *ctrl = qp->ctrl;
	uint32_t gen = __atomic_load_n(&ctrl->gen, __ATOMIC_ACQUIRE);
	const char *why = NULL;
	bool aborting = false, over_acl = false;

	qp->next_check = now + qp->check_ticks;
	if (!qp->tq && (int64_t)(now - qp->next_health) >= 0) {
		/* One register read per 100 ms tells a removed or failed device apart. */
		qp->next_health = now + pnvme_ms_to_ticks(100);
		uint32_t csts = mmio_read32(ctrl->bar, PNVME_REG_CSTS);
		if (unlikely(csts == UINT32_MAX)) {
			if (!ctrl_is_dead(ctrl))
				log_err("controller registers read all ones: device removed");
			ctrl_mark_dead(ctrl);
			return;
		}
		if (unlikely(PNVME_GET(csts, PNVME_CSTS_CFS)))
			why = "controller fatal status (CSTS.CFS)";
	}
	/* (Past the Abort Command Limit the scan goes on, to mark every expired request.) */
	for (uint32_t i = 0; i < qp->nr_trk && qp->outstanding && (!why || over_acl); i++) {
		struct pnvme_tracker *trk = &qp->trk[i];
		if (trk->state == TRK_ABORTING) {
			aborting = true;
			if ((int64_t)(now - trk->deadline) >= 0 && !why)
				why = "an aborted command did not complete";
			continue;
		}
		if (trk->state != TRK_ACTIVE || (int64_t)(now - trk->deadline) < 0)
			continue;
		if (qp->qid == 0) {
			qp->stats.timeouts++;
			log_warn("admin command id %u (opcode 0x%02x) timed out", i, trk->opc);
			host_complete(qp, (uint16_t)i, -ETIMEDOUT, true);
			/* Under the admin lock, inside its poll: the poller runs it afterwards. */
			ctrl_defer_reset(ctrl, gen, "an admin command timed out");
			continue;
		}
		int ar = over_acl ? -EDQUOT : start_abort(qp, (uint16_t)i, now);
		if (ar == 0) {
			aborting = true;
		} else if (ar == -EDQUOT) {
			/*
			 * The controller holds all the Aborts it accepts: this request
			 * goes straight to the reset. It counts as timed out (ABORTING
			 * without an Abort, its deadline passed): it ends with
			 * -ETIMEDOUT unless its completion turns up first.
			 */
			if (!over_acl)
				log_warn("queue %u: command id %u (opcode 0x%02x) timed out with %u "
					 "Aborts outstanding, the controller's limit: resetting "
					 "instead", qp->qid, trk->cid, trk->opc,
					 (unsigned)ctrl->id.acl + 1);
			trk->state = TRK_ABORTING;
			trk->deadline = now;
			qp->stats.timeouts++;
			over_acl = true;
			if (!why)
				why = "more commands timed out than the controller accepts Aborts "
				      "for (Identify ACL)";
		} else if (ar != -EBUSY ||
			   (int64_t)(now - trk->deadline) >= (int64_t)ctrl->admin_timeout_ticks) {
			/* No Abort could be sent for a whole admin timeout: go on to a reset. */
			why = "a command timed out and could not be aborted";
		} else {
			aborting = true; /* admin queue busy: reap it below, try again next scan */
		}
	}
	if (qp->qid == 0) {
		if (why)
			ctrl_defer_reset(ctrl, gen, why);
		return;
	}
	/* Nobody may be reaping the admin queue: look at our Aborts' answers. */
	if (aborting && !why && pthread_mutex_trylock(&ctrl->admin_lock) == 0) {
		if (!ctrl->adminq->in_poll) {
			(void)pnvme_qpair_poll(ctrl->adminq, 0);
			ctrl_run_pending_reset(ctrl);
		}
		pthread_mutex_unlock(&ctrl->admin_lock);
	}
	/* Decided under the admin lock (deferred when polled from an admin callback). */
	if (why) {
		if (unlikely(pnvme_test_reset_request_hook != NULL))
			pnvme_test_reset_request_hook(ctrl);
		ctrl_request_reset(ctrl, gen, why);
	}
	if (qp->gen != qpair_ctrl_gen(qp))
		(void)qpair_reconnect(qp);
}

static int qpair_reconnect(struct pnvme_qpair *qp)
{
	struct pnvme_ctrl *ctrl = qp->ctrl;
	uint32_t gen;
	struct pnvme_sqe *keep = NULL;
	uint16_t *keep_cid = NULL, *fail_cid = NULL;
	bool *keep_retry = NULL;
	int *fail_err = NULL;
	uint32_t nk = 0, nf = 0;
	enum ctrl_state st;
	int rc = 0;

	/*
	 * Wait for the reset to end (its owner holds the admin lock throughout).
	 * Only then is what the old CQ holds final: the controller was disabled,
	 * no natural completion can follow. Reaping it then is the requests' last
	 * chance to complete on their own (as Linux's nvme_reap_pending_cqes()
	 * after the disable); reaping it earlier, between the generation change
	 * and CC.EN = 0, would miss completions posted in between and retry or
	 * fail commands the device had completed.
	 */
	pthread_mutex_lock(&ctrl->admin_lock);
	st = ctrl_state(ctrl);
	pthread_mutex_unlock(&ctrl->admin_lock);
	if (st != CTRL_LIVE && st != CTRL_DEAD)
		return 1; /* this thread runs the reset (or a close): after it ends */
	if (qp->qid == 0 && st != CTRL_DEAD)
		return 1; /* the reset rebuilds the admin queue itself */
	(void)reap(qp, 0);
	/*
	 * Callbacks just ran and may have reset the controller again: read the
	 * generation under the admin lock, which every reset holds, and keep it
	 * until our queues exist in that generation.
	 */
	pthread_mutex_lock(&ctrl->admin_lock);
	gen = __atomic_load_n(qp->ctrl_gen, __ATOMIC_ACQUIRE);
	st = ctrl_state(ctrl);
	if (st == CTRL_DEAD) {
		qp->gen = gen;
		pthread_mutex_unlock(&ctrl->admin_lock);
		qpair_fail_all(qp, -ENODEV);
		return -ENODEV;
	}
	if (st != CTRL_LIVE) {
		pthread_mutex_unlock(&ctrl->admin_lock);
		return 1;
	}
	qp->stats.reconnects++;
	keep = malloc((size_t)qp->nr_trk * sizeof(*keep));
	keep_cid = malloc((size_t)qp->nr_trk * sizeof(*keep_cid));
	fail_cid = malloc((size_t)qp->nr_trk * sizeof(*fail_cid));
	fail_err = malloc((size_t)qp->nr_trk * sizeof(*fail_err));
	keep_retry = malloc((size_t)qp->nr_trk * sizeof(*keep_retry));
	if (!keep || !keep_cid || !fail_cid || !fail_err || !keep_retry) {
		rc = -ENOMEM;
		pthread_mutex_unlock(&ctrl->admin_lock);
		goto fail_everything;
	}
	/* Entries in [sq_db_tail, sq_tail) never reached the device: send them as they are. */
	uint32_t unsent = qp->sq_tail >= qp->sq_db_tail ? qp->sq_tail - qp->sq_db_tail
							: qp->sq_tail + qp->qsize - qp->sq_db_tail;
	for (uint32_t i = 0; i < qp->nr_trk; i++) {
		struct pnvme_tracker *trk = &qp->trk[i];
		if (trk->state == TRK_EXPIRED) {
			trk->state = TRK_FREE;
			qp->nr_expired--;
			qp->free_cids[qp->nr_free++] = (uint16_t)i;
			continue;
		}
		if (trk->state != TRK_ACTIVE && trk->state != TRK_ABORTING)
			continue;
		uint32_t off = trk->sq_slot >= qp->sq_db_tail
				       ? trk->sq_slot - qp->sq_db_tail
				       : trk->sq_slot + qp->qsize - qp->sq_db_tail;
		if (trk->state == TRK_ABORTING) {
			fail_err[nf] = -ETIMEDOUT;
			fail_cid[nf++] = (uint16_t)i;
		} else if (off < unsent && qp->sq[trk->sq_slot].cid == trk->cid) {
			/* (A slot in the unsent range may have been reused since an old
			 * command of ours left it: only the CID tells whose it is.) */
			keep[nk] = qp->sq[trk->sq_slot];
			keep_retry[nk] = false;
			keep_cid[nk++] = (uint16_t)i;
		} else if (trk->saved && trk->retries < qp->max_retries && opc_retryable(trk->opc)) {
			trk->retries++;
			keep[nk] = *trk->saved;
			keep_retry[nk] = true;
			keep_cid[nk++] = (uint16_t)i;
		} else {
			fail_err[nf] = -EIO;
			fail_cid[nf++] = (uint16_t)i;
		}
	}
	qpair_ring_reset(qp);
	/*
	 * The queue pair joins the new generation only once its queues exist
	 * in it: until then its doorbells stay held (db_enter), also for
	 * anything a callback run inside the admin waits below submits. A reset
	 * run inside them (an admin timeout) means creating them again, in the
	 * generation after it (queues_create); the requests wait meanwhile.
	 */
	rc = queues_create(qp, &gen);
	if (rc == -ENODEV && ctrl_is_dead(ctrl)) {
		/* The reset run inside gave up on the device. */
		qp->gen = qpair_ctrl_gen(qp);
		pthread_mutex_unlock(&ctrl->admin_lock);
		qpair_fail_all(qp, -ENODEV);
		free(keep);
		free(keep_cid);
		free(keep_retry);
		free(fail_cid);
		free(fail_err);
		return -ENODEV;
	}
	if (rc == 0)
		qp->gen = gen;
	pthread_mutex_unlock(&ctrl->admin_lock);
	if (rc)
		goto fail_everything;
	for (uint32_t k = 0; k < nk; k++) {
		if (!repost(qp, keep_cid[k], &keep[k], keep_retry[k])) {
			fail_err[nf] = -EIO;
			fail_cid[nf++] = keep_cid[k];
		}
	}
	log_notice("queue %u re-created after controller reset: %u request(s) resubmitted, "
		   "%u failed", qp->qid, nk, nf);
	for (uint32_t k = 0; k < nf; k++) {
		struct pnvme_tracker *trk = &qp->trk[fail_cid[k]];
		if (trk->state == TRK_ABORTING)
			trk->state = TRK_ACTIVE;
		host_complete(qp, fail_cid[k], fail_err[k], false);
	}
	free(keep);
	free(keep_cid);
	free(keep_retry);
	free(fail_cid);
	free(fail_err);
	return 0;

fail_everything:
	log_err("queue %u could not be re-created after the controller reset (%s)", qp->qid,
		strerror(-rc));
	qpair_stop(qp, -EIO);
	qpair_ring_reset(qp);
	qpair_fail_all(qp, -EIO);
	free(keep);
	free(keep_cid);
	free(keep_retry);
	free(fail_cid);
	free(fail_err);
	return -EIO;
}

/*
 * NVMe/TCP: move the ring's entries over the connection and post what came
 * back to the CQ (tcp/tcp_queue.c); keep the association alive. A failed
 * connection resets (reconnects) the controller, as any transport error
 * does on fabrics (Linux's nvme_tcp_error_recovery): the admin queue defers
 * it to its poller, an I/O queue asks now and re-creates its queue at its
 * next poll.
 */
static __attribute__((cold, noinline)) void tcp_poll(struct pnvme_qpair *qp)
{
	struct pnvme_ctrl *ctrl = qp->ctrl;
	int rc = tcp_queue_poll(qp);

	if (qp->qid)
		tcp_keep_alive(ctrl);
	if (rc == 0)
		return;
	qp->tq->err = 0; /* reported once: the reconnection opens a new connection */
	if (qp->qid == 0) {
		if (ctrl_state(ctrl) == CTRL_LIVE) {
			log_warn("%s", pnvme_last_error());
			ctrl_defer_reset(ctrl, __atomic_load_n(&ctrl->gen, __ATOMIC_ACQUIRE),
					 "NVMe/TCP admin connection failed");
		}
	} else if (qp->gen == qpair_ctrl_gen(qp)) {
		log_warn("%s", pnvme_last_error());
		ctrl_request_reset(ctrl, qp->gen, "NVMe/TCP I/O connection failed");
	}
}

int pnvme_qpair_poll(struct pnvme_qpair *qp, uint32_t max)
{
	int n;

	if (unlikely(qp == NULL))
		return pnvme_fail(-EINVAL, "pnvme_qpair_poll: NULL queue pair");
	if (unlikely(qp->in_poll))
		return pnvme_fail(-EDEADLK, "pnvme_qpair_poll called from a completion callback "
				  "of the same queue pair");
	qp->in_poll = 1;
	if (unlikely(qp->gen != qpair_ctrl_gen(qp) || qp->err)) {
		int rc = qp->err ? qp->err : qpair_reconnect(qp);
		if (rc > 0) {
			/* A reset runs on this thread, below us: the queues wait for its end. */
			qp->in_poll = 0;
			return 0;
		}
		if (rc) {
			/* Stopped or dead: nothing is left hanging on this queue. */
			if (qp->outstanding || qp->nr_expired)
				qpair_fail_all(qp, rc);
			qp->in_poll = 0;
			return rc;
		}
	}
	if (qp->sq_tail != qp->sq_db_tail)
		ring_sq(qp);
	if (unlikely(qp->tq != NULL))
		tcp_poll(qp);
	qp->stats.polls++;
	n = reap(qp, max);
	if (n == 0)
		qp->stats.empty_polls++;
	if (qp->outstanding) {
		uint64_t now = pnvme_ticks();
		if (unlikely((int64_t)(now - qp->next_check) >= 0))
			check_deadlines(qp, now);
	}
	qp->in_poll = 0;
	if (unlikely(qpair_gone_flag(qp))) {
		/* Nothing more will come from the device: fail what is left. */
		if (qp->outstanding || qp->nr_expired) {
			qp->in_poll = 1;
			qpair_fail_all(qp, -ENODEV);
			qp->in_poll = 0;
		}
		return n ? n : -ENODEV;
	}
	return n;
}

bool pnvme_qpair_cq_ready(const struct pnvme_qpair *qp)
{
	if (!qp)
		return false;
	return (cqe_status_load(&qp->cq[qp->cq_head]) & 1) == qp->phase;
}

/*
 * Poll until *done is set (by a callback), bounded by the requests' own
 * deadlines. `lock` (may be NULL) is held around each poll (admin queue).
 */
int qpair_wait_flag(struct pnvme_qpair *qp, volatile int *done, pthread_mutex_t *lock)
{
	for (;;) {
		int rc = 0, finished;

		if (lock)
			pthread_mutex_lock(lock);
		if (!*done)
			rc = pnvme_qpair_poll(qp, 0);
		if (qp->qid == 0)
			ctrl_run_pending_reset(qp->ctrl);
		finished = *done;
		if (lock)
			pthread_mutex_unlock(lock);
		if (finished)
			return 0;
		if (rc < 0)
			return rc;
		if (rc == 0)
			ctrl_wait_hook(qp->ctrl);
	}
}

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
	if (unlikely(nlb == 0 || slba >= ns->nlba || nlb > ns->nlba - slba))
		return pnvme_fail(nlb == 0 ? -EINVAL : -ERANGE,
				  "LBA range %llu+%u outside namespace %u (%llu blocks)",
				  (unsigned long long)slba, nlb, ns->nsid,
				  (unsigned long long)ns->nlba);
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
	if (nlb > ns->max_lbas)
		return pnvme_fail(-EINVAL, "%u blocks exceed the per-command limit of %u "
				  "(MDTS %u bytes); split the request", nlb, ns->max_lbas,
				  ns->max_xfer);
	rc = check_range(ns, slba, nlb);
	if (rc)
		return rc;
	bool md_moves = ns->ms != 0 && !((io_flags & PNVME_IO_PRACT) && ns->ms == 8);
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
	if (unlikely(qp->tq != NULL) && (qp->flags & PNVME_QPAIR_DB_IMMEDIATE))
		tcp_queue_flush(qp);
	return 0;
}

/* Read and Write (NVM 1.0 §3.2.4, §3.2.6): SLBA in CDW10/11, NLB 0's based in CDW12. */
static ALWAYS_INLINE int submit_rw(struct pnvme_qpair *qp, const struct pnvme_ns *ns, uint8_t opc,
			    const void *buf, uint64_t slba, uint32_t nlb, uint32_t io_flags,
			    pnvme_cmd_cb cb, void *arg)
{
	struct pnvme_tracker *trk;
	struct pnvme_sqe *sqe;
	uint64_t end;
	uint16_t cid;

	if (unlikely(!io_args_ok(qp, ns)))
		return io_args_fail(qp, ns, opc == PNVME_NVM_READ ? "pnvme_read" : "pnvme_write");
	/*
	 * nlb in 1..max_lbas, known flags, [slba, slba + nlb) inside the
	 * namespace. Namespaces with metadata have fast_lbas 0: the slow path.
	 */
	if (unlikely(nlb - 1 >= ns->fast_lbas || (io_flags & ~(PNVME_IO_FUA | PNVME_IO_LR)) ||
		     __builtin_add_overflow(slba, nlb, &end) || end > ns->nlba))
		return submit_rw_slow(qp, ns, opc, buf, NULL, slba, nlb, io_flags, 0, 0, cb, arg);
	if (unlikely(qpair_gone_flag(qp)))
		return qpair_gone(qp);
	sqe = sqe_get(qp, &trk, &cid);
	if (unlikely(!sqe))
		return -EAGAIN;
	if (unlikely(build_prps(qp, trk, buf, (size_t)nlb << ns->lba_shift, sqe) != 0)) {
		sqe_putback(qp, cid);
		return -EINVAL; /* build_prps said what is wrong with the buffer */
	}
	rw_sqe(sqe, opc, cid, ns->nsid, 0, slba, (nlb - 1) | io_flags, 0, 0);
	trk->opc = opc;
	sqe_post(qp, trk, sqe, cb, arg);
	return 0;
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
	if (check_range(ns, slba, nlb))
		return nlb ? -ERANGE : -EINVAL;
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
		if (ranges[i].nlb && check_range(ns, ranges[i].slba, ranges[i].nlb))
			return -ERANGE;
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
