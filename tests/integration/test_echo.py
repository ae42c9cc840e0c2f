#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""TCP data integrity and throughput through a TAP, the kernel as the peer:
100 concurrent connections each echo 64 KiB of distinct random bytes (every
byte checked); 256 MiB kernel -> netstack -> kernel through tcp:7:echo and
256 MiB netstack -> kernel from tcp:19:chargen (RFC 864), both checked by
sha256; a short tcp:9:discard check. Throughput is printed."""

import hashlib
import os
import random
import selectors
import socket
import threading
import time

import nstest
from nstest import STACK4, Failure, check, log, mib_per_s

MIB = 1 << 20
CONNS = 100
PER_CONN = 64 * 1024
BIG = 256 * MIB
ECHO_PORT, DISCARD_PORT, CHARGEN_PORT = 7, 9, 19


class Conn:
    def __init__(self, i, sock, data):
        self.i = i
        self.sock = sock
        self.data = data
        self.sent = 0
        self.recv = bytearray()
        self.connected = False


def many_echoes(ns, host, budget=10.0):
    """CONNS connections at once, driven by one selector loop so no
    connection's send can wait on another's receive."""
    sel = selectors.DefaultSelector()
    conns = []
    t0 = time.monotonic()
    deadline = t0 + budget
    try:
        for i in range(CONNS):
            s = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex((host, ECHO_PORT))
            check(rc in (0, 115), f"connection {i}: connect: {os.strerror(rc)}")  # EINPROGRESS
            c = Conn(i, s, os.urandom(PER_CONN))
            conns.append(c)
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        pending = CONNS
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                stuck = [c for c in conns if len(c.recv) < PER_CONN]
                raise Failure(
                    f"{len(stuck)} of {CONNS} connections unfinished after {budget} s; "
                    "e.g. " + ", ".join(f"#{c.i} connected={c.connected} sent={c.sent} "
                                        f"recv={len(c.recv)}" for c in stuck[:5]))
            for key, ev in sel.select(min(left, 1.0)):
                c = key.data
                if not c.connected:
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    check(err == 0, f"connection {c.i}: connect failed: {os.strerror(err)}")
                    c.connected = True
                if ev & selectors.EVENT_WRITE and c.sent < PER_CONN:
                    try:
                        c.sent += c.sock.send(c.data[c.sent:c.sent + 16384])
                    except BlockingIOError:
                        pass
                    if c.sent == PER_CONN:
                        sel.modify(c.sock, selectors.EVENT_READ, c)
                if ev & selectors.EVENT_READ:
                    try:
                        chunk = c.sock.recv(65536)
                    except BlockingIOError:
                        continue
                    except ConnectionError as e:
                        raise Failure(f"connection {c.i}: {e} after sent={c.sent} "
                                      f"recv={len(c.recv)}")
                    if not chunk:
                        raise Failure(f"connection {c.i}: EOF after sent={c.sent} "
                                      f"recv={len(c.recv)}")
                    c.recv += chunk
                    check(len(c.recv) <= PER_CONN,
                          f"connection {c.i}: {len(c.recv)} bytes back, sent {PER_CONN}")
                    if len(c.recv) == PER_CONN:
                        nstest.expect_bytes(bytes(c.recv), c.data, f"connection {c.i}")
                        sel.unregister(c.sock)
                        pending -= 1
    finally:
        sel.close()
        for c in conns:
            c.sock.close()
    dt = time.monotonic() - t0
    total = CONNS * PER_CONN
    log(f"{CONNS} concurrent connections x {PER_CONN // 1024} KiB echoed, every byte "
        f"identical, in {dt:.2f} s ({mib_per_s(2 * total, dt):.1f} MiB/s both ways)")


def big_echo(ns, host, budget=20.0):
    """BIG bytes of random data out and back through one echo connection,
    a sender and a receiver thread each hashing what passes: sha256 of the
    whole stream, and of each MiB to say where a difference starts."""
    s = ns.connect(host, ECHO_PORT, timeout=10)
    out_hash, in_hash = hashlib.sha256(), hashlib.sha256()
    out_blocks, in_blocks = [], []
    state = {"sent": 0, "recv": 0, "err": []}
    pool = os.urandom(16 * MIB)
    rnd = random.Random(7)

    def sender():
        try:
            while state["sent"] < BIG:
                off = rnd.randrange(len(pool) - MIB)
                block = pool[off:off + MIB]  # BIG is a whole number of MiB
                out_hash.update(block)
                out_blocks.append(hashlib.sha256(block).digest())
                s.sendall(block)
                state["sent"] += len(block)
        except Exception as e:  # noqa: BLE001
            state["err"].append(f"sender: {type(e).__name__}: {e}")

    def receiver():
        buf = bytearray(MIB)
        view = memoryview(buf)
        try:
            while state["recv"] < BIG:
                filled = 0
                while filled < MIB:
                    k = s.recv_into(view[filled:], MIB - filled)
                    if k == 0:
                        state["err"].append(f"receiver: EOF after {state['recv'] + filled} bytes")
                        return
                    filled += k
                in_hash.update(view)
                in_blocks.append(hashlib.sha256(view).digest())
                state["recv"] += MIB
        except Exception as e:  # noqa: BLE001
            state["err"].append(f"receiver: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=f, daemon=True) for f in (sender, receiver)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join(max(t0 + budget - time.monotonic(), 0))
        dt = time.monotonic() - t0
        if any(t.is_alive() for t in threads):
            raise Failure(f"256 MiB echo unfinished after {budget} s: sent "
                          f"{state['sent']} recv {state['recv']} "
                          f"({mib_per_s(state['recv'], dt):.1f} MiB/s) {state['err']}")
        check(not state["err"], f"256 MiB echo: {state['err']} after sending "
                                f"{state['sent']} and receiving {state['recv']} bytes "
                                f"in {dt:.1f} s")
        check(state["recv"] == BIG, f"echo returned {state['recv']} of {BIG} bytes")
        a, b = out_hash.hexdigest(), in_hash.hexdigest()
        if a != b:
            bad = next(i for i, (x, y) in enumerate(zip(out_blocks, in_blocks)) if x != y)
            raise Failure(f"256 MiB echo: sha256 sent {a} != received {b}; "
                          f"first differing MiB is #{bad} (bytes {bad * MIB}..{(bad + 1) * MIB})")
        log(f"echo 256 MiB kernel->netstack->kernel: sha256 {a} both ways, "
            f"{dt:.2f} s, {mib_per_s(BIG, dt):.1f} MiB/s")
        # Half-close: a well-behaved echo answers our FIN with its own.
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        try:
            rest = s.recv(1)
            if rest:
                raise Failure(f"echo sent {rest!r} beyond the bytes it was given")
            log("echo closed its side after our FIN")
        except socket.timeout:
            log("WARNING: echo did not close within 5 s of our FIN")
    finally:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def big_chargen(ns, host, budget=15.0):
    """Read exactly BIG bytes of chargen, compare chunk by chunk with the
    RFC 864 pattern and by sha256 with the same stream generated here."""
    s = ns.connect(host, CHARGEN_PORT, timeout=5)
    try:
        buf = bytearray(MIB)
        view = memoryview(buf)
        h = hashlib.sha256()
        got = 0
        ref = None
        t0 = time.monotonic()
        deadline = t0 + budget
        while got < BIG:
            if time.monotonic() > deadline:
                raise Failure(f"chargen: {got} of {BIG} bytes after {budget} s "
                              f"({mib_per_s(got, budget):.1f} MiB/s)")
            try:
                k = s.recv_into(view, min(MIB, BIG - got))
            except socket.timeout:
                raise Failure(f"chargen: read timed out after {got} bytes")
            if k == 0:
                raise Failure(f"chargen: EOF after {got} bytes")
            if ref is None:
                first = buf[0]
                check(32 <= first <= 126, f"chargen: first byte {first} is not printable")
                period = nstest.chargen_lines(first)
                ref = period * (2 * MIB // len(period) + 2)
                plen = len(period)
            chunk = bytes(view[:k])
            o = got % plen
            if chunk != ref[o:o + k]:
                i = nstest.first_difference(chunk, ref[o:o + k])
                raise Failure(f"chargen: byte {got + i} differs from the RFC 864 pattern: "
                              f"got {chunk[i:i + 24]!r} want {ref[o + i:o + i + 24]!r}")
            h.update(chunk)
            got += k
        dt = time.monotonic() - t0
    finally:
        s.close()
    want = nstest.chargen_sha256(BIG, first)
    check(h.hexdigest() == want, f"chargen sha256 {h.hexdigest()} != generated {want}")
    log(f"chargen 256 MiB netstack->kernel (lines start at {chr(first)!r}): sha256 "
        f"{want} matches the local RFC 864 stream, {dt:.2f} s, "
        f"{mib_per_s(BIG, dt):.1f} MiB/s")


def discard(ns, host, n=16 * MIB):
    s = ns.connect(host, DISCARD_PORT, timeout=5)
    try:
        t0 = time.monotonic()
        s.sendall(os.urandom(n))
        s.shutdown(socket.SHUT_WR)
        s.settimeout(3)
        try:
            back = s.recv(4096)
        except socket.timeout:
            back = None
        dt = time.monotonic() - t0
        check(not back, f"discard sent data back: {back[:32]!r}")
        log(f"discard: {n // MIB} MiB sent, nothing came back "
            f"({'closed' if back == b'' else 'no close within 3 s'}), {dt:.2f} s")
    finally:
        s.close()


def test():
    with nstest.Netns() as ns:
        ns.add_tap("tap0")
        st = ns.start_stack([f"tcp:{ECHO_PORT}:echo", f"tcp:{DISCARD_PORT}:discard",
                             f"tcp:{CHARGEN_PORT}:chargen"], tap="tap0")
        # Each part runs even if an earlier one failed, so one report says
        # everything that is wrong.
        failed = []
        for part in (many_echoes, big_echo, big_chargen, discard):
            if not st.alive():
                failed.append(f"{part.__name__}: not run, netstack is gone ({st.state()})")
                continue
            try:
                part(ns, STACK4)
            except Failure as e:
                log(f"{part.__name__} FAILED: {e}")
                failed.append(f"{part.__name__}: {e}")
        check(not failed, f"{len(failed)} part(s) failed:\n  " + "\n  ".join(failed))
        check(st.alive(), "netstack died")


if __name__ == "__main__":
    nstest.main(test, timeout=58)
