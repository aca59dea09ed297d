/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * status.c - NVMe completion status: readable names and errno mapping.
 *
 * The status field (Base 2.0 §4.2.3, Figure 92) is SC (7:0) | SCT (10:8) |
 * CRD (12:11) | M (13) | DNR (14) once the phase bit is shifted out. Names
 * follow the spec's tables:
 *   SCT 0h  Generic Command Status      Base 2.0 §4.2.3.2, Figure 94; NVM 1.0 Figure 32
 *   SCT 1h  Command Specific Status     Base 2.0 §4.2.3.3, Figure 95; NVM 1.0 Figure 33
 *   SCT 2h  Media and Data Integrity    Base 2.0 §4.2.3.4, Figure 96; NVM 1.0 Figure 34
 *   SCT 3h  Path Related Status         Base 2.0 §4.2.3.5, Figure 97
 * Every string is built at compile time, "Name (sct Xh sc YYh)"; only unknown
 * codes are formatted at run time, into a thread-local buffer.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "internal.h"

/*
 * ST(sct, sc, name): a table entry whose text carries the codes. `sc` is
 * written as two upper-case hex digits (pasted into 0x.. for the index), so
 * the text matches the spec's notation, e.g. "LBA Out of Range (sct 0h sc 80h)".
 */
#define ST(sct, sc, name) [0x##sc] = name " (sct " #sct "h sc " #sc "h)"

static const char *const sct_generic[256] = {
	ST(0, 00, "Successful Completion"),
	ST(0, 01, "Invalid Command Opcode"),
	ST(0, 02, "Invalid Field in Command"),
	ST(0, 03, "Command ID Conflict"),
	ST(0, 04, "Data Transfer Error"),
	ST(0, 05, "Commands Aborted due to Power Loss Notification"),
	ST(0, 06, "Internal Error"),
	ST(0, 07, "Command Abort Requested"),
	ST(0, 08, "Command Aborted due to SQ Deletion"),
	ST(0, 09, "Command Aborted due to Failed Fused Command"),
	ST(0, 0A, "Command Aborted due to Missing Fused Command"),
	ST(0, 0B, "Invalid Namespace or Format"),
	ST(0, 0C, "Command Sequence Error"),
	ST(0, 0D, "Invalid SGL Segment Descriptor"),
	ST(0, 0E, "Invalid Number of SGL Descriptors"),
	ST(0, 0F, "Data SGL Length Invalid"),
	ST(0, 10, "Metadata SGL Length Invalid"),
	ST(0, 11, "SGL Descriptor Type Invalid"),
	ST(0, 12, "Invalid Use of Controller Memory Buffer"),
	ST(0, 13, "PRP Offset Invalid"),
	ST(0, 14, "Atomic Write Unit Exceeded"),
	ST(0, 15, "Operation Denied"),
	ST(0, 16, "SGL Offset Invalid"),
	ST(0, 18, "Host Identifier Inconsistent Format"),
	ST(0, 19, "Keep Alive Timer Expired"),
	ST(0, 1A, "Keep Alive Timeout Invalid"),
	ST(0, 1B, "Command Aborted due to Preempt and Abort"),
	ST(0, 1C, "Sanitize Failed"),
	ST(0, 1D, "Sanitize In Progress"),
	ST(0, 1E, "SGL Data Block Granularity Invalid"),
	ST(0, 1F, "Command Not Supported for Queue in CMB"),
	ST(0, 20, "Namespace is Write Protected"),
	ST(0, 21, "Command Interrupted"),
	ST(0, 22, "Transient Transport Error"),
	ST(0, 23, "Command Prohibited by Command and Feature Lockdown"),
	ST(0, 24, "Admin Command Media Not Ready"),
	/* NVM Command Set specific generic status (NVM 1.0 Figure 32) */
	ST(0, 80, "LBA Out of Range"),
	ST(0, 81, "Capacity Exceeded"),
	ST(0, 82, "Namespace Not Ready"),
	ST(0, 83, "Reservation Conflict"),
	ST(0, 84, "Format In Progress"),
};

static const char *const sct_cmd[256] = {
	ST(1, 00, "Completion Queue Invalid"),
	ST(1, 01, "Invalid Queue Identifier"),
	ST(1, 02, "Invalid Queue Size"),
	ST(1, 03, "Abort Command Limit Exceeded"),
	ST(1, 05, "Asynchronous Event Request Limit Exceeded"),
	ST(1, 06, "Invalid Firmware Slot"),
	ST(1, 07, "Invalid Firmware Image"),
	ST(1, 08, "Invalid Interrupt Vector"),
	ST(1, 09, "Invalid Log Page"),
	ST(1, 0A, "Invalid Format"),
	ST(1, 0B, "Firmware Activation Requires Conventional Reset"),
	ST(1, 0C, "Invalid Queue Deletion"),
	ST(1, 0D, "Feature Identifier Not Saveable"),
	ST(1, 0E, "Feature Not Changeable"),
	ST(1, 0F, "Feature Not Namespace Specific"),
	ST(1, 10, "Firmware Activation Requires NVM Subsystem Reset"),
	ST(1, 11, "Firmware Activation Requires Controller Level Reset"),
	ST(1, 12, "Firmware Activation Requires Maximum Time Violation"),
	ST(1, 13, "Firmware Activation Prohibited"),
	ST(1, 14, "Overlapping Range"),
	ST(1, 15, "Namespace Insufficient Capacity"),
	ST(1, 16, "Namespace Identifier Unavailable"),
	ST(1, 18, "Namespace Already Attached"),
	ST(1, 19, "Namespace Is Private"),
	ST(1, 1A, "Namespace Not Attached"),
	ST(1, 1B, "Thin Provisioning Not Supported"),
	ST(1, 1C, "Controller List Invalid"),
	ST(1, 1D, "Device Self-test In Progress"),
	ST(1, 1E, "Boot Partition Write Prohibited"),
	ST(1, 1F, "Invalid Controller Identifier"),
	ST(1, 20, "Invalid Secondary Controller State"),
	ST(1, 21, "Invalid Number of Controller Resources"),
	ST(1, 22, "Invalid Resource Identifier"),
	ST(1, 23, "Sanitize Prohibited While Persistent Memory Region is Enabled"),
	ST(1, 24, "ANA Group Identifier Invalid"),
	ST(1, 25, "ANA Attach Failed"),
	ST(1, 26, "Insufficient Capacity"),
	ST(1, 27, "Namespace Attachment Limit Exceeded"),
	ST(1, 28, "Prohibition of Command Execution Not Supported"),
	ST(1, 29, "I/O Command Set Not Supported"),
	ST(1, 2A, "I/O Command Set Not Enabled"),
	ST(1, 2B, "I/O Command Set Combination Rejected"),
	ST(1, 2C, "Invalid I/O Command Set"),
	ST(1, 2D, "Identifier Unavailable"),
	/* NVM Command Set command specific status (NVM 1.0 Figure 33) */
	ST(1, 80, "Conflicting Attributes"),
	ST(1, 81, "Invalid Protection Information"),
	ST(1, 82, "Attempted Write to Read Only Range"),
	ST(1, 83, "Command Size Limit Exceeded"),
};

static const char *const sct_media[256] = {
	/* Base 2.0 Figure 96 and NVM 1.0 Figure 34 */
	ST(2, 80, "Write Fault"),
	ST(2, 81, "Unrecovered Read Error"),
	ST(2, 82, "End-to-end Guard Check Error"),
	ST(2, 83, "End-to-end Application Tag Check Error"),
	ST(2, 84, "End-to-end Reference Tag Check Error"),
	ST(2, 85, "Compare Failure"),
	ST(2, 86, "Access Denied"),
	ST(2, 87, "Deallocated or Unwritten Logical Block"),
	ST(2, 88, "End-to-end Storage Tag Check Error"),
};

static const char *const sct_path[256] = {
	ST(3, 00, "Internal Path Error"),
	ST(3, 01, "Asymmetric Access Persistent Loss"),
	ST(3, 02, "Asymmetric Access Inaccessible"),
	ST(3, 03, "Asymmetric Access Transition"),
	ST(3, 60, "Controller Pathing Error"),
	ST(3, 70, "Host Pathing Error"),
	ST(3, 71, "Command Aborted By Host"),
};

#undef ST

static const char *const *const sct_tables[8] = {
	[PNVME_SCT_GENERIC] = sct_generic,
	[PNVME_SCT_CMD] = sct_cmd,
	[PNVME_SCT_MEDIA] = sct_media,
	[PNVME_SCT_PATH] = sct_path,
};

/* Room for "Vendor Specific Status (sct 7h sc FFh)" and the like. */
static _Thread_local char unknown_buf[64];

const char *pnvme_status_str(uint16_t status)
{
	unsigned sct = PNVME_STATUS_SCT(status);
	unsigned sc = PNVME_STATUS_SC(status);
	const char *const *t = sct_tables[sct];

	if (t != NULL && t[sc] != NULL)
		return t[sc];
	snprintf(unknown_buf, sizeof(unknown_buf), "%s (sct %Xh sc %02Xh)",
		 sct == PNVME_SCT_VENDOR ? "Vendor Specific Status" : "Unknown status", sct, sc);
	return unknown_buf;
}

/*
 * The mapping documented in pnvme/error.h. Anything not listed is -EIO; the
 * caller always has the full status in the CQE as well.
 */
int pnvme_status_errno(uint16_t status)
{
	switch (PNVME_STATUS_CODE(status)) {
	case PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_SUCCESS):
		return 0;
	case PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INVALID_OPCODE):
		return -EOPNOTSUPP;
	case PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_INVALID_FIELD):
	case PNVME_STATUS(PNVME_SCT_CMD, PNVME_SC_CQ_INVALID):
	case PNVME_STATUS(PNVME_SCT_CMD, PNVME_SC_QID_INVALID):
	case PNVME_STATUS(PNVME_SCT_CMD, PNVME_SC_QUEUE_SIZE):
	case PNVME_STATUS(PNVME_SCT_CMD, PNVME_SC_FORMAT_INVALID):
		return -EINVAL;
	case PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_SANITIZE_IN_PROGRESS):
	case PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_FORMAT_IN_PROGRESS):
		return -EBUSY;
	case PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_LBA_RANGE):
		return -ERANGE;
	case PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_CAP_EXCEEDED):
		return -ENOSPC;
	case PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_NS_WRITE_PROTECTED):
	case PNVME_STATUS(PNVME_SCT_CMD, PNVME_SC_READ_ONLY):
		return -EROFS;
	case PNVME_STATUS(PNVME_SCT_MEDIA, PNVME_SC_ACCESS_DENIED):
		return -EACCES;
	case PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_RESERVATION_CONFLICT):
		return -EBADE;
	case PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_ABORT_REQ):
	case PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_ABORT_SQ_DELETED):
	case PNVME_STATUS(PNVME_SCT_PATH, PNVME_SC_HOST_ABORTED_CMD):
		return -ECANCELED;
	case PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_NS_NOT_READY):
		return -EAGAIN;
	case PNVME_STATUS(PNVME_SCT_MEDIA, PNVME_SC_GUARD_CHECK):
	case PNVME_STATUS(PNVME_SCT_MEDIA, PNVME_SC_APPTAG_CHECK):
	case PNVME_STATUS(PNVME_SCT_MEDIA, PNVME_SC_REFTAG_CHECK):
	case PNVME_STATUS(PNVME_SCT_MEDIA, PNVME_SC_COMPARE_FAILED):
	case PNVME_STATUS(PNVME_SCT_MEDIA, 0x88): /* End-to-end Storage Tag Check Error */
		return -EILSEQ;
	case PNVME_STATUS(PNVME_SCT_CMD, PNVME_SC_LOG_PAGE_INVALID):
		return -ENOENT;
	default:
		return -EIO;
	}
}
