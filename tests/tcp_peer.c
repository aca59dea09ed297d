/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tcp_peer.c - the fake NVMe/TCP target of tcp_peer.h.
 *
 * Layout: the peer (listener, accept thread, controllers, faults, counters);
 * one connection (its thread: poll, recv, the PDU receiver; the send side
 * with the PDU-spoiling faults); the commands (check the capsule and its
 * SGL, move data with R2T/H2CData and C2HData, execute, answer).
 *
 * Locking: one mutex per peer guards the counters, the faults, the
 * controllers, the connection list and the namespace bytes. A connection's
 * own state is its thread's alone. Sockets are closed only by the thread
 * that owns them (others may shutdown() them to wake it).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <pnvme/spec.h>
#include <pnvme/tcp_spec.h>

#include "internal.h"
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

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void peer_lock(struct tcp_peer *p)
{
	pthread_mutex_lock(&p->lock);
}

/* Unlock, waking tcp_peer_wait() (every locked section may change a counter). */
static void peer_unlock(struct tcp_peer *p)
{
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* ------------------------------------------------------------------------ */
/* Faults                                                                    */
/* ------------------------------------------------------------------------ */

static bool fault_match(const struct fault *f, const struct conn *c)
{
	return f->times != 0 && (f->qid == TCP_PEER_ANY_QID || f->qid == c->qid);
}

static bool fault_take_qid(struct tcp_peer *p, enum tcp_peer_fault kind, int qid, uint32_t *arg);

/* Take one firing of `kind` if it is armed for this connection's queue. */
static bool fault_take(struct conn *c, enum tcp_peer_fault kind, uint32_t *arg)
{
	return fault_take_qid(c->peer, kind, c->qid, arg);
}

/* Take one firing of `kind` if it is armed for queue `qid`. */
static bool fault_take_qid(struct tcp_peer *p, enum tcp_peer_fault kind, int qid, uint32_t *arg)
{
	struct fault *f = &p->faults[kind];
	bool hit;

	peer_lock(p);
	hit = f->times != 0 && (f->qid == TCP_PEER_ANY_QID || f->qid == qid);
	if (hit) {
		if (f->times > 0)
			f->times--;
		p->st.faults_fired[kind]++;
		if (arg)
			*arg = f->arg;
	}
	peer_unlock(p);
	return hit;
}

/* As fault_take() for the PDU-spoiling faults: `arg` is a mask of PDU types (0: any). */
static bool fault_take_pdu(struct conn *c, enum tcp_peer_fault kind, uint8_t type)
{
	struct tcp_peer *p = c->peer;
	struct fault *f = &p->faults[kind];
	bool hit;

	peer_lock(p);
	hit = fault_match(f, c) && (!f->arg || (type < 32 && (f->arg & (1u << type))));
	if (hit) {
		if (f->times > 0)
			f->times--;
		p->st.faults_fired[kind]++;
	}
	peer_unlock(p);
	return hit;
}

/* CLOSE_AFTER: true when this command is the one past the count. */
static bool fault_close_after(struct conn *c)
{
	struct tcp_peer *p = c->peer;
	struct fault *f = &p->faults[TCP_PEER_FAULT_CLOSE_AFTER];
	bool hit = false;

	peer_lock(p);
	if (fault_match(f, c)) {
		if (f->count >= f->arg) {
			hit = true;
			f->count = 0;
			if (f->times > 0)
				f->times--;
			p->st.faults_fired[TCP_PEER_FAULT_CLOSE_AFTER]++;
		} else {
			f->count++;
		}
	}
	peer_unlock(p);
	return hit;
}

void tcp_peer_set_fault(struct tcp_peer *peer, enum tcp_peer_fault fault, int times, int qid,
			uint32_t arg)
{
	if ((unsigned)fault >= TCP_PEER_FAULT_COUNT)
		return;
	peer_lock(peer);
	peer->faults[fault] = (struct fault){ .times = times, .qid = qid, .arg = arg };
	peer_unlock(peer);
}

void tcp_peer_clear_faults(struct tcp_peer *peer)
{
	peer_lock(peer);
	memset(peer->faults, 0, sizeof(peer->faults));
	peer_unlock(peer);
}

/* ------------------------------------------------------------------------ */
/* Send side                                                                 */
/* ------------------------------------------------------------------------ */

/* Wait until `fd` is ready for `events`; -ESHUTDOWN when the peer stops. */
static int wait_fd(struct conn *c, short events, int timeout_ms)
{
	struct pollfd pfd[2] = {
		{ .fd = c->fd, .events = events },
		{ .fd = c->peer->wake[0], .events = POLLIN },
	};
	int n;

	do
		n = poll(pfd, 2, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (pfd[1].revents)
		return -ESHUTDOWN;
	return n;
}

static int send_iov(struct conn *c, struct iovec *iov, size_t cnt)
{
	size_t i = 0;

	while (i < cnt) {
		struct msghdr mh = { .msg_iov = iov + i, .msg_iovlen = cnt - i };
		ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		int ret;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			ret = wait_fd(c, POLLOUT, -1);
			if (ret < 0)
				return ret;
			continue;
		}
		i += pnvme_tcp_iov_advance(iov + i, cnt - i, (size_t)n);
	}
	return 0;
}

/* Send one built PDU, after spoiling it if a fault says so. */
static int send_pdu(struct conn *c, struct pnvme_tcp_tx_pdu *pdu)
{
	struct pnvme_tcp_ch *ch = &pdu->hdr.ch;
	uint8_t type = ch->pdu_type, hlen = ch->hlen;
	bool data = pdu->data_len && type != PNVME_TCP_C2H_TERM_REQ;
	struct iovec iov[3];
	uint32_t arg = 0;
	int n;

	if (fault_take(c, TCP_PEER_FAULT_BAD_PDU_TYPE, &arg))
		ch->pdu_type = arg ? (uint8_t)arg : 0x0f;
	if (fault_take_pdu(c, TCP_PEER_FAULT_BAD_HLEN, type))
		ch->hlen = (uint8_t)(hlen + 8);
	if (data && fault_take_pdu(c, TCP_PEER_FAULT_BAD_PDO, type))
		ch->pdo = (uint8_t)(hlen - 4);
	if (fault_take_pdu(c, TCP_PEER_FAULT_BAD_PLEN, type))
		ch->plen = 4;
	if ((ch->flags & PNVME_TCP_F_HDGSTF) && fault_take_pdu(c, TCP_PEER_FAULT_HDGST, type))
		pdu->hdr.raw[hlen] ^= 0x5a;
	if (data && (ch->flags & PNVME_TCP_F_DDGSTF) && fault_take_pdu(c, TCP_PEER_FAULT_DDGST, type))
		pdu->ddgst ^= 0x1;
	n = pnvme_tcp_pdu_iov(pdu, iov);
	return send_iov(c, iov, (size_t)n);
}

static int send_cqe(struct conn *c, const struct pnvme_cqe *cqe)
{
	struct pnvme_tcp_tx_pdu pdu;

	pnvme_tcp_build_capsule_resp(&pdu, &c->tp, cqe);
	return send_pdu(c, &pdu);
}

/* Answer command `cid` with `status` (PNVME_STATUS form, no phase bit). */
static int send_resp(struct conn *c, uint16_t cid, uint16_t status, uint32_t dw0, uint32_t dw1)
{
	struct pnvme_cqe cqe = {
		.dw0 = dw0, .dw1 = dw1, .sqhd = c->sqhd,
		.sqid = (uint16_t)(c->qid < 0 ? 0 : c->qid), .cid = cid,
		.status = (uint16_t)(status << 1),
	};
	uint32_t arg = 0;
	int ret;

	if (fault_take(c, TCP_PEER_FAULT_UNKNOWN_CCCID, &arg)) {
		struct pnvme_cqe bogus = cqe;

		bogus.cid = (uint16_t)(cid ^ (arg ? arg : 0x8000u));
		ret = send_cqe(c, &bogus);
		if (ret)
			return ret;
	}
	if (fault_take(c, TCP_PEER_FAULT_WRONG_CCCID, &arg))
		cqe.cid = (uint16_t)(cid ^ (arg ? arg : 0x8000u));
	ret = send_cqe(c, &cqe);
	if (!ret && fault_take(c, TCP_PEER_FAULT_DUP_RESP, NULL))
		ret = send_cqe(c, &cqe);
	return ret;
}

/*
 * Send `len` bytes of command `cid` as C2HData PDUs of at most c2h_max
 * bytes (TCP 1.0 §3.6.2.8). Sets *done when the last one carried SUCCESS
 * (no CapsuleResp then).
 */
static int send_c2h(struct conn *c, uint16_t cid, const uint8_t *buf, uint32_t len, bool *done)
{
	struct tcp_peer *p = c->peer;
	struct pnvme_tcp_tx_pdu pdu;
	bool success = p->cfg.c2h_success && c->sqflow_off;
	uint32_t off = 0;
	int ret;

	*done = false;
	if (fault_take(c, TCP_PEER_FAULT_R2T_FOR_READ, NULL)) {
		pnvme_tcp_build_r2t(&pdu, &c->tp, cid, 0, 0, len);
		ret = send_pdu(c, &pdu);
		if (ret)
			return ret;
	}
	if (fault_take(c, TCP_PEER_FAULT_C2H_OUT_OF_RANGE, NULL)) {
		uint32_t n = len < 512 ? len : 512;

		ret = pnvme_tcp_build_c2h_data(&pdu, &c->tp, cid, len, buf, n, false, false);
		if (!ret)
			ret = send_pdu(c, &pdu);
		if (ret)
			return ret;
	}
	while (off < len) {
		uint32_t n = len - off < p->c2h_max ? len - off : p->c2h_max;
		bool last = off + n == len;

		ret = pnvme_tcp_build_c2h_data(&pdu, &c->tp, cid, off, buf + off, n, last,
					       last && success);
		if (!ret)
			ret = send_pdu(c, &pdu);
		if (ret)
			return ret;
		peer_lock(p);
		p->st.c2h_pdus++;
		peer_unlock(p);
		off += n;
	}
	*done = success && len;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Controllers                                                               */
/* ------------------------------------------------------------------------ */

/* The live controller `cntlid` (peer lock held), or NULL. */
static struct ctrl *ctrl_find(struct tcp_peer *p, int cntlid)
{
	for (unsigned i = 0; i < PEER_MAX_CTRLS; i++)
		if (p->ctrls[i].live && p->ctrls[i].cntlid == cntlid)
			return &p->ctrls[i];
	return NULL;
}

/*
 * The controller is gone (its admin queue closed, or KATO passed): wake
 * every connection of it so they close too, as nvmet tears down all queues
 * of a controller (peer lock held).
 */
static void ctrl_destroy(struct tcp_peer *p, struct ctrl *ctrl, const struct conn *self)
{
	for (struct conn *o = p->conns; o; o = o->next)
		if (o != self && !o->done && o->cntlid == ctrl->cntlid && o->fd >= 0)
			shutdown(o->fd, SHUT_RDWR);
	ctrl->live = false;
}

static uint64_t cap_value(const struct tcp_peer *p)
{
	/* Base 2.0 §3.1.4.1; fabrics: CQR 1, TO 15 (7.5 s), CSS NVM, MPSMIN/MPSMAX 0 (4 KiB). */
	return PNVME_SET(PNVME_CAP_MQES, (uint64_t)p->queue_size - 1u) |
	       PNVME_SET(PNVME_CAP_CQR, 1ull) | PNVME_SET(PNVME_CAP_TO, 15ull) |
	       PNVME_SET(PNVME_CAP_CSS, (uint64_t)PNVME_CAP_CSS_NVM);
}

/* Property Set CC (Base 2.0 §3.1.4.5, §3.6): EN -> RDY, SHN -> SHST complete (peer lock held). */
static void ctrl_write_cc(struct tcp_peer *p, struct ctrl *ctrl, uint32_t cc)
{
	uint32_t old = ctrl->cc;

	ctrl->cc = cc;
	p->st.last_cc = cc;
	if (PNVME_GET(cc, PNVME_CC_EN) && !PNVME_GET(old, PNVME_CC_EN)) {
		/* As nvmet: an I/O controller needs 64/16-byte entries, 4 KiB pages, RR. */
		if (!ctrl->disc && (PNVME_GET(cc, PNVME_CC_IOSQES) != 6 ||
				    PNVME_GET(cc, PNVME_CC_IOCQES) != 4 ||
				    PNVME_GET(cc, PNVME_CC_MPS) != 0 || PNVME_GET(cc, PNVME_CC_AMS) != 0))
			ctrl->csts |= PNVME_SET(PNVME_CSTS_CFS, 1u);
		else
			ctrl->csts |= PNVME_SET(PNVME_CSTS_RDY, 1u);
	} else if (!PNVME_GET(cc, PNVME_CC_EN) && PNVME_GET(old, PNVME_CC_EN)) {
		ctrl->csts &= ~(PNVME_SET(PNVME_CSTS_RDY, 1u) | PNVME_SET(PNVME_CSTS_CFS, 1u));
	}
	ctrl->csts &= ~PNVME_SET(PNVME_CSTS_SHST, PNVME_CSTS_SHST_MASK);
	if (PNVME_GET(cc, PNVME_CC_SHN)) {
		ctrl->csts |= PNVME_SET(PNVME_CSTS_SHST, PNVME_CSTS_SHST_COMPLETE);
		p->st.shutdown = true;
	}
}

/* ------------------------------------------------------------------------ */
/* Commands                                                                  */
/* ------------------------------------------------------------------------ */

/* What a command did: status, DW0/DW1, and data for the host. */
struct result {
	uint16_t status;
	uint32_t dw0, dw1;
	uint32_t xfer;           /* bytes of buf to send as C2HData */
	bool     no_resp;        /* held (AER) or the connection is closing */
};

static void set_str(char *dst, size_t n, const char *src)
{
	size_t l = strlen(src);

	memset(dst, ' ', n);
	memcpy(dst, src, l < n ? l : n);
}

static void put32(uint8_t *b, uint32_t off, uint32_t v)
{
	memcpy(b + off, &v, sizeof(v));
}

/* Connect (Base 2.0 §6.3); data is the 1024-byte Connect data. */
static void exec_connect(struct conn *c, const struct pnvme_sqe *sqe, const uint8_t *data,
			 uint32_t len, struct result *r)
{
	struct tcp_peer *p = c->peer;
	const struct pnvme_fabrics_connect *cmd = (const void *)sqe;
	struct pnvme_fabrics_connect_data d;
	struct ctrl *ctrl = NULL;
	uint32_t arg = 0;
	bool disc;

	peer_lock(p);
	p->st.connects++;
	peer_unlock(p);
	if (c->qid >= 0) {
		r->status = GEN(PNVME_SC_CMD_SEQ_ERROR);
		return;
	}
	if (len < sizeof(d)) {
		r->status = GEN(PNVME_SC_SGL_INVALID_DATA);
		return;
	}
	memcpy(&d, data, sizeof(d));
	d.subnqn[PNVME_NQN_LEN - 1] = 0;
	d.hostnqn[PNVME_NQN_LEN - 1] = 0;
	if (fault_take_qid(p, TCP_PEER_FAULT_CONNECT_STATUS, cmd->qid, &arg)) {
		r->status = SC_DNR(PNVME_SCT_CMD, arg & 0xffu);
		if ((arg & 0xffu) == PNVME_SC_CONNECT_INVALID_PARAM)
			r->dw0 = IPO_DATA(subnqn);
		return;
	}
	if (cmd->recfmt != 0) {
		r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_INCOMPATIBLE_FORMAT);
		return;
	}
	disc = !strcmp(d.subnqn, PNVME_DISCOVERY_NQN);
	if (!disc && strcmp(d.subnqn, p->subnqn)) {
		r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM);
		r->dw0 = IPO_DATA(subnqn);
		return;
	}
	if (!disc && p->hostnqn[0] && strcmp(d.hostnqn, p->hostnqn)) {
		r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_HOST);
		return;
	}
	if (cmd->sqsize == 0 || cmd->sqsize >= p->queue_size) {
		r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM);
		r->dw0 = IPO_SQE(sqsize);
		return;
	}

	peer_lock(p);
	if (cmd->qid == 0) {
		/* Admin queue: a new controller, dynamic model only (Base 2.0 §3.3.2.1). */
		if (d.cntlid != PNVME_CONNECT_CNTLID_DYNAMIC) {
			r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM);
			r->dw0 = IPO_DATA(cntlid);
			goto out;
		}
		for (unsigned i = 0; i < PEER_MAX_CTRLS && !ctrl; i++)
			if (!p->ctrls[i].live)
				ctrl = &p->ctrls[i];
		if (!ctrl) {
			r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_CTRL_BUSY);
			goto out;
		}
		memset(ctrl, 0, sizeof(*ctrl));
		ctrl->live = true;
		ctrl->disc = disc;
		ctrl->cntlid = p->next_cntlid;
		p->next_cntlid = (uint16_t)(p->next_cntlid >= 0xffef ? p->cfg.cntlid_start
							      : p->next_cntlid + 1);
		ctrl->kato = cmd->kato;
		ctrl->ka_deadline = now_ms() + cmd->kato;
		ctrl->nr_io = disc ? 0 : p->max_queues;
		snprintf(ctrl->hostnqn, sizeof(ctrl->hostnqn), "%s", d.hostnqn);
	} else {
		ctrl = ctrl_find(p, d.cntlid);
		if (!ctrl || ctrl->disc != disc || strcmp(ctrl->hostnqn, d.hostnqn)) {
			r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM);
			r->dw0 = IPO_DATA(cntlid);
			ctrl = NULL;
			goto out;
		}
		if (cmd->qid > ctrl->nr_io) {
			r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM);
			r->dw0 = IPO_SQE(qid);
			ctrl = NULL;
			goto out;
		}
		if (ctrl->qconn[cmd->qid / 8] & (1u << (cmd->qid % 8))) {
			/* As nvmet: the queue exists already. */
			r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_CONNECT_CTRL_BUSY);
			ctrl = NULL;
			goto out;
		}
		ctrl->qconn[cmd->qid / 8] |= (uint8_t)(1u << (cmd->qid % 8));
	}
	c->qid = cmd->qid;
	c->cntlid = ctrl->cntlid;
	c->sqsize = cmd->sqsize;
	c->sqflow_off = cmd->cattr & PEER_CONNECT_CATTR_NO_SQFLOW;
	r->dw0 = ctrl->cntlid;
	p->st.connects_ok++;
out:
	peer_unlock(p);
}

/* Property Get / Set (Base 2.0 §6.5, §6.6) of CAP, VS, CC, CSTS. */
static void exec_property(struct conn *c, const struct pnvme_sqe *sqe, struct result *r)
{
	struct tcp_peer *p = c->peer;
	const struct pnvme_fabrics_prop_get *g = (const void *)sqe;
	const struct pnvme_fabrics_prop_set *s = (const void *)sqe;
	bool set = g->fctype == PNVME_FCTYPE_PROPERTY_SET;
	unsigned size = (g->attrib & 7u) == PNVME_PROP_SIZE_8 ? 8 : 4;
	struct ctrl *ctrl;
	uint64_t v = 0;

	if (c->qid != 0) {
		r->status = GEN(PNVME_SC_INVALID_OPCODE);
		return;
	}
	peer_lock(p);
	ctrl = ctrl_find(p, c->cntlid);
	if (!ctrl) {
		r->status = GEN(PNVME_SC_CMD_SEQ_ERROR);
	} else if (set) {
		if (s->ofst == PNVME_REG_CC && size == 4)
			ctrl_write_cc(p, ctrl, (uint32_t)s->value);
		else
			r->status = GEN(PNVME_SC_INVALID_FIELD);
	} else {
		switch (g->ofst) {
		case PNVME_REG_CAP:  v = cap_value(p); break;
		case PNVME_REG_VS:   v = PNVME_VS(2, 0, 0); break;
		case PNVME_REG_CC:   v = ctrl->cc; break;
		case PNVME_REG_CSTS: v = ctrl->csts; break;
		default:             r->status = GEN(PNVME_SC_INVALID_FIELD); break;
		}
		if (size == 8 && g->ofst != PNVME_REG_CAP)
			r->status = GEN(PNVME_SC_INVALID_FIELD);
		r->dw0 = (uint32_t)v;
		r->dw1 = size == 8 ? (uint32_t)(v >> 32) : 0;
	}
	peer_unlock(p);
}

static void identify_ctrl(struct tcp_peer *p, const struct ctrl *ctrl, uint8_t *buf)
{
	struct pnvme_id_ctrl *id = (void *)buf;
	char sn[24];

	snprintf(sn, sizeof(sn), "peer-%u", ctrl->cntlid);
	set_str(id->sn, sizeof(id->sn), sn);
	set_str(id->mn, sizeof(id->mn), "pnvme tcp_peer");
	set_str(id->fr, sizeof(id->fr), "1.0");
	id->mdts = p->cfg.mdts;
	id->cntlid = ctrl->cntlid;
	id->ver = PNVME_VS(2, 0, 0);
	id->cntrltype = ctrl->disc ? 2 : 1;      /* 1: I/O controller, 2: discovery */
	id->acl = 3;
	id->aerl = 3;
	id->lpa = 1u << 2;                       /* extended data for Get Log Page */
	id->kas = 10;                            /* 100 ms units: 1 s granularity */
	id->sqes = 0x66;
	id->cqes = 0x44;
	id->maxcmd = p->queue_size;
	id->nn = ctrl->disc ? 0 : 1;
	id->oncs = PNVME_ONCS_WRITE_ZEROES;
	id->vwc = 1;
	id->sgls = PEER_SGLS;
	snprintf(id->subnqn, sizeof(id->subnqn), "%s",
		 ctrl->disc ? PNVME_DISCOVERY_NQN : p->subnqn);
	/* Fabrics fields: capsule sizes in 16-byte units, data at capsule offset 0. */
	put32(buf, ID_IOCCSZ, p->ioccsz / 16u);
	put32(buf, ID_IORCSZ, 1);
	buf[ID_ICDOFF] = 0;
	buf[ID_ICDOFF + 1] = 0;
	buf[ID_FCATT] = 0;                       /* dynamic controller model */
	buf[ID_MSDBD] = 1;
}

/* Identify (Base 2.0 §5.17) */
static void exec_identify(struct conn *c, const struct ctrl *ctrl, const struct pnvme_sqe *sqe,
			  uint8_t *buf, uint32_t len, struct result *r)
{
	struct tcp_peer *p = c->peer;
	uint8_t cns = (uint8_t)(sqe->cdw10 & 0xffu);

	if (len < PNVME_IDENTIFY_DATA_SIZE) {
		r->status = GEN(PNVME_SC_SGL_INVALID_DATA);
		return;
	}
	r->xfer = PNVME_IDENTIFY_DATA_SIZE;
	switch (cns) {
	case PNVME_ID_CNS_CTRL:
		identify_ctrl(p, ctrl, buf);
		break;
	case PNVME_ID_CNS_NS: {
		struct pnvme_id_ns *ns = (void *)buf;
		unsigned lbads = p->lba_size == 4096 ? 12 : 9;

		if (ctrl->disc || sqe->nsid != 1) {
			r->status = GEN(PNVME_SC_INVALID_NS);
			r->xfer = 0;
			break;
		}
		ns->nsze = ns->ncap = ns->nuse = p->cfg.nblocks;
		ns->lbaf[0] = PNVME_SET(PNVME_LBAF_LBADS, lbads);
		break;
	}
	case PNVME_ID_CNS_NS_ACTIVE:
		if (!ctrl->disc && sqe->nsid < 1)
			put32(buf, 0, 1);
		break;
	case PNVME_ID_CNS_NS_DESC_LIST:
		if (ctrl->disc || sqe->nsid != 1) {
			r->status = GEN(PNVME_SC_INVALID_NS);
			r->xfer = 0;
			break;
		}
		/* NGUID descriptor (NIDT 2, NIDL 16), then CSI (NIDT 4, NIDL 1): NVM. */
		buf[0] = 2;
		buf[1] = 16;
		memcpy(buf + 4, "pnvme-tcp-peer-1", 16);
		buf[20] = 4;
		buf[21] = 1;
		buf[24] = 0;
		break;
	default:
		r->status = GEN(PNVME_SC_INVALID_FIELD);
		r->xfer = 0;
		break;
	}
}

/* Get Log Page (Base 2.0 §5.16); the Discovery Log Page on a discovery controller. */
static void exec_get_log(struct conn *c, const struct ctrl *ctrl, const struct pnvme_sqe *sqe,
			 uint8_t *buf, uint32_t len, struct result *r)
{
	struct tcp_peer *p = c->peer;
	uint8_t lid = (uint8_t)PNVME_GET(sqe->cdw10, PNVME_GLP_LID);
	uint64_t numd = ((uint64_t)PNVME_GET(sqe->cdw11, PNVME_GLP_NUMDU) << 16 |
			 PNVME_GET(sqe->cdw10, PNVME_GLP_NUMDL)) + 1;
	uint64_t lpo = sqe->cdw12 | (uint64_t)sqe->cdw13 << 32;
	uint64_t want = numd * 4;
	uint8_t *page;
	size_t plen;

	if (want > len) {
		r->status = GEN(PNVME_SC_SGL_INVALID_DATA);
		return;
	}
	if (ctrl->disc && lid == TCP_PEER_LOG_DISCOVERY) {
		/* Header (1024 bytes: GENCTR, NUMREC, RECFMT) then 1024-byte entries. */
		plen = 1024u * (1u + p->cfg.n_disc);
		page = calloc(1, plen);
		if (!page) {
			r->status = GEN(PNVME_SC_INTERNAL);
			return;
		}
		memcpy(page, &p->cfg.genctr, 8);
		memcpy(page + 8, &(uint64_t){ p->cfg.n_disc }, 8);
		for (unsigned i = 0; i < p->cfg.n_disc; i++) {
			uint8_t *e = page + 1024u * (i + 1);
			const struct disc_entry *de = &p->disc[i];

			e[0] = de->e.trtype;
			e[1] = de->e.adrfam;
			e[2] = de->e.subtype;
			e[3] = de->e.treq;
			memcpy(e + 4, &de->e.portid, 2);
			memcpy(e + 6, &de->e.cntlid, 2);
			memcpy(e + 8, &de->e.asqsz, 2);
			memcpy(e + 32, de->trsvcid, strlen(de->trsvcid));
			memcpy(e + 256, de->subnqn, strlen(de->subnqn));
			memcpy(e + 512, de->traddr, strlen(de->traddr));
		}
	} else if (!ctrl->disc && (lid == PNVME_LOG_ERROR || lid == PNVME_LOG_SMART ||
				   lid == PNVME_LOG_FW_SLOT || lid == PNVME_LOG_CMD_EFFECTS)) {
		plen = 4096;
		page = calloc(1, plen);
		if (!page) {
			r->status = GEN(PNVME_SC_INTERNAL);
			return;
		}
	} else {
		r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_LOG_PAGE_INVALID);
		return;
	}
	if (lpo < plen)
		memcpy(buf, page + lpo, plen - lpo < want ? plen - lpo : want);
	free(page);
	r->xfer = (uint32_t)want;
}

/* Set / Get Features (Base 2.0 §5.27, §5.15): Number of Queues, KATO, volatile WC. */
static void exec_features(struct conn *c, struct ctrl *ctrl, const struct pnvme_sqe *sqe,
			  struct result *r)
{
	struct tcp_peer *p = c->peer;
	bool set = sqe->opc == PNVME_ADM_SET_FEATURES;
	uint8_t fid = (uint8_t)PNVME_GET(sqe->cdw10, PNVME_FEAT_FID);

	switch (fid) {
	case PNVME_FEAT_NUM_QUEUES:
		if (ctrl->disc) {
			r->status = GEN(PNVME_SC_INVALID_FIELD);
			break;
		}
		if (set) {
			uint32_t nsq = PNVME_GET(sqe->cdw11, PNVME_NUMQ_NSQ);
			uint32_t ncq = PNVME_GET(sqe->cdw11, PNVME_NUMQ_NCQ);
			uint32_t n = (nsq < ncq ? nsq : ncq) + 1u;

			if (nsq == 0xffff || ncq == 0xffff) {
				r->status = GEN(PNVME_SC_INVALID_FIELD);
				break;
			}
			ctrl->nr_io = (uint16_t)(n < p->max_queues ? n : p->max_queues);
		}
		/* Granted counts, 0's based; Set reports the controller's maximum (as nvmet). */
		r->dw0 = (uint32_t)(p->max_queues - 1u) * 0x10001u;
		break;
	case PNVME_FEAT_KATO:
		if (set) {
			ctrl->kato = sqe->cdw11;
			ctrl->ka_deadline = now_ms() + ctrl->kato;
		}
		r->dw0 = ctrl->kato;
		break;
	case PNVME_FEAT_VOLATILE_WC:
		if (set)
			r->status = SC_DNR(PNVME_SCT_CMD, PNVME_SC_FEATURE_NOT_CHANGEABLE);
		r->dw0 = 1;
		break;
	case PNVME_FEAT_ASYNC_EVENT:
		break;
	default:
		r->status = GEN(PNVME_SC_INVALID_FIELD);
		break;
	}
}

/* Admin commands other than fabrics ones (Base 2.0 §5). */
static void exec_admin(struct conn *c, const struct pnvme_sqe *sqe, uint8_t *buf, uint32_t len,
		       struct result *r)
{
	struct tcp_peer *p = c->peer;
	struct ctrl *ctrl;

	peer_lock(p);
	p->st.admin_cmds[sqe->opc]++;
	ctrl = ctrl_find(p, c->cntlid);
	if (!ctrl || !PNVME_GET(ctrl->cc, PNVME_CC_EN) || !PNVME_GET(ctrl->csts, PNVME_CSTS_RDY)) {
		/* As nvmet_check_ctrl_status(): admin commands need CC.EN and CSTS.RDY. */
		r->status = GEN(PNVME_SC_CMD_SEQ_ERROR);
		goto out;
	}
	switch (sqe->opc) {
	case PNVME_ADM_IDENTIFY:
		exec_identify(c, ctrl, sqe, buf, len, r);
		break;
	case PNVME_ADM_GET_LOG_PAGE:
		exec_get_log(c, ctrl, sqe, buf, len, r);
		break;
	case PNVME_ADM_SET_FEATURES:
	case PNVME_ADM_GET_FEATURES:
		exec_features(c, ctrl, sqe, r);
		break;
	case PNVME_ADM_KEEP_ALIVE:
		/* Base 2.0 §5.25, §3.9: restart the Keep Alive timer. */
		p->st.keep_alives++;
		ctrl->ka_deadline = now_ms() + ctrl->kato;
		break;
	case PNVME_ADM_ABORT:
		/* Base 2.0 §5.1: DW0 bit 0 set: the command was not aborted. */
		r->dw0 = PNVME_ABORT_NOT_ABORTED;
		break;
	case PNVME_ADM_ASYNC_EVENT:
		/* Held until the controller goes away: no events happen here. */
		r->no_resp = true;
		break;
	default:
		r->status = GEN(PNVME_SC_INVALID_OPCODE);
		break;
	}
out:
	peer_unlock(p);
}

/* NVM command set I/O (NVM 1.0 §3.2): Read, Write, Flush, Write Zeroes on NSID 1. */
static void exec_io(struct conn *c, const struct pnvme_sqe *sqe, uint8_t *buf, uint32_t len,
		    struct result *r)
{
	struct tcp_peer *p = c->peer;
	uint64_t slba = sqe->cdw10 | (uint64_t)sqe->cdw11 << 32;
	uint64_t nlb = PNVME_GET(sqe->cdw12, PNVME_RW_NLB) + 1u;
	uint64_t off = slba * p->lba_size, bytes = nlb * p->lba_size;
	struct ctrl *ctrl;

	peer_lock(p);
	p->st.io_cmds[sqe->opc]++;
	p->st.io_per_qid[c->qid > (int)TCP_PEER_MAX_QID ? TCP_PEER_MAX_QID : (unsigned)c->qid]++;
	ctrl = ctrl_find(p, c->cntlid);
	if (!ctrl || !PNVME_GET(ctrl->csts, PNVME_CSTS_RDY)) {
		r->status = GEN(PNVME_SC_CMD_SEQ_ERROR);
		goto out;
	}
	if (sqe->opc != PNVME_NVM_FLUSH || sqe->nsid != 0xffffffffu) {
		if (sqe->nsid != 1) {
			r->status = GEN(PNVME_SC_INVALID_NS);
			goto out;
		}
	}
	switch (sqe->opc) {
	case PNVME_NVM_FLUSH:
		break;
	case PNVME_NVM_READ:
	case PNVME_NVM_WRITE:
	case PNVME_NVM_WRITE_ZEROES:
		if (slba >= p->cfg.nblocks || nlb > p->cfg.nblocks - slba) {
			r->status = GEN(PNVME_SC_LBA_RANGE);
			break;
		}
		if (sqe->opc == PNVME_NVM_WRITE_ZEROES) {
			memset(p->ns + off, 0, bytes);
			p->st.blocks_written += nlb;
			break;
		}
		if (len != bytes) {
			/* The SGL must describe exactly the blocks (nvmet_check_transfer_len). */
			r->status = GEN(PNVME_SC_SGL_INVALID_DATA);
			break;
		}
		if (sqe->opc == PNVME_NVM_WRITE) {
			memcpy(p->ns + off, buf, bytes);
			p->st.blocks_written += nlb;
		} else {
			memcpy(buf, p->ns + off, bytes);
			p->st.blocks_read += nlb;
			r->xfer = (uint32_t)bytes;
		}
		break;
	default:
		r->status = GEN(PNVME_SC_INVALID_OPCODE);
		break;
	}
out:
	peer_unlock(p);
}

/* Data direction of a command: Base 2.0 §5 opcode bits 1:0 (fabrics: FCTYPE bits 1:0). */
static unsigned cmd_dir(const struct pnvme_sqe *sqe)
{
	const struct pnvme_fabrics_connect *f = (const void *)sqe;

	return (sqe->opc == PNVME_OPC_FABRICS ? f->fctype : sqe->opc) & 3u;
}
#define DIR_H2C 1u
#define DIR_C2H 2u

/* Execute a command whose host data (if any) is at buf, then answer it. */
static int cmd_execute(struct conn *c, const struct pnvme_sqe *sqe, uint8_t *buf, uint32_t len,
		       uint16_t status)
{
	struct tcp_peer *p = c->peer;
	struct result r = { .status = status };
	uint32_t arg = 0;
	bool done = false;
	int ret;

	if (fault_take(c, TCP_PEER_FAULT_SWALLOW, NULL))
		return 0;
	if (fault_take(c, TCP_PEER_FAULT_TERM_REQ, &arg)) {
		struct pnvme_tcp_tx_pdu pdu;

		pnvme_tcp_build_term_req(&pdu, false, (uint16_t)(arg ? arg : 1), 0, sqe,
					 sizeof(*sqe));
		(void)send_pdu(c, &pdu);
		c->close_how = CLOSE_FIN;
		return -ECONNABORTED;
	}

	if (!r.status) {
		if (sqe->opc == PNVME_OPC_FABRICS) {
			const struct pnvme_fabrics_connect *f = (const void *)sqe;

			peer_lock(p);
			p->st.fabrics_cmds[f->fctype & 0xfu]++;
			peer_unlock(p);
			if (f->fctype == PNVME_FCTYPE_CONNECT)
				exec_connect(c, sqe, buf, len, &r);
			else if (c->qid < 0)
				r.status = GEN(PNVME_SC_INVALID_OPCODE);
			else if (f->fctype == PNVME_FCTYPE_PROPERTY_GET ||
				 f->fctype == PNVME_FCTYPE_PROPERTY_SET)
				exec_property(c, sqe, &r);
			else
				r.status = GEN(PNVME_SC_INVALID_OPCODE);
		} else if (c->qid < 0) {
			/* nvmet_parse_connect_cmd(): nothing but Connect before Connect. */
			r.status = GEN(PNVME_SC_INVALID_OPCODE);
		} else if (c->qid == 0) {
			exec_admin(c, sqe, buf, len, &r);
		} else {
			exec_io(c, sqe, buf, len, &r);
		}
	}
	if (r.no_resp)
		return 0;
	if (!r.status && r.xfer) {
		ret = send_c2h(c, sqe->cid, buf, r.xfer < len ? r.xfer : len, &done);
		if (ret || done)
			return ret;
	}
	return send_resp(c, sqe->cid, r.status, r.dw0, r.dw1);
}

/* Ask for the next window(s) of a command's data (TCP 1.0 §3.6.2.9), up to r2t_max outstanding. */
static int cmd_send_r2ts(struct conn *c, struct pcmd *pc)
{
	struct tcp_peer *p = c->peer;
	uint32_t win = p->r2t_len;

	while (pc->asked < pc->len && (pc->asked - pc->rcvd + win - 1) / win < c->r2t_max) {
		struct pnvme_tcp_tx_pdu pdu;
		uint32_t n = pc->len - pc->asked < win ? pc->len - pc->asked : win;
		int ret;

		pnvme_tcp_build_r2t(&pdu, &c->tp, pc->sqe.cid, (uint16_t)(pc - c->pend), pc->asked,
				    n);
		ret = send_pdu(c, &pdu);
		if (ret)
			return ret;
		pc->asked += n;
		peer_lock(p);
		p->st.r2ts++;
		peer_unlock(p);
	}
	return 0;
}

static void pcmd_free(struct pcmd *pc)
{
	free(pc->buf);
	memset(pc, 0, sizeof(*pc));
}

/*
 * A whole CapsuleCmd arrived (TCP 1.0 §3.6.2.5): check its SGL (Base 2.0
 * §4.1.2; fabrics use SGLs only), then run it with its in-capsule data, or
 * start R2Ts for data the host holds, or prepare a buffer for data to send.
 */
static int cmd_capsule(struct conn *c, const struct pnvme_sqe *sqe, uint32_t incap, int ddgst)
{
	struct tcp_peer *p = c->peer;
	const struct pnvme_sgl_desc *sgl = (const void *)&sqe->prp1;
	unsigned dir = cmd_dir(sqe);
	uint32_t len = sgl->length;
	uint8_t *buf = NULL;
	int ret;

	if (fault_close_after(c)) {
		c->close_how = CLOSE_RST;
		return -ECONNABORTED;
	}
	c->sqhd = (uint16_t)(c->sqsize ? (c->sqhd + 1u) % (c->sqsize + 1u) : 0);
	if (ddgst)
		return send_resp(c, sqe->cid, SC(PNVME_SCT_GENERIC, PNVME_SC_TRANSIENT_TR_ERR), 0, 0);
	if (PNVME_GET(sqe->flags, PNVME_SQE_PSDT) != PNVME_SQE_PSDT_SGL_MPTR_CONTIG)
		return send_resp(c, sqe->cid, GEN(PNVME_SC_INVALID_FIELD), 0, 0);
	if (!dir || dir == 3u || !len) {
		/* No data: nothing may come in the capsule. */
		if (incap)
			return send_resp(c, sqe->cid, GEN(PNVME_SC_SGL_INVALID_DATA), 0, 0);
		return cmd_execute(c, sqe, NULL, 0, 0);
	}
	if (len > p->max_xfer)
		return send_resp(c, sqe->cid, GEN(PNVME_SC_INVALID_FIELD), 0, 0);

	if (sgl->id == PNVME_SGL_ID_INCAPSULE) {
		/* In-capsule data (TCP 1.0 §3.3.2): writes only, within the capsule size. */
		uint32_t max = c->qid > 0 ? p->ioccsz - 64u : PEER_ADMIN_CCSZ;

		if (dir != DIR_H2C)
			return send_resp(c, sqe->cid, GEN(PNVME_SC_INVALID_FIELD), 0, 0);
		if (len > max || sgl->addr > max - len)
			return send_resp(c, sqe->cid, GEN(PNVME_SC_SGL_INVALID_OFFSET), 0, 0);
		if (sgl->addr + len != incap)
			return send_resp(c, sqe->cid, GEN(PNVME_SC_SGL_INVALID_DATA), 0, 0);
		return cmd_execute(c, sqe, c->incap + sgl->addr, len, 0);
	}
	if (sgl->id != PNVME_SGL_ID_TRANSPORT || sgl->addr != 0)
		return send_resp(c, sqe->cid, GEN(PNVME_SC_SGL_INVALID_TYPE), 0, 0);
	if (incap)
		return send_resp(c, sqe->cid, GEN(PNVME_SC_SGL_INVALID_DATA), 0, 0);

	if (dir == DIR_C2H) {
		buf = calloc(1, len);
		if (!buf)
			return send_resp(c, sqe->cid, GEN(PNVME_SC_INTERNAL), 0, 0);
		ret = cmd_execute(c, sqe, buf, len, 0);
		free(buf);
		return ret;
	}

	/* Host to controller via R2T: a slot, its TTAG the slot index. */
	for (unsigned i = 0; i < c->npend; i++) {
		struct pcmd *pc = &c->pend[i];

		if (pc->busy)
			continue;
		if (fault_take(c, TCP_PEER_FAULT_SWALLOW, NULL))
			return 0;
		pc->buf = malloc(len);
		if (!pc->buf)
			return send_resp(c, sqe->cid, GEN(PNVME_SC_INTERNAL), 0, 0);
		pc->busy = true;
		pc->sqe = *sqe;
		pc->len = len;
		return cmd_send_r2ts(c, pc);
	}
	/* More writes waiting than the queue holds: the host broke SQSIZE. */
	return pnvme_tcp_rx_fail(&c->rx, PNVME_TCP_RX_LIMIT, 0);
}

/* ------------------------------------------------------------------------ */
/* Receive side: the PDU receiver's callbacks                               */
/* ------------------------------------------------------------------------ */

static int on_icreq(struct conn *c, struct pnvme_tcp_rx *rx, const struct pnvme_tcp_icreq *ic)
{
	struct tcp_peer *p = c->peer;

	/* TCP 1.0 §3.6.2.1-2: digests as asked where allowed; data to the host at HPDA. */
	c->hdgst = (ic->dgst & PNVME_TCP_DGST_HDGST) && !p->cfg.no_hdgst;
	c->ddgst = (ic->dgst & PNVME_TCP_DGST_DDGST) && !p->cfg.no_ddgst;
	c->r2t_max = ic->maxr2t + 1u < p->maxr2t ? ic->maxr2t + 1u : p->maxr2t;
	c->tp.pda = ic->hpda;
	pnvme_tcp_rx_set_digests(rx, c->hdgst, c->ddgst);
	return 0;
}

static int send_icresp(struct conn *c)
{
	struct tcp_peer *p = c->peer;
	struct pnvme_tcp_tx_pdu pdu;
	uint32_t arg = 0;
	int ret;

	pnvme_tcp_build_icresp(&pdu, 0,
			       (uint8_t)((c->hdgst ? PNVME_TCP_DGST_HDGST : 0) |
					 (c->ddgst ? PNVME_TCP_DGST_DDGST : 0)),
			       p->maxh2cdata);
	if (fault_take(c, TCP_PEER_FAULT_ICRESP_PFV, &arg))
		pdu.hdr.icresp.pfv = (uint16_t)(arg ? arg : 1);
	ret = send_pdu(c, &pdu);
	c->tp.hdgst = c->hdgst;
	c->tp.ddgst = c->ddgst;
	peer_lock(p);
	p->st.icreqs++;
	peer_unlock(p);
	return ret;
}

/* An H2CData header (TCP 1.0 §3.6.2.7): it must continue an R2T window of its command. */
static int on_h2c_hdr(struct conn *c, struct pnvme_tcp_rx *rx, struct pnvme_tcp_rx_pdu *pdu)
{
	const struct pnvme_tcp_h2c_data *h = &pdu->hdr->h2c;
	struct pcmd *pc = h->ttag < c->npend ? &c->pend[h->ttag] : NULL;
	uint32_t win = c->peer->r2t_len, wend;

	if (!pc || !pc->busy)
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FIELD,
					 offsetof(struct pnvme_tcp_h2c_data, ttag));
	if (h->cccid != pc->sqe.cid)
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FIELD,
					 offsetof(struct pnvme_tcp_h2c_data, cccid));
	/* In order, inside what was asked for, not across the end of an R2T window. */
	wend = (pc->rcvd / win + 1u) * win;
	if (wend > pc->asked)
		wend = pc->asked;
	if (h->datao != pc->rcvd || h->datal > wend - pc->rcvd)
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_OUT_OF_RANGE, 0);
	/* LAST_PDU exactly on the window's last PDU. */
	if (!!(pdu->flags & PNVME_TCP_F_LAST_PDU) != (h->datao + h->datal == wend))
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FLAGS,
					 offsetof(struct pnvme_tcp_ch, flags));
	pdu->dst = pc->buf + h->datao;
	pdu->dst_len = h->datal;
	return 0;
}

static int on_h2c_done(struct conn *c, const struct pnvme_tcp_rx_pdu *pdu, int ddgst)
{
	const struct pnvme_tcp_h2c_data *h = &pdu->hdr->h2c;
	struct pcmd *pc = &c->pend[h->ttag];
	struct pnvme_sqe sqe;
	int ret;

	peer_lock(c->peer);
	c->peer->st.h2c_pdus++;
	if (ddgst)
		c->peer->st.ddgst_errors++;
	peer_unlock(c->peer);
	if (ddgst)
		pc->ddgst_err = true;
	pc->rcvd += h->datal;
	if (pc->rcvd < pc->len)
		return cmd_send_r2ts(c, pc);
	sqe = pc->sqe;
	/* TCP 1.0 §3.6.2.8/9: a data digest error fails the command, not the connection. */
	ret = cmd_execute(c, &sqe, pc->buf, pc->len,
			  pc->ddgst_err ? SC(PNVME_SCT_GENERIC, PNVME_SC_TRANSIENT_TR_ERR) : 0);
	pcmd_free(pc);
	return ret;
}

static int on_pdu_hdr(void *arg, struct pnvme_tcp_rx *rx, struct pnvme_tcp_rx_pdu *pdu)
{
	struct conn *c = arg;

	switch (pdu->type) {
	case PNVME_TCP_ICREQ:
		return on_icreq(c, rx, &pdu->hdr->icreq);
	case PNVME_TCP_CAPSULE_CMD:
		if (pdu->data_len) {
			if (pdu->data_len > c->incap_cap)
				return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_PLEN_TOO_LARGE,
							 offsetof(struct pnvme_tcp_ch, plen));
			pdu->dst = c->incap;
			pdu->dst_len = c->incap_cap;
		}
		return 0;
	case PNVME_TCP_H2C_DATA:
		return on_h2c_hdr(c, rx, pdu);
	default:
		return 0; /* H2CTermReq: its data is dropped */
	}
}

static int on_pdu_done(void *arg, struct pnvme_tcp_rx *rx, const struct pnvme_tcp_rx_pdu *pdu,
		       int ddgst)
{
	struct conn *c = arg;
	struct tcp_peer *p = c->peer;

	(void)rx;
	switch (pdu->type) {
	case PNVME_TCP_ICREQ:
		return send_icresp(c);
	case PNVME_TCP_CAPSULE_CMD:
		if (ddgst) {
			peer_lock(p);
			p->st.ddgst_errors++;
			peer_unlock(p);
		}
		return cmd_capsule(c, &pdu->hdr->cmd.sqe, pdu->data_len, ddgst);
	case PNVME_TCP_H2C_DATA:
		return on_h2c_done(c, pdu, ddgst);
	case PNVME_TCP_H2C_TERM_REQ:
		peer_lock(p);
		p->st.host_term_reqs++;
		peer_unlock(p);
		c->close_how = CLOSE_FIN;
		return -ECONNABORTED;
	default:
		return 0;
	}
}

static const struct pnvme_tcp_rx_ops peer_rx_ops = {
	.pdu_hdr = on_pdu_hdr,
	.pdu_done = on_pdu_done,
};

/* ------------------------------------------------------------------------ */
/* Connection thread                                                         */
/* ------------------------------------------------------------------------ */

/* Poll timeout for the admin queue's KATO check, -1 when none applies. */
static int kato_timeout(struct conn *c, bool *expired)
{
	struct tcp_peer *p = c->peer;
	struct ctrl *ctrl;
	int t = -1;

	*expired = false;
	if (!p->cfg.kato_enforce || c->qid != 0)
		return -1;
	peer_lock(p);
	ctrl = ctrl_find(p, c->cntlid);
	if (ctrl && ctrl->kato) {
		uint64_t now = now_ms();

		if (now >= ctrl->ka_deadline) {
			*expired = true;
			p->st.kato_expired++;
		} else {
			t = (int)(ctrl->ka_deadline - now);
		}
	}
	peer_unlock(p);
	return t;
}

static void conn_serve(struct conn *c)
{
	struct tcp_peer *p = c->peer;
	uint8_t *buf = malloc(PEER_RECV_BUF);

	if (!buf)
		return;
	c->rxbuf = buf;
	for (;;) {
		bool expired;
		int t = kato_timeout(c, &expired), ret;
		ssize_t n;

		if (expired) {
			c->close_how = CLOSE_FIN;
			break;
		}
		ret = wait_fd(c, POLLIN, t);
		if (ret < 0)
			break;
		if (ret == 0)
			continue;
		n = recv(c->fd, buf, PEER_RECV_BUF, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n <= 0)
			break;
		ret = pnvme_tcp_rx_feed(&c->rx, buf, (size_t)n);
		if (ret) {
			struct pnvme_tcp_tx_pdu term;

			if (c->close_how || c->rx.error.reason == PNVME_TCP_RX_CALLBACK)
				break; /* we closed it, or a send failed */
			/* The host's bytes were refused: C2HTermReq, then close (TCP 1.0 §3.6.2.4). */
			peer_lock(p);
			p->st.rx_errors++;
			p->st.last_rx_reason = c->rx.error.reason;
			peer_unlock(p);
			if (!pnvme_tcp_rx_term_req(&c->rx, &term))
				(void)send_pdu(c, &term);
			c->close_how = CLOSE_FIN;
			break;
		}
	}
	c->rxbuf = NULL;
	free(buf);
}

/*
 * A graceful close: FIN, then drop what the host still sends for a short
 * while (until its FIN), so that unread bytes do not turn our close into
 * a RST that could overtake a C2HTermReq just sent.
 */
static void conn_drain(struct conn *c)
{
	uint64_t end = now_ms() + 200;
	uint8_t buf[4096];

	shutdown(c->fd, SHUT_WR);
	for (uint64_t now = now_ms(); now < end; now = now_ms()) {
		ssize_t n;

		if (wait_fd(c, POLLIN, (int)(end - now)) <= 0)
			break;
		n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK))
			break;
	}
}

static void conn_close(struct conn *c, int how)
{
	struct tcp_peer *p = c->peer;
	struct ctrl *ctrl;
	bool killed;

	pthread_mutex_lock(&p->lock);
	killed = c->killed;
	pthread_mutex_unlock(&p->lock);
	if (how != CLOSE_RST && !killed)
		conn_drain(c);
	peer_lock(p);
	ctrl = ctrl_find(p, c->cntlid);
	if (ctrl) {
		if (c->qid == 0)
			ctrl_destroy(p, ctrl, c);
		else if (c->qid > 0)
			ctrl->qconn[c->qid / 8] &= (uint8_t)~(1u << (c->qid % 8));
	}
	if (how == CLOSE_RST || c->killed)
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &(struct linger){ 1, 0 },
			   sizeof(struct linger));
	close(c->fd);
	c->fd = -1;
	c->done = true;
	p->st.conns_open--;
	peer_unlock(p);
}

static void *conn_thread(void *arg)
{
	struct conn *c = arg;
	struct tcp_peer *p = c->peer;
	struct pnvme_tcp_rx_cfg rc = {
		.host = false, .pda = 0,
		.maxpl = PNVME_TCP_HDR_BUF + PNVME_TCP_DIGEST_LEN +
			 (c->incap_cap > p->maxh2cdata ? c->incap_cap : p->maxh2cdata),
		.maxh2cdata = p->maxh2cdata, .ops = &peer_rx_ops, .arg = c,
	};

	if (!pnvme_tcp_rx_init(&c->rx, &rc))
		conn_serve(c);
	for (unsigned i = 0; i < c->npend; i++)
		if (c->pend[i].busy)
			pcmd_free(&c->pend[i]);
	conn_close(c, c->close_how);
	return NULL;
}

static void conn_free(struct conn *c)
{
	free(c->incap);
	free(c->pend);
	free(c);
}

/* Join and free finished connections (peer lock held; `all`: wait for every one). */
static void reap_conns(struct tcp_peer *p, bool all)
{
	struct conn **pp = &p->conns;

	while (*pp) {
		struct conn *c = *pp;

		if (!c->done && !all) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		pthread_mutex_unlock(&p->lock);
		pthread_join(c->thread, NULL);
		pthread_mutex_lock(&p->lock);
		conn_free(c);
	}
}

static void accept_one(struct tcp_peer *p, int fd)
{
	struct conn *c;
	int one = 1;

	peer_lock(p);
	p->st.conns_accepted++;
	peer_unlock(p);
	c = calloc(1, sizeof(*c));
	if (c) {
		c->peer = p;
		c->fd = fd;
		c->qid = -1;
		c->cntlid = -1;
		if (fault_take(c, TCP_PEER_FAULT_REFUSE_ACCEPT, NULL)) {
			free(c);
			c = NULL;
		}
	}
	if (c) {
		c->incap_cap = p->ioccsz - 64u > PEER_ADMIN_CCSZ ? p->ioccsz - 64u : PEER_ADMIN_CCSZ;
		c->incap = malloc(c->incap_cap);
		c->npend = p->queue_size;
		c->pend = calloc(c->npend, sizeof(*c->pend));
		c->r2t_max = 1;
	}
	if (!c || !c->incap || !c->pend) {
		if (c)
			conn_free(c);
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &(struct linger){ 1, 0 },
			   sizeof(struct linger));
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	peer_lock(p);
	c->next = p->conns;
	p->conns = c;
	p->st.conns_open++;
	if (pthread_create(&c->thread, NULL, conn_thread, c)) {
		p->conns = c->next;
		p->st.conns_open--;
		close(fd);
		conn_free(c);
	}
	peer_unlock(p);
}

static void *accept_thread(void *arg)
{
	struct tcp_peer *p = arg;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = p->lfd, .events = POLLIN },
			{ .fd = p->wake[0], .events = POLLIN },
		};
		int fd;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		if (!pfd[0].revents)
			continue;
		fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		peer_lock(p);
		reap_conns(p, false);
		peer_unlock(p);
		accept_one(p, fd);
	}
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* The peer                                                                  */
/* ------------------------------------------------------------------------ */

static int peer_config(struct tcp_peer *p, const struct tcp_peer_cfg *in)
{
	struct tcp_peer_cfg *cfg = &p->cfg;

	if (in)
		*cfg = *in;
	snprintf(p->subnqn, sizeof(p->subnqn), "%s",
		 cfg->subnqn ? cfg->subnqn : TCP_PEER_DEFAULT_SUBNQN);
	if (cfg->hostnqn)
		snprintf(p->hostnqn, sizeof(p->hostnqn), "%s", cfg->hostnqn);
	cfg->subnqn = p->subnqn;
	cfg->hostnqn = cfg->hostnqn ? p->hostnqn : NULL;
	if (!cfg->nblocks)
		cfg->nblocks = 2048;
	p->lba_size = cfg->lba_size ? cfg->lba_size : 512;
	if (p->lba_size != 512 && p->lba_size != 4096)
		return -EINVAL;
	cfg->lba_size = p->lba_size;
	p->maxh2cdata = cfg->maxh2cdata ? cfg->maxh2cdata : 65536;
	if (p->maxh2cdata < PNVME_TCP_MAXH2CDATA_MIN || p->maxh2cdata % 4)
		return -EINVAL;
	p->r2t_len = cfg->r2t_len ? cfg->r2t_len : p->maxh2cdata;
	p->ioccsz = cfg->ioccsz ? cfg->ioccsz : 8192 + 64;
	if (p->ioccsz < 64 || p->ioccsz % 16)
		return -EINVAL;
	p->maxr2t = cfg->maxr2t ? cfg->maxr2t : 4;
	p->c2h_max = cfg->c2h_max ? cfg->c2h_max : 16384;
	if (!cfg->mdts)
		cfg->mdts = 6;
	p->max_xfer = cfg->mdts >= 12 ? (8u << 20) : 4096u << cfg->mdts;
	p->max_queues = cfg->max_queues ? cfg->max_queues : 4;
	if (p->max_queues > PEER_MAX_IOQ)
		p->max_queues = PEER_MAX_IOQ;
	p->queue_size = cfg->queue_size ? cfg->queue_size : 128;
	if (p->queue_size < 2)
		return -EINVAL;
	if (!cfg->cntlid_start)
		cfg->cntlid_start = 1;
	p->next_cntlid = cfg->cntlid_start;
	if (cfg->n_disc) {
		p->disc = calloc(cfg->n_disc, sizeof(*p->disc));
		if (!p->disc)
			return -ENOMEM;
		for (unsigned i = 0; i < cfg->n_disc; i++) {
			struct disc_entry *d = &p->disc[i];

			d->e = cfg->disc[i];
			snprintf(d->trsvcid, sizeof(d->trsvcid), "%s",
				 d->e.trsvcid ? d->e.trsvcid : "");
			snprintf(d->traddr, sizeof(d->traddr), "%s", d->e.traddr ? d->e.traddr : "");
			snprintf(d->subnqn, sizeof(d->subnqn), "%s", d->e.subnqn ? d->e.subnqn : "");
		}
	}
	cfg->disc = NULL;
	if (cfg->nblocks > ((uint64_t)1 << 32) / p->lba_size)
		return -EINVAL; /* at most 4 GiB of RAM */
	p->ns_len = (size_t)(cfg->nblocks * p->lba_size);
	p->ns = calloc(1, p->ns_len);
	return p->ns ? 0 : -ENOMEM;
}

static int peer_listen(struct tcp_peer *p)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int one = 1;

	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->lfd < 0)
		return -errno;
	setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(p->lfd, 64) ||
	    getsockname(p->lfd, (struct sockaddr *)&sa, &sl))
		return -errno;
	p->port = ntohs(sa.sin_port);
	return 0;
}

static void peer_free(struct tcp_peer *p)
{
	if (p->lfd >= 0)
		close(p->lfd);
	if (p->wake[0] >= 0) {
		close(p->wake[0]);
		close(p->wake[1]);
	}
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->disc);
	free(p->ns);
	free(p);
}

struct tcp_peer *tcp_peer_start(const struct tcp_peer_cfg *cfg)
{
	struct tcp_peer *p = calloc(1, sizeof(*p));
	int ret;

	if (!p) {
		errno = ENOMEM;
		return NULL;
	}
	p->lfd = -1;
	p->wake[0] = p->wake[1] = -1;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	ret = peer_config(p, cfg);
	if (!ret && pipe2(p->wake, O_CLOEXEC))
		ret = -errno;
	if (!ret)
		ret = peer_listen(p);
	if (!ret && pthread_create(&p->acceptor, NULL, accept_thread, p))
		ret = -EAGAIN;
	if (ret) {
		peer_free(p);
		errno = -ret;
		return NULL;
	}
	return p;
}

void tcp_peer_stop(struct tcp_peer *peer)
{
	if (!peer)
		return;
	/* The pipe stays readable: every poll() of every thread sees it. */
	(void)!write(peer->wake[1], "x", 1);
	pthread_join(peer->acceptor, NULL);
	pthread_mutex_lock(&peer->lock);
	reap_conns(peer, true);
	pthread_mutex_unlock(&peer->lock);
	peer_free(peer);
}

uint16_t tcp_peer_port(const struct tcp_peer *peer)
{
	return peer->port;
}

const char *tcp_peer_subnqn(const struct tcp_peer *peer)
{
	return peer->subnqn;
}

void tcp_peer_get_stats(struct tcp_peer *peer, struct tcp_peer_stats *st)
{
	pthread_mutex_lock(&peer->lock);
	*st = peer->st;
	pthread_mutex_unlock(&peer->lock);
}

void tcp_peer_reset_stats(struct tcp_peer *peer)
{
	unsigned open;
	uint32_t cc;

	peer_lock(peer);
	open = peer->st.conns_open;
	cc = peer->st.last_cc;
	memset(&peer->st, 0, sizeof(peer->st));
	peer->st.conns_open = open;
	peer->st.last_cc = cc;
	peer_unlock(peer);
}

int tcp_peer_wait(struct tcp_peer *peer, bool (*pred)(const struct tcp_peer_stats *st, void *arg),
		  void *arg, unsigned timeout_ms)
{
	struct timespec end;
	int ret = 0;

	clock_gettime(CLOCK_REALTIME, &end);
	end.tv_sec += timeout_ms / 1000u;
	end.tv_nsec += (long)(timeout_ms % 1000u) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&peer->lock);
	while (!pred(&peer->st, arg)) {
		if (pthread_cond_timedwait(&peer->cond, &peer->lock, &end) == ETIMEDOUT) {
			ret = pred(&peer->st, arg) ? 0 : -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&peer->lock);
	return ret;
}

uint8_t *tcp_peer_ns(struct tcp_peer *peer, size_t *len)
{
	if (len)
		*len = peer->ns_len;
	return peer->ns;
}

unsigned tcp_peer_kill_connections(struct tcp_peer *peer)
{
	unsigned n = 0;

	peer_lock(peer);
	for (struct conn *c = peer->conns; c; c = c->next) {
		if (c->done || c->fd < 0)
			continue;
		/* SHUT_RD wakes the owner's poll() and sends nothing; its close() sends a RST. */
		c->killed = true;
		shutdown(c->fd, SHUT_RD);
		n++;
	}
	peer_unlock(peer);
	return n;
}
