/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * emu_nvm.c - the NVM command set of the emulated controller, and its media.
 *
 * Namespace media, in RAM (anonymous mappings) or in a file: opening it,
 * zeroing, msync for Flush and shutdown, and the per-block metadata with its
 * protection information tuple stored inverted. The I/O commands (NVM Command
 * Set 1.0 §3): Read and Write, with or without metadata and end-to-end
 * protection (checks in emu_pi.c), Write Zeroes, Dataset Management
 * (deallocate) and Flush, each parsed by emu_parse_io() and then executed.
 * With discard (the null device, "null:") Read fills the host buffer with
 * zeroes and Write, Write Zeroes and DSM leave the media alone. Also the direct media and metadata accessors of the public API.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emu_priv.h"

/* ------------------------------------------------------------------------ */
/* Media                                                                    */
/* ------------------------------------------------------------------------ */

/* Zero [off, off + len) of a media area (`base` is page aligned in RAM mode). */
static void zero_range(struct pnvme_emu *emu, uint8_t *base, uint64_t off, uint64_t len)
{
	if (emu->file_map == NULL && len >= 16 * (uint64_t)PNVME_PAGE_SIZE) {
		/* anonymous memory: give whole pages back, they read as zeroes */
		uint64_t a = ALIGN_UP(off, (uint64_t)PNVME_PAGE_SIZE);
		uint64_t b = (off + len) & ~PAGE_MASK_;
		if (madvise(base + a, (size_t)(b - a), MADV_DONTNEED) == 0) {
			memset(base + off, 0, (size_t)(a - off));
			memset(base + b, 0, (size_t)(off + len - b));
			return;
		}
	}
	memset(base + off, 0, (size_t)len);
}

static void media_zero(struct pnvme_emu *emu, struct emu_ns *ns, uint64_t off, uint64_t len)
{
	zero_range(emu, ns->media, off, len);
}

/*
 * Blocks [slba, slba + nlb) become deallocated in the metadata as well: the
 * non-PI bytes read as zeroes, the PI tuple as all ones (stored inverted:
 * zeroes), which disables checking (NVM 1.0 §3.2.3.2.1, Deallocated or Unwritten
 * Logical Blocks).
 */
static void meta_zero(struct pnvme_emu *emu, struct emu_ns *ns, uint64_t slba, uint64_t nlb)
{
	if (ns->meta != NULL)
		zero_range(emu, ns->meta, slba * emu->ms, nlb * emu->ms);
}

/* msync a file-backed range (the start rounded down to its page). */
static void sync_range(const uint8_t *p, uint64_t len)
{
	uintptr_t a = (uintptr_t)p & ~(uintptr_t)PAGE_MASK_;

	if (len != 0 && msync((void *)a, (size_t)len + ((uintptr_t)p - a), MS_SYNC) != 0)
		log_warn("emu: msync: %s", strerror(errno));
}

void emu_media_sync(struct pnvme_emu *emu, struct emu_ns *ns)
{
	if (emu->file_map == NULL)
		return;
	sync_range(ns->media, ns->bytes);
	if (ns->meta != NULL)
		sync_range(ns->meta, ns->meta_bytes);
}

/*
 * One block's metadata as the host sees it, to and from the medium. On a PI
 * namespace the tuple is kept inverted, so that zero-filled media (never
 * written, deallocated, a new backing file) reads as the all-ones tuple of a
 * deallocated block.
 */
static void meta_load(const struct pnvme_emu *emu, const struct emu_ns *ns, uint64_t lba,
		      uint8_t *mb)
{
	memcpy(mb, ns->meta + lba * emu->ms, emu->ms);
	if (emu->cfg.pi)
		for (unsigned k = 0; k < EMU_PI_SIZE; k++)
			mb[emu->pif.pil + k] ^= 0xffu;
}

static void meta_store(const struct pnvme_emu *emu, struct emu_ns *ns, uint64_t lba,
		       const uint8_t *mb)
{
	uint8_t *m = ns->meta + lba * emu->ms;

	memcpy(m, mb, emu->ms);
	if (emu->cfg.pi)
		for (unsigned k = 0; k < EMU_PI_SIZE; k++)
			m[emu->pif.pil + k] ^= 0xffu;
}

static struct emu_ns *ns_get(struct pnvme_emu *emu, uint32_t nsid)
{
	if (!emu_ns_active(emu, nsid))
		return NULL;
	return &emu->ns[nsid - 1];
}

/* ------------------------------------------------------------------------ */
/* NVM command set (NVM 1.0 §3)                                             */
/* ------------------------------------------------------------------------ */

static inline uint64_t cmd_slba(const struct pnvme_sqe *c)
{
	return (uint64_t)c->cdw10 | ((uint64_t)c->cdw11 << 32);
}

static inline uint32_t cmd_nlb(const struct pnvme_sqe *c)
{
	return PNVME_GET(c->cdw12, PNVME_RW_NLB) + 1u;
}

static inline bool lba_range_bad(const struct emu_ns *ns, uint64_t slba, uint64_t nlb)
{
	return slba >= ns->nlba || nlb > ns->nlba - slba;
}

/* PRINFO of a Read / Write / Write Zeroes: 0 on a namespace without PI (ignored there). */
static inline unsigned cmd_prinfo(const struct pnvme_emu *emu, const struct pnvme_sqe *c)
{
	return emu->cfg.pi ? (c->cdw12 >> EMU_PRINFO_SHIFT) & EMU_PRINFO_MASK : 0;
}

/*
 * Metadata bytes per block that cross the bus: none when PRACT = 1 and the
 * metadata is the 8-byte PI tuple alone (the controller inserts / strips it,
 * NVM 1.0 §5.3), else all of them.
 */
static inline uint32_t cmd_host_ms(const struct pnvme_emu *emu, const struct pnvme_sqe *c)
{
	if ((cmd_prinfo(emu, c) & EMU_PRINFO_PRACT) && emu->ms == EMU_PI_SIZE)
		return 0;
	return emu->ms;
}

/* A byte stream over a command's PRPs / SGL: copy any length, pulling segments as needed. */
struct prp_stream {
	struct prp_iter it;
	uint8_t *va;
	size_t n;
};

static uint16_t stream_copy(struct pnvme_emu *emu, struct prp_stream *x, uint8_t *buf,
			    size_t len, bool to_host)
{
	while (len) {
		size_t c;
		if (x->n == 0) {
			uint16_t st;
			if (x->it.left == 0)
				return ST_XFER_ERROR;
			st = emu_prp_next(emu, &x->it, &x->va, &x->n);
			if (st)
				return st;
		}
		c = len < x->n ? len : x->n;
		if (x->va == NULL) {            /* an SGL Bit Bucket: dropped */
			if (!to_host)
				return ST_SGL_TYPE;
		} else if (to_host) {
			memcpy(x->va, buf, c);
			x->va += c;
		} else {
			memcpy(buf, x->va, c);
			x->va += c;
		}
		x->n -= c;
		buf += c;
		len -= c;
	}
	return 0;
}

/*
 * NVM 1.0 §3.2.4 Read, §3.2.6 Write on a namespace with metadata (§5.2), block
 * by block. Extended LBAs (FLBAS bit 4): each block's metadata follows its
 * data in the PRP buffer. Separate: MPTR is one contiguous buffer (PSDT 0,
 * dword aligned) of nlb * ms bytes, translated whole. With PI (§5.3):
 * PRACT = 1 generates the tuple on a write (guard over the data, apptag
 * LBAT, reftag ILBRT + i, ILBRT alone for type 3) and, when ms = 8, moves no
 * metadata at all; PRACT = 0 checks what the host sent as PRCHK asks; reads
 * check the stored tuple as PRCHK asks. A failed check stops the command at
 * that block (the blocks before it were transferred).
 */
static uint16_t exec_rw_meta(struct pnvme_emu *emu, struct emu_req *req)
{
	const struct pnvme_sqe *c = &req->cmd;
	uint64_t slba = cmd_slba(c);
	uint32_t nlb = cmd_nlb(c), lba = emu->cfg.lba_size;
	bool write = c->opc == PNVME_NVM_WRITE, ext = emu->cfg.ext;
	unsigned prinfo = cmd_prinfo(emu, c), prchk = prinfo & EMU_PRCHK_MASK;
	bool pract = prinfo & EMU_PRINFO_PRACT;
	uint32_t hms = cmd_host_ms(emu, c);
	uint32_t ilbrt = c->cdw14;
	uint16_t lbat = (uint16_t)c->cdw15, lbatm = (uint16_t)(c->cdw15 >> 16);
	uint8_t *mbuf = NULL, *data = emu->scratch;
	uint8_t mb[64];
	struct prp_stream x;
	uint16_t st = 0;

	_Static_assert(sizeof(emu->scratch) >= 4096, "one block of data in scratch");
	req->err_lba = slba;
	/* NVM 1.0 §5.3: type 1 with reftag checking wants ILBRT = SLBA's low 32 bits */
	if (emu->cfg.pi == 1 && (prchk & EMU_PRCHK_REFTAG) && ilbrt != (uint32_t)slba)
		return ST_INVALID_PI;
	if (!ext && hms != 0) {
		if (c->mptr & 3u)
			return ST_INVALID_FIELD;
		mbuf = xlate(emu, c->mptr, (uint64_t)nlb * hms);
		if (mbuf == NULL)
			return ST_XFER_ERROR;
	}
	emu_prp_init(&x.it, c, (uint64_t)nlb * (lba + (ext ? hms : 0)));
	x.n = 0;
	for (uint32_t i = 0; i < nlb; i++) {
		uint64_t l = slba + i;
		uint8_t *media = req->ns->media + (l << emu->lba_shift);
		uint32_t rt = emu->cfg.pi == 3 ? ilbrt : ilbrt + i;
		uint8_t sc = 0;

		req->err_lba = l;
		if (write) {
			st = stream_copy(emu, &x, data, lba, false);
			if (st == 0 && ext && hms)
				st = stream_copy(emu, &x, mb, hms, false);
			if (st)
				return st;
			if (mbuf != NULL)
				memcpy(mb, mbuf + (size_t)i * hms, hms);
			if (hms == 0)
				memset(mb, 0, emu->ms);
			if (pract)
				emu_pi_generate(&emu->pif, data, mb, lbat, rt);
			else if (prchk)
				sc = emu_pi_check(&emu->pif, data, mb, prchk, lbat, lbatm, rt);
			if (sc)
				return ST_PI_ERROR(sc);
			memcpy(media, data, lba);
			meta_store(emu, req->ns, l, mb);
		} else {
			meta_load(emu, req->ns, l, mb);
			if (prchk)
				sc = emu_pi_check(&emu->pif, media, mb, prchk, lbat, lbatm, rt);
			if (sc)
				return ST_PI_ERROR(sc);
			st = stream_copy(emu, &x, media, lba, true);
			if (st == 0 && ext && hms)
				st = stream_copy(emu, &x, mb, hms, true);
			if (st)
				return st;
			if (mbuf != NULL)
				memcpy(mbuf + (size_t)i * hms, mb, hms);
		}
	}
	req->err_lba = 0;
	if (write) {
		emu->host_writes++;
		emu->sectors_written += ((uint64_t)nlb * lba) >> 9;
		emu->st.write_bytes += (uint64_t)nlb * lba;
	} else {
		emu->host_reads++;
		emu->sectors_read += ((uint64_t)nlb * lba) >> 9;
		emu->st.read_bytes += (uint64_t)nlb * lba;
	}
	return 0;
}

/* NVM 1.0 §3.2.4 Read, §3.2.6 Write: data between media and the PRPs (or SGL). */
static uint16_t exec_rw(struct pnvme_emu *emu, struct emu_req *req)
{
	uint64_t slba = cmd_slba(&req->cmd);
	uint64_t len = (uint64_t)cmd_nlb(&req->cmd) << emu->lba_shift;
	uint8_t *media = req->ns->media + (slba << emu->lba_shift);
	bool write = req->cmd.opc == PNVME_NVM_WRITE;
	bool discard = emu->cfg.discard;
	struct prp_iter it;

	emu_prp_init(&it, &req->cmd, len);
	while (it.left) {
		uint8_t *va;
		size_t n;
		uint16_t st = emu_prp_next(emu, &it, &va, &n);
		if (unlikely(st)) {
			req->err_lba = slba;
			return st;
		}
		if (write) {
			if (unlikely(va == NULL))       /* Bit Bucket: refused for writes */
				return ST_SGL_TYPE;
			if (likely(!discard))
				memcpy(media, va, n);
		} else if (likely(va != NULL)) {        /* NULL: an SGL Bit Bucket */
			if (unlikely(discard))
				memset(va, 0, n);       /* null device: zeroes */
			else
				memcpy(va, media, n);
		}
		media += n;
	}
	if (write) {
		emu->host_writes++;
		emu->sectors_written += len >> 9;
		emu->st.write_bytes += len;
	} else {
		emu->host_reads++;
		emu->sectors_read += len >> 9;
		emu->st.read_bytes += len;
	}
	return 0;
}

/*
 * NVM 1.0 §3.2.8 Write Zeroes: zeroes whether DEAC asks to deallocate or not.
 * Metadata other than PI reads as zeroes afterwards; the PI tuple is
 * generated (PRACT = 1: guard of the zeroes, apptag LBAT, reftag ILBRT + i or
 * ILBRT for type 3) or all zeroes (PRACT = 0). PRCHK must be 0 (else Invalid
 * Protection Information, as QEMU's controller answers).
 */
static uint16_t exec_write_zeroes(struct pnvme_emu *emu, struct emu_req *req)
{
	const struct pnvme_sqe *c = &req->cmd;
	uint64_t slba = cmd_slba(c);
	uint32_t nlb = cmd_nlb(c);
	unsigned prinfo = cmd_prinfo(emu, c);

	if (prinfo & EMU_PRCHK_MASK)
		return ST_INVALID_PI;
	if (emu->cfg.discard)
		return 0; /* null device: nothing was ever written */
	media_zero(emu, req->ns, slba << emu->lba_shift, (uint64_t)nlb << emu->lba_shift);
	meta_zero(emu, req->ns, slba, nlb);
	if (emu->cfg.pi != 0) {
		uint8_t mb[64];
		memset(emu->scratch, 0, emu->cfg.lba_size);
		for (uint32_t i = 0; i < nlb; i++) {
			memset(mb, 0, emu->ms);
			if (prinfo & EMU_PRINFO_PRACT)
				emu_pi_generate(&emu->pif, emu->scratch, mb, (uint16_t)c->cdw15,
						emu->cfg.pi == 3 ? c->cdw14 : c->cdw14 + i);
			meta_store(emu, req->ns, slba + i, mb);
		}
	}
	return 0;
}

/* NVM 1.0 §3.2.3 Dataset Management: ranges come from the data buffer. */
static uint16_t exec_dsm(struct pnvme_emu *emu, struct emu_req *req)
{
	uint32_t nr = PNVME_GET(req->cmd.cdw10, PNVME_DSM_NR) + 1u;
	const struct pnvme_dsm_range *r = (const struct pnvme_dsm_range *)emu->scratch;
	uint16_t st;

	_Static_assert(sizeof(emu->scratch) >= PNVME_DSM_MAX_RANGES * sizeof(*r), "DSM scratch");
	st = emu_prp_from_host(emu, req, emu->scratch, (uint64_t)nr * sizeof(*r));
	if (st)
		return st;
	for (uint32_t i = 0; i < nr; i++) {
		if (lba_range_bad(req->ns, r[i].slba, r[i].nlb) && r[i].nlb != 0) {
			req->err_lba = r[i].slba;
			return ST_LBA_RANGE;
		}
	}
	if (!(req->cmd.cdw11 & PNVME_DSM_AD) || emu->cfg.discard)
		return 0;
	/* deallocated blocks read back as zeroes (Identify Namespace DLFEAT) */
	for (uint32_t i = 0; i < nr; i++) {
		if (r[i].nlb) {
			media_zero(emu, req->ns, r[i].slba << emu->lba_shift,
				   (uint64_t)r[i].nlb << emu->lba_shift);
			meta_zero(emu, req->ns, r[i].slba, r[i].nlb);
		}
	}
	return 0;
}

/* NVM 1.0 §3.2.2 Flush (Base 2.0 §7.1); NSID FFFFFFFFh flushes every namespace. */
static uint16_t exec_flush(struct pnvme_emu *emu, struct emu_req *req)
{
	if (req->ns != NULL) {
		emu_media_sync(emu, req->ns);
	} else {
		for (uint32_t i = 0; i < emu->cfg.nr_ns; i++)
			emu_media_sync(emu, &emu->ns[i]);
	}
	return 0;
}

/* Parse an I/O command: validate fields, pick the execute function. */
uint16_t emu_parse_io(struct pnvme_emu *emu, struct emu_req *req)
{
	const struct pnvme_sqe *c = &req->cmd;
	uint64_t slba, len;
	uint32_t nlb;

	/* Base 2.0 §8.21: no I/O while a sanitize operation runs */
	if (unlikely(emu->san_busy))
		return ST_SANITIZING;
	switch (c->opc) {
	case PNVME_NVM_READ:
	case PNVME_NVM_WRITE:
		req->ns = ns_get(emu, c->nsid);
		if (unlikely(req->ns == NULL))
			return ST_INVALID_NS;
		slba = cmd_slba(c);
		nlb = cmd_nlb(c);
		if (unlikely(emu->ms != 0)) {
			/* MDTS counts the metadata only when it is in the data buffer */
			uint64_t per = emu->cfg.lba_size + (emu->cfg.ext ? cmd_host_ms(emu, c) : 0);
			len = (uint64_t)nlb * per;
			if (len > emu->max_xfer)
				return ST_INVALID_FIELD;
			req->execute = exec_rw_meta;
		} else {
			len = (uint64_t)nlb << emu->lba_shift;
			if (unlikely(len > emu->max_xfer))
				return ST_INVALID_FIELD;
			req->execute = exec_rw;
		}
		if (unlikely(lba_range_bad(req->ns, slba, nlb))) {
			req->err_lba = slba;
			return ST_LBA_RANGE;
		}
		/* An SGL (PSDT 01b) is checked whole before data moves (emu_sgl.c). */
		if (unlikely(c->flags != 0))
			return emu_sgl_check(emu, c, len);
		return 0;
	case PNVME_NVM_WRITE_ZEROES:
		req->ns = ns_get(emu, c->nsid);
		if (req->ns == NULL)
			return ST_INVALID_NS;
		slba = cmd_slba(c);
		if (lba_range_bad(req->ns, slba, cmd_nlb(c))) {
			req->err_lba = slba;
			return ST_LBA_RANGE;
		}
		req->execute = exec_write_zeroes;
		return 0;
	case PNVME_NVM_DSM:
		req->ns = ns_get(emu, c->nsid);
		if (req->ns == NULL)
			return ST_INVALID_NS;
		req->execute = exec_dsm;
		if (c->flags != 0)
			return emu_sgl_check(emu, c, (uint64_t)(PNVME_GET(c->cdw10, PNVME_DSM_NR) +
								 1u) * sizeof(struct pnvme_dsm_range));
		return 0;
	case PNVME_NVM_FLUSH:
		if (c->nsid != 0xffffffffu) {
			req->ns = ns_get(emu, c->nsid);
			if (req->ns == NULL)
				return ST_INVALID_NS;
		}
		req->execute = exec_flush;
		return 0;
	default:
		return ST_INVALID_OPC;
	}
}

/*
 * Namespace media. RAM: one anonymous mapping per namespace, and one for its
 * metadata. File: the namespaces' data back to back (ns * size bytes), then
 * their metadata back to back (ns * nlba * ms bytes), nlba * ms per namespace.
 */
int emu_media_open(struct pnvme_emu *emu)
{
	const struct pnvme_emu_config *c = &emu->cfg;
	uint64_t meta = c->ns_size / c->lba_size * c->ms;
	uint64_t total = (c->ns_size + meta) * c->nr_ns;

	if (total > SIZE_MAX)
		return pnvme_fail(-ENOMEM, "emu: namespaces too large");
	if (c->file[0] != '\0') {
		struct stat sb;
		int fd = open(c->file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return pnvme_fail(-errno, "emu: open %s: %s", c->file, strerror(errno));
		emu->fd = fd;
		if (fstat(fd, &sb) != 0)
			return pnvme_fail(-errno, "emu: stat %s: %s", c->file, strerror(errno));
		if ((uint64_t)sb.st_size < total && ftruncate(fd, (off_t)total) != 0)
			return pnvme_fail(-errno, "emu: grow %s: %s", c->file, strerror(errno));
		void *p = mmap(NULL, (size_t)total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			return pnvme_fail(-errno, "emu: mmap %s: %s", c->file, strerror(errno));
		emu->file_map = p;
		emu->file_len = (size_t)total;
		for (uint32_t i = 0; i < c->nr_ns; i++) {
			emu->ns[i].media = (uint8_t *)p + (size_t)(c->ns_size * i);
			if (meta != 0)
				emu->ns[i].meta = (uint8_t *)p + (size_t)(c->ns_size * c->nr_ns) +
						  (size_t)(meta * i);
		}
	} else {
		for (uint32_t i = 0; i < c->nr_ns; i++) {
			void *p = mmap(NULL, (size_t)c->ns_size, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (p == MAP_FAILED)
				return pnvme_fail(-ENOMEM, "emu: no memory for namespace %u", i + 1);
			emu->ns[i].media = p;
			if (meta == 0)
				continue;
			p = mmap(NULL, (size_t)meta, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (p == MAP_FAILED)
				return pnvme_fail(-ENOMEM, "emu: no memory for namespace %u metadata",
						  i + 1);
			emu->ns[i].meta = p;
		}
	}
	emu->meta_cap = meta;
	for (uint32_t i = 0; i < c->nr_ns; i++) {
		emu->ns[i].bytes = c->ns_size;
		emu->ns[i].nlba = c->ns_size >> emu->lba_shift;
		emu->ns[i].meta_bytes = meta;
	}
	return 0;
}

/*
 * Format NVM (Base 2.0 §5.23) of every namespace to LBA format `idx`: the
 * namespaces keep their size in bytes; metadata is reallocated (RAM) or
 * reused from the file's metadata area when it fits, and reads as
 * deallocated; data is zeroed with a secure erase (SES 1 or 2), else kept.
 */
uint16_t emu_media_format(struct pnvme_emu *emu, uint32_t idx, bool mset, uint32_t pi,
			  bool pil, uint32_t ses)
{
	uint32_t lbads = PNVME_GET(emu->lbaf[idx], PNVME_LBAF_LBADS);
	uint32_t ms = PNVME_GET(emu->lbaf[idx], PNVME_LBAF_MS);
	uint64_t nlba = emu->cfg.ns_size >> lbads, meta = nlba * ms;
	uint32_t n = emu->cfg.nr_ns;
	uint8_t **nm = NULL;

	if (emu->file_map != NULL && meta > emu->meta_cap)
		return ST_INVALID_FORMAT;
	if (emu->file_map == NULL && meta != 0) {
		/* new metadata mappings first, so a failure leaves the old format whole */
		nm = calloc(n, sizeof(*nm));
		if (nm == NULL)
			return ST_INTERNAL;
		for (uint32_t i = 0; i < n; i++) {
			void *p = mmap(NULL, (size_t)meta, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (p == MAP_FAILED) {
				while (i-- > 0)
					munmap(nm[i], (size_t)meta);
				free(nm);
				return ST_INTERNAL;
			}
			nm[i] = p;
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		struct emu_ns *ns = &emu->ns[i];
		if (emu->file_map == NULL) {
			if (ns->meta != NULL)
				munmap(ns->meta, (size_t)ns->meta_bytes);
			ns->meta = nm != NULL ? nm[i] : NULL;
		} else if (ns->meta != NULL) {
			zero_range(emu, ns->meta, 0, meta);
		}
		ns->meta_bytes = meta;
		ns->nlba = nlba;
		if (ses != PNVME_SES_NONE)
			media_zero(emu, ns, 0, ns->bytes);
		emu_media_sync(emu, ns);
	}
	free(nm);
	emu->lba_shift = lbads;
	emu->ms = ms;
	emu->cfg.lba_size = 1u << lbads;
	emu->cfg.ms = ms;
	emu->cfg.ext = mset && ms != 0;
	emu->cfg.pi = pi;
	emu->cfg.pi_first = pil && pi != 0;
	emu->pif.type = pi;
	emu->pif.lba_size = 1u << lbads;
	emu->pif.ms = ms;
	emu->pif.pil = emu->cfg.pi_first || ms < EMU_PI_SIZE ? 0 : ms - EMU_PI_SIZE;
	emu->fmt_idx = idx;
	log_debug("emu: formatted: LBA format %u (%u + %u bytes%s, pi %u), ses %u", idx,
		  1u << lbads, ms, emu->cfg.ext ? " extended" : "", pi, ses);
	return 0;
}

/* Fill [0, len) of `p` with the 32-bit pattern `pat`, little-endian. */
static void fill_pattern(uint8_t *p, uint64_t len, uint32_t pat)
{
	uint8_t b[4] = { (uint8_t)pat, (uint8_t)(pat >> 8), (uint8_t)(pat >> 16),
			 (uint8_t)(pat >> 24) };

	for (uint64_t i = 0; i < len; i++)
		p[i] = b[i & 3u];
}

/*
 * Sanitize's effect on the media (Base 2.0 §8.21): block and crypto erase
 * zero the data; overwrite leaves the pattern of its last pass (inverted
 * when OIPBP inverts between passes and the count is even). Metadata of
 * every block reads as deallocated.
 */
void emu_media_sanitize(struct pnvme_emu *emu, uint32_t cdw10, uint32_t ovrpat)
{
	uint32_t sanact = PNVME_GET(cdw10, PNVME_SANITIZE_SANACT);
	uint32_t passes = PNVME_GET(cdw10, PNVME_SANITIZE_OWPASS);

	if (passes == 0)
		passes = 16;
	if ((cdw10 & PNVME_SANITIZE_OIPBP) && passes % 2 == 0)
		ovrpat = ~ovrpat;
	for (uint32_t i = 0; i < emu->cfg.nr_ns; i++) {
		struct emu_ns *ns = &emu->ns[i];
		if (sanact == PNVME_SANACT_OVERWRITE)
			fill_pattern(ns->media, ns->bytes, ovrpat);
		else
			media_zero(emu, ns, 0, ns->bytes);
		if (ns->meta != NULL)
			zero_range(emu, ns->meta, 0, ns->meta_bytes);
		emu_media_sync(emu, ns);
	}
}

static int media_check(struct pnvme_emu *emu, uint32_t nsid, uint64_t off, size_t len,
		       const void *buf)
{
	if (emu == NULL || (buf == NULL && len != 0))
		return pnvme_fail(-EINVAL, "emu media: NULL %s", emu == NULL ? "emulator" : "buffer");
	if (nsid == 0 || nsid > emu->cfg.nr_ns)
		return pnvme_fail(-EINVAL, "emu media: bad nsid %u", nsid);
	if (off > emu->cfg.ns_size || len > emu->cfg.ns_size - off)
		return pnvme_fail(-EINVAL, "emu media: range beyond namespace %u", nsid);
	return 0;
}

int pnvme_emu_media_read(struct pnvme_emu *emu, uint32_t nsid, uint64_t off, void *buf,
			 size_t len)
{
	int rc = media_check(emu, nsid, off, len, buf);
	if (rc != 0)
		return rc;
	emu_lock(emu);
	memcpy(buf, emu->ns[nsid - 1].media + off, len);
	emu_unlock(emu);
	return 0;
}

int pnvme_emu_media_write(struct pnvme_emu *emu, uint32_t nsid, uint64_t off,
			  const void *buf, size_t len)
{
	int rc = media_check(emu, nsid, off, len, buf);
	if (rc != 0)
		return rc;
	emu_lock(emu);
	memcpy(emu->ns[nsid - 1].media + off, buf, len);
	emu_unlock(emu);
	return 0;
}

static int meta_check(struct pnvme_emu *emu, uint32_t nsid, uint64_t lba, uint32_t nlb)
{
	if (emu == NULL || nsid == 0 || nsid > emu->cfg.nr_ns)
		return pnvme_fail(-EINVAL, "emu metadata: bad nsid %u", nsid);
	if (emu->ms == 0)
		return pnvme_fail(-EINVAL, "emu metadata: the namespaces have none (ms=0)");
	if (lba > emu->ns[nsid - 1].nlba || nlb > emu->ns[nsid - 1].nlba - lba)
		return pnvme_fail(-EINVAL, "emu metadata: blocks beyond namespace %u", nsid);
	return 0;
}

int pnvme_emu_meta_read(struct pnvme_emu *emu, uint32_t nsid, uint64_t lba, void *buf,
			uint32_t nlb)
{
	int rc = meta_check(emu, nsid, lba, nlb);
	if (rc != 0)
		return rc;
	emu_lock(emu);
	for (uint32_t i = 0; i < nlb; i++)
		meta_load(emu, &emu->ns[nsid - 1], lba + i, (uint8_t *)buf + (size_t)i * emu->ms);
	emu_unlock(emu);
	return 0;
}

int pnvme_emu_meta_write(struct pnvme_emu *emu, uint32_t nsid, uint64_t lba, const void *buf,
			 uint32_t nlb)
{
	int rc = meta_check(emu, nsid, lba, nlb);
	if (rc != 0)
		return rc;
	emu_lock(emu);
	for (uint32_t i = 0; i < nlb; i++)
		meta_store(emu, &emu->ns[nsid - 1], lba + i,
			   (const uint8_t *)buf + (size_t)i * emu->ms);
	emu_unlock(emu);
	return 0;
}
