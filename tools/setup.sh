#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# setup.sh - install everything netstack needs to build and test on a fresh
# Debian 12 machine (root, apt only), and fetch lwIP's source package into
# third_party/lwip (git-ignored). Idempotent: what is present is skipped.
#
# Source packages: deb-src entries are derived from the machine's own apt
# sources (deb822 *.sources or one-line sources.list), so no host name is ever
# written into this repository.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
lwip_dir="$here/third_party/lwip"
lwip_version="2.1.3"

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup.sh: must run as root to install packages" >&2
		exit 1
	fi
}

packages=(
	build-essential cmake pkg-config clang dpkg-dev xz-utils
	libcriterion-dev liburing-dev libprotobuf-c-dev protobuf-c-compiler
	libzstd-dev libisal-dev libjson-c-dev
	iproute2 iputils-ping curl socat iperf3 procps ethtool python3
	# fuzzing, memcheck and fault tests (#7)
	libfuzzer-14-dev valgrind hping3
	# netstack-bench peers and tools (#5, #6)
	fio passt slirp4netns gnuplot-nox iperf
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

updated=0
apt_update() {
	[ "$updated" -eq 1 ] && return 0
	apt-get update -qq
	updated=1
}

if [ "${#missing[@]}" -gt 0 ]; then
	need_root
	apt_update
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# deb-src entries, derived from the existing binary entries.
enable_deb_src() {
	local src=/etc/apt/sources.list.d/netstack-deb-src.sources
	local list=/etc/apt/sources.list.d/netstack-deb-src.list
	[ -f "$src" ] || [ -f "$list" ] && return 0
	grep -qsE '^Types:.*deb-src' /etc/apt/sources.list.d/*.sources && return 0
	grep -qsE '^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list && return 0
	need_root
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		case "$f" in *netstack-deb-src*) continue ;; esac
		# Only Debian's own archive entries: every stanza whose Types has deb.
		grep -q 'debian' "$f" || continue
		sed -n 's/^Types: deb$/Types: deb-src/; p' "$f" >>"$src"
		echo >>"$src"
	done
	if [ -f /etc/apt/sources.list ]; then
		sed -n 's/^deb \(.*debian.*\)$/deb-src \1/p' /etc/apt/sources.list >>"$list"
	fi
	updated=0
}

if [ ! -f "$lwip_dir/src/Filelists.cmake" ]; then
	enable_deb_src
	apt_update
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && apt-get source -qq --download-only lwip >/dev/null)
	dsc=$(ls "$tmp"/lwip_*.dsc | head -n 1)
	(cd "$tmp" && dpkg-source -q -x "$(basename "$dsc")" lwip-src >/dev/null)
	rm -rf "$lwip_dir"
	mkdir -p "$(dirname "$lwip_dir")"
	mv "$tmp/lwip-src" "$lwip_dir"
	echo "setup.sh: lwIP source in $lwip_dir"
fi

# lwIP's headers have CRLF line ends: strip the CR before comparing.
ver=$(tr -d '\r' <"$lwip_dir/src/include/lwip/init.h" |
	awk '/define LWIP_VERSION_MAJOR/{a=$3} /define LWIP_VERSION_MINOR/{b=$3}
	     /define LWIP_VERSION_REVISION/{c=$3} END{print a"."b"."c}')
if [ "$ver" != "$lwip_version" ]; then
	echo "setup.sh: expected lwIP $lwip_version, found $ver in $lwip_dir" >&2
	exit 1
fi
