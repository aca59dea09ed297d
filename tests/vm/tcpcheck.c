// SPDX-License-Identifier: BSD-3-Clause
/*
 * tcpcheck - small static helper for the NVMe/TCP guest test (tests/vm/tcp-host.sh).
 * It lets the guest check the kernel target with the kernel's own NVMe/TCP host
 * (the self-check) and gives the scripts a clock and a data pattern; it does not
 * use pnvme. Built by run-vm-tests.sh with `cc -static`, packed as /bin/tcpcheck.
 *
 *   tcpcheck now                  milliseconds since boot (CLOCK_MONOTONIC), 1 decimal
 *   tcpcheck pattern SEED BYTES   BYTES of deterministic data on stdout (8-byte words,
 *                                 word i = mix(SEED, i)); a reference for target files
 *   tcpcheck connect OPTIONS      one write of OPTIONS to /dev/nvme-fabrics (kernel
 *                                 host connect), prints the kernel's answer
 *                                 "instance=N,cntlid=M"
 *   tcpcheck disc-log /dev/nvmeN  Get Log Page 70h (Discovery) on a kernel discovery
 *                                 controller: "DISC: genctr= numrec=" then one
 *                                 "DISC: entry I trtype= adrfam= subtype= portid=
 *                                 cntlid= trsvcid= traddr= subnqn=" line per record
 * Exit status 0 on success, 1 on failure (message on stderr), 2 on usage errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/nvme_ioctl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static int usage(void)
{
	fprintf(stderr, "usage: tcpcheck now | pattern SEED BYTES | connect OPTIONS | "
			"disc-log /dev/nvmeN\n");
	return 2;
}

static uint64_t mix(uint64_t seed, uint64_t i)
{
	/* splitmix64 finaliser over seed and word index */
	uint64_t z = seed * 0x9e3779b97f4a7c15ull + i + 1;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int cmd_pattern(uint64_t seed, uint64_t bytes)
{
	static uint64_t buf[8192];
	uint64_t word = 0;

	while (bytes) {
		size_t n = bytes < sizeof(buf) ? (size_t)bytes : sizeof(buf);
		for (size_t k = 0; k < (n + 7) / 8; k++)
			buf[k] = mix(seed, word++);
		if (fwrite(buf, 1, n, stdout) != n) {
			fprintf(stderr, "tcpcheck: pattern: write: %s\n", strerror(errno));
			return 1;
		}
		bytes -= n;
	}
	return fflush(stdout) ? 1 : 0;
}

static int cmd_connect(const char *opts)
{
	char answer[256];
	int fd = open("/dev/nvme-fabrics", O_RDWR);
	ssize_t n;

	if (fd < 0) {
		fprintf(stderr, "tcpcheck: /dev/nvme-fabrics: %s (nvme-fabrics loaded?)\n",
			strerror(errno));
		return 1;
	}
	/* the kernel parses one write(); the connect happens inside it */
	if (write(fd, opts, strlen(opts)) != (ssize_t)strlen(opts)) {
		fprintf(stderr, "tcpcheck: connect '%s': %s\n", opts, strerror(errno));
		close(fd);
		return 1;
	}
	n = read(fd, answer, sizeof(answer) - 1);
	close(fd);
	if (n <= 0) {
		fprintf(stderr, "tcpcheck: connect: no answer from /dev/nvme-fabrics\n");
		return 1;
	}
	answer[n] = '\0';
	answer[strcspn(answer, "\n")] = '\0';
	printf("%s\n", answer);
	return 0;
}

/* copy a space-padded / NUL-padded fixed-size field into a C string */
static void field(char *dst, const unsigned char *src, size_t len)
{
	memcpy(dst, src, len);
	dst[len] = '\0';
	for (size_t i = len; i > 0 && (dst[i - 1] == ' ' || dst[i - 1] == '\0'); i--)
		dst[i - 1] = '\0';
}

static uint64_t le(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Get Log Page (NVMe Base 2.0c §5.16): LID 70h, NUMD 0-based dwords, offset in bytes */
static int get_log(int fd, void *buf, uint32_t len, uint64_t off)
{
	struct nvme_passthru_cmd c;
	uint32_t numd = len / 4 - 1;

	memset(&c, 0, sizeof(c));
	c.opcode = 0x02;
	c.addr = (uint64_t)(uintptr_t)buf;
	c.data_len = len;
	c.cdw10 = 0x70 | (numd & 0xffff) << 16;
	c.cdw11 = numd >> 16;
	c.cdw12 = (uint32_t)off;
	c.cdw13 = (uint32_t)(off >> 32);
	c.timeout_ms = 10000;
	return ioctl(fd, NVME_IOCTL_ADMIN_CMD, &c);
}

static int cmd_disc_log(const char *dev)
{
	static const char *trtype[] = { [1] = "rdma", [2] = "fc", [3] = "tcp", [254] = "loop" };
	unsigned char hdr[1024], *log;
	uint64_t genctr, numrec;
	int fd = open(dev, O_RDWR), rc;

	if (fd < 0) {
		fprintf(stderr, "tcpcheck: %s: %s\n", dev, strerror(errno));
		return 1;
	}
	rc = get_log(fd, hdr, sizeof(hdr), 0);
	if (rc) {
		fprintf(stderr, "tcpcheck: discovery log header: %s\n",
			rc < 0 ? strerror(errno) : "NVMe error status");
		close(fd);
		return 1;
	}
	/* Base 2.0c Figure 293: GENCTR at 0, NUMREC at 8, RECFMT at 16; entries at 1024 */
	genctr = le(hdr, 8);
	numrec = le(hdr + 8, 8);
	printf("DISC: genctr=%" PRIu64 " numrec=%" PRIu64 " recfmt=%u\n", genctr, numrec,
	       (unsigned)le(hdr + 16, 2));
	if (numrec > 64) {
		fprintf(stderr, "tcpcheck: %" PRIu64 " records: too many\n", numrec);
		close(fd);
		return 1;
	}
	log = calloc(1, 1024 * (numrec + 1));
	if (!log || get_log(fd, log, (uint32_t)(1024 * (numrec + 1)), 0)) {
		fprintf(stderr, "tcpcheck: discovery log: %s\n", log ? strerror(errno) : "no memory");
		free(log);
		close(fd);
		return 1;
	}
	close(fd);
	if (le(log, 8) != genctr)
		printf("DISC: generation changed while reading (%" PRIu64 " -> %" PRIu64 ")\n",
		       genctr, le(log, 8));
	for (uint64_t i = 0; i < numrec; i++) {
		/* Base 2.0c Figure 294: TRTYPE 0, ADRFAM 1, SUBTYPE 2, PORTID 4, CNTLID 6,
		 * TRSVCID 32..63, SUBNQN 256..511, TRADDR 512..767 */
		const unsigned char *e = log + 1024 * (i + 1);
		char svc[33], nqn[257], addr[257];
		const char *tt = trtype[e[0]] ? trtype[e[0]] : "?";

		field(svc, e + 32, 32);
		field(nqn, e + 256, 256);
		field(addr, e + 512, 256);
		printf("DISC: entry %" PRIu64 " trtype=%s adrfam=%s subtype=%s portid=%u cntlid=%u "
		       "trsvcid=%s traddr=%s subnqn=%s\n", i, tt,
		       e[1] == 1 ? "ipv4" : e[1] == 2 ? "ipv6" : "other",
		       e[2] == 2 ? "nvme" : e[2] == 1 || e[2] == 3 ? "discovery" : "other",
		       (unsigned)le(e + 4, 2), (unsigned)le(e + 6, 2), svc, addr, nqn);
	}
	free(log);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	if (!strcmp(argv[1], "now") && argc == 2) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		printf("%.1f\n", ts.tv_sec * 1e3 + ts.tv_nsec / 1e6);
		return 0;
	}
	if (!strcmp(argv[1], "pattern") && argc == 4)
		return cmd_pattern(strtoull(argv[2], NULL, 0), strtoull(argv[3], NULL, 0));
	if (!strcmp(argv[1], "connect") && argc == 3)
		return cmd_connect(argv[2]);
	if (!strcmp(argv[1], "disc-log") && argc == 3)
		return cmd_disc_log(argv[2]);
	return usage();
}
