/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qpair.c - submission and completion queue pairs (admin and I/O): creation
 * and teardown, request trackers, the submission of a caller-built command
 * and the doorbell flush (the inline mechanics are in pcie/ring.h), and the
 * completion path, pnvme_qpair_poll() and its CQ walk, top to bottom. The
 * NVM I/O commands are in core/io.c; timeouts, Aborts and the re-creation
 * of a queue pair after a controller reset in core/recovery.c.
 *
 * Queue mechanics follow NVMe Base 2.0 §3.3.1 (memory-based transport queue
 * model): the host owns the SQ tail and the CQ head, the controller the SQ
 * head (reported in each CQE's SQHD) and the CQ tail (found through the phase
 * tag, which the controller inverts on every pass through the CQ).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/ctrl_priv.h"
#include "pcie/ring.h"
#include "tcp/host.h"

/* Depth = requests outstanding at once; the rings have one entry more (ctrl.h). */
#define DEFAULT_IO_DEPTH 255u  /* 256-entry rings */
#define POLL_CLOCK_EVERY 64u   /* empty polls between two reads of the clock */
#define QPAIR_FLAGS (PNVME_QPAIR_DB_IMMEDIATE | PNVME_QPAIR_LAZY_CQ_DB | PNVME_QPAIR_NO_SPLIT | \
		     PNVME_QPAIR_PREFER_SGL | PNVME_QPAIR_CMB_SQ | PNVME_QPAIR_INTERRUPTS)

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
	qp->irq_fd = -1;
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
	qp->post_slow = (flags & QP_POST_IMMEDIATE) | (max_retries ? QP_POST_SAVE : 0);
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
		qp->slow |= QP_SLOW_TCP;
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
	qp->cq_end = qp->cq + qp->cq_size;
	rc = pnvme_dma_alloc_raw(&ctrl->dma, (size_t)qp->nr_trk * PNVME_PAGE_SIZE,
				 PNVME_PAGE_SIZE, &qp->prp_mem, &iova);
	if (rc)
		goto fail;

	if (flags & PNVME_QPAIR_CMB_SQ) {
		rc = cmb_sq_alloc(qp);
		if (rc)
			goto fail;
	}
	if (flags & PNVME_QPAIR_INTERRUPTS) {
		if (ctrl->tcp || !ctrl->be.ops || !ctrl->be.ops->irq_set) {
			rc = pnvme_fail(-ENOTSUP, "qpair: interrupts need a PCIe controller with "
					"MSI-X (this one is %s)", ctrl->tcp ? "on TCP" : "polled only");
			goto fail;
		}
		qp->irq_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (qp->irq_fd < 0) {
			rc = pnvme_fail(-errno, "qpair: eventfd: %s", strerror(errno));
			goto fail;
		}
	}

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
	if (qp->irq_fd >= 0) {
		/* The vector forgets the eventfd before its number can be reused. */
		(void)qp->ctrl->be.ops->irq_set(qp->ctrl->be.ctx, qp->qid, -1);
		close(qp->irq_fd);
	}
	cmb_sq_free(qp);
	pnvme_dma_free_raw(&qp->ctrl->dma, qp->sq_mem);
	pnvme_dma_free_raw(&qp->ctrl->dma, qp->cq_mem);
	pnvme_dma_free_raw(&qp->ctrl->dma, qp->prp_mem);
	free(qp->trk);
	free(qp->free_cids);
	free(qp->saved_mem);
	free(qp);
}

/* The error a stopped (or dead-controller) queue pair gives submitters. */
__attribute__((cold, noinline)) int qpair_gone(const struct pnvme_qpair *qp)
{
	if (qp->err)
		return pnvme_fail(qp->err, "queue pair %u is stopped (%s)", qp->qid,
				  qp->err == -ECANCELED ? "being destroyed"
							: "could not be re-created after a reset");
	return pnvme_fail(-ENODEV, "controller is gone");
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
	/*
	 * The EventIdx entries too: a controller need not reset them when the
	 * queue is created (QEMU 7.2 does not), and a value left by an earlier
	 * queue with this id would make our first doorbells look not needed
	 * (§5.8's test) and leave the commands unseen. Before any submission
	 * the controller has no reason to write them.
	 */
	__atomic_store_n(&ctrl->eventidx[sq], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&ctrl->eventidx[cq], 0, __ATOMIC_RELEASE);
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
int qpair_queues_create(struct pnvme_qpair *qp, uint32_t *gen_out)
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
	 * queues exist in the generation qpair_queues_create() returns.
	 */
	ctrl->qid_used[qid] = 1;
	rc = qpair_queues_create(qp, &gen);
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

static int reap(struct pnvme_qpair *qp, uint32_t max, bool limited);

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
	(void)reap(qp, 0, false);
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
	cmb_sq_free(qp); /* (the CMB's page map is the admin lock's, like the queue ids) */
	pthread_mutex_unlock(&ctrl->admin_lock);
	qpair_free(qp);
	return rc;
}

int pnvme_qpair_event_fd(const struct pnvme_qpair *qp)
{
	if (!qp)
		return pnvme_fail(-EINVAL, "qpair_event_fd: NULL queue pair");
	if (qp->irq_fd < 0)
		return pnvme_fail(-ENOTSUP, "qpair_event_fd: queue pair %u was created without "
				  "PNVME_QPAIR_INTERRUPTS", qp->qid);
	return qp->irq_fd;
}

int pnvme_qpair_event_ack(struct pnvme_qpair *qp)
{
	uint64_t n;

	if (!qp || qp->irq_fd < 0)
		return pnvme_fail(-EINVAL, "qpair_event_ack: no queue pair with interrupts");
	if (read(qp->irq_fd, &n, sizeof(n)) == (ssize_t)sizeof(n))
		return 1;
	return errno == EAGAIN ? 0 : pnvme_fail(-errno, "qpair_event_ack: %s", strerror(errno));
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
	return qp ? qpair_outstanding(qp) : 0;
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
	if (qp) {
		*stats = qp->stats;
		/* Derived, not counted on the I/O path. */
		stats->submitted = qp->posted - qp->posted_base;
		stats->completed = qp->done - qp->done_base;
	} else {
		memset(stats, 0, sizeof(*stats));
	}
}

void pnvme_qpair_reset_stats(struct pnvme_qpair *qp)
{
	if (qp) {
		memset(&qp->stats, 0, sizeof(qp->stats));
		qp->posted_base = qp->posted;
		qp->done_base = qp->done;
	}
}

/* ------------------------------------------------------------------------ */
/* Submission (the inline steps are in pcie/ring.h)                         */
/* ------------------------------------------------------------------------ */

void pnvme_qpair_flush(struct pnvme_qpair *qp)
{
	if (likely(qp != NULL) && qp->sq_tail != qp->sq_db_tail) {
		ring_sq(qp);
		if (unlikely(qp->tq != NULL))
			tcp_queue_flush(qp); /* the capsules leave now */
	}
}

int prps_too_long(size_t len)
{
	return pnvme_fail(-EINVAL, "transfer of %zu bytes needs more than one PRP list page", len);
}

int qpair_post_slow(struct pnvme_qpair *qp, struct pnvme_tracker *trk,
		    const struct pnvme_sqe *sqe)
{
	if (trk->saved != NULL) {
		*trk->saved = *sqe; /* retries enabled: keep the command */
		trk->retries = 0;
	}
	if (qp->post_slow & QP_POST_CMB)
		cmb_sqe_write(qp, trk->sq_slot, sqe); /* before any doorbell */
	if (qp->post_slow & QP_POST_IMMEDIATE) {
		ring_sq(qp);
		if (unlikely(qp->tq != NULL))
			tcp_queue_flush(qp); /* the capsule leaves now */
	}
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
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Completion                                                               */
/* ------------------------------------------------------------------------ */

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
 * outstanding, already completed).
 */
static void cqe_slow(struct pnvme_qpair *qp, const struct pnvme_cqe *cqe, uint16_t cid,
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
		qpair_abort_release(trk);
		if (!trk->owned)
			trk->cb = NULL;
		trk_release(qp, trk, idx);
		qp->done++;
		cb(arg, err, cqe);
		return;
	}
	if (trk && trk->state == TRK_EXPIRED) {
		/* The device finally completed a command we timed out: recycle its id. */
		qp->nr_expired--;
		trk_release(qp, trk, idx);
		return;
	}
	qp->stats.bad_cqes++;
	warn_once(qp, 0, idx < qp->nr_trk ? "completion for a command id that is not outstanding"
					  : "completion with an out-of-range command id", cid);
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
bool qpair_repost(struct pnvme_qpair *qp, uint16_t cid, const struct pnvme_sqe *cmd,
		   bool retry)
{
	struct pnvme_tracker *trk = &qp->trk[cid];
	uint32_t next = qp->sq_tail + 1 == qp->qsize ? 0 : qp->sq_tail + 1;
	struct pnvme_sqe *sqe = &qp->sq[qp->sq_tail];

	/* The tracker is ours already, so a slot is free (see sqe_get, ring.h). */
	trk->cid = (uint16_t)((trk->cid + (1u << CID_IDX_BITS)) & 0xffffu);
	*sqe = *cmd;
	sqe->cid = trk->cid;
	trk->sq_slot = (uint16_t)qp->sq_tail;
	trk->state = TRK_ACTIVE;
	trk->deadline = pnvme_ticks() + qp->timeout_ticks;
	if (qp->cmb_sq != NULL)
		cmb_sqe_write(qp, qp->sq_tail, sqe);
	qp->sq_tail = next;
	if (retry)
		qp->stats.retries++;
	return true;
}

/*
 * The completion of an ACTIVE request with an error status: posted again
 * when the queue pair retries and the command may be repeated (no DNR),
 * else completed with the status's errno. Out of line: the loop's plain
 * path passes err 0.
 */
static __attribute__((noinline)) void cqe_error(struct pnvme_qpair *qp, struct pnvme_tracker *trk,
					       uint16_t idx, const struct pnvme_cqe *cqe,
					       uint16_t status)
{
	uint16_t st = (uint16_t)(status >> 1);

	if (trk->saved && !PNVME_STATUS_IS_DNR(st) && trk->retries < qp->max_retries &&
	    opc_retryable(trk->opc)) {
		trk->retries++;
		if (qpair_repost(qp, idx, trk->saved, true))
			return;
	}
	qp->stats.errors++;
	pnvme_cmd_cb cb = trk->cb;
	void *arg = trk->arg;
	trk_release(qp, trk, idx);
	qp->done++;
	cb(arg, pnvme_status_errno(st), cqe);
}

/* A new CQE with an error status: the request's, or not a plain completion (cqe_slow). */
static __attribute__((noinline)) void cqe_status_slow(struct pnvme_qpair *qp,
						     const struct pnvme_cqe *cqe, uint16_t status)
{
	uint16_t cid = cqe->cid;
	uint16_t idx = (uint16_t)(cid & CID_IDX_MASK);

	if (idx >= qp->nr_trk || qp->trk[idx].cid != cid || qp->trk[idx].state != TRK_ACTIVE)
		cqe_slow(qp, cqe, cid, status);
	else
		cqe_error(qp, &qp->trk[idx], idx, cqe, status);
}

/*
 * Take the SQ head pointer of a batch's last CQE. It may only move forward,
 * up to our tail: anything else is untrusted device data gone wrong.
 */
static inline void sqhd_update(struct pnvme_qpair *qp, uint32_t sqhd)
{
	/* Usually the device fetched all we announced: that head is valid. */
	if (likely(sqhd == qp->sq_db_tail)) {
		qp->sq_head = sqhd;
		return;
	}
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

/* Base 2.0 §4.2.4 phase-tag walk; shared by poll, deletion and (qpair_reap) reconnect. */
static ALWAYS_INLINE int reap(struct pnvme_qpair *qp, uint32_t max, bool limited)
{
	struct pnvme_cqe *cqe = &qp->cq[qp->cq_head];
	uint16_t phase = qp->phase;
	uint64_t done = qp->done;

	/*
	 * qp->done counts each completion before its callback runs (a callback
	 * reading pnvme_qpair_outstanding() sees its own request gone); the
	 * difference is the poll's count. `limited`: only when max is not 0.
	 */
	for (;;) {
		uint16_t status = cqe_status_load(cqe);
		const struct pnvme_cqe *cur = cqe;

		/*
		 * The entry is new when its phase tag matches ours; a new entry
		 * of a successful command has nothing else in its status word,
		 * so the common case is one compare.
		 */
		if (unlikely(status != phase)) {
			if ((status & 1) != phase)
				break;
			/* An error status. (The barrier: see below.) */
			pnvme_rmb();
			LT_SEEN(qp->done == done);
			if (++cqe == qp->cq_end) {
				cqe = qp->cq;
				phase ^= 1;
			}
			cqe_status_slow(qp, cur, status);
		} else {
			/*
			 * The device writes the entry before flipping its phase tag;
			 * without this barrier the load of the CID below could be
			 * satisfied before the status load above and see the previous
			 * pass's value. (The acquire load orders them for the CPUs; on
			 * arm64 the barrier also orders them against the device, an
			 * outer-shareable observer. On x86 both are free.)
			 */
			pnvme_rmb();
			LT_SEEN(qp->done == done);
			uint16_t cid = cur->cid;
			if (++cqe == qp->cq_end) {
				cqe = qp->cq;
				phase ^= 1;
			}
			uint32_t idx = (uint32_t)cid & CID_IDX_MASK;
			if (unlikely(idx >= qp->nr_trk || qp->trk[idx].cid != cid ||
				     qp->trk[idx].state != TRK_ACTIVE)) {
				cqe_slow(qp, cur, cid, status);
			} else {
				struct pnvme_tracker *trk = &qp->trk[idx];
				pnvme_cmd_cb cb = trk->cb;
				void *arg = trk->arg;
				trk_release(qp, trk, idx);
				qp->done++;
				cb(arg, 0, cur);
			}
		}
		if (limited && unlikely(qp->done - done >= max))
			break;
	}
	/*
	 * The head moved iff an entry was consumed (at most cq_size - 1 can be:
	 * the device sees our head doorbell only after this loop). The SQ head
	 * pointer that counts is the last entry's; the device cannot have
	 * rewritten it, as it does not know the entry was consumed yet.
	 */
	uint32_t head = (uint32_t)(cqe - qp->cq);
	if (head != qp->cq_head) {
		LT_CBDONE();
		const struct pnvme_cqe *last = (head ? cqe : qp->cq_end) - 1;
		sqhd_update(qp, last->sqhd);
		qp->cq_head = head;
		qp->phase = phase;
		/*
		 * Base 2.0 §3.1.4.23: release the consumed entries, once per batch
		 * (or later), and in the same doorbell window announce what the
		 * callbacks submitted: the device hears of the next command before
		 * the poll returns, not at the application's next poll (at depth 1
		 * that is the whole turn-around; SPDK's delayed SQ doorbell does the
		 * same at the end of its completion loop). The order: with MMIO
		 * doorbells the CQ head first, then the SQ tail; with a shadow CQ
		 * head the SQ tail first: the device starts the next command at
		 * once and reads the new CQ head from the shadow entry when it posts
		 * its completion, so the CQ head's MMIO write is rarely needed
		 * (BENCHMARKS.md section 3: under QEMU one MMIO write per I/O
		 * instead of two, +10 % at depth 1). With MMIO for both, SQ first
		 * costs: the CQ write then waits for a device busy with the command.
		 */
		uint32_t every = qp->cq_db_every; /* 1 unless PNVME_QPAIR_LAZY_CQ_DB */
		if (every == 1 || (head >= qp->cq_db_head ? head - qp->cq_db_head
							  : head + qp->cq_size - qp->cq_db_head) >= every) {
			if (likely(db_enter(qp))) {
				if (qp->sdb_cq && qp->sq_tail != qp->sq_db_tail)
					sq_db_write(qp);
				cq_db_write(qp, head);
				if (qp->sq_tail != qp->sq_db_tail)
					sq_db_write(qp);
				db_leave(qp);
			}
		} else if (qp->sq_tail != qp->sq_db_tail) {
			ring_sq(qp);
		}
	}
	return (int)(qp->done - done);
}

#ifdef PNVME_LATTRACE
__thread struct lattrace pnvme_lt;

void pnvme_lattrace_get(uint64_t sum[LT_NR], uint64_t n[LT_NR])
{
	for (int k = 0; k < LT_NR; k++) {
		sum[k] = pnvme_lt.sum[k];
		n[k] = pnvme_lt.n[k];
	}
	memset(&pnvme_lt, 0, sizeof(pnvme_lt));
}
#endif

/* The whole CQ, out of line: for the re-creation after a reset (core/recovery.c). */
int qpair_reap(struct pnvme_qpair *qp)
{
	return reap(qp, 0, false);
}

/*
 * NVMe/TCP: move the ring's entries over the connection and post what came
 * back to the CQ (tcp/tcp_queue.c); keep the association alive. A failed
 * connection resets (reconnects) the controller, as any transport error
 * does on fabrics (Linux's nvme_tcp_error_recovery): the admin queue defers
 * it to its poller, an I/O queue asks now and re-creates its queue at its
 * next poll.
 */
static __attribute__((noinline)) void tcp_poll(struct pnvme_qpair *qp)
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

/*
 * The end of a poll that found the controller gone or the queue pair
 * stopped: nothing more will come from the device, so fail what is left;
 * and every later poll takes poll_slow() and says so again.
 */
static __attribute__((noinline)) int poll_gone(struct pnvme_qpair *qp, int n)
{
	qp->slow |= QP_SLOW_GONE;
	if (qpair_outstanding(qp) || qp->nr_expired)
		qpair_fail_all(qp, -ENODEV);
	qp->in_poll = 0;
	return n ? n : -ENODEV;
}

/*
 * After the reap: the statistics, and the deadline scan when one is due (at
 * most every check_ticks, only while requests are outstanding). The scan is
 * the one step of a fast-path poll that can find the controller gone (its
 * CSTS read) or stop the queue pair (a failed re-creation). A controller
 * that died on another thread moves the generation, which the next poll's
 * entry test sees.
 */
static ALWAYS_INLINE int poll_tail(struct pnvme_qpair *qp, int n, bool slow)
{
	qp->stats.polls++;
	if (n == 0)
		qp->stats.empty_polls++;
	/*
	 * The clock is read after a poll that found completions and after every
	 * POLL_CLOCK_EVERY-th empty one: an application spinning on an empty
	 * queue does not read the cycle counter each time round (under QEMU TCG
	 * every read is a call into QEMU's tick code and its clock lock, which
	 * the device emulation's timers share; BENCHMARKS.md section 3).
	 */
	if (qp->posted != qp->done && (n != 0 || ++qp->idle_polls >= POLL_CLOCK_EVERY)) {
		qp->idle_polls = 0;
		uint64_t now = pnvme_ticks();
		if (unlikely((int64_t)(now - qp->next_check) >= 0)) {
			qpair_check_deadlines(qp, now);
			slow = true;
		}
	}
	if (unlikely(slow) && qpair_gone_flag(qp))
		return poll_gone(qp, n);
	qp->in_poll = 0;
	return n;
}

/*
 * The poll off its fast path: a call from a callback, a queue pair that
 * must follow a controller reset, is stopped or lost its controller, NVMe/TCP.
 */
static __attribute__((noinline)) int poll_slow(struct pnvme_qpair *qp, uint32_t max)
{
	if (qp->in_poll)
		return pnvme_fail(-EDEADLK, "pnvme_qpair_poll called from a completion callback "
				  "of the same queue pair");
	qp->in_poll = 1;
	if (qp->gen != qpair_ctrl_gen(qp) || qp->err) {
		int rc = qp->err ? qp->err : qpair_reconnect(qp);
		if (rc > 0) {
			/* A reset runs on this thread, below us: the queues wait for its end. */
			qp->in_poll = 0;
			return 0;
		}
		if (rc) {
			/* Stopped or dead: nothing is left hanging on this queue. */
			if (qpair_outstanding(qp) || qp->nr_expired)
				qpair_fail_all(qp, rc);
			if (qpair_gone_flag(qp))
				qp->slow |= QP_SLOW_GONE; /* (and so says every later poll) */
			qp->in_poll = 0;
			return rc;
		}
	}
	if (qp->sq_tail != qp->sq_db_tail)
		ring_sq(qp);
	if (qp->tq != NULL)
		tcp_poll(qp);
	return poll_tail(qp, max ? reap(qp, max, true) : reap(qp, 0, false), true);
}

/* A poll that reaps at most `max` (not 0) completions. */
static __attribute__((noinline)) int poll_limited(struct pnvme_qpair *qp, uint32_t max)
{
	qp->in_poll = 1;
	if (qp->sq_tail != qp->sq_db_tail)
		ring_sq(qp);
	return poll_tail(qp, reap(qp, max, true), false);
}

int pnvme_qpair_poll(struct pnvme_qpair *qp, uint32_t max)
{
	if (unlikely(qp == NULL))
		return pnvme_fail(-EINVAL, "pnvme_qpair_poll: NULL queue pair");
	/* One compare for the rare cases: in a callback, TCP, stopped, after a reset. */
	if (unlikely(qp->gate_gen != (uint64_t)qpair_ctrl_gen(qp) << 32))
		return poll_slow(qp, max);
	if (unlikely(max != 0))
		return poll_limited(qp, max);
	LT_POLL_ENTRY();
	qp->in_poll = 1;
	if (qp->sq_tail != qp->sq_db_tail)
		ring_sq(qp);
	return poll_tail(qp, reap(qp, 0, false), false);
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
		if (qp->qid == 0) {
			ctrl_run_pending_reset(qp->ctrl);
			if (qp->ctrl->tcp)
				ctrl_reconnect_poll(qp->ctrl);
		}
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
