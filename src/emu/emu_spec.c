/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * emu_spec.c - the emulator's spec string parser ("emu:size=64M,ns=2,...").
 *
 * Grammar: [ "emu" [ ":" ] ] option *( "," option ), option = key "=" value.
 * Every option is checked on its own (a bad value names the option in
 * pnvme_last_error()); the cross-option rules (size a multiple of lba,
 * ns * size fits in 64 bits) are checked at the end. A key given twice takes
 * its last value. Values cannot contain commas (not even file paths).
 *
 * Options and defaults (pnvme/emu.h documents each): size=64M lba=512 ns=1
 * mqes=1023 mdts=5 dstrd=0 to=4 nq=64 dbbuf=1 ms=0 ext=0 pi=0 pil=0
 * mode=thread file= (RAM) sn= mn=. The metadata options must agree: ext=1
 * needs ms > 0, pi=1..3 needs ms >= 8, pil=1 needs pi.
 * dbbuf=0|1 offers Doorbell Buffer Config (shadow doorbells, OACS bit 8), on
 * by default as in QEMU's controller. sgl=0|1|2 sets SGLS (0 none, 1 any
 * alignment, the default as in QEMU's controller, 2 dword Data Blocks).
 * cmb=N (MiB, 0..256, default 0) offers a Controller Memory Buffer for SQs.
 *
 * The null device: "null" or "null:k=v,..." is the same grammar with other
 * defaults: discard=1 (Read returns zeroes, Write, Write Zeroes and DSM
 * touch no media), mode=step (no thread: whoever polls steps it), size=1G,
 * its own sn/mn; "bs" is another name for "lba". discard=1 takes no file and
 * no metadata (ms=0).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <pnvme/emu.h>

#include "internal.h"

#define EMU_MAX_NS 32u

static const struct pnvme_emu_config emu_defaults = {
	.ns_size = 64ull << 20,
	.lba_size = 512,
	.nr_ns = 1,
	.mqes = 1023,
	.mdts = 5,
	.dstrd = 0,
	.to = 4,
	.nr_io_queues = 64,
	.threaded = true,
	.file = "",
	.sn = "PNVME-EMU-0001",
	.mn = "pnvme emulated NVMe controller",
	.dbbuf = true,
	.ms = 0,
	.ext = false,
	.pi = 0,
	.pi_first = false,
	.format = false,
	.lbafs = 0,          /* resolved after parsing: 8 with format=1, else 1 */
	.sanicap = 0,
	.sansteps = 0,
	.sgl = 1,
	.cmb = 0,
};

/*
 * Decimal number with an optional binary K/M/G/T suffix (when `suffix`).
 * Returns 0, or -EINVAL on an empty string, a non-digit, garbage after the
 * suffix, or overflow.
 */
static int parse_num(const char *s, size_t n, bool suffix, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;

	if (n == 0 || s[0] < '0' || s[0] > '9')
		return -EINVAL;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	if (i < n) {
		unsigned shift;
		if (!suffix || i + 1 != n)
			return -EINVAL;
		switch (s[i]) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		case 't': case 'T': shift = 40; break;
		default: return -EINVAL;
		}
		if (v > (UINT64_MAX >> shift))
			return -EINVAL;
		v <<= shift;
	}
	*out = v;
	return 0;
}

static bool key_is(const char *k, size_t kn, const char *name)
{
	return strlen(name) == kn && memcmp(k, name, kn) == 0;
}

/* A number option within [lo, hi]. */
static int num_opt(const char *k, size_t kn, const char *v, size_t vn, uint64_t lo,
		   uint64_t hi, uint32_t *dst)
{
	uint64_t x;

	if (parse_num(v, vn, false, &x) != 0 || x < lo || x > hi)
		return pnvme_fail(-EINVAL, "emu spec: option '%.*s': bad value '%.*s' (%llu..%llu)",
				  (int)kn, k, (int)vn, v, (unsigned long long)lo,
				  (unsigned long long)hi);
	*dst = (uint32_t)x;
	return 0;
}

/* sn / mn: printable ASCII, at most `max` characters. */
static int str_opt(const char *k, size_t kn, const char *v, size_t vn, char *dst, size_t max)
{
	if (vn > max)
		return pnvme_fail(-EINVAL, "emu spec: option '%.*s': longer than %zu characters",
				  (int)kn, k, max);
	for (size_t i = 0; i < vn; i++)
		if (v[i] < 0x20 || v[i] > 0x7e)
			return pnvme_fail(-EINVAL, "emu spec: option '%.*s': not printable ASCII",
					  (int)kn, k);
	memcpy(dst, v, vn);
	dst[vn] = '\0';
	return 0;
}

static int set_option(struct pnvme_emu_config *cfg, const char *k, size_t kn, const char *v,
		      size_t vn)
{
	if (key_is(k, kn, "size")) {
		uint64_t x = 0;
		if (parse_num(v, vn, true, &x) != 0 || x == 0)
			return pnvme_fail(-EINVAL, "emu spec: option 'size': bad value '%.*s'",
					  (int)vn, v);
		cfg->ns_size = x;
		return 0;
	}
	if (key_is(k, kn, "lba") || key_is(k, kn, "bs")) {
		uint32_t x = 0;
		int rc = num_opt(k, kn, v, vn, 512, 4096, &x);
		if (rc == 0 && x != 512 && x != 1024 && x != 2048 && x != 4096)
			rc = pnvme_fail(-EINVAL,
					"emu spec: option 'lba': %u is not 512, 1024, 2048 or 4096", x);
		if (rc == 0)
			cfg->lba_size = x;
		return rc;
	}
	if (key_is(k, kn, "ns"))
		return num_opt(k, kn, v, vn, 1, EMU_MAX_NS, &cfg->nr_ns);
	if (key_is(k, kn, "mqes"))
		return num_opt(k, kn, v, vn, 1, 65535, &cfg->mqes);
	if (key_is(k, kn, "mdts"))
		return num_opt(k, kn, v, vn, 0, 15, &cfg->mdts);
	if (key_is(k, kn, "dstrd"))
		return num_opt(k, kn, v, vn, 0, 8, &cfg->dstrd);
	if (key_is(k, kn, "to"))
		return num_opt(k, kn, v, vn, 1, 255, &cfg->to);
	if (key_is(k, kn, "nq"))
		return num_opt(k, kn, v, vn, 1, 1024, &cfg->nr_io_queues);
	if (key_is(k, kn, "dbbuf")) {
		uint32_t x = 0;
		int rc = num_opt(k, kn, v, vn, 0, 2, &x);
		if (rc == 0) {
			cfg->dbbuf = x != 0;
			cfg->dbbuf_stale_ei = x == 2;
		}
		return rc;
	}
	if (key_is(k, kn, "discard")) {
		uint32_t x = 0;
		int rc = num_opt(k, kn, v, vn, 0, 1, &x);
		if (rc == 0)
			cfg->discard = x != 0;
		return rc;
	}
	if (key_is(k, kn, "ms")) {
		uint32_t x = 0;
		int rc = num_opt(k, kn, v, vn, 0, 64, &x);
		if (rc == 0 && x != 0 && x != 8 && x != 16 && x != 32 && x != 64)
			rc = pnvme_fail(-EINVAL,
					"emu spec: option 'ms': %u is not 0, 8, 16, 32 or 64", x);
		if (rc == 0)
			cfg->ms = x;
		return rc;
	}
	if (key_is(k, kn, "ext") || key_is(k, kn, "pil")) {
		uint32_t x = 0;
		int rc = num_opt(k, kn, v, vn, 0, 1, &x);
		if (rc == 0 && k[0] == 'e')
			cfg->ext = x != 0;
		else if (rc == 0)
			cfg->pi_first = x != 0;
		return rc;
	}
	if (key_is(k, kn, "pi"))
		return num_opt(k, kn, v, vn, 0, 3, &cfg->pi);
	if (key_is(k, kn, "format")) {
		uint32_t x = 0;
		int rc = num_opt(k, kn, v, vn, 0, 1, &x);
		if (rc == 0)
			cfg->format = x != 0;
		return rc;
	}
	if (key_is(k, kn, "lbafs"))
		return num_opt(k, kn, v, vn, 1, 64, &cfg->lbafs);
	if (key_is(k, kn, "sanicap"))
		return num_opt(k, kn, v, vn, 0, 7, &cfg->sanicap);
	if (key_is(k, kn, "sansteps"))
		return num_opt(k, kn, v, vn, 0, 65535, &cfg->sansteps);
	if (key_is(k, kn, "aen_ms"))
		return num_opt(k, kn, v, vn, 0, 600000, &cfg->aen_ms);
	if (key_is(k, kn, "sgl"))
		return num_opt(k, kn, v, vn, 0, 2, &cfg->sgl);
	if (key_is(k, kn, "cmb"))
		return num_opt(k, kn, v, vn, 0, 256, &cfg->cmb);
	if (key_is(k, kn, "mode")) {
		if (vn == 6 && memcmp(v, "thread", 6) == 0)
			cfg->threaded = true;
		else if (vn == 4 && memcmp(v, "step", 4) == 0)
			cfg->threaded = false;
		else
			return pnvme_fail(-EINVAL,
					  "emu spec: option 'mode': '%.*s' is not thread or step",
					  (int)vn, v);
		return 0;
	}
	if (key_is(k, kn, "file")) {
		if (vn >= sizeof(cfg->file))
			return pnvme_fail(-EINVAL, "emu spec: option 'file': path too long");
		memcpy(cfg->file, v, vn);
		cfg->file[vn] = '\0';
		return 0;
	}
	if (key_is(k, kn, "sn"))
		return str_opt(k, kn, v, vn, cfg->sn, sizeof(cfg->sn) - 1);
	if (key_is(k, kn, "mn"))
		return str_opt(k, kn, v, vn, cfg->mn, sizeof(cfg->mn) - 1);
	return pnvme_fail(-EINVAL, "emu spec: unknown option '%.*s'", (int)kn, k);
}

int pnvme_emu_parse(const char *spec, struct pnvme_emu_config *cfg)
{
	const char *p;

	if (cfg == NULL)
		return pnvme_fail(-EINVAL, "emu spec: no config to fill");
	*cfg = emu_defaults;
	if (spec != NULL && strncmp(spec, "null", 4) == 0 && (spec[4] == '\0' || spec[4] == ':')) {
		/* the null device (see above): other defaults */
		cfg->ns_size = 1ull << 30;
		cfg->threaded = false;
		cfg->discard = true;
		snprintf(cfg->sn, sizeof(cfg->sn), "PNVME-NULL-0001");
		snprintf(cfg->mn, sizeof(cfg->mn), "pnvme null device");
		spec += spec[4] ? 5 : 4;
	}
	cfg->lbafs = 1;
	if (spec == NULL || strcmp(spec, "emu") == 0)
		return 0;
	if (strncmp(spec, "emu:", 4) == 0)
		spec += 4;
	if (*spec == '\0')
		return 0;
	cfg->lbafs = 0;

	for (p = spec;;) {
		const char *end = strchr(p, ',');
		const char *eq;
		int rc;

		if (end == NULL)
			end = p + strlen(p);
		if (end == p)
			return pnvme_fail(-EINVAL, "emu spec: empty option in '%s'", spec);
		eq = memchr(p, '=', (size_t)(end - p));
		if (eq == NULL)
			return pnvme_fail(-EINVAL, "emu spec: option '%.*s' needs a value",
					  (int)(end - p), p);
		if (eq == p)
			return pnvme_fail(-EINVAL, "emu spec: option with no name in '%s'", spec);
		if (eq + 1 == end)
			return pnvme_fail(-EINVAL, "emu spec: option '%.*s' has an empty value",
					  (int)(eq - p), p);
		rc = set_option(cfg, p, (size_t)(eq - p), eq + 1, (size_t)(end - eq - 1));
		if (rc != 0)
			return rc;
		if (*end == '\0')
			break;
		p = end + 1;
	}

	if (cfg->lbafs == 0)
		cfg->lbafs = cfg->format ? 8 : 1;
	if (cfg->ns_size % cfg->lba_size != 0)
		return pnvme_fail(-EINVAL, "emu spec: option 'size': %llu is not a multiple of lba %u",
				  (unsigned long long)cfg->ns_size, cfg->lba_size);
	if (cfg->ns_size > UINT64_MAX / cfg->nr_ns)
		return pnvme_fail(-EINVAL, "emu spec: option 'size': ns * size overflows");
	/* NVM 1.0 §5.2, §5.3: PI lives in the metadata, 8 bytes of it */
	if (cfg->ext && cfg->ms == 0)
		return pnvme_fail(-EINVAL, "emu spec: option 'ext': extended LBAs need ms > 0");
	if (cfg->pi != 0 && cfg->ms < 8)
		return pnvme_fail(-EINVAL,
				  "emu spec: option 'pi': protection type %u needs ms >= 8 (ms=%u)",
				  cfg->pi, cfg->ms);
	if (cfg->pi_first && cfg->pi == 0)
		return pnvme_fail(-EINVAL, "emu spec: option 'pil': PI location needs pi=1, 2 or 3");
	if (cfg->discard && (cfg->file[0] != '\0' || cfg->ms != 0))
		return pnvme_fail(-EINVAL, "emu spec: option 'discard': a null device has no file "
				  "and no metadata");
	if (cfg->ms != 0) {
		uint64_t meta = cfg->ns_size / cfg->lba_size * cfg->ms;
		if (meta > UINT64_MAX / cfg->nr_ns - cfg->ns_size)
			return pnvme_fail(-EINVAL, "emu spec: option 'size': size with metadata overflows");
	}
	return 0;
}
