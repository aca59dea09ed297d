/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pci.c - NVMe controllers on the PCI bus: discovery (libpci, or sysfs when
 * built without it), their description from sysfs, and moving them between
 * the nvme driver and vfio-pci through sysfs (driver_override, unbind,
 * drivers_probe; Linux Documentation/ABI/testing/sysfs-bus-pci). What the
 * kernel uses a controller for (block devices, mounts, open device nodes) is
 * in pci_usage.c; the sysfs helpers here are shared with it (pci_priv.h).
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
#include <time.h>
#include <unistd.h>

#ifdef PNVME_HAVE_LIBPCI
#include <setjmp.h>
#include <pci/pci.h>
#endif

#include <pnvme/pci.h>

#include "internal.h"
#include "pci_priv.h"

/* ------------------------------------------------------------------------ */
/* sysfs helpers                                                            */
/* ------------------------------------------------------------------------ */

/*
 * For tests only: PNVME_SYSFS_ROOT=DIR makes pci.c and pci_usage.c read and
 * write DIR/sys/... instead of /sys/... (discovery, in-use checks, bind, unbind),
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
int sysfs_path(char *buf, size_t len, const char *fmt, ...)
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

int sysfs_read_str(const char *path, char *buf, size_t len)
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
	int rc = sysfs_read_str(path, buf, sizeof(buf));
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
void sysfs_copy_str(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

bool sysfs_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static void current_driver(const char *bdf, char *out, size_t len)
{
	char p[PATH_MAX];
	sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/driver", bdf);
	if (pnvme_link_base(p, out, len) != 0)
		out[0] = '\0';
}

int sysfs_dev_numbers(const char *sysdir, uint32_t *maj, uint32_t *min)
{
	char p[PATH_MAX], buf[32];
	unsigned a, b;
	if ((size_t)snprintf(p, sizeof(p), "%s/dev", sysdir) >= sizeof(p))
		return -ENAMETOOLONG;
	if (sysfs_read_str(p, buf, sizeof(buf)) != 0 || sscanf(buf, "%u:%u", &a, &b) != 2)
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
/* discovery                                                                */
/* ------------------------------------------------------------------------ */

/* Everything that does not come from the bus scan. */
static void fill_sysfs(struct pnvme_pci_dev *dev)
{
	char p[PATH_MAX], g[32];
	current_driver(dev->bdf, dev->driver, sizeof(dev->driver));
	sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/iommu_group", dev->bdf);
	dev->iommu_group = pnvme_link_base(p, g, sizeof(g)) == 0 ? atoi(g) : -1;
	dev->nr_blk = 0;
	dev->ctrl_name[0] = '\0';
	dev->in_use[0] = '\0';
	usage_fill_blockdevs(dev);
}

/* Identity from sysfs files (the path without libpci, and pnvme_pci_probe). */
static int fill_ids_sysfs(struct pnvme_pci_dev *dev)
{
	char p[PATH_MAX];
	unsigned long v;
	sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/class", dev->bdf);
	if (read_ulong(p, &v) != 0)
		return -ENODEV;
	dev->class_code = (uint32_t)v;
	sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/vendor", dev->bdf);
	dev->vendor = read_ulong(p, &v) == 0 ? (uint16_t)v : 0xffff;
	sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/device", dev->bdf);
	dev->device = read_ulong(p, &v) == 0 ? (uint16_t)v : 0xffff;
	sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/subsystem_vendor", dev->bdf);
	dev->subsys_vendor = read_ulong(p, &v) == 0 ? (uint16_t)v : 0;
	sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/subsystem_device", dev->bdf);
	dev->subsys_device = read_ulong(p, &v) == 0 ? (uint16_t)v : 0;
	char buf[32];
	sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/numa_node", dev->bdf);
	dev->numa_node = sysfs_read_str(p, buf, sizeof(buf)) == 0 ? atoi(buf) : -1;
	return 0;
}

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
	sysfs_path(dir, sizeof(dir), SYSFS_PCI_DEVICES);
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

	sysfs_path(p, sizeof(p), SYSFS_PCI "/drivers_probe");
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
	sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s", bdf);
	if (!sysfs_exists(p))
		return pnvme_fail(-ENODEV, "pci: no PCI device %s (see `pnvme list`)", bdf);
	current_driver(bdf, drv, sizeof(drv));
	if (strcmp(drv, "vfio-pci") == 0)
		return 0;

	/* Only NVM Express controllers (class 01h / subclass 08h / prog-if 02h). */
	unsigned long cls = 0;
	sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/class", bdf);
	if (read_ulong(p, &cls) != 0 && !force)
		return pnvme_fail(-ENOTSUP, "pci: refusing to bind %s: cannot read its PCI class "
				  "(%s); use --force to bind it anyway", bdf, p);
	if (cls != PNVME_PCI_CLASS_NVME && !force)
		return pnvme_fail(-ENOTSUP, "pci: refusing to bind %s: PCI class %06lx is not an "
				  "NVMe controller (%06x)%s%s; use --force to bind it anyway", bdf,
				  cls, PNVME_PCI_CLASS_NVME, drv[0] ? ", driver " : "", drv);

	sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/iommu_group", bdf);
	if (!sysfs_exists(p))
		return pnvme_fail(-ENXIO, "pci: %s has no IOMMU group: the IOMMU is off; boot "
				  "with intel_iommu=on (or amd_iommu=on) and enable VT-d/AMD-Vi "
				  "in the firmware", bdf);
	sysfs_path(p, sizeof(p), SYSFS_PCI "/drivers/vfio-pci");
	if (!sysfs_exists(p))
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
	sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/driver_override", bdf);
	if ((rc = write_str(p, "vfio-pci")) != 0)
		return sysfs_fail(rc, "set driver_override", p);
	/* 2. release it from its current driver */
	if (drv[0]) {
		sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/driver/unbind", bdf);
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
	sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s", bdf);
	if (!sysfs_exists(p))
		return pnvme_fail(-ENODEV, "pci: no PCI device %s (see `pnvme list`)", bdf);
	current_driver(bdf, drv, sizeof(drv));
	if (strcmp(drv, "nvme") == 0)
		return 0;

	if (strcmp(drv, "vfio-pci") == 0) {
		/* vfio-pci's remove blocks until the user lets go: refuse instead. */
		sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/iommu_group", bdf);
		if (pnvme_link_base(p, g, sizeof(g)) == 0) {
			char gpath[64], who[96];
			snprintf(gpath, sizeof(gpath), "/dev/vfio/%s", g);
			if (pnvme_chr_opener(gpath, who, sizeof(who)) == 0)
				return pnvme_fail(-EBUSY, "pci: refusing to unbind %s: %s is open by "
						  "%s (vfio-pci would wait for it to let go; "
						  "stop it first)", bdf, gpath, who);
		}
	}

	sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/driver_override", bdf);
	if ((rc = write_str(p, "\n")) != 0)
		return sysfs_fail(rc, "clear driver_override", p);
	if (drv[0]) {
		sysfs_path(p, sizeof(p), SYSFS_PCI_DEVICES "/%s/driver/unbind", bdf);
		if ((rc = write_str(p, bdf)) != 0 && rc != -ENODEV)
			return sysfs_fail(rc, "unbind", p);
	}
	sysfs_path(p, sizeof(p), SYSFS_PCI "/drivers/nvme");
	if (!sysfs_exists(p))
		return pnvme_fail(-ENOENT, "pci: %s is unbound, but the kernel nvme driver is "
				  "not loaded (run `modprobe nvme`)", bdf);
	return reprobe(bdf, drv, "nvme");
}
