/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_cqe.c - libFuzzer target: a queue pair with requests outstanding
 * consumes completion queue memory written by a hostile device.
 *
 * One stepped emulator controller is opened once (the slow part) and reused.
 * Per input: create an I/O queue pair (depth 8..64), submit reads so their
 * trackers are active, then write fuzz bytes straight into the CQ ring
 * (arbitrary CIDs, SQHDs, phase tags, statuses; optionally with the phase
 * fixed up so the host takes them) interleaved with polls and emulator steps
 * (so genuine completions mix in), then destroy the queue pair.
 *
 * The harness traps if a request's callback runs twice, if a callback gets an
 * argument that was never submitted, or if after destroy some request did not
 * complete exactly once.
 *
 * Input: depth, nr_reads, flags (bit 0: ring the doorbell, 1: step the emulator,
 * 2 and 3 both: 1 ms request timeout and a 1.5 ms pause, so the timeout ladder
 * - abort, reset - runs against the fuzzed entries too; slow, hence two bits),
 * then rounds of
 *   header (bits 0-2: entries - 1, 3: step the emulator after writing,
 *           4: poll one at a time, 5: submit one more read after polling,
 *           6-7: polls - 1)
 *   entries of 17 bytes: control (bit 0: fix the phase tag to what the host
 *   expects, 1: CID modulo depth + 2, 2: SQID = this queue, 3: status 0,
 *   5-7: slot offset past the host's head) and the 16-byte CQE.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pnvme/pnvme.h>

#include "core/ctrl_priv.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REQ   128u
#define MAX_ROUND 8u

struct slot {
	uint32_t calls;
	int err;
	bool submitted;
};

static struct pnvme_ctrl *ctrl;
static struct pnvme_emu *emu;
static const struct pnvme_ns *ns;
static void *buf;
static struct slot slots[MAX_REQ];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (pnvme_ctrl_open("emu:mode=step,size=1M", NULL, &ctrl) != 0 ||
	    pnvme_dma_alloc(ctrl, MAX_REQ * 512u, 4096, &buf, NULL) != 0) {
		fprintf(stderr, "fuzz_cqe: cannot open the emulated controller: %s\n",
			pnvme_last_error());
		abort();
	}
	emu = pnvme_ctrl_emu(ctrl);
	ns = pnvme_ctrl_ns_at(ctrl, 0);
	return 0;
}

static void cpl_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct slot *s = arg;
	uintptr_t off = (uintptr_t)s - (uintptr_t)slots;

	(void)cqe;
	if ((uintptr_t)s < (uintptr_t)slots || off >= sizeof(slots) || off % sizeof(*s) != 0)
		__builtin_trap();                      /* an argument never handed out */
	if (!s->submitted)
		__builtin_trap();                      /* a request never submitted */
	if (++s->calls != 1)
		__builtin_trap();                      /* completed twice */
	s->err = err;
}

static bool submit(struct pnvme_qpair *qp, uint32_t *n)
{
	struct slot *s;

	if (*n >= MAX_REQ)
		return false;
	s = &slots[*n];
	s->submitted = true;
	if (pnvme_read(qp, ns, (uint8_t *)buf + (size_t)*n * 512u, *n % 64u, 1, 0, cpl_cb, s) != 0) {
		s->submitted = false;              /* -EAGAIN (full) and friends: not in flight */
		return false;
	}
	(*n)++;
	return true;
}

/* Write one fuzzed CQE `k` entries past the host's head. */
static void put_cqe(struct pnvme_qpair *qp, uint32_t k, uint8_t ctl, const uint8_t *raw)
{
	uint32_t lin = qp->cq_head + k + (ctl >> 5);
	uint32_t slot = lin % qp->qsize;
	struct pnvme_cqe e;

	memcpy(&e, raw, sizeof(e));
	if (ctl & 1u) {
		/* the phase the host expects there: flipped once per wrap */
		uint16_t ph = (uint16_t)(((lin / qp->qsize) & 1u) ? !qp->phase : qp->phase);
		e.status = (uint16_t)((e.status & ~1u) | ph);
	}
	if (ctl & 2u)
		e.cid = (uint16_t)(e.cid % (qp->qsize + 2u));
	if (ctl & 4u)
		e.sqid = qp->qid;
	if (ctl & 8u)
		e.status &= 1u;
	/* body first, status (phase) last, as a device does */
	memcpy(&qp->cq[slot], &e, offsetof(struct pnvme_cqe, status));
	__atomic_thread_fence(__ATOMIC_RELEASE);
	*(volatile uint16_t *)&qp->cq[slot].status = e.status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pnvme_qpair_opts o;
	struct pnvme_qpair *qp = NULL;
	uint32_t n = 0, nreads;
	size_t pos = 3;
	bool expire;

	if (size < 3)
		return 0;
	memset(slots, 0, sizeof(slots));
	pnvme_qpair_opts_default(&o);
	o.depth = 8u + data[0] % 57u;
	expire = (data[2] & 12u) == 12u;
	o.timeout_ms = expire ? 1u : 600000u;
	if (pnvme_qpair_create(ctrl, &o, &qp) != 0)
		__builtin_trap();                          /* a healthy controller refused */
	nreads = 1u + data[1] % (o.depth - 1u);
	for (uint32_t i = 0; i < nreads; i++)
		(void)submit(qp, &n);
	if (data[2] & 1u)
		pnvme_qpair_flush(qp);
	if (data[2] & 2u)
		(void)pnvme_emu_step(emu);
	if (expire)
		usleep(1500);

	for (uint32_t r = 0; r < MAX_ROUND && pos < size; r++) {
		uint8_t h = data[pos++];
		uint32_t entries = 1u + (h & 7u);

		for (uint32_t k = 0; k < entries && pos + 17 <= size; k++, pos += 17)
			put_cqe(qp, k, data[pos], &data[pos + 1]);
		if (h & 8u)
			(void)pnvme_emu_step(emu);
		for (uint32_t p = 0; p <= (uint32_t)(h >> 6); p++) {
			int rc = pnvme_qpair_poll(qp, (h & 16u) ? 1u : 0u);
			if (rc < 0 && rc != -ENODEV)
				__builtin_trap();
		}
		if (h & 32u)
			(void)submit(qp, &n);
	}

	(void)pnvme_qpair_destroy(qp);
	for (uint32_t i = 0; i < MAX_REQ; i++)
		if (slots[i].submitted != (slots[i].calls == 1) || slots[i].calls > 1)
			__builtin_trap();                  /* lost or repeated completion */
	return 0;
}
