/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_sgl.c - vectored I/O described with SGLs (src/core/iov.c, Base 2.0
 * §4.1.2), against the emulated controller in step mode: element layouts
 * PRPs cannot describe go out as SGL commands (the emulator counts commands
 * with PSDT 01b), PNVME_QPAIR_PREFER_SGL, requests cut at MDTS and at 256
 * descriptors, refusals before anything is submitted, SGLS 10b (dword
 * granularity), and a controller without SGLs (sgl=0) keeping the PRP /
 * per-element behaviour. The emulator's own SGL checks: test_emu.c.
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

struct env {
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	const struct pnvme_ns *ns;
};

/* emu:mode=step,OPTS and a queue pair with `flags` (and `depth`, 0: default). */
static void env_open(struct env *e, const char *opts, uint32_t flags, uint32_t depth)
{
	struct pnvme_qpair_opts qo;
	char spec[256];

	memset(e, 0, sizeof(*e));
	snprintf(spec, sizeof(spec), "emu:mode=step%s%s", *opts ? "," : "", opts);
	assert_ok(pnvme_emu_create(spec, &e->emu));
	assert_ok(pnvme_ctrl_open_emu(e->emu, NULL, &e->ctrl));
	e->ns = pnvme_ctrl_ns(e->ctrl, 1);
	assert_non_null(e->ns);
	pnvme_qpair_opts_default(&qo);
	qo.flags = flags;
	qo.depth = depth;
	assert_ok(pnvme_qpair_create(e->ctrl, &qo, &e->qp));
}

static void env_close(struct env *e)
{
	assert_ok(pnvme_qpair_destroy(e->qp));
	assert_ok(pnvme_ctrl_close(e->ctrl));
	pnvme_emu_destroy(e->emu);
}

static uint8_t *dma_buf(struct env *e, size_t len)
{
	void *p = NULL;
	assert_ok(pnvme_dma_alloc(e->ctrl, len, 0, &p, NULL));
	return p;
}

/* Commands the emulator fetched, and those of them with PSDT 01b. */
static void emu_counts(struct env *e, uint64_t *cmds, uint64_t *sgl)
{
	struct pnvme_emu_stats st;
	pnvme_emu_get_stats(e->emu, &st);
	*cmds = st.commands;
	*sgl = st.sgl_commands;
}

/* Deterministic bytes, any length. */
static void fill(void *buf, size_t len, uint32_t seed)
{
	uint8_t *p = buf;
	uint32_t x = seed * 2654435761u + 12345u;
	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
}

struct cpl {
	int calls;
	int err;
};

static void cpl_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct cpl *c = arg;
	(void)cqe;
	c->calls++;
	c->err = err;
}

/* Flush, step, poll until the request's callback ran (bounded). */
static void wait_cpl(struct env *e, struct cpl *c)
{
	for (int i = 0; i < 1000 && c->calls == 0; i++) {
		pnvme_qpair_flush(e->qp);
		(void)pnvme_emu_step(e->emu);
		assert_true(pnvme_qpair_poll(e->qp, 0) >= 0);
	}
	assert_int_equal(c->calls, 1);
}

/*
 * writev `w`, then readv into `r` (zeroed first), each as one request; the
 * media at slba and the read elements must hold the written bytes in order.
 * Returns the commands and the SGL commands the two took (*cmds, *sgl).
 */
static void roundtrip(struct env *e, const struct iovec *w, unsigned nw, const struct iovec *r,
		      unsigned nr, uint64_t slba, uint32_t nlb, uint64_t *cmds, uint64_t *sgl)
{
	size_t len = (size_t)nlb * e->ns->block_bytes, off = 0;
	uint8_t *want = malloc(len), *m = malloc(len);
	uint64_t c0, s0, c1, s1;
	struct cpl d = { 0 };

	assert_non_null(want);
	assert_non_null(m);
	for (unsigned i = 0; i < nw; i++) {
		fill(w[i].iov_base, w[i].iov_len, 77 + i);
		memcpy(want + off, w[i].iov_base, w[i].iov_len);
		off += w[i].iov_len;
	}
	assert_int_equal(off, len);
	for (unsigned i = 0; i < nr; i++)
		memset(r[i].iov_base, 0, r[i].iov_len);
	emu_counts(e, &c0, &s0);
	assert_ok(pnvme_writev(e->qp, e->ns, w, nw, slba, nlb, 0, cpl_cb, &d));
	wait_cpl(e, &d);
	assert_int_equal(d.err, 0);
	if (e->ns->ms == 0) {
		assert_ok(pnvme_emu_media_read(e->emu, 1, slba * e->ns->lba_size, m, len));
		assert_memory_equal(m, want, len);
	}
	memset(&d, 0, sizeof(d));
	assert_ok(pnvme_readv(e->qp, e->ns, r, nr, slba, nlb, 0, cpl_cb, &d));
	wait_cpl(e, &d);
	assert_int_equal(d.err, 0);
	off = 0;
	for (unsigned i = 0; i < nr; i++) {
		assert_memory_equal(r[i].iov_base, want + off, r[i].iov_len);
		off += r[i].iov_len;
	}
	emu_counts(e, &c1, &s1);
	*cmds = c1 - c0;
	*sgl = s1 - s0;
	free(want);
	free(m);
}

/* Elements at odd addresses with odd lengths, blocks straddling them: one SGL command each way. */
static void test_sgl_scattered(void **state)
{
	struct env e;
	uint64_t cmds, sgl;
	(void)state;

	env_open(&e, "size=1M", 0, 0);
	uint8_t *a = dma_buf(&e, 16384), *b = dma_buf(&e, 8192);
	struct iovec w[4] = { { a + 3, 700 }, { b + 1000, 324 }, { a + 5001, 1 }, { a + 9000, 1023 } };
	struct iovec r[3] = { { b + 4097, 1 }, { a + 12001, 2000 }, { b + 7000, 47 } };
	roundtrip(&e, w, 4, r, 3, 10, 4, &cmds, &sgl);
	assert_int_equal(cmds, 2);
	assert_int_equal(sgl, 2);
	/* the 412 + 612 layout test_qpair.c sees refused without SGLs */
	struct iovec w2[2] = { { a, 412 }, { a + 1000, 612 } };
	struct iovec r2[1] = { { b + 1, 1024 } }; /* one element, not dword aligned */
	roundtrip(&e, w2, 2, r2, 1, 0, 2, &cmds, &sgl);
	assert_int_equal(cmds, 2);
	assert_int_equal(sgl, 2);
	/* page-chained elements still take PRPs */
	struct iovec w3[2] = { { a + 512, 3584 }, { b, 512 } };
	struct iovec r3[1] = { { b + 4096, 4096 } };
	roundtrip(&e, w3, 2, r3, 1, 20, 8, &cmds, &sgl);
	assert_int_equal(cmds, 2);
	assert_int_equal(sgl, 0);
	pnvme_dma_free(e.ctrl, a);
	pnvme_dma_free(e.ctrl, b);
	env_close(&e);
}

/* PNVME_QPAIR_PREFER_SGL: SGLs where PRPs would do, one element included. */
static void test_sgl_prefer(void **state)
{
	struct env e;
	uint64_t cmds, sgl;
	(void)state;

	assert_int_equal(PNVME_QPAIR_PREFER_SGL & (PNVME_QPAIR_DB_IMMEDIATE |
			 PNVME_QPAIR_LAZY_CQ_DB | PNVME_QPAIR_NO_SPLIT), 0);
	env_open(&e, "size=1M", PNVME_QPAIR_PREFER_SGL, 0);
	uint8_t *a = dma_buf(&e, 16384), *b = dma_buf(&e, 16384);
	struct iovec w[3] = { { a + 512, 3584 }, { a + 8192, 4096 }, { b, 1024 } };
	struct iovec r[1] = { { b + 4096, 8704 } };
	roundtrip(&e, w, 3, r, 1, 5, 17, &cmds, &sgl);
	assert_int_equal(cmds, 2);
	assert_int_equal(sgl, 2);
	env_close(&e);
	/* the same without the flag: PRPs */
	env_open(&e, "size=1M", 0, 0);
	a = dma_buf(&e, 16384);
	b = dma_buf(&e, 16384);
	struct iovec w2[3] = { { a + 512, 3584 }, { a + 8192, 4096 }, { b, 1024 } };
	struct iovec r2[1] = { { b + 4096, 8704 } };
	roundtrip(&e, w2, 3, r2, 1, 5, 17, &cmds, &sgl);
	assert_int_equal(cmds, 2);
	assert_int_equal(sgl, 0);
	env_close(&e);
	/* the flag on a controller without SGLs changes nothing */
	env_open(&e, "size=1M,sgl=0", PNVME_QPAIR_PREFER_SGL, 0);
	a = dma_buf(&e, 16384);
	b = dma_buf(&e, 16384);
	struct iovec w3[3] = { { a + 512, 3584 }, { a + 8192, 4096 }, { b, 1024 } };
	struct iovec r3[1] = { { b + 4096, 8704 } };
	roundtrip(&e, w3, 3, r3, 1, 5, 17, &cmds, &sgl);
	assert_int_equal(cmds, 2);
	assert_int_equal(sgl, 0);
	env_close(&e);
}

/*
 * More than one command: 512 elements of 301 bytes (301 blocks) need three
 * (256 descriptors at most each, cut inside an element on a block
 * boundary); above MDTS (mdts=1: 8 KiB) the cut falls at 16 blocks.
 */
static void test_sgl_split(void **state)
{
	struct env e;
	uint64_t cmds, sgl;
	(void)state;

	env_open(&e, "size=1M", 0, 0);
	uint8_t *a = dma_buf(&e, 512 * 301), *b = dma_buf(&e, 301 * 512 + 4096);
	struct iovec *w = calloc(512, sizeof(*w));
	assert_non_null(w);
	for (unsigned i = 0; i < 512; i++)
		w[i] = (struct iovec){ a + (size_t)i * 301, 301 };
	struct iovec r[1] = { { b + 5, 301 * 512 } };
	roundtrip(&e, w, 512, r, 1, 100, 301, &cmds, &sgl);
	assert_int_equal(cmds, 3 + 2);  /* readv: 154112 bytes above 128 KiB: two commands */
	assert_int_equal(sgl, 3 + 2);
	free(w);
	env_close(&e);

	env_open(&e, "size=1M,mdts=1", 0, 0);
	a = dma_buf(&e, 8192);
	b = dma_buf(&e, 8192);
	struct iovec w2[2] = { { a + 1, 6000 }, { b + 3, 4240 } };
	uint8_t *c = dma_buf(&e, 16384);
	struct iovec r2[2] = { { c + 2, 10000 }, { c + 12000, 240 } };
	roundtrip(&e, w2, 2, r2, 2, 7, 20, &cmds, &sgl);
	assert_int_equal(cmds, 4);
	assert_int_equal(sgl, 4);
	env_close(&e);

	/* PNVME_QPAIR_NO_SPLIT refuses what needs more than one command */
	env_open(&e, "size=1M,mdts=1", PNVME_QPAIR_NO_SPLIT, 0);
	a = dma_buf(&e, 16384);
	struct iovec w3[2] = { { a + 1, 6000 }, { a + 8003, 4240 } };
	struct cpl d = { 0 };
	assert_rc(pnvme_writev(e.qp, e.ns, w3, 2, 0, 20, 0, cpl_cb, &d), -EINVAL);
	assert_non_null(strstr(pnvme_last_error(), "PNVME_QPAIR_NO_SPLIT"));
	w3[1].iov_len = 2192 - 1; /* 16 blocks: one command */
	w3[0].iov_len = 6001;
	assert_ok(pnvme_writev(e.qp, e.ns, w3, 2, 0, 16, 0, cpl_cb, &d));
	wait_cpl(&e, &d);
	assert_int_equal(d.err, 0);
	env_close(&e);
}

/* Refused before anything is submitted: memory outside pnvme, a full queue, bad sizes. */
static void test_sgl_refusals(void **state)
{
	struct env e;
	uint64_t c0, s0, c1, s1;
	struct cpl d = { 0 };
	uint8_t stack[1024];
	(void)state;

	env_open(&e, "size=1M", 0, 2);
	uint8_t *a = dma_buf(&e, 8192), *f = dma_buf(&e, 4096);
	emu_counts(&e, &c0, &s0);
	struct iovec st[2] = { { a + 3, 512 }, { stack + 1, 512 } };
	assert_rc(pnvme_readv(e.qp, e.ns, st, 2, 0, 2, 0, cpl_cb, &d), -EINVAL);
	/* running past the end of its allocation */
	struct iovec past[2] = { { a + 3, 512 }, { a + 8192 - 100, 512 } };
	assert_rc(pnvme_writev(e.qp, e.ns, past, 2, 0, 2, 0, cpl_cb, &d), -EINVAL);
	/* a freed allocation */
	pnvme_dma_free(e.ctrl, f);
	struct iovec freed[2] = { { a + 3, 512 }, { f + 1, 512 } };
	assert_rc(pnvme_writev(e.qp, e.ns, freed, 2, 0, 2, 0, cpl_cb, &d), -EINVAL);
	/* sizes that do not add up to the blocks, an empty element */
	struct iovec odd[2] = { { a + 3, 512 }, { a + 1001, 511 } };
	assert_rc(pnvme_writev(e.qp, e.ns, odd, 2, 0, 2, 0, cpl_cb, &d), -EINVAL);
	odd[1].iov_len = 0;
	assert_rc(pnvme_writev(e.qp, e.ns, odd, 2, 0, 1, 0, cpl_cb, &d), -EINVAL);
	/* depth 2, one tracker busy: a request of two SGL commands waits (nothing sent) */
	struct iovec *many = calloc(258, sizeof(*many));
	uint8_t *m = dma_buf(&e, 258 * 1024);
	for (unsigned i = 0; i < 258; i++)
		many[i] = (struct iovec){ m + (size_t)i * 1024 + 1, 512 };
	struct iovec one[1] = { { a + 1, 512 } };
	struct cpl d1 = { 0 };
	assert_ok(pnvme_readv(e.qp, e.ns, one, 1, 0, 1, 0, cpl_cb, &d1)); /* one tracker busy */
	assert_rc(pnvme_readv(e.qp, e.ns, many, 258, 0, 258, 0, cpl_cb, &d), -EAGAIN);
	wait_cpl(&e, &d1);
	assert_int_equal(d1.err, 0);
	emu_counts(&e, &c1, &s1);
	assert_int_equal(c1 - c0, 1);
	assert_int_equal(s1 - s0, 1);
	assert_int_equal(d.calls, 0);
	/* with both trackers free it goes (256 + 2 descriptors: two commands) */
	assert_ok(pnvme_readv(e.qp, e.ns, many, 258, 0, 258, 0, cpl_cb, &d));
	wait_cpl(&e, &d);
	assert_int_equal(d.err, 0);
	emu_counts(&e, &c1, &s1);
	assert_int_equal(s1 - s0, 3);
	free(many);
	env_close(&e);
}

/* SGLS 10b: dword-granular elements take SGLs, others the per-element way. */
static void test_sgl_dword(void **state)
{
	struct env e;
	uint64_t cmds, sgl;
	struct cpl d = { 0 };
	(void)state;

	env_open(&e, "size=1M,sgl=2", 0, 0);
	uint8_t *a = dma_buf(&e, 16384), *b = dma_buf(&e, 8192);
	struct iovec w[2] = { { a + 4, 508 }, { a + 1000, 516 } };
	struct iovec r[2] = { { b + 8, 1000 }, { b + 2000, 24 } };
	roundtrip(&e, w, 2, r, 2, 0, 2, &cmds, &sgl);
	assert_int_equal(cmds, 2);
	assert_int_equal(sgl, 2);
	/* not dword granular: one command per element, which takes whole, aligned blocks */
	struct iovec w2[2] = { { a + 4, 512 }, { a + 2000, 512 } };
	struct iovec r2[2] = { { b + 4, 512 }, { b + 2000, 512 } };
	roundtrip(&e, w2, 2, r2, 2, 4, 2, &cmds, &sgl); /* (dword aligned: SGL) */
	assert_int_equal(sgl, 2);
	struct iovec w3[2] = { { a + 1, 512 }, { a + 2001, 512 } };
	assert_rc(pnvme_writev(e.qp, e.ns, w3, 2, 0, 2, 0, cpl_cb, &d), -EINVAL);
	struct iovec w4[2] = { { a + 4, 510 }, { a + 2000, 514 } };
	assert_rc(pnvme_writev(e.qp, e.ns, w4, 2, 0, 2, 0, cpl_cb, &d), -EINVAL);
	assert_non_null(strstr(pnvme_last_error(), "whole number"));
	env_close(&e);
}

/* No SGLs (sgl=0): today's ways, PRPs or a command per element. */
static void test_sgl_off(void **state)
{
	struct env e;
	uint64_t cmds, sgl;
	struct cpl d = { 0 };
	(void)state;

	env_open(&e, "size=1M,sgl=0", 0, 0);
	uint8_t *a = dma_buf(&e, 16384), *b = dma_buf(&e, 8192);
	struct iovec w[3] = { { a + 4, 512 }, { a + 2000, 1024 }, { b + 100, 512 } };
	struct iovec r[1] = { { b + 4096, 2048 } };
	roundtrip(&e, w, 3, r, 1, 0, 4, &cmds, &sgl);
	assert_int_equal(cmds, 3 + 1);
	assert_int_equal(sgl, 0);
	struct iovec odd[2] = { { a + 3, 700 }, { b + 1000, 324 } };
	assert_rc(pnvme_writev(e.qp, e.ns, odd, 2, 0, 2, 0, cpl_cb, &d), -EINVAL);
	assert_non_null(strstr(pnvme_last_error(), "whole number"));
	env_close(&e);
}

/* Extended LBAs (512 + 8): blocks and their metadata straddle elements. */
static void test_sgl_extended(void **state)
{
	struct env e;
	uint64_t cmds, sgl;
	uint8_t md[16];
	(void)state;

	env_open(&e, "size=1M,ms=8,ext=1", 0, 0);
	assert_int_equal(e.ns->block_bytes, 520);
	uint8_t *a = dma_buf(&e, 8192), *b = dma_buf(&e, 8192);
	struct iovec w[2] = { { a + 1, 700 }, { a + 2001, 340 } };
	struct iovec r[3] = { { b + 3, 515 }, { b + 1000, 9 }, { b + 3000, 516 } };
	roundtrip(&e, w, 2, r, 3, 6, 2, &cmds, &sgl);
	assert_int_equal(cmds, 2);
	assert_int_equal(sgl, 2);
	/* the metadata of block 6 is bytes 512..519 of the stream, of block 7 1032..1039 */
	assert_ok(pnvme_emu_meta_read(e.emu, 1, 6, md, 2));
	uint8_t stream[1040];
	memcpy(stream, r[0].iov_base, 515);
	memcpy(stream + 515, r[1].iov_base, 9);
	memcpy(stream + 524, r[2].iov_base, 516);
	assert_memory_equal(md, stream + 512, 8);
	assert_memory_equal(md + 8, stream + 1032, 8);
	env_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sgl_scattered),
		cmocka_unit_test(test_sgl_prefer),
		cmocka_unit_test(test_sgl_split),
		cmocka_unit_test(test_sgl_refusals),
		cmocka_unit_test(test_sgl_dword),
		cmocka_unit_test(test_sgl_off),
		cmocka_unit_test(test_sgl_extended),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
