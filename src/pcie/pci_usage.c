/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pci_usage.c - what the kernel uses an NVMe controller for, before pnvme
 * takes it: the controller's namespaces and partitions as block devices
 * (sysfs), whether they are mounted (/proc/self/mountinfo), used as swap
 * (/proc/swaps) or held by device-mapper / md, and which process holds one of
 * its device nodes open (/proc/PID/fd). pci.c fills a controller's
 * description with this, and refuses to bind a controller in use;
 * pnvme_chr_opener() also serves vfio.c and the unbind check.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <pnvme/pci.h>

#include "internal.h"
#include "pci_priv.h"

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
			sysfs_copy_str(m->point, sizeof(m->point), point);
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
	sysfs_path(dir, sizeof(dir), SYSFS_BLOCK "/%s/holders", name);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char what[160] = "", p[PATH_MAX];
		sysfs_path(p, sizeof(p), SYSFS_BLOCK "/%s/dm/name", e->d_name);
		if (sysfs_read_str(p, what, sizeof(what)) == 0) {
			char tmp[200];
			if (snprintf(tmp, sizeof(tmp), " (device-mapper %s)", what) > 0)
				sysfs_copy_str(what, sizeof(what), tmp);
		} else {
			sysfs_path(p, sizeof(p), SYSFS_BLOCK "/%s/md", e->d_name);
			if (sysfs_exists(p))
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
	sysfs_copy_str(dst + n, len - n, why);
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
			sysfs_read_str(cp, o->comm, sizeof(o->comm));
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
	sysfs_path(dir, sizeof(dir), SYSFS_BLOCK "/%s", name);
	if (sysfs_dev_numbers(dir, &b->major, &b->minor) != 0)
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
		sysfs_copy_str(head, len, s);
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
void usage_fill_blockdevs(struct pnvme_pci_dev *dev)
{
	char dir[PATH_MAX];
	dev_t chr[1 + PNVME_PCI_MAX_BLK];
	size_t nr_chr = 0;

	sysfs_path(dir, sizeof(dir), SYSFS_PCI_DEVICES "/%s/nvme", dev->bdf);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "nvme", 4) != 0)
			continue;
		if (!dev->ctrl_name[0])
			sysfs_copy_str(dev->ctrl_name, sizeof(dev->ctrl_name), e->d_name);
		char cdir[PATH_MAX];
		uint32_t ma, mi;
		if (snprintf(cdir, sizeof(cdir), "%s/%s", dir, e->d_name) >= (int)sizeof(cdir))
			continue;
		if (sysfs_dev_numbers(cdir, &ma, &mi) == 0)
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
				sysfs_path(ng, sizeof(ng), SYSFS_NVME_GENERIC "/ng%un%u", a, b);
				if (sysfs_dev_numbers(ng, &ma, &mi) == 0)
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
		sysfs_path(bdir, sizeof(bdir), SYSFS_BLOCK "/%s", dev->blk[i].name);
		DIR *bd = opendir(bdir);
		if (!bd)
			continue;
		struct dirent *pe;
		while ((pe = readdir(bd)) != NULL) {
			char pp[PATH_MAX];
			if (strncmp(pe->d_name, dev->blk[i].name, strlen(dev->blk[i].name)) != 0)
				continue;
			if (snprintf(pp, sizeof(pp), "%s/%s/partition", bdir, pe->d_name) <
				    (int)sizeof(pp) && sysfs_exists(pp))
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
