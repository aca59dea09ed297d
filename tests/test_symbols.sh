#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# libpnvme.so exports the public API and nothing else:
#  - every defined dynamic symbol is a function declared in include/pnvme/*.h
#    (between PNVME_BEGIN_DECLS and PNVME_END_DECLS, see pnvme/api.h);
#  - every function declared there is exported (none forgotten or misspelt);
#  - the SONAME is the one the ABI policy gives (README, "ABI").
#
# usage: test_symbols.sh LIBPNVME_SO INCLUDE_DIR CC EXPECTED_SONAME
set -eu

lib=$1
inc=$2
cc=$3
want_soname=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# Exported: defined dynamic symbols, less what the linker itself defines.
nm -D --defined-only "$lib" | awk 'NF == 3 { print $3 }' |
	grep -vxE '_init|_fini|_edata|_end|__bss_start' | sort -u >"$tmp/exported"
if [ ! -s "$tmp/exported" ]; then
	echo "FAIL: nm -D found no symbols in $lib"
	exit 1
fi

# Declared: function names inside the PNVME_BEGIN_DECLS regions of the public
# headers, static inline ones left out. The preprocessor strips the comments;
# pnvme/api.h is skipped so that the region markers survive as plain words.
for h in "$inc"/*.h; do
	"$cc" -E -P -x c -I"$inc/.." -DPNVME_API_H -DPNVME_BEGIN_DECLS=PNVME_DECLS_BEGIN_MARK \
		-DPNVME_END_DECLS=PNVME_DECLS_END_MARK "$h"
done | sed 's/PNVME_DECLS_BEGIN_MARK/\nPNVME_DECLS_BEGIN_MARK\n/g; s/PNVME_DECLS_END_MARK/\nPNVME_DECLS_END_MARK\n/g' |
	awk '/^PNVME_DECLS_BEGIN_MARK$/ { on = 1; next } /^PNVME_DECLS_END_MARK$/ { on = 0 } on' |
	tr '\n' ' ' | sed 's/[;{}]/&\n/g' | grep -v '^[[:space:]]*static[[:space:]]' |
	grep -oE '\b[A-Za-z_][A-Za-z0-9_]*[[:space:]]*\(' | tr -d '( \t' | sort -u >"$tmp/declared"
grep '^pnvme_' "$tmp/declared" >"$tmp/declared_fn" || true

extra=$(comm -23 "$tmp/exported" "$tmp/declared")
if [ -n "$extra" ]; then
	echo "FAIL: libpnvme.so exports names no public header declares (make them static,"
	echo "or keep them hidden: the library is built with -fvisibility=hidden):"
	echo "$extra" | sed 's/^/  /'
	fail=1
fi
missing=$(comm -13 "$tmp/exported" "$tmp/declared_fn")
if [ -n "$missing" ]; then
	echo "FAIL: functions the public headers declare but libpnvme.so does not export"
	echo "(not implemented, or defined in a file that does not include its header):"
	echo "$missing" | sed 's/^/  /'
	fail=1
fi

soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
if [ "$soname" != "$want_soname" ]; then
	echo "FAIL: SONAME is '$soname', the ABI policy says '$want_soname'"
	fail=1
fi

[ "$fail" -eq 0 ] || exit 1
echo "symbols: $(wc -l <"$tmp/exported") exported, all declared; SONAME $soname"
