/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * minloop - the smallest polled NVMe read loop we know how to write, for
 * comparing pnvme-perf against a floor in the same guest boot
 * (benchmarks/guest-compare.sh, BENCHMARKS.md section 3). Not part of the
 * library and shares no code with it: raw VFIO, one I/O queue pair, no
 * trackers, no bounds checks, no timeouts, no statistics beyond a count and a
 * latency sum.
 *
 *   minloop BDF [-q DEPTH] [-t SECONDS] [-s QSIZE] [-o BYTES] [-c CPU] [-N]
 *               [-D] [-F] [-T] [-S] [-Z] [-B] [-R N] [-L]
 *
 * The device must be bound to vfio-pci (pnvme bind BDF) and be a QEMU-like
 * controller with namespace 1. 4 KiB (-o) random reads over the whole
 * namespace, DEPTH (default 1) kept outstanding, for SECONDS (default 10).
 * The loop: look at the CQ entry at the head (phase bit, Base 2.0 §4.2.4);
 * for each new completion build the next Read in the SQ slot at the tail;
 * after the batch write the CQ head doorbell, then the SQ tail doorbell
 * (-N: the SQ doorbell after every command instead). Time is rdtsc,
 * calibrated against CLOCK_MONOTONIC, read once per loop iteration. -c pins
 * the thread to a CPU.
 *
 * Steps pnvme takes that this loop does not, one flag each, to find what
 * costs time at depth 1 (BENCHMARKS.md section 3):
 *   -D  the SQ doorbell of commands built in a pass is written at the start
 *       of the next pass, not right after the CQ doorbell;
 *   -F  each doorbell write in a handshake: store a flag, full fence (mfence),
 *       load a word, write, store the flag (pnvme's db_enter/db_leave);
 *   -T  one more cycle-counter read per command (pnvme's deadline).
 * and two it could take:
 *   -S  the SQ doorbell before the CQ doorbell (the device starts sooner);
 *   -Z  the CQ doorbell only once half the CQ is consumed (QSIZE >= 2 DEPTH;
 *       pnvme's PNVME_QPAIR_LAZY_CQ_DB);
 *   -B  shadow doorbells as SPDK v24.01 uses them: Doorbell Buffer Config
 *       (Base 2.0 §5.8) before the I/O queues, then for each I/O doorbell:
 *       store fence, read the old shadow value, store the new one, full
 *       fence, read the EventIdx, and write the register only when the
 *       EventIdx lies between the old and the new value, both included
 *       (SPDK's rule; the SQ write after one more store fence); with the
 *       default order that is the CQ head first, then the SQ tail (-B -S:
 *       pnvme's order with shadow doorbells);
 *   -R N read the cycle counter in a pass that found nothing only every Nth
 *       time (default 1: every pass; under QEMU TCG each read is a call into
 *       QEMU's tick code, which takes its clock lock).
 *   -L  stamp the depth-1 cycle as pnvme's lattrace build does
 *       (src/pcie/lattrace.h) and print a second line, minloop-lt:.
 *
 * Output, one line:
 *   minloop: qd=1 qsize=64 bs=4096 secs=10.00 ios=N iops=N lat_us=N errors=N flags=...
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <sched.h>
#include <linux/vfio.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "minloop reads the TSC: x86-64 only"
#endif

#define IOVA_BASE 0x10000000ull
#define ADMIN_Q   32

struct sqe {
	uint8_t opc, flags;
	uint16_t cid;
	uint32_t nsid;
	uint64_t rsvd, mptr, prp1, prp2;
	uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};
struct cqe {
	uint32_t dw0, dw1;
	uint16_t sqhd, sqid, cid;
	uint16_t status; /* bit 0: phase */
};
_Static_assert(sizeof(struct sqe) == 64, "SQE is 64 bytes");
_Static_assert(sizeof(struct cqe) == 16, "CQE is 16 bytes");

static volatile uint8_t *bar;
static uint32_t dstrd;

static uint64_t rd64(uint32_t off) { return *(volatile uint64_t *)(bar + off); }
static uint32_t rd32(uint32_t off) { return *(volatile uint32_t *)(bar + off); }
static void wr32(uint32_t off, uint32_t v) { *(volatile uint32_t *)(bar + off) = v; }
static void wr64(uint32_t off, uint64_t v)
{
	wr32(off, (uint32_t)v);
	wr32(off + 4, (uint32_t)(v >> 32));
}
static bool opt_fence; /* -F */
static uint32_t db_busy, db_gen;
static volatile uint32_t *shadow, *eventidx; /* -B: the two Doorbell Buffer Config pages */

/* Doorbells (Base 2.0 §3.1.4.22/23): SQ y tail at 1000h + (2y) * (4 << DSTRD). */
static void db(unsigned qid, bool cq, uint32_t v)
{
	if (opt_fence) {
		__atomic_store_n(&db_busy, 1, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(&db_gen, __ATOMIC_RELAXED) != 0)
			return;
	}
	if (shadow && qid) {
		unsigned i = (2 * qid + cq) * (4u << dstrd) / 4;
		__builtin_ia32_sfence();
		uint16_t old = (uint16_t)shadow[i];
		shadow[i] = v;
		__builtin_ia32_mfence();
		uint16_t ei = (uint16_t)eventidx[i];
		if ((uint16_t)(v - ei) > (uint16_t)(v - old))
			return;
		if (!cq)
			__builtin_ia32_sfence();
	}
	__atomic_thread_fence(__ATOMIC_RELEASE); /* x86: the entry stores are already ordered */
	wr32(0x1000 + (2 * qid + cq) * (4u << dstrd), v);
	if (opt_fence)
		__atomic_store_n(&db_busy, 0, __ATOMIC_RELEASE);
}

static uint64_t rdtsc(void) { return __builtin_ia32_rdtsc(); }
static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int die(const char *what)
{
	fprintf(stderr, "minloop: %s: %s\n", what, strerror(errno ? errno : EIO));
	exit(1);
}

/* A ring of N entries at a known IOVA. */
struct queue {
	void *ring;
	uint64_t iova;
	uint32_t n, head, tail;
	uint16_t phase;
};

static uint8_t *mem;      /* the one DMA region */
static uint64_t mem_size;

static uint64_t iova_of(const void *p) { return IOVA_BASE + (uint64_t)((const uint8_t *)p - mem); }

static void wait_rdy(uint32_t want, uint64_t cap)
{
	uint64_t limit = mono_ns() + ((cap >> 24) & 0xff) * 500000000ull + 1000000000ull;
	while ((rd32(0x1c) & 1) != want) {
		if (rd32(0x1c) & 2) { /* CSTS.CFS */
			errno = EIO;
			die("controller fatal status");
		}
		if (mono_ns() > limit) {
			errno = ETIMEDOUT;
			die(want ? "waiting for CSTS.RDY=1" : "waiting for CSTS.RDY=0");
		}
		usleep(1000);
	}
}

/* One admin command, polled to completion. */
static void admin(struct queue *asq, struct queue *acq, struct sqe *cmd)
{
	struct sqe *s = (struct sqe *)asq->ring + asq->tail;
	*s = *cmd;
	s->cid = (uint16_t)asq->tail;
	asq->tail = (asq->tail + 1) % asq->n;
	db(0, false, asq->tail);
	volatile struct cqe *c = (struct cqe *)acq->ring + acq->head;
	uint64_t limit = mono_ns() + 5000000000ull;
	while ((c->status & 1) != acq->phase) {
		if (mono_ns() > limit) {
			errno = ETIMEDOUT;
			die("admin command timed out");
		}
	}
	uint16_t st = c->status >> 1;
	if (++acq->head == acq->n) {
		acq->head = 0;
		acq->phase ^= 1;
	}
	db(0, true, acq->head);
	if (st) {
		fprintf(stderr, "minloop: admin opcode %02xh failed: status %04xh\n", cmd->opc, st);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	unsigned qd = 1, qsize = 64, secs = 10, bs = 4096;
	int cpu = -1;
	unsigned tsc_every = 1;
	bool percmd = false, defer = false, tsc_per_cmd = false, trace = false, sq_first = false,
	     lazy_cq = false, dbbuf = false;
	const char *bdf = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-q") && i + 1 < argc)
			qd = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "-t") && i + 1 < argc)
			secs = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "-s") && i + 1 < argc)
			qsize = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "-o") && i + 1 < argc)
			bs = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "-c") && i + 1 < argc)
			cpu = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-N"))
			percmd = true;
		else if (!strcmp(argv[i], "-D"))
			defer = true;
		else if (!strcmp(argv[i], "-F"))
			opt_fence = true;
		else if (!strcmp(argv[i], "-T"))
			tsc_per_cmd = true;
		else if (!strcmp(argv[i], "-L"))
			trace = true;
		else if (!strcmp(argv[i], "-S"))
			sq_first = true;
		else if (!strcmp(argv[i], "-Z"))
			lazy_cq = true;
		else if (!strcmp(argv[i], "-B"))
			dbbuf = true;
		else if (!strcmp(argv[i], "-R") && i + 1 < argc)
			tsc_every = (unsigned)atoi(argv[++i]);
		else if (argv[i][0] != '-' && !bdf)
			bdf = argv[i];
		else {
			fprintf(stderr, "usage: minloop BDF [-q DEPTH] [-t SECONDS] [-s QSIZE] [-o BYTES] "
					"[-c CPU] [-N] [-D] [-F] [-T] [-S] [-Z] [-B] [-R N] [-L]\n");
			return 2;
		}
	}
	/* Each ring is one 4 KiB page: at most 64 SQEs. */
	if (!bdf || qd == 0 || qsize < 2 || qsize > 64 || qd >= qsize || bs < 512 || bs > 4096 ||
	    bs & 511 || secs == 0 || (lazy_cq && 2 * qd > qsize) || tsc_every == 0) {
		fprintf(stderr, "minloop: need a BDF, 0 < DEPTH < QSIZE <= 64, 512 <= BYTES <= 4096 "
				"(a multiple of 512), SECONDS > 0\n");
		return 2;
	}

	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			die("sched_setaffinity");
	}

	/* VFIO: container, group, device (Documentation/driver-api/vfio.rst). */
	char path[256], link[256];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	ssize_t ln = readlink(path, link, sizeof(link) - 1);
	if (ln < 0)
		die(path);
	link[ln] = 0;
	int container = open("/dev/vfio/vfio", O_RDWR);
	if (container < 0)
		die("/dev/vfio/vfio");
	snprintf(path, sizeof(path), "/dev/vfio/%s", basename(link));
	int group = open(path, O_RDWR);
	if (group < 0)
		die(path);
	struct vfio_group_status gs = { .argsz = sizeof(gs) };
	if (ioctl(group, VFIO_GROUP_GET_STATUS, &gs) || !(gs.flags & VFIO_GROUP_FLAGS_VIABLE))
		die("group not viable (every device of the group bound to vfio-pci?)");
	if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container))
		die("VFIO_GROUP_SET_CONTAINER");
	if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) &&
	    ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU))
		die("VFIO_SET_IOMMU");
	int dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (dev < 0)
		die("VFIO_GROUP_GET_DEVICE_FD");

	/* Bus master on (PCI command register bit 2). */
	struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &cfg))
		die("config region");
	uint16_t cmdreg;
	if (pread(dev, &cmdreg, 2, (off_t)cfg.offset + 4) != 2)
		die("reading the PCI command register");
	cmdreg |= 0x6;
	if (pwrite(dev, &cmdreg, 2, (off_t)cfg.offset + 4) != 2)
		die("writing the PCI command register");

	struct vfio_region_info r0 = { .argsz = sizeof(r0), .index = VFIO_PCI_BAR0_REGION_INDEX };
	if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &r0) || r0.size < 0x2000)
		die("BAR0");
	bar = mmap(NULL, r0.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev, (off_t)r0.offset);
	if (bar == MAP_FAILED)
		die("mmap BAR0");

	/* DMA memory, one page each: admin SQ, admin CQ, I/O SQ, I/O CQ, identify,
	 * data (DEPTH pages), shadow doorbells, EventIdx. */
	mem_size = (uint64_t)(7 + qd) * 4096;
	mem_size = (mem_size + 0x1fffff) & ~0x1fffffull;
	mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB,
		   -1, 0);
	if (mem == MAP_FAILED)
		mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap DMA memory");
	memset(mem, 0, mem_size);
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)mem, .iova = IOVA_BASE, .size = mem_size,
	};
	if (ioctl(container, VFIO_IOMMU_MAP_DMA, &map))
		die("VFIO_IOMMU_MAP_DMA");
	struct queue asq = { mem, 0, ADMIN_Q, 0, 0, 1 }, acq = { mem + 4096, 0, ADMIN_Q, 0, 0, 1 };
	struct queue sq = { mem + 8192, 0, qsize, 0, 0, 1 }, cq = { mem + 12288, 0, qsize, 0, 0, 1 };
	uint8_t *idbuf = mem + 16384, *data = mem + 20480;

	/* Bring-up (Base 2.0 §3.5.1): disable, admin queues, enable. */
	uint64_t cap = rd64(0x0);
	dstrd = (uint32_t)(cap >> 32) & 0xf;
	if (rd32(0x14) & 1) {
		wr32(0x14, rd32(0x14) & ~1u);
		wait_rdy(0, cap);
	}
	wr32(0x24, (ADMIN_Q - 1) << 16 | (ADMIN_Q - 1));
	wr64(0x28, iova_of(asq.ring));
	wr64(0x30, iova_of(acq.ring));
	wr32(0x14, 4u << 20 | 6u << 16 | 1u); /* IOCQES 16 B, IOSQES 64 B, MPS 4 KiB, EN */
	wait_rdy(1, cap);

	struct sqe c = { .opc = 0x06, .nsid = 1, .prp1 = iova_of(idbuf) }; /* Identify Namespace */
	admin(&asq, &acq, &c);
	uint64_t nsze;
	memcpy(&nsze, idbuf, 8);
	uint8_t flbas = idbuf[26] & 0xf;
	uint32_t lbaf;
	memcpy(&lbaf, idbuf + 128 + 4 * flbas, 4);
	unsigned lbads = (lbaf >> 16) & 0xff;
	if (lbads < 9 || lbads > 12 || (1u << lbads) > bs || nsze < 2 * (bs >> lbads)) {
		fprintf(stderr, "minloop: namespace 1: LBA size 2^%u, %" PRIu64 " blocks: unusable\n",
			lbads, nsze);
		return 1;
	}
	uint32_t nlb = bs >> lbads;
	uint64_t nr_pos = nsze / nlb;

	if (dbbuf) { /* Doorbell Buffer Config (Base 2.0 §5.8): PRP1 shadow, PRP2 EventIdx */
		shadow = (volatile uint32_t *)(data + 4096ull * qd);
		eventidx = shadow + 1024;
		c = (struct sqe){ .opc = 0x7c, .prp1 = iova_of((const void *)shadow),
				  .prp2 = iova_of((const void *)eventidx) };
		admin(&asq, &acq, &c);
	}

	/* Create I/O CQ 1 (polled: IEN 0) and SQ 1 (Base 2.0 §5.4, §5.5). */
	c = (struct sqe){ .opc = 0x05, .prp1 = iova_of(cq.ring), .cdw10 = (qsize - 1) << 16 | 1,
			  .cdw11 = 1 };
	admin(&asq, &acq, &c);
	c = (struct sqe){ .opc = 0x01, .prp1 = iova_of(sq.ring), .cdw10 = (qsize - 1) << 16 | 1,
			  .cdw11 = 1u << 16 | 1 };
	admin(&asq, &acq, &c);

	/* TSC rate against CLOCK_MONOTONIC, over 100 ms. */
	uint64_t n0 = mono_ns(), t0 = rdtsc();
	usleep(100000);
	uint64_t n1 = mono_ns(), t1 = rdtsc();
	double hz = (double)(t1 - t0) * 1e9 / (double)(n1 - n0);

	uint64_t rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)n1;
	uint64_t *issued = calloc(qd, sizeof(*issued));
	struct sqe *sring = sq.ring;
	volatile struct cqe *cring = cq.ring;
	if (!issued)
		die("calloc");

	uint64_t start = rdtsc(), end = start + (uint64_t)(hz * secs), now = start;
	for (unsigned i = 0; i < qd; i++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		uint64_t lba = (uint64_t)(((unsigned __int128)rng * nr_pos) >> 64) * nlb;
		sring[sq.tail] = (struct sqe){ .opc = 0x02, .cid = (uint16_t)i, .nsid = 1,
					       .prp1 = iova_of(data + 4096ull * i),
					       .cdw10 = (uint32_t)lba, .cdw11 = (uint32_t)(lba >> 32),
					       .cdw12 = nlb - 1 };
		issued[i] = now;
		if (++sq.tail == qsize)
			sq.tail = 0;
	}
	db(1, false, sq.tail);

	uint64_t ios = 0, lat_sum = 0, errors = 0, sink = 0;
	/* -L: the same five intervals as src/pcie/lattrace.h, summed in ticks. */
	enum { DEV, CB, CQDB, BACK, POLLGAP, NR };
	uint64_t lt_sum[NR] = { 0 }, lt_n[NR] = { 0 };
	uint64_t t_sqdb = 0, t_seen = 0, t_cbdone = 0, t_cqdb = 0, t_poll = 0;
#define LT(k, from, to) do { if ((from) && (to) > (from)) { lt_sum[k] += (to) - (from); lt_n[k]++; } } while (0)
	bool stopping = false, sq_pending = false;
	uint32_t cq_db_head = 0;
	unsigned idle = 0;
	unsigned inflight = qd;
	while (inflight) {
		unsigned got = 0;
		if (trace) {
			uint64_t t = rdtsc();
			LT(POLLGAP, t_poll, t);
			t_poll = t;
		}
		if (sq_pending) { /* -D: last pass's commands */
			db(1, false, sq.tail);
			sq_pending = false;
			if (trace) {
				t_sqdb = rdtsc();
				LT(BACK, t_cqdb, t_sqdb);
				t_cqdb = 0;
			}
		}
		while ((cring[cq.head].status & 1) == cq.phase) {
			if (trace && got == 0) {
				t_seen = rdtsc();
				LT(DEV, t_sqdb, t_seen);
				t_sqdb = 0;
			}
			uint16_t cid = cring[cq.head].cid;
			uint16_t st = cring[cq.head].status >> 1;
			if (++cq.head == qsize) {
				cq.head = 0;
				cq.phase ^= 1;
			}
			got++;
			if (cid >= qd)
				continue; /* not ours: ignore */
			if (st)
				errors++;
			if (stopping) { /* drained after the clock stopped: not counted */
				inflight--;
				continue;
			}
			ios++;
			lat_sum += now - issued[cid];
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			uint64_t lba = (uint64_t)(((unsigned __int128)rng * nr_pos) >> 64) * nlb;
			struct sqe *s = &sring[sq.tail];
			s->opc = 0x02;
			s->cid = cid;
			s->nsid = 1;
			s->prp1 = iova_of(data + 4096ull * cid);
			s->cdw10 = (uint32_t)lba;
			s->cdw11 = (uint32_t)(lba >> 32);
			s->cdw12 = nlb - 1;
			issued[cid] = now;
			if (tsc_per_cmd)
				sink += rdtsc();
			if (++sq.tail == qsize)
				sq.tail = 0;
			if (percmd)
				db(1, false, sq.tail);
		}
		if (got) {
			if (trace) {
				t_cbdone = rdtsc();
				LT(CB, t_seen, t_cbdone);
			}
			bool ring_sq = !percmd && !stopping && !defer;
			if (ring_sq && sq_first)
				db(1, false, sq.tail);
			/* -Z: consumed but not yet released entries stay below qsize - qd */
			uint32_t unreleased = (cq.head - cq_db_head + qsize) % qsize;
			if (!lazy_cq || unreleased >= qsize - qd) {
				db(1, true, cq.head);
				cq_db_head = cq.head;
			}
			if (trace) {
				t_cqdb = rdtsc();
				LT(CQDB, t_cbdone, t_cqdb);
			}
			if (ring_sq && !sq_first)
				db(1, false, sq.tail);
			if (ring_sq && trace) {
				t_sqdb = rdtsc();
				LT(BACK, t_cqdb, t_sqdb);
				t_cqdb = 0;
			}
			if (!percmd && !stopping && defer)
				sq_pending = true;
		}
		if (got || ++idle == tsc_every) {
			idle = 0;
			now = rdtsc();
		}
		if (!stopping && now >= end) {
			stopping = true;
			end = now;
		}
	}

	double s = (double)(end - start) / hz;
	printf("minloop: qd=%u qsize=%u bs=%u tsc_every=%u secs=%.2f ios=%" PRIu64 " iops=%.0f lat_us=%.2f errors=%" PRIu64
	       " flags=%s%s%s%s%s%s%s%s%s\n", qd, qsize, bs, tsc_every, s, ios, (double)ios / s,
	       ios ? (double)lat_sum / (double)ios / hz * 1e6 : 0.0, errors, percmd ? "N" : "",
	       defer ? "D" : "", opt_fence ? "F" : "", tsc_per_cmd ? "T" : "", sq_first ? "S" : "",
	       lazy_cq ? "Z" : "", dbbuf ? "B" : "", trace ? "L" : "",
	       percmd || defer || opt_fence || tsc_per_cmd || sq_first || lazy_cq || dbbuf || trace ? "" : "-");
	if (trace) {
		static const char *const name[NR] = { "sqdb->cqe_seen", "cqe_seen->cb_done",
						      "cq_db_step", "sq_db_step", "poll->poll" };
		double cycle = 0;
		printf("minloop-lt:");
		for (int k = 0; k < NR; k++) {
			double us = lt_n[k] ? (double)lt_sum[k] / (double)lt_n[k] / hz * 1e6 : 0;
			if (k < NR - 1)
				cycle += us;
			printf(" %s=%.3f", name[k], us);
		}
		printf(" cycle=%.3f (us, means; n=%" PRIu64 " cycles, %" PRIu64 " polls)\n", cycle,
		       lt_n[DEV], lt_n[POLLGAP]);
	}
	if (sink == 1)
		putchar('\n'); /* keeps -T's reads */

	/* Shutdown notification (Base 2.0 §3.6.2), then disable. */
	wr32(0x14, (rd32(0x14) & ~(3u << 14)) | 1u << 14);
	uint64_t limit = mono_ns() + 2000000000ull;
	while (((rd32(0x1c) >> 2) & 3) != 2 && mono_ns() < limit)
		usleep(1000);
	wr32(0x14, rd32(0x14) & ~1u);
	return errors ? 1 : 0;
}
