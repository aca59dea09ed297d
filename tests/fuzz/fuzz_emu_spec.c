/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_emu_spec.c - libFuzzer target: pnvme_emu_parse() on arbitrary strings.
 *
 * The input (NUL-terminated copy) is parsed; a success must give a config
 * within the documented ranges, a failure must be -EINVAL with an error
 * message naming something. Anything else traps.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pnvme/emu.h>
#include <pnvme/error.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		__builtin_trap();
}

/* printable ASCII, NUL-terminated within `n` */
static int str_ok(const char *s, size_t n)
{
	size_t l = strnlen(s, n);
	if (l == n)
		return 0;
	for (size_t i = 0; i < l; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pnvme_emu_config cfg;
	char *spec = malloc(size + 1);
	int rc;

	if (spec == NULL)
		return 0;
	memcpy(spec, data, size);
	spec[size] = '\0';
	memset(&cfg, 0xa5, sizeof(cfg));
	rc = pnvme_emu_parse(spec, &cfg);
	if (rc == 0) {
		check(cfg.lba_size == 512 || cfg.lba_size == 1024 || cfg.lba_size == 2048 ||
		      cfg.lba_size == 4096);
		check(cfg.ns_size != 0 && cfg.ns_size % cfg.lba_size == 0);
		check(cfg.nr_ns >= 1 && cfg.nr_ns <= 32);
		check(cfg.ns_size <= UINT64_MAX / cfg.nr_ns);
		check(cfg.mqes >= 1 && cfg.mqes <= 65535);
		check(cfg.mdts <= 15);
		check(cfg.dstrd <= 8);
		check(cfg.to >= 1 && cfg.to <= 255);
		check(cfg.nr_io_queues >= 1 && cfg.nr_io_queues <= 1024);
		check(strnlen(cfg.file, sizeof(cfg.file)) < sizeof(cfg.file));
		check(str_ok(cfg.sn, sizeof(cfg.sn)));
		check(str_ok(cfg.mn, sizeof(cfg.mn)));
		check(cfg.ms == 0 || cfg.ms == 8 || cfg.ms == 16 || cfg.ms == 32 || cfg.ms == 64);
		check(!cfg.ext || cfg.ms != 0);
		check(cfg.pi <= 3 && (cfg.pi == 0 || cfg.ms >= 8));
		check(!cfg.pi_first || cfg.pi != 0);
		check(cfg.ns_size + cfg.ns_size / cfg.lba_size * cfg.ms <= UINT64_MAX / cfg.nr_ns);
	} else {
		check(rc == -EINVAL);
		check(pnvme_last_error()[0] != '\0');
	}
	/* a NULL config is refused, never written */
	check(pnvme_emu_parse(spec, NULL) == -EINVAL);
	free(spec);
	return 0;
}
