"""The cm port and the API port under the reviews' faults: a UI session
that raises the minimum from below it still gets its answer; the API port
refuses changes a web page sends; a node waiting for an etcd that accepts
and never answers keeps serving; a failed create_cluster leaves no node
identity behind."""

import json
import os
import shutil
import socket
import ssl
import threading
import time

import requests

from moatlib import (FQDN, TIME_SCALE, KeepAlive, assert_error,
                     create_body, tls_client_context)


def ui_sign_in(n, ctx):
    """A TLS connection to the cm port with a signed-in session: (conn,
    cookie header, csrf token)."""
    c = KeepAlive(n.addr, n.cm_port, ctx, n.addr)
    r = c.conn.request("POST", "/ui/session", body=json.dumps(
        {"email": n.email, "password": n.password}),
        headers={"Content-Type": "application/json"})
    resp = c.conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 200, body
    cookie = resp.getheader("Set-Cookie").split(";")[0]
    return c, cookie, body["csrf_token"]


def test_ui_session_below_a_raised_minimum_gets_its_answer(node):
    n = node
    c, cookie, csrf = ui_sign_in(n, tls_client_context(
        max_version=ssl.TLSVersion.TLSv1_2))
    try:
        assert c.tls_version == "TLSv1.2"
        c.conn.request("PUT", "/v1/cluster", body=json.dumps(
            {"min_control_TLS_version": "1.3"}), headers={
            "Cookie": cookie, "X-CSRF-Token": csrf,
            "Content-Type": "application/json"})
        resp = c.conn.getresponse()
        body = json.loads(resp.read())
        # Answered, then closed: this session is below the new minimum.
        assert resp.status == 200, body
        assert body["min_control_TLS_version"] == "1.3"
        assert body["closed_sessions"] >= 1
        assert resp.getheader("Connection") == "close"
    finally:
        c.close()
        n.sock("PUT", "/v1/cluster", {"min_control_TLS_version": "1.2"})


def test_api_port_refuses_changes_from_web_pages(node):
    n = node
    before = n.snapshot()
    r = n.session.post(n.url("/v1/users"), timeout=30,
                       headers={"Origin": "https://evil.example"},
                       data=json.dumps({"email": "evil@example.com",
                                        "password": "x" * 12,
                                        "role": "admin"}))
    assert_error(r, 403, "forbidden")
    assert "Origin" in r.json()["description"]
    assert n.snapshot() == before
    # Reads and scripts (no Origin) go on.
    assert n.session.get(n.url("/v1/cluster"), timeout=30,
                         headers={"Origin": "https://x"}).status_code == 200
    r = n.session.post(n.url("/v1/users"), timeout=30, json={
        "email": "ok@example.com", "password": "y" * 12,
        "role": "db_viewer"})
    assert r.status_code == 200, r.text


class SilentServer:
    """Accepts TCP connections and never answers: an etcd without
    quorum looks like this to its clients."""

    def __init__(self):
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(64)
        self.port = self.s.getsockname()[1]
        self.conns = []
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.s.settimeout(0.2)
        while not self.stop:
            try:
                self.conns.append(self.s.accept()[0])
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.t.join(5)
        for c in self.conns:
            c.close()
        self.s.close()


def test_waiting_for_a_silent_store_never_holds_the_node(make_node):
    n = make_node()
    ca = open(n.ca).read()
    n.stop()
    silent = SilentServer()
    try:
        with open(os.path.join(n.data_dir, "node.json"), "w") as f:
            json.dump({"uid": 1, "store": "etcd://127.0.0.1:%d" %
                       silent.port}, f)
        n.start()
        # The store is probed again and again meanwhile (each probe waits
        # for etcd's timeout); the node answers at once all along.
        worst = 0.0
        t_end = time.monotonic() + 8
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            r = requests.get("https://%s:%d/" % (n.addr, n.cm_port),
                             verify=n.ca, timeout=10)
            worst = max(worst, time.monotonic() - t0)
            assert r.status_code == 200
            time.sleep(0.1)
        print("slowest UI answer while waiting for a silent store: %.3fs"
              % worst)
        assert worst < 0.5 * TIME_SCALE, worst
        assert "waiting for the cluster store" in n.log
        assert open(n.ca).read() == ca
    finally:
        n.stop()
        silent.close()


def test_failed_create_cluster_leaves_no_identity(make_node):
    first = make_node()
    db = os.path.join(first.data_dir, "cluster.db")
    first.stop()
    n = make_node(create=False)
    n.stop()
    # This node's store already holds a cluster (a copied cluster.db).
    shutil.copy(db, os.path.join(n.data_dir, "cluster.db"))
    for suffix in ("-wal", "-shm"):
        if os.path.exists(db + suffix):
            shutil.copy(db + suffix, os.path.join(n.data_dir,
                                                  "cluster.db" + suffix))
    n.start()
    r = n.sock("POST", "/v1/bootstrap/create_cluster",
               create_body(FQDN, "b@example.com", "another-password-1"))
    assert_error(r, 409, "cluster_already_exists")
    assert not os.path.exists(os.path.join(n.data_dir, "node.json"))
    mark = len(n.log)
    n.restart()
    after = n.log[mark:]
    assert "no cluster yet" in after and "node 1 of" not in after, after


def test_a_sign_in_flood_is_told_to_come_back(node):
    """More wrong sign-ins at once, from more addresses, than the hashing
    queue takes: the excess gets 429 with Retry-After 1 (not counted as a
    failure of that address), every other one 401, and a remembered
    admin goes on meanwhile."""
    import concurrent.futures
    from moatlib import https_request
    n = node
    assert n.session.get(n.url("/v1/cluster"), timeout=30).status_code == 200

    def bad(i):
        # A name of its own each, not the admin's: five failures lock a
        # user name, and this is about the hashing queue.
        return https_request(n.addr, n.port, "GET", "/v1/cluster",
                             auth=("flood%d@example.com" % i,
                                   "wrong-password-%d" % i),
                             source="127.0.%d.%d" % (2 + i // 200,
                                                     10 + i % 200),
                             cafile=n.ca, timeout=120)

    with concurrent.futures.ThreadPoolExecutor(max_workers=160) as pool:
        futs = [pool.submit(bad, i) for i in range(160)]
        ok = n.session.get(n.url("/v1/cluster"), timeout=30)
        got = [f.result() for f in futs]
    assert ok.status_code == 200
    codes = sorted(set(r.status for r in got))
    assert set(codes) <= {401, 429}, codes
    busy = [r for r in got if r.status == 429]
    assert busy, "160 sign-ins at once never met the queue's limit"
    assert all(r.headers.get("Retry-After") == "1" for r in busy)
    assert all("retry in 1 s" in r.json()["description"] for r in busy)
    print("160 wrong sign-ins at once: %d refused at once (429), %d checked "
          "(401)" % (len(busy), len(got) - len(busy)))
