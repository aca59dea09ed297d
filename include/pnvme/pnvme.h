/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme/pnvme.h - umbrella header: a polled user-space NVMe driver.
 *
 *   pnvme/api.h      C linkage and symbol visibility (included by the others)
 *   pnvme/version.h  version numbers, pnvme_version()
 *   pnvme/spec.h     NVMe registers, queue entries, identify data, status codes
 *   pnvme/error.h    errors, status strings, logging
 *   pnvme/dma.h      DMA memory
 *   pnvme/ctrl.h     controllers, namespaces, admin commands
 *   pnvme/qpair.h    I/O queue pairs and I/O commands (the hot path)
 *   pnvme/req.h      prepared requests: Read / Write checked once, submitted often
 *   pnvme/emu.h      the emulated controller
 *   pnvme/pci.h      NVMe controllers on the PCI bus, binding to vfio-pci
 *   pnvme/fabrics.h  NVMe over Fabrics (TCP): discovery
 *   pnvme/tgt.h      NVMe/TCP target: export namespaces to hosts
 */
#ifndef PNVME_PNVME_H
#define PNVME_PNVME_H

#include <pnvme/version.h>
#include <pnvme/spec.h>
#include <pnvme/error.h>
#include <pnvme/dma.h>
#include <pnvme/ctrl.h>
#include <pnvme/qpair.h>
#include <pnvme/req.h>
#include <pnvme/emu.h>
#include <pnvme/pci.h>
#include <pnvme/fabrics.h>
#include <pnvme/tgt.h>

#endif /* PNVME_PNVME_H */
