/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * internal.h - shared plumbing for the library's source files: logging and
 * error messages, the cycle counter, memory barriers, register accessors, the
 * transport backend interface, and the DMA allocator.
 */
#ifndef PNVME_INTERNAL_H
#define PNVME_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <pnvme/error.h>
#include <pnvme/spec.h>

#define PNVME_PAGE_SHIFT  12u
#define PNVME_PAGE_SIZE   (1u << PNVME_PAGE_SHIFT)           /* CC.MPS = 0: 4 KiB */
#define PNVME_CHUNK_SHIFT 21u
#define PNVME_CHUNK_SIZE  ((size_t)1 << PNVME_CHUNK_SHIFT)    /* 2 MiB */

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))

/* ------------------------------------------------------------------------ */
/* Logging (log.c)                                                          */
/* ------------------------------------------------------------------------ */

/** Emit a message to the installed sink (or stderr when PNVME_LOG asks). */
void pnvme_log(enum pnvme_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/** True if a message at `level` would go anywhere (cheap). */
bool pnvme_log_enabled(enum pnvme_log_level level);
/**
 * Record `fmt` as this thread's pnvme_last_error(), log it at debug level,
 * and return `err` (a negative errno) so callers can `return pnvme_fail(...)`.
 */
int pnvme_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)    pnvme_log(PNVME_LOG_ERR, __VA_ARGS__)
#define log_warn(...)   pnvme_log(PNVME_LOG_WARN, __VA_ARGS__)
#define log_notice(...) pnvme_log(PNVME_LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   pnvme_log(PNVME_LOG_INFO, __VA_ARGS__)
#define log_debug(...)  pnvme_log(PNVME_LOG_DEBUG, __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* Cycle counter (ticks.c): never clock_gettime on the hot path             */
/* ------------------------------------------------------------------------ */

static inline uint64_t pnvme_ticks(void)
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

/** Ticks per second (calibrated once against CLOCK_MONOTONIC, thread safe). */
uint64_t pnvme_ticks_hz(void);
static inline uint64_t pnvme_ms_to_ticks(uint64_t ms)
{
	return ms * (pnvme_ticks_hz() / 1000u);
}
/** Monotonic milliseconds (clock_gettime; for slow paths only). */
uint64_t pnvme_now_ms(void);

/* ------------------------------------------------------------------------ */
/* Barriers and register access                                             */
/* ------------------------------------------------------------------------ */

/*
 * Ordering rules: before the SQ tail doorbell, the SQE stores must be visible
 * to the device (write barrier); after seeing a CQE's phase bit, the rest of
 * the CQE must not be read earlier (read barrier). x86 keeps stores in order
 * and loads in order, so both are compiler barriers there; elsewhere they are
 * C11 fences (dmb on arm64).
 */
#if defined(__x86_64__) || defined(__i386__)
#define pnvme_wmb() __asm__ volatile("" ::: "memory")
#define pnvme_rmb() __asm__ volatile("" ::: "memory")
#define pnvme_mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define pnvme_cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
/* The device is an outer-shareable observer: DMB ISH would only order the CPUs. */
#define pnvme_wmb() __asm__ volatile("dmb oshst" ::: "memory")
#define pnvme_rmb() __asm__ volatile("dmb oshld" ::: "memory")
#define pnvme_mb()  __asm__ volatile("dmb osh" ::: "memory")
#define pnvme_cpu_relax() __asm__ volatile("yield" ::: "memory")
#else
#define pnvme_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#define pnvme_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define pnvme_mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define pnvme_cpu_relax() __asm__ volatile("" ::: "memory")
#endif

/*
 * Register access is a single 32-bit atomic load or store of the volatile
 * location: a plain move on x86 (ldar / stlr on arm64), one bus access, and
 * for the emulated controller, whose registers are memory another thread
 * reads and writes, a well-defined C11 access that ThreadSanitizer sees.
 * Loads acquire and stores release: what was written to memory before a
 * register write (SQEs before a tail doorbell, rings before CC.EN) is
 * visible to a thread that reads the register afterwards, and a register
 * read orders the memory reads after it. Where the protocol needs a full
 * barrier (the doorbell handshake, shadow doorbells) it is issued beside.
 */
static inline uint32_t mmio_read32(const volatile uint8_t *bar, size_t off)
{
	return __atomic_load_n((const volatile uint32_t *)(bar + off), __ATOMIC_ACQUIRE);
}

static inline void mmio_write32(volatile uint8_t *bar, size_t off, uint32_t v)
{
	__atomic_store_n((volatile uint32_t *)(bar + off), v, __ATOMIC_RELEASE);
}

/* A doorbell register, through the pointer a queue pair keeps (release store). */
static inline void db_write(volatile uint32_t *db, uint32_t v)
{
	__atomic_store_n(db, v, __ATOMIC_RELEASE);
}

/* 64-bit registers as two 32-bit accesses: low dword first, then high. */
static inline uint64_t mmio_read64(const volatile uint8_t *bar, size_t off)
{
	uint64_t lo = mmio_read32(bar, off);
	uint64_t hi = mmio_read32(bar, off + 4);
	return lo | (hi << 32);
}

static inline void mmio_write64(volatile uint8_t *bar, size_t off, uint64_t v)
{
	mmio_write32(bar, off, (uint32_t)v);
	mmio_write32(bar, off + 4, (uint32_t)(v >> 32));
}

/* ------------------------------------------------------------------------ */
/* Transport backend: what differs between the emulator and VFIO            */
/* ------------------------------------------------------------------------ */

struct pnvme_backend_ops {
	const char *name;
	/* Let the device reach [vaddr, vaddr+len) at iova (page aligned). 0 / -errno. */
	int (*dma_map)(void *ctx, void *vaddr, uint64_t iova, size_t len);
	/* Undo one dma_map with the same iova and len. 0 / -errno. */
	int (*dma_unmap)(void *ctx, uint64_t iova, size_t len);
	/*
	 * Slow-path wait hook, called by every busy-wait loop (bring-up, sync
	 * commands): gives a stepped emulator a turn, relaxes the CPU otherwise.
	 * Never called on the I/O fast path.
	 */
	void (*wait)(void *ctx);
	/* Optional: allow (or stop) device DMA (PCI Bus Master Enable). 0 / -errno. */
	int (*bus_master)(void *ctx, bool on);
	/* Release the transport (unmap BAR, close fds). */
	void (*close)(void *ctx);
	/*
	 * Optional: map BAR `bir` (the one CMBLOC.BIR names, for the Controller
	 * Memory Buffer). *va and *len: the host's mapping, valid until close;
	 * *bus: the address the BAR decodes at on the bus, from which CMBMSC.CBA
	 * is programmed. 0, -ENOTSUP (no such BAR), -errno.
	 */
	int (*bar_map)(void *ctx, unsigned bir, volatile uint8_t **va, size_t *len,
		       uint64_t *bus);
	/*
	 * Optional: MSI-X vector `vector` signals eventfd `fd` from now on (-1:
	 * stop). 0, -ENOTSUP (no interrupts), -ENOSPC (no such vector), -errno.
	 */
	int (*irq_set)(void *ctx, unsigned vector, int fd);
};

struct pnvme_backend {
	const struct pnvme_backend_ops *ops;
	void *ctx;
	volatile uint8_t *bar;  /* BAR0, registers and doorbells */
	size_t bar_len;
	uint64_t iova_base;     /* device-usable IOVA window [iova_base, iova_end) */
	uint64_t iova_end;
	/*
	 * The device sees a doorbell write only as a new value in memory it polls
	 * (the emulator), not as a bus write: the host zeroes a queue's doorbell
	 * registers before the device creates the queue, so that its first write
	 * always shows. (A real controller resets its doorbells itself and must
	 * not see writes for a queue that does not exist: false there.)
	 */
	bool db_polled;
};

/* ------------------------------------------------------------------------ */
/* DMA allocator (dma.c)                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Virtual-to-IOVA translation is a two-level table indexed by the 2 MiB
 * virtual page: 47-bit user addresses give 2^26 pages, split 13 + 13 bits.
 * An entry points at the chunk run descriptor that covers the page, or is
 * NULL. Lookups are lock-free: level-2 tables are published with release
 * stores and live as long as the allocator; chunk descriptors are never
 * freed before the allocator is torn down (a retired one is parked for
 * reuse), so a racing lookup reads a valid descriptor and checks that it
 * still covers the address.
 *
 * Bounds are per allocation. Every 2 MiB page of DMA memory has a page
 * descriptor that the table points at: per 4 KiB granule, where the
 * allocation holding it ends (0: free). A range is accepted only if it lies
 * inside one live allocation. Queue pairs cache the last page descriptor and
 * read it live, so a freed buffer is refused at once.
 */
#define PNVME_XL_L2_BITS 13u
#define PNVME_XL_L1_BITS 13u
#define PNVME_XL_L2_SIZE (1u << PNVME_XL_L2_BITS)
#define PNVME_XL_L1_SIZE (1u << PNVME_XL_L1_BITS)
#define PNVME_GRANULES   (PNVME_CHUNK_SIZE >> PNVME_PAGE_SHIFT) /* 512 per 2 MiB */

struct pnvme_dma_chunk;

/*
 * One 2 MiB page of DMA memory. Written under the allocator's lock with
 * atomic stores, read lock-free. Never freed while the allocator lives: a
 * retired one has page = UINTPTR_MAX and every end 0, so a stale pointer to
 * it (a queue pair's cache) matches nothing.
 */
struct pnvme_dma_page {
	uintptr_t page;    /* virtual address >> 21 it describes */
	uint64_t iova;     /* IOVA of its first byte */
	/*
	 * end[g]: where the allocation holding granule g ends, in bytes from
	 * this page's start (so up to 2 MiB for small allocations, more for a
	 * large one running on into the next pages; capped at UINT32_MAX), or 0
	 * if the granule is free.
	 */
	uint32_t end[PNVME_GRANULES];
	/* slow path (messages, allocations of 4 GiB and more) */
	uintptr_t big_va;  /* a large run's allocation: its start ... */
	size_t big_bytes;  /* ... and size asked for; 0 in a small run */
	uint32_t clean;    /* granules from here up were never handed out */
	struct pnvme_dma_page *next;  /* retired list */
};

struct pnvme_dma {
	struct pnvme_dma_page **xl[PNVME_XL_L1_SIZE]; /* translation table, hot for lookups */
	/*
	 * Moved by every free (and by every namespace change of the controller,
	 * core/ns.c): a prepared request (pnvme/req.h) checked its buffer and
	 * namespace in one epoch and trusts them while it lasts. Atomic; read
	 * on every prepared submission, written rarely.
	 */
	uint64_t epoch;
	/* cold below */
	pthread_mutex_t lock;
	const struct pnvme_backend *be;
	struct pnvme_dma_chunk *chunks;        /* every mapped chunk run */
	struct pnvme_dma_page *retired;        /* page descriptors of unmapped runs, for reuse */
	void *iova_free;                       /* free IOVA ranges (dma.c) */
	uint64_t iova_next;                    /* bump pointer above freed ranges */
	bool hugepages;                        /* last chunk came from hugepages */
	bool warned_no_huge;
};

/* A queue pair's translation cache: the page descriptor of its last buffer. */
struct pnvme_dma_cache {
	const struct pnvme_dma_page *pg;
};

/** Set up an allocator over backend `be` (which must outlive it). 0 / -ENOMEM. */
int pnvme_dma_init(struct pnvme_dma *d, const struct pnvme_backend *be);
/** Unmap and free every chunk still allocated. */
void pnvme_dma_fini(struct pnvme_dma *d);
/** As pnvme_dma_alloc() (pnvme/dma.h), on an allocator. */
int pnvme_dma_alloc_raw(struct pnvme_dma *d, size_t size, size_t align, void **buf,
			uint64_t *iova);
/**
 * As pnvme_dma_free(): 0, or -EINVAL (with a message) for a pointer that is
 * not the start of a live allocation: already freed, inside an allocation,
 * or not memory of this allocator. Nothing is freed then.
 */
int pnvme_dma_free_raw(struct pnvme_dma *d, void *buf);

/**
 * IOVA of [va, va + len) (len >= 1; 0 counts as 1): 0 and *iova if the range
 * lies inside one live allocation, else -EINVAL with pnvme_last_error()
 * saying why: not pnvme memory, freed, or overrunning its allocation by N
 * bytes. Lock-free; any thread.
 */
int pnvme_dma_xlate(const struct pnvme_dma *d, const void *va, size_t len, uint64_t *iova);

/** IOVA of one byte of a live allocation, or 0 (IOVA 0 is never handed out). */
static inline uint64_t pnvme_dma_xlate1(const struct pnvme_dma *d, uintptr_t va)
{
	uint64_t iova;

	return pnvme_dma_xlate(d, (const void *)va, 1, &iova) == 0 ? iova : 0;
}

/** As pnvme_dma_xlate(), and point the cache at va's run on success. */
int pnvme_dma_xlate_fill(const struct pnvme_dma *d, struct pnvme_dma_cache *k, uintptr_t va,
			 size_t len, uint64_t *iova);

/** The empty cache (matches no page). */
extern const struct pnvme_dma_page pnvme_dma_no_page;

/*
 * The queue pairs' per-I/O check: as pnvme_dma_xlate(), through the cache.
 * A hit reads the cached page's number, the end of the allocation holding
 * the buffer's first granule, and the page's IOVA: three loads.
 * pnvme_dma_cache_hit() is the hit alone (false: no answer, ask
 * pnvme_dma_xlate_fill()).
 */
static inline __attribute__((always_inline)) bool
pnvme_dma_cache_hit(const struct pnvme_dma_cache *k, uintptr_t va, size_t len, uint64_t *iova)
{
	const struct pnvme_dma_page *pg = k->pg;

	if (likely((va >> PNVME_CHUNK_SHIFT) == __atomic_load_n(&pg->page, __ATOMIC_RELAXED))) {
		uintptr_t off = va & (PNVME_CHUNK_SIZE - 1);
		uint32_t end = __atomic_load_n(&pg->end[off >> PNVME_PAGE_SHIFT], __ATOMIC_RELAXED);

		/* end 0 (free) fails too: len >= 1 */
		if (likely(len <= end && off <= end - len)) {
			*iova = pg->iova + off;
			return true;
		}
	}
	return false;
}

static inline __attribute__((always_inline)) int
pnvme_dma_cached_xlate(const struct pnvme_dma *d, struct pnvme_dma_cache *k, uintptr_t va,
		       size_t len, uint64_t *iova)
{
	if (likely(pnvme_dma_cache_hit(k, va, len, iova)))
		return 0;
	return pnvme_dma_xlate_fill(d, k, va, len, iova);
}

/* ------------------------------------------------------------------------ */
/* Backends                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * SIGBUS guard for mmapped device registers (bar_guard.c): a fault inside a
 * registered window turns the window into all-ones memory, so the access
 * reads 0xffffffff (device gone) instead of killing the process. The first
 * call installs the handler, chaining to any previous one.
 */
int pnvme_bar_guard_add(volatile void *addr, size_t len);
void pnvme_bar_guard_remove(volatile void *addr);
/** How many faults the guard absorbed (for tests). */
unsigned long pnvme_bar_guard_fired(void);

/**
 * "pid N (comm)" of another process holding character device `path` open, by
 * device number (pci_usage.c; best effort, root sees all). 0, or -ENOENT if none.
 */
int pnvme_chr_opener(const char *path, char *out, size_t len);
/** The last component of the target of symbolic link `path` (pci.c). 0 / -errno. */
int pnvme_link_base(const char *path, char *out, size_t len);

/*
 * Test hook, NULL unless a unit test sets it (not exported from the shared
 * library): called by an I/O queue pair's deadline scan (core/recovery.c)
 * right before it asks for a controller reset, with no lock held. test_soak
 * delays there to widen the window in which another thread's reset runs.
 */
struct pnvme_ctrl;
extern void (*pnvme_test_reset_request_hook)(struct pnvme_ctrl *ctrl);

struct pnvme_emu;
/** Fill `be` for an existing emulator (emu_backend.c). */
int pnvme_emu_backend_init(struct pnvme_emu *emu, struct pnvme_backend *be);

/**
 * Open the vfio-pci device `bdf` and fill `be` (vfio.c). Returns 0 or a
 * negative errno with pnvme_last_error() set; -EOPNOTSUPP where VFIO support
 * is not built.
 */
int pnvme_vfio_backend_open(const char *bdf, struct pnvme_backend *be);

#endif /* PNVME_INTERNAL_H */
