/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme - manage NVMe controllers for user-space use, in the manner of nvme-cli.
 *
 *   pnvme list [-o json]              NVMe controllers, drivers, IOMMU groups, use
 *   pnvme bind BDF [--force]          hand a controller to vfio-pci
 *   pnvme unbind BDF                  give it back to the kernel nvme driver
 *   pnvme status                      hugepages, IOMMU, vfio-pci, memlock, devices
 *   pnvme setup --hugepages N         reserve 2 MiB hugepages, mount hugetlbfs
 *   pnvme id-ctrl DEV [-o json]       Identify Controller
 *   pnvme id-ns DEV -n NSID [-o json] Identify Namespace
 *   pnvme smart-log DEV [-o json]     SMART / Health log
 *   pnvme error-log DEV [-o json]     Error Information log
 *
 * DEV is a PCI address bound to vfio-pci or an emulator spec ("emu:size=1G").
 * Exit status: 0 success, 1 failure ("pnvme: <reason>" on stderr), 2 usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pnvme/pnvme.h>

static const char *prog = "pnvme";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pnvme COMMAND [ARGS]\n"
		"  list [-o json]               NVMe controllers: driver, IOMMU group, block devices, use\n"
		"  bind BDF [--force]           hand a controller to vfio-pci (refused while in use)\n"
		"  unbind BDF                   give a controller back to the kernel nvme driver\n"
		"  status                       hugepages, IOMMU, vfio-pci, memlock limit, devices\n"
		"  setup --hugepages N          reserve N 2 MiB hugepages, mount hugetlbfs\n"
		"  id-ctrl DEV [-o json]        Identify Controller\n"
		"  id-ns DEV -n NSID [-o json]  Identify Namespace\n"
		"  smart-log DEV [-o json]      SMART / Health Information log\n"
		"  error-log DEV [-o json]      Error Information log\n"
		"DEV: PCI address bound to vfio-pci (0000:01:00.0) or emulator spec (emu:size=1G)\n");
}

static int fail(void)
{
	fprintf(stderr, "%s: %s\n", prog, pnvme_last_error());
	return 1;
}

static int bad_usage(const char *why)
{
	fprintf(stderr, "%s: %s\n", prog, why);
	usage(stderr);
	return 2;
}

/* ------------------------------------------------------------------------ */
/* output helpers                                                           */
/* ------------------------------------------------------------------------ */

static void json_str(const char *s, size_t max)
{
	putchar('"');
	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* An ASCII identify field without its space padding. */
static void trimmed(char *dst, const char *src, size_t n)
{
	memcpy(dst, src, n);
	dst[n] = '\0';
	while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == '\0'))
		dst[--n] = '\0';
}

/* 128-bit little-endian counter as a decimal string (log pages). */
static void u128_str(const uint8_t v[16], char *out, size_t len)
{
	uint8_t n[16];
	char tmp[48];
	int pos = (int)sizeof(tmp) - 1;
	memcpy(n, v, 16);
	tmp[pos] = '\0';
	for (;;) {
		unsigned rem = 0;
		bool zero = true;
		for (int i = 15; i >= 0; i--) {
			unsigned cur = (rem << 8) | n[i];
			n[i] = (uint8_t)(cur / 10);
			rem = cur % 10;
			if (n[i])
				zero = false;
		}
		tmp[--pos] = (char)('0' + rem);
		if (zero || pos == 0)
			break;
	}
	snprintf(out, len, "%s", &tmp[pos]);
}

/* ------------------------------------------------------------------------ */
/* list / bind / unbind                                                     */
/* ------------------------------------------------------------------------ */

static int cmd_list(bool json)
{
	struct pnvme_pci_dev *devs;
	size_t n;
	if (pnvme_pci_list(&devs, &n) != 0)
		return fail();
	if (json) {
		printf("{\n  \"controllers\": [");
		for (size_t i = 0; i < n; i++) {
			const struct pnvme_pci_dev *d = &devs[i];
			printf("%s\n    {\"bdf\": \"%s\", \"vendor\": \"0x%04x\", \"device\": \"0x%04x\", "
			       "\"driver\": ", i ? "," : "", d->bdf, d->vendor, d->device);
			json_str(d->driver, sizeof(d->driver));
			printf(", \"iommu_group\": %d, \"numa_node\": %d, \"kernel_name\": ",
			       d->iommu_group, d->numa_node);
			json_str(d->ctrl_name, sizeof(d->ctrl_name));
			printf(", \"in_use\": ");
			json_str(d->in_use, sizeof(d->in_use));
			printf(", \"block_devices\": [");
			for (unsigned b = 0; b < d->nr_blk; b++) {
				printf("%s{\"name\": \"%s\", \"dev\": \"%u:%u\", \"partition\": %s, "
				       "\"in_use\": ", b ? ", " : "", d->blk[b].name, d->blk[b].major,
				       d->blk[b].minor, d->blk[b].partition ? "true" : "false");
				json_str(d->blk[b].in_use, sizeof(d->blk[b].in_use));
				printf("}");
			}
			printf("]}");
		}
		printf("%s]\n}\n", n ? "\n  " : "");
	} else if (n == 0) {
		printf("no NVMe controllers (PCI class 010802) found\n");
	} else {
		printf("%-13s %-9s %-9s %-9s %-6s %s\n", "BDF", "VID:DID", "DRIVER", "KERNEL",
		       "GROUP", "BLOCK DEVICES / USE");
		for (size_t i = 0; i < n; i++) {
			const struct pnvme_pci_dev *d = &devs[i];
			char grp[16], ids[16];
			snprintf(grp, sizeof(grp), "%d", d->iommu_group);
			snprintf(ids, sizeof(ids), "%04x:%04x", d->vendor, d->device);
			printf("%-13s %-9s %-9s %-9s %-6s", d->bdf, ids,
			       d->driver[0] ? d->driver : "-", d->ctrl_name[0] ? d->ctrl_name : "-",
			       d->iommu_group < 0 ? "none" : grp);
			for (unsigned b = 0; b < d->nr_blk; b++)
				printf(" %s", d->blk[b].name);
			if (d->in_use[0])
				printf("  [in use: %s]", d->in_use);
			printf("\n");
		}
	}
	pnvme_pci_list_free(devs);
	return 0;
}

static int cmd_bind(const char *bdf, bool force)
{
	if (pnvme_pci_bind_vfio(bdf, force) != 0)
		return fail();
	struct pnvme_pci_dev d;
	if (pnvme_pci_probe(bdf, &d) == 0)
		printf("%s bound to %s (IOMMU group %d, /dev/vfio/%d)\n", d.bdf, d.driver,
		       d.iommu_group, d.iommu_group);
	return 0;
}

static int cmd_unbind(const char *bdf)
{
	if (pnvme_pci_unbind_vfio(bdf) != 0)
		return fail();
	/* The nvme driver brings the controller up asynchronously: wait a little for disks. */
	struct pnvme_pci_dev d;
	for (int i = 0; i < 100; i++) {
		if (pnvme_pci_probe(bdf, &d) != 0)
			return fail();
		if (d.nr_blk > 0)
			break;
		usleep(50000);
	}
	printf("%s bound to %s (%s)", d.bdf, d.driver, d.ctrl_name[0] ? d.ctrl_name : "-");
	for (unsigned b = 0; b < d.nr_blk; b++)
		printf(" %s", d.blk[b].name);
	printf("\n");
	return 0;
}

/* ------------------------------------------------------------------------ */
/* status / setup                                                           */
/* ------------------------------------------------------------------------ */

static long read_long(const char *path)
{
	FILE *f = fopen(path, "re");
	long v = -1;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static void print_hugetlbfs_mounts(void)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	int found = 0;
	char dev[256], dir[256], type[64], opts[256];
	if (f) {
		while (fscanf(f, "%255s %255s %63s %255s %*d %*d", dev, dir, type, opts) == 4) {
			if (strcmp(type, "hugetlbfs") == 0) {
				printf("  hugetlbfs mounted on %s (%s)\n", dir, opts);
				found++;
			}
		}
		fclose(f);
	}
	if (!found)
		printf("  hugetlbfs: not mounted (pnvme setup mounts it on /dev/hugepages)\n");
}

static int cmd_status(void)
{
	printf("hugepages:\n");
	DIR *d = opendir("/sys/kernel/mm/hugepages");
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strncmp(e->d_name, "hugepages-", 10) != 0)
				continue;
			char p[512];
			snprintf(p, sizeof(p), "/sys/kernel/mm/hugepages/%s/nr_hugepages", e->d_name);
			long total = read_long(p);
			snprintf(p, sizeof(p), "/sys/kernel/mm/hugepages/%s/free_hugepages", e->d_name);
			long freep = read_long(p);
			printf("  %-22s free %ld of %ld\n", e->d_name + 10, freep, total);
		}
		closedir(d);
	}
	print_hugetlbfs_mounts();

	int units = 0;
	d = opendir("/sys/class/iommu");
	printf("IOMMU: ");
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				printf("%s%s", units++ ? ", " : "", e->d_name);
		closedir(d);
	}
	printf("%s\n", units ? " (on)" :
	       "off (no /sys/class/iommu entries: boot with intel_iommu=on or amd_iommu=on)");

	bool vfio_pci = access("/sys/bus/pci/drivers/vfio-pci", F_OK) == 0;
	bool type1 = access("/sys/module/vfio_iommu_type1", F_OK) == 0;
	bool container = access("/dev/vfio/vfio", F_OK) == 0;
	printf("vfio-pci driver: %s; vfio_iommu_type1: %s; /dev/vfio/vfio: %s\n",
	       vfio_pci ? "loaded" : "NOT loaded (modprobe vfio-pci)",
	       type1 ? "loaded" : "not loaded", container ? "present" : "missing");

	struct rlimit rl;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
		if (rl.rlim_cur == RLIM_INFINITY)
			printf("RLIMIT_MEMLOCK: unlimited\n");
		else
			printf("RLIMIT_MEMLOCK: %llu KiB%s\n", (unsigned long long)rl.rlim_cur / 1024,
			       geteuid() == 0 ? " (root: not enforced with CAP_IPC_LOCK)"
					      : " (raise with `ulimit -l unlimited` for DMA)");
	}
	printf("NVMe controllers:\n");
	fflush(stdout);
	return cmd_list(false);
}

static int cmd_setup(long pages)
{
	const char *nr = "/proc/sys/vm/nr_hugepages";
	FILE *f = fopen(nr, "we");
	if (!f || fprintf(f, "%ld\n", pages) < 0 || fclose(f) != 0) {
		fprintf(stderr, "%s: cannot write %s: %s%s\n", prog, nr, strerror(errno),
			errno == EACCES ? " (run as root)" : "");
		return 1;
	}
	long got = read_long(nr);
	printf("hugepages: asked for %ld, the kernel reserved %ld (2 MiB each)\n", pages, got);
	if (got < pages)
		printf("  (memory is fragmented or short; reserve at boot with hugepages=%ld)\n",
		       pages);

	/* mount hugetlbfs on /dev/hugepages unless some hugetlbfs is mounted already */
	FILE *m = fopen("/proc/self/mounts", "re");
	bool mounted = false;
	char dev[256], dir[256], type[64];
	if (m) {
		while (fscanf(m, "%255s %255s %63s %*s %*d %*d", dev, dir, type) == 3)
			if (strcmp(type, "hugetlbfs") == 0)
				mounted = true;
		fclose(m);
	}
	if (!mounted) {
		if (mkdir("/dev/hugepages", 0755) != 0 && errno != EEXIST) {
			fprintf(stderr, "%s: mkdir /dev/hugepages: %s\n", prog, strerror(errno));
			return 1;
		}
		if (mount("nodev", "/dev/hugepages", "hugetlbfs", 0, NULL) != 0) {
			fprintf(stderr, "%s: mount hugetlbfs on /dev/hugepages: %s\n", prog,
				strerror(errno));
			return 1;
		}
		printf("hugetlbfs mounted on /dev/hugepages\n");
	} else {
		printf("hugetlbfs already mounted\n");
	}
	return got >= pages ? 0 : 1;
}

/* ------------------------------------------------------------------------ */
/* identify and log pages                                                   */
/* ------------------------------------------------------------------------ */

static int open_dev(const char *dev, struct pnvme_ctrl **ctrl)
{
	struct pnvme_ctrl_opts o;
	pnvme_ctrl_opts_default(&o);
	o.nr_io_queues = 1;  /* admin only: ask for as little as possible */
	return pnvme_ctrl_open(dev, &o, ctrl);
}

static int cmd_id_ctrl(const char *dev, bool json)
{
	struct pnvme_ctrl *ctrl;
	if (open_dev(dev, &ctrl) != 0)
		return fail();
	const struct pnvme_id_ctrl *id = pnvme_ctrl_id(ctrl);
	char sn[21], mn[41], fr[9];
	trimmed(sn, id->sn, sizeof(id->sn));
	trimmed(mn, id->mn, sizeof(id->mn));
	trimmed(fr, id->fr, sizeof(id->fr));
	uint32_t vs = pnvme_ctrl_vs(ctrl);
	if (json) {
		printf("{\"vid\": %u, \"ssvid\": %u, \"sn\": ", id->vid, id->ssvid);
		json_str(sn, sizeof(sn));
		printf(", \"mn\": ");
		json_str(mn, sizeof(mn));
		printf(", \"fr\": ");
		json_str(fr, sizeof(fr));
		printf(", \"mdts\": %u, \"cntlid\": %u, \"ver\": %u, \"oacs\": %u, \"acl\": %u, "
		       "\"elpe\": %u, \"sqes\": %u, \"cqes\": %u, \"nn\": %u, \"oncs\": %u, "
		       "\"vwc\": %u, \"max_xfer\": %u, \"io_queues\": %u, \"active_ns\": %u}\n",
		       id->mdts, id->cntlid, id->ver, id->oacs, id->acl, id->elpe, id->sqes,
		       id->cqes, id->nn, id->oncs, id->vwc, pnvme_ctrl_max_xfer(ctrl),
		       pnvme_ctrl_max_io_queues(ctrl), pnvme_ctrl_nr_ns(ctrl));
	} else {
		printf("vid       : 0x%04x\nssvid     : 0x%04x\nsn        : %s\nmn        : %s\n"
		       "fr        : %s\nversion   : %u.%u.%u\nmdts      : %u (max transfer %u bytes)\n"
		       "cntlid    : %u\noacs      : 0x%x\nacl       : %u\nelpe      : %u\n"
		       "sqes      : 0x%x\ncqes      : 0x%x\nnn        : %u\noncs      : 0x%x\n"
		       "vwc       : 0x%x\nio queues : %u granted\nactive ns : %u\n",
		       id->vid, id->ssvid, sn, mn, fr, PNVME_VS_MJR(vs), PNVME_VS_MNR(vs),
		       PNVME_VS_TER(vs), id->mdts, pnvme_ctrl_max_xfer(ctrl), id->cntlid, id->oacs,
		       id->acl, id->elpe, id->sqes, id->cqes, id->nn, id->oncs, id->vwc,
		       pnvme_ctrl_max_io_queues(ctrl), pnvme_ctrl_nr_ns(ctrl));
	}
	pnvme_ctrl_close(ctrl);
	return 0;
}

static int cmd_id_ns(const char *dev, uint32_t nsid, bool json)
{
	struct pnvme_ctrl *ctrl;
	if (open_dev(dev, &ctrl) != 0)
		return fail();
	const struct pnvme_ns *ns = pnvme_ctrl_ns(ctrl, nsid);
	if (!ns) {
		fprintf(stderr, "%s: namespace %u is not active on %s (%u active)\n", prog, nsid,
			dev, pnvme_ctrl_nr_ns(ctrl));
		pnvme_ctrl_close(ctrl);
		return 1;
	}
	const struct pnvme_id_ns *id = &ns->id;
	unsigned fmt = PNVME_FLBAS_INDEX(id->flbas);
	if (json) {
		printf("{\"nsid\": %u, \"nsze\": %" PRIu64 ", \"ncap\": %" PRIu64 ", \"nuse\": %"
		       PRIu64 ", \"nsfeat\": %u, \"nlbaf\": %u, \"flbas\": %u, \"dlfeat\": %u, "
		       "\"lba_size\": %u, \"ms\": %u, \"lbafs\": [",
		       nsid, id->nsze, id->ncap, id->nuse, id->nsfeat, id->nlbaf, id->flbas,
		       id->dlfeat, ns->lba_size, ns->ms);
		for (unsigned i = 0; i <= id->nlbaf && i < 64; i++)
			printf("%s{\"ms\": %u, \"ds\": %u, \"rp\": %u}", i ? ", " : "",
			       (unsigned)PNVME_GET(id->lbaf[i], PNVME_LBAF_MS),
			       (unsigned)PNVME_GET(id->lbaf[i], PNVME_LBAF_LBADS),
			       (unsigned)PNVME_GET(id->lbaf[i], PNVME_LBAF_RP));
		printf("]}\n");
	} else {
		printf("nsid   : %u\nnsze   : %" PRIu64 "\nncap   : %" PRIu64 "\nnuse   : %" PRIu64
		       "\nnsfeat : 0x%x\nnlbaf  : %u\nflbas  : 0x%x\ndlfeat : 0x%x\n",
		       nsid, id->nsze, id->ncap, id->nuse, id->nsfeat, id->nlbaf, id->flbas,
		       id->dlfeat);
		for (unsigned i = 0; i <= id->nlbaf && i < 64; i++)
			printf("lbaf %2u : ms:%-3u lbads:%-2u rp:%u%s\n", i,
			       (unsigned)PNVME_GET(id->lbaf[i], PNVME_LBAF_MS),
			       (unsigned)PNVME_GET(id->lbaf[i], PNVME_LBAF_LBADS),
			       (unsigned)PNVME_GET(id->lbaf[i], PNVME_LBAF_RP),
			       i == fmt ? " (in use)" : "");
	}
	pnvme_ctrl_close(ctrl);
	return 0;
}

static int cmd_smart_log(const char *dev, bool json)
{
	struct pnvme_ctrl *ctrl;
	struct pnvme_smart_log log;
	if (open_dev(dev, &ctrl) != 0)
		return fail();
	if (pnvme_smart_log(ctrl, &log) != 0) {
		int rc = fail();
		pnvme_ctrl_close(ctrl);
		return rc;
	}
	struct { const char *name; const uint8_t *v; } c[] = {
		{ "data_units_read", log.data_units_read },
		{ "data_units_written", log.data_units_written },
		{ "host_read_commands", log.host_reads },
		{ "host_write_commands", log.host_writes },
		{ "controller_busy_time", log.ctrl_busy_time },
		{ "power_cycles", log.power_cycles },
		{ "power_on_hours", log.power_on_hours },
		{ "unsafe_shutdowns", log.unsafe_shutdowns },
		{ "media_errors", log.media_errors },
		{ "num_err_log_entries", log.num_err_log_entries },
	};
	unsigned temp = (unsigned)log.temperature[0] | ((unsigned)log.temperature[1] << 8);
	if (json)
		printf("{\"critical_warning\": %u, \"temperature\": %u, \"avail_spare\": %u, "
		       "\"spare_thresh\": %u, \"percent_used\": %u", log.critical_warning, temp,
		       log.avail_spare, log.spare_thresh, log.percent_used);
	else
		printf("critical_warning     : 0x%x\ntemperature          : %u K (%d C)\n"
		       "available_spare      : %u%%\nspare_threshold      : %u%%\n"
		       "percentage_used      : %u%%\n", log.critical_warning, temp,
		       (int)temp - 273, log.avail_spare, log.spare_thresh, log.percent_used);
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char num[48];
		u128_str(c[i].v, num, sizeof(num));
		if (json)
			printf(", \"%s\": %s", c[i].name, num);
		else
			printf("%-21s: %s\n", c[i].name, num);
	}
	if (json)
		printf("}\n");
	pnvme_ctrl_close(ctrl);
	return 0;
}

static int cmd_error_log(const char *dev, bool json)
{
	struct pnvme_ctrl *ctrl;
	if (open_dev(dev, &ctrl) != 0)
		return fail();
	unsigned n = (unsigned)pnvme_ctrl_id(ctrl)->elpe + 1;
	if (n > 64)
		n = 64;
	struct pnvme_error_log *e = calloc(n, sizeof(*e));
	if (!e) {
		fprintf(stderr, "%s: out of memory\n", prog);
		pnvme_ctrl_close(ctrl);
		return 1;
	}
	if (pnvme_error_log(ctrl, e, n) != 0) {
		int rc = fail();
		free(e);
		pnvme_ctrl_close(ctrl);
		return rc;
	}
	if (json)
		printf("{\"entries\": [");
	unsigned shown = 0;
	for (unsigned i = 0; i < n; i++) {
		if (e[i].error_count == 0)
			continue;
		uint16_t st = (uint16_t)(e[i].status >> 1);
		if (json)
			printf("%s{\"error_count\": %" PRIu64 ", \"sqid\": %u, \"cmdid\": %u, "
			       "\"status\": %u, \"status_str\": \"%s\", \"param_loc\": %u, \"lba\": %"
			       PRIu64 ", \"nsid\": %u}", shown ? ", " : "", e[i].error_count,
			       e[i].sqid, e[i].cmdid, st, pnvme_status_str(st), e[i].param_loc,
			       e[i].lba, e[i].nsid);
		else
			printf("entry %u: error_count %" PRIu64 " sqid %u cmdid 0x%x status 0x%x "
			       "(%s) param_loc 0x%x lba %" PRIu64 " nsid %u\n", i, e[i].error_count,
			       e[i].sqid, e[i].cmdid, st, pnvme_status_str(st), e[i].param_loc,
			       e[i].lba, e[i].nsid);
		shown++;
	}
	if (json)
		printf("]}\n");
	else if (!shown)
		printf("no error log entries (%u read)\n", n);
	free(e);
	pnvme_ctrl_close(ctrl);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* argument parsing                                                         */
/* ------------------------------------------------------------------------ */

struct args {
	const char *pos[2];
	int npos;
	bool json, force;
	long nsid, hugepages;
};

static int parse(int argc, char **argv, struct args *a)
{
	memset(a, 0, sizeof(*a));
	a->nsid = -1;
	a->hugepages = -1;
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		const char *val = NULL;
		if (!strcmp(s, "-o") || !strcmp(s, "--output-format")) {
			if (++i >= argc)
				return bad_usage("-o needs a value (json)");
			val = argv[i];
		} else if (!strncmp(s, "--output-format=", 16)) {
			val = s + 16;
		}
		if (val) {
			if (strcmp(val, "json") == 0)
				a->json = true;
			else if (strcmp(val, "normal") != 0)
				return bad_usage("output format must be json or normal");
			continue;
		}
		if (!strcmp(s, "--force") || !strcmp(s, "-f")) {
			a->force = true;
		} else if (!strcmp(s, "-n") || !strcmp(s, "--namespace-id") ||
			   !strcmp(s, "--hugepages")) {
			if (i + 1 >= argc)
				return bad_usage("option needs a value");
			bool pages = !strcmp(s, "--hugepages");
			const char *arg = argv[i + 1];
			char *end;
			errno = 0;
			long v = strtol(arg, &end, 0);
			if (!*arg || *end || errno || v < 0 ||
			    (!pages && (v < 1 || v > 0xfffffffeL)))
				return bad_usage(pages ? "bad hugepage count"
						       : "bad namespace id (1..4294967294)");
			if (pages)
				a->hugepages = v;
			else
				a->nsid = v;
			i++;
		} else if (s[0] == '-' && s[1]) {
			fprintf(stderr, "%s: unknown option '%s'\n", prog, s);
			usage(stderr);
			return 2;
		} else if (a->npos < 2) {
			a->pos[a->npos++] = s;
		} else {
			return bad_usage("too many arguments");
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return bad_usage("no command");
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	struct args a;
	int rc = parse(argc - 2, argv + 2, &a);
	if (rc)
		return rc;

	if (!strcmp(cmd, "list") && a.npos == 0)
		return cmd_list(a.json);
	if (!strcmp(cmd, "status") && a.npos == 0)
		return cmd_status();
	if (!strcmp(cmd, "setup") && a.npos == 0 && a.hugepages >= 0)
		return cmd_setup(a.hugepages);
	if (!strcmp(cmd, "bind") && a.npos == 1)
		return cmd_bind(a.pos[0], a.force);
	if (!strcmp(cmd, "unbind") && a.npos == 1)
		return cmd_unbind(a.pos[0]);
	if (!strcmp(cmd, "id-ctrl") && a.npos == 1)
		return cmd_id_ctrl(a.pos[0], a.json);
	if (!strcmp(cmd, "id-ns") && a.npos == 1 && a.nsid > 0)
		return cmd_id_ns(a.pos[0], (uint32_t)a.nsid, a.json);
	if (!strcmp(cmd, "smart-log") && a.npos == 1)
		return cmd_smart_log(a.pos[0], a.json);
	if (!strcmp(cmd, "error-log") && a.npos == 1)
		return cmd_error_log(a.pos[0], a.json);

	static const char *const known[] = { "list", "status", "setup", "bind", "unbind",
					     "id-ctrl", "id-ns", "smart-log", "error-log" };
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(cmd, known[i]))
			return bad_usage("wrong arguments for this command");
	fprintf(stderr, "%s: unknown command '%s'\n", prog, cmd);
	usage(stderr);
	return 2;
}
