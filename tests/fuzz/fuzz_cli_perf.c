/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_cli_perf - libFuzzer target for pnvme-perf's command-line parser.
 * The tool's source is included with its main() renamed, so the fuzzer drives
 * the real parse_args(). Checks: it returns 0, 2 or PARSE_HELP, and on 0 the
 * configuration is within the documented ranges.
 */
#include <stdio.h>

#define main pnvme_perf_main
#include "../../tools/pnvme-perf.c"
#undef main

#include "fuzz_cli.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_argv a;
	struct config cfg = { .pattern = P_RANDREAD, .depth = 32, .iosize = 4096, .secs = 5,
			      .shadow_db = true, .qpairs_per_worker = 1 }; /* as main()'s */
	const char *devs[MAX_DEVS];
	unsigned nr_devs = 0;

	if (fuzz_argv_make(&a, "pnvme-perf", data, size))
		return 0;
	optind = 0; /* glibc: full getopt reset */
	opterr = 0;
	int rc = parse_args(a.argc, a.argv, &cfg, devs, &nr_devs);
	if (rc != 0 && rc != 2 && rc != PARSE_HELP)
		__builtin_trap();
	if (rc == 0) {
		if (nr_devs == 0 || nr_devs > MAX_DEVS || cfg.depth == 0 || cfg.depth > 65535 ||
		    cfg.iosize == 0 || cfg.iosize > (1u << 30) || cfg.read_pct > 100 ||
		    cfg.nr_workers == 0 || cfg.nr_workers > MAX_WORKERS || cfg.secs > 86400)
			__builtin_trap();
		/* every address non-empty and within its buffer (-r, -H, -I build them) */
		for (unsigned i = 0; i < nr_devs; i++)
			if (!devs[i] || !devs[i][0] || strlen(devs[i]) >= DEV_ADDR_LEN)
				__builtin_trap();
	}
	fuzz_argv_free(&a);
	return 0;
}
