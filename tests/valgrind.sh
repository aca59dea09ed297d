#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# Run the unit test programs of a build under valgrind memcheck; fail on any
# memory error or definite/indirect leak.
#
#   tests/valgrind.sh BUILD_DIR [TEST...]
#
# BUILD_DIR must be a build without sanitizers (ASan and valgrind do not mix).
# With no TEST arguments the default list below runs; test_soak runs for
# PNVME_SOAK_SECONDS (3 unless set). Timing bounds in test_recovery get
# PNVME_TEST_SLACK_MS of slack (5000 unless set): valgrind runs code ~30x
# slower, but the deadlines are wall-clock ones.
# Exit status: 0 all clean, 1 errors (each program's log is kept as
# BUILD_DIR/valgrind/NAME.log), 77 valgrind is not installed (skipped).
set -u

dir=${1:?usage: $0 BUILD_DIR [TEST...]}
shift
if ! command -v valgrind >/dev/null 2>&1; then
	echo "valgrind.sh: valgrind not installed: skipped"
	exit 77
fi
if [ $# -eq 0 ]; then
	set -- test_ctrl test_qpair test_emu test_dma test_log test_status test_recovery test_soak \
		test_tcp_pdu test_api test_tgt test_aer
fi

export PNVME_SOAK_SECONDS="${PNVME_SOAK_SECONDS:-3}"
export PNVME_TEST_SLACK_MS="${PNVME_TEST_SLACK_MS:-5000}"
logs="$dir/valgrind"
mkdir -p "$logs" || exit 1

fail=0
total_start=$(date +%s)
for t in "$@"; do
	prog="$dir/$t"
	if [ ! -x "$prog" ]; then
		echo "valgrind.sh: $prog: no such program"
		fail=1
		continue
	fi
	start=$(date +%s)
	valgrind --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite,indirect \
		--show-leak-kinds=definite,indirect \
		--log-file="$logs/$t.log" "$prog" >"$logs/$t.out" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	if [ $rc -eq 0 ]; then
		echo "valgrind.sh: $t: clean (${secs} s)"
	elif [ $rc -eq 99 ]; then
		echo "valgrind.sh: $t: MEMORY ERRORS OR LEAKS (${secs} s), see $logs/$t.log:"
		grep -E "ERROR SUMMARY|definitely lost|indirectly lost|Invalid|uninitialised" \
			"$logs/$t.log" | head -20
		fail=1
	else
		echo "valgrind.sh: $t: test failed under valgrind, exit $rc (${secs} s), see $logs/$t.out:"
		grep -E "FAILED|ERROR" "$logs/$t.out" | head -20
		fail=1
	fi
done
echo "valgrind.sh: $(( $(date +%s) - total_start )) s in all"
exit $fail
