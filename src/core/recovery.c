/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * recovery.c - what happens to a queue pair's requests when the device does
 * not answer or the controller goes away: completion from the host side
 * (timeout, deletion, reset, device gone), the deadline scan with its ladder
 * (Abort, Base 2.0 §5.1, then a controller reset, as Linux's nvme_timeout),
 * and the re-creation of a queue pair after a controller reset, with the
 * retry or failure of every request it held. Slow path: called from
 * pnvme_qpair_poll() (pcie/qpair.c) at most every check_ticks, or after the
 * controller generation moved; the reset itself is core/reset.c.
 */
#include <stdlib.h>
#include <string.h>

#include "core/ctrl_priv.h"
#include "tcp/host.h"

void (*pnvme_test_reset_request_hook)(struct pnvme_ctrl *ctrl);

/* ------------------------------------------------------------------------ */
/* Host-side completion                                                     */
/* ------------------------------------------------------------------------ */

/* Drop the tracker's interest in its Abort; free the context if the Abort is done. */
void qpair_abort_release(struct pnvme_tracker *trk)
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
	qpair_abort_release(trk);
	if (keep_cid) {
		/* The device may still post this command id: keep it out of use. */
		trk->state = TRK_EXPIRED;
		qp->nr_expired++;
	} else {
		trk_release(qp, trk, cid);
	}
	if (!trk->owned)
		trk->cb = NULL; /* (a prepared request keeps its callback) */
	qp->done++;
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
			qp->nr_expired--;
			trk_release(qp, trk, i);
		}
	}
	/* Nothing is in flight any more: the rings are empty from our side. */
	qp->sq_head = qp->sq_tail;
}

/* ------------------------------------------------------------------------ */
/* Deadlines and Abort                                                      */
/* ------------------------------------------------------------------------ */

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
void qpair_check_deadlines(struct pnvme_qpair *qp, uint64_t now)
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
	for (uint32_t i = 0; i < qp->nr_trk && qpair_outstanding(qp) && (!why || over_acl); i++) {
		struct pnvme_tracker *trk = &qp->trk[i];
		if (trk->state == TRK_ABORTING) {
			aborting = true;
			if ((int64_t)(now - trk->deadline) >= 0 && !why)
				why = "an aborted command did not complete";
			continue;
		}
		if (trk->state != TRK_ACTIVE || (int64_t)(now - trk->deadline) < 0)
			continue;
		/* An Asynchronous Event Request waits for an event: no deadline (aer.c). */
		if (qp->qid == 0 && trk->opc == PNVME_ADM_ASYNC_EVENT)
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

/* ------------------------------------------------------------------------ */
/* Re-creation after a controller reset                                     */
/* ------------------------------------------------------------------------ */

/*
 * After a controller reset (or death), bring this queue pair to the new
 * generation: wait for the reset to end, reap what the old CQ still holds,
 * decide the fate of every outstanding request, re-create CQ and SQ on the
 * device with the same rings, re-post what may be retried, then run the
 * callbacks of the rest. Returns 0, a negative errno (the queue pair is
 * stopped or the controller dead), or 1 when this thread is the one running
 * the reset (called from one of its callbacks): nothing to do until it ends.
 */
int qpair_reconnect(struct pnvme_qpair *qp)
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
	if (ctrl->tcp) {
		/*
		 * Fabrics: reconnect attempts run between polls (reset.c
		 * reconnect_step): never wait for one here, drive the next one.
		 */
		if (pthread_mutex_trylock(&ctrl->admin_lock) != 0)
			return 1;
	} else {
		pthread_mutex_lock(&ctrl->admin_lock);
	}
	st = ctrl_state(ctrl);
	pthread_mutex_unlock(&ctrl->admin_lock);
	if (st != CTRL_LIVE && st != CTRL_DEAD) {
		if (ctrl->tcp)
			ctrl_reconnect_poll(ctrl);
		return 1; /* this thread runs the reset (or a close): after it ends */
	}
	if (qp->qid == 0 && st != CTRL_DEAD)
		return 1; /* the reset rebuilds the admin queue itself */
	(void)qpair_reap(qp);
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
			qp->nr_expired--;
			trk_release(qp, trk, i);
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
	 * generation after it (qpair_queues_create); the requests wait meanwhile.
	 */
	rc = qpair_queues_create(qp, &gen);
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
		if (!qpair_repost(qp, keep_cid[k], &keep[k], keep_retry[k])) {
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
