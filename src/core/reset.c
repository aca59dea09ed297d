/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * reset.c - the controller state machine (live / resetting / dead, as Linux's
 * nvme_change_ctrl_state) and controller reset for recovery: one reset at a
 * time, requests during a reset folded into it, a failed step retrying the
 * whole reset a bounded number of times (NVMe Base 2.0 §3.7.2, controller
 * reset by CC.EN; re-initialization per §3.5.1).
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/ctrl_priv.h"

/* ------------------------------------------------------------------------ */
/* Controller state                                                         */
/* ------------------------------------------------------------------------ */

static const char *state_name(enum ctrl_state st)
{
	static const char *const names[] = {
		[CTRL_NEW] = "new", [CTRL_LIVE] = "live", [CTRL_RESETTING] = "resetting",
		[CTRL_CONNECTING] = "connecting", [CTRL_DELETING] = "deleting",
		[CTRL_DEAD] = "dead",
	};
	return (unsigned)st < ARRAY_SIZE(names) ? names[st] : "?";
}

/* The edges of enum ctrl_state (ctrl_priv.h). */
static bool state_edge(enum ctrl_state from, enum ctrl_state to)
{
	switch (to) {
	case CTRL_LIVE:
		return from == CTRL_NEW || from == CTRL_CONNECTING;
	case CTRL_RESETTING:
		return from == CTRL_LIVE || from == CTRL_CONNECTING;
	case CTRL_CONNECTING:
		return from == CTRL_RESETTING;
	case CTRL_DELETING:
		return from == CTRL_LIVE;
	case CTRL_DEAD:
		return from != CTRL_DEAD;
	case CTRL_NEW:
		break;
	}
	return false;
}

/*
 * Every edge but DEAD is taken by the thread holding the admin lock; DEAD may
 * also come from an I/O thread that reads all ones, hence the compare and
 * exchange. The generation moves when a reset starts (I/O queue pairs stop
 * ringing doorbells: see db_enter() in pcie/ring.h), when it ends (they
 * re-create their queues) and at death. The admin queue has its own gate,
 * admin_gen: closed from the start of each reset attempt until the controller
 * is enabled again, so that nothing a callback posts meanwhile is rung into a
 * disabled controller.
 */
bool ctrl_change_state(struct pnvme_ctrl *ctrl, enum ctrl_state to)
{
	int from = __atomic_load_n(&ctrl->state, __ATOMIC_ACQUIRE);

	do {
		if (!state_edge((enum ctrl_state)from, to))
			return false;
	} while (!__atomic_compare_exchange_n(&ctrl->state, &from, (int)to, false,
					      __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
	switch (to) {
	case CTRL_RESETTING:
		__atomic_add_fetch(&ctrl->admin_gen, 1, __ATOMIC_SEQ_CST);
		if (from == CTRL_LIVE)
			__atomic_add_fetch(&ctrl->gen, 1, __ATOMIC_SEQ_CST);
		break;
	case CTRL_CONNECTING:
		/* The admin queue is touched under the admin lock only: a plain store. */
		ctrl->adminq->gen = __atomic_load_n(&ctrl->admin_gen, __ATOMIC_RELAXED);
		break;
	case CTRL_LIVE:
		if (from == CTRL_CONNECTING)
			__atomic_add_fetch(&ctrl->gen, 1, __ATOMIC_RELEASE);
		break;
	case CTRL_DEAD:
		__atomic_store_n(&ctrl->dead, 1, __ATOMIC_RELEASE);
		__atomic_add_fetch(&ctrl->gen, 1, __ATOMIC_RELEASE);
		break;
	default:
		break;
	}
	log_debug("controller state %s -> %s", state_name((enum ctrl_state)from), state_name(to));
	return true;
}

/* ------------------------------------------------------------------------ */
/* Reset (recovery)                                                         */
/* ------------------------------------------------------------------------ */

/*
 * Wait until no queue pair is inside a doorbell write: the other half of the
 * db_enter() handshake in pcie/ring.h. The generation moved before (full
 * barrier), so writers that come later see it and write nothing; one already
 * inside leaves after a handful of instructions. There is no give-up: a
 * doorbell must not reach a controller being disabled, however long its
 * writer is descheduled. The full barrier below is the protocol's (Dekker:
 * each side stores its word, full barrier, loads the other's); the acquire
 * load of db_busy pairs with db_leave()'s release store.
 */
static void wait_doorbell_writers(struct pnvme_ctrl *ctrl)
{
	pnvme_mb();
	for (struct pnvme_qpair *q = ctrl->qpairs; q; q = q->next) {
		uint64_t warn_at = pnvme_ticks() + pnvme_ms_to_ticks(1000);
		bool warned = false;
		unsigned spins = 0;

		while (__atomic_load_n(&q->db_busy, __ATOMIC_ACQUIRE)) {
			if (!warned && (int64_t)(pnvme_ticks() - warn_at) >= 0) {
				log_warn("queue %u has been inside a doorbell write for 1 s: the reset "
					 "waits for it before disabling the controller", q->qid);
				warned = true;
			}
			if ((++spins & 63u) == 0)
				sched_yield();
			else
				pnvme_cpu_relax();
		}
	}
}

/*
 * One attempt at Base 2.0 §3.7.2, controller reset: CC.EN 1 -> 0 (wait
 * CSTS.RDY = 0), then the initialization of §3.5.1 again with the same admin
 * rings, then the admin commands of bring-up steps 9 and after (Number of
 * Queues, Doorbell Buffer Config). Admin commands in flight fail with -EIO.
 * Returns 0, or the errno of the step that failed; *enabled tells whether
 * the controller came back (the failure was an admin command's).
 */
static int reset_attempt(struct pnvme_ctrl *ctrl, uint32_t nq, bool *enabled)
{
	struct pnvme_qpair *aq = ctrl->adminq;
	uint32_t dw0 = 0;
	int rc;

	*enabled = false;
	rc = ctrl_disable(ctrl);
	if (rc == 0) {
		/* Disabled: nothing can DMA into the buffers of timed-out commands now. */
		for (uint32_t i = 0; i < ctrl->nr_quarantine; i++)
			pnvme_dma_free_raw(&ctrl->dma, ctrl->quarantine[i]);
		ctrl->nr_quarantine = 0;
	}
	/*
	 * Empty the admin ring before the callbacks of its failed commands run,
	 * so a callback that submits again lands in the fresh ring. Its doorbell
	 * is held (the admin gate closed when this attempt began) until the
	 * controller is enabled again and reads the ring from the start.
	 */
	qpair_ring_reset(aq);
	aq->in_poll++;
	qpair_fail_all(aq, -EIO);
	aq->in_poll--;
	if (rc)
		return rc;
	rc = ctrl_enable(ctrl);
	if (rc)
		return rc;
	if (!ctrl_change_state(ctrl, CTRL_CONNECTING))
		return pnvme_fail(-ENODEV, "the controller died during the reset");
	*enabled = true;
	if (aq->sq_tail != 0) {
		/* Commands callbacks posted while the controller was disabled: announce them. */
		db_write(aq->sq_db, aq->sq_tail); /* release: the SQEs come first */
		aq->sq_db_tail = aq->sq_tail;
	}
	rc = pnvme_set_features(ctrl, PNVME_FEAT_NUM_QUEUES, 0,
				PNVME_SET(PNVME_NUMQ_NSQ, nq ? nq - 1 : 0) |
				PNVME_SET(PNVME_NUMQ_NCQ, nq ? nq - 1 : 0), 0, &dw0);
	if (rc == 0 && nq && (PNVME_GET(dw0, PNVME_NUMQ_NSQ) + 1 < nq ||
			      PNVME_GET(dw0, PNVME_NUMQ_NCQ) + 1 < nq))
		rc = pnvme_fail(-EIO, "after reset the controller grants fewer queues");
	if (rc == 0)
		rc = ctrl_dbbuf_config(ctrl);
	if (rc == 0)
		rc = ctrl_aer_start(ctrl); /* the reset ended the old requests with -EIO */
	return rc;
}

/*
 * The end of a reset (admin lock held): LIVE again, or dead (its DMA stopped
 * first), then the application's reset callback. Returns 0 or -ENODEV.
 */
static int reset_finish(struct pnvme_ctrl *ctrl, int rc, const char *how, const char *why)
{
	/* Requests raised during the reset (its own admin timeouts) are covered by it. */
	__atomic_store_n(&ctrl->reset_pending, 0, __ATOMIC_RELAXED);
	if (rc) {
		char msg[256];
		snprintf(msg, sizeof(msg), "%s", pnvme_last_error());
		log_err("controller reset failed (%s): giving up on the device", msg);
		/* It may still be running: stop its DMA before anyone's buffers are freed. */
		if (ctrl->be.ops->bus_master)
			(void)ctrl->be.ops->bus_master(ctrl->be.ctx, false);
		ctrl_mark_dead(ctrl);
		rc = pnvme_fail(-ENODEV, "controller reset failed (%s)", msg);
	} else {
		(void)ctrl_change_state(ctrl, CTRL_LIVE);
		log_notice("controller reset complete%s", how);
	}
	if (ctrl->opts.reset_cb) {
		ctrl->in_reset_cb = true;
		ctrl->opts.reset_cb(ctrl->opts.reset_arg, rc, why);
		ctrl->in_reset_cb = false;
	}
	return rc;
}

/*
 * Fabrics: one reconnect attempt (a new association: admin connection,
 * Connect, CC.EN, Number of Queues), admin lock held. The controller stays
 * RESETTING between attempts, with the lock free: the polls of any thread
 * (ctrl_reconnect_poll()) make the next attempt once reconnect_delay passed,
 * until ctrl_loss_tmo, as Linux's nvme_tcp_reconnect_or_remove() does from
 * its work queue. Nobody sleeps: a poll meanwhile returns at once, its
 * requests wait for the new association (or fail when the controller is
 * declared dead). Returns 0 (reconnected), -EAGAIN (will try again), or
 * -ENODEV (gave up).
 */
static int reconnect_step(struct pnvme_ctrl *ctrl)
{
	uint64_t now, loss_at = __atomic_load_n(&ctrl->loss_at_ms, __ATOMIC_RELAXED);
	uint32_t delay = ctrl_reconnect_delay_ms(ctrl);
	char how[64];
	bool enabled;
	int rc;

	ctrl->reconnect_attempts++;
	ctrl->in_reconnect = true; /* its admin waits must not start another */
	rc = reset_attempt(ctrl, ctrl->max_io_queues, &enabled);
	ctrl->in_reconnect = false;
	now = pnvme_now_ms();
	if (rc && !ctrl_is_dead(ctrl) && now < loss_at) {
		if (now + delay > loss_at)
			delay = (uint32_t)(loss_at - now);
		log_warn("reconnect %u failed (%s): next try in %u ms", ctrl->reconnect_attempts,
			 pnvme_last_error(), delay);
		(void)ctrl_disable(ctrl);
		if (ctrl_state(ctrl) != CTRL_RESETTING && !ctrl_change_state(ctrl, CTRL_RESETTING))
			rc = pnvme_fail(-ENODEV, "the controller died during the reconnect");
		else {
			__atomic_store_n(&ctrl->reconnect_at_ms, now + delay, __ATOMIC_RELAXED);
			return pnvme_fail(-EAGAIN, "reconnecting: %s", pnvme_last_error());
		}
	}
	__atomic_store_n(&ctrl->reconnecting, 0, __ATOMIC_RELEASE);
	snprintf(how, sizeof(how), " (reconnected after %u attempt%s)", ctrl->reconnect_attempts,
		 ctrl->reconnect_attempts == 1 ? "" : "s");
	return reset_finish(ctrl, rc, how, ctrl->reset_why);
}

void ctrl_reconnect_poll(struct pnvme_ctrl *ctrl)
{
	if (!__atomic_load_n(&ctrl->reconnecting, __ATOMIC_ACQUIRE) ||
	    pnvme_now_ms() < __atomic_load_n(&ctrl->reconnect_at_ms, __ATOMIC_RELAXED))
		return;
	if (pthread_mutex_trylock(&ctrl->admin_lock) != 0)
		return; /* another thread is at it */
	/* (Not from inside an admin poll: the attempt rebuilds the admin queue.) */
	if (__atomic_load_n(&ctrl->reconnecting, __ATOMIC_RELAXED) && !ctrl->adminq->in_poll &&
	    !ctrl->in_reset_cb && !ctrl->in_reconnect && ctrl_state(ctrl) == CTRL_RESETTING &&
	    pnvme_now_ms() >= __atomic_load_n(&ctrl->reconnect_at_ms, __ATOMIC_RELAXED))
		(void)reconnect_step(ctrl);
	pthread_mutex_unlock(&ctrl->admin_lock);
}

/*
 * Reset the controller (LIVE -> RESETTING -> CONNECTING -> LIVE). I/O queue
 * pairs stop ringing doorbells when the reset starts (the generation moves
 * before CC.EN = 0: touching queues while the controller resets is what the
 * spec forbids and some devices punish) and re-create their queues
 * themselves at their next poll once it ended (their owners may be polling
 * them right now: no other thread touches them). The reset owns the admin
 * lock throughout: a request from another thread waits for it and then finds
 * the generation moved (nothing to do); one from this thread (a callback, a
 * timeout of the reset's own admin commands) is folded into it. A failed
 * admin command after the controller came back starts the whole reset over,
 * up to CTRL_RESET_ATTEMPTS times; a controller that does not come back
 * within CAP.TO (or is gone) is declared dead at once, as Linux does.
 */
int ctrl_recover(struct pnvme_ctrl *ctrl, uint32_t seen_gen, const char *why)
{
	uint32_t nq = ctrl->max_io_queues;
	unsigned attempt;
	enum ctrl_state st;
	bool enabled;
	int rc;

	pthread_mutex_lock(&ctrl->admin_lock);
	st = ctrl_state(ctrl);
	if (st == CTRL_RESETTING || st == CTRL_CONNECTING) {
		/* Only the owner's thread gets the (recursive) lock now: fold it in. */
		log_info("reset requested during a reset (%s): folded into it", why);
		pthread_mutex_unlock(&ctrl->admin_lock);
		return 0;
	}
	if (st != CTRL_LIVE) {
		pthread_mutex_unlock(&ctrl->admin_lock);
		if (st == CTRL_DEAD)
			return pnvme_fail(-ENODEV, "controller is gone");
		return pnvme_fail(-EBUSY, "no reset while the controller is being %s (%s)",
				  st == CTRL_NEW ? "opened" : "closed", why);
	}
	if (__atomic_load_n(&ctrl->gen, __ATOMIC_ACQUIRE) != seen_gen) {
		/* Another thread reset it since the caller looked. */
		pthread_mutex_unlock(&ctrl->admin_lock);
		return 0;
	}
	if (!ctrl_change_state(ctrl, CTRL_RESETTING)) {
		pthread_mutex_unlock(&ctrl->admin_lock);
		return pnvme_fail(-ENODEV, "controller is gone");
	}
	__atomic_add_fetch(&ctrl->resets, 1, __ATOMIC_RELAXED); /* pnvme_ctrl_resets() reads it */
	__atomic_store_n(&ctrl->reset_pending, 0, __ATOMIC_RELAXED);
	log_warn("resetting the controller: %s", why);
	wait_doorbell_writers(ctrl);
	if (ctrl->tcp) {
		/* Fabrics: the first reconnect now, the next ones from the polls. */
		__atomic_store_n(&ctrl->loss_at_ms, pnvme_now_ms() + ctrl_loss_tmo_ms(ctrl),
				 __ATOMIC_RELAXED);
		__atomic_store_n(&ctrl->reconnect_at_ms, 0, __ATOMIC_RELAXED);
		ctrl->reset_why = why;
		ctrl->reconnect_attempts = 0;
		__atomic_store_n(&ctrl->reconnecting, 1, __ATOMIC_RELEASE);
		rc = reconnect_step(ctrl);
		pthread_mutex_unlock(&ctrl->admin_lock);
		return rc;
	}
	for (attempt = 1;; attempt++) {
		rc = reset_attempt(ctrl, nq, &enabled);
		if (rc == 0 || !enabled || attempt == CTRL_RESET_ATTEMPTS)
			break;
		log_warn("controller reset, attempt %u of %u: %s; starting over", attempt,
			 CTRL_RESET_ATTEMPTS, pnvme_last_error());
		if (!ctrl_change_state(ctrl, CTRL_RESETTING)) {
			rc = pnvme_fail(-ENODEV, "the controller died during the reset");
			break;
		}
	}
	rc = reset_finish(ctrl, rc, attempt > 1 ? " (after a retry)" : "", why);
	pthread_mutex_unlock(&ctrl->admin_lock);
	return rc;
}

void ctrl_defer_reset(struct pnvme_ctrl *ctrl, uint32_t gen, const char *why)
{
	ctrl->reset_req_why = why;
	__atomic_store_n(&ctrl->reset_req_gen, gen, __ATOMIC_RELAXED);
	__atomic_store_n(&ctrl->reset_pending, 1, __ATOMIC_RELEASE);
}

/*
 * A reset request from the library itself (admin lock held): run it unless
 * the generation moved since it was raised (a reset finished since: it
 * covered the request) or the controller is not live (a reset in progress on
 * this thread covers it; bring-up and close fail or finish on their own; a
 * dead controller needs none).
 */
static void reset_if_current(struct pnvme_ctrl *ctrl, uint32_t gen, const char *why)
{
	enum ctrl_state st = ctrl_state(ctrl);

	if (st != CTRL_LIVE || gen != __atomic_load_n(&ctrl->gen, __ATOMIC_ACQUIRE)) {
		log_debug("reset request (%s) dropped: %s", why,
			  st == CTRL_LIVE ? "a reset finished since it was raised"
					  : state_name(st));
		return;
	}
	(void)ctrl_recover(ctrl, gen, why);
}

void ctrl_request_reset(struct pnvme_ctrl *ctrl, uint32_t gen, const char *why)
{
	pthread_mutex_lock(&ctrl->admin_lock);
	/* Under the (recursive) lock only this thread's own admin poll can show. */
	if (ctrl->adminq->in_poll)
		ctrl_defer_reset(ctrl, gen, why); /* its poller runs it after the poll */
	else
		reset_if_current(ctrl, gen, why);
	pthread_mutex_unlock(&ctrl->admin_lock);
}

void ctrl_run_pending_reset(struct pnvme_ctrl *ctrl)
{
	if (ctrl->adminq->in_poll || !__atomic_load_n(&ctrl->reset_pending, __ATOMIC_ACQUIRE))
		return;
	__atomic_store_n(&ctrl->reset_pending, 0, __ATOMIC_RELAXED);
	reset_if_current(ctrl, __atomic_load_n(&ctrl->reset_req_gen, __ATOMIC_RELAXED),
			 ctrl->reset_req_why);
}

int pnvme_ctrl_reset(struct pnvme_ctrl *ctrl)
{
	int rc;

	if (!ctrl)
		return pnvme_fail(-EINVAL, "ctrl_reset: NULL controller");
	/* Under the (recursive) lock only this thread's own admin poll can show. */
	pthread_mutex_lock(&ctrl->admin_lock);
	if (ctrl->adminq->in_poll)
		rc = pnvme_fail(-EDEADLK, "ctrl_reset from an admin completion callback");
	else
		rc = ctrl_recover(ctrl, __atomic_load_n(&ctrl->gen, __ATOMIC_ACQUIRE),
				  "requested by the application");
	pthread_mutex_unlock(&ctrl->admin_lock);
	return rc;
}

uint32_t pnvme_ctrl_resets(const struct pnvme_ctrl *ctrl)
{
	return ctrl ? __atomic_load_n(&ctrl->resets, __ATOMIC_RELAXED) : 0;
}

bool pnvme_ctrl_is_dead(const struct pnvme_ctrl *ctrl)
{
	return ctrl && ctrl_is_dead(ctrl);
}

