/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tgt_conn.c - one NVMe/TCP connection of the target: the IC exchange, the
 * PDU receiver's callbacks (TCP 1.0 §3.6), the send queue, R2T flow for data
 * the host holds, fatal errors answered with a C2HTermReq, and closing.
 *
 * Data path. A command capsule is parsed as soon as its header is in
 * (tgt_req_init), before its in-capsule data: the data then lands straight
 * in the buffer the command will use (a DMA buffer of the backend for NVM
 * commands). Data held by the host is asked for with one R2T covering the
 * command (the host splits it at MAXH2CDATA), and each H2CData PDU is
 * received into that buffer at its offset (pnvme_tcp_rx_direct: recv()
 * lands in the buffer). Read data leaves from the buffer the backend read
 * into, as one C2HData PDU, with SUCCESS where the host disabled SQ flow
 * control (then no response capsule follows).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"
#include "tgt/tgt_priv.h"

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */
/* ------------------------------------------------------------------------ */

static struct tgt_req *req_alloc(struct tgt_conn *c)
{
	struct tgt_req *req;

	if (!c->nr_free)
		return NULL;
	req = &c->reqs[c->free[--c->nr_free]];
	req->execute = NULL;
	req->ns = NULL;
	req->len = 0;
	req->dir = TGT_DIR_NONE;
	req->incap = false;
	req->ddgst_err = false;
	req->backend = false;
	req->dma = false;
	req->status = 0;
	req->dw0 = req->dw1 = 0;
	req->rcvd = 0;
	req->buf = NULL;
	req->wnext = NULL;
	req->state = REQ_RECV;
	c->busy++;
	return req;
}

void tgt_req_release(struct tgt_req *req)
{
	struct tgt_conn *c = req->conn;

	if (req->state == REQ_FREE)
		return;
	if (req->buf) {
		if (req->dma)
			tgt_pool_put(c->g, req->ns->backend, req->buf);
		else
			free(req->buf);
	}
	req->buf = NULL;
	req->state = REQ_FREE;
	c->free[c->nr_free++] = req->idx;
	c->busy--;
}

int tgt_req_buf(struct tgt_req *req)
{
	struct tgt_conn *c = req->conn;

	if (!req->len || req->buf)
		return 0;
	if (c->qid > 0 && req->ns) {
		req->buf = tgt_pool_get(c->g, req->ns->backend);
		req->dma = req->buf != NULL;
	} else {
		req->buf = calloc(1, req->len);
	}
	return req->buf ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------------------ */
/* Send side                                                                 */
/* ------------------------------------------------------------------------ */

static void tx_push(struct tgt_conn *c, struct tgt_tx *tx, uint8_t kind)
{
	tx->kind = kind;
	tx->next = NULL;
	if (c->tx_tail)
		c->tx_tail->next = tx;
	else
		c->tx_head = tx;
	c->tx_tail = tx;
	tgt_group_txq(c);
}

bool tgt_conn_wants_out(const struct tgt_conn *c)
{
	return c->tx_head != NULL;
}

static void send_resp(struct tgt_req *req, struct tgt_tx *tx)
{
	struct tgt_conn *c = req->conn;
	struct pnvme_cqe cqe = {
		.dw0 = req->dw0, .dw1 = req->dw1, .sqhd = c->sqhd,
		.sqid = (uint16_t)(c->qid > 0 ? c->qid : 0), .cid = req->sqe.cid,
		.status = (uint16_t)(req->status << 1),
	};

	pnvme_tcp_build_capsule_resp(&tx->pdu, &c->tp, &cqe);
	req->state = REQ_SEND;
	tx_push(c, tx, TX_RESP);
}

void tgt_req_complete(struct tgt_req *req)
{
	struct tgt_conn *c = req->conn;

	if (c->state >= CONN_CLOSING) {
		tgt_req_release(req);
		return;
	}
	if (req->status)
		TGT_STAT_ADD(c->g, cmd_errors, 1);
	if (!req->status && req->dir == TGT_DIR_C2H && req->len && req->buf) {
		/* TCP 1.0 §3.6.2.8: SUCCESS only where SQ flow control is off (no SQHD to report). */
		bool success = c->sqflow_off && !req->dw0 && !req->dw1;

		if (!pnvme_tcp_build_c2h_data(&req->tx.pdu, &c->tp, req->sqe.cid, 0, req->buf,
					      req->len, true, success)) {
			TGT_STAT_ADD(c->g, bytes_read, req->len);
			req->state = REQ_SEND;
			tx_push(c, &req->tx, success ? TX_C2H_LAST : TX_C2H);
			if (!success)
				send_resp(req, &req->rtx); /* leaves with the data, one sendmsg */
			return;
		}
		req->status = TGT_GEN(PNVME_SC_INTERNAL);
	}
	send_resp(req, &req->tx);
}

/* R2T for all of the command's data (TCP 1.0 §3.6.2.9): TTAG = the request's index. */
static void send_r2t(struct tgt_req *req)
{
	struct tgt_conn *c = req->conn;

	pnvme_tcp_build_r2t(&req->tx.pdu, &c->tp, req->sqe.cid, req->idx, 0, req->len);
	req->state = REQ_H2C;
	TGT_STAT_ADD(c->g, r2ts, 1);
	tx_push(c, &req->tx, TX_R2T);
}

static void begin_drain(struct tgt_conn *c)
{
	/* A FIN, then read until the host closes: our close must not turn into a RST
	 * that could overtake the C2HTermReq just sent. */
	shutdown(c->fd, SHUT_WR);
	c->state = CONN_DRAIN;
	c->deadline = tgt_now_ms() + TGT_CLOSE_DRAIN_MS;
}

/* A PDU left entirely: what comes next for its request. */
static void tx_sent(struct tgt_conn *c, struct tgt_tx *tx)
{
	struct tgt_req *req = tx->req;

	switch (tx->kind) {
	case TX_CTL:
		if (c->state == CONN_CLOSING)
			begin_drain(c);
		break;
	case TX_R2T:
		break;
	case TX_C2H:
		/* Its CapsuleResp is queued behind it, unless conn_fatal() cut the queue. */
		if (c->state >= CONN_CLOSING)
			tgt_req_release(req);
		break;
	default: /* TX_C2H_LAST, TX_RESP */
		tgt_req_release(req);
		break;
	}
}

static uint32_t tx_len(const struct tgt_tx *tx)
{
	return pnvme_tcp_pdu_plen(&tx->pdu);
}

int tgt_conn_flush(struct tgt_conn *c)
{
	int work = 0;

	for (int round = 0; round < 8 && c->tx_head && c->fd >= 0; round++) {
		struct iovec iov[TGT_MAX_IOV];
		size_t cnt = 0, first;
		struct msghdr mh = { 0 };
		ssize_t n;
		uint64_t total;

		for (struct tgt_tx *tx = c->tx_head; tx && cnt + 3 <= TGT_MAX_IOV; tx = tx->next)
			cnt += (size_t)pnvme_tcp_pdu_iov(&tx->pdu, iov + cnt);
		first = pnvme_tcp_iov_advance(iov, cnt, c->tx_off);
		mh.msg_iov = iov + first;
		mh.msg_iovlen = cnt - first;
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_info("tgt: send: %s; connection closed", strerror(errno));
				tgt_conn_close(c);
			}
			break;
		}
		work = 1;
		total = c->tx_off + (uint64_t)n;
		while (c->tx_head && total >= tx_len(c->tx_head)) {
			struct tgt_tx *tx = c->tx_head;

			total -= tx_len(tx);
			c->tx_head = tx->next;
			if (!c->tx_head)
				c->tx_tail = NULL;
			c->tx_off = 0;
			tx_sent(c, tx);
			if (c->fd < 0)
				return work;
		}
		c->tx_off = (uint32_t)total;
		if (c->tx_off)
			break; /* the socket is full */
	}
	return work;
}

/* ------------------------------------------------------------------------ */
/* Closing                                                                   */
/* ------------------------------------------------------------------------ */

/* Drop the group's pending retries of this connection. */
static void unlink_waiting(struct tgt_conn *c)
{
	struct tgt_group *g = c->g;
	struct tgt_req *prev = NULL;

	for (struct tgt_req *r = g->wait_head; r;) {
		struct tgt_req *next = r->wnext;

		if (r->conn == c) {
			if (prev)
				prev->wnext = next;
			else
				g->wait_head = next;
			if (g->wait_tail == r)
				g->wait_tail = prev;
		} else {
			prev = r;
		}
		r = next;
	}
}

void tgt_conn_close(struct tgt_conn *c)
{
	struct tgt_ctrl *ctrl = c->ctrl;

	if (c->state == CONN_DEAD)
		return;
	if (c->g->hot == c)
		c->g->hot = NULL;
	if (c->fd >= 0 && c->g->epfd >= 0) /* before close(): a forked child may hold the socket
					     * open (one never in the set: ENOENT, harmless) */
		(void)epoll_ctl(c->g->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = CONN_DEAD;
	c->tx_head = c->tx_tail = NULL;
	c->tx_off = 0;
	unlink_waiting(c);
	for (unsigned i = 0; i < c->nr_reqs; i++)
		if (c->reqs[i].state != REQ_FREE && !c->reqs[i].backend)
			tgt_req_release(&c->reqs[i]);
	c->cur = NULL;
	if (ctrl && c->qid == 0) {
		ctrl->nr_aer = 0;
		tgt_ctrl_kill(ctrl); /* Base 2.0 §3.3.2.4: the association ends with its admin queue */
	} else if (ctrl && c->qid > 0) {
		pthread_mutex_lock(&ctrl->tgt->lock);
		if (!tgt_ioq_deleted(c)) /* else its id may belong to a new connection already */
			ctrl->qconn[c->qid / 8] &= (uint8_t)~(1u << (c->qid % 8));
		pthread_mutex_unlock(&ctrl->tgt->lock);
	}
}

bool tgt_conn_freeable(const struct tgt_conn *c)
{
	return c->state == CONN_DEAD && c->at_backend == 0;
}

void tgt_conn_free(struct tgt_conn *c)
{
	tgt_conn_close(c);
	tgt_ctrl_put(c->ctrl);
	free(c->reqs);
	free(c->free);
	free(c->rxbuf);
	free(c);
}

/*
 * The receiver refused the host's bytes: a C2HTermReq with the FES and FEI
 * (TCP 1.0 §3.6.2.4), sent after the PDU being sent now, then close.
 * Errors without an FES (a callback's, the host's own TermReq) just close.
 */
static void conn_fatal(struct tgt_conn *c)
{
	struct tgt_tx *keep;

	if (pnvme_tcp_rx_term_req(&c->rx, &c->ctl.pdu)) {
		tgt_conn_close(c);
		return;
	}
	log_info("tgt: queue %d: %s (FES %u): C2HTermReq, closing", c->qid,
		 pnvme_tcp_rx_reason_str((enum pnvme_tcp_rx_reason)c->rx.error.reason),
		 c->rx.error.fes);
	c->state = CONN_CLOSING;
	/* Keep only a PDU partly on the wire: the stream must stay framed. */
	keep = c->tx_off ? c->tx_head : NULL;
	for (struct tgt_tx *tx = keep ? keep->next : c->tx_head; tx;) {
		struct tgt_tx *next = tx->next;

		/* (the CapsuleResp of a C2HData kept on the wire: released when it is sent) */
		if (tx->req && !tx->req->backend && (!keep || tx->req != keep->req))
			tgt_req_release(tx->req);
		tx = next;
	}
	c->tx_head = c->tx_tail = keep;
	if (keep)
		keep->next = NULL;
	c->ctl.req = NULL;
	tx_push(c, &c->ctl, TX_CTL);
	TGT_STAT_ADD(c->g, term_reqs, 1);
}

/* ------------------------------------------------------------------------ */
/* Receive side                                                              */
/* ------------------------------------------------------------------------ */

static int on_icreq(struct tgt_conn *c, struct pnvme_tcp_rx *rx, const struct pnvme_tcp_icreq *ic)
{
	const struct pnvme_tgt *t = c->g->tgt;

	/* TCP 1.0 §3.6.2.2: digests as asked where allowed; data to the host at its HPDA. */
	c->hdgst = (ic->dgst & PNVME_TCP_DGST_HDGST) && t->o.digests;
	c->ddgst = (ic->dgst & PNVME_TCP_DGST_DDGST) && t->o.digests;
	pnvme_tcp_rx_set_digests(rx, c->hdgst, c->ddgst);
	return 0;
}

static void send_icresp(struct tgt_conn *c, const struct pnvme_tcp_icreq *ic)
{
	pnvme_tcp_build_icresp(&c->ctl.pdu, 0,
			       (uint8_t)((c->hdgst ? PNVME_TCP_DGST_HDGST : 0) |
					 (c->ddgst ? PNVME_TCP_DGST_DDGST : 0)),
			       c->g->tgt->o.maxh2cdata);
	c->ctl.req = NULL;
	tx_push(c, &c->ctl, TX_CTL);
	c->tp.hdgst = c->hdgst;
	c->tp.ddgst = c->ddgst;
	c->tp.pda = ic->hpda;
	c->state = CONN_LIVE;
}

/* A command capsule's header: parse it now, so its data lands where it belongs. */
static int on_capsule_hdr(struct tgt_conn *c, struct pnvme_tcp_rx *rx,
			  struct pnvme_tcp_rx_pdu *pdu)
{
	struct tgt_req *req = req_alloc(c);
	uint16_t status;

	if (!req) {
		/* More commands than the queue holds: the host broke its SQ size. */
		log_info("tgt: queue %d: a command beyond the %u the queue holds", c->qid,
			 c->nr_reqs);
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_SEQUENCE, 0);
	}
	req->sqe = pdu->hdr->cmd.sqe;
	c->cur = req;
	status = tgt_req_init(req, pdu->data_len);
	if (!status && pdu->data_len) {
		if (tgt_req_buf(req)) {
			status = PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_CMD_INTERRUPTED);
		} else {
			req->incap = true;
			pdu->dst = req->buf;
			pdu->dst_len = req->len;
		}
	}
	req->status = status; /* data of a refused command is dropped */
	return 0;
}

static void start_exec(struct tgt_req *req)
{
	if (req->dir == TGT_DIR_C2H && tgt_req_buf(req)) {
		req->status = PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_CMD_INTERRUPTED);
		tgt_req_complete(req);
		return;
	}
	req->state = REQ_EXEC;
	req->execute(req);
}

static int on_capsule_done(struct tgt_conn *c, const struct pnvme_tcp_rx_pdu *pdu, int ddgst)
{
	struct tgt_req *req = c->cur;

	c->cur = NULL;
	TGT_STAT_ADD(c->g, cmds, 1);
	/* Base 2.0 §3.3.1: the SQ head moves past the entry (reported in SQHD). */
	c->sqhd = (uint16_t)(c->sqsize ? (c->sqhd + 1u) % (c->sqsize + 1u) : 0);
	if (ddgst) /* TCP 1.0 §3.6.2.5: not fatal, the command fails */
		req->status = PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_TRANSIENT_TR_ERR);
	if (req->status) {
		tgt_req_complete(req);
		return 0;
	}
	if (req->incap)
		TGT_STAT_ADD(c->g, bytes_written, pdu->data_len);
	if (req->dir == TGT_DIR_H2C && !req->incap) {
		if (tgt_req_buf(req)) {
			req->status = PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_CMD_INTERRUPTED);
			tgt_req_complete(req);
		} else {
			send_r2t(req);
		}
		return 0;
	}
	start_exec(req);
	return 0;
}

/* H2CData (TCP 1.0 §3.6.2.7): it must continue, in order, the data an R2T asked for. */
static int on_h2c_hdr(struct tgt_conn *c, struct pnvme_tcp_rx *rx, struct pnvme_tcp_rx_pdu *pdu)
{
	const struct pnvme_tcp_h2c_data *h = &pdu->hdr->h2c;
	struct tgt_req *req = h->ttag < c->nr_reqs ? &c->reqs[h->ttag] : NULL;

	if (!req || req->state != REQ_H2C)
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FIELD,
					 offsetof(struct pnvme_tcp_h2c_data, ttag));
	if (h->cccid != req->sqe.cid)
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FIELD,
					 offsetof(struct pnvme_tcp_h2c_data, cccid));
	if (h->datao != req->rcvd || h->datal > req->len - req->rcvd)
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_OUT_OF_RANGE, 0);
	/* LAST_PDU exactly on the PDU that ends the R2T's range. */
	if (!!(pdu->flags & PNVME_TCP_F_LAST_PDU) != (h->datao + h->datal == req->len))
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FLAGS,
					 offsetof(struct pnvme_tcp_ch, flags));
	pdu->dst = req->buf + h->datao;
	pdu->dst_len = h->datal;
	return 0;
}

static int on_h2c_done(struct tgt_conn *c, const struct pnvme_tcp_rx_pdu *pdu, int ddgst)
{
	const struct pnvme_tcp_h2c_data *h = &pdu->hdr->h2c;
	struct tgt_req *req = &c->reqs[h->ttag];

	if (ddgst)
		req->ddgst_err = true;
	req->rcvd += h->datal;
	TGT_STAT_ADD(c->g, bytes_written, h->datal);
	if (req->rcvd < req->len)
		return 0;
	if (req->ddgst_err) {
		req->status = PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_TRANSIENT_TR_ERR);
		tgt_req_complete(req);
		return 0;
	}
	req->state = REQ_EXEC;
	req->execute(req);
	return 0;
}

static int on_pdu_hdr(void *arg, struct pnvme_tcp_rx *rx, struct pnvme_tcp_rx_pdu *pdu)
{
	struct tgt_conn *c = arg;

	switch (pdu->type) {
	case PNVME_TCP_ICREQ:
		return on_icreq(c, rx, &pdu->hdr->icreq);
	case PNVME_TCP_CAPSULE_CMD:
		return on_capsule_hdr(c, rx, pdu);
	case PNVME_TCP_H2C_DATA:
		return on_h2c_hdr(c, rx, pdu);
	default:
		return 0; /* H2CTermReq: its data (the offending header) is dropped */
	}
}

static int on_pdu_done(void *arg, struct pnvme_tcp_rx *rx, const struct pnvme_tcp_rx_pdu *pdu,
		       int ddgst)
{
	struct tgt_conn *c = arg;

	(void)rx;
	switch (pdu->type) {
	case PNVME_TCP_ICREQ:
		send_icresp(c, &pdu->hdr->icreq);
		return 0;
	case PNVME_TCP_CAPSULE_CMD:
		return on_capsule_done(c, pdu, ddgst);
	case PNVME_TCP_H2C_DATA:
		return on_h2c_done(c, pdu, ddgst);
	case PNVME_TCP_H2C_TERM_REQ:
		log_info("tgt: queue %d: the host ended the connection (H2CTermReq FES %u)",
			 c->qid, pdu->hdr->term.fes);
		return -ECONNRESET;
	default:
		return 0;
	}
}

static const struct pnvme_tcp_rx_ops tgt_rx_ops = {
	.pdu_hdr = on_pdu_hdr,
	.pdu_done = on_pdu_done,
};

/* Read what the socket has: into a data destination directly, else through rxbuf. */
static int conn_recv(struct tgt_conn *c)
{
	int work = 0;

	for (int i = 0; i < 16 && (c->state == CONN_IC || c->state == CONN_LIVE); i++) {
		void *dst;
		size_t d = pnvme_tcp_rx_direct(&c->rx, &dst);
		ssize_t n;
		int rc;

		if (!d) {
			dst = c->rxbuf;
			d = TGT_RXBUF;
		}
		n = recv(c->fd, dst, d, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->rx_ready = false;
			break;
		}
		if (n <= 0) {
			log_debug("tgt: queue %d: %s", c->qid, n ? strerror(errno) : "host closed");
			tgt_conn_close(c);
			return 1;
		}
		work = 1;
		c->g->hot = c;
		rc = dst == (void *)c->rxbuf ? pnvme_tcp_rx_feed(&c->rx, dst, (size_t)n) :
					       pnvme_tcp_rx_direct_done(&c->rx, (size_t)n);
		if (rc) {
			conn_fatal(c);
			return 1;
		}
		if ((size_t)n < d) {
			/* Less than asked for: the socket had no more (epoll reports
			 * what arrives after this). */
			c->rx_ready = false;
			break;
		}
	}
	return work;
}

/*
 * May the socket have bytes? A socket in the group's epoll set is read only
 * after epoll_wait() reported it (tgt_group_poll) and until a read finds it
 * empty: one epoll_wait() per round instead of a recv() per connection. A
 * group without the set reads every socket every round.
 */
static bool conn_rx_ready(const struct tgt_conn *c)
{
	return c->rx_ready || c->g->epfd < 0;
}

/* After the FIN: drop what the host still sends until it closes, or time is up. */
static int conn_drain(struct tgt_conn *c)
{
	for (int i = 0; i < 16 && conn_rx_ready(c); i++) {
		ssize_t n = recv(c->fd, c->rxbuf, TGT_RXBUF, MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->rx_ready = false;
			break;
		}
		if (n <= 0) {
			tgt_conn_close(c);
			return 1;
		}
	}
	if (c->g->now >= c->deadline) {
		tgt_conn_close(c);
		return 1;
	}
	return 0;
}

int tgt_conn_poll(struct tgt_conn *c)
{
	switch (c->state) {
	case CONN_IC:
		if (c->g->now >= c->deadline) {
			log_info("tgt: no ICReq within %u ms: connection closed",
				 c->g->tgt->o.ic_timeout_ms);
			TGT_STAT_ADD(c->g, ic_timeouts, 1);
			tgt_conn_close(c);
			return 1;
		}
		break;
	case CONN_LIVE:
		if (c->ctrl && (__atomic_load_n(&c->ctrl->dead, __ATOMIC_ACQUIRE) ||
				tgt_ioq_deleted(c))) {
			tgt_conn_close(c); /* its controller or its queue is gone */
			return 1;
		}
		if (c->qid == 0 && c->ctrl && !tgt_ctrl_kato_ok(c)) {
			TGT_STAT_ADD(c->g, kato_expired, 1);
			tgt_conn_close(c);
			return 1;
		}
		if (c->qid == 0 && c->ctrl && c->ctrl->nr_aer &&
		    __atomic_load_n(&c->ctrl->aen_pending, __ATOMIC_RELAXED))
			(void)tgt_ctrl_aen(c); /* events raised by other threads */
		break;
	case CONN_DRAIN:
		return conn_drain(c);
	default:
		return 0;
	}
	if (c->stopping || !conn_rx_ready(c))
		return 0;
	return conn_recv(c);
}

struct tgt_conn *tgt_conn_new(struct tgt_group *g, int fd)
{
	const struct pnvme_tgt *t = g->tgt;
	struct tgt_conn *c = calloc(1, sizeof(*c));
	uint32_t maxdata = TGT_ADMIN_ICD;
	struct pnvme_tcp_rx_cfg rc;
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);

	if (!c)
		return NULL;
	c->g = g;
	c->fd = fd;
	c->qid = -1;
	c->state = CONN_IC;
	c->nr_reqs = t->o.queue_size;
	c->reqs = calloc(c->nr_reqs, sizeof(*c->reqs));
	c->free = calloc(c->nr_reqs, sizeof(*c->free));
	c->rxbuf = malloc(TGT_RXBUF);
	if (!c->reqs || !c->free || !c->rxbuf)
		goto fail;
	for (uint16_t i = 0; i < c->nr_reqs; i++) {
		c->reqs[i].conn = c;
		c->reqs[i].idx = i;
		c->reqs[i].tx.req = &c->reqs[i];
		c->reqs[i].rtx.req = &c->reqs[i];
		c->free[i] = (uint16_t)(c->nr_reqs - 1u - i);
	}
	c->nr_free = c->nr_reqs;
	c->icd = TGT_ADMIN_ICD;
	if (t->o.icd_bytes > maxdata)
		maxdata = t->o.icd_bytes;
	if (t->o.maxh2cdata > maxdata)
		maxdata = t->o.maxh2cdata;
	rc = (struct pnvme_tcp_rx_cfg){
		.host = false, .pda = 0,
		.maxpl = PNVME_TCP_HDR_BUF + 2 * PNVME_TCP_DIGEST_LEN + maxdata,
		.maxh2cdata = t->o.maxh2cdata, .ops = &tgt_rx_ops, .arg = c,
	};
	if (pnvme_tcp_rx_init(&c->rx, &rc))
		goto fail;
	/* The address and port the host reached, for the Discovery Log Page. */
	if (!getsockname(fd, (struct sockaddr *)&sa, &sl)) {
		if (sa.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&sa;

			inet_ntop(AF_INET, &a->sin_addr, c->traddr, sizeof(c->traddr));
			snprintf(c->trsvcid, sizeof(c->trsvcid), "%u", ntohs(a->sin_port));
			c->adrfam = PNVME_ADRFAM_IPV4;
		} else if (sa.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&sa;

			inet_ntop(AF_INET6, &a->sin6_addr, c->traddr, sizeof(c->traddr));
			snprintf(c->trsvcid, sizeof(c->trsvcid), "%u", ntohs(a->sin6_port));
			c->adrfam = PNVME_ADRFAM_IPV6;
		}
	}
	return c;
fail:
	free(c->reqs);
	free(c->free);
	free(c->rxbuf);
	free(c);
	return NULL;
}
