/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_tcp_pdu.c - libFuzzer target: the NVMe/TCP PDU receiver
 * (src/tcp/pdu.c) fed a hostile byte stream, as a host or as a target.
 *
 * Input: 4 bytes of configuration, then the stream.
 *   byte 0: bit 0 host (else target), 1 header digest, 2 data digest,
 *           3 drop all data (no destination), 4 give destinations one byte
 *           short now and then, 5 the connection refuses C2HData/H2CData past
 *           64 KiB (data out of range), 6-7 maximum PLEN (none, 152, 4 KiB, 64 KiB)
 *   byte 1: PDA (mod 32) of the receiver and of the built PDUs
 *   byte 2: seed of the chunking (split sizes, zero-copy receives)
 *   byte 3: bit 0: the rest is a list of PDUs to build (below), else raw
 *           bytes; bit 1: built PDUs use the other digest settings
 * Built mode, records until the input ends:
 *   op (mod 10): 0 ICReq, 1 ICResp, 2 CapsuleCmd, 3 CapsuleResp, 4 H2CData,
 *   5 C2HData, 6 R2T, 7 TermReq, 8 raw (len byte + bytes), 9 corrupt (u16
 *   offset into the stream so far, xor byte); then 8 bytes of arguments
 *   (data length (u16, capped at 8 KiB), offset/tag/flags).
 *
 * The stream is parsed twice: in one piece, and in random splits mixed with
 * zero-copy receives straight into the destination. The harness traps when
 * the two disagree (events, data, error), when a callback sees an
 * inconsistent PDU, when pdu_done does not follow its pdu_hdr, when data
 * lands outside the destination (ASan: destinations end at a redzone), or
 * when the TermReq built for an error does not parse back as one.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pnvme/tcp_spec.h>

#include "tcp/pdu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STREAM_MAX (1u << 20)
#define DST_MAX    (64u * 1024u)
#define DATA_MAX   8192u

struct harness {
	struct pnvme_tcp_rx rx;
	uint8_t  cfg;
	uint32_t n_hdr, n_done;
	uint32_t hash;        /* CRC of everything the callbacks saw */
	uint32_t calls;       /* for the short-destination knob */
};

static uint8_t stream[STREAM_MAX];
static uint8_t pattern[DATA_MAX];
static uint8_t *dst_buf; /* malloc'ed: ASan redzone right after it */

static void trap(const char *why)
{
	fprintf(stderr, "fuzz_tcp_pdu: %s\n", why);
	__builtin_trap();
}

static void mix(struct harness *h, const void *p, size_t n)
{
	h->hash = pnvme_crc32c(h->hash, p, n);
}

static int on_hdr(void *arg, struct pnvme_tcp_rx *rx, struct pnvme_tcp_rx_pdu *pdu)
{
	struct harness *h = arg;
	uint8_t hlen = pdu->hdr->ch.hlen;

	if (rx != &h->rx || pdu->hdr != &rx->hdr || h->n_done != h->n_hdr)
		trap("pdu_hdr out of order");
	if (pdu->type != pdu->hdr->ch.pdu_type || pdu->plen != pdu->hdr->ch.plen ||
	    (uint64_t)pdu->data_off + pdu->data_len > pdu->plen || hlen > PNVME_TCP_HDR_BUF ||
	    (pdu->data_len && pdu->data_off < hlen))
		trap("inconsistent PDU");
	h->n_hdr++;
	mix(h, pdu->hdr->raw, hlen);
	mix(h, &pdu->data_len, sizeof(pdu->data_len));
	if (pdu->type == PNVME_TCP_ICREQ || pdu->type == PNVME_TCP_ICRESP)
		pnvme_tcp_rx_set_digests(rx, h->cfg & 0x02, h->cfg & 0x04);
	if ((h->cfg & 0x20) &&
	    ((pdu->type == PNVME_TCP_C2H_DATA &&
	      (uint64_t)pdu->hdr->c2h.datao + pdu->hdr->c2h.datal > DST_MAX) ||
	     (pdu->type == PNVME_TCP_H2C_DATA &&
	      (uint64_t)pdu->hdr->h2c.datao + pdu->hdr->h2c.datal > DST_MAX)))
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_OUT_OF_RANGE, 0);
	if (pdu->data_len && !(h->cfg & 0x08) && pdu->data_len <= DST_MAX) {
		uint32_t len = pdu->data_len;

		if ((h->cfg & 0x10) && (++h->calls % 7) == 0)
			len--; /* refused by the receiver: must not be written past */
		pdu->dst = dst_buf + DST_MAX - len;
		pdu->dst_len = len;
	}
	return 0;
}

static int on_done(void *arg, struct pnvme_tcp_rx *rx, const struct pnvme_tcp_rx_pdu *pdu,
		   int ddgst)
{
	struct harness *h = arg;

	if (rx != &h->rx || h->n_done + 1 != h->n_hdr)
		trap("pdu_done without pdu_hdr");
	if (ddgst != 0 && !(pdu->flags & PNVME_TCP_F_DDGSTF))
		trap("data digest error without a data digest");
	h->n_done++;
	mix(h, &ddgst, sizeof(ddgst));
	if (pdu->dst)
		mix(h, pdu->dst, pdu->data_len);
	return 0;
}

static const struct pnvme_tcp_rx_ops ops = { .pdu_hdr = on_hdr, .pdu_done = on_done };

static void harness_init(struct harness *h, uint8_t cfg, uint8_t pda)
{
	static const uint32_t maxpl[4] = { 0, PNVME_TCP_TERM_REQ_MAX_PLEN, 4096, 65536 };
	struct pnvme_tcp_rx_cfg rc = {
		.host = cfg & 0x01, .pda = pda, .maxpl = maxpl[cfg >> 6],
		.maxh2cdata = (cfg & 0x01) ? 0 : 4096, .ops = &ops, .arg = h,
	};

	memset(h, 0, sizeof(*h));
	h->cfg = cfg;
	if (pnvme_tcp_rx_init(&h->rx, &rc))
		trap("rx_init");
}

static uint32_t get(const uint8_t *p, size_t n)
{
	uint32_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

/* Built mode: turn records into a stream of mostly valid PDUs. */
static size_t build(const uint8_t *in, size_t size, uint8_t cfg, uint8_t pda, bool other)
{
	struct pnvme_tcp_tx_params tp = {
		.hdgst = !!(cfg & 0x02) != other, .ddgst = !!(cfg & 0x04) != other, .pda = pda,
	};
	struct pnvme_tcp_tx_pdu p;
	size_t n = 0;

	while (size >= 9) {
		uint8_t op = in[0];
		uint32_t len = get(in + 1, 2) % (DATA_MAX + 1);
		uint32_t a = get(in + 3, 4), b = get(in + 7, 2);
		struct pnvme_sqe sqe;
		struct pnvme_cqe cqe;
		int ret = 0;

		in += 9;
		size -= 9;
		switch (op % 10) {
		case 0:
			pnvme_tcp_build_icreq(&p, (uint8_t)b, (uint8_t)(b >> 8), a);
			break;
		case 1:
			pnvme_tcp_build_icresp(&p, (uint8_t)b, (uint8_t)(b >> 8), a);
			break;
		case 2:
			memset(&sqe, (int)(a & 0xff), sizeof(sqe));
			ret = pnvme_tcp_build_capsule_cmd(&p, &tp, &sqe, pattern, len);
			break;
		case 3:
			memset(&cqe, (int)(a & 0xff), sizeof(cqe));
			pnvme_tcp_build_capsule_resp(&p, &tp, &cqe);
			break;
		case 4:
			ret = pnvme_tcp_build_h2c_data(&p, &tp, (uint16_t)b, (uint16_t)(a >> 16),
						       a & 0xffff, pattern, len, b & 1);
			break;
		case 5:
			ret = pnvme_tcp_build_c2h_data(&p, &tp, (uint16_t)b, a & 0xffff, pattern, len,
						       b & 1, b & 2);
			break;
		case 6:
			pnvme_tcp_build_r2t(&p, &tp, (uint16_t)b, (uint16_t)(a >> 16), a & 0xffff, len);
			break;
		case 7:
			pnvme_tcp_build_term_req(&p, b & 1, (uint16_t)(b >> 8), a, pattern, len);
			break;
		case 8: {
			size_t k = in[-8] < size ? in[-8] : size;

			if (n + k > STREAM_MAX)
				return n;
			memcpy(stream + n, in, k);
			n += k;
			in += k;
			size -= k;
			continue;
		}
		default:
			if (n)
				stream[get(in - 8, 2) % n] ^= in[-6] ? in[-6] : 1;
			continue;
		}
		if (ret)
			continue; /* refused arguments (no data for a data PDU, ...) */
		struct iovec iov[3];
		int cnt = pnvme_tcp_pdu_iov(&p, iov);
		if (pnvme_tcp_pdu_plen(&p) > STREAM_MAX - n)
			return n;
		for (int i = 0; i < cnt; i++) {
			memcpy(stream + n, iov[i].iov_base, iov[i].iov_len);
			n += iov[i].iov_len;
		}
	}
	return n;
}

/* Feed in random splits, taking zero-copy receives when offered. */
static int feed_chunked(struct harness *h, const uint8_t *s, size_t n, uint32_t seed)
{
	size_t at = 0;
	int ret = 0;

	while (at < n) {
		void *dst;
		size_t direct = pnvme_tcp_rx_direct(&h->rx, &dst);
		size_t k;

		seed = seed * 1103515245u + 12345u;
		if (direct && (seed & 0x10000)) {
			k = 1 + (seed >> 17) % direct;
			if (k > n - at)
				k = n - at;
			memcpy(dst, s + at, k);
			ret = pnvme_tcp_rx_direct_done(&h->rx, k);
		} else {
			k = (seed & 0x20000) ? 1 + (seed >> 18) % 300 : 1 + (seed >> 18) % 5;
			if (k > n - at)
				k = n - at;
			ret = pnvme_tcp_rx_feed(&h->rx, s + at, k);
		}
		if (ret)
			return ret;
		at += k;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct harness a, b, t;
	uint8_t cfg, pda, seed, mode;
	size_t n;
	int ra, rb;

	if (size < 4)
		return 0;
	if (!dst_buf) {
		dst_buf = malloc(DST_MAX);
		if (!dst_buf)
			trap("malloc");
		for (size_t i = 0; i < sizeof(pattern); i++)
			pattern[i] = (uint8_t)(i * 7 + 3);
	}
	cfg = data[0];
	pda = data[1] % (PNVME_TCP_PDA_MAX + 1);
	seed = data[2];
	mode = data[3];
	data += 4;
	size -= 4;
	if (mode & 1) {
		n = build(data, size, cfg, pda, mode & 2);
	} else {
		n = size < STREAM_MAX ? size : STREAM_MAX;
		memcpy(stream, data, n);
	}

	harness_init(&a, cfg, pda);
	ra = pnvme_tcp_rx_feed(&a.rx, stream, n);
	harness_init(&b, cfg, pda);
	rb = feed_chunked(&b, stream, n, seed);

	if (ra != rb || a.n_hdr != b.n_hdr || a.n_done != b.n_done || a.hash != b.hash ||
	    a.rx.state != b.rx.state || a.rx.got != b.rx.got)
		trap("whole and chunked feeds disagree");
	if (ra) {
		if (a.rx.state != PNVME_TCP_RXS_ERROR || a.rx.error.err != ra ||
		    memcmp(&a.rx.error, &b.rx.error, sizeof(a.rx.error)))
			trap("error not recorded the same way");
		if (pnvme_tcp_rx_feed(&a.rx, stream, n ? 1 : 0) != ra && n)
			trap("receiver not stuck after an error");
		/* The TermReq answering the error parses back at the peer. */
		struct pnvme_tcp_tx_pdu p;
		struct iovec iov[3];
		uint8_t buf[PNVME_TCP_TERM_REQ_MAX_PLEN];
		size_t m = 0;

		if (pnvme_tcp_rx_term_req(&a.rx, &p) == 0) {
			int cnt = pnvme_tcp_pdu_iov(&p, iov);

			for (int i = 0; i < cnt; i++) {
				if (m + iov[i].iov_len > sizeof(buf))
					trap("TermReq too long");
				memcpy(buf + m, iov[i].iov_base, iov[i].iov_len);
				m += iov[i].iov_len;
			}
			harness_init(&t, (uint8_t)(cfg ^ 0x01), 0);
			if (pnvme_tcp_rx_feed(&t.rx, buf, m) || t.n_done != 1 ||
			    t.rx.pdu.hdr->term.fes != a.rx.error.fes)
				trap("TermReq does not parse back");
		} else if (a.rx.error.fes) {
			trap("no TermReq for an error with an FES");
		}
	} else if (a.rx.state == PNVME_TCP_RXS_ERROR) {
		trap("error state without an error");
	}
	return 0;
}
