#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A SYN to a closed port is answered with RST: the kernel client sees
ConnectionRefusedError at once, on IPv4 and IPv6 (not a timeout)."""

import socket
import time

import nstest
from nstest import STACK4, STACK6

CLOSED_PORT = 9
QUICK = 2.0  # seconds; a dropped SYN would take >= 1 s to even retransmit


def refused(ns, host):
    # The first SYN may wait on ARP / neighbour discovery; warm that up with
    # the open port so the measured time is the RST's alone.
    ns.connect(host, 80, timeout=5).close()
    t0 = time.monotonic()
    try:
        s = ns.connect(host, CLOSED_PORT, timeout=5)
    except ConnectionRefusedError:
        dt = time.monotonic() - t0
        nstest.log(f"{host}:{CLOSED_PORT} refused in {dt * 1000:.1f} ms")
        nstest.check(dt < QUICK, f"refusal took {dt:.2f} s, want < {QUICK} s")
        return
    except socket.timeout:
        raise nstest.Failure(f"connect to {host}:{CLOSED_PORT} timed out: no RST")
    s.close()
    raise nstest.Failure(f"connect to closed port {host}:{CLOSED_PORT} succeeded")


def test():
    with nstest.Netns() as ns:
        ns.add_tap("tap0")
        st = ns.start_stack(["tcp:80:http"], tap="tap0")
        refused(ns, STACK4)
        refused(ns, STACK6)
        # Again, now that the neighbour entries are warm and the stack has
        # seen a refused connection: still RST, still quick.
        refused(ns, STACK4)
        refused(ns, STACK6)
        nstest.check(st.alive(), "netstack died\n" + st.output())


if __name__ == "__main__":
    nstest.main(test, timeout=50)
