/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * emu_queues.c - the emulated controller's submission and completion queues.
 *
 * The command flow of one queue: the SQ tail from the doorbell register or
 * the shadow doorbell (Base 2.0 §5.8, with EventIdx), fetch of each SQE,
 * common checks and dispatch to emu_parse_admin() / emu_parse_io()
 * (req_init()), then req_finish(): error log entry, fault treatment, and the
 * completion posted (phase tag, SQHD), held for a delay fault, stacked for
 * REORDER, or queued while the CQ is full until the host moves the CQ head.
 * Also queue teardown and the reset of every queue at a controller reset.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "emu_priv.h"

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
	if (unlikely(cq->ien)) {
		cq->irq_pending = true;
		emu->irq_pending = true;
	}
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

void emu_cpl_post(struct pnvme_emu *emu, const struct emu_cpl *c)
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
			emu_cpl_post(emu, c);
			return;
		}
		emu->rstack[emu->rstack_len++] = *c;
		return;
	}
	emu_cpl_post(emu, c);
}

/*
 * One interrupt per vector per step, not per entry (an MSI-X message is an
 * event, and the host reaps everything posted when it wakes): an eventfd
 * write for each CQ with entries since the last step.
 */
void emu_irq_fire(struct pnvme_emu *emu)
{
	emu->irq_pending = false;
	for (uint32_t q = 1; q <= emu->hi_qid; q++) {
		struct emu_cq *cq = &emu->cqs[q];
		uint64_t one = 1;
		int fd;

		if (!cq->irq_pending)
			continue;
		cq->irq_pending = false;
		fd = __atomic_load_n(&emu->irq_fd[cq->iv], __ATOMIC_ACQUIRE);
		if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
			emu->st.dropped++;   /* (an eventfd only refuses at 2^64 - 2) */
	}
}

int emu_irq_set(struct pnvme_emu *emu, unsigned vector, int fd)
{
	if (vector > emu->cfg.nr_io_queues)
		return pnvme_fail(-ENOSPC, "emu: MSI-X vector %u beyond the %u the controller has",
				  vector, emu->cfg.nr_io_queues + 1);
	__atomic_store_n(&emu->irq_fd[vector], fd, __ATOMIC_RELEASE);
	return 0;
}

uint64_t emu_now_ns(void)
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
	emu->delayed[emu->nr_delayed].deadline_ns = emu_now_ns() + delay_us * 1000u;
	emu->delayed[emu->nr_delayed].cpl = *c;
	emu->nr_delayed++;
}

void emu_delayed_remove(struct pnvme_emu *emu, uint32_t i)
{
	memmove(&emu->delayed[i], &emu->delayed[i + 1],
		(emu->nr_delayed - i - 1) * sizeof(*emu->delayed));
	emu->nr_delayed--;
}

void emu_delayed_run(struct pnvme_emu *emu)
{
	uint64_t now = emu_now_ns();

	for (uint32_t i = 0; i < emu->nr_delayed;) {
		if (emu->delayed[i].deadline_ns <= now) {
			struct emu_cpl c = emu->delayed[i].cpl;
			emu_delayed_remove(emu, i);
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
void emu_cpl_now(struct pnvme_emu *emu, struct emu_sq *sq, uint16_t cid, uint16_t status)
{
	struct emu_req req = { .sq = sq };
	req.cmd.cid = cid;
	req.err_lba = 0;
	req_finish(emu, &req, status);
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
 * Either way EventIdx = the head: the host's next tail write rings; except
 * with dbbuf=2, which leaves a new queue's EventIdx as it finds it (QEMU
 * 7.2's behaviour), until the first doorbell it sees.
 */
void emu_sq_shadow_attach(struct pnvme_emu *emu, struct emu_sq *sq, bool sync)
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
	if (!sync && emu->cfg.dbbuf_stale_ei)
		return;
	__atomic_store_n(sq->ei_p, sq->ei, __ATOMIC_RELEASE);
}

/* The same for CQ `cq` (head and EventIdx = the head it has seen). */
void emu_cq_shadow_attach(struct pnvme_emu *emu, struct emu_cq *cq, bool sync)
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
	if (!sync && emu->cfg.dbbuf_stale_ei)
		return;
	__atomic_store_n(cq->ei_p, cq->ei, __ATOMIC_RELEASE);
}

/* Forget the DBBUF pages (controller reset, or their memory was unmapped). */
void emu_dbbuf_off(struct pnvme_emu *emu)
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

void emu_sq_destroy(struct pnvme_emu *emu, struct emu_sq *sq)
{
	if (sq->valid && emu->cqs[sq->cqid].valid)
		emu->cqs[sq->cqid].nr_sqs--;
	memset(sq, 0, sizeof(*sq));
}

void emu_cq_destroy(struct emu_cq *cq)
{
	struct emu_cpl *ovf = cq->ovf;
	uint32_t cap = cq->ovf_cap;

	memset(cq, 0, sizeof(*cq));
	cq->ovf = ovf;          /* keep the buffer for the next queue with this id */
	cq->ovf_cap = cap;
}

void emu_hi_qid_update(struct pnvme_emu *emu)
{
	uint32_t q = emu->cfg.nr_io_queues;
	while (q > 0 && !emu->sqs[q].valid && !emu->cqs[q].valid)
		q--;
	emu->hi_qid = q;
}

/* Drop every queue and every held command (controller reset). */
void emu_queues_reset(struct pnvme_emu *emu)
{
	for (uint32_t q = 0; q <= emu->cfg.nr_io_queues; q++) {
		memset(&emu->sqs[q], 0, sizeof(emu->sqs[q]));
		emu_cq_destroy(&emu->cqs[q]);
	}
	emu->hi_qid = 0;
	emu->nr_delayed = 0;
	emu->nr_aborts = 0;
	emu->nr_aer = 0;
	emu->rstack_len = 0;
	emu->io_queues_created = false;
	emu_dbbuf_off(emu);
}

/* ------------------------------------------------------------------------ */
/* Command fetch and dispatch (SQ tail, SQE, req_init), CQ head             */
/* ------------------------------------------------------------------------ */

/*
 * Checks common to every command (Base 2.0 §4.1: Common Command Format).
 * CDW0 flags: FUSE (fused operations) is not supported and bits 5:2 are
 * reserved. PSDT: 00b PRPs; 01b SGLs with MPTR a contiguous buffer, on I/O
 * queues when SGLS says so (sgl=1|2; emu_sgl.c), never for Admin commands
 * (NVMe over PCIe: those use PRPs); 10b (MPTR an SGL, SGLS bit 19) and 11b
 * (reserved) are not supported. All of it else: Invalid Field.
 */
static uint16_t req_init(struct pnvme_emu *emu, struct emu_req *req)
{
	if (unlikely(req->cmd.flags != 0)) {
		if (req->cmd.flags != PNVME_SET(PNVME_SQE_PSDT, 1u) || req->sq->qid == 0 ||
		    emu->cfg.sgl == 0)
			return ST_INVALID_FIELD;
		emu->st.sgl_commands++;
	}
	if (req->sq->qid == 0)
		return emu_parse_admin(emu, req);
	return emu_parse_io(emu, req);
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
	bool moved = false, rung = db != sq->db;

	if (rung) {
		sq->db = db;
		emu->st.sq_doorbells++;
		if (!sq->sdb_used) {
			v = db;
			moved = true;
		}
	}
	/*
	 * dbbuf=2 (QEMU 7.2's model) looks at the shadow tail only when a
	 * register write woke it or the queue is not empty; otherwise on every
	 * pass, so that the host's MMIO skips are invisible to the timing.
	 */
	if (sq->sdb_p != NULL && (!emu->cfg.dbbuf_stale_ei || rung || sq->head != sq->tail)) {
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
				status = emu_fault_match(emu, &req);
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
void emu_sq_process(struct pnvme_emu *emu, struct emu_sq *sq)
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
bool emu_cq_process(struct pnvme_emu *emu, struct emu_cq *cq)
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
