/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_tcp_peer.c - the fake NVMe/TCP target of tests/tcp_peer.c, driven by
 * a minimal blocking client built from the PDU layer (src/tcp/pdu.h): the
 * IC exchange, Connect (admin and I/O, refused ones too), Property Get/Set
 * bring-up and shutdown, Identify with the fabrics fields, a write with
 * in-capsule data, a write through R2T/H2CData, a read through C2HData,
 * digests on, a malformed PDU answered with a C2HTermReq, KATO, the
 * Discovery Log Page and some fault knobs. These prove the peer before the
 * TCP host's tests rely on it.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <pnvme/spec.h>
#include <pnvme/tcp_spec.h>

#include "tcp/pdu.h"
#include "tcp_peer.h"

#define HOSTNQN  "nqn.2014-08.org.example:host"
#define WAIT_MS  5000
#define MAX_EV   64
#define CLI_DATA (1u << 20)

/* ------------------------------------------------------------------------ */
/* A blocking raw client                                                     */
/* ------------------------------------------------------------------------ */

struct ev {
	uint8_t type, flags;
	int ddgst;
	union pnvme_tcp_hdr hdr;
};

struct cli {
	int fd;
	struct pnvme_tcp_rx rx;
	struct pnvme_tcp_tx_params tp;
	bool hdgst, ddgst;       /* what the ICResp enabled */
	struct ev ev[MAX_EV];
	unsigned head, tail;
	uint16_t cid;
	uint8_t *data;           /* C2HData lands at data + DATAO */
};

static int cli_hdr(void *arg, struct pnvme_tcp_rx *rx, struct pnvme_tcp_rx_pdu *pdu)
{
	struct cli *c = arg;

	if (pdu->type == PNVME_TCP_ICRESP) {
		c->hdgst = pdu->hdr->icresp.dgst & PNVME_TCP_DGST_HDGST;
		c->ddgst = pdu->hdr->icresp.dgst & PNVME_TCP_DGST_DDGST;
		pnvme_tcp_rx_set_digests(rx, c->hdgst, c->ddgst);
	}
	if (pdu->type == PNVME_TCP_C2H_DATA) {
		const struct pnvme_tcp_c2h_data *d = &pdu->hdr->c2h;

		if ((uint64_t)d->datao + d->datal > CLI_DATA)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_OUT_OF_RANGE, 0);
		pdu->dst = c->data + d->datao;
		pdu->dst_len = d->datal;
	}
	return 0;
}

static int cli_done(void *arg, struct pnvme_tcp_rx *rx, const struct pnvme_tcp_rx_pdu *pdu,
		    int ddgst)
{
	struct cli *c = arg;
	struct ev *e;

	(void)rx;
	assert_true(c->tail - c->head < MAX_EV);
	e = &c->ev[c->tail++ % MAX_EV];
	e->type = pdu->type;
	e->flags = pdu->flags;
	e->ddgst = ddgst;
	memcpy(&e->hdr, pdu->hdr, pdu->hdr->ch.hlen);
	return 0;
}

static const struct pnvme_tcp_rx_ops cli_ops = { .pdu_hdr = cli_hdr, .pdu_done = cli_done };

static struct cli *cli_open(const struct tcp_peer *peer)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET, .sin_port = htons(tcp_peer_port(peer)),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	struct pnvme_tcp_rx_cfg rc = { .host = true, .ops = &cli_ops };
	struct cli *c = calloc(1, sizeof(*c));
	int one = 1;

	assert_non_null(c);
	c->data = calloc(1, CLI_DATA);
	assert_non_null(c->data);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(c->fd >= 0);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	rc.arg = c;
	assert_int_equal(pnvme_tcp_rx_init(&c->rx, &rc), 0);
	return c;
}

static void cli_close(struct cli *c)
{
	close(c->fd);
	free(c->data);
	free(c);
}

static void cli_send(struct cli *c, struct pnvme_tcp_tx_pdu *p)
{
	struct iovec iov[3];
	size_t cnt = (size_t)pnvme_tcp_pdu_iov(p, iov), i = 0;

	while (i < cnt) {
		struct msghdr mh = { .msg_iov = iov + i, .msg_iovlen = cnt - i };
		ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);

		assert_true(n > 0);
		i += pnvme_tcp_iov_advance(iov + i, cnt - i, (size_t)n);
	}
}

/* The next PDU from the peer: 0, -ECONNRESET / -EPIPE (closed), -ETIMEDOUT, or an rx error. */
static int cli_next_ms(struct cli *c, struct ev *out, int ms)
{
	uint8_t buf[4096];

	while (c->head == c->tail) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		ssize_t n;
		int ret;

		if (poll(&pfd, 1, ms) == 0)
			return -ETIMEDOUT;
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		ret = pnvme_tcp_rx_feed(&c->rx, buf, (size_t)n);
		if (ret && c->head == c->tail)
			return ret;
	}
	*out = c->ev[c->head++ % MAX_EV];
	return 0;
}

static int cli_next(struct cli *c, struct ev *out)
{
	return cli_next_ms(c, out, WAIT_MS);
}

static void cli_icreq(struct cli *c, uint8_t dgst)
{
	struct pnvme_tcp_tx_pdu p;
	struct ev e;

	pnvme_tcp_build_icreq(&p, 0, dgst, 3);
	cli_send(c, &p);
	assert_int_equal(cli_next(c, &e), 0);
	assert_int_equal(e.type, PNVME_TCP_ICRESP);
	assert_int_equal(e.hdr.icresp.pfv, 0);
	assert_int_equal(e.hdr.icresp.cpda, 0);
	c->tp.hdgst = c->hdgst;
	c->tp.ddgst = c->ddgst;
}

static void sgl_set(struct pnvme_sqe *sqe, uint8_t id, uint32_t len)
{
	struct pnvme_sgl_desc *sgl = (void *)&sqe->prp1;

	sqe->flags = (uint8_t)(PNVME_SQE_PSDT_SGL_MPTR_CONTIG << PNVME_SQE_PSDT_SHIFT);
	sgl->addr = 0;
	sgl->length = len;
	sgl->id = id;
}

/* Send a command (in-capsule data when data != NULL); returns its CID. */
static uint16_t cli_cmd(struct cli *c, struct pnvme_sqe *sqe, const void *data, uint32_t len)
{
	struct pnvme_tcp_tx_pdu p;

	sqe->cid = c->cid++;
	assert_int_equal(pnvme_tcp_build_capsule_cmd(&p, &c->tp, sqe, data, len), 0);
	cli_send(c, &p);
	return sqe->cid;
}

/* Wait for the CapsuleResp of `cid`; returns its status (no phase bit). */
static uint16_t cli_resp(struct cli *c, uint16_t cid, struct pnvme_cqe *cqe)
{
	struct ev e;

	assert_int_equal(cli_next(c, &e), 0);
	assert_int_equal(e.type, PNVME_TCP_CAPSULE_RESP);
	assert_int_equal(e.hdr.resp.cqe.cid, cid);
	if (cqe)
		*cqe = e.hdr.resp.cqe;
	return PNVME_CQE_STATUS(&e.hdr.resp.cqe);
}

static uint8_t connect_cattr; /* CATTR of the next Connect */

static uint16_t cli_connect(struct cli *c, uint16_t qid, uint16_t cntlid, const char *subnqn,
			    struct pnvme_cqe *cqe)
{
	struct pnvme_fabrics_connect_data d = { .cntlid = cntlid };
	struct pnvme_fabrics_connect cmd = {
		.opc = PNVME_OPC_FABRICS, .fctype = PNVME_FCTYPE_CONNECT, .qid = qid,
		.sqsize = 31, .kato = 0, .cattr = connect_cattr,
	};
	struct pnvme_sqe sqe;

	snprintf(d.subnqn, sizeof(d.subnqn), "%s", subnqn);
	snprintf(d.hostnqn, sizeof(d.hostnqn), "%s", HOSTNQN);
	memcpy(&sqe, &cmd, sizeof(sqe));
	sgl_set(&sqe, PNVME_SGL_ID_INCAPSULE, sizeof(d));
	return cli_resp(c, cli_cmd(c, &sqe, &d, sizeof(d)), cqe);
}

static uint64_t cli_prop_get(struct cli *c, uint32_t ofst, bool eight)
{
	struct pnvme_fabrics_prop_get g = {
		.opc = PNVME_OPC_FABRICS, .fctype = PNVME_FCTYPE_PROPERTY_GET,
		.attrib = eight ? PNVME_PROP_SIZE_8 : PNVME_PROP_SIZE_4, .ofst = ofst,
	};
	struct pnvme_sqe sqe;
	struct pnvme_cqe cqe;

	memcpy(&sqe, &g, sizeof(sqe));
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, 0);
	assert_int_equal(cli_resp(c, cli_cmd(c, &sqe, NULL, 0), &cqe), 0);
	return cqe.dw0 | (uint64_t)cqe.dw1 << 32;
}

static void cli_prop_set(struct cli *c, uint32_t ofst, uint32_t v)
{
	struct pnvme_fabrics_prop_set s = {
		.opc = PNVME_OPC_FABRICS, .fctype = PNVME_FCTYPE_PROPERTY_SET,
		.attrib = PNVME_PROP_SIZE_4, .ofst = ofst, .value = v,
	};
	struct pnvme_sqe sqe;

	memcpy(&sqe, &s, sizeof(sqe));
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, 0);
	assert_int_equal(cli_resp(c, cli_cmd(c, &sqe, NULL, 0), NULL), 0);
}

#define CC_ENABLE (PNVME_SET(PNVME_CC_EN, 1u) | PNVME_SET(PNVME_CC_IOSQES, 6u) | \
		   PNVME_SET(PNVME_CC_IOCQES, 4u))

/* ICReq, admin Connect, CC.EN; returns the controller id. */
static uint16_t cli_admin_up(struct cli *c, uint8_t dgst, const char *subnqn)
{
	struct pnvme_cqe cqe;

	cli_icreq(c, dgst);
	assert_int_equal(cli_connect(c, 0, PNVME_CONNECT_CNTLID_DYNAMIC, subnqn, &cqe), 0);
	cli_prop_set(c, PNVME_REG_CC, CC_ENABLE);
	assert_int_equal(cli_prop_get(c, PNVME_REG_CSTS, false) & 1u, 1u);
	return PNVME_CONNECT_RESP_CNTLID(cqe.dw0);
}

/* Read C2HData PDUs of `cid` into c->data until its CapsuleResp; returns its status. */
static uint16_t cli_read_data(struct cli *c, uint16_t cid, uint32_t len, unsigned *npdu)
{
	uint32_t got = 0;
	struct ev e;

	*npdu = 0;
	for (;;) {
		assert_int_equal(cli_next(c, &e), 0);
		if (e.type == PNVME_TCP_CAPSULE_RESP) {
			assert_int_equal(e.hdr.resp.cqe.cid, cid);
			assert_int_equal(got, len);
			return PNVME_CQE_STATUS(&e.hdr.resp.cqe);
		}
		assert_int_equal(e.type, PNVME_TCP_C2H_DATA);
		assert_int_equal(e.hdr.c2h.cccid, cid);
		assert_int_equal(e.hdr.c2h.datao, got);
		assert_int_equal(e.ddgst, 0);
		got += e.hdr.c2h.datal;
		(*npdu)++;
		assert_int_equal(!!(e.flags & PNVME_TCP_F_LAST_PDU), got == len);
	}
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 7u + seed + (i >> 9));
}

static void rw_sqe(struct pnvme_sqe *sqe, uint8_t opc, uint64_t slba, uint32_t nlb)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opc = opc;
	sqe->nsid = 1;
	sqe->cdw10 = (uint32_t)slba;
	sqe->cdw11 = (uint32_t)(slba >> 32);
	sqe->cdw12 = nlb - 1u;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */
/* ------------------------------------------------------------------------ */

/* Bring-up as a fabrics host does it: IC, Connect, CAP, CC.EN -> RDY, Identify, shutdown. */
static void test_admin_bring_up(void **state)
{
	struct tcp_peer_cfg cfg = { .queue_size = 64, .mdts = 5, .cntlid_start = 7 };
	struct tcp_peer *peer = tcp_peer_start(&cfg);
	struct tcp_peer_stats st;
	struct pnvme_cqe cqe;
	struct pnvme_sqe sqe = { .opc = PNVME_ADM_IDENTIFY, .cdw10 = PNVME_ID_CNS_CTRL };
	const struct pnvme_id_ctrl *id;
	uint64_t cap;
	unsigned npdu;
	uint32_t v;
	struct cli *c;

	(void)state;
	assert_non_null(peer);
	assert_true(tcp_peer_port(peer) != 0);
	c = cli_open(peer);
	cli_icreq(c, 0);
	assert_false(c->hdgst);

	/* Nothing but Connect before Connect. */
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, 4096);
	assert_int_equal(PNVME_STATUS_CODE(cli_resp(c, cli_cmd(c, &sqe, NULL, 0), NULL)),
			 PNVME_SC_INVALID_OPCODE);

	assert_int_equal(cli_connect(c, 0, PNVME_CONNECT_CNTLID_DYNAMIC, tcp_peer_subnqn(peer), &cqe),
			 0);
	assert_int_equal(PNVME_CONNECT_RESP_CNTLID(cqe.dw0), 7);
	cap = cli_prop_get(c, PNVME_REG_CAP, true);
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_MQES), 63);
	assert_int_equal(PNVME_GET(cap, PNVME_CAP_CSS) & PNVME_CAP_CSS_NVM, PNVME_CAP_CSS_NVM);
	assert_int_equal(cli_prop_get(c, PNVME_REG_VS, false), PNVME_VS(2, 0, 0));
	assert_int_equal(cli_prop_get(c, PNVME_REG_CSTS, false), 0);

	/* Identify before CC.EN: command sequence error. */
	assert_int_equal(PNVME_STATUS_CODE(cli_resp(c, cli_cmd(c, &sqe, NULL, 0), NULL)),
			 PNVME_SC_CMD_SEQ_ERROR);
	cli_prop_set(c, PNVME_REG_CC, CC_ENABLE);
	assert_int_equal(cli_prop_get(c, PNVME_REG_CSTS, false), 1);

	/* Identify Controller with the fabrics fields, as two C2HData PDUs of 4 KiB... */
	assert_int_equal(cli_read_data(c, cli_cmd(c, &sqe, NULL, 0), 4096, &npdu), 0);
	assert_int_equal(npdu, 1);
	id = (const void *)c->data;
	assert_int_equal(id->cntlid, 7);
	assert_int_equal(id->mdts, 5);
	assert_int_equal(id->cntrltype, 1);
	assert_int_equal(id->maxcmd, 64);
	assert_true(id->sgls & 1u);
	assert_string_equal(id->subnqn, TCP_PEER_DEFAULT_SUBNQN);
	memcpy(&v, c->data + 1792, 4);
	assert_int_equal(v, (8192 + 64) / 16);  /* IOCCSZ */
	memcpy(&v, c->data + 1796, 4);
	assert_int_equal(v, 1);                 /* IORCSZ */
	assert_int_equal(c->data[1800] | c->data[1801], 0); /* ICDOFF */

	/* Identify Namespace. */
	sqe.cdw10 = PNVME_ID_CNS_NS;
	sqe.nsid = 1;
	assert_int_equal(cli_read_data(c, cli_cmd(c, &sqe, NULL, 0), 4096, &npdu), 0);
	assert_int_equal(((const struct pnvme_id_ns *)c->data)->nsze, 2048);

	/* Normal shutdown: CSTS.SHST complete. */
	cli_prop_set(c, PNVME_REG_CC, CC_ENABLE | PNVME_SET(PNVME_CC_SHN, PNVME_CC_SHN_NORMAL));
	assert_int_equal(PNVME_GET(cli_prop_get(c, PNVME_REG_CSTS, false), PNVME_CSTS_SHST),
			 PNVME_CSTS_SHST_COMPLETE);
	tcp_peer_get_stats(peer, &st);
	assert_true(st.shutdown);
	assert_int_equal(st.connects_ok, 1);
	assert_int_equal(st.admin_cmds[PNVME_ADM_IDENTIFY], 3);
	assert_int_equal(st.fabrics_cmds[PNVME_FCTYPE_PROPERTY_GET], 5);
	assert_int_equal(PNVME_GET(st.last_cc, PNVME_CC_SHN), PNVME_CC_SHN_NORMAL);
	cli_close(c);
	tcp_peer_stop(peer);
}

/* Refused Connects: wrong subsystem, host not allowed, a fault's status, unknown cntlid. */
static void test_connect_refused(void **state)
{
	struct tcp_peer_cfg cfg = { .hostnqn = "nqn.2014-08.org.example:other" };
	struct tcp_peer *peer = tcp_peer_start(&cfg);
	struct pnvme_cqe cqe;
	uint16_t s;
	struct cli *c;

	(void)state;
	assert_non_null(peer);
	c = cli_open(peer);
	cli_icreq(c, 0);
	s = cli_connect(c, 0, PNVME_CONNECT_CNTLID_DYNAMIC, "nqn.2014-08.org.example:nope", &cqe);
	assert_int_equal(PNVME_STATUS_SCT(s), PNVME_SCT_CMD);
	assert_int_equal(PNVME_STATUS_SC(s), PNVME_SC_CONNECT_INVALID_PARAM);
	assert_true(PNVME_STATUS_IS_DNR(s));
	assert_int_equal(cqe.dw0, (1u << 16) | 256u); /* IATTR 1 (data), IPO 256 (SUBNQN) */
	s = cli_connect(c, 0, PNVME_CONNECT_CNTLID_DYNAMIC, tcp_peer_subnqn(peer), NULL);
	assert_int_equal(PNVME_STATUS_SC(s), PNVME_SC_CONNECT_INVALID_HOST);
	cli_close(c);

	tcp_peer_stop(peer);
	peer = tcp_peer_start(NULL);
	assert_non_null(peer);
	tcp_peer_set_fault(peer, TCP_PEER_FAULT_CONNECT_STATUS, 1, 0, PNVME_SC_CONNECT_CTRL_BUSY);
	c = cli_open(peer);
	cli_icreq(c, 0);
	s = cli_connect(c, 0, PNVME_CONNECT_CNTLID_DYNAMIC, tcp_peer_subnqn(peer), NULL);
	assert_int_equal(PNVME_STATUS_SCT(s), PNVME_SCT_CMD);
	assert_int_equal(PNVME_STATUS_SC(s), PNVME_SC_CONNECT_CTRL_BUSY);
	/* Once: the next Connect works. I/O Connect to a controller that does not exist fails. */
	assert_int_equal(cli_connect(c, 0, PNVME_CONNECT_CNTLID_DYNAMIC, tcp_peer_subnqn(peer), NULL),
			 0);
	cli_close(c);
	c = cli_open(peer);
	cli_icreq(c, 0);
	s = cli_connect(c, 1, 0x1234, tcp_peer_subnqn(peer), &cqe);
	assert_int_equal(PNVME_STATUS_SC(s), PNVME_SC_CONNECT_INVALID_PARAM);
	assert_int_equal(cqe.dw0, (1u << 16) | 16u); /* IPO: CNTLID of the data */
	cli_close(c);
	tcp_peer_stop(peer);
}

/*
 * I/O: a write with in-capsule data, a write through R2T/H2CData (several
 * R2Ts, each split at MAXH2CDATA), a read through several C2HData PDUs;
 * digests off (state NULL) or on.
 */
static void test_io(void **state)
{
	bool dg = *state != NULL;
	struct tcp_peer_cfg cfg = { .maxh2cdata = 4096, .r2t_len = 8192, .maxr2t = 2,
				    .c2h_max = 8192, .lba_size = 4096, .nblocks = 256 };
	struct tcp_peer *peer = tcp_peer_start(&cfg);
	struct tcp_peer_stats st;
	struct pnvme_sqe sqe;
	struct cli *a, *q;
	uint16_t cntlid, cid;
	uint8_t *w = malloc(65536);
	uint32_t asked = 0, sent = 0;
	unsigned npdu, outstanding = 0, max_out = 0;
	size_t nslen;
	uint8_t *ns;

	assert_non_null(peer);
	assert_non_null(w);
	ns = tcp_peer_ns(peer, &nslen);
	assert_int_equal(nslen, 256u * 4096u);
	a = cli_open(peer);
	cntlid = cli_admin_up(a, dg ? PNVME_TCP_DGST_HDGST | PNVME_TCP_DGST_DDGST : 0,
			      tcp_peer_subnqn(peer));
	assert_int_equal(a->hdgst, dg);
	assert_int_equal(a->ddgst, dg);

	q = cli_open(peer);
	cli_icreq(q, dg ? PNVME_TCP_DGST_HDGST | PNVME_TCP_DGST_DDGST : 0);
	assert_int_equal(cli_connect(q, 1, cntlid, tcp_peer_subnqn(peer), NULL), 0);

	/* In-capsule: 8 KiB (the default IOCCSZ holds 8 KiB of data). */
	fill(w, 8192, 1);
	rw_sqe(&sqe, PNVME_NVM_WRITE, 3, 2);
	sgl_set(&sqe, PNVME_SGL_ID_INCAPSULE, 8192);
	assert_int_equal(cli_resp(q, cli_cmd(q, &sqe, w, 8192), NULL), 0);
	assert_memory_equal(ns + 3 * 4096, w, 8192);

	/* R2T: 40 KiB -> 5 R2Ts of 8 KiB, at most 2 outstanding, H2CData of 4 KiB. */
	fill(w, 40960, 2);
	rw_sqe(&sqe, PNVME_NVM_WRITE, 10, 10);
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, 40960);
	cid = cli_cmd(q, &sqe, NULL, 0);
	while (sent < 40960) {
		struct pnvme_tcp_tx_pdu p;
		struct ev e;

		assert_int_equal(cli_next(q, &e), 0);
		assert_int_equal(e.type, PNVME_TCP_R2T);
		assert_int_equal(e.hdr.r2t.cccid, cid);
		assert_int_equal(e.hdr.r2t.r2to, asked);
		assert_int_equal(e.hdr.r2t.r2tl, 8192);
		asked += e.hdr.r2t.r2tl;
		outstanding++;
		max_out = outstanding > max_out ? outstanding : max_out;
		/* Answer the oldest window once two are out (or when all are asked). */
		if (outstanding < 2 && asked < 40960)
			continue;
		for (uint32_t end = sent + 8192; sent < end; sent += 4096) {
			assert_int_equal(pnvme_tcp_build_h2c_data(&p, &q->tp, cid, e.hdr.r2t.ttag, sent,
								  w + sent, 4096, sent + 4096 == end), 0);
			cli_send(q, &p);
		}
		outstanding--;
		if (asked == 40960 && sent < 40960) {
			/* The last window: its R2T is already here. */
			for (uint32_t end = sent + 8192; sent < end; sent += 4096) {
				assert_int_equal(pnvme_tcp_build_h2c_data(&p, &q->tp, cid,
									  e.hdr.r2t.ttag, sent,
									  w + sent, 4096,
									  sent + 4096 == end), 0);
				cli_send(q, &p);
			}
		}
	}
	assert_int_equal(max_out, 2);
	assert_int_equal(cli_resp(q, cid, NULL), 0);
	assert_memory_equal(ns + 10 * 4096, w, 40960);

	/* Read 40 KiB back: C2HData of 8 KiB each, then the CapsuleResp. */
	memset(q->data, 0, 40960);
	rw_sqe(&sqe, PNVME_NVM_READ, 10, 10);
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, 40960);
	assert_int_equal(cli_read_data(q, cli_cmd(q, &sqe, NULL, 0), 40960, &npdu), 0);
	assert_int_equal(npdu, 5);
	assert_memory_equal(q->data, w, 40960);

	/* Out of range LBA; SGL length not matching NLB. */
	rw_sqe(&sqe, PNVME_NVM_READ, 255, 2);
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, 8192);
	assert_int_equal(PNVME_STATUS_CODE(cli_resp(q, cli_cmd(q, &sqe, NULL, 0), NULL)),
			 PNVME_SC_LBA_RANGE);
	rw_sqe(&sqe, PNVME_NVM_READ, 0, 2);
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, 4096);
	assert_int_equal(PNVME_STATUS_CODE(cli_resp(q, cli_cmd(q, &sqe, NULL, 0), NULL)),
			 PNVME_SC_SGL_INVALID_DATA);

	tcp_peer_get_stats(peer, &st);
	assert_int_equal(st.io_cmds[PNVME_NVM_WRITE], 2);
	assert_int_equal(st.io_cmds[PNVME_NVM_READ], 3);
	assert_int_equal(st.io_per_qid[1], 5);
	assert_int_equal(st.r2ts, 5);
	assert_int_equal(st.h2c_pdus, 10);
	assert_int_equal(st.blocks_written, 12);
	assert_int_equal(st.blocks_read, 10);
	assert_int_equal(st.ddgst_errors, 0);
	assert_int_equal(st.rx_errors, 0);

	/* Closing the admin queue takes the controller, and its I/O queue, away. */
	cli_close(a);
	{
		struct ev e;

		assert_int_equal(cli_next(q, &e), -EPIPE);
	}
	cli_close(q);
	free(w);
	tcp_peer_stop(peer);
}

/* A malformed PDU from the host: C2HTermReq with FES/FEI, then the connection closes. */
static void test_strict_receiver(void **state)
{
	struct tcp_peer *peer = tcp_peer_start(NULL);
	struct pnvme_tcp_tx_pdu p;
	struct pnvme_sqe sqe = { .opc = PNVME_ADM_KEEP_ALIVE };
	struct tcp_peer_stats st;
	struct ev e;
	struct cli *c;

	(void)state;
	assert_non_null(peer);
	c = cli_open(peer);
	cli_admin_up(c, 0, tcp_peer_subnqn(peer));
	assert_int_equal(pnvme_tcp_build_capsule_cmd(&p, &c->tp, &sqe, NULL, 0), 0);
	p.hdr.ch.hlen = 64; /* a CapsuleCmd's HLEN is 72 */
	cli_send(c, &p);
	assert_int_equal(cli_next(c, &e), 0);
	assert_int_equal(e.type, PNVME_TCP_C2H_TERM_REQ);
	assert_int_equal(e.hdr.term.fes, PNVME_TCP_FES_INVALID_HEADER_FIELD);
	assert_int_equal(e.hdr.term.fei[0], offsetof(struct pnvme_tcp_ch, hlen));
	assert_int_equal(cli_next(c, &e), -EPIPE);
	tcp_peer_get_stats(peer, &st);
	assert_int_equal(st.rx_errors, 1);
	assert_int_equal(st.last_rx_reason, PNVME_TCP_RX_BAD_HLEN);
	cli_close(c);
	tcp_peer_stop(peer);
}

/* Fault knobs: wrong CCCID, duplicate response, corrupt header digest, close after N, refuse. */
static void test_faults(void **state)
{
	struct tcp_peer *peer = tcp_peer_start(NULL);
	struct pnvme_sqe sqe = { .opc = PNVME_ADM_KEEP_ALIVE };
	struct tcp_peer_stats st;
	struct ev e;
	uint16_t cid;
	struct cli *c;

	(void)state;
	assert_non_null(peer);
	c = cli_open(peer);
	cli_admin_up(c, PNVME_TCP_DGST_HDGST, tcp_peer_subnqn(peer));
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, 0);

	tcp_peer_set_fault(peer, TCP_PEER_FAULT_WRONG_CCCID, 1, 0, 0);
	cid = cli_cmd(c, &sqe, NULL, 0);
	assert_int_equal(cli_next(c, &e), 0);
	assert_int_equal(e.hdr.resp.cqe.cid, cid ^ 0x8000u);

	tcp_peer_set_fault(peer, TCP_PEER_FAULT_DUP_RESP, 1, TCP_PEER_ANY_QID, 0);
	cid = cli_cmd(c, &sqe, NULL, 0);
	assert_int_equal(cli_resp(c, cid, NULL), 0);
	assert_int_equal(cli_resp(c, cid, NULL), 0);

	/* Armed for queue 1 only: the admin queue is not touched. */
	tcp_peer_set_fault(peer, TCP_PEER_FAULT_HDGST, 1, 1, 0);
	assert_int_equal(cli_resp(c, cli_cmd(c, &sqe, NULL, 0), NULL), 0);
	tcp_peer_set_fault(peer, TCP_PEER_FAULT_HDGST, 1, 0, 0);
	cli_cmd(c, &sqe, NULL, 0);
	assert_int_equal(cli_next(c, &e), -EBADMSG);
	assert_int_equal(c->rx.error.reason, PNVME_TCP_RX_HDGST);
	cli_close(c);

	/* Close after one more command: the second is met with a reset. */
	c = cli_open(peer);
	cli_icreq(c, 0);
	tcp_peer_set_fault(peer, TCP_PEER_FAULT_CLOSE_AFTER, 1, TCP_PEER_ANY_QID, 1);
	assert_int_equal(cli_connect(c, 0, PNVME_CONNECT_CNTLID_DYNAMIC, tcp_peer_subnqn(peer), NULL),
			 0);
	cli_cmd(c, &sqe, NULL, 0);
	assert_int_equal(cli_next(c, &e), -ECONNRESET);
	cli_close(c);

	/* Refused at accept: a reset before anything. */
	tcp_peer_set_fault(peer, TCP_PEER_FAULT_REFUSE_ACCEPT, 1, TCP_PEER_ANY_QID, 0);
	c = cli_open(peer);
	assert_int_equal(cli_next(c, &e), -ECONNRESET);
	cli_close(c);

	/* Swallowed: no answer (the client times out), the peer saw it. */
	tcp_peer_get_stats(peer, &st);
	assert_int_equal(st.faults_fired[TCP_PEER_FAULT_WRONG_CCCID], 1);
	assert_int_equal(st.faults_fired[TCP_PEER_FAULT_HDGST], 1);
	assert_int_equal(st.faults_fired[TCP_PEER_FAULT_CLOSE_AFTER], 1);
	assert_int_equal(st.faults_fired[TCP_PEER_FAULT_REFUSE_ACCEPT], 1);
	assert_int_equal(st.conns_accepted, 3);
	tcp_peer_stop(peer);
}

static bool kato_expired(const struct tcp_peer_stats *st, void *arg)
{
	(void)arg;
	return st->kato_expired > 0;
}

/* KATO enforced: an admin queue without Keep Alives is closed; Keep Alives hold it. */
static void test_kato(void **state)
{
	struct tcp_peer_cfg cfg = { .kato_enforce = true };
	struct tcp_peer *peer = tcp_peer_start(&cfg);
	struct pnvme_sqe sqe = { .opc = PNVME_ADM_SET_FEATURES, .cdw10 = PNVME_FEAT_KATO,
				 .cdw11 = 1000 };
	struct tcp_peer_stats st;
	struct ev e;
	struct cli *c;

	(void)state;
	assert_non_null(peer);
	c = cli_open(peer);
	cli_admin_up(c, 0, tcp_peer_subnqn(peer));
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, 0);
	assert_int_equal(cli_resp(c, cli_cmd(c, &sqe, NULL, 0), NULL), 0);
	/* Keep Alives every 100 ms (KATO 1 s) for a while: still connected. */
	for (int i = 0; i < 5; i++) {
		struct pnvme_sqe ka = { .opc = PNVME_ADM_KEEP_ALIVE };

		sgl_set(&ka, PNVME_SGL_ID_TRANSPORT, 0);
		assert_int_equal(cli_resp(c, cli_cmd(c, &ka, NULL, 0), NULL), 0);
		usleep(100 * 1000);
	}
	tcp_peer_get_stats(peer, &st);
	assert_int_equal(st.kato_expired, 0);
	assert_int_equal(st.keep_alives, 5);
	/* Then silence: the controller goes. */
	assert_int_equal(tcp_peer_wait(peer, kato_expired, NULL, WAIT_MS), 0);
	assert_int_equal(cli_next(c, &e), -EPIPE);
	cli_close(c);
	tcp_peer_stop(peer);
}

/* The discovery controller: Identify says so; the log page carries GENCTR and the entries. */
static void test_discovery(void **state)
{
	const struct tcp_peer_disc_entry ents[2] = {
		{ .trtype = 3, .adrfam = 1, .subtype = 2, .portid = 1, .cntlid = 0xffff,
		  .trsvcid = "4420", .traddr = "127.0.0.1", .subnqn = "nqn.2014-08.org.example:a" },
		{ .trtype = 3, .adrfam = 1, .subtype = 2, .portid = 2, .cntlid = 0xffff,
		  .trsvcid = "4421", .traddr = "127.0.0.1", .subnqn = "nqn.2014-08.org.example:b" },
	};
	struct tcp_peer_cfg cfg = { .disc = ents, .n_disc = 2, .genctr = 42 };
	struct tcp_peer *peer = tcp_peer_start(&cfg);
	struct pnvme_sqe sqe = { .opc = PNVME_ADM_IDENTIFY, .cdw10 = PNVME_ID_CNS_CTRL };
	uint32_t len = 3 * 1024;
	uint64_t v;
	unsigned npdu;
	struct cli *c;

	(void)state;
	assert_non_null(peer);
	c = cli_open(peer);
	cli_admin_up(c, 0, PNVME_DISCOVERY_NQN);
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, 4096);
	assert_int_equal(cli_read_data(c, cli_cmd(c, &sqe, NULL, 0), 4096, &npdu), 0);
	assert_int_equal(((const struct pnvme_id_ctrl *)c->data)->cntrltype, 2);

	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = PNVME_ADM_GET_LOG_PAGE;
	sqe.cdw10 = TCP_PEER_LOG_DISCOVERY | ((len / 4 - 1) << PNVME_GLP_NUMDL_SHIFT);
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, len);
	assert_int_equal(cli_read_data(c, cli_cmd(c, &sqe, NULL, 0), len, &npdu), 0);
	memcpy(&v, c->data, 8);
	assert_int_equal(v, 42);
	memcpy(&v, c->data + 8, 8);
	assert_int_equal(v, 2);
	assert_int_equal(c->data[1024], 3);
	assert_string_equal((const char *)c->data + 2048 + 32, "4421");
	assert_string_equal((const char *)c->data + 2048 + 256, "nqn.2014-08.org.example:b");
	assert_string_equal((const char *)c->data + 1024 + 512, "127.0.0.1");
	cli_close(c);
	tcp_peer_stop(peer);
}

/* An admin queue and I/O queue 1 of a controller of `peer`. */
static void cli_pair(struct tcp_peer *peer, uint8_t dgst, struct cli **a, struct cli **q)
{
	uint16_t cntlid;

	*a = cli_open(peer);
	cntlid = cli_admin_up(*a, dgst, tcp_peer_subnqn(peer));
	*q = cli_open(peer);
	cli_icreq(*q, dgst);
	assert_int_equal(cli_connect(*q, 1, cntlid, tcp_peer_subnqn(peer), NULL), 0);
}

/*
 * More commands: Number of Queues and the queue limit, Abort, Flush, Write
 * Zeroes, C2HData SUCCESS (SQ flow control off), a host data digest error.
 */
static void test_more_commands(void **state)
{
	struct tcp_peer_cfg cfg = { .max_queues = 2, .c2h_success = true };
	struct tcp_peer *peer = tcp_peer_start(&cfg);
	struct pnvme_sqe sqe = { .opc = PNVME_ADM_SET_FEATURES, .cdw10 = PNVME_FEAT_NUM_QUEUES,
				 .cdw11 = 0x00070007 };
	struct pnvme_tcp_tx_pdu p;
	struct pnvme_cqe cqe;
	struct cli *a, *q, *q3;
	uint8_t w[1024];
	uint8_t *ns;
	struct ev e;
	uint16_t s;

	(void)state;
	assert_non_null(peer);
	ns = tcp_peer_ns(peer, NULL);
	connect_cattr = 0x04; /* SQ flow control disabled: the peer may use SUCCESS */
	cli_pair(peer, PNVME_TCP_DGST_DDGST, &a, &q);
	connect_cattr = 0;
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, 0);
	assert_int_equal(cli_resp(a, cli_cmd(a, &sqe, NULL, 0), &cqe), 0);
	assert_int_equal(cqe.dw0, 0x00010001); /* 2 queues each, 0's based */
	q3 = cli_open(peer);
	cli_icreq(q3, 0);
	s = cli_connect(q3, 3, 1, tcp_peer_subnqn(peer), &cqe);
	assert_int_equal(PNVME_STATUS_SC(s), PNVME_SC_CONNECT_INVALID_PARAM);
	assert_int_equal(cqe.dw0, 42); /* IATTR 0 (SQE), IPO 42 (QID) */
	cli_close(q3);

	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = PNVME_ADM_ABORT;
	sqe.cdw10 = 1u | (5u << 16);
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, 0);
	assert_int_equal(cli_resp(a, cli_cmd(a, &sqe, NULL, 0), &cqe), 0);
	assert_int_equal(cqe.dw0 & 1u, 1u);

	/* Write 2 blocks in-capsule, zero the first, flush, read back with SUCCESS. */
	fill(w, sizeof(w), 9);
	rw_sqe(&sqe, PNVME_NVM_WRITE, 0, 2);
	sgl_set(&sqe, PNVME_SGL_ID_INCAPSULE, sizeof(w));
	assert_int_equal(cli_resp(q, cli_cmd(q, &sqe, w, sizeof(w)), NULL), 0);
	rw_sqe(&sqe, PNVME_NVM_WRITE_ZEROES, 0, 1);
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, 0);
	assert_int_equal(cli_resp(q, cli_cmd(q, &sqe, NULL, 0), NULL), 0);
	rw_sqe(&sqe, PNVME_NVM_FLUSH, 0, 1);
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, 0);
	assert_int_equal(cli_resp(q, cli_cmd(q, &sqe, NULL, 0), NULL), 0);
	memset(w, 0, 512);
	assert_memory_equal(ns, w, sizeof(w));
	rw_sqe(&sqe, PNVME_NVM_READ, 0, 2);
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, sizeof(w));
	cli_cmd(q, &sqe, NULL, 0);
	assert_int_equal(cli_next(q, &e), 0);
	assert_int_equal(e.type, PNVME_TCP_C2H_DATA);
	assert_int_equal(e.flags & (PNVME_TCP_F_LAST_PDU | PNVME_TCP_F_SUCCESS),
			 PNVME_TCP_F_LAST_PDU | PNVME_TCP_F_SUCCESS);
	assert_memory_equal(q->data, w, sizeof(w));
	assert_int_equal(cli_next_ms(q, &e, 100), -ETIMEDOUT); /* no CapsuleResp */

	/* A wrong data digest on in-capsule data: Transient Transport Error, link kept. */
	rw_sqe(&sqe, PNVME_NVM_WRITE, 0, 1);
	sgl_set(&sqe, PNVME_SGL_ID_INCAPSULE, 512);
	sqe.cid = 77;
	assert_int_equal(pnvme_tcp_build_capsule_cmd(&p, &q->tp, &sqe, w, 512), 0);
	p.ddgst ^= 1;
	cli_send(q, &p);
	s = cli_resp(q, 77, NULL);
	assert_int_equal(PNVME_STATUS_CODE(s), PNVME_SC_TRANSIENT_TR_ERR);
	cli_close(q);
	cli_close(a);
	tcp_peer_stop(peer);
}

struct spoil_case {
	enum tcp_peer_fault fault;
	uint8_t reason;          /* what the client's receiver says */
	bool    read;            /* on a read's C2HData, else a Keep Alive's CapsuleResp */
	uint8_t dgst;
};

/* Each PDU-spoiling fault, seen by the client's receiver as the matching error. */
static void test_spoiled_pdus(void **state)
{
	static const struct spoil_case cases[] = {
		{ TCP_PEER_FAULT_BAD_PDU_TYPE, PNVME_TCP_RX_BAD_TYPE, false, 0 },
		{ TCP_PEER_FAULT_BAD_HLEN, PNVME_TCP_RX_BAD_HLEN, false, 0 },
		{ TCP_PEER_FAULT_BAD_PLEN, PNVME_TCP_RX_BAD_PLEN, false, 0 },
		{ TCP_PEER_FAULT_BAD_PDO, PNVME_TCP_RX_BAD_PDO, true, 0 },
		{ TCP_PEER_FAULT_HDGST, PNVME_TCP_RX_HDGST, true, PNVME_TCP_DGST_HDGST },
		{ TCP_PEER_FAULT_C2H_OUT_OF_RANGE, PNVME_TCP_RX_OUT_OF_RANGE, true, 0 },
	};
	struct tcp_peer *peer = tcp_peer_start(NULL);

	(void)state;
	assert_non_null(peer);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct spoil_case *k = &cases[i];
		struct pnvme_sqe sqe;
		struct cli *a, *q;
		struct ev e;
		int ret;

		cli_pair(peer, k->dgst, &a, &q);
		tcp_peer_set_fault(peer, k->fault, 1, 1, 0);
		if (k->read)
			rw_sqe(&sqe, PNVME_NVM_READ, 0, 1);
		else
			rw_sqe(&sqe, PNVME_NVM_FLUSH, 0, 1);
		sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, k->read ? 512 : 0);
		/* OUT_OF_RANGE: the client checks C2HData against its own 1 MiB only. */
		if (k->fault == TCP_PEER_FAULT_C2H_OUT_OF_RANGE) {
			cli_cmd(q, &sqe, NULL, 0);
			assert_int_equal(cli_next(q, &e), 0);
			assert_int_equal(e.type, PNVME_TCP_C2H_DATA);
			assert_int_equal(e.hdr.c2h.datao, 512); /* past the 512-byte command */
		} else {
			cli_cmd(q, &sqe, NULL, 0);
			ret = cli_next(q, &e);
			assert_true(ret < 0);
			assert_int_equal(q->rx.error.reason, k->reason);
		}
		cli_close(q);
		cli_close(a);
	}
	tcp_peer_stop(peer);
}

/* Faults that change the conversation: R2T for a read, TermReq, swallow, data digest, PFV. */
static void test_conversation_faults(void **state)
{
	struct tcp_peer *peer = tcp_peer_start(NULL);
	struct pnvme_sqe sqe;
	struct cli *a, *q;
	struct ev e;
	unsigned npdu;

	(void)state;
	assert_non_null(peer);
	cli_pair(peer, PNVME_TCP_DGST_DDGST, &a, &q);
	rw_sqe(&sqe, PNVME_NVM_READ, 0, 1);
	sgl_set(&sqe, PNVME_SGL_ID_TRANSPORT, 512);

	tcp_peer_set_fault(peer, TCP_PEER_FAULT_R2T_FOR_READ, 1, 1, 0);
	cli_cmd(q, &sqe, NULL, 0);
	assert_int_equal(cli_next(q, &e), 0);
	assert_int_equal(e.type, PNVME_TCP_R2T);
	assert_int_equal(cli_read_data(q, sqe.cid, 512, &npdu), 0);

	tcp_peer_set_fault(peer, TCP_PEER_FAULT_DDGST, 1, 1, 0);
	cli_cmd(q, &sqe, NULL, 0);
	assert_int_equal(cli_next(q, &e), 0);
	assert_int_equal(e.type, PNVME_TCP_C2H_DATA);
	assert_int_equal(e.ddgst, -EBADMSG);
	assert_int_equal(cli_resp(q, sqe.cid, NULL), 0);

	tcp_peer_set_fault(peer, TCP_PEER_FAULT_SWALLOW, 1, 1, 0);
	cli_cmd(q, &sqe, NULL, 0);
	assert_int_equal(cli_next_ms(q, &e, 200), -ETIMEDOUT);
	assert_int_equal(cli_read_data(q, cli_cmd(q, &sqe, NULL, 0), 512, &npdu), 0);

	tcp_peer_set_fault(peer, TCP_PEER_FAULT_TERM_REQ, 1, 1, PNVME_TCP_FES_DATA_OUT_OF_RANGE);
	cli_cmd(q, &sqe, NULL, 0);
	assert_int_equal(cli_next(q, &e), 0);
	assert_int_equal(e.type, PNVME_TCP_C2H_TERM_REQ);
	assert_int_equal(e.hdr.term.fes, PNVME_TCP_FES_DATA_OUT_OF_RANGE);
	assert_int_equal(cli_next(q, &e), -EPIPE);
	cli_close(q);
	cli_close(a);

	tcp_peer_set_fault(peer, TCP_PEER_FAULT_ICRESP_PFV, 1, TCP_PEER_ANY_QID, 0);
	a = cli_open(peer);
	{
		struct pnvme_tcp_tx_pdu p;

		pnvme_tcp_build_icreq(&p, 0, 0, 0);
		cli_send(a, &p);
	}
	assert_int_equal(cli_next(a, &e), -EOPNOTSUPP);
	assert_int_equal(a->rx.error.reason, PNVME_TCP_RX_UNSUPPORTED);
	cli_close(a);
	tcp_peer_stop(peer);
}

static bool no_conns(const struct tcp_peer_stats *st, void *arg)
{
	(void)arg;
	return st->conns_open == 0;
}

/* tcp_peer_kill_connections(): every connection reset; the peer still accepts. */
static void test_kill(void **state)
{
	struct tcp_peer *peer = tcp_peer_start(NULL);
	struct cli *a, *q;
	struct ev e;

	(void)state;
	assert_non_null(peer);
	cli_pair(peer, 0, &a, &q);
	assert_int_equal(tcp_peer_kill_connections(peer), 2);
	assert_int_equal(cli_next(a, &e), -ECONNRESET);
	assert_int_equal(cli_next(q, &e), -ECONNRESET);
	assert_int_equal(tcp_peer_wait(peer, no_conns, NULL, WAIT_MS), 0);
	cli_close(q);
	cli_close(a);
	cli_pair(peer, 0, &a, &q);
	cli_close(q);
	cli_close(a);
	tcp_peer_stop(peer);
}

int main(void)
{
	static int on = 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_admin_bring_up),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test_prestate(test_io, NULL),
		cmocka_unit_test_prestate(test_io, &on),
		cmocka_unit_test(test_strict_receiver),
		cmocka_unit_test(test_faults),
		cmocka_unit_test(test_kato),
		cmocka_unit_test(test_discovery),
		cmocka_unit_test(test_more_commands),
		cmocka_unit_test(test_spoiled_pdus),
		cmocka_unit_test(test_conversation_faults),
		cmocka_unit_test(test_kill),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
