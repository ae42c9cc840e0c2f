#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The TAP deleted under load: while kernel clients pull bulk data from the
stack's chargen service and push it into its discard service through tap0,
the TAP is deleted, so the stack's reads and writes on its fd fail mid-burst.
The NIC must go down with exactly one log line; the daemon keeps running
without spinning on the dead fd; its control socket still answers `netstack
state` with the NIC's link down and every listener still there; and SIGTERM
still exits 0. (test_tap_deleted.py is the same loss with an idle stack.)

Then the same loss on a stack with two NICs (tests/two_nics, on the public
API: the CLI runs one NIC): with bulk flows through both TAPs, tap0 is
deleted; the flows through tap1 must keep moving, a new connection through
tap1 must echo, and SIGTERM must still exit 0."""

import json
import os
import re
import signal
import threading
import time

import nstest
from nstest import STACK4, check, log

CHARGEN, DISCARD, HTTP = 19, 9, 80
LOAD_BYTES = 32 << 20      # flowed before the TAP goes, so it goes under load
IDLE_CPU_MAX = 0.10        # CPU share of the daemon after the loss (no busy loop)
LINK_DOWN = re.compile(r"\blink down\b", re.I)


class Flow(threading.Thread):
    """One bulk TCP stream with the stack: pull from chargen or push to
    discard, counting bytes, until the connection fails or stop is set."""

    def __init__(self, ns, port, push, host=STACK4):
        super().__init__(daemon=True)
        self.ns, self.port, self.push, self.host = ns, port, push, host
        self.bytes = 0
        self.error = None
        self.stop = threading.Event()

    def run(self):
        try:
            s = self.ns.connect(self.host, self.port, timeout=3.0)
        except OSError as e:
            self.error = f"connect: {e}"
            return
        chunk = b"x" * 65536
        try:
            while not self.stop.is_set():
                n = s.send(chunk) if self.push else len(s.recv(65536))
                if n == 0:
                    self.error = "EOF"
                    break
                self.bytes += n
        except OSError as e:
            self.error = str(e) or type(e).__name__
        finally:
            s.close()


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    clk = nstest.os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / clk   # utime + stime


def state(ns, ident):
    r = ns.run([nstest.netstack_bin(), "state", ident], timeout=10)
    check(r.returncode == 0, f"`netstack state` exited {r.returncode}: {r.stderr.strip()}")
    try:
        return json.loads(r.stdout)
    except ValueError as e:
        raise nstest.Failure(f"`netstack state` printed invalid JSON ({e}):\n{r.stdout}")


def test():
    one_nic()
    second_nic()


def one_nic():
    with nstest.Netns() as ns:
        ns.add_tap("tap0")
        ident = f"nstest-taploss-{nstest.os.getpid()}"
        st = ns.start_stack([f"tcp:{CHARGEN}:chargen", f"tcp:{DISCARD}:discard",
                             f"tcp:{HTTP}:http"], ident=ident, tap="tap0")
        pid = nstest.netstack_pid(ns)
        before = state(ns, ident)
        listeners = sorted(l.get("service") for l in before.get("listeners", []))
        check(len(listeners) == 3, f"3 listeners before the loss, state says {listeners}")

        flows = [Flow(ns, CHARGEN, False), Flow(ns, CHARGEN, False), Flow(ns, DISCARD, True)]
        for f in flows:
            f.start()
        t0 = time.monotonic()
        while sum(f.bytes for f in flows) < LOAD_BYTES:
            check(time.monotonic() - t0 < 20, "the bulk flows moved only "
                  f"{sum(f.bytes for f in flows)} bytes in 20 s: "
                  f"{[f.error for f in flows]}\n{st.output()}")
            check(all(f.error is None for f in flows),
                  f"a flow failed before the loss: {[f.error for f in flows]}")
            time.sleep(0.02)
        moved = [f.bytes for f in flows]
        rate = sum(moved) / (time.monotonic() - t0) / (1 << 20)
        log(f"under load: {moved} bytes ({rate:.0f} MiB/s); deleting tap0")
        ns.ip("link", "del", "tap0")
        time.sleep(1)
        after_loss = [f.bytes for f in flows]
        check(st.alive(), f"netstack exited ({st.state()}) when its TAP went under load\n"
                          f"{st.output()}")

        deadline = time.monotonic() + 2
        while not [l for l in st.err_lines if LINK_DOWN.search(l)] and time.monotonic() < deadline:
            time.sleep(0.1)
        down = [l for l in st.err_lines if LINK_DOWN.search(l)]
        check(len(down) == 1, f"want one 'link down' line, got {len(down)}\n{st.output()}")
        check("tap0" in down[0], f"the link-down line does not name the TAP: {down[0]!r}")
        log(f"stderr: {down[0]!r}")

        # Not spinning on the dead fd: the daemon idles once the NIC is down.
        c0, w0 = proc_cpu_seconds(pid), time.monotonic()
        time.sleep(2)
        share = (proc_cpu_seconds(pid) - c0) / (time.monotonic() - w0)
        log(f"CPU after the loss: {share * 100:.1f}%")
        check(share < IDLE_CPU_MAX, f"netstack uses {share * 100:.0f}% CPU after losing its "
                                    f"TAP (limit {IDLE_CPU_MAX * 100:.0f}%)")

        # The control socket answers, the NIC shows its link down, the
        # listeners are all still there.
        s = state(ns, ident)
        check(s.get("status") == "running", f"state: status {s.get('status')!r}")
        nics = s.get("nics", [])
        check(len(nics) == 1 and nics[0].get("link_up") is False,
              f"state: want the one NIC with link_up false, got {nics}")
        still = sorted(l.get("service") for l in s.get("listeners", []))
        check(still == listeners, f"listeners before {listeners}, after {still}")
        log(f"state answers: nic link_up false, listeners {still}, "
            f"counters {json.dumps(s.get('counters', {}))[:200]}")

        for f in flows:
            f.stop.set()
        for f in flows:
            f.join(5)
        log(f"flows after the loss: {[f.bytes - a for f, a in zip(flows, after_loss)]} more "
            f"bytes, ended with {[f.error for f in flows]}")

        rc = st.stop(signal.SIGTERM, timeout=5)
        check(rc == 0, f"SIGTERM after losing the TAP under load: exit {rc}\n{st.output()}")
        log("SIGTERM: exit 0")


# The second NIC's subnet; the first is nstest's (198.51.100.0/24).
HOST4_B, STACK4_B = "203.0.113.1", "203.0.113.2"
ECHO = 7
KEEPS_MOVING_S = 1.0       # how long the flows through tap1 are watched after the loss


def two_nics_bin():
    """tests/two_nics beside the build's tools/netstack."""
    build = os.path.dirname(os.path.dirname(os.path.abspath(nstest.netstack_bin())))
    path = os.path.join(build, "tests", "two_nics")
    check(os.access(path, os.X_OK), f"{path} not built")
    return path


def wait_moved(flows, nbytes, what, st):
    t0, start = time.monotonic(), [f.bytes for f in flows]
    while min(f.bytes - b for f, b in zip(flows, start)) < nbytes:
        check(all(f.error is None for f in flows), f"{what}: a flow failed: "
              f"{[f.error for f in flows]}\n{st.output()}")
        check(time.monotonic() - t0 < 20, f"{what}: flows moved "
              f"{[f.bytes - b for f, b in zip(flows, start)]} bytes in 20 s\n{st.output()}")
        time.sleep(0.02)


def second_nic():
    with nstest.Netns() as ns:
        ns.add_tap("tap0")
        ns.ip("tuntap", "add", "dev", "tap1", "mode", "tap")
        ns.ip("addr", "add", f"{HOST4_B}/24", "dev", "tap1")
        ns.ip("link", "set", "tap1", "up")
        argv = [two_nics_bin(), "tap0", f"{STACK4}/24", "tap1", f"{STACK4_B}/24"]
        log("start: " + " ".join(argv))
        p = ns.popen(argv, stdout=nstest.subprocess.PIPE, stderr=nstest.subprocess.PIPE)
        st = nstest.Stack(p, "two_nics", argv)
        ns.stacks.append(st)
        st.wait_running(10)

        a = [Flow(ns, CHARGEN, False, STACK4), Flow(ns, DISCARD, True, STACK4)]
        b = [Flow(ns, CHARGEN, False, STACK4_B), Flow(ns, DISCARD, True, STACK4_B)]
        for f in a + b:
            f.start()
        wait_moved(a + b, 4 << 20, "before the loss", st)
        log(f"under load through both NICs: {[f.bytes for f in a + b]} bytes; deleting tap0")
        ns.ip("link", "del", "tap0")
        time.sleep(0.5)
        check(st.alive(), f"two_nics exited when tap0 went\n{st.output()}")
        down = [l for l in st.err_lines if LINK_DOWN.search(l)]
        check(len(down) == 1 and "tap0" in down[0], f"want one 'link down' line for tap0\n{st.output()}")

        # Through tap1 the flows go on, and a new connection is served.
        t0 = time.monotonic()
        wait_moved(b, 1 << 20, "through tap1 after the loss", st)
        rate = sum(f.bytes for f in b)
        time.sleep(KEEPS_MOVING_S)
        rate = (sum(f.bytes for f in b) - rate) / KEEPS_MOVING_S / (1 << 20)
        log(f"through tap1 after the loss: moving again within {time.monotonic() - t0 - KEEPS_MOVING_S:.2f} s, "
            f"{rate:.0f} MiB/s; tap0 flows ended with {[f.error for f in a]}")
        check(all(f.error is None for f in b), f"a flow through tap1 failed: {[f.error for f in b]}")
        s = ns.connect(STACK4_B, ECHO, timeout=3.0)
        try:
            s.sendall(b"still here")
            got = s.recv(64)
        finally:
            s.close()
        check(got == b"still here", f"echo through tap1 after the loss: {got!r}")
        log("a new connection through tap1 echoes")

        for f in a + b:
            f.stop.set()
        for f in a + b:
            f.join(5)
        rc = st.stop(signal.SIGTERM, timeout=5)
        check(rc == 0, f"SIGTERM after losing tap0: exit {rc}\n{st.output()}")
        log("SIGTERM: exit 0")


if __name__ == "__main__":
    nstest.main(test, timeout=100)
