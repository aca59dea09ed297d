#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# tests/fuzz/run.sh [SECONDS] - build the libFuzzer targets with clang in
# build-fuzz/ (PNVME_FUZZ=ON) and run each for SECONDS (default 20) on its
# seed corpus. New inputs go to build-fuzz/tests/fuzz/work/<target>/corpus,
# crashes to .../artifacts/. Prints executions and crashes per target; exits
# 1 if any target crashed. BUILD_DIR and CC may be overridden; JOBS sets the
# build parallelism.
set -eu

secs=${1:-20}
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$src/build-fuzz}
cc=${CC:-clang}

cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER="$cc" -DPNVME_FUZZ=ON \
	-DPNVME_VM_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target fuzz_emu_spec fuzz_cqe fuzz_identify fuzz_cli_perf fuzz_cli_pnvme \
	fuzz_emu_cmds fuzz_tcp_pdu fuzz_tcp_host fuzz_tgt_cmds \
	>/dev/null

status=0
printf '%-16s %12s %10s %8s\n' target executions exec/s crashes
for t in fuzz_emu_spec fuzz_cqe fuzz_identify fuzz_cli_perf fuzz_cli_pnvme fuzz_emu_cmds fuzz_tcp_pdu \
	fuzz_tcp_host fuzz_tgt_cmds; do
	work=$build/tests/fuzz/work/$t
	mkdir -p "$work/corpus" "$work/artifacts"
	case $t in
	fuzz_emu_spec) maxlen=512 ;;
	fuzz_cqe) maxlen=1024 ;;
	fuzz_emu_cmds) maxlen=4096 ;;
	fuzz_cli_*) maxlen=512 ;; # the parsers print usage messages: -close_fd_mask below
	fuzz_tcp_pdu | fuzz_tcp_host | fuzz_tgt_cmds) maxlen=16384 ;;
	*) maxlen=4200 ;;
	esac
	log=$work/last-run.log
	before=$(find "$work/artifacts" -type f | wc -l)
	rc=0
	extra=
	case $t in fuzz_cli_*) extra=-close_fd_mask=3 ;; esac
	"$build/tests/fuzz/$t" $extra -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 \
		-max_len="$maxlen" -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
		"$work/corpus" "$src/tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	crashes=$(( $(find "$work/artifacts" -type f | wc -l) - before ))
	if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
		crashes=1   # died without an artifact (e.g. out of memory): see the log
	fi
	printf '%-16s %12s %10s %8s\n' "$t" "${runs:-?}" "${speed:-?}" "$crashes"
	if [ "$crashes" -ne 0 ]; then
		status=1
		echo "  $t: see $log and $work/artifacts/" >&2
	fi
done
exit $status
