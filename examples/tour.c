/* SPDX-License-Identifier: BSD-3-Clause */
/* tour - the README's API tour: a batch of writes, one doorbell, a read back. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <pnvme/pnvme.h>

struct batch { unsigned done, failed; };

static void write_done(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct batch *b = arg;
	if (err) {   /* a negative errno; the device's full NVMe status is in the CQE */
		fprintf(stderr, "write: %s (%s)\n", strerror(-err),
			pnvme_status_str(PNVME_CQE_STATUS(cqe)));
		b->failed++;
	}
	b->done++;
}

int main(int argc, char **argv)
{
	const char *dev = argc > 1 ? argv[1] : "emu:size=64M,lba=4096"; /* or "0000:01:00.0" */
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	struct batch b = { 0, 0 };
	void *buf;
	int rc;

	if (pnvme_ctrl_open(dev, NULL, &ctrl) != 0) {
		fprintf(stderr, "%s: %s\n", dev, pnvme_last_error());
		return 1;
	}
	const struct pnvme_ns *ns = pnvme_ctrl_ns_at(ctrl, 0);  /* first active namespace */
	if (!ns) {
		fprintf(stderr, "%s: no active namespace\n", dev);
		pnvme_ctrl_close(ctrl);
		return 1;
	}
	unsigned n = ns->nlba < 64 ? (unsigned)ns->nlba : 64;   /* namespaces may be tiny */
	if ((rc = pnvme_qpair_create(ctrl, NULL, &qp)) != 0 ||  /* one queue pair per thread */
	    (rc = pnvme_dma_alloc(ctrl, (size_t)n * ns->lba_size, 0, &buf, NULL)) != 0)
		goto out;                                 /* ^ memory the device can reach */
	memset(buf, 0x5a, (size_t)n * ns->lba_size);

	for (unsigned i = 0; i < n && rc == 0; i++) {  /* post n writes: no doorbell yet */
		void *p = (char *)buf + (size_t)i * ns->lba_size;
		while ((rc = pnvme_write(qp, ns, p, i, 1, 0, write_done, &b)) == -EAGAIN)
			if ((rc = pnvme_qpair_poll(qp, 0)) < 0)   /* queue full: reap, retry */
				break;
	}
	while (rc >= 0 && b.done < n)                  /* one SQ doorbell, then reap */
		rc = pnvme_qpair_poll(qp, 0);
	if (rc < 0 || b.failed)
		goto out;

	memset(buf, 0, ns->lba_size);                  /* sync helpers for simple code */
	if ((rc = pnvme_read_sync(qp, ns, buf, n - 1, 1, 0)) != 0)
		goto out;
	bool same = ((unsigned char *)buf)[ns->lba_size - 1] == 0x5a;
	printf("%u blocks written; block %u reads back %s\n", n, n - 1,
	       same ? "as written" : "CHANGED");
	b.failed += !same;
	pnvme_dma_free(ctrl, buf);
	rc = pnvme_qpair_destroy(qp);
out:
	if (rc < 0)
		fprintf(stderr, "%s\n", pnvme_last_error());
	int crc = pnvme_ctrl_close(ctrl);             /* CC.SHN shutdown; frees the rest */
	return rc < 0 || crc < 0 || b.failed ? 1 : 0;
}
