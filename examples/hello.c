/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hello - the smallest complete pnvme program: open a controller, print its
 * identity, write one block, read it back and compare.
 *
 *   hello [DEV]     DEV defaults to the built-in emulated drive "emu"
 */
#include <stdio.h>
#include <string.h>

#include <pnvme/pnvme.h>

int main(int argc, char **argv)
{
	const char *dev = argc > 1 ? argv[1] : "emu:size=16M,lba=4096";
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	void *wbuf, *rbuf;
	int rc, ret = 1;

	rc = pnvme_ctrl_open(dev, NULL, &ctrl);
	if (rc) {
		fprintf(stderr, "hello: open %s: %s\n", dev, pnvme_last_error());
		return 1;
	}
	const struct pnvme_id_ctrl *id = pnvme_ctrl_id(ctrl);
	const struct pnvme_ns *ns = pnvme_ctrl_ns_at(ctrl, 0);
	printf("model %.40s serial %.20s firmware %.8s\n", id->mn, id->sn, id->fr);
	if (!ns) {
		fprintf(stderr, "hello: no active namespace\n");
		goto close;
	}
	printf("namespace %u: %llu blocks of %u bytes\n", ns->nsid,
	       (unsigned long long)ns->nlba, ns->lba_size);

	rc = pnvme_qpair_create(ctrl, NULL, &qp);
	if (rc) {
		fprintf(stderr, "hello: queue pair: %s\n", pnvme_last_error());
		goto close;
	}
	if (pnvme_dma_alloc(ctrl, ns->lba_size, 0, &wbuf, NULL) ||
	    pnvme_dma_alloc(ctrl, ns->lba_size, 0, &rbuf, NULL)) {
		fprintf(stderr, "hello: DMA memory: %s\n", pnvme_last_error());
		goto qpair;
	}
	snprintf(wbuf, ns->lba_size, "hello from pnvme %s", PNVME_VERSION_STRING);
	rc = pnvme_write_sync(qp, ns, wbuf, 7, 1, 0);
	if (rc == 0)
		rc = pnvme_read_sync(qp, ns, rbuf, 7, 1, 0);
	if (rc) {
		fprintf(stderr, "hello: I/O: %s\n", pnvme_last_error());
	} else if (memcmp(wbuf, rbuf, ns->lba_size) != 0) {
		fprintf(stderr, "hello: read back differs from what was written\n");
	} else {
		printf("LBA 7 reads back: \"%s\"\n", (char *)rbuf);
		ret = 0;
	}
	pnvme_dma_free(ctrl, wbuf);
	pnvme_dma_free(ctrl, rbuf);
qpair:
	pnvme_qpair_destroy(qp);
close:
	pnvme_ctrl_close(ctrl);
	return ret;
}
