#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# run-vm-tests.sh - pnvme against QEMU's emulated NVMe controllers, through
# VFIO and an emulated Intel IOMMU, inside a QEMU guest (TCG: no KVM needed).
#
#   tests/vm/run-vm-tests.sh [options]
#     --pnvme PATH     the pnvme tool to test     } default: build both here
#     --vmtest PATH    the vmtest payload          } from the source tree (gcc)
#     --workdir DIR    images, initramfs, logs (default: $PWD/vm-work)
#     --scenario NAME  main | recovery | nointremap | iommuoff (repeatable;
#                      default: these four) | smoke (one controller, quick;
#                      GUEST_ARGS="vmtest.log=debug vmtest.threads=1 vmtest.qd=1")
#                      | resetloop (`vmtest reset` over and over; GUEST_ARGS=
#                      "vmtest.loops=N [vmtest.unfenced=1]") | perf (kernel
#                      nvme + fio vs pnvme-perf on one 1 GiB drive, one boot;
#                      GUEST_ARGS="vmtest.runs=N vmtest.runtime=S vmtest.ramp=S";
#                      needs fio; see benchmarks/guest-compare.sh)
#                      | tcp (pnvme as NVMe/TCP host against the kernel
#                      target nvmet-tcp on 127.0.0.1:4420 in the guest:
#                      tcp-host.sh; env TCP_PNVME=0 leaves out the pnvme
#                      steps, TCP_SELFCHECK=1 adds the kernel-host checks)
#                      | tcp-perf (pnvme-perf over TCP vs the kernel's
#                      nvme-tcp host under fio, same kernel target, one boot:
#                      tcp-perf.sh; GUEST_ARGS="vmtest.runs=N vmtest.runtime=S
#                      vmtest.order=forward|reverse"; needs fio; see
#                      benchmarks/tcp-compare.sh)
#                      | tgt-perf (pnvme-tgt vs the kernel target nvmet-tcp,
#                      the kernel's nvme-tcp host under fio, one QEMU drive
#                      and a null backend, one boot: tgt-perf.sh;
#                      GUEST_ARGS as tcp-perf; needs fio; see
#                      benchmarks/tgt-compare.sh)
#                      | tcp-target (that target reachable from this machine
#                      at 127.0.0.1:$TCP_HOSTFWD (14420) for $TCP_WAIT (900)
#                      s: use tests/vm/tcp-target-dev.sh)
#                      | tgt (pnvme-tgt in the guest exporting a QEMU drive on
#                      vfio-pci and an emulated namespace, the kernel's
#                      nvme-tcp host as its client: tgt-host.sh)
#     --perf PATH      pnvme-perf for the perf scenario (default: built here)
#     --tgt PATH       pnvme-tgt for the tgt and tgt-perf scenarios (default: built here)
#     --tgt-alt PATH   tgt-perf: a second pnvme-tgt (/bin/pnvme-tgt-alt), measured
#                      after the first in every round (vmtest.tgt_alt=1)
#     --fio-engine PATH  perf: the fio engine libpnvme-fio.so (config fio-pnvme)
#     --spdk-perf PATH   perf: a peer's spdk_nvme_perf, packed with its shared
#                      libraries (config spdk; see benchmarks/guest-compare.sh)
#     --seed N         data pattern seed (default: random)
#     --timeout SEC    per guest boot (default 420; perf: 900)
#
# Steps: find the newest /boot/vmlinuz-* and its modules, extract the
# uncompressed vmlinux for a PVH boot, pack an initramfs (busybox-static,
# modules in dependency order, the payloads and the shared libraries they
# need, tests/vm/guest-init.sh as /init), create raw disk images, boot one
# guest per scenario with a timeout, keep a timestamped serial log, then check
# on the host: every expected "VMTEST: <check> PASS" line is there and no
# FAIL line, and the disk images hold exactly what the guest wrote (byte for
# byte against `vmtest expect`; the ext2 image with e2fsck and debugfs).
# The recovery scenario: pnvme_ctrl_reset() with I/O outstanding on two queue
# pairs, `vmtest stress` killed with SIGKILL mid-I/O and during bring-up (with
# and without vfio-pci's function reset in between) and restarted at once,
# then the controller handed back to the kernel nvme driver.
# Exit status: 0 all passed, 1 a check failed, 2 the harness could not run
# (a missing QEMU, kernel or busybox is a failure, never a skip).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
PNVME_BIN=
VMTEST_BIN=
PERF_BIN=
TGT_BIN=
FIO_ENGINE=
SPDK_PERF=
WORK=$PWD/vm-work
SCENARIOS=()
SEED=$(( $(od -An -N3 -tu4 /dev/urandom | tr -d ' ') + 1 ))
TIMEOUT=420

while [ $# -gt 0 ]; do
	case "$1" in
	--pnvme)    PNVME_BIN=$2; shift 2 ;;
	--vmtest)   VMTEST_BIN=$2; shift 2 ;;
	--perf)     PERF_BIN=$2; shift 2 ;;
	--workdir)  WORK=$2; shift 2 ;;
	--scenario) SCENARIOS+=("$2"); shift 2 ;;
	--seed)     SEED=$2; shift 2 ;;
	--timeout)  TIMEOUT=$2; TIMEOUT_SET=1; shift 2 ;;
	--tgt)      TGT_BIN=$2; shift 2 ;;
	--tgt-alt)  TGT_ALT_BIN=$2; shift 2 ;;
	--fio-engine) FIO_ENGINE=$2; shift 2 ;;
	--spdk-perf)  SPDK_PERF=$2; shift 2 ;;
	-h|--help)  sed -n '3,57p' "$0"; exit 0 ;;
	*) echo "run-vm-tests: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(main recovery nointremap iommuoff)
WANT_PERF=0
case " ${SCENARIOS[*]} " in *" perf "*|*" tcp-perf "*|*" tgt-perf "*) WANT_PERF=1 ;; esac
WANT_TGT=0   # tgt, tgt-perf: pnvme-tgt packed too
case " ${SCENARIOS[*]} " in *" tgt "*|*" tgt-perf "*) WANT_TGT=1 ;; esac
WANT_FS=0    # tgt: mke2fs and e2fsck packed too
case " ${SCENARIOS[*]} " in *" tgt "*) WANT_FS=1 ;; esac

T0=${EPOCHREALTIME/./}
elapsed() { local d=$(( ${EPOCHREALTIME/./} - ${1:-$T0} )); printf '%d.%03d' $((d / 1000000)) $((d / 1000 % 1000)); }
die() { echo "run-vm-tests: ERROR: $*" >&2; exit 2; }
RESULTS=()   # "PASS|FAIL name detail"
record() { RESULTS+=("$1 $2"); echo "HOST: $2 $1"; }

mkdir -p "$WORK" || die "cannot create $WORK"
WORK=$(cd "$WORK" && pwd)

# ---------------------------------------------------------------------------
# prerequisites: all hard failures
# ---------------------------------------------------------------------------
QEMU=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
BUSYBOX=$(command -v busybox) || die "busybox not found (apt-get install busybox-static)"
# a static binary: ldd says "not a dynamic executable" and fails
! ldd "$BUSYBOX" >/dev/null 2>&1 || die "$BUSYBOX is not static (apt-get install busybox-static)"
command -v modinfo >/dev/null || die "modinfo not found (apt-get install kmod)"
command -v cpio >/dev/null || die "cpio not found (apt-get install cpio)"
BZIMAGE=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
[ -n "$BZIMAGE" ] || die "no /boot/vmlinuz-* (apt-get install linux-image-amd64)"
KVER=${BZIMAGE#/boot/vmlinuz-}
[ -d "/lib/modules/$KVER" ] || die "no modules for $KVER in /lib/modules/$KVER"
echo "== kernel $BZIMAGE, modules /lib/modules/$KVER, QEMU $($QEMU --version | head -1)"
echo "== workdir $WORK, seed $SEED, scenarios ${SCENARIOS[*]}"

# ---------------------------------------------------------------------------
# payloads: given, or built here from the source tree
# ---------------------------------------------------------------------------
if [ -z "$PNVME_BIN" ] || [ -z "$VMTEST_BIN" ] || { [ $WANT_PERF = 1 ] && [ -z "$PERF_BIN" ]; } ||
   { [ $WANT_TGT = 1 ] && [ -z "$TGT_BIN" ]; }; then
	echo "== building pnvme and vmtest from $SRC"
	mkdir -p "$WORK/build"
	PCI_FLAGS=()
	if pkg-config --exists libpci 2>/dev/null; then
		PCI_FLAGS=(-DPNVME_HAVE_LIBPCI=1 $(pkg-config --cflags libpci))
		PCI_LIBS=$(pkg-config --libs libpci)
	else
		PCI_LIBS=
	fi
	CC=${CC:-gcc}
	CFLAGS=(-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wshadow -I"$SRC/include" -I"$SRC/src")
	objs=()
	for f in $(find "$SRC/src" -name '*.c' | sort); do
		o=$WORK/build/$(basename "$(dirname "$f")")_$(basename "$f" .c).o
		$CC "${CFLAGS[@]}" "${PCI_FLAGS[@]}" -c "$f" -o "$o" || die "compiling $f failed"
		objs+=("$o")
	done
	ar rcs "$WORK/build/libpnvme.a" "${objs[@]}"
	$CC "${CFLAGS[@]}" "$SRC/tools/pnvme.c" "$WORK/build/libpnvme.a" $PCI_LIBS -lisal -lpthread \
		-o "$WORK/build/pnvme" || die "linking pnvme failed"
	$CC "${CFLAGS[@]}" "$HERE/vmtest.c" "$HERE/vmtest_md.c" "$HERE/vmtest_tcp.c" "$WORK/build/libpnvme.a" $PCI_LIBS -lisal -lpthread \
		-o "$WORK/build/vmtest" || die "linking vmtest failed"
	if [ $WANT_PERF = 1 ] && [ -z "$PERF_BIN" ]; then
		$CC "${CFLAGS[@]}" "$SRC/tools/pnvme-perf.c" "$WORK/build/libpnvme.a" $PCI_LIBS -lisal \
			-lpthread -lm -o "$WORK/build/pnvme-perf" || die "linking pnvme-perf failed"
		PERF_BIN=$WORK/build/pnvme-perf
	fi
	if [ $WANT_TGT = 1 ] && [ -z "$TGT_BIN" ]; then
		$CC "${CFLAGS[@]}" "$SRC/tools/pnvme-tgt.c" "$WORK/build/libpnvme.a" $PCI_LIBS -lisal \
			-lpthread -lm -o "$WORK/build/pnvme-tgt" || die "linking pnvme-tgt failed"
		TGT_BIN=$WORK/build/pnvme-tgt
	fi
	PNVME_BIN=${PNVME_BIN:-$WORK/build/pnvme}
	VMTEST_BIN=${VMTEST_BIN:-$WORK/build/vmtest}
fi
[ -x "$PNVME_BIN" ] || die "pnvme tool $PNVME_BIN missing"
[ -x "$VMTEST_BIN" ] || die "vmtest $VMTEST_BIN missing"
if [ $WANT_PERF = 1 ]; then
	[ -x "$PERF_BIN" ] || die "pnvme-perf $PERF_BIN missing"
	FIO_BIN=$(command -v fio) || die "fio not found (tools/install-deps.sh --bench)"
fi
[ $WANT_TGT = 0 ] || [ -x "$TGT_BIN" ] || die "pnvme-tgt $TGT_BIN missing"
if [ $WANT_FS = 1 ]; then
	# mkfs.ext4 and e2fsck for the filesystem on the exported namespace
	# (busybox has an ext2-only mke2fs and no fsck for ext2/3/4)
	MKE2FS_BIN=$(command -v mke2fs || echo /usr/sbin/mke2fs)
	E2FSCK_BIN=$(command -v e2fsck || echo /usr/sbin/e2fsck)
	[ -x "$MKE2FS_BIN" ] && [ -x "$E2FSCK_BIN" ] || die "mke2fs/e2fsck not found (apt-get install e2fsprogs)"
fi

# ---------------------------------------------------------------------------
# kernel: an uncompressed vmlinux for PVH boot (skips the slow in-guest
# decompression); the payload is found by its compression magic, as the
# kernel's scripts/extract-vmlinux does
# ---------------------------------------------------------------------------
VMLINUX=$WORK/vmlinux-$KVER
try_decompress() {  # try_decompress MAGIC_REGEX TOOL...
	local magic=$1; shift
	local off
	for off in $(LC_ALL=C grep -obUaP "$magic" "$BZIMAGE" | head -n 4 | cut -d: -f1); do
		"$@" < <(tail -c +$((off + 1)) "$BZIMAGE") > "$VMLINUX.tmp" 2>/dev/null
		if [ "$(head -c 4 "$VMLINUX.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
			mv "$VMLINUX.tmp" "$VMLINUX"
			return 0
		fi
	done
	rm -f "$VMLINUX.tmp"
	return 1
}
if [ ! -s "$VMLINUX" ] || [ "$BZIMAGE" -nt "$VMLINUX" ]; then
	echo "== extracting $VMLINUX from $BZIMAGE"
	try_decompress '\xfd7zXZ\x00' xz -dc --single-stream ||
	try_decompress '\x28\xb5\x2f\xfd' zstd -dcq ||
	try_decompress '\x1f\x8b\x08' gzip -dc ||
	try_decompress '\x02\x21\x4c\x18' lz4 -dc ||
	{ echo "== no known payload in $BZIMAGE: booting the bzImage (slower)"; VMLINUX=$BZIMAGE; }
fi

# pnvme-perf on a library built with -DPNVME_LATTRACE (benchmark build: the
# library stamps each depth-1 cycle), into $1
build_lattrace_perf() {
	local dir=$WORK/build-lt f o objs=() pci=() libs=
	mkdir -p "$dir"
	if pkg-config --exists libpci 2>/dev/null; then
		pci=(-DPNVME_HAVE_LIBPCI=1 $(pkg-config --cflags libpci)); libs=$(pkg-config --libs libpci)
	fi
	for f in $(find "$SRC/src" -name '*.c' | sort); do
		o=$dir/$(basename "$(dirname "$f")")_$(basename "$f" .c).o
		${CC:-gcc} -std=c11 -D_GNU_SOURCE -O2 -g -DPNVME_LATTRACE -I"$SRC/include" -I"$SRC/src" \
			"${pci[@]}" -c "$f" -o "$o" || die "compiling $f (lattrace) failed"
		objs+=("$o")
	done
	ar rcs "$dir/libpnvme.a" "${objs[@]}"
	${CC:-gcc} -std=c11 -D_GNU_SOURCE -O2 -g -DPNVME_LATTRACE -I"$SRC/include" \
		"$SRC/tools/pnvme-perf.c" "$dir/libpnvme.a" $libs -lisal -lpthread -lm -o "$1" ||
		die "linking pnvme-perf-lt failed"
}

# ---------------------------------------------------------------------------
# initramfs
# ---------------------------------------------------------------------------
STAGE=$WORK/rootfs
rm -rf "$STAGE"
mkdir -p "$STAGE"/{bin,etc,proc,sys,dev,tmp,mnt,lib/modules}
cp "$BUSYBOX" "$STAGE/bin/busybox"
ln -s busybox "$STAGE/bin/sh"
cp "$PNVME_BIN" "$STAGE/bin/pnvme"
cp "$VMTEST_BIN" "$STAGE/bin/vmtest"
cp "$HERE/guest-init.sh" "$STAGE/init"
chmod 755 "$STAGE/init"
# NVMe/TCP: the kernel target's set-up script, the tcp scenario, and a static
# helper for the kernel-host self-check (always packed: about 1 MiB)
install -m 755 "$HERE/nvmet.sh" "$STAGE/bin/nvmet.sh"
install -m 755 "$HERE/tcp-host.sh" "$STAGE/bin/tcp-host.sh"
install -m 755 "$HERE/tcp-perf.sh" "$STAGE/bin/tcp-perf.sh"
install -m 755 "$HERE/tgt-perf.sh" "$STAGE/bin/tgt-perf.sh"
${CC:-gcc} -static -O2 -Wall -Wextra -o "$WORK/tcpcheck" "$HERE/tcpcheck.c" ||
	die "building the static tcpcheck helper failed (static libc: libc6-dev)"
cp "$WORK/tcpcheck" "$STAGE/bin/tcpcheck"
PAYLOADS=("$PNVME_BIN" "$VMTEST_BIN")
if [ $WANT_PERF = 1 ]; then   # the perf scenario only: fio's libraries add ~80 MiB
	cp "$PERF_BIN" "$STAGE/bin/pnvme-perf"
	cp "$FIO_BIN" "$STAGE/bin/fio"
	PAYLOADS+=("$PERF_BIN" "$FIO_BIN")
	# perf: the minimal polled loop (benchmarks/minloop), and pnvme-perf on a
	# library built with -DPNVME_LATTRACE (the depth-1 cycle, src/pcie/lattrace.h)
	${CC:-gcc} -static -O2 -Wall -Wextra -o "$STAGE/bin/minloop" "$SRC/benchmarks/minloop/minloop.c" ||
		die "building the static minloop failed (static libc: libc6-dev)"
	build_lattrace_perf "$STAGE/bin/pnvme-perf-lt"
	PAYLOADS+=("$STAGE/bin/pnvme-perf-lt")
	if [ -n "$FIO_ENGINE" ]; then
		[ -f "$FIO_ENGINE" ] || die "fio engine $FIO_ENGINE missing"
		cp "$FIO_ENGINE" "$STAGE/lib/libpnvme-fio.so"
		PAYLOADS+=("$FIO_ENGINE")
	fi
	if [ -n "$SPDK_PERF" ]; then   # a peer's binary and its libraries, as found by ldd here
		[ -x "$SPDK_PERF" ] || die "spdk_nvme_perf $SPDK_PERF missing"
		cp "$SPDK_PERF" "$STAGE/bin/spdk_nvme_perf"
		PAYLOADS+=("$SPDK_PERF")
		# SPDK's env start-up loads OpenSSL's configuration and fails without it
		if [ -e /usr/lib/ssl/openssl.cnf ]; then
			mkdir -p "$STAGE/usr/lib/ssl"
			cp -L /usr/lib/ssl/openssl.cnf "$STAGE/usr/lib/ssl/openssl.cnf"
		fi
	fi
	# tcp-perf counts system calls per I/O with strace -c, where there is one
	if STRACE_BIN=$(command -v strace); then
		cp "$STRACE_BIN" "$STAGE/bin/strace"
		PAYLOADS+=("$STRACE_BIN")
	fi
fi
if [ $WANT_TGT = 1 ]; then    # tgt, tgt-perf: pnvme-tgt
	cp "$TGT_BIN" "$STAGE/bin/pnvme-tgt"
	PAYLOADS+=("$TGT_BIN")
	if [ -n "${TGT_ALT_BIN:-}" ]; then
		cp "$TGT_ALT_BIN" "$STAGE/bin/pnvme-tgt-alt"
		PAYLOADS+=("$TGT_ALT_BIN")
	fi
fi
if [ $WANT_FS = 1 ]; then     # the tgt scenario: its script and e2fsprogs (~2 MiB)
	install -m 755 "$HERE/tgt-host.sh" "$STAGE/bin/tgt-host.sh"
	mkdir -p "$STAGE/usr/sbin"
	cp "$MKE2FS_BIN" "$STAGE/usr/sbin/mke2fs"
	cp "$E2FSCK_BIN" "$STAGE/usr/sbin/e2fsck"
	[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$STAGE/etc/mke2fs.conf"
	PAYLOADS+=("$MKE2FS_BIN" "$E2FSCK_BIN")
fi
# shared libraries of the payloads (libpci has no static archive on Debian)
for bin in "${PAYLOADS[@]}"; do
	ldd "$bin" 2>/dev/null | grep -oE '/[^ ]+' | while read -r lib; do
		[ -e "$lib" ] || continue
		mkdir -p "$STAGE$(dirname "$lib")"
		cp -L "$lib" "$STAGE$lib"
	done
done

# Modules, dependencies first (modinfo "depends"); the crypto providers that
# crc-t10dif / crc64-rocksoft / ext4 look up at load time are listed
# explicitly because the guest has no modprobe database to find them.
declare -A SEEN=()
ORDER=()
add_mod() {
	local m=$1 f d
	[ -n "${SEEN[$m]:-}" ] && return
	SEEN[$m]=1
	f=$(modinfo -k "$KVER" -F filename "$m" 2>/dev/null) || { echo "   (module $m not found, skipped)"; return; }
	case "$f" in ""|"(builtin)") return ;; esac
	for d in $(modinfo -k "$KVER" -F depends "$m" | tr ',' ' '); do add_mod "$d"; done
	case "$f" in
	*.ko)     cp "$f" "$STAGE/lib/modules/$m.ko" ;;
	*.ko.xz)  xz -dc "$f" > "$STAGE/lib/modules/$m.ko" ;;
	*.ko.zst) zstd -qdc "$f" > "$STAGE/lib/modules/$m.ko" ;;
	*.ko.gz)  gzip -dc "$f" > "$STAGE/lib/modules/$m.ko" ;;
	*) echo "   (module $m: unknown file $f, skipped)"; return ;;
	esac
	ORDER+=("$m")
}
mod_set() {  # mod_set NAME ROOTS...: write /etc/modules.NAME (complete with
	local name=$1; shift   # dependencies; guest-init's load skips loaded ones)
	ORDER=()
	SEEN=()
	for m in "$@"; do add_mod "$m"; done
	printf '%s\n' "${ORDER[@]}" > "$STAGE/etc/modules.$name"
	echo "   modules.$name: ${ORDER[*]}"
}
echo "== initramfs"
mod_set nvme crct10dif_common crct10dif_generic crc64_rocksoft_generic nvme
mod_set vfio vfio vfio_iommu_type1 vfio-pci
mod_set fs crc32c_generic ext4
# NVMe/TCP: target (nvmet-tcp, null_blk) and host (nvme-tcp, for the
# self-check); crc32c_generic provides the header/data digests
mod_set tcp crct10dif_common crct10dif_generic crc64_rocksoft_generic crc32c_generic \
	configfs nvmet nvmet-tcp null_blk nvme-fabrics nvme-tcp
mod_set net virtio_pci virtio_net
# pnvme-tgt's client: the kernel's NVMe/TCP host only
mod_set tgt crc32c_generic nvme-fabrics nvme-tcp
INITRD=$WORK/initramfs.cpio.gz
(cd "$STAGE" && find . -print0 | cpio --null -o -H newc --quiet --owner=0:0) | gzip -1 > "$INITRD"
echo "   $INITRD: $(du -h "$INITRD" | cut -f1)"

# ---------------------------------------------------------------------------
# one guest boot
# ---------------------------------------------------------------------------
img() { rm -f "$WORK/$1"; truncate -s "$2" "$WORK/$1"; }
drive() { echo "-drive file=$WORK/$1,if=none,id=$2,format=raw,discard=unmap"; }

# The guest kernel under TCG now and then hangs during boot, before /init
# (RCU stall reports, a vCPU whose timer stopped): nothing of pnvme has run
# then, and the disks are untouched (the nvme module is loaded by /init). A
# boot that shows no "/init started" within INIT_TIMEOUT seconds is stopped
# and booted once more; the summary says so.
INIT_TIMEOUT=${INIT_TIMEOUT:-90}
NOTES=()

boot() {  # boot SCENARIO IOMMU_OPTS EXTRA_APPEND QEMU_ARGS...
	local sc=$1 attempt
	for attempt in 1 2; do
		boot_once "$attempt" "$@" && return
		mv "$WORK/serial-$sc.log" "$WORK/serial-$sc.hung$attempt.log"
		NOTES+=("boot-$sc: attempt $attempt: the guest kernel hung before /init (no \"/init started\" within ${INIT_TIMEOUT}s; log serial-$sc.hung$attempt.log)")
		echo "== boot $sc: the guest kernel hung before /init; stopped it (attempt $attempt)"
	done
	record FAIL "boot-$sc: the guest kernel hung before /init twice"
}

# boot_once ATTEMPT SCENARIO ...: returns 1 only when the kernel hung before /init.
# no_timer_check: under TCG on a loaded host the kernel's early check that the
# timer interrupt arrives through the (interrupt-remapped) IO-APIC can time out,
# and with interrupt remapping that is a panic ("timer doesn't work through
# Interrupt-remapped IO-APIC"); the timer works, the check is what is slow
# (KVM guests skip it the same way).
boot_once() {
	local attempt=$1 sc=$2 iommu=$3 append=$4; shift 4
	local log=$WORK/serial-$sc.log pidf=$WORK/qemu-$sc.pid rcf=$WORK/qemu-$sc.rc
	local start d total rc bg hung=0
	local cmd=("$QEMU" -accel tcg,thread=multi -M q35,kernel-irqchip=split -smp 2 -m 1G
		-device "intel-iommu,$iommu"
		-kernel "$VMLINUX" -initrd "$INITRD"
		-append "console=ttyS0 panic=-1 loglevel=6 init_on_alloc=0 no_timer_check $append vmtest.scenario=$sc vmtest.seed=$SEED"
		-nographic -no-reboot -nic none -pidfile "$pidf" "$@")
	rm -f "$pidf" "$rcf"
	echo "== boot $sc (attempt $attempt): ${cmd[*]}" | tee "$log"
	start=${EPOCHREALTIME/./}
	(
		timeout -k 5 "$TIMEOUT" "${cmd[@]}" < /dev/null 2>&1 |
		sed -u -e 's/\x1bc//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\r$//' |
		while IFS= read -r line; do
			d=$(( ${EPOCHREALTIME/./} - start ))
			printf '[%4d.%03d] %s\n' $((d / 1000000)) $((d / 1000 % 1000)) "$line"
		done | tee -a "$log"
		echo "${PIPESTATUS[0]}" > "$rcf"
	) &
	bg=$!
	while kill -0 "$bg" 2>/dev/null; do
		if [ $(( (${EPOCHREALTIME/./} - start) / 1000000 )) -ge "$INIT_TIMEOUT" ] &&
		   ! grep -q 'VMTEST: guest /init started' "$log"; then
			hung=1
			[ -s "$pidf" ] && kill "$(cat "$pidf")" 2>/dev/null
			break
		fi
		sleep 0.5
	done
	wait "$bg"
	[ "$hung" = 1 ] && return 1
	rc=$(cat "$rcf" 2>/dev/null || echo "?")
	total=$(elapsed "$start")
	local t_kern t_init g_end
	t_kern=$(grep -m1 'Linux version' "$log" | sed -E 's/^\[ *([0-9.]+)\].*/\1/')
	t_init=$(grep -m1 'VMTEST: guest /init started' "$log" | sed -E 's/^\[ *([0-9.]+)\].*/\1/')
	g_end=$(grep -m1 'VMTEST: guest done' "$log" | sed -E 's/.*uptime ([0-9.]+)s.*/\1/')
	[ "$rc" = 124 ] && record FAIL "boot-$sc timed out after ${TIMEOUT}s"
	grep -q 'VMTEST: guest done' "$log" || record FAIL "boot-$sc guest did not finish (qemu exit $rc)"
	echo "== timing $sc: qemu exit $rc, wall ${total}s, kernel banner at ${t_kern:-n/a}s," \
	     "/init at ${t_init:-n/a}s, guest uptime at end ${g_end:-n/a}s" | tee -a "$log"
	TIMINGS+=("$sc: wall ${total}s (kernel ${t_kern:-n/a}s, /init ${t_init:-n/a}s, guest uptime ${g_end:-n/a}s)")
	return 0
}

# expect_checks SCENARIO NAME...: each NAME needs a PASS line (as many as it is
# listed), and any FAIL line of the scenario fails the run.
expect_checks() {
	local sc=$1; shift
	local log=$WORK/serial-$sc.log
	declare -A want=()
	local n
	for n in "$@"; do want[$n]=$(( ${want[$n]:-0} + 1 )); done
	for n in "${!want[@]}"; do
		local got
		got=$(grep -cE "VMTEST: $n PASS( |$)" "$log" 2>/dev/null)
		got=${got:-0}
		if [ "$got" -ge "${want[$n]}" ]; then
			record PASS "$sc/$n"
		else
			record FAIL "$sc/$n (PASS lines: $got of ${want[$n]}): $(grep -m1 -E "VMTEST: $n FAIL" "$log" | sed -E 's/^\[[ 0-9.]+\] //')"
		fi
	done
	while IFS= read -r line; do
		record FAIL "$sc: guest reported ${line#*VMTEST: }"
	done < <(grep -E 'VMTEST: [^ ]+ FAIL' "$log" 2>/dev/null | sed -E 's/^\[[ 0-9.]+\] //')
}

# compare_image NAME IMAGE NSID LBA_SIZE: byte compare with `vmtest expect`
compare_image() {
	local name=$1 image=$WORK/$2 nsid=$3 lbas=$4
	local size nlba
	size=$(stat -c %s "$image")
	nlba=$(( size / lbas ))
	"$VMTEST_BIN" expect --seed "$SEED" --nsid "$nsid" --lba-size "$lbas" --nlba "$nlba" \
		--out "$WORK/expect-$2" || { record FAIL "$name: vmtest expect failed"; return; }
	local t0=${EPOCHREALTIME/./}
	if cmp "$WORK/expect-$2" "$image" > "$WORK/cmp.out" 2>&1; then
		record PASS "$name: $2 ($size bytes, nsid $nsid, $lbas-byte blocks) identical to the expected image ($(elapsed "$t0")s)"
	else
		record FAIL "$name: $2 differs from the expected image: $(cat "$WORK/cmp.out")"
		"$VMTEST_BIN" check "$image" --seed "$SEED" --nsid "$nsid" --lba-size "$lbas" --nlba "$nlba"
	fi
	rm -f "$WORK/expect-$2"
}

# compare_md_image NAME IMAGE NSID LBA_SIZE MS PI: QEMU keeps a namespace with
# metadata as the data of its N = size / (LBA_SIZE + MS) blocks, then their
# metadata; byte compare with `vmtest expect-md`.
compare_md_image() {
	local name=$1 image=$WORK/$2 nsid=$3 lbas=$4 ms=$5 pi=$6 size nlba t0=${EPOCHREALTIME/./}
	size=$(stat -c %s "$image")
	nlba=$((size / (lbas + ms)))
	"$VMTEST_BIN" expect-md --seed "$SEED" --nsid "$nsid" --lba-size "$lbas" --ms "$ms" --pi "$pi" \
		--nlba "$nlba" --image-size "$size" --out "$WORK/expect-$2" ||
		{ record FAIL "$name: vmtest expect-md failed"; return; }
	if cmp "$WORK/expect-$2" "$image" > "$WORK/cmp.out" 2>&1; then
		record PASS "$name: $2 ($size bytes: $nlba blocks of $lbas + $ms bytes, PI type $pi, nsid $nsid) identical to the expected data and metadata ($(elapsed "$t0")s)"
	else
		record FAIL "$name: $2 differs from the expected image: $(cat "$WORK/cmp.out")"
	fi
	rm -f "$WORK/expect-$2"
}

TIMINGS=()

run_main() {
	img a.img 64M; img b1.img 32M; img b2.img 16M; img c.img 16M; img d.img 4M; img e.img 4M
	img f1.img 8M; img f2.img 8M
	boot main intremap=on "intel_iommu=on" \
		$(drive a.img da) -device nvme,serial=pnvmeA,drive=da,addr=0x4,cmb_size_mb=4 \
		$(drive b1.img db1) $(drive b2.img db2) \
		-device nvme,id=nvB,serial=pnvmeB,mdts=2,addr=0x5 \
		-device nvme-ns,drive=db1,bus=nvB,nsid=1,logical_block_size=4096,physical_block_size=4096 \
		-device nvme-ns,drive=db2,bus=nvB,nsid=2 \
		$(drive c.img dc) -device nvme,serial=pnvmeC,drive=dc,addr=0x6 \
		-device pcie-pci-bridge,id=br0,bus=pcie.0,addr=0x7 \
		$(drive d.img dd) -device nvme,serial=pnvmeD,drive=dd,bus=br0,addr=0x1 \
		$(drive e.img de) -device nvme,serial=pnvmeE,drive=de,bus=br0,addr=0x2 \
		$(drive f1.img df1) $(drive f2.img df2) \
		-device nvme,id=nvF,serial=pnvmeF,addr=0x9 \
		-device nvme-ns,drive=df1,bus=nvF,nsid=1,ms=8,mset=1 \
		-device nvme-ns,drive=df2,bus=nvF,nsid=2,ms=8,mset=0,pi=1
	local ns=(write-all flush read-compare-all write-zeroes write-zeroes-deac dsm-deallocate
		  dsm-deallocate-tail readv-sgl cmb-sq irq final-flush)
	expect_checks main tool-setup tool-list tool-list-json tool-list-sysfs msg-bind-no-vfio-pci msg-open-no-vfio \
		tool-list-in-use bind-refused-mounted fs-intact bind-refused-swap bind-refused-open \
		msg-not-bound bind-A bind-B tool-status tool-id-ctrl tool-id-ctrl-json tool-id-ns \
		tool-id-ns-json tool-id-ns-inactive tool-usage-exit2 \
		bring-up bring-up identify identify shutdown shutdown \
		"${ns[@]/#/ns1-}" "${ns[@]/#/ns1-}" "${ns[@]/#/ns2-}" \
		tool-smart-log tool-error-log msg-group-busy unbind-refused-busy msg-memlock \
		unbind-A kernel-readback bind-D msg-group-not-viable bind-E group-viable-after-bind \
		unbind-D tool-list-end bind-F tool-id-ns-md md-ns1-refused md-ns1-write-read-compare \
		md-ns2-refused md-ns2-write-read-compare md-ns2-pi-guard-error md-ns2-pi-apptag-error \
		md-ns2-pi-reftag-error md-ns2-pi-pract md-namespaces md-shutdown

	echo "== host-side checks of the disk images"
	compare_image image-A a.img 1 512
	compare_image image-B-ns1 b1.img 1 4096
	compare_image image-B-ns2 b2.img 2 512
	compare_md_image image-F-ns1-extended f1.img 1 512 8 0
	compare_md_image image-F-ns2-pi f2.img 2 512 8 1
	# the ext2 filesystem pnvme refused to take: consistent, file as the guest wrote it
	local sum host_sum
	sum=$(grep -m1 'VMTEST: fs-md5' "$WORK/serial-main.log" | sed -E 's/.*fs-md5 ([0-9a-f]+).*/\1/')
	if command -v e2fsck >/dev/null && command -v debugfs >/dev/null; then
		if e2fsck -fn "$WORK/c.img" > "$WORK/e2fsck.out" 2>&1; then
			record PASS "image-C-fsck: e2fsck -fn clean"
		else
			record FAIL "image-C-fsck: $(tail -3 "$WORK/e2fsck.out" | tr '\n' ' ')"
		fi
		debugfs -R "dump /data $WORK/c-data" "$WORK/c.img" > /dev/null 2>&1
		host_sum=$(md5sum "$WORK/c-data" 2>/dev/null | cut -d' ' -f1)
		if [ -n "$sum" ] && [ "$sum" = "$host_sum" ]; then
			record PASS "image-C-file: /data md5 $host_sum as written in the guest"
		else
			record FAIL "image-C-file: guest md5 '${sum}' host md5 '${host_sum}'"
		fi
		rm -f "$WORK/c-data"
	else
		echo "== e2fsprogs missing: host check of the ext2 image skipped"
	fi
}

run_recovery() {  # reset, kill -9 and restart, unbind: one controller
	img r.img 32M
	boot recovery intremap=on "intel_iommu=on" \
		$(drive r.img dr) -device nvme,serial=pnvmeR,drive=dr,addr=0x4
	local n rounds=()
	for n in 1 2 3 4 5; do rounds+=(stress-kill-$n restart-$n restart-$n-prior-data); done
	expect_checks recovery tool-setup bind-R ctrl-reset ctrl-reset-live "${rounds[@]}" \
		left-enabled-2 left-enabled-5 unbind-R kernel-readback-R
	compare_image image-R r.img 1 512
}

run_resetloop() {  # development aid: pnvme_ctrl_reset() on QEMU, many times
	img r.img 32M
	boot resetloop intremap=on "intel_iommu=on ${GUEST_ARGS:-}" \
		$(drive r.img dr) -device nvme,serial=pnvmeR,drive=dr,addr=0x4
	local n loops names=()
	loops=$(echo "${GUEST_ARGS:-}" | grep -o 'vmtest.loops=[0-9]*' | cut -d= -f2)
	for ((n = 0; n < ${loops:-10}; n++)); do names+=(ctrl-reset ctrl-reset-live); done
	expect_checks resetloop bind-R "${names[@]}"
}

run_smoke() {   # one controller, one bring-up and whole-drive pass (GUEST_ARGS="vmtest.log=debug ...")
	img a.img 16M
	boot smoke intremap=on "intel_iommu=on ${GUEST_ARGS:-}" \
		$(drive a.img da) -device nvme,serial=pnvmeA,drive=da,addr=0x4
	expect_checks smoke tool-setup bind-A bring-up identify ns1-write-all ns1-read-compare-all shutdown
	compare_image image-A a.img 1 512
}

run_nointremap() {
	img a.img 8M
	boot nointremap intremap=off "intel_iommu=on" \
		$(drive a.img da) -device nvme,serial=pnvmeA,drive=da,addr=0x4
	expect_checks nointremap tool-setup bind-A msg-no-intremap
}

run_iommuoff() {
	img a.img 8M
	boot iommuoff intremap=on "intel_iommu=off" \
		$(drive a.img da) -device nvme,serial=pnvmeA,drive=da,addr=0x4
	expect_checks iommuoff tool-setup msg-no-iommu-group tool-status-iommuoff
}

run_perf() {  # kernel nvme + fio, then pnvme-perf, on one drive in one boot (benchmarks/guest-compare.sh)
	local TIMEOUT=$TIMEOUT
	[ -n "${TIMEOUT_SET:-}" ] || TIMEOUT=900   # 3 rounds x 16 runs x 10 s: ~520 s
	# As ../shared/reference/perf-anchors.md: 1 GiB of random data (kept
	# between runs: reads only), 2 GiB of guest memory, SSE4.2 in the guest
	# CPU (a peer's DPDK needs it).
	if [ "$(stat -c %s "$WORK/perf-random.img" 2>/dev/null)" != 1073741824 ]; then
		head -c 1G /dev/urandom > "$WORK/perf-random.img.tmp" && mv "$WORK/perf-random.img.tmp" "$WORK/perf-random.img" ||
			die "creating $WORK/perf-random.img failed"
	fi
	boot perf intremap=on "intel_iommu=on ${GUEST_ARGS:-}" -m 2G -cpu qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt \
		-drive file="$WORK/perf-random.img",if=none,id=dp,format=raw \
		-device nvme,serial=pnvmeP,drive=dp,addr=0x4,cmb_size_mb=${PERF_CMB_MB:-0}
	expect_checks perf tool-setup perf-poll-queues perf-kernel perf-pnvme
}

run_tcp() {  # pnvme as NVMe/TCP host, kernel target in the guest (tcp-host.sh)
	local names=(tcp-target)
	[ "${TCP_SELFCHECK:-0}" = 1 ] && names+=(tcp-kh-discover tcp-kh-connect tcp-kh-read
		tcp-kh-write tcp-kh-digest tcp-kh-host-allowed tcp-kh-host-refused
		tcp-kh-subsys-refused tcp-kh-cut tcp-kh-idle)
	[ "${TCP_PNVME:-1}" = 1 ] && names+=(tcp-discover tcp-discover-json tcp-id-ctrl tcp-rw
		tcp-rw-digest tcp-rw-null tcp-pattern-write tcp-wrong-subnqn tcp-wrong-hostnqn
		tcp-cut tcp-idle)
	names+=(tcp-teardown)
	boot tcp intremap=on "vmtest.tcp_pnvme=${TCP_PNVME:-1} vmtest.tcp_selfcheck=${TCP_SELFCHECK:-0} ${GUEST_ARGS:-}"
	expect_checks tcp "${names[@]}"
}

run_tcp_perf() {  # pnvme-perf over TCP vs the kernel host, one boot (benchmarks/tcp-compare.sh)
	local TIMEOUT=$TIMEOUT
	[ -n "${TIMEOUT_SET:-}" ] || TIMEOUT=1200
	boot tcp-perf intremap=on "${GUEST_ARGS:-}" -m 2G
	expect_checks tcp-perf tcp-perf
}

run_tgt_perf() {  # pnvme-tgt vs nvmet-tcp, one QEMU drive + null backends, one boot (benchmarks/tgt-compare.sh)
	local TIMEOUT=$TIMEOUT
	[ -n "${TIMEOUT_SET:-}" ] || TIMEOUT=1500
	img tgtperf.img 1G
	boot tgt-perf intremap=on "intel_iommu=on ${GUEST_ARGS:-}" -m 2G \
		$(drive tgtperf.img dt) -device nvme,serial=pnvmeT,drive=dt,addr=0x4
	expect_checks tgt-perf tool-setup tgt-perf
}

run_tcp_target() {  # the kernel target for a host on this machine (tcp-target-dev.sh)
	local hp=${TCP_HOSTFWD:-14420} wait=${TCP_WAIT:-900}
	local TIMEOUT=$TIMEOUT
	[ -n "${TIMEOUT_SET:-}" ] || TIMEOUT=$((wait + 120))
	boot tcp-target intremap=on "vmtest.tcp_wait=$wait ${GUEST_ARGS:-}" \
		-netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$hp-:4420,hostfwd=tcp:127.0.0.1:$((hp + 1))-:5555" \
		-device virtio-net-pci,netdev=n0
	expect_checks tcp-target tcp-target-ready tcp-target-stop
}

run_tgt() {  # pnvme-tgt in the guest, the kernel's nvme-tcp host its client (tgt-host.sh)
	img tgt.img 64M
	boot tgt intremap=on "intel_iommu=on ${GUEST_ARGS:-}" \
		$(drive tgt.img dt) -device nvme,serial=pnvmeT,drive=dt,addr=0x4
	expect_checks tgt tool-setup tgt-bind tgt-start tgt-discover tgt-host-refused tgt-connect \
		tgt-fs-A tgt-fs-B tgt-rw-A tgt-rw-B tgt-keepalive tgt-kill tgt-intact tgt-rewrite tgt-stop
	# the drive as the guest left it: pattern SEED over the first half (written
	# before pnvme-tgt was killed), pattern SEED+2 over the second half
	local image=$WORK/tgt.img size half t0=${EPOCHREALTIME/./}
	size=$(stat -c %s "$image")
	half=$((size / 2))
	{ "$WORK/tcpcheck" pattern "$SEED" "$half"; "$WORK/tcpcheck" pattern $((SEED + 2)) "$half"; } \
		> "$WORK/expect-tgt.img"
	if cmp "$WORK/expect-tgt.img" "$image" > "$WORK/cmp.out" 2>&1; then
		record PASS "image-tgt: tgt.img ($size bytes) = pattern $SEED then pattern $((SEED + 2)), byte for byte ($(elapsed "$t0")s)"
	else
		record FAIL "image-tgt: tgt.img differs from pattern $SEED then pattern $((SEED + 2)): $(head -n 1 "$WORK/cmp.out")"
	fi
	rm -f "$WORK/expect-tgt.img"
}

for sc in "${SCENARIOS[@]}"; do
	case $sc in
	main|recovery|resetloop|smoke|nointremap|iommuoff|perf|tcp|tgt) run_$sc ;;
	tcp-target) run_tcp_target ;;
	tcp-perf) run_tcp_perf ;;
	tgt-perf) run_tgt_perf ;;
	*) die "unknown scenario $sc" ;;
	esac
done

# ---------------------------------------------------------------------------
echo
echo "===================== VM test summary (seed $SEED) ====================="
nfail=0
for r in "${RESULTS[@]}"; do
	case $r in FAIL*) nfail=$((nfail + 1)) ;; esac
done
printf '%s\n' "${RESULTS[@]}" | grep '^FAIL' || true
echo "checks: $(( ${#RESULTS[@]} - nfail )) passed, $nfail failed"
for t in "${TIMINGS[@]}"; do echo "timing: $t"; done
for t in "${NOTES[@]}"; do echo "note: $t"; done
echo "total: $(elapsed)s; logs in $WORK/serial-*.log"
[ "$nfail" = 0 ] && [ ${#RESULTS[@]} -gt 0 ]
