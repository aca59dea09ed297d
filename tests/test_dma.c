/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_dma.c - the DMA allocator (dma.c) over a fake backend that records
 * every dma_map / dma_unmap call and checks that mappings are 2 MiB aligned,
 * inside the IOVA window, never at IOVA 0 and never overlapping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <pthread.h>

#include <cmocka.h>

#include "internal.h"

#define MiB ((size_t)1 << 20)
#define KiB ((size_t)1 << 10)
#define CHUNK PNVME_CHUNK_SIZE
#define MAX_MAPS 1024

/* ------------------------------------------------------------------------ */
/* Fake backend                                                             */
/* ------------------------------------------------------------------------ */

struct fake_map {
	uintptr_t va;
	uint64_t iova;
	size_t len;
	bool live;
	bool stale; /* unmap failed: the IOVA stays taken, the memory is gone */
};

struct fake {
	struct pnvme_backend be;
	pthread_mutex_t lock;
	struct fake_map maps[MAX_MAPS];
	unsigned nmaps;       /* entries used in maps[] */
	unsigned live;        /* live mappings */
	unsigned map_calls;
	unsigned unmap_calls;
	unsigned fail_map;    /* fail the next n dma_map calls */
	unsigned fail_unmap;  /* fail the next n dma_unmap calls */
};

static int fake_map(void *ctx, void *vaddr, uint64_t iova, size_t len)
{
	struct fake *f = ctx;
	uintptr_t va = (uintptr_t)vaddr;

	pthread_mutex_lock(&f->lock);
	f->map_calls++;
	assert_true(va % CHUNK == 0);
	assert_true(iova % CHUNK == 0);
	assert_true(len > 0 && len % CHUNK == 0);
	assert_true(iova != 0);
	assert_true(iova >= f->be.iova_base);
	assert_true(iova + len <= f->be.iova_end);
	if (f->fail_map > 0) {
		f->fail_map--;
		pthread_mutex_unlock(&f->lock);
		return -EIO;
	}
	for (unsigned i = 0; i < f->nmaps; i++) {
		const struct fake_map *m = &f->maps[i];

		if (!m->live)
			continue;
		assert_false(iova < m->iova + m->len && m->iova < iova + len); /* IOVA overlap */
		if (!m->stale)
			assert_false(va < m->va + m->len && m->va < va + len); /* VA overlap */
	}
	/* Reuse a dead slot, or append. */
	unsigned slot = f->nmaps;
	for (unsigned i = 0; i < f->nmaps; i++)
		if (!f->maps[i].live) {
			slot = i;
			break;
		}
	assert_true(slot < MAX_MAPS);
	if (slot == f->nmaps)
		f->nmaps++;
	f->maps[slot] = (struct fake_map){ .va = va, .iova = iova, .len = len, .live = true };
	f->live++;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static int fake_unmap(void *ctx, uint64_t iova, size_t len)
{
	struct fake *f = ctx;
	unsigned i;

	pthread_mutex_lock(&f->lock);
	f->unmap_calls++;
	for (i = 0; i < f->nmaps; i++)
		if (f->maps[i].live && f->maps[i].iova == iova)
			break;
	assert_true(i < f->nmaps);          /* unmap of something mapped */
	assert_int_equal(f->maps[i].len, len); /* with the same length */
	if (f->fail_unmap > 0) {
		f->fail_unmap--;
		f->maps[i].stale = true;
		pthread_mutex_unlock(&f->lock);
		return -EIO;
	}
	f->maps[i].live = false;
	f->live--;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static void fake_wait(void *ctx)
{
	(void)ctx;
}

static void fake_close(void *ctx)
{
	(void)ctx;
}

static const struct pnvme_backend_ops fake_ops = {
	.name = "fake",
	.dma_map = fake_map,
	.dma_unmap = fake_unmap,
	.wait = fake_wait,
	.close = fake_close,
};

/* One fake backend and one allocator per test. */
struct fixture {
	struct fake f;
	struct pnvme_dma d;
};

static struct fixture *fixture_new(uint64_t iova_base, uint64_t iova_end)
{
	struct fixture *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	pthread_mutex_init(&x->f.lock, NULL);
	x->f.be.ops = &fake_ops;
	x->f.be.ctx = &x->f;
	x->f.be.iova_base = iova_base;
	x->f.be.iova_end = iova_end;
	assert_int_equal(pnvme_dma_init(&x->d, &x->f.be), 0);
	return x;
}

static int setup(void **state)
{
	*state = fixture_new(0, (uint64_t)1 << 40);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *x = *state;

	pnvme_dma_fini(&x->d);
	/* fini unmaps everything it mapped */
	assert_int_equal(x->f.live, 0);
	assert_int_equal(x->f.fail_map, 0);
	pthread_mutex_destroy(&x->f.lock);
	free(x);
	return 0;
}

/* Log capture, to see the allocator's warnings. */
static unsigned warn_count;
static char last_warn[512];

static void capture_log(void *arg, enum pnvme_log_level level, const char *msg)
{
	(void)arg;
	if (level <= PNVME_LOG_WARN) {
		warn_count++;
		snprintf(last_warn, sizeof(last_warn), "%s", msg);
	}
}

static bool all_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i] != 0)
			return false;
	return true;
}

static uint64_t xlate_ok(const struct pnvme_dma *d, const void *p, size_t len)
{
	uint64_t iova = 0;

	assert_int_equal(pnvme_dma_xlate(d, p, len, &iova), 0);
	return iova;
}

static void assert_xlate_fails(const struct pnvme_dma *d, const void *p, size_t len)
{
	uint64_t iova = 0xdead;

	assert_int_equal(pnvme_dma_xlate(d, p, len, &iova), -EINVAL);
	assert_int_equal(iova, 0xdead); /* untouched on failure */
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */
/* ------------------------------------------------------------------------ */

static void test_init_fini_empty(void **state)
{
	struct fixture *x = *state;

	assert_int_equal(x->f.map_calls, 0);
	assert_int_equal(pnvme_dma_init(NULL, &x->f.be), -EINVAL);
}

static void test_invalid_args(void **state)
{
	struct fixture *x = *state;
	void *p = NULL;
	uint64_t iova;

	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 0, 0, &p, &iova), -EINVAL);
	assert_true(strlen(pnvme_last_error()) > 0);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4096, 3, &p, &iova), -EINVAL);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4096, 4096 + 512, &p, &iova), -EINVAL);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4096, 4 * MiB, &p, &iova), -EINVAL);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4096, 0, NULL, &iova), -EINVAL);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, SIZE_MAX, 0, &p, &iova), -ENOMEM);
	assert_null(p);
	assert_int_equal(x->f.map_calls, 0);
	pnvme_dma_free_raw(&x->d, NULL); /* ignored */
}

struct rec {
	uint8_t *p;
	size_t len;
	uint64_t iova;
};

static int rec_cmp(const void *a, const void *b)
{
	const struct rec *ra = a, *rb = b;

	return ra->p < rb->p ? -1 : ra->p > rb->p;
}

static void test_sizes_and_alignments(void **state)
{
	struct fixture *x = *state;
	static const size_t sizes[] = { 1, 100, 4095, 4096, 4097, 8192, 12345, 65536,
					MiB, CHUNK - 1, CHUNK };
	static const size_t aligns[] = { 0, 1, 8, 4096, 8192, 65536, MiB, CHUNK };
	struct rec recs[ARRAY_SIZE(sizes) * ARRAY_SIZE(aligns)];
	unsigned n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(aligns); j++) {
			size_t want = aligns[j] < 4096 ? 4096 : aligns[j];
			void *p = NULL;
			uint64_t iova = 0;

			assert_int_equal(pnvme_dma_alloc_raw(&x->d, sizes[i], aligns[j], &p, &iova), 0);
			assert_non_null(p);
			assert_true((uintptr_t)p % want == 0);
			assert_true(iova % want == 0);
			assert_true(iova != 0);
			assert_int_equal(xlate_ok(&x->d, p, sizes[i]), iova);
			assert_int_equal(xlate_ok(&x->d, (uint8_t *)p + sizes[i] - 1, 1),
					 iova + sizes[i] - 1);
			assert_true(all_zero(p, sizes[i]));
			memset(p, 0xa5, sizes[i]);
			recs[n++] = (struct rec){ p, sizes[i], iova };
		}
	}
	/* No two allocations overlap, in VA or in IOVA. */
	qsort(recs, n, sizeof(recs[0]), rec_cmp);
	for (unsigned i = 1; i < n; i++)
		assert_true(recs[i - 1].p + recs[i - 1].len <= recs[i].p);
	for (unsigned i = 0; i < n; i++)
		for (unsigned k = i + 1; k < n; k++)
			assert_false(recs[i].iova < recs[k].iova + recs[k].len &&
				     recs[k].iova < recs[i].iova + recs[i].len);
	for (unsigned i = 0; i < n; i++)
		pnvme_dma_free_raw(&x->d, recs[i].p);
	/* At most a couple of empty chunks stay cached. */
	assert_true(x->f.live <= 2);
}

static void test_xlate_interior(void **state)
{
	struct fixture *x = *state;
	uint8_t *p;
	uint64_t iova;

	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 64 * KiB, 0, (void **)&p, &iova), 0);
	assert_int_equal(xlate_ok(&x->d, p + 100, 1000), iova + 100);
	assert_int_equal(xlate_ok(&x->d, p, 64 * KiB), iova);
	assert_int_equal(xlate_ok(&x->d, p + 64 * KiB - 1, 1), iova + 64 * KiB - 1);
	assert_int_equal(xlate_ok(&x->d, p + 4096 + 17, 0), iova + 4096 + 17);
	assert_int_equal(pnvme_dma_xlate1(&x->d, (uintptr_t)(p + 12345)), iova + 12345);
	pnvme_dma_free_raw(&x->d, p);
}

static void test_large(void **state)
{
	struct fixture *x = *state;
	static const size_t sizes[] = { CHUNK + 1, 3 * MiB, 8 * MiB, 10 * MiB + 4096 };
	struct rec recs[ARRAY_SIZE(sizes)];

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		size_t len = sizes[i];
		size_t mapped = ALIGN_UP(len, CHUNK);
		unsigned calls = x->f.map_calls, live = x->f.live;
		uint8_t *p;
		uint64_t iova;

		assert_int_equal(pnvme_dma_alloc_raw(&x->d, len, 64 * KiB, (void **)&p, &iova), 0);
		/* A dedicated run: one mapping, 2 MiB aligned, contiguous in VA and IOVA. */
		assert_int_equal(x->f.map_calls, calls + 1);
		assert_int_equal(x->f.live, live + 1);
		assert_true((uintptr_t)p % CHUNK == 0);
		assert_true(iova % CHUNK == 0);
		for (unsigned m = 0; m < x->f.nmaps; m++)
			if (x->f.maps[m].live && x->f.maps[m].iova == iova)
				assert_int_equal(x->f.maps[m].len, mapped);
		assert_int_equal(xlate_ok(&x->d, p, len), iova);
		for (size_t off = CHUNK; off < len; off += CHUNK) {
			size_t n = len - off < 8 ? 8 + (len - off) : 16; /* within the size asked for */

			assert_int_equal(xlate_ok(&x->d, p + off - 8, n), iova + off - 8);
		}
		assert_int_equal(xlate_ok(&x->d, p + len - 1, 1), iova + len - 1);
		assert_true(all_zero(p, len));
		memset(p, 0x5a, len);
		recs[i] = (struct rec){ p, len, iova };
	}
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		unsigned live = x->f.live;

		pnvme_dma_free_raw(&x->d, recs[i].p);
		/* Large runs are unmapped at once, and their pages are gone. */
		assert_int_equal(x->f.live, live - 1);
		assert_int_equal(pnvme_dma_xlate1(&x->d, (uintptr_t)recs[i].p), 0);
	}
}

/*
 * Bounds are per allocation, to the byte asked for: a range running past its
 * buffer, across two buffers, or into freed or never-allocated memory of a
 * mapped chunk is refused, each with its own message.
 */
static void assert_xlate_says(const struct pnvme_dma *d, const void *p, size_t len,
			      const char *what)
{
	assert_xlate_fails(d, p, len);
	if (strstr(pnvme_last_error(), what) == NULL)
		fail_msg("expected \"%s\" in \"%s\"", what, pnvme_last_error());
}

static void test_bounds_per_allocation(void **state)
{
	struct fixture *x = *state;
	uint8_t *a, *b, *big;
	uint64_t ia, ib, ibig;

	/* Two small allocations: the second is carved right after the first. */
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 1000, 0, (void **)&a, &ia), 0);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 8192, 0, (void **)&b, &ib), 0);
	assert_int_equal(xlate_ok(&x->d, a, 1000), ia);
	assert_int_equal(xlate_ok(&x->d, a + 999, 1), ia + 999);
	/* One byte past the size asked for, though the granule is 4 KiB. */
	assert_xlate_says(&x->d, a, 1001, "overruns its allocation");
	assert_xlate_says(&x->d, a, 1001, "by 1 bytes");
	assert_xlate_says(&x->d, a + 1000, 1, "by 1 bytes");
	/* A read running 512 bytes past the end of its buffer. */
	assert_xlate_says(&x->d, b + 8192 - 512, 1024, "by 512 bytes");
	/* Straddling two allocations (adjacent in VA and IOVA). */
	if (a + 4096 == b) {
		assert_int_equal(ib, ia + 4096);
		assert_xlate_says(&x->d, a, 4096 + 16, "overruns its allocation");
	}
	/* Freed: refused, and said so. */
	assert_int_equal(pnvme_dma_free_raw(&x->d, b), 0);
	assert_xlate_says(&x->d, b, 512, "was freed");
	/* Never handed out, in a mapped chunk. */
	assert_xlate_says(&x->d, a + 256 * 4096, 16, "never allocated");
	/* Large runs are bounded by their size too, not by the 2 MiB chunks. */
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 3 * MiB + 100, 0, (void **)&big, &ibig), 0);
	assert_int_equal(xlate_ok(&x->d, big + 3 * MiB, 100), ibig + 3 * MiB);
	assert_xlate_says(&x->d, big + 3 * MiB, 101, "by 1 bytes");
	assert_xlate_says(&x->d, big + 3 * MiB + 96, 8, "by 4 bytes");
	assert_xlate_says(&x->d, big + 1 * MiB, 3 * MiB, "overruns its allocation");
	assert_xlate_says(&x->d, big + 4 * MiB - 8, 4, "never allocated"); /* the run's tail */
	assert_int_equal(pnvme_dma_free_raw(&x->d, big), 0);
	assert_xlate_says(&x->d, big, 1, "not pnvme DMA memory");
	assert_int_equal(pnvme_dma_free_raw(&x->d, a), 0);
}

/*
 * The queue pairs' cache: a hit still needs the range inside one live
 * allocation of the cached run; a buffer freed after it was cached is refused.
 */
static void test_cache(void **state)
{
	struct fixture *x = *state;
	struct pnvme_dma_cache k = { .pg = &pnvme_dma_no_page };
	uint8_t *a, *b, *big;
	uint64_t ia, ib, ibig, got;

	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 16 * KiB, 0, (void **)&a, &ia), 0);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4 * KiB, 0, (void **)&b, &ib), 0);
	assert_int_equal(pnvme_dma_cached_xlate(&x->d, &k, (uintptr_t)a + 8, 100, &got), 0);
	assert_int_equal(got, ia + 8);
	assert_true(k.pg->page == (uintptr_t)a >> 21);
	/* Past the allocation, inside the cached run: refused. */
	assert_int_equal(pnvme_dma_cached_xlate(&x->d, &k, (uintptr_t)a + 16 * KiB - 4, 8, &got),
			 -EINVAL);
	assert_non_null(strstr(pnvme_last_error(), "by 4 bytes"));
	/* Another allocation of the same run: a hit. */
	if ((uintptr_t)b >> 21 == k.pg->page) {
		assert_int_equal(pnvme_dma_cached_xlate(&x->d, &k, (uintptr_t)b, 4096, &got), 0);
		assert_int_equal(got, ib);
	}
	/* Freed after caching: refused. */
	assert_int_equal(pnvme_dma_free_raw(&x->d, b), 0);
	assert_int_equal(pnvme_dma_cached_xlate(&x->d, &k, (uintptr_t)b, 4096, &got), -EINVAL);
	assert_non_null(strstr(pnvme_last_error(), "freed"));
	/* A large run through the cache: bounded by its size. */
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 5 * MiB, 0, (void **)&big, &ibig), 0);
	assert_int_equal(pnvme_dma_cached_xlate(&x->d, &k, (uintptr_t)big + 4 * MiB, 4096, &got), 0);
	assert_int_equal(got, ibig + 4 * MiB);
	assert_int_equal(pnvme_dma_cached_xlate(&x->d, &k, (uintptr_t)big + 4 * MiB + 8, 4096,
						&got), 0);
	assert_int_equal(pnvme_dma_cached_xlate(&x->d, &k, (uintptr_t)big + 5 * MiB - 8, 16, &got),
			 -EINVAL);
	assert_int_equal(pnvme_dma_free_raw(&x->d, big), 0);
	assert_int_equal(pnvme_dma_cached_xlate(&x->d, &k, (uintptr_t)big + 4 * MiB, 8, &got),
			 -EINVAL);
	assert_int_equal(pnvme_dma_free_raw(&x->d, a), 0);
}

/*
 * The same with real allocations: whenever two 2 MiB allocations sit next to
 * each other in VA, a range across the boundary translates only if their
 * IOVAs are contiguous too.
 */
static void test_straddle_real(void **state)
{
	struct fixture *x = *state;
	enum { N = 12 };
	uint8_t *p[N];
	uint64_t iova[N];
	unsigned checked = 0;

	for (int i = 0; i < N; i++)
		assert_int_equal(pnvme_dma_alloc_raw(&x->d, CHUNK, 0, (void **)&p[i], &iova[i]), 0);
	for (int i = 0; i < N; i++) {
		for (int k = 0; k < N; k++) {
			uint64_t got;

			if (p[i] + CHUNK != p[k])
				continue;
			checked++;
			/* Two allocations, even when contiguous in IOVA: refused. */
			assert_xlate_fails(&x->d, p[k] - 8, 16);
			got = 0;
			assert_int_equal(pnvme_dma_xlate(&x->d, p[k] - 8, 8, &got), 0);
			assert_int_equal(got, iova[i] + CHUNK - 8);
		}
	}
	print_message("  %u VA-adjacent pairs checked\n", checked);
	for (int i = 0; i < N; i++)
		pnvme_dma_free_raw(&x->d, p[i]);
}

static void test_unknown_pointer(void **state)
{
	struct fixture *x = *state;
	int on_stack = 0;
	void *heap = malloc(64);
	void *other = mmap(NULL, 4 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *p;
	uint64_t iova, got;

	assert_non_null(heap);
	assert_true(other != MAP_FAILED);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 16 * KiB, 0, (void **)&p, &iova), 0);

	assert_xlate_fails(&x->d, &on_stack, sizeof(on_stack));
	assert_xlate_fails(&x->d, heap, 64);
	assert_xlate_fails(&x->d, other, 4096);
	assert_xlate_fails(&x->d, NULL, 1);

	/* Bogus frees are refused, each with its reason, and free nothing. */
	assert_int_equal(pnvme_dma_free_raw(&x->d, &on_stack), -EINVAL);
	assert_non_null(strstr(pnvme_last_error(), "not pnvme DMA memory"));
	assert_int_equal(pnvme_dma_free_raw(&x->d, heap), -EINVAL);
	assert_int_equal(pnvme_dma_free_raw(&x->d, other), -EINVAL);
	assert_int_equal(pnvme_dma_free_raw(&x->d, p + 4096), -EINVAL); /* interior */
	assert_non_null(strstr(pnvme_last_error(), "lies 4096 bytes into the allocation"));
	assert_int_equal(pnvme_dma_free_raw(&x->d, p + 1), -EINVAL);    /* not granule aligned */
	assert_non_null(strstr(pnvme_last_error(), "lies 1 bytes into the allocation"));

	/* The allocation survived the bogus frees... */
	assert_int_equal(xlate_ok(&x->d, p, 16 * KiB), iova);
	uint8_t *q;
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 16 * KiB, 0, (void **)&q, &got), 0);
	assert_true(q + 16 * KiB <= p || p + 16 * KiB <= q);
	/* ...and a double free is caught too. */
	assert_int_equal(pnvme_dma_free_raw(&x->d, p), 0);
	assert_int_equal(pnvme_dma_free_raw(&x->d, p), -EINVAL);
	assert_non_null(strstr(pnvme_last_error(), "already freed (double free)"));

	pnvme_dma_free_raw(&x->d, q);
	munmap(other, 4 * MiB);
	free(heap);
}

static void test_zeroed_and_reuse(void **state)
{
	struct fixture *x = *state;
	uint8_t *a, *b, *c;
	uint64_t ia, ib, ic;
	unsigned calls;

	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 64 * KiB, 0, (void **)&a, &ia), 0);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 64 * KiB, 0, (void **)&b, &ib), 0);
	memset(a, 0xff, 64 * KiB);
	memset(b, 0xee, 64 * KiB);
	calls = x->f.map_calls;
	pnvme_dma_free_raw(&x->d, a);
	/* First fit hands the same granules back, zeroed, without a new mapping. */
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 64 * KiB, 0, (void **)&c, &ic), 0);
	assert_ptr_equal(c, a);
	assert_int_equal(ic, ia);
	assert_true(all_zero(c, 64 * KiB));
	assert_int_equal(x->f.map_calls, calls);
	/* A smaller request in a dirty hole gets zeroed memory too. */
	pnvme_dma_free_raw(&x->d, b);
	memset(c, 0x11, 64 * KiB);
	pnvme_dma_free_raw(&x->d, c);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 100 * KiB, 0, (void **)&a, &ia), 0);
	assert_true(all_zero(a, 100 * KiB));
	pnvme_dma_free_raw(&x->d, a);

	/* IOVA of a freed large run is reused. */
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4 * MiB, 0, (void **)&a, &ia), 0);
	memset(a, 0x33, 4 * MiB);
	pnvme_dma_free_raw(&x->d, a);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4 * MiB, 0, (void **)&b, &ib), 0);
	assert_int_equal(ib, ia);
	assert_true(all_zero(b, 4 * MiB));
	pnvme_dma_free_raw(&x->d, b);
}

static void test_map_failure(void **state)
{
	struct fixture *x = *state;
	void *p = NULL;
	uint64_t iova, first;

	/* The very first chunk fails to map. */
	x->f.fail_map = 1;
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4096, 0, &p, &iova), -ENOMEM);
	assert_null(p);
	assert_non_null(strstr(pnvme_last_error(), "mapping"));
	assert_int_equal(x->f.live, 0);
	/* Nothing was kept: the next allocation maps a chunk at the same IOVA. */
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4096, 0, &p, &first), 0);
	assert_int_equal(first, CHUNK); /* iova_base 0: IOVA 0 is never handed out */
	assert_int_equal(x->f.live, 1);

	/* A large run fails; the chunk already there is untouched. */
	void *big = NULL;
	x->f.fail_map = 1;
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 6 * MiB, 0, &big, &iova), -ENOMEM);
	assert_null(big);
	assert_int_equal(x->f.live, 1);
	assert_int_equal(xlate_ok(&x->d, p, 4096), first);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 6 * MiB, 0, &big, &iova), 0);
	assert_int_equal(iova, first + CHUNK); /* the failed attempt's IOVA came back */
	pnvme_dma_free_raw(&x->d, big);
	pnvme_dma_free_raw(&x->d, p);
}

static void test_unmap_failure_retires_iova(void **state)
{
	struct fixture *x = *state;
	void *p;
	uint64_t ia, ib;

	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4 * MiB, 0, &p, &ia), 0);
	pnvme_set_log(capture_log, NULL, PNVME_LOG_WARN);
	warn_count = 0;
	x->f.fail_unmap = 1;
	pnvme_dma_free_raw(&x->d, p);
	pnvme_set_log(NULL, NULL, PNVME_LOG_ERR);
	assert_int_equal(warn_count, 1);
	/* The device may still see that IOVA: it is not handed out again. */
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4 * MiB, 0, &p, &ib), 0);
	assert_true(ib >= ia + 4 * MiB);
	pnvme_dma_free_raw(&x->d, p);
	/* Forget the stale mapping so the teardown's accounting holds. */
	for (unsigned i = 0; i < x->f.nmaps; i++)
		if (x->f.maps[i].live && x->f.maps[i].iova == ia) {
			x->f.maps[i].live = false;
			x->f.live--;
		}
}

static void test_many_small(void **state)
{
	struct fixture *x = *state;
	enum { N = 1500 }; /* 4 KiB each: three chunks of 512 granules, and some */
	struct rec *r = calloc(N, sizeof(*r));

	assert_non_null(r);
	for (int i = 0; i < N; i++) {
		assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4096, 0, (void **)&r[i].p, &r[i].iova), 0);
		r[i].len = 4096;
		r[i].p[0] = (uint8_t)i;
		r[i].p[4095] = (uint8_t)(i >> 8);
	}
	assert_int_equal(x->f.map_calls, (N + 511) / 512);
	qsort(r, N, sizeof(*r), rec_cmp);
	for (int i = 0; i < N; i++) {
		if (i > 0)
			assert_true(r[i - 1].p + 4096 <= r[i].p);
		assert_int_equal(xlate_ok(&x->d, r[i].p, 4096), r[i].iova);
	}
	/* Free every other one, then refill the holes without new chunks. */
	unsigned calls = x->f.map_calls;
	for (int i = 0; i < N; i += 2)
		pnvme_dma_free_raw(&x->d, r[i].p);
	for (int i = 0; i < N; i += 2) {
		assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4096, 0, (void **)&r[i].p, &r[i].iova), 0);
		assert_true(all_zero(r[i].p, 4096));
	}
	assert_int_equal(x->f.map_calls, calls);
	for (int i = 0; i < N; i++)
		pnvme_dma_free_raw(&x->d, r[i].p);
	assert_true(x->f.live <= 2);
	free(r);
}

static void test_alignment_packing(void **state)
{
	struct fixture *x = *state;
	uint8_t *a, *b, *c, *e;
	uint64_t ia, ib, ic, ie;

	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4096, 0, (void **)&a, &ia), 0);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4096, 64 * KiB, (void **)&b, &ib), 0);
	/* Same chunk, next 64 KiB boundary. */
	assert_ptr_equal(b, a + 64 * KiB);
	assert_int_equal(ib, ia + 64 * KiB);
	/* The gap below is still used for unaligned requests. */
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 8192, 0, (void **)&c, &ic), 0);
	assert_ptr_equal(c, a + 4096);
	/* 2 MiB alignment needs a chunk of its own. */
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4096, CHUNK, (void **)&e, &ie), 0);
	assert_true((uintptr_t)e % CHUNK == 0);
	assert_true(ie % CHUNK == 0);
	assert_int_equal(x->f.map_calls, 2);
	pnvme_dma_free_raw(&x->d, a);
	pnvme_dma_free_raw(&x->d, b);
	pnvme_dma_free_raw(&x->d, c);
	pnvme_dma_free_raw(&x->d, e);
}

static void test_iova_window(void **state)
{
	(void)state;
	/* A window of three chunks, starting at an unaligned base. */
	struct fixture *x = fixture_new(CHUNK + 4096, 5 * CHUNK);
	void *p[3], *q;
	uint64_t iova[3], iq;

	for (int i = 0; i < 3; i++)
		assert_int_equal(pnvme_dma_alloc_raw(&x->d, CHUNK, 0, &p[i], &iova[i]), 0);
	assert_int_equal(iova[0], 2 * CHUNK); /* base rounded up to 2 MiB */
	assert_int_equal(iova[2], 4 * CHUNK);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4096, 0, &q, &iq), -ENOMEM);
	assert_non_null(strstr(pnvme_last_error(), "IOVA"));
	/* Freeing a chunk makes room again (two cached empties may stay). */
	pnvme_dma_free_raw(&x->d, p[1]);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4096, 0, &q, &iq), 0);
	assert_int_equal(iq, iova[1]);
	pnvme_dma_free_raw(&x->d, q);
	pnvme_dma_free_raw(&x->d, p[0]);
	pnvme_dma_free_raw(&x->d, p[2]);
	/* Three empty chunks: one is released, so a 2-chunk run can't fit... */
	assert_int_equal(x->f.live, 2);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4 * MiB, 0, &q, &iq), -ENOMEM);
	void *s;
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4096, 0, &s, &iq), 0);
	assert_int_equal(x->f.map_calls, 3); /* ...but cached chunks serve small requests */
	pnvme_dma_free_raw(&x->d, s);
	void *st = x;
	teardown(&st);
}

static void test_iova_coalesce(void **state)
{
	struct fixture *x = *state;
	void *a, *b, *c, *e, *f;
	uint64_t ia, ib, ic, ie, iff;

	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4 * MiB, 0, &a, &ia), 0);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4 * MiB, 0, &b, &ib), 0);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4 * MiB, 0, &c, &ic), 0);
	assert_int_equal(ib, ia + 4 * MiB);
	assert_int_equal(ic, ib + 4 * MiB);
	/* Free a then b: one 8 MiB hole below c, which an 8 MiB run fits. */
	pnvme_dma_free_raw(&x->d, a);
	pnvme_dma_free_raw(&x->d, b);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 8 * MiB, 0, &e, &ie), 0);
	assert_int_equal(ie, ia);
	/* Free in the other order: coalescing on the right-hand side. */
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 6 * MiB, 0, &f, &iff), 0);
	assert_int_equal(iff, ic + 4 * MiB);
	pnvme_dma_free_raw(&x->d, c);
	pnvme_dma_free_raw(&x->d, e);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 12 * MiB, 0, &a, &ia), 0);
	assert_int_equal(ia, ie);
	/* Freeing the top run lowers the bump pointer: the next run starts there. */
	pnvme_dma_free_raw(&x->d, f);
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 8 * MiB, 0, &b, &ib), 0);
	assert_int_equal(ib, iff);
	pnvme_dma_free_raw(&x->d, a);
	pnvme_dma_free_raw(&x->d, b);
	/* Everything free again: the first IOVA is reused. */
	assert_int_equal(pnvme_dma_alloc_raw(&x->d, 4 * MiB, 0, &a, &ib), 0);
	assert_int_equal(ib, CHUNK);
	pnvme_dma_free_raw(&x->d, a);
}

/* Several threads allocate, translate (lock-free) and free at once. */
struct thr {
	struct fixture *x;
	unsigned seed;
};

static void *alloc_thread(void *arg)
{
	struct thr *t = arg;
	void *held[16] = { 0 };
	size_t lens[16] = { 0 };

	for (int iter = 0; iter < 400; iter++) {
		unsigned r = (unsigned)rand_r(&t->seed);
		unsigned slot = r % 16;

		if (held[slot] != NULL) {
			uint64_t iova;

			if (pnvme_dma_xlate(&t->x->d, held[slot], lens[slot], &iova) != 0)
				return (void *)1;
			for (size_t i = 0; i < lens[slot]; i += 512)
				if (((uint8_t *)held[slot])[i] != (uint8_t)slot)
					return (void *)2;
			pnvme_dma_free_raw(&t->x->d, held[slot]);
			held[slot] = NULL;
		} else {
			size_t len = (r >> 8) % 8 == 0 ? CHUNK + (size_t)((r >> 12) % 2) * MiB + 4096
						       : (size_t)((r >> 12) % 64 + 1) * 512;
			if (pnvme_dma_alloc_raw(&t->x->d, len, 0, &held[slot], NULL) != 0)
				return (void *)3;
			memset(held[slot], (int)slot, len);
			lens[slot] = len;
		}
	}
	for (int i = 0; i < 16; i++)
		pnvme_dma_free_raw(&t->x->d, held[i]);
	return NULL;
}

static void test_threads(void **state)
{
	struct fixture *x = *state;
	enum { T = 4 };
	pthread_t th[T];
	struct thr t[T];
	for (int i = 0; i < T; i++) {
		t[i] = (struct thr){ x, (unsigned)i * 7919u + 1 };
		assert_int_equal(pthread_create(&th[i], NULL, alloc_thread, &t[i]), 0);
	}
	for (int i = 0; i < T; i++) {
		void *ret;

		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_null(ret);
	}
	assert_true(x->f.live <= 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_fini_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sizes_and_alignments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xlate_interior, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds_per_allocation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_straddle_real, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_pointer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zeroed_and_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unmap_failure_retires_iova, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alignment_packing, setup, teardown),
		cmocka_unit_test(test_iova_window),
		cmocka_unit_test_setup_teardown(test_iova_coalesce, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};

	return cmocka_run_group_tests_name("dma", tests, NULL, NULL);
}
