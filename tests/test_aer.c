/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_aer.c - Asynchronous Event Requests (core/aer.c, core/ns.c) against
 * the emulated controller in step mode (emu_aen.c raises the events):
 * requests outstanding after open and after a reset, namespaces resized,
 * removed and added at run time (list, generation, pointers the
 * application holds), SMART critical warnings, close with requests
 * outstanding.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pnvme/pnvme.h>

#include "test_helpers.h"

#define EMU_AERS 4u /* the emulator's AERL 3, 0's based */

struct ev_log {
	unsigned n;
	struct pnvme_async_event ev[8];
	uint32_t nsids[8][4];
	int nr_ns_seen[8];         /* pnvme_ctrl_nr_ns() inside the callback */
	struct pnvme_ctrl *ctrl;
};

static void aer_cb(void *arg, const struct pnvme_async_event *ev)
{
	struct ev_log *l = arg;

	if (l->n >= 8)
		return;
	l->ev[l->n] = *ev;
	for (uint32_t i = 0; i < ev->nr_nsids && i < 4; i++)
		l->nsids[l->n][i] = ev->nsids[i];
	l->ev[l->n].nsids = NULL;
	l->ev[l->n].log = NULL;
	l->nr_ns_seen[l->n] = (int)pnvme_ctrl_nr_ns(l->ctrl);
	l->n++;
}

struct env {
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	struct ev_log log;
};

static void env_open(struct env *e, const char *opts, void (*before_open)(struct pnvme_emu *))
{
	struct pnvme_ctrl_opts o;
	char spec[256];

	memset(e, 0, sizeof(*e));
	snprintf(spec, sizeof(spec), "emu:mode=step%s%s", *opts ? "," : "", opts);
	assert_ok(pnvme_emu_create(spec, &e->emu));
	if (before_open)
		before_open(e->emu);
	pnvme_ctrl_opts_default(&o);
	o.aer_cb = aer_cb;
	o.aer_arg = &e->log;
	assert_ok(pnvme_ctrl_open_emu(e->emu, &o, &e->ctrl));
	e->log.ctrl = e->ctrl;
}

static void env_close(struct env *e)
{
	assert_ok(pnvme_ctrl_close(e->ctrl));
	pnvme_emu_destroy(e->emu);
}

/* Poll the admin queue until `want` events arrived (or give up after many polls). */
static void pump(struct env *e, unsigned want)
{
	for (int i = 0; i < 2000 && e->log.n < want; i++) {
		(void)pnvme_emu_step(e->emu);
		assert_true(pnvme_ctrl_process_admin(e->ctrl) >= 0);
	}
	/* A few more: nothing else may arrive. */
	for (int i = 0; i < 20; i++) {
		(void)pnvme_emu_step(e->emu);
		assert_true(pnvme_ctrl_process_admin(e->ctrl) >= 0);
	}
	assert_int_equal(e->log.n, want);
}

static void assert_ns_event(const struct env *e, unsigned i, uint32_t nsid)
{
	const struct pnvme_async_event *ev = &e->log.ev[i];

	assert_int_equal(ev->type, PNVME_AER_TYPE_NOTICE);
	assert_int_equal(ev->info, PNVME_AER_NOTICE_NS_CHANGED);
	assert_int_equal(ev->log_page, PNVME_LOG_CHANGED_NS);
	assert_int_equal(ev->log_err, 0);
	assert_false(ev->ns_overflow);
	assert_int_equal(ev->nr_nsids, 1);
	assert_int_equal(e->log.nsids[i][0], nsid);
}

/* AERL + 1 requests outstanding after open; no event without a cause. */
static void test_outstanding_after_open(void **state)
{
	struct env e;
	(void)state;

	env_open(&e, "size=1M", NULL);
	assert_int_equal(pnvme_ctrl_aer_outstanding(e.ctrl), EMU_AERS);
	assert_int_equal(pnvme_ctrl_ns_generation(e.ctrl), 0);
	pump(&e, 0);
	assert_int_equal(pnvme_ctrl_aer_outstanding(e.ctrl), EMU_AERS);
	env_close(&e);
}

static void count_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	(void)cqe;
	if (err == 0)
		(*(int *)arg)++;
}

/* admin_depth stays the application's: the requests use entries of their own. */
static void test_admin_depth_kept(void **state)
{
	struct pnvme_ctrl_opts o;
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	int done = 0;
	(void)state;

	assert_ok(pnvme_emu_create("emu:mode=step,size=1M", &emu));
	pnvme_ctrl_opts_default(&o);
	o.admin_depth = 3;
	assert_ok(pnvme_ctrl_open_emu(emu, &o, &ctrl));
	assert_int_equal(pnvme_ctrl_aer_outstanding(ctrl), EMU_AERS);
	for (int i = 0; i < 3; i++)
		assert_ok(pnvme_get_features_async(ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, count_cb,
						   &done));
	/* Exactly admin_depth: the spare entries of the AER reserve are not handed out. */
	assert_rc(pnvme_get_features_async(ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, count_cb, &done),
		  -EAGAIN);
	for (int i = 0; i < 200 && done < 3; i++) {
		(void)pnvme_emu_step(emu);
		assert_true(pnvme_ctrl_process_admin(ctrl) >= 0);
	}
	assert_int_equal(done, 3);
	assert_ok(pnvme_ctrl_close(ctrl));
	pnvme_emu_destroy(emu);
}

/* A namespace resized: updated in place, the generation moves, I/O follows the new size. */
static void test_ns_resize(void **state)
{
	struct pnvme_qpair *qp;
	uint8_t *buf;
	struct env e;
	(void)state;

	env_open(&e, "size=1M", NULL); /* 2048 blocks of 512 bytes */
	const struct pnvme_ns *ns = pnvme_ctrl_ns(e.ctrl, 1);
	assert_non_null(ns);
	assert_int_equal(ns->nlba, 2048);
	assert_ok(pnvme_qpair_create(e.ctrl, NULL, &qp));
	assert_ok(pnvme_dma_alloc(e.ctrl, 4096, 0, (void **)&buf, NULL));
	assert_ok(pnvme_write_sync(qp, ns, buf, 2000, 1, 0));

	assert_ok(pnvme_emu_ns_resize(e.emu, 1, 1024));
	pump(&e, 1);
	assert_ns_event(&e, 0, 1);
	assert_ptr_equal(pnvme_ctrl_ns(e.ctrl, 1), ns);
	assert_int_equal(ns->nlba, 1024);
	assert_int_equal(ns->removed, 0);
	assert_int_equal(pnvme_ctrl_ns_generation(e.ctrl), 1);
	assert_int_equal(pnvme_ctrl_aer_outstanding(e.ctrl), EMU_AERS);
	assert_rc(pnvme_write_sync(qp, ns, buf, 2000, 1, 0), -ERANGE);
	assert_ok(pnvme_write_sync(qp, ns, buf, 1023, 1, 0));

	/* Back to its full size: a second event (reading the log re-armed the type). */
	assert_ok(pnvme_emu_ns_resize(e.emu, 1, 2048));
	pump(&e, 2);
	assert_ns_event(&e, 1, 1);
	assert_int_equal(ns->nlba, 2048);
	assert_int_equal(pnvme_ctrl_ns_generation(e.ctrl), 2);

	pnvme_dma_free(e.ctrl, buf);
	assert_ok(pnvme_qpair_destroy(qp));
	env_close(&e);
}

/* Removed, then added back: the object is kept, marked removed, and reused. */
static void test_ns_remove_add(void **state)
{
	struct pnvme_qpair *qp;
	uint8_t *buf;
	struct env e;
	(void)state;

	env_open(&e, "size=1M,ns=2", NULL);
	assert_int_equal(pnvme_ctrl_nr_ns(e.ctrl), 2);
	const struct pnvme_ns *ns1 = pnvme_ctrl_ns(e.ctrl, 1);
	const struct pnvme_ns *ns2 = pnvme_ctrl_ns(e.ctrl, 2);
	assert_non_null(ns2);
	assert_ok(pnvme_qpair_create(e.ctrl, NULL, &qp));
	assert_ok(pnvme_dma_alloc(e.ctrl, 4096, 0, (void **)&buf, NULL));

	assert_ok(pnvme_emu_ns_remove(e.emu, 2));
	pump(&e, 1);
	assert_ns_event(&e, 0, 2);
	assert_int_equal(e.log.nr_ns_seen[0], 1); /* the list changed before the callback */
	assert_int_equal(pnvme_ctrl_nr_ns(e.ctrl), 1);
	assert_null(pnvme_ctrl_ns(e.ctrl, 2));
	assert_ptr_equal(pnvme_ctrl_ns_at(e.ctrl, 0), ns1);
	assert_null(pnvme_ctrl_ns_at(e.ctrl, 1));
	assert_int_equal(ns2->nsid, 2);        /* still readable */
	assert_int_equal(ns2->removed, 1);
	assert_int_equal(ns2->nlba, 0);
	assert_rc(pnvme_write_sync(qp, ns2, buf, 0, 1, 0), -ENODEV);
	assert_rc(pnvme_read_sync(qp, ns2, buf, 0, 1, 0), -ENODEV);
	assert_ok(pnvme_write_sync(qp, ns1, buf, 0, 1, 0));
	assert_int_equal(pnvme_ctrl_ns_generation(e.ctrl), 1);

	assert_ok(pnvme_emu_ns_add(e.emu, 2));
	pump(&e, 2);
	assert_ns_event(&e, 1, 2);
	assert_int_equal(pnvme_ctrl_nr_ns(e.ctrl), 2);
	assert_ptr_equal(pnvme_ctrl_ns(e.ctrl, 2), ns2);
	assert_ptr_equal(pnvme_ctrl_ns_at(e.ctrl, 1), ns2);
	assert_int_equal(ns2->removed, 0);
	assert_int_equal(ns2->nlba, 2048);
	assert_ok(pnvme_write_sync(qp, ns2, buf, 0, 1, 0));
	assert_int_equal(pnvme_ctrl_ns_generation(e.ctrl), 2);

	pnvme_dma_free(e.ctrl, buf);
	assert_ok(pnvme_qpair_destroy(qp));
	env_close(&e);
}

static void remove_ns3(struct pnvme_emu *emu)
{
	assert_ok(pnvme_emu_ns_remove(emu, 3)); /* before open: no event (not enabled yet) */
}

/* A namespace the controller did not have at open appears, after the others. */
static void test_ns_added(void **state)
{
	struct env e;
	(void)state;

	env_open(&e, "size=1M,ns=3", remove_ns3);
	assert_int_equal(pnvme_ctrl_nr_ns(e.ctrl), 2);
	assert_null(pnvme_ctrl_ns(e.ctrl, 3));
	const struct pnvme_ns *ns1 = pnvme_ctrl_ns(e.ctrl, 1), *ns2 = pnvme_ctrl_ns(e.ctrl, 2);
	pump(&e, 0);

	assert_ok(pnvme_emu_ns_add(e.emu, 3));
	pump(&e, 1);
	assert_int_equal(e.log.ev[0].type, PNVME_AER_TYPE_NOTICE);
	/* The list holds 3, and 3 was the one removed before open (the log is cumulative). */
	assert_int_equal(e.log.nsids[0][0], 3);
	assert_int_equal(pnvme_ctrl_nr_ns(e.ctrl), 3);
	const struct pnvme_ns *ns3 = pnvme_ctrl_ns_at(e.ctrl, 2);
	assert_non_null(ns3);
	assert_int_equal(ns3->nsid, 3);
	assert_int_equal(ns3->nlba, 2048);
	assert_ptr_equal(pnvme_ctrl_ns_at(e.ctrl, 0), ns1);
	assert_ptr_equal(pnvme_ctrl_ns_at(e.ctrl, 1), ns2);
	assert_int_equal(pnvme_ctrl_ns_generation(e.ctrl), 1);
	env_close(&e);
}

/* SMART critical warnings reach the callback, each kind once the log was read. */
static void test_smart_warning(void **state)
{
	struct env e;
	(void)state;

	env_open(&e, "size=1M", NULL);
	assert_ok(pnvme_emu_set_critical_warning(e.emu, PNVME_SMART_CW_TEMPERATURE));
	pump(&e, 1);
	assert_int_equal(e.log.ev[0].type, PNVME_AER_TYPE_SMART);
	assert_int_equal(e.log.ev[0].info, PNVME_AER_SMART_TEMPERATURE);
	assert_int_equal(e.log.ev[0].log_page, PNVME_LOG_SMART);
	assert_int_equal(e.log.ev[0].log_err, 0);
	assert_int_equal(e.log.ev[0].log_len, 512);
	assert_int_equal(e.log.ev[0].critical_warning, PNVME_SMART_CW_TEMPERATURE);

	assert_ok(pnvme_emu_set_critical_warning(e.emu, PNVME_SMART_CW_TEMPERATURE |
							   PNVME_SMART_CW_SPARE));
	pump(&e, 2);
	assert_int_equal(e.log.ev[1].type, PNVME_AER_TYPE_SMART);
	assert_int_equal(e.log.ev[1].info, PNVME_AER_SMART_SPARE);
	assert_int_equal(e.log.ev[1].critical_warning,
			 PNVME_SMART_CW_TEMPERATURE | PNVME_SMART_CW_SPARE);
	assert_int_equal(pnvme_ctrl_aer_outstanding(e.ctrl), EMU_AERS);
	assert_int_equal(pnvme_ctrl_ns_generation(e.ctrl), 0);
	env_close(&e);
}

/* A reset ends the requests with no event, and posts (and enables) them again. */
static void test_reset(void **state)
{
	struct env e;
	(void)state;

	env_open(&e, "size=1M,ns=2", NULL);
	assert_ok(pnvme_ctrl_reset(e.ctrl));
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	assert_int_equal(pnvme_ctrl_aer_outstanding(e.ctrl), EMU_AERS);
	pump(&e, 0);
	assert_ok(pnvme_ctrl_reset(e.ctrl));
	pump(&e, 0);
	assert_int_equal(pnvme_ctrl_aer_outstanding(e.ctrl), EMU_AERS);
	/* Events are enabled again after the reset (it cleared the configuration). */
	assert_ok(pnvme_emu_ns_remove(e.emu, 2));
	pump(&e, 1);
	assert_ns_event(&e, 0, 2);
	assert_int_equal(pnvme_ctrl_nr_ns(e.ctrl), 1);
	env_close(&e);
}

/* An event raised while nothing polls waits; close with requests outstanding is quiet. */
static void test_close_outstanding(void **state)
{
	struct env e;
	(void)state;

	env_open(&e, "size=1M,ns=2", NULL);
	assert_int_equal(pnvme_ctrl_aer_outstanding(e.ctrl), EMU_AERS);
	assert_ok(pnvme_emu_ns_remove(e.emu, 2)); /* completes a request; nobody reaps it */
	env_close(&e);
	assert_int_equal(e.log.n, 0);
}

/* Without a callback the namespace list still follows the controller. */
static void test_no_callback(void **state)
{
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	(void)state;

	assert_ok(pnvme_emu_create("emu:mode=step,size=1M,ns=2", &emu));
	assert_ok(pnvme_ctrl_open_emu(emu, NULL, &ctrl));
	assert_ok(pnvme_emu_ns_remove(emu, 1));
	for (int i = 0; i < 200 && pnvme_ctrl_ns_generation(ctrl) == 0; i++) {
		(void)pnvme_emu_step(emu);
		assert_true(pnvme_ctrl_process_admin(ctrl) >= 0);
	}
	assert_int_equal(pnvme_ctrl_ns_generation(ctrl), 1);
	assert_int_equal(pnvme_ctrl_nr_ns(ctrl), 1);
	assert_int_equal(pnvme_ctrl_ns_at(ctrl, 0)->nsid, 2);
	assert_int_equal(pnvme_ctrl_aer_outstanding(ctrl), EMU_AERS);
	assert_ok(pnvme_ctrl_close(ctrl));
	pnvme_emu_destroy(emu);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outstanding_after_open),
		cmocka_unit_test(test_admin_depth_kept),
		cmocka_unit_test(test_ns_resize),
		cmocka_unit_test(test_ns_remove_add),
		cmocka_unit_test(test_ns_added),
		cmocka_unit_test(test_smart_warning),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_close_outstanding),
		cmocka_unit_test(test_no_callback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
