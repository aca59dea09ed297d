#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Write the seed corpora of the fuzz targets: corpus/<target>/<name>.

Small, meaningful inputs only; the fuzzer finds the rest. Rerun after a
change of an input format (see each target's header comment) and commit.
Usage: tests/fuzz/make_corpus.py  (writes next to itself)
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


# --- fuzz_emu_spec: spec strings ------------------------------------------
write("fuzz_emu_spec", {
    "bare": b"emu",
    "all": b"emu:size=64M,lba=512,ns=1,mqes=1023,mdts=5,dstrd=0,to=4,nq=64,mode=thread",
    "step": b"emu:mode=step,size=1M",
    "noprefix": b"size=4k,lba=4096,ns=2",
    "big": b"emu:ns=32,size=1T,lba=4096,mdts=15,nq=1024,mqes=65535,dstrd=8,to=255",
    "strings": b"emu:sn=ABC-123,mn=Model X,file=/nonexistent/pnvme-fuzz",
    "overflow": b"emu:size=18446744073709551615",
    "badlba": b"emu:lba=513",
    "empty_opt": b"emu:,",
    "mqes0": b"emu:mqes=0,dstrd=9",
    "twice": b"emu:size=8M,size=3",
    "meta": b"emu:ms=16,ext=1,pi=2,pil=1",
    "meta_bad": b"emu:pi=1,ms=0,pil=1",
    "meta_huge": b"emu:ns=32,size=16T,ms=64",
})


# --- fuzz_cqe: depth, reads, flags, then rounds -----------------------------
def cqe(cid, sqhd=0, status=0, sqid=1, dw0=0):
    return struct.pack("<IIHHHH", dw0, 0, sqhd, sqid, cid, status)


def rec(ctl, *args, **kw):
    return bytes([ctl]) + cqe(*args, **kw)


FIX = 0x01 | 0x04          # phase fixed, sqid = queue
SC_XFER = 0x04 << 1         # Data Transfer Error, no DNR (retryable)
DNR = 0x8000
write("fuzz_cqe", {
    # genuine completions only: ring, let the emulator run, poll
    "honest": bytes([8, 3, 0x03, 0x00]),
    # the host takes a made-up success for cid 0
    "fake_ok": bytes([8, 3, 0x00, 0x00]) + rec(FIX, 0, sqhd=1),
    # the same cid twice in one batch
    "dup": bytes([8, 3, 0x00, 0x01]) + rec(FIX, 1, sqhd=1) + rec(FIX, 1, sqhd=2),
    # a cid never handed out, one past the trackers, and 0xfffe
    "bad_cid": bytes([8, 3, 0x00, 0x02]) + rec(FIX, 0xfffe) + rec(FIX, 7) + rec(FIX, 8),
    # impossible and backwards SQ heads
    "bad_sqhd": bytes([8, 4, 0x00, 0x01]) + rec(FIX, 0, sqhd=0x7fff) + rec(FIX, 1, sqhd=63),
    # errors: retryable (the driver may re-post) and DNR
    "errors": bytes([8, 3, 0x01, 0x01]) + rec(FIX, 0, status=SC_XFER) +
              rec(FIX, 1, status=SC_XFER | DNR),
    # stale phase: nothing is consumed
    "stale": bytes([8, 3, 0x00, 0x00]) + rec(0x04, 0, status=0),
    # fake and genuine completions racing: step after writing, one at a time
    "mixed": bytes([16, 6, 0x01, 0x08 | 0x10 | 0x40 | 0x01]) + rec(FIX, 2) + rec(FIX, 3),
    # requests time out (abort, reset) while fake completions arrive
    "expire": bytes([8, 3, 0x0c, 0x01]) + rec(FIX, 0, sqhd=1) + rec(FIX, 1),
    # a full ring of fakes (wraps the phase), then more submissions
    "wrap": bytes([0, 6, 0x00, 0x27]) + b"".join(rec(FIX | 0x02, i) for i in range(8)) +
            bytes([0x20]),
})


# --- fuzz_identify ------------------------------------------------------------
def id_ns(nsze=2048, ncap=None, nlbaf=0, flbas=0, lbaf0=9 << 16, extra=None):
    b = bytearray(max([132] + [off + 4 for off in (extra or {})]))
    struct.pack_into("<QQQ", b, 0, nsze, nsze if ncap is None else ncap, nsze)
    b[25] = nlbaf
    b[26] = flbas
    struct.pack_into("<I", b, 128, lbaf0)
    for off, val in (extra or {}).items():
        struct.pack_into("<I", b, off, val)
    return bytes(b)


def raw(max_xfer, ns):
    return bytes([0]) + struct.pack("<I", max_xfer) + ns


def patch(target, off, data):          # target 0 = CNS 0 (ns), 1 = ctrl, 2 = list
    return bytes([target]) + struct.pack("<H", off) + bytes([len(data) - 1]) + data


def hostile(io, *patches):
    return bytes([1, 1 if io else 0]) + b"".join(patches)


def emu(nr_ns, lba_idx, blocks, mdts, *ids):
    return (bytes([2, nr_ns - 1, lba_idx]) + struct.pack("<H", blocks - 8) + bytes([mdts]) +
            b"".join(bytes([cns]) + struct.pack("<I", nsid) for cns, nsid in ids))


write("fuzz_identify", {
    "raw_ok": raw(128 << 10, id_ns()),
    "raw_4k": raw(2 << 20, id_ns(lbaf0=12 << 16)),
    "raw_flbas_range": raw(128 << 10, id_ns(flbas=3, extra={128 + 12: 9 << 16})),
    "raw_flbas_hi": raw(128 << 10, id_ns(nlbaf=63, flbas=0x6f)),
    "raw_lbads0": raw(128 << 10, id_ns(lbaf0=0)),
    "raw_lbads17": raw(1 << 30, id_ns(lbaf0=17 << 16)),
    "raw_ncap": raw(4096, id_ns(ncap=4096)),
    "raw_xfer0": raw(0, id_ns(lbaf0=16 << 16 | 8)),
    "host_genuine": hostile(True),
    "host_mdts255": hostile(True, patch(1, 77, b"\xff")),
    "host_nn_huge": hostile(False, patch(1, 516, b"\xff\xff\xff\xff"),
                            patch(2, 0, struct.pack("<III", 3, 1, 2))),
    "host_list_dup": hostile(False, patch(2, 0, struct.pack("<III", 1, 1, 2))),
    "host_list_empty": hostile(False, patch(2, 0, b"\0\0\0\0")),
    "host_flbas": hostile(True, patch(0, 26, b"\x03")),
    "host_lbads0": hostile(True, patch(0, 130, b"\x00")),
    "host_lba64k": hostile(True, patch(0, 130, b"\x10")),
    "host_nsze0": hostile(False, patch(0, 0, b"\0" * 16)),
    "emu_one": emu(1, 0, 2048, 5, (0, 1), (1, 0), (2, 0)),
    "emu_many": emu(4, 3, 64, 0, (2, 1), (0, 4), (0, 5), (3, 1)),
    "emu_mdts9": emu(2, 1, 1000, 9, (0, 2), (2, 0xfffffffe)),
})


# --- fuzz_emu_cmds: configuration, reserved byte, then operations -------------
(OP_REG32, OP_ENABLE, OP_SQDB, OP_CQDB, OP_SUBMIT, OP_CREATE, OP_STEP, OP_REAP, OP_UNMAP,
 OP_MAP, OP_POKE, OP_PRPLIST, OP_DBBUF, OP_SHADOW, OP_FAULT, OP_CLEAR, OP_ABORT, OP_IO,
 OP_SGL) = range(19)
REG_SIZE = 16 << 10


def riova(reg, off=0):                 # IOVA of a region of the harness arena
    return 0x100000 + reg * REG_SIZE + off


def sqe(opc, cid=0, nsid=1, prp1=0, prp2=0, cdw=(0, 0, 0, 0, 0, 0), flags=0, mptr=0):
    return struct.pack("<BBHIIIQQQ6I", opc, flags, cid, nsid, 0, 0, mptr, prp1, prp2, *cdw)


def op(code, *args):
    return bytes([code]) + b"".join(a if isinstance(a, bytes) else bytes([a]) for a in args)


def enable(sqreg=0, cqreg=1, size=30):
    return op(OP_ENABLE, sqreg, cqreg, size, size, 1) + op(OP_STEP, 0)


def create(qid, sqreg, cqreg, size, flags=0):      # size: entries - 2 (the CQ's rounded)
    flags |= size << 3 if size < 4 else 0x80 | (min(size // 2, 15) << 3)
    return op(OP_CREATE, qid - 1, sqreg, cqreg, size, flags) + op(OP_STEP, 1) + op(OP_REAP, 0)


def submit(qid, c, fix=0x10):         # fix 0x10: flags 0, PRPs as given
    return op(OP_SUBMIT, qid, fix, c)


def rw(opc, cid, slba, nlb, prp1, prp2=0, cdw12=0, nsid=1):
    return sqe(opc, cid, nsid, prp1, prp2, (slba, 0, (nlb - 1) | cdw12, 0, 0, 0))


def sgld(iova, length, ident):          # an OP_SGL descriptor record (address folded)
    return struct.pack("<QIB", iova - 0x100000, length, ident)


def step(n=1):
    return op(OP_STEP, n - 1)


def u16(v):
    return struct.pack("<H", v)


def u32(v):
    return struct.pack("<I", v)


RD, WR, WZ, DSM, FLUSH = 0x02, 0x01, 0x08, 0x09, 0x00
IO = enable() + create(1, 2, 3, 14)
write("fuzz_emu_cmds", {
    # write and read one page, reap both
    "io": bytes([0x04, 0]) + IO +
          submit(1, rw(WR, 1, 0, 8, riova(4))) + step() + op(OP_REAP, 1) +
          submit(1, rw(RD, 2, 0, 8, riova(5))) + step() + op(OP_REAP, 1),
    # 12 KiB through a PRP list, 4 KiB LBAs, two namespaces
    "prplist": bytes([0x03, 0]) + IO +
               op(OP_PRPLIST, 7, u16(0), 2, struct.pack("<QQ", riova(6, 4096) - 0x100000,
                                                         riova(6, 8192) - 0x100000)) +
               submit(1, rw(WR, 1, 0, 3, riova(6), riova(7))) + step() + op(OP_REAP, 1) +
               submit(1, rw(RD, 2, 1, 3, riova(6), riova(7), nsid=2)) + step(),
    # an Abort aimed at an SQ whose ring was unmapped, with commands left
    # between head and tail (the CQ is full): read through NULL before the fix
    "abort_unmapped_sq": bytes([0x00, 0]) + enable() + create(1, 10, 11, 0) +
                         submit(1, rw(RD, 1, 0, 1, riova(4))) + step() +
                         submit(1, rw(RD, 2, 0, 1, riova(4))) + step() +
                         submit(1, rw(RD, 3, 0, 1, riova(4))) + step() +
                         op(OP_UNMAP, 10) +
                         submit(0, sqe(0x08, 0x77, 0, cdw=(1 | 3 << 16, 0, 0, 0, 0, 0))) +
                         step() + op(OP_REAP, 0) + op(OP_REAP, 1),
    # the same with OP_ABORT and small CIDs (SUBMIT fix bit 6)
    "abort_op": bytes([0x00, 0]) + enable() + create(1, 14, 15, 2, flags=0) +
                submit(1, rw(RD, 0x101, 0, 1, riova(4)), fix=0x50) + step() +
                submit(1, rw(RD, 0x102, 0, 1, riova(4)), fix=0x50) +
                submit(1, rw(RD, 0x103, 0, 1, riova(4)), fix=0x50) + step() +
                op(OP_ABORT, 1, 3) + step() + op(OP_REAP, 0) + op(OP_UNMAP, 14) +
                op(OP_ABORT, 1, 2) + step() + op(OP_REAP, 0),
    # the CQ ring unmapped while completions wait for room, then mapped again
    "unmap_cq": bytes([0x00, 0]) + enable() + create(1, 12, 13, 0) +
                submit(1, rw(WR, 1, 0, 1, riova(4))) + submit(1, rw(WR, 2, 0, 1, riova(4))) +
                step(2) + op(OP_UNMAP, 13) + op(OP_REAP, 1) + step(2) +
                op(OP_MAP, 13, 0) + op(OP_CQDB, 1, u16(1)) + step(2),
    # shadow doorbells: config, tail published in the shadow entry only
    "dbbuf": bytes([0x0c, 0]) + IO + op(OP_DBBUF, 20, 21) + step() + op(OP_REAP, 0) +
             submit(1, rw(WR, 1, 0, 1, riova(4)), fix=0x30) + op(OP_SHADOW, 1, 0, u16(1)) +
             step() + op(OP_REAP, 1) + op(OP_SHADOW, 1, 1, u16(1)) + op(OP_UNMAP, 20) +
             submit(1, rw(RD, 2, 0, 1, riova(5))) + step(),
    # Dataset Management ranges, Write Zeroes, Flush of every namespace
    "dsm_wz": bytes([0x00, 0]) + IO +
              op(OP_POKE, 8, u16(0), 32, struct.pack("<IIQIIQ", 0, 16, 0, 0, 8, 1000)) +
              submit(1, sqe(DSM, 1, 1, riova(8), 0, (1, 4, 0, 0, 0, 0))) +
              submit(1, rw(WZ, 2, 100, 50, 0)) +
              submit(1, sqe(FLUSH, 3, 0xffffffff)) + step(2) + op(OP_REAP, 1),
    # faults: delayed and duplicated completions, reordering, then an Abort
    "faults": bytes([0x00, 0]) + IO +
              op(OP_FAULT, 5, 1, 0xff, 0, 0, u16(0)) + op(OP_FAULT, 11, 0x80, 0xff, 0, 1, u16(0)) +
              op(OP_FAULT, 7, 0, 0, 0, 0, u16(0)) +
              submit(1, rw(RD, 1, 0, 1, riova(4))) + submit(1, rw(RD, 2, 0, 1, riova(4))) +
              submit(0, sqe(0x08, 0x70, 0, cdw=(1 | 2 << 16, 0, 0, 0, 0, 0))) +
              step(3) + op(OP_REAP, 0) + op(OP_REAP, 1) + op(OP_CLEAR),
    # admin commands: identify, log pages, features, delete and re-create
    "admin": bytes([0x00, 0]) + IO +
             submit(0, sqe(0x06, 0x60, 0, riova(9), 0, (1, 0, 0, 0, 0, 0))) +
             submit(0, sqe(0x02, 0x61, 0, riova(9), 0, (0x0002 | 127 << 16, 0, 0, 0, 0, 0))) +
             submit(0, sqe(0x09, 0x62, 0, cdw=(0x07, 0x00030003, 0, 0, 0, 0))) +
             submit(0, sqe(0x00, 0x63, 0, cdw=(1, 0, 0, 0, 0, 0))) +
             submit(0, sqe(0x04, 0x64, 0, cdw=(1, 0, 0, 0, 0, 0))) + step(2) + op(OP_REAP, 0) +
             create(1, 2, 3, 30),
    # metadata, extended LBAs with PI type 1: PRACT write, checked read, a bad guard
    "pi_ext": bytes([0x00, 0x19]) + IO +
              submit(1, rw(WR, 1, 8, 4, riova(4), 0, 1 << 29)) +
              submit(1, sqe(WR, 2, 1, riova(5), 0, (8, 0, 3 | 0x7 << 26, 0, 8, 0xffff0000))) +
              submit(1, sqe(RD, 3, 1, riova(6), 0, (8, 0, 3 | 0xf << 26, 0, 8, 0xffff0000))) +
              step(2) + op(OP_REAP, 1),
    # separate metadata (ms=16, PI type 3 first), MPTR in the arena and unmapped
    "pi_sep": bytes([0x00, 0x73]) + IO +
              submit(1, sqe(WR, 1, 1, riova(4), 0, (0, 0, 1 | 1 << 29, 0, 5, 9),
                            mptr=riova(8, 64))) +
              submit(1, sqe(RD, 2, 1, riova(5), 0, (0, 0, 1 | 0x7 << 26, 0, 5, 0xffff0009),
                            mptr=riova(8, 128))) +
              op(OP_UNMAP, 8) +
              submit(1, sqe(RD, 3, 1, riova(5), 0, (0, 0, 1, 0, 0, 0), mptr=riova(8))) +
              submit(1, sqe(WZ, 4, 1, 0, 0, (0, 0, 7 | 1 << 29, 0, 0, 0))) +
              step(2) + op(OP_REAP, 1),
    # SGLs: a Last Segment of odd pieces, a Segment chaining to a Last Segment,
    # a chain that loops back on itself, a Bit Bucket in a Write
    "sgl": bytes([0x00, 0]) + IO +
           op(OP_SGL, 1, 0x01, 3, 6, u16(0), 3, sgld(riova(4, 3), 700, 0),
              sgld(riova(4, 2000), 1000, 0), sgld(riova(5, 1), 348, 0)) + step() +
           op(OP_POKE, 8, u16(0), 16, struct.pack("<QIxxxB", riova(5), 1024, 0x00)) +
           op(OP_SGL, 1, 0x04, 3, 7, u16(0), 2, sgld(riova(5, 1024), 1024, 0),
              sgld(riova(8), 0, 3)) + step() + op(OP_REAP, 1) +
           op(OP_SGL, 1, 0x04, 0, 9, u16(0), 2, sgld(riova(4), 0, 0), sgld(riova(9), 1, 2)) +
           op(OP_SGL, 1, 0x09, 0, 10, u16(0), 1, sgld(riova(0), 512, 1)) + step() + op(OP_REAP, 1),
    # SGLS 10b (sgl=2): a Data Block that is not dword granular, a DSM through an SGL
    "sgl_dword": bytes([0x80, 0]) + IO +
                 op(OP_SGL, 1, 0x08, 0, 6, u16(0), 1, sgld(riova(4, 2), 512, 0)) +
                 op(OP_POKE, 8, u16(0), 16, struct.pack("<QII", 100, 8, 0)) +
                 op(OP_SGL, 1, 0x0a, 0, 6, u16(0), 1, sgld(riova(8), 16, 0)) +
                 step() + op(OP_REAP, 1),
    # short I/O ops on a PI type 2 namespace with 16 bytes of separate metadata:
    # PRACT write, checked read, Write Zeroes, Flush, then the SQ ring unmapped
    "io_op": bytes([0x00, 0x23]) + enable() + create(1, 2, 3, 6) +
             op(OP_IO, 1, 0x21, 7, 4, 9) + op(OP_IO, 1, 0x1c, 7, 5, 9) +
             op(OP_IO, 1, 0x02, 3, 0, 9) + op(OP_IO, 1, 0x03, 0, 0, 0) + step(2) +
             op(OP_REAP, 1) + op(OP_IO, 1, 0x00, 1, 4, 9) + op(OP_UNMAP, 2) +
             op(OP_ABORT, 1, 4) + step() + op(OP_REAP, 0),
    # registers: shutdown, CC toggled, AQA pointing outside the arena, BAR poked
    "regs": bytes([0x18, 0]) + enable() +
            op(OP_REG32, u16(5), u32(0x00464001)) + step(2) +
            op(OP_REG32, u16(5), u32(0)) + step() +
            op(OP_REG32, u16(8), u32(0x0fff0fff)) + op(OP_REG32, u16(9), u32(0x7ffff000)) +
            op(OP_REG32, u16(5), u32(0x00460001)) + step() +
            op(OP_REG32, u16(0x8000 | 0x400), u32(0xffffffff)) + op(OP_SQDB, 0, u16(0xffff)) +
            step(),
})


# --- fuzz_tcp_pdu: 4 config bytes, then a raw stream or build records ---------
def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xffffffff


def pdu(ptype, psh, data=b"", flags=0, hd=False, dd=False, pda=0):
    """One PDU as TCP 1.0 lays it out: CH, PSH, HDGST, pad to PDO, data, DDGST."""
    hlen = 8 + len(psh)
    hl = hlen + (4 if hd else 0)
    flags |= (1 if hd else 0) | (2 if dd and data else 0)
    align = (pda + 1) * 4
    pdo = (hl + align - 1) // align * align if data else 0
    plen = (pdo if data else hl) + len(data) + (4 if dd and data else 0)
    hdr = struct.pack("<BBBBI", ptype, flags, hlen, pdo, plen) + psh
    out = hdr + (struct.pack("<I", crc32c(hdr)) if hd else b"")
    if data:
        out += bytes(pdo - hl) + data + (struct.pack("<I", crc32c(data)) if dd else b"")
    return out


def term(ptype, fes, fei, err):   # TermReq: no digests, error data after the header
    hdr = struct.pack("<BBBBIHI10x", ptype, 0, 24, 0, 24 + len(err), fes, fei)
    return hdr + err


ICREQ = pdu(0, struct.pack("<HBBI112x", 0, 0, 3, 0))
ICRESP = pdu(1, struct.pack("<HBBI112x", 0, 0, 3, 65536))
SQE = struct.pack("<BBHI", 1, 0x40, 7, 1) + bytes(16) + struct.pack("<QI3xB", 0, 64, 1) + bytes(24)
CQE = struct.pack("<IIHHHH", 0, 0, 1, 1, 7, 0)
DATA = bytes(range(64))


def c2h(data, off=0, flags=0x0c, **kw):
    return pdu(7, struct.pack("<HHII4x", 7, 0, off, len(data)), data, flags, **kw)


def h2c(data, off=0, flags=0x04, **kw):
    return pdu(6, struct.pack("<HHII4x", 7, 3, off, len(data)), data, flags, **kw)


def r2t(off, length, **kw):
    return pdu(9, struct.pack("<HHII4x", 7, 3, off, length), **kw)


def rec(op, length=0, a=0, b=0):      # built-mode record: op, u16 len, u32 a, u16 b
    return struct.pack("<BHIH", op, length, a, b)


HOST, HD, DD = 0x01, 0x02, 0x04
write("fuzz_tcp_pdu", {
    "host_plain": bytes([HOST, 0, 1, 0]) + ICRESP + pdu(5, CQE) + c2h(DATA) + r2t(0, 4096) +
                  term(3, 1, 2, DATA[:8]),
    "host_digests": bytes([HOST | HD | DD, 0, 2, 0]) + ICRESP + pdu(5, CQE, hd=True) +
                    c2h(DATA, flags=0, hd=True, dd=True) +
                    c2h(DATA, off=64, hd=True, dd=True) + r2t(64, 64, hd=True),
    "host_pda3": bytes([HOST | HD | DD, 3, 3, 0]) + ICRESP +
                 c2h(DATA, hd=True, dd=True, pda=3),
    "target_plain": bytes([0, 0, 4, 0]) + ICREQ + pdu(4, SQE) + pdu(4, SQE, DATA) +
                    h2c(DATA) + term(2, 4, 0, b""),
    "target_digests": bytes([HD | DD, 0, 5, 0]) + ICREQ + pdu(4, SQE, DATA, hd=True, dd=True) +
                      h2c(DATA, hd=True, dd=True),
    "target_limit": bytes([0, 0, 6, 0]) + ICREQ + h2c(bytes(5000)),      # > MAXH2CDATA
    "target_maxpl": bytes([0x80, 0, 6, 0]) + ICREQ + h2c(bytes(5000)),   # > maximum PLEN
    "term_first": bytes([HOST, 0, 7, 0]) + term(3, 2, 0, ICRESP[:24]),
    "bad_type": bytes([HOST, 0, 8, 0]) + ICRESP + pdu(4, SQE),
    "built_host": bytes([HOST | HD | DD, 1, 9, 1]) + rec(1, 0, 65536, 0x0300) + rec(3, 0, 0x55) +
                  rec(5, 100, 0, 0x0107) + rec(5, 50, 100, 0x0307) + rec(6, 512, 0x00030000, 7) +
                  rec(7, 24, 2, 0x0100),
    "built_target": bytes([HD, 2, 10, 1]) + rec(0, 0, 0, 0x0300) + rec(2, 64, 0x11) +
                    rec(4, 4096, 0x00030000, 0x0007) + rec(4, 4097, 4096, 1) + rec(9, 80, 0x40),
    "built_other_digests": bytes([HOST | HD, 0, 11, 3]) + rec(1, 0, 8192, 0x0100) + rec(3),
    "built_raw": bytes([HOST, 0, 12, 1]) + rec(1, 0, 8192) + rec(8, 8) + bytes([5, 0, 24, 0]) +
                 struct.pack("<I", 24),
})


# --- fuzz_tcp_host: 2 config bytes, then what the target sends -------------
# Requests (CCCIDs 0..7 are mapped to them): reads 0 (512 B), 1 (4 KiB),
# 2 (8 KiB), 6 (1 KiB); writes 3, 4 in the capsule, 5 (20 KiB), 7 (32 KiB)
# through R2T. Config bit 0: the controller with digests (the harness
# recomputes them), bit 2: max_retries 1.
READS = {0: 512, 1: 4096, 2: 8192, 6: 1024}
R2TW = {5: 20480, 7: 32768}


def resp(cid, status=0, **kw):
    return pdu(5, struct.pack("<IIHHHH", 0, 0, 0, 1, cid, status << 1), **kw)


def hc2h(cid, off, n, flags=0, **kw):
    return pdu(7, struct.pack("<HHII4x", cid, 0, off, n), bytes([cid]) * n, flags, **kw)


def hr2t(cid, off, n, **kw):
    return pdu(9, struct.pack("<HHII4x", cid, 1, off, n), **kw)


def answer_all(success=False, **kw):
    out = b""
    for cid, n in READS.items():
        for off in range(0, n, 4096):
            m = min(4096, n - off)
            last = off + m == n
            out += hc2h(cid, off, m, flags=(0x04 | 0x08) if last and success else 0x04 if last
                        else 0, **kw)
        if not success:
            out += resp(cid, **kw)
    for cid, n in R2TW.items():
        out += hr2t(cid, 0, min(n, 8192), **kw)
    out += resp(3, **kw) + resp(4, **kw)
    return out


write("fuzz_tcp_host", {
    "answers": bytes([0, 1]) + answer_all(),
    "answers_success": bytes([4, 2]) + answer_all(success=True),
    "answers_digests": bytes([1, 3]) + answer_all(hd=True, dd=True),
    "errors": bytes([0, 4]) + resp(0, 0x281) + resp(3, 0x02) + hc2h(1, 0, 4096) +
              hc2h(1, 4096, 1) + resp(6),
    "term": bytes([4, 5]) + hc2h(2, 0, 4096) + term(3, 1, 8, b"\0" * 24),
    "dup": bytes([0, 6]) + resp(4) + resp(4) + resp(3),
})
