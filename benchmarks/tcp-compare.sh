#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# tcp-compare.sh - pnvme's NVMe/TCP host (pnvme-perf) against the Linux
# kernel's nvme-tcp host (fio), in one QEMU guest boot, against one kernel
# target (nvmet-tcp on 127.0.0.1:4420) (BENCHMARKS.md, "NVMe/TCP host vs the
# kernel host").
#
#   benchmarks/tcp-compare.sh [--runs N] [--runtime S] [--order forward|reverse]
#                             [--build DIR] [--workdir DIR] [--no-build]
#
# Builds DIR (default build/) with cmake, then boots the `tcp-perf` scenario
# of tests/vm/run-vm-tests.sh (TCG, q35, 2 vCPUs, 2 GiB RAM, no drive; guest
# script tests/vm/tcp-perf.sh). Two namespaces: a memory-backed null_blk
# device and a tmpfs file. In the guest, N rounds (default 3) of 4 KiB
# random reads at depth 1 and 32 for S seconds (default 10) each, per
# namespace: pnvme-perf -d tcp:127.0.0.1:4420/NQN; the kernel host connected
# with nr_poll_queues=1 under fio io_uring --hipri (+ fixed buffers and
# registered files: the polled queue) and fio libaio (an interrupt-driven
# queue). --order reverse runs the hosts the other way round in each round.
# Then a short run per host under strace -c for the system calls per I/O.
# Prints the raw result lines, a markdown table of runs and medians with CPU
# time per I/O, and the ratio pnvme / best kernel host per namespace and depth.
# Keeps the serial log and the report in benchmarks/tcp-compare/ (named by
# date and order). Needs fio on the host (copied into the guest with its
# libraries): tools/install-deps.sh --vm --bench.
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
while [ $# -gt 0 ]; do
	case "$1" in
	--runs)     RUNS=$2; shift 2 ;;
	--runtime)  RUNTIME=$2; shift 2 ;;
	--order)    ORDER=$2; shift 2 ;;
	--build)    BUILD=$2; shift 2 ;;
	--workdir)  WORK=$2; shift 2 ;;
	--no-build) DO_BUILD=0; shift ;;
	-h|--help)  sed -n '3,27p' "$0"; exit 0 ;;
	*) echo "tcp-compare: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
case $ORDER in forward|reverse) ;; *) echo "tcp-compare: --order forward|reverse" >&2; exit 2 ;; esac
WORK=${WORK:-$BUILD/vm-tcp-perf}
OUTDIR=$HERE/tcp-compare
STAMP=$(date +%Y%m%d-%H%M%S)-$ORDER
T0=$(date +%s)

echo "# host: $(uname -r), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "# host load before: $(uptime)"
if [ $DO_BUILD = 1 ]; then
	cmake --build "$BUILD" -j2 > "$BUILD/tcp-compare-build.log" 2>&1 ||
		{ tail -20 "$BUILD/tcp-compare-build.log"; echo "tcp-compare: build failed" >&2; exit 2; }
fi
echo "# pnvme build: $BUILD ($(grep -m1 '^CMAKE_BUILD_TYPE:' "$BUILD/CMakeCache.txt" 2>/dev/null | cut -d= -f2)), source $(git -C "$SRC" describe --always --dirty 2>/dev/null)"
command -v fio >/dev/null || { echo "tcp-compare: fio not found (tools/install-deps.sh --bench)" >&2; exit 2; }
echo "# fio: $(fio --version) (the host's Debian binary, copied into the guest); strace: $(command -v strace >/dev/null && strace -V | head -1 || echo none)"
echo "# runs $RUNS x $RUNTIME s, order $ORDER"

mkdir -p "$WORK" "$OUTDIR"
(while sleep 30; do echo "# host load at +$(( $(date +%s) - T0 )) s: $(cut -d' ' -f1-3 /proc/loadavg)"; done) \
	> "$WORK/hostload.log" 2>&1 &
LOADMON=$!
trap 'kill $LOADMON 2>/dev/null' EXIT

# vmtest is not used here; a build without PNVME_VM_TESTS lacks it: the harness builds one
VMTEST_ARG=; [ -x "$BUILD/tests/vm/vmtest" ] && VMTEST_ARG="--vmtest $BUILD/tests/vm/vmtest"
# per round: 2 namespaces x (pnvme + 2 fio) x 2 depths, plus connects; then strace
GUEST_ARGS="vmtest.runs=$RUNS vmtest.runtime=$RUNTIME vmtest.order=$ORDER" \
	"$SRC/tests/vm/run-vm-tests.sh" --scenario tcp-perf --workdir "$WORK" \
	--pnvme "$BUILD/pnvme" --perf "$BUILD/pnvme-perf" $VMTEST_ARG \
	--timeout $(( 500 + (RUNS * 12 + 8) * (RUNTIME + 8) )) > "$WORK/harness.log" 2>&1
HRC=$?
kill $LOADMON 2>/dev/null
LOG=$WORK/serial-tcp-perf.log
cp "$LOG" "$OUTDIR/$STAMP.serial.log" 2>/dev/null

{
echo "# tcp-compare $STAMP: runs $RUNS x $RUNTIME s, order $ORDER, source $(git -C "$SRC" describe --always --dirty 2>/dev/null)"
echo "# QEMU: $(grep -m1 '== boot tcp-perf' "$LOG" | sed -E 's/^== boot tcp-perf \(attempt [0-9]+\): //')"
grep -E '^note:|^timing:|^checks:|^FAIL' "$WORK/harness.log" | sed 's/^/# /'
echo
echo "## raw output (guest serial console, $OUTDIR/$STAMP.serial.log)"
grep -E 'PERF: |    (out|time|strace)\| |VMTEST: tcp-perf (PASS|FAIL)' "$LOG" |
	grep -v 'PERF: result' | sed -E 's/^\[ *[0-9.]+\] //'
echo
cat "$WORK/hostload.log"

grep -h 'PERF: result ' "$LOG" | sed -E 's/^.*PERF: result //' | awk -v runs="$RUNS" -v rt="$RUNTIME" '
function median(a, n,   i, j, t, b) {
	for (i = 1; i <= n; i++) b[i] = a[i]
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (b[j] < b[i]) { t = b[i]; b[i] = b[j]; b[j] = t }
	return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2
}
{
	cfg = $1; sub("qd=", "", $2); qd = $2; sub("run=", "", $3); run = $3
	k = cfg " " qd
	if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
	for (f = 4; f <= NF; f++) { split($f, kv, "="); v[k, kv[1], run] = kv[2] + 0 }
	nr[k]++
}
END {
	printf "\n## 4 KiB randread over NVMe/TCP (loopback, kernel target nvmet-tcp), %d runs x %d s, IOPS\n\n", runs, rt
	printf "| namespace / host | QD |"; for (r = 1; r <= runs; r++) printf " run %d |", r
	printf " median IOPS | host CPU us/IO | guest CPU us/IO | busy vCPUs |\n|---|---:|"
	for (r = 1; r <= runs; r++) printf "---:|"; printf "---:|---:|---:|---:|\n"
	for (i = 1; i <= nk; i++) {
		k = order[i]; split(k, p, " ")
		n = 0; printf "| %s | %s |", p[1], p[2]
		for (r = 1; r <= runs; r++) {
			if (!((k, "iops", r) in v)) { printf " - |"; continue }
			printf " %.0f |", v[k, "iops", r]
			n++; a[n] = v[k, "iops", r]; c[n] = v[k, "cpu_us_per_io", r]; g[n] = v[k, "guest_us_per_io", r]; b[n] = v[k, "busy_cpus", r]
		}
		med[k] = median(a, n)
		printf " **%.0f** | %.1f | %.1f | %.2f |\n", med[k], median(c, n), median(g, n), median(b, n)
	}
	printf "\nhost CPU: user+sys time of the measuring process (pnvme-perf, or fio) per I/O; guest CPU: busy time of all vCPUs (/proc/stat: host, target and everything else) per I/O; busy vCPUs: of 2 (medians over the runs)\n\n"
	# ratios: unpinned pnvme vs the best unpinned kernel host; then the best pinned of each
	for (ns = 1; ns <= 3; ns++) for (qi = 1; qi <= 2; qi++) {
		nsn = ns == 2 ? "file" : "null"; qd = qi == 1 ? 1 : 32; pin = ns == 3
		bk = ""; bp = ""
		for (i = 1; i <= nk; i++) {
			k = order[i]; split(k, p, " "); if (p[2] != qd || index(p[1], nsn "/") != 1) continue
			if ((p[1] ~ /-cpu[0-9]+$/) != pin) continue
			if (p[1] ~ /\/pnvme/) { if (bp == "" || med[k] > med[bp]) bp = k }
			else if (bk == "" || med[k] > med[bk]) bk = k
		}
		if (bk == "" || bp == "" || med[bk] == 0) { if (!pin) printf "%s QD%d: missing results\n", nsn, qd; continue }
		split(bk, kb, " "); split(bp, pb, " ")
		printf "%s QD%-2d %s%s %.0f IOPS, best kernel host %s %.0f IOPS: %.2fx\n", nsn, qd, pin ? "pinned: " : "", pb[1], med[bp], kb[1], med[bk], med[bp] / med[bk]
	}
}'
echo
echo "# host load after: $(uptime)"
echo "# total $(( $(date +%s) - T0 )) s; harness exit $HRC; logs: $WORK/harness.log, $OUTDIR/$STAMP.serial.log"
} | tee "$OUTDIR/$STAMP.md"
[ $HRC = 0 ] || { echo "tcp-compare: the tcp-perf scenario failed (exit $HRC), see $WORK/harness.log" >&2; exit 1; }
