/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vmtest - the payload of the QEMU guest tests (tests/vm/run-vm-tests.sh).
 * Uses only the public pnvme API.
 *
 *   vmtest run DEV --seed S [--threads N] [--qd N]
 *       Bring DEV up, identify it, then for every active namespace: write the
 *       whole namespace with N queue pairs (one thread each) and mixed transfer
 *       sizes (one block, one page, two pages, PRP lists up to MDTS, odd buffer
 *       offsets), flush, read everything back with a different layout and
 *       compare, then Write Zeroes (plain and with DEAC) and Dataset Management
 *       deallocate on fixed ranges and check they read as zeroes while their
 *       neighbours keep the pattern, and a pnvme_readv() into elements at odd
 *       addresses (SGLs; skipped without SGL support). Prints "VMTEST: <check>
 *       PASS|FAIL ...".
 *   vmtest expect --seed S --nsid N --lba-size L --nlba N [--out FILE]
 *       Write the image namespace N must hold after `run` (host side).
 *   vmtest check FILE --seed S --nsid N --lba-size L --nlba N
 *       Compare FILE (a disk image or a block device) with that image; report
 *       the first differing LBA.
 *   vmtest run ... --tag NAME [--prior-image | --prior-gen G --prior-regions K]
 *       The same, after a restart: before writing, check that namespace 1 still
 *       holds what an earlier `run` wrote (--prior-image) or the first K
 *       regions of `stress --gen G` (NAME-prior-data), and end with a summary
 *       check NAME.
 *   vmtest stress DEV --seed S --gen G [--threads N] [--qd N] [--passes P]
 *                 [--die-in-bringup MS]
 *       Verified I/O until killed (or P passes): namespace 1 region by region
 *       (2 MiB), write generation G's pattern, read back, compare; prints
 *       "stress: verified-through gen G regions K" during the first pass. With
 *       --die-in-bringup the process SIGKILLs itself MS ms after the VFIO open,
 *       while pnvme_ctrl_open() brings the controller up.
 *   vmtest reset DEV --seed S
 *       pnvme_ctrl_reset() with I/O outstanding on two queue pairs (max_retries
 *       3): "ctrl-reset" (requests posted, nobody polling: some completed in the
 *       CQ, some in flight, some never doorbelled) and "ctrl-reset-live" (two
 *       threads polling throughout). Every request must complete exactly once
 *       and successfully, the data must read back, one reset, one reconnect
 *       per queue pair.
 *   vmtest regs BDF
 *       Print CC and CSTS through sysfs resource0 (device not in use).
 *   vmtest hold DEV SECONDS
 *       Open DEV, print "VMTEST: holding DEV", sleep, close (to test EBUSY).
 *   vmtest exec-as UID MEMLOCK_KIB PROG [ARGS...]
 *       Lower RLIMIT_MEMLOCK, become UID (group UID too) and exec PROG: runs a
 *       tool without CAP_IPC_LOCK to test the locked-memory message.
 *
 * The data pattern is a hash of (seed, nsid, byte offset), so any side can
 * regenerate it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <pnvme/pnvme.h>

#include "vmtest.h"

#define MAX_THREADS 16
#define MAX_QD      32

uint64_t g_seed;

/* ------------------------------------------------------------------------ */
/* pattern and the ranges that end up zero                                  */
/* ------------------------------------------------------------------------ */

static inline uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Fill `len` bytes (multiple of 8) that live at byte offset `off` of namespace nsid. */
void pattern_fill_seed(uint64_t seed, uint32_t nsid, uint64_t off, void *buf, size_t len)
{
	uint64_t *w = buf;
	uint64_t base = seed ^ ((uint64_t)nsid << 56);
	for (size_t i = 0; i < len / 8; i++)
		w[i] = mix64(base + off / 8 + i);
}

static void pattern_fill(uint32_t nsid, uint64_t off, void *buf, size_t len)
{
	pattern_fill_seed(g_seed, nsid, off, buf, len);
}

/* The pattern `stress --gen G` writes (distinct from the one `run` writes). */
static uint64_t stress_seed(uint64_t seed, unsigned gen)
{
	return mix64(seed ^ 0x5354524553530000ull ^ gen);
}

/* The pattern `reset` writes. */
static uint64_t reset_seed(uint64_t seed)
{
	return mix64(seed ^ 0x5245534554000000ull);
}

/* stress works region by region: 2 MiB each (the last one may be shorter) */
#define REGION_BYTES (2u << 20)

enum zkind { Z_WZ, Z_WZ_DEAC, Z_DSM };

struct zrange {
	enum zkind kind;
	uint64_t slba;
	uint32_t nlb;
	const char *name;
};

/* The ranges `run` zeroes, derived from the namespace size only. */
static unsigned zero_plan(uint64_t nlba, struct zrange z[4])
{
	uint64_t q = nlba / 16;
	if (nlba < 256)
		return 0;
	uint32_t a = (uint32_t)(q > 65536 ? 65536 : q);
	uint32_t d = (uint32_t)(nlba / 32 > 65536 ? 65536 : nlba / 32);
	z[0] = (struct zrange){ Z_WZ, nlba / 4 + (g_seed % 7), a, "write-zeroes" };
	z[1] = (struct zrange){ Z_WZ_DEAC, nlba / 2 + 3, 37, "write-zeroes-deac" };
	z[2] = (struct zrange){ Z_DSM, 3 * nlba / 4 + 1, d, "dsm-deallocate" };
	z[3] = (struct zrange){ Z_DSM, nlba - 10, 9, "dsm-deallocate-tail" };
	return 4;
}

static bool in_zero(const struct zrange *z, unsigned nz, uint64_t lba)
{
	for (unsigned i = 0; i < nz; i++)
		if (lba >= z[i].slba && lba < z[i].slba + z[i].nlb)
			return true;
	return false;
}

/* Expected content of blocks [lba, lba+n) after `run` (with `seed` = g_seed). */
static void expected_seed(uint64_t seed, uint32_t nsid, uint32_t lba_size, const struct zrange *z,
			  unsigned nz, uint64_t lba, uint32_t n, uint8_t *buf)
{
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *b = buf + (size_t)i * lba_size;
		if (in_zero(z, nz, lba + i))
			memset(b, 0, lba_size);
		else
			pattern_fill_seed(seed, nsid, (lba + i) * lba_size, b, lba_size);
	}
}

static void expected(uint32_t nsid, uint32_t lba_size, const struct zrange *z, unsigned nz,
		     uint64_t lba, uint32_t n, uint8_t *buf)
{
	expected_seed(g_seed, nsid, lba_size, z, nz, lba, n, buf);
}

/* ------------------------------------------------------------------------ */
/* whole-namespace passes                                                   */
/* ------------------------------------------------------------------------ */

struct extent {
	uint64_t slba;
	uint32_t nlb;
	uint32_t off;   /* byte offset of the data in its buffer (dword aligned) */
};

/* Split LBAs [start, end) into extents of mixed sizes (deterministic from `salt`). */
static struct extent *plan_range(const struct pnvme_ns *ns, uint64_t salt, uint64_t start,
				 uint64_t end, size_t *count)
{
	uint32_t per_page = ns->lba_size >= 4096 ? 1 : 4096 / ns->lba_size;
	uint32_t max = ns->max_lbas;
	size_t cap = 1024, n = 0;
	struct extent *e = malloc(cap * sizeof(*e));
	uint64_t r = mix64(g_seed ^ salt), lba = start;
	static const uint32_t offs[] = { 0, 0, 0, 8, 512, 2048, 3584 };
	while (e && lba < end) {
		r = mix64(r);
		uint32_t nlb;
		switch (r % 8) {
		case 0: nlb = 1; break;                                   /* one block */
		case 1: nlb = per_page; break;                            /* one page: PRP1 */
		case 2: nlb = 2 * per_page; break;                        /* PRP1 + PRP2 */
		case 3: nlb = (uint32_t)(3 + (r >> 8) % 14) * per_page; break; /* PRP list */
		case 4: case 5: nlb = max; break;                         /* MDTS */
		default: nlb = 1 + (uint32_t)((r >> 16) % max); break;
		}
		if (nlb > max)
			nlb = max;
		if (nlb == 0)
			nlb = 1;
		if (lba + nlb > end)
			nlb = (uint32_t)(end - lba);
		uint32_t off = offs[(r >> 40) % (sizeof(offs) / sizeof(offs[0]))];
		if ((uint64_t)nlb * ns->lba_size + off > ns->max_xfer)
			off = 0;
		if (n == cap) {
			cap *= 2;
			struct extent *ne = realloc(e, cap * sizeof(*e));
			if (!ne) {
				free(e);
				return NULL;
			}
			e = ne;
		}
		e[n++] = (struct extent){ lba, nlb, off };
		lba += nlb;
	}
	*count = n;
	return e;
}

/* The whole namespace. */
static struct extent *plan_extents(const struct pnvme_ns *ns, uint64_t salt, size_t *count)
{
	return plan_range(ns, salt, 0, ns->nlba, count);
}

struct worker;

struct slot {
	struct worker *w;
	uint8_t *buf;          /* DMA memory, max_xfer + 4 KiB */
	const struct extent *ext;
	bool busy;
};

struct worker {
	pthread_t thread;
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	const struct pnvme_ns *ns;
	const struct extent *ext;
	size_t next, count, step;   /* extents next, next+step, ... below count */
	bool write;
	unsigned qd;
	struct slot slots[MAX_QD];
	uint8_t *expect;            /* ordinary memory for compares */
	uint8_t *hits;              /* optional: completions per extent (exactly-once checks) */
	/* results (ios and outstanding are read by other threads while it runs) */
	uint64_t ios, bytes, mismatches;
	uint32_t outstanding;
	int err;
	char msg[256];
};

static void note(struct worker *w, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void note(struct worker *w, int err, const char *fmt, ...)
{
	if (w->err == 0 && w->mismatches == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(w->msg, sizeof(w->msg), fmt, ap);
		va_end(ap);
	}
	if (err && !w->err)
		w->err = err;
}

static void io_done(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct slot *s = arg;
	struct worker *w = s->w;
	const struct extent *x = s->ext;
	if (!s->busy) {
		note(w, -EALREADY, "second completion for slba %" PRIu64 " nlb %u", x->slba, x->nlb);
		return;
	}
	s->busy = false;
	if (w->hits && w->hits[x - w->ext] < 255)
		w->hits[x - w->ext]++;
	__atomic_store_n(&w->ios, w->ios + 1, __ATOMIC_RELAXED);
	if (err) {
		note(w, err, "%s slba %" PRIu64 " nlb %u: %s (status %s)", w->write ? "write" : "read",
		     x->slba, x->nlb, strerror(-err),
		     cqe ? pnvme_status_str(PNVME_CQE_STATUS(cqe)) : "none");
		return;
	}
	size_t len = (size_t)x->nlb * w->ns->lba_size;
	w->bytes += len;
	if (w->write)
		return;
	pattern_fill(w->ns->nsid, x->slba * w->ns->lba_size, w->expect, len);
	if (memcmp(s->buf + x->off, w->expect, len) != 0) {
		for (uint32_t i = 0; i < x->nlb; i++) {
			size_t o = (size_t)i * w->ns->lba_size;
			if (memcmp(s->buf + x->off + o, w->expect + o, w->ns->lba_size) != 0) {
				if (w->mismatches == 0)
					snprintf(w->msg, sizeof(w->msg), "data mismatch at LBA %" PRIu64
						 " (extent slba %" PRIu64 " nlb %u buffer offset %u)",
						 x->slba + i, x->slba, x->nlb, x->off);
				w->mismatches++;
			}
		}
	}
}

static int submit(struct worker *w, struct slot *s, const struct extent *x)
{
	s->ext = x;
	s->busy = true;
	int rc;
	if (w->write) {
		pattern_fill(w->ns->nsid, x->slba * w->ns->lba_size, s->buf + x->off,
			     (size_t)x->nlb * w->ns->lba_size);
		rc = pnvme_write(w->qp, w->ns, s->buf + x->off, x->slba, x->nlb, 0, io_done, s);
	} else {
		memset(s->buf + x->off, 0xa5, (size_t)x->nlb * w->ns->lba_size);
		rc = pnvme_read(w->qp, w->ns, s->buf + x->off, x->slba, x->nlb, 0, io_done, s);
	}
	if (rc)
		s->busy = false;
	return rc;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	size_t idx = w->next;
	unsigned busy;
	for (;;) {
		busy = 0;
		for (unsigned i = 0; i < w->qd; i++) {
			struct slot *s = &w->slots[i];
			if (!s->busy && idx < w->count && !w->err) {
				int rc = submit(w, s, &w->ext[idx]);
				if (rc == -EAGAIN)
					continue;
				if (rc) {
					note(w, rc, "submit slba %" PRIu64 ": %s", w->ext[idx].slba,
					     pnvme_last_error());
					continue;
				}
				idx += w->step;
			}
			busy += s->busy;
		}
		if (busy == 0 && (idx >= w->count || w->err))
			break;
		int rc = pnvme_qpair_poll(w->qp, 0);
		__atomic_store_n(&w->outstanding, pnvme_qpair_outstanding(w->qp), __ATOMIC_RELAXED);
		if (rc < 0) {
			note(w, rc, "poll: %s", pnvme_last_error());
			break;
		}
	}
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int fails;

/*
 * Library log lines, when deferred (timing-sensitive tests: printing on the
 * serial console takes milliseconds), wait here until the next check line.
 */
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_logbuf[32768];
static size_t g_loglen;
static bool g_log_defer;

static void log_flush(void)
{
	pthread_mutex_lock(&g_log_lock);
	if (g_loglen)
		fwrite(g_logbuf, 1, g_loglen, stdout);
	g_loglen = 0;
	pthread_mutex_unlock(&g_log_lock);
}

void check(bool ok, const char *name, const char *fmt, ...)
{
	char detail[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	log_flush();
	printf("VMTEST: %s %s %s\n", name, ok ? "PASS" : "FAIL", detail);
	fflush(stdout);
	if (!ok)
		fails++;
}

struct pass_result {
	uint64_t bytes, ios, mismatches;
	int err;
	char msg[256];
	double secs;
};

/* Run extents [0, count) across nt workers (extent i on worker i % nt), write or read+compare. */
static void run_workers(struct worker *ws, unsigned nt, const struct pnvme_ns *ns,
			const struct extent *ext, size_t count, bool write, struct pass_result *res)
{
	double t0 = now_s();
	memset(res, 0, sizeof(*res));
	for (unsigned t = 0; t < nt; t++) {
		ws[t].ns = ns;
		ws[t].ext = ext;
		ws[t].count = count;
		ws[t].next = t;
		ws[t].step = nt;
		ws[t].write = write;
		ws[t].ios = ws[t].bytes = ws[t].mismatches = 0;
		ws[t].err = 0;
		ws[t].msg[0] = '\0';
		pthread_create(&ws[t].thread, NULL, worker_main, &ws[t]);
	}
	for (unsigned t = 0; t < nt; t++) {
		pthread_join(ws[t].thread, NULL);
		res->bytes += ws[t].bytes;
		res->ios += ws[t].ios;
		res->mismatches += ws[t].mismatches;
		if ((ws[t].err || ws[t].mismatches) && !res->msg[0]) {
			res->err = ws[t].err;
			snprintf(res->msg, sizeof(res->msg), "%s", ws[t].msg);
		}
	}
	res->secs = now_s() - t0;
}

/* One whole-namespace pass (write or read+compare) across all workers. */
static bool pass(struct worker *ws, unsigned nt, const struct pnvme_ns *ns, bool write,
		 uint64_t salt, const char *label)
{
	size_t count;
	struct extent *ext = plan_extents(ns, salt, &count);
	if (!ext) {
		check(false, label, "out of memory");
		return false;
	}
	size_t sizes[5] = { 0 };   /* 1 block, 1 page, 2 pages, PRP list, MDTS */
	uint32_t per_page = ns->lba_size >= 4096 ? 1 : 4096 / ns->lba_size;
	for (size_t i = 0; i < count; i++) {
		uint64_t pages = ((uint64_t)ext[i].off + (uint64_t)ext[i].nlb * ns->lba_size + 4095) / 4096;
		if (ext[i].nlb == ns->max_lbas)
			sizes[4]++;
		else if (ext[i].nlb == 1 && per_page > 1)
			sizes[0]++;
		else if (pages <= 1)
			sizes[1]++;
		else if (pages == 2)
			sizes[2]++;
		else
			sizes[3]++;
	}
	struct pass_result r;
	run_workers(ws, nt, ns, ext, count, write, &r);
	double dt = r.secs;
	bool ok = r.err == 0 && r.mismatches == 0 && r.bytes == ns->nlba * ns->lba_size;
	check(ok, label, "ns %u: %" PRIu64 " commands, %" PRIu64 " bytes in %.2f s (%.1f MiB/s), "
	      "%u queue pairs; sizes: 1-block %zu, 1-page %zu, 2-page %zu, PRP-list %zu, "
	      "MDTS %zu; mismatched blocks %" PRIu64 "%s%s",
	      ns->nsid, r.ios, r.bytes, dt, (double)r.bytes / 1048576.0 / (dt > 0 ? dt : 1), nt,
	      sizes[0], sizes[1], sizes[2], sizes[3], sizes[4], r.mismatches, r.msg[0] ? "; " : "",
	      r.msg);
	free(ext);
	return ok;
}

/* Read [slba, slba+n) synchronously in max_lbas pieces and compare with `expected`. */
static int verify_range_seed(struct pnvme_qpair *qp, const struct pnvme_ns *ns, uint8_t *dma,
			     uint8_t *exp, uint64_t seed, const struct zrange *z, unsigned nz,
			     uint64_t slba, uint64_t n, uint64_t *bad_lba)
{
	while (n) {
		uint32_t k = (uint32_t)(n > ns->max_lbas ? ns->max_lbas : n);
		int rc = pnvme_read_sync(qp, ns, dma, slba, k, 0);
		if (rc)
			return rc;
		expected_seed(seed, ns->nsid, ns->lba_size, z, nz, slba, k, exp);
		for (uint32_t i = 0; i < k; i++)
			if (memcmp(dma + (size_t)i * ns->lba_size, exp + (size_t)i * ns->lba_size,
				   ns->lba_size) != 0) {
				*bad_lba = slba + i;
				return 1;
			}
		slba += k;
		n -= k;
	}
	return 0;
}

static int verify_range(struct pnvme_qpair *qp, const struct pnvme_ns *ns, uint8_t *dma,
			uint8_t *exp, const struct zrange *z, unsigned nz, uint64_t slba,
			uint64_t n, uint64_t *bad_lba)
{
	return verify_range_seed(qp, ns, dma, exp, g_seed, z, nz, slba, n, bad_lba);
}

struct sgl_wait {
	int done;
	int err;
};

static void sgl_done(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct sgl_wait *w = arg;
	(void)cqe;
	w->err = err;
	w->done = 1;
}

/*
 * pnvme_readv() of blocks 0..7 into elements at odd addresses with odd
 * lengths (blocks straddle them): PRPs cannot describe that, so with SGLs
 * (Identify SGLS bits 1:0 != 0, QEMU's controller) it goes out as one SGL
 * command (Base 2.0 §4.1.2); the bytes must be what `run` wrote. A
 * controller without SGLs, or a namespace with metadata, skips the check.
 */
static void readv_sgl(struct pnvme_ctrl *ctrl, struct pnvme_qpair *qp, const struct pnvme_ns *ns,
		      const struct zrange *z, unsigned nz)
{
	const uint32_t nlb = 8;
	size_t len = (size_t)nlb * ns->lba_size;
	uint32_t sgls = pnvme_ctrl_id(ctrl)->sgls;
	bool fabrics = pnvme_ctrl_id(ctrl)->ioccsz != 0; /* (NVMe/TCP: its own SGLs) */
	char label[64];
	uint8_t *dma = NULL, *exp = malloc(len), *got = malloc(len);

	snprintf(label, sizeof(label), "ns%u-readv-sgl", ns->nsid);
	if (!(sgls & 3u) || (sgls & 3u) == 3u || fabrics || ns->ms || ns->nlba < nlb) {
		check(true, label, "skipped: SGLS 0x%x, %s, metadata %u bytes", sgls,
		      fabrics ? "fabrics" : "PCIe", ns->ms);
		goto out;
	}
	if (!exp || !got || pnvme_dma_alloc(ctrl, 2 * len + 8192, 0, (void **)&dma, NULL)) {
		check(false, label, "out of memory: %s", pnvme_last_error());
		goto out;
	}
	/* three pieces: 1/3, 1/2 (less 1) and the rest, at offsets 1, 4097 + 1/3, ... */
	size_t a = len / 3 + 1, b = len / 2 - 1, c = len - a - b;
	struct iovec iov[3] = { { dma + 1, a }, { dma + a + 4099, b }, { dma + len + 8191 - c, c } };
	memset(dma, 0xa5, 2 * len + 8192);
	struct pnvme_qpair_stats s0, s1;
	struct sgl_wait w = { 0, 0 };
	pnvme_qpair_get_stats(qp, &s0);
	int rc = pnvme_readv(qp, ns, iov, 3, 0, nlb, 0, sgl_done, &w);
	double t0 = now_s();
	while (rc == 0 && !w.done && now_s() - t0 < 30.0)
		if (pnvme_qpair_poll(qp, 0) < 0)
			break;
	pnvme_qpair_get_stats(qp, &s1);
	if (rc || !w.done || w.err) {
		check(false, label, "readv: %s", rc ? pnvme_last_error()
				      : !w.done ? "no completion in 30 s" : strerror(-w.err));
		goto out;
	}
	memcpy(got, iov[0].iov_base, a);
	memcpy(got + a, iov[1].iov_base, b);
	memcpy(got + a + b, iov[2].iov_base, c);
	expected(ns->nsid, ns->lba_size, z, nz, 0, nlb, exp);
	size_t bad = 0;
	while (bad < len && got[bad] == exp[bad])
		bad++;
	check(bad == len, label,
	      "%u blocks into 3 elements (%zu@+1, %zu@+%zu, %zu@+%zu; SGLS 0x%x): %" PRIu64
	      " command(s), %s", nlb, a, b, a + 4099, c, len + 8191 - c, sgls,
	      s1.submitted - s0.submitted, bad == len ? "data as written" : "data differs");
out:
	if (dma)
		pnvme_dma_free(ctrl, dma);
	free(exp);
	free(got);
}

/* One synchronous read or write of blocks [0, nlb) on `qp`; 0 or a negative errno. */
static int cmb_io(struct pnvme_qpair *qp, const struct pnvme_ns *ns, void *buf, uint32_t nlb,
		  bool write)
{
	struct sgl_wait w = { 0, 0 };
	int rc = write ? pnvme_write(qp, ns, buf, 0, nlb, 0, sgl_done, &w)
		       : pnvme_read(qp, ns, buf, 0, nlb, 0, sgl_done, &w);
	double t0 = now_s();

	while (rc == 0 && !w.done && now_s() - t0 < 30.0)
		if ((rc = pnvme_qpair_poll(qp, 0)) > 0)
			rc = 0;
	return rc ? rc : !w.done ? -ETIMEDOUT : w.err;
}

/*
 * A queue pair whose SQ is in the Controller Memory Buffer
 * (PNVME_QPAIR_CMB_SQ; QEMU's cmb_size_mb=, BAR2): read blocks 0..7, compare
 * with what `run` wrote, write the same bytes back and read them again, all
 * through the CMB SQ (so the image stays as expected). A controller without
 * a CMB skips the check (-ENOTSUP).
 */
static void cmb_sq(struct pnvme_ctrl *ctrl, const struct pnvme_ns *ns, const struct zrange *z,
		   unsigned nz)
{
	const uint32_t nlb = 8;
	size_t len = (size_t)nlb * ns->lba_size;
	struct pnvme_qpair_opts qo;
	struct pnvme_qpair *cq = NULL;
	char label[64];
	uint8_t *dma = NULL, *exp = malloc(len);
	int rc;

	snprintf(label, sizeof(label), "ns%u-cmb-sq", ns->nsid);
	pnvme_qpair_opts_default(&qo);
	qo.depth = 15;
	qo.flags = PNVME_QPAIR_CMB_SQ;
	rc = pnvme_qpair_create(ctrl, &qo, &cq);
	if (rc == -ENOTSUP || ns->ms || ns->nlba < nlb) {
		check(true, label, "skipped: %s", rc ? pnvme_last_error() : "metadata or small ns");
		goto out;
	}
	if (rc || !exp || pnvme_dma_alloc(ctrl, len, 0, (void **)&dma, NULL)) {
		check(false, label, "setup: %s", pnvme_last_error());
		goto out;
	}
	expected(ns->nsid, ns->lba_size, z, nz, 0, nlb, exp);
	memset(dma, 0x5a, len);
	rc = cmb_io(cq, ns, dma, nlb, false);
	bool same1 = rc == 0 && memcmp(dma, exp, len) == 0;
	if (rc == 0)
		rc = cmb_io(cq, ns, dma, nlb, true);
	memset(dma, 0xa5, len);
	if (rc == 0)
		rc = cmb_io(cq, ns, dma, nlb, false);
	bool same2 = rc == 0 && memcmp(dma, exp, len) == 0;
	check(rc == 0 && same1 && same2, label, "%u blocks read, written back, read again "
	      "through an SQ in the CMB: %s", nlb, rc ? strerror(-rc)
	      : same1 && same2 ? "data as written" : "data differs");
out:
	if (cq)
		pnvme_qpair_destroy(cq);
	if (dma)
		pnvme_dma_free(ctrl, dma);
	free(exp);
}

/*
 * A queue pair with interrupts (PNVME_QPAIR_INTERRUPTS: Create I/O CQ with
 * IEN, MSI-X through VFIO): blocks 0..15 read one command at a time, and
 * for each the thread first sleeps in poll() on the queue pair's eventfd
 * (2 s at most) before it polls the CQ: every command must wake it, and the
 * data must be what `run` wrote.
 */
static void irq_qpair(struct pnvme_ctrl *ctrl, const struct pnvme_ns *ns, const struct zrange *z,
		      unsigned nz)
{
	const uint32_t nlb = 16;
	struct pnvme_qpair_opts qo;
	struct pnvme_qpair *qp = NULL;
	unsigned woke = 0, bad = 0;
	char label[64];
	uint8_t *dma = NULL, *exp = malloc((size_t)nlb * ns->lba_size);
	int rc, fd;

	snprintf(label, sizeof(label), "ns%u-irq", ns->nsid);
	pnvme_qpair_opts_default(&qo);
	qo.depth = 4;
	qo.flags = PNVME_QPAIR_INTERRUPTS;
	rc = pnvme_qpair_create(ctrl, &qo, &qp);
	if (rc == -ENOTSUP || ns->ms || ns->nlba < nlb) {
		/* (a fabric has no MSI-X; metadata namespaces have their own checks) */
		check(true, label, "skipped: %s", rc ? pnvme_last_error() : "metadata or small ns");
		goto out;
	}
	if (rc || !exp || pnvme_dma_alloc(ctrl, ns->lba_size, 0, (void **)&dma, NULL)) {
		check(false, label, "setup: %s", pnvme_last_error());
		goto out;
	}
	expected(ns->nsid, ns->lba_size, z, nz, 0, nlb, exp);
	fd = pnvme_qpair_event_fd(qp);
	for (uint32_t i = 0; i < nlb && rc == 0; i++) {
		struct sgl_wait w = { 0, 0 };
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double t0 = now_s();

		(void)pnvme_qpair_event_ack(qp);
		memset(dma, 0x5a, ns->lba_size);
		rc = pnvme_read(qp, ns, dma, i, 1, 0, sgl_done, &w);
		pnvme_qpair_flush(qp);
		if (rc == 0 && poll(&p, 1, 2000) == 1)
			woke++;
		while (rc == 0 && !w.done && now_s() - t0 < 30.0)
			if ((rc = pnvme_qpair_poll(qp, 0)) > 0)
				rc = 0;
		if (rc == 0)
			rc = !w.done ? -ETIMEDOUT : w.err;
		if (rc == 0 && memcmp(dma, exp + (size_t)i * ns->lba_size, ns->lba_size))
			bad++;
	}
	check(rc == 0 && woke == nlb && bad == 0, label, "%u one-block reads, the thread asleep "
	      "on the MSI-X eventfd woken by %u of them; %s", nlb, woke,
	      rc ? strerror(-rc) : bad ? "data differs" : "data as written");
out:
	if (qp)
		pnvme_qpair_destroy(qp);
	if (dma)
		pnvme_dma_free(ctrl, dma);
	free(exp);
}

static void run_namespace(struct pnvme_ctrl *ctrl, struct worker *ws, unsigned nt,
			  const struct pnvme_ns *ns)
{
	char label[64];
	printf("VMTEST: ns %u: %" PRIu64 " blocks of %u bytes (%" PRIu64 " MiB), max %u blocks "
	       "(%u bytes) per command, dlfeat 0x%x\n", ns->nsid, ns->nlba, ns->lba_size,
	       ns->nlba * ns->lba_size >> 20, ns->max_lbas, ns->max_xfer, ns->id.dlfeat);
	snprintf(label, sizeof(label), "ns%u-write-all", ns->nsid);
	if (!pass(ws, nt, ns, true, 0x1000 + ns->nsid, label))
		return;

	struct pnvme_qpair *qp = ws[0].qp;
	double t0 = now_s();
	int rc = pnvme_flush_sync(qp, ns);
	snprintf(label, sizeof(label), "ns%u-flush", ns->nsid);
	check(rc == 0, label, "%s (%.3f s)", rc ? pnvme_last_error() : "ok", now_s() - t0);

	snprintf(label, sizeof(label), "ns%u-read-compare-all", ns->nsid);
	pass(ws, nt, ns, false, 0x2000 + ns->nsid, label);

	struct zrange z[4];
	unsigned nz = zero_plan(ns->nlba, z);
	uint8_t *dma = NULL, *exp = malloc(ns->max_xfer);
	if (!exp || pnvme_dma_alloc(ctrl, ns->max_xfer, 0, (void **)&dma, NULL) != 0) {
		check(false, "zero-ranges", "out of memory: %s", pnvme_last_error());
		free(exp);
		return;
	}
	for (unsigned i = 0; i < nz; i++) {
		const struct zrange *r = &z[i];
		snprintf(label, sizeof(label), "ns%u-%s", ns->nsid, r->name);
		if (r->kind == Z_DSM) {
			struct pnvme_dsm_range d = { .cattr = 0, .nlb = r->nlb, .slba = r->slba };
			rc = pnvme_dsm_sync(qp, ns, &d, 1, PNVME_DSM_AD);
		} else {
			rc = pnvme_write_zeroes_sync(qp, ns, r->slba, r->nlb,
						     r->kind == Z_WZ_DEAC ? PNVME_IO_DEAC : 0);
		}
		if (rc) {
			check(false, label, "slba %" PRIu64 " nlb %u: %s", r->slba, r->nlb,
			      pnvme_last_error());
			continue;
		}
		/* the range plus one block either side */
		uint64_t s = r->slba ? r->slba - 1 : 0;
		uint64_t e = r->slba + r->nlb + 1 > ns->nlba ? ns->nlba : r->slba + r->nlb + 1;
		uint64_t bad = 0;
		rc = pnvme_flush_sync(qp, ns);
		if (rc == 0)
			rc = verify_range(qp, ns, dma, exp, z, i + 1, s, e - s, &bad);
		if (rc < 0)
			check(false, label, "read back: %s", pnvme_last_error());
		else if (rc > 0)
			check(false, label, "slba %" PRIu64 " nlb %u: LBA %" PRIu64 " %s", r->slba,
			      r->nlb, bad, in_zero(r, 1, bad) ? "does not read as zeroes"
							   : "(a neighbour) lost its data");
		else
			check(true, label, "slba %" PRIu64 " nlb %u reads as zeroes, neighbours intact",
			      r->slba, r->nlb);
	}
	readv_sgl(ctrl, qp, ns, z, nz);
	cmb_sq(ctrl, ns, z, nz);
	irq_qpair(ctrl, ns, z, nz);
	rc = pnvme_flush_sync(qp, ns);
	snprintf(label, sizeof(label), "ns%u-final-flush", ns->nsid);
	check(rc == 0, label, "%s", rc ? pnvme_last_error() : "ok");
	pnvme_dma_free(ctrl, dma);
	free(exp);
}

/* ------------------------------------------------------------------------ */
/* library log: printed (warnings by default, PNVME_LOG=level for more) and */
/* watched for the bring-up milestones                                      */
/* ------------------------------------------------------------------------ */

static double g_t0;                 /* process start */
static int g_log_print = PNVME_LOG_WARN;
static uint64_t g_ns_vfio_open;     /* ns after g_t0 when the VFIO open finished (0: not yet) */
static uint64_t g_ns_ready;         /* ... when the controller reported ready */
static int g_open_returned;         /* pnvme_ctrl_open() returned */

static uint64_t since_start_ns(void)
{
	uint64_t ns = (uint64_t)((now_s() - g_t0) * 1e9);
	return ns ? ns : 1;
}

static void log_cb(void *arg, enum pnvme_log_level lvl, const char *msg)
{
	static const char *const names[] = { "err", "warn", "notice", "info", "debug" };
	(void)arg;
	if (strncmp(msg, "vfio: ", 6) == 0 && strstr(msg, " open: group "))
		__atomic_store_n(&g_ns_vfio_open, since_start_ns(), __ATOMIC_RELEASE);
	else if (strstr(msg, " ready: NVMe "))
		__atomic_store_n(&g_ns_ready, since_start_ns(), __ATOMIC_RELEASE);
	if ((int)lvl > g_log_print)
		return;
	if (!g_log_defer) {
		printf("    pnvme %s: %s\n", (unsigned)lvl < 5 ? names[lvl] : "?", msg);
		return;
	}
	pthread_mutex_lock(&g_log_lock);
	int n = snprintf(g_logbuf + g_loglen, sizeof(g_logbuf) - g_loglen, "    pnvme %s (%.1f ms): %s\n",
			 (unsigned)lvl < 5 ? names[lvl] : "?", (now_s() - g_t0) * 1e3, msg);
	if (n > 0)
		g_loglen = g_loglen + (size_t)n < sizeof(g_logbuf) ? g_loglen + (size_t)n : g_loglen;
	pthread_mutex_unlock(&g_log_lock);
}

static void log_setup(int default_print)
{
	const char *v = getenv("PNVME_LOG");
	static const char *const names[] = { "err", "warn", "notice", "info", "debug" };
	g_log_print = default_print;
	for (int i = 0; v && i < 5; i++)
		if (!strcasecmp(v, names[i]))
			g_log_print = i;
	pnvme_set_log(log_cb, NULL, PNVME_LOG_DEBUG);
}

/* "VFIO open X ms, controller Y ms" of the last pnvme_ctrl_open() */
static void bringup_phases(char *buf, size_t len, double t_open)
{
	uint64_t v = __atomic_load_n(&g_ns_vfio_open, __ATOMIC_ACQUIRE);
	uint64_t r = __atomic_load_n(&g_ns_ready, __ATOMIC_ACQUIRE);
	double o = t_open - g_t0;
	if (v && r)
		snprintf(buf, len, "VFIO open %.1f ms, controller bring-up %.1f ms",
			 ((double)v * 1e-9 - o) * 1e3, (double)(r - v) * 1e-6);
	else
		snprintf(buf, len, "phases not logged");
}

/* Open (or fail a check named `name`), with the bring-up phases in `phases`. */
static struct pnvme_ctrl *open_ctrl(const char *dev, const char *name, double *secs,
				    char *phases, size_t plen)
{
	struct pnvme_ctrl *ctrl;
	__atomic_store_n(&g_ns_vfio_open, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&g_ns_ready, 0, __ATOMIC_RELEASE);
	double t0 = now_s();
	int rc = pnvme_ctrl_open(dev, NULL, &ctrl);
	*secs = now_s() - t0;
	__atomic_store_n(&g_open_returned, 1, __ATOMIC_RELEASE);
	bringup_phases(phases, plen, t0);
	if (rc) {
		check(false, name, "%s: pnvme_ctrl_open: %s (after %.3f s)", dev, pnvme_last_error(),
		      *secs);
		return NULL;
	}
	return ctrl;
}

/* nt queue pairs (one worker each, fewer if the controller grants fewer), qd slots each. */
static struct worker *setup_workers(struct pnvme_ctrl *ctrl, unsigned *ntp, unsigned qd,
				    uint32_t max_retries)
{
	unsigned nt = *ntp;
	if (nt > pnvme_ctrl_max_io_queues(ctrl))
		nt = pnvme_ctrl_max_io_queues(ctrl);
	if (nt == 0)
		nt = 1;
	struct worker *ws = calloc(nt, sizeof(*ws));
	size_t bufsz = pnvme_ctrl_max_xfer(ctrl) + 4096;
	for (unsigned t = 0; t < nt && ws; t++) {
		struct pnvme_qpair_opts o;
		pnvme_qpair_opts_default(&o);
		o.depth = 64;
		o.max_retries = max_retries;
		ws[t].ctrl = ctrl;
		ws[t].qd = qd;
		int rc = pnvme_qpair_create(ctrl, &o, &ws[t].qp);
		if (rc) {
			check(false, "qpair-create", "queue pair %u: %s", t, pnvme_last_error());
			nt = t;
			break;
		}
		ws[t].expect = malloc(bufsz);
		for (unsigned i = 0; i < qd; i++) {
			ws[t].slots[i].w = &ws[t];
			if (pnvme_dma_alloc(ctrl, bufsz, 0, (void **)&ws[t].slots[i].buf, NULL)) {
				check(false, "dma-alloc", "%s", pnvme_last_error());
				nt = t + 1;
				*ntp = 0;
				return ws;
			}
		}
	}
	*ntp = nt;
	return ws;
}

static void stats_line(struct pnvme_qpair *qp)
{
	struct pnvme_qpair_stats st;
	pnvme_qpair_get_stats(qp, &st);
	printf("VMTEST: qpair %u: submitted %" PRIu64 " completed %" PRIu64 " sq doorbells %"
	       PRIu64 " cq doorbells %" PRIu64 " errors %" PRIu64 " timeouts %" PRIu64
	       " retries %" PRIu64 " reconnects %" PRIu64 "\n",
	       pnvme_qpair_id(qp), st.submitted, st.completed, st.sq_doorbells, st.cq_doorbells,
	       st.errors, st.timeouts, st.retries, st.reconnects);
}

/* Destroy the queue pairs of setup_workers() (all of them: `n` as allocated). */
static void teardown_workers(struct worker *ws, unsigned n, bool stats)
{
	for (unsigned t = 0; ws && t < n; t++) {
		if (!ws[t].qp)
			continue;
		if (stats)
			stats_line(ws[t].qp);
		pnvme_qpair_destroy(ws[t].qp);
		free(ws[t].expect);
		free(ws[t].hits);
	}
	free(ws);
}

/* What `run --prior-...` expects to find before it writes anything. */
struct prior {
	bool image;          /* the image of an earlier `run` (same seed) */
	int gen;             /* else, when >= 0: the first `regions` regions of `stress --gen` */
	unsigned regions;
};

/* Read namespace ns and compare with the prior content; returns a check. */
static void check_prior(struct pnvme_ctrl *ctrl, struct pnvme_qpair *qp, const struct pnvme_ns *ns,
			const struct prior *p, const char *name)
{
	uint8_t *dma = NULL, *exp = malloc(ns->max_xfer);
	if (!exp || pnvme_dma_alloc(ctrl, ns->max_xfer, 0, (void **)&dma, NULL) != 0) {
		check(false, name, "out of memory: %s", pnvme_last_error());
		free(exp);
		return;
	}
	struct zrange z[4];
	unsigned nz = 0;
	uint64_t seed, n;
	const char *what;
	char whatbuf[96];
	if (p->image) {
		nz = zero_plan(ns->nlba, z);
		seed = g_seed;
		n = ns->nlba;
		what = "the image of the previous `vmtest run` (pattern and zeroed ranges)";
	} else {
		uint64_t rl = REGION_BYTES / ns->lba_size;
		seed = stress_seed(g_seed, (unsigned)p->gen);
		n = (uint64_t)p->regions * rl;
		if (n > ns->nlba)
			n = ns->nlba;
		snprintf(whatbuf, sizeof(whatbuf), "the stress pattern of generation %d", p->gen);
		what = whatbuf;
	}
	double t0 = now_s();
	uint64_t bad = 0;
	int rc = n ? verify_range_seed(qp, ns, dma, exp, seed, z, nz, 0, n, &bad) : 0;
	if (rc < 0)
		check(false, name, "ns %u: read failed: %s", ns->nsid, pnvme_last_error());
	else if (rc > 0)
		check(false, name, "ns %u: LBA %" PRIu64 " does not hold %s", ns->nsid, bad, what);
	else
		check(true, name, "ns %u: LBAs 0..%" PRIu64 " (%" PRIu64 " MiB%s) hold %s (%.2f s)",
		      ns->nsid, n ? n - 1 : 0, n * ns->lba_size >> 20,
		      p->image ? "" : ", the regions the killed run had verified", what,
		      now_s() - t0);
	pnvme_dma_free(ctrl, dma);
	free(exp);
}

static int cmd_run(const char *dev, unsigned nt, unsigned qd, const char *tag,
		   const struct prior *prior)
{
	struct pnvme_ctrl *ctrl;
	double t0 = now_s(), t_open;
	char phases[128];
	int rc;
	log_setup(PNVME_LOG_WARN);
	ctrl = open_ctrl(dev, "bring-up", &t_open, phases, sizeof(phases));
	if (!ctrl) {
		if (tag)
			check(false, tag, "no bring-up: %s", pnvme_last_error());
		return 1;
	}
	const struct pnvme_id_ctrl *id = pnvme_ctrl_id(ctrl);
	check(true, "bring-up", "%s in %.3f s (%s): vid 0x%04x mn '%.40s' sn '%.20s' fr '%.8s' "
	      "mdts %u (max transfer %u bytes), %u namespaces, %u I/O queues granted",
	      dev, t_open, phases, id->vid, id->mn, id->sn, id->fr, id->mdts,
	      pnvme_ctrl_max_xfer(ctrl), pnvme_ctrl_nr_ns(ctrl), pnvme_ctrl_max_io_queues(ctrl));
	check(id->vid != 0 && id->vid != 0xffff && pnvme_ctrl_nr_ns(ctrl) > 0, "identify",
	      "vid 0x%04x, nn %u, active namespaces %u", id->vid, id->nn, pnvme_ctrl_nr_ns(ctrl));

	unsigned nalloc = nt;
	struct worker *ws = setup_workers(ctrl, &nt, qd, 0);
	if (ws)
		nalloc = nt ? nt : nalloc;
	uint64_t bytes = 0;
	if (ws && nt > 0) {
		printf("VMTEST: %u queue pairs (ids", nt);
		for (unsigned t = 0; t < nt; t++)
			printf(" %u", pnvme_qpair_id(ws[t].qp));
		printf("), %u commands in flight each\n", qd);
		if (prior && (prior->image || prior->gen >= 0)) {
			char name[80];
			snprintf(name, sizeof(name), "%s-prior-data", tag ? tag : "run");
			check_prior(ctrl, ws[0].qp, pnvme_ctrl_ns_at(ctrl, 0), prior, name);
		}
		for (uint32_t i = 0; i < pnvme_ctrl_nr_ns(ctrl); i++) {
			const struct pnvme_ns *ns = pnvme_ctrl_ns_at(ctrl, i);
			run_namespace(ctrl, ws, nt, ns);
			bytes += ns->nlba * ns->lba_size;
		}
	}
	teardown_workers(ws, nalloc, true);
	rc = pnvme_ctrl_close(ctrl);
	check(rc == 0, "shutdown", "%s", rc ? pnvme_last_error() : "CC.SHN normal, SHST complete");
	printf("VMTEST: run %s finished in %.2f s, %d failed checks\n", dev, now_s() - t0, fails);
	if (tag)
		check(fails == 0, tag, "%s: bring-up in %.3f s (%s), identify, %" PRIu64 " MiB "
		      "written, read back and compared, zero ranges, clean shutdown; %.2f s in all%s",
		      dev, t_open, phases, bytes >> 20, now_s() - t0,
		      fails ? " (see the FAIL lines above)" : "");
	return fails ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* stress: verified I/O region by region until killed                       */
/* ------------------------------------------------------------------------ */

static unsigned g_die_ms;
static bool g_unfenced;

/* --die-in-bringup: SIGKILL this process `g_die_ms` after the VFIO open. */
static void *killer_main(void *arg)
{
	(void)arg;
	double limit = now_s() + 30;
	while (!__atomic_load_n(&g_ns_vfio_open, __ATOMIC_ACQUIRE) &&
	       !__atomic_load_n(&g_open_returned, __ATOMIC_ACQUIRE) && now_s() < limit)
		usleep(100);
	uint64_t v = __atomic_load_n(&g_ns_vfio_open, __ATOMIC_ACQUIRE);
	if (v) {
		double until = (double)v * 1e-9 + g_t0 + g_die_ms * 1e-3;
		while (now_s() < until)
			;
	}
	bool ready = __atomic_load_n(&g_ns_ready, __ATOMIC_ACQUIRE) != 0;
	bool returned = __atomic_load_n(&g_open_returned, __ATOMIC_ACQUIRE) != 0;
	printf("VMTEST: stress: SIGKILL to myself %.1f ms after the VFIO open: %s\n",
	       v ? (now_s() - g_t0 - (double)v * 1e-9) * 1e3 : -1.0,
	       returned ? "pnvme_ctrl_open had returned (too late)"
	       : ready ? "controller ready, pnvme_ctrl_open not yet returned"
		       : "during controller bring-up");
	fflush(stdout);
	kill(getpid(), SIGKILL);
	return NULL;
}

static int cmd_stress(const char *dev, unsigned nt, unsigned qd, unsigned gen, unsigned passes)
{
	double t_open;
	char phases[128];
	log_setup(PNVME_LOG_WARN);
	uint64_t run_seed = g_seed;
	g_seed = stress_seed(run_seed, gen);
	if (g_die_ms) {
		pthread_t k;
		pthread_create(&k, NULL, killer_main, NULL);
	}
	struct pnvme_ctrl *ctrl = open_ctrl(dev, "stress", &t_open, phases, sizeof(phases));
	if (!ctrl)
		return 1;
	printf("VMTEST: stress: %s up in %.3f s (%s), pid %d, generation %u\n", dev, t_open, phases,
	       (int)getpid(), gen);
	if (g_die_ms) {
		/* meant to die during the bring-up: write nothing, wait for the SIGKILL */
		for (;;)
			pause();
	}
	unsigned nalloc = nt;
	struct worker *ws = setup_workers(ctrl, &nt, qd, 0);
	if (ws)
		nalloc = nt ? nt : nalloc;
	if (!ws || nt == 0) {
		teardown_workers(ws, nalloc, false);
		pnvme_ctrl_close(ctrl);
		return 1;
	}
	const struct pnvme_ns *ns = pnvme_ctrl_ns_at(ctrl, 0);
	uint64_t rl = REGION_BYTES / ns->lba_size;
	unsigned nreg = (unsigned)((ns->nlba + rl - 1) / rl);
	printf("VMTEST: stress: I/O running: ns %u, %u regions of %u KiB, %u queue pairs x %u "
	       "commands in flight\n", ns->nsid, nreg, REGION_BYTES >> 10, nt, qd);
	int bad = 0;
	for (unsigned p = 1; !bad && (passes == 0 || p <= passes); p++) {
		double tp = now_s();
		uint64_t ios = 0;
		for (unsigned r = 0; r < nreg && !bad; r++) {
			uint64_t s = r * rl, e = s + rl > ns->nlba ? ns->nlba : s + rl;
			size_t count;
			struct extent *ext = plan_range(ns, ((uint64_t)gen << 32) ^ ((uint64_t)p << 16) ^ r,
							s, e, &count);
			struct pass_result wr, rd;
			memset(&rd, 0, sizeof(rd));
			if (!ext) {
				check(false, "stress", "out of memory");
				bad = 1;
				break;
			}
			run_workers(ws, nt, ns, ext, count, true, &wr);
			if (wr.err == 0)
				run_workers(ws, nt, ns, ext, count, false, &rd);
			free(ext);
			if (wr.err || rd.err || rd.mismatches) {
				check(false, "stress", "generation %u pass %u region %u: %s: %s", gen, p, r,
				      wr.err ? "write" : "read back", wr.err ? wr.msg : rd.msg);
				bad = 1;
				break;
			}
			ios += wr.ios + rd.ios;
			if (p == 1)
				printf("VMTEST: stress: verified-through gen %u regions %u\n", gen, r + 1);
		}
		if (!bad)
			printf("VMTEST: stress: gen %u pass %u complete: %u regions (%" PRIu64 " MiB) "
			       "written and verified, %" PRIu64 " commands in %.2f s\n", gen, p, nreg,
			       ns->nlba * ns->lba_size >> 20, ios, now_s() - tp);
	}
	teardown_workers(ws, nalloc, true);
	int rc = pnvme_ctrl_close(ctrl);
	check(!bad && rc == 0, "stress", "%s: %u passes, shutdown %s", dev, passes,
	      rc ? pnvme_last_error() : "clean");
	return bad || rc ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* reset: pnvme_ctrl_reset() with I/O outstanding on two queue pairs        */
/* ------------------------------------------------------------------------ */

struct rreq {
	bool write, unsent, flush;
	unsigned q;
	uint64_t slba;
	uint32_t nlb;
	uint8_t *buf;
	int count, err;
};

static void rreq_done(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct rreq *r = arg;
	(void)cqe;
	r->count++;
	if (err && !r->err)
		r->err = err;
}

/* Reads [slba, slba+nlb) of `ns` (sync) and compares with `seed`'s pattern. */
static int verify_pattern(struct pnvme_qpair *qp, const struct pnvme_ns *ns, uint8_t *dma,
			  uint8_t *exp, uint64_t seed, uint64_t slba, uint64_t nlb, uint64_t *bad)
{
	return verify_range_seed(qp, ns, dma, exp, seed, NULL, 0, slba, nlb, bad);
}

/*
 * Deterministic: on each of two queue pairs (max_retries 3), 24 requests
 * (16 writes, 8 reads of pre-written blocks) are posted and the doorbell rung,
 * and 4 more writes posted without ringing it; nobody polls. Queue pair 2 got
 * its doorbell 20 ms earlier (the device has likely completed those: CQEs
 * waiting in the CQ), queue pair 1 just before the reset (likely in flight).
 * Then pnvme_ctrl_reset(), then poll until every request completed.
 */
static void reset_paused(const char *dev)
{
	const char *name = "ctrl-reset";
	double t_open;
	char phases[128];
	struct pnvme_ctrl *ctrl = open_ctrl(dev, name, &t_open, phases, sizeof(phases));
	if (!ctrl)
		return;
	const struct pnvme_ns *ns = pnvme_ctrl_ns_at(ctrl, 0);
	enum { NQ = 2, NDB = 24, NUN = 4, NPER = NDB + NUN };
	struct pnvme_qpair *qp[NQ] = { NULL, NULL };
	struct rreq req[NQ * NPER];
	uint32_t nlb = (512u << 10) / ns->lba_size;
	if (nlb > ns->max_lbas)
		nlb = ns->max_lbas;
	while (nlb > 1 && (uint64_t)NQ * NPER * nlb > ns->nlba)
		nlb /= 2;
	if (nlb == 0)
		nlb = 1;
	size_t len = (size_t)nlb * ns->lba_size;
	uint8_t *vbuf = NULL, *exp = malloc(ns->max_xfer);
	char err[256] = "";
	uint64_t seed = g_seed;
	int rc;

	memset(req, 0, sizeof(req));
	if ((uint64_t)NQ * NPER * nlb > ns->nlba) {
		check(false, name, "namespace too small");
		goto out;
	}
	for (unsigned q = 0; q < NQ; q++) {
		struct pnvme_qpair_opts o;
		pnvme_qpair_opts_default(&o);
		o.depth = 64;
		o.max_retries = 3;
		if (pnvme_qpair_create(ctrl, &o, &qp[q])) {
			snprintf(err, sizeof(err), "qpair create: %s", pnvme_last_error());
			goto out;
		}
	}
	if (!exp || pnvme_dma_alloc(ctrl, ns->max_xfer, 0, (void **)&vbuf, NULL)) {
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	/* plan; pre-write the blocks the reads will fetch */
	for (unsigned q = 0; q < NQ; q++)
		for (unsigned i = 0; i < NPER; i++) {
			struct rreq *r = &req[q * NPER + i];
			r->q = q;
			r->unsent = i >= NDB;
			r->flush = i == NDB - 1;   /* a Flush: slow in QEMU (fdatasync), likely in flight */
			r->write = r->unsent || (i % 3 != 2 && !r->flush);
			r->slba = (uint64_t)(q * NPER + i) * nlb;
			r->nlb = nlb;
			if (pnvme_dma_alloc(ctrl, len, 0, (void **)&r->buf, NULL)) {
				snprintf(err, sizeof(err), "out of DMA memory");
				goto out;
			}
			if (r->flush) {
				continue;
			} else if (r->write) {
				pattern_fill_seed(seed, ns->nsid, r->slba * ns->lba_size, r->buf, len);
			} else {
				pattern_fill_seed(seed, ns->nsid, r->slba * ns->lba_size, r->buf, len);
				rc = pnvme_write_sync(qp[0], ns, r->buf, r->slba, r->nlb, 0);
				if (rc) {
					snprintf(err, sizeof(err), "pre-write: %s", pnvme_last_error());
					goto out;
				}
				memset(r->buf, 0xa5, len);
			}
		}
	if ((rc = pnvme_flush_sync(qp[0], ns))) {
		snprintf(err, sizeof(err), "flush: %s", pnvme_last_error());
		goto out;
	}
	struct pnvme_qpair_stats st0[NQ];
	for (unsigned q = 0; q < NQ; q++)
		pnvme_qpair_get_stats(qp[q], &st0[q]);
	/* qp 2 first, rung 20 ms before the reset; qp 1 rung right before it */
	for (int q = NQ - 1; q >= 0; q--) {
		for (unsigned i = 0; i < NDB; i++) {
			struct rreq *r = &req[q * NPER + i];
			rc = r->flush ? pnvme_flush(qp[q], ns, rreq_done, r)
			   : r->write ? pnvme_write(qp[q], ns, r->buf, r->slba, r->nlb, 0, rreq_done, r)
				      : pnvme_read(qp[q], ns, r->buf, r->slba, r->nlb, 0, rreq_done, r);
			if (rc) {
				snprintf(err, sizeof(err), "submit: %s", pnvme_last_error());
				goto out;
			}
		}
		pnvme_qpair_flush(qp[q]);
		if (q == NQ - 1) {
			usleep(20000);   /* qp 2: completed by now, CQEs waiting in its CQ */
			continue;
		}
		/*
		 * qp 1: reset as soon as its first CQE shows (peeking, not reaping).
		 * QEMU fetches all entries up to the doorbell in one go, so by then
		 * all 24 were fetched and most are still being written. (Resetting
		 * with entries rung but not yet fetched crashes QEMU 7.2: see
		 * reset_live.)
		 */
		double until = now_s() + 5;
		while (!pnvme_qpair_cq_ready(qp[q]) && now_s() < until)
			;
	}
	for (unsigned q = 0; q < NQ; q++)
		for (unsigned i = NDB; i < NPER; i++) {
			struct rreq *r = &req[q * NPER + i];
			if (pnvme_write(qp[q], ns, r->buf, r->slba, r->nlb, 0, rreq_done, r)) {
				snprintf(err, sizeof(err), "submit: %s", pnvme_last_error());
				goto out;
			}
		}
	uint32_t out_before[NQ];
	for (unsigned q = 0; q < NQ; q++)
		out_before[q] = pnvme_qpair_outstanding(qp[q]);
	double tr = now_s();
	rc = pnvme_ctrl_reset(ctrl);
	double reset_ms = (now_s() - tr) * 1e3;
	if (rc) {
		snprintf(err, sizeof(err), "pnvme_ctrl_reset: %s", pnvme_last_error());
		goto out;
	}
	/* poll until all complete, then 50 ms more to catch a second completion */
	double deadline = now_s() + 20, settle = 0, done_ms = -1;
	for (;;) {
		unsigned pending = 0;
		for (unsigned q = 0; q < NQ; q++) {
			rc = pnvme_qpair_poll(qp[q], 0);
			if (rc < 0 && !err[0])
				snprintf(err, sizeof(err), "poll qp %u after reset: %s",
					 pnvme_qpair_id(qp[q]), pnvme_last_error());
		}
		for (unsigned i = 0; i < NQ * NPER; i++)
			pending += req[i].count == 0;
		if (pending == 0 && settle == 0) {
			done_ms = (now_s() - tr) * 1e3;
			settle = now_s() + 0.05;
		}
		if ((settle && now_s() > settle) || now_s() > deadline || err[0])
			break;
	}
	unsigned never = 0, twice = 0, failed = 0, rd_bad = 0, wr_bad = 0;
	for (unsigned i = 0; i < NQ * NPER; i++) {
		struct rreq *r = &req[i];
		never += r->count == 0;
		twice += r->count > 1;
		if (r->count && r->err) {
			failed++;
			if (!err[0])
				snprintf(err, sizeof(err), "qp %u %s slba %" PRIu64 ": %s",
					 pnvme_qpair_id(qp[r->q]),
					 r->flush ? "flush" : r->write ? "write" : "read",
					 r->slba, strerror(-r->err));
		}
		if (!r->write && !r->flush && r->count && !r->err) {
			pattern_fill_seed(seed, ns->nsid, r->slba * ns->lba_size, exp, len);
			rd_bad += memcmp(exp, r->buf, len) != 0;
		}
	}
	/* the written blocks, read back now */
	for (unsigned i = 0; i < NQ * NPER; i++) {
		uint64_t badlba;
		if (!req[i].write)
			continue;
		rc = verify_pattern(qp[i % 2], ns, vbuf, exp, seed, req[i].slba, req[i].nlb, &badlba);
		if (rc < 0 && !err[0])
			snprintf(err, sizeof(err), "read back: %s", pnvme_last_error());
		wr_bad += rc != 0;
	}
	struct pnvme_qpair_stats st[NQ];
	for (unsigned q = 0; q < NQ; q++) {
		pnvme_qpair_get_stats(qp[q], &st[q]);
		stats_line(qp[q]);
	}
	uint32_t resets = pnvme_ctrl_resets(ctrl);
	bool ok = !err[0] && never == 0 && twice == 0 && failed == 0 && rd_bad == 0 &&
		  wr_bad == 0 && resets == 1 && st[0].reconnects == 1 && st[1].reconnects == 1 &&
		  !pnvme_ctrl_is_dead(ctrl) && out_before[0] == NPER && out_before[1] == NPER;
	check(ok, name, "%s: outstanding at the reset: qp %u %u, qp %u %u (%u doorbelled: 15 writes "
	      "+ 8 reads + a flush, and %u writes not, %u KiB each; qp %u rung 20 ms before it, "
	      "qp 1 at its first CQE); reset %.1f ms, all complete %.1f ms after it; "
	      "%u requests: never completed %u, twice %u, failed %u; reads wrong %u, written "
	      "blocks wrong on read-back %u; resets %u; qp %u: reconnects %" PRIu64 " retries %"
	      PRIu64 ", qp %u: reconnects %" PRIu64 " retries %" PRIu64 "%s%s",
	      dev, pnvme_qpair_id(qp[0]), out_before[0], pnvme_qpair_id(qp[1]), out_before[1],
	      (unsigned)NDB, (unsigned)NUN, (unsigned)(len >> 10), pnvme_qpair_id(qp[1]), reset_ms,
	      done_ms, (unsigned)(NQ * NPER), never, twice, failed, rd_bad, wr_bad, resets,
	      pnvme_qpair_id(qp[0]), st[0].reconnects, st[0].retries - st0[0].retries,
	      pnvme_qpair_id(qp[1]), st[1].reconnects, st[1].retries - st0[1].retries,
	      err[0] ? "; " : "", err);
	err[0] = '\0';
out:
	if (err[0])
		check(false, name, "%s: %s", dev, err);
	for (unsigned q = 0; q < NQ; q++)
		pnvme_qpair_destroy(qp[q]);
	for (unsigned i = 0; i < NQ * NPER; i++)
		pnvme_dma_free(ctrl, req[i].buf);
	pnvme_dma_free(ctrl, vbuf);
	free(exp);
	rc = pnvme_ctrl_close(ctrl);
	check(rc == 0, "shutdown", "%s after %s: %s", dev, name,
	      rc ? pnvme_last_error() : "CC.SHN normal, SHST complete");
}

/*
 * Live: two threads keep 16 writes (up to 512 KiB) each in flight on their own
 * queue pair (max_retries 3), polling all the time, cycling over their half
 * of the drive (the same data every lap) until they have seen the reset and
 * done LIVE_AFTER more; the main thread calls pnvme_ctrl_reset() once both
 * have completed LIVE_BEFORE writes (then holds new submissions briefly, see
 * below). Every submission has its own sequence number for the exactly-once
 * count. Requires I/O outstanding at the reset (the Flushes; on both queue
 * pairs is ctrl-reset's deterministic job: host fdatasyncs of the image
 * serialise, so the second Flush often has nothing left to sync).
 */
#define LIVE_QD      16
#define LIVE_BEFORE  32
#define LIVE_AFTER   96
#define LIVE_MAX_SEQ 8192

struct lworker;

struct lslot {
	struct lworker *w;
	uint8_t *buf;
	uint32_t seq;
	bool busy;
};

struct lworker {
	pthread_t thread;
	struct pnvme_qpair *qp;
	const struct pnvme_ns *ns;
	unsigned id, nt;
	uint32_t nlb;
	uint64_t per_lap;             /* extents in the span */
	struct lslot slots[LIVE_QD];
	uint8_t *hits;                /* per sequence number */
	uint32_t next_seq;
	uint64_t done, at_reset_seen; /* done: read by the main thread */
	uint32_t outstanding;         /* published after each poll */
	const int *reset_done;
	const int *hold;              /* set: post nothing new (keep polling) */
	int quiet;                    /* set by the worker: holding, doorbell written */
	uint32_t batch_first;         /* first sequence number of the last doorbell batch */
	int fetched;                  /* holding, and a write of that batch completed */
	bool final_posted;            /* the write + Flush posted when the hold began */
	int flush_hits, flush_err;
	int err;
	char msg[256];
};

static void live_done(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct lslot *s = arg;
	struct lworker *w = s->w;
	(void)cqe;
	if (w->hits[s->seq] < 255)
		w->hits[s->seq]++;
	if (!s->busy) {
		if (!w->err)
			snprintf(w->msg, sizeof(w->msg), "second completion of write #%u", s->seq);
		w->err = w->err ? w->err : -EALREADY;
		return;
	}
	s->busy = false;
	if (err && !w->err) {
		w->err = err;
		snprintf(w->msg, sizeof(w->msg), "write #%u: %s", s->seq, strerror(-err));
	}
	if (w->quiet && s->seq >= w->batch_first)
		__atomic_store_n(&w->fetched, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&w->done, w->done + 1, __ATOMIC_RELAXED);
}

static void live_flush_done(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct lworker *w = arg;
	(void)cqe;
	w->flush_hits++;
	if (err && !w->flush_err)
		w->flush_err = err;
}

static uint64_t live_slba(const struct lworker *w, uint32_t seq)
{
	return (((uint64_t)seq * w->nt + w->id) % w->per_lap) * w->nlb;
}

static void *live_main(void *arg)
{
	struct lworker *w = arg;
	size_t len = (size_t)w->nlb * w->ns->lba_size;
	bool seen = false;
	uint32_t polled_seq = 0;      /* next_seq at the previous poll */
	for (;;) {
		if (!seen && __atomic_load_n(w->reset_done, __ATOMIC_ACQUIRE)) {
			seen = true;
			w->at_reset_seen = w->done;
		}
		bool stop = w->err || w->next_seq >= LIVE_MAX_SEQ ||
			    (seen && w->done >= w->at_reset_seen + LIVE_AFTER);
		bool hold = !seen && __atomic_load_n(w->hold, __ATOMIC_ACQUIRE);
		unsigned busy = 0;
		for (unsigned i = 0; i < LIVE_QD; i++) {
			struct lslot *s = &w->slots[i];
			/* holding: one last write, then a Flush behind it, in one batch */
			bool final = hold && !w->final_posted;
			if (!s->busy && !stop && (!hold || final)) {
				uint64_t slba = live_slba(w, w->next_seq);
				pattern_fill(w->ns->nsid, slba * w->ns->lba_size, s->buf, len);
				s->seq = w->next_seq;
				s->busy = true;
				int rc = pnvme_write(w->qp, w->ns, s->buf, slba, w->nlb, 0, live_done, s);
				if (rc == -EAGAIN) {
					s->busy = false;
				} else if (rc) {
					s->busy = false;
					w->err = rc;
					snprintf(w->msg, sizeof(w->msg), "submit: %s", pnvme_last_error());
				} else {
					w->next_seq++;
					if (final) {
						rc = pnvme_flush(w->qp, w->ns, live_flush_done, w);
						if (rc && !w->err) {
							w->err = rc;
							snprintf(w->msg, sizeof(w->msg), "flush: %s",
								 pnvme_last_error());
						}
						w->final_posted = true;
					}
				}
			}
			busy += s->busy;
		}
		busy += w->final_posted && w->flush_hits == 0;
		if (busy == 0 && stop)
			break;
		/* the poll rings the doorbell for [polled_seq, next_seq) */
		if (w->next_seq != polled_seq)
			w->batch_first = polled_seq;
		polled_seq = w->next_seq;
		if (hold && w->final_posted && !w->quiet)
			w->quiet = 1;   /* the poll below rings for everything posted */
		int rc = pnvme_qpair_poll(w->qp, 0);
		__atomic_store_n(&w->outstanding, pnvme_qpair_outstanding(w->qp), __ATOMIC_RELAXED);
		if (rc < 0) {
			if (!w->err) {
				w->err = rc;
				snprintf(w->msg, sizeof(w->msg), "poll: %s", pnvme_last_error());
			}
			break;
		}
	}
	return NULL;
}

static void reset_live(const char *dev)
{
	const char *name = "ctrl-reset-live";
	double t_open;
	char phases[128];
	struct pnvme_ctrl *ctrl = open_ctrl(dev, name, &t_open, phases, sizeof(phases));
	if (!ctrl)
		return;
	const struct pnvme_ns *ns = pnvme_ctrl_ns_at(ctrl, 0);
	enum { NT = 2 };
	struct lworker w[NT];
	int reset_done = 0, hold = 0, rc = 0;
	char err[300] = "";
	memset(w, 0, sizeof(w));
	uint32_t nlb = (512u << 10) / ns->lba_size ? (512u << 10) / ns->lba_size : 1;
	if (nlb > ns->max_lbas)
		nlb = ns->max_lbas;
	uint64_t span = ns->nlba < (32ull << 20) / ns->lba_size ? ns->nlba
								 : (32ull << 20) / ns->lba_size;
	uint64_t per_lap = span / nlb;
	for (unsigned t = 0; t < NT && !err[0]; t++) {
		struct pnvme_qpair_opts o;
		pnvme_qpair_opts_default(&o);
		o.depth = 64;
		o.max_retries = 3;
		w[t].id = t;
		w[t].nt = NT;
		w[t].ns = ns;
		w[t].nlb = nlb;
		w[t].per_lap = per_lap;
		w[t].reset_done = &reset_done;
		w[t].hold = &hold;
		w[t].hits = calloc(LIVE_MAX_SEQ, 1);
		if (pnvme_qpair_create(ctrl, &o, &w[t].qp) || !w[t].hits) {
			snprintf(err, sizeof(err), "queue pair %u: %s", t, pnvme_last_error());
			break;
		}
		for (unsigned i = 0; i < LIVE_QD; i++) {
			w[t].slots[i].w = &w[t];
			if (pnvme_dma_alloc(ctrl, (size_t)nlb * ns->lba_size, 0,
					    (void **)&w[t].slots[i].buf, NULL)) {
				snprintf(err, sizeof(err), "out of DMA memory");
				break;
			}
		}
	}
	if (err[0])
		goto out;
	for (unsigned t = 0; t < NT; t++)
		pthread_create(&w[t].thread, NULL, live_main, &w[t]);
	/*
	 * Wait until both have done LIVE_BEFORE writes and have some outstanding,
	 * then reset. Sleep meanwhile, at real-time priority so that the wake-up
	 * is not held back by the two busy-polling workers on two vCPUs.
	 */
	struct sched_param sp = { .sched_priority = 1 };
	int fifo = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
	uint64_t done_at[NT];
	uint32_t out_at[NT];
	double limit = now_s() + 30;
	for (;;) {
		bool ready = true;
		for (unsigned t = 0; t < NT; t++) {
			done_at[t] = __atomic_load_n(&w[t].done, __ATOMIC_RELAXED);
			out_at[t] = __atomic_load_n(&w[t].outstanding, __ATOMIC_RELAXED);
			ready &= done_at[t] >= LIVE_BEFORE && out_at[t] > 0;
		}
		if (ready || now_s() > limit)
			break;
		usleep(200);
	}
	if (!g_unfenced) {
		/*
		 * QEMU 7.2's NVMe model frees an SQ under a write it fetched during
		 * the CC.EN=0 drain (use-after-free, QEMU crashes in
		 * nvme_rw_complete_cb) when an SQ doorbell it has not yet acted on
		 * meets CC.EN=0, and pnvme does not hold its queue pairs' doorbells
		 * during pnvme_ctrl_reset() itself. So the workers post nothing new
		 * (they keep polling) from just before the reset until it returned.
		 * Each one's last batch is a write and a Flush; the reset comes once
		 * that write completed: QEMU fetched the whole batch in one go, and
		 * the Flush (an fdatasync of the image on the host) is likely still
		 * running. `--unfenced` leaves them submitting throughout.
		 */
		__atomic_store_n(&hold, 1, __ATOMIC_RELEASE);
		double until = now_s() + 5;
		for (unsigned t = 0; t < NT; t++)
			while (!__atomic_load_n(&w[t].fetched, __ATOMIC_ACQUIRE) && now_s() < until)
				usleep(50);
		for (unsigned t = 0; t < NT; t++) {
			done_at[t] = __atomic_load_n(&w[t].done, __ATOMIC_RELAXED);
			out_at[t] = __atomic_load_n(&w[t].outstanding, __ATOMIC_RELAXED);
		}
	}
	double tr = now_s();
	rc = pnvme_ctrl_reset(ctrl);
	double reset_ms = (now_s() - tr) * 1e3;
	__atomic_store_n(&reset_done, 1, __ATOMIC_RELEASE);
	sp.sched_priority = 0;
	if (fifo == 0)
		pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
	for (unsigned t = 0; t < NT; t++)
		pthread_join(w[t].thread, NULL);
	double all_ms = (now_s() - tr) * 1e3;
	unsigned never = 0, twice = 0;
	uint32_t total = 0;
	for (unsigned t = 0; t < NT; t++) {
		for (uint32_t q = 0; q < w[t].next_seq; q++) {
			never += w[t].hits[q] == 0;
			twice += w[t].hits[q] > 1;
		}
		total += w[t].next_seq;
		if (!g_unfenced && (w[t].flush_hits != 1 || w[t].flush_err) && !err[0])
			snprintf(err, sizeof(err), "queue pair %u: the Flush completed %d times (%s)",
				 pnvme_qpair_id(w[t].qp), w[t].flush_hits,
				 w[t].flush_err ? strerror(-w[t].flush_err) : "ok");
		if (w[t].err && !err[0])
			snprintf(err, sizeof(err), "queue pair %u: %s", pnvme_qpair_id(w[t].qp),
				 w[t].msg);
	}
	/* read the span back and compare */
	uint8_t *vbuf = NULL, *exp = malloc(ns->max_xfer);
	uint64_t bad = 0;
	int vr = -ENOMEM;
	if (exp && pnvme_dma_alloc(ctrl, ns->max_xfer, 0, (void **)&vbuf, NULL) == 0)
		vr = verify_pattern(w[0].qp, ns, vbuf, exp, g_seed, 0, per_lap * nlb, &bad);
	if (vr < 0 && !err[0])
		snprintf(err, sizeof(err), "read back: %s", pnvme_last_error());
	pnvme_dma_free(ctrl, vbuf);
	free(exp);
	struct pnvme_qpair_stats st[NT];
	for (unsigned t = 0; t < NT; t++) {
		pnvme_qpair_get_stats(w[t].qp, &st[t]);
		stats_line(w[t].qp);
	}
	uint32_t resets = pnvme_ctrl_resets(ctrl);
	bool ok = rc == 0 && !err[0] && never == 0 && twice == 0 && vr == 0 && resets == 1 &&
		  st[0].reconnects == 1 && st[1].reconnects == 1 && out_at[0] + out_at[1] > 0 &&
		  !pnvme_ctrl_is_dead(ctrl);
	check(ok, name, "%s: writes of %u KiB over the first %" PRIu64 " MiB on 2 queue pairs, %u in "
	      "flight each, polled by their threads throughout%s; reset from the main thread%s after "
	      "%" PRIu64 "/%" PRIu64 " completions with %u/%u outstanding (rc %d, %.1f ms), %u more "
	      "each after it, all done %.1f ms after it; %u writes: never completed %u, twice %u; "
	      "read back: %s; resets %u; reconnects %" PRIu64 "/%" PRIu64 ", retries %" PRIu64 "/%"
	      PRIu64 "%s%s",
	      dev, (unsigned)(nlb * ns->lba_size >> 10), per_lap * nlb * ns->lba_size >> 20,
	      (unsigned)LIVE_QD, g_unfenced ? ", submitting throughout (--unfenced)"
					    : ", the last batch before the reset a write and a Flush (the "
					      "reset once the write completed: both fetched by the device, "
					      "the Flush likely still running), none after until it returned",
	      fifo == 0 ? " (SCHED_FIFO while waiting)" : "", done_at[0],
	      done_at[1], out_at[0], out_at[1], rc, reset_ms, (unsigned)LIVE_AFTER, all_ms, total,
	      never, twice, vr == 0 ? "identical" : vr > 0 ? "MISMATCH" : "failed", resets,
	      st[0].reconnects, st[1].reconnects, st[0].retries, st[1].retries,
	      err[0] ? "; " : "", err);
	err[0] = '\0';
out:
	if (err[0])
		check(false, name, "%s: %s", dev, err);
	for (unsigned t = 0; t < NT; t++) {
		for (unsigned i = 0; i < LIVE_QD; i++)
			pnvme_dma_free(ctrl, w[t].slots[i].buf);
		pnvme_qpair_destroy(w[t].qp);
		free(w[t].hits);
	}
	rc = pnvme_ctrl_close(ctrl);
	check(rc == 0, "shutdown", "%s after %s: %s", dev, name,
	      rc ? pnvme_last_error() : "CC.SHN normal, SHST complete");
}

static int cmd_reset(const char *dev)
{
	log_setup(PNVME_LOG_NOTICE);
	g_log_defer = true;
	g_seed = reset_seed(g_seed);
	reset_paused(dev);
	reset_live(dev);
	return fails ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* regs: CC and CSTS through sysfs resource0 (no driver use; after a kill)  */
/* ------------------------------------------------------------------------ */

static int cmd_regs(const char *bdf)
{
	char path[256];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", bdf);
	int fd = open(path, O_RDONLY | O_SYNC);
	if (fd < 0) {
		printf("VMTEST: regs %s: %s: %s\n", bdf, path, strerror(errno));
		return 1;
	}
	volatile uint32_t *bar = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (bar == MAP_FAILED) {
		printf("VMTEST: regs %s: mmap %s: %s\n", bdf, path, strerror(errno));
		return 1;
	}
	uint32_t cc = bar[PNVME_REG_CC / 4], csts = bar[PNVME_REG_CSTS / 4];
	uint32_t aqa = bar[PNVME_REG_AQA / 4];
	printf("VMTEST: regs %s: CC 0x%08x (EN %u SHN %u) CSTS 0x%08x (RDY %u CFS %u SHST %u) "
	       "AQA 0x%08x\n", bdf, cc, cc & 1, (cc >> 14) & 3, csts, csts & 1, (csts >> 1) & 1,
	       (csts >> 2) & 3, aqa);
	munmap((void *)bar, 4096);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* expect / check / hold                                                    */
/* ------------------------------------------------------------------------ */

static int cmd_expect(uint32_t nsid, uint32_t lba_size, uint64_t nlba, const char *out,
		      const char *cmp)
{
	struct zrange z[4];
	unsigned nz = zero_plan(nlba, z);
	const uint32_t chunk = 256;
	uint8_t *buf = malloc((size_t)chunk * lba_size), *got = malloc((size_t)chunk * lba_size);
	int fd = -1;
	if (!buf || !got)
		return 1;
	if (out) {
		fd = strcmp(out, "-") ? open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644) : 1;
	} else if (cmp) {
		fd = open(cmp, O_RDONLY);
	}
	if (fd < 0) {
		fprintf(stderr, "vmtest: %s: %s\n", out ? out : cmp, strerror(errno));
		return 1;
	}
	for (uint64_t lba = 0; lba < nlba; lba += chunk) {
		uint32_t n = (uint32_t)(nlba - lba < chunk ? nlba - lba : chunk);
		size_t len = (size_t)n * lba_size;
		expected(nsid, lba_size, z, nz, lba, n, buf);
		if (out) {
			if (write(fd, buf, len) != (ssize_t)len) {
				fprintf(stderr, "vmtest: write %s: %s\n", out, strerror(errno));
				return 1;
			}
			continue;
		}
		ssize_t r = pread(fd, got, len, (off_t)(lba * lba_size));
		if (r != (ssize_t)len) {
			printf("VMTEST: compare %s: short read at LBA %" PRIu64 "\n", cmp, lba);
			return 1;
		}
		for (uint32_t i = 0; i < n; i++)
			if (memcmp(got + (size_t)i * lba_size, buf + (size_t)i * lba_size, lba_size)) {
				printf("VMTEST: compare %s: first difference at LBA %" PRIu64 " (%s)\n",
				       cmp, lba + i, in_zero(z, nz, lba + i) ? "should be zeroes"
									  : "should hold the pattern");
				return 1;
			}
	}
	if (cmp)
		printf("VMTEST: compare %s: %" PRIu64 " blocks of %u bytes identical to the "
		       "expected image\n", cmp, nlba, lba_size);
	if (fd > 2)
		close(fd);
	free(buf);
	free(got);
	return 0;
}

static int cmd_hold(const char *dev, unsigned secs)
{
	struct pnvme_ctrl *ctrl;
	if (pnvme_ctrl_open(dev, NULL, &ctrl) != 0) {
		printf("VMTEST: hold %s failed: %s\n", dev, pnvme_last_error());
		return 1;
	}
	printf("VMTEST: holding %s (pid %d)\n", dev, (int)getpid());
	fflush(stdout);
	sleep(secs);
	pnvme_ctrl_close(ctrl);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: vmtest run DEV --seed S [--threads N] [--qd N] [--tag NAME]\n"
		"                  [--prior-image | --prior-gen G --prior-regions K]\n"
		"       vmtest stress DEV --seed S --gen G [--threads N] [--qd N] [--passes P]\n"
		"                  [--die-in-bringup MS]\n"
		"       vmtest reset DEV --seed S [--unfenced]\n"
		"       vmtest regs BDF\n"
		"       vmtest expect --seed S --nsid N --lba-size L --nlba N [--out FILE]\n"
		"       vmtest check FILE --seed S --nsid N --lba-size L --nlba N\n"
		"       vmtest hold DEV SECONDS\n"
		"       vmtest md DEV --seed S\n"
		"       vmtest expect-md --seed S --nsid N --lba-size L --ms M --pi T --nlba N\n"
		"                  --image-size BYTES [--out FILE]\n"
		"       vmtest exec-as UID MEMLOCK_KIB PROG [ARGS...]\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage();
		return 2;
	}
	const char *cmd = argv[1], *pos = NULL, *out = NULL;
	if (!strncmp(cmd, "tcp-", 4) || !strcmp(cmd, "pattern"))
		return cmd_tcp(argc, argv);
	if (!strcmp(cmd, "exec-as") && argc >= 5) {
		uid_t uid = (uid_t)atoi(argv[2]);
		rlim_t kib = (rlim_t)strtoull(argv[3], NULL, 0);
		struct rlimit rl = { kib * 1024, kib * 1024 };
		if (setrlimit(RLIMIT_MEMLOCK, &rl) || setgroups(0, NULL) || setgid(uid) ||
		    setuid(uid)) {
			perror("vmtest exec-as");
			return 1;
		}
		execv(argv[4], argv + 4);
		perror("vmtest exec-as: exec");
		return 1;
	}
	unsigned threads = 4, qd = 8, secs = 30, gen = 1, passes = 0;
	uint32_t nsid = 1, lba_size = 512, ms = 0;
	unsigned pi = 0;
	uint64_t nlba = 0, image_size = 0;
	const char *tag = NULL;
	struct prior prior = { false, -1, 0 };
	g_t0 = now_s();
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--seed") && v) g_seed = strtoull(v, NULL, 0), i++;
		else if (!strcmp(a, "--threads") && v) threads = (unsigned)atoi(v), i++;
		else if (!strcmp(a, "--qd") && v) qd = (unsigned)atoi(v), i++;
		else if (!strcmp(a, "--nsid") && v) nsid = (uint32_t)atoi(v), i++;
		else if (!strcmp(a, "--lba-size") && v) lba_size = (uint32_t)atoi(v), i++;
		else if (!strcmp(a, "--nlba") && v) nlba = strtoull(v, NULL, 0), i++;
		else if (!strcmp(a, "--out") && v) out = v, i++;
		else if (!strcmp(a, "--ms") && v) ms = (uint32_t)atoi(v), i++;
		else if (!strcmp(a, "--pi") && v) pi = (unsigned)atoi(v), i++;
		else if (!strcmp(a, "--image-size") && v) image_size = strtoull(v, NULL, 0), i++;
		else if (!strcmp(a, "--tag") && v) tag = v, i++;
		else if (!strcmp(a, "--gen") && v) gen = (unsigned)atoi(v), i++;
		else if (!strcmp(a, "--passes") && v) passes = (unsigned)atoi(v), i++;
		else if (!strcmp(a, "--die-in-bringup") && v) g_die_ms = (unsigned)atoi(v), i++;
		else if (!strcmp(a, "--prior-image")) prior.image = true;
		else if (!strcmp(a, "--unfenced")) g_unfenced = true;
		else if (!strcmp(a, "--prior-gen") && v) prior.gen = atoi(v), i++;
		else if (!strcmp(a, "--prior-regions") && v) prior.regions = (unsigned)atoi(v), i++;
		else if (a[0] != '-' && !pos) pos = a;
		else if (a[0] != '-' && !strcmp(cmd, "hold")) secs = (unsigned)atoi(a);
		else {
			usage();
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (threads < 1 || threads > MAX_THREADS || qd < 1 || qd > MAX_QD ||
	    lba_size < 512 || lba_size % 512) {
		usage();
		return 2;
	}
	if (!strcmp(cmd, "run") && pos)
		return cmd_run(pos, threads, qd, tag, &prior);
	if (!strcmp(cmd, "stress") && pos)
		return cmd_stress(pos, threads, qd, gen, passes);
	if (!strcmp(cmd, "reset") && pos)
		return cmd_reset(pos);
	if (!strcmp(cmd, "regs") && pos)
		return cmd_regs(pos);
	if (!strcmp(cmd, "expect") && nlba)
		return cmd_expect(nsid, lba_size, nlba, out ? out : "-", NULL);
	if (!strcmp(cmd, "check") && pos && nlba)
		return cmd_expect(nsid, lba_size, nlba, NULL, pos);
	if (!strcmp(cmd, "hold") && pos)
		return cmd_hold(pos, secs);
	if (!strcmp(cmd, "md") && pos)
		return cmd_md(pos);
	if (!strcmp(cmd, "expect-md") && nlba && image_size)
		return cmd_expect_md(nsid, lba_size, ms, pi, nlba, image_size, out ? out : "-");
	usage();
	return 2;
}
