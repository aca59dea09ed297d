/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pnvme/emu.h - the emulated NVMe controller ("mock BAR").
 *
 * An in-process NVMe controller: its registers are plain memory with the real
 * BAR0 layout, it consumes doorbell writes, fetches SQEs from host memory,
 * parses them the way Linux's nvmet target does (a parse step per command set
 * that validates fields and picks an execute function), posts CQEs with the
 * phase bit, and reaches host memory only through an IOVA table filled by the
 * library (like an IOMMU: a wrong IOVA yields Data Transfer Error, never a
 * stray access). Namespaces are RAM- or file-backed.
 *
 * It runs either on its own thread (mode=thread: spins while busy, backs off
 * to sleeping when idle) or only when stepped (mode=step), which makes unit
 * tests deterministic: the library steps it whenever it busy-waits.
 *
 * Spec string (every option has a default; "emu" alone is valid):
 *   emu:size=64M,lba=512,ns=1,mqes=1023,mdts=5,dstrd=0,to=4,nq=64,
 *       dbbuf=1,ms=0,ext=0,pi=0,pil=0,format=0,lbafs=1,sanicap=0,
 *       sansteps=0,sgl=1,cmb=0,mode=thread,file=PATH,sn=...,mn=...
 *   size   namespace size, bytes with optional K/M/G/T suffix (default 64M);
 *          must be a multiple of the LBA size
 *   lba    LBA data size: 512 or 4096 (also 1024, 2048) (default 512)
 *   ns     number of namespaces, 1..32 (default 1), NSIDs 1..ns
 *   mqes   CAP.MQES, 0's based maximum queue entries, 1..65535 (default 1023)
 *   mdts   Identify MDTS, 0 (no limit) or 1..15: max transfer 2^mdts * 4 KiB (default 5)
 *   dstrd  CAP.DSTRD doorbell stride, 0..8 (default 0)
 *   to     CAP.TO in 500 ms units, 1..255 (default 4)
 *   nq     I/O queue pairs the controller supports, 1..1024 (default 64)
 *   dbbuf  1: offer Doorbell Buffer Config (OACS bit 8, NVMe Base 2.0 §5.8),
 *          shadow doorbells with EventIdx for the I/O queues; 0: not offered,
 *          opcode 7Ch is an Invalid Opcode (default 1, as QEMU's controller);
 *          2: as 1, but a queue being created leaves its EventIdx entries as it
 *          finds them, as QEMU 7.2 does (the host must zero them: a stale
 *          EventIdx from an earlier queue with that id would silence its
 *          first doorbells)
 *   ms     metadata bytes per LBA: 0, 8, 16, 32 or 64 (default 0: none);
 *          Identify Namespace LBAF0.MS
 *   ext    1: metadata in extended LBAs, right after each LBA's data in the
 *          data buffer (FLBAS bit 4, MC bit 0); 0: a separate buffer at MPTR
 *          (MC bit 1) (default 0; ext=1 needs ms > 0)
 *   pi     end-to-end protection type, DPS bits 2:0: 0 none, 1, 2 or 3
 *          (default 0; needs ms >= 8); DPC reports that type only
 *   pil    PI location, DPS bit 3: 0 = last 8 bytes of the metadata (default,
 *          as QEMU's pil=0), 1 = first 8 bytes (needs pi)
 *   format 1: offer Format NVM (OACS bit 1; FNA 7h: a format applies to
 *          every namespace, secure erase too, crypto erase supported) (default 0)
 *   lbafs  LBA formats advertised, 1..64 (default 8 with format=1, else 1).
 *          Format 0 is the one configured (lba, ms); the others follow from
 *          (512,0) (512,8) (512,16) (512,64) (4096,0) (4096,8) (4096,16)
 *          (4096,64) (1024,0) (2048,0) (512,32) (4096,32) (1024,8) (2048,8)
 *          (1024,16) (2048,16), the configured one skipped, then the same
 *          list again with relative performance 1, 2, 3 (so format=1 on the
 *          default 512-byte namespace lists QEMU's eight: 4096+8 is index 5)
 *   sanicap Identify SANICAP, bits 0 crypto erase, 1 block erase, 2 overwrite
 *          (0..7; default 0: no Sanitize command, no Sanitize Status log)
 *   sansteps a sanitize operation stays in progress for this many further
 *          admin commands (each one advances SPROG by 1/N; default 0: it
 *          completes before the Sanitize command does)
 *   sgl    SGL support (Identify SGLS, see "SGLs" below): 0 none (PSDT 01b is an
 *          Invalid Field), 1 SGLs with no alignment requirement (default, as
 *          QEMU's controller), 2 SGLs whose Data Blocks need dword-aligned
 *          addresses and lengths (SGLS 10b)
 *   cmb    Controller Memory Buffer of this many MiB, 0..256 (default 0: none;
 *          see "CMB" below); submission queues only (CMBSZ.SQS)
 *   mode   thread | step (default thread)
 *   file   back the namespaces with this file (created if missing, grown to
 *          ns * (size + size / lba * ms)); default is anonymous RAM
 *   sn, mn serial and model number strings
 *   aen_ms a scripted event for tests of event consumers (pnvme watch): this
 *          many ms after the host first enables namespace attribute notices,
 *          namespace `ns` (the last) is removed, raising a Namespace
 *          Attribute Changed notice (see "Asynchronous events"); 0..600000,
 *          default 0 (never)
 *   discard 1: a null device: Read returns zeroes, Write, Write Zeroes and
 *          Dataset Management succeed without touching the media, Flush
 *          succeeds (default 0; needs no file and ms=0)
 *   bs     another name for lba
 * Errors: -EINVAL with pnvme_last_error() naming the bad option.
 *
 * The null device ("null", "null:size=1G,bs=512", pnvme_ctrl_open() takes it
 * as an address): the same spec with other defaults, discard=1, mode=step,
 * size=1G, sn PNVME-NULL-0001, mn "pnvme null device". No thread: nothing
 * runs unless stepped, so a command completes inline in the thread that
 * steps it (pnvme_emu_step(pnvme_ctrl_emu(ctrl)) after submitting, as
 * pnvme-perf and pnvme-tgt do; the library's synchronous calls step it
 * themselves while they wait). mode=thread gives it the emulator's thread.
 *
 * Metadata (ms > 0, NVM Command Set 1.0 §5.2): Read and Write move nlb *
 * (lba + ms) bytes through the PRPs with ext=1 (data of LBA 0, its metadata,
 * data of LBA 1, ...; MDTS counts it all), or nlb * lba bytes through the
 * PRPs and nlb * ms bytes at MPTR with ext=0: one contiguous buffer (PSDT 0),
 * dword aligned (else Invalid Field in Command), translated whole through the
 * IOVA table (a miss, or a buffer running past its mapping, is a Data
 * Transfer Error). Metadata is stored per LBA: RAM mode in a second anonymous
 * mapping per namespace; with file=, after all the namespaces' data (ns i's
 * metadata at ns * size + i * (size / lba * ms)). Deallocated blocks (never
 * written, Dataset Management deallocate) read metadata as zeroes and the PI
 * tuple as all ones (FFh), which disables checking.
 *
 * Protection information (pi=1..3, NVM 1.0 §5.3): an 8-byte tuple in the
 * metadata, big-endian: guard = CRC-16 T10-DIF (polynomial 8BB7h, initial 0,
 * not reflected) over the LBA data, and over the metadata bytes in front of
 * the tuple when pil=0 and ms > 8; application tag; reference tag. CDW12
 * PRINFO bits 29:26 = PRACT, PRCHK guard, apptag, reftag; CDW14 = ILBRT;
 * CDW15 = LBATM << 16 | LBAT. Write with PRACT=1: the controller generates
 * the tuple (apptag LBAT, reftag ILBRT + i for block i, ILBRT for every
 * block with type 3), and with ms=8 no metadata crosses the bus (extended:
 * nlb * lba bytes in the PRPs; separate: MPTR unused). Write with PRACT=0:
 * the host's tuple is checked as PRCHK asks, then stored. Read: the stored
 * tuple is checked as PRCHK asks; PRACT=1 with ms=8 strips it (nothing
 * transferred). A tuple with apptag FFFFh (types 1, 2), or FFFFh and reftag
 * FFFFFFFFh (type 3), is not checked. Apptag check: (tag & LBATM) == (LBAT &
 * LBATM); reftag check: tag == expected reftag as above (type 3 too, as
 * QEMU). Failures complete with SCT 2h (Media and Data Integrity), SC 82h
 * guard, 83h application tag, 84h reference tag check error, DNR set; the
 * blocks before the failing one were transferred. Type 1 with PRCHK reftag
 * and ILBRT != SLBA bits 31:0: Invalid Protection Information (SCT 1h, SC
 * 81h, DNR). Write Zeroes: data and non-PI metadata zeroes; PRACT=1
 * generates the tuple for the zeroes (guard 0, apptag LBAT, reftag as
 * above), PRACT=0 stores an all-zero tuple; PRCHK != 0 is Invalid Protection
 * Information (as QEMU). PRINFO is ignored when pi=0.
 *
 * Shadow doorbells (dbbuf=1): Doorbell Buffer Config takes PRP1 = the shadow
 * doorbell page and PRP2 = the EventIdx page, each one 4 KiB page, page
 * aligned and distinct (else Invalid Field in Command), inside the IOVA table
 * (else Data Transfer Error). It is accepted with or without I/O queues;
 * queues that exist are attached at once. Entry layout: the doorbell
 * registers' without the 1000h offset, SQ y tail at (2y) * (4 << DSTRD) bytes,
 * CQ y head at (2y + 1) * (4 << DSTRD); a queue whose entry lies beyond the
 * page, and the admin queue, stay on the registers. Every step reads both the
 * register and the shadow entry; once the host has written a queue's shadow
 * entry, that entry is the authority (a register value may be older). After
 * consuming SQ entries the controller writes EventIdx = the SQ entry consumed
 * up to; after seeing a CQ head, EventIdx = that head; then it re-reads the
 * shadow entry behind a full barrier, so no update is lost. A new queue
 * zeroes nothing in the host's page (the host zeroes its entries; a stale
 * value found there at creation is not taken as a doorbell). CC.EN = 0
 * forgets the configuration.
 *
 * Format NVM (format=1, Base 2.0 §5.23): formats every namespace (FNA bit
 * 0) to LBA format LBAFL | LBAFU << 4 with MSET, PI, PIL; the namespace keeps
 * its size in bytes (NSZE = size / new LBA size). Metadata reads as
 * deallocated afterwards (zeroes, PI tuple all ones). Data: SES 1 (user data
 * erase) and SES 2 (crypto erase) zero it, SES 0 leaves the bytes as they
 * were. Refused with Invalid Format (SCT 1h SC 0Ah) for an index beyond
 * NLBAF, PI with less than 8 bytes of metadata, or (file=) more metadata than
 * the file holds after the data (the metadata area is sized for the format
 * the file was created with); Invalid Field for SES > 2; Invalid Namespace
 * for an inactive NSID other than FFFFFFFFh. The new format shows in
 * pnvme_emu_config() (lba_size, ms, ext, pi, pi_first).
 *
 * Sanitize (sanicap != 0, Base 2.0 §5.24, §8.21): an action SANICAP lacks is
 * Invalid Field. Block and crypto erase zero data and metadata of every
 * namespace; overwrite fills the data with OVRPAT (CDW11, little-endian; the
 * last of OWPASS passes inverted when OIPBP asks for it and the count is
 * even) and zeroes metadata. Exit failure mode succeeds doing nothing (an
 * emulated sanitize never fails). While one is in progress (sansteps > 0):
 * SSTAT says in progress with SPROG = done / sansteps * 65536, every I/O
 * command and any Format NVM or Sanitize other than exit failure complete
 * with Sanitize In Progress (SC 1Dh, DNR); other admin commands run and each
 * advances it by one step. Sanitize Status log (81h): SPROG FFFFh once done,
 * SSTAT completed (overwrite: passes in bits 7:3), SCDW10, estimates
 * FFFFFFFFh (none). Firmware Slot log (03h): AFI 1, slot 1 = Identify FR.
 *
 * SGLs (sgl=1|2, Base 2.0 §4.1.2): Read, Write and Dataset Management on I/O
 * queues take PSDT 01b (MPTR stays one contiguous buffer); Admin commands and
 * PSDT 10b / 11b are Invalid Field. SGLS reports bits 1:0 = sgl and bit 16
 * (Bit Bucket). SGL Descriptor 1 (SQE bytes 24..39) is a Data Block, a Bit
 * Bucket, or a Segment / Last Segment descriptor; segments chain through
 * their last descriptor, a Last Segment holds Data Blocks and Bit Buckets
 * only. Accepted: Data Block (type 0h) and Segment / Last Segment (2h / 3h)
 * with subtype Address (0h); Bit Bucket (1h) on a Read only (the bytes are
 * dropped); any alignment, except sgl=2's dword Data Blocks; zero-length
 * Data Blocks. The whole SGL is checked before any data moves, every
 * address (data and segments) through the IOVA table: other types or
 * subtypes, and a Bit Bucket in a Write or DSM, are SGL Descriptor Type
 * Invalid (SC 11h); a segment length of 0 or not a multiple of 16, or a
 * segment descriptor inside a Last Segment, Invalid SGL Segment Descriptor
 * (0Dh); a segment descriptor before the end of its segment, or more than
 * 4096 descriptors in one command (a looping chain), Invalid Number of SGL
 * Descriptors (0Eh); lengths that add up to less or more than the transfer,
 * Data SGL Length Invalid (0Fh); sgl=2 and a Data Block address or length
 * not a multiple of 4, SGL Data Block Granularity Invalid (1Eh); an address
 * outside the table, Data Transfer Error (04h); all with DNR. Counted in
 * stats.sgl_commands.
 *
 * CMB (cmb=N, Base 2.0 §3.1.4.11-§3.1.4.14): CAP.CMBS = 1. CMBLOC and
 * CMBSZ read 0 until the host sets CMBMSC.CRE; then CMBLOC = BIR 2, offset
 * 0 (the CMB is all of an emulated BAR2, as in QEMU's controller), CQMMS,
 * CDPMLS, CDPCILS and CDMMMS set (an SQ in the CMB may pair with a CQ and
 * data in host memory); CMBSZ = SQS only, SZU 2 (1 MiB units), SZ = N.
 * CMBMSC.CMSE with CBA (any 4 KiB aligned address, as in QEMU) places the
 * CMB at [CBA, CBA + N MiB) of the controller's address space; a range that
 * wraps past 2^64 sets CMBSTS.CBAI and leaves the space disabled. The
 * emulator acts on a changed CMBMSC at its next step (and at each Create
 * I/O Queue), like QEMU on the low dword: write the high dword first.
 * Clearing CRE clears CMBLOC and CMBSZ and disables the space; a controller
 * reset (CC.EN = 0) leaves CMBMSC as it is. The host writes the CMB through
 * pnvme_emu_cmb() (the BAR2 mapping). Create I/O SQ with PRP1 in the space
 * reads its entries from the CMB, never through the IOVA table (CMB
 * addresses win over IOVA mappings for queue rings); an SQ running past the
 * CMB's end, and a CQ in the CMB (CQS = 0), complete with Invalid Use of
 * Controller Memory Buffer (SC 12h, DNR). With CMSE clear, PRP1 is an
 * ordinary IOVA. Data pointers are always IOVAs (RDS = WDS = LISTS = 0).
 *
 * Registers are shared memory: access them with 32-bit atomic loads and
 * stores (the library's own accessors acquire and release). Doorbell
 * registers belong to the host, the controller never writes them (not at
 * CC.EN changes, not at queue creation or deletion): it sees a write as a
 * value different from the last one it saw, and a queue it creates (the
 * admin queue at CC.EN = 1, an I/O queue at Create I/O Queue) starts from
 * the value the register holds then. So a host zeroes a queue's doorbell
 * registers before creating the queue, or its first write may repeat the
 * old value and go unseen (the library does this itself). A CQE's status
 * word (phase tag) is stored last, with release semantics.
 */
#ifndef PNVME_EMU_H
#define PNVME_EMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pnvme/api.h>

PNVME_BEGIN_DECLS

struct pnvme_emu;

/** Parsed spec (pnvme_emu_parse fills it; all sizes in bytes). */
struct pnvme_emu_config {
	uint64_t ns_size;
	uint32_t lba_size;
	uint32_t nr_ns;
	uint32_t mqes;       /* CAP.MQES, 0's based */
	uint32_t mdts;
	uint32_t dstrd;
	uint32_t to;
	uint32_t nr_io_queues;
	bool     threaded;
	char     file[256];  /* empty: RAM */
	char     sn[21];
	char     mn[41];
	bool     dbbuf;      /* offer Doorbell Buffer Config (OACS bit 8) */
	uint32_t ms;         /* metadata bytes per LBA: 0, 8, 16, 32 or 64 */
	bool     ext;        /* metadata in extended LBAs (FLBAS bit 4), else via MPTR */
	uint32_t pi;         /* end-to-end protection type (DPS 2:0): 0 none, 1..3 */
	bool     pi_first;   /* PI in the first 8 bytes of metadata (DPS bit 3), else last */
	/* (lba_size, ms, ext, pi, pi_first: the format in use; Format NVM changes them) */
	bool     format;     /* offer Format NVM (OACS bit 1) */
	uint32_t lbafs;      /* LBA formats advertised, 1..64 (NLBAF + 1) */
	uint32_t sanicap;    /* Identify SANICAP bits 2:0 (crypto, block, overwrite) */
	uint32_t sansteps;   /* admin commands a sanitize operation lasts (0: none) */
	uint32_t aen_ms;     /* scripted event: remove the last namespace this long after
	                        namespace notices are enabled (0: never) */
	uint32_t sgl;        /* Identify SGLS bits 1:0: 0 no SGLs, 1 SGLs (any alignment),
	                        2 SGLs with dword-granular Data Blocks */
	bool     dbbuf_stale_ei; /* dbbuf=2: a new queue's EventIdx entries are left as found */
	bool     discard;    /* null device: Read returns zeroes, Write / Write Zeroes /
	                        DSM leave the media alone ("null:" sets it) */
	uint32_t cmb;        /* Controller Memory Buffer size in MiB (0: none; see "CMB") */
};

/**
 * Parse an emulator spec ("emu" or "emu:k=v,..."; the "emu:" prefix is
 * optional; NULL means "emu") into `cfg`, starting from the defaults; or a
 * null device's ("null", "null:k=v,...": the null defaults, see above).
 * Returns 0 or -EINVAL (NULL cfg; pnvme_last_error() says which option and why).
 *
 * NULL emulator arguments: calls returning an errno refuse them with -EINVAL,
 * getters return NULL / false, void calls ignore them.
 */
int pnvme_emu_parse(const char *spec, struct pnvme_emu_config *cfg);

/**
 * Create an emulated controller from a spec string (see above). In thread mode
 * its thread starts at once. Returns 0, -EINVAL (bad spec), -ENOMEM, or the
 * negative errno of opening/growing the backing file.
 */
int pnvme_emu_create(const char *spec, struct pnvme_emu **out);

/** Stop the thread (if any) and free everything. NULL is ignored. */
void pnvme_emu_destroy(struct pnvme_emu *emu);

/**
 * Process whatever is pending once: register changes (CC.EN, CC.SHN), every
 * SQ doorbell, delayed completions. Returns the number of commands completed
 * (>= 0), or -EINVAL for NULL. Call from one thread at a time; in thread mode the emulator thread
 * also steps it (serialised by an internal lock).
 */
int pnvme_emu_step(struct pnvme_emu *emu);

/** True if the emulator runs on its own thread. */
bool pnvme_emu_threaded(const struct pnvme_emu *emu);

/** BAR0: the register window (registers + doorbells) and its length (see above). */
volatile void *pnvme_emu_bar(struct pnvme_emu *emu, size_t *len);

/**
 * BAR2: the Controller Memory Buffer (cmb=N), N MiB of memory the host
 * stores submission queue entries into, and its length; NULL (len 0)
 * without a CMB. Valid as long as the emulator.
 */
volatile void *pnvme_emu_cmb(struct pnvme_emu *emu, size_t *len);

/** The configuration the emulator was built with. */
const struct pnvme_emu_config *pnvme_emu_config(const struct pnvme_emu *emu);

/**
 * IOMMU table: let the device reach [vaddr, vaddr + len) at `iova`.
 * iova, vaddr and len must be 4 KiB aligned; overlapping IOVA ranges are
 * refused. Returns 0, -EINVAL, -EEXIST (overlap), -ENOMEM. Any thread.
 */
int pnvme_emu_map(struct pnvme_emu *emu, void *vaddr, uint64_t iova, size_t len);

/** Remove a mapping made with exactly this iova and len. Returns 0, -ENOENT or -EINVAL. */
int pnvme_emu_unmap(struct pnvme_emu *emu, uint64_t iova, size_t len);

/**
 * Direct access to namespace media for tests and tools: copy `len` bytes at
 * byte offset `off` of namespace `nsid`. Returns 0, -EINVAL (bad nsid/range, NULL buf).
 */
int pnvme_emu_media_read(struct pnvme_emu *emu, uint32_t nsid, uint64_t off, void *buf,
			 size_t len);
int pnvme_emu_media_write(struct pnvme_emu *emu, uint32_t nsid, uint64_t off,
			  const void *buf, size_t len);

/**
 * Direct access to the metadata of blocks [lba, lba + nlb) of namespace
 * `nsid`, ms bytes per block, as the host sees it (the PI tuple big-endian;
 * a deallocated block's tuple all FFh). Returns 0, -EINVAL (no metadata,
 * bad nsid or range). Any thread.
 */
int pnvme_emu_meta_read(struct pnvme_emu *emu, uint32_t nsid, uint64_t lba, void *buf,
			uint32_t nlb);
int pnvme_emu_meta_write(struct pnvme_emu *emu, uint32_t nsid, uint64_t lba, const void *buf,
			 uint32_t nlb);

/* ------------------------------------------------------------------------ */
/* Asynchronous events (NVMe Base 2.0 §5.2)                                 */
/*                                                                          */
/* The controller reports AERL 3 (four Asynchronous Event Requests held at  */
/* once), OAES bit 8 (namespace attribute notices), the Changed Namespace   */
/* List (log 04h, §5.16.1.5) and the SMART critical warning byte. An event  */
/* is raised only when the host enabled it with Set Features Asynchronous   */
/* Event Configuration (bit 8: namespace attribute notices; bits 7:0:       */
/* SMART critical warnings); the configuration is cleared by each           */
/* controller reset. An event completes a held request (DW0: type, info,    */
/* log page), or waits for the next one; once reported, events of its type  */
/* wait until the host reads the log page named with RAE clear, which also  */
/* clears the Changed Namespace List. Namespaces occupy slots 1..ns of the  */
/* spec; a removed one reads as inactive (Identify zeroes, not in the       */
/* active list, I/O Invalid Namespace) and keeps its media.                 */
/* ------------------------------------------------------------------------ */

/**
 * Namespace Attribute Changed, for tests: remove active namespace `nsid`,
 * add back a removed one (at its full size), or change an active one's size
 * to `nlba` blocks (1..the size the spec gave). Each records the NSID in
 * the Changed Namespace List and raises the notice. Returns 0 or -EINVAL
 * (NULL, NSID outside 1..ns or in the wrong state, size out of range).
 * Any thread.
 */
int pnvme_emu_ns_remove(struct pnvme_emu *emu, uint32_t nsid);
int pnvme_emu_ns_add(struct pnvme_emu *emu, uint32_t nsid);
int pnvme_emu_ns_resize(struct pnvme_emu *emu, uint32_t nsid, uint64_t nlba);

/**
 * Set the SMART / Health critical warning byte (PNVME_SMART_CW_* bits,
 * pnvme/spec.h). Bits newly set that the host enabled raise a SMART / Health
 * status event (information 02h spare, 01h temperature, else 00h
 * reliability; log page 02h). Returns 0 or -EINVAL. Any thread.
 */
int pnvme_emu_set_critical_warning(struct pnvme_emu *emu, uint8_t bits);

/* ------------------------------------------------------------------------ */
/* Fault injection                                                          */
/* ------------------------------------------------------------------------ */

enum pnvme_emu_fault_kind {
	PNVME_EMU_FAULT_NEVER_READY = 1, /* CSTS.RDY never becomes 1 after CC.EN=1 */
	PNVME_EMU_FAULT_CFS,             /* set CSTS.CFS now and stop processing */
	PNVME_EMU_FAULT_CFS_ON_ENABLE,   /* set CSTS.CFS instead of RDY at the next enable */
	PNVME_EMU_FAULT_ALL_ONES,        /* every register reads all ones (device gone) */
	/*
	 * DROP_CPL: execute matching commands but post no CQE. The command is
	 * done and forgotten (a lost completion), so an Abort of it reports
	 * "not aborted" (DW0 bit 0 = 1) and it never completes: only a
	 * controller reset (or deleting its SQ) ends it on the host side.
	 * DELAY_CPL: the completion is held, and an Abort of it succeeds (DW0
	 * bit 0 = 0): the held completion is posted at once with status Command
	 * Abort Requested. Deleting the SQ posts held ones as Aborted SQ Deleted;
	 * a controller reset discards them.
	 */
	PNVME_EMU_FAULT_DROP_CPL,        /* execute matching commands but post no CQE */
	PNVME_EMU_FAULT_DELAY_CPL,       /* hold matching completions for delay_us */
	PNVME_EMU_FAULT_STATUS,          /* complete matching commands with `status` */
	PNVME_EMU_FAULT_REORDER,         /* post each step's completions in reverse order */
	PNVME_EMU_FAULT_NO_SHUTDOWN,     /* ignore CC.SHN (SHST never completes) */
	/* Reliability faults (hostile or buggy devices) */
	PNVME_EMU_FAULT_IGNORE_ABORT,    /* Abort completes "not aborted" (DW0 bit 0 = 1), target untouched */
	PNVME_EMU_FAULT_CQE_BAD_CID,     /* matching completions carry a CID the host never used (0xfffe) */
	PNVME_EMU_FAULT_CQE_DUP,         /* matching completions are posted twice */
	PNVME_EMU_FAULT_CQE_BAD_SQHD,    /* matching completions report SQHD = SQ size + 5 */
	PNVME_EMU_FAULT_CQE_SQHD_BACK,   /* matching completions report SQHD one entry behind the last one */
	PNVME_EMU_FAULT_ID_LBADS_ZERO,   /* Identify Namespace: current LBA format has LBADS = 0 */
	PNVME_EMU_FAULT_ID_FLBAS_RANGE,  /* Identify Namespace: FLBAS index beyond NLBAF */
	PNVME_EMU_FAULT_ID_MDTS_HUGE,    /* Identify Controller: MDTS = 255 */
	PNVME_EMU_FAULT_ID_NN_HUGE,      /* Identify Controller NN = 0xffffffff; active list not ascending */
	PNVME_EMU_FAULT_MQES_ZERO,       /* CAP.MQES reads 0 (a 1-entry queue: unusable) */
	/*
	 * Details. ALL_ONES may be armed at any time (surprise removal): from
	 * then on the emulator touches no host memory (no fetch, no CQE, no
	 * data) until the fault is cleared and the host writes CC.EN = 0, which
	 * resets it (held and queued completions are lost). IGNORE_ABORT counts
	 * Abort commands only (its opc/qid match the Abort itself). CQE_BAD_SQHD / CQE_SQHD_BACK / CQE_BAD_CID change
	 * only the posted entry (the command itself ran). CQE_DUP posts the same
	 * entry in two consecutive CQ slots. ID_FLBAS_RANGE reports FLBAS 3 with
	 * NLBAF 0 and a plausible LBAF3, so only an NLBAF check catches it.
	 * ID_LBADS_ZERO zeroes LBADS of the format FLBAS selects. ID_MDTS_HUGE
	 * changes only the reported MDTS: the configured limit is still enforced.
	 * ID_NN_HUGE: active list is [highest, rest ascending..., lowest again],
	 * e.g. [1, 1] for one namespace, [3, 1, 2, 1] for three. MQES_ZERO shows
	 * in CAP from the next pnvme_emu_step(); Create I/O SQ/CQ then refuses
	 * every size (Invalid Queue Size); the admin queue is unaffected.
	 */
};

#define PNVME_EMU_ANY_QID 0xffffu
#define PNVME_EMU_ANY_OPC (-1)

struct pnvme_emu_fault {
	enum pnvme_emu_fault_kind kind;
	uint16_t qid;      /* match: queue id, or PNVME_EMU_ANY_QID */
	int      opc;      /* match: opcode, or PNVME_EMU_ANY_OPC */
	uint32_t skip;     /* let this many matching commands through first */
	uint32_t count;    /* then hit this many (0 = every later match) */
	uint16_t status;   /* FAULT_STATUS: (DNR|SCT<<8|SC) as PNVME_STATUS() */
	uint64_t delay_us; /* FAULT_DELAY_CPL */
};

/**
 * Arm a fault. Kinds without a command match (NEVER_READY, CFS, ALL_ONES,
 * REORDER, NO_SHUTDOWN, ID_*, MQES_ZERO) ignore qid/opc/skip/count; the CQE_*
 * kinds and IGNORE_ABORT match on the completed command. NEVER_READY armed
 * after bring-up makes the next controller reset fail. Up to 16 faults may be
 * armed at once. Returns 0, -EINVAL (unknown kind), -ENOSPC (too many).
 * Any thread.
 */
int pnvme_emu_inject(struct pnvme_emu *emu, const struct pnvme_emu_fault *fault);

/** Disarm every fault; CFS and all-ones states are cleared by the next disable. */
void pnvme_emu_clear_faults(struct pnvme_emu *emu);

struct pnvme_emu_stats {
	uint64_t commands;        /* commands fetched and parsed */
	uint64_t completions;     /* CQEs posted */
	uint64_t dropped;         /* completions dropped by a fault */
	uint64_t sq_doorbells;    /* SQ tail doorbell register changes seen (MMIO) */
	uint64_t cq_doorbells;    /* CQ head doorbell register changes seen (MMIO) */
	uint64_t dma_errors;      /* IOVAs that missed the table */
	uint64_t enables;         /* CC.EN 0 -> 1 transitions */
	uint64_t read_bytes;
	uint64_t write_bytes;
	uint64_t shadow_sq_updates; /* SQ tail shadow doorbell changes seen (DBBUF) */
	uint64_t shadow_cq_updates; /* CQ head shadow doorbell changes seen (DBBUF) */
	uint64_t sgl_commands;    /* commands accepted with PSDT 01b (SGLs) */
};

/** Snapshot of the counters. Any thread. */
void pnvme_emu_get_stats(struct pnvme_emu *emu, struct pnvme_emu_stats *stats);

PNVME_END_DECLS
#endif /* PNVME_EMU_H */
