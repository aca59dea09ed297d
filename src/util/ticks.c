/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ticks.c - the cycle counter's frequency and a slow-path millisecond clock.
 *
 * pnvme_ticks() (internal.h) reads the TSC on x86 and the virtual counter on
 * arm64; elsewhere it is CLOCK_MONOTONIC in nanoseconds. Timeouts on the hot
 * path compare tick counts, so the frequency is needed once: on x86 it is
 * measured against CLOCK_MONOTONIC over ~10 ms (the TSC is assumed invariant,
 * as on every x86 CPU of the last decade); on arm64 the architecture reports
 * it in CNTFRQ_EL0.
 */
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "internal.h"

#define NSEC_PER_SEC   1000000000ull
#define CALIBRATE_NSEC 10000000ull /* 10 ms */

static pthread_once_t hz_once = PTHREAD_ONCE_INIT;
static uint64_t hz;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

#if defined(__x86_64__) || defined(__i386__)
/*
 * Sample the TSC and the monotonic clock close together: take the pair whose
 * clock_gettime bracket is shortest, so a preemption between the two reads
 * does not skew the result.
 */
static void sample(uint64_t *ns, uint64_t *tsc)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < 5; i++) {
		uint64_t t0 = mono_ns();
		uint64_t c = pnvme_ticks();
		uint64_t t1 = mono_ns();

		if (t1 - t0 < best) {
			best = t1 - t0;
			*ns = t0 + (t1 - t0) / 2;
			*tsc = c;
		}
	}
}

static uint64_t calibrate(void)
{
	uint64_t ns0 = 0, c0 = 0, ns1 = 0, c1 = 0;
	struct timespec req = { 0, (long)CALIBRATE_NSEC };

	sample(&ns0, &c0);
	/* Sleep most of the interval, then spin to the end of it. */
	nanosleep(&req, NULL);
	do
		sample(&ns1, &c1);
	while (ns1 - ns0 < CALIBRATE_NSEC);
	if (c1 <= c0)
		return 0;
	return (uint64_t)((unsigned __int128)(c1 - c0) * NSEC_PER_SEC / (ns1 - ns0));
}
#elif defined(__aarch64__)
static uint64_t calibrate(void)
{
	uint64_t f;

	__asm__ volatile("mrs %0, cntfrq_el0" : "=r"(f));
	return f;
}
#else
/* pnvme_ticks() is CLOCK_MONOTONIC in nanoseconds. */
static uint64_t calibrate(void)
{
	return NSEC_PER_SEC;
}
#endif

static void hz_init(void)
{
	uint64_t f = calibrate();

	/*
	 * pnvme_ms_to_ticks() divides by 1000; a counter slower than 1 MHz
	 * would make timeouts meaningless. Fall back to nanoseconds' rate
	 * rather than return 0.
	 */
	if (f < 1000000u) {
		log_warn("cycle counter calibration failed (%llu Hz), assuming 1 GHz",
			 (unsigned long long)f);
		f = NSEC_PER_SEC;
	}
	hz = f;
	log_debug("cycle counter: %llu Hz", (unsigned long long)f);
}

uint64_t pnvme_ticks_hz(void)
{
	pthread_once(&hz_once, hz_init);
	return hz;
}

uint64_t pnvme_now_ms(void)
{
	return mono_ns() / 1000000u;
}
