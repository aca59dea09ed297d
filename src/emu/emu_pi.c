/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * emu_pi.c - protection information for the emulated controller (NVM Command
 * Set 1.0 §5.3, End-to-end Data Protection).
 *
 * The tuple is big-endian on the medium and on the wire: Guard (16-bit CRC),
 * Application Tag (16 bits), Reference Tag (32 bits). It sits in the first or
 * the last 8 bytes of a block's metadata (DPS bit 3); in the last 8 bytes the
 * guard also covers the metadata bytes in front of it.
 */
#include <pthread.h>

#include <pnvme/spec.h>

#include "emu_pi.h"

#define CRC_T10DIF_POLY 0x8bb7u

static uint16_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_table_init(void)
{
	for (unsigned i = 0; i < 256; i++) {
		uint16_t c = (uint16_t)(i << 8);
		for (unsigned b = 0; b < 8; b++)
			c = (uint16_t)((c & 0x8000u) ? (unsigned)(c << 1) ^ CRC_T10DIF_POLY
						  : (unsigned)(c << 1));
		crc_table[i] = c;
	}
}

uint16_t emu_pi_crc16(uint16_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	pthread_once(&crc_once, crc_table_init);
	for (size_t i = 0; i < len; i++)
		crc = (uint16_t)((crc << 8) ^ crc_table[((crc >> 8) ^ p[i]) & 0xffu]);
	return crc;
}

static uint16_t guard_of(const struct emu_pi_fmt *f, const uint8_t *data, const uint8_t *meta)
{
	uint16_t crc = emu_pi_crc16(0, data, f->lba_size);
	return f->pil ? emu_pi_crc16(crc, meta, f->pil) : crc;
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

void emu_pi_generate(const struct emu_pi_fmt *f, const uint8_t *data, uint8_t *meta,
		     uint16_t apptag, uint32_t reftag)
{
	uint8_t *t = meta + f->pil;

	put_be16(t, guard_of(f, data, meta));
	put_be16(t + 2, apptag);
	put_be16(t + 4, (uint16_t)(reftag >> 16));
	put_be16(t + 6, (uint16_t)reftag);
}

uint8_t emu_pi_check(const struct emu_pi_fmt *f, const uint8_t *data, const uint8_t *meta,
		     unsigned prchk, uint16_t apptag, uint16_t appmask, uint32_t reftag)
{
	const uint8_t *t = meta + f->pil;
	uint16_t at = get_be16(t + 2);
	uint32_t rt = (uint32_t)get_be16(t + 4) << 16 | get_be16(t + 6);

	/* NVM 1.0 §5.3: the escape values turn checking off for this block */
	if (at == 0xffffu && (f->type != 3 || rt == 0xffffffffu))
		return 0;
	if ((prchk & EMU_PRCHK_GUARD) && get_be16(t) != guard_of(f, data, meta))
		return PNVME_SC_GUARD_CHECK;
	if ((prchk & EMU_PRCHK_APPTAG) && (at & appmask) != (apptag & appmask))
		return PNVME_SC_APPTAG_CHECK;
	if ((prchk & EMU_PRCHK_REFTAG) && rt != reftag)
		return PNVME_SC_REFTAG_CHECK;
	return 0;
}
