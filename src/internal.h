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

static inline uint32_t mmio_read32(const volatile uint8_t *bar, size_t off)
{
	return *(const volatile uint32_t *)(bar + off);
}

static inline void mmio_write32(volatile uint8_t *bar, size_t off, uint32_t v)
{
	*(volatile uint32_t *)(bar + off) = v;
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
};

struct pnvme_backend {
	const struct pnvme_backend_ops *ops;
	void *ctx;
	volatile uint8_t *bar;  /* BAR0, registers and doorbells */
	size_t bar_len;
	uint64_t iova_base;     /* device-usable IOVA window [iova_base, iova_end) */
	uint64_t iova_end;
};

/* ------------------------------------------------------------------------ */
/* DMA allocator (dma.c)                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Virtual-to-IOVA translation is a two-level table indexed by the 2 MiB
 * virtual page: 47-bit user addresses give 2^26 pages, split 13 + 13 bits.
 * An entry holds (iova of the page's first byte) | 1, or 0 when unmapped.
 * Lookups are lock-free: level-2 tables are published with release stores
 * and never freed before the allocator is torn down.
 */
#define PNVME_XL_L2_BITS 13u
#define PNVME_XL_L1_BITS 13u
#define PNVME_XL_L2_SIZE (1u << PNVME_XL_L2_BITS)
#define PNVME_XL_L1_SIZE (1u << PNVME_XL_L1_BITS)

struct pnvme_dma_chunk;

struct pnvme_dma {
	uint64_t *xl[PNVME_XL_L1_SIZE];        /* translation table, hot for lookups */
	/* cold below */
	pthread_mutex_t lock;
	const struct pnvme_backend *be;
	struct pnvme_dma_chunk *chunks;        /* every mapped chunk run */
	void *iova_free;                       /* free IOVA ranges (dma.c) */
	uint64_t iova_next;                    /* bump pointer above freed ranges */
	bool hugepages;                        /* last chunk came from hugepages */
	bool warned_no_huge;
};

/** Set up an allocator over backend `be` (which must outlive it). 0 / -ENOMEM. */
int pnvme_dma_init(struct pnvme_dma *d, const struct pnvme_backend *be);
/** Unmap and free every chunk still allocated. */
void pnvme_dma_fini(struct pnvme_dma *d);
/** As pnvme_dma_alloc() (pnvme/dma.h), on an allocator. */
int pnvme_dma_alloc_raw(struct pnvme_dma *d, size_t size, size_t align, void **buf,
			uint64_t *iova);
/** As pnvme_dma_free(). Unknown pointers are ignored (logged). */
void pnvme_dma_free_raw(struct pnvme_dma *d, void *buf);

/** IOVA of one byte, or 0 if unmapped (IOVA 0 is never handed out). */
static inline uint64_t pnvme_dma_xlate1(const struct pnvme_dma *d, uintptr_t va)
{
	uintptr_t page = va >> PNVME_CHUNK_SHIFT;
	uintptr_t i1 = page >> PNVME_XL_L2_BITS;
	if (unlikely(i1 >= PNVME_XL_L1_SIZE))
		return 0;
	const uint64_t *l2 = __atomic_load_n(&d->xl[i1], __ATOMIC_ACQUIRE);
	if (unlikely(l2 == NULL))
		return 0;
	uint64_t e = __atomic_load_n(&l2[page & (PNVME_XL_L2_SIZE - 1)], __ATOMIC_RELAXED);
	if (unlikely(!(e & 1)))
		return 0;
	return (e & ~(uint64_t)1) + (va & (PNVME_CHUNK_SIZE - 1));
}

/**
 * The live table entry of va's 2 MiB page, or NULL if the page has no level-2
 * table. Queue pairs cache it: the entry is cleared when the page is unmapped
 * and level-2 tables live as long as the allocator, so the cache cannot go stale.
 */
static inline const uint64_t *pnvme_dma_xl_entry(const struct pnvme_dma *d, uintptr_t va)
{
	uintptr_t page = va >> PNVME_CHUNK_SHIFT;
	uintptr_t i1 = page >> PNVME_XL_L2_BITS;
	if (i1 >= PNVME_XL_L1_SIZE)
		return NULL;
	const uint64_t *l2 = __atomic_load_n(&d->xl[i1], __ATOMIC_ACQUIRE);
	return l2 ? &l2[page & (PNVME_XL_L2_SIZE - 1)] : NULL;
}

/**
 * IOVA of [va, va+len): 0 and *iova on success; -EINVAL if any part is not
 * DMA memory of this allocator or the range is not IOVA-contiguous.
 */
static inline int pnvme_dma_xlate(const struct pnvme_dma *d, const void *va, size_t len,
				  uint64_t *iova)
{
	uintptr_t s = (uintptr_t)va;
	uint64_t a = pnvme_dma_xlate1(d, s);
	if (unlikely(a == 0))
		return -EINVAL;
	if (len > 1 && ((s ^ (s + len - 1)) >> PNVME_CHUNK_SHIFT) != 0) {
		uint64_t b = pnvme_dma_xlate1(d, s + len - 1);
		if (unlikely(b == 0 || b - a != len - 1))
			return -EINVAL;
	}
	*iova = a;
	return 0;
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
 * device number (pci.c; best effort, root sees all). 0, or -ENOENT if none.
 */
int pnvme_chr_opener(const char *path, char *out, size_t len);
/** The last component of the target of symbolic link `path` (pci.c). 0 / -errno. */
int pnvme_link_base(const char *path, char *out, size_t len);

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
