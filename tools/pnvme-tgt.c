/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme-tgt - export pnvme controllers' namespaces over NVMe/TCP.
 *
 *   pnvme-tgt -s nqn.2024-01.io.example:disk -n 0000:01:00.0,1 --allow-host NQN
 *   pnvme-tgt -l 0.0.0.0:4420 -s NQN -n emu:size=1G --allow-any-host -t 2
 *
 * Options name a subsystem (-s) and then what belongs to it (-n, --allow-host,
 * --allow-any-host); the discovery subsystem is served on the same port.
 * SIGINT / SIGTERM stop it cleanly: commands at the backends complete, hosts
 * see their connections close, the backend controllers are shut down (CC.SHN).
 * Exit status: 0 after a clean stop, 1 on a runtime error, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pnvme/pnvme.h>

#ifndef PNVME_TOOL_VERSION
#define PNVME_TOOL_VERSION "unknown"
#endif

#define MAX_DEVS 16
#define MAX_ITEMS 256

static volatile sig_atomic_t stop_now;

static void on_signal(int sig)
{
	(void)sig;
	stop_now = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: pnvme-tgt [options]\n"
		"  -l, --listen ADDR:PORT   listen address (default 127.0.0.1:4420; [IPv6]:PORT)\n"
		"  -s, --subsys NQN         add a subsystem; -n and --allow-* below apply to it\n"
		"  -n, --ns DEVICE[,NSID]   export namespace NSID (default 1) of DEVICE: a PCI\n"
		"                           address bound to vfio-pci, or emu:... (pnvme/emu.h,\n"
		"                           file= for a file); repeatable\n"
		"      --allow-host NQN     let this host connect (repeatable; default: none)\n"
		"      --allow-any-host     let any host connect\n"
		"      --icd BYTES          in-capsule data on I/O queues (default 8192)\n"
		"      --digests            allow header and data digests\n"
		"  -t, --threads N          polling threads (default 1)\n"
		"      --cpus LIST          pin the threads to these cpus (e.g. 2,3)\n"
		"  -c, --config FILE        JSON configuration (not implemented yet)\n"
		"  -v, --verbose            log connections and controllers\n"
		"  -h, --help               this text\n"
		"  -V, --version            the version\n");
}

static void log_to_stderr(void *arg, enum pnvme_log_level level, const char *msg)
{
	(void)arg;
	(void)level;
	fprintf(stderr, "pnvme-tgt: %s\n", msg);
}

/* What the command line asked for, in order. */
struct item {
	char kind;        /* 's' subsystem, 'n' namespace, 'h' host, 'a' any host */
	const char *arg;
};

struct dev {
	char spec[512];
	struct pnvme_ctrl *ctrl;
};

static struct dev devs[MAX_DEVS];
static unsigned nr_devs;

static struct pnvme_ctrl *dev_open(const char *spec)
{
	struct pnvme_ctrl *ctrl = NULL;

	for (unsigned i = 0; i < nr_devs; i++)
		if (!strcmp(devs[i].spec, spec))
			return devs[i].ctrl;
	if (nr_devs >= MAX_DEVS) {
		fprintf(stderr, "pnvme-tgt: at most %u devices\n", MAX_DEVS);
		return NULL;
	}
	if (pnvme_ctrl_open(spec, NULL, &ctrl)) {
		fprintf(stderr, "pnvme-tgt: %s: %s\n", spec, pnvme_last_error());
		return NULL;
	}
	snprintf(devs[nr_devs].spec, sizeof(devs[nr_devs].spec), "%s", spec);
	devs[nr_devs++].ctrl = ctrl;
	return ctrl;
}

/* "DEVICE[,NSID]": a trailing ",digits" is the NSID (emu specs have commas too). */
static int split_ns(const char *arg, char *dev, size_t n, uint32_t *nsid)
{
	const char *comma = strrchr(arg, ',');

	*nsid = 1;
	if (comma && comma[1] && strspn(comma + 1, "0123456789") == strlen(comma + 1)) {
		*nsid = (uint32_t)strtoul(comma + 1, NULL, 10);
		if ((size_t)(comma - arg) >= n)
			return -1;
		snprintf(dev, n, "%.*s", (int)(comma - arg), arg);
		return *nsid ? 0 : -1;
	}
	if (strlen(arg) >= n)
		return -1;
	snprintf(dev, n, "%s", arg);
	return 0;
}

static int parse_cpus(const char *s, uint64_t *mask)
{
	char *end;

	*mask = 0;
	while (*s) {
		unsigned long c = strtoul(s, &end, 10);

		if (end == s || c > 63)
			return -1;
		*mask |= 1ull << c;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -1;
	}
	return *mask ? 0 : -1;
}

static int configure(struct pnvme_tgt *tgt, const struct item *items, unsigned n)
{
	const char *subsys = NULL;

	for (unsigned i = 0; i < n; i++) {
		const struct item *it = &items[i];
		char dev[512];
		uint32_t nsid;
		struct pnvme_ctrl *ctrl;
		int rc = 0;

		if (it->kind == 's') {
			subsys = it->arg;
			rc = pnvme_tgt_add_subsys(tgt, subsys);
		} else if (!subsys) {
			fprintf(stderr, "pnvme-tgt: -n and --allow-* need a subsystem (-s) first\n");
			return 2;
		} else if (it->kind == 'n') {
			if (split_ns(it->arg, dev, sizeof(dev), &nsid)) {
				fprintf(stderr, "pnvme-tgt: bad namespace '%s'\n", it->arg);
				return 2;
			}
			ctrl = dev_open(dev);
			if (!ctrl)
				return 1;
			rc = pnvme_tgt_add_ns(tgt, subsys, 0, ctrl, nsid);
			if (rc > 0) {
				printf("pnvme-tgt: %s namespace %d = %s namespace %u\n", subsys, rc, dev,
				       nsid);
				rc = 0;
			}
		} else {
			rc = pnvme_tgt_allow_host(tgt, subsys, it->kind == 'h' ? it->arg : NULL);
		}
		if (rc) {
			fprintf(stderr, "pnvme-tgt: %s\n", pnvme_last_error());
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "subsys", required_argument, NULL, 's' },
		{ "ns", required_argument, NULL, 'n' },
		{ "allow-host", required_argument, NULL, 'H' },
		{ "allow-any-host", no_argument, NULL, 'A' },
		{ "icd", required_argument, NULL, 'I' },
		{ "digests", no_argument, NULL, 'D' },
		{ "threads", required_argument, NULL, 't' },
		{ "cpus", required_argument, NULL, 'C' },
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct item items[MAX_ITEMS];
	struct pnvme_tgt_opts o;
	struct pnvme_tgt *tgt = NULL;
	struct sigaction sa;
	unsigned n = 0;
	bool verbose = false;
	char *end;
	int opt, rc;

	pnvme_tgt_opts_default(&o);
	o.digests = false;
	while ((opt = getopt_long(argc, argv, "l:s:n:t:c:vhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			o.listen = optarg;
			break;
		case 's':
		case 'n':
		case 'H':
		case 'A':
			if (n >= MAX_ITEMS) {
				fprintf(stderr, "pnvme-tgt: too many options\n");
				return 2;
			}
			items[n].kind = opt == 'H' ? 'h' : opt == 'A' ? 'a' : (char)opt;
			items[n++].arg = optarg;
			break;
		case 'I':
			o.icd_bytes = (uint32_t)strtoul(optarg, &end, 0);
			if (*end || !*optarg) {
				fprintf(stderr, "pnvme-tgt: bad --icd '%s'\n", optarg);
				return 2;
			}
			break;
		case 'D':
			o.digests = true;
			break;
		case 't':
			o.nr_threads = (uint32_t)strtoul(optarg, &end, 0);
			if (*end || !*optarg || o.nr_threads == 0) {
				fprintf(stderr, "pnvme-tgt: bad --threads '%s' (1 or more)\n", optarg);
				return 2;
			}
			break;
		case 'C':
			if (parse_cpus(optarg, &o.cpu_mask)) {
				fprintf(stderr, "pnvme-tgt: bad --cpus '%s'\n", optarg);
				return 2;
			}
			break;
		case 'c':
			fprintf(stderr, "pnvme-tgt: -c %s: JSON configuration is not implemented yet; "
				"use the options\n", optarg);
			return 2;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("pnvme-tgt %s\n", PNVME_TOOL_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pnvme-tgt: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!n) {
		fprintf(stderr, "pnvme-tgt: nothing to export: give -s NQN -n DEVICE\n");
		usage(stderr);
		return 2;
	}
	pnvme_set_log(log_to_stderr, NULL, verbose ? PNVME_LOG_INFO : PNVME_LOG_WARN);
	if (pnvme_tgt_create(&o, &tgt)) {
		fprintf(stderr, "pnvme-tgt: %s\n", pnvme_last_error());
		return 2;
	}
	rc = configure(tgt, items, n);
	if (!rc && pnvme_tgt_start(tgt)) {
		fprintf(stderr, "pnvme-tgt: %s\n", pnvme_last_error());
		rc = 1;
	}
	if (!rc) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		printf("pnvme-tgt: listening on %s, port %u\n", o.listen, pnvme_tgt_port(tgt));
		fflush(stdout);
		while (!stop_now)
			nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
		printf("pnvme-tgt: stopping\n");
	}
	pnvme_tgt_destroy(tgt);
	for (unsigned i = 0; i < nr_devs; i++)
		if (pnvme_ctrl_close(devs[i].ctrl)) {
			fprintf(stderr, "pnvme-tgt: closing %s: %s\n", devs[i].spec, pnvme_last_error());
			rc = rc ? rc : 1;
		}
	return rc;
}
