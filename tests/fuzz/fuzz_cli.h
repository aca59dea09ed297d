/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_cli.h - turn a fuzz input into an argv: arguments separated by NUL
 * bytes, at most FUZZ_MAX_ARGS of them, each copied and NUL-terminated.
 */
#ifndef PNVME_FUZZ_CLI_H
#define PNVME_FUZZ_CLI_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_ARGS 24

struct fuzz_argv {
	int argc;
	char *argv[FUZZ_MAX_ARGS + 2];
	char *buf;
};

/* argv[0] is `name0`; the input's NUL-separated pieces follow. */
static inline int fuzz_argv_make(struct fuzz_argv *a, const char *name0, const uint8_t *data,
				 size_t size)
{
	a->buf = malloc(size + 1);
	if (!a->buf)
		return -1;
	memcpy(a->buf, data, size);
	a->buf[size] = '\0';
	a->argc = 0;
	a->argv[a->argc++] = (char *)name0;
	for (size_t i = 0; i <= size && a->argc <= FUZZ_MAX_ARGS;) {
		size_t n = strlen(a->buf + i);
		a->argv[a->argc++] = a->buf + i;
		i += n + 1;
	}
	a->argv[a->argc] = NULL;
	return 0;
}

static inline void fuzz_argv_free(struct fuzz_argv *a)
{
	free(a->buf);
}

#endif
