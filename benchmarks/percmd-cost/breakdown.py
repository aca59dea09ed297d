#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""breakdown.py SRC_DIR CALLGRIND_OUT... - per-I/O instruction counts from percmd's profiles.

Each callgrind part file percmd dumps holds one configuration (its "Trigger:
Client Request:" names it: api=read for pnvme_read, api=req for prepared
requests, depth, doorbells). Only pnvme_read / pnvme_req_submit,
pnvme_qpair_flush and pnvme_qpair_poll (with what they call) were collected;
the harness callback
percmd_cb, which runs inside the poll, is subtracted. Self costs are taken per
source line, and each line is assigned to the function whose body it is in, so
static inline helpers (sqe_get, build_prps, pnvme_dma_xlate...) get their own
rows even though the compiler folded them into pnvme_read / pnvme_qpair_poll.
"""
import collections
import os
import re
import sys

CALLBACK = "percmd_cb"

# Source function -> cost category.
CATEGORY = {
    "pnvme_read": "call overhead (prologue/epilogue)",
    "submit_rw": "SQE build",
    "rw_sqe": "SQE build",
    "req_post": "SQE build",
    "check_range": "argument checks",
    "io_args_ok": "argument checks",
    "qpair_gone_flag": "argument checks",
    "pnvme_req_submit": "argument checks",
    "sqe_get": "tracker + SQ slot",
    "build_prps": "PRP build",
    "prps_fill": "PRP build",
    "pnvme_dma_xlate": "DMA xlate",
    "pnvme_dma_xlate1": "DMA xlate",
    "pnvme_dma_cached_xlate": "DMA xlate",
    "pnvme_dma_cache_hit": "DMA xlate",
    "pnvme_ticks": "ticks (rdtsc)",
    "sqe_post": "post (tracker, tail, stats)",
    "sqe_commit": "post (tracker, tail, stats)",
    "qpair_post_slow": "post (tracker, tail, stats)",
    "ring_sq": "doorbell writes",
    "db_enter": "doorbell writes",
    "db_leave": "doorbell writes",
    "db_write": "doorbell writes",
    "shadow_db_update": "doorbell writes",
    "pnvme_qpair_flush": "doorbell writes",
    "pnvme_qpair_poll": "poll loop",
    "poll_tail": "poll loop",
    "reap": "poll loop",
    "trk_release": "poll loop",
    "sqhd_update": "poll loop",
    "cqe_status_load": "poll loop",
    "qpair_ctrl_gen": "poll loop",
    "qpair_outstanding": "poll loop",
}
# Line-level refinements: (function, regex on the source line) -> category.
LINE_RULES = [
    ("submit_rw", r"max_lbas|io_flags & ~", "argument checks"),
    ("submit_rw", r"^\s*[{}]\s*$", "call overhead (prologue/epilogue)"),
    ("pnvme_req_submit", r"^\s*[{}]\s*$|return 0;", "call overhead (prologue/epilogue)"),
    ("pnvme_qpair_poll", r"^\s*[{}]\s*$", "call overhead (prologue/epilogue)"),
    ("pnvme_qpair_poll", r"cq_db|cq_doorbells", "doorbell writes"),
    ("pnvme_qpair_poll", r"cb\(arg|trk->cb|trk->arg", "callback dispatch"),
    ("pnvme_qpair_poll", r"pnvme_ticks|next_check", "ticks (rdtsc)"),
    ("poll_tail", r"pnvme_ticks|next_check", "ticks (rdtsc)"),
    ("poll_tail", r"^\s*[{}]\s*$|return n;", "call overhead (prologue/epilogue)"),
    ("reap", r"^\s*[{}]\s*$", "call overhead (prologue/epilogue)"),
    ("reap", r"cq_db|cq_doorbells|every", "doorbell writes"),
    ("reap", r"cb\(arg|trk->cb|trk->arg", "callback dispatch"),
    ("reap", r"pnvme_ticks|next_check", "ticks (rdtsc)"),
]
CATEGORY_ORDER = ["call overhead (prologue/epilogue)", "argument checks", "SQE build", "tracker + SQ slot", "PRP build",
                  "DMA xlate", "ticks (rdtsc)", "post (tracker, tail, stats)",
                  "doorbell writes", "poll loop", "callback dispatch",
                  "no source line (merged code)", "other"]

FUNC_START = re.compile(r"^(?!static_assert|_Static_assert|typedef|struct \w+ \{|#|/|\s|\})")
CALL_NAME = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


def func_name(text):
    """The function a definition line names: the first NAME( that is not __attribute__ etc."""
    if not FUNC_START.match(text):
        return None
    for m in CALL_NAME.finditer(text):
        if not m.group(1).startswith("__"):
            return m.group(1)
    return None


def function_map(path):
    """line number -> enclosing function name (Linux style: '{' and '}' at column 0)."""
    fmap, cand, cur = {}, None, None
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    except OSError:
        return fmap, []
    for no, text in enumerate(lines, 1):
        if cur is None:
            fname = func_name(text)
            if fname and not text.rstrip().endswith(";"):
                cand = (fname, no)
            if cand and (text.startswith("{") or (text.rstrip().endswith("{") and "(" in text
                                                  and "=" not in text)):
                cur = cand[0]
                for k in range(cand[1], no + 1):
                    fmap[k] = cur
                cand = None
                continue
        else:
            fmap[no] = cur
            if text.startswith("}"):
                cur = None
    return fmap, lines


def parse(path):
    """(trigger, summary, {(file, line): self cost}, {fn: self cost}, {fn: inclusive from main})"""
    names = {}
    trigger, summary = "", 0
    lines_cost = collections.Counter()
    fn_cost = collections.Counter()
    incl = collections.Counter()
    fl = fi = fn = cfn = None
    last = 0
    after_calls = False

    def name(kind, rest):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?$", rest)
        if not m:
            return rest
        key = (kind, m.group(1))
        if m.group(2) is not None:
            names[key] = m.group(2)
        return names.get(key, rest)

    for raw in open(path, encoding="utf-8", errors="replace"):
        line = raw.rstrip("\n")
        if not line:
            continue
        if line.startswith("desc: Trigger: Client Request: "):
            trigger = line.split(": ", 3)[3] if line.count(": ") >= 3 else line
            trigger = line[len("desc: Trigger: Client Request: "):]
            continue
        if line.startswith("summary:"):
            summary = int(line.split()[1])
            continue
        m = re.match(r"^(\w+)=(.*)$", line)
        if m:
            key, rest = m.groups()
            if key == "fl":
                fl = fi = name("fl", rest)
            elif key in ("fi", "fe"):
                fi = name("fl", rest)
            elif key == "fn":
                fn = name("fn", rest)
                fi = fl
            elif key in ("cfi", "cfl"):
                name("fl", rest)
            elif key == "cfn":
                cfn = name("fn", rest)
            elif key in ("ob", "cob"):
                name("ob", rest)
            elif key == "calls":
                after_calls = True
            continue
        if not (line[0].isdigit() or line[0] in "+-*"):
            continue
        parts = line.split()
        pos = parts[0]
        if pos == "*":
            ln = last
        elif pos[0] in "+-":
            ln = last + int(pos)
        else:
            ln = int(pos)
        last = ln
        cost = int(parts[1]) if len(parts) > 1 else 0
        if after_calls:  # inclusive cost of a call: not self cost
            after_calls = False
            if fn == "main":
                incl[cfn] += cost
            continue
        lines_cost[(fi, ln)] += cost
        fn_cost[fn] += cost
    return trigger, summary, lines_cost, fn_cost, incl


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    src = sys.argv[1]
    maps = {}
    results = []
    for path in sys.argv[2:]:
        trigger, summary, lc, fc, inc = parse(path)
        m = re.search(r"(?:api=(\S+) )?depth=(\d+) db=(\S+) n=(\d+)", trigger)
        if not m:
            continue
        api = m.group(1) or "read"
        depth, db, n = int(m.group(2)), m.group(3), int(m.group(4))
        total_self = sum(fc.values())
        if total_self != summary:
            print(f"warning: {path}: self costs {total_self} != summary {summary}",
                  file=sys.stderr)
        cb = fc.get(CALLBACK, 0)
        by_func = collections.Counter()
        by_cat = collections.Counter()
        for (f, ln), cost in lc.items():
            if f is None:
                continue
            if f not in maps:
                maps[f] = function_map(f if os.path.isabs(f) else os.path.join(src, f))
            fmap, text = maps[f]
            func = fmap.get(ln, "(line 0)" if ln == 0 else "?")
            if func == CALLBACK:
                continue
            src_line = text[ln - 1] if 0 < ln <= len(text) else ""
            cat = CATEGORY.get(func, "no source line (merged code)" if ln == 0 else "other")
            for rfunc, rx, rcat in LINE_RULES:
                if func == rfunc and re.search(rx, src_line):
                    cat = rcat
                    break
            by_func[f"{os.path.basename(f)}:{func}"] += cost
            by_cat[cat] += cost
        results.append((depth, db, n, summary, cb, inc, by_func, by_cat, api))

    apis = sorted({r[8] for r in results}, key=lambda a: a != "read")
    results.sort(key=lambda r: (r[8] != "read", r[0], r[1] != "batched"))
    print(f"{'api':<5} {'depth':>5} {'doorbells':<12} {'I/Os':>7} {'lib instr/IO':>12} "
          f"{'submit':>7} {'flush':>7} {'poll':>7} {'(callback)':>10}")
    for depth, db, n, summary, cb, inc, _, _, api in results:
        lib = summary - cb
        submit = inc.get('pnvme_read', 0) + inc.get('pnvme_req_submit', 0)
        print(f"{api:<5} {depth:>5} {db:<12} {n:>7} {lib / n:>12.1f} "
              f"{submit / n:>7.1f} {inc.get('pnvme_qpair_flush', 0) / n:>7.1f} "
              f"{(inc.get('pnvme_qpair_poll', 0) - cb) / n:>7.1f} {cb / n:>10.1f}")
    print("\nlib instr/IO: everything executed inside the submission call + pnvme_qpair_flush"
          " +\npnvme_qpair_poll, without the harness callback (run inside the poll, counted"
          " apart).\nsubmit = pnvme_read (api read) or pnvme_req_submit (api req, prepared"
          " requests),\nflush = pnvme_qpair_flush, poll = pnvme_qpair_poll, each inclusive,"
          " per I/O.")

    for a in apis:
        rs = [r for r in results if r[8] == a]
        cats = [c for c in CATEGORY_ORDER if any(r[7].get(c) for r in rs)]
        print(f"\napi={a}: instructions per I/O by category (inlined helpers attributed by"
              " source line):")
        hdr = f"{'category':<34}" + "".join(f"{f'q{r[0]} {r[1][:5]}':>11}" for r in rs)
        print(hdr)
        for c in cats:
            print(f"{c:<34}" + "".join(f"{r[7].get(c, 0) / r[2]:>11.1f}" for r in rs))
        print(f"{'= total':<34}" + "".join(f"{sum(r[7].values()) / r[2]:>11.1f}" for r in rs))

        funcs = collections.Counter()
        for r in rs:
            for k, v in r[6].items():
                funcs[k] += v / r[2]
        print(f"\napi={a}: instructions per I/O by source function:")
        print(f"{'function':<34}" + "".join(f"{f'q{r[0]} {r[1][:5]}':>11}" for r in rs))
        for k, _ in funcs.most_common():
            print(f"{k:<34}" + "".join(f"{r[6].get(k, 0) / r[2]:>11.1f}" for r in rs))


if __name__ == "__main__":
    main()
