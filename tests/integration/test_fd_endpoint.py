#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The fd link endpoint: netstack runs on an inherited AF_PACKET socket bound
to one end of a veth pair (--fd N); the kernel owns the other end. Ping and
curl over IPv4 and IPv6, and 1 MiB through tcp:7:echo, every byte checked."""

import os
import threading
import time

import nstest
from nstest import STACK4, STACK6, check, log

MIB = 1 << 20


def echo_mib(ns, host):
    data = os.urandom(MIB)
    t0 = time.monotonic()
    s = ns.connect(host, 7, timeout=10)
    err = []

    def sender():
        try:
            s.sendall(data)
        except Exception as e:  # noqa: BLE001
            err.append(e)

    t = threading.Thread(target=sender, daemon=True)
    try:
        t.start()
        back = nstest.recv_exact(s, MIB)
        t.join(10)
        check(not err, f"send: {err}")
    finally:
        s.close()
    nstest.expect_bytes(back, data, f"1 MiB echo via {host}")
    log(f"1 MiB echo via {host}: every byte identical ({time.monotonic() - t0:.2f} s)")


def test():
    nstest.require_tools("ping", "curl")
    with nstest.Netns() as ns:
        _, stack_dev = ns.add_veth()
        sock = ns.packet_socket(stack_dev)
        ident = "nstest-fd"
        st = ns.start_stack(["tcp:80:http", "tcp:7:echo"], ident=ident, fd_sock=sock)
        # Our copy of the socket stays open (never read) only to read the
        # kernel's drop counter at the end; the namespace's cleanup closes it.
        ns.ping(STACK4)
        ns.ping(STACK6)
        for url in (f"http://{STACK4}/", f"http://[{STACK6}]/"):
            t0 = time.monotonic()
            r = ns.curl(url)
            dt = time.monotonic() - t0
            check(r.returncode == 0, f"curl {url} exited {r.returncode}: {r.stderr.strip()}")
            check(r.stdout == f"netstack {ident}\n", f"curl {url}: body {r.stdout!r}")
            log(f"curl {url} -> {r.stdout!r} ({dt:.2f} s)")
        echo_mib(ns, STACK4)
        echo_mib(ns, STACK6)
        check(st.alive(), "netstack died\n" + st.output())
        frames, drops = nstest.packet_stats(sock)
        # Linux counts the dropped frames in tp_packets too.
        log(f"AF_PACKET socket: {frames} frames for the stack, {drops} of them dropped "
            f"by the kernel (socket receive buffer full)")
        # The fd endpoint grows socket buffers to hold a full 1 MiB window;
        # with the kernel's default some 15% of these frames were dropped.
        check(drops == 0, f"the kernel dropped {drops} frames: the fd endpoint's "
              f"socket buffer is too small")


if __name__ == "__main__":
    nstest.main(test, timeout=50)
