/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme/fabrics.h - NVMe over Fabrics (NVMe/TCP) beyond pnvme_ctrl_open():
 * discovery.
 *
 * A TCP controller is opened like any other, with pnvme_ctrl_open() and an
 * address "tcp:HOST[:PORT]/SUBNQN[?OPTIONS]" (grammar in pnvme/ctrl.h); its
 * queue pairs take the same I/O calls, with any memory of the caller's as
 * data buffers.
 */
#ifndef PNVME_FABRICS_H
#define PNVME_FABRICS_H

#include <stdint.h>

#include <pnvme/api.h>
#include <pnvme/tcp_spec.h>

PNVME_BEGIN_DECLS

/** One Discovery Log Page entry, decoded (strings NUL terminated, padding trimmed). */
struct pnvme_disc_entry {
	uint8_t  trtype;      /* PNVME_TRTYPE_* (3: TCP) */
	uint8_t  adrfam;      /* PNVME_ADRFAM_* */
	uint8_t  subtype;     /* PNVME_SUBTYPE_* (2: NVM subsystem) */
	uint8_t  treq;
	uint16_t portid;
	uint16_t cntlid;
	uint16_t asqsz;
	char     trsvcid[33];
	char     traddr[257];
	char     subnqn[257];
};

/**
 * Read the Discovery Log Page (Base 2.0 §5.16.1.23) of the discovery
 * controller at `addr`: "HOST[:PORT]" (default port 4420, where Linux's
 * target serves discovery beside its subsystems) or "tcp:HOST[:PORT]" with
 * "?OPTIONS" as in pnvme_ctrl_open(); the well-known discovery NQN
 * (PNVME_DISCOVERY_NQN) is the subsystem.
 * The log is read until its generation counter holds still across a read
 * (at most 8 tries). *entries (free with pnvme_disc_free()) gets *n decoded
 * entries; *genctr (may be NULL) the generation counter.
 * Returns 0, or the errors of pnvme_ctrl_open() and the log page read,
 * -EAGAIN if the log kept changing, -EPROTO for an impossible record count.
 */
int pnvme_discover(const char *addr, struct pnvme_disc_entry **entries, uint32_t *n,
		   uint64_t *genctr);

/** Free what pnvme_discover() returned (NULL is ignored). */
void pnvme_disc_free(struct pnvme_disc_entry *entries);

/** "tcp", "rdma", "fc", "loop" or "unknown" for a TRTYPE. */
const char *pnvme_trtype_str(uint8_t trtype);

PNVME_END_DECLS
#endif /* PNVME_FABRICS_H */
