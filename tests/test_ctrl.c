/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_ctrl.c - controller life cycle and admin commands (src/core/ctrl.c,
 * src/core/admin.c), driven against the emulated controller in step mode so every
 * run is deterministic: the library steps the emulator whenever it busy-waits
 * (sync calls); async tests step it by hand between submit and reap.
 *
 * Covers: bring-up and its failures (CAP.TO expiry, CSTS.CFS, all-ones BAR,
 * bad arguments), Identify parsing (controller, namespaces, active namespace
 * list, MDTS), Number of Queues, SMART and Error Information logs, admin
 * passthrough, Abort, async admin commands, shutdown, and DMA memory.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <pnvme/pnvme.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

#include "test_helpers.h"

/* pnvme_last_error() contains `needle`. */
#define assert_last_error_has(needle)                                                  \
	do {                                                                           \
		if (strstr(pnvme_last_error(), (needle)) == NULL)                      \
			fail_msg("last error \"%s\" does not mention \"%s\"",             \
				 pnvme_last_error(), (needle));                         \
	} while (0)

struct env {
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
};

/* Create a stepped emulator from "OPTIONS" ("mode=step," is prepended). */
static struct pnvme_emu *emu_new(const char *opts)
{
	char spec[256];
	struct pnvme_emu *emu = NULL;

	snprintf(spec, sizeof(spec), "emu:mode=step%s%s", *opts ? "," : "", opts);
	assert_rc(pnvme_emu_create(spec, &emu), 0);
	assert_non_null(emu);
	return emu;
}

/* Open a controller on a new stepped emulator. */
static void env_open_opts(struct env *e, const char *opts, const struct pnvme_ctrl_opts *co)
{
	e->emu = emu_new(opts);
	e->ctrl = NULL;
	assert_ok(pnvme_ctrl_open_emu(e->emu, co, &e->ctrl));
	assert_non_null(e->ctrl);
	assert_ptr_equal(pnvme_ctrl_emu(e->ctrl), e->emu);
}

static void env_open(struct env *e, const char *opts)
{
	env_open_opts(e, opts, NULL);
}

static void env_close(struct env *e)
{
	assert_ok(pnvme_ctrl_close(e->ctrl));
	pnvme_emu_destroy(e->emu);
	e->ctrl = NULL;
	e->emu = NULL;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Compare a space-padded identify string with `want`. */
static void assert_id_string(const char *field, size_t len, const char *want)
{
	char buf[64];
	size_t n = len;

	assert_true(len < sizeof(buf));
	memcpy(buf, field, len);
	while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\0'))
		n--;
	buf[n] = '\0';
	assert_string_equal(buf, want);
	/* The rest of the field is space padded (Base 2.0 Figure 275: ASCII). */
	for (size_t i = strlen(want); i < len; i++)
		assert_int_equal(field[i], ' ');
}

/* Low 64 bits of a 128-bit little-endian SMART counter. */
static uint64_t le128_lo(const uint8_t v[16])
{
	uint64_t x = 0;
	for (int i = 7; i >= 0; i--)
		x = (x << 8) | v[i];
	for (int i = 8; i < 16; i++)
		assert_int_equal(v[i], 0); /* no counter here can have overflowed 64 bits */
	return x;
}

/* A completion record for async commands. */
struct cpl {
	int calls;
	int err;
	struct pnvme_cqe cqe;
};

static void cpl_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct cpl *c = arg;
	c->calls++;
	c->err = err;
	c->cqe = *cqe;
}

/* Step the emulator and reap admin completions until `*count` reaches `want` (bounded). */
static void admin_reap(struct env *e, const int *count, int want)
{
	for (int i = 0; i < 1000 && *count < want; i++) {
		(void)pnvme_emu_step(e->emu);
		int rc = pnvme_ctrl_process_admin(e->ctrl);
		assert_true(rc >= 0);
	}
	assert_int_equal(*count, want);
}

/*
 * Run `fn` in a child process and return its exit status (or 128 + signal).
 * Used where a driver bug crashes or corrupts memory, so that one failing
 * test cannot take the others down with it.
 */
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

/* ------------------------------------------------------------------------ */
/* Bring-up                                                                 */
/* ------------------------------------------------------------------------ */

static void test_open_close_defaults(void **state)
{
	struct pnvme_ctrl *ctrl = NULL;
	struct pnvme_emu_stats st;
	(void)state;

	assert_ok(pnvme_ctrl_open("emu:mode=step,size=4M", NULL, &ctrl));
	assert_non_null(ctrl);
	struct pnvme_emu *emu = pnvme_ctrl_emu(ctrl);
	assert_non_null(emu);
	assert_false(pnvme_emu_threaded(emu));

	uint64_t cap = pnvme_ctrl_cap(ctrl);
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_MQES), 1023);
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_TO), 4);
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_DSTRD), 0);
	assert_true(PNVME_GET(cap, PNVME_CAP_CSS) & PNVME_CAP_CSS_NVM);
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_MPSMIN), 0);
	uint32_t vs = pnvme_ctrl_vs(ctrl);
	assert_true(PNVME_VS_MJR(vs) >= 1);
	assert_int_equal(pnvme_ctrl_id(ctrl)->ver, vs);
	assert_int_equal(pnvme_ctrl_max_io_queues(ctrl), 64);
	assert_int_equal(pnvme_ctrl_max_xfer(ctrl), 128 * 1024); /* default mdts=5 */
	assert_int_equal(pnvme_ctrl_nr_ns(ctrl), 1);

	pnvme_emu_get_stats(emu, &st);
	assert_int_equal(st.enables, 1);
	/* Identify ctrl, active NS list, identify NS, Set Features: at least 4. */
	assert_true(st.commands >= 4);
	assert_ok(pnvme_ctrl_close(ctrl)); /* also destroys the emulator it owns */
}

static void test_open_bad_args(void **state)
{
	struct pnvme_ctrl *ctrl = (struct pnvme_ctrl *)(uintptr_t)1;
	struct pnvme_ctrl_opts o;
	(void)state;

	assert_rc(pnvme_ctrl_open(NULL, NULL, &ctrl), -EINVAL);
	assert_true(strlen(pnvme_last_error()) > 0);
	assert_rc(pnvme_ctrl_open("emu", NULL, NULL), -EINVAL);
	assert_rc(pnvme_ctrl_open_emu(NULL, NULL, &ctrl), -EINVAL);

	ctrl = (struct pnvme_ctrl *)(uintptr_t)1;
	assert_rc(pnvme_ctrl_open("zz:zz", NULL, &ctrl), -EINVAL);
	assert_last_error_has("zz:zz");
	assert_null(ctrl);
	assert_rc(pnvme_ctrl_open("", NULL, &ctrl), -EINVAL);
	assert_rc(pnvme_ctrl_open("0000:01:00.0:junk", NULL, &ctrl), -EINVAL);
	assert_rc(pnvme_ctrl_open("0000:01:20.0", NULL, &ctrl), -EINVAL); /* device > 1f */

	/* Bad emulator specs: each refused with a message naming the option. */
	static const struct {
		const char *spec, *needle;
	} bad[] = {
		{ "emu:mode=step,foo=1", "foo" },
		{ "emu:mode=step,lba=777", "lba" },
		{ "emu:mode=step,lba=512,size=1000", "size" },
		{ "emu:mode=step,ns=0", "ns" },
		{ "emu:mode=step,ns=33", "ns" },
		{ "emu:mode=step,mdts=16", "mdts" },
		{ "emu:mode=step,dstrd=9", "dstrd" },
		{ "emu:mode=step,to=0", "to" },
		{ "emu:mode=step,nq=0", "nq" },
		{ "emu:mode=step,mqes=0", "mqes" },
		{ "emu:mode=bogus", "mode" },
		{ "emu:mode=step,size=12Q", "size" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ctrl = (struct pnvme_ctrl *)(uintptr_t)1;
		int rc = pnvme_ctrl_open(bad[i].spec, NULL, &ctrl);
		if (rc != -EINVAL)
			fail_msg("%s: rc %d, expected -EINVAL", bad[i].spec, rc);
		assert_null(ctrl);
		if (strstr(pnvme_last_error(), bad[i].needle) == NULL)
			fail_msg("%s: last error \"%s\" does not name \"%s\"", bad[i].spec,
				 pnvme_last_error(), bad[i].needle);
	}

	/* Bad options. */
	pnvme_ctrl_opts_default(&o);
	assert_int_equal(o.admin_depth, 31); /* commands outstanding: 32-entry rings */
	assert_int_equal(o.admin_timeout_ms, 60000);
	assert_int_equal(o.io_timeout_ms, 30000);
	assert_int_equal(o.nr_io_queues, 64);
	o.admin_depth = 0;
	assert_rc(pnvme_ctrl_open("emu:mode=step,size=1M", &o, &ctrl), -EINVAL);
	assert_last_error_has("admin_depth");
	o.admin_depth = 4096;
	assert_rc(pnvme_ctrl_open("emu:mode=step,size=1M", &o, &ctrl), -EINVAL);
	pnvme_ctrl_opts_default(&o);
	o.io_timeout_ms = 0;
	assert_rc(pnvme_ctrl_open("emu:mode=step,size=1M", &o, &ctrl), -EINVAL);
	pnvme_ctrl_opts_default(&o);
	o.admin_timeout_ms = 0;
	assert_rc(pnvme_ctrl_open("emu:mode=step,size=1M", &o, &ctrl), -EINVAL);

	/* NULL is ignored by close. */
	assert_int_equal(pnvme_ctrl_close(NULL), 0);
}

static void test_open_never_ready_times_out(void **state)
{
	struct pnvme_emu *emu = emu_new("size=1M,to=1");
	struct pnvme_emu_fault f = { .kind = PNVME_EMU_FAULT_NEVER_READY };
	struct pnvme_ctrl *ctrl = NULL;
	(void)state;

	assert_ok(pnvme_emu_inject(emu, &f));
	double t0 = now_s();
	assert_rc(pnvme_ctrl_open_emu(emu, NULL, &ctrl), -ETIMEDOUT);
	double dt = now_s() - t0;
	assert_null(ctrl);
	assert_last_error_has("CSTS.RDY");
	/* CAP.TO = 1: 500 ms. Not much less (it must wait), not much more. */
	if (dt < 0.45 || dt > 2.0)
		fail_msg("bring-up gave up after %.3f s, expected about 0.5 s", dt);

	pnvme_emu_destroy(emu);
}

static void test_open_cfs_on_enable(void **state)
{
	/* CAP.TO = 20: 10 s, far above any scheduling delay of a busy machine */
	struct pnvme_emu *emu = emu_new("size=1M,to=20");
	struct pnvme_emu_fault f = { .kind = PNVME_EMU_FAULT_CFS_ON_ENABLE };
	struct pnvme_ctrl *ctrl = NULL;
	(void)state;

	assert_ok(pnvme_emu_inject(emu, &f));
	double t0 = now_s();
	assert_rc(pnvme_ctrl_open_emu(emu, NULL, &ctrl), -EIO);
	assert_null(ctrl);
	assert_last_error_has("CFS");
	/* CFS is reported at once, not after CAP.TO (10 s). */
	assert_true(now_s() - t0 < 5.0);

	pnvme_emu_destroy(emu);
}

/*
 * After a failed bring-up the same emulator comes up again once the fault is
 * cleared: the failed open left the controller disabled (CC.EN = 0), which
 * also clears CSTS.CFS (pnvme/emu.h).
 */
static void reopen_after_fault(enum pnvme_emu_fault_kind kind, int first_rc)
{
	struct pnvme_emu *emu = emu_new("size=1M,to=1");
	struct pnvme_emu_fault f = { .kind = kind };
	struct pnvme_emu_stats st;
	struct pnvme_ctrl *ctrl = NULL;

	assert_ok(pnvme_emu_inject(emu, &f));
	assert_rc(pnvme_ctrl_open_emu(emu, NULL, &ctrl), first_rc);
	pnvme_emu_clear_faults(emu);
	assert_ok(pnvme_ctrl_open_emu(emu, NULL, &ctrl));
	pnvme_emu_get_stats(emu, &st);
	assert_int_equal(st.enables, 2);
	assert_ok(pnvme_ctrl_close(ctrl));
	pnvme_emu_destroy(emu);
}

static void test_reopen_after_never_ready(void **state)
{
	(void)state;
	reopen_after_fault(PNVME_EMU_FAULT_NEVER_READY, -ETIMEDOUT);
}

static void test_reopen_after_cfs(void **state)
{
	(void)state;
	reopen_after_fault(PNVME_EMU_FAULT_CFS_ON_ENABLE, -EIO);
}

static void test_open_all_ones(void **state)
{
	struct pnvme_emu *emu = emu_new("size=1M");
	struct pnvme_emu_fault f = { .kind = PNVME_EMU_FAULT_ALL_ONES };
	struct pnvme_emu_stats st;
	struct pnvme_ctrl *ctrl = NULL;
	(void)state;

	assert_ok(pnvme_emu_inject(emu, &f));
	double t0 = now_s();
	assert_rc(pnvme_ctrl_open_emu(emu, NULL, &ctrl), -ENODEV);
	/* No spinning on a dead device: CAP reads all ones too, so a wait bounded
	 * by its CAP.TO (255) would last 127.5 s. */
	assert_true(now_s() - t0 < 5.0);
	assert_null(ctrl);
	assert_last_error_has("all ones");
	pnvme_emu_get_stats(emu, &st);
	assert_int_equal(st.enables, 0);
	assert_int_equal(st.commands, 0);
	pnvme_emu_destroy(emu);
}

/* Close with a controller that ignores CC.SHN: bounded by shutdown_timeout_ms. */
static void test_close_shutdown_timeout(void **state)
{
	struct pnvme_ctrl_opts o;
	struct pnvme_emu_fault f = { .kind = PNVME_EMU_FAULT_NO_SHUTDOWN };
	struct env e;
	(void)state;

	pnvme_ctrl_opts_default(&o);
	o.shutdown_timeout_ms = 200;
	env_open_opts(&e, "size=1M", &o);
	assert_ok(pnvme_emu_inject(e.emu, &f));
	double t0 = now_s();
	assert_rc(pnvme_ctrl_close(e.ctrl), -ETIMEDOUT);
	double dt = now_s() - t0;
	if (dt < 0.15 || dt > 2.0)
		fail_msg("close took %.3f s with a 200 ms shutdown timeout", dt);
	pnvme_emu_destroy(e.emu);
}

/* Close, then open the same emulator again: media and identity persist. */
static void test_reopen_same_emu(void **state)
{
	struct env e;
	struct pnvme_emu_stats st;
	struct pnvme_qpair *qp;
	uint8_t *buf;
	uint8_t media[512];
	(void)state;

	env_open(&e, "size=1M");
	const struct pnvme_ns *ns = pnvme_ctrl_ns(e.ctrl, 1);
	assert_ok(pnvme_qpair_create(e.ctrl, NULL, &qp));
	assert_ok(pnvme_dma_alloc(e.ctrl, 4096, 0, (void **)&buf, NULL));
	memset(buf, 0xa5, 512);
	assert_ok(pnvme_write_sync(qp, ns, buf, 7, 1, 0));
	pnvme_dma_free(e.ctrl, buf);
	assert_ok(pnvme_qpair_destroy(qp));
	assert_ok(pnvme_ctrl_close(e.ctrl));

	assert_ok(pnvme_ctrl_open_emu(e.emu, NULL, &e.ctrl));
	pnvme_emu_get_stats(e.emu, &st);
	assert_int_equal(st.enables, 2);
	ns = pnvme_ctrl_ns(e.ctrl, 1);
	assert_non_null(ns);
	assert_ok(pnvme_qpair_create(e.ctrl, NULL, &qp));
	assert_int_equal(pnvme_qpair_id(qp), 1);
	assert_ok(pnvme_dma_alloc(e.ctrl, 4096, 0, (void **)&buf, NULL));
	assert_ok(pnvme_read_sync(qp, ns, buf, 7, 1, 0));
	memset(media, 0xa5, sizeof(media));
	assert_memory_equal(buf, media, 512);
	pnvme_dma_free(e.ctrl, buf);
	env_close(&e); /* destroys the queue pair too */
}

/* ------------------------------------------------------------------------ */
/* Identify                                                                 */
/* ------------------------------------------------------------------------ */

static void test_identify_ctrl(void **state)
{
	struct env e;
	(void)state;

	env_open(&e, "size=2M,ns=2,mdts=3,sn=SN-0042,mn=PNVME-TEST-MODEL,mqes=255,to=7");
	const struct pnvme_id_ctrl *id = pnvme_ctrl_id(e.ctrl);
	assert_id_string(id->sn, sizeof(id->sn), "SN-0042");
	assert_id_string(id->mn, sizeof(id->mn), "PNVME-TEST-MODEL");
	assert_int_equal(id->mdts, 3);
	assert_int_equal(pnvme_ctrl_max_xfer(e.ctrl), 32 * 1024);
	/* NN is the largest valid NSID (Base 2.0 Figure 275): at least the active ones. */
	assert_in_range(id->nn, 2, 1024);
	/* Required entry sizes (Base 2.0 Figure 275): SQES 6, CQES 4. */
	assert_int_equal(id->sqes & 0xf, 6);
	assert_int_equal(id->cqes & 0xf, 4);
	/* pnvme relies on Write Zeroes and DSM being advertised. */
	assert_true(id->oncs & PNVME_ONCS_DSM);
	assert_true(id->oncs & PNVME_ONCS_WRITE_ZEROES);
	assert_int_equal(PNVME_GET(pnvme_ctrl_cap(e.ctrl), PNVME_CAP_MQES), 255);
	assert_int_equal(PNVME_GET(pnvme_ctrl_cap(e.ctrl), PNVME_CAP_TO), 7);

	/* The same data through pnvme_identify() into ordinary memory. */
	struct pnvme_id_ctrl *id2 = calloc(1, sizeof(*id2));
	assert_non_null(id2);
	assert_ok(pnvme_identify(e.ctrl, PNVME_ID_CNS_CTRL, 0, id2));
	assert_memory_equal(id2->sn, id->sn, sizeof(id->sn));
	assert_memory_equal(id2->mn, id->mn, sizeof(id->mn));
	assert_int_equal(id2->mdts, 3);
	assert_rc(pnvme_identify(e.ctrl, PNVME_ID_CNS_CTRL, 0, NULL), -EINVAL);
	assert_rc(pnvme_identify(NULL, PNVME_ID_CNS_CTRL, 0, id2), -EINVAL);
	free(id2);
	env_close(&e);
}

static void check_namespaces(const char *opts, uint32_t nr, uint32_t lba, uint64_t size)
{
	struct env e;

	env_open(&e, opts);
	uint32_t max_xfer = pnvme_ctrl_max_xfer(e.ctrl);
	assert_int_equal(pnvme_ctrl_nr_ns(e.ctrl), nr);
	for (uint32_t i = 0; i < nr; i++) {
		const struct pnvme_ns *ns = pnvme_ctrl_ns_at(e.ctrl, i);
		assert_non_null(ns);
		assert_ptr_equal(pnvme_ctrl_ns(e.ctrl, i + 1), ns);
		assert_int_equal(ns->nsid, i + 1);
		assert_int_equal(ns->lba_size, lba);
		assert_int_equal(1u << ns->lba_shift, lba);
		assert_int_equal(ns->ms, 0);
		assert_int_equal(ns->nlba, size / lba);
		assert_int_equal(ns->ncap, size / lba);
		assert_int_equal(ns->id.nsze, size / lba);
		assert_int_equal(ns->max_xfer, max_xfer);
		assert_int_equal(ns->max_lbas, max_xfer / lba);
	}
	assert_null(pnvme_ctrl_ns_at(e.ctrl, nr));
	assert_null(pnvme_ctrl_ns(e.ctrl, 0));
	assert_null(pnvme_ctrl_ns(e.ctrl, nr + 1));
	assert_null(pnvme_ctrl_ns(e.ctrl, 0xffffffffu));
	env_close(&e);
}

static void test_namespaces_512(void **state)
{
	(void)state;
	check_namespaces("size=4M,lba=512,ns=1", 1, 512, 4u << 20);
	check_namespaces("size=3M,lba=512,ns=3", 3, 512, 3u << 20);
}

static void test_namespaces_4096(void **state)
{
	(void)state;
	check_namespaces("size=8M,lba=4096,ns=3", 3, 4096, 8u << 20);
	check_namespaces("size=1M,lba=4096,ns=32", 32, 4096, 1u << 20);
}

static void test_identify_ns_list(void **state)
{
	struct env e;
	uint32_t *list = malloc(4096);
	struct pnvme_id_ns *idns = malloc(sizeof(*idns));
	(void)state;

	assert_non_null(list);
	assert_non_null(idns);
	env_open(&e, "size=1M,lba=4096,ns=3");
	memset(list, 0xff, 4096);
	assert_ok(pnvme_identify(e.ctrl, PNVME_ID_CNS_NS_ACTIVE, 0, list));
	assert_int_equal(list[0], 1);
	assert_int_equal(list[1], 2);
	assert_int_equal(list[2], 3);
	for (int i = 3; i < 1024; i++)
		assert_int_equal(list[i], 0);
	/* Only NSIDs greater than the one given. */
	memset(list, 0xff, 4096);
	assert_ok(pnvme_identify(e.ctrl, PNVME_ID_CNS_NS_ACTIVE, 2, list));
	assert_int_equal(list[0], 3);
	assert_int_equal(list[1], 0);
	memset(list, 0xff, 4096);
	assert_ok(pnvme_identify(e.ctrl, PNVME_ID_CNS_NS_ACTIVE, 3, list));
	assert_int_equal(list[0], 0);

	/* Identify Namespace for NSID 2: size in blocks, LBA format 4096. */
	assert_ok(pnvme_identify(e.ctrl, PNVME_ID_CNS_NS, 2, idns));
	assert_int_equal(idns->nsze, 256);
	unsigned fmt = PNVME_FLBAS_INDEX(idns->flbas);
	assert_int_equal(PNVME_GET(idns->lbaf[fmt], PNVME_LBAF_LBADS), 12);
	/* An NSID above NN is an invalid namespace (Base 2.0 §5.17.2). */
	assert_rc(pnvme_identify(e.ctrl, PNVME_ID_CNS_NS, 99, idns), -EIO);
	assert_last_error_has("Invalid Namespace");
	env_close(&e);
	free(list);
	free(idns);
}

static void test_max_xfer_from_mdts(void **state)
{
	static const struct {
		unsigned mdts;
		uint32_t max_xfer;
	} t[] = {
		{ 0, 2u << 20 },   /* no limit: pnvme's 2 MiB cap */
		{ 1, 8192 },
		{ 2, 16384 },
		{ 5, 128u << 10 },
		{ 8, 1u << 20 },
		{ 9, 2u << 20 },
		{ 15, 2u << 20 },  /* 128 MiB: capped */
	};
	(void)state;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char opts[64];
		struct env e;
		snprintf(opts, sizeof(opts), "size=1M,lba=512,mdts=%u", t[i].mdts);
		env_open(&e, opts);
		assert_int_equal(pnvme_ctrl_id(e.ctrl)->mdts, t[i].mdts);
		if (pnvme_ctrl_max_xfer(e.ctrl) != t[i].max_xfer)
			fail_msg("mdts %u: max_xfer %u, expected %u", t[i].mdts,
				 pnvme_ctrl_max_xfer(e.ctrl), t[i].max_xfer);
		assert_int_equal(pnvme_ctrl_ns(e.ctrl, 1)->max_lbas, t[i].max_xfer / 512);
		env_close(&e);
	}
}

/* ------------------------------------------------------------------------ */
/* Features and queues                                                      */
/* ------------------------------------------------------------------------ */

static void test_features_num_queues(void **state)
{
	struct env e;
	struct pnvme_ctrl_opts o;
	uint32_t dw0 = 0;
	(void)state;

	/* The controller supports 2: that is what it grants. */
	env_open(&e, "size=1M,nq=2");
	assert_int_equal(pnvme_ctrl_max_io_queues(e.ctrl), 2);
	assert_ok(pnvme_get_features(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, &dw0));
	assert_int_equal(PNVME_GET(dw0, PNVME_NUMQ_NSQ) + 1, 2);
	assert_int_equal(PNVME_GET(dw0, PNVME_NUMQ_NCQ) + 1, 2);
	/* Reserved feature identifier 00h: Invalid Field in Command. */
	assert_rc(pnvme_get_features(e.ctrl, 0x00, 0, 0, &dw0), -EINVAL);
	assert_last_error_has("Invalid Field");
	assert_rc(pnvme_get_features(NULL, PNVME_FEAT_NUM_QUEUES, 0, 0, &dw0), -EINVAL);
	env_close(&e);

	/* Asking for fewer than the controller has: pnvme keeps what it asked for. */
	pnvme_ctrl_opts_default(&o);
	o.nr_io_queues = 4;
	env_open_opts(&e, "size=1M,nq=64", &o);
	assert_int_equal(pnvme_ctrl_max_io_queues(e.ctrl), 4);
	assert_ok(pnvme_get_features(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, &dw0));
	assert_in_range(PNVME_GET(dw0, PNVME_NUMQ_NSQ) + 1, 4, 64);
	assert_in_range(PNVME_GET(dw0, PNVME_NUMQ_NCQ) + 1, 4, 64);

	/* A changeable feature: Set, then Get returns it. */
	assert_ok(pnvme_set_features(e.ctrl, PNVME_FEAT_ARBITRATION, 0, 0x3, 0, NULL));
	assert_ok(pnvme_get_features(e.ctrl, PNVME_FEAT_ARBITRATION, 0, 0, &dw0));
	assert_int_equal(dw0 & 0x7, 0x3);
	/* Number of Queues once an I/O queue exists: Command Sequence Error (§5.27.1.5). */
	struct pnvme_qpair *qp;
	struct pnvme_cqe cqe;
	assert_ok(pnvme_qpair_create(e.ctrl, NULL, &qp));
	struct pnvme_sqe sqe = {
		.opc = PNVME_ADM_SET_FEATURES,
		.cdw10 = PNVME_FEAT_NUM_QUEUES,
		.cdw11 = 0x00010001,
	};
	assert_rc(pnvme_admin_passthru(e.ctrl, &sqe, NULL, 0, &cqe), -EIO);
	assert_int_equal(PNVME_STATUS_CODE(PNVME_CQE_STATUS(&cqe)),
			 PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_CMD_SEQ_ERROR));
	assert_int_equal(pnvme_ctrl_max_io_queues(e.ctrl), 4);
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* Log pages                                                                */
/* ------------------------------------------------------------------------ */

static void test_smart_log_counts_io(void **state)
{
	struct env e;
	struct pnvme_smart_log before, after;
	struct pnvme_qpair *qp;
	void *buf;
	(void)state;

	env_open(&e, "size=4M,lba=512");
	const struct pnvme_ns *ns = pnvme_ctrl_ns(e.ctrl, 1);
	assert_ok(pnvme_qpair_create(e.ctrl, NULL, &qp));
	assert_ok(pnvme_dma_alloc(e.ctrl, 8 * 512, 0, &buf, NULL));
	assert_ok(pnvme_smart_log(e.ctrl, &before));
	for (int i = 0; i < 10; i++)
		assert_ok(pnvme_write_sync(qp, ns, buf, (uint64_t)i * 8, 8, 0));
	for (int i = 0; i < 5; i++)
		assert_ok(pnvme_read_sync(qp, ns, buf, (uint64_t)i * 8, 8, 0));
	assert_ok(pnvme_smart_log(e.ctrl, &after));

	assert_int_equal(le128_lo(after.host_writes) - le128_lo(before.host_writes), 10);
	assert_int_equal(le128_lo(after.host_reads) - le128_lo(before.host_reads), 5);
	/* 80 and 40 blocks of 512 bytes: at least one unit each (rounded up). */
	assert_true(le128_lo(after.data_units_written) > le128_lo(before.data_units_written));
	assert_true(le128_lo(after.data_units_read) > le128_lo(before.data_units_read));
	assert_int_equal(after.critical_warning, 0);

	/* Get Log Page argument checks (length and offset in dwords). */
	assert_rc(pnvme_get_log_page(e.ctrl, PNVME_LOG_SMART, 0xffffffffu, 0, &after, 0), -EINVAL);
	assert_rc(pnvme_get_log_page(e.ctrl, PNVME_LOG_SMART, 0xffffffffu, 0, &after, 511),
		  -EINVAL);
	assert_rc(pnvme_get_log_page(e.ctrl, PNVME_LOG_SMART, 0xffffffffu, 2, &after, 512),
		  -EINVAL);
	pnvme_dma_free(e.ctrl, buf);
	assert_ok(pnvme_qpair_destroy(qp));
	env_close(&e);
}

static void test_error_log_records_failure(void **state)
{
	const uint16_t status = PNVME_STATUS_DNR | PNVME_STATUS(PNVME_SCT_MEDIA, PNVME_SC_READ_ERROR);
	struct pnvme_emu_fault f = {
		.kind = PNVME_EMU_FAULT_STATUS,
		.qid = 1,
		.opc = PNVME_NVM_READ,
		.count = 1,
		.status = status,
	};
	struct pnvme_error_log log[4];
	struct pnvme_qpair *qp;
	struct cpl c = { 0 };
	struct env e;
	void *buf;
	(void)state;

	env_open(&e, "size=1M");
	const struct pnvme_ns *ns = pnvme_ctrl_ns(e.ctrl, 1);
	assert_ok(pnvme_qpair_create(e.ctrl, NULL, &qp));
	assert_ok(pnvme_dma_alloc(e.ctrl, 4096, 0, &buf, NULL));
	/* A few successful commands first, so the failing one does not get CID 0 by luck. */
	assert_ok(pnvme_read_sync(qp, ns, buf, 0, 1, 0));
	assert_ok(pnvme_emu_inject(e.emu, &f));
	struct cpl other[3] = { 0 };
	for (int i = 0; i < 3; i++)
		assert_ok(pnvme_write(qp, ns, buf, 1, 1, 0, cpl_cb, &other[i]));
	assert_ok(pnvme_read(qp, ns, buf, 5, 1, 0, cpl_cb, &c));
	pnvme_qpair_flush(qp);
	(void)pnvme_emu_step(e.emu);
	assert_int_equal(pnvme_qpair_poll(qp, 0), 4);
	assert_int_equal(c.calls, 1);
	assert_rc(c.err, -EIO);
	assert_int_equal(PNVME_CQE_STATUS(&c.cqe), status);

	memset(log, 0xee, sizeof(log));
	assert_ok(pnvme_error_log(e.ctrl, log, 4));
	assert_true(log[0].error_count >= 1);
	assert_int_equal(log[0].sqid, pnvme_qpair_id(qp));
	assert_int_equal(log[0].cmdid, c.cqe.cid);
	/* Status Field as in the CQE: bits 15:1 (Base 2.0 Figure 206). */
	assert_int_equal(log[0].status >> 1, status);
	assert_rc(pnvme_error_log(e.ctrl, log, 0), -EINVAL);
	assert_rc(pnvme_error_log(e.ctrl, NULL, 1), -EINVAL);

	pnvme_dma_free(e.ctrl, buf);
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* Admin passthrough, Abort                                                 */
/* ------------------------------------------------------------------------ */

static void test_admin_passthru(void **state)
{
	struct pnvme_emu_stats s0, s1;
	struct pnvme_sqe sqe;
	struct pnvme_cqe cqe;
	struct env e;
	uint8_t *buf = malloc(16384);
	(void)state;

	assert_non_null(buf);
	env_open(&e, "size=1M,mdts=1,mn=PASSTHRU-MODEL");

	/* Invalid opcode: -EOPNOTSUPP, and the CQE tells exactly why. */
	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = 0x3c; /* reserved admin opcode */
	memset(&cqe, 0xff, sizeof(cqe));
	assert_rc(pnvme_admin_passthru(e.ctrl, &sqe, NULL, 0, &cqe), -EOPNOTSUPP);
	assert_int_equal(PNVME_STATUS_CODE(PNVME_CQE_STATUS(&cqe)),
			 PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INVALID_OPCODE));
	assert_int_equal(cqe.sqid, 0);
	assert_last_error_has("Invalid Command Opcode");

	/* A raw Identify Controller into ordinary memory. */
	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = PNVME_ADM_IDENTIFY;
	sqe.cdw10 = PNVME_ID_CNS_CTRL;
	memset(buf, 0, 4096);
	assert_ok(pnvme_admin_passthru(e.ctrl, &sqe, buf, 4096, &cqe));
	assert_int_equal(PNVME_CQE_STATUS(&cqe), 0);
	assert_memory_equal(((struct pnvme_id_ctrl *)buf)->mn, "PASSTHRU-MODEL", 14);

	/* Over MDTS (8 KiB): refused before the device sees it. */
	pnvme_emu_get_stats(e.emu, &s0);
	assert_rc(pnvme_admin_passthru(e.ctrl, &sqe, buf, 16384, &cqe), -EINVAL);
	assert_rc(pnvme_admin_passthru(e.ctrl, &sqe, NULL, 4096, &cqe), -EINVAL);
	assert_rc(pnvme_admin_passthru(e.ctrl, NULL, NULL, 0, &cqe), -EINVAL);
	assert_rc(pnvme_admin_passthru(NULL, &sqe, NULL, 0, &cqe), -EINVAL);
	pnvme_emu_get_stats(e.emu, &s1);
	assert_int_equal(s1.commands, s0.commands);
	env_close(&e);
	free(buf);
}

static void test_abort_nonexistent(void **state)
{
	struct pnvme_qpair *qp;
	struct cpl c = { 0 };
	struct env e;
	bool aborted = true;
	(void)state;

	env_open(&e, "size=1M");
	assert_ok(pnvme_qpair_create(e.ctrl, NULL, &qp));
	/* Nothing outstanding on SQ 1: the controller did not abort anything. */
	assert_ok(pnvme_abort(e.ctrl, pnvme_qpair_id(qp), 17, &aborted));
	assert_false(aborted);
	aborted = true;
	assert_ok(pnvme_abort(e.ctrl, 0, 30, &aborted));
	assert_false(aborted);
	assert_ok(pnvme_abort(e.ctrl, 1, 3, NULL));
	assert_rc(pnvme_abort(NULL, 1, 3, NULL), -EINVAL);

	/* The async form, reaped by pnvme_ctrl_process_admin(). */
	assert_ok(pnvme_abort_async(e.ctrl, 1, 9, cpl_cb, &c));
	admin_reap(&e, &c.calls, 1);
	assert_int_equal(c.err, 0);
	assert_true(c.cqe.dw0 & PNVME_ABORT_NOT_ABORTED);
	assert_ok(pnvme_qpair_destroy(qp));
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* Async admin                                                              */
/* ------------------------------------------------------------------------ */

static void test_admin_async(void **state)
{
	struct cpl c_id = { 0 }, c_feat = { 0 }, c_log = { 0 };
	struct pnvme_ctrl_opts o;
	struct env e;
	void *idbuf, *logbuf;
	uint8_t plain[4096];
	(void)state;

	pnvme_ctrl_opts_default(&o);
	o.admin_depth = 3; /* 3 commands may be outstanding */
	env_open_opts(&e, "size=1M,mn=ASYNC-MODEL,nq=8", &o);
	assert_ok(pnvme_dma_alloc(e.ctrl, 4096, 0, &idbuf, NULL));
	assert_ok(pnvme_dma_alloc(e.ctrl, 4096, 0, &logbuf, NULL));

	assert_ok(pnvme_identify_async(e.ctrl, PNVME_ID_CNS_CTRL, 0, idbuf, cpl_cb, &c_id));
	assert_ok(pnvme_get_features_async(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, cpl_cb, &c_feat));
	assert_ok(pnvme_get_log_page_async(e.ctrl, PNVME_LOG_SMART, 0xffffffffu, 0, logbuf, 512,
					   cpl_cb, &c_log));
	/* Nothing runs until reaped. */
	assert_int_equal(c_id.calls + c_feat.calls + c_log.calls, 0);
	/* Admin queue full: -EAGAIN, never a hang. */
	struct cpl c_full = { 0 };
	assert_rc(pnvme_get_features_async(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, cpl_cb, &c_full),
		  -EAGAIN);
	/* Reaping before the device ran reaps nothing. */
	assert_int_equal(pnvme_ctrl_process_admin(e.ctrl), 0);
	(void)pnvme_emu_step(e.emu);
	assert_int_equal(pnvme_ctrl_process_admin(e.ctrl), 3);
	assert_int_equal(c_id.calls, 1);
	assert_int_equal(c_feat.calls, 1);
	assert_int_equal(c_log.calls, 1);
	assert_int_equal(c_full.calls, 0);
	assert_int_equal(c_id.err | c_feat.err | c_log.err, 0);
	assert_memory_equal(((struct pnvme_id_ctrl *)idbuf)->mn, "ASYNC-MODEL", 11);
	assert_int_equal(PNVME_GET(c_feat.cqe.dw0, PNVME_NUMQ_NSQ) + 1, 8);
	assert_int_equal(c_id.cqe.sqid, 0);

	/* Buffers must be DMA memory. */
	assert_rc(pnvme_identify_async(e.ctrl, PNVME_ID_CNS_CTRL, 0, plain, cpl_cb, &c_id),
		  -EINVAL);
	assert_rc(pnvme_identify_async(e.ctrl, PNVME_ID_CNS_CTRL, 0, NULL, cpl_cb, &c_id),
		  -EINVAL);
	assert_rc(pnvme_admin_submit(e.ctrl, &(struct pnvme_sqe){ .opc = PNVME_ADM_GET_FEATURES },
				     NULL, 0, NULL, NULL),
		  -EINVAL);

	/* A sync call while async commands fill the queue reaps them on the way. */
	struct cpl c2[3] = { { 0 } };
	for (int i = 0; i < 3; i++)
		assert_ok(pnvme_get_features_async(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, cpl_cb,
						   &c2[i]));
	uint32_t dw0 = 0;
	assert_ok(pnvme_get_features(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, &dw0));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(c2[i].calls, 1);
		assert_int_equal(c2[i].err, 0);
	}
	assert_int_equal(dw0, c_feat.cqe.dw0);

	/* Queue creation through the async calls. */
	struct cpl c_cq = { 0 }, c_sq = { 0 }, c_dsq = { 0 }, c_dcq = { 0 };
	void *ring_sq, *ring_cq;
	uint64_t sq_iova, cq_iova;
	assert_ok(pnvme_dma_alloc(e.ctrl, 4096, 0, &ring_sq, &sq_iova));
	assert_ok(pnvme_dma_alloc(e.ctrl, 4096, 0, &ring_cq, &cq_iova));
	assert_ok(pnvme_create_io_cq_async(e.ctrl, 5, cq_iova, 16, cpl_cb, &c_cq));
	admin_reap(&e, &c_cq.calls, 1);
	assert_ok(pnvme_create_io_sq_async(e.ctrl, 5, 5, sq_iova, 16, cpl_cb, &c_sq));
	admin_reap(&e, &c_sq.calls, 1);
	assert_int_equal(c_cq.err | c_sq.err, 0);
	/* Invalid sizes are refused before the device sees them. */
	assert_rc(pnvme_create_io_cq_async(e.ctrl, 6, cq_iova, 1, cpl_cb, &c_cq), -EINVAL);
	assert_rc(pnvme_create_io_cq_async(e.ctrl, 0, cq_iova, 16, cpl_cb, &c_cq), -EINVAL);
	assert_rc(pnvme_create_io_cq_async(e.ctrl, 6, cq_iova + 64, 16, cpl_cb, &c_cq), -EINVAL);
	assert_ok(pnvme_delete_io_sq_async(e.ctrl, 5, cpl_cb, &c_dsq));
	admin_reap(&e, &c_dsq.calls, 1);
	assert_ok(pnvme_delete_io_cq_async(e.ctrl, 5, cpl_cb, &c_dcq));
	admin_reap(&e, &c_dcq.calls, 1);
	assert_int_equal(c_dsq.err | c_dcq.err, 0);
	/* Deleting it again: Invalid Queue Identifier. */
	assert_rc(pnvme_delete_io_sq(e.ctrl, 5), -EINVAL);

	pnvme_dma_free(e.ctrl, ring_sq);
	pnvme_dma_free(e.ctrl, ring_cq);
	pnvme_dma_free(e.ctrl, idbuf);
	pnvme_dma_free(e.ctrl, logbuf);
	env_close(&e);
}

/*
 * An admin command the device never completes: the sync call gives up after
 * admin_timeout_ms with -ETIMEDOUT, and the admin queue keeps working.
 */
static void test_admin_timeout(void **state)
{
	struct pnvme_ctrl_opts o;
	struct env e;
	uint32_t dw0 = 0;
	(void)state;

	pnvme_ctrl_opts_default(&o);
	o.admin_timeout_ms = 100;
	env_open_opts(&e, "size=1M", &o);
	struct pnvme_emu_fault f = {
		.kind = PNVME_EMU_FAULT_DROP_CPL,
		.qid = 0,
		.opc = PNVME_ADM_GET_FEATURES,
		.count = 1,
	};
	assert_ok(pnvme_emu_inject(e.emu, &f));
	double t0 = now_s();
	assert_rc(pnvme_get_features(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, &dw0), -ETIMEDOUT);
	double dt = now_s() - t0;
	if (dt < 0.09 || dt > 2.0)
		fail_msg("admin command timed out after %.3f s with a 100 ms limit", dt);
	assert_last_error_has("timed out");
	/* With data: the bounce buffer is kept (the device may still write it). */
	f.opc = PNVME_ADM_IDENTIFY;
	assert_ok(pnvme_emu_inject(e.emu, &f));
	struct pnvme_id_ctrl *id = malloc(sizeof(*id));
	assert_non_null(id);
	assert_rc(pnvme_identify(e.ctrl, PNVME_ID_CNS_CTRL, 0, id), -ETIMEDOUT);
	/* The queue still works, and the next commands get fresh command ids. */
	for (int i = 0; i < 40; i++)
		assert_ok(pnvme_get_features(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, &dw0));
	assert_ok(pnvme_identify(e.ctrl, PNVME_ID_CNS_CTRL, 0, id));
	assert_memory_equal(id->mn, pnvme_ctrl_id(e.ctrl)->mn, sizeof(id->mn));
	free(id);
	env_close(&e);
}

/* admin_depth above CAP.MQES is capped, not refused. */
static void test_admin_depth_capped(void **state)
{
	struct pnvme_ctrl_opts o;
	struct cpl c[8] = { { 0 } };
	struct env e;
	(void)state;

	pnvme_ctrl_opts_default(&o);
	o.admin_depth = 4095;
	env_open_opts(&e, "size=1M,mqes=7", &o); /* 8 entries: 7 commands at once */
	for (int i = 0; i < 7; i++)
		assert_ok(pnvme_get_features_async(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, cpl_cb,
						   &c[i]));
	assert_rc(pnvme_get_features_async(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, cpl_cb, &c[7]),
		  -EAGAIN);
	int total = 0;
	for (int i = 0; i < 100 && total < 7; i++) {
		(void)pnvme_emu_step(e.emu);
		int rc = pnvme_ctrl_process_admin(e.ctrl);
		assert_true(rc >= 0);
		total += rc;
	}
	assert_int_equal(total, 7);
	for (int i = 0; i < 7; i++)
		assert_int_equal(c[i].calls, 1);
	env_close(&e);
}

/* An async admin command still outstanding at close completes exactly once. */
static void test_admin_async_outstanding_at_close(void **state)
{
	struct cpl c[2] = { { 0 } };
	struct env e;
	(void)state;

	env_open(&e, "size=1M");
	assert_ok(pnvme_get_features_async(e.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, cpl_cb, &c[0]));
	assert_ok(pnvme_abort_async(e.ctrl, 1, 1, cpl_cb, &c[1]));
	env_close(&e);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(c[i].calls, 1);
		if (c[i].err != 0 && c[i].err != -ECANCELED)
			fail_msg("callback %d: err %d", i, c[i].err);
	}
}

/*
 * A sync admin call from inside an admin completion callback cannot wait (the
 * admin queue is being polled already). It must be refused up front: either it
 * fails before submitting, or it works. Submitting and then abandoning the
 * command leaves a tracker pointing at a dead stack frame and a freed bounce
 * buffer (admin.c admin_sync). Run in a child: the bug corrupts memory.
 */
static struct env nested_env;
static int nested_rc = 1;

static void nested_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	uint32_t dw0;
	(void)arg;
	(void)err;
	(void)cqe;
	nested_rc = pnvme_get_features(nested_env.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, &dw0);
}

static int nested_child(void)
{
	struct pnvme_emu_stats s0, s1;
	struct pnvme_emu *emu;

	if (pnvme_emu_create("emu:mode=step,size=1M", &emu))
		return 10;
	nested_env.emu = emu;
	if (pnvme_ctrl_open_emu(emu, NULL, &nested_env.ctrl))
		return 11;
	if (pnvme_get_features_async(nested_env.ctrl, PNVME_FEAT_NUM_QUEUES, 0, 0, nested_cb,
				     NULL))
		return 12;
	(void)pnvme_emu_step(emu);
	if (pnvme_ctrl_process_admin(nested_env.ctrl) != 1)
		return 13;
	if (nested_rc != 0 && nested_rc != -EDEADLK)
		return 14;
	if (nested_rc == -EDEADLK) {
		/* Refused: then the device must not see the command. */
		pnvme_emu_get_stats(emu, &s0);
		(void)pnvme_emu_step(emu);
		pnvme_emu_get_stats(emu, &s1);
		/*
		 * The command went out although the call failed: reaping it would run
		 * admin_wait_cb on a dead stack frame. Exit before that happens.
		 */
		if (s1.commands != s0.commands)
			return 2;
	}
	(void)pnvme_ctrl_close(nested_env.ctrl);
	pnvme_emu_destroy(emu);
	return 0;
}

static void test_sync_admin_from_admin_callback(void **state)
{
	(void)state;
	int st = run_in_child(nested_child);
	if (st != 0)
		fail_msg("sync admin call from an admin callback: child status %d (2 = returned "
			 "an error after submitting the command: DRIVER BUG admin.c admin_sync)",
			 st);
}

/* ------------------------------------------------------------------------ */
/* DMA memory                                                               */
/* ------------------------------------------------------------------------ */

static void test_dma_alloc_free_iova(void **state)
{
	struct env e, e2;
	uint64_t iova = 0, iova2 = 0, x = 0;
	uint8_t *buf, *big, *al;
	(void)state;

	env_open(&e, "size=1M");
	env_open(&e2, "size=1M");

	assert_ok(pnvme_dma_alloc(e.ctrl, 3 * 4096 + 100, 0, (void **)&buf, &iova));
	assert_non_null(buf);
	assert_int_equal((uintptr_t)buf & 4095, 0);
	assert_int_not_equal(iova, 0);
	assert_int_equal(iova & 4095, 0);
	for (size_t i = 0; i < 3 * 4096 + 100; i++)
		if (buf[i] != 0)
			fail_msg("DMA memory not zeroed at byte %zu", i);
	assert_ok(pnvme_dma_iova(e.ctrl, buf, 4096, &x));
	assert_int_equal(x, iova);
	assert_ok(pnvme_dma_iova(e.ctrl, buf + 4100, 8000, &x));
	assert_int_equal(x, iova + 4100);
	assert_ok(pnvme_dma_iova(e.ctrl, buf + 5, 0, &x));
	assert_int_equal(x, iova + 5);
	/* Buffer and IOVA may be NULL-checked; the IOVA out-pointer is optional at alloc. */
	assert_rc(pnvme_dma_iova(e.ctrl, NULL, 1, &x), -EINVAL);
	assert_rc(pnvme_dma_iova(e.ctrl, buf, 1, NULL), -EINVAL);
	assert_rc(pnvme_dma_iova(NULL, buf, 1, &x), -EINVAL);

	/* Not this controller's memory: ordinary memory, another controller's memory. */
	uint8_t *plain = malloc(8192);
	assert_non_null(plain);
	assert_rc(pnvme_dma_iova(e.ctrl, plain, 16, &x), -EINVAL);
	assert_rc(pnvme_dma_iova(e.ctrl, &x, sizeof(x), &x), -EINVAL);
	free(plain);
	void *other;
	assert_ok(pnvme_dma_alloc(e2.ctrl, 4096, 0, &other, &iova2));
	assert_rc(pnvme_dma_iova(e.ctrl, other, 16, &x), -EINVAL);
	assert_ok(pnvme_dma_iova(e2.ctrl, other, 16, &x));
	assert_int_equal(x, iova2);
	pnvme_dma_free(e2.ctrl, other);

	/* Argument checks. */
	void *p = NULL;
	assert_rc(pnvme_dma_alloc(e.ctrl, 0, 0, &p, NULL), -EINVAL);
	assert_rc(pnvme_dma_alloc(e.ctrl, 4096, 3, &p, NULL), -EINVAL);
	assert_rc(pnvme_dma_alloc(e.ctrl, 4096, 4u << 20, &p, NULL), -EINVAL);
	assert_rc(pnvme_dma_alloc(NULL, 4096, 0, &p, NULL), -EINVAL);
	assert_rc(pnvme_dma_alloc(e.ctrl, 4096, 0, NULL, NULL), -EINVAL);

	/* Alignment up to 2 MiB; larger than a chunk: one IOVA-contiguous range. */
	assert_ok(pnvme_dma_alloc(e.ctrl, 4096, 2u << 20, (void **)&al, &x));
	assert_int_equal((uintptr_t)al & ((2u << 20) - 1), 0);
	assert_int_equal(x & ((2u << 20) - 1), 0);
	assert_ok(pnvme_dma_alloc(e.ctrl, 5u << 20, 0, (void **)&big, &x));
	assert_ok(pnvme_dma_iova(e.ctrl, big, 5u << 20, &iova2));
	assert_int_equal(iova2, x);
	assert_ok(pnvme_dma_iova(e.ctrl, big + (4u << 20) + 12, 4, &iova2));
	assert_int_equal(iova2, x + (4u << 20) + 12);
	big[(5u << 20) - 1] = 1; /* the whole size is usable */

	pnvme_dma_free(e.ctrl, big);
	pnvme_dma_free(e.ctrl, al);
	pnvme_dma_free(e.ctrl, buf);
	pnvme_dma_free(e.ctrl, NULL);
	pnvme_dma_free(NULL, NULL);
	env_close(&e2);
	env_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_close_defaults),
		cmocka_unit_test(test_open_bad_args),
		cmocka_unit_test(test_open_never_ready_times_out),
		cmocka_unit_test(test_open_cfs_on_enable),
		cmocka_unit_test(test_reopen_after_never_ready),
		cmocka_unit_test(test_reopen_after_cfs),
		cmocka_unit_test(test_open_all_ones),
		cmocka_unit_test(test_close_shutdown_timeout),
		cmocka_unit_test(test_reopen_same_emu),
		cmocka_unit_test(test_identify_ctrl),
		cmocka_unit_test(test_namespaces_512),
		cmocka_unit_test(test_namespaces_4096),
		cmocka_unit_test(test_identify_ns_list),
		cmocka_unit_test(test_max_xfer_from_mdts),
		cmocka_unit_test(test_features_num_queues),
		cmocka_unit_test(test_smart_log_counts_io),
		cmocka_unit_test(test_error_log_records_failure),
		cmocka_unit_test(test_admin_passthru),
		cmocka_unit_test(test_abort_nonexistent),
		cmocka_unit_test(test_admin_async),
		cmocka_unit_test(test_admin_async_outstanding_at_close),
		cmocka_unit_test(test_admin_timeout),
		cmocka_unit_test(test_admin_depth_capped),
		cmocka_unit_test(test_sync_admin_from_admin_callback),
		cmocka_unit_test(test_dma_alloc_free_iova),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
