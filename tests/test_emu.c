/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_emu.c - the emulated controller, driven at the register level.
 *
 * A minimal host lives in this file: it writes AQA/ASQ/ACQ/CC into the BAR,
 * puts SQEs into rings inside an arena mapped with pnvme_emu_map(), rings
 * doorbells, steps the emulator and checks the CQEs (phase, status, cid, sqhd).
 */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <pnvme/emu.h>
#include <pnvme/error.h>
#include <pnvme/spec.h>
#include <pnvme/tcp_spec.h>

#include "internal.h"

#define ARENA_SIZE  (16u << 20)
#define ARENA_IOVA  0x100000ull
#define MAXQ        8
#define CC_ENABLE   (PNVME_SET(PNVME_CC_EN, 1u) | PNVME_SET(PNVME_CC_IOSQES, 6u) | \
		     PNVME_SET(PNVME_CC_IOCQES, 4u))
#define ST(sct, sc) PNVME_STATUS(sct, sc)
#define ST_OK       0

struct tq {
	struct pnvme_sqe *sq;
	struct pnvme_cqe *cq;
	uint32_t sqsize, cqsize;
	uint16_t tail, head, cid;
	uint16_t phase;
};

struct t {
	struct pnvme_emu *emu;
	volatile uint8_t *bar;
	size_t bar_len;
	uint32_t dstrd;
	uint8_t *arena;
	size_t used;
	struct tq q[MAXQ];
	uint32_t *dbs;              /* shadow doorbell page, after t_dbbuf() */
	uint32_t *eis;              /* EventIdx page */
};

/* ------------------------------------------------------------------------ */
/* The little host                                                          */
/* ------------------------------------------------------------------------ */

static void *t_alloc(struct t *t, size_t len)
{
	void *p;

	len = ALIGN_UP(len, (size_t)4096);
	assert_true(t->used + len <= ARENA_SIZE);
	p = t->arena + t->used;
	t->used += len;
	memset(p, 0, len);
	return p;
}

static uint64_t t_iova(struct t *t, const void *p)
{
	return ARENA_IOVA + (uint64_t)((const uint8_t *)p - t->arena);
}

static struct t *t_open(const char *spec)
{
	struct t *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	assert_int_equal(pnvme_emu_create(spec, &t->emu), 0);
	t->bar = pnvme_emu_bar(t->emu, &t->bar_len);
	t->dstrd = pnvme_emu_config(t->emu)->dstrd;
	t->arena = mmap(NULL, ARENA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);
	assert_true(t->arena != MAP_FAILED);
	assert_int_equal(pnvme_emu_map(t->emu, t->arena, ARENA_IOVA, ARENA_SIZE), 0);
	return t;
}

static void t_close(struct t *t)
{
	pnvme_emu_destroy(t->emu);
	munmap(t->arena, ARENA_SIZE);
	free(t);
}

static uint32_t rd32(struct t *t, size_t off)
{
	return mmio_read32(t->bar, off);
}

static void wr32(struct t *t, size_t off, uint32_t v)
{
	mmio_write32(t->bar, off, v);
}

static void t_step(struct t *t)
{
	if (!pnvme_emu_threaded(t->emu))
		pnvme_emu_step(t->emu);
	else
		usleep(50);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Guard of a loop waiting for the device, `i` steps in, started at `t0`: in
 * step mode a number of steps; in thread mode wall-clock time, and plenty of
 * it: the emulator thread may not get a core for a while on a busy machine.
 */
#define THREAD_WAIT_S 10.0

static bool t_waiting(const struct t *t, long i, long max_steps, double t0)
{
	if (!pnvme_emu_threaded(t->emu))
		return i < max_steps;
	return now_s() - t0 < THREAD_WAIT_S;
}

/*
 * The emulator sees a doorbell write as a value different from the one it
 * saw last, and a new queue starts from what the register holds: like the
 * library, zero a queue's doorbells before the queue is created, so that
 * the first write always shows.
 */
static void t_db_zero(struct t *t, uint16_t qid)
{
	wr32(t, PNVME_SQ_TDBL(qid, t->dstrd), 0);
	wr32(t, PNVME_CQ_HDBL(qid, t->dstrd), 0);
}

/* Set up the admin queue registers (Base 2.0 §3.5.1 steps 3-4), not CC. */
static void t_admin_regs(struct t *t, uint32_t depth)
{
	struct tq *q = &t->q[0];

	q->sq = t_alloc(t, depth * sizeof(struct pnvme_sqe));
	q->cq = t_alloc(t, depth * sizeof(struct pnvme_cqe));
	q->sqsize = q->cqsize = depth;
	q->tail = q->head = 0;
	q->phase = 1;
	t_db_zero(t, 0);
	wr32(t, PNVME_REG_AQA, PNVME_SET(PNVME_AQA_ASQS, depth - 1) |
			       PNVME_SET(PNVME_AQA_ACQS, depth - 1));
	mmio_write64(t->bar, PNVME_REG_ASQ, t_iova(t, q->sq));
	mmio_write64(t->bar, PNVME_REG_ACQ, t_iova(t, q->cq));
}

static void t_enable(struct t *t)
{
	t_admin_regs(t, 32);
	wr32(t, PNVME_REG_CC, CC_ENABLE);
	double t0 = now_s();
	for (long i = 0; t_waiting(t, i, 20000, t0) && !(rd32(t, PNVME_REG_CSTS) & 1u); i++)
		t_step(t);
	assert_int_equal(rd32(t, PNVME_REG_CSTS) & 3u, 1u);  /* RDY, no CFS */
}

static void t_disable(struct t *t)
{
	wr32(t, PNVME_REG_CC, 0);
	double t0 = now_s();
	for (long i = 0; t_waiting(t, i, 20000, t0) && (rd32(t, PNVME_REG_CSTS) & 1u); i++)
		t_step(t);
	assert_int_equal(rd32(t, PNVME_REG_CSTS) & 1u, 0u);
}

/* Post an SQE (assigning its CID) and ring the tail doorbell. */
static uint16_t t_submit(struct t *t, uint16_t qid, struct pnvme_sqe *c)
{
	struct tq *q = &t->q[qid];

	c->cid = q->cid++;
	memcpy(&q->sq[q->tail], c, sizeof(*c));
	q->tail = (uint16_t)((q->tail + 1u) % q->sqsize);
	wr32(t, PNVME_SQ_TDBL(qid, t->dstrd), q->tail); /* a release store */
	return c->cid;
}

/* Take one CQE if the phase says it is new; ring the head doorbell. */
static bool t_reap(struct t *t, uint16_t qid, struct pnvme_cqe *out)
{
	struct tq *q = &t->q[qid];
	volatile struct pnvme_cqe *e = &q->cq[q->head];

	/* acquire: the emulator stores the status word (phase) last, with release */
	if ((__atomic_load_n(&e->status, __ATOMIC_ACQUIRE) & 1u) != q->phase)
		return false;
	memcpy(out, (const void *)e, sizeof(*out));
	q->head = (uint16_t)((q->head + 1u) % q->cqsize);
	if (q->head == 0)
		q->phase ^= 1u;
	wr32(t, PNVME_CQ_HDBL(qid, t->dstrd), q->head);
	return true;
}

static bool t_wait(struct t *t, uint16_t qid, struct pnvme_cqe *out)
{
	double t0 = now_s();
	for (long i = 0; t_waiting(t, i, 40000, t0); i++) {
		if (t_reap(t, qid, out))
			return true;
		t_step(t);
	}
	return false;
}

/* Run one command to completion; returns the 15-bit status (no phase). */
static uint16_t t_cmd(struct t *t, uint16_t qid, struct pnvme_sqe *c, struct pnvme_cqe *cqe)
{
	struct pnvme_cqe tmp;
	uint16_t cid = t_submit(t, qid, c);

	if (cqe == NULL)
		cqe = &tmp;
	assert_true(t_wait(t, qid, cqe));
	assert_int_equal(cqe->cid, cid);
	assert_int_equal(cqe->sqid, qid);
	return PNVME_CQE_STATUS(cqe);
}

/* Build PRP1/PRP2 (and lists, chained past one page) for a contiguous buffer. */
static void t_prp(struct t *t, struct pnvme_sqe *c, void *buf, size_t len)
{
	uint64_t a = t_iova(t, buf), next;
	size_t first = 4096 - (size_t)(a & 4095u), n;
	uint64_t *list;
	unsigned i = 0;

	c->prp1 = a;
	c->prp2 = 0;
	if (first >= len)
		return;
	next = a + first;
	if (len - first <= 4096) {
		c->prp2 = next;
		return;
	}
	n = (len - first + 4095) / 4096;
	list = t_alloc(t, 4096);
	c->prp2 = t_iova(t, list);
	while (n) {
		if (i == 511 && n > 1) {
			uint64_t *nl = t_alloc(t, 4096);
			list[511] = t_iova(t, nl);
			list = nl;
			i = 0;
		}
		list[i++] = next;
		next += 4096;
		n--;
	}
}

static uint16_t t_identify(struct t *t, uint32_t cns, uint32_t nsid, void *buf)
{
	struct pnvme_sqe c = { .opc = PNVME_ADM_IDENTIFY, .nsid = nsid, .cdw10 = cns };
	void *d = t_alloc(t, 4096);
	uint16_t st;

	c.prp1 = t_iova(t, d);
	st = t_cmd(t, 0, &c, NULL);
	memcpy(buf, d, 4096);
	return st;
}

static uint16_t t_create_cq(struct t *t, uint16_t qid, uint32_t size, uint64_t iova)
{
	struct pnvme_sqe c = { .opc = PNVME_ADM_CREATE_CQ };
	c.cdw10 = qid | ((size - 1u) << 16);
	c.cdw11 = PNVME_CREATE_CQ_PC;
	c.prp1 = iova;
	return t_cmd(t, 0, &c, NULL);
}

static uint16_t t_create_sq(struct t *t, uint16_t qid, uint16_t cqid, uint32_t size, uint64_t iova)
{
	struct pnvme_sqe c = { .opc = PNVME_ADM_CREATE_SQ };
	c.cdw10 = qid | ((size - 1u) << 16);
	c.cdw11 = PNVME_CREATE_SQ_PC | ((uint32_t)cqid << 16);
	c.prp1 = iova;
	return t_cmd(t, 0, &c, NULL);
}

static uint16_t t_delete(struct t *t, uint8_t opc, uint16_t qid)
{
	struct pnvme_sqe c = { .opc = opc, .cdw10 = qid };
	return t_cmd(t, 0, &c, NULL);
}

/* I/O queue pair qid (CQ qid) with `size` entries each. */
static void t_ioq(struct t *t, uint16_t qid, uint32_t size)
{
	struct tq *q = &t->q[qid];

	q->sq = t_alloc(t, size * sizeof(struct pnvme_sqe));
	q->cq = t_alloc(t, size * sizeof(struct pnvme_cqe));
	q->sqsize = q->cqsize = size;
	q->tail = q->head = 0;
	q->phase = 1;
	t_db_zero(t, qid);
	assert_int_equal(t_create_cq(t, qid, size, t_iova(t, q->cq)), ST_OK);
	assert_int_equal(t_create_sq(t, qid, qid, size, t_iova(t, q->sq)), ST_OK);
}

static void t_rw_sqe(struct t *t, struct pnvme_sqe *c, uint8_t opc, uint32_t nsid, uint64_t slba,
		     uint32_t nlb, void *buf, size_t len)
{
	memset(c, 0, sizeof(*c));
	c->opc = opc;
	c->nsid = nsid;
	c->cdw10 = (uint32_t)slba;
	c->cdw11 = (uint32_t)(slba >> 32);
	c->cdw12 = nlb - 1u;
	if (buf != NULL)
		t_prp(t, c, buf, len);
}

static uint16_t t_rw(struct t *t, uint16_t qid, uint8_t opc, uint64_t slba, uint32_t nlb,
		     void *buf, size_t len)
{
	struct pnvme_sqe c;
	t_rw_sqe(t, &c, opc, 1, slba, nlb, buf, len);
	return t_cmd(t, qid, &c, NULL);
}

static void fill(void *p, size_t n, uint32_t seed)
{
	uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((i * 31u + seed * 7u + (i >> 9)) & 0xffu);
}

static struct t *t_up(const char *spec)
{
	struct t *t = t_open(spec);
	t_enable(t);
	return t;
}

static int fault(struct t *t, enum pnvme_emu_fault_kind kind, uint16_t qid, int opc,
		 uint32_t skip, uint32_t count, uint16_t status, uint64_t delay_us)
{
	struct pnvme_emu_fault f = {
		.kind = kind, .qid = qid, .opc = opc, .skip = skip, .count = count,
		.status = status, .delay_us = delay_us,
	};
	return pnvme_emu_inject(t->emu, &f);
}

/* ------------------------------------------------------------------------ */
/* Spec parser                                                              */
/* ------------------------------------------------------------------------ */

static void test_parse_good(void **state)
{
	struct pnvme_emu_config c;
	(void)state;

	assert_int_equal(pnvme_emu_parse("emu", &c), 0);
	assert_int_equal(c.ns_size, 64ull << 20);
	assert_int_equal(c.lba_size, 512);
	assert_int_equal(c.nr_ns, 1);
	assert_int_equal(c.mqes, 1023);
	assert_int_equal(c.mdts, 5);
	assert_int_equal(c.dstrd, 0);
	assert_int_equal(c.to, 4);
	assert_int_equal(c.nr_io_queues, 64);
	assert_true(c.threaded);
	assert_true(c.dbbuf);
	assert_string_equal(c.file, "");

	assert_int_equal(pnvme_emu_parse("emu:size=1G,lba=4096,ns=4,mqes=255,mdts=0,dstrd=3,"
					 "to=20,nq=8,mode=step,file=/tmp/x.img,sn=ABC,mn=Model X",
					 &c), 0);
	assert_int_equal(c.ns_size, 1ull << 30);
	assert_int_equal(c.lba_size, 4096);
	assert_int_equal(c.nr_ns, 4);
	assert_int_equal(c.mqes, 255);
	assert_int_equal(c.mdts, 0);
	assert_int_equal(c.dstrd, 3);
	assert_int_equal(c.to, 20);
	assert_int_equal(c.nr_io_queues, 8);
	assert_false(c.threaded);
	assert_string_equal(c.file, "/tmp/x.img");
	assert_string_equal(c.sn, "ABC");
	assert_string_equal(c.mn, "Model X");

	/* prefix optional, suffixes, last duplicate wins */
	assert_int_equal(pnvme_emu_parse("size=512K,size=2M", &c), 0);
	assert_int_equal(c.ns_size, 2ull << 20);
	assert_int_equal(pnvme_emu_parse("emu:size=1t", &c), 0);
	assert_int_equal(c.ns_size, 1ull << 40);
	assert_int_equal(pnvme_emu_parse("emu:size=4096", &c), 0);
	assert_int_equal(c.ns_size, 4096);
	assert_int_equal(pnvme_emu_parse("emu:", &c), 0);
	assert_int_equal(pnvme_emu_parse(NULL, &c), 0);
	assert_int_equal(pnvme_emu_parse("emu:mode=thread", &c), 0);
	assert_true(c.threaded);
	assert_int_equal(pnvme_emu_parse("emu:dbbuf=0", &c), 0);
	assert_false(c.dbbuf);
	assert_int_equal(pnvme_emu_parse("emu:dbbuf=0,dbbuf=1", &c), 0);
	assert_true(c.dbbuf);
	assert_false(c.dbbuf_stale_ei);
	assert_int_equal(pnvme_emu_parse("emu:dbbuf=2", &c), 0);
	assert_true(c.dbbuf);
	assert_true(c.dbbuf_stale_ei);
}

static void expect_bad(const char *spec, const char *word)
{
	struct pnvme_emu_config c;
	struct pnvme_emu *emu = NULL;

	assert_int_equal(pnvme_emu_parse(spec, &c), -EINVAL);
	if (strstr(pnvme_last_error(), word) == NULL) {
		print_error("spec '%s': error '%s' does not mention '%s'\n", spec,
			    pnvme_last_error(), word);
		fail();
	}
	assert_int_equal(pnvme_emu_create(spec, &emu), -EINVAL);
	assert_null(emu);
}

static void test_parse_bad(void **state)
{
	(void)state;
	expect_bad("emu:foo=1", "foo");
	expect_bad("emu:size=", "size");
	expect_bad("emu:size", "size");
	expect_bad("emu:size=12Q", "size");
	expect_bad("emu:size=1MB", "size");
	expect_bad("emu:size=-1", "size");
	expect_bad("emu:size= 1", "size");
	expect_bad("emu:size=0", "size");
	expect_bad("emu:size=99999999999999999999", "size");
	expect_bad("emu:size=20000000T", "size");
	expect_bad("emu:size=1000", "size");          /* not a multiple of 512 */
	expect_bad("emu:size=6K,lba=4096", "size");
	expect_bad("emu:lba=1000", "lba");
	expect_bad("emu:lba=8192", "lba");
	expect_bad("emu:ns=0", "ns");
	expect_bad("emu:ns=33", "ns");
	expect_bad("emu:mqes=0", "mqes");
	expect_bad("emu:mqes=65536", "mqes");
	expect_bad("emu:mdts=16", "mdts");
	expect_bad("emu:dstrd=9", "dstrd");
	expect_bad("emu:to=0", "to");
	expect_bad("emu:to=256", "to");
	expect_bad("emu:nq=0", "nq");
	expect_bad("emu:nq=1025", "nq");
	expect_bad("emu:nq=12x", "nq");
	expect_bad("emu:nq=4294967300", "nq");
	expect_bad("emu:mode=fast", "mode");
	expect_bad("emu:dbbuf=3", "dbbuf");
	expect_bad("emu:dbbuf=yes", "dbbuf");
	expect_bad("emu:sn=012345678901234567890", "sn");
	expect_bad("emu:mn=0123456789012345678901234567890123456789X", "mn");
	expect_bad("emu:size=1M,,ns=1", "empty");
	expect_bad("emu:size=1M,", "empty");
	expect_bad("emu:=5", "name");
}

/* ------------------------------------------------------------------------ */
/* Registers and bring-up                                                   */
/* ------------------------------------------------------------------------ */

static void test_bringup(void **state)
{
	struct t *t = t_open("emu:mode=step,mqes=255,to=7,nq=4");
	struct pnvme_emu_stats st;
	uint64_t cap;
	(void)state;

	cap = mmio_read64(t->bar, PNVME_REG_CAP);
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_MQES), 255);
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_CQR), 1);
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_TO), 7);
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_DSTRD), 0);
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_CSS) & PNVME_CAP_CSS_NVM, PNVME_CAP_CSS_NVM);
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_MPSMIN), 0);
	assert_int_equal(rd32(t, PNVME_REG_VS), PNVME_VS(2, 0, 0));
	assert_int_equal(rd32(t, PNVME_REG_CSTS), 0);
	assert_int_equal(t->bar_len, 4096 * 2);
	assert_int_equal(t->bar_len % 4096, 0);

	/* nothing happens before CC.EN */
	t_admin_regs(t, 8);
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS), 0);
	wr32(t, PNVME_REG_CC, CC_ENABLE);
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS), 1);
	pnvme_emu_get_stats(t->emu, &st);
	assert_int_equal(st.enables, 1);

	/* a Keep Alive: CQE phase 1, sqhd 1, sqid 0 */
	struct pnvme_sqe c = { .opc = PNVME_ADM_KEEP_ALIVE };
	struct pnvme_cqe e;
	assert_int_equal(t_cmd(t, 0, &c, &e), ST_OK);
	assert_int_equal(e.status & 1u, 1);
	assert_int_equal(e.sqhd, 1);

	t_disable(t);
	assert_int_equal(rd32(t, PNVME_REG_CSTS), 0);
	/* enable again: queues start over at slot 0 with phase 1 */
	t_enable(t);
	assert_int_equal(t_cmd(t, 0, &c, &e), ST_OK);
	assert_int_equal(e.sqhd, 1);
	pnvme_emu_get_stats(t->emu, &st);
	assert_int_equal(st.enables, 2);
	t_close(t);
}

static void test_enable_bad(void **state)
{
	struct t *t = t_open("emu:mode=step");
	(void)state;

	/* AQA sizes of one entry are too small */
	t_admin_regs(t, 8);
	wr32(t, PNVME_REG_AQA, 0);
	wr32(t, PNVME_REG_CC, CC_ENABLE);
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS) & 3u, 2u);    /* CFS, not RDY */
	wr32(t, PNVME_REG_CC, 0);
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS), 0);           /* reset clears CFS */

	/* ASQ not page aligned */
	t_admin_regs(t, 8);
	mmio_write64(t->bar, PNVME_REG_ASQ, ARENA_IOVA + 64);
	wr32(t, PNVME_REG_CC, CC_ENABLE);
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS) & 3u, 2u);
	wr32(t, PNVME_REG_CC, 0);
	pnvme_emu_step(t->emu);

	/* ACQ outside the IOVA table */
	t_admin_regs(t, 8);
	mmio_write64(t->bar, PNVME_REG_ACQ, 0x7000000000ull);
	wr32(t, PNVME_REG_CC, CC_ENABLE);
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS) & 3u, 2u);
	wr32(t, PNVME_REG_CC, 0);
	pnvme_emu_step(t->emu);

	/* 8 KiB pages (CC.MPS = 1) exceed CAP.MPSMAX */
	t_admin_regs(t, 8);
	wr32(t, PNVME_REG_CC, CC_ENABLE | PNVME_SET(PNVME_CC_MPS, 1u));
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS) & 3u, 2u);
	wr32(t, PNVME_REG_CC, 0);
	pnvme_emu_step(t->emu);

	/* and a good enable afterwards */
	t_enable(t);
	t_close(t);
}

/* ------------------------------------------------------------------------ */
/* Identify                                                                 */
/* ------------------------------------------------------------------------ */

static void test_identify_ctrl(void **state)
{
	struct t *t = t_up("emu:mode=step,sn=SN123,mn=Test Model,mdts=6,ns=3,size=8M");
	struct pnvme_id_ctrl *id = malloc(sizeof(*id));
	(void)state;

	assert_int_equal(t_identify(t, PNVME_ID_CNS_CTRL, 0, id), ST_OK);
	assert_memory_equal(id->sn, "SN123               ", 20);
	assert_memory_equal(id->mn, "Test Model", 10);
	assert_int_equal(id->mn[10], ' ');
	assert_int_equal(id->mn[39], ' ');
	assert_int_not_equal(id->vid, 0);
	assert_int_equal(id->mdts, 6);
	assert_int_equal(id->cntlid, 1);
	assert_int_equal(id->ver, PNVME_VS(2, 0, 0));
	assert_int_equal(id->oacs, PNVME_OACS_DBBUF);   /* dbbuf=1 by default */
	assert_int_equal(id->acl, 3);
	assert_int_equal(id->elpe, 63);
	assert_int_equal(id->sqes, 0x66);
	assert_int_equal(id->cqes, 0x44);
	assert_true(id->nn >= 3);
	assert_int_equal(id->oncs, PNVME_ONCS_DSM | PNVME_ONCS_WRITE_ZEROES);
	assert_int_equal(id->vwc & 1u, 1);
	assert_true(strncmp(id->subnqn, "nqn.", 4) == 0);
	assert_int_equal(id->fr[7], ' ');
	free(id);
	t_close(t);
}

static void test_identify_ns(void **state)
{
	struct t *t = t_up("emu:mode=step,ns=2,size=8M,lba=4096");
	struct pnvme_id_ns *id = malloc(sizeof(*id));
	uint32_t *list = malloc(4096);
	uint8_t *zero = calloc(1, 4096);
	struct pnvme_id_ctrl *ic = malloc(sizeof(*ic));
	(void)state;

	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS, 2, id), ST_OK);
	assert_int_equal(id->nsze, (8u << 20) / 4096);
	assert_int_equal(id->ncap, id->nsze);
	assert_int_equal(id->nlbaf, 0);
	assert_int_equal(PNVME_FLBAS_INDEX(id->flbas), 0);
	assert_int_equal(PNVME_GET(id->lbaf[0], PNVME_LBAF_LBADS), 12);
	assert_int_equal(PNVME_GET(id->lbaf[0], PNVME_LBAF_MS), 0);

	/* an inactive NSID within NN: zeroes */
	assert_int_equal(t_identify(t, PNVME_ID_CNS_CTRL, 0, ic), ST_OK);
	assert_true(ic->nn > 2);
	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS, 3, id), ST_OK);
	assert_memory_equal(id, zero, 4096);
	/* NSID 0 and > NN: Invalid Namespace or Format */
	assert_int_equal(PNVME_STATUS_CODE(t_identify(t, PNVME_ID_CNS_NS, 0, id)),
			 ST(0, PNVME_SC_INVALID_NS));
	assert_int_equal(PNVME_STATUS_CODE(t_identify(t, PNVME_ID_CNS_NS, ic->nn + 1, id)),
			 ST(0, PNVME_SC_INVALID_NS));

	/* active NSID list: those above the given NSID */
	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS_ACTIVE, 0, list), ST_OK);
	assert_int_equal(list[0], 1);
	assert_int_equal(list[1], 2);
	assert_int_equal(list[2], 0);
	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS_ACTIVE, 1, list), ST_OK);
	assert_int_equal(list[0], 2);
	assert_int_equal(list[1], 0);
	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS_ACTIVE, 2, list), ST_OK);
	assert_int_equal(list[0], 0);

	/* descriptor list: one NGUID */
	uint8_t *d = (uint8_t *)list;
	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS_DESC_LIST, 1, list), ST_OK);
	assert_int_equal(d[0], 2);
	assert_int_equal(d[1], 16);

	/* unsupported CNS: Invalid Field */
	uint16_t st = t_identify(t, 0x1f, 0, list);
	assert_int_equal(PNVME_STATUS_CODE(st), ST(0, PNVME_SC_INVALID_FIELD));
	assert_true(PNVME_STATUS_IS_DNR(st));
	free(id);
	free(list);
	free(zero);
	free(ic);
	t_close(t);
}

/* ------------------------------------------------------------------------ */
/* Metadata and end-to-end protection (NVM 1.0 §5.2, §5.3)                   */
/* ------------------------------------------------------------------------ */

#define PRACT      (1u << 29)
#define PRCHK_G    (1u << 28)
#define PRCHK_A    (1u << 27)
#define PRCHK_R    (1u << 26)
#define PRCHK_ALL  (PRCHK_G | PRCHK_A | PRCHK_R)
#define ST_PI(sc)  ST(PNVME_SCT_MEDIA, sc)

/* CRC-16 T10-DIF bit by bit (polynomial 8BB7h, init 0, MSB first): the test's own. */
static uint16_t crc_t10dif(uint16_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (uint16_t)((crc & 0x8000u) ? (unsigned)(crc << 1) ^ 0x8bb7u : (unsigned)(crc << 1));
	}
	return crc;
}

/* The tuple at `t`, big-endian. */
static void pi_get(const uint8_t *t, uint16_t *guard, uint16_t *app, uint32_t *ref)
{
	*guard = (uint16_t)(t[0] << 8 | t[1]);
	*app = (uint16_t)(t[2] << 8 | t[3]);
	*ref = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];
}

static void pi_put(uint8_t *t, uint16_t guard, uint16_t app, uint32_t ref)
{
	t[0] = (uint8_t)(guard >> 8);
	t[1] = (uint8_t)guard;
	t[2] = (uint8_t)(app >> 8);
	t[3] = (uint8_t)app;
	t[4] = (uint8_t)(ref >> 24);
	t[5] = (uint8_t)(ref >> 16);
	t[6] = (uint8_t)(ref >> 8);
	t[7] = (uint8_t)ref;
}

/* Read / Write with metadata: MPTR, CDW12 PRINFO bits, CDW14 ILBRT, CDW15 LBATM:LBAT. */
static uint16_t t_rwm(struct t *t, uint8_t opc, uint64_t slba, uint32_t nlb, void *buf,
		      size_t len, uint64_t mptr, uint32_t prinfo, uint32_t ilbrt, uint16_t lbat,
		      uint16_t lbatm)
{
	struct pnvme_sqe c;

	t_rw_sqe(t, &c, opc, 1, slba, nlb, buf, len);
	c.mptr = mptr;
	c.cdw12 |= prinfo;
	c.cdw14 = ilbrt;
	c.cdw15 = (uint32_t)lbatm << 16 | lbat;
	return t_cmd(t, 1, &c, NULL);
}

/* A buffer ending exactly at the end of the arena mapping: one byte more faults. */
static void *t_tail(struct t *t, size_t len)
{
	uint8_t *p = t->arena + ARENA_SIZE - len;
	assert_true(t->used <= ARENA_SIZE - ALIGN_UP(len, (size_t)4096));
	memset(p, 0, len);
	return p;
}

static void test_meta_parse(void **state)
{
	struct pnvme_emu_config c;
	(void)state;

	assert_int_equal(pnvme_emu_parse("emu", &c), 0);
	assert_int_equal(c.ms, 0);
	assert_false(c.ext);
	assert_int_equal(c.pi, 0);
	assert_false(c.pi_first);
	assert_int_equal(pnvme_emu_parse("emu:ms=16,ext=1,pi=3,pil=1", &c), 0);
	assert_int_equal(c.ms, 16);
	assert_true(c.ext);
	assert_int_equal(c.pi, 3);
	assert_true(c.pi_first);
	assert_int_equal(pnvme_emu_parse("emu:ms=64,pi=2,pil=0,ext=0", &c), 0);
	assert_int_equal(c.ms, 64);
	assert_false(c.ext);
	assert_false(c.pi_first);
	assert_int_equal(pnvme_emu_parse("emu:ms=8", &c), 0);
	assert_int_equal(pnvme_emu_parse("emu:ms=32,pi=1", &c), 0);

	expect_bad("emu:ms=12", "ms");
	expect_bad("emu:ms=128", "ms");
	expect_bad("emu:ms=x", "ms");
	expect_bad("emu:ext=2", "ext");
	expect_bad("emu:ext=1", "ext");               /* extended LBAs without metadata */
	expect_bad("emu:pi=4,ms=8", "pi");
	expect_bad("emu:pi=1", "pi");                 /* PI without metadata */
	expect_bad("emu:pi=2,ms=0", "ms >= 8");
	expect_bad("emu:pil=1", "pil");               /* a PI location without PI */
	expect_bad("emu:pil=1,ms=8", "pil");
	expect_bad("emu:pil=2,ms=8,pi=1", "pil");
}

static void test_meta_identify(void **state)
{
	struct pnvme_id_ns *id = malloc(sizeof(*id));
	struct t *t;
	(void)state;

	t = t_up("emu:mode=step,size=1M,ms=16,ext=1,pi=2,pil=1");
	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS, 1, id), ST_OK);
	assert_int_equal(PNVME_GET(id->lbaf[0], PNVME_LBAF_MS), 16);
	assert_int_equal(PNVME_GET(id->lbaf[0], PNVME_LBAF_LBADS), 9);
	assert_int_equal(id->flbas, PNVME_FLBAS_META_EXT);
	assert_int_equal(PNVME_FLBAS_INDEX(id->flbas), 0);
	assert_int_equal(id->mc, 1);                  /* extended */
	assert_int_equal(id->dpc, (1u << 1) | (1u << 3));   /* type 2, first 8 bytes */
	assert_int_equal(id->dps, 2u | (1u << 3));
	assert_int_equal(id->nsze, (1u << 20) / 512);
	t_close(t);

	t = t_up("emu:mode=step,size=1M,lba=4096,ms=8,pi=1");
	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS, 1, id), ST_OK);
	assert_int_equal(PNVME_GET(id->lbaf[0], PNVME_LBAF_MS), 8);
	assert_int_equal(PNVME_GET(id->lbaf[0], PNVME_LBAF_LBADS), 12);
	assert_int_equal(id->flbas, 0);
	assert_int_equal(id->mc, 2);                  /* separate */
	assert_int_equal(id->dpc, (1u << 0) | (1u << 4));   /* type 1, last 8 bytes */
	assert_int_equal(id->dps, 1);
	t_close(t);

	t = t_up("emu:mode=step,size=1M");
	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS, 1, id), ST_OK);
	assert_int_equal(id->lbaf[0], 9u << 16);
	assert_int_equal(id->flbas | id->mc | id->dpc | id->dps, 0);
	t_close(t);
	free(id);
}

/* Extended LBAs: data and metadata interleaved in the PRP buffer, both kept per LBA. */
static void test_meta_extended(void **state)
{
	struct t *t = t_up("emu:mode=step,size=1M,ms=8,ext=1,mdts=1");
	size_t len = 4 * 520;
	uint8_t *w = t_alloc(t, 3 * 4096), *r = t_alloc(t, 3 * 4096);
	uint8_t data[512], meta[8];
	uint64_t mptr_unused = 0x7000000000ull;
	(void)state;

	t_ioq(t, 1, 16);
	/* start 3 KiB into a page: the 2080 bytes cross a page boundary */
	w += 3072;
	r += 3072;
	fill(w, len, 9);
	assert_int_equal(t_rwm(t, PNVME_NVM_WRITE, 100, 4, w, len, mptr_unused, 0, 0, 0, 0), ST_OK);
	for (uint32_t i = 0; i < 4; i++) {
		assert_int_equal(pnvme_emu_media_read(t->emu, 1, (100 + i) * 512ull, data, 512), 0);
		assert_memory_equal(data, w + i * 520, 512);
		assert_int_equal(pnvme_emu_meta_read(t->emu, 1, 100 + i, meta, 1), 0);
		assert_memory_equal(meta, w + i * 520 + 512, 8);
	}
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 100, 4, r, len, mptr_unused, 0, 0, 0, 0), ST_OK);
	assert_memory_equal(r, w, len);
	/* the transfer is nlb * 520 bytes: ending at the mapping's end is fine, one more is not */
	uint8_t *tail = t_tail(t, len);
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 100, 4, tail, len, 0, 0, 0, 0, 0), ST_OK);
	assert_memory_equal(tail, w, len);
	uint8_t *over = t_tail(t, len - 8);
	assert_int_equal(PNVME_STATUS_CODE(t_rwm(t, PNVME_NVM_READ, 100, 4, over, len - 8, 0, 0, 0,
						 0, 0)),
			 ST(0, PNVME_SC_DATA_XFER_ERROR));
	/* MDTS (8 KiB) counts the metadata: 15 blocks fit (7800 bytes), 16 do not (8320) */
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 0, 15, r, 15 * 520, 0, 0, 0, 0, 0), ST_OK);
	assert_int_equal(PNVME_STATUS_CODE(t_rwm(t, PNVME_NVM_READ, 0, 16, r, 16 * 520, 0, 0, 0, 0,
						 0)),
			 ST(0, PNVME_SC_INVALID_FIELD));
	t_close(t);

	/* 4 KiB LBAs with 64 bytes each, through a PRP list */
	t = t_up("emu:mode=step,size=1M,lba=4096,ms=64,ext=1");
	t_ioq(t, 1, 16);
	len = 3 * (4096 + 64);
	w = t_alloc(t, len);
	r = t_alloc(t, len);
	fill(w, len, 3);
	assert_int_equal(t_rwm(t, PNVME_NVM_WRITE, 7, 3, w, len, 0, 0, 0, 0, 0), ST_OK);
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 7, 3, r, len, 0, 0, 0, 0, 0), ST_OK);
	assert_memory_equal(r, w, len);
	uint8_t m64[64];
	assert_int_equal(pnvme_emu_meta_read(t->emu, 1, 9, m64, 1), 0);
	assert_memory_equal(m64, w + 2 * 4160 + 4096, 64);
	/* PRINFO means nothing without PI: PRACT does not strip anything here */
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 7, 3, r, len, 0, PRACT | PRCHK_ALL, 1, 2, 3),
			 ST_OK);
	assert_memory_equal(r, w, len);
	t_close(t);
}

/* Separate metadata: PRPs carry the data, MPTR one contiguous metadata buffer. */
static void test_meta_separate(void **state)
{
	struct t *t = t_up("emu:mode=step,size=1M,ms=16");
	uint8_t *w = t_alloc(t, 8192), *r = t_alloc(t, 8192);
	uint8_t *mw = t_alloc(t, 4096), *mr = t_alloc(t, 4096);
	uint8_t meta[16 * 16];
	struct pnvme_emu_stats st;
	(void)state;

	t_ioq(t, 1, 16);
	fill(w, 8192, 5);
	fill(mw, 256, 6);
	assert_int_equal(t_rwm(t, PNVME_NVM_WRITE, 30, 16, w, 8192, t_iova(t, mw), 0, 0, 0, 0),
			 ST_OK);
	assert_int_equal(pnvme_emu_meta_read(t->emu, 1, 30, meta, 16), 0);
	assert_memory_equal(meta, mw, 256);
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 30, 16, r, 8192, t_iova(t, mr), 0, 0, 0, 0),
			 ST_OK);
	assert_memory_equal(r, w, 8192);
	assert_memory_equal(mr, mw, 256);
	/* the data buffer is nlb * 512 bytes: no metadata in it */
	uint8_t *tail = t_tail(t, 8192);
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 30, 16, tail, 8192, t_iova(t, mr), 0, 0, 0, 0),
			 ST_OK);
	assert_memory_equal(tail, w, 8192);

	/* MPTR at an unmapped IOVA: Data Transfer Error, nothing written */
	fill(w, 512, 77);
	pnvme_emu_get_stats(t->emu, &st);
	uint64_t errs = st.dma_errors;
	uint16_t s = t_rwm(t, PNVME_NVM_WRITE, 0, 1, w, 512, 0x7000000000ull, 0, 0, 0, 0);
	assert_int_equal(PNVME_STATUS_CODE(s), ST(0, PNVME_SC_DATA_XFER_ERROR));
	assert_true(PNVME_STATUS_IS_DNR(s));
	pnvme_emu_get_stats(t->emu, &st);
	assert_true(st.dma_errors > errs);
	uint8_t d[512], zero[512] = { 0 };
	assert_int_equal(pnvme_emu_media_read(t->emu, 1, 0, d, 512), 0);
	assert_memory_equal(d, zero, 512);
	assert_int_equal(PNVME_STATUS_CODE(t_rwm(t, PNVME_NVM_READ, 0, 1, r, 512, 0, 0, 0, 0, 0)),
			 ST(0, PNVME_SC_DATA_XFER_ERROR));
	/* an MPTR range running past its mapping: 4 blocks need 64 bytes, 48 are mapped */
	uint8_t *mt = t_tail(t, 48);
	assert_int_equal(PNVME_STATUS_CODE(t_rwm(t, PNVME_NVM_READ, 30, 4, r, 2048, t_iova(t, mt),
						 0, 0, 0, 0)),
			 ST(0, PNVME_SC_DATA_XFER_ERROR));
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 30, 3, r, 1536, t_iova(t, mt), 0, 0, 0, 0), ST_OK);
	assert_memory_equal(mt, mw, 48);
	/* MPTR not dword aligned: Invalid Field */
	assert_int_equal(PNVME_STATUS_CODE(t_rwm(t, PNVME_NVM_READ, 30, 1, r, 512,
						 t_iova(t, mr) + 2, 0, 0, 0, 0)),
			 ST(0, PNVME_SC_INVALID_FIELD));
	/* MDTS counts the data only: 5 = 128 KiB of data plus 4 KiB of metadata */
	uint8_t *big = t_alloc(t, 128 << 10), *bigm = t_alloc(t, 4096);
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 0, 256, big, 128 << 10, t_iova(t, bigm), 0, 0, 0,
			       0),
			 ST_OK);
	/* deallocate: data and metadata read zeroes */
	struct pnvme_dsm_range *rg = t_alloc(t, 4096);
	struct pnvme_sqe c;
	rg->nlb = 16;
	rg->slba = 30;
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_NVM_DSM;
	c.nsid = 1;
	c.cdw11 = PNVME_DSM_AD;
	c.prp1 = t_iova(t, rg);
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	assert_int_equal(pnvme_emu_meta_read(t->emu, 1, 30, meta, 16), 0);
	uint8_t zm[256] = { 0 };
	assert_memory_equal(meta, zm, 256);
	/* no metadata accessors on a namespace without metadata, nor past the end */
	assert_int_equal(pnvme_emu_meta_read(t->emu, 1, 2047, meta, 2), -EINVAL);
	assert_int_equal(pnvme_emu_meta_read(t->emu, 2, 0, meta, 1), -EINVAL);
	t_close(t);
	t = t_up("emu:mode=step,size=1M");
	assert_int_equal(pnvme_emu_meta_read(t->emu, 1, 0, meta, 1), -EINVAL);
	t_close(t);
}

/* PRACT = 1: the controller generates PI on writes and, with ms = 8, strips it on reads. */
static void test_pi_pract(void **state)
{
	struct t *t = t_up("emu:mode=step,size=1M,ms=8,pi=1");
	uint8_t *w = t_alloc(t, 4096), *r = t_alloc(t, 4096), *m = t_alloc(t, 4096);
	uint8_t meta[8 * 4];
	uint16_t g, a;
	uint32_t ref;
	(void)state;

	t_ioq(t, 1, 16);
	fill(w, 2048, 21);
	/* no metadata crosses the bus: MPTR is not used (an unmapped one is fine) */
	assert_int_equal(t_rwm(t, PNVME_NVM_WRITE, 10, 4, w, 2048, 0x7000000000ull, PRACT | PRCHK_R,
			       10, 0x1234, 0xffff),
			 ST_OK);
	assert_int_equal(pnvme_emu_meta_read(t->emu, 1, 10, meta, 4), 0);
	for (uint32_t i = 0; i < 4; i++) {
		pi_get(meta + 8 * i, &g, &a, &ref);
		assert_int_equal(g, crc_t10dif(0, w + 512 * i, 512));
		assert_int_equal(a, 0x1234);
		assert_int_equal(ref, 10 + i);
	}
	/* read it back: checked, stripped */
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 10, 4, r, 2048, 0, PRACT | PRCHK_ALL, 10, 0x1234,
			       0xffff),
			 ST_OK);
	assert_memory_equal(r, w, 2048);
	/* PRACT = 0: the tuples come to the MPTR buffer */
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 10, 4, r, 2048, t_iova(t, m), PRCHK_ALL, 10,
			       0x1234, 0xffff),
			 ST_OK);
	assert_memory_equal(m, meta, 32);
	t_close(t);

	/* extended: with PRACT the PRPs carry data only, both ways */
	t = t_up("emu:mode=step,size=1M,ms=8,ext=1,pi=2");
	t_ioq(t, 1, 16);
	uint8_t *wt = t_tail(t, 2048);
	fill(wt, 2048, 22);
	assert_int_equal(t_rwm(t, PNVME_NVM_WRITE, 50, 4, wt, 2048, 0, PRACT, 0xabcd0000u, 7, 0),
			 ST_OK);
	assert_int_equal(pnvme_emu_meta_read(t->emu, 1, 53, meta, 1), 0);
	pi_get(meta, &g, &a, &ref);
	assert_int_equal(g, crc_t10dif(0, wt + 3 * 512, 512));
	assert_int_equal(a, 7);
	assert_int_equal(ref, 0xabcd0003u);            /* type 2: ILBRT + i, any ILBRT */
	uint8_t *copy = malloc(2048);
	memcpy(copy, wt, 2048);
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 50, 4, wt, 2048, 0, PRACT | PRCHK_ALL,
			       0xabcd0000u, 7, 0xffff),
			 ST_OK);
	assert_memory_equal(wt, copy, 2048);
	/* without PRACT the tuple travels after each block's data */
	uint8_t *x = t_alloc(t, 4 * 520);
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 50, 4, x, 4 * 520, 0, PRCHK_ALL, 0xabcd0000u, 7,
			       0xffff),
			 ST_OK);
	for (uint32_t i = 0; i < 4; i++) {
		assert_memory_equal(x + 520 * i, copy + 512 * i, 512);
		pi_get(x + 520 * i + 512, &g, &a, &ref);
		assert_int_equal(ref, 0xabcd0000u + i);
	}
	free(copy);
	t_close(t);

	/* type 3: the reference tag is ILBRT for every block */
	t = t_up("emu:mode=step,size=1M,ms=8,pi=3");
	t_ioq(t, 1, 16);
	w = t_alloc(t, 4096);
	r = t_alloc(t, 4096);
	fill(w, 1536, 23);
	assert_int_equal(t_rwm(t, PNVME_NVM_WRITE, 5, 3, w, 1536, 0, PRACT, 77, 9, 0), ST_OK);
	assert_int_equal(pnvme_emu_meta_read(t->emu, 1, 5, meta, 3), 0);
	for (uint32_t i = 0; i < 3; i++) {
		pi_get(meta + 8 * i, &g, &a, &ref);
		assert_int_equal(ref, 77);
		assert_int_equal(a, 9);
	}
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 5, 3, r, 1536, 0, PRACT | PRCHK_ALL, 77, 9, 0xffff),
			 ST_OK);
	assert_int_equal(PNVME_STATUS_CODE(t_rwm(t, PNVME_NVM_READ, 5, 3, r, 1536, 0,
						 PRACT | PRCHK_R, 78, 9, 0xffff)),
			 ST_PI(PNVME_SC_REFTAG_CHECK));
	t_close(t);
}

/* PI in 16 bytes of metadata: where the tuple sits and what the guard covers. */
static void test_pi_location(void **state)
{
	struct t *t = t_up("emu:mode=step,size=1M,ms=16,pi=1");
	uint8_t *w = t_alloc(t, 4096), *m = t_alloc(t, 4096), *r = t_alloc(t, 4096);
	uint8_t meta[32];
	uint16_t g, a;
	uint32_t ref;
	(void)state;

	t_ioq(t, 1, 16);
	fill(w, 1024, 31);
	fill(m, 32, 32);
	/* pil=0: the tuple is the last 8 bytes; ms > 8, so the host's metadata comes too */
	assert_int_equal(t_rwm(t, PNVME_NVM_WRITE, 2, 2, w, 1024, t_iova(t, m), PRACT, 2, 0x42, 0),
			 ST_OK);
	assert_int_equal(pnvme_emu_meta_read(t->emu, 1, 2, meta, 2), 0);
	for (uint32_t i = 0; i < 2; i++) {
		assert_memory_equal(meta + 16 * i, m + 16 * i, 8);     /* untouched */
		pi_get(meta + 16 * i + 8, &g, &a, &ref);
		/* the guard covers the data and the 8 metadata bytes in front of the tuple */
		assert_int_equal(g, crc_t10dif(crc_t10dif(0, w + 512 * i, 512), m + 16 * i, 8));
		assert_int_equal(a, 0x42);
		assert_int_equal(ref, 2 + i);
	}
	/* ms > 8: PRACT does not strip on read, the metadata comes back whole */
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 2, 2, r, 1024, t_iova(t, m) + 1024,
			       PRACT | PRCHK_ALL, 2, 0x42, 0xffff),
			 ST_OK);
	assert_memory_equal(m + 1024, meta, 32);
	/* a changed non-PI metadata byte breaks the guard */
	meta[3] ^= 1;
	assert_int_equal(pnvme_emu_meta_write(t->emu, 1, 2, meta, 1), 0);
	assert_int_equal(PNVME_STATUS_CODE(t_rwm(t, PNVME_NVM_READ, 2, 1, r, 512, t_iova(t, m),
						 PRCHK_G, 2, 0, 0)),
			 ST_PI(PNVME_SC_GUARD_CHECK));
	t_close(t);

	/* pil=1: the tuple is the first 8 bytes, the guard covers the data only */
	t = t_up("emu:mode=step,size=1M,ms=16,pi=1,pil=1");
	t_ioq(t, 1, 16);
	w = t_alloc(t, 4096);
	m = t_alloc(t, 4096);
	fill(w, 1024, 31);
	fill(m, 32, 32);
	assert_int_equal(t_rwm(t, PNVME_NVM_WRITE, 2, 2, w, 1024, t_iova(t, m), PRACT, 2, 0x42, 0),
			 ST_OK);
	assert_int_equal(pnvme_emu_meta_read(t->emu, 1, 2, meta, 2), 0);
	for (uint32_t i = 0; i < 2; i++) {
		pi_get(meta + 16 * i, &g, &a, &ref);
		assert_int_equal(g, crc_t10dif(0, w + 512 * i, 512));
		assert_int_equal(ref, 2 + i);
		assert_memory_equal(meta + 16 * i + 8, m + 16 * i + 8, 8);
	}
	t_close(t);
}

/* PRCHK: guard, application tag and reference tag errors, and the escapes. */
static void test_pi_errors(void **state)
{
	struct t *t = t_up("emu:mode=step,size=1M,ms=8,pi=1");
	uint8_t *w = t_alloc(t, 4096), *m = t_alloc(t, 4096), *r = t_alloc(t, 4096);
	uint8_t meta[8];
	uint16_t s;
	(void)state;

	t_ioq(t, 1, 16);
	fill(w, 512, 41);
	uint16_t good = crc_t10dif(0, w, 512);
	/* the host's own PI, checked on write */
	pi_put(m, good, 0x1111, 20);
	assert_int_equal(t_rwm(t, PNVME_NVM_WRITE, 20, 1, w, 512, t_iova(t, m), PRCHK_ALL, 20,
			       0x1111, 0xffff),
			 ST_OK);
	pi_put(m, (uint16_t)(good ^ 1), 0x1111, 20);
	s = t_rwm(t, PNVME_NVM_WRITE, 20, 1, w, 512, t_iova(t, m), PRCHK_ALL, 20, 0x1111, 0xffff);
	assert_int_equal(PNVME_STATUS_CODE(s), ST_PI(PNVME_SC_GUARD_CHECK));
	assert_true(PNVME_STATUS_IS_DNR(s));
	/* ... not checked when PRCHK does not ask */
	pi_put(m, (uint16_t)(good ^ 1), 0x1111, 21);
	assert_int_equal(t_rwm(t, PNVME_NVM_WRITE, 21, 1, w, 512, t_iova(t, m), PRCHK_A | PRCHK_R, 21,
			       0x1111, 0xffff),
			 ST_OK);
	pi_put(m, good, 0x1112, 20);
	assert_int_equal(PNVME_STATUS_CODE(t_rwm(t, PNVME_NVM_WRITE, 20, 1, w, 512, t_iova(t, m),
						 PRCHK_ALL, 20, 0x1111, 0xffff)),
			 ST_PI(PNVME_SC_APPTAG_CHECK));
	/* LBATM masks the application tag check */
	pi_put(m, good, 0x1112, 23);
	assert_int_equal(t_rwm(t, PNVME_NVM_WRITE, 23, 1, w, 512, t_iova(t, m), PRCHK_ALL, 23,
			       0x1111, 0xfff0),
			 ST_OK);
	pi_put(m, good, 0x1111, 19);
	assert_int_equal(PNVME_STATUS_CODE(t_rwm(t, PNVME_NVM_WRITE, 20, 1, w, 512, t_iova(t, m),
						 PRCHK_ALL, 20, 0x1111, 0xffff)),
			 ST_PI(PNVME_SC_REFTAG_CHECK));
	/* type 1 with reftag checking: ILBRT must be SLBA's low 32 bits */
	pi_put(m, good, 0x1111, 19);
	s = t_rwm(t, PNVME_NVM_WRITE, 20, 1, w, 512, t_iova(t, m), PRCHK_R, 19, 0x1111, 0xffff);
	assert_int_equal(PNVME_STATUS_CODE(s), ST(PNVME_SCT_CMD, PNVME_SC_INVALID_PI));
	assert_true(PNVME_STATUS_IS_DNR(s));
	/* apptag FFFFh: nothing is checked for that block (types 1 and 2) */
	pi_put(m, 0, 0xffff, 0);
	assert_int_equal(t_rwm(t, PNVME_NVM_WRITE, 22, 1, w, 512, t_iova(t, m), PRCHK_ALL, 22,
			       0x1111, 0xffff),
			 ST_OK);

	/* reads check the stored tuple */
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 20, 1, r, 512, t_iova(t, m), PRCHK_ALL, 20, 0x1111,
			       0xffff),
			 ST_OK);
	assert_int_equal(pnvme_emu_meta_read(t->emu, 1, 20, meta, 1), 0);
	meta[0] ^= 0x80;                           /* corrupt the guard on the medium */
	assert_int_equal(pnvme_emu_meta_write(t->emu, 1, 20, meta, 1), 0);
	s = t_rwm(t, PNVME_NVM_READ, 20, 1, r, 512, t_iova(t, m), PRCHK_G, 20, 0, 0);
	assert_int_equal(PNVME_STATUS_CODE(s), ST_PI(PNVME_SC_GUARD_CHECK));
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 20, 1, r, 512, t_iova(t, m), PRCHK_A | PRCHK_R, 20,
			       0x1111, 0xffff),
			 ST_OK);
	assert_int_equal(PNVME_STATUS_CODE(t_rwm(t, PNVME_NVM_READ, 20, 1, r, 512, 0,
						 PRACT | PRCHK_A, 20, 0x2222, 0xffff)),
			 ST_PI(PNVME_SC_APPTAG_CHECK));
	/* the second block of a read fails its reftag check (expected 21, stored 21: fine; 22 is escaped) */
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 21, 2, r, 1024, t_iova(t, m), PRCHK_R, 21, 0, 0),
			 ST_OK);
	pi_put(meta, good, 0x1111, 99);
	assert_int_equal(pnvme_emu_meta_write(t->emu, 1, 22, meta, 1), 0);
	assert_int_equal(PNVME_STATUS_CODE(t_rwm(t, PNVME_NVM_READ, 21, 2, r, 1024, t_iova(t, m),
						 PRCHK_R, 21, 0, 0)),
			 ST_PI(PNVME_SC_REFTAG_CHECK));
	/* never written blocks: the tuple reads all ones, nothing is checked */
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 500, 2, r, 1024, t_iova(t, m), PRCHK_ALL, 500, 5,
			       0xffff),
			 ST_OK);
	uint8_t ones[16];
	memset(ones, 0xff, sizeof(ones));
	assert_memory_equal(m, ones, 16);
	/* the error log names the failing LBA */
	struct pnvme_sqe c = { .opc = PNVME_ADM_GET_LOG_PAGE };
	struct pnvme_error_log *el = t_alloc(t, 4096);
	c.cdw10 = PNVME_LOG_ERROR | (uint32_t)(sizeof(*el) / 4 - 1) << 16;
	c.prp1 = t_iova(t, el);
	assert_int_equal(t_cmd(t, 0, &c, NULL), ST_OK);
	assert_int_equal(el->lba, 22);
	t_close(t);

	/* type 3: apptag FFFFh alone does not escape, with reftag FFFFFFFFh it does */
	t = t_up("emu:mode=step,size=1M,ms=8,pi=3");
	t_ioq(t, 1, 16);
	w = t_alloc(t, 4096);
	m = t_alloc(t, 4096);
	fill(w, 512, 43);
	pi_put(m, 0, 0xffff, 5);
	assert_int_equal(PNVME_STATUS_CODE(t_rwm(t, PNVME_NVM_WRITE, 1, 1, w, 512, t_iova(t, m),
						 PRCHK_G, 5, 0, 0)),
			 ST_PI(PNVME_SC_GUARD_CHECK));
	pi_put(m, 0, 0xffff, 0xffffffffu);
	assert_int_equal(t_rwm(t, PNVME_NVM_WRITE, 1, 1, w, 512, t_iova(t, m), PRCHK_ALL, 5, 0, 0xffff),
			 ST_OK);
	/* no ILBRT = SLBA rule for type 3 */
	pi_put(m, crc_t10dif(0, w, 512), 3, 1000);
	assert_int_equal(t_rwm(t, PNVME_NVM_WRITE, 1, 1, w, 512, t_iova(t, m), PRCHK_ALL, 1000, 3,
			       0xffff),
			 ST_OK);
	t_close(t);
}

/* Write Zeroes and PI: PRACT generates the tuple, else it is all zeroes. */
static void test_pi_write_zeroes(void **state)
{
	struct t *t = t_up("emu:mode=step,size=1M,ms=16,pi=1");
	uint8_t *w = t_alloc(t, 4096), *m = t_alloc(t, 4096), *r = t_alloc(t, 4096);
	uint8_t meta[16 * 4], zero[16] = { 0 };
	struct pnvme_sqe c;
	uint16_t g, a;
	uint32_t ref;
	(void)state;

	t_ioq(t, 1, 16);
	fill(w, 2048, 51);
	fill(m, 64, 52);
	assert_int_equal(t_rwm(t, PNVME_NVM_WRITE, 40, 4, w, 2048, t_iova(t, m), PRACT, 40, 1, 0),
			 ST_OK);
	/* PRACT = 1 */
	t_rw_sqe(t, &c, PNVME_NVM_WRITE_ZEROES, 1, 40, 2, NULL, 0);
	c.cdw12 |= PRACT;
	c.cdw14 = 40;
	c.cdw15 = 0x55;
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	assert_int_equal(pnvme_emu_meta_read(t->emu, 1, 40, meta, 2), 0);
	for (uint32_t i = 0; i < 2; i++) {
		assert_memory_equal(meta + 16 * i, zero, 8);
		pi_get(meta + 16 * i + 8, &g, &a, &ref);
		assert_int_equal(g, 0);                 /* CRC of zeroes */
		assert_int_equal(a, 0x55);
		assert_int_equal(ref, 40 + i);
	}
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 40, 2, r, 1024, t_iova(t, m), PRCHK_ALL, 40, 0x55,
			       0xffff),
			 ST_OK);
	/* PRACT = 0: an all-zero tuple; the guard still matches, the tags do not */
	t_rw_sqe(t, &c, PNVME_NVM_WRITE_ZEROES, 1, 42, 2, NULL, 0);
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	assert_int_equal(pnvme_emu_meta_read(t->emu, 1, 42, meta, 2), 0);
	assert_memory_equal(meta, zero, 16);
	assert_memory_equal(meta + 16, zero, 16);
	assert_int_equal(t_rwm(t, PNVME_NVM_READ, 42, 2, r, 1024, t_iova(t, m), PRCHK_G, 0, 0, 0),
			 ST_OK);
	assert_int_equal(PNVME_STATUS_CODE(t_rwm(t, PNVME_NVM_READ, 42, 2, r, 1024, t_iova(t, m),
						 PRCHK_A, 0, 1, 0xffff)),
			 ST_PI(PNVME_SC_APPTAG_CHECK));
	/* PRCHK in Write Zeroes: Invalid Protection Information */
	t_rw_sqe(t, &c, PNVME_NVM_WRITE_ZEROES, 1, 42, 2, NULL, 0);
	c.cdw12 |= PRCHK_G;
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)),
			 ST(PNVME_SCT_CMD, PNVME_SC_INVALID_PI));
	t_close(t);
}

/* A file-backed namespace keeps its metadata after the data, across emulators. */
static void test_meta_file(void **state)
{
	char path[] = "/tmp/pnvme_emu_meta_XXXXXX";
	char spec[160];
	int fd = mkstemp(path);
	uint8_t *w, *r, meta[8];
	struct t *t;
	(void)state;

	assert_true(fd >= 0);
	close(fd);
	snprintf(spec, sizeof(spec), "emu:mode=step,size=1M,ns=2,ms=8,pi=1,file=%s", path);
	t = t_up(spec);
	t_ioq(t, 1, 8);
	w = t_alloc(t, 4096);
	fill(w, 4096, 61);
	uint8_t *want = malloc(4096);
	memcpy(want, w, 4096);
	struct pnvme_sqe c;
	t_rw_sqe(t, &c, PNVME_NVM_WRITE, 2, 8, 8, w, 4096);
	c.cdw12 |= PRACT;
	c.cdw14 = 8;
	c.cdw15 = 0xbeef;
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	t_close(t);

	/* size: 2 x (1 MiB data + 2048 blocks x 8 bytes); ns 2's tuple of LBA 9 */
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	assert_int_equal(ftell(f), 2 * ((1 << 20) + 2048 * 8));
	assert_int_equal(fseek(f, (2 << 20) + 2048 * 8 + 9 * 8, SEEK_SET), 0);
	assert_int_equal(fread(meta, 1, 8, f), 8);
	fclose(f);
	for (int i = 0; i < 8; i++)
		meta[i] ^= 0xff;                    /* stored inverted */
	uint16_t g, a;
	uint32_t ref;
	pi_get(meta, &g, &a, &ref);
	assert_int_equal(g, crc_t10dif(0, want + 512, 512));
	assert_int_equal(a, 0xbeef);
	assert_int_equal(ref, 9);

	t = t_up(spec);
	t_ioq(t, 1, 8);
	r = t_alloc(t, 4096);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 2, 8, 8, r, 4096);
	c.cdw12 |= PRACT | PRCHK_ALL;
	c.cdw14 = 8;
	c.cdw15 = 0xffffu << 16 | 0xbeef;
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	assert_memory_equal(r, want, 4096);
	t_close(t);
	free(want);
	unlink(path);
}

/* ------------------------------------------------------------------------ */
/* Queues                                                                   */
/* ------------------------------------------------------------------------ */

static void test_queues(void **state)
{
	struct t *t = t_up("emu:mode=step,nq=4,mqes=63");
	void *ring = t_alloc(t, 64 * 64);
	uint64_t r = t_iova(t, ring);
	struct pnvme_sqe c;
	(void)state;

#define SC(x) PNVME_STATUS_CODE(x)
	/* Create CQ: bad QIDs, sizes, PC = 0, unmapped or misaligned ring */
	assert_int_equal(SC(t_create_cq(t, 0, 16, r)), ST(1, PNVME_SC_QID_INVALID));
	assert_int_equal(SC(t_create_cq(t, 5, 16, r)), ST(1, PNVME_SC_QID_INVALID));
	assert_int_equal(SC(t_create_cq(t, 1, 1, r)), ST(1, PNVME_SC_QUEUE_SIZE));
	assert_int_equal(SC(t_create_cq(t, 1, 65, r)), ST(1, PNVME_SC_QUEUE_SIZE));
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_CREATE_CQ;
	c.cdw10 = 1 | (15u << 16);
	c.prp1 = r;
	assert_int_equal(SC(t_cmd(t, 0, &c, NULL)), ST(0, PNVME_SC_INVALID_FIELD)); /* PC = 0 */
	assert_int_equal(SC(t_create_cq(t, 1, 16, 0x7000000000ull)), ST(0, PNVME_SC_INVALID_FIELD));
	assert_int_equal(SC(t_create_cq(t, 1, 16, r + 8)), ST(0, PNVME_SC_INVALID_FIELD));

	/* Create SQ: its CQ must exist */
	assert_int_equal(SC(t_create_sq(t, 1, 1, 16, r)), ST(1, PNVME_SC_CQ_INVALID));
	assert_int_equal(SC(t_create_cq(t, 1, 64, r)), ST_OK);
	assert_int_equal(SC(t_create_cq(t, 1, 16, r)), ST(1, PNVME_SC_QID_INVALID)); /* exists */
	void *sring = t_alloc(t, 64 * 64);
	uint64_t s = t_iova(t, sring);
	assert_int_equal(SC(t_create_sq(t, 0, 1, 16, s)), ST(1, PNVME_SC_QID_INVALID));
	assert_int_equal(SC(t_create_sq(t, 5, 1, 16, s)), ST(1, PNVME_SC_QID_INVALID));
	assert_int_equal(SC(t_create_sq(t, 1, 2, 16, s)), ST(1, PNVME_SC_CQ_INVALID));
	assert_int_equal(SC(t_create_sq(t, 1, 0, 16, s)), ST(1, PNVME_SC_CQ_INVALID));
	assert_int_equal(SC(t_create_sq(t, 1, 1, 65, s)), ST(1, PNVME_SC_QUEUE_SIZE));
	assert_int_equal(SC(t_create_sq(t, 1, 1, 64, s)), ST_OK);
	assert_int_equal(SC(t_create_sq(t, 1, 1, 64, s)), ST(1, PNVME_SC_QID_INVALID));

	/* Number of Queues can no longer change */
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_SET_FEATURES;
	c.cdw10 = PNVME_FEAT_NUM_QUEUES;
	c.cdw11 = 0x00010001;
	assert_int_equal(SC(t_cmd(t, 0, &c, NULL)), ST(0, PNVME_SC_CMD_SEQ_ERROR));

	/* Delete: CQ with an SQ attached, unknown queues, then in order */
	assert_int_equal(SC(t_delete(t, PNVME_ADM_DELETE_CQ, 1)), ST(1, PNVME_SC_QUEUE_DELETION_INVALID));
	assert_int_equal(SC(t_delete(t, PNVME_ADM_DELETE_SQ, 2)), ST(1, PNVME_SC_QID_INVALID));
	assert_int_equal(SC(t_delete(t, PNVME_ADM_DELETE_SQ, 0)), ST(1, PNVME_SC_QID_INVALID));
	assert_int_equal(SC(t_delete(t, PNVME_ADM_DELETE_CQ, 0)), ST(1, PNVME_SC_QID_INVALID));
	assert_int_equal(SC(t_delete(t, PNVME_ADM_DELETE_SQ, 1)), ST_OK);
	assert_int_equal(SC(t_delete(t, PNVME_ADM_DELETE_SQ, 1)), ST(1, PNVME_SC_QID_INVALID));
	assert_int_equal(SC(t_delete(t, PNVME_ADM_DELETE_CQ, 1)), ST_OK);
	assert_int_equal(SC(t_delete(t, PNVME_ADM_DELETE_CQ, 1)), ST(1, PNVME_SC_QID_INVALID));

	/* re-create and use it: the queue starts over at slot 0 */
	t_ioq(t, 1, 16);
	uint8_t *buf = t_alloc(t, 4096);
	struct pnvme_cqe e;
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	assert_int_equal(t_cmd(t, 1, &c, &e), ST_OK);
	assert_int_equal(e.sqhd, 1);
	t_close(t);
}

static void test_queue_entry_sizes(void **state)
{
	struct t *t = t_open("emu:mode=step");
	void *ring = t_alloc(t, 4096);
	(void)state;

	/* CC.IOSQES / IOCQES are checked when I/O queues are created */
	t_admin_regs(t, 8);
	wr32(t, PNVME_REG_CC, PNVME_SET(PNVME_CC_EN, 1u));
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS) & 3u, 1u);
	assert_int_equal(PNVME_STATUS_CODE(t_create_cq(t, 1, 16, t_iova(t, ring))),
			 ST(1, PNVME_SC_QUEUE_SIZE));
	t_close(t);
}

/* ------------------------------------------------------------------------ */
/* I/O                                                                      */
/* ------------------------------------------------------------------------ */

static void rw_check(struct t *t, size_t off, size_t len, uint64_t slba, uint32_t seed)
{
	uint8_t *w = (uint8_t *)t_alloc(t, len + off + 4096) + off;
	uint8_t *r = (uint8_t *)t_alloc(t, len + off + 4096) + off;
	uint8_t *m = malloc(len);
	uint32_t nlb = (uint32_t)(len / 512);

	fill(w, len, seed);
	assert_int_equal(t_rw(t, 1, PNVME_NVM_WRITE, slba, nlb, w, len), ST_OK);
	assert_int_equal(t_rw(t, 1, PNVME_NVM_READ, slba, nlb, r, len), ST_OK);
	assert_memory_equal(w, r, len);
	assert_int_equal(pnvme_emu_media_read(t->emu, 1, slba * 512, m, len), 0);
	assert_memory_equal(w, m, len);
	free(m);
}

static void test_rw_roundtrip(void **state)
{
	struct t *t = t_up("emu:mode=step,mdts=0,size=16M");
	struct pnvme_emu_stats st;
	(void)state;

	t_ioq(t, 1, 64);
	rw_check(t, 0, 512, 0, 1);                  /* PRP1 only */
	rw_check(t, 0, 4096, 8, 2);
	rw_check(t, 0, 8192, 16, 3);                /* PRP1 + PRP2 data pointer */
	rw_check(t, 2048, 4096, 32, 4);             /* PRP1 offset, spills into PRP2 */
	rw_check(t, 0, 64 << 10, 100, 5);           /* PRP list */
	rw_check(t, 1024, 40 << 10, 300, 6);        /* offset + list */
	rw_check(t, 0, 3 << 20, 1000, 7);           /* chained list (> 512 entries) */
	rw_check(t, 512, 2u << 20, 9000, 8);        /* chained, offset */
	rw_check(t, 0, 512, 32767, 9);              /* last LBA */

	pnvme_emu_get_stats(t->emu, &st);
	assert_true(st.read_bytes >= (5u << 20));
	assert_int_equal(st.read_bytes, st.write_bytes);
	assert_int_equal(st.dma_errors, 0);
	t_close(t);
}

static void test_rw_4k_lba(void **state)
{
	struct t *t = t_up("emu:mode=step,lba=4096,size=4M,ns=2");
	uint8_t *w = t_alloc(t, 16384), *r = t_alloc(t, 16384);
	struct pnvme_sqe c;
	(void)state;

	t_ioq(t, 1, 8);
	fill(w, 16384, 11);
	t_rw_sqe(t, &c, PNVME_NVM_WRITE, 2, 10, 4, w, 16384);
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 2, 10, 4, r, 16384);
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	assert_memory_equal(w, r, 16384);
	/* namespace 1 untouched */
	assert_int_equal(pnvme_emu_media_read(t->emu, 1, 40960, r, 16384), 0);
	for (int i = 0; i < 16384; i++)
		assert_int_equal(r[i], 0);
	/* beyond the last block of a 4 KiB namespace */
	t_rw_sqe(t, &c, PNVME_NVM_READ, 2, 1023, 2, r, 8192);
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_LBA_RANGE));
	t_close(t);
}

static void test_io_errors(void **state)
{
	struct t *t = t_up("emu:mode=step,mdts=2,size=1M");
	uint8_t *buf = t_alloc(t, 32768);
	struct pnvme_emu_stats st;
	struct pnvme_sqe c;
	uint16_t s;
	(void)state;

	t_ioq(t, 1, 16);
	/* IOVA outside the table: Data Transfer Error */
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 8, NULL, 0);
	c.prp1 = 0x7000000000ull;
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_DATA_XFER_ERROR));
	pnvme_emu_get_stats(t->emu, &st);
	assert_true(st.dma_errors >= 1);
	/* the second page unmapped */
	t_rw_sqe(t, &c, PNVME_NVM_WRITE, 1, 0, 16, buf, 8192);
	c.prp2 = ARENA_IOVA + ARENA_SIZE;
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_DATA_XFER_ERROR));
	/* a PRP list entry with an offset */
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 24, buf, 12288);
	uint64_t *list = t_alloc(t, 4096);
	list[0] = t_iova(t, buf) + 4096 + 512;
	list[1] = t_iova(t, buf) + 8192;
	c.prp2 = t_iova(t, list);
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_PRP_INVALID_OFFSET));
	/* PRP2 data pointer with an offset */
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 16, buf, 8192);
	c.prp2 += 256;
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_PRP_INVALID_OFFSET));
	/* LBA out of range (1 MiB = 2048 blocks) */
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 2047, 2, buf, 1024);
	s = t_cmd(t, 1, &c, NULL);
	assert_int_equal(PNVME_STATUS_CODE(s), ST(0, PNVME_SC_LBA_RANGE));
	assert_true(PNVME_STATUS_IS_DNR(s));
	t_rw_sqe(t, &c, PNVME_NVM_WRITE, 1, 1ull << 40, 1, buf, 512);
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_LBA_RANGE));
	t_rw_sqe(t, &c, PNVME_NVM_WRITE, 1, UINT64_MAX, 1, buf, 512);
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_LBA_RANGE));
	/* MDTS 2: 16 KiB at most */
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 32, buf, 16384);
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 33, buf, 16896);
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_INVALID_FIELD));
	/* bad NSIDs */
	t_rw_sqe(t, &c, PNVME_NVM_READ, 2, 0, 1, buf, 512);
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_INVALID_NS));
	t_rw_sqe(t, &c, PNVME_NVM_WRITE, 0, 0, 1, buf, 512);
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_INVALID_NS));
	/* invalid opcodes, I/O and admin */
	t_rw_sqe(t, &c, 0x7e, 1, 0, 1, buf, 512);
	s = t_cmd(t, 1, &c, NULL);
	assert_int_equal(PNVME_STATUS_CODE(s), ST(0, PNVME_SC_INVALID_OPCODE));
	assert_true(PNVME_STATUS_IS_DNR(s));
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_FORMAT_NVM;
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 0, &c, NULL)), ST(0, PNVME_SC_INVALID_OPCODE));
	/* MPTR holding an SGL (PSDT 10b), reserved PSDT 11b and fused commands: Invalid
	 * Field (PSDT 01b: test_sgl_*) */
	for (unsigned psdt = 2; psdt <= 3; psdt++) {
		t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
		c.flags = (uint8_t)PNVME_SET(PNVME_SQE_PSDT, psdt);
		assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)),
				 ST(0, PNVME_SC_INVALID_FIELD));
	}
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	c.flags = 1;
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_INVALID_FIELD));
	/* still healthy */
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	t_close(t);
}

static void test_wz_dsm_flush(void **state)
{
	struct t *t = t_up("emu:mode=step,size=8M,mdts=0");
	size_t len = 1u << 20;
	uint8_t *w = t_alloc(t, len), *r = t_alloc(t, len);
	struct pnvme_dsm_range *rg = t_alloc(t, 4096);
	struct pnvme_sqe c;
	(void)state;

	t_ioq(t, 1, 16);
	fill(w, len, 3);
	assert_int_equal(t_rw(t, 1, PNVME_NVM_WRITE, 0, (uint32_t)(len / 512), w, len), ST_OK);

	/* Write Zeroes of blocks 10..19, with and without DEAC */
	t_rw_sqe(t, &c, PNVME_NVM_WRITE_ZEROES, 1, 10, 10, NULL, 0);
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	t_rw_sqe(t, &c, PNVME_NVM_WRITE_ZEROES, 1, 1000, 600, NULL, 0);
	c.cdw12 |= PNVME_RW_DEAC;
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	t_rw_sqe(t, &c, PNVME_NVM_WRITE_ZEROES, 1, 16383, 2, NULL, 0);
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_LBA_RANGE));

	/* DSM deallocate of two ranges */
	rg[0] = (struct pnvme_dsm_range){ .nlb = 4, .slba = 100 };
	rg[1] = (struct pnvme_dsm_range){ .nlb = 1, .slba = 200 };
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_NVM_DSM;
	c.nsid = 1;
	c.cdw10 = 1;                               /* two ranges, 0's based */
	c.cdw11 = PNVME_DSM_AD;
	c.prp1 = t_iova(t, rg);
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);

	assert_int_equal(t_rw(t, 1, PNVME_NVM_READ, 0, (uint32_t)(len / 512), r, len), ST_OK);
	for (size_t i = 0; i < len; i++) {
		size_t lba = i / 512;
		bool zero = (lba >= 10 && lba < 20) || (lba >= 1000 && lba < 1600) ||
			    (lba >= 100 && lba < 104) || lba == 200;
		if (r[i] != (zero ? 0 : w[i])) {
			print_error("byte %zu (lba %zu): %u\n", i, lba, r[i]);
			fail();
		}
	}

	/* DSM without AD changes nothing; a range past the end fails */
	c.cdw11 = PNVME_DSM_IDR;
	rg[0].slba = 300;
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	assert_int_equal(pnvme_emu_media_read(t->emu, 1, 300 * 512, r, 512), 0);
	assert_memory_equal(r, w + 300 * 512, 512);
	rg[1].slba = 16384;
	c.cdw11 = PNVME_DSM_AD;
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_LBA_RANGE));

	/* Flush: one namespace, all, a bad one */
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_NVM_FLUSH;
	c.nsid = 1;
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	c.nsid = 0xffffffffu;
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	c.nsid = 7;
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_INVALID_NS));
	t_close(t);
}

/* ------------------------------------------------------------------------ */
/* SGLs (Base 2.0 §4.1.2)                                                   */
/* ------------------------------------------------------------------------ */

#define SGL_DATA 0u  /* descriptor types */
#define SGL_BB   1u
#define SGL_SEG  2u
#define SGL_LAST 3u

static struct pnvme_sgl_desc sgl_d(unsigned type, uint64_t addr, uint32_t len)
{
	struct pnvme_sgl_desc d;

	memset(&d, 0, sizeof(d));
	d.addr = addr;
	d.length = len;
	d.id = PNVME_SGL_ID(type, PNVME_SGL_SUBTYPE_ADDRESS);
	return d;
}

/* PSDT 01b and SGL Descriptor 1 in SQE bytes 24..39. */
static void sgl_set(struct pnvme_sqe *c, struct pnvme_sgl_desc d1)
{
	c->flags = (uint8_t)PNVME_SET(PNVME_SQE_PSDT, 1u);
	c->prp1 = d1.addr;
	c->prp2 = (uint64_t)d1.length | (uint64_t)d1.id << 56;
}

/* Read / Write of nlb blocks at slba with SGL Descriptor 1 `d1`; the status. */
static uint16_t t_sgl_rw(struct t *t, uint8_t opc, uint64_t slba, uint32_t nlb,
			 struct pnvme_sgl_desc d1)
{
	struct pnvme_sqe c;

	t_rw_sqe(t, &c, opc, 1, slba, nlb, NULL, 0);
	sgl_set(&c, d1);
	return t_cmd(t, 1, &c, NULL);
}

/* A segment of `n` descriptors from the arena; `d1` becomes its (Last) Segment descriptor. */
static struct pnvme_sgl_desc *t_seg(struct t *t, unsigned n, unsigned type,
				    struct pnvme_sgl_desc *d1)
{
	struct pnvme_sgl_desc *s = t_alloc(t, n * sizeof(*s));

	*d1 = sgl_d(type, t_iova(t, s), n * (uint32_t)sizeof(*s));
	return s;
}

/* Identify SGLS and the sgl= option; PSDT 01b refused without SGLs and on the admin queue. */
static void test_sgl_support(void **state)
{
	struct pnvme_emu_config cfg;
	struct pnvme_id_ctrl *id = malloc(sizeof(*id));
	const char *specs[] = { "emu:mode=step", "emu:mode=step,sgl=2", "emu:mode=step,sgl=0" };
	const uint32_t sgls[] = { 0x10001u, 0x10002u, 0 };
	(void)state;

	assert_int_equal(pnvme_emu_parse("emu", &cfg), 0);
	assert_int_equal(cfg.sgl, 1);
	assert_int_equal(pnvme_emu_parse("emu:sgl=0", &cfg), 0);
	assert_int_equal(cfg.sgl, 0);
	expect_bad("emu:sgl=3", "sgl");
	for (unsigned k = 0; k < 3; k++) {
		struct t *t = t_up(specs[k]);
		uint8_t *buf = t_alloc(t, 4096);
		struct pnvme_emu_stats st;
		struct pnvme_sqe c;

		assert_int_equal(t_identify(t, PNVME_ID_CNS_CTRL, 0, id), ST_OK);
		assert_int_equal(id->sgls, sgls[k]);
		t_ioq(t, 1, 8);
		uint16_t s = t_sgl_rw(t, PNVME_NVM_READ, 0, 1, sgl_d(SGL_DATA, t_iova(t, buf), 512));
		assert_int_equal(PNVME_STATUS_CODE(s), sgls[k] ? ST_OK
							       : ST(0, PNVME_SC_INVALID_FIELD));
		/* Admin commands over PCIe use PRPs only */
		memset(&c, 0, sizeof(c));
		c.opc = PNVME_ADM_IDENTIFY;
		c.cdw10 = PNVME_ID_CNS_CTRL;
		sgl_set(&c, sgl_d(SGL_DATA, t_iova(t, buf), 4096));
		s = t_cmd(t, 0, &c, NULL);
		assert_int_equal(PNVME_STATUS_CODE(s), ST(0, PNVME_SC_INVALID_FIELD));
		assert_true(PNVME_STATUS_IS_DNR(s));
		pnvme_emu_get_stats(t->emu, &st);
		assert_int_equal(st.sgl_commands, sgls[k] ? 1 : 0);
		t_close(t);
	}
	free(id);
}

/* Data through a Data Block in the SQE, Last Segment lists, Segment chains, Bit Buckets. */
static void test_sgl_data(void **state)
{
	struct t *t = t_up("emu:mode=step,size=1M");
	uint8_t *src = t_alloc(t, 16384), *dst = t_alloc(t, 16384);
	uint8_t *want = malloc(8192), *m = malloc(8192);
	struct pnvme_sgl_desc d1, *s1, *s2, *s3;
	struct pnvme_emu_stats st;
	(void)state;

	t_ioq(t, 1, 16);
	fill(src, 16384, 41);
	/* one Data Block in the SQE, at an odd address */
	assert_int_equal(t_sgl_rw(t, PNVME_NVM_WRITE, 3, 1, sgl_d(SGL_DATA, t_iova(t, src + 1), 512)),
			 ST_OK);
	assert_int_equal(pnvme_emu_media_read(t->emu, 1, 3 * 512, m, 512), 0);
	assert_memory_equal(m, src + 1, 512);

	/* a Last Segment of odd pieces (a zero-length one among them): 4 blocks */
	s1 = t_seg(t, 4, SGL_LAST, &d1);
	s1[0] = sgl_d(SGL_DATA, t_iova(t, src + 7), 1001);
	s1[1] = sgl_d(SGL_DATA, t_iova(t, src + 5000), 0);
	s1[2] = sgl_d(SGL_DATA, t_iova(t, src + 4099), 3);
	s1[3] = sgl_d(SGL_DATA, t_iova(t, src + 9000), 1044);
	memcpy(want, src + 7, 1001);
	memcpy(want + 1001, src + 4099, 3);
	memcpy(want + 1004, src + 9000, 1044);
	assert_int_equal(t_sgl_rw(t, PNVME_NVM_WRITE, 10, 4, d1), ST_OK);
	assert_int_equal(pnvme_emu_media_read(t->emu, 1, 10 * 512, m, 2048), 0);
	assert_memory_equal(m, want, 2048);

	/* read back through SQE -> Segment -> Segment -> Last Segment, with Bit Buckets */
	memset(dst, 0xee, 16384);
	s1 = t_seg(t, 2, SGL_SEG, &d1);
	s1[0] = sgl_d(SGL_DATA, t_iova(t, dst + 1), 700);
	s2 = t_seg(t, 3, SGL_SEG, &s1[1]);
	s2[0] = sgl_d(SGL_BB, 0, 100);                          /* bytes 700..799 dropped */
	s2[1] = sgl_d(SGL_DATA, t_iova(t, dst + 2000), 0);
	s3 = t_seg(t, 2, SGL_LAST, &s2[2]);
	s3[0] = sgl_d(SGL_DATA, t_iova(t, dst + 3001), 1200);   /* 800..1999 */
	s3[1] = sgl_d(SGL_DATA, t_iova(t, dst + 6002), 48);     /* 2000..2047 */
	assert_int_equal(t_sgl_rw(t, PNVME_NVM_READ, 10, 4, d1), ST_OK);
	assert_memory_equal(dst + 1, want, 700);
	assert_memory_equal(dst + 3001, want + 800, 1200);
	assert_memory_equal(dst + 6002, want + 2000, 48);
	assert_int_equal(dst[0], 0xee);
	assert_int_equal(dst[701], 0xee);
	assert_int_equal(dst[4201], 0xee);
	assert_int_equal(dst[6050], 0xee);

	/* a Bit Bucket as SGL Descriptor 1: a read that moves nothing */
	assert_int_equal(t_sgl_rw(t, PNVME_NVM_READ, 10, 1, sgl_d(SGL_BB, 0, 512)), ST_OK);

	/* DSM ranges through an SGL */
	struct pnvme_dsm_range *rg = t_alloc(t, 4096);
	struct pnvme_sqe c;
	rg[0] = (struct pnvme_dsm_range){ .nlb = 1, .slba = 3 };
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_NVM_DSM;
	c.nsid = 1;
	c.cdw11 = PNVME_DSM_AD;
	sgl_set(&c, sgl_d(SGL_DATA, t_iova(t, rg), 16));
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	assert_int_equal(pnvme_emu_media_read(t->emu, 1, 3 * 512, m, 512), 0);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(m[i], 0);
	pnvme_emu_get_stats(t->emu, &st);
	assert_int_equal(st.sgl_commands, 5);
	free(want);
	free(m);
	t_close(t);
}

/* Extended LBAs (data + 8 bytes of metadata per block) through an SGL. */
static void test_sgl_meta(void **state)
{
	struct t *t = t_up("emu:mode=step,size=1M,ms=8,ext=1");
	uint8_t *src = t_alloc(t, 4096), *dst = t_alloc(t, 4096);
	struct pnvme_sgl_desc d1, *s;
	uint8_t md[16];
	(void)state;

	t_ioq(t, 1, 8);
	fill(src, 1040, 5);
	s = t_seg(t, 3, SGL_LAST, &d1);
	s[0] = sgl_d(SGL_DATA, t_iova(t, src), 515);
	s[1] = sgl_d(SGL_DATA, t_iova(t, src + 515), 9);
	s[2] = sgl_d(SGL_DATA, t_iova(t, src + 524), 516);
	assert_int_equal(t_sgl_rw(t, PNVME_NVM_WRITE, 0, 2, d1), ST_OK);
	assert_int_equal(pnvme_emu_meta_read(t->emu, 1, 0, md, 2), 0);
	assert_memory_equal(md, src + 512, 8);
	assert_memory_equal(md + 8, src + 1032, 8);
	/* read: the first block's data into the Bit Bucket */
	s = t_seg(t, 2, SGL_LAST, &d1);
	s[0] = sgl_d(SGL_BB, 0, 512);
	s[1] = sgl_d(SGL_DATA, t_iova(t, dst + 3), 528);
	assert_int_equal(t_sgl_rw(t, PNVME_NVM_READ, 0, 2, d1), ST_OK);
	assert_memory_equal(dst + 3, src + 512, 528);
	t_close(t);
}

/* Every way an SGL can be wrong: the status, DNR, and no data moved. */
static void test_sgl_errors(void **state)
{
	struct t *t = t_up("emu:mode=step,size=1M");
	uint8_t *buf = t_alloc(t, 8192), *zero = malloc(2048), *m = malloc(2048);
	struct pnvme_sgl_desc d1, *s, *s2;
	struct pnvme_sqe c;
	uint64_t a = t_iova(t, buf);
	uint16_t st;
	(void)state;

	t_ioq(t, 1, 16);
	memset(zero, 0, 2048);
	fill(buf, 8192, 9);
#define EXPECT_SGL(opc, nlb, d, sc)                                                         \
	do {                                                                                \
		st = t_sgl_rw(t, (opc), 0, (nlb), (d));                                     \
		assert_int_equal(PNVME_STATUS_CODE(st), ST(0, (sc)));                       \
		assert_true(PNVME_STATUS_IS_DNR(st));                                       \
	} while (0)

	/* Data SGL Length Invalid: short, long, a list that ends early or runs on */
	EXPECT_SGL(PNVME_NVM_WRITE, 1, sgl_d(SGL_DATA, a, 511), PNVME_SC_SGL_INVALID_DATA);
	EXPECT_SGL(PNVME_NVM_WRITE, 1, sgl_d(SGL_DATA, a, 513), PNVME_SC_SGL_INVALID_DATA);
	EXPECT_SGL(PNVME_NVM_WRITE, 1, sgl_d(SGL_DATA, a, 0), PNVME_SC_SGL_INVALID_DATA);
	s = t_seg(t, 2, SGL_LAST, &d1);
	s[0] = sgl_d(SGL_DATA, a, 1024);
	s[1] = sgl_d(SGL_DATA, a + 4096, 16);
	EXPECT_SGL(PNVME_NVM_WRITE, 2, d1, PNVME_SC_SGL_INVALID_DATA);
	s[1].length = 0;                      /* trailing empty descriptors are fine */
	assert_int_equal(t_sgl_rw(t, PNVME_NVM_WRITE, 0, 2, d1), ST_OK);
	s = t_seg(t, 2, SGL_SEG, &d1);        /* a Segment that ends on data: the end */
	s[0] = sgl_d(SGL_DATA, a, 512);
	s[1] = sgl_d(SGL_DATA, a + 512, 511);
	EXPECT_SGL(PNVME_NVM_WRITE, 2, d1, PNVME_SC_SGL_INVALID_DATA);

	/* SGL Descriptor Type Invalid: keyed, transport, vendor, Offset subtype, a Bit
	 * Bucket where data goes to the controller */
	EXPECT_SGL(PNVME_NVM_READ, 1, sgl_d(4, a, 512), PNVME_SC_SGL_INVALID_TYPE);
	EXPECT_SGL(PNVME_NVM_READ, 1, sgl_d(5, a, 512), PNVME_SC_SGL_INVALID_TYPE);
	EXPECT_SGL(PNVME_NVM_READ, 1, sgl_d(0xf, a, 512), PNVME_SC_SGL_INVALID_TYPE);
	d1 = sgl_d(SGL_DATA, a, 512);
	d1.id = PNVME_SGL_ID(SGL_DATA, PNVME_SGL_SUBTYPE_OFFSET);
	EXPECT_SGL(PNVME_NVM_READ, 1, d1, PNVME_SC_SGL_INVALID_TYPE);
	EXPECT_SGL(PNVME_NVM_WRITE, 1, sgl_d(SGL_BB, 0, 512), PNVME_SC_SGL_INVALID_TYPE);
	s = t_seg(t, 2, SGL_LAST, &d1);
	s[0] = sgl_d(SGL_DATA, a, 512);
	s[1] = sgl_d(SGL_BB, 0, 512);
	EXPECT_SGL(PNVME_NVM_WRITE, 2, d1, PNVME_SC_SGL_INVALID_TYPE);
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_NVM_DSM;
	c.nsid = 1;
	c.cdw11 = PNVME_DSM_AD;
	sgl_set(&c, sgl_d(SGL_BB, 0, 16));
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_SGL_INVALID_TYPE));

	/* Invalid SGL Segment Descriptor: lengths 0 and 24, a Last Segment that chains */
	EXPECT_SGL(PNVME_NVM_READ, 1, sgl_d(SGL_LAST, a, 0), PNVME_SC_SGL_INVALID_LAST);
	EXPECT_SGL(PNVME_NVM_READ, 1, sgl_d(SGL_SEG, a, 24), PNVME_SC_SGL_INVALID_LAST);
	for (unsigned type = SGL_SEG; type <= SGL_LAST; type++) {
		s = t_seg(t, 2, SGL_LAST, &d1);
		s[0] = sgl_d(SGL_DATA, a, 512);
		s2 = t_seg(t, 1, type, &s[1]);
		s2[0] = sgl_d(SGL_DATA, a, 512);
		EXPECT_SGL(PNVME_NVM_READ, 2, d1, PNVME_SC_SGL_INVALID_LAST);
	}

	/* Invalid Number of SGL Descriptors: a segment descriptor before the end of its
	 * segment; a chain that loops (it ends: at most 4096 descriptors) */
	s = t_seg(t, 3, SGL_SEG, &d1);
	s2 = t_seg(t, 1, SGL_LAST, &s[0]);
	s2[0] = sgl_d(SGL_DATA, a, 512);
	s[1] = sgl_d(SGL_DATA, a, 512);
	s[2] = sgl_d(SGL_DATA, a, 512);
	EXPECT_SGL(PNVME_NVM_READ, 2, d1, PNVME_SC_SGL_INVALID_COUNT);
	s = t_seg(t, 2, SGL_SEG, &d1);
	s[0] = sgl_d(SGL_DATA, a, 0);
	s[1] = d1;                            /* back to itself */
	EXPECT_SGL(PNVME_NVM_READ, 1, d1, PNVME_SC_SGL_INVALID_COUNT);
	s = t_seg(t, 256, SGL_LAST, &d1);     /* 4097 descriptors in all */
	s2 = s;
	for (unsigned k = 0; k < 16; k++) {
		for (unsigned i = 0; i < 255; i++)
			s2[i] = sgl_d(SGL_DATA, a, 0);
		if (k == 15) {
			s2[255] = sgl_d(SGL_DATA, a, 512);
			break;
		}
		struct pnvme_sgl_desc *next = t_seg(t, 256, SGL_SEG, &s2[255]);
		s2 = next;
	}
	d1.id = PNVME_SGL_ID(SGL_SEG, 0);
	EXPECT_SGL(PNVME_NVM_READ, 1, d1, PNVME_SC_SGL_INVALID_COUNT);

	/* Data Transfer Error: data, a segment, a segment running past its mapping */
	EXPECT_SGL(PNVME_NVM_READ, 1, sgl_d(SGL_DATA, 0x7000000000ull, 512),
		   PNVME_SC_DATA_XFER_ERROR);
	EXPECT_SGL(PNVME_NVM_READ, 1, sgl_d(SGL_LAST, 0x7000000000ull, 16),
		   PNVME_SC_DATA_XFER_ERROR);
	EXPECT_SGL(PNVME_NVM_READ, 1, sgl_d(SGL_LAST, ARENA_IOVA + ARENA_SIZE - 16, 32),
		   PNVME_SC_DATA_XFER_ERROR);
	EXPECT_SGL(PNVME_NVM_READ, 1, sgl_d(SGL_DATA, ARENA_IOVA + ARENA_SIZE - 256, 512),
		   PNVME_SC_DATA_XFER_ERROR);

	/* No data moved by any of them: a write whose list fails after a good Data Block */
	s = t_seg(t, 2, SGL_LAST, &d1);
	s[0] = sgl_d(SGL_DATA, a, 1024);
	s[1] = sgl_d(4, a, 1024);
	st = t_sgl_rw(t, PNVME_NVM_WRITE, 100, 4, d1);
	assert_int_equal(PNVME_STATUS_CODE(st), ST(0, PNVME_SC_SGL_INVALID_TYPE));
	assert_int_equal(pnvme_emu_media_read(t->emu, 1, 100 * 512, m, 2048), 0);
	assert_memory_equal(m, zero, 2048);
	/* ... and a read leaves the buffer as it was */
	memset(buf, 0x5a, 1024);
	st = t_sgl_rw(t, PNVME_NVM_READ, 0, 4, d1);
	assert_int_equal(PNVME_STATUS_CODE(st), ST(0, PNVME_SC_SGL_INVALID_TYPE));
	for (unsigned i = 0; i < 1024; i++)
		assert_int_equal(buf[i], 0x5a);
#undef EXPECT_SGL
	/* still healthy */
	assert_int_equal(t_sgl_rw(t, PNVME_NVM_READ, 0, 1, sgl_d(SGL_DATA, a, 512)), ST_OK);
	free(zero);
	free(m);
	t_close(t);
}

/* sgl=2 (SGLS 10b): Data Block addresses and lengths dword granular. */
static void test_sgl_dword(void **state)
{
	struct t *t = t_up("emu:mode=step,size=1M,sgl=2");
	uint8_t *buf = t_alloc(t, 8192);
	struct pnvme_sgl_desc d1, *s;
	uint64_t a = t_iova(t, buf);
	uint16_t st;
	(void)state;

	t_ioq(t, 1, 8);
	st = t_sgl_rw(t, PNVME_NVM_READ, 0, 1, sgl_d(SGL_DATA, a + 2, 512));
	assert_int_equal(PNVME_STATUS_CODE(st), ST(0, PNVME_SC_SGL_INVALID_GRANULARITY));
	assert_true(PNVME_STATUS_IS_DNR(st));
	s = t_seg(t, 2, SGL_LAST, &d1);
	s[0] = sgl_d(SGL_DATA, a, 510);
	s[1] = sgl_d(SGL_DATA, a + 1024, 2);
	st = t_sgl_rw(t, PNVME_NVM_READ, 0, 1, d1);
	assert_int_equal(PNVME_STATUS_CODE(st), ST(0, PNVME_SC_SGL_INVALID_GRANULARITY));
	s[0].length = 508;
	s[1].length = 4;
	assert_int_equal(t_sgl_rw(t, PNVME_NVM_READ, 0, 1, d1), ST_OK);
	/* Bit Buckets have no granularity rule, segments no alignment rule */
	s = (struct pnvme_sgl_desc *)(void *)((uint8_t *)t_alloc(t, 4096) + 8);
	d1 = sgl_d(SGL_LAST, t_iova(t, s), 48);
	s[0] = sgl_d(SGL_BB, 0, 2);
	s[1] = sgl_d(SGL_BB, 0, 2);
	s[2] = sgl_d(SGL_DATA, a + 4, 508);
	assert_int_equal(t_sgl_rw(t, PNVME_NVM_READ, 0, 1, d1), ST_OK);
	s[2].addr = a + 2;
	st = t_sgl_rw(t, PNVME_NVM_READ, 0, 1, d1);
	assert_int_equal(PNVME_STATUS_CODE(st), ST(0, PNVME_SC_SGL_INVALID_GRANULARITY));
	t_close(t);
}

/* ------------------------------------------------------------------------ */
/* Features and log pages                                                   */
/* ------------------------------------------------------------------------ */

static uint16_t t_feat(struct t *t, uint8_t opc, uint32_t cdw10, uint32_t cdw11, uint32_t *dw0)
{
	struct pnvme_sqe c = { .opc = opc, .cdw10 = cdw10, .cdw11 = cdw11 };
	struct pnvme_cqe e;
	uint16_t st = t_cmd(t, 0, &c, &e);
	if (dw0 != NULL)
		*dw0 = e.dw0;
	return st;
}

static void test_features(void **state)
{
	struct t *t = t_up("emu:mode=step,nq=8");
	uint32_t dw0;
	(void)state;

	/* Number of Queues: min(requested, nq), 0's based */
	assert_int_equal(t_feat(t, PNVME_ADM_GET_FEATURES, PNVME_FEAT_NUM_QUEUES, 0, &dw0), ST_OK);
	assert_int_equal(dw0, 0x00070007);
	assert_int_equal(t_feat(t, PNVME_ADM_SET_FEATURES, PNVME_FEAT_NUM_QUEUES, 0x00630063, &dw0),
			 ST_OK);
	assert_int_equal(dw0, 0x00070007);
	assert_int_equal(t_feat(t, PNVME_ADM_SET_FEATURES, PNVME_FEAT_NUM_QUEUES, 0x00010002, &dw0),
			 ST_OK);
	assert_int_equal(dw0, 0x00010002);
	assert_int_equal(t_feat(t, PNVME_ADM_GET_FEATURES, PNVME_FEAT_NUM_QUEUES, 0, &dw0), ST_OK);
	assert_int_equal(dw0, 0x00010002);
	assert_int_equal(PNVME_STATUS_CODE(t_feat(t, PNVME_ADM_SET_FEATURES, PNVME_FEAT_NUM_QUEUES,
						  0xffff0000, NULL)),
			 ST(0, PNVME_SC_INVALID_FIELD));

	/* Volatile Write Cache */
	assert_int_equal(t_feat(t, PNVME_ADM_GET_FEATURES, PNVME_FEAT_VOLATILE_WC, 0, &dw0), ST_OK);
	assert_int_equal(dw0, 1);
	assert_int_equal(t_feat(t, PNVME_ADM_SET_FEATURES, PNVME_FEAT_VOLATILE_WC, 0, NULL), ST_OK);
	assert_int_equal(t_feat(t, PNVME_ADM_GET_FEATURES, PNVME_FEAT_VOLATILE_WC, 0, &dw0), ST_OK);
	assert_int_equal(dw0, 0);
	/* SEL = default */
	assert_int_equal(t_feat(t, PNVME_ADM_GET_FEATURES, PNVME_FEAT_VOLATILE_WC | (1u << 8), 0,
				&dw0), ST_OK);
	assert_int_equal(dw0, 1);

	/* stored values: arbitration, interrupt coalescing, error recovery */
	assert_int_equal(t_feat(t, PNVME_ADM_SET_FEATURES, PNVME_FEAT_ARBITRATION, 0x03020103, NULL),
			 ST_OK);
	assert_int_equal(t_feat(t, PNVME_ADM_GET_FEATURES, PNVME_FEAT_ARBITRATION, 0, &dw0), ST_OK);
	assert_int_equal(dw0, 0x03020103);
	assert_int_equal(t_feat(t, PNVME_ADM_SET_FEATURES, PNVME_FEAT_IRQ_COALESCE, 0x0a10, NULL),
			 ST_OK);
	assert_int_equal(t_feat(t, PNVME_ADM_GET_FEATURES, PNVME_FEAT_IRQ_COALESCE, 0, &dw0), ST_OK);
	assert_int_equal(dw0, 0x0a10);
	assert_int_equal(t_feat(t, PNVME_ADM_SET_FEATURES, PNVME_FEAT_ERR_RECOVERY, 100, NULL), ST_OK);
	assert_int_equal(t_feat(t, PNVME_ADM_GET_FEATURES, PNVME_FEAT_ERR_RECOVERY, 0, &dw0), ST_OK);
	assert_int_equal(dw0, 100);

	/* temperature threshold: over (default WCTEMP) and under */
	assert_int_equal(t_feat(t, PNVME_ADM_GET_FEATURES, PNVME_FEAT_TEMP_THRESH, 0, &dw0), ST_OK);
	assert_int_equal(dw0, 343);
	assert_int_equal(t_feat(t, PNVME_ADM_SET_FEATURES, PNVME_FEAT_TEMP_THRESH, 350, NULL), ST_OK);
	assert_int_equal(t_feat(t, PNVME_ADM_SET_FEATURES, PNVME_FEAT_TEMP_THRESH,
				(1u << 20) | 270, NULL), ST_OK);
	assert_int_equal(t_feat(t, PNVME_ADM_GET_FEATURES, PNVME_FEAT_TEMP_THRESH, 0, &dw0), ST_OK);
	assert_int_equal(dw0, 350);
	assert_int_equal(t_feat(t, PNVME_ADM_GET_FEATURES, PNVME_FEAT_TEMP_THRESH, 1u << 20, &dw0),
			 ST_OK);
	assert_int_equal(dw0, 270);

	/* power management: only state 0 */
	assert_int_equal(t_feat(t, PNVME_ADM_SET_FEATURES, PNVME_FEAT_POWER_MGMT, 0, NULL), ST_OK);
	assert_int_equal(PNVME_STATUS_CODE(t_feat(t, PNVME_ADM_SET_FEATURES, PNVME_FEAT_POWER_MGMT,
						  1, NULL)),
			 ST(0, PNVME_SC_INVALID_FIELD));
	/* unsupported features, saving */
	assert_int_equal(PNVME_STATUS_CODE(t_feat(t, PNVME_ADM_GET_FEATURES, PNVME_FEAT_LBA_RANGE, 0,
						  NULL)),
			 ST(0, PNVME_SC_INVALID_FIELD));
	assert_int_equal(PNVME_STATUS_CODE(t_feat(t, PNVME_ADM_SET_FEATURES, 0x7d, 0, NULL)),
			 ST(0, PNVME_SC_INVALID_FIELD));
	assert_int_equal(PNVME_STATUS_CODE(t_feat(t, PNVME_ADM_SET_FEATURES,
						  PNVME_FEAT_ARBITRATION | PNVME_FEAT_SV, 0, NULL)),
			 ST(1, PNVME_SC_FEATURE_NOT_SAVEABLE));
	t_close(t);
}

static uint16_t t_log(struct t *t, uint8_t lid, uint64_t off, void *buf, size_t len)
{
	struct pnvme_sqe c = { .opc = PNVME_ADM_GET_LOG_PAGE, .nsid = 0xffffffffu };
	void *d = t_alloc(t, len);
	uint32_t numd = (uint32_t)(len / 4 - 1);
	uint16_t st;

	c.cdw10 = lid | (numd << 16);
	c.cdw11 = numd >> 16;
	c.cdw12 = (uint32_t)off;
	c.cdw13 = (uint32_t)(off >> 32);
	t_prp(t, &c, d, len);
	st = t_cmd(t, 0, &c, NULL);
	memcpy(buf, d, len);
	return st;
}

static uint64_t u128_lo(const uint8_t v[16])
{
	uint64_t x;
	memcpy(&x, v, 8);
	return x;
}

static void test_log_pages(void **state)
{
	struct t *t = t_up("emu:mode=step");
	struct pnvme_smart_log smart;
	struct pnvme_error_log *el = malloc(4096);
	uint8_t *buf = t_alloc(t, 1u << 20);
	struct pnvme_sqe c;
	uint16_t bad_cid;
	(void)state;

	t_ioq(t, 1, 32);
	/* 3 writes of 512 KiB (1024 sectors each) and 1 read of 512 bytes */
	for (int i = 0; i < 3; i++)
		assert_int_equal(t_rw(t, 1, PNVME_NVM_WRITE, 0, 256, buf, 128 << 10), ST_OK);
	assert_int_equal(t_rw(t, 1, PNVME_NVM_READ, 0, 1, buf, 512), ST_OK);
	assert_int_equal(t_log(t, PNVME_LOG_SMART, 0, &smart, sizeof(smart)), ST_OK);
	assert_int_equal(u128_lo(smart.host_writes), 3);
	assert_int_equal(u128_lo(smart.host_reads), 1);
	assert_int_equal(u128_lo(smart.data_units_written), 1);    /* 768 sectors -> 1 */
	assert_int_equal(u128_lo(smart.data_units_read), 1);
	assert_int_equal(u128_lo(smart.power_cycles), 1);
	assert_int_equal(smart.temperature[0] | (smart.temperature[1] << 8), 300);
	assert_int_equal(u128_lo(smart.num_err_log_entries), 0);

	/* errors go to the error log, newest first */
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 1ull << 30, 1, buf, 512);
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_LBA_RANGE));
	bad_cid = c.cid;
	memset(&c, 0, sizeof(c));
	c.opc = 0x7f;
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 0, &c, NULL)), ST(0, PNVME_SC_INVALID_OPCODE));
	assert_int_equal(t_log(t, PNVME_LOG_ERROR, 0, el, 4096), ST_OK);
	assert_int_equal(el[0].error_count, 2);
	assert_int_equal(el[0].sqid, 0);
	assert_int_equal(el[0].cmdid, c.cid);
	assert_int_equal(PNVME_STATUS_CODE(el[0].status >> 1), ST(0, PNVME_SC_INVALID_OPCODE));
	assert_int_equal(el[1].error_count, 1);
	assert_int_equal(el[1].sqid, 1);
	assert_int_equal(el[1].cmdid, bad_cid);
	assert_int_equal(el[1].nsid, 1);
	assert_int_equal(el[1].lba, 1ull << 30);
	assert_int_equal(PNVME_STATUS_CODE(el[1].status >> 1), ST(0, PNVME_SC_LBA_RANGE));
	assert_int_equal(el[2].error_count, 0);
	/* with an offset: the second entry first */
	assert_int_equal(t_log(t, PNVME_LOG_ERROR, 64, el, 128), ST_OK);
	assert_int_equal(el[0].error_count, 1);
	assert_int_equal(el[1].error_count, 0);
	assert_int_equal(t_log(t, PNVME_LOG_SMART, 0, &smart, sizeof(smart)), ST_OK);
	assert_int_equal(u128_lo(smart.num_err_log_entries), 2);
	/* SMART from an offset */
	uint32_t dw[2];
	assert_int_equal(t_log(t, PNVME_LOG_SMART, 0x40, dw, 8), ST_OK);
	assert_int_equal(dw[0], 1);                      /* host_reads */
	assert_int_equal(t_log(t, PNVME_LOG_SMART, 0x50, dw, 8), ST_OK);
	assert_int_equal(dw[0], 3);                      /* host_writes */

	/* the ring keeps the newest 64 */
	for (int i = 0; i < 70; i++) {
		memset(&c, 0, sizeof(c));
		c.opc = 0x7f;
		t_cmd(t, 0, &c, NULL);
	}
	assert_int_equal(t_log(t, PNVME_LOG_ERROR, 0, el, 4096), ST_OK);
	assert_int_equal(el[0].error_count, 72);
	assert_int_equal(el[63].error_count, 9);

	/* unsupported LID, misaligned or too large offsets */
	assert_int_equal(PNVME_STATUS_CODE(t_log(t, 0x70, 0, el, 512)),
			 ST(1, PNVME_SC_LOG_PAGE_INVALID));
	assert_int_equal(PNVME_STATUS_CODE(t_log(t, PNVME_LOG_SMART, 2, el, 64)),
			 ST(0, PNVME_SC_INVALID_FIELD));
	assert_int_equal(PNVME_STATUS_CODE(t_log(t, PNVME_LOG_SMART, 1024, el, 64)),
			 ST(0, PNVME_SC_INVALID_FIELD));
	free(el);
	t_close(t);
}

/* ------------------------------------------------------------------------ */
/* Completion queue flow control, doorbells                                 */
/* ------------------------------------------------------------------------ */

static void test_cq_full(void **state)
{
	struct t *t = t_up("emu:mode=step");
	struct tq *q = &t->q[1];
	uint8_t *buf = t_alloc(t, 4096);
	struct pnvme_cqe e;
	struct pnvme_sqe c;
	(void)state;

	/* SQ of 16, CQ of 4: at most 3 completions fit */
	q->sq = t_alloc(t, 16 * 64);
	q->cq = t_alloc(t, 4 * 16);
	q->sqsize = 16;
	q->cqsize = 4;
	q->phase = 1;
	t_db_zero(t, 1);
	assert_int_equal(t_create_cq(t, 1, 4, t_iova(t, q->cq)), ST_OK);
	assert_int_equal(t_create_sq(t, 1, 1, 16, t_iova(t, q->sq)), ST_OK);
	for (int i = 0; i < 10; i++) {
		t_rw_sqe(t, &c, PNVME_NVM_READ, 1, (uint64_t)i, 1, buf, 512);
		t_submit(t, 1, &c);
	}
	for (int i = 0; i < 5; i++)
		pnvme_emu_step(t->emu);
	/* exactly 3 are posted; the 4th slot stays untouched */
	for (int i = 0; i < 3; i++)
		assert_int_equal(q->cq[i].status & 1u, 1);
	assert_int_equal(q->cq[3].status, 0);
	/* consuming them frees room; all ten arrive in order */
	for (uint16_t want = 0; want < 10; want++) {
		assert_true(t_wait(t, 1, &e));
		assert_int_equal(e.cid, want);
		assert_int_equal(PNVME_CQE_STATUS(&e), ST_OK);
	}
	assert_false(t_reap(t, 1, &e));
	t_close(t);
}

static void test_dstrd(void **state)
{
	struct t *t = t_open("emu:mode=step,dstrd=2,nq=4");
	struct pnvme_emu_stats st;
	uint8_t *buf;
	(void)state;

	assert_int_equal(PNVME_GET(mmio_read64(t->bar, PNVME_REG_CAP), PNVME_CAP_DSTRD), 2);
	assert_int_equal(t->bar_len, 8192);
	t_enable(t);
	t_ioq(t, 3, 8);
	buf = t_alloc(t, 4096);
	fill(buf, 4096, 1);
	assert_int_equal(t_rw(t, 3, PNVME_NVM_WRITE, 5, 8, buf, 4096), ST_OK);
	assert_int_equal(t_rw(t, 3, PNVME_NVM_READ, 5, 8, buf, 4096), ST_OK);
	/* a stray write to the stride-0 position of SQ 3's doorbell is not a doorbell */
	wr32(t, PNVME_SQ_TDBL(3, 0), 5);
	pnvme_emu_get_stats(t->emu, &st);
	uint64_t before = st.commands;
	pnvme_emu_step(t->emu);
	pnvme_emu_get_stats(t->emu, &st);
	assert_int_equal(st.commands, before);
	t_close(t);
}

static void test_bad_doorbell(void **state)
{
	struct t *t = t_up("emu:mode=step");
	struct pnvme_emu_stats st;
	struct pnvme_sqe c = { .opc = PNVME_ADM_KEEP_ALIVE };
	(void)state;

	/* tail beyond the queue: ignored */
	wr32(t, PNVME_SQ_TDBL(0, 0), 1000);
	pnvme_emu_step(t->emu);
	pnvme_emu_get_stats(t->emu, &st);
	assert_int_equal(st.commands, 0);
	assert_int_equal(rd32(t, PNVME_REG_CSTS) & 3u, 1u);
	/* then a proper one works */
	assert_int_equal(t_cmd(t, 0, &c, NULL), ST_OK);
	/* head beyond what was posted: ignored too */
	wr32(t, PNVME_CQ_HDBL(0, 0), 5);
	pnvme_emu_step(t->emu);
	wr32(t, PNVME_CQ_HDBL(0, 0), 1);
	assert_int_equal(t_cmd(t, 0, &c, NULL), ST_OK);
	t_close(t);
}

/* ------------------------------------------------------------------------ */
/* Doorbell Buffer Config and shadow doorbells (Base 2.0 §5.8)              */
/* ------------------------------------------------------------------------ */

static uint16_t t_dbbuf_cmd(struct t *t, uint64_t dbs, uint64_t eis)
{
	struct pnvme_sqe c = { .opc = PNVME_ADM_DBBUF_CONFIG };
	c.prp1 = dbs;
	c.prp2 = eis;
	return t_cmd(t, 0, &c, NULL);
}

/* Give the controller two zeroed pages from the arena. */
static void t_dbbuf(struct t *t)
{
	t->dbs = t_alloc(t, 4096);
	t->eis = t_alloc(t, 4096);
	assert_int_equal(t_dbbuf_cmd(t, t_iova(t, t->dbs), t_iova(t, t->eis)), ST_OK);
}

/* Entry `idx` (2 * qid: SQ tail, 2 * qid + 1: CQ head) of a DBBUF page. */
static volatile uint32_t *dbb(struct t *t, uint32_t *page, uint32_t idx)
{
	return (volatile uint32_t *)((uint8_t *)page + ((size_t)idx << (2 + t->dstrd)));
}

/*
 * The host's side: store the shadow value, full barrier, read EventIdx, and
 * write the register only if the value moved past it (the virtio event rule).
 * Returns true if it wrote the register.
 */
static bool t_shadow_ring(struct t *t, uint32_t idx, uint32_t v, size_t reg)
{
	volatile uint32_t *sdb = dbb(t, t->dbs, idx);
	uint16_t old = (uint16_t)__atomic_load_n(sdb, __ATOMIC_RELAXED);

	__atomic_store_n(sdb, v, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t ev = (uint16_t)__atomic_load_n(dbb(t, t->eis, idx), __ATOMIC_RELAXED);
	if ((uint16_t)((uint16_t)v - ev - 1) < (uint16_t)((uint16_t)v - old)) {
		wr32(t, reg, v);
		return true;
	}
	return false;
}

/* Post an SQE and publish the tail in the shadow entry only (no register write). */
static uint16_t t_post_shadow(struct t *t, uint16_t qid, struct pnvme_sqe *c)
{
	struct tq *q = &t->q[qid];

	c->cid = q->cid++;
	memcpy(&q->sq[q->tail], c, sizeof(*c));
	q->tail = (uint16_t)((q->tail + 1u) % q->sqsize);
	/* release: the SQE comes first (the emulator loads the entry with acquire) */
	__atomic_store_n(dbb(t, t->dbs, 2u * qid), q->tail, __ATOMIC_RELEASE);
	return c->cid;
}

/* Take one CQE; publish the head in the shadow entry only. */
static bool t_reap_shadow(struct t *t, uint16_t qid, struct pnvme_cqe *out)
{
	struct tq *q = &t->q[qid];
	volatile struct pnvme_cqe *e = &q->cq[q->head];

	/* acquire: the emulator stores the status word (phase) last, with release */
	if ((__atomic_load_n(&e->status, __ATOMIC_ACQUIRE) & 1u) != q->phase)
		return false;
	memcpy(out, (const void *)e, sizeof(*out));
	q->head = (uint16_t)((q->head + 1u) % q->cqsize);
	if (q->head == 0)
		q->phase ^= 1u;
	__atomic_store_n(dbb(t, t->dbs, 2u * qid + 1u), q->head, __ATOMIC_RELEASE);
	return true;
}

static struct pnvme_emu_stats t_stats(struct t *t)
{
	struct pnvme_emu_stats st;
	pnvme_emu_get_stats(t->emu, &st);
	return st;
}

static void test_dbbuf_config(void **state)
{
	struct t *t = t_up("emu:mode=step,nq=4");
	struct pnvme_id_ctrl *id = malloc(sizeof(*id));
	uint8_t *p = t_alloc(t, 3 * 4096);
	uint64_t a = t_iova(t, p), b = a + 4096;
	const uint16_t inval = ST(PNVME_SCT_GENERIC, PNVME_SC_INVALID_FIELD) | PNVME_STATUS_DNR;
	const uint16_t xfer = ST(PNVME_SCT_GENERIC, PNVME_SC_DATA_XFER_ERROR) | PNVME_STATUS_DNR;
	(void)state;

	assert_int_equal(t_identify(t, PNVME_ID_CNS_CTRL, 0, id), ST_OK);
	assert_int_equal(id->oacs & PNVME_OACS_DBBUF, PNVME_OACS_DBBUF);
	/* not page aligned, either pointer: Invalid Field */
	assert_int_equal(t_dbbuf_cmd(t, a + 8, b), inval);
	assert_int_equal(t_dbbuf_cmd(t, a, b + 4), inval);
	assert_int_equal(t_dbbuf_cmd(t, a + 512, b + 2048), inval);
	/* one page for both: Invalid Field */
	assert_int_equal(t_dbbuf_cmd(t, a, a), inval);
	/* outside the IOVA table: Data Transfer Error */
	assert_int_equal(t_dbbuf_cmd(t, 0x10000000000ull, b), xfer);
	assert_int_equal(t_dbbuf_cmd(t, a, ARENA_IOVA + ARENA_SIZE), xfer);
	assert_int_equal(t_dbbuf_cmd(t, ARENA_IOVA - 4096, b), xfer);
	/* good, then again (a second config replaces the first), with queues existing */
	assert_int_equal(t_dbbuf_cmd(t, a, b), ST_OK);
	t_ioq(t, 1, 8);
	assert_int_equal(t_dbbuf_cmd(t, b, a + 2 * 4096), ST_OK);
	t_close(t);

	/* dbbuf=0: not offered, the opcode is unknown */
	t = t_up("emu:mode=step,dbbuf=0");
	assert_int_equal(t_identify(t, PNVME_ID_CNS_CTRL, 0, id), ST_OK);
	assert_int_equal(id->oacs & PNVME_OACS_DBBUF, 0);
	p = t_alloc(t, 2 * 4096);
	assert_int_equal(t_dbbuf_cmd(t, t_iova(t, p), t_iova(t, p) + 4096),
			 ST(PNVME_SCT_GENERIC, PNVME_SC_INVALID_OPCODE) | PNVME_STATUS_DNR);
	free(id);
	t_close(t);
}

/* Tails and heads published in the shadow page only are processed; EventIdx follows. */
static void test_dbbuf_shadow_only(void **state)
{
	struct t *t = t_up("emu:mode=step,nq=4");
	uint8_t *buf = t_alloc(t, 4096);
	struct pnvme_emu_stats s0, s1;
	struct pnvme_cqe e;
	struct pnvme_sqe c;
	(void)state;

	t_dbbuf(t);
	t_ioq(t, 1, 16);
	assert_int_equal(*dbb(t, t->eis, 2), 0);       /* SQ 1 EventIdx */
	assert_int_equal(*dbb(t, t->eis, 3), 0);       /* CQ 1 EventIdx */
	pnvme_emu_step(t->emu);                         /* sees the admin CQ head */
	s0 = t_stats(t);

	/* three writes, tail 3 in the shadow entry, no register write */
	for (uint32_t i = 0; i < 3; i++) {
		fill(buf + 512 * i, 512, i);
		t_rw_sqe(t, &c, PNVME_NVM_WRITE, 1, i, 1, buf + 512 * i, 512);
		t_post_shadow(t, 1, &c);
	}
	assert_int_equal(rd32(t, PNVME_SQ_TDBL(1, 0)), 0);
	pnvme_emu_step(t->emu);
	s1 = t_stats(t);
	assert_int_equal(s1.commands - s0.commands, 3);
	assert_int_equal(s1.sq_doorbells, s0.sq_doorbells);        /* no MMIO seen */
	assert_int_equal(s1.shadow_sq_updates - s0.shadow_sq_updates, 1);
	assert_int_equal(*dbb(t, t->eis, 2), 3);       /* consumed up to 3 */
	for (uint16_t i = 0; i < 3; i++) {
		assert_true(t_reap_shadow(t, 1, &e));
		assert_int_equal(e.cid, i);
		assert_int_equal(PNVME_CQE_STATUS(&e), ST_OK);
		assert_int_equal(e.sqhd, i + 1);
	}
	pnvme_emu_step(t->emu);
	s1 = t_stats(t);
	assert_int_equal(s1.cq_doorbells, s0.cq_doorbells);
	assert_int_equal(s1.shadow_cq_updates - s0.shadow_cq_updates, 1);
	assert_int_equal(*dbb(t, t->eis, 3), 3);       /* head seen: 3 */

	/* the host's event rule: the first tail past EventIdx rings, the rest do not */
	for (uint32_t i = 0; i < 4; i++) {
		t_rw_sqe(t, &c, PNVME_NVM_READ, 1, i, 1, buf + 2048, 512);
		struct tq *q = &t->q[1];
		c.cid = q->cid++;
		memcpy(&q->sq[q->tail], &c, sizeof(c));
		q->tail = (uint16_t)((q->tail + 1u) % q->sqsize);
		pnvme_wmb();
		assert_int_equal(t_shadow_ring(t, 2, q->tail, PNVME_SQ_TDBL(1, 0)), i == 0);
	}
	pnvme_emu_step(t->emu);
	s0 = t_stats(t);
	assert_int_equal(s0.sq_doorbells - s1.sq_doorbells, 1);
	assert_int_equal(s0.commands - s1.commands, 4);
	assert_int_equal(*dbb(t, t->eis, 2), 7);
	for (int i = 0; i < 4; i++)
		assert_true(t_reap_shadow(t, 1, &e));
	assert_false(t_reap_shadow(t, 1, &e));

	/* a late register write of an older tail is ignored once the shadow is in use */
	wr32(t, PNVME_SQ_TDBL(1, 0), 2);
	pnvme_emu_step(t->emu);
	s1 = t_stats(t);
	assert_int_equal(s1.commands, s0.commands);
	assert_int_equal(s1.sq_doorbells - s0.sq_doorbells, 1);    /* seen, counted */
	assert_false(t_reap(t, 1, &e));

	/* the data went where it should */
	for (uint32_t i = 0; i < 3; i++) {
		uint8_t want[512], got[512];
		fill(want, 512, i);
		assert_int_equal(pnvme_emu_media_read(t->emu, 1, i * 512, got, 512), 0);
		assert_memory_equal(got, want, 512);
	}
	t_close(t);
}

/* A CQ that looks full takes room the host announced in the shadow entry only. */
static void test_dbbuf_cq_full(void **state)
{
	struct t *t = t_up("emu:mode=step");
	struct tq *q = &t->q[1];
	uint8_t *buf = t_alloc(t, 4096);
	struct pnvme_cqe e;
	struct pnvme_sqe c;
	(void)state;

	t_dbbuf(t);
	q->sq = t_alloc(t, 16 * 64);
	q->cq = t_alloc(t, 4 * 16);
	q->sqsize = 16;
	q->cqsize = 4;
	q->phase = 1;
	t_db_zero(t, 1);
	assert_int_equal(t_create_cq(t, 1, 4, t_iova(t, q->cq)), ST_OK);
	assert_int_equal(t_create_sq(t, 1, 1, 16, t_iova(t, q->sq)), ST_OK);
	pnvme_emu_step(t->emu);
	struct pnvme_emu_stats s0 = t_stats(t);
	for (int i = 0; i < 10; i++) {
		t_rw_sqe(t, &c, PNVME_NVM_READ, 1, (uint64_t)i, 1, buf, 512);
		t_post_shadow(t, 1, &c);
	}
	for (uint16_t want = 0; want < 10; want++) {
		bool got = false;
		for (int i = 0; i < 10 && !(got = t_reap_shadow(t, 1, &e)); i++)
			pnvme_emu_step(t->emu);
		assert_true(got);
		assert_int_equal(e.cid, want);
		assert_int_equal(PNVME_CQE_STATUS(&e), ST_OK);
	}
	pnvme_emu_step(t->emu);
	assert_false(t_reap_shadow(t, 1, &e));
	assert_int_equal(t_stats(t).cq_doorbells, s0.cq_doorbells);   /* no MMIO at all */
	assert_int_equal(t_stats(t).sq_doorbells, s0.sq_doorbells);
	assert_true(t_stats(t).shadow_cq_updates > s0.shadow_cq_updates);
	assert_int_equal(*dbb(t, t->eis, 2), 10);
	t_close(t);
}

/*
 * Queues the shadow page cannot hold, the admin queue, a host that keeps to
 * the registers, a stale shadow value at creation, controller reset, unmap.
 */
static void test_dbbuf_fallbacks(void **state)
{
	struct t *t = t_up("emu:mode=step,dstrd=8,nq=4");
	struct pnvme_emu_stats s0, s1;
	struct pnvme_sqe ka = { .opc = PNVME_ADM_KEEP_ALIVE };
	struct pnvme_sqe c;
	uint8_t *buf;
	(void)state;

	/* stride 1024: SQ 1 at 2048, CQ 1 at 3072 fit; SQ 2 at 4096 does not */
	t_dbbuf(t);
	buf = t_alloc(t, 4096);
	t_ioq(t, 1, 8);
	t_ioq(t, 2, 8);
	s0 = t_stats(t);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	t_post_shadow(t, 1, &c);
	pnvme_emu_step(t->emu);
	assert_int_equal(t_stats(t).commands - s0.commands, 1);
	assert_int_equal(*dbb(t, t->eis, 2), 1);
	/* queue 2: registers only, and the admin queue too */
	assert_int_equal(t_rw(t, 2, PNVME_NVM_READ, 0, 1, buf, 512), ST_OK);
	assert_int_equal(t_cmd(t, 0, &ka, NULL), ST_OK);
	t_close(t);

	t = t_up("emu:mode=step,nq=4");
	buf = t_alloc(t, 4096);
	t_dbbuf(t);
	/* a host that never writes the shadow entries: registers work as before */
	t_ioq(t, 1, 8);
	for (int i = 0; i < 20; i++)
		assert_int_equal(t_rw(t, 1, PNVME_NVM_READ, 0, 1, buf, 512), ST_OK);

	/* a stale shadow tail left in the page is not a doorbell for a new queue */
	*dbb(t, t->dbs, 2u * 3) = 5;
	*dbb(t, t->dbs, 2u * 3 + 1) = 3;
	*dbb(t, t->eis, 2u * 3) = 6;
	t_ioq(t, 3, 8);
	assert_int_equal(*dbb(t, t->eis, 2u * 3), 0);   /* EventIdx set afresh */
	s0 = t_stats(t);
	pnvme_emu_step(t->emu);
	pnvme_emu_step(t->emu);
	assert_int_equal(t_stats(t).commands, s0.commands);
	*dbb(t, t->dbs, 2u * 3) = 0;                     /* the host zeroes its entries */
	*dbb(t, t->dbs, 2u * 3 + 1) = 0;
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	t_post_shadow(t, 3, &c);
	pnvme_emu_step(t->emu);
	assert_int_equal(t_stats(t).commands - s0.commands, 1);

	/* Config with a queue in use: its tail is written into the shadow entry */
	assert_int_equal(t_dbbuf_cmd(t, t_iova(t, t->dbs), t_iova(t, t->eis)), ST_OK);
	assert_int_equal(*dbb(t, t->dbs, 2u * 3), 1);
	assert_int_equal(*dbb(t, t->eis, 2u * 3), 1);

	/* unmapping the pages: every queue goes back to its registers */
	{
		struct t *u = t;
		uint8_t *extra = mmap(NULL, 8192, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		assert_true(extra != MAP_FAILED);
		memset(extra, 0, 8192);
		assert_int_equal(pnvme_emu_map(u->emu, extra, 0x40000000ull, 8192), 0);
		assert_int_equal(t_dbbuf_cmd(u, 0x40000000ull, 0x40001000ull), ST_OK);
		u->dbs = (uint32_t *)extra;
		u->eis = (uint32_t *)(extra + 4096);
		t_rw_sqe(u, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
		struct pnvme_cqe e;
		t_post_shadow(u, 3, &c);
		assert_true(t_wait(u, 3, &e));
		assert_int_equal(pnvme_emu_unmap(u->emu, 0x40000000ull, 8192), 0);
		s0 = t_stats(u);
		t_post_shadow(u, 3, &c);                 /* nobody looks at it now */
		pnvme_emu_step(u->emu);
		assert_int_equal(t_stats(u).commands, s0.commands);
		wr32(u, PNVME_SQ_TDBL(3, 0), u->q[3].tail);
		assert_true(t_wait(u, 3, &e));
		munmap(extra, 8192);
	}
	t_close(t);

	/* CC.EN = 0 forgets the configuration */
	t = t_up("emu:mode=step,nq=4");
	buf = t_alloc(t, 4096);
	t_dbbuf(t);
	t_disable(t);
	t_enable(t);
	memset(t->dbs, 0, 4096);
	memset(t->eis, 0, 4096);
	t_ioq(t, 1, 8);
	s0 = t_stats(t);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	t_post_shadow(t, 1, &c);
	pnvme_emu_step(t->emu);
	s1 = t_stats(t);
	assert_int_equal(s1.commands, s0.commands);
	assert_int_equal(s1.shadow_sq_updates, s0.shadow_sq_updates);
	assert_int_equal(*dbb(t, t->eis, 2), 0);
	wr32(t, PNVME_SQ_TDBL(1, 0), 1);                 /* the register still works */
	struct pnvme_cqe e;
	assert_true(t_wait(t, 1, &e));
	assert_int_equal(PNVME_CQE_STATUS(&e), ST_OK);
	t_close(t);
}

/* Thread mode: a host that never writes a register after Doorbell Buffer Config. */
static void test_dbbuf_thread(void **state)
{
	struct t *t = t_up("emu:mode=thread,nq=2");
	uint8_t *buf = t_alloc(t, 4096);
	struct pnvme_emu_stats st;
	struct pnvme_cqe e;
	struct pnvme_sqe c;
	(void)state;

	t_dbbuf(t);
	t_ioq(t, 1, 32);
	for (uint32_t i = 0; i < 2000; i++) {
		t_rw_sqe(t, &c, i & 1 ? PNVME_NVM_READ : PNVME_NVM_WRITE, 1, i % 64, 1, buf, 512);
		uint16_t cid = t_post_shadow(t, 1, &c);
		bool got = false;
		double t0 = now_s();
		/* a spin bounded by time, not by a count of pauses (a few ms) */
		for (long n = 0; t_waiting(t, 0, 0, t0) && !(got = t_reap_shadow(t, 1, &e)); n++) {
			if ((n & 1023) == 1023)
				sched_yield(); /* the emulator thread may need this core */
			else
				pnvme_cpu_relax();
		}
		assert_true(got);
		assert_int_equal(e.cid, cid);
		assert_int_equal(PNVME_CQE_STATUS(&e), ST_OK);
	}
	pnvme_emu_get_stats(t->emu, &st);
	assert_true(st.shadow_sq_updates >= 2000);
	assert_true(st.shadow_cq_updates >= 1);
	t_close(t);
}

/* ------------------------------------------------------------------------ */
/* Faults                                                                   */
/* ------------------------------------------------------------------------ */

static void test_fault_never_ready(void **state)
{
	struct t *t = t_open("emu:mode=step");
	(void)state;

	assert_int_equal(fault(t, PNVME_EMU_FAULT_NEVER_READY, 0, 0, 0, 0, 0, 0), 0);
	t_admin_regs(t, 8);
	wr32(t, PNVME_REG_CC, CC_ENABLE);
	for (int i = 0; i < 100; i++)
		pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS), 0);
	wr32(t, PNVME_REG_CC, 0);
	pnvme_emu_step(t->emu);
	pnvme_emu_clear_faults(t->emu);
	t_enable(t);
	t_close(t);
}

static void test_fault_cfs(void **state)
{
	struct t *t = t_up("emu:mode=step");
	struct pnvme_sqe c = { .opc = PNVME_ADM_KEEP_ALIVE };
	struct pnvme_cqe e;
	(void)state;

	assert_int_equal(fault(t, PNVME_EMU_FAULT_CFS, 0, 0, 0, 0, 0, 0), 0);
	assert_int_equal(rd32(t, PNVME_REG_CSTS) & 2u, 2u);
	/* processing stops */
	t_submit(t, 0, &c);
	for (int i = 0; i < 10; i++)
		pnvme_emu_step(t->emu);
	assert_false(t_reap(t, 0, &e));
	/* a reset with the fault armed keeps CFS */
	wr32(t, PNVME_REG_CC, 0);
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS), 2u);
	/* an enable with the fault still armed fails again */
	t_admin_regs(t, 8);
	wr32(t, PNVME_REG_CC, CC_ENABLE);
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS) & 3u, 2u);
	wr32(t, PNVME_REG_CC, 0);
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS), 2u);
	/* cleared: CFS stays until the controller is reset or enabled again */
	pnvme_emu_clear_faults(t->emu);
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS), 2u);
	t->q[0].cid = 0;
	t_enable(t);
	assert_int_equal(t_cmd(t, 0, &c, NULL), ST_OK);
	t_close(t);
}

static void test_fault_cfs_on_enable(void **state)
{
	struct t *t = t_open("emu:mode=step");
	(void)state;

	assert_int_equal(fault(t, PNVME_EMU_FAULT_CFS_ON_ENABLE, 0, 0, 0, 0, 0, 0), 0);
	t_admin_regs(t, 8);
	wr32(t, PNVME_REG_CC, CC_ENABLE);
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS) & 3u, 2u);
	wr32(t, PNVME_REG_CC, 0);
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS), 0);
	/* one shot: the next enable works */
	t_enable(t);
	t_close(t);
}

static void test_fault_all_ones(void **state)
{
	struct t *t = t_up("emu:mode=step");
	struct pnvme_sqe c = { .opc = PNVME_ADM_KEEP_ALIVE };
	(void)state;

	assert_int_equal(fault(t, PNVME_EMU_FAULT_ALL_ONES, 0, 0, 0, 0, 0, 0), 0);
	for (size_t off = 0; off < t->bar_len; off += 4)
		assert_int_equal(rd32(t, off), 0xffffffffu);
	/* writes vanish while the device is gone */
	wr32(t, PNVME_REG_CC, 0);
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CC), 0xffffffffu);
	assert_int_equal(mmio_read64(t->bar, PNVME_REG_CAP), UINT64_MAX);
	/* back after clear + disable */
	pnvme_emu_clear_faults(t->emu);
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_VS), 0xffffffffu);
	wr32(t, PNVME_REG_CC, 0);
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_VS), PNVME_VS(2, 0, 0));
	assert_int_equal(rd32(t, PNVME_REG_CSTS), 0);
	t->q[0].cid = 0;
	t_enable(t);
	assert_int_equal(t_cmd(t, 0, &c, NULL), ST_OK);
	t_close(t);
}

static void test_fault_drop_status(void **state)
{
	struct t *t = t_up("emu:mode=step");
	uint8_t *buf = t_alloc(t, 4096);
	struct pnvme_emu_stats st;
	struct pnvme_cqe e;
	struct pnvme_sqe c;
	uint16_t s;
	(void)state;

	t_ioq(t, 1, 16);
	/* drop the 2nd read on queue 1 only */
	assert_int_equal(fault(t, PNVME_EMU_FAULT_DROP_CPL, 1, PNVME_NVM_READ, 1, 1, 0, 0), 0);
	assert_int_equal(t_rw(t, 1, PNVME_NVM_READ, 0, 1, buf, 512), ST_OK);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	t_submit(t, 1, &c);
	for (int i = 0; i < 10; i++)
		pnvme_emu_step(t->emu);
	assert_false(t_reap(t, 1, &e));
	pnvme_emu_get_stats(t->emu, &st);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(t_rw(t, 1, PNVME_NVM_READ, 0, 1, buf, 512), ST_OK);   /* count exhausted */
	assert_int_equal(t_rw(t, 1, PNVME_NVM_WRITE, 0, 1, buf, 512), ST_OK);

	/* status fault: any queue, writes, every time; DNR comes through */
	uint16_t want = (uint16_t)(PNVME_STATUS(PNVME_SCT_MEDIA, PNVME_SC_WRITE_FAULT) |
				   PNVME_STATUS_DNR);
	assert_int_equal(fault(t, PNVME_EMU_FAULT_STATUS, PNVME_EMU_ANY_QID, PNVME_NVM_WRITE, 0, 0,
			       want, 0), 0);
	for (int i = 0; i < 3; i++) {
		t_rw_sqe(t, &c, PNVME_NVM_WRITE, 1, 0, 1, buf, 512);
		s = t_cmd(t, 1, &c, &e);
		assert_int_equal(s, want);
		assert_int_equal(e.status, (uint16_t)((want << 1) | 1u));
	}
	assert_int_equal(t_rw(t, 1, PNVME_NVM_READ, 0, 1, buf, 512), ST_OK);
	/* an admin status fault on any opcode, after one */
	assert_int_equal(fault(t, PNVME_EMU_FAULT_STATUS, 0, PNVME_EMU_ANY_OPC, 1, 1,
			       PNVME_STATUS(0, PNVME_SC_INTERNAL), 0), 0);
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_KEEP_ALIVE;
	assert_int_equal(t_cmd(t, 0, &c, NULL), ST_OK);
	assert_int_equal(t_cmd(t, 0, &c, NULL), PNVME_STATUS(0, PNVME_SC_INTERNAL));
	assert_int_equal(t_cmd(t, 0, &c, NULL), ST_OK);

	pnvme_emu_clear_faults(t->emu);
	assert_int_equal(t_rw(t, 1, PNVME_NVM_WRITE, 0, 1, buf, 512), ST_OK);

	/* -EINVAL for unknown kinds, -ENOSPC past 16 */
	assert_int_equal(fault(t, (enum pnvme_emu_fault_kind)0, 0, 0, 0, 0, 0, 0), -EINVAL);
	assert_int_equal(fault(t, (enum pnvme_emu_fault_kind)99, 0, 0, 0, 0, 0, 0), -EINVAL);
	for (int i = 0; i < 16; i++)
		assert_int_equal(fault(t, PNVME_EMU_FAULT_DROP_CPL, 9, 0x55, 0, 0, 0, 0), 0);
	assert_int_equal(fault(t, PNVME_EMU_FAULT_DROP_CPL, 9, 0x55, 0, 0, 0, 0), -ENOSPC);
	pnvme_emu_clear_faults(t->emu);
	t_close(t);
}

static void test_fault_delay(void **state)
{
	struct t *t = t_up("emu:mode=step");
	uint8_t *buf = t_alloc(t, 4096);
	struct timespec a, b;
	struct pnvme_cqe e;
	struct pnvme_sqe c;
	int steps = 0;
	(void)state;

	t_ioq(t, 1, 16);
	assert_int_equal(fault(t, PNVME_EMU_FAULT_DELAY_CPL, 1, PNVME_EMU_ANY_OPC, 0, 1, 0, 20000),
			 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	uint16_t cid = t_submit(t, 1, &c);
	/* a later command overtakes the delayed one */
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	uint16_t cid2 = t_submit(t, 1, &c);
	pnvme_emu_step(t->emu);
	assert_true(t_reap(t, 1, &e));
	assert_int_equal(e.cid, cid2);
	while (!t_reap(t, 1, &e)) {
		pnvme_emu_step(t->emu);
		steps++;
		assert_true(steps < 10000000);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_int_equal(e.cid, cid);
	assert_int_equal(PNVME_CQE_STATUS(&e), ST_OK);
	uint64_t us = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000u +
		      (uint64_t)((b.tv_nsec - a.tv_nsec) / 1000);
	assert_true(us >= 20000);
	t_close(t);
}

static void test_fault_reorder(void **state)
{
	struct t *t = t_up("emu:mode=step");
	uint8_t *buf = t_alloc(t, 4096);
	struct pnvme_cqe e;
	struct pnvme_sqe c;
	uint16_t cids[4];
	(void)state;

	t_ioq(t, 1, 16);
	assert_int_equal(fault(t, PNVME_EMU_FAULT_REORDER, 0, 0, 0, 0, 0, 0), 0);
	for (int i = 0; i < 4; i++) {
		t_rw_sqe(t, &c, PNVME_NVM_READ, 1, (uint64_t)i, 1, buf, 512);
		cids[i] = t_submit(t, 1, &c);
	}
	pnvme_emu_step(t->emu);
	for (int i = 3; i >= 0; i--) {
		assert_true(t_reap(t, 1, &e));
		assert_int_equal(e.cid, cids[i]);
		assert_int_equal(e.sqhd, 4);
	}
	t_close(t);
}

static void test_shutdown(void **state)
{
	struct t *t = t_up("emu:mode=step");
	uint32_t cc = CC_ENABLE | PNVME_SET(PNVME_CC_SHN, PNVME_CC_SHN_NORMAL);
	(void)state;

	wr32(t, PNVME_REG_CC, cc);
	pnvme_emu_step(t->emu);
	assert_int_equal(PNVME_GET(rd32(t, PNVME_REG_CSTS), PNVME_CSTS_SHST), PNVME_CSTS_SHST_COMPLETE);
	t_disable(t);

	/* NO_SHUTDOWN: SHST never reaches complete */
	t->q[0].cid = 0;
	t_enable(t);
	assert_int_equal(fault(t, PNVME_EMU_FAULT_NO_SHUTDOWN, 0, 0, 0, 0, 0, 0), 0);
	wr32(t, PNVME_REG_CC, cc);
	for (int i = 0; i < 50; i++)
		pnvme_emu_step(t->emu);
	assert_int_not_equal(PNVME_GET(rd32(t, PNVME_REG_CSTS), PNVME_CSTS_SHST),
			     PNVME_CSTS_SHST_COMPLETE);
	t_close(t);
}

/* ------------------------------------------------------------------------ */
/* Abort, SQ deletion, AER                                                   */
/* ------------------------------------------------------------------------ */

static uint16_t t_abort(struct t *t, uint16_t sqid, uint16_t cid, uint32_t *dw0)
{
	struct pnvme_sqe c = { .opc = PNVME_ADM_ABORT };
	struct pnvme_cqe e;
	uint16_t st;

	c.cdw10 = sqid | ((uint32_t)cid << 16);
	st = t_cmd(t, 0, &c, &e);
	*dw0 = e.dw0;
	return st;
}

static void test_abort(void **state)
{
	struct t *t = t_up("emu:mode=step");
	uint8_t *buf = t_alloc(t, 4096);
	struct pnvme_cqe e;
	struct pnvme_sqe c;
	uint32_t dw0;
	(void)state;

	t_ioq(t, 1, 16);
	/* a delayed command is still held: aborted */
	assert_int_equal(fault(t, PNVME_EMU_FAULT_DELAY_CPL, 1, PNVME_EMU_ANY_OPC, 0, 1, 0,
			       60000000), 0);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	uint16_t cid = t_submit(t, 1, &c);
	pnvme_emu_step(t->emu);
	assert_false(t_reap(t, 1, &e));
	assert_int_equal(t_abort(t, 1, cid, &dw0), ST_OK);
	assert_int_equal(dw0 & 1u, 0);
	assert_true(t_wait(t, 1, &e));
	assert_int_equal(e.cid, cid);
	assert_int_equal(PNVME_CQE_STATUS(&e), PNVME_STATUS(0, PNVME_SC_ABORT_REQ));

	/* a completed command: not aborted */
	assert_int_equal(t_abort(t, 1, cid, &dw0), ST_OK);
	assert_int_equal(dw0 & 1u, 1);
	/* unknown SQ: not aborted */
	assert_int_equal(t_abort(t, 9, 0, &dw0), ST_OK);
	assert_int_equal(dw0 & 1u, 1);

	/* an Asynchronous Event Request is held until aborted */
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_ASYNC_EVENT;
	uint16_t aer = t_submit(t, 0, &c);
	pnvme_emu_step(t->emu);
	assert_false(t_reap(t, 0, &e));
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_ABORT;
	c.cdw10 = (uint32_t)aer << 16;
	uint16_t ab = t_submit(t, 0, &c);
	pnvme_emu_step(t->emu);
	for (int i = 0; i < 2; i++) {               /* both complete, in either order */
		assert_true(t_reap(t, 0, &e));
		if (e.cid == ab) {
			assert_int_equal(PNVME_CQE_STATUS(&e), ST_OK);
			assert_int_equal(e.dw0 & 1u, 0);
		} else {
			assert_int_equal(e.cid, aer);
			assert_int_equal(PNVME_CQE_STATUS(&e), PNVME_STATUS(0, PNVME_SC_ABORT_REQ));
		}
	}
	assert_false(t_reap(t, 0, &e));
	/* AERL = 3: the fifth outstanding one is refused */
	for (int i = 0; i < 4; i++) {
		memset(&c, 0, sizeof(c));
		c.opc = PNVME_ADM_ASYNC_EVENT;
		t_submit(t, 0, &c);
	}
	pnvme_emu_step(t->emu);
	assert_false(t_reap(t, 0, &e));
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_ASYNC_EVENT;
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 0, &c, NULL)), ST(1, PNVME_SC_AER_LIMIT));
	t_close(t);
}

static void test_abort_unfetched(void **state)
{
	struct t *t = t_up("emu:mode=step");
	uint8_t *buf = t_alloc(t, 4096);
	struct tq *q = &t->q[1];
	struct pnvme_sqe c;
	struct pnvme_cqe e;
	(void)state;

	t_ioq(t, 1, 16);
	/* put the read in SQ 1 and ring, put the abort in the admin SQ and ring:
	 * the admin queue is served first, so the read is not fetched yet */
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	uint16_t cid = t_submit(t, 1, &c);
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_ABORT;
	c.cdw10 = 1u | ((uint32_t)cid << 16);
	t_submit(t, 0, &c);
	pnvme_emu_step(t->emu);
	assert_true(t_reap(t, 0, &e));
	assert_int_equal(e.dw0 & 1u, 0);
	assert_true(t_reap(t, 1, &e));
	assert_int_equal(e.cid, cid);
	assert_int_equal(PNVME_CQE_STATUS(&e), PNVME_STATUS(0, PNVME_SC_ABORT_REQ));
	assert_int_equal(e.sqhd, q->tail);
	t_close(t);
}

/*
 * An Abort aimed at an SQ whose ring memory was unmapped: commands are left
 * between head and tail (the CQ is full, so fetching stopped), the ring's
 * mapping goes away and its memory with it, then the Abort looks for the
 * command. The controller must not touch the ring (it used to read it through
 * a NULL pointer): the answer is "not aborted", and it keeps working.
 */
static void test_abort_unmapped_sq(void **state)
{
	struct t *t = t_up("emu:mode=step");
	uint8_t *buf = t_alloc(t, 4096);
	const uint64_t ring_iova = 0x40000000ull;
	struct tq *q = &t->q[1];
	struct pnvme_sqe c;
	struct pnvme_cqe e;
	uint16_t cid[3];
	uint32_t dw0;
	(void)state;

	/* CQ 1 of two entries (one usable) in the arena, SQ 1 in its own mapping */
	q->sq = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(q->sq != MAP_FAILED);
	assert_int_equal(pnvme_emu_map(t->emu, q->sq, ring_iova, 4096), 0);
	q->cq = t_alloc(t, 4096);
	q->sqsize = 8;
	q->cqsize = 2;
	q->phase = 1;
	t_db_zero(t, 1);
	assert_int_equal(t_create_cq(t, 1, 2, t_iova(t, q->cq)), ST_OK);
	assert_int_equal(t_create_sq(t, 1, 1, 8, ring_iova), ST_OK);
	for (int i = 0; i < 3; i++) {
		t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
		cid[i] = t_submit(t, 1, &c);
	}
	pnvme_emu_step(t->emu);          /* one posted, one waiting for room, one unfetched */

	assert_int_equal(pnvme_emu_unmap(t->emu, ring_iova, 4096), 0);
	munmap(q->sq, 4096);
	q->sq = NULL;
	assert_int_equal(t_abort(t, 1, cid[2], &dw0), ST_OK);
	assert_int_equal(dw0 & 1u, 1u);  /* not aborted: the ring cannot be read */
	assert_int_equal(t_abort(t, 1, cid[1], &dw0), ST_OK);
	assert_int_equal(dw0 & 1u, 1u);

	/* still alive: the posted completion is there, admin commands work */
	assert_true(t_reap(t, 1, &e));
	assert_int_equal(e.cid, cid[0]);
	uint8_t id[4096];
	assert_int_equal(t_identify(t, PNVME_ID_CNS_CTRL, 0, id), ST_OK);
	assert_int_equal(t_delete(t, PNVME_ADM_DELETE_SQ, 1), ST_OK);
	assert_int_equal(t_delete(t, PNVME_ADM_DELETE_CQ, 1), ST_OK);
	t_close(t);
}

static void test_delete_sq_aborts(void **state)
{
	struct t *t = t_up("emu:mode=step");
	uint8_t *buf = t_alloc(t, 4096);
	struct pnvme_cqe e;
	struct pnvme_sqe c;
	(void)state;

	t_ioq(t, 1, 16);
	assert_int_equal(fault(t, PNVME_EMU_FAULT_DELAY_CPL, 1, PNVME_EMU_ANY_OPC, 0, 0, 0,
			       60000000), 0);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	uint16_t c1 = t_submit(t, 1, &c);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	uint16_t c2 = t_submit(t, 1, &c);
	pnvme_emu_step(t->emu);
	assert_false(t_reap(t, 1, &e));
	assert_int_equal(t_delete(t, PNVME_ADM_DELETE_SQ, 1), ST_OK);
	assert_true(t_reap(t, 1, &e));
	assert_int_equal(e.cid, c1);
	assert_int_equal(PNVME_CQE_STATUS(&e), PNVME_STATUS(0, PNVME_SC_ABORT_SQ_DELETED));
	assert_true(t_reap(t, 1, &e));
	assert_int_equal(e.cid, c2);
	assert_int_equal(PNVME_CQE_STATUS(&e), PNVME_STATUS(0, PNVME_SC_ABORT_SQ_DELETED));
	assert_int_equal(t_delete(t, PNVME_ADM_DELETE_CQ, 1), ST_OK);
	t_close(t);
}

/* ------------------------------------------------------------------------ */
/* Reliability faults (hostile or buggy devices)                             */
/* ------------------------------------------------------------------------ */

/* NEVER_READY armed on a running controller: nothing changes until the next
 * enable, which never reaches RDY (a failed controller reset). */
static void test_fault_never_ready_after_bringup(void **state)
{
	struct t *t = t_up("emu:mode=step");
	struct pnvme_sqe c = { .opc = PNVME_ADM_KEEP_ALIVE };
	(void)state;

	assert_int_equal(fault(t, PNVME_EMU_FAULT_NEVER_READY, 0, 0, 0, 0, 0, 0), 0);
	assert_int_equal(t_cmd(t, 0, &c, NULL), ST_OK);      /* still running */
	assert_int_equal(rd32(t, PNVME_REG_CSTS) & 3u, 1u);
	t_disable(t);                                         /* the reset's first half works */
	t_admin_regs(t, 8);
	wr32(t, PNVME_REG_CC, CC_ENABLE);
	for (int i = 0; i < 200; i++)
		pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS), 0);       /* no RDY, no CFS */
	/* and again: still never ready while armed */
	wr32(t, PNVME_REG_CC, 0);
	pnvme_emu_step(t->emu);
	wr32(t, PNVME_REG_CC, CC_ENABLE);
	for (int i = 0; i < 50; i++)
		pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS), 0);
	wr32(t, PNVME_REG_CC, 0);
	pnvme_emu_step(t->emu);
	pnvme_emu_clear_faults(t->emu);
	t->q[0].cid = 0;
	t_enable(t);
	assert_int_equal(t_cmd(t, 0, &c, NULL), ST_OK);
	t_close(t);
}

/* Surprise removal with commands in both directions in flight: once ALL_ONES
 * is armed, stepping touches no host memory at all (the arena is made
 * inaccessible, so any access would fault). */
static void test_fault_all_ones_mid_io(void **state)
{
	struct t *t = t_up("emu:mode=step");
	uint8_t *rbuf = t_alloc(t, 4096), *wbuf = t_alloc(t, 4096), media[512];
	struct pnvme_emu_stats before, after;
	struct tq *q = &t->q[1];
	struct pnvme_sqe c;
	struct pnvme_cqe e;
	(void)state;

	t_ioq(t, 1, 16);
	/* one completion is being held by a delay fault when the device goes */
	assert_int_equal(fault(t, PNVME_EMU_FAULT_DELAY_CPL, 1, PNVME_EMU_ANY_OPC, 0, 1, 0, 1), 0);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, rbuf, 512);
	t_submit(t, 1, &c);
	pnvme_emu_step(t->emu);
	/* more commands rung but not fetched yet */
	memset(rbuf, 0xa5, 4096);
	fill(wbuf, 512, 9);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 1, 1, rbuf, 512);
	t_submit(t, 1, &c);
	t_rw_sqe(t, &c, PNVME_NVM_WRITE, 1, 2, 1, wbuf, 512);
	t_submit(t, 1, &c);
	pnvme_emu_get_stats(t->emu, &before);

	assert_int_equal(fault(t, PNVME_EMU_FAULT_ALL_ONES, 0, 0, 0, 0, 0, 0), 0);
	usleep(2000);                                         /* the delay has expired */
	assert_int_equal(mprotect(t->arena, ARENA_SIZE, PROT_NONE), 0);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(pnvme_emu_step(t->emu), 0);
		/* the host keeps ringing doorbells of a device that is gone */
		wr32(t, PNVME_SQ_TDBL(1, t->dstrd), 3);
		wr32(t, PNVME_CQ_HDBL(1, t->dstrd), 0);
	}
	assert_int_equal(mprotect(t->arena, ARENA_SIZE, PROT_READ | PROT_WRITE), 0);
	pnvme_emu_get_stats(t->emu, &after);
	assert_int_equal(after.commands, before.commands);
	assert_int_equal(after.completions, before.completions);
	assert_int_equal(rd32(t, PNVME_REG_CSTS), 0xffffffffu);
	assert_false(t_reap(t, 1, &e));
	for (int i = 0; i < 4096; i++)
		assert_int_equal(rbuf[i], 0xa5);
	assert_int_equal(pnvme_emu_media_read(t->emu, 1, 2 * 512, media, sizeof(media)), 0);
	assert_int_not_equal(memcmp(media, wbuf, sizeof(media)), 0);
	(void)q;

	/* back: clear, CC.EN = 0 resets it, nothing held survives */
	pnvme_emu_clear_faults(t->emu);
	wr32(t, PNVME_REG_CC, 0);
	pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS), 0);
	t->q[0].cid = 0;
	t_enable(t);
	t_ioq(t, 1, 16);
	assert_int_equal(t_rw(t, 1, PNVME_NVM_READ, 0, 1, rbuf, 512), ST_OK);
	t_close(t);
}

/* A dropped completion: the command ran and was forgotten, so Abort reports
 * "not aborted" and nothing is ever posted for it (DELAY_CPL + Abort is in
 * test_abort). */
static void test_fault_drop_then_abort(void **state)
{
	struct t *t = t_up("emu:mode=step");
	uint8_t *buf = t_alloc(t, 4096);
	struct pnvme_emu_stats st;
	struct pnvme_cqe e;
	struct pnvme_sqe c;
	uint32_t dw0;
	(void)state;

	t_ioq(t, 1, 16);
	fill(buf, 512, 4);
	assert_int_equal(fault(t, PNVME_EMU_FAULT_DROP_CPL, 1, PNVME_NVM_WRITE, 0, 1, 0, 0), 0);
	t_rw_sqe(t, &c, PNVME_NVM_WRITE, 1, 5, 1, buf, 512);
	uint16_t cid = t_submit(t, 1, &c);
	for (int i = 0; i < 5; i++)
		pnvme_emu_step(t->emu);
	assert_false(t_reap(t, 1, &e));
	uint8_t media[512];
	assert_int_equal(pnvme_emu_media_read(t->emu, 1, 5 * 512, media, 512), 0);
	assert_memory_equal(media, buf, 512);                 /* it was executed */
	assert_int_equal(t_abort(t, 1, cid, &dw0), ST_OK);
	assert_int_equal(dw0 & 1u, 1u);                       /* not aborted */
	for (int i = 0; i < 5; i++)
		pnvme_emu_step(t->emu);
	assert_false(t_reap(t, 1, &e));
	/* deleting the SQ does not bring it back either */
	assert_int_equal(t_delete(t, PNVME_ADM_DELETE_SQ, 1), ST_OK);
	assert_false(t_reap(t, 1, &e));
	pnvme_emu_get_stats(t->emu, &st);
	assert_int_equal(st.dropped, 1);
	t_close(t);
}

static void test_fault_ignore_abort(void **state)
{
	struct t *t = t_up("emu:mode=step");
	uint8_t *buf = t_alloc(t, 4096);
	struct pnvme_sqe c;
	struct pnvme_cqe e;
	uint32_t dw0;
	(void)state;

	t_ioq(t, 1, 16);
	assert_int_equal(fault(t, PNVME_EMU_FAULT_DELAY_CPL, 1, PNVME_EMU_ANY_OPC, 0, 1, 0,
			       60000000), 0);
	/* any opcode on any queue: only Abort commands count (skip 1, then 1) */
	assert_int_equal(fault(t, PNVME_EMU_FAULT_IGNORE_ABORT, PNVME_EMU_ANY_QID,
			       PNVME_EMU_ANY_OPC, 1, 1, 0, 0), 0);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	uint16_t cid = t_submit(t, 1, &c);
	pnvme_emu_step(t->emu);
	assert_false(t_reap(t, 1, &e));
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_KEEP_ALIVE;
	assert_int_equal(t_cmd(t, 0, &c, NULL), ST_OK);      /* not counted */
	/* the first Abort is let through (skip): a command not held anywhere */
	assert_int_equal(t_abort(t, 1, 0xabc, &dw0), ST_OK);
	assert_int_equal(dw0 & 1u, 1u);
	/* the second is ignored: the held command stays untouched */
	assert_int_equal(t_abort(t, 1, cid, &dw0), ST_OK);
	assert_int_equal(dw0 & 1u, 1u);
	for (int i = 0; i < 5; i++)
		pnvme_emu_step(t->emu);
	assert_false(t_reap(t, 1, &e));
	/* count exhausted: the next Abort works */
	assert_int_equal(t_abort(t, 1, cid, &dw0), ST_OK);
	assert_int_equal(dw0 & 1u, 0u);
	assert_true(t_wait(t, 1, &e));
	assert_int_equal(e.cid, cid);
	assert_int_equal(PNVME_CQE_STATUS(&e), PNVME_STATUS(0, PNVME_SC_ABORT_REQ));
	t_close(t);
}

static void test_fault_cqe_bad_cid(void **state)
{
	struct t *t = t_up("emu:mode=step");
	uint8_t *buf = t_alloc(t, 4096);
	struct pnvme_cqe e;
	struct pnvme_sqe c;
	(void)state;

	t_ioq(t, 1, 16);
	assert_int_equal(pnvme_emu_media_write(t->emu, 1, 0, "hostile", 7), 0);
	assert_int_equal(fault(t, PNVME_EMU_FAULT_CQE_BAD_CID, 1, PNVME_NVM_READ, 0, 1, 0, 0), 0);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	t_submit(t, 1, &c);
	assert_true(t_wait(t, 1, &e));
	assert_int_equal(e.cid, 0xfffe);
	assert_int_equal(e.sqid, 1);
	assert_int_equal(e.sqhd, 1);
	assert_int_equal(PNVME_CQE_STATUS(&e), ST_OK);
	assert_memory_equal(buf, "hostile", 7);               /* the command itself ran */
	assert_false(t_reap(t, 1, &e));
	assert_int_equal(t_rw(t, 1, PNVME_NVM_READ, 0, 1, buf, 512), ST_OK);   /* one only */
	t_close(t);
}

static void test_fault_cqe_dup(void **state)
{
	struct t *t = t_up("emu:mode=step");
	uint8_t *buf = t_alloc(t, 4096);
	struct tq *q = &t->q[1];
	struct pnvme_emu_stats st;
	struct pnvme_cqe e, e2;
	struct pnvme_sqe c;
	(void)state;

	t_ioq(t, 1, 16);
	assert_int_equal(fault(t, PNVME_EMU_FAULT_CQE_DUP, 1, PNVME_EMU_ANY_OPC, 0, 1, 0, 0), 0);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	uint16_t cid = t_submit(t, 1, &c);
	pnvme_emu_step(t->emu);
	assert_true(t_reap(t, 1, &e));
	assert_true(t_reap(t, 1, &e2));
	assert_int_equal(e.cid, cid);
	assert_int_equal(e2.cid, cid);
	assert_int_equal(e.sqhd, e2.sqhd);
	assert_int_equal(e.status, e2.status);
	assert_false(t_reap(t, 1, &e2));
	pnvme_emu_get_stats(t->emu, &st);
	assert_int_equal(st.completions - st.commands, 1);    /* one entry more than commands */
	assert_int_equal(t_rw(t, 1, PNVME_NVM_READ, 0, 1, buf, 512), ST_OK);
	assert_false(t_reap(t, 1, &e));

	/* a duplicate that does not fit waits for room like any completion:
	 * CQ of 4 (3 usable), two commands both duplicated: 3 now, 1 later */
	assert_int_equal(t_delete(t, PNVME_ADM_DELETE_SQ, 1), ST_OK);
	assert_int_equal(t_delete(t, PNVME_ADM_DELETE_CQ, 1), ST_OK);
	q->sq = t_alloc(t, 16 * 64);
	q->cq = t_alloc(t, 4 * 16);
	q->sqsize = 16;
	q->cqsize = 4;
	q->tail = q->head = 0;
	q->phase = 1;
	t_db_zero(t, 1);
	assert_int_equal(t_create_cq(t, 1, 4, t_iova(t, q->cq)), ST_OK);
	assert_int_equal(t_create_sq(t, 1, 1, 16, t_iova(t, q->sq)), ST_OK);
	assert_int_equal(fault(t, PNVME_EMU_FAULT_CQE_DUP, 1, PNVME_EMU_ANY_OPC, 0, 2, 0, 0), 0);
	uint16_t cids[2];
	for (int i = 0; i < 2; i++) {
		t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
		cids[i] = t_submit(t, 1, &c);
	}
	pnvme_emu_step(t->emu);
	assert_int_equal(q->cq[3].status, 0);
	uint16_t want[4] = { cids[0], cids[0], cids[1], cids[1] };
	for (int i = 0; i < 4; i++) {
		assert_true(t_wait(t, 1, &e));
		assert_int_equal(e.cid, want[i]);
	}
	assert_false(t_reap(t, 1, &e));
	t_close(t);
}

static void test_fault_cqe_sqhd(void **state)
{
	struct t *t = t_up("emu:mode=step");
	uint8_t *buf = t_alloc(t, 4096);
	struct pnvme_cqe e;
	struct pnvme_sqe c;
	(void)state;

	t_ioq(t, 1, 16);
	/* BAD_SQHD: SQ size + 5, beyond the ring */
	assert_int_equal(fault(t, PNVME_EMU_FAULT_CQE_BAD_SQHD, 1, PNVME_EMU_ANY_OPC, 0, 1, 0, 0),
			 0);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	assert_int_equal(t_cmd(t, 1, &c, &e), ST_OK);
	assert_int_equal(e.sqhd, 16 + 5);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	assert_int_equal(t_cmd(t, 1, &c, &e), ST_OK);
	assert_int_equal(e.sqhd, 2);

	/* SQHD_BACK: one behind the last reported (2 -> 1), then honest again */
	assert_int_equal(fault(t, PNVME_EMU_FAULT_CQE_SQHD_BACK, 1, PNVME_NVM_READ, 0, 1, 0, 0),
			 0);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	assert_int_equal(t_cmd(t, 1, &c, &e), ST_OK);
	assert_int_equal(e.sqhd, 1);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	assert_int_equal(t_cmd(t, 1, &c, &e), ST_OK);
	assert_int_equal(e.sqhd, 4);

	/* a fresh queue, last reported SQHD 0: wraps to size - 1 */
	pnvme_emu_clear_faults(t->emu);
	t_ioq(t, 2, 8);
	assert_int_equal(fault(t, PNVME_EMU_FAULT_CQE_SQHD_BACK, 2, PNVME_EMU_ANY_OPC, 0, 1, 0, 0),
			 0);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 1, buf, 512);
	assert_int_equal(t_cmd(t, 2, &c, &e), ST_OK);
	assert_int_equal(e.sqhd, 7);
	t_close(t);
}

static void test_fault_id_ns(void **state)
{
	struct t *t = t_up("emu:mode=step,lba=4096,size=8M");
	struct pnvme_id_ns *id = malloc(sizeof(*id));
	(void)state;

	/* FLBAS beyond NLBAF, with a plausible LBAF behind it */
	assert_int_equal(fault(t, PNVME_EMU_FAULT_ID_FLBAS_RANGE, 0, 0, 0, 0, 0, 0), 0);
	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS, 1, id), ST_OK);
	assert_int_equal(id->nlbaf, 0);
	assert_true(PNVME_FLBAS_INDEX(id->flbas) > id->nlbaf);
	assert_int_equal(PNVME_GET(id->lbaf[PNVME_FLBAS_INDEX(id->flbas)], PNVME_LBAF_LBADS), 12);
	assert_int_equal(id->nsze, 2048);
	/* both: the selected format's LBADS is 0 */
	assert_int_equal(fault(t, PNVME_EMU_FAULT_ID_LBADS_ZERO, 0, 0, 0, 0, 0, 0), 0);
	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS, 1, id), ST_OK);
	assert_int_equal(PNVME_GET(id->lbaf[PNVME_FLBAS_INDEX(id->flbas)], PNVME_LBAF_LBADS), 0);
	/* LBADS_ZERO alone: format 0 */
	pnvme_emu_clear_faults(t->emu);
	assert_int_equal(fault(t, PNVME_EMU_FAULT_ID_LBADS_ZERO, 0, 0, 0, 0, 0, 0), 0);
	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS, 1, id), ST_OK);
	assert_int_equal(PNVME_FLBAS_INDEX(id->flbas), 0);
	assert_int_equal(PNVME_GET(id->lbaf[0], PNVME_LBAF_LBADS), 0);
	/* only the data lies: I/O still uses 4 KiB blocks */
	uint8_t *buf = t_alloc(t, 4096);
	t_ioq(t, 1, 16);
	assert_int_equal(t_rw(t, 1, PNVME_NVM_READ, 2047, 1, buf, 4096), ST_OK);
	pnvme_emu_clear_faults(t->emu);
	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS, 1, id), ST_OK);
	assert_int_equal(PNVME_GET(id->lbaf[0], PNVME_LBAF_LBADS), 12);
	free(id);
	t_close(t);
}

static void test_fault_id_ctrl(void **state)
{
	struct t *t = t_up("emu:mode=step,ns=3,size=1M,mdts=2");
	struct pnvme_id_ctrl *id = malloc(sizeof(*id));
	uint32_t *list = malloc(4096);
	uint8_t *buf = t_alloc(t, 32768);
	struct pnvme_sqe c;
	(void)state;

	assert_int_equal(fault(t, PNVME_EMU_FAULT_ID_MDTS_HUGE, 0, 0, 0, 0, 0, 0), 0);
	assert_int_equal(t_identify(t, PNVME_ID_CNS_CTRL, 0, id), ST_OK);
	assert_int_equal(id->mdts, 255);
	assert_int_equal(id->nn, 32);
	/* the real limit (16 KiB) still holds */
	t_ioq(t, 1, 16);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 1, 0, 64, buf, 32768);
	assert_int_equal(PNVME_STATUS_CODE(t_cmd(t, 1, &c, NULL)), ST(0, PNVME_SC_INVALID_FIELD));

	assert_int_equal(fault(t, PNVME_EMU_FAULT_ID_NN_HUGE, 0, 0, 0, 0, 0, 0), 0);
	assert_int_equal(t_identify(t, PNVME_ID_CNS_CTRL, 0, id), ST_OK);
	assert_int_equal(id->nn, 0xffffffffu);
	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS_ACTIVE, 0, list), ST_OK);
	assert_int_equal(list[0], 3);
	assert_int_equal(list[1], 1);
	assert_int_equal(list[2], 2);
	assert_int_equal(list[3], 1);
	assert_int_equal(list[4], 0);
	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS_ACTIVE, 2, list), ST_OK);
	assert_int_equal(list[0], 3);                         /* one id: a duplicate */
	assert_int_equal(list[1], 3);
	assert_int_equal(list[2], 0);
	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS_ACTIVE, 3, list), ST_OK);
	assert_int_equal(list[0], 0);
	/* an NSID above 32 but within the claimed NN: still Invalid Namespace */
	assert_int_equal(PNVME_STATUS_CODE(t_identify(t, PNVME_ID_CNS_NS, 1000, list)),
			 ST(0, PNVME_SC_INVALID_NS));
	pnvme_emu_clear_faults(t->emu);
	assert_int_equal(t_identify(t, PNVME_ID_CNS_CTRL, 0, id), ST_OK);
	assert_int_equal(id->mdts, 2);
	assert_int_equal(id->nn, 32);
	assert_int_equal(t_identify(t, PNVME_ID_CNS_NS_ACTIVE, 0, list), ST_OK);
	assert_int_equal(list[0], 1);
	assert_int_equal(list[1], 2);
	assert_int_equal(list[2], 3);
	assert_int_equal(list[3], 0);
	free(id);
	free(list);
	t_close(t);
}

static void test_fault_mqes_zero(void **state)
{
	struct t *t = t_up("emu:mode=step,mqes=63");
	uint8_t *buf = t_alloc(t, 4096);
	void *ring = t_alloc(t, 4096);
	struct pnvme_sqe c = { .opc = PNVME_ADM_KEEP_ALIVE };
	(void)state;

	t_ioq(t, 1, 16);
	assert_int_equal(fault(t, PNVME_EMU_FAULT_MQES_ZERO, 0, 0, 0, 0, 0, 0), 0);
	/* the register changes at the next step */
	assert_int_equal(PNVME_GET(mmio_read64(t->bar, PNVME_REG_CAP), PNVME_CAP_MQES), 63);
	pnvme_emu_step(t->emu);
	uint64_t cap = mmio_read64(t->bar, PNVME_REG_CAP);
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_MQES), 0);
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_TO), 4);     /* the rest is intact */
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_CQR), 1);
	/* a host that believes it: 1-entry queues are refused, so is anything bigger */
	for (uint32_t size = 1; size <= 2; size++) {
		assert_int_equal(PNVME_STATUS_CODE(t_create_cq(t, 2, size, t_iova(t, ring))),
				 ST(1, PNVME_SC_QUEUE_SIZE));
	}
	assert_int_equal(PNVME_STATUS_CODE(t_create_sq(t, 2, 1, 2, t_iova(t, ring))),
			 ST(1, PNVME_SC_QUEUE_SIZE));
	/* the admin queue and queues made before keep working */
	assert_int_equal(t_cmd(t, 0, &c, NULL), ST_OK);
	assert_int_equal(t_rw(t, 1, PNVME_NVM_READ, 0, 1, buf, 512), ST_OK);
	/* a 1-entry admin queue (what MQES 0 suggests) is a fatal enable, not a crash */
	t_disable(t);
	assert_int_equal(PNVME_GET(mmio_read64(t->bar, PNVME_REG_CAP), PNVME_CAP_MQES), 0);
	t_admin_regs(t, 1);
	wr32(t, PNVME_REG_CC, CC_ENABLE);
	for (int i = 0; i < 10; i++)
		pnvme_emu_step(t->emu);
	assert_int_equal(rd32(t, PNVME_REG_CSTS) & 3u, 2u);
	wr32(t, PNVME_REG_CC, 0);
	pnvme_emu_step(t->emu);
	/* cleared: CAP.MQES is back from the next step */
	pnvme_emu_clear_faults(t->emu);
	pnvme_emu_step(t->emu);
	assert_int_equal(PNVME_GET(mmio_read64(t->bar, PNVME_REG_CAP), PNVME_CAP_MQES), 63);
	t->q[0].cid = 0;
	t_enable(t);
	t_ioq(t, 1, 64);
	assert_int_equal(t_rw(t, 1, PNVME_NVM_READ, 0, 1, buf, 512), ST_OK);
	t_close(t);
}

/* Kinds past the last are refused; MQES_ZERO under ALL_ONES: CAP is right after the reset. */
static void test_fault_kinds_range(void **state)
{
	struct t *t = t_open("emu:mode=step");
	(void)state;

	assert_int_equal(fault(t, PNVME_EMU_FAULT_MQES_ZERO, 0, 0, 0, 0, 0, 0), 0);
	assert_int_equal(fault(t, (enum pnvme_emu_fault_kind)(PNVME_EMU_FAULT_MQES_ZERO + 1), 0, 0,
			       0, 0, 0, 0), -EINVAL);
	assert_int_equal(fault(t, PNVME_EMU_FAULT_ALL_ONES, 0, 0, 0, 0, 0, 0), 0);
	pnvme_emu_step(t->emu);
	assert_int_equal(mmio_read64(t->bar, PNVME_REG_CAP), UINT64_MAX);
	pnvme_emu_clear_faults(t->emu);
	wr32(t, PNVME_REG_CC, 0);
	pnvme_emu_step(t->emu);
	assert_int_equal(PNVME_GET(mmio_read64(t->bar, PNVME_REG_CAP), PNVME_CAP_MQES), 1023);
	t_enable(t);
	t_close(t);
}

/* ------------------------------------------------------------------------ */
/* Media, threads, IOVA table, backend                                      */
/* ------------------------------------------------------------------------ */

static void test_file_backed(void **state)
{
	char path[] = "/tmp/pnvme_emu_test_XXXXXX";
	char spec[128];
	int fd = mkstemp(path);
	struct t *t;
	uint8_t *buf;
	(void)state;

	assert_true(fd >= 0);
	close(fd);
	snprintf(spec, sizeof(spec), "emu:mode=step,size=1M,ns=2,file=%s", path);
	t = t_up(spec);
	t_ioq(t, 1, 8);
	buf = t_alloc(t, 8192);
	fill(buf, 8192, 42);
	struct pnvme_sqe c;
	t_rw_sqe(t, &c, PNVME_NVM_WRITE, 2, 7, 16, buf, 8192);
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_NVM_FLUSH;
	c.nsid = 2;
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	t_close(t);

	/* the file holds ns 2's slice at 1 MiB */
	FILE *f = fopen(path, "rb");
	uint8_t *disk = malloc(8192), *want = malloc(8192);
	assert_non_null(f);
	assert_int_equal(fseek(f, (1 << 20) + 7 * 512, SEEK_SET), 0);
	assert_int_equal(fread(disk, 1, 8192, f), 8192);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	assert_int_equal(ftell(f), 2 << 20);
	fclose(f);
	fill(want, 8192, 42);
	assert_memory_equal(disk, want, 8192);

	/* a new emulator on the same file reads it back */
	t = t_up(spec);
	t_ioq(t, 1, 8);
	buf = t_alloc(t, 8192);
	t_rw_sqe(t, &c, PNVME_NVM_READ, 2, 7, 16, buf, 8192);
	assert_int_equal(t_cmd(t, 1, &c, NULL), ST_OK);
	assert_memory_equal(buf, want, 8192);
	t_close(t);
	free(disk);
	free(want);
	unlink(path);

	/* a file that cannot be created */
	struct pnvme_emu *emu = NULL;
	assert_true(pnvme_emu_create("emu:mode=step,file=/nonexistent/dir/x.img", &emu) < 0);
	assert_null(emu);
}

static void test_thread_mode(void **state)
{
	struct t *t = t_open("emu:size=4M");
	uint8_t *w, *r;
	(void)state;

	assert_true(pnvme_emu_threaded(t->emu));
	t_enable(t);
	t_ioq(t, 1, 64);
	w = t_alloc(t, 65536);
	r = t_alloc(t, 65536);
	for (uint32_t i = 0; i < 200; i++) {
		size_t len = 512u * (1u + i % 64);
		fill(w, len, i);
		assert_int_equal(t_rw(t, 1, PNVME_NVM_WRITE, i * 8, (uint32_t)(len / 512), w, len),
				 ST_OK);
		assert_int_equal(t_rw(t, 1, PNVME_NVM_READ, i * 8, (uint32_t)(len / 512), r, len),
				 ST_OK);
		assert_memory_equal(w, r, len);
	}
	/* map / unmap / inject race with the thread */
	void *extra = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(pnvme_emu_map(t->emu, extra, 0x40000000ull, 1 << 20), 0);
		assert_int_equal(pnvme_emu_unmap(t->emu, 0x40000000ull, 1 << 20), 0);
	}
	munmap(extra, 1 << 20);
	/* idle: the thread backs off to sleeping, then wakes for new work */
	usleep(20000);
	assert_int_equal(t_rw(t, 1, PNVME_NVM_READ, 0, 1, r, 512), ST_OK);
	t_disable(t);
	t_close(t);
}

static void test_map(void **state)
{
	struct pnvme_emu *emu;
	void *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *b = m;
	(void)state;

	assert_int_equal(pnvme_emu_create("emu:mode=step", &emu), 0);
	assert_int_equal(pnvme_emu_map(emu, b, 0x100000, 0), -EINVAL);
	assert_int_equal(pnvme_emu_map(emu, b + 8, 0x100000, 4096), -EINVAL);
	assert_int_equal(pnvme_emu_map(emu, b, 0x100008, 4096), -EINVAL);
	assert_int_equal(pnvme_emu_map(emu, b, 0x100000, 4000), -EINVAL);
	assert_int_equal(pnvme_emu_map(emu, b, 0x200000, 65536), 0);
	assert_int_equal(pnvme_emu_map(emu, b, 0x100000, 65536), 0);
	assert_int_equal(pnvme_emu_map(emu, b, 0x300000, 65536), 0);
	assert_int_equal(pnvme_emu_map(emu, b, 0x20f000, 4096), -EEXIST);
	assert_int_equal(pnvme_emu_map(emu, b, 0x1ff000, 8192), -EEXIST);
	assert_int_equal(pnvme_emu_map(emu, b, 0x1f0000, 65536), 0);    /* fits exactly */
	assert_int_equal(pnvme_emu_unmap(emu, 0x200000, 4096), -ENOENT);
	assert_int_equal(pnvme_emu_unmap(emu, 0x200000, 65536), 0);
	assert_int_equal(pnvme_emu_unmap(emu, 0x200000, 65536), -ENOENT);
	assert_int_equal(pnvme_emu_map(emu, b, 0x20f000, 4096), 0);

	/* media access bounds */
	uint8_t x[16];
	assert_int_equal(pnvme_emu_media_write(emu, 1, (64u << 20) - 16, x, 16), 0);
	assert_int_equal(pnvme_emu_media_write(emu, 1, (64u << 20) - 15, x, 16), -EINVAL);
	assert_int_equal(pnvme_emu_media_read(emu, 2, 0, x, 16), -EINVAL);
	assert_int_equal(pnvme_emu_media_read(emu, 0, 0, x, 16), -EINVAL);
	pnvme_emu_destroy(emu);
	pnvme_emu_destroy(NULL);
	munmap(m, 1 << 20);
}

static void test_backend(void **state)
{
	struct t *t = t_open("emu:mode=step");
	struct pnvme_backend be;
	void *m = t_alloc(t, 8192);
	(void)state;

	assert_int_equal(pnvme_emu_backend_init(t->emu, &be), 0);
	assert_ptr_equal(be.ctx, t->emu);
	assert_ptr_equal((const void *)be.bar, (const void *)t->bar);
	assert_int_equal(be.bar_len, t->bar_len);
	assert_true(be.iova_base > 0 && be.iova_base < be.iova_end);
	assert_non_null(be.ops->name);
	assert_int_equal(be.ops->dma_map(be.ctx, m, 0x80000000ull, 8192), 0);
	assert_int_equal(be.ops->dma_map(be.ctx, m, 0x80000000ull, 8192), -EEXIST);
	assert_int_equal(be.ops->dma_unmap(be.ctx, 0x80000000ull, 8192), 0);
	/* the wait hook steps a stepped emulator */
	t_admin_regs(t, 8);
	wr32(t, PNVME_REG_CC, CC_ENABLE);
	be.ops->wait(be.ctx);
	assert_int_equal(rd32(t, PNVME_REG_CSTS) & 1u, 1u);
	be.ops->close(be.ctx);
	t_close(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_bringup),
		cmocka_unit_test(test_enable_bad),
		cmocka_unit_test(test_identify_ctrl),
		cmocka_unit_test(test_identify_ns),
		cmocka_unit_test(test_meta_parse),
		cmocka_unit_test(test_meta_identify),
		cmocka_unit_test(test_meta_extended),
		cmocka_unit_test(test_meta_separate),
		cmocka_unit_test(test_pi_pract),
		cmocka_unit_test(test_pi_location),
		cmocka_unit_test(test_pi_errors),
		cmocka_unit_test(test_pi_write_zeroes),
		cmocka_unit_test(test_meta_file),
		cmocka_unit_test(test_queues),
		cmocka_unit_test(test_queue_entry_sizes),
		cmocka_unit_test(test_rw_roundtrip),
		cmocka_unit_test(test_rw_4k_lba),
		cmocka_unit_test(test_io_errors),
		cmocka_unit_test(test_wz_dsm_flush),
		cmocka_unit_test(test_sgl_support),
		cmocka_unit_test(test_sgl_data),
		cmocka_unit_test(test_sgl_meta),
		cmocka_unit_test(test_sgl_errors),
		cmocka_unit_test(test_sgl_dword),
		cmocka_unit_test(test_features),
		cmocka_unit_test(test_log_pages),
		cmocka_unit_test(test_cq_full),
		cmocka_unit_test(test_dstrd),
		cmocka_unit_test(test_bad_doorbell),
		cmocka_unit_test(test_dbbuf_config),
		cmocka_unit_test(test_dbbuf_shadow_only),
		cmocka_unit_test(test_dbbuf_cq_full),
		cmocka_unit_test(test_dbbuf_fallbacks),
		cmocka_unit_test(test_dbbuf_thread),
		cmocka_unit_test(test_fault_never_ready),
		cmocka_unit_test(test_fault_cfs),
		cmocka_unit_test(test_fault_cfs_on_enable),
		cmocka_unit_test(test_fault_all_ones),
		cmocka_unit_test(test_fault_drop_status),
		cmocka_unit_test(test_fault_delay),
		cmocka_unit_test(test_fault_reorder),
		cmocka_unit_test(test_shutdown),
		cmocka_unit_test(test_abort),
		cmocka_unit_test(test_abort_unfetched),
		cmocka_unit_test(test_abort_unmapped_sq),
		cmocka_unit_test(test_delete_sq_aborts),
		cmocka_unit_test(test_fault_never_ready_after_bringup),
		cmocka_unit_test(test_fault_all_ones_mid_io),
		cmocka_unit_test(test_fault_drop_then_abort),
		cmocka_unit_test(test_fault_ignore_abort),
		cmocka_unit_test(test_fault_cqe_bad_cid),
		cmocka_unit_test(test_fault_cqe_dup),
		cmocka_unit_test(test_fault_cqe_sqhd),
		cmocka_unit_test(test_fault_id_ns),
		cmocka_unit_test(test_fault_id_ctrl),
		cmocka_unit_test(test_fault_mqes_zero),
		cmocka_unit_test(test_fault_kinds_range),
		cmocka_unit_test(test_file_backed),
		cmocka_unit_test(test_thread_mode),
		cmocka_unit_test(test_map),
		cmocka_unit_test(test_backend),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
