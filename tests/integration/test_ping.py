#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ICMP echo: the kernel pings netstack over a TAP, on IPv4 and IPv6."""

import nstest
from nstest import STACK4, STACK6


def test():
    nstest.require_tools("ping")
    with nstest.Netns() as ns:
        ns.add_tap("tap0")
        st = ns.start_stack(["tcp:80:http"], tap="tap0")
        ns.ping(STACK4, count=3)
        ns.ping(STACK6, count=3)
        nstest.check(st.alive(), "netstack died\n" + st.output())


if __name__ == "__main__":
    nstest.main(test, timeout=50)
