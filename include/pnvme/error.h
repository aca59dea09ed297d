/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme/error.h - errors, NVMe status strings, logging.
 *
 * The library never prints on its own. Messages go to a callback the
 * application installs with pnvme_set_log(), or to stderr when the environment
 * variable PNVME_LOG is set to one of err, warn, notice, info, debug.
 */
#ifndef PNVME_ERROR_H
#define PNVME_ERROR_H

#include <stdint.h>

#include <pnvme/api.h>

PNVME_BEGIN_DECLS

enum pnvme_log_level {
	PNVME_LOG_ERR = 0,
	PNVME_LOG_WARN,
	PNVME_LOG_NOTICE,
	PNVME_LOG_INFO,
	PNVME_LOG_DEBUG,
};

/** Log sink: `msg` has no trailing newline and is valid only during the call. */
typedef void (*pnvme_log_fn)(void *arg, enum pnvme_log_level level, const char *msg);

/**
 * Install a log callback. Messages at `max_level` or more severe reach `fn`.
 * Pass fn = NULL to silence the library again (the default unless PNVME_LOG is set).
 * Thread safety: call before other pnvme calls; not synchronised with logging threads.
 */
void pnvme_set_log(pnvme_log_fn fn, void *arg, enum pnvme_log_level max_level);

/**
 * The message of the most recent failure of a pnvme call on this thread
 * (e.g. "emu spec: unknown option 'foo'"), or "" if none. Thread-local; valid
 * until the next failing call on the same thread.
 */
const char *pnvme_last_error(void);

/**
 * Readable name of an NVMe status field, e.g. "LBA Out of Range (sct 0h sc 80h)".
 * @status: the 15-bit status field, i.e. PNVME_CQE_STATUS(cqe) (DNR/M/CRD ignored).
 * Returns a static string. Thread safe.
 */
const char *pnvme_status_str(uint16_t status);

/**
 * The negative errno pnvme reports for an NVMe status field: 0 for success,
 * -EOPNOTSUPP invalid opcode, -EINVAL invalid field / queue id / size /
 * invalid format, -EBUSY sanitize or format in progress, -ERANGE LBA out of range, -ENOSPC capacity exceeded, -EROFS write protected /
 * read only, -EACCES access denied, -EBADE reservation conflict, -ECANCELED
 * aborted (abort requested, SQ deleted, host aborted), -EAGAIN namespace not
 * ready, -EILSEQ end-to-end/compare check failures, -ENOENT invalid log page,
 * -EIO everything else. The full status is always available to the caller too.
 */
int pnvme_status_errno(uint16_t status);

PNVME_END_DECLS
#endif /* PNVME_ERROR_H */
