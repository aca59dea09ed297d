/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_qpair.c - I/O queue pairs and NVM I/O commands (src/pcie/qpair.c,
 * src/pcie/ring.h, src/core/io.c), driven against the emulated controller.
 * Most tests use step mode, so the device runs only when the test says so:
 * submit (and flush), pnvme_emu_step(), then poll. Sync helpers step it
 * themselves through the library's wait hook. The last tests run the
 * emulator on its own thread.
 *
 * Covers: queue creation limits, data round trips (512 and 4096-byte LBAs,
 * multi-page PRP lists, unaligned buffers), phase wrap with small and large
 * rings, queue full, doorbell stride, out-of-order completions, error status
 * propagation, MDTS and argument checks, timeouts, teardown with I/O
 * outstanding, Flush / Write Zeroes / DSM / passthrough, doorbell batching.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <pnvme/pnvme.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

#include "test_helpers.h"

/* One controller on a stepped (or threaded) emulator, with one queue pair on NSID 1. */
struct env {
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	const struct pnvme_ns *ns;
};

/* Controller options for the next env_open() (NULL: defaults). */
static const struct pnvme_ctrl_opts *env_copts;

/* "OPTIONS" gets "emu:mode=step," in front unless it names a mode itself. */
static void env_open(struct env *e, const char *opts, const struct pnvme_qpair_opts *qo)
{
	char spec[256];

	memset(e, 0, sizeof(*e));
	snprintf(spec, sizeof(spec), "emu:%s%s%s", strstr(opts, "mode=") ? "" : "mode=step",
		 strstr(opts, "mode=") || !*opts ? "" : ",", opts);
	assert_rc(pnvme_emu_create(spec, &e->emu), 0);
	assert_ok(pnvme_ctrl_open_emu(e->emu, env_copts, &e->ctrl));
	e->ns = pnvme_ctrl_ns(e->ctrl, 1);
	assert_non_null(e->ns);
	assert_ok(pnvme_qpair_create(e->ctrl, qo, &e->qp));
	assert_non_null(e->qp);
}

static void env_close(struct env *e)
{
	if (e->qp)
		assert_ok(pnvme_qpair_destroy(e->qp));
	assert_ok(pnvme_ctrl_close(e->ctrl));
	pnvme_emu_destroy(e->emu);
	memset(e, 0, sizeof(*e));
}

static void *dma_buf(struct env *e, size_t len)
{
	void *p = NULL;
	assert_ok(pnvme_dma_alloc(e->ctrl, len, 0, &p, NULL));
	return p;
}

static uint64_t emu_commands(struct env *e)
{
	struct pnvme_emu_stats st;
	pnvme_emu_get_stats(e->emu, &st);
	return st.commands;
}

/* Deterministic pattern: every byte depends on the seed and its position. */
static void fill(void *buf, size_t len, uint32_t seed)
{
	uint8_t *p = buf;
	uint32_t x = seed * 2654435761u + 12345u;
	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
}

static void assert_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	for (size_t i = 0; i < len; i++)
		if (p[i] != 0)
			fail_msg("byte %zu is 0x%02x, expected 0", i, p[i]);
}

/* The emulator's media at [slba, slba + nlb) of NSID 1 equals `want`. */
static void assert_media(struct env *e, uint64_t slba, uint32_t nlb, const void *want)
{
	size_t len = (size_t)nlb * e->ns->lba_size;
	void *m = malloc(len);
	assert_non_null(m);
	assert_ok(pnvme_emu_media_read(e->emu, 1, slba * e->ns->lba_size, m, len));
	assert_memory_equal(m, want, len);
	free(m);
}

/* A completion record. `seq` is the order in which callbacks ran. */
struct cpl {
	int calls;
	int err;
	int seq;
	int busy; /* owned by the test loops that reuse a struct cpl */
	struct pnvme_cqe cqe;
};

static int cpl_seq;

static void cpl_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct cpl *c = arg;
	c->calls++;
	c->err = err;
	c->seq = cpl_seq++;
	c->cqe = *cqe;
}

/* Flush, step the device, poll; repeat until `want` completions were reaped (bounded). */
static int reap(struct env *e, int want)
{
	int got = 0;
	for (int i = 0; i < 1000 && got < want; i++) {
		pnvme_qpair_flush(e->qp);
		(void)pnvme_emu_step(e->emu);
		int rc = pnvme_qpair_poll(e->qp, 0);
		assert_true(rc >= 0);
		got += rc;
	}
	assert_int_equal(got, want);
	return got;
}

/* Run `fn` in a child process: a driver bug that crashes cannot take other tests down. */
static int run_in_child(int (*fn)(void))
{
	pid_t pid = fork();
	int st = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		/* cmocka's handlers would resume the test runner in the child. */
		static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS };
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			signal(sigs[i], SIG_DFL);
		_exit(fn());
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Timing on a loaded machine: the test process may not run for hundreds of
 * milliseconds. Lower bounds (a timeout must not fire early) stay tight;
 * upper bounds are the configured timeouts plus SLACK_S; requests that must
 * not time out get NO_TIMEOUT_MS.
 */
#define SLACK_S       1.0
#define NO_TIMEOUT_MS 5000u

/* ------------------------------------------------------------------------ */
/* Creation                                                                 */
/* ------------------------------------------------------------------------ */

static void test_create_defaults(void **state)
{
	struct pnvme_qpair_opts o;
	struct pnvme_qpair_stats st;
	struct env e;
	(void)state;

	pnvme_qpair_opts_default(&o);
	assert_int_equal(o.depth, 0);
	assert_int_equal(o.timeout_ms, 0);
	assert_int_equal(o.flags, 0);
	env_open(&e, "size=1M", NULL);
	assert_int_equal(pnvme_qpair_id(e.qp), 1);
	assert_int_equal(pnvme_qpair_depth(e.qp), 255); /* 256-entry rings, one entry kept free */
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	assert_false(pnvme_qpair_cq_ready(e.qp));
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.submitted + st.completed + st.sq_doorbells + st.cq_doorbells, 0);
	/* An empty poll reaps nothing and counts as empty. */
	assert_int_equal(pnvme_qpair_poll(e.qp, 0), 0);
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.polls, 1);
	assert_int_equal(st.empty_polls, 1);
	assert_int_equal(st.cq_doorbells, 0);
	assert_int_equal(st.sq_doorbells, 0);
	pnvme_qpair_reset_stats(e.qp);
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.polls, 0);
	env_close(&e);

	/* MQES below the default depth: the default is capped, not refused. */
	env_open(&e, "size=1M,mqes=31", NULL);
	assert_int_equal(pnvme_qpair_depth(e.qp), 31);
	env_close(&e);
}

static void test_create_limits(void **state)
{
	struct pnvme_qpair_opts o;
	struct pnvme_qpair *qp = NULL;
	struct env e;
	(void)state;

	env_open(&e, "size=1M,mqes=63", NULL); /* 64 entries at most: depth 63 */
	uint64_t cmds = emu_commands(&e);
	pnvme_qpair_opts_default(&o);
	o.depth = 64;
	assert_rc(pnvme_qpair_create(e.ctrl, &o, &qp), -EINVAL);
	assert_null(qp);
	assert_non_null(strstr(pnvme_last_error(), "depth"));
	o.depth = 4;
	o.flags = 0x80;
	assert_rc(pnvme_qpair_create(e.ctrl, &o, &qp), -EINVAL);
	assert_rc(pnvme_qpair_create(e.ctrl, &o, NULL), -EINVAL);
	/* None of those reached the device. */
	assert_int_equal(emu_commands(&e), cmds);

	o.flags = 0;
	o.depth = 63;
	assert_ok(pnvme_qpair_create(e.ctrl, &o, &qp));
	assert_int_equal(pnvme_qpair_depth(qp), 63);
	assert_int_equal(pnvme_qpair_id(qp), 2);
	assert_ok(pnvme_qpair_destroy(qp));
	o.depth = 1;
	assert_ok(pnvme_qpair_create(e.ctrl, &o, &qp));
	assert_int_equal(pnvme_qpair_depth(qp), 1);
	assert_ok(pnvme_qpair_destroy(qp));
	assert_int_equal(pnvme_qpair_destroy(NULL), 0);
	env_close(&e);
}

static int create_null_ctrl_child(void)
{
	struct pnvme_qpair *qp = NULL;
	return pnvme_qpair_create(NULL, NULL, &qp) == -EINVAL ? 0 : 1;
}

/* pnvme_qpair_create(NULL, ...) must fail with -EINVAL, not crash. */
static void test_create_null_ctrl(void **state)
{
	(void)state;
	int st = run_in_child(create_null_ctrl_child);
	if (st != 0)
		fail_msg("pnvme_qpair_create(NULL, NULL, &qp): child status %d (139 = SIGSEGV: "
			 "DRIVER BUG qpair.c pnvme_qpair_create reads ctrl->cap before the "
			 "NULL check)", st);
}

static void test_create_too_many(void **state)
{
	struct pnvme_qpair *qp2 = NULL, *qp3 = NULL, *again = NULL;
	struct env e;
	(void)state;

	env_open(&e, "size=1M,nq=2", NULL);
	assert_int_equal(pnvme_ctrl_max_io_queues(e.ctrl), 2);
	assert_ok(pnvme_qpair_create(e.ctrl, NULL, &qp2));
	assert_int_equal(pnvme_qpair_id(qp2), 2);
	uint64_t cmds = emu_commands(&e);
	assert_rc(pnvme_qpair_create(e.ctrl, NULL, &qp3), -EBUSY);
	assert_null(qp3);
	assert_int_equal(emu_commands(&e), cmds);

	/* Destroy queue 1: the next create reuses its id, and it works. */
	assert_ok(pnvme_qpair_destroy(e.qp));
	e.qp = NULL;
	assert_ok(pnvme_qpair_create(e.ctrl, NULL, &again));
	assert_int_equal(pnvme_qpair_id(again), 1);
	e.qp = again;
	void *buf = dma_buf(&e, 4096);
	fill(buf, 512, 1);
	assert_ok(pnvme_write_sync(again, e.ns, buf, 3, 1, 0));
	memset(buf, 0, 512);
	assert_ok(pnvme_read_sync(qp2, e.ns, buf, 3, 1, 0));
	uint8_t want[512];
	fill(want, sizeof(want), 1);
	assert_memory_equal(buf, want, 512);
	pnvme_dma_free(e.ctrl, buf);
	assert_ok(pnvme_qpair_destroy(qp2));
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* Data round trips                                                         */
/* ------------------------------------------------------------------------ */

/* Write then read `nlb` blocks at `slba` from buffers at byte offset `off`, async. */
static void roundtrip(struct env *e, uint64_t slba, uint32_t nlb, size_t off, uint32_t seed)
{
	size_t len = (size_t)nlb * e->ns->lba_size;
	uint8_t *wbuf = dma_buf(e, len + off);
	uint8_t *rbuf = dma_buf(e, len + off);
	struct cpl w = { 0 }, r = { 0 };

	fill(wbuf + off, len, seed);
	memset(rbuf, 0xcc, len + off);
	assert_ok(pnvme_write(e->qp, e->ns, wbuf + off, slba, nlb, 0, cpl_cb, &w));
	reap(e, 1);
	assert_int_equal(w.calls, 1);
	assert_rc(w.err, 0);
	assert_int_equal(w.cqe.sqid, pnvme_qpair_id(e->qp));
	assert_media(e, slba, nlb, wbuf + off);
	assert_ok(pnvme_read(e->qp, e->ns, rbuf + off, slba, nlb, 0, cpl_cb, &r));
	reap(e, 1);
	assert_int_equal(r.calls, 1);
	assert_rc(r.err, 0);
	assert_memory_equal(rbuf + off, wbuf + off, len);
	/* Nothing written outside the buffer. */
	for (size_t i = 0; i < off; i++)
		assert_int_equal(rbuf[i], 0xcc);
	pnvme_dma_free(e->ctrl, wbuf);
	pnvme_dma_free(e->ctrl, rbuf);
}

static void test_roundtrip_512(void **state)
{
	struct env e;
	(void)state;

	env_open(&e, "size=4M,lba=512", NULL);
	assert_int_equal(e.ns->lba_size, 512);
	roundtrip(&e, 0, 1, 0, 1);
	roundtrip(&e, 1, 7, 0, 2);
	roundtrip(&e, 100, 8, 0, 3);
	roundtrip(&e, e.ns->nlba - 1, 1, 0, 4);                /* the last block */
	roundtrip(&e, 1000, e.ns->max_lbas, 0, 5);             /* 128 KiB: a PRP list */
	env_close(&e);
}

static void test_roundtrip_4096(void **state)
{
	struct env e;
	(void)state;

	env_open(&e, "size=8M,lba=4096", NULL);
	assert_int_equal(e.ns->lba_size, 4096);
	roundtrip(&e, 0, 1, 0, 11);
	roundtrip(&e, 5, 2, 0, 12);                             /* PRP1 + PRP2 */
	roundtrip(&e, 17, 3, 0, 13);                            /* PRP list, 2 entries */
	roundtrip(&e, e.ns->nlba - 32, 32, 0, 14);              /* max_lbas at the end */
	assert_int_equal(e.ns->max_lbas, 32);
	env_close(&e);
}

/* Transfers of every size up to the 2 MiB cap through PRP lists, aligned and not. */
static void test_prp_lists(void **state)
{
	static const size_t offs[] = { 0, 4, 100, 512, 2048, 4092 };
	struct env e;
	(void)state;

	env_open(&e, "size=16M,lba=512,mdts=0", NULL);
	assert_int_equal(pnvme_ctrl_max_xfer(e.ctrl), 2u << 20);
	assert_int_equal(e.ns->max_lbas, 4096);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		uint32_t seed = (uint32_t)(100 + i);
		/* A page, just over a page, a few pages, 2 MiB (511 or 512 list entries). */
		roundtrip(&e, 0, 8, offs[i], seed);
		roundtrip(&e, 64, 9, offs[i], seed + 10);
		roundtrip(&e, 128, 40, offs[i], seed + 20);
		roundtrip(&e, 4096, 4096, offs[i], seed + 30);
	}
	env_close(&e);

	/* The default MDTS (128 KiB) at unaligned offsets with 4 KiB blocks. */
	env_open(&e, "size=8M,lba=4096", NULL);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		roundtrip(&e, 40, 32, offs[i], (uint32_t)(200 + i));
	env_close(&e);
}

/* Several namespaces: I/O lands in the namespace it names. */
static void test_multi_namespace(void **state)
{
	struct env e;
	uint8_t want[4096], got[4096];
	(void)state;

	env_open(&e, "size=1M,lba=4096,ns=3", NULL);
	const struct pnvme_ns *ns2 = pnvme_ctrl_ns(e.ctrl, 2);
	const struct pnvme_ns *ns3 = pnvme_ctrl_ns(e.ctrl, 3);
	assert_non_null(ns2);
	assert_non_null(ns3);
	void *buf = dma_buf(&e, 4096);
	fill(buf, 4096, 77);
	memcpy(want, buf, 4096);
	assert_ok(pnvme_write_sync(e.qp, ns2, buf, 9, 1, 0));
	assert_ok(pnvme_emu_media_read(e.emu, 2, 9 * 4096, got, 4096));
	assert_memory_equal(got, want, 4096);
	assert_ok(pnvme_emu_media_read(e.emu, 1, 9 * 4096, got, 4096));
	assert_zero(got, 4096);
	assert_ok(pnvme_emu_media_read(e.emu, 3, 9 * 4096, got, 4096));
	assert_zero(got, 4096);
	memset(buf, 0, 4096);
	assert_ok(pnvme_read_sync(e.qp, ns3, buf, 9, 1, 0));
	assert_zero(buf, 4096);
	assert_ok(pnvme_read_sync(e.qp, ns2, buf, 9, 1, 0));
	assert_memory_equal(buf, want, 4096);
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* Phase wrap                                                               */
/* ------------------------------------------------------------------------ */

struct wrap_req {
	uint32_t calls;
	int err;
};

static uint16_t wrap_qid;
static uint64_t wrap_bad;

static void wrap_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct wrap_req *r = arg;
	r->calls++;
	r->err = err;
	if (cqe->sqid != wrap_qid || PNVME_CQE_STATUS(cqe) != 0)
		wrap_bad++;
}

/*
 * Keep a queue with rings of `entries` (depth entries - 1) full with one-block
 * reads for `total` I/Os:
 * each pass submits until -EAGAIN, then steps the device and polls. Every
 * request has its own record, which its callback must hit exactly once.
 */
static void phase_wrap(uint32_t entries, uint32_t total)
{
	struct pnvme_qpair_opts o;
	struct pnvme_qpair_stats st;
	struct env e;
	uint32_t sub = 0, done = 0, passes = 0;

	uint32_t depth = entries - 1;

	pnvme_qpair_opts_default(&o);
	o.depth = depth;
	env_open(&e, "size=1M,lba=512", &o);
	assert_int_equal(pnvme_qpair_depth(e.qp), depth);
	struct wrap_req *req = calloc(total, sizeof(*req));
	assert_non_null(req);
	void *buf = dma_buf(&e, 4096);
	wrap_qid = pnvme_qpair_id(e.qp);
	wrap_bad = 0;

	while (done < total) {
		while (sub < total) {
			int rc = pnvme_read(e.qp, e.ns, buf, sub % 64, 1, 0, wrap_cb, &req[sub]);
			if (rc == -EAGAIN)
				break;
			assert_rc(rc, 0);
			sub++;
		}
		/* Full (or everything submitted): exactly depth in flight. */
		uint32_t inflight = sub - done;
		assert_int_equal(pnvme_qpair_outstanding(e.qp), inflight);
		if (sub < total)
			assert_int_equal(inflight, depth);
		pnvme_qpair_flush(e.qp);
		(void)pnvme_emu_step(e.emu);
		/* Bounded by `depth`, so a phase bug that re-reads old entries cannot spin. */
		int n = pnvme_qpair_poll(e.qp, depth);
		if (n <= 0 || (uint32_t)n > inflight)
			fail_msg("depth %u: poll returned %d with %u in flight", depth, n, inflight);
		done += (uint32_t)n;
		passes++;
	}
	assert_int_equal(done, total);
	for (uint32_t i = 0; i < total; i++) {
		if (req[i].calls != 1 || req[i].err != 0)
			fail_msg("depth %u: request %u: %u callbacks, err %d", depth, i, req[i].calls,
				 req[i].err);
	}
	assert_int_equal(wrap_bad, 0);
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.submitted, total);
	assert_int_equal(st.completed, total);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.bad_cqes, 0);
	assert_int_equal(st.timeouts, 0);
	assert_int_equal(st.empty_polls, 0);
	assert_int_equal(st.polls, passes);
	assert_int_equal(st.sq_doorbells, passes); /* one per batch */
	assert_int_equal(st.cq_doorbells, passes);
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	assert_false(pnvme_qpair_cq_ready(e.qp));
	free(req);
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}

static void test_phase_wrap_ring2(void **state)
{
	(void)state;
	phase_wrap(2, 100000);
}

static void test_phase_wrap_ring3(void **state)
{
	(void)state;
	phase_wrap(3, 100000);
}

static void test_phase_wrap_ring4(void **state)
{
	(void)state;
	phase_wrap(4, 100000);
}

static void test_phase_wrap_ring1024(void **state)
{
	(void)state;
	phase_wrap(1024, 100000);
}

/* ------------------------------------------------------------------------ */
/* Queue full, doorbells                                                    */
/* ------------------------------------------------------------------------ */

static void queue_full(uint32_t flags)
{
	struct pnvme_qpair_opts o;
	struct pnvme_qpair_stats st;
	struct cpl c[8] = { { 0 } };
	struct env e;

	pnvme_qpair_opts_default(&o);
	o.depth = 3;
	o.flags = flags;
	env_open(&e, "size=1M", &o);
	void *buf = dma_buf(&e, 4096);
	for (int i = 0; i < 3; i++)
		assert_ok(pnvme_read(e.qp, e.ns, buf, (uint64_t)i, 1, 0, cpl_cb, &c[i]));
	double t0 = now_s();
	assert_rc(pnvme_read(e.qp, e.ns, buf, 3, 1, 0, cpl_cb, &c[3]), -EAGAIN);
	assert_rc(pnvme_write(e.qp, e.ns, buf, 3, 1, 0, cpl_cb, &c[3]), -EAGAIN);
	assert_rc(pnvme_flush(e.qp, e.ns, cpl_cb, &c[3]), -EAGAIN);
	/* At once: the device never runs here, so waiting for room would not end
	 * before the 30 s I/O deadline (only the waiting matters, not the speed). */
	assert_true(now_s() - t0 < SLACK_S);
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 3);
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.submitted, 3);

	/* Not reaped yet: nothing in the CQ until the device runs. */
	assert_false(pnvme_qpair_cq_ready(e.qp));
	pnvme_qpair_flush(e.qp);
	(void)pnvme_emu_step(e.emu);
	assert_true(pnvme_qpair_cq_ready(e.qp));
	/* Reap one at a time with max = 1. */
	assert_int_equal(pnvme_qpair_poll(e.qp, 1), 1);
	assert_true(pnvme_qpair_cq_ready(e.qp));
	assert_int_equal(pnvme_qpair_poll(e.qp, 0), 2);
	assert_false(pnvme_qpair_cq_ready(e.qp));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(c[i].calls, 1);
		assert_int_equal(c[i].err, 0);
	}
	assert_int_equal(c[3].calls, 0);
	assert_true(c[0].seq < c[1].seq && c[1].seq < c[2].seq);
	/* Room again. */
	for (int i = 4; i < 7; i++)
		assert_ok(pnvme_read(e.qp, e.ns, buf, (uint64_t)i, 1, 0, cpl_cb, &c[i]));
	assert_rc(pnvme_read(e.qp, e.ns, buf, 3, 1, 0, cpl_cb, &c[3]), -EAGAIN);
	reap(&e, 3);
	/* Sync helpers on a queue of depth 3 work too. */
	assert_ok(pnvme_read_sync(e.qp, e.ns, buf, 0, 1, 0));
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}

static void test_queue_full_eagain(void **state)
{
	(void)state;
	queue_full(0);
}

static void test_queue_full_eagain_immediate(void **state)
{
	(void)state;
	queue_full(PNVME_QPAIR_DB_IMMEDIATE);
}

static void test_doorbell_immediate(void **state)
{
	struct pnvme_qpair_opts o;
	struct pnvme_qpair_stats st;
	struct cpl c[16] = { { 0 } };
	struct env e;
	(void)state;

	pnvme_qpair_opts_default(&o);
	o.flags = PNVME_QPAIR_DB_IMMEDIATE;
	env_open(&e, "size=1M,dbbuf=0", &o); /* MMIO doorbells: shadow ones would hide some */
	void *buf = dma_buf(&e, 4096);
	for (int i = 0; i < 16; i++) {
		assert_ok(pnvme_read(e.qp, e.ns, buf, (uint64_t)i, 1, 0, cpl_cb, &c[i]));
		pnvme_qpair_get_stats(e.qp, &st);
		assert_int_equal(st.sq_doorbells, (uint64_t)i + 1);
	}
	/* The doorbell was rung already: the device runs with no flush and no poll. */
	(void)pnvme_emu_step(e.emu);
	assert_true(pnvme_qpair_cq_ready(e.qp));
	assert_int_equal(pnvme_qpair_poll(e.qp, 0), 16);
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.submitted, 16);
	assert_int_equal(st.sq_doorbells, st.submitted);
	assert_int_equal(st.cq_doorbells, 1);
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}

/*
 * PNVME_QPAIR_LAZY_CQ_DB: the CQ is twice the SQ, the head doorbell is written
 * only every (CQ size - depth) entries, the controller never finds the CQ
 * full, every request completes once with its own data, across many phase
 * wraps of both rings (SQs of 2, 4, 33 entries, keeping the queue full).
 */
static void lazy_cq(uint32_t entries, uint32_t total)
{
	struct pnvme_qpair_opts o;
	struct pnvme_qpair_stats st;
	struct env e;
	uint64_t done = 0, submitted = 0;
	struct cpl *c = calloc(entries, sizeof(*c));

	assert_non_null(c);
	pnvme_qpair_opts_default(&o);
	o.depth = entries - 1;
	o.flags = PNVME_QPAIR_LAZY_CQ_DB;
	env_open(&e, "size=1M,lba=512", &o);
	uint8_t *buf = dma_buf(&e, (size_t)entries * 512);
	/* Each slot reads its own block, stamped with the slot number first. */
	for (uint32_t i = 0; i < entries; i++) {
		memset(buf + (size_t)i * 512, (int)(i + 1), 512);
		assert_ok(pnvme_write_sync(e.qp, e.ns, buf + (size_t)i * 512, i, 1, 0));
	}
	pnvme_qpair_reset_stats(e.qp);
	uint32_t slots = entries - 1;
	uint64_t rounds = 0;
	while (done < total) {
		if (++rounds > 4 * (uint64_t)total)
			fail_msg("stalled: %llu of %u done (CQ full for the controller?)",
				 (unsigned long long)done, total);
		for (uint32_t i = 0; i < slots; i++) {
			if (c[i].busy || submitted >= total)
				continue;
			c[i].busy = 1;
			memset(buf + (size_t)i * 512, 0, 512);
			assert_ok(pnvme_read(e.qp, e.ns, buf + (size_t)i * 512, i, 1, 0, cpl_cb, &c[i]));
			submitted++;
		}
		pnvme_qpair_flush(e.qp);
		(void)pnvme_emu_step(e.emu);
		int n = pnvme_qpair_poll(e.qp, 0);
		assert_true(n >= 0);
		for (uint32_t i = 0; i < slots; i++) {
			if (c[i].busy && c[i].calls) {
				assert_int_equal(c[i].calls, 1);
				assert_int_equal(c[i].err, 0);
				assert_int_equal(buf[(size_t)i * 512], (uint8_t)(i + 1));
				assert_int_equal(buf[(size_t)i * 512 + 511], (uint8_t)(i + 1));
				c[i].busy = 0;
				c[i].calls = 0;
				done++;
			}
		}
	}
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.completed, total);
	/* CQ size 2 * entries: one head doorbell per entries + 1 at most. */
	assert_true(st.cq_doorbells <= total / (entries + 1) + 1);
	assert_true(st.cq_doorbells >= total / (2 * entries) - 1);
	free(c);
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}

static void test_lazy_cq_ring2(void **state)
{
	(void)state;
	lazy_cq(2, 20000);
}

static void test_lazy_cq_ring4(void **state)
{
	(void)state;
	lazy_cq(4, 50000);
}

static void test_lazy_cq_ring33(void **state)
{
	(void)state;
	lazy_cq(33, 100000);
}

static void test_doorbell_batched(void **state)
{
	struct pnvme_qpair_stats st;
	struct cpl c[32] = { { 0 } };
	struct env e;
	(void)state;

	env_open(&e, "size=1M", NULL);
	void *buf = dma_buf(&e, 32 * 512);
	for (int i = 0; i < 32; i++)
		assert_ok(pnvme_read(e.qp, e.ns, (uint8_t *)buf + i * 512, (uint64_t)i, 1, 0,
				     cpl_cb, &c[i]));
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.sq_doorbells, 0);
	/* Without the doorbell the device sees nothing. */
	(void)pnvme_emu_step(e.emu);
	assert_false(pnvme_qpair_cq_ready(e.qp));
	uint64_t before = emu_commands(&e);
	pnvme_qpair_flush(e.qp);
	pnvme_qpair_flush(e.qp); /* nothing new: no second write */
	(void)pnvme_emu_step(e.emu);
	assert_int_equal(emu_commands(&e) - before, 32);
	assert_int_equal(pnvme_qpair_poll(e.qp, 0), 32);
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.submitted, 32);
	assert_int_equal(st.completed, 32);
	assert_int_equal(st.sq_doorbells, 1);
	assert_int_equal(st.cq_doorbells, 1);
	assert_int_equal(st.polls, 1);
	for (int i = 0; i < 32; i++)
		assert_int_equal(c[i].calls, 1);

	/* Poll rings the doorbell itself when the caller did not flush. */
	struct cpl one = { 0 };
	assert_ok(pnvme_read(e.qp, e.ns, buf, 0, 1, 0, cpl_cb, &one));
	assert_int_equal(pnvme_qpair_poll(e.qp, 0), 0);
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.sq_doorbells, 2);
	assert_int_equal(st.empty_polls, 1);
	(void)pnvme_emu_step(e.emu);
	assert_int_equal(pnvme_qpair_poll(e.qp, 0), 1);
	assert_int_equal(one.calls, 1);
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}

/* Doorbell stride != 0: every queue's doorbells move, I/O still works. */
static void doorbell_stride(unsigned dstrd)
{
	char opts[64];
	struct pnvme_qpair *qp2;
	struct env e;
	uint8_t want[8 * 512];

	snprintf(opts, sizeof(opts), "size=1M,dstrd=%u,nq=4", dstrd);
	env_open(&e, opts, NULL);
	assert_int_equal(PNVME_GET(pnvme_ctrl_cap(e.ctrl), PNVME_CAP_DSTRD), dstrd);
	assert_ok(pnvme_qpair_create(e.ctrl, NULL, &qp2));
	assert_int_equal(pnvme_qpair_id(qp2), 2);
	void *buf = dma_buf(&e, sizeof(want));
	for (uint32_t i = 0; i < 20; i++) {
		fill(buf, sizeof(want), 300 + i);
		memcpy(want, buf, sizeof(want));
		assert_ok(pnvme_write_sync(i & 1 ? qp2 : e.qp, e.ns, buf, i * 8, 8, 0));
		memset(buf, 0, sizeof(want));
		assert_ok(pnvme_read_sync(i & 1 ? e.qp : qp2, e.ns, buf, i * 8, 8, 0));
		assert_memory_equal(buf, want, sizeof(want));
	}
	/* Async on both at once. */
	struct cpl c1 = { 0 }, c2 = { 0 };
	assert_ok(pnvme_read(e.qp, e.ns, buf, 0, 1, 0, cpl_cb, &c1));
	assert_ok(pnvme_read(qp2, e.ns, (uint8_t *)buf + 512, 8, 1, 0, cpl_cb, &c2));
	pnvme_qpair_flush(e.qp);
	pnvme_qpair_flush(qp2);
	(void)pnvme_emu_step(e.emu);
	assert_int_equal(pnvme_qpair_poll(e.qp, 0), 1);
	assert_int_equal(pnvme_qpair_poll(qp2, 0), 1);
	assert_int_equal(c1.cqe.sqid, 1);
	assert_int_equal(c2.cqe.sqid, 2);
	pnvme_dma_free(e.ctrl, buf);
	assert_ok(pnvme_qpair_destroy(qp2));
	env_close(&e);
}

static void test_doorbell_stride_1(void **state)
{
	(void)state;
	doorbell_stride(1);
}

static void test_doorbell_stride_3(void **state)
{
	(void)state;
	doorbell_stride(3);
}

/* ------------------------------------------------------------------------ */
/* Completion order and status                                              */
/* ------------------------------------------------------------------------ */

static void test_out_of_order_completions(void **state)
{
	enum { N = 16 };
	struct pnvme_emu_fault f = { .kind = PNVME_EMU_FAULT_REORDER };
	struct cpl c[N] = { { 0 } };
	struct env e;
	(void)state;

	env_open(&e, "size=1M,lba=512", NULL);
	uint8_t *buf = dma_buf(&e, N * 512);
	uint8_t *want = malloc(N * 512);
	assert_non_null(want);
	fill(want, N * 512, 4242);
	memcpy(buf, want, N * 512);
	assert_ok(pnvme_write_sync(e.qp, e.ns, buf, 0, N, 0));
	memset(buf, 0, N * 512);

	assert_ok(pnvme_emu_inject(e.emu, &f));
	cpl_seq = 0;
	for (int i = 0; i < N; i++) /* block i into slot i */
		assert_ok(pnvme_read(e.qp, e.ns, buf + i * 512, (uint64_t)i, 1, 0, cpl_cb, &c[i]));
	reap(&e, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(c[i].calls, 1);
		assert_int_equal(c[i].err, 0);
		/* Reversed: the last submitted completes first. */
		assert_int_equal(c[i].seq, N - 1 - i);
		assert_int_equal(c[i].cqe.sqid, pnvme_qpair_id(e.qp));
		for (int j = 0; j < i; j++)
			assert_int_not_equal(c[i].cqe.cid, c[j].cqe.cid);
		/* Each request's own data reached its own buffer. */
		assert_memory_equal(buf + i * 512, want + i * 512, 512);
	}
	/* And again, with trackers reused in a different order. */
	memset(c, 0, sizeof(c));
	memset(buf, 0, N * 512);
	cpl_seq = 0;
	for (int i = 0; i < N; i++)
		assert_ok(pnvme_read(e.qp, e.ns, buf + i * 512, (uint64_t)(N - 1 - i), 1, 0, cpl_cb,
				     &c[i]));
	reap(&e, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(c[i].calls, 1);
		assert_int_equal(c[i].seq, N - 1 - i);
		assert_memory_equal(buf + i * 512, want + (N - 1 - i) * 512, 512);
	}
	struct pnvme_qpair_stats st;
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.bad_cqes, 0);
	free(want);
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}

static void test_error_status_propagation(void **state)
{
	static const uint16_t statuses[] = {
		PNVME_STATUS_DNR | PNVME_STATUS(PNVME_SCT_MEDIA, PNVME_SC_READ_ERROR),
		PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INTERNAL),                /* no DNR */
		PNVME_STATUS_DNR | PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_LBA_RANGE),
		PNVME_STATUS_DNR | PNVME_STATUS(PNVME_SCT_MEDIA, PNVME_SC_ACCESS_DENIED),
		PNVME_STATUS_DNR | PNVME_STATUS(PNVME_SCT_VENDOR, 0xc4),
		PNVME_STATUS_DNR | PNVME_STATUS_MORE | PNVME_STATUS(PNVME_SCT_CMD, PNVME_SC_READ_ONLY),
	};
	struct pnvme_qpair_stats st;
	struct env e;
	(void)state;

	env_open(&e, "size=1M", NULL);
	void *buf = dma_buf(&e, 4096);
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		struct pnvme_emu_fault f = {
			.kind = PNVME_EMU_FAULT_STATUS,
			.qid = pnvme_qpair_id(e.qp),
			.opc = PNVME_NVM_READ,
			.skip = 1, /* the first matching read goes through */
			.count = 1,
			.status = statuses[i],
		};
		struct cpl ok1 = { 0 }, bad = { 0 }, ok2 = { 0 };
		pnvme_emu_clear_faults(e.emu);
		assert_ok(pnvme_emu_inject(e.emu, &f));
		assert_ok(pnvme_read(e.qp, e.ns, buf, 0, 1, 0, cpl_cb, &ok1));
		assert_ok(pnvme_read(e.qp, e.ns, buf, 1, 1, 0, cpl_cb, &bad));
		assert_ok(pnvme_read(e.qp, e.ns, buf, 2, 1, 0, cpl_cb, &ok2));
		reap(&e, 3);
		assert_int_equal(ok1.err, 0);
		assert_int_equal(ok2.err, 0);
		assert_int_equal(bad.calls, 1);
		if (PNVME_CQE_STATUS(&bad.cqe) != statuses[i])
			fail_msg("status 0x%04x arrived as 0x%04x", statuses[i],
				 PNVME_CQE_STATUS(&bad.cqe));
		assert_rc(bad.err, pnvme_status_errno(statuses[i]));
		assert_int_not_equal(bad.err, 0);
	}
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.errors, sizeof(statuses) / sizeof(statuses[0]));
	assert_int_equal(pnvme_status_errno(statuses[0]), -EIO);
	assert_int_equal(pnvme_status_errno(statuses[2]), -ERANGE);

	/* The sync helpers return the same errno and name the status. */
	struct pnvme_emu_fault f = {
		.kind = PNVME_EMU_FAULT_STATUS,
		.qid = PNVME_EMU_ANY_QID,
		.opc = PNVME_NVM_READ,
		.count = 1,
		.status = statuses[0],
	};
	pnvme_emu_clear_faults(e.emu);
	assert_ok(pnvme_emu_inject(e.emu, &f));
	assert_rc(pnvme_read_sync(e.qp, e.ns, buf, 0, 1, 0), -EIO);
	assert_non_null(strstr(pnvme_last_error(), "Unrecovered Read Error"));
	assert_ok(pnvme_read_sync(e.qp, e.ns, buf, 0, 1, 0));

	/* A status the device decides itself: a raw read past the end (host checks bypassed). */
	struct pnvme_sqe sqe = { 0 };
	struct pnvme_cqe cqe;
	sqe.opc = PNVME_NVM_READ;
	sqe.nsid = 1;
	sqe.cdw10 = (uint32_t)e.ns->nlba;
	sqe.cdw12 = 0;
	assert_rc(pnvme_io_passthru_sync(e.qp, &sqe, buf, 512, &cqe), -ERANGE);
	assert_int_equal(PNVME_STATUS_CODE(PNVME_CQE_STATUS(&cqe)),
			 PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_LBA_RANGE));
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* Argument checks                                                          */
/* ------------------------------------------------------------------------ */

static void test_mdts_limit(void **state)
{
	struct pnvme_qpair_stats st;
	struct pnvme_qpair_opts qo;
	struct env e;
	(void)state;

	/* A queue pair that does not split: over MDTS is refused, nothing reaches the device. */
	pnvme_qpair_opts_default(&qo);
	qo.flags = PNVME_QPAIR_NO_SPLIT;
	env_open(&e, "size=1M,lba=512,mdts=1", &qo);
	assert_int_equal(pnvme_ctrl_max_xfer(e.ctrl), 8192);
	assert_int_equal(e.ns->max_lbas, 16);
	void *buf = dma_buf(&e, 16384);
	uint64_t cmds = emu_commands(&e);
	struct cpl c = { 0 };
	assert_rc(pnvme_read(e.qp, e.ns, buf, 0, 32, 0, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_write(e.qp, e.ns, buf, 0, 17, 0, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_read_sync(e.qp, e.ns, buf, 0, 32, 0), -EINVAL);
	struct pnvme_sqe sqe = { .opc = PNVME_NVM_READ, .nsid = 1, .cdw12 = 31 };
	assert_rc(pnvme_io_passthru(e.qp, &sqe, buf, 16384, cpl_cb, &c), -EINVAL);
	pnvme_qpair_flush(e.qp);
	(void)pnvme_emu_step(e.emu);
	assert_int_equal(emu_commands(&e), cmds);
	assert_int_equal(c.calls, 0);
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.submitted, 0);
	/* 8 KiB is fine. */
	assert_ok(pnvme_read_sync(e.qp, e.ns, buf, 0, 16, 0));
	assert_int_equal(emu_commands(&e), cmds + 1);
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);

	/* MDTS 0 (no limit): 2 MiB, and a 2 MiB read works. */
	env_open(&e, "size=4M,lba=4096,mdts=0", &qo);
	assert_int_equal(pnvme_ctrl_max_xfer(e.ctrl), 2u << 20);
	assert_int_equal(e.ns->max_lbas, 512);
	buf = dma_buf(&e, 2u << 20);
	assert_ok(pnvme_read_sync(e.qp, e.ns, buf, 0, 512, 0));
	assert_rc(pnvme_read_sync(e.qp, e.ns, buf, 0, 513, 0), -EINVAL);
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}


/* ------------------------------------------------------------------------ */
/* Requests larger than MDTS: split into child commands                     */
/* ------------------------------------------------------------------------ */

/* Step and poll until the parent's callback ran (bounded); the children's commands. */
static uint64_t split_wait(struct env *e, struct cpl *c)
{
	uint64_t before = emu_commands(e);

	for (int i = 0; i < 100000 && c->calls == 0; i++) {
		pnvme_qpair_flush(e->qp);
		(void)pnvme_emu_step(e->emu);
		assert_true(pnvme_qpair_poll(e->qp, 0) >= 0);
	}
	return emu_commands(e) - before;
}

/* Sizes around every boundary of max_lbas (16 blocks here), data checked on the media. */
static void test_split_sizes(void **state)
{
	static const uint32_t sizes[] = { 15, 16, 17, 31, 32, 33, 100, 257 };
	struct env e;
	(void)state;

	env_open(&e, "size=1M,lba=512,mdts=1", NULL);
	assert_int_equal(e.ns->max_lbas, 16);
	uint8_t *w = dma_buf(&e, 257 * 512), *r = dma_buf(&e, 257 * 512);
	uint64_t lba = 0;
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint32_t nlb = sizes[i], want_cmds = (nlb + 15) / 16;
		struct cpl cw = { 0 }, cr = { 0 };
		fill(w, (size_t)nlb * 512, 40 + i);
		memset(r, 0, (size_t)nlb * 512);
		assert_ok(pnvme_write(e.qp, e.ns, w, lba, nlb, 0, cpl_cb, &cw));
		assert_int_equal(split_wait(&e, &cw), want_cmds);
		assert_int_equal(cw.calls, 1);
		assert_int_equal(cw.err, 0);
		assert_media(&e, lba, nlb, w);
		assert_ok(pnvme_read(e.qp, e.ns, r, lba, nlb, 0, cpl_cb, &cr));
		assert_int_equal(split_wait(&e, &cr), want_cmds);
		assert_int_equal(cr.calls, 1);
		assert_int_equal(cr.err, 0);
		assert_memory_equal(r, w, (size_t)nlb * 512);
		lba += nlb;
	}
	/* and the sync form */
	fill(w, 100 * 512, 99);
	assert_ok(pnvme_write_sync(e.qp, e.ns, w, 500, 100, 0));
	assert_ok(pnvme_read_sync(e.qp, e.ns, r, 500, 100, 0));
	assert_memory_equal(r, w, 100 * 512);
	/* a buffer too small for the whole request is refused before any child leaves */
	uint64_t cmds = emu_commands(&e);
	struct cpl c = { 0 };
	assert_rc(pnvme_read(e.qp, e.ns, r + 512, 0, 257, 0, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_read(e.qp, e.ns, r, 2040, 20, 0, cpl_cb, &c), -ERANGE);
	pnvme_qpair_flush(e.qp);
	(void)pnvme_emu_step(e.emu);
	assert_int_equal(emu_commands(&e), cmds);
	assert_int_equal(c.calls, 0);
	pnvme_dma_free(e.ctrl, w);
	pnvme_dma_free(e.ctrl, r);
	env_close(&e);
}

/*
 * Queue full mid-split: a queue pair of depth 3 takes a 10-child write; the
 * first three go out at once, the rest from the completions, in LBA order;
 * the parent completes once. With the queue already full, -EAGAIN and
 * nothing submitted.
 */
static void test_split_queue_full(void **state)
{
	struct pnvme_qpair_opts qo;
	struct env e;
	(void)state;

	pnvme_qpair_opts_default(&qo);
	qo.depth = 3;
	env_open(&e, "size=1M,lba=512,mdts=1", &qo);
	uint8_t *w = dma_buf(&e, 160 * 512), *r = dma_buf(&e, 160 * 512);
	struct cpl c = { 0 };
	fill(w, 160 * 512, 7);
	assert_ok(pnvme_write(e.qp, e.ns, w, 64, 160, 0, cpl_cb, &c));
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 3);
	assert_int_equal(split_wait(&e, &c), 10);
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.err, 0);
	assert_media(&e, 64, 160, w);
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	/* three single-block reads fill the queue: the split cannot start */
	struct cpl one[3] = { { 0 } }, big = { 0 };
	for (int i = 0; i < 3; i++)
		assert_ok(pnvme_read(e.qp, e.ns, r + i * 512, (uint64_t)i, 1, 0, cpl_cb, &one[i]));
	assert_rc(pnvme_read(e.qp, e.ns, r + 4096, 64, 40, 0, cpl_cb, &big), -EAGAIN);
	reap(&e, 3);
	assert_int_equal(big.calls, 0);
	/* one slot busy: the split starts with two children and finishes */
	struct cpl busy = { 0 };
	assert_ok(pnvme_read(e.qp, e.ns, r, 0, 1, 0, cpl_cb, &busy));
	assert_ok(pnvme_read(e.qp, e.ns, r + 4096, 64, 40, 0, cpl_cb, &big));
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 3);
	(void)split_wait(&e, &big);
	assert_int_equal(big.calls, 1);
	assert_int_equal(big.err, 0);
	assert_int_equal(busy.calls, 1);
	assert_memory_equal(r + 4096, w, 40 * 512);
	pnvme_dma_free(e.ctrl, w);
	pnvme_dma_free(e.ctrl, r);
	env_close(&e);
}

/* An error in one child: no later child is sent, the parent ends once with that error. */
static void test_split_child_error(void **state)
{
	struct pnvme_qpair_opts qo;
	struct env e;
	(void)state;

	pnvme_qpair_opts_default(&qo);
	qo.depth = 2;
	env_open(&e, "size=1M,lba=512,mdts=1", &qo);
	uint8_t *r = dma_buf(&e, 160 * 512);
	struct pnvme_emu_fault f = { .kind = PNVME_EMU_FAULT_STATUS, .qid = PNVME_EMU_ANY_QID,
				     .opc = PNVME_NVM_READ, .skip = 1, .count = 1,
				     .status = PNVME_STATUS(PNVME_SCT_MEDIA, 0x81) |
					       PNVME_STATUS_DNR };
	assert_ok(pnvme_emu_inject(e.emu, &f));
	struct cpl c = { 0 };
	assert_ok(pnvme_read(e.qp, e.ns, r, 0, 160, 0, cpl_cb, &c));
	uint64_t cmds = split_wait(&e, &c);
	assert_int_equal(c.calls, 1);
	assert_true(c.err < 0);
	assert_int_equal(PNVME_STATUS_SCT(c.cqe.status >> 1), PNVME_SCT_MEDIA);
	assert_true(cmds < 10); /* children after the failed one never left */
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	/* the queue pair works on */
	assert_ok(pnvme_read_sync(e.qp, e.ns, r, 0, 160, 0));
	pnvme_dma_free(e.ctrl, r);
	env_close(&e);
}

/* Separate metadata: each child's MPTR moves with its blocks. */
static void test_split_separate_md(void **state)
{
	struct env e;
	(void)state;

	env_open(&e, "size=1M,ms=8,ext=0,mdts=1", NULL);
	assert_int_equal(e.ns->max_lbas, 16);
	uint8_t *w = dma_buf(&e, 40 * 512), *wm = dma_buf(&e, 40 * 8);
	uint8_t *r = dma_buf(&e, 40 * 512), *rm = dma_buf(&e, 40 * 8);
	fill(w, 40 * 512, 5);
	fill(wm, 40 * 8, 6);
	struct cpl c = { 0 };
	assert_ok(pnvme_write_md(e.qp, e.ns, w, wm, 8, 40, 0, 0, 0, cpl_cb, &c));
	assert_int_equal(split_wait(&e, &c), 3);
	assert_int_equal(c.err, 0);
	memset(&c, 0, sizeof(c));
	assert_ok(pnvme_read_md(e.qp, e.ns, r, rm, 8, 40, 0, 0, 0, cpl_cb, &c));
	assert_int_equal(split_wait(&e, &c), 3);
	assert_int_equal(c.err, 0);
	assert_memory_equal(r, w, 40 * 512);
	assert_memory_equal(rm, wm, 40 * 8);
	pnvme_dma_free(e.ctrl, w);
	pnvme_dma_free(e.ctrl, wm);
	pnvme_dma_free(e.ctrl, r);
	pnvme_dma_free(e.ctrl, rm);
	env_close(&e);
}


/* ------------------------------------------------------------------------ */
/* Vectored I/O                                                             */
/* ------------------------------------------------------------------------ */

/* Page-chained elements: one command, one PRP list; data in order on the media. */
static void test_readv_writev_prp(void **state)
{
	struct env e;
	(void)state;

	env_open(&e, "size=1M,lba=512", NULL);
	uint8_t *a = dma_buf(&e, 4 * 4096), *b = dma_buf(&e, 4096), *c = dma_buf(&e, 4096);
	uint8_t *want = malloc(3 * 4096 + 512), *back = dma_buf(&e, 16384);
	/* 3.5 KiB ending on a page boundary, a whole page, 1 KiB from a page start */
	struct iovec w[3] = { { a + 512, 3584 }, { b, 4096 }, { c, 1024 } };
	fill(a + 512, 3584, 1);
	fill(b, 4096, 2);
	fill(c, 1024, 3);
	memcpy(want, a + 512, 3584);
	memcpy(want + 3584, b, 4096);
	memcpy(want + 7680, c, 1024);
	uint64_t cmds = emu_commands(&e);
	struct cpl d = { 0 };
	assert_ok(pnvme_writev(e.qp, e.ns, w, 3, 10, 17, 0, cpl_cb, &d));
	reap(&e, 1);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.err, 0);
	assert_int_equal(emu_commands(&e) - cmds, 1);
	assert_media(&e, 10, 17, want);
	/* read back into the same shape */
	struct iovec r[3] = { { back + 512, 3584 }, { back + 4096, 4096 }, { back + 8192, 1024 } };
	memset(back, 0, 16384);
	memset(&d, 0, sizeof(d));
	assert_ok(pnvme_readv(e.qp, e.ns, r, 3, 10, 17, 0, cpl_cb, &d));
	reap(&e, 1);
	assert_int_equal(d.err, 0);
	assert_memory_equal(back + 512, want, 3584 + 4096 + 1024);
	free(want);
	pnvme_dma_free(e.ctrl, a);
	pnvme_dma_free(e.ctrl, b);
	pnvme_dma_free(e.ctrl, c);
	pnvme_dma_free(e.ctrl, back);
	env_close(&e);
}

/*
 * Elements PRPs cannot chain, on a controller without SGLs: one command each,
 * the parent completes once. (With SGLs: test_sgl.c.)
 */
static void test_readv_writev_scattered(void **state)
{
	struct env e;
	(void)state;

	env_open(&e, "size=1M,lba=512,sgl=0", NULL);
	uint8_t *m = dma_buf(&e, 8192);
	struct iovec w[4] = { { m + 100 * 4, 512 }, { m + 2048, 1024 }, { m + 1100, 512 },
			      { m + 5000, 512 } };
	uint8_t want[2560];
	size_t off = 0;
	for (int i = 0; i < 4; i++) {
		fill(w[i].iov_base, w[i].iov_len, 20 + (uint32_t)i);
		memcpy(want + off, w[i].iov_base, w[i].iov_len);
		off += w[i].iov_len;
	}
	struct cpl d = { 0 };
	uint64_t cmds = emu_commands(&e);
	assert_ok(pnvme_writev(e.qp, e.ns, w, 4, 100, 5, 0, cpl_cb, &d));
	reap(&e, 4);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.err, 0);
	assert_int_equal(emu_commands(&e) - cmds, 4);
	assert_media(&e, 100, 5, want);
	/* refusals: sizes that do not add up, part blocks that cannot be chained, empty */
	struct iovec bad[2] = { { m, 512 }, { m + 1000, 100 } };
	assert_rc(pnvme_writev(e.qp, e.ns, bad, 2, 0, 2, 0, cpl_cb, &d), -EINVAL);
	bad[0].iov_len = 412; /* 412 + 612 = two blocks, but neither element whole blocks */
	bad[1].iov_len = 612;
	assert_rc(pnvme_writev(e.qp, e.ns, bad, 2, 0, 2, 0, cpl_cb, &d), -EINVAL);
	assert_non_null(strstr(pnvme_last_error(), "not a whole number"));
	bad[1].iov_len = 0;
	assert_rc(pnvme_readv(e.qp, e.ns, bad, 2, 0, 1, 0, cpl_cb, &d), -EINVAL);
	assert_rc(pnvme_readv(e.qp, e.ns, w, 0, 0, 1, 0, cpl_cb, &d), -EINVAL);
	assert_rc(pnvme_readv(e.qp, e.ns, w, 4, 2047, 5, 0, cpl_cb, &d), -ERANGE);
	/* an element outside pnvme memory is refused before anything is sent */
	uint8_t stack[1024];
	struct iovec st[2] = { { m + 4096 - 512, 512 }, { stack, 512 } };
	cmds = emu_commands(&e);
	assert_rc(pnvme_readv(e.qp, e.ns, st, 2, 0, 2, 0, cpl_cb, &d), -EINVAL);
	pnvme_qpair_flush(e.qp);
	(void)pnvme_emu_step(e.emu);
	assert_int_equal(emu_commands(&e), cmds);
	assert_int_equal(d.calls, 1);
	pnvme_dma_free(e.ctrl, m);
	env_close(&e);
}

/*
 * The device may touch only the bytes handed over (issue: DMA bounds per
 * allocation): a transfer running past its buffer, straddling two buffers,
 * into a freed buffer (also one the queue pair translated before), or a
 * misaligned one is refused with its own message, before the device sees it.
 */
static void assert_last_error_has(const char *what)
{
	if (strstr(pnvme_last_error(), what) == NULL)
		fail_msg("expected \"%s\" in \"%s\"", what, pnvme_last_error());
}

static void test_buffer_bounds(void **state)
{
	struct cpl c = { 0 };
	struct env e;
	(void)state;

	env_open(&e, "size=1M,lba=512", NULL);
	uint8_t *buf = dma_buf(&e, 4096);
	uint8_t *odd = dma_buf(&e, 1000);      /* not a multiple of the block size */
	uint8_t *next = dma_buf(&e, 4096);
	uint64_t cmds = emu_commands(&e);

	/* Two blocks at buf + 4096 - 512: 512 bytes past the end. */
	assert_rc(pnvme_read(e.qp, e.ns, buf + 4096 - 512, 0, 2, 0, cpl_cb, &c), -EINVAL);
	assert_last_error_has("overruns its allocation");
	assert_last_error_has("by 512 bytes");
	/* A 1000-byte buffer holds one 512-byte block, not two. */
	assert_ok(pnvme_read_sync(e.qp, e.ns, odd, 0, 1, 0));
	assert_rc(pnvme_read(e.qp, e.ns, odd, 0, 2, 0, cpl_cb, &c), -EINVAL);
	assert_last_error_has("by 24 bytes");
	/* A range straddling two allocations. */
	assert_rc(pnvme_write(e.qp, e.ns, next + 4096 - 512, 0, 2, 0, cpl_cb, &c), -EINVAL);
	/* Passthrough is bounded the same way. */
	struct pnvme_sqe sqe = { .opc = PNVME_NVM_READ, .nsid = 1, .cdw12 = 1 };
	assert_rc(pnvme_io_passthru(e.qp, &sqe, buf + 1024, 4096, cpl_cb, &c), -EINVAL);
	assert_last_error_has("by 1024 bytes");
	/* Misaligned: its own message. */
	assert_rc(pnvme_read(e.qp, e.ns, buf + 2, 0, 1, 0, cpl_cb, &c), -EINVAL);
	assert_last_error_has("misaligned");
	/* Not pnvme memory. */
	uint64_t on_stack[64];
	assert_rc(pnvme_read(e.qp, e.ns, on_stack, 0, 1, 0, cpl_cb, &c), -EINVAL);
	assert_last_error_has("not pnvme DMA memory");
	/* Freed after the queue pair used (and cached) it. */
	assert_ok(pnvme_read_sync(e.qp, e.ns, next, 0, 8, 0));
	assert_ok(pnvme_dma_free(e.ctrl, next));
	assert_rc(pnvme_read(e.qp, e.ns, next, 0, 1, 0, cpl_cb, &c), -EINVAL);
	assert_last_error_has("was freed");
	/* Double free and interior free: refused, nothing freed. */
	assert_rc(pnvme_dma_free(e.ctrl, next), -EINVAL);
	assert_last_error_has("double free");
	assert_rc(pnvme_dma_free(e.ctrl, buf + 512), -EINVAL);
	assert_last_error_has("lies 512 bytes into the allocation");
	assert_ok(pnvme_read_sync(e.qp, e.ns, buf, 0, 8, 0));

	/* Only the three good reads reached the device. */
	pnvme_qpair_flush(e.qp);
	(void)pnvme_emu_step(e.emu);
	assert_int_equal(emu_commands(&e), cmds + 3);
	assert_int_equal(c.calls, 0);
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	assert_ok(pnvme_dma_free(e.ctrl, odd));
	assert_ok(pnvme_dma_free(e.ctrl, buf));
	env_close(&e);
}

/*
 * Namespaces with metadata: extended LBAs size transfers and MDTS by
 * data + metadata; separate metadata needs a bounded buffer of its own;
 * protection flags only where the namespace has PI.
 */
static void test_metadata_sizes_and_refusals(void **state)
{
	struct cpl c = { 0 };
	struct env e;
	(void)state;

	/* Extended, 512 + 8 bytes, MDTS 2^1 x 4 KiB = 8 KiB: 15 blocks per command, not 16. */
	env_open(&e, "size=1M,ms=8,ext=1,mdts=1", NULL);
	assert_int_equal(e.ns->ms, 8);
	assert_int_equal(e.ns->md_ext, 1);
	assert_int_equal(e.ns->block_bytes, 520);
	assert_int_equal(e.ns->max_lbas, 8192 / 520);
	uint8_t *buf = dma_buf(&e, 16 * 520);
	uint8_t *md = dma_buf(&e, 64);
	fill(buf, 15 * 520, 3);
	assert_ok(pnvme_write_sync(e.qp, e.ns, buf, 0, 15, 0));
	assert_ok(pnvme_write_sync(e.qp, e.ns, buf, 0, 16, 0)); /* over MDTS: split, 15 + 1 */
	/* A buffer holding 4 blocks of data only is short of their metadata. */
	uint8_t *data_only = dma_buf(&e, 4 * 512);
	assert_rc(pnvme_read(e.qp, e.ns, data_only, 0, 4, 0, cpl_cb, &c), -EINVAL);
	assert_last_error_has("by 32 bytes");
	/* No separate buffer on an extended format; no PI flags without PI. */
	assert_rc(pnvme_read_md(e.qp, e.ns, buf, md, 0, 1, 0, 0, 0, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_read(e.qp, e.ns, buf, 0, 1, PNVME_IO_PRACT, cpl_cb, &c), -EINVAL);
	memset(buf + 15 * 520, 0, 520);
	uint8_t *back = dma_buf(&e, 15 * 520);
	assert_ok(pnvme_read_sync(e.qp, e.ns, back, 0, 15, 0));
	assert_memory_equal(back, buf, 15 * 520);
	env_close(&e);

	/* Separate metadata with PI type 1. */
	env_open(&e, "size=1M,ms=8,pi=1", NULL);
	assert_int_equal(e.ns->md_ext, 0);
	assert_int_equal(e.ns->pi_type, 1);
	assert_int_equal(e.ns->block_bytes, 512);
	buf = dma_buf(&e, 4096);
	md = dma_buf(&e, 8 * 8);
	assert_rc(pnvme_read(e.qp, e.ns, buf, 0, 1, 0, cpl_cb, &c), -EINVAL);
	assert_last_error_has("separate buffer");
	assert_rc(pnvme_read_md(e.qp, e.ns, buf, md, 0, 9, 0, 0, 0, cpl_cb, &c), -EINVAL);
	assert_last_error_has("metadata");
	assert_rc(pnvme_read_md(e.qp, e.ns, buf, md + 2, 0, 1, 0, 0, 0, cpl_cb, &c), -EINVAL);
	/* PRACT with PI-only metadata moves none: no buffer needed, one refused. */
	assert_ok(pnvme_write_sync(e.qp, e.ns, buf, 0, 8, PNVME_IO_PRACT));
	assert_rc(pnvme_write_md(e.qp, e.ns, buf, md, 0, 8, PNVME_IO_PRACT, 0, 0, cpl_cb, &c),
		  -EINVAL);
	/* The controller generated the PI; reading it back checks guard and reference tag. */
	assert_ok(pnvme_read_md(e.qp, e.ns, buf, md, 0, 8, PNVME_IO_PRCHK_GUARD |
				PNVME_IO_PRCHK_REF, 0, 0, cpl_cb, &c));
	reap(&e, 1);
	assert_int_equal(c.err, 0);
	/* A wrong application tag checked: the NVMe status reaches the callback. */
	memset(&c, 0, sizeof(c));
	assert_ok(pnvme_read_md(e.qp, e.ns, buf, md, 0, 1, PNVME_IO_PRCHK_APP, 0x1234, 0xffff,
				cpl_cb, &c));
	reap(&e, 1);
	assert_int_not_equal(c.err, 0);
	assert_int_equal(PNVME_CQE_STATUS(&c.cqe) & 0x7ff, PNVME_STATUS(PNVME_SCT_MEDIA, PNVME_SC_APPTAG_CHECK));
	env_close(&e);
}

static void test_bad_arguments(void **state)
{
	struct pnvme_qpair_opts o;
	struct pnvme_qpair_stats st;
	struct cpl c = { 0 };
	struct env e;
	(void)state;

	pnvme_qpair_opts_default(&o);
	o.depth = 1; /* one tracker: a leaked tracker would show at once */
	env_open(&e, "size=1M,lba=512", &o);
	uint64_t n = e.ns->nlba;
	uint8_t *buf = dma_buf(&e, 8192);
	uint64_t cmds = emu_commands(&e);

	/* LBA range */
	assert_rc(pnvme_read(e.qp, e.ns, buf, n, 1, 0, cpl_cb, &c), -ERANGE);
	assert_rc(pnvme_read(e.qp, e.ns, buf, n - 1, 2, 0, cpl_cb, &c), -ERANGE);
	assert_rc(pnvme_write(e.qp, e.ns, buf, UINT64_MAX, 1, 0, cpl_cb, &c), -ERANGE);
	assert_rc(pnvme_write(e.qp, e.ns, buf, UINT64_MAX - 1, 4, 0, cpl_cb, &c), -ERANGE);
	assert_rc(pnvme_write_zeroes(e.qp, e.ns, n - 2, 3, 0, cpl_cb, &c), -ERANGE);
	struct pnvme_dsm_range r = { .slba = n - 1, .nlb = 2 };
	assert_rc(pnvme_dsm(e.qp, e.ns, &r, 1, PNVME_DSM_AD, cpl_cb, &c), -ERANGE);
	/* nlb 0 */
	assert_rc(pnvme_read(e.qp, e.ns, buf, 0, 0, 0, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_write(e.qp, e.ns, buf, 0, 0, 0, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_write_zeroes(e.qp, e.ns, 0, 0, 0, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_read_sync(e.qp, e.ns, buf, 0, 0, 0), -EINVAL);
	/* flags */
	assert_rc(pnvme_read(e.qp, e.ns, buf, 0, 1, PNVME_IO_DEAC, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_write(e.qp, e.ns, buf, 0, 1, 1u << 3, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_write_zeroes(e.qp, e.ns, 0, 1, 1u << 3, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_write_zeroes(e.qp, e.ns, 0, 65537, 0, cpl_cb, &c), -EINVAL);
	/* DSM ranges and attributes */
	r.slba = 0;
	r.nlb = 1;
	assert_rc(pnvme_dsm(e.qp, e.ns, &r, 0, PNVME_DSM_AD, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_dsm(e.qp, e.ns, &r, 257, PNVME_DSM_AD, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_dsm(e.qp, e.ns, NULL, 1, PNVME_DSM_AD, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_dsm(e.qp, e.ns, &r, 1, 1u << 8, cpl_cb, &c), -EINVAL);
	/* Buffers: ordinary memory, not dword aligned, NULL. */
	uint8_t *plain = malloc(8192);
	assert_non_null(plain);
	assert_rc(pnvme_read(e.qp, e.ns, plain, 0, 1, 0, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_write(e.qp, e.ns, plain, 0, 1, 0, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_read_sync(e.qp, e.ns, plain, 0, 1, 0), -EINVAL);
	assert_rc(pnvme_read(e.qp, e.ns, buf + 2, 0, 1, 0, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_write(e.qp, e.ns, buf + 1, 0, 1, 0, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_read(e.qp, e.ns, NULL, 0, 1, 0, cpl_cb, &c), -EINVAL);
	struct pnvme_sqe sqe = { .opc = PNVME_NVM_READ, .nsid = 1 };
	assert_rc(pnvme_io_passthru(e.qp, &sqe, plain, 512, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_io_passthru(e.qp, &sqe, NULL, 512, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_io_passthru(e.qp, NULL, buf, 512, cpl_cb, &c), -EINVAL);
	free(plain);

	/* The device saw none of it; no tracker leaked; nothing was counted. */
	pnvme_qpair_flush(e.qp);
	(void)pnvme_emu_step(e.emu);
	assert_int_equal(emu_commands(&e), cmds);
	assert_int_equal(c.calls, 0);
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.submitted, 0);
	assert_int_equal(st.sq_doorbells, 0);

	/* The edges that are valid: last block; dword-aligned, non-page-aligned buffer. */
	assert_ok(pnvme_read(e.qp, e.ns, buf + 4, n - 1, 1, 0, cpl_cb, &c));
	reap(&e, 1);
	assert_int_equal(c.err, 0);
	assert_ok(pnvme_write_sync(e.qp, e.ns, buf + 8, n - 2, 2, PNVME_IO_FUA));
	assert_ok(pnvme_read_sync(e.qp, e.ns, buf + 12, 0, 1, PNVME_IO_LR | PNVME_IO_FUA));
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* Timeouts                                                                 */
/*
 * A dropped completion walks the timeout ladder: deadline, Abort, and (the
 * command was already executed, so the Abort cannot catch it, or the
 * emulator aborts it) either the device's Abort Requested completion or a
 * controller reset after the admin timeout. Either way the callback runs
 * once with -ETIMEDOUT, soon after the deadline, and the queue pair works on.
 */
static void test_timeout_dropped_completion(void **state)
{
	struct pnvme_qpair_opts o;
	struct pnvme_ctrl_opts co;
	struct pnvme_qpair_stats st;
	struct cpl c = { 0 }, before = { 0 }, after = { 0 };
	struct env e;
	(void)state;

	pnvme_ctrl_opts_default(&co);
	co.admin_timeout_ms = 100;
	env_copts = &co;
	pnvme_qpair_opts_default(&o);
	o.timeout_ms = 50;
	env_open(&e, "size=1M", &o);
	env_copts = NULL;
	struct pnvme_emu_fault f = {
		.kind = PNVME_EMU_FAULT_DROP_CPL,
		.qid = pnvme_qpair_id(e.qp),
		.opc = PNVME_NVM_READ,
		.skip = 1,
		.count = 1,
	};
	void *buf = dma_buf(&e, 4096);
	assert_ok(pnvme_emu_inject(e.emu, &f));
	pnvme_qpair_set_timeout(e.qp, NO_TIMEOUT_MS);    /* `before` must not time out */
	assert_ok(pnvme_read(e.qp, e.ns, buf, 0, 1, 0, cpl_cb, &before));
	pnvme_qpair_set_timeout(e.qp, 50);
	double t0 = now_s();
	assert_ok(pnvme_read(e.qp, e.ns, buf, 1, 1, 0, cpl_cb, &c));
	pnvme_qpair_flush(e.qp);
	(void)pnvme_emu_step(e.emu);
	while (c.calls == 0 && now_s() - t0 < 5.0) {
		(void)pnvme_emu_step(e.emu);
		assert_true(pnvme_qpair_poll(e.qp, 0) >= 0);
		usleep(1000);
	}
	double dt = now_s() - t0;
	assert_int_equal(before.calls, 1);
	assert_int_equal(before.err, 0);
	assert_int_equal(c.calls, 1);
	assert_rc(c.err, -ETIMEDOUT);
	/* not before the deadline (50 ms); at most the abort's admin timeout (100 ms) later */
	if (dt < 0.050 - 0.001 || dt > 0.050 + 0.100 + SLACK_S)
		fail_msg("timed out after %.3f s with a 50 ms deadline", dt);
	uint16_t st_field = PNVME_STATUS_CODE(PNVME_CQE_STATUS(&c.cqe));
	if (st_field == PNVME_STATUS(PNVME_SCT_PATH, PNVME_SC_HOST_ABORTED_CMD)) {
		/* Reset path: host-side completion, DNR set. */
		assert_true(PNVME_STATUS_IS_DNR(PNVME_CQE_STATUS(&c.cqe)));
		assert_int_equal(pnvme_ctrl_resets(e.ctrl), 1);
	} else {
		/* The device aborted it on request. */
		assert_int_equal(st_field, PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_ABORT_REQ));
	}
	assert_int_equal(c.cqe.sqid, pnvme_qpair_id(e.qp));
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.aborts, 1);
	assert_int_equal(st.submitted, 2);
	assert_int_equal(st.completed, 2);
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);

	/* More polling does not complete it again; the queue stays usable. */
	for (int i = 0; i < 5; i++) {
		(void)pnvme_emu_step(e.emu);
		assert_int_equal(pnvme_qpair_poll(e.qp, 0), 0);
	}
	assert_int_equal(c.calls, 1);
	pnvme_qpair_set_timeout(e.qp, NO_TIMEOUT_MS);
	assert_ok(pnvme_read(e.qp, e.ns, buf, 2, 1, 0, cpl_cb, &after));
	reap(&e, 1);
	assert_int_equal(after.err, 0);
	assert_ok(pnvme_read_sync(e.qp, e.ns, buf, 0, 1, 0));

	/* The sync helpers time out the same way (deadline set per queue pair). */
	f.skip = 0;
	assert_ok(pnvme_emu_inject(e.emu, &f));
	pnvme_qpair_set_timeout(e.qp, 50);
	t0 = now_s();
	assert_rc(pnvme_read_sync(e.qp, e.ns, buf, 0, 1, 0), -ETIMEDOUT);
	dt = now_s() - t0;
	if (dt < 0.050 - 0.001 || dt > 0.050 + 0.100 + SLACK_S)
		fail_msg("sync read timed out after %.3f s with a 50 ms deadline", dt);
	pnvme_emu_clear_faults(e.emu);
	pnvme_qpair_set_timeout(e.qp, NO_TIMEOUT_MS);
	assert_ok(pnvme_read_sync(e.qp, e.ns, buf, 0, 1, 0));
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}

/*
 * A completion held past its deadline: the Abort reaches the held command,
 * which completes once with the device's Abort Requested status, reported as
 * -ETIMEDOUT; its command id is free at once, no reset, no stray CQE.
 * (Held 1 s, deadline 20 ms: the Abort comes long before the completion.)
 */
static void test_late_completion_after_timeout(void **state)
{
	struct pnvme_qpair_opts o;
	struct pnvme_qpair_stats st;
	struct cpl c = { 0 }, next = { 0 };
	struct env e;
	(void)state;

	pnvme_qpair_opts_default(&o);
	o.depth = 1; /* the one tracker */
	o.timeout_ms = 20;
	env_open(&e, "size=1M", &o);
	struct pnvme_emu_fault f = {
		.kind = PNVME_EMU_FAULT_DELAY_CPL,
		.qid = pnvme_qpair_id(e.qp),
		.opc = PNVME_NVM_READ,
		.count = 1,
		.delay_us = 1000000,
	};
	void *buf = dma_buf(&e, 4096);
	assert_ok(pnvme_emu_inject(e.emu, &f));
	double t0 = now_s();
	assert_ok(pnvme_read(e.qp, e.ns, buf, 0, 1, 0, cpl_cb, &c));
	while (c.calls == 0 && now_s() - t0 < 2.0) {
		pnvme_qpair_flush(e.qp);
		(void)pnvme_emu_step(e.emu);
		(void)pnvme_qpair_poll(e.qp, 0);
		usleep(1000);
	}
	assert_int_equal(c.calls, 1);
	assert_rc(c.err, -ETIMEDOUT);
	/* not before the deadline; settled by the Abort (its status), before the held
	 * completion was due */
	assert_true(now_s() - t0 >= 0.020 - 0.001);
	assert_true(now_s() - t0 < 1.0);
	assert_int_equal(PNVME_STATUS_CODE(PNVME_CQE_STATUS(&c.cqe)),
			 PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_ABORT_REQ));
	/* The one tracker is free again. */
	pnvme_qpair_set_timeout(e.qp, NO_TIMEOUT_MS);
	assert_ok(pnvme_read(e.qp, e.ns, buf, 1, 1, 0, cpl_cb, &next));
	reap(&e, 1);
	assert_int_equal(next.err, 0);
	assert_int_equal(c.calls, 1);
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.aborts, 1);
	assert_int_equal(st.bad_cqes, 0);
	assert_int_equal(pnvme_ctrl_resets(e.ctrl), 0);
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* Teardown with I/O outstanding                                            */
/* ------------------------------------------------------------------------ */

static void check_all_done_once(const struct cpl *c, int n)
{
	for (int i = 0; i < n; i++) {
		if (c[i].calls != 1)
			fail_msg("request %d: %d callbacks", i, c[i].calls);
		if (c[i].err != 0 && c[i].err != -ECANCELED)
			fail_msg("request %d: err %d", i, c[i].err);
	}
}

static void test_close_with_io_outstanding(void **state)
{
	enum { N = 24 };
	struct cpl c[N] = { { 0 } };
	struct pnvme_qpair *qp2;
	struct env e;
	(void)state;

	env_open(&e, "size=1M", NULL);
	assert_ok(pnvme_qpair_create(e.ctrl, NULL, &qp2));
	void *buf = dma_buf(&e, 8 * 4096);
	/* Queue 1: posted, never flushed. Queue 2: flushed, device not run. */
	for (int i = 0; i < N / 2; i++)
		assert_ok(pnvme_write(e.qp, e.ns, buf, (uint64_t)i * 8, 8, 0, cpl_cb, &c[i]));
	for (int i = N / 2; i < N; i++)
		assert_ok(pnvme_read(qp2, e.ns, buf, (uint64_t)i, 1, 0, cpl_cb, &c[i]));
	pnvme_qpair_flush(qp2);
	/* Plus a command the device will never complete. */
	struct pnvme_emu_fault f = {
		.kind = PNVME_EMU_FAULT_DROP_CPL, .qid = 2, .opc = PNVME_NVM_FLUSH, .count = 1,
	};
	struct cpl dropped = { 0 };
	assert_ok(pnvme_emu_inject(e.emu, &f));
	assert_ok(pnvme_flush(qp2, e.ns, cpl_cb, &dropped));
	pnvme_qpair_flush(qp2);
	(void)pnvme_emu_step(e.emu);

	assert_ok(pnvme_ctrl_close(e.ctrl));
	check_all_done_once(c, N);
	assert_int_equal(dropped.calls, 1);
	assert_rc(dropped.err, -ECANCELED);
	(void)buf; /* DMA memory goes with the controller */
	pnvme_emu_destroy(e.emu);
}

static void test_destroy_with_io_outstanding(void **state)
{
	enum { N = 16 };
	struct cpl c[N] = { { 0 } };
	struct env e;
	(void)state;

	env_open(&e, "size=1M", NULL);
	void *buf = dma_buf(&e, 4096);
	for (int i = 0; i < N; i++)
		assert_ok(pnvme_read(e.qp, e.ns, buf, (uint64_t)i, 1, 0, cpl_cb, &c[i]));
	assert_ok(pnvme_qpair_destroy(e.qp));
	e.qp = NULL;
	check_all_done_once(c, N);
	/* The controller is fine afterwards. */
	assert_ok(pnvme_qpair_create(e.ctrl, NULL, &e.qp));
	assert_ok(pnvme_read_sync(e.qp, e.ns, buf, 0, 1, 0));
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}

/*
 * The device disappears (every register reads all ones) with I/O in flight:
 * the next deadline scan notices, every request completes once with -ENODEV,
 * and every later call says -ENODEV instead of waiting.
 */
static void test_device_removed(void **state)
{
	enum { N = 4 };
	struct pnvme_emu_fault f = { .kind = PNVME_EMU_FAULT_ALL_ONES };
	struct pnvme_qpair *qp2 = NULL;
	struct cpl c[N] = { { 0 } }, late = { 0 };
	struct env e;
	(void)state;

	env_open(&e, "size=1M", NULL);
	void *buf = dma_buf(&e, 4096);
	for (int i = 0; i < N; i++)
		assert_ok(pnvme_read(e.qp, e.ns, buf, (uint64_t)i, 1, 0, cpl_cb, &c[i]));
	pnvme_qpair_flush(e.qp);
	assert_ok(pnvme_emu_inject(e.emu, &f));
	double t0 = now_s();
	int rc = 0;
	while (c[N - 1].calls == 0 && now_s() - t0 < 10.0) {
		(void)pnvme_emu_step(e.emu);
		rc = pnvme_qpair_poll(e.qp, 0);
		if (rc < 0)
			break;
		usleep(1000);
	}
	assert_rc(rc, -ENODEV);
	/*
	 * Found by the periodic CSTS check (every 100 ms), not by a timeout: no
	 * request timed out, and well before the 30 s I/O deadline.
	 */
	struct pnvme_qpair_stats rst;
	pnvme_qpair_get_stats(e.qp, &rst);
	assert_int_equal(rst.timeouts, 0);
	assert_int_equal(rst.aborts, 0);
	assert_true(now_s() - t0 < 0.1 + SLACK_S);
	for (int i = 0; i < N; i++) {
		assert_int_equal(c[i].calls, 1);
		assert_rc(c[i].err, -ENODEV);
	}
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	assert_rc(pnvme_qpair_poll(e.qp, 0), -ENODEV);

	/* Every later call fails at once with -ENODEV. */
	uint32_t dw0;
	assert_rc(pnvme_read_sync(e.qp, e.ns, buf, 0, 1, 0), -ENODEV);
	assert_rc(pnvme_get_features(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, &dw0), -ENODEV);
	assert_rc(pnvme_qpair_create(e.ctrl, NULL, &qp2), -ENODEV);
	assert_rc(pnvme_flush(e.qp, e.ns, cpl_cb, &late), -ENODEV);
	/* Documented for every NVM I/O command: -ENODEV once the controller is gone. */
	rc = pnvme_read(e.qp, e.ns, buf, 0, 1, 0, cpl_cb, &late);
	if (rc == 0) {
		(void)pnvme_qpair_poll(e.qp, 0); /* so that the request completes anyway */
		fail_msg("pnvme_read on a controller known to be gone returned 0 (posted to a "
			 "dead device; callback err %d): DRIVER BUG io.c submit_rw lacks the "
			 "ctrl->dead check that qpair_submit_raw and pnvme_dsm have", late.err);
	}
	assert_rc(rc, -ENODEV);
	assert_int_equal(late.calls, 0);

	assert_ok(pnvme_qpair_destroy(e.qp));
	e.qp = NULL;
	assert_rc(pnvme_ctrl_close(e.ctrl), -ENODEV);
	pnvme_emu_destroy(e.emu);
}

/* ------------------------------------------------------------------------ */
/* Flush, Write Zeroes, DSM, passthrough, sync helpers                      */
/* ------------------------------------------------------------------------ */

static void test_flush_zeroes_dsm_passthru(void **state)
{
	enum { NB = 16 };
	struct env e;
	(void)state;

	env_open(&e, "size=1M,lba=4096", NULL);
	size_t bs = e.ns->lba_size;
	uint8_t *buf = dma_buf(&e, NB * bs);
	uint8_t *want = malloc(NB * bs);
	assert_non_null(want);
	fill(want, NB * bs, 9);
	memcpy(buf, want, NB * bs);
	assert_ok(pnvme_write_sync(e.qp, e.ns, buf, 0, NB, 0));
	assert_ok(pnvme_flush_sync(e.qp, e.ns));
	assert_media(&e, 0, NB, want);

	/* Write Zeroes 4..7, with DEAC 8..11; DSM deallocate 12..13. */
	assert_ok(pnvme_write_zeroes_sync(e.qp, e.ns, 4, 4, 0));
	assert_ok(pnvme_write_zeroes_sync(e.qp, e.ns, 8, 4, PNVME_IO_DEAC));
	struct pnvme_dsm_range r[2] = {
		{ .slba = 12, .nlb = 1 },
		{ .slba = 13, .nlb = 1 },
	};
	assert_ok(pnvme_dsm_sync(e.qp, e.ns, r, 2, PNVME_DSM_AD));
	memset(want + 4 * bs, 0, 10 * bs);
	memset(buf, 0xcc, NB * bs);
	assert_ok(pnvme_read_sync(e.qp, e.ns, buf, 0, NB, 0));
	assert_memory_equal(buf, want, NB * bs);
	assert_media(&e, 0, NB, want);

	/* Async forms. */
	struct cpl cf = { 0 }, cz = { 0 }, cd = { 0 };
	assert_ok(pnvme_flush(e.qp, e.ns, cpl_cb, &cf));
	assert_ok(pnvme_write_zeroes(e.qp, e.ns, 0, 1, PNVME_IO_FUA, cpl_cb, &cz));
	r[0].slba = 1;
	assert_ok(pnvme_dsm(e.qp, e.ns, r, 1, PNVME_DSM_AD | PNVME_DSM_IDR, cpl_cb, &cd));
	reap(&e, 3);
	assert_int_equal(cf.err | cz.err | cd.err, 0);
	memset(want, 0, 2 * bs);
	assert_media(&e, 0, NB, want);

	/* Raw I/O: a Write then a Read built by hand. */
	struct pnvme_sqe sqe = { 0 };
	struct pnvme_cqe cqe;
	fill(buf, 2 * bs, 31);
	memcpy(want + 2 * bs, buf, 2 * bs);
	sqe.opc = PNVME_NVM_WRITE;
	sqe.nsid = 1;
	sqe.cdw10 = 2;
	sqe.cdw12 = 1; /* 2 blocks, 0's based */
	assert_ok(pnvme_io_passthru_sync(e.qp, &sqe, buf, 2 * bs, &cqe));
	assert_int_equal(PNVME_CQE_STATUS(&cqe), 0);
	assert_int_equal(cqe.sqid, pnvme_qpair_id(e.qp));
	memset(buf, 0, NB * bs);
	sqe.opc = PNVME_NVM_READ;
	sqe.cdw10 = 0;
	sqe.cdw12 = NB - 1;
	struct cpl cr = { 0 };
	assert_ok(pnvme_io_passthru(e.qp, &sqe, buf, NB * bs, cpl_cb, &cr));
	reap(&e, 1);
	assert_int_equal(cr.err, 0);
	assert_memory_equal(buf, want, NB * bs);
	/* An opcode the NVM command set does not have. */
	sqe.opc = 0x7e;
	sqe.cdw12 = 0;
	assert_rc(pnvme_io_passthru_sync(e.qp, &sqe, NULL, 0, &cqe), -EOPNOTSUPP);
	assert_int_equal(PNVME_STATUS_CODE(PNVME_CQE_STATUS(&cqe)),
			 PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INVALID_OPCODE));
	/* A namespace that does not exist. */
	sqe.opc = PNVME_NVM_FLUSH;
	sqe.nsid = 7;
	assert_rc(pnvme_io_passthru_sync(e.qp, &sqe, NULL, 0, &cqe), -EIO);
	assert_int_equal(PNVME_STATUS_CODE(PNVME_CQE_STATUS(&cqe)),
			 PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INVALID_NS));
	free(want);
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                */
/* ------------------------------------------------------------------------ */

struct chain {
	struct env *e;
	void *buf;
	int left;
	int calls;
	int nested_poll;
	int nested_sync;
};

static void chain_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct chain *ch = arg;
	(void)cqe;
	ch->calls++;
	if (err)
		return;
	/* Polling or waiting on the same queue pair from its callback is refused. */
	ch->nested_poll = pnvme_qpair_poll(ch->e->qp, 0);
	ch->nested_sync = pnvme_read_sync(ch->e->qp, ch->e->ns, ch->buf, 0, 1, 0);
	/* Submitting is allowed. */
	if (--ch->left > 0)
		assert_ok(pnvme_read(ch->e->qp, ch->e->ns, ch->buf, (uint64_t)ch->left, 1, 0,
				     chain_cb, ch));
}

static void test_callback_resubmits(void **state)
{
	struct env e;
	(void)state;

	env_open(&e, "size=1M", NULL);
	struct chain ch = { .e = &e, .buf = dma_buf(&e, 4096), .left = 50 };
	uint64_t cmds = emu_commands(&e);
	assert_ok(pnvme_read(e.qp, e.ns, ch.buf, 0, 1, 0, chain_cb, &ch));
	for (int i = 0; i < 200 && ch.left > 0; i++) {
		pnvme_qpair_flush(e.qp);
		(void)pnvme_emu_step(e.emu);
		assert_true(pnvme_qpair_poll(e.qp, 0) >= 0);
	}
	assert_int_equal(ch.left, 0);
	assert_int_equal(ch.calls, 50);
	assert_rc(ch.nested_poll, -EDEADLK);
	assert_rc(ch.nested_sync, -EDEADLK);
	assert_int_equal(emu_commands(&e) - cmds, 50);
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	pnvme_dma_free(e.ctrl, ch.buf);
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* Threaded emulator                                                        */
/* ------------------------------------------------------------------------ */

static uint32_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 11);
}

/* Random sync writes and verified reads against a shadow copy. */
static void test_threaded_random_io(void **state)
{
	enum { BLOCKS = 2048, OPS = 3000, MAXNB = 8 };
	struct env e;
	uint64_t seed = 0x1234567;
	(void)state;

	env_open(&e, "mode=thread,size=1M,lba=512", NULL);
	assert_true(pnvme_emu_threaded(e.emu));
	uint8_t *shadow = calloc(BLOCKS, 512);
	uint8_t *buf = dma_buf(&e, MAXNB * 512);
	assert_non_null(shadow);
	for (int i = 0; i < OPS; i++) {
		uint32_t nb = 1 + rnd(&seed) % MAXNB;
		uint64_t lba = rnd(&seed) % (BLOCKS - nb + 1);
		if (rnd(&seed) & 1) {
			fill(buf, nb * 512, (uint32_t)i);
			memcpy(shadow + lba * 512, buf, nb * 512);
			assert_ok(pnvme_write_sync(e.qp, e.ns, buf, lba, nb, 0));
		} else {
			memset(buf, 0xee, nb * 512);
			assert_ok(pnvme_read_sync(e.qp, e.ns, buf, lba, nb, 0));
			if (memcmp(buf, shadow + lba * 512, nb * 512) != 0)
				fail_msg("op %d: read of %u blocks at %llu differs", i, nb,
					 (unsigned long long)lba);
		}
	}
	assert_media(&e, 0, BLOCKS, shadow);
	free(shadow);
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}

/* Two threads, each with its own queue pair, async batches on disjoint halves. */
struct worker {
	struct pnvme_ctrl *ctrl;
	const struct pnvme_ns *ns;
	uint64_t base;     /* first LBA of this worker's half */
	uint32_t seed;
	int failures;
	char msg[160];
};

struct wcpl {
	int calls;
	int err;
};

static void wcpl_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct wcpl *c = arg;
	(void)cqe;
	c->calls++;
	c->err = err;
}

static int worker_wait(struct pnvme_qpair *qp, struct wcpl *c, int n)
{
	double t0 = now_s();
	for (;;) {
		int done = 0;
		for (int i = 0; i < n; i++)
			done += c[i].calls;
		if (done == n)
			return 0;
		int rc = pnvme_qpair_poll(qp, 0);
		if (rc < 0 || now_s() - t0 > 60.0)
			return rc < 0 ? rc : -ETIMEDOUT;
		if (rc == 0)
			sched_yield(); /* the emulator thread may need this core */
	}
}

/* Record a failure; the first message is kept. */
__attribute__((format(printf, 2, 3)))
static void worker_fail(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	if (w->failures++ == 0) {
		va_start(ap, fmt);
		vsnprintf(w->msg, sizeof(w->msg), fmt, ap);
		va_end(ap);
	}
}

static void *worker_main(void *arg)
{
	enum { BATCH = 16, ROUNDS = 100, SLOTS = 512 };
	struct worker *w = arg;
	struct pnvme_qpair *qp = NULL;
	uint8_t *buf = NULL;
	uint64_t s = w->seed;
	int rc;

	rc = pnvme_qpair_create(w->ctrl, NULL, &qp);
	if (rc == 0)
		rc = pnvme_dma_alloc(w->ctrl, BATCH * 512 * 2, 0, (void **)&buf, NULL);
	if (rc) {
		worker_fail(w, "setup: %d %s", rc, pnvme_last_error());
		goto out;
	}
	for (int round = 0; round < ROUNDS && !w->failures; round++) {
		struct wcpl c[BATCH] = { { 0 } };
		uint64_t lba[BATCH];
		/* BATCH distinct slots: no two requests in flight overlap. */
		uint32_t first = rnd(&s) % SLOTS;
		for (int i = 0; i < BATCH; i++) {
			lba[i] = w->base + (first + (uint32_t)i * 31u) % SLOTS;
			fill(buf + i * 512, 512, w->seed + (uint32_t)(round * BATCH + i));
			rc = pnvme_write(qp, w->ns, buf + i * 512, lba[i], 1, 0, wcpl_cb, &c[i]);
			if (rc)
				worker_fail(w, "round %d: write %d: %d", round, i, rc);
		}
		rc = worker_wait(qp, c, BATCH);
		if (rc)
			worker_fail(w, "round %d: waiting for writes: %d", round, rc);
		memset(c, 0, sizeof(c));
		uint8_t *rbuf = buf + BATCH * 512;
		memset(rbuf, 0, BATCH * 512);
		for (int i = 0; i < BATCH; i++) {
			rc = pnvme_read(qp, w->ns, rbuf + i * 512, lba[i], 1, 0, wcpl_cb, &c[i]);
			if (rc)
				worker_fail(w, "round %d: read %d: %d", round, i, rc);
		}
		rc = worker_wait(qp, c, BATCH);
		if (rc)
			worker_fail(w, "round %d: waiting for reads: %d", round, rc);
		for (int i = 0; i < BATCH; i++) {
			if (c[i].err || memcmp(rbuf + i * 512, buf + i * 512, 512) != 0)
				worker_fail(w, "round %d: request %d: err %d or data differs", round,
					    i, c[i].err);
		}
	}
out:
	pnvme_dma_free(w->ctrl, buf);
	if (qp && (rc = pnvme_qpair_destroy(qp)) != 0)
		worker_fail(w, "destroy: %d", rc);
	return NULL;
}

static void test_threaded_two_qpairs(void **state)
{
	struct worker w[2];
	pthread_t t[2];
	struct env e;
	(void)state;

	env_open(&e, "mode=thread,size=1M,lba=512", NULL);
	for (int i = 0; i < 2; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].ctrl = e.ctrl;
		w[i].ns = e.ns;
		w[i].base = (uint64_t)i * 1024;
		w[i].seed = 1000u * (uint32_t)(i + 1);
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	/* Meanwhile, this thread uses the controller's first queue pair and admin queue. */
	void *buf = dma_buf(&e, 4096);
	for (int i = 0; i < 200; i++) {
		assert_ok(pnvme_read_sync(e.qp, e.ns, buf, 2047, 1, 0));
		if (i % 50 == 0) {
			struct pnvme_smart_log log;
			assert_ok(pnvme_smart_log(e.ctrl, &log));
		}
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (w[i].failures)
			fail_msg("worker %d: %d failures (%s)", i, w[i].failures, w[i].msg);
	}
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_defaults),
		cmocka_unit_test(test_create_limits),
		cmocka_unit_test(test_create_null_ctrl),
		cmocka_unit_test(test_create_too_many),
		cmocka_unit_test(test_roundtrip_512),
		cmocka_unit_test(test_roundtrip_4096),
		cmocka_unit_test(test_prp_lists),
		cmocka_unit_test(test_multi_namespace),
		cmocka_unit_test(test_phase_wrap_ring2),
		cmocka_unit_test(test_phase_wrap_ring3),
		cmocka_unit_test(test_phase_wrap_ring4),
		cmocka_unit_test(test_phase_wrap_ring1024),
		cmocka_unit_test(test_queue_full_eagain),
		cmocka_unit_test(test_queue_full_eagain_immediate),
		cmocka_unit_test(test_doorbell_immediate),
		cmocka_unit_test(test_doorbell_batched),
		cmocka_unit_test(test_lazy_cq_ring2),
		cmocka_unit_test(test_lazy_cq_ring4),
		cmocka_unit_test(test_lazy_cq_ring33),
		cmocka_unit_test(test_doorbell_stride_1),
		cmocka_unit_test(test_doorbell_stride_3),
		cmocka_unit_test(test_out_of_order_completions),
		cmocka_unit_test(test_error_status_propagation),
		cmocka_unit_test(test_mdts_limit),
		cmocka_unit_test(test_split_sizes),
		cmocka_unit_test(test_split_queue_full),
		cmocka_unit_test(test_split_child_error),
		cmocka_unit_test(test_split_separate_md),
		cmocka_unit_test(test_readv_writev_prp),
		cmocka_unit_test(test_readv_writev_scattered),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_buffer_bounds),
		cmocka_unit_test(test_metadata_sizes_and_refusals),
		cmocka_unit_test(test_timeout_dropped_completion),
		cmocka_unit_test(test_late_completion_after_timeout),
		cmocka_unit_test(test_close_with_io_outstanding),
		cmocka_unit_test(test_destroy_with_io_outstanding),
		cmocka_unit_test(test_device_removed),
		cmocka_unit_test(test_flush_zeroes_dsm_passthru),
		cmocka_unit_test(test_callback_resubmits),
		cmocka_unit_test(test_threaded_random_io),
		cmocka_unit_test(test_threaded_two_qpairs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
