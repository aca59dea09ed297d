/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tgt.c - the NVMe/TCP target object (pnvme/tgt.h): options, subsystems,
 * namespaces and allowed hosts, controllers, the listener, start and stop.
 * The polling groups are in tgt_group.c.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <pnvme/emu.h>
#include <pnvme/tgt.h>

#include "internal.h"
#include "tgt/tgt_priv.h"

/*
 * The target's millisecond clock (deadlines: ICReq, keep-alive, draining),
 * read by every poller round: from the cycle counter, not clock_gettime().
 * In a guest whose clocksource is the HPET (QEMU TCG), clock_gettime() is a
 * system call plus an HPET read that exits to the hypervisor and takes its
 * global lock, the lock the emulated drive's completions need as well.
 */
uint64_t tgt_now_ms(void)
{
	return pnvme_ticks() / (pnvme_ticks_hz() / 1000u);
}

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

void pnvme_tgt_opts_default(struct pnvme_tgt_opts *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof(*o));
	o->opts_size = sizeof(*o);
	o->listen = "127.0.0.1:4420";
	o->nr_threads = 1;
	o->icd_bytes = 8192;
	o->digests = true;
	o->max_xfer = 128u * 1024u;
	o->maxh2cdata = 128u * 1024u;
	o->queue_size = 128;
	o->max_io_queues = 16;
	o->max_conns = 256;
	o->ic_timeout_ms = 10000;
	o->backend_depth = 256;
	o->idle_spin_us = 200;
}

/* "ADDR:PORT" or "[V6]:PORT" into a socket address. */
static int parse_listen(const char *s, struct sockaddr_storage *sa, socklen_t *sa_len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST |
				  AI_NUMERICSERV | AI_PASSIVE };
	struct addrinfo *res = NULL;
	char host[256], *hostp = host, *port;
	int rc;

	if (strlen(s) >= sizeof(host))
		return pnvme_fail(-EINVAL, "tgt: listen address too long");
	snprintf(host, sizeof(host), "%s", s);
	if (host[0] == '[') {
		char *e = strchr(host, ']');

		if (!e || e[1] != ':')
			return pnvme_fail(-EINVAL, "tgt: listen address '%s': want [IPv6]:PORT", s);
		*e = 0;
		hostp = host + 1;
		port = e + 2;
	} else {
		port = strrchr(host, ':');
		if (!port)
			return pnvme_fail(-EINVAL, "tgt: listen address '%s': want ADDR:PORT", s);
		*port++ = 0;
	}
	if (!*port || strspn(port, "0123456789") != strlen(port) || atoi(port) > 65535)
		return pnvme_fail(-EINVAL, "tgt: listen address '%s': bad port", s);
	rc = getaddrinfo(hostp, port, &hints, &res);
	if (rc || !res) {
		if (res)
			freeaddrinfo(res);
		return pnvme_fail(-EINVAL, "tgt: listen address '%s': %s", s, gai_strerror(rc));
	}
	memcpy(sa, res->ai_addr, res->ai_addrlen);
	*sa_len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int check_opts(const struct pnvme_tgt_opts *o)
{
	if (o->nr_threads > TGT_MAX_THREADS)
		return pnvme_fail(-EINVAL, "tgt: %u threads, at most %u", o->nr_threads,
				  TGT_MAX_THREADS);
	if (o->icd_bytes > 65536)
		return pnvme_fail(-EINVAL, "tgt: in-capsule data %u above 65536", o->icd_bytes);
	if (o->max_xfer < 4096 || o->max_xfer > (2u << 20) || (o->max_xfer & (o->max_xfer - 1)))
		return pnvme_fail(-EINVAL, "tgt: max_xfer %u: a power of two, 4 KiB..2 MiB",
				  o->max_xfer);
	if (o->maxh2cdata < PNVME_TCP_MAXH2CDATA_MIN || o->maxh2cdata % 4)
		return pnvme_fail(-EINVAL, "tgt: MAXH2CDATA %u: >= 4096, a dword multiple",
				  o->maxh2cdata);
	if (o->queue_size < 2 || o->queue_size > 1024)
		return pnvme_fail(-EINVAL, "tgt: queue size %u: 2..1024", o->queue_size);
	if (o->max_io_queues < 1 || o->max_io_queues > TGT_MAX_IOQ)
		return pnvme_fail(-EINVAL, "tgt: I/O queues %u: 1..%u", o->max_io_queues,
				  TGT_MAX_IOQ);
	if (o->idle_spin_us > 1000000)
		return pnvme_fail(-EINVAL, "tgt: idle spin %u us: 0..1000000", o->idle_spin_us);
	if (!o->max_conns || !o->ic_timeout_ms || !o->backend_depth || o->backend_depth > 4095)
		return pnvme_fail(-EINVAL, "tgt: max_conns, ic_timeout_ms and backend_depth "
				  "(1..4095) must be set");
	return 0;
}

int pnvme_tgt_create(const struct pnvme_tgt_opts *opts, struct pnvme_tgt **out)
{
	struct pnvme_tgt *t;
	int rc;

	if (!out)
		return pnvme_fail(-EINVAL, "tgt: NULL argument");
	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return pnvme_fail(-ENOMEM, "out of memory");
	pnvme_tgt_opts_default(&t->o);
	if (opts) {
		size_t n = opts->opts_size && opts->opts_size < sizeof(t->o) ? opts->opts_size :
										 sizeof(t->o);
		memcpy(&t->o, opts, n);
		t->o.opts_size = sizeof(t->o);
	}
	if (!t->o.listen)
		t->o.listen = "127.0.0.1:4420";
	snprintf(t->listen, sizeof(t->listen), "%s", t->o.listen);
	t->o.listen = t->listen;
	if (t->o.discovery_listen) {
		snprintf(t->dlisten, sizeof(t->dlisten), "%s", t->o.discovery_listen);
		t->o.discovery_listen = t->dlisten;
	}
	t->lfd = t->dfd = -1;
	t->next_cntlid = 1;
	t->genctr = 1;
	pthread_mutex_init(&t->lock, NULL);
	rc = check_opts(&t->o);
	if (!rc)
		rc = parse_listen(t->listen, &t->sa, &t->sa_len);
	if (!rc && t->o.discovery_listen)
		rc = parse_listen(t->dlisten, &t->dsa, &t->dsa_len);
	if (rc) {
		pthread_mutex_destroy(&t->lock);
		free(t);
		return rc;
	}
	t->max_xfer = t->o.max_xfer;
	*out = t;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

static bool nqn_ok(const char *nqn)
{
	size_t n = nqn ? strnlen(nqn, PNVME_NQN_LEN) : 0;

	return n > 0 && n <= TGT_NQN_MAX;
}

struct tgt_subsys *tgt_subsys_find(struct pnvme_tgt *t, const char *nqn)
{
	for (unsigned i = 0; i < t->nr_subsys; i++)
		if (!strcmp(t->subsys[i]->nqn, nqn))
			return t->subsys[i];
	return NULL;
}

bool tgt_host_allowed(const struct tgt_subsys *s, const char *hostnqn)
{
	if (s->allow_any)
		return true;
	for (unsigned i = 0; i < s->nr_hosts; i++)
		if (!strcmp(s->hosts[i], hostnqn))
			return true;
	return false;
}

const struct tgt_ns *tgt_ns_get(const struct tgt_subsys *s, uint32_t nsid)
{
	if (!s || nsid == 0 || nsid > TGT_MAX_NSID)
		return NULL;
	return __atomic_load_n(&s->by_nsid[nsid], __ATOMIC_ACQUIRE);
}

/* 64-bit FNV-1a, for serial numbers and namespace identifiers. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

int pnvme_tgt_add_subsys(struct pnvme_tgt *t, const char *nqn)
{
	struct tgt_subsys *s;
	int rc = 0;

	if (!t || !nqn_ok(nqn))
		return pnvme_fail(-EINVAL, "tgt: bad subsystem NQN (1..%u bytes)", TGT_NQN_MAX);
	if (!strcmp(nqn, PNVME_DISCOVERY_NQN))
		return pnvme_fail(-EINVAL, "tgt: %s is the discovery subsystem, always served", nqn);
	s = calloc(1, sizeof(*s));
	if (!s)
		return pnvme_fail(-ENOMEM, "out of memory");
	snprintf(s->nqn, sizeof(s->nqn), "%s", nqn);
	snprintf(s->sn, sizeof(s->sn), "%016llx",
		 (unsigned long long)fnv1a(0xcbf29ce484222325ull, nqn, strlen(nqn)));
	pthread_mutex_lock(&t->lock);
	if (tgt_subsys_find(t, nqn))
		rc = pnvme_fail(-EEXIST, "tgt: subsystem %s exists", nqn);
	else if (t->nr_subsys >= TGT_MAX_SUBSYS)
		rc = pnvme_fail(-ENOSPC, "tgt: %u subsystems at most", TGT_MAX_SUBSYS);
	if (!rc) {
		t->subsys[t->nr_subsys] = s;
		__atomic_store_n(&t->nr_subsys, t->nr_subsys + 1, __ATOMIC_RELEASE);
		tgt_disc_changed(t);
	}
	pthread_mutex_unlock(&t->lock);
	if (rc)
		free(s);
	return rc;
}

int pnvme_tgt_allow_host(struct pnvme_tgt *t, const char *subnqn, const char *hostnqn)
{
	struct tgt_subsys *s;
	int rc = 0;

	if (!t || !subnqn || (hostnqn && !nqn_ok(hostnqn)))
		return pnvme_fail(-EINVAL, "tgt: bad subsystem or host NQN");
	pthread_mutex_lock(&t->lock);
	s = tgt_subsys_find(t, subnqn);
	if (!s) {
		rc = pnvme_fail(-ENOENT, "tgt: no subsystem %s", subnqn);
	} else if (!hostnqn) {
		s->allow_any = true;
	} else if (!tgt_host_allowed(s, hostnqn) || s->allow_any) {
		if (!s->hosts)
			s->hosts = calloc(TGT_MAX_HOSTS, sizeof(*s->hosts));
		if (!s->hosts)
			rc = pnvme_fail(-ENOMEM, "out of memory");
		else if (s->nr_hosts >= TGT_MAX_HOSTS)
			rc = pnvme_fail(-ENOSPC, "tgt: %u hosts per subsystem at most", TGT_MAX_HOSTS);
		else
			snprintf(s->hosts[s->nr_hosts++], PNVME_NQN_LEN, "%s", hostnqn);
	}
	if (!rc)
		tgt_disc_changed(t);
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/*
 * Namespace `nsid` of `s` changed (here: it was added): every controller of
 * the subsystem lists it in its Changed Namespace List (Base 2.0 §5.16.1.5;
 * past 1024 entries the list is FFFFFFFFh alone) and gets a Namespace
 * Attribute Changed notice (§5.27.1.7), sent by its admin queue's thread
 * when an AER is held and the host enabled it (lock held).
 */
static void ns_changed(struct pnvme_tgt *t, const struct tgt_subsys *s, uint32_t nsid)
{
	for (struct tgt_ctrl *c = t->ctrls; c; c = c->next) {
		bool listed = false;

		if (c->subsys != s)
			continue;
		for (uint32_t i = 0; i < c->nr_changed && c->nr_changed != ~0u; i++)
			listed |= c->changed[i] == nsid;
		if (c->nr_changed == ~0u || listed)
			;
		else if (c->nr_changed < TGT_CHANGED_NS_MAX)
			c->changed[c->nr_changed++] = nsid;
		else
			c->nr_changed = ~0u;
		if (__atomic_load_n(&c->aec, __ATOMIC_RELAXED) & TGT_AEC_NS_ATTR)
			__atomic_or_fetch(&c->aen_pending, TGT_AEN_NS_ATTR, __ATOMIC_RELEASE);
	}
}

void tgt_disc_changed(struct pnvme_tgt *t)
{
	/* Base 2.0 §3.1.3.3: discovery controllers that asked (AEC bit 31) hear of it. */
	t->genctr++;
	for (struct tgt_ctrl *c = t->ctrls; c; c = c->next)
		if (!c->subsys && (__atomic_load_n(&c->aec, __ATOMIC_RELAXED) & TGT_AEC_DISC))
			__atomic_or_fetch(&c->aen_pending, TGT_AEN_DISC, __ATOMIC_RELEASE);
}

/* The backend index of `ctrl`, registering it (lock held). */
static int backend_index(struct pnvme_tgt *t, struct pnvme_ctrl *ctrl)
{
	for (unsigned i = 0; i < t->nr_backends; i++)
		if (t->backends[i] == ctrl)
			return (int)i;
	if (t->nr_backends >= TGT_MAX_BACKENDS)
		return pnvme_fail(-ENOSPC, "tgt: %u backend controllers at most", TGT_MAX_BACKENDS);
	t->backends[t->nr_backends] = ctrl;
	/* No thread of its own (null:, emu:mode=step): the group pollers step it. */
	t->stepped[t->nr_backends] = pnvme_ctrl_emu(ctrl);
	if (t->stepped[t->nr_backends] && pnvme_emu_threaded(t->stepped[t->nr_backends]))
		t->stepped[t->nr_backends] = NULL;
	__atomic_store_n(&t->nr_backends, t->nr_backends + 1, __ATOMIC_RELEASE);
	return (int)(t->nr_backends - 1);
}

int pnvme_tgt_add_ns(struct pnvme_tgt *t, const char *subnqn, uint32_t nsid,
		     struct pnvme_ctrl *ctrl, uint32_t ctrl_nsid)
{
	const struct pnvme_ns *bns;
	struct tgt_subsys *s;
	struct tgt_ns *ns;
	uint32_t bxfer;
	uint64_t h;
	int rc = 0, bi;

	if (!t || !subnqn || !ctrl || nsid > TGT_MAX_NSID)
		return pnvme_fail(-EINVAL, "tgt: add_ns: bad argument (NSID 0..%u)", TGT_MAX_NSID);
	bns = pnvme_ctrl_ns(ctrl, ctrl_nsid);
	if (!bns)
		return pnvme_fail(-ENOENT, "tgt: the backend has no active namespace %u", ctrl_nsid);
	if (bns->ms || bns->pi_type)
		return pnvme_fail(-EOPNOTSUPP, "tgt: backend namespace %u has metadata: not "
				  "exported", ctrl_nsid);
	bxfer = pnvme_ctrl_max_xfer(ctrl);
	ns = calloc(1, sizeof(*ns));
	if (!ns)
		return pnvme_fail(-ENOMEM, "out of memory");
	pthread_mutex_lock(&t->lock);
	s = tgt_subsys_find(t, subnqn);
	if (!s) {
		rc = pnvme_fail(-ENOENT, "tgt: no subsystem %s", subnqn);
		goto out;
	}
	if (s->nr_ns >= TGT_MAX_NS) {
		rc = pnvme_fail(-ENOSPC, "tgt: %u namespaces per subsystem at most", TGT_MAX_NS);
		goto out;
	}
	if (!nsid) {
		for (nsid = 1; nsid <= TGT_MAX_NSID && s->by_nsid[nsid]; nsid++)
			;
	}
	if (nsid > TGT_MAX_NSID || s->by_nsid[nsid]) {
		rc = pnvme_fail(-EEXIST, "tgt: %s already has namespace %u", subnqn, nsid);
		goto out;
	}
	if (bxfer < t->max_xfer) {
		if (t->started) {
			rc = pnvme_fail(-EINVAL, "tgt: the backend moves %u bytes per command, the "
					"target promised %u", bxfer, t->max_xfer);
			goto out;
		}
		t->max_xfer = bxfer;
	}
	bi = backend_index(t, ctrl);
	if (bi < 0) {
		rc = bi;
		goto out;
	}
	ns->nsid = nsid;
	ns->backend = (unsigned)bi;
	ns->bns = bns;
	ns->nsze = bns->nlba;
	ns->lba_shift = bns->lba_shift;
	/* Stable identifiers (Base 2.0 §4.7.1): the same subsystem and NSID, the same ids. */
	h = fnv1a(0xcbf29ce484222325ull, s->nqn, strlen(s->nqn));
	h = fnv1a(h, &nsid, sizeof(nsid));
	memcpy(ns->nguid, &h, 8);
	h = fnv1a(h, "nguid", 5);
	memcpy(ns->nguid + 8, &h, 8);
	h = fnv1a(h, "uuid", 4);
	memcpy(ns->uuid, &h, 8);
	h = fnv1a(h, "uuid2", 5);
	memcpy(ns->uuid + 8, &h, 8);
	ns->uuid[6] = (uint8_t)((ns->uuid[6] & 0x0f) | 0x80); /* RFC 9562 version 8 */
	ns->uuid[8] = (uint8_t)((ns->uuid[8] & 0x3f) | 0x80); /* variant 10b */
	s->ns[s->nr_ns++] = ns;
	__atomic_store_n(&s->by_nsid[nsid], ns, __ATOMIC_RELEASE);
	ns_changed(t, s, nsid);
	rc = (int)nsid;
out:
	pthread_mutex_unlock(&t->lock);
	if (rc <= 0)
		free(ns);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Controllers                                                               */
/* ------------------------------------------------------------------------ */

void tgt_ctrl_kill(struct tgt_ctrl *c)
{
	struct pnvme_tgt *t = c->tgt;

	pthread_mutex_lock(&t->lock);
	for (struct tgt_ctrl **pp = &t->ctrls; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	__atomic_store_n(&c->dead, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&t->lock);
}

void tgt_ctrl_put(struct tgt_ctrl *c)
{
	if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(c);
}


/* ------------------------------------------------------------------------ */
/* Start, poll, stop                                                         */
/* ------------------------------------------------------------------------ */

/* A listening socket on `sa`; its port into *port. */
static int listen_on(const struct sockaddr_storage *sa, socklen_t sa_len, const char *name,
		     int *fdp, uint16_t *port)
{
	struct sockaddr_storage got;
	socklen_t sl = sizeof(got);
	int one = 1, fd;

	fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return pnvme_fail(-errno, "tgt: socket: %s", strerror(errno));
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)sa, sa_len) || listen(fd, 128) ||
	    getsockname(fd, (struct sockaddr *)&got, &sl)) {
		int err = -errno;

		close(fd);
		return pnvme_fail(err, "tgt: cannot listen on %s: %s", name, strerror(-err));
	}
	*fdp = fd;
	*port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port :
						   ((struct sockaddr_in *)&got)->sin_port);
	return 0;
}

static int tgt_listen(struct pnvme_tgt *t)
{
	int rc = listen_on(&t->sa, t->sa_len, t->listen, &t->lfd, &t->port);

	if (!rc && t->o.discovery_listen)
		rc = listen_on(&t->dsa, t->dsa_len, t->dlisten, &t->dfd, &t->dport);
	return rc;
}

int pnvme_tgt_start(struct pnvme_tgt *t)
{
	int rc;

	if (!t)
		return pnvme_fail(-EINVAL, "tgt: NULL target");
	if (t->started)
		return pnvme_fail(-EALREADY, "tgt: already started");
	t->nr_groups = t->o.nr_threads ? t->o.nr_threads : 1;
	t->groups = calloc(t->nr_groups, sizeof(*t->groups));
	if (!t->groups)
		return pnvme_fail(-ENOMEM, "out of memory");
	for (unsigned i = 0; i < t->nr_groups; i++) {
		t->groups[i].tgt = t;
		t->groups[i].id = i;
		pthread_mutex_init(&t->groups[i].inbox_lock, NULL);
		t->groups[i].wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (t->groups[i].wake_fd < 0)
			log_warn("tgt: thread %u: no wake-up eventfd (%s): idle sleeps end on their timer",
				 i, strerror(errno));
		t->groups[i].epfd = epoll_create1(EPOLL_CLOEXEC);
		if (t->groups[i].epfd < 0)
			log_warn("tgt: thread %u: no epoll (%s): every round reads every socket",
				 i, strerror(errno));
	}
	pthread_mutex_lock(&t->lock);
	t->started = true;
	pthread_mutex_unlock(&t->lock);
	rc = tgt_listen(t);
	if (!rc)
		tgt_group_watch_listeners(&t->groups[0]);
	for (unsigned i = 0; !rc && i < t->o.nr_threads; i++) {
		if (pthread_create(&t->groups[i].thread, NULL, tgt_group_thread, &t->groups[i]))
			rc = pnvme_fail(-EAGAIN, "tgt: cannot start thread %u", i);
		else
			t->groups[i].has_thread = true;
	}
	if (rc)
		pnvme_tgt_stop(t);
	else
		log_info("tgt: listening on %s (port %u), %u thread(s)%s%s", t->listen, t->port,
			 t->o.nr_threads, t->dfd >= 0 ? "; discovery only on " : "",
			 t->dfd >= 0 ? t->dlisten : "");
	return rc;
}

uint16_t pnvme_tgt_port(const struct pnvme_tgt *t)
{
	return t ? t->port : 0;
}

uint16_t pnvme_tgt_discovery_port(const struct pnvme_tgt *t)
{
	return t ? t->dport : 0;
}

int pnvme_tgt_poll(struct pnvme_tgt *t)
{
	if (!t || !t->groups || t->o.nr_threads)
		return pnvme_fail(-EINVAL, "tgt: poll needs a started target without threads");
	if (__atomic_load_n(&t->stopping, __ATOMIC_RELAXED))
		return 0;
	return tgt_group_poll(&t->groups[0]);
}

int pnvme_tgt_stop(struct pnvme_tgt *t)
{
	if (!t || !t->groups)
		return 0;
	__atomic_store_n(&t->stopping, true, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < t->nr_groups; i++)
		tgt_group_wake(&t->groups[i]);
	for (unsigned i = 0; i < t->nr_groups; i++) {
		struct tgt_group *g = &t->groups[i];

		if (g->has_thread)
			pthread_join(g->thread, NULL);
		else
			tgt_group_stop(g);
		pthread_mutex_destroy(&g->inbox_lock);
		if (g->wake_fd >= 0)
			close(g->wake_fd);
		g->wake_fd = -1;
		if (g->epfd >= 0)
			close(g->epfd);
		g->epfd = -1;
#define ADD(f) t->done.f += g->st.f
		ADD(ctrls_created);
		ADD(kato_expired);
		ADD(ic_timeouts);
		ADD(term_reqs);
		ADD(cmds);
		ADD(cmd_errors);
		ADD(r2ts);
		ADD(bytes_read);
		ADD(bytes_written);
#undef ADD
	}
	if (t->lfd >= 0)
		close(t->lfd);
	if (t->dfd >= 0)
		close(t->dfd);
	t->lfd = t->dfd = -1;
	free(t->groups);
	t->groups = NULL;
	t->nr_groups = 0;
	return 0;
}

void pnvme_tgt_destroy(struct pnvme_tgt *t)
{
	if (!t)
		return;
	pnvme_tgt_stop(t);
	for (unsigned i = 0; i < t->nr_subsys; i++) {
		struct tgt_subsys *s = t->subsys[i];

		for (unsigned k = 0; k < s->nr_ns; k++)
			free(s->ns[k]);
		free(s->hosts);
		free(s);
	}
	/* Every connection is gone, and with them every controller (tgt_conn_free). */
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void pnvme_tgt_get_stats(struct pnvme_tgt *t, struct pnvme_tgt_stats *st)
{
	if (!t || !st)
		return;
	memset(st, 0, sizeof(*st));
	st->conns_accepted = __atomic_load_n(&t->accepted, __ATOMIC_RELAXED);
	st->conns_refused = __atomic_load_n(&t->refused, __ATOMIC_RELAXED);
	st->conns_open = __atomic_load_n(&t->nconns, __ATOMIC_RELAXED);
	st->ctrls_created = t->done.ctrls_created;
	st->kato_expired = t->done.kato_expired;
	st->ic_timeouts = t->done.ic_timeouts;
	st->term_reqs = t->done.term_reqs;
	st->cmds = t->done.cmds;
	st->cmd_errors = t->done.cmd_errors;
	st->r2ts = t->done.r2ts;
	st->bytes_read = t->done.bytes_read;
	st->bytes_written = t->done.bytes_written;
	for (unsigned i = 0; i < t->nr_groups && t->groups; i++) {
		const struct tgt_stats *g = &t->groups[i].st;

#define SUM(f) st->f += __atomic_load_n(&g->f, __ATOMIC_RELAXED)
		SUM(ctrls_created);
		SUM(kato_expired);
		SUM(ic_timeouts);
		SUM(term_reqs);
		SUM(cmds);
		SUM(cmd_errors);
		SUM(r2ts);
		SUM(bytes_read);
		SUM(bytes_written);
#undef SUM
	}
}
