/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme/pci.h - finding NVMe controllers on the PCI bus and handing them
 * between the kernel's nvme driver and vfio-pci.
 *
 * Discovery uses libpci where pnvme was built with it, and walks
 * /sys/bus/pci/devices otherwise; everything else reads and writes sysfs.
 * Binding and unbinding need root (they write driver_override, unbind and
 * drivers_probe in sysfs).
 *
 * For tests only: with the environment variable PNVME_SYSFS_ROOT=DIR these
 * functions use DIR/sys/... in place of /sys/... (a fake device tree; the
 * sysfs walk replaces libpci). /proc and /dev are still the real ones.
 *
 * Threading: every function here may be called from any thread; they share no
 * state. Binding the same device from two threads or processes at once is the
 * caller's problem (the kernel serialises the sysfs writes, not the sequence).
 */
#ifndef PNVME_PCI_H
#define PNVME_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pnvme/api.h>

PNVME_BEGIN_DECLS

#define PNVME_PCI_BDF_LEN   13u   /* "DDDD:BB:DD.F" and the NUL */
#define PNVME_PCI_CLASS_NVME 0x010802u /* mass storage / NVM / NVM Express */
#define PNVME_PCI_MAX_BLK   32u   /* block devices reported per controller */

/** One kernel block device (namespace or partition) of a controller. */
struct pnvme_pci_blk {
	char name[32];          /* "nvme0n1", "nvme0n1p1" */
	uint32_t major, minor;
	bool partition;
	char in_use[192];       /* why it is busy ("nvme0n1p1 is mounted on /mnt"; every
	                           reason found, "; " separated), or "" */
};

/** An NVMe controller as the system sees it. */
struct pnvme_pci_dev {
	char bdf[PNVME_PCI_BDF_LEN];  /* "0000:00:04.0" */
	uint16_t vendor, device;      /* PCI ids */
	uint16_t subsys_vendor, subsys_device;
	uint32_t class_code;          /* 24-bit class, 0x010802 */
	int numa_node;                /* -1 if unknown */
	int iommu_group;              /* -1: no IOMMU group (IOMMU off) */
	char driver[32];              /* bound driver ("nvme", "vfio-pci"), "" for none */
	char ctrl_name[16];           /* kernel controller ("nvme0") when nvme owns it, else "" */
	unsigned nr_blk;
	struct pnvme_pci_blk blk[PNVME_PCI_MAX_BLK];
	char in_use[256];             /* why the device is busy: every reason found, "; "
	                                 separated (cut at the end of the buffer), or "" */
};

/**
 * Normalise a PCI address: "0000:00:04.0", "00:04.0" (domain 0) and upper
 * case hex are accepted; `out` receives "dddd:bb:dd.f" in lower case.
 * Returns 0, or -EINVAL with pnvme_last_error() set. Thread safe.
 */
int pnvme_pci_bdf_normalize(const char *in, char out[PNVME_PCI_BDF_LEN]);

/**
 * List the NVMe controllers (PCI class 010802h) with their driver, IOMMU
 * group, kernel block devices and whether anything uses them.
 * @devs: out, an array to release with pnvme_pci_list_free() (NULL when *n is 0).
 * @n:    out, its length.
 * Returns 0, -ENOMEM, or -errno when the PCI bus cannot be read
 * (pnvme_last_error() says why). Thread safe.
 */
int pnvme_pci_list(struct pnvme_pci_dev **devs, size_t *n);

/** Free a list from pnvme_pci_list(). NULL is ignored. */
void pnvme_pci_list_free(struct pnvme_pci_dev *devs);

/**
 * Describe one PCI device (any class) the way pnvme_pci_list() does.
 * Returns 0, -EINVAL (bad address), -ENODEV (no such device). Thread safe.
 */
int pnvme_pci_probe(const char *bdf, struct pnvme_pci_dev *dev);

/**
 * Hand controller `bdf` to vfio-pci: refuse if it is not an NVMe controller
 * or if the kernel is using it, write "vfio-pci" to driver_override, unbind
 * it from its current driver, ask the kernel to reprobe it, and check that
 * vfio-pci took it. Binding a device that is already on vfio-pci succeeds
 * without doing anything.
 * @force: bind even a function whose PCI class is not 010802h, and even if a
 *         namespace is mounted, used for swap, held by dm/md or open by a
 *         process (data loss is then the caller's choice). What it overrides
 *         is what pnvme_pci_probe() reports (class_code, in_use).
 * Returns 0, or with pnvme_last_error() saying what to do:
 *   -EINVAL  bad address;  -ENODEV  no such device;
 *   -ENOTSUP not an NVMe controller (the message names its class);
 *   -EBUSY   in use (the message names everything that holds it, e.g.
 *            "nvme0n1p1 is mounted on /mnt");
 *   -ENXIO   the device has no IOMMU group (IOMMU off);
 *   -ENOENT  the vfio-pci driver is not loaded;
 *   -EACCES/-EPERM  not root;  -EIO  vfio-pci did not claim the device.
 * Side effects: the kernel's block devices of the controller disappear.
 */
int pnvme_pci_bind_vfio(const char *bdf, bool force);

/**
 * Give controller `bdf` back to the kernel's nvme driver: clear
 * driver_override, unbind from vfio-pci, reprobe, and check that nvme took it.
 * Refuses (-EBUSY, naming the process) while a process has the device's VFIO
 * group open, because unbinding would block until it lets go. The kernel
 * creates the namespace block devices asynchronously after this returns.
 * Returns 0, -EINVAL, -ENODEV, -EBUSY, -EACCES/-EPERM, -ENOENT (the nvme
 * driver is not loaded), -EIO (nvme did not claim the device).
 */
int pnvme_pci_unbind_vfio(const char *bdf);

/**
 * Why controller `bdf` is in use, as pnvme_pci_bind_vfio() would refuse it.
 * @why: receives the reasons ("; " separated), or "" if the device looks free (best effort:
 *       other users' open file descriptors are visible to root only).
 * Returns 1 in use, 0 free, or a negative errno (-ENODEV, -EINVAL).
 */
int pnvme_pci_in_use(const char *bdf, char *why, size_t len);

PNVME_END_DECLS
#endif /* PNVME_PCI_H */
