/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_shadow_db.c - shadow doorbells (Doorbell Buffer Config, NVMe Base 2.0
 * §5.8) end to end: the library's host side (PNVME_CTRL_SHADOW_DB) against
 * the emulated controller's (dbbuf=1), through the public API only.
 *
 * Covers: negotiation (asked and offered, not asked, not offered), verified
 * writes and reads at depths 1, 8 and 32 with batched and per-command
 * doorbells in step and thread mode, the MMIO doorbell counts the EventIdx
 * rule leads to (exact in step mode, where the test decides when the device
 * runs), controller reset (shadow doorbells configured again), and dbbuf=0
 * (back to the registers).
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

#define assert_ok(expr)                                                                    \
	do {                                                                               \
		int rc_ = (expr);                                                          \
		if (rc_ != 0)                                                              \
			fail_msg("%s returned %d (%s); last error: %s", #expr, rc_,         \
				 strerror(rc_ < 0 ? -rc_ : rc_), pnvme_last_error());       \
	} while (0)

#define MAX_DEPTH 32

struct env {
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	const struct pnvme_ns *ns;
	bool step;
	void *buf[MAX_DEPTH];
};

/* Emulator from `spec`, controller with `flags`, one queue pair of `entries` - 1 slots. */
static void env_open(struct env *e, const char *spec, uint32_t flags, uint32_t entries,
		     uint32_t qflags)
{
	struct pnvme_ctrl_opts co;
	struct pnvme_qpair_opts qo;

	memset(e, 0, sizeof(*e));
	assert_ok(pnvme_emu_create(spec, &e->emu));
	e->step = !pnvme_emu_threaded(e->emu);
	pnvme_ctrl_opts_default(&co);
	co.flags = flags;
	co.io_timeout_ms = 5000;
	assert_ok(pnvme_ctrl_open_emu(e->emu, &co, &e->ctrl));
	e->ns = pnvme_ctrl_ns(e->ctrl, 1);
	assert_non_null(e->ns);
	pnvme_qpair_opts_default(&qo);
	qo.depth = entries - 1;
	qo.flags = qflags;
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

/* Pattern of block `lba` in generation `gen`: every byte depends on both. */
static void pattern(void *buf, size_t len, uint64_t lba, uint32_t gen)
{
	uint8_t *p = buf;
	uint32_t x = (uint32_t)lba * 2654435761u + gen * 40503u + 1u;
	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
}

struct run;

struct slot {
	struct run *r;
	void *buf;
	uint64_t lba;
	bool busy;
};

struct run {
	struct env *e;
	bool write;
	uint32_t gen;
	uint32_t done;
	uint32_t errors;
	uint32_t mismatches;
	struct slot slot[MAX_DEPTH];
};

static void io_done(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct slot *s = arg;
	struct run *r = s->r;
	(void)cqe;

	s->busy = false;
	r->done++;
	if (err) {
		r->errors++;
		return;
	}
	if (!r->write) {
		uint8_t want[4096];
		size_t len = r->e->ns->lba_size;
		pattern(want, len, s->lba, r->gen);
		if (memcmp(want, s->buf, len) != 0)
			r->mismatches++;
	}
}

/*
 * `nr` one-block writes (or reads, checked against the pattern) of LBAs
 * 0..nr-1, keeping up to `depth` outstanding. In step mode the device runs
 * once per loop, after everything that fits has been submitted.
 */
static void run_io(struct env *e, bool write, uint32_t nr, uint32_t depth, uint32_t gen)
{
	struct run r;
	uint32_t next = 0;

	memset(&r, 0, sizeof(r));
	r.e = e;
	r.write = write;
	r.gen = gen;
	for (uint32_t i = 0; i < depth; i++) {
		r.slot[i].r = &r;
		r.slot[i].buf = e->buf[i];
	}
	while (r.done < nr) {
		for (uint32_t i = 0; i < depth && next < nr; i++) {
			struct slot *s = &r.slot[i];
			int rc;
			if (s->busy)
				continue;
			s->lba = next;
			if (write) {
				pattern(s->buf, e->ns->lba_size, s->lba, gen);
				rc = pnvme_write(e->qp, e->ns, s->buf, s->lba, 1, 0, io_done, s);
			} else {
				memset(s->buf, 0, e->ns->lba_size);
				rc = pnvme_read(e->qp, e->ns, s->buf, s->lba, 1, 0, io_done, s);
			}
			if (rc == -EAGAIN)
				break;
			assert_ok(rc);
			s->busy = true;
			next++;
		}
		if (e->step)
			pnvme_emu_step(e->emu);
		int n = pnvme_qpair_poll(e->qp, 0);
		if (n < 0)
			fail_msg("poll: %d (%s)", n, pnvme_last_error());
	}
	assert_int_equal(r.errors, 0);
	assert_int_equal(r.mismatches, 0);
}

static struct pnvme_qpair_stats qstats(struct env *e)
{
	struct pnvme_qpair_stats st;
	pnvme_qpair_get_stats(e->qp, &st);
	return st;
}

static struct pnvme_emu_stats estats(struct env *e)
{
	struct pnvme_emu_stats st;
	pnvme_emu_get_stats(e->emu, &st);
	return st;
}

/* ------------------------------------------------------------------------ */
/* Negotiation                                                              */
/* ------------------------------------------------------------------------ */

static void test_negotiation(void **state)
{
	struct env e;
	(void)state;

	/* asked and offered */
	env_open(&e, "emu:mode=step,size=4M", PNVME_CTRL_SHADOW_DB, 8, 0);
	assert_true(pnvme_ctrl_id(e.ctrl)->oacs & PNVME_OACS_DBBUF);
	assert_true(pnvme_ctrl_shadow_db(e.ctrl));
	env_close(&e);
	/* offered, not asked */
	env_open(&e, "emu:mode=step,size=4M", 0, 8, 0);
	assert_false(pnvme_ctrl_shadow_db(e.ctrl));
	run_io(&e, true, 50, 4, 1);
	assert_int_equal(estats(&e).shadow_sq_updates, 0);
	assert_int_equal(estats(&e).shadow_cq_updates, 0);
	env_close(&e);
	/* asked, not offered */
	env_open(&e, "emu:mode=step,size=4M,dbbuf=0", PNVME_CTRL_SHADOW_DB, 8, 0);
	assert_false(pnvme_ctrl_id(e.ctrl)->oacs & PNVME_OACS_DBBUF);
	assert_false(pnvme_ctrl_shadow_db(e.ctrl));
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* Doorbell counts in step mode                                             */
/* ------------------------------------------------------------------------ */

/*
 * 32 commands submitted with per-command doorbells before the device runs:
 * the first moves the tail past EventIdx (0, the entry consumed up to) and
 * writes the register; the other 31 only store the shadow value. The device
 * consumes all 32 and sets EventIdx = 32; the host reaps 32 and moves the CQ
 * head past the CQ's EventIdx once. So one SQ and one CQ register write per
 * round, where plain doorbells take 32 and 1.
 */
static void test_step_counts(void **state)
{
	const uint32_t rounds = 20;
	struct env e;
	struct run r;
	(void)state;

	for (int shadow = 1; shadow >= 0; shadow--) {
		env_open(&e, shadow ? "emu:mode=step,size=4M" : "emu:mode=step,size=4M,dbbuf=0",
			 PNVME_CTRL_SHADOW_DB, MAX_DEPTH + 1, PNVME_QPAIR_DB_IMMEDIATE);
		assert_int_equal(pnvme_ctrl_shadow_db(e.ctrl), shadow == 1);
		memset(&r, 0, sizeof(r));
		r.e = &e;
		r.write = true;
		pnvme_emu_step(e.emu);
		struct pnvme_emu_stats e0 = estats(&e);
		for (uint32_t round = 0; round < rounds; round++) {
			struct pnvme_qpair_stats q0 = qstats(&e);
			for (uint32_t i = 0; i < MAX_DEPTH; i++) {
				struct slot *s = &r.slot[i];
				s->r = &r;
				s->buf = e.buf[i];
				s->lba = round * MAX_DEPTH + i;
				pattern(s->buf, e.ns->lba_size, s->lba, 7);
				s->busy = true;
				assert_ok(pnvme_write(e.qp, e.ns, s->buf, s->lba, 1, 0, io_done, s));
			}
			struct pnvme_qpair_stats q1 = qstats(&e);
			assert_int_equal(q1.submitted - q0.submitted, MAX_DEPTH);
			assert_int_equal(q1.sq_doorbells - q0.sq_doorbells, shadow ? 1 : MAX_DEPTH);
			pnvme_emu_step(e.emu);
			assert_int_equal(pnvme_qpair_poll(e.qp, 0), MAX_DEPTH);
			q1 = qstats(&e);
			assert_int_equal(q1.cq_doorbells - q0.cq_doorbells, 1);
		}
		pnvme_emu_step(e.emu);
		struct pnvme_emu_stats e1 = estats(&e);
		assert_int_equal(r.done, rounds * MAX_DEPTH);
		assert_int_equal(r.errors, 0);
		/*
		 * The device looks at the register once per step, so it sees one
		 * change per round either way (with dbbuf=0 the host wrote it 32
		 * times); with shadow doorbells it consumed one shadow value per round.
		 */
		assert_int_equal(e1.sq_doorbells - e0.sq_doorbells, rounds);
		assert_int_equal(e1.cq_doorbells - e0.cq_doorbells, rounds);
		assert_int_equal(e1.shadow_sq_updates - e0.shadow_sq_updates, shadow ? rounds : 0);
		assert_int_equal(e1.shadow_cq_updates - e0.shadow_cq_updates, shadow ? rounds : 0);
		run_io(&e, false, rounds * MAX_DEPTH, MAX_DEPTH, 7);
		env_close(&e);
	}
}

/* ------------------------------------------------------------------------ */
/* Verified I/O: depths 1, 8, 32; batched and per-command doorbells          */
/* ------------------------------------------------------------------------ */

static void matrix(const char *spec, uint32_t nr)
{
	static const uint32_t depths[] = { 1, 8, 32 };
	struct env e;

	for (unsigned d = 0; d < 3; d++) {
		for (int imm = 0; imm <= 1; imm++) {
			uint32_t depth = depths[d];
			env_open(&e, spec, PNVME_CTRL_SHADOW_DB, depth + 1,
				 imm ? PNVME_QPAIR_DB_IMMEDIATE : 0);
			assert_true(pnvme_ctrl_shadow_db(e.ctrl));
			struct pnvme_qpair_stats q0 = qstats(&e);
			run_io(&e, true, nr, depth, d * 2u + (uint32_t)imm);
			run_io(&e, false, nr, depth, d * 2u + (uint32_t)imm);
			struct pnvme_qpair_stats q1 = qstats(&e);
			uint64_t cmds = q1.submitted - q0.submitted;
			uint64_t sq = q1.sq_doorbells - q0.sq_doorbells;
			uint64_t cq = q1.cq_doorbells - q0.cq_doorbells;
			struct pnvme_emu_stats es = estats(&e);
			print_message("%s depth %2u %-9s: %llu commands, MMIO %llu SQ + %llu CQ "
				      "(%.3f per command); device saw %llu + %llu shadow updates\n",
				      e.step ? "step  " : "thread", depth,
				      imm ? "immediate" : "batched", (unsigned long long)cmds,
				      (unsigned long long)sq, (unsigned long long)cq,
				      (double)(sq + cq) / (double)cmds,
				      (unsigned long long)es.shadow_sq_updates,
				      (unsigned long long)es.shadow_cq_updates);
			assert_int_equal(cmds, 2u * nr);
			assert_true(sq <= cmds);
			assert_true(cq <= cmds);
			assert_true(es.shadow_sq_updates > 0);
			assert_true(es.shadow_cq_updates > 0);
			/*
			 * Step mode: the device runs once all that fits was submitted, so
			 * per-command doorbells write the register once per batch.
			 */
			if (e.step && imm && depth > 1)
				assert_true(sq * (depth / 2) <= cmds);
			env_close(&e);
		}
	}
}

static void test_matrix_step(void **state)
{
	(void)state;
	matrix("emu:mode=step,size=16M", 3000);
}

static void test_matrix_thread(void **state)
{
	(void)state;
	matrix("emu:mode=thread,size=16M", 3000);
}

/* ------------------------------------------------------------------------ */
/* Controller reset                                                         */
/* ------------------------------------------------------------------------ */

static void reset_case(const char *spec)
{
	struct env e;

	env_open(&e, spec, PNVME_CTRL_SHADOW_DB, MAX_DEPTH + 1, PNVME_QPAIR_DB_IMMEDIATE);
	assert_true(pnvme_ctrl_shadow_db(e.ctrl));
	run_io(&e, true, 1000, MAX_DEPTH, 1);
	for (int i = 0; i < 3; i++) {
		assert_ok(pnvme_ctrl_reset(e.ctrl));
		assert_true(pnvme_ctrl_shadow_db(e.ctrl));   /* configured again */
		struct pnvme_emu_stats e0 = estats(&e);
		struct pnvme_qpair_stats q0 = qstats(&e);
		/* the queue pair re-creates its queues at its next poll */
		run_io(&e, false, 1000, MAX_DEPTH, (uint32_t)i + 1u);
		run_io(&e, true, 1000, MAX_DEPTH, (uint32_t)i + 2u);
		struct pnvme_emu_stats e1 = estats(&e);
		struct pnvme_qpair_stats q1 = qstats(&e);
		assert_int_equal(q1.reconnects - q0.reconnects, 1);
		assert_true(e1.shadow_sq_updates > e0.shadow_sq_updates);
		assert_true(e1.shadow_cq_updates > e0.shadow_cq_updates);
		if (e.step)
			assert_true((q1.sq_doorbells - q0.sq_doorbells) * 8 <=
				    q1.submitted - q0.submitted);
	}
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 3);
	run_io(&e, false, 1000, MAX_DEPTH, 4);
	env_close(&e);
}

static void test_reset_step(void **state)
{
	(void)state;
	reset_case("emu:mode=step,size=4M");
}

static void test_reset_thread(void **state)
{
	(void)state;
	reset_case("emu:mode=thread,size=4M");
}

/* ------------------------------------------------------------------------ */
/* Queue pairs destroyed and created again                                  */
/* ------------------------------------------------------------------------ */

/*
 * A destroyed queue leaves its last tail and head in the shadow page; the
 * next queue with that id must not take them as doorbells (the device runs
 * on its own thread and may look before the host has zeroed its entries).
 * Every write reaches the media exactly once, no stray completion shows up.
 */
/*
 * Queue pairs destroyed and re-created under the same id, the rings left at
 * varying positions. `spec` dbbuf=2: the controller leaves the EventIdx
 * entries of a new queue as the last queue with that id left them (QEMU 7.2
 * does): the host must zero them, or its first doorbells are skipped as
 * "not needed" and the commands wait forever.
 */
static void recreate(const char *spec)
{
	struct pnvme_qpair_opts qo;
	struct env e;
	uint64_t writes = 0;

	env_open(&e, spec, PNVME_CTRL_SHADOW_DB, 16, 0);
	pnvme_qpair_opts_default(&qo);
	qo.depth = 16;
	qo.flags = PNVME_QPAIR_DB_IMMEDIATE;
	for (uint32_t i = 0; i < 40; i++) {
		uint32_t n = 5 + i % 13;       /* leaves the rings at varying positions */
		run_io(&e, true, n, 8, i);
		run_io(&e, false, n, 8, i);
		writes += n;
		struct pnvme_qpair_stats st = qstats(&e);
		assert_int_equal(st.bad_cqes, 0);
		assert_int_equal(st.errors, 0);
		assert_ok(pnvme_qpair_destroy(e.qp));
		assert_ok(pnvme_qpair_create(e.ctrl, &qo, &e.qp));
		assert_int_equal(pnvme_qpair_id(e.qp), 1);
	}
	assert_int_equal(estats(&e).write_bytes, writes * e.ns->lba_size);
	env_close(&e);
}

static void test_recreate(void **state)
{
	(void)state;
	recreate("emu:mode=thread,size=4M");
}

static void test_recreate_stale_eventidx(void **state)
{
	(void)state;
	recreate("emu:mode=thread,size=4M,dbbuf=2");
}

/* ------------------------------------------------------------------------ */
/* dbbuf=0: the registers, one per command                                  */
/* ------------------------------------------------------------------------ */

static void test_dbbuf_off(void **state)
{
	static const char *const specs[] = { "emu:mode=step,size=4M,dbbuf=0",
					     "emu:mode=thread,size=4M,dbbuf=0" };
	struct env e;
	(void)state;

	for (unsigned k = 0; k < 2; k++) {
		env_open(&e, specs[k], PNVME_CTRL_SHADOW_DB, MAX_DEPTH + 1,
			 PNVME_QPAIR_DB_IMMEDIATE);
		assert_false(pnvme_ctrl_shadow_db(e.ctrl));
		struct pnvme_qpair_stats q0 = qstats(&e);
		run_io(&e, true, 2000, MAX_DEPTH, 9);
		run_io(&e, false, 2000, MAX_DEPTH, 9);
		struct pnvme_qpair_stats q1 = qstats(&e);
		assert_int_equal(q1.sq_doorbells - q0.sq_doorbells, q1.submitted - q0.submitted);
		assert_int_equal(estats(&e).shadow_sq_updates, 0);
		assert_ok(pnvme_ctrl_reset(e.ctrl));
		assert_false(pnvme_ctrl_shadow_db(e.ctrl));
		run_io(&e, false, 500, MAX_DEPTH, 9);
		env_close(&e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_negotiation),
		cmocka_unit_test(test_step_counts),
		cmocka_unit_test(test_matrix_step),
		cmocka_unit_test(test_matrix_thread),
		cmocka_unit_test(test_reset_step),
		cmocka_unit_test(test_reset_thread),
		cmocka_unit_test(test_recreate),
		cmocka_unit_test(test_recreate_stale_eventidx),
		cmocka_unit_test(test_dbbuf_off),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
