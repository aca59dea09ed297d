/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tgt_group.c - the target's polling groups: one per thread (or the one the
 * application polls with pnvme_tgt_poll). A group owns its connections, one
 * queue pair and DMA buffer pool per backend controller, and the list of
 * commands its backends could not take yet; its round is accept (group 0),
 * receive, reap the backends, retry, send, free closed connections.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pnvme/dma.h>
#include <pnvme/emu.h>
#include <pnvme/qpair.h>

#include "internal.h"
#include "tgt/tgt_priv.h"

/* ------------------------------------------------------------------------ */
/* Backend queue pairs and buffer pools (group thread only)                  */
/* ------------------------------------------------------------------------ */

struct tgt_bq *tgt_bq_get(struct tgt_group *g, unsigned backend)
{
	struct pnvme_tgt *t = g->tgt;
	struct tgt_bq *bq = &g->bq[backend];

	if (!bq->qp && !bq->failed) {
		struct pnvme_qpair_opts qo;
		struct pnvme_ctrl *ctrl = t->backends[backend];
		int rc;

		/*
		 * First I/O of this group to this backend: its own queue pair (slow,
		 * once), with interrupts where the backend has them, so that an idle
		 * poller waiting for it can sleep until its completions arrive
		 * (tgt_group_thread); a thread-less backend completes inline and
		 * needs none.
		 */
		pnvme_qpair_opts_default(&qo);
		qo.depth = t->o.backend_depth;
		qo.flags = t->stepped[backend] ? 0 : PNVME_QPAIR_INTERRUPTS;
		rc = pnvme_qpair_create(ctrl, &qo, &bq->qp);
		if (rc == -EINVAL) {
			qo.depth = 0; /* above CAP.MQES: the controller's default */
			rc = pnvme_qpair_create(ctrl, &qo, &bq->qp);
		}
		if ((rc == -ENOTSUP || rc == -ENOSPC) && qo.flags) {
			log_info("tgt: backend %u: polled queue pair (%s)", backend,
				 pnvme_last_error());
			qo.flags = 0;
			rc = pnvme_qpair_create(ctrl, &qo, &bq->qp);
		}
		bq->efd = rc == 0 && qo.flags ? pnvme_qpair_event_fd(bq->qp) : -1;
		if (rc) {
			log_err("tgt: no queue pair on backend %u: %s", backend, pnvme_last_error());
			bq->failed = true;
			bq->qp = NULL;
		}
	}
	return bq->qp ? bq : NULL;
}

void *tgt_pool_get(struct tgt_group *g, unsigned backend)
{
	struct tgt_bq *bq = &g->bq[backend];
	void *buf = NULL;

	if (bq->nr_pool)
		return bq->pool[--bq->nr_pool];
	/* Grow: bounded by the requests that can be outstanding (connections x queue size). */
	if (bq->allocated >= bq->pool_cap) {
		unsigned cap = bq->pool_cap ? bq->pool_cap * 2 : 64;
		void **p = realloc(bq->pool, cap * sizeof(*p));

		if (!p)
			return NULL;
		bq->pool = p;
		bq->pool_cap = cap;
	}
	if (pnvme_dma_alloc(g->tgt->backends[backend], g->tgt->max_xfer, 0, &buf, NULL))
		return NULL;
	bq->allocated++;
	return buf;
}

void tgt_pool_put(struct tgt_group *g, unsigned backend, void *buf)
{
	struct tgt_bq *bq = &g->bq[backend];

	bq->pool[bq->nr_pool++] = buf; /* pool_cap >= allocated >= nr_pool + 1 */
}

static void bq_release(struct tgt_group *g)
{
	for (unsigned i = 0; i < TGT_MAX_BACKENDS; i++) {
		struct tgt_bq *bq = &g->bq[i];

		if (bq->qp)
			pnvme_qpair_destroy(bq->qp); /* outstanding requests: -ECANCELED callbacks */
		bq->qp = NULL;
		for (unsigned k = 0; k < bq->nr_pool; k++)
			pnvme_dma_free(g->tgt->backends[i], bq->pool[k]);
		free(bq->pool);
		memset(bq, 0, sizeof(*bq));
	}
}

/* ------------------------------------------------------------------------ */
/* Groups                                                                    */
/* ------------------------------------------------------------------------ */

int tgt_conn_adopt(struct pnvme_tgt *t, int fd)
{
	return tgt_conn_adopt_on(t, fd, false);
}

int tgt_conn_adopt_on(struct pnvme_tgt *t, int fd, bool disc_only)
{
	struct tgt_group *g;
	struct tgt_conn *c;

	if (__atomic_add_fetch(&t->nconns, 1, __ATOMIC_RELAXED) > t->o.max_conns) {
		__atomic_sub_fetch(&t->nconns, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&t->refused, 1, __ATOMIC_RELAXED);
		close(fd);
		return -EBUSY;
	}
	__atomic_add_fetch(&t->accepted, 1, __ATOMIC_RELAXED);
	g = &t->groups[__atomic_fetch_add(&t->rr, 1, __ATOMIC_RELAXED) % t->nr_groups];
	c = tgt_conn_new(g, fd);
	if (!c) {
		__atomic_sub_fetch(&t->nconns, 1, __ATOMIC_RELAXED);
		close(fd);
		return -ENOMEM;
	}
	c->disc_only = disc_only;
	pthread_mutex_lock(&g->inbox_lock);
	c->next = g->inbox;
	g->inbox = c;
	__atomic_store_n(&g->inbox_full, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&g->inbox_lock);
	tgt_group_wake(g);
	return 0;
}

/* End the group thread's idle sleep (a connection in its inbox, the stop). */
void tgt_group_wake(struct tgt_group *g)
{
	if (g->wake_fd >= 0)
		(void)eventfd_write(g->wake_fd, 1);
}

static int accept_some(struct pnvme_tgt *t, int lfd, bool disc_only)
{
	int n = 0;

	for (int i = 0; i < 16; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int one = 1;

		if (fd < 0)
			break;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		(void)tgt_conn_adopt_on(t, fd, disc_only);
		n++;
	}
	return n;
}

/*
 * A connection joins the group's epoll set (level-triggered: a socket stays
 * reported while it holds bytes, so a round that reads only part of them, or
 * none while the connection waits, misses nothing). Without the set it is
 * read every round.
 */
static void group_watch(struct tgt_group *g, struct tgt_conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };

	c->rx_ready = true; /* its ICReq may be there already: read it this round */
	if (g->epfd < 0)
		return; /* no set: every round visits every connection */
	if (epoll_ctl(g->epfd, EPOLL_CTL_ADD, c->fd, &ev)) {
		/* (only the kernel's limit on watches, or memory) */
		log_warn("tgt: connection not watched (epoll: %s): closed", strerror(errno));
		tgt_conn_close(c);
	}
}

/*
 * Group 0 accepts when epoll reports a listener readable; without the
 * listeners in its set it tries once per millisecond (tgt_group_poll). The
 * event's pointer is the listener's field in the target, which no connection
 * can be.
 */
void tgt_group_watch_listeners(struct tgt_group *g)
{
	struct pnvme_tgt *t = g->tgt;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &t->lfd };
	bool ok = g->epfd >= 0 && t->lfd >= 0 &&
		  epoll_ctl(g->epfd, EPOLL_CTL_ADD, t->lfd, &ev) == 0;

	if (ok && t->dfd >= 0) {
		ev.data.ptr = &t->dfd;
		ok = epoll_ctl(g->epfd, EPOLL_CTL_ADD, t->dfd, &ev) == 0;
	}
	g->accept_ep = ok;
	g->accept_ready = true;
}

/*
 * Which sockets have bytes (or a FIN, or an error): one epoll_wait() that
 * does not block, instead of a recv() on every connection every round. A
 * socket stays marked until a read finds it empty (tgt_conn.c). The events
 * name only connections in the set; one closed this round left it first.
 */
static void group_ready(struct tgt_group *g)
{
	struct pnvme_tgt *t = g->tgt;
	struct epoll_event ev[TGT_EP_EVENTS];
	int n;

	g->nr_act = 0;
	if (g->epfd < 0)
		return;
	if (g->ep_quiet) {
		/* Woken from a sleep in which no socket of the set became readable
		 * (a backend's interrupt, the wake eventfd, the timer): nothing to
		 * ask epoll; what arrived since, the next round finds. */
		g->ep_quiet = false;
		return;
	}
	n = epoll_wait(g->epfd, ev, (int)TGT_EP_EVENTS, 0);
	for (int i = 0; i < n; i++) {
		void *p = ev[i].data.ptr;

		if (p == &t->lfd || p == &t->dfd) {
			g->accept_ready = true;
		} else {
			struct tgt_conn *c = p;

			c->rx_ready = true;
			g->act[g->nr_act++] = c; /* each at most once per call */
		}
	}
	/*
	 * The connection that last delivered a command is read even if epoll
	 * has not named it: a host at depth 1 sends its next command there, and
	 * the recv() that finds it saves the epoll_wait() round trip that would
	 * otherwise come first (one system call less on the depth-1 path).
	 */
	if (g->hot && !g->hot->rx_ready) {
		g->hot->rx_ready = true;
		g->act[g->nr_act++] = g->hot;
	}
}

/* One round: new connections, receive, backends, retries, send, reap closed. */
int tgt_group_poll(struct tgt_group *g)
{
	struct pnvme_tgt *t = g->tgt;
	int work = 0;
	bool full;

	g->now = tgt_now_ms();
	group_ready(g);
	/*
	 * New connections when epoll reports a listener readable; without it,
	 * once per millisecond, not every round: an accept4() that finds none
	 * still allocates and frees a socket in the kernel (5-10 % of a depth-1
	 * round's time on loopback, BENCHMARKS.md §5).
	 */
	if (g->id == 0 && t->lfd >= 0 && (g->accept_ep ? g->accept_ready : g->now != g->accept_ms) &&
	    !__atomic_load_n(&t->stopping, __ATOMIC_RELAXED)) {
		g->accept_ms = g->now;
		g->accept_ready = false;
		work += accept_some(t, t->lfd, false);
		if (t->dfd >= 0)
			work += accept_some(t, t->dfd, true);
	}
	if (__atomic_load_n(&g->inbox_full, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&g->inbox_lock);
		while (g->inbox) {
			struct tgt_conn *c = g->inbox;

			g->inbox = c->next;
			c->next = g->conns;
			g->conns = c;
			c->deadline = g->now + t->o.ic_timeout_ms;
			group_watch(g, c);
			g->scan = true;
		}
		__atomic_store_n(&g->inbox_full, false, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&g->inbox_lock);
	}
	/*
	 * Every connection once per millisecond (its deadlines, Keep Alive, a
	 * controller gone, events from other threads, closed ones to free) and in
	 * a round that adopted one; in the rounds between, only those epoll named
	 * and those with PDUs to send: a round's cost does not grow with idle
	 * connections (BENCHMARKS.md §5, "Idle connections").
	 */
	full = g->epfd < 0 || g->scan || g->now != g->scan_ms;
	if (full) {
		g->scan = false;
		g->scan_ms = g->now;
		for (struct tgt_conn *c = g->conns; c; c = c->next)
			work += tgt_conn_poll(c);
	} else {
		for (unsigned i = 0; i < g->nr_act; i++)
			work += tgt_conn_poll(g->act[i]);
	}
	g->nr_act = 0;
	for (unsigned i = 0; i < TGT_MAX_BACKENDS; i++) {
		struct tgt_bq *bq = &g->bq[i];

		if (bq->qp && bq->outstanding) {
			int n;

			if (t->stepped[i]) {
				/* A thread-less backend (null:): ring, and it completes
				 * what it got now, on this thread, before the reap. */
				pnvme_qpair_flush(bq->qp);
				(void)pnvme_emu_step(t->stepped[i]);
			}
			n = pnvme_qpair_poll(bq->qp, 0);

			work += n > 0 ? n : 0;
		}
	}
	if (g->wait_head)
		work += tgt_io_retry(g);
	if (!full) {
		struct tgt_conn *q = g->txq;

		g->txq = NULL;
		while (q) {
			struct tgt_conn *c = q;

			q = c->txnext;
			c->in_txq = false;
			work += tgt_conn_flush(c);
			if (c->tx_head && c->fd >= 0)
				tgt_group_txq(c); /* the socket is full: again next round */
		}
		return work;
	}
	/* Every connection: send, free the closed ones; the txq is rebuilt. */
	for (struct tgt_conn *c = g->txq; c; c = c->txnext)
		c->in_txq = false;
	g->txq = NULL;
	for (struct tgt_conn **pp = &g->conns; *pp;) {
		struct tgt_conn *c = *pp;

		work += tgt_conn_flush(c);
		if (tgt_conn_freeable(c)) {
			*pp = c->next;
			tgt_conn_free(c);
			__atomic_sub_fetch(&t->nconns, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (c->tx_head && c->fd >= 0)
			tgt_group_txq(c);
		pp = &c->next;
	}
	return work;
}

static bool group_backend_busy(const struct tgt_group *g)
{
	for (unsigned i = 0; i < TGT_MAX_BACKENDS; i++)
		if (g->bq[i].outstanding)
			return true;
	return g->wait_head != NULL;
}

/* The nap of a poller waiting for polled-only backends (after idle_spin_us). */
#define TGT_BACKOFF_NS  50000L
/* The sleep of a poller waiting for backends that signal their completions. */
#define TGT_IRQ_WAIT_NS 1000000L
/*
 * The longest sleep of a poller with nothing in flight. A host's bytes, a new
 * connection and the stop wake it at once; the bound is for what only time
 * or another thread moves: the ICReq and close deadlines, Keep Alive
 * (shorter sleeps where one is near), events raised by other threads, a
 * controller torn down elsewhere.
 */
#define TGT_IDLE_WAIT_MS 100u
/*
 * How long a poller spins while only backend commands are out (capped by
 * idle_spin_us): long enough to catch a fast completion, short enough to give
 * the CPU back while a slow drive works. In a virtual machine that CPU is the
 * one the hypervisor's drive emulation needs; in the QEMU guest 50 us beat
 * both 0 and 200 at depth 1 and 32 on the drive (BENCHMARKS.md §5).
 */
#define TGT_BACKEND_SPIN_US 50u
#define TGT_MAX_PFD     (131u + TGT_MAX_BACKENDS)

/*
 * May the poller sleep until a backend signals? Only if every backend with
 * commands out has an interrupt eventfd. Each is acknowledged, then its
 * queue pair polled once more: a completion posted before the ack is reaped
 * now, one posted after it makes the eventfd readable and ends the sleep at
 * once. Returns 1: sleep on the eventfds; 0: some backend is polled only
 * (or requests wait for resources); -1: completions were just reaped.
 */
static int group_backends_signal(struct tgt_group *g)
{
	if (g->wait_head)
		return 0;
	for (unsigned i = 0; i < TGT_MAX_BACKENDS; i++) {
		struct tgt_bq *bq = &g->bq[i];

		if (bq->qp && bq->outstanding &&
		    (bq->efd < 0 || pnvme_qpair_event_ack(bq->qp) < 0))
			return 0;
	}
	for (unsigned i = 0; i < TGT_MAX_BACKENDS; i++) {
		struct tgt_bq *bq = &g->bq[i];

		if (bq->qp && bq->outstanding && pnvme_qpair_poll(bq->qp, 0) > 0)
			return -1;
	}
	return 1;
}

/*
 * Wait in ppoll() on the group's sockets (a listener's new connection, a
 * host's bytes, room to send where PDUs are queued) and, with `backends`,
 * on the interrupt eventfds of the backends with commands out, for at most
 * `ns`: a host's next command, or a backend's completion, ends the wait.
 */
static void group_sock_wait(struct tgt_group *g, long ns, bool backends)
{
	struct pollfd pfd[TGT_MAX_PFD];
	struct timespec ts = { ns / 1000000000L, ns % 1000000000L };
	nfds_t n = 0, ep;

	if (g->wake_fd >= 0)
		pfd[n++] = (struct pollfd){ .fd = g->wake_fd, .events = POLLIN };
	ep = n;
	if (g->epfd >= 0)
		pfd[n++] = (struct pollfd){ .fd = g->epfd, .events = POLLIN }; /* a socket of the set */
	if (g->id == 0 && g->tgt->lfd >= 0 && !g->accept_ep)
		pfd[n++] = (struct pollfd){ .fd = g->tgt->lfd, .events = POLLIN };
	if (g->id == 0 && g->tgt->dfd >= 0 && !g->accept_ep)
		pfd[n++] = (struct pollfd){ .fd = g->tgt->dfd, .events = POLLIN };
	if (g->epfd >= 0) {
		/* readable: through epfd; room to send where PDUs wait: the txq */
		for (struct tgt_conn *c = g->txq; c && n < TGT_MAX_PFD; c = c->txnext)
			if (c->fd >= 0 && tgt_conn_wants_out(c))
				pfd[n++] = (struct pollfd){ .fd = c->fd, .events = POLLOUT };
	} else {
		for (struct tgt_conn *c = g->conns; c && n < TGT_MAX_PFD; c = c->next)
			if (c->fd >= 0)
				pfd[n++] = (struct pollfd){
					.fd = c->fd,
					.events = (short)(POLLIN | (tgt_conn_wants_out(c) ? POLLOUT : 0)) };
	}
	for (unsigned i = 0; backends && i < TGT_MAX_BACKENDS && n < TGT_MAX_PFD; i++)
		if (g->bq[i].qp && g->bq[i].outstanding && g->bq[i].efd >= 0)
			pfd[n++] = (struct pollfd){ .fd = g->bq[i].efd, .events = POLLIN };
	if (ppoll(pfd, n, &ts, NULL) < 0)
		return;
	if (g->wake_fd >= 0 && (pfd[0].revents & POLLIN)) {
		eventfd_t v;

		(void)eventfd_read(g->wake_fd, &v);
	}
	/* epfd quiet: the round after needs no epoll_wait() (group_ready) */
	g->ep_quiet = g->epfd >= 0 && !pfd[ep].revents;
}

/*
 * How long a poller with nothing in flight may sleep: TGT_IDLE_WAIT_MS, or
 * less where a connection's deadline (ICReq, close drain, Keep Alive) is
 * nearer; the deadline is then handled by the round after the wake-up. The
 * time is the last round's (g->now), a moment ago.
 */
static long group_idle_ns(const struct tgt_group *g)
{
	uint64_t now = g->now, wait = TGT_IDLE_WAIT_MS;

	for (const struct tgt_conn *c = g->conns; c; c = c->next) {
		uint64_t d = UINT64_MAX;

		if (c->state == CONN_IC || c->state == CONN_DRAIN)
			d = c->deadline;
		else if (c->state == CONN_LIVE && c->qid == 0 && c->ctrl && c->ctrl->kato)
			d = c->ctrl->ka_deadline;
		if (d <= now)
			return 0;
		if (d - now < wait)
			wait = d - now;
	}
	return (long)wait * 1000000L;
}

/* Stopping: answer what the backends still hold, then close everything. */
void tgt_group_stop(struct tgt_group *g)
{
	uint64_t end = tgt_now_ms() + TGT_STOP_DRAIN_MS;

	for (struct tgt_conn *c = g->conns; c; c = c->next)
		c->stopping = true;
	while (group_backend_busy(g) && tgt_now_ms() < end) {
		if (!tgt_group_poll(g))
			sched_yield();
	}
	for (int i = 0; i < 100 && tgt_group_poll(g); i++)
		; /* send what is queued */
	while (g->inbox) {
		struct tgt_conn *c = g->inbox;

		g->inbox = c->next;
		c->next = g->conns;
		g->conns = c;
	}
	for (struct tgt_conn *c = g->conns; c; c = c->next)
		tgt_conn_close(c);
	bq_release(g); /* requests still at a backend end with -ECANCELED */
	while (g->conns) {
		struct tgt_conn *c = g->conns;

		g->conns = c->next;
		tgt_conn_free(c);
		__atomic_sub_fetch(&g->tgt->nconns, 1, __ATOMIC_RELAXED);
	}
}

void *tgt_group_thread(void *arg)
{
	struct tgt_group *g = arg;
	struct pnvme_tgt *t = g->tgt;
	uint64_t idle_since = 0, idle_for, spin_ticks, backend_spin_ticks;
	const uint64_t us = pnvme_ticks_hz() / 1000000u;
	unsigned idle = 0;
	char name[16];
	int sig;

	/* "pnvme-tgt-N" in top -H, ps -L and /proc/PID/task/TID/comm */
	snprintf(name, sizeof(name), "pnvme-tgt-%u", g->id % 100000u);
	(void)pthread_setname_np(pthread_self(), name);
	if (t->o.cpu_mask) {
		cpu_set_t set;
		unsigned k = 0;

		CPU_ZERO(&set);
		for (unsigned cpu = 0; cpu < 64; cpu++) {
			if (!(t->o.cpu_mask & (1ull << cpu)))
				continue;
			if (k++ == g->id % (unsigned)__builtin_popcountll(t->o.cpu_mask)) {
				CPU_SET(cpu, &set);
				break;
			}
		}
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
			log_warn("tgt: thread %u: cannot pin to its cpu", g->id);
	}
	spin_ticks = t->o.idle_spin_us * us;
	backend_spin_ticks = (t->o.idle_spin_us < TGT_BACKEND_SPIN_US ? t->o.idle_spin_us
								      : TGT_BACKEND_SPIN_US) * us;
	while (!__atomic_load_n(&t->stopping, __ATOMIC_ACQUIRE)) {
		if (tgt_group_poll(g)) {
			idle = 0;
			continue;
		}
		if (idle++ == 0)
			idle_since = pnvme_ticks();
		/*
		 * Polling, not hogging: a task that is runnable on this CPU (the
		 * host's kworker or softirq thread when host and target share a
		 * machine, a backend's thread) runs now, not at the next tick;
		 * with none, this returns at once. Not a sleep.
		 */
		sched_yield();
		idle_for = pnvme_ticks() - idle_since;
		if (idle_for < backend_spin_ticks)
			continue;
		if (!group_backend_busy(g)) {
			if (idle_for < spin_ticks)
				continue;
			/*
			 * Nothing in flight for idle_spin_us (a host at queue depth 1
			 * sends its next command within that time, and finds the
			 * thread awake): sleep in poll() until a socket has something,
			 * another thread wakes it, or a deadline comes.
			 */
			group_sock_wait(g, group_idle_ns(g), false);
			continue;
		}
		sig = group_backends_signal(g);
		if (sig > 0) {
			/*
			 * Backend commands are out, nothing has moved for
			 * idle_spin_us, and every such backend raises an interrupt
			 * when it completes (PNVME_QPAIR_INTERRUPTS): sleep until one
			 * does or a host sends, as the kernel target waits for its
			 * drive. The CPU goes to whoever makes the progress: in a
			 * virtual machine, the hypervisor's device emulation
			 * (BENCHMARKS.md §5).
			 */
			group_sock_wait(g, TGT_IRQ_WAIT_NS, true);
		} else if (sig == 0) {
			/*
			 * A polled-only backend (no MSI-X, or a fabric) has commands
			 * out (a thread-less backend such as null: completes within
			 * the round and never gets here): give the CPU away for a
			 * moment instead of spinning on, for an emulated backend's
			 * thread or a hypervisor's device emulation. A host's bytes
			 * end the nap at once.
			 */
			group_sock_wait(g, TGT_BACKOFF_NS, false);
		}
	}
	tgt_group_stop(g);
	return NULL;
}
