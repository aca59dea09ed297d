/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_tcp_host.c - libFuzzer target: a live NVMe/TCP host queue pair
 * (src/tcp/tcp_queue.c with the core's completion, reset and retry paths)
 * receiving a hostile byte stream from its "target".
 *
 * Set-up (once): tcp_peer (tests/tcp_peer.h) serves the controller's
 * bring-up; two controllers are opened, one without digests and one with
 * header and data digests, each with one I/O queue pair. Per input: the I/O
 * queue pair's connection is swapped for one end of a socketpair (dup2 over
 * its descriptor, after ICResp and Connect went right); requests are
 * submitted (reads and writes of several sizes into buffers with guard bytes
 * on both sides: in-capsule, R2T and C2HData paths); the input is written to
 * the host as the target's byte stream, in chunks, with polls in between;
 * then the harness closes its end, and the host reconnects to tcp_peer
 * (a controller reset) and completes whatever is left.
 *
 * Input: 2 bytes of configuration, then the stream.
 *   byte 0: bit 0 the controller with digests; bit 1 leave digests as given
 *           (else the harness recomputes the HDGST/DDGST of each PDU it can
 *           frame); bit 2 max_retries 1 (requests cut off by the reconnect
 *           are sent again to tcp_peer); bit 3 leave command ids as given
 *   byte 1: seed of the chunking
 * Command ids: a target cannot know the host's, so by default the harness
 * walks the stream by PLEN and rewrites the CCCID of CapsuleResp, C2HData
 * and R2T PDUs whose value is below 256 into the id of request (value mod 8):
 * reads 0 (512 B), 1 (4 KiB), 2 (8 KiB), 6 (1 KiB); writes 3 (512 B) and 4
 * (4 KiB) in the capsule, 5 (20 KiB) and 7 (32 KiB) through R2T (MAXH2CDATA
 * 8 KiB). Other values pass as they are (unknown ids).
 *
 * Traps: a callback run twice or never (within 5 s of the end of the
 * stream), a guard byte changed, the controller found dead; ASan/UBSan
 * report the rest.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <pnvme/pnvme.h>
#include <pnvme/tcp_spec.h>

#include "core/ctrl_priv.h"
#include "tcp/host.h"
#include "tcp/pdu.h"
#include "tcp_peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define GUARD    64u
#define NREQ     8
#define STREAM_MAX (64u * 1024u)

struct fz_req {
	bool     write;
	uint32_t blocks;   /* 512-byte blocks */
	uint8_t *mem;      /* GUARD | data | GUARD */
	int      calls;
	int      err;
};

/* Reads through C2HData (several PDUs for the larger), writes in-capsule and through R2T. */
static const struct { bool write; uint32_t blocks; } req_shape[NREQ] = {
	{ false, 1 }, { false, 8 }, { false, 16 }, { true, 1 },
	{ true, 8 }, { true, 40 }, { false, 2 }, { true, 64 },
};

struct fz_ctrl {
	struct pnvme_ctrl *ctrl;
	struct pnvme_qpair *qp;
	const struct pnvme_ns *ns;
	uint32_t retries;  /* max_retries the queue pair was created with */
};

static struct tcp_peer *peer;
static struct fz_ctrl ctrls[2];
static struct fz_req reqs[NREQ];
static uint8_t stream[STREAM_MAX];

static void trap(const char *why)
{
	fprintf(stderr, "fuzz_tcp_host: %s\n", why);
	__builtin_trap();
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void req_cb(void *arg, int err, const struct pnvme_cqe *cqe)
{
	struct fz_req *r = arg;

	(void)cqe;
	if (++r->calls > 1)
		trap("a request's callback ran twice");
	r->err = err;
}

static void open_ctrl(struct fz_ctrl *c, bool digests)
{
	char addr[512];
	struct pnvme_qpair_opts o;

	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u/%s?keep_alive_tmo=0&reconnect_delay=0"
		 "&ctrl_loss_tmo=30%s", tcp_peer_port(peer), tcp_peer_subnqn(peer),
		 digests ? "&hdr_digest=1&data_digest=1" : "");
	if (pnvme_ctrl_open(addr, NULL, &c->ctrl)) {
		fprintf(stderr, "fuzz_tcp_host: open %s: %s\n", addr, pnvme_last_error());
		abort();
	}
	c->ns = pnvme_ctrl_ns_at(c->ctrl, 0);
	pnvme_qpair_opts_default(&o);
	o.depth = 16;
	if (pnvme_qpair_create(c->ctrl, &o, &c->qp)) {
		fprintf(stderr, "fuzz_tcp_host: queue pair: %s\n", pnvme_last_error());
		abort();
	}
}

static void setup(void)
{
	struct tcp_peer_cfg cfg = { .nblocks = 4096, .c2h_max = 4096, .maxh2cdata = 8192,
				    .ioccsz = 4096 + 64 };

	peer = tcp_peer_start(&cfg);
	if (!peer) {
		perror("fuzz_tcp_host: tcp_peer_start");
		abort();
	}
	open_ctrl(&ctrls[0], false);
	open_ctrl(&ctrls[1], true);
	for (int i = 0; i < NREQ; i++) {
		size_t len = (size_t)req_shape[i].blocks * 512u;
		reqs[i].write = req_shape[i].write;
		reqs[i].blocks = req_shape[i].blocks;
		reqs[i].mem = malloc(len + 2 * GUARD);
		if (!reqs[i].mem)
			abort();
	}
}

/* Poll until the queue pair is connected in the controller's current generation. */
static void wait_connected(struct fz_ctrl *c)
{
	uint64_t end = now_ms() + 10000;

	for (;;) {
		int rc = pnvme_qpair_poll(c->qp, 0);
		if (pnvme_ctrl_is_dead(c->ctrl))
			trap("controller dead");
		if (rc >= 0 && c->qp->tq->fd >= 0 && !c->qp->tq->err &&
		    c->qp->gen == qpair_ctrl_gen(c->qp) && qpair_outstanding(c->qp) == 0)
			return;
		if (now_ms() > end)
			trap("the queue pair did not reconnect to tcp_peer");
	}
}

/* The command ids of requests 0..NREQ-1 (all outstanding right after submission). */
static void req_cids(const struct fz_ctrl *c, uint16_t *cids)
{
	const struct pnvme_qpair *qp = c->qp;

	for (int i = 0; i < NREQ; i++) {
		cids[i] = 0xffff;
		for (uint32_t k = 0; k < qp->nr_trk; k++)
			if (qp->trk[k].state == TRK_ACTIVE && qp->trk[k].arg == &reqs[i])
				cids[i] = qp->trk[k].cid;
	}
}

static inline uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/*
 * Walk the stream PDU by PDU (by PLEN, as far as it frames): give small
 * CCCIDs the ids of outstanding requests and recompute digests, so that
 * inputs get past the checks a real target would pass.
 */
static void fix_stream(uint8_t *s, size_t len, const uint16_t *cids, bool map, bool digests)
{
	size_t off = 0;

	while (off + sizeof(struct pnvme_tcp_ch) <= len) {
		/* The common header, byte by byte: the stream has no alignment. */
		uint8_t type = s[off], flags = s[off + 1], hlen = s[off + 2], pdo = s[off + 3];
		uint32_t plen = rd32(s + off + 4);
		size_t cid_at = 0;

		if (plen < sizeof(struct pnvme_tcp_ch) || plen > len - off)
			break;
		switch (type) {
		case PNVME_TCP_CAPSULE_RESP:
			cid_at = 8 + offsetof(struct pnvme_cqe, cid);
			break;
		case PNVME_TCP_C2H_DATA:
			cid_at = offsetof(struct pnvme_tcp_c2h_data, cccid);
			break;
		case PNVME_TCP_R2T:
			cid_at = offsetof(struct pnvme_tcp_r2t, cccid);
			break;
		default:
			break;
		}
		if (map && cid_at && cid_at + 2 <= plen) {
			uint16_t v;
			memcpy(&v, s + off + cid_at, 2);
			if (v < 256) {
				v = cids[v % NREQ];
				memcpy(s + off + cid_at, &v, 2);
			}
		}
		if (digests) {
			if ((flags & PNVME_TCP_F_HDGSTF) && (uint32_t)hlen + 4 <= plen) {
				uint32_t d = pnvme_crc32c(0, s + off, hlen);
				memcpy(s + off + hlen, &d, 4);
			}
			if ((flags & PNVME_TCP_F_DDGSTF) && pdo && (uint32_t)pdo + 4 <= plen) {
				uint32_t d = pnvme_crc32c(0, s + off + pdo, plen - 4 - pdo);
				memcpy(s + off + plen - 4, &d, 4);
			}
		}
		off += plen;
	}
}

/* Read and drop what the host sent (capsules, H2CData), so its sends never stall. */
static void drain(int fd)
{
	uint8_t buf[16384];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

static bool all_done(void)
{
	for (int i = 0; i < NREQ; i++)
		if (reqs[i].calls == 0)
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct fz_ctrl *c;
	uint16_t cids[NREQ];
	unsigned seed;
	size_t len, off = 0;
	int sp[2];
	uint8_t cfg;

	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 2)
		return 0;
	cfg = data[0];
	seed = data[1];
	len = size - 2 < STREAM_MAX ? size - 2 : STREAM_MAX;
	memcpy(stream, data + 2, len);
	c = &ctrls[cfg & 1u];
	c->qp->max_retries = (cfg & 4u) ? 1u : 0u;
	wait_connected(c);

	/* The target side of the connection is ours from here on. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp))
		abort();
	if (dup2(sp[0], c->qp->tq->fd) < 0)
		abort();
	close(sp[0]);

	for (int i = 0; i < NREQ; i++) {
		struct fz_req *r = &reqs[i];
		size_t blen = (size_t)r->blocks * 512u;
		uint8_t *buf = r->mem + GUARD;
		int rc;

		memset(r->mem, 0xa5, GUARD);
		memset(buf + blen, 0x5a, GUARD);
		memset(buf, (uint8_t)i, blen);
		r->calls = 0;
		r->err = 0;
		rc = r->write ? pnvme_write(c->qp, c->ns, buf, (uint64_t)i * 64u, r->blocks, 0,
					    req_cb, r)
			      : pnvme_read(c->qp, c->ns, buf, (uint64_t)i * 64u, r->blocks, 0,
					   req_cb, r);
		if (rc)
			trap("submission failed on a connected queue pair");
	}
	pnvme_qpair_flush(c->qp);
	req_cids(c, cids);
	fix_stream(stream, len, cids, !(cfg & 8u), (cfg & 1u) && !(cfg & 2u));

	/* The target speaks: the stream in chunks, the host polling in between. */
	while (off < len) {
		size_t chunk;
		ssize_t w;

		seed = seed * 1103515245u + 12345u;
		chunk = 1 + (seed >> 8) % 2048u;
		if (chunk > len - off)
			chunk = len - off;
		w = send(sp[1], stream + off, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			break; /* the host closed the connection */
		if (w > 0)
			off += (size_t)w;
		drain(sp[1]);
		for (int k = 0; k < 2; k++)
			(void)pnvme_qpair_poll(c->qp, 0);
	}
	for (int k = 0; k < 4; k++) {
		drain(sp[1]);
		(void)pnvme_qpair_poll(c->qp, 0);
	}

	/* The target goes away: the host reconnects (to tcp_peer) and ends what is left. */
	close(sp[1]);
	for (uint64_t end = now_ms() + 5000; !all_done();) {
		(void)pnvme_qpair_poll(c->qp, 0);
		if (now_ms() > end)
			trap("a request never completed");
	}
	if (pnvme_ctrl_is_dead(c->ctrl))
		trap("controller dead");
	for (int i = 0; i < NREQ; i++) {
		const uint8_t *g = reqs[i].mem;
		size_t blen = (size_t)reqs[i].blocks * 512u;
		for (unsigned k = 0; k < GUARD; k++)
			if (g[k] != 0xa5 || g[GUARD + blen + k] != 0x5a)
				trap("guard byte changed: data landed outside a request's buffer");
	}
	return 0;
}
