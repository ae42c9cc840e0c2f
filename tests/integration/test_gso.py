#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Transmit GSO through the TAP, cut by the kernel on a 1500-MTU path.

netstack runs on a TAP (MTU 1500) in namespace A and coalesces its TCP
segments into GSO frames; A forwards them over a veth with TSO and GSO off,
so the kernel must cut every frame into MTU-sized segments in software, to
namespace B, whose end has receive checksum offload off, so B's kernel
verifies every segment's checksum itself. A client in B reads 32 MiB of
tcp:19:chargen over IPv4 and over IPv6 and checks them by sha256; a packet
socket in B sees every frame no larger than 1514 bytes, and A's TAP counts
far fewer frames than B's segments (the frames were coalesced: if not,
this fails)."""

import hashlib
import os
import socket
import threading
import time

import nstest
from nstest import HOST4, HOST6, STACK4, STACK6, check, log

MIB = 1 << 20
BIG = 32 * MIB
CHARGEN = 19
B4, A4 = "203.0.113.2", "203.0.113.1"
# B's IPv6 link lies inside the stack's on-link fd42:5::/64, so A answers
# neighbour solicitations for B's address on the TAP (proxy NDP).
B6, A6 = "fd42:5::b:2", "fd42:5::b:1"


def netns(tag):
    ns = nstest.Netns()
    ns.name = f"h6a-{os.getpid()}-{tag}"
    return ns


def counter(ns, dev, what):
    r = ns.run(["cat", f"/sys/class/net/{dev}/statistics/{what}"], check_rc=True)
    return int(r.stdout)


class Capture:
    """Frames arriving on B's veth from the stack's chargen: how many
    carry data, and the longest."""

    def __init__(self, sock):
        self.sock = sock
        self.data_frames = 0
        self.longest = 0
        self.stop = False
        sock.settimeout(0.2)
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                f = self.sock.recv(70000)
            except socket.timeout:
                continue
            except OSError:
                return
            self.longest = max(self.longest, len(f))
            et = int.from_bytes(f[12:14], "big")
            if et == 0x0800 and len(f) > 34 and f[23] == 6:
                l4 = 14 + (f[14] & 15) * 4
            elif et == 0x86DD and len(f) > 54 and f[20] == 6:
                l4 = 54
            else:
                continue
            sport = int.from_bytes(f[l4:l4 + 2], "big")
            if sport == CHARGEN and len(f) > l4 + (f[l4 + 12] >> 4) * 4:
                self.data_frames += 1

    def close(self):
        self.stop = True
        self.t.join(2)


def chargen(b, host):
    s = b.connect(host, CHARGEN, timeout=10)
    h = hashlib.sha256()
    got, first = 0, None
    t0 = time.monotonic()
    try:
        while got < BIG:
            chunk = s.recv(min(1 << 20, BIG - got))
            check(chunk, f"chargen via {host}: EOF after {got} bytes")
            if first is None:
                first = chunk[0]
            h.update(chunk)
            got += len(chunk)
    finally:
        s.close()
    dt = time.monotonic() - t0
    want = nstest.chargen_sha256(BIG, first)
    check(h.hexdigest() == want, f"chargen via {host}: sha256 {h.hexdigest()} != {want}")
    log(f"chargen {BIG // MIB} MiB via {host}: sha256 matches "
        f"({nstest.mib_per_s(BIG, dt):.0f} MiB/s)")


def test():
    with netns("a") as a, netns("b") as b:
        tap = a.add_tap("h6a-tap")
        a.ip("link", "set", tap, "mtu", "1500")
        a.ip("link", "add", "h6a-va", "type", "veth", "peer", "name", "h6a-vb",
             "netns", b.name)
        a.ip("addr", "add", f"{A4}/24", "dev", "h6a-va")
        a.ip("-6", "addr", "add", f"{A6}/112", "dev", "h6a-va", "nodad")
        b.ip("addr", "add", f"{B4}/24", "dev", "h6a-vb")
        b.ip("-6", "addr", "add", f"{B6}/112", "dev", "h6a-vb", "nodad")
        # A cuts in software on the way out; B checks every checksum.
        nstest.offloads_off(a, "h6a-va")
        nstest.offloads_off(b, "h6a-vb")
        a.ip("link", "set", "h6a-va", "up")
        b.ip("link", "set", "h6a-vb", "up")
        b.ip("route", "add", "default", "via", A4)
        b.ip("-6", "route", "add", "fd42:5::/64", "via", A6)
        a.sysctl("net.ipv4.ip_forward", 1)
        a.sysctl("net.ipv6.conf.all.forwarding", 1)
        a.sysctl(f"net.ipv6.conf.{tap}.proxy_ndp", 1)
        a.ip("-6", "neigh", "add", "proxy", B6, "dev", tap)

        st = a.start_stack([f"tcp:{CHARGEN}:chargen"], ident=f"h6a-gso{os.getpid()}", tap=tap,
                           extra=["--gateway", HOST4, "--gateway", HOST6])
        cap = Capture(b.packet_socket("h6a-vb"))
        try:
            tap_before = counter(a, tap, "rx_packets")
            b_before = counter(b, "h6a-vb", "rx_packets")
            chargen(b, STACK4)
            chargen(b, STACK6)
            tap_frames = counter(a, tap, "rx_packets") - tap_before
            b_frames = counter(b, "h6a-vb", "rx_packets") - b_before
        finally:
            cap.close()
        check(st.alive(), "netstack died\n" + st.output())
        log(f"A's TAP took {tap_frames} frames from the stack, B's veth {b_frames}; "
            f"of them the capture in B saw {cap.data_frames} data segments, the "
            f"longest frame {cap.longest} bytes")
        # 64 MiB needs at least 64 MiB / 1448 = ~46,000 segments at MTU 1500;
        # coalesced frames carry up to 45 each. (The capture, in Python,
        # sees only some of B's frames: the kernel's counters count.)
        least = 2 * BIG // 1448
        check(cap.data_frames > 1000, f"only {cap.data_frames} data segments seen in B")
        check(cap.longest <= 1514, f"a frame of {cap.longest} bytes on a 1500-MTU path")
        check(b_frames >= least, f"B took {b_frames} frames for {2 * BIG} bytes")
        check(tap_frames * 4 < least,
              f"the TAP took {tap_frames} frames for {least}+ segments: "
              f"segments were not coalesced")


if __name__ == "__main__":
    nstest.main(test, timeout=60)
