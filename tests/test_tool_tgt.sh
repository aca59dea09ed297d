#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# test_tool_tgt.sh PNVME_TGT PNVME - pnvme-tgt's command line: --help and
# --version exit 0, bad usage exits 2 with a message, and a target exporting
# an emulated namespace on 127.0.0.1 (a free port) answers `pnvme discover`
# and `pnvme id-ctrl` over NVMe/TCP, then stops cleanly (exit 0) on SIGTERM.
set -u
TGT=${1:?usage: test_tool_tgt.sh PNVME_TGT PNVME}
PNVME=${2:?usage: test_tool_tgt.sh PNVME_TGT PNVME}
fails=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
NQN=nqn.2024-01.io.pnvme:tool-test

"$TGT" --help >"$tmp/out" 2>&1 && grep -q -- '--allow-any-host' "$tmp/out" && ok "--help" || bad "--help"
"$TGT" --version >"$tmp/out" 2>&1 && grep -Eq '^pnvme-tgt [0-9]' "$tmp/out" && ok "--version" || bad "--version"
for args in "" "--bogus" "-n emu" "-s $NQN -n emu -t 0" "-c x.json -s $NQN"; do
	# shellcheck disable=SC2086
	"$TGT" $args >"$tmp/out" 2>"$tmp/err"; rc=$?
	if [ "$rc" = 2 ] && [ -s "$tmp/err" ]; then ok "pnvme-tgt $args -> 2"; else bad "pnvme-tgt $args -> $rc"; fi
done

"$TGT" -l 127.0.0.1:0 -s "$NQN" -n emu:size=16M --allow-any-host -t 2 >"$tmp/tgt" 2>&1 &
pid=$!
port=
for _ in $(seq 1 100); do
	port=$(sed -n 's/.*listening on .*, port \([0-9]*\)$/\1/p' "$tmp/tgt")
	[ -n "$port" ] && break
	sleep 0.1
done
if [ -z "$port" ]; then
	bad "pnvme-tgt did not start: $(cat "$tmp/tgt")"
else
	"$PNVME" discover "127.0.0.1:$port" >"$tmp/disc" 2>&1 && grep -q "subnqn=$NQN" "$tmp/disc" \
		&& ok "discover" || bad "discover: $(cat "$tmp/disc")"
	"$PNVME" id-ctrl "tcp:127.0.0.1:$port/$NQN" >"$tmp/id" 2>&1 && grep -q 'pnvme-tgt' "$tmp/id" \
		&& ok "id-ctrl over TCP" || bad "id-ctrl: $(cat "$tmp/id")"
	kill -TERM "$pid"
	wait "$pid"; rc=$?
	pid=
	if [ "$rc" = 0 ] && grep -q stopping "$tmp/tgt"; then ok "SIGTERM -> 0"; else bad "SIGTERM -> $rc: $(cat "$tmp/tgt")"; fi
fi
[ "$fails" = 0 ] || exit 1
