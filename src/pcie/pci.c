/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pci.c - NVMe controllers on the PCI bus: discovery (libpci, or sysfs when
 * built without it), what the kernel uses them for, and moving them between
 * the nvme driver and vfio-pci through sysfs (driver_override, unbind,
 * drivers_probe; Linux Documentation/ABI/testing/sysfs-bus-pci).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#ifdef PNVME_HAVE_LIBPCI
#include <setjmp.h>
#include <pci/pci.h>
#endif

#include <pnvme/pci.h>

#include "internal.h"

#define SYSFS_PCI         "/sys/bus/pci"
#define SYSFS_PCI_DEVICES SYSFS_PCI "/devices"
#define SYSFS_BLOCK       "/sys/class/block"
#define SYSFS_NVME_GENERIC "/sys/class/nvme-generic"

/* ------------------------------------------------------------------------ */
/* sysfs helpers                                                            */
/* ------------------------------------------------------------------------ */

/*
 * For tests only: PNVME_SYSFS_ROOT=DIR makes this file read and write
 * DIR/sys/... instead of /sys/... (discovery, in-use checks, bind, unbind),
 * so that tests can build a fake device tree in a temporary directory and
 * drive bind and unbind without touching a real device. /proc and /dev are
 * not redirected; nor is vfio.c. Ignored in setuid programs (secure_getenv).
 */
static const char *sysfs_root(void)
{
	const char *r = secure_getenv("PNVME_SYSFS_ROOT");

	return r ? r : "";
}

/* A sysfs path (`fmt` starts with "/sys/"), under the test root if one is set. */
__attribute__((format(printf, 3, 4)))
static int spath(char *buf, size_t len, const char *fmt, ...)
{
	const char *root = sysfs_root();
	size_t n = strlen(root);
	va_list ap;
	int k;

	if (n >= len) {
		buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	memcpy(buf, root, n);
	va_start(ap, fmt);
	k = vsnprintf(buf + n, len - n, fmt, ap);
	va_end(ap);
	if (k < 0 || (size_t)k >= len - n) {
		buf[0] = '\0'; /* never a cut path: it could name something else */
		return -ENAMETOOLONG;
	}
	return 0;
}

static int read_str(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	int err = errno;
	close(fd);
	if (n < 0)
		return -err;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int read_ulong(const char *path, unsigned long *v)
{
	char buf[64];
	int rc = read_str(path, buf, sizeof(buf));
	if (rc)
		return rc;
	char *end;
	errno = 0;
	*v = strtoul(buf, &end, 0);
	return (errno || end == buf) ? -EINVAL : 0;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = strlen(s);
	ssize_t n = write(fd, s, len);
	int err = errno;
	close(fd);
	if (n < 0)
		return -err;
	return (size_t)n == len ? 0 : -EIO;
}

/* The last path component of a symbolic link's target (sysfs driver, iommu_group). */
int pnvme_link_base(const char *path, char *out, size_t len)
{
	char buf[PATH_MAX];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	const char *b = strrchr(buf, '/');
	const char *src = b ? b + 1 : buf;
	size_t k = strnlen(src, len - 1);
	memcpy(out, src, k);
	out[k] = '\0';
	return 0;
}

/* Copy with truncation (a plain "%s" snprintf draws -Wformat-truncation). */
static void copy_str(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static void current_driver(const char *bdf, char *out, size_t len)
{
	char p[PATH_MAX];
	spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/driver", bdf);
	if (pnvme_link_base(p, out, len) != 0)
		out[0] = '\0';
}

static int dev_numbers(const char *sysdir, uint32_t *maj, uint32_t *min)
{
	char p[PATH_MAX], buf[32];
	unsigned a, b;
	if ((size_t)snprintf(p, sizeof(p), "%s/dev", sysdir) >= sizeof(p))
		return -ENAMETOOLONG;
	if (read_str(p, buf, sizeof(buf)) != 0 || sscanf(buf, "%u:%u", &a, &b) != 2)
		return -ENOENT;
	*maj = a;
	*min = b;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* addresses                                                                */
/* ------------------------------------------------------------------------ */

int pnvme_pci_bdf_normalize(const char *in, char out[PNVME_PCI_BDF_LEN])
{
	unsigned dom = 0, bus, dev, fn;
	int used = 0;
	if (!in || !out)
		return pnvme_fail(-EINVAL, "%s", !in ? "no PCI address given" : "pci: NULL output");
	if (sscanf(in, "%x:%x:%x.%x%n", &dom, &bus, &dev, &fn, &used) == 4 &&
	    in[used] == '\0') {
		/* dddd:bb:dd.f */
	} else if (dom = 0, used = 0,
		   sscanf(in, "%x:%x.%x%n", &bus, &dev, &fn, &used) == 3 && in[used] == '\0') {
		/* bb:dd.f, domain 0 */
	} else {
		return pnvme_fail(-EINVAL, "'%s' is not a PCI address (expected DDDD:BB:DD.F, "
				  "e.g. 0000:01:00.0)", in);
	}
	for (const char *c = in; *c; c++)
		if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.')
			return pnvme_fail(-EINVAL, "'%s' is not a PCI address", in);
	if (dom > 0xffff || bus > 0xff || dev > 0x1f || fn > 7)
		return pnvme_fail(-EINVAL, "'%s': PCI address out of range", in);
	snprintf(out, PNVME_PCI_BDF_LEN, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* who uses a block device                                                  */
/* ------------------------------------------------------------------------ */

struct mount_ent {
	uint32_t major, minor;
	char point[160];
};

struct usage {
	struct mount_ent *mounts;
	size_t nr_mounts;
	dev_t *swaps;
	size_t nr_swaps;
};

/* Unescape the octal escapes mountinfo uses for spaces etc. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] && r[3]) {
			*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

static void usage_load(struct usage *u)
{
	memset(u, 0, sizeof(*u));
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (f) {
		char line[1024];
		size_t cap = 0;
		while (fgets(line, sizeof(line), f)) {
			/* 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw */
			unsigned maj, min;
			char point[512];
			if (sscanf(line, "%*u %*u %u:%u %*s %511s", &maj, &min, point) != 3)
				continue;
			if (u->nr_mounts == cap) {
				size_t nc = cap ? cap * 2 : 32;
				struct mount_ent *m = realloc(u->mounts, nc * sizeof(*m));
				if (!m)
					break;
				u->mounts = m;
				cap = nc;
			}
			unescape(point);
			struct mount_ent *m = &u->mounts[u->nr_mounts++];
			m->major = maj;
			m->minor = min;
			copy_str(m->point, sizeof(m->point), point);
		}
		fclose(f);
	}
	f = fopen("/proc/swaps", "re");
	if (f) {
		char line[512];
		size_t cap = 0;
		while (fgets(line, sizeof(line), f)) {
			char path[256];
			struct stat st;
			if (sscanf(line, "%255s", path) != 1 || path[0] != '/')
				continue;  /* header line */
			unescape(path);
			if (stat(path, &st) != 0 || !S_ISBLK(st.st_mode))
				continue;
			if (u->nr_swaps == cap) {
				size_t nc = cap ? cap * 2 : 4;
				dev_t *s = realloc(u->swaps, nc * sizeof(*s));
				if (!s)
					break;
				u->swaps = s;
				cap = nc;
			}
			u->swaps[u->nr_swaps++] = st.st_rdev;
		}
		fclose(f);
	}
}

static void usage_free(struct usage *u)
{
	free(u->mounts);
	free(u->swaps);
}

static void holders_of(const char *name, char *out, size_t len)
{
	char dir[PATH_MAX];
	size_t used = 0;
	out[0] = '\0';
	spath(dir, sizeof(dir), SYSFS_BLOCK "/%s/holders", name);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char what[160] = "", p[PATH_MAX];
		spath(p, sizeof(p), SYSFS_BLOCK "/%s/dm/name", e->d_name);
		if (read_str(p, what, sizeof(what)) == 0) {
			char tmp[200];
			if (snprintf(tmp, sizeof(tmp), " (device-mapper %s)", what) > 0)
				copy_str(what, sizeof(what), tmp);
		} else {
			spath(p, sizeof(p), SYSFS_BLOCK "/%s/md", e->d_name);
			if (exists(p))
				snprintf(what, sizeof(what), " (md RAID)");
		}
		int n = snprintf(out + used, len - used, "%s%s%s", used ? ", " : "", e->d_name,
				 what);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
	closedir(d);
}

/* Append `why` (if any) to the "; "-separated list in `dst`, cut at its end. */
static void add_reason(char *dst, size_t len, const char *why)
{
	size_t n = strlen(dst);

	if (!why[0] || n + 3 >= len)
		return;
	if (n) {
		memcpy(dst + n, "; ", 2);
		n += 2;
	}
	copy_str(dst + n, len - n, why);
}

/* Static checks (mounts, swap, holders) for one block device: every reason found. */
static void blk_check(struct pnvme_pci_blk *b, const struct usage *u)
{
	dev_t rdev = makedev(b->major, b->minor);
	char name[sizeof(b->name)], why[sizeof(b->in_use)];

	/* A copy: the message is written into the same structure. */
	snprintf(name, sizeof(name), "%s", b->name);
	b->in_use[0] = '\0';
	for (size_t i = 0; i < u->nr_mounts; i++) {
		if (u->mounts[i].major == b->major && u->mounts[i].minor == b->minor) {
			if (snprintf(why, sizeof(why), "%s is mounted on %s", name,
				     u->mounts[i].point) < 0)
				why[0] = '\0';
			add_reason(b->in_use, sizeof(b->in_use), why);
			break;
		}
	}
	for (size_t i = 0; i < u->nr_swaps; i++) {
		if (u->swaps[i] == rdev) {
			snprintf(why, sizeof(why), "%s is used as swap", name);
			add_reason(b->in_use, sizeof(b->in_use), why);
			break;
		}
	}
	char h[128];
	holders_of(name, h, sizeof(h));
	if (h[0]) {
		snprintf(why, sizeof(why), "%s is held by %s", name, h);
		add_reason(b->in_use, sizeof(b->in_use), why);
	}
}

/*
 * Walk /proc/PID/fd of every other process (best effort: root sees all) and
 * return the first descriptor that `match` accepts (compared by device
 * number, so any path to the node counts). Fills pid, comm and the fd's
 * target; returns the label `match` gave, or NULL.
 */
struct opener {
	long pid;
	char comm[64];
	char target[PATH_MAX];
};

typedef const char *(*fd_match_fn)(const struct stat *st, void *arg);

static const char *find_opener(fd_match_fn match, void *arg, struct opener *o)
{
	const char *hit = NULL;
	DIR *proc = opendir("/proc");
	if (!proc)
		return NULL;
	pid_t self = getpid();
	struct dirent *p;
	while (!hit && (p = readdir(proc)) != NULL) {
		char *end;
		long pid = strtol(p->d_name, &end, 10);
		if (*end || pid <= 0 || pid == self)
			continue;
		char fddir[64];
		snprintf(fddir, sizeof(fddir), "/proc/%ld/fd", pid);
		DIR *fds = opendir(fddir);
		if (!fds)
			continue;
		struct dirent *f;
		while (!hit && (f = readdir(fds)) != NULL) {
			char fp[128];
			struct stat st;
			if (f->d_name[0] == '.')
				continue;
			if (snprintf(fp, sizeof(fp), "%s/%s", fddir, f->d_name) >= (int)sizeof(fp) ||
			    stat(fp, &st) != 0)
				continue;
			hit = match(&st, arg);
			if (!hit)
				continue;
			char cp[64];
			o->pid = pid;
			snprintf(o->comm, sizeof(o->comm), "?");
			snprintf(cp, sizeof(cp), "/proc/%ld/comm", pid);
			read_str(cp, o->comm, sizeof(o->comm));
			ssize_t n = readlink(fp, o->target, sizeof(o->target) - 1);
			o->target[n > 0 ? n : 0] = '\0';
		}
		closedir(fds);
	}
	closedir(proc);
	return hit;
}

/* The controller's block devices and character devices (nvme0, ng0n1). */
struct ctrl_nodes {
	const struct pnvme_pci_dev *dev;
	const dev_t *chr;
	size_t nr_chr;
};

static const char *match_ctrl(const struct stat *st, void *arg)
{
	const struct ctrl_nodes *n = arg;

	if (S_ISBLK(st->st_mode)) {
		for (unsigned i = 0; i < n->dev->nr_blk; i++)
			if (st->st_rdev == makedev(n->dev->blk[i].major, n->dev->blk[i].minor))
				return n->dev->blk[i].name;
	} else if (S_ISCHR(st->st_mode)) {
		for (size_t i = 0; i < n->nr_chr; i++)
			if (st->st_rdev == n->chr[i])
				return "its character device";
	}
	return NULL;
}

/* One character device node (e.g. /dev/vfio/N). */
struct chr_node {
	dev_t rdev;
	const char *path;
};

static const char *match_chr(const struct stat *st, void *arg)
{
	const struct chr_node *c = arg;

	return S_ISCHR(st->st_mode) && st->st_rdev == c->rdev ? c->path : NULL;
}

/* A process holding one of the controller's device nodes open, into `why`. */
static void open_by_process(const struct pnvme_pci_dev *dev, const dev_t *chr, size_t nr_chr,
			    char *why, size_t len)
{
	struct ctrl_nodes n = { .dev = dev, .chr = chr, .nr_chr = nr_chr };
	struct opener o;
	const char *hit = find_opener(match_ctrl, &n, &o);

	if (hit && snprintf(why, len, "%s is open by pid %ld (%s) as %.64s", hit, o.pid, o.comm,
			    o.target[0] ? o.target : "?") < 0)
		why[0] = '\0';
}

int pnvme_chr_opener(const char *path, char *out, size_t len)
{
	struct chr_node c = { .path = path };
	struct stat st;
	struct opener o;

	out[0] = '\0';
	if (stat(path, &st) != 0 || !S_ISCHR(st.st_mode))
		return -ENOENT;
	c.rdev = st.st_rdev;
	if (!find_opener(match_chr, &c, &o))
		return -ENOENT;
	snprintf(out, len, "pid %ld (%s)", o.pid, o.comm);
	return 0;
}

static void add_blk(struct pnvme_pci_dev *dev, const char *name, bool partition)
{
	if (dev->nr_blk >= PNVME_PCI_MAX_BLK)
		return;
	for (unsigned i = 0; i < dev->nr_blk; i++)
		if (strcmp(dev->blk[i].name, name) == 0)
			return;
	char dir[PATH_MAX];
	struct pnvme_pci_blk *b = &dev->blk[dev->nr_blk];
	memset(b, 0, sizeof(*b));
	spath(dir, sizeof(dir), SYSFS_BLOCK "/%s", name);
	if (dev_numbers(dir, &b->major, &b->minor) != 0)
		return;
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->partition = partition;
	dev->nr_blk++;
}

/* True for nvme<A>n<B> and nvme<A>c<C>n<B>. */
static bool is_ns_name(const char *s, char *head, size_t len)
{
	unsigned a, c, b;
	int n = 0;
	if (sscanf(s, "nvme%un%u%n", &a, &b, &n) == 2 && s[n] == '\0') {
		copy_str(head, len, s);
		return true;
	}
	if (sscanf(s, "nvme%uc%un%u%n", &a, &c, &b, &n) == 3 && s[n] == '\0') {
		/* a hidden multipath path device: the visible disk is nvme<A>n<B> */
		snprintf(head, len, "nvme%un%u", a, b);
		return true;
	}
	return false;
}

static int cmp_blk(const void *a, const void *b)
{
	return strverscmp(((const struct pnvme_pci_blk *)a)->name,
			  ((const struct pnvme_pci_blk *)b)->name);
}

/* The kernel's view of a controller the nvme driver owns: disks, partitions, use. */
static void fill_blockdevs(struct pnvme_pci_dev *dev)
{
	char dir[PATH_MAX];
	dev_t chr[1 + PNVME_PCI_MAX_BLK];
	size_t nr_chr = 0;

	spath(dir, sizeof(dir), SYSFS_PCI_DEVICES "/%s/nvme", dev->bdf);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "nvme", 4) != 0)
			continue;
		if (!dev->ctrl_name[0])
			copy_str(dev->ctrl_name, sizeof(dev->ctrl_name), e->d_name);
		char cdir[PATH_MAX];
		uint32_t ma, mi;
		if (snprintf(cdir, sizeof(cdir), "%s/%s", dir, e->d_name) >= (int)sizeof(cdir))
			continue;
		if (dev_numbers(cdir, &ma, &mi) == 0)
			chr[nr_chr++] = makedev(ma, mi);
		DIR *cd = opendir(cdir);
		if (!cd)
			continue;
		struct dirent *ne;
		while ((ne = readdir(cd)) != NULL) {
			char head[64];
			if (!is_ns_name(ne->d_name, head, sizeof(head)))
				continue;
			add_blk(dev, head, false);
			/* generic char device ng<A>n<B> of this namespace */
			char ng[PATH_MAX];
			unsigned a, b;
			if (sscanf(head, "nvme%un%u", &a, &b) == 2 && nr_chr < ARRAY_SIZE(chr)) {
				spath(ng, sizeof(ng), SYSFS_NVME_GENERIC "/ng%un%u", a, b);
				if (dev_numbers(ng, &ma, &mi) == 0)
					chr[nr_chr++] = makedev(ma, mi);
			}
		}
		closedir(cd);
	}
	closedir(d);

	qsort(dev->blk, dev->nr_blk, sizeof(dev->blk[0]), cmp_blk);

	/* partitions: /sys/class/block/nvme0n1/nvme0n1p1/partition */
	unsigned disks = dev->nr_blk;
	for (unsigned i = 0; i < disks; i++) {
		char bdir[PATH_MAX];
		spath(bdir, sizeof(bdir), SYSFS_BLOCK "/%s", dev->blk[i].name);
		DIR *bd = opendir(bdir);
		if (!bd)
			continue;
		struct dirent *pe;
		while ((pe = readdir(bd)) != NULL) {
			char pp[PATH_MAX];
			if (strncmp(pe->d_name, dev->blk[i].name, strlen(dev->blk[i].name)) != 0)
				continue;
			if (snprintf(pp, sizeof(pp), "%s/%s/partition", bdir, pe->d_name) <
				    (int)sizeof(pp) && exists(pp))
				add_blk(dev, pe->d_name, true);
		}
		closedir(bd);
	}

	/* Every reason, so that `bind --force` can say all it overrides. */
	struct usage u;
	char why[sizeof(dev->in_use)] = "";
	usage_load(&u);
	for (unsigned i = 0; i < dev->nr_blk; i++) {
		blk_check(&dev->blk[i], &u);
		add_reason(dev->in_use, sizeof(dev->in_use), dev->blk[i].in_use);
	}
	usage_free(&u);
	open_by_process(dev, chr, nr_chr, why, sizeof(why));
	add_reason(dev->in_use, sizeof(dev->in_use), why);
}

/* Everything that does not come from the bus scan. */
static void fill_sysfs(struct pnvme_pci_dev *dev)
{
	char p[PATH_MAX], g[32];
	current_driver(dev->bdf, dev->driver, sizeof(dev->driver));
	spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/iommu_group", dev->bdf);
	dev->iommu_group = pnvme_link_base(p, g, sizeof(g)) == 0 ? atoi(g) : -1;
	dev->nr_blk = 0;
	dev->ctrl_name[0] = '\0';
	dev->in_use[0] = '\0';
	fill_blockdevs(dev);
}

/* Identity from sysfs files (the path without libpci, and pnvme_pci_probe). */
static int fill_ids_sysfs(struct pnvme_pci_dev *dev)
{
	char p[PATH_MAX];
	unsigned long v;
	spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/class", dev->bdf);
	if (read_ulong(p, &v) != 0)
		return -ENODEV;
	dev->class_code = (uint32_t)v;
	spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/vendor", dev->bdf);
	dev->vendor = read_ulong(p, &v) == 0 ? (uint16_t)v : 0xffff;
	spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/device", dev->bdf);
	dev->device = read_ulong(p, &v) == 0 ? (uint16_t)v : 0xffff;
	spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/subsystem_vendor", dev->bdf);
	dev->subsys_vendor = read_ulong(p, &v) == 0 ? (uint16_t)v : 0;
	spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/subsystem_device", dev->bdf);
	dev->subsys_device = read_ulong(p, &v) == 0 ? (uint16_t)v : 0;
	char buf[32];
	spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/numa_node", dev->bdf);
	dev->numa_node = read_str(p, buf, sizeof(buf)) == 0 ? atoi(buf) : -1;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* discovery                                                                */
/* ------------------------------------------------------------------------ */

struct dev_list {
	struct pnvme_pci_dev *v;
	size_t n, cap;
};

static struct pnvme_pci_dev *list_add(struct dev_list *l)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 8;
		struct pnvme_pci_dev *v = realloc(l->v, nc * sizeof(*v));
		if (!v)
			return NULL;
		l->v = v;
		l->cap = nc;
	}
	struct pnvme_pci_dev *d = &l->v[l->n++];
	memset(d, 0, sizeof(*d));
	return d;
}

#ifdef PNVME_HAVE_LIBPCI
/*
 * libpci reports fatal errors through a callback that must not return (its
 * default exits the process); ours jumps back into scan_libpci().
 */
static __thread jmp_buf *pci_jmp;
static __thread char pci_errmsg[256];

__attribute__((noreturn, format(printf, 1, 2)))
static void pci_error_cb(char *msg, ...)
{
	va_list ap;
	va_start(ap, msg);
	vsnprintf(pci_errmsg, sizeof(pci_errmsg), msg, ap);
	va_end(ap);
	longjmp(*pci_jmp, 1);
}

__attribute__((format(printf, 1, 2)))
static void pci_quiet_cb(char *msg, ...)
{
	(void)msg;
}

static int scan_libpci(struct dev_list *l)
{
	jmp_buf jb;
	struct pci_access *pacc = pci_alloc();
	if (!pacc)
		return pnvme_fail(-ENOMEM, "pci: out of memory");
	pacc->error = pci_error_cb;
	pacc->warning = pci_quiet_cb;
	pacc->debug = pci_quiet_cb;
	pci_jmp = &jb;
	if (setjmp(jb) != 0) {
		pci_jmp = NULL;
		return pnvme_fail(-EIO, "pci: libpci: %s", pci_errmsg);
	}
	pci_init(pacc);
	pci_scan_bus(pacc);
	for (struct pci_dev *d = pacc->devices; d; d = d->next) {
		unsigned flags = PCI_FILL_IDENT | PCI_FILL_CLASS | PCI_FILL_NUMA_NODE;
#ifdef PCI_FILL_CLASS_EXT
		flags |= PCI_FILL_CLASS_EXT | PCI_FILL_SUBSYS;
#endif
		pci_fill_info(d, (int)flags);
#ifdef PCI_FILL_CLASS_EXT
		unsigned prog_if = d->prog_if;
#else
		unsigned prog_if = pci_read_byte(d, PCI_CLASS_PROG);
#endif
		uint32_t cls = ((uint32_t)d->device_class << 8) | prog_if;
		if (cls != PNVME_PCI_CLASS_NVME)
			continue;
		struct pnvme_pci_dev *p = list_add(l);
		if (!p) {
			pci_cleanup(pacc);
			pci_jmp = NULL;
			return pnvme_fail(-ENOMEM, "pci: out of memory");
		}
		snprintf(p->bdf, sizeof(p->bdf), "%04x:%02x:%02x.%x", (unsigned)d->domain & 0xffffu,
			 d->bus & 0xffu, d->dev & 0x1fu, d->func & 7u);
		p->vendor = d->vendor_id;
		p->device = d->device_id;
#ifdef PCI_FILL_CLASS_EXT
		p->subsys_vendor = d->subsys_vendor_id;
		p->subsys_device = d->subsys_id;
#endif
		p->class_code = cls;
		p->numa_node = d->numa_node;
	}
	pci_cleanup(pacc);
	pci_jmp = NULL;
	return 0;
}
#endif /* PNVME_HAVE_LIBPCI */

/* Walk /sys/bus/pci/devices: the path without libpci. */
static int scan_sysfs(struct dev_list *l)
{
	char dir[PATH_MAX];
	spath(dir, sizeof(dir), SYSFS_PCI_DEVICES);
	DIR *d = opendir(dir);
	if (!d)
		return pnvme_fail(-errno, "pci: cannot read %s: %s (is sysfs mounted?)", dir,
				  strerror(errno));
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		struct pnvme_pci_dev tmp;
		memset(&tmp, 0, sizeof(tmp));
		snprintf(tmp.bdf, sizeof(tmp.bdf), "%.12s", e->d_name);
		if (fill_ids_sysfs(&tmp) != 0 || tmp.class_code != PNVME_PCI_CLASS_NVME)
			continue;
		struct pnvme_pci_dev *p = list_add(l);
		if (!p) {
			closedir(d);
			return pnvme_fail(-ENOMEM, "pci: out of memory");
		}
		*p = tmp;
	}
	closedir(d);
	return 0;
}

static int cmp_bdf(const void *a, const void *b)
{
	return strcmp(((const struct pnvme_pci_dev *)a)->bdf,
		      ((const struct pnvme_pci_dev *)b)->bdf);
}

int pnvme_pci_list(struct pnvme_pci_dev **devs, size_t *n)
{
	if (!devs || !n)
		return pnvme_fail(-EINVAL, "pci: NULL argument");
	*devs = NULL;
	*n = 0;
	/* On the heap: scan_libpci() may longjmp while it is being filled. */
	struct dev_list *l = calloc(1, sizeof(*l));
	if (!l)
		return pnvme_fail(-ENOMEM, "pci: out of memory");
	/*
	 * PNVME_PCI_SYSFS=1 forces the sysfs walk (also used if libpci fails,
	 * and under a test PNVME_SYSFS_ROOT, which libpci would not see).
	 */
	const char *force_sysfs = getenv("PNVME_PCI_SYSFS");
	int rc = -ENOSYS;
#ifdef PNVME_HAVE_LIBPCI
	if ((!force_sysfs || strcmp(force_sysfs, "1") != 0) && !sysfs_root()[0]) {
		rc = scan_libpci(l);
		if (rc != 0) {
			log_warn("%s; walking sysfs instead", pnvme_last_error());
			l->n = 0;
		}
	}
#else
	(void)force_sysfs;
#endif
	if (rc != 0)
		rc = scan_sysfs(l);
	if (rc != 0) {
		free(l->v);
		free(l);
		return rc;
	}
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cmp_bdf);
	for (size_t i = 0; i < l->n; i++)
		fill_sysfs(&l->v[i]);
	*devs = l->v;
	*n = l->n;
	free(l);
	return 0;
}

void pnvme_pci_list_free(struct pnvme_pci_dev *devs)
{
	free(devs);
}

int pnvme_pci_probe(const char *bdf, struct pnvme_pci_dev *dev)
{
	if (!dev)
		return pnvme_fail(-EINVAL, "pci: NULL argument");
	memset(dev, 0, sizeof(*dev));
	int rc = pnvme_pci_bdf_normalize(bdf, dev->bdf);
	if (rc)
		return rc;
	if (fill_ids_sysfs(dev) != 0)
		return pnvme_fail(-ENODEV, "pci: no PCI device %s (see `pnvme list`)", dev->bdf);
	fill_sysfs(dev);
	return 0;
}

int pnvme_pci_in_use(const char *bdf, char *why, size_t len)
{
	struct pnvme_pci_dev *dev = calloc(1, sizeof(*dev));
	if (!dev)
		return pnvme_fail(-ENOMEM, "pci: out of memory");
	int rc = pnvme_pci_probe(bdf, dev);
	if (rc == 0) {
		if (why && len)
			snprintf(why, len, "%s", dev->in_use);
		rc = dev->in_use[0] ? 1 : 0;
	}
	free(dev);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* binding                                                                  */
/* ------------------------------------------------------------------------ */

static int sysfs_fail(int rc, const char *what, const char *path)
{
	if (rc == -EACCES || rc == -EPERM)
		return pnvme_fail(rc, "pci: cannot write %s: permission denied (run as root)",
				  path);
	return pnvme_fail(rc, "pci: %s (%s): %s", what, path, strerror(-rc));
}

/* Wait up to `ms` for the driver link to name `want` ("" = no driver). */
static bool wait_driver(const char *bdf, const char *want, char *got, size_t len,
			unsigned ms)
{
	for (unsigned t = 0;; t += 10) {
		current_driver(bdf, got, len);
		if (strcmp(got, want) == 0)
			return true;
		if (t >= ms)
			return false;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/*
 * Ask the kernel to probe `bdf` again and wait (2 s) until `want` binds it;
 * `was` names the driver it had, for the log.
 */
static int reprobe(const char *bdf, const char *was, const char *want)
{
	char got[64], p[PATH_MAX];
	int rc;

	spath(p, sizeof(p), SYSFS_PCI "/drivers_probe");
	rc = write_str(p, bdf);
	if (rc != 0 && rc != -ENODEV && rc != -EINVAL)
		return sysfs_fail(rc, "reprobe", p);
	if (!wait_driver(bdf, want, got, sizeof(got), 2000))
		return pnvme_fail(-EIO, "pci: %s is bound to %s after reprobing, not %s "
				  "(see dmesg)", bdf, got[0] ? got : "no driver", want);
	log_info("pci: %s: %s -> %s", bdf, was[0] ? was : "no driver", want);
	return 0;
}

int pnvme_pci_bind_vfio(const char *bdf_in, bool force)
{
	char bdf[PNVME_PCI_BDF_LEN], p[PATH_MAX], drv[64];
	int rc = pnvme_pci_bdf_normalize(bdf_in, bdf);
	if (rc)
		return rc;
	spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s", bdf);
	if (!exists(p))
		return pnvme_fail(-ENODEV, "pci: no PCI device %s (see `pnvme list`)", bdf);
	current_driver(bdf, drv, sizeof(drv));
	if (strcmp(drv, "vfio-pci") == 0)
		return 0;

	/* Only NVM Express controllers (class 01h / subclass 08h / prog-if 02h). */
	unsigned long cls = 0;
	spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/class", bdf);
	if (read_ulong(p, &cls) != 0 && !force)
		return pnvme_fail(-ENOTSUP, "pci: refusing to bind %s: cannot read its PCI class "
				  "(%s); use --force to bind it anyway", bdf, p);
	if (cls != PNVME_PCI_CLASS_NVME && !force)
		return pnvme_fail(-ENOTSUP, "pci: refusing to bind %s: PCI class %06lx is not an "
				  "NVMe controller (%06x)%s%s; use --force to bind it anyway", bdf,
				  cls, PNVME_PCI_CLASS_NVME, drv[0] ? ", driver " : "", drv);

	spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/iommu_group", bdf);
	if (!exists(p))
		return pnvme_fail(-ENXIO, "pci: %s has no IOMMU group: the IOMMU is off; boot "
				  "with intel_iommu=on (or amd_iommu=on) and enable VT-d/AMD-Vi "
				  "in the firmware", bdf);
	spath(p, sizeof(p), SYSFS_PCI "/drivers/vfio-pci");
	if (!exists(p))
		return pnvme_fail(-ENOENT, "pci: the vfio-pci driver is not loaded (run "
				  "`modprobe vfio-pci`)");

	if (!force) {
		char why[256];
		rc = pnvme_pci_in_use(bdf, why, sizeof(why));
		if (rc < 0)
			return rc;
		if (rc > 0)
			return pnvme_fail(-EBUSY, "pci: refusing to bind %s to vfio-pci: %s "
					  "(unmount / stop using it first, or use --force)",
					  bdf, why);
	}

	/* 1. only vfio-pci may claim the device from now on */
	spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/driver_override", bdf);
	if ((rc = write_str(p, "vfio-pci")) != 0)
		return sysfs_fail(rc, "set driver_override", p);
	/* 2. release it from its current driver */
	if (drv[0]) {
		spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/driver/unbind", bdf);
		if ((rc = write_str(p, bdf)) != 0 && rc != -ENODEV)
			return sysfs_fail(rc, "unbind from the current driver", p);
	}
	/* 3. reprobe: vfio-pci takes it because of the override; 4. check */
	return reprobe(bdf, drv, "vfio-pci");
}

int pnvme_pci_unbind_vfio(const char *bdf_in)
{
	char bdf[PNVME_PCI_BDF_LEN], p[PATH_MAX], drv[64], g[32];
	int rc = pnvme_pci_bdf_normalize(bdf_in, bdf);
	if (rc)
		return rc;
	spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s", bdf);
	if (!exists(p))
		return pnvme_fail(-ENODEV, "pci: no PCI device %s (see `pnvme list`)", bdf);
	current_driver(bdf, drv, sizeof(drv));
	if (strcmp(drv, "nvme") == 0)
		return 0;

	if (strcmp(drv, "vfio-pci") == 0) {
		/* vfio-pci's remove blocks until the user lets go: refuse instead. */
		spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/iommu_group", bdf);
		if (pnvme_link_base(p, g, sizeof(g)) == 0) {
			char gpath[64], who[96];
			snprintf(gpath, sizeof(gpath), "/dev/vfio/%s", g);
			if (pnvme_chr_opener(gpath, who, sizeof(who)) == 0)
				return pnvme_fail(-EBUSY, "pci: refusing to unbind %s: %s is open by "
						  "%s (vfio-pci would wait for it to let go; "
						  "stop it first)", bdf, gpath, who);
		}
	}

	spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/driver_override", bdf);
	if ((rc = write_str(p, "\n")) != 0)
		return sysfs_fail(rc, "clear driver_override", p);
	if (drv[0]) {
		spath(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/driver/unbind", bdf);
		if ((rc = write_str(p, bdf)) != 0 && rc != -ENODEV)
			return sysfs_fail(rc, "unbind", p);
	}
	spath(p, sizeof(p), SYSFS_PCI "/drivers/nvme");
	if (!exists(p))
		return pnvme_fail(-ENOENT, "pci: %s is unbound, but the kernel nvme driver is "
				  "not loaded (run `modprobe nvme`)", bdf);
	return reprobe(bdf, drv, "nvme");
}
