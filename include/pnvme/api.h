/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme/api.h - what every public header shares: C linkage for C++ callers
 * and the visibility of the library's symbols.
 *
 * libpnvme.so is built with -fvisibility=hidden: a function is exported only
 * when it is declared between PNVME_BEGIN_DECLS and PNVME_END_DECLS in one of
 * the public headers (include/pnvme/). Everything else the library defines
 * (internal helpers shared between its source files) stays out of the
 * dynamic symbol table; tests/test_symbols.sh checks both directions.
 */
#ifndef PNVME_API_H
#define PNVME_API_H

#if defined(__GNUC__) || defined(__clang__)
#define PNVME_VISIBILITY_PUSH _Pragma("GCC visibility push(default)")
#define PNVME_VISIBILITY_POP  _Pragma("GCC visibility pop")
#else
#define PNVME_VISIBILITY_PUSH
#define PNVME_VISIBILITY_POP
#endif

#ifdef __cplusplus
#define PNVME_BEGIN_DECLS PNVME_VISIBILITY_PUSH extern "C" {
#define PNVME_END_DECLS   } PNVME_VISIBILITY_POP
#else
#define PNVME_BEGIN_DECLS PNVME_VISIBILITY_PUSH
#define PNVME_END_DECLS   PNVME_VISIBILITY_POP
#endif

#endif /* PNVME_API_H */
