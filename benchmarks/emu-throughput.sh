#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# benchmarks/emu-throughput.sh - pnvme-perf on the built-in emulated drive:
# randread at depth 1, 32, 128 x 4 KiB and 64 KiB, the worker pinned to core 0
# and the emulator's thread moved to core 1, with the per-poll counters.
#
#   T=SECONDS (default 3) WARMUP=SECONDS (default 1) PATTERN=randread
#   DEV=emu:size=1G  BUILD=build-bench (a Release tree; created)
#
# The machine's load (uptime) is printed with every run: on a shared 2-core
# machine the numbers are only as good as the quiet they were taken in.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build-bench}
t=${T:-3}
warm=${WARMUP:-1}
dev=${DEV:-emu:size=1G}
pattern=${PATTERN:-randread}
ncpu=$(nproc)

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPNVME_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"${JOBS:-2}" --target pnvme-perf >/dev/null
perf=$build/pnvme-perf
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $ncpu CPUs, $(uname -r)"
echo "# $perf -d $dev -c 0 -w $pattern -t $t -a $warm -q Q -o SIZE --json (emulator thread on core 1)"
printf '%-5s %-6s %12s %10s %9s %9s %9s %8s %8s %8s %8s %8s %4s  %s\n' depth size IOPS MiB/s \
	avg_us p50_us p99_us SQdb/IO CQdb/IO polls/IO empty% cpl/poll emu load
for q in 1 32 128; do
	for o in 4096 65536; do
		load=$(uptime | sed 's/.*load average: //')
		"$perf" -d "$dev" -c 0 -w "$pattern" -t "$t" -a "$warm" -q "$q" -o "$o" -L --json \
			>"$out/run.json" 2>"$out/err" &
		pid=$!
		# The emulator thread is the process's second task (created by
		# pnvme_ctrl_open before any worker): move it off the worker's core.
		emu_cpu="-"
		if [ "$ncpu" -ge 2 ]; then
			sleep 0.3
			emu_tid=$(ls "/proc/$pid/task" 2>/dev/null | sort -n | sed -n 2p || true)
			if [ -n "$emu_tid" ] && taskset -pc 1 "$emu_tid" >/dev/null 2>&1; then
				emu_cpu=$(taskset -pc "$emu_tid" 2>/dev/null | sed 's/.*: //')
			fi
		fi
		if ! wait "$pid"; then
			cat "$out/err" >&2
			exit 1
		fi
		python3 - "$q" "$o" "$load" "$emu_cpu" "$out/run.json" <<'PY'
import json, sys
q, o, load, emu, path = sys.argv[1:]
t = json.load(open(path))["total"]
c, n = t["counters"], max(t["ios"], 1)
p = t.get("percentiles_us", {})
print(f"{q:<5} {int(o) // 1024:>4}K {t['iops']:>12.0f} {t['mib_s']:>10.1f} "
      f"{t['latency_us']['avg']:>9.2f} {p.get('50', 0):>9.2f} {p.get('99', 0):>9.2f} "
      f"{c['sq_doorbells'] / n:>8.3f} {c['cq_doorbells'] / n:>8.3f} {c['polls'] / n:>8.2f} "
      f"{100.0 * c['empty_polls'] / max(c['polls'], 1):>7.2f}% {c['completions_per_poll']:>8.2f} {emu:>4}  {load}")
PY
	done
done
