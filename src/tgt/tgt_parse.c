/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tgt_parse.c - the target's single command entry, after Linux's
 * nvmet_req_init(): check the capsule's common fields, dispatch by queue and
 * opcode to the parse function of the command's class, which checks the
 * command's own fields and sets its execute function, its data direction
 * and the transfer length it expects; then check the SGL against that, all
 * before any data moves. A refused command gets a status and its data
 * (in-capsule or not) is never read into a buffer.
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "tgt/tgt_priv.h"

/* Data direction of an opcode (Base 2.0 §5, Figure 138: bits 1:0). */
static uint8_t opc_dir(uint8_t opc)
{
	switch (opc & 3u) {
	case 1: return TGT_DIR_H2C;
	case 2: return TGT_DIR_C2H;
	default: return TGT_DIR_NONE; /* 0: none; 3: bidirectional, not supported */
	}
}

static void set(struct tgt_req *req, void (*execute)(struct tgt_req *), uint32_t len,
		uint8_t dir)
{
	req->execute = execute;
	req->len = len;
	req->dir = len ? dir : TGT_DIR_NONE;
}

/*
 * Before Connect the queue knows nothing else (nvmet_parse_connect_cmd):
 * Connect with its 1 KiB of data (Base 2.0 §6.3), on whatever queue.
 */
static uint16_t parse_connect(struct tgt_req *req)
{
	const struct pnvme_fabrics_connect *cmd = (const void *)&req->sqe;

	if (cmd->opc != PNVME_OPC_FABRICS || cmd->fctype != PNVME_FCTYPE_CONNECT)
		return TGT_GEN(PNVME_SC_INVALID_OPCODE);
	set(req, tgt_exec_connect, sizeof(struct pnvme_fabrics_connect_data), TGT_DIR_H2C);
	return 0;
}

/* Fabrics commands on a connected queue (Base 2.0 §6): properties, admin queue only. */
static uint16_t parse_fabrics(struct tgt_req *req)
{
	const struct pnvme_fabrics_connect *cmd = (const void *)&req->sqe;

	switch (cmd->fctype) {
	case PNVME_FCTYPE_CONNECT:
		return TGT_GEN(PNVME_SC_CMD_SEQ_ERROR); /* connected already */
	case PNVME_FCTYPE_PROPERTY_GET:
		if (req->conn->qid)
			break;
		set(req, tgt_exec_prop_get, 0, TGT_DIR_NONE);
		return 0;
	case PNVME_FCTYPE_PROPERTY_SET:
		if (req->conn->qid)
			break;
		set(req, tgt_exec_prop_set, 0, TGT_DIR_NONE);
		return 0;
	default:
		break;
	}
	return TGT_GEN(PNVME_SC_INVALID_OPCODE);
}

/* nvmet_check_ctrl_status(): commands other than fabrics need CC.EN and CSTS.RDY. */
static uint16_t check_ctrl_ready(const struct tgt_req *req)
{
	const struct tgt_ctrl *ctrl = req->conn->ctrl;
	uint32_t csts = __atomic_load_n(&ctrl->csts, __ATOMIC_ACQUIRE);

	if (!PNVME_GET(csts, PNVME_CSTS_RDY) || PNVME_GET(csts, PNVME_CSTS_CFS))
		return TGT_GEN(PNVME_SC_CMD_SEQ_ERROR);
	return 0;
}

/* Get Log Page (Base 2.0 §5.16): NUMD dwords; the log page is checked when executed. */
static uint16_t parse_get_log(struct tgt_req *req)
{
	const struct pnvme_sqe *sqe = &req->sqe;
	uint64_t numd = ((uint64_t)PNVME_GET(sqe->cdw11, PNVME_GLP_NUMDU) << 16 |
			 PNVME_GET(sqe->cdw10, PNVME_GLP_NUMDL)) + 1u;

	if (numd * 4u > req->conn->g->tgt->max_xfer)
		return TGT_GEN(PNVME_SC_INVALID_FIELD);
	set(req, tgt_exec_get_log, (uint32_t)(numd * 4u), TGT_DIR_C2H);
	return 0;
}

/* Admin commands of a discovery controller (nvmet_parse_discovery_cmd). */
static uint16_t parse_discovery(struct tgt_req *req)
{
	const struct pnvme_sqe *sqe = &req->sqe;
	uint16_t st = check_ctrl_ready(req);

	if (st)
		return st;
	switch (sqe->opc) {
	case PNVME_ADM_GET_LOG_PAGE:
		return parse_get_log(req);
	case PNVME_ADM_IDENTIFY:
		set(req, tgt_exec_identify, PNVME_IDENTIFY_DATA_SIZE, TGT_DIR_C2H);
		return 0;
	case PNVME_ADM_SET_FEATURES:
	case PNVME_ADM_GET_FEATURES:
		set(req, tgt_exec_features, 0, TGT_DIR_NONE);
		return 0;
	case PNVME_ADM_ASYNC_EVENT:
		set(req, tgt_exec_aer, 0, TGT_DIR_NONE);
		return 0;
	case PNVME_ADM_KEEP_ALIVE:
		set(req, tgt_exec_keep_alive, 0, TGT_DIR_NONE);
		return 0;
	default:
		return TGT_GEN(PNVME_SC_INVALID_OPCODE);
	}
}

/* Admin commands of an I/O controller (nvmet_parse_admin_cmd). */
static uint16_t parse_admin(struct tgt_req *req)
{
	const struct pnvme_sqe *sqe = &req->sqe;
	uint16_t st = check_ctrl_ready(req);

	if (st)
		return st;
	switch (sqe->opc) {
	case PNVME_ADM_GET_LOG_PAGE:
		return parse_get_log(req);
	case PNVME_ADM_IDENTIFY:
		set(req, tgt_exec_identify, PNVME_IDENTIFY_DATA_SIZE, TGT_DIR_C2H);
		return 0;
	case PNVME_ADM_ABORT:
		set(req, tgt_exec_abort, 0, TGT_DIR_NONE);
		return 0;
	case PNVME_ADM_SET_FEATURES:
	case PNVME_ADM_GET_FEATURES:
		set(req, tgt_exec_features, 0, TGT_DIR_NONE);
		return 0;
	case PNVME_ADM_ASYNC_EVENT:
		set(req, tgt_exec_aer, 0, TGT_DIR_NONE);
		return 0;
	case PNVME_ADM_KEEP_ALIVE:
		set(req, tgt_exec_keep_alive, 0, TGT_DIR_NONE);
		return 0;
	default:
		return TGT_GEN(PNVME_SC_INVALID_OPCODE);
	}
}

/* NVM commands (nvmet_parse_io_cmd; NVM Command Set 1.0 §3). */
static uint16_t parse_io(struct tgt_req *req)
{
	const struct pnvme_sqe *sqe = &req->sqe;
	const struct tgt_conn *c = req->conn;
	uint32_t max_xfer = c->g->tgt->max_xfer;
	uint16_t st = check_ctrl_ready(req);
	const struct tgt_ns *ns;
	uint64_t slba, nlb, len;

	if (st)
		return st;
	/* Every NVM command names one namespace; NSID FFFFFFFFh (a broadcast Flush) too is
	 * Invalid Namespace, as nvmet answers, and as Identify VWC bits 2:1 = 10b announce. */
	ns = tgt_ns_get(c->ctrl->subsys, sqe->nsid);
	if (!ns)
		return TGT_GEN(PNVME_SC_INVALID_NS);
	req->ns = ns;
	slba = sqe->cdw10 | (uint64_t)sqe->cdw11 << 32;
	nlb = PNVME_GET(sqe->cdw12, PNVME_RW_NLB) + 1u;
	switch (sqe->opc) {
	case PNVME_NVM_READ:
	case PNVME_NVM_WRITE:
		/* No metadata, so no protection information: PRINFO must be 0. */
		if (sqe->cdw12 & (0xfu << 26))
			return TGT_GEN(PNVME_SC_INVALID_FIELD);
		len = nlb << ns->lba_shift;
		if (len > max_xfer)
			return TGT_GEN(PNVME_SC_INVALID_FIELD); /* above MDTS */
		if (slba >= ns->nsze || nlb > ns->nsze - slba)
			return TGT_GEN(PNVME_SC_LBA_RANGE);
		set(req, tgt_exec_io, (uint32_t)len, opc_dir(sqe->opc));
		return 0;
	case PNVME_NVM_WRITE_ZEROES:
		if (sqe->cdw12 & (0xfu << 26))
			return TGT_GEN(PNVME_SC_INVALID_FIELD);
		if (slba >= ns->nsze || nlb > ns->nsze - slba)
			return TGT_GEN(PNVME_SC_LBA_RANGE);
		set(req, tgt_exec_io, 0, TGT_DIR_NONE);
		return 0;
	case PNVME_NVM_FLUSH:
		set(req, tgt_exec_io, 0, TGT_DIR_NONE);
		return 0;
	case PNVME_NVM_DSM:
		/*
		 * NR (0's based) ranges of 16 bytes (NVM 1.0 §3.2.3). The host may
		 * send more: Linux always sends a buffer for the 256 ranges a DSM
		 * can hold (nvme_setup_discard) and its target takes any length
		 * from NR's up (nvmet_check_data_len_lte). Take up to 4 KiB; the
		 * execution uses NR ranges only.
		 */
		len = (PNVME_GET(sqe->cdw10, PNVME_DSM_NR) + 1u) * 16u;
		if (tgt_sgl(sqe)->length > len && tgt_sgl(sqe)->length <= PNVME_DSM_MAX_RANGES * 16u)
			len = tgt_sgl(sqe)->length;
		set(req, tgt_exec_io, (uint32_t)len, TGT_DIR_H2C);
		return 0;
	default:
		return TGT_GEN(PNVME_SC_INVALID_OPCODE);
	}
}

/*
 * The command's data descriptor (Base 2.0 §4.1.2; TCP 1.0 §3.3.2): SGL
 * Descriptor 1 must describe exactly the transfer the command implies
 * (nvmet_check_transfer_len), in the capsule (Data Block, offset subtype,
 * host to controller only, within the queue's in-capsule size, offset 0 as
 * ICDOFF says) or held by the other side (Transport Data Block).
 */
static uint16_t map_sgl(struct tgt_req *req, uint32_t incap)
{
	const struct pnvme_sgl_desc *sgl = tgt_sgl(&req->sqe);
	const struct tgt_conn *c = req->conn;

	if (sgl->length != req->len)
		return TGT_GEN(PNVME_SC_SGL_INVALID_DATA);
	if (!req->len)
		return incap ? TGT_GEN(PNVME_SC_SGL_INVALID_DATA) : 0;
	if (sgl->id == PNVME_SGL_ID_INCAPSULE) {
		if (req->dir != TGT_DIR_H2C)
			return TGT_GEN(PNVME_SC_INVALID_FIELD);
		if (sgl->addr != 0 || req->len > c->icd)
			return TGT_GEN(PNVME_SC_SGL_INVALID_OFFSET);
		if (incap != req->len)
			return TGT_GEN(PNVME_SC_SGL_INVALID_DATA);
		return 0;
	}
	if (sgl->id != PNVME_SGL_ID_TRANSPORT)
		return TGT_GEN(PNVME_SC_SGL_INVALID_TYPE);
	if (incap)
		return TGT_GEN(PNVME_SC_SGL_INVALID_DATA);
	return 0;
}

uint16_t tgt_req_init(struct tgt_req *req, uint32_t incap)
{
	const struct pnvme_sqe *sqe = &req->sqe;
	const struct tgt_conn *c = req->conn;
	uint16_t st;

	req->execute = NULL;
	req->len = 0;
	req->dir = TGT_DIR_NONE;
	/* Fused operations are not supported; fabrics use SGLs only (PSDT 01b). */
	if (PNVME_GET(sqe->flags, PNVME_SQE_FUSE))
		return TGT_GEN(PNVME_SC_INVALID_FIELD);
	if (PNVME_GET(sqe->flags, PNVME_SQE_PSDT) != PNVME_SQE_PSDT_SGL_MPTR_CONTIG)
		return TGT_GEN(PNVME_SC_INVALID_FIELD);
	if (c->qid < 0)
		st = parse_connect(req);
	else if (sqe->opc == PNVME_OPC_FABRICS)
		st = parse_fabrics(req);
	else if (c->qid == 0)
		st = c->ctrl->subsys ? parse_admin(req) : parse_discovery(req);
	else
		st = parse_io(req);
	if (st)
		return st;
	if (req->dir == TGT_DIR_NONE && req->len)
		return TGT_GEN(PNVME_SC_INVALID_FIELD);
	return map_sgl(req, incap);
}
