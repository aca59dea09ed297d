/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_status.c - NVMe status names and their errno mapping (status.c).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <pnvme/error.h>
#include <pnvme/spec.h>

#define S(sct, sc) PNVME_STATUS(PNVME_SCT_##sct, PNVME_SC_##sc)

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(pnvme_status_str(S(GENERIC, SUCCESS)),
			    "Successful Completion (sct 0h sc 00h)");
	assert_string_equal(pnvme_status_str(S(GENERIC, LBA_RANGE)),
			    "LBA Out of Range (sct 0h sc 80h)");
	assert_string_equal(pnvme_status_str(S(GENERIC, INVALID_OPCODE)),
			    "Invalid Command Opcode (sct 0h sc 01h)");
	assert_string_equal(pnvme_status_str(S(GENERIC, SANITIZE_IN_PROGRESS)),
			    "Sanitize In Progress (sct 0h sc 1Dh)");
	assert_string_equal(pnvme_status_str(S(CMD, QID_INVALID)),
			    "Invalid Queue Identifier (sct 1h sc 01h)");
	assert_string_equal(pnvme_status_str(S(CMD, LOG_PAGE_INVALID)),
			    "Invalid Log Page (sct 1h sc 09h)");
	assert_string_equal(pnvme_status_str(S(CMD, READ_ONLY)),
			    "Attempted Write to Read Only Range (sct 1h sc 82h)");
	assert_string_equal(pnvme_status_str(S(MEDIA, READ_ERROR)),
			    "Unrecovered Read Error (sct 2h sc 81h)");
	assert_string_equal(pnvme_status_str(S(MEDIA, GUARD_CHECK)),
			    "End-to-end Guard Check Error (sct 2h sc 82h)");
	assert_string_equal(pnvme_status_str(S(PATH, HOST_ABORTED_CMD)),
			    "Command Aborted By Host (sct 3h sc 71h)");
	assert_string_equal(pnvme_status_str(S(PATH, INTERNAL_PATH_ERROR)),
			    "Internal Path Error (sct 3h sc 00h)");
}

static void test_flags_ignored(void **state)
{
	(void)state;
	uint16_t s = S(GENERIC, LBA_RANGE);

	/* DNR, More and CRD do not change the name. */
	assert_string_equal(pnvme_status_str((uint16_t)(s | PNVME_STATUS_DNR | PNVME_STATUS_MORE |
							 (3u << 11))),
			    "LBA Out of Range (sct 0h sc 80h)");
	assert_int_equal(pnvme_status_errno((uint16_t)(s | PNVME_STATUS_DNR)), -ERANGE);
	/* From a CQE, phase bit included. */
	struct pnvme_cqe cqe = { .status = (uint16_t)(((s | PNVME_STATUS_DNR) << 1) | 1u) };
	assert_string_equal(pnvme_status_str(PNVME_CQE_STATUS(&cqe)),
			    "LBA Out of Range (sct 0h sc 80h)");
	assert_int_equal(pnvme_status_errno(PNVME_CQE_STATUS(&cqe)), -ERANGE);
}

static void test_unknown(void **state)
{
	(void)state;
	assert_string_equal(pnvme_status_str(PNVME_STATUS(0, 0x17)),
			    "Unknown status (sct 0h sc 17h)");
	assert_string_equal(pnvme_status_str(PNVME_STATUS(1, 0xfe)),
			    "Unknown status (sct 1h sc FEh)");
	assert_string_equal(pnvme_status_str(PNVME_STATUS(2, 0x00)),
			    "Unknown status (sct 2h sc 00h)");
	assert_string_equal(pnvme_status_str(PNVME_STATUS(5, 0x42)),
			    "Unknown status (sct 5h sc 42h)");
	assert_string_equal(pnvme_status_str(PNVME_STATUS(PNVME_SCT_VENDOR, 0xc0)),
			    "Vendor Specific Status (sct 7h sc C0h)");
	assert_int_equal(pnvme_status_errno(PNVME_STATUS(0, 0x17)), -EIO);
	assert_int_equal(pnvme_status_errno(PNVME_STATUS(PNVME_SCT_VENDOR, 0xc0)), -EIO);
}

/* Every code named in spec.h has a name of its own, with the right codes in it. */
static void test_every_enum_named(void **state)
{
	(void)state;
	static const uint16_t codes[] = {
		S(GENERIC, SUCCESS), S(GENERIC, INVALID_OPCODE), S(GENERIC, INVALID_FIELD),
		S(GENERIC, CID_CONFLICT), S(GENERIC, DATA_XFER_ERROR), S(GENERIC, POWER_LOSS),
		S(GENERIC, INTERNAL), S(GENERIC, ABORT_REQ), S(GENERIC, ABORT_SQ_DELETED),
		S(GENERIC, FUSED_FAIL), S(GENERIC, FUSED_MISSING), S(GENERIC, INVALID_NS),
		S(GENERIC, CMD_SEQ_ERROR), S(GENERIC, SGL_INVALID_LAST), S(GENERIC, SGL_INVALID_COUNT),
		S(GENERIC, SGL_INVALID_DATA), S(GENERIC, SGL_INVALID_METADATA),
		S(GENERIC, SGL_INVALID_TYPE), S(GENERIC, CMB_INVALID_USE),
		S(GENERIC, PRP_INVALID_OFFSET), S(GENERIC, ATOMIC_WU_EXCEEDED), S(GENERIC, OP_DENIED),
		S(GENERIC, SGL_INVALID_OFFSET), S(GENERIC, HOSTID_FORMAT), S(GENERIC, KA_EXPIRED),
		S(GENERIC, KA_INVALID), S(GENERIC, ABORT_PREEMPT), S(GENERIC, SANITIZE_FAILED),
		S(GENERIC, SANITIZE_IN_PROGRESS), S(GENERIC, SGL_INVALID_GRANULARITY),
		S(GENERIC, CMD_NOT_SUP_CMB_QUEUE), S(GENERIC, NS_WRITE_PROTECTED),
		S(GENERIC, CMD_INTERRUPTED), S(GENERIC, TRANSIENT_TR_ERR),
		S(GENERIC, PROHIBITED_LOCKDOWN), S(GENERIC, ADMIN_MEDIA_NOT_READY),
		S(GENERIC, LBA_RANGE), S(GENERIC, CAP_EXCEEDED), S(GENERIC, NS_NOT_READY),
		S(GENERIC, RESERVATION_CONFLICT), S(GENERIC, FORMAT_IN_PROGRESS),
		S(CMD, CQ_INVALID), S(CMD, QID_INVALID), S(CMD, QUEUE_SIZE), S(CMD, ABORT_LIMIT),
		S(CMD, AER_LIMIT), S(CMD, FW_SLOT_INVALID), S(CMD, FW_IMAGE_INVALID),
		S(CMD, IV_INVALID), S(CMD, LOG_PAGE_INVALID), S(CMD, FORMAT_INVALID),
		S(CMD, FW_NEEDS_CONV_RESET), S(CMD, QUEUE_DELETION_INVALID),
		S(CMD, FEATURE_NOT_SAVEABLE), S(CMD, FEATURE_NOT_CHANGEABLE),
		S(CMD, FEATURE_NOT_NS_SPECIFIC), S(CMD, FW_NEEDS_NSSR), S(CMD, FW_NEEDS_RESET),
		S(CMD, FW_NEEDS_MAX_TIME), S(CMD, FW_ACTIVATE_PROHIBITED), S(CMD, OVERLAPPING_RANGE),
		S(CMD, NS_INSUFFICIENT_CAP), S(CMD, NS_ID_UNAVAILABLE), S(CMD, NS_ALREADY_ATTACHED),
		S(CMD, NS_IS_PRIVATE), S(CMD, NS_NOT_ATTACHED), S(CMD, THIN_PROV_NOT_SUP),
		S(CMD, CTRL_LIST_INVALID), S(CMD, SELF_TEST_IN_PROGRESS),
		S(CMD, BP_WRITE_PROHIBITED), S(CMD, CTRL_ID_INVALID), S(CMD, SEC_CTRL_STATE_INVALID),
		S(CMD, CTRL_RES_NUM_INVALID), S(CMD, RES_ID_INVALID), S(CMD, PMR_SAN_PROHIBITED),
		S(CMD, ANA_GROUP_ID_INVALID), S(CMD, ANA_ATTACH_FAILED), S(CMD, CONFLICTING_ATTRS),
		S(CMD, INVALID_PI), S(CMD, READ_ONLY),
		S(MEDIA, WRITE_FAULT), S(MEDIA, READ_ERROR), S(MEDIA, GUARD_CHECK),
		S(MEDIA, APPTAG_CHECK), S(MEDIA, REFTAG_CHECK), S(MEDIA, COMPARE_FAILED),
		S(MEDIA, ACCESS_DENIED), S(MEDIA, UNWRITTEN_BLOCK),
		S(PATH, INTERNAL_PATH_ERROR), S(PATH, ANA_PERSISTENT_LOSS), S(PATH, ANA_INACCESSIBLE),
		S(PATH, ANA_TRANSITION), S(PATH, CTRL_PATH_ERROR), S(PATH, HOST_PATH_ERROR),
		S(PATH, HOST_ABORTED_CMD),
	};

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *s = pnvme_status_str(codes[i]);
		char tail[32];

		snprintf(tail, sizeof(tail), " (sct %Xh sc %02Xh)", PNVME_STATUS_SCT(codes[i]),
			 PNVME_STATUS_SC(codes[i]));
		assert_null(strstr(s, "Unknown"));
		assert_true(strlen(s) > strlen(tail));
		assert_string_equal(s + strlen(s) - strlen(tail), tail);
		/* A static string: the same pointer every time. */
		assert_ptr_equal(pnvme_status_str(codes[i]), s);
	}
}

static void test_errno(void **state)
{
	(void)state;
	assert_int_equal(pnvme_status_errno(S(GENERIC, SUCCESS)), 0);
	assert_int_equal(pnvme_status_errno(S(GENERIC, INVALID_OPCODE)), -EOPNOTSUPP);
	assert_int_equal(pnvme_status_errno(S(GENERIC, INVALID_FIELD)), -EINVAL);
	assert_int_equal(pnvme_status_errno(S(CMD, QID_INVALID)), -EINVAL);
	assert_int_equal(pnvme_status_errno(S(CMD, CQ_INVALID)), -EINVAL);
	assert_int_equal(pnvme_status_errno(S(CMD, QUEUE_SIZE)), -EINVAL);
	assert_int_equal(pnvme_status_errno(S(GENERIC, LBA_RANGE)), -ERANGE);
	assert_int_equal(pnvme_status_errno(S(GENERIC, CAP_EXCEEDED)), -ENOSPC);
	assert_int_equal(pnvme_status_errno(S(GENERIC, NS_WRITE_PROTECTED)), -EROFS);
	assert_int_equal(pnvme_status_errno(S(CMD, READ_ONLY)), -EROFS);
	assert_int_equal(pnvme_status_errno(S(MEDIA, ACCESS_DENIED)), -EACCES);
	assert_int_equal(pnvme_status_errno(S(GENERIC, RESERVATION_CONFLICT)), -EBADE);
	assert_int_equal(pnvme_status_errno(S(GENERIC, ABORT_REQ)), -ECANCELED);
	assert_int_equal(pnvme_status_errno(S(GENERIC, ABORT_SQ_DELETED)), -ECANCELED);
	assert_int_equal(pnvme_status_errno(S(PATH, HOST_ABORTED_CMD)), -ECANCELED);
	assert_int_equal(pnvme_status_errno(S(GENERIC, NS_NOT_READY)), -EAGAIN);
	assert_int_equal(pnvme_status_errno(S(MEDIA, GUARD_CHECK)), -EILSEQ);
	assert_int_equal(pnvme_status_errno(S(MEDIA, APPTAG_CHECK)), -EILSEQ);
	assert_int_equal(pnvme_status_errno(S(MEDIA, REFTAG_CHECK)), -EILSEQ);
	assert_int_equal(pnvme_status_errno(S(MEDIA, COMPARE_FAILED)), -EILSEQ);
	assert_int_equal(pnvme_status_errno(S(CMD, LOG_PAGE_INVALID)), -ENOENT);
	assert_int_equal(pnvme_status_errno(S(CMD, FORMAT_INVALID)), -EINVAL);
	assert_int_equal(pnvme_status_errno(S(GENERIC, SANITIZE_IN_PROGRESS)), -EBUSY);
	assert_int_equal(pnvme_status_errno(S(GENERIC, FORMAT_IN_PROGRESS)), -EBUSY);
	/* Everything else is -EIO. */
	assert_int_equal(pnvme_status_errno(S(GENERIC, INTERNAL)), -EIO);
	assert_int_equal(pnvme_status_errno(S(GENERIC, DATA_XFER_ERROR)), -EIO);
	assert_int_equal(pnvme_status_errno(S(MEDIA, READ_ERROR)), -EIO);
	assert_int_equal(pnvme_status_errno(S(MEDIA, WRITE_FAULT)), -EIO);
	assert_int_equal(pnvme_status_errno(S(PATH, HOST_PATH_ERROR)), -EIO);
	assert_int_equal(pnvme_status_errno(PNVME_STATUS(0, 0xff)), -EIO);
	/* Success with DNR set is still success. */
	assert_int_equal(pnvme_status_errno(PNVME_STATUS_DNR), 0);
}

/* Unknown codes are formatted per thread: two threads do not clobber each other. */
static void *unknown_thread(void *arg)
{
	uintptr_t sc = (uintptr_t)arg;
	char want[64];

	snprintf(want, sizeof(want), "Unknown status (sct 6h sc %02Xh)", (unsigned)sc);
	for (int i = 0; i < 10000; i++) {
		const char *s = pnvme_status_str(PNVME_STATUS(6, sc));

		if (strcmp(s, want) != 0)
			return (void *)1;
	}
	return NULL;
}

static void test_unknown_thread_local(void **state)
{
	(void)state;
	pthread_t a, b;
	void *ra, *rb;

	assert_int_equal(pthread_create(&a, NULL, unknown_thread, (void *)(uintptr_t)0x11), 0);
	assert_int_equal(pthread_create(&b, NULL, unknown_thread, (void *)(uintptr_t)0xee), 0);
	pthread_join(a, &ra);
	pthread_join(b, &rb);
	assert_null(ra);
	assert_null(rb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_flags_ignored),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_every_enum_named),
		cmocka_unit_test(test_errno),
		cmocka_unit_test(test_unknown_thread_local),
	};

	return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}
