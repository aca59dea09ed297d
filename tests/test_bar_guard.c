/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_bar_guard.c - the SIGBUS guard for device register windows: a mapping
 * that starts to fault (here a shared file mapping whose file is truncated,
 * which raises SIGBUS exactly as a zapped VFIO BAR does) reads all ones
 * after the guard absorbed the fault; faults outside guarded windows still
 * reach the previous handler.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"

static void *map_truncated(int *fd_out, size_t len)
{
	char path[] = "/tmp/pnvme-bar-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(p != MAP_FAILED);
	((volatile uint32_t *)p)[0] = 0x12345678;
	/* The "device" goes away: every page of the mapping now faults. */
	assert_int_equal(ftruncate(fd, 0), 0);
	*fd_out = fd;
	return p;
}

static void test_guarded_window_reads_all_ones(void **state)
{
	(void)state;
	int fd;
	size_t len = 0x2000;
	volatile uint8_t *bar = map_truncated(&fd, len);
	unsigned long before = pnvme_bar_guard_fired();

	assert_int_equal(pnvme_bar_guard_add(bar, len), 0);
	assert_int_equal(mmio_read32(bar, PNVME_REG_CSTS), UINT32_MAX);
	assert_int_equal(pnvme_bar_guard_fired(), before + 1);
	/* The whole window was replaced: later reads and writes no longer fault. */
	assert_int_equal(mmio_read64(bar, PNVME_REG_CAP), UINT64_MAX);
	mmio_write32(bar, PNVME_SQ_TDBL(1, 0), 5);
	assert_int_equal(pnvme_bar_guard_fired(), before + 1);
	pnvme_bar_guard_remove(bar);
	munmap((void *)bar, len);
	close(fd);
}

static sigjmp_buf jump;
static volatile int prev_ran;

static void prev_handler(int sig)
{
	(void)sig;
	prev_ran = 1;
	siglongjmp(jump, 1);
}

static void test_unguarded_fault_reaches_previous_handler(void **state)
{
	(void)state;
	int fd;
	size_t len = 0x1000;
	struct sigaction sa, old;

	/* Install a handler first, then let the guard chain to it. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = prev_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	assert_int_equal(sigaction(SIGBUS, &sa, &old), 0);
	volatile uint8_t *other = map_truncated(&fd, len);
	int guard_fd;
	volatile uint8_t *bar = map_truncated(&guard_fd, len);
	/* The guard finds our handler in place and chains to it. */
	assert_int_equal(pnvme_bar_guard_add(bar, len), 0);
	prev_ran = 0;
	if (sigsetjmp(jump, 1) == 0)
		(void)mmio_read32(other, 0);
	assert_int_equal(prev_ran, 1);
	pnvme_bar_guard_remove(bar);
	munmap((void *)other, len);
	munmap((void *)bar, len);
	close(fd);
	close(guard_fd);
	(void)sigaction(SIGBUS, &old, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unguarded_fault_reaches_previous_handler),
		cmocka_unit_test(test_guarded_window_reads_all_ones),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
