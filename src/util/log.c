/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * log.c - logging and the per-thread "last error" message.
 *
 * The library prints nothing on its own. A message goes to the callback
 * installed with pnvme_set_log(); with no callback, it goes to stderr only when
 * the environment variable PNVME_LOG names a level (err, warn, notice, info,
 * debug), prefixed "pnvme: ". The variable is read once, on first use.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define LOG_MSG_MAX    512u /* longer messages are truncated */
#define LAST_ERROR_MAX 256u

/* No sink at all: below PNVME_LOG_ERR, so no level passes. */
#define LEVEL_NONE (-1)

/*
 * The installed sink. pnvme_set_log() is documented as not synchronised with
 * logging threads; the level is still accessed atomically so that a racing
 * reader sees either the old or the new value.
 */
static pnvme_log_fn sink_fn;
static void *sink_arg;
static int sink_level = LEVEL_NONE;

/* The stderr sink that PNVME_LOG selects (LEVEL_NONE when unset or unknown). */
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static int env_level = LEVEL_NONE;

static _Thread_local char last_error[LAST_ERROR_MAX];

static const char *const level_names[] = {
	[PNVME_LOG_ERR] = "err",
	[PNVME_LOG_WARN] = "warn",
	[PNVME_LOG_NOTICE] = "notice",
	[PNVME_LOG_INFO] = "info",
	[PNVME_LOG_DEBUG] = "debug",
};

static void env_init(void)
{
	const char *v = getenv("PNVME_LOG");

	if (v == NULL || *v == '\0')
		return;
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
		if (strcasecmp(v, level_names[i]) == 0) {
			env_level = (int)i;
			return;
		}
	}
	/* Also accept the common aliases and a bare number. */
	if (strcasecmp(v, "error") == 0)
		env_level = PNVME_LOG_ERR;
	else if (strcasecmp(v, "warning") == 0)
		env_level = PNVME_LOG_WARN;
	else if (v[0] >= '0' && v[0] <= '4' && v[1] == '\0')
		env_level = v[0] - '0';
}

void pnvme_set_log(pnvme_log_fn fn, void *arg, enum pnvme_log_level max_level)
{
	int lvl = (int)max_level;

	if (lvl < PNVME_LOG_ERR)
		lvl = PNVME_LOG_ERR;
	if (lvl > PNVME_LOG_DEBUG)
		lvl = PNVME_LOG_DEBUG;
	if (fn == NULL) {
		__atomic_store_n(&sink_level, LEVEL_NONE, __ATOMIC_RELEASE);
		sink_fn = NULL;
		sink_arg = NULL;
		return;
	}
	__atomic_store_n(&sink_level, LEVEL_NONE, __ATOMIC_RELEASE);
	sink_fn = fn;
	sink_arg = arg;
	__atomic_store_n(&sink_level, lvl, __ATOMIC_RELEASE);
}

bool pnvme_log_enabled(enum pnvme_log_level level)
{
	int lvl = __atomic_load_n(&sink_level, __ATOMIC_ACQUIRE);

	if (lvl != LEVEL_NONE)
		return (int)level <= lvl;
	pthread_once(&env_once, env_init);
	return (int)level <= env_level;
}

static void vlog(enum pnvme_log_level level, const char *fmt, va_list ap)
{
	char msg[LOG_MSG_MAX];
	int saved_errno = errno;
	int lvl = __atomic_load_n(&sink_level, __ATOMIC_ACQUIRE);
	pnvme_log_fn fn = sink_fn;
	void *arg = sink_arg;

	if (lvl != LEVEL_NONE && fn != NULL) {
		if ((int)level > lvl)
			goto out;
		vsnprintf(msg, sizeof(msg), fmt, ap);
		fn(arg, level, msg);
		goto out;
	}
	pthread_once(&env_once, env_init);
	if ((int)level > env_level)
		goto out;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* One fprintf call so that lines from several threads do not interleave. */
	fprintf(stderr, "pnvme: %s\n", msg);
out:
	errno = saved_errno;
}

void pnvme_log(enum pnvme_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}

int pnvme_fail(int err, const char *fmt, ...)
{
	va_list ap;
	int saved_errno = errno;
	char msg[LAST_ERROR_MAX];

	/*
	 * Format into a local buffer first: callers may wrap an earlier error,
	 * as in pnvme_fail(rc, "open: %s", pnvme_last_error()).
	 */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(last_error, msg, strlen(msg) + 1);
	if (pnvme_log_enabled(PNVME_LOG_DEBUG))
		pnvme_log(PNVME_LOG_DEBUG, "%s", last_error);
	errno = saved_errno;
	return err;
}

const char *pnvme_last_error(void)
{
	return last_error;
}
