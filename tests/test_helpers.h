/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_helpers.h - what several cmocka suites share. Include after <cmocka.h>
 * and <pnvme/pnvme.h>.
 */
#ifndef PNVME_TEST_HELPERS_H
#define PNVME_TEST_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Assert that `expr` returns `want`; on mismatch show both in decimal and the last error. */
#define assert_rc(expr, want)                                                          \
	do {                                                                           \
		int rc_ = (expr);                                                      \
		int want_ = (want);                                                    \
		if (rc_ != want_)                                                      \
			fail_msg("%s returned %d (%s), expected %d (%s); last error: %s", \
				 #expr, rc_, strerror(rc_ < 0 ? -rc_ : rc_), want_,     \
				 strerror(want_ < 0 ? -want_ : want_),                  \
				 pnvme_last_error());                                   \
	} while (0)
#define assert_ok(expr) assert_rc(expr, 0)

/*
 * Block contents f(lba, seed) of a `len`-byte block: the LBA and seed up front
 * (a misplaced block names where it came from), a pseudo-random tail. Seed 0
 * is the zeroes of a fresh namespace.
 */
static inline void test_block_fill(uint8_t *b, size_t len, uint64_t lba, uint32_t seed)
{
	if (seed == 0) {
		memset(b, 0, len);
		return;
	}
	uint32_t x = seed * 2654435761u ^ (uint32_t)lba * 40503u ^ 0x5bd1e995u;
	memcpy(b, &lba, 8);
	memcpy(b + 8, &seed, 4);
	for (size_t i = 12; i < len; i++) {
		x = x * 1103515245u + 12345u;
		b[i] = (uint8_t)(x >> 16);
	}
}

/* The block holds f(lba, seed). `len` up to 4096. */
static inline bool test_block_is(const uint8_t *b, size_t len, uint64_t lba, uint32_t seed)
{
	uint8_t want[4096];

	if (len > sizeof(want))
		return false;
	test_block_fill(want, len, lba, seed);
	return memcmp(b, want, len) == 0;
}

#endif
