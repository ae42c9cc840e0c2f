#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check.sh BUILD_DIR - install the build into a temporary prefix, then build
# and run the embedder twice: with pkg-config (static and shared) and with
# CMake's find_package.
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(find "$tmp/prefix" -name netstack.pc -printf '%h\n' | head -n 1)
export PKG_CONFIG_PATH="$libdir"

cc -std=c11 -Wall -Wextra -Werror -o "$tmp/embedder-shared" "$here/embedder.c" \
	$(pkg-config --cflags --libs netstack)
LD_LIBRARY_PATH="$(dirname "$libdir")" "$tmp/embedder-shared"

cc -std=c11 -Wall -Wextra -Werror -o "$tmp/embedder-static" "$here/embedder.c" \
	$(pkg-config --cflags netstack) "$(dirname "$libdir")/libnetstack.a" \
	$(pkg-config --libs --static netstack | sed 's/-lnetstack//')
"$tmp/embedder-static"

# Nothing but the public API may be exported from the shared library.
leaked=$(nm -D --defined-only "$(dirname "$libdir")/libnetstack.so" | awk '{print $3}' |
	grep -v '^ns_' || true)
if [ -n "$leaked" ]; then
	echo "check.sh: symbols exported beyond ns_*: $(echo $leaked | head -c 300)" >&2
	exit 1
fi

cmake -S "$here" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cmake-build" >/dev/null
LD_LIBRARY_PATH="$(dirname "$libdir")" "$tmp/cmake-build/embedder"
echo "check.sh: pkg-config (shared, static) and find_package embedders build and run"
