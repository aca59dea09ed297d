#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# test_tool_pnvme.sh PNVME - the pnvme tool against the emulated controller
# (no hardware, no root): output, JSON, exit codes 0 / 1 / 2, error messages.
# bind and unbind run against a fake sysfs tree in a temporary directory
# (PNVME_SYSFS_ROOT, a test-only switch of src/pcie/pci.c); its PCI functions are
# in domain ffff, which no real machine has, so a tool that ignored the switch
# would find no such device and touch nothing.
set -u
PNVME=${1:?usage: test_tool_pnvme.sh PATH_TO_PNVME}
HERE=$(cd "$(dirname "$0")" && pwd)
fails=0
ok()   { echo "ok   $*"; }
bad()  { echo "FAIL $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d)
holder=
kp=
cleanup() {
	[ -n "$holder" ] && kill "$holder" 2>/dev/null
	[ -n "$kp" ] && kill "$kp" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# expect RC REGEX ARGS...: exit status RC and output (stdout+stderr) matching REGEX
expect() {
	want=$1; re=$2; shift 2
	out=$("$PNVME" "$@" 2>&1); rc=$?
	if [ "$rc" = "$want" ] && printf '%s\n' "$out" | grep -Eq -- "$re"; then
		ok "pnvme $* -> $rc"
	else
		bad "pnvme $* -> exit $rc (wanted $want, /$re/):"
		printf '%s\n' "$out" | sed 's/^/     | /'
	fi
}

# json_check NAME PYTHON_EXPR ARGS...: the stdout of pnvme ARGS is one JSON
# document `d` for which PYTHON_EXPR holds. Checked all at once by json_verdicts
# (one Python start instead of one per document).
nj=0
json_check() {
	name=$1; expr=$(printf '%s' "$2" | tr '\n\t' '  '); shift 2
	nj=$((nj + 1))
	if "$PNVME" "$@" >"$tmp/j$nj.json" 2>"$tmp/j$nj.err"; then
		printf '%s\t%s\t%s\n' "$name" "$tmp/j$nj.json" "$expr" >>"$tmp/checks"
	else
		bad "$name: pnvme $* failed:"
		sed 's/^/     | /' "$tmp/j$nj.json" "$tmp/j$nj.err" | head -20
	fi
}

json_verdicts() {
	[ -s "$tmp/checks" ] || return 0
	python3 - "$tmp/checks" >"$tmp/verdicts" <<'PY'
import json, sys
failed = 0
for line in open(sys.argv[1]):
    name, path, expr = line.rstrip("\n").split("\t", 2)
    try:
        d = json.load(open(path))
        good = bool(eval(expr))
        why = "" if good else f"does not satisfy {expr}"
    except Exception as e:  # not JSON, or a key missing
        good, why = False, repr(e)
    if good:
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}: {why}")
        for l in open(path).read().splitlines()[:40]:
            print(f"     | {l}")
sys.exit(min(failed, 100))
PY
	n=$?
	cat "$tmp/verdicts"
	fails=$((fails + n))
}

expect 0 '^mn +: pnvme emulated' id-ctrl emu
expect 0 '"mdts": 5,' id-ctrl emu:size=16M -o json
expect 0 '"active_namespaces": 3' id-ctrl emu:ns=3 --output-format=json
expect 0 'lbads:12 rp:0 .*\(in use\)' id-ns emu:ns=2,lba=4096 -n 2
expect 0 '"nsze": 32768,' id-ns emu:size=16M -n 1 -o json
expect 1 '^pnvme: namespace 3 is not active' id-ns emu -n 3
expect 0 '^temperature +: [0-9]+ K' smart-log emu
expect 0 '"data_units_written": [0-9]+' smart-log emu -o json
expect 0 '"errors": \[' error-log emu -o json
expect 0 'error log entries|^entry' error-log emu
expect 1 '^pnvme: .*(unknown|bad|option|emu)' id-ctrl emu:frobnicate=1
expect 1 "^pnvme: 'zz:1' is not a PCI address" bind zz:1
expect 1 "^pnvme: 'xyz' is not a PCI address" unbind xyz
expect 1 "^pnvme: '0000:00:zz.0' is neither a PCI address" id-ctrl 0000:00:zz.0
expect 2 '^usage: pnvme' id-ns emu
expect 2 '^usage: pnvme' bind
expect 2 'unknown command' frobnicate
expect 2 'output format must be json' list -o xml
expect 2 '^usage: pnvme' setup
expect 2 'no command'
expect 0 '^usage: pnvme' --help
expect 0 '' list

# --version: the project version from CMakeLists.txt
ver=$(sed -n 's/^project(pnvme VERSION \([0-9.]*\).*/\1/p' "$HERE/../CMakeLists.txt")
expect 0 "^pnvme $ver\$" --version
expect 0 "^pnvme $ver\$" -V

# --help for every command, and `pnvme help CMD`
for c in list bind unbind status setup id-ctrl id-ns smart-log error-log fw-log format \
	sanitize sanitize-log watch; do
	expect 0 "^usage: pnvme $c " "$c" --help
done
expect 0 '^usage: pnvme id-ns DEV -n NSID' id-ns -h
expect 0 '^usage: pnvme smart-log ' help smart-log

# -o json where there is no JSON output is an error, not text. (Arguments that
# do nothing even where -o json were ignored: no such PCI domain; no setup.)
for c in "bind ffff:00:1f.7" "unbind ffff:00:1f.7" status setup "format emu -n 1 --yes" \
	"sanitize emu --action block --yes"; do
	# shellcheck disable=SC2086 # the command and its arguments
	expect 2 "^pnvme: ${c%% *}: no JSON output" $c -o json
done
# options that do not apply to the command
expect 2 '^pnvme: id-ctrl: -n applies to id-ns and format only' id-ctrl emu -n 1
expect 2 '^pnvme: list: --force applies to bind, format and sanitize only' list --force
expect 2 '^pnvme: id-ctrl: --yes applies to format and sanitize only' id-ctrl emu --yes
expect 2 '^pnvme: id-ns: -n all applies to format only' id-ns emu -n all
expect 2 '^pnvme: smart-log: --lbaf applies to format only' smart-log emu --lbaf 1
expect 2 '^pnvme: format: --action applies to sanitize only' format emu -n 1 --action block

# Every JSON document carries the format version; nvme-cli's field names,
# pnvme's own fields under "pnvme" and nowhere else.
V='d["pnvme_json_version"] == 1'
json_check "list json version" "$V and isinstance(d['controllers'], list)" list -o json
CTRL_KEYS='vid ssvid sn mn fr rab ieee cmic mdts cntlid ver rtd3r rtd3e oaes ctratt rrls
	cntrltype fguid crdt1 crdt2 crdt3 nvmsr vwci mec oacs acl aerl frmw lpa elpe npss avscc
	apsta wctemp cctemp mtfa hmpre hmmin tnvmcap unvmcap rpmbs edstt dsto fwug kas hctma
	mntmt mxtmt sanicap hmminds hmmaxd nsetidmax endgidmax anatt anacap anagrpmax nanagrpid
	pels domainid megcap sqes cqes maxcmd nn oncs fuses fna vwc awun awupf icsvscc nwpc acwu
	ocfs sgls mnan maxdna maxcna subnqn ioccsz iorcsz icdoff fcatt msdbd ofcs psds pnvme_json_version pnvme'
json_check "id-ctrl json: nvme-cli names" \
	"$V and set(d) <= set('''$CTRL_KEYS'''.split()) and d['sn'] == 'PNVME-EMU-0001' and d['nn'] == 32 and d['sqes'] == 0x66 and d['mdts'] == 5 and d['ver'] > 0 and d['pnvme']['io_queues'] == 64 and len(d['psds']) == d['npss'] + 1" \
	id-ctrl emu -o json
NS_KEYS='nsze ncap nuse nsfeat nlbaf flbas mc dpc dps nmic rescap fpi dlfeat nawun nawupf
	nacwu nabsn nabo nabspf noiob nvmcap npwg npwa npdg npda nows mssrl mcl msrc nulbaf
	anagrpid nsattr nvmsetid endgid nguid eui64 lbafs pnvme_json_version pnvme'
json_check "id-ns json: nvme-cli names" \
	"$V and set(d) <= set('''$NS_KEYS'''.split()) and d['nsze'] == 4096 and d['lbafs'][0]['ds'] == 12 and d['lbafs'][0]['ms'] == 0 and d['lbafs'][0]['rp'] == 0 and d['lbafs'][0]['in_use'] == 1 and d['pnvme']['nsid'] == 1 and d['pnvme']['pi_type'] == 0 and d['pnvme']['extended_lba'] is False" \
	id-ns emu:size=16M,lba=4096 -n 1 -o json
SMART_KEYS='critical_warning temperature avail_spare spare_thresh percent_used
	endurance_grp_critical_warning_summary data_units_read data_units_written
	host_read_commands host_write_commands controller_busy_time power_cycles power_on_hours
	unsafe_shutdowns media_errors num_err_log_entries warning_temp_time critical_comp_time
	thm_temp1_trans_count thm_temp2_trans_count thm_temp1_total_time thm_temp2_total_time
	pnvme_json_version pnvme'
json_check "smart-log json: nvme-cli names" \
	"$V and set(k for k in d if not k.startswith('temperature_sensor_')) <= set('''$SMART_KEYS'''.split()) and d['temperature'] > 0 and 'host_read_commands' in d" \
	smart-log emu -o json
json_check "error-log json: nvme-cli names" \
	"$V and d['errors'] == [] and d['pnvme']['entries_read'] == 64" error-log emu -o json

# id-ctrl: the I/O queues the controller grants, not the 1 the tool asked for
expect 0 '^io queues : 8 ' id-ctrl emu:nq=8
expect 0 '^io queues : 64 ' id-ctrl emu
json_check "id-ctrl json io_queues" "d['pnvme']['io_queues'] == 5" id-ctrl emu:nq=5 -o json

# id-ns: each LBA format with metadata size, data size, relative performance,
# the one in use; extended LBA (FLBAS bit 4), PI type and location (DPS)
expect 0 '^flbas  : 0x0 \(LBA format 0; no metadata\)$' id-ns emu -n 1
expect 0 '^dps    : 0x0 \(no end-to-end protection\)$' id-ns emu -n 1
expect 0 '^lbaf  0 : ms:0   lbads:9  rp:0  512 data \+ 0 metadata bytes, best performance \(in use\)$' \
	id-ns emu -n 1

# ---------------------------------------------------------------------------
# format, sanitize, sanitize-log, fw-log (emu: format=1 offers Format NVM with
# eight LBA formats, 4096 + 8 is index 5; sanicap=7 every sanitize action)
# ---------------------------------------------------------------------------
# destructive commands without --yes: refused, exit 2, nothing sent (the
# second emulator could not even format: the refusal comes first)
expect 2 '^pnvme: format: this destroys all data on namespace 1 of emu:format=1; add --yes' \
	format emu:format=1 -n 1 --lbaf 5
expect 2 'add --yes' format emu -n 1 --lbaf 5
expect 2 '^pnvme: sanitize: this erases ALL user data .* add --yes' \
	sanitize emu:sanicap=7 --action block
expect 2 'needs -n NSID' format emu:format=1 --lbaf 5 --yes
expect 2 'needs --action' sanitize emu:sanicap=7 --yes
expect 2 '^pnvme: --action needs block, crypto' sanitize emu:sanicap=7 --action erase --yes
expect 2 '^pnvme: --lbaf needs a number 0..63' format emu:format=1 -n 1 --lbaf 64 --yes
expect 2 'apply to --action overwrite only' sanitize emu:sanicap=7 --action block --owpass 2 --yes
# with --yes (or nvme-cli's --force)
expect 0 '^namespace 1: LBA format 5, 4096 \+ 8 bytes \(extended LBA\), no protection information, 16384 blocks$' \
	format emu:format=1 -n 1 --lbaf 5 --ms 1 --ses 1 --yes
expect 0 '^namespace 1: LBA format 2, 512 \+ 16 bytes \(separate metadata\), PI type 1 in the first 8 bytes' \
	format emu:format=1 -n 1 -l 2 -i 1 -p 1 --force
expect 0 '^namespace 2: LBA format 4, 4096 \+ 0 bytes' format emu:format=1,ns=2 -n all --lbaf 4 -y
expect 1 '^pnvme: format: the controller does not support Format NVM \(Identify Controller OACS bit 1 is 0\)$' \
	format emu -n 1 --yes
expect 1 '^pnvme: format: LBA format 9 does not exist' format emu:format=1 -n 1 --lbaf 9 --yes
expect 1 'namespace 3 is not active' format emu:format=1 -n 3 --yes
# sanitize: started, or followed to the end with --wait
expect 0 '^sanitize started' sanitize emu:sanicap=7 --action crypto --yes
expect 0 '^sanitize: most recent sanitize completed successfully$' \
	sanitize emu:sanicap=7,sansteps=5 --action block --yes --wait
expect 0 'completed successfully' sanitize emu:sanicap=4 -a start-overwrite --owpass 2 \
	--ovrpat 0x5a5a5a5a --oipbp --yes --wait
expect 0 '^exit failure mode: done$' sanitize emu:sanicap=1 --action exit-failure
expect 1 '^pnvme: sanitize: the controller does not support crypto erase \(Identify Controller SANICAP 0x2\)$' \
	sanitize emu:sanicap=2 --action crypto --yes
expect 1 'does not support block erase \(Identify Controller SANICAP 0x0\)' sanitize emu --action block --yes
# sanitize-log / fw-log
expect 0 '^sstat  : 0x0 \(never sanitized' sanitize-log emu:sanicap=7
expect 1 'no Sanitize Status log' sanitize-log emu
expect 0 '^frs1 : 0\.1\.0 \(active\)$' fw-log emu
expect 0 '^afi  : 0x1 \(running slot 1' fw-log emu
SAN_KEYS='sprog sstat cdw10_info time_over_write time_block_erase time_crypto_erase
	time_over_write_no_dealloc time_block_erase_no_dealloc time_crypto_erase_no_dealloc
	pnvme_json_version pnvme'
json_check "sanitize-log json: nvme-cli names" \
	"$V and set(d) == set('''$SAN_KEYS'''.split()) and d['sprog'] == 65535 and d['sstat']['status'].startswith('(0)') and d['sstat']['no_cmplted_passes'] == 0 and d['time_block_erase'] == 4294967295 and d['pnvme']['in_progress'] is False" \
	sanitize-log emu:sanicap=7 -o json
json_check "fw-log json: nvme-cli names" \
	"$V and d['Active Firmware Slot (afi)'] == 1 and d['Firmware Rev Slot 1'].endswith(' (0.1.0)') and 'Firmware Rev Slot 2' not in d and d['pnvme']['revisions'] == [{'slot': 1, 'revision': '0.1.0'}] and d['pnvme']['active_slot'] == 1" \
	fw-log emu -o json

# ---------------------------------------------------------------------------
# bind / unbind on a fake sysfs tree
# ---------------------------------------------------------------------------
R=$tmp/root
S=$R/sys
P=$S/bus/pci
mkdir -p "$P/devices" "$P/drivers/vfio-pci" "$P/drivers/nvme" "$S/class/block" \
	"$S/kernel/iommu_groups/9990"
: >"$P/drivers/vfio-pci/unbind"
: >"$P/drivers/nvme/unbind"
mkfifo "$P/drivers_probe"

# fake_dev BDF CLASS [DRIVER]
fake_dev() {
	d=$P/devices/$1
	mkdir -p "$d"
	echo "$2" >"$d/class"
	echo 0x1b36 >"$d/vendor"
	echo 0x0010 >"$d/device"
	echo -1 >"$d/numa_node"
	: >"$d/driver_override"
	ln -s "$S/kernel/iommu_groups/9990" "$d/iommu_group"
	[ -z "${3:-}" ] || ln -s "$P/drivers/$3" "$d/driver"
}

# fake_ctrl BDF NAME STATE NS... : the kernel's nvme controller NAME with its
# namespaces, put in place at once (as the last step: the state file)
fake_ctrl() {
	bdf=$1; name=$2; state=$3; shift 3
	st=$tmp/stage-$name
	rm -rf "$st"
	mkdir -p "$st/$name"
	echo "$CHR_DEV" >"$st/$name/dev"
	for n in "$@"; do
		mkdir -p "$st/$name/$n" "$S/class/block/$n"
		echo "259:$((9000 + ${n##*n}))" >"$S/class/block/$n/dev"
	done
	rm -rf "$P/devices/$bdf/nvme"
	mv "$st" "$P/devices/$bdf/nvme"
	echo "$state" >"$tmp/state-$name" && mv "$tmp/state-$name" "$P/devices/$bdf/nvme/$name/state"
}

# The kernel's side of one write to drivers_probe, in the background: bind the
# device to the driver driver_override names (nvme if none); for nvme, the
# controller first "connecting", then live with namespaces nNAME n1 n2 half a
# second later (as the nvme driver does it: asynchronously).
kernel_probe() {
	(
		bdf=$(timeout 30 cat "$P/drivers_probe") || exit 0
		d=$P/devices/$bdf
		[ -d "$d" ] || exit 0
		drv=$(cat "$d/driver_override")
		drv=${drv:-nvme}
		ln -sfn "$P/drivers/$drv" "$d/driver"
		if [ "$drv" = nvme ]; then
			fake_ctrl "$bdf" nvme9992 connecting
			sleep 0.5
			fake_ctrl "$bdf" nvme9992 live nvme9992n1 nvme9992n2
		fi
	) &
	kp=$!
}

# ... and let it go if the tool never wrote (a failed test)
kernel_probe_done() {
	if kill -0 "$kp" 2>/dev/null; then
		timeout 5 sh -c "echo none > '$P/drivers_probe'" 2>/dev/null
	fi
	wait "$kp" 2>/dev/null
	kp=
}

# A process holding the fake controller's character device (/dev/null's number) open.
CHR_DEV=$(stat -c '%t %T' /dev/null | { read -r ma mi; echo "$((0x$ma)):$((0x$mi))"; })
sleep 300 </dev/null &
holder=$!
# A mounted filesystem's device number, for the fake namespace.
MNT_DEV=$(awk 'NR == 1 { print $3 }' /proc/self/mountinfo)

# ffff:00:00.0: a display controller (class 030000), no driver
fake_dev ffff:00:00.0 0x030000
# ffff:00:01.0: an NVMe controller on nvme whose namespace is mounted, held by
# device-mapper, and whose controller device a process has open
fake_dev ffff:00:01.0 0x010802 nvme
fake_ctrl ffff:00:01.0 nvme9991 live nvme9991n1
echo "$MNT_DEV" >"$S/class/block/nvme9991n1/dev"
mkdir -p "$S/class/block/nvme9991n1/holders/dm-9991" "$S/class/block/dm-9991/dm"
echo fake-vg >"$S/class/block/dm-9991/dm/name"
# ffff:00:02.0: an NVMe controller on vfio-pci
fake_dev ffff:00:02.0 0x010802 vfio-pci

export PNVME_SYSFS_ROOT="$R"
json_check "list on the fake tree" \
	"$V and [c['bdf'] for c in d['controllers']] == ['ffff:00:01.0', 'ffff:00:02.0']" list -o json

# a function that is not an NVMe controller: refused, --force says what it overrides
expect 1 '^pnvme: pci: refusing to bind ffff:00:00.0: PCI class 030000 is not an NVMe controller' \
	bind ffff:00:00.0
[ ! -L "$P/devices/ffff:00:00.0/driver" ] && ! [ -s "$P/devices/ffff:00:00.0/driver_override" ] &&
	ok "refused bind left the device alone" || bad "refused bind touched the device"
kernel_probe
expect 0 '^pnvme: --force: ffff:00:00.0 is not an NVMe controller \(PCI class 030000' \
	bind ffff:00:00.0 --force
kernel_probe_done
[ "$(readlink "$P/devices/ffff:00:00.0/driver")" = "$P/drivers/vfio-pci" ] &&
	ok "bind --force bound the fake device to vfio-pci" || bad "bind --force: driver not vfio-pci"

# in use: the refusal names every reason; --force prints each reason it overrides
for re in 'nvme9991n1 is mounted on ' 'nvme9991n1 is held by dm-9991 \(device-mapper fake-vg\)' \
	  'its character device is open by pid [0-9]+'; do
	expect 1 "^pnvme: pci: refusing to bind ffff:00:01.0 to vfio-pci: .*$re" bind ffff:00:01.0
done
kernel_probe
out=$("$PNVME" bind ffff:00:01.0 -f 2>&1); rc=$?
kernel_probe_done
for re in '^pnvme: --force: binding ffff:00:01.0 although .*nvme9991n1 is mounted on ' \
	  '^pnvme: --force: binding .*nvme9991n1 is held by dm-9991' \
	  '^pnvme: --force: binding .*its character device is open by pid [0-9]+' \
	  '^ffff:00:01.0 bound to vfio-pci \(IOMMU group 9990'; do
	if [ "$rc" = 0 ] && printf '%s\n' "$out" | grep -Eq -- "$re"; then
		ok "bind --force in use: /$re/"
	else
		bad "bind --force in use -> exit $rc, wanted 0 and /$re/:"
		printf '%s\n' "$out" | sed 's/^/     | /'
	fi
done

# unbind waits for the controller's namespaces, and says the list may be
# incomplete when it cannot read their number (no /dev/nvme9992 here)
kernel_probe
out=$("$PNVME" unbind ffff:00:02.0 2>"$tmp/err"); rc=$?
kernel_probe_done
if [ "$rc" = 0 ] && [ "$out" = "ffff:00:02.0 bound to nvme (nvme9992) nvme9992n1 nvme9992n2" ] &&
   grep -q 'cannot read the number of namespaces (/dev/nvme9992: .*); the list may be incomplete' \
	"$tmp/err"; then
	ok "unbind waits for the namespaces"
else
	bad "unbind -> $rc: $out"
	sed 's/^/     | /' "$tmp/err"
fi
unset PNVME_SYSFS_ROOT

# Namespaces with metadata: format, metadata size, PI type and place.
out=$("$PNVME" id-ns "emu:size=1M,ms=16,pi=2,pil=1" -n 1 2>&1)
if echo "$out" | grep -q 'separate buffer' && echo "$out" | grep -q 'protection information type 2, in the first' &&
   echo "$out" | grep -q '512 data + 16 metadata bytes.*(in use)'; then
	ok "id-ns shows separate metadata and PI type 2 (first bytes)"
else
	bad "id-ns metadata: $out"
fi
out=$("$PNVME" id-ns "emu:size=1M,ms=8,ext=1" -n 1 2>&1)
if echo "$out" | grep -qi 'extended' && echo "$out" | grep -q '512 data + 8 metadata bytes'; then
	ok "id-ns shows an extended-LBA format"
else
	bad "id-ns extended: $out"
fi

# watch: the emulator's scripted event (aen_ms: namespace 2 removed 200 ms after
# events are enabled) is printed as one JSON line; SIGINT ends the watch with 0.
"$PNVME" watch "emu:size=1M,ns=2,aen_ms=200" -o json >"$tmp/watch.out" 2>"$tmp/watch.err" &
wp=$!
i=0
while [ $i -lt 200 ] && ! grep -q nsids "$tmp/watch.out" 2>/dev/null; do
	sleep 0.05; i=$((i + 1))
done
kill -INT "$wp" 2>/dev/null
wait "$wp"; rc=$?
if [ "$rc" = 0 ] && grep -q 'watching emu:' "$tmp/watch.err" &&
   python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, lines
d = json.loads(lines[0])
assert d["type_name"] == "notice" and d["info"] == 0 and d["log_page"] == 4, d
assert d["nsids"] == [2] and d["namespaces"] == [1] and d["ns_generation"] == 1, d
' "$tmp/watch.out"; then
	ok "watch -o json prints the namespace change; SIGINT -> 0"
else
	bad "watch: exit $rc:"
	sed 's/^/     | /' "$tmp/watch.out" "$tmp/watch.err" | head -20
fi

json_verdicts
[ "$fails" = 0 ] && echo "all passed" || echo "$fails failed"
[ "$fails" = 0 ]
