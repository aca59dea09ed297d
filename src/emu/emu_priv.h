/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * emu_priv.h - the emulated controller's private state, shared by its files.
 *
 * The controller object (struct pnvme_emu), its queues, namespaces, IOVA
 * mappings, fault slots and the request being executed; the status values it
 * completes with; the tiny inline accessors of the register and doorbell page
 * and of the IOVA table (xlate()); and the functions one part of the
 * emulator calls in another. None of these is exported (the library is
 * built with hidden visibility); the public API is in <pnvme/emu.h>.
 */
#ifndef PNVME_EMU_PRIV_H
#define PNVME_EMU_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pnvme/emu.h>

#include "emu_pi.h"
#include "internal.h"

#define EMU_NN            32u   /* Identify NN: NSIDs 1..ns are active */
#define EMU_MAX_FAULTS    16u
#define EMU_ERRLOG_LEN    64u   /* Error Information log entries (ELPE + 1) */
#define EMU_AERL          3u    /* 0's based: 4 outstanding AERs */
#define EMU_ACL           3u
#define EMU_AEN_PENDING   8u    /* events waiting for an Asynchronous Event Request */
#define EMU_MAX_ABORTS    16u   /* aborts recorded against unfetched commands */
#define EMU_BAD_FLBAS     3u    /* ID_FLBAS_RANGE: format index reported */
#define EMU_TEMP_K        300u
#define EMU_WCTEMP_K      343u
#define EMU_CCTEMP_K      373u
#define EMU_FW_REV        "0.1.0"  /* Identify FR, firmware slot 1 */

#define EMU_EI_PASSES     4u     /* SQ re-reads after an EventIdx update, per step */
#define EMU_SGL_MAX_DESC  4096u  /* SGL descriptors one command may use (any chain) */
#define PAGE_MASK_        ((uint64_t)PNVME_PAGE_SIZE - 1)

/* Status values as PNVME_STATUS (DNR | SCT << 8 | SC) */
#define ST_DNR(sct, sc)   ((uint16_t)(PNVME_STATUS(sct, sc) | PNVME_STATUS_DNR))
#define ST_INVALID_OPC    ST_DNR(PNVME_SCT_GENERIC, PNVME_SC_INVALID_OPCODE)
#define ST_INVALID_FIELD  ST_DNR(PNVME_SCT_GENERIC, PNVME_SC_INVALID_FIELD)
#define ST_XFER_ERROR     ST_DNR(PNVME_SCT_GENERIC, PNVME_SC_DATA_XFER_ERROR)
#define ST_ABORT_REQ      PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_ABORT_REQ)
#define ST_ABORT_SQ_DEL   PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_ABORT_SQ_DELETED)
#define ST_INVALID_NS     ST_DNR(PNVME_SCT_GENERIC, PNVME_SC_INVALID_NS)
#define ST_CMD_SEQ        ST_DNR(PNVME_SCT_GENERIC, PNVME_SC_CMD_SEQ_ERROR)
#define ST_PRP_OFFSET     ST_DNR(PNVME_SCT_GENERIC, PNVME_SC_PRP_INVALID_OFFSET)
#define ST_LBA_RANGE      ST_DNR(PNVME_SCT_GENERIC, PNVME_SC_LBA_RANGE)
#define ST_CQ_INVALID     ST_DNR(PNVME_SCT_CMD, PNVME_SC_CQ_INVALID)
#define ST_QID_INVALID    ST_DNR(PNVME_SCT_CMD, PNVME_SC_QID_INVALID)
#define ST_QUEUE_SIZE     ST_DNR(PNVME_SCT_CMD, PNVME_SC_QUEUE_SIZE)
#define ST_AER_LIMIT      ST_DNR(PNVME_SCT_CMD, PNVME_SC_AER_LIMIT)
#define ST_IV_INVALID     ST_DNR(PNVME_SCT_CMD, PNVME_SC_IV_INVALID)
#define ST_LOG_INVALID    ST_DNR(PNVME_SCT_CMD, PNVME_SC_LOG_PAGE_INVALID)
#define ST_QDEL_INVALID   ST_DNR(PNVME_SCT_CMD, PNVME_SC_QUEUE_DELETION_INVALID)
#define ST_NOT_SAVEABLE   ST_DNR(PNVME_SCT_CMD, PNVME_SC_FEATURE_NOT_SAVEABLE)
#define ST_INVALID_PI     ST_DNR(PNVME_SCT_CMD, PNVME_SC_INVALID_PI)
#define ST_PI_ERROR(sc)   ST_DNR(PNVME_SCT_MEDIA, sc)   /* guard / apptag / reftag check */
#define ST_INVALID_FORMAT ST_DNR(PNVME_SCT_CMD, PNVME_SC_FORMAT_INVALID)
#define ST_SANITIZING     ST_DNR(PNVME_SCT_GENERIC, PNVME_SC_SANITIZE_IN_PROGRESS)
#define ST_INTERNAL       PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INTERNAL)
#define ST_CMB_INVALID    ST_DNR(PNVME_SCT_GENERIC, PNVME_SC_CMB_INVALID_USE)
/* SGL errors (Base 2.0 §4.1.2; generic command status, §4.2.3.2 Figure 94) */
#define ST_SGL_SEG        ST_DNR(PNVME_SCT_GENERIC, PNVME_SC_SGL_INVALID_LAST)
#define ST_SGL_COUNT      ST_DNR(PNVME_SCT_GENERIC, PNVME_SC_SGL_INVALID_COUNT)
#define ST_SGL_DATA_LEN   ST_DNR(PNVME_SCT_GENERIC, PNVME_SC_SGL_INVALID_DATA)
#define ST_SGL_TYPE       ST_DNR(PNVME_SCT_GENERIC, PNVME_SC_SGL_INVALID_TYPE)
#define ST_SGL_GRAN       ST_DNR(PNVME_SCT_GENERIC, PNVME_SC_SGL_INVALID_GRANULARITY)

/* How a fault mangles a completion when it is written (enum emu_cpl_fx bits). */
enum emu_cpl_fx {
	FX_BAD_CID   = 1u << 0,   /* CID 0xfffe */
	FX_DUP       = 1u << 1,   /* post the entry twice */
	FX_BAD_SQHD  = 1u << 2,   /* SQHD = SQ size + 5 */
	FX_SQHD_BACK = 1u << 3,   /* SQHD one entry behind the last reported */
};

#define EMU_BAD_CID 0xfffeu

/* A completion that is not (yet) in a CQ ring. `status` has no phase bit. */
struct emu_cpl {
	uint32_t dw0;
	uint32_t dw1;
	uint16_t sqid;
	uint16_t cid;
	uint16_t status;
	uint16_t sqhd;   /* used only when the SQ is gone by posting time */
	uint16_t cqid;
	uint16_t fx;     /* enum emu_cpl_fx */
};

struct emu_delayed {
	uint64_t deadline_ns;
	struct emu_cpl cpl;
};

struct emu_sq {
	const struct pnvme_sqe *ring;   /* NULL: no queue, or its memory was unmapped */
	uint32_t size;
	uint32_t head;                  /* next entry to fetch */
	uint32_t tail;                  /* last valid tail doorbell */
	uint32_t db;                    /* last raw doorbell value seen */
	uint16_t qid;
	uint16_t cqid;
	bool valid;
	bool sdb_used;                  /* the host has written the shadow entry */
	uint32_t sdb;                   /* last raw shadow doorbell value seen */
	uint32_t ei;                    /* last EventIdx written */
	uint32_t *sdb_p;                /* shadow tail doorbell in host memory, NULL: none */
	uint32_t *ei_p;                 /* its EventIdx entry */
	/* cold */
	bool in_cmb;                    /* ring in the CMB (not in the IOVA table) */
	uint16_t last_sqhd;             /* SQHD of the last CQE posted for this SQ */
	uint64_t iova;
};

struct emu_cq {
	volatile struct pnvme_cqe *ring;
	uint32_t size;
	uint32_t tail;                  /* next slot the controller writes */
	uint32_t head;                  /* last valid head doorbell */
	uint32_t db;
	uint32_t ovf_len;               /* completions waiting for room */
	uint16_t phase;
	uint16_t qid;
	bool valid;
	bool sdb_used;                  /* the host has written the shadow entry */
	uint32_t sdb;                   /* last raw shadow doorbell value seen */
	uint32_t ei;                    /* last EventIdx written */
	uint32_t *sdb_p;                /* shadow head doorbell in host memory, NULL: none */
	uint32_t *ei_p;                 /* its EventIdx entry */
	uint16_t iv;                    /* its MSI-X vector (with ien) */
	bool ien;                       /* interrupts enabled (Create I/O CQ IEN) */
	bool irq_pending;               /* posted since the last interrupt */
	/* cold */
	uint32_t nr_sqs;
	uint32_t ovf_head;
	uint32_t ovf_cap;
	struct emu_cpl *ovf;
	uint64_t iova;
};

struct emu_ns {
	uint8_t *media;
	uint64_t nlba;
	uint64_t bytes;
	uint8_t *meta;          /* ms bytes per LBA (NULL: ms = 0); PI tuples stored inverted */
	uint64_t meta_bytes;
	bool inactive;          /* removed (pnvme_emu_ns_remove): Invalid Namespace */
};

struct emu_map {
	uint64_t iova;
	uint64_t len;
	uint8_t *va;
};

struct emu_fault_slot {
	struct pnvme_emu_fault f;
	uint32_t seen;
	uint32_t hits;
	bool armed;
};

struct emu_req {
	struct pnvme_sqe cmd;
	struct emu_sq *sq;
	struct emu_ns *ns;
	uint16_t (*execute)(struct pnvme_emu *emu, struct emu_req *req);
	uint32_t dw0;
	uint32_t dw1;
	uint64_t err_lba;
	uint64_t delay_us;
	bool hold;            /* no completion now (AER) */
	bool drop;            /* fault: no completion at all */
	bool delay;           /* fault: complete after delay_us */
	bool ignore_abort;    /* fault: this Abort reports "not aborted" */
	uint16_t fx;          /* fault: enum emu_cpl_fx for its completion */
};

struct pnvme_emu {
	/* hot: touched for every command */
	bool irq_pending;                   /* some CQ has irq_pending */
	volatile uint8_t *bar;
	struct emu_sq *sqs;                 /* [0..nq], 0 = admin */
	struct emu_cq *cqs;
	const struct emu_map *hit;          /* last translation hit */
	struct emu_map *maps;               /* sorted by iova */
	size_t nr_maps;
	struct emu_ns *ns;
	uint32_t lba_shift;
	uint32_t ms;                        /* metadata bytes per LBA (0: none) */
	uint32_t hi_qid;                    /* highest qid that may be valid */
	uint32_t nr_cmd_faults;             /* armed faults that match commands */
	uint32_t nr_aborts;
	uint32_t nr_delayed;
	bool reordering;                    /* collect this step's completions */
	bool running;                       /* enabled, ready, no CFS, not shut down */
	bool san_busy;                      /* a sanitize operation is in progress */
	uint64_t max_xfer;
	uint32_t step_posted;
	uint32_t dstrd;
	struct pnvme_emu_stats st;
	uint64_t host_reads;
	uint64_t host_writes;
	uint64_t sectors_read;              /* 512-byte units */
	uint64_t sectors_written;
	/* ---- cold below ---- */
	pthread_mutex_t lock;
	int waiters;                        /* other threads wanting the lock */
	size_t maps_cap;
	size_t bar_len;
	struct pnvme_emu_config cfg;
	/* MSI-X (NVMe 1.4 §7.5.2; the CQ's IV from Create I/O CQ, Base 2.0
	 * §5.4): vector -> eventfd (-1: none; set from any thread, atomically),
	 * vectors 0..nr_io_queues, as many as I/O queues plus the admin one */
	int *irq_fd;
	struct emu_pi_fmt pif;              /* protection format (cfg.pi != 0) */
	uint32_t cc;                        /* CC as last seen */
	uint32_t csts;                      /* CSTS as the controller sets it */
	bool enabled;
	bool ready;
	bool cfs;
	bool shut;
	bool gone;                          /* all-ones state */
	bool cap_dirty;                     /* CAP must be rewritten (MQES_ZERO armed/cleared) */
	bool io_queues_created;
	/* Doorbell Buffer Config (Base 2.0 §5.8): off until configured, off again at reset */
	bool dbbuf_on;
	uint32_t *dbbuf;                    /* shadow doorbell page (host memory) */
	uint32_t *eventidx;                 /* EventIdx page (host memory) */
	uint64_t dbbuf_iova;
	uint64_t eventidx_iova;
	/* Controller Memory Buffer (cfg.cmb, Base 2.0 §3.1.4.11-§3.1.4.14) */
	uint8_t *cmb;                       /* BAR2 memory, NULL: no CMB */
	size_t cmb_len;
	uint64_t cmbmsc;                    /* CMBMSC as last seen */
	uint64_t cmb_cba;                   /* controller memory space base (cmse) */
	bool cmse;                          /* the space is enabled at cmb_cba */
	struct emu_fault_slot faults[EMU_MAX_FAULTS];
	struct emu_delayed *delayed;
	uint32_t delayed_cap;
	struct emu_cpl *rstack;             /* REORDER: this step's completions */
	uint32_t rstack_len;
	uint32_t rstack_cap;
	struct { uint16_t sqid, cid; } aborts[EMU_MAX_ABORTS];
	uint8_t *id_override[3];            /* CNS 0, 1, 2 data replacing ours (fuzzing) */
	uint16_t aer_cid[EMU_AERL + 1];
	uint32_t nr_aer;
	/* asynchronous events (emu_aen.c, Base 2.0 §5.2) */
	uint32_t aen_pending[EMU_AEN_PENDING]; /* DW0 of events not yet reported */
	uint32_t nr_aen;
	uint8_t aen_masked;                 /* event types reported, log page not read yet */
	uint8_t crit_warn;                  /* SMART critical warning bits */
	uint64_t changed_ns;                /* Changed Namespace List: bit nsid - 1 */
	uint64_t aen_at_ns;                 /* cfg.aen_ms: when the scripted event fires, 0 none */
	bool aen_armed;                     /* cfg.aen_ms: timer started once already */
	/* features (Base 2.0 §5.27.1) */
	uint32_t feat_arb;
	uint32_t feat_pm;
	uint32_t feat_temp_over;
	uint32_t feat_temp_under;
	uint32_t feat_err_rec;
	uint32_t feat_vwc;
	uint32_t feat_nq;                   /* NSQA | NCQA << 16, 0's based */
	uint32_t feat_irq_coal;
	uint32_t feat_aec;
	/* LBA formats (Identify Namespace LBAF0..NLBAF) and the one in use */
	uint32_t lbaf[64];
	uint32_t nlbaf;                     /* 0's based */
	uint32_t fmt_idx;
	/* sanitize (Base 2.0 §5.24): the Sanitize Status log's state */
	uint16_t san_sstat;
	uint16_t san_sprog;
	uint32_t san_cdw10;
	uint32_t san_ovrpat;
	uint32_t san_left;                  /* admin commands until it completes */
	/* logs */
	struct pnvme_error_log errlog[EMU_ERRLOG_LEN];
	uint64_t error_count;
	uint64_t unsafe_shutdowns;
	uint64_t bad_doorbells;
	uint64_t created_ns;
	/* media */
	void *file_map;
	size_t file_len;
	uint64_t meta_cap;                  /* file=: metadata area per namespace, bytes */
	int fd;
	/* thread */
	pthread_t thread;
	bool thread_started;
	int stop;
	_Alignas(64) uint8_t scratch[2 * PNVME_PAGE_SIZE];
};

/*
 * A walk over a command's data pointer (emu_dma.c): its PRP entries, or with
 * PSDT 01b its SGL (stage PRP_SGL, emu_sgl.c). Either way it hands out one
 * contiguous host segment at a time.
 */
enum { PRP_FIRST, PRP_SECOND, PRP_LIST, PRP_SGL };

struct prp_iter {
	uint64_t prp1;          /* SGL: SGL Descriptor 1, bytes 7:0 (address) */
	uint64_t next;          /* PRP2, then the next list pointer; SGL: bytes 15:8 */
	uint64_t left;          /* bytes not yet handed out */
	const uint64_t *list;   /* current list page */
	uint32_t nlist;         /* entries left in it */
	int stage;
	/* SGL walk (stage PRP_SGL) */
	const uint8_t *seg;     /* the current segment's descriptors not yet read */
	uint32_t nseg;          /* how many */
	uint32_t budget;        /* descriptors it may still read (EMU_SGL_MAX_DESC) */
	bool d1_read;           /* SGL Descriptor 1 (in the SQE) taken */
	bool in_last;           /* the current segment is a Last Segment */
	bool c2h;               /* data moves to the host: Bit Bucket descriptors allowed */
	bool excess;            /* a descriptor ran past the transfer length */
};

/* ------------------------------------------------------------------------ */
/* Functions shared between the files of the emulator                       */
/* ------------------------------------------------------------------------ */

/* emu.c: life cycle, locking */
void emu_lock(struct pnvme_emu *emu);
void emu_unlock(struct pnvme_emu *emu);

/* emu_regs.c: registers and controller state */
void emu_csts_update(struct pnvme_emu *emu);
void emu_bar_fill(struct pnvme_emu *emu, uint32_t v);
uint32_t emu_mqes_now(const struct pnvme_emu *emu);
void emu_cap_write(struct pnvme_emu *emu);
void emu_regs_init(struct pnvme_emu *emu);
bool emu_cc_process(struct pnvme_emu *emu);
void emu_gone_process(struct pnvme_emu *emu);
/** Act on a CMBMSC the host changed (CRE, CMSE, CBA). */
void emu_cmb_process(struct pnvme_emu *emu);
/**
 * The CMB memory of [addr, addr + len) when the controller memory space is
 * enabled and addr lies in it; *straddles set when it runs past the CMB's
 * end. NULL when addr is not a CMB address.
 */
uint8_t *emu_cmb_addr(struct pnvme_emu *emu, uint64_t addr, uint64_t len, bool *straddles);

/* emu_dma.c: IOVA table and PRP walking */
const struct emu_map *emu_map_find(const struct pnvme_emu *emu, uint64_t iova);
void emu_prp_init(struct prp_iter *it, const struct pnvme_sqe *cmd, uint64_t len);
uint16_t emu_prp_next(struct pnvme_emu *emu, struct prp_iter *it, uint8_t **va, size_t *n);
uint16_t emu_prp_to_host(struct pnvme_emu *emu, struct emu_req *req, const void *src,
			 uint64_t avail, uint64_t len);
uint16_t emu_prp_from_host(struct pnvme_emu *emu, struct emu_req *req, void *dst, uint64_t len);

/* emu_sgl.c: SGL walking (Base 2.0 §4.1.2), behind emu_prp_next() */
/** The next contiguous segment of an SGL walk; *va NULL for a Bit Bucket. */
uint16_t emu_sgl_next(struct pnvme_emu *emu, struct prp_iter *it, uint8_t **va, size_t *n);
/**
 * Walk a command's whole SGL once before any data moves: descriptor types,
 * chain rules, granularity, every address in the IOVA table, and a length
 * of exactly `len` bytes. 0 or the status the command completes with.
 */
uint16_t emu_sgl_check(struct pnvme_emu *emu, const struct pnvme_sqe *cmd, uint64_t len);

/* emu_queues.c: queues, command fetch, completion posting */
void emu_cpl_post(struct pnvme_emu *emu, const struct emu_cpl *c);
uint64_t emu_now_ns(void);
void emu_delayed_remove(struct pnvme_emu *emu, uint32_t i);
void emu_delayed_run(struct pnvme_emu *emu);
void emu_cpl_now(struct pnvme_emu *emu, struct emu_sq *sq, uint16_t cid, uint16_t status);
void emu_sq_shadow_attach(struct pnvme_emu *emu, struct emu_sq *sq, bool sync);
void emu_cq_shadow_attach(struct pnvme_emu *emu, struct emu_cq *cq, bool sync);
void emu_dbbuf_off(struct pnvme_emu *emu);
void emu_sq_destroy(struct pnvme_emu *emu, struct emu_sq *sq);
void emu_cq_destroy(struct emu_cq *cq);
/* Signal the vectors of CQs that got entries since the last call. */
void emu_irq_fire(struct pnvme_emu *emu);
/* Attach eventfd `fd` to MSI-X vector `vector` (-1 detaches). 0 / -errno. */
int emu_irq_set(struct pnvme_emu *emu, unsigned vector, int fd);
void emu_hi_qid_update(struct pnvme_emu *emu);
void emu_queues_reset(struct pnvme_emu *emu);
void emu_sq_process(struct pnvme_emu *emu, struct emu_sq *sq);
bool emu_cq_process(struct pnvme_emu *emu, struct emu_cq *cq);

/* emu_fault.c: fault injection */
bool emu_fault_armed(const struct pnvme_emu *emu, enum pnvme_emu_fault_kind k);
uint16_t emu_fault_match(struct pnvme_emu *emu, struct emu_req *req);

/* emu_nvm.c: NVM command set and media */
void emu_media_sync(struct pnvme_emu *emu, struct emu_ns *ns);
uint16_t emu_parse_io(struct pnvme_emu *emu, struct emu_req *req);
int emu_media_open(struct pnvme_emu *emu);
/** Format NVM: every namespace to LBA format `idx` (checked by the caller); a status. */
uint16_t emu_media_format(struct pnvme_emu *emu, uint32_t idx, bool mset, uint32_t pi,
			  bool pil, uint32_t ses);
/** Sanitize's media effect (action `sanact`, CDW10 / CDW11 of the command). */
void emu_media_sanitize(struct pnvme_emu *emu, uint32_t cdw10, uint32_t ovrpat);

/* emu_aen.c: asynchronous events */
/** An Asynchronous Event Request arrived: true (and *dw0) if an event was waiting. */
bool emu_aen_take(struct pnvme_emu *emu, uint32_t *dw0);
/** Get Log Page `lid` was read with RAE clear: clear what it reports, re-arm its event. */
void emu_aen_log_read(struct pnvme_emu *emu, uint32_t lid);
/** Set Features Asynchronous Event Configuration changed: start cfg.aen_ms's timer. */
void emu_aen_configured(struct pnvme_emu *emu);
/** The scripted event of cfg.aen_ms, when due (from each step while running). */
void emu_aen_timer(struct pnvme_emu *emu);
/** Changed Namespace List (log 04h) into `list` (4096 bytes, zeroed). */
void emu_aen_changed_list(const struct pnvme_emu *emu, uint32_t *list);
/** Active namespace: NSID in 1..ns and not removed. */
static inline bool emu_ns_active(const struct pnvme_emu *emu, uint32_t nsid)
{
	return nsid >= 1 && nsid <= emu->cfg.nr_ns && !emu->ns[nsid - 1].inactive;
}

/* emu_admin.c: admin command set */
void emu_features_default(struct pnvme_emu *emu);
/** Build the LBA format list (cfg.lbafs entries, the configured one first). */
void emu_formats_init(struct pnvme_emu *emu);
uint16_t emu_parse_admin(struct pnvme_emu *emu, struct emu_req *req);

/* ------------------------------------------------------------------------ */
/* Register access (the controller's side of BAR0)                          */
/* ------------------------------------------------------------------------ */

static inline uint32_t reg_read(const struct pnvme_emu *emu, size_t off)
{
	return mmio_read32(emu->bar, off);
}

static inline void reg_write(struct pnvme_emu *emu, size_t off, uint32_t v)
{
	mmio_write32(emu->bar, off, v);
}

/* Doorbells are read with acquire semantics (mmio_read32): the SQEs the host
 * wrote before ringing (a release store) are visible once the new tail is. */
static inline uint32_t db_read(const struct pnvme_emu *emu, size_t off)
{
	return mmio_read32(emu->bar, off);
}

/*
 * The host stores a shadow doorbell after the SQEs it announces (its write
 * barrier) and before it reads our EventIdx (a full barrier): load it with
 * acquire semantics, like the doorbell register.
 */
static inline uint32_t shadow_load(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/*
 * The doorbell registers belong to the host: the controller only reads them,
 * and sees a write as a value different from the one it saw last (sq->db,
 * cq->db, its own copy). A new queue (Create I/O Queue, or the admin queue
 * at enable) starts from the value the register holds then, whatever an
 * earlier queue with this id left there; so a host whose first write could
 * repeat that value zeroes the register before creating the queue (the
 * library does, for this transport: struct pnvme_backend.db_polled).
 */
static inline uint32_t sq_db_now(const struct pnvme_emu *emu, uint32_t qid)
{
	return db_read(emu, PNVME_SQ_TDBL(qid, emu->dstrd));
}

static inline uint32_t cq_db_now(const struct pnvme_emu *emu, uint32_t qid)
{
	return db_read(emu, PNVME_CQ_HDBL(qid, emu->dstrd));
}

/* Host address of [iova, iova + len), which must lie in one mapping; NULL on a miss. */
static inline uint8_t *xlate(struct pnvme_emu *emu, uint64_t iova, uint64_t len)
{
	const struct emu_map *m = emu->hit;

	if (likely(m != NULL) && iova - m->iova < m->len && len <= m->len - (iova - m->iova))
		return m->va + (iova - m->iova);
	m = emu_map_find(emu, iova);
	if (m != NULL && len <= m->len - (iova - m->iova)) {
		emu->hit = m;
		return m->va + (iova - m->iova);
	}
	emu->st.dma_errors++;
	return NULL;
}

#endif /* PNVME_EMU_PRIV_H */
