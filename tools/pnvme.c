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
 *   pnvme fw-log DEV [-o json]        Firmware Slot Information log
 *   pnvme format DEV -n NSID [--lbaf N ...] --yes       Format NVM (destroys data)
 *   pnvme sanitize DEV --action ACT [...] --yes         Sanitize (destroys data)
 *   pnvme sanitize-log DEV [-o json]  Sanitize Status log
 *   pnvme watch DEV [-o json]         print asynchronous events until interrupted
 *   pnvme CMD --help, pnvme --version
 *
 * DEV is a PCI address bound to vfio-pci or an emulator spec ("emu:size=1G").
 * Exit status: 0 success, 1 failure ("pnvme: <reason>" on stderr), 2 usage
 * (including a destructive command without --yes).
 *
 * JSON documents carry "pnvme_json_version" (PNVME_JSON_VERSION; raised when a
 * field changes meaning or goes away). Identify and log page fields have
 * nvme-cli's names where nvme-cli has the field; pnvme's own fields are under
 * the key "pnvme".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/nvme_ioctl.h>

#include <pnvme/pnvme.h>

/* The project version, from CMake (PNVME_TOOL_VERSION="x.y.z"). */
#ifndef PNVME_TOOL_VERSION
#define PNVME_TOOL_VERSION "unknown"
#endif

#define PNVME_JSON_VERSION 1

static const char *prog = "pnvme";

/* One subcommand: its synopsis, a line on what it does, and its --help text. */
struct command {
	const char *name;
	const char *args;
	const char *what;
	const char *help;
	bool json;          /* has -o json output */
};

static const struct command commands[] = {
	{ "list", "[-o json]", "NVMe controllers: driver, IOMMU group, block devices, use",
	  "Lists the PCI functions of class 010802h (NVM Express) with their driver, IOMMU\n"
	  "group, NUMA node, the kernel's controller and block devices, and what uses them\n"
	  "(mounts, swap, dm/md holders, processes with a device node open).\n", true },
	{ "bind", "BDF [--force]", "hand a controller to vfio-pci (refused while in use)",
	  "Binds PCI function BDF to vfio-pci (driver_override, unbind, reprobe).\n"
	  "Refused when the function is not an NVMe controller (class 010802h) and while\n"
	  "the kernel uses it: a namespace mounted, used as swap, held by dm/md, or a\n"
	  "device node open by a process. Needs root.\n"
	  "  -f, --force   bind anyway; prints on stderr what it overrides\n", false },
	{ "unbind", "BDF", "give a controller back to the kernel nvme driver",
	  "Binds BDF back to the kernel nvme driver, then waits (up to 10 s) for all\n"
	  "of the controller's active namespaces to appear as block devices and lists\n"
	  "them; says so when the list may be incomplete. Needs root.\n", false },
	{ "status", "", "hugepages, IOMMU, vfio-pci, memlock limit, devices",
	  "Shows what pnvme needs from the system: hugepages and hugetlbfs mounts,\n"
	  "IOMMU, vfio-pci and vfio_iommu_type1, RLIMIT_MEMLOCK, and the NVMe controllers.\n",
	  false },
	{ "setup", "--hugepages N", "reserve N 2 MiB hugepages, mount hugetlbfs",
	  "Writes N to /proc/sys/vm/nr_hugepages and mounts hugetlbfs on /dev/hugepages\n"
	  "unless one is mounted. Exits 1 if the kernel reserved fewer. Needs root.\n",
	  false },
	{ "id-ctrl", "DEV [-o json]", "Identify Controller",
	  "Identify Controller data, and the number of I/O queue pairs the controller\n"
	  "grants (Set Features Number of Queues, asking for the most).\n", true },
	{ "id-ns", "DEV -n NSID [-o json]", "Identify Namespace",
	  "Identify Namespace data of namespace NSID: size, each LBA format (metadata\n"
	  "size, data size, relative performance, the one in use), extended LBA or\n"
	  "separate metadata, and the end-to-end protection type and location.\n"
	  "  -n, --namespace-id NSID   namespace (1..4294967294)\n", true },
	{ "smart-log", "DEV [-o json]", "SMART / Health Information log",
	  "SMART / Health Information log page (02h), controller wide.\n", true },
	{ "discover", "ADDR [-o json]", "NVMe/TCP Discovery Log Page",
	  "Connects to the discovery controller at ADDR (HOST[:PORT], default port 4420,\n"
	  "or tcp:HOST[:PORT]?OPTIONS as for a device) and prints its Discovery Log Page\n"
	  "entries: transport, address, port, subsystem NQN.\n", true },
	{ "error-log", "DEV [-o json]", "Error Information log",
	  "Error Information log page (01h): the entries with a non-zero error count.\n",
	  true },
	{ "fw-log", "DEV [-o json]", "Firmware Slot Information log",
	  "Firmware Slot Information log page (03h): the slot the running firmware came\n"
	  "from, the slot activated at the next reset, and each slot's revision.\n", true },
	{ "format", "DEV -n NSID [--lbaf N] [--ms 0|1] [--pi N] [--pil 0|1] [--ses N] --yes",
	  "Format NVM: new LBA format / metadata / protection (DESTROYS DATA)",
	  "Low-level formats namespace NSID ('all': every namespace) with Format NVM\n"
	  "(NVMe Base 2.0 §5.23), then shows the namespaces as identified again. Settings\n"
	  "not given keep the namespace's current ones. The data on the namespace is lost;\n"
	  "without --yes nothing is sent (exit 2). Controllers may format every namespace\n"
	  "together (Identify Controller FNA bit 0). No I/O may run meanwhile.\n"
	  "  -n, --namespace-id NSID   namespace, or 'all' (NSID FFFFFFFFh)\n"
	  "  -l, --lbaf N              LBA format index 0..63 (see pnvme id-ns)\n"
	  "  -m, --ms, --mset 0|1      metadata: 1 extended LBAs, 0 a separate buffer\n"
	  "  -i, --pi 0..3             protection information type (0: none)\n"
	  "  -p, --pil 0|1             PI in the first (1) or last (0) 8 metadata bytes\n"
	  "  -s, --ses 0..2            secure erase: 0 none, 1 user data, 2 cryptographic\n"
	  "  -t, --timeout MS          wait this long (default 600000)\n"
	  "  -y, --yes, -f, --force    yes, destroy the data\n", false },
	{ "sanitize", "DEV --action block|crypto|overwrite|exit-failure [...] --yes",
	  "Sanitize: erase all user data of the NVM subsystem (DESTROYS DATA)",
	  "Starts a sanitize operation (NVMe Base 2.0 §5.24): block erase, crypto erase\n"
	  "or overwrite of ALL user data in the NVM subsystem, or exit failure mode after\n"
	  "a failed one. The operation runs in the background: follow it with\n"
	  "pnvme sanitize-log, or --wait here. The erasing actions need --yes (without it\n"
	  "nothing is sent: exit 2).\n"
	  "  -a, --action, --sanact ACT  block | crypto | overwrite | exit-failure (or\n"
	  "                              nvme-cli's 1..4 / start-block-erase / ...)\n"
	  "  --ause                      allow unrestricted sanitize exit\n"
	  "  --no-dealloc                no deallocation after sanitize (NDAS)\n"
	  "  --owpass N                  overwrite passes, 1..16 (default 1)\n"
	  "  --oipbp                     invert the overwrite pattern between passes\n"
	  "  --ovrpat N                  overwrite pattern, 32 bits (default 0)\n"
	  "  -w, --wait                  wait for completion, showing progress\n"
	  "  -y, --yes, -f, --force      yes, destroy the data\n", false },
	{ "sanitize-log", "DEV [-o json]", "Sanitize Status log",
	  "Sanitize Status log page (81h): progress of a sanitize operation, the status\n"
	  "of the most recent one and the command that started it, time estimates.\n", true },
	{ "watch", "DEV [-o json]", "print asynchronous events until interrupted",
	  "Opens DEV and prints each asynchronous event (NVMe Base 2.0 §5.2) as it\n"
	  "arrives, one line each, until SIGINT or SIGTERM (exit 0): SMART / Health\n"
	  "critical warnings, namespace attribute changes (with the changed NSIDs and\n"
	  "the namespace list after the library's rescan), and any other event the\n"
	  "controller reports. The library reads each event's log page, which re-arms\n"
	  "the event. With -o json: one JSON object per line.\n", true },
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: pnvme COMMAND [ARGS]   (pnvme COMMAND --help, pnvme --version)\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		char syn[128];
		snprintf(syn, sizeof(syn), "%s %s", commands[i].name, commands[i].args);
		if (strlen(syn) > 28)
			fprintf(f, "  %s\n  %-28s %s\n", syn, "", commands[i].what);
		else
			fprintf(f, "  %-28s %s\n", syn, commands[i].what);
	}
	fprintf(f, "DEV: PCI address bound to vfio-pci (0000:01:00.0) or emulator spec (emu:size=1G)\n");
}

static void command_usage(FILE *f, const struct command *c)
{
	fprintf(f, "usage: pnvme %s %s\n", c->name, c->args);
}

static void command_help(const struct command *c)
{
	command_usage(stdout, c);
	printf("%s.\n\n%s", c->what, c->help);
	if (c->json)
		printf("  -o, --output-format json|normal   one JSON document (nvme-cli field names)\n");
	printf("  -h, --help   this help\n");
	if (strstr(c->args, "DEV"))
		printf("DEV: PCI address bound to vfio-pci (0000:01:00.0) or emulator spec "
		       "(emu:size=1G)\n");
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

/*
 * A small JSON writer: one member per line, indented; j_key() writes the
 * comma before every member but the first of its object or array.
 */
static struct {
	int depth;
	bool first[16];
} jw;

static void j_key(const char *k)
{
	if (!jw.first[jw.depth])
		putchar(',');
	jw.first[jw.depth] = false;
	printf("\n%*s", 2 * jw.depth, "");
	if (k)
		printf("\"%s\": ", k);
}

static void j_open(const char *k, char bracket)
{
	j_key(k);
	putchar(bracket);
	jw.first[++jw.depth] = true;
}

static void j_close(char bracket)
{
	bool empty = jw.first[jw.depth--];
	if (!empty)
		printf("\n%*s", 2 * jw.depth, "");
	putchar(bracket);
}

static void j_u(const char *k, uint64_t v)
{
	j_key(k);
	printf("%" PRIu64, v);
}

static void j_i(const char *k, int64_t v)
{
	j_key(k);
	printf("%" PRId64, v);
}

static void j_b(const char *k, bool v)
{
	j_key(k);
	fputs(v ? "true" : "false", stdout);
}

static void j_s(const char *k, const char *v, size_t max)
{
	j_key(k);
	json_str(v, max);
}

/* A member whose value is already JSON text (a big number). */
static void j_raw(const char *k, const char *v)
{
	j_key(k);
	fputs(v, stdout);
}

/* Every document starts with its format version. */
static void j_begin(void)
{
	jw.depth = 0;
	putchar('{');
	jw.first[++jw.depth] = true;
	j_u("pnvme_json_version", PNVME_JSON_VERSION);
}

static void j_end(void)
{
	j_close('}');
	putchar('\n');
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

static void j_u128(const char *k, const uint8_t v[16])
{
	char num[48];
	u128_str(v, num, sizeof(num));
	j_raw(k, num);
}

/* Bytes as lower-case hex (NGUID, EUI64). */
static void j_hex(const char *k, const uint8_t *v, size_t n)
{
	char buf[2 * 16 + 1];
	for (size_t i = 0; i < n && i < 16; i++)
		snprintf(buf + 2 * i, 3, "%02x", v[i]);
	buf[2 * (n < 16 ? n : 16)] = '\0';
	j_s(k, buf, sizeof(buf));
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
		char id[8];
		j_begin();
		j_open("controllers", '[');
		for (size_t i = 0; i < n; i++) {
			const struct pnvme_pci_dev *d = &devs[i];
			j_open(NULL, '{');
			j_s("bdf", d->bdf, sizeof(d->bdf));
			snprintf(id, sizeof(id), "0x%04x", d->vendor);
			j_s("vendor", id, sizeof(id));
			snprintf(id, sizeof(id), "0x%04x", d->device);
			j_s("device", id, sizeof(id));
			j_s("driver", d->driver, sizeof(d->driver));
			j_i("iommu_group", d->iommu_group);
			j_i("numa_node", d->numa_node);
			j_s("kernel_name", d->ctrl_name, sizeof(d->ctrl_name));
			j_s("in_use", d->in_use, sizeof(d->in_use));
			j_open("block_devices", '[');
			for (unsigned b = 0; b < d->nr_blk; b++) {
				char dev[24];
				j_open(NULL, '{');
				j_s("name", d->blk[b].name, sizeof(d->blk[b].name));
				snprintf(dev, sizeof(dev), "%u:%u", d->blk[b].major, d->blk[b].minor);
				j_s("dev", dev, sizeof(dev));
				j_b("partition", d->blk[b].partition);
				j_s("in_use", d->blk[b].in_use, sizeof(d->blk[b].in_use));
				j_close('}');
			}
			j_close(']');
			j_close('}');
		}
		j_close(']');
		j_end();
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
	struct pnvme_pci_dev d;

	/* Say what --force overrides: the checks pnvme_pci_bind_vfio() skips. */
	if (force && pnvme_pci_probe(bdf, &d) == 0 && strcmp(d.driver, "vfio-pci") != 0) {
		if (d.class_code != PNVME_PCI_CLASS_NVME)
			fprintf(stderr, "%s: --force: %s is not an NVMe controller (PCI class %06x, "
				"not %06x); binding it anyway\n", prog, d.bdf, d.class_code,
				PNVME_PCI_CLASS_NVME);
		if (d.in_use[0])
			fprintf(stderr, "%s: --force: binding %s although %s\n", prog, d.bdf,
				d.in_use);
	}
	if (pnvme_pci_bind_vfio(bdf, force) != 0)
		return fail();
	if (pnvme_pci_probe(bdf, &d) == 0)
		printf("%s bound to %s (IOMMU group %d, /dev/vfio/%d)\n", d.bdf, d.driver,
		       d.iommu_group, d.iommu_group);
	return 0;
}

/* A sysfs attribute of a controller (under PNVME_SYSFS_ROOT, like pci.c, for tests). */
static bool read_ctrl_attr(const char *bdf, const char *ctrl, const char *attr, char *buf,
			   size_t len)
{
	const char *root = secure_getenv("PNVME_SYSFS_ROOT");
	char path[512];
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/nvme/%s/%s", root ? root : "",
		 bdf, ctrl, attr);
	f = fopen(path, "re");
	if (!f)
		return false;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (ok)
		buf[strcspn(buf, "\n")] = '\0';
	return ok;
}

/*
 * The number of active namespaces, asked of the kernel's controller device
 * (/dev/nvmeN) with Identify CNS 02h, Active Namespace ID list (NVMe Base 2.0
 * §5.17.2.2): each list holds the active NSIDs above CDW1.NSID, up to 1024.
 * Returns the count, or -1 with the reason in `why`.
 */
static long active_ns_count(const char *ctrl, char *why, size_t len)
{
	char path[64];
	uint32_t *list;
	long count = 0;
	uint32_t from = 0;
	int fd;

	snprintf(path, sizeof(path), "/dev/%s", ctrl);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, len, "%s: %s", path, strerror(errno));
		return -1;
	}
	list = aligned_alloc(4096, PNVME_IDENTIFY_DATA_SIZE);
	if (!list) {
		close(fd);
		snprintf(why, len, "out of memory");
		return -1;
	}
	for (;;) {
		struct nvme_admin_cmd c;
		unsigned k = 0;
		memset(&c, 0, sizeof(c));
		memset(list, 0, PNVME_IDENTIFY_DATA_SIZE);
		c.opcode = PNVME_ADM_IDENTIFY;
		c.nsid = from;
		c.addr = (uint64_t)(uintptr_t)list;
		c.data_len = PNVME_IDENTIFY_DATA_SIZE;
		c.cdw10 = PNVME_ID_CNS_NS_ACTIVE;
		int rc = ioctl(fd, NVME_IOCTL_ADMIN_CMD, &c);
		if (rc != 0) {
			if (rc < 0)
				snprintf(why, len, "%s: Identify: %s", path, strerror(errno));
			else
				snprintf(why, len, "%s: Identify: %s", path,
					 pnvme_status_str((uint16_t)rc));
			count = -1;
			break;
		}
		while (k < PNVME_ID_NS_LIST_MAX && list[k])
			k++;
		count += k;
		if (k < PNVME_ID_NS_LIST_MAX)
			break;
		from = list[PNVME_ID_NS_LIST_MAX - 1];
	}
	free(list);
	close(fd);
	return count;
}

static unsigned nr_disks(const struct pnvme_pci_dev *d)
{
	unsigned n = 0;
	for (unsigned b = 0; b < d->nr_blk; b++)
		n += !d->blk[b].partition;
	return n;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#define UNBIND_WAIT_MS  10000u /* for the namespaces to appear */
#define UNBIND_SETTLE_MS 1000u /* count unknown: no new disk for this long */

static int cmd_unbind(const char *bdf)
{
	struct pnvme_pci_dev d;
	char state[32] = "", why[160] = "";
	long want = -1;
	unsigned have = 0, last = 0;
	uint64_t t0, changed;
	bool live = false, done = false;

	if (pnvme_pci_unbind_vfio(bdf) != 0)
		return fail();
	/*
	 * The nvme driver brings the controller up, then scans its namespaces,
	 * asynchronously. Wait until as many disks exist as the controller has
	 * active namespaces; when that count cannot be read, until the
	 * controller is live and no disk appeared for UNBIND_SETTLE_MS.
	 */
	t0 = changed = now_ms();
	for (;;) {
		if (pnvme_pci_probe(bdf, &d) != 0)
			return fail();
		have = nr_disks(&d);
		if (have != last) {
			last = have;
			changed = now_ms();
		}
		live = d.ctrl_name[0] &&
		       read_ctrl_attr(d.bdf, d.ctrl_name, "state", state, sizeof(state)) &&
		       strcmp(state, "live") == 0;
		if (live && want < 0)
			want = active_ns_count(d.ctrl_name, why, sizeof(why));
		if (want >= 0 ? have >= (unsigned long)want
			      : live && now_ms() - changed >= UNBIND_SETTLE_MS) {
			done = true;
			break;
		}
		if (now_ms() - t0 >= UNBIND_WAIT_MS)
			break;
		usleep(50000);
	}
	printf("%s bound to %s (%s)", d.bdf, d.driver, d.ctrl_name[0] ? d.ctrl_name : "-");
	for (unsigned b = 0; b < d.nr_blk; b++)
		printf(" %s", d.blk[b].name);
	printf("\n");
	fflush(stdout);
	if (want >= 0 && !done)
		fprintf(stderr, "%s: %u of the controller's %ld active namespaces appeared within "
			"%u s; the list may be incomplete\n", prog, have, want,
			UNBIND_WAIT_MS / 1000u);
	else if (want < 0 && !live)
		fprintf(stderr, "%s: the controller did not become live within %u s (state: %s); "
			"the list may be incomplete\n", prog, UNBIND_WAIT_MS / 1000u,
			state[0] ? state : "unknown");
	else if (want < 0)
		fprintf(stderr, "%s: cannot read the number of namespaces (%s); the list may be "
			"incomplete\n", prog, why[0] ? why : "no answer");
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

/*
 * Admin only, but ask for every I/O queue the controller has: Set Features
 * Number of Queues (NVMe Base 2.0 §5.27.1.5) then reports what it grants,
 * which is what id-ctrl shows (a controller may cap the answer at the request).
 */
static int open_dev(const char *dev, struct pnvme_ctrl **ctrl)
{
	struct pnvme_ctrl_opts o;
	pnvme_ctrl_opts_default(&o);
	o.nr_io_queues = UINT16_MAX; /* NSQR/NCQR FFFEh: the most a host may ask for */
	return pnvme_ctrl_open(dev, &o, ctrl);
}

/* Power scale (Base 2.0 Figure 276: IPS, APS in bits 7:6). */
static unsigned psd_scale(uint8_t v)
{
	return (v >> 6) & 3u;
}

static void id_ctrl_json(struct pnvme_ctrl *ctrl, const struct pnvme_id_ctrl *id,
			 const char *sn, const char *mn, const char *fr)
{
	char buf[64];
	uint32_t vs = pnvme_ctrl_vs(ctrl);

	j_begin();
	j_u("vid", id->vid);
	j_u("ssvid", id->ssvid);
	j_s("sn", sn, 21);
	j_s("mn", mn, 41);
	j_s("fr", fr, 9);
	j_u("rab", id->rab);
	j_u("ieee", (uint32_t)id->ieee[2] << 16 | (uint32_t)id->ieee[1] << 8 | id->ieee[0]);
	j_u("cmic", id->cmic);
	j_u("mdts", id->mdts);
	j_u("cntlid", id->cntlid);
	j_u("ver", id->ver);
	j_u("rtd3r", id->rtd3r);
	j_u("rtd3e", id->rtd3e);
	j_u("oaes", id->oaes);
	j_u("ctratt", id->ctratt);
	j_u("rrls", id->rrls);
	j_u("cntrltype", id->cntrltype);
	const uint8_t *g = id->fguid;
	snprintf(buf, sizeof(buf), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x", g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7],
		 g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
	j_s("fguid", buf, sizeof(buf));
	j_u("crdt1", id->crdt1);
	j_u("crdt2", id->crdt2);
	j_u("crdt3", id->crdt3);
	j_u("nvmsr", id->nvmsr);
	j_u("vwci", id->vwci);
	j_u("mec", id->mec);
	j_u("oacs", id->oacs);
	j_u("acl", id->acl);
	j_u("aerl", id->aerl);
	j_u("frmw", id->frmw);
	j_u("lpa", id->lpa);
	j_u("elpe", id->elpe);
	j_u("npss", id->npss);
	j_u("avscc", id->avscc);
	j_u("apsta", id->apsta);
	j_u("wctemp", id->wctemp);
	j_u("cctemp", id->cctemp);
	j_u("mtfa", id->mtfa);
	j_u("hmpre", id->hmpre);
	j_u("hmmin", id->hmmin);
	j_u128("tnvmcap", id->tnvmcap);
	j_u128("unvmcap", id->unvmcap);
	j_u("rpmbs", id->rpmbs);
	j_u("edstt", id->edstt);
	j_u("dsto", id->dsto);
	j_u("fwug", id->fwug);
	j_u("kas", id->kas);
	j_u("hctma", id->hctma);
	j_u("mntmt", id->mntmt);
	j_u("mxtmt", id->mxtmt);
	j_u("sanicap", id->sanicap);
	j_u("hmminds", id->hmminds);
	j_u("hmmaxd", id->hmmaxd);
	j_u("nsetidmax", id->nsetidmax);
	j_u("endgidmax", id->endgidmax);
	j_u("anatt", id->anatt);
	j_u("anacap", id->anacap);
	j_u("anagrpmax", id->anagrpmax);
	j_u("nanagrpid", id->nanagrpid);
	j_u("pels", id->pels);
	j_u("domainid", id->domainid);
	j_u128("megcap", id->megcap);
	j_u("sqes", id->sqes);
	j_u("cqes", id->cqes);
	j_u("maxcmd", id->maxcmd);
	j_u("nn", id->nn);
	j_u("oncs", id->oncs);
	j_u("fuses", id->fuses);
	j_u("fna", id->fna);
	j_u("vwc", id->vwc);
	j_u("awun", id->awun);
	j_u("awupf", id->awupf);
	j_u("icsvscc", id->icsvscc);
	j_u("nwpc", id->nwpc);
	j_u("acwu", id->acwu);
	j_u("ocfs", id->ocfs);
	j_u("sgls", id->sgls);
	j_u("mnan", id->mnan);
	j_u128("maxdna", id->maxdna);
	j_u("maxcna", id->maxcna);
	char nqn[sizeof(id->subnqn) + 1];
	trimmed(nqn, id->subnqn, sizeof(id->subnqn));
	if (nqn[0])
		j_s("subnqn", nqn, sizeof(nqn));
	j_u("ioccsz", id->ioccsz);
	j_u("iorcsz", id->iorcsz);
	j_u("icdoff", id->icdoff);
	j_u("fcatt", id->fcatt);
	j_u("msdbd", id->msdbd);
	j_u("ofcs", id->ofcs);
	j_open("psds", '[');
	for (unsigned i = 0; i <= id->npss && i < 32; i++) {
		const struct pnvme_psd *p = &id->psd[i];
		j_open(NULL, '{');
		j_u("max_power", p->mp);
		j_u("max_power_scale", p->flags & 1u);
		j_u("non-operational_state", (p->flags >> 1) & 1u);
		j_u("entry_lat", p->enlat);
		j_u("exit_lat", p->exlat);
		j_u("read_tput", p->rrt);
		j_u("read_lat", p->rrl);
		j_u("write_tput", p->rwt);
		j_u("write_lat", p->rwl);
		j_u("idle_power", p->idlp);
		j_u("idle_scale", psd_scale(p->ips));
		j_u("active_power", p->actp);
		j_u("active_power_work", p->apws & 7u);
		j_u("active_scale", psd_scale(p->apws));
		j_close('}');
	}
	j_close(']');
	j_open("pnvme", '{');
	snprintf(buf, sizeof(buf), "%u.%u.%u", PNVME_VS_MJR(vs), PNVME_VS_MNR(vs),
		 PNVME_VS_TER(vs));
	j_s("nvme_version", buf, sizeof(buf));
	j_u("max_transfer_bytes", pnvme_ctrl_max_xfer(ctrl));
	j_u("io_queues", pnvme_ctrl_max_io_queues(ctrl));
	j_u("active_namespaces", pnvme_ctrl_nr_ns(ctrl));
	j_close('}');
	j_end();
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
		id_ctrl_json(ctrl, id, sn, mn, fr);
	} else {
		printf("vid       : 0x%04x\nssvid     : 0x%04x\nsn        : %s\nmn        : %s\n"
		       "fr        : %s\nversion   : %u.%u.%u\nmdts      : %u (max transfer %u bytes)\n"
		       "cntlid    : %u\noacs      : 0x%x\nacl       : %u\nelpe      : %u\n"
		       "sqes      : 0x%x\ncqes      : 0x%x\nnn        : %u\noncs      : 0x%x\n"
		       "vwc       : 0x%x\nsgls      : 0x%x\ncntrltype : %u\nio queues : %u (granted by "
		       "the controller: Set Features Number of Queues)\nactive ns : %u\n",
		       id->vid, id->ssvid, sn, mn, fr, PNVME_VS_MJR(vs), PNVME_VS_MNR(vs),
		       PNVME_VS_TER(vs), id->mdts, pnvme_ctrl_max_xfer(ctrl), id->cntlid, id->oacs,
		       id->acl, id->elpe, id->sqes, id->cqes, id->nn, id->oncs, id->vwc, id->sgls,
		       id->cntrltype, pnvme_ctrl_max_io_queues(ctrl), pnvme_ctrl_nr_ns(ctrl));
		char nqn[257];
		trimmed(nqn, id->subnqn, sizeof(id->subnqn));
		if (nqn[0])
			printf("subnqn    : %s\n", nqn);
		if (id->ioccsz) /* NVMe over Fabrics attributes */
			printf("ioccsz    : %u\niorcsz    : %u\nicdoff    : %u\nmaxcmd    : %u\n",
			       id->ioccsz, id->iorcsz, id->icdoff, id->maxcmd);
	}
	pnvme_ctrl_close(ctrl);
	return 0;
}

static const char *const rp_names[4] = { "best", "better", "good", "degraded" };

static void id_ns_json(const struct pnvme_ns *ns, uint32_t nsid)
{
	const struct pnvme_id_ns *id = &ns->id;
	unsigned fmt = PNVME_FLBAS_INDEX(id->flbas);
	unsigned pit = (unsigned)PNVME_GET(id->dps, PNVME_DPS_PIT);

	j_begin();
	j_u("nsze", id->nsze);
	j_u("ncap", id->ncap);
	j_u("nuse", id->nuse);
	j_u("nsfeat", id->nsfeat);
	j_u("nlbaf", id->nlbaf);
	j_u("flbas", id->flbas);
	j_u("mc", id->mc);
	j_u("dpc", id->dpc);
	j_u("dps", id->dps);
	j_u("nmic", id->nmic);
	j_u("rescap", id->rescap);
	j_u("fpi", id->fpi);
	j_u("dlfeat", id->dlfeat);
	j_u("nawun", id->nawun);
	j_u("nawupf", id->nawupf);
	j_u("nacwu", id->nacwu);
	j_u("nabsn", id->nabsn);
	j_u("nabo", id->nabo);
	j_u("nabspf", id->nabspf);
	j_u("noiob", id->noiob);
	j_u128("nvmcap", id->nvmcap);
	if (id->nsfeat & 0x30u) { /* OPTPERF: the preferred granularities are valid */
		j_u("npwg", id->npwg);
		j_u("npwa", id->npwa);
		if (id->nsfeat & 0x10u)
			j_u("npdg", id->npdg);
		j_u("npda", id->npda);
		j_u("nows", id->nows);
	}
	j_u("mssrl", id->mssrl);
	j_u("mcl", id->mcl);
	j_u("msrc", id->msrc);
	j_u("nulbaf", id->nulbaf);
	j_u("anagrpid", id->anagrpid);
	j_u("nsattr", id->nsattr);
	j_u("nvmsetid", id->nvmsetid);
	j_u("endgid", id->endgid);
	j_hex("nguid", id->nguid, sizeof(id->nguid));
	j_hex("eui64", id->eui64, sizeof(id->eui64));
	j_open("lbafs", '[');
	for (unsigned i = 0; i <= id->nlbaf && i < 64; i++) {
		j_open(NULL, '{');
		j_u("lbaf", i);
		j_u("ms", PNVME_GET(id->lbaf[i], PNVME_LBAF_MS));
		j_u("ds", PNVME_GET(id->lbaf[i], PNVME_LBAF_LBADS));
		j_u("rp", PNVME_GET(id->lbaf[i], PNVME_LBAF_RP));
		j_u("in_use", i == fmt);
		j_close('}');
	}
	j_close(']');
	j_open("pnvme", '{');
	j_u("nsid", nsid);
	j_u("lba_format", fmt);
	j_u("lba_size", ns->lba_size);
	j_u("ms", PNVME_GET(id->lbaf[fmt < 64 ? fmt : 0], PNVME_LBAF_MS));
	j_b("extended_lba", id->flbas & PNVME_FLBAS_META_EXT);
	j_u("pi_type", pit);
	if (pit)
		j_s("pi_location", id->dps & PNVME_DPS_PIP ? "first" : "last", 8);
	j_close('}');
	j_end();
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
	unsigned ms = fmt < 64 ? (unsigned)PNVME_GET(id->lbaf[fmt], PNVME_LBAF_MS) : 0;
	unsigned pit = (unsigned)PNVME_GET(id->dps, PNVME_DPS_PIT);
	if (json) {
		id_ns_json(ns, nsid);
		pnvme_ctrl_close(ctrl);
		return 0;
	}
	/* NVM Command Set 1.0 §4.1.5.1, Figure 97: FLBAS, DPS; Figure 98: LBA Format. */
	printf("nsid   : %u\nnsze   : %" PRIu64 "\nncap   : %" PRIu64 "\nnuse   : %" PRIu64
	       "\nnsfeat : 0x%x\nnlbaf  : %u\n", nsid, id->nsze, id->ncap, id->nuse, id->nsfeat,
	       id->nlbaf);
	printf("flbas  : 0x%x (LBA format %u; %s)\n", id->flbas, fmt,
	       ms == 0 ? "no metadata" :
	       id->flbas & PNVME_FLBAS_META_EXT ? "extended LBA: metadata follows each block's data" :
	       "metadata in a separate buffer");
	printf("mc     : 0x%x\ndpc    : 0x%x\n", id->mc, id->dpc);
	if (pit == 0)
		printf("dps    : 0x%x (no end-to-end protection)\n", id->dps);
	else
		printf("dps    : 0x%x (protection information type %u, in the %s bytes of the "
		       "metadata)\n", id->dps, pit, id->dps & PNVME_DPS_PIP ? "first" : "last");
	printf("dlfeat : 0x%x\n", id->dlfeat);
	for (unsigned i = 0; i <= id->nlbaf && i < 64; i++) {
		unsigned lms = (unsigned)PNVME_GET(id->lbaf[i], PNVME_LBAF_MS);
		unsigned ds = (unsigned)PNVME_GET(id->lbaf[i], PNVME_LBAF_LBADS);
		unsigned rp = (unsigned)PNVME_GET(id->lbaf[i], PNVME_LBAF_RP);
		char data[24];
		if (ds >= 9 && ds < 32)
			snprintf(data, sizeof(data), "%lu", 1ul << ds);
		else
			snprintf(data, sizeof(data), "2^%u", ds);
		printf("lbaf %2u : ms:%-3u lbads:%-2u rp:%u  %s data + %u metadata bytes, %s "
		       "performance%s\n", i, lms, ds, rp, data, lms, rp_names[rp & 3u],
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
	/* Base 2.0 §5.16.1.3, Figure 207; JSON names as nvme-cli's smart-log */
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
	if (json) {
		j_begin();
		j_u("critical_warning", log.critical_warning);
		j_u("temperature", temp);
		j_u("avail_spare", log.avail_spare);
		j_u("spare_thresh", log.spare_thresh);
		j_u("percent_used", log.percent_used);
		j_u("endurance_grp_critical_warning_summary", log.endgrp_crit_warn);
		for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
			j_u128(c[i].name, c[i].v);
		j_u("warning_temp_time", log.warning_temp_time);
		j_u("critical_comp_time", log.critical_comp_time);
		for (unsigned i = 0; i < 8; i++) {
			char key[24];
			if (log.temp_sensor[i] == 0)
				continue;
			snprintf(key, sizeof(key), "temperature_sensor_%u", i + 1);
			j_u(key, log.temp_sensor[i]);
		}
		j_u("thm_temp1_trans_count", log.thm_temp1_trans_count);
		j_u("thm_temp2_trans_count", log.thm_temp2_trans_count);
		j_u("thm_temp1_total_time", log.thm_temp1_total_time);
		j_u("thm_temp2_total_time", log.thm_temp2_total_time);
		j_open("pnvme", '{');
		j_i("temperature_celsius", (int64_t)temp - 273);
		j_close('}');
		j_end();
	} else {
		printf("critical_warning     : 0x%x\ntemperature          : %u K (%d C)\n"
		       "available_spare      : %u%%\nspare_threshold      : %u%%\n"
		       "percentage_used      : %u%%\n", log.critical_warning, temp,
		       (int)temp - 273, log.avail_spare, log.spare_thresh, log.percent_used);
		for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
			char num[48];
			u128_str(c[i].v, num, sizeof(num));
			printf("%-21s: %s\n", c[i].name, num);
		}
	}
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
	/* Base 2.0 §5.16.1.2, Figure 206; JSON names as nvme-cli's error-log */
	if (json) {
		j_begin();
		j_open("errors", '[');
	}
	unsigned shown = 0;
	for (unsigned i = 0; i < n; i++) {
		if (e[i].error_count == 0)
			continue;
		uint16_t st = (uint16_t)(e[i].status >> 1);
		if (json) {
			j_open(NULL, '{');
			j_u("error_count", e[i].error_count);
			j_u("sqid", e[i].sqid);
			j_u("cmdid", e[i].cmdid);
			j_u("status_field", st);
			j_u("phase_tag", e[i].status & 1u);
			j_u("parm_error_location", e[i].param_loc);
			j_u("lba", e[i].lba);
			j_u("nsid", e[i].nsid);
			j_u("vs", e[i].vs);
			j_u("trtype", e[i].trtype);
			j_u("cs", e[i].cs);
			j_u("trtype_spec_info", e[i].trtype_info);
			j_open("pnvme", '{');
			j_s("status", pnvme_status_str(st), 128);
			j_close('}');
			j_close('}');
		} else {
			printf("entry %u: error_count %" PRIu64 " sqid %u cmdid 0x%x status 0x%x "
			       "(%s) param_loc 0x%x lba %" PRIu64 " nsid %u\n", i, e[i].error_count,
			       e[i].sqid, e[i].cmdid, st, pnvme_status_str(st), e[i].param_loc,
			       e[i].lba, e[i].nsid);
		}
		shown++;
	}
	if (json) {
		j_close(']');
		j_open("pnvme", '{');
		j_u("entries_read", n);
		j_u("entries_shown", shown);
		j_close('}');
		j_end();
	} else if (!shown) {
		printf("no error log entries (%u read)\n", n);
	}
	free(e);
	pnvme_ctrl_close(ctrl);
	return 0;
}

static const char *subtype_str(uint8_t t)
{
	return t == PNVME_SUBTYPE_NVME ? "nvme subsystem" :
	       t == PNVME_SUBTYPE_DISCOVERY_CURRENT ? "current discovery subsystem" :
	       t == PNVME_SUBTYPE_DISCOVERY_REFERRAL ? "discovery subsystem referral" : "unknown";
}

/* Discovery Log Page (Base 2.0 §5.16.1.23), in nvme-cli's field names. */
static int cmd_discover(const char *addr, bool json)
{
	struct pnvme_disc_entry *e = NULL;
	uint32_t n = 0;
	uint64_t gen = 0;

	if (pnvme_discover(addr, &e, &n, &gen) != 0)
		return fail();
	if (json) {
		j_begin();
		j_u("genctr", gen);
		j_open("records", '[');
		for (uint32_t i = 0; i < n; i++) {
			j_open(NULL, '{');
			j_s("trtype", pnvme_trtype_str(e[i].trtype), 16);
			j_s("adrfam", e[i].adrfam == PNVME_ADRFAM_IPV4 ? "ipv4" :
				      e[i].adrfam == PNVME_ADRFAM_IPV6 ? "ipv6" : "unknown", 16);
			j_s("subtype", subtype_str(e[i].subtype), 40);
			j_u("treq", e[i].treq);
			j_u("portid", e[i].portid);
			j_s("trsvcid", e[i].trsvcid, sizeof(e[i].trsvcid));
			j_s("subnqn", e[i].subnqn, sizeof(e[i].subnqn));
			j_s("traddr", e[i].traddr, sizeof(e[i].traddr));
			j_u("cntlid", e[i].cntlid);
			j_u("asqsz", e[i].asqsz);
			j_close('}');
		}
		j_close(']');
		j_end();
	} else {
		printf("Discovery Log Number of Records %u, Generation counter %llu\n", n,
		       (unsigned long long)gen);
		for (uint32_t i = 0; i < n; i++)
			printf("=====Discovery Log Entry %u======\ntrtype=%s adrfam=%s subtype=%s "
			       "portid=%u trsvcid=%s traddr=%s subnqn=%s\n", i,
			       pnvme_trtype_str(e[i].trtype),
			       e[i].adrfam == PNVME_ADRFAM_IPV4 ? "ipv4" :
			       e[i].adrfam == PNVME_ADRFAM_IPV6 ? "ipv6" : "unknown",
			       e[i].subtype == PNVME_SUBTYPE_NVME ? "nvme" : "discovery", e[i].portid,
			       e[i].trsvcid, e[i].traddr, e[i].subnqn);
	}
	pnvme_disc_free(e);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* firmware log, Format NVM, Sanitize                                       */
/* ------------------------------------------------------------------------ */

static int cmd_fw_log(const char *dev, bool json)
{
	struct pnvme_ctrl *ctrl;
	struct pnvme_fw_slot_log log;
	if (open_dev(dev, &ctrl) != 0)
		return fail();
	if (pnvme_fw_log(ctrl, &log) != 0) {
		int rc = fail();
		pnvme_ctrl_close(ctrl);
		return rc;
	}
	unsigned nslots = (unsigned)PNVME_GET(pnvme_ctrl_id(ctrl)->frmw, PNVME_FRMW_NSLOTS);
	unsigned act = (unsigned)PNVME_GET(log.afi, PNVME_AFI_ACTIVE);
	unsigned next = (unsigned)PNVME_GET(log.afi, PNVME_AFI_NEXT);
	/* Base 2.0 §5.16.1.4; JSON names as nvme-cli's fw-log */
	if (json) {
		j_begin();
		j_u("Active Firmware Slot (afi)", log.afi);
		for (unsigned i = 0; i < 7; i++) {
			char key[24], val[48], rev[9];
			uint64_t raw;
			if (!log.frs[i][0])
				continue;
			memcpy(&raw, log.frs[i], 8);
			trimmed(rev, log.frs[i], 8);
			snprintf(key, sizeof(key), "Firmware Rev Slot %u", i + 1);
			snprintf(val, sizeof(val), "%" PRIu64 " (%s)", raw, rev);
			j_s(key, val, sizeof(val));
		}
		j_open("pnvme", '{');
		j_u("active_slot", act);
		j_u("next_slot", next);
		j_u("slots", nslots);
		j_b("slot1_read_only", pnvme_ctrl_id(ctrl)->frmw & PNVME_FRMW_SLOT1_RO);
		j_open("revisions", '[');
		for (unsigned i = 0; i < 7; i++) {
			char rev[9];
			if (!log.frs[i][0])
				continue;
			trimmed(rev, log.frs[i], 8);
			j_open(NULL, '{');
			j_u("slot", i + 1);
			j_s("revision", rev, sizeof(rev));
			j_close('}');
		}
		j_close(']');
		j_close('}');
		j_end();
	} else {
		printf("afi  : 0x%x (running slot %u; next reset: %s)\n", log.afi, act,
		       next ? "slot" : "no change");
		if (next)
			printf("next : slot %u\n", next);
		for (unsigned i = 0; i < 7; i++) {
			char rev[9];
			if (!log.frs[i][0])
				continue;
			trimmed(rev, log.frs[i], 8);
			printf("frs%u : %s%s\n", i + 1, rev, i + 1 == act ? " (active)" : "");
		}
		printf("slots: %u%s\n", nslots,
		       pnvme_ctrl_id(ctrl)->frmw & PNVME_FRMW_SLOT1_RO ? ", slot 1 read only" : "");
	}
	pnvme_ctrl_close(ctrl);
	return 0;
}

/* Format NVM settings from the command line; -1 = keep the namespace's. */
struct fmt_args {
	long lbaf, mset, pi, pil, ses, timeout_ms;
};

static void print_ns_format(const struct pnvme_ns *ns)
{
	char pi[40] = "no protection information";
	if (ns->pi_type)
		snprintf(pi, sizeof(pi), "PI type %u in the %s 8 bytes", ns->pi_type,
			 ns->pi_first ? "first" : "last");
	printf("namespace %u: LBA format %u, %u + %u bytes%s, %s, %" PRIu64 " blocks\n",
	       ns->nsid, PNVME_FLBAS_INDEX(ns->id.flbas), ns->lba_size, ns->ms,
	       ns->ms == 0 ? "" : ns->md_ext ? " (extended LBA)" : " (separate metadata)", pi,
	       ns->nlba);
}

static int cmd_format(const char *dev, uint32_t nsid, const struct fmt_args *fa)
{
	struct pnvme_ctrl *ctrl;
	if (open_dev(dev, &ctrl) != 0)
		return fail();
	const struct pnvme_ns *cur = nsid == PNVME_NSID_ALL ? pnvme_ctrl_ns_at(ctrl, 0)
							    : pnvme_ctrl_ns(ctrl, nsid);
	if (!cur) {
		fprintf(stderr, "%s: format: namespace %u is not active on %s\n", prog, nsid, dev);
		pnvme_ctrl_close(ctrl);
		return 1;
	}
	struct pnvme_format_opts o = {
		.lbaf = (uint8_t)(fa->lbaf >= 0 ? fa->lbaf : PNVME_FLBAS_INDEX(cur->id.flbas)),
		.mset = (uint8_t)(fa->mset >= 0 ? fa->mset : cur->md_ext),
		.pi = (uint8_t)(fa->pi >= 0 ? fa->pi : cur->pi_type),
		.pil = (uint8_t)(fa->pil >= 0 ? fa->pil : cur->pi_first),
		.ses = (uint8_t)(fa->ses >= 0 ? fa->ses : 0),
		.timeout_ms = fa->timeout_ms >= 0 ? (uint32_t)fa->timeout_ms : 0,
	};
	if (pnvme_format_nvm(ctrl, nsid, &o) != 0) {
		int rc = fail();
		pnvme_ctrl_close(ctrl);
		return rc;
	}
	if (nsid == PNVME_NSID_ALL)
		printf("formatted all namespaces of %s\n", dev);
	else
		printf("formatted namespace %u of %s\n", nsid, dev);
	for (uint32_t i = 0; i < pnvme_ctrl_nr_ns(ctrl); i++)
		print_ns_format(pnvme_ctrl_ns_at(ctrl, i));
	pnvme_ctrl_close(ctrl);
	return 0;
}

/* Base 2.0 §5.16.1 Sanitize Status: SSTAT bits 2:0 */
static const char *sstat_str(unsigned st)
{
	switch (st) {
	case PNVME_SSTAT_NEVER:          return "never sanitized";
	case PNVME_SSTAT_COMPLETED:      return "most recent sanitize completed successfully";
	case PNVME_SSTAT_IN_PROGRESS:    return "sanitize in progress";
	case PNVME_SSTAT_FAILED:         return "most recent sanitize failed";
	case PNVME_SSTAT_COMPLETED_NDAS: return "completed successfully, with deallocation "
					        "although no-deallocate was asked";
	default:                         return "reserved";
	}
}

static void est_str(uint32_t v, char *buf, size_t len)
{
	if (v == 0xffffffffu)
		snprintf(buf, len, "none");
	else
		snprintf(buf, len, "%u s", v);
}

static int cmd_sanitize_log(const char *dev, bool json)
{
	struct pnvme_ctrl *ctrl;
	struct pnvme_sanitize_log l;
	if (open_dev(dev, &ctrl) != 0)
		return fail();
	if (pnvme_sanitize_log(ctrl, &l) != 0) {
		int rc = fail();
		pnvme_ctrl_close(ctrl);
		return rc;
	}
	unsigned st = (unsigned)PNVME_GET(l.sstat, PNVME_SSTAT_STATUS);
	unsigned passes = (unsigned)PNVME_GET(l.sstat, PNVME_SSTAT_OPC);
	double pct = st == PNVME_SSTAT_IN_PROGRESS ? l.sprog * 100.0 / 65536.0 : 100.0;
	/* JSON names as nvme-cli's sanitize-log */
	if (json) {
		char str[128];
		j_begin();
		j_u("sprog", l.sprog);
		j_open("sstat", '{');
		j_u("global_erased", (l.sstat & PNVME_SSTAT_GDE) ? 1 : 0);
		j_u("no_cmplted_passes", passes);
		snprintf(str, sizeof(str), "(%u) %s", st, sstat_str(st));
		j_s("status", str, sizeof(str));
		j_close('}');
		j_u("cdw10_info", l.scdw10);
		j_u("time_over_write", l.eto);
		j_u("time_block_erase", l.etbe);
		j_u("time_crypto_erase", l.etce);
		j_u("time_over_write_no_dealloc", l.etondas);
		j_u("time_block_erase_no_dealloc", l.etbendas);
		j_u("time_crypto_erase_no_dealloc", l.etcendas);
		j_open("pnvme", '{');
		j_u("status", st);
		j_b("in_progress", st == PNVME_SSTAT_IN_PROGRESS);
		j_key("progress_percent");
		printf("%.1f", pct);
		j_close('}');
		j_end();
	} else {
		char a[24], b[24], c[24];
		if (st == PNVME_SSTAT_IN_PROGRESS)
			printf("sprog  : %u (%.1f%% done)\n", l.sprog, pct);
		else
			printf("sprog  : %u\n", l.sprog);
		printf("sstat  : 0x%x (%s; overwrite passes %u; global data erased %u)\n",
		       l.sstat, sstat_str(st), passes, (l.sstat & PNVME_SSTAT_GDE) ? 1 : 0);
		printf("scdw10 : 0x%x\n", l.scdw10);
		est_str(l.eto, a, sizeof(a));
		est_str(l.etbe, b, sizeof(b));
		est_str(l.etce, c, sizeof(c));
		printf("estimates: overwrite %s, block erase %s, crypto erase %s\n", a, b, c);
	}
	pnvme_ctrl_close(ctrl);
	return 0;
}

struct san_args {
	int action;            /* enum pnvme_sanact, 0: not given */
	uint32_t flags;
	long owpass;           /* -1: not given */
	uint32_t ovrpat;
	bool ovrpat_set, wait;
};

static int cmd_sanitize(const char *dev, const struct san_args *sa)
{
	struct pnvme_ctrl *ctrl;
	uint32_t flags = sa->flags;
	if (sa->action == PNVME_SANACT_OVERWRITE)
		flags |= PNVME_SET(PNVME_SANITIZE_OWPASS,
				   (uint32_t)(sa->owpass > 0 ? sa->owpass % 16 : 1));
	if (open_dev(dev, &ctrl) != 0)
		return fail();
	if (pnvme_sanitize(ctrl, (enum pnvme_sanact)sa->action, flags, sa->ovrpat) != 0) {
		int rc = fail();
		pnvme_ctrl_close(ctrl);
		return rc;
	}
	if (sa->action == PNVME_SANACT_EXIT_FAILURE) {
		printf("exit failure mode: done\n");
		pnvme_ctrl_close(ctrl);
		return 0;
	}
	if (!sa->wait) {
		printf("sanitize started (see pnvme sanitize-log %s)\n", dev);
		pnvme_ctrl_close(ctrl);
		return 0;
	}
	bool tty = isatty(STDOUT_FILENO);
	struct pnvme_sanitize_log l;
	unsigned st;
	for (;;) {
		if (pnvme_sanitize_log(ctrl, &l) != 0) {
			int rc = fail();
			pnvme_ctrl_close(ctrl);
			return rc;
		}
		st = (unsigned)PNVME_GET(l.sstat, PNVME_SSTAT_STATUS);
		if (st != PNVME_SSTAT_IN_PROGRESS)
			break;
		if (tty) {
			printf("\rsanitize: %5.1f%%", l.sprog * 100.0 / 65536.0);
			fflush(stdout);
		}
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (tty)
		printf("\r");
	printf("sanitize: %s\n", sstat_str(st));
	pnvme_ctrl_close(ctrl);
	return st == PNVME_SSTAT_FAILED ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* watch: asynchronous events                                               */
/* ------------------------------------------------------------------------ */

static volatile sig_atomic_t watch_stop;

static void watch_signal(int sig)
{
	(void)sig;
	watch_stop = 1;
}

struct watch {
	struct pnvme_ctrl *ctrl;
	bool json;
	uint64_t t0;
};

static const char *aer_type_str(uint8_t t)
{
	static const char *const names[8] = { "error", "smart", "notice", "immediate",
					      "one-shot", "reserved", "io-command-set", "vendor" };
	return names[t & 7u];
}

static const char *aer_info_str(const struct pnvme_async_event *ev)
{
	if (ev->type == PNVME_AER_TYPE_SMART) {
		switch (ev->info) {
		case PNVME_AER_SMART_RELIABILITY: return "NVM subsystem reliability";
		case PNVME_AER_SMART_TEMPERATURE: return "temperature threshold";
		case PNVME_AER_SMART_SPARE:       return "spare below threshold";
		}
	} else if (ev->type == PNVME_AER_TYPE_NOTICE) {
		switch (ev->info) {
		case PNVME_AER_NOTICE_NS_CHANGED:   return "namespace attribute changed";
		case PNVME_AER_NOTICE_FW_ACT:       return "firmware activation starting";
		case PNVME_AER_NOTICE_TELEMETRY:    return "telemetry log changed";
		case PNVME_AER_NOTICE_ANA:          return "asymmetric namespace access change";
		case PNVME_AER_NOTICE_DISC_CHANGED: return "discovery log changed";
		}
	}
	return "";
}

/* One line per event (the admin lock is held: no sync admin commands here). */
static void watch_cb(void *arg, const struct pnvme_async_event *ev)
{
	struct watch *w = arg;
	uint64_t t = now_ms() - w->t0;
	bool ns_event = ev->type == PNVME_AER_TYPE_NOTICE &&
			ev->info == PNVME_AER_NOTICE_NS_CHANGED;

	if (w->json) {
		printf("{\"pnvme_json_version\": %d, \"time_ms\": %" PRIu64 ", \"dw0\": %u, "
		       "\"type\": %u, \"type_name\": \"%s\", \"info\": %u, \"info_name\": "
		       "\"%s\", \"log_page\": %u, \"log_err\": %d", PNVME_JSON_VERSION, t, ev->dw0,
		       ev->type, aer_type_str(ev->type), ev->info, aer_info_str(ev), ev->log_page,
		       ev->log_err);
		if (ev->type == PNVME_AER_TYPE_SMART)
			printf(", \"critical_warning\": %u", ev->critical_warning);
		if (ns_event) {
			printf(", \"nsids\": [");
			for (uint32_t i = 0; i < ev->nr_nsids; i++)
				printf("%s%u", i ? ", " : "", ev->nsids[i]);
			printf("], \"ns_overflow\": %s, \"namespaces\": [",
			       ev->ns_overflow ? "true" : "false");
			for (uint32_t i = 0; i < pnvme_ctrl_nr_ns(w->ctrl); i++)
				printf("%s%u", i ? ", " : "", pnvme_ctrl_ns_at(w->ctrl, i)->nsid);
			printf("], \"ns_generation\": %u", pnvme_ctrl_ns_generation(w->ctrl));
		}
		printf("}\n");
	} else {
		printf("%" PRIu64 ".%03" PRIu64 " s  %s event (type %u, info 0x%02x%s%s), log page "
		       "0x%02x", t / 1000, t % 1000, aer_type_str(ev->type), ev->type, ev->info,
		       *aer_info_str(ev) ? ": " : "", aer_info_str(ev), ev->log_page);
		if (ev->log_err)
			printf(" (log page read failed: %s)", strerror(-ev->log_err));
		if (ev->type == PNVME_AER_TYPE_SMART)
			printf(", critical warning 0x%02x", ev->critical_warning);
		if (ns_event) {
			printf(", changed NSIDs");
			if (ev->ns_overflow)
				printf(" (more than 1024)");
			for (uint32_t i = 0; i < ev->nr_nsids; i++)
				printf("%s%u", i ? "," : " ", ev->nsids[i]);
			printf("; %u namespace(s) now:", pnvme_ctrl_nr_ns(w->ctrl));
			for (uint32_t i = 0; i < pnvme_ctrl_nr_ns(w->ctrl); i++)
				printf(" %u", pnvme_ctrl_ns_at(w->ctrl, i)->nsid);
		}
		printf("\n");
	}
	fflush(stdout);
}

static int cmd_watch(const char *dev, bool json)
{
	struct pnvme_ctrl_opts o;
	struct watch w = { .json = json, .t0 = now_ms() };
	struct sigaction sa;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = watch_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	pnvme_ctrl_opts_default(&o);
	o.nr_io_queues = 1;
	o.aer_cb = watch_cb;
	o.aer_arg = &w;
	if (pnvme_ctrl_open(dev, &o, &w.ctrl))
		return fail();
	fprintf(stderr, "%s: watching %s for asynchronous events (%u requests outstanding); "
		"Ctrl-C to stop\n", prog, dev, pnvme_ctrl_aer_outstanding(w.ctrl));
	rc = 0;
	while (!watch_stop) {
		/* Events are delivered from the admin poll; a tool can afford to sleep. */
		if (pnvme_ctrl_process_admin(w.ctrl) < 0 && pnvme_ctrl_is_dead(w.ctrl)) {
			rc = fail();
			break;
		}
		usleep(10000);
	}
	if (pnvme_ctrl_close(w.ctrl) && rc == 0)
		rc = fail();
	return rc;
}

/* ------------------------------------------------------------------------ */
/* argument parsing                                                         */
/* ------------------------------------------------------------------------ */

struct args {
	const char *pos[2];
	int npos;
	bool json, force, help, yes;
	long nsid, hugepages;
	struct fmt_args fmt;
	struct san_args san;
	const char *fmt_opt;   /* a format option given (for the misuse message) */
	const char *san_opt;   /* a sanitize option given */
};

/* A number option's value: 0..max (0x... allowed). false if missing or bad. */
static bool num_arg(int argc, char **argv, int *i, long max, long *out)
{
	if (*i + 1 >= argc)
		return false;
	const char *arg = argv[++*i];
	char *end;
	errno = 0;
	long v = strtol(arg, &end, 0);
	if (!*arg || *end || errno || v < 0 || v > max)
		return false;
	*out = v;
	return true;
}

/* Sanitize actions by name (ours and nvme-cli's) or number 1..4. */
static int sanact_parse(const char *v)
{
	static const struct { const char *name; int act; } names[] = {
		{ "exit-failure", PNVME_SANACT_EXIT_FAILURE }, { "1", 1 },
		{ "block", PNVME_SANACT_BLOCK_ERASE }, { "start-block-erase", 2 }, { "2", 2 },
		{ "overwrite", PNVME_SANACT_OVERWRITE }, { "start-overwrite", 3 }, { "3", 3 },
		{ "crypto", PNVME_SANACT_CRYPTO_ERASE }, { "start-crypto-erase", 4 }, { "4", 4 },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(v, names[i].name))
			return names[i].act;
	return 0;
}

/* One option of format or sanitize at argv[*i]: 1 taken, 0 not ours, 2 usage error. */
static int parse_admin_opt(int argc, char **argv, int *i, struct args *a)
{
	const char *s = argv[*i];
	long v = 0;
	struct { const char *s, *l, *l2; long max; long *dst; } fo[] = {
		{ "-l", "--lbaf", NULL, 63, &a->fmt.lbaf },
		{ "-m", "--ms", "--mset", 1, &a->fmt.mset },
		{ "-i", "--pi", NULL, 3, &a->fmt.pi },
		{ "-p", "--pil", NULL, 1, &a->fmt.pil },
		{ "-s", "--ses", NULL, 2, &a->fmt.ses },
		{ "-t", "--timeout", NULL, 0x7fffffffL, &a->fmt.timeout_ms },
	};
	for (size_t k = 0; k < sizeof(fo) / sizeof(fo[0]); k++) {
		if (strcmp(s, fo[k].s) && strcmp(s, fo[k].l) && (!fo[k].l2 || strcmp(s, fo[k].l2)))
			continue;
		if (!num_arg(argc, argv, i, fo[k].max, fo[k].dst)) {
			fprintf(stderr, "%s: %s needs a number 0..%ld\n", prog, s, fo[k].max);
			return 2;
		}
		a->fmt_opt = s;
		return 1;
	}
	if (!strcmp(s, "-a") || !strcmp(s, "--action") || !strcmp(s, "--sanact")) {
		if (*i + 1 >= argc || !(a->san.action = sanact_parse(argv[*i + 1]))) {
			fprintf(stderr, "%s: %s needs block, crypto, overwrite or exit-failure\n",
				prog, s);
			return 2;
		}
		++*i;
	} else if (!strcmp(s, "--ause")) {
		a->san.flags |= PNVME_SANITIZE_AUSE;
	} else if (!strcmp(s, "--no-dealloc")) {
		a->san.flags |= PNVME_SANITIZE_NDAS;
	} else if (!strcmp(s, "--oipbp")) {
		a->san.flags |= PNVME_SANITIZE_OIPBP;
	} else if (!strcmp(s, "--owpass")) {
		if (!num_arg(argc, argv, i, 16, &v) || v < 1) {
			fprintf(stderr, "%s: --owpass needs a number 1..16\n", prog);
			return 2;
		}
		a->san.owpass = v;
	} else if (!strcmp(s, "--ovrpat")) {
		if (!num_arg(argc, argv, i, 0xffffffffL, &v)) {
			fprintf(stderr, "%s: --ovrpat needs a 32-bit number\n", prog);
			return 2;
		}
		a->san.ovrpat = (uint32_t)v;
		a->san.ovrpat_set = true;
	} else if (!strcmp(s, "-w") || !strcmp(s, "--wait")) {
		a->san.wait = true;
	} else {
		return 0;
	}
	a->san_opt = s;
	return 1;
}

static int parse(int argc, char **argv, struct args *a)
{
	memset(a, 0, sizeof(*a));
	a->nsid = -1;
	a->hugepages = -1;
	a->fmt = (struct fmt_args){ -1, -1, -1, -1, -1, -1 };
	a->san.owpass = -1;
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
		int ar = parse_admin_opt(argc, argv, &i, a);
		if (ar == 2) {
			usage(stderr);
			return 2;
		}
		if (ar == 1)
			continue;
		if (!strcmp(s, "--force") || !strcmp(s, "-f")) {
			a->force = true;
		} else if (!strcmp(s, "--yes") || !strcmp(s, "-y")) {
			a->yes = true;
		} else if ((!strcmp(s, "-n") || !strcmp(s, "--namespace-id")) && i + 1 < argc &&
			   !strcmp(argv[i + 1], "all")) {
			a->nsid = PNVME_NSID_ALL;
			i++;
		} else if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
			a->help = true;
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

/* A usage error of one command: the reason and that command's synopsis. */
static int command_misuse(const struct command *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int command_misuse(const struct command *c, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: %s: ", prog, c->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	command_usage(stderr, c);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return bad_usage("no command");
	const char *name = argv[1];
	if (!strcmp(name, "--version") || !strcmp(name, "-V") || !strcmp(name, "version")) {
		printf("pnvme %s\n", PNVME_TOOL_VERSION);
		return 0;
	}
	if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
		const struct command *c = argc > 2 ? find_command(argv[2]) : NULL;
		if (c)
			command_help(c);
		else
			usage(stdout);
		return 0;
	}
	const struct command *c = find_command(name);
	if (!c) {
		fprintf(stderr, "%s: unknown command '%s'\n", prog, name);
		usage(stderr);
		return 2;
	}
	struct args a;
	int rc = parse(argc - 2, argv + 2, &a);
	if (rc)
		return rc;
	if (a.help) {
		command_help(c);
		return 0;
	}
	bool destructive = !strcmp(name, "format") || !strcmp(name, "sanitize");
	if (a.json && !c->json)
		return command_misuse(c, "no JSON output (-o json applies to list, id-ctrl, id-ns, "
				      "smart-log, error-log, fw-log, sanitize-log, discover and watch)");
	if (a.force && strcmp(name, "bind") != 0 && !destructive)
		return command_misuse(c, "--force applies to bind, format and sanitize only");
	if (a.yes && !destructive)
		return command_misuse(c, "--yes applies to format and sanitize only");
	if (a.nsid >= 0 && strcmp(name, "id-ns") != 0 && strcmp(name, "format") != 0)
		return command_misuse(c, "-n applies to id-ns and format only");
	if (a.nsid == (long)PNVME_NSID_ALL && strcmp(name, "format") != 0)
		return command_misuse(c, "-n all applies to format only");
	if (a.fmt_opt && strcmp(name, "format") != 0)
		return command_misuse(c, "%s applies to format only", a.fmt_opt);
	if (a.san_opt && strcmp(name, "sanitize") != 0)
		return command_misuse(c, "%s applies to sanitize only", a.san_opt);
	if (a.hugepages >= 0 && strcmp(name, "setup") != 0)
		return command_misuse(c, "--hugepages applies to setup only");

	int want = strstr(c->args, "BDF") || strstr(c->args, "DEV") || strstr(c->args, "ADDR") ? 1 : 0;
	if (a.npos != want)
		return command_misuse(c, "%s", want ? "needs one device argument"
						    : "takes no device argument");
	if (!strcmp(name, "list"))
		return cmd_list(a.json);
	if (!strcmp(name, "status"))
		return cmd_status();
	if (!strcmp(name, "setup")) {
		if (a.hugepages < 0)
			return command_misuse(c, "needs --hugepages N");
		return cmd_setup(a.hugepages);
	}
	if (!strcmp(name, "bind"))
		return cmd_bind(a.pos[0], a.force);
	if (!strcmp(name, "unbind"))
		return cmd_unbind(a.pos[0]);
	if (!strcmp(name, "id-ctrl"))
		return cmd_id_ctrl(a.pos[0], a.json);
	if (!strcmp(name, "id-ns")) {
		if (a.nsid < 0)
			return command_misuse(c, "needs -n NSID");
		return cmd_id_ns(a.pos[0], (uint32_t)a.nsid, a.json);
	}
	if (!strcmp(name, "smart-log"))
		return cmd_smart_log(a.pos[0], a.json);
	if (!strcmp(name, "discover"))
		return cmd_discover(a.pos[0], a.json);
	if (!strcmp(name, "fw-log"))
		return cmd_fw_log(a.pos[0], a.json);
	if (!strcmp(name, "sanitize-log"))
		return cmd_sanitize_log(a.pos[0], a.json);
	if (!strcmp(name, "format")) {
		if (a.nsid < 0)
			return command_misuse(c, "needs -n NSID (or -n all)");
		/* Refused before anything is opened: nothing reaches the device. */
		if (!a.yes && !a.force) {
			char nsname[24];
			if (a.nsid == (long)PNVME_NSID_ALL)
				snprintf(nsname, sizeof(nsname), "all");
			else
				snprintf(nsname, sizeof(nsname), "%ld", a.nsid);
			fprintf(stderr, "%s: format: this destroys all data on namespace %s of %s; "
				"add --yes to go ahead\n", prog, nsname, a.pos[0]);
			return 2;
		}
		return cmd_format(a.pos[0], (uint32_t)a.nsid, &a.fmt);
	}
	if (!strcmp(name, "sanitize")) {
		if (!a.san.action)
			return command_misuse(c, "needs --action block|crypto|overwrite|exit-failure");
		if (a.san.action != PNVME_SANACT_OVERWRITE &&
		    (a.san.owpass >= 0 || a.san.ovrpat_set || (a.san.flags & PNVME_SANITIZE_OIPBP)))
			return command_misuse(c, "--owpass, --ovrpat and --oipbp apply to --action "
					      "overwrite only");
		if (!a.yes && !a.force && a.san.action != PNVME_SANACT_EXIT_FAILURE) {
			fprintf(stderr, "%s: sanitize: this erases ALL user data in the NVM "
				"subsystem of %s; add --yes to go ahead\n", prog, a.pos[0]);
			return 2;
		}
		return cmd_sanitize(a.pos[0], &a.san);
	}
	if (!strcmp(name, "watch"))
		return cmd_watch(a.pos[0], a.json);
	return cmd_error_log(a.pos[0], a.json);
}
