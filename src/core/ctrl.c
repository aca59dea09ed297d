/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ctrl.c - controller life cycle: open, bring-up (NVMe Base 2.0 §3.5.1),
 * identify, namespaces, shutdown (§3.6.1), and the DMA entry points. The
 * controller state machine and resets are in reset.c.
 */
#include <ctype.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pnvme/dma.h>
#include <pnvme/emu.h>
#include <pnvme/tcp_spec.h>

#include "core/ctrl_priv.h"
#include "tcp/host.h"

#define MAX_XFER_CAP   (2u << 20)   /* one PRP list page per request covers 2 MiB */
#define CTRL_FLAGS     PNVME_CTRL_SHADOW_DB /* every flag pnvme_ctrl_opts knows */

void pnvme_ctrl_opts_default(struct pnvme_ctrl_opts *opts)
{
	if (!opts)
		return;
	memset(opts, 0, sizeof(*opts));
	opts->admin_timeout_ms = 60000;
	opts->io_timeout_ms = 30000;
	opts->flags = PNVME_CTRL_SHADOW_DB; /* as SPDK and libvfn: on where offered */
	opts->admin_depth = 31; /* 32-entry admin rings */
	opts->nr_io_queues = 64;
	opts->shutdown_timeout_ms = 0;
}

/* ------------------------------------------------------------------------ */
/* Registers, through the transport (MMIO, or Property Get/Set)             */
/* ------------------------------------------------------------------------ */

int64_t ctrl_read_csts(struct pnvme_ctrl *ctrl)
{
	uint32_t csts;
	int rc = ctrl->tr->reg_read32(ctrl, PNVME_REG_CSTS, &csts);

	if (rc)
		return rc;
	if (csts == UINT32_MAX) {
		ctrl_mark_dead(ctrl);
		return pnvme_fail(-ENODEV, "controller registers read all ones: the device is "
				  "gone (removed, powered off or reset)");
	}
	return csts;
}

void ctrl_mark_dead(struct pnvme_ctrl *ctrl)
{
	(void)ctrl_change_state(ctrl, CTRL_DEAD);
}

/*
 * Wait until CSTS.RDY == rdy, bounded by CAP.TO (500 ms units, Base 2.0
 * §3.1.4.1). While waiting for ready, CSTS.CFS means the controller failed.
 */
static int wait_ready(struct pnvme_ctrl *ctrl, unsigned rdy)
{
	uint64_t to_ms = PNVME_GET(ctrl->cap, PNVME_CAP_TO) * 500ull;
	uint64_t deadline;

	if (to_ms == 0)
		to_ms = 500;
	deadline = pnvme_now_ms() + to_ms;
	for (;;) {
		int64_t csts = ctrl_read_csts(ctrl);
		if (csts < 0)
			return (int)csts;
		if (rdy && PNVME_GET((uint32_t)csts, PNVME_CSTS_CFS))
			return pnvme_fail(-EIO, "controller fatal status (CSTS.CFS) while "
					  "waiting for CSTS.RDY=1");
		if (PNVME_GET((uint32_t)csts, PNVME_CSTS_RDY) == rdy)
			return 0;
		if (pnvme_now_ms() >= deadline)
			return pnvme_fail(-ETIMEDOUT, "CSTS.RDY did not become %u within CAP.TO "
					  "(%llu ms)", rdy, (unsigned long long)to_ms);
		ctrl_wait_hook(ctrl);
	}
}

/* Base 2.0 §3.7.2: controller reset by CC.EN 1 -> 0, then wait for CSTS.RDY = 0. */
int ctrl_cc_disable(struct pnvme_ctrl *ctrl)
{
	uint32_t cc;
	int64_t csts;
	int rc = ctrl->tr->reg_read32(ctrl, PNVME_REG_CC, &cc);

	if (rc)
		return rc;
	csts = ctrl_read_csts(ctrl);
	if (csts < 0)
		return (int)csts;
	if (PNVME_GET(cc, PNVME_CC_EN)) {
		rc = ctrl->tr->reg_write32(ctrl, PNVME_REG_CC, cc & ~PNVME_SET(PNVME_CC_EN, 1u));
		if (rc)
			return rc;
		/* Let the device see EN=0 even when RDY already reads 0 (failed enable). */
		ctrl_wait_hook(ctrl);
	} else if (!PNVME_GET((uint32_t)csts, PNVME_CSTS_RDY)) {
		return 0;
	}
	return wait_ready(ctrl, 0);
}

int ctrl_disable(struct pnvme_ctrl *ctrl)
{
	return ctrl->tr->disable(ctrl);
}

/*
 * Controller initialization: Base 2.0 §3.5.1 (memory-based, PCIe) steps 1-6,
 * §3.5.2 (message-based, fabrics) steps 1-4. The transport does what comes
 * before the controller configuration (PCIe: wait for CSTS.RDY = 0, admin
 * queue attributes and base addresses; fabrics: connect the admin queue);
 * then the same steps over registers or properties. Identify, the I/O
 * command set and the number of queues follow in ctrl_identify() and
 * ctrl_set_queues().
 */
int ctrl_enable(struct pnvme_ctrl *ctrl)
{
	uint32_t css, cc;
	int rc;

	/* PCIe steps 1-2 / fabrics steps 1-2. */
	rc = ctrl->tr->admin_setup(ctrl);
	if (rc)
		return rc;

	/* Step 3: the NVM command set must be supported. */
	css = (uint32_t)PNVME_GET(ctrl->cap, PNVME_CAP_CSS);
	if (!(css & PNVME_CAP_CSS_NVM))
		return pnvme_fail(-EOPNOTSUPP, "controller does not support the NVM command set "
				  "(CAP.CSS 0x%x)", css);
	if (PNVME_GET(ctrl->cap, PNVME_CAP_MPSMIN) != 0)
		return pnvme_fail(-EOPNOTSUPP, "controller needs pages larger than 4 KiB "
				  "(CAP.MPSMIN %u)", (unsigned)PNVME_GET(ctrl->cap, PNVME_CAP_MPSMIN));

	/* Step 4: CC.CSS, CC.MPS (4 KiB), CC.AMS (round robin), entry sizes. */
	cc = PNVME_SET(PNVME_CC_CSS, PNVME_CC_CSS_NVM) | PNVME_SET(PNVME_CC_MPS, 0u) |
	     PNVME_SET(PNVME_CC_AMS, PNVME_CC_AMS_RR) | PNVME_SET(PNVME_CC_IOSQES, 6u) |
	     PNVME_SET(PNVME_CC_IOCQES, 4u);
	rc = ctrl->tr->reg_write32(ctrl, PNVME_REG_CC, cc);

	/* Step 5: enable. */
	if (rc == 0)
		rc = ctrl->tr->reg_write32(ctrl, PNVME_REG_CC, cc | PNVME_SET(PNVME_CC_EN, 1u));
	if (rc)
		return rc;

	/* Step 6: wait for CSTS.RDY = 1. */
	return wait_ready(ctrl, 1);
}

/* ------------------------------------------------------------------------ */
/* Identify (step 7) and namespaces (step 8)                                */
/* ------------------------------------------------------------------------ */

int pnvme_parse_id_ns(const struct pnvme_id_ns *id, uint32_t max_xfer, struct pnvme_ns *ns)
{
	unsigned fmt = PNVME_FLBAS_INDEX(id->flbas);
	unsigned lbads;

	/* NVM 1.0 §4.1.5.1: FLBAS selects one of NLBAF + 1 formats (at most 64). */
	if (fmt > id->nlbaf || fmt >= ARRAY_SIZE(id->lbaf))
		return pnvme_fail(-EPROTO, "LBA format index %u beyond NLBAF %u", fmt, id->nlbaf);
	lbads = (unsigned)PNVME_GET(id->lbaf[fmt], PNVME_LBAF_LBADS);
	if (lbads < 9 || lbads > 16)
		return pnvme_fail(-EPROTO, "unusable LBA data size 2^%u", lbads);
	if (id->ncap > id->nsze)
		return pnvme_fail(-EPROTO, "capacity %llu above size %llu",
				  (unsigned long long)id->ncap, (unsigned long long)id->nsze);
	ns->lba_shift = lbads;
	ns->lba_size = 1u << lbads;
	/*
	 * Metadata (NVM 1.0c §5.2; Identify Namespace FLBAS bit 4, LBAF.MS, DPS):
	 * with extended LBAs every block moves lba_size + ms bytes through the
	 * data pointer, so transfers, buffer checks and MDTS count those.
	 */
	ns->ms = (uint32_t)PNVME_GET(id->lbaf[fmt], PNVME_LBAF_MS);
	ns->md_ext = ns->ms != 0 && (id->flbas & PNVME_FLBAS_META_EXT) != 0;
	ns->pi_type = (uint8_t)(id->dps & 0x7u);
	ns->pi_first = (uint8_t)((id->dps >> 3) & 1u);
	if (ns->pi_type > 3)
		return pnvme_fail(-EPROTO, "unknown protection information type %u", ns->pi_type);
	if (ns->pi_type != 0 && ns->ms < 8)
		return pnvme_fail(-EPROTO, "protection information type %u with %u bytes of "
				  "metadata (needs 8)", ns->pi_type, ns->ms);
	ns->block_bytes = ns->lba_size + (ns->md_ext ? ns->ms : 0);
	ns->nlba = id->nsze;
	ns->ncap = id->ncap;
	ns->max_xfer = max_xfer;
	ns->max_lbas = max_xfer / ns->block_bytes;
	if (ns->max_lbas > 65536u)
		ns->max_lbas = 65536u; /* NLB is 16 bits, 0's based */
	if (ns->max_lbas == 0)
		return pnvme_fail(-EPROTO, "a block of %u bytes exceeds the transfer limit of %u "
				  "bytes (MDTS)", ns->block_bytes, max_xfer);
	/* pnvme_read/pnvme_write take their fast path only without metadata. */
	ns->fast_lbas = ns->ms ? 0 : ns->max_lbas;
	return 0;
}

static int ctrl_identify(struct pnvme_ctrl *ctrl)
{
	int rc;

	rc = pnvme_identify(ctrl, PNVME_ID_CNS_CTRL, 0, &ctrl->id);
	if (rc)
		return rc;
	/* CNTRLTYPE 2: a discovery controller (Base 2.0 §3.1.3.3): no namespaces. */
	ctrl->discovery = ctrl->id.cntrltype == 2 ||
			  (ctrl->tcp && strcmp(ctrl->tcp->o.subnqn, PNVME_DISCOVERY_NQN) == 0);
	/* MDTS is a power of two in units of CAP.MPSMIN (4 KiB here); 0 = no limit. */
	ctrl->max_xfer = MAX_XFER_CAP;
	if (ctrl->id.mdts && ctrl->id.mdts < 20 &&
	    (PNVME_PAGE_SIZE << ctrl->id.mdts) < MAX_XFER_CAP)
		ctrl->max_xfer = PNVME_PAGE_SIZE << ctrl->id.mdts;

	if (ctrl->discovery)
		return 0;
	/* Step 8: the active namespaces (ns.c). */
	return ctrl_ns_scan(ctrl);
}

/* Step 9: Set Features, Number of Queues (Base 2.0 §5.27.1.5). */
static int ctrl_set_queues(struct pnvme_ctrl *ctrl)
{
	uint32_t want = ctrl->opts.nr_io_queues, dw0 = 0;
	int rc;

	if (want == 0)
		want = 1;
	rc = pnvme_set_features(ctrl, PNVME_FEAT_NUM_QUEUES, 0,
				PNVME_SET(PNVME_NUMQ_NSQ, want - 1) |
				PNVME_SET(PNVME_NUMQ_NCQ, want - 1), 0, &dw0);
	if (rc == -ETIMEDOUT || rc == -ENODEV)
		return rc;
	if (rc) {
		/* Like Linux: a controller that refuses keeps only its admin queue. */
		log_warn("Set Features (Number of Queues) failed: %s; no I/O queues",
			 pnvme_last_error());
		ctrl->max_io_queues = 0;
	} else {
		uint32_t nsq = PNVME_GET(dw0, PNVME_NUMQ_NSQ) + 1;
		uint32_t ncq = PNVME_GET(dw0, PNVME_NUMQ_NCQ) + 1;
		uint32_t n = nsq < ncq ? nsq : ncq;
		if (n > want)
			n = want;
		/* Only queues whose doorbells lie inside BAR0 are usable. */
		while (n && !ctrl->tcp &&
		       PNVME_CQ_HDBL(n, ctrl->dstrd) + sizeof(uint32_t) > ctrl->be.bar_len)
			n--;
		ctrl->max_io_queues = (uint16_t)n;
	}
	ctrl->qid_used = calloc((size_t)ctrl->max_io_queues + 1, 1);
	if (!ctrl->qid_used)
		return pnvme_fail(-ENOMEM, "out of memory");
	return 0;
}

/*
 * Doorbell Buffer Config (Base 2.0 §5.8): PRP1 the shadow doorbell page,
 * PRP2 the EventIdx page, both zeroed first. Only when the application asked
 * (PNVME_CTRL_SHADOW_DB) and the controller offers it (OACS bit 8); a refusal
 * leaves ordinary doorbells in use.
 */
int ctrl_dbbuf_config(struct pnvme_ctrl *ctrl)
{
	struct pnvme_sqe c;
	uint64_t db_iova = 0, ei_iova = 0;
	int rc;

	ctrl->dbbuf_on = false;
	if (!(ctrl->opts.flags & PNVME_CTRL_SHADOW_DB) || !(ctrl->id.oacs & PNVME_OACS_DBBUF))
		return 0;
	if (!ctrl->dbbuf) {
		rc = pnvme_dma_alloc_raw(&ctrl->dma, PNVME_PAGE_SIZE, PNVME_PAGE_SIZE,
					 (void **)&ctrl->dbbuf, NULL);
		if (rc == 0)
			rc = pnvme_dma_alloc_raw(&ctrl->dma, PNVME_PAGE_SIZE, PNVME_PAGE_SIZE,
						 (void **)&ctrl->eventidx, NULL);
		if (rc)
			return rc;
	}
	memset(ctrl->dbbuf, 0, PNVME_PAGE_SIZE);
	memset(ctrl->eventidx, 0, PNVME_PAGE_SIZE);
	if (pnvme_dma_xlate(&ctrl->dma, ctrl->dbbuf, 1, &db_iova) ||
	    pnvme_dma_xlate(&ctrl->dma, ctrl->eventidx, 1, &ei_iova))
		return pnvme_fail(-EFAULT, "shadow doorbell pages are not DMA mapped");
	memset(&c, 0, sizeof(c));
	c.opc = PNVME_ADM_DBBUF_CONFIG;
	c.prp1 = db_iova;
	c.prp2 = ei_iova;
	rc = admin_sync(ctrl, &c, NULL, 0, NULL);
	if (rc == -ETIMEDOUT || rc == -ENODEV)
		return rc;
	if (rc) {
		log_notice("Doorbell Buffer Config refused (%s): ordinary doorbells",
			   pnvme_last_error());
		return 0;
	}
	ctrl->dbbuf_on = true;
	log_info("shadow doorbells in use");
	return 0;
}

bool pnvme_ctrl_shadow_db(const struct pnvme_ctrl *ctrl)
{
	return ctrl && ctrl->dbbuf_on;
}

/* ------------------------------------------------------------------------ */
/* Open and close                                                           */
/* ------------------------------------------------------------------------ */

static int ctrl_bringup(struct pnvme_ctrl *ctrl)
{
	uint32_t aqsize;
	int rc;

	ctrl->admin_timeout_ticks = pnvme_ms_to_ticks(ctrl->opts.admin_timeout_ms);
	rc = ctrl->tr->probe(ctrl);
	if (rc)
		return rc;
	ctrl->probed = true;
	rc = pnvme_dma_init(&ctrl->dma, &ctrl->be);
	if (rc)
		return rc;
	ctrl->dma_ready = true;

	/*
	 * admin_depth commands outstanding: one ring entry more (see "Depth",
	 * ctrl.h), capped at CAP.MQES on PCIe; a fabrics admin queue is sized
	 * before its CAP can be read: at most 32 entries there (the admin queue
	 * depth NVMe over Fabrics targets accept, e.g. Linux's NVMET_AQ_DEPTH).
	 * CTRL_AER_SLOTS entries more for the Asynchronous Event Requests
	 * (aer.c), where the caps leave room.
	 */
	aqsize = (uint32_t)ctrl->opts.admin_depth + 1 + CTRL_AER_SLOTS;
	if (aqsize > PNVME_MAX_QUEUE_ENTRIES)
		aqsize = PNVME_MAX_QUEUE_ENTRIES;
	if (ctrl->tcp) {
		if (aqsize > 32)
			aqsize = 32;
	} else if (aqsize > PNVME_GET(ctrl->cap, PNVME_CAP_MQES) + 1) {
		aqsize = (uint32_t)PNVME_GET(ctrl->cap, PNVME_CAP_MQES) + 1;
	}
	rc = qpair_alloc(ctrl, 0, aqsize, ctrl->opts.admin_timeout_ms, PNVME_QPAIR_DB_IMMEDIATE, 0,
			 &ctrl->adminq);
	if (rc)
		return rc;
	rc = ctrl_enable(ctrl);
	if (rc)
		return rc;
	ctrl->max_xfer = PNVME_PAGE_SIZE; /* until Identify tells MDTS */
	rc = ctrl_identify(ctrl);
	if (rc == 0 && ctrl->tcp)
		rc = tcp_ctrl_identified(ctrl);
	if (rc)
		return rc;
	if (ctrl->discovery) {
		/* A discovery controller: no namespaces, no I/O queues (Base 2.0 §3.1.3.3). */
		ctrl->qid_used = calloc(1, 1);
		return ctrl->qid_used ? 0 : pnvme_fail(-ENOMEM, "out of memory");
	}
	rc = ctrl_set_queues(ctrl);
	if (rc)
		return rc;
	rc = ctrl_dbbuf_config(ctrl);
	if (rc == 0)
		rc = ctrl_aer_start(ctrl);
	if (rc)
		return rc;
	log_info("controller %.40s ready: NVMe %u.%u, %u namespace(s), %u I/O queues, "
		 "MQES %u, max transfer %u bytes", ctrl->id.mn, PNVME_VS_MJR(ctrl->vs),
		 PNVME_VS_MNR(ctrl->vs), ctrl->nr_ns, ctrl->max_io_queues,
		 (unsigned)PNVME_GET(ctrl->cap, PNVME_CAP_MQES) + 1, ctrl->max_xfer);
	return 0;
}

static void ctrl_free(struct pnvme_ctrl *ctrl)
{
	if (ctrl->adminq)
		qpair_free(ctrl->adminq);
	ctrl->adminq = NULL;
	if (ctrl->dma_ready)
		pnvme_dma_fini(&ctrl->dma);
	if (ctrl->tr)
		ctrl->tr->close(ctrl);
	if (ctrl->owns_emu)
		pnvme_emu_destroy(ctrl->emu);
	pthread_mutex_destroy(&ctrl->admin_lock);
	ctrl_aer_free(ctrl);
	ctrl_ns_free(ctrl);
	free(ctrl->qid_used);
	free(ctrl->quarantine);
	free(ctrl);
}

static int opts_check(struct pnvme_ctrl_opts *o)
{
	if (o->flags & ~CTRL_FLAGS)
		return pnvme_fail(-EINVAL, "ctrl opts: unknown flag bits 0x%x (known: 0x%x)",
				  o->flags & ~CTRL_FLAGS, CTRL_FLAGS);
	if (o->admin_depth < 1 || o->admin_depth > PNVME_MAX_QUEUE_ENTRIES - 1)
		return pnvme_fail(-EINVAL, "ctrl opts: admin_depth %u outside 1..%u", o->admin_depth,
				  PNVME_MAX_QUEUE_ENTRIES - 1);
	if (o->admin_timeout_ms == 0 || o->io_timeout_ms == 0)
		return pnvme_fail(-EINVAL, "ctrl opts: timeouts must be non-zero");
	return 0;
}

static int ctrl_new(const struct pnvme_ctrl_opts *opts, struct pnvme_ctrl **out)
{
	struct pnvme_ctrl *ctrl;
	pthread_mutexattr_t ma;
	int rc;

	ctrl = calloc(1, sizeof(*ctrl));
	if (!ctrl)
		return pnvme_fail(-ENOMEM, "out of memory");
	if (opts)
		ctrl->opts = *opts;
	else
		pnvme_ctrl_opts_default(&ctrl->opts);
	rc = opts_check(&ctrl->opts);
	if (rc) {
		free(ctrl);
		return rc;
	}
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&ctrl->admin_lock, &ma);
	pthread_mutexattr_destroy(&ma);
	*out = ctrl;
	return 0;
}

static int ctrl_finish_open(struct pnvme_ctrl *ctrl, struct pnvme_ctrl **out)
{
	int rc = ctrl_bringup(ctrl);

	if (rc) {
		char msg[256];
		/* Keep the reason: teardown may overwrite the last error. */
		snprintf(msg, sizeof(msg), "%s", pnvme_last_error());
		if (!ctrl_is_dead(ctrl) && ctrl->probed)
			(void)ctrl_disable(ctrl);
		ctrl_free(ctrl);
		return pnvme_fail(rc, "%s", msg);
	}
	(void)ctrl_change_state(ctrl, CTRL_LIVE);
	*out = ctrl;
	return 0;
}

int pnvme_ctrl_open_emu(struct pnvme_emu *emu, const struct pnvme_ctrl_opts *opts,
			struct pnvme_ctrl **out)
{
	struct pnvme_ctrl *ctrl;
	int rc;

	if (!emu || !out)
		return pnvme_fail(-EINVAL, "ctrl_open_emu: NULL argument");
	*out = NULL;
	rc = ctrl_new(opts, &ctrl);
	if (rc)
		return rc;
	ctrl->emu = emu;
	ctrl->tr = &pnvme_pcie_ops;
	rc = pnvme_emu_backend_init(emu, &ctrl->be);
	if (rc) {
		ctrl_free(ctrl);
		return rc;
	}
	return ctrl_finish_open(ctrl, out);
}

/* "DDDD:BB:DD.F" or "BB:DD.F" (domain 0). */
static bool is_pci_addr(const char *s, char *norm, size_t len)
{
	unsigned dom = 0, bus, dev, fn;
	char tail;

	if (sscanf(s, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) == 4 ||
	    (dom = 0, sscanf(s, "%x:%x.%x%c", &bus, &dev, &fn, &tail) == 3)) {
		if (dom > 0xffff || bus > 0xff || dev > 0x1f || fn > 7)
			return false;
		for (const char *p = s; *p; p++)
			if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
				return false;
		snprintf(norm, len, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
		return true;
	}
	return false;
}

int pnvme_ctrl_open(const char *addr, const struct pnvme_ctrl_opts *opts,
		    struct pnvme_ctrl **out)
{
	struct pnvme_ctrl *ctrl;
	char bdf[32];
	int rc;

	if (!addr || !out)
		return pnvme_fail(-EINVAL, "ctrl_open: NULL argument");
	*out = NULL;
	/* "null[:...]": the emulator as a thread-less null device (pnvme/emu.h) */
	if (strcmp(addr, "emu") == 0 || strncmp(addr, "emu:", 4) == 0 ||
	    strcmp(addr, "null") == 0 || strncmp(addr, "null:", 5) == 0) {
		struct pnvme_emu *emu;
		rc = pnvme_emu_create(addr, &emu);
		if (rc)
			return rc;
		rc = pnvme_ctrl_open_emu(emu, opts, &ctrl);
		if (rc) {
			pnvme_emu_destroy(emu);
			return rc;
		}
		ctrl->owns_emu = true;
		*out = ctrl;
		return 0;
	}
	if (strncmp(addr, "tcp:", 4) == 0) {
		rc = ctrl_new(opts, &ctrl);
		if (rc)
			return rc;
		rc = tcp_ctrl_open(addr, ctrl);
		if (rc) {
			ctrl_free(ctrl);
			return rc;
		}
		return ctrl_finish_open(ctrl, out);
	}
	if (!is_pci_addr(addr, bdf, sizeof(bdf)))
		return pnvme_fail(-EINVAL, "'%s' is neither a PCI address (0000:01:00.0), an "
				  "emulator spec (emu:..., null:...) nor an NVMe/TCP address (tcp:HOST:PORT/NQN)", addr);
	/* A device that does not exist says so before VFIO is asked anything. */
	char path[64];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", bdf);
	if (access(path, F_OK) != 0)
		return pnvme_fail(-ENODEV, "no PCI device %s (see `pnvme list`)", bdf);
	rc = ctrl_new(opts, &ctrl);
	if (rc)
		return rc;
	ctrl->tr = &pnvme_pcie_ops;
	rc = pnvme_vfio_backend_open(bdf, &ctrl->be);
	if (rc) {
		ctrl_free(ctrl);
		return rc;
	}
	return ctrl_finish_open(ctrl, out);
}

/* Base 2.0 §3.6.1: normal shutdown, CC.SHN = 01b, then wait for CSTS.SHST = 10b. */
static int ctrl_shutdown(struct pnvme_ctrl *ctrl)
{
	uint64_t ms = ctrl->opts.shutdown_timeout_ms;
	uint64_t deadline;
	uint32_t cc;
	int rc;

	if (ms == 0) {
		ms = ctrl->id.rtd3e / 1000u; /* RTD3E is in microseconds */
		if (ms < 5000)
			ms = 5000;
		if (ms > 60000)
			ms = 60000;
	}
	rc = ctrl->tr->reg_read32(ctrl, PNVME_REG_CC, &cc);
	if (rc)
		return rc;
	cc &= ~PNVME_SET(PNVME_CC_SHN, PNVME_CC_SHN_MASK);
	rc = ctrl->tr->reg_write32(ctrl, PNVME_REG_CC, cc | PNVME_SET(PNVME_CC_SHN, PNVME_CC_SHN_NORMAL));
	if (rc)
		return rc;
	deadline = pnvme_now_ms() + ms;
	for (;;) {
		int64_t csts = ctrl_read_csts(ctrl);
		if (csts < 0)
			return (int)csts;
		if (PNVME_GET((uint32_t)csts, PNVME_CSTS_SHST) == PNVME_CSTS_SHST_COMPLETE)
			return 0;
		if (pnvme_now_ms() >= deadline)
			return pnvme_fail(-ETIMEDOUT, "shutdown did not complete within %llu ms",
					  (unsigned long long)ms);
		ctrl_wait_hook(ctrl);
	}
}

/*
 * True if this thread is inside one of the controller's callbacks: a poll of
 * the admin queue or of a queue pair (no other thread may use the controller
 * while it is being closed), the reset callback, or a reset or close it runs.
 */
static bool ctrl_in_callback(struct pnvme_ctrl *ctrl)
{
	enum ctrl_state st = ctrl_state(ctrl);
	bool busy = ctrl->adminq->in_poll || ctrl->in_reset_cb || st == CTRL_RESETTING ||
		    st == CTRL_CONNECTING || st == CTRL_DELETING;

	for (struct pnvme_qpair *q = ctrl->qpairs; q && !busy; q = q->next)
		busy = q->in_poll != 0;
	return busy;
}

int pnvme_ctrl_close(struct pnvme_ctrl *ctrl)
{
	bool busy, closing_unreachable = false;
	int rc = 0;

	if (!ctrl)
		return 0;
	pthread_mutex_lock(&ctrl->admin_lock);
	if (__atomic_load_n(&ctrl->reconnecting, __ATOMIC_ACQUIRE) && !ctrl->adminq->in_poll &&
	    !ctrl->in_reset_cb) {
		/* Closed between reconnect attempts: stop trying; nothing to shut down. */
		__atomic_store_n(&ctrl->reconnecting, 0, __ATOMIC_RELEASE);
		(void)ctrl_change_state(ctrl, CTRL_DEAD);
		closing_unreachable = true;
	}
	busy = ctrl_in_callback(ctrl);
	if (!busy)
		(void)ctrl_change_state(ctrl, CTRL_DELETING); /* refused when dead: fine */
	pthread_mutex_unlock(&ctrl->admin_lock);
	if (busy)
		return pnvme_fail(-EDEADLK, "pnvme_ctrl_close from a completion or reset callback "
				  "of the same controller: close it after the poll returns");
	while (ctrl->qpairs)
		(void)pnvme_qpair_destroy(ctrl->qpairs);
	if (!ctrl_is_dead(ctrl)) {
		rc = ctrl_shutdown(ctrl);
		if (rc == 0 || rc == -ETIMEDOUT) {
			/* Leave the controller disabled: nothing may DMA into freed memory. */
			int rc2 = ctrl_disable(ctrl);
			if (rc == 0 && rc2 != -ETIMEDOUT)
				rc = rc2;
		}
	} else {
		rc = closing_unreachable ? 0 : -ENODEV;
	}
	if (ctrl->adminq)
		qpair_fail_all(ctrl->adminq, -ECANCELED);
	ctrl_free(ctrl);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Accessors and DMA                                                        */
/* ------------------------------------------------------------------------ */

const struct pnvme_id_ctrl *pnvme_ctrl_id(const struct pnvme_ctrl *ctrl)
{
	return ctrl ? &ctrl->id : NULL;
}

uint64_t pnvme_ctrl_cap(const struct pnvme_ctrl *ctrl)
{
	return ctrl ? ctrl->cap : 0;
}

uint32_t pnvme_ctrl_vs(const struct pnvme_ctrl *ctrl)
{
	return ctrl ? ctrl->vs : 0;
}

uint16_t pnvme_ctrl_max_io_queues(const struct pnvme_ctrl *ctrl)
{
	return ctrl ? ctrl->max_io_queues : 0;
}

uint32_t pnvme_ctrl_max_xfer(const struct pnvme_ctrl *ctrl)
{
	return ctrl ? ctrl->max_xfer : 0;
}

struct pnvme_emu *pnvme_ctrl_emu(const struct pnvme_ctrl *ctrl)
{
	return ctrl ? ctrl->emu : NULL;
}

int pnvme_dma_alloc(struct pnvme_ctrl *ctrl, size_t size, size_t align, void **buf,
		    uint64_t *iova)
{
	if (!ctrl || !buf)
		return pnvme_fail(-EINVAL, "dma_alloc: NULL argument");
	return pnvme_dma_alloc_raw(&ctrl->dma, size, align, buf, iova);
}

int pnvme_dma_free(struct pnvme_ctrl *ctrl, void *buf)
{
	if (!buf)
		return 0;
	if (!ctrl)
		return pnvme_fail(-EINVAL, "dma_free: NULL controller");
	return pnvme_dma_free_raw(&ctrl->dma, buf);
}

int pnvme_dma_iova(const struct pnvme_ctrl *ctrl, const void *buf, size_t len, uint64_t *iova)
{
	if (!ctrl || !buf || !iova)
		return pnvme_fail(-EINVAL, "dma_iova: NULL argument");
	/* Every byte of the range must lie in one live allocation (message set). */
	return pnvme_dma_xlate(&ctrl->dma, buf, len ? len : 1, iova);
}
