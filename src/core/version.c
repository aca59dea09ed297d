/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * version.c - the library's own version, for programs that want to know
 * which libpnvme.so they run against.
 */
#include <pnvme/version.h>

const char *pnvme_version(void)
{
	return PNVME_VERSION_STRING;
}
