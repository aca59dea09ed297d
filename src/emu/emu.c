/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * emu.c - the emulated NVMe controller ("mock BAR").
 *
 * Registers are plain memory with the BAR0 layout of NVMe Base 2.0 §3.1.4.
 * The host writes them with ordinary stores; each pnvme_emu_step() compares
 * CC and every doorbell with the value it saw last and acts on the change.
 *
 * Command flow, in the manner of Linux's nvmet target:
 *   sq_fetch()   copy the SQE at the SQ head, advance the head
 *   req_init()   common checks, then emu_parse_admin() / emu_parse_io():
 *                validate the fields of one command set and pick an execute
 *                function
 *   execute      move the data (through the IOVA table only) and set DW0
 *   req_finish() error log, fault treatment, then post the CQE, hold it
 *                (delay fault), or queue it while the CQ is full
 *
 * Host memory is reached only through the IOVA table (pnvme_emu_map): a
 * sorted array with a last-hit cache. A miss is a Data Transfer Error.
 * Queue rings and the DBBUF pages are translated once, for their whole
 * length, when they are set up; pnvme_emu_unmap() drops those translations
 * (rings_unmapped()), and every user checks for NULL: a queue whose memory
 * is gone is never read or written again. Whatever the host writes into the
 * rings, registers or buffers, every length is checked against its mapping.
 *
 * Shadow doorbells (Doorbell Buffer Config, Base 2.0 §5.8): once configured,
 * every I/O queue also publishes its SQ tail / CQ head in a host memory page,
 * and the controller writes back an EventIdx per queue: the SQ entry it has
 * consumed up to, the CQ head it has seen. The host writes the MMIO doorbell
 * only when its new value moves past that EventIdx. Both sources are read on
 * every step, and whichever moved since it was last seen is taken, until the
 * host first writes the shadow entry: from then on the shadow entry is the
 * authority (the host stores it before the register, so a register write can
 * carry a value older than one already consumed). The admin queue stays
 * MMIO-only, as the Linux and pnvme hosts use it.
 *
 * Locking: one mutex serialises step against map/unmap/inject/stats. In
 * thread mode the emulator thread holds it for one step at a time.
 *
 * The emulator by concern (the structures and shared functions are in
 * emu_priv.h):
 *   emu.c         object life cycle, locking, one step, the emulator thread
 *   emu_regs.c    BAR0 registers and the controller state machine (CC, CSTS)
 *   emu_dma.c     the IOVA table and PRP walking
 *   emu_queues.c  SQ/CQ processing, shadow doorbells, completion posting
 *   emu_admin.c   the admin command set
 *   emu_nvm.c     the NVM command set, namespace media and metadata
 *   emu_pi.c      end-to-end protection information
 *   emu_fault.c   fault injection
 *   emu_spec.c    the "emu:" spec string;  emu_backend.c  the backend glue
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "emu_priv.h"

#define EMU_SPIN_ITERS    4096u  /* idle steps spent spinning ... */
#define EMU_YIELD_ITERS   512u   /* ... then yielding the CPU ... */
#define EMU_SLEEP_MIN_NS  1000ull
#define EMU_SLEEP_MAX_NS  1000000ull

/* One pass over everything; returns true if anything happened. */
static bool step_locked(struct pnvme_emu *emu)
{
	bool busy;

	emu->step_posted = 0;
	if (unlikely(emu->gone)) {
		emu_gone_process(emu);
		return false;
	}
	if (unlikely(emu->cap_dirty))
		emu_cap_write(emu);
	busy = emu_cc_process(emu);
	if (unlikely(emu->cmb != NULL))
		emu_cmb_process(emu);
	if (!emu->running)
		return busy;

	if (unlikely(emu->aen_at_ns != 0))
		emu_aen_timer(emu);
	emu->reordering = emu_fault_armed(emu, PNVME_EMU_FAULT_REORDER);
	for (uint32_t q = 0; q <= emu->hi_qid; q++)
		if (emu->cqs[q].valid && emu->cqs[q].ring != NULL)
			busy |= emu_cq_process(emu, &emu->cqs[q]);
	if (unlikely(emu->nr_delayed)) {
		busy = true;
		emu_delayed_run(emu);
	}
	for (uint32_t q = 0; q <= emu->hi_qid && emu->running; q++) {
		struct emu_sq *sq = &emu->sqs[q];
		if (sq->valid && sq->ring != NULL) {
			uint64_t before = emu->st.commands;
			emu_sq_process(emu, sq);
			busy |= emu->st.commands != before;
		}
	}
	if (unlikely(emu->reordering)) {
		while (emu->rstack_len)
			emu_cpl_post(emu, &emu->rstack[--emu->rstack_len]);
		emu->reordering = false;
	}
	if (unlikely(emu->irq_pending))
		emu_irq_fire(emu);
	return busy || emu->step_posted;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */
/* ------------------------------------------------------------------------ */

void emu_lock(struct pnvme_emu *emu)
{
	__atomic_add_fetch(&emu->waiters, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&emu->lock);
	__atomic_sub_fetch(&emu->waiters, 1, __ATOMIC_RELAXED);
}

void emu_unlock(struct pnvme_emu *emu)
{
	pthread_mutex_unlock(&emu->lock);
}

int pnvme_emu_step(struct pnvme_emu *emu)
{
	int n;

	if (emu == NULL)
		return pnvme_fail(-EINVAL, "emu step: NULL emulator");
	emu_lock(emu);
	step_locked(emu);
	n = (int)emu->step_posted;
	emu_unlock(emu);
	return n;
}

/*
 * The emulator thread: step while there is work; when idle, spin a little,
 * then yield (a preempted host thread gets the core at once), then sleep with
 * exponential backoff (1 us .. 1 ms) so an idle emulator costs almost nothing.
 * Any work resets it to spinning.
 */
static void *emu_thread(void *arg)
{
	struct pnvme_emu *emu = arg;
	uint64_t sleep_ns = EMU_SLEEP_MIN_NS;
	unsigned idle = 0;

	/* short sleeps should be short: the default slack is 50 us */
	(void)prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
	while (!__atomic_load_n(&emu->stop, __ATOMIC_ACQUIRE)) {
		bool busy;

		/* let map/unmap/inject callers in between steps */
		if (__atomic_load_n(&emu->waiters, __ATOMIC_RELAXED))
			sched_yield();
		pthread_mutex_lock(&emu->lock);
		busy = step_locked(emu);
		pthread_mutex_unlock(&emu->lock);
		if (busy) {
			idle = 0;
			sleep_ns = EMU_SLEEP_MIN_NS;
			continue;
		}
		if (idle < EMU_SPIN_ITERS) {
			idle++;
			pnvme_cpu_relax();
			continue;
		}
		if (idle < EMU_SPIN_ITERS + EMU_YIELD_ITERS) {
			idle++;
			sched_yield();
			continue;
		}
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)sleep_ns };
		nanosleep(&ts, NULL);
		if (sleep_ns < EMU_SLEEP_MAX_NS)
			sleep_ns *= 2;
	}
	return NULL;
}

int pnvme_emu_create(const char *spec, struct pnvme_emu **out)
{
	struct pnvme_emu_config cfg;
	struct pnvme_emu *emu;
	size_t dbs;
	int rc;

	if (out == NULL)
		return pnvme_fail(-EINVAL, "emu: no output pointer");
	*out = NULL;
	rc = pnvme_emu_parse(spec, &cfg);
	if (rc != 0)
		return rc;
	emu = aligned_alloc(64, ALIGN_UP(sizeof(*emu), (size_t)64));
	if (emu == NULL)
		return pnvme_fail(-ENOMEM, "emu: out of memory");
	memset(emu, 0, sizeof(*emu));
	emu->cfg = cfg;
	emu->fd = -1;
	emu->dstrd = cfg.dstrd;
	emu->lba_shift = (uint32_t)__builtin_ctz(cfg.lba_size);
	emu->ms = cfg.ms;
	emu->pif.type = cfg.pi;
	emu->pif.lba_size = cfg.lba_size;
	emu->pif.ms = cfg.ms;
	emu->pif.pil = cfg.pi_first || cfg.ms < EMU_PI_SIZE ? 0 : cfg.ms - EMU_PI_SIZE;
	emu->max_xfer = cfg.mdts ? (uint64_t)PNVME_PAGE_SIZE << cfg.mdts : UINT64_MAX;
	emu->created_ns = emu_now_ns();
	pthread_mutex_init(&emu->lock, NULL);

	dbs = (size_t)(cfg.nr_io_queues + 1) * 2u * ((size_t)4 << cfg.dstrd);
	emu->bar_len = ALIGN_UP((size_t)PNVME_REG_DBS + dbs, (size_t)PNVME_PAGE_SIZE);
	void *bar = mmap(NULL, emu->bar_len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (bar == MAP_FAILED) {
		emu->bar = NULL;
		rc = pnvme_fail(-ENOMEM, "emu: no memory for BAR0");
		goto fail;
	}
	emu->bar = bar;
	if (cfg.cmb != 0) {
		/* BAR2: the Controller Memory Buffer */
		emu->cmb_len = (size_t)cfg.cmb << 20;
		void *cmb = mmap(NULL, emu->cmb_len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (cmb == MAP_FAILED) {
			emu->cmb_len = 0;
			rc = pnvme_fail(-ENOMEM, "emu: no memory for a CMB of %u MiB", cfg.cmb);
			goto fail;
		}
		emu->cmb = cmb;
	}
	emu->sqs = calloc(cfg.nr_io_queues + 1u, sizeof(*emu->sqs));
	emu->cqs = calloc(cfg.nr_io_queues + 1u, sizeof(*emu->cqs));
	emu->ns = calloc(cfg.nr_ns, sizeof(*emu->ns));
	emu->irq_fd = malloc((cfg.nr_io_queues + 1u) * sizeof(*emu->irq_fd));
	if (emu->sqs == NULL || emu->cqs == NULL || emu->ns == NULL || emu->irq_fd == NULL) {
		rc = pnvme_fail(-ENOMEM, "emu: out of memory");
		goto fail;
	}
	for (uint32_t v = 0; v <= cfg.nr_io_queues; v++)
		emu->irq_fd[v] = -1;
	rc = emu_media_open(emu);
	if (rc != 0)
		goto fail;
	emu_regs_init(emu);
	emu_features_default(emu);
	emu_formats_init(emu);

	if (cfg.threaded) {
		rc = pthread_create(&emu->thread, NULL, emu_thread, emu);
		if (rc != 0) {
			rc = pnvme_fail(-rc, "emu: cannot start thread: %s", strerror(rc));
			goto fail;
		}
		emu->thread_started = true;
	}
	log_debug("emu: created (%u x %llu bytes, lba %u, ms %u%s, pi %u, nq %u, %s%s)", cfg.nr_ns,
		  (unsigned long long)cfg.ns_size, cfg.lba_size, cfg.ms, cfg.ext ? " extended" : "",
		  cfg.pi, cfg.nr_io_queues, cfg.threaded ? "thread" : "step",
		  cfg.discard ? ", null" : "");
	*out = emu;
	return 0;
fail:
	pnvme_emu_destroy(emu);
	return rc;
}

void pnvme_emu_destroy(struct pnvme_emu *emu)
{
	if (emu == NULL)
		return;
	if (emu->thread_started) {
		__atomic_store_n(&emu->stop, 1, __ATOMIC_RELEASE);
		pthread_join(emu->thread, NULL);
	}
	if (emu->file_map != NULL) {
		msync(emu->file_map, emu->file_len, MS_SYNC);
		munmap(emu->file_map, emu->file_len);
	} else if (emu->ns != NULL) {
		for (uint32_t i = 0; i < emu->cfg.nr_ns; i++) {
			if (emu->ns[i].media != NULL)
				munmap(emu->ns[i].media, (size_t)emu->cfg.ns_size);
			if (emu->ns[i].meta != NULL)
				munmap(emu->ns[i].meta, (size_t)emu->ns[i].meta_bytes);
		}
	}
	if (emu->fd >= 0)
		close(emu->fd);
	if (emu->cqs != NULL)
		for (uint32_t q = 0; q <= emu->cfg.nr_io_queues; q++)
			free(emu->cqs[q].ovf);
	if (emu->bar != NULL)
		munmap((void *)emu->bar, emu->bar_len);
	if (emu->cmb != NULL)
		munmap(emu->cmb, emu->cmb_len);
	free(emu->sqs);
	free(emu->cqs);
	free(emu->irq_fd);
	free(emu->ns);
	free(emu->maps);
	for (unsigned i = 0; i < ARRAY_SIZE(emu->id_override); i++)
		free(emu->id_override[i]);
	free(emu->delayed);
	free(emu->rstack);
	pthread_mutex_destroy(&emu->lock);
	free(emu);
}

bool pnvme_emu_threaded(const struct pnvme_emu *emu)
{
	return emu != NULL && emu->cfg.threaded;
}

volatile void *pnvme_emu_bar(struct pnvme_emu *emu, size_t *len)
{
	if (len != NULL)
		*len = emu != NULL ? emu->bar_len : 0;
	return emu != NULL ? emu->bar : NULL;
}

volatile void *pnvme_emu_cmb(struct pnvme_emu *emu, size_t *len)
{
	if (len != NULL)
		*len = emu != NULL ? emu->cmb_len : 0;
	return emu != NULL ? emu->cmb : NULL;
}

const struct pnvme_emu_config *pnvme_emu_config(const struct pnvme_emu *emu)
{
	return emu != NULL ? &emu->cfg : NULL;
}

void pnvme_emu_get_stats(struct pnvme_emu *emu, struct pnvme_emu_stats *stats)
{
	if (emu == NULL || stats == NULL)
		return;
	emu_lock(emu);
	*stats = emu->st;
	emu_unlock(emu);
}
