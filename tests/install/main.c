/* SPDX-License-Identifier: BSD-3-Clause */
/* Installed-package check: include the umbrella header, call the library. */
#include <stdio.h>
#include <string.h>

#include <pnvme/pnvme.h>

int main(void)
{
	const char *s = pnvme_status_str(PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_LBA_RANGE));

	printf("pnvme %s: %s\n", PNVME_VERSION_STRING, s);
	return strcmp(s, "LBA Out of Range (sct 0h sc 80h)") == 0 ? 0 : 1;
}
