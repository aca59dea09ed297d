/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dma.c - memory the device can reach: chunks, IOVA space, sub-allocation,
 * and the virtual-to-IOVA translation table.
 *
 * Memory comes from the system in 2 MiB chunks (hugepages when the system has
 * them). Each chunk run (one chunk, or several contiguous ones for a request
 * over 2 MiB) gets an IOVA range of its own and is mapped for the device with
 * one backend dma_map call. The translation table (internal.h) gets one entry
 * per 2 MiB page, pointing at that page's descriptor.
 *
 * Requests up to 2 MiB are carved from chunks in 4 KiB granules (the NVMe
 * memory page size pnvme uses, CC.MPS = 0, Base 2.0 §3.1.4.5), which keeps
 * every buffer page aligned as PRPs require (Base 2.0 §4.1.1: PRP entries
 * other than the first have a zero offset). Each granule records where the
 * allocation holding it ends, in bytes as asked for (the page descriptor's
 * end[]), and small runs record which granule starts each allocation
 * (owner[]): the device may be pointed only at bytes of one live
 * allocation, so a transfer running past its buffer, straddling two buffers
 * or reaching into a freed one is refused before the device sees it.
 *
 * Locking: allocation and free take d->lock. Lookups take no lock: level-2
 * tables are published with release stores and are freed only by
 * pnvme_dma_fini(); page descriptors are parked on d->retired, never freed,
 * until then. What lookups read is written with atomic stores.
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

#define GRANULES     PNVME_GRANULES
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
	struct pnvme_dma_page **pages; /* one descriptor per 2 MiB page */
	/* Sub-allocation state, small (single-chunk) runs only. */
	unsigned nfree;    /* free granules (pages[0]->clean: never handed out, still zero) */
	/* owner[g]: 1 + first granule of the allocation holding granule g, 0 if free */
	uint16_t owner[GRANULES];
};

_Static_assert(GRANULES <= UINT16_MAX, "owner entries fit 16 bits");

/* Matches no page: the empty translation cache. */
const struct pnvme_dma_page pnvme_dma_no_page = { .page = UINTPTR_MAX };

/* A free IOVA range below d->iova_next; the list is sorted and coalesced. */
struct iova_range {
	struct iova_range *next;
	uint64_t start;
	uint64_t len;
};

static inline void end_set(struct pnvme_dma_page *pg, unsigned g, uint32_t v)
{
	__atomic_store_n(&pg->end[g], v, __ATOMIC_RELAXED);
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
/* Translation table and page descriptors                                   */
/* ------------------------------------------------------------------------ */

/* Make sure level-2 tables exist for every 2 MiB page of [va, va+len). */
static int xl_prepare(struct pnvme_dma *d, uintptr_t va, size_t len)
{
	uintptr_t first = va >> PNVME_CHUNK_SHIFT;
	uintptr_t last = (va + len - 1) >> PNVME_CHUNK_SHIFT;

	for (uintptr_t i1 = first >> PNVME_XL_L2_BITS; i1 <= last >> PNVME_XL_L2_BITS; i1++) {
		struct pnvme_dma_page **l2;

		if (d->xl[i1] != NULL)
			continue;
		l2 = calloc(PNVME_XL_L2_SIZE, sizeof(*l2));
		if (l2 == NULL)
			return -ENOMEM;
		__atomic_store_n(&d->xl[i1], l2, __ATOMIC_RELEASE);
	}
	return 0;
}

/* Point the table entry of 2 MiB page `page` at pg (NULL: unmapped). */
static void xl_set(struct pnvme_dma *d, uintptr_t page, struct pnvme_dma_page *pg)
{
	struct pnvme_dma_page **l2 = d->xl[page >> PNVME_XL_L2_BITS];

	__atomic_store_n(&l2[page & (PNVME_XL_L2_SIZE - 1)], pg, __ATOMIC_RELEASE);
}

/* The descriptor of va's 2 MiB page, or NULL. Lock-free. */
static const struct pnvme_dma_page *xl_lookup(const struct pnvme_dma *d, uintptr_t va)
{
	uintptr_t page = va >> PNVME_CHUNK_SHIFT;
	uintptr_t i1 = page >> PNVME_XL_L2_BITS;
	struct pnvme_dma_page *const *l2;

	if (i1 >= PNVME_XL_L1_SIZE)
		return NULL;
	l2 = __atomic_load_n(&d->xl[i1], __ATOMIC_ACQUIRE);
	if (l2 == NULL)
		return NULL;
	return __atomic_load_n(&l2[page & (PNVME_XL_L2_SIZE - 1)], __ATOMIC_ACQUIRE);
}

/* A page descriptor, retired or new, covering nothing yet. NULL: no memory. */
static struct pnvme_dma_page *page_get(struct pnvme_dma *d)
{
	struct pnvme_dma_page *pg = d->retired;

	if (pg != NULL) {
		d->retired = pg->next;
		pg->next = NULL;
		return pg; /* page = UINTPTR_MAX, every end 0 (page_retire) */
	}
	pg = calloc(1, sizeof(*pg));
	if (pg != NULL)
		pg->page = UINTPTR_MAX;
	return pg;
}

/*
 * Make pg cover nothing and park it: a lock-free lookup or a queue pair's
 * cache may still hold it, so it is never freed before pnvme_dma_fini().
 */
static void page_retire(struct pnvme_dma *d, struct pnvme_dma_page *pg)
{
	__atomic_store_n(&pg->page, UINTPTR_MAX, __ATOMIC_RELAXED);
	for (unsigned g = 0; g < GRANULES; g++)
		end_set(pg, g, 0);
	__atomic_store_n(&pg->big_bytes, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pg->clean, 0, __ATOMIC_RELAXED);
	pg->next = d->retired;
	d->retired = pg;
}

/* ------------------------------------------------------------------------ */
/* Chunk runs                                                               */
/* ------------------------------------------------------------------------ */

/* Retire the page descriptors of run c (their table entries already cleared). */
static void run_pages_put(struct pnvme_dma *d, struct pnvme_dma_chunk *c, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (c->pages[k] != NULL)
			page_retire(d, c->pages[k]);
	free(c->pages);
	c->pages = NULL;
}

/*
 * Allocate, IOVA-assign, map and publish a run of `len` bytes (a multiple of
 * 2 MiB). Every failure undoes what was done and returns -ENOMEM with
 * pnvme_last_error() set.
 */
static int run_create(struct pnvme_dma *d, size_t len, bool large, struct pnvme_dma_chunk **out)
{
	const struct pnvme_backend *be = d->be;
	size_t npages = len >> PNVME_CHUNK_SHIFT;
	struct pnvme_dma_chunk *c;
	uint64_t iova;
	bool huge;
	int rc;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return pnvme_fail(-ENOMEM, "dma: out of memory for chunk state");
	c->pages = calloc(npages, sizeof(*c->pages));
	if (c->pages == NULL) {
		free(c);
		return pnvme_fail(-ENOMEM, "dma: out of memory for chunk state");
	}
	for (size_t k = 0; k < npages; k++) {
		c->pages[k] = page_get(d);
		if (c->pages[k] == NULL) {
			rc = pnvme_fail(-ENOMEM, "dma: out of memory for page descriptors");
			goto err_pages;
		}
	}
	c->va = chunk_mem_alloc(d, len, &huge);
	if (c->va == NULL) {
		rc = pnvme_fail(-ENOMEM, "dma: cannot allocate %zu bytes of memory: %s", len,
				strerror(errno));
		goto err_pages;
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
	c->iova = iova;
	c->len = len;
	c->huge = huge;
	c->large = large;
	c->nfree = large ? 0 : (unsigned)GRANULES;
	c->next = d->chunks;
	d->chunks = c;
	d->hugepages = huge;
	for (size_t k = 0; k < npages; k++) {
		struct pnvme_dma_page *pg = c->pages[k];
		uintptr_t page = ((uintptr_t)c->va >> PNVME_CHUNK_SHIFT) + k;

		pg->iova = iova + ((uint64_t)k << PNVME_CHUNK_SHIFT);
		__atomic_store_n(&pg->page, page, __ATOMIC_RELAXED);
		xl_set(d, page, pg); /* release: the fields above are set */
	}
	*out = c;
	return 0;

err_iova:
	iova_release(d, iova, len);
err_mem:
	chunk_mem_free(c->va, len);
err_pages:
	run_pages_put(d, c, npages);
	free(c);
	return rc;
}

/* Unpublish, unmap and free a run; `prev` is its predecessor in d->chunks. */
static void run_destroy(struct pnvme_dma *d, struct pnvme_dma_chunk *c,
			struct pnvme_dma_chunk *prev)
{
	const struct pnvme_backend *be = d->be;
	size_t npages = c->len >> PNVME_CHUNK_SHIFT;
	bool unmapped = true;

	if (prev != NULL)
		prev->next = c->next;
	else
		d->chunks = c->next;
	for (size_t k = 0; k < npages; k++)
		xl_set(d, ((uintptr_t)c->va >> PNVME_CHUNK_SHIFT) + k, NULL);
	run_pages_put(d, c, npages);
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

/* Record a large run's one allocation of `bytes` in its page descriptors. */
static void run_set_large(struct pnvme_dma_chunk *c, size_t bytes)
{
	for (size_t k = 0; k < c->len >> PNVME_CHUNK_SHIFT; k++) {
		size_t from = k << PNVME_CHUNK_SHIFT; /* this page's offset in the run */

		__atomic_store_n(&c->pages[k]->big_va, (uintptr_t)c->va, __ATOMIC_RELAXED);
		__atomic_store_n(&c->pages[k]->big_bytes, bytes, __ATOMIC_RELAXED);
		for (unsigned g = 0; g < GRANULES; g++) {
			size_t gstart = from + ((size_t)g << PNVME_PAGE_SHIFT);
			size_t e = bytes - from;

			end_set(c->pages[k], g, gstart < bytes ? (e > UINT32_MAX ? UINT32_MAX : (uint32_t)e)
							       : 0);
		}
	}
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
			if (c->owner[pos + i] != 0)
				break;
		if (i == n)
			return (int)pos;
		pos = ALIGN_UP(pos + i + 1, step);
	}
	return -1;
}

static void *take_granules(struct pnvme_dma_chunk *c, unsigned pos, unsigned n, size_t bytes)
{
	uint8_t *p = c->va + ((size_t)pos << PNVME_PAGE_SHIFT);
	uint32_t end = (uint32_t)(((size_t)pos << PNVME_PAGE_SHIFT) + bytes);

	for (unsigned i = 0; i < n; i++) {
		c->owner[pos + i] = (uint16_t)(pos + 1);
		end_set(c->pages[0], pos + i, end);
	}
	c->nfree -= n;
	/* Granules handed out before may hold old data; fresh ones are zero. */
	unsigned clean = c->pages[0]->clean;
	if (pos < clean) {
		unsigned dirty = (pos + n < clean ? pos + n : clean) - pos;

		memset(p, 0, (size_t)dirty << PNVME_PAGE_SHIFT);
	}
	if (pos + n > clean)
		__atomic_store_n(&c->pages[0]->clean, pos + n, __ATOMIC_RELAXED);
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
	*buf = take_granules(c, (unsigned)pos, n, size);
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
	/* 2 MiB aligned IOVA ranges, never IOVA 0. */
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
	while (d->retired != NULL) {
		struct pnvme_dma_page *pg = d->retired;

		d->retired = pg->next;
		free(pg);
	}
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
		if (rc == 0) {
			run_set_large(c, size);
			p = c->va;
		}
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

/* The run holding p, or NULL (lock held). */
static struct pnvme_dma_chunk *run_find(struct pnvme_dma *d, const uint8_t *p,
					struct pnvme_dma_chunk **prev)
{
	struct pnvme_dma_chunk *c;

	*prev = NULL;
	for (c = d->chunks; c != NULL; *prev = c, c = c->next)
		if (p >= c->va && p < c->va + c->len)
			return c;
	return NULL;
}

int pnvme_dma_free_raw(struct pnvme_dma *d, void *buf)
{
	struct pnvme_dma_chunk *c, *prev;
	uint8_t *p = buf;
	unsigned pos, i, head;
	int rc = 0;

	if (buf == NULL)
		return 0;
	if (d == NULL || d->be == NULL)
		return pnvme_fail(-EINVAL, "dma free: no allocator");
	pthread_mutex_lock(&d->lock);
	c = run_find(d, p, &prev);
	if (c == NULL) {
		rc = pnvme_fail(-EINVAL, "dma free: %p is not pnvme DMA memory of this controller "
				"(never allocated here, or its memory was already released)", buf);
		goto out;
	}
	if (c->large) {
		if (p != c->va)
			rc = pnvme_fail(-EINVAL, "dma free: %p lies %zu bytes into the allocation at "
					"%p; free that address", buf, (size_t)(p - c->va),
					(void *)c->va);
		else
			run_destroy(d, c, prev);
		goto out;
	}
	pos = (unsigned)((size_t)(p - c->va) >> PNVME_PAGE_SHIFT);
	head = c->owner[pos];
	if (head == 0) {
		rc = pnvme_fail(-EINVAL, "dma free: %p was already freed (double free)", buf);
		goto out;
	}
	if (head != pos + 1 || ((uintptr_t)(p - c->va) & (PNVME_PAGE_SIZE - 1)) != 0) {
		uint8_t *start = c->va + ((size_t)(head - 1) << PNVME_PAGE_SHIFT);

		rc = pnvme_fail(-EINVAL, "dma free: %p lies %zu bytes into the allocation at %p; "
				"free that address", buf, (size_t)(p - start), (void *)start);
		goto out;
	}
	for (i = pos; i < GRANULES && c->owner[i] == head; i++) {
		end_set(c->pages[0], i, 0); /* lookups refuse it from here on */
		c->owner[i] = 0;
	}
	c->nfree += i - pos;
	if (c->nfree == GRANULES && count_empty(d) > CACHED_EMPTY)
		run_destroy(d, c, prev);
out:
	if (rc == 0) /* prepared requests check their buffers again */
		__atomic_add_fetch(&d->epoch, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

/*
 * The slow path of every translation: va's page descriptor from the table,
 * then the whole range against the allocation holding its first byte. It
 * reads only the page descriptor (never freed), never the run.
 */
static int xlate_full(const struct pnvme_dma *d, uintptr_t p, size_t len,
		      const struct pnvme_dma_page **pgp, uint64_t *iova)
{
	const struct pnvme_dma_page *pg = xl_lookup(d, p);
	uintptr_t off = p & (PNVME_CHUNK_SIZE - 1), astart;
	unsigned g = (unsigned)(off >> PNVME_PAGE_SHIFT);
	size_t abytes;
	uint32_t end;

	if (len == 0)
		len = 1;
	if (pg == NULL || __atomic_load_n(&pg->page, __ATOMIC_RELAXED) != p >> PNVME_CHUNK_SHIFT)
		return pnvme_fail(-EINVAL, "buffer %p is not pnvme DMA memory of this controller "
				  "(allocate it with pnvme_dma_alloc)", (void *)p);
	end = __atomic_load_n(&pg->end[g], __ATOMIC_RELAXED);
	if (end == 0)
		return pnvme_fail(-EINVAL, "buffer %p %s", (void *)p,
				  g < __atomic_load_n(&pg->clean, __ATOMIC_RELAXED)
					  ? "was freed (use after pnvme_dma_free)"
					  : "lies in pnvme DMA memory that was never allocated");
	abytes = __atomic_load_n(&pg->big_bytes, __ATOMIC_RELAXED);
	if (abytes != 0) {
		astart = __atomic_load_n(&pg->big_va, __ATOMIC_RELAXED);
	} else {
		/* A small allocation starts after the last granule before it with another end. */
		unsigned s = g;

		while (s > 0 && __atomic_load_n(&pg->end[s - 1], __ATOMIC_RELAXED) == end)
			s--;
		astart = (p & ~(uintptr_t)(PNVME_CHUNK_SIZE - 1)) + ((uintptr_t)s << PNVME_PAGE_SHIFT);
		abytes = end - ((size_t)s << PNVME_PAGE_SHIFT);
	}
	if (p < astart || len > abytes || p - astart > abytes - len)
		return pnvme_fail(-EINVAL, "buffer %p + %zu bytes overruns its allocation "
				  "(%zu bytes at %p) by %zu bytes", (void *)p, len, abytes,
				  (void *)astart, (size_t)(p - astart) + len - abytes);
	*pgp = pg;
	*iova = pg->iova + off;
	return 0;
}

int pnvme_dma_xlate(const struct pnvme_dma *d, const void *va, size_t len, uint64_t *iova)
{
	const struct pnvme_dma_page *pg = NULL;

	return xlate_full(d, (uintptr_t)va, len, &pg, iova);
}

int pnvme_dma_xlate_fill(const struct pnvme_dma *d, struct pnvme_dma_cache *k, uintptr_t va,
			 size_t len, uint64_t *iova)
{
	const struct pnvme_dma_page *pg = NULL;
	int rc = xlate_full(d, va, len, &pg, iova);

	if (rc == 0)
		k->pg = pg;
	return rc;
}
