#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# tgt-idle-conns.sh - what idle connections cost pnvme-tgt's busy ones, on
# this machine over loopback (no VM): pnvme-tgt with a null backend, one
# polling thread; pnvme-perf as the NVMe/TCP host, 4 KiB random reads at
# depth 1 and 32 on one queue pair, while N other TCP connections to the
# target have done their ICReq/ICResp and then stay silent (a fleet of hosts'
# spare queues). BENCHMARKS.md §5, "Idle connections".
#
#   benchmarks/tgt-idle-conns.sh [--tgt PATH]... [--idle N,N,...] [--runtime S] [--runs R]
#                                [--perf PATH]
#
# --tgt (repeatable; default build/pnvme-tgt): pnvme-tgt binaries to compare,
# each measured in turn, R rounds (default 3) of the whole list; --idle:
# idle connection counts (default 0,200); --runtime: seconds per run
# (default 5); --perf: the host (default build/pnvme-perf). Target pinned to
# CPU 1, pnvme-perf to CPU 0. Prints one line per run and the medians.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
TGTS=()
IDLE=0,200
RUNTIME=5
RUNS=3
PERF=$SRC/build/pnvme-perf
while [ $# -gt 0 ]; do
	case "$1" in
	--tgt)     TGTS+=("$2"); shift 2 ;;
	--idle)    IDLE=$2; shift 2 ;;
	--runtime) RUNTIME=$2; shift 2 ;;
	--runs)    RUNS=$2; shift 2 ;;
	--perf)    PERF=$2; shift 2 ;;
	-h|--help) sed -n '3,18p' "$0"; exit 0 ;;
	*) echo "tgt-idle-conns: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
[ ${#TGTS[@]} -gt 0 ] || TGTS=("$SRC/build/pnvme-tgt")
for b in "${TGTS[@]}" "$PERF"; do
	[ -x "$b" ] || { echo "tgt-idle-conns: $b: not an executable (build first)" >&2; exit 2; }
done
command -v python3 > /dev/null || { echo "tgt-idle-conns: needs python3" >&2; exit 2; }
NQN=nqn.2014-08.org.pnvme:idle-bench
PORT=$((20000 + RANDOM % 20000))
TMP=$(mktemp -d)
TPID= HPID=
cleanup() {
	[ -n "$HPID" ] && kill "$HPID" 2>/dev/null
	[ -n "$TPID" ] && kill "$TPID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

# idle_holder N: N connections, each with an ICReq (NVMe/TCP 1.0 §3.6.2.2:
# type 0, HLEN = PLEN = 128, PFV 0) answered by an ICResp, then silent
cat > "$TMP/idle.py" << 'EOF'
import socket, struct, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(struct.pack("<BBBBIHBBI", 0, 0, 128, 0, 128, 0, 0, 0, 0).ljust(128, b"\0"))
    got = b""
    while len(got) < 128:
        d = s.recv(128 - len(got))
        if not d:
            sys.exit("idle connection closed by the target")
        got += d
    socks.append(s)
print("ready", flush=True)
time.sleep(86400)
EOF

echo "# host: $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# source $(git -C "$SRC" describe --always --dirty 2>/dev/null); runs $RUNS x $RUNTIME s; idle $IDLE"
for r in $(seq 1 "$RUNS"); do
	for ti in "${!TGTS[@]}"; do
		tgt=${TGTS[$ti]}
		for n in ${IDLE//,/ }; do
			"$tgt" -l 127.0.0.1:$PORT -s $NQN -n null:size=1G --allow-any-host -t 1 --cpus 1 \
				> "$TMP/tgt.log" 2>&1 &
			TPID=$!
			for _ in $(seq 50); do grep -q 'listening on' "$TMP/tgt.log" && break; sleep 0.1; done
			HPID=
			if [ "$n" -gt 0 ]; then
				python3 "$TMP/idle.py" $PORT "$n" > "$TMP/idle.out" 2>&1 &
				HPID=$!
				for _ in $(seq 100); do grep -q ready "$TMP/idle.out" && break; sleep 0.1; done
				grep -q ready "$TMP/idle.out" || { cat "$TMP/idle.out"; echo "tgt-idle-conns: idle connections failed" >&2; exit 1; }
			fi
			for qd in 1 32; do
				iops=$(taskset -c 0 "$PERF" -d "tcp:127.0.0.1:$PORT/$NQN" -q $qd -t "$RUNTIME" -c 0 --json 2>/dev/null |
					python3 -c 'import json,sys; print(round(json.load(sys.stdin)["total"]["iops"]))' 2>/dev/null)
				echo "RESULT tgt=$ti idle=$n qd=$qd run=$r iops=${iops:-failed}"
			done
			[ -n "$HPID" ] && kill "$HPID" 2>/dev/null
			kill "$TPID"; wait "$TPID" 2>/dev/null
			HPID= TPID=
			PORT=$((PORT + 1))
		done
	done
done | tee "$TMP/results"
echo
for ti in "${!TGTS[@]}"; do echo "# tgt=$ti: ${TGTS[$ti]}"; done
echo "| tgt | idle connections | QD | runs (IOPS) | median |"
echo "|---|---:|---:|---|---:|"
awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
	k = f["tgt"] " " f["idle"] " " f["qd"]; if (!(k in c)) ord[++nk] = k
	v[k, ++c[k]] = f["iops"] }
END { for (i = 1; i <= nk; i++) { k = ord[i]; n = c[k]; s = ""
	for (j = 1; j <= n; j++) { a[j] = v[k, j]; s = s (j > 1 ? ", " : "") a[j] }
	for (x = 1; x <= n; x++) for (y = x + 1; y <= n; y++) if (a[y] < a[x]) { t = a[x]; a[x] = a[y]; a[y] = t }
	split(k, p, " "); printf "| %s | %s | %s | %s | %s |\n", p[1], p[2], p[3], s, n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 } }' "$TMP/results"
