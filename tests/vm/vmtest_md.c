/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vmtest_md.c - namespaces with metadata, through the public API (the `md`
 * and `expect-md` commands of vmtest; see vmtest.c for the others).
 *
 *   vmtest md DEV --seed S
 *       For every active namespace of DEV formatted with metadata: write the
 *       whole namespace (data and metadata) in extents of mixed sizes, read it
 *       back and compare both. Extended LBAs (FLBAS bit 4) carry each block's
 *       metadata after its data in the data buffer; otherwise it travels in a
 *       separate buffer (MPTR, pnvme_write_md / pnvme_read_md). On a namespace
 *       with protection information the metadata is the 8-byte PI tuple the
 *       host computes (guard = CRC-16 T10-DIF of the data, application tag
 *       MD_APPTAG, reference tag = LBA) and every command asks the controller
 *       to check all three; then a bad guard, a bad reference tag and a bad
 *       application tag must complete with SCT 2h SC 82h / 84h / 83h and leave
 *       the block as it was, PRACT must make the controller insert and strip
 *       the PI itself, and I/O without the metadata buffer is refused.
 *   vmtest expect-md --seed S --nsid N --lba-size L --ms M --pi T --nlba N [--out FILE]
 *       The image QEMU keeps for such a namespace after `md`: the data of all
 *       N blocks, then their metadata (QEMU's nvme-ns stores it after the
 *       data), in a file of the namespace image's size.
 *
 * Metadata layout and PI: NVM Command Set 1.0c §5.2 (End-to-end Data
 * Protection; PI in the last 8 bytes of the metadata unless DPS bit 3).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pnvme/pnvme.h>

#include "vmtest.h"

#define MD_APPTAG 0x5a17u
/* Longest extended-LBA command of `md` (see md_whole); 0: the namespace's max_lbas. */
static uint32_t g_md_ext_max = 48;
#define MD_SALT   0x4d45544144415441ull /* metadata bytes follow their own pattern */

/* CRC-16 T10-DIF: polynomial 0x8BB7, initial value 0, not reflected. */
static uint16_t crc16_t10dif_cont(uint16_t crc, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x8bb7 : crc << 1);
	}
	return crc;
}

static uint16_t crc16_t10dif(const uint8_t *p, size_t len)
{
	return crc16_t10dif_cont(0, p, len);
}

/* The PI tuple, big-endian: guard, application tag, reference tag. */
static void pi_put(uint8_t *pi, uint16_t guard, uint16_t app, uint32_t ref)
{
	pi[0] = (uint8_t)(guard >> 8);
	pi[1] = (uint8_t)guard;
	pi[2] = (uint8_t)(app >> 8);
	pi[3] = (uint8_t)app;
	pi[4] = (uint8_t)(ref >> 24);
	pi[5] = (uint8_t)(ref >> 16);
	pi[6] = (uint8_t)(ref >> 8);
	pi[7] = (uint8_t)ref;
}

/* Expected data (lba_size bytes) and metadata (ms bytes) of one block. */
static void md_block(uint64_t seed, uint32_t nsid, uint32_t lba_size, uint32_t ms,
		     unsigned pi_type, bool pi_first, uint64_t lba, uint8_t *data, uint8_t *md)
{
	pattern_fill_seed(seed, nsid, lba * lba_size, data, lba_size);
	if (ms >= 8)
		pattern_fill_seed(seed ^ MD_SALT, nsid, lba * ms, md, ms & ~7u);
	/*
	 * The guard covers the data and, with the PI in the last 8 bytes, the
	 * metadata bytes before it (NVM 1.0c §5.2.1: PI formats).
	 */
	if (pi_type)
		pi_put(md + (pi_first ? 0 : ms - 8),
		       crc16_t10dif_cont(crc16_t10dif_cont(0, data, lba_size), md,
					 pi_first ? 0 : ms - 8),
		       MD_APPTAG, (uint32_t)lba);
}

struct mdio {
	struct pnvme_qpair *qp;
	const struct pnvme_ns *ns;
	uint8_t *buf, *md;   /* DMA memory: max_lbas blocks */
	uint8_t *want_d, *want_m;
	int err;
	uint16_t status;
	bool done;
};

static void mdio_done(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct mdio *m = arg;

	m->err = err;
	m->status = cqe ? PNVME_CQE_STATUS(cqe) : 0;
	m->done = true;
}

/* Wait for the command a submit call returning `rc` posted: its result. */
static int mdio_wait(struct mdio *m, int rc)
{
	if (rc)
		return rc;
	while (!m->done) {
		rc = pnvme_qpair_poll(m->qp, 0);
		if (rc < 0)
			return rc;
	}
	return m->err;
}

/* One command, waited for. io_flags get the PRCHK bits on PI namespaces. */
static int mdio_rw(struct mdio *m, bool write, uint64_t slba, uint32_t nlb, uint32_t flags,
		   bool with_md)
{
	int rc;

	m->done = false;
	if (write)
		rc = pnvme_write_md(m->qp, m->ns, m->buf, with_md ? m->md : NULL, slba, nlb, flags,
				    MD_APPTAG, 0xffff, mdio_done, m);
	else
		rc = pnvme_read_md(m->qp, m->ns, m->buf, with_md ? m->md : NULL, slba, nlb, flags,
				   MD_APPTAG, 0xffff, mdio_done, m);
	return mdio_wait(m, rc);
}

/* Lay out (or compare) nlb blocks at slba in the command's buffers. */
static uint64_t md_stage(struct mdio *m, uint64_t slba, uint32_t nlb, bool compare)
{
	const struct pnvme_ns *ns = m->ns;
	uint64_t bad = 0;

	for (uint32_t i = 0; i < nlb; i++) {
		uint8_t *d = m->buf + (size_t)i * ns->block_bytes;
		uint8_t *md = ns->md_ext ? d + ns->lba_size : m->md + (size_t)i * ns->ms;

		md_block(g_seed, ns->nsid, ns->lba_size, ns->ms, ns->pi_type, ns->pi_first, slba + i,
			 m->want_d, m->want_m);
		if (!compare) {
			memcpy(d, m->want_d, ns->lba_size);
			memcpy(md, m->want_m, ns->ms);
		} else if (memcmp(d, m->want_d, ns->lba_size) || memcmp(md, m->want_m, ns->ms)) {
			if (bad == 0)
				printf("    | first mismatch at LBA %" PRIu64 " (%s)\n", slba + i,
				       memcmp(d, m->want_d, ns->lba_size) ? "data" : "metadata");
			bad++;
		}
	}
	return bad;
}

/* Whole namespace: write, then read and compare, in extents of mixed sizes. */
static void md_whole(struct mdio *m, uint32_t pflags)
{
	const struct pnvme_ns *ns = m->ns;
	uint64_t lba, bad = 0, r = g_seed ^ ns->nsid;
	char name[64];
	int rc = 0;

	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		for (lba = 0; lba < ns->nlba && rc == 0;) {
			r = r * 6364136223846793005ull + 1442695040888963407ull;
			uint32_t nlb = (r >> 33) % 3 == 0 ? 1 : (r >> 33) % 3 == 1 ? 7 : ns->max_lbas;
			if (nlb > ns->max_lbas)
				nlb = ns->max_lbas;
			/*
			 * QEMU 7.2 gives each block's data of an extended-LBA command its
			 * own I/O vector element (two where it crosses a 4 KiB IOMMU
			 * page) and fails beyond IOV_MAX (1024) with EINVAL ("aio
			 * failed", Write Fault). With 256-block commands its metadata
			 * transfer (8-byte pieces through dma_blk_io, which works in
			 * 512-byte units) also went wrong for the namespace's last
			 * command, whose metadata ends 488 bytes before the end of the
			 * image: the last 192 blocks' metadata, once when written (the
			 * image differed) and once when read back (the image was right).
			 * With at most 48 blocks (384 bytes of metadata) per command it
			 * passed. The emulator takes extended-LBA commands at MDTS
			 * (tests/vm/md-emu.sh).
			 */
			if (ns->md_ext && nlb > g_md_ext_max)
				nlb = g_md_ext_max;
			if (nlb > ns->nlba - lba)
				nlb = (uint32_t)(ns->nlba - lba);
			if (pass == 0) {
				md_stage(m, lba, nlb, false);
				rc = mdio_rw(m, true, lba, nlb, pflags, !ns->md_ext);
			} else {
				memset(m->buf, 0xa5, (size_t)nlb * ns->block_bytes);
				memset(m->md, 0xa5, (size_t)nlb * ns->ms);
				rc = mdio_rw(m, false, lba, nlb, pflags, !ns->md_ext);
				if (rc == 0) {
					uint64_t b = md_stage(m, lba, nlb, true);

					if (b)
						printf("    | extent LBA %" PRIu64 " nlb %u: %" PRIu64
						       " blocks differ\n", lba, nlb, b);
					bad += b;
				}
			}
			if (rc)
				printf("    | %s LBA %" PRIu64 " nlb %u: %d (%s) %s\n",
				       pass ? "read" : "write", lba, nlb, rc, pnvme_last_error(),
				       pnvme_status_str(m->status));
			lba += nlb;
		}
	}
	snprintf(name, sizeof(name), "md-ns%u-write-read-compare", ns->nsid);
	check(rc == 0 && bad == 0, name, "%" PRIu64 " blocks of %u + %u bytes (%s%s): %s, "
	      "%" PRIu64 " mismatched blocks", ns->nlba, ns->lba_size, ns->ms,
	      ns->md_ext ? "extended LBA" : "separate metadata",
	      ns->pi_type ? ", PI checked" : "", rc ? strerror(-rc) : "ok", bad);
}

/* PI: each check must fail with its own status and leave the block alone. */
static void md_pi_checks(struct mdio *m)
{
	const struct pnvme_ns *ns = m->ns;
	struct { const char *name; uint16_t sc; uint32_t flag; size_t byte; } bad[] = {
		{ "guard", PNVME_SC_GUARD_CHECK, PNVME_IO_PRCHK_GUARD, 0 },
		{ "apptag", PNVME_SC_APPTAG_CHECK, PNVME_IO_PRCHK_APP, 2 },
		{ "reftag", PNVME_SC_REFTAG_CHECK, PNVME_IO_PRCHK_REF, 7 },
	};
	size_t pi = ns->pi_first ? 0 : ns->ms - 8;
	char name[64];

	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		uint64_t lba = 3 + k;
		int rc;

		if (ns->pi_type == 3 && bad[k].flag == PNVME_IO_PRCHK_REF)
			continue; /* type 3: the reference tag is not checked */

		md_stage(m, lba, 1, false);
		(ns->md_ext ? m->buf + ns->lba_size : m->md)[pi + bad[k].byte] ^= 0x5a;
		rc = mdio_rw(m, true, lba, 1, bad[k].flag, !ns->md_ext);
		uint16_t status = m->status;
		/* SCT and SC; a controller may set DNR too */
		bool status_ok = rc != 0 &&
				 (status & 0x7ffu) == PNVME_STATUS(PNVME_SCT_MEDIA, bad[k].sc);
		uint64_t changed = 1;
		if (mdio_rw(m, false, lba, 1, ns->pi_type == 3 ? PNVME_IO_PRCHK_GUARD :
			    PNVME_IO_PRCHK_ALL, !ns->md_ext) == 0)
			changed = md_stage(m, lba, 1, true);
		snprintf(name, sizeof(name), "md-ns%u-pi-%s-error", ns->nsid, bad[k].name);
		check(status_ok && changed == 0, name, "bad %s written with its check on: %s (%s), "
		      "block %s", bad[k].name, rc ? strerror(-rc) : "accepted",
		      pnvme_status_str(status), changed ? "changed" : "unchanged");
	}

	/* PRACT with PI-only metadata: the controller inserts the tuple, then strips it. */
	if (ns->ms == 8) {
		uint64_t lba = 9;
		int rc1, rc2, rc3;
		bool pi_ok = false, data_ok = false;

		md_stage(m, lba, 1, false); /* one block: its data leads the buffer */
		m->done = false;
		rc1 = mdio_wait(m, pnvme_write(m->qp, ns, m->buf, lba, 1, PNVME_IO_PRACT, mdio_done,
						  m));
		memset(m->md, 0, ns->ms);
		memset(m->buf, 0, ns->block_bytes);
		rc2 = mdio_rw(m, false, lba, 1, PNVME_IO_PRCHK_GUARD |
			      (ns->pi_type == 3 ? 0 : PNVME_IO_PRCHK_REF), !ns->md_ext);
		if (rc2 == 0) {
			const uint8_t *got = ns->md_ext ? m->buf + ns->lba_size : m->md;
			uint8_t want[8];

			md_block(g_seed, ns->nsid, ns->lba_size, ns->ms, ns->pi_type, ns->pi_first, lba,
				 m->want_d, m->want_m);
			pi_put(want, crc16_t10dif(m->want_d, ns->lba_size), 0,
			       ns->pi_type == 3 ? 0 : (uint32_t)lba);
			pi_ok = memcmp(got, want, ns->pi_type == 3 ? 4 : 8) == 0;
		}
		memset(m->buf, 0, ns->block_bytes);
		m->done = false;
		rc3 = mdio_wait(m, pnvme_read(m->qp, ns, m->buf, lba, 1,
					      PNVME_IO_PRACT | PNVME_IO_PRCHK_GUARD, mdio_done, m));
		data_ok = rc3 == 0 && memcmp(m->buf, m->want_d, ns->lba_size) == 0;
		snprintf(name, sizeof(name), "md-ns%u-pi-pract", ns->nsid);
		check(rc1 == 0 && rc2 == 0 && pi_ok && data_ok, name, "PRACT write %d, PI as the "
		      "controller made it %s, PRACT read %d with the data %s", rc1,
		      pi_ok ? "matches the data" : "wrong", rc3, data_ok ? "intact" : "wrong");
		/* Put the block back as the image expects it. */
		md_stage(m, lba, 1, false);
		(void)mdio_rw(m, true, lba, 1, 0, !ns->md_ext);
	}
}

/* What the library must refuse before the device sees anything. */
static void md_refusals(struct mdio *m, struct pnvme_ctrl *ctrl)
{
	const struct pnvme_ns *ns = m->ns;
	char name[64];
	void *small = NULL;
	int r1, r2 = 0, r3;

	r1 = ns->md_ext ? -EINVAL : pnvme_read(m->qp, ns, m->buf, 0, 1, 0, mdio_done, m);
	if (!ns->md_ext && pnvme_dma_alloc(ctrl, ns->ms, 0, &small, NULL) == 0)
		r2 = pnvme_read_md(m->qp, ns, m->buf, small, 0, 2, 0, 0, 0, mdio_done, m);
	else
		r2 = -EINVAL;
	/* An extended-LBA buffer sized for the data alone is too short. */
	r3 = ns->md_ext ? pnvme_read(m->qp, ns, m->buf + (size_t)(ns->max_lbas - 1) *
				     ns->block_bytes + ns->ms, 0, 1, 0, mdio_done, m) : -EINVAL;
	pnvme_dma_free(ctrl, small);
	snprintf(name, sizeof(name), "md-ns%u-refused", ns->nsid);
	check(r1 == -EINVAL && r2 == -EINVAL && r3 == -EINVAL, name, "no metadata buffer %d, "
	      "metadata buffer one block short %d, data buffer short of the metadata %d", r1, r2,
	      r3);
}

int cmd_md(const char *dev)
{
	/* Against the emulator, full-size commands (QEMU's limits do not apply). */
	if (strncmp(dev, "emu", 3) == 0)
		g_md_ext_max = UINT32_MAX;
	struct pnvme_ctrl *ctrl;
	unsigned tested = 0;

	if (pnvme_ctrl_open(dev, NULL, &ctrl) != 0) {
		check(false, "md-open", "%s: %s", dev, pnvme_last_error());
		return 1;
	}
	for (uint32_t i = 0; i < pnvme_ctrl_nr_ns(ctrl); i++) {
		const struct pnvme_ns *ns = pnvme_ctrl_ns_at(ctrl, i);
		struct mdio m = { .ns = ns };
		size_t len = (size_t)ns->max_lbas * ns->block_bytes;

		if (ns->ms == 0)
			continue;
		printf("VMTEST: md: namespace %u: %" PRIu64 " blocks of %u bytes + %u of metadata, "
		       "%s, PI type %u%s, %u blocks per command\n", ns->nsid, ns->nlba, ns->lba_size,
		       ns->ms, ns->md_ext ? "extended LBA" : "separate metadata", ns->pi_type,
		       ns->pi_type ? (ns->pi_first ? " (first 8 bytes)" : " (last 8 bytes)") : "",
		       ns->max_lbas);
		m.want_d = malloc(ns->lba_size);
		m.want_m = malloc(ns->ms);
		if (!m.want_d || !m.want_m || pnvme_qpair_create(ctrl, NULL, &m.qp) ||
		    pnvme_dma_alloc(ctrl, len, 0, (void **)&m.buf, NULL) ||
		    pnvme_dma_alloc(ctrl, (size_t)ns->max_lbas * ns->ms, 0, (void **)&m.md, NULL)) {
			check(false, "md-setup", "namespace %u: %s", ns->nsid, pnvme_last_error());
			break;
		}
		md_refusals(&m, ctrl);
		/*
		 * Type 3 has no per-block reference tag: every block carries the
		 * same one, so the LBA-based tags here are checked only for types 1 and 2.
		 */
		md_whole(&m, ns->pi_type == 0 ? 0 : ns->pi_type == 3
			 ? PNVME_IO_PRCHK_GUARD | PNVME_IO_PRCHK_APP : PNVME_IO_PRCHK_ALL);
		if (ns->pi_type)
			md_pi_checks(&m);
		pnvme_dma_free(ctrl, m.buf);
		pnvme_dma_free(ctrl, m.md);
		pnvme_qpair_destroy(m.qp);
		free(m.want_d);
		free(m.want_m);
		tested++;
	}
	check(tested > 0, "md-namespaces", "%u namespaces with metadata tested", tested);
	int rc = pnvme_ctrl_close(ctrl);
	check(rc == 0, "md-shutdown", "%d", rc);
	return fails ? 1 : 0;
}

int cmd_expect_md(uint32_t nsid, uint32_t lba_size, uint32_t ms, unsigned pi_type,
		  uint64_t nlba, uint64_t image_size, const char *out)
{
	uint8_t *d = malloc(lba_size), *md = malloc(ms ? ms : 1);
	FILE *f = strcmp(out, "-") ? fopen(out, "wb") : stdout;

	if (!d || !md || !f || (uint64_t)nlba * (lba_size + ms) > image_size) {
		fprintf(stderr, "vmtest expect-md: %s\n", f ? "bad sizes" : strerror(errno));
		return 1;
	}
	for (uint64_t lba = 0; lba < nlba; lba++) {
		md_block(g_seed, nsid, lba_size, ms, pi_type, false, lba, d, md);
		fwrite(d, 1, lba_size, f);
	}
	for (uint64_t lba = 0; lba < nlba; lba++) {
		md_block(g_seed, nsid, lba_size, ms, pi_type, false, lba, d, md);
		fwrite(md, 1, ms, f);
	}
	for (uint64_t n = nlba * (lba_size + ms); n < image_size; n++)
		fputc(0, f);
	if (f != stdout)
		fclose(f);
	free(d);
	free(md);
	return 0;
}
