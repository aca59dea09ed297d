#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# nvmet.sh - the Linux kernel NVMe/TCP target (nvmet + nvmet-tcp) through configfs,
# for the guest tests (packed as /bin/nvmet.sh by run-vm-tests.sh). Needs the
# modules configfs, nvmet, nvmet-tcp loaded (guest-init.sh: load tcp).
#
#   nvmet.sh up NQN BACKING [PORT] [ADDR]
#        subsystem NQN (allow_any_host=1 until `allow` is used), namespace 1 =
#        BACKING (a block device, or a regular file: then buffered_io=1, which tmpfs
#        needs: it has no O_DIRECT), a TCP port ADDR:PORT (default 127.0.0.1:4420;
#        a configfs port is created the first time ADDR:PORT is used, subsystems
#        on the same ADDR:PORT share it) and the subsystem linked into it. The
#        discovery controller (nqn.2014-08.org.nvmexpress.discovery) is served on
#        every enabled port: its log lists the subsystems linked to that port.
#        Prints "NVMET: port ID ..."; PORTID is what port-remove/port-add take.
#   nvmet.sh allow NQN HOSTNQN
#        allow-list: allow_any_host=0 and HOSTNQN in allowed_hosts; other hosts
#        get Connect status "Connect Invalid Host" (the kernel logs "not allowed").
#   nvmet.sh port-id [PORT] [ADDR]      the configfs id of ADDR:PORT (stdout)
#   nvmet.sh port-remove PORTID
#        cut the port: remember its address and subsystems, unlink them (nvmet
#        deletes the controllers of each subsystem on the port, which closes their
#        connections) and remove the port (the listener closes). Waits until
#        nothing listens on the port any more.
#   nvmet.sh port-add PORTID
#        re-create a port removed by port-remove with the same address and
#        subsystems; waits until it listens again.
#   nvmet.sh ports                      one line per port: id, address, subsystems
#   nvmet.sh down [NQN]
#        without NQN: every port, subsystem and host entry; with NQN: that
#        subsystem (and ports left without any subsystem).
#   nvmet.sh show                       the configfs tree (attribute values)
#
# Keep Alive is the kernel's own: nvmet arms the controller's keep-alive timer
# with the KATO the host gave in its Connect (0 = none; discovery controllers
# get a default), with traffic-based keep alive; nothing is set here.
# Env: NVMET_INLINE (port param_inline_data_size, bytes; unset = the kernel
#      default, 16 KiB in Linux 6.1, i.e. IOCCSZ 1028), NVMET_SERIAL (attr_serial),
#      NVMET_STATE (where port-remove keeps a port, default /tmp/nvmet.state).
# Output lines start with "NVMET:"; exit 0 iff every step worked.
CFG=/sys/kernel/config/nvmet
STATE=${NVMET_STATE:-/tmp/nvmet.state}

die() { echo "NVMET: ERROR $*"; exit 1; }

wr() {  # wr VALUE FILE
	printf '%s' "$1" > "$2" 2>/dev/null || die "write '$1' > $2 failed"
}

ensure_cfg() {
	if ! grep -q ' /sys/kernel/config configfs' /proc/mounts; then
		mount -t configfs configfs /sys/kernel/config 2>/dev/null ||
			die "cannot mount configfs (module configfs loaded?)"
	fi
	[ -d $CFG ] || die "no $CFG (modules nvmet, nvmet-tcp loaded?)"
}

# listening PORT: is a TCP socket (IPv4 or IPv6) listening on PORT?
listening() {
	hex=$(printf '%04X' "$1")
	cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
		awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }'
}

# wait_listen PORT yes|no: up to 5 s
wait_listen() {
	i=0
	while [ $i -lt 50 ]; do
		if listening "$1"; then [ "$2" = yes ] && return 0; else [ "$2" = no ] && return 0; fi
		sleep 0.1; i=$((i + 1))
	done
	return 1
}

port_id() {  # port_id SVCID ADDR: existing configfs port for ADDR:SVCID, or empty
	for p in $CFG/ports/*; do
		[ -d "$p" ] || continue
		[ "$(cat $p/addr_trtype)" = tcp ] && [ "$(cat $p/addr_trsvcid)" = "$1" ] &&
			[ "$(cat $p/addr_traddr)" = "$2" ] && { basename $p; return; }
	done
}

new_port() {  # new_port ID ADDR SVCID [INLINE]
	P=$CFG/ports/$1
	mkdir $P || die "mkdir $P"
	case $2 in *:*) fam=ipv6 ;; *) fam=ipv4 ;; esac
	wr tcp $P/addr_trtype
	wr $fam $P/addr_adrfam
	wr "$2" $P/addr_traddr
	wr "$3" $P/addr_trsvcid
	[ -n "$4" ] && wr "$4" $P/param_inline_data_size
}

add_ns() {  # add_ns NQN NSID BACKING
	NS=$CFG/subsystems/$1/namespaces/$2
	[ -e "$3" ] || die "backing $3 does not exist"
	[ -d $NS ] || mkdir $NS || die "mkdir $NS"
	[ "$(cat $NS/enable)" = 1 ] && wr 0 $NS/enable
	wr "$3" $NS/device_path
	if [ -b "$3" ]; then kind=bdev; else kind=file; wr 1 $NS/buffered_io; fi
	wr 1 $NS/enable
	if [ $kind = bdev ]; then
		bytes=$(( $(cat /sys/class/block/$(basename $(readlink -f "$3"))/size 2>/dev/null || echo 0) * 512 ))
	else
		bytes=$(stat -c %s "$3")
	fi
	echo "NVMET: ns $2 of $1 -> $3 ($kind, $bytes bytes)"
}

up() {  # up NQN BACKING [PORT] [ADDR]
	[ $# -ge 2 ] || die "usage: nvmet.sh up NQN BACKING [PORT] [ADDR]"
	NQN=$1; B=$2; SVC=${3:-4420}; ADDR=${4:-127.0.0.1}
	ensure_cfg
	S=$CFG/subsystems/$NQN
	if [ ! -d $S ]; then
		mkdir $S || die "mkdir $S"
		wr 1 $S/attr_allow_any_host
	fi
	[ -n "$NVMET_SERIAL" ] && wr "$NVMET_SERIAL" $S/attr_serial
	add_ns $NQN 1 "$B"
	ID=$(port_id $SVC $ADDR)
	if [ -z "$ID" ]; then
		ID=$(ls $CFG/ports | sort -n | tail -n 1)
		ID=$(( ${ID:-0} + 1 ))
		new_port $ID $ADDR $SVC "$NVMET_INLINE"
	fi
	P=$CFG/ports/$ID
	# linking a subsystem into a port is what makes nvmet-tcp listen()
	[ -e $P/subsystems/$NQN ] || ln -s $S $P/subsystems/$NQN ||
		die "link $NQN into port $ID (address in use?)"
	wait_listen $SVC yes || die "nothing listens on port $SVC after linking $NQN"
	echo "NVMET: port $ID tcp $(cat $P/addr_adrfam) $ADDR:$SVC" \
	     "inline_data_size=$(cat $P/param_inline_data_size 2>/dev/null) -> $NQN" \
	     "allow_any_host=$(cat $S/attr_allow_any_host)"
}

allow() {  # allow NQN HOSTNQN
	[ $# = 2 ] || die "usage: nvmet.sh allow NQN HOSTNQN"
	ensure_cfg
	S=$CFG/subsystems/$1
	[ -d $S ] || die "no subsystem $1"
	H=$CFG/hosts/$2
	[ -d $H ] || mkdir $H || die "mkdir $H"
	# hosts can be linked only while allow_any_host is 0
	wr 0 $S/attr_allow_any_host
	[ -e $S/allowed_hosts/$2 ] || ln -s $H $S/allowed_hosts/$2 || die "link $2 into $1"
	echo "NVMET: $1 allows host $2 only ($(ls $S/allowed_hosts | tr '\n' ' '))"
}

port_remove() {  # port_remove PORTID
	[ $# = 1 ] || die "usage: nvmet.sh port-remove PORTID"
	ensure_cfg
	P=$CFG/ports/$1
	[ -d $P ] || die "no port $1"
	mkdir -p $STATE
	SVC=$(cat $P/addr_trsvcid)
	{
		echo "addr=$(cat $P/addr_traddr)"
		echo "svc=$SVC"
		echo "inline=$(cat $P/param_inline_data_size 2>/dev/null)"
		echo "subsystems='$(ls $P/subsystems | tr '\n' ' ' | sed 's/ $//')'"
	} > $STATE/port-$1
	for l in $P/subsystems/*; do
		[ -e "$l" ] || [ -L "$l" ] || continue
		rm $l || die "unlink $l"
	done
	rmdir $P || die "rmdir $P"
	wait_listen $SVC no || die "port $SVC still listening after removing port $1"
	echo "NVMET: port $1 removed ($(sed -n 's/^addr=//p' $STATE/port-$1):$SVC," \
	     "subsystems $(sed -n "s/^subsystems='\(.*\)'/\1/p" $STATE/port-$1))"
}

port_add() {  # port_add PORTID
	[ $# = 1 ] || die "usage: nvmet.sh port-add PORTID"
	ensure_cfg
	[ -f $STATE/port-$1 ] || die "port $1 was not removed by port-remove"
	[ -d $CFG/ports/$1 ] && die "port $1 exists"
	addr= svc= inline= subsystems=
	. $STATE/port-$1
	new_port $1 "$addr" "$svc" "$inline"
	for n in $subsystems; do
		ln -s $CFG/subsystems/$n $CFG/ports/$1/subsystems/$n || die "link $n into port $1"
	done
	wait_listen $svc yes || die "port $svc not listening after re-adding port $1"
	rm -f $STATE/port-$1
	echo "NVMET: port $1 re-added ($addr:$svc, subsystems $subsystems)"
}

ports() {
	ensure_cfg
	for p in $CFG/ports/*; do
		[ -d "$p" ] || continue
		echo "NVMET: port $(basename $p) $(cat $p/addr_trtype) $(cat $p/addr_traddr):$(cat $p/addr_trsvcid)" \
		     "subsystems: $(ls $p/subsystems | tr '\n' ' ')"
	done
}

down_subsys() {  # down_subsys NQN
	S=$CFG/subsystems/$1
	for p in $CFG/ports/*; do
		[ -L $p/subsystems/$1 ] && { rm $p/subsystems/$1 || die "unlink $p/subsystems/$1"; }
	done
	[ -d $S ] || return 0
	for h in $S/allowed_hosts/*; do
		[ -L "$h" ] && { rm "$h" || die "unlink $h"; }
	done
	for ns in $S/namespaces/*; do
		[ -d "$ns" ] || continue
		wr 0 $ns/enable
		rmdir $ns || die "rmdir $ns"
	done
	rmdir $S || die "rmdir $S"
	echo "NVMET: subsystem $1 removed"
}

down() {  # down [NQN]
	ensure_cfg
	if [ -n "$1" ]; then
		down_subsys "$1"
	else
		for s in $CFG/subsystems/*; do [ -d "$s" ] && down_subsys "$(basename $s)"; done
	fi
	for p in $CFG/ports/*; do
		[ -d "$p" ] || continue
		[ -z "$(ls $p/subsystems)" ] && [ -z "$(ls $p/referrals 2>/dev/null)" ] &&
			{ rmdir $p || die "rmdir $p"; echo "NVMET: port $(basename $p) removed"; }
	done
	if [ -z "$1" ]; then
		for h in $CFG/hosts/*; do [ -d "$h" ] && { rmdir "$h" || die "rmdir $h"; }; done
		rm -rf $STATE
	fi
	return 0
}

show() {
	ensure_cfg
	find $CFG -type f 2>/dev/null | sort | while read -r f; do
		case $f in */passthru/*|*/ana_groups/*|*/ana_state|*/pi_enable|*/revalidate_size|*/resv_enable) continue ;; esac
		v=$(head -n 1 $f 2>/dev/null)
		[ -n "$v" ] && echo "NVMET: ${f#$CFG/} = $v"
	done
	find $CFG -type l 2>/dev/null | while read -r l; do echo "NVMET: link ${l#$CFG/}"; done
}

cmd=$1
[ $# -gt 0 ] && shift
case "$cmd" in
up)          up "$@" ;;
allow)       allow "$@" ;;
port-id)     ensure_cfg; port_id "${1:-4420}" "${2:-127.0.0.1}" ;;
port-remove) port_remove "$@" ;;
port-add)    port_add "$@" ;;
ports)       ports ;;
down)        down "$@" ;;
show)        show ;;
*) echo "usage: nvmet.sh up NQN BACKING [PORT] [ADDR] | allow NQN HOSTNQN | port-id [PORT] [ADDR]" \
        "| port-remove PORTID | port-add PORTID | ports | down [NQN] | show" >&2; exit 2 ;;
esac
