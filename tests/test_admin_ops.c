/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_admin_ops.c - Format NVM, Sanitize and the firmware slot log
 * (src/core/admin.c: pnvme_format_nvm, pnvme_sanitize, pnvme_sanitize_log,
 * pnvme_fw_log) against the emulated controller in step mode (format=,
 * lbafs=, sanicap=, sansteps= in pnvme/emu.h), so every run is deterministic.
 *
 * Covers: formatting to 4096 + 8 bytes of extended metadata and back, with
 * struct pnvme_ns rewritten in place and I/O in the new format; secure erase
 * settings; LBA formats above 15 (LBAFU); NSID FFFFFFFFh and formats that
 * apply to every namespace; refusals (no Format NVM, bad settings, I/O
 * outstanding); sanitize from start to completion through the Sanitize Status
 * log, I/O refused meanwhile, overwrite, and SANICAP refusals; firmware slot
 * information.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <pnvme/pnvme.h>

#include "test_helpers.h"

#define assert_last_error_has(needle)                                                  \
	do {                                                                           \
		if (strstr(pnvme_last_error(), (needle)) == NULL)                       \
			fail_msg("last error \"%s\" does not mention \"%s\"",             \
				 pnvme_last_error(), (needle));                         \
	} while (0)

struct env {
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	uint8_t *buf;           /* 64 KiB of DMA memory */
};

#define BUF_LEN (64u * 1024u)

static void env_open(struct env *e, const char *opts)
{
	char spec[256];

	snprintf(spec, sizeof(spec), "emu:mode=step,size=4M%s%s", *opts ? "," : "", opts);
	e->emu = NULL;
	e->ctrl = NULL;
	e->qp = NULL;
	assert_ok(pnvme_emu_create(spec, &e->emu));
	assert_ok(pnvme_ctrl_open_emu(e->emu, NULL, &e->ctrl));
	assert_ok(pnvme_qpair_create(e->ctrl, NULL, &e->qp));
	assert_ok(pnvme_dma_alloc(e->ctrl, BUF_LEN, 4096, (void **)&e->buf, NULL));
}

static void env_close(struct env *e)
{
	assert_ok(pnvme_dma_free(e->ctrl, e->buf));
	assert_ok(pnvme_qpair_destroy(e->qp));
	assert_ok(pnvme_ctrl_close(e->ctrl));
	pnvme_emu_destroy(e->emu);
}

/* The index of the LBA format (data 2^lbads bytes, ms metadata, RP 0) of `ns`. */
static unsigned find_lbaf(const struct pnvme_ns *ns, unsigned lbads, unsigned ms)
{
	for (unsigned i = 0; i <= ns->id.nlbaf; i++)
		if (PNVME_GET(ns->id.lbaf[i], PNVME_LBAF_LBADS) == lbads &&
		    PNVME_GET(ns->id.lbaf[i], PNVME_LBAF_MS) == ms &&
		    PNVME_GET(ns->id.lbaf[i], PNVME_LBAF_RP) == 0)
			return i;
	fail_msg("no LBA format 2^%u + %u", lbads, ms);
	return 0;
}

static void count_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	(void)cqe;
	assert_int_equal(err, 0);
	(*(int *)arg)++;
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* ------------------------------------------------------------------------ */
/* Format NVM                                                               */
/* ------------------------------------------------------------------------ */

/*
 * 512 + 0 -> 4096 + 8 extended (SES 1) -> 512 + 0 (SES 0): the namespace
 * object is the same pointer throughout and describes each new format; I/O
 * moves blocks of the new size; the erase zeroed what was written before.
 */
static void test_format_4k_meta_and_back(void **state)
{
	struct env e;
	(void)state;
	env_open(&e, "format=1");
	const struct pnvme_ns *ns = pnvme_ctrl_ns(e.ctrl, 1);
	assert_non_null(ns);
	assert_int_equal(ns->lba_size, 512);
	assert_int_equal(ns->id.nlbaf, 7);      /* QEMU's eight formats */
	assert_true(pnvme_ctrl_id(e.ctrl)->oacs & PNVME_OACS_FORMAT);

	test_block_fill(e.buf, 512, 7, 11);
	assert_ok(pnvme_write_sync(e.qp, ns, e.buf, 7, 1, 0));

	unsigned f = find_lbaf(ns, 12, 8);
	assert_int_equal(f, 5);
	struct pnvme_format_opts o = { .lbaf = (uint8_t)f, .mset = 1, .ses = PNVME_SES_USER_DATA };
	assert_ok(pnvme_format_nvm(e.ctrl, 1, &o));
	assert_ptr_equal(pnvme_ctrl_ns(e.ctrl, 1), ns);
	assert_int_equal(ns->lba_size, 4096);
	assert_int_equal(ns->lba_shift, 12);
	assert_int_equal(ns->ms, 8);
	assert_int_equal(ns->md_ext, 1);
	assert_int_equal(ns->pi_type, 0);
	assert_int_equal(ns->block_bytes, 4104);
	assert_int_equal(ns->nlba, (4u << 20) / 4096);
	assert_int_equal(ns->max_lbas, pnvme_ctrl_max_xfer(e.ctrl) / 4104);
	assert_int_equal(PNVME_FLBAS_INDEX(ns->id.flbas), f);
	assert_true(ns->id.flbas & PNVME_FLBAS_META_EXT);

	/* SES 1: what was written is gone (LBA 7 of 512 bytes is in block 0 now) */
	memset(e.buf, 0xa5, 2 * 4104);
	assert_ok(pnvme_read_sync(e.qp, ns, e.buf, 0, 2, 0));
	assert_true(all_bytes(e.buf, 2 * 4104, 0));

	/* I/O in the new format: data and metadata of each block, inline */
	for (unsigned b = 0; b < 3; b++)
		test_block_fill(e.buf + b * 4104, 4104, 100 + b, 3);
	assert_ok(pnvme_write_sync(e.qp, ns, e.buf, 100, 3, 0));
	memset(e.buf + 8192 * 2, 0, 3 * 4104);
	assert_ok(pnvme_read_sync(e.qp, ns, e.buf + 8192 * 2, 100, 3, 0));
	assert_memory_equal(e.buf, e.buf + 8192 * 2, 3 * 4104);
	uint8_t md[8];
	assert_ok(pnvme_emu_meta_read(e.emu, 1, 101, md, 1));
	assert_memory_equal(md, e.buf + 4104 + 4096, 8);
	/* the old block count is out of range now */
	assert_rc(pnvme_read_sync(e.qp, ns, e.buf, 1024, 1, 0), -ERANGE);

	/* and back to 512 + 0, without an erase: the bytes stay where they were */
	struct pnvme_format_opts back = { .lbaf = 0 };
	assert_ok(pnvme_format_nvm(e.ctrl, 1, &back));
	assert_int_equal(ns->lba_size, 512);
	assert_int_equal(ns->ms, 0);
	assert_int_equal(ns->md_ext, 0);
	assert_int_equal(ns->block_bytes, 512);
	assert_int_equal(ns->nlba, (4u << 20) / 512);
	assert_ok(pnvme_read_sync(e.qp, ns, e.buf + 32768, 100 * 8, 8, 0));
	assert_memory_equal(e.buf + 32768, e.buf, 4096);
	test_block_fill(e.buf, 512, 8191, 5);
	assert_ok(pnvme_write_sync(e.qp, ns, e.buf, 8191, 1, 0));
	assert_ok(pnvme_read_sync(e.qp, ns, e.buf + 512, 8191, 1, 0));
	assert_true(test_block_is(e.buf + 512, 512, 8191, 5));
	env_close(&e);
}

/* Separate metadata with protection information: the namespace reports it. */
static void test_format_pi_separate(void **state)
{
	struct env e;
	(void)state;
	env_open(&e, "format=1");
	const struct pnvme_ns *ns = pnvme_ctrl_ns(e.ctrl, 1);
	struct pnvme_format_opts o = { .lbaf = (uint8_t)find_lbaf(ns, 9, 16), .pi = 1, .pil = 1 };
	assert_ok(pnvme_format_nvm(e.ctrl, 1, &o));
	assert_int_equal(ns->lba_size, 512);
	assert_int_equal(ns->ms, 16);
	assert_int_equal(ns->md_ext, 0);
	assert_int_equal(ns->pi_type, 1);
	assert_int_equal(ns->pi_first, 1);
	assert_int_equal(pnvme_emu_config(e.emu)->pi, 1);
	/* separate metadata: plain pnvme_write() is refused (pnvme_write_md) */
	assert_rc(pnvme_write_sync(e.qp, ns, e.buf, 0, 1, 0), -EINVAL);
	env_close(&e);
}

/* Formats 16..63 need CDW10 LBAFU: index 21 must arrive as 21, not 5. */
static void test_format_upper_index(void **state)
{
	struct env e;
	(void)state;
	env_open(&e, "format=1,lbafs=64");
	const struct pnvme_ns *ns = pnvme_ctrl_ns(e.ctrl, 1);
	assert_int_equal(ns->id.nlbaf, 63);
	unsigned lbads = (unsigned)PNVME_GET(ns->id.lbaf[21], PNVME_LBAF_LBADS);
	unsigned ms = (unsigned)PNVME_GET(ns->id.lbaf[21], PNVME_LBAF_MS);
	assert_true(ns->id.lbaf[21] != ns->id.lbaf[5]);
	struct pnvme_format_opts o = { .lbaf = 21, .mset = 1 };
	assert_ok(pnvme_format_nvm(e.ctrl, 1, &o));
	assert_int_equal(PNVME_FLBAS_INDEX(ns->id.flbas), 21);
	assert_int_equal(ns->lba_shift, lbads);
	assert_int_equal(ns->ms, ms);
	o.lbaf = 63;
	assert_ok(pnvme_format_nvm(e.ctrl, 1, &o));
	assert_int_equal(PNVME_FLBAS_INDEX(ns->id.flbas), 63);
	env_close(&e);
}

/* The emulator formats every namespace (FNA bit 0): the library re-reads them all. */
static void test_format_all_namespaces(void **state)
{
	struct env e;
	(void)state;
	env_open(&e, "format=1,ns=2");
	const struct pnvme_ns *n1 = pnvme_ctrl_ns(e.ctrl, 1), *n2 = pnvme_ctrl_ns(e.ctrl, 2);
	assert_true(pnvme_ctrl_id(e.ctrl)->fna & PNVME_FNA_FNS);
	struct pnvme_format_opts o = { .lbaf = 4 };      /* 4096 + 0 */
	assert_ok(pnvme_format_nvm(e.ctrl, 2, &o));
	assert_int_equal(n1->lba_size, 4096);
	assert_int_equal(n2->lba_size, 4096);
	o.lbaf = 0;
	assert_ok(pnvme_format_nvm(e.ctrl, PNVME_NSID_ALL, &o));
	assert_int_equal(n1->lba_size, 512);
	assert_int_equal(n2->lba_size, 512);
	assert_int_equal(n2->nlba, 8192);
	env_close(&e);
}

static void test_format_refused(void **state)
{
	struct env e;
	struct pnvme_format_opts o = { 0 };
	(void)state;

	/* Format NVM not offered (OACS bit 1 clear) */
	env_open(&e, "");
	assert_rc(pnvme_format_nvm(e.ctrl, 1, &o), -EOPNOTSUPP);
	assert_last_error_has("OACS");
	env_close(&e);

	env_open(&e, "format=1");
	const struct pnvme_ns *ns = pnvme_ctrl_ns(e.ctrl, 1);
	assert_rc(pnvme_format_nvm(NULL, 1, &o), -EINVAL);
	assert_rc(pnvme_format_nvm(e.ctrl, 0, &o), -EINVAL);
	assert_rc(pnvme_format_nvm(e.ctrl, 9, &o), -EINVAL);              /* not active */
	o.lbaf = 8;                                                       /* NLBAF 7 */
	assert_rc(pnvme_format_nvm(e.ctrl, 1, &o), -EINVAL);
	assert_last_error_has("LBA format 8");
	o.lbaf = 0;
	o.pi = 1;                                                         /* 512 + 0: no room */
	assert_rc(pnvme_format_nvm(e.ctrl, 1, &o), -EINVAL);
	o.pi = 4;
	assert_rc(pnvme_format_nvm(e.ctrl, 1, &o), -EINVAL);
	o.pi = 0;
	o.ses = 3;
	assert_rc(pnvme_format_nvm(e.ctrl, 1, &o), -EINVAL);
	o.ses = 0;
	/* the controller's own refusal: Invalid Format for PI without metadata */
	struct pnvme_sqe c = { .opc = PNVME_ADM_FORMAT_NVM, .nsid = 1,
			       .cdw10 = PNVME_SET(PNVME_FORMAT_PI, 1) };
	assert_rc(pnvme_admin_passthru(e.ctrl, &c, NULL, 0, NULL), -EINVAL);
	assert_last_error_has("Invalid Format");

	/* I/O outstanding: refused until it is reaped */
	test_block_fill(e.buf, 512, 0, 1);
	int done = 0;
	assert_ok(pnvme_write(e.qp, ns, e.buf, 0, 1, 0, count_cb, &done));
	assert_rc(pnvme_format_nvm(e.ctrl, 1, &o), -EBUSY);
	assert_last_error_has("outstanding");
	while (done == 0) {
		pnvme_emu_step(e.emu);
		assert_true(pnvme_qpair_poll(e.qp, 0) >= 0);
	}
	o.ses = PNVME_SES_CRYPTO;                                         /* FNA.CRYES */
	assert_ok(pnvme_format_nvm(e.ctrl, 1, &o));
	assert_ok(pnvme_read_sync(e.qp, ns, e.buf, 0, 1, 0));
	assert_true(all_bytes(e.buf, 512, 0));
	env_close(&e);
}

/*
 * file=: the metadata area after the data is sized for the format the file
 * was made with; a format needing more is Invalid Format, one needing less
 * fits (and the data survives without an erase).
 */
static void test_format_file_backed(void **state)
{
	struct env e;
	char path[] = "/tmp/pnvme-fmt-XXXXXX", opts[128];
	int fd = mkstemp(path);
	(void)state;
	assert_true(fd >= 0);
	close(fd);
	snprintf(opts, sizeof(opts), "format=1,ms=8,file=%s", path);
	env_open(&e, opts);
	const struct pnvme_ns *ns = pnvme_ctrl_ns(e.ctrl, 1);
	assert_int_equal(ns->ms, 8);
	struct pnvme_format_opts o = { .lbaf = (uint8_t)find_lbaf(ns, 9, 64) };
	assert_rc(pnvme_format_nvm(e.ctrl, 1, &o), -EINVAL);
	assert_last_error_has("Invalid Format");
	assert_int_equal(ns->ms, 8);                     /* unchanged */
	o.lbaf = (uint8_t)find_lbaf(ns, 12, 8);
	o.mset = 1;
	assert_ok(pnvme_format_nvm(e.ctrl, 1, &o));
	assert_int_equal(ns->block_bytes, 4104);
	test_block_fill(e.buf, 4104, 9, 4);
	assert_ok(pnvme_write_sync(e.qp, ns, e.buf, 9, 1, 0));
	assert_ok(pnvme_read_sync(e.qp, ns, e.buf + 8192, 9, 1, 0));
	assert_memory_equal(e.buf, e.buf + 8192, 4104);
	env_close(&e);
	unlink(path);
}

/* ------------------------------------------------------------------------ */
/* Sanitize                                                                 */
/* ------------------------------------------------------------------------ */

/* Block erase over four admin commands: progress, I/O refused, then zeroes. */
static void test_sanitize_progress(void **state)
{
	struct env e;
	struct pnvme_sanitize_log l;
	(void)state;
	env_open(&e, "sanicap=7,sansteps=4");
	const struct pnvme_ns *ns = pnvme_ctrl_ns(e.ctrl, 1);
	assert_int_equal(pnvme_ctrl_id(e.ctrl)->sanicap, 7);

	assert_ok(pnvme_sanitize_log(e.ctrl, &l));
	assert_int_equal(PNVME_GET(l.sstat, PNVME_SSTAT_STATUS), PNVME_SSTAT_NEVER);
	test_block_fill(e.buf, 4096, 5, 9);
	assert_ok(pnvme_write_sync(e.qp, ns, e.buf, 5, 8, 0));

	assert_ok(pnvme_sanitize(e.ctrl, PNVME_SANACT_BLOCK_ERASE, PNVME_SANITIZE_AUSE, 0));
	assert_ok(pnvme_sanitize_log(e.ctrl, &l));                        /* step 1 of 4 */
	assert_int_equal(PNVME_GET(l.sstat, PNVME_SSTAT_STATUS), PNVME_SSTAT_IN_PROGRESS);
	assert_int_equal(l.sprog, 16384);
	assert_int_equal(l.scdw10, PNVME_SANACT_BLOCK_ERASE | PNVME_SANITIZE_AUSE);
	/* no I/O meanwhile, no second sanitize, no format */
	assert_rc(pnvme_read_sync(e.qp, ns, e.buf, 5, 1, 0), -EBUSY);
	assert_rc(pnvme_sanitize(e.ctrl, PNVME_SANACT_CRYPTO_ERASE, 0, 0), -EBUSY);  /* step 2 */
	assert_last_error_has("Sanitize In Progress");
	assert_ok(pnvme_sanitize_log(e.ctrl, &l));                        /* step 3 */
	assert_int_equal(PNVME_GET(l.sstat, PNVME_SSTAT_STATUS), PNVME_SSTAT_IN_PROGRESS);
	assert_int_equal(l.sprog, 49152);
	assert_ok(pnvme_sanitize_log(e.ctrl, &l));                        /* step 4: done */
	assert_int_equal(PNVME_GET(l.sstat, PNVME_SSTAT_STATUS), PNVME_SSTAT_COMPLETED);
	assert_int_equal(l.sprog, 0xffff);
	assert_int_equal(l.etbe, 0xffffffffu);

	memset(e.buf, 0x5a, 4096);
	assert_ok(pnvme_read_sync(e.qp, ns, e.buf, 5, 8, 0));
	assert_true(all_bytes(e.buf, 4096, 0));
	/* exit failure mode outside failure mode: accepted, nothing happens */
	assert_ok(pnvme_sanitize(e.ctrl, PNVME_SANACT_EXIT_FAILURE, 0, 0));
	env_close(&e);
}

/* Overwrite: the pattern of the last pass, passes counted in SSTAT. */
static void test_sanitize_overwrite(void **state)
{
	struct env e;
	struct pnvme_sanitize_log l;
	uint8_t b[16];
	(void)state;
	env_open(&e, "sanicap=4");
	assert_ok(pnvme_sanitize(e.ctrl, PNVME_SANACT_OVERWRITE,
				 PNVME_SET(PNVME_SANITIZE_OWPASS, 3), 0xdeadbeefu));
	assert_ok(pnvme_sanitize_log(e.ctrl, &l));
	assert_int_equal(PNVME_GET(l.sstat, PNVME_SSTAT_STATUS), PNVME_SSTAT_COMPLETED);
	assert_int_equal(PNVME_GET(l.sstat, PNVME_SSTAT_OPC), 3);
	assert_ok(pnvme_emu_media_read(e.emu, 1, 4096, b, sizeof(b)));
	for (unsigned i = 0; i < sizeof(b); i += 4)
		assert_int_equal(b[i] | b[i + 1] << 8 | b[i + 2] << 16 | (uint32_t)b[i + 3] << 24,
				 0xdeadbeefu);
	/* two passes, inverted between them: the second leaves the inverse */
	assert_ok(pnvme_sanitize(e.ctrl, PNVME_SANACT_OVERWRITE,
				 PNVME_SET(PNVME_SANITIZE_OWPASS, 2) | PNVME_SANITIZE_OIPBP,
				 0x0f0f0f0fu));
	assert_ok(pnvme_emu_media_read(e.emu, 1, 0, b, sizeof(b)));
	assert_true(all_bytes(b, sizeof(b), 0xf0));
	env_close(&e);
}

static void test_sanitize_refused(void **state)
{
	struct env e;
	struct pnvme_sanitize_log l;
	(void)state;

	/* no sanitize at all: neither the command nor the log */
	env_open(&e, "");
	assert_rc(pnvme_sanitize(e.ctrl, PNVME_SANACT_BLOCK_ERASE, 0, 0), -EOPNOTSUPP);
	assert_last_error_has("SANICAP");
	assert_rc(pnvme_sanitize(e.ctrl, PNVME_SANACT_EXIT_FAILURE, 0, 0), -EOPNOTSUPP);
	assert_rc(pnvme_sanitize_log(e.ctrl, &l), -EOPNOTSUPP);
	/* and the controller agrees: no such log page, no such command */
	assert_rc(pnvme_get_log_page(e.ctrl, PNVME_LOG_SANITIZE, PNVME_NSID_ALL, 0, &l,
				     sizeof(l)), -ENOENT);
	struct pnvme_sqe c = { .opc = PNVME_ADM_SANITIZE, .cdw10 = PNVME_SANACT_BLOCK_ERASE };
	assert_rc(pnvme_admin_passthru(e.ctrl, &c, NULL, 0, NULL), -EOPNOTSUPP);
	env_close(&e);

	/* block erase only */
	env_open(&e, "sanicap=2");
	assert_rc(pnvme_sanitize(e.ctrl, PNVME_SANACT_CRYPTO_ERASE, 0, 0), -EOPNOTSUPP);
	assert_last_error_has("crypto erase");
	assert_rc(pnvme_sanitize(e.ctrl, PNVME_SANACT_OVERWRITE, 0, 0), -EOPNOTSUPP);
	c.cdw10 = PNVME_SANACT_CRYPTO_ERASE;                  /* the emulator refuses it too */
	assert_rc(pnvme_admin_passthru(e.ctrl, &c, NULL, 0, NULL), -EINVAL);
	assert_rc(pnvme_sanitize(e.ctrl, (enum pnvme_sanact)0, 0, 0), -EINVAL);
	assert_rc(pnvme_sanitize(e.ctrl, (enum pnvme_sanact)5, 0, 0), -EINVAL);
	assert_rc(pnvme_sanitize(e.ctrl, PNVME_SANACT_BLOCK_ERASE, 1u << 12, 0), -EINVAL);
	assert_rc(pnvme_sanitize(e.ctrl, PNVME_SANACT_BLOCK_ERASE, PNVME_SANITIZE_OIPBP, 0),
		  -EINVAL);
	assert_rc(pnvme_sanitize(NULL, PNVME_SANACT_BLOCK_ERASE, 0, 0), -EINVAL);
	assert_rc(pnvme_sanitize_log(e.ctrl, NULL), -EINVAL);
	assert_ok(pnvme_sanitize(e.ctrl, PNVME_SANACT_BLOCK_ERASE, PNVME_SANITIZE_NDAS, 0));
	env_close(&e);
}

/* ------------------------------------------------------------------------ */
/* Firmware slot log                                                        */
/* ------------------------------------------------------------------------ */

static void test_fw_log(void **state)
{
	struct env e;
	struct pnvme_fw_slot_log l;
	static const char zero[8];
	(void)state;
	env_open(&e, "");
	const struct pnvme_id_ctrl *id = pnvme_ctrl_id(e.ctrl);
	memset(&l, 0xee, sizeof(l));
	assert_ok(pnvme_fw_log(e.ctrl, &l));
	assert_int_equal(PNVME_GET(l.afi, PNVME_AFI_ACTIVE), 1);
	assert_int_equal(PNVME_GET(l.afi, PNVME_AFI_NEXT), 0);
	assert_int_equal(PNVME_GET(id->frmw, PNVME_FRMW_NSLOTS), 1);
	assert_memory_equal(l.frs[0], id->fr, 8);              /* "0.1.0   " */
	assert_memory_equal(l.frs[0], "0.1.0   ", 8);
	for (unsigned i = 1; i < 7; i++)
		assert_memory_equal(l.frs[i], zero, 8);
	assert_rc(pnvme_fw_log(e.ctrl, NULL), -EINVAL);
	assert_rc(pnvme_fw_log(NULL, &l), -EINVAL);
	env_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_4k_meta_and_back),
		cmocka_unit_test(test_format_pi_separate),
		cmocka_unit_test(test_format_upper_index),
		cmocka_unit_test(test_format_all_namespaces),
		cmocka_unit_test(test_format_refused),
		cmocka_unit_test(test_format_file_backed),
		cmocka_unit_test(test_sanitize_progress),
		cmocka_unit_test(test_sanitize_overwrite),
		cmocka_unit_test(test_sanitize_refused),
		cmocka_unit_test(test_fw_log),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
