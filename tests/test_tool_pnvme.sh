#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# test_tool_pnvme.sh PNVME - the pnvme tool against the emulated controller
# (no hardware, no root): output, JSON, exit codes 0 / 1 / 2, error messages.
# Never binds anything: the only PCI addresses used are malformed ones.
set -u
PNVME=${1:?usage: test_tool_pnvme.sh PATH_TO_PNVME}
fails=0
ok()   { echo "ok   $*"; }
bad()  { echo "FAIL $*"; fails=$((fails + 1)); }

# expect RC REGEX ARGS...: exit status RC and output (stdout+stderr) matching REGEX
expect() {
	want=$1; re=$2; shift 2
	out=$("$PNVME" "$@" 2>&1); rc=$?
	if [ "$rc" = "$want" ] && printf '%s\n' "$out" | grep -Eq -- "$re"; then
		ok "pnvme $* -> $rc"
	else
		bad "pnvme $* -> exit $rc (wanted $want, /$re/):"
		printf '%s\n' "$out" | sed 's/^/     | /'
	fi
}

expect 0 '^mn +: pnvme emulated' id-ctrl emu
expect 0 '^\{"vid": [0-9]+, .*"mdts": 5, .*"active_ns": 1\}$' id-ctrl emu:size=16M -o json
expect 0 '"active_ns": 3' id-ctrl emu:ns=3 --output-format=json
expect 0 'lbads:12 rp:0 \(in use\)' id-ns emu:ns=2,lba=4096 -n 2
expect 0 '^\{"nsid": 1, "nsze": 32768, .*"lba_size": 512' id-ns emu:size=16M -n 1 -o json
expect 1 '^pnvme: namespace 3 is not active' id-ns emu -n 3
expect 0 '^temperature +: [0-9]+ K' smart-log emu
expect 0 '"data_units_written": [0-9]+' smart-log emu -o json
expect 0 '^\{"entries": \[' error-log emu -o json
expect 0 'error log entries|^entry' error-log emu
expect 1 '^pnvme: .*(unknown|bad|option|emu)' id-ctrl emu:frobnicate=1
expect 1 "^pnvme: 'zz:1' is not a PCI address" bind zz:1
expect 1 "^pnvme: 'xyz' is not a PCI address" unbind xyz
expect 1 "^pnvme: '0000:00:zz.0' is neither a PCI address" id-ctrl 0000:00:zz.0
expect 2 '^usage: pnvme' id-ns emu
expect 2 '^usage: pnvme' bind
expect 2 'unknown command' frobnicate
expect 2 'output format must be json' list -o xml
expect 2 '^usage: pnvme' setup
expect 2 'no command'
expect 0 '^usage: pnvme' --help
expect 0 '' list
expect 0 '^\{' list -o json
[ "$fails" = 0 ] && echo "all passed" || echo "$fails failed"
[ "$fails" = 0 ]
