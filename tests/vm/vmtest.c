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
 *       neighbours keep the pattern. Prints "VMTEST: <check> PASS|FAIL ...".
 *   vmtest expect --seed S --nsid N --lba-size L --nlba N [--out FILE]
 *       Write the image namespace N must hold after `run` (host side).
 *   vmtest check FILE --seed S --nsid N --lba-size L --nlba N
 *       Compare FILE (a disk image or a block device) with that image; report
 *       the first differing LBA.
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
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <pnvme/pnvme.h>

#define MAX_THREADS 16
#define MAX_QD      32

static uint64_t g_seed;

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
static void pattern_fill_seed(uint64_t seed, uint32_t nsid, uint64_t off, void *buf, size_t len)
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

static int fails;

static void check(bool ok, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void check(bool ok, const char *name, const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
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
	rc = pnvme_flush_sync(qp, ns);
	snprintf(label, sizeof(label), "ns%u-final-flush", ns->nsid);
	check(rc == 0, label, "%s", rc ? pnvme_last_error() : "ok");
	pnvme_dma_free(ctrl, dma);
	free(exp);
}

static int cmd_run(const char *dev, unsigned nt, unsigned qd)
{
	struct pnvme_ctrl *ctrl;
	double t0 = now_s();
	int rc = pnvme_ctrl_open(dev, NULL, &ctrl);
	if (rc) {
		check(false, "bring-up", "%s: %s", dev, pnvme_last_error());
		return 1;
	}
	const struct pnvme_id_ctrl *id = pnvme_ctrl_id(ctrl);
	check(true, "bring-up", "%s in %.3f s: vid 0x%04x mn '%.40s' sn '%.20s' fr '%.8s' "
	      "mdts %u (max transfer %u bytes), %u namespaces, %u I/O queues granted",
	      dev, now_s() - t0, id->vid, id->mn, id->sn, id->fr, id->mdts,
	      pnvme_ctrl_max_xfer(ctrl), pnvme_ctrl_nr_ns(ctrl), pnvme_ctrl_max_io_queues(ctrl));
	check(id->vid != 0 && id->vid != 0xffff && pnvme_ctrl_nr_ns(ctrl) > 0, "identify",
	      "vid 0x%04x, nn %u, active namespaces %u", id->vid, id->nn, pnvme_ctrl_nr_ns(ctrl));

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
		ws[t].ctrl = ctrl;
		ws[t].qd = qd;
		rc = pnvme_qpair_create(ctrl, &o, &ws[t].qp);
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
				nt = 0;
			}
		}
	}
	if (ws && nt > 0) {
		printf("VMTEST: %u queue pairs (ids", nt);
		for (unsigned t = 0; t < nt; t++)
			printf(" %u", pnvme_qpair_id(ws[t].qp));
		printf("), %u commands in flight each\n", qd);
		for (uint32_t i = 0; i < pnvme_ctrl_nr_ns(ctrl); i++)
			run_namespace(ctrl, ws, nt, pnvme_ctrl_ns_at(ctrl, i));
	}
	for (unsigned t = 0; ws && t < nt; t++) {
		struct pnvme_qpair_stats st;
		pnvme_qpair_get_stats(ws[t].qp, &st);
		printf("VMTEST: qpair %u: submitted %" PRIu64 " completed %" PRIu64 " sq doorbells %"
		       PRIu64 " cq doorbells %" PRIu64 " errors %" PRIu64 " timeouts %" PRIu64 "\n",
		       pnvme_qpair_id(ws[t].qp), st.submitted, st.completed, st.sq_doorbells,
		       st.cq_doorbells, st.errors, st.timeouts);
		pnvme_qpair_destroy(ws[t].qp);
		free(ws[t].expect);
	}
	free(ws);
	rc = pnvme_ctrl_close(ctrl);
	check(rc == 0, "shutdown", "%s", rc ? pnvme_last_error() : "CC.SHN normal, SHST complete");
	printf("VMTEST: run %s finished in %.2f s, %d failed checks\n", dev, now_s() - t0, fails);
	return fails ? 1 : 0;
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
		"usage: vmtest run DEV --seed S [--threads N] [--qd N]\n"
		"       vmtest expect --seed S --nsid N --lba-size L --nlba N [--out FILE]\n"
		"       vmtest check FILE --seed S --nsid N --lba-size L --nlba N\n"
		"       vmtest hold DEV SECONDS\n"
		"       vmtest exec-as UID MEMLOCK_KIB PROG [ARGS...]\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage();
		return 2;
	}
	const char *cmd = argv[1], *pos = NULL, *out = NULL;
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
	unsigned threads = 4, qd = 8, secs = 30;
	uint32_t nsid = 1, lba_size = 512;
	uint64_t nlba = 0;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--seed") && v) g_seed = strtoull(v, NULL, 0), i++;
		else if (!strcmp(a, "--threads") && v) threads = (unsigned)atoi(v), i++;
		else if (!strcmp(a, "--qd") && v) qd = (unsigned)atoi(v), i++;
		else if (!strcmp(a, "--nsid") && v) nsid = (uint32_t)atoi(v), i++;
		else if (!strcmp(a, "--lba-size") && v) lba_size = (uint32_t)atoi(v), i++;
		else if (!strcmp(a, "--nlba") && v) nlba = strtoull(v, NULL, 0), i++;
		else if (!strcmp(a, "--out") && v) out = v, i++;
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
		return cmd_run(pos, threads, qd);
	if (!strcmp(cmd, "expect") && nlba)
		return cmd_expect(nsid, lba_size, nlba, out ? out : "-", NULL);
	if (!strcmp(cmd, "check") && pos && nlba)
		return cmd_expect(nsid, lba_size, nlba, NULL, pos);
	if (!strcmp(cmd, "hold") && pos)
		return cmd_hold(pos, secs);
	usage();
	return 2;
}
