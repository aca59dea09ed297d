/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pdu.c - NVMe/TCP PDUs: builders for the send side and the receive-side
 * parser (NVMe/TCP Transport Specification 1.0, "TCP 1.0", §3.6).
 *
 * The parser is a state machine fed arbitrary chunks of the byte stream:
 *
 *   CH (8 bytes) -> HDR (rest of HLEN + HDGST) -> PAD (to PDO) -> DATA -> DDGST
 *
 * Every field of the common header is checked as soon as its 8 bytes are in
 * (type, HLEN, flags, PLEN, PDO), before anything else of the PDU is read,
 * so the header buffer is never overrun and the data length is known; the
 * PDU-specific fields are checked once the header and its digest are in.
 * Only then does the connection see the header (pdu_hdr callback) and say
 * where the data goes. Memory is the struct pnvme_tcp_rx, nothing more.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "internal.h"
#include "tcp/pdu.h"

PNVME_STATIC_ASSERT(sizeof(union pnvme_tcp_hdr) == PNVME_TCP_HDR_BUF, "header buffer size");
PNVME_STATIC_ASSERT(PNVME_TCP_CMD_HLEN + PNVME_TCP_DIGEST_LEN <= PNVME_TCP_HDR_BUF,
		    "a digested CapsuleCmd header fits");
PNVME_STATIC_ASSERT(PNVME_TCP_PDA_ALIGN(PNVME_TCP_PDA_MAX) <= PNVME_TCP_HDR_BUF,
		    "the largest PDO fits the header buffer");

/* ------------------------------------------------------------------------ */
/* What each PDU type may carry (TCP 1.0 §3.6.2)                             */
/* ------------------------------------------------------------------------ */

enum pdu_data {
	DATA_NONE,   /* header only: PLEN = HLEN + HDGST */
	DATA_OPT,    /* CapsuleCmd: in-capsule data optional */
	DATA_REQ,    /* H2CData/C2HData: data required */
	DATA_TERM,   /* TermReq: error data right after the header, no digests */
};

struct pdu_rule {
	uint8_t hlen;   /* exact HLEN; 0: not a PDU type */
	uint8_t flags;  /* flags allowed */
	uint8_t data;   /* enum pdu_data */
	bool    c2h;    /* sent by a controller (received by a host) */
	const char *name;
};

#define F_DIGESTS (PNVME_TCP_F_HDGSTF | PNVME_TCP_F_DDGSTF)

static const struct pdu_rule pdu_rules[] = {
	[PNVME_TCP_ICREQ]        = { PNVME_TCP_ICREQ_HLEN, 0, DATA_NONE, false, "ICReq" },
	[PNVME_TCP_ICRESP]       = { PNVME_TCP_ICRESP_HLEN, 0, DATA_NONE, true, "ICResp" },
	[PNVME_TCP_H2C_TERM_REQ] = { PNVME_TCP_TERM_REQ_HLEN, 0, DATA_TERM, false, "H2CTermReq" },
	[PNVME_TCP_C2H_TERM_REQ] = { PNVME_TCP_TERM_REQ_HLEN, 0, DATA_TERM, true, "C2HTermReq" },
	[PNVME_TCP_CAPSULE_CMD]  = { PNVME_TCP_CMD_HLEN, F_DIGESTS, DATA_OPT, false, "CapsuleCmd" },
	[PNVME_TCP_CAPSULE_RESP] = { PNVME_TCP_RESP_HLEN, PNVME_TCP_F_HDGSTF, DATA_NONE, true,
				     "CapsuleResp" },
	[PNVME_TCP_H2C_DATA]     = { PNVME_TCP_DATA_HLEN, F_DIGESTS | PNVME_TCP_F_LAST_PDU,
				     DATA_REQ, false, "H2CData" },
	[PNVME_TCP_C2H_DATA]     = { PNVME_TCP_DATA_HLEN,
				     F_DIGESTS | PNVME_TCP_F_LAST_PDU | PNVME_TCP_F_SUCCESS,
				     DATA_REQ, true, "C2HData" },
	[PNVME_TCP_R2T]          = { PNVME_TCP_R2T_HLEN, PNVME_TCP_F_HDGSTF, DATA_NONE, true, "R2T" },
};

static const struct pdu_rule *pdu_rule(uint8_t type)
{
	if (type >= ARRAY_SIZE(pdu_rules) || pdu_rules[type].hlen == 0)
		return NULL;
	return &pdu_rules[type];
}

const char *pnvme_tcp_pdu_name(uint8_t type)
{
	const struct pdu_rule *r = pdu_rule(type);

	return r ? r->name : "unknown";
}

const char *pnvme_tcp_fes_str(uint16_t fes)
{
	switch (fes) {
	case PNVME_TCP_FES_INVALID_HEADER_FIELD: return "Invalid PDU Header Field";
	case PNVME_TCP_FES_PDU_SEQUENCE_ERROR:   return "PDU Sequence Error";
	case PNVME_TCP_FES_HEADER_DIGEST_ERROR:  return "Header Digest Error";
	case PNVME_TCP_FES_DATA_OUT_OF_RANGE:    return "Data Transfer Out of Range";
	case PNVME_TCP_FES_DATA_LIMIT_EXCEEDED:  return "R2T Limit / Data Transfer Limit Exceeded";
	case PNVME_TCP_FES_UNSUPPORTED_PARAM:    return "Unsupported Parameter";
	default:                                 return "reserved";
	}
}

static inline uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v)); /* little-endian host (pnvme/spec.h) */
	return v;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* ------------------------------------------------------------------------ */
/* Send side                                                                 */
/* ------------------------------------------------------------------------ */

/* Zero the header and set the type; the PSH is filled by the caller. */
static void tx_start(struct pnvme_tcp_tx_pdu *p, uint8_t type)
{
	memset(&p->hdr, 0, sizeof(p->hdr));
	p->hdr.ch.pdu_type = type;
	p->hdr.ch.hlen = pdu_rules[type].hlen;
	p->data = NULL;
	p->data_len = 0;
	p->ddgst = 0;
}

/*
 * Lay out a digested PDU type (TCP 1.0 §3.6.1): HDGST after the header when
 * negotiated; with data, PDO = HLEN + HDGST rounded up to the receiver's
 * alignment (the padding stays zero), PLEN = PDO + data + DDGST.
 */
static int tx_finish(struct pnvme_tcp_tx_pdu *p, const struct pnvme_tcp_tx_params *tp,
		     const void *data, uint32_t len)
{
	struct pnvme_tcp_ch *ch = &p->hdr.ch;
	uint32_t hl = ch->hlen + (tp->hdgst ? PNVME_TCP_DIGEST_LEN : 0u);
	uint32_t pdo = 0, dd = 0;

	if (len && !data)
		return pnvme_fail(-EINVAL, "nvme-tcp: %s with %u bytes of data and no buffer",
				  pnvme_tcp_pdu_name(ch->pdu_type), len);
	if (len) {
		/* (PDA + 1) dwords need not be a power of two: no mask arithmetic. */
		uint32_t align = PNVME_TCP_PDA_ALIGN(tp->pda > PNVME_TCP_PDA_MAX ?
						     PNVME_TCP_PDA_MAX : tp->pda);

		pdo = (hl + align - 1) / align * align;
		dd = tp->ddgst ? PNVME_TCP_DIGEST_LEN : 0u;
		if (len > UINT32_MAX - pdo - dd)
			return pnvme_fail(-EMSGSIZE, "nvme-tcp: %s of %u bytes does not fit a PDU",
					  pnvme_tcp_pdu_name(ch->pdu_type), len);
	}
	if (tp->hdgst)
		ch->flags |= PNVME_TCP_F_HDGSTF;
	if (dd)
		ch->flags |= PNVME_TCP_F_DDGSTF;
	ch->pdo = (uint8_t)pdo;
	ch->plen = (len ? pdo : hl) + len + dd;
	if (tp->hdgst)
		put_le32(p->hdr.raw + ch->hlen, pnvme_crc32c(0, p->hdr.raw, ch->hlen));
	p->data = len ? data : NULL;
	p->data_len = len;
	if (dd)
		p->ddgst = pnvme_crc32c(0, data, len);
	p->hdr_len = (uint8_t)(len ? pdo : hl);
	return 0;
}

/* ICReq/ICResp: 128 bytes, never digested, no data (TCP 1.0 §3.6.2.1-2). */
static void tx_ic(struct pnvme_tcp_tx_pdu *p)
{
	p->hdr.ch.plen = p->hdr.ch.hlen;
	p->hdr_len = p->hdr.ch.hlen;
}

void pnvme_tcp_build_icreq(struct pnvme_tcp_tx_pdu *p, uint8_t hpda, uint8_t dgst,
			   uint32_t maxr2t)
{
	tx_start(p, PNVME_TCP_ICREQ);
	p->hdr.icreq.pfv = PNVME_TCP_PFV_1_0;
	p->hdr.icreq.hpda = hpda;
	p->hdr.icreq.dgst = dgst;
	p->hdr.icreq.maxr2t = maxr2t;
	tx_ic(p);
}

void pnvme_tcp_build_icresp(struct pnvme_tcp_tx_pdu *p, uint8_t cpda, uint8_t dgst,
			    uint32_t maxh2cdata)
{
	tx_start(p, PNVME_TCP_ICRESP);
	p->hdr.icresp.pfv = PNVME_TCP_PFV_1_0;
	p->hdr.icresp.cpda = cpda;
	p->hdr.icresp.dgst = dgst;
	p->hdr.icresp.maxh2cdata = maxh2cdata;
	tx_ic(p);
}

int pnvme_tcp_build_capsule_cmd(struct pnvme_tcp_tx_pdu *p, const struct pnvme_tcp_tx_params *tp,
				const struct pnvme_sqe *sqe, const void *data, uint32_t len)
{
	tx_start(p, PNVME_TCP_CAPSULE_CMD);
	p->hdr.cmd.sqe = *sqe;
	return tx_finish(p, tp, data, len);
}

void pnvme_tcp_build_capsule_resp(struct pnvme_tcp_tx_pdu *p, const struct pnvme_tcp_tx_params *tp,
				  const struct pnvme_cqe *cqe)
{
	tx_start(p, PNVME_TCP_CAPSULE_RESP);
	p->hdr.resp.cqe = *cqe;
	(void)tx_finish(p, tp, NULL, 0); /* cannot fail without data */
}

int pnvme_tcp_build_h2c_data(struct pnvme_tcp_tx_pdu *p, const struct pnvme_tcp_tx_params *tp,
			     uint16_t cccid, uint16_t ttag, uint32_t datao, const void *data,
			     uint32_t len, bool last)
{
	tx_start(p, PNVME_TCP_H2C_DATA);
	if (!len)
		return pnvme_fail(-EINVAL, "nvme-tcp: H2CData without data");
	p->hdr.h2c.cccid = cccid;
	p->hdr.h2c.ttag = ttag;
	p->hdr.h2c.datao = datao;
	p->hdr.h2c.datal = len;
	if (last)
		p->hdr.ch.flags |= PNVME_TCP_F_LAST_PDU;
	return tx_finish(p, tp, data, len);
}

int pnvme_tcp_build_c2h_data(struct pnvme_tcp_tx_pdu *p, const struct pnvme_tcp_tx_params *tp,
			     uint16_t cccid, uint32_t datao, const void *data, uint32_t len,
			     bool last, bool success)
{
	tx_start(p, PNVME_TCP_C2H_DATA);
	if (!len)
		return pnvme_fail(-EINVAL, "nvme-tcp: C2HData without data");
	p->hdr.c2h.cccid = cccid;
	p->hdr.c2h.datao = datao;
	p->hdr.c2h.datal = len;
	/* TCP 1.0 §3.6.2.8: SUCCESS only on the last data PDU of the command. */
	if (last || success)
		p->hdr.ch.flags |= PNVME_TCP_F_LAST_PDU;
	if (success)
		p->hdr.ch.flags |= PNVME_TCP_F_SUCCESS;
	return tx_finish(p, tp, data, len);
}

void pnvme_tcp_build_r2t(struct pnvme_tcp_tx_pdu *p, const struct pnvme_tcp_tx_params *tp,
			 uint16_t cccid, uint16_t ttag, uint32_t r2to, uint32_t r2tl)
{
	tx_start(p, PNVME_TCP_R2T);
	p->hdr.r2t.cccid = cccid;
	p->hdr.r2t.ttag = ttag;
	p->hdr.r2t.r2to = r2to;
	p->hdr.r2t.r2tl = r2tl;
	(void)tx_finish(p, tp, NULL, 0);
}

void pnvme_tcp_build_term_req(struct pnvme_tcp_tx_pdu *p, bool h2c, uint16_t fes, uint32_t fei,
			      const void *err_hdr, uint32_t len)
{
	tx_start(p, h2c ? PNVME_TCP_H2C_TERM_REQ : PNVME_TCP_C2H_TERM_REQ);
	if (!err_hdr)
		len = 0;
	if (len > PNVME_TCP_TERM_REQ_MAX_DATA)
		len = PNVME_TCP_TERM_REQ_MAX_DATA;
	p->hdr.term.fes = fes;
	put_le32(p->hdr.term.fei, fei);
	/* TCP 1.0 §3.6.2.3: no digests; the error data follows the header (PDO 0). */
	p->hdr.ch.plen = PNVME_TCP_TERM_REQ_HLEN + len;
	p->hdr_len = PNVME_TCP_TERM_REQ_HLEN;
	p->data = len ? err_hdr : NULL;
	p->data_len = len;
}

size_t pnvme_tcp_iov_advance(struct iovec *iov, size_t cnt, size_t n)
{
	size_t i = 0;

	while (i < cnt && n >= iov[i].iov_len) {
		n -= iov[i].iov_len;
		iov[i].iov_len = 0;
		i++;
	}
	if (i < cnt && n) {
		iov[i].iov_base = (uint8_t *)iov[i].iov_base + n;
		iov[i].iov_len -= n;
	}
	return i;
}

/* ------------------------------------------------------------------------ */
/* Receive side: errors                                                      */
/* ------------------------------------------------------------------------ */

static const struct {
	int err;
	uint8_t fes;
	const char *str;
} rx_reasons[] = {
	[PNVME_TCP_RX_OK]             = { 0, 0, "no error" },
	[PNVME_TCP_RX_BAD_TYPE]       = { -EPROTO, PNVME_TCP_FES_INVALID_HEADER_FIELD,
					  "invalid PDU type" },
	[PNVME_TCP_RX_BAD_FLAGS]      = { -EPROTO, PNVME_TCP_FES_INVALID_HEADER_FIELD,
					  "flags not allowed for the PDU type or the digests" },
	[PNVME_TCP_RX_BAD_HLEN]       = { -EPROTO, PNVME_TCP_FES_INVALID_HEADER_FIELD,
					  "invalid header length (HLEN)" },
	[PNVME_TCP_RX_BAD_PDO]        = { -EPROTO, PNVME_TCP_FES_INVALID_HEADER_FIELD,
					  "invalid data offset (PDO)" },
	[PNVME_TCP_RX_BAD_PLEN]       = { -EPROTO, PNVME_TCP_FES_INVALID_HEADER_FIELD,
					  "invalid PDU length (PLEN)" },
	[PNVME_TCP_RX_PLEN_TOO_LARGE] = { -EMSGSIZE, PNVME_TCP_FES_INVALID_HEADER_FIELD,
					  "PDU length (PLEN) above the maximum" },
	[PNVME_TCP_RX_BAD_FIELD]      = { -EPROTO, PNVME_TCP_FES_INVALID_HEADER_FIELD,
					  "invalid PDU header field" },
	[PNVME_TCP_RX_SEQUENCE]       = { -EPROTO, PNVME_TCP_FES_PDU_SEQUENCE_ERROR,
					  "PDU sequence error" },
	[PNVME_TCP_RX_HDGST]          = { -EBADMSG, PNVME_TCP_FES_HEADER_DIGEST_ERROR,
					  "header digest error" },
	[PNVME_TCP_RX_OUT_OF_RANGE]   = { -ERANGE, PNVME_TCP_FES_DATA_OUT_OF_RANGE,
					  "data transfer out of range" },
	[PNVME_TCP_RX_LIMIT]          = { -EMSGSIZE, PNVME_TCP_FES_DATA_LIMIT_EXCEEDED,
					  "R2T or data transfer limit exceeded" },
	[PNVME_TCP_RX_UNSUPPORTED]    = { -EOPNOTSUPP, PNVME_TCP_FES_UNSUPPORTED_PARAM,
					  "unsupported parameter" },
	[PNVME_TCP_RX_DDGST]          = { -EBADMSG, 0, "data digest error" },
	[PNVME_TCP_RX_CALLBACK]       = { -EPROTO, 0, "PDU refused by the connection" },
};

const char *pnvme_tcp_rx_reason_str(enum pnvme_tcp_rx_reason reason)
{
	if ((size_t)reason >= ARRAY_SIZE(rx_reasons))
		return "unknown";
	return rx_reasons[reason].str;
}

static int rx_error(struct pnvme_tcp_rx *rx, enum pnvme_tcp_rx_reason reason, uint32_t fei,
		    int err)
{
	const struct pnvme_tcp_ch *ch = &rx->hdr.ch;

	if (rx->state == PNVME_TCP_RXS_ERROR)
		return rx->error.err;
	if ((size_t)reason >= ARRAY_SIZE(rx_reasons) || reason == PNVME_TCP_RX_OK)
		reason = PNVME_TCP_RX_CALLBACK;
	rx->state = PNVME_TCP_RXS_ERROR;
	rx->error.reason = (uint8_t)reason;
	rx->error.err = err < 0 ? err : rx_reasons[reason].err;
	rx->error.fes = rx_reasons[reason].fes;
	/* TCP 1.0 §3.6.2.3: FEI is a field offset for FES 01h and 06h, reserved otherwise. */
	rx->error.fei = (rx->error.fes == PNVME_TCP_FES_INVALID_HEADER_FIELD ||
			 rx->error.fes == PNVME_TCP_FES_UNSUPPORTED_PARAM) ? fei : 0;
	if (rx->got >= sizeof(*ch))
		return pnvme_fail(rx->error.err,
				  "nvme-tcp: %s (FES %u, FEI %u) in %s PDU (type %u flags %#x "
				  "hlen %u pdo %u plen %u)",
				  rx_reasons[reason].str, rx->error.fes, rx->error.fei,
				  pnvme_tcp_pdu_name(ch->pdu_type), ch->pdu_type, ch->flags,
				  ch->hlen, ch->pdo, ch->plen);
	return pnvme_fail(rx->error.err, "nvme-tcp: %s (FES %u)", rx_reasons[reason].str,
			  rx->error.fes);
}

int pnvme_tcp_rx_fail(struct pnvme_tcp_rx *rx, enum pnvme_tcp_rx_reason reason, uint32_t fei)
{
	return rx_error(rx, reason, fei, 0);
}

/* A callback returned `ret` < 0: keep the reason it gave, else CALLBACK. */
static int rx_callback_failed(struct pnvme_tcp_rx *rx, int ret)
{
	if (rx->state == PNVME_TCP_RXS_ERROR)
		return rx->error.err;
	return rx_error(rx, PNVME_TCP_RX_CALLBACK, 0, ret);
}

int pnvme_tcp_rx_term_req(const struct pnvme_tcp_rx *rx, struct pnvme_tcp_tx_pdu *p)
{
	if (rx->state != PNVME_TCP_RXS_ERROR || !rx->error.fes)
		return -ENOENT;
	pnvme_tcp_build_term_req(p, rx->host, rx->error.fes, rx->error.fei, rx->hdr.raw, rx->got);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Receive side: the state machine                                           */
/* ------------------------------------------------------------------------ */

int pnvme_tcp_rx_init(struct pnvme_tcp_rx *rx, const struct pnvme_tcp_rx_cfg *cfg)
{
	if (cfg->pda > PNVME_TCP_PDA_MAX)
		return pnvme_fail(-EINVAL, "nvme-tcp: PDU data alignment %u above %u", cfg->pda,
				  PNVME_TCP_PDA_MAX);
	if (cfg->maxpl && cfg->maxpl < PNVME_TCP_TERM_REQ_MAX_PLEN)
		return pnvme_fail(-EINVAL, "nvme-tcp: maximum PDU length %u below %u", cfg->maxpl,
				  PNVME_TCP_TERM_REQ_MAX_PLEN);
	if (!cfg->ops || !cfg->ops->pdu_hdr || !cfg->ops->pdu_done)
		return pnvme_fail(-EINVAL, "nvme-tcp: PDU receiver without callbacks");
	memset(rx, 0, sizeof(*rx));
	rx->state = PNVME_TCP_RXS_CH;
	rx->need = sizeof(struct pnvme_tcp_ch);
	rx->host = cfg->host;
	rx->align = (uint16_t)PNVME_TCP_PDA_ALIGN(cfg->pda);
	rx->maxpl = cfg->maxpl ? cfg->maxpl : UINT32_MAX;
	rx->maxh2cdata = cfg->maxh2cdata;
	rx->ops = cfg->ops;
	rx->arg = cfg->arg;
	return 0;
}

void pnvme_tcp_rx_set_digests(struct pnvme_tcp_rx *rx, bool hdgst, bool ddgst)
{
	rx->hdgst = hdgst;
	rx->ddgst = ddgst;
}

/*
 * The common header is in (TCP 1.0 §3.6.1): check type, sequence, HLEN,
 * flags, PLEN and PDO, and work out where the data is. Nothing past these
 * 8 bytes is read before this passes.
 */
static int rx_ch_done(struct pnvme_tcp_rx *rx)
{
	const struct pnvme_tcp_ch *ch = &rx->hdr.ch;
	const struct pdu_rule *r = pdu_rule(ch->pdu_type);
	struct pnvme_tcp_rx_pdu *pdu = &rx->pdu;
	uint8_t flags = ch->flags;
	uint32_t hl, dd, plen = ch->plen;
	bool is_ic;

	if (!r || r->c2h != rx->host)
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_TYPE,
					 offsetof(struct pnvme_tcp_ch, pdu_type));
	/* The IC exchange comes first and once (a TermReq may come any time). */
	is_ic = ch->pdu_type == PNVME_TCP_ICREQ || ch->pdu_type == PNVME_TCP_ICRESP;
	if (is_ic ? rx->ic_done : !rx->ic_done && r->data != DATA_TERM)
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_SEQUENCE, 0);
	if (ch->hlen != r->hlen)
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_HLEN, offsetof(struct pnvme_tcp_ch, hlen));

	/*
	 * Flags: only those the type defines; HDGSTF exactly as negotiated on
	 * types that carry digests; DDGSTF only when negotiated (and, below,
	 * exactly when there is data); SUCCESS only with LAST_PDU (§3.6.2.8).
	 */
	if ((flags & ~r->flags) ||
	    ((r->flags & PNVME_TCP_F_HDGSTF) && !!(flags & PNVME_TCP_F_HDGSTF) != rx->hdgst) ||
	    ((flags & PNVME_TCP_F_DDGSTF) && !rx->ddgst) ||
	    ((flags & PNVME_TCP_F_SUCCESS) && !(flags & PNVME_TCP_F_LAST_PDU)))
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FLAGS,
					 offsetof(struct pnvme_tcp_ch, flags));

	hl = ch->hlen + ((flags & PNVME_TCP_F_HDGSTF) ? PNVME_TCP_DIGEST_LEN : 0u);
	if (plen < hl)
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_PLEN, offsetof(struct pnvme_tcp_ch, plen));
	if (plen > rx->maxpl)
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_PLEN_TOO_LARGE,
					 offsetof(struct pnvme_tcp_ch, plen));

	pdu->data_off = 0;
	pdu->data_len = 0;
	switch (r->data) {
	case DATA_NONE:
		if (plen != hl)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_PLEN,
						 offsetof(struct pnvme_tcp_ch, plen));
		break;
	case DATA_TERM:
		/* §3.6.2.3/4: at most 128 bytes of error data; PDO is not used. */
		if (plen > PNVME_TCP_TERM_REQ_MAX_PLEN)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_PLEN,
						 offsetof(struct pnvme_tcp_ch, plen));
		pdu->data_off = ch->hlen;
		pdu->data_len = plen - ch->hlen;
		break;
	default:
		if (plen == hl) {
			/* No data: H2CData/C2HData need some; no data digest without data. */
			if (r->data == DATA_REQ)
				return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_PLEN,
							 offsetof(struct pnvme_tcp_ch, plen));
			if (flags & PNVME_TCP_F_DDGSTF)
				return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FLAGS,
							 offsetof(struct pnvme_tcp_ch, flags));
			break;
		}
		if (rx->ddgst && !(flags & PNVME_TCP_F_DDGSTF))
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FLAGS,
						 offsetof(struct pnvme_tcp_ch, flags));
		dd = (flags & PNVME_TCP_F_DDGSTF) ? PNVME_TCP_DIGEST_LEN : 0u;
		/* PDO: past the header and its digest, aligned to our xPDA, data before PLEN. */
		if (ch->pdo < hl || ch->pdo % rx->align || (uint32_t)ch->pdo + dd >= plen)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_PDO,
						 offsetof(struct pnvme_tcp_ch, pdo));
		pdu->data_off = ch->pdo;
		pdu->data_len = plen - ch->pdo - dd;
		break;
	}
	rx->state = PNVME_TCP_RXS_HDR;
	rx->need = hl - (uint32_t)sizeof(*ch);
	return 0;
}

/* PDU-specific fields (TCP 1.0 §3.6.2.x), with the whole header in. */
static int rx_check_psh(struct pnvme_tcp_rx *rx)
{
	const union pnvme_tcp_hdr *h = &rx->hdr;
	uint32_t data_len = rx->pdu.data_len;

	switch (h->ch.pdu_type) {
	case PNVME_TCP_ICREQ:
		if (h->icreq.pfv != PNVME_TCP_PFV_1_0)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_UNSUPPORTED,
						 offsetof(struct pnvme_tcp_icreq, pfv));
		if (h->icreq.hpda > PNVME_TCP_PDA_MAX)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FIELD,
						 offsetof(struct pnvme_tcp_icreq, hpda));
		break;
	case PNVME_TCP_ICRESP:
		if (h->icresp.pfv != PNVME_TCP_PFV_1_0)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_UNSUPPORTED,
						 offsetof(struct pnvme_tcp_icresp, pfv));
		if (h->icresp.cpda > PNVME_TCP_PDA_MAX)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FIELD,
						 offsetof(struct pnvme_tcp_icresp, cpda));
		/* §3.6.2.2: a dword multiple, at least 4 KiB. */
		if (h->icresp.maxh2cdata < PNVME_TCP_MAXH2CDATA_MIN || h->icresp.maxh2cdata % 4)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FIELD,
						 offsetof(struct pnvme_tcp_icresp, maxh2cdata));
		break;
	case PNVME_TCP_H2C_DATA:
		if (h->h2c.datal != data_len)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FIELD,
						 offsetof(struct pnvme_tcp_h2c_data, datal));
		if ((uint64_t)h->h2c.datao + data_len > UINT32_MAX)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_OUT_OF_RANGE, 0);
		if (rx->maxh2cdata && data_len > rx->maxh2cdata)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_LIMIT, 0);
		break;
	case PNVME_TCP_C2H_DATA:
		if (h->c2h.datal != data_len)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FIELD,
						 offsetof(struct pnvme_tcp_c2h_data, datal));
		if ((uint64_t)h->c2h.datao + data_len > UINT32_MAX)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_OUT_OF_RANGE, 0);
		break;
	case PNVME_TCP_R2T:
		if (h->r2t.r2tl == 0)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_BAD_FIELD,
						 offsetof(struct pnvme_tcp_r2t, r2tl));
		if ((uint64_t)h->r2t.r2to + h->r2t.r2tl > UINT32_MAX)
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_OUT_OF_RANGE, 0);
		break;
	default:
		break;
	}
	return 0;
}

/* The last byte of the PDU is in: tell the connection, then wait for the next CH. */
static int rx_pdu_end(struct pnvme_tcp_rx *rx, int ddgst)
{
	int ret = rx->ops->pdu_done(rx->arg, rx, &rx->pdu, ddgst);

	if (ret < 0) {
		if (ret == ddgst && rx->state != PNVME_TCP_RXS_ERROR)
			return rx_error(rx, PNVME_TCP_RX_DDGST, 0, ret);
		return rx_callback_failed(rx, ret);
	}
	if (rx->state == PNVME_TCP_RXS_ERROR)
		return rx->error.err;
	rx->state = PNVME_TCP_RXS_CH;
	rx->need = sizeof(struct pnvme_tcp_ch);
	rx->got = 0;
	return 0;
}

/* Header (and header digest) complete: verify, let the connection direct the data. */
static int rx_hdr_done(struct pnvme_tcp_rx *rx)
{
	const struct pnvme_tcp_ch *ch = &rx->hdr.ch;
	struct pnvme_tcp_rx_pdu *pdu = &rx->pdu;
	uint32_t hl = ch->hlen;
	int ret;

	if (ch->flags & PNVME_TCP_F_HDGSTF) {
		if (pnvme_crc32c(0, rx->hdr.raw, ch->hlen) != get_le32(rx->hdr.raw + ch->hlen))
			return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_HDGST, 0);
		hl += PNVME_TCP_DIGEST_LEN;
	}
	ret = rx_check_psh(rx);
	if (ret)
		return ret;

	pdu->hdr = &rx->hdr;
	pdu->type = ch->pdu_type;
	pdu->flags = ch->flags;
	pdu->plen = ch->plen;
	pdu->dst = NULL;
	pdu->dst_len = 0;
	ret = rx->ops->pdu_hdr(rx->arg, rx, pdu);
	if (ret < 0)
		return rx_callback_failed(rx, ret);
	if (rx->state == PNVME_TCP_RXS_ERROR)
		return rx->error.err;
	if (ch->pdu_type == PNVME_TCP_ICREQ || ch->pdu_type == PNVME_TCP_ICRESP)
		rx->ic_done = true;

	if (!pdu->data_len)
		return rx_pdu_end(rx, 0);
	/* The connection's buffer must hold the PDU's data: never write past it. */
	if (pdu->dst && pdu->dst_len < pdu->data_len)
		return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_OUT_OF_RANGE, 0);
	rx->off = 0;
	rx->crc = 0;
	if (pdu->data_off > hl) {
		rx->state = PNVME_TCP_RXS_PAD;
		rx->need = pdu->data_off - hl;
	} else {
		rx->state = PNVME_TCP_RXS_DATA;
		rx->need = pdu->data_len;
	}
	return 0;
}

/* All data in: collect the data digest if there is one, else the PDU is done. */
static int rx_data_done(struct pnvme_tcp_rx *rx)
{
	if (rx->pdu.flags & PNVME_TCP_F_DDGSTF) {
		rx->state = PNVME_TCP_RXS_DDGST;
		rx->need = PNVME_TCP_DIGEST_LEN;
		return 0;
	}
	return rx_pdu_end(rx, 0);
}

/* Data bytes arrived (already at dst, or at `src` to be copied or dropped). */
static int rx_data(struct pnvme_tcp_rx *rx, const uint8_t *src, uint32_t n)
{
	uint8_t *dst = rx->pdu.dst ? (uint8_t *)rx->pdu.dst + rx->off : NULL;

	if (src && dst)
		memcpy(dst, src, n);
	if (rx->pdu.flags & PNVME_TCP_F_DDGSTF)
		rx->crc = pnvme_crc32c(rx->crc, src ? src : dst, n);
	rx->off += n;
	rx->need -= n;
	return rx->need ? 0 : rx_data_done(rx);
}

int pnvme_tcp_rx_feed(struct pnvme_tcp_rx *rx, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int ret = 0;

	if (rx->state == PNVME_TCP_RXS_ERROR)
		return rx->error.err;
	while (len > 0) {
		uint32_t n = rx->need;

		if ((size_t)n > len)
			n = (uint32_t)len;
		switch (rx->state) {
		case PNVME_TCP_RXS_CH:
		case PNVME_TCP_RXS_HDR:
			/* need <= HLEN + HDGST - got <= PNVME_TCP_HDR_BUF - got (rx_ch_done) */
			memcpy(rx->hdr.raw + rx->got, p, n);
			rx->got += n;
			rx->need -= n;
			if (!rx->need)
				ret = rx->state == PNVME_TCP_RXS_CH ? rx_ch_done(rx) : rx_hdr_done(rx);
			break;
		case PNVME_TCP_RXS_PAD:
			rx->need -= n;
			if (!rx->need) {
				rx->state = PNVME_TCP_RXS_DATA;
				rx->need = rx->pdu.data_len;
			}
			break;
		case PNVME_TCP_RXS_DATA:
			ret = rx_data(rx, p, n);
			break;
		case PNVME_TCP_RXS_DDGST:
			memcpy(rx->dgst + PNVME_TCP_DIGEST_LEN - rx->need, p, n);
			rx->need -= n;
			if (!rx->need)
				ret = rx_pdu_end(rx, get_le32(rx->dgst) == rx->crc ? 0 : -EBADMSG);
			break;
		default:
			return rx->error.err;
		}
		if (ret)
			return ret;
		p += n;
		len -= n;
	}
	return 0;
}

size_t pnvme_tcp_rx_direct(const struct pnvme_tcp_rx *rx, void **buf)
{
	if (rx->state != PNVME_TCP_RXS_DATA || !rx->pdu.dst)
		return 0;
	*buf = (uint8_t *)rx->pdu.dst + rx->off;
	return rx->need;
}

int pnvme_tcp_rx_direct_done(struct pnvme_tcp_rx *rx, size_t n)
{
	if (rx->state == PNVME_TCP_RXS_ERROR)
		return rx->error.err;
	if (rx->state != PNVME_TCP_RXS_DATA || !rx->pdu.dst || n > rx->need)
		return pnvme_fail(-EINVAL, "nvme-tcp: %zu bytes received outside a data destination",
				  n);
	if (!n)
		return 0;
	return rx_data(rx, NULL, (uint32_t)n);
}
