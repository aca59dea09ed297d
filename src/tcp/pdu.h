/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tcp/pdu.h - the NVMe/TCP PDU layer shared by the TCP host and target:
 * CRC32C digests, PDU builders for the send side (header + digests, data by
 * reference, one iovec array per PDU for sendmsg), and a receive-side parser
 * that is fed whatever recv() returned and checks every header field before
 * any data moves (NVMe/TCP Transport Specification 1.0, "TCP 1.0").
 *
 * No allocation: a PDU to send is a struct pnvme_tcp_tx_pdu the caller owns
 * (header buffer, pointer to the data, data digest); the receiver is one
 * struct pnvme_tcp_rx per connection with a fixed header buffer. Nothing here
 * touches a socket; nothing here is thread safe (one connection, one thread).
 */
#ifndef PNVME_TCP_PDU_H
#define PNVME_TCP_PDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <pnvme/tcp_spec.h>

/* ------------------------------------------------------------------------ */
/* CRC32C (crc32c.c)                                                         */
/* ------------------------------------------------------------------------ */

/**
 * CRC32C (Castagnoli, the iSCSI CRC) of `len` bytes at `buf`, continuing
 * `crc`: start with 0; pnvme_crc32c(pnvme_crc32c(0, a, n), b, m) is the CRC
 * of a followed by b. pnvme_crc32c(0, "123456789", 9) == 0xe3069283. The
 * NVMe/TCP header and data digests are this value, little-endian.
 */
uint32_t pnvme_crc32c(uint32_t crc, const void *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* PDU headers                                                               */
/* ------------------------------------------------------------------------ */

/*
 * Room for any PDU header with its header digest and the padding up to PDO:
 * ICReq/ICResp are 128 bytes without digests; a CapsuleCmd is 72 + 4, padded
 * to at most (31 + 1) * 4 = 128 bytes.
 */
#define PNVME_TCP_HDR_BUF 128u

/** A PDU header as bytes or as any of the PDU layouts of pnvme/tcp_spec.h. */
union pnvme_tcp_hdr {
	uint8_t raw[PNVME_TCP_HDR_BUF];
	struct pnvme_tcp_ch ch;
	struct pnvme_tcp_icreq icreq;
	struct pnvme_tcp_icresp icresp;
	struct pnvme_tcp_term_req term;
	struct pnvme_tcp_capsule_cmd cmd;
	struct pnvme_tcp_capsule_resp resp;
	struct pnvme_tcp_h2c_data h2c;
	struct pnvme_tcp_c2h_data c2h;
	struct pnvme_tcp_r2t r2t;
};

/** Name of a PDU type ("CapsuleCmd"), "unknown" for other values. */
const char *pnvme_tcp_pdu_name(uint8_t type);
/** Name of a Fatal Error Status ("Header Digest Error"), "reserved" otherwise. */
const char *pnvme_tcp_fes_str(uint16_t fes);

/* ------------------------------------------------------------------------ */
/* Send side                                                                 */
/* ------------------------------------------------------------------------ */

/** What the peer negotiated, for the PDUs we send (after ICReq/ICResp). */
struct pnvme_tcp_tx_params {
	bool    hdgst;  /* header digests enabled on this connection */
	bool    ddgst;  /* data digests enabled on this connection */
	uint8_t pda;    /* the receiver's alignment: CPDA on a host, HPDA on a target */
};

/**
 * One PDU ready to send: the header bytes (CH, PSH, header digest, zero
 * padding up to PDO), the data by reference (never copied) and the data
 * digest. Build it with a pnvme_tcp_build_* function, then hand
 * pnvme_tcp_pdu_iov() to sendmsg(). The data must not change between
 * building (the digest is computed then) and the end of the send.
 */
struct pnvme_tcp_tx_pdu {
	union pnvme_tcp_hdr hdr;
	const void *data;     /* PDU data, or NULL */
	uint32_t data_len;    /* bytes at data */
	uint32_t ddgst;       /* data digest (valid when hdr.ch.flags has DDGSTF) */
	uint8_t  hdr_len;     /* bytes of hdr on the wire: PDO, or HLEN + HDGST without data */
};

/*
 * Builders. Each fills every field of the PDU (reserved bytes zero),
 * computes HLEN, PDO, PLEN, the HDGSTF/DDGSTF flags and both digests from
 * `tp`, and pads the data to `tp->pda`. Those taking data return 0, or
 * -EINVAL for data == NULL with len > 0 (or len 0 where data is required),
 * -EMSGSIZE when PLEN would not fit in 32 bits.
 */

/** ICReq (TCP 1.0 §3.6.2.1): never digested; `dgst` is PNVME_TCP_DGST_* asked for. */
void pnvme_tcp_build_icreq(struct pnvme_tcp_tx_pdu *p, uint8_t hpda, uint8_t dgst,
			   uint32_t maxr2t);
/** ICResp (TCP 1.0 §3.6.2.2): never digested; `dgst` is what this connection uses. */
void pnvme_tcp_build_icresp(struct pnvme_tcp_tx_pdu *p, uint8_t cpda, uint8_t dgst,
			    uint32_t maxh2cdata);
/** CapsuleCmd (TCP 1.0 §3.6.2.5) with `sqe` and `len` bytes of in-capsule data (0: none). */
int pnvme_tcp_build_capsule_cmd(struct pnvme_tcp_tx_pdu *p, const struct pnvme_tcp_tx_params *tp,
				const struct pnvme_sqe *sqe, const void *data, uint32_t len);
/** CapsuleResp (TCP 1.0 §3.6.2.6) carrying `cqe`. */
void pnvme_tcp_build_capsule_resp(struct pnvme_tcp_tx_pdu *p, const struct pnvme_tcp_tx_params *tp,
				  const struct pnvme_cqe *cqe);
/** H2CData (TCP 1.0 §3.6.2.7): `len` (> 0) bytes at offset `datao` of command `cccid`. */
int pnvme_tcp_build_h2c_data(struct pnvme_tcp_tx_pdu *p, const struct pnvme_tcp_tx_params *tp,
			     uint16_t cccid, uint16_t ttag, uint32_t datao, const void *data,
			     uint32_t len, bool last);
/** C2HData (TCP 1.0 §3.6.2.8); `success` (implies `last`) replaces the CapsuleResp. */
int pnvme_tcp_build_c2h_data(struct pnvme_tcp_tx_pdu *p, const struct pnvme_tcp_tx_params *tp,
			     uint16_t cccid, uint32_t datao, const void *data, uint32_t len,
			     bool last, bool success);
/** R2T (TCP 1.0 §3.6.2.9): ask for `r2tl` bytes at `r2to` of command `cccid`. */
void pnvme_tcp_build_r2t(struct pnvme_tcp_tx_pdu *p, const struct pnvme_tcp_tx_params *tp,
			 uint16_t cccid, uint16_t ttag, uint32_t r2to, uint32_t r2tl);
/**
 * H2CTermReq (`h2c`, from a host) or C2HTermReq (TCP 1.0 §3.6.2.3/4): never
 * digested, PDO 0; the data is the header of the offending PDU, `len`
 * clipped to PNVME_TCP_TERM_REQ_MAX_DATA bytes (referenced, not copied).
 */
void pnvme_tcp_build_term_req(struct pnvme_tcp_tx_pdu *p, bool h2c, uint16_t fes, uint32_t fei,
			      const void *err_hdr, uint32_t len);

/** PLEN of a built PDU: the bytes pnvme_tcp_pdu_iov() describes. */
static inline uint32_t pnvme_tcp_pdu_plen(const struct pnvme_tcp_tx_pdu *p)
{
	return p->hdr.ch.plen;
}

/**
 * Describe a built PDU for sendmsg()/writev(): header (+ digest + padding),
 * data, data digest. Writes 1 to 3 entries at `iov` and returns how many.
 * The entries point into `p` and at the data: keep both alive and unchanged
 * until sent.
 */
static inline int pnvme_tcp_pdu_iov(const struct pnvme_tcp_tx_pdu *p, struct iovec *iov)
{
	int n = 0;

	iov[n].iov_base = (void *)(uintptr_t)p->hdr.raw;
	iov[n++].iov_len = p->hdr_len;
	if (p->data_len) {
		iov[n].iov_base = (void *)(uintptr_t)p->data;
		iov[n++].iov_len = p->data_len;
		if (p->hdr.ch.flags & PNVME_TCP_F_DDGSTF) {
			iov[n].iov_base = (void *)(uintptr_t)&p->ddgst;
			iov[n++].iov_len = PNVME_TCP_DIGEST_LEN;
		}
	}
	return n;
}

/**
 * After a short sendmsg(): drop the first `n` bytes from `iov[0..cnt)`
 * (adjusting the partly sent entry in place) and return the index of the
 * first entry with bytes left (cnt when everything was sent).
 */
size_t pnvme_tcp_iov_advance(struct iovec *iov, size_t cnt, size_t n);

/* ------------------------------------------------------------------------ */
/* Receive side                                                              */
/* ------------------------------------------------------------------------ */

/*
 * Why a received byte stream was refused. Each reason but DDGST and CALLBACK
 * is a fatal transport error with a Fatal Error Status (TCP 1.0 §3.6.2.3/4)
 * to send in the TermReq before closing the connection; FEI is the byte
 * offset of the field in error for FES 01h and 06h.
 */
enum pnvme_tcp_rx_reason {
	PNVME_TCP_RX_OK = 0,
	PNVME_TCP_RX_BAD_TYPE,       /* FES 01h, FEI 0: unknown type, or the other direction's */
	PNVME_TCP_RX_BAD_FLAGS,      /* FES 01h, FEI 1: flag not allowed for the type, or
				      * HDGSTF/DDGSTF not as negotiated */
	PNVME_TCP_RX_BAD_HLEN,       /* FES 01h, FEI 2: HLEN not the type's */
	PNVME_TCP_RX_BAD_PDO,        /* FES 01h, FEI 3: PDO below HLEN + HDGST, misaligned,
				      * or leaving no data before PLEN */
	PNVME_TCP_RX_BAD_PLEN,       /* FES 01h, FEI 4: PLEN below HLEN + HDGST or wrong for type */
	PNVME_TCP_RX_PLEN_TOO_LARGE, /* FES 01h, FEI 4: PLEN above the configured maximum */
	PNVME_TCP_RX_BAD_FIELD,      /* FES 01h, FEI: a PDU-specific field (DATAL, R2TL, xPDA,
				      * MAXH2CDATA; or CCCID/TTAG from a callback) */
	PNVME_TCP_RX_SEQUENCE,       /* FES 02h: PDU Sequence Error (IC PDU not first / twice) */
	PNVME_TCP_RX_HDGST,          /* FES 03h: Header Digest Error */
	PNVME_TCP_RX_OUT_OF_RANGE,   /* FES 04h: data outside the command (callback, or the
				      * destination smaller than the PDU data) */
	PNVME_TCP_RX_LIMIT,          /* FES 05h: H2CData DATAL above MAXH2CDATA; R2T limit */
	PNVME_TCP_RX_UNSUPPORTED,    /* FES 06h, FEI: Unsupported Parameter (PFV) */
	PNVME_TCP_RX_DDGST,          /* no FES: data digest mismatch (not fatal in TCP 1.0:
				      * the command fails with Transient Transport Error) */
	PNVME_TCP_RX_CALLBACK,       /* no FES: a callback failed without naming a reason */
};

/** "Header Digest Error"-style text for a reason. */
const char *pnvme_tcp_rx_reason_str(enum pnvme_tcp_rx_reason reason);

/** The first fatal error of a receiver; it stays until pnvme_tcp_rx_init(). */
struct pnvme_tcp_rx_error {
	int      err;      /* negative errno: -EPROTO, -EBADMSG (digests), -ERANGE, -EMSGSIZE,
			    * -EOPNOTSUPP, or what a callback returned */
	uint8_t  reason;   /* enum pnvme_tcp_rx_reason */
	uint8_t  fes;      /* enum pnvme_tcp_fes for the TermReq; 0: send none */
	uint32_t fei;      /* Fatal Error Information (byte offset for FES 01h/06h) */
};

/**
 * The PDU being received, as the callbacks see it. The header callback sets
 * `dst` and `dst_len` to say where the data goes.
 */
struct pnvme_tcp_rx_pdu {
	const union pnvme_tcp_hdr *hdr; /* validated header (digest checked), HLEN bytes */
	uint8_t  type;       /* enum pnvme_tcp_pdu_type */
	uint8_t  flags;      /* CH FLAGS */
	uint8_t  data_off;   /* where the data starts in the PDU (PDO; HLEN for TermReq) */
	uint32_t plen;
	uint32_t data_len;   /* PDU data bytes, digests and padding excluded; 0: none */
	void    *dst;        /* set by the header callback: the data lands here; NULL: dropped */
	uint32_t dst_len;    /* bytes available at dst: at least data_len */
};

struct pnvme_tcp_rx;

struct pnvme_tcp_rx_ops {
	/*
	 * A PDU header arrived and passed every check of this layer. Check what
	 * needs the connection's state (CCCID known, DATAO/DATAL inside the
	 * command, R2T allowed, ...) and, for data, set pdu->dst/dst_len (or
	 * leave dst NULL to drop it). May call pnvme_tcp_rx_set_digests() (on
	 * ICReq/ICResp). Return 0, or pnvme_tcp_rx_fail(...) / a negative errno
	 * to fail the connection.
	 */
	int (*pdu_hdr)(void *arg, struct pnvme_tcp_rx *rx, struct pnvme_tcp_rx_pdu *pdu);
	/*
	 * The whole PDU arrived (for PDUs without data right after pdu_hdr).
	 * `ddgst` is 0, or -EBADMSG when the data digest did not match (the
	 * data is at dst all the same). Return 0 or a negative errno as above.
	 */
	int (*pdu_done)(void *arg, struct pnvme_tcp_rx *rx, const struct pnvme_tcp_rx_pdu *pdu,
			int ddgst);
};

struct pnvme_tcp_rx_cfg {
	bool     host;       /* true: receive C2H PDUs (a host); false: H2C PDUs (a target) */
	uint8_t  pda;        /* our alignment for received data: HPDA (host) / CPDA (target) */
	uint32_t maxpl;      /* largest PLEN accepted; 0: no limit (>= 152 otherwise) */
	uint32_t maxh2cdata; /* target: largest H2CData DATAL (ICResp MAXH2CDATA); 0: none */
	const struct pnvme_tcp_rx_ops *ops;
	void    *arg;        /* first argument of the callbacks */
};

enum pnvme_tcp_rx_state {
	PNVME_TCP_RXS_CH,     /* collecting the 8-byte common header (a PDU boundary when got 0) */
	PNVME_TCP_RXS_HDR,    /* collecting the rest of the header and its digest */
	PNVME_TCP_RXS_PAD,    /* dropping the padding before PDO */
	PNVME_TCP_RXS_DATA,   /* data to pdu.dst (or dropped) */
	PNVME_TCP_RXS_DDGST,  /* collecting the data digest */
	PNVME_TCP_RXS_ERROR,  /* stopped: see error */
};

/**
 * Receive state of one connection; bounded, no allocation. Fields are
 * private to pdu.c except `error` (read) and `hdr` (read, e.g. for a TermReq).
 */
struct pnvme_tcp_rx {
	uint8_t  state;      /* enum pnvme_tcp_rx_state */
	bool     hdgst;      /* negotiated header digest */
	bool     ddgst;      /* negotiated data digest */
	bool     ic_done;    /* the ICReq/ICResp has been received */
	uint32_t got;        /* header bytes collected */
	uint32_t need;       /* bytes left in this state */
	uint32_t off;        /* data bytes received */
	uint32_t crc;        /* running data digest */
	uint8_t  dgst[PNVME_TCP_DIGEST_LEN];
	struct pnvme_tcp_rx_pdu pdu;
	struct pnvme_tcp_rx_error error;
	/* configuration */
	bool     host;
	uint16_t align;      /* (pda + 1) * 4 */
	uint32_t maxpl;
	uint32_t maxh2cdata;
	const struct pnvme_tcp_rx_ops *ops;
	void    *arg;
	union pnvme_tcp_hdr hdr;
};

/**
 * Start a receiver for a new connection (also resets one after an error).
 * Digests are off until pnvme_tcp_rx_set_digests(); the first PDU must be
 * ICReq (target) / ICResp (host), or a TermReq.
 * Returns 0, -EINVAL for pda > 31, 0 < maxpl < 152 or missing callbacks.
 */
int pnvme_tcp_rx_init(struct pnvme_tcp_rx *rx, const struct pnvme_tcp_rx_cfg *cfg);

/**
 * Turn the digests on for every PDU after the IC exchange (never for
 * ICReq/ICResp/TermReq). Call it from the pdu_hdr callback of the
 * ICReq/ICResp, or before feeding the bytes that follow it.
 */
void pnvme_tcp_rx_set_digests(struct pnvme_tcp_rx *rx, bool hdgst, bool ddgst);

/**
 * Feed `len` received bytes (any split: one byte at a time or many PDUs at
 * once). Calls the callbacks for each PDU as it completes. Returns 0 when
 * all bytes were taken, or the connection's fatal error (negative errno,
 * details in rx->error); after an error every call returns it again.
 * Never called from inside a callback.
 */
int pnvme_tcp_rx_feed(struct pnvme_tcp_rx *rx, const void *buf, size_t len);

/**
 * Zero-copy receive: when the receiver is inside the data of a PDU whose
 * header callback gave a destination, store in *buf where the next bytes
 * belong and return how many (the rest of this PDU's data), so the caller
 * can recv() straight into the user's buffer; 0 otherwise (then recv()
 * into a staging buffer and pnvme_tcp_rx_feed() it).
 */
size_t pnvme_tcp_rx_direct(const struct pnvme_tcp_rx *rx, void **buf);

/**
 * `n` bytes (at most what pnvme_tcp_rx_direct() returned) were received at
 * the place it named. Returns 0 or the fatal error, as pnvme_tcp_rx_feed().
 */
int pnvme_tcp_rx_direct_done(struct pnvme_tcp_rx *rx, size_t n);

/** True between PDUs (nothing of a PDU received yet) and not failed. */
static inline bool pnvme_tcp_rx_idle(const struct pnvme_tcp_rx *rx)
{
	return rx->state == PNVME_TCP_RXS_CH && rx->got == 0;
}

/**
 * Fail the connection: record `reason` and `fei` as rx->error (FES from the
 * reason), stop the receiver, and return the reason's negative errno. For
 * the callbacks: `return pnvme_tcp_rx_fail(rx, PNVME_TCP_RX_OUT_OF_RANGE, 0);`.
 * The first error stays; later calls return it again.
 */
int pnvme_tcp_rx_fail(struct pnvme_tcp_rx *rx, enum pnvme_tcp_rx_reason reason, uint32_t fei);

/**
 * Build the TermReq that answers the receiver's error: H2CTermReq on a host,
 * C2HTermReq on a target, with its FES and FEI and, as data, the received
 * part of the offending header (referenced in rx->hdr: keep rx unchanged
 * until sent). Returns 0, or -ENOENT when there is no error with an FES.
 */
int pnvme_tcp_rx_term_req(const struct pnvme_tcp_rx *rx, struct pnvme_tcp_tx_pdu *p);

#endif /* PNVME_TCP_PDU_H */
