/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfio.c - the VFIO transport: a PCI NVMe controller bound to vfio-pci,
 * reached through a type1 IOMMU container.
 *
 * Open sequence (Linux Documentation/driver-api/vfio.rst, "VFIO Usage Example"):
 *   1. open the container /dev/vfio/vfio, check the API version and that a
 *      type1 IOMMU backend is offered;
 *   2. find the device's IOMMU group (/sys/bus/pci/devices/BDF/iommu_group),
 *      open /dev/vfio/GROUP and check that the group is viable;
 *   3. attach the group to the container and select the type1 IOMMU;
 *   4. ask the IOMMU for its usable IOVA ranges and pick a window;
 *   5. get the device fd, map BAR0, enable memory decoding and bus mastering.
 * Each step that can fail says why in words a person can act on.
 *
 * Threading: the backend is used by one controller; dma_map/dma_unmap are
 * called under the DMA allocator's lock, the VFIO ioctls themselves are
 * thread safe.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <pnvme/pci.h>

#include "internal.h"

#define VFIO_CONTAINER_PATH "/dev/vfio/vfio"
#define SYSFS_PCI_DEVICES   "/sys/bus/pci/devices"

/* The x86 interrupt address range: never usable as IOVA behind an IOMMU. */
#define X86_MSI_BASE 0xfee00000ull
#define X86_MSI_END  0xfeefffffull /* inclusive */
/* Used when the kernel does not report IOVA ranges (before Linux 5.4). */
#define IOVA_FALLBACK_BASE (1ull << 32)
#define IOVA_FALLBACK_END  (1ull << 39)
/* Lowest IOVA handed out: keep 0 and the first 2 MiB unused (NULL-ish). */
#define IOVA_MIN PNVME_CHUNK_SIZE

struct vfio_ctx {
	int container;
	int group;
	int device;
	int group_id;
	uint64_t cfg_off;        /* config space region offset in the device fd */
	void *bar;
	size_t bar_len;
	void *cmb_bar;           /* the BAR holding the CMB (bar_map), when not BAR0 */
	size_t cmb_bar_len;
	uint32_t msix;           /* MSI-X vectors enabled through VFIO (0: none yet) */
	char bdf[PNVME_PCI_BDF_LEN];
};

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */
/* ------------------------------------------------------------------------ */

static bool path_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* "0000:00:1f.2 (ahci), 0000:00:1f.3 (no driver)" for the other group members. */
static void group_members(int group_id, const char *self, char *out, size_t len)
{
	char dir[96];
	size_t used = 0;
	out[0] = '\0';
	snprintf(dir, sizeof(dir), "/sys/kernel/iommu_groups/%d/devices", group_id);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || strcmp(e->d_name, self) == 0)
			continue;
		char lpath[PATH_MAX], drv[64];
		snprintf(lpath, sizeof(lpath), "%s/%s/driver", dir, e->d_name);
		if (pnvme_link_base(lpath, drv, sizeof(drv)) != 0)
			snprintf(drv, sizeof(drv), "no driver");
		int n = snprintf(out + used, len - used, "%s%s (%s)", used ? ", " : "",
				 e->d_name, drv);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
	closedir(d);
}

static int cfg_read16(const struct vfio_ctx *v, unsigned off, uint16_t *val)
{
	ssize_t n = pread(v->device, val, sizeof(*val), (off_t)(v->cfg_off + off));
	return n == (ssize_t)sizeof(*val) ? 0 : (n < 0 ? -errno : -EIO);
}

static int cfg_read32(const struct vfio_ctx *v, unsigned off, uint32_t *val)
{
	ssize_t n = pread(v->device, val, sizeof(*val), (off_t)(v->cfg_off + off));
	return n == (ssize_t)sizeof(*val) ? 0 : (n < 0 ? -errno : -EIO);
}

static int cfg_write16(const struct vfio_ctx *v, unsigned off, uint16_t val)
{
	ssize_t n = pwrite(v->device, &val, sizeof(val), (off_t)(v->cfg_off + off));
	return n == (ssize_t)sizeof(val) ? 0 : (n < 0 ? -errno : -EIO);
}

/* ------------------------------------------------------------------------ */
/* backend ops                                                              */
/* ------------------------------------------------------------------------ */

static int vfio_dma_map(void *ctx, void *vaddr, uint64_t iova, size_t len)
{
	struct vfio_ctx *v = ctx;
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uint64_t)(uintptr_t)vaddr,
		.iova = iova,
		.size = len,
	};
	if (ioctl(v->container, VFIO_IOMMU_MAP_DMA, &map) == 0)
		return 0;
	int err = errno;
	if (err == ENOMEM) {
		struct rlimit rl;
		char lim[32] = "unknown";
		if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
			if (rl.rlim_cur == RLIM_INFINITY)
				snprintf(lim, sizeof(lim), "unlimited");
			else
				snprintf(lim, sizeof(lim), "%llu KiB",
					 (unsigned long long)rl.rlim_cur / 1024);
		}
		return pnvme_fail(-ENOMEM,
				  "vfio: VFIO_IOMMU_MAP_DMA of %zu bytes at iova 0x%llx failed: "
				  "out of locked memory (RLIMIT_MEMLOCK is %s); raise it with "
				  "`ulimit -l unlimited` (or LimitMEMLOCK=infinity) or run as root",
				  len, (unsigned long long)iova, lim);
	}
	if (err == ENOSPC)
		return pnvme_fail(-ENOSPC,
				  "vfio: VFIO_IOMMU_MAP_DMA: too many DMA mappings "
				  "(vfio_iommu_type1 dma_entry_limit reached)");
	if (err == EEXIST)
		return pnvme_fail(-EEXIST, "vfio: VFIO_IOMMU_MAP_DMA: iova 0x%llx+%zu overlaps "
				  "an existing mapping", (unsigned long long)iova, len);
	return pnvme_fail(-err, "vfio: VFIO_IOMMU_MAP_DMA of %zu bytes at iova 0x%llx "
			  "(vaddr %p) failed: %s", len, (unsigned long long)iova, vaddr,
			  strerror(err));
}

static int vfio_dma_unmap(void *ctx, uint64_t iova, size_t len)
{
	struct vfio_ctx *v = ctx;
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.iova = iova,
		.size = len,
	};
	if (ioctl(v->container, VFIO_IOMMU_UNMAP_DMA, &unmap) != 0)
		return pnvme_fail(-errno, "vfio: VFIO_IOMMU_UNMAP_DMA iova 0x%llx+%zu: %s",
				  (unsigned long long)iova, len, strerror(errno));
	if (unmap.size != len)
		return pnvme_fail(-EINVAL, "vfio: VFIO_IOMMU_UNMAP_DMA iova 0x%llx: unmapped "
				  "%llu of %zu bytes", (unsigned long long)iova,
				  (unsigned long long)unmap.size, len);
	return 0;
}

/* Slow-path waits only (bring-up, sync admin commands): a few microseconds. */
static void vfio_wait(void *ctx)
{
	(void)ctx;
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 5000 };
	nanosleep(&ts, NULL);
}

static void vfio_ctx_free(struct vfio_ctx *v)
{
	if (v->bar && v->bar != MAP_FAILED) {
		pnvme_bar_guard_remove(v->bar);
		munmap(v->bar, v->bar_len);
	}
	if (v->cmb_bar != NULL) {
		pnvme_bar_guard_remove(v->cmb_bar);
		munmap(v->cmb_bar, v->cmb_bar_len);
	}
	if (v->device >= 0) {
		uint16_t cmd;
		/* Stop the device from reaching memory we are about to release. */
		if (cfg_read16(v, PCI_COMMAND, &cmd) == 0)
			(void)cfg_write16(v, PCI_COMMAND, (uint16_t)(cmd & ~PCI_COMMAND_MASTER));
		close(v->device);
	}
	if (v->group >= 0)
		close(v->group);      /* detaches the group from the container */
	if (v->container >= 0)
		close(v->container);  /* drops every remaining DMA mapping */
	free(v);
}

static void vfio_close(void *ctx)
{
	if (ctx)
		vfio_ctx_free(ctx);
}

/* PCI command register, Bus Master Enable: the device may issue DMA. */
static int vfio_bus_master(void *ctx, bool on)
{
	struct vfio_ctx *v = ctx;
	uint16_t cmd;
	int rc = cfg_read16(v, PCI_COMMAND, &cmd);

	if (rc == 0) {
		cmd = on ? (uint16_t)(cmd | PCI_COMMAND_MASTER) : (uint16_t)(cmd & ~PCI_COMMAND_MASTER);
		rc = cfg_write16(v, PCI_COMMAND, cmd);
	}
	if (rc != 0)
		return pnvme_fail(rc, "vfio: %s: cannot %s bus mastering in the PCI command "
				  "register: %s", v->bdf, on ? "enable" : "disable", strerror(-rc));
	return 0;
}

/*
 * The BAR holding the Controller Memory Buffer: mapped through its VFIO
 * region (vfio-pci maps BARs uncached, so the CMB's 64-byte stores are not
 * combined here); its bus address is what the PCI BAR register holds (the
 * high dword too for a 64-bit BAR), as SPDK programs CMBMSC.CBA.
 */
static int vfio_bar_map(void *ctx, unsigned bir, volatile uint8_t **va, size_t *len,
			uint64_t *bus)
{
	struct vfio_ctx *v = ctx;
	uint32_t lo = 0, hi = 0;
	int rc;

	if (bir > VFIO_PCI_BAR5_REGION_INDEX)
		return pnvme_fail(-ENOTSUP, "vfio: %s: BAR%u does not exist", v->bdf, bir);
	rc = cfg_read32(v, PCI_BASE_ADDRESS_0 + 4 * bir, &lo);
	if (rc == 0 && (lo & PCI_BASE_ADDRESS_SPACE_IO))
		return pnvme_fail(-ENOTSUP, "vfio: %s: BAR%u is an I/O port BAR", v->bdf, bir);
	if (rc == 0 && (lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64)
		rc = bir < 5 ? cfg_read32(v, PCI_BASE_ADDRESS_0 + 4 * (bir + 1), &hi) : -EIO;
	if (rc != 0)
		return pnvme_fail(rc, "vfio: %s: cannot read BAR%u's address from config space",
				  v->bdf, bir);
	*bus = ((uint64_t)hi << 32) | (lo & (uint32_t)PCI_BASE_ADDRESS_MEM_MASK);
	if (bir == 0) {
		*va = v->bar;
		*len = v->bar_len;
		return 0;
	}
	if (v->cmb_bar == NULL) {
		struct vfio_region_info r = {
			.argsz = sizeof(r), .index = VFIO_PCI_BAR0_REGION_INDEX + bir,
		};
		if (ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &r) != 0)
			return pnvme_fail(-errno, "vfio: %s: BAR%u region info: %s", v->bdf, bir,
					  strerror(errno));
		if (r.size == 0 || !(r.flags & VFIO_REGION_INFO_FLAG_MMAP))
			return pnvme_fail(-ENOTSUP, "vfio: %s: BAR%u (%llu bytes) cannot be mmapped",
					  v->bdf, bir, (unsigned long long)r.size);
		void *p = mmap(NULL, (size_t)r.size, PROT_READ | PROT_WRITE, MAP_SHARED, v->device,
			       (off_t)r.offset);
		if (p == MAP_FAILED)
			return pnvme_fail(-errno, "vfio: %s: mmap of BAR%u (%llu bytes): %s", v->bdf,
					  bir, (unsigned long long)r.size, strerror(errno));
		(void)pnvme_bar_guard_add(p, (size_t)r.size);
		v->cmb_bar = p;
		v->cmb_bar_len = (size_t)r.size;
	}
	*va = v->cmb_bar;
	*len = v->cmb_bar_len;
	return 0;
}

/* VFIO_DEVICE_SET_IRQS for MSI-X vectors [start, start + n) with these eventfds. */
static int msix_set(struct vfio_ctx *v, uint32_t start, uint32_t n, const int32_t *fds)
{
	size_t sz = sizeof(struct vfio_irq_set) + (size_t)n * sizeof(int32_t);
	struct vfio_irq_set *s = calloc(1, sz);
	int rc = 0;

	if (s == NULL)
		return -ENOMEM;
	s->argsz = (uint32_t)sz;
	s->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	s->index = VFIO_PCI_MSIX_IRQ_INDEX;
	s->start = start;
	s->count = n;
	memcpy(s->data, fds, (size_t)n * sizeof(int32_t));
	if (ioctl(v->device, VFIO_DEVICE_SET_IRQS, s) != 0)
		rc = -errno;
	free(s);
	return rc;
}

/*
 * MSI-X vector `vector` signals eventfd `fd` (-1: no longer). The first call
 * enables every vector the function has, unassigned but one (the vector
 * count of an enabled MSI-X capability cannot grow later on kernels before
 * 6.5); later calls set one vector. The admin queue's vector 0 stays without
 * an eventfd: its completions are polled.
 */
static int vfio_irq_set(void *ctx, unsigned vector, int fd)
{
	struct vfio_ctx *v = ctx;
	int rc;

	if (v->msix == 0) {
		struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = VFIO_PCI_MSIX_IRQ_INDEX };
		int32_t *fds;

		if (fd < 0)
			return 0;
		if (ioctl(v->device, VFIO_DEVICE_GET_IRQ_INFO, &ii) != 0)
			return pnvme_fail(-errno, "vfio: %s: MSI-X information: %s", v->bdf,
					  strerror(errno));
		if (ii.count == 0 || !(ii.flags & VFIO_IRQ_INFO_EVENTFD))
			return pnvme_fail(-ENOTSUP, "vfio: %s: no MSI-X vectors to signal an eventfd",
					  v->bdf);
		if (vector >= ii.count)
			return pnvme_fail(-ENOSPC, "vfio: %s: MSI-X vector %u beyond the %u the "
					  "function has", v->bdf, vector, ii.count);
		fds = malloc(ii.count * sizeof(*fds));
		if (fds == NULL)
			return pnvme_fail(-ENOMEM, "out of memory for %u MSI-X vectors", ii.count);
		for (uint32_t i = 0; i < ii.count; i++)
			fds[i] = i == vector ? fd : -1;
		rc = msix_set(v, 0, ii.count, fds);
		free(fds);
		if (rc != 0)
			return pnvme_fail(rc, "vfio: %s: enabling %u MSI-X vectors: %s", v->bdf,
					  ii.count, strerror(-rc));
		v->msix = ii.count;
		return 0;
	}
	if (vector >= v->msix)
		return pnvme_fail(-ENOSPC, "vfio: %s: MSI-X vector %u beyond the %u the function "
				  "has", v->bdf, vector, v->msix);
	rc = msix_set(v, vector, 1, &(int32_t){ fd });
	if (rc != 0)
		return pnvme_fail(rc, "vfio: %s: MSI-X vector %u: %s", v->bdf, vector,
				  strerror(-rc));
	return 0;
}

static const struct pnvme_backend_ops vfio_ops = {
	.name = "vfio",
	.dma_map = vfio_dma_map,
	.dma_unmap = vfio_dma_unmap,
	.wait = vfio_wait,
	.bus_master = vfio_bus_master,
	.close = vfio_close,
	.bar_map = vfio_bar_map,
	.irq_set = vfio_irq_set,
};

/* ------------------------------------------------------------------------ */
/* open steps                                                               */
/* ------------------------------------------------------------------------ */

/* Step 1: the container. */
static int open_container(struct vfio_ctx *v, unsigned long *type)
{
	v->container = open(VFIO_CONTAINER_PATH, O_RDWR | O_CLOEXEC);
	if (v->container < 0) {
		int err = errno;
		if (err == ENOENT) {
			if (path_exists("/dev/iommu") && path_exists("/sys/module/vfio"))
				return pnvme_fail(-ENOENT, "vfio: %s is missing but /dev/iommu "
						  "exists: this kernel offers iommufd only "
						  "(CONFIG_VFIO_CONTAINER off); pnvme needs the "
						  "VFIO container (type1) interface",
						  VFIO_CONTAINER_PATH);
			return pnvme_fail(-ENOENT, "vfio: %s is missing: the vfio-pci module is "
					  "not loaded (run `modprobe vfio-pci`)",
					  VFIO_CONTAINER_PATH);
		}
		if (err == EACCES || err == EPERM)
			return pnvme_fail(-err, "vfio: cannot open %s: permission denied "
					  "(run as root)", VFIO_CONTAINER_PATH);
		return pnvme_fail(-err, "vfio: cannot open %s: %s", VFIO_CONTAINER_PATH,
				  strerror(err));
	}
	int api = ioctl(v->container, VFIO_GET_API_VERSION);
	if (api != VFIO_API_VERSION)
		return pnvme_fail(-EINVAL, "vfio: unknown VFIO API version %d (expected %d)",
				  api, VFIO_API_VERSION);
	if (ioctl(v->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) > 0) {
		*type = VFIO_TYPE1v2_IOMMU;
	} else if (ioctl(v->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU) > 0) {
		*type = VFIO_TYPE1_IOMMU;
	} else if (ioctl(v->container, VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU) > 0) {
		return pnvme_fail(-EOPNOTSUPP, "vfio: only the no-IOMMU mode is available "
				  "(vfio enable_unsafe_noiommu_mode=1 without an IOMMU): pnvme "
				  "needs a real IOMMU for DMA; boot with intel_iommu=on or "
				  "amd_iommu=on");
	} else {
		return pnvme_fail(-EOPNOTSUPP, "vfio: no type1 IOMMU backend: load the "
				  "vfio_iommu_type1 module (`modprobe vfio_iommu_type1`)");
	}
	return 0;
}

/* Step 2: the group, with the reasons a device may not be usable. */
static int open_group(struct vfio_ctx *v)
{
	char path[PATH_MAX], name[64], drv[64];

	snprintf(path, sizeof(path), SYSFS_PCI_DEVICES "/%s", v->bdf);
	if (!path_exists(path))
		return pnvme_fail(-ENODEV, "vfio: no PCI device %s (see `pnvme list`)", v->bdf);

	snprintf(path, sizeof(path), SYSFS_PCI_DEVICES "/%s/iommu_group", v->bdf);
	if (pnvme_link_base(path, name, sizeof(name)) != 0)
		return pnvme_fail(-ENODEV, "vfio: %s has no IOMMU group: the IOMMU is off "
				  "(boot with intel_iommu=on or amd_iommu=on, and enable "
				  "VT-d / AMD-Vi in the firmware)", v->bdf);
	char *end;
	long gid = strtol(name, &end, 10);
	if (*end != '\0' || gid < 0 || gid > INT_MAX)
		return pnvme_fail(-EINVAL, "vfio: %s: odd IOMMU group name '%s'", v->bdf, name);
	v->group_id = (int)gid;

	snprintf(path, sizeof(path), SYSFS_PCI_DEVICES "/%s/driver", v->bdf);
	if (pnvme_link_base(path, drv, sizeof(drv)) != 0)
		return pnvme_fail(-ENODEV, "vfio: %s has no driver bound: run `pnvme bind %s` "
				  "to hand it to vfio-pci", v->bdf, v->bdf);
	if (strcmp(drv, "vfio-pci") != 0)
		return pnvme_fail(-EBUSY, "vfio: %s is bound to '%s', not vfio-pci: run "
				  "`pnvme bind %s` first", v->bdf, drv, v->bdf);

	char gpath[64];
	snprintf(gpath, sizeof(gpath), "/dev/vfio/%d", v->group_id);
	v->group = open(gpath, O_RDWR | O_CLOEXEC);
	if (v->group < 0) {
		int err = errno;
		char noiommu[64];
		snprintf(noiommu, sizeof(noiommu), "/dev/vfio/noiommu-%d", v->group_id);
		if (err == ENOENT && path_exists(noiommu))
			return pnvme_fail(-EOPNOTSUPP, "vfio: %s is in VFIO no-IOMMU mode (%s): "
					  "pnvme needs a real IOMMU; boot with intel_iommu=on "
					  "or amd_iommu=on", v->bdf, noiommu);
		if (err == EBUSY) {
			char who[96];
			(void)pnvme_chr_opener(gpath, who, sizeof(who));
			return pnvme_fail(-EBUSY, "vfio: %s is busy: another process has the "
					  "group of %s open%s%s (only one user at a time)",
					  gpath, v->bdf, who[0] ? ": " : "", who);
		}
		if (err == EACCES || err == EPERM)
			return pnvme_fail(-err, "vfio: cannot open %s: permission denied (run as "
					  "root, or give your user the group device)", gpath);
		if (err == ENOENT)
			return pnvme_fail(-ENOENT, "vfio: %s is missing although %s is bound to "
					  "vfio-pci", gpath, v->bdf);
		return pnvme_fail(-err, "vfio: cannot open %s: %s", gpath, strerror(err));
	}

	struct vfio_group_status st = { .argsz = sizeof(st) };
	if (ioctl(v->group, VFIO_GROUP_GET_STATUS, &st) != 0)
		return pnvme_fail(-errno, "vfio: VFIO_GROUP_GET_STATUS on %s: %s", gpath,
				  strerror(errno));
	if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		char others[512];
		group_members(v->group_id, v->bdf, others, sizeof(others));
		return pnvme_fail(-EPERM, "vfio: IOMMU group %d of %s is not viable: every "
				  "device in it must be bound to vfio-pci or to no driver; "
				  "other members: %s (bind them with `pnvme bind` too)",
				  v->group_id, v->bdf, others[0] ? others : "(none listed)");
	}
	return 0;
}

/* Step 3: group into the container, select the IOMMU model. */
static int attach_group(struct vfio_ctx *v, unsigned long type)
{
	if (ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container) != 0)
		return pnvme_fail(-errno, "vfio: VFIO_GROUP_SET_CONTAINER for group %d: %s",
				  v->group_id, strerror(errno));
	if (ioctl(v->container, VFIO_SET_IOMMU, type) != 0) {
		int err = errno;
		if (err == EPERM)
			return pnvme_fail(-EPERM, "vfio: VFIO_SET_IOMMU refused (EPERM): the IOMMU "
					  "has no interrupt remapping; enable it (VT-d IR in "
					  "firmware; intremap=on for a QEMU intel-iommu) or load "
					  "vfio_iommu_type1 with allow_unsafe_interrupts=1");
		return pnvme_fail(-err, "vfio: VFIO_SET_IOMMU (type %lu): %s", type,
				  strerror(err));
	}
	return 0;
}

/* Keep the part of [s, e] (inclusive) that avoids 0..IOVA_MIN and the MSI hole; largest wins. */
static void consider_range(uint64_t s, uint64_t e, uint64_t *best_s, uint64_t *best_e)
{
	uint64_t parts[2][2] = { { s, e }, { 1, 0 } };
	if (s <= X86_MSI_END && e >= X86_MSI_BASE) { /* split around the MSI hole */
		parts[0][1] = X86_MSI_BASE - 1;
		parts[1][0] = X86_MSI_END + 1;
		parts[1][1] = e;
		if (s >= X86_MSI_BASE)
			parts[0][0] = 1, parts[0][1] = 0;
	}
	for (int i = 0; i < 2; i++) {
		uint64_t a = parts[i][0], b = parts[i][1];
		if (a > b)
			continue;
		if (a < IOVA_MIN)
			a = IOVA_MIN;
		a = ALIGN_UP(a, (uint64_t)PNVME_CHUNK_SIZE);
		if (b == UINT64_MAX)
			b--;
		uint64_t end = (b + 1) & ~((uint64_t)PNVME_CHUNK_SIZE - 1); /* exclusive */
		if (end <= a)
			continue;
		if (end - a > *best_e - *best_s)
			*best_s = a, *best_e = end;
	}
}

/* Step 4: the IOVA window (VFIO_IOMMU_GET_INFO, capability IOVA_RANGE). */
static int pick_iova_window(struct vfio_ctx *v, struct pnvme_backend *be)
{
	struct vfio_iommu_type1_info *info = calloc(1, sizeof(*info));
	if (!info)
		return pnvme_fail(-ENOMEM, "vfio: out of memory");
	info->argsz = sizeof(*info);
	if (ioctl(v->container, VFIO_IOMMU_GET_INFO, info) != 0) {
		int err = errno;
		free(info);
		return pnvme_fail(-err, "vfio: VFIO_IOMMU_GET_INFO: %s", strerror(err));
	}
	if (info->argsz > sizeof(*info)) {
		uint32_t sz = info->argsz;
		struct vfio_iommu_type1_info *big = realloc(info, sz);
		if (!big) {
			free(info);
			return pnvme_fail(-ENOMEM, "vfio: out of memory");
		}
		info = big;
		memset(info, 0, sz);
		info->argsz = sz;
		if (ioctl(v->container, VFIO_IOMMU_GET_INFO, info) != 0) {
			int err = errno;
			free(info);
			return pnvme_fail(-err, "vfio: VFIO_IOMMU_GET_INFO: %s", strerror(err));
		}
	}

	uint64_t best_s = 0, best_e = 0;
	bool have_ranges = false;
	if ((info->flags & VFIO_IOMMU_INFO_CAPS) && info->cap_offset) {
		uint32_t off = info->cap_offset;
		/* Walk the capability chain; offsets are from the start of info. */
		for (int guard = 0; off && off + sizeof(struct vfio_info_cap_header) <= info->argsz
		     && guard < 64; guard++) {
			const struct vfio_info_cap_header *h =
				(const void *)((const uint8_t *)info + off);
			if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
				const struct vfio_iommu_type1_info_cap_iova_range *r = (const void *)h;
				for (uint32_t i = 0; i < r->nr_iovas; i++) {
					if ((const uint8_t *)&r->iova_ranges[i + 1] >
					    (const uint8_t *)info + info->argsz)
						break;
					log_debug("vfio: %s usable iova range 0x%llx..0x%llx", v->bdf,
						  (unsigned long long)r->iova_ranges[i].start,
						  (unsigned long long)r->iova_ranges[i].end);
					consider_range(r->iova_ranges[i].start, r->iova_ranges[i].end,
						       &best_s, &best_e);
					have_ranges = true;
				}
			} else if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
				const struct vfio_iommu_type1_info_dma_avail *a = (const void *)h;
				log_debug("vfio: %s: %u DMA mappings available", v->bdf, a->avail);
			}
			off = h->next;
		}
	}
	free(info);

	if (!have_ranges) {
		best_s = IOVA_FALLBACK_BASE;
		best_e = IOVA_FALLBACK_END;
		log_info("vfio: %s: the kernel reports no IOVA ranges; using 0x%llx..0x%llx",
			 v->bdf, (unsigned long long)best_s, (unsigned long long)best_e);
	} else if (best_e <= best_s) {
		return pnvme_fail(-ENOSPC, "vfio: %s: no usable IOVA range outside 0 and the "
				  "MSI window", v->bdf);
	}
	be->iova_base = best_s;
	be->iova_end = best_e;
	log_info("vfio: %s: IOVA window 0x%llx..0x%llx", v->bdf, (unsigned long long)best_s,
		 (unsigned long long)best_e);
	return 0;
}

/* Step 5: device fd, BAR0 mapping, PCI command register. */
static int open_device(struct vfio_ctx *v, struct pnvme_backend *be)
{
	v->device = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, v->bdf);
	if (v->device < 0) {
		int err = errno;
		if (err == EBUSY)
			return pnvme_fail(-EBUSY, "vfio: %s is already open (by this process?)",
					  v->bdf);
		return pnvme_fail(-err, "vfio: VFIO_GROUP_GET_DEVICE_FD %s: %s", v->bdf,
				  strerror(err));
	}

	struct vfio_device_info dinfo = { .argsz = sizeof(dinfo) };
	if (ioctl(v->device, VFIO_DEVICE_GET_INFO, &dinfo) != 0)
		return pnvme_fail(-errno, "vfio: VFIO_DEVICE_GET_INFO %s: %s", v->bdf,
				  strerror(errno));
	if (!(dinfo.flags & VFIO_DEVICE_FLAGS_PCI) ||
	    dinfo.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX)
		return pnvme_fail(-ENODEV, "vfio: %s is not a PCI device to VFIO", v->bdf);
	/*
	 * No VFIO_DEVICE_RESET here: vfio-pci already resets the function when
	 * the device fd is first opened, and the controller is disabled
	 * (CC.EN = 0) as the first step of bring-up anyway.
	 */

	struct vfio_region_info cfg = {
		.argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX,
	};
	if (ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &cfg) != 0)
		return pnvme_fail(-errno, "vfio: %s: config region info: %s", v->bdf,
				  strerror(errno));
	v->cfg_off = cfg.offset;

	struct vfio_region_info bar = {
		.argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX,
	};
	if (ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &bar) != 0)
		return pnvme_fail(-errno, "vfio: %s: BAR0 region info: %s", v->bdf,
				  strerror(errno));
	if (bar.size < PNVME_REG_DBS + 8)
		return pnvme_fail(-ENODEV, "vfio: %s: BAR0 is %llu bytes, too small for NVMe "
				  "registers", v->bdf, (unsigned long long)bar.size);
	if (!(bar.flags & VFIO_REGION_INFO_FLAG_MMAP))
		return pnvme_fail(-EOPNOTSUPP, "vfio: %s: BAR0 cannot be mmapped", v->bdf);
	v->bar_len = (size_t)bar.size;
	v->bar = mmap(NULL, v->bar_len, PROT_READ | PROT_WRITE, MAP_SHARED, v->device,
		      (off_t)bar.offset);
	if (v->bar == MAP_FAILED) {
		int err = errno;
		v->bar = NULL;
		return pnvme_fail(-err, "vfio: %s: mmap of BAR0 (%zu bytes): %s", v->bdf,
				  v->bar_len, strerror(err));
	}
	/* A removed device must read as all ones, not kill the process with SIGBUS. */
	(void)pnvme_bar_guard_add(v->bar, v->bar_len);

	/*
	 * PCI command register: memory decoding, no INTx (polled). Bus mastering
	 * stays off until the controller is known to be disabled (bus_master op):
	 * a controller a killed process left running must not DMA into our memory.
	 */
	uint16_t cmd;
	int rc = cfg_read16(v, PCI_COMMAND, &cmd);
	if (rc == 0) {
		cmd = (uint16_t)((cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE) &
				 ~PCI_COMMAND_MASTER);
		rc = cfg_write16(v, PCI_COMMAND, cmd);
	}
	if (rc != 0)
		return pnvme_fail(rc, "vfio: %s: cannot enable memory decoding in the PCI "
				  "command register: %s", v->bdf, strerror(-rc));

	be->bar = v->bar;
	be->bar_len = v->bar_len;
	return 0;
}

int pnvme_vfio_backend_open(const char *bdf, struct pnvme_backend *be)
{
	if (!bdf || !be)
		return pnvme_fail(-EINVAL, "vfio: no PCI address");
	struct vfio_ctx *v = calloc(1, sizeof(*v));
	if (!v)
		return pnvme_fail(-ENOMEM, "vfio: out of memory");
	v->container = v->group = v->device = -1;
	v->group_id = -1;
	int rc = pnvme_pci_bdf_normalize(bdf, v->bdf);
	if (rc != 0)
		goto fail;

	unsigned long type = 0;
	if ((rc = open_container(v, &type)) != 0 ||
	    (rc = open_group(v)) != 0 ||
	    (rc = attach_group(v, type)) != 0 ||
	    (rc = pick_iova_window(v, be)) != 0 ||
	    (rc = open_device(v, be)) != 0)
		goto fail;

	be->ops = &vfio_ops;
	be->ctx = v;
	log_info("vfio: %s open: group %d, %s, BAR0 %zu bytes", v->bdf, v->group_id,
		 type == VFIO_TYPE1v2_IOMMU ? "type1v2" : "type1", v->bar_len);
	return 0;
fail:
	vfio_ctx_free(v);
	return rc;
}
