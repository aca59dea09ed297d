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
