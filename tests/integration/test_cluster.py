"""Nodes sharing one etcd: join, certificates everywhere, a node that dies.

Starts a single-member etcd on loopback (stopped by PID at the end), a first
node on 127.0.0.1 with --store etcd://..., and a second node on 127.0.0.2
that joins through POST /v1/bootstrap/join_cluster or moatadm.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import certgen
from moatlib import FQDN, free_port, served_fingerprint, stop_process


def start_member(d, name, cport, pport, initial=None, state="new",
                 tls=()):
    """One etcd member on 127.0.0.1, logging to d/<name>.log.  tls: extra
    server TLS flags, which switch its client URLs to https."""
    scheme = "https" if tls else "http"
    log = open(os.path.join(d, name + ".log"), "ab")
    p = subprocess.Popen(
        ["etcd", "--name", name, "--data-dir", os.path.join(d, name),
         "--listen-client-urls", "%s://127.0.0.1:%d" % (scheme, cport),
         "--advertise-client-urls", "%s://127.0.0.1:%d" % (scheme, cport),
         "--listen-peer-urls", "http://127.0.0.1:%d" % pport,
         "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % pport,
         "--initial-cluster",
         initial or "%s=http://127.0.0.1:%d" % (name, pport),
         "--initial-cluster-state", state] + list(tls),
        stdout=log, stderr=log, start_new_session=True)
    log.close()
    return p


def stop_pid(p):
    stop_process(p, 10)


@pytest.fixture
def etcd():
    d = tempfile.mkdtemp(prefix="moat-etcd-", dir="/tmp")
    cport, pport = free_port("127.0.0.1"), free_port("127.0.0.1")
    p = start_member(d, "t", cport, pport)
    url = "etcd://127.0.0.1:%d" % cport
    import requests
    deadline = time.monotonic() + 15
    while True:
        try:
            requests.post("http://127.0.0.1:%d/v3/kv/range" % cport,
                          json={"key": "AA=="}, timeout=1)
            break
        except requests.RequestException:
            assert time.monotonic() < deadline, \
                open(os.path.join(d, "t.log")).read()
            time.sleep(0.1)
    yield url
    stop_pid(p)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def pair(make_node, etcd):
    first = make_node(addr="127.0.0.1", extra_args=["--store", etcd])
    second = make_node(addr="127.0.0.2", api_port=first.port, create=False)
    return first, second


def join_body(n, password=None):
    return {"action": "join_cluster",
            "cluster": {"nodes": ["%s:%d" % (n.addr, n.port)]},
            "credentials": {"username": n.email,
                            "password": password or n.password}}


def tls12_refused(addr, port):
    import socket
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        with socket.create_connection((addr, port), timeout=5) as raw:
            with ctx.wrap_socket(raw):
                return False
    except ssl.SSLError:
        return True


def fps(n):
    return {k: v["fingerprint_sha256"] for k, v in
            n.sock("GET", "/v1/nodes/%d" % n.uid).json()["certificates"].items()}


def test_join_serves_the_clusters_certificates(pair):
    first, second = pair
    # A wrong password joins nothing.
    r = second.sock("POST", "/v1/bootstrap/join_cluster",
                    join_body(first, password="wrong-password-1"))
    assert r.status_code == 401, r.text
    assert r.json()["error_code"] == "unauthorized"
    assert second.sock("GET", "/v1/cluster").status_code == 503
    # moatadm, the rladmin way (the password asked for, never an
    # argument: ps would show it).
    p = second.adm("cluster", "join", "nodes", "%s:%d" % (first.addr, first.port),
                   "username", first.email, input=first.password + "\n")
    assert p.returncode == 0, p.stderr
    assert "Joined cluster successfully" in p.stdout
    second.uid = 2
    first.uid = 1
    # Same certificates, served on both nodes' API ports, and the same
    # files on disk.
    assert served_fingerprint(first.addr, first.port) == \
        served_fingerprint(second.addr, second.port)
    for name in ("api", "proxy", "syncer", "cm", "metrics_exporter"):
        a = open(os.path.join(first.data_dir, "certs", name + "_cert.pem")).read()
        b = open(os.path.join(second.data_dir, "certs", name + "_cert.pem")).read()
        assert a == b, name
    nodes = first.sock("GET", "/v1/nodes").json()
    assert sorted((x["uid"], x["addr"], x["status"]) for x in nodes) == \
        [(1, "127.0.0.1", "active"), (2, "127.0.0.2", "active")]
    assert fps(first) == fps(second)
    # Joining twice is refused.
    r = second.sock("POST", "/v1/bootstrap/join_cluster", join_body(first))
    assert r.status_code == 409, r.text


def test_change_through_one_node_reaches_all(pair, test_ca):
    first, second = pair
    r = second.sock("POST", "/v1/bootstrap/join_cluster", join_body(first))
    assert r.status_code == 200, r.text
    first.uid, second.uid = 1, 2
    leaf = certgen.make_leaf(test_ca, sans=["DNS:" + FQDN, "DNS:*." + FQDN,
                                            "IP:127.0.0.1", "IP:127.0.0.2"])
    r = second.sock("PUT", "/v1/cluster/update_cert",
                    {"name": "api", "key": leaf.key_pem,
                     "certificate": leaf.cert_pem})
    assert r.status_code == 200, r.text
    assert sorted(x["status"] for x in r.json()["nodes"]) == ["updated", "updated"]
    # When the call returns, both nodes serve it.
    assert served_fingerprint(first.addr, first.port) == leaf.fingerprint
    assert served_fingerprint(second.addr, second.port) == leaf.fingerprint
    assert fps(first)["api"] == fps(second)["api"] == leaf.fingerprint

    # A policy change through node 1 applies on node 2 when it returns.
    r = first.sock("PUT", "/v1/cluster", {"min_control_TLS_version": "1.3"})
    assert r.status_code == 200, r.text
    assert sorted(x["status"] for x in r.json()["nodes"]) == ["updated", "updated"]
    assert tls12_refused(second.addr, second.port)
    r = first.sock("PUT", "/v1/cluster", {"min_control_TLS_version": "1.2"})
    assert r.status_code == 200, r.text
    assert not tls12_refused(second.addr, second.port)

    # kill -9 the second node: the next change is stored, applied on the
    # first, and answered 409 naming node 2.
    os.kill(second.proc.pid, signal.SIGKILL)
    second.proc.wait(10)
    second.died = None
    second.proc = None
    r = first.sock("POST", "/v1/cluster/certificates/rotate",
                   {"name": "api", "force": True})
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["error_code"] == "not_all_nodes_updated"
    states = {x["uid"]: x["status"] for x in body["nodes"]}
    assert states[1] == "updated" and states[2] != "updated", body
    new_fp = fps(first)["api"]
    assert served_fingerprint(first.addr, first.port) == new_fp
    # Back: it serves the new certificate from its first connection on.
    second.start()
    assert served_fingerprint(second.addr, second.port) == new_fp
    assert [x["status"] for x in sorted(first.sock("GET", "/v1/nodes").json(),
                                        key=lambda x: x["uid"])] == \
        ["active", "active"]


def test_embedded_store_cannot_be_joined(make_node):
    first = make_node(addr="127.0.0.1")
    second = make_node(addr="127.0.0.2", api_port=first.port, create=False)
    r = second.sock("POST", "/v1/bootstrap/join_cluster", join_body(first))
    assert r.status_code == 409, r.text
    assert r.json()["error_code"] == "store_not_shared"
    assert second.sock("GET", "/v1/cluster").status_code == 503


def test_node_remove_and_timeout(pair, test_ca):
    first, second = pair
    r = second.sock("POST", "/v1/bootstrap/join_cluster", join_body(first))
    assert r.status_code == 200, r.text
    # A live node cannot be removed.
    r = first.sock("DELETE", "/v1/nodes/2")
    assert r.status_code == 409, r.text
    second.stop()
    # Down (its lease is revoked on a clean stop): a change answers at once
    # with 409, whatever the timeout, and ?timeout is checked.
    r = first.sock("POST", "/v1/cluster/certificates/rotate?timeout=abc",
                   {"name": "cm"})
    assert r.status_code == 400 and r.json()["error_code"] == "invalid_schema"
    t0 = time.monotonic()
    r = first.sock("POST", "/v1/cluster/certificates/rotate?timeout=30",
                   {"name": "cm"})
    assert r.status_code == 409, r.text
    assert time.monotonic() - t0 < 10
    p = first.adm("node", "2", "remove")
    assert p.returncode == 0, p.stderr
    assert "removed" in p.stdout
    assert [x["uid"] for x in first.sock("GET", "/v1/nodes").json()] == [1]
    r = first.sock("POST", "/v1/cluster/certificates/rotate", {"name": "cm"})
    assert r.status_code == 200, r.text
    assert first.sock("DELETE", "/v1/nodes/7").status_code == 404


class Etcd3:
    """Three etcd members on loopback; each can be stopped and restarted."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="moat-etcd3-", dir="/tmp")
        self.c = [free_port("127.0.0.1") for _ in range(3)]
        self.p = [free_port("127.0.0.1") for _ in range(3)]
        self.procs = [None] * 3
        self.initial = ",".join("m%d=http://127.0.0.1:%d" % (i, self.p[i])
                                for i in range(3))
        self.url = "etcd://" + ",".join("127.0.0.1:%d" % c for c in self.c)

    def start(self, i, state="new"):
        self.procs[i] = start_member(self.dir, "m%d" % i, self.c[i],
                                     self.p[i], self.initial, state)

    def stop(self, i):
        if self.procs[i] is not None:
            stop_pid(self.procs[i])
            self.procs[i] = None

    def wait_healthy(self):
        import requests
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                r = requests.post("http://127.0.0.1:%d/v3/kv/put" % self.c[0],
                                  json={"key": "AA==", "value": "AA=="},
                                  timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("etcd members did not form a cluster")


@pytest.fixture
def etcd3():
    e = Etcd3()
    for i in range(3):
        e.start(i)
    try:
        e.wait_healthy()
        yield e
    finally:
        for i in range(3):
            e.stop(i)
        shutil.rmtree(e.dir, ignore_errors=True)


def test_store_quorum(make_node, etcd3):
    from moatlib import free_db_port, redis_client, wait_bdb_active
    n = make_node(addr="127.0.0.1", extra_args=["--store", etcd3.url])
    fp = served_fingerprint(n.addr, n.port)
    port = free_db_port()
    r = n.sock("POST", "/v1/bdbs", {"name": "q", "port": port,
                                    "tls_mode": "enabled"})
    assert r.status_code == 200, r.text
    wait_bdb_active(n, r.json()["uid"])
    c = redis_client(n, port)
    c.set("k", "v")
    # One member down, quorum kept: changes still succeed.
    etcd3.stop(2)
    r = n.sock("POST", "/v1/cluster/certificates/rotate", {"name": "cm"})
    assert r.status_code == 200, r.text
    # Two down, quorum lost: the change fails fast and clearly, and the
    # node keeps serving its certificates.
    etcd3.stop(1)
    t0 = time.monotonic()
    r = n.sock("POST", "/v1/cluster/certificates/rotate", {"name": "api"})
    took = time.monotonic() - t0
    assert r.status_code == 503, r.text
    assert r.json()["error_code"] == "store_unavailable"
    assert "unavailable" in r.json()["description"]
    assert took < 8, took
    assert served_fingerprint(n.addr, n.port) == fp
    # ... and its database: the open connection and new ones.
    assert c.get("k") == b"v"
    assert redis_client(n, port).get("k") == b"v"
    # Quorum back: changes work again.
    etcd3.start(1, state="existing")
    etcd3.start(2, state="existing")
    etcd3.wait_healthy()
    deadline = time.monotonic() + 20
    while True:
        r = n.sock("POST", "/v1/cluster/certificates/rotate", {"name": "api"})
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.status_code == 200, r.text
    assert served_fingerprint(n.addr, n.port) != fp


def key_matches_cert(cert_path, key_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
    key = serialization.load_pem_private_key(open(key_path, "rb").read(), None)
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return cert.public_key().public_bytes(enc, pub) == \
        key.public_key().public_bytes(enc, pub)


def test_kill_during_updates(pair):
    """kill -9 a node while certificates change, 20 times: every node
    serves a certificate with its own key (a handshake proves it), the
    files in certs/ are whole and pair up, and the restarted node
    serves what the store says."""
    import random
    import threading
    first, second = pair
    r = second.sock("POST", "/v1/bootstrap/join_cluster", join_body(first))
    assert r.status_code == 200, r.text
    first.uid, second.uid = 1, 2
    rnd = random.Random(4)
    for i in range(20):
        t = threading.Thread(target=first.sock, args=(
            "POST", "/v1/cluster/certificates/rotate?timeout=1", {}))
        t.start()
        time.sleep(rnd.uniform(0, 0.05))
        os.kill(second.proc.pid, signal.SIGKILL)
        second.proc.wait(10)
        second.proc = None
        t.join(30)
        certs = os.path.join(second.data_dir, "certs")
        assert not [f for f in os.listdir(certs) if ".tmp." in f], \
            os.listdir(certs)
        second.start()
        # After the restart the files pair up and the node serves the
        # store's current certificate (it applies before it listens).
        want = fps(first)["api"]
        assert served_fingerprint(second.addr, second.port) == want, i
        for name in ("api", "cm", "proxy", "syncer", "metrics_exporter"):
            assert key_matches_cert(
                os.path.join(certs, name + "_cert.pem"),
                os.path.join(certs, name + "_key.pem")), (i, name)
        assert served_fingerprint(first.addr, first.port) == want


def test_rolling_restart_under_load(make_node, etcd3, test_ca):
    """Three etcd members and three nodes; clients stream commands to a
    database on node 1 while nodes 2 and 3 restart one at a time and the
    api and proxy certificates are replaced midway through node 3: zero
    failed commands on the node that stayed up, and every node serves the
    new certificates when the call returns."""
    import threading
    from moatlib import free_db_port, redis_client, wait_bdb_active
    etcd = etcd3.url
    first = make_node(addr="127.0.0.1", extra_args=["--store", etcd])
    others = [make_node(addr="127.0.0.%d" % i, api_port=first.port,
                        create=False) for i in (2, 3)]
    for o in others:
        r = o.sock("POST", "/v1/bootstrap/join_cluster", join_body(first))
        assert r.status_code == 200, r.text
    port = free_db_port()
    r = first.sock("POST", "/v1/bdbs", {"name": "load", "port": port,
                                        "tls_mode": "enabled"})
    assert r.status_code == 200, r.text
    uid = r.json()["uid"]
    wait_bdb_active(first, uid)
    # The database is served on the node that runs it.
    r = others[0].sock("GET", "/v1/bdbs/%d" % uid).json()
    assert r["node_uid"] == 1 and r["endpoints"][0]["addr"] == ["127.0.0.1"]

    bundle = os.path.join(first.tmp, "bundle.pem")
    with open(bundle, "w") as f:
        f.write(open(first.ca).read() + test_ca.cert_pem)
    stop = threading.Event()
    errors, counts = [], [0] * 4

    def client(i):
        try:
            c = redis_client(first, port, ca=bundle)
            while not stop.is_set():
                c.set("k%d" % i, counts[i])
                assert int(c.get("k%d" % i)) == counts[i]
                counts[i] += 1
            c.close()
        except Exception as ex:  # any failure is a failed command
            errors.append(repr(ex))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    others[0].restart()
    leaf = certgen.make_leaf(test_ca, sans=["DNS:" + FQDN, "DNS:*." + FQDN,
                                            "IP:127.0.0.1"])
    api_leaf = certgen.make_leaf(test_ca, sans=["DNS:" + FQDN,
                                                "DNS:*." + FQDN])
    r = others[1].sock("PUT", "/v1/cluster/certificates", {"certificates": [
        {"name": "proxy", "key": leaf.key_pem, "certificate": leaf.cert_pem},
        {"name": "api", "key": api_leaf.key_pem,
         "certificate": api_leaf.cert_pem}]})
    assert r.status_code == 200, r.text
    for node in [first] + others:
        assert served_fingerprint(node.addr, node.port) == api_leaf.fingerprint
    others[1].restart()
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(30)
    assert errors == [], errors
    assert min(counts) > 10, counts
    # New connections to the database see the new proxy certificate.
    assert served_fingerprint("127.0.0.1", port) == leaf.fingerprint
    # Last, node 1 itself: its database serves again, with its data and
    # the new certificate, and all three nodes are active.
    first.restart()
    wait_bdb_active(first, uid)
    assert redis_client(first, port, ca=bundle).get("k0") is not None
    assert served_fingerprint("127.0.0.1", port) == leaf.fingerprint
    assert sorted(x["status"] for x in first.sock("GET", "/v1/nodes").json()) \
        == ["active"] * 3


def test_move_embedded_store_to_etcd(make_node, etcd, test_ca):
    """A node that started on the embedded store becomes the first node of
    an etcd cluster with one command, keeping certificates, policy, users
    and databases; then another node can join it."""
    from moatlib import free_db_port, redis_client, wait_bdb_active
    n = make_node(addr="127.0.0.1")
    leaf = certgen.make_leaf(test_ca, sans=["DNS:" + FQDN, "DNS:*." + FQDN,
                                            "IP:127.0.0.1"])
    assert n.sock("PUT", "/v1/cluster/update_cert",
                  {"name": "api", "key": leaf.key_pem,
                   "certificate": leaf.cert_pem}).status_code == 200
    assert n.sock("PUT", "/v1/cluster",
                  {"min_data_TLS_version": "1.3"}).status_code == 200
    assert n.sock("POST", "/v1/users", {"email": "v@example.com",
                                        "password": "viewer-pass-1",
                                        "role": "cluster_viewer"}).status_code == 200
    port = free_db_port()
    r = n.sock("POST", "/v1/bdbs", {"name": "kept", "port": port,
                                    "tls_mode": "enabled"})
    uid = r.json()["uid"]
    wait_bdb_active(n, uid)
    c = redis_client(n, port)
    c.set("before", "move")
    before = {k: n.sock("GET", "/v1/cluster/certificates/" + k).json()
              ["fingerprint_sha256"] for k in ("api", "proxy", "cm")}

    p = n.adm("cluster", "store", "move", etcd)
    assert p.returncode == 0, p.stderr
    assert "Cluster moved to" in p.stdout
    # Same certificates, policy, users and database; the open database
    # connection kept working.
    assert {k: n.sock("GET", "/v1/cluster/certificates/" + k).json()
            ["fingerprint_sha256"] for k in ("api", "proxy", "cm")} == before
    assert served_fingerprint(n.addr, n.port) == leaf.fingerprint
    assert n.sock("GET", "/v1/cluster").json()["min_data_TLS_version"] == "1.3"
    assert n.https("GET", "/v1/cluster",
                   auth=("v@example.com", "viewer-pass-1"),
                   verify=False).status_code == 200
    assert c.get("before") == b"move"
    c.close()
    # A second move is refused, and a restart stays on etcd.
    p = n.adm("cluster", "store", "move", etcd)
    assert p.returncode != 0
    n.restart()
    assert n.sock("GET", "/v1/cluster/store").json()["store"] == etcd
    # moatd's restart restarted the shard too: wait for it, as a client
    # reconnecting would.
    wait_bdb_active(n, uid)
    assert redis_client(n, port).get("before") == b"move"
    # Now another node can join.
    other = make_node(addr="127.0.0.2", api_port=n.port, create=False)
    r = other.sock("POST", "/v1/bootstrap/join_cluster", join_body(n))
    assert r.status_code == 200, r.text
    assert served_fingerprint(other.addr, other.port) == leaf.fingerprint


def test_store_schema_version(make_node, etcd):
    """An older moatd refuses a store whose schema is newer than it knows,
    and says so; the store is left as it was."""
    import base64
    import requests
    n = make_node(addr="127.0.0.1", extra_args=["--store", etcd])
    n.stop()
    base = "http://" + etcd[len("etcd://"):]
    key = base64.b64encode(b"/moat/schema").decode()

    def put(v):
        r = requests.post(base + "/v3/kv/put", timeout=5, json={
            "key": key, "value": base64.b64encode(
                json.dumps({"version": v}).encode()).decode()})
        assert r.status_code == 200, r.text

    put(99)
    with pytest.raises(RuntimeError) as ex:
        n.start()
    assert "schema version 99" in str(ex.value)
    assert "newer" in str(ex.value)
    put(1)
    n.start()
    assert n.sock("GET", "/v1/cluster").status_code == 200


def test_etcd_over_tls(make_node, test_ca):
    """etcds://host:port?ca=&cert=&key=: moatd talks TLS to an etcd that
    requires client certificates; without the client certificate the
    store is refused at start with a clear message."""
    d = tempfile.mkdtemp(prefix="moat-etcds-", dir="/tmp")
    srv = certgen.make_leaf(test_ca, sans=["IP:127.0.0.1", "DNS:localhost"])
    cli = certgen.make_leaf(test_ca, sans=["DNS:moat-node"])
    files = {}
    for name, text in (("ca.pem", test_ca.cert_pem), ("srv.pem", srv.cert_pem),
                       ("srv.key", srv.key_pem), ("cli.pem", cli.cert_pem),
                       ("cli.key", cli.key_pem)):
        files[name] = os.path.join(d, name)
        with open(files[name], "w") as f:
            f.write(text)
        os.chmod(files[name], 0o600)
    cport, pport = free_port("127.0.0.1"), free_port("127.0.0.1")
    p = start_member(d, "s", cport, pport, tls=(
        "--cert-file", files["srv.pem"], "--key-file", files["srv.key"],
        "--trusted-ca-file", files["ca.pem"], "--client-cert-auth"))
    try:
        base = "etcds://127.0.0.1:%d?ca=%s" % (cport, files["ca.pem"])
        url = base + "&cert=%s&key=%s" % (files["cli.pem"], files["cli.key"])
        time.sleep(1.5)
        deadline = time.monotonic() + 15
        while True:
            try:
                n = make_node(addr="127.0.0.1", extra_args=["--store", url])
                break
            except RuntimeError:
                assert time.monotonic() < deadline, \
                    open(os.path.join(d, "s.log")).read()
                time.sleep(0.5)
        assert n.sock("GET", "/v1/cluster/store").json()["store"] == url
        assert n.sock("POST", "/v1/cluster/certificates/rotate",
                      {"name": "cm"}).status_code == 200
        # No client certificate: refused at start, saying why.
        with pytest.raises(RuntimeError) as ex:
            make_node(addr="127.0.0.2", extra_args=["--store", base],
                      create=False)
        assert "etcd" in str(ex.value) and "unavailable" in str(ex.value)
    finally:
        stop_pid(p)
        shutil.rmtree(d, ignore_errors=True)


def test_concurrent_edits_never_mix(pair, test_ca):
    """Two admins replace the api certificate at the same moment through
    two nodes: each call either wins (200) or gets 409
    config_edit_conflict, and every node ends up serving one of the two."""
    import threading
    first, second = pair
    r = second.sock("POST", "/v1/bootstrap/join_cluster", join_body(first))
    assert r.status_code == 200, r.text
    for round_ in range(5):
        leaves = [certgen.make_leaf(test_ca, sans=["DNS:" + FQDN,
                                                   "DNS:*." + FQDN])
                  for _ in range(2)]
        results = [None, None]
        go = threading.Event()

        def edit(i, node):
            go.wait()
            results[i] = node.sock("PUT", "/v1/cluster/update_cert", {
                "name": "api", "key": leaves[i].key_pem,
                "certificate": leaves[i].cert_pem})

        ts = [threading.Thread(target=edit, args=(i, n))
              for i, n in enumerate((first, second))]
        for t in ts:
            t.start()
        go.set()
        for t in ts:
            t.join(60)
        for r in results:
            assert r.status_code in (200, 409), r.text
            if r.status_code == 409:
                assert r.json()["error_code"] in ("config_edit_conflict",
                                                  "not_all_nodes_updated")
        assert any(r.status_code == 200 for r in results)
        a = served_fingerprint(first.addr, first.port)
        b = served_fingerprint(second.addr, second.port)
        assert a == b and a in (leaves[0].fingerprint, leaves[1].fingerprint)
