"""Real Redis clients through database endpoints: TLS and plaintext,
AUTH, MULTI/EXEC, pub/sub, blocking commands, large values and pipelines,
persistence across a moatd restart, client certificates, the data TLS
policy, and a shard killed under its clients."""

import os
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest
import redis

import certgen
from moatlib import (bdb_get, dns_name, make_bdb, openssl_s_client,
                     pid_running, proc_stat, redis_cli, redis_client,
                     redis_pid, resp_ping, tls_client_context,
                     tls_data_connect, wait_bdb_active, wait_for, write_pair)

PONG = b"+PONG\r\n"
PASSWORD = "Redis-pass-1"
PASSWORD2 = "Redis-pass-2"


@pytest.fixture(scope="module")
def dbs(db_ro_node):
    n = db_ro_node
    n.tls_db = make_bdb(n, tls=True, name="tlsdb")
    n.plain_db = make_bdb(n, tls=False, name="plaindb")
    return n


def cli_tls(n, port, *args, **kw):
    return redis_cli("--tls", "--cacert", n.ca, "-h", n.addr, "-p", port,
                     *args, **kw)


def tls_ping(n, port, ctx=None, servername=None):
    """PONG bytes, or a string saying where it failed."""
    try:
        s = tls_data_connect(n, port, ctx, servername=servername)
    except (ssl.SSLError, OSError) as e:
        return "handshake: %r" % e
    try:
        got = resp_ping(s)
        return got if got else "closed (EOF)"
    except (ssl.SSLError, OSError) as e:
        return "after handshake: %r" % e
    finally:
        s.close()


# -- plain clients ---------------------------------------------------------------

def test_redis_cli_tls(dbs):
    n, port = dbs, dbs.tls_db["port"]
    p = cli_tls(n, port, "PING")
    assert p.returncode == 0 and p.stdout.strip() == "PONG", (p.stdout,
                                                               p.stderr)
    # With SNI = the database's DNS name (what the proxy cert covers).
    p = cli_tls(n, port, "--sni", dns_name(n, port), "SET", "cli", "v1")
    assert p.stdout.strip() == "OK", (p.stdout, p.stderr)
    p = cli_tls(n, port, "GET", "cli")
    assert p.stdout.strip() == "v1", (p.stdout, p.stderr)


def test_redispy_tls(dbs):
    n, port = dbs, dbs.tls_db["port"]
    c = redis.Redis(host=n.addr, port=port, ssl=True, ssl_ca_certs=n.ca,
                    socket_timeout=10)
    try:
        assert c.set("py", "value") is True
        assert c.get("py") == b"value"
        assert c.get("cli") in (b"v1", None)
        conn = c.connection_pool.get_connection("PING")
        try:
            conn.connect()
            assert conn._sock.version() in ("TLSv1.2", "TLSv1.3")
            peer = conn._sock.getpeercert(binary_form=True)
        finally:
            c.connection_pool.release(conn)
        assert certgen.fingerprint_der(peer) == \
            n.cert_info("proxy")["fingerprint_sha256"]
    finally:
        c.close()
    # A client verifying the hostname redis-<port>.<fqdn> accepts the cert.
    ctx = tls_client_context(cafile=n.ca)
    assert ctx.check_hostname
    assert tls_ping(n, port, ctx, servername=dns_name(n, port)) == PONG


def test_plaintext(dbs):
    n, port = dbs, dbs.plain_db["port"]
    p = redis_cli("-h", n.addr, "-p", port, "PING")
    assert p.returncode == 0 and p.stdout.strip() == "PONG", (p.stdout,
                                                               p.stderr)
    c = redis.Redis(host=n.addr, port=port, socket_timeout=10)
    try:
        assert c.set("plain", "x" * 1000) is True
        assert c.get("plain") == b"x" * 1000
    finally:
        c.close()
    # The two databases are separate.
    c = redis_client(n, dbs.tls_db["port"])
    assert c.get("plain") is None
    c.close()


def test_tls_client_to_plaintext_endpoint_fails(dbs):
    """The pipe is transparent: like a plaintext redis-server, the endpoint
    hands the ClientHello to Redis, which waits for the end of an inline
    command, so a TLS client either fails or times out; it never gets an
    answer."""
    n, port = dbs, dbs.plain_db["port"]
    try:
        p = cli_tls(n, port, "PING", timeout=3)
        assert "PONG" not in p.stdout, (p.stdout, p.stderr)
        assert p.returncode != 0 or not p.stdout.strip(), p.stdout
    except subprocess.TimeoutExpired:
        pass  # redis-cli was killed by its PID by subprocess.run
    ctx = tls_client_context(cafile=n.ca)
    try:
        raw = socket.create_connection((n.addr, port), timeout=3)
        s = ctx.wrap_socket(raw, server_hostname=dns_name(n, port))
        s.close()
        raise AssertionError("TLS handshake with a plaintext endpoint "
                             "succeeded")
    except (ssl.SSLError, OSError):
        raw.close()
    with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
        redis_client(n, port, tls=True, socket_timeout=3,
                     socket_connect_timeout=3).ping()
    # The endpoint still serves plaintext afterwards.
    p = redis_cli("-h", n.addr, "-p", port, "PING")
    assert p.stdout.strip() == "PONG", (p.stdout, p.stderr)


def test_plaintext_client_to_tls_endpoint_fails(dbs):
    n, port = dbs, dbs.tls_db["port"]
    t0 = time.monotonic()
    p = redis_cli("-h", n.addr, "-p", port, "PING", timeout=30)
    assert "PONG" not in p.stdout, (p.stdout, p.stderr)
    assert time.monotonic() - t0 < 15
    c = redis.Redis(host=n.addr, port=port, socket_timeout=5,
                    socket_connect_timeout=5)
    with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
        c.ping()
    c.close()
    p = cli_tls(n, port, "PING")
    assert p.stdout.strip() == "PONG", (p.stdout, p.stderr)


# -- Redis features through the pipe --------------------------------------------

def get_a(n, port, password):
    """GET a on a new connection, or the error."""
    try:
        c = redis_client(n, port, password=password)
        try:
            return c.get("a")
        finally:
            c.close()
    except redis.RedisError as e:
        return e


def test_auth(dbs):
    n = dbs
    db = make_bdb(n, tls=True, name="authdb",
                  authentication_redis_pass=PASSWORD)
    port = db["port"]
    assert db["authentication_redis_pass_set"] is True
    with pytest.raises(redis.AuthenticationError):
        redis_client(n, port).ping()
    with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
        redis_client(n, port, password="wrong-pass").ping()
    p = cli_tls(n, port, "--no-auth-warning", "-a", "wrong-pass", "PING")
    assert "PONG" not in p.stdout, p.stdout
    p = cli_tls(n, port, "--no-auth-warning", "-a", PASSWORD, "PING")
    assert p.stdout.strip() == "PONG", (p.stdout, p.stderr)
    c = redis_client(n, port, password=PASSWORD)
    assert c.set("a", "1") and c.get("a") == b"1"
    c.close()

    # Change it through the API: the new one works, the old one no longer.
    r = n.sock("PUT", "/v1/bdbs/%d" % db["uid"],
               {"authentication_redis_pass": PASSWORD2})
    assert r.status_code == 200, r
    assert PASSWORD2 not in r.text and PASSWORD not in r.text

    assert wait_for(lambda: get_a(n, port, PASSWORD2) == b"1", 10), "new password not applied"
    with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
        redis_client(n, port, password=PASSWORD).ping()
    # Removing it (empty string) leaves the database open again.
    r = n.sock("PUT", "/v1/bdbs/%d" % db["uid"],
               {"authentication_redis_pass": ""})
    if r.status_code == 200:
        assert r.json()["authentication_redis_pass_set"] is False
        assert wait_for(lambda: get_a(n, port, None) == b"1", 10), "password not removed"
    assert PASSWORD not in n.log and PASSWORD2 not in n.log


def test_multi_exec(dbs):
    n, port = dbs, dbs.tls_db["port"]
    c = redis_client(n, port)
    try:
        c.delete("m1", "m2")
        pipe = c.pipeline(transaction=True)
        pipe.set("m1", "a").incr("m2").incr("m2").get("m1").get("m2")
        assert pipe.execute() == [True, 1, 2, b"a", b"2"]
        # WATCH + a conflicting write from another connection aborts EXEC.
        other = redis_client(n, port)
        pipe = c.pipeline(transaction=True)
        pipe.watch("m1")
        other.set("m1", "changed")
        pipe.multi()
        pipe.set("m1", "mine")
        with pytest.raises(redis.WatchError):
            pipe.execute()
        assert c.get("m1") == b"changed"
        other.close()
    finally:
        c.close()
    # The same through redis-cli (one connection, MULTI .. EXEC).
    p = cli_tls(n, port, input="MULTI\nSET m3 z\nGET m3\nEXEC\n")
    assert p.returncode == 0, p.stderr
    assert "QUEUED" in p.stdout and p.stdout.strip().endswith("z"), p.stdout


def test_pubsub(dbs):
    n, port = dbs, dbs.tls_db["port"]
    sub = redis_client(n, port)
    pub = redis_client(n, port)
    ps = sub.pubsub()
    try:
        ps.subscribe("news")
        m = ps.get_message(timeout=5)
        assert m and m["type"] == "subscribe", m
        ps.psubscribe("ev.*")
        m = ps.get_message(timeout=5)
        assert m and m["type"] == "psubscribe", m
        assert pub.publish("news", "hello") == 1
        assert pub.publish("ev.one", b"\x00binary\xff") == 1
        got = []
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            m = ps.get_message(timeout=1)
            if m and m["type"] in ("message", "pmessage"):
                got.append((m["channel"], m["data"]))
        assert got == [(b"news", b"hello"), (b"ev.one", b"\x00binary\xff")]
    finally:
        ps.close()
        sub.close()
        pub.close()


def test_blpop(dbs):
    n, port = dbs, dbs.tls_db["port"]
    a = redis_client(n, port, socket_timeout=20)
    b = redis_client(n, port)
    a.delete("queue")
    out = {}

    def waiter():
        t0 = time.monotonic()
        try:
            out["r"] = a.blpop("queue", timeout=15)
        except Exception as e:  # reported below
            out["r"] = e
        out["t"] = time.monotonic() - t0
    t = threading.Thread(target=waiter, daemon=True)
    t.start()
    time.sleep(0.5)
    assert t.is_alive(), out
    assert b.rpush("queue", "job-1") >= 1
    t.join(10)
    assert not t.is_alive()
    assert out["r"] == (b"queue", b"job-1"), out
    assert 0.4 < out["t"] < 5, out
    a.close()
    b.close()


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
def test_big_value_and_pipeline(dbs, tls):
    n = dbs
    port = (dbs.tls_db if tls else dbs.plain_db)["port"]
    c = redis_client(n, port, tls=tls, socket_timeout=30)
    try:
        big = os.urandom(10 * 1024 * 1024)
        assert c.set("big", big) is True
        assert c.strlen("big") == len(big)
        got = c.get("big")
        assert len(got) == len(big) and got == big
        c.delete("big")
        pipe = c.pipeline(transaction=False)
        for i in range(5000):
            pipe.set("p:%d" % i, i)
            pipe.get("p:%d" % i)
        res = pipe.execute()
        assert len(res) == 10000
        want = []
        for i in range(5000):
            want += [True, str(i).encode()]
        assert res == want
        assert c.ping()
    finally:
        c.close()


def test_small_fragments(dbs):
    """A client that negotiated max_fragment_length 512 (RFC 6066) gets a
    reply of many records, whole: the proxy writes every byte the shard
    sent, 512 at a time."""
    n = dbs
    port = dbs.tls_db["port"]
    c = redis_client(n, port, tls=True)
    value = "v" * 5000
    try:
        assert c.set("mfl", value) is True
    finally:
        c.close()
    p = subprocess.run(
        ["openssl", "s_client", "-connect", "%s:%d" % (n.addr, port),
         "-CAfile", n.ca, "-maxfraglen", "512", "-tls1_2", "-quiet",
         "-ign_eof"],
        input=b"GET mfl\r\nQUIT\r\n", capture_output=True, timeout=20)
    want = b"$5000\r\n%s\r\n+OK\r\n" % value.encode()
    assert p.stdout.endswith(want), (p.stdout[-200:], p.stderr[-500:])


def test_tls_mode_change_applies_to_new_connections(db_node):
    """PUT tls_mode: new connections get the new mode, open ones go on."""
    n = db_node
    db = make_bdb(n, tls=True, name="switch")
    port = db["port"]
    old_tls = redis_client(n, port)
    assert old_tls.set("k", "v")
    r = n.sock("PUT", "/v1/bdbs/%d" % db["uid"], {"tls_mode": "disabled"})
    assert r.status_code == 200, r
    assert r.json()["tls_mode"] == "disabled" and r.json()["ssl"] is False

    def plain_get():
        try:
            c = redis.Redis(host=n.addr, port=port, socket_timeout=2,
                            socket_connect_timeout=2)
            try:
                return c.get("k")
            finally:
                c.close()
        except redis.RedisError as e:
            return e
    assert wait_for(lambda: plain_get() == b"v", 10), plain_get()
    assert old_tls.get("k") == b"v"
    r = n.sock("PUT", "/v1/bdbs/%d" % db["uid"], {"tls_mode": "enabled"})
    assert r.status_code == 200, r
    assert wait_for(lambda: tls_ping(n, port) == PONG, 10)
    p = cli_tls(n, port, "GET", "k")
    assert p.stdout.strip() == "v", (p.stdout, p.stderr)
    assert old_tls.get("k") == b"v"
    old_tls.close()
    p = redis_cli("-h", n.addr, "-p", port, "GET", "k", timeout=30)
    assert p.stdout.strip() != "v", (p.stdout, p.stderr)


# -- persistence across a moatd restart ----------------------------------------

def test_data_survives_moatd_restart(db_node):
    n = db_node
    db = make_bdb(n, tls=True, name="durable",
                  authentication_redis_pass=PASSWORD)
    plain = make_bdb(n, tls=False, name="durable-plain")
    port = db["port"]
    c = redis_client(n, port, password=PASSWORD)
    pipe = c.pipeline(transaction=False)
    for i in range(1000):
        pipe.set("k:%d" % i, "v:%d" % i)
    pipe.execute()
    blob = os.urandom(1024 * 1024)
    c.set("blob", blob)
    c.rpush("list", *range(100))
    c.close()
    pc = redis.Redis(host=n.addr, port=plain["port"], socket_timeout=10)
    pc.set("plain-key", "plain-value")
    pc.close()
    pids = [redis_pid(n, db["uid"]), redis_pid(n, plain["uid"])]
    assert all(pids), pids

    rc = n.stop()
    sigkill = n.needed_sigkill
    for pid in pids:
        assert wait_for(lambda: not pid_running(pid), 10), \
            "redis-server %d still runs after moatd stopped" % pid
    log_before = len(n.log)
    n.needed_sigkill = False  # judged below, so the restart is not blamed
    n.bad_exit = None
    n.start()
    a = wait_bdb_active(n, db["uid"])
    wait_bdb_active(n, plain["uid"])
    assert a["port"] == port and a["name"] == "durable"
    assert a["authentication_redis_pass_set"] is True
    c = redis_client(n, port, password=PASSWORD)
    try:
        vals = c.mget(["k:%d" % i for i in range(1000)])
        assert vals == [("v:%d" % i).encode() for i in range(1000)]
        assert c.get("blob") == blob
        assert c.lrange("list", 0, -1) == [str(i).encode() for i in range(100)]
    finally:
        c.close()
    pc = redis.Redis(host=n.addr, port=plain["port"], socket_timeout=10)
    assert pc.get("plain-key") == b"plain-value"
    pc.close()
    new_pid = redis_pid(n, db["uid"])
    assert new_pid not in pids
    assert "shard up" in n.log[log_before:]
    # SIGTERM must stop moatd cleanly (exit 0, within 5 s).
    assert rc == 0 and not sigkill, (
        "moatd with databases did not stop cleanly on SIGTERM: exit %s, "
        "needed SIGKILL: %s; log tail:\n%s" % (rc, sigkill,
                                               n.log[:log_before][-1500:]))


# -- client certificates ---------------------------------------------------------

def client_ctx(n, pair=None):
    ctx = tls_client_context(cafile=n.ca)
    if pair:
        ctx.load_cert_chain(*pair)
    return ctx


def refused(got):
    return got != PONG


def test_client_certificates(db_node, test_ca):
    n = db_node
    other_ca = certgen.make_ca("moat other client CA")
    sans = ["DNS:client.example"]
    alice = certgen.make_leaf(test_ca, sans=sans, cn="alice")
    bob = certgen.make_leaf(test_ca, sans=sans, cn="bob")
    mallory = certgen.make_leaf(other_ca, sans=sans, cn="mallory")
    selfsigned = certgen.make_leaf(None, sans=sans, cn="self")
    pa, pb, pm, ps = (write_pair(n, alice, "alice"), write_pair(n, bob, "bob"),
                      write_pair(n, mallory, "mallory"),
                      write_pair(n, selfsigned, "self"))

    # (a) a leaf listed: only that leaf.
    leafdb = make_bdb(n, tls=True, name="leafdb",
                      enforce_client_authentication="enabled",
                      authentication_ssl_client_certs=[
                          {"client_cert": alice.cert_pem}])
    assert leafdb["enforce_client_authentication"] == "enabled"
    listed = leafdb["authentication_ssl_client_certs"]
    assert len(listed) == 1 and \
        certgen.fingerprint(listed[0]["client_cert"]) == alice.fingerprint
    port = leafdb["port"]
    log0 = len(n.log)
    assert tls_ping(n, port, client_ctx(n, pa)) == PONG
    p = cli_tls(n, port, "--cert", pa[0], "--key", pa[1], "PING")
    assert p.stdout.strip() == "PONG", (p.stdout, p.stderr)
    c = redis_client(n, port, ssl_certfile=pa[0], ssl_keyfile=pa[1])
    assert c.set("who", "alice") and c.get("who") == b"alice"
    c.close()
    for what, pair in (("bob (same CA, not listed)", pb),
                       ("mallory (other CA)", pm), ("self-signed", ps),
                       ("no certificate", None)):
        got = tls_ping(n, port, client_ctx(n, pair))
        assert refused(got), "%s was let in: %r" % (what, got)
    p = cli_tls(n, port, "PING", timeout=30)
    assert "PONG" not in p.stdout, p.stdout
    p = cli_tls(n, port, "--cert", pb[0], "--key", pb[1], "PING", timeout=30)
    assert "PONG" not in p.stdout, p.stdout

    # (b) a CA listed: any cert it issued.
    cadb = make_bdb(n, tls=True, name="cadb",
                    enforce_client_authentication="enabled",
                    authentication_ssl_client_certs=[
                        {"client_cert": test_ca.cert_pem}])
    port2 = cadb["port"]
    for pair in (pa, pb):
        assert tls_ping(n, port2, client_ctx(n, pair)) == PONG
    p = cli_tls(n, port2, "--cert", pb[0], "--key", pb[1], "PING")
    assert p.stdout.strip() == "PONG", (p.stdout, p.stderr)
    for what, pair in (("mallory (other CA)", pm), ("self-signed", ps),
                       ("no certificate", None)):
        got = tls_ping(n, port2, client_ctx(n, pair))
        assert refused(got), "%s was let in: %r" % (what, got)

    # The log says why.
    log = n.log[log0:]
    fails = [l for l in log.splitlines() if "handshake failed" in l]
    assert fails, "no refusal in the log:\n%s" % log[-3000:]
    assert any("certificate" in l.lower() for l in fails), fails

    # Without enforcement, the same database lets everyone in (new
    # connections); an open, authenticated one keeps working throughout.
    keep = tls_data_connect(n, port, client_ctx(n, pa))
    assert resp_ping(keep) == PONG
    r = n.sock("PUT", "/v1/bdbs/%d" % leafdb["uid"],
               {"enforce_client_authentication": "disabled"})
    assert r.status_code == 200, r
    assert wait_for(lambda: tls_ping(n, port, client_ctx(n)) == PONG, 10)
    assert tls_ping(n, port, client_ctx(n, pb)) == PONG
    assert resp_ping(keep) == PONG
    # ... and enforcing again, with bob listed instead of alice.
    r = n.sock("PUT", "/v1/bdbs/%d" % leafdb["uid"], {
        "enforce_client_authentication": "enabled",
        "authentication_ssl_client_certs": [{"client_cert": bob.cert_pem}]})
    assert r.status_code == 200, r
    assert wait_for(lambda: refused(tls_ping(n, port, client_ctx(n, pa))), 10)
    assert tls_ping(n, port, client_ctx(n, pb)) == PONG
    assert refused(tls_ping(n, port, client_ctx(n)))
    assert resp_ping(keep) == PONG
    keep.close()


# -- data TLS policy -------------------------------------------------------------

def s_client(n, port, version):
    return openssl_s_client(n.addr, port, "-" + version, "-CAfile", n.ca,
                            "-verify_return_error",
                            servername=dns_name(n, port))


def s_client_ok(p, version):
    want = {"tls1_2": "TLSv1.2", "tls1_3": "TLSv1.3"}[version]
    return p.returncode == 0 and ("New, %s" % want) in p.stdout


def test_data_tls_policy(db_node):
    n = db_node
    db = make_bdb(n, tls=True, name="policy")
    port = db["port"]
    for v in ("tls1_2", "tls1_3"):
        p = s_client(n, port, v)
        assert s_client_ok(p, v), (v, p.returncode, p.stdout[-1500:], p.stderr)

    ctx12 = tls_client_context(cafile=n.ca,
                               max_version=ssl.TLSVersion.TLSv1_2)
    ctx13 = tls_client_context(cafile=n.ca,
                               min_version=ssl.TLSVersion.TLSv1_3)
    c12 = tls_data_connect(n, port, ctx12)
    c13 = tls_data_connect(n, port, ctx13)
    assert c12.version() == "TLSv1.2" and c13.version() == "TLSv1.3"
    assert resp_ping(c12) == PONG and resp_ping(c13) == PONG
    r13 = redis_client(n, port)  # redis-py negotiates TLS 1.3
    assert r13.set("x", "1")
    assert r13.connection._sock.version() == "TLSv1.3"

    r = n.sock("PUT", "/v1/cluster", {"min_data_TLS_version": "1.3"})
    assert r.status_code == 200, r
    body = r.json()
    assert body["min_data_TLS_version"] == "1.3"
    assert body.get("closed_sessions", 0) >= 1, body
    assert n.sock("GET", "/v1/cluster").json()["min_data_TLS_version"] == "1.3"

    # The TLS 1.2 connection was closed, the TLS 1.3 ones keep working.
    try:
        got = resp_ping(c12)
    except (ssl.SSLError, OSError) as e:
        got = e
    assert got != PONG and not (isinstance(got, bytes) and got), \
        "TLS 1.2 connection still served after the raise: %r" % (got,)
    assert resp_ping(c13) == PONG
    assert r13.get("x") == b"1"

    p = s_client(n, port, "tls1_2")
    assert not s_client_ok(p, "tls1_2") and p.returncode != 0, p.stdout[-1500:]
    p = s_client(n, port, "tls1_3")
    assert s_client_ok(p, "tls1_3"), (p.stdout[-1500:], p.stderr)
    assert refused(tls_ping(n, port, ctx12))
    assert tls_ping(n, port, ctx13) == PONG

    # Raising again to the same value closes nothing more.
    r = n.sock("PUT", "/v1/cluster", {"min_data_TLS_version": "1.3"})
    assert r.status_code == 200 and r.json().get("closed_sessions", 0) == 0, r

    # Back to 1.2: TLS 1.2 handshakes work again.
    r = n.sock("PUT", "/v1/cluster", {"min_data_TLS_version": "1.2"})
    assert r.status_code == 200, r
    assert r.json()["min_data_TLS_version"] == "1.2"
    p = s_client(n, port, "tls1_2")
    assert s_client_ok(p, "tls1_2"), (p.stdout[-1500:], p.stderr)
    assert tls_ping(n, port, ctx12) == PONG
    assert resp_ping(c13) == PONG
    assert r13.get("x") == b"1"
    assert r13.connection._sock is not None
    c12.close()
    c13.close()
    r13.close()


# -- shard killed ----------------------------------------------------------------

def test_shard_killed(db_node):
    n = db_node
    db = make_bdb(n, tls=True, name="victim")
    other = make_bdb(n, tls=True, name="bystander")
    uid, port = db["uid"], db["port"]
    c = redis_client(n, port, socket_timeout=10)
    pipe = c.pipeline(transaction=False)
    for i in range(500):
        pipe.set("k:%d" % i, i)
    pipe.execute()
    c.set("last", "written")
    bys = redis_client(n, other["port"])
    assert bys.set("b", "1")
    time.sleep(1.5)  # AOF fsync everysec
    pid = redis_pid(n, uid)
    st = proc_stat(pid)
    assert st and st[0].startswith("redis-server"), st
    log0 = len(n.log)
    os.kill(pid, signal.SIGKILL)

    # The open client connection is closed (error, not a hang).
    t0 = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        c.ping()
    assert time.monotonic() - t0 < 5
    c.close()

    # Until the shard is back, new connections fail; once back they serve
    # the data.  A success seen while moatd still says "pending" on both
    # sides of the attempt is an error.
    attempts = []
    deadline = time.monotonic() + 10
    back = None
    while time.monotonic() < deadline:
        before = bdb_get(n, uid)["status"]
        try:
            t = redis_client(n, port, socket_timeout=5)
            got = t.get("last")
            t.close()
        except redis.RedisError as e:
            got = e
        after = bdb_get(n, uid)["status"]
        attempts.append((before, after, got))
        if got == b"written" and after == "active":
            back = time.monotonic()
            break
        time.sleep(0.05)
    bad = [a for a in attempts if a[0] == a[1] == "pending" and
           not isinstance(a[2], Exception)]
    assert not bad, "served while pending: %r" % bad
    wrong = [a for a in attempts if not isinstance(a[2], Exception) and
             a[2] != b"written"]
    assert not wrong, "wrong data while restarting: %r" % wrong
    assert back, "not back within 10 s: %r" % attempts[-5:]
    a = wait_bdb_active(n, uid)
    assert a["status"] == "active"
    new_pid = redis_pid(n, uid)
    assert new_pid and new_pid != pid and pid_running(new_pid)
    assert not pid_running(pid)
    c = redis_client(n, port)
    vals = c.mget(["k:%d" % i for i in range(500)])
    assert vals == [str(i).encode() for i in range(500)]
    c.close()
    # The other database never noticed.
    assert bys.get("b") == b"1"
    bys.close()
    log = n.log[log0:]
    assert "db:%d redis-server exited" % uid in log, log
    assert "db:%d shard up" % uid in log, log
    print("attempts while restarting: %d, failures: %d" % (
        len(attempts), sum(isinstance(x[2], Exception) for x in attempts)))
