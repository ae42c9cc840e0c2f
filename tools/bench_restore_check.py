#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench_restore_check.py - ctest's check of netstack-bench's restore scenario.

Runs `netstack-bench restore --quick --repeat 2 --json` (64 MiB, every
mode twice) and checks that every stdout line is one well-formed JSON
object, that every mode produced a row of two runs with sane figures (the
first response after the restore, its worst not under its median, the
same data loaded by every mode) and that the ceiling line is there. Then
that a bad --repeat is refused with one line and exit status 2. Speed
targets are not checked: they are reported, not unit-tested. Exit 77
(skip) when not root, like the other integration tests: demand paging needs
userfaultfd, which unprivileged users may not have.
"""
import json
import os
import subprocess
import sys

MODES = {
    "fg io_uring", "fg io_uring 1 thr", "fg threads", "bg io_uring", "bg threads",
    "bg io_uring uffd", "fg map", "bg map", "fg io_uring direct", "fg threads direct",
}
RUNS = 2


def fail(msg):
    print(msg)
    return 1


def main():
    bench = sys.argv[1]
    if os.geteuid() != 0:
        print("skipped: needs root")
        return 77
    run = subprocess.run([bench, "restore", "--quick", "--repeat", str(RUNS), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         timeout=280)
    if run.returncode != 0:
        return fail(f"netstack-bench restore exited {run.returncode}: {run.stderr}")
    rows, ceiling, data = {}, None, set()
    for line in run.stdout.splitlines():
        m = json.loads(line)
        if m.get("scenario") != "restore" or m.get("memory_mib") != 64:
            return fail(f"not a 64 MiB restore line: {line}")
        if m["mode"] == "ceiling":
            ceiling = m
            continue
        if m["mode"] in rows:
            return fail(f"mode {m['mode']} twice")
        rows[m["mode"]] = m
        if m["runs"] != RUNS:
            return fail(f"{m['runs']} runs, not {RUNS}: {line}")
        if not 0 < m["restore_ms"] <= m["first_response_ms"] <= m["first_response_worst_ms"]:
            return fail(f"want 0 < restore <= first response <= its worst: {line}")
        if m["load_ms"] <= 0 or m["load_mib_s"] <= 0 or m["data_bytes"] <= 0:
            return fail(f"nothing loaded: {line}")
        if m["background"] != m["mode"].startswith("bg"):
            return fail(f"background flag wrong: {line}")
        data.add(m["data_bytes"])
    if set(rows) != MODES:
        return fail(f"modes {sorted(set(rows) ^ MODES)} missing or unknown")
    if len(data) != 1:
        return fail(f"the modes loaded different amounts: {sorted(data)}")
    if ceiling is None or ceiling["fresh_read_mib_s"] <= 0:
        return fail("no ceiling line")
    # The verdict counts restores as they ran: 4 background modes x RUNS.
    nbg = sum(1 for m in MODES if m.startswith("bg")) * RUNS
    if f" of {nbg} under " not in run.stderr:
        return fail(f"the verdict does not count {nbg} background restores: {run.stderr}")
    for bad in ("0", "101", "3x", ""):
        r = subprocess.run([bench, "restore", "--quick", "--repeat", bad],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=30)
        if r.returncode != 2 or r.stdout or len(r.stderr.splitlines()) != 1 \
                or "--repeat" not in r.stderr:
            return fail(f"--repeat '{bad}': exit {r.returncode}, stderr {r.stderr!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
