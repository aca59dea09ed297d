/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme_fio.c - an external fio ioengine on pnvme (libpnvme-fio.so).
 *
 *   fio --thread --ioengine=external:/path/libpnvme-fio.so \
 *       --filename='emu\:size=256M' --rw=randread --bs=4k --iodepth=32 ...
 *
 * filename is a pnvme device address: a PCI address of a controller bound to
 * vfio-pci, an emulator spec, or an NVMe/TCP address (tcp\:HOST\:PORT/NQN,
 * the NQN's colons escaped too). fio splits filename lists at ':', so write
 * each ':' of the address as '\:' (fio's escape; in a shell, quote it), or
 * write a PCI address with dots only, as SPDK's fio plugin does:
 * 0000.01.00.0 is 0000:01:00.0. "emu" alone needs no escape.
 *
 * Model: every job that names the same address shares one controller, opened
 * by the first job that needs it and shut down when fio unloads the engine,
 * i.e. after the last job: data written to an emulated RAM namespace by one
 * job is still there for a later (stonewalled) verify job. Each job thread has
 * its own queue pair, created in init() and deleted in cleanup(); its I/O
 * buffers are pnvme DMA memory (iomem_alloc). Completions are polled in
 * getevents(); commit() writes the SQ tail doorbell once per batch
 * (iodepth_batch). Jobs must be threads (thread=1): the controller, its DMA
 * memory and the emulator's thread live in fio's process.
 *
 * An I/O larger than the namespace's transfer limit (MDTS) becomes several
 * commands, completed to fio as one when the last one completes, with the
 * first error. Offsets and lengths must be multiples of the block size.
 * Reads, writes, trims (Dataset Management, deallocate) and syncs (Flush).
 *
 * Only the public pnvme API is used, and fio's own headers (built against a
 * configured fio source tree of the fio binary's version: see
 * tools/install-deps.sh and tools/fio/CMakeLists.txt).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fio.h"
#include "optgroup.h"

#include <pnvme/pnvme.h>

#define PF_EXPORT __attribute__((visibility("default")))

/* Engine options (fio's --enghelp lists them). */
struct pf_opts {
	void *pad;              /* fio keeps a thread_data pointer here */
	unsigned int nsid;      /* 0: the first active namespace */
	unsigned int shadow_db; /* PNVME_CTRL_SHADOW_DB (at controller open) */
	unsigned int lazy_cq;   /* PNVME_QPAIR_LAZY_CQ_DB */
	unsigned int db_immediate; /* PNVME_QPAIR_DB_IMMEDIATE */
	unsigned int timeout_ms;   /* per command; 0: the controller's default */
	unsigned int retries;      /* max_retries of the queue pair */
};

static struct fio_option pf_options[] = {
	{
		.name = "pnvme_nsid",
		.lname = "pnvme namespace id",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct pf_opts, nsid),
		.def = "0",
		.help = "Namespace to use (0: the first active one)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "pnvme_shadow_db",
		.lname = "pnvme shadow doorbells",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct pf_opts, shadow_db),
		.def = "1",
		.help = "Use shadow doorbells where the controller offers them (default; 0: MMIO only) "
			"(applies when the first job opens the controller)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "pnvme_lazy_cq",
		.lname = "pnvme lazy CQ doorbell",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct pf_opts, lazy_cq),
		.def = "0",
		.help = "Defer CQ head doorbell writes (PNVME_QPAIR_LAZY_CQ_DB)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "pnvme_db_immediate",
		.lname = "pnvme doorbell per command",
		.type = FIO_OPT_BOOL,
		.off1 = offsetof(struct pf_opts, db_immediate),
		.def = "0",
		.help = "Write the SQ doorbell on every command, not once per batch",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "pnvme_timeout_ms",
		.lname = "pnvme command timeout",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct pf_opts, timeout_ms),
		.def = "0",
		.help = "Per-command timeout in ms (0: the controller default, 30 s)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "pnvme_retries",
		.lname = "pnvme retries",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct pf_opts, retries),
		.def = "0",
		.help = "Resubmit a failed command up to this many times (after a "
			"controller reset or an error status without DNR)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = NULL,
	},
};

/* One controller per address, shared by every job naming it. */
struct pf_dev {
	struct pf_dev *next;
	struct pnvme_ctrl *ctrl;
	char addr[];            /* as given to pnvme_ctrl_open() */
};

static pthread_mutex_t pf_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pf_dev *pf_devs;
static int pf_log_set;

/* An fio I/O in flight: one or more NVMe commands. */
struct pf_req {
	struct io_u *io_u;
	struct pf_thread *pt;
	uint32_t left;          /* commands not yet completed */
	int err;                /* first error (negative errno) */
	uint16_t status;        /* its NVMe status field, 0: host-side */
};

/* Per job thread (td->io_ops_data). */
struct pf_thread {
	struct pnvme_qpair *qp;
	struct io_u **events;   /* completed, for event() */
	unsigned int nr_events;
	unsigned int nr_reqs;
	uint32_t depth;         /* queue pair depth (commands) */
	struct pnvme_ctrl *ctrl;
	struct pf_dev *dev;
	void *buf;              /* td->orig_buffer, pnvme DMA memory */
	struct pf_req *reqs;    /* one per io_u, by io_u->index */
};

static void pf_log(void *arg, enum pnvme_log_level level, const char *msg)
{
	(void)arg;
	(void)level;
	log_err("pnvme: %s\n", msg);
}

/*
 * The address pnvme_ctrl_open() takes: a PCI address written with dots only
 * (SPDK's convention, "0000.01.00.0" or "01.00.0") gets its colons back.
 */
static void pf_addr(const char *name, char *out, size_t len)
{
	size_t n = strlen(name), dots = 0;
	int pci = n > 0;

	for (size_t i = 0; i < n; i++) {
		if (name[i] == '.')
			dots++;
		else if (!((name[i] >= '0' && name[i] <= '9') ||
			   (name[i] >= 'a' && name[i] <= 'f') ||
			   (name[i] >= 'A' && name[i] <= 'F')))
			pci = 0;
	}
	snprintf(out, len, "%s", name);
	if (!pci || dots < 2 || dots > 3)
		return;
	/* all dots but the last (the function number's) become colons */
	for (size_t i = 0, seen = 0; out[i] && seen < dots - 1; i++) {
		if (out[i] == '.') {
			out[i] = ':';
			seen++;
		}
	}
}

/* Find or open the controller at `addr`. Called with pf_lock held. */
static int pf_dev_get(struct thread_data *td, const char *addr, struct pf_dev **out)
{
	struct pf_opts *o = td->eo;
	struct pnvme_ctrl_opts copts;
	struct pf_dev *d;
	size_t len = strlen(addr) + 1;
	int rc;

	for (d = pf_devs; d; d = d->next) {
		if (strcmp(d->addr, addr) == 0) {
			*out = d;
			return 0;
		}
	}
	if (!pf_log_set) {
		/* pnvme's warnings reach fio's log, unless PNVME_LOG asks for more */
		if (!getenv("PNVME_LOG"))
			pnvme_set_log(pf_log, NULL, PNVME_LOG_WARN);
		pf_log_set = 1;
	}
	d = calloc(1, sizeof(*d) + len);
	if (!d)
		return -ENOMEM;
	memcpy(d->addr, addr, len);
	pnvme_ctrl_opts_default(&copts);
	if (o && !o->shadow_db)
		copts.flags &= ~PNVME_CTRL_SHADOW_DB;
	rc = pnvme_ctrl_open(addr, &copts, &d->ctrl);
	if (rc) {
		log_err("pnvme: cannot open '%s': %s (%s)\n", addr, pnvme_last_error(),
			strerror(-rc));
		free(d);
		return rc;
	}
	/* A stepped emulator advances only when stepped from one thread. */
	if (pnvme_ctrl_emu(d->ctrl) && !pnvme_emu_threaded(pnvme_ctrl_emu(d->ctrl))) {
		log_err("pnvme: '%s': the fio engine needs an emulator with its own "
			"thread (mode=thread, the default), not mode=step\n", addr);
		pnvme_ctrl_close(d->ctrl);
		free(d);
		return -EINVAL;
	}
	d->next = pf_devs;
	pf_devs = d;
	*out = d;
	return 0;
}

/* Shut every controller down when fio unloads the engine (after the last job). */
__attribute__((destructor)) static void pf_unload(void)
{
	struct pf_dev *d, *next;

	pthread_mutex_lock(&pf_lock);
	for (d = pf_devs; d; d = next) {
		next = d->next;
		pnvme_ctrl_close(d->ctrl);
		free(d);
	}
	pf_devs = NULL;
	pthread_mutex_unlock(&pf_lock);
}

static int pf_need_thread(struct thread_data *td)
{
	if (td->o.use_thread)
		return 0;
	log_err("pnvme: job '%s': the pnvme engine needs thread=1 (--thread): jobs must be "
		"threads of the fio process that holds the controller and its DMA memory\n",
		td->o.name);
	td_vmsg(td, EINVAL, "the pnvme engine needs thread=1", "pnvme");
	return 1;
}

/*
 * Open (or find) the controller of every file, pick the namespace and tell
 * fio the size. All files of a job must be on one controller: its queue pair
 * and its DMA buffers belong to that controller. Idempotent: setup() runs
 * before init() when fio sets files up serially (the default), after it
 * otherwise.
 */
static int pf_attach_files(struct thread_data *td, struct pf_dev **devp)
{
	struct pf_opts *o = td->eo;
	struct pf_dev *dev = NULL;
	struct fio_file *f;
	unsigned int i;
	int rc = 0;

	if (pf_need_thread(td))
		return 1;
	pthread_mutex_lock(&pf_lock);
	for_each_file(td, f, i) {
		const struct pnvme_ns *ns;
		char addr[512];
		struct pf_dev *d;

		pf_addr(f->file_name, addr, sizeof(addr));
		rc = pf_dev_get(td, addr, &d);
		if (rc) {
			td_vmsg(td, -rc, "cannot open the pnvme device (see the message above)",
				"pnvme");
			break;
		}
		if (dev && d != dev) {
			log_err("pnvme: job '%s': all files of a job must be on one controller "
				"('%s' and '%s'); use one job per controller\n", td->o.name,
				dev->addr, d->addr);
			td_vmsg(td, EINVAL, "files on different controllers", "pnvme");
			rc = -EINVAL;
			break;
		}
		dev = d;
		ns = o && o->nsid ? pnvme_ctrl_ns(d->ctrl, o->nsid) : pnvme_ctrl_ns_at(d->ctrl, 0);
		if (!ns) {
			log_err("pnvme: '%s' has no active namespace %u (it has %u)\n", addr,
				o ? o->nsid : 0, pnvme_ctrl_nr_ns(d->ctrl));
			td_vmsg(td, ENXIO, "no such namespace", "pnvme");
			rc = -ENXIO;
			break;
		}
		/* NVM Command Set 1.0c §5.2: separate metadata needs a buffer fio lacks */
		if (ns->ms && !ns->md_ext) {
			log_err("pnvme: '%s' namespace %u has separate metadata (%u bytes a "
				"block): not supported by the fio engine\n", addr, ns->nsid,
				ns->ms);
			td_vmsg(td, EOPNOTSUPP, "namespace with separate metadata", "pnvme");
			rc = -EOPNOTSUPP;
			break;
		}
		FILE_SET_ENG_DATA(f, (void *)ns);
		f->filetype = FIO_TYPE_BLOCK;
		f->real_file_size = ns->nlba * ns->block_bytes;
		fio_file_set_size_known(f);
	}
	pthread_mutex_unlock(&pf_lock);
	if (!rc && !dev) {
		log_err("pnvme: job '%s': no filename (give the device address)\n", td->o.name);
		td_vmsg(td, EINVAL, "no filename", "pnvme");
		rc = -EINVAL;
	}
	if (devp)
		*devp = dev;
	return rc ? 1 : 0;
}

static int pf_setup(struct thread_data *td)
{
	return pf_attach_files(td, NULL);
}

static void pf_cleanup(struct thread_data *td)
{
	struct pf_thread *pt = td->io_ops_data;

	if (!pt)
		return;
	if (pt->qp)
		pnvme_qpair_destroy(pt->qp);
	free(pt->events);
	free(pt->reqs);
	free(pt);
	td->io_ops_data = NULL;
}

static int pf_init(struct thread_data *td)
{
	struct pf_opts *o = td->eo;
	struct pnvme_qpair_opts qopts;
	unsigned long long max_bs = td_max_bs(td);
	uint32_t max_depth, per_io, min_lbas = UINT32_MAX;
	struct pf_thread *pt;
	struct pf_dev *dev;
	struct fio_file *f;
	unsigned int i;
	int rc;

	if (pf_attach_files(td, &dev))
		return 1;
	pt = calloc(1, sizeof(*pt));
	if (!pt)
		goto nomem;
	td->io_ops_data = pt;
	pt->dev = dev;
	pt->ctrl = dev->ctrl;
	pt->nr_reqs = td->o.iodepth;
	pt->events = calloc(pt->nr_reqs, sizeof(*pt->events));
	pt->reqs = calloc(pt->nr_reqs, sizeof(*pt->reqs));
	if (!pt->events || !pt->reqs)
		goto nomem;

	/*
	 * Commands per fio I/O: the largest block size over the smallest
	 * per-command limit (MDTS, Identify Controller) of the job's namespaces.
	 * The queue pair holds iodepth of those, within CAP.MQES (0's based).
	 */
	for_each_file(td, f, i) {
		const struct pnvme_ns *ns = FILE_ENG_DATA(f);

		if (ns->max_lbas < min_lbas)
			min_lbas = ns->max_lbas;
		if (max_bs % ns->block_bytes) {
			log_err("pnvme: job '%s': block size %llu is not a multiple of the "
				"namespace's %u-byte blocks\n", td->o.name, max_bs,
				ns->block_bytes);
			td_vmsg(td, EINVAL, "block size not a multiple of the LBA size", "pnvme");
			return 1;
		}
	}
	{
		const struct pnvme_ns *ns0 = FILE_ENG_DATA(td->files[0]);
		uint64_t blocks = (max_bs + ns0->block_bytes - 1) / ns0->block_bytes;

		per_io = (uint32_t)((blocks + min_lbas - 1) / min_lbas);
	}
	if (per_io == 0)
		per_io = 1;
	max_depth = (uint32_t)(pnvme_ctrl_cap(pt->ctrl) & 0xffff); /* CAP.MQES */
	if (max_depth > 4095)
		max_depth = 4095;
	if (per_io > max_depth) {
		log_err("pnvme: job '%s': a %llu-byte I/O needs %u commands, more than a "
			"queue holds (%u)\n", td->o.name, max_bs, per_io, max_depth);
		td_vmsg(td, EINVAL, "block size too large for the queue", "pnvme");
		return 1;
	}
	pt->depth = td->o.iodepth * per_io;
	if (pt->depth > max_depth)
		pt->depth = max_depth;

	pnvme_qpair_opts_default(&qopts);
	qopts.depth = pt->depth;
	if (o) {
		qopts.timeout_ms = o->timeout_ms;
		qopts.max_retries = o->retries;
		if (o->lazy_cq)
			qopts.flags |= PNVME_QPAIR_LAZY_CQ_DB;
		if (o->db_immediate)
			qopts.flags |= PNVME_QPAIR_DB_IMMEDIATE;
	}
	rc = pnvme_qpair_create(pt->ctrl, &qopts, &pt->qp);
	if (rc) {
		log_err("pnvme: job '%s': cannot create a queue pair of depth %u on '%s': %s "
			"(%s)%s\n", td->o.name, pt->depth, dev->addr, pnvme_last_error(),
			strerror(-rc),
			rc == -EBUSY ? "; fewer jobs (numjobs) than the controller's I/O queues" : "");
		td_vmsg(td, -rc, "cannot create a queue pair", "pnvme");
		return 1;
	}
	return 0;
nomem:
	td_verror(td, ENOMEM, "pnvme init");
	return 1;
}

static int pf_io_u_init(struct thread_data *td, struct io_u *io_u)
{
	struct pf_thread *pt = td->io_ops_data;
	struct pf_req *req;

	if (!pt || io_u->index >= pt->nr_reqs)
		return 1;
	req = &pt->reqs[io_u->index];
	req->io_u = io_u;
	req->pt = pt;
	io_u->engine_data = req;
	return 0;
}

static int pf_iomem_alloc(struct thread_data *td, size_t total)
{
	struct pf_thread *pt = td->io_ops_data;
	void *buf;
	int rc;

	if (!pt)
		return 1;
	rc = pnvme_dma_alloc(pt->ctrl, total, 0, &buf, NULL);
	if (rc) {
		log_err("pnvme: job '%s': cannot allocate %zu bytes of DMA memory: %s\n",
			td->o.name, total, pnvme_last_error());
		return 1;
	}
	pt->buf = buf;
	td->orig_buffer = buf;
	return 0;
}

static void pf_iomem_free(struct thread_data *td)
{
	struct pf_thread *pt = td->io_ops_data;

	if (pt && pt->buf) {
		pnvme_dma_free(pt->ctrl, pt->buf);
		pt->buf = NULL;
	}
	td->orig_buffer = NULL;
}

static int pf_open_file(struct thread_data *td, struct fio_file *f)
{
	(void)td;
	(void)f;
	return 0;
}

static int pf_close_file(struct thread_data *td, struct fio_file *f)
{
	(void)td;
	(void)f;
	return 0;
}

/* A command of `arg`'s I/O completed; the last one completes the I/O to fio. */
static void pf_done(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct pf_req *req = arg;
	struct pf_thread *pt = req->pt;

	if (err && !req->err) {
		req->err = err;
		req->status = cqe ? PNVME_CQE_STATUS(cqe) : 0;
	}
	if (--req->left)
		return;
	req->io_u->error = -req->err;
	pt->events[pt->nr_events++] = req->io_u;
}

/* Commands posted so far failed to go out: account for the rest. */
static enum fio_q_status pf_posted(struct pf_req *req, uint32_t unposted, int rc)
{
	if (!req->err)
		req->err = rc;
	req->left -= unposted;
	if (req->left)
		return FIO_Q_QUEUED; /* the error is reported with the last completion */
	req->io_u->error = -req->err;
	return FIO_Q_COMPLETED;
}

static enum fio_q_status pf_queue(struct thread_data *td, struct io_u *io_u)
{
	struct pf_thread *pt = td->io_ops_data;
	struct pf_req *req = io_u->engine_data;
	const struct pnvme_ns *ns = FILE_ENG_DATA(io_u->file);
	uint64_t slba;
	uint32_t nlb, cmds;
	char *buf = io_u->xfer_buf;
	int rc = 0;

	fio_ro_check(td, io_u);
	req->err = 0;
	req->status = 0;

	switch (io_u->ddir) {
	case DDIR_READ:
	case DDIR_WRITE:
	case DDIR_TRIM:
		if (io_u->offset % ns->block_bytes || io_u->xfer_buflen % ns->block_bytes ||
		    !io_u->xfer_buflen) {
			log_err("pnvme: offset %llu length %llu: not a multiple of the %u-byte "
				"blocks\n", io_u->offset, io_u->xfer_buflen, ns->block_bytes);
			req->err = -EINVAL;
			io_u->error = EINVAL;
			return FIO_Q_COMPLETED;
		}
		slba = io_u->offset / ns->block_bytes;
		nlb = (uint32_t)(io_u->xfer_buflen / ns->block_bytes);
		break;
	default:
		slba = 0;
		nlb = 0;
		break;
	}

	if (io_u->ddir == DDIR_READ || io_u->ddir == DDIR_WRITE) {
		cmds = (nlb + ns->max_lbas - 1) / ns->max_lbas;
		/* all of an I/O's commands go out together, or none */
		if (pt->depth - pnvme_qpair_outstanding(pt->qp) < cmds)
			return FIO_Q_BUSY;
		req->left = cmds;
		for (uint32_t c = 0; c < cmds; c++) {
			uint32_t n = nlb < ns->max_lbas ? nlb : ns->max_lbas;

			/* NVM Command Set 1.0c §3.2.4 Read, §3.2.6 Write */
			if (io_u->ddir == DDIR_READ)
				rc = pnvme_read(pt->qp, ns, buf, slba, n, 0, pf_done, req);
			else
				rc = pnvme_write(pt->qp, ns, buf, slba, n, 0, pf_done, req);
			if (rc)
				return pf_posted(req, cmds - c, rc);
			buf += (size_t)n * ns->block_bytes;
			slba += n;
			nlb -= n;
		}
		return FIO_Q_QUEUED;
	}

	if (pt->depth == pnvme_qpair_outstanding(pt->qp))
		return FIO_Q_BUSY;
	req->left = 1;
	if (io_u->ddir == DDIR_TRIM) {
		/* NVM Command Set 1.0c §3.2.3 Dataset Management, Deallocate */
		struct pnvme_dsm_range range = { .cattr = 0, .nlb = nlb, .slba = slba };

		rc = pnvme_dsm(pt->qp, ns, &range, 1, PNVME_DSM_AD, pf_done, req);
	} else if (ddir_sync(io_u->ddir)) {
		/* NVMe Base 2.0c §7.1 Flush: the volatile write cache to media */
		rc = pnvme_flush(pt->qp, ns, pf_done, req);
	} else {
		rc = -EINVAL;
	}
	if (rc)
		return pf_posted(req, 1, rc);
	return FIO_Q_QUEUED;
}

static int pf_commit(struct thread_data *td)
{
	struct pf_thread *pt = td->io_ops_data;

	pnvme_qpair_flush(pt->qp);
	return 0;
}

static uint64_t pf_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Poll the queue pair until `min` I/Os completed, or until `t` passed. Each
 * command completes at most one I/O, so reaping at most `max - done`
 * commands never completes more I/Os than fio asked for.
 */
static int pf_getevents(struct thread_data *td, unsigned int min, unsigned int max,
			const struct timespec *t)
{
	struct pf_thread *pt = td->io_ops_data;
	uint64_t end = 0;

	/*
	 * A zero timeout (fio reaping what is there, min 0) is one poll: no
	 * clock. Otherwise the clock is read every 64th empty poll only: in a
	 * virtual machine clock_gettime may be an emulated HPET read (microseconds
	 * and the hypervisor's lock, which the emulated drive needs too).
	 */
	bool once = t && t->tv_sec == 0 && t->tv_nsec == 0;
	unsigned spins = 0;

	pt->nr_events = 0;
	if (max == 0 || max > pt->nr_reqs)
		max = pt->nr_reqs;
	if (t && !once)
		end = pf_now_ns() + (uint64_t)t->tv_sec * 1000000000u + (uint64_t)t->tv_nsec;
	for (;;) {
		int rc = pnvme_qpair_poll(pt->qp, max - pt->nr_events);

		if (rc < 0) {
			log_err("pnvme: polling the queue pair failed: %s (%s)\n",
				pnvme_last_error(), strerror(-rc));
			return rc;
		}
		if (pt->nr_events >= min || pt->nr_events == max || once)
			break;
		if (t && (++spins & 63) == 0 && pf_now_ns() >= end)
			break;
	}
	return (int)pt->nr_events;
}

static struct io_u *pf_event(struct thread_data *td, int event)
{
	struct pf_thread *pt = td->io_ops_data;

	return pt->events[event];
}

/* The NVMe status of a failed I/O, for fio's error report. */
static char *pf_errdetails(struct io_u *io_u)
{
	struct pf_req *req = io_u->engine_data;
	char *s = NULL;

	if (!req || !req->err) {
		s = strdup("pnvme: no command failed (fio-side error)");
	} else if (req->status) {
		if (asprintf(&s, "pnvme: %s", pnvme_status_str(req->status)) < 0)
			s = NULL;
	} else if (asprintf(&s, "pnvme: %s (host side)", strerror(-req->err)) < 0) {
		s = NULL;
	}
	return s;
}

PF_EXPORT struct ioengine_ops ioengine = {
	.name = "pnvme",
	.version = FIO_IOOPS_VERSION,
	/* FIO_NO_OFFLOAD: io_submit_mode=offload would submit from other threads */
	.flags = FIO_RAWIO | FIO_DISKLESSIO | FIO_NOEXTEND | FIO_NODISKUTIL | FIO_MEMALIGN |
		 FIO_NO_OFFLOAD,
	.setup = pf_setup,
	.init = pf_init,
	.queue = pf_queue,
	.commit = pf_commit,
	.getevents = pf_getevents,
	.event = pf_event,
	.errdetails = pf_errdetails,
	.cleanup = pf_cleanup,
	.open_file = pf_open_file,
	.close_file = pf_close_file,
	.iomem_alloc = pf_iomem_alloc,
	.iomem_free = pf_iomem_free,
	.io_u_init = pf_io_u_init,
	.option_struct_size = sizeof(struct pf_opts),
	.options = pf_options,
};
