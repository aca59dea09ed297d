/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tcp_peer.c - the fake NVMe/TCP target of tcp_peer.h.
 *
 * Here: the peer (listener, accept thread, counters), the faults, each
 * connection (its thread: poll, recv, the PDU receiver's callbacks) and
 * the send side (with the PDU-spoiling faults). The controllers and the
 * commands are in tcp_peer_cmd.c; tcp_peer_priv.h has what both share.
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
#include "tcp_peer_priv.h"

/* ------------------------------------------------------------------------ */
/* Faults                                                                    */
/* ------------------------------------------------------------------------ */

static bool fault_match(const struct fault *f, const struct conn *c)
{
	return f->times != 0 && (f->qid == TCP_PEER_ANY_QID || f->qid == c->qid);
}

/* Take one firing of `kind` if it is armed for this connection's queue. */
bool tp_fault_take(struct conn *c, enum tcp_peer_fault kind, uint32_t *arg)
{
	return tp_fault_take_qid(c->peer, kind, c->qid, arg);
}

/* Take one firing of `kind` if it is armed for queue `qid`. */
bool tp_fault_take_qid(struct tcp_peer *p, enum tcp_peer_fault kind, int qid, uint32_t *arg)
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

/* As tp_fault_take() for the PDU-spoiling faults: `arg` is a mask of PDU types (0: any). */
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
bool tp_fault_close_after(struct conn *c)
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
int tp_send_pdu(struct conn *c, struct pnvme_tcp_tx_pdu *pdu)
{
	struct pnvme_tcp_ch *ch = &pdu->hdr.ch;
	uint8_t type = ch->pdu_type, hlen = ch->hlen;
	bool data = pdu->data_len && type != PNVME_TCP_C2H_TERM_REQ;
	struct iovec iov[3];
	uint32_t arg = 0;
	int n;

	if (tp_fault_take(c, TCP_PEER_FAULT_BAD_PDU_TYPE, &arg))
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
	return tp_send_pdu(c, &pdu);
}

/* Answer command `cid` with `status` (PNVME_STATUS form, no phase bit). */
int tp_send_resp(struct conn *c, uint16_t cid, uint16_t status, uint32_t dw0, uint32_t dw1)
{
	struct pnvme_cqe cqe = {
		.dw0 = dw0, .dw1 = dw1, .sqhd = c->sqhd,
		.sqid = (uint16_t)(c->qid < 0 ? 0 : c->qid), .cid = cid,
		.status = (uint16_t)(status << 1),
	};
	uint32_t unk = 0, wrong = 0;
	/* Every fault decided before the first byte leaves (a test may re-arm on receipt). */
	bool bogus = tp_fault_take(c, TCP_PEER_FAULT_UNKNOWN_CCCID, &unk);
	bool dup = tp_fault_take(c, TCP_PEER_FAULT_DUP_RESP, NULL);
	int ret = 0;

	if (tp_fault_take(c, TCP_PEER_FAULT_WRONG_CCCID, &wrong))
		cqe.cid = (uint16_t)(cid ^ (wrong ? wrong : 0x8000u));
	if (bogus) {
		struct pnvme_cqe b = cqe;

		b.cid = (uint16_t)(cid ^ (unk ? unk : 0x8000u));
		ret = send_cqe(c, &b);
	}
	if (!ret)
		ret = send_cqe(c, &cqe);
	if (!ret && dup)
		ret = send_cqe(c, &cqe);
	return ret;
}

/*
 * Send `len` bytes of command `cid` as C2HData PDUs of at most c2h_max
 * bytes (TCP 1.0 §3.6.2.8). Sets *done when the last one carried SUCCESS
 * (no CapsuleResp then).
 */
int tp_send_c2h(struct conn *c, uint16_t cid, const uint8_t *buf, uint32_t len, bool *done)
{
	struct tcp_peer *p = c->peer;
	struct pnvme_tcp_tx_pdu pdu;
	bool success = p->cfg.c2h_success && c->sqflow_off;
	bool r2t = tp_fault_take(c, TCP_PEER_FAULT_R2T_FOR_READ, NULL);
	bool oor = tp_fault_take(c, TCP_PEER_FAULT_C2H_OUT_OF_RANGE, NULL);
	uint32_t off = 0;
	int ret;

	*done = false;
	if (r2t) {
		pnvme_tcp_build_r2t(&pdu, &c->tp, cid, 0, 0, len);
		ret = tp_send_pdu(c, &pdu);
		if (ret)
			return ret;
	}
	if (oor) {
		uint32_t n = len < 512 ? len : 512;

		ret = pnvme_tcp_build_c2h_data(&pdu, &c->tp, cid, len, buf, n, false, false);
		if (!ret)
			ret = tp_send_pdu(c, &pdu);
		if (ret)
			return ret;
	}
	while (off < len) {
		uint32_t n = len - off < p->c2h_max ? len - off : p->c2h_max;
		bool last = off + n == len;

		ret = pnvme_tcp_build_c2h_data(&pdu, &c->tp, cid, off, buf + off, n, last,
					       last && success);
		if (!ret)
			ret = tp_send_pdu(c, &pdu);
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
/* Receive side: the PDU receiver's callbacks                               */
/* ------------------------------------------------------------------------ */

static int on_icreq(struct conn *c, struct pnvme_tcp_rx *rx, const struct pnvme_tcp_icreq *ic)
{
	struct tcp_peer *p = c->peer;

	/* TCP 1.0 §3.6.2.1-2: digests as asked where allowed; data to the host at HPDA. */
	c->hdgst = (ic->dgst & PNVME_TCP_DGST_HDGST) && !p->cfg.no_hdgst;
	c->ddgst = (ic->dgst & PNVME_TCP_DGST_DDGST) && !p->cfg.no_ddgst;
	c->r2t_max = (uint64_t)ic->maxr2t + 1u < p->maxr2t ? ic->maxr2t + 1u : p->maxr2t;
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
	if (tp_fault_take(c, TCP_PEER_FAULT_ICRESP_PFV, &arg))
		pdu.hdr.icresp.pfv = (uint16_t)(arg ? arg : 1);
	ret = tp_send_pdu(c, &pdu);
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
		return tp_cmd_send_r2ts(c, pc);
	sqe = pc->sqe;
	/* TCP 1.0 §3.6.2.8/9: a data digest error fails the command, not the connection. */
	ret = tp_cmd_execute(c, &sqe, pc->buf, pc->len,
			  pc->ddgst_err ? SC(PNVME_SCT_GENERIC, PNVME_SC_TRANSIENT_TR_ERR) : 0);
	tp_pcmd_free(pc);
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
		return tp_cmd_capsule(c, &pdu->hdr->cmd.sqe, pdu->data_len, ddgst);
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
	ctrl = tp_ctrl_find(p, c->cntlid);
	if (ctrl && ctrl->kato) {
		uint64_t now = now_ms();

		if (now >= ctrl->ka_deadline) {
			*expired = true;
			p->st.kato_expired++;
		} else {
			uint64_t left = ctrl->ka_deadline - now;

			t = left > 1000000u ? 1000000 : (int)left;
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
				(void)tp_send_pdu(c, &term);
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
	ctrl = tp_ctrl_find(p, c->cntlid);
	if (ctrl) {
		if (c->qid == 0)
			tp_ctrl_destroy(p, ctrl, c);
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
			tp_pcmd_free(&c->pend[i]);
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
		if (tp_fault_take(c, TCP_PEER_FAULT_REFUSE_ACCEPT, NULL)) {
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
