/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * crc32c.c - CRC32C for the NVMe/TCP header and data digests (TCP 1.0: the
 * digests are CRC32C, the iSCSI polynomial 0x1EDC6F41, reflected).
 *
 * Why a dependency: the data digest runs over every byte of every I/O, so
 * the CRC must use the CPU's CRC32 / carry-less multiply instructions, and
 * a maintained library does that with run-time CPU dispatch on x86-64 and
 * arm64. ISA-L (Intel Intelligent Storage Acceleration Library; Debian's
 * libisal-dev, header <isa-l/crc.h>, pkg-config libisal) is what SPDK uses
 * for the same digests; issue 9 names it. Its crc32_iscsi() neither inverts
 * the initial value nor the result, so the standard CRC32C (init ~0, final
 * xor ~0) is ~crc32_iscsi(buf, len, ~crc) - which also chains: feeding the
 * previous result back as `crc` continues the same CRC.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <isa-l/crc.h>

#include "tcp/pdu.h"

uint32_t pnvme_crc32c(uint32_t crc, const void *buf, size_t len)
{
	/* crc32_iscsi() takes a non-const pointer and an int length; it only reads. */
	unsigned char *p = (unsigned char *)(uintptr_t)buf;
	unsigned int c = ~crc;

	while (len > 0) {
		int n = len > (size_t)INT_MAX ? INT_MAX : (int)len;

		c = crc32_iscsi(p, n, c);
		p += n;
		len -= (size_t)n;
	}
	return ~c;
}
