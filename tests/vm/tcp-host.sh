#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# tcp-host.sh - the NVMe/TCP host test in the guest (scenario "tcp" of
# run-vm-tests.sh; packed as /bin/tcp-host.sh): the Linux kernel target
# (nvmet-tcp, set up with nvmet.sh) on 127.0.0.1:4420, pnvme as the host.
#
#   tcp-host.sh [test]       set up the target, run the steps, tear down
#   tcp-host.sh setup [ADDR] set up the target only (listening on ADDR:4420,
#                            default 127.0.0.1), for scenario tcp-target
#
# Target: subsystem $NQN_FILE = a 64 MiB tmpfs file (buffered_io) holding
# `tcpcheck pattern $SEED`, any host; subsystem $NQN_NULL = a 32 MiB
# memory-backed null_blk device, only host $HOST_OK (allow-list). Both on one
# port; the discovery controller is served there too (its log lists, for each
# host, only the subsystems that host may connect to).
#
# Every step prints "TCP: <step> ok|FAIL <detail> ms=T" and the harness line
# "VMTEST: tcp-<step> PASS|FAIL" (run-vm-tests.sh run_tcp lists the steps it
# expects); at the end "TCP: SUMMARY pass=N fail=M". Exit 0 iff nothing failed.
# Env (guest-init.sh sets them from the kernel command line):
#   SEED            data pattern seed (vmtest.seed=)
#   TCP_PNVME=1     the pnvme steps (vmtest.tcp_pnvme=; default 1)
#   TCP_SELFCHECK=0 the same target checked with the kernel's own NVMe/TCP host
#                   (nvme-tcp through /dev/nvme-fabrics): steps kh-* (vmtest.tcp_selfcheck=)
#
# The pnvme side of the contract (the programs pnvme and vmtest):
#   pnvme discover 127.0.0.1:4420            lines with subnqn=NQN and traddr=ADDR
#   pnvme discover -o json 127.0.0.1:4420    JSON with "records": [...]
#   pnvme id-ctrl ADDR                       nvme-cli style "field : value" lines
#                                            (subnqn, ioccsz, iorcsz, sgls, cntrltype)
#   vmtest tcp-rw ADDR [--queues N] [--hdgst] [--ddgst]
#                  whole namespace write/read/compare -> "TCPRW: ok bytes=N"
#   vmtest tcp-pattern-write ADDR SEED       whole namespace = `vmtest pattern SEED BYTES`
#   vmtest pattern SEED BYTES                that pattern on stdout
#   vmtest tcp-cut ADDR CMD                  I/O with verification on the namespace;
#                  once I/O is in flight it runs the shell command CMD (/bin/sh -c CMD,
#                  in a child: vmtest keeps polling and submitting while CMD runs; CMD
#                  removes the target port, waits 1 s, re-adds it and logs that to a
#                  file itself); after CMD exits vmtest goes on until the controller
#                  has reconnected and every request has completed, then checks that
#                  each completed exactly once and the data -> "TCPCUT: ok lost=0 doubled=0"
#                  (non-zero exit if CMD fails)
#   vmtest tcp-idle ADDR SECONDS             connect, stay idle SECONDS (no I/O, only
#                  the keep-alive the library sends from its poll), then I/O -> "TCPIDLE: ok";
#                  ADDR carries keep_alive_tmo=3 (seconds, in the Connect): the kernel target drops
#                  a controller that sends nothing for that long (it logs "keep-alive
#                  timer (3 seconds) expired", which fails the step)
#   wrong subsystem NQN / host NQN (not on the allow-list): `pnvme id-ctrl ADDR` exits
#                  1..123 with a message containing "subsystem" / "host" (besides the
#                  address and NQNs echoed); the kernel answers Connect Invalid
#                  Parameters (0x182, IATTR on SUBNQN) / Connect Invalid Host (0x184)
# where ADDR = tcp:127.0.0.1:4420/NQN[?OPT&OPT...] (built by addr() below, the one
# place that knows the address grammar); failures exit non-zero with a message.
NQN_FILE=nqn.2014-08.org.pnvme:file
NQN_NULL=nqn.2014-08.org.pnvme:null
NQN_NONE=nqn.2014-08.org.pnvme:missing
NQN_DISC=nqn.2014-08.org.nvmexpress.discovery
HOST_OK=nqn.2014-08.org.pnvme:host-ok
HOST_BAD=nqn.2014-08.org.pnvme:intruder
SVC=4420
TADDR=127.0.0.1
FILE=/tmp/tcp-file.img
FILE_MB=64
NULL_MB=32
NULLB_CFG=/sys/kernel/config/nullb/pnvme
KATO_S=3          # Keep Alive Timeout the idle steps ask for (seconds)
IDLE_S=10         # how long they stay idle: more than 3 x KATO
SEED=${SEED:-1}
TCP_PNVME=${TCP_PNVME:-1}
TCP_SELFCHECK=${TCP_SELFCHECK:-0}
LIMIT=180         # seconds any one pnvme/vmtest command may take
PASS=0 FAILS=0

# addr NQN [OPTION...]: a pnvme TCP address, options joined as ?a&b&c
addr() {
	a="tcp:$TADDR:$SVC/$1"; shift
	sep='?'
	for o in "$@"; do a="$a$sep$o"; sep='&'; done
	echo "$a"
}

now() { tcpcheck now; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }'; }
begin() { T=$(now); DMESG0=$(dmesg | wc -l); }
ok()  { PASS=$((PASS + 1)); echo "TCP: $1 ok ${2:+$2 }ms=$(since $T)"; echo "VMTEST: tcp-$1 PASS ${2:-}"; }
bad() { FAILS=$((FAILS + 1)); echo "TCP: $1 FAIL ${2:+$2 }ms=$(since $T)"; echo "VMTEST: tcp-$1 FAIL ${2:-}"; }
# kernel log lines since begin()
new_dmesg() { dmesg | tail -n +$((DMESG0 + 1)); }

# cap OUT CMD...: run CMD (at most LIMIT s) with its output in OUT, shown indented
cap() {
	out=$1; shift
	timeout $LIMIT "$@" > $out 2>&1
	rc=$?
	sed 's/^/    | /' $out
	case $rc in 124|143|137) echo "    | (stopped after ${LIMIT}s)" ;; esac
	return $rc
}

# refused STEP REGEX TARGET_LOG CMD...: CMD must fail (exit 1..123: not a
# timeout, not a signal) with a message matching REGEX (grep -Ei) in its output
# once the address and the NQNs are taken out of it (they contain words like
# "host"), and the target must have logged TARGET_LOG (a refused Connect)
refused() {
	step=$1; re=$2; tlog=$3; shift 3
	cap /tmp/refused.out "$@"; rc=$?
	msg=$(awk -v a="$*" -v n="$NQN_FILE $NQN_NULL $NQN_NONE $HOST_OK $HOST_BAD hostnqn" '
		BEGIN { k = split(a " " n, lit, " ") }   # addresses first, then NQNs, "hostnqn" last
		{ for (i = 1; i <= k; i++) if (index(lit[i], ":") || lit[i] == "hostnqn")
			while ((j = index($0, lit[i])) > 0)
				$0 = substr($0, 1, j - 1) "<...>" substr($0, j + length(lit[i]))
		  print }' /tmp/refused.out | grep -m1 -Ei "$re")
	if [ $rc -ge 1 ] && [ $rc -le 123 ] && [ -n "$msg" ] && new_dmesg | grep -q "$tlog"; then
		ok $step "exit $rc: $(grep -m1 -Ei "$re" /tmp/refused.out)"; return 0
	fi
	new_dmesg | grep -q "$tlog" && t="target refused it" || t="the target logged no '$tlog'"
	bad $step "exit $rc, wanted a failure with a message matching /$re/ (address and NQNs aside), $t: $(head -n 1 /tmp/refused.out)"
	return 1
}

# ---------------------------------------------------------------------------
# target
# ---------------------------------------------------------------------------
null_dev() {  # the memory-backed null_blk device through null_blk's configfs
	if [ ! -d $NULLB_CFG ]; then
		mkdir $NULLB_CFG || return 1
		echo $NULL_MB > $NULLB_CFG/size &&      # MiB
		echo 512 > $NULLB_CFG/blocksize &&
		echo 1 > $NULLB_CFG/memory_backed &&
		echo 1 > $NULLB_CFG/power || return 1
	fi
	# Linux 6.1 names a configfs null_blk disk after its configfs item (older
	# kernels: nullb<index>); wait up to 5 s for the device node
	i=0
	while [ $i -lt 50 ]; do
		for d in /dev/${NULLB_CFG##*/} /dev/nullb$(cat $NULLB_CFG/index); do
			[ -b $d ] && { echo $d; return 0; }
		done
		sleep 0.1; i=$((i + 1))
	done
	return 1
}

setup() {  # setup ADDR
	begin
	ip link set lo up
	grep -q ' /sys/kernel/config configfs' /proc/mounts ||
		mount -t configfs configfs /sys/kernel/config || { bad target "mount configfs"; return 1; }
	tcpcheck pattern $SEED $((FILE_MB << 20)) > $FILE || { bad target "pattern file"; return 1; }
	NB=$(null_dev) || { bad target "null_blk device through configfs"; return 1; }
	if nvmet.sh up $NQN_FILE $FILE $SVC $1 && nvmet.sh up $NQN_NULL $NB $SVC $1 &&
	   nvmet.sh allow $NQN_NULL $HOST_OK; then
		PORTID=$(nvmet.sh port-id $SVC $1)
		ok target "port $PORTID $1:$SVC: $NQN_FILE = $FILE ($FILE_MB MiB, pattern seed $SEED), $NQN_NULL = $NB ($NULL_MB MiB, host $HOST_OK only)"
	else
		bad target "nvmet.sh failed"; return 1
	fi
}

# ---------------------------------------------------------------------------
# the kernel's NVMe/TCP host, for the self-check
# ---------------------------------------------------------------------------
# kh_connect NQN [OPTIONS]: sets CTRL (nvmeN) and NS (/dev/nvmeXnY, empty for a
# discovery controller); waits (10 s) until the controller is live and the
# namespace has a block device.
kh_connect() {
	CTRL= NS=
	r=$(tcpcheck connect "transport=tcp,traddr=$TADDR,trsvcid=$SVC,nqn=$1${2:+,$2}" 2>&1) ||
		{ echo "    | $r"; return 1; }
	CTRL=nvme$(echo "$r" | sed -n 's/^instance=\([0-9]*\),.*/\1/p')
	i=0
	until [ "$(cat /sys/class/nvme/$CTRL/state 2>/dev/null)" = live ]; do
		i=$((i + 1)); [ $i -gt 100 ] && { echo "    | $CTRL not live"; return 1; }
		sleep 0.1
	done
	echo "    | kernel host: $CTRL ($r) $1 ${2:-}"
	[ "$1" = $NQN_DISC ] && return 0
	i=0
	while :; do
		# native multipath: /sys/class/nvme/nvmeN/nvmeXcNnY, block device nvmeXnY
		for e in /sys/class/nvme/$CTRL/nvme*n1; do
			[ -e "$e" ] || continue
			b=$(basename $e | sed 's/c[0-9]*n/n/')
			[ -b /dev/$b ] && [ "$(cat /sys/block/$b/size)" != 0 ] && NS=/dev/$b
		done
		[ -n "$NS" ] && return 0
		i=$((i + 1)); [ $i -gt 100 ] && { echo "    | $CTRL: no namespace block device"; return 1; }
		sleep 0.1
	done
}

kh_disconnect() {  # kh_disconnect nvmeN
	[ -e /sys/class/nvme/$1/delete_controller ] || return 0
	echo 1 > /sys/class/nvme/$1/delete_controller
	i=0
	while [ -e /sys/class/nvme/$1 ]; do
		i=$((i + 1)); [ $i -gt 100 ] && return 1
		sleep 0.1
	done
}

# region_is FILE OFFSET_MIB MIB SEED: MIB MiB of FILE at OFFSET_MIB (read with
# O_DIRECT when FILE is a block device) equal pattern SEED
region_is() {
	fl=; [ -b "$1" ] && fl=iflag=direct
	tcpcheck pattern $4 $(($3 << 20)) > /tmp/want.bin
	dd if=$1 of=/tmp/got.bin bs=1M skip=$2 count=$3 $fl 2>/dev/null &&
		cmp /tmp/want.bin /tmp/got.bin
	rc=$?
	rm -f /tmp/want.bin /tmp/got.bin
	return $rc
}

# region_same DEV FILE OFFSET_MIB MIB: the same bytes in DEV (O_DIRECT) and FILE
region_same() {
	dd if=$1 of=/tmp/got.bin bs=1M skip=$3 count=$4 iflag=direct 2>/dev/null &&
		dd if=$2 of=/tmp/want.bin bs=1M skip=$3 count=$4 2>/dev/null && cmp /tmp/want.bin /tmp/got.bin
	rc=$?
	rm -f /tmp/want.bin /tmp/got.bin
	return $rc
}

# region_write DEV OFFSET_MIB MIB SEED [BS]: pattern SEED to DEV with O_DIRECT
# writes of BS bytes (default 1 MiB)
region_write() {
	bs=${5:-1048576}
	tcpcheck pattern $4 $(($3 << 20)) > /tmp/w.bin
	dd if=/tmp/w.bin of=$1 bs=$bs seek=$((($2 << 20) / bs)) oflag=direct conv=notrunc 2>/dev/null
	rc=$?
	rm -f /tmp/w.bin
	return $rc
}

selfcheck() {
	echo "TCP: === self-check: the kernel's nvme-tcp host against the target"
	begin
	if kh_connect $NQN_DISC && tcpcheck disc-log /dev/$CTRL > /tmp/disc.out 2>&1 &&
	   kh_disconnect $CTRL &&
	   kh_connect $NQN_DISC hostnqn=$HOST_OK && tcpcheck disc-log /dev/$CTRL > /tmp/disc-ok.out 2>&1 &&
	   kh_disconnect $CTRL; then
		sed 's/^/    | (any host) /' /tmp/disc.out; sed "s/^/    | ($HOST_OK) /" /tmp/disc-ok.out
		e="subtype=nvme .*trsvcid=$SVC traddr=$TADDR subnqn"
		if grep -q "$e=$NQN_FILE\$" /tmp/disc.out && ! grep -q "subnqn=$NQN_NULL\$" /tmp/disc.out &&
		   grep -q "$e=$NQN_FILE\$" /tmp/disc-ok.out && grep -q "$e=$NQN_NULL\$" /tmp/disc-ok.out; then
			ok kh-discover "$(head -n 1 /tmp/disc-ok.out); $NQN_NULL listed for $HOST_OK only"
		else
			bad kh-discover "discovery log entries not as expected"
		fi
	else
		cat /tmp/disc.out 2>/dev/null; bad kh-discover "discovery controller"; kh_disconnect $CTRL
	fi

	begin
	if kh_connect $NQN_FILE && [ "$(cat /sys/block/${NS#/dev/}/size)" = $((FILE_MB * 2048)) ] &&
	   [ "$(cat /sys/class/nvme/$CTRL/subsysnqn)" = $NQN_FILE ]; then
		ok kh-connect "$CTRL $NS $(cat /sys/block/${NS#/dev/}/size) sectors, transport $(cat /sys/class/nvme/$CTRL/transport), cntlid $(cat /sys/class/nvme/$CTRL/cntlid)"
		begin
		if region_is $NS 0 $FILE_MB $SEED; then
			ok kh-read "whole namespace ($FILE_MB MiB, O_DIRECT) = pattern $SEED"
		else bad kh-read "namespace differs from the pattern the file was written with"; fi
		begin
		if region_write $NS 8 1 $((SEED + 1)) && region_is $FILE 8 1 $((SEED + 1)) &&
		   region_write $NS 12 1 $((SEED + 2)) 4096 && region_is $FILE 12 1 $((SEED + 2)); then
			ok kh-write "1 MiB in 1 MiB writes (R2T) and 1 MiB in 4 KiB writes (in-capsule) reached the backing file"
		else bad kh-write "backing file differs after writes through TCP"; fi
	else
		bad kh-connect "$CTRL $NS"
	fi
	kh_disconnect $CTRL

	begin
	if kh_connect $NQN_FILE hdr_digest,data_digest && region_write $NS 16 1 $((SEED + 3)) &&
	   region_is $FILE 16 1 $((SEED + 3)) && region_is $NS 16 1 $((SEED + 3)); then
		ok kh-digest "hdr_digest,data_digest: 1 MiB write + read back"
	else bad kh-digest "round trip with digests"; fi
	kh_disconnect $CTRL

	begin
	if kh_connect $NQN_NULL hostnqn=$HOST_OK && region_write $NS 1 2 $((SEED + 4)) &&
	   region_is $NS 1 2 $((SEED + 4)); then
		ok kh-host-allowed "$HOST_OK on $NQN_NULL: $NS, 2 MiB round trip"
	else bad kh-host-allowed "$HOST_OK could not use $NQN_NULL"; fi
	kh_disconnect $CTRL

	begin
	if kh_connect $NQN_NULL hostnqn=$HOST_BAD; then
		bad kh-host-refused "$HOST_BAD connected to $NQN_NULL"; kh_disconnect $CTRL
	elif new_dmesg | grep -q "connect by host $HOST_BAD for subsystem $NQN_NULL not allowed"; then
		ok kh-host-refused "target: $(new_dmesg | grep -m1 'not allowed' | sed 's/^\[[ 0-9.]*\] //')"
	else bad kh-host-refused "refused, but the target did not log 'not allowed'"; fi

	begin
	if kh_connect $NQN_NONE; then
		bad kh-subsys-refused "connected to $NQN_NONE"; kh_disconnect $CTRL
	elif new_dmesg | grep -q "invalid subsystem $NQN_NONE"; then
		ok kh-subsys-refused "target: $(new_dmesg | grep -m1 'invalid subsystem' | sed 's/^\[[ 0-9.]*\] //')"
	else bad kh-subsys-refused "refused, but the target did not log 'invalid subsystem'"; fi

	# port cut during I/O: the kernel host reconnects and retries
	begin
	if kh_connect $NQN_FILE reconnect_delay=1,ctrl_loss_tmo=60; then
		tcpcheck pattern $((SEED + 5)) $((32 << 20)) > /tmp/cut.bin
		dd if=/tmp/cut.bin of=$NS bs=64k oflag=direct conv=notrunc 2>/dev/null &
		DD=$!
		sleep 0.5
		nvmet.sh port-remove $PORTID | sed 's/^/    | /'
		running=no; kill -0 $DD 2>/dev/null && running=yes
		sleep 1
		nvmet.sh port-add $PORTID | sed 's/^/    | /'
		wait $DD; rc=$?
		rm -f /tmp/cut.bin
		rec=$(new_dmesg | grep -cE 'Successfully reconnected|creating (nvm|I/O) controller')
		if [ $rc = 0 ] && [ $running = yes ] && region_is $FILE 0 32 $((SEED + 5)) &&
		   new_dmesg | grep -q 'Successfully reconnected'; then
			ok kh-cut "32 MiB write with the port removed for 1 s: the kernel host reconnected, data complete"
		else
			bad kh-cut "dd exit $rc, still running at the cut: $running, reconnect lines $rec"
		fi
		new_dmesg | grep -E 'nvme|nvmet' | sed 's/^/    dmesg| /' | tail -n 12
	else bad kh-cut "connect"; fi
	kh_disconnect $CTRL

	begin
	if kh_connect $NQN_FILE keep_alive_tmo=$KATO_S; then
		sleep $IDLE_S
		if region_same $NS $FILE 0 1 && [ "$(cat /sys/class/nvme/$CTRL/state)" = live ] &&
		   ! new_dmesg | grep -q 'keep-alive timer.*expired'; then
			ok kh-idle "keep_alive_tmo=$KATO_S, idle ${IDLE_S}s, then read: controller kept"
		else bad kh-idle "state $(cat /sys/class/nvme/$CTRL/state 2>/dev/null): $(new_dmesg | grep -m1 'keep-alive')"; fi
	else bad kh-idle "connect"; fi
	kh_disconnect $CTRL
}

# ---------------------------------------------------------------------------
# pnvme as the host
# ---------------------------------------------------------------------------
pnvme_steps() {
	echo "TCP: === pnvme host against the kernel target"
	BYTES_FILE=$((FILE_MB << 20))
	begin
	if cap /tmp/disc.out pnvme discover $TADDR:$SVC &&
	   grep -E "subnqn=$NQN_FILE( |\$)" /tmp/disc.out | grep -q "traddr=$TADDR"; then
		ok discover "$NQN_FILE listed with traddr=$TADDR"
	else bad discover "exit $rc, no line with subnqn=$NQN_FILE and traddr=$TADDR"; fi

	begin
	if cap /tmp/disc.json pnvme discover -o json $TADDR:$SVC && grep -q '"records" *: *\[' /tmp/disc.json &&
	   grep -q "\"$NQN_FILE\"" /tmp/disc.json; then
		ok discover-json "\"records\" with $NQN_FILE"
	else bad discover-json "exit $rc, no \"records\" array with $NQN_FILE"; fi

	begin
	# IOCCSZ (16-byte units) = 64-byte SQE + the port's in-capsule data size
	inl=$(cat /sys/kernel/config/nvmet/ports/$PORTID/param_inline_data_size 2>/dev/null)
	want=$(( (64 + ${inl:-0}) / 16 ))
	if cap /tmp/idctrl.out pnvme id-ctrl "$(addr $NQN_FILE)" &&
	   grep -Eq "^subnqn +: *$NQN_FILE *\$" /tmp/idctrl.out &&
	   grep -Eq "^ioccsz +: *(0x)?$want *\$|^ioccsz +: *0x$(printf %x $want) *\$" /tmp/idctrl.out &&
	   grep -Eq "^iorcsz +: *(0x)?1 *\$" /tmp/idctrl.out && grep -Eq '^sgls +: ' /tmp/idctrl.out &&
	   grep -Eq '^cntrltype +: *(0x)?1 *$' /tmp/idctrl.out; then
		ok id-ctrl "subnqn, ioccsz $want, iorcsz 1, sgls, cntrltype 1"
	else bad id-ctrl "exit $rc, wanted subnqn : $NQN_FILE, ioccsz : $want, iorcsz : 1, sgls, cntrltype : 1"; fi

	rw() {  # rw STEP BYTES ADDR ARGS...
		step=$1 bytes=$2; shift 2
		begin
		if cap /tmp/rw.out vmtest tcp-rw "$@" && grep -q "^TCPRW: ok bytes=$bytes\$" /tmp/rw.out; then
			ok $step "$(grep '^TCPRW:' /tmp/rw.out) ($*)"
		else bad $step "exit $rc, wanted TCPRW: ok bytes=$bytes ($*)"; fi
	}
	rw rw "$BYTES_FILE" "$(addr $NQN_FILE)" --queues 2
	rw rw-digest "$BYTES_FILE" "$(addr $NQN_FILE)" --queues 2 --hdgst --ddgst
	rw rw-null "$((NULL_MB << 20))" "$(addr $NQN_NULL hostnqn=$HOST_OK)" --queues 4

	begin
	S2=$((SEED + 100))
	if cap /tmp/pw.out vmtest tcp-pattern-write "$(addr $NQN_FILE)" $S2; then
		if vmtest pattern $S2 $BYTES_FILE | cmp - $FILE > /tmp/cmp.out 2>&1; then
			ok pattern-write "$FILE = vmtest pattern $S2 $BYTES_FILE, byte for byte"
		else bad pattern-write "backing file differs: $(cat /tmp/cmp.out)"; fi
	else bad pattern-write "exit $rc"; fi

	begin
	refused wrong-subnqn 'subsystem' "invalid subsystem $NQN_NONE" pnvme id-ctrl "$(addr $NQN_NONE)"
	begin
	refused wrong-hostnqn 'host' "host $HOST_BAD for subsystem $NQN_NULL not allowed" \
		pnvme id-ctrl "$(addr $NQN_NULL hostnqn=$HOST_BAD)"

	begin
	before=$(dmesg | grep -c 'creating nvm controller')
	rm -f /tmp/cut-cmd.log
	if cap /tmp/cut.out vmtest tcp-cut "$(addr $NQN_FILE)" \
		"nvmet.sh port-remove $PORTID >> /tmp/cut-cmd.log 2>&1 && sleep 1 && nvmet.sh port-add $PORTID >> /tmp/cut-cmd.log 2>&1" &&
	   grep -q '^TCPCUT: ok lost=0 doubled=0' /tmp/cut.out; then
		sed 's/^/    | cmd: /' /tmp/cut-cmd.log 2>/dev/null
		after=$(dmesg | grep -c 'creating nvm controller')
		# vmtest ran the cut, and the target saw a new controller after it: the
		# host reconnected (the first connect is one, the reconnect another)
		if grep -q "port $PORTID removed" /tmp/cut-cmd.log && grep -q "port $PORTID re-added" /tmp/cut-cmd.log &&
		   [ $after -gt $((before + 1)) ]; then
			ok cut "$(grep '^TCPCUT:' /tmp/cut.out); target: $((after - before)) controllers created"
		else bad cut "TCPCUT ok, but the port was not removed and re-added, or the target saw no reconnect ($((after - before)) controllers created)"; fi
	else bad cut "exit $rc, wanted TCPCUT: ok lost=0 doubled=0"; fi
	nvmet.sh ports | grep -q "port $PORTID " || nvmet.sh port-add $PORTID

	begin
	if cap /tmp/idle.out vmtest tcp-idle "$(addr $NQN_FILE keep_alive_tmo=$KATO_S)" $IDLE_S &&
	   grep -q '^TCPIDLE: ok' /tmp/idle.out; then
		if new_dmesg | grep -q 'keep-alive timer.*expired'; then
			bad idle "TCPIDLE ok but the target's keep-alive timer expired: $(new_dmesg | grep -m1 'keep-alive')"
		else ok idle "kato $KATO_S s, idle $IDLE_S s: $(grep '^TCPIDLE:' /tmp/idle.out)"; fi
	else bad idle "exit $rc, wanted TCPIDLE: ok"; fi
}

teardown() {
	begin
	for c in /sys/class/nvme/nvme*; do
		[ "$(cat $c/transport 2>/dev/null)" = tcp ] && kh_disconnect ${c##*/}
	done
	if nvmet.sh down > /tmp/down.out 2>&1; then
		sed 's/^/    | /' /tmp/down.out
		i=0
		while grep -q ":$(printf %04X $SVC) [0-9A-F:]* 0A " /proc/net/tcp && [ $i -lt 50 ]; do
			sleep 0.1; i=$((i + 1))
		done
		if [ $i -lt 50 ]; then ok teardown "target removed, port $SVC closed"
		else bad teardown "port $SVC still listening"; fi
	else
		sed 's/^/    | /' /tmp/down.out; bad teardown "nvmet.sh down"
	fi
	[ -d $NULLB_CFG ] && { echo 0 > $NULLB_CFG/power; rmdir $NULLB_CFG; }
	rm -f $FILE
}

case "${1:-test}" in
setup)
	setup "${2:-$TADDR}" ;;
test)
	echo "TCP: guest $(uname -r), pattern seed $SEED, pnvme steps $TCP_PNVME, kernel-host self-check $TCP_SELFCHECK"
	if setup $TADDR; then
		[ "$TCP_SELFCHECK" = 1 ] && selfcheck
		[ "$TCP_PNVME" = 1 ] && pnvme_steps
	fi
	teardown
	echo "TCP: SUMMARY pass=$PASS fail=$FAILS"
	[ $FAILS = 0 ] ;;
*) echo "usage: tcp-host.sh [test] | setup [ADDR]" >&2; exit 2 ;;
esac
