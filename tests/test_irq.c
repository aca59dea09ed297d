/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_irq.c - queue pairs with interrupts (PNVME_QPAIR_INTERRUPTS): the CQ
 * created with IEN = 1 and IV = its queue id (NVMe Base 2.0 §5.4), the
 * emulated controller signalling the vector's eventfd when it posts to it.
 *
 * Covers: the eventfd stays quiet until the controller posts, becomes
 * readable when it does (step mode: after the step; thread mode: a thread
 * sleeping in poll() wakes for every one of many commands, none missed with
 * the ack / poll / sleep order the header gives), acks consume it; after a
 * controller reset the re-created CQ signals the same eventfd; a queue pair
 * without the flag has no eventfd (-ENOTSUP) and its CQ raises nothing;
 * queue pairs with and without the flag side by side, destroyed and made again.
 */
#include <errno.h>
#include <poll.h>
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

struct env {
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	const struct pnvme_ns *ns;
	void *buf;
};

static void env_open(struct env *e, const char *spec, uint32_t qflags)
{
	struct pnvme_ctrl_opts co;
	struct pnvme_qpair_opts qo;

	memset(e, 0, sizeof(*e));
	assert_ok(pnvme_emu_create(spec, &e->emu));
	pnvme_ctrl_opts_default(&co);
	co.io_timeout_ms = 5000;
	assert_ok(pnvme_ctrl_open_emu(e->emu, &co, &e->ctrl));
	e->ns = pnvme_ctrl_ns(e->ctrl, 1);
	assert_non_null(e->ns);
	pnvme_qpair_opts_default(&qo);
	qo.depth = 8;
	qo.flags = qflags;
	assert_ok(pnvme_qpair_create(e->ctrl, &qo, &e->qp));
	assert_ok(pnvme_dma_alloc(e->ctrl, e->ns->lba_size, 0, &e->buf, NULL));
}

static void env_close(struct env *e)
{
	pnvme_dma_free(e->ctrl, e->buf);
	assert_ok(pnvme_qpair_destroy(e->qp));
	assert_ok(pnvme_ctrl_close(e->ctrl));
	pnvme_emu_destroy(e->emu);
}

static void io_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	(void)cqe;
	*(int *)arg = err == 0 ? 1 : -1;
}

/* Is the eventfd readable within `ms`? */
static bool fd_ready(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* Step mode: nothing before the controller posts; readable after; acks consume. */
static void test_step_signals(void **state)
{
	struct env e;
	int done = 0, fd;

	(void)state;
	env_open(&e, "emu:size=1M,mode=step", PNVME_QPAIR_INTERRUPTS);
	fd = pnvme_qpair_event_fd(e.qp);
	assert_true(fd >= 0);
	assert_int_equal(pnvme_qpair_event_ack(e.qp), 0);
	assert_false(fd_ready(fd, 0));

	test_block_fill(e.buf, e.ns->lba_size, 3, 7);
	assert_ok(pnvme_write(e.qp, e.ns, e.buf, 3, 1, 0, io_cb, &done));
	pnvme_qpair_flush(e.qp);
	assert_false(fd_ready(fd, 0));           /* submitted, not completed */
	pnvme_emu_step(e.emu);
	assert_true(fd_ready(fd, 0));            /* posted: the vector fired */
	assert_int_equal(pnvme_qpair_event_ack(e.qp), 1);
	assert_int_equal(pnvme_qpair_event_ack(e.qp), 0);
	assert_false(fd_ready(fd, 0));
	assert_int_equal(pnvme_qpair_poll(e.qp, 0), 1);
	assert_int_equal(done, 1);

	/* Several completions in one step: one event, every entry reaped. */
	int d[4] = { 0 };
	for (int i = 0; i < 4; i++)
		assert_ok(pnvme_read(e.qp, e.ns, e.buf, (uint64_t)i, 1, 0, io_cb, &d[i]));
	pnvme_qpair_flush(e.qp);
	pnvme_emu_step(e.emu);
	assert_int_equal(pnvme_qpair_event_ack(e.qp), 1);
	assert_int_equal(pnvme_qpair_poll(e.qp, 0), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(d[i], 1);
	env_close(&e);
}

/*
 * Thread mode: sleep in poll() on the eventfd for each of many commands
 * (ack, poll the queue pair, sleep only if it reaped nothing): every
 * completion wakes the sleeper; none is missed (the poll() has a generous
 * timeout, and a wake-up by timeout is counted and must not happen).
 */
static void test_thread_sleeper(void **state)
{
	struct env e;
	unsigned timeouts = 0;
	int fd;

	(void)state;
	env_open(&e, "emu:size=1M,mode=thread", PNVME_QPAIR_INTERRUPTS);
	fd = pnvme_qpair_event_fd(e.qp);
	assert_true(fd >= 0);
	for (uint64_t i = 0; i < 200; i++) {
		int done = 0;

		if (i % 2 == 0) {
			test_block_fill(e.buf, e.ns->lba_size, i, 11);
			assert_ok(pnvme_write(e.qp, e.ns, e.buf, i, 1, 0, io_cb, &done));
		} else {
			memset(e.buf, 0, e.ns->lba_size);
			assert_ok(pnvme_read(e.qp, e.ns, e.buf, i - 1, 1, 0, io_cb, &done));
		}
		pnvme_qpair_flush(e.qp);
		while (!done) {
			assert_true(pnvme_qpair_event_ack(e.qp) >= 0);
			if (pnvme_qpair_poll(e.qp, 0) > 0)
				break;
			if (!fd_ready(fd, 10000))
				timeouts++;
		}
		assert_int_equal(done, 1);
		if (i % 2)
			assert_true(test_block_is(e.buf, e.ns->lba_size, i - 1, 11));
	}
	assert_int_equal(timeouts, 0);
	env_close(&e);
}

/* After a controller reset the re-created CQ signals the same eventfd. */
static void test_reset_keeps_vector(void **state)
{
	struct env e;
	int done = 0, fd;

	(void)state;
	env_open(&e, "emu:size=1M,mode=step", PNVME_QPAIR_INTERRUPTS);
	fd = pnvme_qpair_event_fd(e.qp);
	assert_ok(pnvme_ctrl_reset(e.ctrl));
	assert_int_equal(pnvme_qpair_event_fd(e.qp), fd);
	/* The queue pair re-creates its queues in its next poll (and resubmits). */
	assert_ok(pnvme_read(e.qp, e.ns, e.buf, 0, 1, 0, io_cb, &done));
	pnvme_qpair_flush(e.qp);
	assert_int_equal(pnvme_qpair_poll(e.qp, 0), 0);
	(void)pnvme_qpair_event_ack(e.qp);
	pnvme_emu_step(e.emu);
	assert_true(fd_ready(fd, 0));
	assert_int_equal(pnvme_qpair_poll(e.qp, 0), 1);
	assert_int_equal(done, 1);
	env_close(&e);
}

/* Without the flag: no eventfd, and the API says so. */
static void test_polled_has_none(void **state)
{
	struct env e;

	(void)state;
	env_open(&e, "emu:size=1M,mode=step", 0);
	assert_int_equal(pnvme_qpair_event_fd(e.qp), -ENOTSUP);
	assert_int_equal(pnvme_qpair_event_ack(e.qp), -EINVAL);
	assert_int_equal(pnvme_qpair_event_fd(NULL), -EINVAL);
	assert_int_equal(pnvme_qpair_event_ack(NULL), -EINVAL);
	env_close(&e);
}

/* Queue pairs with and without interrupts side by side; destroy and re-create. */
static void test_mixed_and_recreate(void **state)
{
	struct pnvme_qpair_opts qo;
	struct pnvme_qpair *plain, *again;
	struct env e;
	int d1 = 0, d2 = 0;

	(void)state;
	env_open(&e, "emu:size=1M,mode=step", PNVME_QPAIR_INTERRUPTS);
	pnvme_qpair_opts_default(&qo);
	qo.depth = 4;
	assert_ok(pnvme_qpair_create(e.ctrl, &qo, &plain));
	(void)pnvme_qpair_event_ack(e.qp);
	assert_ok(pnvme_read(plain, e.ns, e.buf, 0, 1, 0, io_cb, &d1));
	pnvme_qpair_flush(plain);
	pnvme_emu_step(e.emu);
	assert_false(fd_ready(pnvme_qpair_event_fd(e.qp), 0)); /* not its CQ */
	assert_int_equal(pnvme_qpair_poll(plain, 0), 1);
	assert_ok(pnvme_qpair_destroy(plain));

	qo.flags = PNVME_QPAIR_INTERRUPTS;
	assert_ok(pnvme_qpair_create(e.ctrl, &qo, &again));
	assert_true(pnvme_qpair_event_fd(again) >= 0);
	assert_ok(pnvme_read(again, e.ns, e.buf, 0, 1, 0, io_cb, &d2));
	pnvme_qpair_flush(again);
	pnvme_emu_step(e.emu);
	assert_true(fd_ready(pnvme_qpair_event_fd(again), 0));
	assert_false(fd_ready(pnvme_qpair_event_fd(e.qp), 0));
	assert_int_equal(pnvme_qpair_poll(again, 0), 1);
	assert_int_equal(d2, 1);
	assert_ok(pnvme_qpair_destroy(again));
	env_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_step_signals),
		cmocka_unit_test(test_thread_sleeper),
		cmocka_unit_test(test_reset_keeps_vector),
		cmocka_unit_test(test_polled_has_none),
		cmocka_unit_test(test_mixed_and_recreate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
