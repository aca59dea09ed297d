/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vmtest.h - what the parts of the vmtest payload share (vmtest.c: the
 * pattern, the check lines; vmtest_md.c: namespaces with metadata).
 */
#ifndef PNVME_VMTEST_H
#define PNVME_VMTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

extern uint64_t g_seed;
extern int fails;

/** Fill `len` bytes (multiple of 8) that live at byte offset `off` of namespace nsid. */
void pattern_fill_seed(uint64_t seed, uint32_t nsid, uint64_t off, void *buf, size_t len);
/** Print "VMTEST: NAME PASS|FAIL detail"; a FAIL is counted in `fails`. */
void check(bool ok, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* vmtest_tcp.c: tcp-rw, tcp-pattern-write, pattern, tcp-cut, tcp-idle */
int cmd_tcp(int argc, char **argv);

/* vmtest_md.c */
int cmd_md(const char *dev);
int cmd_expect_md(uint32_t nsid, uint32_t lba_size, uint32_t ms, unsigned pi_type,
		  uint64_t nlba, uint64_t image_size, const char *out);

#endif
