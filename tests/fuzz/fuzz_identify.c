/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_identify.c - libFuzzer target: Identify data parsing, both sides.
 *
 * The first byte picks a mode:
 *   0  raw: bytes 1-4 are max_xfer (little endian), the rest a 4096-byte
 *      Identify Namespace buffer (zero padded) for pnvme_parse_id_ns(); a
 *      success must give a usable namespace geometry, a failure -EPROTO.
 *   1  hostile device: a full controller bring-up (pnvme_ctrl_open_emu)
 *      against an emulator whose Identify Controller / Namespace / Active
 *      Namespace list data are its genuine data with patches from the input
 *      (records: target % 3, offset (2 bytes, % 4096), length (% 16 + 1),
 *      bytes). Open may fail (with an errno); if it succeeds the namespaces
 *      must be ascending, unique and usable, and one read is tried.
 *   2  emulator side, nothing armed: an emulator built from the input
 *      (namespaces, LBA size, size, MDTS) must come up, and what the driver
 *      made of its Identify data must match the configuration; then a few
 *      Identify commands with fuzzed CNS / NSID must be answered sanely.
 * A violated expectation traps.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pnvme/pnvme.h>

#include "core/ctrl_priv.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* emu_admin.c, internal: replace Identify data (CNS 0, 1, 2); NULL restores. */
int pnvme_emu_identify_override(struct pnvme_emu *emu, uint32_t cns, const void *data);

#define ID_SIZE      4096u
#define MAX_XFER_CAP (2u << 20)
#define HOSTILE_SPEC "emu:mode=step,ns=2,size=1M"

static struct pnvme_emu *hostile;
static uint8_t genuine[3][ID_SIZE];   /* the hostile emulator's own CNS 0, 1, 2 data */
static struct pnvme_ctrl_opts opts;

static void check(bool cond)
{
	if (!cond)
		__builtin_trap();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct pnvme_ctrl *c = NULL;

	(void)argc;
	(void)argv;
	pnvme_ctrl_opts_default(&opts);
	opts.admin_timeout_ms = 2000;
	opts.nr_io_queues = 2;
	if (pnvme_emu_create(HOSTILE_SPEC, &hostile) != 0 ||
	    pnvme_ctrl_open_emu(hostile, &opts, &c) != 0 ||
	    pnvme_identify(c, PNVME_ID_CNS_NS, 1, genuine[0]) != 0 ||
	    pnvme_identify(c, PNVME_ID_CNS_CTRL, 0, genuine[1]) != 0 ||
	    pnvme_identify(c, PNVME_ID_CNS_NS_ACTIVE, 0, genuine[2]) != 0) {
		fprintf(stderr, "fuzz_identify: emulator bring-up failed: %s\n", pnvme_last_error());
		abort();
	}
	(void)pnvme_ctrl_close(c);
	return 0;
}

/* What a successful parse must give. */
static void ns_check(const struct pnvme_ns *ns, uint32_t max_xfer)
{
	check(ns->lba_shift >= 9 && ns->lba_shift <= 16);
	check(ns->lba_size == 1u << ns->lba_shift);
	check(ns->ncap <= ns->nlba);
	check(ns->max_xfer == max_xfer);
	check(ns->max_lbas <= 65536u);
	check((uint64_t)ns->max_lbas << ns->lba_shift <= max_xfer);
}

static void mode_raw(const uint8_t *data, size_t size)
{
	struct pnvme_id_ns *id = calloc(1, sizeof(*id));
	struct pnvme_ns ns;
	uint32_t max_xfer = 0;
	int rc;

	if (id == NULL)
		return;
	memcpy(&max_xfer, data, size < 4 ? size : 4);
	if (size > 4)
		memcpy(id, data + 4, size - 4 < sizeof(*id) ? size - 4 : sizeof(*id));
	memset(&ns, 0, sizeof(ns));
	rc = pnvme_parse_id_ns(id, max_xfer, &ns);
	if (rc == 0) {
		ns_check(&ns, max_xfer);
		check(ns.nlba == id->nsze);
	} else {
		check(rc == -EPROTO);
	}
	free(id);
}

static void mode_hostile(const uint8_t *data, size_t size)
{
	static uint8_t id[3][ID_SIZE];
	struct pnvme_ctrl *c = NULL;
	bool try_io = size > 0 && (data[0] & 1u);
	size_t pos = 1;
	int rc;

	memcpy(id, genuine, sizeof(id));
	while (pos + 4 <= size) {
		unsigned which = data[pos] % 3u;
		unsigned off = (unsigned)(data[pos + 1] | data[pos + 2] << 8) % ID_SIZE;
		size_t len = (size_t)(data[pos + 3] % 16u) + 1u;
		pos += 4;
		if (len > size - pos)
			len = size - pos;
		if (len > ID_SIZE - off)
			len = ID_SIZE - off;
		memcpy(&id[which][off], data + pos, len);
		pos += len;
	}
	for (unsigned cns = 0; cns < 3; cns++)
		check(pnvme_emu_identify_override(hostile, cns, id[cns]) == 0);

	rc = pnvme_ctrl_open_emu(hostile, &opts, &c);
	if (rc != 0) {
		check(rc < 0 && c == NULL);
		goto out;
	}
	uint32_t nr = pnvme_ctrl_nr_ns(c), max_xfer = pnvme_ctrl_max_xfer(c);
	check(max_xfer >= 4096u && max_xfer <= MAX_XFER_CAP);
	check(nr <= 1024u);
	for (uint32_t i = 0; i < nr; i++) {
		const struct pnvme_ns *ns = pnvme_ctrl_ns_at(c, i);
		check(ns != NULL && ns->nsid != 0);
		check(i == 0 || ns->nsid > pnvme_ctrl_ns_at(c, i - 1)->nsid);
		check(pnvme_ctrl_ns(c, ns->nsid) == ns);
		ns_check(ns, max_xfer);
	}
	check(pnvme_ctrl_ns_at(c, nr) == NULL);
	if (try_io && nr > 0) {
		const struct pnvme_ns *ns = pnvme_ctrl_ns_at(c, 0);
		struct pnvme_qpair *qp = NULL;
		void *buf = NULL;
		if (pnvme_qpair_create(c, NULL, &qp) == 0 &&
		    pnvme_dma_alloc(c, ns->lba_size, 0, &buf, NULL) == 0)
			(void)pnvme_read_sync(qp, ns, buf, 0, 1, 0);  /* any status: it must end */
		pnvme_dma_free(c, buf);
		(void)pnvme_qpair_destroy(qp);
	}
	(void)pnvme_ctrl_close(c);
out:
	for (unsigned cns = 0; cns < 3; cns++)
		(void)pnvme_emu_identify_override(hostile, cns, NULL);
}

static void mode_emu(const uint8_t *data, size_t size)
{
	uint8_t b[8] = { 0 };
	struct pnvme_emu *emu = NULL;
	struct pnvme_ctrl *c = NULL;
	uint8_t *buf = NULL;
	char spec[128];

	memcpy(b, data, size < sizeof(b) ? size : sizeof(b));
	uint32_t nr_ns = 1u + b[0] % 4u;
	uint32_t lba = 512u << (b[1] % 4u);
	uint64_t blocks = 8u + (uint64_t)(b[2] | b[3] << 8) % 2048u;
	uint32_t mdts = b[4] % 16u;
	snprintf(spec, sizeof(spec), "emu:mode=step,ns=%u,lba=%u,size=%llu,mdts=%u,nq=4", nr_ns,
		 lba, (unsigned long long)(blocks * lba), mdts);
	check(pnvme_emu_create(spec, &emu) == 0);
	if (pnvme_ctrl_open_emu(emu, &opts, &c) != 0)
		__builtin_trap();                          /* nothing armed: it must come up */
	uint32_t want_xfer = mdts == 0 || (4096ull << mdts) > MAX_XFER_CAP ? MAX_XFER_CAP :
			     4096u << mdts;
	check(pnvme_ctrl_max_xfer(c) == want_xfer);
	check(pnvme_ctrl_nr_ns(c) == nr_ns);
	for (uint32_t i = 0; i < nr_ns; i++) {
		const struct pnvme_ns *ns = pnvme_ctrl_ns_at(c, i);
		check(ns != NULL && ns->nsid == i + 1);
		check(ns->lba_size == lba && ns->nlba == blocks && ns->ncap == blocks);
		ns_check(ns, want_xfer);
	}
	buf = malloc(ID_SIZE);
	check(buf != NULL);
	for (size_t pos = 5; pos + 5 <= size && pos < 5 + 4 * 5; pos += 5) {
		uint8_t cns = data[pos];
		uint32_t nsid;
		memcpy(&nsid, data + pos + 1, 4);
		if (nsid > 64 && nsid < 0xfffffff0u)
			nsid %= 64u;
		int rc = pnvme_identify(c, cns, nsid, buf);
		if (cns == PNVME_ID_CNS_NS && nsid >= 1 && nsid <= nr_ns) {
			struct pnvme_ns ns;
			check(rc == 0);
			check(pnvme_parse_id_ns((const struct pnvme_id_ns *)buf, want_xfer, &ns) == 0);
			check(ns.lba_size == lba && ns.nlba == blocks);
		} else if (cns == PNVME_ID_CNS_NS_ACTIVE && rc == 0) {
			const uint32_t *list = (const uint32_t *)buf;
			uint32_t prev = nsid;
			for (unsigned k = 0; k < ID_SIZE / 4 && list[k]; k++) {
				check(list[k] > prev && list[k] <= nr_ns);
				prev = list[k];
			}
		} else if (cns == PNVME_ID_CNS_CTRL) {
			check(rc == 0 && ((const struct pnvme_id_ctrl *)buf)->mdts == mdts);
		}
	}
	free(buf);
	check(pnvme_ctrl_close(c) == 0);
	pnvme_emu_destroy(emu);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3u) {
	case 0:
		mode_raw(data + 1, size - 1);
		break;
	case 1:
		mode_hostile(data + 1, size - 1);
		break;
	default:
		mode_emu(data + 1, size - 1);
		break;
	}
	return 0;
}
