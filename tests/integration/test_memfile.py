#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The memory file through the CLI, with the kernel as the HTTP peer on tap0:

 1. `run --memory 1G` with an HTTP listener; `state` gives the region's
    digest. `checkpoint` writes state.pb, pages.meta and pages.img (about
    half the size of the region: zero pages are skipped) and ends the
    daemon.
 2. With the page cache dropped, `restore --detach --background` returns
    and curl is answered before the pages have finished loading (the first
    good curl comes earlier than the loader's elapsed time); `wait
    --restore` returns once every page is in, and the digest matches.
 3. `checkpoint --compression zstd --leave-running` of the restored daemon,
    then a foreground `restore` of that image under another ID: the digest
    matches again.
 4. A damaged pages.img (one byte flipped): a foreground `restore` is
    refused with one line naming the CRC mismatch; `restore --background`
    serves, `wait --restore` exits 1 saying the memory failed to load, and
    `state` shows the error and no digest. A truncated pages.img is refused
    in the foreground.
"""

import contextlib
import os
import shutil
import tempfile
import time

import nstest
from nstest import STACK4, Failure, check, log
from test_checkpoint import Cli, one_line, read_log

IDENTS = ("nstest-mem", "nstest-mem2", "nstest-mem-bad", "nstest-mem-bad2")
IDENT = IDENTS[0]
MEMORY = 1 << 30


def memory(cli, ident):
    st = cli.state(ident)
    m = st.get("memory")
    check(isinstance(m, dict), f"state of {ident} has no memory object: {st.get('memory')!r}")
    return m


def curl_until_ok(ns, ident, within=10):
    """Retry curl until the HTTP service of `ident` answers; return the
    seconds it took and the tries."""
    want = f"netstack {ident}\n"
    t0 = time.monotonic()
    tries, last = 0, ""
    while True:
        tries += 1
        r = ns.run(["curl", "-sS", "--connect-timeout", "2", "--max-time", "3",
                    f"http://{STACK4}/"], timeout=10)
        if r.returncode == 0 and r.stdout == want:
            return time.monotonic() - t0, tries
        last = f"exit {r.returncode}, body {r.stdout!r}, {r.stderr.strip()}"
        if time.monotonic() - t0 > within:
            raise Failure(f"curl failed for {within} s ({tries} tries); last: {last}")
        time.sleep(0.005)


def curl_ok(ns, ident):
    curl_until_ok(ns, ident, within=0)


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def copy_image(src, dst):
    shutil.copytree(src, dst)


def flip(path, off):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x40]))


def test():
    nstest.require_tools("curl")
    tmp = tempfile.mkdtemp(prefix="nstest-mem-")
    logfile = os.path.join(tmp, "daemon.log")
    try:
        with nstest.Netns() as ns:
            cli = Cli(ns, os.path.join(tmp, "root"), logfile)
            try:
                body(ns, cli, tmp)
            except BaseException:
                log(f"daemon log ({logfile}):\n{read_log(logfile)}")
                raise
            finally:
                for ident in IDENTS:
                    with contextlib.suppress(Exception):
                        cli.run("delete", "--force", ident, timeout=15, quiet=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def body(ns, cli, tmp):
    ns.add_tap("tap0")
    img = lambda name: os.path.join(tmp, name)  # noqa: E731

    # ---- 1: a daemon with 1 GiB of memory, checkpointed
    cli.ok("run", "--detach", "--tap", "tap0", "--ip", f"{STACK4}/{nstest.PREFIX4}",
           "--service", "tcp:80:http", "--memory", "1G", IDENT)
    m0 = memory(cli, IDENT)
    log(f"run --memory 1G: {m0}")
    u = cli.state(IDENT).get("usage")
    check(isinstance(u, dict) and u["sockets"] >= 1 and 0 < u["mem_used"] <= u["max_memory"],
          f"state's usage: {u!r}")
    check(m0["bytes"] == MEMORY, f"memory.bytes {m0['bytes']}, want {MEMORY}")
    check(m0["done"] and m0["backend"] == "none" and m0["error"] is None, f"{m0}")
    digest = m0["digest"]
    check(isinstance(digest, str) and digest.startswith("crc64:"), f"digest {digest!r}")
    curl_ok(ns, IDENT)
    cli.ok("checkpoint", "--image-path", img("a"), IDENT, timeout=60)
    files = sorted(os.listdir(img("a")))
    check({"state.pb", "pages.meta", "pages.img"} <= set(files), f"image files {files}")
    size = os.path.getsize(os.path.join(img("a"), "pages.img"))
    check(MEMORY // 4 < size < MEMORY * 3 // 4,
          f"pages.img has {size} bytes: the pattern has about half zero pages, skipped")
    log(f"image: {files}, pages.img {size >> 20} MiB")
    copy_image(img("a"), img("bad"))
    copy_image(img("a"), img("short"))

    # ---- 2: restore --background answers before the pages are in
    drop_caches()
    t0 = time.monotonic()
    cli.ok("restore", "--detach", "--background", "--image-path", img("a"), IDENT)
    t_restore = time.monotonic() - t0
    t_curl, tries = curl_until_ok(ns, IDENT)
    t_first = t_restore + t_curl
    early = memory(cli, IDENT)
    log(f"restore --background returned in {t_restore * 1000:.1f} ms; first good curl "
        f"{t_first * 1000:.1f} ms after the restore began ({tries} tries); then loaded "
        f"{early['loaded']} of {early['data_bytes']}, done {early['done']}")
    cli.ok("wait", "--restore", "--timeout", "60", IDENT, timeout=70)
    m1 = memory(cli, IDENT)
    log(f"after wait --restore: {m1}")
    check(m1["done"] and m1["error"] is None and m1["loaded"] == m1["data_bytes"] == size,
          f"{m1}")
    check(m1["backend"] == "io_uring", f"backend {m1['backend']!r}, want io_uring")
    check(m1["digest"] == digest, f"digest after restore {m1['digest']}, before {digest}")
    check(t_first * 1000 < m1["elapsed_ms"],
          f"curl answered {t_first * 1000:.1f} ms after the restore began, but loading "
          f"took only {m1['elapsed_ms']:.1f} ms: not served before the pages were in")
    curl_ok(ns, IDENT)

    # ---- 3: zstd, then a foreground restore under another ID
    cli.ok("checkpoint", "--image-path", img("z"), "--compression", "zstd",
           "--leave-running", IDENT, timeout=120)
    zsize = os.path.getsize(os.path.join(img("z"), "pages.img"))
    log(f"zstd pages.img: {zsize >> 20} MiB (plain {size >> 20} MiB)")
    cli.ok("kill", IDENT)
    cli.ok("wait", "--timeout", "10", IDENT, timeout=15)
    cli.ok("restore", "--detach", "--image-path", img("z"), IDENTS[1], timeout=60)
    m2 = memory(cli, IDENTS[1])
    check(m2["done"] and m2["digest"] == digest, f"zstd foreground restore: {m2}")
    curl_ok(ns, IDENTS[1])
    cli.ok("kill", IDENTS[1])
    cli.ok("wait", "--timeout", "10", IDENTS[1], timeout=15)

    # ---- 3b: --loader map: the plain image mapped, not copied; not the zstd one
    r = cli.run("restore", "--detach", "--loader", "map", "--image-path", img("z"),
                IDENTS[1], timeout=60)
    line = one_line(r, "--loader map of a compressed image")
    check(r.returncode == 1 and "compressed" in line, f"exit {r.returncode}: {line}")
    cli.ok("restore", "--detach", "--loader", "map", "--image-path", img("a"), IDENTS[1],
           timeout=60)
    m4 = memory(cli, IDENTS[1])
    check(m4["done"] and m4["backend"] == "map" and m4["digest"] == digest,
          f"--loader map: {m4}")
    curl_ok(ns, IDENTS[1])
    log(f"--loader map: loaded {m4['loaded'] >> 20} MiB in {m4['elapsed_ms']:.1f} ms")
    cli.ok("kill", IDENTS[1])
    cli.ok("wait", "--timeout", "10", IDENTS[1], timeout=15)

    # ---- 4: damaged pages
    flip(os.path.join(img("bad"), "pages.img"), size // 2)
    r = cli.run("restore", "--detach", "--image-path", img("bad"), IDENTS[2], timeout=60)
    line = one_line(r, "foreground restore of a damaged pages.img")
    check(r.returncode == 1 and "CRC32C mismatch" in line, f"exit {r.returncode}: {line}")
    r = cli.run("restore", "--detach", "--background", "--image-path", img("bad"),
                IDENTS[3], timeout=60)
    check(r.returncode == 0, f"background restore of a damaged image: exit {r.returncode} "
                             f"{r.stderr.strip()}")
    curl_until_ok(ns, IDENTS[3])
    r = cli.run("wait", "--restore", "--timeout", "60", IDENTS[3], timeout=70)
    line = one_line(r, "wait --restore with damaged pages")
    check(r.returncode == 1 and "failed to load" in line, f"exit {r.returncode}: {line}")
    m3 = memory(cli, IDENTS[3])
    check(m3["done"] and m3["error"] and "CRC32C" in m3["error"] and m3["digest"] is None
          and m3["failed"] > 0, f"state after damaged background restore: {m3}")
    cli.ok("kill", IDENTS[3])
    cli.ok("wait", "--timeout", "10", IDENTS[3], timeout=15)
    with open(os.path.join(img("short"), "pages.img"), "r+b") as f:
        f.truncate(size - 4096)
    r = cli.run("restore", "--detach", "--image-path", img("short"), IDENTS[2], timeout=60)
    line = one_line(r, "foreground restore of a truncated pages.img")
    check(r.returncode == 1 and "truncated" in line, f"exit {r.returncode}: {line}")
    log("damaged and truncated pages.img: refused in the foreground, -EIO in the background")


if __name__ == "__main__":
    nstest.main(test, timeout=170)
