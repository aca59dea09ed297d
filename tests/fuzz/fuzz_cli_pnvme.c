/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_cli_pnvme - libFuzzer target for the pnvme tool's argument parser
 * (everything after the command word). The tool's source is included with
 * its main() renamed. Checks: it returns 0 or 2, and on 0 the parsed values
 * are within range.
 */
#include <stdio.h>

#define main pnvme_tool_main
#include "../../tools/pnvme.c"
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
	struct args args;

	if (fuzz_argv_make(&a, "pnvme", data, size))
		return 0;
	/* parse() sees the arguments after the command word. */
	int rc = parse(a.argc - 1, a.argv + 1, &args);
	if (rc != 0 && rc != 2)
		__builtin_trap();
	if (rc == 0) {
		/* -n: 1..FFFFFFFEh, or "all" (FFFFFFFFh, format only) */
		if (args.npos < 0 || args.npos > 2 || args.nsid == 0 ||
		    (args.nsid > 0xfffffffeL && args.nsid != (long)PNVME_NSID_ALL) ||
		    args.hugepages < -1)
			__builtin_trap();
		for (int i = 0; i < args.npos; i++)
			if (!args.pos[i])
				__builtin_trap();
	}
	fuzz_argv_free(&a);
	return 0;
}
