/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme/tcp_spec.h - NVMe over Fabrics definitions used by the TCP transport:
 * the NVMe/TCP PDUs, the fabrics commands that travel in them (Connect,
 * Property Get/Set) and the SGL descriptors that describe their data.
 *
 * Follows the NVM Express TCP Transport Specification, Revision 1.0 ("TCP
 * 1.0") and the fabrics sections of the NVM Express Base Specification,
 * Revision 2.0c ("Base 2.0"). Same style as pnvme/spec.h: little-endian
 * fixed-width fields, no bitfields, no packing, reserved bytes named by
 * their offset, every size and offset checked at compile time.
 *
 * Every PDU starts with the 8-byte common header; its PDU-specific header
 * follows. On the wire a PDU is
 *
 *   CH + PSH (HLEN bytes) | HDGST (4, if HDGSTF) | PAD | DATA | DDGST (4, if DDGSTF)
 *                                                     ^ PDO            PLEN total ^
 *
 * where PAD brings the data to the receiver's alignment ((xPDA + 1) * 4
 * bytes, negotiated in ICReq/ICResp).
 */
#ifndef PNVME_TCP_SPEC_H
#define PNVME_TCP_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include <pnvme/spec.h>

/* ------------------------------------------------------------------------ */
/* NVMe/TCP PDUs (TCP 1.0 §3.6)                                              */
/* ------------------------------------------------------------------------ */

#define PNVME_TCP_PORT          4420u /* IANA port for NVMe/TCP I/O controllers */
#define PNVME_TCP_DISC_PORT     8009u /* IANA port for NVMe/TCP discovery */
#define PNVME_TCP_PFV_1_0       0x0000u /* PDU Format Version */
#define PNVME_TCP_DIGEST_LEN    4u    /* HDGST and DDGST: CRC32C, little-endian */
#define PNVME_TCP_PDA_MAX       31u   /* HPDA/CPDA: alignment (PDA + 1) * 4 bytes */
#define PNVME_TCP_PDA_ALIGN(pda) (((uint32_t)(pda) + 1u) * 4u)
#define PNVME_TCP_MAXH2CDATA_MIN 4096u /* ICResp MAXH2CDATA lower bound */

/* PDU-Type (TCP 1.0 §3.6.1, common header byte 0) */
enum pnvme_tcp_pdu_type {
	PNVME_TCP_ICREQ        = 0x00, /* Initialize Connection Request, host to ctrl */
	PNVME_TCP_ICRESP       = 0x01, /* Initialize Connection Response, ctrl to host */
	PNVME_TCP_H2C_TERM_REQ = 0x02, /* Host to Controller Terminate Connection */
	PNVME_TCP_C2H_TERM_REQ = 0x03, /* Controller to Host Terminate Connection */
	PNVME_TCP_CAPSULE_CMD  = 0x04, /* Command Capsule */
	PNVME_TCP_CAPSULE_RESP = 0x05, /* Response Capsule */
	PNVME_TCP_H2C_DATA     = 0x06, /* Host to Controller Data */
	PNVME_TCP_C2H_DATA     = 0x07, /* Controller to Host Data */
	PNVME_TCP_R2T          = 0x09, /* Ready to Transfer */
};

/* FLAGS (TCP 1.0 §3.6.1, common header byte 1); which are allowed depends on the type */
#define PNVME_TCP_F_HDGSTF   0x01u /* a header digest follows the PDU header */
#define PNVME_TCP_F_DDGSTF   0x02u /* a data digest follows the PDU data */
#define PNVME_TCP_F_LAST_PDU 0x04u /* H2CData/C2HData: last data PDU of the transfer */
#define PNVME_TCP_F_SUCCESS  0x08u /* C2HData: command completed, no CapsuleResp follows */

/* HLEN of each PDU type: the length of CH + PSH, without the header digest */
#define PNVME_TCP_ICREQ_HLEN     128u
#define PNVME_TCP_ICRESP_HLEN    128u
#define PNVME_TCP_TERM_REQ_HLEN  24u
#define PNVME_TCP_CMD_HLEN       72u   /* CH + 64-byte SQE */
#define PNVME_TCP_RESP_HLEN      24u   /* CH + 16-byte CQE */
#define PNVME_TCP_DATA_HLEN      24u   /* H2CData and C2HData */
#define PNVME_TCP_R2T_HLEN       24u
/* H2CTermReq / C2HTermReq carry up to 128 bytes of the offending PDU header. */
#define PNVME_TCP_TERM_REQ_MAX_DATA 128u
#define PNVME_TCP_TERM_REQ_MAX_PLEN (PNVME_TCP_TERM_REQ_HLEN + PNVME_TCP_TERM_REQ_MAX_DATA)

/* Common Header, 8 bytes (TCP 1.0 §3.6.1) */
struct pnvme_tcp_ch {
	uint8_t  pdu_type; /* enum pnvme_tcp_pdu_type */
	uint8_t  flags;    /* PNVME_TCP_F_* */
	uint8_t  hlen;     /* PDU Header Length: CH + PSH, no digest */
	uint8_t  pdo;      /* PDU Data Offset from the PDU start; 0 without data */
	uint32_t plen;     /* PDU Length: everything, digests and padding included */
};

/* ICReq DGST / ICResp DGST: digests requested / enabled */
#define PNVME_TCP_DGST_HDGST 0x01u /* HDGST_ENABLE */
#define PNVME_TCP_DGST_DDGST 0x02u /* DDGST_ENABLE */

/* Initialize Connection Request PDU, 128 bytes (TCP 1.0 §3.6.2.1) */
struct pnvme_tcp_icreq {
	struct pnvme_tcp_ch ch;
	uint16_t pfv;         /* PDU Format Version: 0 */
	uint8_t  hpda;        /* Host PDU Data Alignment: (hpda + 1) dwords, 0..31 */
	uint8_t  dgst;        /* PNVME_TCP_DGST_*: digests the host asks for */
	uint32_t maxr2t;      /* Maximum outstanding R2Ts per command, 0's based */
	uint8_t  rsvd16[112];
};

/* Initialize Connection Response PDU, 128 bytes (TCP 1.0 §3.6.2.2) */
struct pnvme_tcp_icresp {
	struct pnvme_tcp_ch ch;
	uint16_t pfv;         /* PDU Format Version: 0 */
	uint8_t  cpda;        /* Controller PDU Data Alignment: (cpda + 1) dwords, 0..31 */
	uint8_t  dgst;        /* PNVME_TCP_DGST_*: digests enabled on this connection */
	uint32_t maxh2cdata;  /* Maximum H2CData data length, bytes, >= 4096, dword multiple */
	uint8_t  rsvd16[112];
};

/*
 * Fatal Error Status of H2CTermReq (TCP 1.0 §3.6.2.3) and C2HTermReq
 * (§3.6.2.4). Fatal Error Information (FEI) is the byte offset of the field
 * in error from the start of the PDU header for 01h and 06h, reserved otherwise.
 */
enum pnvme_tcp_fes {
	PNVME_TCP_FES_INVALID_HEADER_FIELD = 0x01, /* Invalid PDU Header Field */
	PNVME_TCP_FES_PDU_SEQUENCE_ERROR   = 0x02, /* PDU Sequence Error */
	PNVME_TCP_FES_HEADER_DIGEST_ERROR  = 0x03, /* Header Digest Error */
	PNVME_TCP_FES_DATA_OUT_OF_RANGE    = 0x04, /* Data Transfer Out of Range */
	PNVME_TCP_FES_R2T_LIMIT_EXCEEDED   = 0x05, /* H2CTermReq: R2T Limit Exceeded */
	PNVME_TCP_FES_DATA_LIMIT_EXCEEDED  = 0x05, /* C2HTermReq: Data Transfer Limit Exceeded */
	PNVME_TCP_FES_UNSUPPORTED_PARAM    = 0x06, /* Unsupported Parameter */
};

/*
 * H2CTermReq / C2HTermReq PDU header, 24 bytes (TCP 1.0 §3.6.2.3, §3.6.2.4).
 * FEI sits at byte 10, not dword aligned, hence the byte array (read and
 * write it as little-endian). The PDU data right after the header (PDO 0,
 * no digests) is the header of the PDU that caused the error, at most
 * PNVME_TCP_TERM_REQ_MAX_DATA bytes.
 */
struct pnvme_tcp_term_req {
	struct pnvme_tcp_ch ch;
	uint16_t fes;         /* enum pnvme_tcp_fes */
	uint8_t  fei[4];      /* Fatal Error Information, little-endian dword */
	uint8_t  rsvd14[10];
};

/* Command Capsule PDU header, 72 bytes (TCP 1.0 §3.6.2.5); in-capsule data may follow */
struct pnvme_tcp_capsule_cmd {
	struct pnvme_tcp_ch ch;
	struct pnvme_sqe    sqe;
};

/* Response Capsule PDU, 24 bytes (TCP 1.0 §3.6.2.6) */
struct pnvme_tcp_capsule_resp {
	struct pnvme_tcp_ch ch;
	struct pnvme_cqe    cqe;
};

/* Host to Controller Data PDU header, 24 bytes (TCP 1.0 §3.6.2.7) */
struct pnvme_tcp_h2c_data {
	struct pnvme_tcp_ch ch;
	uint16_t cccid;       /* Command Capsule CID */
	uint16_t ttag;        /* Transfer Tag, from the R2T */
	uint32_t datao;       /* Data Offset within the command's data */
	uint32_t datal;       /* Data Length of this PDU */
	uint8_t  rsvd20[4];
};

/* Controller to Host Data PDU header, 24 bytes (TCP 1.0 §3.6.2.8) */
struct pnvme_tcp_c2h_data {
	struct pnvme_tcp_ch ch;
	uint16_t cccid;       /* Command Capsule CID */
	uint8_t  rsvd10[2];
	uint32_t datao;       /* Data Offset within the command's data */
	uint32_t datal;       /* Data Length of this PDU */
	uint8_t  rsvd20[4];
};

/* Ready to Transfer PDU, 24 bytes (TCP 1.0 §3.6.2.9) */
struct pnvme_tcp_r2t {
	struct pnvme_tcp_ch ch;
	uint16_t cccid;       /* Command Capsule CID */
	uint16_t ttag;        /* Transfer Tag, echoed in the H2CData PDUs */
	uint32_t r2to;        /* R2T Offset within the command's data */
	uint32_t r2tl;        /* R2T Length, non-zero */
	uint8_t  rsvd20[4];
};

/* ------------------------------------------------------------------------ */
/* SGL descriptors (Base 2.0 §4.1.2)                                         */
/* ------------------------------------------------------------------------ */

/*
 * Fabrics commands describe data with SGLs only: PSDT = 01b in the SQE and
 * SGL Descriptor 1 in bytes 24..39 (where PCIe puts PRP1/PRP2). NVMe/TCP
 * uses two forms: in-capsule data is a Data Block descriptor with the
 * Offset subtype (address = offset into the capsule's data, 0); data moved
 * by H2CData/C2HData is a Transport Data Block descriptor with the
 * transport-specific subtype Ah (address 0).
 */
#define PNVME_SQE_PSDT_SGL_MPTR_CONTIG 1u /* PSDT 01b: SGLs, MPTR to a contiguous buffer */

struct pnvme_sgl_desc {
	uint64_t addr;       /* Address (or offset, per subtype) */
	uint32_t length;     /* Length in bytes */
	uint8_t  rsvd12[3];
	uint8_t  id;         /* SGL Identifier: type (7:4), subtype (3:0) */
};

#define PNVME_SGL_ID(type, subtype) ((uint8_t)(((type) << 4) | (subtype)))
#define PNVME_SGL_TYPE(id)          (((id) >> 4) & 0xfu)
#define PNVME_SGL_SUBTYPE(id)       ((id) & 0xfu)

enum pnvme_sgl_type {
	PNVME_SGL_TYPE_DATA_BLOCK      = 0x0,
	PNVME_SGL_TYPE_BIT_BUCKET      = 0x1,
	PNVME_SGL_TYPE_SEGMENT         = 0x2,
	PNVME_SGL_TYPE_LAST_SEGMENT    = 0x3,
	PNVME_SGL_TYPE_KEYED_DATA      = 0x4,
	PNVME_SGL_TYPE_TRANSPORT_DATA  = 0x5,
};

enum pnvme_sgl_subtype {
	PNVME_SGL_SUBTYPE_ADDRESS   = 0x0,
	PNVME_SGL_SUBTYPE_OFFSET    = 0x1,
	PNVME_SGL_SUBTYPE_TRANSPORT = 0xa, /* transport specific (NVMe/TCP) */
};

/* The two descriptors NVMe/TCP uses */
#define PNVME_SGL_ID_INCAPSULE PNVME_SGL_ID(PNVME_SGL_TYPE_DATA_BLOCK, PNVME_SGL_SUBTYPE_OFFSET)
#define PNVME_SGL_ID_TRANSPORT \
	PNVME_SGL_ID(PNVME_SGL_TYPE_TRANSPORT_DATA, PNVME_SGL_SUBTYPE_TRANSPORT)

/* ------------------------------------------------------------------------ */
/* Fabrics commands (Base 2.0 §6: Fabrics Command Set)                       */
/* ------------------------------------------------------------------------ */

#define PNVME_OPC_FABRICS 0x7fu /* every fabrics command; FCTYPE says which */

enum pnvme_fctype {
	PNVME_FCTYPE_PROPERTY_SET = 0x00, /* Base 2.0 §6.6 */
	PNVME_FCTYPE_CONNECT      = 0x01, /* Base 2.0 §6.3 */
	PNVME_FCTYPE_PROPERTY_GET = 0x04, /* Base 2.0 §6.5 */
	PNVME_FCTYPE_AUTH_SEND    = 0x05, /* Base 2.0 §6.2 */
	PNVME_FCTYPE_AUTH_RECV    = 0x06, /* Base 2.0 §6.1 */
	PNVME_FCTYPE_DISCONNECT   = 0x08, /* Base 2.0 §6.4 */
};

/* Connect command SQE, 64 bytes (Base 2.0 §6.3); the Connect data follows as data */
struct pnvme_fabrics_connect {
	uint8_t  opc;         /* PNVME_OPC_FABRICS */
	uint8_t  flags;       /* PSDT (7:6) */
	uint16_t cid;
	uint8_t  fctype;      /* PNVME_FCTYPE_CONNECT */
	uint8_t  rsvd5[19];
	struct pnvme_sgl_desc sgl1;
	uint16_t recfmt;      /* Record Format: 0 */
	uint16_t qid;         /* Queue ID: 0 = admin */
	uint16_t sqsize;      /* SQ Size, 0's based */
	uint8_t  cattr;       /* Connect Attributes */
	uint8_t  rsvd47;
	uint32_t kato;        /* Keep Alive Timeout, ms (admin queue only) */
	uint8_t  rsvd52[12];
};

#define PNVME_CONNECT_CNTLID_DYNAMIC 0xffffu /* any controller (dynamic model) */
#define PNVME_NQN_LEN               256u /* NQN fields: up to PNVME_NQN_MAX bytes + NUL */
#define PNVME_NQN_MAX               223u /* Base 2.0 §4.5: an NQN is at most 223 bytes */
#define PNVME_DISCOVERY_NQN         "nqn.2014-08.org.nvmexpress.discovery"

/* Connect data, 1024 bytes (Base 2.0 §6.3, Connect Command Data) */
struct pnvme_fabrics_connect_data {
	uint8_t  hostid[16];  /* Host Identifier */
	uint16_t cntlid;      /* Controller ID: PNVME_CONNECT_CNTLID_DYNAMIC */
	uint8_t  rsvd18[238];
	char     subnqn[PNVME_NQN_LEN];  /* NVM Subsystem NQN, NUL terminated */
	char     hostnqn[PNVME_NQN_LEN]; /* Host NQN, NUL terminated */
	uint8_t  rsvd768[256];
};

/* Connect response (Base 2.0 §6.3): CQE dword 0 bits 15:0 are the Controller ID. */
#define PNVME_CONNECT_RESP_CNTLID(dw0) ((uint16_t)((dw0) & 0xffffu))

/* Command specific status values of fabrics commands (SCT 1h) */
enum pnvme_fabrics_sc {
	PNVME_SC_CONNECT_INCOMPATIBLE_FORMAT = 0x80,
	PNVME_SC_CONNECT_CTRL_BUSY           = 0x81,
	PNVME_SC_CONNECT_INVALID_PARAM       = 0x82,
	PNVME_SC_CONNECT_RESTART_DISCOVERY   = 0x83,
	PNVME_SC_CONNECT_INVALID_HOST        = 0x84,
	PNVME_SC_CONNECT_INVALID_QUEUE_TYPE  = 0x85,
	PNVME_SC_DISCOVER_RESTART            = 0x90,
	PNVME_SC_AUTH_REQUIRED               = 0x91,
};

/* Property Get/Set ATTRIB bits 2:0: the property size */
#define PNVME_PROP_SIZE_4 0u
#define PNVME_PROP_SIZE_8 1u

/* Property Set command SQE, 64 bytes (Base 2.0 §6.6) */
struct pnvme_fabrics_prop_set {
	uint8_t  opc;         /* PNVME_OPC_FABRICS */
	uint8_t  flags;
	uint16_t cid;
	uint8_t  fctype;      /* PNVME_FCTYPE_PROPERTY_SET */
	uint8_t  rsvd5[35];
	uint8_t  attrib;      /* PNVME_PROP_SIZE_* */
	uint8_t  rsvd41[3];
	uint32_t ofst;        /* property offset: enum pnvme_reg */
	uint64_t value;
	uint8_t  rsvd56[8];
};

/* Property Get command SQE, 64 bytes (Base 2.0 §6.5); the value returns in CQE dwords 0-1 */
struct pnvme_fabrics_prop_get {
	uint8_t  opc;         /* PNVME_OPC_FABRICS */
	uint8_t  flags;
	uint16_t cid;
	uint8_t  fctype;      /* PNVME_FCTYPE_PROPERTY_GET */
	uint8_t  rsvd5[35];
	uint8_t  attrib;      /* PNVME_PROP_SIZE_* */
	uint8_t  rsvd41[3];
	uint32_t ofst;        /* property offset: enum pnvme_reg */
	uint8_t  rsvd48[16];
};

/* ------------------------------------------------------------------------ */
/* Discovery Log Page (Base 2.0 §5.16.1.23, LID 70h)                         */
/* ------------------------------------------------------------------------ */

#define PNVME_LOG_DISCOVERY 0x70u

/* Header: 1024 bytes, then NUMREC entries of 1024 bytes */
struct pnvme_disc_log_hdr {
	uint64_t genctr;      /* Generation Counter: moves when the log changes */
	uint64_t numrec;      /* Number of Records */
	uint16_t recfmt;      /* Record Format: 0 */
	uint8_t  rsvd18[1006];
};

/* Transport types (TRTYPE), address families (ADRFAM), subsystem types (SUBTYPE) */
#define PNVME_TRTYPE_RDMA 1u
#define PNVME_TRTYPE_FC   2u
#define PNVME_TRTYPE_TCP  3u
#define PNVME_TRTYPE_LOOP 254u
#define PNVME_ADRFAM_IPV4 1u
#define PNVME_ADRFAM_IPV6 2u
#define PNVME_SUBTYPE_DISCOVERY_REFERRAL 1u
#define PNVME_SUBTYPE_NVME               2u
#define PNVME_SUBTYPE_DISCOVERY_CURRENT  3u

/* Discovery Log Page Entry, 1024 bytes (Base 2.0 Figure 262) */
struct pnvme_disc_log_entry {
	uint8_t  trtype;
	uint8_t  adrfam;
	uint8_t  subtype;
	uint8_t  treq;        /* Transport Requirements (secure channel, SQ flow control) */
	uint16_t portid;
	uint16_t cntlid;
	uint16_t asqsz;       /* Admin Max SQ Size */
	uint16_t eflags;
	uint8_t  rsvd12[20];
	char     trsvcid[32]; /* Transport Service Identifier (port), space padded */
	uint8_t  rsvd64[192];
	char     subnqn[256];
	char     traddr[256]; /* Transport Address, space padded */
	uint8_t  tsas[256];   /* Transport Specific Address Subtype (TCP: SECTYPE byte 0) */
};

/* ------------------------------------------------------------------------ */
/* Compile-time layout checks                                                */
/* ------------------------------------------------------------------------ */

PNVME_STATIC_ASSERT(sizeof(struct pnvme_tcp_ch) == 8, "common header is 8 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_ch, flags) == 1, "CH FLAGS at byte 1");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_ch, hlen) == 2, "CH HLEN at byte 2");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_ch, pdo) == 3, "CH PDO at byte 3");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_ch, plen) == 4, "CH PLEN at byte 4");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_tcp_icreq) == PNVME_TCP_ICREQ_HLEN, "ICReq is 128 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_icreq, pfv) == 8, "ICReq PFV at byte 8");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_icreq, hpda) == 10, "ICReq HPDA at byte 10");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_icreq, dgst) == 11, "ICReq DGST at byte 11");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_icreq, maxr2t) == 12, "ICReq MAXR2T at byte 12");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_tcp_icresp) == PNVME_TCP_ICRESP_HLEN,
		    "ICResp is 128 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_icresp, cpda) == 10, "ICResp CPDA at byte 10");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_icresp, dgst) == 11, "ICResp DGST at byte 11");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_icresp, maxh2cdata) == 12,
		    "ICResp MAXH2CDATA at byte 12");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_tcp_term_req) == PNVME_TCP_TERM_REQ_HLEN,
		    "TermReq header is 24 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_term_req, fes) == 8, "TermReq FES at byte 8");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_term_req, fei) == 10, "TermReq FEI at byte 10");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_tcp_capsule_cmd) == PNVME_TCP_CMD_HLEN,
		    "CapsuleCmd header is 72 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_capsule_cmd, sqe) == 8, "CapsuleCmd SQE at byte 8");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_tcp_capsule_resp) == PNVME_TCP_RESP_HLEN,
		    "CapsuleResp is 24 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_capsule_resp, cqe) == 8, "CapsuleResp CQE at byte 8");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_tcp_h2c_data) == PNVME_TCP_DATA_HLEN,
		    "H2CData header is 24 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_h2c_data, cccid) == 8, "H2CData CCCID at byte 8");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_h2c_data, ttag) == 10, "H2CData TTAG at byte 10");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_h2c_data, datao) == 12, "H2CData DATAO at byte 12");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_h2c_data, datal) == 16, "H2CData DATAL at byte 16");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_tcp_c2h_data) == PNVME_TCP_DATA_HLEN,
		    "C2HData header is 24 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_c2h_data, cccid) == 8, "C2HData CCCID at byte 8");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_c2h_data, datao) == 12, "C2HData DATAO at byte 12");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_c2h_data, datal) == 16, "C2HData DATAL at byte 16");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_tcp_r2t) == PNVME_TCP_R2T_HLEN, "R2T is 24 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_r2t, cccid) == 8, "R2T CCCID at byte 8");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_r2t, ttag) == 10, "R2T TTAG at byte 10");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_r2t, r2to) == 12, "R2T R2TO at byte 12");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_tcp_r2t, r2tl) == 16, "R2T R2TL at byte 16");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_sgl_desc) == 16, "SGL descriptor is 16 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_sgl_desc, length) == 8, "SGL length at byte 8");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_sgl_desc, id) == 15, "SGL identifier at byte 15");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_fabrics_connect) == 64, "Connect SQE is 64 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_fabrics_connect, fctype) == 4,
		    "Connect FCTYPE at byte 4");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_fabrics_connect, sgl1) == 24, "Connect SGL1 at byte 24");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_fabrics_connect, recfmt) == 40,
		    "Connect RECFMT at byte 40");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_fabrics_connect, qid) == 42, "Connect QID at byte 42");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_fabrics_connect, sqsize) == 44,
		    "Connect SQSIZE at byte 44");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_fabrics_connect, cattr) == 46,
		    "Connect CATTR at byte 46");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_fabrics_connect, kato) == 48, "Connect KATO at byte 48");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_fabrics_connect_data) == 1024, "Connect data is 1 KiB");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_fabrics_connect_data, cntlid) == 16,
		    "Connect data CNTLID");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_fabrics_connect_data, subnqn) == 256,
		    "Connect data SUBNQN");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_fabrics_connect_data, hostnqn) == 512,
		    "Connect data HOSTNQN");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_fabrics_prop_set) == 64, "Property Set SQE is 64 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_fabrics_prop_set, attrib) == 40, "Property Set ATTRIB");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_fabrics_prop_set, ofst) == 44, "Property Set OFST");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_fabrics_prop_set, value) == 48, "Property Set VALUE");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_fabrics_prop_get) == 64, "Property Get SQE is 64 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_fabrics_prop_get, attrib) == 40, "Property Get ATTRIB");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_fabrics_prop_get, ofst) == 44, "Property Get OFST");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_fabrics_connect) == sizeof(struct pnvme_sqe) &&
		    sizeof(struct pnvme_fabrics_prop_get) == sizeof(struct pnvme_sqe),
		    "fabrics commands are SQEs");

PNVME_STATIC_ASSERT(sizeof(struct pnvme_disc_log_hdr) == 1024, "Discovery log header is 1 KiB");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_disc_log_entry) == 1024, "Discovery log entry is 1 KiB");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_disc_log_entry, trsvcid) == 32, "entry TRSVCID");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_disc_log_entry, subnqn) == 256, "entry SUBNQN");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_disc_log_entry, traddr) == 512, "entry TRADDR");

#endif /* PNVME_TCP_SPEC_H */
