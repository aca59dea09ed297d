#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# test_perf_cli.sh PNVME_PERF - pnvme-perf's command line against the emulated
# controller: bad options exit 2 with a usage message on stderr, a verify run
# exits 0 with a Total line, --json output parses, a missing namespace exits 1.
set -u
PERF=${1:?usage: test_perf_cli.sh PATH_TO_PNVME_PERF}
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# matches FILE REGEX: '' matches anything, '-' only an empty file
matches() {
	case $2 in
	'') true ;;
	-) ! [ -s "$1" ] ;;
	*) grep -Eq -- "$2" "$1" ;;
	esac
}

# expect RC STDOUT_REGEX STDERR_REGEX ARGS...
expect() {
	want=$1; re_out=$2; re_err=$3; shift 3
	"$PERF" "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
	if [ "$rc" = "$want" ] && matches "$tmp/out" "$re_out" && matches "$tmp/err" "$re_err"; then
		ok "pnvme-perf $* -> $rc"
	else
		bad "pnvme-perf $* -> exit $rc (wanted $want, stdout /$re_out/, stderr /$re_err/):"
		head -n 20 "$tmp/out" | sed 's/^/     out| /'
		head -n 20 "$tmp/err" | sed 's/^/     err| /'
	fi
}

any=''
expect 2 "$any" '^usage: pnvme-perf'
expect 2 "$any" "bad queue depth '0'" -d emu -q 0
expect 2 "$any" "bad pattern 'sideways'" -d emu -w sideways
expect 2 "$any" "bad time 'x'" -d emu -t x
expect 2 "$any" "bad read percentage '101'" -d emu -w rw -M 101
expect 2 "$any" '-M applies to' -d emu -w randread -M 50
expect 2 "$any" "bad core list '3-1'" -d emu -c 3-1
expect 2 "$any" "bad worker count '0'" -d emu -j 0
expect 2 "$any" 'usage: pnvme-perf' -d emu --frobnicate
expect 2 "$any" "unexpected argument 'extra'" -d emu extra
expect 2 "$any" 'must be a multiple of the LBA size' -d emu -o 1000
expect 2 "$any" 'step mode needs one worker' -d emu:mode=step -j 2
expect 1 "$any" 'no active namespace 3' -d emu:size=16M -n 3 -t 1
expect 1 "$any" 'emu' -d emu:frobnicate=1 -t 1
expect 0 '^Total +[0-9.]+ +[0-9.]+' - -d emu:size=16M -t 1
expect 0 '^verify: [1-9][0-9]* blocks checked, 0 mismatches' - -d emu:size=16M -t 1 --verify
expect 0 '^Total ' - -d emu:size=16M,lba=4096 -t 1 --verify -w randwrite -q 4 -o 8K -j 2 -P 2
expect 0 '^Total .*' - -d emu:size=16M -d emu:size=8M -t 1 -w randrw -M 70 -a 1 -L
expect 0 '99\.99000% :' - -d emu:size=16M -t 1 -L
expect 0 '^Latency histogram' - -d emu:size=16M -t 1 -LL
expect 0 '^Total ' - -d emu:mode=step,size=16M -t 1 -q 8 -N

# --version: the project version from CMakeLists.txt
ver=$(sed -n 's/^project(pnvme VERSION \([0-9.]*\).*/\1/p' "$(dirname "$0")/../CMakeLists.txt")
expect 0 "^pnvme-perf $ver\$" - --version

# The header names the doorbell policy: --lazy-cq batches SQ doorbells and
# defers CQ ones; -N rings the SQ doorbell per command.
expect 0 '^pnvme-perf: .*SQ doorbell batched, CQ doorbell lazy,' - -d emu:size=16M -t 1 --lazy-cq
expect 0 '^pnvme-perf: .*SQ doorbell per-command, CQ doorbell per-poll,' - -d emu:size=16M -t 1 -N

# -c: a core this process may not run on is refused before anything starts.
expect 2 "$any" '^pnvme-perf: -c: core 1023 is not available to this process' -d emu -t 1 -c 1023

# The same controller twice is refused up front, however it is spelt (no such
# PCI domain: nothing is opened even where the check were missing).
expect 2 "$any" '^pnvme-perf: device ffff:00:1f.0 is given twice' -d ffff:00:1f.0 -d FFFF:00:1F.0 -t 1
expect 2 "$any" '^pnvme-perf: device ffff:00:1f.0 is given twice' \
	-r 'trtype:PCIe traddr:ffff.00.1f.0' -d ffff:00:1f.0 -t 1

# -r: SPDK transport IDs; ns: is honoured, other transports and keys are refused by name.
expect 0 '^pnvme-perf: emu:ns=2,size=16M ns 2,' - -r 'trtype:PCIe traddr:emu:ns=2,size=16M ns:2' -t 1
expect 2 "$any" "^pnvme-perf: -r .*transport 'TCP' is not supported" \
	-r 'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420' -t 1
expect 2 "$any" "^pnvme-perf: -r .*'subnqn' is not supported" \
	-r 'trtype:PCIe traddr:ffff:00:1f.0 subnqn:nqn.2014-08.org.nvmexpress:x' -t 1
expect 2 "$any" "^pnvme-perf: -r .*bad namespace 'ns:0'" -r 'trtype:PCIe traddr:ffff:00:1f.0 ns:0' -t 1

# --json records every option, with the format version.
core=$(awk '/^Cpus_allowed_list/ { print $2 }' /proc/self/status | sed 's/[-,].*//')
if "$PERF" -d emu:size=16M -n 1 -t 1 -a 0 -q 4 -o 8K -w randrw -M 70 -c "$core" -j 1 -P 2 -L -N \
	--lazy-cq --shadow-db --json >"$tmp/json" 2>"$tmp/err" &&
   python3 -c 'import json, sys
d = json.load(open(sys.argv[1])); c = d["config"]
want = {"nsid": 1, "seconds": 1, "warmup_seconds": 0, "queue_depth": 4, "io_size": 8192,
        "pattern": "randrw", "read_pct": 70, "cores": [int(sys.argv[2])], "workers": 1,
        "qpairs_per_worker": 2, "latency": 1, "sq_doorbell": "per-command",
        "cq_doorbell": "lazy", "shadow_db": True, "verify": False, "json": True}
bad = {k: (c.get(k), v) for k, v in want.items() if c.get(k) != v}
assert d["pnvme_json_version"] == 1 and not bad, bad
assert c["devices"] == [{"address": "emu:size=16M", "nsid": 1, "shadow_db": True}], c["devices"]' \
	"$tmp/json" "$core"; then
	ok "pnvme-perf --json config records every option"
else
	bad "pnvme-perf --json config:"
	sed 's/^/     | /' "$tmp/json" "$tmp/err" | head -20
fi

# --json: one document on stdout that parses, with the totals in it.
if "$PERF" -d emu:size=16M -t 1 -LL --json --verify >"$tmp/json" 2>"$tmp/err" &&
   python3 -m json.tool "$tmp/json" >/dev/null &&
   python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); t=d["total"]; assert t["ios"] > 0 and t["iops"] > 0 and "99.99" in t["percentiles_us"] and d["verify"]["mismatches"] == 0' "$tmp/json"; then
	ok "pnvme-perf --json parses"
else
	bad "pnvme-perf --json:"
	sed 's/^/     | /' "$tmp/json" "$tmp/err" | head -20
fi

if [ "$fails" -ne 0 ]; then
	echo "$fails failure(s)"
	exit 1
fi
echo "all passed"
