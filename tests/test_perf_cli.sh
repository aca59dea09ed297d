#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# test_perf_cli.sh PNVME_PERF [TCP_PEER_EXEC] - pnvme-perf's command line against
# the emulated controller: bad options exit 2 with a usage message on stderr, a
# verify run exits 0 with a Total line, --json output parses, a missing namespace
# exits 1; SPDK transport IDs (-r) for PCIe and TCP; with TCP_PEER_EXEC
# (tests/tcp_peer_exec.c) short runs over NVMe/TCP against a fake target.
set -u
PERF=${1:?usage: test_perf_cli.sh PATH_TO_PNVME_PERF [PATH_TO_TCP_PEER_EXEC]}
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
# Load runs submit prepared requests (pnvme/req.h), --classic pnvme_read/pnvme_write.
expect 0 '^Total ' - -d emu:size=16M -t 1 -w randwrite -q 8 -LL
expect 0 '^Total ' - -d emu:mode=step,size=16M -t 1 -w read -q 8 -N
expect 0 'pnvme_read/pnvme_write' - -d emu:size=16M -t 1 -w randread --classic

# --version: the project version from CMakeLists.txt
ver=$(sed -n 's/^project(pnvme VERSION \([0-9.]*\).*/\1/p' "$(dirname "$0")/../CMakeLists.txt")
expect 0 "^pnvme-perf $ver\$" - --version

# The header names the doorbell policy: --lazy-cq batches SQ doorbells and
# defers CQ ones; -N rings the SQ doorbell per command.
expect 0 '^pnvme-perf: .*SQ doorbell batched, CQ doorbell lazy,' - -d emu:size=16M -t 1 --lazy-cq
expect 0 '^pnvme-perf: .*SQ doorbell per-command, CQ doorbell per-poll,' - -d emu:size=16M -t 1 -N
# --cmb-sq: SQs in the Controller Memory Buffer where the emulator has one (cmb=),
# a clean refusal where it has none.
expect 0 '^pnvme-perf: .*SQs in the CMB' - -d emu:size=16M,cmb=1 -t 1 --cmb-sq --verify
expect 1 "$any" 'CAP.CMBS' -d emu:size=16M -t 1 --cmb-sq

# -c: a core this process may not run on is refused before anything starts.
expect 2 "$any" '^pnvme-perf: -c: core 1023 is not available to this process' -d emu -t 1 -c 1023

# The same controller twice is refused up front, however it is spelt (no such
# PCI domain: nothing is opened even where the check were missing).
expect 2 "$any" '^pnvme-perf: device ffff:00:1f.0 is given twice' -d ffff:00:1f.0 -d FFFF:00:1F.0 -t 1
expect 2 "$any" '^pnvme-perf: device ffff:00:1f.0 is given twice' \
	-r 'trtype:PCIe traddr:ffff.00.1f.0' -d ffff:00:1f.0 -t 1

# -r: SPDK transport IDs; ns: is honoured, other transports and keys are refused by name.
expect 0 '^pnvme-perf: emu:ns=2,size=16M ns 2,' - -r 'trtype:PCIe traddr:emu:ns=2,size=16M ns:2' -t 1
expect 2 "$any" "^pnvme-perf: -r .*'subnqn' is not supported with trtype:PCIe" \
	-r 'trtype:PCIe traddr:ffff:00:1f.0 subnqn:nqn.2014-08.org.nvmexpress:x' -t 1
expect 2 "$any" "^pnvme-perf: -r .*bad namespace 'ns:0'" -r 'trtype:PCIe traddr:ffff:00:1f.0 ns:0' -t 1

# -r with trtype:TCP becomes the library's tcp: address (keys and values in any
# case, KEY=VALUE too, IPv6 in brackets, hostnqn as an option). Port 1 on the
# loopback has no listener: the open fails (exit 1) and names the address.
nqn=nqn.2014-08.org.example:disk1
expect 1 "$any" "^pnvme-perf: tcp:127\\.0\\.0\\.1:1/$nqn: .*refused" \
	-r "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:1 subnqn:$nqn" -t 1
expect 1 "$any" "^pnvme-perf: tcp:\\[::1\\]:1/$nqn\\?hostnqn=nqn\\.2014-08\\.org\\.example:h1: " \
	-r "TrType=tcp ADRFAM:ipv6 TRADDR=::1 trsvcid:1 subnqn:$nqn hostnqn:nqn.2014-08.org.example:h1" -t 1
expect 1 "$any" "^pnvme-perf: tcp:127\\.0\\.0\\.1:1/$nqn\\?hdr_digest=1&data_digest=1: " \
	-d "tcp:127.0.0.1:1/$nqn" -H -I -t 1
expect 1 "$any" "^pnvme-perf: tcp:127\\.0\\.0\\.1:1/$nqn\\?connect_timeout=2&data_digest=1: " \
	-d "tcp:127.0.0.1:1/$nqn?connect_timeout=2" -I -t 1
# ... and the ones that cannot be translated are refused by name, exit 2.
tcp="trtype:TCP adrfam:IPv4 traddr:127.0.0.1"
expect 2 "$any" "^pnvme-perf: -r .*no subnqn: name the subsystem" -r "$tcp trsvcid:4420" -t 1
expect 2 "$any" "^pnvme-perf: -r .*transport 'RDMA' is not supported" \
	-r "trtype:RDMA traddr:10.0.0.1 trsvcid:4420 subnqn:$nqn" -t 1
expect 2 "$any" "^pnvme-perf: -r .*bad trsvcid '65536'" -r "$tcp trsvcid:65536 subnqn:$nqn" -t 1
expect 2 "$any" "^pnvme-perf: -r .*bad trsvcid 'x'" -r "$tcp trsvcid:x subnqn:$nqn" -t 1
expect 2 "$any" "^pnvme-perf: -r .*address family 'IB' is not supported" \
	-r "trtype:TCP adrfam:IB traddr:1 subnqn:$nqn" -t 1
expect 2 "$any" "^pnvme-perf: -r .*traddr 'fe80::1' is not an IPv4 address" \
	-r "trtype:TCP adrfam:IPv4 traddr:fe80::1 subnqn:$nqn" -t 1
expect 2 "$any" "^pnvme-perf: -r .*no traddr" -r "trtype:TCP trsvcid:4420 subnqn:$nqn" -t 1
expect 2 "$any" "^pnvme-perf: -r .*unknown key 'frob'" -r "$tcp subnqn:$nqn frob:1" -t 1
expect 2 "$any" "^pnvme-perf: -r .*'traddr' is given twice" -r "$tcp traddr:10.0.0.1 subnqn:$nqn" -t 1
expect 2 "$any" "^pnvme-perf: -r .*'traddr:' has no value" -r "trtype:TCP traddr: subnqn:$nqn" -t 1
expect 2 "$any" "^pnvme-perf: -r .*'hostaddr' is not supported by pnvme-perf" \
	-r "$tcp subnqn:$nqn hostaddr:127.0.0.2" -t 1
expect 2 "$any" "^pnvme-perf: -r .*'trsvcid' is not supported with trtype:PCIe" \
	-r 'trtype:PCIe traddr:ffff:00:1f.0 trsvcid:4420' -t 1
expect 2 "$any" "^pnvme-perf: -r .*'junk' is not KEY:VALUE" -r "$tcp subnqn:$nqn junk" -t 1
expect 2 "$any" "^pnvme-perf: -r .*subnqn 'a\\?b' contains" -r "$tcp subnqn:a?b" -t 1
expect 2 "$any" '^pnvme-perf: empty device address' -d '' -t 1
expect 2 "$any" '^pnvme-perf: -H / -I \(digests\) apply to NVMe/TCP devices' -d emu -H -t 1

# A real run over TCP (tcp_peer_exec starts tests/tcp_peer.c, a fake target on
# 127.0.0.1, and puts its address and NQN into the environment).
PEER=${2:-}
if [ -n "$PEER" ]; then
	# peer_expect RC STDOUT_REGEX SHELL_COMMAND: as expect, the command run under the peer
	peer_expect() {
		want=$1; re_out=$2; cmd=$3
		PERF="$PERF" "$PEER" --blocks 8192 -- sh -c "$cmd" >"$tmp/out" 2>"$tmp/err"; rc=$?
		if [ "$rc" = "$want" ] && matches "$tmp/out" "$re_out" &&
		   grep -Eq '^tcp_peer: connects=[2-9][0-9]* io_reads=[1-9]' "$tmp/err"; then
			ok "over TCP: $cmd -> $rc"
		else
			bad "over TCP: $cmd -> exit $rc (wanted $want, stdout /$re_out/, peer I/O):"
			head -n 20 "$tmp/out" | sed 's/^/     out| /'
			head -n 20 "$tmp/err" | sed 's/^/     err| /'
		fi
	}
	peer_expect 0 '^Total +[0-9.]+ +[0-9.]+' '"$PERF" -d "$TCP_PEER_ADDR" -t 1 -q 4'
	peer_expect 0 '^verify: [1-9][0-9]* blocks checked, 0 mismatches' \
		'"$PERF" -r "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:$TCP_PEER_PORT subnqn:$TCP_PEER_SUBNQN ns:1" -t 1 -q 8 -o 8K -w randrw -j 2 -P 2 -H -I --verify'
fi

# --json records every option, with the format version.
core=$(awk '/^Cpus_allowed_list/ { print $2 }' /proc/self/status | sed 's/[-,].*//')
if "$PERF" -d emu:size=16M -n 1 -t 1 -a 0 -q 4 -o 8K -w randrw -M 70 -c "$core" -j 1 -P 2 -L -N \
	--lazy-cq --shadow-db --json >"$tmp/json" 2>"$tmp/err" &&
   python3 -c 'import json, sys
d = json.load(open(sys.argv[1])); c = d["config"]
want = {"nsid": 1, "seconds": 1, "warmup_seconds": 0, "queue_depth": 4, "io_size": 8192,
        "pattern": "randrw", "read_pct": 70, "cores": [int(sys.argv[2])], "workers": 1,
        "qpairs_per_worker": 2, "latency": 1, "sq_doorbell": "per-command",
        "cq_doorbell": "lazy", "shadow_db": True, "verify": False, "json": True,
        "tcp_hdr_digest": False, "tcp_data_digest": False, "classic": False}
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
