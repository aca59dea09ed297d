#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Build pnvme (Release) and run pnvme-perf on the built-in emulated drive.
#   tools/perf-emu.sh [pnvme-perf options]    default: -q 32 -o 4096 -w randread -t 5
# The emulated controller runs on its own thread (the second core).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DPNVME_BUILD_TESTS=OFF >/dev/null
cmake --build build-release -j"${JOBS:-2}" --target pnvme-perf >/dev/null
if [ "$#" -eq 0 ]; then
	set -- -q 32 -o 4096 -w randread -t 5
fi
exec build-release/pnvme-perf -d "${PNVME_PERF_DEV:-emu:size=1G}" "$@"
