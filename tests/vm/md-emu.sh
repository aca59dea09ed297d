#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# md-emu.sh VMTEST - `vmtest md` (tests/vm/vmtest_md.c) against the emulated
# controller in every metadata layout it offers: extended and separate
# metadata of 8..64 bytes, PI types 1-3 first or last, 512 and 4096-byte
# blocks. The same checks run in the QEMU guest against QEMU's model; here
# they pin the host side (sizes, MPTR, PRINFO, tags) to the emulator's
# reading of the spec. Exit 0 only if every layout passes every check.
set -u
vmtest=$1
rc=0
for spec in ms=8,ext=1 ms=8,pi=1 ms=8,pi=3 ms=8,ext=1,pi=1 ms=16,ext=1,pi=1 ms=16,pi=2,pil=1 \
	    ms=64,ext=1,lba=4096 ms=32,ext=1,pi=3,pil=1,lba=4096 ms=8,pi=2,lba=4096,mdts=1; do
	out=$("$vmtest" md "emu:size=2M,$spec" --seed 11 2>&1)
	st=$?
	pass=$(echo "$out" | grep -c ' PASS ')
	fail=$(echo "$out" | grep -c ' FAIL ')
	if [ "$st" -ne 0 ] || [ "$fail" -ne 0 ] || [ "$pass" -lt 4 ]; then
		echo "FAIL emu:$spec (exit $st, $pass passed, $fail failed)"
		echo "$out" | sed 's/^/    | /'
		rc=1
	else
		echo "PASS emu:$spec ($pass checks)"
	fi
done
exit $rc
