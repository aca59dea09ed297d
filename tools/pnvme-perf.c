/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme-perf - I/O load generator in the manner of spdk_nvme_perf.
 *
 *   pnvme-perf -d DEV|-r TRID [-d DEV|-r TRID...] [-q DEPTH] [-o BYTES] [-w PATTERN]
 *              [-M READ%] [-t SECONDS] [-a WARMUP] [-c CORES | -j WORKERS] [-P QPAIRS]
 *              [-n NSID] [-L[L]] [-N] [-H] [-I] [--no-shadow-db] [--lazy-cq] [--cmb-sq]
 *              [--interrupts]
 *              [--verify]
 *              [--classic]
 *              [--json]
 *   pnvme-perf --version
 *
 * DEV is a PCI address bound to vfio-pci, an NVMe/TCP address
 * (tcp:HOST[:PORT]/SUBNQN[?options]) or an emulator spec (emu:size=1G,...);
 * TRID an SPDK transport ID ("trtype:PCIe traddr:0000:01:00.0 ns:1",
 * "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:NQN").
 * Each worker thread gets -P queue pairs on every device, each kept DEPTH deep.
 * A progress line each second on a terminal; at the end a table per device and
 * worker and a Total line (IOPS, MiB/s, average/min/max latency, percentiles
 * with -L), plus the doorbell and poll counters that explain the cost per I/O.
 *
 * Time is the cycle counter (rdtsc / cntvct_el0), calibrated once against
 * CLOCK_MONOTONIC: a worker reads it once per poll loop iteration and once per
 * completion (the completion's time doubles as the next submission's), never
 * clock_gettime on the I/O path. Latencies go into a log-linear histogram (a
 * fixed array, O(1) insert) in the manner of HdrHistogram and SPDK's.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pnvme/pnvme.h>

/* The project version, from CMake (PNVME_TOOL_VERSION="x.y.z"). */
#ifndef PNVME_TOOL_VERSION
#define PNVME_TOOL_VERSION "unknown"
#endif

/* "pnvme_json_version" of the --json document: raised when a field changes or goes. */
#define PNVME_JSON_VERSION 1

#define MAX_DEVS    16
#define DEV_ADDR_LEN 1024 /* longest device address, one built from -r / -H / -I included */
#define MAX_WORKERS 256
#define MAX_REPORTED_MISMATCHES 10

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

enum pattern { P_READ, P_WRITE, P_RANDREAD, P_RANDWRITE, P_RW, P_RANDRW, P_COUNT };
static const char *const pattern_names[P_COUNT] = {
	"read", "write", "randread", "randwrite", "rw", "randrw",
};

enum mix { MIX_READ, MIX_WRITE, MIX_RANDOM };

/* ------------------------------------------------------------------------ */
/* Cycle counter                                                            */
/* ------------------------------------------------------------------------ */

#ifdef PNVME_LATTRACE
/*
 * A benchmark build (src/pcie/lattrace.h): the library stamps a depth-1
 * I/O's cycle; the worker reads the sums of its measured interval.
 */
enum { LT_NR = 5 };
void pnvme_lattrace_get(uint64_t sum[LT_NR], uint64_t n[LT_NR]);
#endif

static inline uint64_t ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
	uint64_t v;
	__asm__ volatile("mrs %0, cntvct_el0" : "=r"(v));
	return v;
#else
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
#endif
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Ticks per second, measured once (x86: ~20 ms against CLOCK_MONOTONIC). */
static uint64_t ticks_calibrate(void)
{
#if defined(__x86_64__) || defined(__i386__)
	uint64_t ns[2] = { 0, 0 }, tk[2] = { 0, 0 };
	for (int k = 0; k < 2; k++) {
		if (k == 1) {
			struct timespec req = { 0, 20000000 };
			nanosleep(&req, NULL);
		}
		/* Keep the sample whose clock_gettime bracket is shortest. */
		uint64_t best = UINT64_MAX;
		for (int i = 0; i < 5; i++) {
			uint64_t t0 = mono_ns(), c = ticks(), t1 = mono_ns();
			if (t1 - t0 < best) {
				best = t1 - t0;
				ns[k] = t0 + (t1 - t0) / 2;
				tk[k] = c;
			}
		}
	}
	if (tk[1] <= tk[0] || ns[1] <= ns[0])
		return 1000000000ull;
	return (uint64_t)((double)(tk[1] - tk[0]) * 1e9 / (double)(ns[1] - ns[0]));
#elif defined(__aarch64__)
	uint64_t f;
	__asm__ volatile("mrs %0, cntfrq_el0" : "=r"(f));
	return f;
#else
	return 1000000000ull;
#endif
}

static uint64_t g_hz;

static double ticks_to_us(double t)
{
	return t * 1e6 / (double)g_hz;
}

/* ------------------------------------------------------------------------ */
/* Latency histogram: log-linear buckets, a fixed array, O(1) insert        */
/* ------------------------------------------------------------------------ */

/*
 * Values below 2^SUB_BITS ticks get a bucket each; above, every power of two
 * [2^m, 2^(m+1)) is split into 2^SUB_BITS equal buckets, so a bucket is never
 * wider than 1/128 of its values (< 0.8 % error). 58 ranges x 128 = 7424
 * buckets cover all 64-bit values: 58 KiB per histogram.
 */
#define HIST_SUB_BITS 7u
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_BUCKETS  ((64u - HIST_SUB_BITS + 1u) * HIST_SUB)

static inline uint32_t hist_index(uint64_t v)
{
	if (v < HIST_SUB)
		return (uint32_t)v;
	uint32_t m = 63u - (uint32_t)__builtin_clzll(v); /* m >= SUB_BITS */
	uint32_t sub = (uint32_t)(v >> (m - HIST_SUB_BITS)) - HIST_SUB;
	return ((m - HIST_SUB_BITS + 1u) << HIST_SUB_BITS) + sub;
}

/* Smallest and largest value that land in bucket `b`. */
static uint64_t hist_lo(uint32_t b)
{
	if (b < HIST_SUB)
		return b;
	uint32_t r = b >> HIST_SUB_BITS, off = b & (HIST_SUB - 1u);
	return (uint64_t)(HIST_SUB + off) << (r - 1u);
}

static uint64_t hist_hi(uint32_t b)
{
	if (b < HIST_SUB)
		return b;
	return hist_lo(b) + (((uint64_t)1 << ((b >> HIST_SUB_BITS) - 1u)) - 1u);
}

static void hist_merge(uint64_t *dst, const uint64_t *src)
{
	for (uint32_t b = 0; b < HIST_BUCKETS; b++)
		dst[b] += src[b];
}

/* Value (ticks) below which `pct` percent of the `n` samples lie: a bucket's upper bound. */
static uint64_t hist_percentile(const uint64_t *h, uint64_t n, double pct, uint64_t max)
{
	uint64_t want = (uint64_t)((double)n * pct / 100.0 + 0.999999), sum = 0;
	if (want == 0)
		want = 1;
	for (uint32_t b = 0; b < HIST_BUCKETS; b++) {
		sum += h[b];
		if (sum >= want)
			return hist_hi(b) < max ? hist_hi(b) : max;
	}
	return max;
}

static const double percentiles[] = { 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99 };
#define NR_PERCENTILES (sizeof(percentiles) / sizeof(percentiles[0]))

/* ------------------------------------------------------------------------ */
/* Run state                                                                */
/* ------------------------------------------------------------------------ */

struct iostat {
	uint64_t ios, reads, writes, bytes;
	uint64_t lat_sum, lat_min, lat_max; /* ticks */
};

static void iostat_reset(struct iostat *s)
{
	memset(s, 0, sizeof(*s));
	s->lat_min = UINT64_MAX;
}

static inline void iostat_add(struct iostat *s, uint64_t lat, bool write, uint64_t bytes)
{
	s->ios++;
	s->reads += !write;
	s->writes += write;
	s->bytes += bytes;
	s->lat_sum += lat;
	if (lat < s->lat_min)
		s->lat_min = lat;
	if (lat > s->lat_max)
		s->lat_max = lat;
}

static void iostat_merge(struct iostat *d, const struct iostat *s)
{
	d->ios += s->ios;
	d->reads += s->reads;
	d->writes += s->writes;
	d->bytes += s->bytes;
	d->lat_sum += s->lat_sum;
	if (s->lat_min < d->lat_min)
		d->lat_min = s->lat_min;
	if (s->lat_max > d->lat_max)
		d->lat_max = s->lat_max;
}

static void qstats_merge(struct pnvme_qpair_stats *d, const struct pnvme_qpair_stats *s)
{
	d->submitted += s->submitted;
	d->completed += s->completed;
	d->sq_doorbells += s->sq_doorbells;
	d->cq_doorbells += s->cq_doorbells;
	d->polls += s->polls;
	d->empty_polls += s->empty_polls;
	d->timeouts += s->timeouts;
	d->errors += s->errors;
	d->bad_cqes += s->bad_cqes;
}

struct config {
	enum pattern pattern;
	uint64_t depth, iosize, secs, warmup, nsid;
	unsigned read_pct;
	bool rand;
	enum mix mix;
	uint64_t read_thresh;    /* rng >> 32 below this: read (MIX_RANDOM) */
	unsigned nr_workers, qpairs_per_worker;
	int cores[MAX_WORKERS];  /* -1: not pinned */
	unsigned nr_cores;
	int latency;             /* -L count: 1 percentiles, 2 also the histogram */
	uint32_t qflags;
	bool verify, json, shadow_db;
	bool classic;            /* --classic: pnvme_read/pnvme_write, no prepared requests */
	uint64_t seed;
	uint32_t dev_nsid[MAX_DEVS]; /* ns: of a -r transport ID; 0: -n or the first active */
	bool hdgst, ddgst;           /* -H / -I: TCP header / data digests */
	char dev_addr[MAX_DEVS][DEV_ADDR_LEN]; /* addresses built from -r, -H, -I */
};

/* The doorbell policy the queue pairs run with (pnvme/qpair.h flags). */
static const char *sq_doorbell_mode(const struct config *c)
{
	return c->qflags & PNVME_QPAIR_DB_IMMEDIATE ? "per-command" : "batched";
}

static const char *cq_doorbell_mode(const struct config *c)
{
	return c->qflags & PNVME_QPAIR_LAZY_CQ_DB ? "lazy" : "per-poll";
}

struct dev {
	const char *name;
	uint32_t nsid;             /* 0: the first active namespace */
	struct pnvme_ctrl *ctrl;
	const struct pnvme_ns *ns;
	struct pnvme_emu *stepped; /* emulator in step mode: the worker steps it */
	uint32_t nlb;
	uint64_t nr_slots;         /* I/O-size slots in the namespace */
};

struct worker;
struct qctx;

struct slot {
	struct qctx *q;
	void *buf;
	struct pnvme_req req; /* prepared request (qctx.prepared) */
	uint64_t t;       /* submission tick */
	uint64_t lba;
	uint64_t stamp;   /* verify: the stamp written */
	uint64_t cursor;  /* verify: next position in this slot's share */
	uint64_t share;   /* verify: positions this slot owns */
	bool write;
};

/* One queue pair of one worker on one device. */
struct qctx {
	struct pnvme_qpair *qp;
	const struct pnvme_ns *ns;
	struct worker *w;
	struct dev *dev;
	unsigned devi;
	uint32_t nlb;
	uint64_t nr_slots;    /* positions to pick from */
	uint64_t base;        /* first position (verify: this queue pair's slice) */
	uint64_t seq;         /* sequential cursor */
	uint64_t rng;
	uint32_t inflight;
	struct iostat st;
	uint64_t *hist;       /* HIST_BUCKETS, with -L */
	struct pnvme_qpair_stats qst; /* snapshot at the end of the measured interval */
	struct slot *slots;
	uint64_t nr_slot_bufs;
	uint64_t nr_prepared; /* slots whose request is prepared */
	bool prepared;        /* submit the slots' prepared requests (pnvme/req.h) */
	uint64_t writes_issued; /* verify stamps */
};

struct mismatch {
	unsigned devi;
	uint64_t lba;
	size_t off;
	uint64_t want, got;
};

struct worker {
	unsigned id;
	int core;
	pthread_t thread;
	struct qctx *q;
	unsigned nr_q;
	const struct config *cfg;
	struct dev *devs;
	unsigned nr_devs;
	bool measuring, stopping;
	uint64_t t_start, t_end;        /* measured interval, ticks */
	uint64_t completions;           /* all completions, for progress */
	uint64_t pub_completions;       /* published copy (atomic) */
	int pub_phase;                  /* 0 warm-up, 1 measuring, 2 done (atomic) */
	/* the first failure */
	int err;
	uint16_t status;
	bool status_valid;
	char errmsg[256];
	uint64_t verified_blocks, mismatches;
	struct mismatch mm[MAX_REPORTED_MISMATCHES];
#ifdef PNVME_LATTRACE
	uint64_t lt_sum[LT_NR], lt_n[LT_NR]; /* the measured interval's (src/pcie/lattrace.h) */
#endif
};

static int g_stop;                        /* atomic: every worker stops */
static volatile sig_atomic_t g_sigint;
static pthread_mutex_t g_gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_gate_cond = PTHREAD_COND_INITIALIZER;
static bool g_gate_open;

/* Workers wait here until every one of them is set up, so they start together. */
static void gate_wait(void)
{
	pthread_mutex_lock(&g_gate_lock);
	while (!g_gate_open)
		pthread_cond_wait(&g_gate_cond, &g_gate_lock);
	pthread_mutex_unlock(&g_gate_lock);
}

static void gate_open(void)
{
	pthread_mutex_lock(&g_gate_lock);
	g_gate_open = true;
	pthread_cond_broadcast(&g_gate_cond);
	pthread_mutex_unlock(&g_gate_lock);
}

static void worker_fail(struct worker *w, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void worker_fail(struct worker *w, int err, const char *fmt, ...)
{
	if (w->err == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(w->errmsg, sizeof(w->errmsg), fmt, ap);
		va_end(ap);
		w->err = err ? err : -EIO;
	}
	w->stopping = true;
	__atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------ */
/* LBA choice and the verify pattern                                        */
/* ------------------------------------------------------------------------ */

/* xorshift64*: cheap, and no '%' on the hot path. */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* Multiply-shift maps 64 random bits onto [0, n) without a divide. */
static inline uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

static inline uint64_t next_pos(struct qctx *q)
{
	if (q->w->cfg->rand)
		return rng_below(&q->rng, q->nr_slots);
	uint64_t p = q->seq;
	if (++q->seq == q->nr_slots)
		q->seq = 0;
	return p;
}

static inline bool pick_write(struct qctx *q)
{
	const struct config *c = q->w->cfg;
	if (c->mix != MIX_RANDOM)
		return c->mix == MIX_WRITE;
	return (rng_next(&q->rng) >> 32) >= c->read_thresh;
}

/*
 * Verify: slot i of a queue pair owns positions i, i + depth, i + 2 depth, ...
 * of the queue pair's slice, so no two requests ever touch the same blocks.
 */
static inline uint64_t verify_pos(struct qctx *q, struct slot *s, uint64_t i)
{
	uint64_t k;
	if (q->w->cfg->rand) {
		k = rng_below(&q->rng, s->share);
	} else {
		k = s->cursor;
		if (++s->cursor == s->share)
			s->cursor = 0;
	}
	return q->base + i + k * q->w->cfg->depth;
}

static inline uint64_t pattern_word(uint64_t lba, uint64_t stamp, uint64_t k)
{
	if (k == 0)
		return lba;
	if (k == 1)
		return stamp;
	return (lba * 0x9E3779B97F4A7C15ull) ^ stamp ^ (k * 0xD6E8FEB86659FD93ull);
}

/* Each block: its LBA, the write's stamp (seed + write number), then a mix of both. */
static void pattern_fill(void *buf, uint64_t lba, uint32_t nlb, uint32_t lba_size,
			 uint64_t stamp)
{
	uint64_t *w = buf;
	for (uint32_t b = 0; b < nlb; b++)
		for (uint64_t k = 0; k < lba_size / 8u; k++)
			*w++ = pattern_word(lba + b, stamp, k);
}

/* Byte offset of the first mismatch in block `b` of the buffer, or -1. */
static long pattern_check(const void *buf, uint64_t lba, uint32_t b, uint32_t lba_size,
			  uint64_t stamp, uint64_t *want, uint64_t *got)
{
	const uint64_t *w = (const uint64_t *)((const uint8_t *)buf + (size_t)b * lba_size);
	for (uint64_t k = 0; k < lba_size / 8u; k++)
		if (w[k] != pattern_word(lba + b, stamp, k)) {
			*want = pattern_word(lba + b, stamp, k);
			*got = w[k];
			return (long)(k * 8u);
		}
	return -1;
}

/* ------------------------------------------------------------------------ */
/* Submission and completion                                                */
/* ------------------------------------------------------------------------ */

static void io_done(void *arg, int err, const struct pnvme_cqe *cqe);

static int submit(struct slot *s, uint64_t now)
{
	struct qctx *q = s->q;
	int rc;

	s->t = now;
	if (q->prepared) /* a read or a write, buffer and callback prepared once */
		rc = pnvme_req_submit(q->qp, &s->req, s->lba);
	else if (s->write)
		rc = pnvme_write(q->qp, q->ns, s->buf, s->lba, q->nlb, 0, io_done, s);
	else
		rc = pnvme_read(q->qp, q->ns, s->buf, s->lba, q->nlb, 0, io_done, s);
	if (unlikely(rc)) {
		worker_fail(q->w, rc, "%s: submit %s of LBA %" PRIu64 ": %s (%s)", q->dev->name,
			    s->write ? "write" : "read", s->lba, pnvme_last_error(),
			    strerror(-rc));
		return rc;
	}
	q->inflight++;
	return 0;
}

/* Load mode: choose the next I/O of slot `s`. */
static inline void next_io(struct slot *s)
{
	struct qctx *q = s->q;
	s->lba = next_pos(q) * q->nlb;
	s->write = pick_write(q);
}

/* Verify mode: a write is followed by a read of the same blocks, then a new position. */
static void next_verify_io(struct slot *s)
{
	struct qctx *q = s->q;
	uint32_t lba_size = q->ns->lba_size;

	if (s->write) {
		/* Poison, so that a read that transfers nothing cannot pass. */
		memset(s->buf, 0xa5, (size_t)q->nlb * lba_size);
		s->write = false;
		return;
	}
	s->lba = verify_pos(q, s, (uint64_t)(s - q->slots)) * q->nlb;
	s->stamp = q->w->cfg->seed + ++q->writes_issued;
	pattern_fill(s->buf, s->lba, q->nlb, lba_size, s->stamp);
	s->write = true;
}

/* Check every block a verify read brought back. */
static void verify_read(struct slot *s)
{
	struct qctx *q = s->q;
	struct worker *w = q->w;

	for (uint32_t b = 0; b < q->nlb; b++) {
		uint64_t want = 0, got = 0;
		long off = pattern_check(s->buf, s->lba, b, q->ns->lba_size, s->stamp, &want, &got);
		w->verified_blocks++;
		if (off < 0)
			continue;
		if (w->mismatches < MAX_REPORTED_MISMATCHES)
			w->mm[w->mismatches] = (struct mismatch){ q->devi, s->lba + b, (size_t)off,
								  want, got };
		w->mismatches++;
	}
}

static void io_done(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct slot *s = arg;
	struct qctx *q = s->q;
	struct worker *w = q->w;
	uint64_t now = ticks();

	q->inflight--;
	w->completions++;
	if (unlikely(err)) {
		w->status = PNVME_CQE_STATUS(cqe);
		w->status_valid = true;
		worker_fail(w, err, "%s: %s of LBA %" PRIu64 " (%u blocks) failed: %s (%s)",
			    q->dev->name, s->write ? "write" : "read", s->lba, q->nlb,
			    pnvme_status_str(PNVME_CQE_STATUS(cqe)), strerror(-err));
		return;
	}
	if (unlikely(w->stopping))
		return; /* draining: outside the measured interval */
	uint64_t lat = now - s->t;
	iostat_add(&q->st, lat, s->write, (uint64_t)q->nlb << q->ns->lba_shift);
	if (q->hist)
		q->hist[hist_index(lat)]++;
	if (unlikely(w->cfg->verify)) {
		if (!s->write)
			verify_read(s);
		next_verify_io(s);
	} else {
		next_io(s);
	}
	(void)submit(s, now);
}

/* ------------------------------------------------------------------------ */
/* Workers                                                                  */
/* ------------------------------------------------------------------------ */

static void worker_reset_stats(struct worker *w)
{
	for (unsigned i = 0; i < w->nr_q; i++) {
		struct qctx *q = &w->q[i];
		iostat_reset(&q->st);
		if (q->hist)
			memset(q->hist, 0, HIST_BUCKETS * sizeof(*q->hist));
		pnvme_qpair_reset_stats(q->qp);
	}
#ifdef PNVME_LATTRACE
	pnvme_lattrace_get(w->lt_sum, w->lt_n); /* the warm-up's: dropped */
#endif
}

/* End of the measured interval: counters now, then no more submissions. */
static void worker_stop(struct worker *w, uint64_t now)
{
	if (!w->measuring) { /* stopped during warm-up: report nothing measured */
		worker_reset_stats(w);
		w->t_start = now;
	}
	w->t_end = now;
	for (unsigned i = 0; i < w->nr_q; i++)
		pnvme_qpair_get_stats(w->q[i].qp, &w->q[i].qst);
#ifdef PNVME_LATTRACE
	pnvme_lattrace_get(w->lt_sum, w->lt_n);
#endif
	w->stopping = true;
}

/*
 * --interrupts: nothing was found; sleep until a queue pair's CQ signals
 * (at most 10 ms). Ack every eventfd, poll once more (a completion posted
 * before an ack is reaped now), sleep only if that found nothing. Returns
 * whether it slept.
 */
static bool irq_sleep(struct worker *w)
{
	struct pollfd pfd[64];
	unsigned n = 0;

	for (unsigned i = 0; i < w->nr_q && n < 64; i++)
		if (pnvme_qpair_event_ack(w->q[i].qp) >= 0)
			pfd[n++] = (struct pollfd){ .fd = pnvme_qpair_event_fd(w->q[i].qp),
						    .events = POLLIN };
	for (unsigned i = 0; i < w->nr_q; i++)
		if (pnvme_qpair_poll(w->q[i].qp, 0) != 0)
			return false;
	(void)poll(pfd, n, 10);
	return true;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct config *c = w->cfg;

	if (w->core >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET((unsigned)w->core, &set);
		int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
		if (rc)
			worker_fail(w, -rc, "worker %u: cannot pin to core %d: %s", w->id, w->core,
				    strerror(rc));
	}
	gate_wait();

	uint64_t now = ticks();
	uint64_t warm_end = now + c->warmup * g_hz;
	uint64_t end = warm_end + c->secs * g_hz;
	w->measuring = c->warmup == 0;
	w->t_start = now;
	uint64_t next_event = w->measuring ? end : warm_end;

	for (unsigned i = 0; i < w->nr_q && !w->stopping; i++) {
		struct qctx *q = &w->q[i];
		for (uint64_t k = 0; k < c->depth && !w->stopping; k++) {
			struct slot *s = &q->slots[k];
			if (c->verify) {
				s->write = false; /* next_verify_io() turns it into a write */
				next_verify_io(s);
			} else {
				next_io(s);
			}
			(void)submit(s, ticks());
		}
	}

	/* The poll loop. */
	unsigned idle = 0;
	bool sleeper = (c->qflags & PNVME_QPAIR_INTERRUPTS) != 0;
	for (unsigned d = 0; d < w->nr_devs; d++)
		sleeper &= w->devs[d].stepped == NULL; /* (nobody would step it) */
	while (!w->stopping) {
		int found = 0;
		for (unsigned i = 0; i < w->nr_q; i++) {
			int rc = pnvme_qpair_poll(w->q[i].qp, 0);
			if (unlikely(rc < 0))
				worker_fail(w, rc, "%s: poll: %s", w->q[i].dev->name, strerror(-rc));
			found |= rc;
		}
		for (unsigned d = 0; d < w->nr_devs; d++)
			if (w->devs[d].stepped)
				(void)pnvme_emu_step(w->devs[d].stepped);
		__atomic_store_n(&w->pub_completions, w->completions, __ATOMIC_RELAXED);
		/*
		 * The clock after polls that found something, else every 64th
		 * time round: under QEMU TCG a cycle-counter read is a call into
		 * QEMU (BENCHMARKS.md section 3). The end comes at most 64 empty
		 * polls late.
		 */
		if (found == 0 && sleeper && irq_sleep(w))
			idle = 63;   /* slept: read the clock now */
		if (found == 0 && ++idle < 64)
			continue;
		idle = 0;
		now = ticks();
		if (unlikely(now >= next_event)) {
			if (!w->measuring) {
				worker_reset_stats(w);
				w->measuring = true;
				w->t_start = now;
				__atomic_store_n(&w->pub_phase, 1, __ATOMIC_RELAXED);
				next_event = end;
			} else {
				worker_stop(w, now);
			}
		}
		if (unlikely(__atomic_load_n(&g_stop, __ATOMIC_RELAXED)) && !w->stopping)
			worker_stop(w, now);
	}
	if (w->t_end == 0) /* failed before the end: still name an interval */
		worker_stop(w, ticks());

	/* Drain; the library's own deadlines bound each request, this bounds the loop. */
	uint64_t give_up = ticks() + 60 * g_hz;
	for (;;) {
		uint32_t left = 0;
		for (unsigned i = 0; i < w->nr_q; i++) {
			if (w->q[i].inflight && pnvme_qpair_poll(w->q[i].qp, 0) < 0)
				w->q[i].inflight = 0; /* device gone: the library failed them */
			left += w->q[i].inflight;
		}
		for (unsigned d = 0; d < w->nr_devs; d++)
			if (w->devs[d].stepped)
				(void)pnvme_emu_step(w->devs[d].stepped);
		if (left == 0)
			break;
		if (ticks() > give_up) {
			worker_fail(w, -ETIMEDOUT, "%u I/O(s) still outstanding after 60 s", left);
			break;
		}
	}
	__atomic_store_n(&w->pub_completions, w->completions, __ATOMIC_RELAXED);
	__atomic_store_n(&w->pub_phase, 2, __ATOMIC_RELEASE);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Reporting                                                                */
/* ------------------------------------------------------------------------ */

/* A report row: one worker on one device (its -P queue pairs), or the total. */
struct row {
	char label[96];
	const char *dev;
	int worker, core;
	uint32_t nsid;
	double secs;
	double iops, mibs;
	struct iostat st;
	struct pnvme_qpair_stats qst;
	uint64_t *hist;
};

static double row_avg_us(const struct row *r)
{
	return r->st.ios ? ticks_to_us((double)r->st.lat_sum / (double)r->st.ios) : 0.0;
}

static double per(double a, double b)
{
	return b > 0 ? a / b : 0.0;
}

static void print_table(const struct row *rows, unsigned n, const struct row *total)
{
	printf("%-44s %12s %10s %12s %10s %10s\n", "Device", "IOPS", "MiB/s", "Avg lat (us)",
	       "min", "max");
	for (unsigned i = 0; i <= n; i++) {
		const struct row *r = i < n ? &rows[i] : total;
		printf("%-44.44s %12.2f %10.2f %12.2f %10.2f %10.2f\n", r->label, r->iops, r->mibs,
		       row_avg_us(r), r->st.ios ? ticks_to_us((double)r->st.lat_min) : 0.0,
		       ticks_to_us((double)r->st.lat_max));
	}
	printf("\n%-44s %12s %10s %10s %12s %12s %9s %8s\n", "Counters", "I/Os", "SQ db", "CQ db",
	       "polls", "empty polls", "cpl/poll", "db/IO");
	for (unsigned i = 0; i <= n; i++) {
		const struct row *r = i < n ? &rows[i] : total;
		printf("%-44.44s %12" PRIu64 " %10" PRIu64 " %10" PRIu64 " %12" PRIu64 " %12" PRIu64
		       " %9.2f %8.3f\n", r->label, r->st.ios, r->qst.sq_doorbells, r->qst.cq_doorbells,
		       r->qst.polls, r->qst.empty_polls,
		       per((double)r->qst.completed, (double)r->qst.polls),
		       per((double)(r->qst.sq_doorbells + r->qst.cq_doorbells), (double)r->st.ios));
	}
	/* The one-line summary earlier versions printed (scripts grep it). */
	printf("counters: %" PRIu64 " I/Os, %" PRIu64 " SQ doorbells, %" PRIu64 " CQ doorbells, %"
	       PRIu64 " polls (%" PRIu64 " empty), %.2f completions/poll, %.3f doorbells/IO\n",
	       total->st.ios, total->qst.sq_doorbells, total->qst.cq_doorbells, total->qst.polls,
	       total->qst.empty_polls, per((double)total->qst.completed, (double)total->qst.polls),
	       per((double)(total->qst.sq_doorbells + total->qst.cq_doorbells),
		   (double)total->st.ios));
}

#ifdef PNVME_LATTRACE
/* Worker 0's depth-1 cycle, mean microseconds per interval (src/pcie/lattrace.h). */
static void print_lattrace(const struct worker *w)
{
	static const char *const name[LT_NR] = { "sqdb->cqe_seen", "cqe_seen->cb_done",
						 "cq_db_step", "sq_db_step", "poll->poll" };
	double cycle = 0;

	printf("lattrace:");
	for (int k = 0; k < LT_NR; k++) {
		double us = w->lt_n[k] ? ticks_to_us((double)w->lt_sum[k] / (double)w->lt_n[k]) : 0;
		if (k < LT_NR - 1)
			cycle += us;
		printf(" %s=%.3f", name[k], us);
	}
	printf(" cycle=%.3f (us, means; n=%" PRIu64 " cycles, %" PRIu64 " polls)\n", cycle,
	       w->lt_n[0], w->lt_n[LT_NR - 1]);
}
#endif

static void print_latency(const struct row *r, int level)
{
	if (!r->hist || r->st.ios == 0)
		return;
	printf("\nLatency percentiles (us), %s:\n", r->label);
	for (size_t p = 0; p < NR_PERCENTILES; p++)
		printf("  %9.5f%% : %12.3f\n", percentiles[p],
		       ticks_to_us((double)hist_percentile(r->hist, r->st.ios, percentiles[p],
							   r->st.lat_max)));
	if (level < 2)
		return;
	printf("\nLatency histogram (us), %s:\n  %12s - %-12s %10s %12s\n", r->label, "from", "to",
	       "cumulative", "count");
	uint64_t sum = 0;
	for (uint32_t b = 0; b < HIST_BUCKETS; b++) {
		if (!r->hist[b])
			continue;
		sum += r->hist[b];
		printf("  %12.3f - %-12.3f %9.4f%% %12" PRIu64 "\n", ticks_to_us((double)hist_lo(b)),
		       ticks_to_us((double)hist_hi(b) + 1.0), 100.0 * (double)sum / (double)r->st.ios,
		       r->hist[b]);
	}
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void json_row(const struct row *r, int level)
{
	printf("{\"label\": ");
	json_str(r->label);
	if (r->dev) {
		printf(", \"device\": ");
		json_str(r->dev);
		printf(", \"nsid\": %u, \"worker\": %d, \"core\": %d", r->nsid, r->worker, r->core);
	}
	printf(", \"seconds\": %.6f, \"ios\": %" PRIu64 ", \"reads\": %" PRIu64 ", \"writes\": %"
	       PRIu64 ", \"bytes\": %" PRIu64 ", \"iops\": %.2f, \"mib_s\": %.2f", r->secs, r->st.ios,
	       r->st.reads, r->st.writes, r->st.bytes, r->iops, r->mibs);
	printf(", \"latency_us\": {\"avg\": %.3f, \"min\": %.3f, \"max\": %.3f}", row_avg_us(r),
	       r->st.ios ? ticks_to_us((double)r->st.lat_min) : 0.0,
	       ticks_to_us((double)r->st.lat_max));
	printf(", \"counters\": {\"submitted\": %" PRIu64 ", \"completed\": %" PRIu64
	       ", \"sq_doorbells\": %" PRIu64 ", \"cq_doorbells\": %" PRIu64 ", \"polls\": %" PRIu64
	       ", \"empty_polls\": %" PRIu64 ", \"timeouts\": %" PRIu64 ", \"errors\": %" PRIu64
	       ", \"completions_per_poll\": %.4f, \"doorbells_per_io\": %.4f}",
	       r->qst.submitted, r->qst.completed, r->qst.sq_doorbells, r->qst.cq_doorbells,
	       r->qst.polls, r->qst.empty_polls, r->qst.timeouts, r->qst.errors,
	       per((double)r->qst.completed, (double)r->qst.polls),
	       per((double)(r->qst.sq_doorbells + r->qst.cq_doorbells), (double)r->st.ios));
	if (r->hist && r->st.ios) {
		printf(", \"percentiles_us\": {");
		for (size_t p = 0; p < NR_PERCENTILES; p++)
			printf("%s\"%g\": %.3f", p ? ", " : "", percentiles[p],
			       ticks_to_us((double)hist_percentile(r->hist, r->st.ios, percentiles[p],
								   r->st.lat_max)));
		printf("}");
		if (level >= 2) {
			printf(", \"histogram\": [");
			bool first = true;
			for (uint32_t b = 0; b < HIST_BUCKETS; b++) {
				if (!r->hist[b])
					continue;
				printf("%s{\"from_us\": %.3f, \"to_us\": %.3f, \"count\": %" PRIu64 "}",
				       first ? "" : ", ", ticks_to_us((double)hist_lo(b)),
				       ticks_to_us((double)hist_hi(b) + 1.0), r->hist[b]);
				first = false;
			}
			printf("]");
		}
	}
	printf("}");
}

static void json_report(const struct config *c, const struct dev *devs, unsigned nr_devs,
			const struct row *rows, unsigned n, const struct row *total,
			uint64_t verified, uint64_t mismatches)
{
	printf("{\"pnvme_json_version\": %d, \"pnvme_version\": \"%s\",\n \"config\": {\"devices\": [",
	       PNVME_JSON_VERSION, PNVME_TOOL_VERSION);
	for (unsigned d = 0; d < nr_devs; d++) {
		printf("%s{\"address\": ", d ? ", " : "");
		json_str(devs[d].name);
		printf(", \"nsid\": %u, \"shadow_db\": %s}", devs[d].ns->nsid,
		       pnvme_ctrl_shadow_db(devs[d].ctrl) ? "true" : "false");
	}
	printf("], \"nsid\": %" PRIu64 ", \"pattern\": \"%s\", \"io_size\": %" PRIu64
	       ", \"queue_depth\": %" PRIu64 ", \"read_pct\": %u, \"seconds\": %" PRIu64
	       ", \"warmup_seconds\": %" PRIu64 ", \"cores\": [", c->nsid, pattern_names[c->pattern],
	       c->iosize, c->depth, c->read_pct, c->secs, c->warmup);
	for (unsigned i = 0; i < c->nr_cores; i++)
		printf("%s%d", i ? ", " : "", c->cores[i]);
	printf("], \"workers\": %u, \"qpairs_per_worker\": %u, \"latency\": %d, "
	       "\"sq_doorbell\": \"%s\", \"cq_doorbell\": \"%s\", \"shadow_db\": %s, \"cmb_sq\": %s, "
	       "\"tcp_hdr_digest\": %s, \"tcp_data_digest\": %s, "
	       "\"verify\": %s, \"classic\": %s, \"json\": true, \"seed\": %" PRIu64
	       ", \"tick_hz\": %" PRIu64 "},\n \"results\": [", c->nr_workers,
	       c->qpairs_per_worker, c->latency, sq_doorbell_mode(c), cq_doorbell_mode(c),
	       c->shadow_db ? "true" : "false", c->qflags & PNVME_QPAIR_CMB_SQ ? "true" : "false",
	       c->hdgst ? "true" : "false",
	       c->ddgst ? "true" : "false", c->verify ? "true" : "false",
	       c->classic ? "true" : "false", c->seed, g_hz);
	for (unsigned i = 0; i < n; i++) {
		printf("%s\n  ", i ? "," : "");
		json_row(&rows[i], c->latency);
	}
	printf("],\n \"total\": ");
	json_row(total, c->latency);
	if (c->verify)
		printf(",\n \"verify\": {\"blocks_checked\": %" PRIu64 ", \"mismatches\": %" PRIu64
		       "}", verified, mismatches);
	printf("}\n");
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pnvme-perf -d DEV [-d DEV ...] [options]   (pnvme-perf --version)\n"
		"  -d DEV      PCI address (0000:01:00.0), NVMe/TCP address\n"
		"              (tcp:HOST[:PORT]/SUBNQN[?OPTION=VALUE&...], pnvme/ctrl.h) or\n"
		"              emulator spec (emu:size=1G,...); several devices, each once:\n"
		"              every worker gets queue pairs on each\n"
		"  -r TRID     SPDK transport ID, e.g. \"trtype:PCIe traddr:0000:01:00.0 ns:1\" or\n"
		"              \"trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420\n"
		"              subnqn:NQN [hostnqn:NQN] [ns:NSID]\"; keys in any case, KEY:VALUE\n"
		"              or KEY=VALUE; like -d, may be repeated (and -d takes it too)\n"
		"  -q DEPTH    outstanding I/Os per queue pair (default 32)\n"
		"  -o BYTES    I/O size, multiple of the LBA size (default 4096; K/M suffix)\n"
		"  -w PATTERN  read | write | randread | randwrite | rw | randrw (default randread)\n"
		"  -M PERCENT  reads in rw / randrw (default 50)\n"
		"  -t SECONDS  measured run time (default 5)\n"
		"  -a SECONDS  warm-up before the measurement; statistics reset after it (default 0)\n"
		"  -c CORES    worker cores: list \"0,2-3\" or mask \"0x3\"; one pinned worker each;\n"
		"              each must be one this process may run on\n"
		"  -j N        worker threads (default: one per -c core, else 1); round robin on -c cores\n"
		"  -P N        queue pairs per worker and device (default 1)\n"
		"  -n NSID     namespace (default: the first active one; ns: of -r wins)\n"
		"  -L          latency percentiles; -LL also the histogram\n"
		"  -N          ring the SQ doorbell for every command (default: once per batch)\n"
		"  --no-shadow-db  MMIO doorbells only (default: shadow doorbells, Doorbell\n"
		"              Buffer Config, where the controller offers them; --shadow-db)\n"
		"  --lazy-cq   defer CQ head doorbells (CQ twice the depth; PNVME_QPAIR_LAZY_CQ_DB);\n"
		"              SQ doorbells stay batched unless -N\n"
		"  --cmb-sq    I/O submission queues in the controller's Controller Memory Buffer\n"
		"              (PNVME_QPAIR_CMB_SQ; fails where the controller offers no CMB SQs)\n"
		"  --interrupts  sleep in poll() on the queue pairs' MSI-X eventfds when a poll\n"
		"              finds nothing, instead of polling on (PNVME_QPAIR_INTERRUPTS;\n"
		"              PCIe devices: vfio-pci, emu:)\n"
		"  -H, -I      NVMe/TCP header (-H) / data (-I) digests on every TCP device\n"
		"  --verify    write a pattern (LBA, seed, write number) and read back every block\n"
		"  --classic   submit with pnvme_read/pnvme_write (default for read, write,\n"
		"              randread, randwrite: prepared requests, pnvme/req.h)\n"
		"  --json      the final report as one JSON document on stdout\n"
		"  -h          this help;  --version  the pnvme version\n");
}

static int parse_u64(const char *s, uint64_t *out, bool suffix, bool zero_ok)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	if (suffix) {
		switch (*end) {
		case 'k': case 'K': v <<= 10; end++; break;
		case 'm': case 'M': v <<= 20; end++; break;
		default: break;
		}
	}
	if (*end || (v == 0 && !zero_ok))
		return -1;
	*out = v;
	return 0;
}

/* "0,2-3" or "0x5": fills cores[], returns the count or -1. */
static int parse_cores(const char *s, int *cores, unsigned max)
{
	unsigned n = 0;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		char *end;
		errno = 0;
		unsigned long long m = strtoull(s + 2, &end, 16);
		if (errno || end == s + 2 || *end || m == 0)
			return -1;
		for (int b = 0; b < 64 && n < max; b++)
			if (m >> b & 1)
				cores[n++] = b;
		return (int)n;
	}
	while (*s) {
		char *end;
		errno = 0;
		long a = strtol(s, &end, 10), b;
		if (errno || end == s || a < 0 || a >= CPU_SETSIZE)
			return -1;
		b = a;
		if (*end == '-') {
			s = end + 1;
			b = strtol(s, &end, 10);
			if (errno || end == s || b < a || b >= CPU_SETSIZE)
				return -1;
		}
		for (long c = a; c <= b; c++) {
			if (n == max)
				return -1;
			cores[n++] = (int)c;
		}
		if (*end == ',')
			end++;
		else if (*end)
			return -1;
		s = end;
	}
	return n ? (int)n : -1;
}

/*
 * SPDK transport IDs (spdk_nvme_transport_id_parse): whitespace separated
 * KEY:VALUE (or KEY=VALUE) pairs, keys in any case. pnvme-perf reads the
 * ones that name a PCIe or NVMe/TCP controller, plus perf's ns: and hostnqn:.
 */
enum trid_key { K_TRTYPE, K_ADRFAM, K_TRADDR, K_TRSVCID, K_SUBNQN, K_HOSTNQN, K_NS,
		K_HOSTADDR, K_HOSTSVCID, K_PRIORITY, K_ALT_TRADDR, K_COUNT };
static const char *const trid_keys[K_COUNT] = {
	"trtype", "adrfam", "traddr", "trsvcid", "subnqn", "hostnqn", "ns",
	"hostaddr", "hostsvcid", "priority", "alt_traddr",
};

static int trid_key(const char *k, size_t n)
{
	for (int i = 0; i < K_COUNT; i++)
		if (strlen(trid_keys[i]) == n && strncasecmp(k, trid_keys[i], n) == 0)
			return i;
	return -1;
}

static int trid_err(const char *orig, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int trid_err(const char *orig, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pnvme-perf: -r '%s': ", orig);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 2;
}

/* A TCP port: decimal 1..65535. */
static bool is_port(const char *s)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	return !errno && end != s && !*end && *s >= '0' && *s <= '9' && v >= 1 && v <= 65535;
}

/*
 * The library address of a parsed transport ID `v` (values by key, NULL when
 * absent): "DDDD:BB:DD.F" (PCIe) or "tcp:HOST:PORT/SUBNQN[?hostnqn=NQN]"
 * (pnvme/ctrl.h). Returns 0, or 2 with the problem on stderr.
 */
static int trid_addr(const char *orig, char **v, char *out, size_t len)
{
	bool tcp = v[K_TRTYPE] && strcasecmp(v[K_TRTYPE], "TCP") == 0;
	int n;

	if (v[K_TRTYPE] && !tcp && strcasecmp(v[K_TRTYPE], "PCIe") != 0)
		return trid_err(orig, "transport '%s' is not supported: pnvme-perf drives PCIe "
				"(vfio-pci) and TCP controllers", v[K_TRTYPE]);
	if (!tcp) {
		static const enum trid_key tcp_only[] = { K_ADRFAM, K_TRSVCID, K_SUBNQN, K_HOSTNQN };
		for (size_t i = 0; i < sizeof(tcp_only) / sizeof(tcp_only[0]); i++)
			if (v[tcp_only[i]])
				return trid_err(orig, "'%s' is not supported with trtype:PCIe (it "
						"belongs to trtype:TCP)", trid_keys[tcp_only[i]]);
		if (!v[K_TRADDR])
			return trid_err(orig, "no traddr (the PCI address)");
		/* SPDK also spells the address 0000.01.00.0 */
		char *a = v[K_TRADDR], *dot;
		if (!strchr(a, ':'))
			for (int i = 0; i < 2 && (dot = strchr(a, '.')) && strchr(dot + 1, '.'); i++)
				*dot = ':';
		n = snprintf(out, len, "%s", a);
	} else {
		const char *a = v[K_TRADDR], *fam = v[K_ADRFAM];
		bool v6 = a && strchr(a, ':') && a[0] != '[';
		if (fam && strcasecmp(fam, "IPv4") != 0 && strcasecmp(fam, "IPv6") != 0)
			return trid_err(orig, "address family '%s' is not supported (IPv4, IPv6)", fam);
		if (!a)
			return trid_err(orig, "no traddr (the target's IP address or host name)");
		if (strpbrk(a, "/?&"))
			return trid_err(orig, "traddr '%s' is not an address", a);
		if (fam && strcasecmp(fam, "IPv4") == 0 && strchr(a, ':'))
			return trid_err(orig, "traddr '%s' is not an IPv4 address (adrfam:IPv6?)", a);
		if (v[K_TRSVCID] && !is_port(v[K_TRSVCID]))
			return trid_err(orig, "bad trsvcid '%s' (a TCP port, 1..65535)", v[K_TRSVCID]);
		if (!v[K_SUBNQN])
			return trid_err(orig, "no subnqn: name the subsystem (`pnvme discover %s` lists "
					"them)", a);
		if (strpbrk(v[K_SUBNQN], "?&"))
			return trid_err(orig, "subnqn '%s' contains '?' or '&'", v[K_SUBNQN]);
		if (v[K_HOSTNQN] && strpbrk(v[K_HOSTNQN], "?&/"))
			return trid_err(orig, "hostnqn '%s' contains '?', '&' or '/'", v[K_HOSTNQN]);
		n = snprintf(out, len, "tcp:%s%s%s:%s/%s%s%s", v6 ? "[" : "", a, v6 ? "]" : "",
			     v[K_TRSVCID] ? v[K_TRSVCID] : "4420", v[K_SUBNQN],
			     v[K_HOSTNQN] ? "?hostnqn=" : "", v[K_HOSTNQN] ? v[K_HOSTNQN] : "");
	}
	if (n < 0 || (size_t)n >= len)
		return trid_err(orig, "the address is longer than %zu bytes", len - 1);
	return 0;
}

/*
 * -d / -r DEV: a PCI address, emulator spec or tcp: address (pnvme/ctrl.h) as
 * it is, or an SPDK transport ID, e.g. "trtype:PCIe traddr:0000:01:00.0 ns:1"
 * or "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:NQN",
 * translated into the library's address in `out` (DEV_ADDR_LEN bytes). A
 * transport ID is told apart by its first word: one of its keys followed by
 * ':' or '=' (no address form starts so). Sets *addr (`s` or `out`; `s` may
 * be modified) and *nsid (ns:, 0: not given). Returns 0, or 2 with the
 * problem on stderr; unknown keys, unsupported ones (hostaddr, hostsvcid,
 * priority, alt_traddr) and keys given twice are refused by name.
 */
static int dev_arg(char *s, char *out, const char **addr, uint32_t *nsid)
{
	char orig[DEV_ADDR_LEN], *save = NULL, *val[K_COUNT] = { NULL };
	size_t klen = strcspn(s, ":=");
	int rc;

	*addr = s;
	*nsid = 0;
	if (!*s) {
		fprintf(stderr, "pnvme-perf: empty device address\n");
		return 2;
	}
	if (!s[klen] || trid_key(s, klen) < 0)
		return 0;
	snprintf(orig, sizeof(orig), "%s", s);
	for (char *tok = strtok_r(s, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
		size_t kl = strcspn(tok, ":=");
		int k = kl ? trid_key(tok, kl) : -1;
		if (!tok[kl])
			return trid_err(orig, "'%s' is not KEY:VALUE", tok);
		if (k < 0)
			return trid_err(orig, "unknown key '%.*s' (trtype, adrfam, traddr, trsvcid, "
					"subnqn, hostnqn, ns)", (int)kl, tok);
		if (!tok[kl + 1])
			return trid_err(orig, "'%s' has no value", tok);
		if (val[k])
			return trid_err(orig, "'%s' is given twice", trid_keys[k]);
		if (k >= K_HOSTADDR)
			return trid_err(orig, "'%s' is not supported by pnvme-perf", trid_keys[k]);
		val[k] = tok + kl + 1;
	}
	if (val[K_NS]) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(val[K_NS], &end, 0);
		if (errno || end == val[K_NS] || *end || *val[K_NS] == '-' || v == 0 ||
		    v > 0xfffffffeul)
			return trid_err(orig, "bad namespace 'ns:%s' (1..4294967294)", val[K_NS]);
		*nsid = (uint32_t)v;
	}
	rc = trid_addr(orig, val, out, DEV_ADDR_LEN);
	if (rc)
		return rc;
	*addr = out;
	return 0;
}

/* The same controller twice would fail to open twice; say so before trying. */
static int check_duplicates(const char **devs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		char a[PNVME_PCI_BDF_LEN], b[PNVME_PCI_BDF_LEN];
		if (pnvme_pci_bdf_normalize(devs[i], a) != 0)
			continue; /* an emulator spec: each one is a new controller */
		for (unsigned k = i + 1; k < n; k++)
			if (pnvme_pci_bdf_normalize(devs[k], b) == 0 && strcmp(a, b) == 0) {
				fprintf(stderr, "pnvme-perf: device %s is given twice ('%s' and '%s'): "
					"name each controller once; -P and -j give it more queue "
					"pairs\n", a, devs[i], devs[k]);
				return 2;
			}
	}
	return 0;
}

/*
 * -H / -I (spdk_nvme_perf's letters): header / data digests on every TCP
 * device, as the address options hdr_digest=1 / data_digest=1. Returns 0, or
 * 2 with the problem on stderr.
 */
static int add_digests(struct config *c, const char **devs, unsigned n)
{
	unsigned tcp = 0;

	if (!c->hdgst && !c->ddgst)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		if (strncmp(devs[i], "tcp:", 4) != 0)
			continue;
		char tmp[DEV_ADDR_LEN];
		int len = snprintf(tmp, sizeof(tmp), "%s%s%s%s", devs[i],
				   strchr(devs[i], '?') ? "&" : "?",
				   c->hdgst ? "hdr_digest=1" : "",
				   c->hdgst && c->ddgst ? "&data_digest=1" : c->ddgst ? "data_digest=1" : "");
		if (len < 0 || (size_t)len >= sizeof(tmp)) {
			fprintf(stderr, "pnvme-perf: %s: the address is too long\n", devs[i]);
			return 2;
		}
		memcpy(c->dev_addr[i], tmp, (size_t)len + 1);
		devs[i] = c->dev_addr[i];
		tcp++;
	}
	if (tcp == 0) {
		fprintf(stderr, "pnvme-perf: -H / -I (digests) apply to NVMe/TCP devices; none is "
			"given\n");
		return 2;
	}
	return 0;
}

static int bad(const char *what, const char *arg)
{
	fprintf(stderr, "pnvme-perf: bad %s '%s'\n", what, arg);
	usage(stderr);
	return 2;
}

/* parse_args() result for -h: the usage was printed, exit with 0. */
#define PARSE_HELP (-1)

/*
 * Parse the command line into `c` and the device list. Returns 0, 2 (bad
 * usage, message printed) or PARSE_HELP. Prints nothing on success and never
 * exits, so the fuzzer in tests/fuzz can drive it.
 */
static int parse_args(int argc, char **argv, struct config *c, const char **devs,
		      unsigned *nr_devs)
{
	static const struct option longopts[] = {
		{ "verify", no_argument, NULL, 'V' },
		{ "json", no_argument, NULL, 'J' },
		{ "shadow-db", no_argument, NULL, 'S' },
		{ "no-shadow-db", no_argument, NULL, 's' },
		{ "lazy-cq", no_argument, NULL, 'Z' },
		{ "cmb-sq", no_argument, NULL, 'B' },
		{ "interrupts", no_argument, NULL, 'Q' },
		{ "classic", no_argument, NULL, 'C' },
		{ "enable-tcp-hdgst", no_argument, NULL, 'H' },
		{ "enable-tcp-ddgst", no_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v, jobs = 0;
	bool have_m = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "d:r:q:o:w:M:t:a:c:j:P:n:LNHIh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd': case 'r':
			if (*nr_devs == MAX_DEVS)
				return bad("device (too many)", optarg);
			if (dev_arg(optarg, c->dev_addr[*nr_devs], &devs[*nr_devs],
				    &c->dev_nsid[*nr_devs]) != 0)
				return 2;
			(*nr_devs)++;
			break;
		case 'q':
			if (parse_u64(optarg, &c->depth, true, false) || c->depth > 65535)
				return bad("queue depth", optarg);
			break;
		case 'o':
			if (parse_u64(optarg, &c->iosize, true, false) || c->iosize > (1u << 30))
				return bad("I/O size", optarg);
			break;
		case 'w': {
			int i;
			for (i = 0; i < P_COUNT; i++)
				if (strcmp(optarg, pattern_names[i]) == 0)
					break;
			if (i == P_COUNT)
				return bad("pattern", optarg);
			c->pattern = (enum pattern)i;
			break;
		}
		case 'M':
			if (parse_u64(optarg, &v, false, true) || v > 100)
				return bad("read percentage", optarg);
			c->read_pct = (unsigned)v;
			have_m = true;
			break;
		case 't':
			if (parse_u64(optarg, &c->secs, false, false) || c->secs > 86400)
				return bad("time", optarg);
			break;
		case 'a':
			if (parse_u64(optarg, &c->warmup, false, true) || c->warmup > 86400)
				return bad("warm-up time", optarg);
			break;
		case 'c': {
			int n = parse_cores(optarg, c->cores, MAX_WORKERS);
			if (n <= 0)
				return bad("core list", optarg);
			c->nr_cores = (unsigned)n;
			break;
		}
		case 'j':
			if (parse_u64(optarg, &jobs, false, false) || jobs > MAX_WORKERS)
				return bad("worker count", optarg);
			break;
		case 'P':
			if (parse_u64(optarg, &v, false, false) || v > 64)
				return bad("queue pairs per worker", optarg);
			c->qpairs_per_worker = (unsigned)v;
			break;
		case 'n':
			if (parse_u64(optarg, &c->nsid, false, false) || c->nsid > UINT32_MAX)
				return bad("namespace", optarg);
			break;
		case 'L': c->latency++; break;
		case 'N': c->qflags |= PNVME_QPAIR_DB_IMMEDIATE; break;
		case 'V': c->verify = true; break;
		case 'J': c->json = true; break;
		case 'S': c->shadow_db = true; break;
		case 's': c->shadow_db = false; break;
		case 'Z': c->qflags |= PNVME_QPAIR_LAZY_CQ_DB; break;
		case 'B': c->qflags |= PNVME_QPAIR_CMB_SQ; break;
		case 'Q': c->qflags |= PNVME_QPAIR_INTERRUPTS; break;
		case 'C': c->classic = true; break;
		case 'H': c->hdgst = true; break;
		case 'I': c->ddgst = true; break;
		case 'h': usage(stdout); return PARSE_HELP;
		case 'v': printf("pnvme-perf %s\n", PNVME_TOOL_VERSION); return PARSE_HELP;
		default: usage(stderr); return 2;
		}
	}
	if (*nr_devs == 0 || optind != argc) {
		if (optind != argc)
			fprintf(stderr, "pnvme-perf: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	c->rand = c->pattern == P_RANDREAD || c->pattern == P_RANDWRITE || c->pattern == P_RANDRW;
	if (c->pattern == P_RW || c->pattern == P_RANDRW) {
		if (!have_m)
			c->read_pct = 50;
	} else if (have_m) {
		fprintf(stderr, "pnvme-perf: -M applies to -w rw and randrw\n");
		usage(stderr);
		return 2;
	} else {
		c->read_pct = c->pattern == P_READ || c->pattern == P_RANDREAD ? 100 : 0;
	}
	c->mix = c->read_pct == 100 ? MIX_READ : c->read_pct == 0 ? MIX_WRITE : MIX_RANDOM;
	c->read_thresh = ((uint64_t)c->read_pct << 32) / 100u;
	c->nr_workers = jobs ? (unsigned)jobs : c->nr_cores ? c->nr_cores : 1;
	if (add_digests(c, devs, *nr_devs))
		return 2;
	return check_duplicates(devs, *nr_devs);
}

/* -c: every core must be one this process may run on, checked before any device opens. */
static int check_cores(const struct config *c)
{
	cpu_set_t allowed;

	if (c->nr_cores == 0)
		return 0;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
		fprintf(stderr, "pnvme-perf: -c: cannot read this process's CPU affinity: %s\n",
			strerror(errno));
		return 2;
	}
	for (unsigned i = 0; i < c->nr_cores; i++) {
		if (CPU_ISSET((unsigned)c->cores[i], &allowed))
			continue;
		fprintf(stderr, "pnvme-perf: -c: core %d is not available to this process "
			"(allowed:", c->cores[i]);
		int shown = 0;
		for (int k = 0; k < CPU_SETSIZE && shown < 16; k++) {
			if (CPU_ISSET((unsigned)k, &allowed)) {
				fprintf(stderr, " %d", k);
				shown++;
			}
		}
		fprintf(stderr, "%s)\n", CPU_COUNT(&allowed) > 16 ? " ..." : "");
		return 2;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Set-up                                                                   */
/* ------------------------------------------------------------------------ */

static int open_dev(struct dev *d, const struct config *c)
{
	struct pnvme_ctrl_opts co;
	pnvme_ctrl_opts_default(&co); /* shadow doorbells on where offered */
	if (!c->shadow_db)
		co.flags &= ~PNVME_CTRL_SHADOW_DB;
	int rc = pnvme_ctrl_open(d->name, &co, &d->ctrl);
	if (rc) {
		d->ctrl = NULL;
		fprintf(stderr, "pnvme-perf: %s: %s (%s)\n", d->name, pnvme_last_error(),
			strerror(-rc));
		return 1;
	}
	d->ns = d->nsid ? pnvme_ctrl_ns(d->ctrl, d->nsid) : pnvme_ctrl_ns_at(d->ctrl, 0);
	if (!d->ns) {
		fprintf(stderr, "pnvme-perf: %s: no active namespace %u\n", d->name, d->nsid);
		return 1;
	}
	if (c->iosize % d->ns->lba_size || c->iosize > d->ns->max_xfer) {
		fprintf(stderr, "pnvme-perf: I/O size %" PRIu64 " must be a multiple of the LBA "
			"size %u and at most %u bytes (MDTS)\n", c->iosize, d->ns->lba_size,
			d->ns->max_xfer);
		return 2;
	}
	d->nlb = (uint32_t)(c->iosize / d->ns->lba_size);
	d->nr_slots = d->ns->nlba / d->nlb;
	struct pnvme_emu *emu = pnvme_ctrl_emu(d->ctrl);
	if (emu && !pnvme_emu_threaded(emu)) {
		if (c->nr_workers > 1) {
			fprintf(stderr, "pnvme-perf: %s: an emulator in step mode needs one worker "
				"(-j 1)\n", d->name);
			return 2;
		}
		d->stepped = emu;
	}
	return 0;
}

/* Queue pair `k` of worker `w` on device `d` (index `idx` of `nq_dev` on that device). */
static int setup_qctx(struct qctx *q, struct worker *w, struct dev *d, unsigned devi,
		      unsigned idx, unsigned nq_dev)
{
	const struct config *c = w->cfg;
	struct pnvme_qpair_opts qo;
	int rc;

	q->w = w;
	q->dev = d;
	q->devi = devi;
	q->ns = d->ns;
	q->nlb = d->nlb;
	q->rng = (0x9e3779b97f4a7c15ull * (uint64_t)(idx + 1)) ^ c->seed;
	iostat_reset(&q->st);
	if (c->verify) {
		/* A slice of its own per queue pair: requests never overlap. */
		q->nr_slots = d->nr_slots / nq_dev;
		q->base = q->nr_slots * idx;
		if (q->nr_slots < c->depth) {
			fprintf(stderr, "pnvme-perf: %s: --verify needs %" PRIu64 " I/O-size slots "
				"per queue pair (depth); the namespace has %" PRIu64 " for %u queue "
				"pair(s)\n", d->name, c->depth, d->nr_slots, nq_dev);
			return 2;
		}
	} else {
		q->nr_slots = d->nr_slots;
		q->seq = (uint64_t)(((unsigned __int128)d->nr_slots * idx) / nq_dev);
	}
	if (c->latency) {
		q->hist = calloc(HIST_BUCKETS, sizeof(*q->hist));
		if (!q->hist)
			return fprintf(stderr, "pnvme-perf: out of memory\n"), 1;
	}
	pnvme_qpair_opts_default(&qo);
	qo.depth = (uint32_t)c->depth; /* -q is the depth: requests outstanding at once */
	qo.flags = c->qflags;
	rc = pnvme_qpair_create(d->ctrl, &qo, &q->qp);
	if (rc) {
		q->qp = NULL;
		fprintf(stderr, "pnvme-perf: %s: queue pair of depth %" PRIu64 ": %s (%s)\n",
			d->name, c->depth, pnvme_last_error(), strerror(-rc));
		return 1;
	}
	q->slots = calloc(c->depth, sizeof(*q->slots));
	if (!q->slots)
		return fprintf(stderr, "pnvme-perf: out of memory\n"), 1;
	for (uint64_t k = 0; k < c->depth; k++) {
		struct slot *s = &q->slots[k];
		s->q = q;
		rc = pnvme_dma_alloc(d->ctrl, c->iosize, 4096, &s->buf, NULL);
		if (rc) {
			fprintf(stderr, "pnvme-perf: %s: DMA buffers: %s\n", d->name,
				pnvme_last_error());
			return 1;
		}
		q->nr_slot_bufs = k + 1;
		memset(s->buf, (int)(k & 0xff), c->iosize);
		if (c->verify) {
			s->share = (q->nr_slots - k + c->depth - 1) / c->depth;
			s->cursor = 0;
		}
	}
	/*
	 * Load mode, all reads or all writes: each slot's request is prepared
	 * once (namespace, buffer, size, callback checked and built) and
	 * submitted with just its LBA. (A size over one command or a namespace
	 * with metadata, which prepared requests do not carry, would keep
	 * pnvme_read/pnvme_write.)
	 */
	if (!c->verify && !c->classic && c->mix != MIX_RANDOM &&
	    q->nlb <= d->ns->max_lbas && d->ns->ms == 0) {
		for (uint64_t k = 0; k < c->depth; k++) {
			struct slot *s = &q->slots[k];
			s->write = c->mix == MIX_WRITE;
			rc = s->write ? pnvme_req_prep_write(q->qp, &s->req, d->ns, s->buf, q->nlb, 0,
							     io_done, s)
				      : pnvme_req_prep_read(q->qp, &s->req, d->ns, s->buf, q->nlb, 0,
							    io_done, s);
			if (rc) {
				fprintf(stderr, "pnvme-perf: %s: prepared request: %s (%s)\n",
					d->name, pnvme_last_error(), strerror(-rc));
				return 1;
			}
			q->nr_prepared = k + 1;
		}
		q->prepared = true;
	}
	return 0;
}

static void free_qctx(struct qctx *q)
{
	for (uint64_t k = 0; k < q->nr_prepared; k++)
		pnvme_req_release(&q->slots[k].req);
	if (q->qp)
		pnvme_qpair_destroy(q->qp);
	for (uint64_t k = 0; k < q->nr_slot_bufs; k++)
		pnvme_dma_free(q->dev->ctrl, q->slots[k].buf);
	free(q->slots);
	free(q->hist);
}

static void on_sigint(int sig)
{
	(void)sig;
	g_sigint = 1;
}

/* Main thread: a progress line each second on a terminal, Ctrl-C stops the run. */
static void watch(struct worker *ws, unsigned n, const struct config *c, bool tty)
{
	uint64_t t0 = mono_ns(), last_t = t0, last_done = 0;

	for (;;) {
		struct timespec req = { 0, 50000000 };
		nanosleep(&req, NULL);
		if (g_sigint)
			__atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
		unsigned finished = 0, measuring = 0;
		uint64_t done = 0;
		for (unsigned i = 0; i < n; i++) {
			int ph = __atomic_load_n(&ws[i].pub_phase, __ATOMIC_ACQUIRE);
			finished += ph == 2;
			measuring += ph >= 1;
			done += __atomic_load_n(&ws[i].pub_completions, __ATOMIC_RELAXED);
		}
		if (finished == n)
			break;
		uint64_t t = mono_ns();
		if (!tty || t - last_t < 1000000000ull)
			continue;
		double dt = (double)(t - last_t) * 1e-9;
		double iops = (double)(done - last_done) / dt;
		bool warm = c->warmup && measuring < n;
		printf("\r[%5.0f s] %-7s %12.0f IOPS %10.2f MiB/s", (double)(t - t0) * 1e-9,
		       warm ? "warm-up" : "", iops, iops * (double)c->iosize / 1048576.0);
		fflush(stdout);
		last_t = t;
		last_done = done;
	}
	if (tty && last_t != t0)
		printf("\r%*s\r", 72, "");
	fflush(stdout);
}

static void build_row(struct row *r, const struct worker *w, const struct dev *d, unsigned devi,
		      const struct config *c)
{
	memset(r, 0, sizeof(*r));
	iostat_reset(&r->st);
	snprintf(r->label, sizeof(r->label), "%s ns %u w%u", d->name, d->ns->nsid, w->id);
	if (w->core >= 0) {
		size_t len = strlen(r->label);
		snprintf(r->label + len, sizeof(r->label) - len, " core %d", w->core);
	}
	r->dev = d->name;
	r->nsid = d->ns->nsid;
	r->worker = (int)w->id;
	r->core = w->core;
	r->secs = (double)(w->t_end - w->t_start) / (double)g_hz;
	if (c->latency)
		r->hist = calloc(HIST_BUCKETS, sizeof(*r->hist));
	for (unsigned i = 0; i < w->nr_q; i++) {
		const struct qctx *q = &w->q[i];
		if (q->devi != devi)
			continue;
		iostat_merge(&r->st, &q->st);
		qstats_merge(&r->qst, &q->qst);
		if (r->hist && q->hist)
			hist_merge(r->hist, q->hist);
	}
	r->iops = per((double)r->st.ios, r->secs);
	r->mibs = per((double)r->st.bytes, r->secs) / 1048576.0;
}

int main(int argc, char **argv)
{
	struct config cfg = { .pattern = P_RANDREAD, .depth = 32, .iosize = 4096, .secs = 5,
			      .shadow_db = true, .qpairs_per_worker = 1 };
	const char *dev_names[MAX_DEVS];
	unsigned nr_devs = 0;
	struct dev devs[MAX_DEVS];
	struct worker *ws = NULL;
	struct row *rows = NULL;
	int status, rc;

	rc = parse_args(argc, argv, &cfg, dev_names, &nr_devs);
	if (rc)
		return rc == PARSE_HELP ? 0 : rc;
	rc = check_cores(&cfg);
	if (rc)
		return rc;
	cfg.seed = (uint64_t)(uint32_t)getpid() * 0x9e3779b97f4a7c15ull ^ mono_ns();
	g_hz = ticks_calibrate();

	memset(devs, 0, sizeof(devs));
	status = 1;
	for (unsigned d = 0; d < nr_devs; d++) {
		devs[d].name = dev_names[d];
		devs[d].nsid = cfg.dev_nsid[d] ? cfg.dev_nsid[d] : (uint32_t)cfg.nsid;
		rc = open_dev(&devs[d], &cfg);
		if (rc) {
			status = rc;
			goto out;
		}
	}

	ws = calloc(cfg.nr_workers, sizeof(*ws));
	if (!ws)
		goto out;
	unsigned per_dev = cfg.nr_workers * cfg.qpairs_per_worker;
	for (unsigned i = 0; i < cfg.nr_workers; i++) {
		struct worker *w = &ws[i];
		w->id = i;
		w->cfg = &cfg;
		w->devs = devs;
		w->nr_devs = nr_devs;
		w->core = cfg.nr_cores ? cfg.cores[i % cfg.nr_cores] : -1;
		w->nr_q = nr_devs * cfg.qpairs_per_worker;
		w->q = calloc(w->nr_q, sizeof(*w->q));
		if (!w->q)
			goto out;
		for (unsigned d = 0; d < nr_devs; d++)
			for (unsigned k = 0; k < cfg.qpairs_per_worker; k++) {
				rc = setup_qctx(&w->q[d * cfg.qpairs_per_worker + k], w, &devs[d], d,
						i * cfg.qpairs_per_worker + k, per_dev);
				if (rc) {
					status = rc;
					goto out;
				}
			}
	}

	if (!cfg.json) {
		printf("pnvme-perf: ");
		for (unsigned d = 0; d < nr_devs; d++)
			printf("%s%s ns %u", d ? ", " : "", devs[d].name, devs[d].ns->nsid);
		printf(", %s", pattern_names[cfg.pattern]);
		if (cfg.mix == MIX_RANDOM)
			printf(" (%u%% reads)", cfg.read_pct);
		printf(", %" PRIu64 " bytes, depth %" PRIu64 ", %" PRIu64 " s", cfg.iosize, cfg.depth,
		       cfg.secs);
		if (cfg.warmup)
			printf(" after %" PRIu64 " s warm-up", cfg.warmup);
		printf(", SQ doorbell %s, CQ doorbell %s%s%s, %u worker(s) x %u queue pair(s)%s%s\n",
		       sq_doorbell_mode(&cfg), cq_doorbell_mode(&cfg),
		       !cfg.shadow_db ? "" : pnvme_ctrl_shadow_db(devs[0].ctrl) ? ", shadow doorbells"
		       : ", shadow doorbells not offered",
		       cfg.qflags & PNVME_QPAIR_CMB_SQ ? ", SQs in the CMB" : "",
		       cfg.nr_workers, cfg.qpairs_per_worker,
		       cfg.verify ? ", verify" : "", cfg.classic ? ", pnvme_read/pnvme_write" : "");
		fflush(stdout);
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, NULL);

	unsigned started = 0;
	for (; started < cfg.nr_workers; started++) {
		rc = pthread_create(&ws[started].thread, NULL, worker_main, &ws[started]);
		if (rc) {
			fprintf(stderr, "pnvme-perf: cannot start worker %u: %s\n", started,
				strerror(rc));
			break;
		}
	}
	if (started < cfg.nr_workers) {
		/* Let the ones that started run into the stop flag. */
		__atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
		for (unsigned i = started; i < cfg.nr_workers; i++)
			ws[i].pub_phase = 2;
	}
	gate_open();
	watch(ws, cfg.nr_workers, &cfg, !cfg.json && isatty(STDOUT_FILENO));
	for (unsigned i = 0; i < started; i++)
		pthread_join(ws[i].thread, NULL);
	if (started < cfg.nr_workers)
		goto out;

	/* Failures first: a run with an I/O error has no numbers worth printing. */
	bool failed = false;
	uint64_t verified = 0, mismatches = 0;
	for (unsigned i = 0; i < cfg.nr_workers; i++) {
		if (ws[i].err) {
			fprintf(stderr, "pnvme-perf: worker %u: %s\n", i, ws[i].errmsg);
			failed = true;
		}
		verified += ws[i].verified_blocks;
		mismatches += ws[i].mismatches;
		for (uint64_t k = 0; k < ws[i].mismatches && k < MAX_REPORTED_MISMATCHES; k++) {
			const struct mismatch *m = &ws[i].mm[k];
			fprintf(stderr, "pnvme-perf: verify: %s LBA %" PRIu64 " byte %zu: expected "
				"0x%016" PRIx64 ", read 0x%016" PRIx64 "\n", devs[m->devi].name, m->lba,
				m->off, m->want, m->got);
		}
	}
	if (failed)
		goto out;

	unsigned nr_rows = cfg.nr_workers * nr_devs;
	rows = calloc(nr_rows, sizeof(*rows));
	if (!rows)
		goto out;
	struct row total;
	memset(&total, 0, sizeof(total));
	iostat_reset(&total.st);
	snprintf(total.label, sizeof(total.label), "Total");
	if (cfg.latency)
		total.hist = calloc(HIST_BUCKETS, sizeof(*total.hist));
	for (unsigned i = 0; i < cfg.nr_workers; i++)
		for (unsigned d = 0; d < nr_devs; d++) {
			struct row *r = &rows[i * nr_devs + d];
			build_row(r, &ws[i], &devs[d], d, &cfg);
			iostat_merge(&total.st, &r->st);
			qstats_merge(&total.qst, &r->qst);
			if (total.hist && r->hist)
				hist_merge(total.hist, r->hist);
			total.iops += r->iops;
			total.mibs += r->mibs;
			if (r->secs > total.secs)
				total.secs = r->secs;
		}

	if (cfg.json) {
		json_report(&cfg, devs, nr_devs, rows, nr_rows, &total, verified, mismatches);
	} else {
		print_table(rows, nr_rows, &total);
		if (cfg.latency) {
			if (nr_rows > 1)
				for (unsigned i = 0; i < nr_rows; i++)
					print_latency(&rows[i], cfg.latency);
			print_latency(&total, cfg.latency);
		}
		if (cfg.verify)
			printf("verify: %" PRIu64 " blocks checked, %" PRIu64 " mismatches\n",
			       verified, mismatches);
#ifdef PNVME_LATTRACE
		print_lattrace(&ws[0]);
#endif
	}
	status = mismatches ? 1 : 0;
	if (mismatches)
		fprintf(stderr, "pnvme-perf: verify: %" PRIu64 " of %" PRIu64 " blocks read back "
			"wrong\n", mismatches, verified);
	for (unsigned i = 0; i < nr_rows; i++)
		free(rows[i].hist);
	free(total.hist);
out:
	free(rows);
	if (ws) {
		for (unsigned i = 0; i < cfg.nr_workers; i++) {
			for (unsigned k = 0; ws[i].q && k < ws[i].nr_q; k++)
				if (ws[i].q[k].dev)
					free_qctx(&ws[i].q[k]);
			free(ws[i].q);
		}
		free(ws);
	}
	for (unsigned d = 0; d < nr_devs; d++)
		if (devs[d].ctrl)
			pnvme_ctrl_close(devs[d].ctrl);
	return status;
}
