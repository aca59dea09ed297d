/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test_tcp_host.c - pnvme's NVMe/TCP host (src/tcp/tcp_queue.c,
 * tcp_ctrl.c, the transport seam in src/core) against tcp_peer, a strict
 * fake target on 127.0.0.1: bring-up over properties, identify, I/O through
 * in-capsule data, R2T/H2CData and C2HData, digests, discovery, and the
 * failure paths (refused Connect, malformed PDUs, connection loss and
 * reconnect), each request completing exactly once.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pnvme/pnvme.h>

#include "tcp_peer.h"
#include "test_helpers.h"

struct io_done {
	int n;
	int err;
	int calls;
};

static void io_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct io_done *d = arg;

	if (err)
		print_message("completion error %d, status 0x%x\n", err, (unsigned)(cqe->status >> 1));
	d->calls++;
	if (err && !d->err)
		d->err = err;
	d->n++;
}

static char addr_buf[512];

static const char *peer_addr(struct tcp_peer *p, const char *opts)
{
	snprintf(addr_buf, sizeof(addr_buf), "tcp:127.0.0.1:%u/%s%s%s", tcp_peer_port(p),
		 tcp_peer_subnqn(p), opts ? "?" : "", opts ? opts : "");
	return addr_buf;
}

static struct pnvme_ctrl *open_ok(struct tcp_peer *p, const char *opts)
{
	struct pnvme_ctrl *ctrl = NULL;
	int rc = pnvme_ctrl_open(peer_addr(p, opts), NULL, &ctrl);

	if (rc)
		fail_msg("open %s: %d %s", addr_buf, rc, pnvme_last_error());
	return ctrl;
}

/* Wait for `d->n` to reach `want`, polling `qp` (bounded). */
static void wait_n(struct pnvme_qpair *qp, struct io_done *d, int want)
{
	for (int i = 0; i < 2000000 && d->n < want; i++) {
		int rc = pnvme_qpair_poll(qp, 0);
		if (rc < 0 && rc != -EAGAIN)
			break;
	}
}

/* Bring-up over Property Get/Set, Identify with the fabrics fields, shutdown. */
static void test_bringup(void **state)
{
	struct tcp_peer *p = tcp_peer_start(NULL);
	struct tcp_peer_stats st;
	struct pnvme_ctrl *ctrl;

	(void)state;
	assert_non_null(p);
	ctrl = open_ok(p, NULL);
	assert_non_null(ctrl);
	const struct pnvme_id_ctrl *id = pnvme_ctrl_id(ctrl);
	assert_string_equal(id->subnqn, TCP_PEER_DEFAULT_SUBNQN);
	assert_int_equal(id->cntrltype, 1);
	assert_true(id->ioccsz >= 4);
	assert_int_equal(pnvme_ctrl_nr_ns(ctrl), 1);
	assert_int_equal(pnvme_ctrl_ns_at(ctrl, 0)->nlba, 2048);
	assert_true(pnvme_ctrl_max_io_queues(ctrl) >= 1);
	tcp_peer_get_stats(p, &st);
	assert_int_equal(st.connects_ok, 1);
	assert_true(st.last_cc & 1u); /* CC.EN through Property Set */
	assert_int_equal(pnvme_ctrl_close(ctrl), 0);
	tcp_peer_get_stats(p, &st);
	assert_true(st.shutdown); /* CC.SHN at close */
	tcp_peer_stop(p);
}

/* Write and read back every size class: in-capsule, one R2T, R2T > MAXH2CDATA, C2HData. */
static void rw_roundtrip(const struct tcp_peer_cfg *cfg, const char *opts)
{
	struct tcp_peer *p = tcp_peer_start(cfg);
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	const struct pnvme_ns *ns;
	struct io_done d = { 0 };
	size_t nsbytes;
	uint8_t *wbuf, *rbuf;
	static const uint32_t sizes[] = { 1, 8, 16, 17, 64, 128, 255, 256 }; /* blocks */
	uint64_t lba = 0;

	assert_non_null(p);
	ctrl = open_ok(p, opts);
	assert_non_null(ctrl);
	ns = pnvme_ctrl_ns_at(ctrl, 0);
	assert_rc(pnvme_qpair_create(ctrl, NULL, &qp), 0);
	wbuf = malloc(256 * 512);
	rbuf = malloc(256 * 512);
	assert_non_null(wbuf);
	assert_non_null(rbuf);
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint32_t nlb = sizes[i];
		if (nlb > ns->max_lbas)
			nlb = ns->max_lbas;
		test_block_fill(wbuf, (size_t)nlb * 512, lba, 0x1000 + i);
		memset(rbuf, 0, (size_t)nlb * 512);
		d = (struct io_done){ 0 };
		assert_rc(pnvme_write(qp, ns, wbuf, lba, nlb, 0, io_cb, &d), 0);
		wait_n(qp, &d, 1);
		assert_int_equal(d.calls, 1);
		assert_int_equal(d.err, 0);
		assert_rc(pnvme_read(qp, ns, rbuf, lba, nlb, 0, io_cb, &d), 0);
		wait_n(qp, &d, 2);
		assert_int_equal(d.calls, 2);
		assert_int_equal(d.err, 0);
		assert_memory_equal(rbuf, wbuf, (size_t)nlb * 512);
		assert_memory_equal(tcp_peer_ns(p, &nsbytes) + lba * 512, wbuf, (size_t)nlb * 512);
		lba += nlb;
	}
	free(wbuf);
	free(rbuf);
	assert_int_equal(pnvme_qpair_destroy(qp), 0);
	assert_int_equal(pnvme_ctrl_close(ctrl), 0);
	tcp_peer_stop(p);
}

static void test_rw_sizes(void **state)
{
	struct tcp_peer_cfg cfg = { .maxh2cdata = 8192, .r2t_len = 32768, .c2h_max = 4096 };

	(void)state;
	rw_roundtrip(&cfg, NULL);
}

static void test_rw_digests_success_flag(void **state)
{
	struct tcp_peer_cfg cfg = { .maxh2cdata = 16384, .c2h_success = true };

	(void)state;
	rw_roundtrip(&cfg, "hdr_digest=1&data_digest=1");
}

/* Many commands in flight at once: batched capsules, one sendmsg for several. */
static void test_queue_depth(void **state)
{
	struct tcp_peer *p = tcp_peer_start(NULL);
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	struct pnvme_qpair_opts o;
	const struct pnvme_ns *ns;
	struct io_done d = { 0 };
	uint8_t *buf;

	(void)state;
	assert_non_null(p);
	ctrl = open_ok(p, NULL);
	ns = pnvme_ctrl_ns_at(ctrl, 0);
	pnvme_qpair_opts_default(&o);
	o.depth = 64;
	assert_rc(pnvme_qpair_create(ctrl, &o, &qp), 0);
	buf = malloc(64 * 4096);
	for (int i = 0; i < 64; i++) {
		test_block_fill(buf + i * 4096, 4096, (uint64_t)i * 8, 7);
		assert_rc(pnvme_write(qp, ns, buf + i * 4096, (uint64_t)i * 8, 8, 0, io_cb, &d), 0);
	}
	pnvme_qpair_flush(qp);
	wait_n(qp, &d, 64);
	assert_int_equal(d.calls, 64);
	assert_int_equal(d.err, 0);
	for (int i = 0; i < 64; i++)
		assert_true(test_block_is(tcp_peer_ns(p, NULL) + (size_t)i * 4096, 4096, (uint64_t)i * 8, 7));
	free(buf);
	pnvme_qpair_destroy(qp);
	pnvme_ctrl_close(ctrl);
	tcp_peer_stop(p);
}

/* Refusals: wrong subsystem, a host not on the allow list, no listener. */
static void test_connect_refused(void **state)
{
	struct tcp_peer_cfg cfg = { .hostnqn = "nqn.2014-08.org.example:allowed" };
	struct tcp_peer *p = tcp_peer_start(&cfg);
	struct pnvme_ctrl *ctrl = NULL;
	char a[512];
	int rc;

	(void)state;
	assert_non_null(p);
	rc = pnvme_ctrl_open(peer_addr(p, NULL), NULL, &ctrl);
	assert_true(rc < 0);
	assert_null(ctrl);
	assert_non_null(strstr(pnvme_last_error(), "invalid host"));
	ctrl = open_ok(p, "hostnqn=nqn.2014-08.org.example:allowed");
	assert_non_null(ctrl);
	pnvme_ctrl_close(ctrl);
	ctrl = NULL;
	snprintf(a, sizeof(a), "tcp:127.0.0.1:%u/nqn.2014-08.org.example:nosuch?hostnqn="
		 "nqn.2014-08.org.example:allowed", tcp_peer_port(p));
	rc = pnvme_ctrl_open(a, NULL, &ctrl);
	assert_true(rc < 0);
	assert_non_null(strstr(pnvme_last_error(), "invalid parameters"));
	tcp_peer_stop(p);
	/* nothing listens there any more */
	rc = pnvme_ctrl_open(a, NULL, &ctrl);
	assert_int_equal(rc, -ECONNREFUSED);
	assert_non_null(strstr(pnvme_last_error(), "cannot connect"));
}

/* Address grammar errors are refused before any connection. */
static void test_address_grammar(void **state)
{
	struct pnvme_ctrl *ctrl = NULL;

	(void)state;
	assert_int_equal(pnvme_ctrl_open("tcp:127.0.0.1:4420", NULL, &ctrl), -EINVAL);
	assert_non_null(strstr(pnvme_last_error(), "NQN is missing"));
	assert_int_equal(pnvme_ctrl_open("tcp:127.0.0.1:99999/nqn.x", NULL, &ctrl), -EINVAL);
	assert_int_equal(pnvme_ctrl_open("tcp:127.0.0.1/nqn.x?bogus=1", NULL, &ctrl), -EINVAL);
	assert_non_null(strstr(pnvme_last_error(), "unknown option 'bogus'"));
	assert_int_equal(pnvme_ctrl_open("tcp:127.0.0.1/nqn.x?hdr_digest=maybe", NULL, &ctrl),
			 -EINVAL);
	assert_int_equal(pnvme_ctrl_open("tcp:[::1/nqn.x", NULL, &ctrl), -EINVAL);
	assert_null(ctrl);
}

/* Discovery: the log page's entries, decoded, with the generation counter. */
static void test_discovery(void **state)
{
	static const struct tcp_peer_disc_entry ents[] = {
		{ .trtype = 3, .adrfam = 1, .subtype = 2, .portid = 1, .cntlid = 0xffff,
		  .asqsz = 32, .trsvcid = "4420", .traddr = "127.0.0.1",
		  .subnqn = "nqn.2014-08.org.example:one" },
		{ .trtype = 3, .adrfam = 1, .subtype = 2, .portid = 2, .cntlid = 0xffff,
		  .asqsz = 32, .trsvcid = "4421", .traddr = "10.0.0.2",
		  .subnqn = "nqn.2014-08.org.example:two" },
	};
	struct tcp_peer_cfg cfg = { .disc = ents, .n_disc = 2, .genctr = 7 };
	struct tcp_peer *p = tcp_peer_start(&cfg);
	struct pnvme_disc_entry *e = NULL;
	uint32_t n = 0;
	uint64_t gen = 0;
	char a[64];

	(void)state;
	assert_non_null(p);
	snprintf(a, sizeof(a), "127.0.0.1:%u", tcp_peer_port(p));
	assert_rc(pnvme_discover(a, &e, &n, &gen), 0);
	assert_int_equal(n, 2);
	assert_int_equal(gen, 7);
	assert_string_equal(e[0].subnqn, "nqn.2014-08.org.example:one");
	assert_string_equal(e[1].traddr, "10.0.0.2");
	assert_string_equal(e[1].trsvcid, "4421");
	assert_int_equal(e[1].portid, 2);
	assert_string_equal(pnvme_trtype_str(e[0].trtype), "tcp");
	pnvme_disc_free(e);
	/* a subsystem NQN in a discovery address is refused */
	snprintf(a, sizeof(a), "127.0.0.1:%u/nqn.x", tcp_peer_port(p));
	assert_int_equal(pnvme_discover(a, &e, &n, &gen), -EINVAL);
	tcp_peer_stop(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address_grammar),
		cmocka_unit_test(test_bringup),
		cmocka_unit_test(test_rw_sizes),
		cmocka_unit_test(test_rw_digests_success_flag),
		cmocka_unit_test(test_queue_depth),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_discovery),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
