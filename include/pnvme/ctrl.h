/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme/ctrl.h - controllers, namespaces and admin commands.
 *
 * Threading: a controller may be used from several threads. Admin commands
 * (sync and async) are serialised by a lock inside the controller. I/O queue
 * pairs (pnvme/qpair.h) are NOT thread safe: use each from one thread at a time.
 *
 * Arguments: a NULL pointer where an object is required is refused with
 * -EINVAL and a pnvme_last_error() message (never a crash); getters return
 * 0 / false / NULL for a NULL controller; pnvme_ctrl_close(NULL) does nothing.
 * A namespace (struct pnvme_ns) belongs to the controller it came from: using
 * it with another controller's queue pair is refused with -EINVAL.
 *
 * "Depth", here and in pnvme/qpair.h, is the number of commands that may be
 * outstanding at once on a queue. A queue of depth N has N + 1 submission
 * queue entries (and at least as many completion queue entries): a ring is
 * full when its head is one entry past its tail (Base 2.0 §3.3.1), so one
 * entry always stays free.
 */
#ifndef PNVME_CTRL_H
#define PNVME_CTRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pnvme/api.h>
#include <pnvme/spec.h>

PNVME_BEGIN_DECLS

struct pnvme_ctrl;
struct pnvme_emu;

/**
 * Completion callback, for admin and I/O commands alike.
 * @arg: the caller's argument.
 * @err: 0 on success; otherwise a negative errno: pnvme_status_errno() of the
 *       device's status, or a host-side reason (-ETIMEDOUT: the request's
 *       deadline passed; -ECANCELED: the queue was deleted with the request
 *       outstanding; -ENODEV: the controller is gone).
 * @cqe: the completion entry as the device posted it (valid only during the
 *       call). For host-side completions pnvme synthesises one with status
 *       Path Related / Command Aborted By Host (SCT 3h, SC 71h) and DNR set.
 */
typedef void (*pnvme_cmd_cb)(void *arg, int err, const struct pnvme_cqe *cqe);

/**
 * Called after the library reset the controller to recover from a timeout or
 * a controller fatal status: `err` is 0 if the controller works again, or the
 * negative errno that left it dead. Runs on the thread that performed the
 * reset, with the admin lock held: it may not issue sync admin commands.
 */
typedef void (*pnvme_reset_cb)(void *arg, int err, const char *reason);

/**
 * An asynchronous event (NVMe Base 2.0 §5.2), as pnvme_aer_cb receives it.
 * The library keeps min(AERL + 1, 8, admin_depth / 2) Asynchronous Event
 * Requests outstanding from bring-up on (and again after every controller
 * reset), with SMART / Health critical warnings and namespace attribute
 * notices enabled (Set Features Asynchronous Event Configuration,
 * §5.27.1.7). When one completes it reads the log page the event names
 * (Get Log Page with RAE clear: this re-arms the event type on the
 * controller), applies namespace changes, posts a new request, then calls
 * the application.
 */
struct pnvme_async_event {
	uint32_t dw0;       /* the completion's DW0 as posted */
	uint8_t type;       /* enum pnvme_aer_type (pnvme/spec.h) */
	uint8_t info;       /* per type: enum pnvme_aer_smart_info / _notice_info */
	uint8_t log_page;   /* the log page the event named (02h SMART, 04h Changed NS, ...) */
	uint8_t critical_warning; /* SMART events: byte 0 of the SMART log (PNVME_SMART_CW_*) */
	int log_err;        /* 0: the log page was read; else the negative errno of the read */
	/*
	 * Namespace Attribute Changed (type Notice, info 00h): the NSIDs of the
	 * Changed Namespace List (valid during the call only); `ns_overflow`
	 * set when the controller reported more than 1024 (every namespace
	 * was identified again). The namespace list (pnvme_ctrl_ns*) already
	 * shows the change, and pnvme_ctrl_ns_generation() has moved if any
	 * namespace was added, removed or changed.
	 */
	const uint32_t *nsids;
	uint32_t nr_nsids;
	bool ns_overflow;
	/* The log page's data as read (log_err 0), `log_len` bytes; valid during the call. */
	const void *log;
	uint32_t log_len;
};

/**
 * Called for every asynchronous event, from pnvme_ctrl_process_admin() (the
 * only place events are delivered: poll it now and then), with the admin
 * lock held: it may not issue sync admin commands or close the controller.
 * Controller resets and close end the outstanding requests without an event.
 */
typedef void (*pnvme_aer_cb)(void *arg, const struct pnvme_async_event *ev);

struct pnvme_ctrl_opts {
	uint32_t admin_timeout_ms; /* per admin command (default 60000, like Linux ADMIN_TIMEOUT) */
	uint32_t io_timeout_ms;    /* default per I/O command (default 30000, NVME_IO_TIMEOUT) */
	uint16_t admin_depth;      /* admin commands outstanding at once, 1..4095 (default 31:
	                              32-entry rings); capped at CAP.MQES */
	uint16_t nr_io_queues;     /* I/O queue pairs to request with Set Features (default 64) */
	uint32_t shutdown_timeout_ms; /* CC.SHN wait at close; 0 = max(RTD3E, 5 s) capped at 60 s */
	pnvme_reset_cb reset_cb;   /* optional: told about every controller reset */
	void *reset_arg;
	uint32_t flags;            /* PNVME_CTRL_*; other bits are refused (-EINVAL) */
	pnvme_aer_cb aer_cb;       /* optional: told about asynchronous events (0.x: appended) */
	void *aer_arg;
};

/*
 * Use shadow doorbells (Doorbell Buffer Config, NVMe Base 2.0 §5.8) when the
 * controller offers them (OACS bit 8; emulated and cloud controllers do): the
 * host writes doorbell values to memory and writes the MMIO doorbell only when
 * the controller's EventIdx says it is needed. Pays off where MMIO writes trap
 * (virtual machines), mostly with per-command doorbells. Set by
 * pnvme_ctrl_opts_default() (on by default, as SPDK and libvfn do); clear it
 * for MMIO doorbells only.
 */
#define PNVME_CTRL_SHADOW_DB (1u << 0)

/** Fill `opts` with the defaults above. NULL is ignored. */
void pnvme_ctrl_opts_default(struct pnvme_ctrl_opts *opts);

/**
 * Open and initialise a controller.
 * @addr: "emu" or "emu:OPTIONS" (an emulated controller, see pnvme/emu.h),
 *        "null" or "null:OPTIONS" (the emulator as a thread-less null device:
 *        reads return zeroes, writes are dropped; stepped by its poller, see
 *        pnvme/emu.h), a
 *        PCI address "DDDD:BB:DD.F" of a controller bound to vfio-pci, or an
 *        NVMe/TCP controller:
 *          tcp:HOST[:PORT]/SUBNQN[?OPTION=VALUE&...]
 *        HOST a name, an IPv4 address or [IPv6]; PORT default 4420; SUBNQN the
 *        subsystem (PNVME_DISCOVERY_NQN: a discovery controller, see
 *        pnvme/fabrics.h). Options, named as Linux's `nvme connect` names them:
 *          hostnqn=NQN        default /etc/nvme/hostnqn, else a UUID NQN from
 *                             /etc/machine-id (Base 2.0 §4.5)
 *          hostid=UUID        default /etc/nvme/hostid, else from machine-id
 *          hdr_digest=0|1     header digests (CRC32C), default 0
 *          data_digest=0|1    data digests, default 0
 *          keep_alive_tmo=S   KATO in seconds (default 5; 0 none); Keep Alive
 *                             is sent every KATO/2 from the queue pairs' and
 *                             the admin queue's polls: poll something
 *          reconnect_delay=S  between reconnect attempts (default 1)
 *          ctrl_loss_tmo=S    reconnect for this long, then the controller is
 *                             dead (default 60)
 *          connect_timeout=S  TCP connect + ICReq + Connect (default 10)
 *          nr_io_queues=N     I/O queues to ask for (default opts.nr_io_queues)
 *          queue_size=N       accepted for compatibility (depth is per queue
 *                             pair, pnvme_qpair_opts)
 *        On TCP, I/O buffers may be any memory of the caller's (no DMA
 *        allocation needed); separate-metadata namespaces are refused.
 * @opts: NULL for defaults.
 * Brings the controller up (NVMe Base 2.0 §3.5.1), identifies it and its
 * active namespaces and negotiates the number of I/O queues.
 * Returns 0, or:
 *   -EINVAL     NULL argument, bad address / emulator spec / options (unknown
 *               flag bits, depth or timeouts out of range);
 *   -ENODEV     no PCI device at that address ("no PCI device DDDD:BB:DD.F",
 *               checked in sysfs before anything touches VFIO), no IOMMU
 *               group, no driver bound, or registers that read all ones;
 *   -EBUSY      the device is bound to another driver than vfio-pci (run
 *               `pnvme bind`), or its VFIO group or device is already open
 *               (by another process, or by this one: one controller handle
 *               per device);
 *   -ENOENT     vfio-pci not loaded (/dev/vfio/vfio missing);
 *   -EPERM / -EACCES  not root, group not viable, IOMMU refused;
 *   -ETIMEDOUT  CSTS.RDY did not follow CC.EN within CAP.TO;
 *   -EIO        controller fatal status or a failed admin command;
 *   -EPROTO     impossible register values (CAP.MQES 0, BAR0 too small);
 *   -ENOMEM, -ENOSPC (no usable IOVA window);
 *   -EOPNOTSUPP VFIO support not built, no type1 IOMMU, NVM command set or
 *               4 KiB pages unsupported;
 *   TCP: -ECONNREFUSED / -ETIMEDOUT / -EHOSTUNREACH (no target there), the
 *               errno of a refused Connect (invalid host, invalid parameters
 *               such as an unknown subsystem NQN, controller busy: the
 *               message names it), -EPROTO (a malformed ICResp or PDU).
 * pnvme_last_error() has the details.
 */
int pnvme_ctrl_open(const char *addr, const struct pnvme_ctrl_opts *opts,
		    struct pnvme_ctrl **out);

/**
 * Open a controller on an emulator the caller created (e.g. with faults
 * armed). The emulator must outlive the controller; pnvme_ctrl_close() does
 * not destroy it. Returns as pnvme_ctrl_open().
 */
int pnvme_ctrl_open_emu(struct pnvme_emu *emu, const struct pnvme_ctrl_opts *opts,
			struct pnvme_ctrl **out);

/**
 * Shut the controller down and free it: I/O queue pairs still open are
 * destroyed (outstanding requests complete with -ECANCELED), then CC.SHN =
 * normal and a bounded wait for CSTS.SHST = complete (Base 2.0 §3.6.1).
 * Resources are released whatever happens. Returns 0, -ETIMEDOUT (shutdown
 * did not complete), -ENODEV (device gone), or -EDEADLK without doing anything
 * when called from a completion callback or the reset callback of this
 * controller. NULL is ignored (returns 0).
 * No other thread may use the controller during or after the call.
 */
int pnvme_ctrl_close(struct pnvme_ctrl *ctrl);

/* Getters: NULL controller -> NULL / 0 / false. */
/** Identify Controller data read at open. */
const struct pnvme_id_ctrl *pnvme_ctrl_id(const struct pnvme_ctrl *ctrl);
/** CAP register value read at open. */
uint64_t pnvme_ctrl_cap(const struct pnvme_ctrl *ctrl);
/** VS register value read at open. */
uint32_t pnvme_ctrl_vs(const struct pnvme_ctrl *ctrl);
/** I/O queue pairs granted by the controller (Set Features Number of Queues). */
uint16_t pnvme_ctrl_max_io_queues(const struct pnvme_ctrl *ctrl);
/** Largest transfer in bytes one command may carry (MDTS, capped at 2 MiB). */
uint32_t pnvme_ctrl_max_xfer(const struct pnvme_ctrl *ctrl);
/**
 * Reset the controller now (Base 2.0 §3.7.2: CC.EN 1 -> 0 -> 1), as the
 * timeout ladder does. Outstanding admin commands fail with -EIO; each I/O
 * queue pair re-creates its queues at its next poll. One reset runs at a
 * time: a request made while one runs is folded into it. If an admin command
 * of the reset fails (e.g. a lost completion), the whole reset is tried
 * again, three attempts in all; a controller that does not become ready
 * within CAP.TO is declared dead at once. Returns 0, or -ENODEV (the
 * controller is or was left dead), -EDEADLK from an admin completion
 * callback. Any thread; takes the admin lock.
 */
int pnvme_ctrl_reset(struct pnvme_ctrl *ctrl);
/** True if shadow doorbells are in use (PNVME_CTRL_SHADOW_DB asked and offered). */
bool pnvme_ctrl_shadow_db(const struct pnvme_ctrl *ctrl);
/** Controller resets performed so far. */
uint32_t pnvme_ctrl_resets(const struct pnvme_ctrl *ctrl);
/** True once the controller is gone (all-ones registers) or could not be reset. */
bool pnvme_ctrl_is_dead(const struct pnvme_ctrl *ctrl);

/** The emulator behind this controller, or NULL for a real device. */
struct pnvme_emu *pnvme_ctrl_emu(const struct pnvme_ctrl *ctrl);

/**
 * An active namespace, as identified at open and kept current by namespace
 * attribute notices (see pnvme_async_event). Read-only for applications.
 * Its address stays valid until pnvme_ctrl_close(): a namespace that
 * changes size is updated in place, one that goes away is marked `removed`
 * (and nlba 0) and drops out of the list, one that comes back (same NSID)
 * reuses its old object.
 * pnvme_format_nvm() rewrites it in place too (same address, new format).
 */
struct pnvme_ns {
	uint32_t nsid;
	uint32_t lba_size;      /* bytes per logical block */
	uint32_t lba_shift;     /* log2(lba_size) */
	/*
	 * Metadata (NVM Command Set 1.0c §5.2: Metadata Region, End-to-end
	 * Data Protection): `ms` bytes per block, either at the end of each
	 * block's data in the data buffer (extended LBA, FLBAS bit 4: md_ext 1)
	 * or in a separate buffer (md_ext 0: pnvme_read_md / pnvme_write_md).
	 */
	uint32_t ms;            /* metadata bytes per block, 0: none */
	uint8_t  md_ext;        /* 1: extended LBA (metadata inline with the data) */
	uint8_t  pi_type;       /* protection information type 0 (none), 1, 2, 3 (DPS) */
	uint8_t  pi_first;      /* PI in the first 8 bytes of the metadata (DPS bit 3) */
	uint8_t  removed;       /* 1: no longer active (detached / deleted): nlba 0, I/O -ENODEV */
	uint32_t block_bytes;   /* bytes per block in the data buffer: lba_size, + ms if md_ext */
	uint64_t nlba;          /* NSZE: size in logical blocks */
	uint64_t ncap;          /* NCAP */
	uint32_t max_xfer;      /* bytes per command (controller limit) */
	uint32_t max_lbas;      /* logical blocks per command (max_xfer / block_bytes) */
	const struct pnvme_ctrl *ctrl; /* the controller it belongs to (I/O calls check it) */
	uint32_t fast_lbas;     /* private: max_lbas, or 0 where metadata takes the slow path */
	struct pnvme_id_ns id;  /* Identify Namespace data */
};

/*
 * The namespace list changes only inside pnvme_ctrl_process_admin() (when a
 * namespace attribute notice arrives), on the thread polling the admin
 * queue, before the aer_cb runs. Other threads reading the list or a
 * namespace's fields meanwhile may see the old or the new values, or a
 * mix: an application that polls the admin queue on one thread and does
 * I/O on others synchronises them itself (e.g. from the aer_cb) when its
 * namespaces may change. Pointers stay valid either way.
 */
/** Number of active namespaces. */
uint32_t pnvme_ctrl_nr_ns(const struct pnvme_ctrl *ctrl);
/**
 * Namespace list generation: 0 at open, bumped each time a rescan adds,
 * removes or changes a namespace. Compare it to see whether to look again.
 */
uint32_t pnvme_ctrl_ns_generation(const struct pnvme_ctrl *ctrl);
/**
 * Asynchronous Event Requests the library has outstanding now (0 before
 * bring-up posted them, after a reset failed, or when the controller or
 * admin_depth allows none). For tests and tools.
 */
uint32_t pnvme_ctrl_aer_outstanding(const struct pnvme_ctrl *ctrl);
/** Namespace `nsid` if active, else NULL. */
const struct pnvme_ns *pnvme_ctrl_ns(const struct pnvme_ctrl *ctrl, uint32_t nsid);
/** The i-th active namespace (0-based, ascending NSID), else NULL. */
const struct pnvme_ns *pnvme_ctrl_ns_at(const struct pnvme_ctrl *ctrl, uint32_t i);

/* ------------------------------------------------------------------------ */
/* Admin commands                                                           */
/*                                                                          */
/* Sync calls take ordinary memory (the library bounces through DMA memory) */
/* and return 0 or a negative errno; on an NVMe error the errno is          */
/* pnvme_status_errno(status), `*status` (where offered) gets the full      */
/* status field and pnvme_last_error() its name. Async calls take DMA       */
/* memory, return 0 once queued (the doorbell is rung at once), and report  */
/* through the callback when pnvme_ctrl_process_admin() reaps them. A sync  */
/* call from inside an admin completion callback returns -EDEADLK.          */
/* ------------------------------------------------------------------------ */

/**
 * Submit a raw admin command, synchronously. The library fills CID and, when
 * len > 0, the data pointer (PRP1/PRP2; with len 0 they pass as given); `buf` (ordinary memory, may be NULL with len 0) is copied in
 * before and out after the command. `cqe` (may be NULL) receives the CQE.
 * Waits up to the admin timeout. Returns 0, the mapped errno of an NVMe error,
 * -ETIMEDOUT, -ENODEV, -EINVAL (len over the transfer limit), -ENOMEM.
 */
int pnvme_admin_passthru(struct pnvme_ctrl *ctrl, const struct pnvme_sqe *sqe, void *buf,
			 size_t len, struct pnvme_cqe *cqe);

/**
 * Submit a raw admin command asynchronously; `dma_buf` must be pnvme DMA
 * memory (or NULL with len 0). Returns 0, -EAGAIN (admin queue full),
 * -EINVAL (buffer not DMA memory / too long), -ENODEV.
 * If the callback reports -ETIMEDOUT, the controller may still write the
 * buffer until the reset that follows: free it only after reset_cb ran (or
 * after pnvme_ctrl_close()).
 */
int pnvme_admin_submit(struct pnvme_ctrl *ctrl, const struct pnvme_sqe *sqe, void *dma_buf,
		       size_t len, pnvme_cmd_cb cb, void *arg);

/** Reap admin completions, running their callbacks. Returns the count or a negative errno. */
int pnvme_ctrl_process_admin(struct pnvme_ctrl *ctrl);

/** Identify (CNS `cns`, namespace `nsid`) into `buf` (4096 bytes, ordinary memory). */
int pnvme_identify(struct pnvme_ctrl *ctrl, uint8_t cns, uint32_t nsid, void *buf);
int pnvme_identify_async(struct pnvme_ctrl *ctrl, uint8_t cns, uint32_t nsid, void *dma_buf,
			 pnvme_cmd_cb cb, void *arg);

/** Get Features: `*dw0` gets the result (may be NULL); `buf` optional data. */
int pnvme_get_features(struct pnvme_ctrl *ctrl, uint8_t fid, uint32_t nsid, uint32_t cdw11,
		       uint32_t *dw0);
int pnvme_get_features_async(struct pnvme_ctrl *ctrl, uint8_t fid, uint32_t nsid,
			     uint32_t cdw11, pnvme_cmd_cb cb, void *arg);
/** Set Features: `*dw0` gets the result (may be NULL). */
int pnvme_set_features(struct pnvme_ctrl *ctrl, uint8_t fid, uint32_t nsid, uint32_t cdw11,
		       uint32_t cdw12, uint32_t *dw0);
int pnvme_set_features_async(struct pnvme_ctrl *ctrl, uint8_t fid, uint32_t nsid,
			     uint32_t cdw11, uint32_t cdw12, pnvme_cmd_cb cb, void *arg);

/** Get Log Page `lid` for `nsid` (0xffffffff = controller) from byte `offset`. len % 4 == 0. */
int pnvme_get_log_page(struct pnvme_ctrl *ctrl, uint8_t lid, uint32_t nsid, uint64_t offset,
		       void *buf, size_t len);
int pnvme_get_log_page_async(struct pnvme_ctrl *ctrl, uint8_t lid, uint32_t nsid,
			     uint64_t offset, void *dma_buf, size_t len, pnvme_cmd_cb cb,
			     void *arg);
/** SMART / Health log (controller-wide). */
int pnvme_smart_log(struct pnvme_ctrl *ctrl, struct pnvme_smart_log *log);
/** Up to `n` Error Information log entries (newest first). */
int pnvme_error_log(struct pnvme_ctrl *ctrl, struct pnvme_error_log *entries, unsigned n);

/**
 * Firmware Slot Information log (Base 2.0 §5.16.1.4, LID 03h): the active
 * slot (AFI) and the revision in each slot (FRS1..7, ASCII, space padded,
 * all zeroes for an empty slot; FRMW says how many slots exist). Returns 0 or
 * the errors of pnvme_get_log_page(). Any thread.
 */
int pnvme_fw_log(struct pnvme_ctrl *ctrl, struct pnvme_fw_slot_log *log);

/** Options of pnvme_format_nvm(); all zero: format 0, separate metadata, no PI, no erase. */
struct pnvme_format_opts {
	uint8_t  lbaf;        /* LBA format index 0..63, at most the namespace's NLBAF */
	uint8_t  mset;        /* metadata settings: 1 extended LBAs, 0 a separate buffer */
	uint8_t  pi;          /* protection information type 0 (none), 1, 2, 3 */
	uint8_t  pil;         /* 1: PI in the first 8 bytes of the metadata, 0: the last */
	uint8_t  ses;         /* secure erase: PNVME_SES_NONE, _USER_DATA, _CRYPTO */
	uint8_t  rsvd5[3];    /* zero */
	uint32_t timeout_ms;  /* how long to wait; 0: 600 s (nvme-cli's), or the admin
	                         timeout if that is longer */
};

/**
 * Format NVM (NVMe Base 2.0 §5.23; NVM Command Set 1.0 §4.1): low-level
 * format namespace `nsid` (or every namespace: PNVME_NSID_ALL) with LBA
 * format `opts->lbaf` (formats 16..63 go in CDW10 LBAFU), metadata settings,
 * protection information and secure erase settings (`opts` NULL: all zero).
 * DESTRUCTIVE: the namespace's data is lost (with SES 1 or 2 it is erased).
 *
 * Waits for the command up to opts->timeout_ms; a timeout takes the admin
 * timeout path (Abort, controller reset). Then identifies the namespace
 * again - every namespace with PNVME_NSID_ALL or when the controller formats
 * them all together (FNA bit 0) - and updates its struct pnvme_ns IN PLACE:
 * pointers from pnvme_ctrl_ns() stay valid and show the new lba_size,
 * block_bytes, ms, md_ext, pi_type, nlba, max_lbas and id. Buffers sized
 * for the old format are the caller's to resize.
 *
 * I/O: the caller quiesces it. The call is refused (-EBUSY) while an I/O
 * queue pair of this controller has requests outstanding; a thread that
 * submits I/O during the call is the caller's bug (its commands may run
 * against either format, and read the namespace fields while they change).
 *
 * Returns 0, or -EINVAL (NULL controller, NSID 0 or not active, format index
 * beyond NLBAF, PI with less than 8 bytes of metadata, bad settings),
 * -EOPNOTSUPP (OACS bit 1 clear: no Format NVM; SES 2 without FNA
 * cryptographic erase; NSID FFFFFFFFh where FNA bit 3 forbids it), -EBUSY
 * (I/O outstanding; or the controller reports a sanitize or format in
 * progress), -ETIMEDOUT, -ENODEV, or the errno of an NVMe error (Invalid
 * Format: -EINVAL). If the new format cannot be driven by pnvme (-EPROTO),
 * the namespace is left with nlba 0 (all I/O refused). Any thread; do not
 * call it from a completion callback.
 */
int pnvme_format_nvm(struct pnvme_ctrl *ctrl, uint32_t nsid,
		     const struct pnvme_format_opts *opts);

/**
 * Start a sanitize operation (NVMe Base 2.0 §5.24; §8.21): `action` block
 * erase, crypto erase or overwrite of ALL user data in the NVM subsystem
 * (DESTRUCTIVE), or exit failure mode after a failed one. `flags` are CDW10
 * bits: PNVME_SANITIZE_AUSE, PNVME_SANITIZE_NDAS, and for overwrite
 * PNVME_SANITIZE_OIPBP and PNVME_SET(PNVME_SANITIZE_OWPASS, n); `ovrpat` is
 * the overwrite pattern (CDW11). Returns once the controller accepted the
 * command: the operation runs in the background; follow it with
 * pnvme_sanitize_log(). Until it completes, I/O and most admin commands fail
 * with Sanitize In Progress (-EBUSY).
 * Returns 0, -EINVAL (NULL, unknown action or flag bits, overwrite flags on
 * another action), -EOPNOTSUPP (SANICAP lacks the action - for exit failure
 * mode: lacks every action -, or NDAS asked where SANICAP.NDI inhibits it),
 * -EBUSY (one is in progress), -ETIMEDOUT, -ENODEV, or the errno of an NVMe
 * error. Any thread.
 */
int pnvme_sanitize(struct pnvme_ctrl *ctrl, enum pnvme_sanact action, uint32_t flags,
		   uint32_t ovrpat);

/**
 * Sanitize Status log (LID 81h): progress (SPROG / 65536 while SSTAT says in
 * progress), the status of the most recent operation and its CDW10, time
 * estimates. Returns 0, -EOPNOTSUPP (SANICAP reports no sanitize action: the
 * log does not exist), or the errors of pnvme_get_log_page(). Any thread.
 */
int pnvme_sanitize_log(struct pnvme_ctrl *ctrl, struct pnvme_sanitize_log *log);

/**
 * Abort command `cid` on submission queue `sqid` (Base 2.0 §5.1).
 * `*aborted` (may be NULL) is set true if the controller reports it aborted it.
 */
int pnvme_abort(struct pnvme_ctrl *ctrl, uint16_t sqid, uint16_t cid, bool *aborted);
int pnvme_abort_async(struct pnvme_ctrl *ctrl, uint16_t sqid, uint16_t cid, pnvme_cmd_cb cb,
		      void *arg);

/*
 * Queue creation and deletion. pnvme_qpair_create() uses these; they are
 * public for tools and tests that drive queues by hand. `qsize` is the number
 * of ring entries (not 0's based, and not a depth: a queue of depth N has
 * N + 1 entries); rings must be physically contiguous DMA memory.
 */
int pnvme_create_io_cq(struct pnvme_ctrl *ctrl, uint16_t qid, uint64_t iova, uint32_t qsize);
int pnvme_create_io_sq(struct pnvme_ctrl *ctrl, uint16_t qid, uint16_t cqid, uint64_t iova,
		       uint32_t qsize);
int pnvme_delete_io_cq(struct pnvme_ctrl *ctrl, uint16_t qid);
int pnvme_delete_io_sq(struct pnvme_ctrl *ctrl, uint16_t qid);
int pnvme_create_io_cq_async(struct pnvme_ctrl *ctrl, uint16_t qid, uint64_t iova,
			     uint32_t qsize, pnvme_cmd_cb cb, void *arg);
int pnvme_create_io_sq_async(struct pnvme_ctrl *ctrl, uint16_t qid, uint16_t cqid,
			     uint64_t iova, uint32_t qsize, pnvme_cmd_cb cb, void *arg);
int pnvme_delete_io_cq_async(struct pnvme_ctrl *ctrl, uint16_t qid, pnvme_cmd_cb cb,
			     void *arg);
int pnvme_delete_io_sq_async(struct pnvme_ctrl *ctrl, uint16_t qid, pnvme_cmd_cb cb,
			     void *arg);

PNVME_END_DECLS
#endif /* PNVME_CTRL_H */
