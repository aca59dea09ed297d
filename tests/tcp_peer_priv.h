/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tcp_peer_priv.h - what tcp_peer.c (the peer, its connections, faults and
 * the send side) and tcp_peer_cmd.c (controllers and commands) share. Not
 * for the tests: they use tcp_peer.h.
 *
 * Locking: one mutex per peer guards the counters, the faults, the
 * controllers, the connection list and the namespace bytes. A connection's
 * own state is its thread's alone. Sockets are closed only by the thread
 * that owns them (others may shutdown() them to wake it).
 */
#ifndef PNVME_TESTS_TCP_PEER_PRIV_H
#define PNVME_TESTS_TCP_PEER_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <pnvme/spec.h>
#include <pnvme/tcp_spec.h>

#include "tcp/pdu.h"
#include "tcp_peer.h"

#define PEER_MAX_CTRLS   16u
#define PEER_MAX_IOQ     1024u   /* highest I/O queue id a controller may grant */
#define PEER_ADMIN_CCSZ  8192u   /* in-capsule data on the admin queue (as nvmet) */
#define PEER_RECV_BUF    65536u
#define PEER_CONNECT_CATTR_NO_SQFLOW 0x04u /* Connect CATTR bit 2: SQ flow control disabled */

/* Identify Controller, fabrics fields (Base 2.0 Figure 275, bytes 1792..2047) */
#define ID_IOCCSZ 1792u
#define ID_IORCSZ 1796u
#define ID_ICDOFF 1800u
#define ID_FCATT  1802u
#define ID_MSDBD  1803u
/* SGLS (Base 2.0 Figure 275): SGLs supported, address as offset, transport data block */
#define PEER_SGLS ((1u << 0) | (1u << 20) | (1u << 21))
/* Connect response DW0 for invalid parameters (Base 2.0 §6.3): IPO 15:0, IATTR 23:16 */
#define IPO_DATA(field) ((1u << 16) | (uint32_t)offsetof(struct pnvme_fabrics_connect_data, field))
#define IPO_SQE(field)  ((uint32_t)offsetof(struct pnvme_fabrics_connect, field))

#define SC(sct, sc)      PNVME_STATUS(sct, sc)
#define SC_DNR(sct, sc)  ((uint16_t)(PNVME_STATUS(sct, sc) | PNVME_STATUS_DNR))
#define GEN(sc)          SC_DNR(PNVME_SCT_GENERIC, sc)

struct disc_entry {
	struct tcp_peer_disc_entry e;
	char trsvcid[32], traddr[256], subnqn[256];
};

struct ctrl {
	bool     live;
	bool     disc;           /* discovery controller */
	uint16_t cntlid;
	uint32_t cc, csts;
	uint32_t kato;           /* ms, 0: none */
	uint64_t ka_deadline;    /* monotonic ms */
	uint16_t nr_io;          /* I/O queues granted, 1's based */
	char     hostnqn[PNVME_NQN_LEN];
	uint8_t  qconn[PEER_MAX_IOQ / 8 + 1]; /* I/O queue ids connected */
};

/* A command waiting for data from the host (R2T -> H2CData). */
struct pcmd {
	bool     busy;
	bool     ddgst_err;
	struct pnvme_sqe sqe;
	uint8_t *buf;
	uint32_t len;            /* bytes the command moves */
	uint32_t rcvd;           /* bytes received, in order */
	uint32_t asked;          /* bytes asked for by R2Ts */
};

enum { CLOSE_NONE, CLOSE_FIN, CLOSE_RST };

struct conn {
	struct tcp_peer *peer;
	struct conn *next;
	pthread_t thread;
	int      fd;
	bool     done;           /* thread finished (peer lock) */
	bool     killed;         /* tcp_peer_kill_connections(): close with a RST (peer lock) */
	int      qid;            /* -1 before Connect */
	int      cntlid;         /* -1 before Connect */
	uint16_t sqsize;         /* 0's based */
	uint16_t sqhd;
	bool     sqflow_off;
	bool     hdgst, ddgst;
	uint32_t r2t_max;        /* R2Ts outstanding per command, 1's based */
	int      close_how;
	struct pnvme_tcp_tx_params tp;
	struct pnvme_tcp_rx rx;
	uint8_t *incap;          /* in-capsule data of the capsule being received */
	uint32_t incap_cap;
	struct pcmd *pend;       /* indexed by TTAG */
	unsigned npend;
	uint8_t *rxbuf;          /* conn_serve()'s receive buffer, reachable from the peer
				  * (LeakSanitizer during fuzz_tcp_host runs) */
};

struct fault {
	int      times;
	int      qid;
	uint32_t arg;
	uint32_t count;          /* CLOSE_AFTER: commands answered since armed */
};

struct tcp_peer {
	/* configuration, defaults resolved */
	struct tcp_peer_cfg cfg;
	char     subnqn[PNVME_NQN_LEN];
	char     hostnqn[PNVME_NQN_LEN];
	struct disc_entry *disc;
	uint32_t maxh2cdata, r2t_len, ioccsz, maxr2t, c2h_max, max_xfer, lba_size;
	uint16_t max_queues, queue_size;

	int      lfd;
	uint16_t port;
	int      wake[2];        /* readable once stopping */
	pthread_t acceptor;

	pthread_mutex_t lock;
	pthread_cond_t cond;     /* broadcast when a counter changes */
	struct tcp_peer_stats st;
	struct fault faults[TCP_PEER_FAULT_COUNT];
	struct ctrl ctrls[PEER_MAX_CTRLS];
	uint16_t next_cntlid;
	struct conn *conns;
	uint8_t *ns;
	size_t   ns_len;
};

static inline uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void peer_lock(struct tcp_peer *p)
{
	pthread_mutex_lock(&p->lock);
}

/* Unlock, waking tcp_peer_wait() (every locked section may change a counter). */
static inline void peer_unlock(struct tcp_peer *p)
{
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* tcp_peer.c: faults and the send side (all on the connection's thread) */
bool tp_fault_take(struct conn *c, enum tcp_peer_fault kind, uint32_t *arg);
bool tp_fault_take_qid(struct tcp_peer *p, enum tcp_peer_fault kind, int qid, uint32_t *arg);
bool tp_fault_close_after(struct conn *c);
int tp_send_pdu(struct conn *c, struct pnvme_tcp_tx_pdu *pdu);
int tp_send_resp(struct conn *c, uint16_t cid, uint16_t status, uint32_t dw0, uint32_t dw1);
int tp_send_c2h(struct conn *c, uint16_t cid, const uint8_t *buf, uint32_t len, bool *done);

/* tcp_peer_cmd.c: controllers (peer lock held) and commands (connection thread) */
struct ctrl *tp_ctrl_find(struct tcp_peer *p, int cntlid);
void tp_ctrl_destroy(struct tcp_peer *p, struct ctrl *ctrl, const struct conn *self);
int tp_cmd_capsule(struct conn *c, const struct pnvme_sqe *sqe, uint32_t incap, int ddgst);
int tp_cmd_execute(struct conn *c, const struct pnvme_sqe *sqe, uint8_t *buf, uint32_t len,
		   uint16_t status);
int tp_cmd_send_r2ts(struct conn *c, struct pcmd *pc);
void tp_pcmd_free(struct pcmd *pc);

#endif /* PNVME_TESTS_TCP_PEER_PRIV_H */
