#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# test_tool_tgt.sh PNVME_TGT PNVME - pnvme-tgt's command line: --help and
# --version exit 0, bad usage exits 2 with a message, and a target exporting
# an emulated namespace on 127.0.0.1 (a free port) answers `pnvme discover`
# and `pnvme id-ctrl` over NVMe/TCP, then stops cleanly (exit 0) on SIGTERM.
# The JSON configuration (-c): a valid file serves the same way (with a
# discovery-only port); each kind of bad file is refused with its message.
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
for args in "" "--bogus" "-n emu" "-s $NQN -n emu -t 0" "-c $tmp/none.json -s $NQN" \
	"-s $NQN -n emu --discovery-port 0" "-s $NQN -n emu --spin-us -1" \
	"-s $NQN -n emu --spin-us 2000000"; do
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
# start_tgt ARGS...: run pnvme-tgt in the background, wait for its port (in $port).
start_tgt() {
	"$TGT" "$@" >"$tmp/tgt" 2>&1 &
	pid=$!
	port=
	for _ in $(seq 1 100); do
		port=$(sed -n 's/.*listening on .*, port \([0-9]*\)$/\1/p' "$tmp/tgt")
		[ -n "$port" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$port" ]
}
stop_tgt() {
	kill -TERM "$pid"
	wait "$pid"; rc=$?
	pid=
	[ "$rc" = 0 ]
}

# A valid configuration, end to end, with a discovery-only port.
dport=$((20000 + $$ % 20000))
cat >"$tmp/ok.json" <<EOF
{
  "listen": "127.0.0.1:0",
  "discovery_port": $dport,
  "icd": 4096, "digests": true, "threads": 2, "cpus": [0],
  "subsystems": [
    { "nqn": "$NQN-cfg", "allow_any_host": true,
      "namespaces": [ { "device": "emu:size=16M", "device_nsid": 1, "nsid": 3 } ] },
    { "nqn": "$NQN-hidden", "hosts": ["nqn.2024-01.io.pnvme:someone-else"],
      "namespaces": [ { "device": "emu:size=8M" } ] }
  ]
}
EOF
if start_tgt -c "$tmp/ok.json"; then
	"$PNVME" discover "127.0.0.1:$port" >"$tmp/disc" 2>&1 && grep -q "subnqn=$NQN-cfg" "$tmp/disc" \
		&& ! grep -q "subnqn=$NQN-hidden" "$tmp/disc" && ok "config: discover" \
		|| bad "config: discover: $(cat "$tmp/disc")"
	"$PNVME" discover "127.0.0.1:$dport" >"$tmp/disc" 2>&1 && grep -q "subnqn=$NQN-cfg" "$tmp/disc" \
		&& grep -q "trsvcid=$port" "$tmp/disc" && ok "config: discover on discovery_port" \
		|| bad "config: discover on $dport: $(cat "$tmp/disc")"
	"$PNVME" id-ctrl "tcp:127.0.0.1:$port/$NQN-cfg" >"$tmp/id" 2>&1 && grep -q 'pnvme-tgt' "$tmp/id" \
		&& ok "config: id-ctrl over TCP" || bad "config: id-ctrl: $(cat "$tmp/id")"
	grep -q "$NQN-cfg namespace 3 = emu:size=16M namespace 1" "$tmp/tgt" \
		&& ok "config: namespace nsid" || bad "config: namespace: $(cat "$tmp/tgt")"
	stop_tgt && ok "config: SIGTERM -> 0" || bad "config: SIGTERM -> $rc"
elif grep -q "cannot listen" "$tmp/tgt"; then
	echo "skip config end to end: port $dport busy"
else
	bad "config: pnvme-tgt did not start: $(cat "$tmp/tgt")"
fi

# Bad configurations: exit 2 and the message (with line:column where it applies).
# bad_cfg NAME 'JSON' 'expected message (grep -F)'
bad_cfg() {
	printf '%s\n' "$2" >"$tmp/bad.json"
	"$TGT" -c "$tmp/bad.json" >"$tmp/out" 2>"$tmp/err"; rc=$?
	if [ "$rc" = 2 ] && grep -qF -- "$3" "$tmp/err"; then ok "bad config: $1"
	else bad "bad config: $1 -> $rc: $(cat "$tmp/err")"; fi
}
S='"subsystems": [{"nqn": "nqn.2024-01.io.pnvme:x", "namespaces": [{"device": "emu:size=1M"}]}]'
bad_cfg syntax '{"subsystems": [}' "bad.json:1:17: unexpected character '}'"
bad_cfg "line:column" '{
  "threads": "2",
  '"$S"'
}' 'bad.json:2:3: "threads": want a number, not a string'
bad_cfg range '{"threads": 0, '"$S"'}' '"threads": 0 is out of range 1..64'
bad_cfg "unknown key" '{"bogus": 1, '"$S"'}' 'unknown key "bogus"'
bad_cfg "no subsystems" '{"listen": "127.0.0.1:0"}' 'no "subsystems": nothing to export'
bad_cfg "empty subsystems" '{"subsystems": []}' 'no "subsystems": nothing to export'
bad_cfg "no nqn" '{"subsystems": [{"namespaces": []}]}' 'a subsystem needs "nqn"'
bad_cfg duplicate '{"subsystems": [{"nqn": "a", "nqn": "b"}]}' 'bad.json:1:30: duplicate member "nqn"'
bad_cfg depth '[[[[[[[[[[]]]]]]]]]]' 'nested deeper than 8 levels'
bad_cfg "not integer" '{"icd": 1.5, '"$S"'}' 'integers only'
bad_cfg "no device" '{"subsystems": [{"nqn": "a", "namespaces": [{"nsid": 1}]}]}' 'a namespace needs "device"'
bad_cfg "namespace key" '{"subsystems": [{"nqn": "a", "namespaces": [{"device": "x", "lun": 1}]}]}' \
	'unknown namespace key "lun"'
bad_cfg "trailing text" '{'"$S"'} x' 'unexpected text after the configuration'
bad_cfg "unterminated" '{"listen": "127.0' 'unterminated string'
bad_cfg "not an object" '[1, 2]' 'the configuration is an object'
bad_cfg "cpus" '{"cpus": [64], '"$S"'}' '64 is out of range 0..63'
"$TGT" -c "$tmp/none.json" >"$tmp/out" 2>"$tmp/err"; rc=$?
[ "$rc" = 2 ] && grep -q "none.json: No such file" "$tmp/err" && ok "bad config: no file" \
	|| bad "bad config: no file -> $rc: $(cat "$tmp/err")"
head -c 1100000 /dev/zero | tr '\0' ' ' >"$tmp/big.json"
"$TGT" -c "$tmp/big.json" >"$tmp/out" 2>"$tmp/err"; rc=$?
[ "$rc" = 2 ] && grep -q "larger than" "$tmp/err" && ok "bad config: too big" \
	|| bad "bad config: too big -> $rc: $(cat "$tmp/err")"
# Well-formed, refused by the target: a bad NQN (exit 1, the library's message).
printf '{"subsystems": [{"nqn": "%s"}]}\n' "$(head -c 300 /dev/zero | tr '\0' n)" >"$tmp/bad.json"
"$TGT" -c "$tmp/bad.json" >"$tmp/out" 2>"$tmp/err"; rc=$?
[ "$rc" = 1 ] && grep -q "bad subsystem NQN" "$tmp/err" && ok "config: bad NQN -> 1" \
	|| bad "config: bad NQN -> $rc: $(cat "$tmp/err")"
# The null device: no thread of its own (main thread + one poller), served over TCP.
if start_tgt -l 127.0.0.1:0 -s "$NQN" -n null:size=16M,bs=4096 --allow-any-host --spin-us 0; then
	n=$(ls /proc/"$pid"/task | wc -l)
	want=2; grep -qa __tsan_init "$TGT" && want=3   # ThreadSanitizer's own background thread
	[ "$n" = "$want" ] && ok "null: backend, $n threads" || bad "null: backend: $n threads (want $want)"
	"$PNVME" id-ns "tcp:127.0.0.1:$port/$NQN" -n 1 >"$tmp/id" 2>&1 && grep -q 4096 "$tmp/id" \
		&& ok "null: id-ns over TCP" || bad "null: id-ns: $(cat "$tmp/id")"
	stop_tgt && ok "null: SIGTERM -> 0" || bad "null: SIGTERM: $(cat "$tmp/tgt")"
else
	bad "pnvme-tgt -n null:... did not start: $(cat "$tmp/tgt")"
fi
[ "$fails" = 0 ] || exit 1
