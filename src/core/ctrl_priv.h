/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ctrl_priv.h - the controller and queue pair objects, shared by the
 * controller core (core/: ctrl.c, admin.c, reset.c, io.c, recovery.c) and the
 * transports (pcie/qpair.c, pcie/pcie.c, tcp/).
 */
#ifndef PNVME_CTRL_PRIV_H
#define PNVME_CTRL_PRIV_H

#include <pnvme/ctrl.h>
#include <pnvme/qpair.h>

#include "internal.h"

enum trk_state {
	TRK_FREE = 0,
	TRK_ACTIVE,   /* submitted, callback not yet run */
	TRK_ABORTING, /* past its deadline, Abort sent; callback not yet run */
	TRK_EXPIRED,  /* host completed it (timeout); the device may still post its CID */
};

/* Outcome of an Abort, written by whichever thread reaps the admin queue. */
enum abort_state {
	AB_PENDING = 0,
	AB_ABORTED,      /* controller says it aborted the command */
	AB_NOT_ABORTED,  /* DW0 bit 0 set: the command was not aborted */
	AB_FAILED,       /* the Abort itself failed */
	AB_ORPHAN,       /* the request is gone; whoever sees this frees the context */
};

struct abort_ctx {
	int state; /* enum abort_state, exchanged atomically */
};

/*
 * Request tracker. A command id is the tracker's index in its low 12 bits and
 * a 4-bit generation, bumped at every use, in the high bits (like Linux's
 * nvme_cid genctr): a stale or duplicated CQE for a reused tracker is caught.
 */
#define CID_IDX_BITS 12u
#define CID_IDX_MASK ((1u << CID_IDX_BITS) - 1)
#define PNVME_MAX_QUEUE_ENTRIES (1u << CID_IDX_BITS) /* 4096 */
struct pnvme_tracker {
	pnvme_cmd_cb cb;
	void *arg;
	uint64_t deadline;     /* cycle counter value */
	uint8_t state;         /* enum trk_state */
	uint8_t opc;
	uint8_t retries;       /* resubmissions so far */
	uint8_t owned;         /* held by a prepared request (pnvme/req.h): never on the free stack */
	uint16_t sq_slot;      /* SQ entry it was posted in */
	uint16_t cid;          /* command id on the wire: index | generation << 12 */
	/* cold: only multi-page transfers, DSM, retries and aborts touch these */
	uint64_t *prp_list;    /* this tracker's PRP list page (4 KiB of DMA memory) */
	uint64_t prp_iova;
	struct pnvme_sqe *saved; /* copy of the command, when the queue pair may retry */
	struct abort_ctx *abort;
};

/* qp->post_slow: what a submission does beyond posting the entry (tested once, sqe_post) */
#define QP_POST_IMMEDIATE PNVME_QPAIR_DB_IMMEDIATE /* ring the SQ doorbell now */
#define QP_POST_SAVE      (1u << 8)  /* retries enabled: keep a copy of the command */
#define QP_POST_CMB       (1u << 9)  /* the SQ is in the CMB: copy the entry there (pcie/cmb.c) */
/* qp->slow: what sends pnvme_qpair_poll() off its fast path (tested with in_poll, once) */
#define QP_SLOW_TCP       (1u << 0)  /* NVMe/TCP: move the rings over the connection */
#define QP_SLOW_STOPPED   (1u << 1)  /* qpair_stop(): err is set */
#define QP_SLOW_GONE      (1u << 2)  /* a poll found the controller gone: every poll says so */

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
	uint32_t post_slow;    /* QP_POST_*: 0 on the plain path */
	struct pnvme_tracker *trk;
	struct pnvme_tcp_queue *tq; /* NVMe/TCP: the connection carrying the rings; NULL on PCIe */
	uint64_t timeout_ticks;
	const struct pnvme_dma *dma;
	struct pnvme_dma_cache xl; /* run of the last buffer translated */
	struct pnvme_ctrl *ctrl;   /* (hot: I/O calls check the namespace's owner) */
	/*
	 * Requests posted and requests completed (callbacks run), since
	 * creation. Outstanding = posted - done; the statistics' submitted and
	 * completed are these less their values at pnvme_qpair_reset_stats().
	 */
	uint64_t posted;
	uint32_t *sdb_sq;      /* shadow SQ tail doorbell, NULL without DBBUF (atomics) */
	const uint32_t *ei_sq; /* controller's EventIdx for it (atomics) */
	uint32_t *sdb_cq;
	const uint32_t *ei_cq;
	/* (shared words below: read and written with __atomic builtins only) */
	const uint32_t *ctrl_gen; /* controller reset generation */
	const int *ctrl_dead;  /* controller's dead flag, or our `stopped` */
	int db_busy;           /* inside a doorbell write (handshake with a reset) */
	/* hot: completion */
	struct pnvme_cqe *cq;
	struct pnvme_cqe *cq_end; /* cq + cq_size */
	volatile uint32_t *cq_db;
	uint32_t cq_head;
	uint32_t cq_size;      /* CQ entries (qsize, or more with PNVME_QPAIR_LAZY_CQ_DB) */
	uint32_t cq_db_head;   /* last value written to the CQ head doorbell */
	uint32_t cq_db_every;  /* write it once this many entries were consumed */
	/*
	 * The poll's one compare: gate_gen == (controller generation) << 32
	 * means not inside a poll already, nothing rare to do (poll_gate 0), and
	 * no reset since our queues were created (gen current).
	 */
	union {
		struct {
			union {
				struct {
					uint16_t in_poll; /* inside pnvme_qpair_poll */
					uint16_t slow;    /* QP_SLOW_* */
				};
				uint32_t poll_gate;
			};
			uint32_t gen; /* generation our queues were created in */
		};
		uint64_t gate_gen;
	};
	uint16_t phase;
	uint16_t idle_polls;   /* empty polls since the clock was last read */
	uint32_t nr_trk;       /* qsize - 1 */
	uint64_t done;         /* requests completed (see posted) */
	uint64_t next_check;   /* next deadline scan, cycle counter */
	struct pnvme_qpair_stats stats; /* (submitted, completed: from posted, done) */
	/* ---- cold below ---- */
	uint64_t posted_base;  /* posted, done at the last pnvme_qpair_reset_stats() */
	uint64_t done_base;
	uint16_t qid;
	uint32_t flags;        /* PNVME_QPAIR_* as created */
	int err;               /* sticky error (failed re-creation, being destroyed) */
	int stopped;           /* 1 once err is set: ctrl_dead points here then (atomic) */
	uint32_t max_retries;
	uint32_t nr_expired;   /* EXPIRED trackers */
	uint32_t nr_owned;     /* trackers held by prepared requests */
	uint32_t warned;       /* hostile-CQE kinds already reported */
	uint64_t check_ticks;  /* interval between deadline scans */
	uint64_t next_health;  /* next CSTS read */
	void *sq_mem, *cq_mem, *prp_mem;
	struct pnvme_sqe *saved_mem;
	/*
	 * PNVME_QPAIR_CMB_SQ (pcie/cmb.c): the SQ the controller reads is in
	 * its Controller Memory Buffer; `sq` stays the host-memory ring that
	 * commands are built in, each entry copied to the CMB when committed.
	 */
	volatile struct pnvme_sqe *cmb_sq;
	uint64_t cmb_sq_bus;   /* its address in the controller memory space */
	int irq_fd;            /* PNVME_QPAIR_INTERRUPTS: the CQ's eventfd, else -1 */
	struct pnvme_qpair *next; /* controller's list of I/O queue pairs */
};

/* Requests submitted and not yet completed (ACTIVE + ABORTING trackers). */
static inline uint32_t qpair_outstanding(const struct pnvme_qpair *qp)
{
	return (uint32_t)(qp->posted - qp->done);
}

/*
 * A tracker's request ended (callback run, or its id recycled): back on the
 * free stack, unless a prepared request holds it (it stays with the request).
 */
static inline void trk_release(struct pnvme_qpair *qp, struct pnvme_tracker *trk, uint32_t idx)
{
	trk->state = TRK_FREE;
	if (likely(!trk->owned))
		qp->free_cids[qp->nr_free++] = (uint16_t)idx;
}

/*
 * Controller state (like Linux's nvme_ctrl_state). Only ctrl_change_state()
 * changes it, and only along these edges:
 *   NEW -> LIVE                    bring-up done
 *   LIVE -> RESETTING              a reset starts (its owner holds the admin lock
 *                                  until it ends)
 *   RESETTING -> CONNECTING        the controller is enabled again: admin commands
 *                                  flow (Set Features, Doorbell Buffer Config)
 *   CONNECTING -> RESETTING        a step of the reset failed: the whole reset again
 *   CONNECTING -> LIVE             the reset is done; I/O queue pairs re-create
 *                                  their queues at their next poll
 *   NEW, LIVE, CONNECTING -> DELETING  pnvme_ctrl_close()
 *   any but DEAD -> DEAD           device gone, or the reset gave up
 * A reset request in RESETTING or CONNECTING is folded into the running reset
 * (only the owner's own thread can make one then: everyone else waits for the
 * admin lock and finds the generation moved).
 */
enum ctrl_state {
	CTRL_NEW = 0,
	CTRL_LIVE,
	CTRL_RESETTING,
	CTRL_CONNECTING,
	CTRL_DELETING,
	CTRL_DEAD,
};

/*
 * The transport seam (like Linux's nvme_ctrl_ops / SPDK's transport ops):
 * what differs between a memory-based controller on PCIe (VFIO or the
 * emulator) and a message-based one on a fabric (NVMe/TCP). The controller
 * core (bring-up, identify, admin commands, state machine, recovery) runs
 * the same numbered steps over either; queue pairs keep the same SQ/CQ ring
 * model, and the PCIe submit and completion paths use it with no
 * indirection at all. A TCP queue pair carries the ring's entries to the
 * controller in capsules (src/tcp/): its qp->tq is non-NULL, which only the
 * slow paths and the poll test.
 */
struct pnvme_transport_ops {
	const char *name; /* "pcie", "tcp" */
	/* Controller registers: MMIO (Base 2.0 §3.1.4), or properties through
	 * Property Get/Set (§6.5, §6.6). 0 / -errno. */
	int (*reg_read32)(struct pnvme_ctrl *ctrl, uint32_t off, uint32_t *val);
	int (*reg_read64)(struct pnvme_ctrl *ctrl, uint32_t off, uint64_t *val);
	int (*reg_write32)(struct pnvme_ctrl *ctrl, uint32_t off, uint32_t val);
	/*
	 * First contact, before any DMA memory exists: PCIe reads CAP/VS, checks
	 * BAR0 and disables the controller a previous owner left running; a
	 * fabric has nothing to do yet (its registers exist once connected).
	 */
	int (*probe)(struct pnvme_ctrl *ctrl);
	/*
	 * Everything before CC.EN = 1: on PCIe, disable and program AQA/ASQ/ACQ
	 * (Base 2.0 §3.5.1 steps 1-2); on a fabric, a new association: connect
	 * the admin queue and send its Connect (§3.5.2 steps 1-2).
	 */
	int (*admin_setup)(struct pnvme_ctrl *ctrl);
	/* End the controller's operation: CC.EN = 0 and wait (PCIe), or drop the
	 * association (fabrics: the admin connection closes). 0 / -errno. */
	int (*disable)(struct pnvme_ctrl *ctrl);
	/* Create an I/O queue pair's queues on the controller: Create I/O CQ + SQ
	 * (PCIe), or a connection and a Connect (fabrics). Admin lock held. */
	int (*queue_create)(struct pnvme_qpair *qp);
	/* Delete them: Delete I/O SQ + CQ, or Disconnect/close. Admin lock held. */
	int (*queue_delete)(struct pnvme_qpair *qp);
	/* Release transport resources of the controller (at close). */
	void (*close)(struct pnvme_ctrl *ctrl);
};

extern const struct pnvme_transport_ops pnvme_pcie_ops; /* pcie/pcie.c */
extern const struct pnvme_transport_ops pnvme_tcp_ops;  /* tcp/tcp_ctrl.c */

/* Attempts of one reset before the controller is declared dead. */
#define CTRL_RESET_ATTEMPTS 3u

struct pnvme_tcp_ctrl;
struct pnvme_tcp_queue;

struct pnvme_ctrl {
	const struct pnvme_transport_ops *tr;
	struct pnvme_backend be;
	volatile uint8_t *bar;
	uint64_t cap;
	uint32_t vs;
	uint32_t dstrd;
	/*
	 * Shared between threads without a lock, so read and written with
	 * __atomic builtins only (ThreadSanitizer checks that): dead, state,
	 * gen, admin_gen and resets.
	 */
	int dead;                  /* state is CTRL_DEAD (the submit paths' one load) */
	int state;                 /* enum ctrl_state, through ctrl_change_state() only */
	uint32_t gen;              /* bumped when a reset starts, when it ends, and by death */
	uint32_t admin_gen;        /* the admin queue's doorbell gate: moved when a reset
				    * (attempt) starts, the admin queue follows it once
				    * the controller is enabled again */
	uint32_t resets;           /* pnvme_ctrl_resets(): written under the admin lock */
	/*
	 * A reset requested while this thread is inside an admin poll (an admin
	 * timeout, or an I/O queue's ladder run from an admin callback): run
	 * after the poll by ctrl_run_pending_reset(), unless a reset finished
	 * since `reset_req_gen` (the generation it was raised in). Written and
	 * read under the admin lock (atomically all the same).
	 */
	int reset_pending;
	uint32_t reset_req_gen;
	const char *reset_req_why;
	bool in_reset_cb;          /* inside opts.reset_cb (under the admin lock) */
	/* Fabrics reconnection between attempts (reset.c reconnect_step; atomics) */
	int reconnecting;          /* RESETTING, waiting for the next attempt */
	uint64_t reconnect_at_ms;  /* next attempt due (pnvme_now_ms clock) */
	uint64_t loss_at_ms;       /* ctrl_loss_tmo ends: dead after that */
	unsigned reconnect_attempts;
	bool in_reconnect;         /* inside reconnect_step (admin lock held) */
	const char *reset_why;
	void **quarantine;         /* DMA buffers of timed-out admin commands: freed once */
	uint32_t nr_quarantine;    /* the next reset has disabled the controller */
	uint32_t *dbbuf;           /* shadow doorbells (one page), when in use */
	uint32_t *eventidx;        /* EventIdx page */
	bool dbbuf_on;
	/* Controller Memory Buffer (pcie/cmb.c): set up by the first CMB queue pair */
	volatile uint8_t *cmb;     /* the host's mapping, NULL until then */
	size_t cmb_len;
	uint64_t cmb_bus;          /* CMBMSC.CBA */
	uint8_t *cmb_used;         /* per 4 KiB page of it: 1 if a queue holds it */
	uint64_t admin_timeout_ticks;
	struct pnvme_dma dma;
	struct pnvme_ctrl_opts opts;
	/* admin queue, serialised by admin_lock (recursive: callbacks may submit) */
	pthread_mutex_t admin_lock;
	struct pnvme_qpair *adminq;
	/* identity */
	struct pnvme_id_ctrl id;
	/*
	 * Namespaces (ns.c): `ns` has room for MAX_NAMESPACES pointers from
	 * bring-up on (never reallocated), the first nr_ns the active ones in
	 * ascending NSID; each object is allocated once and lives until close
	 * (applications hold pointers). Removed ones move to ns_gone. Changed
	 * only under the admin lock (bring-up, rescans from the AER path).
	 */
	struct pnvme_ns **ns;
	uint32_t nr_ns;
	struct pnvme_ns **ns_gone;
	uint32_t nr_gone;
	uint32_t ns_gen;           /* pnvme_ctrl_ns_generation() (atomic) */
	struct ctrl_aer *aer;      /* aer.c: Asynchronous Event Requests */
	uint32_t max_xfer;
	uint16_t max_io_queues;
	uint8_t *qid_used;         /* [max_io_queues + 1] */
	struct pnvme_qpair *qpairs;
	struct pnvme_emu *emu;
	struct pnvme_tcp_ctrl *tcp; /* NVMe/TCP: address, options, association */
	bool owns_emu;
	bool dma_ready;
	bool probed;               /* the transport's probe succeeded: disable at failure */
	bool discovery;            /* a discovery controller (Identify CNTRLTYPE 2) */
};

/* pcie/cmb.c: submission queues in the Controller Memory Buffer */
/** Give `qp` an SQ in the CMB, enabling the CMB first. Admin lock held. 0 / -errno. */
int cmb_sq_alloc(struct pnvme_qpair *qp);
/** Give its CMB pages back (none: nothing). */
void cmb_sq_free(struct pnvme_qpair *qp);
/** Copy the committed entry in SQ slot `slot` to the CMB: 64-byte stores, then a store fence. */
void cmb_sqe_write(struct pnvme_qpair *qp, uint32_t slot, const struct pnvme_sqe *sqe);
/** Program CMBMSC again (before an enable: a reset may have cleared it). */
void cmb_restore(struct pnvme_ctrl *ctrl);
/** Free the CMB's bookkeeping (the backend unmaps the BAR). */
void cmb_close(struct pnvme_ctrl *ctrl);

/* pcie/qpair.c */
int qpair_alloc(struct pnvme_ctrl *ctrl, uint16_t qid, uint32_t qsize, uint32_t timeout_ms,
		uint32_t flags, uint32_t max_retries, struct pnvme_qpair **out);
/** Empty both rings (host side) and the CQ memory, for a fresh queue on the device. */
void qpair_ring_reset(struct pnvme_qpair *qp);
/**
 * Zero the queue pair's doorbell registers where the device polls them
 * (pnvme_backend.db_polled): before the device creates the queue.
 */
void qpair_db_zero(struct pnvme_qpair *qp);
/** Point the queue pair at its shadow doorbells (or none) and zero them. */
void qpair_shadow_setup(struct pnvme_qpair *qp);
void qpair_free(struct pnvme_qpair *qp);
int qpair_submit_raw(struct pnvme_qpair *qp, const struct pnvme_sqe *cmd, void *dma_buf,
		     size_t len, pnvme_cmd_cb cb, void *arg);
int qpair_wait_flag(struct pnvme_qpair *qp, volatile int *done, pthread_mutex_t *lock);
/** The error a stopped (or dead-controller) queue pair gives submitters (pnvme_fail). */
__attribute__((cold, noinline)) int qpair_gone(const struct pnvme_qpair *qp);
/**
 * Create the queue pair's CQ, then its SQ, on a live controller (admin lock
 * held), again if a reset interrupts them; *gen_out is the generation they
 * exist in. 0, -ENODEV (dead), or the errno of the refusal.
 */
int qpair_queues_create(struct pnvme_qpair *qp, uint32_t *gen_out);
/** Re-post tracker `cid`'s command `cmd` under a fresh command id (retry / after a reset). */
bool qpair_repost(struct pnvme_qpair *qp, uint16_t cid, const struct pnvme_sqe *cmd, bool retry);
/** Reap the whole CQ (callbacks run); the count of completed requests. */
int qpair_reap(struct pnvme_qpair *qp);

/* recovery.c: host-side completion, deadlines and Abort, re-creation after a reset */
/** Complete every outstanding request with `err` (host side); expired ids are freed. */
void qpair_fail_all(struct pnvme_qpair *qp, int err);
/** Drop a tracker's interest in its Abort (the completion path, when the request ends). */
void qpair_abort_release(struct pnvme_tracker *trk);
/** The deadline scan and health check of pnvme_qpair_poll() (slow path). */
void qpair_check_deadlines(struct pnvme_qpair *qp, uint64_t now);
/**
 * Bring the queue pair to the controller's new generation after a reset
 * (or death). 0, a negative errno (stopped, or the controller dead), or 1
 * while this thread runs the reset.
 */
int qpair_reconnect(struct pnvme_qpair *qp);

/* ctrl.c (bring-up, registers) and reset.c (state machine, recovery) */
/** Base 2.0 §3.7.2: CC.EN 1 -> 0, then wait (CAP.TO) for CSTS.RDY = 0. 0 / -errno. */
int ctrl_cc_disable(struct pnvme_ctrl *ctrl);
/** The transport's disable: ctrl_cc_disable() on PCIe, the association dropped on fabrics. */
int ctrl_disable(struct pnvme_ctrl *ctrl);
/** Base 2.0 §3.5.1 steps 1-6 / §3.5.2 steps 1-4: admin queue, CC, wait for CSTS.RDY = 1. */
int ctrl_enable(struct pnvme_ctrl *ctrl);
/** Read CSTS; mark the controller dead on all ones. Returns CSTS or -ENODEV. */
int64_t ctrl_read_csts(struct pnvme_ctrl *ctrl);
/** The device is gone: every queue pair fails its requests with -ENODEV. */
void ctrl_mark_dead(struct pnvme_ctrl *ctrl);
/**
 * Reset the controller unless a reset already happened since generation
 * `seen_gen` (several queue pairs may notice one hang). Takes the admin lock.
 * Returns 0 or the errno that left the controller dead.
 */
int ctrl_recover(struct pnvme_ctrl *ctrl, uint32_t seen_gen, const char *why);
/** Configure shadow doorbells if asked and offered (after every enable). */
int ctrl_dbbuf_config(struct pnvme_ctrl *ctrl);
/**
 * The one place the controller state changes: returns true if `to` is
 * allowed from the current state (see enum ctrl_state) and was entered,
 * with its side effects (generation moves, admin doorbell gate, dead flag).
 */
bool ctrl_change_state(struct pnvme_ctrl *ctrl, enum ctrl_state to);
static inline enum ctrl_state ctrl_state(const struct pnvme_ctrl *ctrl)
{
	return (enum ctrl_state)__atomic_load_n(&ctrl->state, __ATOMIC_ACQUIRE);
}
/* The controller is dead (any thread; a flag, nothing is read on its strength). */
static inline bool ctrl_is_dead(const struct pnvme_ctrl *ctrl)
{
	return __atomic_load_n(&ctrl->dead, __ATOMIC_RELAXED) != 0;
}
/* The submit paths' "controller gone or queue pair stopped?" load. */
static inline bool qpair_gone_flag(const struct pnvme_qpair *qp)
{
	return __atomic_load_n(qp->ctrl_dead, __ATOMIC_RELAXED) != 0;
}
/*
 * Stop a queue pair for good with `err`: submissions fail at once (the
 * submit paths' one "controller gone?" load now reads this queue's own flag,
 * so the hot path pays nothing extra) and the next poll fails what is left.
 */
static inline void qpair_stop(struct pnvme_qpair *qp, int err)
{
	qp->err = err;
	qp->slow |= QP_SLOW_STOPPED;
	__atomic_store_n(&qp->stopped, 1, __ATOMIC_RELAXED);
	qp->ctrl_dead = &qp->stopped;
}
/* Commands that may be sent again without changing their effect. */
static inline bool opc_retryable(uint8_t opc)
{
	return opc == PNVME_NVM_READ || opc == PNVME_NVM_WRITE || opc == PNVME_NVM_FLUSH ||
	       opc == PNVME_NVM_WRITE_ZEROES || opc == PNVME_NVM_DSM;
}
/* The generation a queue pair follows (the controller's, or the admin gate). */
static inline uint32_t qpair_ctrl_gen(const struct pnvme_qpair *qp)
{
	return __atomic_load_n(qp->ctrl_gen, __ATOMIC_ACQUIRE);
}
/*
 * A CQE's status word (phase tag in bit 0), which the controller writes last
 * (a release store in the emulator): an acquire load, so the rest of the
 * entry read after it is the entry the phase tag announced (Base 2.0
 * §4.2.4). A plain 16-bit move on x86.
 */
static inline uint16_t cqe_status_load(const struct pnvme_cqe *cqe)
{
	return __atomic_load_n(&cqe->status, __ATOMIC_ACQUIRE);
}
/**
 * Ask for a reset because of something seen in generation `gen`: decided
 * under the admin lock. Inside this thread's admin poll the request is left
 * pending (with `gen`) for the poller; otherwise the reset runs now (or is
 * folded into one this thread is running, or dropped when the generation
 * moved already).
 */
void ctrl_request_reset(struct pnvme_ctrl *ctrl, uint32_t gen, const char *why);
/**
 * Fabrics: make the next reconnect attempt if one is due (any thread, cheap
 * when none is: two loads). Takes the admin lock with a trylock only.
 */
void ctrl_reconnect_poll(struct pnvme_ctrl *ctrl);
/** Record a reset request (admin lock held, inside an admin poll). */
void ctrl_defer_reset(struct pnvme_ctrl *ctrl, uint32_t gen, const char *why);
/** Run a reset requested from inside the admin queue's poll (admin lock held). */
void ctrl_run_pending_reset(struct pnvme_ctrl *ctrl);
/**
 * Parse Identify Namespace data into `ns` (nsid not set). Returns 0, or
 * -EPROTO for impossible values (LBA format index beyond NLBAF, LBA data size
 * outside 512 B..64 KiB).
 */
int pnvme_parse_id_ns(const struct pnvme_id_ns *id, uint32_t max_xfer, struct pnvme_ns *ns);
/** Create I/O CQ with interrupts on MSI-X vector `iv` (iv < 0: polled). Admin lock held. */
int ctrl_create_io_cq_irq(struct pnvme_ctrl *ctrl, uint16_t qid, uint64_t iova, uint32_t qsize,
			  int32_t iv);
/** Slow-path wait: give the device a turn (backend hook). */
static inline void ctrl_wait_hook(struct pnvme_ctrl *ctrl)
{
	ctrl->be.ops->wait(ctrl->be.ctx);
}

/* tcp/tcp_ctrl.c: fabrics reconnection policy (0 on PCIe) */
uint32_t ctrl_loss_tmo_ms(const struct pnvme_ctrl *ctrl);
uint32_t ctrl_reconnect_delay_ms(const struct pnvme_ctrl *ctrl);
/** After Identify: fabrics limits (in-capsule size), discovery controllers. */
int tcp_ctrl_identified(struct pnvme_ctrl *ctrl);
/* qpair.c: the PCIe transport's queue deletion (Delete I/O SQ, reap, Delete I/O CQ) */
int pcie_queue_delete(struct pnvme_qpair *qp);

/* ns.c: the namespace list */
#define MAX_NAMESPACES 1024u       /* active namespaces pnvme tracks */
/** Bring-up: allocate the list and identify the active namespaces. 0 / -errno. */
int ctrl_ns_scan(struct pnvme_ctrl *ctrl);
/**
 * Rescan after a namespace attribute notice (admin lock held, not inside the
 * admin poll: sync admin commands): read the active list again, Identify the
 * namespaces in `changed` (every active one when `all`), add new ones, mark
 * vanished ones removed. Bumps ns_gen if anything changed. 0 / -errno.
 */
int ctrl_ns_rescan(struct pnvme_ctrl *ctrl, const uint32_t *changed, uint32_t n, bool all);
void ctrl_ns_free(struct pnvme_ctrl *ctrl);

/* aer.c: Asynchronous Event Requests (Base 2.0 §5.2) */
#define CTRL_AER_SLOTS 8u          /* admin ring entries added for them (at most) */
/**
 * Enable events (Set Features Asynchronous Event Configuration) and post
 * Asynchronous Event Requests up to the target count: after bring-up's and
 * after each reset's admin commands (admin lock held). A refusal leaves
 * the controller without events (logged): returns 0, or -ETIMEDOUT /
 * -ENODEV.
 */
int ctrl_aer_start(struct pnvme_ctrl *ctrl);
/** Handle events completed during admin polls (admin lock held, not in the poll). */
void ctrl_aer_process(struct pnvme_ctrl *ctrl);
void ctrl_aer_free(struct pnvme_ctrl *ctrl);

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
