"""Slow and flooding clients on the HTTPS ports: a flood of idle
connections from one address, or a client that trickles its request one
byte at a time, never stops a normal request from being answered in under
a second, and moatd closes them itself.

Limits (src/moatd/web/https.c): 10 s from accept to the first whole
request, 32 connections per address and port.
"""

import socket
import ssl
import threading
import time

from moatlib import FQDN, basic_auth_header, tls_client_context, wait_for
from test_metrics import metrics, one

FIRST_REQUEST_S = 10
PER_ADDR = 32


def timed_get(n):
    t0 = time.monotonic()
    r = n.https("GET", "/v1/cluster")
    return r.status_code, time.monotonic() - t0


def closed_by_server(s, timeout):
    """True when the server closes s within timeout seconds."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def test_flood_of_idle_connections_from_one_address(node):
    n = node
    flood = []
    try:
        for _ in range(200):
            s = socket.socket()
            s.bind(("127.0.0.50", 0))
            s.settimeout(5)
            s.connect((n.addr, n.port))
            flood.append(s)
        status, took = timed_get(n)
        assert status == 200 and took < 1.0, (status, took)
        # All but PER_ADDR are closed by moatd at once.
        shut = sum(1 for s in flood if closed_by_server(s, 0.05))
        assert shut >= 200 - PER_ADDR - 5, shut
        status, took = timed_get(n)
        assert status == 200 and took < 1.0, (status, took)
        # The rest never sent a request: closed when their time is up.
        rest = [s for s in flood if not closed_by_server(s, 0.01)]
        assert rest
        assert all(closed_by_server(s, FIRST_REQUEST_S + 3) for s in rest)
    finally:
        for s in flood:
            s.close()
    got = metrics(n)
    assert one(got, "moat_http_connections_refused_total",
               endpoint="api") >= 200 - 5, got


def test_slowloris_is_cut_off(node):
    n = node
    ctx = tls_client_context(cafile=n.ca)
    raw = socket.create_connection((n.addr, n.port), timeout=5)
    slow = ctx.wrap_socket(raw, server_hostname=FQDN)
    request = ("GET /v1/cluster HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
               "X-Pad: %s\r\n\r\n" % (basic_auth_header(n.email, n.password),
                                      "a" * 64)).encode()
    state = {"sent": 0, "error": None}
    stop = threading.Event()

    def trickle():
        try:
            for b in request:
                if stop.is_set():
                    return
                slow.send(bytes([b]))
                state["sent"] += 1
                time.sleep(0.5)
        except OSError as e:
            state["error"] = e

    t = threading.Thread(target=trickle)
    t0 = time.monotonic()
    t.start()
    try:
        # Meanwhile everyone else is answered at once.
        for _ in range(3):
            status, took = timed_get(n)
            assert status == 200 and took < 1.0, (status, took)
            time.sleep(1)
        assert wait_for(lambda: state["error"] is not None,
                        FIRST_REQUEST_S + 5, interval=0.2), state
        cut = time.monotonic() - t0
        assert cut < FIRST_REQUEST_S + 4, cut
        assert state["sent"] < len(request), state
    finally:
        stop.set()
        t.join(10)
        slow.close()


def test_handshake_never_finished_is_closed(node):
    n = node
    s = socket.create_connection((n.addr, n.port), timeout=5)
    try:
        s.sendall(b"\x16\x03\x01")      # the start of a ClientHello, no more
        t0 = time.monotonic()
        assert closed_by_server(s, FIRST_REQUEST_S + 3)
        assert time.monotonic() - t0 < FIRST_REQUEST_S + 3
    finally:
        s.close()
    status, took = timed_get(n)
    assert status == 200 and took < 1.0
