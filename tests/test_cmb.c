/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_cmb.c - I/O submission queues in the Controller Memory Buffer: the
 * library's host side (PNVME_QPAIR_CMB_SQ) against the emulated
 * controller's CMB (cmb=N, NVMe Base 2.0 §3.1.4.11-§3.1.4.14).
 *
 * Covers: the CMB registers as the spec has them (CAP.CMBS, CMBLOC/CMBSZ
 * behind CMBMSC.CRE, CMSE + CBA, CMBSTS.CBAI); verified writes and reads
 * through CMB SQs in step and thread mode, batched and per-command
 * doorbells, with the entries found in CMB memory; refusals (no CMB: -ENOTSUP;
 * CMB full: -ENOSPC, and its pages back after a destroy); malformed queue
 * creations (an SQ running past the CMB's end, a CQ in the CMB: Invalid Use of
 * Controller Memory Buffer; a CMB address with CMSE clear: an IOVA, Invalid
 * Field); a controller reset with unsent commands in a CMB SQ.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pnvme/pnvme.h>

#include "test_helpers.h"

#define MAX_DEPTH 32
#define EMU_CBA   (1ull << 48)  /* where the library places the emulator's CMB */

struct env {
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	const struct pnvme_ns *ns;
	bool step;
	void *buf[MAX_DEPTH];
};

static void env_open(struct env *e, const char *spec, uint32_t depth, uint32_t qflags)
{
	struct pnvme_ctrl_opts co;
	struct pnvme_qpair_opts qo;

	memset(e, 0, sizeof(*e));
	assert_ok(pnvme_emu_create(spec, &e->emu));
	e->step = !pnvme_emu_threaded(e->emu);
	pnvme_ctrl_opts_default(&co);
	co.io_timeout_ms = 5000;
	assert_ok(pnvme_ctrl_open_emu(e->emu, &co, &e->ctrl));
	e->ns = pnvme_ctrl_ns(e->ctrl, 1);
	assert_non_null(e->ns);
	pnvme_qpair_opts_default(&qo);
	qo.depth = depth;
	qo.flags = qflags | PNVME_QPAIR_CMB_SQ;
	assert_ok(pnvme_qpair_create(e->ctrl, &qo, &e->qp));
	for (unsigned i = 0; i < MAX_DEPTH; i++)
		assert_ok(pnvme_dma_alloc(e->ctrl, e->ns->lba_size, 0, &e->buf[i], NULL));
}

static void env_close(struct env *e)
{
	for (unsigned i = 0; i < MAX_DEPTH; i++)
		pnvme_dma_free(e->ctrl, e->buf[i]);
	assert_ok(pnvme_qpair_destroy(e->qp));
	assert_ok(pnvme_ctrl_close(e->ctrl));
	pnvme_emu_destroy(e->emu);
}

struct io {
	int err;
	bool done;
};

static void io_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct io *io = arg;
	(void)cqe;
	io->err = err;
	io->done = true;
}

/* Poll (stepping a stepped emulator) until the first `n` of `io` are done; all succeeded. */
static void io_wait(struct env *e, struct io *io, uint32_t n)
{
	for (uint32_t i = 0; i < n;) {
		if (e->step)
			pnvme_emu_step(e->emu);
		int rc = pnvme_qpair_poll(e->qp, 0);
		if (rc < 0)
			fail_msg("poll: %d (%s)", rc, pnvme_last_error());
		while (i < n && io[i].done)
			assert_int_equal(io[i++].err, 0);
	}
}

/*
 * One-block writes of LBAs 0..nr-1 with contents (lba, seed), or reads
 * checked against them, in rounds of `depth` outstanding.
 */
static void run_io(struct env *e, bool write, uint32_t nr, uint32_t depth, uint32_t seed)
{
	size_t len = e->ns->lba_size;

	for (uint32_t base = 0; base < nr; base += depth) {
		uint32_t n = nr - base < depth ? nr - base : depth;
		struct io io[MAX_DEPTH];

		memset(io, 0, sizeof(io));
		for (uint32_t i = 0; i < n; i++) {
			if (write) {
				test_block_fill(e->buf[i], len, base + i, seed);
				assert_ok(pnvme_write(e->qp, e->ns, e->buf[i], base + i, 1, 0, io_cb,
						      &io[i]));
			} else {
				memset(e->buf[i], 0xee, len);
				assert_ok(pnvme_read(e->qp, e->ns, e->buf[i], base + i, 1, 0, io_cb,
						     &io[i]));
			}
		}
		io_wait(e, io, n);
		for (uint32_t i = 0; i < n && !write; i++)
			assert_true(test_block_is(e->buf[i], len, base + i, seed));
	}
}

static uint32_t reg32(struct pnvme_emu *emu, size_t off)
{
	volatile uint8_t *bar = pnvme_emu_bar(emu, NULL);
	return __atomic_load_n((volatile uint32_t *)(bar + off), __ATOMIC_ACQUIRE);
}

static void reg_write32(struct pnvme_emu *emu, size_t off, uint32_t v)
{
	volatile uint8_t *bar = pnvme_emu_bar(emu, NULL);
	__atomic_store_n((volatile uint32_t *)(bar + off), v, __ATOMIC_RELEASE);
}

/* CMBMSC as the library writes it: high dword, then low. */
static void cmbmsc_write(struct pnvme_emu *emu, uint64_t v)
{
	reg_write32(emu, PNVME_REG_CMBMSC + 4, (uint32_t)(v >> 32));
	reg_write32(emu, PNVME_REG_CMBMSC, (uint32_t)v);
	pnvme_emu_step(emu);
}

/* ------------------------------------------------------------------------ */
/* Registers (Base 2.0 §3.1.4.1, §3.1.4.11-§3.1.4.14)                       */
/* ------------------------------------------------------------------------ */

static void test_registers(void **state)
{
	struct pnvme_emu *emu;
	uint64_t cap;
	size_t len = 0;
	(void)state;

	assert_ok(pnvme_emu_create("emu:cmb=4,mode=step", &emu));
	assert_non_null(pnvme_emu_cmb(emu, &len));
	assert_int_equal(len, 4u << 20);
	cap = reg32(emu, PNVME_REG_CAP) | (uint64_t)reg32(emu, PNVME_REG_CAP + 4) << 32;
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_CMBS), 1);
	/* §3.1.4.13: CMBLOC and CMBSZ read 0 until CRE */
	assert_int_equal(reg32(emu, PNVME_REG_CMBLOC), 0);
	assert_int_equal(reg32(emu, PNVME_REG_CMBSZ), 0);

	cmbmsc_write(emu, PNVME_CMBMSC_CRE);
	uint32_t loc = reg32(emu, PNVME_REG_CMBLOC), sz = reg32(emu, PNVME_REG_CMBSZ);
	assert_int_equal(PNVME_GET(loc, PNVME_CMBLOC_BIR), 2);
	assert_int_equal(PNVME_GET(loc, PNVME_CMBLOC_OFST), 0);
	assert_int_equal(PNVME_GET(loc, PNVME_CMBLOC_CQMMS), 1);
	assert_int_equal(PNVME_GET(loc, PNVME_CMBLOC_CDPCILS), 1);
	assert_int_equal(PNVME_GET(sz, PNVME_CMBSZ_SQS), 1);
	assert_int_equal(PNVME_GET(sz, PNVME_CMBSZ_CQS), 0);
	assert_int_equal(PNVME_GET(sz, PNVME_CMBSZ_RDS), 0);
	assert_int_equal(PNVME_GET(sz, PNVME_CMBSZ_WDS), 0);
	assert_int_equal(PNVME_GET(sz, PNVME_CMBSZ_LISTS), 0);
	assert_int_equal(PNVME_GET(sz, PNVME_CMBSZ_SZU), 2);
	assert_int_equal(PNVME_GET(sz, PNVME_CMBSZ_SZ), 4);
	assert_int_equal(PNVME_CMBSZ_BYTES(sz), 4u << 20);
	assert_int_equal(reg32(emu, PNVME_REG_CMBSTS), 0);

	/* §3.1.4.14: a CBA whose range wraps is invalid */
	cmbmsc_write(emu, 0xfffffffffff00000ull | PNVME_CMBMSC_CMSE | PNVME_CMBMSC_CRE);
	assert_int_equal(reg32(emu, PNVME_REG_CMBSTS) & PNVME_CMBSTS_CBAI, PNVME_CMBSTS_CBAI);
	cmbmsc_write(emu, EMU_CBA | PNVME_CMBMSC_CMSE | PNVME_CMBMSC_CRE);
	assert_int_equal(reg32(emu, PNVME_REG_CMBSTS), 0);
	assert_int_equal(reg32(emu, PNVME_REG_CMBMSC + 4), (uint32_t)(EMU_CBA >> 32));

	/* CRE cleared: CMBLOC and CMBSZ read 0 again */
	cmbmsc_write(emu, 0);
	assert_int_equal(reg32(emu, PNVME_REG_CMBLOC), 0);
	assert_int_equal(reg32(emu, PNVME_REG_CMBSZ), 0);
	pnvme_emu_destroy(emu);

	/* no cmb=: CAP.CMBS 0, no BAR2; CRE changes nothing */
	assert_ok(pnvme_emu_create("emu:mode=step", &emu));
	assert_null(pnvme_emu_cmb(emu, &len));
	assert_int_equal(len, 0);
	cap = reg32(emu, PNVME_REG_CAP) | (uint64_t)reg32(emu, PNVME_REG_CAP + 4) << 32;
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_CMBS), 0);
	cmbmsc_write(emu, PNVME_CMBMSC_CRE);
	assert_int_equal(reg32(emu, PNVME_REG_CMBSZ), 0);
	pnvme_emu_destroy(emu);

	/* the option's range */
	assert_int_equal(pnvme_emu_create("emu:cmb=257", &emu), -EINVAL);
	assert_int_equal(pnvme_emu_create("emu:cmb=x", &emu), -EINVAL);
}

/* ------------------------------------------------------------------------ */
/* I/O through CMB SQs                                                      */
/* ------------------------------------------------------------------------ */

static void round_trip(const char *spec, uint32_t depth, uint32_t qflags)
{
	struct env e;
	size_t len = 0;

	env_open(&e, spec, 63, qflags);
	run_io(&e, true, 200, depth, 7);
	run_io(&e, false, 200, depth, 7);
	/* the controller read the entries from its CMB: the ring holds them there */
	volatile const struct pnvme_sqe *cmb = pnvme_emu_cmb(e.emu, &len);
	unsigned reads = 0, writes = 0;
	for (unsigned i = 0; i < 64; i++) {
		reads += cmb[i].opc == PNVME_NVM_READ;
		writes += cmb[i].opc == PNVME_NVM_WRITE;
	}
	assert_int_equal(reads + writes, 64);
	assert_true(reads > 0);
	env_close(&e);
}

static void test_io_step(void **state)
{
	(void)state;
	round_trip("emu:cmb=1,mode=step", 1, 0);
	round_trip("emu:cmb=1,mode=step", 32, 0);
	round_trip("emu:cmb=1,mode=step", 8, PNVME_QPAIR_DB_IMMEDIATE);
}

static void test_io_thread(void **state)
{
	(void)state;
	round_trip("emu:cmb=1", 32, 0);
	round_trip("emu:cmb=1", 4, PNVME_QPAIR_DB_IMMEDIATE);
	round_trip("emu:cmb=1,dbbuf=1", 16, 0);
}

/* ------------------------------------------------------------------------ */
/* Refusals                                                                 */
/* ------------------------------------------------------------------------ */

static void test_no_cmb(void **state)
{
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp = NULL;
	struct pnvme_qpair_opts qo;
	(void)state;

	assert_ok(pnvme_emu_create("emu:mode=step", &emu));
	assert_ok(pnvme_ctrl_open_emu(emu, NULL, &ctrl));
	pnvme_qpair_opts_default(&qo);
	qo.flags = PNVME_QPAIR_CMB_SQ;
	assert_int_equal(pnvme_qpair_create(ctrl, &qo, &qp), -ENOTSUP);
	assert_null(qp);
	assert_non_null(strstr(pnvme_last_error(), "CAP.CMBS"));
	/* the documented fallback: the same queue pair in host memory */
	qo.flags = 0;
	assert_ok(pnvme_qpair_create(ctrl, &qo, &qp));
	assert_ok(pnvme_qpair_destroy(qp));
	assert_ok(pnvme_ctrl_close(ctrl));
	pnvme_emu_destroy(emu);
}

/* A 1 MiB CMB holds four 4096-entry rings (256 KiB each); a destroy gives the room back. */
static void test_cmb_full(void **state)
{
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp[5] = { 0 };
	struct pnvme_qpair_opts qo;
	(void)state;

	assert_ok(pnvme_emu_create("emu:cmb=1,mqes=4095,mode=step", &emu));
	assert_ok(pnvme_ctrl_open_emu(emu, NULL, &ctrl));
	pnvme_qpair_opts_default(&qo);
	qo.flags = PNVME_QPAIR_CMB_SQ;
	qo.depth = 4095;
	for (unsigned i = 0; i < 4; i++)
		assert_ok(pnvme_qpair_create(ctrl, &qo, &qp[i]));
	assert_int_equal(pnvme_qpair_create(ctrl, &qo, &qp[4]), -ENOSPC);
	/* a small ring does not fit either; a host-memory one does */
	qo.depth = 1;
	assert_int_equal(pnvme_qpair_create(ctrl, &qo, &qp[4]), -ENOSPC);
	qo.flags = 0;
	assert_ok(pnvme_qpair_create(ctrl, &qo, &qp[4]));
	assert_ok(pnvme_qpair_destroy(qp[4]));
	assert_ok(pnvme_qpair_destroy(qp[1]));
	qo.flags = PNVME_QPAIR_CMB_SQ;
	qo.depth = 4095;
	assert_ok(pnvme_qpair_create(ctrl, &qo, &qp[1]));
	for (unsigned i = 0; i < 4; i++)
		assert_ok(pnvme_qpair_destroy(qp[i]));
	assert_ok(pnvme_ctrl_close(ctrl));
	pnvme_emu_destroy(emu);
}

/* Raw Create I/O SQ / CQ; the CQE's status (without the phase tag). */
static uint16_t create_q(struct pnvme_ctrl *ctrl, uint8_t opc, uint16_t qid, uint64_t prp1,
			 uint32_t qsize)
{
	struct pnvme_sqe sqe;
	struct pnvme_cqe cqe;

	memset(&sqe, 0, sizeof(sqe));
	memset(&cqe, 0, sizeof(cqe));
	sqe.opc = opc;
	sqe.prp1 = prp1;
	sqe.cdw10 = (uint32_t)qid | (qsize - 1u) << 16;
	sqe.cdw11 = 1u | (opc == PNVME_ADM_CREATE_SQ ? (uint32_t)qid << 16 : 0u); /* PC; CQID */
	(void)pnvme_admin_passthru(ctrl, &sqe, NULL, 0, &cqe);
	return PNVME_STATUS_CODE(cqe.status >> 1);
}

static void test_malformed(void **state)
{
	struct env e;
	void *ring;
	uint64_t iova;
	size_t cmb_len = 0;
	(void)state;

	env_open(&e, "emu:cmb=1", 15, 0);
	(void)pnvme_emu_cmb(e.emu, &cmb_len);
	assert_ok(pnvme_dma_alloc(e.ctrl, 4096, 4096, &ring, &iova));
	uint16_t qid = 9;
	uint64_t end = EMU_CBA + cmb_len;
	/* a CQ in the CMB: CMBSZ.CQS = 0 */
	assert_int_equal(create_q(e.ctrl, PNVME_ADM_CREATE_CQ, qid, EMU_CBA + 8192, 16),
			 PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_CMB_INVALID_USE));
	assert_ok(pnvme_create_io_cq(e.ctrl, qid, iova, 16));
	/* an SQ running past the CMB's end (16 KiB ring in the last 4 KiB page) */
	assert_int_equal(create_q(e.ctrl, PNVME_ADM_CREATE_SQ, qid, end - 4096, 256),
			 PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_CMB_INVALID_USE));
	/* one that ends exactly at the end is fine */
	assert_int_equal(create_q(e.ctrl, PNVME_ADM_CREATE_SQ, qid, end - 4096, 64), 0);
	assert_ok(pnvme_delete_io_sq(e.ctrl, qid));
	/* CMSE clear: the address is an ordinary IOVA, not in the table */
	cmbmsc_write(e.emu, PNVME_CMBMSC_CRE);
	assert_int_equal(create_q(e.ctrl, PNVME_ADM_CREATE_SQ, qid, EMU_CBA + 65536, 64),
			 PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INVALID_FIELD));
	cmbmsc_write(e.emu, EMU_CBA | PNVME_CMBMSC_CMSE | PNVME_CMBMSC_CRE);
	assert_int_equal(create_q(e.ctrl, PNVME_ADM_CREATE_SQ, qid, EMU_CBA + 65536, 64), 0);
	assert_ok(pnvme_delete_io_sq(e.ctrl, qid));
	assert_ok(pnvme_delete_io_cq(e.ctrl, qid));
	pnvme_dma_free(e.ctrl, ring);
	run_io(&e, true, 20, 4, 3);   /* the queue pair's own CMB SQ still works */
	run_io(&e, false, 20, 4, 3);
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* Reset and destroy                                                        */
/* ------------------------------------------------------------------------ */

static void test_reset(void **state)
{
	struct env e;
	(void)state;

	env_open(&e, "emu:cmb=2,mode=step", 31, 0);
	run_io(&e, true, 64, 16, 1);
	/* commands built but never announced: re-posted into the CMB after the reset */
	struct io io[8];
	memset(io, 0, sizeof(io));
	for (unsigned i = 0; i < 8; i++) {
		test_block_fill(e.buf[i], e.ns->lba_size, i, 2);
		assert_ok(pnvme_write(e.qp, e.ns, e.buf[i], i, 1, 0, io_cb, &io[i]));
	}
	assert_ok(pnvme_ctrl_reset(e.ctrl));
	io_wait(&e, io, 8);
	run_io(&e, false, 8, 8, 2);
	run_io(&e, true, 64, 16, 3);
	run_io(&e, false, 64, 16, 3);

	/* a second CMB queue pair beside the first, then both destroyed */
	struct pnvme_qpair_opts qo;
	struct pnvme_qpair *qp2;
	pnvme_qpair_opts_default(&qo);
	qo.flags = PNVME_QPAIR_CMB_SQ;
	qo.depth = 31;
	assert_ok(pnvme_qpair_create(e.ctrl, &qo, &qp2));
	struct pnvme_qpair *first = e.qp;
	e.qp = qp2;
	run_io(&e, false, 64, 16, 3);
	e.qp = first;
	assert_ok(pnvme_qpair_destroy(qp2));
	env_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registers),
		cmocka_unit_test(test_io_step),
		cmocka_unit_test(test_io_thread),
		cmocka_unit_test(test_no_cmb),
		cmocka_unit_test(test_cmb_full),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
