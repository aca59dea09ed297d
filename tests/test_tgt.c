/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_tgt.c - the NVMe/TCP target (pnvme/tgt.h) against pnvme's own TCP
 * host over 127.0.0.1, with an emulated controller as the backend: connect,
 * identify, discovery, whole-namespace write/read/compare on several queue
 * pairs, digests, large writes through R2T, refused hosts, malformed PDUs
 * from a raw client (C2HTermReq with the right FES; only that connection
 * closes), idle connections without ICReq, KATO enforcement, and backend
 * faults reaching the host as NVMe status.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <pnvme/pnvme.h>

#include "tcp/pdu.h"
#include "test_helpers.h"

#define SUBNQN  "nqn.2024-01.org.pnvme:tgt-test"
#define HOSTNQN "nqn.2024-01.org.pnvme:host-a"
#define OTHER   "nqn.2024-01.org.pnvme:host-b"
#define NS_SIZE (8u << 20)
#define LBA     512u

struct fix {
	struct pnvme_emu *emu;
	struct pnvme_ctrl *be;
	struct pnvme_tgt *tgt;
	uint16_t port;
};

static int fix_start(struct fix *f, unsigned threads, uint32_t ic_timeout_ms)
{
	struct pnvme_tgt_opts o;

	memset(f, 0, sizeof(*f));
	if (pnvme_emu_create("emu:size=8M,lba=512,mode=thread", &f->emu) ||
	    pnvme_ctrl_open_emu(f->emu, NULL, &f->be))
		return -1;
	pnvme_tgt_opts_default(&o);
	o.listen = "127.0.0.1:0";
	o.nr_threads = threads;
	if (ic_timeout_ms)
		o.ic_timeout_ms = ic_timeout_ms;
	if (pnvme_tgt_create(&o, &f->tgt) || pnvme_tgt_add_subsys(f->tgt, SUBNQN) ||
	    pnvme_tgt_add_ns(f->tgt, SUBNQN, 1, f->be, 1) != 1 ||
	    pnvme_tgt_allow_host(f->tgt, SUBNQN, HOSTNQN) || pnvme_tgt_start(f->tgt))
		return -1;
	f->port = pnvme_tgt_port(f->tgt);
	return 0;
}

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	if (!f || fix_start(f, 2, 0))
		return -1;
	*state = f;
	return 0;
}

static int setup_short_ic(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	if (!f || fix_start(f, 1, 300))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	pnvme_tgt_destroy(f->tgt);
	pnvme_ctrl_close(f->be);
	pnvme_emu_destroy(f->emu);
	free(f);
	return 0;
}

static struct pnvme_ctrl *open_host(struct fix *f, const char *host, const char *extra, int *rc)
{
	char addr[512];
	struct pnvme_ctrl *ctrl = NULL;

	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u/%s?hostnqn=%s&reconnect_delay=0&"
		 "ctrl_loss_tmo=1%s%s", f->port, SUBNQN, host, extra ? "&" : "",
		 extra ? extra : "");
	*rc = pnvme_ctrl_open(addr, NULL, &ctrl);
	return ctrl;
}

static struct pnvme_ctrl *open_ok(struct fix *f, const char *extra)
{
	int rc;
	struct pnvme_ctrl *ctrl = open_host(f, HOSTNQN, extra, &rc);

	assert_rc(rc, 0);
	return ctrl;
}

/* ------------------------------------------------------------------------ */

static void test_connect_identify(void **state)
{
	struct fix *f = *state;
	struct pnvme_ctrl *ctrl = open_ok(f, NULL);
	const struct pnvme_id_ctrl *id = pnvme_ctrl_id(ctrl);
	const struct pnvme_ns *ns = pnvme_ctrl_ns(ctrl, 1);
	uint8_t buf[4096], buf2[4096];
	struct pnvme_ctrl *again;

	assert_int_equal(id->cntrltype, 1);
	assert_string_equal(id->subnqn, SUBNQN);
	assert_int_equal(id->ioccsz, (64u + 8192u) / 16u);
	assert_int_equal(id->icdoff, 0);
	assert_int_equal(id->sgls & 3u, 1);
	assert_int_equal(pnvme_ctrl_nr_ns(ctrl), 1);
	assert_non_null(ns);
	assert_int_equal(ns->lba_size, LBA);
	assert_int_equal(ns->nlba, NS_SIZE / LBA);
	assert_true(pnvme_ctrl_max_io_queues(ctrl) >= 4);

	/* Namespace identifiers: NGUID, UUID, CSI, the same on every connection. */
	assert_ok(pnvme_identify(ctrl, PNVME_ID_CNS_NS_DESC_LIST, 1, buf));
	assert_int_equal(buf[0], 2);
	assert_int_equal(buf[1], 16);
	assert_int_equal(buf[20], 3);
	assert_int_equal(buf[40], 4);
	again = open_ok(f, NULL);
	assert_int_not_equal(pnvme_ctrl_id(again)->cntlid, id->cntlid);
	assert_ok(pnvme_identify(again, PNVME_ID_CNS_NS_DESC_LIST, 1, buf2));
	assert_memory_equal(buf, buf2, 64);
	assert_memory_equal(ns->id.nguid, buf + 4, 16);
	/* Active namespace list; unknown namespace. */
	assert_ok(pnvme_identify(ctrl, PNVME_ID_CNS_NS_ACTIVE, 0, buf));
	assert_int_equal(((uint32_t *)buf)[0], 1);
	assert_int_equal(((uint32_t *)buf)[1], 0);
	assert_int_not_equal(pnvme_identify(ctrl, PNVME_ID_CNS_NS, 7, buf), 0);
	/* SMART log comes from the backend. */
	assert_ok(pnvme_smart_log(ctrl, (struct pnvme_smart_log *)(void *)buf));
	assert_ok(pnvme_ctrl_close(again));
	assert_ok(pnvme_ctrl_close(ctrl));
}

static void test_discovery(void **state)
{
	struct fix *f = *state;
	struct pnvme_disc_entry *e = NULL;
	char addr[256], port[8];
	uint32_t n = 0;
	uint64_t gen1 = 0, gen2 = 0;

	snprintf(port, sizeof(port), "%u", f->port);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u?hostnqn=%s", f->port, HOSTNQN);
	assert_ok(pnvme_discover(addr, &e, &n, &gen1));
	assert_int_equal(n, 1);
	assert_string_equal(e[0].subnqn, SUBNQN);
	assert_int_equal(e[0].trtype, PNVME_TRTYPE_TCP);
	assert_int_equal(e[0].subtype, PNVME_SUBTYPE_NVME);
	assert_string_equal(e[0].traddr, "127.0.0.1");
	assert_string_equal(e[0].trsvcid, port);
	pnvme_disc_free(e);

	/* Another host sees nothing; once allowed on a new subsystem, that one. */
	snprintf(addr, sizeof(addr), "127.0.0.1:%u?hostnqn=%s", f->port, OTHER);
	assert_ok(pnvme_discover(addr, &e, &n, NULL));
	assert_int_equal(n, 0);
	pnvme_disc_free(e);
	assert_ok(pnvme_tgt_add_subsys(f->tgt, SUBNQN "-2"));
	assert_ok(pnvme_tgt_allow_host(f->tgt, SUBNQN "-2", OTHER));
	assert_ok(pnvme_discover(addr, &e, &n, &gen2));
	assert_int_equal(n, 1);
	assert_string_equal(e[0].subnqn, SUBNQN "-2");
	assert_true(gen2 > gen1);
	pnvme_disc_free(e);
}

static void test_refused_host(void **state)
{
	struct fix *f = *state;
	struct pnvme_ctrl *ctrl;
	char addr[512];
	int rc;

	ctrl = open_host(f, OTHER, NULL, &rc);
	assert_null(ctrl);
	assert_true(rc < 0);
	assert_non_null(strstr(pnvme_last_error(), "invalid host"));
	/* An unknown subsystem: invalid parameters. */
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u/nqn.2024-01.org.pnvme:nosuch?hostnqn=%s",
		 f->port, HOSTNQN);
	assert_true(pnvme_ctrl_open(addr, NULL, &ctrl) < 0);
	/* The subsystem opened to any host. */
	assert_ok(pnvme_tgt_allow_host(f->tgt, SUBNQN, NULL));
	ctrl = open_host(f, OTHER, NULL, &rc);
	assert_rc(rc, 0);
	assert_ok(pnvme_ctrl_close(ctrl));
}

/* Write the whole namespace from `nq` queue pairs in `chunk`-byte commands, read, compare. */
static void whole_ns(struct fix *f, struct pnvme_ctrl *ctrl, unsigned nq, uint32_t chunk,
		     uint32_t seed)
{
	const struct pnvme_ns *ns = pnvme_ctrl_ns(ctrl, 1);
	struct pnvme_qpair *qp[8];
	uint32_t per = chunk / LBA;
	uint64_t nlba = ns->nlba;
	uint8_t *buf, *media = malloc(NS_SIZE);

	assert_true(nq <= 8);
	assert_non_null(media);
	assert_ok(pnvme_dma_alloc(ctrl, chunk, 0, (void **)&buf, NULL));
	for (unsigned i = 0; i < nq; i++)
		assert_ok(pnvme_qpair_create(ctrl, NULL, &qp[i]));
	for (uint64_t lba = 0, k = 0; lba < nlba; lba += per, k++) {
		for (uint32_t b = 0; b < per; b++)
			test_block_fill(buf + b * LBA, LBA, lba + b, seed);
		assert_ok(pnvme_write_sync(qp[k % nq], ns, buf, lba, per, 0));
	}
	for (uint64_t lba = 0, k = 0; lba < nlba; lba += per, k++) {
		memset(buf, 0xee, chunk);
		assert_ok(pnvme_read_sync(qp[(k + 1) % nq], ns, buf, lba, per, 0));
		for (uint32_t b = 0; b < per; b++)
			if (!test_block_is(buf + b * LBA, LBA, lba + b, seed))
				fail_msg("block %llu differs", (unsigned long long)(lba + b));
	}
	/* What the backend holds is what was written. */
	assert_ok(pnvme_emu_media_read(f->emu, 1, 0, media, NS_SIZE));
	for (uint64_t lba = 0; lba < nlba; lba++)
		if (!test_block_is(media + lba * LBA, LBA, lba, seed))
			fail_msg("media block %llu differs", (unsigned long long)lba);
	for (unsigned i = 0; i < nq; i++)
		assert_ok(pnvme_qpair_destroy(qp[i]));
	pnvme_dma_free(ctrl, buf);
	free(media);
}

static void test_whole_ns_rw(void **state)
{
	struct fix *f = *state;
	struct pnvme_ctrl *ctrl = open_ok(f, NULL);
	struct pnvme_tgt_stats st;

	/* 4 KiB writes go in the capsule; 128 KiB ones (MDTS) through R2T. */
	whole_ns(f, ctrl, 4, 4096, 11);
	whole_ns(f, ctrl, 3, 128u * 1024u, 12);
	pnvme_tgt_get_stats(f->tgt, &st);
	assert_true(st.r2ts >= NS_SIZE / (128u * 1024u));
	assert_true(st.bytes_written >= 2ull * NS_SIZE);
	assert_true(st.bytes_read >= 2ull * NS_SIZE);
	assert_ok(pnvme_ctrl_close(ctrl));
}

static void test_digests(void **state)
{
	struct fix *f = *state;
	struct pnvme_ctrl *ctrl = open_ok(f, "hdr_digest=1&data_digest=1");

	whole_ns(f, ctrl, 2, 64u * 1024u, 21);
	assert_ok(pnvme_ctrl_close(ctrl));
}

static void test_write_zeroes_dsm_flush(void **state)
{
	struct fix *f = *state;
	struct pnvme_ctrl *ctrl = open_ok(f, NULL);
	const struct pnvme_ns *ns = pnvme_ctrl_ns(ctrl, 1);
	struct pnvme_dsm_range r = { .nlb = 8, .slba = 64 };
	struct pnvme_qpair *qp;
	uint8_t *buf;

	assert_ok(pnvme_dma_alloc(ctrl, 4096, 0, (void **)&buf, NULL));
	assert_ok(pnvme_qpair_create(ctrl, NULL, &qp));
	memset(buf, 0xab, 4096);
	assert_ok(pnvme_write_sync(qp, ns, buf, 0, 8, 0));
	assert_ok(pnvme_write_zeroes_sync(qp, ns, 0, 8, 0));
	assert_ok(pnvme_read_sync(qp, ns, buf, 0, 8, 0));
	for (unsigned i = 0; i < 4096; i++)
		assert_int_equal(buf[i], 0);
	assert_ok(pnvme_dsm_sync(qp, ns, &r, 1, PNVME_DSM_AD));
	assert_ok(pnvme_flush_sync(qp, ns));
	/* Past the end: LBA Out of Range from the target's own check. */
	assert_true(pnvme_write_zeroes_sync(qp, ns, ns->nlba - 1, 2, 0) < 0);
	assert_ok(pnvme_qpair_destroy(qp));
	pnvme_dma_free(ctrl, buf);
	assert_ok(pnvme_ctrl_close(ctrl));
}

struct cpl {
	bool done;
	int err;
	uint16_t status;
};

static void cpl_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct cpl *c = arg;

	c->done = true;
	c->err = err;
	c->status = cqe ? PNVME_CQE_STATUS(cqe) : 0;
}

static void test_backend_fault(void **state)
{
	struct fix *f = *state;
	struct pnvme_ctrl *ctrl = open_ok(f, NULL);
	const struct pnvme_ns *ns = pnvme_ctrl_ns(ctrl, 1);
	struct pnvme_emu_fault fault = {
		.kind = PNVME_EMU_FAULT_STATUS, .qid = PNVME_EMU_ANY_QID, .opc = PNVME_NVM_READ,
		.count = 1,
		.status = PNVME_STATUS(PNVME_SCT_MEDIA, PNVME_SC_READ_ERROR) | PNVME_STATUS_DNR,
	};
	struct pnvme_qpair *qp;
	struct cpl c = { 0 };
	uint8_t *buf;

	assert_ok(pnvme_dma_alloc(ctrl, 4096, 0, (void **)&buf, NULL));
	assert_ok(pnvme_qpair_create(ctrl, NULL, &qp));
	assert_ok(pnvme_emu_inject(f->emu, &fault));
	assert_ok(pnvme_read(qp, ns, buf, 0, 8, 0, cpl_cb, &c));
	while (!c.done)
		assert_true(pnvme_qpair_poll(qp, 0) >= 0);
	assert_true(c.err < 0);
	assert_int_equal(PNVME_STATUS_CODE(c.status),
			 PNVME_STATUS(PNVME_SCT_MEDIA, PNVME_SC_READ_ERROR));
	assert_true(PNVME_STATUS_IS_DNR(c.status));
	/* The next read is fine. */
	assert_ok(pnvme_read_sync(qp, ns, buf, 0, 8, 0));
	assert_ok(pnvme_qpair_destroy(qp));
	pnvme_dma_free(ctrl, buf);
	assert_ok(pnvme_ctrl_close(ctrl));
}

/* ------------------------------------------------------------------------ */
/* A raw client: PDUs built with the library's PDU layer                    */
/* ------------------------------------------------------------------------ */

/* A TCP connection to the target; rcvbuf > 0: that SO_RCVBUF, set before connecting. */
static int raw_connect_rcvbuf(uint16_t port, int rcvbuf)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	assert_true(fd >= 0);
	if (rcvbuf > 0)
		assert_ok(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)));
	assert_ok(connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int raw_connect(uint16_t port)
{
	return raw_connect_rcvbuf(port, 0);
}

static void raw_send(int fd, const void *p, size_t n)
{
	assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void raw_send_pdu(int fd, struct pnvme_tcp_tx_pdu *pdu)
{
	struct iovec iov[3];
	int n = pnvme_tcp_pdu_iov(pdu, iov);

	for (int i = 0; i < n; i++)
		raw_send(fd, iov[i].iov_base, iov[i].iov_len);
}

/* Read exactly n bytes (5 s); returns bytes read (less at EOF). */
static size_t raw_read(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 5000) <= 0)
			fail_msg("no data from the target within 5 s");
		r = recv(fd, (uint8_t *)buf + got, n - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

/* Receive one PDU into hdr (up to `max` bytes); returns its type, -1 at EOF. */
static int raw_recv_pdu(int fd, uint8_t *buf, size_t max)
{
	struct pnvme_tcp_ch *ch = (void *)buf;

	if (raw_read(fd, buf, 8) < 8)
		return -1;
	assert_true(ch->plen >= 8 && ch->plen <= max);
	assert_int_equal(raw_read(fd, buf + 8, ch->plen - 8), ch->plen - 8);
	return ch->pdu_type;
}

static bool raw_eof(int fd)
{
	uint8_t b[256];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 5000) <= 0)
			return false;
		r = recv(fd, b, sizeof(b), 0);
		if (r <= 0)
			return true;
	}
}

/* ICReq (no digests) on a new connection, ICResp back. */
static void raw_icreq(int fd)
{
	struct pnvme_tcp_tx_pdu pdu;
	uint8_t buf[256];

	pnvme_tcp_build_icreq(&pdu, 0, 0, 0);
	raw_send_pdu(fd, &pdu);
	assert_int_equal(raw_recv_pdu(fd, buf, sizeof(buf)), PNVME_TCP_ICRESP);
}

static int raw_ic(uint16_t port)
{
	int fd = raw_connect(port);

	raw_icreq(fd);
	return fd;
}

/* Expect a C2HTermReq with `fes` (and `fei` unless ~0u), then the connection's end. */
static void expect_term(int fd, uint16_t fes, uint32_t fei)
{
	uint8_t buf[512];
	const struct pnvme_tcp_term_req *t = (const void *)buf;
	uint32_t got_fei;

	assert_int_equal(raw_recv_pdu(fd, buf, sizeof(buf)), PNVME_TCP_C2H_TERM_REQ);
	assert_int_equal(t->fes, fes);
	memcpy(&got_fei, t->fei, 4);
	if (fei != ~0u)
		assert_int_equal(got_fei, fei);
	assert_true(raw_eof(fd));
}

/* Connect queue `qid` of `subnqn` on a raw connection (no digests); returns the status. */
static uint16_t raw_connect_q(int fd, const char *subnqn, uint16_t qid, uint16_t cntlid,
			      uint32_t kato, uint16_t *got_cntlid)
{
	struct pnvme_tcp_tx_params tp = { 0 };
	struct pnvme_fabrics_connect cmd = { 0 };
	struct pnvme_fabrics_connect_data d = { 0 };
	struct pnvme_tcp_tx_pdu pdu;
	uint8_t buf[256];
	const struct pnvme_tcp_capsule_resp *r = (const void *)buf;

	cmd.opc = PNVME_OPC_FABRICS;
	cmd.flags = PNVME_SQE_PSDT_SGL_MPTR_CONTIG << PNVME_SQE_PSDT_SHIFT;
	cmd.cid = 7;
	cmd.fctype = PNVME_FCTYPE_CONNECT;
	cmd.sgl1.id = PNVME_SGL_ID_INCAPSULE;
	cmd.sgl1.length = sizeof(d);
	cmd.qid = qid;
	cmd.sqsize = 31;
	cmd.kato = kato;
	d.cntlid = cntlid;
	snprintf(d.subnqn, sizeof(d.subnqn), "%s", subnqn);
	snprintf(d.hostnqn, sizeof(d.hostnqn), "%s", HOSTNQN);
	assert_ok(pnvme_tcp_build_capsule_cmd(&pdu, &tp, (const void *)&cmd, &d, sizeof(d)));
	raw_send_pdu(fd, &pdu);
	assert_int_equal(raw_recv_pdu(fd, buf, sizeof(buf)), PNVME_TCP_CAPSULE_RESP);
	if (got_cntlid)
		*got_cntlid = (uint16_t)r->cqe.dw0;
	return (uint16_t)(r->cqe.status >> 1);
}

/* Admin Connect on a raw connection (no digests); returns the status. */
static uint16_t raw_admin_connect(int fd, uint32_t kato, uint16_t *cntlid)
{
	return raw_connect_q(fd, SUBNQN, 0, PNVME_CONNECT_CNTLID_DYNAMIC, kato, cntlid);
}

/* Send a command without in-capsule data; `len` bytes come back (SGL: transport). */
static void raw_cmd_send(int fd, struct pnvme_sqe *sqe, uint32_t len)
{
	struct pnvme_tcp_tx_params tp = { 0 };
	struct pnvme_sgl_desc *sgl = (void *)&sqe->prp1;
	struct pnvme_tcp_tx_pdu pdu;

	sqe->flags = PNVME_SQE_PSDT_SGL_MPTR_CONTIG << PNVME_SQE_PSDT_SHIFT;
	sgl->id = PNVME_SGL_ID_TRANSPORT;
	sgl->length = len;
	sgl->addr = 0;
	assert_ok(pnvme_tcp_build_capsule_cmd(&pdu, &tp, sqe, NULL, 0));
	raw_send_pdu(fd, &pdu);
}

/* Receive PDUs until the command's completion: C2HData into `data`; returns the status. */
static uint16_t raw_cmd_wait(int fd, void *data, size_t max, struct pnvme_cqe *cqe_out)
{
	static uint8_t buf[8192 + 64];
	const struct pnvme_tcp_capsule_resp *r = (const void *)buf;
	const struct pnvme_tcp_c2h_data *d = (const void *)buf;

	for (;;) {
		int type = raw_recv_pdu(fd, buf, sizeof(buf));

		if (type == PNVME_TCP_C2H_DATA) {
			assert_true(d->datao + d->datal <= max);
			memcpy((uint8_t *)data + d->datao, buf + d->ch.pdo, d->datal);
			if (d->ch.flags & PNVME_TCP_F_SUCCESS)
				return 0;
			continue;
		}
		assert_int_equal(type, PNVME_TCP_CAPSULE_RESP);
		if (cqe_out)
			*cqe_out = r->cqe;
		return (uint16_t)(r->cqe.status >> 1);
	}
}

static uint16_t raw_cmd(int fd, struct pnvme_sqe *sqe, void *data, uint32_t len,
			struct pnvme_cqe *cqe)
{
	raw_cmd_send(fd, sqe, len);
	return raw_cmd_wait(fd, data, len, cqe);
}

/* Property Set CC (Base 2.0 §6.6). */
static uint16_t raw_set_cc(int fd, uint32_t cc)
{
	struct pnvme_fabrics_prop_set ps = { 0 };

	ps.opc = PNVME_OPC_FABRICS;
	ps.fctype = PNVME_FCTYPE_PROPERTY_SET;
	ps.cid = 9;
	ps.attrib = PNVME_PROP_SIZE_4;
	ps.ofst = PNVME_REG_CC;
	ps.value = cc;
	return raw_cmd(fd, (struct pnvme_sqe *)(void *)&ps, NULL, 0, NULL);
}

#define RAW_CC_EN ((1u << PNVME_CC_EN_SHIFT) | (6u << PNVME_CC_IOSQES_SHIFT) | \
		   (4u << PNVME_CC_IOCQES_SHIFT))

/* A raw admin queue on `subnqn`, enabled, with AEC `aec`. */
static int raw_admin_ready(struct fix *f, const char *subnqn, uint32_t aec, uint16_t *cntlid)
{
	struct pnvme_sqe sqe = { 0 };
	int fd = raw_ic(f->port);

	assert_int_equal(raw_connect_q(fd, subnqn, 0, PNVME_CONNECT_CNTLID_DYNAMIC, 0, cntlid), 0);
	assert_int_equal(raw_set_cc(fd, RAW_CC_EN), 0);
	sqe.opc = PNVME_ADM_SET_FEATURES;
	sqe.cid = 10;
	sqe.cdw10 = PNVME_FEAT_ASYNC_EVENT;
	sqe.cdw11 = aec;
	assert_int_equal(raw_cmd(fd, &sqe, NULL, 0, NULL), 0);
	return fd;
}

/* Nothing arrives on fd within `ms`. */
static bool raw_quiet(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 0;
}

/* Get Log Page `lid` (numd dwords), RAE as given; returns the status. */
static uint16_t raw_get_log(int fd, uint8_t lid, uint32_t nsid, void *buf, uint32_t len, bool rae)
{
	struct pnvme_sqe sqe = { 0 };

	sqe.opc = PNVME_ADM_GET_LOG_PAGE;
	sqe.cid = 11;
	sqe.nsid = nsid;
	sqe.cdw10 = lid | (rae ? PNVME_GLP_RAE : 0) | ((len / 4u - 1u) << PNVME_GLP_NUMDL_SHIFT);
	return raw_cmd(fd, &sqe, buf, len, NULL);
}

static void test_malformed_pdus(void **state)
{
	struct fix *f = *state;
	struct pnvme_ctrl *ctrl = open_ok(f, NULL);
	const struct pnvme_ns *ns = pnvme_ctrl_ns(ctrl, 1);
	struct pnvme_tcp_tx_params tp = { 0 };
	struct pnvme_tcp_tx_pdu pdu;
	struct pnvme_qpair *qp;
	struct pnvme_sqe sqe = { 0 };
	uint8_t *buf, data[64] = { 0 };
	int fd;

	assert_ok(pnvme_dma_alloc(ctrl, 4096, 0, (void **)&buf, NULL));
	assert_ok(pnvme_qpair_create(ctrl, NULL, &qp));
	assert_ok(pnvme_write_sync(qp, ns, buf, 0, 8, 0));

	/* A capsule before the ICReq: PDU Sequence Error. */
	fd = raw_connect(f->port);
	sqe.opc = PNVME_OPC_FABRICS;
	assert_ok(pnvme_tcp_build_capsule_cmd(&pdu, &tp, &sqe, NULL, 0));
	raw_send_pdu(fd, &pdu);
	expect_term(fd, PNVME_TCP_FES_PDU_SEQUENCE_ERROR, ~0u);
	close(fd);

	/* HLEN wrong for the type: Invalid PDU Header Field, FEI = HLEN's offset (2). */
	fd = raw_ic(f->port);
	assert_ok(pnvme_tcp_build_capsule_cmd(&pdu, &tp, &sqe, NULL, 0));
	pdu.hdr.ch.hlen = 64;
	raw_send_pdu(fd, &pdu);
	expect_term(fd, PNVME_TCP_FES_INVALID_HEADER_FIELD, 2);
	close(fd);

	/* A type only a controller sends (CapsuleResp): FEI 0. */
	fd = raw_ic(f->port);
	pnvme_tcp_build_capsule_resp(&pdu, &tp, &(struct pnvme_cqe){ 0 });
	raw_send_pdu(fd, &pdu);
	expect_term(fd, PNVME_TCP_FES_INVALID_HEADER_FIELD, 0);
	close(fd);

	/* H2CData for a transfer tag no R2T gave: FEI = TTAG's offset (10). */
	fd = raw_ic(f->port);
	assert_ok(pnvme_tcp_build_h2c_data(&pdu, &tp, 1, 5, 0, data, sizeof(data), true));
	raw_send_pdu(fd, &pdu);
	expect_term(fd, PNVME_TCP_FES_INVALID_HEADER_FIELD,
		    offsetof(struct pnvme_tcp_h2c_data, ttag));
	close(fd);

	/* A second ICReq: PDU Sequence Error. */
	fd = raw_ic(f->port);
	pnvme_tcp_build_icreq(&pdu, 0, 0, 0);
	raw_send_pdu(fd, &pdu);
	expect_term(fd, PNVME_TCP_FES_PDU_SEQUENCE_ERROR, ~0u);
	close(fd);

	/* PLEN beyond anything the connection takes. */
	fd = raw_ic(f->port);
	assert_ok(pnvme_tcp_build_capsule_cmd(&pdu, &tp, &sqe, data, sizeof(data)));
	pdu.hdr.ch.plen = 64u << 20;
	raw_send(fd, pdu.hdr.raw, pdu.hdr_len);
	expect_term(fd, PNVME_TCP_FES_INVALID_HEADER_FIELD, 4);
	close(fd);

	/* The well-behaved host was not affected. */
	assert_ok(pnvme_read_sync(qp, ns, buf, 0, 8, 0));
	assert_true(!pnvme_ctrl_is_dead(ctrl));
	assert_ok(pnvme_qpair_destroy(qp));
	pnvme_dma_free(ctrl, buf);
	assert_ok(pnvme_ctrl_close(ctrl));
}

static void test_bad_commands(void **state)
{
	struct fix *f = *state;
	struct pnvme_tcp_tx_params tp = { 0 };
	struct pnvme_tcp_tx_pdu pdu;
	struct pnvme_sqe sqe = { 0 };
	uint8_t buf[256];
	const struct pnvme_tcp_capsule_resp *r = (const void *)buf;
	int fd = raw_ic(f->port);

	/* Before Connect only Connect: Invalid Opcode, DNR; the connection stays. */
	sqe.opc = PNVME_ADM_IDENTIFY;
	sqe.flags = PNVME_SQE_PSDT_SGL_MPTR_CONTIG << PNVME_SQE_PSDT_SHIFT;
	sqe.cid = 3;
	assert_ok(pnvme_tcp_build_capsule_cmd(&pdu, &tp, &sqe, NULL, 0));
	raw_send_pdu(fd, &pdu);
	assert_int_equal(raw_recv_pdu(fd, buf, sizeof(buf)), PNVME_TCP_CAPSULE_RESP);
	assert_int_equal(r->cqe.cid, 3);
	assert_int_equal(r->cqe.status >> 1,
			 PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INVALID_OPCODE) | PNVME_STATUS_DNR);
	assert_int_equal(raw_admin_connect(fd, 0, NULL), 0);
	/* Identify before CC.EN: Command Sequence Error. */
	sqe.cid = 4;
	{
		struct pnvme_sgl_desc *sgl = (void *)&sqe.prp1;

		sgl->id = PNVME_SGL_ID_TRANSPORT;
		sgl->length = 4096;
	}
	assert_ok(pnvme_tcp_build_capsule_cmd(&pdu, &tp, &sqe, NULL, 0));
	raw_send_pdu(fd, &pdu);
	assert_int_equal(raw_recv_pdu(fd, buf, sizeof(buf)), PNVME_TCP_CAPSULE_RESP);
	assert_int_equal((r->cqe.status >> 1) & 0x7ffu,
			 PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_CMD_SEQ_ERROR));
	close(fd);
}

static void test_ic_timeout(void **state)
{
	struct fix *f = *state;
	struct pnvme_tgt_stats st;
	int fd = raw_connect(f->port);

	/* Silent: closed after ic_timeout_ms (300 ms here). */
	assert_true(raw_eof(fd));
	close(fd);
	pnvme_tgt_get_stats(f->tgt, &st);
	assert_int_equal(st.ic_timeouts, 1);
}

/*
 * More connections than one epoll_wait() returns (64) and than the old
 * per-socket poll() list held (130), all connected before any sends: each
 * one's ICReq, sent in the reverse order, is answered; with them all open
 * and idle, a host's I/O over two more queues still flows, and the idle
 * ones are still served afterwards.
 */
#define MANY_CONNS 160
static void test_many_conns(void **state)
{
	struct fix *f = *state;
	struct pnvme_tcp_tx_pdu pdu;
	struct pnvme_tgt_stats st;
	struct pnvme_ctrl *ctrl;
	uint8_t buf[256];
	int fd[MANY_CONNS];

	for (int i = 0; i < MANY_CONNS; i++)
		fd[i] = raw_connect(f->port);
	pnvme_tcp_build_icreq(&pdu, 0, 0, 0);
	for (int i = MANY_CONNS - 1; i >= 0; i--)
		raw_send_pdu(fd[i], &pdu);
	for (int i = 0; i < MANY_CONNS; i++)
		assert_int_equal(raw_recv_pdu(fd[i], buf, sizeof(buf)), PNVME_TCP_ICRESP);
	ctrl = open_ok(f, NULL);
	whole_ns(f, ctrl, 2, 4096, 21);
	assert_ok(pnvme_ctrl_close(ctrl));
	/* A bad PDU on each idle connection: each gets its C2HTermReq. */
	for (int i = 0; i < MANY_CONNS; i++)
		raw_send_pdu(fd[i], &pdu); /* a second ICReq: not valid once IC is done */
	for (int i = 0; i < MANY_CONNS; i++) {
		assert_int_equal(raw_recv_pdu(fd[i], buf, sizeof(buf)), PNVME_TCP_C2H_TERM_REQ);
		close(fd[i]);
	}
	pnvme_tgt_get_stats(f->tgt, &st);
	assert_true(st.conns_accepted >= MANY_CONNS + 3);
	assert_int_equal(st.term_reqs, MANY_CONNS);
}

/* Sleeps (voluntary context switches) of the target's threads, "pnvme-tgt-N". */
static long tgt_thread_sleeps(unsigned *nthreads)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	long sum = 0;

	assert_non_null(d);
	*nthreads = 0;
	while ((e = readdir(d))) {
		char path[300], line[128];
		FILE *fp;
		bool ours = false;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		if ((fp = fopen(path, "r"))) {
			ours = fgets(line, sizeof(line), fp) && !strncmp(line, "pnvme-tgt-", 10);
			fclose(fp);
		}
		if (!ours)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
		assert_non_null(fp = fopen(path, "r"));
		while (fgets(line, sizeof(line), fp)) {
			long v;

			if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
				sum += v;
		}
		fclose(fp);
		(*nthreads)++;
	}
	closedir(d);
	return sum;
}

static void test_idle_sleeps(void **state)
{
	struct fix *f = *state;
	unsigned n;
	long before, after;
	int fd[2];

	/*
	 * With nothing connected both threads sleep until a host, the other
	 * thread or a deadline needs them, at most TGT_IDLE_WAIT_MS (100 ms) at
	 * a time: about 5 wake-ups each in 500 ms, where a 1 ms sleep made 500
	 * (a loaded machine makes fewer, never more).
	 */
	usleep(50000);
	before = tgt_thread_sleeps(&n);
	assert_int_equal(n, 2);
	usleep(500000);
	after = tgt_thread_sleeps(&n);
	assert_int_equal(n, 2);
	assert_true(after - before < 60);
	/* Connections made now are served: group 0 wakes on the listener,
	 * group 1 on its inbox. */
	for (int i = 0; i < 2; i++) {
		fd[i] = raw_ic(f->port);
		assert_int_equal(raw_admin_connect(fd[i], 0, NULL), 0);
	}
	for (int i = 0; i < 2; i++)
		close(fd[i]);
}

static void test_kato(void **state)
{
	struct fix *f = *state;
	struct pnvme_tgt_stats st;
	int fd = raw_ic(f->port);

	/* KATO 300 ms and no Keep Alive: the controller is torn down. */
	assert_int_equal(raw_admin_connect(fd, 300, NULL), 0);
	assert_true(raw_eof(fd));
	close(fd);
	pnvme_tgt_get_stats(f->tgt, &st);
	assert_int_equal(st.kato_expired, 1);
}

static void test_stop_with_host(void **state)
{
	struct fix *f = *state;
	struct pnvme_ctrl *ctrl = open_ok(f, NULL);
	const struct pnvme_ns *ns = pnvme_ctrl_ns(ctrl, 1);
	struct pnvme_qpair *qp;
	uint8_t *buf;

	assert_ok(pnvme_dma_alloc(ctrl, 4096, 0, (void **)&buf, NULL));
	assert_ok(pnvme_qpair_create(ctrl, NULL, &qp));
	assert_ok(pnvme_write_sync(qp, ns, buf, 0, 8, 0));
	/* The target goes: the host's next I/O fails (ctrl_loss_tmo 1 s), nothing hangs. */
	assert_ok(pnvme_tgt_stop(f->tgt));
	pnvme_qpair_set_timeout(qp, 3000);
	assert_true(pnvme_read_sync(qp, ns, buf, 0, 8, 0) < 0);
	pnvme_qpair_destroy(qp);
	pnvme_dma_free(ctrl, buf);
	pnvme_ctrl_close(ctrl);
}


struct io_tally {
	unsigned done, failed, twice;
	uint8_t seen[64];
};

static void tally_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct io_tally *t = (struct io_tally *)((uint8_t *)arg - ((uintptr_t)arg & 63u));
	unsigned i = (unsigned)((uintptr_t)arg & 63u);

	(void)cqe;
	if (t->seen[i]++)
		t->twice++;
	t->done++;
	if (err)
		t->failed++;
}

/* The target goes away and comes back on the same port mid-I/O: the host reconnects,
 * every write completes once, and the data is all there. */
static void test_target_restart(void **state)
{
	struct fix *f = *state;
	struct pnvme_ctrl *ctrl = open_ok(f, "ctrl_loss_tmo=20");
	const struct pnvme_ns *ns = pnvme_ctrl_ns(ctrl, 1);
	struct pnvme_qpair_opts qo;
	struct pnvme_tgt_opts o;
	struct pnvme_qpair *qp;
	static struct io_tally tally __attribute__((aligned(64)));
	char listen[32];
	uint8_t *buf;
	const unsigned n = 32, per = 64; /* 32 KiB writes */

	memset(&tally, 0, sizeof(tally));
	pnvme_qpair_opts_default(&qo);
	qo.max_retries = 5;
	qo.timeout_ms = 20000;
	assert_ok(pnvme_qpair_create(ctrl, &qo, &qp));
	assert_ok(pnvme_dma_alloc(ctrl, (size_t)n * per * LBA, 0, (void **)&buf, NULL));
	for (unsigned i = 0; i < n; i++) {
		for (unsigned b = 0; b < per; b++)
			test_block_fill(buf + ((size_t)i * per + b) * LBA, LBA, i * per + b, 31);
		assert_ok(pnvme_write(qp, ns, buf + (size_t)i * per * LBA, i * per, per, 0, tally_cb,
				      (uint8_t *)&tally + i));
	}
	pnvme_qpair_flush(qp);
	(void)pnvme_qpair_poll(qp, 0);
	/* Kill the target now, whatever it has done, and start another on the port. */
	pnvme_tgt_destroy(f->tgt);
	pnvme_tgt_opts_default(&o);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", f->port);
	o.listen = listen;
	o.nr_threads = 2;
	assert_ok(pnvme_tgt_create(&o, &f->tgt));
	assert_ok(pnvme_tgt_add_subsys(f->tgt, SUBNQN));
	assert_int_equal(pnvme_tgt_add_ns(f->tgt, SUBNQN, 1, f->be, 1), 1);
	assert_ok(pnvme_tgt_allow_host(f->tgt, SUBNQN, HOSTNQN));
	assert_ok(pnvme_tgt_start(f->tgt));
	for (unsigned k = 0; tally.done < n && k < 3000000u; k++)
		assert_true(pnvme_qpair_poll(qp, 0) >= 0);
	assert_int_equal(tally.done, n);
	assert_int_equal(tally.twice, 0);
	assert_int_equal(tally.failed, 0);
	memset(buf, 0, (size_t)n * per * LBA);
	for (unsigned i = 0; i < n; i++)
		assert_ok(pnvme_read_sync(qp, ns, buf + (size_t)i * per * LBA, i * per, per, 0));
	for (unsigned b = 0; b < n * per; b++)
		if (!test_block_is(buf + (size_t)b * LBA, LBA, b, 31))
			fail_msg("block %u lost", b);
	assert_ok(pnvme_qpair_destroy(qp));
	pnvme_dma_free(ctrl, buf);
	assert_ok(pnvme_ctrl_close(ctrl));
}

/* A host that sends commands and vanishes without reading: the target cleans up. */
static void test_host_killed(void **state)
{
	struct fix *f = *state;
	struct pnvme_tcp_tx_params tp = { 0 };
	struct pnvme_tcp_tx_pdu pdu;
	struct pnvme_sqe sqe = { 0 };
	struct pnvme_sgl_desc *sgl = (void *)&sqe.prp1;
	struct pnvme_tgt_stats st;
	struct linger lg = { 1, 0 };
	int fd = raw_ic(f->port);

	assert_int_equal(raw_admin_connect(fd, 0, NULL), 0);
	sqe.opc = PNVME_ADM_IDENTIFY;
	sqe.flags = PNVME_SQE_PSDT_SGL_MPTR_CONTIG << PNVME_SQE_PSDT_SHIFT;
	sgl->id = PNVME_SGL_ID_TRANSPORT;
	sgl->length = 4096;
	sqe.cdw10 = 1;
	for (uint16_t i = 0; i < 20; i++) {
		sqe.cid = i;
		assert_ok(pnvme_tcp_build_capsule_cmd(&pdu, &tp, &sqe, NULL, 0));
		raw_send_pdu(fd, &pdu);
	}
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd); /* a RST */
	for (int i = 0; i < 500; i++) {
		pnvme_tgt_get_stats(f->tgt, &st);
		if (st.conns_open == 0)
			break;
		usleep(10000);
	}
	assert_int_equal(st.conns_open, 0);
	/* And it still serves. */
	assert_ok(pnvme_ctrl_close(open_ok(f, NULL)));
}

#define AEC_NS_ATTR (1u << 8)
#define AEC_DISC    (1u << 31)
#define AER_DW0(info, lid) (2u | (uint32_t)(info) << 8 | (uint32_t)(lid) << 16)

static void send_aer(int fd, uint16_t cid)
{
	struct pnvme_sqe sqe = { 0 };

	sqe.opc = PNVME_ADM_ASYNC_EVENT;
	sqe.cid = cid;
	raw_cmd_send(fd, &sqe, 0);
}

/* Base 2.0 §5.27.1.7 / §5.16.1.5: a namespace added at run time completes a held AER with
 * Notice / Namespace Attribute Changed (log 04h); the log lists it and reading clears it;
 * until then further changes of the type are not reported (masked). */
static void test_aen_ns_changed(void **state)
{
	struct fix *f = *state;
	struct pnvme_cqe cqe;
	uint32_t list[1024];
	int fd = raw_admin_ready(f, SUBNQN, AEC_NS_ATTR, NULL);
	int off = raw_admin_ready(f, SUBNQN, 0, NULL); /* did not enable the notice */

	send_aer(fd, 20);
	send_aer(off, 20);
	assert_true(raw_quiet(fd, 200));
	assert_int_equal(pnvme_tgt_add_ns(f->tgt, SUBNQN, 2, f->be, 1), 2);
	assert_int_equal(raw_cmd_wait(fd, NULL, 0, &cqe), 0);
	assert_int_equal(cqe.cid, 20);
	assert_int_equal(cqe.dw0, AER_DW0(0x00, PNVME_LOG_CHANGED_NS));
	assert_true(raw_quiet(off, 200));
	/* The Changed Namespace List: NSID 2, then empty once read. */
	memset(list, 0xee, sizeof(list));
	assert_int_equal(raw_get_log(fd, PNVME_LOG_CHANGED_NS, 0, list, sizeof(list), false), 0);
	assert_int_equal(list[0], 2);
	assert_int_equal(list[1], 0);
	assert_int_equal(raw_get_log(fd, PNVME_LOG_CHANGED_NS, 0, list, sizeof(list), false), 0);
	assert_int_equal(list[0], 0);
	/* Unmasked by the read: the next change is reported, to an AER sent before it. */
	send_aer(fd, 21);
	assert_int_equal(pnvme_tgt_add_ns(f->tgt, SUBNQN, 3, f->be, 1), 3);
	assert_int_equal(raw_cmd_wait(fd, NULL, 0, &cqe), 0);
	assert_int_equal(cqe.cid, 21);
	/* Not read yet (or read with RAE): masked, the list still grows. */
	send_aer(fd, 22);
	assert_int_equal(pnvme_tgt_add_ns(f->tgt, SUBNQN, 4, f->be, 1), 4);
	assert_true(raw_quiet(fd, 200));
	assert_int_equal(raw_get_log(fd, PNVME_LOG_CHANGED_NS, 0, list, sizeof(list), true), 0);
	assert_int_equal(list[0], 3);
	assert_int_equal(list[1], 4);
	assert_int_equal(list[2], 0);
	assert_int_equal(pnvme_tgt_add_ns(f->tgt, SUBNQN, 5, f->be, 1), 5);
	assert_true(raw_quiet(fd, 200));
	assert_int_equal(raw_get_log(fd, PNVME_LOG_CHANGED_NS, 0, list, sizeof(list), false), 0);
	assert_int_equal(list[0], 5);
	assert_int_equal(pnvme_tgt_add_ns(f->tgt, SUBNQN, 6, f->be, 1), 6);
	assert_int_equal(raw_cmd_wait(fd, NULL, 0, &cqe), 0);
	assert_int_equal(cqe.cid, 22);
	close(off);
	close(fd);
}

/* Base 2.0 §3.1.3.3: a discovery controller that enabled it (AEC bit 31) gets a Discovery
 * Log Page Change notice when GENCTR moves; one that did not, nothing. */
static void test_aen_discovery(void **state)
{
	struct fix *f = *state;
	struct pnvme_cqe cqe;
	uint64_t hdr[128];
	uint64_t gen;
	int fd = raw_admin_ready(f, PNVME_DISCOVERY_NQN, AEC_DISC, NULL);
	int off = raw_admin_ready(f, PNVME_DISCOVERY_NQN, 0, NULL);

	assert_int_equal(raw_get_log(fd, PNVME_LOG_DISCOVERY, 0, hdr, 1024, false), 0);
	gen = hdr[0];
	send_aer(fd, 30);
	send_aer(off, 30);
	assert_true(raw_quiet(fd, 200));
	assert_ok(pnvme_tgt_add_subsys(f->tgt, SUBNQN "-3"));
	assert_int_equal(raw_cmd_wait(fd, NULL, 0, &cqe), 0);
	assert_int_equal(cqe.cid, 30);
	assert_int_equal(cqe.dw0, AER_DW0(0xf0, PNVME_LOG_DISCOVERY));
	assert_true(raw_quiet(off, 200));
	assert_int_equal(raw_get_log(fd, PNVME_LOG_DISCOVERY, 0, hdr, 1024, false), 0);
	assert_true(hdr[0] > gen);
	/* Read: the next change is reported again. */
	send_aer(fd, 31);
	assert_ok(pnvme_tgt_allow_host(f->tgt, SUBNQN "-3", HOSTNQN));
	assert_int_equal(raw_cmd_wait(fd, NULL, 0, &cqe), 0);
	assert_int_equal(cqe.cid, 31);
	close(off);
	close(fd);
}

/* Base 2.0 §3.7.2: CC.EN 1 -> 0 deletes the I/O queues: their connections end; after
 * CC.EN = 1 the host connects them again. */
static void test_cc_disable_ioq(void **state)
{
	struct fix *f = *state;
	uint16_t cntlid;
	int fd = raw_admin_ready(f, SUBNQN, 0, &cntlid);
	int io = raw_ic(f->port), io2;

	assert_int_equal(raw_connect_q(io, SUBNQN, 1, cntlid, 0, NULL), 0);
	assert_int_equal(raw_set_cc(fd, 0), 0);
	assert_true(raw_eof(io));
	close(io);
	assert_int_equal(raw_set_cc(fd, RAW_CC_EN), 0);
	io2 = raw_ic(f->port);
	assert_int_equal(raw_connect_q(io2, SUBNQN, 1, cntlid, 0, NULL), 0);
	close(io2);
	close(fd);
}

/* Flush with NSID FFFFFFFFh: Invalid Namespace (DNR), as nvmet answers, and Identify VWC
 * says so (bits 2:1 = 10b, NVMe Base 2.0 Figure 275). */
static void test_flush_broadcast(void **state)
{
	struct fix *f = *state;
	struct pnvme_ctrl *ctrl = open_ok(f, NULL);
	struct pnvme_sqe sqe = { 0 };
	uint16_t cntlid;
	int fd = raw_admin_ready(f, SUBNQN, 0, &cntlid);
	int io = raw_ic(f->port);

	assert_int_equal(pnvme_ctrl_id(ctrl)->vwc, 0x05);
	assert_ok(pnvme_ctrl_close(ctrl));
	assert_int_equal(raw_connect_q(io, SUBNQN, 1, cntlid, 0, NULL), 0);
	sqe.opc = PNVME_NVM_FLUSH;
	sqe.cid = 40;
	sqe.nsid = 0xffffffffu;
	assert_int_equal(raw_cmd(io, &sqe, NULL, 0, NULL),
			 PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INVALID_NS) | PNVME_STATUS_DNR);
	sqe.nsid = 1;
	assert_int_equal(raw_cmd(io, &sqe, NULL, 0, NULL), 0);
	close(io);
	close(fd);
}

static uint64_t u128_lo(const uint8_t *v)
{
	uint64_t x;

	memcpy(&x, v, 8);
	return x;
}

/* The controller-wide SMART log sums the work of every backend of the subsystem. */
static void test_smart_aggregate(void **state)
{
	struct fix *f = *state;
	struct pnvme_emu *emu2;
	struct pnvme_ctrl *be2, *ctrl;
	struct pnvme_smart_log a, b, all;
	struct pnvme_qpair *qp;
	uint8_t *buf;

	assert_ok(pnvme_emu_create("emu:size=8M,lba=512,mode=thread", &emu2));
	assert_ok(pnvme_ctrl_open_emu(emu2, NULL, &be2));
	assert_int_equal(pnvme_tgt_add_ns(f->tgt, SUBNQN, 2, be2, 1), 2);
	ctrl = open_ok(f, NULL);
	assert_ok(pnvme_dma_alloc(ctrl, 4096, 0, (void **)&buf, NULL));
	assert_ok(pnvme_qpair_create(ctrl, NULL, &qp));
	memset(buf, 0x5a, 4096);
	for (int i = 0; i < 3; i++)
		assert_ok(pnvme_write_sync(qp, pnvme_ctrl_ns(ctrl, 1), buf, 0, 8, 0));
	for (int i = 0; i < 5; i++)
		assert_ok(pnvme_write_sync(qp, pnvme_ctrl_ns(ctrl, 2), buf, 0, 8, 0));
	assert_ok(pnvme_smart_log(f->be, &a));
	assert_ok(pnvme_smart_log(be2, &b));
	assert_ok(pnvme_smart_log(ctrl, &all));
	assert_true(u128_lo(a.host_writes) >= 3);
	assert_true(u128_lo(b.host_writes) >= 5);
	assert_int_equal(u128_lo(all.host_writes), u128_lo(a.host_writes) + u128_lo(b.host_writes));
	assert_int_equal(u128_lo(all.data_units_written),
			 u128_lo(a.data_units_written) + u128_lo(b.data_units_written));
	assert_ok(pnvme_qpair_destroy(qp));
	pnvme_dma_free(ctrl, buf);
	assert_ok(pnvme_ctrl_close(ctrl));
	/* The target must let go of be2 before it closes. */
	pnvme_tgt_destroy(f->tgt);
	f->tgt = NULL;
	assert_ok(pnvme_ctrl_close(be2));
	pnvme_emu_destroy(emu2);
}

/* A discovery-only listener (the well-known 8009, a free port here): the discovery log,
 * with the I/O port in TRSVCID; Connect to an NVM subsystem there is refused. */
static void test_discovery_port(void **state)
{
	struct fix *f = *state;
	struct pnvme_tgt_opts o;
	struct pnvme_disc_entry *e = NULL;
	struct pnvme_ctrl *ctrl = NULL;
	char addr[512], port[8];
	uint32_t n = 0;
	uint16_t dport;
	int fd;

	pnvme_tgt_destroy(f->tgt);
	pnvme_tgt_opts_default(&o);
	o.listen = "127.0.0.1:0";
	o.discovery_listen = "127.0.0.1:0";
	assert_ok(pnvme_tgt_create(&o, &f->tgt));
	assert_ok(pnvme_tgt_add_subsys(f->tgt, SUBNQN));
	assert_int_equal(pnvme_tgt_add_ns(f->tgt, SUBNQN, 1, f->be, 1), 1);
	assert_ok(pnvme_tgt_allow_host(f->tgt, SUBNQN, HOSTNQN));
	assert_int_equal(pnvme_tgt_discovery_port(f->tgt), 0);
	assert_ok(pnvme_tgt_start(f->tgt));
	f->port = pnvme_tgt_port(f->tgt);
	dport = pnvme_tgt_discovery_port(f->tgt);
	assert_int_not_equal(dport, 0);
	assert_int_not_equal(dport, f->port);

	snprintf(addr, sizeof(addr), "127.0.0.1:%u?hostnqn=%s", dport, HOSTNQN);
	assert_ok(pnvme_discover(addr, &e, &n, NULL));
	assert_int_equal(n, 1);
	assert_string_equal(e[0].subnqn, SUBNQN);
	snprintf(port, sizeof(port), "%u", f->port);
	assert_string_equal(e[0].trsvcid, port);
	pnvme_disc_free(e);
	/* Not an I/O port. */
	fd = raw_ic(dport);
	assert_int_equal(raw_connect_q(fd, SUBNQN, 0, PNVME_CONNECT_CNTLID_DYNAMIC, 0, NULL),
			 PNVME_STATUS(PNVME_SCT_CMD, PNVME_SC_CONNECT_INVALID_PARAM) |
			 PNVME_STATUS_DNR);
	close(fd);
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u/%s?hostnqn=%s&ctrl_loss_tmo=0", dport,
		 SUBNQN, HOSTNQN);
	assert_true(pnvme_ctrl_open(addr, NULL, &ctrl) < 0);
	/* The I/O port serves both. */
	assert_ok(pnvme_ctrl_close(open_ok(f, NULL)));
	snprintf(addr, sizeof(addr), "127.0.0.1:%u?hostnqn=%s", f->port, HOSTNQN);
	assert_ok(pnvme_discover(addr, &e, &n, NULL));
	assert_int_equal(n, 1);
	pnvme_disc_free(e);
}

/* Connect queue `qid` of controller `cntlid` on a raw connection; returns the status. */
static uint16_t raw_io_connect(int fd, uint16_t qid, uint16_t cntlid)
{
	struct pnvme_tcp_tx_params tp = { 0 };
	struct pnvme_fabrics_connect cmd = { 0 };
	struct pnvme_fabrics_connect_data d = { 0 };
	struct pnvme_tcp_tx_pdu pdu;
	uint8_t buf[256];
	const struct pnvme_tcp_capsule_resp *r = (const void *)buf;

	cmd.opc = PNVME_OPC_FABRICS;
	cmd.flags = PNVME_SQE_PSDT_SGL_MPTR_CONTIG << PNVME_SQE_PSDT_SHIFT;
	cmd.cid = 8;
	cmd.fctype = PNVME_FCTYPE_CONNECT;
	cmd.sgl1.id = PNVME_SGL_ID_INCAPSULE;
	cmd.sgl1.length = sizeof(d);
	cmd.qid = qid;
	cmd.sqsize = 31;
	d.cntlid = cntlid;
	snprintf(d.subnqn, sizeof(d.subnqn), "%s", SUBNQN);
	snprintf(d.hostnqn, sizeof(d.hostnqn), "%s", HOSTNQN);
	assert_ok(pnvme_tcp_build_capsule_cmd(&pdu, &tp, (const void *)&cmd, &d, sizeof(d)));
	raw_send_pdu(fd, &pdu);
	assert_int_equal(raw_recv_pdu(fd, buf, sizeof(buf)), PNVME_TCP_CAPSULE_RESP);
	return (uint16_t)(r->cqe.status >> 1);
}

/* One command with `len` bytes of in-capsule data (SGL length `sgl_len`); returns the status. */
static uint16_t raw_cmd_icd(int fd, struct pnvme_sqe *sqe, const void *data, uint32_t len,
			uint32_t sgl_len)
{
	struct pnvme_tcp_tx_params tp = { 0 };
	struct pnvme_sgl_desc *sgl = (void *)&sqe->prp1;
	struct pnvme_tcp_tx_pdu pdu;
	uint8_t buf[256];
	const struct pnvme_tcp_capsule_resp *r = (const void *)buf;

	sqe->flags = PNVME_SQE_PSDT_SGL_MPTR_CONTIG << PNVME_SQE_PSDT_SHIFT;
	memset(sgl, 0, sizeof(*sgl));
	sgl->id = len ? PNVME_SGL_ID_INCAPSULE : PNVME_SGL_ID_TRANSPORT;
	sgl->length = sgl_len;
	assert_ok(pnvme_tcp_build_capsule_cmd(&pdu, &tp, sqe, data, len));
	raw_send_pdu(fd, &pdu);
	assert_int_equal(raw_recv_pdu(fd, buf, sizeof(buf)), PNVME_TCP_CAPSULE_RESP);
	assert_int_equal(r->cqe.cid, sqe->cid);
	return (uint16_t)(r->cqe.status >> 1);
}

/*
 * Dataset Management as the Linux host sends it: NR ranges, but always a 4 KiB
 * buffer (NVME_DSM_MAX_RANGES x 16 bytes) in the SGL (nvme_setup_discard), which
 * Linux's target accepts (nvmet_check_data_len_lte). The target takes the NR
 * ranges and ignores the rest; shorter than the ranges, or beyond 256 ranges,
 * is still Data SGL Length Invalid.
 */
static void test_dsm_linux_buffer(void **state)
{
	struct fix *f = *state;
	struct pnvme_fabrics_prop_set ps = { 0 };
	struct pnvme_dsm_range r[256] = { { .nlb = 8, .slba = 64 } };
	static uint8_t wdata[16 * LBA], big[8192];
	const struct pnvme_ns *bns = pnvme_ctrl_ns(f->be, 1);
	struct pnvme_sqe sqe = { 0 };
	struct pnvme_qpair *bqp;
	uint16_t cntlid;
	uint8_t *buf;
	int afd = raw_ic(f->port), iofd;

	assert_int_equal(raw_admin_connect(afd, 0, &cntlid), 0);
	ps.opc = PNVME_OPC_FABRICS;
	ps.cid = 9;
	ps.fctype = PNVME_FCTYPE_PROPERTY_SET;
	ps.attrib = PNVME_PROP_SIZE_4;
	ps.ofst = PNVME_REG_CC;
	ps.value = PNVME_SET(PNVME_CC_EN, 1u) | PNVME_SET(PNVME_CC_IOSQES, 6u) |
		   PNVME_SET(PNVME_CC_IOCQES, 4u);
	assert_int_equal(raw_cmd_icd(afd, (struct pnvme_sqe *)(void *)&ps, NULL, 0, 0), 0);
	iofd = raw_ic(f->port);
	assert_int_equal(raw_io_connect(iofd, 1, cntlid), 0);

	/* 16 blocks of 0xab at LBA 64 (in the capsule) */
	memset(wdata, 0xab, sizeof(wdata));
	sqe.opc = PNVME_NVM_WRITE;
	sqe.cid = 1;
	sqe.nsid = 1;
	sqe.cdw10 = 64;
	sqe.cdw12 = 16 - 1;
	assert_int_equal(raw_cmd_icd(iofd, &sqe, wdata, sizeof(wdata), sizeof(wdata)), 0);

	/* Deallocate LBA 64..71: one range (NR 0) in a 4 KiB buffer */
	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = PNVME_NVM_DSM;
	sqe.cid = 2;
	sqe.nsid = 1;
	sqe.cdw10 = 0;
	sqe.cdw11 = PNVME_DSM_AD;
	assert_int_equal(raw_cmd_icd(iofd, &sqe, r, sizeof(r), sizeof(r)), 0);
	/* Shorter than the NR ranges, or more than 256 ranges can need: refused */
	sqe.cid = 3;
	sqe.cdw10 = 1;
	assert_int_equal(raw_cmd_icd(iofd, &sqe, r, 16, 16) & 0x7ffu,
			 PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_SGL_INVALID_DATA));
	sqe.cid = 4;
	sqe.cdw10 = 0;
	assert_int_equal(raw_cmd_icd(iofd, &sqe, big, sizeof(big), sizeof(big)) & 0x7ffu,
			 PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_SGL_INVALID_DATA));

	/* On the backend: 64..71 deallocated (zeroes), 72..79 as written */
	assert_ok(pnvme_dma_alloc(f->be, sizeof(wdata), 0, (void **)&buf, NULL));
	assert_ok(pnvme_qpair_create(f->be, NULL, &bqp));
	assert_ok(pnvme_read_sync(bqp, bns, buf, 64, 16, 0));
	for (unsigned i = 0; i < 8 * LBA; i++)
		assert_int_equal(buf[i], 0);
	assert_memory_equal(buf + 8 * LBA, wdata, 8 * LBA);
	assert_ok(pnvme_qpair_destroy(bqp));
	pnvme_dma_free(f->be, buf);

	/*
	 * A Read as the Linux host sends it, SQ flow control on (this queue's
	 * Connect left CATTR 0): C2HData without SUCCESS, then the CapsuleResp
	 * (queued together, they leave in one sendmsg).
	 */
	{
		static uint8_t pdu[8192 + 64];
		const struct pnvme_tcp_c2h_data *d = (const void *)pdu;
		const struct pnvme_tcp_capsule_resp *rsp = (const void *)pdu;

		memset(&sqe, 0, sizeof(sqe));
		sqe.opc = PNVME_NVM_READ;
		sqe.cid = 5;
		sqe.nsid = 1;
		sqe.cdw10 = 72;
		sqe.cdw12 = 8 - 1;
		raw_cmd_send(iofd, &sqe, 8 * LBA);
		assert_int_equal(raw_recv_pdu(iofd, pdu, sizeof(pdu)), PNVME_TCP_C2H_DATA);
		assert_int_equal(d->cccid, 5);
		assert_int_equal(d->datal, 8 * LBA);
		assert_false(d->ch.flags & PNVME_TCP_F_SUCCESS);
		assert_memory_equal(pdu + d->ch.pdo, wdata, 8 * LBA);
		assert_int_equal(raw_recv_pdu(iofd, pdu, sizeof(pdu)), PNVME_TCP_CAPSULE_RESP);
		assert_int_equal(rsp->cqe.cid, 5);
		assert_int_equal(rsp->cqe.status >> 1, 0);
	}
	close(iofd);
	close(afd);
}

/*
 * A host that stops reading: the target's sends hit a full socket (the host's
 * receive buffer shrunk to its minimum before connecting, 30 reads of 8 KiB
 * queued), the connection waits on the group's txq and the poller sleeps on
 * room to send; another host's reads flow meanwhile; once the host reads
 * again, every response arrives, in order, with the data of the media.
 */
#define SLOW_CMDS 30u
#define SLOW_LBAS 16u
static void test_slow_reader(void **state)
{
	struct fix *f = *state;
	static uint8_t media[SLOW_CMDS * SLOW_LBAS * LBA], got[SLOW_LBAS * LBA];
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	uint8_t *dbuf;
	uint16_t cntlid;
	int afd, fd;

	for (size_t i = 0; i < sizeof(media); i++)
		media[i] = (uint8_t)(i * 7u + i / 4096u);
	assert_ok(pnvme_emu_media_write(f->emu, 1, 0, media, sizeof(media)));
	afd = raw_admin_ready(f, SUBNQN, 0, &cntlid);
	fd = raw_connect_rcvbuf(f->port, 1); /* the kernel rounds it up to its minimum */
	raw_icreq(fd);
	assert_int_equal(raw_io_connect(fd, 1, cntlid), 0);
	for (uint32_t k = 0; k < SLOW_CMDS; k++) {
		struct pnvme_sqe sqe = { .opc = PNVME_NVM_READ, .cid = (uint16_t)(100 + k), .nsid = 1,
					 .cdw10 = k * SLOW_LBAS, .cdw12 = SLOW_LBAS - 1 };

		raw_cmd_send(fd, &sqe, SLOW_LBAS * LBA);
	}
	/* 240 KiB of responses against a few KiB of window: the target waits to send. */
	usleep(300 * 1000);
	ctrl = open_ok(f, NULL); /* another host meanwhile: its reads flow */
	assert_ok(pnvme_qpair_create(ctrl, NULL, &qp));
	assert_ok(pnvme_dma_alloc(ctrl, sizeof(got), 0, (void **)&dbuf, NULL));
	for (uint32_t k = 0; k < SLOW_CMDS; k++) {
		assert_ok(pnvme_read_sync(qp, pnvme_ctrl_ns(ctrl, 1), dbuf, (uint64_t)k * SLOW_LBAS,
					  SLOW_LBAS, 0));
		assert_memory_equal(dbuf, media + (size_t)k * SLOW_LBAS * LBA, sizeof(got));
	}
	pnvme_dma_free(ctrl, dbuf);
	assert_ok(pnvme_qpair_destroy(qp));
	assert_ok(pnvme_ctrl_close(ctrl));
	for (uint32_t k = 0; k < SLOW_CMDS; k++) {
		memset(got, 0, sizeof(got));
		assert_int_equal(raw_cmd_wait(fd, got, sizeof(got), NULL), 0);
		/* in order on one queue: the k-th read's blocks */
		assert_memory_equal(got, media + (size_t)k * SLOW_LBAS * LBA, sizeof(got));
	}
	close(fd);
	close(afd);
}

static void test_opts(void **state)
{
	struct pnvme_tgt_opts o;
	struct pnvme_tgt *t;

	(void)state;
	pnvme_tgt_opts_default(&o);
	o.listen = "nonsense";
	assert_int_equal(pnvme_tgt_create(&o, &t), -EINVAL);
	o.listen = "127.0.0.1:0";
	o.max_xfer = 3000;
	assert_int_equal(pnvme_tgt_create(&o, &t), -EINVAL);
	pnvme_tgt_opts_default(&o);
	o.listen = "[::1]:0";
	assert_ok(pnvme_tgt_create(&o, &t));
	assert_int_equal(pnvme_tgt_add_subsys(t, PNVME_DISCOVERY_NQN), -EINVAL);
	assert_ok(pnvme_tgt_add_subsys(t, SUBNQN));
	assert_int_equal(pnvme_tgt_add_subsys(t, SUBNQN), -EEXIST);
	assert_int_equal(pnvme_tgt_allow_host(t, "nqn.nosuch", NULL), -ENOENT);
	pnvme_tgt_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opts),
		cmocka_unit_test_setup_teardown(test_connect_identify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_whole_ns_rw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_digests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_zeroes_dsm_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dsm_linux_buffer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_fault, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_pdus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ic_timeout, setup_short_ic, teardown),
		cmocka_unit_test_setup_teardown(test_many_conns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kato, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_sleeps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_aen_ns_changed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_aen_discovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cc_disable_ioq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_broadcast, setup, teardown),
		cmocka_unit_test_setup_teardown(test_smart_aggregate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discovery_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_target_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_with_host, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
