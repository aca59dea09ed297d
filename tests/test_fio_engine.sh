#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# The fio engine (tools/fio/pnvme_fio.c) run by the fio binary on emulated
# controllers: write + verify jobs (4k, a bssplit whose 256k I/Os exceed the
# emulator's 128k MDTS and are split, iodepth_batch, a queue too small for
# iodepth (queue-full answered "busy"), two jobs sharing one
# controller, 4k LBAs with shadow doorbells and lazy CQ doorbells), read,
# trim and flush jobs, data that outlives its job (a stonewalled read-verify
# job), and the failures: verify on a fresh controller must fail, and a bad
# filename, thread=0 or io_submit_mode=offload must give a readable message
# and a non-zero exit.
# fio's JSON output is checked: "error": 0 and io_bytes > 0 for every job.
#
# usage: test_fio_engine.sh FIO ENGINE_SO WORKDIR [TCP_PEER_EXEC]
# (TCP_PEER_EXEC, tests/tcp_peer_exec.c: the NVMe/TCP case runs fio against a fake target)
set -eu

fio=$1
so=$2
work=$3
peer_exec=${4:-}
rm -rf "$work"
mkdir -p "$work"
cd "$work" # fio leaves its verify state files in the working directory

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# check_json FILE WANT_ERROR: every job's error is 0 (WANT_ERROR=0) or some
# job's is not (1); with 0, every job moved data.
check_json() {
	python3 - "$1" "$2" <<'EOF'
import json, sys
path, want_error = sys.argv[1], sys.argv[2] == "1"
text = open(path).read()
doc = json.loads(text[text.find("{"):])
bad = False
for job in doc["jobs"]:
    moved = sum(job[d]["io_bytes"] for d in ("read", "write", "trim"))
    print("  job %-22s error %-3d read %10d write %10d trim %10d" % (
        job["jobname"], job["error"], job["read"]["io_bytes"],
        job["write"]["io_bytes"], job["trim"]["io_bytes"]))
    if job["error"] != 0 or moved == 0:
        bad = True
if bad != want_error:
    print("  expected %s" % ("a job to fail" if want_error else "every job: error 0, io_bytes > 0"))
    sys.exit(1)
EOF
}

# run_ok NAME: fio runs $work/NAME.fio, exits 0, and every job passes.
run_ok() {
	echo "== $1"
	if ! "$fio" --output-format=json --output="$work/$1.json" "$work/$1.fio" \
		>"$work/$1.log" 2>&1; then
		cat "$work/$1.log" "$work/$1.json" >&2 || true
		fail "$1: fio exited non-zero"
	fi
	check_json "$work/$1.json" 0 || { cat "$work/$1.log" >&2; fail "$1: a job failed"; }
}

# Writes then reads back and checks (do_verify=1). Jobs run at once on one
# controller (one queue pair each) on disjoint ranges; the last section's two
# jobs are on a second controller with 4 KiB LBAs. (filename is per section:
# fio adds a section's filename to the global one's.)
cat >"$work/write_verify.fio" <<EOF
[global]
ioengine=external:$so
thread=1
verify=crc32c
do_verify=1
verify_fatal=1
size=8M

[randwrite-4k]
filename=emu\:size=64M
rw=randwrite
bs=4k
iodepth=16
offset=0

[randwrite-bssplit]
filename=emu\:size=64M
rw=randwrite
bssplit=4k/40:16k/30:64k/20:256k/10
iodepth=16
offset=8M

[randwrite-batch]
filename=emu\:size=64M
rw=randwrite
bs=8k
iodepth=32
iodepth_batch_submit=8
iodepth_batch_complete_min=4
iodepth_batch_complete_max=16
offset=16M

[busy-small-queue]
# 64k I/Os are 8 commands (mdts=1: 8 KiB) on a 15-deep queue: the engine
# answers "busy" until a whole I/O fits
filename=emu\:mqes=15,mdts=1
rw=randwrite
bssplit=4k/50:64k/50
iodepth=64
iodepth_batch=16

[write-lba4k-shadow]
filename=emu\:size=32M,lba=4096
rw=write
bs=16k
iodepth=8
numjobs=2
offset_increment=8M
pnvme_shadow_db=1
pnvme_lazy_cq=1
EOF
run_ok write_verify

# Read, trim and flush; then data written by one job read back and checked by
# a later (stonewalled) job: the controller lives until fio unloads the engine.
cat >"$work/read.fio" <<EOF
[global]
ioengine=external:$so
thread=1
filename=emu\:size=64M,lba=4096,mdts=3
size=8M

[randread-4k]
rw=randread
bs=4k
iodepth=32
iodepth_batch_submit=4

[read-1m]
rw=read
bs=1m
iodepth=4
offset=8M

[randtrim]
rw=randtrim
bs=64k
iodepth=8
offset=16M

[write-fsync]
rw=write
bs=32k
iodepth=4
fsync=4
offset=24M

[write-pattern]
stonewall
rw=write
bs=64k
iodepth=8
offset=32M
verify=pattern
verify_pattern=0x5aa5c33c
do_verify=0

[read-pattern-later]
stonewall
rw=read
bs=64k
iodepth=8
offset=32M
verify=pattern
verify_pattern=0x5aa5c33c
verify_fatal=1
EOF
run_ok read

# The same read-verify on a fresh controller (zeroes) must fail: the check
# above really compared data.
echo "== verify on a fresh controller fails"
cat >"$work/verify_fresh.fio" <<EOF
[read-pattern-fresh]
ioengine=external:$so
thread=1
filename=emu\:size=64M,sn=fresh
rw=read
bs=64k
size=8M
verify=pattern
verify_pattern=0x5aa5c33c
verify_fatal=1
EOF
if "$fio" --output-format=json --output="$work/verify_fresh.json" "$work/verify_fresh.fio" \
	>"$work/verify_fresh.log" 2>&1; then
	fail "verify on a fresh controller: fio exited 0"
fi
check_json "$work/verify_fresh.json" 1 || fail "verify on a fresh controller: no job failed"

# expect_fail NAME PATTERN ARGS...: fio exits non-zero and says PATTERN.
expect_fail() {
	name=$1
	pattern=$2
	shift 2
	echo "== $name"
	if "$fio" --name="$name" --ioengine=external:"$so" --rw=read --bs=4k --size=1M "$@" \
		>"$work/$name.log" 2>&1; then
		cat "$work/$name.log" >&2
		fail "$name: fio exited 0"
	fi
	grep -F -- "$pattern" "$work/$name.log" ||
		{ cat "$work/$name.log" >&2; fail "$name: no message '$pattern'"; }
}
expect_fail bad-filename "neither a PCI address" --thread --filename=nosuchdev
expect_fail bad-emu-spec "unknown option" --thread --filename='emu\:colour=blue'
# A PCI address written with dots (SPDK's style) is read as one with colons;
# domain ffff does not exist, so nothing beyond sysfs is touched.
expect_fail pci-dots "no PCI device ffff:ff:1f.7" --thread --filename=ffff.ff.1f.7
expect_fail no-thread "needs thread=1" --filename=emu
expect_fail offload "offloaded submit" --thread --filename=emu --io_submit_mode=offload
expect_fail bad-nsid "no active namespace 7" --thread --filename=emu --pnvme_nsid=7
# NVMe/TCP: filename = the library's tcp: address with its colons escaped
# (fio splits filename lists at ':'); write with verify, then read back.
if [ -n "$peer_exec" ]; then
	echo "== tcp"
	"$peer_exec" --blocks 65536 -- sh -c '
		nqn=$(printf "%s" "$TCP_PEER_SUBNQN" | sed "s/:/\\\\:/g")
		exec "$0" --name=tcp --ioengine=external:"$1" --thread \
			--filename="tcp\\:127.0.0.1\\:$TCP_PEER_PORT/$nqn" --rw=randwrite --bs=4k \
			--size=8m --iodepth=8 --verify=crc32c --do_verify=1 \
			--output-format=json --output="$2"' "$fio" "$so" "$work/tcp.json" \
		>"$work/tcp.log" 2>&1 || { cat "$work/tcp.log" >&2; fail "tcp: fio or the peer failed"; }
	check_json "$work/tcp.json" 0 || fail "tcp: a job failed"
	grep -q "io_writes=2048" "$work/tcp.log" || { cat "$work/tcp.log" >&2; fail "tcp: the target did not see 2048 writes"; }
fi
echo "fio engine test passed"
