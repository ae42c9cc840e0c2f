#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# demo.sh - netstack end to end in one command (as root): install what is
# needed, build, start `netstack run` on a TAP in a private network namespace
# and let the Linux kernel talk to it - ping and HTTP over IPv4 and IPv6, UDP
# echo, 1 MiB through TCP echo checked by sha256; then checkpoint the stack
# (its daemon exits), restore it in a new process, and check it all again. Whatever happens, the
# namespace and the stack are gone when it exits; it exits non-zero if any
# step failed.
#
# Each step is a function and main() lists them in order, so later steps
# (checkpoint, kill, restore, check again) slot in between existing ones.
#
# Environment: NETSTACK_BIN (default build/tools/netstack), DEMO_SKIP_SETUP=1
# and DEMO_SKIP_BUILD=1 to reuse what is there.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

NS="netstack-demo-$$"
TAP=tap0
HOST4=198.51.100.1
STACK4=198.51.100.2
HOST6=fd42:5::1
STACK6=fd42:5::2
ID=demo
BIN=${NETSTACK_BIN:-$here/build/tools/netstack}
SERVICES=(tcp:80:http tcp:7:echo udp:7:echo)

work=$(mktemp -d)
ROOT="$work/root"
stack_pid=""
current_step=""

say() { printf '%s\n' "$*"; }
step() {
	current_step=$*
	printf '\n==> %s\n' "$*"
}
ok() { printf '    ok: %s\n' "$*"; }
fail() {
	printf '\ndemo: FAILED in "%s": %s\n' "$current_step" "$*" >&2
	exit 1
}
in_ns() { ip netns exec "$NS" "$@"; }

show_stack_log() {
	[ -s "$work/stack.err" ] || return 0
	say "--- netstack stderr (last 20 lines) ---"
	tail -n 20 "$work/stack.err"
	say "---"
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	if [ $rc -ne 0 ]; then
		show_stack_log
	fi
	stack_stop quiet
	[ -x "$BIN" ] && "$BIN" --root "$ROOT" kill "$ID" KILL >/dev/null 2>&1
	if ip netns list 2>/dev/null | grep -qw "^$NS"; then
		for pid in $(ip netns pids "$NS" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
		ip netns delete "$NS" 2>/dev/null
	fi
	rm -rf "$work"
	if [ $rc -eq 0 ]; then
		say ""
		say "demo: all steps passed; namespace $NS removed"
	else
		say "demo: cleaned up (namespace $NS removed); exit $rc" >&2
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ steps

preflight() {
	step "preflight"
	[ "$(id -u)" -eq 0 ] || fail "run as root: sudo tools/demo.sh"
	[ -e /dev/net/tun ] || fail "/dev/net/tun is missing"
	ok "root, /dev/net/tun present"
}

do_setup() {
	step "install dependencies (tools/setup.sh)"
	if [ "${DEMO_SKIP_SETUP:-0}" = 1 ]; then
		ok "skipped (DEMO_SKIP_SETUP=1)"
		return
	fi
	tools/setup.sh || fail "tools/setup.sh failed"
	ok "dependencies in place"
}

do_build() {
	step "build (cmake, RelWithDebInfo)"
	if [ "${DEMO_SKIP_BUILD:-0}" = 1 ]; then
		ok "skipped (DEMO_SKIP_BUILD=1)"
	else
		cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$work/cmake.log" 2>&1 ||
			{ tail -n 30 "$work/cmake.log"; fail "cmake configure failed"; }
		cmake --build build -j2 >>"$work/cmake.log" 2>&1 ||
			{ tail -n 30 "$work/cmake.log"; fail "build failed"; }
	fi
	[ -x "$BIN" ] || fail "no executable at $BIN"
	ok "$BIN"
}

net_up() {
	step "network namespace $NS with $TAP (kernel side $HOST4/24, $HOST6/64)"
	for t in ip ping curl socat sha256sum timeout; do
		command -v "$t" >/dev/null || fail "$t is missing (tools/setup.sh installs it)"
	done
	ip netns add "$NS"
	ip -n "$NS" link set lo up
	ip -n "$NS" tuntap add dev "$TAP" mode tap
	ip -n "$NS" addr add "$HOST4/24" dev "$TAP"
	ip -n "$NS" -6 addr add "$HOST6/64" dev "$TAP" nodad
	ip -n "$NS" link set "$TAP" up
	ok "$(ip -n "$NS" -br addr show dev "$TAP" | tr -s ' ')"
}

stack_start() {
	step "start netstack on $TAP ($STACK4/24, $STACK6/64; ${SERVICES[*]})"
	local args=(--root "$ROOT" run --tap "$TAP" --ip "$STACK4/24" --ip "$STACK6/64")
	local s
	for s in "${SERVICES[@]}"; do
		args+=(--service "$s")
	done
	args+=("$ID")
	say "    \$ ip netns exec $NS $BIN ${args[*]}"
	ip netns exec "$NS" "$BIN" "${args[@]}" >"$work/stack.out" 2>"$work/stack.err" &
	stack_pid=$!
	local _
	for _ in $(seq 100); do
		grep -q running "$work/stack.out" && break
		kill -0 "$stack_pid" 2>/dev/null || {
			wait "$stack_pid" || true
			stack_pid=""
			fail "netstack exited before printing 'running'"
		}
		sleep 0.1
	done
	grep -q running "$work/stack.out" || fail "no 'running' line from netstack within 10 s"
	ok "pid $stack_pid: $(grep -m1 running "$work/stack.out")"
}

# stack_stop [quiet]: SIGTERM, wait up to 5 s, then SIGKILL.
stack_stop() {
	[ -n "$stack_pid" ] || return 0
	[ "${1:-}" = quiet ] || step "stop netstack (SIGTERM)"
	local pid=$stack_pid rc=0 _
	stack_pid=""
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		[ "${1:-}" = quiet ] || fail "netstack did not exit within 5 s of SIGTERM"
		return 0
	fi
	wait "$pid" 2>/dev/null || rc=$?
	[ "${1:-}" = quiet ] && return 0
	[ $rc -eq 0 ] || fail "netstack exited with status $rc"
	ok "exited 0"
}

check_ping() {
	step "ping from the kernel (IPv4 and IPv6)"
	local out
	out=$(timeout 15 ip netns exec "$NS" ping -c 3 -W 2 "$STACK4" 2>&1) ||
		{ say "$out"; fail "ping $STACK4"; }
	ok "$(grep 'packets transmitted' <<<"$out") ($STACK4)"
	out=$(timeout 15 ip netns exec "$NS" ping -6 -c 3 -W 2 "$STACK6" 2>&1) ||
		{ say "$out"; fail "ping -6 $STACK6"; }
	ok "$(grep 'packets transmitted' <<<"$out") ($STACK6)"
}

check_curl() {
	step "HTTP from the kernel with curl (IPv4 and IPv6)"
	local url body
	for url in "http://$STACK4/" "http://[$STACK6]/"; do
		body=$(timeout 15 ip netns exec "$NS" curl -sS --max-time 5 "$url") ||
			fail "curl $url"
		[ "$body" = "netstack $ID" ] || fail "curl $url returned '$body', want 'netstack $ID'"
		ok "curl $url -> $body"
	done
}

check_udp() {
	step "UDP echo from the kernel (IPv4 and IPv6)"
	local peer reply msg
	for peer in "$STACK4" "[$STACK6]"; do
		msg="hello netstack over UDP $peer $$"
		reply=$(printf '%s' "$msg" | timeout 10 ip netns exec "$NS" socat -t 2 - "UDP:$peer:7") ||
			fail "socat UDP:$peer:7"
		[ "$reply" = "$msg" ] || fail "UDP echo via $peer returned '$reply'"
		ok "$peer:7 echoed '$reply'"
	done
}

check_echo() {
	step "1 MiB through TCP echo (kernel -> netstack -> kernel), sha256 end to end"
	head -c 1048576 /dev/urandom >"$work/echo.in"
	timeout 30 ip netns exec "$NS" socat -t 5 -T 10 - "TCP:$STACK4:7,connect-timeout=5" \
		<"$work/echo.in" >"$work/echo.out" || fail "socat TCP:$STACK4:7"
	local a b n
	a=$(sha256sum <"$work/echo.in" | cut -d' ' -f1)
	b=$(sha256sum <"$work/echo.out" | cut -d' ' -f1)
	n=$(stat -c %s "$work/echo.out")
	say "    sent     sha256 $a (1048576 bytes)"
	say "    received sha256 $b ($n bytes)"
	[ "$a" = "$b" ] || fail "echoed data differs from what was sent"
	ok "sha256 equal"
}

check_all() {
	check_ping
	check_curl
	check_udp
	check_echo
}

# Checkpoint the running stack (which then exits: no --leave-running), and
# check that its daemon is gone and an image was written.
stack_checkpoint() {
	step "checkpoint the stack to an image; the daemon exits (netstack checkpoint)"
	say "    \$ $BIN --root $ROOT checkpoint --image-path $work/image $ID"
	"$BIN" --root "$ROOT" checkpoint --image-path "$work/image" "$ID" ||
		fail "netstack checkpoint failed"
	local pid=$stack_pid _
	stack_pid=""
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && fail "the checkpointed daemon (pid $pid) is still running"
	wait "$pid" 2>/dev/null || true
	[ -s "$work/image/state.pb" ] || fail "no state.pb in the image"
	ok "image $(du -sh "$work/image" | cut -f1) in $work/image; daemon pid $pid gone"
	ip netns exec "$NS" curl -sS --max-time 1 "http://$STACK4/" >/dev/null 2>&1 &&
		fail "something still answers on $STACK4 after the checkpoint"
	ok "nothing answers on $STACK4 now"
}

# Restore in a new daemon process, time it to the first HTTP answer.
stack_restore() {
	step "restore from the image in a new process (netstack restore --detach)"
	say "    \$ ip netns exec $NS $BIN --root $ROOT restore --image-path $work/image --detach $ID"
	local t0 t1 t2 _
	t0=$(date +%s%N)
	ip netns exec "$NS" "$BIN" --root "$ROOT" restore --image-path "$work/image" --detach "$ID" ||
		fail "netstack restore failed"
	t1=$(date +%s%N)
	for _ in $(seq 200); do
		ip netns exec "$NS" curl -sS --max-time 1 "http://$STACK4/" >/dev/null 2>&1 && break
		sleep 0.01
	done
	t2=$(date +%s%N)
	ip netns exec "$NS" curl -sS --max-time 2 "http://$STACK4/" >/dev/null 2>&1 ||
		fail "the restored stack does not answer HTTP"
	ok "restore command took $(( (t1 - t0) / 1000000 )) ms; first HTTP answer $(( (t2 - t0) / 1000000 )) ms after it started"
	ok "$("$BIN" --root "$ROOT" state "$ID" | tr -d '\n' | grep -o '"restore_ms":[^,]*')"
}

restored_stop() {
	step "stop the restored daemon (netstack kill)"
	"$BIN" --root "$ROOT" kill "$ID" || fail "netstack kill failed"
	local _
	for _ in $(seq 50); do
		"$BIN" --root "$ROOT" list 2>/dev/null | grep -qw "$ID" || break
		sleep 0.1
	done
	ok "stopped"
}

stack_alive() {
	if [ -z "$stack_pid" ] || ! kill -0 "$stack_pid" 2>/dev/null; then
		fail "netstack is no longer running"
	fi
}

main() {
	preflight
	do_setup
	do_build
	net_up
	stack_start
	check_all
	stack_alive
	stack_checkpoint
	stack_restore
	check_all
	restored_stop
}

main "$@"
