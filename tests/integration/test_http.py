#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tcp:80:http: curl over IPv4 and IPv6 gets "netstack ID\\n"; HTTP/1.1
keep-alive serves several requests on one connection (curl's own reuse and
python's http.client on one socket)."""

import http.client

import nstest
from nstest import STACK4, STACK6


def curl_body(ns, url, want):
    r = ns.curl(url)
    nstest.check(r.returncode == 0, f"curl {url} exited {r.returncode}: {r.stderr.strip()}")
    nstest.check(r.stdout == want, f"curl {url}: body {r.stdout!r}, want {want!r}")
    nstest.log(f"curl {url} -> {r.stdout!r}")


def curl_reuse(ns, url, want):
    r = ns.curl("-v", url, url)
    nstest.check(r.returncode == 0, f"curl -v {url} {url} exited {r.returncode}:\n{r.stderr}")
    nstest.check(r.stdout == want * 2, f"two GETs: body {r.stdout!r}, want {want * 2!r}")
    connects = [line for line in r.stderr.splitlines() if "Connected to" in line]
    reused = "Re-using existing connection" in r.stderr
    nstest.check(reused and len(connects) == 1,
                 f"curl did not reuse the connection ({len(connects)} connects):\n{r.stderr}")
    nstest.log(f"curl {url} x2: one connection, reused")


def client_keepalive(ns, host, want, requests=3):
    conn = http.client.HTTPConnection(host, 80, timeout=5)
    conn.sock = ns.connect(host, 80, timeout=5)
    sock = conn.sock
    port = sock.getsockname()[1]
    try:
        for i in range(requests):
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace")
            nstest.check(resp.status == 200, f"request {i + 1}: status {resp.status}")
            nstest.check(resp.version == 11, f"request {i + 1}: HTTP version {resp.version}, want 1.1")
            nstest.check(body == want, f"request {i + 1}: body {body!r}, want {want!r}")
            nstest.check(not resp.will_close,
                         f"request {i + 1}: server closes the connection "
                         f"(headers: {resp.getheaders()})")
            nstest.check(conn.sock is sock and sock.fileno() >= 0,
                         f"request {i + 1}: http.client opened a new connection")
    finally:
        conn.close()
    nstest.log(f"http.client: {requests} requests on one connection "
               f"(local port {port}) to {host}")


def test():
    nstest.require_tools("curl")
    with nstest.Netns() as ns:
        ns.add_tap("tap0")
        ident = "nstest-http"
        want = f"netstack {ident}\n"
        st = ns.start_stack(["tcp:80:http"], ident=ident, tap="tap0")
        curl_body(ns, f"http://{STACK4}/", want)
        curl_body(ns, f"http://[{STACK6}]/", want)
        curl_reuse(ns, f"http://{STACK4}/", want)
        curl_reuse(ns, f"http://[{STACK6}]/", want)
        client_keepalive(ns, STACK4, want)
        client_keepalive(ns, STACK6, want)
        nstest.check(st.alive(), "netstack died\n" + st.output())


if __name__ == "__main__":
    nstest.main(test, timeout=50)
