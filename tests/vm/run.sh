#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# run.sh [BUILD_DIR] - entry point used by tools/run-tests.sh: run the QEMU
# guest tests with the pnvme tool and vmtest from a CMake build directory
# (BUILD_DIR/pnvme, BUILD_DIR/tests/vm/vmtest), or, when that build has no
# vmtest (tests/vm not added to CMake), with copies run-vm-tests.sh builds
# itself. Extra arguments after BUILD_DIR go to run-vm-tests.sh.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-build}
shift || true
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "run.sh: no build directory '$BUILD'" >&2; exit 2; }
args=(--workdir "$BUILD/vm-work")
if [ -x "$BUILD/pnvme" ] && [ -x "$BUILD/tests/vm/vmtest" ]; then
	args+=(--pnvme "$BUILD/pnvme" --vmtest "$BUILD/tests/vm/vmtest")
fi
[ -x "$BUILD/pnvme-tgt" ] && args+=(--tgt "$BUILD/pnvme-tgt")
exec "$HERE/run-vm-tests.sh" "${args[@]}" "$@"
