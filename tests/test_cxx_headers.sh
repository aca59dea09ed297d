#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# The public headers are usable from C++: each one alone and the umbrella
# header compile with g++ -Wall -Wextra -Werror -pedantic (C++11 and the
# compiler's default standard), and tests/cxx/main.cpp links against
# libpnvme.so and runs. A missing C++ compiler is a failure, not a skip:
# tools/install-deps.sh installs one (build-essential).
#
# usage: [CXX=g++] test_cxx_headers.sh INCLUDE_DIR LIBPNVME_SO WORKDIR [EXTRA_FLAGS]
set -eu

inc=$1
lib=$2
work=$3
extra=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
cxx=${CXX:-g++}

if ! command -v "$cxx" >/dev/null 2>&1; then
	echo "FAIL: no C++ compiler '$cxx' (install g++: apt-get install build-essential," >&2
	echo "      or run tools/install-deps.sh); the C++ header check cannot run" >&2
	exit 1
fi
rm -rf "$work"
mkdir -p "$work"
flags="-Wall -Wextra -Werror -pedantic -I$inc"

for h in "$inc"/pnvme/*.h; do
	name=$(basename "$h" .h)
	printf '#include <pnvme/%s.h>\n#include <pnvme/%s.h>\nint main() { return 0; }\n' \
		"$name" "$name" >"$work/only_$name.cpp"
	for std in -std=c++11 ""; do
		# shellcheck disable=SC2086
		if ! "$cxx" $flags $std -c "$work/only_$name.cpp" -o "$work/only_$name.o"; then
			echo "FAIL: <pnvme/$name.h> alone does not compile as C++ ($cxx $std)" >&2
			exit 1
		fi
	done
done

# shellcheck disable=SC2086
"$cxx" $flags $extra -o "$work/cxx_main" "$here/cxx/main.cpp" "$lib" \
	-Wl,-rpath,"$(dirname "$lib")"
"$work/cxx_main"
echo "cxx headers: every header compiles as C++; the C++ program ran against $(basename "$lib")"
