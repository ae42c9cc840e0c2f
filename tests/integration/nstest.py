# SPDX-License-Identifier: MIT
"""nstest - shared plumbing for netstack's integration tests.

Each test_*.py is a standalone script that ctest runs (exit 0 pass, 1 fail,
77 skip). This module owns everything those scripts share: the skip checks,
a bounded run wrapper, private network namespaces that are always deleted
(also on failure, exception, SIGTERM or the test's own time limit), a TAP or
a veth pair inside them, an AF_PACKET socket for the fd endpoint, starting
`netstack run` and waiting for its "running" line, and bounded clients whose
sockets live in the namespace.

Python 3.11 (Debian 12) has no os.setns, so setns(2) is called through
ctypes. A network namespace is a per-thread attribute: entering one with
Netns.entered() moves only the calling thread, and a socket stays in the
namespace it was created in whatever thread later uses it. Subprocesses are
always started with `ip netns exec`, never from inside entered().

Addresses: the kernel peer is 198.51.100.1/24 and fd42:5::1/64, the stack
198.51.100.2/24 and fd42:5::2/64. Nothing here ever touches the host's own
network.
"""

import atexit
import ctypes
import errno
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback

SKIP = 77

HOST4 = "198.51.100.1"
STACK4 = "198.51.100.2"
HOST6 = "fd42:5::1"
STACK6 = "fd42:5::2"
PREFIX4 = 24
PREFIX6 = 64

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.setns.restype = ctypes.c_int


class Skip(Exception):
    """The test cannot run here; the message says why."""


class Failure(Exception):
    """A check failed; the message says what was expected and what was seen."""


class TestTimeout(Exception):
    """The test ran past its own time limit."""


class Interrupted(Exception):
    """SIGTERM, SIGINT or SIGHUP arrived; unwind so namespaces are deleted."""


def log(msg):
    name = os.path.basename(sys.argv[0])
    print(f"[{name}] {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise Failure(msg)


# ---------------------------------------------------------------- running


def require():
    """Raise Skip unless root, /dev/net/tun, `ip` and NETSTACK_BIN are there."""
    if os.geteuid() != 0:
        raise Skip("needs root (network namespaces, TAP devices)")
    if not os.path.exists("/dev/net/tun"):
        raise Skip("/dev/net/tun is missing")
    if shutil.which("ip") is None:
        raise Skip("`ip` (iproute2) is missing")
    binary = os.environ.get("NETSTACK_BIN")
    if not binary:
        raise Skip("NETSTACK_BIN is not set")
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise Skip(f"NETSTACK_BIN={binary} is not an executable file")


def require_tools(*tools):
    for t in tools:
        if shutil.which(t) is None:
            raise Skip(f"`{t}` is missing")


def netstack_bin():
    return os.path.abspath(os.environ["NETSTACK_BIN"])


def _raise_interrupted(signum, frame):
    raise Interrupted(f"got signal {signal.Signals(signum).name}")


def _raise_timeout(signum, frame):
    raise TestTimeout("test ran past its time limit")


def main(fn, timeout=55):
    """Run fn() as a whole test: skip checks, a time limit, exit code.

    fn raises Failure (or anything) to fail and Skip to skip. The limit is
    delivered as an exception in the main thread, so every `with Netns()`
    unwinds and deletes its namespace before the process exits.
    """
    try:
        require()
    except Skip as e:
        log(f"SKIP: {e}")
        sys.exit(SKIP)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _raise_interrupted)
    signal.signal(signal.SIGALRM, _raise_timeout)
    signal.alarm(int(timeout))
    start = time.monotonic()
    code = 1
    try:
        fn()
        code = 0
    except Skip as e:
        log(f"SKIP: {e}")
        code = SKIP
    except Failure as e:
        log(f"FAIL: {e}")
    except BaseException as e:  # noqa: BLE001 - report anything as a failure
        traceback.print_exc()
        log(f"FAIL: {type(e).__name__}: {e}")
    finally:
        signal.alarm(0)
    if code == 1:
        _report_stacks()
    _cleanup_all()
    elapsed = time.monotonic() - start
    verdict = {0: "PASS", SKIP: "SKIP"}.get(code, "FAIL")
    log(f"{verdict} ({elapsed:.1f} s)")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # threads still blocked on a socket must not hold us


def _report_stacks():
    """After a failure: how every stack this test started is doing, and
    what it printed."""
    for st in _stacks:
        state = st.state_at_cleanup or st.state()
        if st.state_at_cleanup and st.state_at_cleanup != st.state():
            state += f" (then stopped by the test's cleanup: {st.state()})"
        log(f"netstack {st.ident} (pid {st.proc.pid}) when the test ended: "
            f"{state}\n{st.output()}")


# ------------------------------------------------------------- namespaces

_counter = 0
_live = []  # Netns objects not yet deleted, for the atexit net
_stacks = []  # every Stack started, for the failure report
_cleanup_lock = threading.Lock()


def _cleanup_all():
    for ns in list(_live):
        try:
            ns.close()
        except Exception as e:  # noqa: BLE001
            log(f"cleanup of {ns.name} failed: {e}")


atexit.register(_cleanup_all)


def _ip(*args, timeout=10, check_rc=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if check_rc and r.returncode != 0:
        raise Failure(f"`ip {' '.join(args)}` failed ({r.returncode}): "
                      f"{r.stderr.strip()}")
    return r


def _netns_names():
    r = _ip("netns", "list", check_rc=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def _kill_pids_in(name):
    r = _ip("netns", "pids", name, check_rc=False)
    for tok in r.stdout.split():
        try:
            os.kill(int(tok), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass


def cleanup_stale():
    """Delete namespaces ns-<pid>-<n> left by a test process that is gone
    (killed with SIGKILL, e.g. by ctest's own timeout)."""
    for name in _netns_names():
        m = re.fullmatch(r"ns-(\d+)-(\d+)", name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        if os.path.exists(f"/proc/{m.group(1)}"):
            continue
        _kill_pids_in(name)
        _ip("netns", "delete", name, check_rc=False)
        log(f"deleted stale namespace {name}")


def netstack_pid(ns, detail=""):
    """The pid of the netstack process in namespace @ns (what tests start
    runs under ip netns exec / setpriv, so the Popen's pid is not it);
    @detail is added to the failure, e.g. the stack's output."""
    for pid in _ip("netns", "pids", ns.name, check_rc=False).stdout.split():
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "netstack":
                    return int(pid)
        except OSError:
            continue
    raise Failure("no netstack process in the namespace" + (("\n" + detail) if detail else ""))


def _thread_netns_path():
    return f"/proc/self/task/{threading.get_native_id()}/ns/net"


class Netns:
    """A private network namespace ns-<pid>-<n> with lo up.

    Use as a context manager; leaving it, however, kills every process
    started in it and deletes it. close() is idempotent.
    """

    def __init__(self):
        global _counter
        _counter += 1
        self.name = f"ns-{os.getpid()}-{_counter}"
        self.procs = []  # Popen objects started in the namespace
        self.stacks = []
        self.closed = False

    def __enter__(self):
        cleanup_stale()
        _ip("netns", "add", self.name)
        _live.append(self)
        try:
            self.ip("link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        with _cleanup_lock:
            if self.closed:
                return
            self.closed = True
        # Signals during cleanup would abort it half way; hold them until done.
        blocked = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            for st in self.stacks:
                st.state_at_cleanup = st.state()
                st.close_fds()
            for p in self.procs:
                _stop_process(p, grace=2.0)
            _kill_pids_in(self.name)
            for _ in range(20):
                r = _ip("netns", "delete", self.name, check_rc=False)
                if r.returncode == 0 or self.name not in _netns_names():
                    break
                time.sleep(0.1)
            else:
                log(f"could not delete namespace {self.name}: {r.stderr.strip()}")
        finally:
            if self in _live:
                _live.remove(self)
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    # -- commands

    def ip(self, *args, timeout=10, check_rc=True):
        return _ip("-n", self.name, *args, timeout=timeout, check_rc=check_rc)

    def cmd(self, argv):
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv, timeout=10, check_rc=False, input=None, text=True):
        """Run argv in the namespace with a time limit; return CompletedProcess.

        On timeout the command is killed and a Failure raised.
        """
        try:
            r = subprocess.run(self.cmd(argv), capture_output=True, text=text,
                               timeout=timeout, input=input,
                               stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise Failure(f"`{' '.join(argv)}` did not finish in {timeout} s")
        if check_rc and r.returncode != 0:
            raise Failure(f"`{' '.join(argv)}` exited {r.returncode}:\n"
                          f"{r.stdout}{r.stderr}")
        return r

    def popen(self, argv, **kw):
        """Start argv in the namespace in its own process group; it is
        killed when the namespace is closed."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        # If this test is SIGKILLed (ctest's timeout), the kernel kills its
        # children too; the namespace goes at the next run's cleanup_stale().
        # Call from the main thread: the death signal follows the thread.
        guard = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []
        p = subprocess.Popen(guard + self.cmd(argv), start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def sysctl(self, key, value):
        path = "/proc/sys/" + key.replace(".", "/")
        self.run(["sh", "-c", f"echo {value} > {path}"], check_rc=True)

    # -- in-process namespace entry (sockets)

    def entered(self):
        return _Entered(self.name)

    def socket(self, family=socket.AF_INET, type=socket.SOCK_STREAM, proto=0):
        """A socket created inside the namespace."""
        with self.entered():
            return socket.socket(family, type, proto)

    def connect(self, host, port, timeout=5.0):
        """A TCP connection from the namespace's kernel; blocking, with
        `timeout` set on the socket for every later operation."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = self.socket(family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect((host, port))
        except BaseException:
            s.close()
            raise
        return s

    # -- links

    def add_tap(self, dev="tap0"):
        """A persistent TAP with the kernel peer's addresses, link up."""
        self.ip("tuntap", "add", "dev", dev, "mode", "tap")
        self._kernel_addrs(dev)
        self.ip("link", "set", dev, "up")
        return dev

    def add_veth(self, kernel_dev="veth-k", stack_dev="veth-s"):
        """A veth pair, both ends here. kernel_dev gets the kernel peer's
        addresses; stack_dev has none, no IPv6, no ARP, promiscuous, and is
        what the stack's AF_PACKET socket binds to. Offloads are off on both
        ends so the socket sees complete, checksummed, MTU-sized frames (and
        the kernel verifies the stack's checksums)."""
        self.ip("link", "add", kernel_dev, "type", "veth", "peer", "name", stack_dev)
        self.sysctl(f"net.ipv6.conf.{stack_dev}.disable_ipv6", 1)
        self._kernel_addrs(kernel_dev)
        for dev in (kernel_dev, stack_dev):
            offloads_off(self, dev)
        self.ip("link", "set", stack_dev, "arp", "off", "promisc", "on")
        self.ip("link", "set", stack_dev, "up")
        self.ip("link", "set", kernel_dev, "up")
        return kernel_dev, stack_dev

    def _kernel_addrs(self, dev):
        self.ip("addr", "add", f"{HOST4}/{PREFIX4}", "dev", dev)
        self.ip("-6", "addr", "add", f"{HOST6}/{PREFIX6}", "dev", dev, "nodad")

    def packet_socket(self, dev):
        """An AF_PACKET SOCK_RAW socket bound to dev, created in the
        namespace: one Ethernet frame per read and write. Frames it sends are
        not looped back to it."""
        s = self.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            s.bind((dev, ETH_P_ALL))
        except BaseException:
            s.close()
            raise
        return s

    # -- the stack

    def start_stack(self, services, ident=None, tap=None, fd_sock=None,
                    extra=(), wait=10.0):
        """Start `netstack run` here on a TAP (tap=NAME) or an inherited
        packet socket (fd_sock), wait for its "running" line, return Stack."""
        ident = ident or f"nstest{os.getpid()}"
        argv = [netstack_bin(), "run"]
        pass_fds = ()
        if tap is not None:
            argv += ["--tap", tap]
        elif fd_sock is not None:
            argv += ["--fd", str(fd_sock.fileno())]
            pass_fds = (fd_sock.fileno(),)
        argv += ["--ip", f"{STACK4}/{PREFIX4}", "--ip", f"{STACK6}/{PREFIX6}"]
        for svc in services:
            argv += ["--service", svc]
        argv += list(extra)
        argv.append(ident)
        log("start: " + " ".join(argv))
        p = self.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       pass_fds=pass_fds)
        st = Stack(p, ident, argv)
        self.stacks.append(st)
        _stacks.append(st)
        if fd_sock is not None:
            st.fds.append(fd_sock)
        st.wait_running(wait)
        return st

    # -- clients

    def ping(self, addr, count=3, attempts=2):
        """ping from the namespace: every echo request must be answered (a
        local link loses nothing). Up to `attempts` runs, in case the first
        pays for neighbour discovery. Returns the output; raises Failure."""
        v6 = ":" in addr
        argv = ["ping", *(["-6"] if v6 else []), "-c", str(count), "-W", "2", addr]
        out = ""
        for i in range(attempts):
            r = self.run(argv, timeout=count * 2 + 8)
            out = r.stdout + r.stderr
            m = re.search(r"(\d+) received", out)
            if r.returncode == 0 and m and int(m.group(1)) == count:
                log(f"ping {addr}: " + _ping_summary(out))
                return out
            log(f"ping {addr} attempt {i + 1} failed (exit {r.returncode}): "
                + _ping_summary(out))
            time.sleep(1)
        raise Failure(f"`{' '.join(argv)}` failed:\n{out}")

    def curl(self, *args, timeout=15):
        r = self.run(["curl", "-sS", "--max-time", "5", *args], timeout=timeout)
        return r


def _ping_summary(out):
    for line in out.splitlines():
        if "packets transmitted" in line:
            return line.strip()
    return out.strip().splitlines()[-1] if out.strip() else "(no output)"


class _Entered:
    """Move the calling thread into a namespace and back."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.orig = os.open(_thread_netns_path(), os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(f"/run/netns/{self.name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        except BaseException:
            os.close(self.orig)
            raise
        finally:
            os.close(target)
        return self

    def __exit__(self, *exc):
        try:
            _setns(self.orig)
        finally:
            os.close(self.orig)
        return False


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


PACKET_STATISTICS = 6


def packet_stats(sock):
    """(frames, drops) the kernel counted for an AF_PACKET socket since the
    last call (reading resets them)."""
    return struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))


# --------------------------------------------------------------- offloads

SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x16
_ETHTOOL_SET = {  # legacy one-feature commands, still served by Linux 6.x
    "rx": 0x15, "tx": 0x17, "tso": 0x1F, "gso": 0x24, "gro": 0x2C,
}


def _ethtool_ioctl(sock, dev, cmd, value=0):
    ev = ctypes.create_string_buffer(struct.pack("II", cmd, value), 8)
    ifr = struct.pack("16sP", dev.encode(), ctypes.addressof(ev))
    ifr += b"\0" * (40 - len(ifr))
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifr)
    return struct.unpack("II", ev.raw)[1]


def offloads_off(ns, dev):
    """`ethtool -K dev rx off tx off tso off gso off gro off`; without the
    ethtool binary (or if it fails), the same through SIOCETHTOOL. The tx
    checksum offload is checked afterwards either way."""
    done = False
    if shutil.which("ethtool"):
        r = ns.run(["ethtool", "-K", dev, "rx", "off", "tx", "off", "tso", "off",
                    "gso", "off", "gro", "off"])
        done = r.returncode == 0
        if not done:
            log(f"ethtool -K {dev} failed ({r.returncode}), using SIOCETHTOOL: "
                f"{r.stderr.strip()}")
    s = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if not done:
            for feat in ("rx", "tx", "tso", "gso", "gro"):
                try:
                    _ethtool_ioctl(s, dev, _ETHTOOL_SET[feat], 0)
                except OSError as e:
                    if e.errno != errno.EOPNOTSUPP:
                        raise Failure(f"turning {feat} offload off on {dev}: {e}")
        check(_ethtool_ioctl(s, dev, ETHTOOL_GTXCSUM) == 0,
              f"tx checksum offload still on for {dev}")
    finally:
        s.close()


# ------------------------------------------------------------------ stack


class Stack:
    """A running `netstack run`; its stdout and stderr are collected."""

    def __init__(self, proc, ident, argv):
        self.proc = proc
        self.ident = ident
        self.argv = argv
        self.fds = []
        self.state_at_cleanup = None
        self.out_lines = []
        self.err_lines = []
        self.running = threading.Event()
        self._readers = [
            threading.Thread(target=self._read, args=(proc.stdout, self.out_lines, True),
                             daemon=True),
            threading.Thread(target=self._read, args=(proc.stderr, self.err_lines, False),
                             daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read(self, pipe, lines, is_stdout):
        for raw in iter(pipe.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            if is_stdout and "running" in line:
                self.running.set()
        pipe.close()

    def wait_running(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running.wait(0.05):
                log(f"stack up: {self.out_lines[-1] if self.out_lines else ''}")
                return
            if self.proc.poll() is not None:
                time.sleep(0.1)  # let the readers drain
                raise Failure(f"netstack exited with {self.proc.returncode} before "
                              f"printing 'running'\n{self.output()}")
        raise Failure(f"no 'running' line from netstack in {timeout} s\n{self.output()}")

    def alive(self):
        return self.proc.poll() is None

    def state(self):
        rc = self.proc.poll()
        if rc is None:
            return "still running"
        if rc < 0:
            return f"killed by {signal.Signals(-rc).name}"
        return f"exited {rc}"

    def close_fds(self):
        for s in self.fds:
            s.close()
        self.fds = []

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Send sig, wait up to timeout; return the exit status
        (negative: killed by that signal). Failure if it does not exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise Failure(f"netstack did not exit within {timeout} s of "
                              f"{signal.Signals(sig).name}\n{self.output()}")
        for t in self._readers:
            t.join(2)
        return self.proc.returncode

    def stderr_text(self):
        return "\n".join(self.err_lines)

    def output(self):
        return ("--- netstack stdout ---\n" + "\n".join(self.out_lines)
                + "\n--- netstack stderr ---\n" + "\n".join(self.err_lines)
                + "\n---")


def _stop_process(p, grace):
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        p.wait(grace)
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        log(f"process {p.pid} did not die")


# ------------------------------------------------------------ data checks


def recv_exact(sock, n, deadline=None):
    """Read exactly n bytes; Failure on EOF, timeout or past the deadline."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        if deadline is not None and time.monotonic() > deadline:
            raise Failure(f"read {got} of {n} bytes before the deadline")
        try:
            k = sock.recv_into(view[got:], n - got)
        except socket.timeout:
            raise Failure(f"timed out after reading {got} of {n} bytes")
        if k == 0:
            raise Failure(f"EOF after {got} of {n} bytes")
        got += k
    return bytes(buf)


def first_difference(a, b):
    """Index of the first differing byte (or the shorter length), or -1."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return -1 if len(a) == len(b) else n
    lo, hi = 0, n  # binary search on prefixes; fine for a few MiB
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def expect_bytes(got, want, what):
    if got == want:
        return
    i = first_difference(got, want)
    raise Failure(f"{what}: got {len(got)} bytes, want {len(want)}; first "
                  f"difference at {i}: got {got[i:i + 16]!r} want {want[i:i + 16]!r}")


CHARGEN_LINE = 72
CHARGEN_CHARS = 95  # ASCII 32..126
CHARGEN_PERIOD = CHARGEN_CHARS * (CHARGEN_LINE + 2)


def chargen_lines(first_char=32, count=CHARGEN_CHARS):
    """RFC 864's pattern: 72 printable characters per line, each line
    starting one character later than the one before, CRLF."""
    out = bytearray()
    s = first_char - 32
    for i in range(count):
        out += bytes(32 + (s + i + j) % CHARGEN_CHARS for j in range(CHARGEN_LINE))
        out += b"\r\n"
    return bytes(out)


def chargen_sha256(n, first_char=32):
    """sha256 of the first n bytes of the chargen stream, generated here."""
    period = chargen_lines(first_char)
    block = period * ((1 << 20) // len(period) + 1)
    block = block[: len(period) * (len(block) // len(period))]
    h = hashlib.sha256()
    left = n
    while left > 0:
        k = min(left, len(block))
        h.update(block[:k] if k < len(block) else block)
        left -= k
    return h.hexdigest()


def mib_per_s(nbytes, seconds):
    return nbytes / (1 << 20) / max(seconds, 1e-9)
