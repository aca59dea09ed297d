/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_api.c - the library's surface: every public entry point with NULL
 * pointers, a namespace of another controller and unknown option flags
 * (-EINVAL with a message, never a crash), opening a PCI address that does
 * not exist (-ENODEV before any VFIO step), what "depth" means, and the
 * version. Emulated controllers in step mode; no real device is touched.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <pnvme/pnvme.h>

/* `expr` returns `want` and pnvme_last_error() contains `msg`. */
#define assert_fails(expr, want, msg)                                                  \
	do {                                                                           \
		int rc_ = (expr);                                                      \
		if (rc_ != (want))                                                     \
			fail_msg("%s returned %d, expected %d; last error: %s", #expr, \
				 rc_, (want), pnvme_last_error());                     \
		if (strstr(pnvme_last_error(), (msg)) == NULL)                         \
			fail_msg("%s: last error '%s' lacks '%s'", #expr,              \
				 pnvme_last_error(), (msg));                           \
	} while (0)
/* -EINVAL with a non-empty message. */
#define assert_einval(expr)                                                            \
	do {                                                                           \
		int rc_ = (expr);                                                      \
		if (rc_ != -EINVAL)                                                    \
			fail_msg("%s returned %d, expected -EINVAL; last error: %s",   \
				 #expr, rc_, pnvme_last_error());                      \
		if (pnvme_last_error()[0] == '\0')                                     \
			fail_msg("%s: -EINVAL without a message", #expr);              \
	} while (0)
#define assert_ok(expr)                                                                \
	do {                                                                           \
		int rc_ = (expr);                                                      \
		if (rc_ != 0)                                                          \
			fail_msg("%s returned %d; last error: %s", #expr, rc_,         \
				 pnvme_last_error());                                  \
	} while (0)

struct env {
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	const struct pnvme_ns *ns;
	void *buf;
};

static void env_open(struct env *e, const char *spec, const struct pnvme_qpair_opts *qo)
{
	memset(e, 0, sizeof(*e));
	assert_ok(pnvme_ctrl_open(spec, NULL, &e->ctrl));
	e->ns = pnvme_ctrl_ns(e->ctrl, 1);
	assert_non_null(e->ns);
	assert_ok(pnvme_qpair_create(e->ctrl, qo, &e->qp));
	assert_ok(pnvme_dma_alloc(e->ctrl, 65536, 0, &e->buf, NULL));
}

static void env_close(struct env *e)
{
	pnvme_dma_free(e->ctrl, e->buf);
	assert_ok(pnvme_qpair_destroy(e->qp));
	assert_ok(pnvme_ctrl_close(e->ctrl));
}

static void cb_count(void *arg, int err, const struct pnvme_cqe *cqe)
{
	(void)err;
	(void)cqe;
	++*(int *)arg;
}

/* ------------------------------------------------------------------------ */
/* Version                                                                  */
/* ------------------------------------------------------------------------ */

static void test_version(void **state)
{
	char want[32];
	(void)state;

	assert_string_equal(pnvme_version(), PNVME_VERSION_STRING);
	assert_string_equal(pnvme_version(), PNVME_PROJECT_VERSION); /* CMake's project() */
	snprintf(want, sizeof(want), "%d.%d.%d", PNVME_VERSION_MAJOR, PNVME_VERSION_MINOR,
		 PNVME_VERSION_PATCH);
	assert_string_equal(pnvme_version(), want);
	assert_int_equal(PNVME_VERSION, PNVME_VERSION_MAJOR * 10000 + PNVME_VERSION_MINOR * 100 +
					       PNVME_VERSION_PATCH);
}

/* ------------------------------------------------------------------------ */
/* NULL pointers                                                            */
/* ------------------------------------------------------------------------ */

/* Every controller and admin call with a NULL controller. */
static void test_null_ctrl(void **state)
{
	struct pnvme_ctrl *c = NULL;
	struct pnvme_sqe sqe;
	struct pnvme_smart_log smart;
	struct pnvme_error_log elog[2];
	uint8_t buf[4096];
	uint32_t dw0;
	bool aborted;
	void *dma;
	uint64_t iova;
	(void)state;

	memset(&sqe, 0, sizeof(sqe));
	pnvme_ctrl_opts_default(NULL); /* ignored */
	assert_int_equal(pnvme_ctrl_close(NULL), 0);
	assert_einval(pnvme_ctrl_open(NULL, NULL, &c));
	assert_einval(pnvme_ctrl_open("emu", NULL, NULL));
	assert_einval(pnvme_ctrl_open_emu(NULL, NULL, &c));
	assert_null(c);
	assert_einval(pnvme_ctrl_reset(NULL));
	assert_einval(pnvme_ctrl_process_admin(NULL));

	assert_null(pnvme_ctrl_id(NULL));
	assert_int_equal(pnvme_ctrl_cap(NULL), 0);
	assert_int_equal(pnvme_ctrl_vs(NULL), 0);
	assert_int_equal(pnvme_ctrl_max_io_queues(NULL), 0);
	assert_int_equal(pnvme_ctrl_max_xfer(NULL), 0);
	assert_false(pnvme_ctrl_shadow_db(NULL));
	assert_int_equal(pnvme_ctrl_resets(NULL), 0);
	assert_false(pnvme_ctrl_is_dead(NULL));
	assert_null(pnvme_ctrl_emu(NULL));
	assert_int_equal(pnvme_ctrl_nr_ns(NULL), 0);
	assert_null(pnvme_ctrl_ns(NULL, 1));
	assert_null(pnvme_ctrl_ns_at(NULL, 0));

	assert_einval(pnvme_admin_passthru(NULL, &sqe, NULL, 0, NULL));
	assert_einval(pnvme_admin_submit(NULL, &sqe, NULL, 0, cb_count, NULL));
	assert_einval(pnvme_identify(NULL, PNVME_ID_CNS_CTRL, 0, buf));
	assert_einval(pnvme_identify_async(NULL, PNVME_ID_CNS_CTRL, 0, buf, cb_count, NULL));
	assert_einval(pnvme_get_features(NULL, PNVME_FEAT_NUM_QUEUES, 0, 0, &dw0));
	assert_einval(pnvme_get_features_async(NULL, PNVME_FEAT_NUM_QUEUES, 0, 0, cb_count, NULL));
	assert_einval(pnvme_set_features(NULL, PNVME_FEAT_NUM_QUEUES, 0, 0, 0, &dw0));
	assert_einval(pnvme_set_features_async(NULL, PNVME_FEAT_NUM_QUEUES, 0, 0, 0, cb_count,
					       NULL));
	assert_einval(pnvme_get_log_page(NULL, PNVME_LOG_SMART, 0xffffffffu, 0, buf, 512));
	assert_einval(pnvme_get_log_page_async(NULL, PNVME_LOG_SMART, 0xffffffffu, 0, buf, 512,
					       cb_count, NULL));
	assert_einval(pnvme_smart_log(NULL, &smart));
	assert_einval(pnvme_error_log(NULL, elog, 2));
	assert_einval(pnvme_abort(NULL, 1, 0, &aborted));
	assert_einval(pnvme_abort_async(NULL, 1, 0, cb_count, NULL));
	assert_einval(pnvme_create_io_cq(NULL, 1, 0x1000, 2));
	assert_einval(pnvme_create_io_sq(NULL, 1, 1, 0x1000, 2));
	assert_einval(pnvme_delete_io_cq(NULL, 1));
	assert_einval(pnvme_delete_io_sq(NULL, 1));
	assert_einval(pnvme_create_io_cq_async(NULL, 1, 0x1000, 2, cb_count, NULL));
	assert_einval(pnvme_create_io_sq_async(NULL, 1, 1, 0x1000, 2, cb_count, NULL));
	assert_einval(pnvme_delete_io_cq_async(NULL, 1, cb_count, NULL));
	assert_einval(pnvme_delete_io_sq_async(NULL, 1, cb_count, NULL));

	assert_einval(pnvme_dma_alloc(NULL, 4096, 0, &dma, &iova));
	pnvme_dma_free(NULL, buf); /* ignored */
	assert_einval(pnvme_dma_iova(NULL, buf, 1, &iova));

	struct pnvme_qpair *qp = NULL;
	assert_einval(pnvme_qpair_create(NULL, NULL, &qp));
	assert_null(qp);
}

/* NULL buffers, commands and out pointers on a live controller. */
static void test_null_args(void **state)
{
	struct env e;
	struct pnvme_sqe sqe;
	struct pnvme_qpair *qp;
	uint64_t iova;
	(void)state;

	env_open(&e, "emu:mode=step", NULL);
	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = PNVME_ADM_IDENTIFY;
	assert_einval(pnvme_admin_passthru(e.ctrl, NULL, NULL, 0, NULL));
	assert_einval(pnvme_admin_passthru(e.ctrl, &sqe, NULL, 4096, NULL));
	assert_einval(pnvme_admin_submit(e.ctrl, NULL, NULL, 0, cb_count, NULL));
	assert_einval(pnvme_admin_submit(e.ctrl, &sqe, NULL, 0, NULL, NULL));
	assert_einval(pnvme_identify(e.ctrl, PNVME_ID_CNS_CTRL, 0, NULL));
	assert_einval(pnvme_identify_async(e.ctrl, PNVME_ID_CNS_CTRL, 0, NULL, cb_count, NULL));
	assert_einval(pnvme_get_log_page(e.ctrl, PNVME_LOG_SMART, 0xffffffffu, 0, NULL, 512));
	assert_einval(pnvme_get_log_page_async(e.ctrl, PNVME_LOG_SMART, 0xffffffffu, 0, NULL,
					       512, cb_count, NULL));
	assert_einval(pnvme_smart_log(e.ctrl, NULL));
	assert_einval(pnvme_error_log(e.ctrl, NULL, 1));
	assert_einval(pnvme_dma_alloc(e.ctrl, 4096, 0, NULL, &iova));
	assert_einval(pnvme_dma_iova(e.ctrl, NULL, 1, &iova));
	assert_einval(pnvme_dma_iova(e.ctrl, e.buf, 1, NULL));
	pnvme_dma_free(e.ctrl, NULL); /* ignored */
	assert_einval(pnvme_qpair_create(e.ctrl, NULL, NULL));
	assert_einval(pnvme_io_passthru(e.qp, NULL, NULL, 0, cb_count, NULL));
	assert_einval(pnvme_io_passthru_sync(e.qp, NULL, NULL, 0, NULL));
	assert_einval(pnvme_dsm(e.qp, e.ns, NULL, 1, 0, cb_count, NULL));
	assert_einval(pnvme_dsm_sync(e.qp, e.ns, NULL, 1, 0));
	pnvme_qpair_get_stats(e.qp, NULL); /* ignored */
	/* Nothing reached the device, and everything still works. */
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	assert_ok(pnvme_write_sync(e.qp, e.ns, e.buf, 0, 1, 0));
	assert_ok(pnvme_qpair_create(e.ctrl, NULL, &qp));
	assert_ok(pnvme_qpair_destroy(qp));
	env_close(&e);
}

/* Every queue pair call with a NULL queue pair, and I/O calls with a NULL namespace. */
static void test_null_qpair_and_ns(void **state)
{
	struct env e;
	struct pnvme_qpair_stats st;
	struct pnvme_dsm_range r = { .cattr = 0, .nlb = 1, .slba = 0 };
	struct pnvme_sqe sqe;
	struct pnvme_cqe cqe;
	(void)state;

	env_open(&e, "emu:mode=step", NULL);
	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = PNVME_NVM_FLUSH;
	sqe.nsid = 1;

	pnvme_qpair_opts_default(NULL); /* ignored */
	assert_int_equal(pnvme_qpair_destroy(NULL), 0);
	assert_int_equal(pnvme_qpair_id(NULL), 0);
	assert_int_equal(pnvme_qpair_depth(NULL), 0);
	assert_int_equal(pnvme_qpair_outstanding(NULL), 0);
	pnvme_qpair_set_timeout(NULL, 10);
	pnvme_qpair_flush(NULL);
	pnvme_qpair_reset_stats(NULL);
	memset(&st, 0xff, sizeof(st));
	pnvme_qpair_get_stats(NULL, &st);
	assert_int_equal(st.submitted, 0);
	assert_einval(pnvme_qpair_poll(NULL, 0));
	assert_false(pnvme_qpair_cq_ready(NULL));

	assert_einval(pnvme_flush(NULL, e.ns, cb_count, NULL));
	assert_einval(pnvme_write_zeroes(NULL, e.ns, 0, 1, 0, cb_count, NULL));
	assert_einval(pnvme_dsm(NULL, e.ns, &r, 1, PNVME_DSM_AD, cb_count, NULL));
	assert_einval(pnvme_io_passthru(NULL, &sqe, NULL, 0, cb_count, NULL));
	assert_einval(pnvme_read_sync(NULL, e.ns, e.buf, 0, 1, 0));
	assert_einval(pnvme_write_sync(NULL, e.ns, e.buf, 0, 1, 0));
	assert_einval(pnvme_flush_sync(NULL, e.ns));
	assert_einval(pnvme_write_zeroes_sync(NULL, e.ns, 0, 1, 0));
	assert_einval(pnvme_dsm_sync(NULL, e.ns, &r, 1, PNVME_DSM_AD));
	assert_einval(pnvme_io_passthru_sync(NULL, &sqe, NULL, 0, &cqe));

	assert_einval(pnvme_flush(e.qp, NULL, cb_count, NULL));
	assert_einval(pnvme_write_zeroes(e.qp, NULL, 0, 1, 0, cb_count, NULL));
	assert_einval(pnvme_dsm(e.qp, NULL, &r, 1, PNVME_DSM_AD, cb_count, NULL));
	assert_einval(pnvme_read_sync(e.qp, NULL, e.buf, 0, 1, 0));
	assert_einval(pnvme_write_sync(e.qp, NULL, e.buf, 0, 1, 0));
	assert_einval(pnvme_flush_sync(e.qp, NULL));
	assert_einval(pnvme_write_zeroes_sync(e.qp, NULL, 0, 1, 0));
	assert_einval(pnvme_dsm_sync(e.qp, NULL, &r, 1, PNVME_DSM_AD));

	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.submitted, 0);
	env_close(&e);
}

/*
 * pnvme_read() / pnvme_write() with NULL and with another controller's
 * namespace, each in a child process so that a crash is a failure, not the
 * end of the suite. Their checks belong to the submission fast path
 * (submit_rw in src/core/io.c), which is being changed elsewhere: until they
 * land, this test is skipped.
 */
#define HOT_PATH_CHECKS 1

static int child_rc(int (*fn)(struct env *, struct env *), struct env *a, struct env *b)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		/* A crash must end the child, not return into cmocka's runner. */
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		signal(SIGILL, SIG_DFL);
		signal(SIGFPE, SIG_DFL);
		_exit(fn(a, b) == -EINVAL ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int read_null_qp(struct env *a, struct env *b)
{
	(void)b;
	return pnvme_read(NULL, a->ns, a->buf, 0, 1, 0, cb_count, NULL);
}

static int read_null_ns(struct env *a, struct env *b)
{
	(void)b;
	return pnvme_read(a->qp, NULL, a->buf, 0, 1, 0, cb_count, NULL);
}

static int write_null_qp(struct env *a, struct env *b)
{
	(void)b;
	return pnvme_write(NULL, a->ns, a->buf, 0, 1, 0, cb_count, NULL);
}

static int write_null_ns(struct env *a, struct env *b)
{
	(void)b;
	return pnvme_write(a->qp, NULL, a->buf, 0, 1, 0, cb_count, NULL);
}

static int read_foreign_ns(struct env *a, struct env *b)
{
	return pnvme_read(a->qp, b->ns, a->buf, 0, 1, 0, cb_count, NULL);
}

static int write_foreign_ns(struct env *a, struct env *b)
{
	return pnvme_write(a->qp, b->ns, a->buf, 0, 1, 0, cb_count, NULL);
}

static void test_read_write_checks(void **state)
{
	struct env a, b;
	(void)state;

	if (!HOT_PATH_CHECKS)
		skip();
	env_open(&a, "emu:mode=step", NULL);
	env_open(&b, "emu:mode=step,size=1M", NULL);
	assert_int_equal(child_rc(read_null_qp, &a, &b), 0);
	assert_int_equal(child_rc(read_null_ns, &a, &b), 0);
	assert_int_equal(child_rc(write_null_qp, &a, &b), 0);
	assert_int_equal(child_rc(write_null_ns, &a, &b), 0);
	assert_int_equal(child_rc(read_foreign_ns, &a, &b), 0);
	assert_int_equal(child_rc(write_foreign_ns, &a, &b), 0);
	env_close(&b);
	env_close(&a);
}

/* ------------------------------------------------------------------------ */
/* A namespace of another controller                                        */
/* ------------------------------------------------------------------------ */

static void test_foreign_namespace(void **state)
{
	const char *msg = "namespace belongs to another controller";
	struct pnvme_dsm_range r = { .cattr = 0, .nlb = 1, .slba = 0 };
	struct pnvme_qpair_stats st;
	struct env a, b;
	int calls = 0;
	(void)state;

	env_open(&a, "emu:mode=step", NULL);
	env_open(&b, "emu:mode=step,size=1M", NULL);
	assert_ptr_equal(a.ns->ctrl, a.ctrl);
	assert_ptr_equal(b.ns->ctrl, b.ctrl);

	assert_fails(pnvme_flush(a.qp, b.ns, cb_count, &calls), -EINVAL, msg);
	assert_fails(pnvme_write_zeroes(a.qp, b.ns, 0, 1, 0, cb_count, &calls), -EINVAL, msg);
	assert_fails(pnvme_dsm(a.qp, b.ns, &r, 1, PNVME_DSM_AD, cb_count, &calls), -EINVAL, msg);
	assert_fails(pnvme_read_sync(a.qp, b.ns, a.buf, 0, 1, 0), -EINVAL, msg);
	assert_fails(pnvme_write_sync(a.qp, b.ns, a.buf, 0, 1, 0), -EINVAL, msg);
	assert_fails(pnvme_flush_sync(a.qp, b.ns), -EINVAL, msg);
	assert_fails(pnvme_write_zeroes_sync(a.qp, b.ns, 0, 1, 0), -EINVAL, msg);
	assert_fails(pnvme_dsm_sync(a.qp, b.ns, &r, 1, PNVME_DSM_AD), -EINVAL, msg);

	/* Nothing was submitted anywhere. */
	pnvme_qpair_get_stats(a.qp, &st);
	assert_int_equal(st.submitted, 0);
	pnvme_qpair_get_stats(b.qp, &st);
	assert_int_equal(st.submitted, 0);
	assert_int_equal(calls, 0);
	/* Each namespace still works with its own controller. */
	assert_ok(pnvme_flush_sync(a.qp, a.ns));
	assert_ok(pnvme_flush_sync(b.qp, b.ns));
	env_close(&b);
	env_close(&a);
}

/* ------------------------------------------------------------------------ */
/* Unknown flag bits                                                        */
/* ------------------------------------------------------------------------ */

static void test_unknown_flags(void **state)
{
	struct pnvme_ctrl_opts co;
	struct pnvme_qpair_opts qo;
	struct pnvme_ctrl *ctrl = NULL;
	struct pnvme_qpair *qp = NULL;
	(void)state;

	pnvme_ctrl_opts_default(&co);
	co.flags = PNVME_CTRL_SHADOW_DB | (1u << 5);
	assert_fails(pnvme_ctrl_open("emu:mode=step", &co, &ctrl), -EINVAL,
		     "unknown flag bits 0x20");
	assert_null(ctrl);
	co.flags = 1u << 31;
	assert_fails(pnvme_ctrl_open("emu:mode=step", &co, &ctrl), -EINVAL,
		     "unknown flag bits 0x80000000");

	co.flags = PNVME_CTRL_SHADOW_DB;
	assert_ok(pnvme_ctrl_open("emu:mode=step", &co, &ctrl));
	pnvme_qpair_opts_default(&qo);
	qo.flags = PNVME_QPAIR_DB_IMMEDIATE | (1u << 7);
	assert_fails(pnvme_qpair_create(ctrl, &qo, &qp), -EINVAL, "unknown flag bits 0x80");
	assert_null(qp);
	qo.flags = PNVME_QPAIR_DB_IMMEDIATE | PNVME_QPAIR_LAZY_CQ_DB;
	assert_ok(pnvme_qpair_create(ctrl, &qo, &qp));
	assert_ok(pnvme_qpair_destroy(qp));
	assert_ok(pnvme_ctrl_close(ctrl));
}

/* ------------------------------------------------------------------------ */
/* A PCI address with no device behind it                                  */
/* ------------------------------------------------------------------------ */

static void test_open_missing_bdf(void **state)
{
	struct pnvme_ctrl *ctrl = NULL;
	(void)state;

	/* Bus ff, device 1f, function 7: not present here (checked, never touched). */
	if (access("/sys/bus/pci/devices/0000:ff:1f.7", F_OK) == 0)
		skip();
	assert_fails(pnvme_ctrl_open("0000:ff:1f.7", NULL, &ctrl), -ENODEV,
		     "no PCI device 0000:ff:1f.7");
	assert_null(ctrl);
	/* The short form names the same device. */
	assert_fails(pnvme_ctrl_open("FF:1F.7", NULL, &ctrl), -ENODEV,
		     "no PCI device 0000:ff:1f.7");
	/* A malformed address stays -EINVAL. */
	assert_fails(pnvme_ctrl_open("0000:ff:20.0", NULL, &ctrl), -EINVAL, "PCI address");
}

/* ------------------------------------------------------------------------ */
/* Depth = requests outstanding at once                                     */
/* ------------------------------------------------------------------------ */

static void test_depth_io(void **state)
{
	struct pnvme_qpair_opts qo;
	struct pnvme_qpair *qp = NULL;
	struct env e;
	int calls = 0;
	(void)state;

	pnvme_qpair_opts_default(&qo);
	qo.depth = 5;
	env_open(&e, "emu:mode=step,mqes=7", &qo);
	assert_int_equal(pnvme_qpair_depth(e.qp), 5);
	/* Exactly `depth` requests fit without a poll; the next one finds the queue full. */
	for (int i = 0; i < 5; i++)
		assert_ok(pnvme_write(e.qp, e.ns, e.buf, (uint64_t)i, 1, 0, cb_count, &calls));
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 5);
	assert_int_equal(pnvme_write(e.qp, e.ns, e.buf, 5, 1, 0, cb_count, &calls), -EAGAIN);
	while (calls < 5) {
		pnvme_qpair_flush(e.qp);
		pnvme_emu_step(pnvme_ctrl_emu(e.ctrl));
		assert_true(pnvme_qpair_poll(e.qp, 0) >= 0);
	}

	/* CAP.MQES 7 (8-entry queues): depth 7 is the most. */
	qo.depth = 7;
	assert_ok(pnvme_qpair_create(e.ctrl, &qo, &qp));
	assert_int_equal(pnvme_qpair_depth(qp), 7);
	assert_ok(pnvme_qpair_destroy(qp));
	qo.depth = 8;
	assert_fails(pnvme_qpair_create(e.ctrl, &qo, &qp), -EINVAL, "depth 8 outside 1..7");
	/* Depth 1: one request at a time (2-entry rings). */
	qo.depth = 1;
	assert_ok(pnvme_qpair_create(e.ctrl, &qo, &qp));
	assert_int_equal(pnvme_qpair_depth(qp), 1);
	assert_ok(pnvme_write_sync(qp, e.ns, e.buf, 0, 1, 0));
	assert_ok(pnvme_qpair_destroy(qp));
	/* The default is capped at CAP.MQES. */
	assert_ok(pnvme_qpair_create(e.ctrl, NULL, &qp));
	assert_int_equal(pnvme_qpair_depth(qp), 7);
	assert_ok(pnvme_qpair_destroy(qp));
	env_close(&e);

	env_open(&e, "emu:mode=step", NULL);
	assert_int_equal(pnvme_qpair_depth(e.qp), 255); /* default: 256-entry rings */
	env_close(&e);
}

static void test_depth_admin(void **state)
{
	struct pnvme_ctrl_opts co;
	struct pnvme_ctrl *ctrl;
	int calls = 0, n = 0;
	(void)state;

	pnvme_ctrl_opts_default(&co);
	assert_int_equal(co.admin_depth, 31);
	co.admin_depth = 0;
	assert_fails(pnvme_ctrl_open("emu:mode=step", &co, &ctrl), -EINVAL, "admin_depth");
	co.admin_depth = 4096;
	assert_fails(pnvme_ctrl_open("emu:mode=step", &co, &ctrl), -EINVAL, "admin_depth");

	/* admin_depth 3: three admin commands outstanding, the fourth waits. */
	co.admin_depth = 3;
	assert_ok(pnvme_ctrl_open("emu:mode=step", &co, &ctrl));
	for (int i = 0; i < 3; i++)
		assert_ok(pnvme_get_features_async(ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, cb_count,
						   &calls));
	assert_int_equal(pnvme_get_features_async(ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, cb_count,
						  &calls), -EAGAIN);
	while (calls < 3 && n++ < 1000) {
		pnvme_emu_step(pnvme_ctrl_emu(ctrl));
		assert_true(pnvme_ctrl_process_admin(ctrl) >= 0);
	}
	assert_int_equal(calls, 3);
	/* admin_depth 1 still works: sync commands, one at a time. */
	assert_ok(pnvme_ctrl_close(ctrl));
	co.admin_depth = 1;
	assert_ok(pnvme_ctrl_open("emu:mode=step", &co, &ctrl));
	assert_ok(pnvme_get_features(ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, NULL));
	assert_ok(pnvme_ctrl_close(ctrl));
}

/* ------------------------------------------------------------------------ */
/* The emulator's and the rest of the public API                            */
/* ------------------------------------------------------------------------ */

static void test_null_emu(void **state)
{
	struct pnvme_emu_config cfg;
	struct pnvme_emu_stats st;
	struct pnvme_emu_fault f = { .kind = PNVME_EMU_FAULT_CFS, .qid = 0, .opc = 0, .skip = 0,
				     .count = 0, .status = 0, .delay_us = 0 };
	struct pnvme_emu *emu;
	uint8_t buf[512];
	size_t len = 1;
	(void)state;

	assert_einval(pnvme_emu_parse("emu", NULL));
	assert_ok(pnvme_emu_parse(NULL, &cfg)); /* NULL spec: the defaults */
	assert_einval(pnvme_emu_create("emu", NULL));
	pnvme_emu_destroy(NULL);
	assert_einval(pnvme_emu_step(NULL));
	assert_false(pnvme_emu_threaded(NULL));
	assert_null((void *)pnvme_emu_bar(NULL, &len));
	assert_int_equal(len, 0);
	assert_null(pnvme_emu_config(NULL));
	assert_einval(pnvme_emu_map(NULL, buf, 0x1000, 4096));
	assert_einval(pnvme_emu_unmap(NULL, 0x1000, 4096));
	assert_einval(pnvme_emu_media_read(NULL, 1, 0, buf, sizeof(buf)));
	assert_einval(pnvme_emu_media_write(NULL, 1, 0, buf, sizeof(buf)));
	assert_einval(pnvme_emu_inject(NULL, &f));
	pnvme_emu_clear_faults(NULL);
	pnvme_emu_get_stats(NULL, &st);

	assert_ok(pnvme_emu_create("emu:mode=step,size=1M", &emu));
	assert_einval(pnvme_emu_map(emu, NULL, 0x1000, 4096));
	assert_einval(pnvme_emu_media_read(emu, 1, 0, NULL, sizeof(buf)));
	assert_einval(pnvme_emu_media_write(emu, 1, 0, NULL, sizeof(buf)));
	assert_einval(pnvme_emu_inject(emu, NULL));
	pnvme_emu_get_stats(emu, NULL);
	assert_non_null((void *)pnvme_emu_bar(emu, NULL));
	assert_int_equal(pnvme_emu_step(emu), 0);
	pnvme_emu_destroy(emu);
}

static void test_null_misc(void **state)
{
	char bdf[PNVME_PCI_BDF_LEN];
	struct pnvme_pci_dev dev;
	struct pnvme_pci_dev *devs;
	size_t n;
	char why[64];
	(void)state;

	/* Logging and status take no pointers that could be NULL by mistake. */
	pnvme_set_log(NULL, NULL, PNVME_LOG_DEBUG);
	assert_non_null(pnvme_status_str(0xffff));
	assert_int_equal(pnvme_status_errno(0), 0);
	assert_non_null(pnvme_last_error());

	/* PCI: refused before any sysfs access. */
	assert_einval(pnvme_pci_bdf_normalize(NULL, bdf));
	assert_einval(pnvme_pci_bdf_normalize("0000:00:04.0", NULL));
	assert_einval(pnvme_pci_list(NULL, &n));
	assert_einval(pnvme_pci_list(&devs, NULL));
	pnvme_pci_list_free(NULL);
	assert_einval(pnvme_pci_probe(NULL, &dev));
	assert_einval(pnvme_pci_probe("0000:00:04.0", NULL));
	assert_einval(pnvme_pci_in_use(NULL, why, sizeof(why)));
	assert_einval(pnvme_pci_bind_vfio(NULL, false));
	assert_einval(pnvme_pci_unbind_vfio(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_null_ctrl),
		cmocka_unit_test(test_null_args),
		cmocka_unit_test(test_null_qpair_and_ns),
		cmocka_unit_test(test_read_write_checks),
		cmocka_unit_test(test_foreign_namespace),
		cmocka_unit_test(test_unknown_flags),
		cmocka_unit_test(test_open_missing_bdf),
		cmocka_unit_test(test_depth_io),
		cmocka_unit_test(test_depth_admin),
		cmocka_unit_test(test_null_emu),
		cmocka_unit_test(test_null_misc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
