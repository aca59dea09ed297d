/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme/version.h - the version of the headers and of the library.
 *
 * The numbers are kept by hand and must equal project(pnvme VERSION ...) in
 * CMakeLists.txt (configuring fails otherwise). ABI policy (README, "ABI"):
 * while the major version is 0, every minor version may change the ABI and
 * gets its own SONAME (libpnvme.so.0.MINOR); patch versions keep it.
 */
#ifndef PNVME_VERSION_H
#define PNVME_VERSION_H

#include <pnvme/api.h>

#define PNVME_VERSION_MAJOR 0
#define PNVME_VERSION_MINOR 1
#define PNVME_VERSION_PATCH 0
#define PNVME_VERSION_STRING "0.1.0"

/* MAJOR.MINOR.PATCH as one comparable number, e.g. 0.1.0 -> 100. */
#define PNVME_VERSION_NUM(major, minor, patch) ((major) * 10000 + (minor) * 100 + (patch))
#define PNVME_VERSION \
	PNVME_VERSION_NUM(PNVME_VERSION_MAJOR, PNVME_VERSION_MINOR, PNVME_VERSION_PATCH)

PNVME_BEGIN_DECLS

/**
 * The version of the library actually loaded, "MAJOR.MINOR.PATCH" (a static
 * string). It differs from PNVME_VERSION_STRING when a program runs against
 * another build of libpnvme.so than the headers it was compiled with.
 * Thread safe.
 */
const char *pnvme_version(void);

PNVME_END_DECLS
#endif /* PNVME_VERSION_H */
