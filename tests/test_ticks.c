/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_ticks.c - cycle counter calibration and the millisecond clock (ticks.c).
 * Bounds are loose on purpose: CI machines are busy.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "internal.h"

static void test_hz_sane_and_stable(void **state)
{
	(void)state;
	uint64_t hz = pnvme_ticks_hz();

	assert_true(hz >= 1000000u);                  /* at least 1 MHz */
	assert_true(hz <= 20000000000ull);            /* at most 20 GHz */
	assert_int_equal(pnvme_ticks_hz(), hz);       /* calibrated once */
	assert_int_equal(pnvme_ms_to_ticks(1000), hz / 1000u * 1000u);
}

static void test_ticks_follow_wall_clock(void **state)
{
	(void)state;
	struct timespec req = { 0, 100 * 1000 * 1000 }; /* 100 ms */
	uint64_t t0 = pnvme_ticks(), m0 = pnvme_now_ms();

	nanosleep(&req, NULL);
	uint64_t t1 = pnvme_ticks(), m1 = pnvme_now_ms();
	uint64_t ms_by_ticks = (t1 - t0) * 1000u / pnvme_ticks_hz();

	assert_true(m1 - m0 >= 100);
	assert_true(m1 - m0 < 5000);
	/* Both clocks saw the same interval, within 20 % or 10 ms. */
	uint64_t diff = ms_by_ticks > m1 - m0 ? ms_by_ticks - (m1 - m0) : (m1 - m0) - ms_by_ticks;
	assert_true(diff <= 10 || diff * 5 <= m1 - m0);
}

static void *hz_thread(void *arg)
{
	*(uint64_t *)arg = pnvme_ticks_hz();
	return NULL;
}

static void test_hz_same_in_every_thread(void **state)
{
	(void)state;
	pthread_t t[4];
	uint64_t hz[4];

	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hz_thread, &hz[i]), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(hz[i], pnvme_ticks_hz());
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* First, so that threads race for the one calibration. */
		cmocka_unit_test(test_hz_same_in_every_thread),
		cmocka_unit_test(test_hz_sane_and_stable),
		cmocka_unit_test(test_ticks_follow_wall_clock),
	};

	return cmocka_run_group_tests_name("ticks", tests, NULL, NULL);
}
