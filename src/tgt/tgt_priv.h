/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tgt/tgt_priv.h - the NVMe/TCP target's internals (pnvme/tgt.h):
 *
 *   tgt.c        the target object, configuration (subsystems, namespaces,
 *                hosts), the listeners, start and stop, controllers
 *   tgt_group.c  polling groups and their threads, accepting connections,
 *                backend queue pairs and DMA buffer pools
 *   tgt_conn.c   one TCP connection: ICReq, PDU receive and send, R2T flow,
 *                data movement, fatal errors (C2HTermReq) and close
 *   tgt_parse.c  the single command entry (after Linux's nvmet_req_init):
 *                check the capsule, dispatch by queue and opcode to
 *                parse_connect / parse_fabrics / parse_discovery / parse_admin
 *                / parse_io, each setting the execute function and the
 *                expected transfer length before any data moves
 *   tgt_admin.c  the virtual controller: Connect, properties, admin commands,
 *                discovery log, keep alive
 *   tgt_io.c     NVM commands passed to the backend queue pairs
 *
 * Threads and ownership. A polling group (one per thread, or one polled by
 * the application) owns its connections, its requests and one queue pair and
 * buffer pool per backend controller: nothing on the I/O path is shared with
 * another thread. Shared: the configuration and the controller table (the
 * target's lock; namespaces are published with release stores and never
 * removed, so the I/O path reads them without the lock), and per controller
 * the `dead` flag and CSTS (atomics). A controller's admin state (CC, KATO,
 * AERs, features) belongs to the thread of its admin queue's connection.
 */
#ifndef PNVME_TGT_PRIV_H
#define PNVME_TGT_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <pnvme/ctrl.h>
#include <pnvme/qpair.h>
#include <pnvme/spec.h>
#include <pnvme/tcp_spec.h>
#include <pnvme/tgt.h>

#include "tcp/pdu.h"

#define TGT_MAX_SUBSYS    64u
#define TGT_MAX_NS        32u     /* namespaces per subsystem */
#define TGT_MAX_NSID      1024u   /* Identify NN */
#define TGT_MAX_HOSTS     64u     /* allowed hosts per subsystem */
#define TGT_MAX_BACKENDS  16u
#define TGT_MAX_THREADS   64u
#define TGT_MAX_IOQ       256u
#define TGT_ADMIN_ICD     8192u   /* in-capsule data on the admin queue (as nvmet) */
#define TGT_AERL          3u      /* Identify AERL: 4 AERs held at most (0's based) */
#define TGT_ACL           3u      /* Identify ACL */
#define TGT_RXBUF         65536u
#define TGT_MAX_IOV       64u
#define TGT_STOP_DRAIN_MS 5000u
#define TGT_CLOSE_DRAIN_MS 200u
#define TGT_NQN_MAX       223u    /* Base 2.0 §4.5: NQN at most 223 bytes */
#define TGT_CATTR_NO_SQFLOW 0x04u /* Connect CATTR bit 2: SQ flow control disabled */
#define TGT_CHANGED_NS_MAX 1024u  /* Changed Namespace List entries (Base 2.0 §5.16.1.5) */

/*
 * Asynchronous events the target raises (Base 2.0 §5.2, Figure 146-150): one
 * bit each in tgt_ctrl.aen_pending / aen_masked, with the AEC bit that
 * enables it (Figure 324) and the AER completion DW0 (type | info << 8 |
 * log page << 16).
 */
#define TGT_AEN_NS_ATTR   (1u << 0)  /* Notice: Namespace Attribute Changed, log 04h */
#define TGT_AEN_DISC      (1u << 1)  /* Notice: Discovery Log Page Change, log 70h */
#define TGT_AEC_NS_ATTR   (1u << 8)
#define TGT_AEC_DISC      (1u << 31)
#define TGT_AER_NOTICE    2u
#define TGT_AER_INFO_NS_ATTR 0x00u
#define TGT_AER_INFO_DISC    0xf0u

/* Status with DNR, as nvmet answers malformed commands */
#define TGT_SC(sct, sc)  ((uint16_t)(PNVME_STATUS(sct, sc) | PNVME_STATUS_DNR))
#define TGT_GEN(sc)      TGT_SC(PNVME_SCT_GENERIC, sc)

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

struct tgt_ns {
	uint32_t nsid;
	unsigned backend;              /* index in tgt->backends */
	const struct pnvme_ns *bns;    /* the backend's namespace */
	uint64_t nsze;                 /* blocks */
	uint32_t lba_shift;
	uint8_t  nguid[16];            /* stable: a hash of the subsystem NQN and NSID */
	uint8_t  uuid[16];
};

struct tgt_subsys {
	char     nqn[PNVME_NQN_LEN];
	char     sn[21];               /* Identify SN, from the NQN */
	bool     allow_any;
	unsigned nr_hosts;
	char   (*hosts)[PNVME_NQN_LEN];
	unsigned nr_ns;                /* written under the lock */
	struct tgt_ns *ns[TGT_MAX_NS]; /* in NSID order of addition */
	struct tgt_ns *by_nsid[TGT_MAX_NSID + 1]; /* release-published, never cleared */
};

/* ------------------------------------------------------------------------ */
/* Virtual controllers                                                       */
/* ------------------------------------------------------------------------ */

struct tgt_ctrl {
	struct pnvme_tgt *tgt;
	struct tgt_subsys *subsys;     /* NULL: the discovery controller */
	struct tgt_ctrl *next;         /* the target's table (lock) */
	uint16_t cntlid;
	bool     dead;                 /* atomic: torn down, its queues close */
	int      refs;                 /* atomic: connections holding it */
	uint32_t csts;                 /* atomic (I/O queues read RDY) */
	uint16_t nr_io;                /* I/O queues granted (lock) */
	uint8_t  qconn[TGT_MAX_IOQ / 8 + 1]; /* I/O queue ids connected (lock) */
	uint32_t io_gen;               /* atomic, written under the lock: moves when CC.EN
					* 1 -> 0 deletes the I/O queues (their connections close) */
	char     hostnqn[PNVME_NQN_LEN];
	uint8_t  hostid[16];
	uint32_t aen_pending;          /* atomic: TGT_AEN_* raised (any thread), not yet sent */
	uint32_t nr_changed;           /* Changed Namespace List (lock); ~0u: overflowed */
	uint32_t changed[TGT_CHANGED_NS_MAX];
	/* admin queue thread only */
	uint32_t aen_masked;           /* TGT_AEN_* sent, not yet cleared by reading the log */
	uint32_t cc;
	uint32_t kato;                 /* ms, 0: none */
	uint64_t ka_deadline;          /* monotonic ms */
	uint32_t aec;                  /* Asynchronous Event Configuration (atomic: raisers
					* of events read it) */
	struct tgt_req *aer[TGT_AERL + 1];
	unsigned nr_aer;
};

/* ------------------------------------------------------------------------ */
/* Requests and connections                                                  */
/* ------------------------------------------------------------------------ */

enum tgt_dir { TGT_DIR_NONE = 0, TGT_DIR_H2C = 1, TGT_DIR_C2H = 2 };

enum tgt_req_state {
	REQ_FREE = 0,
	REQ_RECV,        /* the capsule (and in-capsule data) is being received */
	REQ_H2C,         /* R2T sent, waiting for H2CData */
	REQ_EXEC,        /* executing (at the backend, or waiting to be submitted) */
	REQ_HELD,        /* an Asynchronous Event Request kept for later */
	REQ_SEND,        /* its PDUs are queued */
};

/* What a queued PDU is, so the send side knows what follows it. */
enum tgt_tx_kind { TX_CTL = 0, TX_R2T, TX_C2H, TX_C2H_LAST, TX_RESP };

struct tgt_tx {
	struct pnvme_tcp_tx_pdu pdu;
	struct tgt_tx *next;
	struct tgt_req *req;           /* NULL for the connection's own PDUs */
	uint8_t kind;                  /* enum tgt_tx_kind */
};

struct tgt_conn;

struct tgt_req {
	struct tgt_conn *conn;
	struct pnvme_sqe sqe;
	/* set by the parse step (tgt_req_init) before any data moves */
	void   (*execute)(struct tgt_req *req);
	const struct tgt_ns *ns;
	uint32_t len;                  /* expected transfer length = the SGL's */
	uint8_t  dir;                  /* enum tgt_dir */
	bool     incap;                /* data came in the capsule */
	/* progress */
	uint8_t  state;                /* enum tgt_req_state */
	bool     ddgst_err;
	bool     dma;                  /* buf is from the group's pool of `ns->backend` */
	bool     backend;              /* submitted to a backend queue pair */
	uint16_t status;               /* NVMe status (PNVME_STATUS form, DNR included) */
	uint16_t idx;                  /* index in conn->reqs: the R2T's TTAG */
	uint32_t dw0, dw1;
	uint32_t rcvd;                 /* H2C bytes received, in order */
	uint8_t *buf;
	struct tgt_req *wnext;         /* the group's wait list */
	struct tgt_tx tx;
	struct tgt_tx rtx;             /* the CapsuleResp behind a C2HData in tx: both
					* queued at once, so one sendmsg carries them */
};

enum tgt_conn_state {
	CONN_IC = 0,     /* waiting for ICReq (until the IC deadline) */
	CONN_LIVE,       /* IC done: commands flow */
	CONN_CLOSING,    /* sending what is queued (a C2HTermReq last), then FIN and drain */
	CONN_DRAIN,      /* FIN sent: read and drop until the host closes or a deadline */
	CONN_DEAD,       /* socket closed; freed once no request is at a backend */
};

struct tgt_conn {
	struct tgt_group *g;
	struct tgt_conn *next;
	int      fd;
	bool     rx_ready;             /* epoll saw it readable; cleared once drained */
	bool     in_txq;               /* on the group's txq */
	struct tgt_conn *txnext;       /* the group's txq */
	uint8_t  state;                /* enum tgt_conn_state */
	bool     stopping;             /* the target stops: take no more commands */
	bool     disc_only;            /* came through the discovery listener */
	int      qid;                  /* -1 before Connect */
	struct tgt_ctrl *ctrl;
	uint32_t io_gen;               /* I/O queue: ctrl->io_gen at its Connect */
	uint16_t sqsize;               /* 0's based */
	uint16_t sqhd;
	bool     sqflow_off;
	bool     hdgst, ddgst;
	uint32_t icd;                  /* in-capsule data accepted on this queue */
	uint64_t deadline;             /* IC wait / drain end, monotonic ms */
	struct pnvme_tcp_tx_params tp;
	struct pnvme_tcp_rx rx;
	struct tgt_req *cur;           /* the capsule being received */
	struct tgt_req *reqs;
	uint16_t nr_reqs;
	uint16_t nr_free;
	uint16_t *free;
	unsigned busy;                 /* requests not free */
	unsigned at_backend;           /* requests submitted to a backend */
	struct tgt_tx *tx_head, *tx_tail;
	uint32_t tx_off;               /* bytes of the head PDU sent */
	struct tgt_tx ctl;             /* ICResp or C2HTermReq */
	char     traddr[64];           /* our address and port as the host reached them */
	char     trsvcid[8];
	uint8_t  adrfam;
	uint8_t *rxbuf;
};

/* ------------------------------------------------------------------------ */
/* Polling groups                                                            */
/* ------------------------------------------------------------------------ */

struct tgt_bq {                    /* one backend controller, seen from one group */
	struct pnvme_qpair *qp;
	int      efd;                  /* the queue pair's interrupt eventfd, -1: polled only */
	bool     failed;               /* qpair creation failed: no more tries */
	unsigned outstanding;
	void   **pool;                 /* free DMA buffers of tgt->max_xfer bytes */
	unsigned nr_pool, pool_cap;
	unsigned allocated;
};

struct tgt_stats {                 /* written by one thread (relaxed atomics), summed */
	uint64_t ctrls_created, kato_expired, ic_timeouts, term_reqs, cmds, cmd_errors;
	uint64_t r2ts, bytes_read, bytes_written;
};

#define TGT_EP_EVENTS 64u           /* epoll events taken per round */

struct tgt_group {
	struct pnvme_tgt *tgt;
	unsigned id;
	pthread_t thread;
	bool     has_thread;
	struct tgt_conn *conns;
	struct tgt_bq bq[TGT_MAX_BACKENDS];
	struct tgt_req *wait_head, *wait_tail; /* commands the backend could not take yet */
	uint64_t now;                  /* monotonic ms, once per round */
	uint64_t accept_ms;            /* group 0: `now` of the last accept round */
	pthread_mutex_t inbox_lock;
	struct tgt_conn *inbox;        /* connections accepted by another group */
	bool     inbox_full;           /* atomic hint */
	int      wake_fd;              /* eventfd: ends the thread's idle sleep (inbox, stop) */
	int      epfd;                 /* epoll of its connections' sockets, -1: recv() each */
	bool     accept_ep;            /* group 0: the listeners are in epfd */
	bool     accept_ready;         /* group 0: epoll saw a listener readable */
	bool     ep_quiet;             /* the last sleep's poll found epfd not readable */
	bool     scan;                 /* the next round visits every connection */
	uint64_t scan_ms;              /* `now` of the last round that did */
	struct tgt_conn *txq;          /* connections with PDUs queued to send */
	unsigned nr_act;
	struct tgt_conn *act[TGT_EP_EVENTS + 1]; /* this round's readable connections */
	struct tgt_conn *hot;          /* the last to deliver bytes: read without waiting for epoll */
	struct tgt_stats st;
};

#define TGT_STAT_ADD(g, f, n) \
	__atomic_store_n(&(g)->st.f, (g)->st.f + (uint64_t)(n), __ATOMIC_RELAXED)

struct pnvme_tgt {
	struct pnvme_tgt_opts o;
	char     listen[300];
	struct sockaddr_storage sa;
	socklen_t sa_len;
	int      lfd;
	uint16_t port;
	char     dlisten[300];         /* the discovery-only listener (opts.discovery_listen) */
	struct sockaddr_storage dsa;
	socklen_t dsa_len;
	int      dfd;                  /* -1: none */
	uint16_t dport;
	uint32_t max_xfer;
	pthread_mutex_t lock;          /* configuration and controllers */
	struct tgt_subsys *subsys[TGT_MAX_SUBSYS];
	unsigned nr_subsys;            /* release-published */
	struct pnvme_ctrl *backends[TGT_MAX_BACKENDS];
	/* an emulator with no thread (null:, emu:mode=step) behind backends[i], which
	 * completes commands only when stepped: the pollers step it (tgt_group.c) */
	struct pnvme_emu *stepped[TGT_MAX_BACKENDS];
	unsigned nr_backends;
	struct tgt_ctrl *ctrls;
	uint16_t next_cntlid;
	uint64_t genctr;
	struct tgt_group *groups;
	unsigned nr_groups;
	unsigned rr;                   /* next group for an accepted connection */
	bool     started;
	bool     stopping;             /* atomic */
	uint32_t nconns;               /* atomic */
	uint64_t accepted, refused;    /* atomic */
	struct tgt_stats done;         /* counters of groups that ended */
};

/* ------------------------------------------------------------------------ */
/* Functions shared between the files                                        */
/* ------------------------------------------------------------------------ */

/* tgt.c */
uint64_t tgt_now_ms(void);
struct tgt_subsys *tgt_subsys_find(struct pnvme_tgt *t, const char *nqn); /* lock held */
bool tgt_host_allowed(const struct tgt_subsys *s, const char *hostnqn);   /* lock held */
const struct tgt_ns *tgt_ns_get(const struct tgt_subsys *s, uint32_t nsid); /* lock-free */
void tgt_ctrl_put(struct tgt_ctrl *c);
void tgt_ctrl_kill(struct tgt_ctrl *c);
/* The discovery log changed: move GENCTR, raise the notice on discovery controllers (lock held). */
void tgt_disc_changed(struct pnvme_tgt *t);

/* tgt_group.c */
struct tgt_bq *tgt_bq_get(struct tgt_group *g, unsigned backend);
void *tgt_pool_get(struct tgt_group *g, unsigned backend);
void tgt_pool_put(struct tgt_group *g, unsigned backend, void *buf);
/* Take ownership of a connected socket (the listener's accept, or a test's socketpair). */
int tgt_conn_adopt(struct pnvme_tgt *t, int fd);
/* The same; a connection of the discovery listener serves only the discovery subsystem. */
int tgt_conn_adopt_on(struct pnvme_tgt *t, int fd, bool disc_only);
void tgt_group_watch_listeners(struct tgt_group *g); /* group 0: accept on epoll's word */

/* The connection has PDUs to send: on its group's txq, flushed every round. */
static inline void tgt_group_txq(struct tgt_conn *c)
{
	if (!c->in_txq) {
		c->in_txq = true;
		c->txnext = c->g->txq;
		c->g->txq = c;
	}
}
int tgt_group_poll(struct tgt_group *g);
void *tgt_group_thread(void *arg);            /* pthread entry of group `arg` */
void tgt_group_wake(struct tgt_group *g);     /* end its thread's idle sleep */
void tgt_group_stop(struct tgt_group *g);     /* drain, close everything, free the queue pairs */

/* tgt_conn.c */
struct tgt_conn *tgt_conn_new(struct tgt_group *g, int fd);
int tgt_conn_poll(struct tgt_conn *c);          /* returns work done; never fails */
int tgt_conn_flush(struct tgt_conn *c);
bool tgt_conn_freeable(const struct tgt_conn *c);
void tgt_conn_free(struct tgt_conn *c);
void tgt_conn_close(struct tgt_conn *c);        /* abrupt: close now, no TermReq */
bool tgt_conn_wants_out(const struct tgt_conn *c);
void tgt_req_complete(struct tgt_req *req);     /* status/dw0/dw1 set: answer it */
void tgt_req_release(struct tgt_req *req);      /* give the request back (no answer) */
int tgt_req_buf(struct tgt_req *req);           /* a data buffer of req->len bytes */

/* tgt_parse.c */
uint16_t tgt_req_init(struct tgt_req *req, uint32_t incap);

/* tgt_admin.c (execute functions; each ends with tgt_req_complete or holds the request) */
void tgt_exec_connect(struct tgt_req *req);
void tgt_exec_prop_get(struct tgt_req *req);
void tgt_exec_prop_set(struct tgt_req *req);
void tgt_exec_identify(struct tgt_req *req);
void tgt_exec_get_log(struct tgt_req *req);
void tgt_exec_features(struct tgt_req *req);
void tgt_exec_keep_alive(struct tgt_req *req);
void tgt_exec_abort(struct tgt_req *req);
void tgt_exec_aer(struct tgt_req *req);
/* The admin connection's periodic check: false when KATO expired. */
bool tgt_ctrl_kato_ok(struct tgt_conn *c);
/* Admin queue: complete held AERs with raised events; returns work done. */
int tgt_ctrl_aen(struct tgt_conn *c);
/* Is this I/O queue deleted (its controller's CC.EN went 1 -> 0 since its Connect)? */
static inline bool tgt_ioq_deleted(const struct tgt_conn *c)
{
	return c->qid > 0 && __atomic_load_n(&c->ctrl->io_gen, __ATOMIC_ACQUIRE) != c->io_gen;
}

/* tgt_io.c */
void tgt_exec_io(struct tgt_req *req);
/* Retry what the backends could not take; returns work done. */
int tgt_io_retry(struct tgt_group *g);

static inline const struct pnvme_sgl_desc *tgt_sgl(const struct pnvme_sqe *sqe)
{
	return (const struct pnvme_sgl_desc *)(const void *)&sqe->prp1;
}

#endif /* PNVME_TGT_PRIV_H */
