#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Install what pnvme needs on Debian 12 with apt-get (the one list of packages
# for the README commands and CI).
#   tools/install-deps.sh          build + unit tests, fio and its configured
#                                  source tree (the fio engine, tools/fio)
#   tools/install-deps.sh --vm     also the QEMU guest tests
#   tools/install-deps.sh --bench  accepted for old scripts (fio is in the default set)
#   tools/install-deps.sh --check  exit 0 if nothing is missing, 1 otherwise
#
# The fio engine builds against fio's own headers, from the source package of
# the fio binary installed here (same Debian version), unpacked and configured
# (./configure writes config-host.h) in $PNVME_FIO_SRC, default
# /usr/local/src/fio-UPSTREAM_VERSION (e.g. /usr/local/src/fio-3.33), where
# CMake looks for it. See fetch_fio_source below.
set -euo pipefail

# libisal-dev: ISA-L's CRC32C for the NVMe/TCP header and data digests.
# fio, dpkg-dev, python3: the fio engine (fio's source package, configured).
packages=(build-essential cmake pkg-config libcmocka-dev libpci-dev libisal-dev clang
	libclang-rt-14-dev valgrind fio dpkg-dev python3)
vm_packages=(qemu-system-x86 linux-image-amd64 busybox-static cpio kmod e2fsprogs xz-utils)

want=("${packages[@]}")
check=0
for arg in "$@"; do
	case "$arg" in
	--vm) want+=("${vm_packages[@]}") ;;
	--bench) ;;
	--check) check=1 ;;
	*) echo "usage: $0 [--vm] [--bench] [--check]" >&2; exit 2 ;;
	esac
done

# fio_version: the installed fio's Debian version (e.g. 3.33-3), "" if none.
fio_version() {
	dpkg-query -W -f='${Version}' fio 2>/dev/null || true
}

# fio_src_dir VERSION: where the configured source tree lives.
fio_src_dir() {
	local up=${1#*:}
	echo "${PNVME_FIO_SRC:-/usr/local/src/fio-${up%-*}}"
}

# fio_source_ok VERSION: the tree is there, of this version, and configured.
fio_source_ok() {
	local dir
	dir=$(fio_src_dir "$1")
	[ -f "$dir/config-host.h" ] && [ -f "$dir/fio.h" ] &&
		[ "$(cat "$dir/.pnvme-fio-source" 2>/dev/null)" = "$1" ]
}

# fetch_fio_source VERSION: apt-get source fio=VERSION, then ./configure.
# The deb-src entries are made from the archive the installed fio came from
# (apt-cache policy names its URI, suite and component; any signed-by of the
# machine's own entry for that URI is kept), and live in a private apt state
# directory: the machine's sources and lists stay as they are, whether they
# are one-line (sources.list) or deb822 (*.sources) files.
fetch_fio_source() {
	local ver=$1 dir tmp up origins key uri suite comp line
	dir=$(fio_src_dir "$ver")
	up=${ver#*:}
	up=${up%-*}
	# "500 http://deb.debian.org/debian bookworm/main amd64 Packages" lines
	# under the installed ("***") version of `apt-cache policy fio`.
	origins=$(apt-cache policy fio | awk '
		/^ \*\*\* / { inst = 1; next }
		/^     [^ ]/ { inst = 0 }
		inst && $2 ~ /^[a-z+]+:/ && $3 ~ /\// { print $2, $3 }')
	if [ -z "$origins" ]; then
		echo "pnvme: cannot tell which archive fio $ver came from (apt-cache policy fio);" \
		     "set PNVME_FIO_SRC to a configured fio $up source tree" >&2
		return 1
	fi
	tmp=$(mktemp -d)
	mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/parts" "$tmp/get"
	: >"$tmp/sources.list"
	while read -r uri suite; do
		comp=${suite#*/}
		suite=${suite%%/*}
		# The machine's signed-by for this URI: deb822 "Signed-By: PATH" in
		# the stanza naming the URI, or "[signed-by=PATH]" on a one-line entry.
		key=$( (cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true) | awk -v uri="$uri" '
			/^[[:space:]]*$/ { if (hit && k != "") exit; hit = 0; k = ""; next }
			/^URIs:/ { for (i = 2; i <= NF; i++) if ($i == uri || $i == uri "/") hit = 1 }
			/^Signed-By:[[:space:]]*\// { k = $2 }
			END { if (hit && k != "") print k }' || true)
		if [ -z "$key" ]; then
			key=$( (cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true) |
				grep -F " $uri " | grep -o 'signed-by=[^] ]*' | head -n1 | cut -d= -f2 || true)
		fi
		line="deb-src $uri $suite $comp"
		[ -n "$key" ] && line="deb-src [signed-by=$key] $uri $suite $comp"
		echo "$line" >>"$tmp/sources.list"
	done <<<"$origins"
	echo "=== fio source $ver from: $(tr '\n' ';' <"$tmp/sources.list")"
	local apt=(apt-get -q -o "Dir::Etc::SourceList=$tmp/sources.list"
		-o "Dir::Etc::SourceParts=$tmp/parts" -o "Dir::State::Lists=$tmp/lists"
		-o "Dir::Cache=$tmp/cache" -o "APT::Sandbox::User=$(id -un)")
	if ! "${apt[@]}" update ||
	   ! (cd "$tmp/get" && "${apt[@]}" source --only-source "fio=$ver") ||
	   [ ! -f "$tmp/get/fio-$up/fio.h" ]; then
		echo "pnvme: could not fetch the fio $ver source package (apt-get source fio=$ver)" >&2
		rm -rf "$tmp"
		return 1
	fi
	# Replace only a tree this script made (or an empty place).
	if [ -e "$dir" ] && [ ! -f "$dir/.pnvme-fio-source" ]; then
		echo "pnvme: $dir exists and was not made by $0; move it away or set PNVME_FIO_SRC" >&2
		rm -rf "$tmp"
		return 1
	fi
	rm -rf "$dir"
	mkdir -p "$(dirname "$dir")"
	mv "$tmp/get/fio-$up" "$dir"
	rm -rf "$tmp"
	# Debian's own configure line (debian/rules) less --enable-gfio and
	# --enable-libnbd, which only add engines and need GTK / libnbd: the
	# structures an external engine sees (thread_data, io_u, fio_file,
	# ioengine_ops) do not depend on them.
	echo "=== configuring $dir"
	if ! (cd "$dir" && ./configure --disable-native --prefix=/usr >pnvme-configure.log 2>&1); then
		echo "pnvme: fio's ./configure failed in $dir (see $dir/pnvme-configure.log)" >&2
		return 1
	fi
	echo "$ver" >"$dir/.pnvme-fio-source"
}

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
fio_ok=0
ver=$(fio_version)
[ -n "$ver" ] && fio_source_ok "$ver" && fio_ok=1
[ "${#missing[@]}" -eq 0 ] && [ "$fio_ok" -eq 1 ] && exit 0
[ "$check" -eq 1 ] && exit 1

if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "pnvme: missing packages: ${missing[*]}" >&2
		echo "pnvme: run as root, or: sudo apt-get install ${missing[*]}" >&2
		exit 1
	fi
	echo "=== installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
	ver=$(fio_version)
fi
if ! fio_source_ok "$ver"; then
	fetch_fio_source "$ver"
fi
