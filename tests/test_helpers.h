/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_helpers.h - what several cmocka suites share. Include after <cmocka.h>
 * and <pnvme/pnvme.h>.
 */
#ifndef PNVME_TEST_HELPERS_H
#define PNVME_TEST_HELPERS_H

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

#endif
