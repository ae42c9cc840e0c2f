#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The runsc-like daemon commands around checkpoint/restore, with the kernel
as the peer on tap0, a temporary --root and temporary image directories:

 1. `checkpoint` (no --leave-running) ends the daemon; `restore --detach`
    brings the IPv4 and IPv6 listeners back (curl works on both); the
    restore's wall time and the time to the first good curl are printed.
 2. `checkpoint --leave-running`: the same daemon (pid) keeps serving.
 3. `wait --checkpoint` returns 0 after a checkpoint, and not before it.
 4. two checkpoints in a row: checkpoint_count 1, then 2, in `state`.
 5. the stack's SYN-ACK TSval after the restore >= the one before the
    checkpoint (captured with an AF_PACKET socket on tap0's kernel side).
 6. a connection established at checkpoint time is reset after the restore.
 7. errors: a non-empty image dir, a corrupted image, restoring an ID that
    runs: non-zero exit and one line on stderr.

Each check is reported on its own (PASS, FAIL or NOT RUN) at the end; the
test passes only if every one passed.
"""

import contextlib
import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import nstest
from nstest import HOST4, HOST6, STACK4, STACK6, Failure, check, log

IDENT = "nstest-ckpt"
BAD_IDENT = "nstest-ckpt-bad"
WANT_BODY = f"netstack {IDENT}\n"
HTTP_PORT = 80
CLI_TIMEOUT = 20  # seconds for one CLI command; every one is bounded
GONE_WITHIN = 5.0  # the checkpointed daemon's pid is gone within this
RESET_WITHIN = 5.0
CURL_WITHIN = 10.0  # the first good curl after the restore, per family

CHECKS = [
    ("1", "checkpoint ends the daemon; restore --detach serves IPv4+IPv6 again"),
    ("2", "checkpoint --leave-running: same pid keeps serving"),
    ("3", "wait --checkpoint returns 0 after a checkpoint, not before"),
    ("4", "two checkpoints: checkpoint_count 1 then 2"),
    ("5", "SYN-ACK TSval after restore >= before checkpoint"),
    ("6", "a connection established at checkpoint time is reset after restore"),
    ("7a", "checkpoint to a non-empty dir: non-zero exit, one stderr line"),
    ("7b", "restore from a corrupted image: non-zero exit, one line naming the image"),
    ("7c", "restore of a running ID: non-zero exit"),
]


# ---------------------------------------------------------------- results


class Results:
    """Per-check outcomes; a check that raises Failure is recorded and the
    test goes on with the next one (unless the failure is marked hard)."""

    def __init__(self):
        self.status = {n: ("NOT RUN", "") for n, _ in CHECKS}

    @contextlib.contextmanager
    def check(self, n, hard=False):
        try:
            yield
        except (nstest.TestTimeout, nstest.Interrupted):
            raise
        except Exception as e:  # noqa: BLE001 - any error fails this check
            self.failed(n, str(e) if isinstance(e, Failure) else f"{type(e).__name__}: {e}")
            if hard:
                raise
        else:
            if self.status[n][0] == "NOT RUN":
                self.status[n] = ("PASS", "")

    def failed(self, n, msg):
        if self.status[n][0] != "FAIL":
            self.status[n] = ("FAIL", msg)
        log(f"check {n}: FAIL: {msg}")

    def summary(self):
        log("---- summary ----")
        for n, what in CHECKS:
            st, msg = self.status[n]
            first = msg.splitlines()[0] if msg else ""
            log(f"check {n:>2} {st:7} {what}" + (f" -- {first}" if first else ""))
        return all(self.status[n][0] == "PASS" for n, _ in CHECKS)


# -------------------------------------------------------------------- CLI


class Cli:
    """`netstack --root ROOT --log LOG ...` run in the namespace, bounded."""

    def __init__(self, ns, root, logfile):
        self.ns = ns
        self.root = root
        self.logfile = logfile

    def argv(self, *args):
        return [nstest.netstack_bin(), "--root", self.root, "--log", self.logfile, *args]

    def run(self, *args, timeout=CLI_TIMEOUT, quiet=False):
        t0 = time.monotonic()
        r = self.ns.run(self.argv(*args), timeout=timeout)
        r.seconds = time.monotonic() - t0
        if not quiet:
            out = (r.stdout.strip() + " " + r.stderr.strip()).strip()
            log(f"$ netstack {' '.join(args)} -> exit {r.returncode} in "
                f"{r.seconds * 1000:.0f} ms" + (f": {out}" if out and len(out) < 300 else ""))
        return r

    def ok(self, *args, timeout=CLI_TIMEOUT):
        r = self.run(*args, timeout=timeout)
        check(r.returncode == 0, f"`netstack {' '.join(args)}` exited {r.returncode}:\n"
                                 f"{r.stdout}{r.stderr}")
        return r

    def state(self, ident=IDENT):
        r = self.run("state", ident, quiet=True)
        check(r.returncode == 0, f"`netstack state {ident}` exited {r.returncode}: "
                                 f"{r.stderr.strip()}")
        try:
            st = json.loads(r.stdout)
        except ValueError as e:
            raise Failure(f"`netstack state {ident}` printed invalid JSON ({e}):\n{r.stdout}")
        check(isinstance(st, dict), f"`netstack state` is not a JSON object: {r.stdout}")
        return st

    def popen(self, *args):
        return self.ns.popen(self.argv(*args), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)


def one_line(r, what):
    """The error's one stderr line; Failure unless there is exactly one."""
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    check(len(lines) == 1, f"{what}: want exactly one stderr line, got {len(lines)}:\n"
                           f"{r.stderr!r}")
    return lines[0]


def pid_alive(pid):
    """True while pid exists and is not a zombie (pid 1 here may not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def wait_gone(pid, within):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return not pid_alive(pid)


def read_log(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError as e:
        return f"(no daemon log: {e})"


# ------------------------------------------------------------------- HTTP


def url(host):
    return f"http://[{host}]/" if ":" in host else f"http://{host}/"


def curl_ok(ns, host):
    r = ns.curl(url(host))
    check(r.returncode == 0 and r.stdout == WANT_BODY,
          f"curl {url(host)}: exit {r.returncode}, body {r.stdout!r}, want {WANT_BODY!r}; "
          f"{r.stderr.strip()}")


def curl_until_ok(ns, host, within):
    """Retry curl until it gets the body; return seconds to success."""
    t0 = time.monotonic()
    deadline = t0 + within
    tries, last = 0, ""
    while True:
        tries += 1
        r = ns.run(["curl", "-sS", "--connect-timeout", "2", "--max-time", "3", url(host)],
                   timeout=10)
        if r.returncode == 0 and r.stdout == WANT_BODY:
            return time.monotonic() - t0, tries
        last = f"exit {r.returncode}, body {r.stdout!r}, {r.stderr.strip()}"
        if time.monotonic() > deadline:
            raise Failure(f"curl {url(host)} failed for {within} s ({tries} tries); "
                          f"last: {last}")
        time.sleep(0.05)


def http_get_keepalive(ns, host):
    """An established, served, still-open connection to port 80."""
    conn = http.client.HTTPConnection(host, HTTP_PORT, timeout=5)
    conn.sock = ns.connect(host, HTTP_PORT, timeout=5)
    conn.request("GET", "/")
    resp = conn.getresponse()
    body = resp.read().decode(errors="replace")
    check(resp.status == 200 and body == WANT_BODY,
          f"GET on the connection to keep: status {resp.status}, body {body!r}")
    check(not resp.will_close, "the server closes the connection after one GET")
    sock = conn.sock
    conn.sock = None  # the socket is ours now
    return sock


# ------------------------------------------------------------- capturing

TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10


def parse_tcp(frame):
    """(src, dst, sport, dport, flags, tsval) of a TCP/IPv4 or TCP/IPv6
    Ethernet frame, else None. tsval is None without the option."""
    if len(frame) < 14:
        return None
    etype = struct.unpack("!H", frame[12:14])[0]
    ip = frame[14:]
    if etype == 0x0800 and len(ip) >= 20:
        if ip[9] != 6:
            return None
        src = socket.inet_ntop(socket.AF_INET, ip[12:16])
        dst = socket.inet_ntop(socket.AF_INET, ip[16:20])
        tcp = ip[(ip[0] & 0x0F) * 4:]
    elif etype == 0x86DD and len(ip) >= 40:
        if ip[6] != 6:  # no extension headers expected here
            return None
        src = socket.inet_ntop(socket.AF_INET6, ip[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, ip[24:40])
        tcp = ip[40:]
    else:
        return None
    if len(tcp) < 20:
        return None
    sport, dport = struct.unpack("!HH", tcp[:4])
    off = (tcp[12] >> 4) * 4
    flags = tcp[13]
    opts = tcp[20:off]
    tsval = None
    i = 0
    while i < len(opts):
        kind = opts[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2:
            break
        length = opts[i + 1]
        if kind == 8 and length == 10 and i + 10 <= len(opts):
            tsval = struct.unpack("!I", opts[i + 2:i + 6])[0]
        i += length
    return src, dst, sport, dport, flags, tsval


def synack_tsval(ns, host, within=5.0):
    """Connect from the kernel to host:80 while an AF_PACKET socket on tap0
    listens; return the TSval of the stack's SYN-ACK to that connection."""
    ps = ns.packet_socket("tap0")
    conn = None
    try:
        ps.settimeout(0.2)
        conn = ns.connect(host, HTTP_PORT, timeout=5)
        lport = conn.getsockname()[1]
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                frame = ps.recv(65536)
            except socket.timeout:
                continue
            p = parse_tcp(frame)
            if not p:
                continue
            src, dst, sport, dport, flags, tsval = p
            if (src == host and sport == HTTP_PORT and dport == lport
                    and flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK):
                check(tsval is not None, f"the SYN-ACK from {host} has no timestamp option")
                return tsval
        raise Failure(f"no SYN-ACK from {host}:{HTTP_PORT} to port {lport} seen on tap0 "
                      f"within {within} s")
    finally:
        if conn is not None:
            conn.close()
        ps.close()


def flags_text(flags):
    return "".join(c for bit, c in ((0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"),
                                    (0x10, "A")) if flags & bit)


def drain_tcp(ps, ports):
    """The TCP frames queued on AF_PACKET socket ps from or to one of
    ports, as "src:sport>dst:dport[FLAGS]" texts; does not wait."""
    seen = []
    ps.settimeout(0)
    while True:
        try:
            frame = ps.recv(65536)
        except BlockingIOError:
            return seen
        p = parse_tcp(frame)
        if p and (p[2] in ports or p[3] in ports):
            src, dst, sport, dport, flags, _ = p
            seen.append(f"{src}:{sport}>{dst}:{dport}[{flags_text(flags)}]")


# ------------------------------------------------------------ connections


def peek_state(sock):
    """What, if anything, arrived on sock so far: 'nothing', 'FIN', 'RST',
    or 'data'. Does not wait."""
    old = sock.gettimeout()
    sock.settimeout(0)
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return "nothing"
    except ConnectionResetError:
        return "RST"
    finally:
        sock.settimeout(old)
    return "FIN" if data == b"" else "data"


def expect_reset(sock, host, within):
    """Send a request on a connection the restored stack does not know:
    a reset must show within `within` s. Return how it showed."""
    req = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    sock.settimeout(0.5)
    t0 = time.monotonic()
    deadline = t0 + within
    fin_seen = False
    while time.monotonic() < deadline:
        try:
            sock.sendall(req)
        except ConnectionResetError:
            return f"send: ECONNRESET after {(time.monotonic() - t0) * 1000:.0f} ms"
        except BrokenPipeError:
            return (f"send: EPIPE after {(time.monotonic() - t0) * 1000:.0f} ms"
                    + (" (after FIN)" if fin_seen else ""))
        try:
            data = sock.recv(4096)
        except ConnectionResetError:
            return f"recv: ECONNRESET after {(time.monotonic() - t0) * 1000:.0f} ms"
        except socket.timeout:
            continue
        if data == b"":
            fin_seen = True
            continue
        raise Failure(f"{host}: the connection from before the checkpoint still answers "
                      f"after the restore: {data[:80]!r}")
    raise Failure(f"{host}: no reset within {within} s of sending on the connection "
                  f"from before the checkpoint" + (" (only a FIN)" if fin_seen else ""))


# ------------------------------------------------------------------- test


def have_checkpoint_cli():
    r = subprocess.run([nstest.netstack_bin(), "--help"], capture_output=True, text=True,
                       timeout=10, stdin=subprocess.DEVNULL)
    return r.returncode == 0 and "checkpoint" in r.stdout and "restore" in r.stdout


def test():
    nstest.require_tools("curl")
    if not have_checkpoint_cli():
        raise nstest.Skip(f"{nstest.netstack_bin()} has no checkpoint/restore commands")
    tmp = tempfile.mkdtemp(prefix="nstest-ckpt-")
    res = Results()
    logfile = os.path.join(tmp, "daemon.log")
    try:
        with nstest.Netns() as ns:
            cli = Cli(ns, os.path.join(tmp, "root"), logfile)
            try:
                body(ns, cli, tmp, res)
            except BaseException:
                log(f"daemon log ({logfile}):\n{read_log(logfile)}")
                raise
            finally:
                # Stop whatever still runs, cleanly if it can; the
                # namespace's cleanup kills anything left over.
                for ident in (IDENT, BAD_IDENT):
                    with contextlib.suppress(Exception):
                        cli.run("delete", "--force", ident, timeout=15, quiet=True)
    finally:
        all_passed = res.summary()
        shutil.rmtree(tmp, ignore_errors=True)
    if not all_passed:
        log(f"daemon log:\n{read_log(logfile)}" if os.path.exists(logfile) else "")
        raise Failure("some checks failed (see the summary above)")


def body(ns, cli, tmp, res):
    ns.add_tap("tap0")
    ns.sysctl("net.ipv4.tcp_timestamps", 1)
    img = lambda name: os.path.join(tmp, name)  # noqa: E731

    # ---- a daemon
    r = cli.ok("run", "--detach", "--tap", "tap0",
               "--ip", f"{STACK4}/{nstest.PREFIX4}", "--ip", f"{STACK6}/{nstest.PREFIX6}",
               "--service", f"tcp:{HTTP_PORT}:http", IDENT)
    check("running" in r.stdout, f"`run --detach` printed no 'running' line: {r.stdout!r}")
    st = cli.state()
    pid0 = st.get("pid")
    check(isinstance(pid0, int) and pid0 > 0 and pid_alive(pid0),
          f"state after run: bad or dead pid {pid0!r}")
    check(st.get("status") == "running", f"state after run: status {st.get('status')!r}")
    log(f"daemon pid {pid0}, checkpoint_count {st.get('checkpoint_count')}, listeners "
        f"{[l.get('local') for l in st.get('listeners', [])]}")
    curl_ok(ns, STACK4)
    curl_ok(ns, STACK6)
    log("curl works on IPv4 and IPv6")

    # ---- 2 and 4: two checkpoints in a row, leave-running
    with res.check("4"):
        check(st.get("checkpoint_count") == 0,
              f"checkpoint_count of a fresh daemon is {st.get('checkpoint_count')!r}, want 0")
    os.mkdir(img("lr1"))  # an existing empty directory is fine too
    counts = []
    for name in ("lr1", "lr2"):
        with res.check("2"):
            cli.ok("checkpoint", "--image-path", img(name), "--leave-running",
                   "--compression", "none", IDENT)
            check(pid_alive(pid0), f"daemon pid {pid0} gone after checkpoint --leave-running")
            curl_ok(ns, STACK4)
            curl_ok(ns, STACK6)
            files = sorted(os.listdir(img(name)))
            check("state.pb" in files, f"{img(name)} holds {files}, no state.pb")
            log(f"{name}: curl works right after; image files {files}")
        with res.check("2"):
            st = cli.state()
            check(st.get("pid") == pid0, f"pid {st.get('pid')} after checkpoint "
                                         f"--leave-running, want {pid0}")
            check(st.get("status") == "running", f"status {st.get('status')!r}")
        with res.check("4"):
            counts.append(st.get("checkpoint_count"))
            log(f"checkpoint_count after checkpoint {len(counts)}: {counts[-1]}")
    with res.check("4"):
        check(counts == [1, 2], f"checkpoint_count after two checkpoints: {counts}, want [1, 2]")

    # ---- 3: wait --checkpoint
    with res.check("3"):
        w = cli.popen("wait", "--checkpoint", IDENT)
        time.sleep(1.0)
        if w.poll() is not None:
            out, err = w.communicate(timeout=5)
            raise Failure(f"`wait --checkpoint` ended (exit {w.returncode}) 1 s after it "
                          f"started, with no checkpoint: {out}{err}")
        log("wait --checkpoint still waits after 1 s")
        t0 = time.monotonic()
        cli.ok("checkpoint", "--image-path", img("lr3"), "--leave-running", IDENT)
        try:
            out, err = w.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            raise Failure("`wait --checkpoint` still runs 5 s after the checkpoint ended")
        log(f"wait --checkpoint exited {w.returncode} {(time.monotonic() - t0) * 1000:.0f} ms "
            f"after the checkpoint started" + (f": {err.strip()}" if err.strip() else ""))
        check(w.returncode == 0, f"`wait --checkpoint` exited {w.returncode}: {out}{err}")

    # ---- 7a: a non-empty image directory
    with res.check("7a"):
        before = cli.state().get("checkpoint_count")
        os.mkdir(img("full"))
        with open(os.path.join(img("full"), "junk"), "w") as f:
            f.write("not an image\n")
        r = cli.run("checkpoint", "--image-path", img("full"), IDENT)
        check(r.returncode != 0, "checkpoint to a non-empty directory succeeded")
        line = one_line(r, "checkpoint to a non-empty directory")
        log(f"non-empty dir refused: exit {r.returncode}: {line}")
        check(os.listdir(img("full")) == ["junk"],
              f"the non-empty directory was changed: {os.listdir(img('full'))}")
        # Refused before the stack is touched (its help says so): the daemon
        # still serves, the refusal did not count.
        check(pid_alive(pid0), "the daemon died after a refused checkpoint (no "
                               "--leave-running) to a non-empty directory")
        curl_ok(ns, STACK4)
        after = cli.state().get("checkpoint_count")
        check(after == before, f"a refused checkpoint changed checkpoint_count "
                               f"{before} -> {after}")

    # ---- 6 (set-up): connections open across the checkpoint
    kept = {}
    with res.check("6"):
        for host in (STACK4, STACK6):
            kept[host] = http_get_keepalive(ns, host)
        log(f"kept connections open: "
            f"{ {h: s.getsockname()[1] for h, s in kept.items()} }")

    # ---- 5 (before): SYN-ACK TSval just before the checkpoint
    ts_before = {}
    with res.check("5"):
        for host in (STACK4, STACK6):
            ts_before[host] = synack_tsval(ns, host)
        log(f"SYN-ACK TSval before the checkpoint: {ts_before}")
    mac_before = [n.get("mac") for n in cli.state().get("nics", [])]

    # ---- 1: checkpoint without --leave-running, then restore
    # What the stack puts on the wire for the kept connections between the
    # checkpoint and the restore (seen on tap0's kernel side).
    wire = ns.packet_socket("tap0")
    kept_ports = {s.getsockname()[1] for s in kept.values()}
    with res.check("1", hard=True):
        r = cli.ok("checkpoint", "--image-path", img("img1"), IDENT)
        log(f"checkpoint (daemon exits) took {r.seconds * 1000:.0f} ms")
        check(wait_gone(pid0, GONE_WITHIN),
              f"daemon pid {pid0} still alive {GONE_WITHIN} s after the checkpoint")
        st = cli.state()
        log(f"state after the checkpoint: status {st.get('status')!r}, pid {st.get('pid')!r}, "
            f"checkpoint_count {st.get('checkpoint_count')!r}")
        check(st.get("status") == "checkpointed",
              f"status after checkpoint: {st.get('status')!r}, want 'checkpointed'")
        r = cli.run("list")
        log(f"list: {r.stdout.strip()!r}")
    pre_restore = {host: peek_state(s) for host, s in kept.items()}
    sent = drain_tcp(wire, kept_ports)
    wire.close()
    log(f"kept connections before the restore: {pre_restore} arrived; frames on them "
        f"since the checkpoint began: {sent or 'none'}")
    # A stack checkpointed without --leave-running is frozen: its daemon's
    # exit must not tell the peers anything (no FIN, no RST) - they are reset
    # after the restore, as by a host that rebooted.
    check(not sent, "the daemon that exited after the checkpoint put "
          f"{', '.join(sent)} on the wire for connections established at checkpoint "
          "time: their peers were torn down at checkpoint time, not reset after the restore")

    # ---- 7b: a corrupted image (a different, never-run ID: the TAP is free
    # now, so only the image can make it fail)
    with res.check("7b"):
        shutil.copytree(img("img1"), img("bad"))
        path = os.path.join(img("bad"), "state.pb")
        with open(path, "r+b") as f:
            data = bytearray(f.read())
            i = 32 + (len(data) - 32) // 2 if len(data) > 32 else len(data) // 2
            data[i] ^= 0xFF
            f.seek(0)
            f.write(data)
        log(f"flipped byte {i} of {len(data)} in {path}")
        r = cli.run("restore", "--image-path", img("bad"), "--detach", BAD_IDENT)
        check(r.returncode != 0, "restore from a corrupted image succeeded")
        line = one_line(r, "restore from a corrupted image")
        log(f"corrupted image refused: exit {r.returncode}: {line}")
        check(img("bad") in line or "image" in line.lower() or "state.pb" in line,
              f"the error line does not mention the image: {line!r}")
        st = cli.run("state", BAD_IDENT, quiet=True)
        if st.returncode == 0:
            check(json.loads(st.stdout).get("status") != "running",
                  f"{BAD_IDENT} runs after a failed restore")

    # ---- 1 (cont.): restore
    with res.check("1", hard=True):
        r = cli.ok("restore", "--image-path", img("img1"), "--detach", IDENT)
        restore_s = r.seconds
        t_restored = time.monotonic()
        st = cli.state()
        pid1 = st.get("pid")
        log(f"restore --detach took {restore_s * 1000:.0f} ms (wall time of the command); "
            f"state: restored {st.get('restored')!r}, restore_ms {st.get('restore_ms')!r}, "
            f"pid {pid1!r}, checkpoint_count {st.get('checkpoint_count')!r}")
        check(st.get("status") == "running" and isinstance(pid1, int) and pid_alive(pid1),
              f"after restore: status {st.get('status')!r}, pid {pid1!r}")
        check(pid1 != pid0, f"restored daemon has the old pid {pid0}")
        check(st.get("restored") is True, f"state.restored is {st.get('restored')!r}")
        for host in (STACK4, STACK6):
            dt, tries = curl_until_ok(ns, host, CURL_WITHIN)
            log(f"first good curl {url(host)} {(time.monotonic() - t_restored) * 1000:.0f} ms "
                f"after restore returned ({dt * 1000:.0f} ms of curling, {tries} tries)")
        mac_after = [n.get("mac") for n in st.get("nics", [])]
        log(f"NIC MAC before {mac_before}, after {mac_after}; listeners after restore: "
            f"{[l.get('local') for l in st.get('listeners', [])]}")
        print(f"RESULT restore_wall_ms={restore_s * 1000:.1f} "
              f"restore_ms={st.get('restore_ms')} "
              f"first_curl_ms={(time.monotonic() - t_restored) * 1000:.1f}", flush=True)

    # ---- 5 (after)
    with res.check("5"):
        check(ts_before, "no TSval from before the checkpoint")
        for host in (STACK4, STACK6):
            after = synack_tsval(ns, host)
            log(f"{host}: SYN-ACK TSval before {ts_before[host]}, after {after} "
                f"(+{(after - ts_before[host]) % (1 << 32)})")
            check((after - ts_before[host]) % (1 << 32) < (1 << 31),
                  f"{host}: TSval went backwards across the restore: "
                  f"{ts_before[host]} -> {after}")
            check(after >= ts_before[host],
                  f"{host}: TSval after restore {after} < before {ts_before[host]}")

    # ---- 6: the kept connections are reset
    with res.check("6"):
        check(len(kept) == 2, "the connections to keep were not set up")
        for host, s in kept.items():
            how = expect_reset(s, host, RESET_WITHIN)
            log(f"{host}: reset observed ({how}; before the restore: "
                f"{pre_restore.get(host)} had arrived)")
    for s in kept.values():
        s.close()

    # ---- 7c: restore of a running ID
    with res.check("7c"):
        pid1 = cli.state().get("pid")
        r = cli.run("restore", "--image-path", img("img1"), "--detach", IDENT)
        check(r.returncode != 0, "restore of a running ID succeeded")
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        log(f"restore of a running ID refused: exit {r.returncode}: {lines}")
        check(len(lines) == 1, f"want one stderr line, got {r.stderr!r}")
        check(cli.state().get("pid") == pid1 and pid_alive(pid1),
              "the running daemon changed or died after a refused restore")
        curl_ok(ns, STACK4)
        curl_ok(ns, STACK6)

    # ---- stop cleanly
    r = cli.run("kill", IDENT)
    if r.returncode == 0 and isinstance(pid1, int) and not wait_gone(pid1, 5):
        log(f"WARNING: daemon pid {pid1} still alive 5 s after `kill`")


if __name__ == "__main__":
    nstest.main(test, timeout=85)
