/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tcp_ctrl.c - the NVMe/TCP transport of the controller core: the address
 * and its options, properties through Property Get/Set (Base 2.0 §6.5,
 * §6.6), the association (admin queue connection and Connect, §3.5.2),
 * I/O queue connections, Keep Alive (§5.24) from the poll loops.
 */
#include <ctype.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pnvme/tcp_spec.h>

#include "tcp/host.h"

static void backend_init(struct pnvme_ctrl *ctrl);

#define DEFAULT_KATO_MS         5000u   /* Linux NVME_DEFAULT_KATO: 5 s */
#define DEFAULT_RECONNECT_MS    1000u
#define DEFAULT_LOSS_TMO_MS     60000u
#define DEFAULT_CONNECT_TMO_MS  10000u

/* ------------------------------------------------------------------------ */
/* Address: tcp:HOST[:PORT]/SUBNQN[?key=value&...]                          */
/* ------------------------------------------------------------------------ */

static int parse_bool(const char *k, const char *v, bool *out)
{
	if (!strcmp(v, "1") || !strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true"))
		*out = true;
	else if (!strcmp(v, "0") || !strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false"))
		*out = false;
	else
		return pnvme_fail(-EINVAL, "tcp address: %s=%s: expected 0 or 1", k, v);
	return 0;
}

static int parse_u32(const char *k, const char *v, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(v, &end, 10);
	if (!*v || *end || errno || x > max || v[0] == '-')
		return pnvme_fail(-EINVAL, "tcp address: %s=%s: expected a number 0..%u", k, v, max);
	*out = (uint32_t)x;
	return 0;
}

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" -> 16 bytes */
static int parse_uuid(const char *s, uint8_t out[16])
{
	unsigned n = 0;

	for (const char *p = s; *p; p++) {
		if (*p == '-')
			continue;
		if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) || n == 16)
			return -EINVAL;
		char b[3] = { p[0], p[1], 0 };
		out[n++] = (uint8_t)strtoul(b, NULL, 16);
		p++;
	}
	return n == 16 ? 0 : -EINVAL;
}

static void uuid_str(const uint8_t id[16], char *buf, size_t len)
{
	snprintf(buf, len, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7], id[8], id[9], id[10],
		 id[11], id[12], id[13], id[14], id[15]);
}

/* First line of a small file, trimmed; false if absent or empty. */
static bool read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	bool ok = false;

	if (!f)
		return false;
	if (fgets(buf, (int)len, f)) {
		buf[strcspn(buf, " \t\r\n")] = 0;
		ok = buf[0] != 0;
	}
	fclose(f);
	return ok;
}

/*
 * The host's identity, as nvme-cli finds it: /etc/nvme/hostnqn and
 * /etc/nvme/hostid; else a UUID from /etc/machine-id (stable per machine)
 * and the UUID-based NQN of Base 2.0 §4.5 (nqn.2014-08.org.nvmexpress:uuid:...).
 */
static void default_identity(struct pnvme_tcp_opts *o)
{
	char line[300];
	bool have_id = false;

	if (read_line("/etc/nvme/hostid", line, sizeof(line)) && parse_uuid(line, o->hostid) == 0)
		have_id = true;
	if (!have_id && read_line("/etc/machine-id", line, sizeof(line)) && strlen(line) >= 32) {
		for (unsigned i = 0; i < 16; i++) {
			char b[3] = { line[2 * i], line[2 * i + 1], 0 };
			o->hostid[i] = (uint8_t)strtoul(b, NULL, 16);
		}
		o->hostid[6] = (uint8_t)((o->hostid[6] & 0x0f) | 0x40); /* version 4 layout */
		o->hostid[8] = (uint8_t)((o->hostid[8] & 0x3f) | 0x80);
		have_id = true;
	}
	if (!have_id) {
		int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (read(fd, o->hostid, 16) != 16)
				memset(o->hostid, 0x5a, 16);
			close(fd);
		}
	}
	if (!read_line("/etc/nvme/hostnqn", o->hostnqn, sizeof(o->hostnqn))) {
		char u[40];
		uuid_str(o->hostid, u, sizeof(u));
		snprintf(o->hostnqn, sizeof(o->hostnqn), "nqn.2014-08.org.nvmexpress:uuid:%s", u);
	}
}

static int parse_opt(struct pnvme_tcp_opts *o, char *kv)
{
	char *eq = strchr(kv, '=');
	const char *k = kv, *v;
	uint32_t x = 0;
	int rc = 0;

	if (!eq)
		return pnvme_fail(-EINVAL, "tcp address: option '%s' has no value (key=value)", kv);
	*eq = 0;
	v = eq + 1;
	if (!strcmp(k, "hostnqn")) {
		if (!*v || strlen(v) > PNVME_NQN_MAX)
			return pnvme_fail(-EINVAL, "tcp address: hostnqn must be 1..%u bytes "
					  "(Base 2.0 §4.5)", PNVME_NQN_MAX);
		snprintf(o->hostnqn, sizeof(o->hostnqn), "%s", v);
	} else if (!strcmp(k, "hostid")) {
		if (parse_uuid(v, o->hostid))
			return pnvme_fail(-EINVAL, "tcp address: hostid=%s is not a UUID", v);
	} else if (!strcmp(k, "hdr_digest")) {
		rc = parse_bool(k, v, &o->hdgst);
	} else if (!strcmp(k, "data_digest")) {
		rc = parse_bool(k, v, &o->ddgst);
	} else if (!strcmp(k, "keep_alive_tmo")) {
		rc = parse_u32(k, v, 3600, &x);
		o->kato_ms = x * 1000u;
	} else if (!strcmp(k, "reconnect_delay")) {
		rc = parse_u32(k, v, 3600, &x);
		o->reconnect_delay_ms = x * 1000u;
	} else if (!strcmp(k, "ctrl_loss_tmo")) {
		rc = parse_u32(k, v, 86400, &x);
		o->ctrl_loss_tmo_ms = x * 1000u;
	} else if (!strcmp(k, "connect_timeout")) {
		rc = parse_u32(k, v, 3600, &x);
		o->connect_timeout_ms = x ? x * 1000u : DEFAULT_CONNECT_TMO_MS;
	} else if (!strcmp(k, "nr_io_queues")) {
		rc = parse_u32(k, v, 65535, &x);
		o->nr_io_queues = (uint16_t)x;
	} else if (!strcmp(k, "queue_size")) {
		rc = parse_u32(k, v, 4096, &x);
		if (rc == 0 && x && x < 2)
			rc = pnvme_fail(-EINVAL, "tcp address: queue_size %u below 2", x);
		o->queue_size = (uint16_t)x;
	} else {
		return pnvme_fail(-EINVAL, "tcp address: unknown option '%s' (known: hostnqn, hostid, "
				  "hdr_digest, data_digest, keep_alive_tmo, reconnect_delay, "
				  "ctrl_loss_tmo, connect_timeout, nr_io_queues, queue_size)", k);
	}
	return rc;
}

/* Parse "tcp:HOST[:PORT]/SUBNQN[?k=v&k=v]" (HOST may be [IPv6]). */
static int parse_addr(const char *addr, struct pnvme_tcp_opts *o)
{
	char buf[1024], *p, *slash, *q, *host, *port = NULL;
	int rc;

	memset(o, 0, sizeof(*o));
	o->kato_ms = DEFAULT_KATO_MS;
	o->reconnect_delay_ms = DEFAULT_RECONNECT_MS;
	o->ctrl_loss_tmo_ms = DEFAULT_LOSS_TMO_MS;
	o->connect_timeout_ms = DEFAULT_CONNECT_TMO_MS;
	default_identity(o);
	if (strlen(addr) >= sizeof(buf))
		return pnvme_fail(-EINVAL, "tcp address too long");
	snprintf(buf, sizeof(buf), "%s", addr + 4);
	q = strchr(buf, '?');
	if (q)
		*q++ = 0;
	slash = strchr(buf, '/');
	if (!slash || !slash[1])
		return pnvme_fail(-EINVAL, "tcp address '%s': the subsystem NQN is missing "
				  "(tcp:HOST[:PORT]/NQN)", addr);
	*slash = 0;
	if (strlen(slash + 1) > PNVME_NQN_MAX)
		return pnvme_fail(-EINVAL, "tcp address: subsystem NQN longer than %u bytes "
				  "(Base 2.0 §4.5)", PNVME_NQN_MAX);
	snprintf(o->subnqn, sizeof(o->subnqn), "%s", slash + 1);
	host = buf;
	if (host[0] == '[') {
		p = strchr(host, ']');
		if (!p)
			return pnvme_fail(-EINVAL, "tcp address '%s': unclosed [", addr);
		*p = 0;
		host++;
		if (p[1] == ':')
			port = p + 2;
		else if (p[1])
			return pnvme_fail(-EINVAL, "tcp address '%s': junk after ]", addr);
	} else if ((p = strrchr(host, ':')) != NULL) {
		*p = 0;
		port = p + 1;
	}
	if (!*host)
		return pnvme_fail(-EINVAL, "tcp address '%s': no host", addr);
	if (strlen(host) >= sizeof(o->host))
		return pnvme_fail(-EINVAL, "tcp address: host name too long");
	memcpy(o->host, host, strlen(host) + 1);
	if (port) {
		uint32_t x = 0;
		rc = parse_u32("port", port, 65535, &x);
		if (rc || x == 0)
			return pnvme_fail(-EINVAL, "tcp address '%s': bad port '%s'", addr, port);
	}
	snprintf(o->port, sizeof(o->port), "%s", port ? port : "4420");
	for (char *save = NULL, *kv = q ? strtok_r(q, "&", &save) : NULL; kv;
	     kv = strtok_r(NULL, "&", &save)) {
		rc = parse_opt(o, kv);
		if (rc)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Properties (Base 2.0 §6.5 Property Get, §6.6 Property Set)               */
/* ------------------------------------------------------------------------ */

static int prop_get(struct pnvme_ctrl *ctrl, uint32_t off, bool eight, uint64_t *val)
{
	struct pnvme_fabrics_prop_get c;
	struct pnvme_cqe cqe;
	int rc;

	memset(&c, 0, sizeof(c));
	c.opc = PNVME_OPC_FABRICS;
	c.fctype = PNVME_FCTYPE_PROPERTY_GET;
	c.attrib = eight ? PNVME_PROP_SIZE_8 : PNVME_PROP_SIZE_4;
	c.ofst = off;
	rc = admin_sync(ctrl, (const struct pnvme_sqe *)(void *)&c, NULL, 0, &cqe);
	if (rc)
		return pnvme_fail(rc, "Property Get 0x%x: %s", off, pnvme_last_error());
	*val = (uint64_t)cqe.dw0 | (eight ? (uint64_t)cqe.dw1 << 32 : 0);
	return 0;
}

static int tcp_reg_read32(struct pnvme_ctrl *ctrl, uint32_t off, uint32_t *val)
{
	uint64_t v = 0;
	int rc = prop_get(ctrl, off, false, &v);

	*val = (uint32_t)v;
	return rc;
}

static int tcp_reg_read64(struct pnvme_ctrl *ctrl, uint32_t off, uint64_t *val)
{
	return prop_get(ctrl, off, true, val);
}

static int tcp_reg_write32(struct pnvme_ctrl *ctrl, uint32_t off, uint32_t val)
{
	struct pnvme_fabrics_prop_set c;
	int rc;

	memset(&c, 0, sizeof(c));
	c.opc = PNVME_OPC_FABRICS;
	c.fctype = PNVME_FCTYPE_PROPERTY_SET;
	c.attrib = PNVME_PROP_SIZE_4;
	c.ofst = off;
	c.value = val;
	rc = admin_sync(ctrl, (const struct pnvme_sqe *)(void *)&c, NULL, 0, NULL);
	if (rc)
		return pnvme_fail(rc, "Property Set 0x%x: %s", off, pnvme_last_error());
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Association and queues                                                   */
/* ------------------------------------------------------------------------ */

static int tcp_probe(struct pnvme_ctrl *ctrl)
{
	(void)ctrl;
	return 0; /* nothing to read before the admin queue is connected */
}

/*
 * Base 2.0 §3.5.2 steps 1-2: connect the admin queue (a new association,
 * dynamic controller: CNTLID FFFFh), then read CAP and VS. The admin queue
 * is usable from here on, before CC.EN: its doorbell gate opens (a reset
 * closed it while the old association was being torn down).
 */
static int tcp_admin_setup(struct pnvme_ctrl *ctrl)
{
	struct pnvme_tcp_ctrl *tc = ctrl->tcp;
	struct pnvme_qpair *aq = ctrl->adminq;
	uint16_t cntlid = 0;
	int rc;

	rc = tcp_queue_connect(aq, PNVME_CONNECT_CNTLID_DYNAMIC,
			       tc->discovery ? 0 : tc->o.kato_ms, &cntlid);
	if (rc)
		return rc;
	tc->cntlid = cntlid;
	aq->gen = __atomic_load_n(&ctrl->admin_gen, __ATOMIC_RELAXED);
	tc->ka_ticks = tc->discovery || !tc->o.kato_ms ? 0 : pnvme_ms_to_ticks(tc->o.kato_ms / 2);
	tc->ka_next = pnvme_ticks() + tc->ka_ticks;
	tc->ka_outstanding = 0;
	rc = tcp_reg_read64(ctrl, PNVME_REG_CAP, &ctrl->cap);
	if (rc == 0)
		rc = tcp_reg_read32(ctrl, PNVME_REG_VS, &ctrl->vs);
	if (rc)
		return rc;
	if (PNVME_GET(ctrl->cap, PNVME_CAP_MQES) == 0)
		return pnvme_fail(-EPROTO, "CAP.MQES is 0: queues of one entry cannot work");
	return 0;
}

/* The association ends with the admin connection (Base 2.0 §3.3.2.4). */
static int tcp_disable(struct pnvme_ctrl *ctrl)
{
	tcp_queue_close(ctrl->adminq);
	return 0;
}

static int tcp_queue_create(struct pnvme_qpair *qp)
{
	struct pnvme_tcp_ctrl *tc = qp->ctrl->tcp;

	if (tc->discovery)
		return pnvme_fail(-EOPNOTSUPP, "a discovery controller has no I/O queues");
	return tcp_queue_connect(qp, tc->cntlid, 0, NULL);
}

/* Fabrics queues end with their connection; what was outstanding fails after. */
static int tcp_queue_delete(struct pnvme_qpair *qp)
{
	tcp_queue_close(qp);
	return 0;
}

/*
 * Runs from ctrl_free() after the admin queue pair was freed (its connection
 * closed with it, tcp_queue_free()): ctrl->adminq dangles here, don't touch it.
 */
static void tcp_close(struct pnvme_ctrl *ctrl)
{
	free(ctrl->tcp);
	ctrl->tcp = NULL;
}

const struct pnvme_transport_ops pnvme_tcp_ops = {
	.name = "tcp",
	.reg_read32 = tcp_reg_read32,
	.reg_read64 = tcp_reg_read64,
	.reg_write32 = tcp_reg_write32,
	.probe = tcp_probe,
	.admin_setup = tcp_admin_setup,
	.disable = tcp_disable,
	.queue_create = tcp_queue_create,
	.queue_delete = tcp_queue_delete,
	.close = tcp_close,
};

/* ------------------------------------------------------------------------ */
/* Keep Alive (Base 2.0 §5.24, §3.9): every KATO / 2, from the poll loops   */
/* ------------------------------------------------------------------------ */

static void ka_done(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct pnvme_ctrl *ctrl = arg;

	(void)cqe;
	ctrl->tcp->ka_outstanding = 0;
	if (err && err != -ECANCELED && err != -ENODEV)
		ctrl_defer_reset(ctrl, __atomic_load_n(&ctrl->gen, __ATOMIC_ACQUIRE),
				 "Keep Alive failed");
}

void tcp_keep_alive(struct pnvme_ctrl *ctrl)
{
	struct pnvme_tcp_ctrl *tc = ctrl->tcp;
	uint64_t now;

	if (!tc || !tc->ka_ticks)
		return;
	now = pnvme_ticks();
	if ((int64_t)(now - __atomic_load_n(&tc->ka_next, __ATOMIC_RELAXED)) < 0)
		return;
	if (pthread_mutex_trylock(&ctrl->admin_lock) != 0)
		return; /* someone uses the admin queue: they will, or the next poll */
	if (!ctrl->adminq->in_poll && ctrl_state(ctrl) == CTRL_LIVE) {
		/*
		 * Reap first: an application that polls only I/O queues reaps the
		 * admin queue only here, and the last Keep Alive's answer is waiting.
		 */
		(void)pnvme_qpair_poll(ctrl->adminq, 0);
		if (!tc->ka_outstanding && ctrl_state(ctrl) == CTRL_LIVE) {
			struct pnvme_sqe c;
			memset(&c, 0, sizeof(c));
			c.opc = PNVME_ADM_KEEP_ALIVE;
			if (qpair_submit_raw(ctrl->adminq, &c, NULL, 0, ka_done, ctrl) == 0) {
				tc->ka_outstanding = 1;
				tc->ka_sent++;
			}
		}
		__atomic_store_n(&tc->ka_next, now + tc->ka_ticks, __ATOMIC_RELAXED);
		(void)pnvme_qpair_poll(ctrl->adminq, 0);
		ctrl_run_pending_reset(ctrl);
	}
	pthread_mutex_unlock(&ctrl->admin_lock);
}

/* ------------------------------------------------------------------------ */
/* Open                                                                     */
/* ------------------------------------------------------------------------ */

int tcp_ctrl_open(const char *addr, struct pnvme_ctrl *ctrl)
{
	struct pnvme_tcp_ctrl *tc = calloc(1, sizeof(*tc));
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res = NULL;
	int rc;

	if (!tc)
		return pnvme_fail(-ENOMEM, "out of memory");
	ctrl->tcp = tc;
	ctrl->tr = &pnvme_tcp_ops;
	backend_init(ctrl);
	rc = parse_addr(addr, &tc->o);
	if (rc)
		return rc;
	tc->discovery = strcmp(tc->o.subnqn, PNVME_DISCOVERY_NQN) == 0;
	rc = getaddrinfo(tc->o.host, tc->o.port, &hints, &res);
	if (rc || !res) {
		if (res)
			freeaddrinfo(res);
		return pnvme_fail(-EHOSTUNREACH, "tcp address: cannot resolve '%s': %s", tc->o.host,
				  gai_strerror(rc));
	}
	memcpy(&tc->sa, res->ai_addr, res->ai_addrlen);
	tc->sa_len = res->ai_addrlen;
	freeaddrinfo(res);
	if (tc->o.nr_io_queues)
		ctrl->opts.nr_io_queues = tc->o.nr_io_queues;
	return 0;
}

uint32_t ctrl_loss_tmo_ms(const struct pnvme_ctrl *ctrl)
{
	return ctrl->tcp ? ctrl->tcp->o.ctrl_loss_tmo_ms : 0;
}

uint32_t ctrl_reconnect_delay_ms(const struct pnvme_ctrl *ctrl)
{
	return ctrl->tcp ? ctrl->tcp->o.reconnect_delay_ms : 0;
}

/*
 * Identify Controller read: the in-capsule data an I/O queue accepts is
 * IOCCSZ (16-byte units, the 64-byte SQE included) minus the SQE, at an
 * offset of ICDOFF units that pnvme requires to be 0 (Base 2.0 Figure 275;
 * Linux's host makes the same demand). Discovery controllers have no I/O.
 */
int tcp_ctrl_identified(struct pnvme_ctrl *ctrl)
{
	struct pnvme_tcp_ctrl *tc = ctrl->tcp;
	const struct pnvme_id_ctrl *id = &ctrl->id;

	if (id->cntrltype == 2 && !tc->discovery)
		log_notice("%s is a discovery controller", tc->o.subnqn);
	tc->discovery = tc->discovery || id->cntrltype == 2;
	if (tc->discovery)
		return 0;
	if (id->icdoff)
		return pnvme_fail(-EOPNOTSUPP, "the controller puts in-capsule data at offset %u "
				  "(ICDOFF), pnvme only at 0", id->icdoff * 16u);
	if (!(id->sgls & 3u))
		return pnvme_fail(-EPROTO, "the controller reports no SGL support (SGLS 0x%x): "
				  "NVMe over Fabrics needs SGLs", id->sgls);
	tc->icd_io = id->ioccsz >= 4 ? id->ioccsz * 16u - 64u : 0;
	if (tc->icd_io > ctrl->max_xfer)
		tc->icd_io = ctrl->max_xfer;
	return 0;
}

/* Memory on TCP: any of the caller's; DMA allocations are plain memory (no IOMMU). */
static int mem_map(void *ctx, void *vaddr, uint64_t iova, size_t len)
{
	(void)ctx, (void)vaddr, (void)iova, (void)len;
	return 0;
}

static int mem_unmap(void *ctx, uint64_t iova, size_t len)
{
	(void)ctx, (void)iova, (void)len;
	return 0;
}

/* Slow-path waits (sync admin commands, bring-up): sleep on the admin socket. */
static void mem_wait(void *ctx)
{
	struct pnvme_ctrl *ctrl = ctx;
	struct pnvme_tcp_queue *tq = ctrl->adminq ? ctrl->adminq->tq : NULL;

	if (tq && tq->fd >= 0 && !tq->tx_head) {
		struct pollfd p = { .fd = tq->fd, .events = POLLIN };
		(void)poll(&p, 1, 1);
	} else {
		sched_yield();
	}
}

static const struct pnvme_backend_ops tcp_mem_ops = {
	.name = "tcp",
	.dma_map = mem_map,
	.dma_unmap = mem_unmap,
	.wait = mem_wait,
};

static void backend_init(struct pnvme_ctrl *ctrl)
{
	ctrl->be.ops = &tcp_mem_ops;
	ctrl->be.ctx = ctrl;
	ctrl->be.iova_base = 1ull << 32;
	ctrl->be.iova_end = 1ull << 47;
}
