#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Install what pnvme needs on Debian 12 with apt-get (the one list of packages
# for the README commands and CI).
#   tools/install-deps.sh          build + unit tests
#   tools/install-deps.sh --vm     also the QEMU guest tests
#   tools/install-deps.sh --bench  also fio (benchmarks/guest-compare.sh; with --vm)
#   tools/install-deps.sh --check  exit 0 if nothing is missing, 1 otherwise
set -euo pipefail

# libisal-dev: ISA-L's CRC32C for the NVMe/TCP header and data digests.
packages=(build-essential cmake pkg-config libcmocka-dev libpci-dev libisal-dev clang
	libclang-rt-14-dev valgrind)
vm_packages=(qemu-system-x86 linux-image-amd64 busybox-static cpio kmod e2fsprogs xz-utils)
bench_packages=(fio)

want=("${packages[@]}")
check=0
for arg in "$@"; do
	case "$arg" in
	--vm) want+=("${vm_packages[@]}") ;;
	--bench) want+=("${bench_packages[@]}") ;;
	--check) check=1 ;;
	*) echo "usage: $0 [--vm] [--bench] [--check]" >&2; exit 2 ;;
	esac
done

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
[ "$check" -eq 1 ] && exit 1

if [ "$(id -u)" -ne 0 ]; then
	echo "pnvme: missing packages: ${missing[*]}" >&2
	echo "pnvme: run as root, or: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "=== installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
