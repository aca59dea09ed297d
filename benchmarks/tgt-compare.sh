#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# tgt-compare.sh - pnvme's NVMe/TCP target (pnvme-tgt) against the Linux
# kernel's target (nvmet-tcp), in one QEMU guest boot, with one host: the
# kernel's nvme-tcp driven by fio (BENCHMARKS.md, "pnvme-tgt vs the kernel
# target").
#
#   benchmarks/tgt-compare.sh [--runs N] [--runtime S] [--order forward|reverse]
#                             [--build DIR] [--workdir DIR] [--no-build]
#                             [--alt-tgt PATH]
#
# Builds pnvme, pnvme-tgt and pnvme-perf in DIR (default build/) with cmake,
# then boots the `tgt-perf` scenario of tests/vm/run-vm-tests.sh (TCG, q35, 2
# vCPUs, 2 GiB RAM, intel-iommu, one 1 GiB QEMU NVMe drive at 00:04.0; guest
# script tests/vm/tgt-perf.sh). Two backends per target: the QEMU drive (the
# kernel nvme driver under nvmet; the same drive bound to vfio-pci under
# pnvme-tgt, switched in every round) and a null one (1 GiB memory-backed
# null_blk under nvmet; the thread-less null device null:size=1G under
# pnvme-tgt, TGT_GUEST_ARGS=vmtest.tgt_null=emu for the emulated namespace
# emu:size=1G of earlier boots). N rounds (default 3) of
# 4 KiB random reads at depth 1 and 32 for S seconds (default 10) each, fio
# io_uring --hipri on the polled queue (nr_poll_queues=1) and fio libaio,
# fio pinned to vCPU 0 and pnvme-tgt's poller to vCPU 1; then the null backend
# once unpinned. --order reverse: pnvme-tgt first in each round, libaio before
# io_uring. Prints the raw result lines, a table of runs and medians with CPU
# per I/O, and nvmet / pnvme-tgt ratios. Keeps the serial log and the report
# in benchmarks/tgt-compare/ (named by date and order). Needs fio on the host
# (copied into the guest with its libraries): tools/install-deps.sh --vm --bench.
# --alt-tgt PATH: a second pnvme-tgt binary (another build), measured right
# after the first in every round of the same boot (rows pnvme-tgt-alt/...), and
# a table of the two builds' ratios: an A/B without the 2x swings between boots.
# Exit status: 0 done, 1 a run failed, 2 the harness could not run.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
RUNS=3
RUNTIME=10
ORDER=forward
BUILD=$SRC/build
WORK=
DO_BUILD=1
ALT_TGT=
while [ $# -gt 0 ]; do
	case "$1" in
	--runs)     RUNS=$2; shift 2 ;;
	--runtime)  RUNTIME=$2; shift 2 ;;
	--order)    ORDER=$2; shift 2 ;;
	--build)    BUILD=$2; shift 2 ;;
	--workdir)  WORK=$2; shift 2 ;;
	--no-build) DO_BUILD=0; shift ;;
	--alt-tgt)  ALT_TGT=$2; shift 2 ;;
	-h|--help)  sed -n '3,33p' "$0"; exit 0 ;;
	*) echo "tgt-compare: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
case $ORDER in forward|reverse) ;; *) echo "tgt-compare: --order forward|reverse" >&2; exit 2 ;; esac
WORK=${WORK:-$BUILD/vm-tgt-perf}
OUTDIR=$HERE/tgt-compare
STAMP=$(date +%Y%m%d-%H%M%S)-$ORDER
T0=$(date +%s)

echo "# host: $(uname -r), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "# host load before: $(uptime)"
if [ $DO_BUILD = 1 ]; then
	{ [ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$SRC" -B "$BUILD" -DPNVME_VM_TESTS=OFF; } \
		> "$BUILD/tgt-compare-build.log" 2>&1 &&
	cmake --build "$BUILD" -j2 --target pnvme_prog pnvme-tgt pnvme-perf >> "$BUILD/tgt-compare-build.log" 2>&1 ||
		{ tail -20 "$BUILD/tgt-compare-build.log"; echo "tgt-compare: build failed" >&2; exit 2; }
fi
for b in pnvme pnvme-tgt pnvme-perf; do
	[ -x "$BUILD/$b" ] || { echo "tgt-compare: $BUILD/$b missing" >&2; exit 2; }
done
echo "# pnvme build: $BUILD ($(grep -m1 '^CMAKE_BUILD_TYPE:' "$BUILD/CMakeCache.txt" 2>/dev/null | cut -d= -f2)), source $(git -C "$SRC" describe --always --dirty 2>/dev/null)"
command -v fio >/dev/null || { echo "tgt-compare: fio not found (tools/install-deps.sh --bench)" >&2; exit 2; }
echo "# fio: $(fio --version) (the host's Debian binary, copied into the guest)"
echo "# runs $RUNS x $RUNTIME s, order $ORDER"

mkdir -p "$WORK" "$OUTDIR"
(while sleep 30; do echo "# host load at +$(( $(date +%s) - T0 )) s: $(cut -d' ' -f1-3 /proc/loadavg)"; done) \
	> "$WORK/hostload.log" 2>&1 &
LOADMON=$!
trap 'kill $LOADMON 2>/dev/null' EXIT

VMTEST_ARG=; [ -x "$BUILD/tests/vm/vmtest" ] && VMTEST_ARG="--vmtest $BUILD/tests/vm/vmtest"
ALT_ARGS=()
if [ -n "$ALT_TGT" ]; then
	[ -x "$ALT_TGT" ] || { echo "tgt-compare: --alt-tgt $ALT_TGT: not an executable" >&2; exit 2; }
	ALT_ARGS=(--tgt-alt "$ALT_TGT")
	TGT_GUEST_ARGS="${TGT_GUEST_ARGS:-} vmtest.tgt_alt=1"
	echo "# alt pnvme-tgt: $ALT_TGT (rows pnvme-tgt-alt/...)"
fi
# per round: 2 targets x 2 backends x 2 engines x 2 depths (+ connects, binds);
# then the unpinned null pass (8 runs)
GUEST_ARGS="vmtest.runs=$RUNS vmtest.runtime=$RUNTIME vmtest.order=$ORDER ${TGT_GUEST_ARGS:-}" \
	"$SRC/tests/vm/run-vm-tests.sh" --scenario tgt-perf --workdir "$WORK" \
	--pnvme "$BUILD/pnvme" --perf "$BUILD/pnvme-perf" --tgt "$BUILD/pnvme-tgt" "${ALT_ARGS[@]}" $VMTEST_ARG \
	--timeout $(( 500 + (RUNS * (${ALT_TGT:+8 +} 16) + 12) * (RUNTIME + 8) )) > "$WORK/harness.log" 2>&1
HRC=$?
kill $LOADMON 2>/dev/null
LOG=$WORK/serial-tgt-perf.log
cp "$LOG" "$OUTDIR/$STAMP.serial.log" 2>/dev/null

{
echo "# tgt-compare $STAMP: runs $RUNS x $RUNTIME s, order $ORDER, source $(git -C "$SRC" describe --always --dirty 2>/dev/null)"
echo "# QEMU: $(grep -m1 '== boot tgt-perf' "$LOG" | sed -E 's/^== boot tgt-perf \(attempt [0-9]+\): //')"
grep -E '^note:|^timing:|^checks:|^FAIL' "$WORK/harness.log" | sed 's/^/# /'
echo
echo "## raw output (guest serial console, $OUTDIR/$STAMP.serial.log)"
grep -E 'PERF: |    (out|time|tgt|err)\| |VMTEST: tgt-perf (PASS|FAIL)' "$LOG" |
	grep -v 'PERF: result' | sed -E 's/^\[ *[0-9.]+\] //'
echo
grep -h 'PERF: result ' "$LOG" | sed -E 's/^.*PERF: //'
echo
cat "$WORK/hostload.log"

grep -h 'PERF: result ' "$LOG" | sed -E 's/^.*PERF: result //' | awk -v runs="$RUNS" -v rt="$RUNTIME" '
function median(a, n,   i, j, t, b) {
	if (n == 0) return -1
	for (i = 1; i <= n; i++) b[i] = a[i]
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
	return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2
}
{
	cfg = $1; sub("qd=", "", $2); qd = $2; sub("run=", "", $3); run = $3
	k = cfg " " qd
	if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
	for (f = 4; f <= NF; f++) { split($f, kv, "="); v[k, kv[1], run] = kv[2] + 0 }
}
END {
	printf "\n## 4 KiB randread, kernel nvme-tcp host + fio, %d runs x %d s: every run\n\n", runs, rt
	printf "| target/backend/engine | QD |"; for (r = 1; r <= runs; r++) printf " run %d |", r
	printf " median IOPS | fio us/IO | guest us/IO | guest-fio us/IO | pnvme-tgt proc us/IO | busy vCPUs |\n|---|---:|"
	for (r = 1; r <= runs; r++) printf "---:|"; printf "---:|---:|---:|---:|---:|---:|\n"
	for (i = 1; i <= nk; i++) {
		k = order[i]; split(k, p, " ")
		n = 0; printf "| %s | %s |", p[1], p[2]
		for (r = 1; r <= runs; r++) {
			if (!((k, "iops", r) in v)) { printf " - |"; continue }
			printf " %.0f |", v[k, "iops", r]
			n++; a[n] = v[k, "iops", r]; fu[n] = v[k, "fio_us_per_io", r]; g[n] = v[k, "guest_us_per_io", r]
			o[n] = v[k, "other_us_per_io", r]; tu[n] = v[k, "tgt_us_per_io", r]; b[n] = v[k, "busy_cpus", r]
		}
		med[k] = median(a, n); oth[k] = median(o, n); tpu[k] = median(tu, n)
		printf " **%.0f** | %.1f | %.1f | %.1f | %s | %.2f |\n", med[k], median(fu, n), median(g, n), oth[k],
			tpu[k] < 0 ? "-" : sprintf("%.1f", tpu[k]), median(b, n)
	}
	printf "\nfio: user+sys time of fio per I/O; guest: busy time of both vCPUs (/proc/stat) per I/O; guest-fio: everything but fio (target, kernel host kworkers/softirqs, drive driver) per I/O; pnvme-tgt proc: the pnvme-tgt process (its poller; with vmtest.tgt_null=emu also the emulator thread) per I/O; medians over the runs\n"
	printf "\n## pnvme-tgt vs nvmet (medians)\n\n"
	printf "| backend | engine | QD | nvmet IOPS | pnvme-tgt IOPS | ratio | nvmet guest-fio us/IO | pnvme-tgt guest-fio us/IO | pnvme-tgt proc us/IO |\n"
	printf "|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
	for (pi = 1; pi <= 2; pi++) for (bi = 1; bi <= 2; bi++) for (ei = 1; ei <= 2; ei++) for (qi = 1; qi <= 2; qi++) {
		sfx = pi == 2 ? "-unpinned" : ""
		be = bi == 1 ? "drive" : "null"; en = ei == 1 ? "iou-hipri" : "libaio"; qd = qi == 1 ? 1 : 32
		kn = "nvmet" sfx "/" be "/" en " " qd; kp = "pnvme-tgt" sfx "/" be "/" en " " qd
		if (!(kn in med) && !(kp in med)) continue
		mn = (kn in med) ? med[kn] : -1; mp = (kp in med) ? med[kp] : -1
		printf "| %s%s | %s | %d | %s | %s | %s | %s | %s | %s |\n", be, sfx ? " (unpinned)" : "", en, qd,
			(mn < 0) ? "-" : sprintf("%.0f", mn), (mp < 0) ? "-" : sprintf("%.0f", mp),
			(mn > 0 && mp >= 0) ? sprintf("**%.2fx**", mp / mn) : "-",
			(kn in oth) ? sprintf("%.1f", oth[kn]) : "-", (kp in oth) ? sprintf("%.1f", oth[kp]) : "-",
			((kp in tpu) && tpu[kp] >= 0) ? sprintf("%.1f", tpu[kp]) : "-"
	}
	hdr = 0
	for (bi = 1; bi <= 2; bi++) for (ei = 1; ei <= 2; ei++) for (qi = 1; qi <= 2; qi++) {
		be = bi == 1 ? "drive" : "null"; en = ei == 1 ? "iou-hipri" : "libaio"; qd = qi == 1 ? 1 : 32
		kn = "nvmet/" be "/" en " " qd; kp = "pnvme-tgt/" be "/" en " " qd; ka = "pnvme-tgt-alt/" be "/" en " " qd
		if (!(ka in med) || !(kp in med)) continue
		if (!hdr++) {
			printf "\n## pnvme-tgt (this build) vs pnvme-tgt-alt (--alt-tgt), same rounds (medians)\n\n"
			printf "| backend | engine | QD | nvmet IOPS | alt IOPS | this IOPS | this / alt | alt / nvmet | this / nvmet | alt proc us/IO | this proc us/IO |\n"
			printf "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
		}
		mn = (kn in med) ? med[kn] : -1
		printf "| %s | %s | %d | %s | %.0f | %.0f | **%.2fx** | %s | %s | %.1f | %.1f |\n", be, en, qd,
			(mn > 0) ? sprintf("%.0f", mn) : "-", med[ka], med[kp], (med[ka] > 0) ? med[kp] / med[ka] : 0,
			(mn > 0) ? sprintf("%.2fx", med[ka] / mn) : "-", (mn > 0) ? sprintf("%.2fx", med[kp] / mn) : "-",
			tpu[ka], tpu[kp]
	}
}'
echo
echo "# host load after: $(uptime)"
echo "# total $(( $(date +%s) - T0 )) s; harness exit $HRC; logs: $WORK/harness.log, $OUTDIR/$STAMP.serial.log"
} | tee "$OUTDIR/$STAMP.md"
[ $HRC = 0 ] || { echo "tgt-compare: the tgt-perf scenario failed (exit $HRC), see $WORK/harness.log" >&2; exit 1; }
