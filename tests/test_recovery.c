/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_recovery.c - the fault matrix for the recovery ladder
 * (src/core/recovery.c qpair_check_deadlines / start_abort / qpair_reconnect,
 * src/core/reset.c ctrl_recover), driven against stepped emulators with
 * faults armed.
 *
 * Every case checks the same four things:
 *  - each request's callback ran exactly once (per-request counters);
 *  - no request outlived its deadline by more than the ladder allows
 *    (deadline, plus the admin timeout when an Abort is not answered, plus
 *    CAP.TO when a reset has to wait for a controller, plus scan slack);
 *  - afterwards the queue pair works (a verified write + read) or the
 *    controller is cleanly dead (-ENODEV from everything, close works);
 *  - the media holds what the completed writes say: a write that completed
 *    with success is on the media; a write that failed may or may not be
 *    there (documented per case: the emulator executes DROP_CPL / DELAY_CPL /
 *    CQE_* commands before it loses or holds their completion), but nothing
 *    else may be.
 *
 * Timing: the tests must hold on a loaded machine (two suites sharing two
 * busy cores), where the test process may not run for tens or hundreds of
 * milliseconds at a time. So:
 *  - lower bounds are tight (a timeout must not fire before its configured
 *    time; a scheduling delay can only make things later);
 *  - upper bounds get PNVME_TEST_SLACK_MS of slack (default 1000 ms;
 *    tests/valgrind.sh raises it). Waiting for something the ladder should
 *    not wait for (a completion held 3 s or more, CAP.TO) still exceeds
 *    them; one step too many of the ladder shows in the counters checked
 *    exactly (timeouts, aborts, retries, reconnects, resets), not in time;
 *  - where a case depends on the order of two wall-clock events (an Abort
 *    before a held completion, a held completion before a reset), the two
 *    are at least 450 ms apart; requests that are not meant to time out get
 *    a deadline (NO_TIMEOUT_MS) that no scheduling delay reaches.
 * The summary line prints the largest overshoot of a ladder bound seen.
 */
#include <errno.h>
#include <setjmp.h>
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

#define LBA      512u
#define NS_LBAS  2048u   /* size=1M */
#define SCRATCH  1900u   /* usability checks write here */

/* ------------------------------------------------------------------------ */
/* Bookkeeping for the summary line                                         */
/* ------------------------------------------------------------------------ */

static unsigned g_faults;     /* faults armed */
static unsigned g_completed;  /* requests whose callback ran once */
static unsigned g_lost;       /* requests whose callback never ran */
static unsigned g_dup;        /* extra callback runs */
static unsigned g_corrupt;    /* media blocks matching no acceptable content */

static double g_worst_over = -1e9; /* largest (completion time - ladder bound), seconds */

static double slack_s(void)
{
	static double s = -1;
	if (s < 0) {
		const char *v = getenv("PNVME_TEST_SLACK_MS");
		s = (v && *v ? atof(v) : 1000.0) / 1000.0;
	}
	return s;
}

/*
 * Deadline for requests that must not time out, and the bound they must
 * complete within: the device answers them at its next step, so only
 * scheduling delays count, and the ladder never starts for them.
 */
#define NO_TIMEOUT_MS 5000u
#define PROMPT_MS     1000.0

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#include "test_helpers.h"

/* Library log sink: count messages, keep them quiet unless asked. */
static unsigned g_log_err, g_log_warn;
static char g_log_last[256];
static unsigned g_log_match;          /* messages containing g_log_needle */
static const char *g_log_needle;

static void log_sink(void *arg, enum pnvme_log_level level, const char *msg)
{
	(void)arg;
	if (level == PNVME_LOG_ERR)
		g_log_err++;
	else if (level == PNVME_LOG_WARN)
		g_log_warn++;
	if (g_log_needle && strstr(msg, g_log_needle))
		g_log_match++;
	snprintf(g_log_last, sizeof(g_log_last), "%s", msg);
	if (getenv("RECOVERY_VERBOSE"))
		fprintf(stderr, "  [pnvme %d] %s\n", (int)level, msg);
}

static void log_watch(const char *needle)
{
	g_log_needle = needle;
	g_log_match = 0;
}

/* Reset callback record. */
static int g_reset_calls, g_reset_err;
static char g_reset_reason[128];

static void reset_cb(void *arg, int err, const char *reason)
{
	(void)arg;
	g_reset_calls++;
	g_reset_err = err;
	snprintf(g_reset_reason, sizeof(g_reset_reason), "%s", reason ? reason : "");
}

/* ------------------------------------------------------------------------ */
/* Block contents: f(lba, seed); seed 0 is the zeroes of a fresh namespace  */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Environment                                                              */
/* ------------------------------------------------------------------------ */

struct env {
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp[2];
	const struct pnvme_ns *ns;
};

struct env_cfg {
	const char *emu;      /* extra emulator options */
	uint32_t io_ms;
	uint32_t admin_ms;
	uint32_t retries[2];
	uint32_t depth;
	uint16_t admin_depth;
	int nqp;
};

/* Set while a teardown closes what a failed test left: its requests' records are gone. */
static bool g_tearing_down;

/* What the running test opened, closed by the teardown if an assertion left it open. */
static struct pnvme_emu *g_open_emu;
static struct pnvme_ctrl *g_open_ctrl;

static void env_open(struct env *e, const struct env_cfg *c)
{
	struct pnvme_ctrl_opts co;
	char spec[256];

	memset(e, 0, sizeof(*e));
	g_reset_calls = 0;
	g_reset_err = 1;
	g_reset_reason[0] = 0;
	snprintf(spec, sizeof(spec), "emu:mode=step,size=1M,lba=512%s%s",
		 c->emu && *c->emu ? "," : "", c->emu ? c->emu : "");
	assert_ok(pnvme_emu_create(spec, &e->emu));
	g_open_emu = e->emu;
	pnvme_ctrl_opts_default(&co);
	co.admin_timeout_ms = c->admin_ms ? c->admin_ms : 100;
	co.io_timeout_ms = c->io_ms ? c->io_ms : 50;
	if (c->admin_depth)
		co.admin_depth = c->admin_depth;
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
		o.depth = c->depth;
		assert_ok(pnvme_qpair_create(e->ctrl, &o, &e->qp[i]));
	}
}

static void env_close(struct env *e, int want)
{
	/* pnvme_ctrl_close destroys the queue pairs (and frees DMA memory). */
	int rc = pnvme_ctrl_close(e->ctrl);
	e->ctrl = NULL;
	pnvme_emu_destroy(e->emu);
	memset(e, 0, sizeof(*e));
	g_open_emu = NULL;
	g_open_ctrl = NULL;
	assert_rc(rc, want);
}

/* After a failed test: release what it left, so that valgrind reports only real leaks. */
static int teardown(void **state)
{
	(void)state;
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

static void inject(struct env *e, const struct pnvme_emu_fault *f)
{
	assert_ok(pnvme_emu_inject(e->emu, f));
	g_faults++;
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */
/* ------------------------------------------------------------------------ */

struct rq {
	int calls;
	int err;
	uint16_t status;      /* PNVME_CQE_STATUS of the CQE handed over */
	uint16_t sqid;
	bool write;
	uint64_t lba;
	uint32_t nlb;
	uint32_t seed;        /* write: its content; read: what must come back (0: zeroes) */
	double t_sub, t_done;
	double bound_s;       /* ladder bound: completion within this after submission */
	uint8_t *buf;
	bool data_ok_at_cb;   /* read: buffer verified inside the callback */
	bool counted;         /* already in the summary */
	struct env *e;
	struct pnvme_qpair *qp;
	struct rq *chain;     /* submitted from this request's callback (CID reuse) */
	struct pnvme_ctrl *ctrl;
};

static void rq_cb(void *arg, int err, const struct pnvme_cqe *cqe);

static bool rq_data_ok(const struct rq *r)
{
	for (uint32_t i = 0; i < r->nlb; i++)
		if (!test_block_is(r->buf + (size_t)i * LBA, LBA, r->lba + i, r->seed))
			return false;
	return true;
}

static void rq_prep(struct env *e, struct pnvme_qpair *qp, struct rq *r, bool write,
		    uint64_t lba, uint32_t nlb, uint32_t seed, double bound_s)
{
	memset(r, 0, sizeof(*r));
	r->e = e;
	r->ctrl = e->ctrl;
	r->qp = qp;
	r->write = write;
	r->lba = lba;
	r->nlb = nlb;
	r->seed = seed;
	r->bound_s = bound_s;
	assert_ok(pnvme_dma_alloc(e->ctrl, (size_t)nlb * LBA, 0, (void **)&r->buf, NULL));
	if (write)
		for (uint32_t i = 0; i < nlb; i++)
			test_block_fill(r->buf + (size_t)i * LBA, LBA, lba + i, seed);
	else
		memset(r->buf, 0xa5, (size_t)nlb * LBA);
}

static int rq_submit(struct rq *r)
{
	r->t_sub = now_s();
	if (r->write)
		return pnvme_write(r->qp, r->e->ns, r->buf, r->lba, r->nlb, 0, rq_cb, r);
	return pnvme_read(r->qp, r->e->ns, r->buf, r->lba, r->nlb, 0, rq_cb, r);
}

/* Prepare and submit (not flushed); `bound_ms`: the ladder's limit for this request. */
static void rq_write(struct env *e, struct pnvme_qpair *qp, struct rq *r, uint64_t lba,
		     uint32_t nlb, uint32_t seed, double bound_ms)
{
	rq_prep(e, qp, r, true, lba, nlb, seed, bound_ms / 1000.0);
	assert_ok(rq_submit(r));
}

static void rq_read(struct env *e, struct pnvme_qpair *qp, struct rq *r, uint64_t lba,
		    uint32_t nlb, uint32_t expect_seed, double bound_ms)
{
	rq_prep(e, qp, r, false, lba, nlb, expect_seed, bound_ms / 1000.0);
	assert_ok(rq_submit(r));
}

static void rq_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct rq *r = arg;

	if (g_tearing_down)
		return;

	if (++r->calls > 1) {
		g_dup++;
		return;
	}
	r->err = err;
	r->status = PNVME_CQE_STATUS(cqe);
	r->sqid = cqe->sqid;
	r->t_done = now_s();
	if (!r->write && err == 0)
		r->data_ok_at_cb = rq_data_ok(r);
	if (r->chain)
		assert_ok(rq_submit(r->chain));
}

static void rq_free(struct rq *r, int n)
{
	for (int i = 0; i < n; i++) {
		if (r[i].buf && r[i].ctrl)
			pnvme_dma_free(r[i].ctrl, r[i].buf);
		r[i].buf = NULL;
	}
}

static bool all_done(struct rq **rs, int n)
{
	for (int i = 0; i < n; i++)
		if (rs[i]->calls == 0)
			return false;
	return true;
}

/*
 * The application's loop: flush, let the device run, poll every queue pair,
 * until every request in `rs` completed or `max_s` passed (at least the
 * longest ladder bound plus the slack: a late request fails its bound in
 * check_once, not as lost). Returns the last negative poll result (0 if none).
 */
static int drive(struct env *e, struct rq **rs, int n, double max_s)
{
	double t0 = now_s();
	int last = 0;

	for (int i = 0; i < n; i++)
		if (rs[i]->bound_s + slack_s() > max_s)
			max_s = rs[i]->bound_s + slack_s();

	while (!all_done(rs, n) && now_s() - t0 < max_s) {
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

/* Keep polling for `s` seconds (nothing may complete twice meanwhile). */
static void idle(struct env *e, double s)
{
	double t0 = now_s();
	while (now_s() - t0 < s) {
		(void)pnvme_emu_step(e->emu);
		for (int q = 0; q < 2; q++)
			if (e->qp[q])
				(void)pnvme_qpair_poll(e->qp[q], 0);
		usleep(500);
	}
}

/* Exactly once, within the ladder's bound. */
static void check_once(struct rq **rs, int n)
{
	for (int i = 0; i < n; i++) {
		struct rq *r = rs[i];
		if (r->calls == 0) {
			g_lost++;
			fail_msg("request %d (%s lba %llu): callback never ran", i,
				 r->write ? "write" : "read", (unsigned long long)r->lba);
		}
		if (r->calls > 1)
			fail_msg("request %d: callback ran %d times", i, r->calls);
		double dt = r->t_done - r->t_sub;
		if (dt - r->bound_s > g_worst_over)
			g_worst_over = dt - r->bound_s;
		if (dt > r->bound_s + slack_s())
			fail_msg("request %d completed (err %d) after %.1f ms; the ladder allows "
				 "%.1f ms + %.0f ms slack", i, r->err, dt * 1e3, r->bound_s * 1e3,
				 slack_s() * 1e3);
		if (!r->counted)
			g_completed++;
		r->counted = true;
	}
}

static void check_err(const struct rq *r, int want)
{
	if (r->err != want)
		fail_msg("%s lba %llu: err %d (%s), expected %d (%s); status 0x%04x", r->write ?
			 "write" : "read", (unsigned long long)r->lba, r->err, strerror(-r->err),
			 want, strerror(-want), r->status);
}

/* A host-side completion: Path Related / Command Aborted By Host, DNR. */
static void check_host_cqe(const struct rq *r)
{
	if (PNVME_STATUS_CODE(r->status) != PNVME_STATUS(PNVME_SCT_PATH, PNVME_SC_HOST_ABORTED_CMD) ||
	    !PNVME_STATUS_IS_DNR(r->status))
		fail_msg("lba %llu: status 0x%04x is not the host-side SCT 3h SC 71h DNR",
			 (unsigned long long)r->lba, r->status);
}

/*
 * Media check for a write: success -> its content; failure -> its content or
 * `old_seed` (the content before), and only when `either_ok` (documented).
 */
static void check_media(struct env *e, const struct rq *r, uint32_t old_seed, bool either_ok)
{
	uint8_t b[LBA];
	unsigned bad = 0;

	for (uint32_t i = 0; i < r->nlb; i++) {
		assert_ok(pnvme_emu_media_read(e->emu, 1, (r->lba + i) * LBA, b, LBA));
		bool is_new = test_block_is(b, LBA, r->lba + i, r->seed);
		bool is_old = test_block_is(b, LBA, r->lba + i, old_seed);
		if (r->err == 0 ? !is_new : !(is_old || (either_ok && is_new)))
			bad++;
	}
	if (bad) {
		g_corrupt += bad;
		fail_msg("write at lba %llu (err %d): %u block(s) on the media are neither what "
			 "the completion says nor allowed", (unsigned long long)r->lba, r->err, bad);
	}
}

static void check_read(const struct rq *r)
{
	if (r->err == 0 && (!r->data_ok_at_cb || !rq_data_ok(r)))
		g_corrupt += r->nlb;
	if (r->err == 0 && (!r->data_ok_at_cb || !rq_data_ok(r)))
		fail_msg("read at lba %llu succeeded but its buffer %s", (unsigned long long)r->lba,
			 r->data_ok_at_cb ? "changed after the callback"
					  : "did not hold the data when the callback ran");
}

/*
 * The queue pair works: a verified write and read through it. Sets the queue
 * pair's deadline to NO_TIMEOUT_MS (these two must not time out).
 */
static void check_usable(struct env *e, struct pnvme_qpair *qp, uint32_t seed)
{
	struct rq w, r;
	struct rq *rs[1];

	pnvme_qpair_set_timeout(qp, NO_TIMEOUT_MS);
	rq_write(e, qp, &w, SCRATCH, 8, seed, PROMPT_MS);
	rs[0] = &w;
	drive(e, rs, 1, 2.0);
	check_once(rs, 1);
	check_err(&w, 0);
	rq_read(e, qp, &r, SCRATCH, 8, seed, PROMPT_MS);
	rs[0] = &r;
	drive(e, rs, 1, 2.0);
	check_once(rs, 1);
	check_err(&r, 0);
	check_read(&r);
	check_media(e, &w, 0, false);
	rq_free(&w, 1);
	rq_free(&r, 1);
}

/* The controller is gone: everything says -ENODEV at once. */
static void check_dead(struct env *e)
{
	struct pnvme_dsm_range range = { .nlb = 1, .slba = 0 };
	struct pnvme_qpair *qp2 = NULL;
	struct pnvme_sqe sqe;
	struct rq late;
	uint32_t dw0;

	assert_true(pnvme_ctrl_is_dead(e->ctrl));
	rq_prep(e, e->qp[0], &late, false, 0, 1, 0, 0);
	for (int q = 0; q < 2; q++) {
		struct pnvme_qpair *qp = e->qp[q];
		if (!qp)
			continue;
		assert_rc(pnvme_qpair_poll(qp, 0), -ENODEV);
		assert_int_equal(pnvme_qpair_outstanding(qp), 0);
		assert_rc(pnvme_read(qp, e->ns, late.buf, 0, 1, 0, rq_cb, &late), -ENODEV);
		assert_rc(pnvme_write(qp, e->ns, late.buf, 0, 1, 0, rq_cb, &late), -ENODEV);
		assert_rc(pnvme_flush(qp, e->ns, rq_cb, &late), -ENODEV);
		assert_rc(pnvme_write_zeroes(qp, e->ns, 0, 1, 0, rq_cb, &late), -ENODEV);
		assert_rc(pnvme_dsm(qp, e->ns, &range, 1, PNVME_DSM_AD, rq_cb, &late), -ENODEV);
		memset(&sqe, 0, sizeof(sqe));
		sqe.opc = PNVME_NVM_FLUSH;
		sqe.nsid = 1;
		assert_rc(pnvme_io_passthru(qp, &sqe, NULL, 0, rq_cb, &late), -ENODEV);
		assert_rc(pnvme_read_sync(qp, e->ns, late.buf, 0, 1, 0), -ENODEV);
	}
	assert_int_equal(late.calls, 0);
	assert_rc(pnvme_get_features(e->ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, &dw0), -ENODEV);
	assert_rc(pnvme_get_features_async(e->ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, rq_cb, &late),
		  -ENODEV);
	assert_rc(pnvme_qpair_create(e->ctrl, NULL, &qp2), -ENODEV);
	assert_rc(pnvme_ctrl_reset(e->ctrl), -ENODEV);
	assert_int_equal(late.calls, 0);
	rq_free(&late, 1);
}

static void check_stats(struct pnvme_qpair *qp, uint64_t timeouts, uint64_t aborts,
			uint64_t retries, uint64_t reconnects)
{
	struct pnvme_qpair_stats st;

	pnvme_qpair_get_stats(qp, &st);
	if (st.timeouts != timeouts || st.aborts != aborts || st.retries != retries ||
	    st.reconnects != reconnects)
		fail_msg("queue %u stats: timeouts %llu aborts %llu retries %llu reconnects %llu; "
			 "expected %llu %llu %llu %llu", pnvme_qpair_id(qp),
			 (unsigned long long)st.timeouts, (unsigned long long)st.aborts,
			 (unsigned long long)st.retries, (unsigned long long)st.reconnects,
			 (unsigned long long)timeouts, (unsigned long long)aborts,
			 (unsigned long long)retries, (unsigned long long)reconnects);
	if (pnvme_qpair_outstanding(qp) == 0 && st.submitted != st.completed)
		fail_msg("queue %u: %llu completions for %llu submissions",
			 pnvme_qpair_id(qp), (unsigned long long)st.completed,
			 (unsigned long long)st.submitted);
}

static struct pnvme_qpair_stats stats_of(struct pnvme_qpair *qp)
{
	struct pnvme_qpair_stats st;
	pnvme_qpair_get_stats(qp, &st);
	return st;
}

static struct pnvme_emu_fault fault(enum pnvme_emu_fault_kind kind, uint16_t qid, int opc,
				    uint32_t skip, uint32_t count)
{
	struct pnvme_emu_fault f = {
		.kind = kind, .qid = qid, .opc = opc, .skip = skip, .count = count,
	};
	return f;
}

/* ------------------------------------------------------------------------ */
/* Lost completions (DROP_CPL): Abort says "not aborted", reset after       */
/* the admin timeout                                                        */
/* ------------------------------------------------------------------------ */

/*
 * W0's completion is lost; W1, R2, W3 (with a long deadline) are held by the
 * device (executed, completion held 3 s) when the reset comes at about
 * 30 ms + the admin timeout. W0 ends with -ETIMEDOUT (host CQE); the held
 * ones are resubmitted and succeed with retries, or fail with -EIO without.
 * Media: W0 and the held writes were executed before their completions were
 * lost, so a failed one may be on the media (documented for DROP_CPL/DELAY_CPL).
 * `admin_ms`: 60, or 1500 (longer than the timing slack, so that a ladder
 * waiting twice the admin timeout before the reset still shows in time).
 */
static void drop_case(uint32_t retries, uint32_t admin_ms)
{
	const struct env_cfg cfg = { .io_ms = 30, .admin_ms = admin_ms, .retries = { retries } };
	struct rq w0, w1, r2, w3;
	struct rq *rs[] = { &w0, &w1, &r2, &w3 };
	struct env e;

	env_open(&e, &cfg);
	uint16_t qid = pnvme_qpair_id(e.qp[0]);
	struct pnvme_emu_fault drop = fault(PNVME_EMU_FAULT_DROP_CPL, qid, PNVME_NVM_WRITE, 0, 1);
	struct pnvme_emu_fault hold = fault(PNVME_EMU_FAULT_DELAY_CPL, qid, PNVME_EMU_ANY_OPC, 1, 3);
	hold.delay_us = 3000000;
	inject(&e, &drop);
	inject(&e, &hold);

	rq_write(&e, e.qp[0], &w0, 0, 8, 101, 30 + admin_ms);
	pnvme_qpair_set_timeout(e.qp[0], 5000);
	rq_write(&e, e.qp[0], &w1, 8, 8, 102, 5000);
	rq_read(&e, e.qp[0], &r2, 16, 4, 0, 5000);
	rq_write(&e, e.qp[0], &w3, 24, 8, 104, 5000);
	pnvme_qpair_set_timeout(e.qp[0], 30);
	drive(&e, rs, 4, 3.0);
	check_once(rs, 4);

	check_err(&w0, -ETIMEDOUT);
	check_host_cqe(&w0);
	assert_int_equal(w0.sqid, qid);
	if (w0.t_done - w0.t_sub < (30 + admin_ms) / 1000.0 - 0.002)
		fail_msg("W0 completed after %.1f ms: before deadline + admin timeout",
			 (w0.t_done - w0.t_sub) * 1e3);
	for (int i = 1; i < 4; i++) {
		check_err(rs[i], retries ? 0 : -EIO);
		if (!retries)
			check_host_cqe(rs[i]);
	}
	check_read(&r2);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	assert_int_equal(g_reset_calls, 1);
	assert_int_equal(g_reset_err, 0);
	check_stats(e.qp[0], 1, 1, retries ? 3 : 0, 1);
	check_media(&e, &w0, 0, true);
	check_media(&e, &w1, 0, true);
	check_media(&e, &w3, 0, true);
	assert_int_equal(stats_of(e.qp[0]).bad_cqes, 0);

	idle(&e, 0.02);
	check_once(rs, 4);
	check_usable(&e, e.qp[0], 900 + retries);
	for (int i = 0; i < 4; i++)
		rq_free(rs[i], 1);
	env_close(&e, 0);
}

static void test_drop_cpl_no_retries(void **state)
{
	(void)state;
	drop_case(0, 60);
}

static void test_drop_cpl_retries(void **state)
{
	(void)state;
	drop_case(3, 1500);
}

/* ------------------------------------------------------------------------ */
/* Held completions (DELAY_CPL)                                             */
/* ------------------------------------------------------------------------ */

/*
 * Held past the deadline: the Abort reaches the held completion, which is
 * posted at once as Abort Requested: -ETIMEDOUT with the device's CQE, no
 * retry (even with retries on), no reset, no stray CQE later. The write was
 * executed before its completion was held: on the media either way.
 * (Held 600 ms: the Abort at about 30 ms comes well before. The admin
 * timeout is long: the device answers the Abort at its next step, and a
 * scheduling delay must not turn that into a reset.)
 */
static void test_delay_past_deadline(void **state)
{
	const struct env_cfg cfg = { .io_ms = 30, .admin_ms = 2000, .retries = { 3 } };
	const double hold_s = 0.6;
	struct rq w0, r1;
	struct rq *rs[] = { &w0, &r1 };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	struct pnvme_emu_fault f = fault(PNVME_EMU_FAULT_DELAY_CPL, pnvme_qpair_id(e.qp[0]),
					 PNVME_NVM_WRITE, 0, 1);
	f.delay_us = (uint64_t)(hold_s * 1e6);
	inject(&e, &f);
	rq_write(&e, e.qp[0], &w0, 32, 8, 201, 30 + 2000);
	pnvme_qpair_set_timeout(e.qp[0], NO_TIMEOUT_MS);
	rq_read(&e, e.qp[0], &r1, 40, 8, 0, PROMPT_MS);
	drive(&e, rs, 2, 3.0);
	check_once(rs, 2);
	check_err(&w0, -ETIMEDOUT);
	assert_int_equal(PNVME_STATUS_CODE(w0.status),
			 PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_ABORT_REQ));
	if (w0.t_done - w0.t_sub < 0.029)
		fail_msg("timed out after %.1f ms, before its 30 ms deadline",
			 (w0.t_done - w0.t_sub) * 1e3);
	check_err(&r1, 0);
	check_read(&r1);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 0);
	check_stats(e.qp[0], 1, 1, 0, 0);
	/* the held completion was consumed by the Abort: nothing turns up later */
	idle(&e, hold_s - (now_s() - w0.t_sub) + 0.02);
	assert_int_equal(stats_of(e.qp[0]).bad_cqes, 0);
	check_once(rs, 2);
	check_media(&e, &w0, 0, true);
	check_usable(&e, e.qp[0], 902);
	rq_free(&w0, 1);
	rq_free(&r1, 1);
	env_close(&e, 0);
}

/*
 * Held for less than the deadline: a slow completion is not a timeout. (The
 * deadline is 100 times the delay: a scheduling delay must not reach it.)
 */
static void test_delay_within_deadline(void **state)
{
	const struct env_cfg cfg = { .io_ms = 1000, .admin_ms = NO_TIMEOUT_MS };
	struct rq w0, r1;
	struct rq *rs[] = { &w0, &r1 };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	struct pnvme_emu_fault f = fault(PNVME_EMU_FAULT_DELAY_CPL, pnvme_qpair_id(e.qp[0]),
					 PNVME_EMU_ANY_OPC, 0, 2);
	f.delay_us = 10000;
	inject(&e, &f);
	rq_write(&e, e.qp[0], &w0, 48, 8, 301, 1000);
	rq_read(&e, e.qp[0], &r1, 56, 8, 0, 1000);
	drive(&e, rs, 2, 2.0);
	check_once(rs, 2);
	check_err(&w0, 0);
	check_err(&r1, 0);
	check_read(&r1);
	for (int i = 0; i < 2; i++)
		if (rs[i]->t_done - rs[i]->t_sub < 0.0095)
			fail_msg("request %d completed after %.1f ms, before the 10 ms delay", i,
				 (rs[i]->t_done - rs[i]->t_sub) * 1e3);
	check_stats(e.qp[0], 0, 0, 0, 0);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 0);
	check_media(&e, &w0, 0, false);
	rq_free(&w0, 1);
	rq_free(&r1, 1);
	env_close(&e, 0);
}

/* ------------------------------------------------------------------------ */
/* Error status, with and without DNR                                       */
/* ------------------------------------------------------------------------ */

#define ST_INTERNAL PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INTERNAL)

/*
 * qp0: max_retries 3, qp1: max_retries 1. Internal Error without DNR once ->
 * retried, succeeds, one retry counted. With DNR -> no retry, -EIO with the
 * status intact. Without DNR twice on qp1 (1 retry allowed) -> fails after
 * one retry. FAULT_STATUS commands are not executed: a failed write leaves
 * the old content.
 */
static void test_status_retry_dnr(void **state)
{
	const struct env_cfg cfg = { .io_ms = NO_TIMEOUT_MS, .admin_ms = NO_TIMEOUT_MS,
				     .retries = { 3, 1 }, .nqp = 2 };
	struct rq w0, w1, w2, r3;
	struct rq *rs[] = { &w0, &w1, &w2, &r3 };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	uint16_t q0 = pnvme_qpair_id(e.qp[0]), q1 = pnvme_qpair_id(e.qp[1]);

	struct pnvme_emu_fault f = fault(PNVME_EMU_FAULT_STATUS, q0, PNVME_NVM_WRITE, 0, 1);
	f.status = ST_INTERNAL;
	inject(&e, &f);
	rq_write(&e, e.qp[0], &w0, 64, 8, 401, PROMPT_MS);
	drive(&e, rs, 1, 2.0);
	check_once(rs, 1);
	check_err(&w0, 0);
	assert_int_equal(stats_of(e.qp[0]).retries, 1);
	assert_int_equal(stats_of(e.qp[0]).errors, 0);
	check_media(&e, &w0, 0, false);

	pnvme_emu_clear_faults(e.emu);
	f.status = ST_INTERNAL | PNVME_STATUS_DNR;
	inject(&e, &f);
	rq_write(&e, e.qp[0], &w1, 72, 8, 402, PROMPT_MS);
	drive(&e, rs + 1, 1, 2.0);
	check_once(rs + 1, 1);
	check_err(&w1, -EIO);
	assert_int_equal(w1.status, ST_INTERNAL | PNVME_STATUS_DNR);
	assert_int_equal(stats_of(e.qp[0]).retries, 1);
	assert_int_equal(stats_of(e.qp[0]).errors, 1);
	check_media(&e, &w1, 0, false);

	pnvme_emu_clear_faults(e.emu);
	f = fault(PNVME_EMU_FAULT_STATUS, q1, PNVME_NVM_WRITE, 0, 2);
	f.status = ST_INTERNAL;
	inject(&e, &f);
	rq_write(&e, e.qp[1], &w2, 80, 8, 403, PROMPT_MS);
	drive(&e, rs + 2, 1, 2.0);
	check_once(rs + 2, 1);
	check_err(&w2, -EIO);
	assert_int_equal(w2.status, ST_INTERNAL);
	assert_int_equal(stats_of(e.qp[1]).retries, 1);
	check_media(&e, &w2, 0, false);

	/* A read too (no DNR once) */
	pnvme_emu_clear_faults(e.emu);
	f = fault(PNVME_EMU_FAULT_STATUS, q1, PNVME_NVM_READ, 0, 1);
	f.status = ST_INTERNAL;
	inject(&e, &f);
	rq_read(&e, e.qp[1], &r3, 64, 8, 401, PROMPT_MS);
	drive(&e, rs + 3, 1, 2.0);
	check_once(rs + 3, 1);
	check_err(&r3, 0);
	check_read(&r3);
	assert_int_equal(stats_of(e.qp[1]).retries, 2);

	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 0);
	check_usable(&e, e.qp[0], 903);
	check_usable(&e, e.qp[1], 904);
	for (int i = 0; i < 4; i++)
		rq_free(rs[i], 1);
	env_close(&e, 0);
}

/* max_retries 0: an error without DNR is reported, not retried. */
static void test_status_no_retries(void **state)
{
	const struct env_cfg cfg = { .io_ms = NO_TIMEOUT_MS, .admin_ms = NO_TIMEOUT_MS };
	struct rq w0;
	struct rq *rs[] = { &w0 };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	struct pnvme_emu_fault f = fault(PNVME_EMU_FAULT_STATUS, pnvme_qpair_id(e.qp[0]),
					 PNVME_NVM_WRITE, 0, 1);
	f.status = ST_INTERNAL;
	inject(&e, &f);
	rq_write(&e, e.qp[0], &w0, 88, 8, 501, PROMPT_MS);
	drive(&e, rs, 1, 2.0);
	check_once(rs, 1);
	check_err(&w0, -EIO);
	assert_int_equal(w0.status, ST_INTERNAL);
	check_stats(e.qp[0], 0, 0, 0, 0);
	check_media(&e, &w0, 0, false);
	check_usable(&e, e.qp[0], 905);
	rq_free(&w0, 1);
	env_close(&e, 0);
}

/* ------------------------------------------------------------------------ */
/* Aborts the device ignores                                                */
/* ------------------------------------------------------------------------ */

/* IGNORE_ABORT + DROP_CPL: the Abort is answered "not aborted" -> reset. */
static void test_ignore_abort_drop(void **state)
{
	const struct env_cfg cfg = { .io_ms = 30, .admin_ms = 60, .retries = { 3 } };
	struct rq w0, w1;
	struct rq *rs[] = { &w0, &w1 };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	uint16_t qid = pnvme_qpair_id(e.qp[0]);
	struct pnvme_emu_fault ign = fault(PNVME_EMU_FAULT_IGNORE_ABORT, PNVME_EMU_ANY_QID,
					   PNVME_EMU_ANY_OPC, 0, 0);
	struct pnvme_emu_fault drop = fault(PNVME_EMU_FAULT_DROP_CPL, qid, PNVME_NVM_WRITE, 0, 1);
	struct pnvme_emu_fault hold = fault(PNVME_EMU_FAULT_DELAY_CPL, qid, PNVME_NVM_WRITE, 1, 1);
	hold.delay_us = 3000000;
	inject(&e, &ign);
	inject(&e, &drop);
	inject(&e, &hold);
	rq_write(&e, e.qp[0], &w0, 96, 8, 601, 30 + 60);
	pnvme_qpair_set_timeout(e.qp[0], 5000);
	rq_write(&e, e.qp[0], &w1, 104, 8, 602, 5000);
	pnvme_qpair_set_timeout(e.qp[0], 30);
	drive(&e, rs, 2, 2.0);
	check_once(rs, 2);
	check_err(&w0, -ETIMEDOUT);
	check_host_cqe(&w0);
	check_err(&w1, 0);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	assert_int_equal(g_reset_err, 0);
	check_stats(e.qp[0], 1, 1, 1, 1);
	check_media(&e, &w0, 0, true);
	check_media(&e, &w1, 0, false);
	check_usable(&e, e.qp[0], 906);
	rq_free(&w0, 1);
	rq_free(&w1, 1);
	env_close(&e, 0);
}

/*
 * IGNORE_ABORT + a completion held 800 ms: the Abort does not reach it, the
 * reset at about 30 + 60 ms discards it; -ETIMEDOUT once, nothing later.
 */
static void test_ignore_abort_delay_long(void **state)
{
	const struct env_cfg cfg = { .io_ms = 30, .admin_ms = 60, .retries = { 3 } };
	struct rq w0;
	struct rq *rs[] = { &w0 };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	struct pnvme_emu_fault ign = fault(PNVME_EMU_FAULT_IGNORE_ABORT, PNVME_EMU_ANY_QID,
					   PNVME_EMU_ANY_OPC, 0, 0);
	struct pnvme_emu_fault hold = fault(PNVME_EMU_FAULT_DELAY_CPL, pnvme_qpair_id(e.qp[0]),
					    PNVME_NVM_WRITE, 0, 1);
	hold.delay_us = 800000;
	inject(&e, &ign);
	inject(&e, &hold);
	rq_write(&e, e.qp[0], &w0, 112, 8, 701, 30 + 60);
	drive(&e, rs, 1, 2.0);
	check_once(rs, 1);
	check_err(&w0, -ETIMEDOUT);
	check_host_cqe(&w0);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	idle(&e, 0.8 - (now_s() - w0.t_sub) + 0.02);
	check_once(rs, 1);
	assert_int_equal(stats_of(e.qp[0]).bad_cqes, 0);
	check_stats(e.qp[0], 1, 1, 0, 1);
	check_media(&e, &w0, 0, true);
	check_usable(&e, e.qp[0], 907);
	rq_free(&w0, 1);
	env_close(&e, 0);
}

/*
 * IGNORE_ABORT + a completion held 500 ms (deadline 30, admin timeout 2 s):
 * the late completion of the aborting request arrives after its Abort went
 * out and before the reset, and completes it with its own status (success):
 * no reset.
 */
static void test_ignore_abort_late_success(void **state)
{
	const struct env_cfg cfg = { .io_ms = 30, .admin_ms = 2000, .retries = { 3 } };
	struct rq w0;
	struct rq *rs[] = { &w0 };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	struct pnvme_emu_fault ign = fault(PNVME_EMU_FAULT_IGNORE_ABORT, PNVME_EMU_ANY_QID,
					   PNVME_EMU_ANY_OPC, 0, 0);
	struct pnvme_emu_fault hold = fault(PNVME_EMU_FAULT_DELAY_CPL, pnvme_qpair_id(e.qp[0]),
					    PNVME_NVM_WRITE, 0, 1);
	hold.delay_us = 500000;
	inject(&e, &ign);
	inject(&e, &hold);
	rq_write(&e, e.qp[0], &w0, 120, 8, 801, 500); /* it ends when the device posts it */
	drive(&e, rs, 1, 3.0);
	check_once(rs, 1);
	check_err(&w0, 0);
	if (w0.t_done - w0.t_sub < 0.499)
		fail_msg("completed after %.1f ms, before the 500 ms delay",
			 (w0.t_done - w0.t_sub) * 1e3);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 0);
	check_stats(e.qp[0], 1, 1, 0, 0);
	check_media(&e, &w0, 0, false);
	check_usable(&e, e.qp[0], 908);
	rq_free(&w0, 1);
	env_close(&e, 0);
}

/* ------------------------------------------------------------------------ */
/* Controller fatal status                                                  */
/* ------------------------------------------------------------------------ */

/*
 * CSTS.CFS while four writes sit doorbelled but unfetched: the health check
 * (every <= 100 ms) resets the controller; with retries they are resubmitted
 * and succeed, without they fail with -EIO (never executed: old content, but
 * either is documented for a failed write after a reset).
 */
static void cfs_case(uint32_t retries)
{
	const struct env_cfg cfg = { .io_ms = 1000, .admin_ms = NO_TIMEOUT_MS,
				     .retries = { retries } };
	struct pnvme_emu_fault cfs = { .kind = PNVME_EMU_FAULT_CFS };
	struct rq w[4];
	struct rq *rs[] = { &w[0], &w[1], &w[2], &w[3] };
	struct env e;

	env_open(&e, &cfg);
	for (int i = 0; i < 4; i++)
		rq_write(&e, e.qp[0], &w[i], 128 + 8u * (unsigned)i, 8, 1001 + (uint32_t)i, 100);
	pnvme_qpair_flush(e.qp[0]);
	inject(&e, &cfs);
	pnvme_emu_clear_faults(e.emu); /* not pinned: the reset's disable clears CFS */
	drive(&e, rs, 4, 2.0);
	check_once(rs, 4);
	for (int i = 0; i < 4; i++) {
		check_err(&w[i], retries ? 0 : -EIO);
		check_media(&e, &w[i], 0, true);
	}
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	assert_int_equal(g_reset_calls, 1);
	assert_int_equal(g_reset_err, 0);
	assert_non_null(strstr(g_reset_reason, "CFS"));
	check_stats(e.qp[0], 0, 0, retries ? 4 : 0, 1);
	check_usable(&e, e.qp[0], 909);
	for (int i = 0; i < 4; i++)
		rq_free(&w[i], 1);
	env_close(&e, 0);
}

static void test_cfs_no_retries(void **state)
{
	(void)state;
	cfs_case(0);
}

static void test_cfs_retries(void **state)
{
	(void)state;
	cfs_case(3);
}

/* CFS that stays (fault left armed): the reset's enable fails -> dead. */
static void test_cfs_pinned_dead(void **state)
{
	const struct env_cfg cfg = { .io_ms = 1000, .admin_ms = 100, .retries = { 3 },
				     .emu = "to=1" };
	struct pnvme_emu_fault cfs = { .kind = PNVME_EMU_FAULT_CFS };
	struct rq w[2];
	struct rq *rs[] = { &w[0], &w[1] };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	for (int i = 0; i < 2; i++)
		rq_write(&e, e.qp[0], &w[i], 160 + 8u * (unsigned)i, 8, 1101 + (uint32_t)i,
			 100 + 500);
	pnvme_qpair_flush(e.qp[0]);
	inject(&e, &cfs);
	drive(&e, rs, 2, 3.0);
	check_once(rs, 2);
	for (int i = 0; i < 2; i++) {
		check_err(&w[i], -ENODEV);
		check_host_cqe(&w[i]);
		check_media(&e, &w[i], 0, true);
	}
	assert_int_equal(g_reset_calls, 1);
	assert_rc(g_reset_err, -ENODEV);
	check_dead(&e);
	for (int i = 0; i < 2; i++)
		rq_free(&w[i], 1);
	env_close(&e, -ENODEV);
}

/* ------------------------------------------------------------------------ */
/* Surprise removal                                                         */
/* ------------------------------------------------------------------------ */

/*
 * Two queue pairs. Group A (executed, CQEs posted, not reaped) and group B
 * (doorbelled, never fetched) on each; then every register reads all ones.
 * A completes with success (a posted completion is final), B with -ENODEV
 * within 100 ms + a poll; then -ENODEV from everything; close says -ENODEV.
 */
static void test_all_ones_mid_io(void **state)
{
	const struct env_cfg cfg = { .io_ms = 1000, .admin_ms = 100, .retries = { 3, 0 }, .nqp = 2 };
	struct pnvme_emu_fault gone = { .kind = PNVME_EMU_FAULT_ALL_ONES };
	struct rq a[2], b[4];
	struct rq *rs[] = { &a[0], &a[1], &b[0], &b[1], &b[2], &b[3] };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	for (int q = 0; q < 2; q++)
		rq_write(&e, e.qp[q], &a[q], 200 + 8u * (unsigned)q, 8, 1201 + (uint32_t)q, 1000);
	pnvme_qpair_flush(e.qp[0]);
	pnvme_qpair_flush(e.qp[1]);
	(void)pnvme_emu_step(e.emu);
	for (int i = 0; i < 4; i++)
		rq_write(&e, e.qp[i & 1], &b[i], 216 + 8u * (unsigned)i, 8, 1211 + (uint32_t)i,
			 100);
	pnvme_qpair_flush(e.qp[0]);
	pnvme_qpair_flush(e.qp[1]);
	inject(&e, &gone);
	double t0 = now_s();
	for (int i = 0; i < 4; i++)
		b[i].t_sub = t0;
	int rc = drive(&e, rs, 6, 2.0);
	check_once(rs, 6);
	assert_rc(rc, -ENODEV);
	for (int q = 0; q < 2; q++) {
		check_err(&a[q], 0);
		check_media(&e, &a[q], 0, false);
	}
	for (int i = 0; i < 4; i++) {
		check_err(&b[i], -ENODEV);
		check_host_cqe(&b[i]);
		check_media(&e, &b[i], 0, true);
	}
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 0);
	assert_int_equal(g_reset_calls, 0);
	check_dead(&e);
	for (int i = 0; i < 2; i++)
		rq_free(&a[i], 1);
	for (int i = 0; i < 4; i++)
		rq_free(&b[i], 1);
	env_close(&e, -ENODEV);
}

/* ------------------------------------------------------------------------ */
/* Reset failure -> dead                                                    */
/* ------------------------------------------------------------------------ */

/*
 * NEVER_READY armed after bring-up, then pnvme_ctrl_reset with requests held
 * by the device, doorbelled, and posted only: the reset waits CAP.TO
 * (500 ms) and gives up; reset_cb gets -ENODEV; every request -ENODEV.
 */
static void test_reset_failure_explicit(void **state)
{
	const struct env_cfg cfg = { .io_ms = 5000, .admin_ms = 100, .retries = { 3 },
				     .emu = "to=1" };
	struct pnvme_emu_fault never = { .kind = PNVME_EMU_FAULT_NEVER_READY };
	struct rq w[3];
	struct rq *rs[] = { &w[0], &w[1], &w[2] };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	struct pnvme_emu_fault hold = fault(PNVME_EMU_FAULT_DELAY_CPL, pnvme_qpair_id(e.qp[0]),
					    PNVME_EMU_ANY_OPC, 0, 1);
	hold.delay_us = 5000000;
	inject(&e, &hold);
	rq_write(&e, e.qp[0], &w[0], 240, 8, 1301, 5000);
	pnvme_qpair_flush(e.qp[0]);
	(void)pnvme_emu_step(e.emu);   /* w0 executed, completion held */
	rq_write(&e, e.qp[0], &w[1], 248, 8, 1302, 5000);
	pnvme_qpair_flush(e.qp[0]);    /* w1 doorbelled */
	rq_write(&e, e.qp[0], &w[2], 256, 8, 1303, 5000); /* w2 posted only */
	inject(&e, &never);
	double t0 = now_s();
	assert_rc(pnvme_ctrl_reset(e.ctrl), -ENODEV);
	double dt = now_s() - t0;
	if (dt > 0.5 + 0.1 + slack_s())
		fail_msg("failed reset took %.0f ms with CAP.TO 500 ms", dt * 1e3);
	assert_true(pnvme_ctrl_is_dead(e.ctrl));
	assert_int_equal(g_reset_calls, 1);
	assert_rc(g_reset_err, -ENODEV);
	int rc = drive(&e, rs, 3, 1.0);
	assert_rc(rc, -ENODEV);
	check_once(rs, 3);
	for (int i = 0; i < 3; i++) {
		check_err(&w[i], -ENODEV);
		check_media(&e, &w[i], 0, true);
	}
	check_dead(&e);
	for (int i = 0; i < 3; i++)
		rq_free(&w[i], 1);
	env_close(&e, -ENODEV);
}

/*
 * The same through the ladder: a lost completion, the Abort not answered,
 * the reset fails (NEVER_READY). The expired request ends with -ETIMEDOUT or
 * -ENODEV, the held bystander with -ENODEV, within deadline + admin timeout
 * + CAP.TO.
 */
static void test_reset_failure_timeout(void **state)
{
	const struct env_cfg cfg = { .io_ms = 30, .admin_ms = 60, .retries = { 3 }, .emu = "to=1" };
	struct pnvme_emu_fault never = { .kind = PNVME_EMU_FAULT_NEVER_READY };
	struct rq w0, w1;
	struct rq *rs[] = { &w0, &w1 };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	uint16_t qid = pnvme_qpair_id(e.qp[0]);
	struct pnvme_emu_fault drop = fault(PNVME_EMU_FAULT_DROP_CPL, qid, PNVME_NVM_WRITE, 0, 1);
	struct pnvme_emu_fault hold = fault(PNVME_EMU_FAULT_DELAY_CPL, qid, PNVME_NVM_WRITE, 1, 1);
	hold.delay_us = 5000000;
	inject(&e, &drop);
	inject(&e, &hold);
	inject(&e, &never);
	rq_write(&e, e.qp[0], &w0, 264, 8, 1401, 30 + 60 + 500 + 100);
	pnvme_qpair_set_timeout(e.qp[0], 5000);
	rq_write(&e, e.qp[0], &w1, 272, 8, 1402, 30 + 60 + 500 + 100);
	drive(&e, rs, 2, 3.0);
	check_once(rs, 2);
	if (w0.err != -ETIMEDOUT && w0.err != -ENODEV)
		fail_msg("expired request: err %d, expected -ETIMEDOUT or -ENODEV", w0.err);
	check_host_cqe(&w0);
	check_err(&w1, -ENODEV);
	assert_int_equal(g_reset_calls, 1);
	assert_rc(g_reset_err, -ENODEV);
	check_media(&e, &w0, 0, true);
	check_media(&e, &w1, 0, true);
	check_dead(&e);
	rq_free(&w0, 1);
	rq_free(&w1, 1);
	env_close(&e, -ENODEV);
}

/* ------------------------------------------------------------------------ */
/* Admin command timeout                                                    */
/* ------------------------------------------------------------------------ */

struct acb {
	int calls;
	int err;
};

static void acb_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct acb *a = arg;
	(void)cqe;
	a->calls++;
	a->err = err;
}

/*
 * Get Features whose completion is lost: -ETIMEDOUT after the admin timeout,
 * then a reset; admin commands work again; a held I/O request is resubmitted
 * when its queue pair reconnects. Then the same with the async variant.
 * (Admin timeout 200 ms: the reset's own admin commands run under it too.)
 */
static void test_admin_timeout(void **state)
{
	const double admin_s = 0.2;
	const struct env_cfg cfg = { .io_ms = 5000, .admin_ms = 200, .retries = { 3 } };
	uint8_t id[4096];
	struct rq w0, w1;
	struct rq *rs[] = { &w0, &w1 };
	struct acb a = { 0 };
	uint32_t dw0 = 0;
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	struct pnvme_emu_fault hold = fault(PNVME_EMU_FAULT_DELAY_CPL, pnvme_qpair_id(e.qp[0]),
					    PNVME_NVM_WRITE, 0, 1);
	hold.delay_us = 5000000;
	inject(&e, &hold);
	rq_write(&e, e.qp[0], &w0, 280, 8, 1501, 5000);
	pnvme_qpair_flush(e.qp[0]);
	(void)pnvme_emu_step(e.emu);

	struct pnvme_emu_fault drop = fault(PNVME_EMU_FAULT_DROP_CPL, 0, PNVME_ADM_GET_FEATURES, 0, 1);
	inject(&e, &drop);
	double t0 = now_s();
	assert_rc(pnvme_get_features(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, &dw0), -ETIMEDOUT);
	double dt = now_s() - t0;
	if (dt < admin_s - 0.001 || dt > admin_s + slack_s())
		fail_msg("admin command timed out after %.1f ms (admin timeout %.0f ms)", dt * 1e3,
			 admin_s * 1e3);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	assert_int_equal(g_reset_calls, 1);
	assert_int_equal(g_reset_err, 0);
	assert_ok(pnvme_get_features(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, &dw0));
	assert_ok(pnvme_identify(e.ctrl, PNVME_ID_CNS_CTRL, 0, id));

	drive(&e, rs, 1, 2.0);
	check_once(rs, 1);
	check_err(&w0, 0);
	check_media(&e, &w0, 0, false);
	check_stats(e.qp[0], 0, 0, 1, 1);

	/* async: the callback gets -ETIMEDOUT once, the reset runs after the poll */
	inject(&e, &hold);
	rq_write(&e, e.qp[0], &w1, 288, 8, 1502, 5000);
	pnvme_qpair_flush(e.qp[0]);
	(void)pnvme_emu_step(e.emu);
	inject(&e, &drop);
	t0 = now_s();
	assert_ok(pnvme_get_features_async(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, acb_cb, &a));
	while (a.calls == 0 && now_s() - t0 < 2.0) {
		(void)pnvme_emu_step(e.emu);
		assert_true(pnvme_ctrl_process_admin(e.ctrl) >= 0);
		usleep(200);
	}
	dt = now_s() - t0;
	assert_int_equal(a.calls, 1);
	assert_rc(a.err, -ETIMEDOUT);
	if (dt < admin_s - 0.001 || dt > admin_s + slack_s())
		fail_msg("async admin command timed out after %.1f ms (admin timeout %.0f ms)",
			 dt * 1e3, admin_s * 1e3);
	for (int i = 0; i < 5; i++)
		(void)pnvme_ctrl_process_admin(e.ctrl);
	assert_int_equal(a.calls, 1);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 2);
	assert_ok(pnvme_get_features(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, &dw0));
	drive(&e, rs + 1, 1, 2.0);
	check_once(rs + 1, 1);
	check_err(&w1, 0);
	check_media(&e, &w1, 0, false);
	check_stats(e.qp[0], 0, 0, 2, 2);
	check_usable(&e, e.qp[0], 910);
	rq_free(&w0, 1);
	rq_free(&w1, 1);
	env_close(&e, 0);
}

/* ------------------------------------------------------------------------ */
/* Explicit reset with I/O outstanding on two queue pairs                   */
/* ------------------------------------------------------------------------ */

/*
 * On each queue pair: A executed and posted, not reaped; B doorbelled, not
 * fetched; C posted, never doorbelled. qp0 retries, qp1 does not.
 * After pnvme_ctrl_reset: A succeeds (posted before the reset), C is simply
 * sent (not a retry), B is resubmitted on qp0 and fails -EIO on qp1.
 */
static void test_explicit_reset_two_qpairs(void **state)
{
	const struct env_cfg cfg = { .io_ms = 5000, .admin_ms = NO_TIMEOUT_MS, .retries = { 3, 0 },
				     .nqp = 2 };
	enum { NA = 2, NB = 3, NC = 2, N = NA + NB + NC };
	struct rq r[2][N];
	struct rq *rs[2 * N];
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	for (int q = 0; q < 2; q++)
		for (int i = 0; i < NA; i++)
			rq_write(&e, e.qp[q], &r[q][i], 300 + 80u * (unsigned)q + 8u * (unsigned)i, 8,
				 1600 + 20u * (unsigned)q + (unsigned)i, 5000);
	pnvme_qpair_flush(e.qp[0]);
	pnvme_qpair_flush(e.qp[1]);
	(void)pnvme_emu_step(e.emu);
	for (int q = 0; q < 2; q++)
		for (int i = NA; i < NA + NB; i++) {
			uint64_t lba = 300 + 80u * (unsigned)q + 8u * (unsigned)i;
			if (i == NA + NB - 1)
				rq_read(&e, e.qp[q], &r[q][i], 300 + 80u * (unsigned)q, 8,
					1600 + 20u * (unsigned)q, 5000);
			else
				rq_write(&e, e.qp[q], &r[q][i], lba, 8,
					 1600 + 20u * (unsigned)q + (unsigned)i, 5000);
		}
	pnvme_qpair_flush(e.qp[0]);
	pnvme_qpair_flush(e.qp[1]);
	for (int q = 0; q < 2; q++)
		for (int i = NA + NB; i < N; i++)
			rq_write(&e, e.qp[q], &r[q][i], 300 + 80u * (unsigned)q + 8u * (unsigned)i, 8,
				 1600 + 20u * (unsigned)q + (unsigned)i, 5000);

	assert_ok(pnvme_ctrl_reset(e.ctrl));
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	assert_int_equal(g_reset_calls, 1);
	assert_int_equal(g_reset_err, 0);
	assert_non_null(strstr(g_reset_reason, "application"));
	for (int q = 0; q < 2; q++)
		for (int i = 0; i < N; i++)
			rs[q * N + i] = &r[q][i];
	drive(&e, rs, 2 * N, 2.0);
	check_once(rs, 2 * N);
	for (int q = 0; q < 2; q++) {
		for (int i = 0; i < N; i++) {
			bool b = i >= NA && i < NA + NB;
			check_err(&r[q][i], b && q == 1 ? -EIO : 0);
			if (r[q][i].write)
				check_media(&e, &r[q][i], 0, true);
			else
				check_read(&r[q][i]);
		}
	}
	struct pnvme_qpair_stats s0 = stats_of(e.qp[0]), s1 = stats_of(e.qp[1]);
	assert_int_equal(s0.reconnects, 1);
	assert_int_equal(s1.reconnects, 1);
	if (s0.retries != NB || s1.retries != 0)
		fail_msg("retries counted: qp0 %llu (expected %d: the doorbelled requests), qp1 %llu "
			 "(expected 0): requests never doorbelled before the reset are sent, not "
			 "retried, and must not count in stats.retries", (unsigned long long)s0.retries, NB, (unsigned long long)s1.retries);
	/* a second reset with nothing outstanding */
	assert_ok(pnvme_ctrl_reset(e.ctrl));
	check_usable(&e, e.qp[0], 911);
	check_usable(&e, e.qp[1], 912);
	assert_int_equal(stats_of(e.qp[0]).reconnects, 2);
	for (int q = 0; q < 2; q++)
		rq_free(r[q], N);
	env_close(&e, 0);
}

/*
 * A completion callback that resets the controller while its queue pair is
 * reconnecting after an earlier reset (the callback runs from the reconnect's
 * reap of the old CQ). The queue pair must end up on the newest generation
 * and keep working.
 */
static struct pnvme_ctrl *g_reset_from_cb;

static void reset_in_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	rq_cb(arg, err, cqe);
	if (g_reset_from_cb) {
		struct pnvme_ctrl *c = g_reset_from_cb;
		g_reset_from_cb = NULL;
		assert_ok(pnvme_ctrl_reset(c));
	}
}

static void test_reset_from_callback_during_reconnect(void **state)
{
	const struct env_cfg cfg = { .io_ms = 5000, .admin_ms = NO_TIMEOUT_MS, .retries = { 3 } };
	struct rq r0, w1;
	struct rq *rs[] = { &r0, &w1 };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	rq_prep(&e, e.qp[0], &r0, false, 800, 8, 0, 5.0);
	r0.t_sub = now_s();
	assert_ok(pnvme_read(e.qp[0], e.ns, r0.buf, 800, 8, 0, reset_in_cb, &r0));
	pnvme_qpair_flush(e.qp[0]);
	(void)pnvme_emu_step(e.emu);          /* r0 posted, not reaped */
	rq_write(&e, e.qp[0], &w1, 808, 8, 2001, 5000);
	pnvme_qpair_flush(e.qp[0]);           /* w1 doorbelled, not fetched */
	g_reset_from_cb = e.ctrl;
	assert_ok(pnvme_ctrl_reset(e.ctrl));
	int rc = drive(&e, rs, 2, 2.0);
	check_once(rs, 2);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 2);
	check_err(&r0, 0);
	check_read(&r0);
	if (rc < 0 || w1.err != 0)
		fail_msg("after a reset from a callback during the reconnect: poll %d, w1 err %d. "
			 "qpair_reconnect() must take the reset generation under the admin lock, "
			 "after reap() ran the callbacks; a stale one makes the next poll re-create "
			 "queues that exist and leaves the queue pair stuck with -EIO",
			 rc, w1.err);
	check_media(&e, &w1, 0, false);
	check_usable(&e, e.qp[0], 917);
	rq_free(&r0, 1);
	rq_free(&w1, 1);
	env_close(&e, 0);
}

/*
 * Re-creating the queues after a reset fails (Create I/O SQ refused): the
 * queue pair reports -EIO from then on (documented), its requests fail once
 * with -EIO, and destroying it and creating a new one works.
 */
static void test_reconnect_failure(void **state)
{
	const struct env_cfg cfg = { .io_ms = 5000, .admin_ms = NO_TIMEOUT_MS, .retries = { 3 } };
	struct rq w[2];
	struct rq *rs[] = { &w[0], &w[1] };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	for (int i = 0; i < 2; i++)
		rq_write(&e, e.qp[0], &w[i], 816 + 8u * (unsigned)i, 8, 2101 + (uint32_t)i, 5000);
	pnvme_qpair_flush(e.qp[0]);
	struct pnvme_emu_fault f = fault(PNVME_EMU_FAULT_STATUS, 0, PNVME_ADM_CREATE_SQ, 0, 1);
	f.status = PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INTERNAL) | PNVME_STATUS_DNR;
	inject(&e, &f);
	assert_ok(pnvme_ctrl_reset(e.ctrl));
	int rc = drive(&e, rs, 2, 2.0);
	assert_rc(rc, -EIO);
	check_once(rs, 2);
	for (int i = 0; i < 2; i++) {
		check_err(&w[i], -EIO);
		check_media(&e, &w[i], 0, true);
	}
	assert_rc(pnvme_qpair_poll(e.qp[0], 0), -EIO);
	assert_false(pnvme_ctrl_is_dead(e.ctrl));
	assert_ok(pnvme_qpair_destroy(e.qp[0]));
	struct pnvme_qpair_opts o;
	pnvme_qpair_opts_default(&o);
	o.timeout_ms = 50;
	assert_ok(pnvme_qpair_create(e.ctrl, &o, &e.qp[0]));
	check_usable(&e, e.qp[0], 918);
	rq_free(w, 2);
	env_close(&e, 0);
}

/*
 * More requests expire at once than the admin queue has room for Aborts
 * (admin queue of 4 entries: 3 trackers; 5 reads expire together, the
 * device not having run). Three Aborts go out; the other two requests must
 * get theirs once the admin queue has room again. The three aborted reads
 * complete through their own CQ (Abort Requested, as the device aborts them
 * when it fetches them); the other two have lost completions (DROP_CPL), so
 * only their Aborts and then a reset can end them: -ETIMEDOUT within
 * deadline + twice the admin timeout. Nothing but the ladder itself polls
 * the admin queue here. (Admin timeout 500 ms: the answers to the first
 * three Aborts must come within it, and a request that could not be aborted
 * for a whole admin timeout goes to a reset; scheduling delays must not.)
 */
static void test_abort_admin_queue_full(void **state)
{
	const struct env_cfg cfg = { .io_ms = 20, .admin_ms = 500, .admin_depth = 3 };
	struct rq r[5];
	struct rq *rs[] = { &r[0], &r[1], &r[2], &r[3], &r[4] };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	struct pnvme_emu_fault drop = fault(PNVME_EMU_FAULT_DROP_CPL, pnvme_qpair_id(e.qp[0]),
					    PNVME_NVM_READ, 0, 2);
	inject(&e, &drop); /* the aborted three never reach fault matching: R3, R4 */
	for (int i = 0; i < 5; i++)
		rq_read(&e, e.qp[0], &r[i], 840 + (unsigned)i, 1, 0, 20 + 2 * 500);
	pnvme_qpair_flush(e.qp[0]);
	/*
	 * The device does not run until every deadline has passed and the
	 * admin queue is full of Aborts (counted, not timed: the loop may not
	 * run for a while on a busy machine).
	 */
	double t0 = now_s();
	while ((stats_of(e.qp[0]).aborts < 3 || now_s() - r[4].t_sub < 0.025) &&
	       now_s() - t0 < 2.0) {
		(void)pnvme_qpair_poll(e.qp[0], 0);
		usleep(200);
	}
	assert_int_equal(stats_of(e.qp[0]).aborts, 3);
	drive(&e, rs, 5, 2.5);
	for (int i = 0; i < 5; i++)
		g_lost += r[i].calls == 0;
	for (int i = 3; i < 5; i++)
		if (r[i].calls == 0)
			fail_msg("request %d never completed (aborts sent: %llu, resets %u): once the "
				 "admin queue was full, the completions of the earlier Aborts were "
				 "never reaped, so start_abort() keeps returning -EBUSY and the ladder "
				 "stops. recovery.c qpair_check_deadlines() polls the admin queue "
				 "only while a tracker of its own is ABORTING; it should also when "
				 "start_abort() "
				 "returned -EBUSY (or whenever the admin queue has commands "
				 "outstanding)", i, (unsigned long long)stats_of(e.qp[0]).aborts,
				 pnvme_ctrl_resets(e.ctrl));
	check_once(rs, 5);
	for (int i = 0; i < 5; i++)
		check_err(&r[i], -ETIMEDOUT);
	for (int i = 0; i < 3; i++)
		assert_int_equal(PNVME_STATUS_CODE(r[i].status),
				 PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_ABORT_REQ));
	assert_int_equal(stats_of(e.qp[0]).aborts, 5);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	check_usable(&e, e.qp[0], 919);
	rq_free(r, 5);
	env_close(&e, 0);
}

/* ------------------------------------------------------------------------ */
/* Hostile completion entries                                               */
/* ------------------------------------------------------------------------ */

/*
 * A completion carrying a command id the host never used: ignored and
 * counted (logged once); the real request never sees its completion, so the
 * ladder ends it (-ETIMEDOUT after the reset). Others are unaffected.
 */
static void test_cqe_bad_cid(void **state)
{
	const struct env_cfg cfg = { .io_ms = 30, .admin_ms = 60, .retries = { 3 } };
	struct rq w0, r1, w2;
	struct rq *rs[] = { &w0, &r1, &w2 };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	struct pnvme_emu_fault f = fault(PNVME_EMU_FAULT_CQE_BAD_CID, pnvme_qpair_id(e.qp[0]),
					 PNVME_NVM_WRITE, 0, 1);
	inject(&e, &f);
	log_watch("out-of-range command id");
	rq_write(&e, e.qp[0], &w0, 400, 8, 1701, 30 + 60);
	pnvme_qpair_set_timeout(e.qp[0], NO_TIMEOUT_MS); /* the others must not time out */
	rq_read(&e, e.qp[0], &r1, 408, 8, 0, PROMPT_MS);
	rq_write(&e, e.qp[0], &w2, 416, 8, 1702, PROMPT_MS);
	drive(&e, rs, 3, 2.0);
	check_once(rs, 3);
	check_err(&w0, -ETIMEDOUT);
	check_err(&r1, 0);
	check_read(&r1);
	check_err(&w2, 0);
	struct pnvme_qpair_stats st = stats_of(e.qp[0]);
	assert_int_equal(st.bad_cqes, 1);
	assert_int_equal(g_log_match, 1);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	check_media(&e, &w0, 0, true); /* executed: its completion was only mislabelled */
	check_media(&e, &w2, 0, false);
	log_watch(NULL);
	check_usable(&e, e.qp[0], 913);
	rq_free(rs[0], 1);
	rq_free(rs[1], 1);
	rq_free(rs[2], 1);
	env_close(&e, 0);
}

/* Every completion of three reads posted twice: one callback each, bad_cqes 3, logged once. */
static void test_cqe_dup(void **state)
{
	const struct env_cfg cfg = { .io_ms = NO_TIMEOUT_MS, .admin_ms = NO_TIMEOUT_MS };
	struct rq r[3];
	struct rq *rs[] = { &r[0], &r[1], &r[2] };
	struct env e;
	(void)state;

	env_open(&e, &cfg);
	struct pnvme_emu_fault f = fault(PNVME_EMU_FAULT_CQE_DUP, pnvme_qpair_id(e.qp[0]),
					 PNVME_NVM_READ, 0, 3);
	inject(&e, &f);
	log_watch("not outstanding");
	for (int i = 0; i < 3; i++)
		rq_read(&e, e.qp[0], &r[i], 500 + 8u * (unsigned)i, 8, 0, PROMPT_MS);
	drive(&e, rs, 3, 2.0);
	idle(&e, 0.01);
	check_once(rs, 3);
	for (int i = 0; i < 3; i++) {
		check_err(&r[i], 0);
		check_read(&r[i]);
	}
	assert_int_equal(stats_of(e.qp[0]).bad_cqes, 3);
	assert_int_equal(g_log_match, 1);
	log_watch(NULL);
	check_stats(e.qp[0], 0, 0, 0, 0);
	check_usable(&e, e.qp[0], 914);
	rq_free(r, 3);
	env_close(&e, 0);
}

/*
 * A duplicated completion whose command id was reused in between: R0's
 * callback submits R1, which takes R0's freed command id; the duplicate of
 * R0's entry, next in the CQ, then names R1. R1 must not complete before the
 * device ran it (its buffer would not hold the data yet).
 * `via_poll_max`: the same without a callback, by polling one entry at a time.
 */
static void dup_reuse_case(bool via_poll_max)
{
	const struct env_cfg cfg = { .io_ms = NO_TIMEOUT_MS, .admin_ms = NO_TIMEOUT_MS };
	struct rq r0, r1;
	struct rq *rs[] = { &r0, &r1 };
	struct env e;

	env_open(&e, &cfg);
	/* the data R1 will read */
	uint8_t blk[8 * LBA];
	for (uint32_t i = 0; i < 8; i++)
		test_block_fill(blk + i * LBA, LBA, 600 + i, 1801);
	assert_ok(pnvme_emu_media_write(e.emu, 1, 600 * LBA, blk, sizeof(blk)));

	struct pnvme_emu_fault f = fault(PNVME_EMU_FAULT_CQE_DUP, pnvme_qpair_id(e.qp[0]),
					 PNVME_NVM_READ, 0, 1);
	inject(&e, &f);
	rq_prep(&e, e.qp[0], &r1, false, 600, 8, 1801, PROMPT_MS / 1000.0);
	rq_read(&e, e.qp[0], &r0, 592, 8, 0, PROMPT_MS);
	if (!via_poll_max)
		r0.chain = &r1;
	pnvme_qpair_flush(e.qp[0]);
	(void)pnvme_emu_step(e.emu);
	if (via_poll_max) {
		assert_int_equal(pnvme_qpair_poll(e.qp[0], 1), 1);
		assert_ok(rq_submit(&r1));
		/* the application's next poll, before the device got a turn */
		(void)pnvme_qpair_poll(e.qp[0], 0);
	}
	drive(&e, rs, 2, 2.0);
	idle(&e, 0.01);
	check_once(rs, 2);
	check_err(&r0, 0);
	check_err(&r1, 0);
	if (!r1.data_ok_at_cb)
		g_corrupt += r1.nlb; /* the application saw a "successful" read without its data */
	if (!r1.data_ok_at_cb)
		fail_msg("R1 completed (err %d) before the device ran it: the duplicate CQE of R0 "
			 "was taken for R1, which had reused R0's tracker: the command id's "
			 "generation bits must tell them apart",
			 r1.err);
	assert_int_equal(stats_of(e.qp[0]).bad_cqes, 1);
	check_usable(&e, e.qp[0], 915);
	rq_free(&r0, 1);
	rq_free(&r1, 1);
	env_close(&e, 0);
}

static void test_cqe_dup_cid_reuse_callback(void **state)
{
	(void)state;
	dup_reuse_case(false);
}

static void test_cqe_dup_cid_reuse_poll_max(void **state)
{
	(void)state;
	dup_reuse_case(true);
}

/*
 * Impossible SQ head pointers (beyond the ring; one entry behind the last
 * one): ignored and counted; the completions themselves are good. The queue
 * then runs full several times over (the ring accounting is intact).
 */
static void sqhd_case(enum pnvme_emu_fault_kind kind)
{
	const struct env_cfg cfg = { .io_ms = NO_TIMEOUT_MS, .admin_ms = NO_TIMEOUT_MS,
				     .depth = 7 };
	struct rq r[7];
	struct rq *rs[7];
	struct env e;

	env_open(&e, &cfg);
	/* some traffic first, so that "the last SQ head" is not 0 */
	for (int i = 0; i < 3; i++) {
		rq_read(&e, e.qp[0], &r[i], 700 + (unsigned)i, 1, 0, PROMPT_MS);
		rs[0] = &r[i];
		drive(&e, rs, 1, 2.0);
		check_once(rs, 1);
		rq_free(&r[i], 1);
	}
	struct pnvme_emu_fault f = fault(kind, pnvme_qpair_id(e.qp[0]), PNVME_NVM_READ, 0, 1);
	inject(&e, &f);
	log_watch("SQ head");
	rq_read(&e, e.qp[0], &r[0], 710, 1, 0, PROMPT_MS);
	rs[0] = &r[0];
	drive(&e, rs, 1, 2.0);
	check_once(rs, 1);
	check_err(&r[0], 0);
	assert_int_equal(stats_of(e.qp[0]).bad_sqhd, 1);
	assert_int_equal(g_log_match, 1);
	log_watch(NULL);
	rq_free(&r[0], 1);
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 7; i++) {
			rq_write(&e, e.qp[0], &r[i], 720 + 8u * (unsigned)i, 8,
				 1900 + 10u * (unsigned)round + (unsigned)i, PROMPT_MS);
			rs[i] = &r[i];
		}
		drive(&e, rs, 7, 2.0);
		check_once(rs, 7);
		for (int i = 0; i < 7; i++) {
			check_err(&r[i], 0);
			check_media(&e, &r[i], 0, false);
		}
		rq_free(r, 7);
	}
	assert_int_equal(stats_of(e.qp[0]).bad_sqhd, 1);
	check_stats(e.qp[0], 0, 0, 0, 0);
	check_usable(&e, e.qp[0], 916);
	env_close(&e, 0);
}

static void test_cqe_bad_sqhd(void **state)
{
	(void)state;
	sqhd_case(PNVME_EMU_FAULT_CQE_BAD_SQHD);
}

static void test_cqe_sqhd_back(void **state)
{
	(void)state;
	sqhd_case(PNVME_EMU_FAULT_CQE_SQHD_BACK);
}

/* ------------------------------------------------------------------------ */
/* Hostile identify data and capabilities                                   */
/* ------------------------------------------------------------------------ */

/* Open an emulator with `kind` armed from the start; returns pnvme_ctrl_open_emu's rc. */
static int open_with(const char *spec, enum pnvme_emu_fault_kind kind, bool step_first,
		     struct pnvme_emu **emu, struct pnvme_ctrl **ctrl)
{
	struct pnvme_emu_fault f = { .kind = kind };
	struct pnvme_ctrl_opts co;

	assert_ok(pnvme_emu_create(spec, emu));
	assert_ok(pnvme_emu_inject(*emu, &f));
	g_faults++;
	if (step_first)
		(void)pnvme_emu_step(*emu);
	pnvme_ctrl_opts_default(&co);
	co.admin_timeout_ms = 1000;
	*ctrl = NULL;
	return pnvme_ctrl_open_emu(*emu, &co, ctrl);
}

/*
 * Unusable LBA formats (LBADS 0; FLBAS beyond NLBAF): the controller opens,
 * each such namespace is skipped with a warning (the driver's documented
 * choice; it does not fail the open with -EPROTO).
 */
static void id_ns_case(enum pnvme_emu_fault_kind kind)
{
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	unsigned warn0 = g_log_warn;

	log_watch("namespace skipped");
	assert_ok(open_with("emu:mode=step,size=1M,ns=2", kind, false, &emu, &ctrl));
	assert_int_equal(pnvme_ctrl_nr_ns(ctrl), 0);
	assert_null(pnvme_ctrl_ns(ctrl, 1));
	assert_int_equal(g_log_match, 2);
	assert_true(g_log_warn >= warn0 + 2);
	log_watch(NULL);
	/* the controller itself works */
	struct pnvme_qpair *qp;
	assert_ok(pnvme_qpair_create(ctrl, NULL, &qp));
	assert_ok(pnvme_qpair_destroy(qp));
	assert_ok(pnvme_ctrl_close(ctrl));
	pnvme_emu_destroy(emu);
}

static void test_id_lbads_zero(void **state)
{
	(void)state;
	id_ns_case(PNVME_EMU_FAULT_ID_LBADS_ZERO);
}

static void test_id_flbas_range(void **state)
{
	(void)state;
	id_ns_case(PNVME_EMU_FAULT_ID_FLBAS_RANGE);
}

/* MDTS 255: capped at 2 MiB; a transfer above the device's real limit is refused by it. */
static void test_id_mdts_huge(void **state)
{
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	void *buf;
	(void)state;

	assert_ok(open_with("emu:mode=step,size=4M,mdts=5", PNVME_EMU_FAULT_ID_MDTS_HUGE, false,
			    &emu, &ctrl));
	assert_int_equal(pnvme_ctrl_max_xfer(ctrl), 2u << 20);
	const struct pnvme_ns *ns = pnvme_ctrl_ns(ctrl, 1);
	assert_non_null(ns);
	assert_int_equal(ns->max_xfer, 2u << 20);
	assert_int_equal(ns->max_lbas, (2u << 20) / 512);
	assert_ok(pnvme_qpair_create(ctrl, NULL, &qp));
	assert_ok(pnvme_dma_alloc(ctrl, 2u << 20, 0, &buf, NULL));
	/* within the real limit (128 KiB) */
	assert_ok(pnvme_write_sync(qp, ns, buf, 0, 256, 0));
	/* the host accepts 2 MiB, the device refuses it: an error, not a crash or a hang */
	assert_rc(pnvme_write_sync(qp, ns, buf, 0, 4096, 0), -EINVAL);
	assert_ok(pnvme_read_sync(qp, ns, buf, 0, 8, 0));
	pnvme_dma_free(ctrl, buf);
	assert_ok(pnvme_ctrl_close(ctrl));
	pnvme_emu_destroy(emu);
}

/* NN = FFFFFFFFh and an active list out of order: open survives with a sane count. */
static void test_id_nn_huge(void **state)
{
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	(void)state;

	assert_ok(open_with("emu:mode=step,size=1M,ns=3", PNVME_EMU_FAULT_ID_NN_HUGE, false, &emu,
			    &ctrl));
	uint32_t n = pnvme_ctrl_nr_ns(ctrl);
	assert_true(n >= 1 && n <= 3);
	for (uint32_t i = 0; i < n; i++) {
		const struct pnvme_ns *ns = pnvme_ctrl_ns_at(ctrl, i);
		assert_non_null(ns);
		assert_true(ns->nsid >= 1 && ns->nsid <= 3);
		for (uint32_t j = 0; j < i; j++)
			assert_int_not_equal(pnvme_ctrl_ns_at(ctrl, j)->nsid, ns->nsid);
	}
	printf("  ID_NN_HUGE with 3 namespaces, list [3,1,2,1]: %u namespace(s) kept:", n);
	for (uint32_t i = 0; i < n; i++)
		printf(" %u", pnvme_ctrl_ns_at(ctrl, i)->nsid);
	printf("\n");
	struct pnvme_qpair *qp;
	void *buf;
	assert_ok(pnvme_qpair_create(ctrl, NULL, &qp));
	assert_ok(pnvme_dma_alloc(ctrl, 4096, 0, &buf, NULL));
	assert_ok(pnvme_read_sync(qp, pnvme_ctrl_ns_at(ctrl, 0), buf, 0, 1, 0));
	pnvme_dma_free(ctrl, buf);
	assert_ok(pnvme_ctrl_close(ctrl));
	pnvme_emu_destroy(emu);
}

/* CAP.MQES 0 at open: -EPROTO, everything released. After open: queue creation fails cleanly. */
static void test_mqes_zero(void **state)
{
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp = NULL;
	uint32_t dw0;
	(void)state;

	assert_rc(open_with("emu:mode=step,size=1M", PNVME_EMU_FAULT_MQES_ZERO, true, &emu, &ctrl),
		  -EPROTO);
	assert_null(ctrl);
	pnvme_emu_destroy(emu);

	/* armed after bring-up: Create I/O queue is refused (Invalid Queue Size) */
	assert_ok(pnvme_emu_create("emu:mode=step,size=1M", &emu));
	assert_ok(pnvme_ctrl_open_emu(emu, NULL, &ctrl));
	struct pnvme_emu_fault f = { .kind = PNVME_EMU_FAULT_MQES_ZERO };
	assert_ok(pnvme_emu_inject(emu, &f));
	g_faults++;
	int rc = pnvme_qpair_create(ctrl, NULL, &qp);
	assert_true(rc < 0);
	assert_null(qp);
	assert_ok(pnvme_get_features(ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, &dw0));
	pnvme_emu_clear_faults(emu);
	assert_ok(pnvme_qpair_create(ctrl, NULL, &qp));
	assert_ok(pnvme_ctrl_close(ctrl));
	pnvme_emu_destroy(emu);
}

/* ------------------------------------------------------------------------ */

/*
 * Review finding: after a reset, an old command still in flight whose SQ slot
 * a later (never doorbelled) command reused must not be taken for an unsent
 * one. Depth 4: A held in slot 0; B, C complete; D (slot 3) and E (slot 0
 * again) posted, not rung; reset. Expect: A fails once with -EIO (no retries
 * allowed), D and E are sent once each and succeed, no stray CQE.
 */
static int slot_cb_calls[5], slot_cb_err[5];

static void slot_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	long i = (long)arg;
	(void)cqe;
	slot_cb_calls[i]++;
	slot_cb_err[i] = err;
}

static void test_reconnect_reused_slot(void **state)
{
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	struct pnvme_qpair_opts o;
	struct pnvme_qpair_stats qs;
	void *buf;
	(void)state;

	memset(slot_cb_calls, 0, sizeof(slot_cb_calls));
	assert_int_equal(pnvme_emu_create("emu:mode=step,size=1M", &emu), 0);
	assert_int_equal(pnvme_ctrl_open_emu(emu, NULL, &ctrl), 0);
	const struct pnvme_ns *ns = pnvme_ctrl_ns_at(ctrl, 0);
	pnvme_qpair_opts_default(&o);
	o.depth = 3; /* 4-entry rings */
	assert_int_equal(pnvme_qpair_create(ctrl, &o, &qp), 0);
	assert_int_equal(pnvme_dma_alloc(ctrl, 8 * 4096, 0, &buf, NULL), 0);
	char *b = buf;
	struct pnvme_emu_fault f = { .kind = PNVME_EMU_FAULT_DELAY_CPL, .qid = 1,
				     .opc = PNVME_NVM_READ, .count = 1, .delay_us = 100000000ull };
	assert_int_equal(pnvme_emu_inject(emu, &f), 0);
	assert_int_equal(pnvme_read(qp, ns, b, 0, 1, 0, slot_cb, (void *)0L), 0);       /* A */
	pnvme_qpair_flush(qp);
	(void)pnvme_emu_step(emu);
	assert_int_equal(pnvme_read(qp, ns, b + 4096, 1, 1, 0, slot_cb, (void *)1L), 0); /* B */
	assert_int_equal(pnvme_read(qp, ns, b + 8192, 2, 1, 0, slot_cb, (void *)2L), 0); /* C */
	pnvme_qpair_flush(qp);
	(void)pnvme_emu_step(emu);
	assert_true(pnvme_qpair_poll(qp, 0) >= 0);
	assert_int_equal(slot_cb_calls[1] + slot_cb_calls[2], 2);
	assert_int_equal(pnvme_read(qp, ns, b + 3 * 4096, 3, 1, 0, slot_cb, (void *)3L), 0); /* D */
	assert_int_equal(pnvme_read(qp, ns, b + 4 * 4096, 4, 1, 0, slot_cb, (void *)4L), 0); /* E */
	assert_int_equal(pnvme_ctrl_reset(ctrl), 0);
	for (int i = 0; i < 6; i++) {
		(void)pnvme_qpair_poll(qp, 0);
		(void)pnvme_emu_step(emu);
	}
	(void)pnvme_qpair_poll(qp, 0);
	for (int i = 0; i < 5; i++)
		if (slot_cb_calls[i] != 1)
			fail_msg("request %d: %d callbacks", i, slot_cb_calls[i]);
	assert_int_equal(slot_cb_err[0], -EIO);
	assert_int_equal(slot_cb_err[3], 0);
	assert_int_equal(slot_cb_err[4], 0);
	pnvme_qpair_get_stats(qp, &qs);
	assert_int_equal(qs.bad_cqes, 0);
	assert_int_equal(pnvme_qpair_outstanding(qp), 0);
	g_completed += 5;
	pnvme_dma_free(ctrl, buf);
	assert_int_equal(pnvme_qpair_destroy(qp), 0);
	(void)pnvme_ctrl_close(ctrl);
	pnvme_emu_destroy(emu);
}

/* Destroying a queue pair from its own callback is refused, not a use-after-free. */
static struct pnvme_qpair *self_qp;
static int self_destroy_rc = 1;

static void destroy_self_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	(void)arg;
	(void)err;
	(void)cqe;
	self_destroy_rc = pnvme_qpair_destroy(self_qp);
}

static void test_destroy_from_callback(void **state)
{
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	void *buf;
	(void)state;

	assert_int_equal(pnvme_emu_create("emu:mode=step,size=1M", &emu), 0);
	assert_int_equal(pnvme_ctrl_open_emu(emu, NULL, &ctrl), 0);
	const struct pnvme_ns *ns = pnvme_ctrl_ns_at(ctrl, 0);
	assert_int_equal(pnvme_qpair_create(ctrl, NULL, &self_qp), 0);
	assert_int_equal(pnvme_dma_alloc(ctrl, 4096, 0, &buf, NULL), 0);
	assert_int_equal(pnvme_read(self_qp, ns, buf, 0, 1, 0, destroy_self_cb, NULL), 0);
	pnvme_qpair_flush(self_qp);
	(void)pnvme_emu_step(emu);
	assert_int_equal(pnvme_qpair_poll(self_qp, 0), 1);
	assert_int_equal(self_destroy_rc, -EDEADLK);
	/* Still usable, and destroyable from outside. */
	assert_int_equal(pnvme_read_sync(self_qp, ns, buf, 0, 1, 0), 0);
	assert_int_equal(pnvme_qpair_destroy(self_qp), 0);
	pnvme_dma_free(ctrl, buf);
	(void)pnvme_ctrl_close(ctrl);
	pnvme_emu_destroy(emu);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_drop_cpl_no_retries, teardown),
		cmocka_unit_test_teardown(test_drop_cpl_retries, teardown),
		cmocka_unit_test_teardown(test_delay_past_deadline, teardown),
		cmocka_unit_test_teardown(test_delay_within_deadline, teardown),
		cmocka_unit_test_teardown(test_status_retry_dnr, teardown),
		cmocka_unit_test_teardown(test_status_no_retries, teardown),
		cmocka_unit_test_teardown(test_ignore_abort_drop, teardown),
		cmocka_unit_test_teardown(test_ignore_abort_delay_long, teardown),
		cmocka_unit_test_teardown(test_ignore_abort_late_success, teardown),
		cmocka_unit_test_teardown(test_cfs_no_retries, teardown),
		cmocka_unit_test_teardown(test_cfs_retries, teardown),
		cmocka_unit_test_teardown(test_cfs_pinned_dead, teardown),
		cmocka_unit_test_teardown(test_all_ones_mid_io, teardown),
		cmocka_unit_test_teardown(test_reset_failure_explicit, teardown),
		cmocka_unit_test_teardown(test_reset_failure_timeout, teardown),
		cmocka_unit_test_teardown(test_admin_timeout, teardown),
		cmocka_unit_test_teardown(test_explicit_reset_two_qpairs, teardown),
		cmocka_unit_test_teardown(test_reset_from_callback_during_reconnect, teardown),
		cmocka_unit_test_teardown(test_reconnect_failure, teardown),
		cmocka_unit_test_teardown(test_abort_admin_queue_full, teardown),
		cmocka_unit_test_teardown(test_cqe_bad_cid, teardown),
		cmocka_unit_test_teardown(test_cqe_dup, teardown),
		cmocka_unit_test_teardown(test_cqe_dup_cid_reuse_callback, teardown),
		cmocka_unit_test_teardown(test_cqe_dup_cid_reuse_poll_max, teardown),
		cmocka_unit_test_teardown(test_cqe_bad_sqhd, teardown),
		cmocka_unit_test_teardown(test_cqe_sqhd_back, teardown),
		cmocka_unit_test_teardown(test_id_lbads_zero, teardown),
		cmocka_unit_test_teardown(test_id_flbas_range, teardown),
		cmocka_unit_test_teardown(test_id_mdts_huge, teardown),
		cmocka_unit_test_teardown(test_id_nn_huge, teardown),
		cmocka_unit_test_teardown(test_mqes_zero, teardown),
		cmocka_unit_test(test_reconnect_reused_slot),
		cmocka_unit_test(test_destroy_from_callback),
	};
	int failed;

	pnvme_set_log(log_sink, NULL, PNVME_LOG_DEBUG);
	failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("recovery summary: faults tried %u, requests completed %u, lost %u, duplicated %u, "
	       "corrupt blocks %u; worst completion vs its ladder bound %+.1f ms (slack %.0f ms)\n",
	       g_faults, g_completed, g_lost, g_dup, g_corrupt, g_worst_over * 1e3,
	       slack_s() * 1e3);
	return failed ? failed : (g_lost || g_dup || g_corrupt) ? 1 : 0;
}
