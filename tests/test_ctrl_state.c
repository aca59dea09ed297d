/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_ctrl_state.c - one reset at a time, and no stale commands: the
 * controller state machine (src/core/reset.c ctrl_change_state, ctrl_recover,
 * ctrl_request_reset / ctrl_run_pending_reset), and the queue pair parts that
 * depend on it (src/core/recovery.c, src/pcie/qpair.c, src/pcie/ring.h: retry
 * command ids, Abort Command Limit, reaping after the disable, the
 * doorbell/reset handshake, destroy and close from callbacks). Stepped emulators with faults armed; a few cases reach
 * into the queue pair (src/core/ctrl_priv.h) to hold a doorbell write open.
 *
 * Timing: no upper bound here is tighter than seconds; where a case needs
 * an interleaving of threads it waits for a state it can see (a generation
 * change, a flag), and sleeps only to give a wrong implementation the time
 * to show itself.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <pnvme/pnvme.h>

#include "core/ctrl_priv.h"

#define LBA      512u
#define SCRATCH  1900u   /* usability checks write here (size=1M: 2048 blocks) */

#include "test_helpers.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Watchdog: a case whose bug is an endless loop or a deadlock fails (the
 * program exits with a message) instead of hanging the suite.
 */
static const char *g_watch_what;

static void watchdog_fired(int sig)
{
	static const char head[] = "\ntest_ctrl_state: watchdog: ";
	(void)sig;
	if (write(2, head, sizeof(head) - 1) < 0 ||
	    write(2, g_watch_what, strlen(g_watch_what)) < 0 || write(2, "\n", 1) < 0)
		_exit(3);
	_exit(2);
}

static void watchdog(unsigned seconds, const char *what)
{
	g_watch_what = what;
	signal(SIGALRM, watchdog_fired);
	alarm(seconds);
}

static void watchdog_off(void)
{
	alarm(0);
}

/* Library log: quiet unless CTRL_STATE_VERBOSE. */
static void log_sink(void *arg, enum pnvme_log_level level, const char *msg)
{
	(void)arg;
	if (getenv("CTRL_STATE_VERBOSE"))
		fprintf(stderr, "  [pnvme %d] %s\n", (int)level, msg);
}

/* Reset callback record (and an optional action run from it). */
static int g_reset_calls, g_reset_err;
static int g_close_in_reset_cb = 1;
static bool g_try_close_in_reset_cb;

struct env;
static struct env *g_env; /* the running test's */
static struct pnvme_ctrl *env_ctrl(void);
/* What the running test opened, closed by the teardown if an assertion left it open. */
static struct pnvme_emu *g_open_emu;
static struct pnvme_ctrl *g_open_ctrl;
static bool g_tearing_down;

static void reset_cb(void *arg, int err, const char *reason)
{
	(void)arg;
	(void)reason;
	g_reset_calls++;
	g_reset_err = err;
	if (g_try_close_in_reset_cb) {
		g_try_close_in_reset_cb = false;
		g_close_in_reset_cb = pnvme_ctrl_close(env_ctrl());
	}
}

/* ------------------------------------------------------------------------ */
/* Environment (after tests/test_recovery.c)                                */
/* ------------------------------------------------------------------------ */

struct env {
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp[2];
	const struct pnvme_ns *ns;
};

struct env_cfg {
	uint32_t io_ms;
	uint32_t admin_ms;
	uint32_t retries[2];
	uint32_t flags[2];
	int nqp;
};

static struct pnvme_ctrl *env_ctrl(void)
{
	return g_env->ctrl;
}

static void env_open(struct env *e, const struct env_cfg *c)
{
	struct pnvme_ctrl_opts co;

	memset(e, 0, sizeof(*e));
	g_reset_calls = 0;
	g_reset_err = 1;
	assert_ok(pnvme_emu_create("emu:mode=step,size=1M,lba=512", &e->emu));
	g_env = e;
	g_open_emu = e->emu;
	pnvme_ctrl_opts_default(&co);
	co.admin_timeout_ms = c->admin_ms ? c->admin_ms : 100;
	co.io_timeout_ms = c->io_ms ? c->io_ms : 5000;
	co.reset_cb = reset_cb;
	assert_ok(pnvme_ctrl_open_emu(e->emu, &co, &e->ctrl));
	g_open_ctrl = e->ctrl;
	e->ns = pnvme_ctrl_ns(e->ctrl, 1);
	assert_non_null(e->ns);
	for (int i = 0; i < (c->nqp ? c->nqp : 1); i++) {
		struct pnvme_qpair_opts o;
		pnvme_qpair_opts_default(&o);
		o.timeout_ms = co.io_timeout_ms;
		o.max_retries = c->retries[i];
		o.flags = c->flags[i];
		assert_ok(pnvme_qpair_create(e->ctrl, &o, &e->qp[i]));
	}
}

static void env_close(struct env *e, int want)
{
	int rc = pnvme_ctrl_close(e->ctrl);
	pnvme_emu_destroy(e->emu);
	memset(e, 0, sizeof(*e));
	g_env = NULL;
	g_open_ctrl = NULL;
	g_open_emu = NULL;
	assert_rc(rc, want);
}

static int teardown(void **state)
{
	(void)state;
	watchdog_off();
	/* (g_env points into the failed test's stack frame: only the copies are valid) */
	g_env = NULL;
	g_tearing_down = true;
	if (g_open_ctrl)
		(void)pnvme_ctrl_close(g_open_ctrl);
	g_tearing_down = false;
	if (g_open_emu)
		pnvme_emu_destroy(g_open_emu);
	g_open_ctrl = NULL;
	g_open_emu = NULL;
	return 0;
}

static struct pnvme_emu_fault fault(enum pnvme_emu_fault_kind kind, uint16_t qid, int opc,
				    uint32_t skip, uint32_t count)
{
	struct pnvme_emu_fault f = {
		.kind = kind, .qid = qid, .opc = opc, .skip = skip, .count = count,
	};
	return f;
}

static struct pnvme_qpair_stats stats_of(struct pnvme_qpair *qp)
{
	struct pnvme_qpair_stats st;
	pnvme_qpair_get_stats(qp, &st);
	return st;
}

static struct pnvme_emu_stats emu_stats(struct env *e)
{
	struct pnvme_emu_stats st;
	pnvme_emu_get_stats(e->emu, &st);
	return st;
}

/* A register or doorbell of the emulated BAR. */
static uint32_t bar_read(struct env *e, size_t off)
{
	size_t len;
	volatile uint8_t *bar = pnvme_emu_bar(e->emu, &len);
	return __atomic_load_n((volatile uint32_t *)(bar + off), __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */
/* ------------------------------------------------------------------------ */

struct rq {
	int calls;
	int err;
	uint16_t status;
	bool write;
	uint64_t lba;
	uint32_t nlb;
	uint32_t seed;        /* write: its content; read: what must come back */
	uint8_t *buf;
	bool data_ok_at_cb;   /* read: the buffer held the data when the callback ran */
	struct env *e;
	struct pnvme_qpair *qp;
	/* optional action from the callback */
	int (*action)(struct rq *r);
	int action_rc;
};

static bool rq_data_ok(const struct rq *r)
{
	for (uint32_t i = 0; i < r->nlb; i++)
		if (!test_block_is(r->buf + (size_t)i * LBA, LBA, r->lba + i, r->seed))
			return false;
	return true;
}

static void rq_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct rq *r = arg;

	if (g_tearing_down)
		return; /* a failed test's requests: their records are gone */
	if (++r->calls > 1)
		return;
	r->err = err;
	r->status = PNVME_CQE_STATUS(cqe);
	if (!r->write && err == 0)
		r->data_ok_at_cb = rq_data_ok(r);
	if (r->action)
		r->action_rc = r->action(r);
}

static void rq_prep(struct env *e, struct pnvme_qpair *qp, struct rq *r, bool write,
		    uint64_t lba, uint32_t nlb, uint32_t seed)
{
	memset(r, 0, sizeof(*r));
	r->e = e;
	r->qp = qp;
	r->write = write;
	r->lba = lba;
	r->nlb = nlb;
	r->seed = seed;
	assert_ok(pnvme_dma_alloc(e->ctrl, (size_t)nlb * LBA, 0, (void **)&r->buf, NULL));
	if (write)
		for (uint32_t i = 0; i < nlb; i++)
			test_block_fill(r->buf + (size_t)i * LBA, LBA, lba + i, seed);
	else
		memset(r->buf, 0xa5, (size_t)nlb * LBA);
}

static int rq_submit(struct rq *r)
{
	if (r->write)
		return pnvme_write(r->qp, r->e->ns, r->buf, r->lba, r->nlb, 0, rq_cb, r);
	return pnvme_read(r->qp, r->e->ns, r->buf, r->lba, r->nlb, 0, rq_cb, r);
}

static void rq_free(struct env *e, struct rq *r)
{
	if (r->buf && e->ctrl)
		pnvme_dma_free(e->ctrl, r->buf);
	r->buf = NULL;
}

/* The application's loop: flush, step the device, poll, until done or `max_s`. */
static int drive(struct env *e, struct rq **rs, int n, double max_s)
{
	double t0 = now_s();
	int last = 0;

	for (;;) {
		bool done = true;
		for (int i = 0; i < n; i++)
			done &= rs[i]->calls > 0;
		if (done || now_s() - t0 > max_s)
			break;
		for (int q = 0; q < 2; q++)
			if (e->qp[q])
				pnvme_qpair_flush(e->qp[q]);
		(void)pnvme_emu_step(e->emu);
		for (int q = 0; q < 2; q++) {
			if (!e->qp[q])
				continue;
			int rc = pnvme_qpair_poll(e->qp[q], 0);
			if (rc < 0)
				last = rc;
		}
		usleep(200);
	}
	return last;
}

static void check_err(const struct rq *r, int want)
{
	if (r->calls != 1)
		fail_msg("%s lba %llu: callback ran %d times", r->write ? "write" : "read",
			 (unsigned long long)r->lba, r->calls);
	if (r->err != want)
		fail_msg("%s lba %llu: err %d (%s), expected %d (%s); status 0x%04x", r->write ?
			 "write" : "read", (unsigned long long)r->lba, r->err, strerror(-r->err),
			 want, strerror(-want), r->status);
}

/* The queue pair works: a verified write and read through it. */
static void check_usable(struct env *e, struct pnvme_qpair *qp, uint32_t seed)
{
	struct rq w, r;
	struct rq *rs[1];

	rq_prep(e, qp, &w, true, SCRATCH, 8, seed);
	assert_ok(rq_submit(&w));
	rs[0] = &w;
	drive(e, rs, 1, 5.0);
	check_err(&w, 0);
	rq_prep(e, qp, &r, false, SCRATCH, 8, seed);
	assert_ok(rq_submit(&r));
	rs[0] = &r;
	drive(e, rs, 1, 5.0);
	check_err(&r, 0);
	if (!r.data_ok_at_cb || !rq_data_ok(&r))
		fail_msg("read-back after the write does not hold the written data");
	rq_free(e, &w);
	rq_free(e, &r);
}

struct acb {
	int calls;
	int err;
	/* optional action from the callback */
	void (*action)(struct acb *a);
	struct env *e;
	int rc;
	uint32_t db_before, db_after;
	struct acb *next;
};

static void acb_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct acb *a = arg;
	(void)cqe;
	if (g_tearing_down)
		return;
	a->calls++;
	a->err = err;
	if (a->action && a->calls == 1)
		a->action(a);
}

/* ------------------------------------------------------------------------ */
/* A retried command goes out under a fresh command id                      */
/* ------------------------------------------------------------------------ */

/*
 * A read fails with Internal Error (no DNR), and the device posts that
 * completion twice. The queue pair retries the read (max_retries 1); the
 * duplicate of the failed attempt must not be taken for the retry's
 * completion (which would end the request while the device still owns the
 * buffer: with one retry allowed, as a failure; with more, possibly as a
 * success without data). The retry carries the next generation of the
 * command id, so the duplicate is a bad CQE and the read succeeds with data.
 */
static void test_retry_fresh_cid(void **state)
{
	const struct env_cfg cfg = { .retries = { 1 } };
	uint8_t blk[8 * LBA];
	struct rq r;
	struct rq *rs[] = { &r };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	for (uint32_t i = 0; i < 8; i++)
		test_block_fill(blk + i * LBA, LBA, 64 + i, 31);
	assert_ok(pnvme_emu_media_write(e.emu, 1, 64 * LBA, blk, sizeof(blk)));
	uint16_t qid = pnvme_qpair_id(e.qp[0]);
	struct pnvme_emu_fault st = fault(PNVME_EMU_FAULT_STATUS, qid, PNVME_NVM_READ, 0, 1);
	st.status = PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INTERNAL);
	struct pnvme_emu_fault dup = fault(PNVME_EMU_FAULT_CQE_DUP, qid, PNVME_NVM_READ, 0, 1);
	assert_ok(pnvme_emu_inject(e.emu, &st));
	assert_ok(pnvme_emu_inject(e.emu, &dup));

	rq_prep(&e, e.qp[0], &r, false, 64, 8, 31);
	assert_ok(rq_submit(&r));
	pnvme_qpair_flush(e.qp[0]);
	(void)pnvme_emu_step(e.emu); /* failed attempt: its completion posted twice */
	assert_true(pnvme_qpair_poll(e.qp[0], 0) >= 0);
	drive(&e, rs, 1, 5.0);
	check_err(&r, 0);
	if (!r.data_ok_at_cb)
		fail_msg("the read completed before the device ran its retry");
	struct pnvme_qpair_stats s = stats_of(e.qp[0]);
	assert_int_equal(s.retries, 1);
	assert_int_equal(s.bad_cqes, 1);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 0);
	check_usable(&e, e.qp[0], 301);
	rq_free(&e, &r);
	env_close(&e, 0);
}

/* ------------------------------------------------------------------------ */
/* One reset at a time                                                      */
/* ------------------------------------------------------------------------ */

/*
 * The Set Features (Number of Queues) of a reset loses its completion. Its
 * admin timeout is a step failing inside the reset: the reset starts over
 * (no second reset nested inside the first, no dead controller), the queue
 * pair's doorbelled write is resubmitted, and the timeout's reset request,
 * raised in the reset's generation, is not run again afterwards.
 */
static void test_reset_lost_set_features(void **state)
{
	const struct env_cfg cfg = { .admin_ms = 100, .retries = { 3 } };
	struct rq w;
	struct rq *rs[] = { &w };
	uint32_t dw0;
	struct env e;
	(void)state;

	watchdog(60, "test_reset_lost_set_features: the reset did not end");
	env_open(&e, &cfg);
	rq_prep(&e, e.qp[0], &w, true, 200, 8, 41);
	assert_ok(rq_submit(&w));
	pnvme_qpair_flush(e.qp[0]); /* doorbelled, not fetched */
	struct pnvme_emu_fault drop = fault(PNVME_EMU_FAULT_DROP_CPL, 0, PNVME_ADM_SET_FEATURES,
					    0, 1);
	assert_ok(pnvme_emu_inject(e.emu, &drop));
	int rc = pnvme_ctrl_reset(e.ctrl);
	if (rc != 0 || pnvme_ctrl_is_dead(e.ctrl))
		fail_msg("one lost Set Features completion during a reset: reset returned %d, "
			 "controller %s, %d reset callback(s); a step failing inside a reset "
			 "must start the reset over, not nest a second one and give up", rc,
			 pnvme_ctrl_is_dead(e.ctrl) ? "dead" : "alive", g_reset_calls);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	assert_int_equal(g_reset_calls, 1);
	assert_int_equal(g_reset_err, 0);
	drive(&e, rs, 1, 5.0);
	check_err(&w, 0);
	/* admin commands work, and the stale request raised inside the reset stays dropped */
	for (int i = 0; i < 5; i++) {
		assert_ok(pnvme_get_features(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, &dw0));
		assert_true(pnvme_ctrl_process_admin(e.ctrl) >= 0);
	}
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	assert_int_equal(g_reset_calls, 1);
	check_usable(&e, e.qp[0], 302);
	rq_free(&e, &w);
	watchdog_off();
	env_close(&e, 0);
}

/*
 * Every Set Features of the reset is lost: the reset is tried a bounded
 * number of times (three enables), then the controller is dead; one reset,
 * one callback with -ENODEV, nothing nested.
 */
static void test_reset_retries_bounded(void **state)
{
	const struct env_cfg cfg = { .admin_ms = 50 };
	struct env e;
	(void)state;

	watchdog(60, "test_reset_retries_bounded: resets nested without bound");
	env_open(&e, &cfg);
	struct pnvme_emu_fault drop = fault(PNVME_EMU_FAULT_DROP_CPL, 0, PNVME_ADM_SET_FEATURES,
					    0, 0);
	assert_ok(pnvme_emu_inject(e.emu, &drop));
	uint64_t en0 = emu_stats(&e).enables;
	assert_rc(pnvme_ctrl_reset(e.ctrl), -ENODEV);
	assert_true(pnvme_ctrl_is_dead(e.ctrl));
	uint64_t enables = emu_stats(&e).enables - en0;
	if (enables != 3)
		fail_msg("the failing reset enabled the controller %llu times: expected 3 attempts",
			 (unsigned long long)enables);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	assert_int_equal(g_reset_calls, 1);
	assert_rc(g_reset_err, -ENODEV);
	assert_rc(pnvme_qpair_poll(e.qp[0], 0), -ENODEV);
	watchdog_off();
	env_close(&e, -ENODEV);
}

/*
 * An admin command the reset fails (-EIO) has a callback that polls an I/O
 * queue pair. That runs inside the reset, on its thread, with the controller
 * disabled: the queue pair must wait for the reset's end instead of trying
 * to re-create its queues inside it (which fails and stops the queue pair
 * for good with -EIO). Afterwards its doorbelled write is resubmitted.
 */
static struct pnvme_qpair *g_poll_qp;
static int g_poll_rc = 1;

static void poll_from_admin_cb(struct acb *a)
{
	(void)a;
	g_poll_rc = pnvme_qpair_poll(g_poll_qp, 0);
}

static void test_reset_callback_polls_qpair(void **state)
{
	const struct env_cfg cfg = { .retries = { 3 } };
	struct acb a = { .action = poll_from_admin_cb };
	struct rq w;
	struct rq *rs[] = { &w };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	struct pnvme_emu_fault hold = fault(PNVME_EMU_FAULT_DELAY_CPL, 0, PNVME_ADM_GET_FEATURES,
					    0, 1);
	hold.delay_us = 100000000ull;
	assert_ok(pnvme_emu_inject(e.emu, &hold));
	assert_ok(pnvme_get_features_async(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, acb_cb, &a));
	(void)pnvme_emu_step(e.emu); /* held by the device */
	rq_prep(&e, e.qp[0], &w, true, 300, 8, 51);
	assert_ok(rq_submit(&w));
	pnvme_qpair_flush(e.qp[0]);
	g_poll_qp = e.qp[0];
	g_poll_rc = 1;
	assert_ok(pnvme_ctrl_reset(e.ctrl));
	assert_int_equal(a.calls, 1);
	assert_rc(a.err, -EIO);
	if (g_poll_rc != 0)
		fail_msg("polling a queue pair from a callback run inside the reset returned %d "
			 "(%s): it must wait for the reset to end", g_poll_rc,
			 strerror(g_poll_rc < 0 ? -g_poll_rc : g_poll_rc));
	int rc = drive(&e, rs, 1, 5.0);
	assert_true(rc >= 0);
	check_err(&w, 0);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	assert_int_equal(stats_of(e.qp[0]).reconnects, 1);
	check_usable(&e, e.qp[0], 303);
	rq_free(&e, &w);
	env_close(&e, 0);
}

/*
 * The admin queue's doorbell is held during a reset: a callback of an admin
 * command the reset fails submits a new admin command while the controller
 * is disabled. The SQ tail doorbell must not be written then (the command
 * is announced once the controller is enabled again, and completes).
 */
static void submit_from_admin_cb(struct acb *a)
{
	size_t db = PNVME_SQ_TDBL(0, 0);
	a->db_before = bar_read(a->e, db);
	a->rc = pnvme_get_features_async(a->e->ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, acb_cb, a->next);
	a->db_after = bar_read(a->e, db);
}

static void test_admin_doorbell_held_during_reset(void **state)
{
	const struct env_cfg cfg = { 0 };
	struct acb a2 = { 0 };
	struct acb a = { .action = submit_from_admin_cb, .next = &a2 };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	a.e = &e;
	struct pnvme_emu_fault hold = fault(PNVME_EMU_FAULT_DELAY_CPL, 0, PNVME_ADM_GET_FEATURES,
					    0, 1);
	hold.delay_us = 100000000ull;
	assert_ok(pnvme_emu_inject(e.emu, &hold));
	assert_ok(pnvme_get_features_async(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, acb_cb, &a));
	(void)pnvme_emu_step(e.emu);
	/*
	 * The reset empties the admin ring (and the emulator zeroes its doorbell
	 * registers at CC.EN = 0): a doorbell written from the callback reads 1.
	 */
	assert_ok(pnvme_ctrl_reset(e.ctrl));
	assert_int_equal(a.calls, 1);
	assert_rc(a.err, -EIO);
	assert_ok(a.rc);
	if (a.db_after != a.db_before)
		fail_msg("a callback run inside the reset rang the admin SQ doorbell (%u -> %u) "
			 "of a disabled controller", a.db_before, a.db_after);
	for (int i = 0; i < 1000 && a2.calls == 0; i++) {
		(void)pnvme_emu_step(e.emu);
		assert_true(pnvme_ctrl_process_admin(e.ctrl) >= 0);
	}
	assert_int_equal(a2.calls, 1);
	assert_ok(a2.err);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	env_close(&e, 0);
}

/* ------------------------------------------------------------------------ */
/* A reset inside a queue pair's (re)creation or deletion                   */
/* ------------------------------------------------------------------------ */

/*
 * After a reset the queue pair re-creates its queues at its next poll. The
 * completion of its Create I/O SQ (or CQ) is lost: the admin timeout resets
 * the controller again, inside the re-creation and on its thread, which
 * deletes every I/O queue. The queue pair must create its queues again
 * after that reset, not delete a CQ that no longer exists (Invalid Queue
 * Identifier) and stop for good with -EIO on a healthy controller. The
 * doorbelled write is retried and the unsent read goes out: each completes
 * once, successfully.
 */
static void test_reset_during_reconnect(void **state)
{
	static const uint8_t opcs[] = { PNVME_ADM_CREATE_SQ, PNVME_ADM_CREATE_CQ };
	const struct env_cfg cfg = { .admin_ms = 100, .retries = { 3 } };
	(void)state;

	watchdog(120, "test_reset_during_reconnect: the re-creation never ended");
	for (unsigned k = 0; k < ARRAY_SIZE(opcs); k++) {
		uint8_t blk[8 * LBA];
		struct rq w, r;
		struct rq *rs[] = { &w, &r };
		struct env e;

		env_open(&e, &cfg);
		for (uint32_t i = 0; i < 8; i++)
			test_block_fill(blk + i * LBA, LBA, 820 + i, 73);
		assert_ok(pnvme_emu_media_write(e.emu, 1, 820 * LBA, blk, sizeof(blk)));
		rq_prep(&e, e.qp[0], &w, true, 800, 8, 71);
		assert_ok(rq_submit(&w));
		pnvme_qpair_flush(e.qp[0]); /* doorbelled, not fetched */
		struct pnvme_emu_fault drop = fault(PNVME_EMU_FAULT_DROP_CPL, 0, opcs[k], 0, 1);
		assert_ok(pnvme_emu_inject(e.emu, &drop));
		assert_ok(pnvme_ctrl_reset(e.ctrl));
		rq_prep(&e, e.qp[0], &r, false, 820, 8, 73);
		assert_ok(rq_submit(&r)); /* unsent: the doorbell is held until the re-creation */
		int rc = drive(&e, rs, 2, 10.0);
		if (rc < 0)
			fail_msg("Create I/O %s completion lost during the re-creation: the poll "
				 "returned %d (%s: %s); the queue pair must create its queues again "
				 "after the reset that timeout ran", opcs[k] == PNVME_ADM_CREATE_SQ ?
				 "SQ" : "CQ", rc, strerror(-rc), pnvme_last_error());
		check_err(&w, 0);
		check_err(&r, 0);
		if (!r.data_ok_at_cb)
			fail_msg("the read completed without its data");
		for (uint32_t i = 0; i < 8; i++) {
			assert_ok(pnvme_emu_media_read(e.emu, 1, (800 + i) * LBA, blk, LBA));
			assert_true(test_block_is(blk, LBA, 800 + i, 71));
		}
		assert_false(pnvme_ctrl_is_dead(e.ctrl));
		assert_int_equal(pnvme_ctrl_resets(e.ctrl), 2);
		assert_int_equal(g_reset_calls, 2);
		assert_int_equal(g_reset_err, 0);
		assert_int_equal(stats_of(e.qp[0]).reconnects, 1);
		check_usable(&e, e.qp[0], 310 + k);
		rq_free(&e, &w);
		rq_free(&e, &r);
		env_close(&e, 0);
	}
	watchdog_off();
}

/*
 * The same reset, inside pnvme_qpair_create: the Create I/O SQ completion of
 * a second queue pair is lost. The creation goes on after the reset and
 * succeeds (not -ETIMEDOUT); both queue pairs work afterwards.
 */
static void test_reset_during_qpair_create(void **state)
{
	const struct env_cfg cfg = { .admin_ms = 100 };
	struct pnvme_qpair_opts o;
	struct env e;
	(void)state;

	watchdog(60, "test_reset_during_qpair_create: the creation never ended");
	env_open(&e, &cfg);
	struct pnvme_emu_fault drop = fault(PNVME_EMU_FAULT_DROP_CPL, 0, PNVME_ADM_CREATE_SQ, 0, 1);
	assert_ok(pnvme_emu_inject(e.emu, &drop));
	pnvme_qpair_opts_default(&o);
	assert_ok(pnvme_qpair_create(e.ctrl, &o, &e.qp[1]));
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	assert_int_equal(g_reset_err, 0);
	check_usable(&e, e.qp[1], 312);
	check_usable(&e, e.qp[0], 313);
	assert_int_equal(stats_of(e.qp[1]).reconnects, 0);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	watchdog_off();
	env_close(&e, 0);
}

/*
 * And inside pnvme_qpair_destroy: the completion of its Delete I/O SQ (or
 * CQ) is lost. The reset that timeout runs deleted both queues: the destroy
 * succeeded (0, not -ETIMEDOUT), its held read completed once, the queue
 * identifier can be used again and the other queue pair works.
 */
static void test_reset_during_destroy(void **state)
{
	static const uint8_t opcs[] = { PNVME_ADM_DELETE_SQ, PNVME_ADM_DELETE_CQ };
	const struct env_cfg cfg = { .admin_ms = 100, .nqp = 2 };
	(void)state;

	watchdog(60, "test_reset_during_destroy: the destroy never ended");
	for (unsigned k = 0; k < ARRAY_SIZE(opcs); k++) {
		struct pnvme_qpair_opts o;
		struct rq r;
		struct env e;

		env_open(&e, &cfg);
		uint16_t qid = pnvme_qpair_id(e.qp[0]);
		struct pnvme_emu_fault hold = fault(PNVME_EMU_FAULT_DELAY_CPL, qid, PNVME_NVM_READ,
						    0, 1);
		hold.delay_us = 100000000ull;
		assert_ok(pnvme_emu_inject(e.emu, &hold));
		rq_prep(&e, e.qp[0], &r, false, 900, 1, 0);
		assert_ok(rq_submit(&r));
		pnvme_qpair_flush(e.qp[0]);
		(void)pnvme_emu_step(e.emu); /* held by the device */
		struct pnvme_emu_fault drop = fault(PNVME_EMU_FAULT_DROP_CPL, 0, opcs[k], 0, 1);
		assert_ok(pnvme_emu_inject(e.emu, &drop));
		int rc = pnvme_qpair_destroy(e.qp[0]);
		e.qp[0] = NULL;
		if (rc != 0)
			fail_msg("Delete I/O %s completion lost: destroy returned %d (%s: %s); the "
				 "reset its timeout ran deleted the queues, so the destroy is done",
				 opcs[k] == PNVME_ADM_DELETE_SQ ? "SQ" : "CQ", rc, strerror(-rc),
				 pnvme_last_error());
		assert_int_equal(r.calls, 1);
		assert_true(r.err != 0);
		assert_false(pnvme_ctrl_is_dead(e.ctrl));
		assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
		assert_int_equal(g_reset_err, 0);
		check_usable(&e, e.qp[1], 314 + k);
		pnvme_qpair_opts_default(&o);
		assert_ok(pnvme_qpair_create(e.ctrl, &o, &e.qp[0]));
		assert_int_equal(pnvme_qpair_id(e.qp[0]), qid);
		check_usable(&e, e.qp[0], 316 + k);
		rq_free(&e, &r);
		env_close(&e, 0);
	}
	watchdog_off();
}

/*
 * The other side: a controller that really refuses the queue (Create I/O SQ
 * fails with a status, no reset in between) ends the queue pair. Its CQ is
 * deleted again, the doorbelled write completes once with -EIO, polls
 * return -EIO, no further reset runs, and the queue identifier is usable
 * once the stopped queue pair is destroyed.
 */
static void test_reconnect_refused_stops_qpair(void **state)
{
	const struct env_cfg cfg = { .retries = { 3 } };
	struct pnvme_qpair_opts o;
	struct rq w;
	struct rq *rs[] = { &w };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	uint16_t qid = pnvme_qpair_id(e.qp[0]);
	rq_prep(&e, e.qp[0], &w, true, 950, 8, 81);
	assert_ok(rq_submit(&w));
	pnvme_qpair_flush(e.qp[0]);
	struct pnvme_emu_fault refuse = fault(PNVME_EMU_FAULT_STATUS, 0, PNVME_ADM_CREATE_SQ, 0, 1);
	refuse.status = PNVME_STATUS(PNVME_SCT_CMD, PNVME_SC_QUEUE_SIZE) | PNVME_STATUS_DNR;
	assert_ok(pnvme_emu_inject(e.emu, &refuse));
	assert_ok(pnvme_ctrl_reset(e.ctrl));
	int rc = drive(&e, rs, 1, 5.0);
	assert_rc(rc, -EIO);
	check_err(&w, -EIO);
	assert_rc(pnvme_qpair_poll(e.qp[0], 0), -EIO);
	assert_rc(rq_submit(&w), -EIO);
	assert_int_equal(w.calls, 1);
	assert_false(pnvme_ctrl_is_dead(e.ctrl));
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	assert_ok(pnvme_qpair_destroy(e.qp[0]));
	pnvme_qpair_opts_default(&o);
	assert_ok(pnvme_qpair_create(e.ctrl, &o, &e.qp[0]));
	assert_int_equal(pnvme_qpair_id(e.qp[0]), qid);
	check_usable(&e, e.qp[0], 318);
	rq_free(&e, &w);
	env_close(&e, 0);
}

/* ------------------------------------------------------------------------ */
/* Threads: the doorbell handshake, reaping after the disable               */
/* ------------------------------------------------------------------------ */

struct reset_thread {
	struct pnvme_ctrl *ctrl;
	int rc;
	int done;
};

static void *reset_main(void *arg)
{
	struct reset_thread *t = arg;
	t->rc = pnvme_ctrl_reset(t->ctrl);
	__atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Wait (bounded) until a reset has begun: the generation moved. */
static void wait_reset_started(struct env *e, uint32_t gen0)
{
	double t0 = now_s();
	while (__atomic_load_n(&e->ctrl->gen, __ATOMIC_ACQUIRE) == gen0) {
		if (now_s() - t0 > 20.0)
			fail_msg("the reset thread did not start a reset within 20 s");
		usleep(1000);
	}
}

/*
 * A queue pair is inside a doorbell write (held open here for 1.5 s, as a
 * descheduled writer would be) when a reset starts: the reset must wait for
 * it, however long, before it disables the controller. No give-up.
 */
static void test_doorbell_handshake_no_give_up(void **state)
{
	const struct env_cfg cfg = { .nqp = 2 };
	struct reset_thread t = { 0 };
	pthread_t th;
	struct env e;
	(void)state;

	watchdog(60, "test_doorbell_handshake_no_give_up: the reset never ended");
	env_open(&e, &cfg);
	t.ctrl = e.ctrl;
	uint64_t en0 = emu_stats(&e).enables;
	uint32_t gen0 = __atomic_load_n(&e.ctrl->gen, __ATOMIC_ACQUIRE);
	__atomic_store_n(&e.qp[0]->db_busy, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_create(&th, NULL, reset_main, &t), 0);
	wait_reset_started(&e, gen0);
	usleep(1500000);
	int done = __atomic_load_n(&t.done, __ATOMIC_ACQUIRE);
	uint64_t enables = emu_stats(&e).enables - en0;
	uint32_t cc = bar_read(&e, PNVME_REG_CC);
	__atomic_store_n(&e.qp[0]->db_busy, 0, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_join(th, NULL), 0);
	if (done || enables || !PNVME_GET(cc, PNVME_CC_EN))
		fail_msg("with a doorbell write under way for 1.5 s the reset went on anyway "
			 "(finished: %d, enables: %llu, CC.EN %u): it must wait for the writer",
			 done, (unsigned long long)enables, (unsigned)PNVME_GET(cc, PNVME_CC_EN));
	assert_ok(t.rc);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	check_usable(&e, e.qp[0], 304);
	check_usable(&e, e.qp[1], 305);
	watchdog_off();
	env_close(&e, 0);
}

/*
 * Reaping waits for the disable. A reset has begun (generation moved) but
 * has not disabled the controller yet (it waits for a doorbell writer on
 * qp0, held open here). Meanwhile qp1, with a write doorbelled and not yet
 * fetched, is polled: it notices the reset. Then the device runs and
 * completes that write; then the writer leaves and the reset proceeds. The
 * completion was posted before CC.EN = 0: it is final, and the write must
 * end with success (a queue pair that reaped its CQ before the disable
 * misses it and fails the write with -EIO, max_retries 0).
 */
struct stepper {
	struct env *e;
	useconds_t delay_us;
};

static void *stepper_main(void *arg)
{
	struct stepper *s = arg;
	usleep(s->delay_us);
	(void)pnvme_emu_step(s->e->emu); /* the only one stepping now: the reset waits */
	__atomic_store_n(&s->e->qp[0]->db_busy, 0, __ATOMIC_SEQ_CST);
	return NULL;
}

static void test_reap_after_disable(void **state)
{
	const struct env_cfg cfg = { .nqp = 2 };
	struct reset_thread t = { 0 };
	struct stepper s;
	struct rq w;
	struct rq *rs[] = { &w };
	pthread_t th, sh;
	struct env e;
	(void)state;

	watchdog(60, "test_reap_after_disable: deadlock");
	env_open(&e, &cfg);
	rq_prep(&e, e.qp[1], &w, true, 400, 8, 61);
	assert_ok(rq_submit(&w));
	pnvme_qpair_flush(e.qp[1]); /* doorbelled, not fetched */
	t.ctrl = e.ctrl;
	s.e = &e;
	s.delay_us = 200000;
	uint32_t gen0 = __atomic_load_n(&e.ctrl->gen, __ATOMIC_ACQUIRE);
	__atomic_store_n(&e.qp[0]->db_busy, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_create(&th, NULL, reset_main, &t), 0);
	wait_reset_started(&e, gen0);
	assert_int_equal(pthread_create(&sh, NULL, stepper_main, &s), 0);
	/* sees the new generation; returns once the reset is over */
	int rc = pnvme_qpair_poll(e.qp[1], 0);
	assert_int_equal(pthread_join(sh, NULL), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_ok(t.rc);
	assert_true(rc >= 0);
	drive(&e, rs, 1, 5.0);
	if (w.calls == 1 && w.err == -EIO)
		fail_msg("the write the device completed before the disable failed with -EIO: "
			 "the queue pair reaped its old CQ before the controller was disabled");
	check_err(&w, 0);
	uint8_t b[LBA];
	for (uint32_t i = 0; i < 8; i++) {
		assert_ok(pnvme_emu_media_read(e.emu, 1, (400 + i) * LBA, b, LBA));
		assert_true(test_block_is(b, LBA, 400 + i, 61));
	}
	assert_int_equal(stats_of(e.qp[1]).retries, 0);
	check_usable(&e, e.qp[1], 306);
	check_usable(&e, e.qp[0], 307);
	rq_free(&e, &w);
	watchdog_off();
	env_close(&e, 0);
}

/* ------------------------------------------------------------------------ */
/* Abort Command Limit                                                      */
/* ------------------------------------------------------------------------ */

/*
 * Six reads expire together (the device does not run meanwhile). The
 * controller accepts ACL + 1 = 4 Aborts (the emulator's ACL is 3): four
 * are sent, the rest go straight to a reset instead of more Aborts that
 * would fail with Abort Command Limit Exceeded. All six end with -ETIMEDOUT.
 */
static void test_abort_limit(void **state)
{
	const struct env_cfg cfg = { .io_ms = 20, .admin_ms = 1000 };
	enum { N = 6 };
	struct rq r[N];
	struct rq *rs[N];
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	uint32_t limit = (uint32_t)pnvme_ctrl_id(e.ctrl)->acl + 1;
	assert_true(limit < N);
	for (int i = 0; i < N; i++) {
		rq_prep(&e, e.qp[0], &r[i], false, 500 + (unsigned)i, 1, 0);
		assert_ok(rq_submit(&r[i]));
		rs[i] = &r[i];
	}
	pnvme_qpair_flush(e.qp[0]);
	double t0 = now_s();
	while (now_s() - t0 < 0.06) {
		(void)pnvme_qpair_poll(e.qp[0], 0);
		usleep(500);
	}
	struct pnvme_qpair_stats s = stats_of(e.qp[0]);
	if (s.aborts > limit)
		fail_msg("%llu Aborts sent with an Abort Command Limit of %u (ACL %u)",
			 (unsigned long long)s.aborts, limit, limit - 1);
	assert_int_equal(s.aborts, limit);
	drive(&e, rs, N, 5.0);
	for (int i = 0; i < N; i++)
		check_err(&r[i], -ETIMEDOUT);
	assert_int_equal(stats_of(e.qp[0]).timeouts, N);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	assert_int_equal(g_reset_err, 0);
	check_usable(&e, e.qp[0], 308);
	for (int i = 0; i < N; i++)
		rq_free(&e, &r[i]);
	env_close(&e, 0);
}

/* ------------------------------------------------------------------------ */
/* Destroy and close from callbacks                                         */
/* ------------------------------------------------------------------------ */

/*
 * pnvme_qpair_destroy deletes the SQ, then reaps the CQ once more. A
 * callback run by that reap (here: the held read, completed as Aborted SQ
 * Deleted) that submits again must get -ECANCELED, and nothing may ring the
 * deleted SQ's doorbell (per-command doorbells would ring it at once).
 */
static int resubmit(struct rq *r)
{
	return pnvme_read(r->qp, r->e->ns, r->buf, r->lba, r->nlb, 0, NULL, NULL);
}

static void test_destroy_stops_before_last_reap(void **state)
{
	const struct env_cfg cfg = { .flags = { PNVME_QPAIR_DB_IMMEDIATE } };
	struct rq r;
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	uint16_t qid = pnvme_qpair_id(e.qp[0]);
	struct pnvme_emu_fault hold = fault(PNVME_EMU_FAULT_DELAY_CPL, qid, PNVME_NVM_READ, 0, 1);
	hold.delay_us = 100000000ull;
	assert_ok(pnvme_emu_inject(e.emu, &hold));
	rq_prep(&e, e.qp[0], &r, false, 600, 1, 0);
	r.action = resubmit;
	r.action_rc = 1;
	assert_ok(rq_submit(&r)); /* rung at once */
	(void)pnvme_emu_step(e.emu);
	assert_int_equal(bar_read(&e, PNVME_SQ_TDBL(qid, 0)), 1);
	assert_ok(pnvme_qpair_destroy(e.qp[0]));
	e.qp[0] = NULL;
	assert_int_equal(r.calls, 1);
	assert_true(r.err != 0);
	/* (the doorbell register is the host's: the emulator leaves it as it is, so any
	 * later write shows as a value other than 1) */
	uint32_t db_after = bar_read(&e, PNVME_SQ_TDBL(qid, 0));
	if (r.action_rc != -ECANCELED || db_after != 1)
		fail_msg("a callback of the destroy's last reap submitted (rc %d, expected "
			 "-ECANCELED) and the deleted SQ's doorbell reads %u after the deletion "
			 "(expected 1: never rung again)", r.action_rc, db_after);
	rq_free(&e, &r);
	env_close(&e, 0);
}

/* pnvme_ctrl_close from an I/O completion callback: -EDEADLK, not an endless loop. */
static int close_ctrl(struct rq *r)
{
	return pnvme_ctrl_close(r->e->ctrl);
}

static void close_from_admin_cb(struct acb *a)
{
	a->rc = pnvme_ctrl_close(a->e->ctrl);
}

static void test_close_from_callback(void **state)
{
	const struct env_cfg cfg = { 0 };
	struct acb a = { .action = close_from_admin_cb, .rc = 1 };
	struct rq r;
	struct rq *rs[] = { &r };
	struct env e;
	(void)state;

	watchdog(30, "test_close_from_callback: pnvme_ctrl_close from a completion callback "
		     "never returned (it must return -EDEADLK)");
	env_open(&e, &cfg);
	rq_prep(&e, e.qp[0], &r, false, 700, 1, 0);
	r.action = close_ctrl;
	r.action_rc = 1;
	assert_ok(rq_submit(&r));
	drive(&e, rs, 1, 5.0);
	check_err(&r, 0);
	assert_rc(r.action_rc, -EDEADLK);

	a.e = &e;
	assert_ok(pnvme_get_features_async(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, acb_cb, &a));
	for (int i = 0; i < 1000 && a.calls == 0; i++) {
		(void)pnvme_emu_step(e.emu);
		assert_true(pnvme_ctrl_process_admin(e.ctrl) >= 0);
	}
	assert_int_equal(a.calls, 1);
	assert_rc(a.rc, -EDEADLK);

	/* and from the reset callback */
	g_try_close_in_reset_cb = true;
	g_close_in_reset_cb = 1;
	assert_ok(pnvme_ctrl_reset(e.ctrl));
	assert_rc(g_close_in_reset_cb, -EDEADLK);

	/* the controller is intact */
	check_usable(&e, e.qp[0], 309);
	rq_free(&e, &r);
	watchdog_off();
	env_close(&e, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_retry_fresh_cid, teardown),
		cmocka_unit_test_teardown(test_reset_lost_set_features, teardown),
		cmocka_unit_test_teardown(test_reset_retries_bounded, teardown),
		cmocka_unit_test_teardown(test_reset_callback_polls_qpair, teardown),
		cmocka_unit_test_teardown(test_admin_doorbell_held_during_reset, teardown),
		cmocka_unit_test_teardown(test_reset_during_reconnect, teardown),
		cmocka_unit_test_teardown(test_reset_during_qpair_create, teardown),
		cmocka_unit_test_teardown(test_reset_during_destroy, teardown),
		cmocka_unit_test_teardown(test_reconnect_refused_stops_qpair, teardown),
		cmocka_unit_test_teardown(test_doorbell_handshake_no_give_up, teardown),
		cmocka_unit_test_teardown(test_reap_after_disable, teardown),
		cmocka_unit_test_teardown(test_abort_limit, teardown),
		cmocka_unit_test_teardown(test_destroy_stops_before_last_reap, teardown),
		cmocka_unit_test_teardown(test_close_from_callback, teardown),
	};
	const char *filter = getenv("CTRL_STATE_FILTER");

	if (filter && *filter)
		cmocka_set_test_filter(filter);
	pnvme_set_log(log_sink, NULL, PNVME_LOG_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
