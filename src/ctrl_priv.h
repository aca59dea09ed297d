/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ctrl_priv.h - the controller and queue pair objects, shared by ctrl.c,
 * admin.c and qpair.c.
 */
#ifndef PNVME_CTRL_PRIV_H
#define PNVME_CTRL_PRIV_H

#include <pnvme/ctrl.h>
#include <pnvme/qpair.h>

#include "internal.h"

enum trk_state {
	TRK_FREE = 0,
	TRK_ACTIVE,   /* submitted, callback not yet run */
	TRK_EXPIRED,  /* host timed it out; the device may still complete it */
};

/* Request tracker. The command id of a request is its tracker's index. */
struct pnvme_tracker {
	pnvme_cmd_cb cb;
	void *arg;
	uint64_t deadline;     /* cycle counter value */
	uint8_t state;         /* enum trk_state */
	uint8_t opc;
	uint16_t rsvd;
	uint32_t rsvd2;
	/* cold: only multi-page transfers and DSM touch these */
	uint64_t *prp_list;    /* this tracker's PRP list page (4 KiB of DMA memory) */
	uint64_t prp_iova;
};

struct pnvme_qpair {
	/* hot: submission */
	struct pnvme_sqe *sq;
	volatile uint32_t *sq_db;
	uint32_t sq_tail;
	uint32_t sq_db_tail;   /* last value written to the SQ tail doorbell */
	uint32_t sq_head;      /* from the latest CQE's SQHD */
	uint32_t qsize;        /* entries in each ring */
	uint16_t *free_cids;   /* free tracker stack */
	uint32_t nr_free;
	uint32_t flags;
	struct pnvme_tracker *trk;
	uint64_t timeout_ticks;
	const struct pnvme_dma *dma;
	/* hot: completion */
	struct pnvme_cqe *cq;
	volatile uint32_t *cq_db;
	uint32_t cq_head;
	uint16_t phase;
	uint16_t in_poll;
	uint32_t outstanding;  /* ACTIVE trackers */
	uint32_t nr_trk;       /* qsize - 1 */
	uint64_t next_check;   /* next deadline scan, cycle counter */
	struct pnvme_qpair_stats stats;
	/* ---- cold below ---- */
	struct pnvme_ctrl *ctrl;
	uint16_t qid;
	uint32_t nr_expired;   /* EXPIRED trackers */
	uint64_t check_ticks;  /* interval between deadline scans */
	void *sq_mem, *cq_mem, *prp_mem;
	struct pnvme_qpair *next; /* controller's list of I/O queue pairs */
};

struct pnvme_ctrl {
	struct pnvme_backend be;
	volatile uint8_t *bar;
	uint64_t cap;
	uint32_t vs;
	uint32_t dstrd;
	volatile int dead;         /* device gone (all-ones reads) or failed */
	struct pnvme_dma dma;
	struct pnvme_ctrl_opts opts;
	/* admin queue, serialised by admin_lock (recursive: callbacks may submit) */
	pthread_mutex_t admin_lock;
	struct pnvme_qpair *adminq;
	/* identity */
	struct pnvme_id_ctrl id;
	struct pnvme_ns *ns;       /* active namespaces, ascending NSID */
	uint32_t nr_ns;
	uint32_t max_xfer;
	uint16_t max_io_queues;
	uint8_t *qid_used;         /* [max_io_queues + 1] */
	struct pnvme_qpair *qpairs;
	struct pnvme_emu *emu;
	bool owns_emu;
	bool dma_ready;
};

/* qpair.c */
int qpair_alloc(struct pnvme_ctrl *ctrl, uint16_t qid, uint32_t qsize, uint32_t timeout_ms,
		uint32_t flags, struct pnvme_qpair **out);
void qpair_free(struct pnvme_qpair *qp);
int qpair_submit_raw(struct pnvme_qpair *qp, const struct pnvme_sqe *cmd, void *dma_buf,
		     size_t len, pnvme_cmd_cb cb, void *arg);
void qpair_fail_all(struct pnvme_qpair *qp, int err);
int qpair_wait_flag(struct pnvme_qpair *qp, volatile int *done, pthread_mutex_t *lock);

/* ctrl.c */
/** Read CSTS; mark the controller dead on all ones. Returns CSTS or -ENODEV. */
int64_t ctrl_read_csts(struct pnvme_ctrl *ctrl);
/** Slow-path wait: give the device a turn (backend hook). */
static inline void ctrl_wait_hook(struct pnvme_ctrl *ctrl)
{
	ctrl->be.ops->wait(ctrl->be.ctx);
}

/* admin.c */
int admin_sync(struct pnvme_ctrl *ctrl, const struct pnvme_sqe *cmd, void *buf, size_t len,
	       struct pnvme_cqe *cqe);

/** Host-side completion entry: Path Related / Command Aborted By Host, DNR. */
static inline void host_cqe(struct pnvme_cqe *c, uint16_t cid, uint16_t sqid)
{
	c->dw0 = 0;
	c->dw1 = 0;
	c->sqhd = 0;
	c->sqid = sqid;
	c->cid = cid;
	c->status = (uint16_t)((PNVME_STATUS_DNR |
				PNVME_STATUS(PNVME_SCT_PATH, PNVME_SC_HOST_ABORTED_CMD)) << 1);
}

#endif /* PNVME_CTRL_PRIV_H */
