/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * emu_pi.h - end-to-end data protection for the emulated controller (NVM
 * Command Set 1.0 §5.3): the 8-byte protection information tuple, its CRC-16
 * guard, and the checks PRCHK asks for. Pure functions over one logical
 * block's data and metadata; emu_nvm.c moves the bytes.
 */
#ifndef PNVME_EMU_PI_H
#define PNVME_EMU_PI_H

#include <stddef.h>
#include <stdint.h>

/* CDW12 PRINFO (NVM 1.0 Figure 20), bits 29:26 of Read / Write / Write Zeroes */
#define EMU_PRINFO_SHIFT   26
#define EMU_PRINFO_MASK    0xfu
#define EMU_PRINFO_PRACT   (1u << 3)   /* CDW12 bit 29: Protection Information Action */
#define EMU_PRCHK_GUARD    (1u << 2)   /* bit 28: check the guard */
#define EMU_PRCHK_APPTAG   (1u << 1)   /* bit 27: check the application tag */
#define EMU_PRCHK_REFTAG   (1u << 0)   /* bit 26: check the reference tag */
#define EMU_PRCHK_MASK     0x7u

#define EMU_PI_SIZE        8u          /* guard (2), application tag (2), reference tag (4) */

/* A namespace's protection setting: DPS type, metadata size, where the tuple sits. */
struct emu_pi_fmt {
	uint32_t type;       /* 1, 2 or 3 */
	uint32_t lba_size;   /* data bytes per logical block */
	uint32_t ms;         /* metadata bytes per logical block (>= 8) */
	uint32_t pil;        /* offset of the tuple in the metadata: 0 or ms - 8 */
};

/**
 * CRC-16 T10-DIF (polynomial 8BB7h, no reflection, no final XOR), continued
 * from `crc` over `len` bytes. The guard starts from 0.
 */
uint16_t emu_pi_crc16(uint16_t crc, const void *buf, size_t len);

/**
 * Write a tuple into `meta` (one block's metadata) for `data`: guard over the
 * data (and the metadata bytes before the tuple when it sits in the last 8
 * bytes), application tag `apptag`, reference tag `reftag`.
 */
void emu_pi_generate(const struct emu_pi_fmt *f, const uint8_t *data, uint8_t *meta,
		     uint16_t apptag, uint32_t reftag);

/**
 * Check one block's tuple as PRCHK (`prchk`, EMU_PRCHK_* bits) asks: the
 * expected application tag under mask `appmask`, the expected reference tag.
 * A tuple with application tag FFFFh (types 1, 2), or with FFFFh and
 * reference tag FFFFFFFFh (type 3), is not checked. Returns 0 or the Media
 * and Data Integrity status code: PNVME_SC_GUARD_CHECK, _APPTAG_CHECK,
 * _REFTAG_CHECK (first failing check in that order).
 */
uint8_t emu_pi_check(const struct emu_pi_fmt *f, const uint8_t *data, const uint8_t *meta,
		     unsigned prchk, uint16_t apptag, uint16_t appmask, uint32_t reftag);

#endif /* PNVME_EMU_PI_H */
