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
#include <time.h>
#include <pthread.h>
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

/* ------------------------------------------------------------------------ */
/* Failure paths                                                            */
/*                                                                          */
/* Each case arms one peer fault while many requests are outstanding and    */
/* checks: the precise reason reaches the log, every request's callback     */
/* runs exactly once, the controller reconnects (or reports dead after the  */
/* loss timeout) and new I/O works. Bounds are generous (loaded machines).  */
/* ------------------------------------------------------------------------ */

#define NREQ 32
#define REQ_BLOCKS 8 /* 4 KiB per request */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Every WARN or worse message the library logs, kept for the assertions. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[65536];
static size_t log_len;

static void log_sink(void *arg, enum pnvme_log_level level, const char *msg)
{
	size_t n = strlen(msg);

	(void)arg;
	(void)level;
	pthread_mutex_lock(&log_lock);
	if (log_len + n + 2 < sizeof(log_text)) {
		memcpy(log_text + log_len, msg, n);
		log_len += n;
		log_text[log_len++] = '\n';
		log_text[log_len] = 0;
	}
	pthread_mutex_unlock(&log_lock);
}

static void log_start(void)
{
	pthread_mutex_lock(&log_lock);
	log_len = 0;
	log_text[0] = 0;
	pthread_mutex_unlock(&log_lock);
	pnvme_set_log(log_sink, NULL, PNVME_LOG_WARN);
}

static void log_stop(void)
{
	pnvme_set_log(NULL, NULL, PNVME_LOG_ERR);
}

static void assert_logged(const char *want)
{
	bool found;

	pthread_mutex_lock(&log_lock);
	found = strstr(log_text, want) != NULL;
	pthread_mutex_unlock(&log_lock);
	if (!found)
		fail_msg("expected '%s' in the log; the log was:\n%s", want, log_text);
}

/* One request of a batch: how often its callback ran and with what. */
struct req {
	int calls;
	int err;
};

static void req_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct req *r = arg;

	(void)cqe;
	r->calls++;
	r->err = err;
}

static bool reqs_done(const struct req *r, int n)
{
	for (int i = 0; i < n; i++)
		if (r[i].calls == 0)
			return false;
	return true;
}

/* Poll until every request completed (at most `ms`), then a little longer to catch doubles. */
static void poll_reqs(struct pnvme_qpair *qp, const struct req *r, int n, unsigned ms)
{
	uint64_t end = mono_ms() + ms;

	while (!reqs_done(r, n) && mono_ms() < end)
		(void)pnvme_qpair_poll(qp, 0);
	end = mono_ms() + 100;
	while (mono_ms() < end)
		(void)pnvme_qpair_poll(qp, 0);
}

static void assert_each_once(const struct req *r, int n)
{
	for (int i = 0; i < n; i++)
		if (r[i].calls != 1)
			fail_msg("request %d: callback ran %d times (want exactly 1)", i, r[i].calls);
}

/* A write and a read back through `qp` work (the controller is usable again). */
static void assert_io_works(struct tcp_peer *p, struct pnvme_qpair *qp, const struct pnvme_ns *ns)
{
	uint8_t *w = malloc(4096), *rd = malloc(4096);
	struct req r[2] = { 0 };
	uint64_t lba = 1000;

	assert_non_null(w);
	assert_non_null(rd);
	test_block_fill(w, 4096, lba, 0xabc);
	memset(rd, 0, 4096);
	assert_rc(pnvme_write(qp, ns, w, lba, REQ_BLOCKS, 0, req_cb, &r[0]), 0);
	poll_reqs(qp, r, 1, 20000);
	assert_int_equal(r[0].calls, 1);
	assert_int_equal(r[0].err, 0);
	assert_rc(pnvme_read(qp, ns, rd, lba, REQ_BLOCKS, 0, req_cb, &r[1]), 0);
	poll_reqs(qp, r + 1, 1, 20000);
	assert_int_equal(r[1].calls, 1);
	assert_int_equal(r[1].err, 0);
	assert_memory_equal(rd, w, 4096);
	assert_memory_equal(tcp_peer_ns(p, NULL) + lba * 512, w, 4096);
	free(w);
	free(rd);
}

struct fault_case {
	enum tcp_peer_fault fault;
	uint32_t arg;
	struct tcp_peer_cfg cfg;
	const char *opts;      /* more address options ("hdr_digest=1") */
	bool write;            /* the batch writes (else reads) */
	uint32_t retries;      /* qpair max_retries */
	const char *want_log;  /* part of the reason the log must give */
	bool link_survives;    /* a per-command error: no reconnect */
};

/* Open a controller that reconnects at once and gives up after 10 s. */
static struct pnvme_ctrl *open_recon(struct tcp_peer *p, const char *more)
{
	char o[256];

	snprintf(o, sizeof(o), "reconnect_delay=0&ctrl_loss_tmo=10%s%s", more ? "&" : "",
		 more ? more : "");
	return open_ok(p, o);
}

static void run_fault_case(const struct fault_case *fc)
{
	struct tcp_peer *p = tcp_peer_start(&fc->cfg);
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	struct pnvme_qpair_opts o;
	const struct pnvme_ns *ns;
	struct tcp_peer_stats st;
	struct req r[NREQ];
	uint8_t *buf;
	uint32_t resets0;
	int failed = 0;

	assert_non_null(p);
	ctrl = open_recon(p, fc->opts);
	assert_non_null(ctrl);
	ns = pnvme_ctrl_ns_at(ctrl, 0);
	pnvme_qpair_opts_default(&o);
	o.depth = 64;
	o.max_retries = fc->retries;
	assert_rc(pnvme_qpair_create(ctrl, &o, &qp), 0);
	buf = malloc((size_t)NREQ * 4096);
	assert_non_null(buf);
	/* Known contents: reads that are retried must still return the right data. */
	for (int i = 0; i < NREQ; i++) {
		uint64_t lba = (uint64_t)i * REQ_BLOCKS;
		test_block_fill(fc->write ? buf + i * 4096 : tcp_peer_ns(p, NULL) + lba * 512, 4096,
				lba, 0x77);
	}
	if (!fc->write)
		memset(buf, 0, (size_t)NREQ * 4096);
	resets0 = pnvme_ctrl_resets(ctrl);
	log_start();
	tcp_peer_reset_stats(p);
	tcp_peer_set_fault(p, fc->fault, 1, pnvme_qpair_id(qp), fc->arg);
	memset(r, 0, sizeof(r));
	for (int i = 0; i < NREQ; i++) {
		uint64_t lba = (uint64_t)i * REQ_BLOCKS;
		if (fc->write)
			assert_rc(pnvme_write(qp, ns, buf + i * 4096, lba, REQ_BLOCKS, 0, req_cb, &r[i]), 0);
		else
			assert_rc(pnvme_read(qp, ns, buf + i * 4096, lba, REQ_BLOCKS, 0, req_cb, &r[i]), 0);
	}
	pnvme_qpair_flush(qp);
	poll_reqs(qp, r, NREQ, 30000);
	assert_each_once(r, NREQ);
	tcp_peer_get_stats(p, &st);
	assert_true(st.faults_fired[fc->fault] >= 1);
	for (int i = 0; i < NREQ; i++) {
		if (r[i].err) {
			failed++;
			/* A retried request or one cut off by the reconnect: -EIO, nothing else. */
			if (r[i].err != -EIO)
				fail_msg("request %d failed with %d (%s)", i, r[i].err, strerror(-r[i].err));
		} else if (!fc->write) {
			uint64_t lba = (uint64_t)i * REQ_BLOCKS;
			assert_true(test_block_is(buf + i * 4096, 4096, lba, 0x77));
		}
	}
	if (fc->link_survives) {
		assert_int_equal(pnvme_ctrl_resets(ctrl), resets0);
		assert_int_equal(failed, 1);
	} else {
		assert_true(pnvme_ctrl_resets(ctrl) > resets0);
		if (fc->retries)
			assert_int_equal(failed, 0);
		else
			assert_true(failed >= 1);
	}
	if (fc->want_log)
		assert_logged(fc->want_log);
	log_stop();
	tcp_peer_clear_faults(p);
	assert_false(pnvme_ctrl_is_dead(ctrl));
	assert_io_works(p, qp, ns);
	free(buf);
	assert_int_equal(pnvme_qpair_destroy(qp), 0);
	assert_int_equal(pnvme_ctrl_close(ctrl), 0);
	tcp_peer_stop(p);
}

static void test_fault_wrong_cccid(void **state)
{
	struct fault_case fc = { .fault = TCP_PEER_FAULT_WRONG_CCCID,
				 .want_log = "malformed PDU from the target (invalid PDU header field)" };

	(void)state;
	run_fault_case(&fc);
	fc.retries = 1; /* the same, every request retried after the reconnect */
	run_fault_case(&fc);
}

static void test_fault_unknown_cccid(void **state)
{
	struct fault_case fc = { .fault = TCP_PEER_FAULT_UNKNOWN_CCCID, .write = true,
				 .want_log = "malformed PDU from the target (invalid PDU header field)" };

	(void)state;
	run_fault_case(&fc);
}

static void test_fault_dup_resp(void **state)
{
	struct fault_case fc = { .fault = TCP_PEER_FAULT_DUP_RESP, .retries = 2,
				 .want_log = "malformed PDU from the target (invalid PDU header field)" };

	(void)state;
	run_fault_case(&fc);
}

static void test_fault_r2t_for_read(void **state)
{
	struct fault_case fc = { .fault = TCP_PEER_FAULT_R2T_FOR_READ,
				 .want_log = "malformed PDU from the target (invalid PDU header field)" };

	(void)state;
	run_fault_case(&fc);
}

static void test_fault_c2h_out_of_range(void **state)
{
	struct fault_case fc = { .fault = TCP_PEER_FAULT_C2H_OUT_OF_RANGE, .retries = 1,
				 .want_log = "malformed PDU from the target (data transfer out of range)" };

	(void)state;
	run_fault_case(&fc);
}

static void test_fault_bad_framing(void **state)
{
	struct fault_case fc = { 0 };

	(void)state;
	fc.fault = TCP_PEER_FAULT_BAD_PDU_TYPE;
	fc.want_log = "malformed PDU from the target (invalid PDU type)";
	run_fault_case(&fc);
	fc.fault = TCP_PEER_FAULT_BAD_HLEN;
	fc.want_log = "malformed PDU from the target (invalid header length (HLEN))";
	run_fault_case(&fc);
	fc.fault = TCP_PEER_FAULT_BAD_PDO; /* data PDUs only: C2HData of the reads */
	fc.want_log = "malformed PDU from the target (invalid data offset (PDO))";
	run_fault_case(&fc);
	fc.fault = TCP_PEER_FAULT_BAD_PLEN;
	fc.want_log = "malformed PDU from the target (invalid PDU length (PLEN))";
	fc.write = true;
	run_fault_case(&fc);
}

static void test_fault_hdgst(void **state)
{
	struct fault_case fc = { .fault = TCP_PEER_FAULT_HDGST, .opts = "hdr_digest=1",
				 .want_log = "malformed PDU from the target (header digest error)" };

	(void)state;
	run_fault_case(&fc);
}

/* A data digest error fails the one command with a transport error; the link stays. */
static void test_fault_ddgst(void **state)
{
	struct fault_case fc = { .fault = TCP_PEER_FAULT_DDGST, .opts = "data_digest=1",
				 .link_survives = true };

	(void)state;
	run_fault_case(&fc);
}

static void test_fault_term_req(void **state)
{
	struct fault_case fc = { .fault = TCP_PEER_FAULT_TERM_REQ, .arg = 2 /* PDU sequence error */,
				 .retries = 1,
				 .want_log = "the target terminated the connection: PDU Sequence Error" };

	(void)state;
	run_fault_case(&fc);
}

static void test_fault_close_after(void **state)
{
	struct fault_case fc = { .fault = TCP_PEER_FAULT_CLOSE_AFTER, .arg = 5,
				 .want_log = "connection reset by the target" };

	(void)state;
	run_fault_case(&fc);
	fc.write = true;
	fc.retries = 1;
	run_fault_case(&fc);
}

/* Open fails with the reason when the first connection is refused at the transport level. */
static void test_open_failures(void **state)
{
	struct tcp_peer *p = tcp_peer_start(NULL);
	struct pnvme_ctrl *ctrl = NULL;
	struct pnvme_qpair *qp = NULL;
	int rc;

	(void)state;
	assert_non_null(p);
	tcp_peer_set_fault(p, TCP_PEER_FAULT_ICRESP_PFV, 1, TCP_PEER_ANY_QID, 0);
	rc = pnvme_ctrl_open(peer_addr(p, NULL), NULL, &ctrl);
	assert_int_equal(rc, -EPROTO);
	assert_null(ctrl);
	assert_non_null(strstr(pnvme_last_error(), "ICResp: PDU format version 1, only 0 is known"));

	tcp_peer_set_fault(p, TCP_PEER_FAULT_CONNECT_STATUS, 1, 0, 0x81);
	rc = pnvme_ctrl_open(peer_addr(p, NULL), NULL, &ctrl);
	assert_true(rc < 0);
	assert_null(ctrl);
	assert_non_null(strstr(pnvme_last_error(), "refused the Connect of queue 0"));
	assert_non_null(strstr(pnvme_last_error(), "controller busy"));

	tcp_peer_set_fault(p, TCP_PEER_FAULT_TERM_REQ, 1, TCP_PEER_ANY_QID, 0);
	rc = pnvme_ctrl_open(peer_addr(p, NULL), NULL, &ctrl);
	assert_int_equal(rc, -ECONNRESET);
	assert_null(ctrl);
	assert_non_null(strstr(pnvme_last_error(),
			       "the target terminated the connection: Invalid PDU Header Field"));

	/* An I/O queue's Connect refused: the queue pair is not created, the controller works. */
	ctrl = open_ok(p, NULL);
	tcp_peer_set_fault(p, TCP_PEER_FAULT_CONNECT_STATUS, 1, 1, 0x81);
	rc = pnvme_qpair_create(ctrl, NULL, &qp);
	assert_true(rc < 0);
	assert_null(qp);
	assert_non_null(strstr(pnvme_last_error(), "refused the Connect of queue 1"));
	assert_non_null(strstr(pnvme_last_error(), "controller busy"));
	assert_rc(pnvme_qpair_create(ctrl, NULL, &qp), 0);
	assert_io_works(p, qp, pnvme_ctrl_ns_at(ctrl, 0));
	pnvme_qpair_destroy(qp);
	pnvme_ctrl_close(ctrl);
	tcp_peer_stop(p);
}

/* Submit NREQ reads or writes of 4 KiB at lba i * 8 from buf. */
static void submit_batch(struct pnvme_qpair *qp, const struct pnvme_ns *ns, uint8_t *buf,
			 bool write, struct req *r)
{
	memset(r, 0, sizeof(*r) * NREQ);
	for (int i = 0; i < NREQ; i++) {
		uint64_t lba = (uint64_t)i * REQ_BLOCKS;
		if (write)
			assert_rc(pnvme_write(qp, ns, buf + i * 4096, lba, REQ_BLOCKS, 0, req_cb, &r[i]), 0);
		else
			assert_rc(pnvme_read(qp, ns, buf + i * 4096, lba, REQ_BLOCKS, 0, req_cb, &r[i]), 0);
	}
	pnvme_qpair_flush(qp);
}

/*
 * The target's port goes away (every connection reset) with many requests
 * outstanding, and the first reconnects are refused with "controller busy":
 * the controller retries every reconnect_delay, the requests are retried once
 * connected again, each completes exactly once with the right data.
 */
static void test_kill_reconnect_busy(void **state)
{
	struct tcp_peer *p = tcp_peer_start(NULL);
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	struct pnvme_qpair_opts o;
	const struct pnvme_ns *ns;
	struct tcp_peer_stats st;
	struct req r[NREQ];
	uint8_t *buf = malloc((size_t)NREQ * 4096);
	uint32_t resets0;
	uint64_t t0;

	(void)state;
	assert_non_null(p);
	assert_non_null(buf);
	ctrl = open_ok(p, "reconnect_delay=1&ctrl_loss_tmo=20");
	ns = pnvme_ctrl_ns_at(ctrl, 0);
	pnvme_qpair_opts_default(&o);
	o.depth = 64;
	o.max_retries = 1;
	assert_rc(pnvme_qpair_create(ctrl, &o, &qp), 0);
	for (int i = 0; i < NREQ; i++)
		test_block_fill(buf + i * 4096, 4096, (uint64_t)i * REQ_BLOCKS, 0x99);
	resets0 = pnvme_ctrl_resets(ctrl);
	log_start();
	/* Let the peer take the commands, then cut every connection under them. */
	tcp_peer_set_fault(p, TCP_PEER_FAULT_SWALLOW, NREQ, pnvme_qpair_id(qp), 0);
	submit_batch(qp, ns, buf, true, r);
	for (uint64_t end = mono_ms() + 10000; mono_ms() < end;) {
		(void)pnvme_qpair_poll(qp, 0);
		tcp_peer_get_stats(p, &st);
		if (st.faults_fired[TCP_PEER_FAULT_SWALLOW] == NREQ)
			break;
	}
	assert_int_equal(pnvme_qpair_outstanding(qp), NREQ);
	tcp_peer_set_fault(p, TCP_PEER_FAULT_CONNECT_STATUS, 2, 0, 0x81);
	assert_true(tcp_peer_kill_connections(p) >= 2);
	t0 = mono_ms();
	poll_reqs(qp, r, NREQ, 30000);
	assert_each_once(r, NREQ);
	for (int i = 0; i < NREQ; i++)
		assert_int_equal(r[i].err, 0);
	for (int i = 0; i < NREQ; i++)
		assert_true(test_block_is(tcp_peer_ns(p, NULL) + (size_t)i * 4096, 4096,
					  (uint64_t)i * REQ_BLOCKS, 0x99));
	/* Two refusals, one second apart each: the third attempt worked. */
	assert_true(mono_ms() - t0 >= 1500);
	tcp_peer_get_stats(p, &st);
	assert_int_equal(st.faults_fired[TCP_PEER_FAULT_CONNECT_STATUS], 2);
	assert_int_equal(pnvme_ctrl_resets(ctrl), resets0 + 1);
	/* The kill reads as a reset (RST) or an end of stream, depending on timing. */
	assert_logged("NVMe/TCP queue 1: ");
	assert_logged("refused the Connect of queue 0 for " TCP_PEER_DEFAULT_SUBNQN
		      ": controller busy");
	log_stop();
	assert_false(pnvme_ctrl_is_dead(ctrl));
	assert_io_works(p, qp, ns);
	free(buf);
	pnvme_qpair_destroy(qp);
	pnvme_ctrl_close(ctrl);
	tcp_peer_stop(p);
}

/*
 * The target goes away for good with requests outstanding: reconnects fail
 * until ctrl_loss_tmo, then the controller is dead; every request completes
 * exactly once with an error, new submissions fail with -ENODEV, close works.
 */
static void test_peer_gone_dead(void **state)
{
	struct tcp_peer *p = tcp_peer_start(NULL);
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	struct pnvme_qpair_opts o;
	const struct pnvme_ns *ns;
	struct tcp_peer_stats st;
	struct req r[NREQ], late = { 0 };
	uint8_t *buf = malloc((size_t)NREQ * 4096);
	uint64_t t0, took;
	int rc;

	(void)state;
	assert_non_null(p);
	assert_non_null(buf);
	ctrl = open_ok(p, "reconnect_delay=1&ctrl_loss_tmo=2");
	ns = pnvme_ctrl_ns_at(ctrl, 0);
	pnvme_qpair_opts_default(&o);
	o.depth = 64;
	o.max_retries = 3;
	assert_rc(pnvme_qpair_create(ctrl, &o, &qp), 0);
	log_start();
	tcp_peer_set_fault(p, TCP_PEER_FAULT_SWALLOW, NREQ, pnvme_qpair_id(qp), 0);
	submit_batch(qp, ns, buf, false, r);
	for (uint64_t end = mono_ms() + 10000; mono_ms() < end;) {
		(void)pnvme_qpair_poll(qp, 0);
		tcp_peer_get_stats(p, &st);
		if (st.faults_fired[TCP_PEER_FAULT_SWALLOW] == NREQ)
			break;
	}
	tcp_peer_stop(p);
	t0 = mono_ms();
	poll_reqs(qp, r, NREQ, 30000);
	took = mono_ms() - t0;
	assert_each_once(r, NREQ);
	for (int i = 0; i < NREQ; i++)
		if (r[i].err != -ENODEV && r[i].err != -EIO)
			fail_msg("request %d ended with %d, want -ENODEV or -EIO", i, r[i].err);
	assert_true(pnvme_ctrl_is_dead(ctrl));
	assert_true(took < 20000); /* the 2 s loss timeout, with room for a loaded machine */
	assert_logged("cannot connect to 127.0.0.1");
	log_stop();
	rc = pnvme_read(qp, ns, buf, 0, REQ_BLOCKS, 0, req_cb, &late);
	if (rc == 0) {
		poll_reqs(qp, &late, 1, 5000);
		assert_int_equal(late.calls, 1);
		assert_int_equal(late.err, -ENODEV);
	} else {
		assert_int_equal(rc, -ENODEV);
		assert_int_equal(late.calls, 0);
	}
	free(buf);
	pnvme_qpair_destroy(qp);
	pnvme_ctrl_close(ctrl);
}

/*
 * Reconnect attempts never block a poll: with the target gone, each
 * pnvme_qpair_poll() returns at once (the attempts run between polls, one
 * every reconnect_delay), the application can close the controller in the
 * middle of it, and the close returns 0.
 */
static void test_reconnect_polls_do_not_block(void **state)
{
	struct tcp_peer *p = tcp_peer_start(NULL);
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	uint64_t worst = 0, end;
	uint32_t resets;

	(void)state;
	assert_non_null(p);
	ctrl = open_ok(p, "reconnect_delay=1&ctrl_loss_tmo=30");
	assert_rc(pnvme_qpair_create(ctrl, NULL, &qp), 0);
	resets = pnvme_ctrl_resets(ctrl);
	tcp_peer_stop(p);
	/* 4 s of polling: about 4 refused attempts; the blocking design slept 1 s in a poll */
	for (end = mono_ms() + 4000; mono_ms() < end;) {
		uint64_t t = mono_ms();
		(void)pnvme_qpair_poll(qp, 0);
		t = mono_ms() - t;
		if (t > worst)
			worst = t;
	}
	assert_true(pnvme_ctrl_resets(ctrl) == resets + 1);
	assert_false(pnvme_ctrl_is_dead(ctrl));
	assert_true(worst < 700); /* a refused connect takes microseconds; 700 ms is slack */
	assert_int_equal(pnvme_qpair_destroy(qp), 0);
	assert_int_equal(pnvme_ctrl_close(ctrl), 0);
}

/*
 * The timeout ladder over TCP: a read the target never answers passes its
 * deadline, gets an Abort (the peer answers "not aborted"), the Abort does
 * not settle it within the admin timeout, the controller reconnects. The
 * swallowed read ends exactly once with -ETIMEDOUT; the others complete.
 */
static void timeout_ladder(uint32_t retries)
{
	struct tcp_peer *p = tcp_peer_start(NULL);
	struct pnvme_ctrl_opts co;
	struct pnvme_ctrl *ctrl = NULL;
	struct pnvme_qpair *qp;
	struct pnvme_qpair_opts o;
	const struct pnvme_ns *ns;
	struct tcp_peer_stats st;
	struct req r[NREQ];
	uint8_t *buf = malloc((size_t)NREQ * 4096);
	uint32_t resets0;
	int timed_out = 0;

	assert_non_null(p);
	assert_non_null(buf);
	pnvme_ctrl_opts_default(&co);
	co.admin_timeout_ms = 1000;
	assert_rc(pnvme_ctrl_open(peer_addr(p, "reconnect_delay=0&ctrl_loss_tmo=10"), &co, &ctrl), 0);
	ns = pnvme_ctrl_ns_at(ctrl, 0);
	pnvme_qpair_opts_default(&o);
	o.depth = 64;
	o.timeout_ms = 300;
	o.max_retries = retries;
	assert_rc(pnvme_qpair_create(ctrl, &o, &qp), 0);
	for (int i = 0; i < NREQ; i++)
		test_block_fill(tcp_peer_ns(p, NULL) + (size_t)i * 4096, 4096,
				(uint64_t)i * REQ_BLOCKS, 0x55);
	resets0 = pnvme_ctrl_resets(ctrl);
	tcp_peer_reset_stats(p);
	log_start();
	tcp_peer_set_fault(p, TCP_PEER_FAULT_SWALLOW, 1, pnvme_qpair_id(qp), 0);
	submit_batch(qp, ns, buf, false, r);
	poll_reqs(qp, r, NREQ, 30000);
	assert_each_once(r, NREQ);
	for (int i = 0; i < NREQ; i++) {
		if (r[i].err == -ETIMEDOUT) {
			timed_out++;
			continue;
		}
		if (r[i].err == -EIO && !retries)
			continue; /* cut off by the reconnect, not retried */
		assert_int_equal(r[i].err, 0);
		assert_true(test_block_is(buf + i * 4096, 4096, (uint64_t)i * REQ_BLOCKS, 0x55));
	}
	assert_int_equal(timed_out, 1);
	tcp_peer_get_stats(p, &st);
	assert_int_equal(st.faults_fired[TCP_PEER_FAULT_SWALLOW], 1);
	assert_true(st.admin_cmds[PNVME_ADM_ABORT] >= 1);
	assert_true(pnvme_ctrl_resets(ctrl) > resets0);
	assert_logged("resetting the controller: an aborted command did not complete");
	log_stop();
	assert_false(pnvme_ctrl_is_dead(ctrl));
	assert_io_works(p, qp, ns);
	free(buf);
	pnvme_qpair_destroy(qp);
	pnvme_ctrl_close(ctrl);
	tcp_peer_stop(p);
}

static void test_timeout_ladder(void **state)
{
	(void)state;
	timeout_ladder(0);
	timeout_ladder(1);
}

/*
 * Keep Alive from the poll loops: with keep_alive_tmo=1 and a target that
 * enforces KATO, a controller whose application only polls an idle I/O queue
 * pair (or only processes the admin queue) stays alive for 3 s.
 */
static void keep_alive_idle(bool admin_only)
{
	struct tcp_peer_cfg cfg = { .kato_enforce = true };
	struct tcp_peer *p = tcp_peer_start(&cfg);
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp = NULL;
	struct tcp_peer_stats st;
	uint32_t resets0;

	assert_non_null(p);
	ctrl = open_ok(p, "keep_alive_tmo=1");
	if (!admin_only)
		assert_rc(pnvme_qpair_create(ctrl, NULL, &qp), 0);
	resets0 = pnvme_ctrl_resets(ctrl);
	tcp_peer_reset_stats(p);
	for (uint64_t end = mono_ms() + 3000; mono_ms() < end;) {
		if (admin_only)
			assert_true(pnvme_ctrl_process_admin(ctrl) >= 0);
		else
			assert_true(pnvme_qpair_poll(qp, 0) >= 0);
		sleep_ms(1);
	}
	tcp_peer_get_stats(p, &st);
	assert_int_equal(st.kato_expired, 0);
	/* One every KATO / 2: about 6 in 3 s (one per KATO would be 3, at the limit). */
	if (st.keep_alives < 4)
		fail_msg("%u Keep Alives in 3 s with KATO 1 s (want about 6)", st.keep_alives);
	assert_int_equal(pnvme_ctrl_resets(ctrl), resets0);
	assert_false(pnvme_ctrl_is_dead(ctrl));
	if (qp) {
		assert_io_works(p, qp, pnvme_ctrl_ns_at(ctrl, 0));
		pnvme_qpair_destroy(qp);
	}
	pnvme_ctrl_close(ctrl);
	tcp_peer_stop(p);
}

static void test_keep_alive_io_poll(void **state)
{
	(void)state;
	keep_alive_idle(false);
}

static void test_keep_alive_admin_poll(void **state)
{
	(void)state;
	keep_alive_idle(true);
}

/*
 * The admin connection fails under a sync admin command: the command ends
 * (bounded, well before the admin timeout), the reason is logged, the
 * controller reconnects and the admin queue and I/O work again.
 */
static void test_admin_conn_fault(void **state)
{
	struct tcp_peer *p = tcp_peer_start(NULL);
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	uint8_t id[4096];
	uint32_t resets0;
	uint64_t t0;
	int rc;

	(void)state;
	assert_non_null(p);
	ctrl = open_recon(p, NULL);
	assert_rc(pnvme_qpair_create(ctrl, NULL, &qp), 0);
	resets0 = pnvme_ctrl_resets(ctrl);
	log_start();
	tcp_peer_set_fault(p, TCP_PEER_FAULT_WRONG_CCCID, 1, 0, 0);
	t0 = mono_ms();
	rc = pnvme_identify(ctrl, 1, 0, id);
	assert_true(mono_ms() - t0 < 20000);
	assert_true(rc == 0 || rc == -EIO);
	/* The reset may run at the next admin or I/O poll. */
	for (uint64_t end = mono_ms() + 20000; pnvme_ctrl_resets(ctrl) == resets0 && mono_ms() < end;) {
		(void)pnvme_ctrl_process_admin(ctrl);
		(void)pnvme_qpair_poll(qp, 0);
	}
	assert_true(pnvme_ctrl_resets(ctrl) > resets0);
	assert_logged("NVMe/TCP queue 0: malformed PDU from the target (invalid PDU header field)");
	log_stop();
	assert_rc(pnvme_identify(ctrl, 1, 0, id), 0);
	assert_int_equal(((const struct pnvme_id_ctrl *)(void *)id)->cntrltype, 1);
	assert_io_works(p, qp, pnvme_ctrl_ns_at(ctrl, 0));
	pnvme_qpair_destroy(qp);
	pnvme_ctrl_close(ctrl);
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
		cmocka_unit_test(test_fault_wrong_cccid),
		cmocka_unit_test(test_fault_unknown_cccid),
		cmocka_unit_test(test_fault_dup_resp),
		cmocka_unit_test(test_fault_r2t_for_read),
		cmocka_unit_test(test_fault_c2h_out_of_range),
		cmocka_unit_test(test_fault_bad_framing),
		cmocka_unit_test(test_fault_hdgst),
		cmocka_unit_test(test_fault_ddgst),
		cmocka_unit_test(test_fault_term_req),
		cmocka_unit_test(test_fault_close_after),
		cmocka_unit_test(test_open_failures),
		cmocka_unit_test(test_kill_reconnect_busy),
		cmocka_unit_test(test_peer_gone_dead),
		cmocka_unit_test(test_reconnect_polls_do_not_block),
		cmocka_unit_test(test_admin_conn_fault),
		cmocka_unit_test(test_timeout_ladder),
		cmocka_unit_test(test_keep_alive_io_poll),
		cmocka_unit_test(test_keep_alive_admin_poll),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
