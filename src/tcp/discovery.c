/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * discovery.c - NVMe over Fabrics discovery (Base 2.0 §3.1.3.3 discovery
 * controllers, §5.16.1.23 Discovery Log Page): connect to the well-known
 * discovery NQN, read the log until its generation counter is stable,
 * decode the entries. Every field read from the target is bounded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pnvme/fabrics.h>

#include "core/ctrl_priv.h"

#define DISC_TRIES      8u
#define DISC_MAX_RECORDS 4096u /* 4 MiB of log: more is not a plausible discovery log */

const char *pnvme_trtype_str(uint8_t trtype)
{
	switch (trtype) {
	case PNVME_TRTYPE_TCP:
		return "tcp";
	case PNVME_TRTYPE_RDMA:
		return "rdma";
	case PNVME_TRTYPE_FC:
		return "fc";
	case PNVME_TRTYPE_LOOP:
		return "loop";
	default:
		return "unknown";
	}
}

/* A space-padded, maybe unterminated field of `n` bytes into a C string. */
static void field_str(char *dst, size_t dstlen, const char *src, size_t n)
{
	size_t len = strnlen(src, n);

	while (len && (src[len - 1] == ' ' || src[len - 1] == 0))
		len--;
	if (len >= dstlen)
		len = dstlen - 1;
	for (size_t i = 0; i < len; i++) /* printable ASCII only: it goes to terminals */
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[len] = 0;
}

/* Read `len` bytes of the log from `off`, in pieces the controller takes (MDTS). */
static int log_read(struct pnvme_ctrl *ctrl, uint64_t off, void *buf, size_t len)
{
	size_t step = ctrl->max_xfer ? ctrl->max_xfer : 4096;

	for (size_t done = 0; done < len;) {
		size_t n = len - done < step ? len - done : step;
		int rc = pnvme_get_log_page(ctrl, PNVME_LOG_DISCOVERY, 0, off + done,
					    (uint8_t *)buf + done, n);
		if (rc)
			return rc;
		done += n;
	}
	return 0;
}

static int disc_read(struct pnvme_ctrl *ctrl, struct pnvme_disc_entry **out, uint32_t *n,
		     uint64_t *genctr)
{
	struct pnvme_disc_log_hdr hdr;
	struct pnvme_disc_log_entry *raw = NULL;
	int rc;

	for (unsigned t = 0; t < DISC_TRIES; t++) {
		uint64_t gen;

		rc = log_read(ctrl, 0, &hdr, sizeof(hdr));
		if (rc)
			goto out;
		if (hdr.numrec > DISC_MAX_RECORDS) {
			rc = pnvme_fail(-EPROTO, "discovery log claims %llu records (at most %u "
					"accepted)", (unsigned long long)hdr.numrec, DISC_MAX_RECORDS);
			goto out;
		}
		gen = hdr.genctr;
		free(raw);
		raw = calloc(hdr.numrec ? hdr.numrec : 1, sizeof(*raw));
		if (!raw) {
			rc = pnvme_fail(-ENOMEM, "out of memory");
			goto out;
		}
		if (hdr.numrec) {
			rc = log_read(ctrl, sizeof(hdr), raw, hdr.numrec * sizeof(*raw));
			if (rc)
				goto out;
		}
		/* The entries belong to `gen` only if the counter did not move meanwhile. */
		rc = log_read(ctrl, 0, &hdr, sizeof(hdr));
		if (rc)
			goto out;
		if (hdr.genctr != gen)
			continue;
		struct pnvme_disc_entry *e = calloc(hdr.numrec ? hdr.numrec : 1, sizeof(*e));
		if (!e) {
			rc = pnvme_fail(-ENOMEM, "out of memory");
			goto out;
		}
		for (uint64_t i = 0; i < hdr.numrec && i * sizeof(*raw) < (uint64_t)-1; i++) {
			const struct pnvme_disc_log_entry *r = &raw[i];
			e[i].trtype = r->trtype;
			e[i].adrfam = r->adrfam;
			e[i].subtype = r->subtype;
			e[i].treq = r->treq;
			e[i].portid = r->portid;
			e[i].cntlid = r->cntlid;
			e[i].asqsz = r->asqsz;
			field_str(e[i].trsvcid, sizeof(e[i].trsvcid), r->trsvcid, sizeof(r->trsvcid));
			field_str(e[i].traddr, sizeof(e[i].traddr), r->traddr, sizeof(r->traddr));
			field_str(e[i].subnqn, sizeof(e[i].subnqn), r->subnqn, sizeof(r->subnqn));
		}
		*out = e;
		*n = (uint32_t)hdr.numrec;
		if (genctr)
			*genctr = gen;
		rc = 0;
		goto out;
	}
	rc = pnvme_fail(-EAGAIN, "the discovery log changed during each of %u reads", DISC_TRIES);
out:
	free(raw);
	return rc;
}

int pnvme_discover(const char *addr, struct pnvme_disc_entry **entries, uint32_t *n,
		   uint64_t *genctr)
{
	char full[1100];
	const char *host = addr, *q;
	struct pnvme_ctrl *ctrl = NULL;
	size_t hl;
	int rc;

	if (!addr || !entries || !n)
		return pnvme_fail(-EINVAL, "discover: NULL argument");
	*entries = NULL;
	*n = 0;
	if (strncmp(host, "tcp:", 4) == 0)
		host += 4;
	q = strchr(host, '?');
	hl = q ? (size_t)(q - host) : strlen(host);
	if (memchr(host, '/', hl))
		return pnvme_fail(-EINVAL, "discover: '%s': give HOST[:PORT] (the discovery NQN "
				  "is implied)", addr);
	if (hl == 0 || hl + sizeof(PNVME_DISCOVERY_NQN) + 8 + (q ? strlen(q) : 0) >= sizeof(full))
		return pnvme_fail(-EINVAL, "discover: bad address '%s'", addr);
	snprintf(full, sizeof(full), "tcp:%.*s/%s%s", (int)hl, host, PNVME_DISCOVERY_NQN,
		 q ? q : "");
	rc = pnvme_ctrl_open(full, NULL, &ctrl);
	if (rc)
		return rc;
	rc = disc_read(ctrl, entries, n, genctr);
	(void)pnvme_ctrl_close(ctrl);
	return rc;
}

void pnvme_disc_free(struct pnvme_disc_entry *entries)
{
	free(entries);
}
