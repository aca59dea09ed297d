/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bar_guard.c - keep a vanished device from killing the process.
 *
 * When a VFIO device goes away (surprise removal, or the kernel zapping the
 * BAR mapping while memory decoding is off around a reset), an access to its
 * mmapped registers raises SIGBUS. A SIGBUS handler checks whether the fault
 * lies in a registered register window; if so, it maps anonymous memory
 * filled with all ones over that window and returns, so the faulting access
 * is retried and reads 0xffffffff: the very signal the driver already treats
 * as "device gone" (-ENODEV). Faults elsewhere go to the handler that was
 * installed before, or to the default action.
 */
#include <signal.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define MAX_GUARDS 16

struct guard {
	uintptr_t start;
	size_t len;
	volatile int used;
};

static struct guard guards[MAX_GUARDS];
static struct sigaction old_sigbus;
static int installed;
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile unsigned long fired;

static void chain(int sig, siginfo_t *si, void *uc)
{
	if (old_sigbus.sa_flags & SA_SIGINFO) {
		if (old_sigbus.sa_sigaction) {
			old_sigbus.sa_sigaction(sig, si, uc);
			return;
		}
	} else if (old_sigbus.sa_handler != SIG_DFL && old_sigbus.sa_handler != SIG_IGN) {
		old_sigbus.sa_handler(sig);
		return;
	}
	/* Default action: re-raise with the default disposition. */
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;

	for (int i = 0; i < MAX_GUARDS; i++) {
		struct guard *g = &guards[i];
		if (!g->used || a < g->start || a - g->start >= g->len)
			continue;
		/* mmap is a plain system call: safe enough in a handler on Linux. */
		void *p = mmap((void *)g->start, g->len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p == MAP_FAILED)
			break;
		memset(p, 0xff, g->len);
		fired++;
		return;
	}
	chain(sig, si, uc);
}

int pnvme_bar_guard_add(volatile void *addr, size_t len)
{
	int rc = -ENOSPC;

	pthread_mutex_lock(&guard_lock);
	/* (Re)install if absent: someone may have replaced our handler since. */
	struct sigaction cur;
	if (installed && sigaction(SIGBUS, NULL, &cur) == 0 &&
	    (!(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != on_sigbus))
		installed = 0;
	if (!installed) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_sigbus;
		sa.sa_flags = SA_SIGINFO | SA_NODEFER;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, &old_sigbus) != 0) {
			rc = -errno;
			goto out;
		}
		installed = 1;
	}
	for (int i = 0; i < MAX_GUARDS; i++) {
		if (!guards[i].used) {
			guards[i].start = (uintptr_t)addr;
			guards[i].len = len;
			__atomic_store_n(&guards[i].used, 1, __ATOMIC_RELEASE);
			rc = 0;
			break;
		}
	}
out:
	pthread_mutex_unlock(&guard_lock);
	if (rc)
		log_warn("cannot guard the register window against SIGBUS (%d)", rc);
	return rc;
}

void pnvme_bar_guard_remove(volatile void *addr)
{
	pthread_mutex_lock(&guard_lock);
	for (int i = 0; i < MAX_GUARDS; i++) {
		if (guards[i].used && guards[i].start == (uintptr_t)addr)
			__atomic_store_n(&guards[i].used, 0, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&guard_lock);
}

unsigned long pnvme_bar_guard_fired(void)
{
	return fired;
}
