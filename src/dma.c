/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dma.c - memory the device can reach: chunks, IOVA space, sub-allocation,
 * and the virtual-to-IOVA translation table.
 *
 * Memory comes from the system in 2 MiB chunks (hugepages when the system has
 * them). Each chunk run (one chunk, or several contiguous ones for a request
 * over 2 MiB) gets an IOVA range of its own and is mapped for the device with
 * one backend dma_map call. The translation table (internal.h) gets one entry
 * per 2 MiB page, so pnvme_dma_xlate() is two loads.
 *
 * Requests up to 2 MiB are carved from chunks in 4 KiB granules (the NVMe
 * memory page size pnvme uses, CC.MPS = 0, Base 2.0 §3.1.4.5), which keeps
 * every buffer page aligned as PRPs require (Base 2.0 §4.1.1: PRP entries
 * other than the first have a zero offset). A bitmap per chunk marks the
 * granules in use and those that start an allocation.
 *
 * Locking: allocation and free take d->lock. Lookups take no lock: level-2
 * tables are published with release stores and are freed only by
 * pnvme_dma_fini().
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

#define GRANULES     (PNVME_CHUNK_SIZE >> PNVME_PAGE_SHIFT) /* 512 per chunk */
#define BITMAP_WORDS (GRANULES / 64u)
#define CACHED_EMPTY 2u /* fully free small chunks kept mapped for reuse */
/* 2 MiB pages the translation table covers: 47-bit user addresses. */
#define XL_PAGES     ((uintptr_t)PNVME_XL_L1_SIZE * PNVME_XL_L2_SIZE)

_Static_assert(GRANULES == 512, "512 granules of 4 KiB per 2 MiB chunk");
_Static_assert(PNVME_XL_L1_BITS + PNVME_XL_L2_BITS + PNVME_CHUNK_SHIFT == 47,
	       "translation table covers 47-bit addresses");

/* A run of one or more 2 MiB chunks, contiguous in VA and in IOVA. */
struct pnvme_dma_chunk {
	struct pnvme_dma_chunk *next;
	uint8_t *va;
	uint64_t iova;
	size_t len;        /* bytes, a multiple of 2 MiB */
	bool huge;         /* backed by hugetlb pages */
	bool large;        /* a single allocation of more than 2 MiB */
	/* Sub-allocation state, small (single-chunk) runs only. */
	unsigned nfree;    /* free granules */
	unsigned clean;    /* granules from here up were never handed out (still zero) */
	uint64_t used[BITMAP_WORDS];  /* granule is allocated */
	uint64_t head[BITMAP_WORDS];  /* granule is the first of an allocation */
};

/* A free IOVA range below d->iova_next; the list is sorted and coalesced. */
struct iova_range {
	struct iova_range *next;
	uint64_t start;
	uint64_t len;
};

static inline bool bit_test(const uint64_t *map, unsigned i)
{
	return (map[i / 64u] >> (i % 64u)) & 1u;
}

static inline void bit_set(uint64_t *map, unsigned i)
{
	map[i / 64u] |= (uint64_t)1 << (i % 64u);
}

static inline void bit_clear(uint64_t *map, unsigned i)
{
	map[i / 64u] &= ~((uint64_t)1 << (i % 64u));
}

/* ------------------------------------------------------------------------ */
/* Chunk memory                                                             */
/* ------------------------------------------------------------------------ */

/*
 * Get `len` bytes (a multiple of 2 MiB), 2 MiB aligned, populated and zeroed.
 * Hugepages first; otherwise ordinary anonymous memory, over-allocated by
 * 2 MiB and trimmed to an aligned start so that translation by 2 MiB page
 * still works. This is the one place that knows where chunks come from.
 */
static void *chunk_mem_alloc(struct pnvme_dma *d, size_t len, bool *huge)
{
	uint8_t *raw, *p;
	size_t span = len + PNVME_CHUNK_SIZE, head, tail;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB | MAP_POPULATE, -1, 0);
	if (p != MAP_FAILED) {
		*huge = true;
		return p;
	}
	if (!d->warned_no_huge) {
		d->warned_no_huge = true;
		log_notice("no hugepages, using 4 KiB pages");
	}

	raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	p = (uint8_t *)ALIGN_UP((uintptr_t)raw, (uintptr_t)PNVME_CHUNK_SIZE);
	head = (size_t)(p - raw);
	tail = span - head - len;
	if (head != 0)
		munmap(raw, head);
	if (tail != 0)
		munmap(p + len, tail);
	/* Let transparent hugepages back it if they can; fine if not. */
	(void)madvise(p, len, MADV_HUGEPAGE);
	/* Populate now so the first I/O does not take page faults. */
	for (size_t off = 0; off < len; off += PNVME_PAGE_SIZE)
		((volatile uint8_t *)p)[off] = 0;
	*huge = false;
	return p;
}

static void chunk_mem_free(void *va, size_t len)
{
	munmap(va, len);
}

/* ------------------------------------------------------------------------ */
/* IOVA space                                                               */
/* ------------------------------------------------------------------------ */

/* First fit in the free list, else the bump pointer. 0 / -ENOMEM. */
static int iova_alloc(struct pnvme_dma *d, uint64_t len, uint64_t *iova)
{
	struct iova_range *prev = NULL, *r = d->iova_free;

	for (; r != NULL; prev = r, r = r->next) {
		if (r->len < len)
			continue;
		*iova = r->start;
		r->start += len;
		r->len -= len;
		if (r->len == 0) {
			if (prev != NULL)
				prev->next = r->next;
			else
				d->iova_free = r->next;
			free(r);
		}
		return 0;
	}
	if (d->iova_next > d->be->iova_end || d->be->iova_end - d->iova_next < len)
		return -ENOMEM;
	*iova = d->iova_next;
	d->iova_next += len;
	return 0;
}

/* If the highest free range ends at the bump pointer, lower the pointer instead. */
static void iova_trim_top(struct pnvme_dma *d)
{
	struct iova_range *prev = NULL, *r = d->iova_free;

	if (r == NULL)
		return;
	while (r->next != NULL) {
		prev = r;
		r = r->next;
	}
	if (r->start + r->len != d->iova_next)
		return;
	d->iova_next = r->start;
	if (prev != NULL)
		prev->next = NULL;
	else
		d->iova_free = NULL;
	free(r);
}

/* Return [start, start+len) to the free list, coalescing with neighbours. */
static void iova_release(struct pnvme_dma *d, uint64_t start, uint64_t len)
{
	struct iova_range *prev = NULL, *next = d->iova_free, *r;

	if (start + len == d->iova_next) {
		d->iova_next = start;
		iova_trim_top(d);
		return;
	}
	while (next != NULL && next->start < start) {
		prev = next;
		next = next->next;
	}
	if (prev != NULL && prev->start + prev->len == start) {
		prev->len += len;
		if (next != NULL && prev->start + prev->len == next->start) {
			prev->len += next->len;
			prev->next = next->next;
			free(next);
		}
	} else if (next != NULL && start + len == next->start) {
		next->start = start;
		next->len += len;
	} else {
		r = malloc(sizeof(*r));
		if (r == NULL) {
			log_warn("dma: out of memory, IOVA range 0x%llx+0x%llx leaked",
				 (unsigned long long)start, (unsigned long long)len);
			return;
		}
		r->start = start;
		r->len = len;
		r->next = next;
		if (prev != NULL)
			prev->next = r;
		else
			d->iova_free = r;
	}
	iova_trim_top(d);
}

/* ------------------------------------------------------------------------ */
/* Translation table                                                        */
/* ------------------------------------------------------------------------ */

/* Make sure level-2 tables exist for every 2 MiB page of [va, va+len). */
static int xl_prepare(struct pnvme_dma *d, uintptr_t va, size_t len)
{
	uintptr_t first = va >> PNVME_CHUNK_SHIFT;
	uintptr_t last = (va + len - 1) >> PNVME_CHUNK_SHIFT;

	for (uintptr_t i1 = first >> PNVME_XL_L2_BITS; i1 <= last >> PNVME_XL_L2_BITS; i1++) {
		uint64_t *l2;

		if (d->xl[i1] != NULL)
			continue;
		l2 = calloc(PNVME_XL_L2_SIZE, sizeof(*l2));
		if (l2 == NULL)
			return -ENOMEM;
		__atomic_store_n(&d->xl[i1], l2, __ATOMIC_RELEASE);
	}
	return 0;
}

/* Point each 2 MiB page of [va, va+len) at its IOVA, or clear it (iova 0). */
static void xl_set(struct pnvme_dma *d, uintptr_t va, size_t len, uint64_t iova)
{
	uintptr_t first = va >> PNVME_CHUNK_SHIFT;
	uintptr_t n = len >> PNVME_CHUNK_SHIFT;

	for (uintptr_t k = 0; k < n; k++) {
		uintptr_t page = first + k;
		uint64_t *l2 = d->xl[page >> PNVME_XL_L2_BITS];
		uint64_t e = iova != 0 ? (iova + ((uint64_t)k << PNVME_CHUNK_SHIFT)) | 1u : 0;

		__atomic_store_n(&l2[page & (PNVME_XL_L2_SIZE - 1)], e, __ATOMIC_RELEASE);
	}
}

/* ------------------------------------------------------------------------ */
/* Chunk runs                                                               */
/* ------------------------------------------------------------------------ */

/*
 * Allocate, IOVA-assign, map and publish a run of `len` bytes (a multiple of
 * 2 MiB). Every failure undoes what was done and returns -ENOMEM with
 * pnvme_last_error() set.
 */
static int run_create(struct pnvme_dma *d, size_t len, bool large, struct pnvme_dma_chunk **out)
{
	const struct pnvme_backend *be = d->be;
	struct pnvme_dma_chunk *c;
	uint64_t iova;
	bool huge;
	int rc;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return pnvme_fail(-ENOMEM, "dma: out of memory for chunk state");
	c->va = chunk_mem_alloc(d, len, &huge);
	if (c->va == NULL) {
		rc = pnvme_fail(-ENOMEM, "dma: cannot allocate %zu bytes of memory: %s", len,
				strerror(errno));
		goto err_free;
	}
	if ((((uintptr_t)c->va + len - 1) >> PNVME_CHUNK_SHIFT) >= XL_PAGES) {
		rc = pnvme_fail(-ENOMEM, "dma: memory at %p is above the 47-bit range", c->va);
		goto err_mem;
	}
	if (iova_alloc(d, len, &iova) != 0) {
		rc = pnvme_fail(-ENOMEM, "dma: IOVA space exhausted (%zu bytes requested)", len);
		goto err_mem;
	}
	if (xl_prepare(d, (uintptr_t)c->va, len) != 0) {
		rc = pnvme_fail(-ENOMEM, "dma: out of memory for the translation table");
		goto err_iova;
	}
	if (be->ops->dma_map != NULL) {
		rc = be->ops->dma_map(be->ctx, c->va, iova, len);
		if (rc != 0) {
			/* The backend said why (e.g. the memlock limit): keep its words. */
			char why[256];
			snprintf(why, sizeof(why), "%s", pnvme_last_error());
			if (why[0] == '\0')
				snprintf(why, sizeof(why), "%s", strerror(rc < 0 ? -rc : rc));
			rc = pnvme_fail(-ENOMEM, "dma: mapping %zu bytes at IOVA 0x%llx failed: %s",
					len, (unsigned long long)iova, why);
			goto err_iova;
		}
	}
	xl_set(d, (uintptr_t)c->va, len, iova);

	c->iova = iova;
	c->len = len;
	c->huge = huge;
	c->large = large;
	c->nfree = large ? 0 : (unsigned)GRANULES;
	c->next = d->chunks;
	d->chunks = c;
	d->hugepages = huge;
	*out = c;
	return 0;

err_iova:
	iova_release(d, iova, len);
err_mem:
	chunk_mem_free(c->va, len);
err_free:
	free(c);
	return rc;
}

/* Unpublish, unmap and free a run; `prev` is its predecessor in d->chunks. */
static void run_destroy(struct pnvme_dma *d, struct pnvme_dma_chunk *c,
			struct pnvme_dma_chunk *prev)
{
	const struct pnvme_backend *be = d->be;
	bool unmapped = true;

	if (prev != NULL)
		prev->next = c->next;
	else
		d->chunks = c->next;
	xl_set(d, (uintptr_t)c->va, c->len, 0);
	if (be->ops->dma_unmap != NULL) {
		int rc = be->ops->dma_unmap(be->ctx, c->iova, c->len);

		if (rc != 0) {
			/* The device may still reach the range: never hand it out again. */
			log_warn("dma: unmapping IOVA 0x%llx+0x%zx failed (%d), range retired",
				 (unsigned long long)c->iova, c->len, rc);
			unmapped = false;
		}
	}
	if (unmapped)
		iova_release(d, c->iova, c->len);
	chunk_mem_free(c->va, c->len);
	free(c);
}

/* ------------------------------------------------------------------------ */
/* Sub-allocation in 4 KiB granules                                         */
/* ------------------------------------------------------------------------ */

/* First run of `n` free granules starting at a multiple of `step`, or -1. */
static int find_free(const struct pnvme_dma_chunk *c, unsigned n, unsigned step)
{
	unsigned pos = 0;

	while (pos + n <= GRANULES) {
		unsigned i;

		for (i = 0; i < n; i++)
			if (bit_test(c->used, pos + i))
				break;
		if (i == n)
			return (int)pos;
		pos = ALIGN_UP(pos + i + 1, step);
	}
	return -1;
}

static void *take_granules(struct pnvme_dma_chunk *c, unsigned pos, unsigned n)
{
	uint8_t *p = c->va + ((size_t)pos << PNVME_PAGE_SHIFT);

	for (unsigned i = 0; i < n; i++)
		bit_set(c->used, pos + i);
	bit_set(c->head, pos);
	c->nfree -= n;
	/* Granules handed out before may hold old data; fresh ones are zero. */
	if (pos < c->clean) {
		unsigned dirty = (pos + n < c->clean ? pos + n : c->clean) - pos;

		memset(p, 0, (size_t)dirty << PNVME_PAGE_SHIFT);
	}
	if (pos + n > c->clean)
		c->clean = pos + n;
	return p;
}

static int alloc_small(struct pnvme_dma *d, size_t size, size_t align, void **buf,
		       struct pnvme_dma_chunk **chunk)
{
	unsigned n = (unsigned)((size + PNVME_PAGE_SIZE - 1) >> PNVME_PAGE_SHIFT);
	unsigned step = (unsigned)(align >> PNVME_PAGE_SHIFT);
	struct pnvme_dma_chunk *c;
	int pos, rc;

	for (c = d->chunks; c != NULL; c = c->next) {
		if (c->large || c->nfree < n)
			continue;
		pos = find_free(c, n, step);
		if (pos >= 0)
			goto found;
	}
	rc = run_create(d, PNVME_CHUNK_SIZE, false, &c);
	if (rc != 0)
		return rc;
	pos = 0;
found:
	*buf = take_granules(c, (unsigned)pos, n);
	*chunk = c;
	return 0;
}

/* Number of small chunks with every granule free. */
static unsigned count_empty(const struct pnvme_dma *d)
{
	unsigned n = 0;

	for (const struct pnvme_dma_chunk *c = d->chunks; c != NULL; c = c->next)
		if (!c->large && c->nfree == GRANULES)
			n++;
	return n;
}

/* ------------------------------------------------------------------------ */
/* Public (internal.h) entry points                                         */
/* ------------------------------------------------------------------------ */

int pnvme_dma_init(struct pnvme_dma *d, const struct pnvme_backend *be)
{
	uint64_t start;

	if (d == NULL || be == NULL || be->ops == NULL)
		return pnvme_fail(-EINVAL, "dma: no backend");
	memset(d, 0, sizeof(*d));
	if (pthread_mutex_init(&d->lock, NULL) != 0)
		return pnvme_fail(-ENOMEM, "dma: cannot initialise the allocator lock");
	d->be = be;
	/* 2 MiB aligned IOVA ranges, never IOVA 0 (it means "unmapped"). */
	start = be->iova_base < PNVME_CHUNK_SIZE ? PNVME_CHUNK_SIZE : be->iova_base;
	if (start > UINT64_MAX - PNVME_CHUNK_SIZE)
		start = UINT64_MAX;
	else
		start = ALIGN_UP(start, (uint64_t)PNVME_CHUNK_SIZE);
	d->iova_next = start;
	return 0;
}

void pnvme_dma_fini(struct pnvme_dma *d)
{
	struct iova_range *r, *rn;

	if (d == NULL || d->be == NULL)
		return;
	while (d->chunks != NULL)
		run_destroy(d, d->chunks, NULL);
	for (r = d->iova_free; r != NULL; r = rn) {
		rn = r->next;
		free(r);
	}
	d->iova_free = NULL;
	for (size_t i = 0; i < PNVME_XL_L1_SIZE; i++) {
		free(d->xl[i]);
		d->xl[i] = NULL;
	}
	pthread_mutex_destroy(&d->lock);
	d->be = NULL;
}

int pnvme_dma_alloc_raw(struct pnvme_dma *d, size_t size, size_t align, void **buf,
			uint64_t *iova)
{
	struct pnvme_dma_chunk *c = NULL;
	void *p = NULL;
	int rc;

	if (d == NULL || d->be == NULL || buf == NULL)
		return pnvme_fail(-EINVAL, "dma alloc: no allocator or no result pointer");
	if (size == 0)
		return pnvme_fail(-EINVAL, "dma alloc: size 0");
	if (align == 0)
		align = PNVME_PAGE_SIZE;
	if ((align & (align - 1)) != 0 || align > PNVME_CHUNK_SIZE)
		return pnvme_fail(-EINVAL, "dma alloc: alignment %zu is not a power of two up to 2 MiB",
				  align);
	if (align < PNVME_PAGE_SIZE)
		align = PNVME_PAGE_SIZE;
	if (size > SIZE_MAX - PNVME_CHUNK_SIZE)
		return pnvme_fail(-ENOMEM, "dma alloc: %zu bytes is too large", size);

	pthread_mutex_lock(&d->lock);
	if (size > PNVME_CHUNK_SIZE) {
		/* A run of its own: 2 MiB aligned, so any `align` is met. */
		rc = run_create(d, ALIGN_UP(size, PNVME_CHUNK_SIZE), true, &c);
		if (rc == 0)
			p = c->va;
	} else {
		rc = alloc_small(d, size, align, &p, &c);
	}
	if (rc == 0) {
		*buf = p;
		if (iova != NULL)
			*iova = c->iova + (uint64_t)((uint8_t *)p - c->va);
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

void pnvme_dma_free_raw(struct pnvme_dma *d, void *buf)
{
	struct pnvme_dma_chunk *c, *prev = NULL;
	uint8_t *p = buf;
	unsigned pos, i;

	if (buf == NULL || d == NULL || d->be == NULL)
		return;
	pthread_mutex_lock(&d->lock);
	for (c = d->chunks; c != NULL; prev = c, c = c->next)
		if (p >= c->va && p < c->va + c->len)
			break;
	if (c == NULL)
		goto bad;
	if (c->large) {
		if (p != c->va)
			goto bad;
		run_destroy(d, c, prev);
		goto out;
	}
	if (((uintptr_t)(p - c->va) & (PNVME_PAGE_SIZE - 1)) != 0)
		goto bad;
	pos = (unsigned)((size_t)(p - c->va) >> PNVME_PAGE_SHIFT);
	if (!bit_test(c->head, pos))
		goto bad;
	bit_clear(c->head, pos);
	/* The allocation runs to the next free granule or the next allocation's head. */
	for (i = pos; i < GRANULES && bit_test(c->used, i) && (i == pos || !bit_test(c->head, i)); i++)
		bit_clear(c->used, i);
	c->nfree += i - pos;
	if (c->nfree == GRANULES && count_empty(d) > CACHED_EMPTY)
		run_destroy(d, c, prev);
out:
	pthread_mutex_unlock(&d->lock);
	return;
bad:
	pthread_mutex_unlock(&d->lock);
	log_warn("dma free: %p is not an allocation of this DMA allocator, ignored", buf);
}
