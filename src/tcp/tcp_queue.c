/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tcp_queue.c - one NVMe/TCP connection carrying one queue pair's rings
 * (see tcp/host.h for the model): connection set-up (ICReq/ICResp, Connect),
 * the send path (SQ entries -> CapsuleCmd, R2T -> H2CData) and the receive
 * path (CapsuleResp / C2HData -> CQEs), each reading top to bottom below.
 *
 * Everything the target sends is untrusted: the PDU layer (pdu.c) checks the
 * framing; here every CCCID, offset and length is checked against the
 * command it names before a byte moves, and any violation ends the
 * connection (the controller then reconnects and the core retries or fails
 * the requests, each exactly once).
 */
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pnvme/tcp_spec.h>

#include "tcp/host.h"

/* H2CData flow asked for in ICReq: one outstanding R2T per command (MAXR2T 0's based). */
#define TCP_MAXR2T 0u
/* Capsule CID of the Connect command: index 4095 is never a tracker's (trackers < 4095). */
#define CONNECT_CID 0xffffu

/* ------------------------------------------------------------------------ */
/* Allocation                                                               */
/* ------------------------------------------------------------------------ */

int tcp_queue_alloc(struct pnvme_qpair *qp)
{
	struct pnvme_tcp_queue *tq = calloc(1, sizeof(*tq));

	if (!tq)
		return pnvme_fail(-ENOMEM, "out of memory for a TCP queue");
	tq->req = calloc(qp->nr_trk, sizeof(*tq->req));
	if (!tq->req) {
		free(tq);
		return pnvme_fail(-ENOMEM, "out of memory for a TCP queue");
	}
	tq->fd = -1;
	tq->qp = qp;
	tq->qid = qp->qid;
	tq->cq_phase = 1;
	qp->tq = tq;
	qp->sq_db = &tq->db_sq;
	qp->cq_db = &tq->db_cq;
	return 0;
}

void tcp_queue_free(struct pnvme_qpair *qp)
{
	tcp_queue_close(qp);
	free(qp->tq->req);
	free(qp->tq);
	qp->tq = NULL;
}

/* ------------------------------------------------------------------------ */
/* Failure                                                                  */
/* ------------------------------------------------------------------------ */

void tcp_queue_close(struct pnvme_qpair *qp)
{
	struct pnvme_tcp_queue *tq = qp->tq;

	if (tq->fd >= 0) {
		close(tq->fd);
		tq->fd = -1;
	}
	/* Nothing queued may be sent any more: the buffers go back to their owners. */
	for (uint32_t i = 0; i < qp->nr_trk; i++) {
		tq->req[i].state = REQ_IDLE;
		tq->req[i].queued = false;
		tq->req[i].r2t_active = false;
		tq->req[i].next = 0;
	}
	tq->tx_head = tq->tx_tail = 0;
	tq->tx_off = 0;
}

/*
 * The connection is unusable: send the H2CTermReq the receiver prepared (if
 * any; best effort, non-blocking), close, remember why. Returns the error.
 */
static int conn_fail(struct pnvme_tcp_queue *tq, int err, const char *why)
{
	if (tq->fd >= 0 && pnvme_tcp_rx_term_req(&tq->rx, &tq->term) == 0) {
		struct iovec iov[3];
		int n = pnvme_tcp_pdu_iov(&tq->term, iov);
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		(void)sendmsg(tq->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	tcp_queue_close(tq->qp);
	if (!tq->err)
		tq->err = err;
	return pnvme_fail(err, "NVMe/TCP queue %u: %s", tq->qid, why);
}

/* ------------------------------------------------------------------------ */
/* Send path: SQ entries -> CapsuleCmd; R2T -> H2CData                      */
/* ------------------------------------------------------------------------ */

static void txq_push(struct pnvme_tcp_queue *tq, uint32_t idx)
{
	struct tcp_req *r = &tq->req[idx];

	r->next = 0;
	r->queued = true;
	if (tq->tx_tail)
		tq->req[tq->tx_tail - 1].next = idx + 1;
	else
		tq->tx_head = idx + 1;
	tq->tx_tail = idx + 1;
}

/* The next H2CData PDU of the R2T being answered (TCP 1.0 §3.6.2.7). */
static void h2c_next(struct pnvme_tcp_queue *tq, uint32_t idx)
{
	struct tcp_req *r = &tq->req[idx];
	uint32_t n = r->r2t_end - r->r2t_off;

	if (n > tq->maxh2cdata)
		n = tq->maxh2cdata;
	(void)pnvme_tcp_build_h2c_data(&r->pdu, &tq->tp, r->cid, r->ttag, r->r2t_off,
				       r->buf + r->r2t_off, n, r->r2t_off + n == r->r2t_end);
	r->r2t_off += n;
	txq_push(tq, idx);
}

/*
 * Turn the SQ entries in [send_head, doorbell) into command capsules. The
 * SQE's SGL holds the data's virtual address (tcp_sqe_data()); on the wire
 * it becomes an in-capsule Data Block (Offset subtype, address ICDOFF 0) for
 * host-to-controller data that fits the queue's in-capsule size, else a
 * Transport Data Block (TCP 1.0 §3.3.x / Base 2.0 §4.1.2).
 */
static int sq_consume(struct pnvme_qpair *qp, struct pnvme_tcp_queue *tq)
{
	uint32_t tail = qp->sq_db_tail;

	while (tq->send_head != tail) {
		struct pnvme_sqe sqe = qp->sq[tq->send_head];
		struct pnvme_sgl_desc *sgl = (struct pnvme_sgl_desc *)(void *)&sqe.prp1;
		uint32_t idx = sqe.cid & CID_IDX_MASK;
		struct tcp_req *r;
		const void *icd = NULL;
		uint32_t icd_len = 0;

		if (++tq->send_head == qp->qsize)
			tq->send_head = 0;
		if (idx >= qp->nr_trk || tq->req[idx].queued)
			return conn_fail(tq, -EPROTO, "internal error: SQ entry with a command id "
					 "that cannot be sent");
		r = &tq->req[idx];
		r->cid = sqe.cid;
		r->rcvd = 0;
		r->ddgst_err = false;
		r->incapsule = false;
		r->r2t_active = false;
		r->r2t_next = 0;
		r->buf = NULL;
		r->len = 0;
		r->dir = DIR_NONE;
		if (PNVME_GET(sqe.flags, PNVME_SQE_PSDT) == PNVME_SQE_PSDT_SGL_MPTR_CONTIG &&
		    sgl->length) {
			/* Opcode bits 1:0 give the direction (Base 2.0 §5, §6: FCTYPE for fabrics). */
			uint8_t x = sqe.opc == PNVME_OPC_FABRICS ? (uint8_t)(sqe.nsid & 0xffu) : sqe.opc;
			r->buf = (uint8_t *)(uintptr_t)sgl->addr;
			r->len = sgl->length;
			r->dir = (x & 3u) == 1u ? DIR_H2C : (x & 3u) == 2u ? DIR_C2H : DIR_NONE;
			if (r->dir == DIR_NONE)
				r->dir = DIR_C2H; /* bidirectional: not sent by pnvme; read */
			sgl->addr = 0;
			if (r->dir == DIR_H2C && r->len <= tq->icd_max) {
				sgl->id = PNVME_SGL_ID_INCAPSULE;
				r->incapsule = true;
				icd = r->buf;
				icd_len = r->len;
			} else {
				sgl->id = PNVME_SGL_ID_TRANSPORT;
			}
		}
		if (pnvme_tcp_build_capsule_cmd(&r->pdu, &tq->tp, &sqe, icd, icd_len))
			return conn_fail(tq, -EINVAL, "internal error: capsule not built");
		r->state = REQ_SENT;
		txq_push(tq, idx);
	}
	return 0;
}

/* A PDU left entirely: an H2C stream goes on with its next PDU. */
static void pdu_sent(struct pnvme_tcp_queue *tq, uint32_t idx)
{
	struct tcp_req *r = &tq->req[idx];

	r->queued = false;
	if (r->r2t_active) {
		if (r->r2t_off < r->r2t_end)
			h2c_next(tq, idx);
		else
			r->r2t_active = false; /* this R2T is answered; the next may come */
	}
}

/*
 * Write as much of the send queue as the socket takes: up to TCP_MAX_IOV
 * entries per sendmsg (several capsules and data PDUs in one system call),
 * never blocking. Returns 0 or the connection's error.
 */
static int tx_flush(struct pnvme_tcp_queue *tq)
{
	while (tq->tx_head) {
		struct iovec iov[TCP_MAX_IOV];
		size_t cnt = 0, skip = tq->tx_off;

		for (uint32_t i = tq->tx_head; i && cnt + 3 <= TCP_MAX_IOV; i = tq->req[i - 1].next)
			cnt += (size_t)pnvme_tcp_pdu_iov(&tq->req[i - 1].pdu, &iov[cnt]);
		/* Skip what a short write sent of the head PDU already. */
		size_t first = pnvme_tcp_iov_advance(iov, cnt, skip);
		struct msghdr mh = { .msg_iov = iov + first, .msg_iovlen = cnt - first };
		ssize_t n = sendmsg(tq->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return conn_fail(tq, -errno == -EPIPE ? -ECONNRESET : -errno,
					 errno == EPIPE || errno == ECONNRESET
						 ? "connection reset by the target"
						 : "send failed");
		}
		tq->sendmsgs++;
		/* Retire the PDUs that left entirely. */
		size_t left = (size_t)n + tq->tx_off;
		while (tq->tx_head) {
			uint32_t idx = tq->tx_head - 1;
			size_t plen = pnvme_tcp_pdu_plen(&tq->req[idx].pdu);
			if (left < plen)
				break;
			left -= plen;
			tq->tx_head = tq->req[idx].next;
			if (!tq->tx_head)
				tq->tx_tail = 0;
			pdu_sent(tq, idx);
		}
		tq->tx_off = (uint32_t)left;
		if (tq->tx_head && left)
			return 0; /* the socket is full: the rest at the next poll */
	}
	return 0;
}

void tcp_queue_flush(struct pnvme_qpair *qp)
{
	struct pnvme_tcp_queue *tq = qp->tq;

	if (tq->fd < 0 || tq->err)
		return;
	if (sq_consume(qp, tq) == 0)
		(void)tx_flush(tq);
}

/* ------------------------------------------------------------------------ */
/* Receive path: CapsuleResp / C2HData / R2T -> CQEs and H2CData            */
/* ------------------------------------------------------------------------ */

/* Post a completion to the CQ ring as a controller would (phase tag last). */
static void cqe_post(struct pnvme_qpair *qp, struct pnvme_tcp_queue *tq, uint32_t dw0,
		     uint32_t dw1, uint16_t cid, uint16_t status)
{
	struct pnvme_cqe *c = &qp->cq[tq->cq_tail];

	c->dw0 = dw0;
	c->dw1 = dw1;
	c->sqhd = (uint16_t)tq->send_head;
	c->sqid = qp->qid;
	c->cid = cid;
	__atomic_store_n(&c->status, (uint16_t)((status & ~1u) | tq->cq_phase), __ATOMIC_RELEASE);
	if (++tq->cq_tail == qp->cq_size) {
		tq->cq_tail = 0;
		tq->cq_phase ^= 1;
	}
}

/* The sent command a PDU names, or NULL (unknown CCCID). */
static struct tcp_req *req_of(struct pnvme_tcp_queue *tq, uint16_t cccid)
{
	uint32_t idx = cccid & CID_IDX_MASK;

	if (idx >= tq->qp->nr_trk || tq->req[idx].cid != cccid || tq->req[idx].state != REQ_SENT)
		return NULL;
	return &tq->req[idx];
}

/* May data still land in the command's buffer? Not once the host gave up on it. */
static bool req_owned(struct pnvme_tcp_queue *tq, const struct tcp_req *r)
{
	const struct pnvme_tracker *trk = &tq->qp->trk[r->cid & CID_IDX_MASK];

	return trk->cid == r->cid && (trk->state == TRK_ACTIVE || trk->state == TRK_ABORTING);
}

static int rx_hdr(void *arg, struct pnvme_tcp_rx *rx, struct pnvme_tcp_rx_pdu *pdu)
{
	struct pnvme_tcp_queue *tq = arg;
	const union pnvme_tcp_hdr *h = pdu->hdr;
	struct tcp_req *r;

	switch (pdu->type) {
	case PNVME_TCP_ICRESP:
		/* TCP 1.0 §3.6.2.2, checked where the connection is made (ic_check). */
		return 0;
	case PNVME_TCP_C2H_DATA:
		r = req_of(tq, h->c2h.cccid);
		if (!r || r->dir != DIR_C2H)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FIELD,
						 offsetof(struct pnvme_tcp_c2h_data, cccid));
		/* In order, inside the command's buffer (TCP 1.0 §3.6.2.8). */
		if (h->c2h.datao != r->rcvd || h->c2h.datal > r->len - r->rcvd)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_OUT_OF_RANGE, 0);
		if (req_owned(tq, r)) {
			pdu->dst = r->buf + h->c2h.datao;
			pdu->dst_len = h->c2h.datal;
		}
		return 0;
	case PNVME_TCP_R2T:
		r = req_of(tq, h->r2t.cccid);
		if (!r || r->dir != DIR_H2C || r->incapsule)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FIELD,
						 offsetof(struct pnvme_tcp_r2t, cccid));
		if (r->r2t_active || r->queued)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_LIMIT, 0); /* MAXR2T exceeded */
		if (h->r2t.r2to != r->r2t_next || h->r2t.r2tl > r->len - r->r2t_next)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_OUT_OF_RANGE, 0);
		if (!req_owned(tq, r))
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FIELD,
						 offsetof(struct pnvme_tcp_r2t, cccid));
		r->ttag = h->r2t.ttag;
		r->r2t_off = h->r2t.r2to;
		r->r2t_end = h->r2t.r2to + h->r2t.r2tl;
		r->r2t_next = r->r2t_end;
		r->r2t_active = true;
		h2c_next(tq, (uint32_t)(r - tq->req));
		return 0;
	default:
		return 0; /* CapsuleResp, C2HTermReq: handled when complete */
	}
}

/*
 * The command is over (CapsuleResp, or C2HData with SUCCESS): post its CQE.
 * A data digest error fails it with Transient Transport Error (TCP 1.0
 * §3.6.2.8); a read "successful" with data missing, with Data Transfer Error.
 * `status` is the CQE status word (phase bit included).
 */
static void req_complete(struct pnvme_qpair *qp, struct pnvme_tcp_queue *tq, struct tcp_req *r,
			 uint32_t dw0, uint32_t dw1, uint16_t status)
{
	if (r->ddgst_err)
		status = (uint16_t)(PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_TRANSIENT_TR_ERR) << 1);
	else if ((status >> 1) == 0 && r->dir == DIR_C2H && r->rcvd != r->len)
		status = (uint16_t)(PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_DATA_XFER_ERROR) << 1);
	r->state = REQ_DONE;
	cqe_post(qp, tq, dw0, dw1, r->cid, status);
}

static int rx_done(void *arg, struct pnvme_tcp_rx *rx, const struct pnvme_tcp_rx_pdu *pdu,
		   int ddgst)
{
	struct pnvme_tcp_queue *tq = arg;
	struct pnvme_qpair *qp = tq->qp;
	const union pnvme_tcp_hdr *h = pdu->hdr;
	struct tcp_req *r;

	tq->pdus_rx++;
	switch (pdu->type) {
	case PNVME_TCP_CAPSULE_RESP:
		r = req_of(tq, h->resp.cqe.cid);
		if (!r)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FIELD,
						 8 + offsetof(struct pnvme_cqe, cid));
		/* A response before the command's data left: the target cannot have it. */
		if (r->queued || r->r2t_active)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_SEQUENCE, 0);
		req_complete(qp, tq, r, h->resp.cqe.dw0, h->resp.cqe.dw1, h->resp.cqe.status);
		return 0;
	case PNVME_TCP_C2H_DATA:
		r = req_of(tq, h->c2h.cccid);
		if (!r)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FIELD, 8);
		r->rcvd += pdu->data_len;
		if (ddgst)
			r->ddgst_err = true; /* TCP 1.0 §3.6.2.8: the command fails, not the link */
		if (!(pdu->flags & PNVME_TCP_F_SUCCESS))
			return 0;
		/* SUCCESS: the CapsuleResp is implied (status 0), if all data came. */
		req_complete(qp, tq, r, 0, 0, 0);
		return 0;
	case PNVME_TCP_C2H_TERM_REQ:
		pnvme_fail(-ECONNRESET, "the target terminated the connection: %s",
			   pnvme_tcp_fes_str(h->term.fes));
		return -ECONNRESET;
	default:
		return 0;
	}
}

static const struct pnvme_tcp_rx_ops rx_ops = { .pdu_hdr = rx_hdr, .pdu_done = rx_done };

/*
 * A C2HTermReq ended the stream (the callbacks return -ECONNRESET for it):
 * say what the target reported. The PDU layer replaced the callback's
 * message with its own ("PDU refused by the connection") on the way out.
 */
static int term_req_fail(const struct pnvme_tcp_rx *rx)
{
	return pnvme_fail(-ECONNRESET, "the target terminated the connection: %s (FES %u)",
			  pnvme_tcp_fes_str(rx->hdr.term.fes), (unsigned)rx->hdr.term.fes);
}

/*
 * Read what arrived, at most `budget` receive calls: data PDUs straight into
 * the command's buffer (pnvme_tcp_rx_direct), everything else through the
 * staging buffer in large reads.
 */
static int rx_pump(struct pnvme_tcp_queue *tq, unsigned budget)
{
	while (budget--) {
		void *dst;
		size_t want = pnvme_tcp_rx_direct(&tq->rx, &dst);
		bool direct = want != 0;
		ssize_t n;
		int rc;

		if (!direct) {
			dst = tq->rxbuf;
			want = sizeof(tq->rxbuf);
		}
		n = recv(tq->fd, dst, want, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return conn_fail(tq, -errno, errno == ECONNRESET
						      ? "connection reset by the target"
						      : "receive failed");
		}
		if (n == 0)
			return conn_fail(tq, -ECONNRESET, "the target closed the connection");
		tq->recvs++;
		rc = direct ? pnvme_tcp_rx_direct_done(&tq->rx, (size_t)n)
			    : pnvme_tcp_rx_feed(&tq->rx, tq->rxbuf, (size_t)n);
		if (rc) {
			char why[256];
			if (rc == -ECONNRESET) {
				(void)term_req_fail(&tq->rx);
				snprintf(why, sizeof(why), "%s", pnvme_last_error());
			} else {
				snprintf(why, sizeof(why), "malformed PDU from the target (%s)",
					 pnvme_tcp_rx_reason_str((enum pnvme_tcp_rx_reason)
								 tq->rx.error.reason));
			}
			return conn_fail(tq, rc == -ECONNRESET ? rc : -EPROTO, why);
		}
		if ((size_t)n < want)
			return 0; /* drained */
	}
	return 0;
}

int tcp_queue_poll(struct pnvme_qpair *qp)
{
	struct pnvme_tcp_queue *tq = qp->tq;
	int rc;

	if (tq->err)
		return tq->err;
	if (tq->fd < 0)
		return 0; /* not connected (yet): the core holds the ring meanwhile */
	rc = sq_consume(qp, tq);
	if (rc == 0)
		rc = tx_flush(tq);
	if (rc == 0)
		rc = rx_pump(tq, 8);
	/* R2Ts just received want their H2CData out now. */
	if (rc == 0 && tq->tx_head)
		rc = tx_flush(tq);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Connection set-up                                                        */
/* ------------------------------------------------------------------------ */

/* Wait for the socket to be readable/writable until `deadline` (ms clock). */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		uint64_t now = pnvme_now_ms();
		struct pollfd p = { .fd = fd, .events = events };
		int rc;

		if (now >= deadline)
			return -ETIMEDOUT;
		rc = poll(&p, 1, (int)(deadline - now > 100 ? 100 : deadline - now));
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -errno;
	}
}

/* Send one PDU completely before `deadline` (set-up only). */
static int send_all(struct pnvme_tcp_queue *tq, struct pnvme_tcp_tx_pdu *p, uint64_t deadline)
{
	struct iovec iov[3];
	size_t cnt = (size_t)pnvme_tcp_pdu_iov(p, iov), first = 0;

	while (first < cnt) {
		struct msghdr mh = { .msg_iov = iov + first, .msg_iovlen = cnt - first };
		ssize_t n = sendmsg(tq->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				return -errno;
			int rc = wait_fd(tq->fd, POLLOUT, deadline);
			if (rc)
				return rc;
			continue;
		}
		first = pnvme_tcp_iov_advance(iov, cnt, (size_t)n);
	}
	return 0;
}

/* Set-up receiver: ICResp, then the Connect response. */
struct setup_rx {
	struct pnvme_tcp_icresp icresp;
	struct pnvme_cqe cqe;
	bool got_icresp, got_resp;
	int term;
};

static int setup_hdr(void *arg, struct pnvme_tcp_rx *rx, struct pnvme_tcp_rx_pdu *pdu)
{
	struct setup_rx *s = arg;

	if (pdu->type == PNVME_TCP_ICRESP) {
		s->icresp = pdu->hdr->icresp;
		s->got_icresp = true;
		return 0;
	}
	if (pdu->type == PNVME_TCP_CAPSULE_RESP || pdu->type == PNVME_TCP_C2H_TERM_REQ)
		return 0;
	/* Nothing else may come before the Connect is answered. */
	return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_SEQUENCE, 0);
}

static int setup_done(void *arg, struct pnvme_tcp_rx *rx, const struct pnvme_tcp_rx_pdu *pdu,
		      int ddgst)
{
	struct setup_rx *s = arg;

	(void)ddgst;
	if (pdu->type == PNVME_TCP_CAPSULE_RESP) {
		if (pdu->hdr->resp.cqe.cid != CONNECT_CID)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FIELD, 8 + 12);
		s->cqe = pdu->hdr->resp.cqe;
		s->got_resp = true;
	} else if (pdu->type == PNVME_TCP_C2H_TERM_REQ) {
		pnvme_fail(-ECONNRESET, "the target terminated the connection: %s",
			   pnvme_tcp_fes_str(pdu->hdr->term.fes));
		return -ECONNRESET;
	}
	return 0;
}

static const struct pnvme_tcp_rx_ops setup_ops = { .pdu_hdr = setup_hdr, .pdu_done = setup_done };

/* Receive until *flag is set (one PDU at a time is enough here), bounded. */
static int recv_until(struct pnvme_tcp_queue *tq, struct pnvme_tcp_rx *rx, bool *flag,
		      uint64_t deadline, const char *what)
{
	uint8_t buf[512];

	while (!*flag) {
		ssize_t n = recv(tq->fd, buf, sizeof(buf), MSG_DONTWAIT);
		int rc;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return pnvme_fail(-errno, "waiting for the %s: %s", what,
						  strerror(errno));
			rc = wait_fd(tq->fd, POLLIN, deadline);
			if (rc)
				return pnvme_fail(rc, "no %s from the target within the connect "
						  "timeout", what);
			continue;
		}
		if (n == 0)
			return pnvme_fail(-ECONNRESET, "the target closed the connection before "
					  "sending the %s", what);
		/* Bytes past the awaited PDU cannot exist yet: the target has nothing else
		 * to say before the Connect is answered, and the receiver refuses more. */
		rc = pnvme_tcp_rx_feed(rx, buf, (size_t)n);
		if (rc == -ECONNRESET)
			return term_req_fail(rx);
		/* A target of a later NVMe/TCP version: name the field, not just "unsupported". */
		if (rc && rx->hdr.ch.pdu_type == PNVME_TCP_ICRESP &&
		    rx->hdr.icresp.pfv != PNVME_TCP_PFV_1_0)
			return pnvme_fail(-EPROTO, "ICResp: PDU format version %u, only 0 is known "
					  "(NVMe/TCP 1.0)", rx->hdr.icresp.pfv);
		if (rc)
			return pnvme_fail(-EPROTO, "malformed %s from the target (%s)", what,
					  pnvme_tcp_rx_reason_str((enum pnvme_tcp_rx_reason)
								  rx->error.reason));
	}
	return 0;
}

/* TCP 1.0 §3.6.2.2: what an ICResp may say. */
static int ic_check(struct pnvme_tcp_queue *tq, const struct pnvme_tcp_icresp *ic, uint8_t asked)
{
	if (ic->pfv != PNVME_TCP_PFV_1_0)
		return pnvme_fail(-EPROTO, "ICResp: PDU format version %u, only 0 is known", ic->pfv);
	if (ic->cpda > PNVME_TCP_PDA_MAX)
		return pnvme_fail(-EPROTO, "ICResp: CPDA %u above 31", ic->cpda);
	if (ic->dgst & ~asked)
		return pnvme_fail(-EPROTO, "ICResp: digests 0x%x enabled that were not asked for "
				  "(0x%x)", ic->dgst, asked);
	if (ic->maxh2cdata < PNVME_TCP_MAXH2CDATA_MIN || (ic->maxh2cdata & 3u))
		return pnvme_fail(-EPROTO, "ICResp: MAXH2CDATA %u (at least 4096, a multiple of "
				  "4)", ic->maxh2cdata);
	tq->maxh2cdata = ic->maxh2cdata;
	tq->tp.hdgst = (ic->dgst & PNVME_TCP_DGST_HDGST) != 0;
	tq->tp.ddgst = (ic->dgst & PNVME_TCP_DGST_DDGST) != 0;
	tq->tp.pda = ic->cpda;
	return 0;
}

/* Base 2.0 Figure 393: why a Connect was refused, in words. */
static const char *connect_refusal(uint16_t st, uint32_t dw0, char *buf, size_t len)
{
	unsigned sct = PNVME_STATUS_SCT(st), sc = PNVME_STATUS_SC(st);

	if (sct == PNVME_SCT_CMD) {
		switch (sc) {
		case PNVME_SC_CONNECT_INVALID_HOST:
			return "invalid host: this host NQN is not allowed to use the subsystem "
			       "(allowed hosts list)";
		case PNVME_SC_CONNECT_CTRL_BUSY:
			return "controller busy";
		case PNVME_SC_CONNECT_INCOMPATIBLE_FORMAT:
			return "incompatible format";
		case PNVME_SC_CONNECT_INVALID_PARAM:
			snprintf(buf, len, "invalid parameters (%s, byte %u): e.g. an unknown "
				 "subsystem NQN", (dw0 >> 16) & 1 ? "in the command" : "in the data",
				 dw0 & 0xffffu);
			return buf;
		case PNVME_SC_CONNECT_RESTART_DISCOVERY:
			return "restart discovery";
		case PNVME_SC_CONNECT_INVALID_QUEUE_TYPE:
			return "invalid queue type";
		case PNVME_SC_AUTH_REQUIRED:
			return "authentication required (not supported by pnvme)";
		default:
			break;
		}
	}
	snprintf(buf, len, "%s", pnvme_status_str(st));
	return buf;
}

int tcp_queue_connect(struct pnvme_qpair *qp, uint16_t cntlid, uint32_t kato_ms,
		      uint16_t *cntlid_out)
{
	struct pnvme_tcp_queue *tq = qp->tq;
	struct pnvme_tcp_ctrl *tc = qp->ctrl->tcp;
	uint64_t deadline = pnvme_now_ms() + tc->o.connect_timeout_ms;
	struct pnvme_tcp_rx_cfg cfg = { .host = true, .pda = 0, .maxpl = 0, .ops = &setup_ops };
	struct pnvme_fabrics_connect_data *data = NULL;
	struct pnvme_fabrics_connect cmd;
	struct pnvme_tcp_tx_pdu pdu;
	struct setup_rx s;
	uint8_t dgst = (uint8_t)((tc->o.hdgst ? PNVME_TCP_DGST_HDGST : 0) |
				 (tc->o.ddgst ? PNVME_TCP_DGST_DDGST : 0));
	char why[200];
	int one = 1, rc;

	tcp_queue_close(qp);
	tq->err = 0;
	tq->send_head = qp->sq_db_tail;
	tq->cq_tail = qp->cq_head;
	tq->cq_phase = qp->phase;
	tq->tp = (struct pnvme_tcp_tx_params){ 0 };

	tq->fd = socket(tc->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (tq->fd < 0)
		return pnvme_fail(-errno, "socket: %s", strerror(errno));
	(void)setsockopt(tq->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(tq->fd, (struct sockaddr *)&tc->sa, tc->sa_len) < 0) {
		if (errno != EINPROGRESS) {
			rc = -errno;
			goto refused;
		}
		rc = wait_fd(tq->fd, POLLOUT, deadline);
		if (rc == 0) {
			int err = 0;
			socklen_t el = sizeof(err);
			(void)getsockopt(tq->fd, SOL_SOCKET, SO_ERROR, &err, &el);
			rc = -err;
		}
		if (rc)
			goto refused;
	}

	/* TCP 1.0 §3.6.2.1: ICReq; the ICResp says what this connection uses. */
	memset(&s, 0, sizeof(s));
	cfg.arg = &s;
	rc = pnvme_tcp_rx_init(&tq->rx, &cfg);
	if (rc == 0) {
		pnvme_tcp_build_icreq(&pdu, 0, dgst, TCP_MAXR2T);
		rc = send_all(tq, &pdu, deadline);
	}
	if (rc == 0)
		rc = recv_until(tq, &tq->rx, &s.got_icresp, deadline, "ICResp");
	if (rc == 0)
		rc = ic_check(tq, &s.icresp, dgst);
	if (rc)
		goto fail;
	pnvme_tcp_rx_set_digests(&tq->rx, tq->tp.hdgst, tq->tp.ddgst);

	/* Base 2.0 §6.3: Connect, its 1 KiB of data in the capsule. */
	data = calloc(1, sizeof(*data));
	if (!data) {
		rc = pnvme_fail(-ENOMEM, "out of memory");
		goto fail;
	}
	memcpy(data->hostid, tc->o.hostid, sizeof(data->hostid));
	data->cntlid = cntlid;
	snprintf(data->subnqn, sizeof(data->subnqn), "%s", tc->o.subnqn);
	snprintf(data->hostnqn, sizeof(data->hostnqn), "%s", tc->o.hostnqn);
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = PNVME_OPC_FABRICS;
	cmd.flags = (uint8_t)(PNVME_SQE_PSDT_SGL_MPTR_CONTIG << PNVME_SQE_PSDT_SHIFT);
	cmd.cid = CONNECT_CID;
	cmd.fctype = PNVME_FCTYPE_CONNECT;
	cmd.sgl1.id = PNVME_SGL_ID_INCAPSULE;
	cmd.sgl1.length = sizeof(*data);
	cmd.qid = qp->qid;
	cmd.sqsize = (uint16_t)(qp->qsize - 1);
	cmd.kato = kato_ms;
	/*
	 * I/O queues: SQ flow control disabled (CATTR bit 2, TCP 1.0 §3.x): the
	 * host never reads SQHD (it posts its own), and the target may then end
	 * a read with a C2HData SUCCESS instead of a response capsule.
	 */
	if (qp->qid)
		cmd.cattr = 1u << 2;
	rc = pnvme_tcp_build_capsule_cmd(&pdu, &tq->tp, (const struct pnvme_sqe *)(void *)&cmd,
					 data, sizeof(*data));
	if (rc == 0)
		rc = send_all(tq, &pdu, deadline);
	if (rc == 0)
		rc = recv_until(tq, &tq->rx, &s.got_resp, deadline, "Connect response");
	free(data);
	if (rc)
		goto fail;
	if (s.cqe.status >> 1) {
		uint16_t st = (uint16_t)(s.cqe.status >> 1);
		rc = pnvme_fail(pnvme_status_errno(st) ? pnvme_status_errno(st) : -EIO,
				"%s:%s refused the Connect of queue %u for %s: %s", tc->o.host,
				tc->o.port, qp->qid, tc->o.subnqn,
				connect_refusal(st, s.cqe.dw0, why, sizeof(why)));
		goto fail_quiet;
	}
	if (cntlid_out)
		*cntlid_out = PNVME_CONNECT_RESP_CNTLID(s.cqe.dw0);

	/* From here on the ring's entries flow through the I/O receiver. */
	cfg.ops = &rx_ops;
	cfg.arg = tq;
	(void)pnvme_tcp_rx_init(&tq->rx, &cfg);
	tq->rx.ic_done = true;
	pnvme_tcp_rx_set_digests(&tq->rx, tq->tp.hdgst, tq->tp.ddgst);
	tq->icd_max = qp->qid == 0 ? 8192u : tc->icd_io;
	return 0;

refused:
	pnvme_fail(rc, "cannot connect to %s:%s: %s", tc->o.host, tc->o.port, strerror(-rc));
	tcp_queue_close(qp);
	return rc;
fail:
	snprintf(why, sizeof(why), "%s", pnvme_last_error());
	pnvme_fail(rc, "NVMe/TCP %s:%s queue %u: %s", tc->o.host, tc->o.port, qp->qid, why);
fail_quiet:
	tcp_queue_close(qp);
	return rc;
}
