#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# guest-compare.sh - pnvme-perf against the kernel nvme driver (fio), the
# minimal polled loop and fio on the pnvme engine, in one QEMU guest boot, on
# one emulated NVMe drive (BENCHMARKS.md section 3).
#
#   benchmarks/guest-compare.sh [--runs N] [--runtime S] [--ramp S]
#                               [--order forward|reverse] [--kconfigs A,B]
#                               [--pconfigs A,B] [--qds 1,32] [--cmb MB]
#                               [--build DIR] [--workdir DIR] [--no-build]
#   SPDK_PERF=/path/to/spdk_nvme_perf benchmarks/guest-compare.sh ...
#
# Builds DIR (default build/) with cmake, then boots the `perf` scenario of
# tests/vm/run-vm-tests.sh as ../shared/reference/perf-anchors.md measures:
# TCG, q35 + intel-iommu, 2 vCPUs (qemu64 + SSE4.2), 2 GiB RAM, one QEMU nvme
# device on a 1 GiB image of random data (512 B LBAs), every tool pinned to
# guest CPU 0. In the guest, N rounds (default 3) of: fio 4 KiB randread on
# /dev/nvme0n1 (nvme poll_queues=2) for each kernel configuration
# (default iou-hipri-fb = io_uring --hipri --fixedbufs --registerfiles,
# iou-hipri, libaio), then `pnvme bind` and each user-space configuration
# (default pnvme = pnvme-perf's defaults, pnvme-noshadow, pnvme-lazycq,
# pnvme-percmd, minloop = benchmarks/minloop, fio-pnvme = the same fio job on
# the pnvme engine, spdk = $SPDK_PERF when given), then `pnvme unbind`; each
# at depth 1 and 32 for S seconds (default 10). --order reverse runs the
# user-space side first and each list backwards (the second boot of a pair).
# Diagnostic configurations: pnvme-lt / pnvme-noshadow-lt (pnvme-perf on a
# -DPNVME_LATTRACE library: the depth-1 cycle in four steps), minloop-X with
# X letters of minloop's -D -F -T -N flags and "lt" for its -L trace (e.g.
# minloop-DFT, minloop-lt), pnvme-shadow, pnvme-classic, iou, iou-hipri-fb-gtod,
# fio-pnvme-gtod, iou-hipri-fb-cpuclock, fio-pnvme-cpuclock (fio --clocksource=cpu),
# pnvme-cmb (--cmb-sq: needs --cmb MB, a Controller Memory Buffer on the drive).
# Prints the raw summary lines, the table of runs and medians, the traced
# cycles, the ratios, and the host's load. SPDK_PERF: a peer's binary (its
# shared libraries are packed as ldd finds them here; build it for the guest
# CPU, e.g. -march=x86-64-v2). Needs fio on the host: tools/install-deps.sh.
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
ORDER=forward
GARGS=
while [ $# -gt 0 ]; do
	case "$1" in
	--runs)     RUNS=$2; shift 2 ;;
	--runtime)  RUNTIME=$2; shift 2 ;;
	--ramp)     RAMP=$2; shift 2 ;;
	--build)    BUILD=$2; shift 2 ;;
	--workdir)  WORK=$2; shift 2 ;;
	--no-build) DO_BUILD=0; shift ;;
	--order)    ORDER=$2; shift 2 ;;
	--kconfigs) GARGS="$GARGS vmtest.kconfigs=$2"; shift 2 ;;
	--pconfigs) GARGS="$GARGS vmtest.pconfigs=$2"; shift 2 ;;
	--qds)      GARGS="$GARGS vmtest.qds=$2"; shift 2 ;;
	--cmb)      export PERF_CMB_MB=$2; shift 2 ;;
	-h|--help)  sed -n '3,36p' "$0"; exit 0 ;;
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

EXTRA=()
ENGINE=$BUILD/tools/fio/libpnvme-fio.so
if [ -f "$ENGINE" ]; then EXTRA+=(--fio-engine "$ENGINE"); else echo "# no fio engine at $ENGINE: fio-pnvme skipped"; fi
if [ -n "${SPDK_PERF:-}" ]; then EXTRA+=(--spdk-perf "$SPDK_PERF"); echo "# peer: $SPDK_PERF"; fi
GUEST_ARGS="vmtest.runs=$RUNS vmtest.runtime=$RUNTIME vmtest.ramp=$RAMP vmtest.order=$ORDER$GARGS" \
	"$SRC/tests/vm/run-vm-tests.sh" --scenario perf --workdir "$WORK" \
	--pnvme "$BUILD/pnvme" --vmtest "$BUILD/tests/vm/vmtest" --perf "$BUILD/pnvme-perf" "${EXTRA[@]}" \
	--timeout $(( 300 + RUNS * 30 * (RUNTIME + RAMP + 4) )) > "$WORK/harness.log" 2>&1
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
function mean(k, f) { return nx[k, f] ? x[k, f] / nx[k, f] : -1 }
{
	cfg = $1; sub("qd=", "", $2); qd = $2; sub("run=", "", $3); run = $3; sub("iops=", "", $4)
	k = cfg " " qd
	if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
	iops[k, run] = $4 + 0; n[k]++
	for (f = 5; f <= NF; f++) { split($f, kv, "="); if (kv[2] != "") { x[k, kv[1]] += kv[2] + 0; nx[k, kv[1]]++ } }
}
END {
	printf "\n## 4 KiB randread, %d runs each, IOPS\n\n", runs
	printf "| config | QD |"; for (r = 1; r <= runs; r++) printf " run %d |", r
	printf " median | mean lat (us) | doorbells/IO | completions/poll | completions/non-empty poll |\n|---|---:|"
	for (r = 1; r <= runs; r++) printf "---:|"; printf "---:|---:|---:|---:|---:|\n"
	for (i = 1; i <= nk; i++) {
		k = order[i]; split(k, p, " ")
		for (r = 1; r <= runs; r++) v[r] = ((k, r) in iops) ? iops[k, r] : 0
		med[k] = median(v, runs) + 0
		printf "| %s | %s |", p[1], p[2]
		for (r = 1; r <= runs; r++) printf " %.0f |", v[r]
		printf " **%.0f** |", med[k]
		printf (mean(k, "lat_us") >= 0 ? " %.1f |" : " |"), mean(k, "lat_us")
		if (nx[k, "db_per_io"]) printf " %.3f | %.4f | %.1f |\n", mean(k, "db_per_io"), mean(k, "cpl_per_poll"), mean(k, "cpl_per_busy_poll")
		else printf " | | |\n"
	}
	printf "\n(mean latency: pnvme-perf, minloop and spdk_nvme_perf report it, fio in its own lines above; pnvme-perf counters, mean over the runs: doorbells = SQ + CQ MMIO doorbell writes per I/O; completions per poll call, and per poll call that found at least one)\n"
	printf "\n## Ratios of medians (same boot)\n\n| config | QD | / io_uring --hipri (best) | / minloop | / spdk |\n|---|---:|---:|---:|---:|\n"
	for (qi = 1; qi <= 2; qi++) {
		qd = qi == 1 ? 1 : 32
		hk = ""; mk = "minloop " qd; sk = "spdk " qd
		for (i = 1; i <= nk; i++) {
			k = order[i]; split(k, p, " ")
			if (p[2] == qd && p[1] ~ /^iou-hipri/ && (hk == "" || med[k] > med[hk])) hk = k
		}
		for (i = 1; i <= nk; i++) {
			k = order[i]; split(k, p, " "); if (p[2] != qd || p[1] ~ /^(iou|libaio)/) continue
			printf "| %s | %d | %s | %s | %s |\n", p[1], qd, hk != "" && med[hk] ? sprintf("%.2fx", med[k] / med[hk]) : "-", (mk in med) && med[mk] ? sprintf("%.2fx", med[k] / med[mk]) : "-", (sk in med) && med[sk] ? sprintf("%.2fx", med[k] / med[sk]) : "-"
		}
		if (hk != "") { split(hk, hb, " "); ref[qd] = hb[1] " " med[hk] }
	}
	printf "\n(io_uring --hipri reference: QD1 %s, QD32 %s IOPS)\n\n", ref[1], ref[32]
	for (qi = 1; qi <= 2; qi++) {
		qd = qi == 1 ? 1 : 32; k = "pnvme " qd
		if (!(k in med)) continue
		split(ref[qd], rr, " ")
		goal = qd == 1 ? 3.2 : 6
		line = sprintf("QD%d goal: pnvme-perf (defaults) %.0f IOPS = %.2fx io_uring --hipri (goal >= %gx: %s)", qd, med[k], rr[2] ? med[k] / rr[2] : 0, goal, rr[2] && med[k] / rr[2] >= goal ? "met" : "missed")
		if (qd == 1 && ("minloop 1" in med) && med["minloop 1"]) line = line sprintf("; %.2fx minloop (goal >= 1.0x: %s)", med[k] / med["minloop 1"], med[k] >= med["minloop 1"] ? "met" : "missed")
		print line
	}
}'

# the traced depth-1 cycles: means over the runs of each interval
if grep -q 'PERF: lt ' "$LOG"; then
	echo
	echo "## Depth-1 cycle, traced (us, mean over the runs; src/pcie/lattrace.h, minloop -L)"
	echo
	grep -h 'PERF: lt ' "$LOG" | sed -E 's/^.*PERF: lt //' | awk '
	{
		k = $1 " " $2; if (!(k in seen)) { seen[k] = 1; order[++nk] = k }; n[k]++
		for (f = 4; f <= NF; f++) { split($f, kv, "="); if (!((kv[1]) in col)) { col[kv[1]] = ++nc; name[nc] = kv[1] }; v[k, kv[1]] += kv[2] }
	}
	END {
		printf "| config | QD |"; for (c = 1; c <= nc; c++) printf " %s |", name[c]; printf "\n|---|---:|"
		for (c = 1; c <= nc; c++) printf "---:|"; printf "\n"
		for (i = 1; i <= nk; i++) {
			k = order[i]; split(k, p, " "); sub("qd=", "", p[2]); printf "| %s | %s |", p[1], p[2]
			for (c = 1; c <= nc; c++) printf " %.2f |", v[k, name[c]] / n[k]
			printf "\n"
		}
	}'
fi
echo
echo "# host load after: $(uptime)"
echo "# total $(( $(date +%s) - T0 )) s; harness exit $HRC; logs: $WORK/harness.log, $LOG"
[ $HRC = 0 ] || { echo "guest-compare: the perf scenario failed (exit $HRC), see $WORK/harness.log" >&2; exit 1; }
