#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# tgt-host.sh - pnvme-tgt in the guest, the Linux kernel's NVMe/TCP host
# (nvme-tcp through /dev/nvme-fabrics) as its client on 127.0.0.1:4420
# (scenario "tgt" of run-vm-tests.sh; packed as /bin/tgt-host.sh).
#
#   tgt-host.sh        bind the drive, start pnvme-tgt, run the steps, stop it
#
# Target: subsystem $NQN_A = the QEMU NVMe drive $BDF_A (64 MiB, 512 B blocks)
# bound to vfio-pci, namespace 1; subsystem $NQN_B = an emulated namespace
# (emu:size=64M). Both allow host $HOST_OK only. The kernel host connects with
# hostnqn=$HOST_OK (and is refused as $HOST_BAD).
#
# Steps, in order (each prints "TGT: <step> ok|FAIL <detail> ms=T" and the
# harness line "VMTEST: tgt-<step> PASS|FAIL"; run-vm-tests.sh run_tgt lists them):
#   bind          pnvme bind $BDF_A (vfio-pci)
#   start         pnvme-tgt listening on 127.0.0.1:4420
#   discover      the discovery log for $HOST_OK lists A and B; for $HOST_BAD neither
#   host-refused  Connect as $HOST_BAD refused, pnvme-tgt logs "host ... may not use"
#   connect       the kernel connects to A (keep_alive_tmo=3, reconnect_delay=1) and B
#   fs-A, fs-B    mkfs.ext4 (discards the namespace: Dataset Management), mount,
#                 files written, umount, e2fsck -fn clean, mount again and the
#                 files read back (md5); no I/O error in the kernel log
#   rw-A, rw-B    pattern over the whole namespace (O_DIRECT, fsync), read back, cmp
#                 (A: seed SEED, B: SEED+1)
#   keepalive     A idle 10 s (over 3 x KATO), then read: same controller, no reconnect,
#                 no "no Keep Alive" teardown in pnvme-tgt's log
#   kill          B disconnected; a dd writing pattern SEED+2 over A's second half
#                 runs when pnvme-tgt gets SIGKILL; pnvme-tgt restarted on the port
#                 after 1 s; the kernel host reconnects
#   intact        A's first half (written and flushed before the kill) = pattern SEED
#   rewrite       A's second half rewritten with pattern SEED+2 and read back
#   stop          the kernel host disconnects; SIGTERM: pnvme-tgt exits 0, port closed
# Afterwards run-vm-tests.sh compares the drive's image with
#   first 32 MiB of pattern SEED (64 MiB), then pattern SEED+2 (32 MiB).
# Patterns: `tcpcheck pattern SEED BYTES`. At the end "TGT: SUMMARY pass=N fail=M";
# exit 0 iff nothing failed.
BDF_A=${BDF_A:-0000:00:04.0}
NQN_A=nqn.2014-08.org.pnvme:tgt-vfio
NQN_B=nqn.2014-08.org.pnvme:tgt-emu
NQN_DISC=nqn.2014-08.org.nvmexpress.discovery
HOST_OK=nqn.2014-08.org.pnvme:kernel-host
HOST_BAD=nqn.2014-08.org.pnvme:intruder
# each host NQN with its own host id (newer kernels refuse one id under two NQNs)
ID_OK=hostid=6b9f1b52-1c0e-4a8e-9d2f-0a1b2c3d4e01
ID_BAD=hostid=6b9f1b52-1c0e-4a8e-9d2f-0a1b2c3d4e02
TADDR=127.0.0.1
SVC=4420
MB=64             # both namespaces
KATO_S=3
IDLE_S=10         # more than 3 x KATO
SEED=${SEED:-1}
TGT_LOG=/tmp/pnvme-tgt.log
MKFS=/usr/sbin/mke2fs
FSCK=/usr/sbin/e2fsck
PASS=0 FAILS=0
TGT_PID=

now() { tcpcheck now; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }'; }
begin() { T=$(now); DMESG0=$(dmesg | wc -l); TLOG0=$(wc -l < $TGT_LOG 2>/dev/null || echo 0); }
ok()  { PASS=$((PASS + 1)); echo "TGT: $1 ok ${2:+$2 }ms=$(since $T)"; echo "VMTEST: tgt-$1 PASS ${2:-}"; }
bad() { FAILS=$((FAILS + 1)); echo "TGT: $1 FAIL ${2:+$2 }ms=$(since $T)"; echo "VMTEST: tgt-$1 FAIL ${2:-}"; }
new_dmesg() { dmesg | tail -n +$((DMESG0 + 1)); }
new_tlog() { tail -n +$((TLOG0 + 1)) $TGT_LOG; }
show() { sed 's/^/    | /' "$@"; }

# ---------------------------------------------------------------------------
# pnvme-tgt
# ---------------------------------------------------------------------------
tgt_start() {  # start pnvme-tgt in the background (log appended to TGT_LOG); wait until it listens
	n0=$(grep -c 'listening on' $TGT_LOG 2>/dev/null)
	pnvme-tgt -v -l $TADDR:$SVC \
		-s $NQN_A -n $BDF_A,1 --allow-host $HOST_OK \
		-s $NQN_B -n emu:size=${MB}M --allow-host $HOST_OK >> $TGT_LOG 2>&1 &
	TGT_PID=$!
	i=0
	while [ "$(grep -c 'listening on' $TGT_LOG)" -le "${n0:-0}" ]; do
		kill -0 $TGT_PID 2>/dev/null || { wait $TGT_PID; echo "    | pnvme-tgt exited ($?)"; TGT_PID=; return 1; }
		i=$((i + 1)); [ $i -gt 200 ] && { echo "    | pnvme-tgt not listening after 20 s"; return 1; }
		sleep 0.1
	done
}

listening() { grep -q ":$(printf %04X $SVC) [0-9A-F:]* 0A " /proc/net/tcp; }

# ---------------------------------------------------------------------------
# the kernel's NVMe/TCP host
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
	[ -n "$1" ] && [ -e /sys/class/nvme/$1/delete_controller ] || return 0
	echo 1 > /sys/class/nvme/$1/delete_controller
	i=0
	while [ -e /sys/class/nvme/$1 ]; do
		i=$((i + 1)); [ $i -gt 100 ] && return 1
		sleep 0.1
	done
}

# region_is DEV OFFSET_MIB MIB SEED: MIB MiB of DEV at OFFSET_MIB (O_DIRECT)
# equal the first MIB MiB of pattern SEED
region_is() {
	tcpcheck pattern $4 $(($3 << 20)) > /tmp/want.bin
	dd if=$1 of=/tmp/got.bin bs=1M skip=$2 count=$3 iflag=direct 2>/dev/null &&
		cmp /tmp/want.bin /tmp/got.bin
	rc=$?
	rm -f /tmp/want.bin /tmp/got.bin
	return $rc
}

# region_write DEV OFFSET_MIB MIB SEED [BS]: pattern SEED to DEV with O_DIRECT
# writes of BS bytes (default 1 MiB), then fsync (a Flush to the target)
region_write() {
	bs=${5:-1048576}
	tcpcheck pattern $4 $(($3 << 20)) > /tmp/w.bin
	dd if=/tmp/w.bin of=$1 bs=$bs seek=$((($2 << 20) / bs)) oflag=direct conv=notrunc,fsync 2>/dev/null
	rc=$?
	rm -f /tmp/w.bin
	return $rc
}

# ---------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------
step_discover() {
	begin
	if kh_connect $NQN_DISC hostnqn=$HOST_OK,$ID_OK && tcpcheck disc-log /dev/$CTRL > /tmp/disc-ok.out 2>&1 &&
	   kh_disconnect $CTRL &&
	   kh_connect $NQN_DISC hostnqn=$HOST_BAD,$ID_BAD && tcpcheck disc-log /dev/$CTRL > /tmp/disc-bad.out 2>&1 &&
	   kh_disconnect $CTRL; then
		sed "s/^/    | ($HOST_OK) /" /tmp/disc-ok.out; sed "s/^/    | ($HOST_BAD) /" /tmp/disc-bad.out
		e="trtype=tcp adrfam=ipv4 subtype=nvme .*trsvcid=$SVC traddr=$TADDR subnqn"
		if grep -q "$e=$NQN_A\$" /tmp/disc-ok.out && grep -q "$e=$NQN_B\$" /tmp/disc-ok.out &&
		   ! grep -q "subnqn=$NQN_A\$" /tmp/disc-bad.out && ! grep -q "subnqn=$NQN_B\$" /tmp/disc-bad.out; then
			ok discover "$(head -n 1 /tmp/disc-ok.out): $NQN_A and $NQN_B listed for $HOST_OK, neither for $HOST_BAD"
		else
			bad discover "discovery log entries not as expected"
		fi
	else
		show /tmp/disc-ok.out /tmp/disc-bad.out 2>/dev/null
		bad discover "discovery controller"; kh_disconnect $CTRL
	fi
}

step_host_refused() {
	begin
	if kh_connect $NQN_A hostnqn=$HOST_BAD,$ID_BAD; then
		bad host-refused "$HOST_BAD connected to $NQN_A"; kh_disconnect $CTRL
	elif new_tlog | grep -q "host $HOST_BAD may not use $NQN_A" &&
	     new_dmesg | grep -q "Connect for subsystem $NQN_A is not allowed"; then
		# the kernel says so for Connect status Invalid Host (0x184)
		ok host-refused "pnvme-tgt: $(new_tlog | grep -m1 'may not use' | sed 's/^pnvme-tgt: //'); kernel: $(new_dmesg | grep -m1 'is not allowed' | sed 's/^\[[ 0-9.]*\] //')"
	else
		new_tlog | show
		bad host-refused "refused, but pnvme-tgt did not log 'host $HOST_BAD may not use $NQN_A' or the kernel did not log Invalid Host ('Connect for subsystem $NQN_A is not allowed')"
	fi
}

step_connect() {
	begin
	CA= NA= CB= NB=
	if kh_connect $NQN_A hostnqn=$HOST_OK,$ID_OK,keep_alive_tmo=$KATO_S,reconnect_delay=1,ctrl_loss_tmo=60; then
		CA=$CTRL NA=$NS
		if kh_connect $NQN_B hostnqn=$HOST_OK,$ID_OK; then CB=$CTRL NB=$NS; fi
	fi
	sa=$(cat /sys/block/${NA#/dev/}/size 2>/dev/null) sb=$(cat /sys/block/${NB#/dev/}/size 2>/dev/null)
	if [ -n "$NA" ] && [ -n "$NB" ] && [ "$sa" = $((MB * 2048)) ] && [ "$sb" = $((MB * 2048)) ] &&
	   [ "$(cat /sys/class/nvme/$CA/subsysnqn)" = $NQN_A ] && [ "$(cat /sys/class/nvme/$CB/subsysnqn)" = $NQN_B ]; then
		CNTLID_A=$(cat /sys/class/nvme/$CA/cntlid)
		ok connect "A: $CA $NA cntlid $CNTLID_A, B: $CB $NB cntlid $(cat /sys/class/nvme/$CB/cntlid), $sa sectors each, transport $(cat /sys/class/nvme/$CA/transport), model '$(cat /sys/class/nvme/$CA/model | sed 's/ *$//')'"
		return 0
	fi
	new_dmesg | grep -i nvme | show
	bad connect "A: '$CA' '$NA' ($sa sectors), B: '$CB' '$NB' ($sb sectors)"
	return 1
}

step_fs() {  # step_fs NAME DEV
	begin
	mkdir -p /mnt/$1
	if ! $MKFS -q -F -t ext4 $2 > /tmp/mkfs.out 2>&1; then
		show /tmp/mkfs.out; bad fs-$1 "mke2fs -t ext4 $2"; return
	fi
	if ! mount -t ext4 $2 /mnt/$1; then bad fs-$1 "mount $2"; return; fi
	dd if=/dev/urandom of=/mnt/$1/big bs=64k count=64 2>/dev/null
	mkdir -p /mnt/$1/dir
	k=0; while [ $k -lt 20 ]; do echo "file $k seed $SEED on $1" > /mnt/$1/dir/f$k; k=$((k + 1)); done
	sum=$(cat /mnt/$1/big /mnt/$1/dir/* | md5sum | cut -d' ' -f1)
	umount /mnt/$1 || { bad fs-$1 "umount"; return; }
	$FSCK -fn $2 > /tmp/fsck.out 2>&1; frc=$?
	show /tmp/fsck.out
	if [ $frc != 0 ]; then bad fs-$1 "e2fsck -fn $2 exit $frc"; return; fi
	echo 3 > /proc/sys/vm/drop_caches
	mount -t ext4 -o ro $2 /mnt/$1 && sum2=$(cat /mnt/$1/big /mnt/$1/dir/* | md5sum | cut -d' ' -f1)
	umount /mnt/$1
	if new_dmesg | grep -q 'I/O error'; then
		new_dmesg | grep 'I/O error' | head -n 3 | show; bad fs-$1 "I/O errors on $2 (kernel log)"
	elif [ "$sum" = "$sum2" ]; then
		ok fs-$1 "ext4 on $2: 4 MiB + 20 files written, e2fsck -fn clean, read back after remount (md5 $sum)"
	else bad fs-$1 "files differ after remount: md5 '$sum' then '$sum2'"; fi
}

step_rw() {  # step_rw NAME DEV SEED
	begin
	if region_write $2 0 $MB $3 && region_is $2 0 $MB $3 && ! new_dmesg | grep -q 'I/O error'; then
		ok rw-$1 "$MB MiB pattern $3 over $2 (1 MiB O_DIRECT writes + fsync), read back (O_DIRECT), cmp equal"
	else bad rw-$1 "$2: write, read or cmp failed"; fi
}

step_keepalive() {
	begin
	sleep $IDLE_S
	st=$(cat /sys/class/nvme/$CA/state 2>/dev/null)
	if region_is $NA 0 1 $SEED && [ "$st" = live ] &&
	   [ "$(cat /sys/class/nvme/$CA/cntlid)" = "$CNTLID_A" ] &&
	   ! new_tlog | grep -q 'no Keep Alive' && ! new_tlog | grep -q "controller .* for $HOST_OK" &&
	   ! new_dmesg | grep -qiE 'reconnect|keep-alive|error recovery'; then
		ok keepalive "keep_alive_tmo=$KATO_S, idle ${IDLE_S}s, then read: controller $CNTLID_A kept, no reconnect"
	else
		new_tlog | show; new_dmesg | grep -i nvme | show
		bad keepalive "state '$st', cntlid $(cat /sys/class/nvme/$CA/cntlid 2>/dev/null) (was $CNTLID_A)"
	fi
}

HALF=$((MB / 2))
step_kill() {
	kh_disconnect $CB   # B is in memory: it does not outlive pnvme-tgt
	begin
	tcpcheck pattern $((SEED + 2)) $((HALF << 20)) > /tmp/kill.bin
	# 64 KiB writes: a few seconds of I/O at TCG speed (4 KiB ones take a minute)
	dd if=/tmp/kill.bin of=$NA bs=64k seek=$((HALF * 16)) oflag=direct conv=notrunc,fsync 2>/tmp/kill-dd.err &
	DD=$!
	# kill once dd has written its first MiB (a fixed delay is either too
	# short on a loaded host or too long once the path got faster)
	i=0
	while [ $i -lt 100 ] && kill -0 $DD 2>/dev/null &&
	      [ "$(sed -n 's/^wchar: //p' /proc/$DD/io 2>/dev/null || echo 0)" -lt 1048576 ]; do
		sleep 0.05; i=$((i + 1))
	done
	running=no; kill -0 $DD 2>/dev/null && running=yes
	kill -9 $TGT_PID; wait $TGT_PID 2>/dev/null; krc=$?
	TGT_PID=
	echo "    | pnvme-tgt killed (exit $krc), dd running at the kill: $running"
	sleep 1
	if ! tgt_start; then
		tail -n 20 $TGT_LOG | show; bad kill "pnvme-tgt did not restart on port $SVC"; wait $DD; return 1
	fi
	i=0
	until [ "$(cat /sys/class/nvme/$CA/state 2>/dev/null)" = live ] && new_dmesg | grep -q 'Successfully reconnected'; do
		i=$((i + 1)); [ $i -gt 300 ] && break
		sleep 0.1
	done
	wait $DD; drc=$?
	rm -f /tmp/kill.bin
	st=$(cat /sys/class/nvme/$CA/state 2>/dev/null)
	new_dmesg | grep -iE 'nvme' | tail -n 12 | sed 's/^/    dmesg| /'
	new_tlog | show
	if [ $running = yes ] && [ $krc = 137 ] && [ "$st" = live ] && new_dmesg | grep -q 'Successfully reconnected' &&
	   new_tlog | grep -q "controller .* for $HOST_OK on $NQN_A"; then
		ok kill "SIGKILL with a dd running on A, restarted after 1 s: the kernel host reconnected ($CA live, cntlid $(cat /sys/class/nvme/$CA/cntlid)); dd exit $drc $(head -c 200 /tmp/kill-dd.err | tr '\n' ' ')"
	else
		bad kill "dd running at the kill: $running, pnvme-tgt exit $krc, $CA state '$st', reconnect logged: $(new_dmesg | grep -c 'Successfully reconnected')"
		return 1
	fi
	begin
	if region_is $NA 0 $HALF $SEED; then
		ok intact "A's first $HALF MiB (written and flushed before the kill) = pattern $SEED"
	else bad intact "A's first $HALF MiB differ from pattern $SEED after the restart"; fi
	begin
	if region_write $NA $HALF $HALF $((SEED + 2)) && region_is $NA $HALF $HALF $((SEED + 2)); then
		ok rewrite "A's second $HALF MiB rewritten with pattern $((SEED + 2)) and read back"
	else bad rewrite "A's second $HALF MiB: write or read back failed"; fi
}

step_stop() {
	begin
	kh_disconnect $CA; kh_disconnect $CB
	if [ -z "$TGT_PID" ]; then bad stop "pnvme-tgt is not running"; return; fi
	kill -TERM $TGT_PID
	wait $TGT_PID; rc=$?
	TGT_PID=
	i=0
	while listening && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	if [ $rc = 0 ] && grep -q stopping $TGT_LOG && ! listening; then
		ok stop "SIGTERM: pnvme-tgt exit 0, port $SVC closed"
	else
		new_tlog | show; bad stop "pnvme-tgt exit $rc, port $SVC listening: $(listening && echo yes || echo no)"
	fi
}

# ---------------------------------------------------------------------------
echo "TGT: guest $(uname -r), pattern seed $SEED, drive $BDF_A, $(pnvme-tgt --version)"
: > $TGT_LOG
ip link set lo up
begin
if pnvme bind $BDF_A > /tmp/bind.out 2>&1 &&
   [ "$(basename "$(readlink /sys/bus/pci/devices/$BDF_A/driver)")" = vfio-pci ]; then
	show /tmp/bind.out; ok bind "$BDF_A on vfio-pci"
else
	show /tmp/bind.out; bad bind "pnvme bind $BDF_A"
fi
begin
if tgt_start; then
	show $TGT_LOG; ok start "$(grep -m1 'listening on' $TGT_LOG)"
	step_discover
	step_host_refused
	if step_connect; then
		step_fs A $NA
		step_fs B $NB
		step_rw A $NA $SEED
		step_rw B $NB $((SEED + 1))
		step_keepalive
		step_kill
	fi
	step_stop
else
	show $TGT_LOG; bad start "pnvme-tgt did not start"
fi
[ -n "$TGT_PID" ] && kill -9 $TGT_PID
echo "TGT: SUMMARY pass=$PASS fail=$FAILS"
[ $FAILS = 0 ]
