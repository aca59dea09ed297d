#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# The README's install line on a machine without cmocka: configure (tests ON
# by default) must warn and turn the tests off instead of failing, then build
# and install must succeed. cmocka is hidden by pointing pkg-config at an
# empty directory (which hides libpci too: the build without it is covered
# on the way).
#
# usage: no-cmocka.sh SOURCE_DIR WORKDIR CC
set -eu

src=$1
work=$2
cc=$3

rm -rf "$work"
mkdir -p "$work/empty-pc"
export PKG_CONFIG_LIBDIR="$work/empty-pc"
export PKG_CONFIG_PATH=
if pkg-config --exists cmocka 2>/dev/null; then
	echo "FAIL: cmocka still visible to pkg-config; the check proves nothing" >&2
	exit 1
fi

echo "== configure (README line, cmocka hidden)"
if ! cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER="$cc" \
	-DPNVME_VM_TESTS=OFF >"$work/configure.log" 2>&1; then
	cat "$work/configure.log"
	echo "FAIL: configure failed without cmocka" >&2
	exit 1
fi
if ! grep -q "tests turned off: they need cmocka" "$work/configure.log"; then
	cat "$work/configure.log"
	echo "FAIL: configure did not say that the tests are off and why" >&2
	exit 1
fi
grep "tests turned off" "$work/configure.log"

echo "== build"
cmake --build "$work/build" -j 2 >"$work/build.log" 2>&1 || {
	tail -n 40 "$work/build.log"
	echo "FAIL: build failed without cmocka" >&2
	exit 1
}
if [ -e "$work/build/test_ctrl" ]; then
	echo "FAIL: unit tests were built although cmocka is missing" >&2
	exit 1
fi

echo "== install"
cmake --install "$work/build" --prefix "$work/prefix" >/dev/null
test -f "$work/prefix/include/pnvme/pnvme.h"
ls "$work/prefix"/lib*/libpnvme.so >/dev/null
rm -rf "$work"
echo "install without cmocka: configured (tests off), built and installed"
