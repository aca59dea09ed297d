/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pcie/lattrace.h - where a depth-1 I/O's time goes, for a benchmark build
 * only (-DPNVME_LATTRACE; benchmarks/guest-compare.sh packs such a
 * pnvme-perf as pnvme-perf-lt). In a normal build every macro here is empty
 * and pnvme_lattrace_get does not exist.
 *
 * One cycle of a queue pair kept at depth 1 is cut at five points, each a
 * cycle-counter read on the thread that polls:
 *
 *   SQ doorbell written --(device + detection)--> first new CQE seen by a poll
 *   --(callbacks: the application's, with its resubmission)--> reap loop done
 *   --> the two doorbell steps, in the order the reap takes them: the CQ
 *   head (0 when none is due) and the SQ tail (shadow CQ: SQ first)
 *
 * plus the polls between (their count and the time from one poll's entry to
 * the next: the application's loop as the device sees it). Sums and counts
 * are thread-local: one traced queue pair per thread. Meaningful at depth 1
 * with one queue pair; at larger depths the stamps still add up, but a CQE
 * seen is no longer the one the last doorbell announced.
 */
#ifndef PNVME_PCIE_LATTRACE_H
#define PNVME_PCIE_LATTRACE_H

#ifdef PNVME_LATTRACE
#include "internal.h"

/* The intervals, in the order of a cycle (pnvme_lattrace_get's array). */
enum {
	LT_DEV,       /* SQ doorbell -> first CQE seen */
	LT_CB,        /* first CQE seen -> callbacks done */
	LT_CQDB,      /* the CQ head doorbell step (shadow store and/or MMIO write) */
	LT_BACK,      /* the SQ tail doorbell step (before or after the CQ step) */
	LT_POLLGAP,   /* one poll's entry -> the next poll's entry */
	LT_NR,
};

struct lattrace {
	uint64_t sum[LT_NR], n[LT_NR];
	uint64_t t_sqdb, t_seen, t_cbdone, t_cqdb, t_poll;
};
extern __thread struct lattrace pnvme_lt;

static inline void lt_add(int k, uint64_t from, uint64_t to)
{
	if (from && to > from) {
		pnvme_lt.sum[k] += to - from;
		pnvme_lt.n[k]++;
	}
}
#define LT_POLL_ENTRY() do { uint64_t t_ = pnvme_ticks(); lt_add(LT_POLLGAP, pnvme_lt.t_poll, t_); \
	pnvme_lt.t_poll = t_; } while (0)
#define LT_SEEN(first) do { if (!(first)) break; pnvme_lt.t_seen = pnvme_ticks(); \
	lt_add(LT_DEV, pnvme_lt.t_sqdb, pnvme_lt.t_seen); pnvme_lt.t_sqdb = 0; } while (0)
/* A reap without a CQ doorbell (lazy) counts 0 for it; the next step starts at once. */
#define LT_CBDONE() do { pnvme_lt.t_cbdone = pnvme_ticks(); \
	lt_add(LT_CB, pnvme_lt.t_seen, pnvme_lt.t_cbdone); \
	pnvme_lt.t_cqdb = pnvme_lt.t_cbdone; pnvme_lt.n[LT_CQDB]++; } while (0)
#define LT_CQDB() do { pnvme_lt.t_cqdb = pnvme_ticks(); \
	pnvme_lt.sum[LT_CQDB] += pnvme_lt.t_cqdb - pnvme_lt.t_cbdone; } while (0)
/* The SQ doorbell step starts at the CQ doorbell, or at the callbacks' end when it comes first. */
#define LT_SQDB() do { pnvme_lt.t_sqdb = pnvme_ticks(); \
	lt_add(LT_BACK, pnvme_lt.t_cqdb, pnvme_lt.t_sqdb); \
	if (pnvme_lt.t_cqdb && pnvme_lt.t_cqdb == pnvme_lt.t_cbdone) pnvme_lt.t_cbdone = pnvme_lt.t_sqdb; \
	pnvme_lt.t_cqdb = 0; } while (0)

/**
 * Copy this thread's sums and counts (ticks; LT_NR each) and zero them.
 * Benchmark builds only.
 */
__attribute__((visibility("default"))) void pnvme_lattrace_get(uint64_t sum[LT_NR], uint64_t n[LT_NR]);
#else
#define LT_POLL_ENTRY() do { } while (0)
#define LT_SEEN(first)  do { } while (0)
#define LT_CBDONE()     do { } while (0)
#define LT_CQDB()       do { } while (0)
#define LT_SQDB()       do { } while (0)
#endif

#endif
