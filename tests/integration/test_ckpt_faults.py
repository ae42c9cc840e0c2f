#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checkpoints that go wrong, through the CLI, with the kernel as the HTTP
peer on tap0:

 1. Full disk: the image directory is on a 16 MiB tmpfs and the daemon has
    64 MiB of memory (about 32 MiB of pages). `checkpoint --leave-running`
    fails with one line naming the lack of space; the daemon keeps serving
    (curl), the directory holds nothing that looks like an image (no
    state.pb, no temporary files), a restore from it is refused with one
    line, and a checkpoint to a roomy directory afterwards works.
 2. kill -9 of the daemon at many points of a checkpoint (a spread of delays
    after the request): every time, either the image is complete (state.pb
    there) and restores with the same memory digest, or there is no
    state.pb and a restore is refused with one line. Either way no
    temporary file is taken for an image.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time

import nstest
from nstest import STACK4, Failure, check, log
from test_checkpoint import Cli, one_line, read_log

IDENT = "nstest-faults"
KILL_DELAYS_MS = (0, 2, 5, 10, 20, 40, 80, 160, 320)


def curl_ok(ns, ident):
    r = ns.run(["curl", "-sS", "--max-time", "3", f"http://{STACK4}/"], timeout=10)
    check(r.returncode == 0 and r.stdout == f"netstack {ident}\n",
          f"curl: exit {r.returncode}, body {r.stdout!r}, {r.stderr.strip()}")


def start(cli, memory):
    cli.ok("run", "--detach", "--tap", "tap0", "--ip", f"{STACK4}/{nstest.PREFIX4}",
           "--service", "tcp:80:http", "--memory", memory, IDENT)
    return cli.state(IDENT)


def stop(cli):
    with contextlib.suppress(Exception):
        cli.run("delete", "--force", IDENT, timeout=15, quiet=True)


def looks_complete(path):
    """An image the CLI restores: the library's state.pb (renamed last of
    its files) and the daemon's config, written after it."""
    return all(os.path.exists(os.path.join(path, f)) for f in ("state.pb", "netstack-run.json"))


def test():
    nstest.require_tools("curl")
    tmp = tempfile.mkdtemp(prefix="nstest-faults-")
    logfile = os.path.join(tmp, "daemon.log")
    small = os.path.join(tmp, "small")
    os.mkdir(small)
    mounted = False
    try:
        with nstest.Netns() as ns:
            cli = Cli(ns, os.path.join(tmp, "root"), logfile)
            try:
                ns.add_tap("tap0")
                subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", small],
                               check=True, timeout=10)
                mounted = True
                full_disk(ns, cli, tmp, small)
                killed(ns, cli, tmp)
            except BaseException:
                log(f"daemon log ({logfile}):\n{read_log(logfile)}")
                raise
            finally:
                stop(cli)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", small], timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def full_disk(ns, cli, tmp, small):
    st = start(cli, "64M")
    pid = st["pid"]
    digest = st["memory"]["digest"]
    img = os.path.join(small, "img")
    r = cli.run("checkpoint", "--leave-running", "--image-path", img, IDENT, timeout=60)
    line = one_line(r, "checkpoint onto a full tmpfs")
    check(r.returncode == 1 and "No space left" in line, f"exit {r.returncode}: {line}")
    st = cli.state(IDENT)
    check(st["pid"] == pid and st["status"] == "running", f"daemon after ENOSPC: {st}")
    curl_ok(ns, IDENT)
    left = os.listdir(img) if os.path.isdir(img) else []
    check(not left, f"a failed checkpoint left {left} in {img}")
    r = cli.run("restore", "--detach", "--image-path", img, "nstest-faults-2", timeout=30)
    line = one_line(r, "restore from the failed image")
    check(r.returncode == 1, f"restore from a failed checkpoint: exit {r.returncode}: {line}")
    # A roomy directory works afterwards, and holds the same memory.
    good = os.path.join(tmp, "good")
    cli.ok("checkpoint", "--leave-running", "--image-path", good, IDENT, timeout=60)
    check(looks_complete(good), f"{good}: {os.listdir(good)}")
    log(f"full disk: refused ({line.strip()[:120]}...), daemon {pid} kept serving; "
        f"then checkpoint to disk fine; digest {digest}")
    stop(cli)


def killed(ns, cli, tmp):
    complete = refused = 0
    for i, delay in enumerate(KILL_DELAYS_MS):
        st = start(cli, "256M")
        pid, digest = st["pid"], st["memory"]["digest"]
        img = os.path.join(tmp, f"kill-{i}")
        p = cli.popen("checkpoint", "--image-path", img, IDENT)
        time.sleep(delay / 1000)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=30)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.01)
        files = sorted(os.listdir(img)) if os.path.isdir(img) else []
        stop(cli)  # the killed daemon's ROOT/ID
        if looks_complete(img):
            complete += 1
            cli.ok("restore", "--detach", "--image-path", img, IDENT, timeout=60)
            got = cli.state(IDENT)["memory"]["digest"]
            check(got == digest, f"kill after {delay} ms: complete image {files}, digest "
                                 f"{got} != {digest}")
            curl_ok(ns, IDENT)
            stop(cli)
        else:
            refused += 1
            r = cli.run("restore", "--detach", "--image-path", img, IDENT, timeout=30)
            line = one_line(r, f"restore after a kill at {delay} ms")
            check(r.returncode == 1, f"kill after {delay} ms ({files}): restore exit "
                                     f"{r.returncode}: {line}")
        log(f"kill -9 {delay:>3} ms into the checkpoint: files {files} -> "
            f"{'complete, restored, digest equal' if looks_complete(img) else 'refused'}")
    check(refused > 0, "no kill landed before the image was complete: the test tests nothing")
    log(f"{len(KILL_DELAYS_MS)} kills: {complete} complete images restored, {refused} refused")


if __name__ == "__main__":
    nstest.main(test, timeout=170)
