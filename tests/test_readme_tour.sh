#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# The README's "API tour" is examples/tour.c, word for word, and it works:
# on the default emulated drive, on a namespace of 4 blocks, and on 8 blocks
# with a queue of depth 3 (CAP.MQES 3), where the writes find the queue full
# (-EAGAIN) and must poll and retry.
#
# usage: test_readme_tour.sh README.md examples/tour.c TOUR_BINARY
set -eu

readme=$1
src=$2
bin=$3
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

# The first ```c block after the "## API tour" heading.
awk '/^## API tour/ { s = 1 } s == 1 && /^```c$/ { s = 2; next } s == 2 && /^```$/ { exit }
     s == 2 { print }' "$readme" >"$tmp"
# The README shows the program without its two-line file header.
if ! tail -n +3 "$src" | diff -u - "$tmp"; then
	echo "FAIL: the README's API tour and examples/tour.c differ (keep them the same)" >&2
	exit 1
fi

"$bin"
"$bin" "emu:size=16K,lba=4096"
out=$("$bin" "emu:size=4K,lba=512,mqes=3")
echo "$out"
case $out in
*"8 blocks written; block 7 reads back as written"*) ;;
*) echo "FAIL: the tour did not write 8 blocks through a queue of depth 3" >&2; exit 1 ;;
esac
echo "readme tour: matches examples/tour.c and runs on tiny namespaces"
