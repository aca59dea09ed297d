#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# tgt-perf.sh - NVMe/TCP target benchmark in the guest (scenario "tgt-perf" of
# run-vm-tests.sh, packed as /bin/tgt-perf.sh; benchmarks/tgt-compare.sh runs
# it and makes the table). One boot, one host (the kernel's nvme-tcp, driven by
# fio) and two targets on 127.0.0.1:4420, one after the other:
#   nvmet      the kernel target (nvmet + nvmet-tcp, nvmet.sh), subsystems
#              $NQN_DRIVE = the QEMU NVMe drive at $P through the kernel nvme
#              driver (/dev/nvmeXn1), $NQN_NULL = a memory-backed null_blk
#              device ($NULL_MB MiB, never written: reads are zero-filled)
#   pnvme-tgt  $NQN_DRIVE = the same drive bound to vfio-pci (`pnvme bind`),
#              namespace 1; $NQN_NULL = the null device null:size=${NULL_MB}M
#              (reads return zeroes, no thread: the poller completes its
#              commands inline; vmtest.tgt_null=emu: the emulated namespace
#              emu:size=${NULL_MB}M of earlier boots, with its own thread);
#              one polling thread (vmtest.tgt_spin=US: its --spin-us),
#              pinned to vCPU 1 (vmtest.tgt_cpu=N: to vCPU N), the drive's
#              vfio-pci MSI-X interrupts (its completions, which wake the
#              poller) on the poller's vCPU (vmtest.tgt_irq_cpu=N: on vCPU N;
#              =any: where the kernel puts them; BENCHMARKS.md §5)
# vmtest.lo_rps=MASK (a diagnostic, both targets): loopback's receive
# processing on the vCPUs of MASK (RPS, /sys/class/net/lo/queues/rx-0/
# rps_cpus): with 2, nvmet's io_work follows the bytes to vCPU 1, off fio's
# vCPU, as a target on a machine of its own would be (BENCHMARKS.md §5).
# One drive, switched between the two drivers in every round (pnvme bind /
# pnvme unbind), so both targets read the same blocks of the same image.
# Each round: both targets (ORDER=forward: nvmet first; reverse: pnvme-tgt
# first), per target both backends, per backend one kernel-host connection with
# nr_poll_queues=1 and 4 KiB random reads for RUNTIME seconds under
#   iou-hipri  fio io_uring --hipri --fixedbufs --registerfiles (polled queue)
#   libaio     fio libaio (interrupt-driven queue)
# at depth 1 and 32 (reverse: libaio first). With PIN=1 (default) fio runs on
# vCPU $FIO_CPU and pnvme-tgt's poller on vCPU $TGT_CPU (the lesson of
# BENCHMARKS.md §4: a poller and the work it waits for on one vCPU starve each
# other); nvmet's io_work kworker runs where the kernel puts it. After the
# rounds, the null backend once more with nothing pinned (UNPINNED=1).
# Lines for benchmarks/tgt-compare.sh:
#   PERF: result TARGET/BACKEND/ENGINE qd=Q run=R iops=N fio_us_per_io=F
#         guest_us_per_io=G other_us_per_io=O tgt_us_per_io=T busy_cpus=B
# fio_us_per_io: fio's user+sys CPU time (busybox time) per I/O; guest: busy
# time of every vCPU (/proc/stat) per I/O; other = guest - fio (the target, the
# kernel host's kworkers and softirqs, the drive's driver: everything but fio);
# tgt: the pnvme-tgt process's CPU time (/proc/PID/stat utime + stime, all its
# threads: the poller, and an emulator's thread if any) per I/O (-1 for nvmet:
# not separable). Per run also the interrupts per vCPU ("irq|": the drive's
# queues, vfio-msix, and the IPIs RES/CAL that cross between vCPUs).
# vmtest.tgt_alt=1 (benchmarks/tgt-compare.sh --alt-tgt): /bin/pnvme-tgt-alt,
# another build, measured after pnvme-tgt in every round (rows pnvme-tgt-alt/).
# Env: RUNS (3) RUNTIME (10) ORDER (forward|reverse) PIN (1) UNPINNED (1)
P=0000:00:04.0
NQN_DRIVE=nqn.2014-08.org.pnvme:tgt-drive
NQN_NULL=nqn.2014-08.org.pnvme:tgt-null
SVC=4420
TADDR=127.0.0.1
NULL_MB=${NULL_MB:-1024}
NULLB_CFG=/sys/kernel/config/nullb/tgtperf
RUNS=${RUNS:-3}
RUNTIME=${RUNTIME:-10}
ORDER=${ORDER:-forward}
PIN=${PIN:-1}
UNPINNED=${UNPINNED:-1}
FIO_CPU=0
TGT_CPU=1
EMU_CPU=${EMU_CPU:-float}
TGT_PROBE=0
TGT_ALT=0
TGT_BIN=pnvme-tgt
TGT_NULL=null:size=${NULL_MB}M
TGT_SPIN=
TGT_SPINS=
IRQ_CPU=
LO_RPS=
for a in $(cat /proc/cmdline); do
	case $a in
	vmtest.tgt_null=emu) TGT_NULL=emu:size=${NULL_MB}M ;;
	vmtest.tgt_spin=*)  TGT_SPIN="--spin-us ${a#*=}" ;;
	vmtest.tgt_spins=*) TGT_SPINS=$(echo ${a#*=} | tr , ' ') ;;
	vmtest.tgt_cpu=*)   TGT_CPU=${a#*=} ;;
	vmtest.tgt_irq_cpu=*) IRQ_CPU=${a#*=} ;;
	vmtest.emu_cpu=*)   EMU_CPU=${a#*=} ;;
	vmtest.tgt_probe=*) TGT_PROBE=${a#*=} ;;
	vmtest.tgt_alt=1)   TGT_ALT=1 ;;
	vmtest.lo_rps=*)    LO_RPS=${a#*=} ;;
	esac
done
FAILS=0
NCPU=$(grep -c ^processor /proc/cpuinfo)
TGT_PID=

now() { cut -d' ' -f1 /proc/uptime; }
note() { echo "PERF: $*"; }
failed() { FAILS=$((FAILS + 1)); echo "VMTEST: tgt-perf FAIL $*"; }
drv() { basename "$(readlink /sys/bus/pci/devices/$1/driver 2>/dev/null)" 2>/dev/null; }

# busy jiffies and total jiffies of all CPUs (/proc/stat "cpu" line)
cpustat() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat; }
# utime + stime (clock ticks) of a process, all its threads; 0 if none
proctime() { [ -n "$1" ] && [ -r /proc/$1/stat ] && sed 's/.*) //' /proc/$1/stat | awk '{ print $12 + $13 }' || echo 0; }

# thread_times PID: "TID:TICKS:LASTCPU ..." of every thread (utime + stime, the vCPU it last ran on)
thread_times() {
	for tk in /proc/$1/task/*; do
		[ -r $tk/stat ] && sed 's/.*) //' $tk/stat | awk -v t=${tk##*/} '{ printf "%s:%d:%d ", t, $12 + $13, $37 }'
	done
}

# irqcounts: "NAME:cpu0:cpu1 ..." of the NVMe queues, vfio-msix and the IPIs (2 vCPUs)
irqcounts() {
	awk '$NF ~ /^nvme[0-9]+q[0-9]+$|^vfio-msix/ || $1 == "RES:" || $1 == "CAL:" {
		n = ($1 == "RES:" || $1 == "CAL:") ? $1 : $NF; sub(":$", "", n); sub(/\(.*/, "", n)
		printf "%s:%s:%s ", n, $2, $3 }' /proc/interrupts
}

wait_disk() {  # wait_disk BDF: the kernel namespace 1 of BDF, up to 10 s
	i=0
	while [ $i -lt 100 ]; do
		for d in /sys/bus/pci/devices/$1/nvme/nvme*/nvme*n1; do
			[ -e "$d" ] && [ -b /dev/${d##*/} ] && { echo ${d##*/}; return 0; }
		done
		sleep 0.1; i=$((i + 1))
	done
	return 1
}

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

# listening: is anything listening on TCP port $SVC?
listening() {
	hex=$(printf '%04X' $SVC)
	cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
		awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }'
}

setup() {
	ip link set lo up
	grep -q ' /sys/kernel/config configfs' /proc/mounts ||
		mount -t configfs configfs /sys/kernel/config || return 1
	NB=$(null_dev) || return 1
	D=$(wait_disk $P) || { echo "    | no kernel disk for $P"; return 1; }
	note "drive $P: /dev/$D, $(cat /sys/block/$D/size) sectors, driver $(drv $P), $(cat /sys/block/$D/queue/nr_requests) requests, io_poll=$(cat /sys/block/$D/queue/io_poll); null: $NB ($NULL_MB MiB memory-backed null_blk) / emu:size=${NULL_MB}M"
}

# kh_connect NQN OPTIONS: the kernel host; sets CTRL and NS (the namespace's
# block device; nvme_core multipath=N, so it is the controller's own)
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

# measure NAME QD RUN PIN: fio on $NS under busybox time, prints the result line
measure() {
	name=$1 qd=$2 run=$3 pin=$4
	cpus=; [ $pin = 1 ] && cpus=--cpus_allowed=$FIO_CPU
	th0=; [ -n "$TGT_PID" ] && th0=$(thread_times $TGT_PID)
	irq_cpu=$IRQ_CPU; [ -z "$irq_cpu" ] && [ $pin = 1 ] && irq_cpu=$TGT_CPU
	if [ -n "$irq_cpu" ] && [ "$irq_cpu" != any ] && [ -n "$TGT_PID" ]; then
		for irq in $(awk '$NF ~ /^vfio-msix/ { sub(":", "", $1); print $1 }' /proc/interrupts); do
			echo $irq_cpu > /proc/irq/$irq/smp_affinity_list 2>/dev/null
		done
	fi
	i0=$(irqcounts)
	c0=$(cpustat); p0=$(proctime $TGT_PID); t0=$(now)
	time -v fio --name=r --filename=$NS --direct=1 --rw=randread --bs=4k --iodepth=$qd \
		--numjobs=1 --time_based --runtime=$RUNTIME --group_reporting $cpus \
		$(fio_opts ${name##*/}) --output-format=normal,terse > /tmp/run.out 2> /tmp/time.out
	rc=$?
	t1=$(now); p1=$(proctime $TGT_PID); c1=$(cpustat)
	# interrupts in this run, per vCPU (the ones that moved)
	echo "$i0 | $(irqcounts)" | awk '{
		for (i = 1; i <= NF && $i != "|"; i++) { split($i, a, ":"); b0[a[1]] = a[2]; b1[a[1]] = a[3] }
		for (i++; i <= NF; i++) { split($i, a, ":"); d0 = a[2] - b0[a[1]]; d1 = a[3] - b1[a[1]]
			if (d0 + d1) s = s sprintf(" %s %d/%d;", a[1], d0, d1) }
		print "    irq| vCPU0/vCPU1:" s }'
	# per thread of pnvme-tgt: CPU ticks (1/100 s) in this run, the vCPU it last ran on
	[ -n "$TGT_PID" ] && echo "$th0 | $(thread_times $TGT_PID)" | awk '{
		for (i = 1; i <= NF && $i != "|"; i++) { split($i, a, ":"); b[a[1]] = a[2] }
		for (i++; i <= NF; i++) { split($i, a, ":"); s = s sprintf(" tid %s %d ticks (vCPU %s);", a[1], a[2] - b[a[1]], a[3]) }
		print "    tgt| threads:" s }'
	echo "PERF: $name qd=$qd run=$run: fio $(fio_opts ${name##*/}) --iodepth=$qd $cpus on $NS (exit $rc, $(awk "BEGIN{print $t1 - $t0}") s)"
	grep -E 'IOPS=|lat \((u|n|m)sec\): min|cpu  *:|err=' /tmp/run.out | sed 's/^/    out| /'
	grep -E 'User time|System time|Elapsed' /tmp/time.out | sed 's/^\t*/    time| /'
	iops=$(grep -m1 '^3;fio-' /tmp/run.out | awk -F';' '{print $8}')
	if [ $rc != 0 ] || [ -z "$iops" ]; then
		tail -20 /tmp/run.out | sed 's/^/    out| /'; tail -5 /tmp/time.out | sed 's/^/    err| /'
		failed "$name qd=$qd run=$run: exit $rc"
		return 1
	fi
	u=$(awk -F': ' '/User time/ { print $2 }' /tmp/time.out)
	s=$(awk -F': ' '/System time/ { print $2 }' /tmp/time.out)
	tgt=-1; [ -n "$TGT_PID" ] && tgt=$((p1 - p0))
	echo "$c0 $c1 $u $s $iops $RUNTIME $tgt" | awk -v n="$name" -v q="$qd" -v r="$run" -v ncpu="$NCPU" '{
		ios = $7 * $8; hz = 100; fio = ($5 + $6) * 1e6; guest = ($3 - $1) / hz * 1e6
		printf "PERF: result %s qd=%s run=%s iops=%.0f fio_us_per_io=%.2f guest_us_per_io=%.2f other_us_per_io=%.2f tgt_us_per_io=%.2f busy_cpus=%.2f\n",
			n, q, r, $7, ios ? fio / ios : 0, ios ? guest / ios : 0, ios ? (guest - fio) / ios : 0,
			$9 < 0 ? -1 : (ios ? $9 / hz * 1e6 / ios : 0), ($4 - $2) ? ncpu * ($3 - $1) / ($4 - $2) : 0 }'
}

# host_runs TARGET RUN PIN BACKENDS: for each backend, connect, the engines at both depths
host_runs() {
	t=$1 r=$2 pin=$3; shift 3
	sfx=; [ $pin = 0 ] && sfx=-unpinned
	for b in "$@"; do
		nqn=$NQN_NULL; [ $b = drive ] && nqn=$NQN_DRIVE
		kh_connect $nqn nr_poll_queues=1 || { failed "$t: kernel host connect $nqn"; continue; }
		ks="iou-hipri libaio"; [ $ORDER = reverse ] && ks="libaio iou-hipri"
		for k in $ks; do
			for qd in 1 32; do measure $t$sfx/$b/$k $qd $r $pin; done
		done
		kh_disconnect $CTRL
	done
}

# nvmet_phase RUN PIN BACKENDS: the kernel target on the kernel nvme driver's disk and null_blk
nvmet_phase() {
	note "--- nvmet, round $1, uptime $(now) s"
	if ! { nvmet.sh up $NQN_DRIVE /dev/$D $SVC $TADDR && nvmet.sh up $NQN_NULL $NB $SVC $TADDR; } > /tmp/nvmet.out 2>&1; then
		sed 's/^/    | /' /tmp/nvmet.out
		failed "nvmet set-up, round $1"
		nvmet.sh down > /dev/null 2>&1
		return 1
	fi
	TGT_PID=
	host_runs nvmet "$@"
	nvmet.sh down > /tmp/nvmet.out 2>&1 || { sed 's/^/    | /' /tmp/nvmet.out; failed "nvmet down, round $1"; }
	i=0; while listening && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
}

# tgt_phase RUN PIN BACKENDS: pnvme-tgt on the drive through vfio-pci and the null device
tgt_phase() {
	note "--- pnvme-tgt, round $1, uptime $(now) s"
	if ! pnvme bind $P > /tmp/bind.out 2>&1; then
		sed 's/^/    | /' /tmp/bind.out
		failed "pnvme bind $P, round $1"
		return 1
	fi
	cpus=; [ $2 = 1 ] && cpus="--cpus $TGT_CPU"
	[ $2 = 1 ] && [ $EMU_CPU != float ] && emu_note=", emulator thread pinned to vCPU $EMU_CPU" || emu_note=
	TGT_ARGS="-l $TADDR:$SVC -s $NQN_DRIVE -n $P,1 --allow-any-host -s $NQN_NULL -n $TGT_NULL --allow-any-host -t 1 $cpus $TGT_SPIN"
	$TGT_BIN $TGT_ARGS > /tmp/tgt.log 2>&1 &
	TGT_PID=$!
	i=0
	while ! grep -q 'listening on' /tmp/tgt.log && kill -0 $TGT_PID 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1; i=$((i + 1))
	done
	# the emulator's thread (vmtest.tgt_null=emu; null: has none): the one
	# thread that is neither the main thread nor the poller pinned by --cpus
	emu_tid=
	for tk in /proc/$TGT_PID/task/*; do
		tid=${tk##*/}
		[ $tid = $TGT_PID ] && continue
		[ $2 = 1 ] && [ "$(awk '/Cpus_allowed_list/ { print $2 }' $tk/status)" = $TGT_CPU ] && continue
		emu_tid="$emu_tid $tid"
	done
	[ $2 = 1 ] && [ $EMU_CPU != float ] && for tid in $emu_tid; do taskset -p -c $EMU_CPU $tid > /dev/null; done
	for tk in /proc/$TGT_PID/task/*; do
		echo "    tgt| thread ${tk##*/}: cpus $(awk '/Cpus_allowed_list/ { print $2 }' $tk/status)"
	done
	p0=$(proctime $TGT_PID); sleep 2; p1=$(proctime $TGT_PID)
	note "pnvme-tgt with no host connected: $((p1 - p0)) ticks of CPU in 2 s ($(( (p1 - p0) / 2 )) % of a vCPU)"
	note "pnvme-tgt pid $TGT_PID: $TGT_BIN $TGT_ARGS$emu_note; threads: $(ls /proc/$TGT_PID/task 2>/dev/null | wc -l)"
	if grep -q 'listening on' /tmp/tgt.log; then
		host_runs pnvme-tgt${TGT_TAG:-} "$@"
		kill -TERM $TGT_PID
		wait $TGT_PID; rc=$?
		[ $rc = 0 ] || failed "pnvme-tgt exit $rc after SIGTERM, round $1"
	else
		failed "pnvme-tgt did not start, round $1"
		kill -9 $TGT_PID 2>/dev/null; wait $TGT_PID 2>/dev/null
	fi
	sed 's/^/    tgt| /' /tmp/tgt.log | tail -20
	TGT_PID=
	pnvme unbind $P > /tmp/bind.out 2>&1 || { sed 's/^/    | /' /tmp/bind.out; failed "pnvme unbind $P, round $1"; }
	D=$(wait_disk $P) || { failed "no kernel disk for $P after unbind, round $1"; return 1; }
}

# tgt_phases RUN PIN BACKENDS: pnvme-tgt, then (vmtest.tgt_alt=1) the other build
tgt_phases() {
	tgt_phase "$@"
	[ $TGT_ALT = 1 ] || return 0
	tag=${TGT_TAG:-}
	TGT_BIN=pnvme-tgt-alt TGT_TAG=$tag-alt
	tgt_phase "$@"
	TGT_BIN=pnvme-tgt TGT_TAG=$tag
}

round() {  # round RUN PIN BACKENDS
	if [ $ORDER = reverse ]; then
		tgt_phases "$@"; nvmet_phase "$@"
	else
		nvmet_phase "$@"; tgt_phases "$@"
	fi
}

teardown() {
	nvmet.sh down > /dev/null 2>&1
	[ -d $NULLB_CFG ] && { echo 0 > $NULLB_CFG/power; rmdir $NULLB_CFG; }
}

if [ -n "$LO_RPS" ]; then
	echo "$LO_RPS" > /sys/class/net/lo/queues/rx-0/rps_cpus || failed "lo rps_cpus $LO_RPS"
fi
note "guest $(uname -r), $NCPU vCPUs, $(grep MemTotal /proc/meminfo | tr -s ' '), clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource), runs $RUNS x $RUNTIME s, order $ORDER, pin $PIN (fio vCPU $FIO_CPU, pnvme-tgt vCPU $TGT_CPU, its drive interrupts vCPU ${IRQ_CPU:-$TGT_CPU}), unpinned pass $UNPINNED, lo rps_cpus $(cat /sys/class/net/lo/queues/rx-0/rps_cpus 2>/dev/null)"
if ! setup; then
	failed "set-up"
	exit 1
fi
if [ -n "$TGT_SPINS" ]; then     # development aid: pnvme-tgt's --spin-us, one round each
	for s in $TGT_SPINS; do
		TGT_SPIN="--spin-us $s"; TGT_TAG=-spin$s; tgt_phases 1 $PIN drive null
	done
	TGT_TAG=; nvmet_phase 1 $PIN drive null
	RUNS=0 UNPINNED=0
fi
if [ "$TGT_PROBE" = 1 ]; then   # development aid: where the emulator thread should run
	for EMU_CPU in float 0 1; do
		be=null; [ $EMU_CPU = float ] && be="drive null"
		TGT_TAG=-emu$EMU_CPU; tgt_phase 1 1 $be
	done
	RUNS=0 UNPINNED=0
fi
r=1
while [ $r -le $RUNS ]; do
	note "=== round $r, uptime $(now) s"
	round $r $PIN drive null
	r=$((r + 1))
done
if [ $UNPINNED = 1 ] && [ $PIN = 1 ]; then
	note "=== unpinned, null backend, uptime $(now) s"
	round 1 0 null
fi
teardown
note "=== done, uptime $(now) s"
[ $FAILS = 0 ] && echo "VMTEST: tgt-perf PASS $RUNS rounds"
[ $FAILS = 0 ]
