/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * emu.c - the emulated NVMe controller ("mock BAR").
 *
 * Registers are plain memory with the BAR0 layout of NVMe Base 2.0 §3.1.4.
 * The host writes them with ordinary stores; each pnvme_emu_step() compares
 * CC and every doorbell with the value it saw last and acts on the change.
 *
 * Command flow, in the manner of Linux's nvmet target:
 *   sq_fetch()   copy the SQE at the SQ head, advance the head
 *   req_init()   common checks, then parse_admin() / parse_io(): validate the
 *                fields of one command set and pick an execute function
 *   execute      move the data (through the IOVA table only) and set DW0
 *   req_finish() error log, fault treatment, then post the CQE, hold it
 *                (delay fault), or queue it while the CQ is full
 *
 * Host memory is reached only through the IOVA table (pnvme_emu_map): a
 * sorted array with a last-hit cache. A miss is a Data Transfer Error.
 * Queue rings and the DBBUF pages are translated once, for their whole
 * length, when they are set up; pnvme_emu_unmap() drops those translations
 * (rings_unmapped()), and every user checks for NULL: a queue whose memory
 * is gone is never read or written again. Whatever the host writes into the
 * rings, registers or buffers, every length is checked against its mapping.
 *
 * Shadow doorbells (Doorbell Buffer Config, Base 2.0 §5.8): once configured,
 * every I/O queue also publishes its SQ tail / CQ head in a host memory page,
 * and the controller writes back an EventIdx per queue: the SQ entry it has
 * consumed up to, the CQ head it has seen. The host writes the MMIO doorbell
 * only when its new value moves past that EventIdx. Both sources are read on
 * every step, and whichever moved since it was last seen is taken, until the
 * host first writes the shadow entry: from then on the shadow entry is the
 * authority (the host stores it before the register, so a register write can
 * carry a value older than one already consumed). The admin queue stays
 * MMIO-only, as the Linux and pnvme hosts use it.
 *
 * Locking: one mutex serialises step against map/unmap/inject/stats. In
 * thread mode the emulator thread holds it for one step at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <pnvme/emu.h>

#include "emu_pi.h"
#include "internal.h"

#define EMU_NN            32u   /* Identify NN: NSIDs 1..ns are active */
#define EMU_MAX_FAULTS    16u
#define EMU_ERRLOG_LEN    64u   /* Error Information log entries (ELPE + 1) */
#define EMU_AERL          3u    /* 0's based: 4 outstanding AERs */
#define EMU_ACL           3u
#define EMU_MAX_ABORTS    16u   /* aborts recorded against unfetched commands */
#define EMU_BAD_FLBAS     3u    /* ID_FLBAS_RANGE: format index reported */
#define EMU_TEMP_K        300u
#define EMU_WCTEMP_K      343u
#define EMU_CCTEMP_K      373u
#define EMU_SPIN_ITERS    4096u  /* idle steps spent spinning ... */
#define EMU_YIELD_ITERS   512u   /* ... then yielding the CPU ... */
#define EMU_SLEEP_MIN_NS  1000ull
#define EMU_SLEEP_MAX_NS  1000000ull
#define EMU_EI_PASSES     4u     /* SQ re-reads after an EventIdx update, per step */
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
	/* logs */
	struct pnvme_error_log errlog[EMU_ERRLOG_LEN];
	uint64_t error_count;
	uint64_t unsafe_shutdowns;
	uint64_t bad_doorbells;
	uint64_t created_ns;
	/* media */
	void *file_map;
	size_t file_len;
	int fd;
	/* thread */
	pthread_t thread;
	bool thread_started;
	int stop;
	_Alignas(64) uint8_t scratch[2 * PNVME_PAGE_SIZE];
};

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

static void csts_update(struct pnvme_emu *emu)
{
	uint32_t v = emu->csts & ~(PNVME_CSTS_RDY_MASK | (PNVME_CSTS_CFS_MASK << PNVME_CSTS_CFS_SHIFT));
	if (emu->ready)
		v |= PNVME_SET(PNVME_CSTS_RDY, 1u);
	if (emu->cfs)
		v |= PNVME_SET(PNVME_CSTS_CFS, 1u);
	emu->csts = v;
	emu->running = emu->ready && !emu->cfs && !emu->shut && !emu->gone;
	reg_write(emu, PNVME_REG_CSTS, v);
}

/*
 * Every 32-bit word of BAR0 set to `v` (reset values, surprise removal): word
 * by word with atomic stores, since the host may be reading any register.
 */
static void bar_fill(struct pnvme_emu *emu, uint32_t v)
{
	for (size_t off = 0; off + 4 <= emu->bar_len; off += 4)
		__atomic_store_n((volatile uint32_t *)(emu->bar + off), v, __ATOMIC_RELAXED);
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

static bool fault_armed(const struct pnvme_emu *emu, enum pnvme_emu_fault_kind k);

/* CAP.MQES as advertised: the configured value, or 0 while MQES_ZERO is armed.
 * Create I/O Queue enforces the advertised value. */
static uint32_t mqes_now(const struct pnvme_emu *emu)
{
	return fault_armed(emu, PNVME_EMU_FAULT_MQES_ZERO) ? 0u : emu->cfg.mqes;
}

/* Base 2.0 §3.1.4.1: Controller Capabilities. */
static void cap_write(struct pnvme_emu *emu)
{
	const struct pnvme_emu_config *c = &emu->cfg;
	uint64_t cap = PNVME_SET(PNVME_CAP_MQES, (uint64_t)mqes_now(emu)) |
		       PNVME_SET(PNVME_CAP_CQR, 1ull) |
		       PNVME_SET(PNVME_CAP_TO, (uint64_t)c->to) |
		       PNVME_SET(PNVME_CAP_DSTRD, (uint64_t)c->dstrd) |
		       PNVME_SET(PNVME_CAP_CSS, (uint64_t)PNVME_CAP_CSS_NVM) |
		       PNVME_SET(PNVME_CAP_MPSMIN, 0ull) | PNVME_SET(PNVME_CAP_MPSMAX, 0ull);

	mmio_write64(emu->bar, PNVME_REG_CAP, cap);
	emu->cap_dirty = false;
}

/* Base 2.0 §3.1.4: the reset values of the properties this controller has. */
static void regs_init(struct pnvme_emu *emu)
{
	bar_fill(emu, 0);
	cap_write(emu);
	reg_write(emu, PNVME_REG_VS, PNVME_VS(2, 0, 0));
	emu->cc = 0;
	emu->csts = 0;
}

/* ------------------------------------------------------------------------ */
/* IOVA table                                                               */
/* ------------------------------------------------------------------------ */

/* The mapping containing `iova`, or NULL. */
static const struct emu_map *map_find(const struct pnvme_emu *emu, uint64_t iova)
{
	size_t lo = 0, hi = emu->nr_maps;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (emu->maps[mid].iova <= iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct emu_map *m = &emu->maps[lo - 1];
	return iova - m->iova < m->len ? m : NULL;
}

/* Host address of [iova, iova + len), which must lie in one mapping; NULL on a miss. */
static inline uint8_t *xlate(struct pnvme_emu *emu, uint64_t iova, uint64_t len)
{
	const struct emu_map *m = emu->hit;

	if (likely(m != NULL) && iova - m->iova < m->len && len <= m->len - (iova - m->iova))
		return m->va + (iova - m->iova);
	m = map_find(emu, iova);
	if (m != NULL && len <= m->len - (iova - m->iova)) {
		emu->hit = m;
		return m->va + (iova - m->iova);
	}
	emu->st.dma_errors++;
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* PRP walking (Base 2.0 §4.1.1: Physical Region Page entries and lists)    */
/* ------------------------------------------------------------------------ */

enum { PRP_FIRST, PRP_SECOND, PRP_LIST };

struct prp_iter {
	uint64_t prp1;
	uint64_t next;          /* PRP2, then the next list pointer */
	uint64_t left;          /* bytes not yet handed out */
	const uint64_t *list;   /* current list page */
	uint32_t nlist;         /* entries left in it */
	int stage;
};

static void prp_init(struct prp_iter *it, const struct pnvme_sqe *cmd, uint64_t len)
{
	it->prp1 = cmd->prp1;
	it->next = cmd->prp2;
	it->left = len;
	it->list = NULL;
	it->nlist = 0;
	it->stage = PRP_FIRST;
}

/* A PRP list pointer may carry a qword-aligned offset; the list runs to the page end. */
static uint16_t prp_load_list(struct pnvme_emu *emu, struct prp_iter *it, uint64_t ptr)
{
	if (ptr & 7u)
		return ST_PRP_OFFSET;
	it->nlist = (uint32_t)((PNVME_PAGE_SIZE - (ptr & PAGE_MASK_)) / 8u);
	it->list = (const uint64_t *)xlate(emu, ptr, (uint64_t)it->nlist * 8u);
	return it->list != NULL ? 0 : ST_XFER_ERROR;
}

/* The next contiguous host segment of the transfer: 0 or an NVMe status. */
static uint16_t prp_next(struct pnvme_emu *emu, struct prp_iter *it, uint8_t **va, size_t *n)
{
	uint64_t addr, len;
	uint16_t st;

	switch (it->stage) {
	case PRP_FIRST:
		/* PRP1 may have a (dword aligned) offset into its page */
		addr = it->prp1;
		if (addr & 3u)
			return ST_PRP_OFFSET;
		len = PNVME_PAGE_SIZE - (addr & PAGE_MASK_);
		if (len > it->left)
			len = it->left;
		it->stage = it->left - len <= PNVME_PAGE_SIZE ? PRP_SECOND : PRP_LIST;
		break;
	case PRP_SECOND:
		/* at most one page left: PRP2 is a data pointer, offset 0 */
		addr = it->next;
		if (addr & PAGE_MASK_)
			return ST_PRP_OFFSET;
		len = it->left;
		break;
	default:
		/* PRP2 points at a list; the last entry of a full list page chains
		 * to the next list when more than one page is left */
		for (unsigned hops = 0;; hops++) {
			if (hops > 8)
				return ST_PRP_OFFSET;
			if (it->nlist == 0) {
				st = prp_load_list(emu, it, it->next);
				if (st)
					return st;
			}
			addr = *it->list++;
			it->nlist--;
			if (it->nlist == 0 && it->left > PNVME_PAGE_SIZE) {
				it->next = addr;
				continue;
			}
			break;
		}
		if (addr & PAGE_MASK_)
			return ST_PRP_OFFSET;
		len = it->left < PNVME_PAGE_SIZE ? it->left : PNVME_PAGE_SIZE;
		break;
	}
	*va = xlate(emu, addr, len);
	if (*va == NULL)
		return ST_XFER_ERROR;
	it->left -= len;
	*n = (size_t)len;
	return 0;
}

/* Copy `avail` bytes of `src` to the command's data buffer, zero-filled to `len`. */
static uint16_t prp_to_host(struct pnvme_emu *emu, struct emu_req *req, const void *src,
			    uint64_t avail, uint64_t len)
{
	const uint8_t *s = src;
	struct prp_iter it;

	prp_init(&it, &req->cmd, len);
	while (it.left) {
		uint8_t *va;
		size_t n, c;
		uint16_t st = prp_next(emu, &it, &va, &n);
		if (st)
			return st;
		c = avail < n ? (size_t)avail : n;
		memcpy(va, s, c);
		memset(va + c, 0, n - c);
		s += c;
		avail -= c;
	}
	return 0;
}

static uint16_t prp_from_host(struct pnvme_emu *emu, struct emu_req *req, void *dst, uint64_t len)
{
	uint8_t *d = dst;
	struct prp_iter it;

	prp_init(&it, &req->cmd, len);
	while (it.left) {
		uint8_t *va;
		size_t n;
		uint16_t st = prp_next(emu, &it, &va, &n);
		if (st)
			return st;
		memcpy(d, va, n);
		d += n;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Completion posting (Base 2.0 §4.2: Completion Queue Entry, §4.2.4 phase)  */
/* ------------------------------------------------------------------------ */

static int grow(void **p, uint32_t *cap, size_t elem)
{
	uint32_t ncap = *cap ? *cap * 2 : 16;
	void *n = realloc(*p, (size_t)ncap * elem);
	if (n == NULL)
		return -ENOMEM;
	*p = n;
	*cap = ncap;
	return 0;
}

/*
 * A new CQ head from the host (register or shadow entry): it must lie within
 * [head, tail], only posted entries are consumed (Base 2.0 §3.1.4.23).
 */
static bool cq_head_take(struct pnvme_emu *emu, struct emu_cq *cq, uint32_t v)
{
	uint32_t posted = (cq->tail + cq->size - cq->head) % cq->size;
	uint32_t consumed = (v + cq->size - cq->head) % cq->size;

	if (unlikely(v >= cq->size || consumed > posted)) {
		emu->bad_doorbells++;
		log_debug("emu: CQ %u head doorbell %u out of range", cq->qid, v);
		return false;
	}
	cq->head = v;
	return true;
}

/* The shadow CQ head, if it moved since last seen (the register is read once per step). */
static bool cq_shadow_poll(struct pnvme_emu *emu, struct emu_cq *cq)
{
	uint32_t v;

	if (cq->sdb_p == NULL)
		return false;
	v = shadow_load(cq->sdb_p);
	if (v == cq->sdb)
		return false;
	cq->sdb = v;
	cq->sdb_used = true;
	emu->st.shadow_cq_updates++;
	return cq_head_take(emu, cq, v);
}

/* Write one CQE if the ring has room: body, then the status word with the
 * phase tag, a release store (the host polls it from another thread). A CQ that
 * looks full may have room the host announced in its shadow entry only. */
static bool cq_write(struct pnvme_emu *emu, struct emu_cq *cq, const struct emu_cpl *c)
{
	uint32_t next = cq->tail + 1 == cq->size ? 0 : cq->tail + 1;
	struct emu_sq *sq = &emu->sqs[c->sqid];
	volatile struct pnvme_cqe *e;
	uint16_t sqhd;

	if (unlikely(cq->ring == NULL))         /* its memory was unmapped */
		return false;
	if (next == cq->head && (!cq_shadow_poll(emu, cq) || next == cq->head))
		return false;
	sqhd = sq->valid ? (uint16_t)sq->head : c->sqhd;
	if (unlikely(c->fx)) {
		if (c->fx & FX_BAD_SQHD)
			sqhd = (uint16_t)(sq->size + 5u);
		else if ((c->fx & FX_SQHD_BACK) && sq->size)
			sqhd = (uint16_t)((sq->last_sqhd + sq->size - 1u) % sq->size);
	}
	sq->last_sqhd = sqhd;
	e = &cq->ring[cq->tail];
	e->dw0 = c->dw0;
	e->dw1 = c->dw1;
	e->sqhd = sqhd;
	e->sqid = c->sqid;
	e->cid = unlikely(c->fx & FX_BAD_CID) ? (uint16_t)EMU_BAD_CID : c->cid;
	/* Release: the host's acquire load of the phase tag sees the body too. */
	__atomic_store_n(&e->status, (uint16_t)((uint16_t)(c->status << 1) | cq->phase),
			 __ATOMIC_RELEASE);
	cq->tail = next;
	if (next == 0)
		cq->phase ^= 1u;
	emu->st.completions++;
	emu->step_posted++;
	return true;
}

static void cq_ovf_push(struct pnvme_emu *emu, struct emu_cq *cq, const struct emu_cpl *c)
{
	if (cq->ovf_len == cq->ovf_cap) {
		/* grow, keeping FIFO order */
		uint32_t ncap = cq->ovf_cap ? cq->ovf_cap * 2 : 16;
		struct emu_cpl *n = malloc((size_t)ncap * sizeof(*n));
		if (n == NULL) {
			emu->st.dropped++;
			log_warn("emu: out of memory queueing a completion for CQ %u", c->cqid);
			return;
		}
		for (uint32_t i = 0; i < cq->ovf_len; i++)
			n[i] = cq->ovf[(cq->ovf_head + i) % cq->ovf_cap];
		free(cq->ovf);
		cq->ovf = n;
		cq->ovf_cap = ncap;
		cq->ovf_head = 0;
	}
	cq->ovf[(cq->ovf_head + cq->ovf_len) % cq->ovf_cap] = *c;
	cq->ovf_len++;
}

/* Post queued completions while the CQ has room. */
static void cq_drain(struct pnvme_emu *emu, struct emu_cq *cq)
{
	while (cq->ovf_len && cq_write(emu, cq, &cq->ovf[cq->ovf_head])) {
		cq->ovf_head = cq->ovf_head + 1 == cq->ovf_cap ? 0 : cq->ovf_head + 1;
		cq->ovf_len--;
	}
}

static void cpl_post(struct pnvme_emu *emu, const struct emu_cpl *c)
{
	struct emu_cq *cq = &emu->cqs[c->cqid];

	if (unlikely(!cq->valid || cq->ring == NULL)) {
		emu->st.dropped++;
		return;
	}
	if (unlikely(cq->ovf_len) || unlikely(!cq_write(emu, cq, c)))
		cq_ovf_push(emu, cq, c);
	if (unlikely(c->fx & FX_DUP)) {
		/* CQE_DUP: the same entry once more (in the next slot) */
		struct emu_cpl again = *c;
		again.fx = (uint16_t)(c->fx & ~FX_DUP);
		if (unlikely(cq->ovf_len) || unlikely(!cq_write(emu, cq, &again)))
			cq_ovf_push(emu, cq, &again);
	}
}

static void cpl_queue(struct pnvme_emu *emu, const struct emu_cpl *c)
{
	if (unlikely(emu->reordering)) {
		if (emu->rstack_len == emu->rstack_cap &&
		    grow((void **)&emu->rstack, &emu->rstack_cap, sizeof(*emu->rstack)) != 0) {
			cpl_post(emu, c);
			return;
		}
		emu->rstack[emu->rstack_len++] = *c;
		return;
	}
	cpl_post(emu, c);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void delayed_add(struct pnvme_emu *emu, const struct emu_cpl *c, uint64_t delay_us)
{
	if (emu->nr_delayed == emu->delayed_cap &&
	    grow((void **)&emu->delayed, &emu->delayed_cap, sizeof(*emu->delayed)) != 0) {
		cpl_queue(emu, c);
		return;
	}
	emu->delayed[emu->nr_delayed].deadline_ns = now_ns() + delay_us * 1000u;
	emu->delayed[emu->nr_delayed].cpl = *c;
	emu->nr_delayed++;
}

static void delayed_remove(struct pnvme_emu *emu, uint32_t i)
{
	memmove(&emu->delayed[i], &emu->delayed[i + 1],
		(emu->nr_delayed - i - 1) * sizeof(*emu->delayed));
	emu->nr_delayed--;
}

static void delayed_run(struct pnvme_emu *emu)
{
	uint64_t now = now_ns();

	for (uint32_t i = 0; i < emu->nr_delayed;) {
		if (emu->delayed[i].deadline_ns <= now) {
			struct emu_cpl c = emu->delayed[i].cpl;
			delayed_remove(emu, i);
			cpl_queue(emu, &c);
		} else {
			i++;
		}
	}
}

/* Base 2.0 §5.16.1.2: one Error Information entry per failed command. */
static void errlog_add(struct pnvme_emu *emu, const struct emu_req *req, uint16_t status)
{
	struct pnvme_error_log *e = &emu->errlog[emu->error_count % EMU_ERRLOG_LEN];

	memset(e, 0, sizeof(*e));
	e->error_count = ++emu->error_count;
	e->sqid = req->sq->qid;
	e->cmdid = req->cmd.cid;
	e->status = (uint16_t)(status << 1);
	e->param_loc = 0xffff;
	e->lba = req->err_lba;
	e->nsid = req->cmd.nsid;
}

static void req_finish(struct pnvme_emu *emu, struct emu_req *req, uint16_t status)
{
	struct emu_cpl c = {
		.dw0 = req->dw0,
		.dw1 = req->dw1,
		.sqid = req->sq->qid,
		.cid = req->cmd.cid,
		.status = status,
		.sqhd = (uint16_t)req->sq->head,
		.cqid = req->sq->cqid,
		.fx = req->fx,
	};

	if (unlikely(PNVME_STATUS_CODE(status) != 0))
		errlog_add(emu, req, status);
	if (unlikely(req->drop)) {
		emu->st.dropped++;
		return;
	}
	if (unlikely(req->delay)) {
		delayed_add(emu, &c, req->delay_us);
		return;
	}
	cpl_queue(emu, &c);
}

/* Complete a command that is not being executed (abort paths). */
static void cpl_now(struct pnvme_emu *emu, struct emu_sq *sq, uint16_t cid, uint16_t status)
{
	struct emu_req req = { .sq = sq };
	req.cmd.cid = cid;
	req.err_lba = 0;
	req_finish(emu, &req, status);
}

/* ------------------------------------------------------------------------ */
/* Faults                                                                   */
/* ------------------------------------------------------------------------ */

/* Faults that match commands (qid, opc, skip, count). */
static bool fault_is_cmd(enum pnvme_emu_fault_kind k)
{
	switch (k) {
	case PNVME_EMU_FAULT_DROP_CPL:
	case PNVME_EMU_FAULT_DELAY_CPL:
	case PNVME_EMU_FAULT_STATUS:
	case PNVME_EMU_FAULT_IGNORE_ABORT:
	case PNVME_EMU_FAULT_CQE_BAD_CID:
	case PNVME_EMU_FAULT_CQE_DUP:
	case PNVME_EMU_FAULT_CQE_BAD_SQHD:
	case PNVME_EMU_FAULT_CQE_SQHD_BACK:
		return true;
	default:
		return false;
	}
}

static bool fault_armed(const struct pnvme_emu *emu, enum pnvme_emu_fault_kind k)
{
	for (unsigned i = 0; i < EMU_MAX_FAULTS; i++)
		if (emu->faults[i].armed && emu->faults[i].f.kind == k)
			return true;
	return false;
}

/* Apply matching command faults; returns a status to complete with, or 0. */
static uint16_t fault_match(struct pnvme_emu *emu, struct emu_req *req)
{
	uint16_t status = 0;

	for (unsigned i = 0; i < EMU_MAX_FAULTS; i++) {
		struct emu_fault_slot *s = &emu->faults[i];
		if (!s->armed || !fault_is_cmd(s->f.kind))
			continue;
		if (s->f.qid != PNVME_EMU_ANY_QID && s->f.qid != req->sq->qid)
			continue;
		if (s->f.opc != PNVME_EMU_ANY_OPC && s->f.opc != req->cmd.opc)
			continue;
		/* IGNORE_ABORT counts Abort commands only */
		if (s->f.kind == PNVME_EMU_FAULT_IGNORE_ABORT &&
		    (req->sq->qid != 0 || req->cmd.opc != PNVME_ADM_ABORT))
			continue;
		if (++s->seen <= s->f.skip)
			continue;
		if (s->f.count && s->hits >= s->f.count)
			continue;
		s->hits++;
		switch (s->f.kind) {
		case PNVME_EMU_FAULT_DROP_CPL:
			req->drop = true;
			break;
		case PNVME_EMU_FAULT_DELAY_CPL:
			req->delay = true;
			if (s->f.delay_us > req->delay_us)
				req->delay_us = s->f.delay_us;
			break;
		case PNVME_EMU_FAULT_IGNORE_ABORT:
			req->ignore_abort = true;
			break;
		case PNVME_EMU_FAULT_CQE_BAD_CID:
			req->fx |= FX_BAD_CID;
			break;
		case PNVME_EMU_FAULT_CQE_DUP:
			req->fx |= FX_DUP;
			break;
		case PNVME_EMU_FAULT_CQE_BAD_SQHD:
			req->fx |= FX_BAD_SQHD;
			break;
		case PNVME_EMU_FAULT_CQE_SQHD_BACK:
			req->fx |= FX_SQHD_BACK;
			break;
		default:
			status = s->f.status;
			break;
		}
	}
	return status;
}

/* ------------------------------------------------------------------------ */
/* Shadow doorbells and EventIdx (Base 2.0 §5.8)                            */
/* ------------------------------------------------------------------------ */

/*
 * Entry `idx` (2 * qid for the SQ tail, 2 * qid + 1 for the CQ head) of a
 * DBBUF page: the doorbell register layout without the 1000h offset, so
 * (4 << CAP.DSTRD) bytes apart. NULL when DBBUF is off or the entry lies
 * beyond the one page the host gave (that queue stays MMIO-only).
 */
static uint32_t *dbbuf_entry(const struct pnvme_emu *emu, uint32_t *page, uint32_t idx)
{
	size_t off = (size_t)idx << (2u + emu->dstrd);

	if (!emu->dbbuf_on || off + sizeof(uint32_t) > PNVME_PAGE_SIZE)
		return NULL;
	return (uint32_t *)((uint8_t *)page + off);
}

/*
 * Point SQ `sq` at its shadow entries. A new queue (`sync` false) takes the
 * shadow value as it finds it as already seen: the host zeroes its entry,
 * possibly only after the Create command, and a stale value left by an
 * earlier queue with this id must not read as a new tail. A queue that
 * existed before Doorbell Buffer Config (`sync` true) gets its current tail
 * written into the shadow entry, so host and controller start in agreement.
 * Either way EventIdx = the head: the host's next tail write rings.
 */
static void sq_shadow_attach(struct pnvme_emu *emu, struct emu_sq *sq, bool sync)
{
	sq->sdb_p = dbbuf_entry(emu, emu->dbbuf, 2u * sq->qid);
	sq->ei_p = dbbuf_entry(emu, emu->eventidx, 2u * sq->qid);
	if (sq->sdb_p == NULL || sq->ei_p == NULL) {
		sq->sdb_p = sq->ei_p = NULL;
		return;
	}
	if (sync)
		__atomic_store_n(sq->sdb_p, sq->tail, __ATOMIC_RELAXED);
	sq->sdb_used = false;
	sq->sdb = shadow_load(sq->sdb_p);
	sq->ei = sq->head;
	__atomic_store_n(sq->ei_p, sq->ei, __ATOMIC_RELEASE);
}

/* The same for CQ `cq` (head and EventIdx = the head it has seen). */
static void cq_shadow_attach(struct pnvme_emu *emu, struct emu_cq *cq, bool sync)
{
	cq->sdb_p = dbbuf_entry(emu, emu->dbbuf, 2u * cq->qid + 1u);
	cq->ei_p = dbbuf_entry(emu, emu->eventidx, 2u * cq->qid + 1u);
	if (cq->sdb_p == NULL || cq->ei_p == NULL) {
		cq->sdb_p = cq->ei_p = NULL;
		return;
	}
	if (sync)
		__atomic_store_n(cq->sdb_p, cq->head, __ATOMIC_RELAXED);
	cq->sdb_used = false;
	cq->sdb = shadow_load(cq->sdb_p);
	cq->ei = cq->head;
	__atomic_store_n(cq->ei_p, cq->ei, __ATOMIC_RELEASE);
}

/* Forget the DBBUF pages (controller reset, or their memory was unmapped). */
static void dbbuf_off(struct pnvme_emu *emu)
{
	emu->dbbuf_on = false;
	emu->dbbuf = emu->eventidx = NULL;
	emu->dbbuf_iova = emu->eventidx_iova = 0;
	for (uint32_t q = 0; q <= emu->cfg.nr_io_queues; q++) {
		emu->sqs[q].sdb_p = emu->sqs[q].ei_p = NULL;
		emu->cqs[q].sdb_p = emu->cqs[q].ei_p = NULL;
	}
}

/*
 * Publish EventIdx = `v` for a queue, then look at its shadow doorbell again.
 * The host stores the shadow value, issues a full barrier and loads EventIdx;
 * we store EventIdx, issue a full barrier and load the shadow value. So a host
 * write that saw the old EventIdx (and skipped the MMIO doorbell) is seen by
 * this load: no update is lost. Returns the shadow value.
 */
static inline uint32_t event_idx_publish(uint32_t *ei_p, const uint32_t *sdb_p, uint32_t v)
{
	__atomic_store_n(ei_p, v, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return shadow_load(sdb_p);
}

/* ------------------------------------------------------------------------ */
/* Queues                                                                   */
/* ------------------------------------------------------------------------ */

static void sq_destroy(struct pnvme_emu *emu, struct emu_sq *sq)
{
	if (sq->valid && emu->cqs[sq->cqid].valid)
		emu->cqs[sq->cqid].nr_sqs--;
	memset(sq, 0, sizeof(*sq));
}

static void cq_destroy(struct emu_cq *cq)
{
	struct emu_cpl *ovf = cq->ovf;
	uint32_t cap = cq->ovf_cap;

	memset(cq, 0, sizeof(*cq));
	cq->ovf = ovf;          /* keep the buffer for the next queue with this id */
	cq->ovf_cap = cap;
}

static void hi_qid_update(struct pnvme_emu *emu)
{
	uint32_t q = emu->cfg.nr_io_queues;
	while (q > 0 && !emu->sqs[q].valid && !emu->cqs[q].valid)
		q--;
	emu->hi_qid = q;
}

/* Drop every queue and every held command (controller reset). */
static void queues_reset(struct pnvme_emu *emu)
{
	for (uint32_t q = 0; q <= emu->cfg.nr_io_queues; q++) {
		memset(&emu->sqs[q], 0, sizeof(emu->sqs[q]));
		cq_destroy(&emu->cqs[q]);
	}
	emu->hi_qid = 0;
	emu->nr_delayed = 0;
	emu->nr_aborts = 0;
	emu->nr_aer = 0;
	emu->rstack_len = 0;
	emu->io_queues_created = false;
	dbbuf_off(emu);
}

/* ------------------------------------------------------------------------ */
/* Media                                                                    */
/* ------------------------------------------------------------------------ */

/* Zero [off, off + len) of a media area (`base` is page aligned in RAM mode). */
static void zero_range(struct pnvme_emu *emu, uint8_t *base, uint64_t off, uint64_t len)
{
	if (emu->file_map == NULL && len >= 16 * (uint64_t)PNVME_PAGE_SIZE) {
		/* anonymous memory: give whole pages back, they read as zeroes */
		uint64_t a = ALIGN_UP(off, (uint64_t)PNVME_PAGE_SIZE);
		uint64_t b = (off + len) & ~PAGE_MASK_;
		if (madvise(base + a, (size_t)(b - a), MADV_DONTNEED) == 0) {
			memset(base + off, 0, (size_t)(a - off));
			memset(base + b, 0, (size_t)(off + len - b));
			return;
		}
	}
	memset(base + off, 0, (size_t)len);
}

static void media_zero(struct pnvme_emu *emu, struct emu_ns *ns, uint64_t off, uint64_t len)
{
	zero_range(emu, ns->media, off, len);
}

/*
 * Blocks [slba, slba + nlb) become deallocated in the metadata as well: the
 * non-PI bytes read as zeroes, the PI tuple as all ones (stored inverted:
 * zeroes), which disables checking (NVM 1.0 §3.2.3.2.1, Deallocated or Unwritten
 * Logical Blocks).
 */
static void meta_zero(struct pnvme_emu *emu, struct emu_ns *ns, uint64_t slba, uint64_t nlb)
{
	if (ns->meta != NULL)
		zero_range(emu, ns->meta, slba * emu->ms, nlb * emu->ms);
}

/* msync a file-backed range (the start rounded down to its page). */
static void sync_range(const uint8_t *p, uint64_t len)
{
	uintptr_t a = (uintptr_t)p & ~(uintptr_t)PAGE_MASK_;

	if (len != 0 && msync((void *)a, (size_t)len + ((uintptr_t)p - a), MS_SYNC) != 0)
		log_warn("emu: msync: %s", strerror(errno));
}

static void media_sync(struct pnvme_emu *emu, struct emu_ns *ns)
{
	if (emu->file_map == NULL)
		return;
	sync_range(ns->media, ns->bytes);
	if (ns->meta != NULL)
		sync_range(ns->meta, ns->meta_bytes);
}

/*
 * One block's metadata as the host sees it, to and from the medium. On a PI
 * namespace the tuple is kept inverted, so that zero-filled media (never
 * written, deallocated, a new backing file) reads as the all-ones tuple of a
 * deallocated block.
 */
static void meta_load(const struct pnvme_emu *emu, const struct emu_ns *ns, uint64_t lba,
		      uint8_t *mb)
{
	memcpy(mb, ns->meta + lba * emu->ms, emu->ms);
	if (emu->cfg.pi)
		for (unsigned k = 0; k < EMU_PI_SIZE; k++)
			mb[emu->pif.pil + k] ^= 0xffu;
}

static void meta_store(const struct pnvme_emu *emu, struct emu_ns *ns, uint64_t lba,
		       const uint8_t *mb)
{
	uint8_t *m = ns->meta + lba * emu->ms;

	memcpy(m, mb, emu->ms);
	if (emu->cfg.pi)
		for (unsigned k = 0; k < EMU_PI_SIZE; k++)
			m[emu->pif.pil + k] ^= 0xffu;
}

static struct emu_ns *ns_get(struct pnvme_emu *emu, uint32_t nsid)
{
	if (nsid == 0 || nsid > emu->cfg.nr_ns)
		return NULL;
	return &emu->ns[nsid - 1];
}

/* ------------------------------------------------------------------------ */
/* NVM command set (NVM 1.0 §3)                                             */
/* ------------------------------------------------------------------------ */

static inline uint64_t cmd_slba(const struct pnvme_sqe *c)
{
	return (uint64_t)c->cdw10 | ((uint64_t)c->cdw11 << 32);
}

static inline uint32_t cmd_nlb(const struct pnvme_sqe *c)
{
	return PNVME_GET(c->cdw12, PNVME_RW_NLB) + 1u;
}

static inline bool lba_range_bad(const struct emu_ns *ns, uint64_t slba, uint64_t nlb)
{
	return slba >= ns->nlba || nlb > ns->nlba - slba;
}

/* PRINFO of a Read / Write / Write Zeroes: 0 on a namespace without PI (ignored there). */
static inline unsigned cmd_prinfo(const struct pnvme_emu *emu, const struct pnvme_sqe *c)
{
	return emu->cfg.pi ? (c->cdw12 >> EMU_PRINFO_SHIFT) & EMU_PRINFO_MASK : 0;
}

/*
 * Metadata bytes per block that cross the bus: none when PRACT = 1 and the
 * metadata is the 8-byte PI tuple alone (the controller inserts / strips it,
 * NVM 1.0 §5.3), else all of them.
 */
static inline uint32_t cmd_host_ms(const struct pnvme_emu *emu, const struct pnvme_sqe *c)
{
	if ((cmd_prinfo(emu, c) & EMU_PRINFO_PRACT) && emu->ms == EMU_PI_SIZE)
		return 0;
	return emu->ms;
}

/* A byte stream over a command's PRPs: copy any length, pulling segments as needed. */
struct prp_stream {
	struct prp_iter it;
	uint8_t *va;
	size_t n;
};

static uint16_t stream_copy(struct pnvme_emu *emu, struct prp_stream *x, uint8_t *buf,
			    size_t len, bool to_host)
{
	while (len) {
		size_t c;
		if (x->n == 0) {
			uint16_t st;
			if (x->it.left == 0)
				return ST_XFER_ERROR;
			st = prp_next(emu, &x->it, &x->va, &x->n);
			if (st)
				return st;
		}
		c = len < x->n ? len : x->n;
		if (to_host)
			memcpy(x->va, buf, c);
		else
			memcpy(buf, x->va, c);
		x->va += c;
		x->n -= c;
		buf += c;
		len -= c;
	}
	return 0;
}

/*
 * NVM 1.0 §3.2.4 Read, §3.2.6 Write on a namespace with metadata (§5.2), block
 * by block. Extended LBAs (FLBAS bit 4): each block's metadata follows its
 * data in the PRP buffer. Separate: MPTR is one contiguous buffer (PSDT 0,
 * dword aligned) of nlb * ms bytes, translated whole. With PI (§5.3):
 * PRACT = 1 generates the tuple on a write (guard over the data, apptag
 * LBAT, reftag ILBRT + i, ILBRT alone for type 3) and, when ms = 8, moves no
 * metadata at all; PRACT = 0 checks what the host sent as PRCHK asks; reads
 * check the stored tuple as PRCHK asks. A failed check stops the command at
 * that block (the blocks before it were transferred).
 */
static uint16_t exec_rw_meta(struct pnvme_emu *emu, struct emu_req *req)
{
	const struct pnvme_sqe *c = &req->cmd;
	uint64_t slba = cmd_slba(c);
	uint32_t nlb = cmd_nlb(c), lba = emu->cfg.lba_size;
	bool write = c->opc == PNVME_NVM_WRITE, ext = emu->cfg.ext;
	unsigned prinfo = cmd_prinfo(emu, c), prchk = prinfo & EMU_PRCHK_MASK;
	bool pract = prinfo & EMU_PRINFO_PRACT;
	uint32_t hms = cmd_host_ms(emu, c);
	uint32_t ilbrt = c->cdw14;
	uint16_t lbat = (uint16_t)c->cdw15, lbatm = (uint16_t)(c->cdw15 >> 16);
	uint8_t *mbuf = NULL, *data = emu->scratch;
	uint8_t mb[64];
	struct prp_stream x;
	uint16_t st = 0;

	_Static_assert(sizeof(emu->scratch) >= 4096, "one block of data in scratch");
	req->err_lba = slba;
	/* NVM 1.0 §5.3: type 1 with reftag checking wants ILBRT = SLBA's low 32 bits */
	if (emu->cfg.pi == 1 && (prchk & EMU_PRCHK_REFTAG) && ilbrt != (uint32_t)slba)
		return ST_INVALID_PI;
	if (!ext && hms != 0) {
		if (c->mptr & 3u)
			return ST_INVALID_FIELD;
		mbuf = xlate(emu, c->mptr, (uint64_t)nlb * hms);
		if (mbuf == NULL)
			return ST_XFER_ERROR;
	}
	prp_init(&x.it, c, (uint64_t)nlb * (lba + (ext ? hms : 0)));
	x.n = 0;
	for (uint32_t i = 0; i < nlb; i++) {
		uint64_t l = slba + i;
		uint8_t *media = req->ns->media + (l << emu->lba_shift);
		uint32_t rt = emu->cfg.pi == 3 ? ilbrt : ilbrt + i;
		uint8_t sc = 0;

		req->err_lba = l;
		if (write) {
			st = stream_copy(emu, &x, data, lba, false);
			if (st == 0 && ext && hms)
				st = stream_copy(emu, &x, mb, hms, false);
			if (st)
				return st;
			if (mbuf != NULL)
				memcpy(mb, mbuf + (size_t)i * hms, hms);
			if (hms == 0)
				memset(mb, 0, emu->ms);
			if (pract)
				emu_pi_generate(&emu->pif, data, mb, lbat, rt);
			else if (prchk)
				sc = emu_pi_check(&emu->pif, data, mb, prchk, lbat, lbatm, rt);
			if (sc)
				return ST_PI_ERROR(sc);
			memcpy(media, data, lba);
			meta_store(emu, req->ns, l, mb);
		} else {
			meta_load(emu, req->ns, l, mb);
			if (prchk)
				sc = emu_pi_check(&emu->pif, media, mb, prchk, lbat, lbatm, rt);
			if (sc)
				return ST_PI_ERROR(sc);
			st = stream_copy(emu, &x, media, lba, true);
			if (st == 0 && ext && hms)
				st = stream_copy(emu, &x, mb, hms, true);
			if (st)
				return st;
			if (mbuf != NULL)
				memcpy(mbuf + (size_t)i * hms, mb, hms);
		}
	}
	req->err_lba = 0;
	if (write) {
		emu->host_writes++;
		emu->sectors_written += ((uint64_t)nlb * lba) >> 9;
		emu->st.write_bytes += (uint64_t)nlb * lba;
	} else {
		emu->host_reads++;
		emu->sectors_read += ((uint64_t)nlb * lba) >> 9;
		emu->st.read_bytes += (uint64_t)nlb * lba;
	}
	return 0;
}

/* NVM 1.0 §3.2.4 Read, §3.2.6 Write: data between media and the PRPs. */
static uint16_t exec_rw(struct pnvme_emu *emu, struct emu_req *req)
{
	uint64_t slba = cmd_slba(&req->cmd);
	uint64_t len = (uint64_t)cmd_nlb(&req->cmd) << emu->lba_shift;
	uint8_t *media = req->ns->media + (slba << emu->lba_shift);
	bool write = req->cmd.opc == PNVME_NVM_WRITE;
	struct prp_iter it;

	prp_init(&it, &req->cmd, len);
	while (it.left) {
		uint8_t *va;
		size_t n;
		uint16_t st = prp_next(emu, &it, &va, &n);
		if (unlikely(st)) {
			req->err_lba = slba;
			return st;
		}
		if (write)
			memcpy(media, va, n);
		else
			memcpy(va, media, n);
		media += n;
	}
	if (write) {
		emu->host_writes++;
		emu->sectors_written += len >> 9;
		emu->st.write_bytes += len;
	} else {
		emu->host_reads++;
		emu->sectors_read += len >> 9;
		emu->st.read_bytes += len;
	}
	return 0;
}

/*
 * NVM 1.0 §3.2.8 Write Zeroes: zeroes whether DEAC asks to deallocate or not.
 * Metadata other than PI reads as zeroes afterwards; the PI tuple is
 * generated (PRACT = 1: guard of the zeroes, apptag LBAT, reftag ILBRT + i or
 * ILBRT for type 3) or all zeroes (PRACT = 0). PRCHK must be 0 (else Invalid
 * Protection Information, as QEMU's controller answers).
 */
static uint16_t exec_write_zeroes(struct pnvme_emu *emu, struct emu_req *req)
{
	const struct pnvme_sqe *c = &req->cmd;
	uint64_t slba = cmd_slba(c);
	uint32_t nlb = cmd_nlb(c);
	unsigned prinfo = cmd_prinfo(emu, c);

	if (prinfo & EMU_PRCHK_MASK)
		return ST_INVALID_PI;
	media_zero(emu, req->ns, slba << emu->lba_shift, (uint64_t)nlb << emu->lba_shift);
	meta_zero(emu, req->ns, slba, nlb);
	if (emu->cfg.pi != 0) {
		uint8_t mb[64];
		memset(emu->scratch, 0, emu->cfg.lba_size);
		for (uint32_t i = 0; i < nlb; i++) {
			memset(mb, 0, emu->ms);
			if (prinfo & EMU_PRINFO_PRACT)
				emu_pi_generate(&emu->pif, emu->scratch, mb, (uint16_t)c->cdw15,
						emu->cfg.pi == 3 ? c->cdw14 : c->cdw14 + i);
			meta_store(emu, req->ns, slba + i, mb);
		}
	}
	return 0;
}

/* NVM 1.0 §3.2.3 Dataset Management: ranges come from the data buffer. */
static uint16_t exec_dsm(struct pnvme_emu *emu, struct emu_req *req)
{
	uint32_t nr = PNVME_GET(req->cmd.cdw10, PNVME_DSM_NR) + 1u;
	const struct pnvme_dsm_range *r = (const struct pnvme_dsm_range *)emu->scratch;
	uint16_t st;

	_Static_assert(sizeof(emu->scratch) >= PNVME_DSM_MAX_RANGES * sizeof(*r), "DSM scratch");
	st = prp_from_host(emu, req, emu->scratch, (uint64_t)nr * sizeof(*r));
	if (st)
		return st;
	for (uint32_t i = 0; i < nr; i++) {
		if (lba_range_bad(req->ns, r[i].slba, r[i].nlb) && r[i].nlb != 0) {
			req->err_lba = r[i].slba;
			return ST_LBA_RANGE;
		}
	}
	if (!(req->cmd.cdw11 & PNVME_DSM_AD))
		return 0;
	/* deallocated blocks read back as zeroes (Identify Namespace DLFEAT) */
	for (uint32_t i = 0; i < nr; i++) {
		if (r[i].nlb) {
			media_zero(emu, req->ns, r[i].slba << emu->lba_shift,
				   (uint64_t)r[i].nlb << emu->lba_shift);
			meta_zero(emu, req->ns, r[i].slba, r[i].nlb);
		}
	}
	return 0;
}

/* NVM 1.0 §3.2.2 Flush (Base 2.0 §7.1); NSID FFFFFFFFh flushes every namespace. */
static uint16_t exec_flush(struct pnvme_emu *emu, struct emu_req *req)
{
	if (req->ns != NULL) {
		media_sync(emu, req->ns);
	} else {
		for (uint32_t i = 0; i < emu->cfg.nr_ns; i++)
			media_sync(emu, &emu->ns[i]);
	}
	return 0;
}

/* Parse an I/O command: validate fields, pick the execute function. */
static uint16_t parse_io(struct pnvme_emu *emu, struct emu_req *req)
{
	const struct pnvme_sqe *c = &req->cmd;
	uint64_t slba;
	uint32_t nlb;

	switch (c->opc) {
	case PNVME_NVM_READ:
	case PNVME_NVM_WRITE:
		req->ns = ns_get(emu, c->nsid);
		if (unlikely(req->ns == NULL))
			return ST_INVALID_NS;
		slba = cmd_slba(c);
		nlb = cmd_nlb(c);
		if (unlikely(emu->ms != 0)) {
			/* MDTS counts the metadata only when it is in the data buffer */
			uint64_t per = emu->cfg.lba_size + (emu->cfg.ext ? cmd_host_ms(emu, c) : 0);
			if ((uint64_t)nlb * per > emu->max_xfer)
				return ST_INVALID_FIELD;
			req->execute = exec_rw_meta;
		} else {
			if (unlikely(((uint64_t)nlb << emu->lba_shift) > emu->max_xfer))
				return ST_INVALID_FIELD;
			req->execute = exec_rw;
		}
		if (unlikely(lba_range_bad(req->ns, slba, nlb))) {
			req->err_lba = slba;
			return ST_LBA_RANGE;
		}
		return 0;
	case PNVME_NVM_WRITE_ZEROES:
		req->ns = ns_get(emu, c->nsid);
		if (req->ns == NULL)
			return ST_INVALID_NS;
		slba = cmd_slba(c);
		if (lba_range_bad(req->ns, slba, cmd_nlb(c))) {
			req->err_lba = slba;
			return ST_LBA_RANGE;
		}
		req->execute = exec_write_zeroes;
		return 0;
	case PNVME_NVM_DSM:
		req->ns = ns_get(emu, c->nsid);
		if (req->ns == NULL)
			return ST_INVALID_NS;
		req->execute = exec_dsm;
		return 0;
	case PNVME_NVM_FLUSH:
		if (c->nsid != 0xffffffffu) {
			req->ns = ns_get(emu, c->nsid);
			if (req->ns == NULL)
				return ST_INVALID_NS;
		}
		req->execute = exec_flush;
		return 0;
	default:
		return ST_INVALID_OPC;
	}
}

/* ------------------------------------------------------------------------ */
/* Admin command set (Base 2.0 §5)                                          */
/* ------------------------------------------------------------------------ */

static void pad_copy(char *dst, size_t n, const char *src)
{
	size_t l = strlen(src);
	memset(dst, ' ', n);
	memcpy(dst, src, l < n ? l : n);
}

static void put_u128(uint8_t dst[16], uint64_t v)
{
	memset(dst, 0, 16);
	memcpy(dst, &v, sizeof(v));
}

/* Base 2.0 §5.17.2.1, Figure 275: Identify Controller data structure. */
static void identify_ctrl(struct pnvme_emu *emu, struct pnvme_id_ctrl *id)
{
	const struct pnvme_emu_config *c = &emu->cfg;

	id->vid = 0x1b36;
	id->ssvid = 0x1af4;
	pad_copy(id->sn, sizeof(id->sn), c->sn);
	pad_copy(id->mn, sizeof(id->mn), c->mn);
	pad_copy(id->fr, sizeof(id->fr), "0.1.0");
	id->rab = 6;
	id->mdts = (uint8_t)c->mdts;
	if (fault_armed(emu, PNVME_EMU_FAULT_ID_MDTS_HUGE))
		id->mdts = 255;                  /* the limit enforced stays c->mdts */
	id->cntlid = 1;
	id->ver = PNVME_VS(2, 0, 0);
	id->cntrltype = 1;                       /* I/O controller */
	id->oacs = emu->cfg.dbbuf ? PNVME_OACS_DBBUF : 0;
	id->acl = EMU_ACL;
	id->aerl = EMU_AERL;
	id->frmw = 1u << 1;                      /* one firmware slot */
	id->lpa = 1u << 2;                       /* extended Get Log Page (offset, NUMDU) */
	id->elpe = EMU_ERRLOG_LEN - 1;
	id->npss = 0;
	id->wctemp = EMU_WCTEMP_K;
	id->cctemp = EMU_CCTEMP_K;
	put_u128(id->tnvmcap, c->ns_size * c->nr_ns);
	id->sqes = 0x66;
	id->cqes = 0x44;
	id->nn = fault_armed(emu, PNVME_EMU_FAULT_ID_NN_HUGE) ? 0xffffffffu : EMU_NN;
	id->oncs = PNVME_ONCS_DSM | PNVME_ONCS_WRITE_ZEROES;
	id->vwc = 1;
	snprintf(id->subnqn, sizeof(id->subnqn), "nqn.2024-01.dev.pnvme:emu:%s", c->sn);
	id->psd[0].mp = 2500;                    /* 25 W, in 0.01 W */
	id->psd[0].enlat = 16;
	id->psd[0].exlat = 4;
}

/* NVM 1.0 §4.1.5.1, Figure 97: Identify Namespace data structure. */
static void identify_ns(struct pnvme_emu *emu, uint32_t nsid, struct pnvme_id_ns *id)
{
	const struct emu_ns *ns = &emu->ns[nsid - 1];

	id->nsze = ns->nlba;
	id->ncap = ns->nlba;
	id->nuse = ns->nlba;
	id->nlbaf = 0;
	id->flbas = 0;
	id->dlfeat = 0x1u | (1u << 3);   /* deallocated blocks read zeroes; WZ DEAC */
	put_u128(id->nvmcap, ns->bytes);
	id->nguid[0] = 0x70;              /* 'p' */
	memcpy(&id->nguid[4], emu->cfg.sn, 8);
	memcpy(&id->nguid[12], &nsid, 4);
	id->lbaf[0] = PNVME_SET(PNVME_LBAF_LBADS, emu->lba_shift) |
		      PNVME_SET(PNVME_LBAF_MS, emu->ms);
	/* NVM 1.0 Figure 97: FLBAS bit 4, MC, DPC, DPS (one format: only what it is) */
	if (emu->cfg.ext)
		id->flbas = PNVME_FLBAS_META_EXT;
	if (emu->ms != 0)
		id->mc = emu->cfg.ext ? 1u : 2u;        /* bit 0 extended, bit 1 separate */
	if (emu->cfg.pi != 0) {
		id->dpc = (uint8_t)((1u << (emu->cfg.pi - 1)) | (emu->cfg.pi_first ? 1u << 3 : 1u << 4));
		id->dps = (uint8_t)(emu->cfg.pi | (emu->cfg.pi_first ? 1u << 3 : 0));
	}
	if (fault_armed(emu, PNVME_EMU_FAULT_ID_FLBAS_RANGE)) {
		/* index 3 with NLBAF 0; LBAF3 itself looks fine, so only the NLBAF check catches it */
		id->flbas = (uint8_t)(EMU_BAD_FLBAS | (id->flbas & PNVME_FLBAS_META_EXT));
		id->lbaf[EMU_BAD_FLBAS] = id->lbaf[0];
	}
	if (fault_armed(emu, PNVME_EMU_FAULT_ID_LBADS_ZERO)) {
		unsigned fmt = PNVME_FLBAS_INDEX(id->flbas);
		id->lbaf[fmt] &= ~(uint32_t)(PNVME_LBAF_LBADS_MASK << PNVME_LBAF_LBADS_SHIFT);
	}
}

/*
 * Base 2.0 §5.17.2.2: active NSIDs above `nsid`, ascending. ID_NN_HUGE breaks
 * the order: the highest comes first, then the rest, then the lowest again
 * (nsid 1 alone gives [1, 1]; 3 namespaces give [3, 1, 2, 1]).
 */
static void identify_active_list(struct pnvme_emu *emu, uint32_t nsid, uint32_t *list)
{
	uint32_t n = 0;

	for (uint32_t id = nsid + 1; id <= emu->cfg.nr_ns && n < PNVME_ID_NS_LIST_MAX; id++)
		list[n++] = id;
	if (n == 0 || !fault_armed(emu, PNVME_EMU_FAULT_ID_NN_HUGE))
		return;
	uint32_t hi = list[n - 1], lo = list[0];
	memmove(&list[1], &list[0], (size_t)(n - 1) * sizeof(*list));
	list[0] = hi;
	if (n < PNVME_ID_NS_LIST_MAX)
		list[n] = lo;
}

/* Base 2.0 §5.17: Identify */
static uint16_t exec_identify(struct pnvme_emu *emu, struct emu_req *req)
{
	uint32_t cns = req->cmd.cdw10 & 0xffu;
	uint32_t nsid = req->cmd.nsid;
	uint8_t *buf = emu->scratch;

	memset(buf, 0, PNVME_IDENTIFY_DATA_SIZE);
	switch (cns) {
	case PNVME_ID_CNS_NS:
		if (nsid == 0 || nsid > EMU_NN)
			return ST_INVALID_NS;
		if (nsid <= emu->cfg.nr_ns)          /* inactive NSIDs: zeroes */
			identify_ns(emu, nsid, (struct pnvme_id_ns *)buf);
		break;
	case PNVME_ID_CNS_CTRL:
		identify_ctrl(emu, (struct pnvme_id_ctrl *)buf);
		break;
	case PNVME_ID_CNS_NS_ACTIVE:
		if (nsid >= 0xfffffffeu)
			return ST_INVALID_NS;
		identify_active_list(emu, nsid, (uint32_t *)buf);
		break;
	case PNVME_ID_CNS_NS_DESC_LIST:
		/* Base 2.0 §5.17.2.3: one NGUID descriptor (NIDT 2, NIDL 16) */
		if (nsid == 0 || nsid > EMU_NN)
			return ST_INVALID_NS;
		if (nsid <= emu->cfg.nr_ns) {
			struct pnvme_id_ns id;
			memset(&id, 0, sizeof(id));
			identify_ns(emu, nsid, &id);
			buf[0] = 2;
			buf[1] = 16;
			memcpy(buf + 4, id.nguid, 16);
		}
		break;
	default:
		return ST_INVALID_FIELD;
	}
	if (unlikely(cns < ARRAY_SIZE(emu->id_override) && emu->id_override[cns] != NULL))
		memcpy(buf, emu->id_override[cns], PNVME_IDENTIFY_DATA_SIZE);
	return prp_to_host(emu, req, buf, PNVME_IDENTIFY_DATA_SIZE, PNVME_IDENTIFY_DATA_SIZE);
}

/* Base 2.0 §5.16.1.3, Figure 207: SMART / Health Information. */
static void smart_fill(struct pnvme_emu *emu, struct pnvme_smart_log *s)
{
	uint64_t hours = (now_ns() / 1000000000ull - emu->created_ns / 1000000000ull) / 3600u;

	s->temperature[0] = (uint8_t)(EMU_TEMP_K & 0xff);
	s->temperature[1] = (uint8_t)(EMU_TEMP_K >> 8);
	s->avail_spare = 100;
	s->spare_thresh = 10;
	put_u128(s->data_units_read, (emu->sectors_read + 999) / 1000);
	put_u128(s->data_units_written, (emu->sectors_written + 999) / 1000);
	put_u128(s->host_reads, emu->host_reads);
	put_u128(s->host_writes, emu->host_writes);
	put_u128(s->power_cycles, 1);
	put_u128(s->power_on_hours, hours);
	put_u128(s->unsafe_shutdowns, emu->unsafe_shutdowns);
	put_u128(s->num_err_log_entries, emu->error_count);
	s->temp_sensor[0] = EMU_TEMP_K;
}

/* Base 2.0 §5.16: Get Log Page (offset and NUMDU honoured, RAE ignored). */
static uint16_t exec_get_log_page(struct pnvme_emu *emu, struct emu_req *req)
{
	const struct pnvme_sqe *c = &req->cmd;
	uint32_t lid = PNVME_GET(c->cdw10, PNVME_GLP_LID);
	uint64_t numd = ((uint64_t)PNVME_GET(c->cdw11, PNVME_GLP_NUMDU) << 16 |
			 PNVME_GET(c->cdw10, PNVME_GLP_NUMDL)) + 1u;
	uint64_t len = numd * 4u;
	uint64_t off = (uint64_t)c->cdw12 | ((uint64_t)c->cdw13 << 32);
	uint8_t *buf = emu->scratch;
	uint64_t size;

	switch (lid) {
	case PNVME_LOG_ERROR: {
		struct pnvme_error_log *e = (struct pnvme_error_log *)buf;
		size = EMU_ERRLOG_LEN * sizeof(*e);
		memset(buf, 0, (size_t)size);
		for (uint64_t i = 0; i < EMU_ERRLOG_LEN && i < emu->error_count; i++)
			e[i] = emu->errlog[(emu->error_count - 1 - i) % EMU_ERRLOG_LEN];
		break;
	}
	case PNVME_LOG_SMART:
		size = sizeof(struct pnvme_smart_log);
		memset(buf, 0, (size_t)size);
		smart_fill(emu, (struct pnvme_smart_log *)buf);
		break;
	default:
		return ST_LOG_INVALID;
	}
	if ((off & 3u) || off > size)
		return ST_INVALID_FIELD;
	return prp_to_host(emu, req, buf + off, size - off, len);
}

/* Base 2.0 §5.27.1: the features this controller keeps. */
static uint32_t *feature_slot(struct pnvme_emu *emu, uint32_t fid)
{
	switch (fid) {
	case PNVME_FEAT_ARBITRATION:   return &emu->feat_arb;
	case PNVME_FEAT_POWER_MGMT:    return &emu->feat_pm;
	case PNVME_FEAT_ERR_RECOVERY:  return &emu->feat_err_rec;
	case PNVME_FEAT_VOLATILE_WC:   return &emu->feat_vwc;
	case PNVME_FEAT_NUM_QUEUES:    return &emu->feat_nq;
	case PNVME_FEAT_IRQ_COALESCE:  return &emu->feat_irq_coal;
	case PNVME_FEAT_ASYNC_EVENT:   return &emu->feat_aec;
	case PNVME_FEAT_TEMP_THRESH:   return &emu->feat_temp_over;
	default:                       return NULL;
	}
}

static void features_default(struct pnvme_emu *emu)
{
	uint32_t nq = emu->cfg.nr_io_queues - 1;

	emu->feat_arb = 0;
	emu->feat_pm = 0;
	emu->feat_temp_over = EMU_WCTEMP_K;
	emu->feat_temp_under = 0;
	emu->feat_err_rec = 0;
	emu->feat_vwc = 1;
	emu->feat_nq = nq | (nq << 16);
	emu->feat_irq_coal = 0;
	emu->feat_aec = 0;
}

/* Temperature Threshold (Base 2.0 §5.27.1.4): TMPTH 15:0, TMPSEL 19:16, THSEL 21:20. */
static uint32_t *temp_slot(struct pnvme_emu *emu, uint32_t cdw11)
{
	uint32_t tmpsel = (cdw11 >> 16) & 0xfu, thsel = (cdw11 >> 20) & 0x3u;
	if (tmpsel != 0 || thsel > 1)
		return NULL;
	return thsel == 0 ? &emu->feat_temp_over : &emu->feat_temp_under;
}

/* Base 2.0 §5.15: Get Features (SEL: current, default, saved = default, capabilities). */
static uint16_t exec_get_features(struct pnvme_emu *emu, struct emu_req *req)
{
	uint32_t fid = PNVME_GET(req->cmd.cdw10, PNVME_FEAT_FID);
	uint32_t sel = PNVME_GET(req->cmd.cdw10, PNVME_FEAT_SEL);
	uint32_t *slot = feature_slot(emu, fid);

	if (slot == NULL || sel > 3)
		return ST_INVALID_FIELD;
	if (fid == PNVME_FEAT_TEMP_THRESH) {
		slot = temp_slot(emu, req->cmd.cdw11);
		if (slot == NULL)
			return ST_INVALID_FIELD;
	}
	if (sel == 3) {
		req->dw0 = 1u << 2;                 /* changeable, not saveable */
	} else if (sel == 0) {
		req->dw0 = *slot;
	} else {
		/* default, and saved (nothing is saveable, so saved = default) */
		switch (fid) {
		case PNVME_FEAT_VOLATILE_WC: req->dw0 = 1; break;
		case PNVME_FEAT_NUM_QUEUES:
			req->dw0 = (emu->cfg.nr_io_queues - 1) | ((emu->cfg.nr_io_queues - 1) << 16);
			break;
		case PNVME_FEAT_TEMP_THRESH:
			req->dw0 = slot == &emu->feat_temp_over ? EMU_WCTEMP_K : 0;
			break;
		default: req->dw0 = 0; break;
		}
	}
	return 0;
}

/* Base 2.0 §5.27: Set Features. */
static uint16_t exec_set_features(struct pnvme_emu *emu, struct emu_req *req)
{
	uint32_t fid = PNVME_GET(req->cmd.cdw10, PNVME_FEAT_FID);
	uint32_t v = req->cmd.cdw11;
	uint32_t *slot = feature_slot(emu, fid);

	if (slot == NULL)
		return ST_INVALID_FIELD;
	if (req->cmd.cdw10 & PNVME_FEAT_SV)
		return ST_NOT_SAVEABLE;
	switch (fid) {
	case PNVME_FEAT_NUM_QUEUES: {
		/* Base 2.0 §5.27.1.5: only before any I/O queue exists */
		uint32_t nsq = PNVME_GET(v, PNVME_NUMQ_NSQ), ncq = PNVME_GET(v, PNVME_NUMQ_NCQ);
		uint32_t max = emu->cfg.nr_io_queues - 1;
		if (emu->io_queues_created)
			return ST_CMD_SEQ;
		if (nsq == 0xffff || ncq == 0xffff)
			return ST_INVALID_FIELD;
		emu->feat_nq = (nsq < max ? nsq : max) | ((ncq < max ? ncq : max) << 16);
		req->dw0 = emu->feat_nq;
		return 0;
	}
	case PNVME_FEAT_POWER_MGMT:
		if ((v & 0x1fu) > 0)                /* NPSS = 0: only power state 0 */
			return ST_INVALID_FIELD;
		*slot = v & 0xffu;
		return 0;
	case PNVME_FEAT_TEMP_THRESH:
		slot = temp_slot(emu, v);
		if (slot == NULL)
			return ST_INVALID_FIELD;
		*slot = v & 0xffffu;
		return 0;
	case PNVME_FEAT_ERR_RECOVERY:
		if (v & (1u << 16))                 /* DULBE: not supported (NSFEAT bit 2 = 0) */
			return ST_INVALID_FIELD;
		*slot = v & 0xffffu;
		return 0;
	case PNVME_FEAT_VOLATILE_WC:
		*slot = v & 1u;
		return 0;
	default:
		*slot = v;
		return 0;
	}
}

static bool qid_ok(const struct pnvme_emu *emu, uint32_t qid)
{
	return qid >= 1 && qid <= emu->cfg.nr_io_queues;
}

/* Base 2.0 §5.4: Create I/O Completion Queue */
static uint16_t exec_create_cq(struct pnvme_emu *emu, struct emu_req *req)
{
	const struct pnvme_sqe *c = &req->cmd;
	uint32_t qid = PNVME_GET(c->cdw10, PNVME_CREATE_Q_QID);
	uint32_t qsize = PNVME_GET(c->cdw10, PNVME_CREATE_Q_QSIZE) + 1u;
	uint32_t iv = PNVME_GET(c->cdw11, PNVME_CREATE_CQ_IV);
	struct emu_cq *cq;
	void *ring;

	if (!qid_ok(emu, qid) || emu->cqs[qid].valid)
		return ST_QID_INVALID;
	if (qsize < 2 || qsize > mqes_now(emu) + 1u ||
	    PNVME_GET(emu->cc, PNVME_CC_IOCQES) != 4)
		return ST_QUEUE_SIZE;
	if (!(c->cdw11 & PNVME_CREATE_CQ_PC))        /* CAP.CQR = 1 */
		return ST_INVALID_FIELD;
	if ((c->cdw11 & PNVME_CREATE_CQ_IEN) && iv > emu->cfg.nr_io_queues)
		return ST_IV_INVALID;
	if (c->prp1 & PAGE_MASK_)
		return ST_INVALID_FIELD;
	ring = xlate(emu, c->prp1, (uint64_t)qsize * sizeof(struct pnvme_cqe));
	if (ring == NULL)
		return ST_INVALID_FIELD;

	cq = &emu->cqs[qid];
	cq_destroy(cq);
	cq->ring = ring;
	cq->size = qsize;
	cq->phase = 1;
	cq->qid = (uint16_t)qid;
	cq->iova = c->prp1;
	cq->valid = true;
	cq->db = cq_db_now(emu, qid);           /* head 0: the host's next write shows */
	cq_shadow_attach(emu, cq, false);
	emu->io_queues_created = true;
	if (qid > emu->hi_qid)
		emu->hi_qid = qid;
	return 0;
}

/* Base 2.0 §5.5: Create I/O Submission Queue */
static uint16_t exec_create_sq(struct pnvme_emu *emu, struct emu_req *req)
{
	const struct pnvme_sqe *c = &req->cmd;
	uint32_t qid = PNVME_GET(c->cdw10, PNVME_CREATE_Q_QID);
	uint32_t qsize = PNVME_GET(c->cdw10, PNVME_CREATE_Q_QSIZE) + 1u;
	uint32_t cqid = PNVME_GET(c->cdw11, PNVME_CREATE_SQ_CQID);
	struct emu_sq *sq;
	void *ring;

	if (!qid_ok(emu, qid) || emu->sqs[qid].valid)
		return ST_QID_INVALID;
	if (cqid == 0 || cqid > emu->cfg.nr_io_queues || !emu->cqs[cqid].valid)
		return ST_CQ_INVALID;
	if (qsize < 2 || qsize > mqes_now(emu) + 1u ||
	    PNVME_GET(emu->cc, PNVME_CC_IOSQES) != 6)
		return ST_QUEUE_SIZE;
	if (!(c->cdw11 & PNVME_CREATE_SQ_PC))
		return ST_INVALID_FIELD;
	if (c->prp1 & PAGE_MASK_)
		return ST_INVALID_FIELD;
	ring = xlate(emu, c->prp1, (uint64_t)qsize * sizeof(struct pnvme_sqe));
	if (ring == NULL)
		return ST_INVALID_FIELD;

	sq = &emu->sqs[qid];
	memset(sq, 0, sizeof(*sq));
	sq->ring = ring;
	sq->size = qsize;
	sq->qid = (uint16_t)qid;
	sq->cqid = (uint16_t)cqid;
	sq->iova = c->prp1;
	sq->valid = true;
	emu->cqs[cqid].nr_sqs++;
	sq->db = sq_db_now(emu, qid);           /* tail 0: the host's next write shows */
	sq_shadow_attach(emu, sq, false);
	emu->io_queues_created = true;
	if (qid > emu->hi_qid)
		emu->hi_qid = qid;
	return 0;
}

static void aborts_drop_sq(struct pnvme_emu *emu, uint16_t sqid)
{
	for (uint32_t i = 0; i < emu->nr_aborts;) {
		if (emu->aborts[i].sqid == sqid)
			emu->aborts[i] = emu->aborts[--emu->nr_aborts];
		else
			i++;
	}
}

/* Base 2.0 §5.6: Delete I/O Submission Queue; held commands end with Aborted SQ Deleted. */
static uint16_t exec_delete_sq(struct pnvme_emu *emu, struct emu_req *req)
{
	uint32_t qid = PNVME_GET(req->cmd.cdw10, PNVME_CREATE_Q_QID);
	struct emu_sq *sq;

	if (!qid_ok(emu, qid) || !emu->sqs[qid].valid)
		return ST_QID_INVALID;
	sq = &emu->sqs[qid];
	for (uint32_t i = 0; i < emu->nr_delayed;) {
		struct emu_cpl c = emu->delayed[i].cpl;
		if (c.sqid != qid) {
			i++;
			continue;
		}
		delayed_remove(emu, i);
		cpl_now(emu, sq, c.cid, ST_ABORT_SQ_DEL);
	}
	aborts_drop_sq(emu, (uint16_t)qid);
	sq_destroy(emu, sq);
	hi_qid_update(emu);
	return 0;
}

/* Base 2.0 §5.7: Delete I/O Completion Queue */
static uint16_t exec_delete_cq(struct pnvme_emu *emu, struct emu_req *req)
{
	uint32_t qid = PNVME_GET(req->cmd.cdw10, PNVME_CREATE_Q_QID);

	if (!qid_ok(emu, qid) || !emu->cqs[qid].valid)
		return ST_QID_INVALID;
	if (emu->cqs[qid].nr_sqs != 0)
		return ST_QDEL_INVALID;
	cq_destroy(&emu->cqs[qid]);
	hi_qid_update(emu);
	return 0;
}

/*
 * Is command `cid` sitting in SQ `sq` between the head and the doorbell? The
 * ring is looked up in the IOVA table afresh, for its whole length: a queue
 * whose ring memory was unmapped has nothing the controller can see (and is
 * never read through a stale or NULL pointer).
 */
static bool sq_holds_unfetched(struct pnvme_emu *emu, struct emu_sq *sq, uint16_t cid)
{
	uint32_t db = sq_db_now(emu, sq->qid);
	/* A register value not taken yet is the newest tail (sq_tail_fetch()). */
	uint32_t tail = db != sq->db && !sq->sdb_used ? db : sq->tail;
	const struct pnvme_sqe *ring;

	if (sq->ring == NULL || sq->size == 0)
		return false;
	ring = (const struct pnvme_sqe *)xlate(emu, sq->iova,
					       (uint64_t)sq->size * sizeof(struct pnvme_sqe));
	if (ring == NULL)
		return false;
	if (sq->sdb_p != NULL && (sq->sdb_used || shadow_load(sq->sdb_p) != sq->sdb))
		tail = shadow_load(sq->sdb_p);
	if (tail >= sq->size)
		tail = sq->tail;
	for (uint32_t i = sq->head; i != tail; i = i + 1 == sq->size ? 0 : i + 1)
		if (ring[i].cid == cid)
			return true;
	return false;
}

/* Base 2.0 §5.1: Abort. DW0 bit 0 = 0: the command was aborted. */
static uint16_t exec_abort(struct pnvme_emu *emu, struct emu_req *req)
{
	uint16_t sqid = (uint16_t)PNVME_GET(req->cmd.cdw10, PNVME_ABORT_SQID);
	uint16_t cid = (uint16_t)PNVME_GET(req->cmd.cdw10, PNVME_ABORT_CID);
	struct emu_sq *sq;

	req->dw0 = PNVME_ABORT_NOT_ABORTED;
	if (req->ignore_abort) {
		log_debug("emu: fault: ignoring Abort of sq %u cid %u", sqid, cid);
		return 0;
	}
	if (sqid > emu->cfg.nr_io_queues || !emu->sqs[sqid].valid)
		return 0;
	sq = &emu->sqs[sqid];
	/* a completion held back by a delay fault */
	for (uint32_t i = 0; i < emu->nr_delayed; i++) {
		if (emu->delayed[i].cpl.sqid == sqid && emu->delayed[i].cpl.cid == cid) {
			delayed_remove(emu, i);
			cpl_now(emu, sq, cid, ST_ABORT_REQ);
			req->dw0 = 0;
			return 0;
		}
	}
	/* an outstanding Asynchronous Event Request */
	if (sqid == 0) {
		for (uint32_t i = 0; i < emu->nr_aer; i++) {
			if (emu->aer_cid[i] == cid) {
				emu->aer_cid[i] = emu->aer_cid[--emu->nr_aer];
				cpl_now(emu, sq, cid, ST_ABORT_REQ);
				req->dw0 = 0;
				return 0;
			}
		}
	}
	/* not fetched yet: remember it, complete it when it is fetched */
	if (emu->nr_aborts < EMU_MAX_ABORTS && sq_holds_unfetched(emu, sq, cid)) {
		emu->aborts[emu->nr_aborts].sqid = sqid;
		emu->aborts[emu->nr_aborts].cid = cid;
		emu->nr_aborts++;
		req->dw0 = 0;
	}
	return 0;
}

/* Base 2.0 §5.2: Asynchronous Event Request: held; no events are generated. */
static uint16_t exec_aer(struct pnvme_emu *emu, struct emu_req *req)
{
	if (emu->nr_aer > EMU_AERL)
		return ST_AER_LIMIT;
	emu->aer_cid[emu->nr_aer++] = req->cmd.cid;
	req->hold = true;
	return 0;
}

static uint16_t exec_nop(struct pnvme_emu *emu, struct emu_req *req)
{
	(void)emu;
	(void)req;
	return 0;
}

/*
 * Base 2.0 §5.8: Doorbell Buffer Config. PRP1 is the Shadow Doorbell buffer,
 * PRP2 the EventIdx buffer, one memory page each, page aligned (else Invalid
 * Field in Command; the two may not be the same page either). An address
 * outside the IOVA table is a Data Transfer Error. Accepted whether or not I/O
 * queues exist, like QEMU's controller: existing I/O queues are attached at
 * once, their current tail/head written into the shadow entries. A second
 * config replaces the first. A controller reset forgets it.
 */
static uint16_t exec_dbbuf_config(struct pnvme_emu *emu, struct emu_req *req)
{
	uint64_t dbs = req->cmd.prp1, eis = req->cmd.prp2;
	uint32_t *d, *e;

	if ((dbs & PAGE_MASK_) || (eis & PAGE_MASK_) || dbs == eis)
		return ST_INVALID_FIELD;
	d = (uint32_t *)xlate(emu, dbs, PNVME_PAGE_SIZE);
	e = (uint32_t *)xlate(emu, eis, PNVME_PAGE_SIZE);
	if (d == NULL || e == NULL)
		return ST_XFER_ERROR;
	emu->dbbuf = d;
	emu->eventidx = e;
	emu->dbbuf_iova = dbs;
	emu->eventidx_iova = eis;
	emu->dbbuf_on = true;
	for (uint32_t q = 1; q <= emu->hi_qid; q++) {
		if (emu->cqs[q].valid)
			cq_shadow_attach(emu, &emu->cqs[q], true);
		if (emu->sqs[q].valid)
			sq_shadow_attach(emu, &emu->sqs[q], true);
	}
	log_debug("emu: shadow doorbells at %#llx, EventIdx at %#llx",
		  (unsigned long long)dbs, (unsigned long long)eis);
	return 0;
}

/* Parse an admin command: validate fields, pick the execute function. */
static uint16_t parse_admin(struct pnvme_emu *emu, struct emu_req *req)
{
	const struct pnvme_sqe *c = &req->cmd;

	switch (c->opc) {
	case PNVME_ADM_IDENTIFY:
		if (PNVME_IDENTIFY_DATA_SIZE > emu->max_xfer)
			return ST_INVALID_FIELD;
		req->execute = exec_identify;
		return 0;
	case PNVME_ADM_GET_LOG_PAGE: {
		uint64_t numd = ((uint64_t)PNVME_GET(c->cdw11, PNVME_GLP_NUMDU) << 16 |
				 PNVME_GET(c->cdw10, PNVME_GLP_NUMDL)) + 1u;
		if (numd * 4u > emu->max_xfer)
			return ST_INVALID_FIELD;
		req->execute = exec_get_log_page;
		return 0;
	}
	case PNVME_ADM_GET_FEATURES:
		req->execute = exec_get_features;
		return 0;
	case PNVME_ADM_SET_FEATURES:
		req->execute = exec_set_features;
		return 0;
	case PNVME_ADM_CREATE_CQ:
		req->execute = exec_create_cq;
		return 0;
	case PNVME_ADM_CREATE_SQ:
		req->execute = exec_create_sq;
		return 0;
	case PNVME_ADM_DELETE_SQ:
		req->execute = exec_delete_sq;
		return 0;
	case PNVME_ADM_DELETE_CQ:
		req->execute = exec_delete_cq;
		return 0;
	case PNVME_ADM_ABORT:
		req->execute = exec_abort;
		return 0;
	case PNVME_ADM_ASYNC_EVENT:
		req->execute = exec_aer;
		return 0;
	case PNVME_ADM_KEEP_ALIVE:
		req->execute = exec_nop;
		return 0;
	case PNVME_ADM_DBBUF_CONFIG:
		if (!emu->cfg.dbbuf)
			return ST_INVALID_OPC;
		req->execute = exec_dbbuf_config;
		return 0;
	default:
		return ST_INVALID_OPC;
	}
}

/* Checks common to every command (Base 2.0 §4.1: Common Command Format). */
static uint16_t req_init(struct pnvme_emu *emu, struct emu_req *req)
{
	if (unlikely(req->cmd.flags != 0))      /* fused operations, SGLs: unsupported */
		return ST_INVALID_FIELD;
	if (req->sq->qid == 0)
		return parse_admin(emu, req);
	return parse_io(emu, req);
}

static bool abort_take(struct pnvme_emu *emu, uint16_t sqid, uint16_t cid)
{
	for (uint32_t i = 0; i < emu->nr_aborts; i++) {
		if (emu->aborts[i].sqid == sqid && emu->aborts[i].cid == cid) {
			emu->aborts[i] = emu->aborts[--emu->nr_aborts];
			return true;
		}
	}
	return false;
}

static void sq_tail_take(struct pnvme_emu *emu, struct emu_sq *sq, uint32_t v)
{
	if (unlikely(v >= sq->size)) {
		/* Base 2.0 §3.1.4.22: Invalid Doorbell Write Value; ignored */
		emu->bad_doorbells++;
		log_debug("emu: SQ %u tail doorbell %u out of range", sq->qid, v);
	} else {
		sq->tail = v;
	}
}

/*
 * The tail the host has published: the doorbell register and, with DBBUF,
 * the shadow entry, each counted when it moved. Once the host has written the
 * shadow entry it is the authority: the host stores it before the register,
 * so a register value can arrive after a newer shadow value was consumed, and
 * taking it would move the tail backwards. Until then register values are
 * taken as they come (a host that keeps to the registers still works).
 */
static void sq_tail_fetch(struct pnvme_emu *emu, struct emu_sq *sq)
{
	uint32_t db = sq_db_now(emu, sq->qid);
	uint32_t v = sq->tail;
	bool moved = false;

	if (db != sq->db) {
		sq->db = db;
		emu->st.sq_doorbells++;
		if (!sq->sdb_used) {
			v = db;
			moved = true;
		}
	}
	if (sq->sdb_p != NULL) {
		uint32_t s = shadow_load(sq->sdb_p);
		if (s != sq->sdb) {
			sq->sdb = s;
			sq->sdb_used = true;
			emu->st.shadow_sq_updates++;
			v = s;
			moved = true;
		}
	}
	if (moved)
		sq_tail_take(emu, sq, v);
}

/* Fetch and run commands from head to tail. */
static void sq_run(struct pnvme_emu *emu, struct emu_sq *sq)
{
	struct emu_cq *cq = &emu->cqs[sq->cqid];
	struct emu_req req;

	while (sq->head != sq->tail && sq->ring != NULL && sq->valid) {
		if (unlikely(cq->ovf_len != 0))      /* CQ full: fetch no more */
			break;
		memcpy(&req.cmd, &sq->ring[sq->head], sizeof(req.cmd));
		sq->head = sq->head + 1 == sq->size ? 0 : sq->head + 1;
		emu->st.commands++;
		req.sq = sq;
		req.ns = NULL;
		req.dw0 = 0;
		req.dw1 = 0;
		req.err_lba = 0;
		req.delay_us = 0;
		req.hold = req.drop = req.delay = req.ignore_abort = false;
		req.fx = 0;

		uint16_t status;
		if (unlikely(emu->nr_aborts) && abort_take(emu, sq->qid, req.cmd.cid)) {
			status = ST_ABORT_REQ;
		} else {
			status = 0;
			if (unlikely(emu->nr_cmd_faults))
				status = fault_match(emu, &req);
			if (likely(status == 0)) {
				status = req_init(emu, &req);
				if (likely(status == 0))
					status = req.execute(emu, &req);
			}
		}
		if (unlikely(req.hold) && status == 0)
			continue;
		req_finish(emu, &req, status);
	}
}

/*
 * Run what the host published. With DBBUF, then set EventIdx = the entry
 * consumed up to, so the host rings the register only when it moves past it,
 * and look at the shadow tail once more (see event_idx_publish()).
 */
static void sq_process(struct pnvme_emu *emu, struct emu_sq *sq)
{
	sq_tail_fetch(emu, sq);
	for (unsigned pass = 0;; pass++) {
		uint32_t v;

		sq_run(emu, sq);
		if (likely(sq->ei_p == NULL) || sq->ei == sq->head)
			return;
		sq->ei = sq->head;
		v = event_idx_publish(sq->ei_p, sq->sdb_p, sq->ei);
		if (v == sq->sdb)
			return;
		sq->sdb = v;
		sq->sdb_used = true;
		emu->st.shadow_sq_updates++;
		sq_tail_take(emu, sq, v);
		if (pass + 1 == EMU_EI_PASSES)
			return;                  /* the next step runs the rest */
	}
}

/*
 * A CQ head the host published, from the register or the shadow entry (the
 * same rule as sq_tail_fetch()). With DBBUF, EventIdx = the head seen, then
 * one more look at the shadow head.
 */
static bool cq_process(struct pnvme_emu *emu, struct emu_cq *cq)
{
	uint32_t db = cq_db_now(emu, cq->qid);
	uint32_t v = cq->head;
	bool moved = false, rung = false;

	if (db != cq->db) {
		cq->db = db;
		emu->st.cq_doorbells++;
		rung = true;
		if (!cq->sdb_used) {
			v = db;
			moved = true;
		}
	}
	if (cq->sdb_p != NULL) {
		uint32_t s = shadow_load(cq->sdb_p);
		if (s != cq->sdb) {
			cq->sdb = s;
			cq->sdb_used = true;
			emu->st.shadow_cq_updates++;
			v = s;
			moved = true;
		}
	}
	if (!moved)
		return rung;
	if (cq_head_take(emu, cq, v) && cq->ei_p != NULL && cq->ei != cq->head) {
		cq->ei = cq->head;
		v = event_idx_publish(cq->ei_p, cq->sdb_p, cq->ei);
		if (v != cq->sdb) {
			cq->sdb = v;
			cq->sdb_used = true;
			emu->st.shadow_cq_updates++;
			(void)cq_head_take(emu, cq, v);
		}
	}
	if (cq->ovf_len)
		cq_drain(emu, cq);
	return true;
}

/* ------------------------------------------------------------------------ */
/* Controller state (Base 2.0 §3.5: initialization, reset, shutdown)        */
/* ------------------------------------------------------------------------ */

/* Base 2.0 §3.5.1, controller side of steps 4-5: admin queues from AQA/ASQ/ACQ, then RDY. */
static void ctrl_enable(struct pnvme_emu *emu)
{
	uint32_t aqa = reg_read(emu, PNVME_REG_AQA);
	uint64_t asq = mmio_read64(emu->bar, PNVME_REG_ASQ);
	uint64_t acq = mmio_read64(emu->bar, PNVME_REG_ACQ);
	uint32_t sqs = PNVME_GET(aqa, PNVME_AQA_ASQS) + 1u;
	uint32_t cqs = PNVME_GET(aqa, PNVME_AQA_ACQS) + 1u;
	uint32_t cc = emu->cc;
	void *sring, *cring;

	emu->st.enables++;
	emu->enabled = true;
	emu->cfs = false;                       /* a CFS not pinned by a fault ends here */
	queues_reset(emu);
	features_default(emu);

	for (unsigned i = 0; i < EMU_MAX_FAULTS; i++) {
		struct emu_fault_slot *s = &emu->faults[i];
		if (s->armed && s->f.kind == PNVME_EMU_FAULT_CFS_ON_ENABLE) {
			s->armed = false;                /* one shot */
			log_debug("emu: fault: CFS on enable");
			goto fatal;
		}
	}
	if (fault_armed(emu, PNVME_EMU_FAULT_CFS))
		goto fatal;
	if (PNVME_GET(cc, PNVME_CC_MPS) != 0 || PNVME_GET(cc, PNVME_CC_CSS) != PNVME_CC_CSS_NVM ||
	    PNVME_GET(cc, PNVME_CC_AMS) != PNVME_CC_AMS_RR) {
		log_debug("emu: enable: unsupported CC %#x", cc);
		goto fatal;
	}
	if (sqs < 2 || cqs < 2 || (asq & PAGE_MASK_) || (acq & PAGE_MASK_)) {
		log_debug("emu: enable: bad AQA %#x / ASQ %#llx / ACQ %#llx", aqa,
			  (unsigned long long)asq, (unsigned long long)acq);
		goto fatal;
	}
	sring = xlate(emu, asq, (uint64_t)sqs * sizeof(struct pnvme_sqe));
	cring = xlate(emu, acq, (uint64_t)cqs * sizeof(struct pnvme_cqe));
	if (sring == NULL || cring == NULL) {
		log_debug("emu: enable: admin queues not in the IOVA table");
		goto fatal;
	}
	emu->sqs[0].ring = sring;
	emu->sqs[0].size = sqs;
	emu->sqs[0].iova = asq;
	emu->sqs[0].valid = true;
	emu->sqs[0].db = sq_db_now(emu, 0);      /* (see sq_db_now()) */
	emu->cqs[0].db = cq_db_now(emu, 0);
	emu->cqs[0].ring = cring;
	emu->cqs[0].size = cqs;
	emu->cqs[0].iova = acq;
	emu->cqs[0].phase = 1;
	emu->cqs[0].nr_sqs = 1;
	emu->cqs[0].valid = true;

	if (fault_armed(emu, PNVME_EMU_FAULT_NEVER_READY)) {
		log_debug("emu: fault: never ready");
		emu->ready = false;
	} else {
		emu->ready = true;
	}
	csts_update(emu);
	return;
fatal:
	emu->cfs = true;
	emu->ready = false;
	csts_update(emu);
}

/* Base 2.0 §3.7.2: controller reset on CC.EN 1 -> 0. */
static void ctrl_disable(struct pnvme_emu *emu)
{
	if (emu->enabled && PNVME_GET(emu->csts, PNVME_CSTS_SHST) != PNVME_CSTS_SHST_COMPLETE)
		emu->unsafe_shutdowns++;
	emu->enabled = false;
	queues_reset(emu);
	emu->ready = false;
	emu->shut = false;
	emu->cfs = fault_armed(emu, PNVME_EMU_FAULT_CFS);   /* a pinned CFS stays */
	emu->csts = 0;
	csts_update(emu);
}

/* Base 2.0 §3.6: shutdown notification. */
static void ctrl_shutdown(struct pnvme_emu *emu)
{
	uint32_t shst = PNVME_CSTS_SHST_COMPLETE;

	if (fault_armed(emu, PNVME_EMU_FAULT_NO_SHUTDOWN)) {
		log_debug("emu: fault: ignoring shutdown");
		shst = PNVME_CSTS_SHST_OCCURING;
	} else {
		for (uint32_t i = 0; i < emu->cfg.nr_ns; i++)
			media_sync(emu, &emu->ns[i]);
		emu->shut = true;
	}
	emu->csts = (emu->csts & ~(PNVME_CSTS_SHST_MASK << PNVME_CSTS_SHST_SHIFT)) |
		    PNVME_SET(PNVME_CSTS_SHST, shst);
	csts_update(emu);
}

static bool cc_process(struct pnvme_emu *emu)
{
	uint32_t cc = reg_read(emu, PNVME_REG_CC);
	uint32_t old = emu->cc;

	if (cc == old)
		return false;
	/* AQA/ASQ/ACQ (and the rings) were written before CC: the acquire load of
	 * CC above orders our reads of them after it */
	emu->cc = cc;
	if (PNVME_GET(old, PNVME_CC_EN) && !PNVME_GET(cc, PNVME_CC_EN))
		ctrl_disable(emu);
	else if (!PNVME_GET(old, PNVME_CC_EN) && PNVME_GET(cc, PNVME_CC_EN))
		ctrl_enable(emu);
	if (!PNVME_GET(old, PNVME_CC_SHN) && PNVME_GET(cc, PNVME_CC_SHN)) {
		ctrl_shutdown(emu);
	} else if (PNVME_GET(old, PNVME_CC_SHN) && !PNVME_GET(cc, PNVME_CC_SHN)) {
		emu->shut = false;
		emu->csts &= ~(PNVME_CSTS_SHST_MASK << PNVME_CSTS_SHST_SHIFT);
		csts_update(emu);
	}
	return true;
}

/* All-ones state: registers read FFFFFFFFh until the fault is cleared and the host disables. */
static void gone_process(struct pnvme_emu *emu)
{
	uint32_t cc;

	if (fault_armed(emu, PNVME_EMU_FAULT_ALL_ONES)) {
		bar_fill(emu, UINT32_MAX);
		return;
	}
	cc = reg_read(emu, PNVME_REG_CC);
	if (PNVME_GET(cc, PNVME_CC_EN))
		return;
	emu->gone = false;
	regs_init(emu);
	reg_write(emu, PNVME_REG_CC, cc);
	emu->cc = cc;
	emu->enabled = true;                /* so the reset below runs in full */
	ctrl_disable(emu);
}

/* One pass over everything; returns true if anything happened. */
static bool step_locked(struct pnvme_emu *emu)
{
	bool busy;

	emu->step_posted = 0;
	if (unlikely(emu->gone)) {
		gone_process(emu);
		return false;
	}
	if (unlikely(emu->cap_dirty))
		cap_write(emu);
	busy = cc_process(emu);
	if (!emu->running)
		return busy;

	emu->reordering = fault_armed(emu, PNVME_EMU_FAULT_REORDER);
	for (uint32_t q = 0; q <= emu->hi_qid; q++)
		if (emu->cqs[q].valid && emu->cqs[q].ring != NULL)
			busy |= cq_process(emu, &emu->cqs[q]);
	if (unlikely(emu->nr_delayed)) {
		busy = true;
		delayed_run(emu);
	}
	for (uint32_t q = 0; q <= emu->hi_qid && emu->running; q++) {
		struct emu_sq *sq = &emu->sqs[q];
		if (sq->valid && sq->ring != NULL) {
			uint64_t before = emu->st.commands;
			sq_process(emu, sq);
			busy |= emu->st.commands != before;
		}
	}
	if (unlikely(emu->reordering)) {
		while (emu->rstack_len)
			cpl_post(emu, &emu->rstack[--emu->rstack_len]);
		emu->reordering = false;
	}
	return busy || emu->step_posted;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */
/* ------------------------------------------------------------------------ */

static void emu_lock(struct pnvme_emu *emu)
{
	__atomic_add_fetch(&emu->waiters, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&emu->lock);
	__atomic_sub_fetch(&emu->waiters, 1, __ATOMIC_RELAXED);
}

static void emu_unlock(struct pnvme_emu *emu)
{
	pthread_mutex_unlock(&emu->lock);
}

int pnvme_emu_step(struct pnvme_emu *emu)
{
	int n;

	if (emu == NULL)
		return pnvme_fail(-EINVAL, "emu step: NULL emulator");
	emu_lock(emu);
	step_locked(emu);
	n = (int)emu->step_posted;
	emu_unlock(emu);
	return n;
}

/*
 * The emulator thread: step while there is work; when idle, spin a little,
 * then yield (a preempted host thread gets the core at once), then sleep with
 * exponential backoff (1 us .. 1 ms) so an idle emulator costs almost nothing.
 * Any work resets it to spinning.
 */
static void *emu_thread(void *arg)
{
	struct pnvme_emu *emu = arg;
	uint64_t sleep_ns = EMU_SLEEP_MIN_NS;
	unsigned idle = 0;

	/* short sleeps should be short: the default slack is 50 us */
	(void)prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
	while (!__atomic_load_n(&emu->stop, __ATOMIC_ACQUIRE)) {
		bool busy;

		/* let map/unmap/inject callers in between steps */
		if (__atomic_load_n(&emu->waiters, __ATOMIC_RELAXED))
			sched_yield();
		pthread_mutex_lock(&emu->lock);
		busy = step_locked(emu);
		pthread_mutex_unlock(&emu->lock);
		if (busy) {
			idle = 0;
			sleep_ns = EMU_SLEEP_MIN_NS;
			continue;
		}
		if (idle < EMU_SPIN_ITERS) {
			idle++;
			pnvme_cpu_relax();
			continue;
		}
		if (idle < EMU_SPIN_ITERS + EMU_YIELD_ITERS) {
			idle++;
			sched_yield();
			continue;
		}
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)sleep_ns };
		nanosleep(&ts, NULL);
		if (sleep_ns < EMU_SLEEP_MAX_NS)
			sleep_ns *= 2;
	}
	return NULL;
}

/*
 * Namespace media. RAM: one anonymous mapping per namespace, and one for its
 * metadata. File: the namespaces' data back to back (ns * size bytes), then
 * their metadata back to back (ns * nlba * ms bytes), nlba * ms per namespace.
 */
static int media_open(struct pnvme_emu *emu)
{
	const struct pnvme_emu_config *c = &emu->cfg;
	uint64_t meta = c->ns_size / c->lba_size * c->ms;
	uint64_t total = (c->ns_size + meta) * c->nr_ns;

	if (total > SIZE_MAX)
		return pnvme_fail(-ENOMEM, "emu: namespaces too large");
	if (c->file[0] != '\0') {
		struct stat sb;
		int fd = open(c->file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return pnvme_fail(-errno, "emu: open %s: %s", c->file, strerror(errno));
		emu->fd = fd;
		if (fstat(fd, &sb) != 0)
			return pnvme_fail(-errno, "emu: stat %s: %s", c->file, strerror(errno));
		if ((uint64_t)sb.st_size < total && ftruncate(fd, (off_t)total) != 0)
			return pnvme_fail(-errno, "emu: grow %s: %s", c->file, strerror(errno));
		void *p = mmap(NULL, (size_t)total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			return pnvme_fail(-errno, "emu: mmap %s: %s", c->file, strerror(errno));
		emu->file_map = p;
		emu->file_len = (size_t)total;
		for (uint32_t i = 0; i < c->nr_ns; i++) {
			emu->ns[i].media = (uint8_t *)p + (size_t)(c->ns_size * i);
			if (meta != 0)
				emu->ns[i].meta = (uint8_t *)p + (size_t)(c->ns_size * c->nr_ns) +
						  (size_t)(meta * i);
		}
	} else {
		for (uint32_t i = 0; i < c->nr_ns; i++) {
			void *p = mmap(NULL, (size_t)c->ns_size, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (p == MAP_FAILED)
				return pnvme_fail(-ENOMEM, "emu: no memory for namespace %u", i + 1);
			emu->ns[i].media = p;
			if (meta == 0)
				continue;
			p = mmap(NULL, (size_t)meta, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (p == MAP_FAILED)
				return pnvme_fail(-ENOMEM, "emu: no memory for namespace %u metadata",
						  i + 1);
			emu->ns[i].meta = p;
		}
	}
	for (uint32_t i = 0; i < c->nr_ns; i++) {
		emu->ns[i].bytes = c->ns_size;
		emu->ns[i].nlba = c->ns_size >> emu->lba_shift;
		emu->ns[i].meta_bytes = meta;
	}
	return 0;
}

int pnvme_emu_create(const char *spec, struct pnvme_emu **out)
{
	struct pnvme_emu_config cfg;
	struct pnvme_emu *emu;
	size_t dbs;
	int rc;

	if (out == NULL)
		return pnvme_fail(-EINVAL, "emu: no output pointer");
	*out = NULL;
	rc = pnvme_emu_parse(spec, &cfg);
	if (rc != 0)
		return rc;
	emu = aligned_alloc(64, ALIGN_UP(sizeof(*emu), (size_t)64));
	if (emu == NULL)
		return pnvme_fail(-ENOMEM, "emu: out of memory");
	memset(emu, 0, sizeof(*emu));
	emu->cfg = cfg;
	emu->fd = -1;
	emu->dstrd = cfg.dstrd;
	emu->lba_shift = (uint32_t)__builtin_ctz(cfg.lba_size);
	emu->ms = cfg.ms;
	emu->pif.type = cfg.pi;
	emu->pif.lba_size = cfg.lba_size;
	emu->pif.ms = cfg.ms;
	emu->pif.pil = cfg.pi_first || cfg.ms < EMU_PI_SIZE ? 0 : cfg.ms - EMU_PI_SIZE;
	emu->max_xfer = cfg.mdts ? (uint64_t)PNVME_PAGE_SIZE << cfg.mdts : UINT64_MAX;
	emu->created_ns = now_ns();
	pthread_mutex_init(&emu->lock, NULL);

	dbs = (size_t)(cfg.nr_io_queues + 1) * 2u * ((size_t)4 << cfg.dstrd);
	emu->bar_len = ALIGN_UP((size_t)PNVME_REG_DBS + dbs, (size_t)PNVME_PAGE_SIZE);
	void *bar = mmap(NULL, emu->bar_len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (bar == MAP_FAILED) {
		emu->bar = NULL;
		rc = pnvme_fail(-ENOMEM, "emu: no memory for BAR0");
		goto fail;
	}
	emu->bar = bar;
	emu->sqs = calloc(cfg.nr_io_queues + 1u, sizeof(*emu->sqs));
	emu->cqs = calloc(cfg.nr_io_queues + 1u, sizeof(*emu->cqs));
	emu->ns = calloc(cfg.nr_ns, sizeof(*emu->ns));
	if (emu->sqs == NULL || emu->cqs == NULL || emu->ns == NULL) {
		rc = pnvme_fail(-ENOMEM, "emu: out of memory");
		goto fail;
	}
	rc = media_open(emu);
	if (rc != 0)
		goto fail;
	regs_init(emu);
	features_default(emu);

	if (cfg.threaded) {
		rc = pthread_create(&emu->thread, NULL, emu_thread, emu);
		if (rc != 0) {
			rc = pnvme_fail(-rc, "emu: cannot start thread: %s", strerror(rc));
			goto fail;
		}
		emu->thread_started = true;
	}
	log_debug("emu: created (%u x %llu bytes, lba %u, ms %u%s, pi %u, nq %u, %s)", cfg.nr_ns,
		  (unsigned long long)cfg.ns_size, cfg.lba_size, cfg.ms, cfg.ext ? " extended" : "",
		  cfg.pi, cfg.nr_io_queues, cfg.threaded ? "thread" : "step");
	*out = emu;
	return 0;
fail:
	pnvme_emu_destroy(emu);
	return rc;
}

void pnvme_emu_destroy(struct pnvme_emu *emu)
{
	if (emu == NULL)
		return;
	if (emu->thread_started) {
		__atomic_store_n(&emu->stop, 1, __ATOMIC_RELEASE);
		pthread_join(emu->thread, NULL);
	}
	if (emu->file_map != NULL) {
		msync(emu->file_map, emu->file_len, MS_SYNC);
		munmap(emu->file_map, emu->file_len);
	} else if (emu->ns != NULL) {
		for (uint32_t i = 0; i < emu->cfg.nr_ns; i++) {
			if (emu->ns[i].media != NULL)
				munmap(emu->ns[i].media, (size_t)emu->cfg.ns_size);
			if (emu->ns[i].meta != NULL)
				munmap(emu->ns[i].meta, (size_t)emu->ns[i].meta_bytes);
		}
	}
	if (emu->fd >= 0)
		close(emu->fd);
	if (emu->cqs != NULL)
		for (uint32_t q = 0; q <= emu->cfg.nr_io_queues; q++)
			free(emu->cqs[q].ovf);
	if (emu->bar != NULL)
		munmap((void *)emu->bar, emu->bar_len);
	free(emu->sqs);
	free(emu->cqs);
	free(emu->ns);
	free(emu->maps);
	for (unsigned i = 0; i < ARRAY_SIZE(emu->id_override); i++)
		free(emu->id_override[i]);
	free(emu->delayed);
	free(emu->rstack);
	pthread_mutex_destroy(&emu->lock);
	free(emu);
}

bool pnvme_emu_threaded(const struct pnvme_emu *emu)
{
	return emu != NULL && emu->cfg.threaded;
}

volatile void *pnvme_emu_bar(struct pnvme_emu *emu, size_t *len)
{
	if (len != NULL)
		*len = emu != NULL ? emu->bar_len : 0;
	return emu != NULL ? emu->bar : NULL;
}

const struct pnvme_emu_config *pnvme_emu_config(const struct pnvme_emu *emu)
{
	return emu != NULL ? &emu->cfg : NULL;
}

/* Queues whose rings lay in a removed mapping stop being processed; shadow
 * doorbell pages in it are dropped (every queue goes back to its registers). */
static void rings_unmapped(struct pnvme_emu *emu, uint64_t iova, uint64_t len)
{
	if (emu->dbbuf_on && (emu->dbbuf_iova - iova < len || emu->eventidx_iova - iova < len)) {
		log_debug("emu: shadow doorbell pages unmapped");
		dbbuf_off(emu);
	}
	for (uint32_t q = 0; q <= emu->cfg.nr_io_queues; q++) {
		if (emu->sqs[q].valid && emu->sqs[q].iova - iova < len) {
			log_debug("emu: SQ %u ring unmapped", q);
			emu->sqs[q].ring = NULL;
		}
		if (emu->cqs[q].valid && emu->cqs[q].iova - iova < len) {
			log_debug("emu: CQ %u ring unmapped", q);
			emu->cqs[q].ring = NULL;
		}
	}
}

int pnvme_emu_map(struct pnvme_emu *emu, void *vaddr, uint64_t iova, size_t len)
{
	size_t i;
	int rc = 0;

	if (emu == NULL || vaddr == NULL || len == 0 || ((uintptr_t)vaddr & PAGE_MASK_) ||
	    (iova & PAGE_MASK_) || (len & PAGE_MASK_) || iova + len < iova)
		return pnvme_fail(-EINVAL, "emu map: bad range iova %#llx len %zu",
				  (unsigned long long)iova, len);
	emu_lock(emu);
	/* insertion point: first mapping above iova */
	for (i = 0; i < emu->nr_maps && emu->maps[i].iova <= iova; i++)
		;
	if ((i > 0 && emu->maps[i - 1].iova + emu->maps[i - 1].len > iova) ||
	    (i < emu->nr_maps && iova + len > emu->maps[i].iova)) {
		rc = pnvme_fail(-EEXIST, "emu map: iova %#llx len %zu overlaps a mapping",
				(unsigned long long)iova, len);
		goto out;
	}
	if (emu->nr_maps == emu->maps_cap) {
		size_t ncap = emu->maps_cap ? emu->maps_cap * 2 : 64;
		struct emu_map *n = realloc(emu->maps, ncap * sizeof(*n));
		if (n == NULL) {
			rc = pnvme_fail(-ENOMEM, "emu map: out of memory");
			goto out;
		}
		emu->maps = n;
		emu->maps_cap = ncap;
	}
	memmove(&emu->maps[i + 1], &emu->maps[i], (emu->nr_maps - i) * sizeof(*emu->maps));
	emu->maps[i].iova = iova;
	emu->maps[i].len = len;
	emu->maps[i].va = vaddr;
	emu->nr_maps++;
	emu->hit = NULL;
out:
	emu_unlock(emu);
	return rc;
}

int pnvme_emu_unmap(struct pnvme_emu *emu, uint64_t iova, size_t len)
{
	int rc = -ENOENT;

	if (emu == NULL)
		return pnvme_fail(-EINVAL, "emu unmap: NULL emulator");
	emu_lock(emu);
	for (size_t i = 0; i < emu->nr_maps; i++) {
		if (emu->maps[i].iova == iova && emu->maps[i].len == len) {
			memmove(&emu->maps[i], &emu->maps[i + 1],
				(emu->nr_maps - i - 1) * sizeof(*emu->maps));
			emu->nr_maps--;
			emu->hit = NULL;
			rings_unmapped(emu, iova, len);
			rc = 0;
			break;
		}
	}
	emu_unlock(emu);
	if (rc != 0)
		return pnvme_fail(rc, "emu unmap: no mapping at iova %#llx len %zu",
				  (unsigned long long)iova, len);
	return 0;
}

static int media_check(struct pnvme_emu *emu, uint32_t nsid, uint64_t off, size_t len,
		       const void *buf)
{
	if (emu == NULL || (buf == NULL && len != 0))
		return pnvme_fail(-EINVAL, "emu media: NULL %s", emu == NULL ? "emulator" : "buffer");
	if (nsid == 0 || nsid > emu->cfg.nr_ns)
		return pnvme_fail(-EINVAL, "emu media: bad nsid %u", nsid);
	if (off > emu->cfg.ns_size || len > emu->cfg.ns_size - off)
		return pnvme_fail(-EINVAL, "emu media: range beyond namespace %u", nsid);
	return 0;
}

int pnvme_emu_media_read(struct pnvme_emu *emu, uint32_t nsid, uint64_t off, void *buf,
			 size_t len)
{
	int rc = media_check(emu, nsid, off, len, buf);
	if (rc != 0)
		return rc;
	emu_lock(emu);
	memcpy(buf, emu->ns[nsid - 1].media + off, len);
	emu_unlock(emu);
	return 0;
}

int pnvme_emu_media_write(struct pnvme_emu *emu, uint32_t nsid, uint64_t off,
			  const void *buf, size_t len)
{
	int rc = media_check(emu, nsid, off, len, buf);
	if (rc != 0)
		return rc;
	emu_lock(emu);
	memcpy(emu->ns[nsid - 1].media + off, buf, len);
	emu_unlock(emu);
	return 0;
}

static int meta_check(struct pnvme_emu *emu, uint32_t nsid, uint64_t lba, uint32_t nlb)
{
	if (emu == NULL || nsid == 0 || nsid > emu->cfg.nr_ns)
		return pnvme_fail(-EINVAL, "emu metadata: bad nsid %u", nsid);
	if (emu->ms == 0)
		return pnvme_fail(-EINVAL, "emu metadata: the namespaces have none (ms=0)");
	if (lba > emu->ns[nsid - 1].nlba || nlb > emu->ns[nsid - 1].nlba - lba)
		return pnvme_fail(-EINVAL, "emu metadata: blocks beyond namespace %u", nsid);
	return 0;
}

int pnvme_emu_meta_read(struct pnvme_emu *emu, uint32_t nsid, uint64_t lba, void *buf,
			uint32_t nlb)
{
	int rc = meta_check(emu, nsid, lba, nlb);
	if (rc != 0)
		return rc;
	emu_lock(emu);
	for (uint32_t i = 0; i < nlb; i++)
		meta_load(emu, &emu->ns[nsid - 1], lba + i, (uint8_t *)buf + (size_t)i * emu->ms);
	emu_unlock(emu);
	return 0;
}

int pnvme_emu_meta_write(struct pnvme_emu *emu, uint32_t nsid, uint64_t lba, const void *buf,
			 uint32_t nlb)
{
	int rc = meta_check(emu, nsid, lba, nlb);
	if (rc != 0)
		return rc;
	emu_lock(emu);
	for (uint32_t i = 0; i < nlb; i++)
		meta_store(emu, &emu->ns[nsid - 1], lba + i,
			   (const uint8_t *)buf + (size_t)i * emu->ms);
	emu_unlock(emu);
	return 0;
}

int pnvme_emu_inject(struct pnvme_emu *emu, const struct pnvme_emu_fault *fault)
{
	int rc = -ENOSPC;

	if (emu == NULL || fault == NULL)
		return pnvme_fail(-EINVAL, "emu inject: NULL %s", emu == NULL ? "emulator" : "fault");
	if (fault->kind < PNVME_EMU_FAULT_NEVER_READY || fault->kind > PNVME_EMU_FAULT_MQES_ZERO)
		return pnvme_fail(-EINVAL, "emu inject: unknown fault kind");
	emu_lock(emu);
	for (unsigned i = 0; i < EMU_MAX_FAULTS; i++) {
		struct emu_fault_slot *s = &emu->faults[i];
		if (s->armed)
			continue;
		memset(s, 0, sizeof(*s));
		s->f = *fault;
		s->armed = true;
		if (fault_is_cmd(fault->kind))
			emu->nr_cmd_faults++;
		rc = 0;
		break;
	}
	if (rc == 0) {
		switch (fault->kind) {
		case PNVME_EMU_FAULT_CFS:
			emu->cfs = true;
			csts_update(emu);
			break;
		case PNVME_EMU_FAULT_ALL_ONES:
			emu->gone = true;
			emu->running = false;
			bar_fill(emu, UINT32_MAX);
			break;
		case PNVME_EMU_FAULT_MQES_ZERO:
			emu->cap_dirty = true;       /* CAP changes at the next step */
			break;
		default:
			break;
		}
	}
	emu_unlock(emu);
	if (rc != 0)
		return pnvme_fail(rc, "emu inject: %u faults already armed", EMU_MAX_FAULTS);
	return 0;
}

void pnvme_emu_clear_faults(struct pnvme_emu *emu)
{
	if (emu == NULL)
		return;
	emu_lock(emu);
	if (fault_armed(emu, PNVME_EMU_FAULT_MQES_ZERO))
		emu->cap_dirty = true;
	for (unsigned i = 0; i < EMU_MAX_FAULTS; i++)
		emu->faults[i].armed = false;
	emu->nr_cmd_faults = 0;
	emu_unlock(emu);
}

/*
 * Internal, for tests and fuzzers (not in the public header: declare it where
 * used): answer Identify CNS `cns` (0 Namespace - every valid NSID -, 1
 * Controller, 2 Active Namespace ID list - every start NSID -) with these 4096
 * bytes instead of our own data, whatever faults are armed. `data` NULL goes
 * back to our own. Returns 0, -EINVAL (other CNS), -ENOMEM. Any thread.
 */
int pnvme_emu_identify_override(struct pnvme_emu *emu, uint32_t cns, const void *data);
int pnvme_emu_identify_override(struct pnvme_emu *emu, uint32_t cns, const void *data)
{
	uint8_t *copy = NULL;

	if (emu == NULL || cns >= ARRAY_SIZE(emu->id_override))
		return -EINVAL;
	if (data != NULL) {
		copy = malloc(PNVME_IDENTIFY_DATA_SIZE);
		if (copy == NULL)
			return -ENOMEM;
		memcpy(copy, data, PNVME_IDENTIFY_DATA_SIZE);
	}
	emu_lock(emu);
	free(emu->id_override[cns]);
	emu->id_override[cns] = copy;
	emu_unlock(emu);
	return 0;
}

void pnvme_emu_get_stats(struct pnvme_emu *emu, struct pnvme_emu_stats *stats)
{
	if (emu == NULL || stats == NULL)
		return;
	emu_lock(emu);
	*stats = emu->st;
	emu_unlock(emu);
}
