#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# benchmarks/cmb-sq.sh [PNVME_PERF] - submission queues in host memory vs in the
# Controller Memory Buffer (pnvme-perf --cmb-sq, PNVME_QPAIR_CMB_SQ) on an
# emulated drive with a 16 MiB CMB: 4 KiB randread at depth 1 and 32, three
# A/B pairs each, one line per run (IOPS, average latency in us, doorbells per
# I/O, load average). BENCHMARKS.md section 2.1 has the numbers and what they mean.
set -u
perf=${1:-$(dirname "$0")/../build/pnvme-perf}
for q in 1 32; do
	for rep in 1 2 3; do
		for mode in host cmb; do
			extra=()
			[ $mode = cmb ] && extra=(--cmb-sq)
			res=$("$perf" -d emu:size=1G,cmb=16 -c 0 -w randread -t 3 -a 1 -q $q -o 4096 \
				"${extra[@]}" --json 2>&1 | python3 -c 'import json,sys
t = json.load(sys.stdin)["total"]
print("%.0f %.2f %.3f" % (t["iops"], t["latency_us"]["avg"], t["counters"]["doorbells_per_io"]))' \
				2>/dev/null || echo "failed")
			echo "q=$q rep=$rep $mode $res load=$(cut -d' ' -f1-3 /proc/loadavg)"
		done
	done
done
