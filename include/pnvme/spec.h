/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme/spec.h - NVMe definitions: controller registers, queue entries,
 * admin and NVM command set opcodes, identify data, log pages, status codes.
 *
 * Follows the NVM Express Base Specification, Revision 2.0c ("Base 2.0"),
 * and the NVM Command Set Specification, Revision 1.0c ("NVM 1.0").
 * Every multi-byte field is little-endian on the wire; pnvme supports
 * little-endian hosts only (checked below).
 *
 * Style: register offsets are one enum; fields are SHIFT/MASK pairs with small
 * GET/SET macros (no C bitfields); reserved bytes are named by their offset;
 * every size and offset is checked at compile time.
 */
#ifndef PNVME_SPEC_H
#define PNVME_SPEC_H

#include <stddef.h>
#include <stdint.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pnvme supports little-endian hosts only"
#endif

/* Compile-time checks that read the same in C11 and C++11. */
#ifdef __cplusplus
#define PNVME_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define PNVME_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#define PNVME_GET(v, name)   (((v) >> name##_SHIFT) & name##_MASK)
#define PNVME_SET(name, x)   (((x) & name##_MASK) << name##_SHIFT)

/* ------------------------------------------------------------------------ */
/* Controller registers (Base 2.0 §3.1.4, Figure 35: Controller Properties)  */
/* ------------------------------------------------------------------------ */

enum pnvme_reg {
	PNVME_REG_CAP     = 0x00, /* Controller Capabilities (64-bit) */
	PNVME_REG_VS      = 0x08, /* Version */
	PNVME_REG_INTMS   = 0x0c, /* Interrupt Mask Set */
	PNVME_REG_INTMC   = 0x10, /* Interrupt Mask Clear */
	PNVME_REG_CC      = 0x14, /* Controller Configuration */
	PNVME_REG_CSTS    = 0x1c, /* Controller Status */
	PNVME_REG_NSSR    = 0x20, /* NVM Subsystem Reset */
	PNVME_REG_AQA     = 0x24, /* Admin Queue Attributes */
	PNVME_REG_ASQ     = 0x28, /* Admin Submission Queue Base Address (64-bit) */
	PNVME_REG_ACQ     = 0x30, /* Admin Completion Queue Base Address (64-bit) */
	PNVME_REG_CMBLOC  = 0x38, /* Controller Memory Buffer Location */
	PNVME_REG_CMBSZ   = 0x3c, /* Controller Memory Buffer Size */
	PNVME_REG_BPINFO  = 0x40, /* Boot Partition Information */
	PNVME_REG_BPRSEL  = 0x44, /* Boot Partition Read Select */
	PNVME_REG_BPMBL   = 0x48, /* Boot Partition Memory Buffer Location (64-bit) */
	PNVME_REG_CMBMSC  = 0x50, /* CMB Memory Space Control (64-bit) */
	PNVME_REG_CMBSTS  = 0x58, /* CMB Status */
	PNVME_REG_PMRCAP  = 0xe00, /* Persistent Memory Capabilities */
	PNVME_REG_DBS     = 0x1000, /* first doorbell: SQ 0 Tail Doorbell */
};

/* CAP (Base 2.0 §3.1.4.1) */
#define PNVME_CAP_MQES_SHIFT    0   /* Maximum Queue Entries Supported, 0's based */
#define PNVME_CAP_MQES_MASK     0xffffull
#define PNVME_CAP_CQR_SHIFT     16  /* Contiguous Queues Required */
#define PNVME_CAP_CQR_MASK      0x1ull
#define PNVME_CAP_AMS_SHIFT     17  /* Arbitration Mechanism Supported */
#define PNVME_CAP_AMS_MASK      0x3ull
#define PNVME_CAP_TO_SHIFT      24  /* Timeout, in 500 ms units */
#define PNVME_CAP_TO_MASK       0xffull
#define PNVME_CAP_DSTRD_SHIFT   32  /* Doorbell Stride: 2 ^ (2 + DSTRD) bytes */
#define PNVME_CAP_DSTRD_MASK    0xfull
#define PNVME_CAP_NSSRS_SHIFT   36  /* NVM Subsystem Reset Supported */
#define PNVME_CAP_NSSRS_MASK    0x1ull
#define PNVME_CAP_CSS_SHIFT     37  /* Command Sets Supported */
#define PNVME_CAP_CSS_MASK      0xffull
#define PNVME_CAP_BPS_SHIFT     45  /* Boot Partition Support */
#define PNVME_CAP_BPS_MASK      0x1ull
#define PNVME_CAP_MPSMIN_SHIFT  48  /* Memory Page Size Minimum: 2 ^ (12 + MPSMIN) */
#define PNVME_CAP_MPSMIN_MASK   0xfull
#define PNVME_CAP_MPSMAX_SHIFT  52  /* Memory Page Size Maximum */
#define PNVME_CAP_MPSMAX_MASK   0xfull
#define PNVME_CAP_PMRS_SHIFT    56  /* Persistent Memory Region Supported */
#define PNVME_CAP_PMRS_MASK     0x1ull
#define PNVME_CAP_CMBS_SHIFT    57  /* Controller Memory Buffer Supported */
#define PNVME_CAP_CMBS_MASK     0x1ull
#define PNVME_CAP_CSS_NVM       (1u << 0) /* NVM command set */
#define PNVME_CAP_CSS_IOCS      (1u << 6) /* I/O command sets */
#define PNVME_CAP_CSS_NOIO      (1u << 7) /* admin only */

/* VS (Base 2.0 §3.1.4.2) */
#define PNVME_VS(mjr, mnr, ter) (((uint32_t)(mjr) << 16) | ((uint32_t)(mnr) << 8) | (uint32_t)(ter))
#define PNVME_VS_MJR(vs)        (((vs) >> 16) & 0xffff)
#define PNVME_VS_MNR(vs)        (((vs) >> 8) & 0xff)
#define PNVME_VS_TER(vs)        ((vs) & 0xff)

/* CC (Base 2.0 §3.1.4.5) */
#define PNVME_CC_EN_SHIFT       0   /* Enable */
#define PNVME_CC_EN_MASK        0x1u
#define PNVME_CC_CSS_SHIFT      4   /* I/O Command Set Selected */
#define PNVME_CC_CSS_MASK       0x7u
#define PNVME_CC_MPS_SHIFT      7   /* Memory Page Size: 2 ^ (12 + MPS) */
#define PNVME_CC_MPS_MASK       0xfu
#define PNVME_CC_AMS_SHIFT      11  /* Arbitration Mechanism Selected */
#define PNVME_CC_AMS_MASK       0x7u
#define PNVME_CC_SHN_SHIFT      14  /* Shutdown Notification */
#define PNVME_CC_SHN_MASK       0x3u
#define PNVME_CC_IOSQES_SHIFT   16  /* I/O SQ Entry Size: 2 ^ n */
#define PNVME_CC_IOSQES_MASK    0xfu
#define PNVME_CC_IOCQES_SHIFT   20  /* I/O CQ Entry Size: 2 ^ n */
#define PNVME_CC_IOCQES_MASK    0xfu
#define PNVME_CC_CRIME_SHIFT    24  /* Controller Ready Independent of Media Enable */
#define PNVME_CC_CRIME_MASK     0x1u
#define PNVME_CC_CSS_NVM        0u
#define PNVME_CC_CSS_ADMIN_ONLY 7u
#define PNVME_CC_AMS_RR         0u  /* round robin */
#define PNVME_CC_SHN_NONE       0u
#define PNVME_CC_SHN_NORMAL     1u
#define PNVME_CC_SHN_ABRUPT     2u

/* CSTS (Base 2.0 §3.1.4.6) */
#define PNVME_CSTS_RDY_SHIFT    0   /* Ready */
#define PNVME_CSTS_RDY_MASK     0x1u
#define PNVME_CSTS_CFS_SHIFT    1   /* Controller Fatal Status */
#define PNVME_CSTS_CFS_MASK     0x1u
#define PNVME_CSTS_SHST_SHIFT   2   /* Shutdown Status */
#define PNVME_CSTS_SHST_MASK    0x3u
#define PNVME_CSTS_NSSRO_SHIFT  4   /* NVM Subsystem Reset Occurred */
#define PNVME_CSTS_NSSRO_MASK   0x1u
#define PNVME_CSTS_PP_SHIFT     5   /* Processing Paused */
#define PNVME_CSTS_PP_MASK      0x1u
#define PNVME_CSTS_SHST_NORMAL   0u
#define PNVME_CSTS_SHST_OCCURING 1u
#define PNVME_CSTS_SHST_COMPLETE 2u

/* AQA (Base 2.0 §3.1.4.8): both sizes 0's based */
#define PNVME_AQA_ASQS_SHIFT    0
#define PNVME_AQA_ASQS_MASK     0xfffu
#define PNVME_AQA_ACQS_SHIFT    16
#define PNVME_AQA_ACQS_MASK     0xfffu

/* CMBLOC / CMBSZ (Base 2.0 §3.1.4.11, §3.1.4.12): both read 0 until CMBMSC.CRE = 1 */
#define PNVME_CMBLOC_BIR_SHIFT  0   /* Base Indicator Register: the BAR holding the CMB */
#define PNVME_CMBLOC_BIR_MASK   0x7u
#define PNVME_CMBLOC_CQMMS_SHIFT 3  /* CMB Queue Mixed Memory Support */
#define PNVME_CMBLOC_CQMMS_MASK 0x1u
#define PNVME_CMBLOC_CQPDS_SHIFT 4  /* CMB Queue Physically Discontiguous Support */
#define PNVME_CMBLOC_CQPDS_MASK 0x1u
#define PNVME_CMBLOC_CDPMLS_SHIFT 5 /* CMB Data Pointer Mixed Locations Support */
#define PNVME_CMBLOC_CDPMLS_MASK 0x1u
#define PNVME_CMBLOC_CDPCILS_SHIFT 6 /* CMB Data Pointer and Command Independent Locations */
#define PNVME_CMBLOC_CDPCILS_MASK 0x1u
#define PNVME_CMBLOC_CDMMMS_SHIFT 7 /* CMB Data Metadata Mixed Memory Support */
#define PNVME_CMBLOC_CDMMMS_MASK 0x1u
#define PNVME_CMBLOC_CQDA_SHIFT 8   /* CMB Queue Dword Alignment */
#define PNVME_CMBLOC_CQDA_MASK  0x1u
#define PNVME_CMBLOC_OFST_SHIFT 12
#define PNVME_CMBLOC_OFST_MASK  0xfffffu
#define PNVME_CMBSZ_SQS_SHIFT   0
#define PNVME_CMBSZ_SQS_MASK    0x1u
#define PNVME_CMBSZ_CQS_SHIFT   1
#define PNVME_CMBSZ_CQS_MASK    0x1u
#define PNVME_CMBSZ_LISTS_SHIFT 2
#define PNVME_CMBSZ_LISTS_MASK  0x1u
#define PNVME_CMBSZ_RDS_SHIFT   3
#define PNVME_CMBSZ_RDS_MASK    0x1u
#define PNVME_CMBSZ_WDS_SHIFT   4
#define PNVME_CMBSZ_WDS_MASK    0x1u
#define PNVME_CMBSZ_SZU_SHIFT   8   /* Size Units: 4 KiB * 16 ^ SZU */
#define PNVME_CMBSZ_SZU_MASK    0xfu
#define PNVME_CMBSZ_SZ_SHIFT    12
#define PNVME_CMBSZ_SZ_MASK     0xfffffu

/*
 * CMBMSC (Base 2.0 §3.1.4.13, 64-bit): CRE enables CMBLOC/CMBSZ, CMSE the
 * controller memory space at CBA (4 KiB aligned). QEMU acts on the write of
 * the low dword, so a host writes the high dword first.
 */
#define PNVME_CMBMSC_CRE        (1ull << 0)  /* Capabilities Registers Enabled */
#define PNVME_CMBMSC_CMSE       (1ull << 1)  /* Controller Memory Space Enable */
#define PNVME_CMBMSC_CBA_MASK   (~0xfffull)  /* Controller Base Address, bits 63:12 */
/* CMBSTS (Base 2.0 §3.1.4.14) */
#define PNVME_CMBSTS_CBAI       (1u << 0)    /* Controller Base Address Invalid */
/* CMB size in bytes from CMBSZ: SZ units of 4 KiB * 16 ^ SZU (0 if SZU is reserved) */
#define PNVME_CMBSZ_BYTES(cmbsz) \
	(PNVME_GET((cmbsz), PNVME_CMBSZ_SZU) > 6u ? 0ull : \
	 (uint64_t)PNVME_GET((cmbsz), PNVME_CMBSZ_SZ) << (12u + 4u * PNVME_GET((cmbsz), PNVME_CMBSZ_SZU)))

/*
 * Doorbells (Base 2.0 §3.1.4.22/23): SQ y Tail Doorbell at
 * 1000h + (2y) * (4 << CAP.DSTRD), CQ y Head Doorbell at
 * 1000h + (2y + 1) * (4 << CAP.DSTRD).
 */
#define PNVME_SQ_TDBL(qid, dstrd) \
	((size_t)PNVME_REG_DBS + (size_t)(2u * (unsigned)(qid)) * ((size_t)4 << (dstrd)))
#define PNVME_CQ_HDBL(qid, dstrd) \
	((size_t)PNVME_REG_DBS + (size_t)(2u * (unsigned)(qid) + 1u) * ((size_t)4 << (dstrd)))

/* ------------------------------------------------------------------------ */
/* Queue entries                                                            */
/* ------------------------------------------------------------------------ */

/* Submission Queue Entry, 64 bytes (Base 2.0 §4.1, Figure 86: Common Command Format) */
struct pnvme_sqe {
	uint8_t  opc;    /* Opcode */
	uint8_t  flags;  /* FUSE (1:0), PSDT (7:6) */
	uint16_t cid;    /* Command Identifier */
	uint32_t nsid;   /* Namespace Identifier */
	uint32_t cdw2;
	uint32_t cdw3;
	uint64_t mptr;   /* Metadata Pointer */
	uint64_t prp1;   /* Data Pointer: PRP Entry 1 */
	uint64_t prp2;   /* Data Pointer: PRP Entry 2 or PRP List pointer */
	uint32_t cdw10;
	uint32_t cdw11;
	uint32_t cdw12;
	uint32_t cdw13;
	uint32_t cdw14;
	uint32_t cdw15;
};

#define PNVME_SQE_FUSE_SHIFT 0
#define PNVME_SQE_FUSE_MASK  0x3u
#define PNVME_SQE_PSDT_SHIFT 6  /* 0 = PRPs; 1 = SGLs, MPTR a contiguous buffer */
#define PNVME_SQE_PSDT_MASK  0x3u

/* Completion Queue Entry, 16 bytes (Base 2.0 §4.2.1, Figure 89) */
struct pnvme_cqe {
	uint32_t dw0;    /* command specific */
	uint32_t dw1;    /* command specific */
	uint16_t sqhd;   /* SQ Head Pointer */
	uint16_t sqid;   /* SQ Identifier */
	uint16_t cid;    /* Command Identifier */
	uint16_t status; /* Phase Tag (bit 0) and Status Field (15:1) */
};

/*
 * Status field as it sits in the upper 15 bits of CQE dword 3 (Base 2.0
 * §4.2.3, Figure 92). The macros take the 16-bit `status` member including
 * the phase bit.
 */
#define PNVME_CQE_P_SHIFT    0   /* Phase Tag */
#define PNVME_CQE_P_MASK     0x1u
#define PNVME_CQE_SC_SHIFT   1   /* Status Code */
#define PNVME_CQE_SC_MASK    0xffu
#define PNVME_CQE_SCT_SHIFT  9   /* Status Code Type */
#define PNVME_CQE_SCT_MASK   0x7u
#define PNVME_CQE_CRD_SHIFT  12  /* Command Retry Delay */
#define PNVME_CQE_CRD_MASK   0x3u
#define PNVME_CQE_M_SHIFT    14  /* More */
#define PNVME_CQE_M_MASK     0x1u
#define PNVME_CQE_DNR_SHIFT  15  /* Do Not Retry */
#define PNVME_CQE_DNR_MASK   0x1u

/* Status without the phase bit: (SCT << 8) | SC, plus DNR/M/CRD above. */
#define PNVME_STATUS(sct, sc) ((uint16_t)(((unsigned)(sct) << 8) | (unsigned)(sc)))
#define PNVME_STATUS_DNR      0x4000u
#define PNVME_STATUS_MORE     0x2000u
/* The status field of a CQE as (DNR|M|CRD|SCT|SC), i.e. status >> 1. */
#define PNVME_CQE_STATUS(cqe) ((uint16_t)((cqe)->status >> 1))
#define PNVME_STATUS_SCT(s)   (((s) >> 8) & 0x7u)
#define PNVME_STATUS_SC(s)    ((s) & 0xffu)
#define PNVME_STATUS_IS_DNR(s) (((s) & PNVME_STATUS_DNR) != 0)
/* Status code type and code only (no DNR / More / CRD). */
#define PNVME_STATUS_CODE(s)  ((uint16_t)((s) & 0x7ffu))

/* Status Code Types (Base 2.0 §4.2.3.1) */
enum pnvme_sct {
	PNVME_SCT_GENERIC   = 0x0,
	PNVME_SCT_CMD       = 0x1, /* command specific */
	PNVME_SCT_MEDIA     = 0x2, /* media and data integrity errors */
	PNVME_SCT_PATH      = 0x3, /* path related */
	PNVME_SCT_VENDOR    = 0x7,
};

/* Generic Command Status (Base 2.0 §4.2.3.2, Figure 94; NVM 1.0 §4.1.1.1) */
enum pnvme_sc_generic {
	PNVME_SC_SUCCESS                 = 0x00,
	PNVME_SC_INVALID_OPCODE          = 0x01,
	PNVME_SC_INVALID_FIELD           = 0x02,
	PNVME_SC_CID_CONFLICT            = 0x03,
	PNVME_SC_DATA_XFER_ERROR         = 0x04,
	PNVME_SC_POWER_LOSS              = 0x05,
	PNVME_SC_INTERNAL                = 0x06,
	PNVME_SC_ABORT_REQ               = 0x07,
	PNVME_SC_ABORT_SQ_DELETED        = 0x08,
	PNVME_SC_FUSED_FAIL              = 0x09,
	PNVME_SC_FUSED_MISSING           = 0x0a,
	PNVME_SC_INVALID_NS              = 0x0b,
	PNVME_SC_CMD_SEQ_ERROR           = 0x0c,
	PNVME_SC_SGL_INVALID_LAST        = 0x0d,
	PNVME_SC_SGL_INVALID_COUNT       = 0x0e,
	PNVME_SC_SGL_INVALID_DATA        = 0x0f,
	PNVME_SC_SGL_INVALID_METADATA    = 0x10,
	PNVME_SC_SGL_INVALID_TYPE        = 0x11,
	PNVME_SC_CMB_INVALID_USE         = 0x12,
	PNVME_SC_PRP_INVALID_OFFSET      = 0x13,
	PNVME_SC_ATOMIC_WU_EXCEEDED      = 0x14,
	PNVME_SC_OP_DENIED               = 0x15,
	PNVME_SC_SGL_INVALID_OFFSET      = 0x16,
	PNVME_SC_HOSTID_FORMAT           = 0x18,
	PNVME_SC_KA_EXPIRED              = 0x19,
	PNVME_SC_KA_INVALID              = 0x1a,
	PNVME_SC_ABORT_PREEMPT           = 0x1b,
	PNVME_SC_SANITIZE_FAILED         = 0x1c,
	PNVME_SC_SANITIZE_IN_PROGRESS    = 0x1d,
	PNVME_SC_SGL_INVALID_GRANULARITY = 0x1e,
	PNVME_SC_CMD_NOT_SUP_CMB_QUEUE   = 0x1f,
	PNVME_SC_NS_WRITE_PROTECTED      = 0x20,
	PNVME_SC_CMD_INTERRUPTED         = 0x21,
	PNVME_SC_TRANSIENT_TR_ERR        = 0x22,
	PNVME_SC_PROHIBITED_LOCKDOWN     = 0x23,
	PNVME_SC_ADMIN_MEDIA_NOT_READY   = 0x24,
	PNVME_SC_LBA_RANGE               = 0x80,
	PNVME_SC_CAP_EXCEEDED            = 0x81,
	PNVME_SC_NS_NOT_READY            = 0x82,
	PNVME_SC_RESERVATION_CONFLICT    = 0x83,
	PNVME_SC_FORMAT_IN_PROGRESS      = 0x84,
};

/* Command Specific Status (Base 2.0 §4.2.3.3, Figure 95; NVM 1.0 §4.1.1.2) */
enum pnvme_sc_cmd {
	PNVME_SC_CQ_INVALID              = 0x00,
	PNVME_SC_QID_INVALID             = 0x01,
	PNVME_SC_QUEUE_SIZE              = 0x02,
	PNVME_SC_ABORT_LIMIT             = 0x03,
	PNVME_SC_AER_LIMIT               = 0x05,
	PNVME_SC_FW_SLOT_INVALID         = 0x06,
	PNVME_SC_FW_IMAGE_INVALID        = 0x07,
	PNVME_SC_IV_INVALID              = 0x08,
	PNVME_SC_LOG_PAGE_INVALID        = 0x09,
	PNVME_SC_FORMAT_INVALID          = 0x0a,
	PNVME_SC_FW_NEEDS_CONV_RESET     = 0x0b,
	PNVME_SC_QUEUE_DELETION_INVALID  = 0x0c,
	PNVME_SC_FEATURE_NOT_SAVEABLE    = 0x0d,
	PNVME_SC_FEATURE_NOT_CHANGEABLE  = 0x0e,
	PNVME_SC_FEATURE_NOT_NS_SPECIFIC = 0x0f,
	PNVME_SC_FW_NEEDS_NSSR           = 0x10,
	PNVME_SC_FW_NEEDS_RESET          = 0x11,
	PNVME_SC_FW_NEEDS_MAX_TIME       = 0x12,
	PNVME_SC_FW_ACTIVATE_PROHIBITED  = 0x13,
	PNVME_SC_OVERLAPPING_RANGE       = 0x14,
	PNVME_SC_NS_INSUFFICIENT_CAP     = 0x15,
	PNVME_SC_NS_ID_UNAVAILABLE       = 0x16,
	PNVME_SC_NS_ALREADY_ATTACHED     = 0x18,
	PNVME_SC_NS_IS_PRIVATE           = 0x19,
	PNVME_SC_NS_NOT_ATTACHED         = 0x1a,
	PNVME_SC_THIN_PROV_NOT_SUP       = 0x1b,
	PNVME_SC_CTRL_LIST_INVALID       = 0x1c,
	PNVME_SC_SELF_TEST_IN_PROGRESS   = 0x1d,
	PNVME_SC_BP_WRITE_PROHIBITED     = 0x1e,
	PNVME_SC_CTRL_ID_INVALID         = 0x1f,
	PNVME_SC_SEC_CTRL_STATE_INVALID  = 0x20,
	PNVME_SC_CTRL_RES_NUM_INVALID    = 0x21,
	PNVME_SC_RES_ID_INVALID          = 0x22,
	PNVME_SC_PMR_SAN_PROHIBITED      = 0x23,
	PNVME_SC_ANA_GROUP_ID_INVALID    = 0x24,
	PNVME_SC_ANA_ATTACH_FAILED       = 0x25,
	PNVME_SC_CONFLICTING_ATTRS       = 0x80,
	PNVME_SC_INVALID_PI              = 0x81,
	PNVME_SC_READ_ONLY               = 0x82,
};

/* Media and Data Integrity Errors (Base 2.0 §4.2.3.4; NVM 1.0 §4.1.1.3) */
enum pnvme_sc_media {
	PNVME_SC_WRITE_FAULT             = 0x80,
	PNVME_SC_READ_ERROR              = 0x81,
	PNVME_SC_GUARD_CHECK             = 0x82,
	PNVME_SC_APPTAG_CHECK            = 0x83,
	PNVME_SC_REFTAG_CHECK            = 0x84,
	PNVME_SC_COMPARE_FAILED          = 0x85,
	PNVME_SC_ACCESS_DENIED           = 0x86,
	PNVME_SC_UNWRITTEN_BLOCK         = 0x87,
};

/* Path Related Status (Base 2.0 §4.2.3.5) */
enum pnvme_sc_path {
	PNVME_SC_INTERNAL_PATH_ERROR     = 0x00,
	PNVME_SC_ANA_PERSISTENT_LOSS     = 0x01,
	PNVME_SC_ANA_INACCESSIBLE        = 0x02,
	PNVME_SC_ANA_TRANSITION          = 0x03,
	PNVME_SC_CTRL_PATH_ERROR         = 0x60,
	PNVME_SC_HOST_PATH_ERROR         = 0x70,
	PNVME_SC_HOST_ABORTED_CMD        = 0x71, /* used by pnvme for host-side completions */
};

/* ------------------------------------------------------------------------ */
/* Opcodes                                                                  */
/* ------------------------------------------------------------------------ */

/* Admin Command Set (Base 2.0 §5, Figure 138) */
enum pnvme_admin_opc {
	PNVME_ADM_DELETE_SQ        = 0x00,
	PNVME_ADM_CREATE_SQ        = 0x01,
	PNVME_ADM_GET_LOG_PAGE     = 0x02,
	PNVME_ADM_DELETE_CQ        = 0x04,
	PNVME_ADM_CREATE_CQ        = 0x05,
	PNVME_ADM_IDENTIFY         = 0x06,
	PNVME_ADM_ABORT            = 0x08,
	PNVME_ADM_SET_FEATURES     = 0x09,
	PNVME_ADM_GET_FEATURES     = 0x0a,
	PNVME_ADM_ASYNC_EVENT      = 0x0c,
	PNVME_ADM_NS_MGMT          = 0x0d,
	PNVME_ADM_FW_COMMIT        = 0x10,
	PNVME_ADM_FW_DOWNLOAD      = 0x11,
	PNVME_ADM_DEV_SELF_TEST    = 0x14,
	PNVME_ADM_NS_ATTACH        = 0x15,
	PNVME_ADM_KEEP_ALIVE       = 0x18,
	PNVME_ADM_DIRECTIVE_SEND   = 0x19,
	PNVME_ADM_DIRECTIVE_RECV   = 0x1a,
	PNVME_ADM_VIRT_MGMT        = 0x1c,
	PNVME_ADM_NVME_MI_SEND     = 0x1d,
	PNVME_ADM_NVME_MI_RECV     = 0x1e,
	PNVME_ADM_DBBUF_CONFIG     = 0x7c,
	PNVME_ADM_FABRICS          = 0x7f,
	PNVME_ADM_FORMAT_NVM       = 0x80,
	PNVME_ADM_SECURITY_SEND    = 0x81,
	PNVME_ADM_SECURITY_RECV    = 0x82,
	PNVME_ADM_SANITIZE         = 0x84,
	PNVME_ADM_GET_LBA_STATUS   = 0x86,
};

/* NVM Command Set I/O commands (NVM 1.0 §3, Figure 18) */
enum pnvme_nvm_opc {
	PNVME_NVM_FLUSH            = 0x00,
	PNVME_NVM_WRITE            = 0x01,
	PNVME_NVM_READ             = 0x02,
	PNVME_NVM_WRITE_UNCOR      = 0x04,
	PNVME_NVM_COMPARE          = 0x05,
	PNVME_NVM_WRITE_ZEROES     = 0x08,
	PNVME_NVM_DSM              = 0x09,
	PNVME_NVM_VERIFY           = 0x0c,
	PNVME_NVM_RESV_REGISTER    = 0x0d,
	PNVME_NVM_RESV_REPORT      = 0x0e,
	PNVME_NVM_RESV_ACQUIRE     = 0x11,
	PNVME_NVM_RESV_RELEASE     = 0x15,
	PNVME_NVM_COPY             = 0x19,
};

/* ------------------------------------------------------------------------ */
/* Command dwords                                                           */
/* ------------------------------------------------------------------------ */

/* Create I/O Completion Queue (Base 2.0 §5.4): CDW10 QSIZE|QID, CDW11 IV|IEN|PC */
#define PNVME_CREATE_Q_QID_SHIFT    0
#define PNVME_CREATE_Q_QID_MASK     0xffffu
#define PNVME_CREATE_Q_QSIZE_SHIFT  16  /* 0's based */
#define PNVME_CREATE_Q_QSIZE_MASK   0xffffu
#define PNVME_CREATE_CQ_PC          (1u << 0)  /* physically contiguous */
#define PNVME_CREATE_CQ_IEN         (1u << 1)  /* interrupts enabled */
#define PNVME_CREATE_CQ_IV_SHIFT    16
#define PNVME_CREATE_CQ_IV_MASK     0xffffu
/* Create I/O Submission Queue (Base 2.0 §5.5): CDW11 CQID|QPRIO|PC */
#define PNVME_CREATE_SQ_PC          (1u << 0)
#define PNVME_CREATE_SQ_QPRIO_SHIFT 1
#define PNVME_CREATE_SQ_QPRIO_MASK  0x3u
#define PNVME_CREATE_SQ_CQID_SHIFT  16
#define PNVME_CREATE_SQ_CQID_MASK   0xffffu

/* Abort (Base 2.0 §5.1): CDW10 CID (31:16) | SQID (15:0); DW0 bit 0 = 1: not aborted */
#define PNVME_ABORT_SQID_SHIFT      0
#define PNVME_ABORT_SQID_MASK       0xffffu
#define PNVME_ABORT_CID_SHIFT       16
#define PNVME_ABORT_CID_MASK        0xffffu
#define PNVME_ABORT_NOT_ABORTED     (1u << 0)

/* Broadcast NSID: every namespace, or the controller (Base 2.0 §3.2.1.2) */
#define PNVME_NSID_ALL              0xffffffffu

/* Identify (Base 2.0 §5.17): CDW10 CNS (7:0) | CNTID (31:16) */
enum pnvme_identify_cns {
	PNVME_ID_CNS_NS            = 0x00,
	PNVME_ID_CNS_CTRL          = 0x01,
	PNVME_ID_CNS_NS_ACTIVE     = 0x02, /* active namespace ID list */
	PNVME_ID_CNS_NS_DESC_LIST  = 0x03,
};
#define PNVME_IDENTIFY_DATA_SIZE    4096u
#define PNVME_ID_NS_LIST_MAX        1024u /* NSIDs per active namespace list */

/* Get Log Page (Base 2.0 §5.16): NUMD is a 0's based dword count */
#define PNVME_GLP_LID_SHIFT         0
#define PNVME_GLP_LID_MASK          0xffu
#define PNVME_GLP_LSP_SHIFT         8
#define PNVME_GLP_LSP_MASK          0x7fu
#define PNVME_GLP_RAE               (1u << 15)
#define PNVME_GLP_NUMDL_SHIFT       16
#define PNVME_GLP_NUMDL_MASK        0xffffu
#define PNVME_GLP_NUMDU_SHIFT       0   /* CDW11 */
#define PNVME_GLP_NUMDU_MASK        0xffffu

enum pnvme_log_id {
	PNVME_LOG_ERROR            = 0x01,
	PNVME_LOG_SMART            = 0x02,
	PNVME_LOG_FW_SLOT          = 0x03,
	PNVME_LOG_CHANGED_NS       = 0x04,
	PNVME_LOG_CMD_EFFECTS      = 0x05,
	PNVME_LOG_SANITIZE         = 0x81, /* Sanitize Status */
};

/* Get / Set Features (Base 2.0 §5.15, §5.27): CDW10 FID (7:0), SEL (10:8) / SV (31) */
#define PNVME_FEAT_FID_SHIFT        0
#define PNVME_FEAT_FID_MASK         0xffu
#define PNVME_FEAT_SEL_SHIFT        8
#define PNVME_FEAT_SEL_MASK         0x7u
#define PNVME_FEAT_SV               (1u << 31)

enum pnvme_feature_id {
	PNVME_FEAT_ARBITRATION      = 0x01,
	PNVME_FEAT_POWER_MGMT       = 0x02,
	PNVME_FEAT_LBA_RANGE        = 0x03,
	PNVME_FEAT_TEMP_THRESH      = 0x04,
	PNVME_FEAT_ERR_RECOVERY     = 0x05,
	PNVME_FEAT_VOLATILE_WC      = 0x06,
	PNVME_FEAT_NUM_QUEUES       = 0x07,
	PNVME_FEAT_IRQ_COALESCE     = 0x08,
	PNVME_FEAT_IRQ_CONFIG       = 0x09,
	PNVME_FEAT_WRITE_ATOMIC     = 0x0a,
	PNVME_FEAT_ASYNC_EVENT      = 0x0b,
	PNVME_FEAT_AUTO_PST         = 0x0c,
	PNVME_FEAT_HOST_MEM_BUF     = 0x0d,
	PNVME_FEAT_TIMESTAMP        = 0x0e,
	PNVME_FEAT_KATO             = 0x0f,
};

/* Number of Queues (Base 2.0 §5.27.1.5): both counts 0's based, in CDW11 and DW0 */
#define PNVME_NUMQ_NSQ_SHIFT        0
#define PNVME_NUMQ_NSQ_MASK         0xffffu
#define PNVME_NUMQ_NCQ_SHIFT        16
#define PNVME_NUMQ_NCQ_MASK         0xffffu

/*
 * Format NVM (Base 2.0 §5.23; NVM 1.0 §4.1 for the NVM-specific fields):
 * CDW10. The LBA format index is split: bits 3:0 in LBAFL, bits 5:4 in LBAFU
 * (formats 16..63, NVMe 2.0).
 */
#define PNVME_FORMAT_LBAFL_SHIFT    0
#define PNVME_FORMAT_LBAFL_MASK     0xfu
#define PNVME_FORMAT_MSET           (1u << 4)  /* 1: metadata in extended LBAs */
#define PNVME_FORMAT_PI_SHIFT       5          /* protection information type 0..3 */
#define PNVME_FORMAT_PI_MASK        0x7u
#define PNVME_FORMAT_PIL            (1u << 8)  /* PI in the first 8 bytes of the metadata */
#define PNVME_FORMAT_SES_SHIFT      9          /* Secure Erase Settings */
#define PNVME_FORMAT_SES_MASK       0x7u
#define PNVME_FORMAT_LBAFU_SHIFT    12
#define PNVME_FORMAT_LBAFU_MASK     0x3u
#define PNVME_FORMAT_LBAF(i)        (PNVME_SET(PNVME_FORMAT_LBAFL, (unsigned)(i)) | \
				     PNVME_SET(PNVME_FORMAT_LBAFU, (unsigned)(i) >> 4))
enum pnvme_format_ses {
	PNVME_SES_NONE             = 0, /* no secure erase requested */
	PNVME_SES_USER_DATA        = 1, /* user data erase */
	PNVME_SES_CRYPTO           = 2, /* cryptographic erase (FNA.CRYES) */
};

/* Sanitize (Base 2.0 §5.24): CDW10; CDW11 is the overwrite pattern (OVRPAT) */
#define PNVME_SANITIZE_SANACT_SHIFT 0
#define PNVME_SANITIZE_SANACT_MASK  0x7u
#define PNVME_SANITIZE_AUSE         (1u << 3)  /* Allow Unrestricted Sanitize Exit */
#define PNVME_SANITIZE_OWPASS_SHIFT 4          /* overwrite passes (0 means 16) */
#define PNVME_SANITIZE_OWPASS_MASK  0xfu
#define PNVME_SANITIZE_OIPBP        (1u << 8)  /* invert the pattern between passes */
#define PNVME_SANITIZE_NDAS         (1u << 9)  /* No-Deallocate After Sanitize */
enum pnvme_sanact {
	PNVME_SANACT_EXIT_FAILURE  = 1,
	PNVME_SANACT_BLOCK_ERASE   = 2,
	PNVME_SANACT_OVERWRITE     = 3,
	PNVME_SANACT_CRYPTO_ERASE  = 4,
};

/*
 * Asynchronous Event Request (Base 2.0 §5.2): the completion's DW0 carries
 * the event type (2:0), its information (15:8) and the log page to read
 * (23:16) to clear it (Figure 146). Event types and information values:
 * Figures 147-150.
 */
#define PNVME_AER_TYPE_SHIFT        0
#define PNVME_AER_TYPE_MASK         0x7u
#define PNVME_AER_INFO_SHIFT        8
#define PNVME_AER_INFO_MASK         0xffu
#define PNVME_AER_LID_SHIFT         16
#define PNVME_AER_LID_MASK          0xffu

enum pnvme_aer_type {
	PNVME_AER_TYPE_ERROR        = 0x0, /* Error status */
	PNVME_AER_TYPE_SMART        = 0x1, /* SMART / Health status */
	PNVME_AER_TYPE_NOTICE       = 0x2, /* Notice */
	PNVME_AER_TYPE_IMMEDIATE    = 0x3, /* Immediate */
	PNVME_AER_TYPE_ONE_SHOT     = 0x4, /* One-Shot */
	PNVME_AER_TYPE_IO_CMD_SET   = 0x6, /* I/O Command Specific status */
	PNVME_AER_TYPE_VENDOR       = 0x7, /* Vendor specific */
};

/* Information for SMART / Health status events (Figure 149) */
enum pnvme_aer_smart_info {
	PNVME_AER_SMART_RELIABILITY = 0x00, /* NVM subsystem reliability */
	PNVME_AER_SMART_TEMPERATURE = 0x01, /* temperature threshold */
	PNVME_AER_SMART_SPARE       = 0x02, /* spare below threshold */
};

/* Information for Notice events (Figure 150) */
enum pnvme_aer_notice_info {
	PNVME_AER_NOTICE_NS_CHANGED = 0x00, /* Namespace Attribute Changed (log 04h) */
	PNVME_AER_NOTICE_FW_ACT     = 0x01, /* Firmware Activation Starting */
	PNVME_AER_NOTICE_TELEMETRY  = 0x02, /* Telemetry Log Changed */
	PNVME_AER_NOTICE_ANA        = 0x03, /* Asymmetric Namespace Access Change */
	PNVME_AER_NOTICE_DISC_CHANGED = 0xf0, /* Discovery Log Page Change (fabrics) */
};

/*
 * Asynchronous Event Configuration, Set Features FID 0Bh (Base 2.0
 * §5.27.1.7, Figure 326): bits 7:0 one per SMART / Health critical warning
 * bit, then the notices.
 */
#define PNVME_AEC_SMART_SHIFT       0
#define PNVME_AEC_SMART_MASK        0xffu
#define PNVME_AEC_NS_ATTR           (1u << 8)
#define PNVME_AEC_FW_ACT            (1u << 9)

/* SMART / Health Information critical warning bits (Figure 207, byte 0) */
#define PNVME_SMART_CW_SPARE        (1u << 0) /* available spare below threshold */
#define PNVME_SMART_CW_TEMPERATURE  (1u << 1) /* temperature threshold */
#define PNVME_SMART_CW_RELIABILITY  (1u << 2) /* NVM subsystem reliability degraded */
#define PNVME_SMART_CW_READ_ONLY    (1u << 3) /* media placed in read only mode */
#define PNVME_SMART_CW_VOLATILE     (1u << 4) /* volatile memory backup failed */
#define PNVME_SMART_CW_PMR_RO       (1u << 5) /* persistent memory region read only */

/*
 * Changed Namespace List, log 04h (Base 2.0 §5.16.1.5): up to 1024 NSIDs,
 * zero-filled after the last; FFFFFFFFh first when more than 1024 changed.
 */
#define PNVME_CHANGED_NS_MAX        1024u
#define PNVME_CHANGED_NS_OVERFLOW   0xffffffffu

/* Read / Write / Write Zeroes (NVM 1.0 §3.2.4, §3.2.6, §3.2.8): CDW10/11 SLBA, CDW12 */
#define PNVME_RW_NLB_SHIFT          0   /* 0's based */
#define PNVME_RW_NLB_MASK           0xffffu
#define PNVME_RW_DEAC               (1u << 25) /* Write Zeroes: deallocate */
#define PNVME_RW_FUA                (1u << 30)
#define PNVME_RW_LR                 (1u << 31)

/* Dataset Management (NVM 1.0 §3.2.3): CDW10 NR (7:0, 0's based), CDW11 attributes */
#define PNVME_DSM_NR_SHIFT          0
#define PNVME_DSM_NR_MASK           0xffu
#define PNVME_DSM_IDR               (1u << 0)
#define PNVME_DSM_IDW               (1u << 1)
#define PNVME_DSM_AD                (1u << 2)  /* deallocate */
#define PNVME_DSM_MAX_RANGES        256u

/* Dataset Management range (NVM 1.0 Figure 39) */
struct pnvme_dsm_range {
	uint32_t cattr; /* context attributes */
	uint32_t nlb;   /* length in logical blocks (not 0's based) */
	uint64_t slba;
};

/* ------------------------------------------------------------------------ */
/* Identify data structures                                                 */
/* ------------------------------------------------------------------------ */

/* Power State Descriptor (Base 2.0 Figure 276) */
struct pnvme_psd {
	uint16_t mp;
	uint8_t  rsvd2;
	uint8_t  flags;
	uint32_t enlat;
	uint32_t exlat;
	uint8_t  rrt;
	uint8_t  rrl;
	uint8_t  rwt;
	uint8_t  rwl;
	uint16_t idlp;
	uint8_t  ips;
	uint8_t  rsvd19;
	uint16_t actp;
	uint8_t  apws;
	uint8_t  rsvd23[9];
};

/* Identify Controller Data Structure, CNS 01h (Base 2.0 §5.17.2.1, Figure 275) */
struct pnvme_id_ctrl {
	uint16_t vid;          /* PCI Vendor ID */
	uint16_t ssvid;        /* PCI Subsystem Vendor ID */
	char     sn[20];       /* Serial Number (ASCII, space padded) */
	char     mn[40];       /* Model Number */
	char     fr[8];        /* Firmware Revision */
	uint8_t  rab;          /* Recommended Arbitration Burst */
	uint8_t  ieee[3];
	uint8_t  cmic;
	uint8_t  mdts;         /* Maximum Data Transfer Size: 2 ^ n * CAP.MPSMIN, 0 = none */
	uint16_t cntlid;
	uint32_t ver;
	uint32_t rtd3r;
	uint32_t rtd3e;
	uint32_t oaes;
	uint32_t ctratt;
	uint16_t rrls;
	uint8_t  rsvd102[9];
	uint8_t  cntrltype;
	uint8_t  fguid[16];
	uint16_t crdt1;
	uint16_t crdt2;
	uint16_t crdt3;
	uint8_t  rsvd134[119];
	uint8_t  nvmsr;
	uint8_t  vwci;
	uint8_t  mec;
	uint16_t oacs;         /* Optional Admin Command Support */
	uint8_t  acl;          /* Abort Command Limit, 0's based */
	uint8_t  aerl;
	uint8_t  frmw;
	uint8_t  lpa;          /* Log Page Attributes */
	uint8_t  elpe;         /* Error Log Page Entries, 0's based */
	uint8_t  npss;
	uint8_t  avscc;
	uint8_t  apsta;
	uint16_t wctemp;
	uint16_t cctemp;
	uint16_t mtfa;
	uint32_t hmpre;
	uint32_t hmmin;
	uint8_t  tnvmcap[16];
	uint8_t  unvmcap[16];
	uint32_t rpmbs;
	uint16_t edstt;
	uint8_t  dsto;
	uint8_t  fwug;
	uint16_t kas;
	uint16_t hctma;
	uint16_t mntmt;
	uint16_t mxtmt;
	uint32_t sanicap;
	uint32_t hmminds;
	uint16_t hmmaxd;
	uint16_t nsetidmax;
	uint16_t endgidmax;
	uint8_t  anatt;
	uint8_t  anacap;
	uint32_t anagrpmax;
	uint32_t nanagrpid;
	uint32_t pels;
	uint16_t domainid;
	uint8_t  rsvd358[10];
	uint8_t  megcap[16];
	uint8_t  rsvd384[128];
	uint8_t  sqes;         /* SQ Entry Size: max (7:4), required (3:0), as 2 ^ n */
	uint8_t  cqes;         /* CQ Entry Size */
	uint16_t maxcmd;
	uint32_t nn;           /* Number of Namespaces (maximum NSID) */
	uint16_t oncs;         /* Optional NVM Command Support */
	uint16_t fuses;
	uint8_t  fna;
	uint8_t  vwc;          /* Volatile Write Cache */
	uint16_t awun;
	uint16_t awupf;
	uint8_t  icsvscc;
	uint8_t  nwpc;
	uint16_t acwu;
	uint16_t ocfs;
	uint32_t sgls;
	uint32_t mnan;
	uint8_t  maxdna[16];
	uint32_t maxcna;
	uint8_t  rsvd564[204];
	char     subnqn[256];
	uint8_t  rsvd1024[768];
	/* NVMe over Fabrics attributes (Base 2.0 Figure 275, bytes 1792..2047) */
	uint32_t ioccsz;       /* I/O Queue Command Capsule Supported Size, 16-byte units */
	uint32_t iorcsz;       /* I/O Queue Response Capsule Supported Size, 16-byte units */
	uint16_t icdoff;       /* In Capsule Data Offset, 16-byte units past the SQE */
	uint8_t  fcatt;        /* Fabrics Controller Attributes (bit 0: static model) */
	uint8_t  msdbd;        /* Maximum SGL Data Block Descriptors */
	uint16_t ofcs;         /* Optional Fabric Commands Support */
	uint8_t  rsvd1806[242];
	struct pnvme_psd psd[32];
	uint8_t  vs[1024];
};

/* OACS bits (Base 2.0 Figure 275) */
#define PNVME_OACS_SECURITY   (1u << 0)
#define PNVME_OACS_FORMAT     (1u << 1)
#define PNVME_OACS_FW         (1u << 2)
#define PNVME_OACS_NS_MGMT    (1u << 3)
#define PNVME_OACS_SELF_TEST  (1u << 4)
#define PNVME_OACS_DIRECTIVES (1u << 5)
#define PNVME_OACS_DBBUF      (1u << 8)
/* FRMW (Base 2.0 Figure 275): firmware updates */
#define PNVME_FRMW_SLOT1_RO        (1u << 0) /* slot 1 is read only */
#define PNVME_FRMW_NSLOTS_SHIFT    1         /* number of slots, 1..7 */
#define PNVME_FRMW_NSLOTS_MASK     0x7u
/* SANICAP (Base 2.0 Figure 275): sanitize actions supported */
#define PNVME_SANICAP_CES     (1u << 0)  /* crypto erase */
#define PNVME_SANICAP_BES     (1u << 1)  /* block erase */
#define PNVME_SANICAP_OWS     (1u << 2)  /* overwrite */
#define PNVME_SANICAP_NDI     (1u << 29) /* No-Deallocate Inhibited */
/* FNA (Base 2.0 Figure 275): Format NVM attributes */
#define PNVME_FNA_FNS         (1u << 0)  /* a format applies to every namespace */
#define PNVME_FNA_SENS        (1u << 1)  /* a secure erase applies to every namespace */
#define PNVME_FNA_CRYES       (1u << 2)  /* cryptographic erase supported */
#define PNVME_FNA_FNVMBS      (1u << 3)  /* NSID FFFFFFFFh not supported by Format NVM */
/* SGLS (Base 2.0 Figure 275): SGL support */
#define PNVME_SGLS_SUPPORT_SHIFT 0        /* 0 none, 1 any alignment, 2 dword Data Blocks */
#define PNVME_SGLS_SUPPORT_MASK  0x3u
#define PNVME_SGLS_NO_ALIGN      1u       /* (SUPPORT values) no alignment or granularity */
#define PNVME_SGLS_DWORD_ALIGN   2u       /* Data Block address and length dword granular */
#define PNVME_SGLS_KEYED         (1u << 2)  /* Keyed SGL Data Block descriptor */
#define PNVME_SGLS_BIT_BUCKET    (1u << 16) /* SGL Bit Bucket descriptor */
#define PNVME_SGLS_EXCESS_LEN    (1u << 18) /* SGLs longer than the transfer allowed */
/* ONCS bits (Base 2.0 Figure 275) */
#define PNVME_ONCS_COMPARE    (1u << 0)
#define PNVME_ONCS_WRITE_UNC  (1u << 1)
#define PNVME_ONCS_DSM        (1u << 2)
#define PNVME_ONCS_WRITE_ZEROES (1u << 3)
#define PNVME_ONCS_FEAT_SAVE  (1u << 4)
#define PNVME_ONCS_RESV       (1u << 5)
#define PNVME_ONCS_TIMESTAMP  (1u << 6)
#define PNVME_ONCS_VERIFY     (1u << 7)
#define PNVME_ONCS_COPY       (1u << 8)

/* LBA Format Data Structure (NVM 1.0 Figure 98) */
#define PNVME_LBAF_MS_SHIFT    0   /* Metadata Size */
#define PNVME_LBAF_MS_MASK     0xffffu
#define PNVME_LBAF_LBADS_SHIFT 16  /* LBA Data Size: 2 ^ n bytes, n >= 9 */
#define PNVME_LBAF_LBADS_MASK  0xffu
#define PNVME_LBAF_RP_SHIFT    24  /* Relative Performance */
#define PNVME_LBAF_RP_MASK     0x3u

/* FLBAS (NVM 1.0 Figure 97): format index in bits 3:0 and 6:5 */
#define PNVME_FLBAS_INDEX(f)   ((unsigned)((f) & 0xfu) | ((unsigned)(((f) >> 5) & 0x3u) << 4))
#define PNVME_FLBAS_META_EXT   (1u << 4)

/* DPS (NVM 1.0 Figure 97): Protection Information Type in bits 2:0 (0 = off, 1..3) */
#define PNVME_DPS_PIT_SHIFT    0
#define PNVME_DPS_PIT_MASK     0x7u
#define PNVME_DPS_PIP          (1u << 3) /* PI in the first bytes of the metadata, else last */

/* Identify Namespace Data Structure, CNS 00h (NVM 1.0 §4.1.5.1, Figure 97) */
struct pnvme_id_ns {
	uint64_t nsze;     /* Namespace Size, in logical blocks */
	uint64_t ncap;     /* Namespace Capacity */
	uint64_t nuse;     /* Namespace Utilization */
	uint8_t  nsfeat;
	uint8_t  nlbaf;    /* Number of LBA Formats, 0's based */
	uint8_t  flbas;    /* Formatted LBA Size */
	uint8_t  mc;
	uint8_t  dpc;
	uint8_t  dps;
	uint8_t  nmic;
	uint8_t  rescap;
	uint8_t  fpi;
	uint8_t  dlfeat;
	uint16_t nawun;
	uint16_t nawupf;
	uint16_t nacwu;
	uint16_t nabsn;
	uint16_t nabo;
	uint16_t nabspf;
	uint16_t noiob;
	uint8_t  nvmcap[16];
	uint16_t npwg;
	uint16_t npwa;
	uint16_t npdg;
	uint16_t npda;
	uint16_t nows;
	uint16_t mssrl;
	uint32_t mcl;
	uint8_t  msrc;
	uint8_t  rsvd81;
	uint8_t  nulbaf;
	uint8_t  rsvd83[9];
	uint32_t anagrpid;
	uint8_t  rsvd96[3];
	uint8_t  nsattr;
	uint16_t nvmsetid;
	uint16_t endgid;
	uint8_t  nguid[16];
	uint8_t  eui64[8];
	uint32_t lbaf[64]; /* LBA Format 0..63 (PNVME_LBAF_*) */
	uint8_t  vs[3712];
};

/* ------------------------------------------------------------------------ */
/* Log pages                                                                */
/* ------------------------------------------------------------------------ */

/* Error Information Log Entry, LID 01h (Base 2.0 §5.16.1.2, Figure 206) */
struct pnvme_error_log {
	uint64_t error_count;
	uint16_t sqid;
	uint16_t cmdid;
	uint16_t status;        /* Status Field as in the CQE: bits 15:1, phase in bit 0 */
	uint16_t param_loc;     /* Parameter Error Location */
	uint64_t lba;
	uint32_t nsid;
	uint8_t  vs;
	uint8_t  trtype;
	uint8_t  rsvd30[2];
	uint64_t cs;            /* Command Specific Information */
	uint16_t trtype_info;
	uint8_t  rsvd42[22];
};

/* SMART / Health Information Log, LID 02h (Base 2.0 §5.16.1.3, Figure 207) */
struct pnvme_smart_log {
	uint8_t  critical_warning;
	uint8_t  temperature[2];    /* Composite Temperature, Kelvin */
	uint8_t  avail_spare;
	uint8_t  spare_thresh;
	uint8_t  percent_used;
	uint8_t  endgrp_crit_warn;
	uint8_t  rsvd7[25];
	uint8_t  data_units_read[16];    /* 1000 * 512 bytes units, 128-bit */
	uint8_t  data_units_written[16];
	uint8_t  host_reads[16];
	uint8_t  host_writes[16];
	uint8_t  ctrl_busy_time[16];
	uint8_t  power_cycles[16];
	uint8_t  power_on_hours[16];
	uint8_t  unsafe_shutdowns[16];
	uint8_t  media_errors[16];
	uint8_t  num_err_log_entries[16];
	uint32_t warning_temp_time;
	uint32_t critical_comp_time;
	uint16_t temp_sensor[8];
	uint32_t thm_temp1_trans_count;
	uint32_t thm_temp2_trans_count;
	uint32_t thm_temp1_total_time;
	uint32_t thm_temp2_total_time;
	uint8_t  rsvd232[280];
};

/* Firmware Slot Information, LID 03h (Base 2.0 §5.16.1.4) */
struct pnvme_fw_slot_log {
	uint8_t  afi;           /* Active Firmware Info (PNVME_AFI_*) */
	uint8_t  rsvd1[7];
	char     frs[7][8];     /* Firmware Revision for Slot 1..7 (ASCII, 0: empty) */
	uint8_t  rsvd64[448];
};
#define PNVME_AFI_ACTIVE_SHIFT     0  /* slot the running firmware came from */
#define PNVME_AFI_ACTIVE_MASK      0x7u
#define PNVME_AFI_NEXT_SHIFT       4  /* slot activated at the next reset, 0: none */
#define PNVME_AFI_NEXT_MASK        0x7u

/* Sanitize Status, LID 81h (Base 2.0 §5.16.1, Sanitize Status log page) */
struct pnvme_sanitize_log {
	uint16_t sprog;         /* progress, numerator of n / 65536 (FFFFh unless in progress) */
	uint16_t sstat;         /* Sanitize Status (PNVME_SSTAT_*) */
	uint32_t scdw10;        /* CDW10 of the Sanitize command that started the operation */
	uint32_t eto;           /* estimated seconds: overwrite (FFFFFFFFh: no estimate) */
	uint32_t etbe;          /* block erase */
	uint32_t etce;          /* crypto erase */
	uint32_t etondas;       /* the same with No-Deallocate After Sanitize */
	uint32_t etbendas;
	uint32_t etcendas;
	uint8_t  rsvd32[480];
};
#define PNVME_SSTAT_STATUS_SHIFT   0
#define PNVME_SSTAT_STATUS_MASK    0x7u
#define PNVME_SSTAT_OPC_SHIFT      3  /* overwrite passes completed */
#define PNVME_SSTAT_OPC_MASK       0x1fu
#define PNVME_SSTAT_GDE            (1u << 8) /* Global Data Erased */
enum pnvme_sstat_status {
	PNVME_SSTAT_NEVER          = 0, /* never sanitized */
	PNVME_SSTAT_COMPLETED      = 1, /* the most recent sanitize completed */
	PNVME_SSTAT_IN_PROGRESS    = 2,
	PNVME_SSTAT_FAILED         = 3,
	PNVME_SSTAT_COMPLETED_NDAS = 4, /* completed, deallocated although NDAS was asked */
};

/* ------------------------------------------------------------------------ */
/* Compile-time layout checks                                               */
/* ------------------------------------------------------------------------ */

PNVME_STATIC_ASSERT(sizeof(struct pnvme_sqe) == 64, "SQE is 64 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_sqe, nsid) == 4, "SQE NSID at byte 4");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_sqe, mptr) == 16, "SQE MPTR at byte 16");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_sqe, prp1) == 24, "SQE PRP1 at byte 24");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_sqe, prp2) == 32, "SQE PRP2 at byte 32");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_sqe, cdw10) == 40, "SQE CDW10 at byte 40");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_sqe, cdw15) == 60, "SQE CDW15 at byte 60");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_cqe) == 16, "CQE is 16 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_cqe, sqhd) == 8, "CQE SQHD at byte 8");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_cqe, cid) == 12, "CQE CID at byte 12");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_cqe, status) == 14, "CQE status at byte 14");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_dsm_range) == 16, "DSM range is 16 bytes");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_psd) == 32, "power state descriptor is 32 bytes");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_id_ctrl) == 4096, "Identify Controller is 4 KiB");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, mn) == 24, "id_ctrl MN");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, mdts) == 77, "id_ctrl MDTS");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, ver) == 80, "id_ctrl VER");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, fguid) == 112, "id_ctrl FGUID");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, oacs) == 256, "id_ctrl OACS");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, tnvmcap) == 280, "id_ctrl TNVMCAP");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, sanicap) == 328, "id_ctrl SANICAP");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, anagrpmax) == 344, "id_ctrl ANAGRPMAX");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, megcap) == 368, "id_ctrl MEGCAP");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, sqes) == 512, "id_ctrl SQES");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, nn) == 516, "id_ctrl NN");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, oncs) == 520, "id_ctrl ONCS");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, sgls) == 536, "id_ctrl SGLS");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, maxcna) == 560, "id_ctrl MAXCNA");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, subnqn) == 768, "id_ctrl SUBNQN");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, ioccsz) == 1792, "id_ctrl IOCCSZ");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, icdoff) == 1800, "id_ctrl ICDOFF");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, psd) == 2048, "id_ctrl PSD0");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, vs) == 3072, "id_ctrl VS");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_id_ns) == 4096, "Identify Namespace is 4 KiB");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ns, nlbaf) == 25, "id_ns NLBAF");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ns, nvmcap) == 48, "id_ns NVMCAP");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ns, anagrpid) == 92, "id_ns ANAGRPID");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ns, nguid) == 104, "id_ns NGUID");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ns, lbaf) == 128, "id_ns LBAF0");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ns, vs) == 384, "id_ns VS");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_error_log) == 64, "error log entry is 64 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_error_log, lba) == 16, "error log LBA");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_error_log, cs) == 32, "error log CS");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_smart_log) == 512, "SMART log is 512 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_smart_log, data_units_read) == 32, "SMART DUR");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_smart_log, warning_temp_time) == 192, "SMART WCTT");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_smart_log, thm_temp1_trans_count) == 216, "SMART TMT1TC");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, fna) == 524, "id_ctrl FNA");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_id_ctrl, frmw) == 260, "id_ctrl FRMW");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_fw_slot_log) == 512, "firmware slot log is 512 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_fw_slot_log, frs) == 8, "firmware slot log FRS1");
PNVME_STATIC_ASSERT(sizeof(struct pnvme_sanitize_log) == 512, "sanitize log is 512 bytes");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_sanitize_log, scdw10) == 4, "sanitize log SCDW10");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_sanitize_log, etce) == 16, "sanitize log ETCE");
PNVME_STATIC_ASSERT(offsetof(struct pnvme_sanitize_log, etcendas) == 28, "sanitize log ETCENDAS");
PNVME_STATIC_ASSERT(PNVME_FORMAT_LBAF(17) == 0x1001u, "Format NVM LBAF 17: LBAFU 1, LBAFL 1");
PNVME_STATIC_ASSERT(PNVME_REG_CC == 0x14 && PNVME_REG_CSTS == 0x1c && PNVME_REG_AQA == 0x24,
		    "register offsets");
PNVME_STATIC_ASSERT(PNVME_REG_ASQ == 0x28 && PNVME_REG_ACQ == 0x30 && PNVME_REG_CMBSZ == 0x3c,
		    "register offsets");
PNVME_STATIC_ASSERT(PNVME_SQ_TDBL(1, 0) == 0x1008 && PNVME_CQ_HDBL(1, 0) == 0x100c,
		    "doorbell layout, stride 0");
PNVME_STATIC_ASSERT(PNVME_SQ_TDBL(1, 1) == 0x1010 && PNVME_CQ_HDBL(0, 2) == 0x1010,
		    "doorbell layout, stride 1 and 2");

#endif /* PNVME_SPEC_H */
