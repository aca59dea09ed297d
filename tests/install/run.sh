#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# Install a pnvme build into a scratch prefix, then build and run a consumer
# against it twice: through find_package(pnvme) (shared and static targets)
# and through pkg-config.
#
# usage: run.sh BUILD_DIR CONSUMER_SRC PREFIX LIBDIR CC [EXTRA_CFLAGS]
set -eu

build=$1
src=$2
prefix=$3
libdir=$4
cc=$5
extra=${6:-}

rm -rf "$prefix" "$prefix-consumer"
echo "== cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null

echo "== find_package(pnvme)"
cmake -S "$src" -B "$prefix-consumer" -DCMAKE_PREFIX_PATH="$prefix" \
	-DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$extra" >/dev/null
cmake --build "$prefix-consumer" >/dev/null
"$prefix-consumer/consumer_shared"
"$prefix-consumer/consumer_static"
# The shared one must really use the installed libpnvme.so.0.
ldd "$prefix-consumer/consumer_shared" | grep -qF "$prefix/$libdir/libpnvme.so.0"

echo "== pkg-config pnvme"
PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
export PKG_CONFIG_PATH
# shellcheck disable=SC2046,SC2086
"$cc" $extra -o "$prefix-consumer/consumer_pc" "$src/main.c" $(pkg-config --cflags --libs pnvme)
LD_LIBRARY_PATH="$prefix/$libdir" "$prefix-consumer/consumer_pc"
# shellcheck disable=SC2046,SC2086
"$cc" $extra -o "$prefix-consumer/consumer_pc_static" "$src/main.c" \
	$(pkg-config --static --cflags --libs pnvme | sed 's/-lpnvme /-l:libpnvme.a /')
"$prefix-consumer/consumer_pc_static"
echo "install check passed"
