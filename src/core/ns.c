/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ns.c - the controller's namespace list: the scan at bring-up (NVMe Base
 * 2.0 §3.5.1 step 8: Identify the active namespaces) and the rescan after a
 * Namespace Attribute Changed notice (§5.2, Changed Namespace List §5.16.1.5),
 * with objects whose addresses stay valid for the application until close.
 *
 * The list is a table of MAX_NAMESPACES pointers allocated once: the first
 * nr_ns point at the active namespaces in ascending NSID. A namespace object
 * is allocated when its NSID first shows up and freed only at close: a
 * rescan updates it in place (new size or format), marks it removed (and
 * moves it to ns_gone) when it leaves the active list, and reuses it when
 * the same NSID comes back. All of this runs under the admin lock.
 */
#include <stdlib.h>
#include <string.h>

#include "core/ctrl_priv.h"

/* Errors after which nothing more can be asked of the controller now. */
static bool fatal(int rc)
{
	return rc == -ETIMEDOUT || rc == -ENODEV || rc == -ENOMEM || rc == -ECANCELED;
}

/*
 * Identify Namespace `nsid` into `ns` (zeroed first). 0 with ns->nlba == 0
 * for an inactive NSID (Identify of an inactive NSID returns zeroes, Base
 * 2.0 §5.17.2.1), 0 with the namespace parsed, or a negative errno (-EPROTO:
 * data pnvme cannot drive).
 */
static int ns_identify(struct pnvme_ctrl *ctrl, uint32_t nsid, struct pnvme_ns *ns)
{
	int rc;

	memset(ns, 0, sizeof(*ns));
	rc = pnvme_identify(ctrl, PNVME_ID_CNS_NS, nsid, &ns->id);
	if (rc)
		return rc;
	if (ns->id.nsze == 0)
		return 0;
	rc = pnvme_parse_id_ns(&ns->id, ctrl->max_xfer, ns);
	if (rc)
		return pnvme_fail(rc, "namespace %u: %s", nsid, pnvme_last_error());
	ns->nsid = nsid;
	ns->ctrl = ctrl;
	/* Fabrics queue pairs take the slow path: SGLs, any memory (tcp/host.h). */
	if (ctrl->tcp)
		ns->fast_lbas = 0;
	return 0;
}

/*
 * Active NSIDs (Identify CNS 02h, NVMe 1.1+, Base 2.0 §5.17.2.2), 1024 per
 * call, ascending, at most MAX_NAMESPACES, into `ids`. Returns 0, 1 when the
 * controller has no usable list (the caller probes NSIDs 1..NN instead), or
 * a fatal negative errno.
 */
static int active_ids(struct pnvme_ctrl *ctrl, uint32_t *ids, uint32_t *n)
{
	uint32_t *list = malloc(PNVME_IDENTIFY_DATA_SIZE);
	int rc;

	*n = 0;
	if (!list)
		return pnvme_fail(-ENOMEM, "out of memory");
	for (uint32_t start = 0;;) {
		uint32_t i = 0;
		rc = pnvme_identify(ctrl, PNVME_ID_CNS_NS_ACTIVE, start, list);
		if (fatal(rc))
			goto out;
		if (rc) {
			log_info("no active namespace list (%s): probing NSIDs 1..NN",
				 pnvme_last_error());
			rc = 1;
			goto out;
		}
		while (i < PNVME_ID_NS_LIST_MAX && list[i] && *n < MAX_NAMESPACES) {
			if (list[i] <= start) {
				/* Base 2.0 §5.17.2.2: the list ascends. This one does not. */
				log_err("active namespace list not in ascending order (NSID %u "
					"after %u): probing NSIDs 1..NN instead", list[i], start);
				rc = 1;
				goto out;
			}
			start = ids[(*n)++] = list[i++];
		}
		if (i < PNVME_ID_NS_LIST_MAX || *n >= MAX_NAMESPACES)
			break;
	}
	rc = 0;
out:
	free(list);
	return rc;
}

static struct pnvme_ns *find_active(const struct pnvme_ctrl *ctrl, uint32_t nsid)
{
	for (uint32_t i = 0; i < ctrl->nr_ns; i++)
		if (ctrl->ns[i]->nsid == nsid)
			return ctrl->ns[i];
	return NULL;
}

static bool listed(const uint32_t *ids, uint32_t n, uint32_t nsid)
{
	for (uint32_t i = 0; i < n; i++)
		if (ids[i] == nsid)
			return true;
	return false;
}

/* The object for a newly active NSID: its old one if it was removed before. */
static struct pnvme_ns *ns_object(struct pnvme_ctrl *ctrl, uint32_t nsid)
{
	for (uint32_t i = 0; i < ctrl->nr_gone; i++) {
		if (ctrl->ns_gone[i]->nsid == nsid) {
			struct pnvme_ns *ns = ctrl->ns_gone[i];
			ctrl->ns_gone[i] = ctrl->ns_gone[--ctrl->nr_gone];
			return ns;
		}
	}
	return calloc(1, sizeof(struct pnvme_ns));
}

/* A namespace left the active list: I/O to it fails from now on (io.c). */
static void ns_mark_removed(struct pnvme_ns *ns)
{
	ns->nlba = 0;
	ns->ncap = 0;
	ns->max_lbas = 0;
	ns->fast_lbas = 0;
	ns->removed = 1;
}

int ctrl_ns_rescan(struct pnvme_ctrl *ctrl, const uint32_t *changed, uint32_t n, bool all)
{
	uint32_t *ids = malloc(MAX_NAMESPACES * sizeof(*ids));
	struct pnvme_ns **nt = malloc(MAX_NAMESPACES * sizeof(*nt));
	struct pnvme_ns *tmp = malloc(sizeof(*tmp));
	uint32_t nids = 0, m = 0, gone = 0;
	bool moved = false, probe;
	int rc;

	if (!ids || !nt || !tmp) {
		rc = pnvme_fail(-ENOMEM, "out of memory");
		goto out;
	}
	rc = active_ids(ctrl, ids, &nids);
	if (rc < 0)
		goto out;
	probe = rc == 1;
	if (probe) {
		/* NVMe 1.0 controllers have no active namespace list: probe 1..NN. */
		nids = ctrl->id.nn < MAX_NAMESPACES ? ctrl->id.nn : MAX_NAMESPACES;
		for (uint32_t i = 0; i < nids; i++)
			ids[i] = i + 1;
	}
	for (uint32_t i = 0; i < nids; i++) {
		struct pnvme_ns *ns = find_active(ctrl, ids[i]);

		if (ns && !probe && !all && !listed(changed, n, ids[i])) {
			nt[m++] = ns; /* unchanged */
			continue;
		}
		rc = ns_identify(ctrl, ids[i], tmp);
		if (fatal(rc))
			goto out;
		if (rc || tmp->nlba == 0) {
			/* Inactive, or data pnvme cannot drive: not (or no longer) listed. */
			if (rc == -EPROTO)
				log_warn("%s (namespace skipped)", pnvme_last_error());
			else if (rc && !probe)
				log_warn("namespace %u: Identify failed (%s): skipped", ids[i],
					 pnvme_last_error());
			continue;
		}
		if (ns) {
			if (memcmp(ns, tmp, sizeof(*tmp)) != 0) {
				*ns = *tmp;
				moved = true;
				log_info("namespace %u changed: %llu blocks of %u bytes", ns->nsid,
					 (unsigned long long)ns->nlba, ns->lba_size);
			}
		} else {
			ns = ns_object(ctrl, ids[i]);
			if (!ns) {
				rc = pnvme_fail(-ENOMEM, "out of memory");
				goto out;
			}
			*ns = *tmp;
			moved = true;
			if (ctrl_state(ctrl) != CTRL_NEW)
				log_info("namespace %u added: %llu blocks of %u bytes", ns->nsid,
					 (unsigned long long)ns->nlba, ns->lba_size);
		}
		nt[m++] = ns;
	}
	/* Those no longer active: make room in ns_gone first, so nothing can fail after. */
	for (uint32_t i = 0; i < ctrl->nr_ns; i++) {
		bool kept = false;
		for (uint32_t j = 0; j < m && !kept; j++)
			kept = nt[j] == ctrl->ns[i];
		if (!kept)
			gone++;
	}
	if (gone) {
		struct pnvme_ns **g = realloc(ctrl->ns_gone, (ctrl->nr_gone + gone) * sizeof(*g));
		if (!g) {
			rc = pnvme_fail(-ENOMEM, "out of memory");
			goto out;
		}
		ctrl->ns_gone = g;
	}
	for (uint32_t i = 0; i < ctrl->nr_ns; i++) {
		bool kept = false;
		for (uint32_t j = 0; j < m && !kept; j++)
			kept = nt[j] == ctrl->ns[i];
		if (kept)
			continue;
		log_info("namespace %u removed", ctrl->ns[i]->nsid);
		ns_mark_removed(ctrl->ns[i]);
		ctrl->ns_gone[ctrl->nr_gone++] = ctrl->ns[i];
		moved = true;
	}
	memcpy(ctrl->ns, nt, m * sizeof(*nt));
	__atomic_store_n(&ctrl->nr_ns, m, __ATOMIC_RELEASE);
	if (moved) {
		__atomic_add_fetch(&ctrl->ns_gen, 1, __ATOMIC_RELEASE);
		/* Prepared requests (core/io.c) check their namespace again. */
		__atomic_add_fetch(&ctrl->dma.epoch, 1, __ATOMIC_RELEASE);
	}
	rc = 0;
out:
	free(tmp);
	free(nt);
	free(ids);
	return rc;
}

int ctrl_ns_scan(struct pnvme_ctrl *ctrl)
{
	int rc;

	ctrl->ns = calloc(MAX_NAMESPACES, sizeof(*ctrl->ns));
	if (!ctrl->ns)
		return pnvme_fail(-ENOMEM, "out of memory");
	rc = ctrl_ns_rescan(ctrl, NULL, 0, true);
	ctrl->ns_gen = 0; /* generation 0: the list as found at open */
	return rc;
}

void ctrl_ns_free(struct pnvme_ctrl *ctrl)
{
	if (ctrl->ns)
		for (uint32_t i = 0; i < ctrl->nr_ns; i++)
			free(ctrl->ns[i]);
	for (uint32_t i = 0; i < ctrl->nr_gone; i++)
		free(ctrl->ns_gone[i]);
	free(ctrl->ns);
	free(ctrl->ns_gone);
	ctrl->ns = ctrl->ns_gone = NULL;
	ctrl->nr_ns = ctrl->nr_gone = 0;
}

/* ------------------------------------------------------------------------ */
/* Accessors                                                                */
/* ------------------------------------------------------------------------ */

uint32_t pnvme_ctrl_nr_ns(const struct pnvme_ctrl *ctrl)
{
	return ctrl ? __atomic_load_n(&ctrl->nr_ns, __ATOMIC_ACQUIRE) : 0;
}

uint32_t pnvme_ctrl_ns_generation(const struct pnvme_ctrl *ctrl)
{
	return ctrl ? __atomic_load_n(&ctrl->ns_gen, __ATOMIC_ACQUIRE) : 0;
}

const struct pnvme_ns *pnvme_ctrl_ns(const struct pnvme_ctrl *ctrl, uint32_t nsid)
{
	uint32_t n = pnvme_ctrl_nr_ns(ctrl);

	for (uint32_t i = 0; i < n; i++)
		if (ctrl->ns[i]->nsid == nsid)
			return ctrl->ns[i];
	return NULL;
}

const struct pnvme_ns *pnvme_ctrl_ns_at(const struct pnvme_ctrl *ctrl, uint32_t i)
{
	return i < pnvme_ctrl_nr_ns(ctrl) ? ctrl->ns[i] : NULL;
}
