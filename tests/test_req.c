/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_req.c - prepared requests (pnvme/req.h, src/core/req.c) against the
 * emulated controller in step mode, and one round trip over NVMe/TCP
 * (tests/tcp_peer.c).
 *
 * Covers: data round trips (one block, two pages, a PRP list, an unaligned
 * buffer), resubmission from the callback, the checks at prepare time (NULL
 * arguments, another controller's namespace, nlb and flags, metadata, bad
 * buffers), at submit time (another queue pair, a released request, the LBA
 * range, in flight: -EBUSY, a freed buffer, a namespace formatted to another
 * block size), request slots (prepared requests hold trackers), statistics
 * and pnvme_qpair_outstanding(), and that timeouts, a controller reset with
 * and without retries, queue pair destruction and a dead controller complete
 * each submission exactly once.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <pnvme/pnvme.h>

#include "tcp_peer.h"
#include "test_helpers.h"

struct env {
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	const struct pnvme_ns *ns;
};

/* "OPTIONS": emulator options after "emu:mode=step,"; qo NULL: defaults. */
static void env_open(struct env *e, const char *opts, const struct pnvme_qpair_opts *qo,
		     const struct pnvme_ctrl_opts *co)
{
	char spec[256];

	memset(e, 0, sizeof(*e));
	snprintf(spec, sizeof(spec), "emu:mode=step%s%s", *opts ? "," : "", opts);
	assert_ok(pnvme_emu_create(spec, &e->emu));
	assert_ok(pnvme_ctrl_open_emu(e->emu, co, &e->ctrl));
	e->ns = pnvme_ctrl_ns(e->ctrl, 1);
	assert_non_null(e->ns);
	assert_ok(pnvme_qpair_create(e->ctrl, qo, &e->qp));
}

static void env_close(struct env *e)
{
	if (e->qp)
		assert_ok(pnvme_qpair_destroy(e->qp));
	assert_ok(pnvme_ctrl_close(e->ctrl));
	pnvme_emu_destroy(e->emu);
}

static void *dma_buf(struct env *e, size_t len)
{
	void *p = NULL;

	assert_ok(pnvme_dma_alloc(e->ctrl, len, 0, &p, NULL));
	return p;
}

/* Completions of one request: how many, each one's error, the last CQE. */
struct cpl {
	int calls;
	int err;
	int errs[16];
	struct pnvme_cqe cqe;
};

static void cpl_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct cpl *c = arg;

	if (c->calls < 16)
		c->errs[c->calls] = err;
	c->calls++;
	c->err = err;
	c->cqe = *cqe;
}

/* Flush, step the device, poll until `c` has `want` calls (bounded). */
static void wait_calls(struct env *e, struct cpl *c, int want)
{
	for (int i = 0; i < 1000 && c->calls < want; i++) {
		pnvme_qpair_flush(e->qp);
		(void)pnvme_emu_step(e->emu);
		assert_true(pnvme_qpair_poll(e->qp, 0) >= 0);
	}
	assert_int_equal(c->calls, want);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------ */
/* Data                                                                     */
/* ------------------------------------------------------------------------ */

/* Write then read back `nlb` blocks at `off` bytes into a buffer, at two LBAs each. */
static void roundtrip(const char *opts, uint32_t nlb, size_t off)
{
	struct pnvme_req w, r;
	struct cpl cw = { 0 }, cr = { 0 };
	struct env e;

	env_open(&e, opts, NULL, NULL);
	uint32_t bs = e.ns->lba_size;
	size_t len = (size_t)nlb * bs;
	uint8_t *wb = dma_buf(&e, off + len), *rb = dma_buf(&e, off + len);

	assert_ok(pnvme_req_prep_write(e.qp, &w, e.ns, wb + off, nlb, 0, cpl_cb, &cw));
	assert_ok(pnvme_req_prep_read(e.qp, &r, e.ns, rb + off, nlb, 0, cpl_cb, &cr));
	for (int i = 0; i < 2; i++) {
		uint64_t slba = i == 0 ? 0 : e.ns->nlba - nlb; /* first and last blocks */
		for (uint32_t b = 0; b < nlb; b++)
			test_block_fill(wb + off + (size_t)b * bs, bs, slba + b, 77 + (uint32_t)i);
		assert_ok(pnvme_req_submit(e.qp, &w, slba));
		wait_calls(&e, &cw, i + 1);
		assert_int_equal(cw.err, 0);
		memset(rb, 0, off + len);
		assert_ok(pnvme_req_submit(e.qp, &r, slba));
		wait_calls(&e, &cr, i + 1);
		assert_int_equal(cr.err, 0);
		for (uint32_t b = 0; b < nlb; b++)
			assert_true(test_block_is(rb + off + (size_t)b * bs, bs, slba + b,
						  77 + (uint32_t)i));
		/* The media holds it too (not only the buffers). */
		uint8_t *m = malloc(len);
		assert_non_null(m);
		assert_ok(pnvme_emu_media_read(e.emu, 1, slba * bs, m, len));
		assert_memory_equal(m, wb + off, len);
		free(m);
	}
	assert_ok(pnvme_req_release(&w));
	assert_ok(pnvme_req_release(&r));
	assert_ok(pnvme_dma_free(e.ctrl, wb));
	assert_ok(pnvme_dma_free(e.ctrl, rb));
	env_close(&e);
}

static void test_roundtrip_one_block(void **state)
{
	(void)state;
	roundtrip("size=1M", 1, 0);
}

static void test_roundtrip_two_pages(void **state)
{
	(void)state;
	roundtrip("size=1M,lba=4096", 2, 0);
}

static void test_roundtrip_prp_list(void **state)
{
	(void)state;
	roundtrip("size=1M,lba=4096", 7, 0); /* 7 pages: PRP2 is a list */
}

static void test_roundtrip_unaligned(void **state)
{
	(void)state;
	roundtrip("size=1M", 9, 100 * 4); /* dword aligned, starts inside a page */
}

/* The callback submits the same request again: the loop of a benchmark. */
struct loop {
	struct pnvme_qpair *qp;
	struct pnvme_req *req;
	int left;
	int calls;
	int err;
};

static void loop_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct loop *l = arg;

	(void)cqe;
	l->calls++;
	if (err && !l->err)
		l->err = err;
	if (--l->left > 0) {
		int rc = pnvme_req_submit(l->qp, l->req, (uint64_t)l->left);
		if (rc && !l->err)
			l->err = rc;
	}
}

static void test_resubmit_from_callback(void **state)
{
	struct pnvme_qpair_stats st;
	struct pnvme_req req[4];
	struct loop l[4];
	struct env e;
	(void)state;

	env_open(&e, "size=1M", NULL, NULL);
	void *buf = dma_buf(&e, 4 * 4096);
	for (int i = 0; i < 4; i++) {
		l[i] = (struct loop){ .qp = e.qp, .req = &req[i], .left = 50 };
		assert_ok(pnvme_req_prep_read(e.qp, &req[i], e.ns, (uint8_t *)buf + i * 4096, 8, 0,
					      loop_cb, &l[i]));
		assert_ok(pnvme_req_submit(e.qp, &req[i], 0));
	}
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 4);
	for (int i = 0; i < 1000 && pnvme_qpair_outstanding(e.qp); i++) {
		pnvme_qpair_flush(e.qp);
		(void)pnvme_emu_step(e.emu);
		assert_true(pnvme_qpair_poll(e.qp, 0) >= 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(l[i].calls, 50);
		assert_int_equal(l[i].err, 0);
		assert_ok(pnvme_req_release(&req[i]));
	}
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.submitted, 200);
	assert_int_equal(st.completed, 200);
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	pnvme_qpair_reset_stats(e.qp);
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.submitted, 0);
	assert_int_equal(st.completed, 0);
	assert_ok(pnvme_dma_free(e.ctrl, buf));
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                   */
/* ------------------------------------------------------------------------ */

static void test_prep_refusals(void **state)
{
	struct pnvme_req req;
	struct cpl c = { 0 };
	struct env e, other, md;
	(void)state;

	env_open(&e, "size=1M", NULL, NULL);
	env_open(&other, "size=1M", NULL, NULL);
	env_open(&md, "size=1M,ms=8,ext=1", NULL, NULL);
	uint8_t *buf = dma_buf(&e, 8192);
	uint32_t max = e.ns->max_lbas;

	assert_rc(pnvme_req_prep_read(NULL, &req, e.ns, buf, 1, 0, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_req_prep_read(e.qp, NULL, e.ns, buf, 1, 0, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_req_prep_read(e.qp, &req, NULL, buf, 1, 0, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_req_prep_read(e.qp, &req, e.ns, NULL, 1, 0, cpl_cb, &c), -EINVAL);
	/* Another controller's namespace. */
	assert_rc(pnvme_req_prep_read(e.qp, &req, other.ns, buf, 1, 0, cpl_cb, &c), -EINVAL);
	assert_non_null(strstr(pnvme_last_error(), "another controller"));
	/* nlb: 1..max_lbas, one command. */
	assert_rc(pnvme_req_prep_read(e.qp, &req, e.ns, buf, 0, 0, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_req_prep_write(e.qp, &req, e.ns, buf, max + 1, 0, cpl_cb, &c), -EINVAL);
	/* Flags: FUA and LR only. */
	assert_rc(pnvme_req_prep_read(e.qp, &req, e.ns, buf, 1, PNVME_IO_PRACT, cpl_cb, &c),
		  -EINVAL);
	/* Buffers: not pnvme memory, misaligned, too small, freed. */
	uint8_t *heap = malloc(4096);
	assert_non_null(heap);
	assert_rc(pnvme_req_prep_read(e.qp, &req, e.ns, heap, 1, 0, cpl_cb, &c), -EINVAL);
	free(heap);
	assert_rc(pnvme_req_prep_read(e.qp, &req, e.ns, buf + 2, 1, 0, cpl_cb, &c), -EINVAL);
	assert_rc(pnvme_req_prep_read(e.qp, &req, e.ns, buf, 17, 0, cpl_cb, &c), -EINVAL);
	assert_non_null(strstr(pnvme_last_error(), "pnvme_req_prep_read"));
	uint8_t *gone = dma_buf(&e, 4096);
	assert_ok(pnvme_dma_free(e.ctrl, gone));
	assert_rc(pnvme_req_prep_write(e.qp, &req, e.ns, gone, 1, 0, cpl_cb, &c), -EINVAL);
	/* A namespace with metadata: pnvme_read_md / extended LBAs are not prepared. */
	void *mbuf = dma_buf(&md, 8192);
	assert_rc(pnvme_req_prep_read(md.qp, &req, md.ns, mbuf, 1, 0, cpl_cb, &c), -EINVAL);
	assert_ok(pnvme_dma_free(md.ctrl, mbuf));
	/* No refusal took a request slot: all of them are still free. */
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	struct pnvme_req *all = calloc(pnvme_qpair_depth(e.qp), sizeof(*all));
	assert_non_null(all);
	for (uint32_t i = 0; i < pnvme_qpair_depth(e.qp); i++)
		assert_ok(pnvme_req_prep_read(e.qp, &all[i], e.ns, buf, 1, PNVME_IO_FUA, cpl_cb, &c));
	for (uint32_t i = 0; i < pnvme_qpair_depth(e.qp); i++)
		assert_ok(pnvme_req_release(&all[i]));
	free(all);
	assert_ok(pnvme_dma_free(e.ctrl, buf));
	env_close(&md);
	env_close(&other);
	env_close(&e);
}

static void test_submit_refusals(void **state)
{
	struct pnvme_qpair *qp2;
	struct pnvme_req req, zeroed;
	struct cpl c = { 0 };
	struct env e;
	(void)state;

	env_open(&e, "size=1M", NULL, NULL);
	assert_ok(pnvme_qpair_create(e.ctrl, NULL, &qp2));
	uint8_t *buf = dma_buf(&e, 8192);
	assert_ok(pnvme_req_prep_read(e.qp, &req, e.ns, buf, 2, 0, cpl_cb, &c));

	assert_rc(pnvme_req_submit(NULL, &req, 0), -EINVAL);
	assert_rc(pnvme_req_submit(e.qp, NULL, 0), -EINVAL);
	/* Prepared on another queue pair. */
	assert_rc(pnvme_req_submit(qp2, &req, 0), -EINVAL);
	/* Never prepared (zeroed), with and without a queue pair. */
	memset(&zeroed, 0, sizeof(zeroed));
	assert_rc(pnvme_req_submit(e.qp, &zeroed, 0), -EINVAL);
	assert_rc(pnvme_req_submit(NULL, &zeroed, 0), -EINVAL);
	/* The LBA range: the last two blocks fit, one further does not. */
	assert_rc(pnvme_req_submit(e.qp, &req, e.ns->nlba - 1), -ERANGE);
	assert_rc(pnvme_req_submit(e.qp, &req, UINT64_MAX), -ERANGE);
	assert_rc(pnvme_req_submit(e.qp, &req, UINT64_MAX - 1), -ERANGE);
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	assert_ok(pnvme_req_submit(e.qp, &req, e.ns->nlba - 2));

	/* In flight: neither submitted again nor released. */
	assert_rc(pnvme_req_submit(e.qp, &req, 0), -EBUSY);
	assert_rc(pnvme_req_release(&req), -EBUSY);
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 1);
	wait_calls(&e, &c, 1);
	assert_int_equal(c.err, 0);
	assert_ok(pnvme_req_submit(e.qp, &req, 0));
	wait_calls(&e, &c, 2);

	/* Released: refused, and released again is harmless. */
	assert_ok(pnvme_req_release(&req));
	assert_rc(pnvme_req_submit(e.qp, &req, 0), -EINVAL);
	assert_non_null(strstr(pnvme_last_error(), "not prepared"));
	assert_ok(pnvme_req_release(&req));
	assert_ok(pnvme_req_release(NULL));
	assert_int_equal(c.calls, 2);
	assert_ok(pnvme_qpair_destroy(qp2));
	assert_ok(pnvme_dma_free(e.ctrl, buf));
	env_close(&e);
}

/*
 * The buffer's allocation is freed after preparing: the next submission
 * refuses it. A free of other DMA memory makes the request check its own
 * buffer again, which is still live: accepted.
 */
static void test_freed_buffer_refused(void **state)
{
	struct pnvme_req req, keep;
	struct cpl c = { 0 }, k = { 0 };
	struct env e;
	(void)state;

	env_open(&e, "size=1M", NULL, NULL);
	uint8_t *buf = dma_buf(&e, 4096), *kbuf = dma_buf(&e, 4096), *other = dma_buf(&e, 4096);
	assert_ok(pnvme_req_prep_write(e.qp, &req, e.ns, buf, 8, 0, cpl_cb, &c));
	assert_ok(pnvme_req_prep_read(e.qp, &keep, e.ns, kbuf, 8, 0, cpl_cb, &k));
	assert_ok(pnvme_req_submit(e.qp, &req, 0));
	wait_calls(&e, &c, 1);

	assert_ok(pnvme_dma_free(e.ctrl, other));
	assert_ok(pnvme_req_submit(e.qp, &keep, 0)); /* checked again: still live */
	wait_calls(&e, &k, 1);
	assert_int_equal(k.err, 0);

	assert_ok(pnvme_dma_free(e.ctrl, buf));
	uint64_t cmds = 0;
	struct pnvme_emu_stats es;
	pnvme_emu_get_stats(e.emu, &es);
	cmds = es.commands;
	assert_rc(pnvme_req_submit(e.qp, &req, 0), -EINVAL);
	assert_non_null(strstr(pnvme_last_error(), "pnvme_req_submit"));
	/* Refused again (not only once), and nothing reached the device. */
	assert_rc(pnvme_req_submit(e.qp, &req, 8), -EINVAL);
	pnvme_qpair_flush(e.qp);
	(void)pnvme_emu_step(e.emu);
	assert_int_equal(pnvme_qpair_poll(e.qp, 0), 0);
	pnvme_emu_get_stats(e.emu, &es);
	assert_int_equal(es.commands, cmds);
	assert_int_equal(c.calls, 1);
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	/* Still prepared: released as usual; the other request still works. */
	assert_ok(pnvme_req_release(&req));
	assert_ok(pnvme_req_submit(e.qp, &keep, 8));
	wait_calls(&e, &k, 2);
	assert_ok(pnvme_req_release(&keep));
	assert_ok(pnvme_dma_free(e.ctrl, kbuf));
	env_close(&e);
}

/*
 * Format NVM changes the block size under a prepared request: the next
 * submission builds it again for the new format (a 4 KiB buffer holds one
 * 4 KiB block) or refuses it (eight 4 KiB blocks do not fit).
 */
static void test_namespace_format(void **state)
{
	struct pnvme_req one, eight;
	struct cpl c1 = { 0 }, c8 = { 0 };
	struct env e;
	(void)state;

	env_open(&e, "size=1M,format=1", NULL, NULL);
	uint8_t *b1 = dma_buf(&e, 4096), *b8 = dma_buf(&e, 4096);
	assert_int_equal(e.ns->lba_size, 512);
	assert_ok(pnvme_req_prep_write(e.qp, &one, e.ns, b1, 1, 0, cpl_cb, &c1));
	assert_ok(pnvme_req_prep_read(e.qp, &eight, e.ns, b8, 8, 0, cpl_cb, &c8));

	unsigned f = 0;
	for (unsigned i = 0; i <= e.ns->id.nlbaf; i++)
		if (PNVME_GET(e.ns->id.lbaf[i], PNVME_LBAF_LBADS) == 12 &&
		    PNVME_GET(e.ns->id.lbaf[i], PNVME_LBAF_MS) == 0)
			f = i;
	assert_true(f != 0);
	struct pnvme_format_opts fo = { .lbaf = (uint8_t)f };
	assert_ok(pnvme_format_nvm(e.ctrl, 1, &fo));
	assert_int_equal(e.ns->lba_size, 4096);

	assert_rc(pnvme_req_submit(e.qp, &eight, 0), -EINVAL);
	test_block_fill(b1, 4096, 5, 1234);
	assert_ok(pnvme_req_submit(e.qp, &one, 5)); /* block 5 is bytes 20480.. now */
	wait_calls(&e, &c1, 1);
	assert_int_equal(c1.err, 0);
	uint8_t m[4096];
	assert_ok(pnvme_emu_media_read(e.emu, 1, 5 * 4096, m, sizeof(m)));
	assert_memory_equal(m, b1, sizeof(m));
	/* The range follows the new size too. */
	assert_rc(pnvme_req_submit(e.qp, &one, e.ns->nlba), -ERANGE);
	assert_int_equal(c8.calls, 0);
	assert_ok(pnvme_req_release(&one));
	assert_ok(pnvme_req_release(&eight));
	assert_ok(pnvme_dma_free(e.ctrl, b1));
	assert_ok(pnvme_dma_free(e.ctrl, b8));
	env_close(&e);
}

/* Prepared requests hold request slots: pnvme_read() finds the queue full. */
static void test_slots(void **state)
{
	struct pnvme_qpair_opts qo;
	struct pnvme_req r[3], extra;
	struct cpl c[3] = { { 0 } }, cx = { 0 };
	struct env e;
	(void)state;

	pnvme_qpair_opts_default(&qo);
	qo.depth = 3;
	env_open(&e, "size=1M", &qo, NULL);
	uint8_t *buf = dma_buf(&e, 4096);
	for (int i = 0; i < 3; i++)
		assert_ok(pnvme_req_prep_read(e.qp, &r[i], e.ns, buf, 1, 0, cpl_cb, &c[i]));
	assert_rc(pnvme_req_prep_read(e.qp, &extra, e.ns, buf, 1, 0, cpl_cb, &cx), -EAGAIN);
	assert_rc(pnvme_read(e.qp, e.ns, buf, 0, 1, 0, cpl_cb, &cx), -EAGAIN);
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	/* All three in flight at once: no queue full for prepared requests. */
	for (int i = 0; i < 3; i++)
		assert_ok(pnvme_req_submit(e.qp, &r[i], (uint64_t)i));
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 3);
	for (int i = 0; i < 3; i++)
		wait_calls(&e, &c[i], 1);
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	/* Released: the slot serves pnvme_read() again, then a new request. */
	assert_ok(pnvme_req_release(&r[1]));
	assert_ok(pnvme_read(e.qp, e.ns, buf, 0, 1, 0, cpl_cb, &cx));
	assert_rc(pnvme_req_prep_read(e.qp, &extra, e.ns, buf, 1, 0, cpl_cb, &cx), -EAGAIN);
	wait_calls(&e, &cx, 1);
	assert_ok(pnvme_req_prep_read(e.qp, &extra, e.ns, buf, 1, 0, cpl_cb, &cx));
	assert_ok(pnvme_req_submit(e.qp, &extra, 0));
	wait_calls(&e, &cx, 2);
	assert_ok(pnvme_req_release(&extra));
	assert_ok(pnvme_req_release(&r[0]));
	assert_ok(pnvme_req_release(&r[2]));
	assert_ok(pnvme_dma_free(e.ctrl, buf));
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* Recovery: each submission completes exactly once                          */
/* ------------------------------------------------------------------------ */

/*
 * The device drops the completion of the second submission: it times out
 * (Abort or reset) and completes once with -ETIMEDOUT; polling on completes
 * nothing twice; the request is submitted again and succeeds.
 */
static void test_timeout_once(void **state)
{
	struct pnvme_qpair_opts qo;
	struct pnvme_ctrl_opts co;
	struct pnvme_qpair_stats st;
	struct pnvme_req req;
	struct cpl c = { 0 };
	struct env e;
	(void)state;

	pnvme_ctrl_opts_default(&co);
	co.admin_timeout_ms = 100;
	pnvme_qpair_opts_default(&qo);
	qo.timeout_ms = 50;
	env_open(&e, "size=1M", &qo, &co);
	uint8_t *buf = dma_buf(&e, 4096);
	struct pnvme_emu_fault f = {
		.kind = PNVME_EMU_FAULT_DROP_CPL,
		.qid = pnvme_qpair_id(e.qp),
		.opc = PNVME_NVM_READ,
		.skip = 1,
		.count = 1,
	};
	assert_ok(pnvme_emu_inject(e.emu, &f));
	assert_ok(pnvme_req_prep_read(e.qp, &req, e.ns, buf, 1, 0, cpl_cb, &c));
	assert_ok(pnvme_req_submit(e.qp, &req, 0));
	wait_calls(&e, &c, 1);
	assert_int_equal(c.err, 0);

	double t0 = now_s();
	assert_ok(pnvme_req_submit(e.qp, &req, 1));
	pnvme_qpair_flush(e.qp);
	while (c.calls == 1 && now_s() - t0 < 5.0) {
		(void)pnvme_emu_step(e.emu);
		assert_true(pnvme_qpair_poll(e.qp, 0) >= 0);
		assert_rc(pnvme_req_submit(e.qp, &req, 2), c.calls == 1 ? -EBUSY : 0);
		usleep(1000);
	}
	/* The dropped one ended once, timed out; the loop's last submit then went out. */
	assert_int_equal(c.calls, 2);
	assert_rc(c.errs[1], -ETIMEDOUT);
	for (int i = 0; i < 20; i++) {
		(void)pnvme_emu_step(e.emu);
		assert_true(pnvme_qpair_poll(e.qp, 0) >= 0);
	}
	assert_int_equal(c.calls, 3);
	assert_int_equal(c.errs[2], 0);
	pnvme_qpair_get_stats(e.qp, &st);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.submitted, 3);
	assert_int_equal(st.completed, 3);
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	assert_ok(pnvme_req_submit(e.qp, &req, 3));
	wait_calls(&e, &c, 4);
	assert_int_equal(c.err, 0);
	assert_ok(pnvme_req_release(&req));
	assert_ok(pnvme_dma_free(e.ctrl, buf));
	env_close(&e);
}

/*
 * A controller reset with prepared writes doorbelled but not fetched: with
 * retries they are posted again and succeed, without they fail with -EIO;
 * once each either way, and the requests are usable afterwards.
 */
static void reset_case(uint32_t retries)
{
	struct pnvme_qpair_opts qo;
	struct pnvme_req w[4];
	struct cpl c[4] = { { 0 } };
	struct env e;

	pnvme_qpair_opts_default(&qo);
	qo.max_retries = retries;
	env_open(&e, "size=1M", &qo, NULL);
	uint8_t *buf = dma_buf(&e, 4 * 4096);
	for (int i = 0; i < 4; i++) {
		test_block_fill(buf + i * 4096, 4096, 0, 500 + (uint32_t)i);
		assert_ok(pnvme_req_prep_write(e.qp, &w[i], e.ns, buf + i * 4096, 8, 0, cpl_cb,
					       &c[i]));
		assert_ok(pnvme_req_submit(e.qp, &w[i], 64 + 8 * (uint64_t)i));
	}
	pnvme_qpair_flush(e.qp); /* doorbelled; the device is not stepped */
	assert_ok(pnvme_ctrl_reset(e.ctrl));
	for (int round = 0; round < 1000; round++) {
		int done = 0;
		for (int i = 0; i < 4; i++)
			done += c[i].calls;
		if (done == 4)
			break;
		pnvme_qpair_flush(e.qp);
		(void)pnvme_emu_step(e.emu);
		assert_true(pnvme_qpair_poll(e.qp, 0) >= 0);
	}
	for (int i = 0; i < 20; i++) {
		(void)pnvme_emu_step(e.emu);
		assert_true(pnvme_qpair_poll(e.qp, 0) >= 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(c[i].calls, 1);
		assert_rc(c[i].err, retries ? 0 : -EIO);
	}
	assert_int_equal(pnvme_qpair_outstanding(e.qp), 0);
	/* Usable after the reset. */
	for (int i = 0; i < 4; i++) {
		assert_ok(pnvme_req_submit(e.qp, &w[i], 64 + 8 * (uint64_t)i));
		wait_calls(&e, &c[i], 2);
		assert_int_equal(c[i].err, 0);
		uint8_t m[4096];
		assert_ok(pnvme_emu_media_read(e.emu, 1, (64 + 8 * (uint64_t)i) * 512, m, sizeof(m)));
		assert_memory_equal(m, buf + i * 4096, sizeof(m));
		assert_ok(pnvme_req_release(&w[i]));
	}
	assert_ok(pnvme_dma_free(e.ctrl, buf));
	env_close(&e);
}

static void test_reset_no_retries(void **state)
{
	(void)state;
	reset_case(0);
}

static void test_reset_retries(void **state)
{
	(void)state;
	reset_case(3);
}

/* Destroying the queue pair completes an in-flight request once, -ECANCELED. */
static void test_destroy_in_flight(void **state)
{
	struct pnvme_req req;
	struct cpl c = { 0 };
	struct env e;
	(void)state;

	env_open(&e, "size=1M", NULL, NULL);
	uint8_t *buf = dma_buf(&e, 4096);
	assert_ok(pnvme_req_prep_read(e.qp, &req, e.ns, buf, 1, 0, cpl_cb, &c));
	assert_ok(pnvme_req_submit(e.qp, &req, 0));
	assert_ok(pnvme_qpair_destroy(e.qp));
	e.qp = NULL;
	assert_int_equal(c.calls, 1);
	assert_rc(c.err, -ECANCELED);
	assert_ok(pnvme_dma_free(e.ctrl, buf));
	env_close(&e);
}

/*
 * The device goes away (registers read all ones) with a request in flight:
 * it completes once with -ENODEV, and the request is refused from then on.
 */
static void test_device_gone(void **state)
{
	struct pnvme_qpair_opts qo;
	struct pnvme_req req;
	struct cpl c = { 0 };
	struct env e;
	(void)state;

	pnvme_qpair_opts_default(&qo);
	qo.timeout_ms = 200;
	env_open(&e, "size=1M", &qo, NULL);
	uint8_t *buf = dma_buf(&e, 4096);
	assert_ok(pnvme_req_prep_read(e.qp, &req, e.ns, buf, 1, 0, cpl_cb, &c));
	assert_ok(pnvme_req_submit(e.qp, &req, 0));
	pnvme_qpair_flush(e.qp);
	struct pnvme_emu_fault gone = { .kind = PNVME_EMU_FAULT_ALL_ONES };
	assert_ok(pnvme_emu_inject(e.emu, &gone));
	double t0 = now_s();
	int rc = 0;
	while (c.calls == 0 && now_s() - t0 < 5.0) {
		rc = pnvme_qpair_poll(e.qp, 0);
		usleep(1000);
	}
	assert_int_equal(c.calls, 1);
	assert_rc(c.err, -ENODEV);
	(void)rc;
	assert_rc(pnvme_qpair_poll(e.qp, 0), -ENODEV);
	assert_rc(pnvme_req_submit(e.qp, &req, 0), -ENODEV);
	assert_int_equal(c.calls, 1);
	assert_ok(pnvme_req_release(&req));
	assert_rc(pnvme_req_prep_read(e.qp, &req, e.ns, buf, 1, 0, cpl_cb, &c), -ENODEV);
	(void)pnvme_dma_free(e.ctrl, buf);
	(void)pnvme_qpair_destroy(e.qp);
	e.qp = NULL;
	(void)pnvme_ctrl_close(e.ctrl);
	pnvme_emu_destroy(e.emu);
}

/* ------------------------------------------------------------------------ */
/* NVMe/TCP                                                                 */
/* ------------------------------------------------------------------------ */

/* Over TCP the template carries an SGL (any memory); per-command doorbells too. */
static void test_tcp_roundtrip(void **state)
{
	struct tcp_peer *p = tcp_peer_start(NULL);
	struct pnvme_qpair_opts qo;
	struct pnvme_ctrl *ctrl = NULL;
	struct pnvme_qpair *qp;
	struct pnvme_req w, r;
	struct cpl cw = { 0 }, cr = { 0 };
	char addr[256];
	(void)state;

	assert_non_null(p);
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u/%s", tcp_peer_port(p), tcp_peer_subnqn(p));
	assert_ok(pnvme_ctrl_open(addr, NULL, &ctrl));
	const struct pnvme_ns *ns = pnvme_ctrl_ns_at(ctrl, 0);
	for (int immediate = 0; immediate < 2; immediate++) {
		pnvme_qpair_opts_default(&qo);
		qo.flags = immediate ? PNVME_QPAIR_DB_IMMEDIATE : 0;
		assert_ok(pnvme_qpair_create(ctrl, &qo, &qp));
		uint8_t *wb = malloc(8 * 512), *rb = calloc(1, 8 * 512);
		assert_non_null(wb);
		assert_non_null(rb);
		for (uint32_t b = 0; b < 8; b++)
			test_block_fill(wb + b * 512, 512, 40 + b, 9 + (uint32_t)immediate);
		cw = (struct cpl){ 0 };
		cr = (struct cpl){ 0 };
		assert_ok(pnvme_req_prep_write(qp, &w, ns, wb, 8, 0, cpl_cb, &cw));
		assert_ok(pnvme_req_prep_read(qp, &r, ns, rb, 8, 0, cpl_cb, &cr));
		assert_ok(pnvme_req_submit(qp, &w, 40));
		for (int i = 0; i < 2000000 && cw.calls == 0; i++)
			assert_true(pnvme_qpair_poll(qp, 0) >= 0);
		assert_int_equal(cw.calls, 1);
		assert_int_equal(cw.err, 0);
		assert_ok(pnvme_req_submit(qp, &r, 40));
		for (int i = 0; i < 2000000 && cr.calls == 0; i++)
			assert_true(pnvme_qpair_poll(qp, 0) >= 0);
		assert_int_equal(cr.calls, 1);
		assert_int_equal(cr.err, 0);
		assert_memory_equal(rb, wb, 8 * 512);
		assert_ok(pnvme_req_release(&w));
		assert_ok(pnvme_req_release(&r));
		assert_ok(pnvme_qpair_destroy(qp));
		free(wb);
		free(rb);
	}
	assert_ok(pnvme_ctrl_close(ctrl));
	tcp_peer_stop(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_one_block),
		cmocka_unit_test(test_roundtrip_two_pages),
		cmocka_unit_test(test_roundtrip_prp_list),
		cmocka_unit_test(test_roundtrip_unaligned),
		cmocka_unit_test(test_resubmit_from_callback),
		cmocka_unit_test(test_prep_refusals),
		cmocka_unit_test(test_submit_refusals),
		cmocka_unit_test(test_freed_buffer_refused),
		cmocka_unit_test(test_namespace_format),
		cmocka_unit_test(test_slots),
		cmocka_unit_test(test_timeout_once),
		cmocka_unit_test(test_reset_no_retries),
		cmocka_unit_test(test_reset_retries),
		cmocka_unit_test(test_destroy_in_flight),
		cmocka_unit_test(test_device_gone),
		cmocka_unit_test(test_tcp_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
