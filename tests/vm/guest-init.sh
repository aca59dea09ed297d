#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# guest-init.sh - /init of the pnvme test guest (packed by run-vm-tests.sh).
#
# Kernel command line (set by the host script):
#   vmtest.scenario=main|recovery|nointremap|iommuoff|smoke|perf|tcp|tcp-target|tcp-perf|tgt|tgt-perf
#                                               what to run
#   vmtest.seed=N                               seeds the data pattern
#   vmtest.tcp_pnvme=0|1 vmtest.tcp_selfcheck=0|1   tcp: the pnvme steps (default 1),
#                                               the kernel-host self-check (default 0)
#   vmtest.tcp_wait=S                           tcp-target: seconds the target stays up
# Every result is a line "VMTEST: <check> PASS|FAIL <detail>" on the serial
# console; the host decides from those lines (and from the disk images).
# The guest powers off when done, whatever happened.

/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "VMTEST: guest /init started, uptime $(cut -d' ' -f1 /proc/uptime)s"

SCENARIO=main
SEED=1
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	vmtest.scenario=*) SCENARIO=${arg#vmtest.scenario=} ;;
	vmtest.seed=*)     SEED=${arg#vmtest.seed=} ;;
	vmtest.log=*)      LOGLEVEL=${arg#vmtest.log=} ;;
	vmtest.threads=*)  THREADS=${arg#vmtest.threads=} ;;
	vmtest.qd=*)       QD=${arg#vmtest.qd=} ;;
	vmtest.kernelfirst=*) KERNELFIRST=${arg#vmtest.kernelfirst=} ;;
	vmtest.loops=*)    LOOPS=${arg#vmtest.loops=} ;;
	vmtest.unfenced=1) UNFENCED=--unfenced ;;
	vmtest.runs=*)     RUNS=${arg#vmtest.runs=} ;;
	vmtest.runtime=*)  RUNTIME=${arg#vmtest.runtime=} ;;
	vmtest.ramp=*)     RAMP=${arg#vmtest.ramp=} ;;
	vmtest.order=*)    ORDER=${arg#vmtest.order=} ;;
	vmtest.kconfigs=*) KCONFIGS=${arg#vmtest.kconfigs=} ;;
	vmtest.pconfigs=*) PCONFIGS=${arg#vmtest.pconfigs=} ;;
	vmtest.qds=*)      QDS=${arg#vmtest.qds=} ;;
	vmtest.tcp_pnvme=*)     TCP_PNVME=${arg#vmtest.tcp_pnvme=} ;;
	vmtest.tcp_selfcheck=*) TCP_SELFCHECK=${arg#vmtest.tcp_selfcheck=} ;;
	vmtest.tcp_wait=*)      TCP_WAIT=${arg#vmtest.tcp_wait=} ;;
	esac
done

finish() {
	echo "VMTEST: guest done, scenario $SCENARIO, uptime $(cut -d' ' -f1 /proc/uptime)s"
	sync
	poweroff -f
	sleep 10
}
trap finish EXIT

pass() { echo "VMTEST: $1 PASS $2"; }
fail() { echo "VMTEST: $1 FAIL $2"; }

# run NAME CMD...: must exit 0; output shown indented.
run() {
	name=$1; shift
	out=$("$@" 2>&1); rc=$?
	echo "$out" | sed 's/^/    | /'
	if [ $rc = 0 ]; then pass "$name" "($*)"; else fail "$name" "exit $rc ($*)"; fi
	return $rc
}

# refuse NAME REGEX CMD...: must exit 1 with a message matching REGEX (grep -E -i).
refuse() {
	name=$1; re=$2; shift 2
	out=$("$@" 2>&1); rc=$?
	echo "$out" | sed 's/^/    | /'
	msg=$(echo "$out" | grep -m1 '^pnvme:')
	if [ $rc = 1 ] && echo "$out" | grep -Eiq "$re"; then
		pass "$name" "message: ${msg:-$out}"
	else
		fail "$name" "exit $rc, wanted a message matching /$re/: ${msg:-$out}"
	fi
}

load() {  # insmod the modules listed in /etc/modules.<set>, in order
	for m in $(cat /etc/modules.$1); do
		insmod /lib/modules/$m.ko $2 2>/dev/null || {
			grep -q "^$(echo $m | tr - _) " /proc/modules || echo "VMTEST: insmod $m failed"
		}
	done
}

drv() { basename "$(readlink /sys/bus/pci/devices/$1/driver 2>/dev/null)" 2>/dev/null; }

# disk NAME BDF [N]: the kernel block device of namespace N (default 1) of BDF
disk() {
	for d in /sys/bus/pci/devices/$1/nvme/nvme*/nvme*n${2:-1}; do
		[ -e "$d" ] && { basename "$d"; return; }
	done
}

wait_disk() {  # wait_disk BDF [N]: up to 10 s for the namespace's /dev node
	i=0
	while [ $i -lt 100 ]; do
		n=$(disk $1 $2)
		[ -n "$n" ] && [ -b /dev/$n ] && { echo $n; return 0; }
		sleep 0.1; i=$((i + 1))
	done
	return 1
}

group_of() { basename "$(readlink /sys/bus/pci/devices/$1/iommu_group)"; }

mkdir -p /dev/hugepages
echo "VMTEST: scenario $SCENARIO seed $SEED, kernel $(uname -r)"
case $SCENARIO in
tcp|tcp-target|tcp-perf) ;;     # no VFIO: pnvme talks TCP to the kernel target
*) run tool-setup pnvme setup --hugepages 128 ;;
esac

A=0000:00:04.0   # 64 MiB, 512 B blocks, default MDTS: whole-drive test, unbind + readback
B=0000:00:05.0   # MDTS 2 (16 KiB), ns1 4 KiB blocks, ns2 512 B blocks
C=0000:00:06.0   # ext2 filesystem: bind refused while mounted
F=0000:00:09.0   # metadata: ns1 extended LBA (ms 8), ns2 separate metadata with PI type 1
R=0000:00:04.0   # recovery scenario: reset, kill -9 and restart, unbind

scenario_main() {
	load nvme
	load fs
	for b in $A $B $C; do wait_disk $b >/dev/null || echo "VMTEST: no disk for $b"; done
	# D and E: two controllers behind one PCIe-to-PCI bridge share an IOMMU group
	D=; E=
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat $d/class)" = 0x010802 ] || continue
		case ${d##*/} in 0000:00:*) continue ;; esac
		if [ -z "$D" ]; then D=${d##*/}; else E=${d##*/}; fi
	done
	echo "VMTEST: controllers A=$A B=$B C=$C D=$D E=$E"
	run tool-list pnvme list
	run tool-list-json pnvme list -o json
	# the sysfs walk (builds without libpci) must find the same controllers
	[ "$(pnvme list)" = "$(PNVME_PCI_SYSFS=1 pnvme list)" ] &&
		pass tool-list-sysfs "sysfs walk and libpci agree" ||
		fail tool-list-sysfs "PNVME_PCI_SYSFS=1 pnvme list differs: $(PNVME_PCI_SYSFS=1 pnvme list 2>&1 | tr '\n' '|')"

	# --- failure messages before vfio-pci is loaded
	refuse msg-bind-no-vfio-pci 'vfio-pci.*not loaded|modprobe vfio-pci' pnvme bind $A
	refuse msg-open-no-vfio 'modprobe vfio-pci|/dev/vfio/vfio' pnvme id-ctrl $A

	load vfio

	# --- bind refused while the kernel uses the device
	CD=$(disk $C)
	mkdir -p /mnt
	if mke2fs -q /dev/$CD >/dev/null 2>&1 && mount -t ext2 /dev/$CD /mnt; then
		dd if=/dev/urandom of=/mnt/data bs=64k count=32 2>/dev/null
		mkdir -p /mnt/dir && echo "pnvme mount test seed $SEED" > /mnt/dir/note
		sync
		SUM=$(md5sum /mnt/data | cut -d' ' -f1)
		echo "VMTEST: fs-md5 $SUM"
		run tool-list-in-use pnvme list
		refuse bind-refused-mounted "$CD is mounted on /mnt" pnvme bind $C
		[ "$(drv $C)" = nvme ] && [ "$(md5sum /mnt/data | cut -d' ' -f1)" = "$SUM" ] &&
			umount /mnt && mount -t ext2 /dev/$CD /mnt &&
			[ "$(md5sum /mnt/data | cut -d' ' -f1)" = "$SUM" ] &&
			pass fs-intact "$C still on nvme, /mnt/data md5 $SUM after remount" ||
			fail fs-intact "driver $(drv $C), data changed or remount failed"
		umount /mnt
	else
		fail bind-refused-mounted "mke2fs/mount of /dev/$CD failed"
	fi
	BD2=$(disk $B 2)
	if mkswap /dev/$BD2 >/dev/null 2>&1 && swapon /dev/$BD2; then
		refuse bind-refused-swap "$BD2 is used as swap" pnvme bind $B
		swapoff /dev/$BD2
	else
		fail bind-refused-swap "mkswap/swapon /dev/$BD2 failed"
	fi
	AD=$(disk $A)
	sleep 60 < /dev/$AD &
	HOLDER=$!
	refuse bind-refused-open "$AD is open by pid $HOLDER" pnvme bind $A
	kill $HOLDER; wait $HOLDER 2>/dev/null

	# --- to vfio-pci
	refuse msg-not-bound "bound to 'nvme'.*pnvme bind" pnvme id-ctrl $A
	run bind-A pnvme bind $A && [ "$(drv $A)" = vfio-pci ] || fail bind-A "driver $(drv $A)"
	run bind-B pnvme bind $B && [ "$(drv $B)" = vfio-pci ] || fail bind-B "driver $(drv $B)"
	run tool-status pnvme status
	run tool-id-ctrl pnvme id-ctrl $A
	run tool-id-ctrl-json pnvme id-ctrl $A -o json
	run tool-id-ns pnvme id-ns $B -n 1
	run tool-id-ns-json pnvme id-ns $B -n 2 -o json
	refuse tool-id-ns-inactive 'not active' pnvme id-ns $A -n 7
	pnvme frobnicate >/dev/null 2>&1; [ $? = 2 ] && pass tool-usage-exit2 "unknown command exits 2" ||
		fail tool-usage-exit2 "unknown command did not exit 2"

	echo "VMTEST: === whole-drive test on $A (seed $SEED)"
	t0=$(cut -d' ' -f1 /proc/uptime)
	vmtest run $A --seed $SEED --threads 4 --qd 8
	echo "VMTEST: vmtest on $A took $(awk "BEGIN{print $(cut -d' ' -f1 /proc/uptime) - $t0}") s"
	run tool-smart-log pnvme smart-log $A
	run tool-error-log pnvme error-log $A -o json

	# --- the group is busy while another process holds it
	vmtest hold $A 60 > /tmp/hold.log 2>&1 &
	HOLDER=$!
	i=0; while ! grep -q holding /tmp/hold.log && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
	cat /tmp/hold.log
	refuse msg-group-busy "/dev/vfio/$(group_of $A) is busy.*pid $HOLDER" pnvme id-ctrl $A
	refuse unbind-refused-busy "/dev/vfio/$(group_of $A) is open by pid $HOLDER" pnvme unbind $A
	kill $HOLDER; wait $HOLDER 2>/dev/null

	# --- locked memory limit (a user without CAP_IPC_LOCK)
	G=$(group_of $A)
	chown 1000:1000 /dev/vfio/$G
	refuse msg-memlock 'RLIMIT_MEMLOCK|ulimit -l' vmtest exec-as 1000 64 /bin/pnvme id-ctrl $A
	chown 0:0 /dev/vfio/$G

	echo "VMTEST: === 4 KiB blocks, MDTS 2, two namespaces on $B"
	vmtest run $B --seed $SEED --threads 2 --qd 8

	# --- back to the kernel, which must read what pnvme wrote
	run unbind-A pnvme unbind $A && [ "$(drv $A)" = nvme ] || fail unbind-A "driver $(drv $A)"
	AD=$(wait_disk $A)
	NLBA=$(( $(cat /sys/class/block/$AD/size) ))   # 512-byte sectors = LBAs here
	if [ -n "$AD" ] && dd if=/dev/$AD of=/tmp/a.img bs=1M 2>/dev/null; then
		run kernel-readback vmtest check /tmp/a.img --seed $SEED --nsid 1 --lba-size 512 --nlba $NLBA
		rm -f /tmp/a.img
	else
		fail kernel-readback "no block device for $A after unbind"
	fi

	# --- group not viable: D on vfio-pci, E (same group) still on nvme
	if [ -n "$D" ] && [ -n "$E" ]; then
		echo "VMTEST: group of $D: $(ls /sys/bus/pci/devices/$D/iommu_group/devices | tr '\n' ' ')"
		run bind-D pnvme bind $D
		refuse msg-group-not-viable "not viable.*$E \(nvme\)" pnvme id-ctrl $D
		run bind-E pnvme bind $E
		run group-viable-after-bind pnvme id-ctrl $D
		run unbind-D pnvme unbind $D
	else
		fail msg-group-not-viable "controllers behind the bridge not found"
	fi
	run tool-list-end pnvme list

	echo "VMTEST: === namespaces with metadata on $F: ns1 8 bytes extended, ns2 8 bytes separate with PI type 1"
	run bind-F pnvme bind $F && [ "$(drv $F)" = vfio-pci ] || fail bind-F "driver $(drv $F)"
	run tool-id-ns-md pnvme id-ns $F -n 2
	vmtest md $F --seed $SEED
}

# kill_round N io SECONDS | kill_round N bringup MS: start `vmtest stress` on R
# (verified I/O region by region, generation N's pattern), SIGKILL it after
# SECONDS of I/O (or MS after its VFIO open, during the controller bring-up),
# look at CC/CSTS, then at once `vmtest run` on R again: it must bring the
# controller up from whatever state it was left in, find the data the killed
# run had verified (or, after a bring-up kill, the previous run's image),
# rewrite and verify the whole drive and shut down cleanly.
kill_round() {
	n=$1; mode=$2; arg=$3
	log=/tmp/stress$n.log
	t0=$(cut -d' ' -f1 /proc/uptime)
	if [ $mode = bringup ]; then
		# The delay comes from an earlier bring-up; when this one is faster and
		# the kill comes after pnvme_ctrl_open returned, try again with half
		# (every try is a kill and a re-open of the controller too).
		ms=$arg; try=1
		while :; do
			vmtest stress $R --seed $SEED --gen $n --threads 4 --qd 8 --die-in-bringup $ms > $log 2>&1
			rc=$?
			sed 's/^/    | /' $log
			grep -q 'SIGKILL to myself.*during controller bring-up' $log && break
			[ $rc = 137 ] && grep -q 'SIGKILL to myself.*had returned' $log && [ $try -lt 6 ] || break
			ms=$((ms / 2)); [ $ms -ge 1 ] || ms=1; try=$((try + 1))
		done
		if [ $rc = 137 ] && grep -q 'SIGKILL to myself.*during controller bring-up' $log; then
			pass stress-kill-$n "killed by SIGKILL during the controller bring-up: $(grep -o 'SIGKILL to myself [0-9.]* ms after the VFIO open' $log) (try $try)"
		else
			fail stress-kill-$n "exit $rc, wanted 137 during the bring-up (try $try): $(grep -m1 'SIGKILL' $log)"
		fi
		prior=--prior-image
	else
		vmtest stress $R --seed $SEED --gen $n --threads 4 --qd 8 > $log 2>&1 &
		pid=$!
		i=0
		while ! grep -q 'I/O running' $log && kill -0 $pid 2>/dev/null && [ $i -lt 400 ]; do
			sleep 0.05; i=$((i + 1))
		done
		t1=$(cut -d' ' -f1 /proc/uptime)
		sleep $arg
		kill -9 $pid
		wait $pid; rc=$?
		t2=$(cut -d' ' -f1 /proc/uptime)
		sed 's/^/    | /' $log
		K=$(grep -o 'verified-through gen [0-9]* regions [0-9]*' $log | tail -n 1 | cut -d' ' -f5)
		P=$(grep -c 'pass [0-9]* complete' $log)
		NR=$(grep -o 'I/O running: ns [0-9]*, [0-9]* regions' $log | cut -d' ' -f5)
		if [ $rc = 137 ] && [ -n "$K" ] && ! grep -q FAIL $log; then
			pass stress-kill-$n "pid $pid killed by SIGKILL after $(awk "BEGIN{print $t2 - $t1}") s of verified I/O: $P passes over the drive complete, the first verified through region $K of $NR"
		else
			fail stress-kill-$n "exit $rc (wanted 137), verified regions '${K}': $(grep -m1 -E 'FAIL|I/O running' $log)"
		fi
		prior="--prior-gen $n --prior-regions ${K:-0}"
	fi
	vmtest regs $R | tee /tmp/regs$n.log
	vmtest run $R --seed $SEED --threads 4 --qd 8 --tag restart-$n $prior | tee /tmp/restart$n.log
	echo "VMTEST: round $n took $(awk "BEGIN{print $(cut -d' ' -f1 /proc/uptime) - $t0}") s"
}

scenario_recovery() {     # controller reset, kill -9 and restart, unbind (one controller, R)
	load nvme
	load vfio
	wait_disk $R >/dev/null || echo "VMTEST: no disk for $R"
	run bind-R pnvme bind $R && [ "$(drv $R)" = vfio-pci ] || fail bind-R "driver $(drv $R)"
	RM=/sys/bus/pci/devices/$R/reset_method
	echo "VMTEST: reset methods of $R: '$(cat $RM 2>/dev/null)'"

	echo "VMTEST: === pnvme_ctrl_reset with I/O outstanding on $R"
	vmtest reset $R --seed $SEED

	echo "VMTEST: === kill -9 and restart on $R, vfio-pci resets the function between owners"
	kill_round 1 io 1.5
	# Without a reset method vfio-pci leaves the function as the dead process
	# left it: controller enabled, queues live, commands in flight.
	if echo "" > $RM 2>/dev/null; then
		echo "VMTEST: reset methods of $R disabled: '$(cat $RM)'"
	else
		fail reset-method-off "cannot clear $RM"
	fi
	echo "VMTEST: === kill -9 and restart on $R, no function reset between owners"
	kill_round 2 io 1.5
	grep -q 'EN 1' /tmp/regs2.log && pass left-enabled-2 "$(cut -d: -f3- /tmp/regs2.log)" ||
		fail left-enabled-2 "the killed run did not leave the controller enabled:$(cut -d: -f3- /tmp/regs2.log)"
	# kill during the next bring-ups: a third and two thirds into the
	# controller phase (CC.EN, admin queue, identify, queue count) of the last one
	ms=$(grep -o 'controller bring-up [0-9.]* ms' /tmp/restart2.log | head -n 1 | cut -d' ' -f3)
	kill_round 3 bringup $(awk "BEGIN{v = int(${ms:-60} / 3); print v < 1 ? 1 : v}")
	kill_round 4 bringup $(awk "BEGIN{v = int(${ms:-60} * 2 / 3); print v < 1 ? 1 : v}")
	kill_round 5 io 1
	grep -q 'EN 1' /tmp/regs5.log && pass left-enabled-5 "$(cut -d: -f3- /tmp/regs5.log)" ||
		fail left-enabled-5 "the killed run did not leave the controller enabled:$(cut -d: -f3- /tmp/regs5.log)"
	echo default > $RM 2>/dev/null
	echo "VMTEST: reset methods of $R restored: '$(cat $RM 2>/dev/null)'"

	# --- nothing holds it now: back to the kernel, which must read what pnvme wrote
	run unbind-R pnvme unbind $R && [ "$(drv $R)" = nvme ] || fail unbind-R "driver $(drv $R)"
	RD=$(wait_disk $R)
	if [ -n "$RD" ] && dd if=/dev/$RD of=/tmp/r.img bs=1M 2>/dev/null; then
		NLBA=$(( $(cat /sys/class/block/$RD/size) ))   # 512-byte sectors = LBAs here
		echo "VMTEST: $R is /dev/$RD again, driver $(drv $R), md5 $(md5sum /tmp/r.img | cut -d' ' -f1)"
		run kernel-readback-R vmtest check /tmp/r.img --seed $SEED --nsid 1 --lba-size 512 --nlba $NLBA
		rm -f /tmp/r.img
	else
		fail kernel-readback-R "no block device for $R after unbind"
	fi
}

scenario_resetloop() {    # `vmtest reset` LOOPS times (development aid: vmtest.loops=N vmtest.unfenced=1)
	load vfio
	run bind-R pnvme bind $R
	i=0
	while [ $i -lt ${LOOPS:-10} ]; do
		i=$((i + 1))
		echo "VMTEST: reset loop $i"
		vmtest reset $R --seed $((SEED + i)) ${UNFENCED:-}
	done
}

scenario_smoke() {        # quick check of one controller (development aid)
	if [ "${KERNELFIRST:-0}" = 1 ]; then   # let the kernel nvme driver use it first
		load nvme
		echo "VMTEST: kernel disk $(wait_disk $A)"
	fi
	load vfio
	run bind-A pnvme bind $A
	PNVME_LOG=${LOGLEVEL:-info} vmtest run $A --seed $SEED --threads ${THREADS:-1} --qd ${QD:-1}
}

scenario_nointremap() {   # intel-iommu without interrupt remapping
	load nvme
	load vfio
	wait_disk $A >/dev/null
	run bind-A pnvme bind $A
	refuse msg-no-intremap 'interrupt remapping.*allow_unsafe_interrupts' pnvme id-ctrl $A
}

scenario_iommuoff() {     # the guest kernel runs without intel_iommu=on
	load nvme
	load vfio
	wait_disk $A >/dev/null
	refuse msg-no-iommu-group 'no IOMMU group.*intel_iommu=on' pnvme bind $A
	run tool-status-iommuoff pnvme status
}

# perf: 4 KiB random reads on one 1 GiB drive (P), as
# ../shared/reference/perf-anchors.md measures: every tool alone and pinned to
# CPU 0, RUNS rounds, each round every kernel configuration (nvme driver, two
# polled queues, fio), bind, every user-space configuration through vfio-pci
# (pnvme-perf, the minimal loop, fio on the pnvme engine, a peer's
# spdk_nvme_perf when packed), unbind; ORDER=reverse runs the user-space side
# first and each side's list backwards. KCONFIGS/PCONFIGS (vmtest.kconfigs=,
# vmtest.pconfigs=, comma-separated) pick the configurations. Results are lines
#   PERF: result CONFIG qd=Q run=R iops=N [KEY=VALUE...]
#   PERF: lt CONFIG qd=Q run=R sqdb->cqe_seen=US ... (the traced depth-1 cycle)
# which benchmarks/guest-compare.sh turns into the medians table.
P=0000:00:04.0
KCONFIGS=${KCONFIGS:-"iou-hipri-fb iou-hipri libaio"}
PCONFIGS=${PCONFIGS:-"pnvme pnvme-noshadow pnvme-lazycq pnvme-percmd minloop fio-pnvme spdk"}

perf_opts() {
	case $1 in
	iou-hipri)         echo "--ioengine=io_uring --hipri" ;;
	iou-hipri-fb)      echo "--ioengine=io_uring --hipri --fixedbufs --registerfiles" ;;
	iou-hipri-fb-gtod) echo "--ioengine=io_uring --hipri --fixedbufs --registerfiles --gtod_reduce=1" ;;
	fio-pnvme-gtod)    echo "--thread --ioengine=external:/lib/libpnvme-fio.so --gtod_reduce=1" ;;
	# fio's own clock on the cycle counter instead of clock_gettime() (the
	# guest's clocksource is the HPET: every read exits to QEMU)
	iou-hipri-fb-cpuclock) echo "--ioengine=io_uring --hipri --fixedbufs --registerfiles --clocksource=cpu" ;;
	fio-pnvme-cpuclock)    echo "--thread --ioengine=external:/lib/libpnvme-fio.so --clocksource=cpu" ;;
	iou)               echo "--ioengine=io_uring" ;;
	libaio)            echo "--ioengine=libaio" ;;
	pnvme*-lt)         perf_opts ${1%-lt} ;;   # the same on pnvme-perf-lt
	pnvme)             echo "" ;;
	pnvme-percmd)      echo "-N" ;;
	pnvme-shadow)      echo "--shadow-db" ;;
	pnvme-noshadow)    echo "--no-shadow-db" ;;
	pnvme-lazycq)      echo "--lazy-cq" ;;
	pnvme-classic)     echo "--classic" ;;
	pnvme-cmb)         echo "--cmb-sq" ;;   # needs guest-compare --cmb MB
	minloop)           echo "" ;;
	minloop-r*)        echo "-R ${1#minloop-r}" ;;   # minloop-r64: -R 64
	minloop-*)         echo "${1#minloop-}" | sed -E 's/lt$/L/; s/-//g; s/(.)/-\1 /g' ;;
	fio-pnvme)         echo "--thread --ioengine=external:/lib/libpnvme-fio.so" ;;
	esac
}

now() { cut -d' ' -f1 /proc/uptime; }

perf_fail() {  # perf_fail CONFIG MESSAGE
	case $1 in
	iou*|libaio) fail perf-kernel "$2"; KFAIL=1 ;;
	*) fail perf-pnvme "$2"; PFAIL=1 ;;
	esac
}

# perf_one CONFIG QD RUN [DISK]: one run, one "PERF: result" line
perf_one() {
	c=$1; qd=$2; r=$3; t=${RUNTIME:-10}; extra=
	ramp=; [ "${RAMP:-0}" -gt 0 ] && ramp=--ramp_time=$RAMP
	t0=$(now)
	case $c in
	iou*|libaio|fio-pnvme*)
		file=/dev/$4; case $c in fio-pnvme*) file=0000.00.04.0 ;; esac
		cmd="fio --name=r --filename=$file --direct=1 --rw=randread --bs=4k --iodepth=$qd --numjobs=1 --time_based --runtime=$t $ramp --cpus_allowed=0 --group_reporting $(perf_opts $c) --output-format=normal,terse"
		$cmd > /tmp/perf.out 2>&1; rc=$?
		grep -E 'err=|read: IOPS=| lat \((u|n|m)sec\): min|cpu  *:' /tmp/perf.out | sed 's/^/    fio| /'
		iops=$(grep -m1 '^3;fio-' /tmp/perf.out | awk -F';' '{print $8}') ;;
	pnvme*)
		a=; [ "${RAMP:-0}" -gt 0 ] && a="-a $RAMP"
		bin=pnvme-perf; case $c in *-lt) bin=pnvme-perf-lt ;; esac
		cmd="$bin -d $P -q $qd -o 4096 -w randread -t $t $a -c 0 $(perf_opts $c)"
		$cmd > /tmp/perf.out 2>&1; rc=$?
		grep -vE '^(Device|Counters) |^$' /tmp/perf.out | sed 's/^/    perf| /'
		iops=$(grep -m1 '^Total ' /tmp/perf.out | awk '{print $2}')
		cnt=$(grep -m1 '^counters:' /tmp/perf.out)
		dbio=$(echo "$cnt" | sed -nE 's/.* ([0-9.]+) doorbells\/IO.*/\1/p')
		extra=$(echo "$cnt" | awk -v db="$dbio" '{ios = $2; polls = $10; e = $12; sub(/^\(/, "", e); printf "db_per_io=%s cpl_per_poll=%.6f cpl_per_busy_poll=%.2f", db, polls ? ios / polls : 0, polls - e ? ios / (polls - e) : 0}')
		lat=$(awk '/^Total /{print $4}' /tmp/perf.out); extra="$extra lat_us=$lat" ;;
	minloop*)
		cmd="minloop $P -q $qd -s 64 -t $t -c 0 $(perf_opts $c)"
		$cmd > /tmp/perf.out 2>&1; rc=$?
		sed 's/^/    loop| /' /tmp/perf.out
		iops=$(sed -nE 's/^minloop: .* iops=([0-9]+) .*/\1/p' /tmp/perf.out)
		extra="lat_us=$(sed -nE 's/^minloop: .* lat_us=([0-9.]+) .*/\1/p' /tmp/perf.out)" ;;
	spdk)
		[ -x /bin/spdk_nvme_perf ] || return 0   # not packed (SPDK_PERF=)
		mkdir -p /var/tmp /var/run   # SPDK's PCI claim locks, DPDK's runtime directory
		cmd="spdk_nvme_perf -q $qd -o 4096 -w randread -t $t -c 0x1 -r trtype:PCIe_traddr:$P"
		spdk_nvme_perf -q $qd -o 4096 -w randread -t $t -c 0x1 -r "trtype:PCIe traddr:$P" > /tmp/perf.out 2>&1; rc=$?
		tail -6 /tmp/perf.out | sed 's/^/    spdk| /'
		iops=$(awk '/^Total *:/{print int($3)}' /tmp/perf.out)   # Total : IOPS MiB/s avg min max (us)
		extra="lat_us=$(awk '/^Total *:/{print $5}' /tmp/perf.out)" ;;
	*) perf_fail $c "unknown configuration $c"; return ;;
	esac
	t1=$(now)
	echo "PERF: $c qd=$qd run=$r: $cmd (exit $rc, $(awk "BEGIN{print $t1 - $t0}") s)"
	sed -nE 's/^(lattrace|minloop-lt): ([^(]*) \(.*/\2/p' /tmp/perf.out | while read -r kv; do
		echo "PERF: lt $c qd=$qd run=$r $kv"
	done
	if [ $rc = 0 ] && [ -n "$iops" ] && [ "${iops%.*}" -gt 0 ] 2>/dev/null; then
		echo "PERF: result $c qd=$qd run=$r iops=${iops%.*} $extra"
	else
		tail -20 /tmp/perf.out | sed 's/^/    | /'
		perf_fail $c "$c qd=$qd run=$r: exit $rc"
	fi
}

rev() { for x in "$@"; do echo "$x"; done | sed -n '1!G;h;$p'; }

perf_kernel_side() {  # perf_kernel_side RUN
	echo "PERF: === round $1, kernel nvme on /dev/$D, uptime $(now) s"
	for c in $KLIST; do
		for qd in $QDS; do perf_one $c $qd $1 $D; done
	done
}

perf_user_side() {  # perf_user_side RUN: bind, the user-space configurations, unbind
	if ! pnvme bind $P > /tmp/bind.out 2>&1; then
		sed 's/^/    | /' /tmp/bind.out
		fail perf-pnvme "pnvme bind $P failed in round $1"; PFAIL=1; return 1
	fi
	echo "PERF: === round $1, user space through vfio-pci, uptime $(now) s"
	for c in $PLIST; do
		for qd in $QDS; do perf_one $c $qd $1; done
	done
	pnvme unbind $P > /tmp/bind.out 2>&1 || { sed 's/^/    | /' /tmp/bind.out; fail perf-pnvme "pnvme unbind $P failed in round $1"; PFAIL=1; return 1; }
	D=$(wait_disk $P) || { fail perf-kernel "no disk for $P after unbind in round $1"; KFAIL=1; return 1; }
	[ "$(cat /sys/block/$D/queue/io_poll)" = 1 ] || echo "PERF: warning: io_poll is $(cat /sys/block/$D/queue/io_poll) after unbind"
}

scenario_perf() {
	for m in $(cat /etc/modules.nvme); do   # poll_queues for nvme only
		opt=; [ $m = nvme ] && opt=poll_queues=2
		insmod /lib/modules/$m.ko $opt 2>/dev/null ||
			grep -q "^$(echo $m | tr - _) " /proc/modules || echo "VMTEST: insmod $m failed"
	done
	load vfio
	D=$(wait_disk $P) || { fail perf-kernel "no disk for $P"; return; }
	pq=$(cat /sys/module/nvme/parameters/poll_queues 2>/dev/null)
	iop=$(cat /sys/block/$D/queue/io_poll 2>/dev/null)
	q=$(dmesg | grep -m1 -oE 'nvme[0-9]+: [0-9]+/[0-9]+/[0-9]+ default/read/poll queues')
	if [ "$pq" = 2 ] && [ "$iop" = 1 ] && echo "$q" | grep -q '/[1-9][0-9]* default/read/poll'; then
		pass perf-poll-queues "nvme poll_queues=$pq, /sys/block/$D/queue/io_poll=$iop, $q"
	else
		fail perf-poll-queues "nvme poll_queues='$pq' io_poll='$iop' '$q'"
	fi
	KLIST=$(echo $KCONFIGS | tr ',' ' '); PLIST=$(echo $PCONFIGS | tr ',' ' ')
	QDS=${QDS:-"1 32"}; QDS=$(echo $QDS | tr ',' ' ')
	[ -e /lib/libpnvme-fio.so ] || PLIST=$(echo $PLIST | tr ' ' '\n' | grep -v '^fio-pnvme')
	[ -x /bin/spdk_nvme_perf ] || PLIST=$(echo $PLIST | tr ' ' '\n' | grep -vx spdk)
	if [ "${ORDER:-forward}" = reverse ]; then KLIST=$(rev $KLIST); PLIST=$(rev $PLIST); QDS=$(rev $QDS); fi
	KLIST=$(echo $KLIST); PLIST=$(echo $PLIST); QDS=$(echo $QDS)
	echo "PERF: guest $(uname -r), $(grep -c ^processor /proc/cpuinfo) vCPUs ($(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2-), flags: $(grep -m1 '^flags' /proc/cpuinfo | grep -oE 'sse4_2|avx2?|constant_tsc|nonstop_tsc' | tr '\n' ' ')), $(grep MemTotal /proc/meminfo | tr -s ' '), clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
	echo "PERF: $D: $(cat /sys/block/$D/size) 512 B sectors, logical block $(cat /sys/block/$D/queue/logical_block_size) B, iommu group $(group_of $P) type $(cat /sys/kernel/iommu_groups/$(group_of $P)/type 2>/dev/null), runs ${RUNS:-3} x ${RUNTIME:-10} s, ramp ${RAMP:-0} s, order ${ORDER:-forward}"
	echo "PERF: kernel configurations: $KLIST; user-space configurations: $PLIST; depths: $QDS"
	dmesg | grep -iE 'tsc|clocksource' | sed 's/^/    dmesg| /'
	KFAIL=0; PFAIL=0
	r=1
	while [ $r -le ${RUNS:-3} ]; do
		if [ "${ORDER:-forward}" = reverse ]; then
			perf_user_side $r || break
			perf_kernel_side $r
		else
			perf_kernel_side $r
			perf_user_side $r || break
		fi
		r=$((r + 1))
	done
	[ $KFAIL = 0 ] && pass perf-kernel "${RUNS:-3} rounds"
	[ $PFAIL = 0 ] && pass perf-pnvme "${RUNS:-3} rounds"
}

# tcp: pnvme as NVMe/TCP host against the kernel target (nvmet-tcp) on
# 127.0.0.1:4420; the steps are in tcp-host.sh (and nvmet.sh sets the target up).
scenario_tcp() {
	load nvme   # nvme-core's crc providers and t10-pi (no PCIe NVMe drive in this guest)
	load tcp
	SEED=$SEED TCP_PNVME=${TCP_PNVME:-1} TCP_SELFCHECK=${TCP_SELFCHECK:-0} tcp-host.sh test
}

# tcp-target: the same target on 0.0.0.0:4420, reached from the build machine
# through QEMU user networking (tcp-target-dev.sh); stays up TCP_WAIT seconds or
# until a line arrives on TCP port 5555.
scenario_tcp_target() {
	load nvme
	load tcp
	load net
	ip link set lo up
	if [ -e /sys/class/net/eth0 ]; then
		ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up && ip route add default via 10.0.2.2
	fi
	echo "VMTEST: eth0 $(ip -o -4 addr show dev eth0 2>/dev/null | awk '{print $4}')"
	if SEED=$SEED tcp-host.sh setup 0.0.0.0; then
		pass tcp-target-ready "up to ${TCP_WAIT:-900} s; 'stop' on guest port 5555 ends it"
		msg=$(timeout ${TCP_WAIT:-900} nc -l -p 5555)
		echo "VMTEST: tcp-target: got '${msg}' (empty: time is up)"
		nvmet.sh ports
		nvmet.sh down && pass tcp-target-stop "target removed" || fail tcp-target-stop "nvmet.sh down"
	else
		fail tcp-target-ready "target setup failed"
	fi
}

# tcp-perf: pnvme-perf over TCP vs the kernel's nvme-tcp host under fio, against
# one kernel target (tcp-perf.sh; benchmarks/tcp-compare.sh makes the table).
# nvme-core without native multipath: fio reads the controller's own namespace.
scenario_tcp_perf() {
	for m in $(cat /etc/modules.nvme); do
		opt=; case $m in nvme-core|nvme_core) opt=multipath=N ;; esac
		insmod /lib/modules/$m.ko $opt 2>/dev/null ||
			grep -q "^$(echo $m | tr - _) " /proc/modules || echo "VMTEST: insmod $m failed"
	done
	load tcp
	RUNS=${RUNS:-3} RUNTIME=${RUNTIME:-10} ORDER=${ORDER:-forward} tcp-perf.sh
}

# tgt: pnvme-tgt exports the drive at 00:04.0 (through vfio-pci) and an
# emulated namespace on 127.0.0.1:4420; the kernel's nvme-tcp host is the
# client. The steps are in tgt-host.sh.
scenario_tgt() {
	load nvme
	load vfio
	load fs
	load tgt
	wait_disk $A >/dev/null || echo "VMTEST: no disk for $A"
	SEED=$SEED BDF_A=$A tgt-host.sh
}

# tgt-perf: pnvme-tgt vs the kernel target nvmet-tcp, the kernel's nvme-tcp host
# under fio, on the QEMU drive at 00:04.0 and a null backend (tgt-perf.sh;
# benchmarks/tgt-compare.sh makes the table).
scenario_tgt_perf() {
	for m in $(cat /etc/modules.nvme); do
		opt=; case $m in nvme-core|nvme_core) opt=multipath=N ;; esac
		insmod /lib/modules/$m.ko $opt 2>/dev/null ||
			grep -q "^$(echo $m | tr - _) " /proc/modules || echo "VMTEST: insmod $m failed"
	done
	load vfio
	load tcp
	RUNS=${RUNS:-3} RUNTIME=${RUNTIME:-10} ORDER=${ORDER:-forward} tgt-perf.sh
}

case $SCENARIO in
main|recovery|resetloop|smoke|nointremap|iommuoff|perf|tcp|tgt) scenario_$SCENARIO ;;
tcp-target) scenario_tcp_target ;;
tcp-perf) scenario_tcp_perf ;;
tgt-perf) scenario_tgt_perf ;;
*) fail scenario "unknown scenario $SCENARIO" ;;
esac
dmesg | grep -iE 'vfio|dmar|nvme|error|fault|BUG' | tail -40 | sed 's/^/    dmesg| /'
