#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""udp:7:echo over IPv4 and IPv6: 100 datagrams of sizes 1..1400, each
echoed back identically from the stack's address and port. A lost datagram
is retried (UDP may drop); a wrong or corrupted one fails the test."""

import os
import random
import socket
import time

import nstest
from nstest import STACK4, STACK6

COUNT = 100
TRIES = 3
WAIT = 1.0  # seconds per try


def sizes():
    rnd = random.Random(864)
    fixed = [1, 2, 3, 7, 8, 64, 512, 1024, 1280, 1399, 1400]
    return fixed + [rnd.randint(1, 1400) for _ in range(COUNT - len(fixed))]


def echo_all(ns, host, port=7):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = ns.socket(family, socket.SOCK_DGRAM)
    s.settimeout(WAIT)
    s.connect((host, port))  # replies from anywhere else are filtered out
    sent = set()
    retries = stale = 0
    t0 = time.monotonic()
    try:
        for i, n in enumerate(sizes()):
            payload = os.urandom(n)
            sent.add(payload)
            for attempt in range(TRIES):
                s.send(payload)
                deadline = time.monotonic() + WAIT
                got = None
                while time.monotonic() < deadline:
                    s.settimeout(max(deadline - time.monotonic(), 0.01))
                    try:
                        data, peer = s.recvfrom(2048)
                    except socket.timeout:
                        break
                    nstest.check(peer[0] == host and peer[1] == port,
                                 f"reply from {peer}, want {host}:{port}")
                    if data == payload:
                        got = data
                        break
                    if data in sent:  # a late echo of an earlier retry
                        stale += 1
                        continue
                    raise nstest.Failure(
                        f"datagram {i} ({n} bytes): got {len(data)} bytes that "
                        f"match nothing sent: {data[:32]!r}...")
                if got is not None:
                    break
                retries += 1
                nstest.log(f"{host}: datagram {i} ({n} bytes) not echoed "
                           f"within {WAIT} s (try {attempt + 1}/{TRIES})")
            else:
                raise nstest.Failure(f"{host}: datagram {i} ({n} bytes) never "
                                     f"echoed in {TRIES} tries")
    finally:
        s.close()
    dt = time.monotonic() - t0
    nstest.log(f"{host}: {COUNT} datagrams (1..1400 bytes) echoed identically "
               f"in {dt:.2f} s, {retries} retries, {stale} late duplicates")


def test():
    with nstest.Netns() as ns:
        ns.add_tap("tap0")
        st = ns.start_stack(["udp:7:echo"], tap="tap0")
        echo_all(ns, STACK4)
        echo_all(ns, STACK6)
        nstest.check(st.alive(), "netstack died\n" + st.output())


if __name__ == "__main__":
    nstest.main(test, timeout=50)
