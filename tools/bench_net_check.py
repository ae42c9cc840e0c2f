#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench_net_check.py - ctest's check of netstack-bench's network scenarios.

Runs `netstack-bench net --quick --json --plot FILE` once and checks that
every stdout line is one well-formed JSON object with the fields issue #6
names, that every peer (kernel, netstack, pasta, slirp4netns) produced a
figure for every case, and that the plot was drawn. Speed targets are not
checked: they are reported, not unit-tested. Exit 77 (skip) without root or
/dev/net/tun, as the harness itself does.
"""
import json
import os
import subprocess
import sys
import tempfile

PEERS = {"kernel", "netstack", "pasta", "slirp4netns"}
FIGURES = {
    "stream": "gbps",
    "rr": "rtt_us_median",
    "crr": "conn_per_sec",
    "udp": "pps",
    "conns": "kib_per_conn",
}
CASES = {
    ("stream", "rx", "", 1500), ("stream", "tx", "", 1500),
    ("stream", "rx", "", 65520), ("stream", "tx", "", 65520),
    ("rr", "both", "pinned", 65520), ("rr", "both", "unpinned", 65520),
    ("crr", "both", "", 65520),
    ("udp", "rx", "64B", 65520), ("udp", "rx", "1400B", 65520),
    ("conns", "rx", "", 65520),
}


def main():
    bench = sys.argv[1]
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        print("skipped: needs root and /dev/net/tun")
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        png = os.path.join(tmp, "net.png")
        run = subprocess.run([bench, "net", "--quick", "--json", "--plot", png],
                             stdout=subprocess.PIPE, text=True, timeout=280)
        if run.returncode == 77:
            return 77
        if run.returncode != 0:
            print(f"netstack-bench exited {run.returncode}")
            return 1
        if not os.path.getsize(png):
            print("the plot is empty")
            return 1
    seen = {}
    for line in run.stdout.splitlines():
        m = json.loads(line)
        for field in ("scenario", "peer", "direction", "mtu", "ratio_to_kernel"):
            if field not in m:
                print(f"no {field} in {line}")
                return 1
        fig = FIGURES[m["scenario"]]
        if not isinstance(m.get(fig), (int, float)) or m[fig] < 0:
            print(f"no figure {fig} in {line}")
            return 1
        if m["scenario"] in ("stream", "crr", "udp", "rr") and m[fig] <= 0:
            print(f"zero {fig} in {line}")
            return 1
        case = (m["scenario"], m["direction"], m["variant"], m["mtu"])
        seen.setdefault(case, set()).add(m["peer"])
    ok = True
    for case in sorted(CASES):
        missing = PEERS - seen.get(case, set())
        if missing:
            print(f"{case}: no figure from {', '.join(sorted(missing))}")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
