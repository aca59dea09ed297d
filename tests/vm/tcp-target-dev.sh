#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# tcp-target-dev.sh - a Linux kernel NVMe/TCP target (nvmet-tcp in a QEMU
# guest) reachable from this machine, for developing the pnvme TCP host here
# (debugger, sanitizers) against the real thing. A development aid, not a test.
#
#   tests/vm/tcp-target-dev.sh [start] [options]   boot it; prints a READY line
#   tests/vm/tcp-target-dev.sh stop [-p PORT]      stop it (the guest tears the
#                                                  target down and powers off)
# Options:
#   -p, --port PORT     this machine's 127.0.0.1:PORT goes to the guest's 4420
#                       (default 14420); PORT+1 goes to the guest's stop port
#   -s, --seconds N     the target stays up at most N seconds (default 900)
#   -w, --workdir DIR   initramfs, logs (default $PWD/tcp-target-work)
#   --seed N            the file namespace holds `tcpcheck pattern N` (default 1;
#                       build tests/vm/tcpcheck.c here to compare: cc -o tcpcheck ...)
#   -d, --detach        return after READY, leaving the guest running (stop it
#                       with `tcp-target-dev.sh stop`); without it the script
#                       waits for the guest and Ctrl-C stops it
# The guest (run-vm-tests.sh --scenario tcp-target, tcp-host.sh setup) serves:
#   tcp:127.0.0.1:PORT/nqn.2014-08.org.pnvme:file   64 MiB tmpfs file, any host
#   tcp:127.0.0.1:PORT/nqn.2014-08.org.pnvme:null   32 MiB memory-backed null_blk,
#                                 host NQN nqn.2014-08.org.pnvme:host-ok only
#   and the discovery controller on the same port (its log entries carry the
#   guest's view of the address: traddr 10.0.2.15, trsvcid 4420).
# Lines: "TCP-TARGET: READY ...", "TCP-TARGET: STOPPED ...", "TCP-TARGET: ERROR ...".
# Exit status: 0 ready (detach) / stopped cleanly, 1 the guest failed, 2 usage
# or set-up error.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CMD=start
case "${1:-}" in start|stop) CMD=$1; shift ;; esac
PORT=14420
SECONDS_UP=900
WORK=$PWD/tcp-target-work
SEED=1
DETACH=0
while [ $# -gt 0 ]; do
	case "$1" in
	-p|--port)    PORT=$2; shift 2 ;;
	-s|--seconds) SECONDS_UP=$2; shift 2 ;;
	-w|--workdir) WORK=$2; shift 2 ;;
	--seed)       SEED=$2; shift 2 ;;
	-d|--detach)  DETACH=1; shift ;;
	-h|--help)    sed -n '3,31p' "$0"; exit 0 ;;
	*) echo "tcp-target-dev: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
STATEF=${TMPDIR:-/tmp}/pnvme-tcp-target-$PORT.work   # holds WORK, for stop

say() { echo "TCP-TARGET: $*"; }

port_open() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

qemu_pid() { cat "$1/qemu-tcp-target.pid" 2>/dev/null; }

stop() {
	local work pid i
	work=$(cat "$STATEF" 2>/dev/null) || { say "ERROR no target recorded for port $PORT ($STATEF)"; return 2; }
	pid=$(qemu_pid "$work")
	if ! echo stop 2>/dev/null > "/dev/tcp/127.0.0.1/$((PORT + 1))"; then
		say "nothing answers on 127.0.0.1:$((PORT + 1)) (guest gone?)"
	fi
	for i in $(seq 1 100); do
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		say "the guest did not power off in 20 s: stopping QEMU (pid $pid)"
		kill "$pid"
	fi
	rm -f "$STATEF"
	say "STOPPED (port $PORT; serial log $work/serial-tcp-target.log)"
}

if [ "$CMD" = stop ]; then
	stop
	exit $?
fi

if port_open "$PORT" || port_open $((PORT + 1)); then
	say "ERROR 127.0.0.1:$PORT or :$((PORT + 1)) is in use (another target? tcp-target-dev.sh stop -p $PORT)"
	exit 2
fi
mkdir -p "$WORK" && WORK=$(cd "$WORK" && pwd) || { say "ERROR cannot create $WORK"; exit 2; }
LOG=$WORK/serial-tcp-target.log
rm -f "$LOG" "$WORK/qemu-tcp-target.pid"
echo "$WORK" > "$STATEF"
# The guest runs no pnvme program: run-vm-tests.sh packs `true` in their place.
TRUE=$(type -P true)
TCP_HOSTFWD=$PORT TCP_WAIT=$SECONDS_UP setsid "$HERE/run-vm-tests.sh" --pnvme "$TRUE" --vmtest "$TRUE" \
	--workdir "$WORK" --scenario tcp-target --seed "$SEED" > "$WORK/harness.log" 2>&1 < /dev/null &
HARNESS=$!
say "booting the guest (harness pid $HARNESS, log $WORK/harness.log)"

t0=$SECONDS
until grep -q 'VMTEST: tcp-target-ready PASS' "$LOG" 2>/dev/null; do
	if ! kill -0 $HARNESS 2>/dev/null || grep -q 'VMTEST: tcp-target-ready FAIL' "$LOG" 2>/dev/null ||
	   [ $((SECONDS - t0)) -gt 300 ]; then
		say "ERROR the target did not come up; last lines of $LOG:"
		tail -n 30 "$LOG" 2>/dev/null || tail -n 30 "$WORK/harness.log"
		kill $HARNESS 2>/dev/null
		pid=$(qemu_pid "$WORK"); [ -n "$pid" ] && kill "$pid" 2>/dev/null
		rm -f "$STATEF"
		exit 1
	fi
	sleep 0.5
done
port_open "$PORT" || say "warning: 127.0.0.1:$PORT does not accept connections"
say "READY 127.0.0.1:$PORT -> guest nvmet-tcp 0.0.0.0:4420 (up to ${SECONDS_UP}s; booted in $((SECONDS - t0))s)"
say "  tcp:127.0.0.1:$PORT/nqn.2014-08.org.pnvme:file  64 MiB tmpfs file (buffered_io), pattern seed $SEED, any host"
say "  tcp:127.0.0.1:$PORT/nqn.2014-08.org.pnvme:null  32 MiB null_blk (memory-backed), hostnqn nqn.2014-08.org.pnvme:host-ok only"
say "  discovery: 127.0.0.1:$PORT (entries carry the guest's address: traddr=10.0.2.15 trsvcid=4420)"
say "  stop: $0 stop -p $PORT    target log: grep -E 'nvmet|VMTEST|NVMET' $LOG"

if [ $DETACH = 1 ]; then
	exit 0
fi
trap 'say "stopping (signal)"; stop; wait $HARNESS; exit 1' INT TERM
wait $HARNESS
rc=$?
rm -f "$STATEF"
grep -E 'VMTEST: (tcp-target|guest done)' "$LOG" | sed -E 's/^\[[ 0-9.]+\] //'
say "STOPPED (guest verdict: harness exit $rc; serial log $LOG)"
[ $rc = 0 ]
