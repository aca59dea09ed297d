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

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * A tick count bracketed by two CLOCK_MONOTONIC readings: the tick count was
 * read at some time in [lo, hi]. The tightest of a few tries; a preemption
 * between the reads widens the bracket instead of skewing the comparison.
 */
struct stamp {
	uint64_t lo, hi, ticks;
};

static struct stamp stamp(void)
{
	struct stamp best = { 0, UINT64_MAX, 0 };

	for (int i = 0; i < 5; i++) {
		struct stamp s;
		s.lo = mono_ns();
		s.ticks = pnvme_ticks();
		s.hi = mono_ns();
		if (s.hi - s.lo < best.hi - best.lo)
			best = s;
	}
	return best;
}

static void test_ticks_follow_wall_clock(void **state)
{
	(void)state;
	struct timespec req = { 0, 100 * 1000 * 1000 }; /* 100 ms */
	struct stamp a = stamp();
	uint64_t m0 = pnvme_now_ms();

	nanosleep(&req, NULL);
	uint64_t m1 = pnvme_now_ms();
	struct stamp b = stamp();
	uint64_t ms_by_ticks = (b.ticks - a.ticks) * 1000u / pnvme_ticks_hz();

	/* The millisecond clock: not less than the sleep; the upper bound only
	 * catches a clock running wild (a busy machine may oversleep a lot). */
	assert_true(m1 - m0 >= 100);
	assert_true(m1 - m0 < 5000);
	/*
	 * Both clocks saw the same interval, within 20 % or 10 ms. The interval
	 * between the two tick readings lies in [b.lo - a.hi, b.hi - a.lo] by
	 * CLOCK_MONOTONIC, however long the process was preempted meanwhile.
	 */
	uint64_t lo_ms = (b.lo - a.hi) / 1000000u, hi_ms = (b.hi - a.lo + 999999u) / 1000000u;
	if (ms_by_ticks + 10 < lo_ms && ms_by_ticks * 5 < lo_ms * 4)
		fail_msg("%llu ms by ticks, at least %llu ms by CLOCK_MONOTONIC",
			 (unsigned long long)ms_by_ticks, (unsigned long long)lo_ms);
	if (ms_by_ticks > hi_ms + 10 && ms_by_ticks * 5 > hi_ms * 6)
		fail_msg("%llu ms by ticks, at most %llu ms by CLOCK_MONOTONIC",
			 (unsigned long long)ms_by_ticks, (unsigned long long)hi_ms);
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
