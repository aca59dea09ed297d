// SPDX-License-Identifier: BSD-3-Clause
//
// The public headers from C++: tests/test_cxx_headers.sh builds this with
// g++ -Wall -Wextra -Werror -pedantic against libpnvme.so and runs it. It uses
// the macros (status, register fields, flags) and the structs the way a C++
// program would, then does one write and read on an emulated controller.
#include <pnvme/pnvme.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace {

struct result {
	bool done;
	int err;
};

extern "C" void on_done(void *arg, int err, const struct pnvme_cqe *cqe)
{
	result *r = static_cast<result *>(arg);
	r->done = true;
	r->err = err;
	(void)cqe;
}

int fail(const char *what, int rc)
{
	std::fprintf(stderr, "cxx: %s: %d (%s)\n", what, rc, pnvme_last_error());
	return 1;
}

} // namespace

int main()
{
	static_assert(sizeof(pnvme_sqe) == 64, "SQE from C++");
	const uint16_t st = PNVME_STATUS(PNVME_SCT_GENERIC, PNVME_SC_LBA_RANGE);
	if (pnvme_status_errno(st) != -ERANGE)
		return fail("status errno", pnvme_status_errno(st));
	if (std::strcmp(pnvme_version(), PNVME_VERSION_STRING) != 0)
		return fail("version", 0);

	pnvme_ctrl_opts co;
	pnvme_ctrl_opts_default(&co);
	co.flags = PNVME_CTRL_SHADOW_DB;
	pnvme_ctrl *ctrl = nullptr;
	int rc = pnvme_ctrl_open("emu:size=1M,lba=4096", &co, &ctrl);
	if (rc)
		return fail("open", rc);
	const unsigned mqes = static_cast<unsigned>(PNVME_GET(pnvme_ctrl_cap(ctrl), PNVME_CAP_MQES));
	const pnvme_ns *ns = pnvme_ctrl_ns(ctrl, 1);

	pnvme_qpair_opts qo;
	pnvme_qpair_opts_default(&qo);
	qo.depth = 4;
	qo.flags = PNVME_QPAIR_DB_IMMEDIATE | PNVME_QPAIR_LAZY_CQ_DB;
	pnvme_qpair *qp = nullptr;
	rc = pnvme_qpair_create(ctrl, &qo, &qp);
	if (rc || mqes == 0 || !ns)
		return fail("qpair", rc);
	if (pnvme_qpair_depth(qp) != 4)
		return fail("depth", static_cast<int>(pnvme_qpair_depth(qp)));

	void *buf = nullptr;
	rc = pnvme_dma_alloc(ctrl, ns->lba_size, 0, &buf, nullptr);
	if (rc)
		return fail("dma", rc);
	std::memset(buf, 0x5a, ns->lba_size);
	result r = { false, 0 };
	rc = pnvme_write(qp, ns, buf, 1, 1, PNVME_IO_FUA, on_done, &r);
	while (rc == 0 && !r.done) {
		int n = pnvme_qpair_poll(qp, 0);
		if (n < 0)
			rc = n;
	}
	if (rc || r.err)
		return fail("write", rc ? rc : r.err);
	std::memset(buf, 0, ns->lba_size);
	rc = pnvme_read_sync(qp, ns, buf, 1, 1, 0);
	if (rc || static_cast<unsigned char *>(buf)[7] != 0x5a)
		return fail("read", rc);

	pnvme_dma_free(ctrl, buf);
	if ((rc = pnvme_qpair_destroy(qp)) != 0)
		return fail("qpair destroy", rc);
	if ((rc = pnvme_ctrl_close(ctrl)) != 0)
		return fail("close", rc);
	std::printf("cxx: pnvme %s from C++: write, read back, close: ok\n", pnvme_version());
	return 0;
}
