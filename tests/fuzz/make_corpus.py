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
