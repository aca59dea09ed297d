/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_tgt_cmds.c - libFuzzer target: arbitrary command capsules against a
 * live virtual controller of the NVMe/TCP target (src/tgt), backed by an
 * emulated controller.
 *
 * Once per process: an emulated backend (4 MiB, 512-byte blocks, its own
 * thread) exported as namespace 1 of a subsystem, and a target without
 * polling threads (the harness calls pnvme_tgt_poll). Per input: a fresh
 * admin connection and I/O queue 1 over socketpairs, set up as a host would
 * (ICReq, Connect, CC.EN = 1), then the input's records as capsules:
 *
 *   ctl (1): bit 0: on the I/O queue (else admin); bit 1: the SQE's SGL is
 *            replaced by a well-formed one for `len` bytes (bit 2: in the
 *            capsule, else a transport data block); bit 3: after this record,
 *            wait for the target to go quiet; bit 4: raw bytes instead of a
 *            capsule (len bytes of the input go to the stream as they are)
 *   len (2): data bytes (capped at 8 KiB for in-capsule data)
 *   sqe (64): the command, as given (CID too)
 *   data: len bytes of in-capsule data, or for raw records the bytes
 *
 * The host side answers every R2T with the H2CData it asks for (and drops
 * C2H data), through the library's own PDU receiver. The harness traps when
 * the target does not go quiet, or leaves a connection behind after both
 * closed. Memory errors are ASan's.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pnvme/pnvme.h>

#include "tcp/pdu.h"
#include "tgt/tgt_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SUBNQN  "nqn.2024-01.io.pnvme:fuzz"
#define HOSTNQN "nqn.2024-01.io.pnvme:fuzz-host"
#define ICD_MAX 8192u

static struct pnvme_emu *emu;
static struct pnvme_ctrl *be;
static struct pnvme_tgt *tgt;
static uint8_t pattern[256 * 1024];

static void trap(const char *why)
{
	fprintf(stderr, "fuzz_tgt_cmds: %s\n", why);
	__builtin_trap();
}

/* The host side of one connection. */
struct hostq {
	int fd;
	bool dead;
	struct pnvme_tcp_rx rx;
	struct pnvme_tcp_tx_params tp;
	uint32_t resps;
	struct pnvme_cqe last;
	uint8_t rbuf[65536];
};

static void host_send(struct hostq *h, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n && !h->dead) {
		ssize_t w = send(h->fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			(void)pnvme_tgt_poll(tgt); /* let the target read */
			continue;
		}
		if (w <= 0) {
			h->dead = true;
			return;
		}
		b += w;
		n -= (size_t)w;
	}
}

static void host_send_pdu(struct hostq *h, struct pnvme_tcp_tx_pdu *pdu)
{
	struct iovec iov[3];
	int n = pnvme_tcp_pdu_iov(pdu, iov);

	for (int i = 0; i < n; i++)
		host_send(h, iov[i].iov_base, iov[i].iov_len);
}

static int h_hdr(void *arg, struct pnvme_tcp_rx *rx, struct pnvme_tcp_rx_pdu *pdu)
{
	struct hostq *h = arg;

	(void)rx;
	if (pdu->type == PNVME_TCP_ICRESP)
		pnvme_tcp_rx_set_digests(rx, false, false);
	if (pdu->type == PNVME_TCP_R2T) {
		const struct pnvme_tcp_r2t *r = &pdu->hdr->r2t;
		uint32_t off = r->r2to, end = r->r2to + r->r2tl;

		/* Answer with H2CData of at most 64 KiB each, LAST on the final one. */
		while (off < end && !h->dead) {
			struct pnvme_tcp_tx_pdu d;
			uint32_t n = end - off < 65536u ? end - off : 65536u;

			if (n > sizeof(pattern))
				n = sizeof(pattern);
			if (pnvme_tcp_build_h2c_data(&d, &h->tp, r->cccid, r->ttag, off, pattern, n,
						     off + n == end))
				break;
			host_send_pdu(h, &d);
			off += n;
		}
	}
	return 0; /* C2H data is dropped */
}

static int h_done(void *arg, struct pnvme_tcp_rx *rx, const struct pnvme_tcp_rx_pdu *pdu,
		  int ddgst)
{
	struct hostq *h = arg;

	(void)rx;
	(void)ddgst;
	if (pdu->type == PNVME_TCP_CAPSULE_RESP) {
		h->resps++;
		h->last = pdu->hdr->resp.cqe;
	} else if (pdu->type == PNVME_TCP_C2H_DATA && (pdu->flags & PNVME_TCP_F_SUCCESS)) {
		h->resps++;
		memset(&h->last, 0, sizeof(h->last));
	}
	return 0;
}

static const struct pnvme_tcp_rx_ops hops = { .pdu_hdr = h_hdr, .pdu_done = h_done };

static void host_recv(struct hostq *h)
{
	for (;;) {
		ssize_t n = recv(h->fd, h->rbuf, sizeof(h->rbuf), MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			h->dead = true;
			return;
		}
		if (pnvme_tcp_rx_feed(&h->rx, h->rbuf, (size_t)n))
			h->dead = true; /* a C2HTermReq, or something this host refuses */
	}
}

static bool tgt_busy(void)
{
	const struct tgt_group *g = &tgt->groups[0];

	for (unsigned i = 0; i < TGT_MAX_BACKENDS; i++)
		if (g->bq[i].outstanding)
			return true;
	return g->wait_head != NULL;
}

/* Poll the target and both hosts until nothing moves for a while. */
static void settle(struct hostq *a, struct hostq *b)
{
	unsigned quiet = 0;

	for (unsigned i = 0; i < 2000000u; i++) {
		int w = pnvme_tgt_poll(tgt);

		if (a)
			host_recv(a);
		if (b)
			host_recv(b);
		if (w > 0 || tgt_busy())
			quiet = 0;
		else if (++quiet > 50)
			return;
	}
	trap("the target did not go quiet");
}

static int host_open(struct hostq *h)
{
	struct pnvme_tcp_rx_cfg cfg = { .host = true, .ops = &hops, .arg = h };
	struct pnvme_tcp_tx_pdu pdu;
	int sv[2];

	memset(h, 0, sizeof(*h));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		return -1;
	h->fd = sv[1];
	if (tgt_conn_adopt(tgt, sv[0])) {
		close(sv[1]);
		return -1;
	}
	if (pnvme_tcp_rx_init(&h->rx, &cfg))
		trap("rx init");
	pnvme_tcp_build_icreq(&pdu, 0, 0, 0);
	host_send_pdu(h, &pdu);
	return 0;
}

static void host_capsule(struct hostq *h, const struct pnvme_sqe *sqe, const void *data,
			 uint32_t len)
{
	struct pnvme_tcp_tx_pdu pdu;

	if (!pnvme_tcp_build_capsule_cmd(&pdu, &h->tp, sqe, data, len))
		host_send_pdu(h, &pdu);
}

static void connect_q(struct hostq *h, uint16_t qid, uint16_t cntlid)
{
	struct pnvme_fabrics_connect cmd = { 0 };
	struct pnvme_fabrics_connect_data d = { 0 };

	cmd.opc = PNVME_OPC_FABRICS;
	cmd.flags = PNVME_SQE_PSDT_SGL_MPTR_CONTIG << PNVME_SQE_PSDT_SHIFT;
	cmd.cid = 0xfff0;
	cmd.fctype = PNVME_FCTYPE_CONNECT;
	cmd.sgl1.id = PNVME_SGL_ID_INCAPSULE;
	cmd.sgl1.length = sizeof(d);
	cmd.qid = qid;
	cmd.sqsize = 63;
	cmd.cattr = qid ? TGT_CATTR_NO_SQFLOW : 0;
	d.cntlid = cntlid;
	snprintf(d.subnqn, sizeof(d.subnqn), "%s", SUBNQN);
	snprintf(d.hostnqn, sizeof(d.hostnqn), "%s", HOSTNQN);
	host_capsule(h, (const void *)&cmd, &d, sizeof(d));
}

static void enable(struct hostq *h)
{
	struct pnvme_fabrics_prop_set s = { 0 };

	s.opc = PNVME_OPC_FABRICS;
	s.flags = PNVME_SQE_PSDT_SGL_MPTR_CONTIG << PNVME_SQE_PSDT_SHIFT;
	s.cid = 0xfff1;
	s.fctype = PNVME_FCTYPE_PROPERTY_SET;
	s.attrib = PNVME_PROP_SIZE_4;
	s.ofst = PNVME_REG_CC;
	s.value = PNVME_SET(PNVME_CC_EN, 1u) | PNVME_SET(PNVME_CC_IOSQES, 6u) |
		  PNVME_SET(PNVME_CC_IOCQES, 4u);
	host_capsule(h, (const void *)&s, NULL, 0);
}

static int init_once(void)
{
	struct pnvme_tgt_opts o;

	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7u + 3u);
	if (pnvme_emu_create("emu:size=4M,lba=512,mode=thread", &emu) ||
	    pnvme_ctrl_open_emu(emu, NULL, &be))
		return -1;
	pnvme_tgt_opts_default(&o);
	o.listen = "127.0.0.1:0";
	o.nr_threads = 0;
	o.queue_size = 64;
	o.ic_timeout_ms = 60000;
	if (pnvme_tgt_create(&o, &tgt) || pnvme_tgt_add_subsys(tgt, SUBNQN) ||
	    pnvme_tgt_add_ns(tgt, SUBNQN, 1, be, 1) != 1 ||
	    pnvme_tgt_allow_host(tgt, SUBNQN, HOSTNQN) || pnvme_tgt_start(tgt))
		return -1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct hostq *aq = NULL, *iq = NULL;
	uint16_t cntlid;

	if (!ready) {
		if (init_once())
			trap("setup failed");
		ready = true;
	}
	aq = calloc(1, sizeof(*aq));
	iq = calloc(1, sizeof(*iq));
	if (!aq || !iq || host_open(aq) || host_open(iq))
		trap("connections");
	/* Set-up as a host: admin Connect, CC.EN = 1, I/O queue 1. */
	connect_q(aq, 0, PNVME_CONNECT_CNTLID_DYNAMIC);
	settle(aq, iq);
	if (aq->resps != 1 || (aq->last.status >> 1))
		trap("admin Connect failed");
	cntlid = (uint16_t)aq->last.dw0;
	enable(aq);
	connect_q(iq, 1, cntlid);
	settle(aq, iq);
	if (iq->resps != 1 || (iq->last.status >> 1))
		trap("I/O Connect failed");

	while (size >= 3 + 64) {
		uint8_t ctl = data[0];
		uint32_t len = (uint32_t)data[1] | (uint32_t)data[2] << 8;
		struct hostq *h = (ctl & 1) ? iq : aq;
		struct pnvme_sqe sqe;

		memcpy(&sqe, data + 3, sizeof(sqe));
		data += 3 + 64;
		size -= 3 + 64;
		if (ctl & 0x10) {
			size_t n = len < size ? len : size;

			host_send(h, &sqe, sizeof(sqe)); /* raw bytes */
			host_send(h, data, n);
			data += n;
			size -= n;
		} else if (ctl & 2) {
			struct pnvme_sgl_desc *sgl = (void *)&sqe.prp1;
			bool incap = ctl & 4;

			if (incap && len > ICD_MAX)
				len = ICD_MAX;
			sqe.flags = (uint8_t)((sqe.flags & 0x3fu) |
					      (PNVME_SQE_PSDT_SGL_MPTR_CONTIG << PNVME_SQE_PSDT_SHIFT));
			memset(sgl, 0, sizeof(*sgl));
			sgl->length = len;
			sgl->id = incap ? PNVME_SGL_ID_INCAPSULE : PNVME_SGL_ID_TRANSPORT;
			if (incap) {
				size_t n = len < size ? len : size;
				uint8_t *buf = calloc(1, len ? len : 1);

				if (!buf)
					trap("oom");
				memcpy(buf, data, n);
				data += n;
				size -= n;
				host_capsule(h, &sqe, buf, len);
				free(buf);
			} else {
				host_capsule(h, &sqe, NULL, 0);
			}
		} else {
			host_capsule(h, &sqe, NULL, 0);
		}
		if (ctl & 8)
			settle(aq, iq);
	}
	settle(aq, iq);
	close(aq->fd);
	close(iq->fd);
	/* Both connections close (a closing one may linger 200 ms); nothing stays behind. */
	for (uint64_t end = tgt_now_ms() + 5000; tgt->groups[0].conns && tgt_now_ms() < end;)
		if (!pnvme_tgt_poll(tgt))
			usleep(100);
	if (tgt->groups[0].conns)
		trap("a connection outlived its host");
	free(aq);
	free(iq);
	return 0;
}
