/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_null.c - the null device ("null:", pnvme/emu.h): the emulator with
 * discard=1 and no thread. Opened by address through pnvme_ctrl_open(): it
 * is a controller to the core (Identify, I/O queues), Read returns zeroes
 * after any Write, Write / Flush / Write Zeroes / DSM succeed, the
 * synchronous calls complete on their own (the library steps it while it
 * waits), an asynchronous command completes inline in the thread that steps
 * it, no thread is ever started, and the spec's null defaults and refusals.
 * Last, pnvme-tgt serving a null: namespace to pnvme's TCP host (the target's
 * poller steps it).
 */
#include <dirent.h>
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

#if defined(__SANITIZE_THREAD__)
#define TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN_BUILD 1
#endif
#endif
#ifndef TSAN_BUILD
#define TSAN_BUILD 0
#endif

#define NQN  "nqn.2024-01.org.pnvme:null-test"
#define HOST "nqn.2024-01.org.pnvme:null-host"

/* Threads of this process (/proc/self/task entries). */
static unsigned nr_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	unsigned n = 0;

	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

struct env {
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	const struct pnvme_ns *ns;
	uint8_t *buf;
};

static void env_open(struct env *e, const char *addr)
{
	memset(e, 0, sizeof(*e));
	assert_ok(pnvme_ctrl_open(addr, NULL, &e->ctrl));
	assert_ok(pnvme_qpair_create(e->ctrl, NULL, &e->qp));
	e->ns = pnvme_ctrl_ns(e->ctrl, 1);
	assert_non_null(e->ns);
	assert_ok(pnvme_dma_alloc(e->ctrl, 64 * 1024, 0, (void **)&e->buf, NULL));
}

static void env_close(struct env *e)
{
	pnvme_dma_free(e->ctrl, e->buf);
	pnvme_qpair_destroy(e->qp);
	pnvme_ctrl_close(e->ctrl);
}

static bool all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* Identify through the core: the null defaults and the geometry asked for. */
static void test_identify(void **state)
{
	struct env e;
	unsigned before = nr_threads();

	(void)state;
	env_open(&e, "null:size=1G,bs=4096");
	assert_int_equal(nr_threads(), before); /* no thread: not at open, not after */
	assert_non_null(pnvme_ctrl_id(e.ctrl));
	assert_memory_equal(pnvme_ctrl_id(e.ctrl)->mn, "pnvme null device", 17);
	assert_int_equal(e.ns->lba_size, 4096);
	assert_int_equal(e.ns->nlba, (1ull << 30) / 4096);
	assert_non_null(pnvme_ctrl_emu(e.ctrl));
	assert_false(pnvme_emu_threaded(pnvme_ctrl_emu(e.ctrl)));
	assert_true(pnvme_emu_config(pnvme_ctrl_emu(e.ctrl))->discard);
	env_close(&e);

	/* "null" alone: 1 GiB of 512-byte blocks */
	env_open(&e, "null");
	assert_int_equal(e.ns->lba_size, 512);
	assert_int_equal(e.ns->nlba, (1ull << 30) / 512);
	assert_int_equal(nr_threads(), before);
	env_close(&e);
}

/* The synchronous API: writes are dropped, reads return zeroes, the rest succeeds. */
static void test_sync_io(void **state)
{
	struct env e;
	struct pnvme_dsm_range r = { .slba = 8, .nlb = 8 };

	(void)state;
	env_open(&e, "null:size=64M,bs=512");
	memset(e.buf, 0xa5, 8192);
	assert_ok(pnvme_write_sync(e.qp, e.ns, e.buf, 0, 16, 0));
	memset(e.buf, 0xff, 8192);
	assert_ok(pnvme_read_sync(e.qp, e.ns, e.buf, 0, 16, 0));
	assert_true(all_zero(e.buf, 8192));
	assert_ok(pnvme_flush_sync(e.qp, e.ns));
	assert_ok(pnvme_write_zeroes_sync(e.qp, e.ns, 0, 128, 0));
	assert_ok(pnvme_dsm_sync(e.qp, e.ns, &r, 1, PNVME_DSM_AD));
	/* the last block, and one past it (refused before the device sees it) */
	assert_ok(pnvme_read_sync(e.qp, e.ns, e.buf, e.ns->nlba - 1, 1, 0));
	assert_rc(pnvme_read_sync(e.qp, e.ns, e.buf, e.ns->nlba, 1, 0), -ERANGE);
	env_close(&e);
}

static void count_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	int *n = arg;

	if (err == 0 && cqe && PNVME_CQE_STATUS(cqe) == 0)
		(*n)++;
	else
		*n = -1000;
}

/*
 * Asynchronous I/O: nothing completes until the device is stepped; one step
 * completes every command posted (32 here), on this thread; the poll that
 * follows reaps them all.
 */
static void test_async_step(void **state)
{
	struct env e;
	struct pnvme_emu *emu;
	int done = 0;

	(void)state;
	env_open(&e, "null:size=16M");
	emu = pnvme_ctrl_emu(e.ctrl);
	for (unsigned i = 0; i < 32; i++) {
		memset(e.buf + i * 1024, 0x5a, 1024);
		if (i % 2)
			assert_ok(pnvme_read(e.qp, e.ns, e.buf + i * 1024, i * 2, 2, 0, count_cb,
					     &done));
		else
			assert_ok(pnvme_write(e.qp, e.ns, e.buf + i * 1024, i * 2, 2, 0, count_cb,
					      &done));
	}
	assert_int_equal(pnvme_qpair_poll(e.qp, 0), 0); /* rings; nothing ran yet */
	assert_int_equal(done, 0);
	assert_int_equal(pnvme_emu_step(emu), 32);
	assert_int_equal(pnvme_qpair_poll(e.qp, 0), 32);
	assert_int_equal(done, 32);
	for (unsigned i = 1; i < 32; i += 2)
		assert_true(all_zero(e.buf + i * 1024, 1024));
	env_close(&e);
}

/* The spec: null defaults, "bs", the refusals of what a null device cannot have. */
static void test_spec(void **state)
{
	struct pnvme_emu_config c;
	struct pnvme_ctrl *ctrl = NULL;

	(void)state;
	assert_ok(pnvme_emu_parse("null", &c));
	assert_true(c.discard);
	assert_false(c.threaded);
	assert_int_equal(c.ns_size, 1ull << 30);
	assert_ok(pnvme_emu_parse("null:size=2G,bs=4096,nq=4,mode=thread", &c));
	assert_true(c.discard && c.threaded);
	assert_int_equal(c.lba_size, 4096);
	assert_int_equal(c.nr_io_queues, 4);
	assert_ok(pnvme_emu_parse("emu:size=1M,discard=1,mode=step", &c));
	assert_true(c.discard);
	assert_ok(pnvme_emu_parse("emu:size=1M", &c));
	assert_false(c.discard);
	assert_rc(pnvme_emu_parse("null:bs=100", &c), -EINVAL);
	assert_rc(pnvme_emu_parse("null:ms=8", &c), -EINVAL);
	assert_non_null(strstr(pnvme_last_error(), "discard"));
	assert_rc(pnvme_emu_parse("null:file=/tmp/x", &c), -EINVAL);
	assert_rc(pnvme_emu_parse("null:discard=2", &c), -EINVAL);
	assert_rc(pnvme_emu_parse("nullx", &c), -EINVAL);
	assert_rc(pnvme_ctrl_open("null:size=0", NULL, &ctrl), -EINVAL);
	assert_null(ctrl);
	assert_rc(pnvme_ctrl_open("nul", NULL, &ctrl), -EINVAL);
}

/* A thread-less null: namespace behind pnvme-tgt, read and written by pnvme's TCP host. */
static void test_tgt_null(void **state)
{
	struct pnvme_tgt_opts o;
	struct pnvme_tgt *tgt;
	struct pnvme_ctrl *be, *host;
	struct pnvme_qpair *qp, *qp2;
	const struct pnvme_ns *ns;
	char addr[256];
	uint8_t *buf;
	unsigned before;

	(void)state;
	assert_ok(pnvme_ctrl_open("null:size=32M", NULL, &be));
	pnvme_tgt_opts_default(&o);
	o.listen = "127.0.0.1:0";
	o.nr_threads = 2; /* two pollers stepping one device (its lock serialises them) */
	assert_ok(pnvme_tgt_create(&o, &tgt));
	assert_ok(pnvme_tgt_add_subsys(tgt, NQN));
	assert_int_equal(pnvme_tgt_add_ns(tgt, NQN, 1, be, 1), 1);
	assert_ok(pnvme_tgt_allow_host(tgt, NQN, HOST));
	before = nr_threads();
	assert_ok(pnvme_tgt_start(tgt));
	/* the pollers; the device has none (ThreadSanitizer adds its own thread at the first start) */
	unsigned started = nr_threads() - before;
	assert_true(started == 2 || (TSAN_BUILD && started == 3));
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u/%s?hostnqn=%s", pnvme_tgt_port(tgt), NQN,
		 HOST);
	assert_ok(pnvme_ctrl_open(addr, NULL, &host));
	ns = pnvme_ctrl_ns(host, 1);
	assert_non_null(ns);
	assert_int_equal(ns->nlba, (32u << 20) / 512);
	assert_ok(pnvme_qpair_create(host, NULL, &qp));
	assert_ok(pnvme_dma_alloc(host, 65536, 0, (void **)&buf, NULL));
	for (unsigned i = 0; i < 64; i++) {
		memset(buf, 0x3c, 65536);
		assert_ok(pnvme_write_sync(qp, ns, buf, i * 128, 128, 0));
		memset(buf, 0xff, 65536);
		assert_ok(pnvme_read_sync(qp, ns, buf, i * 128, 128, 0));
		assert_true(all_zero(buf, 65536));
	}
	assert_ok(pnvme_flush_sync(qp, ns));
	assert_ok(pnvme_write_zeroes_sync(qp, ns, 0, 8, 0));
	/* two connections (one per poller), 16 reads in flight on each */
	assert_ok(pnvme_qpair_create(host, NULL, &qp2));
	for (unsigned round = 0; round < 50; round++) {
		int done = 0;
		uint64_t end = 0;

		memset(buf, 0xee, 65536);
		for (unsigned i = 0; i < 16; i++) {
			assert_ok(pnvme_read(qp, ns, buf + i * 2048, i * 4, 4, 0, count_cb, &done));
			assert_ok(pnvme_read(qp2, ns, buf + 32768 + i * 2048, i * 4 + 64, 4, 0,
					     count_cb, &done));
		}
		while (done >= 0 && done < 32 && end++ < 100000000ull) {
			assert_true(pnvme_qpair_poll(qp, 0) >= 0);
			assert_true(pnvme_qpair_poll(qp2, 0) >= 0);
		}
		assert_int_equal(done, 32);
		assert_true(all_zero(buf, 65536));
	}
	pnvme_qpair_destroy(qp2);
	pnvme_dma_free(host, buf);
	pnvme_qpair_destroy(qp);
	pnvme_ctrl_close(host);
	pnvme_tgt_destroy(tgt);
	pnvme_ctrl_close(be);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identify),
		cmocka_unit_test(test_sync_io),
		cmocka_unit_test(test_async_step),
		cmocka_unit_test(test_spec),
		cmocka_unit_test(test_tgt_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
