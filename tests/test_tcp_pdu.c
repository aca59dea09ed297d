/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_tcp_pdu.c - the NVMe/TCP PDU layer (src/tcp/pdu.c, src/tcp/crc32c.c):
 * CRC32C vectors, exact bytes of an ICReq and a CapsuleCmd against the
 * layout of TCP 1.0 §3.6, build -> parse round trips of every PDU type with
 * digests off and on, the same stream fed in one piece, byte by byte, in
 * random splits and through the zero-copy path, and malformed input: each
 * refusal with its reason, errno, FES and FEI.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pnvme/tcp_spec.h>

#include "tcp/pdu.h"

/* ------------------------------------------------------------------------ */
/* Harness: a connection that records what the receiver hands it            */
/* ------------------------------------------------------------------------ */

#define MAX_EV   64
#define DATA_CAP 65536

struct ev {
	uint8_t  type, flags, data_off;
	uint32_t plen, data_len;
	uint32_t data_crc;  /* CRC of the data as it landed */
	int      ddgst;     /* status given to pdu_done */
	union pnvme_tcp_hdr hdr;
};

struct conn {
	struct pnvme_tcp_rx rx;
	struct ev ev[MAX_EV];
	unsigned n_hdr, n_done;
	uint8_t  data[DATA_CAP];
	uint32_t used;
	/* knobs */
	bool     drop;        /* leave dst NULL: data is dropped */
	bool     hdgst, ddgst; /* digests to turn on at the IC PDU */
	bool     done_fails;  /* pdu_done returns its ddgst status */
	uint32_t dst_short;   /* give a destination this many bytes too small */
	uint32_t cmd_len;     /* host: data outside [0, cmd_len) is out of range (0: any) */
};

static int on_hdr(void *arg, struct pnvme_tcp_rx *rx, struct pnvme_tcp_rx_pdu *pdu)
{
	struct conn *c = arg;
	struct ev *e;

	assert_ptr_equal(rx, &c->rx);
	assert_true(c->n_hdr < MAX_EV);
	e = &c->ev[c->n_hdr++];
	memset(e, 0, sizeof(*e));
	e->type = pdu->type;
	e->flags = pdu->flags;
	e->data_off = pdu->data_off;
	e->plen = pdu->plen;
	e->data_len = pdu->data_len;
	memcpy(&e->hdr, pdu->hdr, pdu->hdr->ch.hlen);
	if (pdu->type == PNVME_TCP_ICREQ || pdu->type == PNVME_TCP_ICRESP)
		pnvme_tcp_rx_set_digests(rx, c->hdgst, c->ddgst);
	if (c->cmd_len && pdu->type == PNVME_TCP_C2H_DATA &&
	    (uint64_t)pdu->hdr->c2h.datao + pdu->hdr->c2h.datal > c->cmd_len)
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_OUT_OF_RANGE, 0);
	if (pdu->data_len && !c->drop) {
		assert_true(c->used + pdu->data_len <= DATA_CAP);
		pdu->dst = c->data + c->used;
		pdu->dst_len = pdu->data_len - c->dst_short;
	}
	return 0;
}

static int on_done(void *arg, struct pnvme_tcp_rx *rx, const struct pnvme_tcp_rx_pdu *pdu,
		   int ddgst)
{
	struct conn *c = arg;
	struct ev *e = &c->ev[c->n_done];

	assert_ptr_equal(rx, &c->rx);
	assert_int_equal(c->n_done + 1, c->n_hdr);
	c->n_done++;
	e->ddgst = ddgst;
	if (pdu->dst) {
		assert_ptr_equal(pdu->dst, c->data + c->used);
		e->data_crc = pnvme_crc32c(0, pdu->dst, pdu->data_len);
		c->used += pdu->data_len;
	}
	return c->done_fails ? ddgst : 0;
}

static const struct pnvme_tcp_rx_ops ops = { .pdu_hdr = on_hdr, .pdu_done = on_done };

static void conn_init(struct conn *c, bool host, uint8_t pda, uint32_t maxpl)
{
	struct pnvme_tcp_rx_cfg cfg = {
		.host = host, .pda = pda, .maxpl = maxpl, .ops = &ops, .arg = c,
	};

	memset(c, 0, sizeof(*c));
	assert_int_equal(pnvme_tcp_rx_init(&c->rx, &cfg), 0);
	assert_true(pnvme_tcp_rx_idle(&c->rx));
}

/* Append a built PDU to a stream through its iovecs; returns the new length. */
static size_t ser(uint8_t *out, size_t at, const struct pnvme_tcp_tx_pdu *p)
{
	struct iovec iov[3];
	int n = pnvme_tcp_pdu_iov(p, iov);
	size_t start = at;

	assert_true(n >= 1 && n <= 3);
	for (int i = 0; i < n; i++) {
		memcpy(out + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	assert_int_equal(at - start, pnvme_tcp_pdu_plen(p));
	return at;
}

/* A connection past its IC exchange, with digests as given. */
static void conn_up(struct conn *c, bool host, bool hd, bool dd, uint8_t pda)
{
	struct pnvme_tcp_tx_pdu p;
	uint8_t buf[256];
	size_t n;

	conn_init(c, host, pda, 0);
	c->hdgst = hd;
	c->ddgst = dd;
	if (host)
		pnvme_tcp_build_icresp(&p, 0, 0, 65536);
	else
		pnvme_tcp_build_icreq(&p, 0, 0, 0);
	n = ser(buf, 0, &p);
	assert_int_equal(pnvme_tcp_rx_feed(&c->rx, buf, n), 0);
	assert_int_equal(c->n_done, 1);
	c->n_hdr = c->n_done = 0;
	c->used = 0;
}

static void fill(uint8_t *b, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (uint8_t)(seed >> 16);
	}
}

/* Recompute the header digest after a test edited a header in a stream. */
static void fix_hdgst(uint8_t *pdu)
{
	uint32_t d = pnvme_crc32c(0, pdu, pdu[2]);

	memcpy(pdu + pdu[2], &d, 4);
}

/* Feed a stream that must be refused: check reason, errno, FES, FEI. */
static void expect_fail(struct conn *c, const uint8_t *s, size_t n, enum pnvme_tcp_rx_reason reason,
			int err, uint8_t fes, uint32_t fei)
{
	int ret = pnvme_tcp_rx_feed(&c->rx, s, n);

	assert_int_equal(ret, err);
	assert_int_equal(c->rx.error.err, err);
	assert_int_equal(c->rx.error.reason, reason);
	assert_int_equal(c->rx.error.fes, fes);
	assert_int_equal(c->rx.error.fei, fei);
	assert_int_equal(c->rx.state, PNVME_TCP_RXS_ERROR);
	/* Stuck: more bytes give the same error and reach no callback. */
	unsigned h = c->n_hdr, d = c->n_done;
	assert_int_equal(pnvme_tcp_rx_feed(&c->rx, s, n), err);
	assert_int_equal(pnvme_tcp_rx_feed(&c->rx, s, 0), err);
	assert_int_equal(c->n_hdr, h);
	assert_int_equal(c->n_done, d);
}

/* ------------------------------------------------------------------------ */
/* CRC32C and exact bytes                                                    */
/* ------------------------------------------------------------------------ */

static void test_crc32c(void **state)
{
	(void)state;
	uint8_t b[32];

	assert_int_equal(pnvme_crc32c(0, "123456789", 9), 0xe3069283u);
	/* RFC 3720 B.4 (iSCSI) vectors */
	memset(b, 0, sizeof(b));
	assert_int_equal(pnvme_crc32c(0, b, 32), 0x8a9136aau);
	memset(b, 0xff, sizeof(b));
	assert_int_equal(pnvme_crc32c(0, b, 32), 0x62a8ab43u);
	for (unsigned i = 0; i < 32; i++)
		b[i] = (uint8_t)i;
	assert_int_equal(pnvme_crc32c(0, b, 32), 0x46dd794eu);
	/* chaining */
	assert_int_equal(pnvme_crc32c(pnvme_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
	assert_int_equal(pnvme_crc32c(0, b, 0), 0u);
}

static void test_icreq_bytes(void **state)
{
	(void)state;
	struct pnvme_tcp_tx_pdu p;
	uint8_t want[128] = {
		0x00, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00, /* CH: ICReq, HLEN 128, PLEN 128 */
		0x00, 0x00,                                     /* PFV 0 */
		0x02,                                           /* HPDA 2: 12-byte alignment */
		0x03,                                           /* DGST: HDGST | DDGST */
		0x0f, 0x00, 0x00, 0x00,                         /* MAXR2T 15 */
	};
	struct iovec iov[3];

	pnvme_tcp_build_icreq(&p, 2, PNVME_TCP_DGST_HDGST | PNVME_TCP_DGST_DDGST, 15);
	assert_int_equal(pnvme_tcp_pdu_iov(&p, iov), 1);
	assert_int_equal(iov[0].iov_len, 128);
	assert_memory_equal(iov[0].iov_base, want, 128);

	uint8_t resp[16] = {
		0x01, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00, /* CH: ICResp */
		0x00, 0x00, 0x01, 0x01,                         /* PFV, CPDA 1, DGST: HDGST */
		0x00, 0x00, 0x02, 0x00,                         /* MAXH2CDATA 128 KiB */
	};
	pnvme_tcp_build_icresp(&p, 1, PNVME_TCP_DGST_HDGST, 131072);
	assert_int_equal(pnvme_tcp_pdu_iov(&p, iov), 1);
	assert_memory_equal(iov[0].iov_base, resp, 16);
	for (unsigned i = 16; i < 128; i++)
		assert_int_equal(p.hdr.raw[i], 0);
}

static void test_capsule_cmd_bytes(void **state)
{
	(void)state;
	static const uint8_t data[8] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4 };
	struct pnvme_tcp_tx_params tp = { .hdgst = true, .ddgst = true, .pda = 0 };
	struct pnvme_sqe sqe;
	struct pnvme_sgl_desc sgl = { .addr = 0, .length = 8, .id = PNVME_SGL_ID_INCAPSULE };
	struct pnvme_tcp_tx_pdu p;
	uint8_t want[88] = {
		0x04, 0x03, 0x48, 0x4c, 0x58, 0x00, 0x00, 0x00, /* CapsuleCmd, HDGSTF|DDGSTF, HLEN 72,
								 * PDO 76, PLEN 88 */
		0x01, 0x40, 0x34, 0x12, 0x01, 0x00, 0x00, 0x00, /* Write, PSDT 01b, CID, NSID 1 */
		[40] = 0x08, [47] = 0x01,                       /* SGL1 (SQE byte 24): length 8,
								 * in-capsule data block (01h) */
		[48] = 0x10,                                    /* CDW10 */
		[72] = 0xfb, 0x6e, 0x56, 0x87,                  /* HDGST: CRC32C of bytes 0..71 */
		[76] = 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4,      /* in-capsule data */
		[84] = 0x1f, 0xd5, 0x68, 0x82,                  /* DDGST: CRC32C of the data */
	};
	uint8_t got[128];

	memset(&sqe, 0, sizeof(sqe));
	sqe.opc = 0x01;
	sqe.flags = PNVME_SQE_PSDT_SGL_MPTR_CONTIG << PNVME_SQE_PSDT_SHIFT;
	sqe.cid = 0x1234;
	sqe.nsid = 1;
	memcpy((uint8_t *)&sqe + 24, &sgl, sizeof(sgl)); /* over PRP1/PRP2 */
	sqe.cdw10 = 0x10;
	assert_int_equal(pnvme_tcp_build_capsule_cmd(&p, &tp, &sqe, data, 8), 0);
	assert_int_equal(ser(got, 0, &p), sizeof(want));
	assert_memory_equal(got, want, sizeof(want));

	/* CPDA 3: data on a 16-byte boundary, PDO 80 after 4 zero bytes, PLEN 92. */
	tp.pda = 3;
	want[3] = 80;
	want[4] = 92;
	memcpy(want + 72, (uint8_t[]){ 0x82, 0x6d, 0x0f, 0xb3 }, 4); /* digest of the new CH */
	assert_int_equal(pnvme_tcp_build_capsule_cmd(&p, &tp, &sqe, data, 8), 0);
	assert_int_equal(ser(got, 0, &p), 92);
	assert_memory_equal(got, want, 76);
	assert_memory_equal(got + 76, (uint8_t[4]){ 0 }, 4);
	assert_memory_equal(got + 80, data, 8);
	assert_memory_equal(got + 88, want + 84, 4);

	/* Without data and digests: PDO 0, PLEN = HLEN, one iovec. */
	struct pnvme_tcp_tx_params plain = { 0 };
	struct iovec iov[3];
	assert_int_equal(pnvme_tcp_build_capsule_cmd(&p, &plain, &sqe, NULL, 0), 0);
	assert_int_equal(pnvme_tcp_pdu_iov(&p, iov), 1);
	assert_int_equal(p.hdr.ch.flags, 0);
	assert_int_equal(p.hdr.ch.pdo, 0);
	assert_int_equal(p.hdr.ch.plen, 72);
	/* Bad arguments */
	assert_int_equal(pnvme_tcp_build_capsule_cmd(&p, &plain, &sqe, NULL, 8), -EINVAL);
	assert_int_equal(pnvme_tcp_build_h2c_data(&p, &plain, 1, 1, 0, data, 0, true), -EINVAL);
	assert_int_equal(pnvme_tcp_build_c2h_data(&p, &tp, 1, 0, data, UINT32_MAX - 20, true, false),
			 -EMSGSIZE);
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                               */
/* ------------------------------------------------------------------------ */

static void roundtrip(bool hd, bool dd, uint8_t pda)
{
	struct pnvme_tcp_tx_params tp = { .hdgst = hd, .ddgst = dd, .pda = pda };
	static uint8_t s[2 * DATA_CAP];
	static uint8_t d1[5000], d2[77];
	static struct conn c;
	struct pnvme_tcp_tx_pdu p;
	struct pnvme_sqe sqe;
	struct pnvme_cqe cqe = { .dw0 = 0xfeedf00d, .sqhd = 5, .sqid = 1, .cid = 0x77, .status = 0x8002 };
	size_t n;

	fill(d1, sizeof(d1), 1);
	fill(d2, sizeof(d2), 2);
	memset(&sqe, 0x5a, sizeof(sqe));

	/* Target side: CapsuleCmd without and with data, H2CData, H2CTermReq. */
	conn_up(&c, false, hd, dd, pda);
	n = 0;
	assert_int_equal(pnvme_tcp_build_capsule_cmd(&p, &tp, &sqe, NULL, 0), 0);
	n = ser(s, n, &p);
	assert_int_equal(pnvme_tcp_build_capsule_cmd(&p, &tp, &sqe, d2, sizeof(d2)), 0);
	n = ser(s, n, &p);
	assert_int_equal(pnvme_tcp_build_h2c_data(&p, &tp, 0x77, 0x99, 4096, d1, sizeof(d1), true), 0);
	n = ser(s, n, &p);
	pnvme_tcp_build_term_req(&p, true, PNVME_TCP_FES_DATA_OUT_OF_RANGE, 0, d2, 30);
	n = ser(s, n, &p);
	assert_int_equal(pnvme_tcp_rx_feed(&c.rx, s, n), 0);
	assert_true(pnvme_tcp_rx_idle(&c.rx));
	assert_int_equal(c.n_done, 4);
	uint8_t hf = hd ? PNVME_TCP_F_HDGSTF : 0, df = dd ? PNVME_TCP_F_DDGSTF : 0;
	uint32_t hl = hd ? 4 : 0, align = (pda + 1u) * 4u;

	assert_int_equal(c.ev[0].type, PNVME_TCP_CAPSULE_CMD);
	assert_int_equal(c.ev[0].flags, hf);
	assert_int_equal(c.ev[0].data_len, 0);
	assert_int_equal(c.ev[0].plen, 72 + hl);
	assert_memory_equal(&c.ev[0].hdr.cmd.sqe, &sqe, sizeof(sqe));
	assert_int_equal(c.ev[1].type, PNVME_TCP_CAPSULE_CMD);
	assert_int_equal(c.ev[1].flags, hf | df);
	assert_int_equal(c.ev[1].data_off, (72 + hl + align - 1) / align * align);
	assert_int_equal(c.ev[1].data_len, sizeof(d2));
	assert_int_equal(c.ev[1].data_crc, pnvme_crc32c(0, d2, sizeof(d2)));
	assert_int_equal(c.ev[1].ddgst, 0);
	assert_int_equal(c.ev[2].type, PNVME_TCP_H2C_DATA);
	assert_int_equal(c.ev[2].flags, hf | df | PNVME_TCP_F_LAST_PDU);
	assert_int_equal(c.ev[2].hdr.h2c.cccid, 0x77);
	assert_int_equal(c.ev[2].hdr.h2c.ttag, 0x99);
	assert_int_equal(c.ev[2].hdr.h2c.datao, 4096);
	assert_int_equal(c.ev[2].hdr.h2c.datal, sizeof(d1));
	assert_int_equal(c.ev[2].data_crc, pnvme_crc32c(0, d1, sizeof(d1)));
	assert_int_equal(c.ev[3].type, PNVME_TCP_H2C_TERM_REQ);
	assert_int_equal(c.ev[3].flags, 0);
	assert_int_equal(c.ev[3].hdr.term.fes, PNVME_TCP_FES_DATA_OUT_OF_RANGE);
	assert_int_equal(c.ev[3].data_off, 24);
	assert_int_equal(c.ev[3].data_len, 30);
	assert_int_equal(c.ev[3].data_crc, pnvme_crc32c(0, d2, 30));

	/* Host side: CapsuleResp, R2T, C2HData (two PDUs, the last with SUCCESS), C2HTermReq. */
	conn_up(&c, true, hd, dd, pda);
	n = 0;
	pnvme_tcp_build_capsule_resp(&p, &tp, &cqe);
	n = ser(s, n, &p);
	pnvme_tcp_build_r2t(&p, &tp, 0x77, 0x1234, 8192, 65536);
	n = ser(s, n, &p);
	assert_int_equal(pnvme_tcp_build_c2h_data(&p, &tp, 0x78, 0, d1, 4000, false, false), 0);
	n = ser(s, n, &p);
	assert_int_equal(pnvme_tcp_build_c2h_data(&p, &tp, 0x78, 4000, d1 + 4000, 1000, true, true), 0);
	n = ser(s, n, &p);
	pnvme_tcp_build_term_req(&p, false, PNVME_TCP_FES_INVALID_HEADER_FIELD, 3, d1, 500);
	n = ser(s, n, &p);
	assert_int_equal(pnvme_tcp_rx_feed(&c.rx, s, n), 0);
	assert_int_equal(c.n_done, 5);
	assert_int_equal(c.ev[0].type, PNVME_TCP_CAPSULE_RESP);
	assert_int_equal(c.ev[0].flags, hf);
	assert_memory_equal(&c.ev[0].hdr.resp.cqe, &cqe, sizeof(cqe));
	assert_int_equal(c.ev[1].type, PNVME_TCP_R2T);
	assert_int_equal(c.ev[1].hdr.r2t.cccid, 0x77);
	assert_int_equal(c.ev[1].hdr.r2t.ttag, 0x1234);
	assert_int_equal(c.ev[1].hdr.r2t.r2to, 8192);
	assert_int_equal(c.ev[1].hdr.r2t.r2tl, 65536);
	assert_int_equal(c.ev[2].type, PNVME_TCP_C2H_DATA);
	assert_int_equal(c.ev[2].flags, hf | df);
	assert_int_equal(c.ev[2].hdr.c2h.cccid, 0x78);
	assert_int_equal(c.ev[2].data_crc, pnvme_crc32c(0, d1, 4000));
	assert_int_equal(c.ev[3].flags, hf | df | PNVME_TCP_F_LAST_PDU | PNVME_TCP_F_SUCCESS);
	assert_int_equal(c.ev[3].hdr.c2h.datao, 4000);
	/* Both C2HData PDUs landed back to back in the caller's buffer: the whole read. */
	assert_memory_equal(c.data, d1, 5000);
	assert_int_equal(c.ev[4].type, PNVME_TCP_C2H_TERM_REQ);
	assert_int_equal(c.ev[4].data_len, PNVME_TCP_TERM_REQ_MAX_DATA); /* clipped */
	uint32_t fei;
	memcpy(&fei, c.ev[4].hdr.term.fei, 4);
	assert_int_equal(fei, 3);
}

static void test_roundtrip(void **state)
{
	(void)state;
	for (int hd = 0; hd < 2; hd++)
		for (int dd = 0; dd < 2; dd++)
			for (uint8_t pda = 0; pda <= PNVME_TCP_PDA_MAX; pda += 5)
				roundtrip(hd, dd, pda);
}

static void test_ic_roundtrip(void **state)
{
	(void)state;
	static struct conn c;
	struct pnvme_tcp_tx_pdu p;
	uint8_t s[256];

	conn_init(&c, false, 0, 0);
	pnvme_tcp_build_icreq(&p, 7, PNVME_TCP_DGST_DDGST, 3);
	assert_int_equal(pnvme_tcp_rx_feed(&c.rx, s, ser(s, 0, &p)), 0);
	assert_int_equal(c.ev[0].type, PNVME_TCP_ICREQ);
	assert_int_equal(c.ev[0].hdr.icreq.hpda, 7);
	assert_int_equal(c.ev[0].hdr.icreq.dgst, PNVME_TCP_DGST_DDGST);
	assert_int_equal(c.ev[0].hdr.icreq.maxr2t, 3);

	conn_init(&c, true, 0, 0);
	pnvme_tcp_build_icresp(&p, 31, 0, 4096);
	assert_int_equal(pnvme_tcp_rx_feed(&c.rx, s, ser(s, 0, &p)), 0);
	assert_int_equal(c.ev[0].type, PNVME_TCP_ICRESP);
	assert_int_equal(c.ev[0].hdr.icresp.cpda, 31);
	assert_int_equal(c.ev[0].hdr.icresp.maxh2cdata, 4096);
}

/* ------------------------------------------------------------------------ */
/* Chunking: one stream, every way of cutting it, the same result            */
/* ------------------------------------------------------------------------ */

enum feed_mode { FEED_ALL, FEED_BYTES, FEED_RANDOM, FEED_DIRECT };

static void feed_stream(struct conn *c, const uint8_t *s, size_t n, enum feed_mode mode,
			uint32_t seed)
{
	size_t at = 0;

	while (at < n) {
		size_t k = n - at;
		void *dst;
		size_t direct = pnvme_tcp_rx_direct(&c->rx, &dst);

		if (mode == FEED_DIRECT && direct) {
			/* A recv() straight into the destination: a random part of what it wants. */
			seed = seed * 1103515245u + 12345u;
			k = 1 + (seed >> 8) % direct;
			if (k > n - at)
				k = n - at;
			memcpy(dst, s + at, k);
			assert_int_equal(pnvme_tcp_rx_direct_done(&c->rx, k), 0);
			at += k;
			continue;
		}
		if (mode == FEED_BYTES)
			k = 1;
		else if (mode == FEED_RANDOM || mode == FEED_DIRECT) {
			seed = seed * 1103515245u + 12345u;
			k = 1 + (seed >> 8) % 200;
			if (k > n - at)
				k = n - at;
		}
		assert_int_equal(pnvme_tcp_rx_feed(&c->rx, s + at, k), 0);
		at += k;
	}
}

static void test_chunking(void **state)
{
	(void)state;
	struct pnvme_tcp_tx_params tp = { .hdgst = true, .ddgst = true, .pda = 7 };
	static uint8_t s[DATA_CAP], d[20000];
	static struct conn ref, c;
	struct pnvme_tcp_tx_pdu p;
	struct pnvme_cqe cqe = { .cid = 9 };
	size_t n = 0;
	uint32_t off = 0;

	fill(d, sizeof(d), 3);
	for (unsigned i = 0; i < 24; i++) {
		uint32_t len = 1 + (i * 397u) % 1500u;

		switch (i % 3) {
		case 0:
			pnvme_tcp_build_capsule_resp(&p, &tp, &cqe);
			break;
		case 1:
			pnvme_tcp_build_r2t(&p, &tp, (uint16_t)i, (uint16_t)i, off, len);
			break;
		default:
			assert_int_equal(pnvme_tcp_build_c2h_data(&p, &tp, (uint16_t)i, off, d + off, len,
								  i & 1, false), 0);
			off += len;
			break;
		}
		n = ser(s, n, &p);
	}
	assert_true(off <= sizeof(d));

	conn_up(&ref, true, true, true, 7);
	feed_stream(&ref, s, n, FEED_ALL, 0);
	assert_int_equal(ref.n_done, 24);
	assert_memory_equal(ref.data, d, off);
	assert_true(pnvme_tcp_rx_idle(&ref.rx));

	for (int mode = FEED_BYTES; mode <= FEED_DIRECT; mode++) {
		for (uint32_t seed = 1; seed <= (mode == FEED_BYTES ? 1u : 20u); seed++) {
			conn_up(&c, true, true, true, 7);
			feed_stream(&c, s, n, (enum feed_mode)mode, seed);
			assert_true(pnvme_tcp_rx_idle(&c.rx));
			assert_int_equal(c.n_done, ref.n_done);
			assert_memory_equal(c.ev, ref.ev, sizeof(ref.ev[0]) * ref.n_done);
			assert_memory_equal(c.data, ref.data, off);
		}
	}

	/* Dropped data (no destination) still parses and is digest-checked. */
	conn_up(&c, true, true, true, 7);
	c.drop = true;
	feed_stream(&c, s, n, FEED_RANDOM, 99);
	assert_int_equal(c.n_done, 24);
	for (unsigned i = 0; i < 24; i++)
		assert_int_equal(c.ev[i].ddgst, 0);
	assert_int_equal(c.used, 0);
}

static void test_direct(void **state)
{
	(void)state;
	struct pnvme_tcp_tx_params tp = { .ddgst = true };
	static struct conn c;
	struct pnvme_tcp_tx_pdu p;
	uint8_t s[4200], d[4096];
	void *dst;
	size_t n;

	fill(d, sizeof(d), 4);
	conn_up(&c, true, false, true, 0);
	assert_int_equal(pnvme_tcp_build_c2h_data(&p, &tp, 1, 0, d, sizeof(d), true, true), 0);
	n = ser(s, 0, &p);
	assert_int_equal(pnvme_tcp_rx_direct(&c.rx, &dst), 0);
	assert_int_equal(pnvme_tcp_rx_feed(&c.rx, s, 24), 0);
	/* Header in: the data goes straight to the caller's buffer. */
	assert_int_equal(pnvme_tcp_rx_direct(&c.rx, &dst), sizeof(d));
	assert_ptr_equal(dst, c.data);
	memcpy(dst, s + 24, 1000);
	assert_int_equal(pnvme_tcp_rx_direct_done(&c.rx, 1000), 0);
	assert_int_equal(pnvme_tcp_rx_direct(&c.rx, &dst), sizeof(d) - 1000);
	assert_ptr_equal(dst, c.data + 1000);
	assert_int_equal(pnvme_tcp_rx_direct_done(&c.rx, sizeof(d)), -EINVAL); /* more than asked */
	memcpy(dst, s + 1024, sizeof(d) - 1000);
	assert_int_equal(pnvme_tcp_rx_direct_done(&c.rx, sizeof(d) - 1000), 0);
	/* Now the data digest: no direct destination any more. */
	assert_int_equal(pnvme_tcp_rx_direct(&c.rx, &dst), 0);
	assert_int_equal(pnvme_tcp_rx_feed(&c.rx, s + 24 + sizeof(d), n - 24 - sizeof(d)), 0);
	assert_int_equal(c.n_done, 1);
	assert_int_equal(c.ev[0].ddgst, 0);
	assert_memory_equal(c.data, d, sizeof(d));
}

/* ------------------------------------------------------------------------ */
/* Digests                                                                   */
/* ------------------------------------------------------------------------ */

static void test_digest_errors(void **state)
{
	(void)state;
	struct pnvme_tcp_tx_params tp = { .hdgst = true, .ddgst = true };
	static struct conn c;
	struct pnvme_tcp_tx_pdu p;
	struct pnvme_cqe cqe = { .cid = 3 };
	uint8_t s[512], d[100];
	size_t n;

	fill(d, sizeof(d), 5);
	/* Header digest: a flipped bit in the digest, or in the header. */
	pnvme_tcp_build_capsule_resp(&p, &tp, &cqe);
	n = ser(s, 0, &p);
	s[25] ^= 0x10;
	conn_up(&c, true, true, true, 0);
	expect_fail(&c, s, n, PNVME_TCP_RX_HDGST, -EBADMSG, PNVME_TCP_FES_HEADER_DIGEST_ERROR, 0);
	assert_int_equal(c.n_hdr, 0);
	s[25] ^= 0x10;
	s[20] ^= 0x01; /* CQE CID */
	conn_up(&c, true, true, true, 0);
	expect_fail(&c, s, n, PNVME_TCP_RX_HDGST, -EBADMSG, PNVME_TCP_FES_HEADER_DIGEST_ERROR, 0);

	/* Data digest: a flipped data bit reaches pdu_done as -EBADMSG, not fatal... */
	assert_int_equal(pnvme_tcp_build_c2h_data(&p, &tp, 3, 0, d, sizeof(d), true, false), 0);
	n = ser(s, 0, &p);
	pnvme_tcp_build_capsule_resp(&p, &tp, &cqe);
	n = ser(s, n, &p);
	s[40] ^= 0x80;
	conn_up(&c, true, true, true, 0);
	assert_int_equal(pnvme_tcp_rx_feed(&c.rx, s, n), 0);
	assert_int_equal(c.n_done, 2);
	assert_int_equal(c.ev[0].ddgst, -EBADMSG);
	assert_int_equal(c.ev[1].ddgst, 0); /* the stream stays in step */
	/* ...unless the connection says so: then reason DDGST, no FES. */
	conn_up(&c, true, true, true, 0);
	c.done_fails = true;
	expect_fail(&c, s, n, PNVME_TCP_RX_DDGST, -EBADMSG, 0, 0);
	assert_int_equal(c.n_done, 1);
	/* A bad data digest byte rather than data. */
	s[40] ^= 0x80;
	s[24 + 4 + 100 + 2] ^= 0x01;
	conn_up(&c, true, true, true, 0);
	assert_int_equal(pnvme_tcp_rx_feed(&c.rx, s, n), 0);
	assert_int_equal(c.ev[0].ddgst, -EBADMSG);
}

/* ------------------------------------------------------------------------ */
/* Malformed input                                                           */
/* ------------------------------------------------------------------------ */

/* A host connection (no digests, HPDA 1: 8-byte alignment) fed one edited PDU. */
static void host_bad(uint8_t *s, size_t n, enum pnvme_tcp_rx_reason reason, int err, uint8_t fes,
		     uint32_t fei)
{
	static struct conn c;

	conn_up(&c, true, false, false, 1);
	c.cmd_len = 8192;
	expect_fail(&c, s, n, reason, err, fes, fei);
}

static void test_malformed_header(void **state)
{
	(void)state;
	struct pnvme_tcp_tx_params tp = { .pda = 1 };
	struct pnvme_tcp_tx_pdu p;
	struct pnvme_cqe cqe = { 0 };
	uint8_t s[8192], d[256], orig[512];
	size_t n, nd;
	const uint8_t F1 = PNVME_TCP_FES_INVALID_HEADER_FIELD;

	fill(d, sizeof(d), 6);
	pnvme_tcp_build_capsule_resp(&p, &tp, &cqe);
	n = ser(s, 0, &p);
	memcpy(orig, s, n);

	/* PDU type: undefined values, and the other direction's types. */
	for (unsigned t = 0; t < 256; t++) {
		if (t == PNVME_TCP_CAPSULE_RESP || t == PNVME_TCP_C2H_DATA || t == PNVME_TCP_R2T ||
		    t == PNVME_TCP_C2H_TERM_REQ || t == PNVME_TCP_ICRESP)
			continue;
		memcpy(s, orig, n);
		s[0] = (uint8_t)t;
		host_bad(s, 8, PNVME_TCP_RX_BAD_TYPE, -EPROTO, F1, 0);
	}
	/* HLEN */
	memcpy(s, orig, n);
	s[2] = 25;
	host_bad(s, n, PNVME_TCP_RX_BAD_HLEN, -EPROTO, F1, 2);
	s[2] = 0;
	host_bad(s, n, PNVME_TCP_RX_BAD_HLEN, -EPROTO, F1, 2);
	/* Flags not allowed for a CapsuleResp; a header digest that was not negotiated. */
	static const uint8_t bad_resp_flags[] = { PNVME_TCP_F_LAST_PDU, PNVME_TCP_F_SUCCESS,
						  PNVME_TCP_F_DDGSTF, PNVME_TCP_F_HDGSTF, 0x10, 0x80 };
	for (size_t i = 0; i < sizeof(bad_resp_flags); i++) {
		memcpy(s, orig, n);
		s[1] = bad_resp_flags[i];
		host_bad(s, n, PNVME_TCP_RX_BAD_FLAGS, -EPROTO, F1, 1);
	}
	/* PLEN below HLEN, or not HLEN for a PDU without data. */
	memcpy(s, orig, n);
	s[4] = 16;
	host_bad(s, n, PNVME_TCP_RX_BAD_PLEN, -EPROTO, F1, 4);
	s[4] = 28;
	host_bad(s, n, PNVME_TCP_RX_BAD_PLEN, -EPROTO, F1, 4);

	/* C2HData: PDO 24 is 8-byte aligned; PLEN 24 + 256. */
	assert_int_equal(pnvme_tcp_build_c2h_data(&p, &tp, 1, 0, d, sizeof(d), true, false), 0);
	nd = ser(s, 0, &p);
	assert_int_equal(s[3], 24);
	memcpy(orig, s, nd);
	static const uint8_t bad_pdo[] = { 0, 8, 20, 28, 25, 255 }; /* below HLEN, misaligned */
	for (size_t i = 0; i < sizeof(bad_pdo); i++) {
		memcpy(s, orig, nd);
		s[3] = bad_pdo[i];
		host_bad(s, nd, PNVME_TCP_RX_BAD_PDO, -EPROTO, F1, 3);
	}
	/* PDO aligned but beyond PLEN */
	memcpy(s, orig, nd);
	s[3] = 48;
	s[4] = 40;
	s[5] = 0;
	host_bad(s, nd, PNVME_TCP_RX_BAD_PDO, -EPROTO, F1, 3);
	/* PDO == PLEN: no data left. */
	memcpy(s, orig, nd);
	s[3] = 32;
	s[4] = 32;
	s[5] = 0;
	host_bad(s, nd, PNVME_TCP_RX_BAD_PDO, -EPROTO, F1, 3);
	/* A data PDU without data. */
	memcpy(s, orig, nd);
	s[4] = 24;
	s[5] = 0;
	host_bad(s, 24, PNVME_TCP_RX_BAD_PLEN, -EPROTO, F1, 4);
	/* SUCCESS without LAST_PDU */
	memcpy(s, orig, nd);
	s[1] = PNVME_TCP_F_SUCCESS;
	host_bad(s, nd, PNVME_TCP_RX_BAD_FLAGS, -EPROTO, F1, 1);
	/* DATAL not what PLEN and PDO say */
	memcpy(s, orig, nd);
	s[16] = 1;
	host_bad(s, nd, PNVME_TCP_RX_BAD_FIELD, -EPROTO, F1, 16);
	/* DATAO + DATAL past 4 GiB */
	memcpy(s, orig, nd);
	memset(s + 12, 0xff, 4);
	host_bad(s, nd, PNVME_TCP_RX_OUT_OF_RANGE, -ERANGE, PNVME_TCP_FES_DATA_OUT_OF_RANGE, 0);
	/* Data outside the command (the connection's check: cmd_len 8192) */
	memcpy(s, orig, nd);
	s[13] = 0x20; /* DATAO 8192 */
	host_bad(s, nd, PNVME_TCP_RX_OUT_OF_RANGE, -ERANGE, PNVME_TCP_FES_DATA_OUT_OF_RANGE, 0);

	/* PLEN above the configured maximum (4096): 4097, and 4 GiB - 1 */
	static struct conn c;
	struct pnvme_tcp_rx_cfg cfg = { .host = true, .pda = 1, .maxpl = 4096, .ops = &ops,
					.arg = &c };
	assert_int_equal(pnvme_tcp_build_c2h_data(&p, &tp, 1, 0, d, 1, true, false), 0);
	nd = ser(orig, 0, &p);
	for (int big = 0; big < 2; big++) {
		memset(&c, 0, sizeof(c));
		assert_int_equal(pnvme_tcp_rx_init(&c.rx, &cfg), 0);
		pnvme_tcp_build_icresp(&p, 0, 0, 4096);
		n = ser(s, 0, &p);
		assert_int_equal(pnvme_tcp_rx_feed(&c.rx, s, n), 0);
		memcpy(s, orig, nd);
		if (big)
			memset(s + 4, 0xff, 4);
		else
			memcpy(s + 4, (uint8_t[]){ 0x01, 0x10, 0, 0 }, 4);
		expect_fail(&c, s, nd, PNVME_TCP_RX_PLEN_TOO_LARGE, -EMSGSIZE, F1, 4);
	}

	/* R2T for no data */
	pnvme_tcp_build_r2t(&p, &tp, 1, 1, 0, 0);
	n = ser(s, 0, &p);
	host_bad(s, n, PNVME_TCP_RX_BAD_FIELD, -EPROTO, F1, 16);
	pnvme_tcp_build_r2t(&p, &tp, 1, 1, UINT32_MAX, 2);
	n = ser(s, 0, &p);
	host_bad(s, n, PNVME_TCP_RX_OUT_OF_RANGE, -ERANGE, PNVME_TCP_FES_DATA_OUT_OF_RANGE, 0);
	/* C2HTermReq longer than 152 bytes; with flags */
	pnvme_tcp_build_term_req(&p, false, 1, 0, d, 128);
	n = ser(s, 0, &p);
	memcpy(orig, s, n);
	s[4] = 153;
	host_bad(s, n, PNVME_TCP_RX_BAD_PLEN, -EPROTO, F1, 4);
	memcpy(s, orig, n);
	s[1] = PNVME_TCP_F_HDGSTF;
	host_bad(s, n, PNVME_TCP_RX_BAD_FLAGS, -EPROTO, F1, 1);
}

static void test_malformed_digest_flags(void **state)
{
	(void)state;
	struct pnvme_tcp_tx_params on = { .hdgst = true, .ddgst = true }, off = { 0 };
	static struct conn c;
	struct pnvme_tcp_tx_pdu p;
	struct pnvme_cqe cqe = { 0 };
	uint8_t s[512], d[64];
	size_t n;
	const uint8_t F1 = PNVME_TCP_FES_INVALID_HEADER_FIELD;

	fill(d, sizeof(d), 7);
	/* Digests negotiated, PDUs without them. */
	pnvme_tcp_build_capsule_resp(&p, &off, &cqe);
	n = ser(s, 0, &p);
	conn_up(&c, true, true, true, 0);
	expect_fail(&c, s, n, PNVME_TCP_RX_BAD_FLAGS, -EPROTO, F1, 1);
	struct pnvme_tcp_tx_params hd_only = { .hdgst = true };
	assert_int_equal(pnvme_tcp_build_c2h_data(&p, &hd_only, 1, 0, d, sizeof(d), true, false), 0);
	n = ser(s, 0, &p);
	conn_up(&c, true, true, true, 0);
	expect_fail(&c, s, n, PNVME_TCP_RX_BAD_FLAGS, -EPROTO, F1, 1);
	/* Data digest not negotiated but flagged. */
	assert_int_equal(pnvme_tcp_build_c2h_data(&p, &on, 1, 0, d, sizeof(d), true, false), 0);
	n = ser(s, 0, &p);
	conn_up(&c, true, true, false, 0);
	expect_fail(&c, s, n, PNVME_TCP_RX_BAD_FLAGS, -EPROTO, F1, 1);
	/* DDGSTF on a CapsuleCmd without data (target side). */
	struct pnvme_sqe sqe = { 0 };
	assert_int_equal(pnvme_tcp_build_capsule_cmd(&p, &on, &sqe, NULL, 0), 0);
	n = ser(s, 0, &p);
	s[1] |= PNVME_TCP_F_DDGSTF;
	fix_hdgst(s);
	conn_up(&c, false, true, true, 0);
	expect_fail(&c, s, n, PNVME_TCP_RX_BAD_FLAGS, -EPROTO, F1, 1);
	/* The IC PDUs are never digested. */
	pnvme_tcp_build_icreq(&p, 0, 3, 0);
	n = ser(s, 0, &p);
	s[1] = PNVME_TCP_F_HDGSTF;
	conn_init(&c, false, 0, 0);
	expect_fail(&c, s, n, PNVME_TCP_RX_BAD_FLAGS, -EPROTO, F1, 1);
}

static void test_malformed_sequence_and_ic(void **state)
{
	(void)state;
	struct pnvme_tcp_tx_params tp = { 0 };
	static struct conn c;
	struct pnvme_tcp_tx_pdu p;
	struct pnvme_cqe cqe = { 0 };
	uint8_t s[512];
	size_t n;

	/* Anything but ICResp (or a TermReq) first is a sequence error... */
	pnvme_tcp_build_capsule_resp(&p, &tp, &cqe);
	n = ser(s, 0, &p);
	conn_init(&c, true, 0, 0);
	expect_fail(&c, s, n, PNVME_TCP_RX_SEQUENCE, -EPROTO, PNVME_TCP_FES_PDU_SEQUENCE_ERROR, 0);
	/* ...and so is a second ICResp. */
	pnvme_tcp_build_icresp(&p, 0, 0, 8192);
	n = ser(s, 0, &p);
	conn_init(&c, true, 0, 0);
	assert_int_equal(pnvme_tcp_rx_feed(&c.rx, s, n), 0);
	expect_fail(&c, s, n, PNVME_TCP_RX_SEQUENCE, -EPROTO, PNVME_TCP_FES_PDU_SEQUENCE_ERROR, 0);
	/* A TermReq may come first. */
	pnvme_tcp_build_term_req(&p, false, 2, 0, NULL, 0);
	n = ser(s, 0, &p);
	conn_init(&c, true, 0, 0);
	assert_int_equal(pnvme_tcp_rx_feed(&c.rx, s, n), 0);
	assert_int_equal(c.ev[0].type, PNVME_TCP_C2H_TERM_REQ);

	/* ICResp fields: PFV, CPDA, MAXH2CDATA; ICReq: PFV, HPDA. */
	pnvme_tcp_build_icresp(&p, 0, 0, 8192);
	p.hdr.icresp.pfv = 1;
	n = ser(s, 0, &p);
	conn_init(&c, true, 0, 0);
	expect_fail(&c, s, n, PNVME_TCP_RX_UNSUPPORTED, -EOPNOTSUPP, PNVME_TCP_FES_UNSUPPORTED_PARAM, 8);
	pnvme_tcp_build_icresp(&p, 32, 0, 8192);
	n = ser(s, 0, &p);
	conn_init(&c, true, 0, 0);
	expect_fail(&c, s, n, PNVME_TCP_RX_BAD_FIELD, -EPROTO, PNVME_TCP_FES_INVALID_HEADER_FIELD, 10);
	for (uint32_t bad = 0; bad < 3; bad++) {
		pnvme_tcp_build_icresp(&p, 0, 0, bad == 0 ? 4092 : bad == 1 ? 4098 : 0);
		n = ser(s, 0, &p);
		conn_init(&c, true, 0, 0);
		expect_fail(&c, s, n, PNVME_TCP_RX_BAD_FIELD, -EPROTO,
			    PNVME_TCP_FES_INVALID_HEADER_FIELD, 12);
	}
	pnvme_tcp_build_icreq(&p, 0, 0, 0);
	p.hdr.icreq.pfv = 0x100;
	n = ser(s, 0, &p);
	conn_init(&c, false, 0, 0);
	expect_fail(&c, s, n, PNVME_TCP_RX_UNSUPPORTED, -EOPNOTSUPP, PNVME_TCP_FES_UNSUPPORTED_PARAM, 8);
	pnvme_tcp_build_icreq(&p, 200, 0, 0);
	n = ser(s, 0, &p);
	conn_init(&c, false, 0, 0);
	expect_fail(&c, s, n, PNVME_TCP_RX_BAD_FIELD, -EPROTO, PNVME_TCP_FES_INVALID_HEADER_FIELD, 10);
	/* ICReq with a PLEN beyond 128 */
	pnvme_tcp_build_icreq(&p, 0, 0, 0);
	n = ser(s, 0, &p);
	s[4] = 132;
	conn_init(&c, false, 0, 0);
	expect_fail(&c, s, n, PNVME_TCP_RX_BAD_PLEN, -EPROTO, PNVME_TCP_FES_INVALID_HEADER_FIELD, 4);
}

static void test_target_limits(void **state)
{
	(void)state;
	struct pnvme_tcp_tx_params tp = { .pda = 0 };
	static struct conn c;
	struct pnvme_tcp_tx_pdu p;
	static uint8_t s[20000], d[9000];
	size_t n;
	struct pnvme_tcp_rx_cfg cfg = { .host = false, .maxh2cdata = 8192, .ops = &ops, .arg = &c };

	memset(&c, 0, sizeof(c));
	assert_int_equal(pnvme_tcp_rx_init(&c.rx, &cfg), 0);
	pnvme_tcp_build_icreq(&p, 0, 0, 0);
	n = ser(s, 0, &p);
	assert_int_equal(pnvme_tcp_rx_feed(&c.rx, s, n), 0);
	/* DATAL 8192 is fine, 8196 is over MAXH2CDATA: FES 05h. */
	assert_int_equal(pnvme_tcp_build_h2c_data(&p, &tp, 1, 1, 0, d, 8192, false), 0);
	n = ser(s, 0, &p);
	assert_int_equal(pnvme_tcp_rx_feed(&c.rx, s, n), 0);
	assert_int_equal(pnvme_tcp_build_h2c_data(&p, &tp, 1, 1, 8192, d, 8196, true), 0);
	n = ser(s, 0, &p);
	expect_fail(&c, s, n, PNVME_TCP_RX_LIMIT, -EMSGSIZE, PNVME_TCP_FES_DATA_LIMIT_EXCEEDED, 0);

	/* A destination smaller than the PDU data: refused, nothing written past it. */
	conn_up(&c, false, false, false, 0);
	c.dst_short = 1;
	assert_int_equal(pnvme_tcp_build_h2c_data(&p, &tp, 1, 1, 0, d, 100, true), 0);
	n = ser(s, 0, &p);
	expect_fail(&c, s, n, PNVME_TCP_RX_OUT_OF_RANGE, -ERANGE, PNVME_TCP_FES_DATA_OUT_OF_RANGE, 0);
	/* Host types at a target */
	struct pnvme_cqe cqe = { 0 };
	pnvme_tcp_build_capsule_resp(&p, &tp, &cqe);
	n = ser(s, 0, &p);
	conn_up(&c, false, false, false, 0);
	expect_fail(&c, s, n, PNVME_TCP_RX_BAD_TYPE, -EPROTO, PNVME_TCP_FES_INVALID_HEADER_FIELD, 0);

	/* init refuses nonsense */
	struct pnvme_tcp_rx rx;
	cfg.pda = 32;
	assert_int_equal(pnvme_tcp_rx_init(&rx, &cfg), -EINVAL);
	cfg.pda = 0;
	cfg.maxpl = 100;
	assert_int_equal(pnvme_tcp_rx_init(&rx, &cfg), -EINVAL);
	cfg.maxpl = 0;
	cfg.ops = NULL;
	assert_int_equal(pnvme_tcp_rx_init(&rx, &cfg), -EINVAL);
}

/* A callback that fails without naming a reason: CALLBACK, its errno, no FES. */
static int hdr_refuse(void *arg, struct pnvme_tcp_rx *rx, struct pnvme_tcp_rx_pdu *pdu)
{
	(void)arg;
	(void)rx;
	(void)pdu;
	return -ENOTCONN;
}

static void test_callback_error_and_term_req(void **state)
{
	(void)state;
	static const struct pnvme_tcp_rx_ops refuse = { .pdu_hdr = hdr_refuse, .pdu_done = on_done };
	struct pnvme_tcp_rx_cfg cfg = { .host = true, .ops = &refuse };
	struct pnvme_tcp_tx_params tp = { 0 };
	static struct conn c, t;
	struct pnvme_tcp_tx_pdu p, term;
	struct pnvme_cqe cqe = { 0 };
	uint8_t s[512];
	size_t n;

	memset(&c, 0, sizeof(c));
	cfg.arg = &c;
	assert_int_equal(pnvme_tcp_rx_init(&c.rx, &cfg), 0);
	pnvme_tcp_build_icresp(&p, 0, 0, 8192);
	n = ser(s, 0, &p);
	assert_int_equal(pnvme_tcp_rx_feed(&c.rx, s, n), -ENOTCONN);
	assert_int_equal(c.rx.error.reason, PNVME_TCP_RX_CALLBACK);
	assert_int_equal(c.rx.error.fes, 0);
	assert_int_equal(pnvme_tcp_rx_term_req(&c.rx, &term), -ENOENT);

	/* A host's error becomes an H2CTermReq that a target parses back. */
	pnvme_tcp_build_capsule_resp(&p, &tp, &cqe);
	n = ser(s, 0, &p);
	s[2] = 30; /* bad HLEN */
	conn_up(&c, true, false, false, 0);
	assert_int_equal(pnvme_tcp_rx_term_req(&c.rx, &term), -ENOENT);
	expect_fail(&c, s, n, PNVME_TCP_RX_BAD_HLEN, -EPROTO, PNVME_TCP_FES_INVALID_HEADER_FIELD, 2);
	assert_int_equal(pnvme_tcp_rx_term_req(&c.rx, &term), 0);
	n = ser(s + 100, 0, &term);
	assert_int_equal(n, 24 + 8); /* the 8 bytes of the refused common header */
	conn_init(&t, false, 0, 0);
	assert_int_equal(pnvme_tcp_rx_feed(&t.rx, s + 100, n), 0);
	assert_int_equal(t.ev[0].type, PNVME_TCP_H2C_TERM_REQ);
	assert_int_equal(t.ev[0].hdr.term.fes, PNVME_TCP_FES_INVALID_HEADER_FIELD);
	uint32_t fei;
	memcpy(&fei, t.ev[0].hdr.term.fei, 4);
	assert_int_equal(fei, 2);
	assert_memory_equal(t.data, s, 8);

	assert_string_equal(pnvme_tcp_fes_str(3), "Header Digest Error");
	assert_string_equal(pnvme_tcp_pdu_name(PNVME_TCP_R2T), "R2T");
	assert_string_equal(pnvme_tcp_pdu_name(8), "unknown");
	assert_string_equal(pnvme_tcp_rx_reason_str(PNVME_TCP_RX_HDGST), "header digest error");
}

static void test_iov_advance(void **state)
{
	(void)state;
	uint8_t a[10], b[20], c[4];
	struct iovec iov[3] = { { a, 10 }, { b, 20 }, { c, 4 } };

	assert_int_equal(pnvme_tcp_iov_advance(iov, 3, 0), 0);
	assert_int_equal(pnvme_tcp_iov_advance(iov, 3, 4), 0);
	assert_ptr_equal(iov[0].iov_base, a + 4);
	assert_int_equal(iov[0].iov_len, 6);
	assert_int_equal(pnvme_tcp_iov_advance(iov, 3, 6), 1);
	assert_int_equal(pnvme_tcp_iov_advance(iov + 1, 2, 21), 1);
	assert_int_equal(iov[2].iov_len, 3);
	assert_ptr_equal(iov[2].iov_base, c + 1);
	assert_int_equal(pnvme_tcp_iov_advance(iov + 2, 1, 3), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test(test_icreq_bytes),
		cmocka_unit_test(test_capsule_cmd_bytes),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_ic_roundtrip),
		cmocka_unit_test(test_chunking),
		cmocka_unit_test(test_direct),
		cmocka_unit_test(test_digest_errors),
		cmocka_unit_test(test_malformed_header),
		cmocka_unit_test(test_malformed_digest_flags),
		cmocka_unit_test(test_malformed_sequence_and_ic),
		cmocka_unit_test(test_target_limits),
		cmocka_unit_test(test_callback_error_and_term_req),
		cmocka_unit_test(test_iov_advance),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
