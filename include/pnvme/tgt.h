/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme/tgt.h - an NVMe/TCP target: exports namespaces of pnvme controllers
 * (a drive bound to vfio-pci, the emulated controller, a file-backed
 * emulated namespace) to hosts on the network (NVMe/TCP Transport
 * Specification 1.0; NVMe Base 2.0 §3.3.2 and §6, fabrics).
 *
 * Model. A target listens on one TCP address. It serves subsystems, each
 * with an NQN, namespaces and a list of hosts allowed to connect, and the
 * well-known discovery subsystem (PNVME_DISCOVERY_NQN) on the same port (and,
 * when asked, alone on a second one such as 8009), whose Discovery Log Page
 * lists the subsystems the asking host may use, at the I/O port.
 * Each host association gets a virtual controller (dynamic controller ids).
 * I/O commands go to the backend controllers' queue pairs; data moves
 * between the socket and the backend's DMA buffers without a copy.
 *
 * Threads. `nr_threads` polling threads (pinned when cpu_mask says so) each
 * own a set of connections and one queue pair per backend controller: no
 * lock on the I/O path. With nr_threads 0 the application drives everything
 * from one thread with pnvme_tgt_poll().
 *
 * The backend controllers belong to the application: it opens them before
 * adding namespaces and closes them after pnvme_tgt_destroy().
 */
#ifndef PNVME_TGT_H
#define PNVME_TGT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pnvme/api.h>

PNVME_BEGIN_DECLS

struct pnvme_ctrl;
struct pnvme_tgt;

struct pnvme_tgt_opts {
	uint32_t opts_size;     /* sizeof(struct pnvme_tgt_opts), set by pnvme_tgt_opts_default */
	const char *listen;     /* "ADDR:PORT" or "[IPv6]:PORT"; port 0 = any free port
				 * (pnvme_tgt_port()); default "127.0.0.1:4420" */
	uint32_t nr_threads;    /* polling threads, 0..64; 0: the caller polls (default 1) */
	uint64_t cpu_mask;      /* pin thread i to the i-th set bit (cpus 0..63); 0: no pinning */
	uint32_t icd_bytes;     /* in-capsule data accepted on I/O queues, 0..65536 (IOCCSZ);
				 * default 8192. The admin queue always accepts 8192. */
	bool     digests;       /* allow header/data digests when a host asks (default true) */
	uint32_t max_xfer;      /* largest transfer of one command (MDTS), 4 KiB..2 MiB, a power
				 * of two; lowered to what the backends take (default 128 KiB) */
	uint32_t maxh2cdata;    /* ICResp MAXH2CDATA, >= 4096, dword multiple (default 128 KiB) */
	uint16_t queue_size;    /* largest SQSIZE + 1 a Connect may ask (CAP.MQES + 1),
				 * 2..1024 (default 128) */
	uint16_t max_io_queues; /* I/O queues granted per controller, 1..256 (default 16) */
	uint32_t max_conns;     /* connections served at once; more are refused at accept
				 * (default 256) */
	uint32_t ic_timeout_ms; /* a connection that sends no ICReq in this time is closed
				 * (default 10000) */
	uint32_t backend_depth; /* depth of each backend queue pair (default 256) */
	const char *discovery_listen; /* also listen here ("ADDR:PORT", e.g. the well-known
				 * discovery port 8009; port 0 = any free one), serving only
				 * the discovery subsystem; NULL: not (default) */
	uint32_t idle_spin_us;  /* a polling thread that found nothing to do keeps polling
				 * (busy) this long (at most 50 us while only its backend
				 * commands are out) before it sleeps in poll() on its sockets
				 * (and on its backend queue pairs' interrupt eventfds while
				 * commands are out: PNVME_QPAIR_INTERRUPTS where the backend
				 * has MSI-X), so the next command of a host at queue depth 1
				 * finds it awake; 0..1000000 (default 200). A thread with
				 * nothing in flight sleeps until a host sends, a connection
				 * is handed to it or a deadline (ICReq, Keep Alive) comes:
				 * an idle target costs no CPU. */
};

/** Fill `opts` with the defaults above. NULL is ignored. */
void pnvme_tgt_opts_default(struct pnvme_tgt_opts *opts);

/**
 * Create a target (not yet listening). `opts` NULL: defaults.
 * Returns 0, -EINVAL (an option out of range, bad listen address), -ENOMEM.
 */
int pnvme_tgt_create(const struct pnvme_tgt_opts *opts, struct pnvme_tgt **out);

/**
 * Add a subsystem `nqn` (an NQN of at most 223 bytes, not the discovery NQN).
 * Returns 0, -EINVAL (bad NQN), -EEXIST, -ENOSPC (too many subsystems: 64).
 * Any thread, also while the target runs (moves the discovery GENCTR).
 */
int pnvme_tgt_add_subsys(struct pnvme_tgt *tgt, const char *nqn);

/**
 * Export namespace `ctrl_nsid` of backend controller `ctrl` as namespace
 * `nsid` (1..1024; 0: the next free one) of subsystem `subnqn`. The
 * controller must stay open until pnvme_tgt_destroy(); namespaces with
 * metadata or protection information are refused. Before
 * pnvme_tgt_start() the target's MDTS is lowered to the backend's limit;
 * afterwards a backend with a smaller limit is refused.
 * Returns the NSID (> 0), or -EINVAL, -ENOENT (no such subsystem or backend
 * namespace), -EEXIST (NSID taken), -ENOSPC (32 namespaces per subsystem,
 * 16 backend controllers per target), -EOPNOTSUPP (metadata).
 */
int pnvme_tgt_add_ns(struct pnvme_tgt *tgt, const char *subnqn, uint32_t nsid,
		     struct pnvme_ctrl *ctrl, uint32_t ctrl_nsid);

/**
 * Allow host `hostnqn` to connect to subsystem `subnqn`; NULL allows any
 * host. Subsystems allow no host until this is called. Returns 0, -EINVAL,
 * -ENOENT, -ENOSPC (64 hosts per subsystem). Any thread (moves GENCTR).
 */
int pnvme_tgt_allow_host(struct pnvme_tgt *tgt, const char *subnqn, const char *hostnqn);

/**
 * Listen and start the polling threads. Returns 0, -EALREADY, or the errno
 * of socket/bind/listen (-EADDRINUSE ...) or of starting a thread.
 */
int pnvme_tgt_start(struct pnvme_tgt *tgt);

/** The TCP port listened on (after pnvme_tgt_start), host byte order; 0 before. */
uint16_t pnvme_tgt_port(const struct pnvme_tgt *tgt);

/** The discovery-only listener's port (opts.discovery_listen); 0 before start or without. */
uint16_t pnvme_tgt_discovery_port(const struct pnvme_tgt *tgt);

/**
 * With nr_threads 0: one round of the target's work on the calling thread
 * (accept, every connection's receive and send, the backend queue pairs).
 * Never blocks. Returns the number of things done (0: idle), -EINVAL when
 * the target has polling threads or is not started. One thread at a time.
 */
int pnvme_tgt_poll(struct pnvme_tgt *tgt);

/**
 * Stop: no new connections or commands; commands already at the backends
 * complete and are answered (bounded by 5 s), then every connection is
 * closed (hosts see their controllers go away) and the threads end. The
 * backend queue pairs are deleted. Returns 0 (also when not started).
 * Not from a polling thread.
 */
int pnvme_tgt_stop(struct pnvme_tgt *tgt);

/** Stop if needed and free the target. NULL is ignored. */
void pnvme_tgt_destroy(struct pnvme_tgt *tgt);

/** Counters, summed over the threads (approximate while running). */
struct pnvme_tgt_stats {
	uint64_t conns_accepted;   /* TCP connections accepted */
	uint64_t conns_refused;    /* refused at accept (max_conns) */
	uint64_t conns_open;       /* connections open now */
	uint64_t ctrls_created;    /* virtual controllers created (admin Connects) */
	uint64_t kato_expired;     /* controllers torn down for want of a Keep Alive */
	uint64_t ic_timeouts;      /* connections closed for want of an ICReq */
	uint64_t term_reqs;        /* C2HTermReqs sent (fatal transport errors) */
	uint64_t cmds;             /* commands received */
	uint64_t cmd_errors;       /* commands answered with a non-zero status */
	uint64_t r2ts;             /* R2T PDUs sent */
	uint64_t bytes_read;       /* data sent to hosts */
	uint64_t bytes_written;    /* data received from hosts */
};

/** Copy the counters. Any thread. */
void pnvme_tgt_get_stats(struct pnvme_tgt *tgt, struct pnvme_tgt_stats *stats);

PNVME_END_DECLS
#endif /* PNVME_TGT_H */
