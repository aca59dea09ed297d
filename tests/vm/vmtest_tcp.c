/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vmtest_tcp.c - the guest side of the NVMe/TCP host checks (tcp-host.sh):
 * pnvme as a host of the Linux kernel target (nvmet-tcp) on 127.0.0.1.
 *
 *   vmtest tcp-rw ADDR [--queues N] [--hdgst] [--ddgst]
 *       whole namespace written with mixed sizes (in-capsule, R2T, more than
 *       MAXH2CDATA) over N queue pairs, read back, compared: "TCPRW: ok bytes=N"
 *   vmtest tcp-pattern-write ADDR SEED
 *       whole namespace = the bytes `vmtest pattern SEED BYTES` prints
 *   vmtest pattern SEED BYTES
 *   vmtest tcp-cut ADDR CMD
 *       I/O in flight while `sh -c CMD` removes and re-adds the target port;
 *       every request completes exactly once, failed ones are resubmitted,
 *       the data is checked at the end: "TCPCUT: ok lost=0 doubled=0"
 *   vmtest tcp-idle ADDR SECONDS
 *       connected and idle (polling only) past the target's keep-alive
 *       timeout, then I/O: "TCPIDLE: ok"
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pnvme/pnvme.h>

#include "vmtest.h"

/* Byte i of pattern `seed`: splitmix64 of the 8-byte word index. */
static uint64_t pat_word(uint64_t seed, uint64_t w)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ull + w + 1;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void pat_fill(uint8_t *buf, uint64_t off, size_t len, uint64_t seed)
{
	/* off and len are multiples of 8 here (block sized) */
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = pat_word(seed, (off + i) / 8);
		memcpy(buf + i, &v, 8);
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what, int rc)
{
	fprintf(stderr, "vmtest: %s: %s (%d: %s)\n", what, pnvme_last_error(), rc,
		strerror(rc < 0 ? -rc : rc));
	return 1;
}

static int open_tcp(const char *addr, const char *extra, struct pnvme_ctrl **ctrl,
		    const struct pnvme_ns **ns)
{
	char a[2048];
	int rc;

	snprintf(a, sizeof(a), "%s%s%s", addr, extra && *extra ? (strchr(addr, '?') ? "&" : "?") : "",
		 extra ? extra : "");
	rc = pnvme_ctrl_open(a, NULL, ctrl);
	if (rc)
		return die("open", rc);
	*ns = pnvme_ctrl_ns_at(*ctrl, 0);
	if (!*ns) {
		fprintf(stderr, "vmtest: %s has no namespace\n", a);
		pnvme_ctrl_close(*ctrl);
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Requests: one per slot, each completing exactly once                      */
/* ------------------------------------------------------------------------ */

struct req {
	int calls;     /* callbacks of the current submission */
	int err;
	bool busy;
	bool write;
	uint64_t lba;
	uint32_t nlb;
	uint8_t *buf;
};

static unsigned doubled;

static void req_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct req *r = arg;

	(void)cqe;
	if (++r->calls > 1)
		doubled++;
	r->err = err;
	r->busy = false;
}

static int submit(struct pnvme_qpair *qp, const struct pnvme_ns *ns, struct req *r)
{
	r->calls = 0;
	r->err = 0;
	r->busy = true;
	int rc = r->write ? pnvme_write(qp, ns, r->buf, r->lba, r->nlb, 0, req_cb, r)
			  : pnvme_read(qp, ns, r->buf, r->lba, r->nlb, 0, req_cb, r);
	if (rc)
		r->busy = false;
	return rc;
}

/*
 * Move the whole namespace (write or read+compare) with `nq` queue pairs,
 * `depth` requests each, sizes cycling through `sizes` (bytes). Failed
 * requests are resubmitted (up to `retries` times each, for the port cut).
 */
static int whole_ns(struct pnvme_ctrl *ctrl, const struct pnvme_ns *ns, struct pnvme_qpair **qp,
		    unsigned nq, unsigned depth, bool write, uint64_t seed, unsigned retries,
		    unsigned *resubmitted)
{
	static const uint32_t sizes[] = { 4096, 16384, 65536, 4096, 131072, 8192, 1048576, 32768 };
	unsigned nr = nq * depth, si = 0;
	struct req *rq = calloc(nr, sizeof(*rq));
	uint64_t next = 0, total = ns->nlba;
	uint32_t maxb = ns->max_lbas;
	int bad = 0;

	(void)ctrl;
	for (unsigned i = 0; i < nr; i++)
		rq[i].buf = aligned_alloc(4096, 1048576);
	for (;;) {
		bool idle = true;
		for (unsigned i = 0; i < nr; i++) {
			struct req *r = &rq[i];
			struct pnvme_qpair *q = qp[i % nq];
			if (r->busy) {
				idle = false;
				continue;
			}
			if (r->nlb && r->calls == 1 && r->err) {
				/* failed (connection cut): again, same range */
				if (retries-- == 0) {
					fprintf(stderr, "vmtest: LBA %llu: error %d, out of retries\n",
						(unsigned long long)r->lba, r->err);
					bad = 1;
					goto out;
				}
				(*resubmitted)++;
				if (submit(q, ns, r) == 0)
					idle = false;
				continue;
			}
			if (r->nlb && r->calls == 1 && !r->write) {
				uint8_t *want = malloc((size_t)r->nlb * ns->lba_size);
				pat_fill(want, r->lba * ns->lba_size, (size_t)r->nlb * ns->lba_size, seed);
				if (memcmp(want, r->buf, (size_t)r->nlb * ns->lba_size)) {
					fprintf(stderr, "vmtest: data mismatch at LBA %llu (+%u)\n",
						(unsigned long long)r->lba, r->nlb);
					bad = 1;
				}
				free(want);
			}
			r->nlb = 0;
			if (next >= total)
				continue;
			uint32_t nlb = sizes[si++ % (sizeof(sizes) / sizeof(sizes[0]))] / ns->lba_size;
			if (nlb == 0)
				nlb = 1;
			if (nlb > maxb)
				nlb = maxb;
			if (nlb > total - next)
				nlb = (uint32_t)(total - next);
			r->lba = next;
			r->nlb = nlb;
			r->write = write;
			if (write)
				pat_fill(r->buf, next * ns->lba_size, (size_t)nlb * ns->lba_size, seed);
			next += nlb;
			int rc = submit(q, ns, r);
			if (rc == -EAGAIN) {
				next -= nlb;
				r->nlb = 0;
			} else if (rc) {
				/* refused at once (connection being re-made): count as a failure */
				r->calls = 1;
				r->err = rc;
			}
			idle = false;
		}
		if (idle && next >= total)
			break;
		for (unsigned k = 0; k < nq; k++) {
			int rc = pnvme_qpair_poll(qp[k], 0);
			if (rc < 0 && rc != -EAGAIN && pnvme_ctrl_is_dead(ctrl)) {
				fprintf(stderr, "vmtest: controller dead: %s\n", pnvme_last_error());
				bad = 1;
				goto out;
			}
		}
	}
out:
	for (unsigned i = 0; i < nr; i++)
		free(rq[i].buf);
	free(rq);
	return bad;
}

static int make_qpairs(struct pnvme_ctrl *ctrl, unsigned nq, struct pnvme_qpair **qp)
{
	struct pnvme_qpair_opts o;

	pnvme_qpair_opts_default(&o);
	o.depth = 32;
	for (unsigned i = 0; i < nq; i++) {
		int rc = pnvme_qpair_create(ctrl, &o, &qp[i]);
		if (rc)
			return die("qpair_create", rc);
	}
	return 0;
}

static int tcp_rw(const char *addr, unsigned nq, bool hd, bool dd)
{
	char extra[64];
	struct pnvme_ctrl *ctrl;
	const struct pnvme_ns *ns;
	struct pnvme_qpair *qp[16];
	unsigned resub = 0;
	int bad;

	snprintf(extra, sizeof(extra), "%s%s%s", hd ? "hdr_digest=1" : "", hd && dd ? "&" : "",
		 dd ? "data_digest=1" : "");
	if (nq < 1 || nq > 16)
		nq = 1;
	if (open_tcp(addr, extra, &ctrl, &ns) || make_qpairs(ctrl, nq, qp))
		return 1;
	uint64_t bytes = ns->nlba * ns->lba_size;
	double t0 = now_s();
	bad = whole_ns(ctrl, ns, qp, nq, 8, true, 11, 0, &resub);
	if (!bad)
		bad = whole_ns(ctrl, ns, qp, nq, 8, false, 11, 0, &resub);
	double t = now_s() - t0;
	for (unsigned i = 0; i < nq; i++)
		pnvme_qpair_destroy(qp[i]);
	pnvme_ctrl_close(ctrl);
	if (bad || doubled)
		return 1;
	printf("TCPRW: ok bytes=%llu\n", (unsigned long long)bytes);
	fprintf(stderr, "tcp-rw: %u queue pairs, %.1f s for write + read\n", nq, t);
	return 0;
}

int cmd_pattern(uint64_t seed, uint64_t bytes)
{
	uint8_t buf[65536];

	for (uint64_t off = 0; off < bytes; off += sizeof(buf)) {
		size_t n = bytes - off < sizeof(buf) ? (size_t)(bytes - off) : sizeof(buf);
		pat_fill(buf, off, (n + 7) & ~(size_t)7, seed);
		if (fwrite(buf, 1, n, stdout) != n)
			return 1;
	}
	return fflush(stdout) ? 1 : 0;
}

int cmd_tcp(int argc, char **argv)
{
	const char *cmd = argv[1];

	if (!strcmp(cmd, "pattern") && argc == 4)
		return cmd_pattern(strtoull(argv[2], NULL, 0), strtoull(argv[3], NULL, 0));
	if (argc < 3) {
		fprintf(stderr, "vmtest %s: needs an address\n", cmd);
		return 2;
	}
	const char *addr = argv[2];
	if (!strcmp(cmd, "tcp-rw")) {
		unsigned nq = 1;
		bool hd = false, dd = false;
		for (int i = 3; i < argc; i++) {
			if (!strcmp(argv[i], "--queues") && i + 1 < argc)
				nq = (unsigned)atoi(argv[++i]);
			else if (!strcmp(argv[i], "--hdgst"))
				hd = true;
			else if (!strcmp(argv[i], "--ddgst"))
				dd = true;
		}
		return tcp_rw(addr, nq, hd, dd);
	}
	if (!strcmp(cmd, "tcp-pattern-write") && argc == 4) {
		struct pnvme_ctrl *ctrl;
		const struct pnvme_ns *ns;
		struct pnvme_qpair *qp[2];
		unsigned resub = 0;
		if (open_tcp(addr, NULL, &ctrl, &ns) || make_qpairs(ctrl, 2, qp))
			return 1;
		int bad = whole_ns(ctrl, ns, qp, 2, 8, true, strtoull(argv[3], NULL, 0), 0, &resub);
		pnvme_qpair_destroy(qp[0]);
		pnvme_qpair_destroy(qp[1]);
		pnvme_ctrl_close(ctrl);
		if (!bad)
			printf("TCPPATTERN: ok\n");
		return bad;
	}
	if (!strcmp(cmd, "tcp-cut") && argc == 4) {
		struct pnvme_ctrl *ctrl;
		const struct pnvme_ns *ns;
		struct pnvme_qpair *qp[1];
		unsigned resub = 0;
		int status = 0;
		if (open_tcp(addr, "reconnect_delay=1&ctrl_loss_tmo=60", &ctrl, &ns) ||
		    make_qpairs(ctrl, 1, qp))
			return 1;
		pid_t pid = fork();
		if (pid == 0) {
			usleep(300000);
			execl("/bin/sh", "sh", "-c", argv[3], (char *)NULL);
			_exit(127);
		}
		/* writes, then reads and compares, across the cut, until CMD is done */
		int bad = 0, rounds = 0;
		do {
			bad = whole_ns(ctrl, ns, qp, 1, 16, true, 23, 1000, &resub);
			if (!bad)
				bad = whole_ns(ctrl, ns, qp, 1, 16, false, 23, 1000, &resub);
			rounds++;
		} while (!bad && waitpid(pid, &status, WNOHANG) == 0);
		if (waitpid(pid, &status, 0) < 0 && errno != ECHILD)
			status = 0;
		uint32_t resets = pnvme_ctrl_resets(ctrl);
		pnvme_qpair_destroy(qp[0]);
		pnvme_ctrl_close(ctrl);
		if (bad || doubled) {
			fprintf(stderr, "vmtest: tcp-cut failed (doubled %u)\n", doubled);
			return 1;
		}
		printf("TCPCUT: ok lost=0 doubled=%u (rounds %d, resubmitted %u, reconnects %u)\n",
		       doubled, rounds, resub, resets);
		return 0;
	}
	if (!strcmp(cmd, "tcp-idle") && argc == 4) {
		struct pnvme_ctrl *ctrl;
		const struct pnvme_ns *ns;
		struct pnvme_qpair *qp[1];
		unsigned resub = 0;
		double until = now_s() + atof(argv[3]);
		if (open_tcp(addr, NULL, &ctrl, &ns) || make_qpairs(ctrl, 1, qp))
			return 1;
		while (now_s() < until) {
			(void)pnvme_qpair_poll(qp[0], 0);
			usleep(20000);
		}
		struct pnvme_ns one = *ns;
		one.nlba = ns->nlba < 256 ? ns->nlba : 256;
		int bad = whole_ns(ctrl, &one, qp, 1, 4, true, 5, 0, &resub) ||
			  whole_ns(ctrl, &one, qp, 1, 4, false, 5, 0, &resub);
		uint32_t resets = pnvme_ctrl_resets(ctrl);
		pnvme_qpair_destroy(qp[0]);
		pnvme_ctrl_close(ctrl);
		if (bad || resets) {
			fprintf(stderr, "vmtest: tcp-idle: %s (resets %u)\n", bad ? "I/O failed" :
				"the controller was reconnected: keep-alive did not hold it", resets);
			return 1;
		}
		printf("TCPIDLE: ok\n");
		return 0;
	}
	fprintf(stderr, "vmtest: bad tcp command line\n");
	return 2;
}
