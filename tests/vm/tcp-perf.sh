#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# tcp-perf.sh - NVMe/TCP host benchmark in the guest (scenario "tcp-perf" of
# run-vm-tests.sh, packed as /bin/tcp-perf.sh; benchmarks/tcp-compare.sh runs
# it and makes the table). One boot, one kernel target (nvmet-tcp, nvmet.sh)
# on 127.0.0.1:4420 with two subsystems:
#   $NQN_NULL  a memory-backed null_blk device ($NULL_MB MiB, never written:
#              reads of unwritten blocks are zero-filled by null_blk)
#   $NQN_FILE  a $FILE_MB MiB tmpfs file holding a pattern (buffered_io)
# and three hosts reading 4 KiB at random positions, depth 1 and 32, RUNS
# rounds of RUNTIME seconds (each round: every backing, every host, each depth):
#   pnvme       pnvme-perf -d tcp:127.0.0.1:4420/NQN (one queue pair, polled)
#   iou-hipri   the kernel's nvme-tcp host, connected with nr_poll_queues=1,
#               fio io_uring --hipri --fixedbufs --registerfiles (polled queue)
#   libaio      the same connection, fio libaio (interrupt-driven queue)
# ORDER=reverse runs the hosts in the opposite order in every round.
# Lines for benchmarks/tcp-compare.sh:
#   PERF: result BACKING/HOST qd=Q run=R iops=N cpu_us_per_io=C sys_us_per_io=S
#         [syscalls...]
# cpu_us_per_io: the measuring process's user+sys CPU time (busybox time) per
# I/O; sys_us_per_io: the whole guest's busy CPU time (/proc/stat: every vCPU,
# the target's work included) per I/O. After the rounds, the null namespace
# once more with each host pinned to vCPU 0 and to vCPU 1 (-c / --cpus_allowed).
# With STRACE=1 (strace packed), one
# short extra run per host and depth under `strace -c -f` counts the system
# calls per I/O ("PERF: syscalls ...").
# Env: RUNS (3) RUNTIME (10) ORDER (forward|reverse) STRACE (1 if strace exists)
NQN_NULL=nqn.2014-08.org.pnvme:perf-null
NQN_FILE=nqn.2014-08.org.pnvme:perf-file
SVC=4420
TADDR=127.0.0.1
FILE=/tmp/tcp-perf.img
FILE_MB=${FILE_MB:-256}
NULL_MB=${NULL_MB:-1024}
NULLB_CFG=/sys/kernel/config/nullb/perf
RUNS=${RUNS:-3}
RUNTIME=${RUNTIME:-10}
ORDER=${ORDER:-forward}
STRACE=${STRACE:-$(command -v strace >/dev/null && echo 1 || echo 0)}
FAILS=0
NCPU=$(grep -c ^processor /proc/cpuinfo)

now() { cut -d' ' -f1 /proc/uptime; }
note() { echo "PERF: $*"; }
failed() { FAILS=$((FAILS + 1)); echo "VMTEST: tcp-perf FAIL $*"; }

# busy jiffies and total jiffies of all CPUs (/proc/stat "cpu" line)
cpustat() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat; }

null_dev() {
	if [ ! -d $NULLB_CFG ]; then
		mkdir $NULLB_CFG &&
		echo $NULL_MB > $NULLB_CFG/size &&
		echo 512 > $NULLB_CFG/blocksize &&
		echo 1 > $NULLB_CFG/memory_backed &&
		echo 1 > $NULLB_CFG/power || return 1
	fi
	i=0
	while [ $i -lt 50 ]; do
		for d in /dev/${NULLB_CFG##*/} /dev/nullb$(cat $NULLB_CFG/index); do
			[ -b $d ] && { echo $d; return 0; }
		done
		sleep 0.1; i=$((i + 1))
	done
	return 1
}

setup() {
	ip link set lo up
	grep -q ' /sys/kernel/config configfs' /proc/mounts ||
		mount -t configfs configfs /sys/kernel/config || return 1
	tcpcheck pattern 7 $((FILE_MB << 20)) > $FILE || return 1
	NB=$(null_dev) || return 1
	nvmet.sh up $NQN_NULL $NB $SVC $TADDR && nvmet.sh up $NQN_FILE $FILE $SVC $TADDR || return 1
	note "target: $NQN_NULL = $NB ($NULL_MB MiB memory-backed null_blk), $NQN_FILE = $FILE ($FILE_MB MiB tmpfs, buffered_io) on $TADDR:$SVC"
}

# kh_connect NQN OPTIONS: the kernel host; sets CTRL and NS (the namespace's
# block device; nvme_core multipath=N, so it is the controller's own). (Shell
# variables are global: its own are kc, kb, e, i.)
kh_connect() {
	CTRL= NS=
	kc=$(tcpcheck connect "transport=tcp,traddr=$TADDR,trsvcid=$SVC,nqn=$1,$2" 2>&1) ||
		{ echo "    | $kc"; return 1; }
	CTRL=nvme$(echo "$kc" | sed -n 's/^instance=\([0-9]*\),.*/\1/p')
	i=0
	while :; do
		for e in /sys/class/nvme/$CTRL/nvme*n1; do
			[ -e "$e" ] || continue
			kb=$(basename $e | sed 's/c[0-9]*n/n/')
			[ -b /dev/$kb ] && [ "$(cat /sys/block/$kb/size)" != 0 ] && NS=/dev/$kb
		done
		[ -n "$NS" ] && [ "$(cat /sys/class/nvme/$CTRL/state)" = live ] && break
		i=$((i + 1)); [ $i -gt 100 ] && { echo "    | $CTRL: no namespace"; return 1; }
		sleep 0.1
	done
	note "kernel host $CTRL ($kc) $1 $2: $NS, $(cat /sys/block/${NS#/dev/}/size) sectors, io_poll=$(cat /sys/block/${NS#/dev/}/queue/io_poll 2>/dev/null), queues: $(dmesg | grep "$CTRL: mapped" | tail -1 | sed 's/.*mapped //')"
}

kh_disconnect() {
	[ -e /sys/class/nvme/$1/delete_controller ] || return 0
	echo 1 > /sys/class/nvme/$1/delete_controller
	i=0
	while [ -e /sys/class/nvme/$1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}

fio_opts() {
	case $1 in
	iou-hipri) echo "--ioengine=io_uring --hipri --fixedbufs --registerfiles" ;;
	libaio)    echo "--ioengine=libaio" ;;
	esac
}

# measure NAME QD RUN CMD...: runs CMD under busybox time, sets IOS-derived
# results from $OUT (parsed by the caller), prints the result line
measure() {
	name=$1 qd=$2 run=$3; shift 3
	c0=$(cpustat); t0=$(now)
	time -v "$@" > /tmp/run.out 2> /tmp/time.out
	rc=$?
	t1=$(now); c1=$(cpustat)
	echo "PERF: $name qd=$qd run=$run: $* (exit $rc, $(awk "BEGIN{print $t1 - $t0}") s)"
	grep -vE '^(Device|Counters) |^$' /tmp/run.out | grep -E 'Total|counters|IOPS=|lat \((u|n|m)sec\): min|cpu  *:|err=|pnvme-perf:' | sed 's/^/    out| /'
	grep -E 'User time|System time|Elapsed' /tmp/time.out | sed 's/^\t*/    time| /'
	if [ $rc != 0 ]; then
		tail -20 /tmp/run.out | sed 's/^/    out| /'; tail -5 /tmp/time.out | sed 's/^/    err| /'
		failed "$name qd=$qd run=$run: exit $rc"
		return 1
	fi
	case $name in
	*/pnvme*) iops=$(awk '/^Total / { print $2; exit }' /tmp/run.out) ;;
	*)       iops=$(grep -m1 '^3;fio-' /tmp/run.out | awk -F';' '{print $8}') ;;
	esac
	u=$(awk -F': ' '/User time/ { print $2 }' /tmp/time.out)
	s=$(awk -F': ' '/System time/ { print $2 }' /tmp/time.out)
	extra=
	case $name in
	*/pnvme*) extra=$(awk '/^counters:/ { printf "polls_per_io=%.2f empty_poll_pct=%.1f sq_db_per_io=%.3f", $2 ? $10 / $2 : 0, $10 ? 100 * substr($12, 2) / $10 : 0, $2 ? $4 / $2 : 0 }' /tmp/run.out) ;;
	*)       extra=$(grep -m1 'cpu  *:' /tmp/run.out | sed -nE 's/.*usr=([0-9.]+)%, sys=([0-9.]+)%, ctx=([0-9]+).*/fio_usr_pct=\1 fio_sys_pct=\2 fio_ctx=\3/p') ;;
	esac
	echo "$c0 $c1 $u $s $iops $RUNTIME" | awk -v n="$name" -v q="$qd" -v r="$run" -v x="$extra" -v ncpu="$NCPU" '{
		ios = $7 * $8; hz = 100
		printf "PERF: result %s qd=%s run=%s iops=%.0f cpu_us_per_io=%.2f guest_us_per_io=%.2f busy_cpus=%.2f %s\n",
			n, q, r, $7, ios ? ($5 + $6) * 1e6 / ios : 0, ios ? ($3 - $1) / hz * 1e6 / ios : 0,
			($4 - $2) ? ncpu * ($3 - $1) / ($4 - $2) : 0, x }'
}

run_pnvme() {  # run_pnvme BACKING NQN QD RUN [SECONDS]
	measure $1/pnvme $3 $4 pnvme-perf -d tcp:$TADDR:$SVC/$2 -q $3 -o 4096 -w randread -t ${5:-$RUNTIME}
}

run_fio() {  # run_fio BACKING/HOST QD RUN DEV [SECONDS]
	measure $1 $2 $3 fio --name=r --filename=$4 --direct=1 --rw=randread --bs=4k --iodepth=$2 \
		--numjobs=1 --time_based --runtime=${5:-$RUNTIME} --group_reporting \
		$(fio_opts ${1#*/}) --output-format=normal,terse
}

# one round: for each backing, the hosts in ORDER, each at depth 1 and 32
round() {
	r=$1
	for b in null file; do
		nqn=$NQN_NULL; [ $b = file ] && nqn=$NQN_FILE
		hosts="pnvme kernel"; [ $ORDER = reverse ] && hosts="kernel pnvme"
		for h in $hosts; do
			if [ $h = pnvme ]; then
				for qd in 1 32; do run_pnvme $b $nqn $qd $r; done
				continue
			fi
			kh_connect $nqn nr_poll_queues=1 || { failed "kernel host connect $nqn"; continue; }
			ks="iou-hipri libaio"; [ $ORDER = reverse ] && ks="libaio iou-hipri"
			for k in $ks; do
				for qd in 1 32; do run_fio $b/$k $qd $r $NS; done
			done
			kh_disconnect $CTRL
		done
	done
}

# sc_line NAME QD IOS: the calls (and failed calls, e.g. EAGAIN) per I/O of the
# I/O-path system calls strace -c counted (the whole process: start-up included)
sc_line() {
	awk -v n="$1" -v qd="$2" -v ios="$3" '
		$1 ~ /^[0-9.]+$/ && $NF ~ /^(sendmsg|sendto|recvfrom|recvmsg|read|write|io_uring_enter|io_submit|io_getevents|clock_gettime|futex|poll|ppoll|sched_yield)$/ && ios > 0 {
			s = s sprintf(" %s=%.2f", $NF, $4 / ios)
			if (NF == 6 && $5 > 0) s = s sprintf("(%.2f failed)", $5 / ios)
		}
		END { printf "PERF: syscalls %s qd=%s ios=%s per I/O:%s\n", n, qd, ios, s }' /tmp/strace.out
}

# pinning: the same hosts pinned to vCPU 0, then 1 (null namespace, once). The
# target's receive work runs on a kworker bound to one vCPU per queue (nvmet-tcp
# picks them in turn); a poller spinning on that vCPU delays it.
pinning() {
	for c in 0 1; do
		for qd in 1 32; do
			measure null/pnvme-cpu$c $qd 1 pnvme-perf -d tcp:$TADDR:$SVC/$NQN_NULL -q $qd -o 4096 \
				-w randread -t $RUNTIME -c $c
		done
	done
	kh_connect $NQN_NULL nr_poll_queues=1 || { failed "kernel host connect $NQN_NULL"; return; }
	for c in 0 1; do
		for qd in 1 32; do
			measure null/iou-hipri-cpu$c $qd 1 fio --name=r --filename=$NS --direct=1 --rw=randread \
				--bs=4k --iodepth=$qd --numjobs=1 --time_based --runtime=$RUNTIME \
				--cpus_allowed=$c $(fio_opts iou-hipri) --output-format=normal,terse
		done
	done
	kh_disconnect $CTRL
}

# system calls per I/O: one short run per host and depth under strace -c -f
# (ptrace slows every call down: these runs count, they do not time)
syscalls() {
	secs=3
	for qd in 1 32; do
		strace -c -f -o /tmp/strace.out pnvme-perf -d tcp:$TADDR:$SVC/$NQN_NULL -q $qd -o 4096 \
			-w randread -t $secs > /tmp/run.out 2>&1
		ios=$(awk '/^counters:/ { print $2 }' /tmp/run.out)
		sed 's/^/    strace| /' /tmp/strace.out | head -12
		sc_line null/pnvme $qd "$ios"
	done
	kh_connect $NQN_NULL nr_poll_queues=1 || return
	for k in iou-hipri libaio; do
		for qd in 1 32; do
			strace -c -f -o /tmp/strace.out fio --name=r --filename=$NS --direct=1 --rw=randread \
				--bs=4k --iodepth=$qd --numjobs=1 --time_based --runtime=$secs \
				$(fio_opts $k) --output-format=terse > /tmp/run.out 2>&1
			iops=$(grep -m1 '^3;fio-' /tmp/run.out | awk -F';' '{print $8}')
			sed 's/^/    strace| /' /tmp/strace.out | head -12
			sc_line null/$k $qd "$((${iops:-0} * secs))"
		done
	done
	kh_disconnect $CTRL
}

teardown() {
	nvmet.sh down > /dev/null 2>&1
	[ -d $NULLB_CFG ] && { echo 0 > $NULLB_CFG/power; rmdir $NULLB_CFG; }
	rm -f $FILE
}

note "guest $(uname -r), $(grep -c ^processor /proc/cpuinfo) vCPUs, $(grep MemTotal /proc/meminfo | tr -s ' '), clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource), runs $RUNS x $RUNTIME s, order $ORDER, strace $STRACE"
if ! setup; then
	failed "target setup"
	exit 1
fi
r=1
while [ $r -le $RUNS ]; do
	note "=== round $r, uptime $(now) s"
	round $r
	r=$((r + 1))
done
note "=== pinned, uptime $(now) s"
pinning
[ "$STRACE" = 1 ] && syscalls
teardown
[ $FAILS = 0 ] && echo "VMTEST: tcp-perf PASS $RUNS rounds"
[ $FAILS = 0 ]
