#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# benchmarks/percmd-cost/run.sh [N] - instructions per I/O of pnvme's submit +
# complete path, counted by callgrind on a stepped emulated controller.
#
#   N           I/Os per configuration (default 20000; the counts are exact, so
#               more only costs time)
#   BUILD       build tree for the library (default build-percmd-$CC-$BUILD_TYPE; created)
#   BUILD_TYPE  CMake build type of that tree (default RelWithDebInfo = -O2 -g,
#               the project's default; Release gets -O3 -g here). Debug info is
#               needed to attribute inlined helpers to their source lines (DWARF 4:
#               valgrind 3.19 cannot read clang 14's DWARF 5).
#   CC          compiler (default gcc)
#
# Prints the per-configuration table (pnvme_read and prepared requests x depth
# 1/32/128 x batched/per-command doorbells) and the breakdown by cost category
# and by source function.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
n=${1:-20000}
type=${BUILD_TYPE:-RelWithDebInfo}
cc=${CC:-gcc}
build=${BUILD:-$root/build-percmd-$(basename "$cc")-$type}
for t in valgrind callgrind_annotate python3 cmake "$cc"; do
	command -v "$t" >/dev/null || { echo "run.sh: $t is needed" >&2; exit 1; }
done
[ -f /usr/include/valgrind/callgrind.h ] || { echo "run.sh: valgrind/callgrind.h is needed (valgrind package)" >&2; exit 1; }

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="$type" -DCMAKE_C_COMPILER="$cc" \
	-DCMAKE_C_FLAGS="-g -gdwarf-4" -DPNVME_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"${JOBS:-2}" --target pnvme_static >/dev/null
libs="-lisal -lpthread"
if pkg-config --exists libpci 2>/dev/null; then libs="$(pkg-config --libs libpci) $libs"; fi
# shellcheck disable=SC2086
"$cc" -std=c11 -O2 -g -gdwarf-4 -Wall -Wextra -Wshadow -Werror -D_GNU_SOURCE -I"$root/include" \
	"$here/percmd.c" "$build/libpnvme.a" $libs -o "$build/percmd"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $cc $("$cc" -dumpversion), library $type, $n I/Os per configuration"
echo "# valgrind --tool=callgrind --collect-atstart=no --toggle-collect=pnvme_read --toggle-collect=pnvme_req_submit --toggle-collect=pnvme_qpair_flush --toggle-collect=pnvme_qpair_poll $build/percmd $n"
if ! valgrind --tool=callgrind --collect-atstart=no \
	--toggle-collect=pnvme_read --toggle-collect=pnvme_req_submit \
	--toggle-collect=pnvme_qpair_flush --toggle-collect=pnvme_qpair_poll \
	--callgrind-out-file="$out/cg.out" "$build/percmd" "$n" >"$out/percmd.log" 2>"$out/valgrind.log" ||
   ! grep -q "Collected" "$out/valgrind.log"; then
	cat "$out/percmd.log" "$out/valgrind.log" >&2
	echo "run.sh: the callgrind run failed" >&2
	exit 1
fi
sed 's/^/# /' "$out/percmd.log"
echo
python3 "$here/breakdown.py" "$root" "$out"/cg.out.*
