#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Deleting the TAP under a running stack: netstack keeps running, says on
stderr that the link went down, and still exits cleanly on SIGTERM."""

import re
import signal
import time

import nstest
from nstest import STACK4, check, log

# "link down", "tap0: NIC gone", "device removed", ... on one line.
LINK_WORD = re.compile(r"\b(link|nic|tap0|tap|device|interface|netif)\b", re.I)
DOWN_WORD = re.compile(r"\b(down|gone|removed|deleted|vanished|lost|disappeared)\b", re.I)


def test():
    nstest.require_tools("curl")
    with nstest.Netns() as ns:
        ns.add_tap("tap0")
        ident = "nstest-tapdel"
        st = ns.start_stack(["tcp:80:http"], ident=ident, tap="tap0")
        r = ns.curl(f"http://{STACK4}/")
        check(r.returncode == 0 and r.stdout == f"netstack {ident}\n",
              f"curl before deleting the TAP: exit {r.returncode} body {r.stdout!r} "
              f"{r.stderr.strip()}")
        log("curl works; deleting tap0")
        ns.ip("link", "del", "tap0")
        time.sleep(1)
        check(st.alive(), f"netstack exited ({st.proc.returncode}) after the TAP "
                          f"was deleted\n{st.output()}")
        # A little grace for the log line to reach us through the pipe.
        deadline = time.monotonic() + 2
        while True:
            lines = [l for l in st.err_lines if LINK_WORD.search(l) and DOWN_WORD.search(l)]
            if lines or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        check(lines, "no stderr line about the link going down\n" + st.output())
        log(f"still running; stderr says: {lines[0]!r}")
        rc = st.stop(signal.SIGTERM, timeout=5)
        if rc < 0:
            raise nstest.Failure(f"netstack died by {signal.Signals(-rc).name} on SIGTERM "
                                 f"after losing its TAP\n{st.output()}")
        if rc != 0:
            log(f"WARNING: exit status {rc} on SIGTERM (want 0)\n{st.output()}")
        else:
            log("SIGTERM: exit 0")


if __name__ == "__main__":
    nstest.main(test, timeout=40)
