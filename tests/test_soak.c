/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_soak.c - random I/O under random faults, with every request accounted.
 *
 * A threaded emulator (emu:size=16M,mode=thread) and three worker threads,
 * each with its own queue pair (max_retries 3, timeout 50 ms; controller
 * admin timeout 500 ms) and its own disjoint LBA range, issue random reads
 * and writes (1..8 blocks, up to 16 in flight, never two in flight on one
 * block). Meanwhile a fault thread arms a random fault every 10-40 ms: a
 * lost completion, a held completion (10-200 ms), an error status without
 * DNR, one with DNR, a duplicated CQE, a CQE with a bad command id, or an
 * explicit pnvme_ctrl_reset(). (Surprise removal and reset failure end a run;
 * test_recovery covers them.)
 *
 * Accounting:
 *  - every request has an id; its callback must run exactly once
 *    (lost = never, duplicated = more than once);
 *  - every block's content is f(lba, version). A worker knows, per block,
 *    which versions may be on the media: after a successful write exactly
 *    that one; after a failed write the ones before plus the new one (a
 *    failed write may or may not have reached the media). A successful read,
 *    checked inside its callback, must return one of them for every block
 *    (and narrows the set to it); anything else is a corrupt block. At the
 *    end the whole range is checked on the media the same way.
 *
 * PNVME_SOAK_SECONDS sets the length (default 10). Workers 0 and 2 submit
 * each next request from the completion callback (the way applications keep
 * their queue depth), worker 1 from its loop; PNVME_SOAK_REFILL_IN_CB=1 or 0
 * makes all of them do one or the other. PNVME_SOAK_FAULTS limits
 * the faults to a comma-separated list of the names printed (e.g.
 * "drop,reset"). The figures are printed.
 *
 * test_soak_reset_window runs it again with injected timeouts only
 * ("drop,delay": a reset fault would settle them first) and a delay right
 * before each reset request of a worker's deadline scan (a library test
 * hook, see widen_reset_window()): the request is made while another thread
 * runs a reset, inside that reset's admin poll. Such a request must be
 * folded into that reset, never start one inside it (a second reset inside
 * the first fails the first one's Set Features and leaves the controller
 * dead). PNVME_SOAK_WINDOW_SECONDS sets its length (default 3),
 * PNVME_SOAK_WINDOW_FAULTS its faults.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <pnvme/pnvme.h>

#include "test_helpers.h"

#include "core/ctrl_priv.h" /* pnvme_test_reset_request_hook, the generation */

#define LBA      512u
#define WORKERS  3
#define QD       16
#define MAXNB    8u
#define RANGE    8192u        /* blocks per worker (16M = 32768 blocks) */
#define MAXV     8            /* versions a block may hold at once */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The seed a block was written with, if it is a well-formed block of `lba`; else -1. */
static int64_t block_seed(const uint8_t *b, uint64_t lba)
{
	uint8_t want[LBA];
	uint64_t l;
	uint32_t seed;

	memcpy(&l, b, 8);
	memcpy(&seed, b + 8, 4);
	if (l != lba || seed == 0) {
		for (unsigned i = 0; i < LBA; i++)
			if (b[i])
				return -1;
		return 0;
	}
	test_block_fill(want, LBA, lba, seed);
	return memcmp(want, b, LBA) == 0 ? (int64_t)seed : -1;
}

/* ------------------------------------------------------------------------ */

struct blk {
	uint32_t v[MAXV];  /* versions the media may hold */
	uint8_t n;         /* 0: unknown (too many failed writes): not checked */
	uint8_t busy;
};

struct worker;

struct slot {
	struct worker *w;
	bool busy;
	bool write;
	uint64_t lba;      /* absolute */
	uint32_t nlb;
	uint32_t seed;
	uint64_t id;
	double t_sub;
	uint32_t resets_at_sub;  /* diagnostics */
	uint8_t *buf;
};

struct worker {
	int idx;
	struct pnvme_ctrl *ctrl;
	const struct pnvme_ns *ns;
	struct pnvme_qpair *qp;
	uint64_t base;
	uint64_t rs;
	struct blk blk[RANGE];
	struct slot slot[QD];
	uint32_t next_seed;
	uint8_t *calls;    /* per request id */
	uint64_t calls_cap;
	uint64_t submitted;
	uint64_t completed;
	uint64_t ok, failed, reads_verified, writes_ok;
	uint64_t err_timedout, err_io, err_other;
	uint64_t dup;
	uint64_t corrupt;
	uint64_t poll_errors;
	double max_lat;
	struct pnvme_qpair_stats st;
	volatile int *stop;
	bool refill_in_cb;  /* submit the next request from the callback (keeps QD) */
	int failures;
	char msg[256];
};

__attribute__((format(printf, 2, 3)))
static void wfail(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	if (w->failures++ == 0) {
		va_start(ap, fmt);
		vsnprintf(w->msg, sizeof(w->msg), fmt, ap);
		va_end(ap);
		if (getenv("PNVME_LOG"))
			fprintf(stderr, "soak: worker %d: FIRST PROBLEM: %s\n", w->idx, w->msg);
	}
}

static void blk_set(struct blk *b, uint32_t seed)
{
	b->v[0] = seed;
	b->n = 1;
}

static void blk_add(struct blk *b, uint32_t seed)
{
	if (b->n == 0)
		return;
	if (b->n == MAXV) {
		b->n = 0;
		return;
	}
	b->v[b->n++] = seed;
}

/* Is `content` acceptable for block `i`? Narrows the set on success. */
static bool blk_check(struct worker *w, uint32_t i, const uint8_t *content)
{
	struct blk *b = &w->blk[i];
	int64_t seed = block_seed(content, w->base + i);

	if (b->n == 0) {
		if (seed >= 0)
			blk_set(b, (uint32_t)seed);
		return seed >= 0;
	}
	for (unsigned k = 0; k < b->n; k++) {
		if ((int64_t)b->v[k] == seed) {
			blk_set(b, (uint32_t)seed);
			return true;
		}
	}
	return false;
}

static bool start_one(struct worker *w, struct slot *s);

static void soak_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct slot *s = arg;
	struct worker *w = s->w;

	if (s->id >= w->submitted || ++w->calls[s->id] > 1 || !s->busy) {
		w->dup++;
		wfail(w, "request %llu: callback ran again (err %d)", (unsigned long long)s->id, err);
		return;
	}
	w->completed++;
	double lat = now_s() - s->t_sub;
	if (lat > w->max_lat)
		w->max_lat = lat;
	uint32_t first = (uint32_t)(s->lba - w->base);
	if (err == 0) {
		w->ok++;
		if (s->write) {
			w->writes_ok++;
			for (uint32_t i = 0; i < s->nlb; i++)
				blk_set(&w->blk[first + i], s->seed);
		} else {
			w->reads_verified++;
			for (uint32_t i = 0; i < s->nlb; i++) {
				if (!blk_check(w, first + i, s->buf + (size_t)i * LBA)) {
					w->corrupt++;
					wfail(w, "read %llu (cid %u, %u blocks, %.1f ms, resets %u -> "
					      "%u): block %llu holds seed %lld, not one of the %u "
					      "version(s) it may hold", (unsigned long long)s->id,
					      cqe->cid, s->nlb, (now_s() - s->t_sub) * 1e3,
					      s->resets_at_sub, pnvme_ctrl_resets(w->ctrl),
					      (unsigned long long)(s->lba + i),
					      (long long)block_seed(s->buf + (size_t)i * LBA, s->lba + i),
					      w->blk[first + i].n);
				}
			}
		}
	} else {
		w->failed++;
		if (err == -ETIMEDOUT)
			w->err_timedout++;
		else if (err == -EIO)
			w->err_io++;
		else
			w->err_other++;
		if (err == -ENODEV || err == -ECANCELED)
			wfail(w, "request %llu failed with %d", (unsigned long long)s->id, err);
		if (s->write)
			for (uint32_t i = 0; i < s->nlb; i++)
				blk_add(&w->blk[first + i], s->seed);
	}
	for (uint32_t i = 0; i < s->nlb; i++)
		w->blk[first + i].busy = 0;
	s->busy = false;
	if (w->refill_in_cb && !__atomic_load_n(w->stop, __ATOMIC_ACQUIRE))
		(void)start_one(w, s);
}

/* Start one random request in slot `s`; false if the blocks it drew are busy. */
static bool start_one(struct worker *w, struct slot *s)
{
	uint32_t nlb = 1 + (uint32_t)(rnd(&w->rs) % MAXNB);
	uint32_t first = (uint32_t)(rnd(&w->rs) % (RANGE - nlb + 1));
	bool write = rnd(&w->rs) & 1;
	int rc;

	for (uint32_t i = 0; i < nlb; i++)
		if (w->blk[first + i].busy)
			return false;
	if (w->submitted == w->calls_cap) {
		uint64_t cap = w->calls_cap ? w->calls_cap * 2 : 65536;
		uint8_t *n = realloc(w->calls, cap);
		if (!n) {
			wfail(w, "out of memory");
			return false;
		}
		memset(n + w->calls_cap, 0, cap - w->calls_cap);
		w->calls = n;
		w->calls_cap = cap;
	}
	s->write = write;
	s->lba = w->base + first;
	s->nlb = nlb;
	s->id = w->submitted;
	s->busy = true;
	if (write) {
		s->seed = ((uint32_t)(w->idx + 1) << 24) | (++w->next_seed & 0xffffffu);
		for (uint32_t i = 0; i < nlb; i++)
			test_block_fill(s->buf + (size_t)i * LBA, LBA, s->lba + i, s->seed);
	} else {
		memset(s->buf, 0xa5, (size_t)nlb * LBA);
	}
	w->submitted++;
	s->t_sub = now_s();
	s->resets_at_sub = pnvme_ctrl_resets(w->ctrl);
	if (write)
		rc = pnvme_write(w->qp, w->ns, s->buf, s->lba, nlb, 0, soak_cb, s);
	else
		rc = pnvme_read(w->qp, w->ns, s->buf, s->lba, nlb, 0, soak_cb, s);
	if (rc) {
		w->submitted--;
		s->busy = false;
		if (rc != -EAGAIN)
			wfail(w, "submit: %d (%s)", rc, pnvme_last_error());
		return false;
	}
	for (uint32_t i = 0; i < nlb; i++)
		w->blk[first + i].busy = 1;
	return true;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pnvme_qpair_opts o;
	double stop_at = 0;
	int rc;

	pnvme_qpair_opts_default(&o);
	o.depth = 64;
	o.timeout_ms = 50;
	o.max_retries = 3;
	rc = pnvme_qpair_create(w->ctrl, &o, &w->qp);
	if (rc) {
		wfail(w, "qpair_create: %d (%s)", rc, pnvme_last_error());
		return NULL;
	}
	for (int i = 0; i < QD; i++) {
		w->slot[i].w = w;
		rc = pnvme_dma_alloc(w->ctrl, MAXNB * LBA, 0, (void **)&w->slot[i].buf, NULL);
		if (rc) {
			wfail(w, "dma_alloc: %d", rc);
			goto out;
		}
	}
	for (;;) {
		bool stopping = __atomic_load_n(w->stop, __ATOMIC_ACQUIRE);
		if (stopping && stop_at == 0)
			stop_at = now_s();
		if (!stopping)
			for (int i = 0; i < QD; i++)
				if (!w->slot[i].busy)
					(void)start_one(w, &w->slot[i]);
		if (stopping && pnvme_qpair_outstanding(w->qp) == 0)
			break;
		if (stopping && now_s() - stop_at > 10.0) {
			wfail(w, "%u request(s) still outstanding 10 s after the stop",
			      pnvme_qpair_outstanding(w->qp));
			break;
		}
		rc = pnvme_qpair_poll(w->qp, 0);
		if (rc < 0) {
			w->poll_errors++;
			wfail(w, "poll: %d (%s)", rc, pnvme_last_error());
			if (rc == -ENODEV || rc == -EIO)
				break;
		}
		if (rc == 0)
			sched_yield();
	}
out:
	pnvme_qpair_get_stats(w->qp, &w->st);
	/* outstanding ones (if any) complete with -ECANCELED here: counted, then flagged */
	rc = pnvme_qpair_destroy(w->qp);
	if (rc)
		wfail(w, "qpair_destroy: %d", rc);
	for (int i = 0; i < QD; i++)
		pnvme_dma_free(w->ctrl, w->slot[i].buf);
	return NULL;
}

/* ------------------------------------------------------------------------ */

enum { F_DROP, F_DELAY, F_STATUS, F_STATUS_DNR, F_DUP, F_BAD_CID, F_RESET, F_KINDS };
static const char *const fault_name[F_KINDS] = {
	"drop", "delay", "status", "status+dnr", "dup", "bad-cid", "reset",
};

struct faulter {
	struct pnvme_ctrl *ctrl;
	struct pnvme_emu *emu;
	uint16_t qids[WORKERS];
	volatile int *stop;
	bool enabled[F_KINDS];
	uint64_t fired[F_KINDS];
	int reset_failures;
	int inject_failures;
};

static void *fault_main(void *arg)
{
	struct faulter *f = arg;
	uint64_t s = 0x9e3779b97f4a7c15ull;
	unsigned armed = 0;

	while (!__atomic_load_n(f->stop, __ATOMIC_ACQUIRE)) {
		usleep((useconds_t)(10000 + rnd(&s) % 30000));
		if (__atomic_load_n(f->stop, __ATOMIC_ACQUIRE))
			break;
		int k = (int)(rnd(&s) % F_KINDS);
		if (!f->enabled[k])
			continue;
		struct pnvme_emu_fault ft = {
			.qid = f->qids[rnd(&s) % WORKERS],
			.opc = (rnd(&s) & 1) ? PNVME_NVM_READ : PNVME_NVM_WRITE,
			.count = 1,
		};
		switch (k) {
		case F_DROP:
			ft.kind = PNVME_EMU_FAULT_DROP_CPL;
			break;
		case F_DELAY:
			ft.kind = PNVME_EMU_FAULT_DELAY_CPL;
			ft.delay_us = 10000 + rnd(&s) % 190000;
			break;
		case F_STATUS:
			ft.kind = PNVME_EMU_FAULT_STATUS;
			ft.status = PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INTERNAL);
			break;
		case F_STATUS_DNR:
			ft.kind = PNVME_EMU_FAULT_STATUS;
			ft.status = PNVME_STATUS(PNVME_SCT_MEDIA, 0x81) | PNVME_STATUS_DNR;
			break;
		case F_DUP:
			ft.kind = PNVME_EMU_FAULT_CQE_DUP;
			break;
		case F_BAD_CID:
			ft.kind = PNVME_EMU_FAULT_CQE_BAD_CID;
			break;
		default:
			if (pnvme_ctrl_reset(f->ctrl) != 0)
				f->reset_failures++;
			f->fired[k]++;
			continue;
		}
		/* Spent faults keep their slots: start over now and then. */
		if (++armed % 8 == 0)
			pnvme_emu_clear_faults(f->emu);
		if (pnvme_emu_inject(f->emu, &ft) != 0)
			f->inject_failures++;
		else
			f->fired[k]++;
	}
	return NULL;
}

static int g_resets_ok, g_resets_failed;

static void reset_cb(void *arg, int err, const char *reason)
{
	(void)arg;
	(void)reason;
	if (err)
		__atomic_add_fetch(&g_resets_failed, 1, __ATOMIC_RELAXED);
	else
		__atomic_add_fetch(&g_resets_ok, 1, __ATOMIC_RELAXED);
}

/*
 * The widened window. A worker's deadline scan is about to ask for a reset;
 * the hook delays that request until another thread's reset is running and
 * that thread is inside its admin poll: it submits an Asynchronous Event
 * Request (the emulator holds it), asks the resetter thread for a
 * pnvme_ctrl_reset(), and returns once the AER's callback runs, which the
 * reset does on its own thread when it fails the admin commands in flight
 * (inside the admin poll, admin lock held). The callback stays there
 * HOLD_MS, so the worker's request is made while another thread is inside
 * an admin poll of a reset, every time (bounded: 500 ms, then it goes on).
 */
#define HOLD_MS 20

static struct {
	struct pnvme_ctrl *ctrl;
	int want;          /* a reset was asked for */
	int in_cb;         /* the held AER's callback is running */
	int stop;
	int failures;      /* resets of the resetter that failed */
	int hits;          /* requests made inside another thread's reset */
} g_win;

static void *resetter_main(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&g_win.stop, __ATOMIC_ACQUIRE)) {
		if (__atomic_exchange_n(&g_win.want, 0, __ATOMIC_ACQ_REL)) {
			if (pnvme_ctrl_reset(g_win.ctrl) != 0)
				__atomic_add_fetch(&g_win.failures, 1, __ATOMIC_RELAXED);
		} else {
			usleep(200);
		}
	}
	return NULL;
}

static void held_aer_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	(void)arg;
	(void)err;
	(void)cqe;
	__atomic_store_n(&g_win.in_cb, 1, __ATOMIC_RELEASE);
	usleep(HOLD_MS * 1000);
	__atomic_store_n(&g_win.in_cb, 0, __ATOMIC_RELEASE);
}

static void widen_reset_window(struct pnvme_ctrl *ctrl)
{
	struct pnvme_sqe aer = { .opc = PNVME_ADM_ASYNC_EVENT };
	double until = now_s() + 0.5;

	if (pnvme_admin_submit(ctrl, &aer, NULL, 0, held_aer_cb, NULL) != 0)
		return;
	__atomic_store_n(&g_win.want, 1, __ATOMIC_RELEASE);
	while (now_s() < until) {
		if (__atomic_load_n(&g_win.in_cb, __ATOMIC_ACQUIRE)) {
			__atomic_add_fetch(&g_win.hits, 1, __ATOMIC_RELAXED);
			return;
		}
		usleep(50);
	}
}

static void run_soak(double secs, const char *kinds, bool widen)
{
	static struct worker w[WORKERS];
	struct faulter f;
	pthread_t wt[WORKERS], ft;
	struct pnvme_ctrl_opts co;
	struct pnvme_emu *emu;
	struct pnvme_ctrl *ctrl;
	volatile int stop = 0;
	const char *rf = getenv("PNVME_SOAK_REFILL_IN_CB");

	pthread_t rt;

	g_resets_ok = g_resets_failed = 0;

	assert_int_equal(pnvme_emu_create("emu:size=16M,lba=512,mode=thread", &emu), 0);
	pnvme_ctrl_opts_default(&co);
	/*
	 * The admin timeout also bounds the Create I/O CQ/SQ of every reconnect:
	 * with 100 ms, an emulator thread kept off the cores that long by a busy
	 * machine made a reconnect fail (queue pair stopped, -EIO from then on)
	 * or a reset fail (controller dead).
	 */
	co.admin_timeout_ms = 500;
	co.io_timeout_ms = 50;
	co.reset_cb = reset_cb;
	assert_int_equal(pnvme_ctrl_open_emu(emu, &co, &ctrl), 0);
	const struct pnvme_ns *ns = pnvme_ctrl_ns(ctrl, 1);
	assert_non_null(ns);
	assert_true(ns->nlba >= (uint64_t)WORKERS * RANGE);
	memset(&g_win, 0, sizeof(g_win));
	if (widen) {
		g_win.ctrl = ctrl;
		assert_int_equal(pthread_create(&rt, NULL, resetter_main, NULL), 0);
		pnvme_test_reset_request_hook = widen_reset_window; /* before the workers start */
	}

	for (int i = 0; i < WORKERS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].idx = i;
		w[i].ctrl = ctrl;
		w[i].ns = ns;
		w[i].base = (uint64_t)i * RANGE;
		w[i].rs = 0x1234567ull * (uint64_t)(i + 1);
		w[i].stop = &stop;
		/* default: workers 0 and 2 refill from callbacks, worker 1 from its loop */
		w[i].refill_in_cb = rf && *rf ? *rf == '1' : i % 2 == 0;
		for (uint32_t b = 0; b < RANGE; b++)
			blk_set(&w[i].blk[b], 0);
		assert_int_equal(pthread_create(&wt[i], NULL, worker_main, &w[i]), 0);
	}
	/* the workers' queue ids (1..3: created in some order) */
	memset(&f, 0, sizeof(f));
	f.ctrl = ctrl;
	f.emu = emu;
	f.stop = &stop;
	for (int i = 0; i < WORKERS; i++)
		f.qids[i] = (uint16_t)(i + 1);
	for (int k = 0; k < F_KINDS; k++) {
		const char *p = kinds ? strstr(kinds, fault_name[k]) : NULL;
		/* "status" must not match inside "status+dnr" */
		while (p && k == F_STATUS && p[6] == '+')
			p = strstr(p + 1, fault_name[k]);
		f.enabled[k] = !kinds || p != NULL;
	}
	double t0 = now_s();
	assert_int_equal(pthread_create(&ft, NULL, fault_main, &f), 0);
	while (now_s() - t0 < secs)
		usleep(20000);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(ft, NULL), 0);
	if (widen) {
		__atomic_store_n(&g_win.stop, 1, __ATOMIC_RELEASE);
		assert_int_equal(pthread_join(rt, NULL), 0);
	}
	pnvme_emu_clear_faults(emu);
	for (int i = 0; i < WORKERS; i++)
		assert_int_equal(pthread_join(wt[i], NULL), 0);
	pnvme_test_reset_request_hook = NULL;
	double elapsed = now_s() - t0;

	/* Exactly once, and the media as the completions say. */
	uint64_t req = 0, done = 0, ok = 0, failed = 0, lost = 0, dup = 0, corrupt = 0;
	uint64_t eto = 0, eio = 0, eoth = 0, rv = 0, wok = 0;
	uint64_t retries = 0, aborts = 0, timeouts = 0, reconnects = 0, bad = 0, badsq = 0;
	double maxlat = 0;
	uint8_t *media = malloc((size_t)RANGE * LBA);
	assert_non_null(media);
	for (int i = 0; i < WORKERS; i++) {
		struct worker *x = &w[i];
		for (uint64_t id = 0; id < x->submitted; id++) {
			if (x->calls[id] == 0)
				lost++;
			else if (x->calls[id] > 1)
				dup += x->calls[id] - 1u;
		}
		assert_int_equal(pnvme_emu_media_read(emu, 1, x->base * LBA, media,
						      (size_t)RANGE * LBA), 0);
		for (uint32_t b = 0; b < RANGE; b++) {
			if (!blk_check(x, b, media + (size_t)b * LBA)) {
				x->corrupt++;
				wfail(x, "media: block %llu holds seed %lld, none of the %u "
				      "version(s) the completions allow",
				      (unsigned long long)(x->base + b),
				      (long long)block_seed(media + (size_t)b * LBA, x->base + b),
				      x->blk[b].n);
			}
		}
		req += x->submitted;
		done += x->completed;
		ok += x->ok;
		failed += x->failed;
		corrupt += x->corrupt;
		eto += x->err_timedout;
		eio += x->err_io;
		eoth += x->err_other;
		rv += x->reads_verified;
		wok += x->writes_ok;
		retries += x->st.retries;
		aborts += x->st.aborts;
		timeouts += x->st.timeouts;
		reconnects += x->st.reconnects;
		bad += x->st.bad_cqes;
		badsq += x->st.bad_sqhd;
		if (x->max_lat > maxlat)
			maxlat = x->max_lat;
		free(x->calls);
	}
	free(media);
	uint64_t fired = 0;
	for (int k = 0; k < F_KINDS; k++)
		fired += f.fired[k];

	printf("soak: %.1f s, %d workers (%s), faults fired %llu (", elapsed, WORKERS,
	       rf && *rf ? (*rf == '1' ? "all refill in callbacks" : "all refill from their loop")
			 : "2 refill in callbacks, 1 from its loop", (unsigned long long)fired);
	for (int k = 0; k < F_KINDS; k++)
		printf("%s%s %llu", k ? ", " : "", fault_name[k], (unsigned long long)f.fired[k]);
	printf(")\n");
	printf("soak: requests %llu, completed %llu (ok %llu: %llu verified reads, %llu writes; "
	       "failed %llu: -ETIMEDOUT %llu, -EIO %llu, other %llu)\n",
	       (unsigned long long)req, (unsigned long long)done, (unsigned long long)ok,
	       (unsigned long long)rv, (unsigned long long)wok, (unsigned long long)failed,
	       (unsigned long long)eto, (unsigned long long)eio, (unsigned long long)eoth);
	printf("soak: lost %llu, duplicated %llu, corrupt blocks %llu, resets %u (reset_cb ok %d, "
	       "failed %d), retries %llu, aborts %llu, timeouts %llu, reconnects %llu, bad CQEs "
	       "%llu, bad SQHD %llu, max latency %.0f ms\n",
	       (unsigned long long)lost, (unsigned long long)dup, (unsigned long long)corrupt,
	       pnvme_ctrl_resets(ctrl), g_resets_ok, g_resets_failed, (unsigned long long)retries,
	       (unsigned long long)aborts, (unsigned long long)timeouts,
	       (unsigned long long)reconnects, (unsigned long long)bad, (unsigned long long)badsq,
	       maxlat * 1e3);
	if (widen)
		printf("soak: %d reset request(s) made during another thread's reset (test hook), "
		       "%d reset(s) asked for by the hook failed\n", g_win.hits, g_win.failures);
	for (int i = 0; i < WORKERS; i++)
		if (w[i].failures)
			printf("soak: worker %d: %d problem(s), first: %s\n", i, w[i].failures,
			       w[i].msg);

	assert_false(pnvme_ctrl_is_dead(ctrl));
	assert_int_equal(pnvme_ctrl_close(ctrl), 0);
	pnvme_emu_destroy(emu);

	assert_int_equal(f.reset_failures, 0);
	assert_int_equal(g_win.failures, 0);
	assert_int_equal(g_resets_failed, 0);
	assert_int_equal(lost, 0);
	assert_int_equal(dup, 0);
	assert_int_equal(corrupt, 0);
	assert_int_equal(done, req);
	for (int i = 0; i < WORKERS; i++)
		if (w[i].failures)
			fail_msg("worker %d: %s", i, w[i].msg);
	/*
	 * Each try is bounded by deadline + admin timeout (+ a reset); retries add
	 * tries. The slack is large: six threads share the cores with whatever
	 * else runs (over 1 s seen with two suites on two busy cores); a request
	 * stuck until something unrelated frees it still shows.
	 */
	if (maxlat > 4 * (0.050 + 0.500) + 5.0)
		fail_msg("a request took %.0f ms", maxlat * 1e3);
}

static double env_secs(const char *name, double dflt)
{
	const char *v = getenv(name);
	return v && *v ? atof(v) : dflt;
}

static void test_soak(void **state)
{
	(void)state;
	run_soak(env_secs("PNVME_SOAK_SECONDS", 10.0), getenv("PNVME_SOAK_FAULTS"), false);
}

/* Reset requests made while another thread resets the controller: folded in, never nested. */
static void test_soak_reset_window(void **state)
{
	(void)state;
	const char *k = getenv("PNVME_SOAK_WINDOW_FAULTS");
	run_soak(env_secs("PNVME_SOAK_WINDOW_SECONDS", 3.0), k && *k ? k : "drop,delay", true);
	/* (the run must have exercised the window) */
	assert_true(g_win.hits > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_soak),
		cmocka_unit_test(test_soak_reset_window),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
