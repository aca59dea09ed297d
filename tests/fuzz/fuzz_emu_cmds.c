/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_emu_cmds.c - libFuzzer target: the emulated controller against a
 * hostile host.
 *
 * Per input, a fresh step-mode emulator is created and driven by a small
 * host in this file that obeys no rule: arbitrary register writes (CC, AQA,
 * ASQ, ACQ, CAP, CSTS, any BAR dword), doorbell values for any queue, SQEs
 * with arbitrary fields written into admin and I/O SQ rings, PRP lists and
 * DSM ranges poked into host memory, SGL segments (descriptor lists whose
 * addresses point into the arena, chains and loops included) with commands
 * using them, shadow doorbells, faults, and IOVA
 * mappings removed and added back while the controller runs. The emulator
 * must survive all of it: no crash, no ASan/UBSan report, no hang.
 *
 * Host memory is an arena of NREG regions of REG_SIZE bytes at consecutive
 * IOVAs from IOVA_BASE; every mapping covers one or more whole regions. A
 * region whose mapping is removed is made PROT_NONE, so a controller access
 * through a stale translation faults at once (an IOMMU would refuse it).
 * Steps and doorbell writes per input are bounded (MAX_STEPS, MAX_RINGS) so
 * that no input runs long.
 *
 * Input: byte 0 picks the configuration (bit 0: lba=4096, 1: ns=2, 2: dbbuf=1,
 * 3-4: dstrd, 5-6: mdts - 1, 7: sgl=2, else sgl=1), byte 1 the metadata format (bits 0-2: ms from
 * {0, 8, 8, 16, 16, 32, 64, 8}, 3: ext=1, 4-5: pi, 6: pil=1; combinations
 * the spec refuses are cut down to what it takes), then operations, each an
 * opcode byte (modulo OP_COUNT) and its arguments (enum op below says which);
 * the input ends at the first operation that does not fit.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <pnvme/emu.h>
#include <pnvme/error.h>
#include <pnvme/spec.h>
#include <pnvme/tcp_spec.h>

#include "internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NREG       32u
#define REG_SIZE   (16u << 10)
#define ARENA_SIZE (NREG * REG_SIZE)
#define IOVA_BASE  0x100000ull
#define NQ         4u             /* I/O queue pairs of the emulator */
#define MAX_STEPS  256u
#define MAX_RINGS  128u

enum op {
	OP_REG32,      /* sel(2) val(4): a named register, or (sel bit 15) any BAR dword */
	OP_ENABLE,     /* sqreg cqreg sqsz cqsz ccbits: CC=0, admin queue registers, CC.EN=1 */
	OP_SQDB,       /* qid val(2): write the SQ tail doorbell */
	OP_CQDB,       /* qid val(2): write the CQ head doorbell */
	OP_SUBMIT,     /* qid fix sqe(64): put the SQE at our tail, ring unless fix bit 5 */
	OP_CREATE,     /* qid sqreg cqreg size flags: Create I/O CQ + SQ on the admin queue
			* (SQ entries 2 + size % 255, CQ entries from flags bits 3-7:
			* 2..5 mostly, so that it fills up) */
	OP_STEP,       /* n: step n % 8 + 1 times */
	OP_REAP,       /* qid: consume new CQEs, write the head doorbell */
	OP_UNMAP,      /* idx: remove a mapping; bit 7: the one holding queue idx % (NQ + 1)'s
			* SQ ring (bit 6: CQ ring) */
	OP_MAP,        /* reg n: map regions reg .. reg + n % 4 as one mapping */
	OP_POKE,       /* reg off(2) len data: write host memory */
	OP_PRPLIST,    /* reg off(2) n raw(8 each): PRP entries folded into the arena */
	OP_DBBUF,      /* dbreg eireg: Doorbell Buffer Config on the admin queue */
	OP_SHADOW,     /* qid which val(2): write a shadow doorbell entry */
	OP_FAULT,      /* kind qid opc skip count status(2): arm a fault (no delays) */
	OP_CLEAR,      /* disarm every fault */
	OP_ABORT,      /* sqid cid: an Abort of (sqid % (NQ + 2), cid) on the admin queue */
	OP_IO,         /* qid sel nlb reg mreg: a well-formed I/O command, cheaply (op_io) */
	OP_SGL,        /* qid sel nlb reg off(2) n desc(13 each): an SGL command (op_sgl) */
	OP_COUNT
};

struct hq {
	bool on;
	uint32_t sqreg, cqreg;
	uint32_t sqsize, cqsize;
	uint32_t tail, head, phase;
};

struct mapping {
	uint32_t reg, n;
};

static uint8_t *arena;
static struct pnvme_emu *emu;
static volatile uint8_t *bar;
static size_t bar_len;
static uint32_t dstrd;
static struct hq q[NQ + 1];
static struct mapping maps[NREG];
static uint32_t nr_maps;
static bool mapped[NREG];
static uint32_t steps, rings;
static uint16_t next_cid;
static bool dbbuf;
static uint32_t dbbuf_reg, eventidx_reg;

struct in {
	const uint8_t *p;
	size_t left;
};

static bool take(struct in *in, void *dst, size_t n)
{
	if (in->left < n)
		return false;
	memcpy(dst, in->p, n);
	in->p += n;
	in->left -= n;
	return true;
}

static uint64_t reg_iova(uint32_t reg)
{
	return IOVA_BASE + (uint64_t)reg * REG_SIZE;
}

/* A raw 64-bit value folded into the arena's IOVA space (alignment kept by the caller). */
static uint64_t fold(uint64_t raw)
{
	return IOVA_BASE + raw % ((uint64_t)ARENA_SIZE + REG_SIZE);  /* a little past the end too */
}

static void map_add(uint32_t reg, uint32_t n)
{
	if (reg + n > NREG)
		return;
	for (uint32_t i = reg; i < reg + n; i++)
		if (mapped[i])
			return;
	if (mprotect(arena + (size_t)reg * REG_SIZE, (size_t)n * REG_SIZE, PROT_READ | PROT_WRITE))
		abort();
	if (pnvme_emu_map(emu, arena + (size_t)reg * REG_SIZE, reg_iova(reg), (size_t)n * REG_SIZE))
		abort();
	for (uint32_t i = reg; i < reg + n; i++)
		mapped[i] = true;
	maps[nr_maps].reg = reg;
	maps[nr_maps].n = n;
	nr_maps++;
}

static void map_remove(uint32_t idx)
{
	struct mapping m;

	if (nr_maps == 0)
		return;
	if (idx & 0x80u) {
		/* the mapping that holds a queue's ring, if it is still mapped */
		const struct hq *h = &q[(idx & 0x3fu) % (NQ + 1)];
		uint32_t reg = (idx & 0x40u) ? h->cqreg : h->sqreg;
		for (idx = 0; idx < nr_maps; idx++)
			if (reg - maps[idx].reg < maps[idx].n)
				break;
		if (idx == nr_maps)
			return;
	}
	idx %= nr_maps;
	m = maps[idx];
	nr_maps--;
	maps[idx] = maps[nr_maps];
	if (pnvme_emu_unmap(emu, reg_iova(m.reg), (size_t)m.n * REG_SIZE))
		abort();
	/* gone for the device: any access through an old translation faults */
	if (mprotect(arena + (size_t)m.reg * REG_SIZE, (size_t)m.n * REG_SIZE, PROT_NONE))
		abort();
	for (uint32_t i = m.reg; i < m.reg + m.n; i++)
		mapped[i] = false;
}

/* Host memory at region `reg` offset `off`, `len` bytes, if mapped (else NULL). */
static uint8_t *host(uint32_t reg, size_t off, size_t len)
{
	reg %= NREG;
	if (!mapped[reg] || off > REG_SIZE || len > REG_SIZE - off)
		return NULL;
	return arena + (size_t)reg * REG_SIZE + off;
}

static void step(uint32_t n)
{
	while (n-- && steps < MAX_STEPS) {
		steps++;
		if (pnvme_emu_step(emu) < 0)
			abort();
	}
}

static void wr(size_t off, uint32_t v)
{
	if (off + 4 <= bar_len)
		mmio_write32(bar, off, v);
}

static void ring_sq(uint32_t qid, uint32_t v)
{
	if (rings >= MAX_RINGS)
		return;
	rings++;
	wr(PNVME_SQ_TDBL(qid, dstrd), v);
}

/* Place `c` at our idea of queue qid's tail; ring unless told not to. */
static void submit(uint32_t qid, const struct pnvme_sqe *c, bool ring)
{
	struct hq *h = &q[qid];
	uint8_t *slot;

	if (!h->on || h->sqsize == 0)
		return;
	slot = host(h->sqreg, (size_t)h->tail * sizeof(*c), sizeof(*c));
	if (slot == NULL)
		return;
	memcpy(slot, c, sizeof(*c));
	h->tail = (h->tail + 1) % h->sqsize;
	if (ring)
		ring_sq(qid, h->tail);
}

static void op_reg32(struct in *in)
{
	static const uint16_t named[] = {
		PNVME_REG_CAP, PNVME_REG_CAP + 4, PNVME_REG_VS, PNVME_REG_INTMS, PNVME_REG_INTMC,
		PNVME_REG_CC, PNVME_REG_CSTS, PNVME_REG_NSSR, PNVME_REG_AQA, PNVME_REG_ASQ,
		PNVME_REG_ASQ + 4, PNVME_REG_ACQ, PNVME_REG_ACQ + 4,
	};
	uint16_t sel;
	uint32_t v;

	if (!take(in, &sel, 2) || !take(in, &v, 4))
		return;
	if (sel & 0x8000u)
		wr((size_t)(sel & 0x7fffu) % (bar_len / 4) * 4, v);
	else
		wr(named[sel % ARRAY_SIZE(named)], v);
}

static void op_enable(struct in *in)
{
	uint8_t a[5];
	uint32_t cc;

	if (!take(in, a, sizeof(a)))
		return;
	wr(PNVME_REG_CC, 0);
	step(1);
	memset(q, 0, sizeof(q));
	dbbuf = false;
	/* The doorbells are ours: zero them before the controller creates the
	 * queues, so that our first write shows (pnvme/emu.h). */
	for (uint32_t i = 0; i <= NQ; i++) {
		wr(PNVME_SQ_TDBL(i, dstrd), 0);
		wr(PNVME_CQ_HDBL(i, dstrd), 0);
	}
	q[0].on = true;
	q[0].sqreg = a[0] % NREG;
	q[0].cqreg = a[1] % NREG;
	q[0].sqsize = 2u + a[2] % 64u;
	q[0].cqsize = 2u + a[3] % 64u;
	q[0].phase = 1;
	wr(PNVME_REG_AQA, PNVME_SET(PNVME_AQA_ASQS, q[0].sqsize - 1) |
			  PNVME_SET(PNVME_AQA_ACQS, q[0].cqsize - 1));
	mmio_write64(bar, PNVME_REG_ASQ, reg_iova(q[0].sqreg));
	mmio_write64(bar, PNVME_REG_ACQ, reg_iova(q[0].cqreg));
	cc = PNVME_SET(PNVME_CC_EN, 1u);
	if (a[4] & 1u)              /* mostly the entry sizes Create I/O Queue wants */
		cc |= PNVME_SET(PNVME_CC_IOSQES, 6u) | PNVME_SET(PNVME_CC_IOCQES, 4u);
	else
		cc |= (uint32_t)a[4] << 12;   /* AMS, SHN, IOSQES bits: whatever */
	wr(PNVME_REG_CC, cc);
}

static void op_db(struct in *in, bool sq)
{
	uint8_t qid;
	uint16_t v;

	if (!take(in, &qid, 1) || !take(in, &v, 2))
		return;
	qid %= NQ + 1;
	if (sq) {
		if (q[qid].on && q[qid].sqsize)
			q[qid].tail = v % q[qid].sqsize;
		ring_sq(qid, v);
	} else {
		wr(PNVME_CQ_HDBL(qid, dstrd), v);
	}
}

/*
 * fix bits: 0 PRP1 and 1 PRP2 folded into the arena (2: page aligned),
 * 3 NSID 1, 4 no flags (no fused, PRPs), 5 do not ring, 6 CID below 256 (so
 * that OP_ABORT can name it), 7 MPTR folded into the arena (dword aligned).
 */
static void op_submit(struct in *in)
{
	struct pnvme_sqe c;
	uint8_t qid, fix;

	if (!take(in, &qid, 1) || !take(in, &fix, 1) || !take(in, &c, sizeof(c)))
		return;
	qid %= NQ + 1;
	if (fix & 1u)
		c.prp1 = fold(c.prp1) & ~(uint64_t)((fix & 4u) ? 4095u : 3u);
	if (fix & 2u)
		c.prp2 = fold(c.prp2) & ~(uint64_t)((fix & 4u) ? 4095u : 7u);
	if (fix & 8u)
		c.nsid = 1;
	if (fix & 16u)
		c.flags = 0;
	if (fix & 64u)
		c.cid &= 0xffu;
	if (fix & 128u)
		c.mptr = fold(c.mptr) & ~(uint64_t)3u;
	submit(qid, &c, !(fix & 32u));
}

static void op_create(struct in *in)
{
	uint8_t a[5];
	struct pnvme_sqe c;
	uint32_t qid, size, cqsize;

	if (!take(in, a, sizeof(a)))
		return;
	qid = 1u + a[0] % NQ;
	size = 2u + a[3] % 255u;
	cqsize = (a[4] & 0x80u) ? 2u + ((a[4] >> 3) & 0xfu) * 2u : 2u + ((a[4] >> 3) & 3u);
	wr(PNVME_SQ_TDBL(qid, dstrd), 0);     /* before the controller creates it */
	wr(PNVME_CQ_HDBL(qid, dstrd), 0);
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_CREATE_CQ;
	c.cid = next_cid++;
	c.cdw10 = qid | (cqsize - 1u) << 16;
	c.cdw11 = PNVME_CREATE_CQ_PC | ((a[4] & 1u) ? PNVME_CREATE_CQ_IEN : 0);
	c.prp1 = reg_iova(a[2] % NREG);
	submit(0, &c, !(a[4] & 2u));
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_CREATE_SQ;
	c.cid = next_cid++;
	c.cdw10 = qid | (size - 1u) << 16;
	c.cdw11 = PNVME_CREATE_SQ_PC | (uint32_t)((a[4] & 4u) ? a[0] % (NQ + 1) : qid) << 16;
	c.prp1 = reg_iova(a[1] % NREG);
	submit(0, &c, true);
	q[qid].on = true;
	q[qid].sqreg = a[1] % NREG;
	q[qid].cqreg = a[2] % NREG;
	q[qid].sqsize = size;
	q[qid].cqsize = cqsize;
	q[qid].tail = q[qid].head = 0;
	q[qid].phase = 1;
}

static void op_reap(struct in *in)
{
	uint8_t qid;
	struct hq *h;
	bool moved = false;

	if (!take(in, &qid, 1))
		return;
	h = &q[qid % (NQ + 1)];
	if (!h->on || h->cqsize == 0)
		return;
	for (uint32_t n = 0; n < h->cqsize; n++) {
		const uint8_t *e = host(h->cqreg, (size_t)h->head * sizeof(struct pnvme_cqe),
					sizeof(struct pnvme_cqe));
		uint16_t status;
		if (e == NULL)
			break;
		memcpy(&status, e + 14, 2);
		if ((status & 1u) != h->phase)
			break;
		h->head = (h->head + 1) % h->cqsize;
		if (h->head == 0)
			h->phase ^= 1u;
		moved = true;
	}
	if (moved)
		wr(PNVME_CQ_HDBL(qid % (NQ + 1), dstrd), h->head);
}

static void op_poke(struct in *in)
{
	uint8_t reg, len;
	uint16_t off;
	uint8_t *dst;

	if (!take(in, &reg, 1) || !take(in, &off, 2) || !take(in, &len, 1) || in->left < len)
		return;
	dst = host(reg, off % REG_SIZE, len);
	if (dst != NULL)
		memcpy(dst, in->p, len);
	in->p += len;
	in->left -= len;
}

static void op_prplist(struct in *in)
{
	uint8_t reg, n;
	uint16_t off;

	if (!take(in, &reg, 1) || !take(in, &off, 2) || !take(in, &n, 1))
		return;
	n %= 16u;
	off = (uint16_t)((off % REG_SIZE) & ~7u);
	for (uint8_t i = 0; i < n; i++) {
		uint64_t raw;
		uint8_t *dst;
		if (!take(in, &raw, 8))
			return;
		raw = fold(raw) & ~(uint64_t)((raw & 1u) ? 0u : 4095u);
		dst = host(reg, (size_t)off + i * 8u, 8);
		if (dst != NULL)
			memcpy(dst, &raw, 8);
	}
}

static void op_dbbuf(struct in *in)
{
	uint8_t a[2];
	struct pnvme_sqe c;

	if (!take(in, a, 2))
		return;
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_DBBUF_CONFIG;
	c.cid = next_cid++;
	c.prp1 = reg_iova(a[0] % NREG);
	c.prp2 = reg_iova(a[1] % NREG);
	submit(0, &c, true);
	dbbuf = true;
	dbbuf_reg = a[0] % NREG;
	eventidx_reg = a[1] % NREG;
}

static void op_shadow(struct in *in)
{
	uint8_t qid, which;
	uint16_t v;
	uint8_t *p;

	if (!take(in, &qid, 1) || !take(in, &which, 1) || !take(in, &v, 2) || !dbbuf)
		return;
	qid %= NQ + 1;
	p = host(dbbuf_reg, ((size_t)(2u * qid + (which & 1u))) << (2u + dstrd), 4);
	if (p == NULL)
		return;
	uint32_t val = v;
	if (!(which & 1u) && q[qid].on && q[qid].sqsize)
		q[qid].tail = v % q[qid].sqsize;
	__atomic_store_n((uint32_t *)(void *)p, val, __ATOMIC_RELEASE);
	if (which & 2u)      /* and the register, as a host crossing EventIdx does */
		wr((which & 1u) ? PNVME_CQ_HDBL(qid, dstrd) : PNVME_SQ_TDBL(qid, dstrd), v);
}

static void op_fault(struct in *in)
{
	uint8_t a[5];
	uint16_t status;
	struct pnvme_emu_fault f;

	if (!take(in, a, sizeof(a)) || !take(in, &status, 2))
		return;
	memset(&f, 0, sizeof(f));
	f.kind = (enum pnvme_emu_fault_kind)(PNVME_EMU_FAULT_NEVER_READY +
					      a[0] % PNVME_EMU_FAULT_MQES_ZERO);
	f.qid = (a[1] & 0x80u) ? PNVME_EMU_ANY_QID : (uint16_t)(a[1] % (NQ + 1));
	f.opc = (a[2] == 0xffu) ? PNVME_EMU_ANY_OPC : a[2];
	f.skip = a[3] % 8u;
	f.count = a[4] % 4u;
	f.status = status;
	f.delay_us = 0;          /* due at the next step: no clock in the outcome */
	(void)pnvme_emu_inject(emu, &f);
}

/*
 * A Read, Write, Write Zeroes or Flush (sel bits 0-1) with PRINFO sel bits
 * 2-5, NSID 2 if bit 6, not rung if bit 7; nlb + 1 blocks from SLBA mreg, data
 * in region reg (PRP2 its second page), MPTR at region mreg, a CID below 256,
 * ILBRT = SLBA, LBAT 0 under a full mask.
 */
static void op_io(struct in *in)
{
	static const uint8_t opc[4] = {
		PNVME_NVM_READ, PNVME_NVM_WRITE, PNVME_NVM_WRITE_ZEROES, PNVME_NVM_FLUSH,
	};
	uint8_t a[5];
	struct pnvme_sqe c;

	if (!take(in, a, sizeof(a)))
		return;
	memset(&c, 0, sizeof(c));
	c.opc = opc[a[1] & 3u];
	c.cid = (uint16_t)(next_cid++ & 0xffu);
	c.nsid = (a[1] & 0x40u) ? 2 : 1;
	c.prp1 = reg_iova(a[3] % NREG);
	c.prp2 = c.prp1 + 4096;
	c.mptr = reg_iova(a[4] % NREG);
	c.cdw10 = a[4];
	c.cdw12 = a[2] | (uint32_t)((a[1] >> 2) & 0xfu) << 26;
	c.cdw14 = a[4];
	c.cdw15 = 0xffffu << 16;
	submit(a[0] % (NQ + 1), &c, !(a[1] & 0x80u));
}

/*
 * An SGL command (PSDT 01b, Base 2.0 §4.1.2): n % 16 descriptors of 13 input
 * bytes (address 8, folded into the arena; length 4, for a Segment or Last
 * Segment a multiple of 16 up to 256 unless its bit 31 is set, else taken
 * modulo 16 KiB unless bit 31 is set; identifier 1: type bits 0-2, subtype
 * bits 4-7 if bit 3) written at region reg offset off (16-byte aligned
 * unless sel bit 7); then on queue qid a Read, Write, DSM (deallocate, nlb
 * % 4 + 1 ranges) or Read (sel bits 0-1) of nlb + 1 blocks at SLBA 0 whose
 * SGL Descriptor 1 is a Last Segment (sel bit 2: a Segment) naming the
 * list, or (sel bit 3) the list's first descriptor itself.
 */
static void op_sgl(struct in *in)
{
	static const uint8_t opc[4] = {
		PNVME_NVM_READ, PNVME_NVM_WRITE, PNVME_NVM_DSM, PNVME_NVM_READ,
	};
	struct pnvme_sgl_desc d1, first;
	struct pnvme_sqe c;
	uint8_t a[4], n;
	uint16_t off;

	if (!take(in, a, sizeof(a)) || !take(in, &off, 2) || !take(in, &n, 1))
		return;
	n %= 16u;
	off = (uint16_t)(off % (REG_SIZE - 15u));
	if (!(a[1] & 0x80u))
		off &= (uint16_t)~15u;
	memset(&first, 0, sizeof(first));
	for (uint8_t i = 0; i < n; i++) {
		struct pnvme_sgl_desc d;
		uint64_t addr;
		uint32_t len;
		uint8_t id, type;
		uint8_t *dst;

		if (!take(in, &addr, 8) || !take(in, &len, 4) || !take(in, &id, 1))
			return;
		type = id & 7u;
		memset(&d, 0, sizeof(d));
		d.id = PNVME_SGL_ID(type, (id & 8u) ? id >> 4 : 0u);
		d.addr = fold(addr);
		if (!(len & 0x80000000u))
			len = type == PNVME_SGL_TYPE_SEGMENT || type == PNVME_SGL_TYPE_LAST_SEGMENT
				      ? (len % 16u + 1u) * 16u : len % REG_SIZE;
		d.length = len;
		if (i == 0)
			first = d;
		dst = host(a[3], (size_t)off + i * sizeof(d), sizeof(d));
		if (dst != NULL)
			memcpy(dst, &d, sizeof(d));
	}
	memset(&c, 0, sizeof(c));
	c.opc = opc[a[1] & 3u];
	c.flags = (uint8_t)PNVME_SET(PNVME_SQE_PSDT, PNVME_SQE_PSDT_SGL_MPTR_CONTIG);
	c.cid = (uint16_t)(next_cid++ & 0xffu);
	c.nsid = 1;
	c.cdw12 = a[2];
	if (c.opc == PNVME_NVM_DSM) {
		c.cdw10 = a[2] % 4u;
		c.cdw11 = PNVME_DSM_AD;
	}
	if ((a[1] & 8u) && n)
		d1 = first;
	else
		d1 = (struct pnvme_sgl_desc){
			.addr = reg_iova(a[3] % NREG) + off, .length = n * 16u,
			.id = PNVME_SGL_ID((a[1] & 4u) ? PNVME_SGL_TYPE_SEGMENT
						       : PNVME_SGL_TYPE_LAST_SEGMENT, 0) };
	c.prp1 = d1.addr;
	c.prp2 = (uint64_t)d1.length | (uint64_t)d1.id << 56;
	submit(a[0] % (NQ + 1), &c, true);
}

static void op_abort(struct in *in)
{
	uint8_t a[2];
	struct pnvme_sqe c;

	if (!take(in, a, 2))
		return;
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_ABORT;
	c.cid = next_cid++;
	c.cdw10 = (uint32_t)(a[0] % (NQ + 2)) | (uint32_t)a[1] << 16;
	submit(0, &c, true);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	arena = mmap(NULL, ARENA_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (arena == MAP_FAILED) {
		fprintf(stderr, "fuzz_emu_cmds: no memory for the arena\n");
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	static const unsigned ms_sel[8] = { 0, 8, 8, 16, 16, 32, 64, 8 };
	char spec[200];
	uint8_t cfg[2] = { 0, 0 };
	unsigned ms, ext, pi, pil;

	if (!take(&in, cfg, sizeof(cfg)))
		return 0;
	ms = ms_sel[cfg[1] & 7u];
	ext = ms ? (cfg[1] >> 3) & 1u : 0;
	pi = ms ? (cfg[1] >> 4) & 3u : 0;
	pil = pi ? (cfg[1] >> 6) & 1u : 0;
	snprintf(spec, sizeof(spec),
		 "emu:mode=step,size=1M,mqes=255,nq=%u,lba=%u,ns=%u,dbbuf=%u,dstrd=%u,mdts=%u,"
		 "ms=%u,ext=%u,pi=%u,pil=%u,sgl=%u",
		 NQ, (cfg[0] & 1u) ? 4096u : 512u, (cfg[0] & 2u) ? 2u : 1u, (cfg[0] >> 2) & 1u,
		 (cfg[0] >> 3) & 3u, 1u + ((cfg[0] >> 5) & 3u), ms, ext, pi, pil,
		 (cfg[0] & 0x80u) ? 2u : 1u);
	if (pnvme_emu_create(spec, &emu) != 0) {
		fprintf(stderr, "fuzz_emu_cmds: %s: %s\n", spec, pnvme_last_error());
		abort();
	}
	bar = pnvme_emu_bar(emu, &bar_len);
	dstrd = (cfg[0] >> 3) & 3u;
	memset(q, 0, sizeof(q));
	nr_maps = 0;
	memset(mapped, 0, sizeof(mapped));
	steps = rings = 0;
	next_cid = 0x8000;
	dbbuf = false;
	/* fresh memory, every region mapped on its own */
	if (mprotect(arena, ARENA_SIZE, PROT_READ | PROT_WRITE))
		abort();
	memset(arena, 0, ARENA_SIZE);
	if (mprotect(arena, ARENA_SIZE, PROT_NONE))
		abort();
	for (uint32_t r = 0; r < NREG; r++)
		map_add(r, 1);

	while (in.left > 0) {
		uint8_t op = 0;
		uint8_t a[2];
		(void)take(&in, &op, 1);
		switch (op % OP_COUNT) {
		case OP_REG32:   op_reg32(&in); break;
		case OP_ENABLE:  op_enable(&in); break;
		case OP_SQDB:    op_db(&in, true); break;
		case OP_CQDB:    op_db(&in, false); break;
		case OP_SUBMIT:  op_submit(&in); break;
		case OP_CREATE:  op_create(&in); break;
		case OP_STEP:
			if (take(&in, a, 1))
				step(a[0] % 8u + 1u);
			break;
		case OP_REAP:    op_reap(&in); break;
		case OP_UNMAP:
			if (take(&in, a, 1))
				map_remove(a[0]);
			break;
		case OP_MAP:
			if (take(&in, a, 2))
				map_add(a[0] % NREG, 1u + a[1] % 4u);
			break;
		case OP_POKE:    op_poke(&in); break;
		case OP_PRPLIST: op_prplist(&in); break;
		case OP_DBBUF:   op_dbbuf(&in); break;
		case OP_SHADOW:  op_shadow(&in); break;
		case OP_FAULT:   op_fault(&in); break;
		case OP_CLEAR:   pnvme_emu_clear_faults(emu); break;
		case OP_ABORT:   op_abort(&in); break;
		case OP_IO:      op_io(&in); break;
		case OP_SGL:     op_sgl(&in); break;
		default: break;
		}
	}
	step(4);
	pnvme_emu_destroy(emu);
	emu = NULL;
	return 0;
}
