#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Build pnvme and run every test suite:
#   1. build/       gcc, tests on: unit (cmocka), examples, install check
#   2. build-asan/  clang (gcc if clang is missing), ASan + UBSan: unit tests
#   3. build-tsan/  clang, ThreadSanitizer: unit tests (shorter soak), pnvme-perf with
#                   2 workers x 2 queue pairs on one and on two emulated controllers;
#                   halt_on_error=1, suppressions in tools/tsan.supp
#   4. build-fuzz/  libFuzzer targets, a short run each (tests/fuzz/run.sh)
#      (build/ also runs the QEMU guest tests, ctest label vm: real VFIO in a guest)
# Each suite runs even if an earlier one failed; the script prints every
# ctest summary at the end and exits non-zero if anything failed.
#
# Environment: JOBS (default 2), CC (compiler of build/), SKIP_ASAN=1, SKIP_TSAN=1,
# SKIP_VM=1 (configure build/ without the vm tests), SKIP_FUZZ=1, FUZZ_SECONDS (default 20
# per target).
set -euo pipefail

cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}
status=0
summary=()

# On a fresh Debian machine, as root, install what the build and the VM tests
# need (tools/install-deps.sh holds the one package list).
deps=(--vm)
[ "${SKIP_VM:-0}" = 1 ] && deps=()
tools/install-deps.sh "${deps[@]}"

# run_ctest NAME BUILD_DIR [ctest args...]: run ctest, keep its summary lines.
run_ctest() {
	local name=$1 dir=$2 rc
	shift 2
	set +e
	(cd "$dir" && ctest --output-on-failure -j"$JOBS" "$@") 2>&1 | tee "$dir/ctest.log"
	rc=${PIPESTATUS[0]}
	set -e
	while IFS= read -r line; do
		summary+=("$name: $line")
	done < <(grep -E '% tests passed|^[[:space:]]+[0-9]+ - ' "$dir/ctest.log" || true)
	if [ "$rc" -ne 0 ]; then
		summary+=("$name: ctest exit status $rc")
		status=1
	fi
}

# build NAME BUILD_DIR [cmake args...]
build() {
	local name=$1 dir=$2
	shift 2
	echo "=== $name: configure and build in $dir"
	if ! cmake -S . -B "$dir" -DPNVME_BUILD_TESTS=ON "$@" ||
	   ! cmake --build "$dir" -j"$JOBS"; then
		summary+=("$name: BUILD FAILED")
		status=1
		return 1
	fi
}

# 1. The normal build: every test (unit, example, install).
vm_opt=-DPNVME_VM_TESTS=ON
[ "${SKIP_VM:-0}" = 1 ] && vm_opt=-DPNVME_VM_TESTS=OFF
if build "gcc" build "$vm_opt"; then
	run_ctest "gcc" build
fi

# 2. Sanitizers: the unit suite under ASan + UBSan.
if [ "${SKIP_ASAN:-0}" != 1 ]; then
	asan_cc=()
	if command -v clang >/dev/null 2>&1; then
		asan_cc=(-DCMAKE_C_COMPILER=clang)
	fi
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	if build "asan" build-asan -DPNVME_SANITIZE=ON "${asan_cc[@]}"; then
		run_ctest "asan" build-asan -L unit
	fi
fi

# 3. ThreadSanitizer (clang only): what threads share is locked or atomic. Not here:
# the fio engine (fio is not instrumented), valgrind, the QEMU guest tests and the
# fuzzers (other sanitizers); each is its own stage or build.
if [ "${SKIP_TSAN:-0}" != 1 ]; then
	if command -v clang >/dev/null 2>&1; then
		export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tools/tsan.supp}
		if build "tsan" build-tsan -DPNVME_TSAN=ON -DCMAKE_C_COMPILER=clang -DPNVME_VM_TESTS=OFF \
			-DPNVME_FIO_ENGINE=OFF; then
			run_ctest "tsan" build-tsan -L 'unit|tsan'
		fi
	else
		summary+=("tsan: SKIPPED (no clang)")
	fi
fi

# 4. A short fuzz run (libFuzzer, clang): CQE processing, identify parsing, emu specs.
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
	echo "=== fuzz: tests/fuzz/run.sh ${FUZZ_SECONDS:-20}"
	set +e
	mkdir -p build-fuzz
	tests/fuzz/run.sh "${FUZZ_SECONDS:-20}" 2>&1 | tee build-fuzz/run.log
	rc=${PIPESTATUS[0]}
	set -e
	while IFS= read -r line; do
		summary+=("fuzz: $line")
	done < <(grep -E "^fuzz_" build-fuzz/run.log || true)
	if [ "$rc" -ne 0 ]; then
		summary+=("fuzz: FAILED (exit $rc)")
		status=1
	fi
fi

echo
echo "=== summary"
for line in "${summary[@]}"; do
	echo "$line"
done
if [ "$status" -ne 0 ]; then
	echo "=== FAILED"
else
	echo "=== all passed"
fi
# One closing line over every ctest run: "total: N passed, N failed".
passed=0
failed=0
for line in "${summary[@]}"; do
	if [[ $line =~ tests\ passed,\ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]]; then
		failed=$((failed + BASH_REMATCH[1]))
		passed=$((passed + BASH_REMATCH[2] - BASH_REMATCH[1]))
	fi
done
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
	failed=1 # a build or stage failure outside ctest
fi
echo "total: $passed passed, $failed failed"
exit "$status"
