#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# guest-compare.sh - pnvme-perf against the kernel nvme driver (fio), in one
# QEMU guest boot, on one emulated NVMe drive (BENCHMARKS.md section 3).
#
#   benchmarks/guest-compare.sh [--runs N] [--runtime S] [--ramp S]
#                               [--build DIR] [--workdir DIR] [--no-build]
#
# Builds DIR (default build/) with cmake, then boots the `perf` scenario of
# tests/vm/run-vm-tests.sh: TCG, q35 + intel-iommu, 2 vCPUs, 1 GiB RAM, one
# QEMU nvme device on a 1 GiB raw image (512 B LBAs). In the guest, N rounds
# (default 3) of: fio 4 KiB randread on /dev/nvme0n1 (nvme poll_queues=2;
# io_uring --hipri, + --fixedbufs --registerfiles, + --gtod_reduce=1,
# io_uring without polling, libaio), then `pnvme bind` and pnvme-perf
# (batched doorbells, -N, --shadow-db, --lazy-cq), then `pnvme unbind`; each at depth 1
# and 32 for S seconds (default 10). Prints the raw summary lines, the table
# of runs and medians, the ratios pnvme-perf / best kernel configuration, and
# the host's load before and after. Needs fio on the host (it is copied into
# the guest with its libraries): tools/install-deps.sh --vm --bench.
# Exit status: 0 done, 1 a run failed, 2 the harness could not run.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
RUNS=3
RUNTIME=10
RAMP=0
BUILD=$SRC/build
WORK=
DO_BUILD=1
while [ $# -gt 0 ]; do
	case "$1" in
	--runs)     RUNS=$2; shift 2 ;;
	--runtime)  RUNTIME=$2; shift 2 ;;
	--ramp)     RAMP=$2; shift 2 ;;
	--build)    BUILD=$2; shift 2 ;;
	--workdir)  WORK=$2; shift 2 ;;
	--no-build) DO_BUILD=0; shift ;;
	-h|--help)  sed -n '3,21p' "$0"; exit 0 ;;
	*) echo "guest-compare: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
WORK=${WORK:-$BUILD/vm-perf}
T0=$(date +%s)

echo "# host: $(uname -r), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "# host load before: $(uptime)"
if [ $DO_BUILD = 1 ]; then
	cmake --build "$BUILD" -j2 > "$BUILD/guest-compare-build.log" 2>&1 ||
		{ tail -20 "$BUILD/guest-compare-build.log"; echo "guest-compare: build failed" >&2; exit 2; }
fi
echo "# pnvme build: $BUILD ($(grep -m1 '^CMAKE_BUILD_TYPE:' "$BUILD/CMakeCache.txt" 2>/dev/null | cut -d= -f2)), source $(git -C "$SRC" describe --always --dirty 2>/dev/null)"
command -v fio >/dev/null || { echo "guest-compare: fio not found (tools/install-deps.sh --bench)" >&2; exit 2; }
echo "# fio: $(fio --version) (the host's Debian binary, copied into the guest)"

# the host's load every 30 s while the guest runs
mkdir -p "$WORK"
(while sleep 30; do echo "# host load at +$(( $(date +%s) - T0 )) s: $(cut -d' ' -f1-3 /proc/loadavg)"; done) \
	> "$WORK/hostload.log" 2>&1 &
LOADMON=$!
trap 'kill $LOADMON 2>/dev/null' EXIT

GUEST_ARGS="vmtest.runs=$RUNS vmtest.runtime=$RUNTIME vmtest.ramp=$RAMP" \
	"$SRC/tests/vm/run-vm-tests.sh" --scenario perf --workdir "$WORK" \
	--pnvme "$BUILD/pnvme" --vmtest "$BUILD/tests/vm/vmtest" --perf "$BUILD/pnvme-perf" \
	--timeout $(( 300 + RUNS * 16 * (RUNTIME + RAMP + 3) )) > "$WORK/harness.log" 2>&1
HRC=$?
kill $LOADMON 2>/dev/null
LOG=$WORK/serial-perf.log

echo "# QEMU: $(grep -m1 '== boot perf' "$LOG" | sed -E 's/^== boot perf \(attempt [0-9]+\): //')"
grep -E '^note:|^timing:|^checks:|^FAIL' "$WORK/harness.log" | sed 's/^/# /'
echo
echo "## raw output (guest serial console, $LOG)"
grep -E 'PERF: |    (fio|perf)\| |VMTEST: perf-[a-z-]+ (PASS|FAIL)|dmesg\| .*(tsc|clocksource)' "$LOG" |
	grep -v 'PERF: result' | sed -E 's/^\[ *[0-9.]+\] //'
echo
cat "$WORK/hostload.log"

# table: config, qd, run1..runN, median; medians of the odd/even number of runs
grep -h 'PERF: result ' "$LOG" | sed -E 's/^.*PERF: result //' | awk -v runs="$RUNS" '
function median(a, n,   i, j, t, b) {
	for (i = 1; i <= n; i++) b[i] = a[i]
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
	return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2
}
{
	cfg = $1; sub("qd=", "", $2); qd = $2; sub("run=", "", $3); run = $3; sub("iops=", "", $4)
	k = cfg " " qd
	if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
	iops[k, run] = $4 + 0; n[k]++
	for (f = 5; f <= NF; f++) { split($f, kv, "="); x[k, kv[1]] += kv[2] + 0; nx[k, kv[1]]++ }
}
END {
	printf "\n## 4 KiB randread, %d runs each, IOPS\n\n", runs
	printf "| config | QD |"; for (r = 1; r <= runs; r++) printf " run %d |", r
	printf " median | doorbells/IO | completions/poll | completions/non-empty poll |\n|---|---:|"
	for (r = 1; r <= runs; r++) printf "---:|"; printf "---:|---:|---:|---:|\n"
	for (i = 1; i <= nk; i++) {
		k = order[i]; split(k, p, " "); m = 0
		for (r = 1; r <= runs; r++) v[r] = ((k, r) in iops) ? iops[k, r] : 0
		med[k] = median(v, runs) + 0
		printf "| %s | %s |", p[1], p[2]
		for (r = 1; r <= runs; r++) printf " %.0f |", v[r]
		printf " **%.0f** |", med[k]
		if (nx[k, "db_per_io"]) printf " %.3f | %.4f | %.1f |\n", x[k, "db_per_io"] / nx[k, "db_per_io"], x[k, "cpl_per_poll"] / nx[k, "cpl_per_poll"], x[k, "cpl_per_busy_poll"] / nx[k, "cpl_per_busy_poll"]
		else printf " | | |\n"
	}
	printf "\n(pnvme-perf counters, mean over the runs: doorbells = SQ + CQ MMIO doorbell writes per I/O; completions per poll call, and per poll call that found at least one)\n\n"
	for (qi = 1; qi <= 2; qi++) {
		qd = qi == 1 ? 32 : 1; target = qd == 32 ? 8 : 2.5
		bk = ""; bp = ""
		for (i = 1; i <= nk; i++) {
			k = order[i]; split(k, p, " "); if (p[2] != qd) continue
			if (p[1] ~ /^pnvme/) { if (bp == "" || med[k] > med[bp]) bp = k }
			else { if (bk == "" || med[k] > med[bk]) bk = k }
		}
		if (bk == "" || bp == "" || med[bk] == 0) { printf "QD%d: missing results\n", qd; continue }
		split(bk, kb, " "); split(bp, pb, " ")
		ratio = med[bp] / med[bk]
		verdict = "met"
		if (ratio < target) verdict = sprintf("missed: %.0f%% of the target", 100 * ratio / target)
		printf "QD%-2d best kernel %s %.0f IOPS; best pnvme-perf %s %.0f IOPS: %.2fx (target >= %gx: %s)\n", qd, kb[1], med[bk], pb[1], med[bp], ratio, target, verdict
		k = "pnvme-batched " qd
		if (k in med) printf "     pnvme-perf default (batched doorbells) %.0f IOPS: %.2fx\n", med[k], med[k] / med[bk]
	}
}'
echo
echo "# host load after: $(uptime)"
echo "# total $(( $(date +%s) - T0 )) s; harness exit $HRC; logs: $WORK/harness.log, $LOG"
[ $HRC = 0 ] || { echo "guest-compare: the perf scenario failed (exit $HRC), see $WORK/harness.log" >&2; exit 1; }
