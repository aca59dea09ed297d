/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme-perf - I/O load generator in the manner of spdk_nvme_perf.
 *
 *   pnvme-perf -d DEV [-q DEPTH] [-o BYTES] [-w PATTERN] [-t SECONDS] [-n NSID] [-N]
 *
 * DEV is a PCI address bound to vfio-pci or an emulator spec (emu:size=1G,...).
 * One queue pair, kept DEPTH deep; a progress line each second on a terminal;
 * at the end one line per device and a Total line with IOPS and MiB/s, plus
 * the doorbell and poll counters that explain the cost per I/O.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pnvme/pnvme.h>

enum pattern { P_READ, P_WRITE, P_RANDREAD, P_RANDWRITE };

struct io_slot {
	struct job *job;
	void *buf;
};

struct job {
	struct pnvme_qpair *qp;
	const struct pnvme_ns *ns;
	enum pattern pattern;
	uint32_t nlb;
	uint64_t nr_slots;      /* I/O-size slots in the namespace */
	uint64_t next_seq;
	uint64_t rng;
	uint64_t completed;
	uint64_t errors;
	int first_err;
	uint16_t first_status;
	int stopping;
	uint32_t inflight;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pnvme-perf -d DEV [options]\n"
		"  -d DEV      PCI address (0000:01:00.0) or emulator spec (emu:size=1G,...)\n"
		"  -q DEPTH    outstanding I/Os (default 32)\n"
		"  -o BYTES    I/O size, multiple of the LBA size (default 4096; K/M suffix)\n"
		"  -w PATTERN  read | write | randread | randwrite (default randread)\n"
		"  -t SECONDS  run time (default 5)\n"
		"  -n NSID     namespace (default: the first active one)\n"
		"  -N          ring the SQ doorbell for every command (default: once per batch)\n"
		"  -h          this help\n");
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* xorshift64*: cheap, and no '%' on the hot path (see next_slot). */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static inline uint64_t next_slot(struct job *j)
{
	if (j->pattern == P_RANDREAD || j->pattern == P_RANDWRITE)
		/* Multiply-shift maps 64 random bits onto [0, nr_slots) without a divide. */
		return (uint64_t)(((unsigned __int128)rng_next(&j->rng) * j->nr_slots) >> 64);
	uint64_t s = j->next_seq++;
	if (j->next_seq == j->nr_slots)
		j->next_seq = 0;
	return s;
}

static void io_done(void *arg, int err, const struct pnvme_cqe *cqe);

static int submit_one(struct io_slot *s)
{
	struct job *j = s->job;
	uint64_t lba = next_slot(j) * j->nlb;
	int rc;

	if (j->pattern == P_READ || j->pattern == P_RANDREAD)
		rc = pnvme_read(j->qp, j->ns, s->buf, lba, j->nlb, 0, io_done, s);
	else
		rc = pnvme_write(j->qp, j->ns, s->buf, lba, j->nlb, 0, io_done, s);
	if (rc == 0)
		j->inflight++;
	return rc;
}

static void io_done(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct io_slot *s = arg;
	struct job *j = s->job;

	j->inflight--;
	if (err) {
		if (j->errors++ == 0) {
			j->first_err = err;
			j->first_status = PNVME_CQE_STATUS(cqe);
		}
		j->stopping = 1;
		return;
	}
	j->completed++;
	if (!j->stopping)
		(void)submit_one(s);
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case '\0': break;
	default: return -1;
	}
	if (*end || v == 0)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	const char *dev = NULL;
	uint64_t depth = 32, iosize = 4096, secs = 5, nsid = 0;
	enum pattern pattern = P_RANDREAD;
	uint32_t qflags = 0;
	int opt;

	static const char *const names[] = { "read", "write", "randread", "randwrite" };
	while ((opt = getopt(argc, argv, "d:q:o:w:t:n:Nh")) != -1) {
		switch (opt) {
		case 'd': dev = optarg; break;
		case 'q':
			if (parse_size(optarg, &depth) || depth > 65535) {
				fprintf(stderr, "pnvme-perf: bad queue depth '%s'\n", optarg);
				return 2;
			}
			break;
		case 'o':
			if (parse_size(optarg, &iosize) || iosize > (1u << 30)) {
				fprintf(stderr, "pnvme-perf: bad I/O size '%s'\n", optarg);
				return 2;
			}
			break;
		case 'w': {
			size_t i;
			for (i = 0; i < 4; i++)
				if (strcmp(optarg, names[i]) == 0)
					break;
			if (i == 4) {
				fprintf(stderr, "pnvme-perf: unknown pattern '%s'\n", optarg);
				return 2;
			}
			pattern = (enum pattern)i;
			break;
		}
		case 't':
			if (parse_size(optarg, &secs) || secs > 86400) {
				fprintf(stderr, "pnvme-perf: bad time '%s'\n", optarg);
				return 2;
			}
			break;
		case 'n':
			if (parse_size(optarg, &nsid) || nsid > UINT32_MAX) {
				fprintf(stderr, "pnvme-perf: bad namespace '%s'\n", optarg);
				return 2;
			}
			break;
		case 'N': qflags |= PNVME_QPAIR_DB_IMMEDIATE; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!dev || optind != argc) {
		usage(stderr);
		return 2;
	}

	struct pnvme_ctrl *ctrl;
	int rc = pnvme_ctrl_open(dev, NULL, &ctrl);
	if (rc) {
		fprintf(stderr, "pnvme-perf: %s: %s (%s)\n", dev, pnvme_last_error(), strerror(-rc));
		return 1;
	}
	const struct pnvme_ns *ns = nsid ? pnvme_ctrl_ns(ctrl, (uint32_t)nsid)
					 : pnvme_ctrl_ns_at(ctrl, 0);
	int status = 1;
	double elapsed = 0;
	struct pnvme_qpair *qp = NULL;
	struct io_slot *slots = NULL;
	struct job job;
	memset(&job, 0, sizeof(job));

	if (!ns) {
		fprintf(stderr, "pnvme-perf: %s: no active namespace %" PRIu64 "\n", dev, nsid);
		goto out;
	}
	if (iosize % ns->lba_size || iosize > ns->max_xfer) {
		fprintf(stderr, "pnvme-perf: I/O size %" PRIu64 " must be a multiple of the LBA "
			"size %u and at most %u bytes (MDTS)\n", iosize, ns->lba_size, ns->max_xfer);
		status = 2;
		goto out;
	}
	struct pnvme_qpair_opts qo;
	pnvme_qpair_opts_default(&qo);
	qo.depth = (uint32_t)depth + 1;
	qo.flags = qflags;
	rc = pnvme_qpair_create(ctrl, &qo, &qp);
	if (rc) {
		fprintf(stderr, "pnvme-perf: queue pair of depth %" PRIu64 ": %s\n", depth,
			pnvme_last_error());
		goto out;
	}
	job.qp = qp;
	job.ns = ns;
	job.pattern = pattern;
	job.nlb = (uint32_t)(iosize / ns->lba_size);
	job.nr_slots = ns->nlba / job.nlb;
	job.rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	if (job.nr_slots == 0) {
		fprintf(stderr, "pnvme-perf: namespace smaller than one I/O\n");
		goto out;
	}
	slots = calloc(depth, sizeof(*slots));
	if (!slots)
		goto out;
	for (uint64_t i = 0; i < depth; i++) {
		slots[i].job = &job;
		rc = pnvme_dma_alloc(ctrl, iosize, 4096, &slots[i].buf, NULL);
		if (rc) {
			fprintf(stderr, "pnvme-perf: DMA buffers: %s\n", pnvme_last_error());
			goto out;
		}
		memset(slots[i].buf, (int)(i & 0xff), iosize);
	}

	printf("pnvme-perf: %s ns %u, %s, %" PRIu64 " bytes, depth %" PRIu64 ", %" PRIu64
	       " s, %s doorbells\n", dev, ns->nsid, names[pattern], iosize, depth, secs,
	       qflags ? "per-command" : "batched");
	fflush(stdout);
	for (uint64_t i = 0; i < depth; i++) {
		rc = submit_one(&slots[i]);
		if (rc) {
			fprintf(stderr, "pnvme-perf: submit: %s\n", pnvme_last_error());
			goto drain;
		}
	}
	bool tty = isatty(STDOUT_FILENO);
	double start = now_s(), last = start, end = start + (double)secs;
	uint64_t last_done = 0;
	for (uint32_t iter = 0;; iter++) {
		rc = pnvme_qpair_poll(qp, 0);
		if (rc < 0) {
			fprintf(stderr, "pnvme-perf: poll: %s\n", strerror(-rc));
			break;
		}
		if (job.stopping)
			break;
		if ((iter & 1023) == 0) {
			double t = now_s();
			if (t >= end)
				break;
			if (tty && t - last >= 1.0) {
				printf("\r%10.0f IOPS %10.2f MiB/s", (double)(job.completed - last_done) / (t - last),
				       (double)(job.completed - last_done) * (double)iosize / (t - last) / 1048576.0);
				fflush(stdout);
				last = t;
				last_done = job.completed;
			}
		}
	}
	elapsed = now_s() - start;
	if (tty)
		printf("\r%*s\r", 40, "");
drain:
	job.stopping = 1;
	for (int spins = 0; job.inflight && spins < 10000000; spins++)
		if (pnvme_qpair_poll(qp, 0) < 0)
			break;
	if (job.errors) {
		fprintf(stderr, "pnvme-perf: %" PRIu64 " I/O error(s); first: %s (%s)\n", job.errors,
			pnvme_status_str(job.first_status), strerror(-job.first_err));
		goto out;
	}
	if (rc < 0)
		goto out;
	struct pnvme_qpair_stats st;
	pnvme_qpair_get_stats(qp, &st);
	double iops = (double)job.completed / elapsed;
	double polls = st.polls ? (double)st.polls : 1.0;
	printf("%-34s %12s %10s %12s\n", "Device", "IOPS", "MiB/s", "Avg lat (us)");
	printf("%-34.34s %12.2f %10.2f %12.2f\n", dev, iops, iops * (double)iosize / 1048576.0,
	       iops > 0 ? (double)depth * 1e6 / iops : 0.0);
	printf("%-34s %12.2f %10.2f %12.2f\n", "Total", iops, iops * (double)iosize / 1048576.0,
	       iops > 0 ? (double)depth * 1e6 / iops : 0.0);
	printf("counters: %" PRIu64 " I/Os, %" PRIu64 " SQ doorbells, %" PRIu64 " CQ doorbells, %"
	       PRIu64 " polls (%" PRIu64 " empty), %.2f completions/poll, %.3f doorbells/IO\n",
	       job.completed, st.sq_doorbells, st.cq_doorbells, st.polls, st.empty_polls,
	       (double)st.completed / polls,
	       job.completed ? (double)(st.sq_doorbells + st.cq_doorbells) / (double)job.completed : 0.0);
	status = 0;
out:
	if (qp)
		pnvme_qpair_destroy(qp);
	if (slots) {
		for (uint64_t i = 0; i < depth; i++)
			pnvme_dma_free(ctrl, slots[i].buf);
		free(slots);
	}
	pnvme_ctrl_close(ctrl);
	return status;
}
