/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme/qpair.h - I/O queue pairs and NVM I/O commands: the hot path.
 *
 * A queue pair is one I/O submission queue and its own completion queue,
 * polled (interrupts disabled). Threading rule: a queue pair is used by one
 * thread at a time; use one queue pair per thread. Different queue pairs of
 * one controller may be used by different threads concurrently. Submitting
 * and reaping take no lock and no atomic read-modify-write; what else
 * pnvme_qpair_poll() may do (deadline scans, Aborts, resets) is listed there.
 *
 * Submission copies the 64-byte SQE to sq[tail] and advances the tail. The SQ
 * tail doorbell is written at most once per batch: by pnvme_qpair_flush(), or
 * by pnvme_qpair_poll() before it reaps, unless the queue pair was created
 * with PNVME_QPAIR_DB_IMMEDIATE. Completion walks the CQ while the phase bit
 * matches, runs each request's callback, and writes the CQ head doorbell once
 * per poll (NVMe Base 2.0 §3.3.1).
 *
 * Buffers passed to I/O commands must be pnvme DMA memory (pnvme/dma.h) of the
 * queue pair's controller and dword aligned (vectored I/O described with
 * SGLs: any alignment, see pnvme_readv()); anything else is refused with
 * -EINVAL before the device sees it. So are a NULL queue pair or namespace and
 * a namespace of another controller. A transfer larger than the namespace's
 * max_xfer is refused with -EINVAL (pnvme does not split requests). LBA
 * ranges outside the namespace are refused with -ERANGE.
 */
#ifndef PNVME_QPAIR_H
#define PNVME_QPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <pnvme/api.h>
#include <pnvme/ctrl.h>
#include <pnvme/spec.h>

PNVME_BEGIN_DECLS

struct pnvme_qpair;

#define PNVME_QPAIR_DB_IMMEDIATE (1u << 0) /* ring the SQ doorbell on every submit */
/*
 * Defer the CQ head doorbell: the CQ gets up to twice the SQ's entries (within
 * CAP.MQES) and its head doorbell is written only once the consumed entries
 * the controller does not know of reach the spare room (CQ size - depth), so
 * the controller can never find the CQ full. Saves most CQ doorbell writes
 * where each one is expensive (a trap into the hypervisor); costs CQ memory.
 */
#define PNVME_QPAIR_LAZY_CQ_DB   (1u << 1)
/*
 * Refuse (-EINVAL) reads and writes larger than one command may carry
 * (pnvme_ns.max_lbas, from MDTS) instead of splitting them into child
 * commands (see pnvme_read()).
 */
#define PNVME_QPAIR_NO_SPLIT     (1u << 2)
/*
 * pnvme_readv() / pnvme_writev() describe the data with SGLs whenever the
 * controller supports them (Identify SGLS bits 1:0 = 01b or 10b), also
 * where PRPs would do, a single element included. Without SGL support (and
 * on NVMe/TCP) the flag changes nothing.
 */
#define PNVME_QPAIR_PREFER_SGL   (1u << 3)
/*
 * Put the I/O submission queue in the controller's Controller Memory Buffer
 * (PCIe; CAP.CMBS and CMBSZ.SQS, NVMe Base 2.0 §3.1.4.11-§3.1.4.13), as
 * SPDK's cmb_sq option does: the controller fetches commands from its own
 * memory instead of reading them across the bus. The first such queue pair
 * enables the CMB (CMBMSC.CRE, then CMSE with CBA = the bus address of the
 * BAR CMBLOC.BIR names, mapped through VFIO or the emulator's BAR2). Commands
 * are still built in host memory; each one is copied into the CMB when it is
 * committed, as whole 64-byte stores followed by a store fence, so the tail
 * doorbell never overtakes it (safe on write-combining mappings). No
 * fallback: pnvme_qpair_create() fails with -ENOTSUP (and a message) when
 * the controller has no CMB, its CMB takes no SQs, or the transport is
 * NVMe/TCP; with -ENOSPC when the CMB has no room left for the ring
 * (depth + 1 entries of 64 bytes, whole 4 KiB pages). Create the queue pair
 * without the flag to fall back to host memory.
 */
#define PNVME_QPAIR_CMB_SQ       (1u << 4)
/*
 * Interrupts: the CQ is created with interrupts enabled (Create I/O CQ
 * IEN = 1, IV = the queue id; Base 2.0 §5.4) and its MSI-X vector signals an
 * eventfd (pnvme_qpair_event_fd()), for a thread that sleeps when it has
 * nothing to do (a target's poller) instead of spinning. Completions are
 * still reaped by pnvme_qpair_poll(): the I/O path is the same. PCIe only
 * (VFIO MSI-X, the emulated controller): -ENOTSUP on TCP; -ENOSPC where the
 * function has no MSI-X vector for the queue id.
 */
#define PNVME_QPAIR_INTERRUPTS   (1u << 5)

struct pnvme_qpair_opts {
	uint32_t depth;      /* requests outstanding at once, 1..min(CAP.MQES, 4095); the
	                        rings get depth + 1 entries (see "Depth" in ctrl.h).
	                        0: 255 (256-entry rings), capped at CAP.MQES */
	uint32_t timeout_ms; /* per request deadline; 0 = the controller's io_timeout_ms */
	uint32_t flags;      /* PNVME_QPAIR_*; other bits are refused (-EINVAL) */
	uint32_t max_retries; /* resubmit a read/write/flush/write zeroes/DSM up to this many
	                         times after a controller reset, or after an error status
	                         without DNR (default 0: fail instead) */
};

/** Fill `opts` with defaults. NULL is ignored. */
void pnvme_qpair_opts_default(struct pnvme_qpair_opts *opts);

/**
 * Create an I/O queue pair (Create I/O CQ, then Create I/O SQ). Rings and
 * per-request PRP list pages are allocated here; nothing is allocated per I/O.
 * @opts: NULL for defaults.
 * Returns 0, -EINVAL (NULL ctrl or out; unknown flag bits; depth above
 * CAP.MQES or 4095 when given explicitly), -EBUSY (all I/O queue ids the
 * controller granted are in use), -ENOMEM, -ENODEV, or the errno of a failed
 * admin command. Thread safe (takes the admin lock).
 */
int pnvme_qpair_create(struct pnvme_ctrl *ctrl, const struct pnvme_qpair_opts *opts,
		       struct pnvme_qpair **out);

/**
 * Delete the queue pair (Delete I/O SQ, then CQ) and free it. Requests still
 * outstanding complete with -ECANCELED before it returns (submissions from
 * those callbacks fail with -ECANCELED). Returns 0 or the errno of a failed
 * delete (the queue pair is freed regardless), or -EDEADLK without doing
 * anything when called from one of this queue pair's callbacks. NULL is ignored.
 */
int pnvme_qpair_destroy(struct pnvme_qpair *qp);

/* Getters return 0 / false for a NULL queue pair; void calls ignore it. */
/** Queue identifier (1..). */
uint16_t pnvme_qpair_id(const struct pnvme_qpair *qp);
/**
 * The eventfd that becomes readable when the controller has posted
 * completions to the queue pair's CQ (created with PNVME_QPAIR_INTERRUPTS),
 * for poll()/epoll. To sleep without missing a completion:
 * pnvme_qpair_event_ack(), then pnvme_qpair_poll(), and only if that reaped
 * nothing, poll() on the fd. Returns the fd (the queue pair's: do not close
 * it), -EINVAL (NULL), -ENOTSUP (created without the flag).
 */
int pnvme_qpair_event_fd(const struct pnvme_qpair *qp);
/** Consume the interrupts signalled so far: 1 if there were any, 0 if none, -errno. */
int pnvme_qpair_event_ack(struct pnvme_qpair *qp);
/**
 * Requests that may be outstanding at once: opts.depth as created (or the
 * default). Submitting more returns -EAGAIN. The rings have one entry more.
 */
uint32_t pnvme_qpair_depth(const struct pnvme_qpair *qp);
/** Requests submitted and not yet completed. */
uint32_t pnvme_qpair_outstanding(const struct pnvme_qpair *qp);
/** Change the per-request deadline for requests submitted from now on. */
void pnvme_qpair_set_timeout(struct pnvme_qpair *qp, uint32_t timeout_ms);

/** Write the SQ tail doorbell if commands were posted since the last write. */
void pnvme_qpair_flush(struct pnvme_qpair *qp);

/**
 * Flush, then reap up to `max` completions (0 = as many as are ready),
 * running callbacks in completion order, and write the CQ head doorbell once.
 * Callbacks may submit new requests on the same queue pair.
 *
 * Recovery (after Linux's nvme_timeout, without interrupts): every poll also
 * checks deadlines (at most 1 ms late). A request past its deadline that is
 * still not in the CQ gets an Abort on the admin queue; if the Abort does
 * not settle it within the admin timeout, if the controller already holds
 * as many Aborts as it accepts (Identify ACL + 1), or if CSTS.CFS is seen,
 * the controller is reset (disabled, re-enabled: one reset at a time, a
 * failed step retries the whole reset a bounded number of times) and each
 * queue pair reaps its old CQ and re-creates its queues at its next poll
 * after the reset, keeping its handle. Each request completes exactly once.
 * An expired request reports how it ended: if the device completes it after
 * all (before the Abort reaches it), its callback gets the device's result
 * (0 on success) and the real CQE, although stats.timeouts counted it; if the
 * Abort ended it, or the reset found it still outstanding, -ETIMEDOUT (a CQE
 * the device posts for it later is dropped). The other requests of a reset
 * are resubmitted, with a fresh command id, when max_retries allows and the
 * command is safe to repeat, else they fail with -EIO. A device that reads
 * all ones is gone: everything fails with -ENODEV.
 *
 * Cost: reaping takes no lock, makes no system call and does no atomic
 * read-modify-write; a doorbell write includes one full memory barrier (the
 * handshake with a controller reset). Slow paths, only while requests are
 * outstanding: a deadline scan every min(1 ms, timeout / 8) and one CSTS
 * register read every 100 ms. For an expired request, poll tries the admin lock
 * (pthread_mutex_trylock: never waits; busy means "again at the next scan")
 * to post the Abort (a small malloc) and to reap the admin queue. When a reset
 * is due, the polling thread performs it: it waits for the admin lock and for
 * the controller (bounded by CAP.TO); and the first poll after any reset
 * waits for the reset to finish, then re-creates the queue pair's queues with
 * admin commands under the admin lock.
 *
 * Returns completions reaped (>= 0), -EINVAL for NULL, -ENODEV if the
 * controller is gone, -EIO if the queue could not be re-created after a
 * reset, -EDEADLK if called from one of this queue pair's callbacks.
 */
int pnvme_qpair_poll(struct pnvme_qpair *qp, uint32_t max);

/** True if the next CQ entry is valid (a poll would reap something). No MMIO. */
bool pnvme_qpair_cq_ready(const struct pnvme_qpair *qp);

struct pnvme_qpair_stats {
	uint64_t submitted;     /* commands posted */
	uint64_t completed;     /* callbacks run (device and host-side) */
	uint64_t sq_doorbells;  /* SQ tail doorbell writes */
	uint64_t cq_doorbells;  /* CQ head doorbell writes */
	uint64_t polls;         /* pnvme_qpair_poll() calls */
	uint64_t empty_polls;   /* polls that reaped nothing */
	uint64_t timeouts;      /* requests expired by the host */
	uint64_t errors;        /* completions with a non-zero status */
	uint64_t bad_cqes;      /* CQEs with a CID not outstanding (ignored) */
	uint64_t bad_sqhd;      /* CQEs whose SQ head pointer was impossible (ignored) */
	uint64_t aborts;        /* Abort commands sent for expired requests */
	uint64_t retries;       /* requests resubmitted (after reset or a retryable error) */
	uint64_t reconnects;    /* queue re-created after a controller reset */
};

/** Copy the counters. Same thread as the I/O. */
void pnvme_qpair_get_stats(const struct pnvme_qpair *qp, struct pnvme_qpair_stats *stats);
/** Zero the counters. */
void pnvme_qpair_reset_stats(struct pnvme_qpair *qp);

/* ------------------------------------------------------------------------ */
/* NVM I/O commands (NVM Command Set 1.0 §3). Each returns 0 once posted,   */
/* or: -EAGAIN queue full (poll and retry); -EINVAL bad buffer, nlb 0, bad */
/* flags, over max_lbas with PNVME_QPAIR_NO_SPLIT; -ERANGE LBA range        */
/* outside the namespace; -ENOMEM (a split request's state);                */
/* -ENODEV controller gone. None of them rings the doorbell unless the      */
/* queue pair has PNVME_QPAIR_DB_IMMEDIATE.                                 */
/* ------------------------------------------------------------------------ */

#define PNVME_IO_DEAC (1u << 25) /* Write Zeroes: deallocate */
#define PNVME_IO_FUA  (1u << 30) /* Force Unit Access */
#define PNVME_IO_LR   (1u << 31) /* Limited Retry */
/* End-to-end protection (PRINFO, CDW12 bits 29:26; namespaces with a PI type only) */
#define PNVME_IO_PRACT       (1u << 29) /* controller inserts (write) / strips (read) PI */
#define PNVME_IO_PRCHK_GUARD (1u << 28) /* check the guard (CRC-16) */
#define PNVME_IO_PRCHK_APP   (1u << 27) /* check the application tag */
#define PNVME_IO_PRCHK_REF   (1u << 26) /* check the reference tag */
#define PNVME_IO_PRCHK_ALL   (PNVME_IO_PRCHK_GUARD | PNVME_IO_PRCHK_APP | PNVME_IO_PRCHK_REF)

/**
 * Read `nlb` blocks at `slba` into `buf`, which must lie inside one
 * pnvme_dma_alloc() allocation and hold nlb * ns->block_bytes bytes (data,
 * and on an extended-LBA namespace each block's metadata after its data).
 * io_flags: PNVME_IO_FUA | PNVME_IO_LR, and PNVME_IO_PRACT / PNVME_IO_PRCHK_*
 * on a namespace with protection information (reference tag: the low 32
 * bits of slba; application tag: not checked). A namespace with separate
 * metadata needs pnvme_read_md() (-EINVAL here), unless PRACT strips the
 * only 8 bytes of metadata (PI). Does not ring the doorbell.
 *
 * More than ns->max_lbas blocks (MDTS): split into child commands of at
 * most max_lbas blocks, cut at the namespace's NOIOB boundaries when it
 * reports one; the callback runs once, after the last child, with the
 * first error (and that child's CQE, else the last child's). If the queue
 * fills, the remaining children are submitted from the earlier children's
 * completions (in LBA order); -EAGAIN only when not even the first fits
 * (nothing submitted then). PNVME_QPAIR_NO_SPLIT refuses instead.
 */
int pnvme_read(struct pnvme_qpair *qp, const struct pnvme_ns *ns, void *buf, uint64_t slba,
	       uint32_t nlb, uint32_t io_flags, pnvme_cmd_cb cb, void *arg);
/** Write `nlb` blocks from `buf` at `slba`; as pnvme_read(). */
int pnvme_write(struct pnvme_qpair *qp, const struct pnvme_ns *ns, const void *buf,
		uint64_t slba, uint32_t nlb, uint32_t io_flags, pnvme_cmd_cb cb, void *arg);
/**
 * Vectored Read / Write: `nlb` blocks at `slba` to / from `iovcnt` (1..1024)
 * elements of pnvme DMA memory (any memory on NVMe/TCP) holding exactly
 * nlb * ns->block_bytes bytes together, each element inside one live
 * allocation (else -EINVAL, nothing submitted). Chosen in this order:
 *  - PRPs: elements that PRPs can chain (only the first may start inside a
 *    page, only the last may end inside one; the first dword aligned; Base
 *    2.0 §4.1.1) within one command's transfer limit go out as one command
 *    with one PRP list (one element: as pnvme_read()). Skipped with
 *    PNVME_QPAIR_PREFER_SGL when the controller has SGLs.
 *  - SGLs (PCIe, controller reports SGL support, Base 2.0 §4.1.2): one
 *    Data Block descriptor per element, or per part of one, in the request's
 *    own list page (a Last Segment descriptor in the SQE names it; one Data
 *    Block goes in the SQE itself). Elements may start and end anywhere and
 *    have any length of 1 byte or more, blocks may straddle elements; with
 *    SGLS 10b (dword granularity) every element's address and length must be
 *    multiples of 4, else the next way is taken. A request above max_lbas,
 *    crossing the namespace's NOIOB, or needing more than 256 descriptors is
 *    cut on block boundaries into several commands (PNVME_QPAIR_NO_SPLIT:
 *    -EINVAL instead); a single block spread over more than 256 elements
 *    takes the next way.
 *  - Otherwise each element becomes its own command (each must then hold
 *    whole blocks and be dword aligned).
 * Several commands are submitted all at once or not at all (-EAGAIN) and
 * the callback runs once, after the last, with the first error. Namespaces
 * with separate metadata are refused; io_flags PNVME_IO_FUA | PNVME_IO_LR.
 * Returns as pnvme_read().
 */
int pnvme_readv(struct pnvme_qpair *qp, const struct pnvme_ns *ns, const struct iovec *iov,
		unsigned iovcnt, uint64_t slba, uint32_t nlb, uint32_t io_flags, pnvme_cmd_cb cb,
		void *arg);
int pnvme_writev(struct pnvme_qpair *qp, const struct pnvme_ns *ns, const struct iovec *iov,
		 unsigned iovcnt, uint64_t slba, uint32_t nlb, uint32_t io_flags, pnvme_cmd_cb cb,
		 void *arg);
/**
 * Read with a separate metadata buffer `md` (MPTR): nlb * ns->ms bytes of
 * pnvme DMA memory, dword aligned, inside one allocation. `md` NULL is
 * allowed only where no metadata moves (no metadata, extended LBAs, or
 * PRACT with 8-byte PI-only metadata). `apptag` / `apptag_mask`: expected
 * application tag and mask for PNVME_IO_PRCHK_APP (CDW15); the expected
 * initial reference tag is the low 32 bits of slba for PI types 1 and 2
 * (CDW14). Returns as pnvme_read(); protection errors complete with SCT 2h
 * SC 82h/83h/84h (guard / application tag / reference tag check).
 */
int pnvme_read_md(struct pnvme_qpair *qp, const struct pnvme_ns *ns, void *buf, void *md,
		  uint64_t slba, uint32_t nlb, uint32_t io_flags, uint16_t apptag,
		  uint16_t apptag_mask, pnvme_cmd_cb cb, void *arg);
/** Write with a separate metadata buffer `md`; as pnvme_read_md(). */
int pnvme_write_md(struct pnvme_qpair *qp, const struct pnvme_ns *ns, const void *buf,
		   const void *md, uint64_t slba, uint32_t nlb, uint32_t io_flags,
		   uint16_t apptag, uint16_t apptag_mask, pnvme_cmd_cb cb, void *arg);
/** Flush the namespace's volatile write cache. */
int pnvme_flush(struct pnvme_qpair *qp, const struct pnvme_ns *ns, pnvme_cmd_cb cb, void *arg);
/** Write Zeroes; io_flags may add PNVME_IO_DEAC, PNVME_IO_FUA, PNVME_IO_LR. nlb up to 65536. */
int pnvme_write_zeroes(struct pnvme_qpair *qp, const struct pnvme_ns *ns, uint64_t slba,
		       uint32_t nlb, uint32_t io_flags, pnvme_cmd_cb cb, void *arg);
/**
 * Dataset Management with `nr` ranges (1..256) in ordinary memory (copied
 * into the request's own DMA page). `attr`: PNVME_DSM_AD (deallocate) etc.
 */
int pnvme_dsm(struct pnvme_qpair *qp, const struct pnvme_ns *ns,
	      const struct pnvme_dsm_range *ranges, uint32_t nr, uint32_t attr, pnvme_cmd_cb cb,
	      void *arg);
/**
 * Raw I/O command: the library sets CID and, when len > 0, PRP1/PRP2 for `len`
 * bytes of `dma_buf` (NULL with len 0); every other field is the caller's.
 */
int pnvme_io_passthru(struct pnvme_qpair *qp, const struct pnvme_sqe *sqe, void *dma_buf,
		      size_t len, pnvme_cmd_cb cb, void *arg);

/*
 * Synchronous helpers: submit, ring, poll until the request completes (or its
 * deadline passes). Return 0 or the request's negative errno. They reap and
 * dispatch other completions on the queue pair while waiting.
 */
int pnvme_read_sync(struct pnvme_qpair *qp, const struct pnvme_ns *ns, void *buf,
		    uint64_t slba, uint32_t nlb, uint32_t io_flags);
int pnvme_write_sync(struct pnvme_qpair *qp, const struct pnvme_ns *ns, const void *buf,
		     uint64_t slba, uint32_t nlb, uint32_t io_flags);
int pnvme_flush_sync(struct pnvme_qpair *qp, const struct pnvme_ns *ns);
int pnvme_write_zeroes_sync(struct pnvme_qpair *qp, const struct pnvme_ns *ns, uint64_t slba,
			    uint32_t nlb, uint32_t io_flags);
int pnvme_dsm_sync(struct pnvme_qpair *qp, const struct pnvme_ns *ns,
		   const struct pnvme_dsm_range *ranges, uint32_t nr, uint32_t attr);
int pnvme_io_passthru_sync(struct pnvme_qpair *qp, const struct pnvme_sqe *sqe,
			   void *dma_buf, size_t len, struct pnvme_cqe *cqe);

PNVME_END_DECLS
#endif /* PNVME_QPAIR_H */
