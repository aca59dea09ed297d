/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tcp/host.h - the NVMe/TCP host transport (NVMe/TCP Transport Specification
 * 1.0, "TCP 1.0"; NVMe Base 2.0 §3.3.2 message-based queueing, §6 fabrics
 * commands).
 *
 * Model. A queue pair on TCP keeps the same SQ and CQ rings, trackers and
 * recovery as on PCIe (src/pcie/qpair.c, src/core/recovery.c); what carries
 * the entries differs.
 * Where a PCIe device fetches SQ entries after a tail doorbell, the TCP
 * queue (tcp_queue.c) sends the entries the doorbell announced as command
 * capsules, with their data described by the SQE's SGL (a pointer into the
 * caller's memory, never copied), and turns response capsules and C2HData
 * SUCCESS into CQEs it posts to the CQ ring with the phase tag. The
 * completion path, command ids, timeouts, retries and reconnection are
 * then the controller core's, shared with PCIe.
 *
 * One TCP connection per queue (admin and each I/O queue pair), non-blocking,
 * driven only from the queue pair's own poll (and the sync admin waits):
 * no threads, no blocking system call on the I/O path.
 */
#ifndef PNVME_TCP_HOST_H
#define PNVME_TCP_HOST_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "core/ctrl_priv.h"
#include "tcp/pdu.h"

/* Connection options of a TCP controller (parsed from the address, ctrl.h). */
struct pnvme_tcp_opts {
	char     host[256];       /* as given (address or name) */
	char     port[16];
	char     subnqn[PNVME_NQN_LEN];
	char     hostnqn[PNVME_NQN_LEN];
	uint8_t  hostid[16];
	bool     hdgst;           /* hdr_digest */
	bool     ddgst;           /* data_digest */
	uint32_t kato_ms;         /* keep_alive_tmo (seconds in the address), 0: none */
	uint32_t reconnect_delay_ms;
	uint32_t ctrl_loss_tmo_ms;
	uint32_t connect_timeout_ms;
	uint16_t nr_io_queues;    /* 0: the controller options' value */
	uint16_t queue_size;      /* I/O queue entries asked for by default, 0: library default */
};

/* Controller-wide TCP state (ctrl->tcp). */
struct pnvme_tcp_ctrl {
	struct pnvme_tcp_opts o;
	struct sockaddr_storage sa; /* resolved once, at open */
	socklen_t sa_len;
	uint16_t cntlid;          /* from the admin queue's Connect */
	bool     discovery;       /* the subsystem is a discovery controller */
	uint32_t icd_io;          /* in-capsule data bytes allowed on I/O queues (IOCCSZ) */
	uint64_t ka_next;         /* cycle counter: next Keep Alive due */
	uint64_t ka_ticks;        /* interval: KATO / 2 */
	int      ka_outstanding;  /* a Keep Alive is in flight (admin lock) */
	uint32_t ka_sent;         /* Keep Alives sent (tests) */
};

/* Per tracker: what the connection knows of the command using that tracker. */
struct tcp_req {
	uint8_t *buf;             /* the command's data (caller's memory) */
	uint32_t len;             /* its length (the SGL's) */
	uint16_t cid;             /* CID of the capsule sent */
	uint8_t  state;           /* enum tcp_req_state */
	uint8_t  dir;             /* enum tcp_dir */
	bool     incapsule;       /* data went in the capsule */
	bool     ddgst_err;       /* a C2HData digest failed: complete with a transport error */
	bool     queued;          /* a PDU of it is in the send queue */
	bool     r2t_active;      /* an R2T is being answered */
	uint16_t ttag;
	uint32_t rcvd;            /* C2H bytes received (in order) */
	uint32_t r2t_off;         /* next H2C byte to send */
	uint32_t r2t_end;         /* end of the current R2T's range */
	uint32_t r2t_next;        /* where the next R2T must start (data asked for so far) */
	uint32_t next;            /* send queue link: tracker index + 1, 0 = end */
	struct pnvme_tcp_tx_pdu pdu; /* the capsule, then each H2CData in turn */
};

enum tcp_req_state { REQ_IDLE = 0, REQ_SENT, REQ_DONE };
enum tcp_dir { DIR_NONE = 0, DIR_H2C, DIR_C2H };

#define TCP_RXBUF 65536u
#define TCP_MAX_IOV 64u

/* One connection (qp->tq). */
struct pnvme_tcp_queue {
	int      fd;              /* -1 when not connected */
	uint32_t db_sq;           /* the queue pair's "doorbells" land here */
	uint32_t db_cq;
	uint32_t send_head;       /* next SQ entry to send */
	uint32_t cq_tail;         /* next CQ entry to post */
	uint16_t cq_phase;
	uint16_t qid;
	int      err;             /* the connection's fatal error, 0 while usable */
	struct pnvme_tcp_tx_params tp;
	uint32_t icd_max;         /* in-capsule data bytes this queue accepts */
	uint32_t maxh2cdata;      /* from ICResp */
	uint32_t tx_head, tx_tail; /* send queue: tracker index + 1, 0 = empty */
	uint32_t tx_off;          /* bytes of the head PDU already sent */
	struct tcp_req *req;      /* [qp->nr_trk] */
	struct pnvme_tcp_rx rx;
	struct pnvme_tcp_tx_pdu term; /* H2CTermReq to send before closing */
	struct pnvme_qpair *qp;
	/* statistics (tests, pnvme-perf) */
	uint64_t sendmsgs, recvs, pdus_rx;
	uint8_t  rxbuf[TCP_RXBUF];
};

/* tcp_queue.c */
int tcp_queue_alloc(struct pnvme_qpair *qp);
void tcp_queue_free(struct pnvme_qpair *qp);
/**
 * Open the queue's connection: TCP connect, ICReq/ICResp (TCP 1.0 §3.6.2.1),
 * then the Connect command (Base 2.0 §6.3) exchanged synchronously before
 * any ring entry is sent. `sqsize` 0's based; `kato_ms` admin queue only.
 * Bounded by the connect timeout. Returns 0 (*cntlid set) or -errno with
 * pnvme_last_error() saying what the target refused.
 */
int tcp_queue_connect(struct pnvme_qpair *qp, uint16_t cntlid, uint32_t kato_ms,
		      uint16_t *cntlid_out);
/** Close the connection and drop everything queued for it (idempotent). */
void tcp_queue_close(struct pnvme_qpair *qp);
/**
 * Send what the SQ doorbell announced, receive what arrived, post CQEs.
 * Returns 0, or the connection's fatal error (negative errno, message set);
 * the connection is closed then.
 */
int tcp_queue_poll(struct pnvme_qpair *qp);
/** Send what the SQ doorbell announced (pnvme_qpair_flush). */
void tcp_queue_flush(struct pnvme_qpair *qp);
/**
 * Describe `len` bytes at `buf` in the SQE for the TCP queue: PSDT SGL and
 * a Data Block descriptor with the virtual address, which the send path
 * turns into an in-capsule or transport data block on the wire.
 */
static inline void tcp_sqe_data(struct pnvme_sqe *sqe, const void *buf, size_t len)
{
	struct pnvme_sgl_desc *sgl = (struct pnvme_sgl_desc *)(void *)&sqe->prp1;

	sqe->flags = (uint8_t)((sqe->flags & ~(PNVME_SQE_PSDT_MASK << PNVME_SQE_PSDT_SHIFT)) |
			       (PNVME_SQE_PSDT_SGL_MPTR_CONTIG << PNVME_SQE_PSDT_SHIFT));
	sgl->addr = (uint64_t)(uintptr_t)buf;
	sgl->length = (uint32_t)len;
	sgl->rsvd12[0] = sgl->rsvd12[1] = sgl->rsvd12[2] = 0;
	sgl->id = PNVME_SGL_ID(PNVME_SGL_TYPE_DATA_BLOCK, PNVME_SGL_SUBTYPE_ADDRESS);
}

/* tcp_ctrl.c */
/** Open "tcp:..." (the grammar is in pnvme/ctrl.h). */
int tcp_ctrl_open(const char *addr, struct pnvme_ctrl *ctrl);
/** Keep Alive if due (any thread, cheap when not due). */
void tcp_keep_alive(struct pnvme_ctrl *ctrl);

#endif /* PNVME_TCP_HOST_H */
