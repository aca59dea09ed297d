/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * aer.c - Asynchronous Event Requests (NVMe Base 2.0 §5.2).
 *
 * From bring-up on, and again after every controller reset, the library
 * enables SMART / Health critical warnings and namespace attribute notices
 * (Set Features, Asynchronous Event Configuration, §5.27.1.7) and keeps a
 * number of Asynchronous Event Requests outstanding on the admin queue:
 * AERL + 1 (Identify Controller, 0's based), at most AER_MAX (as SPDK's
 * NVME_MAX_ASYNC_EVENTS), in admin ring entries added for them beyond
 * admin_depth (ctrl.c), so that the application keeps its depth. Where the
 * ring is capped (CAP.MQES; 32 entries on fabrics) one request is taken out
 * of admin_depth when that is at least 16, none otherwise. They have no
 * deadline.
 *
 * A request completes inside an admin poll (pnvme_ctrl_process_admin() or
 * any sync admin wait): its callback only records the completion's DW0.
 * pnvme_ctrl_process_admin() handles the recorded events after its poll,
 * where sync admin commands are allowed: it reads the log page the event
 * names with Get Log Page, RAE clear (§5.16: this clears the event and
 * re-arms its type on the controller), rescans the namespaces for a
 * Namespace Attribute Changed notice (ns.c), posts a new request, then
 * calls the application's aer_cb.
 *
 * Requests ended by the host are no events: a reset fails them with -EIO
 * (the reset posts new ones once the controller is back), close with
 * -ECANCELED, a dead controller with -ENODEV. A request the controller
 * fails (e.g. Asynchronous Event Request Limit Exceeded) is not posted
 * again until the next reset.
 */
#include <stdlib.h>
#include <string.h>

#include "core/ctrl_priv.h"

#define AER_MAX         CTRL_AER_SLOTS /* requests outstanding at most */
#define AER_PENDING_MAX 16u  /* events recorded, not yet handled */
/* SMART / Health critical warnings we ask to be told about (as Linux's nvme). */
#define AER_SMART_BITS  (PNVME_SMART_CW_SPARE | PNVME_SMART_CW_TEMPERATURE | \
			 PNVME_SMART_CW_RELIABILITY | PNVME_SMART_CW_READ_ONLY | \
			 PNVME_SMART_CW_VOLATILE)
#define OAES_NS_ATTR    (1u << 8) /* Identify Controller OAES: namespace attribute notices */

struct ctrl_aer {
	uint32_t target;              /* requests to keep outstanding */
	uint32_t outstanding;         /* (atomic: pnvme_ctrl_aer_outstanding) */
	uint32_t pending[AER_PENDING_MAX]; /* DW0 of completed requests, oldest first */
	uint32_t nr_pending;
	uint32_t max;                 /* the target after bring-up and resets */
	bool sized;                   /* max decided (first start) */
	bool busy;                    /* inside ctrl_aer_process() */
	uint8_t *log;                 /* log page buffer (ordinary memory) */
};

#define AER_LOG_SIZE PNVME_IDENTIFY_DATA_SIZE /* the Changed Namespace List, the largest read */

static void aer_done(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct pnvme_ctrl *ctrl = arg;
	struct ctrl_aer *aer = ctrl->aer;

	__atomic_sub_fetch(&aer->outstanding, 1, __ATOMIC_RELAXED);
	if (err == 0) {
		if (aer->nr_pending == AER_PENDING_MAX) {
			log_warn("asynchronous event 0x%08x dropped: %u events not handled yet "
				 "(poll pnvme_ctrl_process_admin)", cqe->dw0, AER_PENDING_MAX);
			return;
		}
		aer->pending[aer->nr_pending++] = cqe->dw0;
		return;
	}
	if (err == -EIO || err == -ECANCELED || err == -ENODEV)
		return; /* reset, close, controller gone: no event */
	/* Refused by the controller: no new request until the next reset. */
	aer->target = __atomic_load_n(&aer->outstanding, __ATOMIC_RELAXED);
	log_warn("Asynchronous Event Request failed (%s): %u left outstanding",
		 pnvme_status_str(PNVME_CQE_STATUS(cqe)), aer->target);
}

/* Post requests up to the target (admin lock held). */
static void aer_post(struct pnvme_ctrl *ctrl)
{
	struct ctrl_aer *aer = ctrl->aer;
	struct pnvme_sqe c;

	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_ASYNC_EVENT;
	while (__atomic_load_n(&aer->outstanding, __ATOMIC_RELAXED) < aer->target) {
		int rc = qpair_submit_raw(ctrl->adminq, &c, NULL, 0, aer_done, ctrl);
		if (rc) {
			/* Full admin queue (-EAGAIN): the next pnvme_ctrl_process_admin tries again. */
			if (rc != -EAGAIN)
				log_warn("cannot post an Asynchronous Event Request: %s",
					 pnvme_last_error());
			return;
		}
		__atomic_add_fetch(&aer->outstanding, 1, __ATOMIC_RELAXED);
	}
}

int ctrl_aer_start(struct pnvme_ctrl *ctrl)
{
	struct ctrl_aer *aer = ctrl->aer;
	uint32_t aec = AER_SMART_BITS, target;
	int rc;

	if (ctrl->discovery)
		return 0;
	if (!aer) {
		aer = calloc(1, sizeof(*aer));
		if (aer)
			aer->log = malloc(AER_LOG_SIZE);
		if (!aer || !aer->log) {
			free(aer);
			return pnvme_fail(-ENOMEM, "out of memory");
		}
		ctrl->aer = aer;
	}
	if (!aer->sized) {
		struct pnvme_qpair *aq = ctrl->adminq;
		uint32_t extra = aq->nr_trk > ctrl->opts.admin_depth ?
				 aq->nr_trk - ctrl->opts.admin_depth : 0;

		target = (uint32_t)ctrl->id.aerl + 1;
		if (target > AER_MAX)
			target = AER_MAX;
		if (extra) {
			if (target > extra)
				target = extra;
			/*
			 * The ring got CTRL_AER_SLOTS entries beyond admin_depth (ctrl.c);
			 * those the requests do not use are never handed out, so the
			 * application keeps exactly admin_depth. Nothing is outstanding
			 * yet at bring-up: any free tracker will do.
			 */
			if (aq->nr_free >= extra - target)
				aq->nr_free -= extra - target;
		} else {
			/* The ring is capped (CAP.MQES, 32 on fabrics): one out of admin_depth. */
			target = aq->nr_trk >= 16 ? 1 : 0;
		}
		aer->max = target;
		aer->sized = true;
	}
	target = aer->max;
	aer->target = target;
	if (target == 0) {
		log_info("admin queue of %u entries: no room for Asynchronous Event Requests",
			 ctrl->adminq->qsize);
		return 0;
	}
	pthread_mutex_lock(&ctrl->admin_lock);
	aer_post(ctrl);
	pthread_mutex_unlock(&ctrl->admin_lock);
	/*
	 * Then enable the events (a reset cleared the configuration, §5.27.1.7).
	 * Posted after the requests, this command also tells when the controller
	 * has fetched them (it takes commands in order).
	 */
	if (ctrl->id.oaes & OAES_NS_ATTR)
		aec |= PNVME_AEC_NS_ATTR;
	rc = pnvme_set_features(ctrl, PNVME_FEAT_ASYNC_EVENT, 0, aec, 0, NULL);
	if (rc == -ETIMEDOUT || rc == -ENODEV)
		return rc;
	if (rc)
		log_notice("Set Features (Asynchronous Event Configuration 0x%x) refused (%s): "
			   "only the controller's default events", aec, pnvme_last_error());
	return 0;
}

/* Bytes of log page `lid` to read for an event: what clears it, at most AER_LOG_SIZE. */
static uint32_t log_len(uint8_t lid)
{
	switch (lid) {
	case PNVME_LOG_ERROR:
		return sizeof(struct pnvme_error_log);   /* the newest entry */
	case PNVME_LOG_SMART:
		return sizeof(struct pnvme_smart_log);
	case PNVME_LOG_CHANGED_NS:
		return PNVME_CHANGED_NS_MAX * sizeof(uint32_t);
	default:
		return 512;
	}
}

/* One recorded event: log page, namespace rescan, a new request, the application. */
static void aer_handle(struct pnvme_ctrl *ctrl, uint32_t dw0)
{
	struct ctrl_aer *aer = ctrl->aer;
	struct pnvme_async_event ev;
	const uint32_t *list = (const uint32_t *)aer->log;

	memset(&ev, 0, sizeof(ev));
	ev.dw0 = dw0;
	ev.type = (uint8_t)PNVME_GET(dw0, PNVME_AER_TYPE);
	ev.info = (uint8_t)PNVME_GET(dw0, PNVME_AER_INFO);
	ev.log_page = (uint8_t)PNVME_GET(dw0, PNVME_AER_LID);
	log_info("asynchronous event: type %u, info 0x%02x, log page 0x%02x", ev.type, ev.info,
		 ev.log_page);
	if (ev.log_page != 0) {
		ev.log_len = log_len(ev.log_page);
		/* Get Log Page with RAE clear (Base 2.0 §5.16): clears the event. */
		ev.log_err = pnvme_get_log_page(ctrl, ev.log_page, 0xffffffffu, 0, aer->log,
						ev.log_len);
		if (ev.log_err) {
			log_warn("asynchronous event 0x%08x: reading log page 0x%02x failed: %s", dw0,
				 ev.log_page, pnvme_last_error());
			ev.log_len = 0;
		} else {
			ev.log = aer->log;
		}
	}
	if (ev.type == PNVME_AER_TYPE_SMART && ev.log)
		ev.critical_warning = ((const struct pnvme_smart_log *)aer->log)->critical_warning;
	if (ev.type == PNVME_AER_TYPE_NOTICE && ev.info == PNVME_AER_NOTICE_NS_CHANGED) {
		int rc;
		if (ev.log && ev.log_page == PNVME_LOG_CHANGED_NS) {
			ev.ns_overflow = list[0] == PNVME_CHANGED_NS_OVERFLOW;
			while (!ev.ns_overflow && ev.nr_nsids < PNVME_CHANGED_NS_MAX &&
			       list[ev.nr_nsids])
				ev.nr_nsids++;
			ev.nsids = ev.nr_nsids ? list : NULL;
		}
		/* Without the list (or past its 1024 entries), identify every namespace. */
		rc = ctrl_ns_rescan(ctrl, ev.nsids, ev.nr_nsids, !ev.log || ev.ns_overflow);
		if (rc)
			log_warn("namespace rescan after a namespace attribute notice failed: %s",
				 pnvme_last_error());
	}
	aer_post(ctrl);
	if (ctrl->opts.aer_cb)
		ctrl->opts.aer_cb(ctrl->opts.aer_arg, &ev);
}

void ctrl_aer_process(struct pnvme_ctrl *ctrl)
{
	struct ctrl_aer *aer = ctrl->aer;

	if (!aer || aer->busy || ctrl->adminq->in_poll || ctrl->in_reset_cb ||
	    ctrl_state(ctrl) != CTRL_LIVE)
		return;
	aer->busy = true;
	while (aer->nr_pending) {
		uint32_t dw0 = aer->pending[0];
		memmove(&aer->pending[0], &aer->pending[1],
			--aer->nr_pending * sizeof(aer->pending[0]));
		aer_handle(ctrl, dw0);
	}
	aer_post(ctrl); /* those a full admin queue kept back */
	aer->busy = false;
}

void ctrl_aer_free(struct pnvme_ctrl *ctrl)
{
	if (!ctrl->aer)
		return;
	free(ctrl->aer->log);
	free(ctrl->aer);
	ctrl->aer = NULL;
}

uint32_t pnvme_ctrl_aer_outstanding(const struct pnvme_ctrl *ctrl)
{
	return ctrl && ctrl->aer ? __atomic_load_n(&ctrl->aer->outstanding, __ATOMIC_RELAXED) : 0;
}
