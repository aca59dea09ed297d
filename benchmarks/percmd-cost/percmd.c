/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * percmd.c - deterministic per-I/O cost of pnvme's submit + complete path.
 *
 *   percmd [N]      N I/Os per configuration (default 20000)
 *
 * An emulated controller in step mode (nothing runs unless stepped), one queue
 * pair per configuration, N 4 KiB reads of LBA 0 into preallocated buffers, at
 * depth 1, 32 and 128, with batched and with per-command doorbells, through
 * each submission API: pnvme_read() (api=read) and prepared requests
 * (api=req: `depth` requests prepared once with pnvme_req_prep_read(), then
 * pnvme_req_submit(qp, req, 0) each time). The loop:
 *
 *   submit until `depth` are outstanding   pnvme_read() / pnvme_req_submit()
 *   pnvme_qpair_flush()                    the SQ doorbell, once (batched mode)
 *   pnvme_emu_step()                       the "device": not the library's cost
 *   pnvme_qpair_poll(qp, 0)                reap, callbacks, CQ doorbell
 *
 * Run under callgrind (run.sh does) with --collect-atstart=no and
 * --toggle-collect on pnvme_read, pnvme_req_submit, pnvme_qpair_flush and
 * pnvme_qpair_poll, so only the library's path (and the trivial callback
 * inside poll) is counted;
 * CALLGRIND_ZERO_STATS before each measured loop and CALLGRIND_DUMP_STATS_AT
 * after it leave one profile per configuration, named after it. Outside
 * valgrind the client requests are no-ops and it just runs.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valgrind/callgrind.h>

#include <pnvme/pnvme.h>

#define MAX_DEPTH 128u

static uint64_t completed;

/* The completion callback: as little as possible, and never inlined (run.sh subtracts it). */
__attribute__((noinline)) static void percmd_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	(void)cqe;
	if (err)
		fprintf(stderr, "percmd: I/O failed: %s\n", pnvme_status_str(PNVME_CQE_STATUS(cqe)));
	++*(uint64_t *)arg;
}

static int run(struct pnvme_ctrl *ctrl, struct pnvme_emu *emu, const struct pnvme_ns *ns,
	       void **bufs, bool prepared, uint32_t depth, uint32_t flags, uint64_t n,
	       uint64_t warm)
{
	static struct pnvme_req reqs[MAX_DEPTH];
	struct pnvme_qpair_opts qo;
	struct pnvme_qpair *qp;
	char name[80];
	int rc;

	pnvme_qpair_opts_default(&qo);
	qo.depth = depth; /* requests outstanding (the rings have depth + 1 entries) */
	qo.flags = flags;
	rc = pnvme_qpair_create(ctrl, &qo, &qp);
	if (rc) {
		fprintf(stderr, "percmd: qpair depth %u: %s\n", depth, pnvme_last_error());
		return 1;
	}
	snprintf(name, sizeof(name), "percmd api=%s depth=%u db=%s n=%" PRIu64,
		 prepared ? "req" : "read", depth, flags ? "per-command" : "batched", n);
	for (uint32_t i = 0; prepared && i < depth; i++) {
		if (pnvme_req_prep_read(qp, &reqs[i], ns, bufs[i], 1, 0, percmd_cb, &completed)) {
			fprintf(stderr, "percmd: prepare: %s\n", pnvme_last_error());
			return 1;
		}
	}

	for (int phase = 0; phase < 2; phase++) {
		uint64_t want = phase ? n : warm, submitted = 0;
		uint32_t slot = 0;

		completed = 0;
		if (phase == 1) {
			pnvme_qpair_reset_stats(qp);
			CALLGRIND_ZERO_STATS;
		}
		while (completed < want) {
			while (submitted - completed < depth && submitted < want) {
				rc = prepared ? pnvme_req_submit(qp, &reqs[slot], 0)
					      : pnvme_read(qp, ns, bufs[slot], 0, 1, 0, percmd_cb,
							   &completed);
				if (rc) {
					fprintf(stderr, "percmd: submit: %s\n", pnvme_last_error());
					return 1;
				}
				submitted++;
				if (++slot == depth)
					slot = 0;
			}
			pnvme_qpair_flush(qp);
			pnvme_emu_step(emu);
			rc = pnvme_qpair_poll(qp, 0);
			if (rc < 0) {
				fprintf(stderr, "percmd: poll: %d\n", rc);
				return 1;
			}
		}
		if (phase == 1)
			CALLGRIND_DUMP_STATS_AT(name);
	}

	struct pnvme_qpair_stats st;
	pnvme_qpair_get_stats(qp, &st);
	printf("%s: %" PRIu64 " I/Os, %" PRIu64 " SQ doorbells, %" PRIu64 " CQ doorbells, %" PRIu64
	       " polls (%" PRIu64 " empty)\n", name, st.completed, st.sq_doorbells, st.cq_doorbells,
	       st.polls, st.empty_polls);
	for (uint32_t i = 0; prepared && i < depth; i++)
		pnvme_req_release(&reqs[i]);
	pnvme_qpair_destroy(qp);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000;
	static const uint32_t depths[] = { 1, 32, 128 };
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	void *bufs[MAX_DEPTH];
	int status = 1;

	if (n == 0)
		return fprintf(stderr, "usage: percmd [N]\n"), 2;
	/*
	 * dbbuf=0: MMIO doorbells, the path of a real SSD (they do not offer
	 * Doorbell Buffer Config). With shadow doorbells, the default where a
	 * virtual controller offers them, each doorbell adds the shadow store,
	 * a full barrier and the EventIdx test (+27 instructions at depth 1).
	 */
	if (pnvme_emu_create("emu:mode=step,size=16M,lba=4096,dbbuf=0", &emu))
		return fprintf(stderr, "percmd: %s\n", pnvme_last_error()), 1;
	if (pnvme_ctrl_open_emu(emu, NULL, &ctrl)) {
		fprintf(stderr, "percmd: %s\n", pnvme_last_error());
		pnvme_emu_destroy(emu);
		return 1;
	}
	const struct pnvme_ns *ns = pnvme_ctrl_ns_at(ctrl, 0);
	memset(bufs, 0, sizeof(bufs));
	for (unsigned i = 0; i < MAX_DEPTH; i++)
		if (pnvme_dma_alloc(ctrl, 4096, 4096, &bufs[i], NULL)) {
			fprintf(stderr, "percmd: %s\n", pnvme_last_error());
			goto out;
		}
	for (int prepared = 0; prepared < 2; prepared++)
		for (unsigned d = 0; d < 3; d++)
			for (uint32_t flags = 0; flags <= PNVME_QPAIR_DB_IMMEDIATE;
			     flags += PNVME_QPAIR_DB_IMMEDIATE)
				if (run(ctrl, emu, ns, bufs, prepared, depths[d], flags, n,
					4 * depths[d] + 64))
					goto out;
	status = 0;
out:
	for (unsigned i = 0; i < MAX_DEPTH; i++)
		pnvme_dma_free(ctrl, bufs[i]);
	pnvme_ctrl_close(ctrl);
	pnvme_emu_destroy(emu);
	return status;
}
