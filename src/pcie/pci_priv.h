/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pci_priv.h - what pci.c and pci_usage.c share: the sysfs paths they read
 * and write, the sysfs helpers of pci.c (every path under the test root
 * PNVME_SYSFS_ROOT when one is set), and the block device walk of
 * pci_usage.c that completes a controller's description. Not exported.
 */
#ifndef PNVME_PCI_PRIV_H
#define PNVME_PCI_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pnvme/pci.h>

#define SYSFS_PCI         "/sys/bus/pci"
#define SYSFS_PCI_DEVICES SYSFS_PCI "/devices"
#define SYSFS_BLOCK       "/sys/class/block"
#define SYSFS_NVME_GENERIC "/sys/class/nvme-generic"

/* pci.c: sysfs helpers */
__attribute__((format(printf, 3, 4)))
int sysfs_path(char *buf, size_t len, const char *fmt, ...);
int sysfs_read_str(const char *path, char *buf, size_t len);
void sysfs_copy_str(char *dst, size_t len, const char *src);
bool sysfs_exists(const char *path);
int sysfs_dev_numbers(const char *sysdir, uint32_t *maj, uint32_t *min);

/* pci_usage.c: the block devices of a controller the nvme driver owns, and their use */
void usage_fill_blockdevs(struct pnvme_pci_dev *dev);

#endif /* PNVME_PCI_PRIV_H */
